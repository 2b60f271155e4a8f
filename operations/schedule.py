"""Scheduled snapshots on the host (`redis_backup_schedule`): a systemd timer and a oneshot service that
run the installed host program, `/usr/local/sbin/hsi-redis snapshot --into <redis_snapshot_dir> --keep
<redis_snapshot_keep>` (the same snapshot backup.py takes: `redis-cli --rdb` as the admin, checked, with
its manifest, root only).

The deploy's one apply call writes the program file, the service and the timer (the state read compares
them by salted hash, like every managed file) and enables the timer; a converged host costs no extra
trip. Turned off, the timer is stopped and disabled (its files stay, inert). Verification reads the
newest snapshot's age from the same state read and warns when it is older than twice the schedule.
"""

from __future__ import annotations

import re

from pyinfra.api.command import QuoteString

from . import program, render
from .defaults import SCHEDULES
from .hoststate import HostState
from .program import FileEntry
from .target import Target

SERVICE = "hsi-redis-snapshot.service"
TIMER = "hsi-redis-snapshot.timer"
UNIT_DIR = "/etc/systemd/system"
# a fleet's hosts spread over this long after each calendar event (RandomizedDelaySec)
DELAYS = {"hourly": 300, "daily": 1800, "weekly": 3600}
_BARE = re.compile(r"[A-Za-z0-9_./:@=+,-]+")


def exec_arg(value: str) -> str:
    """One ExecStart argument as systemd reads it back: `%` and `$` doubled, quoted when needed."""
    value = value.replace("%", "%%").replace("$", "$$")
    if _BARE.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def enabled(target: Target) -> bool:
    return target.settings.backup_schedule != "off"


def command(target: Target) -> list[str]:
    """What the service runs: the installed program's snapshot verb with the server's layout."""
    settings = target.settings
    options = {**target.layout_options(), "into": settings.snapshot_dir, "keep": settings.snapshot_keep}
    args = [program.INSTALLED_PATH, "snapshot"]
    return args + [str(bit.obj) if isinstance(bit, QuoteString) else bit for bit in program.options(**options)]


def entries(target: Target) -> list[FileEntry]:
    """The program, the service and the timer (none while the schedule is off)."""
    if not enabled(target):
        return []
    schedule, service = target.settings.backup_schedule, target.row.service
    unit = render.render("snapshot.service.j2", service=service, into=target.settings.snapshot_dir,
                         keep=target.settings.snapshot_keep, exec_start=" ".join(map(exec_arg, command(target))))
    timer = render.render("snapshot.timer.j2", schedule=schedule, service=service, delay=DELAYS[schedule])
    return [FileEntry(program.INSTALLED_PATH, program.source().encode(), 0o755),
            FileEntry(f"{UNIT_DIR}/{SERVICE}", unit.encode(), 0o644, flags=("unit",)),
            FileEntry(f"{UNIT_DIR}/{TIMER}", timer.encode(), 0o644, flags=("unit",))]


def paths() -> list[str]:
    """Every file this may write (for the state read, whatever the setting: a change is seen)."""
    return [program.INSTALLED_PATH, f"{UNIT_DIR}/{SERVICE}", f"{UNIT_DIR}/{TIMER}"]


def units_to_change(target: Target, state: HostState) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(units to enable and start, units to stop and disable)."""
    timer = state.unit(TIMER)
    if enabled(target):
        return (() if timer.running and timer.enabled == "enabled" else (TIMER,)), ()
    return (), ((TIMER,) if timer.running or timer.enabled == "enabled" else ())


def age_finding(target: Target, state: HostState) -> tuple[dict, str | None, str | None]:
    """(report fields, warning, note) about the newest scheduled snapshot."""
    if not enabled(target):
        return {}, None, None
    schedule = target.settings.backup_schedule
    found = {"snapshots": state.snapshots, "snapshot_age_seconds": state.snapshot_age}
    if state.snapshot_age is None:
        return found, None, (f"no scheduled snapshot in {target.settings.snapshot_dir} yet (the {schedule} "
                             f"timer takes the first; `systemctl start {SERVICE}` takes one now)")
    if state.snapshot_age > 2 * SCHEDULES[schedule]:
        return found, (f"the newest scheduled snapshot is {_age(state.snapshot_age)} old (schedule: {schedule}); "
                       f"see `systemctl status {SERVICE}` and `journalctl -u {SERVICE}` on the host"), None
    return found, None, None


def _age(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"
