"""Install the server package from the distro (apt or dnf), quietly and idempotently."""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import apt, dnf

from . import service
from .platform import Platform
from .settings import RedisSettings

# Wait this long for another apt/dnf process to release its lock before failing.
PACKAGE_LOCK_TIMEOUT = 300
APT_CACHE_SECONDS = 3600


@deploy("Install the server")
def install_server(conf: RedisSettings, plat: Platform, identity: dict):
    """Install the package; returns the unit drop-in operation (None where none is needed)."""
    # The package starts its service as soon as it is installed; in a container that start
    # fails unless the unit's sandbox is adjusted first, so the drop-in comes before the package.
    dropin = service.container_dropin(plat, identity)
    if plat.package_manager == "apt":
        apt.packages(
            name=f"Install {', '.join(plat.packages)}",
            packages=list(plat.packages),
            update=True,
            cache_time=APT_CACHE_SECONDS,
            no_recommends=True,
            extra_install_args=f"-q -o DPkg::Lock::Timeout={PACKAGE_LOCK_TIMEOUT}",
        )
    else:
        dnf.packages(
            name=f"Install {', '.join(plat.packages)}",
            packages=list(plat.packages),
            extra_install_args="-q",
        )
    return dropin
