"""Configure and run the server: every file it reads, and the service, in one call of the host program.

The files (redis.conf, the TLS files, the deploy's own credentials; on real machines the kernel settings)
are rendered here and compared with the state read by salted hash, owner and mode; only those that differ
travel (base64 on stdin). The host program then, on the host: makes sure a running server's data is in an
AOF before its config changes (FACTS.md's RDB-only trap), keeps the config the server runs with as the
last good one, records a pending restart, writes the files, restarts safely (snapshot first, key count
checked, rolled back to the last good config when the server does not answer) only when a file the server
reads changed or an interrupted run left a restart pending, and enables and starts the service. The
clients' files (the backend `.env`, its TLS files, the exporter's) come last, once the server serves; then
the exporter is enabled and running, restarted when its files changed (operations/exporter.py).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from . import clients, exporter, install, program, render, report, schedule
from .hoststate import HostState
from .program import FileEntry
from .target import Target

SYSCTL_FILE = "/etc/sysctl.d/60-hsi-redis.conf"
THP_UNIT = "hsi-redis-thp-off.service"
THP_FILES = ("/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/mm/transparent_hugepage/defrag")
OVERCOMMIT_MEMORY = 1


def server_entries(target: Target) -> list[FileEntry]:
    """What the server reads (a change means a restart), then the deploy's own credentials."""
    row, tls = target.row, target.tls
    entries = [FileEntry(row.config_path, render.redis_conf(target).encode(), 0o640, "root", row.group,
                         ("restart",))]
    if tls is not None:
        settings_tls = target.settings.tls
        entries += [
            FileEntry(tls.ca, settings_tls.ca_pem.encode(), 0o644, flags=("restart",)),
            FileEntry(tls.cert, settings_tls.cert_pem.encode(), 0o644, flags=("restart",)),
            FileEntry(tls.key, settings_tls.key_pem.reveal().encode(), 0o600, row.user, row.group, ("restart",)),
        ]
        if tls.mtls:  # the deploy's own checks present the backend's client certificate
            entries += [FileEntry(tls.cli_cert, settings_tls.client_cert_pem.encode(), 0o600),
                        FileEntry(tls.cli_key, settings_tls.client_key_pem.reveal().encode(), 0o600)]
    entries += [FileEntry(target.cli_auth, target.admin_password.reveal().encode(), 0o600),
                FileEntry(target.backend_auth, target.password.reveal().encode(), 0o600)]
    return entries


def kernel_values(state: HostState) -> dict[str, int]:
    """What the sysctl file sets: somaxconn is raised to the backlog, never lowered."""
    somaxconn = state.kernel.get("net.core.somaxconn", "")
    return {"vm.overcommit_memory": OVERCOMMIT_MEMORY,
            "net.core.somaxconn": max(int(somaxconn) if somaxconn.isdigit() else 0, render.TCP_BACKLOG)}


def kernel_skip_reason(target: Target, state: HostState) -> str | None:
    if not target.settings.kernel_tuning:
        return "kernel tuning off (redis_kernel_tuning=false)"
    if state.in_container:
        return (f"kernel tuning skipped: this host is a {state.container} container (its kernel refuses sysctl); "
                "set vm.overcommit_memory=1, net.core.somaxconn and THP on the machine that runs it")
    return None


def kernel_entries(target: Target, state: HostState) -> tuple[list[FileEntry], bool, tuple[str, ...]]:
    """(files, whether the running kernel needs the sysctl file applied, units to enable)."""
    if kernel_skip_reason(target, state):
        return [], False, ()
    values = kernel_values(state)
    entries = [FileEntry(SYSCTL_FILE, render.sysctl_conf(values).encode(), 0o644)]
    apply_now = any(state.kernel.get(key) != str(value) for key, value in values.items())
    units: tuple[str, ...] = ()
    if not target.row.disable_thp:  # older servers cannot turn THP off for themselves
        entries.append(FileEntry(f"/etc/systemd/system/{THP_UNIT}",
                                 render.thp_unit(target.row.service, THP_FILES).encode(), 0o644, flags=("unit",)))
        unit = state.unit(THP_UNIT)
        if not (unit.running and unit.enabled == "enabled"):
            units = (THP_UNIT,)
    return entries, apply_now, units


def paths(target: Target) -> list[str]:
    """Every file this step may write (for the state read; the same paths as server_entries, without
    rendering what they hold: the read asks for every candidate row)."""
    tls = target.tls
    found = [target.row.config_path]
    if tls is not None:
        found += [tls.ca, tls.cert, tls.key] + ([tls.cli_cert, tls.cli_key] if tls.mtls else [])
    found += [target.cli_auth, target.backend_auth]
    return found + [SYSCTL_FILE, f"/etc/systemd/system/{THP_UNIT}"] + schedule.paths()


def units(target: Target) -> list[str]:
    return [target.row.service, THP_UNIT, schedule.TIMER]


@operation()
def server(target: Target, state: HostState, salt: str):
    """
    Write the files that differ, restart safely when the server's own changed, enable and start it.

    + target: the host's Target
    + state: the host's state read (prologue)
    + salt: the salt of that read

    **Example:**

    .. code:: python

        server(name="Configure and run the server", target=target, state=state, salt=salt)
    """
    if not target.serves or target.verify_only:
        host.noop("no server to configure on this host" if not target.serves else "verify only: nothing changes")
        return
    skip = kernel_skip_reason(target, state)
    if skip:
        report.note(host.name, skip)
    kernel, sysctl_now, thp_units = kernel_entries(target, state)
    entries = [e for e in [*server_entries(target), *kernel, *schedule.entries(target)] if state.differs(salt, e)]
    snapshot_on, snapshot_off = schedule.units_to_change(target, state)
    entries += clients.entries(target, state, salt)
    entries += [e for e in exporter.entries(target) if state.differs(salt, e)]
    unit = state.unit(target.row.service)
    # a changed container drop-in is written by the install step, which leaves a restart pending
    dropin = install.needs_dropin(target, state) and not state.file(install.dropin_path(target)).same(
        salt, render.container_dropin(state.container).encode(), 0o644, "root", "root")
    start = not (unit.running and unit.enabled == "enabled")
    if not (entries or state.restart_pending or dropin or start or sysctl_now or thp_units or snapshot_on
            or snapshot_off or exporter.needs_start(target, state)):
        host.noop(f"{target.row.service} runs with this configuration")
        return
    options = {**target.layout_options(), "enable": start,
               "sysctl": SYSCTL_FILE if sysctl_now else None,
               "enable_units": " ".join((*thp_units, *snapshot_on)) or None,
               "disable_units": " ".join(snapshot_off) or None,
               "after_units": " ".join(exporter.units(target)) or None,
               "metrics": target.exporter.metrics if target.exporter is not None else None}
    yield program.command("apply", *program.options(**options), stdin=program.bundle(entries))
