"""The HSI backend's `.env`: set the keys this deploy owns, keep every other line as it was.

The merge runs on the host (POSIX awk, no Python there): the new lines travel base64-encoded
on stdin, lines assigning an owned key are replaced in place (later duplicates dropped, as
they would override the first), missing keys are appended, and every other line is copied
unchanged. Whether anything needs doing is decided from SHA-256 hashes of the owned lines
(`EnvFileKeys`), so the current values never leave the host and never print.

Where the file lives, and who may write it, follows `operations/safe_paths.py`: root works by
path only where every directory on the way is root's; in a directory the backend's user
controls, the whole read-merge-write runs as that user; a `.env` that is a symbolic link is
refused. Ownership: an existing file keeps its owner and group (unless a setting says
otherwise) and only ever loses permission bits (others' and execute bits are dropped); a new
file belongs to whoever writes it (root, or the user controlling the directory), mode 0600
(0640 when `redis_backend_env_group` is set). Line endings: a replaced line keeps its own
(CRLF stays CRLF), appended lines take the file's last line's.

The merge refuses (host fails, file unchanged) a file where it and python-dotenv, the
backend's reader, could disagree on an owned key: a quoted key (`'REDIS_URL'=...`), an owned
value opening a quote it does not close on its line (multi-line values), an owned key's line
inside another key's multi-line value, a key only one of them recognises, a bare carriage
return. The message names the line number, never the value.
"""

from __future__ import annotations

import base64
import shlex

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, deploy, operation

from . import safe_paths
from .encoding import dotenv_line
from .facts import new_salt, salted_sha256
from .settings import RedisSettings
from .shell import fail_command
from .tls import backend_ssl_lines, backend_url

PATH_SETTING = "redis_backend_env_path"

# awk functions: how python-dotenv (its parser in dotenv/parser.py) and the merge read one line.
# `scan(line, n)` sets BAD to the reason line n makes an owned key ambiguous; `owned` holds the keys.
SCAN_AWK = r"""
function merge_key(line,    k) {
    if (!match(line, /^[ \t]*(export[ \t]+)?[A-Za-z_][A-Za-z0-9_.]*[ \t]*=/)) return ""
    k = substr(line, 1, RLENGTH)
    sub(/=$/, "", k); sub(/^[ \t]*(export[ \t]+)?/, "", k); sub(/[ \t]+$/, "", k)
    return k
}
function closes(s, q,    i, c) {
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "\\") i++
        else if (c == q) return i
    }
    return 0
}
function dotenv_key(s,    q, v) {
    KEY = ""; QKEY = 0; BARE = 0
    sub(/^[[:space:]]+/, "", s)
    if (s ~ /^export[ \t]/) sub(/^export[ \t]+/, "", s)
    q = substr(s, 1, 1)
    if ((q == "'" && match(s, /^'[^']+'/)) || (q == "\"" && match(s, /^"[^"]+"/))) {
        KEY = substr(s, 2, RLENGTH - 2); QKEY = 1
    } else if (match(s, /^[^=#[:space:]]+/)) KEY = substr(s, 1, RLENGTH)
    else return ""
    s = substr(s, RLENGTH + 1)
    if (!match(s, /^[ \t\f\v]*=[ \t\f\v]*/)) { BARE = 1; return "" }
    v = substr(s, RLENGTH + 1)
    q = substr(v, 1, 1)
    if (q != "'" && q != "\"") return ""
    return closes(substr(v, 2), q) ? "" : q
}
function scan(line, n,    mk, dk, q) {
    sub(/\r$/, "", line)
    if (index(line, "\r")) { BAD = "a carriage return inside the line (python-dotenv starts a new line there)"; return }
    mk = merge_key(line)
    if (OPEN != "") {
        if (mk in owned) { BAD = mk " is assigned inside the multi-line quoted value opened on line " OPENED; return }
        if (closes(line, OPEN)) OPEN = ""
        return
    }
    q = dotenv_key(line)
    if (QKEY && (KEY in owned)) { BAD = "the key " KEY " is quoted"; return }
    if (BARE) { if (KEY in owned) BAD = KEY " without = (python-dotenv reads it as unset)"; return }
    dk = (!QKEY && (KEY in owned)) ? KEY : ""
    if (mk != dk && (dk != "" || (mk in owned))) { BAD = "an assignment of " mk dk " the merge cannot rewrite"; return }
    if (q != "" && dk != "") { BAD = "the quoted value of " dk " does not end on this line"; return }
    if (q != "") { OPEN = q; OPENED = n }
}
function finish() {
    if (BAD == "" && OPEN != "") { BAD = "a quoted value opens here and never ends"; BADLINE = OPENED }
}
"""

# The merge: first input = wanted "KEY=..." lines (stdin), second = the current .env.
MERGE_AWK = SCAN_AWK + r"""
function refuse() {
    printf "hsi-redis: %s line %d: %s; python-dotenv may read another value than the merge writes: fix that line (%s)\n", FILENAME, BADLINE, BAD, setting > "/dev/stderr"
    exit 3
}
NR == FNR { k = $0; sub(/=.*/, "", k); want[k] = $0; order[++n] = k; owned[k] = 1; next }
{
    scan($0, FNR)
    if (BAD != "") { BADLINE = FNR; refuse() }
    cr = (substr($0, length($0), 1) == "\r") ? "\r" : ""
    last = cr
    k = merge_key($0)
    if (k in want) {
        if (!(k in done)) { print want[k] cr; done[k] = 1 }
        next
    }
    print
}
END {
    if (BAD != "") exit 3
    finish()
    if (BAD != "") refuse()
    for (i = 1; i <= n; i++) if (!(order[i] in done)) print want[order[i]] last
}
"""

# The fact's scan: prints "ambiguous=LINE reason" for the first ambiguous line.
FIND_AMBIGUOUS_AWK = SCAN_AWK + r"""
BEGIN { split(keys, list, " "); for (i in list) owned[list[i]] = 1 }
{ scan($0, NR); if (BAD != "") { print "ambiguous=" NR " " BAD; exit } }
END { finish(); if (BAD != "" && BADLINE) print "ambiguous=" BADLINE " " BAD }
"""

# Run as whoever may write the file: read-only, prints hashes and any ambiguity.
_READ_SH = r"""
f=$1 salt=$2; shift 2
[ -r "$f" ] || { echo unreadable=yes; exit 0; }
awk -v keys="$*" "$hsi_find" "$f"
for key; do
  grep -E "^[[:space:]]*(export[[:space:]]+)?${key}[[:space:]]*=" "$f" | while IFS= read -r line; do
    { printf '%s' "$salt"; printf '%s' "$line" | tr -d '\r'; } | sha256sum | sed "s/ .*//; s/^/$key=/"
  done
done
true
"""

# Run as whoever may write the file: $1 directory, $2 name, $3 chown spec, $4 mode, $5 setting.
_MERGE_SH = r"""
set -e; umask 077
d=$1 f=$1/$2 spec=$3 mode=$4
[ -d "$d" ] || (umask 022; mkdir -p -- "$d")
[ ! -L "$f" ] || { echo "hsi-redis: $f is a symbolic link: the deploy does not follow links there ($5)" >&2; exit 1; }
want=$(base64 -d)
out=$(mktemp "$f.hsi-XXXXXX")
trap 'rm -f "$out"' EXIT
if [ -f "$f" ]; then cur=$f; else cur=/dev/null; fi
printf '%s\n' "$want" | awk -v setting="$5" "$hsi_merge" - "$cur" > "$out"
if [ -n "$spec" ] && ! chown -- "$spec" "$out"; then
  echo "hsi-redis: cannot give $f the owner/group $spec (redis_backend_env_owner, redis_backend_env_group)" >&2
  exit 1
fi
chmod "$mode" "$out"
mv -f -- "$out" "$f"
trap - EXIT
"""


class EnvFileKeys(FactBase):
    """For a dotenv file: where it is (its directory chain, see `safe_paths`), its metadata and, per
    owned key, the salted SHA-256 of each line assigning it, read as the user who would write it.

    Returns `safe_paths.parse_report`'s dict plus ``file`` (``None``, ``"link"``, ``"other"`` or
    ``{"mode", "uid", "gid", "user", "group"}``), ``keys`` ({KEY: [salted sha256 of each
    assigning line]}), ``ambiguous`` ("LINE reason") and ``unreadable``. Lines are hashed without
    their line ending; values never leave the host.
    """

    def command(self, path: str, keys: tuple[str, ...], salt: str = "", owner: str = "",
                group: str = "") -> str:
        directory, name = safe_paths.split(path)
        target = f'"$hsi_real"/{shlex.quote(name)}'
        read = f"hsi_find={shlex.quote(FIND_AMBIGUOUS_AWK)}\n{_READ_SH}"
        args = " ".join(shlex.quote(a) for a in (salt, *keys))
        # Read as the user who would write it (see safe_paths), never through a link.
        hashes = (f"if [ -f {target} ] && [ ! -L {target} ]; then "
                  f"$hsi_as sh -c {shlex.quote(read)} hsi-redis {target} {args} || echo unreadable=yes; fi")
        return "\n".join((safe_paths.report_script(directory, owner, group), safe_paths._meta("file", target),
                          hashes, "true"))

    def process(self, output):
        found = safe_paths.parse_report(output)
        found.update(file=None, ambiguous=None, unreadable=False)
        keys: dict[str, list[str]] = {}
        for line in found.pop("other_lines"):
            key, _, value = line.partition("=")
            if key == "file":
                found["file"] = value if value in ("link", "other") else safe_paths._ids(value)
            elif key == "ambiguous":
                found["ambiguous"] = value
            elif key == "unreadable":
                found["unreadable"] = True
            else:
                keys.setdefault(key, []).append(value)
        found["keys"] = keys
        return found


def owned_lines(conf: RedisSettings) -> dict[str, str]:
    """The lines this deploy owns in the backend `.env`, keyed by variable name."""
    return {
        "REDIS_URL": dotenv_line("REDIS_URL", backend_url(conf), quote=False),
        "REDIS_PASSWORD": dotenv_line("REDIS_PASSWORD", conf.password.reveal()),
        **backend_ssl_lines(conf),  # TLS only
    }


def merge_command(path: str, lines: dict[str, str], spec: str = "", mode: int = 0o600,
                  expect_uid: int = 0) -> StringCommand:
    """The merge, run as the user controlling the path (`expect_uid`, 0: root).

    `spec` is what `chown` gets (``"uid:gid"``, ``":gid"``, empty: the writer's own).
    """
    directory, name = safe_paths.split(path)
    payload = base64.b64encode("".join(f"{line}\n" for line in lines.values()).encode()).decode()
    body = f"hsi_merge={shlex.quote(MERGE_AWK)}\n{_MERGE_SH}"
    return safe_paths.run_as_command(directory, expect_uid, PATH_SETTING, body,
                                     [name, spec, f"{mode:o}", PATH_SETTING],
                                     [payload[i:i + 76] for i in range(0, len(payload), 76)])


def env_problem(path: str, found: dict, owner: str | None, group: str | None) -> str | None:
    """Why the merge must not run on `path` (host fails, nothing changed), or None."""
    problem = safe_paths.access_problem(found, path, PATH_SETTING, owner, "redis_backend_env_owner",
                                        group, "redis_backend_env_group")
    if problem:
        return problem
    current = found.get("file")
    if current == "link":
        return (f"{path} is a symbolic link: the deploy does not read or write through links there "
                f"({PATH_SETTING}); point {PATH_SETTING} at the file itself, or replace the link by the file")
    if current == "other":
        return f"{path} is not a regular file ({PATH_SETTING})"
    controller = found["controller"]
    if current is not None and controller["uid"] != 0 and current["uid"] != controller["uid"]:
        name = controller["name"]
        return (f"{path} belongs to {current['user']}, but its directory is controlled by {name}: the deploy "
                f"writes there only as {name}, which would take the file from its owner; run "
                f"`chown {name} {path}` or make the directory root's ({PATH_SETTING})")
    if found.get("unreadable"):
        return f"{path} cannot be read by {controller['name']}, who would rewrite it ({PATH_SETTING})"
    if found.get("ambiguous"):
        line, _, reason = found["ambiguous"].partition(" ")
        return (f"{path} line {line}: {reason}; python-dotenv may read another value than the merge writes: "
                f"fix that line ({PATH_SETTING})")
    return None


def env_target(found: dict, owner: str | None, group: str | None) -> tuple[str, int, bool]:
    """(chown spec, mode, whether owner/group/mode differ from the file's) for the merged file."""
    current = found.get("file")
    controller = found["controller"]["uid"]
    uid = found["owner"]["uid"] if owner else (current["uid"] if current else None)
    gid = (found["group"] if group else found["owner"]["gid"] if owner
           else current["gid"] if current else None)
    mode = current["mode"] & 0o660 if current else (0o640 if group else 0o600)
    differs = current is not None and (current["uid"], current["gid"], current["mode"]) != (uid, gid, mode)
    if controller != 0:
        uid = None  # the writer is the owner
    spec = "" if uid is None and gid is None else f"{'' if uid is None else uid}:{'' if gid is None else gid}"
    return spec, mode, differs


@operation()
def env_keys(path: str, lines: dict[str, str], user: str | None = None, group: str | None = None):
    """
    Merge `KEY=value` lines into a dotenv file, leaving its other lines untouched.

    + path: the `.env` file
    + lines: ``{KEY: "KEY=encoded value"}`` for each owned key
    + user, group: owner and group (unset: an existing file keeps its own; see the module docstring)

    **Example:**

    .. code:: python

        env_keys(name="Set Redis keys", path="/opt/hsi/backend/.env",
                 lines={"REDIS_URL": "REDIS_URL=redis://localhost:6379/0"})
    """
    salt = new_salt()
    found = host.get_fact(EnvFileKeys, path=path, keys=tuple(lines), salt=salt, owner=user or "",
                          group=group or "")
    yield from env_commands(path, lines, found, salt, user, group)


def env_commands(path: str, lines: dict[str, str], found: dict, salt: str, user: str | None,
                 group: str | None) -> list[StringCommand]:
    """What `env_keys` sends, given its fact: nothing, the merge, or a refusal (fails the host)."""
    problem = env_problem(path, found, user, group)
    if problem:
        return [fail_command(problem)]
    spec, mode, differs = env_target(found, user, group)
    stale = found.get("file") is None or any(
        found["keys"].get(key) != [salted_sha256(salt, line)] for key, line in lines.items())
    return [merge_command(path, lines, spec, mode, found["controller"]["uid"])] if stale or differs else []


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
