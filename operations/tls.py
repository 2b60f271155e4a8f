"""TLS on the host: the files, the redis.conf context, the backend's TLS contract, the checks.

Files (contents checked on the control machine by `certs.check_tls_files` first):

- `<config dir>/tls/` (root:<server group> 0750): `ca.crt` and `server.crt` root 0644,
  `server.key` owned by the server's user, 0600. Debian's unit cannot read /home or /root.
- `/etc/hsi-redis/tls/` (root only): the backend client certificate and key again, for the
  deploy's own redis-cli checks under mTLS.
- the backend's directory (`redis_tls_backend_dir`, default `redis-tls/` beside the `.env`),
  owned by the backend's user: `ca.crt`, and under mTLS `client.crt` and `client.key` (0600).
  Written with `safe_paths.owned_files`: as that user where that user controls the path.

Only the server's files trigger a restart; every file is written with `managed_file` or
`owned_files` (content on stdin, never printed, atomic, 0600 while being written).
"""

from __future__ import annotations

from urllib.parse import quote

from pyinfra.api import deploy
from pyinfra.operations import files

from . import report
from .encoding import dotenv_line
from .facts import STATE_DIR
from .managed_files import managed_file
from .platform import Platform
from .restart_pending import server_file
from .safe_paths import owned_files
from .settings import RedisSettings
from .tls_probe import answered, client_args

CLI_TLS_DIR = f"{STATE_DIR}/tls"
# Protocols every supported client speaks; TLS 1.0/1.1 stay off.
TLS_PROTOCOLS = "TLSv1.2 TLSv1.3"


def server_paths(plat: Platform) -> dict[str, str]:
    base = plat.tls_path or f"{plat.config_dir}/tls"
    return {"dir": base, "ca": f"{base}/ca.crt", "cert": f"{base}/server.crt", "key": f"{base}/server.key"}


def cli_paths() -> dict[str, str]:
    return {"cert": f"{CLI_TLS_DIR}/client.crt", "key": f"{CLI_TLS_DIR}/client.key"}


def backend_paths(conf: RedisSettings) -> dict[str, str]:
    base = conf.tls.backend_dir.rstrip("/")
    return {"dir": base, "ca": f"{base}/ca.crt", "cert": f"{base}/client.crt", "key": f"{base}/client.key"}


def template_context(conf: RedisSettings, plat: Platform) -> dict | None:
    """What templates/redis.conf.j2 needs for its TLS block (None: TLS off)."""
    if conf.tls is None:
        return None
    paths = server_paths(plat)
    return {
        "port": conf.tls.port,
        "cert_file": paths["cert"],
        "key_file": paths["key"],
        "ca_file": paths["ca"],
        "auth_clients": conf.tls.auth_clients,
        "protocols": TLS_PROTOCOLS,
    }


def plain_port(conf: RedisSettings) -> int:
    """The `port` directive: 0 closes the plain port when TLS-only."""
    return 0 if conf.tls is not None and conf.tls.only else conf.port


# -- the deploy's own client (redis-cli on the host) ----------------------------------------------

def cli_connection(seen: dict, plat: Platform) -> tuple[int, str]:
    """(port, redis-cli TLS arguments) for the TLS port the probe found answering."""
    return int(seen["tls_port"]), client_args(server_paths(plat)["ca"], *cli_paths().values())


def local_client(conf: RedisSettings, plat: Platform) -> tuple[int, str]:
    """(port, redis-cli TLS arguments) with which a client on the host reaches the server the
    settings describe: the plain port, or under TLS-only the TLS port, over TLS with the server's
    CA and, where installed, the deploy's client certificate (mTLS).

    **Example:** ``port, tls_args = local_client(conf, plat)``, then in shell
    ``redis-cli -p {port} {tls_args} ping``.
    """
    if conf.tls is None or not conf.tls.only:
        return conf.port, ""
    return conf.tls.port, client_args(server_paths(plat)["ca"], *cli_paths().values())


def probe_kwargs(conf: RedisSettings, plat: Platform) -> dict:
    """Extra ServerState arguments: the probe tries TLS first, on the configured port and on the
    one the current config file names (also with TLS off: the server may still run on TLS)."""
    return {"tls_port": conf.tls.port if conf.tls else 0, "tls_ca": server_paths(plat)["ca"],
            "tls_cert": cli_paths()["cert"], "tls_key": cli_paths()["key"], "config_path": plat.config_path}


def tls_problem(seen: dict, conf: RedisSettings, plat: Platform) -> tuple[str, str, str] | None:
    """(kind, problem, fix) when TLS is not what the settings ask for, else None."""
    if conf.tls is None or seen.get("cli") != "present" or seen.get("service_active") != "active":
        return None
    service = plat.service
    if seen.get("via") != "tls" or seen.get("tls_port") != str(conf.tls.port):
        reply = (seen.get(f"tls_ping_{conf.tls.port}") or "no reply").strip()
        return ("TLS", f"nothing answers TLS on port {conf.tls.port} ({reply!r})",
                f"journalctl -u {service} -n 50 (certificate/key unreadable?); run deploy.py again")
    if conf.tls.only and answered(seen.get("plain_ping")):
        return ("plain port open", f"TLS-only, yet port {conf.port} answers without TLS",
                f"run deploy.py again (it writes `port 0`) or restart {service}")
    if conf.tls.auth_clients == "yes" and answered(seen.get("nocert_ping")):
        return ("mTLS not enforced", "a TLS client without a certificate is accepted",
                f"run deploy.py again (tls-auth-clients yes) or restart {service}")
    return None


# -- the backend's contract -----------------------------------------------------------------------

def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def backend_url(conf: RedisSettings) -> str:
    """REDIS_URL. Under TLS a `rediss://` URL that redis-py's `from_url` turns into a verified
    connection (CA, hostname check, client certificate); no password (REDIS_PASSWORD holds it)."""
    if conf.tls is None:
        return conf.backend_url
    paths = backend_paths(conf)
    query = f"ssl_cert_reqs=required&ssl_ca_certs={quote(paths['ca'], safe='/')}"
    if conf.tls.mtls:
        query += f"&ssl_certfile={quote(paths['cert'], safe='/')}&ssl_keyfile={quote(paths['key'], safe='/')}"
    return f"rediss://{_host_in_url(conf.backend_host)}:{conf.tls.port}/{conf.backend_db}?{query}"


def backend_ssl_lines(conf: RedisSettings) -> dict[str, str]:
    """REDIS_SSL_* lines consistent with the URL. REDIS_SSL_ENABLED is not owned (see README)."""
    if conf.tls is None:
        return {}
    paths = backend_paths(conf)
    values = {
        "REDIS_SSL_CERT_REQS": "required",
        "REDIS_SSL_CA_CERTS": paths["ca"],
        "REDIS_SSL_CHECK_HOSTNAME": "true",
    }
    if conf.tls.mtls:
        values.update(REDIS_SSL_CERTFILE=paths["cert"], REDIS_SSL_KEYFILE=paths["key"])
    return {key: dotenv_line(key, value, quote=False) for key, value in values.items()}


# -- installing the files -------------------------------------------------------------------------

@deploy("Install the TLS files")
def install_tls(conf: RedisSettings, plat: Platform) -> list:
    """Write the server's, the deploy's and the backend's TLS files.

    Returns the operations that wrote files the server reads, so the service step restarts
    only when one of them changed; an empty list when TLS is off.

    **Example:**

    .. code:: python

        changed = install_tls(conf, plat)
        run_service(conf, plat, changed=[config, *changed])
    """
    if conf.tls is None:
        return []
    tls = conf.tls
    for key in (tls.key_pem, tls.client_key_pem):
        if key is not None:
            report.add_secret(key.reveal())  # scrubbed from the summary and JSON report, like passwords
    paths = server_paths(plat)
    # setgid, as Debian's /etc/redis is: files made here belong to the server's group (and
    # `chmod 750` would not clear an inherited setgid bit, so the mode would never settle).
    files.directory(name=f"TLS directory {paths['dir']}", path=paths["dir"], user="root", group=plat.group,
                    mode="2750")
    config = plat.config_path  # a change records a pending restart first (restart_pending.py)
    server_ops = [
        server_file(name=f"Write {paths['ca']}", path=paths["ca"], content=tls.ca_pem,
                    config_path=config, mode=0o644),
        server_file(name=f"Write {paths['cert']}", path=paths["cert"], content=tls.cert_pem,
                    config_path=config, mode=0o644),
        server_file(name=f"Write {paths['key']} (server key, {plat.user} only)", path=paths["key"],
                    content=tls.key_pem.reveal(), config_path=config, user=plat.user, group=plat.group,
                    mode=0o600),
    ]
    if tls.mtls:
        for role, content in (("cert", tls.client_cert_pem), ("key", tls.client_key_pem.reveal())):
            managed_file(name=f"Write {cli_paths()[role]} (the deploy's own checks, root only)",
                         path=cli_paths()[role], content=content, mode=0o600)
    if tls.backend_dir:
        install_client_files(tls.backend_dir, conf.backend_env_owner, conf.backend_env_group, conf, "backend",
                             ("redis_tls_backend_dir", "redis_backend_env_owner", "redis_backend_env_group"))
    return server_ops


def install_client_files(directory: str, owner: str | None, group: str | None, conf: RedisSettings, who: str,
                         settings: tuple[str, str, str]) -> None:
    """CA (and under mTLS the client certificate and key, 0600) for a client, in a directory (0750)
    that may sit where the client's user controls the path: written as that user there (see
    `operations/safe_paths.py`). `owner` unset: that user, else root. `settings` names the path,
    owner and group settings for refusals."""
    tls = conf.tls
    base = directory.rstrip("/")
    wanted = {"ca.crt": (tls.ca_pem, 0o644)}
    if tls.mtls:
        wanted["client.crt"] = (tls.client_cert_pem, 0o644)
        wanted["client.key"] = (tls.client_key_pem.reveal(), 0o600)
    path_setting, owner_setting, group_setting = settings
    owned_files(name=f"TLS files for the {who} in {base} (key: owner only)", directory=base, files=wanted,
                owner=owner, group=group, dir_mode=0o750, path_setting=path_setting,
                owner_setting=owner_setting, group_setting=group_setting)
