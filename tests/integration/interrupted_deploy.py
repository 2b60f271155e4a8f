"""Test-only entry point: deploy.py's steps up to and including configure, without the service
step. It is exactly a run stopped after writing the files and before the restart."""

from pyinfra import host, state

from operations import configure, hardening, install, prologue, tls

ready = prologue.prepare(host, state)

if ready:
    conf, plat, identity, packages = ready
    if not conf.verify_only:
        install.install_server(conf, plat, identity, packages)
        hardening.harden_host(conf, plat, identity)
        tls.install_tls(conf, plat)
        configure.configure_server(conf, plat)
        # (stopped here: no service step, no backend .env, no verification)
