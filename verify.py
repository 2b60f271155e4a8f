"""Check only: ask every host's server what a client sees, change nothing.

    pyinfra -y inventories/production.py verify.py

Same checks and summary as the last step of deploy.py, plus the version policy: a server
below `redis_minimum_version` fails verification (a lower version than HSI asks for is a
warning).
"""

from pyinfra import host, state

from operations import platform, report, settings, sources, verify

conf = settings.load(host)
report.track(state, conf)
plat, _identity = platform.for_host(host, conf.flavour)
if plat:  # the version policy judges the installed server
    plat, _packages = sources.for_host(host, conf, plat)

if plat:
    verify.verify_server(conf, plat)
