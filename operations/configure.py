"""redis.conf: rendered on the control machine from templates/, written without a diff.

Before the file changes, `persistence.secure_data` makes sure a running server already has
its data in an AOF (see that module for the data-loss trap this avoids). The file is written
with a pending restart recorded first (restart_pending.py).
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from pyinfra.api import deploy

from . import acl, persistence, rollback, tls
from .encoding import redis_conf_quote
from .facts import BACKEND_AUTH_FILE, CLI_AUTH_FILE, STATE_DIR
from .managed_files import managed_file
from .platform import Platform
from .restart_pending import RestartNeeded, server_file
from .settings import RedisSettings

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# RDB snapshot rules, one per line (Redis 6.0 cannot take several in one `save`).
SAVE_RULES = ("3600 1", "300 100", "60 10000")

_jinja = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)


def render(template: str, **context) -> str:
    return _jinja.get_template(template).render(**context)


def bind_addresses(conf: RedisSettings, plat: Platform) -> str:
    """The bind line; servers older than 7.0 do not know the "-" (optional address) prefix."""
    addresses = conf.bind if plat.optional_bind else tuple(a.lstrip("-") for a in conf.bind)
    return " ".join(addresses)


def render_config(conf: RedisSettings, plat: Platform) -> str:
    return render(
        "redis.conf.j2",
        bind=bind_addresses(conf, plat),
        port=tls.plain_port(conf),
        tls=tls.template_context(conf, plat),
        pid_file=plat.pid_file,
        log_file=plat.log_file,
        data_dir=plat.data_dir,
        save_rules=SAVE_RULES,
        appendfsync=conf.appendfsync,
        size=conf.size,
        maxmemory=conf.maxmemory,
        maxmemory_policy=conf.maxmemory_policy,
        requirepass=redis_conf_quote(conf.password.reveal()),
        acl_users=acl.user_rules(conf, plat, acl.admin_password(conf.host_name)),
        disable_thp=plat.disable_thp,
        extra_config=conf.extra_config,
    )


@deploy("Configure the server")
def configure_server(conf: RedisSettings, plat: Platform):
    """Write redis.conf (root:<server group> 0640) and the deploy's own root-only credential.

    Returns what tells the service step to restart: redis.conf changed in this run, or an
    earlier run changed a file the server reads and stopped before its restart.
    """
    restart = RestartNeeded()
    persistence.secure_data(
        name="Make sure the running server's data is in an AOF before its config changes",
        conf=conf,
        plat=plat,
        restart=restart,
    )
    rendered = render_config(conf, plat)
    rollback.keep_last_good(
        name=f"Keep the running {plat.config_path} as the last good config",
        conf=conf,
        plat=plat,
        content=rendered,
    )
    restart.op = server_file(
        name=f"Write {plat.config_path}",
        path=plat.config_path,
        content=rendered,
        config_path=plat.config_path,
        user="root",
        group=plat.group,
        mode=0o640,
    )
    # The passwords the deploy's own checks use (admin; backend identity), read on the host so
    # they are never in a command.
    managed_file(
        name=f"Write {CLI_AUTH_FILE} (root only)",
        path=CLI_AUTH_FILE,
        content=acl.admin_password(conf.host_name).reveal(),
        user="root",
        group="root",
        mode=0o600,
    )
    managed_file(
        name=f"Write {BACKEND_AUTH_FILE} (root only)",
        path=BACKEND_AUTH_FILE,
        content=conf.password.reveal(),
        user="root",
        group="root",
        mode=0o600,
    )
    return restart


__all__ = ["configure_server", "render_config", "STATE_DIR"]
