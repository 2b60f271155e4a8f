"""One table of what differs between platforms (rows). Steps read fields, never branch on distros.

A row describes one server flavour (Redis or Valkey) as one distro release packages it.
`select()` picks the row for a host from its /etc/os-release and the `redis_flavour`
setting; adding a distro means adding rows here and fact fixtures in tests/commands.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


class UnsupportedPlatform(Exception):
    pass


@dataclass(frozen=True)
class Row:
    name: str                 # e.g. "debian-12", for reports
    flavour: str              # "redis" | "valkey"
    package_manager: str      # "apt" | "dnf"
    packages: tuple[str, ...]
    service: str
    config_path: str
    user: str
    group: str
    data_dir: str
    log_file: str
    pid_file: str
    cli: str
    distro_version: str       # the server version the distro ships (informative; the host tells the truth)
    # The packaged unit sets PrivateUsers=true, which fails in Docker/LXC containers (217/USER).
    private_users: bool = True
    # `bind 127.0.0.1 -::1`: the "-" (skip a missing address) needs Redis 7.0+ / Valkey.
    optional_bind: bool = True
    # dnf module stream to enable first (EL8/EL9), or "".
    module_stream: str = ""
    # TLS files directory; "" = the config directory (EL8 keeps redis.conf directly in /etc).
    tls_path: str = ""
    # Where the packages come from: "distro" or "upstream" (packages.redis.io, see `upstream()`).
    source: str = "distro"
    # apt: the release codename (upstream suite) and the archive's Origin (pinned down for upstream).
    codename: str = ""
    apt_origin: str = ""
    # dnf: packages.redis.io's directory for this release ("" = upstream has none).
    upstream_rpm_dir: str = ""
    # SELinux: the type a port must carry for the server to bind it, and what provides semanage.
    selinux_port_type: str = "redis_port_t"
    selinux_tools: tuple[str, ...] = ("policycoreutils-python-utils",)
    # The server turns THP off for itself (`disable-thp`, Redis 6.2+ / Valkey); else a unit does.
    disable_thp: bool = True
    # ACL syntax: pub/sub channel rules (`&*`, Redis 6.2+) and denying one subcommand
    # (`-config|rewrite`, Redis 7.0+; older servers need the whole command denied and
    # the allowed subcommands added back).
    acl_channels: bool = True
    acl_deny_subcommands: bool = True
    # The distro's redis_exporter (`redis_exporter: true`): package, its unit, the EnvironmentFile the
    # unit reads, the user it runs as (group of the same name). "" = the distro ships none.
    exporter_package: str = ""
    exporter_service: str = ""
    exporter_env: str = ""
    exporter_user: str = ""

    @property
    def config_dir(self) -> str:
        return self.config_path.rsplit("/", 1)[0]

    @property
    def dropin_path(self) -> str:
        return f"/etc/systemd/system/{self.service}.service.d/hsi-redis.conf"


_DEBIAN_REDIS = Row(
    name="debian", flavour="redis", package_manager="apt",
    packages=("redis-server", "redis-tools"), service="redis-server",
    config_path="/etc/redis/redis.conf", user="redis", group="redis",
    data_dir="/var/lib/redis", log_file="/var/log/redis/redis-server.log",
    pid_file="/run/redis/redis-server.pid", cli="redis-cli", distro_version="", apt_origin="Debian",
    # Debian 12: 1.45, Debian 13: 1.69 (Ubuntu's universe carries the same packaging)
    exporter_package="prometheus-redis-exporter", exporter_service="prometheus-redis-exporter",
    exporter_env="/etc/default/prometheus-redis-exporter", exporter_user="prometheus",
)
_UBUNTU_REDIS = replace(_DEBIAN_REDIS, apt_origin="Ubuntu")
_DEBIAN_VALKEY = replace(
    _DEBIAN_REDIS, flavour="valkey", packages=("valkey-server", "valkey-tools"),
    service="valkey-server", config_path="/etc/valkey/valkey.conf", user="valkey", group="valkey",
    data_dir="/var/lib/valkey", log_file="/var/log/valkey/valkey-server.log",
    pid_file="/run/valkey/valkey-server.pid", cli="valkey-cli",
)
# Fedora and EL (EPEL included) package no redis_exporter: `redis_exporter: true` is refused there.
_RPM_REDIS = Row(
    name="rpm", flavour="redis", package_manager="dnf", packages=("redis",), service="redis",
    config_path="/etc/redis/redis.conf", user="redis", group="redis", data_dir="/var/lib/redis",
    log_file="/var/log/redis/redis.log", pid_file="/run/redis/redis.pid", cli="redis-cli",
    distro_version="", private_users=False,
)
_RPM_VALKEY = replace(
    _RPM_REDIS, flavour="valkey", packages=("valkey",), service="valkey",
    config_path="/etc/valkey/valkey.conf", user="valkey", group="valkey", data_dir="/var/lib/valkey",
    log_file="/var/log/valkey/valkey.log", pid_file="/run/valkey/valkey.pid", cli="valkey-cli",
)


def _row(base: Row, name: str, version: str, **changes) -> Row:
    return replace(base, name=name, distro_version=version, **changes)


# (os family, major version) -> {flavour: row}. "debian"/"ubuntu"/"fedora"/"el" families.
TABLE: dict[tuple[str, str], dict[str, Row]] = {
    ("debian", "12"): {"redis": _row(_DEBIAN_REDIS, "debian-12", "7.0.15", codename="bookworm")},
    ("debian", "13"): {
        "redis": _row(_DEBIAN_REDIS, "debian-13", "8.0.2", codename="trixie"),
        "valkey": _row(_DEBIAN_VALKEY, "debian-13", "8.1.1", codename="trixie"),
    },
    ("ubuntu", "22.04"): {"redis": _row(_UBUNTU_REDIS, "ubuntu-22.04", "6.0.16", optional_bind=False,
                                        codename="jammy", disable_thp=False, acl_channels=False,
                                        acl_deny_subcommands=False)},
    ("ubuntu", "24.04"): {"redis": _row(_UBUNTU_REDIS, "ubuntu-24.04", "7.0.15", codename="noble")},
    ("fedora", "40"): {"redis": _row(_RPM_REDIS, "fedora-40", "7.2"), "valkey": _row(_RPM_VALKEY, "fedora-40", "7.2")},
    ("fedora", "41+"): {"valkey": _row(_RPM_VALKEY, "fedora-41+", "8.0")},
    ("el", "8"): {"redis": _row(_RPM_REDIS, "el-8", "6.2", config_path="/etc/redis.conf", optional_bind=False,
                                module_stream="redis:6", upstream_rpm_dir="rockylinux8", tls_path="/etc/redis",
                                acl_deny_subcommands=False)},
    ("el", "9"): {"redis": _row(_RPM_REDIS, "el-9", "7.2", module_stream="redis:7",
                                upstream_rpm_dir="rockylinux9")},
    ("el", "10"): {"valkey": _row(_RPM_VALKEY, "el-10", "8.0")},
}

# packages.redis.io: one signing key for apt and rpm; its packages carry epoch 6.
UPSTREAM_APT_URL = "https://packages.redis.io/deb"
UPSTREAM_RPM_URL = "https://packages.redis.io/rpm"


def upstream(row: Row) -> Row | None:
    """The row for installing Redis from packages.redis.io on `row`'s release, or None.

    Upstream ships Redis only (no Valkey), apt packages for the Debian/Ubuntu releases it
    builds for, and rpms for EL8/EL9 (Rocky/Alma builds). Its units have no PrivateUsers,
    and no module stream is enabled (its repository is exempt from modular filtering).
    The rpm layout is assumed to match the EL9 package (/etc/redis/redis.conf, service
    `redis`): checked at command level only, no rpm host is reachable here.
    """
    if row.flavour != "redis":
        return None
    if row.package_manager == "apt" and row.codename:
        return replace(row, source="upstream", packages=("redis-server", "redis-tools"), private_users=False,
                       optional_bind=True)
    if row.package_manager == "dnf" and row.upstream_rpm_dir:
        return replace(row, source="upstream", packages=("redis",), module_stream="",
                       config_path="/etc/redis/redis.conf", optional_bind=True)
    return None


_EL_IDS = ("rhel", "rocky", "almalinux", "centos", "ol")


def family_and_release(os_id: str, version_id: str, id_like: str = "") -> tuple[str, str]:
    """Map /etc/os-release ID and VERSION_ID to a TABLE key."""
    os_id = os_id.lower()
    major = version_id.split(".")[0]
    if os_id == "debian":
        return "debian", major
    if os_id == "ubuntu":
        return "ubuntu", version_id
    if os_id == "fedora":
        return "fedora", major if major.isdigit() and int(major) <= 40 else "41+"
    if os_id in _EL_IDS or "rhel" in id_like.split():
        return "el", major
    return os_id, version_id


def select(os_id: str, version_id: str, id_like: str, flavour: str) -> Row:
    """The row for a host. `flavour` "auto" takes Redis where the distro ships it, else Valkey."""
    key = family_and_release(os_id, version_id, id_like)
    rows = TABLE.get(key)
    if rows is None:
        supported = ", ".join(f"{f} {r}" for f, r in TABLE)
        raise UnsupportedPlatform(f"{os_id} {version_id} is not supported (supported: {supported})")
    if flavour == "auto":
        return rows.get("redis") or rows["valkey"]
    if flavour not in rows:
        raise UnsupportedPlatform(
            f"{os_id} {version_id} does not package {flavour} (it has: {', '.join(rows)})"
        )
    return rows[flavour]
