"""Secrets on the control machine: a value wrapper that never prints, password rules,
and the store of generated passwords.

Generated passwords are 32 random bytes in base64 (what `openssl rand -base64 32`
prints), created once per host in `<store>/<host>/<name>` (directory 0700, file 0600) and
reused on every later run, the way Ansible's password lookup works. The store is
`.secrets/` in the working directory (where pyinfra runs) unless `HSI_REDIS_SECRETS_DIR` names another
directory: never inside the installed package.
"""

from __future__ import annotations

import base64
import os
import re
import secrets as _random
import unicodedata
from pathlib import Path


class Secret:
    """A secret string that prints as asterisks: repr, str, f-strings and logs never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "********"

    def to_json(self) -> str:
        """What `pyinfra INVENTORY debug-inventory` (and any JSON dump of host data) shows."""
        return "********"

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and _random.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def password_problem(value: str) -> str | None:
    """Why `value` cannot be a password, or None. Any printable character is fine."""
    if value == "":
        return "is empty"
    for char in value:
        if char in "\n\r":
            return "contains a newline"
        if char == "\x00":
            return "contains a NUL byte"
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            return f"contains the control or unprintable character U+{ord(char):04X}"
    return None


def store_dir() -> Path:
    return Path(os.environ.get("HSI_REDIS_SECRETS_DIR") or Path.cwd() / ".secrets")


def _safe_name(host_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", host_name).lstrip(".") or "_"


def _ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def new_password() -> str:
    return base64.b64encode(_random.token_bytes(32)).decode()


def secret_path(host_name: str, name: str = "redis_password") -> Path:
    """Where the generated secret `name` of `host_name` is kept on the control machine."""
    return store_dir() / _safe_name(host_name) / name


def generated_password(host_name: str, name: str = "redis_password") -> Secret:
    """The stored generated secret `name` of `host_name`, created on first use."""
    path = secret_path(host_name, name)
    _ensure_private_dir(path.parent.parent)
    _ensure_private_dir(path.parent)
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: read theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(new_password() + "\n")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        os.chmod(path, 0o600)
    value = path.read_text().rstrip("\n")
    if not value:
        raise RuntimeError(f"{path} is empty: remove it to generate a new password")
    return Secret(value)


# Password rotation (rotate.py): the next generated password waits beside the current one
# until every step on the host is done, so an interrupted rotation resumes with the same value.
PENDING_SUFFIX = ".next"


def pending_password(host_name: str, name: str = "redis_password") -> Secret:
    """The generated password a rotation moves `host_name` to, created on first use."""
    generated_password(host_name, name)  # the store directories exist, as does the current value
    return generated_password(host_name, name + PENDING_SUFFIX)


def promote_pending(host_name: str, name: str = "redis_password") -> None:
    """After a rotation: the pending password becomes the current one (atomic rename)."""
    path = secret_path(host_name, name)
    pending = path.with_name(path.name + PENDING_SUFFIX)
    if pending.exists():
        os.replace(pending, path)
