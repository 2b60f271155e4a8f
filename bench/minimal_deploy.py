"""The benchmark's yardstick: a minimal 5-operation Redis deploy that does none of hsi-redis' checks.

    cd bench && REDIS_PASSWORD=... pyinfra -y INVENTORY minimal_deploy.py

Debian hosts only. Run it from bench/ (bench/compare.py does), so the project's config.py, which
hooks the hsi-redis report in, is not loaded. The password comes from `REDIS_PASSWORD`, else the
host's `redis_password` data.

A THROWAWAY COMPARISON DEPLOY, never for real hosts: the password is written into redis.conf by
pyinfra's own `files.template` (which `--diff` would print), there is no validation, no data
safety, no rollback, no ACL. The PING reads the password on the host from the file the template
wrote, into REDISCLI_AUTH, so it is in no process's argv (`_env` would put it in the remote
`sh -c` argv).
"""

import os
from pathlib import Path

from pyinfra import host
from pyinfra.operations import apt, files, server, systemd

password = os.environ.get("REDIS_PASSWORD") or host.data.get("redis_password")
if not password:
    raise SystemExit("minimal_deploy.py: set REDIS_PASSWORD or the host's redis_password")

# name= everywhere: without it pyinfra prints an operation's arguments (the password).
apt.packages(name="Install redis-server", packages=["redis-server"], update=True, cache_time=3600)
conf = files.template(
    name="Write /etc/redis/redis.conf",
    src=str(Path(__file__).resolve().with_name("minimal-redis.conf.j2")),
    dest="/etc/redis/redis.conf",
    user="redis",
    group="redis",
    mode="640",
    password=password,
)
systemd.service(name="redis-server running and enabled", service="redis-server", running=True, enabled=True)
systemd.service(name="Restart redis-server (config changed)", service="redis-server", restarted=True,
                _if=conf.did_change)
server.shell(
    name="PING with the password",
    commands=[
        'auth="$(awk \'$1 == "requirepass" { print $2 }\' /etc/redis/redis.conf)" && '
        'test "$(REDISCLI_AUTH="$auth" redis-cli ping)" = PONG'
    ],
)
