"""Fixtures for the host program's tests: a real local redis-server, no Docker.

Each `Host` is a temp directory holding a redis.conf rendered from the deploy's own template
(templates/redis.conf.j2, temp paths, a free loopback port), the program's --state-dir, and the
fake service controller's directory (tests/program/fake-systemctl.sh, used through
HSI_REDIS_SERVICE_CTL). The program runs exactly as the deploy runs it:
`dash -c "<program text>" hsi-redis VERB ...`.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from operations import acl, program
from operations.defaults import DENIED_COMMANDS
from operations.encoding import redis_conf_quote
from operations.pki import ensure_pki, pki_layout
from operations.render import SAVE_RULES, render
from operations.rows import TABLE

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "operations" / "program" / "hsi-redis.sh"
FAKE_CTL = Path(__file__).with_name("fake-systemctl.sh")
PLAT = TABLE[("debian", "12")]["redis"]
# dash is Debian's sh; HSI_PROGRAM_SHELL=bash runs the same tests the way RHEL's /bin/sh (bash) would
SHELL = os.environ.get("HSI_PROGRAM_SHELL", "dash")
SERVICE = "redis-test"
ADMIN_PW = "admin-Pw-0123456789abcdef"
BACKEND_PW = "backend-Pw-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def user_lines(backend: str, admin: str) -> list[str]:
    """The `user` lines operations/acl.py renders for these passwords."""
    return [acl.default_user_rule(DENIED_COMMANDS, PLAT, backend), acl.admin_user_rule(admin, PLAT)]


def b64_lines(data: bytes) -> list[str]:
    encoded = base64.b64encode(data).decode()
    return [encoded[i:i + 76] for i in range(0, len(encoded), 76)]


def bundle(*entries: tuple, end: bool = True) -> bytes:
    """A bundle: entries are ("file", mode, user, group, flags, path, content) or
    ("merge", flags, user, group, path, wanted_lines_text)."""
    out: list[str] = []
    for entry in entries:
        if entry[0] == "file":
            _, mode, user, group, flags, path, content = entry
            out.append(f"file {mode} {user} {group} {flags} {path}")
        else:
            _, flags, user, group, path, content = entry
            out.append(f"merge {flags} {user} {group} {path}")
        out += b64_lines(content if isinstance(content, bytes) else content.encode())
        out.append(".")
    if end:
        out.append("end")
    return ("\n".join(out) + "\n").encode()


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def keys(self) -> dict[str, str]:
        """The key=value lines (the first value of a repeated key)."""
        found: dict[str, str] = {}
        for line in self.out.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                found.setdefault(key, value)
        return found

    def all(self, key: str) -> list[str]:
        return [line.partition("=")[2] for line in self.out.splitlines() if line.partition("=")[0] == key]


@dataclass
class Host:
    root: Path
    port: int
    tls: dict | None = None
    appendonly: bool = True
    backend_pw: str = BACKEND_PW
    admin_pw: str = ADMIN_PW
    extra: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.etc = self.root / "etc"
        self.state = self.etc / "hsi-redis"
        self.fake = self.root / "fake"
        self.data = self.root / "data"
        self.log = self.root / "redis.log"
        self.config = self.etc / "redis" / "redis.conf"
        for d in (self.state, self.fake, self.data, self.config.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.state.chmod(0o700)
        (self.fake / f"{SERVICE}.config").write_text(str(self.config))
        (self.fake / f"{SERVICE}.enabled").touch()
        self.write_config()
        self.put_secret("cli.auth", self.admin_pw)
        self.put_secret("backend.auth", self.backend_pw)

    # -- files -------------------------------------------------------------------------------
    def render(self, port: int | None = None, tls: dict | None | bool = False, appendonly: bool | None = None,
               backend_pw: str | None = None, admin_pw: str | None = None, data: Path | None = None,
               extra: list[str] | None = None) -> str:
        backend_pw = backend_pw or self.backend_pw
        tls = self.tls if tls is False else tls
        text = render(
            "redis.conf.j2",
            bind="127.0.0.1 -::1",
            port=self.port if port is None else port,
            tls=tls,
            pid_file=str(self.root / "redis.pid"),
            log_file=str(self.log),
            data_dir=str(data or self.data),
            save_rules=SAVE_RULES,
            appendfsync="everysec",
            size="small",
            maxmemory="100mb",
            maxmemory_policy="noeviction",
            requirepass=redis_conf_quote(backend_pw),
            acl_users=user_lines(backend_pw, admin_pw or self.admin_pw),
            disable_thp=True,
            extra_config=self.extra if extra is None else extra,
        )
        if not (self.appendonly if appendonly is None else appendonly):
            text = text.replace("\nappendonly yes\n", "\nappendonly no\n")
        return text

    def write_config(self, text: str | None = None, **kw) -> str:
        text = self.render(**kw) if text is None else text
        self.config.write_text(text)
        self.config.chmod(0o640)
        return text

    def put_secret(self, name: str, value: str) -> None:
        path = self.state / name
        path.write_text(value)
        path.chmod(0o600)

    # -- the service -------------------------------------------------------------------------
    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(FAKE_CTL), *args], env={**os.environ, "HSI_FAKE_DIR": str(self.fake)},
                              capture_output=True, text=True, check=False, timeout=30)

    def start(self) -> None:
        done = self.ctl("start", SERVICE)
        assert done.returncode == 0, (done.stdout, done.stderr, self.log.read_text() if self.log.exists() else "")
        self.wait_pong()

    def stop(self) -> None:
        self.ctl("stop", SERVICE)

    def calls(self) -> list[str]:
        path = self.fake / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def wait_pong(self, **kw) -> None:
        """Until the server answers (PONG, or a refusal of the credential: it is up)."""
        for _ in range(100):
            if self.cli("ping", **kw).startswith(("PONG", "NOAUTH", "AUTH failed", "WRONGPASS")):
                return
            time.sleep(0.05)
        raise AssertionError(f"server on {kw.get('port', self.port)} does not answer")

    # -- clients -----------------------------------------------------------------------------
    def cli(self, *args: str, password: str | None = None, user: str | None = None, port: int | None = None,
            tls: bool = False, stdin: str | None = None) -> str:
        """redis-cli as the admin by default (password in the environment)."""
        if password is None and user is None:
            password, user = self.admin_pw, "hsi-admin"
        cmd = ["timeout", "5", "redis-cli", "--no-auth-warning", "-h", "127.0.0.1", "-p", str(port or self.port)]
        if user:
            cmd += ["--user", user]
        if tls:
            cmd += ["--tls", "--cacert", self.tls["ca_file"], "--cert", str(self.state / "tls" / "client.crt"),
                    "--key", str(self.state / "tls" / "client.key")]
        env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
        if password:
            env["REDISCLI_AUTH"] = password
        done = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, check=False, input=stdin)
        return (done.stdout + done.stderr).replace("\r", "").strip()

    def fill(self, n: int, prefix: str = "k", ttl: int = 0) -> None:
        lines = "".join(f"SET {prefix}{i} v{i}{f' EX {ttl}' if ttl else ''}\n" for i in range(n))
        self.cli(stdin=lines)

    def dbsize(self, **kw) -> int:
        return int(self.cli("dbsize", **kw))

    # -- the program -------------------------------------------------------------------------
    def common(self) -> list[str]:
        return ["--state-dir", str(self.state), "--service", SERVICE, "--config", str(self.config),
                "--cli", "redis-cli", "--user", "root", "--group", "root", "--log", str(self.log),
                "--timeout", "3", "--wait", "15"]

    def run(self, verb: str, *args: str, stdin: bytes | str | None = None, env: dict | None = None,
            common: bool = True, shell: str = SHELL) -> Result:
        return run_program(verb, *(self.common() if common else []), *args, stdin=stdin,
                           env={"HSI_REDIS_SERVICE_CTL": str(FAKE_CTL), "HSI_FAKE_DIR": str(self.fake),
                                **(env or {})}, shell=shell)


def run_program(verb: str, *args: str, stdin: bytes | str | None = None, env: dict | None = None,
                shell: str = SHELL, timeout: int = 120) -> Result:
    """`sh -c "<program text>" hsi-redis VERB ARGS`, as the deploy sends it."""
    data = stdin.encode() if isinstance(stdin, str) else (stdin if stdin is not None else b"")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("HSI_", "REDISCLI"))}
    done = subprocess.run([shell, "-c", program.text(), "hsi-redis", verb, *args], input=data,
                          capture_output=True, env={**environment, **(env or {})}, timeout=timeout, check=False)
    return Result(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))


def _kill_servers(fake: Path) -> None:
    for pid_file in fake.glob("*.pid"):
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


@pytest.fixture
def make_host(tmp_path):
    """Factory: a Host (not started) in its own temp directory; its servers die at teardown."""
    made: list[Host] = []

    def make(name: str = "h", **kw) -> Host:
        host = Host(tmp_path / name, free_port(), **kw)
        made.append(host)
        return host

    yield make
    for host in made:
        _kill_servers(host.fake)


@pytest.fixture
def host(make_host) -> Host:
    """A running server (AOF on, the deploy's ACL identities), with cli.auth and backend.auth."""
    h = make_host()
    h.start()
    return h


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    directory = tmp_path_factory.mktemp("pki")
    ensure_pki(directory, {"local": ["localhost", "127.0.0.1"]})
    layout = pki_layout(directory, "local")
    return {"ca": str(layout.ca), "cert": str(layout.cert), "key": str(layout.key),
            "client_cert": str(layout.client_cert), "client_key": str(layout.client_key)}


def tls_context(pki: dict, port: int, auth_clients: str = "yes") -> dict:
    return {"port": port, "cert_file": pki["cert"], "key_file": pki["key"], "ca_file": pki["ca"],
            "auth_clients": auth_clients, "protocols": "TLSv1.2 TLSv1.3"}


def give_client_pair(host: Host, pki: dict) -> None:
    tls_dir = host.state / "tls"
    tls_dir.mkdir(mode=0o700, exist_ok=True)
    shutil.copy(pki["client_cert"], tls_dir / "client.crt")
    shutil.copy(pki["client_key"], tls_dir / "client.key")
    (tls_dir / "client.key").chmod(0o600)
