"""The HSI backend's `.env`: set the keys this deploy owns, keep every other line as it was.

The merge runs on the host (POSIX awk, no Python there): the new lines travel base64-encoded
on stdin, lines assigning an owned key are replaced in place (later duplicates dropped, as
they would override the first), missing keys are appended, and every other line is copied
unchanged. Whether anything needs doing is decided from SHA-256 hashes of the owned lines
(`EnvFileKeys`), so the current values never leave the host and never print.
"""

from __future__ import annotations

import base64
import shlex

from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation

from .encoding import dotenv_line
from .facts import EnvFileKeys, new_salt, salted_sha256
from .settings import RedisSettings
from .tls import backend_ssl_lines, backend_url

# awk program: first file = wanted "KEY=..." lines, second = the current .env.
MERGE_AWK = r"""
NR == FNR { k = $0; sub(/=.*/, "", k); want[k] = $0; order[++n] = k; next }
{
    line = $0
    if (match(line, /^[ \t]*(export[ \t]+)?[A-Za-z_][A-Za-z0-9_.]*[ \t]*=/)) {
        k = substr(line, 1, RLENGTH)
        sub(/=$/, "", k); sub(/^[ \t]*(export[ \t]+)?/, "", k); sub(/[ \t]+$/, "", k)
        if (k in want) {
            if (!(k in done)) { print want[k]; done[k] = 1 }
            next
        }
    }
    print
}
END { for (i = 1; i <= n; i++) if (!(order[i] in done)) print want[order[i]] }
"""


def owned_lines(conf: RedisSettings) -> dict[str, str]:
    """The lines this deploy owns in the backend `.env`, keyed by variable name."""
    return {
        "REDIS_URL": dotenv_line("REDIS_URL", backend_url(conf), quote=False),
        "REDIS_PASSWORD": dotenv_line("REDIS_PASSWORD", conf.password.reveal()),
        **backend_ssl_lines(conf),  # TLS only
    }


def merge_command(path: str, lines: dict[str, str], user: str, group: str) -> StringCommand:
    quoted = shlex.quote(path)
    payload = base64.b64encode("".join(f"{line}\n" for line in lines.values()).encode()).decode()
    script = "; ".join((
        "set -e",
        f'dir=$(dirname {quoted}); [ -d "$dir" ] || install -d -m 0755 "$dir"',
        "umask 077",
        f"new=$(mktemp {shlex.quote(path + '.hsi-new-XXXXXX')})",
        f"out=$(mktemp {shlex.quote(path + '.hsi-out-XXXXXX')})",
        "trap 'rm -f \"$new\" \"$out\"' EXIT",
        'base64 -d > "$new"',
        f"if [ -f {quoted} ]; then cur={quoted}; else cur=/dev/null; fi",
        f'awk {shlex.quote(MERGE_AWK)} "$new" "$cur" > "$out"',
        f'chown {shlex.quote(f"{user}:{group}")} "$out"',
        'chmod 600 "$out"',
        f'mv -f "$out" {quoted}',
        'rm -f "$new"',
        "trap - EXIT",
    ))
    return StringCommand(script, _stdin=[payload[i:i + 76] for i in range(0, len(payload), 76)])



@operation()
def env_keys(path: str, lines: dict[str, str], user: str = "root", group: str = "root"):
    """
    Merge `KEY=value` lines into a dotenv file, leaving its other lines untouched (mode 0600).

    + path: the `.env` file
    + lines: ``{KEY: "KEY=encoded value"}`` for each owned key
    + user, group: owner of the file

    **Example:**

    .. code:: python

        env_keys(name="Set Redis keys", path="/opt/hsi/backend/.env",
                 lines={"REDIS_URL": "REDIS_URL=redis://localhost:6379/0"})
    """
    salt = new_salt()
    current = host.get_fact(EnvFileKeys, path=path, keys=tuple(lines), salt=salt)
    if current is None or any(current["keys"].get(key) != [salted_sha256(salt, line)] for key, line in lines.items()):
        yield merge_command(path, lines, user, group)
        return
    if (current["user"], current["group"]) != (user, group):
        yield StringCommand("chown", shlex.quote(f"{user}:{group}"), shlex.quote(path))
    if current["mode"] != 0o600:
        yield StringCommand("chmod", "600", shlex.quote(path))


@deploy("Write the backend's .env")
def write_backend_env(conf: RedisSettings):
    """Merge the Redis keys into the backend's `.env`; returns that operation (None: no `.env`)."""
    if conf.backend_env_path is None:
        return None
    return env_keys(
        name=f"Set REDIS_URL and REDIS_PASSWORD in {conf.backend_env_path}",
        path=conf.backend_env_path,
        lines=owned_lines(conf),
        user=conf.backend_env_owner,
        group=conf.backend_env_group,
    )
