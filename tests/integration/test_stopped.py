"""A stopped server is started on the data it really has: with AOF on and a new `dir`, its
files move along before it starts there; an AOF older than a newer dump.rdb is not loaded
over it (the data would go back in time while the run reports OK)."""

from __future__ import annotations

import pytest

from .conftest import generated_password, make_runner
from .safety_helpers import fill

KEYS = 300
MOVED = {"redis_extra_config": ["dir /var/lib/redis/moved"]}
ADMIN = 'REDISCLI_AUTH="$(cat /etc/hsi-redis/cli.auth)" redis-cli --no-auth-warning --user hsi-admin'


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return make_runner(tmp_path_factory)


def deployed(host_factory, runner, name: str):
    """A host deployed with the defaults (AOF on), holding KEYS keys."""
    host = host_factory(name, "bookworm")
    first = runner([host])
    assert first.returncode == 0, first.output
    fill(host, KEYS, password=generated_password(runner, host))
    return host


def test_stopped_aof_server_takes_its_data_to_a_new_dir(host_factory, runner):
    host = deployed(host_factory, runner, "stopped-dir")
    password = generated_password(runner, host)
    host.sh("systemctl stop redis-server")
    # The data is in the AOF only (as with `save ""`): the server cannot be asked where it was.
    host.sh("rm -f /var/lib/redis/dump.rdb && test -d /var/lib/redis/appendonlydir")
    result = runner({host: MOVED})
    assert result.returncode == 0, result.output
    assert result.host(host)["status"] == "ok", result.host(host)
    assert host.redis_cli("config", "get", "dir", password=password).split()[-1] == "/var/lib/redis/moved"
    assert host.redis_cli("dbsize", password=password) == str(KEYS)
    # copied, the old files kept
    host.sh("test -d /var/lib/redis/appendonlydir && test -d /var/lib/redis/moved/appendonlydir")


def test_stale_aof_beside_a_newer_rdb_does_not_win(host_factory, runner):
    """AOF turned off for a while (or a dump.rdb restored by hand): the AOF directory is older
    than dump.rdb, which holds the newer keys."""
    host = deployed(host_factory, runner, "stopped-stale")
    password = generated_password(runner, host)
    data_dir = "/var/lib/redis"
    assert host.sh(f"{ADMIN} config set appendonly no").stdout.strip() == "OK"
    fill(host, 200, password=password, prefix="hsi:newer")
    assert host.redis_cli("dbsize", password=password) == str(KEYS + 200)
    host.sh("systemctl stop redis-server")  # saves dump.rdb on the way out
    newer = host.sh(f"find {data_dir}/appendonlydir -newer {data_dir}/dump.rdb").stdout
    assert newer == "", "the AOF should be older than dump.rdb here"

    result = runner([host])
    assert result.returncode == 0, result.output
    assert result.host(host)["status"] == "ok", result.host(host)
    assert host.redis_cli("dbsize", password=password) == str(KEYS + 200)
    assert host.redis_cli("get", "hsi:newer:199", password=password) == "v199"
    assert host.info(password, "persistence")["aof_enabled"] == "1"
    # the AOF now holds them too: a plain restart loads them from it
    host.sh("systemctl restart redis-server")
    assert host.redis_cli("dbsize", password=password) == str(KEYS + 200)
    quiet = runner([host])
    assert quiet.returncode == 0 and quiet.host(host)["changes"] == 0, quiet.output


def test_a_stale_aof_server_that_does_not_start_is_refused_untouched(host_factory, runner):
    """The server must start once on its own config to load the dump; when that config is
    broken the host fails with what to do, and neither data nor config has changed."""
    host = deployed(host_factory, runner, "stopped-broken")
    password = generated_password(runner, host)
    assert host.sh(f"{ADMIN} config set appendonly no").stdout.strip() == "OK"
    fill(host, 200, password=password, prefix="hsi:newer")
    host.sh("systemctl stop redis-server")
    host.sh("echo 'bogus-directive-by-hand yes' >> /etc/redis/redis.conf")
    files = "sha256sum /etc/redis/redis.conf /var/lib/redis/dump.rdb /var/lib/redis/appendonlydir/*"
    before = host.sh(files).stdout

    refused = runner([host])
    assert refused.returncode != 0
    problem = refused.host(host)["problem"]
    assert "does not start on its config /etc/redis/redis.conf" in problem, problem
    assert "/var/lib/redis/dump.rdb" in problem and "nothing was changed" in problem, problem
    assert host.sh(files).stdout == before
    assert host.sh("systemctl is-active redis-server", check=False).stdout.strip() != "active"

    host.sh("sed -i '/^bogus-directive-by-hand/d' /etc/redis/redis.conf")  # the operator fixes it
    healed = runner([host])
    assert healed.returncode == 0, healed.output
    assert host.redis_cli("dbsize", password=password) == str(KEYS + 200)
