"""The one read: everything a run decides from, in one round trip (the host program's `state` verb).

`HostStateFact` asks the program for the platform, packages, units, every managed file (salted SHA-256,
owner, mode, link or not), the backend `.env` keys, the kernel values and the running server (reached
where it listens now: ports, AOF, run_id, version, role, identities, least privilege, ACL LOG, TLS).
`process()` turns the program's `key=value` lines into typed values: bools, ints, small frozen records.
Nothing in the output is secret: files are described by hashes salted afresh for every read.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from pyinfra.api import FactBase

from . import program

# INFO fields the program reports (info.<name>=value).
INFO_FIELDS = (
    "redis_version", "valkey_version", "server_name", "uptime_in_seconds", "run_id", "process_id", "tcp_port",
    "aof_enabled", "aof_rewrite_in_progress", "aof_rewrite_scheduled", "aof_last_bgrewrite_status",
    "aof_last_write_status", "loading", "rdb_bgsave_in_progress", "rdb_last_bgsave_status", "maxmemory",
    "maxmemory_policy", "role", "config_file", "executable",
)
# Replies that mean "a Redis server answered" (as opposed to refused, reset or timed out).
SERVER_REPLIES = ("PONG", "NOAUTH", "WRONGPASS", "ERR", "-ERR", "LOADING", "NOPERM")


def new_salt() -> str:
    """A fresh salt for one read (hex: safe in a command line)."""
    return secrets.token_hex(16)


def salted_sha256(salt: str, data: bytes | str) -> str:
    """What the program reports for `data` hashed with `salt`: sha256(salt + data)."""
    return hashlib.sha256(salt.encode() + (data.encode() if isinstance(data, str) else data)).hexdigest()


def answered(reply: str) -> bool:
    """Whether a reply came from a Redis server."""
    return reply.strip().startswith(SERVER_REPLIES)


# -- what is read -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Where one server flavour lives on a host (a platform row's service, config, CLI, data)."""

    service: str
    config: str
    cli: str
    data_dir: str

    def arg(self) -> str:
        return f"{self.service}:{self.config}:{self.cli}:{self.data_dir}"


@dataclass(frozen=True)
class StateRequest:
    """What the state read asks for. Its repr stays short: pyinfra prints fact arguments at -v."""

    salt: str
    layouts: tuple[Layout, ...] = ()
    files: tuple[str, ...] = ()
    dirs: tuple[str, ...] = ()
    envs: tuple[tuple[str, tuple[str, ...]], ...] = ()   # (path, owned keys)
    packages: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    selinux_ports: tuple[int, ...] = ()
    dnf_candidates: bool = False
    kernel: bool = False
    server_only: bool = False   # `verify`: the server part (and the files/envs asked for), nothing else
    server: bool = True         # False on a backend host: no server part at all
    firewall: bool = False      # what the host's firewall is and whether the deploy's rules are loaded
    metrics: str = ""           # HOST:PORT of the exporter's page: `exporter.up` from its redis_up
    snapshots: str = ""         # the scheduled snapshots' directory: their count and the newest's age

    def __repr__(self) -> str:
        return f"StateRequest({len(self.files)} files, {len(self.layouts)} layouts)"

    def bits(self) -> list:
        bits = program.options(salt=self.salt, layout=[layout.arg() for layout in self.layouts],
                               file=list(self.files), dir=list(self.dirs))
        for path, keys in self.envs:
            bits += program.options(env=path, env_keys=" ".join(keys))
        bits += program.options(
            packages=" ".join(self.packages) or None, units=" ".join(self.units) or None,
            modules=" ".join(self.modules) or None,
            selinux_ports=" ".join(str(p) for p in self.selinux_ports) or None,
            dnf_candidates=self.dnf_candidates, kernel=self.kernel, no_server=not self.server,
            firewall=self.firewall, metrics=self.metrics or None, snapshots=self.snapshots or None,
        )
        return bits


# -- what comes back --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileInfo:
    kind: str            # "f" regular, "l" symlink, "d" directory, "-" missing
    mode: int = 0
    user: str = ""
    group: str = ""
    sha: str = ""
    writer: str = "root"  # directories and .env: root | <user> | unsafe

    @property
    def exists(self) -> bool:
        return self.kind != "-"

    def same(self, salt: str, content: bytes | str, mode: int, user: str, group: str) -> bool:
        """Whether the file is exactly this (`group` "-": the owner's login group, whatever it is)."""
        return (self.kind == "f" and self.sha == salted_sha256(salt, content) and self.mode == mode
                and self.user == user and group in ("-", self.group))


MISSING = FileInfo("-")


@dataclass(frozen=True)
class EnvInfo:
    """A dotenv file: its metadata, the salted hash of each line assigning an owned key, unreadable lines."""

    file: FileInfo
    crlf: bool
    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    bad: tuple[tuple[int, str], ...] = ()      # (line number, reason)


@dataclass(frozen=True)
class Unit:
    load: str
    active: str
    enabled: str

    @property
    def running(self) -> bool:
        return self.active == "active"


@dataclass(frozen=True)
class Server:
    """The running server as a client on the host sees it."""

    layout: int = -1
    active: str = ""
    enabled: str = ""
    cli: bool = False
    via: str = "none"             # plain | tls | none
    addr: str = ""
    port: int = 0
    tls_port: int = 0
    config: str = ""              # whose reach answered: current | last-good
    noauth: str = ""
    auth: str = ""
    identity: str = "none"        # hsi-admin | default | none
    info: dict[str, str] = field(default_factory=dict)
    keys: int = 0
    persistent: int = 0
    conf: dict[str, str] = field(default_factory=dict)
    backend_ping: str = ""
    backend_flushall: str = ""
    backend_config_set: str = ""
    acl_failures: int | None = None   # the sum of ACL LOG's auth entries (None: not read)
    acl_previous: str = ""            # "run_id total epoch" the previous run recorded
    acl_recent: int = 0               # auth failures in entries updated since that run
    acl_full: bool = False            # ACL LOG holds acllog-max-len entries: old ones fall off
    tls_ping: str = ""
    tls_nocert: str = ""
    plain_ping: str = ""
    data_rdb: int | None = None
    data_aof: int | None = None

    @property
    def found(self) -> bool:
        return self.layout >= 0

    @property
    def running(self) -> bool:
        return self.active == "active"

    @property
    def up(self) -> bool:
        """Answers PING with the deploy's credential."""
        return self.auth.strip() == "PONG"

    @property
    def aof(self) -> bool:
        return self.info.get("aof_enabled") == "1"

    @property
    def version(self) -> str:
        return self.info.get("valkey_version") or self.info.get("redis_version") or ""

    @property
    def uptime(self) -> int:
        return _int(self.info.get("uptime_in_seconds"), 0)

    @property
    def run_id(self) -> str:
        return self.info.get("run_id", "")


@dataclass(frozen=True)
class FirewallState:
    """What manages the host's firewall, and the deploy's rules as loaded now."""

    cap: bool = False             # CAP_NET_ADMIN: the host may change its firewall (a container may not)
    nft: str = ""                 # the nft command, "" when not installed
    firewalld: str = ""           # firewall-cmd --state: running | not running | "" (not installed)
    policy: bool = False          # firewalld has the policy hsi-redis loaded
    table: str = ""               # the comment of the loaded table inet hsi_redis, "" when none


@dataclass(frozen=True)
class HostState:
    os_id: str = ""
    os_version: str = ""
    os_like: str = ""
    container: str = "none"
    systemd: bool = False
    restart_pending: bool = False
    program_sha: str = ""
    pm: str = "none"
    packages: dict[str, tuple[str, str]] = field(default_factory=dict)   # name -> (installed, candidate)
    apt_lists_age: int = -1
    selinux: str = "Disabled"
    modules: dict[str, str] = field(default_factory=dict)
    selinux_ports: dict[int, str] = field(default_factory=dict)
    units: dict[str, Unit] = field(default_factory=dict)
    files: dict[str, FileInfo] = field(default_factory=dict)
    dirs: dict[str, FileInfo] = field(default_factory=dict)
    envs: dict[str, EnvInfo] = field(default_factory=dict)
    kernel: dict[str, str] = field(default_factory=dict)
    server: Server = field(default_factory=Server)
    firewall: FirewallState = field(default_factory=FirewallState)
    client_cli: str = ""          # a backend host's redis-cli or valkey-cli ("" when it has none)
    exporter_up: str = ""     # the exporter's redis_up (1|0), down (no page), unverified (no tool), "" (not asked)
    errors: tuple[str, ...] = ()
    snapshots: int = 0                   # complete scheduled snapshots on the host
    snapshot_age: int | None = None      # the newest one's age in seconds (host clock); None: none

    @property
    def in_container(self) -> bool:
        return self.container not in ("", "none")

    def file(self, path: str) -> FileInfo:
        return self.files.get(path, MISSING)

    def differs(self, salt: str, entry) -> bool:
        """Whether the host's file is not exactly this program.FileEntry (content, mode, owner, group)."""
        return not self.file(entry.path).same(salt, entry.content, entry.mode, entry.user, entry.group)

    def installed(self, package: str) -> str:
        return self.packages.get(package, ("", ""))[0]

    def candidate(self, package: str) -> str:
        return self.packages.get(package, ("", ""))[1]

    def unit(self, name: str) -> Unit:
        return self.units.get(name.removesuffix(".service"), Unit("not-found", "inactive", ""))


# -- parsing ----------------------------------------------------------------------------------------

def _int(value: str | None, default: int | None = None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def _dash(value: str) -> str:
    return "" if value == "-" else value


def _file(fields: list[str], writer: bool = False) -> tuple[str, FileInfo]:
    """`kind mode user group sha path` (or `kind mode user group writer path` for dirs)."""
    kind, mode, user, group, fifth, path = fields
    info = FileInfo(kind=kind, mode=_int(mode, 0) if kind == "-" else int(mode, 8), user=_dash(user),
                    group=_dash(group), sha="" if writer else _dash(fifth), writer=fifth if writer else "root")
    return path, info


_SERVER_TEXT = {"server.active": "active", "server.enabled": "enabled", "server.via": "via",
                "server.addr": "addr", "server.config": "config", "server.noauth": "noauth",
                "server.auth": "auth", "server.identity": "identity", "backend.ping": "backend_ping",
                "backend.flushall": "backend_flushall", "backend.config_set": "backend_config_set",
                "acl.previous": "acl_previous", "tls.ping": "tls_ping", "tls.nocert": "tls_nocert",
                "plain.ping": "plain_ping"}
_SERVER_INT = {"server.layout": "layout", "server.port": "port", "server.tls_port": "tls_port", "keys": "keys",
               "persistent": "persistent", "acl.recent": "acl_recent"}
_SERVER_OPTIONAL_INT = {"acl.failures": "acl_failures", "data.rdb": "data_rdb", "data.aof": "data_aof"}
# The kernel values the program reports, under their own names (`vm.overcommit_memory=1`).
KERNEL_KEYS = ("vm.overcommit_memory", "net.core.somaxconn", "thp")
_TOP_TEXT = {"os_id": "os_id", "os_version": "os_version", "os_like": "os_like", "container": "container",
             "pm": "pm", "selinux": "selinux", "program": "program_sha", "exporter.up": "exporter_up"}


def parse(lines: list[str]) -> HostState:
    """The program's `state`/`verify` output as a HostState."""
    top: dict = {"packages": {}, "modules": {}, "selinux_ports": {}, "units": {}, "files": {}, "dirs": {},
                 "kernel": {}}
    server: dict = {"info": {}, "conf": {}}
    firewall: dict = {}
    envs: list[tuple[str, FileInfo, bool]] = []
    env_keys: dict[int, dict[str, list[str]]] = {}
    env_bad: dict[int, list[tuple[int, str]]] = {}
    errors: list[str] = []
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key in _TOP_TEXT:
            top[_TOP_TEXT[key]] = _dash(value.strip())
        elif key == "systemd":
            top["systemd"] = value.strip() == "1"
        elif key == "restart_pending":
            top["restart_pending"] = value.strip() == "1"
        elif key == "apt_lists_age":
            top["apt_lists_age"] = _int(value, -1)
        elif key == "pkg":
            name, installed, candidate = (value.split() + ["-", "-"])[:3]
            top["packages"][name] = (_dash(installed), _dash(candidate))
        elif key == "module":
            name, stream = (value.split() + ["-"])[:2]
            top["modules"][name] = _dash(stream)
        elif key == "selinux_port":
            port, kind = (value.split() + ["-"])[:2]
            if port.isdigit():
                top["selinux_ports"][int(port)] = _dash(kind)
        elif key == "unit":
            name, load, active, enabled = (value.split() + ["", "", ""])[:4]
            top["units"][name.removesuffix(".service")] = Unit(load, active, enabled)
        elif key == "file":
            path, info = _file(value.split(" ", 5))
            top["files"][path] = info
        elif key == "dir":
            path, info = _file(value.split(" ", 5), writer=True)
            top["dirs"][path] = info
        elif key == "env":
            kind, mode, user, group, crlf, writer, path = value.split(" ", 6)
            info = FileInfo(kind=kind, mode=int(mode, 8) if kind != "-" else 0, user=_dash(user),
                            group=_dash(group), writer=writer)
            envs.append((path, info, crlf == "1"))
        elif key == "envkey":
            index, name, sha = value.split()
            env_keys.setdefault(int(index), {}).setdefault(name, []).append(sha)
        elif key == "envbad":
            index, lineno, reason = value.split(" ", 2)
            env_bad.setdefault(int(index), []).append((int(lineno), reason))
        elif key in KERNEL_KEYS:
            top["kernel"][key] = value.strip()
        elif key.startswith("info."):
            server["info"][key[len("info."):]] = value.strip()
        elif key.startswith("conf."):
            server["conf"][key[len("conf."):]] = value.strip()
        elif key in _SERVER_TEXT:
            server[_SERVER_TEXT[key]] = value.strip()
        elif key in _SERVER_INT:
            server[_SERVER_INT[key]] = _int(value, 0)
        elif key in _SERVER_OPTIONAL_INT:
            server[_SERVER_OPTIONAL_INT[key]] = _int(value)
        elif key == "server.cli":
            server["cli"] = value.strip() == "1"
        elif key == "acl.full":
            server["acl_full"] = value.strip() == "1"
        elif key == "error":
            errors.append(value.strip())
        elif key in ("firewall.cap", "firewall.policy"):
            firewall[key[len("firewall."):]] = value.strip() == "1"
        elif key == "client.cli":
            top["client_cli"] = _dash(value.strip())
        elif key in ("firewall.nft", "firewall.firewalld", "firewall.table"):
            firewall[key[len("firewall."):]] = _dash(value.strip())
        elif key == "snapshots":
            count, age = (value.split() + ["0", "-"])[:2]
            top["snapshots"], top["snapshot_age"] = _int(count, 0), _int(age)
    top["envs"] = {
        path: EnvInfo(file=info, crlf=crlf,
                      keys={k: tuple(v) for k, v in env_keys.get(i, {}).items()},
                      bad=tuple(env_bad.get(i, ())))
        for i, (path, info, crlf) in enumerate(envs)
    }
    return HostState(server=Server(**server), firewall=FirewallState(**firewall), errors=tuple(errors), **top)


class HostStateFact(FactBase):
    """Everything a run decides from, read in one trip by the host program (see the module docstring).

    Returns a `HostState`.
    """

    def command(self, request: StateRequest):
        return program.command("verify" if request.server_only else "state", *request.bits())

    def process(self, output):
        return parse(list(output))
