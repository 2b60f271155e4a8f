"""Zero-downtime rotation under load, resuming a rotation that was interrupted, rotation on a
TLS-only server, and the old password kept until every consumer of it runs with the new one."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path

import pytest
import redis
from dotenv import dotenv_values
from redis.backoff import NoBackoff
from redis.retry import Retry

from operations import credentials
from operations import pki as pki_helper
from tests.hosts import fleet

from .conftest import generated_password, stored_secret_path

BACKEND_UNIT = (
    "printf '[Unit]\\nDescription=stand-in for the HSI backend\\n[Service]\\nExecStart=/bin/sleep infinity\\n' "
    "> /etc/systemd/system/hsi-backend.service && systemctl daemon-reload && systemctl start hsi-backend"
)
DATA = {"redis_bind": ["0.0.0.0"], "redis_allow_plaintext": True, "redis_backend_unit": "hsi-backend"}
LOOP_LIMIT_SECONDS = 120


def env_password(host) -> str:
    return dotenv_values(stream=io.StringIO(host.sh("cat /opt/hsi/backend/.env").stdout))["REDIS_PASSWORD"]


def client(port: int, password: str) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5,
                       retry=Retry(NoBackoff(), 0))


class Load(threading.Thread):
    """PING/SET in a bounded loop: a long-lived client, and a new connection per round with the
    password the backend's .env holds at that moment (what a restarted backend does)."""

    def __init__(self, host, port: int, password: str):
        super().__init__(daemon=True)
        self.host, self.port = host, port
        self.steady = client(port, password)
        self.stop = threading.Event()
        self.rounds, self.errors = 0, []

    def run(self):
        deadline = time.monotonic() + LOOP_LIMIT_SECONDS
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                assert self.steady.ping() is True
                self.steady.set(f"hsi:load:steady:{self.rounds}", "x")
                fresh = client(self.port, env_password(self.host))
                assert fresh.ping() is True
                fresh.set(f"hsi:load:fresh:{self.rounds}", "x")
                fresh.close()
            except Exception as exc:  # noqa: BLE001 - every error counts
                self.errors.append(f"round {self.rounds}: {exc!r}")
            self.rounds += 1


@pytest.fixture(scope="module")
def served(host_factory, tmp_path_factory):
    from .conftest import make_runner

    runner = make_runner(tmp_path_factory)
    host = host_factory("rotate", publish=(6379,))
    host.sh(BACKEND_UNIT)
    result = runner({host: DATA})
    assert result.returncode == 0, result.output
    return host, runner, fleet.published_port(host.container, 6379)


def invocation(host) -> str:
    return host.sh("systemctl show -p InvocationID --value hsi-backend").stdout.strip()


def test_rotation_under_load_sees_no_error(served):
    host, runner, port = served
    old = generated_password(runner, host)
    run_id = host.info(old, "server")["run_id"]
    backend_before = invocation(host)

    load = Load(host, port, old)
    load.start()
    time.sleep(1)
    result = runner({host: DATA}, entry="rotate.py")
    time.sleep(1)
    load.stop.set()
    load.join(10)

    assert result.returncode == 0, result.output
    assert load.errors == [], load.errors[:5]
    assert load.rounds >= 5
    new = generated_password(runner, host)
    assert new != old
    assert env_password(host) == new
    assert host.redis_cli("ping", password=new) == "PONG"
    assert "WRONGPASS" in host.redis_cli("ping", password=old)
    with pytest.raises(redis.AuthenticationError):
        client(port, old).ping()
    # Redis itself was not restarted; the backend unit was
    assert host.info(new, "server")["run_id"] == run_id
    assert invocation(host) != backend_before
    # the files on disk match: a deploy now changes nothing
    assert host.stat("/etc/hsi-redis/cli.auth") == "600 root root"
    assert old not in result.output and new not in result.output
    again = runner({host: DATA})
    assert again.returncode == 0 and again.host(host)["changes"] == 0, again.output


def test_interrupted_rotation_resumes(served):
    """Interrupted after the new password was added and backend.auth written: a re-run finishes."""
    host, runner, _port = served
    old = generated_password(runner, host)
    store = stored_secret_path(runner, host)
    pending = store.with_name(store.name + credentials.PENDING_SUFFIX)
    new = credentials.new_password()
    pending.write_text(new + "\n")
    digest = hashlib.sha256(new.encode()).hexdigest()
    # As rotate.py's first steps do: the admin identity adds the new password beside the old one,
    # then the backend's credential file is rewritten; the run stops there.
    added = host.sh(f'REDISCLI_AUTH="$(cat /etc/hsi-redis/cli.auth)" redis-cli --no-auth-warning '
                    f'--user hsi-admin acl setuser default "#{digest}"').stdout.strip()
    assert added == "OK"
    host.sh("umask 077; cat > /etc/hsi-redis/backend.auth", stdin=new)
    assert host.redis_cli("ping", password=old) == "PONG"
    assert host.redis_cli("ping", password=new) == "PONG"

    result = runner({host: DATA}, entry="rotate.py")
    assert result.returncode == 0, result.output
    assert not pending.exists() and store.read_text().strip() == new
    assert env_password(host) == new
    assert host.redis_cli("ping", password=new) == "PONG"
    assert "WRONGPASS" in host.redis_cli("ping", password=old)


# -- TLS-only (issue 9, item 12) ------------------------------------------------------------------

def tls_cli(host, password: str, *args: str) -> str:
    """redis-cli over TLS on 6380 with the backend's client pair; the password on stdin."""
    tls = ("--tls --cacert /etc/redis/tls-ca.crt --cert /opt/hsi/backend/redis-tls/client.crt "
           "--key /opt/hsi/backend/redis-tls/client.key")
    script = f'REDISCLI_AUTH="$(cat)" timeout 5 redis-cli --no-auth-warning -p 6380 {tls} {" ".join(args)}'
    return host.sh(script + " 2>&1", check=False, stdin=password).stdout.strip()


def test_rotation_on_a_tls_only_server(host_factory, tmp_path_factory):
    from .conftest import make_runner

    runner = make_runner(tmp_path_factory)
    host = host_factory("rotate-tls")
    pki = Path(runner.secrets_dir) / "pki"
    pki_helper.ensure_pki(pki, {host.inventory_name: ["127.0.0.1", "localhost"]})
    host.sh(BACKEND_UNIT)
    data = {"redis_tls": True, "redis_tls_only": True, "redis_backend_host": "127.0.0.1",
            "redis_tls_client_cert": str(pki / "backend-client.crt"),
            "redis_tls_client_key": str(pki / "backend-client.key"), "redis_backend_unit": "hsi-backend"}
    deployed = runner({host: data})
    assert deployed.returncode == 0, deployed.output
    old = generated_password(runner, host)
    assert tls_cli(host, old, "ping") == "PONG"

    result = runner({host: data}, entry="rotate.py")
    assert result.returncode == 0, result.output
    assert result.host(host)["status"] == "ok", result.host(host)
    new = generated_password(runner, host)
    assert new != old and env_password(host) == new
    assert tls_cli(host, new, "ping") == "PONG"
    assert "WRONGPASS" in tls_cli(host, old, "ping")
    plain = host.sh("timeout 5 redis-cli -p 6379 ping 2>&1", check=False).stdout
    assert "Connection refused" in plain, plain
    assert old not in result.output and new not in result.output


# -- consumers: the old password goes only when every one of them runs with the new one ----------

def main_pid(host, unit: str) -> str:
    return host.sh(f"systemctl show -p MainPID --value {unit}").stdout.strip()


def test_without_a_backend_unit_a_second_run_drops_the_old_password(host_factory, tmp_path_factory):
    from .conftest import make_runner

    runner = make_runner(tmp_path_factory)
    host = host_factory("rotate-nounit")
    deployed = runner([host])
    assert deployed.returncode == 0, deployed.output
    old = generated_password(runner, host)
    store = stored_secret_path(runner, host)
    pending = store.with_name(store.name + credentials.PENDING_SUFFIX)

    first = runner([host], entry="rotate.py")
    assert first.returncode == 0, first.output
    entry = first.host(host)
    assert entry["status"] == "ok", entry
    warning = next(w for w in entry["warnings"] if "rotation not finished" in w)
    assert "/opt/hsi/backend/.env" in warning and "run rotate.py again" in warning
    assert "rotation not finished" in first.output  # in the printed summary too
    new = pending.read_text().strip()
    assert store.read_text().strip() == old, "the new password stays pending until the old one is dropped"
    assert env_password(host) == new
    assert host.redis_cli("ping", password=old) == "PONG"
    assert host.redis_cli("ping", password=new) == "PONG"
    assert host.stat("/etc/hsi-redis/rotation-notice") == "600 root root"

    second = runner([host], entry="rotate.py")
    assert second.returncode == 0, second.output
    assert not any("rotation not finished" in w for w in second.host(host).get("warnings", []))
    assert not pending.exists() and generated_password(runner, host) == new
    assert host.redis_cli("ping", password=new) == "PONG"
    assert "WRONGPASS" in host.redis_cli("ping", password=old)
    assert old not in first.output + second.output and new not in first.output + second.output
    again = runner([host])
    assert again.returncode == 0 and again.host(host)["changes"] == 0, again.output


def test_the_backend_unit_is_restarted_and_the_old_password_dropped_in_one_run(host_factory, tmp_path_factory):
    """(The exporter is no consumer of this password since issue 11: tests/integration/test_exporter.py.)"""
    from .conftest import make_runner

    runner = make_runner(tmp_path_factory)
    host = host_factory("rotate-units")
    host.sh(BACKEND_UNIT)
    data = {"redis_backend_unit": "hsi-backend"}
    deployed = runner({host: data})
    assert deployed.returncode == 0, deployed.output
    old = generated_password(runner, host)
    backend_pid = main_pid(host, "hsi-backend")

    result = runner({host: data}, entry="rotate.py")
    assert result.returncode == 0, result.output
    assert not any("rotation not finished" in w for w in result.host(host).get("warnings", []))
    new = generated_password(runner, host)
    assert new != old
    assert main_pid(host, "hsi-backend") not in ("0", backend_pid)
    assert env_password(host) == new
    assert host.redis_cli("ping", password=new) == "PONG"
    assert "WRONGPASS" in host.redis_cli("ping", password=old)
