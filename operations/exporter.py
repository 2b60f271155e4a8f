"""The Prometheus redis_exporter's environment file (opt-in: `redis_exporter_env_path`).

The file is a systemd `EnvironmentFile=` (also fine for `docker run --env-file` as long as the
password needs no quoting): `REDIS_ADDR`, `REDIS_PASSWORD`, the listen address (loopback by
default: the exporter would otherwise listen on every interface) and, under TLS, its client
variables. Written 0600 with `safe_paths.owned_files`, so the password never appears in a command
and root never writes by path where another user controls the directory.
Under TLS the exporter gets its own copy of the CA (and client certificate/key) in
`redis-exporter-tls/` beside the file, owned by `redis_exporter_owner` (group: its login group).
"""

from __future__ import annotations

import posixpath

from pyinfra.api import deploy

from .safe_paths import owned_files, split
from .settings import RedisSettings
from .tls import _host_in_url, install_client_files

# systemd's EnvironmentFile parser unescapes exactly these after a backslash inside "...".
_SYSTEMD_ESCAPE = '"\\`$'


def systemd_quote(value: str) -> str:
    """Quote `value` for a systemd EnvironmentFile so it reads back unchanged."""
    if value and all(c.isalnum() or c in "._-/:+=@,%[]" for c in value):
        return value
    return '"' + "".join(f"\\{c}" if c in _SYSTEMD_ESCAPE else c for c in value) + '"'


def tls_dir(conf: RedisSettings) -> str:
    return posixpath.join(posixpath.dirname(conf.exporter_env_path), "redis-exporter-tls")


def exporter_env(conf: RedisSettings) -> str:
    """The environment file's content."""
    host = _host_in_url(conf.backend_host)
    if conf.tls is None:
        values = {"REDIS_ADDR": f"redis://{host}:{conf.port}"}
    else:
        base = tls_dir(conf)
        values = {"REDIS_ADDR": f"rediss://{host}:{conf.tls.port}",
                  "REDIS_EXPORTER_TLS_CA_CERT_FILE": f"{base}/ca.crt"}
        if conf.tls.mtls:
            values.update(REDIS_EXPORTER_TLS_CLIENT_CERT_FILE=f"{base}/client.crt",
                          REDIS_EXPORTER_TLS_CLIENT_KEY_FILE=f"{base}/client.key")
    values["REDIS_PASSWORD"] = conf.password.reveal()
    values["REDIS_EXPORTER_WEB_LISTEN_ADDRESS"] = conf.exporter_listen
    lines = ["# Managed by hsi-redis: redis_exporter settings (EnvironmentFile=). Changes are replaced."]
    lines += [f"{key}={systemd_quote(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


@deploy("Write the redis_exporter environment")
def write_exporter_env(conf: RedisSettings):
    """Write the exporter's environment file (0600) and, under TLS, its certificate files.

    Returns the operation that writes the environment file (None: no exporter file).

    **Example:** ``--data redis_exporter_env_path=/etc/default/redis-exporter``
    """
    if conf.exporter_env_path is None:
        return None
    owner = conf.exporter_owner
    settings = ("redis_exporter_env_path", "redis_exporter_owner", "redis_exporter_owner")
    if conf.tls is not None:
        install_client_files(tls_dir(conf), owner, None, conf, "exporter", settings)
    directory, name = split(conf.exporter_env_path)
    return owned_files(name=f"Write {conf.exporter_env_path} (redis_exporter, 0600)", directory=directory,
                       files={name: (exporter_env(conf), 0o600)}, owner=owner, path_setting=settings[0],
                       owner_setting=settings[1])
