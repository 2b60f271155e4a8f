"""The one prologue of every flow (provision, verify, rotate): settings -> state -> Target.

1. Every host's settings validated (the first host to get here validates the whole inventory; a bad
   value anywhere stops the run before any host is touched).
2. One state read per host (`hoststate.HostStateFact`): what the host is and has, and its running server.
   The platform row is not known before the read, so the read covers every row the host could have
   (the flavour setting narrows them): their paths and layouts are few, and one trip is cheaper than two.
3. The platform row and package source chosen from that read (version policy included), then the Target.
A host that cannot go on (unsupported platform, no systemd, below redis_minimum_version) is failed with
the reason, nothing changed there; the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host as current_host
from pyinfra import state as current_state

from . import (acl, clients, configure, credentials, exporter, install, program, report, rows, settings, shell,
               sources)
from .hoststate import HostState, HostStateFact, StateRequest, new_salt
from .target import Target, resolve

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
                                    *exporter.paths(target)]))
        layouts.setdefault(target.layout, None)
        packages.update(dict.fromkeys([*target.row.packages, *exporter.packages(target)]))
        units.update(dict.fromkeys([*configure.units(target), *exporter.units(target)]))
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
        server_only=server_only, metrics=metrics,
        snapshots=conf.snapshot_dir if conf.backup_schedule != "off" else "",
    )


def read_state(conf: settings.Settings, server_only: bool = False) -> tuple[HostState, str]:
    salt = new_salt()
    found = current_host.get_fact(HostStateFact, request=state_request(conf, salt, server_only))
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


def _fail(step: str, problem: str) -> None:
    report.record(current_host.name, status="failed", failed_step=step, problem=problem)
    shell.fail_host(name=f"Check the {step}", message=problem)


def prepare() -> Prepared | None:
    """Settings, the one read, the row and the Target of the current host; None when it cannot go on."""
    conf = settings.load(current_host)  # validates every host first
    run = report.install(current_state)
    run.add_secret(conf.password.reveal())
    for warning in conf.warnings:  # e.g. a certificate that expires soon: printed in the summary
        report.warn(current_host.name, warning)
    admin = admin_password(conf.host_name)
    run.add_secret(admin.reveal())
    if conf.exporter_password is not None:
        run.add_secret(conf.exporter_password.reveal())
    state, salt = read_state(conf)
    if state.errors and not state.os_id:
        _fail("platform", f"the host's state could not be read: {'; '.join(state.errors)}")
        return None
    try:
        row = rows.select(state.os_id, state.os_version, state.os_like, conf.flavour)
    except rows.UnsupportedPlatform as exc:
        _fail("platform", str(exc))
        return None
    if not state.systemd:
        _fail("platform", "systemd is not running on this host (PID 1); the service cannot be managed")
        return None
    package = row.packages[0]
    chosen, problem, warnings = sources.choose(conf, row, state.installed(package), candidate(row, state))
    for warning in warnings:
        report.warn(current_host.name, warning)
    if problem:
        _fail("version policy", problem)
        return None
    unsupported = exporter.unsupported(conf, chosen)
    if unsupported:
        _fail("platform", unsupported)
        return None
    report.record(current_host.name, platform=chosen.name, flavour=chosen.flavour, source=chosen.source)
    config_set = acl.config_set_warning(conf, chosen)
    if config_set:
        report.warn(current_host.name, config_set)
    return Prepared(resolve(conf, chosen, admin), state, salt)
