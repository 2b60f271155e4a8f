"""Moving the server on a real Debian 12 host: a new port or bind address. The deploy asks the
running server where it listens now (its config on disk), then moves it; the keys and the
backend's `.env` follow, and verify.py agrees after every step."""

from __future__ import annotations

import io

import pytest
from dotenv import dotenv_values

from .conftest import generated_password, make_runner
from .safety_helpers import fill

KEYS = 500
ENV = "/opt/hsi/backend/.env"


@pytest.fixture(scope="module")
def host(host_factory):
    return host_factory("moves", "bookworm")


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return make_runner(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(host, runner):
    """The host deployed with the defaults, holding KEYS keys."""
    first = runner([host])
    assert first.returncode == 0, first.output
    fill(host, KEYS, password=generated_password(runner, host))
    return host


def cli(host, password, port, *args, addr="127.0.0.1"):
    """The CLI on the host at addr:port (the password in its environment); refusals are replies too."""
    command = f'redis-cli --no-auth-warning -h {addr} -p {port} {" ".join(args)}'
    script = f'REDISCLI_AUTH="$(cat)" timeout 5 {command} 2>&1'
    return host.sh(script, check=False, stdin=password).stdout.strip()


def backend_url(host) -> str:
    return dotenv_values(stream=io.StringIO(host.sh(f"cat {ENV}").stdout))["REDIS_URL"]


def deploy_and_verify(runner, host, data: dict):
    result = runner({host: data})
    assert result.returncode == 0, result.output
    assert result.host(host)["status"] == "ok", result.host(host)
    checked = runner({host: data}, entry="verify.py")
    assert checked.returncode == 0, checked.output
    return result


def test_port_change_moves_the_server_keys_and_env(loaded, runner):
    host = loaded
    password = generated_password(runner, host)
    deploy_and_verify(runner, host, {"redis_port": 6390})
    assert cli(host, password, 6390, "dbsize") == str(KEYS)
    assert "Connection refused" in cli(host, password, 6379, "ping")
    assert backend_url(host) == "redis://localhost:6390/0"
    # settled: the next run changes nothing and does not restart
    cli(host, password, 6390, "set", "hsi:written:on-6390", "1")
    before = cli(host, password, 6390, "info", "server")
    again = runner({host: {"redis_port": 6390}})
    assert again.returncode == 0 and again.host(host)["changes"] == 0, again.output
    assert _run_id(cli(host, password, 6390, "info", "server")) == _run_id(before)
    # and back to the default port, with every key
    deploy_and_verify(runner, host, {})
    assert cli(host, password, 6379, "dbsize") == str(KEYS + 1)
    assert "Connection refused" in cli(host, password, 6390, "ping")
    assert backend_url(host) == "redis://localhost:6379/0"


def test_bind_change_reaches_the_server_where_it_listens_now(loaded, runner):
    """127.0.0.2 is loopback too, but the server bound to 127.0.0.1 does not listen there yet."""
    host = loaded
    password = generated_password(runner, host)
    keys = cli(host, password, 6379, "dbsize")
    deploy_and_verify(runner, host, {"redis_bind": ["127.0.0.2"]})
    assert cli(host, password, 6379, "dbsize", addr="127.0.0.2") == keys
    assert "Connection refused" in cli(host, password, 6379, "ping")
    deploy_and_verify(runner, host, {})
    assert cli(host, password, 6379, "dbsize") == keys


def _run_id(info: str) -> str:
    return next(line.split(":", 1)[1] for line in info.splitlines() if line.startswith("run_id:"))
