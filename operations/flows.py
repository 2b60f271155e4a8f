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
"""

from __future__ import annotations

from pyinfra import host as current_host
from pyinfra.api import deploy

from . import backups, configure, install, prologue, restores, rotation, verify


@deploy("Provision Redis for HSI")
def provision():
    """settings -> install -> tls + configure + service + backend env (one call) -> verify."""
    prepared = prologue.prepare()
    if prepared is None:  # this host cannot go on (the reason is in the report); others do
        return
    target, state, salt = prepared.target, prepared.state, prepared.salt
    changes: tuple = ()
    if not target.verify_only:
        source = " from packages.redis.io" if target.row.source == "upstream" else ""
        installed = install.server_package(name=f"Install the server{source}", target=target, state=state,
                                           salt=salt)
        configured = configure.server(name="Configure and run the server (TLS, redis.conf, service, clients)",
                                      target=target, state=state, salt=salt)
        changes = (installed, configured)
    verify.server_answers(name="Verify: PONG with the password, NOAUTH without, AOF, identities, .env",
                          target=target, state=state, salt=salt, changes=changes)


@deploy("Verify Redis for HSI")
def check():
    """Ask every host's server what a client sees; change nothing (one read per host)."""
    prepared = prologue.prepare()
    if prepared is not None:
        verify.server_answers(name="Verify: PONG with the password, NOAUTH without, AOF, identities, .env",
                              target=prepared.target, state=prepared.state, salt=prepared.salt)


@deploy("Rotate the Redis password")
def rotate_password():
    """A new backend password on every host, without a Redis restart (see operations/rotation.py)."""
    prepared = prologue.prepare()
    if prepared is not None:
        rotation.rotate(prepared)


@deploy("Back up Redis")
def backup():
    """A snapshot of the server, copied to the control machine (see operations/backups.py)."""
    prepared = prologue.prepare()
    if prepared is not None:
        backups.fetch(name="Snapshot the server (redis-cli --rdb, checked) and copy it here", target=prepared.target)


@deploy("Restore Redis data")
def restore():
    """A backup put back onto the host (see operations/restores.py): its inputs are checked for every host
    of the run before any host is read."""
    source = restores.inputs(current_host)
    prepared = prologue.prepare()
    if prepared is not None:
        restores.restore(prepared, source)
