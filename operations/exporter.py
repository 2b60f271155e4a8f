"""The distro's redis_exporter (`redis_exporter: true`): installed with the server, configured through the
EnvironmentFile its packaged unit reads, with its own ACL identity (operations/acl.py), enabled and running.

- Install (one call with the server's packages): the package, and before it the EnvironmentFile (root,
  0640), so the package's own first start already listens where it should (127.0.0.1:9121 by default)
  rather than on every interface. dpkg keeps a file it finds in place of its conffile (--force-confold).
- Configure (the `apply` call, after the server serves): the EnvironmentFile root:<exporter user> 0640 and,
  when the server is TLS-only, the exporter's CA (and the client pair under mTLS) in its own directory,
  readable by its user; the unit enabled and started, restarted when one of these files changed (bundle flag
  `units`, option `--after-units`), then given a few seconds to serve its page.
- Verify: the program reads `/metrics` on the host (`--metrics`, one more line in the same read) and the
  host fails unless it says `redis_up 1`.
Rotating the backend's password (rotate.py) touches none of this: the exporter has its own password.
Platforms whose distro packages no exporter (Fedora, EL) refuse the setting before anything changes.
"""

from __future__ import annotations

from .clients import tls_copies
from .hoststate import HostState
from .program import FileEntry
from .render import exporter_env
from .rows import Row
from .settings import Settings
from .target import Target

# Written after the server serves (`after`); a change restarts the exporter (`units`).
FLAGS = ("after", "units")


def unsupported(conf: Settings, row: Row) -> str | None:
    """Why this host cannot have the exporter it asks for, or None."""
    if not conf.exporter or row.exporter_package:
        return None
    return (f"redis_exporter: {row.name} packages no redis_exporter (only Debian and Ubuntu do: "
            "prometheus-redis-exporter); set redis_exporter: false for this host, nothing was changed")


def entries(target: Target) -> list[FileEntry]:
    """Its EnvironmentFile and, TLS-only, its copies of the CA (and under mTLS the client pair)."""
    exporter = target.exporter
    if exporter is None:
        return []
    group = exporter.user
    found = [FileEntry(exporter.env_path, exporter_env(target).encode(), 0o640, "root", group, FLAGS)]
    if exporter.tls_files is not None:  # the directory the deploy creates for them: root:<group> 0750
        found += tls_copies(target.settings.tls, exporter.tls_files, "root", group, (*FLAGS, "owndir"),
                            key_mode=0o640)
    return found


def package_missing(target: Target, state: HostState) -> bool:
    return target.exporter is not None and not state.installed(target.exporter.package)


def pre_install_entries(target: Target, state: HostState) -> list[FileEntry]:
    """Before the package's first start: its EnvironmentFile (root's: the exporter's group does not exist
    yet; the apply call hands it to the group)."""
    if not package_missing(target, state):
        return []
    return [FileEntry(target.exporter.env_path, exporter_env(target).encode(), 0o640)]


def needs_start(target: Target, state: HostState) -> bool:
    """Whether its unit is not enabled and running (the apply call then enables and starts it)."""
    if target.exporter is None:
        return False
    unit = state.unit(target.exporter.service)
    return not (unit.running and unit.enabled == "enabled")


def paths(target: Target) -> list[str]:
    """Every file of the exporter (for the state read)."""
    return [entry.path for entry in entries(target)] if target.exporter is not None else []


def units(target: Target) -> list[str]:
    return [target.exporter.service] if target.exporter is not None else []


def packages(target: Target) -> list[str]:
    return [target.exporter.package] if target.exporter is not None else []
