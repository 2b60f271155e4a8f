"""An SSH fleet, grouped by deployment size (copy to production.py and edit).

    REDIS_PASSWORD=... pyinfra -y inventories/production.py deploy.py   # one password for all
    pyinfra -y inventories/production.py deploy.py                      # or one generated per host

Each group is a list; its name is the group name. Settings shared by a group can also go
in group_data/<group>.py. `_sudo` makes every command run through sudo on the host.
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

# more than 8 cameras; this backend runs elsewhere, so Redis listens on the LAN too
large = [
    ("nvr-campus.example.net", {
        **_ssh,
        "redis_size": "large",
        "redis_bind": ["127.0.0.1", "10.20.0.5"],
        "redis_backend_host": "10.20.0.5",
        "redis_backend_env_owner": "hsi",
    }),
]
