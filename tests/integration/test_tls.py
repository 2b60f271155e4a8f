"""TLS end to end on a real Debian 13 host: mTLS, TLS-only, the backend's .env read by redis-py, no key
material anywhere in the output (the exporter under TLS-only: tests/integration/test_exporter.py)."""

from __future__ import annotations

import io
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import redis
from cryptography import x509
from dotenv import dotenv_values
from redis.backoff import NoBackoff
from redis.retry import Retry

from operations import pki as pki_helper
from operations import tls_preflight
from tests.hosts import fleet

from .conftest import make_runner

# A password that has to survive redis.conf, dotenv and systemd quoting alike.
PASSWORD = "Tls p@ss'w\"o$rd\\ #x ${HOME} ok"
ENV = "/opt/hsi/backend/.env"
KEYS = ("/etc/redis/tls-server.key", "/etc/hsi-redis/tls/client.key", "/opt/hsi/backend/redis-tls/client.key")


@pytest.fixture(scope="module")
def tls_host(host_factory):
    return host_factory("tls-trixie", "trixie", publish=(6380,))


@pytest.fixture(scope="module")
def tls_runner(tmp_path_factory):
    return make_runner(tmp_path_factory)


@pytest.fixture(scope="module")
def pki(tls_runner, tls_host) -> Path:
    """The helper's PKI, where the deploy looks by default. SAN 127.0.0.1: what the backend
    (redis_backend_host) and the test (through the published port) connect to."""
    directory = Path(tls_runner.secrets_dir) / "pki"
    pki_helper.ensure_pki(directory, {tls_host.inventory_name: ["127.0.0.1", "localhost"]})
    return directory


def data(pki: Path, **extra) -> dict:
    return {
        "redis_tls": True, "redis_tls_only": True, "redis_bind": "0.0.0.0",
        "redis_backend_host": "127.0.0.1",
        "redis_tls_client_cert": str(pki / "backend-client.crt"),
        "redis_tls_client_key": str(pki / "backend-client.key"),
        **extra,
    }


def run(tls_runner, host, pki, *args, **extra):
    return tls_runner({host: data(pki, **extra)}, args=args, env={"REDIS_PASSWORD": PASSWORD})


def tls_cli(host, *args: str, cert: bool = True, port: int = 6380) -> str:
    tls = "--tls --cacert /etc/redis/tls-ca.crt"
    if cert:
        tls += " --cert /opt/hsi/backend/redis-tls/client.crt --key /opt/hsi/backend/redis-tls/client.key"
    script = f"REDISCLI_AUTH=\"$(cat)\" timeout 5 redis-cli --no-auth-warning -p {port} {tls} {' '.join(args)} 2>&1"
    return host.sh(script, check=False, stdin=PASSWORD).stdout.strip()


def key_bodies(pki: Path) -> list[str]:
    """A line from the middle of each private key: must never show up in any output."""
    bodies = []
    for path in [pki / "ca.key", pki / "backend-client.key", *pki.glob("hosts/*/server.key")]:
        lines = path.read_text().splitlines()
        bodies.append(lines[len(lines) // 2])
    return bodies


def test_first_run_mtls_tls_only(tls_host, tls_runner, pki):
    result = run(tls_runner, tls_host, pki, "-vvv")
    assert result.returncode == 0, result.output
    entry = result.host(tls_host)
    assert entry["status"] == "ok", entry
    assert entry["tls"]["via"] == "tls"
    # PONG over TLS with the client certificate; refused without it; the plain port closed.
    assert tls_cli(tls_host, "ping") == "PONG"
    refused = tls_cli(tls_host, "ping", cert=False)
    assert "PONG" not in refused and "NOAUTH" not in refused, refused
    plain = tls_host.sh("timeout 5 redis-cli -p 6379 ping 2>&1", check=False).stdout
    assert "Connection refused" in plain, plain
    # Keys: never readable by others; owned by who reads them.
    assert tls_host.stat("/etc/redis/tls-server.key") == "600 redis redis"
    assert tls_host.stat("/opt/hsi/backend/redis-tls/client.key") == "600 root root"
    for key in KEYS:
        assert int(tls_host.stat(key).split()[0], 8) & 0o077 == 0, key
    assert tls_host.stat("/etc/redis/tls-server.crt").startswith("644 ")
    readable = tls_host.sh("find /etc /opt -name '*.key' -perm /o=r 2>/dev/null", check=False).stdout
    assert readable.strip() == "", readable
    # No key material and no password in pyinfra's -vvv output.
    assert "PRIVATE KEY" not in result.output
    for body in key_bodies(pki):
        assert body not in result.output
    assert PASSWORD not in result.output and quote(PASSWORD) not in result.output


def test_redis_py_connects_with_only_the_deployed_env(tls_host, tls_runner, pki, tmp_path):
    values = dotenv_values(stream=io.StringIO(tls_host.sh(f"cat {ENV}").stdout))
    url = urlsplit(values["REDIS_URL"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.scheme == "rediss" and url.hostname == "127.0.0.1" and query["ssl_cert_reqs"] == "required"
    # The REDIS_SSL_* variables say the same as the URL.
    assert values["REDIS_SSL_CA_CERTS"] == query["ssl_ca_certs"]
    assert values["REDIS_SSL_CERTFILE"] == query["ssl_certfile"]
    assert values["REDIS_SSL_KEYFILE"] == query["ssl_keyfile"]
    assert values["REDIS_SSL_CERT_REQS"] == "required" and values["REDIS_SSL_CHECK_HOSTNAME"] == "true"
    # The files the URL names, copied from the host; the port is the one published on 127.0.0.1.
    local = dict(query)
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        copy = tmp_path / Path(query[name]).name
        copy.write_text(tls_host.sh(f"cat {query[name]}").stdout)
        local[name] = str(copy)
    port = fleet.published_port(tls_host.container, 6380)
    rewritten = url._replace(netloc=f"127.0.0.1:{port}",
                             query="&".join(f"{k}={quote(v, safe='/')}" for k, v in local.items())).geturl()
    client = redis.Redis.from_url(rewritten, password=values["REDIS_PASSWORD"], retry=Retry(NoBackoff(), 0),
                                  socket_timeout=5)
    assert client.connection_pool.connection_kwargs.get("ssl_check_hostname", True) is True
    assert client.ping() is True
    client.close()
    # Without the client certificate the server refuses (mTLS).
    no_cert = {k: v for k, v in local.items() if k not in ("ssl_certfile", "ssl_keyfile")}
    bare = redis.Redis.from_url(url._replace(netloc=f"127.0.0.1:{port}", query="&".join(
        f"{k}={quote(v, safe='/')}" for k, v in no_cert.items())).geturl(),
        password=values["REDIS_PASSWORD"], retry=Retry(NoBackoff(), 0), socket_timeout=5)
    with pytest.raises(redis.ConnectionError):
        bare.ping()


def test_second_run_changes_nothing(tls_host, tls_runner, pki):
    before = tls_cli(tls_host, "info", "server")
    run_id = re.search(r"run_id:(\w+)", before).group(1)
    time.sleep(1)
    result = run(tls_runner, tls_host, pki)
    assert result.returncode == 0, result.output
    assert result.host(tls_host)["changes"] == 0, result.host(tls_host)["changed_operations"]
    assert re.search(r"run_id:(\w+)", tls_cli(tls_host, "info", "server")).group(1) == run_id


def test_client_certificate_without_san_is_accepted_under_mtls(tls_host, tls_runner, pki, tmp_path):
    """A backend client made the common way (`openssl req -subj /CN=...`, signed with `openssl x509
    -req`) has no subjectAltName: pre-flight lets it through, and Redis accepts it (issue 9, item 14)."""
    key, csr, cert = tmp_path / "plain.key", tmp_path / "plain.csr", tmp_path / "plain.crt"
    for command in (
        f"openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {key} "
        f"-subj /CN=hsi-backend-plain -out {csr}",
        f"openssl x509 -req -in {csr} -CA {pki / 'ca.crt'} -CAkey {pki / 'ca.key'} -set_serial 9 -days 30 "
        f"-out {cert}",
    ):
        subprocess.run(command.split(), check=True, capture_output=True)
    assert tls_preflight.san_names(x509.load_pem_x509_certificate(cert.read_bytes())) == []
    result = run(tls_runner, tls_host, pki, redis_tls_client_cert=str(cert), redis_tls_client_key=str(key))
    assert result.returncode == 0, result.output
    assert result.host(tls_host)["status"] == "ok", result.host(tls_host)  # verified with this client
    assert tls_host.sh("cat /opt/hsi/backend/redis-tls/client.crt").stdout == cert.read_text()
    assert tls_cli(tls_host, "ping") == "PONG"
    assert "PONG" not in tls_cli(tls_host, "ping", cert=False)


def test_bad_key_is_refused_before_the_host_changes(tls_host, tls_runner, pki):
    conf_before = tls_host.sh("sha256sum /etc/redis/redis.conf /etc/redis/tls-*").stdout
    # The CA's key is a valid key, just not the server certificate's.
    result = run(tls_runner, tls_host, pki, redis_tls_key=str(pki / "ca.key"))
    assert result.returncode != 0
    assert "redis_tls_key" in result.output and "does not match the certificate" in result.output, result.output
    assert tls_host.sh("sha256sum /etc/redis/redis.conf /etc/redis/tls-*").stdout == conf_before
    assert "PRIVATE KEY" not in result.output


def test_tls_port_change_then_tls_off_keep_the_data(tls_host, tls_runner, pki):
    """The deploy reaches a server still on its older TLS config (the probe reads its live
    tls-port), so moving the port or turning TLS off again works and loses nothing."""
    assert tls_cli(tls_host, "set", "hsi:tls:key", "kept") == "OK"
    moved = run(tls_runner, tls_host, pki, redis_tls_port=6390)
    assert moved.returncode == 0, moved.output
    assert moved.host(tls_host)["tls"]["via"] == "tls"
    assert tls_cli(tls_host, "get", "hsi:tls:key", port=6390) == "kept"
    assert "Connection refused" in tls_cli(tls_host, "ping", port=6380)

    # TLS off on a server that listens beyond loopback: refused before anything changes, unless plain
    # text on the network is allowed on purpose (issue 11)
    refused = run(tls_runner, tls_host, pki, redis_tls=False, redis_tls_only=False)
    assert refused.returncode != 0 and "redis_allow_plaintext" in refused.output, refused.output
    assert tls_cli(tls_host, "get", "hsi:tls:key", port=6390) == "kept"
    off = run(tls_runner, tls_host, pki, redis_tls=False, redis_tls_only=False, redis_allow_plaintext=True)
    assert off.returncode == 0, off.output
    assert off.host(tls_host)["status"] == "ok"
    assert tls_host.redis_cli("get", "hsi:tls:key", password=PASSWORD) == "kept"
    values = dotenv_values(stream=io.StringIO(tls_host.sh(f"cat {ENV}").stdout))
    assert values["REDIS_URL"] == "redis://127.0.0.1:6379/0"
