"""Writing where another user may control the path: the backend's `.env`, its TLS files, the
exporter's files.

The threat: whoever owns a directory on the way to a file (the file's directory or any
directory above it), or may write to one (group/other-writable), can rename entries there and
put symbolic links or other files in their place between two steps of root's work. Root
opening, `chown`ing or `chmod`ing by path (chmod always follows links) would then read or
change a file of that user's choosing: `/etc/hsi-redis/cli.auth`, `/etc/shadow`, the server's
CA.

The rule, checked on the host each time (in the fact, and again in the command that writes):

- the path is resolved component by component as the kernel would, and every directory whose
  entries are consulted on the way is checked (`hsi_chain`); symbolic links to directories are
  followed only through directories that pass, and the work then uses the resolved path;
- a directory writable by its group or by others (sticky or not) is refused;
- every directory root-owned: root writes by path, as it always did (nobody else can touch it);
- directories owned by one other user U (and the rest by root): the whole read-and-write runs
  as U (`setpriv --reuid/--regid/--init-groups`, util-linux, or `runuser`), so root never
  touches a path U controls. What U could redirect there, U could read or change anyway. The
  file then belongs to U: a setting asking for another owner is refused, naming it;
- directories owned by two different users: refused.

A refusal fails the host with a message naming the setting and changes nothing.
"""

from __future__ import annotations

import base64
import posixpath
import shlex

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation

from .facts import new_salt, salted_sha256
from .shell import fail_command

# POSIX sh functions shared by the facts and the commands (Debian's dash; no Python on hosts).
CHAIN_SH = r"""
hsi_dir_ok() {
  hsi_m=$(stat -c '%u %a' -- "$1") || { hsi_why="cannot read the directory $1"; return 1; }
  hsi_o=${hsi_m% *}; hsi_m=${hsi_m#* }
  if [ $((0$hsi_m & 022)) -ne 0 ]; then
    hsi_why="$1 is writable by its group or by others (mode $hsi_m)"; return 1
  fi
  [ "$hsi_o" -ne 0 ] || return 0
  if [ -n "$hsi_uid" ] && [ "$hsi_uid" != "$hsi_o" ]; then
    hsi_why="$1 and a directory above it belong to different users (uids $hsi_uid and $hsi_o)"; return 1
  fi
  hsi_uid=$hsi_o
}
hsi_chain() {
  hsi_real=/ hsi_top=/ hsi_uid='' hsi_why='' hsi_rest=$1 hsi_hops=0
  while :; do
    hsi_dir_ok "$hsi_real" || return 1
    while :; do case $hsi_rest in /*) hsi_rest=${hsi_rest#/} ;; *) break ;; esac; done
    if [ -z "$hsi_rest" ]; then hsi_top=$hsi_real; return 0; fi
    hsi_c=${hsi_rest%%/*}; hsi_rest=${hsi_rest#"$hsi_c"}
    case $hsi_c in
      .) continue ;;
      ..) hsi_real=$(dirname -- "$hsi_real"); continue ;;
    esac
    hsi_n=${hsi_real%/}/$hsi_c
    if [ -L "$hsi_n" ]; then
      hsi_hops=$((hsi_hops + 1))
      [ "$hsi_hops" -le 40 ] || { hsi_why="$1: too many symbolic links"; return 1; }
      hsi_t=$(readlink -- "$hsi_n")
      case $hsi_t in /*) hsi_real=/ ;; esac
      hsi_rest=$hsi_t$hsi_rest
    elif [ -d "$hsi_n" ]; then
      hsi_real=$hsi_n
    elif [ -e "$hsi_n" ]; then
      hsi_why="$hsi_n is not a directory"; return 1
    else
      case /$hsi_rest/ in
        */./*|*/../*) hsi_why="$1: cannot create a path with . or .. in it"; return 1 ;;
      esac
      hsi_top=$hsi_real; hsi_real=$hsi_n$hsi_rest; return 0
    fi
  done
}
hsi_switch() {
  hsi_as=
  if [ -z "$1" ] || [ "$1" = "$(id -u)" ]; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    hsi_why="uid $1 controls the directory and this deploy is not root"; return 1
  fi
  hsi_g=$(id -g -- "$1" 2>/dev/null) || { hsi_why="uid $1 owns the directory but has no user account"; return 1; }
  if command -v setpriv >/dev/null 2>&1; then hsi_as="setpriv --reuid=$1 --regid=$hsi_g --init-groups --"
  elif command -v runuser >/dev/null 2>&1; then hsi_as="runuser -u $(id -nu -- "$1") --"
  else hsi_why="neither setpriv nor runuser (util-linux) is installed"; return 1
  fi
}
hsi_fail() { echo "hsi-redis: $*" >&2; exit 1; }
"""

# Fact part: what the chain is and who would write (root, or the user controlling it).
_REPORT_SH = r"""
if ! hsi_chain "$hsi_dir"; then echo "refused=$hsi_why"; exit 0; fi
if ! hsi_switch "$hsi_uid"; then echo "refused=$hsi_why"; exit 0; fi
hsi_c=${hsi_uid:-0}
hsi_n=$(id -nu -- "$hsi_c" 2>/dev/null || echo "$hsi_c")
echo "chain=$hsi_c $hsi_n $(id -g -- "$hsi_c" 2>/dev/null || echo 0)"
stat -c 'top=%a %u %g %U %G' -- "$hsi_top"
[ "$hsi_top" = "$hsi_real" ] || echo "top_is_parent=yes"
if [ -n "$hsi_owner" ]; then
  hsi_id=$(id -u -- "$hsi_owner" 2>/dev/null) && hsi_id="$hsi_id $(id -g -- "$hsi_owner")"
  echo "owner=${hsi_id:-missing}"
fi
if [ -n "$hsi_group" ]; then
  hsi_id=$(getent group "$hsi_group" | cut -d: -f3); echo "group=${hsi_id:-missing}"
fi
"""


def _meta(prefix: str, target: str) -> str:
    """Shell printing how `target` (a shell word) exists, never through a link."""
    return (f'if [ -L {target} ]; then echo {prefix}=link; '
            f'elif [ -f {target} ]; then stat -c "{prefix}=%a %u %g %U %G" -- {target}; '
            f'elif [ -e {target} ]; then echo {prefix}=other; fi')


def report_script(directory: str, owner: str | None, group: str | None) -> str:
    """Shell that checks `directory`'s chain and prints what `parse_report` reads."""
    return "\n".join((
        CHAIN_SH,
        " ".join(f"hsi_{name}={shlex.quote(value or '')}"
                 for name, value in (("dir", directory), ("owner", owner), ("group", group))),
        _REPORT_SH,
    ))


def _ids(value: str) -> dict:
    mode, uid, gid, user, group = value.split(" ", 4)
    return {"mode": int(mode, 8), "uid": int(uid), "gid": int(gid), "user": user, "group": group}


def parse_report(output: list[str]) -> dict:
    """The fact's lines as a dict: refused, controller (uid, name, gid), top (the deepest existing
    directory: mode, uid, gid...), owner/group ids of the settings, `fileN`/`shaN` entries by index,
    and any other line in ``other_lines``."""
    found: dict = {"refused": None, "files": {}, "hashes": {}, "other_lines": []}
    for line in output:
        key, _, value = line.partition("=")
        if key == "refused":
            found["refused"] = value
        elif key == "chain":
            uid, name, gid = value.split(" ", 2)
            found["controller"] = {"uid": int(uid), "name": name, "gid": int(gid)}
        elif key == "top":
            found["top"] = _ids(value)
        elif key == "top_is_parent":
            found["top_is_parent"] = True
        elif key == "owner":
            found["owner"] = None if value == "missing" else dict(zip(("uid", "gid"), map(int, value.split()),
                                                                          strict=True))
        elif key == "group":
            found["group"] = None if value == "missing" else int(value)
        elif key.startswith("file") and key[4:].isdigit():
            found["files"][int(key[4:])] = value if value in ("link", "other") else _ids(value)
        elif key.startswith("sha") and key[3:].isdigit():
            found["hashes"][int(key[3:])] = value
        else:
            found["other_lines"].append(line)
    return found


def access_problem(found: dict, where: str, path_setting: str, owner: str | None, owner_setting: str,
                   group: str | None = None, group_setting: str = "") -> str | None:
    """Why the deploy must not write `where`, or None. Names the setting to look at."""
    if found.get("refused"):
        return (f"{where}: {found['refused']}; the deploy (root) does not work in a directory another user "
                f"could change under it ({path_setting}): fix the directory or choose another path")
    controller = found["controller"]
    if owner and found.get("owner") is None:
        return f"{owner_setting}: no user {owner!r} on this host"
    if group and found.get("group") is None:
        return f"{group_setting}: no group {group!r} on this host"
    if controller["uid"] == 0:
        return None
    name = controller["name"]
    if owner and found["owner"]["uid"] != controller["uid"]:
        return (f"{owner_setting} is {owner}, but {where} is in a directory {name} controls: root does not "
                f"write there, and written as {name} it can only belong to {name}; set {owner_setting} to "
                f"{name} (or leave it unset), or make the directory root's")
    if found["top"]["uid"] != controller["uid"]:
        return (f"{where}: the directory {name} would write in belongs to {found['top']['user']}, inside "
                f"a directory {name} controls ({path_setting}); chown it to {name} or make the whole path "
                "root's")
    return None


def _run_as(directory: str, expect_uid: int, path_setting: str, body: str, args: list[str]) -> str:
    """Shell that re-checks `directory`'s chain (it must still be controlled by `expect_uid`) and
    runs `body` there as that user (root: directly) with the resolved directory as $1."""
    changed = f"{directory}: its owners changed since they were checked; run the deploy again"
    return "\n".join((
        "set -e",
        CHAIN_SH,
        f"hsi_chain {shlex.quote(directory)} || hsi_fail \"$hsi_why ({path_setting})\"",
        f'[ "${{hsi_uid:-0}}" = {expect_uid} ] || hsi_fail {shlex.quote(changed)}',
        'hsi_switch "$hsi_uid" || hsi_fail "$hsi_why"',
        f'$hsi_as sh -c {shlex.quote(body)} hsi-redis "$hsi_real" {" ".join(shlex.quote(a) for a in args)}',
    ))


def run_as_command(directory: str, expect_uid: int, path_setting: str, body: str, args: list[str],
                   stdin: list[str]) -> StringCommand:
    return StringCommand(_run_as(directory, expect_uid, path_setting, body, args), _stdin=stdin)


# -- whole files owned by the deploy (TLS client files, the exporter's environment) ----------------

class OwnedFiles(FactBase):
    """For files the deploy writes in `directory`: the directory's chain (see the module docstring)
    and each file's metadata and salted SHA-256, read as the user who would write them and never
    through a link. See `parse_report`; files are keyed by their index in `names`."""

    def command(self, directory: str, names: tuple[str, ...], salt: str = "", owner: str = "",
                group: str = "") -> str:
        lines = [report_script(directory, owner, group)]
        for index, name in enumerate(names):
            lines.append(_meta(f"file{index}", f'"$hsi_real"/{shlex.quote(name)}'))
        hashing = ('salt=$1; shift; i=0; for f; do if [ -f "$f" ] && [ ! -L "$f" ] && [ -r "$f" ]; then '
                   '{ printf %s "$salt"; cat -- "$f"; } | sha256sum | sed "s/ .*//; s/^/sha$i=/"; fi; '
                   'i=$((i + 1)); done')
        files = " ".join(f'"$hsi_real"/{shlex.quote(name)}' for name in names)
        lines.append(f"$hsi_as sh -c {shlex.quote(hashing)} hsi-redis {shlex.quote(salt)} {files} || true")
        lines.append("true")
        return "\n".join(lines)

    def process(self, output):
        return parse_report(output)


_WRITE_FILES = r"""
set -e; umask 077
d=$1 spec=$2 dmode=$3; shift 3
tmp=; trap 'rm -f "$tmp"' EXIT
if [ ! -d "$d" ]; then
  (umask 022; mkdir -p -- "$(dirname -- "$d")")
  if [ -n "$dmode" ]; then mkdir -- "$d"; else (umask 022; mkdir -- "$d"); fi
fi
while [ $# -gt 0 ]; do
  f=$d/$1 mode=$2; shift 2
  IFS= read -r data
  tmp=$(mktemp "$f.hsi-XXXXXX")
  printf '%s' "$data" | base64 -d > "$tmp"
  [ -z "$spec" ] || chown -- "$spec" "$tmp"
  chmod "$mode" "$tmp"
  mv -f -- "$tmp" "$f"; tmp=
done
if [ -n "$dmode" ]; then [ -z "$spec" ] || chown -- "$spec" "$d"; chmod "$dmode" "$d"; fi
"""


@operation()
def owned_files(directory: str, files: dict[str, tuple[bytes | str, int]], owner: str | None = None,
                group: str | None = None, dir_mode: int | None = None,
                path_setting: str = "", owner_setting: str = "", group_setting: str = ""):
    """
    Ensure files with exactly this content, owner and mode in `directory`, safely where a service
    user controls the path (see the module docstring). Content travels base64 on stdin.

    + directory: absolute directory of the files
    + files: ``{name: (content, mode)}``
    + owner: owner of files (and directory); unset, the user who controls the path, or root
    + group: their group; unset, the owner's login group
    + dir_mode: manage `directory` itself with this mode (None: only create it when missing)
    + path_setting, owner_setting, group_setting: the settings named in refusals

    **Example:**

    .. code:: python

        owned_files(name="Backend TLS files", directory="/opt/hsi/backend/redis-tls",
                    files={"ca.crt": (ca_pem, 0o644)}, dir_mode=0o750,
                    path_setting="redis_tls_backend_dir", owner_setting="redis_backend_env_owner")
    """
    salt = new_salt()
    found = host.get_fact(OwnedFiles, directory=directory, names=tuple(files), salt=salt, owner=owner or "",
                          group=group or "")
    yield from owned_files_commands(directory, files, found, salt, owner, group, dir_mode,
                                    (path_setting, owner_setting, group_setting))


def owned_files_commands(directory: str, files: dict[str, tuple[bytes | str, int]], found: dict, salt: str,
                         owner: str | None, group: str | None, dir_mode: int | None,
                         settings: tuple[str, str, str]) -> list[StringCommand]:
    """What `owned_files` sends, given its fact: nothing, one write, or a refusal (fails the host)."""
    path_setting, owner_setting, group_setting = settings
    names = tuple(files)
    problem = access_problem(found, directory, path_setting, owner, owner_setting, group, group_setting)
    controller = (found.get("controller") or {}).get("uid", 0)
    if problem is None and controller != 0:
        foreign = [names[i] for i, meta in found["files"].items()
                   if isinstance(meta, dict) and meta["uid"] != controller]
        if foreign:
            name = found["controller"]["name"]
            problem = (f"{directory}: {', '.join(foreign)} belong(s) to another user, inside a directory "
                       f"{name} controls: the deploy writes there only as {name}; run "
                       f"`chown -R {name}: {directory}` ({path_setting})")
    if problem is None:
        problem = next((f"{directory}/{names[i]} is not a regular file ({path_setting})"
                        for i, meta in found["files"].items() if meta == "other"), None)
    if problem is not None:
        return [fail_command(problem)]
    uid = found["owner"]["uid"] if owner else controller
    gid = found["group"] if group else (found["owner"]["gid"] if owner else found["controller"]["gid"])
    changed = []
    for index, name in enumerate(names):
        data, mode = files[name]
        data = data.encode() if isinstance(data, str) else data
        meta = found["files"].get(index)
        if (not isinstance(meta, dict) or found["hashes"].get(index) != salted_sha256(salt, data)
                or (meta["uid"], meta["gid"], meta["mode"]) != (uid, gid, mode)):
            changed.append((name, data, mode))
    top = found["top"]
    dir_changed = dir_mode is not None and (
        found.get("top_is_parent", False) or (top["uid"], top["gid"], top["mode"]) != (uid, gid, dir_mode))
    if not changed and not dir_changed:
        return []
    spec = f"{uid}:{gid}" if controller == 0 else f":{gid}"
    args = [spec, f"{dir_mode:o}" if dir_mode is not None else ""]
    for name, _, mode in changed:
        args += [name, f"{mode:o}"]
    stdin = [base64.b64encode(data).decode() for _, data, _ in changed] or [""]
    return [run_as_command(directory, controller, path_setting, _WRITE_FILES, args, stdin)]


def split(path: str) -> tuple[str, str]:
    """(directory, name) of an absolute file path."""
    return posixpath.dirname(path) or "/", posixpath.basename(path)
