"""Run deploy.py against simulated hosts and read the exact commands it would send.

Hosts use pyinfra's `@fake` connector (no delay). Facts never reach a host: `Host.get_fact`
is patched to answer from a `HostFixture` (what the host is and has: os-release, installed
packages, files, the running server...), and every fact asked is recorded with its
arguments, so tests can also check what the deploy *reads* (e.g. the verify probe).
Commands are recorded per operation, with the content a command sends on stdin
(managed files travel base64-encoded there) decoded for assertions.

Only `pyinfra.api` is used (never `pyinfra_cli`, which monkey-patches with gevent).
"""

from __future__ import annotations

import base64
import binascii
import re
import runpy
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.host import Host
from pyinfra.api.operations import run_ops
from pyinfra.api.state import BaseStateCallback
from pyinfra.connectors.fake import FakeConnector
from pyinfra.context import ctx_host, ctx_state

from operations import backend_env, report, settings
from operations.facts import salted_sha256

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

HEALTHY_SERVER = {
    "cli": "present",
    "service_active": "active",
    "service_enabled": "enabled",
    "noauth_ping": "NOAUTH Authentication required.",
    "auth_file": "present",
    "auth_ping": "PONG",
    "aof_enabled": "1",
    "loading": "0",
    "uptime_in_seconds": "5",
    "keys": "0",
}


@dataclass
class HostFixture:
    """What a simulated host is and has. Anything not set reads as absent/empty."""

    release: str
    container: str = "none"
    installed: dict[str, str] = field(default_factory=dict)  # package -> version
    candidate: str = ""
    selinux: str = "Disabled"
    module_stream: str = ""
    port_types: dict[int, str] = field(default_factory=lambda: {6379: "redis_port_t"})
    server: dict = field(default_factory=lambda: dict(HEALTHY_SERVER))
    services: dict[str, bool] = field(default_factory=dict)  # unit -> running (and enabled)
    backend_env: dict = field(default_factory=dict)  # overrides of the EnvFileKeys answer

    def identity(self) -> dict:
        os_id, version_id, id_like = OS_RELEASES[self.release]
        return {
            "os_id": os_id,
            "version_id": version_id,
            "id_like": id_like,
            "container": self.container,
            "systemd": "yes",
        }


@dataclass
class Command:
    operation: str
    text: str
    stdin: str | None  # decoded when the command sent base64 on stdin


@dataclass
class Result:
    commands: dict[str, list[Command]]  # host name -> commands in order
    facts: dict[str, list[tuple[str, dict]]]  # host name -> facts asked (class name, kwargs)
    report: dict[str, dict]

    def texts(self, host: str) -> list[str]:
        return [c.text for c in self.commands[host]]

    def joined(self, host: str) -> str:
        """All commands and the content they upload, as one text (for "never mentions" checks)."""
        return "\n".join(c.text + "\n" + (c.stdin or "") for c in self.commands[host])

    def operations(self, host: str) -> list[str]:
        seen: list[str] = []
        for command in self.commands[host]:
            if command.operation not in seen:
                seen.append(command.operation)
        return seen

    def uploaded(self, host: str, path: str) -> str:
        """Content written to `path` by a managed file."""
        for command in self.commands[host]:
            if (
                command.stdin is not None
                and f"mktemp '{path}.hsi-" in command.text
                or (command.stdin is not None and f"mktemp {path}.hsi-" in command.text)
            ):
                return command.stdin
        raise AssertionError(f"nothing was written to {path}: {self.operations(host)}")

    def fact_kwargs(self, host: str, name: str) -> list[dict]:
        return [kwargs for fact, kwargs in self.facts[host] if fact == name]


def _decode_stdin(stdin) -> str | None:
    if stdin is None:
        return None
    text = "".join(stdin) if isinstance(stdin, (list, tuple)) else str(stdin)
    try:
        return base64.b64decode(text, validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return text


# What the safe_paths facts report for a directory chain that is root's all the way.
_ROOT_CHAIN = {
    "refused": None,
    "controller": {"uid": 0, "name": "root", "gid": 0},
    "top": {"mode": 0o755, "uid": 0, "gid": 0, "user": "root", "group": "root"},
    "files": {},
    "hashes": {},
}


def _ids(kwargs: dict) -> dict:
    """The owner/group ids a safe_paths fact reports for the settings it was given: root is 0,
    any other name 1001."""
    ids = {}
    if kwargs.get("owner"):
        uid = 0 if kwargs["owner"] == "root" else 1001
        ids["owner"] = {"uid": uid, "gid": uid}
    if kwargs.get("group"):
        ids["group"] = 0 if kwargs["group"] == "root" else 1001
    return ids


def _file_fact(content_by_path: dict[str, str | tuple], path: str, salt: str = ""):
    """A file fixture: its content, or (content, mode) or (content, mode, user, group); root-owned,
    0644 unless given."""
    if path not in content_by_path:
        return None
    value = content_by_path[path]
    given = value if isinstance(value, tuple) else (value, 0o644)
    content, mode, user, group = (*given, "root", "root")[:4]
    return {"sha256": salted_sha256(salt, content), "mode": mode, "user": user, "group": group}


class _Answers:
    """Answers fact questions for the fixture hosts, and records them."""

    def __init__(self, fixtures: dict[str, HostFixture], files: dict[str, dict[str, str]]):
        self.fixtures = fixtures
        self.files = files
        self.asked: dict[str, list[tuple[str, dict]]] = {name: [] for name in fixtures}

    def __call__(self, host: Host, cls, *args, **kwargs):
        fixture = self.fixtures[host.name]
        name = cls.__name__
        self.asked[host.name].append((name, dict(kwargs)))
        package_manager_packages = fixture.installed
        answers = {
            "HostIdentity": lambda: fixture.identity(),
            "PackageState": lambda: {
                "installed": fixture.installed.get(kwargs["package"], ""),
                # as the real fact: dnf is only asked with query_dnf
                "candidate": fixture.candidate
                if kwargs["package_manager"] == "apt" or kwargs.get("query_dnf")
                else "",
                "selinux": fixture.selinux,
            },
            "ManagedFile": lambda: _file_fact(self.files.get(host.name, {}), kwargs["path"], kwargs.get("salt", "")),
            "EnvFileKeys": lambda: self._env_keys(host, kwargs),
            "OwnedFiles": lambda: {**_ROOT_CHAIN, **_ids(kwargs), "top_is_parent": True},
            "ServerState": lambda: dict(fixture.server),
            "DebPackages": lambda: {k: [v] for k, v in package_manager_packages.items()},
            "RpmPackages": lambda: {k: [v] for k, v in package_manager_packages.items()},
            "RpmPackageProvides": lambda: [],
            "File": lambda: None,
            "Directory": lambda: None,  # pyinfra's own fact (files.directory): absent, so it is made
            "EnabledModuleStream": lambda: fixture.module_stream,
            "TcpPortTypes": lambda: {p: t for p, t in fixture.port_types.items() if p in kwargs["ports"]},
            "SystemdStatus": lambda: {s: fixture.services.get(s, False) for s in kwargs["services"]},
            "SystemdEnabled": lambda: {s: fixture.services.get(s, False) for s in kwargs["services"]},
            # A stock kernel (hardening has work to do) and a healthy server's security probe.
            "KernelState": lambda: {"vm.overcommit_memory": "0", "net.core.somaxconn": "4096", "thp": "madvise"},
            "SecurityState": lambda: {
                "backend_ping": "PONG", "admin": "ok", "run_id": "0" * 40, "auth_failures": "0",
                "probe1": "OK",
                "probe2": "NOPERM User default has no permissions to run the 'flushall' command",
                "probe3": "NOPERM User default has no permissions to run the 'config|set' command",
                "probe4": "OK",
            },
        }
        if name not in answers:
            raise AssertionError(f"the command harness has no fixture for fact {name} {kwargs}")
        return answers[name]()

    def _env_keys(self, host: Host, kwargs: dict):
        """A backend .env that already holds exactly what the deploy wants (so verify passes), in a
        root-owned directory; `HostFixture.backend_env` replaces any of these answers."""
        conf = settings.load_all(host.state.inventory)[host.name]
        lines = backend_env.owned_lines(conf)
        found = {
            **_ROOT_CHAIN,
            **_ids(kwargs),
            "file": {"mode": 0o600, "uid": 0, "gid": 0, "user": "root", "group": "root"},
            "ambiguous": None,
            "unreadable": False,
            "keys": {k: [salted_sha256(kwargs.get("salt", ""), lines[k])] for k in kwargs["keys"]},
        }
        found.update(self.fixtures[host.name].backend_env)
        return found


class _Recorder(BaseStateCallback):
    """Notes which operation each host is running, so commands can be attributed to it."""

    current: dict[str, str] = {}

    @staticmethod
    def operation_host_start(state, host, op_hash):
        _Recorder.current[host.name] = ", ".join(sorted(state.get_op_meta(op_hash).names))


# What operations.shell.fail_command sends (other scripts merely mention "hsi-redis: " in messages).
FAIL_HOST_COMMAND = re.compile(r"^echo 'hsi-redis: .*' >&2; exit 1$", re.S)


def run_deploy(
    hosts: dict[str, tuple[HostFixture, dict]],
    entry: str = "deploy.py",
    files: dict[str, dict[str, str]] | None = None,
    fail_on: tuple = (FAIL_HOST_COMMAND,),
) -> Result:
    """Run `entry` on fake hosts: {name: (fixture, host data)}. Returns what each host was sent.

    Commands matching a `fail_on` text (substring) or pattern fail on the simulated host; by
    default the commands of `operations.shell.fail_command` (as on a real host), so later
    operations of that host do not run.
    """
    settings._cache.clear()
    report.RESULTS.clear()
    names = list(hosts)
    host_data = {}
    for name, (_, data) in hosts.items():
        merged = {
            "fake_delay": 0,
            "fake_delay_jitter": 0,
            "redis_password": PASSWORD,
            "fake_responses": {text: {"success": False, "stderr": "simulated failure"} for text in fail_on},
        }
        merged.update(data)
        host_data[f"@fake/{name}"] = merged
    inventory = Inventory(([(f"@fake/{n}", host_data[f"@fake/{n}"]) for n in names], {}))
    state = State(inventory, Config())
    state.add_callback_handler(_Recorder())
    fixtures = {f"@fake/{n}": fixture for n, (fixture, _) in hosts.items()}
    answers = _Answers(fixtures, {f"@fake/{n}": v for n, v in (files or {}).items()})
    recorded: dict[str, list[Command]] = {f"@fake/{n}": [] for n in names}
    original_run = FakeConnector.run_shell_command

    def run_shell_command(self, command, print_output=False, print_input=False, **arguments):
        text = command if isinstance(command, str) else command.get_masked_value()
        stdin = arguments.get("_stdin")
        if stdin is None and not isinstance(command, str):
            stdin = command.connector_arguments.get("_stdin")
        recorded[self.host.name].append(
            Command(_Recorder.current.get(self.host.name, ""), text, _decode_stdin(stdin))
        )
        return original_run(self, command, print_output=print_output, print_input=print_input, **arguments)

    with ExitStack() as stack:
        stack.enter_context(
            mock.patch.object(Host, "get_fact", lambda self, cls, *a, **k: answers(self, cls, *a, **k))
        )
        stack.enter_context(mock.patch.object(FakeConnector, "run_shell_command", run_shell_command))
        stack.enter_context(mock.patch.object(report, "track", lambda state, conf: None))
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
    return Result(
        commands={n.removeprefix("@fake/"): cmds for n, cmds in recorded.items()},
        facts={n.removeprefix("@fake/"): asked for n, asked in answers.asked.items()},
        report={n.removeprefix("@fake/"): v for n, v in report.RESULTS.items()},
    )


def make_signing_key(directory: Path, algorithm: str = "ed25519") -> tuple[Path, str]:
    """A throwaway OpenPGP key (stand-in for packages.redis.io's): (armored file, fingerprint by gpg)."""
    import subprocess

    home = directory / "gnupg"
    home.mkdir(mode=0o700, exist_ok=True)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet"]
    subprocess.run(
        [*gpg, "--passphrase", "", "--quick-gen-key", "HSI test key <test@example.invalid>", algorithm,
         "sign", "never"],
        check=True,
        capture_output=True,
    )
    armored = subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True, text=True).stdout
    colons = subprocess.run(
        [*gpg, "--with-colons", "--fingerprint"], check=True, capture_output=True, text=True
    ).stdout
    fingerprint = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
    path = directory / "redis-upstream.asc"
    path.write_text(armored)
    return path, fingerprint
