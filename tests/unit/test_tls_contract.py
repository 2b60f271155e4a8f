"""What TLS settings turn into: redis.conf directives, the backend's .env, the exporter's file,
the probe and the verifier's TLS verdicts."""

from __future__ import annotations

import io

import pytest
from dotenv import dotenv_values
from redis import Redis
from redis.connection import SSLConnection, parse_url

from operations import backend_env, certs, configure, exporter, platform, settings, tls
from operations.facts import server_probe_script

PLAT = platform.TABLE[("debian", "13")]["redis"]
HOST = "redis-1"


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path / "secrets"))
    certs.ensure_pki(certs.pki_dir(), {HOST: ["redis.lan", "fd00::5", "localhost"]})


def conf_for(mtls: bool = True, **extra) -> settings.RedisSettings:
    layout = certs.pki_layout(certs.pki_dir(), HOST)
    data = {"redis_password": "pa$$ word with 'quotes' and \"more\"", "redis_tls": True,
            "redis_backend_host": "redis.lan", "redis_backend_db": 2,
            "redis_exporter_env_path": "/etc/default/redis-exporter"}
    if mtls:
        data.update(redis_tls_client_cert=str(layout.client_cert), redis_tls_client_key=str(layout.client_key))
    else:
        data.update(redis_tls_auth_clients="no")
    data.update(extra)
    conf, problems = settings.parse(HOST, data)
    assert problems == []
    return conf


def test_mtls_url_is_what_redis_py_turns_into_a_verified_client():
    conf = conf_for()
    url = tls.backend_url(conf)
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
    lines = backend_env.owned_lines(conf)
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
    lines = backend_env.owned_lines(conf)
    assert "ssl_certfile" not in lines["REDIS_URL"] and "REDIS_SSL_CERTFILE" not in lines
    assert conf.tls.auth_clients == "no"


def test_no_tls_keeps_the_plain_url_and_owns_no_ssl_lines():
    conf, problems = settings.parse(HOST, {"redis_password": "a-long-enough-password"})
    assert problems == [] and conf.tls is None
    assert set(backend_env.owned_lines(conf)) == {"REDIS_URL", "REDIS_PASSWORD"}
    assert tls.backend_url(conf) == "redis://localhost:6379/0"
    assert "tls" not in configure.render_config(conf, PLAT)


def test_ipv6_backend_host_is_bracketed():
    conf = conf_for(redis_backend_host="fd00::5")
    assert parse_url(tls.backend_url(conf))["host"] == "fd00::5"


def test_redis_conf_tls_block_and_tls_only():
    text = configure.render_config(conf_for(redis_tls_only=True), PLAT)
    lines = text.splitlines()
    assert "port 0" in lines and "port 6379" not in lines
    for line in ("tls-port 6380", "tls-cert-file /etc/redis/tls-server.crt", "tls-key-file /etc/redis/tls-server.key",
                 "tls-ca-cert-file /etc/redis/tls-ca.crt", "tls-auth-clients yes", 'tls-protocols "TLSv1.2 TLSv1.3"'):
        assert line in lines
    assert "PRIVATE" not in text
    assert "port 6379" in configure.render_config(conf_for(), PLAT).splitlines()


def test_exporter_file_names_the_tls_files_and_listens_on_loopback():
    conf = conf_for()
    text = exporter.exporter_env(conf)
    lines = dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
    assert lines["REDIS_ADDR"] == "rediss://redis.lan:6380"
    assert lines["REDIS_EXPORTER_WEB_LISTEN_ADDRESS"] == "127.0.0.1:9121"
    assert lines["REDIS_EXPORTER_TLS_CLIENT_KEY_FILE"] == "/etc/default/redis-exporter-tls/client.key"
    assert lines["REDIS_PASSWORD"] == '"pa\\$\\$ word with \'quotes\' and \\"more\\""'
    plain, _ = settings.parse(HOST, {"redis_password": "a-long-enough-password",
                                     "redis_exporter_env_path": "/etc/x.env"})
    assert "TLS" not in exporter.exporter_env(plain) and "redis://localhost:6379" in exporter.exporter_env(plain)


@pytest.mark.parametrize("value, quoted", [
    ("plainPassword1+/=", "plainPassword1+/="),
    ("a b", '"a b"'),
    ("x$y`z\\\"", '"x\\$y\\`z\\\\\\""'),
    ("", '""'),
])
def test_systemd_quote(value, quoted):
    assert exporter.systemd_quote(value) == quoted


def test_probe_talks_tls_with_the_client_certificate_under_mtls():
    conf = conf_for(redis_tls_only=True)
    kwargs = tls.probe_kwargs(conf, PLAT)
    script = server_probe_script("redis-cli", "127.0.0.1", 6379, "redis-server", "/var/lib/redis", **kwargs)
    assert 'tls_try="$addr,6380"' in script
    assert "tls_ca=/etc/redis/tls-ca.crt; tls_crt=/etc/hsi-redis/tls/client.crt; tls_key=/etc/hsi-redis/tls/client.key" in script
    # the live tls-port, for a server still on an older config
    assert 'where /etc/redis/redis.conf && tls_try="$tls_try $addr,$wt"' in script
    assert "PRIVATE" not in script and conf.password.reveal() not in script
    assert "--tls" not in server_probe_script("redis-cli", "127.0.0.1", 6379, "redis-server", "/var/lib/redis")
    off, _ = settings.parse(HOST, {"redis_password": "a-long-enough-password"})
    assert 'tls_try="$addr,0"' in server_probe_script("redis-cli", "127.0.0.1", 6379, "redis-server",
                                                       "/var/lib/redis", **tls.probe_kwargs(off, PLAT))


SEEN_OK = {"cli": "present", "service_active": "active", "via": "tls", "tls_port": "6380",
           "tls_ping_6380": "NOAUTH Authentication required.",
           "plain_ping": "Could not connect to Redis at 127.0.0.1:6379: Connection refused",
           "nocert_ping": "Error: Connection reset by peer"}


@pytest.mark.parametrize("change, kind", [
    ({}, None),
    ({"via": "plain", "tls_ping_6380": "Could not connect to Redis at 127.0.0.1:6380: Connection refused"}, "TLS"),
    ({"tls_port": "6390"}, "TLS"),  # only the port of an older config answers
    ({"plain_ping": "NOAUTH Authentication required."}, "plain port open"),
    ({"nocert_ping": "NOAUTH Authentication required."}, "mTLS not enforced"),
])
def test_verifier_tls_verdicts(change, kind):
    conf = conf_for(redis_tls_only=True)
    problem = tls.tls_problem({**SEEN_OK, **change}, conf, PLAT)
    assert (problem[0] if problem else None) == kind


def test_tls_directory_per_platform():
    assert tls.server_paths(PLAT)["key"] == "/etc/redis/tls-server.key"
    assert tls.server_paths(platform.TABLE[("debian", "13")]["valkey"])["dir"] == "/etc/valkey/tls"
    assert tls.server_paths(platform.TABLE[("el", "8")]["redis"])["dir"] == "/etc/redis/tls"  # not /etc/tls
