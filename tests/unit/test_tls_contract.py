"""What TLS settings turn into: redis.conf directives, the backend's .env, the exporter's file,
the Target's paths and the verifier's TLS verdicts."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from dotenv import dotenv_values
from redis import Redis
from redis.connection import SSLConnection, parse_url

from operations import configure, pki, prologue, render, rows, validation, verify
from operations.encoding import systemd_quote
from operations.hoststate import Server
from operations.target import Target, resolve

PLAT = rows.TABLE[("debian", "13")]["redis"]
HOST = "redis-1"


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path / "secrets"))
    pki.ensure_pki(pki.pki_dir(), {HOST: ["redis.lan", "fd00::5", "localhost"]})


def conf_for(mtls: bool = True, **extra):
    layout = pki.pki_layout(pki.pki_dir(), HOST)
    data = {"redis_password": "pa$$ word with 'quotes' and \"more\"", "redis_tls": True,
            "redis_backend_host": "redis.lan", "redis_backend_db": 2}
    if mtls:
        data.update(redis_tls_client_cert=str(layout.client_cert), redis_tls_client_key=str(layout.client_key))
    else:
        data.update(redis_tls_auth_clients="no")
    data.update(extra)
    conf, problems = validation.parse(HOST, data)
    assert problems == []
    return conf


def target_for(conf, row=PLAT) -> Target:
    return resolve(conf, row, prologue.admin_password(conf.host_name))


def lines_of(conf) -> dict[str, str]:
    """The backend .env lines the deploy owns (KEY -> line)."""
    return dict(target_for(conf).backend.lines)


def test_mtls_url_is_what_redis_py_turns_into_a_verified_client():
    conf = conf_for()
    url = target_for(conf).backend.url
    assert url.startswith("rediss://redis.lan:6380/2?")
    kwargs = parse_url(url)
    assert kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_ca_certs"] == "/opt/hsi/backend/redis-tls/ca.crt"
    assert kwargs["ssl_certfile"] == "/opt/hsi/backend/redis-tls/client.crt"
    assert kwargs["ssl_keyfile"] == "/opt/hsi/backend/redis-tls/client.key"
    assert "password" not in kwargs  # REDIS_PASSWORD holds it
    client = Redis.from_url(url)
    assert client.connection_pool.connection_class is SSLConnection


def test_env_lines_read_back_and_agree_with_the_url():
    conf = conf_for()
    lines = lines_of(conf)
    values = dotenv_values(stream=io.StringIO("".join(f"{line}\n" for line in lines.values())))
    kwargs = parse_url(values["REDIS_URL"])
    assert values["REDIS_PASSWORD"] == conf.password.reveal()
    assert values["REDIS_SSL_CA_CERTS"] == kwargs["ssl_ca_certs"]
    assert values["REDIS_SSL_CERTFILE"] == kwargs["ssl_certfile"]
    assert values["REDIS_SSL_KEYFILE"] == kwargs["ssl_keyfile"]
    assert values["REDIS_SSL_CERT_REQS"] == "required" and values["REDIS_SSL_CHECK_HOSTNAME"] == "true"
    assert "REDIS_SSL_ENABLED" not in lines  # left as the user has it (see README)


def test_tls_without_client_certificate_owns_no_cert_and_key_lines():
    conf = conf_for(mtls=False)
    lines = lines_of(conf)
    assert "ssl_certfile" not in lines["REDIS_URL"] and "REDIS_SSL_CERTFILE" not in lines
    assert conf.tls.auth_clients == "no"


def test_no_tls_keeps_the_plain_url_and_owns_no_ssl_lines():
    conf, problems = validation.parse(HOST, {"redis_password": "a-long-enough-password"})
    assert problems == [] and conf.tls is None
    assert set(lines_of(conf)) == {"REDIS_URL", "REDIS_PASSWORD"}
    assert target_for(conf).backend.url == "redis://localhost:6379/0"
    assert "tls" not in render.redis_conf(target_for(conf))


def test_ipv6_backend_host_is_bracketed():
    conf = conf_for(redis_backend_host="fd00::5")
    assert parse_url(target_for(conf).backend.url)["host"] == "fd00::5"


def test_redis_conf_tls_block_and_tls_only():
    text = render.redis_conf(target_for(conf_for(redis_tls_only=True)))
    lines = text.splitlines()
    assert "port 0" in lines and "port 6379" not in lines
    for line in ("tls-port 6380", "tls-cert-file /etc/redis/tls-server.crt", "tls-key-file /etc/redis/tls-server.key",
                 "tls-ca-cert-file /etc/redis/tls-ca.crt", "tls-auth-clients yes", 'tls-protocols "TLSv1.2 TLSv1.3"'):
        assert line in lines
    assert "PRIVATE" not in text
    assert "port 6379" in render.redis_conf(target_for(conf_for())).splitlines()


def test_exporter_file_names_the_tls_files_and_listens_on_loopback():
    pki.ensure_pki(pki.pki_dir(), {HOST: ["redis.lan", "127.0.0.1"]})  # where the exporter connects, checked
    conf = conf_for(redis_tls_only=True, redis_exporter=True)
    target = target_for(conf)
    text = render.exporter_env(target)
    lines = dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
    assert lines["REDIS_ADDR"] == "rediss://127.0.0.1:6380"  # where the server listens on the host
    assert lines["REDIS_USER"] == "hsi-exporter" and lines["REDIS_EXPORTER_CONFIG_COMMAND"] == "-"
    assert lines["REDIS_EXPORTER_WEB_LISTEN_ADDRESS"] == "127.0.0.1:9121"
    assert lines["REDIS_EXPORTER_TLS_CLIENT_KEY_FILE"] == "/etc/hsi-redis-exporter/client.key"
    # its own password, never the backend's
    assert lines["REDIS_PASSWORD"] == systemd_quote(target.exporter.password.reveal())
    assert "quotes" not in text and conf.password.reveal() not in text
    # the plain port open: plain on loopback, no TLS files
    plain_env = render.exporter_env(target_for(conf_for(redis_exporter=True)))
    assert "TLS" not in plain_env and "REDIS_ADDR=redis://127.0.0.1:6379" in plain_env


def test_tls_only_exporter_needs_a_certificate_covering_the_address_it_connects_to():
    layout = pki.pki_layout(pki.pki_dir(), HOST)  # the fixture's: redis.lan, fd00::5, localhost
    _, problems = validation.parse(HOST, {"redis_password": "a-long-enough-password", "redis_tls": True,
                                          "redis_tls_only": True, "redis_exporter": True,
                                          "redis_backend_host": "redis.lan", "redis_tls_auth_clients": "no"})
    assert len(problems) == 1 and problems[0].startswith("redis-1: redis_exporter: the exporter connects to 127.0.0.1")
    assert "DNS:redis.lan" in problems[0] and "add 127.0.0.1 to its SAN" in problems[0]
    assert layout.cert.exists()


@pytest.mark.parametrize("value, quoted", [
    ("plainPassword1+/=", "plainPassword1+/="),
    ("a b", '"a b"'),
    ("x$y`z\\\"", '"x\\$y\\`z\\\\\\""'),
    ("", '""'),
])
def test_systemd_quote(value, quoted):
    assert systemd_quote(value) == quoted


# How the deploy's own checks reach a TLS-only server (the client pair, the live tls-port of an older
# config) is the host program's: tests/program/test_state.py (test_tls_only_with_mutual_tls,
# test_tls_only_while_the_config_names_a_new_tls_port).

def test_checks_present_the_client_pair_under_mtls_only():
    target = target_for(conf_for(redis_tls_only=True))
    assert (target.plain_port, target.tls.port, target.tls.mtls) == (0, 6380, True)
    assert (target.tls.ca, target.tls.cli_cert, target.tls.cli_key) == (
        "/etc/redis/tls-ca.crt", "/etc/hsi-redis/tls/client.crt", "/etc/hsi-redis/tls/client.key")
    assert target.local_address == "127.0.0.1"
    assert target_for(conf_for(mtls=False)).tls.mtls is False
    assert target_for(validation.parse(HOST, {"redis_password": "a-long-enough-password"})[0]).tls is None


SEEN_OK = Server(layout=0, active="active", cli=True, via="tls", port=0, tls_port=6380, identity="hsi-admin",
                 noauth="NOAUTH Authentication required.", auth="PONG", info={"aof_enabled": "1"},
                 tls_ping="NOAUTH Authentication required.",
                 plain_ping="Could not connect to Redis at 127.0.0.1:6379: Connection refused",
                 tls_nocert="Error: Connection reset by peer")


@pytest.mark.parametrize("change, kind", [
    ({}, None),
    ({"via": "plain", "tls_ping": "Could not connect to Redis at 127.0.0.1:6380: Connection refused"}, "TLS"),
    ({"tls_port": 6390}, "TLS"),  # only the port of an older config answers
    ({"plain_ping": "NOAUTH Authentication required."}, "plain port open"),
    ({"tls_nocert": "NOAUTH Authentication required."}, "mTLS not enforced"),
])
def test_verifier_tls_verdicts(change, kind):
    target = target_for(conf_for(redis_tls_only=True))
    problem = verify.tls_problem(target, replace(SEEN_OK, **change))
    assert (problem.kind if problem else None) == kind
    assert (verify.server_problem(target, replace(SEEN_OK, **change)) or problem) == problem


def test_tls_directory_per_platform():
    conf = conf_for()
    assert target_for(conf).tls.key == "/etc/redis/tls-server.key"
    assert target_for(conf, rows.TABLE[("debian", "13")]["valkey"]).tls.dir == "/etc/valkey"
    assert target_for(conf, rows.TABLE[("el", "8")]["redis"]).tls.dir == "/etc/redis"  # not /etc


@pytest.mark.parametrize("conf", ["plain", "tls", "mtls"])
def test_the_state_read_asks_for_every_file_the_configure_step_writes(conf):
    """configure.paths() lists the paths without rendering (the read asks for every candidate row): the
    same ones, in the same order, as the files server_entries() renders."""
    made = {"plain": lambda: validation.parse(HOST, {"redis_password": "x" * 20})[0],
            "tls": lambda: conf_for(mtls=False), "mtls": lambda: conf_for(mtls=True)}[conf]()
    for row in (PLAT, rows.select("rhel", "9", "", "auto"), rows.select("debian", "13", "", "valkey")):
        target = target_for(made, row)
        written = [entry.path for entry in configure.server_entries(target)]
        assert configure.paths(target)[:len(written)] == written
