"""The flows, as `@deploy` functions another pyinfra deploy can call.

    from operations import flows
    flows.provision()          # what deploy.py runs
    flows.check()              # what verify.py runs
    flows.rotate_password()    # what rotate.py runs
    flows.backup()             # what backup.py runs
    flows.restore()            # what restore.py runs (needs restore_from and restore_confirm)

Each starts with the one prologue (settings of every host validated -> one state read -> the host's
Target), then decides every step from that read: on a host that is already right, no step touches the
host again and the read itself is the verification.

Every host calls the same steps in the same order, whatever its role: a step does nothing where its role
is not (a backend host installs nothing; a server's host writes no backend-host files). That order is
what makes servers converge before their backend hosts (see operations/backends.py): in the CLI pyinfra
orders operations by where they are called, but through its API by how many each host called before.
The backend-host steps are called only when the inventory has a backend host (decided for every host
alike): each operation call costs pyinfra a walk of the call stack.
"""

from __future__ import annotations

from pyinfra import host as current_host
from pyinfra.api import deploy

from . import (
    backends,
    backups,
    configure,
    firewall,
    install,
    prologue,
    report,
    restores,
    rotation,
    settings,
    verify,
)


def _holds_data(target) -> bool:
    """A backend host holds no Redis data: backup.py and restore.py pass it by, saying where the data is."""
    if target.serves:
        return True
    report.record(target.name, status="ok", role="backend", server=target.server_name,
                  summary=f"backend host: no data here (its server {target.server_name} holds it)")
    current_host.noop(f"backend host of {target.server_name}: no Redis data here")
    return False


@deploy("Provision Redis for HSI")
def provision():
    """settings -> install -> firewall -> tls + configure + service + backend env (one call) -> verify;
    then, on backend hosts, their files -> their verification."""
    prepared = prologue.prepare()
    if prepared is None:  # this host cannot go on (the reason is in the report); others do
        return
    target, state, salt = prepared.target, prepared.state, prepared.salt
    source = " from packages.redis.io" if target.serves and target.row.source == "upstream" else ""
    installed = install.server_package(name=f"Install the server{source}", target=target, state=state, salt=salt)
    guarded = firewall.server_firewall(name="Firewall: the server's ports admit only its backends",
                                       target=target, state=state, salt=salt)
    configured = configure.server(name="Configure and run the server (TLS, redis.conf, service, clients)",
                                  target=target, state=state, salt=salt)
    verify.server_answers(name="Verify: PONG with the password, NOAUTH without, AOF, identities, .env",
                          target=target, state=state, salt=salt, changes=(installed, guarded, configured))
    if not settings.has_backend_hosts(current_host.state.inventory):
        return  # no host of this inventory has backend-host steps (each call costs pyinfra a stack walk)
    written = backends.backend_files(name="Backend host: its .env and TLS files, once its server converged",
                                     target=target, state=state, salt=salt)
    backends.backend_answers(name="Verify the backend host's .env and TLS files", target=target, state=state,
                             salt=salt, changes=(written,))
    backends.backend_ping(name="Backend host: PING its server as the backend does", target=target, state=state,
                          salt=salt, changes=(written,))


@deploy("Verify Redis for HSI")
def check():
    """Ask every host's server what a client sees, and every backend host's files; change nothing (one
    read per host)."""
    prepared = prologue.prepare()
    if prepared is not None:
        target, state, salt = prepared.target, prepared.state, prepared.salt
        verify.server_answers(name="Verify: PONG with the password, NOAUTH without, AOF, identities, .env",
                              target=target, state=state, salt=salt)
        if settings.has_backend_hosts(current_host.state.inventory):
            backends.backend_answers(name="Verify the backend host's .env and TLS files", target=target,
                                     state=state, salt=salt)


@deploy("Rotate the Redis password")
def rotate_password():
    """A new backend password on every server and every backend host, without a Redis restart (see
    operations/rotation.py)."""
    prepared = prologue.prepare()
    if prepared is not None:
        rotation.rotate(prepared)


@deploy("Back up Redis")
def backup():
    """A snapshot of the server, copied to the control machine (see operations/backups.py)."""
    prepared = prologue.prepare()
    if prepared is not None and _holds_data(prepared.target):
        backups.fetch(name="Snapshot the server (redis-cli --rdb, checked) and copy it here", target=prepared.target)


@deploy("Restore Redis data")
def restore():
    """A backup put back onto the host (see operations/restores.py): its inputs are checked for every host
    of the run before any host is read."""
    source = restores.inputs(current_host)
    prepared = prologue.prepare()
    if prepared is not None and _holds_data(prepared.target):
        restores.restore(prepared, source)
