"""Zero-downtime rotation of the backend's password (the `default` user), in one host-program call.

On the host (`hsi-redis rotate`), each step deciding from what the server accepts, so a run interrupted
anywhere is simply run again:

1. the admin identity adds the new password beside the old one (`ACL SETUSER default #<sha256>`, on
   stdin): both work now;
2. every file that holds the password is rewritten without a restart (backend.auth, redis.conf, the
   backend `.env`, the exporter's file), and the config is recorded as the last good one;
3. the consumers the deploy can restart are restarted (`redis_backend_unit`, `redis_exporter_unit`);
4. the old password is dropped (`ACL SETUSER default resetpass #<new>`) only when every consumer the
   deploy knows of runs with the new one: restarted in step 3, or restarted by the operator after a
   previous run said so (its files already hold the new password). Otherwise the summary says what to
   restart, and running rotate.py again finishes.

Generated passwords: the new one waits in the control machine's store (`<name>.next`) and becomes the
current one only once the old one is dropped, so a second run moves to the same value.

Backend hosts (redis_role: backend). A server's backend hosts are consumers too, on other machines: the
server adds the new password and rewrites its own files (step 4 is held back), then each backend host's
`.env` gets it and its `redis_backend_unit` is restarted (operations/backends.py), then the server drops
the old password when every consumer, local and remote, runs with the new one (`drop_after_backends`).
Every host runs these steps in the same order, so pyinfra finishes each on all hosts before the next.
"""

from __future__ import annotations

from dataclasses import replace

from pyinfra import host
from pyinfra import state as run_state
from pyinfra.api import operation
from pyinfra.api.command import FunctionCommand
from pyinfra.operations import python

from . import backends, clients, configure, credentials, program, report, settings, verify
from .hoststate import HostState, salted_sha256
from .program import FileEntry
from .target import Target, resolve, resolve_backend


def new_password(conf: settings.Settings) -> credentials.Secret:
    """The password a server's rotation moves to (generated: the pending one, created on first use)."""
    if conf.password_source.startswith("generated"):
        return credentials.pending_password(conf.host_name)
    return conf.password


def new_target(target: Target) -> Target:
    """The Target with the password to rotate TO; a backend host's: its server's new password."""
    if not target.serves:
        server = settings.load_all(host.state.inventory)[target.server_name]
        return resolve_backend(target.settings, server, new_password(server))
    conf = replace(target.settings, password=new_password(target.settings))
    new = resolve(conf, target.row, target.admin_password)
    return replace(new, firewall=target.firewall, backend_hosts=target.backend_hosts)


def consumers(target: Target) -> tuple[list[str], list[str]]:
    """(units the deploy restarts, consumers it cannot restart: the operator must)."""
    units, manual = [], []
    if target.backend is not None:
        if target.settings.backend_unit:
            units.append(target.settings.backend_unit)
        else:
            manual.append(f"the HSI backend (it reads {target.backend.env_path}; set redis_backend_unit "
                          "to let the deploy restart it)")
    if target.exporter is not None:
        if target.settings.exporter_unit:
            units.append(target.settings.exporter_unit)
        else:
            manual.append(f"redis_exporter (it reads {target.exporter.env_path})")
    return units, manual


def files_hold(target: Target, state: HostState, salt: str) -> bool:
    """Whether the consumers' files already hold the target's password (a previous run wrote them)."""
    backend = target.backend
    if backend is None:
        return True
    info = state.envs.get(backend.env_path)
    wanted = dict(backend.lines)["REDIS_PASSWORD"]
    return info is not None and info.keys.get("REDIS_PASSWORD") == (salted_sha256(salt, wanted),)


@operation()
def rotate_on_host(target: Target, state: HostState, units: tuple[str, ...], drop: bool):
    """
    Add the new password, rewrite the files that hold it, restart consumers, drop the old one.

    + target: the Target with the NEW password
    + state: the prologue's state read
    + units: consumer units to restart before the old password goes
    + drop: whether the old password may go (every consumer has the new one)

    **Example:**

    .. code:: python

        rotate_on_host(name="Rotate", target=new, state=state, units=("hsi-backend.service",), drop=True)
    """
    if not target.serves:
        host.noop("no server on this host: its backend gets the new password after its server")
        return
    entries = [e for e in configure.server_entries(target)
               if e.path in (target.row.config_path, target.backend_auth)]
    entries += clients.password_entries(target, state)
    entries = [replace(e, flags=tuple(f for f in e.flags if f != "restart")) if isinstance(e, FileEntry) else e
               for e in entries]
    options = {**target.layout_options(), "restart_units": " ".join(units) or None, "drop": 1 if drop else 0}
    yield program.command("rotate", *program.options(**options),
                          stdin=program.bundle(entries, password=target.password.reveal()))


def _held_back(manual: list[str]) -> str:
    return ("the old password stays valid until these run with the new one: " + "; ".join(manual)
            + ". Restart them, then run rotate.py again to drop it")


@operation()
def drop_after_backends(target: Target, state: HostState, salt: str):
    """
    On a server with backend hosts, after they got the new password: drop the old one when every
    consumer runs with the new one (else the summary says who must restart), then, for a generated
    password, make the new one the current one in the control machine's store.

    + target: the server's Target with the NEW password (other hosts: nothing here)
    + state: the prologue's state read
    + salt: the salt of that read

    **Example:**

    .. code:: python

        drop_after_backends(name="Drop the old password", target=new, state=state, salt=salt)
    """
    if not target.serves or not target.backend_hosts:
        host.noop("nothing to drop here after backend hosts")
        return
    if not run_state.is_executing:
        return
    _, manual = consumers(target)
    waiting = [] if not manual or files_hold(target, state, salt) else manual
    for name in target.backend_hosts:
        ready, why = backends.backend_has_new_password(name)
        if not ready:
            waiting.append(why)
    if waiting:
        report.warn(host.name, _held_back(waiting))
        host.noop("the old password stays valid")
        return
    yield program.command("rotate-drop", *program.options(**target.layout_options()),
                          stdin=program.bundle([], password=target.password.reveal()))
    if target.settings.password_source.startswith("generated"):
        yield FunctionCommand(credentials.promote_pending, (target.name,), {})


def rotate(prepared) -> None:
    """The rotation of one host (the rotate flow, after the prologue). Every host calls the same steps;
    each does nothing where its role is not (see the module docstring)."""
    old = prepared.target
    new = new_target(old)
    report.add_secret(new.password.reveal())
    units, manual = consumers(new) if old.serves else ([], [])
    # a server with backend hosts drops the old password only after them (drop_after_backends)
    drop = old.serves and not old.backend_hosts and (not manual or files_hold(new, prepared.state, prepared.salt))
    if old.serves and not old.backend_hosts and not drop:
        report.warn(host.name, _held_back(manual))
    rotated = rotate_on_host(name="Rotate the backend password (add, rewrite files, restart consumers, drop)",
                             target=new, state=prepared.state, units=tuple(units), drop=drop)
    backends.remember("rotate", rotated)
    if drop and new.settings.password_source.startswith("generated"):
        python.call(name="Make the new password the current one in the control machine's store",
                    function=credentials.promote_pending, host_name=old.name)
    moved = backends.rotate_backend(name="Backend host: the new password in its .env, its unit restarted",
                                    target=new, state=prepared.state, salt=prepared.salt)
    backends.remember("rotate-backend", moved)
    dropped = drop_after_backends(name="Drop the old password once every backend host has the new one",
                                  target=new, state=prepared.state, salt=prepared.salt)
    verify.server_answers(name="Verify with the new password", target=new, state=prepared.state,
                          salt=prepared.salt, changes=(rotated, dropped))
    backends.backend_answers(name="Verify the backend host's .env and TLS files", target=new,
                             state=prepared.state, salt=prepared.salt, changes=(moved,))
