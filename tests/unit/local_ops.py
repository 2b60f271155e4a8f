"""Run the backend `.env` and owned-file steps for real on this machine: the fact's command, the
plan the operation makes from it, and the commands it would send, each through the local `sh`
(the same POSIX tools as a host). As root, tests can give directories to `nobody` and see the
deploy act as that user."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from pyinfra.api import StringCommand

from operations import backend_env, safe_paths
from operations.facts import new_salt

NOBODY = 65534  # uid and gid of nobody/nogroup on Debian


@dataclass
class Outcome:
    commands: list[StringCommand]
    returncode: int  # of the last command sent (0 when none)
    stderr: str


def run_sh(command: StringCommand | str, env: dict | None = None) -> subprocess.CompletedProcess:
    text = command if isinstance(command, str) else command.get_raw_value()
    stdin = None
    if isinstance(command, StringCommand) and command.connector_arguments.get("_stdin") is not None:
        stdin = "".join(f"{line}\n" for line in command.connector_arguments["_stdin"])
    return subprocess.run(["sh", "-c", text], input=stdin, capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})


def env_fact(path, keys, owner: str | None = None, group: str | None = None, salt: str | None = None):
    salt = salt or new_salt()
    fact = backend_env.EnvFileKeys()
    result = run_sh(fact.command(path=str(path), keys=tuple(keys), salt=salt, owner=owner or "", group=group or ""))
    assert result.returncode == 0, result.stderr
    return fact.process(result.stdout.splitlines()), salt


def _send(commands: list[StringCommand], env: dict | None) -> Outcome:
    returncode, stderr = 0, ""
    for command in commands:
        result = run_sh(command, env)
        returncode, stderr = result.returncode, result.stderr
        if returncode:
            break
    return Outcome(commands, returncode, stderr)


def deploy_env(path, lines: dict[str, str], owner: str | None = None, group: str | None = None,
               env: dict | None = None) -> Outcome:
    """What `backend_env.env_keys` does on a host."""
    found, salt = env_fact(path, tuple(lines), owner, group)
    return _send(backend_env.env_commands(str(path), lines, found, salt, owner, group), env)


def deploy_files(directory, files: dict, owner: str | None = None, group: str | None = None,
                 dir_mode: int | None = 0o750, env: dict | None = None) -> Outcome:
    """What `safe_paths.owned_files` does on a host."""
    salt = new_salt()
    fact = safe_paths.OwnedFiles()
    result = run_sh(fact.command(directory=str(directory), names=tuple(files), salt=salt, owner=owner or "",
                                 group=group or ""))
    assert result.returncode == 0, result.stderr
    found = fact.process(result.stdout.splitlines())
    settings = ("redis_tls_backend_dir", "redis_backend_env_owner", "redis_backend_env_group")
    return _send(safe_paths.owned_files_commands(str(directory), files, found, salt, owner, group, dir_mode,
                                                 settings), env)


def listing(directory) -> dict[str, tuple[int, int, int]]:
    """{name: (uid, gid, mode)} of a directory's entries, links not followed."""
    result = {}
    for name in sorted(os.listdir(directory)):
        info = os.lstat(os.path.join(directory, name))
        result[name] = (info.st_uid, info.st_gid, info.st_mode & 0o7777)
    return result
