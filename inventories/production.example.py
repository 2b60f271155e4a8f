"""An SSH fleet, grouped by deployment size (copy to production.py and edit).

    REDIS_PASSWORD=... pyinfra -y inventories/production.py deploy.py   # one password for all
    pyinfra -y inventories/production.py deploy.py                      # or one generated per host

Each group is a list; its name is the group name. Settings shared by a group can also go
in group_data/<group>.py. `_sudo` makes every command run through sudo on the host.

A host is a Redis server and the HSI backend at once by default (`redis_role: both`). Where the
backend runs on another machine, the server gets `redis_role: server` and the backend's machine
`redis_role: backend` with `redis_server` naming the server's inventory host: the deploy writes the
backend's `.env` and TLS files there (and nothing else), and the server's firewall admits that host.
"""

_ssh = {"ssh_user": "deploy", "_sudo": True}

# 1-4 cameras
small = [
    ("nvr-garage.example.net", {**_ssh, "redis_size": "small"}),
]

# 5-8 cameras
medium = [
    ("nvr-office.example.net", {**_ssh, "redis_size": "medium"}),
]

# More than 8 cameras. The backend runs on its own machine (hsi-app), so Redis listens on the LAN too:
# TLS (python -m operations.certs inventories/production.py makes a private CA and the certificates;
# the server's certificate covers redis_backend_host), and the firewall admits only hsi-app and the
# monitoring host.
large = [
    ("nvr-campus.example.net", {
        **_ssh,
        "redis_size": "large",
        "redis_role": "server",
        "redis_bind": ["127.0.0.1", "10.20.0.5"],
        "redis_backend_host": "nvr-campus.example.net",   # the name the backend connects to
        "redis_tls": True,
        "redis_tls_only": True,
        "redis_firewall_allow": ["10.20.0.9"],            # monitoring
    }),
]

backends = [
    ("hsi-app.example.net", {
        **_ssh,
        "redis_role": "backend",
        "redis_server": "nvr-campus.example.net",
        "redis_backend_address": "10.20.0.7",               # as nvr-campus sees it (or set ssh_hostname to it)
        "redis_backend_env_owner": "hsi",
        "redis_backend_unit": "hsi-backend",                # restarted by rotate.py
    }),
]
