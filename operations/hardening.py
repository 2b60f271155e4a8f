"""Host hardening for Redis: overcommit, the accept queue, Transparent Huge Pages.

On a real machine (never inside a container, whose kernel refuses sysctl writes):

- `vm.overcommit_memory = 1` and `net.core.somaxconn >= tcp-backlog` in a sysctl.d file
  (persistent across reboots) and applied to the running kernel when it differs;
- THP off for the server: Redis 6.2+ and Valkey do it for their own process
  (`disable-thp yes` in redis.conf, `Platform.disable_thp`); for older servers a oneshot
  unit sets it to `never` at boot, before the server starts.

Inside a container the step is skipped with a note in the summary: tune the machine it runs on.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, deploy, operation
from pyinfra.operations import systemd

from . import report
from .configure import render
from .facts import _key_values
from .managed_files import managed_file
from .platform import Platform
from .settings import RedisSettings

SYSCTL_FILE = "/etc/sysctl.d/60-hsi-redis.conf"
THP_UNIT = "hsi-redis-thp-off.service"
THP_FILES = ("/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/mm/transparent_hugepage/defrag")
TCP_BACKLOG = 511  # tcp-backlog in templates/redis.conf.j2
OVERCOMMIT_MEMORY = 1


class KernelState(FactBase):
    """The kernel values Redis cares about, as the running kernel has them.

    Returns ``{"vm.overcommit_memory": "0", "net.core.somaxconn": "4096", "thp": "madvise"}``
    (an entry is missing when the kernel does not have it).
    """

    def command(self) -> str:
        return (
            "for k in vm.overcommit_memory net.core.somaxconn; do "
            'f=/proc/sys/$(echo "$k" | tr . /); [ -r "$f" ] && echo "$k=$(cat "$f")"; done; '
            f"[ -r {THP_FILES[0]} ] && sed -n 's/.*\\[\\(.*\\)\\].*/thp=\\1/p' {THP_FILES[0]}; true"
        )

    def process(self, output):
        return _key_values(output)


def wanted_sysctls(current: dict) -> dict[str, int]:
    """What the sysctl file sets: somaxconn is raised to the backlog, never lowered."""
    somaxconn = current.get("net.core.somaxconn", "")
    return {
        "vm.overcommit_memory": OVERCOMMIT_MEMORY,
        "net.core.somaxconn": max(int(somaxconn) if somaxconn.isdigit() else 0, TCP_BACKLOG),
    }


@operation()
def sysctls_applied(path: str, values: dict[str, int]):
    """
    Load a sysctl.d file into the running kernel when any of its values differ there.

    + path: the sysctl.d file (already written)
    + values: ``{"vm.overcommit_memory": 1, ...}`` the file sets

    **Example:**

    .. code:: python

        sysctls_applied(name="Apply kernel settings", path="/etc/sysctl.d/60-hsi-redis.conf",
                        values={"vm.overcommit_memory": 1})
    """
    current = host.get_fact(KernelState)
    if any(current.get(key) != str(value) for key, value in values.items()):
        yield StringCommand("sysctl", "-q", "-p", shlex.quote(path))


def _skip_reason(conf: RedisSettings, identity: dict) -> str | None:
    if not conf.kernel_tuning:
        return "kernel tuning off (redis_kernel_tuning=false)"
    container = identity.get("container", "none") or "none"
    if container != "none":
        return (f"kernel tuning skipped: this host is a {container} container (its kernel refuses sysctl); "
                "set vm.overcommit_memory=1, net.core.somaxconn and THP on the machine that runs it")
    return None


@deploy("Harden the host")
def harden_host(conf: RedisSettings, plat: Platform, identity: dict):
    """Kernel settings for Redis, persistent and applied; returns the THP unit op (or None)."""
    reason = _skip_reason(conf, identity)
    if reason:
        report.note(host.name, reason)
        return None
    values = wanted_sysctls(host.get_fact(KernelState))
    managed_file(
        name=f"Write {SYSCTL_FILE}",
        path=SYSCTL_FILE,
        content=render("sysctl-hsi-redis.conf.j2", overcommit_memory=values["vm.overcommit_memory"],
                       somaxconn=values["net.core.somaxconn"], tcp_backlog=TCP_BACKLOG),
        user="root", group="root", mode=0o644,
    )
    sysctls_applied(name="Apply the kernel settings", path=SYSCTL_FILE, values=values)
    if plat.disable_thp:
        return None  # `disable-thp yes` in redis.conf
    unit = managed_file(
        name=f"Write /etc/systemd/system/{THP_UNIT}",
        path=f"/etc/systemd/system/{THP_UNIT}",
        content=render("thp-off.service.j2", service=plat.service, thp_files=" ".join(THP_FILES)),
        user="root", group="root", mode=0o644,
    )
    systemd.daemon_reload(name="Reload systemd units (THP unit)", _if=unit.did_change)
    systemd.service(name=f"Turn THP off ({THP_UNIT})", service=THP_UNIT, running=True, enabled=True)
    return unit
