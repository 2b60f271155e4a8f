"""Check only: ask every host's server what a client sees, change nothing.

    pyinfra -y inventories/production.py verify.py

Same checks and summary as the last step of deploy.py.
"""

from pyinfra import host, state

from operations import acl, platform, report, settings, shell, verify

report.install(state)
conf = settings.load(host)
report.add_secret(conf.password.reveal())
report.add_secret(acl.admin_password(host.name).reveal())
for warning in conf.warnings:
    report.warn(host.name, warning)
plat, identity, problem = platform.detect(host, conf.flavour)

if problem:
    report.record(host.name, status="failed", failed_step="platform", problem=problem)
    shell.fail_host(name="Check the platform", message=problem)
else:
    report.record(host.name, platform=plat.name, flavour=plat.flavour)
    verify.verify_server(conf, plat)
