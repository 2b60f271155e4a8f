"""Calls to the host program (`operations/program/hsi-redis.sh`): the one place that builds them.

The program is sent with every call (`sh -c "<program>" hsi-redis VERB ...`), so a host never runs an
older copy and nothing has to be installed before the first read. Its text travels in argv (no secret
is ever in it) and prints as `<hsi-redis>` at -vv. Secrets and file contents travel on stdin, in a
bundle: one header line per entry and the content base64-encoded, never in argv, never printed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from pyinfra.api import StringCommand
from pyinfra.api.command import QuoteString
from pyinfra.api.hiddenvalue import HiddenValue

PROGRAM_NAME = "hsi-redis"
# Where an operator (and the backup timer) find the program on a host.
INSTALLED_PATH = "/usr/local/sbin/hsi-redis"
STATE_DIR = "/etc/hsi-redis"
# In the state directory: the SHA-256 of the password a rotation kept the old one for (root 0600; the
# program writes it when a consumer must be restarted by hand, and removes it with the old password).
NOTICE_NAME = "rotation-notice"


@functools.cache
def source() -> str:
    """The program as it is kept in the repository (package data)."""
    return resources.files(__name__).joinpath("hsi-redis.sh").read_text()


@functools.cache
def text() -> str:
    """The program as it is sent: comment lines and indentation dropped (a third of its size in argv;
    comments are whole lines and no string in it starts a line with blanks that matter)."""
    kept = (line.strip() for line in source().splitlines())
    return "\n".join(line for line in kept if line and not line.startswith("#")) + "\n"


@functools.cache
def sha256() -> str:
    return hashlib.sha256(text().encode()).hexdigest()


@functools.cache
def _hidden_text() -> HiddenValue:
    """The quoted text as every call carries it (quoted and hashed once per run, not once per call)."""
    return HiddenValue(shlex.quote(text()), masked_value=f"<{PROGRAM_NAME} {sha256()[:12]}>")


def _quoted(value: str | int) -> QuoteString:
    return QuoteString(str(value))


def options(**values) -> list:
    """`--name value` pairs (underscores become dashes); None and False are left out, True is the bare
    flag (`--kernel`), a list repeats the option."""
    bits: list = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            bits.append(flag)
        elif isinstance(value, (list, tuple)):
            for item in value:
                bits += [flag, _quoted(item)]
        else:
            bits += [flag, _quoted(value)]
    return bits


def command(verb: str, *bits, stdin: list[str] | None = None) -> StringCommand:
    """`sh -c <program> hsi-redis VERB BITS...`, the program hidden in printed output."""
    kwargs = {"_stdin": stdin} if stdin is not None else {}
    return StringCommand("sh", "-c", _hidden_text(), PROGRAM_NAME, verb, *bits, **kwargs)


# -- bundles ---------------------------------------------------------------------------------------

def _b64_lines(content: bytes) -> list[str]:
    encoded = base64.b64encode(content).decode()
    return [encoded[i:i + 76] for i in range(0, len(encoded), 76)]


@dataclass(frozen=True)
class FileEntry:
    """A whole file the program writes (atomically, owner and mode set before it appears)."""

    path: str
    content: bytes
    mode: int = 0o600
    user: str = "root"
    group: str = "root"
    flags: tuple[str, ...] = ()   # restart | after | unit | repo

    def lines(self) -> list[str]:
        flags = ",".join(self.flags) or "-"
        return [f"file {self.mode:o} {self.user} {self.group} {flags} {self.path}", *_b64_lines(self.content), "."]


@dataclass(frozen=True)
class MergeEntry:
    """Lines a dotenv file must hold (`KEY=value`), merged into the file on the host."""

    path: str
    lines_by_key: tuple[tuple[str, str], ...]
    user: str | None = None
    group: str | None = None
    flags: tuple[str, ...] = ("after",)

    def lines(self) -> list[str]:
        flags = ",".join(self.flags) or "-"
        payload = "".join(f"{line}\n" for _, line in self.lines_by_key).encode()
        return [f"merge {flags} {self.user or '-'} {self.group or '-'} {self.path}", *_b64_lines(payload), "."]


def bundle(entries: Iterable[FileEntry | MergeEntry], password: str | None = None) -> list[str]:
    """The stdin of install/apply/rotate: an optional new password first, then the entries, then `end`
    (so a bundle cut between two entries is refused whole). Nothing to send: empty stdin."""
    lines: list[str] = []
    if password is not None:
        lines.append("password " + base64.b64encode(password.encode()).decode())
    for entry in entries:
        lines += entry.lines()
    return [*lines, "end"] if lines else []
