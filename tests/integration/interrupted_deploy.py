"""Test-only entry point: deploy.py's flow, cut exactly between writing the files and restarting.

The configure step runs with a service controller (HSI_REDIS_SERVICE_CTL, see the host program's
`svc`) that passes everything to systemctl except `restart`, where it kills the host program: the
files are written, the restart never happens, as when an operator's run is stopped there."""


from operations import configure, install, prologue

CUT = "/usr/local/sbin/hsi-test-cut-at-restart"

prepared = prologue.prepare()
if prepared is not None:
    target, state, salt = prepared.target, prepared.state, prepared.salt
    install.server_package(name="Install the server", target=target, state=state, salt=salt)
    configure.server(name="Configure and run the server, cut at the restart", target=target, state=state,
                     salt=salt, _env={"HSI_REDIS_SERVICE_CTL": CUT})
