"""Server versions: read them from package versions, compare them, apply the version policy.

How versions are compared: a package version is reduced to its upstream release numbers
(`5:7.0.15-1~deb12u3` -> 7.0.15, `6:7.4.2-1rl1~bookworm1` -> 7.4.2, `8.1.1+dfsg1-2` -> 8.1.1,
`7.2.4-1.fc40` -> 7.2.4): epoch, packaging revision and suffixes are dropped, and the
numbers are compared as integers with missing parts counting as 0 (7.4 == 7.4.0 < 7.4.2).
Valkey versions are compared the same way, except that Valkey 7.2.x counts as 7.4: Valkey
forked from Redis 7.2.4 and HSI treats Valkey 7.2+ and 8.x as compatible with its Redis 7.4
requirement.

The policy (decided before anything changes on a host, from one fact):
- with `redis_minimum_version` set, a host whose server would be below it stops there;
- otherwise a server below HSI's recommended version is installed with a warning.
"""

from __future__ import annotations

import re

# HSI's documented requirement for Redis; Valkey's compatible line.
RECOMMENDED = {"redis": (7, 4), "valkey": (7, 2)}
# Valkey releases that count as a later Redis version when compared with a minimum.
VALKEY_EQUIVALENT = {(7, 2): (7, 4)}

_VERSION_RE = re.compile(r"^(?:\d+:)?(\d+(?:\.\d+){0,2})")
# A version setting, matched whole (`fullmatch`: `$` would pass "7.4\n").
SETTING_RE = re.compile(r"\d+(\.\d+){0,2}")


def parse(version: str) -> tuple[int, int, int] | None:
    """Release numbers of a package or server version, or None when it has none.

    >>> parse("5:7.0.15-1~deb12u3")
    (7, 0, 15)
    """
    match = _VERSION_RE.match((version or "").strip())
    if not match:
        return None
    numbers = [int(part) for part in match.group(1).split(".")]
    return tuple(numbers + [0] * (3 - len(numbers)))  # type: ignore[return-value]


def as_redis(flavour: str, version: tuple[int, int, int]) -> tuple[int, int, int]:
    """The Redis version `version` of `flavour` counts as (see the module docstring)."""
    if flavour == "valkey" and version[:2] in VALKEY_EQUIVALENT:
        return VALKEY_EQUIVALENT[version[:2]] + (0,)
    return version


def text(version: tuple[int, ...]) -> str:
    return ".".join(str(n) for n in version)


def below_minimum(flavour: str, version: tuple[int, int, int], minimum: str) -> bool:
    wanted = parse(minimum)
    return wanted is not None and as_redis(flavour, version) < wanted


def below_recommended(flavour: str, version: tuple[int, int, int]) -> bool:
    return version[:2] < RECOMMENDED[flavour]


def policy(flavour: str, version_text: str, minimum: str, origin: str) -> tuple[str | None, list[str]]:
    """(error or None, warnings) for installing `version_text` of `flavour`.

    `origin` says where the version was read (for the message), e.g. "installed" or
    "apt candidate".
    """
    version = parse(version_text)
    if version is None:
        if minimum:
            return (
                f"cannot tell which {flavour} version would be installed ({origin}: "
                f"{version_text or 'unknown'!r}), so redis_minimum_version {minimum} cannot be "
                "checked; nothing was changed on this host",
                [],
            )
        return None, [f"{flavour} version unknown before install ({origin})"]
    if minimum and below_minimum(flavour, version, minimum):
        return (
            f"{flavour} {version_text} ({origin}) is below redis_minimum_version {minimum}; "
            "nothing was changed on this host. Use redis_source=upstream (or auto), another "
            "flavour, or a newer distro release",
            [],
        )
    if below_recommended(flavour, version):
        wanted = text(RECOMMENDED[flavour])
        return None, [
            f"{flavour} {version_text} ({origin}) is below {wanted}, which HSI requires; "
            "set redis_minimum_version to refuse it, or redis_source=upstream"
        ]
    return None, []


# The newest RDB format each server line loads (it writes that one too; FACTS.md, verified: Redis 7.0.15
# writes 10, Valkey 8.1.1 11, Redis 8.0.2 12). A server refuses a newer dump ("Can't handle RDB format
# version"), so restore.py says so before anything changes. Lines not listed are left to the host's check
# tool, which is asked anyway.
RDB_READS = {
    ("redis", (5, 0)): 9, ("redis", (6, 0)): 9, ("redis", (6, 2)): 9, ("redis", (7, 0)): 10,
    ("redis", (7, 2)): 11, ("redis", (7, 4)): 12, ("redis", (8, 0)): 12,
    ("valkey", (7, 2)): 11, ("valkey", (8, 0)): 11, ("valkey", (8, 1)): 11,
}


def rdb_readable(flavour: str, version_text: str) -> int | None:
    """The newest RDB format version `flavour` `version_text` loads, or None when not known here.

    >>> rdb_readable("redis", "5:7.0.15-1~deb12u3")
    10
    """
    version = parse(version_text)
    return None if version is None else RDB_READS.get((flavour, version[:2]))
