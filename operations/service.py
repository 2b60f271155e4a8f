"""The systemd service: a container drop-in where needed, restart on change, enabled and running."""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import systemd
from pyinfra.operations.util import any_changed

from .configure import render
from .platform import Platform
from .restart_pending import server_file
from .rollback import safe_restart
from .settings import RedisSettings


def needs_dropin(plat: Platform, identity: dict) -> bool:
    return plat.private_users and identity.get("container", "none") not in ("", "none")


def container_dropin(plat: Platform, identity: dict):
    """In Docker/LXC the packaged unit's PrivateUsers=true fails (217/USER): turn it off there."""
    if not needs_dropin(plat, identity):
        return None
    dropin = server_file(
        name=f"Write {plat.dropin_path} (container: PrivateUsers=false)",
        path=plat.dropin_path,
        content=render("systemd-dropin.conf.j2", container=identity["container"]),
        config_path=plat.config_path,
        user="root",
        group="root",
        mode=0o644,
    )
    systemd.daemon_reload(name="Reload systemd units", _if=dropin.did_change)
    return dropin


@deploy("Run the service")
def run_service(conf: RedisSettings, plat: Platform, changed: list):
    """Restart when anything the server reads changed, then make sure it is enabled and running.

    `changed`: the operations that wrote those files, and what `configure_server` returned
    (which also says when an earlier run wrote them and stopped before its restart).
    The restart is `rollback.safe_restart`: snapshot, restart, and back to the last good
    config if the server does not answer. It comes first: a restart also starts a stopped
    service, so the second operation then finds it running and does nothing (no double start).
    """
    restart_ops = [op for op in changed if op is not None]
    if restart_ops:
        safe_restart(
            name=f"Restart {plat.service} safely (its configuration changed, or a restart is pending)",
            conf=conf,
            plat=plat,
            _if=any_changed(*restart_ops),
        )
    systemd.service(
        name=f"Enable and start {plat.service}",
        service=plat.service,
        running=True,
        enabled=True,
    )
