"""The spine on real Debian 12 and 13 hosts: first run, second run, .env merge, data safety."""

from __future__ import annotations

import time

import pytest

from .conftest import assert_converged, generated_password, make_runner

SUITES = ("bookworm", "trixie")


@pytest.fixture(scope="module")
def fresh_pair(host_factory):
    return [host_factory(f"spine-{suite}", suite) for suite in SUITES]


@pytest.fixture(scope="module")
def spine_runner(tmp_path_factory):
    return make_runner(tmp_path_factory)


def test_first_run_provisions_and_verifies(fresh_pair, spine_runner):
    result = spine_runner(fresh_pair)
    assert result.returncode == 0, result.output
    for host in fresh_pair:
        password = generated_password(spine_runner, host)
        assert result.host(host)["status"] == "ok"
        assert_converged(host, password)
        maxmemory = host.redis_cli("config", "get", "maxmemory", password=password).split()
        assert maxmemory[-1] == str(100 * 1024 * 1024)
        # The password never sits in a command line on the host.
        assert password not in host.sh("ps -eo args").stdout
        assert password not in result.output


def test_second_run_changes_nothing_and_keeps_uptime(fresh_pair, spine_runner):
    before = {}
    for host in fresh_pair:
        password = generated_password(spine_runner, host)
        before[host.container] = host.info(password, "server")
    time.sleep(1.5)
    result = spine_runner(fresh_pair)
    assert result.returncode == 0, result.output
    for host in fresh_pair:
        password = generated_password(spine_runner, host)
        after = host.info(password, "server")
        assert result.host(host)["changes"] == 0, result.host(host)["changed_operations"]
        assert after["run_id"] == before[host.container]["run_id"], "Redis was restarted"
        assert int(after["uptime_in_seconds"]) > int(before[host.container]["uptime_in_seconds"])


def test_size_change_restarts_once_and_keeps_keys(fresh_pair, spine_runner):
    host = fresh_pair[0]
    password = generated_password(spine_runner, host)
    for i in range(200):
        host.redis_cli("set", f"hsi:queue:item:{i}", f"value-{i}", password=password)
    host.redis_cli("rpush", "hsi:queue:detections", "a", "b", "c", password=password)
    run_id = host.info(password, "server")["run_id"]
    since = host.sh("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()

    result = spine_runner({host: {"redis_size": "large"}})
    assert result.returncode == 0, result.output
    assert host.info(password, "server")["run_id"] != run_id
    starts = host.sh(f"journalctl -u redis-server --since '{since}' -o cat | grep -c '^Started' || true").stdout
    assert int(starts.strip()) == 1, starts
    assert host.redis_cli("config", "get", "maxmemory", password=password).split()[-1] == str(512 * 1024 * 1024)
    assert host.redis_cli("dbsize", password=password) == "201"
    assert host.redis_cli("lrange", "hsi:queue:detections", "0", "-1", password=password).split() == ["a", "b", "c"]
    # and the run after that is quiet again
    again = spine_runner({host: {"redis_size": "large"}})
    assert again.returncode == 0 and again.host(host)["changes"] == 0, again.output


ENV_BEFORE = (
    "# HSI backend settings\n"
    "DATABASE_URL=postgresql+asyncpg://hsi:s3cr%40t@localhost:5432/hsi\n"
    "\n"
    "export GPU_HOST='gpu-01'   # trailing comment\n"
    'CAMERA_ROOT="/export/foscam"\n'
    "REDIS_URL=redis://old-host:6380/3\n"
    "  # indented comment\n"
    "LOG_LEVEL=INFO\n"
    "REDIS_PASSWORD=old\n"
    "REDIS_PASSWORD=duplicate-that-would-override\n"
    "TRAILING='x'\n"
)


def test_existing_env_keeps_every_other_line(host_factory, run_pyinfra):
    host = host_factory("envmerge", "bookworm")
    host.sh("mkdir -p /srv/hsi && cat > /srv/hsi/.env && chown 1000:1000 /srv/hsi/.env", stdin=ENV_BEFORE)
    host.sh("useradd --uid 1001 --user-group hsi")
    result = run_pyinfra({host: {"redis_backend_env_path": "/srv/hsi/.env", "redis_backend_env_owner": "hsi"}})
    assert result.returncode == 0, result.output
    password = generated_password(run_pyinfra, host)
    after = host.sh("cat /srv/hsi/.env").stdout
    expected_others = [line for line in ENV_BEFORE.splitlines() if not line.startswith("REDIS_")]
    assert [line for line in after.splitlines() if not line.startswith("REDIS_")] == expected_others
    assert "REDIS_URL=redis://localhost:6379/0" in after.splitlines()
    assert after.splitlines().index("REDIS_URL=redis://localhost:6379/0") == ENV_BEFORE.splitlines().index(
        "REDIS_URL=redis://old-host:6380/3"
    ), "the owned key stays where it was"
    assert sum(line.startswith("REDIS_PASSWORD=") for line in after.splitlines()) == 1
    assert host.stat("/srv/hsi/.env") == "640 hsi hsi"  # written 0644: others lose read, the rest stays
    # What the backend reads (python-dotenv) is exactly the server's password.
    import io

    from dotenv import dotenv_values

    values = dotenv_values(stream=io.StringIO(after))
    assert values["REDIS_PASSWORD"] == password
    assert values["DATABASE_URL"] == "postgresql+asyncpg://hsi:s3cr%40t@localhost:5432/hsi"
    assert host.redis_cli("ping", password=values["REDIS_PASSWORD"]) == "PONG"
    again = run_pyinfra({host: {"redis_backend_env_path": "/srv/hsi/.env", "redis_backend_env_owner": "hsi"}})
    assert again.returncode == 0 and again.host(host)["changes"] == 0, again.output
    assert host.sh("cat /srv/hsi/.env").stdout == after


def test_rdb_only_server_keeps_every_key_when_aof_turns_on(host_factory, run_pyinfra):
    """FACTS.md's trap: naively restarting with appendonly yes would start empty."""
    host = host_factory("rdbonly", "bookworm")
    host.sh(
        "mkdir -p /etc/systemd/system/redis-server.service.d && "
        "printf '[Service]\\nPrivateUsers=false\\n' > /etc/systemd/system/redis-server.service.d/local.conf && "
        "systemctl daemon-reload && apt-get update -qq && "
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1 && "
        "systemctl restart redis-server"
    )
    assert host.sh("grep '^appendonly' /etc/redis/redis.conf").stdout.strip() == "appendonly no"
    keys = 2000
    host.sh(
        f"i=0; while [ $i -lt {keys} ]; do echo \"SET hsi:cache:$i v$i\"; i=$((i+1)); done | redis-cli >/dev/null"
    )
    assert host.redis_cli("save") == "OK"
    assert host.redis_cli("dbsize") == str(keys)

    result = run_pyinfra([host])
    assert result.returncode == 0, result.output
    password = generated_password(run_pyinfra, host)
    assert host.redis_cli("dbsize", password=password) == str(keys)
    assert host.info(password, "persistence")["aof_enabled"] == "1"
    # and they survive a further restart, now from the AOF
    host.sh("systemctl restart redis-server")
    assert host.redis_cli("dbsize", password=password) == str(keys)
    assert host.redis_cli("get", "hsi:cache:1999", password=password) == "v1999"
