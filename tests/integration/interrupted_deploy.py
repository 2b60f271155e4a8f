"""Test-only entry point: deploy.py's steps up to and including configure, without the service
step. It is exactly a run stopped after writing the files and before the restart."""

from pyinfra import host, state

from operations import configure, hardening, install, platform, report, settings, sources, tls

conf = settings.load(host)
report.track(state, conf)
plat, identity = platform.for_host(host, conf.flavour)
if plat:
    plat, packages = sources.for_host(host, conf, plat)

if plat and not conf.verify_only:
    install.install_server(conf, plat, identity, packages)
    hardening.harden_host(conf, plat, identity)
    tls.install_tls(conf, plat)
    configure.configure_server(conf, plat)
    # (stopped here: no service step, no backend .env, no verification)
