"""One host's resolved target: settings, platform row, identities and every path and address, once.

`resolve()` runs after the settings of every host validated and the host's one state read chose its
platform row (and package source). Everything downstream reads the Target: no step re-derives a path,
re-reads a secret or builds a URL of its own (`redis_url` is the only URL builder).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from .acl import ADMIN_USER
from .credentials import Secret
from .encoding import dotenv_line
from .hoststate import Layout
from .rows import Row
from .settings import Settings
from .validation import local_address

STATE_DIR = "/etc/hsi-redis"
# Protocols every supported client speaks; TLS 1.0/1.1 stay off.
TLS_PROTOCOLS = "TLSv1.2 TLSv1.3"


def redis_url(host: str, port: int, tls: bool = False, db: int | None = None, query: str = "") -> str:
    """A `redis://` or `rediss://` URL (IPv6 literals bracketed). Never with a password: the backend
    reads REDIS_PASSWORD, which a password in the URL would override."""
    shown = f"[{host}]" if ":" in host else host
    url = f"{'rediss' if tls else 'redis'}://{shown}:{port}"
    if db is not None:
        url += f"/{db}"
    return f"{url}?{query}" if query else url


@dataclass(frozen=True)
class ServerTls:
    """The server's TLS files on the host (under the config directory: the packaged unit cannot read
    /home or /root) and the deploy's own client pair (root only, for its checks under mTLS)."""

    port: int
    only: bool
    auth_clients: str
    dir: str
    ca: str
    cert: str
    key: str
    cli_cert: str
    cli_key: str
    mtls: bool


@dataclass(frozen=True)
class ClientFiles:
    """A client's copies of the CA (and under mTLS its certificate and key) in its own directory."""

    dir: str
    ca: str
    cert: str
    key: str


@dataclass(frozen=True)
class Backend:
    """The HSI backend's `.env` and what it must hold."""

    env_path: str
    owner: str | None
    group: str | None
    url: str
    lines: tuple[tuple[str, str], ...]      # (KEY, "KEY=encoded value") in file order
    tls_files: ClientFiles | None


@dataclass(frozen=True)
class Exporter:
    """The distro's redis_exporter on the server's host: its package and unit, the EnvironmentFile its unit
    reads, its own identity (`hsi-exporter`), and its TLS files when the server is TLS-only."""

    package: str
    service: str
    env_path: str
    user: str                                # the unit's user and group: its files are root:<user>
    password: Secret
    address: str                             # REDIS_ADDR: where the server listens on this host
    listen: str                              # REDIS_EXPORTER_WEB_LISTEN_ADDRESS
    metrics: str                             # HOST:PORT where the deploy reads /metrics on the host
    tls_files: ClientFiles | None


@dataclass(frozen=True)
class Target:
    name: str
    settings: Settings
    row: Row
    password: Secret              # the backend identity (`default`)
    admin_password: Secret        # `hsi-admin`: the deploy's own checks and the operator
    layout: Layout
    state_dir: str
    cli_auth: str                 # the admin's password on the host (root 0600)
    backend_auth: str             # the backend's, for the identity check (root 0600)
    plain_port: int               # 0 when TLS-only
    local_address: str            # where a client on the host reaches the server
    tls: ServerTls | None
    backend: Backend | None
    exporter: Exporter | None

    @property
    def verify_only(self) -> bool:
        return self.settings.verify_only

    def layout_options(self) -> dict:
        """The host program's options that say where this server lives."""
        return {"state_dir": self.state_dir, "admin_user": ADMIN_USER, "service": self.row.service,
                "config": self.row.config_path, "cli": self.row.cli, "user": self.row.user,
                "group": self.row.group, "log": self.row.log_file, "data_dir": self.row.data_dir,
                "wait": self.settings.restart_wait}


def _client_files(directory: str) -> ClientFiles:
    base = directory.rstrip("/")
    return ClientFiles(dir=base, ca=f"{base}/ca.crt", cert=f"{base}/client.crt", key=f"{base}/client.key")


def _server_tls(settings: Settings, row: Row) -> ServerTls | None:
    """The server's TLS files sit right in its config directory (`tls-*`): the packaged unit reads
    nothing under /home or /root, and a directory the server's user controls (Debian's /etc/redis) is
    written safely only one level deep (see the host program's "Writing files")."""
    tls = settings.tls
    if tls is None:
        return None
    base = row.tls_path or row.config_dir
    return ServerTls(port=tls.port, only=tls.only, auth_clients=tls.auth_clients, dir=base,
                     ca=f"{base}/tls-ca.crt", cert=f"{base}/tls-server.crt", key=f"{base}/tls-server.key",
                     cli_cert=f"{STATE_DIR}/tls/client.crt", cli_key=f"{STATE_DIR}/tls/client.key", mtls=tls.mtls)


def _backend(settings: Settings, password: Secret) -> Backend | None:
    if settings.backend_env_path is None:
        return None
    tls = settings.tls
    files = _client_files(tls.backend_dir) if tls is not None and tls.backend_dir else None
    if tls is None:
        url = redis_url(settings.backend_host, settings.port, db=settings.backend_db)
        ssl: dict[str, str] = {}
    else:
        query = f"ssl_cert_reqs=required&ssl_ca_certs={quote(files.ca, safe='/')}"
        ssl = {"REDIS_SSL_CERT_REQS": "required", "REDIS_SSL_CA_CERTS": files.ca, "REDIS_SSL_CHECK_HOSTNAME": "true"}
        if tls.mtls:
            query += f"&ssl_certfile={quote(files.cert, safe='/')}&ssl_keyfile={quote(files.key, safe='/')}"
            ssl.update(REDIS_SSL_CERTFILE=files.cert, REDIS_SSL_KEYFILE=files.key)
        url = redis_url(settings.backend_host, tls.port, tls=True, db=settings.backend_db, query=query)
    lines = [("REDIS_URL", dotenv_line("REDIS_URL", url, quote=False)),
             ("REDIS_PASSWORD", dotenv_line("REDIS_PASSWORD", password.reveal()))]
    lines += [(key, dotenv_line(key, value, quote=False)) for key, value in ssl.items()]
    return Backend(env_path=settings.backend_env_path, owner=settings.backend_env_owner,
                   group=settings.backend_env_group, url=url, lines=tuple(lines), tls_files=files)


EXPORTER_TLS_DIR = "/etc/hsi-redis-exporter"  # root:<exporter user> 0750: its CA (and client pair under mTLS)


def _metrics_address(listen: str) -> str:
    """Where a client on the host reads what listens on `listen` (a wildcard or no host: loopback)."""
    host, _, port = listen.rpartition(":")
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
    return f"{host}:{port}"


def _exporter(settings: Settings, row: Row) -> Exporter | None:
    """The exporter, when wanted and the row packages one (else the prologue refuses the host)."""
    if not settings.exporter or not row.exporter_package:
        return None
    tls = settings.tls
    address = local_address(settings.bind)
    if tls is not None and tls.only:  # TLS only where the server has no plain port left
        files, url = _client_files(EXPORTER_TLS_DIR), redis_url(address, tls.port, tls=True)
    else:
        files, url = None, redis_url(address, settings.port)
    return Exporter(package=row.exporter_package, service=row.exporter_service, env_path=row.exporter_env,
                    user=row.exporter_user, password=settings.exporter_password, address=url,
                    listen=settings.exporter_listen, metrics=_metrics_address(settings.exporter_listen),
                    tls_files=files)


def resolve(settings: Settings, row: Row, admin_password: Secret) -> Target:
    """The host's Target (see the module docstring)."""
    tls = _server_tls(settings, row)
    return Target(
        name=settings.host_name, settings=settings, row=row, password=settings.password,
        admin_password=admin_password,
        layout=Layout(row.service, row.config_path, row.cli, row.data_dir),
        state_dir=STATE_DIR, cli_auth=f"{STATE_DIR}/cli.auth", backend_auth=f"{STATE_DIR}/backend.auth",
        plain_port=0 if tls is not None and tls.only else settings.port,
        local_address=local_address(settings.bind), tls=tls,
        backend=_backend(settings, settings.password), exporter=_exporter(settings, row),
    )
