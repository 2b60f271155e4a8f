"""Provision the HSI backend's Redis server on every host of an inventory.

    pyinfra -y inventories/docker.py deploy.py        (see the README for the settings)

The flow, one module per concern: settings -> install -> tls -> configure -> service ->
backend env -> verify. A summary per host ends the run (and reports/last-run.json).
"""

from pyinfra import host, state

from operations import backend_env, configure, install, platform, report, service, settings, shell, verify
from operations import sources

report.install(state)
conf = settings.load(host)  # validates every host first: a bad value stops the run untouched
report.add_secret(conf.password.reveal())
plat, identity, problem = platform.detect(host, conf.flavour)
step, packages = "platform", None
if not problem:  # source and version policy: one fact, decided before anything changes here
    step = "version policy"
    plat, problem, warnings, packages = sources.choose(host, conf, plat)
    if warnings:
        report.record(host.name, warnings=warnings)

if problem:
    report.record(host.name, status="failed", failed_step=step, problem=problem)
    shell.fail_host(name=f"Check the {step}", message=problem)
else:
    report.record(host.name, platform=plat.name, flavour=plat.flavour)
    if not conf.verify_only:
        dropin = install.install_server(conf, plat, identity, packages)
        config = configure.configure_server(conf, plat)
        service.run_service(plat, changed=[dropin, config])
        backend_env.write_backend_env(conf)
    verify.verify_server(conf, plat)
