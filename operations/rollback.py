"""Restarts that never strand a host: keep the last good config, roll back when a restart fails.

Before the deploy writes a changed redis.conf, the config the running server was started
with is copied to /etc/hsi-redis/last-good/ (root 0700, files 0600: it holds the password),
with the deploy's credential `cli.auth`. The restart itself is one host-side script:

1. find the running server where the config it was started with says it listens (the copy
   kept with the pending restart, the last good config, else the new one), ask it (old or
   new credential) for its key count and take a fresh snapshot (`BGSAVE SCHEDULE`, wait until
   it is written), so memory is on disk;
2. a new `dir`: stop it and copy its data files there (from the directory it reports, or, when
   it cannot be asked -- stopped -- the one its earlier config names);
3. restart the service and wait until it answers PING with the new credential;
4. good: compare the key count (keys without a TTL must not drop), record the config as
   the new last good one, and clear the pending restart (restart_pending.py);
5. bad: collect the journal and log lines (arguments of the offending config line and any
   password directive redacted), restore the last good config and credential, restart,
   wait for PONG, and fail this host with what happened. The server keeps its data: a
   config Redis rejects stops it before it loads anything.

A failing command fails only this host; nothing here raises at execution time.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import StringCommand, operation

from . import tls
from .facts import (
    ADMIN_USER,
    CLI_AUTH_FILE,
    LAST_GOOD_DIR,
    RESTART_PENDING,
    STATE_DIR,
    WHERE_FUNCTION,
    ManagedFile,
    last_good_copy,
    new_salt,
    salted_sha256,
)
from .persistence import local_address
from .platform import Platform
from .settings import RedisSettings
from .tls_probe import client_args

# Longest wait for the pre-restart snapshot (0.5 s steps); large datasets take a while.
SNAPSHOT_WAIT_STEPS = 1200

# sed program: hide the arguments of the config line Redis quotes in a fatal error
# (">>> 'directive args'") and of any password-bearing directive anywhere.
REDACT_SED = (
    r"s/^(>>> '[^ ']*).*/\1 <arguments hidden>'/; "
    r"s/((requirepass|masterauth|masteruser|tls-key-file-pass|tls-client-key-file-pass)"
    r"[[:space:]]+).*/\1<hidden>/I; "
    r"s/(user[[:space:]]+[^[:space:]]+)[[:space:]].*[>#<].*/\1 <hidden>/I"
)

# systemd's own lines around restarts that say nothing about why the server failed
JOURNAL_NOISE = (
    r"Scheduled restart job|Deactivated successfully|^Stopped |^Starting |^Started |"
    r"Start request repeated|Failed with result|^Failed to start "
)


def last_good_path(plat: Platform) -> str:
    return last_good_copy(plat.config_path)


def _common(conf: RedisSettings, plat: Platform) -> str:
    """Shell variables and helpers shared by the scripts below.

    A server is reached the way its config allows: the plain port, or, for a TLS-only config
    (`port 0`), its TLS port with TLS arguments. The credential is tried as the admin identity
    first, then as `default` (a server still on a config from before the admin identity).
    """
    tls_only = conf.tls is not None and conf.tls.only
    tls_args = client_args(tls.server_paths(plat)["ca"], *tls.cli_paths().values())
    return f"""
svc={shlex.quote(plat.service)}; cli={shlex.quote(plat.cli)}; addr={shlex.quote(local_address(conf))}
port={int(conf.tls.port if tls_only else conf.port)}; new_tls={1 if tls_only else 0}
cfg={shlex.quote(plat.config_path)}; grp={shlex.quote(plat.group)}; pend={shlex.quote(RESTART_PENDING)}
lg={shlex.quote(LAST_GOOD_DIR)}; lgcfg={shlex.quote(last_good_path(plat))}; auth={shlex.quote(CLI_AUTH_FILE)}
log={shlex.quote(plat.log_file)}; wait_s={int(conf.restart_wait)}
{WHERE_FUNCTION}
use_new() {{ aa=$addr; ap=$port; at=$new_tls; }}
# use_at CONFIG: where that config's server listens (its TLS port, at=1, when the plain one is closed)
use_at() {{ where "$1" || return 1; aa=$wa; ap=$wp; at=0; [ "$wp" != 0 ] || {{ ap=$wt; at=1; }}; }}
# ask ARGS...: the CLI at $aa port $ap (over TLS when $at=1), as $pwu with the password file $pwf
# ("" = no password), never in argv
ask() {{ if [ "$at" = 1 ]; then set -- {tls_args} "$@"; fi
  if [ -n "$pwf" ]; then REDISCLI_AUTH="$(cat "$pwf")" timeout 5 "$cli" --no-auth-warning --user "$pwu" -h "$aa" -p "$ap" "$@"
  else timeout 5 "$cli" --no-auth-warning -h "$aa" -p "$ap" "$@"; fi 2>&1 | tr -d '\\r'; }}
# pick FILE...: set $pwf/$pwu to the first credential the server at $ap answers PONG to ("" = none)
pick() {{ for pwf in "$@" ""; do [ -z "$pwf" ] || [ -s "$pwf" ] || continue
  for pwu in {ADMIN_USER} default; do [ "$(ask ping)" = PONG ] && return 0; [ -n "$pwf" ] || break; done
  done; pwf=""; return 1; }}
# persistent keys (without a TTL) and all keys, over every database
count() {{ ask info keyspace | awk -F'[:=,]' '/^db[0-9]+:/ {{ k += $3; e += $5 }} END {{ print k - e, k + 0 }}'; }}
save_last_good() {{ install -d -m 0700 {shlex.quote(STATE_DIR)} "$lg"; umask 077
  cp "$cfg" "$lgcfg.tmp" && chmod 600 "$lgcfg.tmp" && mv -f "$lgcfg.tmp" "$lgcfg"
  if [ -s "$auth" ]; then cp "$auth" "$lg/cli.auth.tmp" && chmod 600 "$lg/cli.auth.tmp" && mv -f "$lg/cli.auth.tmp" "$lg/cli.auth"
  else rm -f "$lg/cli.auth"; fi; }}
""".strip()


def keep_last_good_script(conf: RedisSettings, plat: Platform) -> str:
    """Shell: copy the running server's config (and credential) to last-good/."""
    return _common(conf, plat) + """
[ -f "$cfg" ] || exit 0
# Only a config the server is running with counts as good; otherwise keep the older copy.
systemctl is-active --quiet "$svc" || exit 0
save_last_good
"""


def safe_restart_script(conf: RedisSettings, plat: Platform) -> str:
    """Shell: snapshot, restart, check; roll back to the last good config when the server does not answer."""
    return _common(conf, plat) + f"""
say() {{ echo "hsi-redis: $*" >&2; }}
# Put the last good config and credential back on disk (the next run then sees the change again).
restore_files() {{ [ -s "$lgcfg" ] || return 0; umask 077
  cp "$lgcfg" "$cfg.hsi-rollback" && chown "root:$grp" "$cfg.hsi-rollback" && chmod 640 "$cfg.hsi-rollback" \\
    && mv -f "$cfg.hsi-rollback" "$cfg"
  if [ -s "$lg/cli.auth" ]; then cp "$lg/cli.auth" "$auth.tmp" && chmod 600 "$auth.tmp" && mv -f "$auth.tmp" "$auth"
  else rm -f "$auth"; fi; }}
# The running server, where the config it was started with says it listens: the copy kept
# with the pending restart, the last good config, or (restarted by hand already) the new one.
before=""; old_dir=""; found=no
for f in "$pend" "$lgcfg" "$cfg"; do use_at "$f" && pick "$auth" "$lg/cli.auth" && {{ found=yes; break; }}; done
if [ "$found" = yes ]; then
  set -- $(count); before=$1; before_all=$2
  old_dir=$(ask config get dir | sed -n 2p)
  # Memory to disk before the restart: a fresh RDB snapshot (SCHEDULE waits for an AOF rewrite).
  t0=$(ask lastsave); ask bgsave schedule >/dev/null; i=0
  while [ "$(ask lastsave)" = "$t0" ]; do i=$((i+1))
    [ "$i" -lt {SNAPSHOT_WAIT_STEPS} ] || {{ restore_files; say "the snapshot before the restart did not finish; not restarted, config left as it was"; exit 1; }}
    sleep 0.5; done
  case "$(ask info persistence)" in *rdb_last_bgsave_status:ok*) ;;
    *) restore_files; say "the snapshot before the restart failed (disk full?); not restarted, config left as it was"; exit 1;; esac
else
  # Nothing answers (stopped): its data is where the config it would have started with keeps it.
  for f in "$pend" "$lgcfg"; do where "$f" || continue; case "$wd" in /*) old_dir=$wd; break;; esac; done
fi
# A new data directory: the data follows the server (stopped first, so the files are final;
# whatever the new directory held is kept aside, never overwritten).
new_dir=""; where "$cfg" && case "$wd" in /*) new_dir=$wd;; esac
if [ -n "$old_dir" ] && [ -n "$new_dir" ] && [ "$old_dir" != "$new_dir" ]; then
  systemctl stop "$svc"
  install -d -o {shlex.quote(plat.user)} -g "$grp" -m 0750 "$new_dir"
  stamp=$(date +%Y%m%d%H%M%S)
  for f in dump.rdb appendonlydir appendonly.aof; do
    [ -e "$new_dir/$f" ] && mv "$new_dir/$f" "$new_dir/$f.hsi-before-$stamp"
    [ -e "$old_dir/$f" ] && cp -a "$old_dir/$f" "$new_dir/$f"
  done
  echo "copied the data from $old_dir to $new_dir"
fi
since=$(date '+%Y-%m-%d %H:%M:%S')
systemctl reset-failed "$svc" 2>/dev/null
timeout "$wait_s" systemctl restart "$svc" 2>/dev/null
# up: answers PONG to the admin identity's new credential (LOADING: still reading its data, wait)
up=no; i=0; use_new; pwf=$auth; pwu={ADMIN_USER}
while [ "$i" -lt $((wait_s * 2)) ]; do
  if systemctl is-active --quiet "$svc"; then
    r=$(ask ping); [ "$r" = PONG ] && {{ up=yes; break; }}
  elif systemctl is-failed --quiet "$svc"; then break  # gave up (start limit): no point waiting
  fi; i=$((i+1)); sleep 0.5; done
if [ "$up" = yes ]; then
  set -- $(count); after=$1; after_all=$2
  save_last_good
  if [ -n "$before" ] && [ "$after" -lt "$before" ]; then
    say "keys without a TTL dropped across the restart: $before before, $after after ($before_all/$after_all with TTL keys); check the data"
    exit 1
  fi
  rm -f "$pend"  # verified: the restart the files asked for has happened
  echo "restarted: ${{after_all:-0}} keys (before: ${{before_all:-unknown}})"
  exit 0
fi
# The new config does not serve: show why (redacted), restore the last good config, restart.
# Server lines only (systemd's retry chatter dropped, repeats once): they fit the report.
[ -f "$log" ] && tail -n 2 "$log" | sed -E {shlex.quote(REDACT_SED)} | sed 's/^/log: /' >&2
journalctl -u "$svc" --since "$since" -o cat --no-pager 2>/dev/null | grep -v '^$' \\
  | grep -v -E {shlex.quote(JOURNAL_NOISE)} | awk '!seen[$0]++' | tail -n 6 \\
  | sed -E {shlex.quote(REDACT_SED)} | sed 's/^/journal: /' >&2
if [ ! -s "$lgcfg" ]; then
  say "$svc does not answer PING after the restart with the new config, and there is no last good config to restore"
  exit 1
fi
restore_files
systemctl reset-failed "$svc" 2>/dev/null
timeout "$wait_s" systemctl restart "$svc" 2>/dev/null
use_at "$lgcfg"; i=0; while [ "$i" -lt $((wait_s * 2)) ]; do pick "$auth" && break; i=$((i+1)); sleep 0.5; done
if pick "$auth"; then
  set -- $(count)
  say "$svc did not answer PING with the new config; rolled back to the last good config, which serves $2 keys (before: ${{before_all:-unknown}}). Fix the settings and run again"
else
  say "$svc did not answer PING with the new config, and not after restoring the last good config either: see journalctl -u $svc"
fi
exit 1
"""


@operation()
def keep_last_good(conf: RedisSettings, plat: Platform, content: str):
    """
    Before redis.conf changes, keep the config the server runs with as the last good one.

    + conf: the host's settings
    + plat: the host's platform row
    + content: the redis.conf about to be written (compared by SHA-256 only)

    Does nothing when the file already has this content or the service is not running.

    **Example:**

    .. code:: python

        keep_last_good(name="Keep the last good config", conf=conf, plat=plat, content=rendered)
    """
    salt = new_salt()
    current = host.get_fact(ManagedFile, path=plat.config_path, salt=salt)
    if current is None or current["sha256"] == salted_sha256(salt, content):
        return
    yield StringCommand(keep_last_good_script(conf, plat))


@operation()
def safe_restart(conf: RedisSettings, plat: Platform):
    """
    Restart the server; if it does not answer PING, restore the last good config and fail the host.

    + conf: the host's settings
    + plat: the host's platform row

    Snapshots the data first and checks the key count afterwards (see the module docstring).

    **Example:**

    .. code:: python

        safe_restart(name="Restart redis-server", conf=conf, plat=plat, _if=config.did_change)
    """
    yield StringCommand(safe_restart_script(conf, plat))


@operation()
def record_last_good(conf: RedisSettings, plat: Platform):
    """
    Copy the config and credential in place now to last-good/ (the running server matches them).

    + conf: the host's settings
    + plat: the host's platform row

    Used by rotate.py, which changes both without a restart.

    **Example:**

    .. code:: python

        record_last_good(name="Record the last good config", conf=conf, plat=plat)
    """
    yield StringCommand(keep_last_good_script(conf, plat))
