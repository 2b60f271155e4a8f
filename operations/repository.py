"""The contents of packages.redis.io's repository files (key, repository, pin), per package manager.

apt: the key goes to /etc/apt/keyrings (armored `.asc`, which `signed-by` accepts), a deb822
sources file names it in `Signed-By`, and an apt preferences file gives the pinned upstream
series priority 1001 and the distro's own redis packages priority -1, so neither a newer
distro package nor a fallback can replace upstream's.

dnf: the key goes to /etc/pki/rpm-gpg, the `.repo` file enables `gpgcheck` with it, takes
`priority=1` (dnf then ignores other repositories' packages of the same name) and
`module_hotfixes=1` (EL8's redis module would otherwise hide upstream's package); the
series is pinned in the install spec (`redis-7.4.*`).

The install step (operations/install.py) writes these before the package and compares the installed
version with the pinned series, so a distro package already on the host is replaced once, and later
runs change nothing.
"""

from __future__ import annotations

from .rows import UPSTREAM_APT_URL, UPSTREAM_RPM_URL, Row

APT_KEY_PATH = "/etc/apt/keyrings/redis-archive-keyring.asc"
APT_SOURCES_PATH = "/etc/apt/sources.list.d/hsi-redis-upstream.sources"
APT_PIN_PATH = "/etc/apt/preferences.d/hsi-redis-upstream"
RPM_KEY_PATH = "/etc/pki/rpm-gpg/RPM-GPG-KEY-redis-upstream"
RPM_REPO_PATH = "/etc/yum.repos.d/hsi-redis-upstream.repo"
# Every binary package upstream builds from its redis source.
UPSTREAM_APT_PACKAGES = ("redis", "redis-server", "redis-tools", "redis-sentinel")
# packages.redis.io's debs carry epoch 6 (the distros' carry 5).
UPSTREAM_APT_EPOCH = 6
HEADER = "# Managed by hsi-redis (redis_source=upstream): changes made here are replaced on the next run.\n"


def apt_version_glob(series: str) -> str:
    """apt `Pin: version` glob for a series ("7.4" -> "6:7.4.*") or an exact version ("7.4.2")."""
    tail = ".*" if series.count(".") == 1 else "-*"
    return f"{UPSTREAM_APT_EPOCH}:{series}{tail}"


def apt_sources(plat: Row) -> str:
    return HEADER + (
        "Types: deb\n"
        f"URIs: {UPSTREAM_APT_URL}\n"
        f"Suites: {plat.codename}\n"
        "Components: main\n"
        f"Signed-By: {APT_KEY_PATH}\n"
    )


def apt_pin(plat: Row, series: str) -> str:
    packages = " ".join(UPSTREAM_APT_PACKAGES)
    return HEADER + (
        f"Package: {packages}\n"
        f"Pin: version {apt_version_glob(series)}\n"
        "Pin-Priority: 1001\n"
        "\n"
        f"Package: {packages}\n"
        f"Pin: release o={plat.apt_origin}\n"
        "Pin-Priority: -1\n"
    )


def rpm_repo(plat: Row) -> str:
    return HEADER + (
        "[hsi-redis-upstream]\n"
        "name=Redis (packages.redis.io)\n"
        f"baseurl={UPSTREAM_RPM_URL}/{plat.upstream_rpm_dir}\n"
        "enabled=1\n"
        "gpgcheck=1\n"
        f"gpgkey=file://{RPM_KEY_PATH}\n"
        "priority=1\n"
        "module_hotfixes=1\n"
    )


def rpm_spec(series: str) -> str:
    """dnf install spec for the pinned series ("7.4" -> "redis-7.4.*", "7.4.2" -> "redis-7.4.2-*")."""
    return f"redis-{series}.*" if series.count(".") == 1 else f"redis-{series}-*"
