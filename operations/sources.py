"""Where the server package comes from, and whether its version is acceptable.

`redis_source`: `distro` (default) installs the release's own package; `upstream` installs
Redis from packages.redis.io (signed key, repository, version pin: see `repository`);
`auto` takes the distro's package unless it is below `redis_minimum_version`, then upstream.

The signing key is not fetched by the deploy: the operator downloads
https://packages.redis.io/gpg once, confirms its fingerprint (redis.io documents it), and
names the file and the fingerprint in the settings. The fingerprint is recomputed from the
file here (OpenPGP v4: SHA-1 over the public-key packet) before any host is touched, so a
swapped or corrupted key file stops the run.

`choose()` runs in the prologue, before any operation: the host's one state read tells the installed
and candidate versions, the version policy decides, and a host that fails it is stopped there with
nothing changed (other hosts go on).
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from . import rows, versions
from .rows import Row

ARMOR_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
ARMOR_END = "-----END PGP PUBLIC KEY BLOCK-----"
_FINGERPRINT_RE = re.compile(r"[0-9A-F]{40}")


class KeyProblem(ValueError):
    """The key file is not an OpenPGP public key we can fingerprint."""


def _dearmor(text: str) -> bytes:
    lines = text.strip().splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == ARMOR_BEGIN)
        end = next(i for i, line in enumerate(lines) if line.strip() == ARMOR_END)
    except StopIteration:
        raise KeyProblem("not an ASCII-armored OpenPGP public key block") from None
    body = [line.strip() for line in lines[start + 1 : end]]
    if "" in body:  # armor headers end at the first blank line
        body = body[body.index("") + 1 :]
    body = [line for line in body if line and not line.startswith("=")]  # "=XXXX" is the CRC
    try:
        return base64.b64decode("".join(body), validate=True)
    except ValueError:
        raise KeyProblem("the armored key is not valid base64") from None


def _first_packet(data: bytes) -> tuple[int, bytes]:
    """(tag, body) of the first OpenPGP packet (RFC 4880 section 4.2)."""
    if not data or not data[0] & 0x80:
        raise KeyProblem("no OpenPGP packet found")
    first = data[0]
    if first & 0x40:  # new format
        tag, octet, pos = first & 0x3F, data[1], 2
        if octet < 192:
            length = octet
        elif octet < 224:
            length, pos = ((octet - 192) << 8) + data[2] + 192, 3
        elif octet == 255:
            length, pos = int.from_bytes(data[2:6], "big"), 6
        else:
            raise KeyProblem("partial-length packets are not a public key")
    else:  # old format
        tag, kind = (first >> 2) & 0x0F, first & 0x03
        size = {0: 1, 1: 2, 2: 4}.get(kind)
        if size is None:
            raise KeyProblem("indeterminate-length packets are not a public key")
        length, pos = int.from_bytes(data[1 : 1 + size], "big"), 1 + size
    return tag, data[pos : pos + length]


def fingerprint(armored: str) -> str:
    """The v4 fingerprint (40 upper-case hex digits) of the first public key in `armored`."""
    tag, body = _first_packet(_dearmor(armored))
    if tag != 6:
        raise KeyProblem(f"the first packet is not a public key (tag {tag})")
    if not body or body[0] != 4:
        raise KeyProblem(f"only version 4 keys are supported (this is version {body[0] if body else '?'})")
    digest = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest()
    return digest.upper()


def normalise_fingerprint(value: str) -> str:
    return re.sub(r"\s+", "", str(value)).upper()


def parse_source_settings(reader) -> dict:
    """Read and check the source and version settings (a `settings._Reader`)."""
    source = reader.choice("redis_source", ("distro", "upstream", "auto"))
    for name in ("redis_minimum_version", "redis_upstream_version"):
        if isinstance(reader.raw(name), float):  # 7.10 would read as 7.1
            reader.fail(name, f'write the version as text, e.g. "{reader.raw(name)}" in quotes')
    minimum = str(reader.raw("redis_minimum_version") or "")
    if minimum and not versions.SETTING_RE.fullmatch(minimum):
        reader.fail("redis_minimum_version", f"{minimum!r} is not a version such as 7.4 or 7.4.2")
        minimum = ""
    series = str(reader.raw("redis_upstream_version") or "")
    if not versions.SETTING_RE.fullmatch(series) or series.count(".") < 1:
        reader.fail(
            "redis_upstream_version",
            f"{series!r} is not a release series such as 7.4, or a version such as 7.4.2",
        )
        series = "7.4"
    elif versions.parse(series) < (7, 0, 0):
        # The upstream rows assume a 7.0+ server (e.g. the optional "-::1" bind address).
        reader.fail(
            "redis_upstream_version", f"{series} is older than 7.0, which this deploy supports upstream"
        )
    key_text, key_fpr = "", ""
    if source != "distro":
        if minimum and versions.parse(series) < versions.parse(minimum):
            reader.fail("redis_upstream_version", f"{series} is below redis_minimum_version {minimum}")
        key_text, key_fpr = _key(reader)
    return {
        "source": source,
        "minimum_version": minimum,
        "upstream_version": series,
        "upstream_key": key_text,
        "upstream_key_fingerprint": key_fpr,
    }


def _key(reader) -> tuple[str, str]:
    path = str(reader.raw("redis_upstream_key") or "")
    wanted = normalise_fingerprint(reader.raw("redis_upstream_key_fingerprint") or "")
    if not path:
        reader.fail(
            "redis_upstream_key",
            "required with redis_source upstream/auto: download "
            "https://packages.redis.io/gpg and name the file here",
        )
        return "", ""
    if not _FINGERPRINT_RE.fullmatch(wanted):
        reader.fail(
            "redis_upstream_key_fingerprint",
            "required with redis_source upstream/auto: the key's 40-digit fingerprint as you confirmed it",
        )
        return "", ""
    try:
        text = Path(path).expanduser().read_text()
        found = fingerprint(text)
    except (OSError, UnicodeDecodeError, KeyProblem) as exc:
        reader.fail("redis_upstream_key", f"{path}: {exc}")
        return "", ""
    if found != wanted:
        reader.fail("redis_upstream_key", f"{path} has fingerprint {found}, not the confirmed {wanted}")
        return "", ""
    return text, found


def matches_series(installed: str, series: str) -> bool:
    """Whether an installed version belongs to the pinned series ("7.4" or exactly "7.4.2")."""
    have, parts = versions.parse(installed), [int(p) for p in series.split(".")]
    return have is not None and list(have[: len(parts)]) == parts


def expected_version(row: Row, installed: str, candidate: str, settings) -> tuple[str, str]:
    """(version, where it was read) of the server the deploy would leave on the host."""
    if row.source == "upstream":
        if installed and matches_series(installed, settings.upstream_version):
            return installed, "installed from upstream"
        return settings.upstream_version, "upstream pin"
    if installed:
        return installed, "installed"
    if candidate:
        return candidate, f"{row.package_manager} candidate"
    return row.distro_version, f"what {row.name} ships"


def choose(settings, row: Row, installed: str, candidate: str) -> tuple[Row, str | None, list[str]]:
    """Apply the source setting and the version policy to a host whose package state is known.

    `installed`/`candidate`: the server package's versions on the host ("" = none). Returns the row
    (upstream's where that is the source), a problem that stops this host before anything changes
    there (or None), and warnings for the summary.
    """
    def below_minimum(candidate_row: Row) -> bool:
        version = versions.parse(expected_version(candidate_row, installed, candidate, settings)[0])
        return bool(settings.minimum_version) and (
            version is None or versions.below_minimum(candidate_row.flavour, version, settings.minimum_version))

    wants_upstream = settings.source == "upstream" or (settings.source == "auto" and below_minimum(row))
    chosen = rows.upstream(row) if wants_upstream else None
    if wants_upstream and chosen is None and settings.source == "upstream":
        return row, (f"packages.redis.io has no {row.flavour} packages for {row.name} "
                     f"(redis_source=upstream); nothing was changed on this host"), []
    if chosen is not None:  # (auto without an upstream for this row: the distro's version decides below)
        row = chosen  # same package name as the distro's: the versions read still apply
    version, origin = expected_version(row, installed, candidate, settings)
    problem, warnings = versions.policy(row.flavour, version, settings.minimum_version, origin)
    if settings.verify_only and problem:  # verifying changes nothing: report, don't stop
        return row, None, [problem]
    return row, problem, warnings
