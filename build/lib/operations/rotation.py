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
"""

from __future__ import annotations

from dataclasses import replace

from pyinfra import host
from pyinfra.api import operation
from pyinfra.operations import python

from . import clients, configure, credentials, program, report, verify
from .hoststate import HostState, salted_sha256
from .program import FileEntry
from .target import Target, resolve


def new_target(target: Target) -> Target:
    """The Target with the password to rotate TO (generated: the pending one, created on first use)."""
    settings = target.settings
    if settings.password_source.startswith("generated"):
        settings = replace(settings, password=credentials.pending_password(target.name))
    return resolve(settings, target.row, target.admin_password)


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
    entries = [e for e in configure.server_entries(target)
               if e.path in (target.row.config_path, target.backend_auth)]
    entries += clients.password_entries(target, state)
    entries = [replace(e, flags=tuple(f for f in e.flags if f != "restart")) if isinstance(e, FileEntry) else e
               for e in entries]
    options = {**target.layout_options(), "restart_units": " ".join(units) or None, "drop": 1 if drop else 0}
    yield program.command("rotate", *program.options(**options),
                          stdin=program.bundle(entries, password=target.password.reveal()))


def rotate(prepared) -> None:
    """The rotation of one host (the rotate flow, after the prologue)."""
    old = prepared.target
    new = new_target(old)
    report.add_secret(new.password.reveal())
    units, manual = consumers(new)
    drop = not manual or files_hold(new, prepared.state, prepared.salt)
    if not drop:
        report.warn(host.name, "the old password stays valid until these run with the new one: "
                    + "; ".join(manual) + ". Restart them, then run rotate.py again to drop it")
    rotated = rotate_on_host(name="Rotate the backend password (add, rewrite files, restart consumers, drop)",
                             target=new, state=prepared.state, units=tuple(units), drop=drop)
    if drop and new.settings.password_source.startswith("generated"):
        python.call(name="Make the new password the current one in the control machine's store",
                    function=credentials.promote_pending, host_name=old.name)
    verify.server_answers(name="Verify with the new password", target=new, state=prepared.state,
                          salt=prepared.salt, changes=(rotated,))
