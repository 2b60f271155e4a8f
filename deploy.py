"""Provision the HSI backend's Redis server on every host of an inventory.

    pyinfra -y inventories/docker.py deploy.py        (see the README for the settings)

The flow, one module per concern: settings -> install -> tls -> configure -> service ->
backend env -> verify. A summary per host ends the run (and reports/last-run.json).
"""

from pyinfra import host, state

from operations import backend_env, configure, install, platform, report, service, settings, shell, verify

report.install(state)
conf = settings.load(host)  # validates every host first: a bad value stops the run untouched
report.add_secret(conf.password.reveal())
plat, identity, problem = platform.detect(host, conf.flavour)

if problem:
    report.record(host.name, status="failed", failed_step="platform", problem=problem)
    shell.fail_host(name="Check the platform", message=problem)
else:
    report.record(host.name, platform=plat.name, flavour=plat.flavour)
    if not conf.verify_only:
        dropin = install.install_server(conf, plat, identity)
        config = configure.configure_server(conf, plat)
        service.run_service(plat, changed=[dropin, config], conf=conf)
        backend_env.write_backend_env(conf)
    verify.verify_server(conf, plat)
