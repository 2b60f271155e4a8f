"""Shared steps for the safety tests: a host with a plain distro Redis holding data."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .conftest import Host

# The packaged unit's PrivateUsers=true fails in containers; the deploy fixes that itself,
# but these hosts run the distro's Redis before any deploy.
PLAIN_REDIS = (
    "mkdir -p /etc/systemd/system/redis-server.service.d && "
    "printf '[Service]\\nPrivateUsers=false\\n' > /etc/systemd/system/redis-server.service.d/local.conf && "
    "systemctl daemon-reload && apt-get update -qq && "
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1 && "
    "systemctl restart redis-server"
)


def fill(host: Host, keys: int, password: str | None = None, prefix: str = "hsi:event") -> None:
    """Write `keys` string keys through redis-cli's pipe on the host (password via environment)."""
    env = 'REDISCLI_AUTH="$(cat /tmp/.pw)" ' if password else ""
    if password:
        host.sh("umask 077; cat > /tmp/.pw", stdin=password)
    host.sh(
        f"i=0; while [ $i -lt {keys} ]; do echo \"SET {prefix}:$i v$i\"; i=$((i+1)); done "
        f"| {env}redis-cli --no-auth-warning >/dev/null; rm -f /tmp/.pw"
    )


def plain_redis_hosts(hosts: list[Host]) -> None:
    """Install the distro's Redis on each host in parallel (no deploy yet)."""
    with ThreadPoolExecutor(len(hosts)) as pool:
        list(pool.map(lambda h: h.sh(PLAIN_REDIS), hosts))
