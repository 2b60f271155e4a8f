"""A server host and a separate backend host (issue 11) on real Debian 12 and 13 hosts, Redis and
Valkey: the backend host shares the server's network namespace (`--network container:SERVER`) and maps
the server's name to 127.0.0.1 in its /etc/hosts, so no container address is ever contacted.

The `.env` and the CA and client files land on the backend host only; redis-py configured from that
`.env` (hostname checking on) gets PONG over TLS, run from the machine inside that network namespace
(`nsenter -n`); the server host has no backend `.env`; a second run changes nothing; rotate.py moves the
backend host to the new password. And a fleet of a server and two backend hosts, one unreachable: the
other converges, the report lists all three with their reasons."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from dotenv import dotenv_values

from operations import pki as pki_helper
from tests.hosts import fleet

from .conftest import Host, generated_password, make_runner

NAME = "redis.hsi.test"          # the server as its backend hosts call it (REDIS_URL, the certificate)
ENV = "/opt/hsi/backend/.env"
TLS_DIR = "/opt/hsi/backend/redis-tls"
BACKEND_LINES = "DATABASE_URL=postgresql+asyncpg://hsi:pw@db:5432/hsi\n"
BACKEND_UNIT = (
    "printf '[Unit]\\nDescription=stand-in for the HSI backend\\n[Service]\\nExecStart=/bin/sleep infinity\\n' "
    "> /etc/systemd/system/hsi-backend.service && systemctl daemon-reload && systemctl start hsi-backend"
)
# redis-py, run by the test's Python inside the hosts' network namespace: the URL and files from the
# backend host's .env, the password on stdin, NAME resolved as the backend host's /etc/hosts does.
PING = """
import socket, sys
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
url, name = sys.argv[1], sys.argv[2]
real = socket.getaddrinfo
socket.getaddrinfo = lambda host, *a, **k: real("127.0.0.1" if host == name else host, *a, **k)
client = redis.Redis.from_url(url, password=sys.stdin.read(), retry=Retry(NoBackoff(), 0), socket_timeout=5)
assert client.connection_pool.connection_kwargs.get("ssl_check_hostname", True) is True
try:
    print(client.ping())
except redis.RedisError as exc:
    print(type(exc).__name__, exc)
"""


@dataclass
class Pair:
    server: Host
    backend: Host
    runner: object
    data: dict
    config_dir: str                   # the server's: /etc/redis or /etc/valkey
    cli: bool                         # the backend host has redis-cli: the deploy pings from there

    def run(self, entry: str = "deploy.py", **extra):
        return self.runner({self.server: self.data[self.server], self.backend: {**self.data[self.backend], **extra}},
                           entry=entry)


def tls_files(runner, server: Host) -> dict:
    """The helper's PKI (where the deploy looks by default): the server certificate covers NAME and the
    loopback names the deploy's own checks use; mTLS with the helper's backend client pair."""
    directory = Path(runner.secrets_dir) / "pki"
    pki_helper.ensure_pki(directory, {server.inventory_name: [NAME, "localhost", "127.0.0.1"]})
    return {"redis_tls_client_cert": str(directory / "backend-client.crt"),
            "redis_tls_client_key": str(directory / "backend-client.key")}


def start_pair(host_factory, runner, suite: str, label: str) -> tuple[Host, Host]:
    server = host_factory(f"bh-srv-{label}", suite)
    backend = host_factory(f"bh-app-{label}", suite, network=server.container)
    backend.sh(f"echo '127.0.0.1 {NAME}' >> /etc/hosts")
    return server, backend


@pytest.fixture(scope="module", params=[("bookworm", "redis"), ("trixie", "redis"), ("trixie", "valkey")],
                ids=["debian12-redis", "debian13-redis", "debian13-valkey"])
def pair(request, host_factory, tmp_path_factory) -> Pair:
    suite, flavour = request.param
    runner = make_runner(tmp_path_factory)
    server, backend = start_pair(host_factory, runner, suite, f"{suite}-{flavour}")
    backend.sh(f"mkdir -p /opt/hsi/backend && printf '{BACKEND_LINES}' > {ENV} && chmod 600 {ENV}")
    backend.sh(BACKEND_UNIT)
    cli = suite == "bookworm"  # one backend host with redis-cli (the client tools only)
    if cli:
        backend.sh("apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                   "--no-install-recommends redis-tools >/dev/null")
    data = {
        server: {"redis_role": "server", "redis_flavour": flavour, "redis_tls": True, "redis_tls_only": True,
                 "redis_backend_host": NAME, **tls_files(runner, server)},
        backend: {"redis_role": "backend", "redis_server": server.inventory_name,
                  "redis_backend_unit": "hsi-backend"},
    }
    made = Pair(server, backend, runner, data, "/etc/valkey" if flavour == "valkey" else "/etc/redis", cli)
    first = made.run()
    assert first.returncode == 0, first.output
    made.first = first
    return made


def env_of(host: Host) -> dict:
    return dotenv_values(stream=io.StringIO(host.sh(f"cat {ENV}").stdout))


def ping(pair: Pair, tmp_path: Path, name: str = NAME, password: str | None = None) -> str:
    """PING with redis-py configured from the backend host's .env (files copied from it); `password`:
    another than the .env's."""
    values = env_of(pair.backend)
    url = urlsplit(values["REDIS_URL"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        copy = tmp_path / Path(query[key]).name
        copy.write_text(pair.backend.sh(f"cat {query[key]}").stdout)
        query[key] = str(copy)
    local = url._replace(netloc=f"{name}:{url.port}",
                         query="&".join(f"{k}={quote(v, safe='/')}" for k, v in query.items())).geturl()
    pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", pair.server.container], capture_output=True,
                         text=True, check=True).stdout.strip()
    done = subprocess.run(["nsenter", "-t", pid, "-n", sys.executable, "-c", PING, local, name],
                          input=password or values["REDIS_PASSWORD"], capture_output=True, text=True, timeout=60, check=False)
    return (done.stdout + done.stderr).strip()


def test_the_backend_files_land_on_the_backend_host_only(pair):
    server_entry, backend_entry = pair.first.host(pair.server), pair.first.host(pair.backend)
    assert server_entry["status"] == "ok" and backend_entry["status"] == "ok", (server_entry, backend_entry)
    assert backend_entry["role"] == "backend" and backend_entry["server"] == pair.server.inventory_name
    values = env_of(pair.backend)
    url = urlsplit(values["REDIS_URL"])
    assert (url.scheme, url.hostname, url.port) == ("rediss", NAME, 6380)
    assert values["REDIS_PASSWORD"] == generated_password(pair.runner, pair.server)
    assert values["DATABASE_URL"] == "postgresql+asyncpg://hsi:pw@db:5432/hsi", "the backend's own lines stay"
    assert pair.backend.stat(ENV) == "600 root root"
    assert pair.backend.stat(f"{TLS_DIR}/client.key") == "600 root root"
    assert pair.backend.sh(f"cat {TLS_DIR}/ca.crt").stdout == pair.server.sh(f"cat {pair.config_dir}/tls-ca.crt").stdout
    # the server host has no backend files; the backend host has no server
    assert pair.server.sh(f"test -e {ENV} || test -e {TLS_DIR}", check=False).returncode != 0
    assert pair.backend.sh("command -v redis-server || command -v valkey-server", check=False).returncode != 0
    # the program's root-only scratch directory is all the deploy keeps there, and it is empty
    assert pair.backend.sh("stat -c '%a %U' /etc/hsi-redis && ls -A /etc/hsi-redis").stdout == "700 root\n"
    # the backend host's own PING through the server's name, with its own files (where it has redis-cli)
    if pair.cli:
        assert backend_entry["ping_from_backend_host"] == f"{NAME}:6380", backend_entry
    else:
        assert any("no redis-cli or valkey-cli on this host" in note for note in backend_entry["notes"])
    summary = pair.first.output.split("hsi-redis summary", 1)[1]
    assert f"{pair.backend.inventory_name}" in summary and f"backend of {pair.server.inventory_name}" in summary


def test_redis_py_from_the_backend_env_gets_pong_with_hostname_checking(pair, tmp_path):
    assert ping(pair, tmp_path) == "True"
    # hostname checking is on: the same server under a name its certificate does not cover is refused
    refused = ping(pair, tmp_path, name="other.hsi.test")
    assert "ConnectionError" in refused and "certificate" in refused.lower(), refused


def test_a_second_run_changes_nothing_and_verify_passes(pair):
    again = pair.run()
    assert again.returncode == 0, again.output
    for host in (pair.server, pair.backend):
        assert again.host(host)["status"] == "ok" and again.host(host)["changes"] == 0, again.host(host)
    checked = pair.run(entry="verify.py")
    assert checked.returncode == 0 and checked.host(pair.backend)["status"] == "ok", checked.output


def test_rotation_moves_the_backend_host_to_the_new_password(pair, tmp_path):
    old = generated_password(pair.runner, pair.server)
    before = pair.backend.sh("systemctl show -p InvocationID --value hsi-backend").stdout.strip()
    result = pair.run(entry="rotate.py")
    assert result.returncode == 0, result.output
    new = generated_password(pair.runner, pair.server)
    assert new != old and env_of(pair.backend)["REDIS_PASSWORD"] == new
    assert pair.backend.sh("systemctl show -p InvocationID --value hsi-backend").stdout.strip() != before
    assert ping(pair, tmp_path) == "True"
    assert old not in result.output and new not in result.output
    # the old password is gone
    assert ping(pair, tmp_path, password=old).startswith("AuthenticationError"), "the old password still works"


def test_a_fleet_with_an_unreachable_backend_host(host_factory, tmp_path_factory):
    """One server, two backend hosts, one of them gone: the server and the other converge; the report
    lists all three with their reasons."""
    runner = make_runner(tmp_path_factory)
    server, near = start_pair(host_factory, runner, "bookworm", "fleet")
    gone = host_factory("bh-app-fleet-gone", "bookworm", network=server.container)
    fleet.remove_hosts(gone.container)
    server_data = {"redis_role": "server", "redis_tls": True, "redis_backend_host": NAME,
                   "redis_tls_auth_clients": "no"}
    tls_files(runner, server)
    backend_data = {"redis_role": "backend", "redis_server": server.inventory_name}
    result = runner({server: server_data, near: backend_data, gone: backend_data})
    assert result.returncode != 0, result.output
    assert result.host(server)["status"] == "ok", result.host(server)
    assert result.host(near)["status"] == "ok" and env_of(near)["REDIS_URL"].startswith(f"rediss://{NAME}:6380/0?")
    missing = result.host(gone)
    assert missing["status"] == "failed" and missing["failed_step"] == "connect", missing
    assert "could not connect" in missing["problem"] and gone.container in missing["problem"]
    summary = result.output.split("hsi-redis summary", 1)[1]
    assert "(3 hosts)" in summary
    for host, status in ((server, "OK"), (near, "OK"), (gone, "FAILED could not connect")):
        assert re.search(rf"{re.escape(host.inventory_name)} +{status}", summary), summary
