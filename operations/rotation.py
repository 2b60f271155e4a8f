"""Zero-downtime rotation of the backend's password (the `default` user), in one host-program call.

On the host (`hsi-redis rotate`), each step deciding from what the server accepts, so a run interrupted
anywhere is simply run again:

1. the admin identity adds the new password beside the old one (`ACL SETUSER default #<sha256>`, on
   stdin): both work now;
2. every file that holds the password is rewritten without a restart (backend.auth, redis.conf, the
   backend `.env`), and the config is recorded as the last good one;
3. the consumers the deploy can restart are restarted (`redis_backend_unit`);
4. the old password is dropped (`ACL SETUSER default resetpass #<new>`) only when every consumer the
   deploy knows of runs with the new one: restarted in step 3, or restarted by the operator after a
   previous run said so. Otherwise the old password stays valid, the program leaves a root-only notice
   on the host (`/etc/hsi-redis/rotation-notice`: the new password's SHA-256), and the summary says what
   to restart. The next run drops the old password when the state read shows that notice for this
   password and the consumers' files already holding it (a run interrupted before the notice never
   counts as "the operator was told").

The exporter (`redis_exporter: true`) is not a consumer: it logs in as its own user (`hsi-exporter`), whose
line in redis.conf is rewritten unchanged, so it keeps reporting throughout.

Generated passwords: the new one waits in the control machine's store (`<name>.next`) and becomes the
current one only once the old one is dropped, so a second run moves to the same value.

Backend hosts (redis_role: backend). A server's backend hosts are consumers too, on other machines: the
server adds the new password and rewrites its own files (step 4 is held back), then each backend host's
`.env` gets it and its `redis_backend_unit` is restarted (operations/backends.py), then the server drops
the old password when every consumer, local and remote, runs with the new one (`drop_after_backends`).
A backend host without a unit counts as told as the server's own consumers do: the server's notice for
this password from an earlier run, and its `.env` already holding it. Every host runs these steps in the
same order, so pyinfra finishes each on all hosts before the next.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from pyinfra import host
from pyinfra import state as run_state
from pyinfra.api import operation
from pyinfra.api.command import FunctionCommand
from pyinfra.operations import python

from . import backends, clients, configure, credentials, program, report, settings, verify
from .hoststate import HostState, salted_sha256
from .program import FileEntry
from .target import Target, resolve, resolve_backend


@dataclass(frozen=True)
class Consumer:
    """A program that reads the backend's password from a file the deploy writes."""

    what: str
    path: str
    unit: str | None   # restarted by rotate.py when set
    setting: str       # the setting that names its unit


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


def password_consumers(target: Target) -> list[Consumer]:
    """Every consumer of the password the settings name: the backend's `.env` (the exporter has its own)."""
    found = []
    if target.backend is not None:
        found.append(Consumer("the HSI backend", target.backend.env_path, target.settings.backend_unit,
                              "redis_backend_unit"))
    return found


def consumers(target: Target) -> tuple[list[str], list[str]]:
    """(units the run restarts, consumers it cannot restart: the operator must)."""
    found = password_consumers(target)
    return ([c.unit for c in found if c.unit],
            [f"{c.what} (reads {c.path}; set {c.setting} to let rotate.py restart it)" for c in found if not c.unit])


def file_holds(target: Target, consumer: Consumer, state: HostState, salt: str) -> bool:
    """Whether the consumer's file (the backend's `.env`) already holds the target's password (a previous
    run wrote it)."""
    info = state.envs.get(consumer.path)
    wanted = dict(target.backend.lines)["REDIS_PASSWORD"]
    return info is not None and info.keys.get("REDIS_PASSWORD") == (salted_sha256(salt, wanted),)


def notice_path(target: Target) -> str:
    return f"{target.state_dir}/{program.NOTICE_NAME}"


def notice(target: Target) -> str:
    """The notice's content: the new password's SHA-256 (as the ACL holds it)."""
    return hashlib.sha256(target.password.reveal().encode()).hexdigest() + "\n"


def told(target: Target, waiting: list[Consumer], state: HostState, salt: str) -> bool:
    """An earlier run kept the old password for this new one and said what to restart (its notice is on
    the host), and the waiting consumers' files already hold the new password: the operator restarted them."""
    given = state.file(notice_path(target))
    return (given.kind == "f" and given.sha == salted_sha256(salt, notice(target))
            and all(file_holds(target, c, state, salt) for c in waiting))


def held_back_warning(waiting: list[Consumer]) -> str:
    """What the summary says when the old password stays valid for consumers without a unit."""
    what = " and ".join(f"{c.what} (reads {c.path})" for c in waiting)
    them = "them" if len(waiting) > 1 else "it"
    return (f"password rotation not finished: the new password is in place, the old one stays valid until "
            f"{what} {'are' if len(waiting) > 1 else 'is'} restarted. Restart {them}, then run rotate.py again "
            f"(before any deploy.py) to drop the old password; with {' and '.join(c.setting for c in waiting)} "
            f"set, rotate.py restarts {them} itself")


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
    entries += clients.password_entries(target)
    entries = [replace(e, flags=tuple(f for f in e.flags if f != "restart")) if isinstance(e, FileEntry) else e
               for e in entries]
    options = {**target.layout_options(), "restart_units": " ".join(units) or None, "drop": 1 if drop else 0}
    yield program.command("rotate", *program.options(**options),
                          stdin=program.bundle(entries, password=target.password.reveal()))


def remote_warning(name: str) -> str:
    """What the summary says for a backend host without a unit that has the new password in its .env."""
    return (f"password rotation not finished: the old password stays valid until the HSI backend on {name} "
            f"(its .env holds the new password) is restarted. Restart it, then run rotate.py again (before any "
            f"deploy.py) to drop the old password; with redis_backend_unit set on {name}, rotate.py restarts it "
            "itself")


@operation()
def drop_after_backends(target: Target, state: HostState, salt: str):
    """
    On a server with backend hosts, after they got the new password: drop the old one when every
    consumer runs with it (else the summary says who must restart), then, for a generated password,
    make the new one the current one in the control machine's store.

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
    waiting = [c for c in password_consumers(target) if not c.unit]
    warnings = [held_back_warning(waiting)] if waiting and not told(target, waiting, state, salt) else []
    told_before = told(target, [], state, salt)  # this password's notice: an earlier run said what to restart
    for name in target.backend_hosts:
        done = backends.backend_rotation(name)
        if done not in ("restarted", "held") or (done == "held" and not told_before):
            warnings.append(remote_warning(name) if done in ("held", "written") else
                            f"password rotation not finished: {name} did not get the new password in this run "
                            "(see its line); the old password stays valid. Run rotate.py again")
    if warnings:
        for warning in warnings:
            report.warn(host.name, warning)
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
    found = password_consumers(new) if old.serves else []
    units = [c.unit for c in found if c.unit]
    waiting = [c for c in found if not c.unit]
    # a server with backend hosts drops the old password only after them (drop_after_backends)
    alone = old.serves and not old.backend_hosts
    drop = alone and (not waiting or told(new, waiting, prepared.state, prepared.salt))
    if alone and not drop:
        report.warn(host.name, held_back_warning(waiting))
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
    backends.backend_ping(name="Backend host: PING its server with the new password", target=new,
                          state=prepared.state, salt=prepared.salt, changes=(moved,))
