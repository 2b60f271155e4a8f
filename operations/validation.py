"""Validation: one host's raw data -> a typed, frozen `Settings`, or every problem found.

Each problem reads `host: setting: what is wrong`. Text settings are matched whole; TLS files are
checked on the control machine (operations/tls_preflight.py); the password's source is resolved
(`REDIS_PASSWORD` in the operator's environment, the host's `redis_password` data, or one generated
once per host and kept on the control machine: operations/credentials.py).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pyinfra.api.exceptions import PyinfraError

from . import credentials, pki, sources, tls_preflight
from .credentials import Secret
from .defaults import DEFAULTS, DENIED_COMMANDS, ESSENTIAL_COMMANDS, MAXMEMORY_POLICIES, REMOVED, SCHEDULES, SIZES
from .tls_preflight import TlsConfig

# Every pattern is used with `fullmatch` (see `_whole`): `$` would also match before a trailing
# newline, and "localhost\n" would pass.
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}\$?")
_HOSTNAME_RE = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*")
_MEMORY_RE = re.compile(r"([1-9][0-9]{0,14})(b|k|kb|m|mb|g|gb)?", re.IGNORECASE)
# Redis' own units: k/m/g are powers of 1000, kb/mb/gb powers of 1024.
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
_MEMORY_MIN = 1024**2  # below 1mb the server cannot even hold its own bookkeeping
_COMMAND_RE = re.compile(r"[a-z][a-z0-9_.-]*(\|[a-z][a-z0-9_.-]*)?")
_PATH_RE = re.compile(r"/[^\x00-\x1f\x7f]*")
_LISTEN_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):[0-9]{1,5}")
# An IP address as ipaddress reads it, but with a scope (`fe80::1%eth0`) of name characters only:
# ipaddress takes any text after `%`, line breaks included.
_ADDRESS_RE = re.compile(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]{1,64})?")
# The text form of a list setting ("a, b c"): commas and spaces separate, no control characters.
_LIST_TEXT_RE = re.compile(r"[^\x00-\x1f\x7f]*")


def _whole(pattern: re.Pattern, value: Any) -> bool:
    """Whether `value` is text and `pattern` matches all of it (not a prefix, not up to a newline)."""
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _ip_address(value: Any) -> bool:
    """Whether `value` is an IPv4/IPv6 address (a scope of name characters allowed)."""
    if not _whole(_ADDRESS_RE, value):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _list_items(value: Any) -> Any:
    """A list setting's items: its text form is split at commas and spaces."""
    if isinstance(value, str):
        return value.replace(",", " ").split(" ") if _whole(_LIST_TEXT_RE, value) else [value]
    return value


class SettingsError(PyinfraError):
    """Invalid settings for one or more hosts; nothing has been changed anywhere."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "invalid settings, no host was changed:\n" + "\n".join(f"  {p}" for p in problems)
        )


@dataclass(frozen=True)
class Settings:
    host_name: str
    password: Secret = field(repr=False)
    password_source: str
    development: bool
    bind: tuple[str, ...]
    port: int
    size: str
    maxmemory: str
    maxmemory_policy: str
    appendfsync: str
    flavour: str
    backend_env_path: str | None
    backend_env_owner: str | None  # None: an existing .env keeps its owner (see backend_env.py)
    backend_env_group: str | None
    backend_host: str
    backend_db: int
    verify_only: bool
    source: str
    minimum_version: str
    upstream_version: str
    upstream_key: str = field(repr=False)  # armored key text (public, but long)
    upstream_key_fingerprint: str
    tls: TlsConfig | None = None
    exporter: bool = False
    exporter_password: Secret | None = field(default=None, repr=False)  # hsi-exporter's, generated per host
    exporter_listen: str = "127.0.0.1:9121"
    acl_denied: tuple[str, ...] = ()
    backend_config_set: bool = False
    auth_failure_warn: int = 10
    kernel_tuning: bool = True
    # Not fatal, but the operator must hear about them (printed in the summary).
    warnings: tuple[str, ...] = ()
    extra_config: tuple[str, ...] = ()
    restart_wait: int = 60
    backend_unit: str | None = None
    # Issue 11: where the backend runs, and the firewall.
    role: str = "both"                        # both | server | backend
    server: str = ""                          # the server host's inventory name (itself unless a backend)
    backend_address: str | None = None        # a backend host's address as its server sees it (IP or CIDR)
    backend_dir: str | None = None            # where the backend's CA and client files go on its host
    allow_plaintext: bool = False
    firewall: bool = True
    firewall_allow: tuple[str, ...] = ()

    @property
    def serves(self) -> bool:
        """Whether this host runs the server (role server or both)."""
        return self.role != "backend"

    @property
    def exposed(self) -> tuple[str, ...]:
        """The addresses beyond loopback the server listens on (none on a backend host)."""
        return tuple(a.lstrip("-") for a in self.bind if not _is_loopback(a)) if self.serves else ()
    backup_dir: Path = Path("backups")
    backup_keep: int = 14
    backup_schedule: str = "off"
    snapshot_dir: str = "/var/lib/hsi-redis/snapshots"
    snapshot_keep: int = 7


class _Reader:
    """Reads one host's data, collecting every problem instead of stopping at the first."""

    def __init__(self, host_name: str, data: dict[str, Any]):
        self.host_name = host_name
        self.data = data
        self.problems: list[str] = []

    def fail(self, setting: str, message: str) -> None:
        self.problems.append(f"{self.host_name}: {setting}: {message}")

    def raw(self, name: str) -> Any:
        value = self.data.get(name)
        return DEFAULTS[name] if value is None else value

    def boolean(self, name: str) -> bool:
        value = self.raw(name)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        self.fail(name, f"expected true or false, got {value!r}")
        return bool(DEFAULTS[name])

    def integer(self, name: str, low: int, high: int) -> int:
        value = self.raw(name)
        try:
            number = int(value)
            if isinstance(value, bool) or str(number) != str(value).strip():
                raise ValueError
        except (TypeError, ValueError):
            self.fail(name, f"expected a whole number, got {value!r}")
            return DEFAULTS[name]
        if not low <= number <= high:
            self.fail(name, f"{number} is out of range {low}..{high}")
        return number

    def choice(self, name: str, choices) -> str:
        value = self.raw(name)
        if value not in choices:
            self.fail(name, f"{value!r} is not one of: {', '.join(choices)}")
            return DEFAULTS[name]
        return value

    def text(self, name: str, pattern: re.Pattern, what: str) -> str:
        value = self.raw(name)
        if not _whole(pattern, value):
            self.fail(name, f"{value!r} is not {what}")
            return str(DEFAULTS[name])
        return value


def _bind_addresses(reader: _Reader) -> tuple[str, ...]:
    value = reader.raw("redis_bind")
    if isinstance(value, str):
        value = [item for item in _list_items(value) if item]
    if not isinstance(value, (list, tuple)) or not value:
        reader.fail("redis_bind", f"expected a list of addresses, got {value!r}")
        return tuple(DEFAULTS["redis_bind"])
    addresses = []
    for address in value:
        plain = address[1:] if isinstance(address, str) and address.startswith("-") else address
        if plain != "*" and not _ip_address(plain):
            reader.fail("redis_bind", f"{address!r} is not an IP address (optionally prefixed with '-')")
            continue
        addresses.append(address)
    return tuple(addresses)


def local_address(bind: tuple[str, ...]) -> str:
    """Where a client on the host reaches the server: its first bind address (a wildcard: loopback)."""
    first = bind[0].lstrip("-")
    return {"*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "::*": "::1"}.get(first, first)


def _is_loopback(address: str) -> bool:
    plain = address.lstrip("-")
    return plain != "*" and ipaddress.ip_address(plain).is_loopback


def memory_bytes(value: str) -> int | None:
    """Bytes in a Redis size such as ``256mb`` or ``1g``; None when it is not one."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    match = _MEMORY_RE.fullmatch(text.strip(" ")) if isinstance(text, str) else None
    if not match:
        return None
    return int(match.group(1)) * _MEMORY_UNITS[(match.group(2) or "").lower()]


def _denied_commands(reader: _Reader) -> tuple[str, ...]:
    value = reader.raw("redis_acl_denied_commands")
    if isinstance(value, str):
        value = [item for item in _list_items(value) if item]
    if not isinstance(value, (list, tuple)):
        reader.fail("redis_acl_denied_commands", f"expected a list of command names, got {value!r}")
        return DENIED_COMMANDS
    commands = []
    for item in value:
        name = item.strip(" ").lower() if isinstance(item, str) else item
        if not _whole(_COMMAND_RE, name):
            reader.fail("redis_acl_denied_commands", f"{item!r} is not a command name (NAME or NAME|SUBCOMMAND)")
        elif name.split("|")[0] in ESSENTIAL_COMMANDS:
            reader.fail("redis_acl_denied_commands", f"{name!r} cannot be denied: the backend needs it to connect")
        elif name not in commands:
            commands.append(name)
    return tuple(commands)


def _backend_config_set(reader: _Reader, denied: tuple[str, ...]) -> bool:
    allowed = reader.boolean("redis_backend_config_set")
    if allowed and {"config", "config|set"} & set(denied):
        reader.fail("redis_backend_config_set", "true, but redis_acl_denied_commands denies CONFIG SET")
    return allowed


def _network_warnings(bind: tuple[str, ...], tls_enabled: bool) -> tuple[str, ...]:
    exposed = [a.lstrip("-") for a in bind if not _is_loopback(a)]
    if not exposed or tls_enabled:
        return ()
    warning = (f"listens on {', '.join(exposed)} without TLS: the password and data cross the network "
               "in clear text (redis_allow_plaintext; set redis_tls, or bind to loopback only)")
    return (warning,)


def _exposure(reader: _Reader, bind: tuple[str, ...], tls: bool, tls_only: bool) -> tuple[bool, bool, list[str]]:
    """(redis_allow_plaintext, redis_firewall, warnings) of a server: beyond loopback it needs TLS unless
    plain text is allowed on purpose (warned), and says when nothing filters its ports."""
    allow = reader.boolean("redis_allow_plaintext")
    firewall = reader.boolean("redis_firewall")
    exposed = [a.lstrip("-") for a in bind if not _is_loopback(a)]
    warnings: list[str] = []
    if not exposed:
        return allow, firewall, warnings
    if not tls and not allow:
        reader.fail("redis_bind", f"listens on {', '.join(exposed)} without TLS: set redis_tls (the backends "
                    "then connect over TLS), or redis_allow_plaintext: true to accept clear text on the network")
    warnings += _network_warnings(bind, tls) if allow else []
    if tls and allow and not tls_only:
        warnings.append(f"redis_allow_plaintext: the plain port also admits other hosts on {', '.join(exposed)}, "
                        "in clear text (set redis_tls_only, or leave redis_allow_plaintext off)")
    if not firewall:
        warnings.append(f"redis_firewall is off: nothing the deploy manages filters who reaches the server on "
                        f"{', '.join(exposed)}")
    return allow, firewall, warnings


def _sources(reader: _Reader, name: str) -> tuple[str, ...]:
    """A list of IP addresses or CIDRs (e.g. `redis_firewall_allow`), each in its normal form."""
    value = reader.raw(name)
    if isinstance(value, str):
        value = [item for item in _list_items(value) if item]
    if not isinstance(value, (list, tuple)):
        reader.fail(name, f"expected a list of IP addresses or CIDRs, got {value!r}")
        return ()
    found: list[str] = []
    for item in value:
        network = _network(item)
        if network is None:
            reader.fail(name, f"{item!r} is not an IP address or CIDR (e.g. 10.20.0.7 or 10.20.0.0/24)")
        elif network not in found:
            found.append(network)
    return tuple(found)


def _network(value: Any) -> str | None:
    """`value` as an address or CIDR in its normal form (a host's address without /32), or None."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Fa-f:.]+(/[0-9]{1,3})?", value):
        return None
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
    return str(network.network_address) if network.num_addresses == 1 else str(network)


def _password(reader: _Reader, development: bool, exposed: bool = False) -> tuple[Secret | None, str]:
    env_value = os.environ.get("REDIS_PASSWORD")
    if env_value:
        value, source = env_value, "environment REDIS_PASSWORD"
    elif reader.data.get("redis_password") not in (None, ""):
        value, source = reader.data["redis_password"], "host data redis_password"
        if isinstance(value, Secret):
            value = value.reveal()
    else:
        return credentials.generated_password(reader.host_name), "generated (control machine store)"
    if not isinstance(value, str):
        reader.fail("redis_password", f"expected text ({source})")
        return None, source
    problem = credentials.password_problem(value)
    if problem:
        reader.fail("redis_password", f"{problem} ({source})")
        return None, source
    minimum = reader.integer("redis_password_min_length", 8, 1024)
    if exposed and len(value) < minimum:
        # A development host may keep a short password only while nothing outside can reach it.
        reader.fail("redis_password", f"shorter than {minimum} characters ({source}) on a server that "
                    "listens beyond loopback (redis_bind); no exception for development hosts there")
    elif not development and len(value) < minimum:
        reader.fail(
            "redis_password",
            f"shorter than {minimum} characters ({source}); use a longer one, "
            "or mark the host redis_development=true",
        )
    return Secret(value), source


def _control_path(reader: _Reader, name: str, default: Path) -> Path:
    value = reader.raw(name)
    if value in (None, ""):
        return default
    return Path(str(value)).expanduser().resolve()


def _tls(reader: _Reader, backend_host: str, env_path: str | None, port: int,
         warnings: list[str]) -> TlsConfig | None:
    """TLS settings; the files are checked here (pre-flight), so a bad one stops the run untouched."""
    enabled = reader.boolean("redis_tls")
    only = reader.boolean("redis_tls_only")
    tls_port = reader.integer("redis_tls_port", 1, 65535)
    client_set = reader.raw("redis_tls_client_cert") not in (None, "")
    if client_set != (reader.raw("redis_tls_client_key") not in (None, "")):
        reader.fail("redis_tls_client_cert", "set both redis_tls_client_cert and redis_tls_client_key, or neither")
    auth = reader.raw("redis_tls_auth_clients")
    auth = ("yes" if client_set else "no") if auth is None else str(auth).lower()
    auth = {"true": "yes", "false": "no"}.get(auth, auth)
    if auth not in ("yes", "optional", "no"):
        reader.fail("redis_tls_auth_clients", f"{auth!r} is not one of: yes, optional, no")
    backend_dir = _backend_dir(reader, env_path)
    if not enabled:
        if only:
            reader.fail("redis_tls_only", "needs redis_tls=true (otherwise no port would be open)")
        return None
    if tls_port == port:
        reader.fail("redis_tls_port", f"{tls_port} is also redis_port; pick another port")
    if auth == "yes" and not client_set:
        reader.fail("redis_tls_auth_clients", "yes requires a client certificate for the backend "
                    "(redis_tls_client_cert / redis_tls_client_key), or use optional / no")
    layout = pki.pki_layout(pki.pki_dir(), reader.host_name)
    paths = tls_preflight.TlsPaths(
        ca=_control_path(reader, "redis_tls_ca_cert", layout.ca),
        cert=_control_path(reader, "redis_tls_cert", layout.cert),
        key=_control_path(reader, "redis_tls_key", layout.key),
        client_cert=_control_path(reader, "redis_tls_client_cert", layout.client_cert) if client_set else None,
        client_key=_control_path(reader, "redis_tls_client_key", layout.client_key) if client_set else None,
    )
    contents, problems, notes = tls_preflight.check_tls_files(paths, backend_host)
    for problem in problems:
        reader.problems.append(f"{reader.host_name}: {problem}")
    warnings.extend(notes)
    if contents is None:
        return None
    return TlsConfig(
        port=tls_port, only=only, auth_clients=auth, ca_pem=contents["ca"], cert_pem=contents["cert"],
        key_pem=Secret(contents["key"]), client_cert_pem=contents.get("client_cert"),
        client_key_pem=Secret(contents["client_key"]) if client_set else None, backend_dir=backend_dir,
    )


def _backend_dir(reader: _Reader, env_path: str | None) -> str | None:
    """The backend's CA and client files' directory: the setting, else `redis-tls/` beside its `.env`."""
    backend_dir = reader.raw("redis_tls_backend_dir") or (
        f"{env_path.rsplit('/', 1)[0] or ''}/redis-tls" if env_path else None)
    if backend_dir is not None and not _whole(_PATH_RE, backend_dir):
        reader.fail("redis_tls_backend_dir", f"{backend_dir!r} is not an absolute directory path")
        return None
    return backend_dir


def _backend_files(reader: _Reader) -> tuple[str | None, str | None, str | None]:
    """(.env path, owner, group) of the backend's files on this host."""
    env_path = reader.raw("redis_backend_env_path") or None
    if env_path is not None and (not _whole(_PATH_RE, env_path)
                                 or env_path.endswith("/") or "/../" in env_path + "/"
                                 or "/./" in env_path + "/"):
        reader.fail("redis_backend_env_path", f"{env_path!r} is not an absolute file path")
    owner = reader.raw("redis_backend_env_owner") or None  # unset: decided on the host (see clients.py)
    if owner is not None and not _whole(_USER_RE, owner):
        reader.fail("redis_backend_env_owner", f"{owner!r} is not a valid user name")
    group = reader.raw("redis_backend_env_group") or None
    if group is not None and not _whole(_USER_RE, group):
        reader.fail("redis_backend_env_group", f"{group!r} is not a valid group name")
    return env_path, owner and str(owner), group and str(group)


ROLES = ("both", "server", "backend")
# Used only where the backend runs (role backend or both): set on a server-only host, ignored (warned).
BACKEND_SIDE = ("redis_backend_env_path", "redis_backend_env_owner", "redis_backend_env_group",
                "redis_tls_backend_dir", "redis_backend_db", "redis_backend_unit", "redis_backend_address")
# What a backend host takes from its own data; everything else comes from its server (ignored, warned).
BACKEND_OWN = (*BACKEND_SIDE, "redis_role", "redis_server", "redis_verify_only")


def _ignored(reader: _Reader, names, why: str) -> list[str]:
    """Warnings for settings given (not defaulted) that this host's role does not use."""
    given = sorted(k for k in names if k in DEFAULTS and reader.data.get(k) not in (None, ""))
    return [f"{', '.join(given)}: ignored ({why})"] if given else []


def _backend_address(reader: _Reader, hint: str | None) -> str | None:
    """A backend host's address as its server sees it: the setting, else an IP address it is known by."""
    value = reader.raw("redis_backend_address")
    if value in (None, ""):
        return _network(hint) if hint and "/" not in hint else None
    network = _network(value)
    if network is None:
        reader.fail("redis_backend_address", f"{value!r} is not an IP address or CIDR")
    return network


def _parse_backend(reader: _Reader, hint: str | None) -> Settings:
    """A backend host: its own files and its server's name; the server's settings fill in the rest
    (see target.resolve_backend). Nothing is generated or read on the control machine for it."""
    server = reader.raw("redis_server")
    if not isinstance(server, str) or not server.strip():
        reader.fail("redis_server", "a backend host (redis_role: backend) names its server's inventory host")
        server = ""
    env_path, owner, group = _backend_files(reader)
    if env_path is None:
        reader.fail("redis_backend_env_path", "a backend host needs the path of the backend's .env")
    defaults = {name.removeprefix("redis_"): DEFAULTS[name] for name in
                ("redis_port", "redis_size", "redis_maxmemory_policy", "redis_appendfsync", "redis_flavour",
                 "redis_backend_host", "redis_source", "redis_minimum_version", "redis_upstream_version")}
    return Settings(
        host_name=reader.host_name, password=Secret(""), password_source=f"the server's ({server})",
        development=False, bind=(), maxmemory=SIZES[DEFAULTS["redis_size"]], backend_env_path=env_path,
        backend_env_owner=owner, backend_env_group=group, backend_db=reader.integer("redis_backend_db", 0, 15),
        verify_only=reader.boolean("redis_verify_only"), upstream_key="", upstream_key_fingerprint="",
        backend_unit=_unit_name(reader, "redis_backend_unit"), role="backend", server=server.strip(),
        backend_address=_backend_address(reader, hint), backend_dir=_backend_dir(reader, env_path),
        firewall=False, kernel_tuning=False,
        warnings=tuple(_ignored(reader, set(DEFAULTS) - set(BACKEND_OWN),
                                f"a backend host takes them from its server {server.strip() or '?'}")),
        **defaults,
    )


# The exporter's own password, generated once per host in the control machine's store (like the admin's).
EXPORTER_SECRET = "exporter_password"


def _exporter_san(reader: _Reader, tls: TlsConfig, address: str) -> None:
    """Under TLS-only the exporter connects over TLS to the address the server listens on here, and checks
    the server certificate's names against it (Go's TLS client): the certificate must cover it."""
    leaf = tls_preflight.load_certificates(tls.cert_pem.encode())[0]
    if not tls_preflight.covers(leaf, address):
        reader.fail("redis_exporter", f"the exporter connects to {address} (the first redis_bind address) over TLS "
                    f"and checks the server certificate for that name, which it does not cover "
                    f"({', '.join(tls_preflight.san_names(leaf)) or 'no names'}); add {address} to its SAN "
                    "(python -m operations.certs does), or bind a covered address first")


_UNIT_RE = re.compile(r"[A-Za-z0-9:_.@-]{1,250}")


def _extra_config(reader: _Reader) -> tuple[str, ...]:
    """Extra directive lines: one directive per item, no line breaks, no NUL."""
    value = reader.raw("redis_extra_config")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        reader.fail("redis_extra_config", f"expected a list of directive lines, got {type(value).__name__}")
        return ()
    lines = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            reader.fail("redis_extra_config", f"{item!r} is not a directive line")
        elif any(char in item for char in "\n\r\x00"):
            reader.fail("redis_extra_config", "a line contains a newline or NUL (one directive per item)")
        else:
            lines.append(item.strip())
    return tuple(lines)


def _unit_name(reader: _Reader, name: str) -> str | None:
    value = reader.raw(name)
    if value in (None, ""):
        return None
    if not _whole(_UNIT_RE, value):
        reader.fail(name, f"{value!r} is not a systemd unit name")
        return None
    return value if "." in value else f"{value}.service"


def _plain_path(value: Any) -> bool:
    """An absolute path without `.`/`..` components or a trailing slash (`/` itself refused)."""
    return (_whole(_PATH_RE, value) and value != "/" and not value.endswith("/")
            and "/../" not in value + "/" and "/./" not in value + "/" and "//" not in value)


def _backups(reader: _Reader) -> dict[str, Any]:
    """Where backup.py keeps its copies (control machine), and the scheduled snapshots (host)."""
    directory = reader.raw("redis_backup_dir")
    if not _whole(_LIST_TEXT_RE, directory) or not directory.strip():
        reader.fail("redis_backup_dir", f"{directory!r} is not a directory path")
        directory = DEFAULTS["redis_backup_dir"]
    snapshots = reader.raw("redis_snapshot_dir")
    if not _plain_path(snapshots):
        reader.fail("redis_snapshot_dir", f"{snapshots!r} is not an absolute directory path")
    return {
        "backup_dir": Path(directory).expanduser(),
        "backup_keep": reader.integer("redis_backup_keep", 1, 100_000),
        "backup_schedule": reader.choice("redis_backup_schedule", ("off", *SCHEDULES)),
        "snapshot_dir": snapshots,
        "snapshot_keep": reader.integer("redis_snapshot_keep", 1, 100_000),
    }


def parse(host_name: str, data: dict[str, Any], address: str | None = None) -> tuple[Settings | None, list[str]]:
    """Parse one host's data. Returns the settings (None if invalid) and the problems found.

    `address`: how pyinfra reaches the host (`ssh_hostname`, else its name): a backend host's
    default `redis_backend_address` when it is an IP address."""
    reader = _Reader(host_name, data)
    role = reader.choice("redis_role", ROLES)
    if role == "backend":
        settings = _parse_backend(reader, address)
        _unknown(reader, data)
        return (None if reader.problems else settings), reader.problems
    if reader.data.get("redis_server") not in (None, ""):
        reader.fail("redis_server", f"only a backend host (redis_role: backend) names a server; this host's "
                    f"role is {role}")
    development = reader.boolean("redis_development")
    bind = _bind_addresses(reader)
    password, source = _password(reader, development, exposed=not all(map(_is_loopback, bind)))
    size = reader.choice("redis_size", tuple(SIZES))
    maxmemory = reader.raw("redis_maxmemory")
    if maxmemory is None:
        maxmemory = SIZES[size]
    elif memory_bytes(maxmemory) is None:
        reader.fail("redis_maxmemory", f"{maxmemory!r} is not a size such as 256mb or 1gb")
    elif memory_bytes(maxmemory) < _MEMORY_MIN:
        reader.fail("redis_maxmemory", f"{maxmemory!r} is below 1mb")
    env_path, owner, group_value = _backend_files(reader)
    role_warnings: list[str] = []
    if role == "server":  # no backend here: its files go to the backend hosts naming this server
        role_warnings = _ignored(reader, BACKEND_SIDE, "redis_role is server: no backend runs on this host")
        env_path = None
    backend_host = reader.raw("redis_backend_host")
    if not _ip_address(backend_host) and not _whole(_HOSTNAME_RE, backend_host):
        reader.fail("redis_backend_host", f"{backend_host!r} is not a host name or IP address")
        backend_host = str(DEFAULTS["redis_backend_host"])
    warnings: list[str] = []
    port = reader.integer("redis_port", 1, 65535)
    tls = _tls(reader, backend_host, env_path, port, warnings)
    exporter = reader.boolean("redis_exporter")
    exporter_listen = reader.raw("redis_exporter_listen")
    if not _whole(_LISTEN_RE, exporter_listen):
        reader.fail("redis_exporter_listen", f"{exporter_listen!r} is not HOST:PORT (e.g. 127.0.0.1:9121)")
    if exporter and tls is not None and tls.only:
        _exporter_san(reader, tls, local_address(bind) if bind else "127.0.0.1")

    acl_denied = _denied_commands(reader)
    allow_plaintext, firewall, exposure = _exposure(reader, bind, tls is not None or reader.boolean("redis_tls"),
                                                    reader.boolean("redis_tls_only"))
    settings = Settings(
        host_name=host_name,
        password=password or Secret(""),
        password_source=source,
        development=development,
        bind=bind,
        port=port,
        size=size,
        maxmemory=str(maxmemory).strip().lower(),
        maxmemory_policy=reader.choice("redis_maxmemory_policy", MAXMEMORY_POLICIES),
        appendfsync=reader.choice("redis_appendfsync", ("always", "everysec", "no")),
        flavour=reader.choice("redis_flavour", ("auto", "redis", "valkey")),
        backend_env_path=env_path,
        backend_env_owner=owner and str(owner),
        backend_env_group=group_value and str(group_value),
        backend_host=backend_host,
        backend_db=reader.integer("redis_backend_db", 0, 15),
        verify_only=reader.boolean("redis_verify_only"),
        tls=tls,
        exporter=exporter,
        exporter_password=credentials.generated_password(host_name, EXPORTER_SECRET) if exporter else None,
        exporter_listen=exporter_listen,
        **sources.parse_source_settings(reader),
        acl_denied=acl_denied,
        backend_config_set=_backend_config_set(reader, acl_denied),
        auth_failure_warn=reader.integer("redis_auth_failure_warn", 1, 1_000_000),
        kernel_tuning=reader.boolean("redis_kernel_tuning"),
        warnings=tuple(warnings + exposure + role_warnings),
        extra_config=_extra_config(reader),
        restart_wait=reader.integer("redis_restart_wait", 5, 3600),
        backend_unit=_unit_name(reader, "redis_backend_unit") if env_path else None,
        role=role, server=host_name, backend_dir=_backend_dir(reader, env_path) if env_path else None,
        allow_plaintext=allow_plaintext, firewall=firewall,
        firewall_allow=_sources(reader, "redis_firewall_allow"),
        **_backups(reader),
    )
    _unknown(reader, data)
    return (None if reader.problems else settings), reader.problems


def _unknown(reader: _Reader, data: dict[str, Any]) -> None:
    for key in sorted(k for k in data if k.startswith("redis_") and k not in DEFAULTS):
        reader.fail(key, REMOVED.get(key, "unknown setting (a typo?); see the README's settings table"))


def _loopback_name(name: str) -> bool:
    if name.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    return _ip_address(name) and ipaddress.ip_address(name).is_loopback


def check_topology(hosts: dict[str, Settings], names: list[str]) -> tuple[dict[str, Settings], list[str]]:
    """Checks across hosts (every host parsed alone first): each backend host names a server of the
    inventory; a server with backend hosts gives them a name that is not its loopback and, when its
    firewall filters, knows each one's address. Returns the settings (warnings added) and the problems.
    `names`: every inventory host (one that failed to parse is not in `hosts`)."""
    problems: list[str] = []
    backends: dict[str, list[Settings]] = {}
    for name, conf in hosts.items():
        if conf.role != "backend" or not conf.server:
            continue
        server = hosts.get(conf.server)
        if conf.server not in names:
            problems.append(f"{name}: redis_server: {conf.server!r} is not a host of this inventory (its hosts: "
                            f"{', '.join(n for n in names if n != name) or 'none'})")
        elif server is not None and not server.serves:
            problems.append(f"{name}: redis_server: {conf.server} is a backend host too (redis_role: backend), "
                            "not a server")
        elif server is not None:
            backends.setdefault(conf.server, []).append(conf)
    found = dict(hosts)
    for server_name, clients in backends.items():
        server = hosts[server_name]
        them = ", ".join(c.host_name for c in clients)
        if _loopback_name(server.backend_host):
            problems.append(f"{server_name}: redis_backend_host: {server.backend_host!r} is the host itself, but its "
                            f"backend hosts ({them}) connect from elsewhere: set the name or address they reach "
                            "it by (its server certificate must cover it)")
        if server.exposed and server.firewall:
            for client in clients:
                if client.backend_address is None:
                    problems.append(f"{client.host_name}: redis_backend_address: the firewall of {server_name} admits "
                                    "only its backends' addresses: set this host's address as the server sees it "
                                    "(an IP address or CIDR)")
        if not server.exposed:
            found[server_name] = replace(server, warnings=(*server.warnings, (
                f"listens on loopback only (redis_bind): its backend hosts ({them}) reach it only if they share "
                "its network namespace")))
    return found, problems

