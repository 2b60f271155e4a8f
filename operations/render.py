"""File contents, rendered on the control machine from `templates/` (plain Jinja2, no logic beyond loops).

The templates ship inside the package (`operations/templates` in a built wheel, mapped from the
repository's top-level `templates/`); a checkout that is not installed reads them from the repository.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from . import acl
from .encoding import redis_conf_quote, systemd_quote
from .target import TLS_PROTOCOLS, Target

# RDB snapshot rules, one per line (Redis 6.0 cannot take several in one `save`).
SAVE_RULES = ("3600 1", "300 100", "60 10000")
TCP_BACKLOG = 511  # tcp-backlog in redis.conf.j2; net.core.somaxconn must hold it
HEADER = "# Managed by hsi-redis: changes made here are replaced on the next run.\n"


def _template_dir() -> Path:
    packaged = Path(__file__).resolve().parent / "templates"   # an installed package (wheel)
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "templates"


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_template_dir()), undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
    )


def render(template: str, **context) -> str:
    return _environment().get_template(template).render(**context)


def bind_line(target: Target) -> str:
    """Servers older than 7.0 do not know the "-" (optional address) prefix."""
    bind = target.settings.bind
    return " ".join(bind if target.row.optional_bind else (a.lstrip("-") for a in bind))


def redis_conf(target: Target) -> str:
    """redis.conf for the target."""
    settings, row, tls = target.settings, target.row, target.tls
    password = target.password.reveal()
    return render(
        "redis.conf.j2",
        bind=bind_line(target),
        port=target.plain_port,
        tls=None if tls is None else {"port": tls.port, "cert_file": tls.cert, "key_file": tls.key,
                                      "ca_file": tls.ca, "auth_clients": tls.auth_clients,
                                      "protocols": TLS_PROTOCOLS},
        pid_file=row.pid_file, log_file=row.log_file, data_dir=row.data_dir, save_rules=SAVE_RULES,
        appendfsync=settings.appendfsync, size=settings.size, maxmemory=settings.maxmemory,
        maxmemory_policy=settings.maxmemory_policy, requirepass=redis_conf_quote(password),
        acl_users=acl.user_rules(settings, row, password, target.admin_password.reveal(),
                                 target.exporter.password.reveal() if target.exporter is not None else None),
        disable_thp=row.disable_thp, extra_config=settings.extra_config,
    )


def container_dropin(container: str) -> str:
    return render("systemd-dropin.conf.j2", container=container)


def sysctl_conf(values: dict[str, int]) -> str:
    return render("sysctl-hsi-redis.conf.j2", overcommit_memory=values["vm.overcommit_memory"],
                  somaxconn=values["net.core.somaxconn"], tcp_backlog=TCP_BACKLOG)


def thp_unit(service: str, thp_files: tuple[str, ...]) -> str:
    return render("thp-off.service.j2", service=service, thp_files=" ".join(thp_files))


def exporter_env(target: Target) -> str:
    """The packaged exporter unit's EnvironmentFile (systemd quoting): its own identity, never the backend's
    password; CONFIG GET skipped (it would hand the exporter `requirepass`, see operations/acl.py)."""
    exporter = target.exporter
    values = {"ARGS": "", "REDIS_ADDR": exporter.address, "REDIS_USER": acl.EXPORTER_USER,
              "REDIS_PASSWORD": exporter.password.reveal(), "REDIS_EXPORTER_WEB_LISTEN_ADDRESS": exporter.listen,
              "REDIS_EXPORTER_CONFIG_COMMAND": "-"}
    if exporter.tls_files is not None:
        values["REDIS_EXPORTER_TLS_CA_CERT_FILE"] = exporter.tls_files.ca
        if target.tls.mtls:
            values["REDIS_EXPORTER_TLS_CLIENT_CERT_FILE"] = exporter.tls_files.cert
            values["REDIS_EXPORTER_TLS_CLIENT_KEY_FILE"] = exporter.tls_files.key
    lines = [f"# Managed by hsi-redis: {exporter.service}.service reads this (EnvironmentFile=); changes are "
             "replaced. ARGS (its command line) stays empty: flags there would override these."]
    lines += [f"{key}={systemd_quote(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"
