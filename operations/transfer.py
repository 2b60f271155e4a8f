"""Data files to and from a host as a stream through one command's stdin or stdout.

pyinfra's own transfers do not fit backups (pyinfra 3.10): the @docker connector's `get_file`/`put_file`
read the whole file into memory (through a temporary file and `docker cp`); over @ssh with sudo,
`get_file` copies the file into the remote /tmp and makes the copy readable by everyone (`chmod +r`)
while it downloads, and `put_file` lands the upload in /tmp first, with the SFTP server's umask, before
sudo copies it. A Redis dataset must never be readable by other users of the host.

So the bytes travel through the stdin or stdout of a command (`cat`) that runs exactly as pyinfra runs
any command for the host (`make_unix_command_for_host`: sudo and its password, su, doas), over the
connector's own channel: `docker exec -i` for @docker/@podman, an SSH session channel for @ssh, a local
process for @local. On the host the file only ever exists in root-only directories; here it is read and
written in chunks (never whole in memory), hashed on the way, and a long copy logs its progress.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from typing import BinaryIO

from pyinfra import logger
from pyinfra.api import QuoteString, StringCommand
from pyinfra.connectors.docker import DockerConnector
from pyinfra.connectors.local import LocalConnector
from pyinfra.connectors.ssh import SSHConnector
from pyinfra.connectors.util import extract_control_arguments, make_unix_command_for_host

CHUNK = 1 << 20
PROGRESS_SECONDS = 5.0      # a copy still running after this long says how far it is, this often
STALL_SECONDS = 300         # no byte for this long: the copy is given up


class TransferError(Exception):
    """A copy that did not complete; the message says why (never a secret: commands hold none)."""


class _Stream:
    """One command on the host with its stdin and stdout as byte streams."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def read(self, size: int) -> bytes:
        raise NotImplementedError

    def close_input(self) -> None:
        raise NotImplementedError

    def finish(self) -> tuple[int, str]:
        """Exit status and stderr once the command ended."""
        raise NotImplementedError


class _Process(_Stream):
    def __init__(self, argv: list[str]):
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, data: bytes) -> None:
        self.process.stdin.write(data)

    def read(self, size: int) -> bytes:
        return self.process.stdout.read(size)  # (gevent's pipe under the pyinfra CLI: cooperative)

    def close_input(self) -> None:
        self.process.stdin.close()

    def finish(self) -> tuple[int, str]:
        stderr = self.process.stderr.read().decode(errors="replace")
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                pipe.close()
            except BrokenPipeError:  # unsent data in the buffer of a command that ended early
                pass
        return self.process.wait(timeout=STALL_SECONDS), stderr


class _Channel(_Stream):
    def __init__(self, connector: SSHConnector, command: str):
        transport = connector.client.get_transport()
        self.channel = transport.open_session()
        self.channel.settimeout(STALL_SECONDS)
        self.channel.exec_command(command)

    def write(self, data: bytes) -> None:
        self.channel.sendall(data)

    def read(self, size: int) -> bytes:
        return self.channel.recv(size)

    def close_input(self) -> None:
        self.channel.shutdown_write()

    def finish(self) -> tuple[int, str]:
        stderr = b""
        while chunk := self.channel.recv_stderr(CHUNK):
            stderr += chunk
        code = self.channel.recv_exit_status()
        self.channel.close()
        return code, stderr.decode(errors="replace")


def _open(state, host, command: StringCommand, arguments: dict) -> _Stream:
    arguments = dict(arguments)
    extract_control_arguments(arguments)
    text = make_unix_command_for_host(state, host, command, **arguments).get_raw_value()
    connector = host.connector
    if isinstance(connector, DockerConnector):  # @podman too
        return _Process([connector.docker_cmd, "exec", "-i", connector.container_id, "sh", "-c", text])
    if isinstance(connector, LocalConnector):
        return _Process(["sh", "-c", text])
    if isinstance(connector, SSHConnector):
        return _Channel(connector, text)
    raise TransferError(f"the {type(connector).__name__} cannot stream files (use @ssh, @docker, @podman or @local)")


class _Progress:
    def __init__(self, host, what: str, total: int | None):
        self.host, self.what, self.total = host, what, total
        self.started = self.said = time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.said < PROGRESS_SECONDS:
            return
        self.said = now
        rate = done / max(now - self.started, 1e-6) / (1 << 20)
        of = f" of {self.total / (1 << 20):.1f} MiB ({done * 100 // self.total}%)" if self.total else " MiB"
        logger.info(f"{self.host.print_prefix}{self.what}: {done / (1 << 20):.1f}{of}, {rate:.1f} MiB/s")


def _finish(stream: _Stream, what: str) -> None:
    code, stderr = stream.finish()
    if code != 0:
        reason = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {code}"
        raise TransferError(f"{what} failed on the host: {reason}")


def download(state, host, remote_path: str, local: BinaryIO, arguments: dict, size: int | None = None,
             what: str = "download") -> tuple[str, int]:
    """Copy `remote_path` into the open file `local`: (sha256 hex, bytes). Raises TransferError."""
    stream = _open(state, host, StringCommand("cat", "--", QuoteString(remote_path)), arguments)
    digest, done, progress = hashlib.sha256(), 0, _Progress(host, what, size)
    try:
        stream.close_input()
        while chunk := stream.read(CHUNK):
            local.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            progress(done)
    except OSError as exc:  # a socket timeout is one
        raise TransferError(f"{what} stopped after {done} bytes: {exc}") from exc
    _finish(stream, what)
    return digest.hexdigest(), done


def upload(state, host, local: BinaryIO, remote_path: str, arguments: dict, size: int | None = None,
           what: str = "upload", mkdir: bool = False) -> tuple[str, int]:
    """Copy the open file `local` to `remote_path` (created 0600; `mkdir`: its directory first, 0700):
    (sha256 hex, bytes). Raises TransferError."""
    script = 'umask 077; [ "$2" = 0 ] || mkdir -p -- "${1%/*}"; cat > "$1"'
    command = StringCommand("sh", "-c", QuoteString(script), "hsi-redis-upload", QuoteString(remote_path),
                            "1" if mkdir else "0")
    stream = _open(state, host, command, arguments)
    digest, done, progress = hashlib.sha256(), 0, _Progress(host, what, size)
    try:
        while chunk := local.read(CHUNK):
            stream.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            progress(done)
        stream.close_input()
    except BrokenPipeError as exc:  # the host's side ended early: its own error says why
        _finish(stream, what)
        raise TransferError(f"{what} stopped after {done} bytes: {exc}") from exc
    except OSError as exc:
        raise TransferError(f"{what} stopped after {done} bytes: {exc}") from exc
    _finish(stream, what)
    return digest.hexdigest(), done


def run(state, host, command: StringCommand, arguments: dict) -> tuple[bool, list[str], list[str]]:
    """Run a command the usual way (pyinfra's connector): (ok, stdout lines, stderr lines)."""
    arguments = dict(arguments)
    extract_control_arguments(arguments)
    ok, output = host.run_shell_command(command, print_output=state.print_output, print_input=state.print_input,
                                        **arguments)
    return ok, list(output.stdout_lines), list(output.stderr_lines)

