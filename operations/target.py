"""One host's resolved target: settings, platform row, identities and every path and address, once.

`resolve()` runs after the settings of every host validated and the host's one state read chose its
platform row (and package source). Everything downstream reads the Target: no step re-derives a path,
re-reads a secret or builds a URL of its own (`redis_url` is the only URL builder).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import quote

from .acl import ADMIN_USER
from .credentials import Secret
from .encoding import dotenv_line
from .hoststate import Layout
from .rows import Row
from .settings import Settings
from .tls_preflight import TlsConfig
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
    """The HSI backend's `.env` and what it must hold (on the server's host, or on a backend host)."""

    env_path: str
    owner: str | None
    group: str | None
    url: str
    lines: tuple[tuple[str, str], ...]      # (KEY, "KEY=encoded value") in file order
    tls_files: ClientFiles | None
    tls: TlsConfig | None = None            # the server's TLS settings: what the CA and client files hold
    server: str = ""                        # the server's inventory name
    host: str = ""                          # where REDIS_URL points: the server's redis_backend_host
    port: int = 0                           # and its port (the TLS port with TLS)


@dataclass(frozen=True)
class Firewall:
    """Who may reach a server that listens beyond loopback: loopback always; the sources, only on the
    open ports; nobody else on any of the server's ports."""

    ports: tuple[int, ...]         # every port the server listens on
    open_ports: tuple[int, ...]    # the ones the sources may reach (TLS; plain too with redis_allow_plaintext)
    sources: tuple[str, ...]       # the backend hosts' addresses, then redis_firewall_allow (IPs or CIDRs)
    backends: tuple[str, ...]      # the backend hosts, by inventory name

    @property
    def digest(self) -> str:
        """What the rules say, in 16 hex digits: marks the loaded rules (a change means new rules)."""
        text = f"{self.ports} {self.open_ports} {self.sources}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    """A host's resolved target. On a backend host (`serves` false) only `backend` is set: the server's
    part (row, layout, credentials, ports, TLS, exporter, firewall) belongs to its server's host."""

    name: str
    settings: Settings
    row: Row | None               # None on a backend host
    password: Secret              # the backend identity (`default`)
    admin_password: Secret        # `hsi-admin`: the deploy's own checks and the operator
    layout: Layout | None
    state_dir: str
    cli_auth: str                 # the admin's password on the host (root 0600)
    backend_auth: str             # the backend's, for the identity check (root 0600)
    plain_port: int               # 0 when TLS-only
    local_address: str            # where a client on the host reaches the server
    tls: ServerTls | None
    backend: Backend | None
    exporter: Exporter | None
    firewall: Firewall | None = None      # None: the server listens on loopback only, or redis_firewall off
    backend_hosts: tuple[str, ...] = ()   # a server's backend hosts (inventory names)

    @property
    def verify_only(self) -> bool:
        return self.settings.verify_only

    @property
    def serves(self) -> bool:
        """Whether the server runs on this host (role server or both)."""
        return self.row is not None

    @property
    def server_name(self) -> str:
        """The inventory name of the host whose server this host's backend uses (itself when it serves)."""
        return self.settings.server or self.name

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


def _backend(settings: Settings, password: Secret, server: Settings | None = None) -> Backend | None:
    """The backend's `.env` on the host of `settings`: the server's name, ports and TLS (`server`, the
    host itself unless it is a backend host), this host's files and database number."""
    server = server or settings
    if settings.backend_env_path is None:
        return None
    tls = server.tls
    directory = settings.backend_dir or (tls.backend_dir if tls is not None else None)
    files = _client_files(directory) if tls is not None and directory else None
    if tls is None:
        url = redis_url(server.backend_host, server.port, db=settings.backend_db)
        ssl: dict[str, str] = {}
    else:
        query = f"ssl_cert_reqs=required&ssl_ca_certs={quote(files.ca, safe='/')}"
        ssl = {"REDIS_SSL_CERT_REQS": "required", "REDIS_SSL_CA_CERTS": files.ca, "REDIS_SSL_CHECK_HOSTNAME": "true"}
        if tls.mtls:
            query += f"&ssl_certfile={quote(files.cert, safe='/')}&ssl_keyfile={quote(files.key, safe='/')}"
            ssl.update(REDIS_SSL_CERTFILE=files.cert, REDIS_SSL_KEYFILE=files.key)
        url = redis_url(server.backend_host, tls.port, tls=True, db=settings.backend_db, query=query)
    lines = [("REDIS_URL", dotenv_line("REDIS_URL", url, quote=False)),
             ("REDIS_PASSWORD", dotenv_line("REDIS_PASSWORD", password.reveal()))]
    lines += [(key, dotenv_line(key, value, quote=False)) for key, value in ssl.items()]
    return Backend(env_path=settings.backend_env_path, owner=settings.backend_env_owner,
                   group=settings.backend_env_group, url=url, lines=tuple(lines), tls_files=files, tls=tls,
                   server=server.host_name, host=server.backend_host, port=tls.port if tls else server.port)


def _firewall(settings: Settings, plain_port: int, backends: tuple[Settings, ...]) -> Firewall | None:
    """The server's firewall plan, or None where there is nothing to filter (loopback only) or the
    operator keeps the firewall (redis_firewall false)."""
    if not settings.exposed or not settings.firewall:
        return None
    tls = settings.tls
    ports = tuple(p for p in (plain_port, tls.port if tls else 0) if p)
    open_ports = tuple(p for p in ports if tls is None or p == tls.port or settings.allow_plaintext)
    sources = [b.backend_address for b in backends if b.backend_address]
    sources += [s for s in settings.firewall_allow if s not in sources]
    return Firewall(ports=ports, open_ports=open_ports, sources=tuple(sources),
                    backends=tuple(b.host_name for b in backends))


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


def resolve(settings: Settings, row: Row, admin_password: Secret, backends: tuple[Settings, ...] = ()) -> Target:
    """A server's Target (see the module docstring); `backends`: the backend hosts naming it."""
    tls = _server_tls(settings, row)
    plain_port = 0 if tls is not None and tls.only else settings.port
    return Target(
        name=settings.host_name, settings=settings, row=row, password=settings.password,
        admin_password=admin_password,
        layout=Layout(row.service, row.config_path, row.cli, row.data_dir),
        state_dir=STATE_DIR, cli_auth=f"{STATE_DIR}/cli.auth", backend_auth=f"{STATE_DIR}/backend.auth",
        plain_port=plain_port, local_address=local_address(settings.bind), tls=tls,
        backend=_backend(settings, settings.password), exporter=_exporter(settings, row),
        firewall=_firewall(settings, plain_port, backends), backend_hosts=tuple(b.host_name for b in backends),
    )


def resolve_backend(settings: Settings, server: Settings, password: Secret | None = None) -> Target:
    """A backend host's Target: its `.env` and TLS files, from its server's settings and password
    (`password`: another one than the server's current, e.g. the one a rotation moves to)."""
    return Target(
        name=settings.host_name, settings=settings, row=None, password=password or server.password,
        admin_password=Secret(""), layout=None, state_dir=STATE_DIR, cli_auth="", backend_auth="",
        plain_port=0, local_address="", tls=None,
        backend=_backend(settings, password or server.password, server), exporter=None,
    )
