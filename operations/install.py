"""Install the server package, quietly and idempotently: from the distro (apt or dnf, with a
dnf module stream where the row names one) or from packages.redis.io (see `repository`),
then label its ports on SELinux hosts."""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import apt, dnf

from . import repository, selinux, service
from .packages import apt_update
from .platform import Platform
from .settings import RedisSettings

# Wait this long for another apt/dnf process to release its lock before failing.
PACKAGE_LOCK_TIMEOUT = 300
APT_CACHE_SECONDS = 3600


@deploy("Install the server")
def install_server(conf: RedisSettings, plat: Platform, identity: dict, packages: dict | None = None):
    """Install the package; returns the unit drop-in operation (None where none is needed).

    `packages` is the `versions.PackageState` read before any change (SELinux mode).
    """
    # The package starts its service as soon as it is installed; in a container that start
    # fails unless the unit's sandbox is adjusted first, so the drop-in comes before the package.
    dropin = service.container_dropin(plat, identity)
    if plat.module_stream:
        repository.module_stream(name=f"Enable the dnf module stream {plat.module_stream}",
                                 stream=plat.module_stream)
    if plat.source == "upstream":
        repository.upstream_repository(conf, plat, APT_CACHE_SECONDS)
        repository.pinned_packages(
            name=f"Install {', '.join(plat.packages)} {conf.upstream_version} from packages.redis.io",
            plat=plat, series=conf.upstream_version, lock_timeout=PACKAGE_LOCK_TIMEOUT,
        )
    elif plat.package_manager == "apt":
        # Our own update: `apt-get update` does not wait for a held lock by itself.
        apt_update(name="Update apt lists (waits for a held apt lock)", cache_time=APT_CACHE_SECONDS,
                   lock_timeout=PACKAGE_LOCK_TIMEOUT)
        apt.packages(
            name=f"Install {', '.join(plat.packages)}",
            packages=list(plat.packages),
            no_recommends=True,
            extra_install_args=f"-q -o DPkg::Lock::Timeout={PACKAGE_LOCK_TIMEOUT}",
        )
    else:
        dnf.packages(
            name=f"Install {', '.join(plat.packages)}",
            packages=list(plat.packages),
            # dnf waits for its lock by itself (it prints "Waiting for process ... to finish").
            extra_install_args="-q",
        )
    selinux.label_server_ports(conf, plat, (packages or {}).get("selinux", "Disabled"))
    return dropin
