"""TLS pre-flight on the control machine: the files a host's TLS settings name, checked before any
host is touched.

Each file parses, each key matches its certificate, each certificate chains to the CA (by signature),
none has expired (a warning when one expires within `EXPIRY_WARNING_DAYS`), the server certificate's
subjectAltName covers the name the backend puts in `REDIS_URL` (a client certificate needs none: Redis
checks its chain, not its names), and the CA carries what strict clients (Python 3.13+, OpenSSL's
X509_STRICT) demand: basicConstraints CA=true (critical), keyUsage keyCertSign and a subject key
identifier; certificates it issues need an authority key identifier. Each problem reads
`setting: file: cause`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from .credentials import Secret

EXPIRY_WARNING_DAYS = 30


@dataclass(frozen=True)
class TlsConfig:
    """Validated TLS settings of one host, with the file contents read on the control machine."""

    port: int
    only: bool
    auth_clients: str                 # yes | optional | no
    ca_pem: str
    cert_pem: str                     # the server certificate (and any intermediates)
    key_pem: Secret
    client_cert_pem: str | None       # the backend's certificate (mTLS), or None
    client_key_pem: Secret | None
    backend_dir: str | None           # where the backend's copies go on the host, or None

    @property
    def mtls(self) -> bool:
        return self.client_cert_pem is not None


class CertProblem(Exception):
    """One thing wrong with one file; the message is the cause."""


# -- reading ------------------------------------------------------------------------------------

def read_pem(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertProblem("file not found") from None
    except OSError as exc:
        raise CertProblem(f"cannot read it ({exc.strerror})") from None


def load_certificates(data: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertProblem("not a PEM certificate") from None
    return certs


def load_key(data: bytes):
    if b"PRIVATE KEY" not in data:
        raise CertProblem("not a PEM private key")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CertProblem("the key is encrypted; Redis cannot ask for its passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertProblem("not a usable PEM private key") from None


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def _extension(cert: x509.Certificate, kind):
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


# -- checks -------------------------------------------------------------------------------------

def ca_problems(cert: x509.Certificate) -> list[str]:
    """What a strict client would hold against `cert` as a CA certificate."""
    problems = []
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.value.ca:
        problems.append("is not a CA certificate (basicConstraints CA=true missing)")
    elif not constraints.critical:
        problems.append("basicConstraints is not marked critical")
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not usage.value.key_cert_sign:
        problems.append("keyUsage lacks keyCertSign")
    if _extension(cert, x509.SubjectKeyIdentifier) is None:
        problems.append("has no subjectKeyIdentifier")
    return [f"CA {_name(cert)}: {p} (Python 3.13+ clients reject it)" for p in problems]


def validity(cert: x509.Certificate, now: dt.datetime) -> tuple[str | None, str | None]:
    """(problem, warning) about the certificate's validity period at `now`."""
    if now < cert.not_valid_before_utc:
        return f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC", None
    if now > cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d}", None
    left = cert.not_valid_after_utc - now
    if left < dt.timedelta(days=EXPIRY_WARNING_DAYS):
        return None, f"expires on {cert.not_valid_after_utc:%Y-%m-%d} (in {left.days} days): renew it"
    return None, None


def san_names(cert: x509.Certificate) -> list[str]:
    san = _extension(cert, x509.SubjectAlternativeName)
    if san is None:
        return []
    names = [f"DNS:{n}" for n in san.value.get_values_for_type(x509.DNSName)]
    names += [f"IP:{a}" for a in san.value.get_values_for_type(x509.IPAddress)]
    return names


def _dns_match(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def covers(cert: x509.Certificate, name: str) -> bool:
    """Whether the certificate's subjectAltName covers a host name or IP address (CN is ignored)."""
    san = _extension(cert, x509.SubjectAlternativeName)
    if san is None:
        return False
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return any(_dns_match(p, name) for p in san.value.get_values_for_type(x509.DNSName))
    return address in san.value.get_values_for_type(x509.IPAddress)


def _subject(name: str):
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _issuer_problem(leaf: x509.Certificate, chain: list[x509.Certificate], cas: list[x509.Certificate]) -> str | None:
    """A readable reason when `leaf` (with `chain`) was not issued by one of `cas`."""
    issuers = {c.subject for c in cas + chain}
    if leaf.issuer not in issuers:
        return (f"issued by {leaf.issuer.rfc4514_string()}, not by the CA in the CA file "
                f"({', '.join(_name(c) for c in cas)})")
    for ca in cas + chain:
        if ca.subject == leaf.issuer:
            try:
                leaf.verify_directly_issued_by(ca)
                return None
            except (ValueError, TypeError, InvalidSignature):
                continue
    return (f"not issued by the CA in the CA file: its signature does not verify with "
            f"{leaf.issuer.rfc4514_string()} (another CA with the same name?)")


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)  # the issuer's name, then the signature
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _weak(cert: x509.Certificate) -> str | None:
    """What OpenSSL at Debian's default security level (2) refuses in a certificate."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        return f"{_name(cert)} has a {key.key_size}-bit RSA key (at least 2048 needed)"
    digest = cert.signature_hash_algorithm
    if digest is not None and digest.name in ("md5", "sha1"):
        return f"{_name(cert)} is signed with {digest.name.upper()} (too weak)"
    return None


def client_chain_problem(leaf: x509.Certificate, chain: list[x509.Certificate],
                         cas: list[x509.Certificate], now: dt.datetime) -> str | None:
    """Why the server (OpenSSL) would refuse `leaf` as a client certificate, or None.

    What Redis checks, without the web PKI's name rules: a client certificate needs no
    subjectAltName (`openssl req -subj /CN=...` makes none; `openssl x509 -req` without
    extensions even an X.509 v1 one). Checked: an extendedKeyUsage, where present, allows
    clientAuth; each signature up to a CA in the CA file; each intermediate is a CA, valid
    now; no weak key or digest.
    """
    usage = _extension(leaf, x509.ExtendedKeyUsage)
    allowed = {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
    if usage is not None and not allowed & set(usage.value):
        return "its extendedKeyUsage does not allow clientAuth (TLS client authentication); the server rejects it"
    current, left = leaf, list(chain)
    while True:
        weak = _weak(current)
        if weak:
            return f"the server rejects it: {weak}"
        if any(_signed_by(current, ca) for ca in cas):
            return None
        issuer = next((c for c in left if _signed_by(current, c)), None)
        if issuer is None:
            return f"{_name(current)} is not issued by the CA in the CA file ({', '.join(_name(c) for c in cas)})"
        constraints = _extension(issuer, x509.BasicConstraints)
        if constraints is None or not constraints.value.ca:
            return f"its issuer {_name(issuer)} (in the certificate file) is not a CA certificate"
        problem, _ = validity(issuer, now)
        if problem:
            return f"intermediate {_name(issuer)}: {problem}"
        left.remove(issuer)
        current = issuer


def check_leaf(cert_data: bytes, key_data: bytes, cas: list[x509.Certificate], now: dt.datetime,
               server_name: str | None) -> tuple[dict[str, str], list[str]]:
    """Check a certificate file and its key. `server_name` given: a server certificate that must
    cover it; None: a client certificate (no name needed, see `client_chain_problem`).
    Returns ({"cert"|"key": cause}, warnings)."""
    problems: dict[str, str] = {}
    warnings: list[str] = []
    try:
        certs = load_certificates(cert_data)
    except CertProblem as exc:
        problems["cert"] = str(exc)
        certs = []
    try:
        key = load_key(key_data)
    except CertProblem as exc:
        problems["key"] = str(exc)
        key = None
    if not certs:
        return problems, warnings
    leaf, chain = certs[0], certs[1:]
    if key is not None and _spki(key.public_key()) != _spki(leaf.public_key()):
        problems["key"] = f"does not match the certificate {_name(leaf)} (another certificate's key?)"
    problem, warning = validity(leaf, now)
    if problem:
        problems["cert"] = problem
        return problems, warnings
    if warning:
        warnings.append(warning)
    if server_name is not None and not covers(leaf, server_name):
        names = ", ".join(san_names(leaf)) or "none"
        problems["cert"] = (f"its subjectAltName ({names}) does not cover {server_name!r}, the host the "
                            "backend connects to (redis_backend_host); clients check it")
        return problems, warnings
    issuer = _issuer_problem(leaf, chain, cas) if cas else None
    if issuer:
        problems["cert"] = issuer
        return problems, warnings
    if server_name is None:
        # The server (OpenSSL) checks a client certificate: the web PKI's rules (a SAN, v3, key
        # identifiers) that Python applies to the server's certificate do not apply here.
        problem = client_chain_problem(leaf, chain, cas, now) if cas else None
        if problem:
            problems["cert"] = problem
        return problems, warnings
    if _extension(leaf, x509.AuthorityKeyIdentifier) is None and leaf.issuer != leaf.subject:
        problems["cert"] = "has no authorityKeyIdentifier (Python 3.13+ clients reject it)"
        return problems, warnings
    if cas:
        try:
            PolicyBuilder().store(Store(cas)).time(now).build_server_verifier(_subject(server_name)).verify(leaf, chain)
        except VerificationError as exc:
            problems["cert"] = f"a strict client rejects it: {exc}"
    return problems, warnings


@dataclass(frozen=True)
class TlsPaths:
    """Control-machine paths of one host's TLS files, keyed by the setting that names each."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path | None = None
    client_key: Path | None = None


def check_tls_files(paths: TlsPaths, server_name: str, now: dt.datetime | None = None
                    ) -> tuple[dict[str, str] | None, list[str], list[str]]:
    """Pre-flight of one host's TLS files.

    Returns (contents by role or None, problems, warnings); each problem and warning reads
    ``setting: file: cause`` (the caller prefixes the host). Contents are only returned
    when there is no problem.
    """
    now = now or dt.datetime.now(dt.UTC)
    problems: list[str] = []
    warnings: list[str] = []
    setting = {"ca": "redis_tls_ca_cert", "cert": "redis_tls_cert", "key": "redis_tls_key",
               "client_cert": "redis_tls_client_cert", "client_key": "redis_tls_client_key"}
    contents: dict[str, bytes] = {}
    for role, name in setting.items():
        path = getattr(paths, role)
        if path is None:
            continue
        try:
            contents[role] = read_pem(path)
        except CertProblem as exc:
            problems.append(f"{name}: {path}: {exc}")

    def add(role: str, cause: str, into: list[str]) -> None:
        into.append(f"{setting[role]}: {getattr(paths, role)}: {cause}")

    cas: list[x509.Certificate] = []
    if "ca" in contents:
        try:
            cas = load_certificates(contents["ca"])
        except CertProblem as exc:
            add("ca", str(exc), problems)
        for ca in cas:
            for cause in ca_problems(ca):
                add("ca", cause, problems)
            problem, warning = validity(ca, now)
            if problem:
                add("ca", f"CA {_name(ca)}: {problem}", problems)
            elif warning:
                add("ca", f"CA {_name(ca)}: {warning}", warnings)
    usable_cas = cas if not problems else []  # a broken CA makes every chain check noise
    for cert_role, key_role, name in (("cert", "key", server_name), ("client_cert", "client_key", None)):
        if cert_role not in contents or key_role not in contents:
            continue
        found, leaf_warnings = check_leaf(contents[cert_role], contents[key_role], usable_cas, now, name)
        for part, cause in found.items():
            add(cert_role if part == "cert" else key_role, cause, problems)
        for warning in leaf_warnings:
            add(cert_role, warning, warnings)
    if problems:
        return None, problems, warnings
    return {role: data.decode("ascii", "replace") for role, data in contents.items()}, problems, warnings


