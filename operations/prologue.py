"""The one prologue of every flow (provision, verify, rotate): settings -> state -> Target.

1. Every host's settings validated (the first host to get here validates the whole inventory; a bad
   value anywhere stops the run before any host is touched).
2. One state read per host (`hoststate.HostStateFact`): what the host is and has, and its running server.
   The platform row is not known before the read, so the read covers every row the host could have
   (the flavour setting narrows them): their paths and layouts are few, and one trip is cheaper than two.
3. The platform row and package source chosen from that read (version policy included), then the Target.
A host that cannot go on (unsupported platform, no systemd, below redis_minimum_version) is failed with
the reason, nothing changed there; the others go on.

A backend host (redis_role: backend) runs no server: its read asks only for the backend's files, and its
Target is resolved from its server's settings (address, ports, TLS files, password: the server's secret
store entry, whatever the password's source), without a trip to the server's host.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host as current_host
from pyinfra import state as current_state

from . import (
    acl,
    clients,
    configure,
    credentials,
    exporter,
    firewall,
    install,
    program,
    report,
    rows,
    settings,
    shell,
    sources,
)
from .hoststate import HostState, HostStateFact, StateRequest, new_salt
from .target import Target, resolve, resolve_backend

ADMIN_SECRET = "admin_password"


@dataclass(frozen=True)
class Prepared:
    target: Target
    state: HostState
    salt: str


def admin_password(host_name: str) -> credentials.Secret:
    """The admin identity's password for `host_name` (generated once, kept on the control machine)."""
    return credentials.generated_password(host_name, ADMIN_SECRET)


def candidate_rows(flavour: str) -> list[rows.Row]:
    """Every row (and its upstream variant) a host with this flavour setting could get."""
    found: list[rows.Row] = []
    for by_flavour in rows.TABLE.values():
        for row in by_flavour.values():
            if flavour in ("auto", row.flavour):
                found.append(row)
                upstream = rows.upstream(row)
                if upstream is not None:
                    found.append(upstream)
    return found


def state_request(conf: settings.Settings, salt: str, server_only: bool = False) -> StateRequest:
    """What the read asks for: the union over the candidate rows of what the steps look at."""
    admin = admin_password(conf.host_name)
    targets = [resolve(conf, row, admin) for row in candidate_rows(conf.flavour)]
    files: dict[str, None] = {}
    layouts: dict = {}
    packages: dict[str, None] = {}
    units: dict[str, None] = {}
    modules: dict[str, None] = {}
    for target in targets:
        files.update(dict.fromkeys([*install.paths(target), *configure.paths(target), *clients.paths(target),
                                    *exporter.paths(target), *firewall.paths(target)]))
        layouts.setdefault(target.layout, None)
        packages.update(dict.fromkeys([*target.row.packages, *exporter.packages(target)]))
        units.update(dict.fromkeys([*configure.units(target), *exporter.units(target), *firewall.units(target)]))
        if target.row.module_stream:
            modules.setdefault(target.row.module_stream.split(":")[0], None)
    first = targets[0]  # the clients' files do not depend on the row
    files.setdefault(f"{first.state_dir}/{program.NOTICE_NAME}", None)  # rotate.py's second run
    metrics = next((t.exporter.metrics for t in targets if t.exporter is not None), "")
    ports = tuple(sorted({p for t in targets for p in install.server_ports(t)}))
    return StateRequest(
        salt=salt, layouts=tuple(layouts), files=tuple(files), envs=tuple(clients.envs(first)),
        dirs=tuple(clients.dirs(first)),
        packages=() if server_only else tuple(packages), units=tuple(units),
        modules=() if server_only else tuple(modules), selinux_ports=() if server_only else ports,
        dnf_candidates=bool(conf.minimum_version) and not server_only, kernel=not server_only,
        server_only=server_only, firewall=bool(conf.exposed) and conf.firewall, metrics=metrics,
        snapshots=conf.snapshot_dir if conf.backup_schedule != "off" else "",
    )


def server_of(conf: settings.Settings) -> settings.Settings:
    """The settings of the server a backend host names (validated with the rest of the inventory)."""
    return settings.load_all(current_host.state.inventory)[conf.server]


def backend_request(target: Target, salt: str, server_only: bool = False) -> StateRequest:
    """A backend host's read: its `.env`, CA and client files and their directories; no server part."""
    return StateRequest(salt=salt, files=tuple(clients.paths(target)), envs=tuple(clients.envs(target)),
                        dirs=tuple(clients.dirs(target)), server=False, server_only=server_only)


def read_state(conf: settings.Settings, server_only: bool = False) -> tuple[HostState, str]:
    salt = new_salt()
    if conf.serves:
        request = state_request(conf, salt, server_only)
    else:
        request = backend_request(resolve_backend(conf, server_of(conf)), salt, server_only)
    found = current_host.get_fact(HostStateFact, request=request)
    return (found if isinstance(found, HostState) else HostState(errors=("the state read failed",))), salt


def candidate(row: rows.Row, state: HostState) -> str:
    """The package version dnf/apt would install now, or "" when it says nothing about the row: dnf tells
    the candidate of the module stream enabled now, and a row that enables another stream first
    (EL9: redis:7 over the default 6.2) installs from that one (the table's version counts then)."""
    if row.module_stream:
        module, _, stream = row.module_stream.partition(":")
        if state.modules.get(module) != stream:
            return ""
    return state.candidate(row.packages[0])


def _read(conf: settings.Settings) -> tuple[HostState, str] | None:
    """The host's one read; None when it could not be made (the host failed, saying why)."""
    state, salt = read_state(conf)
    if state.errors and not state.os_id:
        shell.fail_step("platform", f"the host's state could not be read: {'; '.join(state.errors)}")
        return None
    return state, salt


def _prepare_backend(conf: settings.Settings) -> Prepared | None:
    """A backend host: its server's values, then the one read of its files."""
    server = server_of(conf)
    report.add_secret(server.password.reveal())
    report.record(current_host.name, role="backend", server=conf.server)
    read = _read(conf)
    return Prepared(resolve_backend(conf, server), *read) if read else None


def prepare() -> Prepared | None:
    """Settings, the one read, the row and the Target of the current host; None when it cannot go on."""
    conf = settings.load(current_host)  # validates every host first
    run = report.install(current_state)
    run.add_secret(conf.password.reveal())
    for warning in conf.warnings:  # e.g. a certificate that expires soon: printed in the summary
        report.warn(current_host.name, warning)
    if not conf.serves:
        return _prepare_backend(conf)
    admin = admin_password(conf.host_name)
    run.add_secret(admin.reveal())
    if conf.exporter_password is not None:
        run.add_secret(conf.exporter_password.reveal())
    read = _read(conf)
    if read is None:
        return None
    state, salt = read
    try:
        row = rows.select(state.os_id, state.os_version, state.os_like, conf.flavour)
    except rows.UnsupportedPlatform as exc:
        shell.fail_step("platform", str(exc))
        return None
    if not state.systemd:
        shell.fail_step("platform", "systemd is not running on this host (PID 1); the service cannot be managed")
        return None
    package = row.packages[0]
    chosen, problem, warnings = sources.choose(conf, row, state.installed(package), candidate(row, state))
    for warning in warnings:
        report.warn(current_host.name, warning)
    if problem:
        shell.fail_step("version policy", problem)
        return None
    unsupported = exporter.unsupported(conf, chosen)
    if unsupported:
        shell.fail_step("platform", unsupported)
        return None
    report.record(current_host.name, platform=chosen.name, flavour=chosen.flavour, source=chosen.source)
    config_set = acl.config_set_warning(conf, chosen)
    if config_set:
        report.warn(current_host.name, config_set)
    backends = tuple(settings.backends_of(current_host.state.inventory, conf.host_name))
    return Prepared(resolve(conf, chosen, admin, backends), state, salt)
