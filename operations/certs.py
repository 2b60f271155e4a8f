"""X.509 on the control machine: pre-flight checks of the TLS files, and a small private PKI.

Pre-flight (`check_tls_files`) runs while settings are validated, before any host is touched:
each file parses, each key matches its certificate, each certificate chains to the CA, none
has expired (a warning when one expires within `EXPIRY_WARNING_DAYS`), the server
certificate's subjectAltName covers the name the backend puts in `REDIS_URL` (a client
certificate needs none: Redis checks its chain, not its names), and the CA
carries what strict clients (Python 3.13+, OpenSSL's X509_STRICT) demand: basicConstraints
CA=true (critical), keyUsage keyCertSign and a subject key identifier; certificates it
issues need an authority key identifier. Each problem reads `setting: file: cause`.

The helper (`ensure_pki`, or `python -m operations.certs --help`) creates a private CA, one
server certificate per inventory host and a backend client certificate in a local directory
(0700, keys 0600). It is idempotent: files that are still valid, and cover the wanted
names, are kept as they are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import re
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from .credentials import Secret, store_dir

EXPIRY_WARNING_DAYS = 30
CA_DAYS = 3650
LEAF_DAYS = 825  # the longest lifetime strict TLS clients (Apple's) still accept
# Names every helper-made server certificate covers: the deploy's own checks and a local exporter.
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
BACKEND_CLIENT = "backend-client"


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


# -- the helper ---------------------------------------------------------------------------------

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


# -- inventory reading for the command line -------------------------------------------------------

def _module_data(path: Path) -> dict:
    if not path.exists():
        return {}
    return {k: v for k, v in runpy.run_path(str(path)).items() if not k.startswith("_")}


def _is_name(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", value))


def host_names(inventory: Path, group_data: Path | None = None, extra: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Inventory host -> the names its server certificate must cover.

    Reads a pyinfra inventory file the way pyinfra does (each module-level list/tuple is a
    group of `"name"` or `("name", {data})`) plus `group_data/all.py` and `group_data/<group>.py`.
    Names: `redis_backend_host`, the host's address (`ssh_hostname` or its name when that is a
    DNS name/IP), `extra`, and the local names the deploy's own checks use.
    """
    group_data = group_data or Path.cwd() / "group_data"
    module = _module_data(inventory)
    common = _module_data(group_data / "all.py")
    hosts: dict[str, list[str]] = {}
    for group, members in module.items():
        if not isinstance(members, (list, tuple)):
            continue
        group_vars = _module_data(group_data / f"{group}.py")
        for member in members:
            name, data = (member, {}) if isinstance(member, str) else (member[0], dict(member[1]))
            merged = {**common, **group_vars, **data}
            names = [str(merged.get("redis_backend_host") or "localhost")]
            address = str(merged.get("ssh_hostname") or name)
            if _is_name(address):
                names.append(address)
            hosts.setdefault(name, [])
            hosts[name] = list(dict.fromkeys(hosts[name] + names + list(extra) + list(LOCAL_NAMES)))
    return hosts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m operations.certs",
        description="Create (or keep) a private CA, one Redis server certificate per inventory host "
                    "and a backend client certificate, for sites without a PKI. Existing valid files "
                    "are kept; keys are written 0600 in 0700 directories.",
    )
    parser.add_argument("inventory", type=Path, help="pyinfra inventory file (e.g. inventories/production.py)")
    parser.add_argument("--dir", type=Path, default=None,
                        help=f"output directory (default: {pki_dir()}, or $HSI_REDIS_SECRETS_DIR/pki)")
    parser.add_argument("--san", action="append", default=[],
                        help="extra name or address every server certificate covers (repeatable)")
    parser.add_argument("--no-client", action="store_true", help="do not create the backend client certificate")
    args = parser.parse_args(argv)
    if not args.inventory.exists():
        parser.error(f"{args.inventory}: no such inventory file")
    directory = args.dir or pki_dir()
    hosts = host_names(args.inventory, extra=tuple(args.san))
    for line in ensure_pki(directory, hosts, client=not args.no_client):
        print(line)
    print(f"\nCA: {directory / 'ca.crt'}; with redis_tls=true the deploy finds these files by default."
          f"\nmTLS: set redis_tls_client_cert={directory / (BACKEND_CLIENT + '.crt')} and "
          f"redis_tls_client_key={directory / (BACKEND_CLIENT + '.key')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
