"""Package repositories: packages.redis.io (key, repository, pin) and dnf module streams.

apt: the key goes to /etc/apt/keyrings (armored `.asc`, which `signed-by` accepts), a deb822
sources file names it in `Signed-By`, and an apt preferences file gives the pinned upstream
series priority 1001 and the distro's own redis packages priority -1, so neither a newer
distro package nor a fallback can replace upstream's.

dnf: the key goes to /etc/pki/rpm-gpg, the `.repo` file enables `gpgcheck` with it, takes
`priority=1` (dnf then ignores other repositories' packages of the same name) and
`module_hotfixes=1` (EL8's redis module would otherwise hide upstream's package); the
series is pinned in the install spec (`redis-7.4.*`).

Both paths install through `pinned_packages`, which compares the installed version with the
pinned series at execution time, so a distro package already on the host is replaced once,
and later runs change nothing.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation
from pyinfra.operations import apt
from pyinfra.operations.util import any_changed

from .managed_files import managed_file
from .platform import UPSTREAM_APT_URL, UPSTREAM_RPM_URL, Platform
from .sources import matches_series
from .versions import PackageState

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


def apt_sources(plat: Platform) -> str:
    return HEADER + (
        "Types: deb\n"
        f"URIs: {UPSTREAM_APT_URL}\n"
        f"Suites: {plat.codename}\n"
        "Components: main\n"
        f"Signed-By: {APT_KEY_PATH}\n"
    )


def apt_pin(plat: Platform, series: str) -> str:
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


def rpm_repo(plat: Platform) -> str:
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


def install_command(plat: Platform, series: str, lock_timeout: int) -> StringCommand:
    if plat.package_manager == "apt":
        # Keep our redis.conf when the package's conffile changes (dpkg would ask, with no one to answer).
        return StringCommand(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends",
            '-o Dpkg::Options::="--force-confdef" -o Dpkg::Options::="--force-confold"',
            f"-o DPkg::Lock::Timeout={int(lock_timeout)}",
            *(shlex.quote(p) for p in plat.packages),
        )
    return StringCommand("dnf install -y -q", shlex.quote(rpm_spec(series)))


@operation()
def pinned_packages(plat: Platform, series: str, lock_timeout: int = 300):
    """
    Install the server from the upstream repository at the pinned series (replacing another version).

    + plat: the host's (upstream) platform row
    + series: the pinned release series, e.g. ``"7.4"``, or an exact version ``"7.4.2"``
    + lock_timeout: seconds to wait for another package manager to finish

    **Example:**

    .. code:: python

        pinned_packages(name="Install Redis 7.4 from packages.redis.io", plat=plat, series="7.4")
    """
    state = host.get_fact(PackageState, package_manager=plat.package_manager, package=plat.packages[0])
    if state["installed"] and matches_series(state["installed"], series):
        host.noop(f"{plat.packages[0]} {state['installed']} is in the pinned series {series}")
        return
    yield install_command(plat, series, lock_timeout)


def upstream_repository(conf, plat: Platform, apt_cache_seconds: int):
    """Key, repository and pin for packages.redis.io; refreshes apt's lists when they change."""
    key = conf.upstream_key
    if plat.package_manager == "apt":
        written = [
            managed_file(
                name=f"Write {APT_KEY_PATH} (packages.redis.io key {conf.upstream_key_fingerprint})",
                path=APT_KEY_PATH,
                content=key,
                mode=0o644,
            ),
            managed_file(
                name=f"Write {APT_SOURCES_PATH}", path=APT_SOURCES_PATH, content=apt_sources(plat), mode=0o644
            ),
            managed_file(
                name=f"Write {APT_PIN_PATH} (Redis {conf.upstream_version} from upstream only)",
                path=APT_PIN_PATH,
                content=apt_pin(plat, conf.upstream_version),
                mode=0o644,
            ),
        ]
        changed = any_changed(*written)
        apt.update(name="Fetch package lists (the upstream repository changed)", _if=changed)
        apt.update(
            name="Fetch package lists (if older than an hour)",
            cache_time=apt_cache_seconds,
            _if=lambda: not changed(),
        )
        return
    managed_file(
        name=f"Write {RPM_KEY_PATH} (packages.redis.io key {conf.upstream_key_fingerprint})",
        path=RPM_KEY_PATH,
        content=key,
        mode=0o644,
    )
    managed_file(name=f"Write {RPM_REPO_PATH}", path=RPM_REPO_PATH, content=rpm_repo(plat), mode=0o644)


class EnabledModuleStream(FactBase):
    """The enabled stream of a dnf module ("" when none is enabled). Never fails the host."""

    def command(self, module: str) -> str:
        quoted = shlex.quote(module)
        return (
            f"dnf -q module list --enabled {quoted} 2>/dev/null "
            f"| awk -v m={quoted} '$1 == m {{print $2; exit}}'; true"
        )

    def process(self, output):
        return output[0].strip() if output else ""


@operation()
def module_stream(stream: str):
    """
    Enable a dnf module stream (EL8/EL9), once; another enabled stream of the module is reset.

    Packages already installed from the other stream stay as they are (the version policy
    sees their version); dnf would not upgrade them across streams on its own.

    + stream: ``module:stream``, e.g. ``"redis:7"``

    **Example:**

    .. code:: python

        module_stream(name="Enable redis:7", stream="redis:7")
    """
    module, _, wanted = stream.partition(":")
    enabled = host.get_fact(EnabledModuleStream, module=module)
    if enabled == wanted:
        host.noop(f"dnf module stream {stream} is already enabled")
        return
    if enabled:  # dnf refuses to enable a second stream of a module: reset the other one first
        yield StringCommand("dnf module reset -y -q", shlex.quote(module))
    yield StringCommand("dnf module enable -y -q", shlex.quote(stream))
