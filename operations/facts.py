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

from .tls_probe import REDIS_REPLY, probe_block

# Root-only directory for the deploy's own state on the host (password for its checks).
STATE_DIR = "/etc/hsi-redis"
CLI_AUTH_FILE = f"{STATE_DIR}/cli.auth"      # the admin identity's password (see operations/acl.py)
BACKEND_AUTH_FILE = f"{STATE_DIR}/backend.auth"  # the backend identity's, to check it logs in
LAST_GOOD_DIR = f"{STATE_DIR}/last-good"     # the config the server last served with (rollback.py)
# A restart the server still owes (operations/restart_pending.py): a copy of the config it had
# before the first file it reads changed, removed only by a verified restart.
RESTART_PENDING = f"{STATE_DIR}/restart-pending"
ADMIN_USER = "hsi-admin"


def last_good_copy(config_path: str) -> str:
    """Where the last good copy of the server's config file is kept."""
    return f"{LAST_GOOD_DIR}/{config_path.rsplit('/', 1)[1]}"


# Shell: `where CONFIG` sets wa, wp, wt, wd from a redis.conf: the address a client on the host
# reaches (first address of the last `bind`), the plain and TLS ports (Redis' defaults when
# absent; 0 = closed) and `dir` (empty when absent). Fails when the file is missing or empty.
WHERE_FUNCTION = r"""where() { [ -s "$1" ] || return 1
  w=$(awk 'function arg(s) { gsub(/"/, "", s); return s }
    { k = tolower($1) }
    k == "port" { p = arg($2) }
    k == "tls-port" { t = arg($2) }
    k == "bind" { b = arg($2) }
    k == "dir" { d = arg($2) }
    END { sub(/^-/, "", b)
      if (b == "" || b == "*" || b == "0.0.0.0") b = "127.0.0.1"; else if (b == "::" || b == "::*") b = "::1"
      print b "," (p == "" ? 6379 : p) "," (t == "" ? 0 : t) "," d }' "$1" 2>/dev/null) && [ -n "$w" ] || return 1
  wa=${w%%,*}; w=${w#*,}; wp=${w%%,*}; w=${w#*,}; wt=${w%%,*}; wd=${w#*,}; }"""


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

    Returns ``{"sha256", "mode", "user", "group"}`` with mode as an int. A symbolic link is not
    followed (its target is not hashed): it reads as ``{"link": True}`` with an empty hash and
    mode -1, so writing replaces the link itself. Files the backend's user may control go
    through `operations/safe_paths.py` instead.
    """

    def command(self, path: str, salt: str = "") -> str:
        quoted = shlex.quote(path)
        return (
            f"if [ -L {quoted} ]; then echo link=yes; elif [ -f {quoted} ]; then stat -c 'meta=%a %U %G' {quoted} && "
            f"{{ printf '%s' {shlex.quote(salt)}; cat {quoted}; }} | sha256sum | cut -d' ' -f1 | sed 's/^/sha256=/'; fi"
        )

    def process(self, output):
        values = _key_values(output)
        if "link" in values:
            return {"sha256": "", "mode": -1, "user": "", "group": "", "link": True}
        if "meta" not in values:
            return None
        mode, user, group = values["meta"].split()
        return {"sha256": values.get("sha256", ""), "mode": int(mode, 8), "user": user, "group": group}


# INFO fields the deploy and the verifier read.
INFO_FIELDS = (
    "redis_version", "valkey_version", "server_name", "uptime_in_seconds", "run_id", "process_id",
    "aof_enabled", "aof_rewrite_in_progress", "aof_rewrite_scheduled", "aof_last_bgrewrite_status",
    "aof_last_write_status", "loading", "rdb_bgsave_in_progress", "rdb_last_bgsave_status", "tcp_port",
    "maxmemory", "maxmemory_policy", "executable", "config_file",
)


def _listen_block(tls_port: int, config_path: str, listen_from: tuple[str, ...]) -> str:
    """Shell: the candidates `plain_try`/`tls_try` ("ADDR,PORT" words) and where to ask by default.

    Without `listen_from`: the settings (`$addr`, `$port`, `tls_port`), and for TLS also the port
    the config on disk names (a server still on an older TLS config). With it: the running
    server, where the first of those config files that exists says it listens (also the default
    `addr`, `port` and data `dir`), then the others, then the settings.
    """
    if not listen_from:
        live = f'where {shlex.quote(config_path)} && tls_try="$tls_try $addr,$wt"' if config_path else ""
        return f'plain_try="$addr,$port"; tls_try="$addr,{int(tls_port)}"\n{live}'.rstrip()
    files = " ".join(shlex.quote(f) for f in listen_from)
    return f"""last_plain="$addr,$port"; last_tls="$addr,{int(tls_port)}"; plain_try=""; tls_try=""; first=yes
for f in {files}; do
  where "$f" || continue
  if [ "$first" = yes ]; then first=no; addr=$wa; port=$wp; case "$wd" in /*) dir=$wd;; esac; fi
  plain_try="$plain_try $wa,$wp"; tls_try="$tls_try $wa,$wt"
done
plain_try="$plain_try $last_plain"; tls_try="$tls_try $last_tls\""""


def server_probe_script(cli: str, address: str, port: int, service: str, data_dir: str,
                        tls_port: int = 0, tls_ca: str = "", tls_cert: str = "", tls_key: str = "",
                        config_path: str = "", listen_from: tuple[str, ...] = ()) -> str:
    """Shell that reports a server's state as key=value lines (over TLS where it speaks TLS).

    `listen_from`: config files saying where the running server listens (see `_listen_block`);
    the questions asked before its config changes go there, not to the settings' new address.
    """
    fields = "|".join(INFO_FIELDS)
    return f"""
cli={shlex.quote(cli)}; addr={shlex.quote(address)}; port={int(port)}; auth={CLI_AUTH_FILE}
dir={shlex.quote(data_dir)}
{WHERE_FUNCTION}
{_listen_block(tls_port, config_path, listen_from)}
[ -e {RESTART_PENDING} ] && echo restart_pending=yes
[ -s "$dir/dump.rdb" ] && echo rdb=yes
if [ -d "$dir/appendonlydir" ] || [ -s "$dir/appendonly.aof" ]; then
  echo aof_files=yes
  # No AOF file newer than dump.rdb: the AOF was off for a while, or a dump was restored by
  # hand (or the server stopped cleanly, saving both): dump.rdb holds at least what it holds.
  [ -s "$dir/dump.rdb" ] && [ -z "$(find "$dir/appendonlydir" "$dir/appendonly.aof" -newer "$dir/dump.rdb" \
    2>/dev/null | head -n 1)" ] && echo aof_stale=yes
fi
echo "service_active=$(systemctl is-active {shlex.quote(service)} 2>/dev/null)"
echo "service_enabled=$(systemctl is-enabled {shlex.quote(service)} 2>/dev/null)"
if ! command -v "$cli" >/dev/null 2>&1; then echo cli=missing; exit 0; fi
echo cli=present
ask() {{ timeout 5 "$cli" --no-auth-warning -h "$addr" -p "$port" "$@" 2>&1 | tr -d '\\r'; }}
{probe_block(tls_ca, tls_cert, tls_key)}
if [ "$via" != tls ]; then
  for c in $plain_try; do
    a=${{c%,*}}; p=${{c##*,}}; [ "$p" -gt 0 ] 2>/dev/null || continue
    case "$(addr=$a; port=$p; ask ping | head -n 1)" in {REDIS_REPLY}) addr=$a; port=$p; break ;; esac
  done
fi
echo "addr=$addr"; echo "port=$port"
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
    directory), ``aof_stale`` (yes when no AOF file is newer than dump.rdb), ``restart_pending``
    (yes when restart_pending.py's marker exists), ``cli`` (present/missing), ``addr``/``port``
    (where it asked), ``noauth_ping`` and ``auth_ping`` (first reply lines), the INFO fields
    above, and ``keys`` (total over dbs).
    """

    def command(self, cli: str, address: str, port: int, service: str, data_dir: str,
                tls_port: int = 0, tls_ca: str = "", tls_cert: str = "", tls_key: str = "",
                config_path: str = "", listen_from: tuple[str, ...] = ()) -> str:
        return server_probe_script(cli, address, port, service, data_dir, tls_port, tls_ca, tls_cert, tls_key,
                                   config_path, listen_from)

    def process(self, output):
        values = _key_values(output)
        total = 0
        for key, value in values.items():
            if key.startswith("db") and key[2:].isdigit():
                fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
                total += int(fields.get("keys", 0))
        values["keys"] = str(total)
        return values
