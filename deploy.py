"""Provision the HSI backend's Redis server on every host of an inventory.

    pyinfra -y inventories/docker.py deploy.py        (see the README for the settings)

The flow, one module per concern: settings -> install -> tls -> configure -> service ->
backend env -> verify. A summary per host ends the run (and reports/last-run.json).
"""

from pyinfra import host, state

from operations import backend_env, configure, exporter, hardening, install, prologue
from operations import service, tls, verify

ready = prologue.prepare(host, state)  # settings, platform row, package source; None: this host failed

if ready:
    conf, plat, identity, packages = ready
    if not conf.verify_only:
        dropin = install.install_server(conf, plat, identity, packages)
        hardening.harden_host(conf, plat, identity)  # kernel settings; skipped (with a note) in containers
        tls_files = tls.install_tls(conf, plat)
        config = configure.configure_server(conf, plat)
        service.run_service(conf, plat, changed=[dropin, config, *tls_files])
        backend_env.write_backend_env(conf)
        exporter.write_exporter_env(conf)
    verify.verify_server(conf, plat)
