"""Write whole files without ever exposing their content.

pyinfra's files.put/template print file content with --diff and, over SSH with sudo, stage
uploads in /tmp before setting their mode. `managed_file` instead sends the content as
base64 on the command's stdin (never in argv, never printed), decodes it into a 0600
temporary file beside the target, sets owner and mode, then renames it into place: the
target is replaced atomically and is never readable by others, even for a moment.
"""

from __future__ import annotations

import base64
import shlex

from pyinfra import host
from pyinfra.api import StringCommand, operation

from .facts import ManagedFile, new_salt, salted_sha256


def _stdin_lines(content: bytes) -> list[str]:
    encoded = base64.b64encode(content).decode()
    return [encoded[i:i + 76] for i in range(0, len(encoded), 76)] or [""]


def write_file_command(path: str, content: bytes, user: str, group: str, mode: int) -> StringCommand:
    quoted = shlex.quote(path)
    script = (
        "set -e; umask 077; "
        f"mkdir -p \"$(dirname {quoted})\"; "
        f"tmp=$(mktemp {shlex.quote(path + '.hsi-XXXXXX')}); "
        "trap 'rm -f \"$tmp\"' EXIT; "
        "base64 -d > \"$tmp\"; "
        f"chown {shlex.quote(f'{user}:{group}')} \"$tmp\"; chmod {mode:o} \"$tmp\"; "
        f"mv -f \"$tmp\" {quoted}; trap - EXIT"
    )
    return StringCommand(script, _stdin=_stdin_lines(content))


@operation()
def managed_file(path: str, content: bytes | str, user: str = "root", group: str = "root", mode: int = 0o600):
    """
    Ensure a file has exactly this content, owner and mode, without revealing the content.

    + path: absolute path on the host
    + content: the whole file (str is written as UTF-8)
    + user, group: owner of the file
    + mode: permission bits, e.g. ``0o640``

    **Example:**

    .. code:: python

        managed_file(
            name="Write redis.conf",
            path="/etc/redis/redis.conf",
            content=rendered,
            user="root", group="redis", mode=0o640,
        )
    """
    data = content.encode() if isinstance(content, str) else content
    salt = new_salt()
    current = host.get_fact(ManagedFile, path=path, salt=salt)
    if current is None or current["sha256"] != salted_sha256(salt, data):
        yield write_file_command(path, data, user, group, mode)
        return
    if (current["user"], current["group"]) != (user, group):
        yield StringCommand("chown", shlex.quote(f"{user}:{group}"), shlex.quote(path))
    if current["mode"] != mode:
        yield StringCommand("chmod", f"{mode:o}", shlex.quote(path))
