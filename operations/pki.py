"""A small private PKI for sites without one (`python -m operations.certs`, or `ensure_pki`).

It creates a private CA, one server certificate per inventory host and a backend client certificate
in a local directory (0700, keys 0600). It is idempotent: files that are still valid, and cover the
wanted names, are kept as they are.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .credentials import store_dir
from .tls_preflight import (
    CertProblem,
    TlsPaths,
    _spki,
    _subject,
    ca_problems,
    check_leaf,
    covers,
    load_certificates,
    load_key,
    validity,
)

CA_DAYS = 3650
LEAF_DAYS = 825  # the longest lifetime strict TLS clients (Apple's) still accept
# Names every helper-made server certificate covers: the deploy's own checks and a local exporter.
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
BACKEND_CLIENT = "backend-client"

def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with the final mode from the start (a key is never readable by others)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover could carry a looser mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _new_key():
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _builder(subject: str, issuer: x509.Name | None, public_key, days: int, now: dt.datetime):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def make_ca(now: dt.datetime, common_name: str | None = None):
    key = _new_key()
    # A name of its own: two sites' CAs never look alike to a client choosing an issuer.
    common_name = common_name or f"hsi-redis private CA {x509.random_serial_number() % 16**8:08x}"
    cert = (
        _builder(common_name, None, key.public_key(), CA_DAYS, now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(ca_cert: x509.Certificate, ca_key, common_name: str, names: list[str], usage, now: dt.datetime):
    """A server (usage serverAuth) or client (clientAuth) certificate signed by the CA."""
    key = _new_key()
    builder = (
        _builder(common_name, ca_cert.subject, key.public_key(), LEAF_DAYS, now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([_subject(n) for n in names]), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def safe_name(host_name: str) -> str:
    """A directory name for an inventory host (`@docker/x` -> `_docker_x`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", host_name).lstrip(".") or "_"


def pki_dir() -> Path:
    """Default helper directory: `pki/` in the control machine's secret store (`.secrets/`)."""
    return store_dir() / "pki"


def pki_layout(directory: Path, host_name: str) -> TlsPaths:
    """Where the helper keeps a host's files (the default for unset TLS path settings)."""
    host_dir = directory / "hosts" / safe_name(host_name)
    return TlsPaths(ca=directory / "ca.crt", cert=host_dir / "server.crt", key=host_dir / "server.key",
                    client_cert=directory / f"{BACKEND_CLIENT}.crt", client_key=directory / f"{BACKEND_CLIENT}.key")


def _still_good(cert_path: Path, key_path: Path, cas: list[x509.Certificate], now: dt.datetime,
                names: list[str] | None) -> bool:
    """Whether an existing pair is valid, not near expiry, issued by the CA, and covers `names`."""
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        problems, warnings = check_leaf(cert_path.read_bytes(), key_path.read_bytes(), cas, now,
                                        names[0] if names else None)
        leaf = load_certificates(cert_path.read_bytes())[0]
    except (CertProblem, OSError):
        return False
    return not problems and not warnings and all(covers(leaf, n) for n in names or [])


def ensure_pki(directory: Path, hosts: dict[str, list[str]], client: bool = True,
               now: dt.datetime | None = None) -> list[str]:
    """Create (or keep) a CA, a server certificate per host covering its names, and a backend
    client certificate. Returns one line per file pair: what was done.

    Example: ``ensure_pki(Path(".secrets/pki"), {"redis-1": ["redis-1.lan", "localhost"]})``
    """
    now = now or dt.datetime.now(dt.UTC)
    _private_dir(directory)
    done: list[str] = []
    ca_path, ca_key_path = directory / "ca.crt", directory / "ca.key"
    ca_cert = ca_key = None
    if ca_path.exists() and ca_key_path.exists():
        try:
            ca_cert = load_certificates(ca_path.read_bytes())[0]
            ca_key = load_key(ca_key_path.read_bytes())
            bad = (ca_problems(ca_cert) or any(validity(ca_cert, now))
                   or _spki(ca_key.public_key()) != _spki(ca_cert.public_key()))
        except (CertProblem, OSError):
            bad = True
        if bad:
            ca_cert = ca_key = None
    if ca_cert is None:
        ca_cert, ca_key = make_ca(now)
        _write(ca_key_path, _key_pem(ca_key), 0o600)
        _write(ca_path, _cert_pem(ca_cert), 0o644)
        done.append(f"created {ca_path}")
    else:
        done.append(f"kept    {ca_path}")

    def pair(cert_path: Path, key_path: Path, common_name: str, names: list[str], usage) -> None:
        for parent in reversed(cert_path.relative_to(directory).parents):
            _private_dir(directory / parent)  # hosts/ and hosts/<name>/ too, not only the leaf
        if _still_good(cert_path, key_path, [ca_cert], now, names if usage == ExtendedKeyUsageOID.SERVER_AUTH else None):
            done.append(f"kept    {cert_path}")
            return
        cert, key = make_leaf(ca_cert, ca_key, common_name, names, usage, now)
        _write(key_path, _key_pem(key), 0o600)
        _write(cert_path, _cert_pem(cert), 0o644)
        done.append(f"created {cert_path} ({', '.join(names)})" if names else f"created {cert_path}")

    for host_name, names in hosts.items():
        layout = pki_layout(directory, host_name)
        wanted = list(dict.fromkeys(names))
        pair(layout.cert, layout.key, wanted[0] if wanted else "redis", wanted, ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        layout = pki_layout(directory, "")
        pair(layout.client_cert, layout.client_key, "hsi-backend", ["hsi-backend"], ExtendedKeyUsageOID.CLIENT_AUTH)
    return done


