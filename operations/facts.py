"""Custom facts. pyinfra 3 caches nothing, so each fact is one remote command: each of these
reads everything one step needs in a single trip. No fact prints a secret: files are
described by a salted SHA-256, and the server is asked with the password read on the host
from a root-only file (in the environment of redis-cli, never in its argv).

Why salted: pyinfra prints fact output at -vvv, and a plain SHA-256 of a file holding only a
password is exactly the `#<sha256>` form Redis ACLs use, open to offline guessing of a weak
password. Each check sends a fresh random salt and compares sha256(salt + content).
"""

from __future__ import annotations

import hashlib
import secrets
import shlex

from pyinfra.api import FactBase

from .tls_probe import probe_block

# Root-only directory for the deploy's own state on the host (password for its checks).
STATE_DIR = "/etc/hsi-redis"
CLI_AUTH_FILE = f"{STATE_DIR}/cli.auth"      # the admin identity's password (see operations/acl.py)
BACKEND_AUTH_FILE = f"{STATE_DIR}/backend.auth"  # the backend identity's, to check it logs in
ADMIN_USER = "hsi-admin"


def new_salt() -> str:
    """A fresh salt for one comparison (hex: safe to put in a command line)."""
    return secrets.token_hex(16)


def salted_sha256(salt: str, data: bytes | str) -> str:
    """What the facts below report for `data` hashed with `salt`."""
    return hashlib.sha256(salt.encode() + (data.encode() if isinstance(data, str) else data)).hexdigest()


def _key_values(output: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in output:
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


class HostIdentity(FactBase):
    """What the host is: os-release fields, container type, init system.

    Returns ``{"os_id", "version_id", "id_like", "container", "systemd"}``.
    """

    def command(self) -> str:
        return (
            ". /etc/os-release 2>/dev/null; "
            'echo "os_id=${ID:-unknown}"; echo "version_id=${VERSION_ID:-}"; echo "id_like=${ID_LIKE:-}"; '
            'echo "container=$(systemd-detect-virt --container 2>/dev/null || echo none)"; '
            'if [ -d /run/systemd/system ]; then echo systemd=yes; else echo systemd=no; fi'
        )

    def process(self, output):
        return _key_values(output)


class ManagedFile(FactBase):
    """A file's salted SHA-256 (see `salted_sha256`), mode and owner, or None when it does not exist.

    Returns ``{"sha256", "mode", "user", "group"}`` with mode as an int.
    """

    def command(self, path: str, salt: str = "") -> str:
        quoted = shlex.quote(path)
        return (
            f"if [ -f {quoted} ]; then stat -c 'meta=%a %U %G' {quoted} && "
            f"{{ printf '%s' {shlex.quote(salt)}; cat {quoted}; }} | sha256sum | cut -d' ' -f1 | sed 's/^/sha256=/'; fi"
        )

    def process(self, output):
        values = _key_values(output)
        if "meta" not in values:
            return None
        mode, user, group = values["meta"].split()
        return {"sha256": values.get("sha256", ""), "mode": int(mode, 8), "user": user, "group": group}


class EnvFileKeys(FactBase):
    """For a dotenv file: its metadata and, per owned key, the salted SHA-256 of each line assigning it.

    Returns None when the file is missing, else
    ``{"mode", "user", "group", "keys": {KEY: [salted sha256 of each assigning line]}}``.
    Lines are hashed without their line ending; values never leave the host.
    """

    def command(self, path: str, keys: tuple[str, ...], salt: str = "") -> str:
        quoted = shlex.quote(path)
        lines = [f"if [ -f {quoted} ]; then stat -c 'meta=%a %U %G' {quoted}"]
        for key in keys:
            pattern = shlex.quote(f"^[[:space:]]*(export[[:space:]]+)?{key}[[:space:]]*=")
            lines.append(
                f"grep -E {pattern} {quoted} | while IFS= read -r line; do "
                f"{{ printf '%s' {shlex.quote(salt)}; printf '%s' \"$line\" | tr -d '\\r'; }} "
                f"| sha256sum | cut -d' ' -f1 | sed 's/^/{key}=/'; done"
            )
        lines.append("fi; true")
        return "; ".join(lines)

    def process(self, output):
        meta = None
        keys: dict[str, list[str]] = {}
        for line in output:
            key, _, value = line.partition("=")
            if key == "meta":
                meta = value.split()
            else:
                keys.setdefault(key, []).append(value)
        if meta is None:
            return None
        return {"mode": int(meta[0], 8), "user": meta[1], "group": meta[2], "keys": keys}


# INFO fields the deploy and the verifier read.
INFO_FIELDS = (
    "redis_version", "valkey_version", "server_name", "uptime_in_seconds", "run_id", "process_id",
    "aof_enabled", "aof_rewrite_in_progress", "aof_rewrite_scheduled", "aof_last_bgrewrite_status",
    "aof_last_write_status", "loading", "rdb_bgsave_in_progress", "rdb_last_bgsave_status", "tcp_port",
    "maxmemory", "maxmemory_policy", "executable", "config_file",
)


def server_probe_script(cli: str, address: str, port: int, service: str, data_dir: str,
                        tls_port: int = 0, tls_ca: str = "", tls_cert: str = "", tls_key: str = "",
                        config_path: str = "") -> str:
    """Shell that reports a server's state as key=value lines (over TLS where it speaks TLS)."""
    fields = "|".join(INFO_FIELDS)
    return f"""
cli={shlex.quote(cli)}; addr={shlex.quote(address)}; port={int(port)}; auth={CLI_AUTH_FILE}
dir={shlex.quote(data_dir)}
[ -s "$dir/dump.rdb" ] && echo rdb=yes
{{ [ -d "$dir/appendonlydir" ] || [ -s "$dir/appendonly.aof" ]; }} && echo aof_files=yes
echo "service_active=$(systemctl is-active {shlex.quote(service)} 2>/dev/null)"
echo "service_enabled=$(systemctl is-enabled {shlex.quote(service)} 2>/dev/null)"
if ! command -v "$cli" >/dev/null 2>&1; then echo cli=missing; exit 0; fi
echo cli=present
ask() {{ timeout 5 "$cli" --no-auth-warning -h "$addr" -p "$port" "$@" 2>&1 | tr -d '\\r'; }}
{probe_block(tls_port, tls_ca, tls_cert, tls_key, config_path)}
echo "noauth_ping=$(ask ping | head -n 2 | tr '\\n' ' ')"
if [ -s "$auth" ]; then
  echo auth_file=present
  # The admin identity; a server still on a config from before it existed knows only `default`.
  as=--user; who={ADMIN_USER}
  pong=$(REDISCLI_AUTH="$(cat "$auth")" ask $as $who ping | head -n 2 | tr '\\n' ' ')
  case "$pong" in PONG*) ;; *) as=; who=
    legacy=$(REDISCLI_AUTH="$(cat "$auth")" ask ping | head -n 2 | tr '\\n' ' ')
    case "$legacy" in PONG*) pong=$legacy ;; *) as=--user; who={ADMIN_USER} ;; esac ;; esac
  echo "auth_ping=$pong"; echo "auth_user=${{who:-default}}"
  info=$(REDISCLI_AUTH="$(cat "$auth")" ask $as $who info)
else
  echo auth_file=missing
  info=$(ask info)
fi
printf '%s\\n' "$info" | grep -E '^({fields}|db[0-9]+):' | sed 's/:/=/'
true
""".strip()


class ServerState(FactBase):
    """The running server as a client on the host sees it.

    Returns a dict: ``service_active``, ``rdb``/``aof_files`` (yes when present in the data
    directory), ``cli`` (present/missing), ``noauth_ping`` and
    ``auth_ping`` (first reply lines), the INFO fields above, and ``keys`` (total over dbs).
    """

    def command(self, cli: str, address: str, port: int, service: str, data_dir: str,
                tls_port: int = 0, tls_ca: str = "", tls_cert: str = "", tls_key: str = "",
                config_path: str = "") -> str:
        return server_probe_script(cli, address, port, service, data_dir, tls_port, tls_ca, tls_cert, tls_key,
                                   config_path)

    def process(self, output):
        values = _key_values(output)
        total = 0
        for key, value in values.items():
            if key.startswith("db") and key[2:].isdigit():
                fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
                total += int(fields.get("keys", 0))
        values["keys"] = str(total)
        return values
