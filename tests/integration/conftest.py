"""Fixtures for tests on real Docker test hosts.

Hosts are systemd containers started from the images in tests/hosts (built on first use)
and reached only through `docker exec` (pyinfra's @docker connector) or ports published
on 127.0.0.1. Each test session labels its containers with its own run id and removes
them at the end, even on failure; images are kept for the next run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from operations import credentials
from tests.hosts import build, fleet

ROOT = Path(__file__).resolve().parents[2]
RUN_ID = uuid.uuid4().hex[:6]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def docker_engine():
    result = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail("no Docker engine answers (start dockerd, or run `make test`, which does)")


@pytest.fixture(scope="session")
def images(docker_engine):
    build.build_all()  # every image the suite starts: builds what is missing, reuses the rest


@dataclass(frozen=True)
class Host:
    """A running test host."""

    container: str

    @property
    def inventory_name(self) -> str:
        return f"@docker/{self.container}"

    def sh(self, script: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["docker", "exec", "-i", self.container, "sh", "-c", script],
            capture_output=True, text=True, input=stdin,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{self.container}: {script!r} failed: {result.stdout}{result.stderr}")
        return result

    def redis_cli(self, *args: str, password: str | None = None, cli: str = "redis-cli") -> str:
        """Run the CLI on the host; the password travels in the environment, not in argv."""
        env = "REDISCLI_AUTH=\"$(cat)\" " if password is not None else ""
        quoted = " ".join(_quote(a) for a in args)
        return self.sh(f"{env}{cli} --no-auth-warning {quoted} 2>&1", stdin=password or "").stdout.strip()

    def stat(self, path: str) -> str:
        """`mode user group` of a path."""
        return self.sh(f"stat -c '%a %U %G' {_quote(path)}").stdout.strip()

    def info(self, password: str, section: str = "") -> dict[str, str]:
        text = self.redis_cli("info", *([section] if section else []), password=password)
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


@pytest.fixture(scope="session")
def host_factory(images):
    """Start hosts: `host_factory("deb12", "bookworm")`. All are removed at session end."""
    started: list[str] = []

    def start(name: str, suite: str = "bookworm", **kwargs) -> Host:
        container = f"hsi-t-{RUN_ID}-{name}"
        # a host never depends on an image some earlier run happened to leave behind
        if kwargs.get("ssh"):
            build.build_ssh_host(suite)
        else:
            build.build_host(suite)
        started.append(container)  # before the start: a host that fails to come up is removed too
        fleet.start_host(container, suite, labels={"hsi-redis.run": RUN_ID}, **kwargs)
        return Host(container)

    yield start
    fleet.remove_hosts(*started)


@dataclass
class RunResult:
    returncode: int
    output: str
    report: dict

    def host(self, host: Host) -> dict:
        return self.report["hosts"][host.inventory_name]


def make_runner(tmp_path_factory):
    """A function that runs pyinfra's CLI on an inventory generated for `hosts` (with per-host
    data). All its runs share one control-machine secret store, so re-runs reuse passwords."""
    secrets_dir = tmp_path_factory.mktemp("secrets")

    def run(hosts: dict[Host, dict] | list[Host], entry: str = "deploy.py", args: tuple[str, ...] = (),
            env: dict[str, str] | None = None, timeout: float = 600, yes: bool = True) -> RunResult:
        if isinstance(hosts, list):
            hosts = {h: {} for h in hosts}
        work = tmp_path_factory.mktemp("run")
        inventory = work / "inventory.py"
        entries = ",\n    ".join(f"({h.inventory_name!r}, {data!r})" for h, data in hosts.items())
        inventory.write_text(f"test_hosts = [\n    {entries},\n]\n")
        report = work / "report.json"
        run_env = {k: v for k, v in os.environ.items() if k != "REDIS_PASSWORD"}
        run_env.update(HSI_REDIS_SECRETS_DIR=str(secrets_dir), HSI_REDIS_REPORT=str(report))
        run_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "pyinfra", *(["-y"] if yes else []), *args, str(inventory), entry],
            cwd=ROOT, capture_output=True, text=True, env=run_env, timeout=timeout,
        )
        document = json.loads(report.read_text()) if report.exists() else {}
        return RunResult(proc.returncode, proc.stdout + proc.stderr, document)

    run.secrets_dir = secrets_dir
    return run


@pytest.fixture
def run_pyinfra(tmp_path_factory):
    return make_runner(tmp_path_factory)


def stored_secret_path(run_pyinfra, host: Host, name: str = "redis_password") -> Path:
    """Where the run's control-machine store keeps the generated secret `name` of `host`."""
    relative = credentials.secret_path(host.inventory_name, name).relative_to(credentials.store_dir())
    return Path(run_pyinfra.secrets_dir) / relative


def generated_password(run_pyinfra, host: Host, name: str = "redis_password") -> str:
    """The secret the deploy generated for `host` (from the run's control-machine store)."""
    return stored_secret_path(run_pyinfra, host, name).read_text().strip()


def assert_converged(host: Host, password: str) -> None:
    """What every converged Debian host shows: PONG with the password, NOAUTH without it,
    AOF on, and the files holding secrets readable by nobody else."""
    assert host.redis_cli("ping", password=password) == "PONG"
    assert "NOAUTH" in host.redis_cli("ping")
    assert host.info(password, "persistence")["aof_enabled"] == "1"
    assert host.stat("/etc/redis/redis.conf") == "640 root redis"
    assert host.stat("/etc/hsi-redis/cli.auth") == "600 root root"
    assert host.stat("/opt/hsi/backend/.env") == "600 root root"
