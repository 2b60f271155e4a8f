"""Never lose data: persistence transitions (AOF on, a new data directory) keep every key; a
config the server rejects is rolled back and the host keeps serving its keys, while the other
host of the run converges."""

from __future__ import annotations

import pytest

from .conftest import generated_password, make_runner
from .safety_helpers import fill, plain_redis_hosts

KEYS = 10_000
BAD_LINE = "requirepass-typo s3cret-extra-arg"


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return make_runner(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded_pair(host_factory):
    """Two hosts with 10,000 keys: one RDB only (the distro default), one with AOF already on."""
    rdb, aof = host_factory("safety-rdb"), host_factory("safety-aof")
    plain_redis_hosts([rdb, aof])
    rdb.sh("grep -q '^appendonly no' /etc/redis/redis.conf")
    aof.sh("sed -i 's/^appendonly no/appendonly yes/' /etc/redis/redis.conf && systemctl restart redis-server")
    for host in (rdb, aof):
        fill(host, KEYS)
    assert rdb.redis_cli("save") == "OK"
    assert aof.info("", "persistence")["aof_enabled"] == "1"
    return rdb, aof


def test_deploy_keeps_all_keys_rdb_only_and_aof_on(loaded_pair, runner):
    rdb, aof = loaded_pair
    result = runner([rdb, aof])
    assert result.returncode == 0, result.output
    for host in (rdb, aof):
        password = generated_password(runner, host)
        assert result.host(host)["status"] == "ok"
        assert host.redis_cli("dbsize", password=password) == str(KEYS)
        assert host.info(password, "persistence")["aof_enabled"] == "1"
        assert host.redis_cli("get", f"hsi:event:{KEYS - 1}", password=password) == f"v{KEYS - 1}"
        # the config it runs with is kept as the last good one, root only
        assert host.stat("/etc/hsi-redis/last-good") == "700 root root"
        assert host.stat("/etc/hsi-redis/last-good/redis.conf") == "600 root root"
        host.sh("cmp /etc/redis/redis.conf /etc/hsi-redis/last-good/redis.conf")
    # and the keys are in the files: a plain restart brings them all back
    rdb.sh("systemctl restart redis-server")
    assert rdb.redis_cli("dbsize", password=generated_password(runner, rdb)) == str(KEYS)


def test_bad_config_rolls_back_and_keeps_serving(loaded_pair, runner):
    rdb, aof = loaded_pair
    password = generated_password(runner, rdb)
    good_config = rdb.sh("sha256sum /etc/redis/redis.conf").stdout
    result = runner({rdb: {"redis_extra_config": [BAD_LINE]}, aof: {"redis_size": "medium"}})
    assert result.returncode != 0, result.output
    failed, converged = result.host(rdb), result.host(aof)
    assert failed["status"] == "failed"
    assert "rolled back to the last good config" in failed["problem"], failed
    assert f"serves {KEYS} keys" in failed["problem"], failed
    assert failed["failures"] and failed["failures"][0]["step"].endswith(
        "Configure and run the server (TLS, redis.conf, service, clients)")
    # the journal lines name the directive but never its arguments
    assert "requirepass-typo <arguments hidden>" in result.output
    assert "s3cret-extra-arg" not in result.output
    assert password not in result.output
    # the host serves all its keys with the old config, which is back on disk
    assert rdb.sh("systemctl is-active redis-server").stdout.strip() == "active"
    assert rdb.redis_cli("dbsize", password=password) == str(KEYS)
    assert rdb.sh("sha256sum /etc/redis/redis.conf").stdout == good_config
    # the other host of the same run converged (and kept its keys across its restart)
    assert converged["status"] == "ok", converged
    assert aof.redis_cli("dbsize", password=generated_password(runner, aof)) == str(KEYS)
    # summary names the failed host
    assert "FAILED" in result.output and rdb.inventory_name in result.output


def test_data_dir_change_takes_the_data_along(loaded_pair, runner):
    _, aof = loaded_pair
    password = generated_password(runner, aof)
    aof.redis_cli("set", "hsi:written:before-move", "1", password=password)
    moved = {"redis_size": "medium", "redis_extra_config": ["dir /var/lib/redis/moved"]}
    result = runner({aof: moved})
    assert result.returncode == 0, result.output
    assert aof.redis_cli("config", "get", "dir", password=password).split()[-1] == "/var/lib/redis/moved"
    assert aof.redis_cli("dbsize", password=password) == str(KEYS + 1)
    # and back: the files left in the old directory are set aside, not loaded
    aof.redis_cli("set", "hsi:written:after-move", "1", password=password)
    back = runner({aof: {"redis_size": "medium"}})
    assert back.returncode == 0, back.output
    assert aof.redis_cli("dbsize", password=password) == str(KEYS + 2)
    assert aof.sh("ls /var/lib/redis | grep -c hsi-before-").stdout.strip() != "0"
