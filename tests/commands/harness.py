"""Run a flow against simulated hosts and read the exact host-program calls it makes.

Hosts use pyinfra's `@fake` connector (no delay). The one state read never reaches a host:
`Host.get_fact` answers `HostStateFact` from a `HostFixture` (what the host is and has: os-release,
packages, files, units, the running server), with hashes salted by the read's own salt, and records
every request. Every command is parsed back into the host program's verb, its options and the bundle it
sends on stdin (files decoded), so tests assert on what each host is asked to do.

Only `pyinfra.api` is used (never `pyinfra_cli`, which monkey-patches with gevent).
"""

from __future__ import annotations

import base64
import runpy
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar
from unittest import mock

from pyinfra.api import Config, Inventory, State
from pyinfra.api.command import QuoteString, StringCommand
from pyinfra.api.connect import connect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.host import Host
from pyinfra.api.operations import run_ops
from pyinfra.api.state import BaseStateCallback
from pyinfra.connectors.fake import FakeConnector
from pyinfra.context import ctx_host, ctx_state

from operations import program, report, settings
from operations.hoststate import (
    EnvInfo,
    FileInfo,
    FirewallState,
    HostState,
    HostStateFact,
    Server,
    Unit,
    salted_sha256,
)

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "command-test-password-0123456789"

# /etc/os-release of each simulated release: (ID, VERSION_ID, ID_LIKE).
OS_RELEASES = {
    "debian-12": ("debian", "12", ""),
    "debian-13": ("debian", "13", ""),
    "ubuntu-22.04": ("ubuntu", "22.04", "debian"),
    "ubuntu-24.04": ("ubuntu", "24.04", "debian"),
    "rocky-8": ("rocky", "8.10", "rhel centos fedora"),
    "rocky-9": ("rocky", "9.5", "rhel centos fedora"),
    "rhel-10": ("rhel", "10.0", "fedora"),
    "fedora-40": ("fedora", "40", ""),
    "fedora-42": ("fedora", "42", ""),
}


def healthy_server(**changes) -> Server:
    """What a converged host's server reports (the backend's files checked separately)."""
    values = dict(
        layout=0, active="active", enabled="enabled", cli=True, via="plain", addr="127.0.0.1", port=6379,
        config="current", noauth="NOAUTH Authentication required.", auth="PONG", identity="hsi-admin",
        info={"redis_version": "7.2.4", "aof_enabled": "1", "loading": "0", "uptime_in_seconds": "5",
              "run_id": "0" * 40},
        backend_ping="PONG", backend_flushall="NOPERM this user has no permissions to run the 'flushall' command",
        backend_config_set="NOPERM this user has no permissions to run the 'config|set' command",
        acl_failures=0, acl_previous="",
    )
    values.update(changes)
    return Server(**values)


@dataclass
class HostFixture:
    """What a simulated host is and has. Anything not set reads as absent."""

    release: str
    container: str = "none"
    installed: dict[str, str] = field(default_factory=dict)   # package -> version
    candidate: str = ""
    selinux: str = "Disabled"
    module_stream: str = ""                                  # the enabled stream of the module, if any
    port_types: dict[int, str] = field(default_factory=lambda: {6379: "redis_port_t"})
    server: Server = field(default_factory=healthy_server)
    files: dict[str, tuple[bytes, int, str, str]] = field(default_factory=dict)  # path -> (content, mode, u, g)
    envs: dict[str, tuple[dict[str, str], int, str, str]] = field(default_factory=dict)  # path -> (lines...)
    # what else the read says of a .env: {"kind": "l", "writer": "unsafe", "bad": ((7, "quoted-key"),)}
    env_details: dict[str, dict] = field(default_factory=dict)
    # directories the read reports (path -> (user, group, writer)); others read as missing, root's to create
    dirs: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    units: dict[str, Unit] = field(default_factory=dict)  # name without .service; unset: `unit_default`
    unit_default: Unit = field(default_factory=lambda: Unit("loaded", "active", "enabled"))
    kernel: dict[str, str] = field(
        default_factory=lambda: {"vm.overcommit_memory": "0", "net.core.somaxconn": "4096", "thp": "madvise"})
    restart_pending: bool = False
    firewall: FirewallState = field(default_factory=FirewallState)   # what the read says when asked
    client_cli: str = ""                                              # a backend host's redis-cli, if any
    exporter_up: str = "1"  # what the exporter's page says when the read asks (`--metrics`)
    snapshots: int = 0                      # scheduled snapshots on the host, and the newest's age
    snapshot_age: int | None = None

    def state(self, request) -> HostState:
        os_id, version, like = OS_RELEASES[self.release]
        rpm = os_id not in ("debian", "ubuntu")
        salt = request.salt
        files = {}
        for path in request.files:
            if path in self.files:
                content, mode, user, group = self.files[path]
                files[path] = FileInfo("f", mode, user, group, salted_sha256(salt, content))
            else:
                files[path] = FileInfo("-")
        envs = {}
        for path, keys in request.envs:
            details = self.env_details.get(path, {})
            writer = details.get("writer") or self.dirs.get(path.rsplit("/", 1)[0], ("", "", "root"))[2]
            if path in self.envs:
                lines, mode, user, group = self.envs[path]
                envs[path] = EnvInfo(FileInfo(details.get("kind", "f"), mode, user, group, writer=writer), crlf=False,
                                     keys={k: (salted_sha256(salt, lines[k]),) for k in keys if k in lines},
                                     bad=tuple(details.get("bad", ())))
            else:
                envs[path] = EnvInfo(FileInfo(details.get("kind", "-"), writer=writer), crlf=False)
        dirs = {}
        for path in request.dirs:
            user, group, writer = self.dirs.get(path, ("", "", "root"))
            dirs[path] = FileInfo("d" if user else "-", 0o755 if user else 0, user, group, writer=writer)
        rpm_candidate = rpm and request.dnf_candidates
        return HostState(
            os_id=os_id, os_version=version, os_like=like, container=self.container, systemd=True,
            restart_pending=self.restart_pending, pm="dnf" if rpm else "apt",
            # as the program: apt always tells the candidate, dnf only when asked and not installed
            packages={p: (self.installed.get(p, ""),
                          self.candidate if not rpm or (rpm_candidate and not self.installed.get(p)) else "")
                      for p in request.packages},
            apt_lists_age=-1, selinux=self.selinux,
            modules={m: self.module_stream for m in request.modules},
            selinux_ports={p: t for p, t in self.port_types.items() if p in request.selinux_ports},
            units={u.removesuffix(".service"): self.units.get(u.removesuffix(".service"), self.unit_default)
                   for u in request.units},
            files=files, dirs=dirs, envs=envs, kernel=dict(self.kernel) if request.kernel else {},
            server=self.server if request.server else Server(),
            firewall=self.firewall if request.firewall else FirewallState(),
            client_cli="" if request.server else self.client_cli,
            exporter_up=self.exporter_up if request.metrics else "",
            snapshots=self.snapshots if request.snapshots else 0,
            snapshot_age=self.snapshot_age if request.snapshots else None,
        )


def fresh_host(release: str, **changes) -> HostFixture:
    """A host that has nothing yet: no package, no unit loaded. (Its server, which verification reads,
    answers as `healthy_server` unless `server=` says otherwise: the apply call started it.)"""
    return HostFixture(release, unit_default=Unit("not-found", "inactive", ""), **changes)


@dataclass(frozen=True)
class Entry:
    """One bundle entry: `file` or `merge`, its header fields and decoded content."""

    kind: str
    path: str
    content: str
    mode: str = ""
    user: str = ""
    group: str = ""
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Call:
    """One call of the host program: its verb, its options (name -> list of values), its bundle."""

    operation: str
    verb: str
    options: dict[str, list[str]]
    entries: tuple[Entry, ...]
    password: str | None
    text: str

    def option(self, name: str) -> str | None:
        values = self.options.get(name)
        return values[-1] if values else None

    def flag(self, name: str) -> bool:
        """Whether the bare flag `--name` was given."""
        return self.options.get(name) == [""]

    def entry(self, path: str) -> Entry:
        for entry in self.entries:
            if entry.path == path:
                return entry
        raise AssertionError(f"{self.verb}: nothing for {path} in {[e.path for e in self.entries]}")

    def paths(self) -> list[str]:
        return [e.path for e in self.entries]


def _parse_bundle(lines: list[str]) -> tuple[tuple[Entry, ...], str | None]:
    entries: list[Entry] = []
    password = None
    it = iter(lines)
    for line in it:
        if line == "end":
            break
        if line.startswith("password "):
            password = base64.b64decode(line.split(" ", 1)[1]).decode()
            continue
        payload = []
        for body in it:
            if body == ".":
                break
            payload.append(body)
        content = base64.b64decode("".join(payload)).decode()
        if line.startswith("file "):
            _, mode, user, group, flags, path = line.split(" ", 5)
            entries.append(Entry("file", path, content, mode, user, group, tuple(flags.split(","))))
        else:
            _, flags, user, group, path = line.split(" ", 4)
            entries.append(Entry("merge", path, content, "", user, group, tuple(flags.split(","))))
    return tuple(entries), password


def parse_call(operation: str, command: StringCommand, stdin) -> Call | None:
    bits = list(command.bits)
    if len(bits) < 5 or bits[:2] != ["sh", "-c"] or bits[3] != program.PROGRAM_NAME:
        return None
    options: dict[str, list[str]] = {}
    rest = bits[5:]
    for i, bit in enumerate(rest):
        if isinstance(bit, QuoteString):
            continue  # a value: taken with its option
        value = rest[i + 1].obj if i + 1 < len(rest) and isinstance(rest[i + 1], QuoteString) else ""
        options.setdefault(str(bit).removeprefix("--"), []).append(str(value))  # "" for a bare flag
    entries, password = _parse_bundle(list(stdin or []))
    return Call(operation, str(bits[4]), options, entries, password, command.get_masked_value())


@dataclass
class Result:
    calls: dict[str, list[Call]]
    other: dict[str, list[str]]           # commands that are not host-program calls (fail_host...)
    requests: dict[str, list]             # host -> StateRequests asked
    report: dict[str, dict]
    commands: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # host -> (operation, text)
    facts: dict[str, list[tuple[str, dict]]] = field(default_factory=dict)     # other facts (see `answer`)
    sequence: list[tuple[str, str]] = field(default_factory=list)             # (host, verb) as executed

    def operations(self, host: str) -> list[str]:
        """The operations that sent a command to `host`, in order."""
        return list(dict.fromkeys(operation for operation, _ in self.commands[host]))

    def failures(self, host: str) -> list[str]:
        """The `hsi-redis: ...` reasons of the commands that failed the host on purpose (fail_host)."""
        return [text for text in self.other[host] if text.startswith("echo 'hsi-redis: ")]

    def fact_kwargs(self, host: str, name: str) -> list[dict]:
        return [kwargs for fact, kwargs in self.facts[host] if fact == name]

    def verbs(self, host: str) -> list[str]:
        return [c.verb for c in self.calls[host]]

    def call(self, host: str, verb: str) -> Call:
        found = [c for c in self.calls[host] if c.verb == verb]
        assert found, f"{host}: no {verb} call in {self.verbs(host)}"
        return found[-1]

    def joined(self, host: str) -> str:
        """Everything a host was sent (options and decoded bundles), for "never mentions" checks."""
        parts = []
        for call in self.calls[host]:
            parts.append(" ".join(f"--{k} {v}" for k, values in call.options.items() for v in values))
            parts += [f"{e.path} {e.user} {e.group}\n{e.content}" for e in call.entries]
        return "\n".join(parts + self.other[host])


class _Recorder(BaseStateCallback):
    current: ClassVar[dict[str, str]] = {}

    @staticmethod
    def operation_host_start(state, host, op_hash):
        _Recorder.current[host.name] = ", ".join(sorted(state.get_op_meta(op_hash).names))


def run_flow(hosts: dict[str, tuple[HostFixture, dict]], entry: str = "deploy.py", answer=None) -> Result:
    """Run `entry` on fake hosts: {name: (fixture, host data)}; return what each host was asked to do.

    `answer(fixture, fact_class, kwargs)` answers facts other than the state read (a deploy that is not
    ours, e.g. bench/minimal_deploy.py); without it any other fact fails the test.
    """
    settings.clear_cache()
    names = list(hosts)
    host_data = {}
    for name, (_, data) in hosts.items():
        merged = {"fake_delay": 0, "fake_delay_jitter": 0, "redis_password": PASSWORD,
                  "fake_responses": {"exit 1": {"success": False, "stderr": "simulated failure"}}}
        merged.update(data)
        host_data[f"@fake/{name}"] = merged
    inventory = Inventory(([(f"@fake/{n}", host_data[f"@fake/{n}"]) for n in names], {}))
    state = State(inventory, Config())
    state.add_callback_handler(_Recorder())
    fixtures = {f"@fake/{n}": fixture for n, (fixture, _) in hosts.items()}
    calls: dict[str, list[Call]] = {n: [] for n in names}
    other: dict[str, list[str]] = {n: [] for n in names}
    requests: dict[str, list] = {n: [] for n in names}
    commands: dict[str, list[tuple[str, str]]] = {n: [] for n in names}
    facts: dict[str, list[tuple[str, dict]]] = {n: [] for n in names}
    sequence: list[tuple[str, str]] = []
    original_run = FakeConnector.run_shell_command

    def get_fact(self, cls, *args, **kwargs):
        name = self.name.removeprefix("@fake/")
        if cls is not HostStateFact:
            assert answer is not None, f"a flow asked another fact than the one read: {cls.__name__}"
            facts[name].append((cls.__name__, dict(kwargs)))
            return answer(fixtures[self.name], cls, kwargs)
        requests[name].append(kwargs["request"])
        return fixtures[self.name].state(kwargs["request"])

    def run_shell_command(self, command, print_output=False, print_input=False, **arguments):
        name = self.host.name.removeprefix("@fake/")
        stdin = arguments.get("_stdin") or getattr(command, "connector_arguments", {}).get("_stdin")
        operation = _Recorder.current.get(self.host.name, "")
        commands[name].append((operation, command if isinstance(command, str) else command.get_masked_value()))
        call = parse_call(operation, command, stdin) if isinstance(command, StringCommand) else None
        if call is not None:
            calls[name].append(call)
            sequence.append((name, call.verb))
        else:
            other[name].append(str(command))
        done = original_run(self, command, print_output=print_output, print_input=print_input, **arguments)
        if call is not None and done[0]:
            _apply(fixtures[self.host.name], call)  # the simulated host now has what the call wrote
        return done

    report_for_run = report.RunReport()
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(Host, "get_fact", get_fact))
        stack.enter_context(mock.patch.object(FakeConnector, "run_shell_command", run_shell_command))
        stack.enter_context(mock.patch.object(report, "of", lambda state=None: report_for_run))
        connect_all(state)
        with ctx_state.use(state):
            for host in state.inventory.get_active_hosts():
                with ctx_host.use(host):
                    runpy.run_path(str(ROOT / entry), run_name="__deploy__")
        try:
            run_ops(state)
        except PyinfraError as exc:  # every host failed: the CLI reports this the same way
            if "No hosts remaining" not in str(exc):
                raise
    return Result(calls=calls, other=other, requests=requests,
                  report={n.removeprefix("@fake/"): v for n, v in report_for_run.results.items()},
                  commands=commands, facts=facts, sequence=sequence)


def _apply(fixture: HostFixture, call: Call) -> None:
    """What a successful call leaves on a simulated host: its files, packages, streams, labels."""
    for entry in call.entries:
        if entry.kind == "file":
            fixture.files[entry.path] = (entry.content.encode(), int(entry.mode, 8), entry.user, entry.group)
        else:  # as the program merges: other lines kept; an existing file keeps owner, group, mode (tightened)
            old_lines, mode, user, group = fixture.envs.get(entry.path, ({}, None, None, None))
            lines = {**old_lines, **{line.split("=", 1)[0]: line for line in entry.content.splitlines()}}
            if user is None:  # a new file belongs to whoever controls its directory (root, or that user)
                writer = fixture.dirs.get(entry.path.rsplit("/", 1)[0], ("", "", "root"))[2]
                user, group = writer, writer
            user = entry.user if entry.user != "-" else user
            group = entry.group if entry.group != "-" else (entry.user if entry.user != "-" else group)
            mode = mode & 0o660 if mode is not None else (0o640 if entry.group != "-" else 0o600)
            fixture.envs[entry.path] = (lines, mode, user, group)
    if call.verb == "install":
        for package in (call.option("packages") or "").split():
            fixture.installed[package] = fixture.candidate or "7.2.4"
            if package == "nftables":
                fixture.firewall = replace(fixture.firewall, nft="/usr/sbin/nft")
        if call.option("module-stream"):
            fixture.module_stream = call.option("module-stream").split(":")[1]
        for port in (call.option("selinux-ports") or "").split():
            fixture.port_types[int(port)] = call.option("selinux-type")
    if call.verb == "firewall":
        loaded = call.option("fw-mark") if call.option("tool") == "nft" else ""
        fixture.firewall = replace(fixture.firewall, table=loaded or "", policy=call.option("tool") == "firewalld")
        if call.option("fw-unit") and call.option("tool") == "nft":
            fixture.units[call.option("fw-unit").removesuffix(".service")] = Unit("loaded", "active", "enabled")
        for path in call.options.get("remove", []):
            fixture.files.pop(path, None)
    if call.verb == "apply":
        fixture.restart_pending = False
        started = [call.option("service")] if call.flag("enable") else []
        for unit in [*started, *(call.option("enable-units") or "").split(), *(call.option("after-units") or "").split()]:
            fixture.units[unit.removesuffix(".service")] = Unit("loaded", "active", "enabled")
        for unit in (call.option("disable-units") or "").split():
            fixture.units[unit.removesuffix(".service")] = Unit("loaded", "inactive", "disabled")
        if call.option("sysctl"):
            for line in fixture.files[call.option("sysctl")][0].decode().splitlines():
                key, sep, value = line.partition("=")
                if sep and not key.startswith("#"):
                    fixture.kernel[key.strip()] = value.strip()


def make_signing_key(directory: Path, algorithm: str = "ed25519") -> tuple[Path, str]:
    """A throwaway OpenPGP key (stand-in for packages.redis.io's): (armored file, fingerprint by gpg)."""
    home = directory / "gnupg"
    home.mkdir(mode=0o700, exist_ok=True)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet"]
    subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", "HSI test key <test@example.invalid>", algorithm,
                    "sign", "never"], check=True, capture_output=True)
    armored = subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True, text=True).stdout
    colons = subprocess.run([*gpg, "--with-colons", "--fingerprint"], check=True, capture_output=True,
                            text=True).stdout
    fingerprint = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
    path = directory / "redis-upstream.asc"
    path.write_text(armored)
    return path, fingerprint
