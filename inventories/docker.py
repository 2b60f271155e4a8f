"""Local Docker test hosts: what `make demo` creates and provisions.

Each host is a running systemd container reached through `docker exec` (pyinfra's @docker
connector). `HSI_REDIS_DOCKER_HOSTS` (comma-separated container names) overrides the list.

A STOPPED container is left out (with a warning): given one, @docker starts it, and at the
end of the run commits it to an image and removes it (`docker rm -f`). Start it first.
"""

import os
import subprocess
import sys

_names = os.environ.get("HSI_REDIS_DOCKER_HOSTS", "hsi-redis-demo-bookworm,hsi-redis-demo-trixie")


def _stopped(name: str) -> bool:
    """True for a container that exists but is not running (unknown names fail to connect instead)."""
    result = subprocess.run(["docker", "container", "inspect", "-f", "{{.State.Running}}", name],
                            capture_output=True, text=True, check=False)
    return result.returncode == 0 and result.stdout.strip() == "false"


docker_hosts = []
for _name in (n.strip() for n in _names.split(",")):
    if not _name:
        continue
    if _stopped(_name):
        print(f"hsi-redis: skipping {_name}: the container is stopped, and @docker would start it, then "
              "commit and remove it at the end of the run; start it first (docker start)", file=sys.stderr)
        continue
    docker_hosts.append((f"@docker/{_name}", {"redis_size": "small"}))
