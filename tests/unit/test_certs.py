"""Pre-flight checks of the TLS files and the certificate helper (pure control-machine X.509)."""

from __future__ import annotations

import datetime as dt
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from operations import certs, pki, tls_preflight, validation

NOW = dt.datetime.now(dt.UTC)
HOST = "redis-1"


@pytest.fixture(autouse=True)
def _no_env_password(monkeypatch, tmp_path):
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path / "secrets"))


def make_pki(directory: Path, names=("redis.lan", "localhost"), now=NOW) -> tls_preflight.TlsPaths:
    pki.ensure_pki(directory, {HOST: list(names)}, now=now)
    return pki.pki_layout(directory, HOST)


def parse(paths: tls_preflight.TlsPaths | None, mtls: bool = True, **extra):
    data = {"redis_password": "a-long-enough-password", "redis_tls": True, "redis_backend_host": "redis.lan"}
    if paths is not None:
        data.update(redis_tls_ca_cert=str(paths.ca), redis_tls_cert=str(paths.cert), redis_tls_key=str(paths.key))
        if mtls:
            data.update(redis_tls_client_cert=str(paths.client_cert), redis_tls_client_key=str(paths.client_key))
    data.update(extra)
    return validation.parse(HOST, data)


def only_problem(problems: list[str], setting: str, path: Path, cause: str) -> None:
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{HOST}: {setting}: {path}: "), problems[0]
    assert cause in problems[0], problems[0]


# -- pre-flight ---------------------------------------------------------------------------------

def test_valid_files_pass_and_are_carried_in_the_settings(tmp_path):
    paths = make_pki(tmp_path / "pki")
    conf, problems = parse(paths)
    assert problems == []
    assert conf.tls.auth_clients == "yes" and conf.tls.mtls and conf.tls.port == 6380
    assert conf.tls.cert_pem == paths.cert.read_text()
    assert "PRIVATE" not in repr(conf)  # keys are Secrets
    assert conf.tls.backend_dir == "/opt/hsi/backend/redis-tls"


def test_unset_paths_default_to_the_helper_layout(tmp_path):
    make_pki(pki.pki_dir())
    conf, problems = parse(None, redis_tls_auth_clients="no")
    assert problems == [] and conf.tls is not None and not conf.tls.mtls


def test_key_that_does_not_match_its_certificate(tmp_path):
    paths = make_pki(tmp_path / "pki")
    conf, problems = parse(paths, redis_tls_key=str(paths.client_key))
    assert conf is None
    only_problem(problems, "redis_tls_key", paths.client_key, "does not match the certificate")


def test_expired_certificate(tmp_path):
    paths = make_pki(tmp_path / "pki", now=NOW - dt.timedelta(days=pki.LEAF_DAYS + 5))
    _, problems = parse(paths, mtls=False, redis_tls_auth_clients="no")
    only_problem(problems, "redis_tls_cert", paths.cert, "expired on")


def test_certificate_expiring_soon_is_a_warning(tmp_path):
    paths = make_pki(tmp_path / "pki", now=NOW - dt.timedelta(days=pki.LEAF_DAYS - 10))
    conf, problems = parse(paths, mtls=False, redis_tls_auth_clients="no")
    assert problems == []
    assert len(conf.warnings) == 1 and conf.warnings[0].startswith(f"redis_tls_cert: {paths.cert}: expires on")


def test_san_that_misses_the_backend_host(tmp_path):
    paths = make_pki(tmp_path / "pki", names=("other.lan",))
    _, problems = parse(paths)
    only_problem(problems, "redis_tls_cert", paths.cert, "does not cover 'redis.lan'")


def test_san_covers_ip_addresses_and_wildcards(tmp_path):
    paths = make_pki(tmp_path / "pki", names=("*.hsi.lan", "10.0.0.5"))
    assert parse(paths, redis_backend_host="10.0.0.5")[1] == []
    assert parse(paths, redis_backend_host="redis.hsi.lan")[1] == []
    assert parse(paths, redis_backend_host="a.b.hsi.lan")[1] != []


def test_certificate_from_another_ca(tmp_path):
    ours, theirs = make_pki(tmp_path / "ours"), make_pki(tmp_path / "theirs")
    _, problems = parse(ours, redis_tls_cert=str(theirs.cert), redis_tls_key=str(theirs.key))
    only_problem(problems, "redis_tls_cert", theirs.cert, "not by the CA in the CA file")
    # Same CA name, another key: still refused.
    clone = tmp_path / "clone"
    pki.ensure_pki(clone, {HOST: ["redis.lan"]})
    ca_name = x509.load_pem_x509_certificate(ours.ca.read_bytes()).subject.rfc4514_string().split("=", 1)[1]
    impostor, impostor_key = pki.make_ca(NOW, ca_name)
    leaf, leaf_key = pki.make_leaf(impostor, impostor_key, "redis.lan", ["redis.lan"],
                                     ExtendedKeyUsageOID.SERVER_AUTH, NOW)
    (clone / "fake.crt").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (clone / "fake.key").write_bytes(pki._key_pem(leaf_key))
    _, problems = parse(ours, redis_tls_cert=str(clone / "fake.crt"), redis_tls_key=str(clone / "fake.key"))
    only_problem(problems, "redis_tls_cert", clone / "fake.crt", "not issued by the CA in the CA file")


def test_client_certificate_from_another_ca(tmp_path):
    ours, theirs = make_pki(tmp_path / "ours"), make_pki(tmp_path / "theirs")
    _, problems = parse(ours, redis_tls_client_cert=str(theirs.client_cert),
                        redis_tls_client_key=str(theirs.client_key))
    only_problem(problems, "redis_tls_client_cert", theirs.client_cert, "not by the CA")


# -- client certificates without a subjectAltName (issue 9, item 14) ------------------------------
# Redis checks a client certificate's chain, signature and dates, not its names: a client made
# with `openssl req -subj /CN=...` (no SAN; on OpenSSL 3.0 even an X.509 v1 certificate) works.

def _ca(paths: tls_preflight.TlsPaths):
    return (x509.load_pem_x509_certificate(paths.ca.read_bytes()),
            serialization.load_pem_private_key(paths.ca.with_name("ca.key").read_bytes(), None))


def _client(issuer, issuer_key, path: Path, *, days=(-1, 30), eku=ExtendedKeyUsageOID.CLIENT_AUTH,
            ca=False, chain=()) -> tuple[Path, Path]:
    """A client certificate without subjectAltName signed by `issuer`; returns (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, path.stem)]))
               .issuer_name(issuer.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW + dt.timedelta(days=days[0])).not_valid_after(NOW + dt.timedelta(days=days[1]))
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                              critical=False))
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    if ca:
        builder = (builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    cert = builder.sign(issuer_key, hashes.SHA256())
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, *chain)))
    path.with_suffix(".key").write_bytes(pki._key_pem(key))
    return path, path.with_suffix(".key")


def _with_client(paths: tls_preflight.TlsPaths, cert: Path, key: Path):
    return parse(paths, redis_tls_client_cert=str(cert), redis_tls_client_key=str(key))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_client_certificate_made_with_openssl_req_has_no_san_and_passes(tmp_path):
    paths = make_pki(tmp_path / "pki")
    key, csr, cert = tmp_path / "client.key", tmp_path / "client.csr", tmp_path / "client.crt"
    for command in (
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-subj", "/CN=hsi-backend", "-out", str(csr)],
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(paths.ca), "-CAkey", str(paths.ca.with_name("ca.key")),
         "-set_serial", "7", "-days", "90", "-out", str(cert)],
    ):
        subprocess.run(command, check=True, capture_output=True)
    assert tls_preflight.san_names(x509.load_pem_x509_certificate(cert.read_bytes())) == []
    conf, problems = _with_client(paths, cert, key)
    assert problems == [] and conf.tls.mtls and conf.tls.client_cert_pem == cert.read_text()


@pytest.mark.parametrize("eku", [ExtendedKeyUsageOID.CLIENT_AUTH, None])
def test_client_certificate_without_san_passes(tmp_path, eku):
    paths = make_pki(tmp_path / "pki")
    cert, key = _client(*_ca(paths), tmp_path / "client.crt", eku=eku)
    conf, problems = _with_client(paths, cert, key)
    assert problems == [] and conf.tls.mtls


def test_client_certificate_through_an_intermediate_without_san_passes(tmp_path):
    paths = make_pki(tmp_path / "pki")
    root, root_key = _ca(paths)
    middle_path, middle_key_path = _client(root, root_key, tmp_path / "middle.crt", eku=None, ca=True)
    middle = x509.load_pem_x509_certificate(middle_path.read_bytes())
    middle_key = serialization.load_pem_private_key(middle_key_path.read_bytes(), None)
    cert, key = _client(middle, middle_key, tmp_path / "client.crt", chain=(middle,))
    assert _with_client(paths, cert, key)[1] == []
    # an intermediate that is no CA cannot issue
    fake_path, fake_key_path = _client(root, root_key, tmp_path / "notca.crt", eku=None)
    fake = x509.load_pem_x509_certificate(fake_path.read_bytes())
    fake_key = serialization.load_pem_private_key(fake_key_path.read_bytes(), None)
    cert, key = _client(fake, fake_key, tmp_path / "client2.crt", chain=(fake,))
    only_problem(_with_client(paths, cert, key)[1], "redis_tls_client_cert", cert, "not a CA")


def test_client_certificate_without_san_keeps_the_other_checks(tmp_path):
    paths, other = make_pki(tmp_path / "pki"), make_pki(tmp_path / "other")
    ca, ca_key = _ca(paths)
    cert, key = _client(*_ca(other), tmp_path / "foreign.crt")
    only_problem(_with_client(paths, cert, key)[1], "redis_tls_client_cert", cert, "not by the CA")
    cert, key = _client(ca, ca_key, tmp_path / "expired.crt", days=(-90, -1))
    only_problem(_with_client(paths, cert, key)[1], "redis_tls_client_cert", cert, "expired on")
    cert, key = _client(ca, ca_key, tmp_path / "future.crt", days=(2, 90))
    only_problem(_with_client(paths, cert, key)[1], "redis_tls_client_cert", cert, "not valid before")
    cert, key = _client(ca, ca_key, tmp_path / "server-only.crt", eku=ExtendedKeyUsageOID.SERVER_AUTH)
    only_problem(_with_client(paths, cert, key)[1], "redis_tls_client_cert", cert, "clientAuth")
    cert, _ = _client(ca, ca_key, tmp_path / "mismatch.crt")
    only_problem(_with_client(paths, cert, paths.client_key)[1], "redis_tls_client_key", paths.client_key,
                 "does not match the certificate")
    # a CA with the same name but another key
    impostor, impostor_key = pki.make_ca(NOW, ca.subject.rfc4514_string().split("=", 1)[1])
    cert, key = _client(impostor, impostor_key, tmp_path / "impostor.crt")
    only_problem(_with_client(paths, cert, key)[1], "redis_tls_client_cert", cert, "not issued by the CA")


def test_server_certificate_still_needs_a_san(tmp_path):
    paths = make_pki(tmp_path / "pki")
    cert, key = _client(*_ca(paths), tmp_path / "server.crt", eku=ExtendedKeyUsageOID.SERVER_AUTH)
    _, problems = parse(paths, redis_tls_cert=str(cert), redis_tls_key=str(key))
    only_problem(problems, "redis_tls_cert", cert, "subjectAltName (none) does not cover 'redis.lan'")


def _weak_ca(directory: Path) -> tls_preflight.TlsPaths:
    """A CA without keyUsage and subjectKeyIdentifier, basicConstraints not critical."""
    directory.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak CA")])
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
          .serial_number(1).not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=99))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=False)
          .sign(key, hashes.SHA256()))
    leaf, leaf_key = pki.make_leaf(ca, key, "redis.lan", ["redis.lan"], ExtendedKeyUsageOID.SERVER_AUTH, NOW)
    paths = tls_preflight.TlsPaths(ca=directory / "ca.crt", cert=directory / "s.crt", key=directory / "s.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(pki._key_pem(leaf_key))
    return paths


def test_ca_lacking_the_extensions_strict_clients_require(tmp_path):
    paths = _weak_ca(tmp_path / "weak")
    _, problems = parse(paths, mtls=False, redis_tls_auth_clients="no")
    assert all(p.startswith(f"{HOST}: redis_tls_ca_cert: {paths.ca}: CA CN=weak CA: ") for p in problems), problems
    text = "\n".join(problems)
    for cause in ("basicConstraints is not marked critical", "keyUsage lacks keyCertSign", "no subjectKeyIdentifier"):
        assert cause in text


def test_missing_file_garbage_and_encrypted_key(tmp_path):
    paths = make_pki(tmp_path / "pki")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello\n")
    encrypted = tmp_path / "enc.key"
    key = serialization.load_pem_private_key(paths.key.read_bytes(), None)
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"secret")))
    _, problems = parse(paths, redis_tls_ca_cert=str(tmp_path / "nope.crt"), redis_tls_cert=str(garbage),
                        redis_tls_key=str(encrypted))
    text = "\n".join(problems)
    assert f"redis_tls_ca_cert: {tmp_path / 'nope.crt'}: file not found" in text
    assert f"redis_tls_cert: {garbage}: not a PEM certificate" in text
    assert f"redis_tls_key: {encrypted}: the key is encrypted" in text


@pytest.mark.parametrize("extra, setting", [
    ({"redis_tls": False, "redis_tls_only": True}, "redis_tls_only"),
    ({"redis_tls_port": 6379}, "redis_tls_port"),
    ({"redis_tls_auth_clients": "maybe"}, "redis_tls_auth_clients"),
    ({"redis_tls_client_key": None}, "redis_tls_client_cert"),
    ({"redis_exporter_listen": "everywhere"}, "redis_exporter_listen"),
])
def test_setting_combinations_that_cannot_work(tmp_path, extra, setting):
    paths = make_pki(tmp_path / "pki")
    _, problems = parse(paths, **extra)
    assert any(p.startswith(f"{HOST}: {setting}: ") for p in problems), problems


def test_auth_clients_yes_needs_a_client_certificate(tmp_path):
    paths = make_pki(tmp_path / "pki")
    _, problems = parse(paths, mtls=False, redis_tls_auth_clients="yes")
    assert problems == [(f"{HOST}: redis_tls_auth_clients: yes requires a client certificate for the backend "
                         "(redis_tls_client_cert / redis_tls_client_key), or use optional / no")]
    conf, problems = parse(paths, mtls=False)
    assert problems == [] and conf.tls.auth_clients == "no"


# -- the helper ---------------------------------------------------------------------------------

def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_helper_modes_and_idempotence(tmp_path):
    directory = tmp_path / "pki"
    first = pki.ensure_pki(directory, {HOST: ["redis.lan"], "@docker/x": ["127.0.0.1"]})
    assert all(line.startswith("created") for line in first)
    keys = [directory / "ca.key", directory / "backend-client.key", *directory.glob("hosts/*/server.key")]
    assert len(keys) == 4
    assert all(_mode(k) == 0o600 for k in keys)
    assert all(_mode(d) == 0o700 for d in (directory, directory / "hosts", *directory.glob("hosts/*")))
    before = {p: p.read_bytes() for p in directory.rglob("*") if p.is_file()}
    second = pki.ensure_pki(directory, {HOST: ["redis.lan"], "@docker/x": ["127.0.0.1"]})
    assert all(line.startswith("kept") for line in second)
    assert {p: p.read_bytes() for p in directory.rglob("*") if p.is_file()} == before
    assert (directory / "hosts" / "_docker_x" / "server.crt").exists()


def test_helper_reissues_what_no_longer_fits(tmp_path):
    directory = tmp_path / "pki"
    pki.ensure_pki(directory, {HOST: ["redis.lan"]})
    ca = (directory / "ca.crt").read_bytes()
    server = pki.pki_layout(directory, HOST).cert
    old = server.read_bytes()
    lines = pki.ensure_pki(directory, {HOST: ["redis.lan", "redis2.lan"]})  # a new name
    assert (directory / "ca.crt").read_bytes() == ca and server.read_bytes() != old
    assert any(line.startswith(f"created {server}") for line in lines)
    (directory / "ca.key").unlink()  # a CA without its key cannot sign: everything is reissued
    pki.ensure_pki(directory, {HOST: ["redis.lan"]})
    assert (directory / "ca.crt").read_bytes() != ca
    assert parse(pki.pki_layout(directory, HOST))[1] == []


def test_helper_certificates_pass_the_strict_checks(tmp_path):
    paths = make_pki(tmp_path / "pki", names=("redis.lan", "127.0.0.1"))
    _, problems, warnings = tls_preflight.check_tls_files(paths, "127.0.0.1")
    assert problems == [] and warnings == []
    ca = x509.load_pem_x509_certificate(paths.ca.read_bytes())
    assert tls_preflight.ca_problems(ca) == []


def test_helper_reads_names_from_an_inventory(tmp_path):
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        "big = [('redis-a.lan', {'redis_backend_host': 'cache.lan'}), ('x', {'ssh_hostname': '10.1.2.3'})]\n"
        "small = ['@docker/c1']\n"
    )
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "small.py").write_text("redis_backend_host = '127.0.0.1'\n")
    names = certs.host_names(inventory, tmp_path / "group_data")
    assert names["redis-a.lan"][:2] == ["cache.lan", "redis-a.lan"]
    assert "10.1.2.3" in names["x"] and "localhost" in names["x"]
    assert names["@docker/c1"][0] == "127.0.0.1" and "@docker/c1" not in names["@docker/c1"]


def test_helper_makes_no_server_certificate_for_a_backend_host(tmp_path):
    """A backend host (redis_role: backend) runs no server: its .env gets its server's CA and client pair."""
    inventory = tmp_path / "inventory.py"
    inventory.write_text("hosts = [('nvr', {'redis_role': 'server', 'redis_backend_host': 'nvr.lan'}),\n"
                         "         ('app', {'redis_role': 'backend', 'redis_server': 'nvr'})]\n")
    names = certs.host_names(inventory, tmp_path / "group_data")
    assert list(names) == ["nvr"] and names["nvr"][0] == "nvr.lan"


def test_helper_command_line(tmp_path, capsys):
    inventory = tmp_path / "inventory.py"
    inventory.write_text("hosts = ['redis-a.lan']\n")
    assert certs.main([str(inventory), "--dir", str(tmp_path / "out"), "--san", "redis.example"]) == 0
    out = capsys.readouterr().out
    assert "created" in out and "PRIVATE" not in out
    cert = x509.load_pem_x509_certificate(pki.pki_layout(tmp_path / "out", "redis-a.lan").cert.read_bytes())
    assert tls_preflight.covers(cert, "redis.example") and tls_preflight.covers(cert, "redis-a.lan")
