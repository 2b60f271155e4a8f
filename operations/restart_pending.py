"""A restart the server still owes, recorded on the host until a verified restart clears it.

Without it, a run stopped after writing the files the server reads and before restarting it
would leave the server on its old config (or certificate) for good: the next run finds every
file as it wants it and sees nothing to do. So, before such a file changes, the same operation
records `/etc/hsi-redis/restart-pending` (root 0600); the restart runs when a file changed in
this run or the marker exists; only the safe-restart script removes it, once the server answers
PING with the new credential and kept its keys (rollback.py).

The marker holds a copy of the config the server had before the first pending change (what it
was started with; empty when there was none), so a later run still finds the running server,
and its data directory, where they are.
"""

from __future__ import annotations

import shlex

from pyinfra.api import StringCommand, operation

from .facts import RESTART_PENDING
from .managed_files import managed_file


def mark_script(config_path: str, marker: str = RESTART_PENDING) -> str:
    """Shell: record a pending restart, unless one is pending already (the first keeps the older config)."""
    cfg, tmp = shlex.quote(config_path), shlex.quote(marker + ".tmp")
    directory, marker = shlex.quote(marker.rsplit("/", 1)[0]), shlex.quote(marker)
    return (
        f"umask 077; mkdir -p {directory}; [ -e {marker} ] || "
        f"{{ if [ -f {cfg} ]; then cp {cfg} {tmp}; else : > {tmp}; fi && chmod 600 {tmp} "
        f"&& mv -f {tmp} {marker}; }}"
    )


@operation()
def server_file(path: str, content: bytes | str, config_path: str, user: str = "root", group: str = "root",
                mode: int = 0o600):
    """
    `managed_file` for a file the server reads: any change first records a pending restart.

    + path: absolute path on the host
    + content: the whole file (str is written as UTF-8)
    + config_path: the server's redis.conf (copied into the marker before anything changes)
    + user, group: owner of the file
    + mode: permission bits, e.g. ``0o640``

    **Example:**

    .. code:: python

        server_file(name="Write redis.conf", path=plat.config_path, content=rendered,
                    config_path=plat.config_path, group=plat.group, mode=0o640)
    """
    commands = list(managed_file._inner(path=path, content=content, user=user, group=group, mode=mode))
    if commands:
        yield StringCommand(mark_script(config_path))
        yield from commands


class RestartNeeded:
    """Whether the server must restart for what configure wrote: redis.conf changed in this run
    (`op`), or the marker says an earlier run changed a file and stopped before its restart
    (seen by `persistence.secure_data`'s probe, the fact it reads anyway). Used like an
    operation with `any_changed`."""

    def __init__(self) -> None:
        self.op = None
        self.pending = False

    def note(self, server: dict) -> None:
        self.pending = server.get("restart_pending") == "yes"

    def did_change(self) -> bool:
        return self.pending or (self.op is not None and self.op.did_change())
