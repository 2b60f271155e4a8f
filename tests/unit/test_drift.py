"""Drift: the running server's memory and persistence settings against what redis.conf says."""

from __future__ import annotations

from dataclasses import replace

import pytest

from operations import pki, rows, validation, verify
from operations.credentials import Secret
from operations.hoststate import Server
from operations.target import resolve

PLAT = rows.select("debian", "12", "", "auto")
ADMIN = Secret("admin-password-0123456789")
# What CONFIG GET answers on a server that runs the deployed redis.conf (maxmemory in bytes).
IN_STEP = {"maxmemory": "104857600", "maxmemory-policy": "noeviction", "appendonly": "yes",
           "appendfsync": "everysec", "dir": "/var/lib/redis", "port": "6379", "tls-port": "0"}


def target(**data):
    conf, problems = validation.parse("h", {"redis_password": "x" * 20, **data})
    assert problems == []
    return resolve(conf, PLAT, ADMIN)


def seen(**changes) -> Server:
    return Server(layout=0, active="active", cli=True, auth="PONG", identity="hsi-admin",
                  conf={**IN_STEP, **changes})


def test_a_server_running_its_config_has_no_drift():
    assert verify.drift(target(), seen()) == []


def test_nothing_read_is_no_drift():
    assert verify.drift(target(), replace(seen(), conf={})) == []


@pytest.mark.parametrize("key, running, wanted, setting", [
    ("maxmemory", "209715200", "100mb", "redis_maxmemory"),
    ("maxmemory-policy", "allkeys-lru", "noeviction", "redis_maxmemory_policy"),
    ("appendfsync", "always", "everysec", "redis_appendfsync"),
    ("appendonly", "no", "yes", None),
])
def test_a_value_changed_at_run_time_is_a_warning_with_the_fix(key, running, wanted, setting):
    found = verify.drift(target(), seen(**{key: running}))
    assert len(found) == 1
    text = found[0]
    assert f"{key} {running}" in text and f"redis.conf says {wanted}" in text
    assert f"redis-cli --user hsi-admin --askpass CONFIG SET {key} {wanted} < /etc/hsi-redis/cli.auth" in text
    assert "systemctl restart redis-server" in text
    if setting:
        assert setting in text


def test_memory_is_compared_in_bytes_whatever_the_unit():
    assert verify.drift(target(redis_maxmemory="1gb"), seen(maxmemory=str(1024**3))) == []
    assert verify.drift(target(redis_maxmemory="1g"), seen(maxmemory=str(1000**3))) == []
    assert len(verify.drift(target(redis_maxmemory="1g"), seen(maxmemory=str(1024**3)))) == 1


def test_the_last_directive_of_the_file_counts_as_the_server_reads_it():
    # redis_extra_config comes last in redis.conf: the server runs with it, so that is no drift
    extra = target(redis_extra_config=["maxmemory 300mb", "maxmemory-policy allkeys-lru"])
    assert verify.drift(extra, seen(maxmemory=str(300 * 1024**2), **{"maxmemory-policy": "allkeys-lru"})) == []
    assert len(verify.drift(extra, seen())) == 2


def test_the_fix_reaches_a_tls_only_server_as_the_deploy_does(tmp_path, monkeypatch):
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path))
    pki.ensure_pki(pki.pki_dir(), {"h": ["localhost", "127.0.0.1"]})
    tls = target(redis_tls=True, redis_tls_only=True, redis_tls_client_cert=str(pki.pki_dir() / "backend-client.crt"),
                 redis_tls_client_key=str(pki.pki_dir() / "backend-client.key"))
    text = verify.drift(tls, seen(appendfsync="no"))[0]
    assert "--askpass --tls --cacert /etc/redis/tls-ca.crt -p 6380 --cert /etc/hsi-redis/tls/client.crt" in text
