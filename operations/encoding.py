"""Exact encodings for values written into redis.conf and dotenv files.

redis.conf: a double-quoted argument in which every byte outside ``[A-Za-z0-9._~-]`` is
written as ``\\xHH``. Redis' own argument splitter decodes that back to the same bytes, so
spaces, quotes, ``#`` and non-ASCII survive, and nothing can end the argument early.

dotenv (python-dotenv, which the HSI backend reads): single quotes, with ``\\`` and ``'``
backslash-escaped. python-dotenv 1.x expands ``${NAME}`` even inside single quotes, so a
value containing ``${`` is written double-quoted instead, each such ``$`` as ``${:-$}``
(an empty name is never set, so it always takes its default, a literal ``$``).

No URL ever holds a password (the backend reads REDIS_PASSWORD; the exporter its environment file).
"""

from __future__ import annotations

import re

_REDIS_SAFE = re.compile(rb"[A-Za-z0-9._~-]")


def redis_conf_quote(value: str) -> str:
    """Encode `value` as one redis.conf argument."""
    out = []
    for byte in value.encode("utf-8"):
        char = bytes([byte])
        out.append(char.decode() if _REDIS_SAFE.match(char) else f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


def dotenv_quote(value: str) -> str:
    """Encode `value` so python-dotenv (interpolation on or off for ${-free values) reads it back."""
    if "${" not in value:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("${", "${:-$}{") + '"'


def dotenv_line(key: str, value: str, quote: bool = True) -> str:
    """One `KEY=value` line; unquoted only for values made of URL-safe characters."""
    if not quote and re.fullmatch(r"[A-Za-z0-9_./:@?&=%+,~-]*", value):
        return f"{key}={value}"
    return f"{key}={dotenv_quote(value)}"


# systemd's EnvironmentFile parser unescapes exactly these after a backslash inside "...".
_SYSTEMD_ESCAPE = '"\\`$'


def systemd_quote(value: str) -> str:
    """Quote `value` for a systemd EnvironmentFile so it reads back unchanged."""
    if value and all(c.isalnum() or c in "._-/:+=@,%[]" for c in value):
        return value
    return '"' + "".join(f"\\{c}" if c in _SYSTEMD_ESCAPE else c for c in value) + '"'
