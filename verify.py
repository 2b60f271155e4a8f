"""Check only: ask every host's server what a client sees, change nothing.

    pyinfra -y inventories/production.py verify.py

Same checks and summary as the last step of deploy.py.
"""

from pyinfra import host, state

from operations import platform, report, settings, verify

conf = settings.load(host)
report.track(state, conf)
plat, _identity = platform.for_host(host, conf.flavour)

if plat:
    verify.verify_server(conf, plat)
