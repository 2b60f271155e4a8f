"""Local Docker test hosts: what `make demo` creates and provisions.

Each host is a running systemd container reached through `docker exec` (pyinfra's @docker
connector). `HSI_REDIS_DOCKER_HOSTS` (comma-separated container names) overrides the list.
"""

import os

_names = os.environ.get("HSI_REDIS_DOCKER_HOSTS", "hsi-redis-demo-bookworm,hsi-redis-demo-trixie")

docker_hosts = [
    (f"@docker/{name.strip()}", {"redis_size": "small"})
    for name in _names.split(",")
    if name.strip()
]
