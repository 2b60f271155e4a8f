"""Install the server package: decided from the one state read, done in one call of the host program.

Before the package: the container drop-in (the package starts its service as soon as it is installed,
and in Docker/LXC that start fails with 217/USER unless `PrivateUsers=false` is set first) and, for the
upstream source, packages.redis.io's key, repository and pin. Then the package (apt: lists refreshed when
older than an hour, a held lock waited out; dnf: the module stream first) -- with the distro's
redis_exporter in the same call when `redis_exporter` asks for it (operations/exporter.py) -- then SELinux
port labels. Nothing of this runs when the state read shows it done.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from . import exporter, firewall, program, render, repository, sources
from .hoststate import HostState
from .program import FileEntry
from .target import Target

# Wait this long for another apt/dnf process to release its lock before failing.
PACKAGE_LOCK_TIMEOUT = 300
APT_CACHE_SECONDS = 3600


def dropin_path(target: Target) -> str:
    return f"/etc/systemd/system/{target.row.service}.service.d/hsi-redis.conf"


def needs_dropin(target: Target, state: HostState) -> bool:
    """The packaged unit's PrivateUsers=true fails in containers (status 217/USER)."""
    return target.row.private_users and state.in_container


def _repo_entries(target: Target) -> list[FileEntry]:
    row, conf = target.row, target.settings
    if row.source != "upstream":
        return []
    key = conf.upstream_key.encode()
    if row.package_manager == "apt":
        return [
            FileEntry(repository.APT_KEY_PATH, key, 0o644, flags=("repo",)),
            FileEntry(repository.APT_SOURCES_PATH, repository.apt_sources(row).encode(), 0o644, flags=("repo",)),
            FileEntry(repository.APT_PIN_PATH, repository.apt_pin(row, conf.upstream_version).encode(), 0o644,
                      flags=("repo",)),
        ]
    return [FileEntry(repository.RPM_KEY_PATH, key, 0o644, flags=("repo",)),
            FileEntry(repository.RPM_REPO_PATH, repository.rpm_repo(row).encode(), 0o644, flags=("repo",))]


def pre_install_entries(target: Target, state: HostState) -> list[FileEntry]:
    """Files that must be in place before the package: the container drop-in, the upstream repository."""
    entries = _repo_entries(target) + exporter.pre_install_entries(target, state)
    if needs_dropin(target, state):
        entries.insert(0, FileEntry(dropin_path(target), render.container_dropin(state.container).encode(), 0o644,
                                    flags=("unit", "restart")))
    return entries


def paths(target: Target) -> list[str]:
    """Every file this step may write (for the state read)."""
    paths = [dropin_path(target)] if target.row.private_users else []
    paths += [target.exporter.env_path] if target.exporter is not None else []
    if target.row.source == "upstream":
        paths += [repository.APT_KEY_PATH, repository.APT_SOURCES_PATH, repository.APT_PIN_PATH,
                  repository.RPM_KEY_PATH, repository.RPM_REPO_PATH]
    return paths


def server_ports(target: Target) -> tuple[int, ...]:
    """The TCP ports the server listens on (SELinux labels them): the plain port and the TLS port."""
    ports = [target.plain_port] if target.plain_port else []
    if target.tls is not None and target.tls.port not in ports:
        ports.append(target.tls.port)
    return tuple(ports)


def package_missing(target: Target, state: HostState) -> bool:
    row = target.row
    if any(not state.installed(p) for p in row.packages):
        return True
    return row.source == "upstream" and not sources.matches_series(state.installed(row.packages[0]),
                                                                   target.settings.upstream_version)


def unlabelled_ports(target: Target, state: HostState) -> tuple[int, ...]:
    if state.selinux not in ("Enforcing", "Permissive"):
        return ()
    return tuple(p for p in server_ports(target) if state.selinux_ports.get(p) != target.row.selinux_port_type)


@operation()
def server_package(target: Target, state: HostState, salt: str):
    """
    Write the pre-install files that differ, install the server package, label its SELinux ports.

    + target: the host's Target
    + state: the host's state read (prologue)
    + salt: the salt of that read

    **Example:**

    .. code:: python

        server_package(name="Install the server", target=target, state=state, salt=salt)
    """
    if not target.serves or target.verify_only:
        host.noop("nothing to install on this host")
        return
    entries = [e for e in pre_install_entries(target, state) if state.differs(salt, e)]
    row = target.row
    module = row.module_stream.split(":")[0] if row.module_stream else ""
    stream_missing = bool(module) and state.modules.get(module) != row.module_stream.partition(":")[2]
    missing = package_missing(target, state)
    wanted = [*row.packages] if missing else []
    wanted += exporter.packages(target) if exporter.package_missing(target, state) else []
    # the firewall step's nft, when its rules are due and the host has none
    wanted += [firewall.PACKAGE] if firewall.needs_package(target, state) else []
    ports = unlabelled_ports(target, state)
    if not (entries or wanted or ports or stream_missing):
        host.noop(f"{' '.join(row.packages + tuple(exporter.packages(target)))} installed, nothing to prepare")
        return
    options = {**target.layout_options(), "pm": row.package_manager,
               "packages": " ".join(wanted) or None, "lock_timeout": PACKAGE_LOCK_TIMEOUT}
    if row.package_manager == "apt":
        options.update(update_max_age=APT_CACHE_SECONDS, apt_pinned=row.source == "upstream")
    else:
        # the stream only when the read found another (or none) enabled: `dnf module list` costs seconds
        options.update(module_stream=row.module_stream if stream_missing else None,
                       dnf_spec=repository.rpm_spec(target.settings.upstream_version)
                       if row.source == "upstream" and missing else None)
    if ports:
        options.update(selinux_ports=" ".join(map(str, ports)), selinux_type=row.selinux_port_type,
                       selinux_tools=" ".join(row.selinux_tools))
    yield program.command("install", *program.options(**options), stdin=program.bundle(entries))
