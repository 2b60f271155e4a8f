"""Security checks for verification: the backend identity, least privilege, auth failures.

One fact, one trip, run on the host as the admin identity (password read there from
/etc/hsi-redis/cli.auth, never in argv):

- the backend identity logs in (PING with the password from /etc/hsi-redis/backend.auth);
- least privilege, as the backend identity itself sees it: in one connection it sends
  `MULTI`, `FLUSHALL hsi-probe`, `CONFIG SET hsi-probe x`, `DISCARD`. The ACL check runs
  when a command is queued, so a denied command answers NOPERM and an allowed one QUEUED;
  nothing runs (DISCARD), and the bogus arguments would make either command a syntax error
  even if MULTI were refused. Only a NOPERM naming the command counts as denied: any other
  reply (an error, a timeout, nothing) leaves least privilege unverified. Works on every
  server from 6.0 (ACL DRYRUN exists only from 7.0). Each denial adds a `command` entry to
  ACL LOG (not counted below);
- failed authentications: the sum of the `count` of ACL LOG entries whose reason is `auth`,
  compared with what the previous run saw (kept in /etc/hsi-redis/auth-failures as
  `run_id total epoch`). The fact writes that file itself: verification must not count as a
  change, and the counter has to move on in verify-only runs too. ACL LOG is read with
  `redis-cli --csv` (6.0+): one line, every string quoted with newlines, quotes and
  backslashes escaped, so a username cannot pass for a field or shift the reading.

The ACL LOG is in memory: a restart (new run_id) or `ACL LOG RESET` starts it again, and
then everything in it counts as new. It holds `acllog-max-len` entries (128): once full, each
new entry (the probe's NOPERMs too) drops the oldest, so there the total may fall without a
reset; new failures are then also read from the entries updated since the last run.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase

from . import acl, report, tls
from .facts import ADMIN_USER, BACKEND_AUTH_FILE, CLI_AUTH_FILE, STATE_DIR, _key_values
from .persistence import local_address
from .platform import Platform
from .settings import RedisSettings

AUTH_FAILURES_FILE = f"{STATE_DIR}/auth-failures"

# Reads `redis-cli --csv acl log N` output: the reply flattened into one line of tokens,
# strings in double quotes (escaped inside: \\, \", \n, \xHH), numbers bare. Escaped
# backslashes and quotes are set aside first, so every remaining `"` delimits a string; tokens
# then alternate field name, value, and an entry ends where a field name comes again. Prints
# `total recent entries`: the `count` sum of `reason auth` entries, the part of it in entries
# updated less than `since` - 1 seconds ago (-1: unknown; the reading is whole seconds), and
# how many entries the log holds.
_ACL_LOG_AWK = r"""
function flush() {
  if ("count" in entry) entries++
  if (entry["reason"] == "auth") {
    total += entry["count"]
    if (since >= 0 && entry["age-seconds"] + 1 < since) recent += entry["count"]
  }
  split("", entry)
}
{ gsub(/\\\\/, "\001"); gsub(/\\"/, "\002"); n = split($0, part, "\"")
  for (i = 1; i <= n; i++) {
    if (i % 2 == 0) { token[++t] = part[i]; continue }
    m = split(part[i], bare, ","); for (j = 1; j <= m; j++) if (bare[j] != "") token[++t] = bare[j]
  } }
END {
  for (k = 1; k < t; k += 2) {
    if (token[k] in entry) flush()
    entry[token[k]] = token[k + 1]
  }
  flush()
  print total + 0, recent + 0, entries + 0
}
""".strip()

# The least-privilege probe, sent as the backend identity (see the module docstring).
_PROBE = r"MULTI\nFLUSHALL hsi-probe\nCONFIG SET hsi-probe x\nDISCARD\n"  # printf turns \n into newlines
# Where each probed command's reply sits among the non-empty reply lines.
PROBED = {"flushall": "probe2", "config|set": "probe3"}


def security_probe_script(cli: str, address: str, port: int, tls_args: str = "") -> str:
    """`tls_args`: redis-cli's TLS arguments when the server answers over TLS (TLS-only: no plain port)."""
    return f"""
cli={shlex.quote(cli)}; addr={shlex.quote(address)}; port={int(port)}
auth={CLI_AUTH_FILE}; backend={BACKEND_AUTH_FILE}; seen={AUTH_FAILURES_FILE}
ask() {{ timeout 5 "$cli" --no-auth-warning -h "$addr" -p "$port" {tls_args} "$@" 2>&1 | tr -d '\\r'; }}
admin() {{ REDISCLI_AUTH="$(cat "$auth")" ask --user {ADMIN_USER} "$@"; }}
backend_ask() {{ REDISCLI_AUTH="$(cat "$backend")" ask "$@"; }}
if [ -s "$backend" ]; then
  echo "backend_ping=$(backend_ask ping | head -n 1)"
  printf {shlex.quote(_PROBE)} | backend_ask | awk '$0 != "" {{ print "probe" ++n "=" $0 }}'
fi
[ -s "$auth" ] && [ "$(admin ping)" = PONG ] || {{ echo admin=refused; exit 0; }}
echo admin=ok
run_id=$(admin info server | sed -n 's/^run_id://p')
max=$(admin config get acllog-max-len | sed -n 2p)
case "$max" in ''|*[!0-9]*) max=128 ;; esac
last=$(head -n 1 "$seen" 2>/dev/null | cut -d ' ' -f 3)
case "$last" in ''|*[!0-9]*) since=-1 ;; *) since=$(( $(date +%s) - last )) ;; esac
# shellcheck disable=SC2046 # three numbers
set -- $(admin --csv acl log "$max" | awk -v since="$since" {shlex.quote(_ACL_LOG_AWK)})
total=${{1:-0}}
[ -f "$seen" ] && echo "previous=$(head -n 1 "$seen")"
echo "run_id=$run_id"; echo "auth_failures=$total"; echo "auth_failures_recent=${{2:-0}}"
[ "${{3:-0}}" -ge "$max" ] && echo acl_log_full=yes
umask 077; printf '%s %s %s\\n' "$run_id" "$total" "$(date +%s)" > "$seen.tmp" && mv -f "$seen.tmp" "$seen"
true
""".strip()


class SecurityState(FactBase):
    """What the security checks need, in one trip (and moves the auth-failure counter on).

    Returns ``backend_ping``, ``probe1``..``probe4`` (the backend identity's replies to the
    least-privilege probe), ``admin`` (ok/refused), ``run_id``, ``auth_failures`` (now in
    ACL LOG) and ``previous`` (``run_id total epoch`` last time).
    """

    def command(self, cli: str, address: str, port: int, tls_args: str = "") -> str:
        return security_probe_script(cli, address, port, tls_args)

    def process(self, output):
        return _key_values(output)


def failures_since_last_run(seen: dict) -> int:
    """New auth failures since the previous run (all of them after a restart or a log reset).

    A full ACL LOG drops its oldest entries as new ones come (any reason), so there the total
    can fall, or stand still, while failures happen: take the larger of the difference and the
    failures in entries updated since the last run.
    """
    total = int(seen.get("auth_failures") or 0)
    previous = (seen.get("previous") or "").split()
    same_server = len(previous) >= 2 and previous[0] == seen.get("run_id") and previous[1].isdigit()
    if not same_server:
        return total
    difference = total - int(previous[1])
    if seen.get("acl_log_full") == "yes":
        return max(difference, int(seen.get("auth_failures_recent") or 0))
    return difference if difference >= 0 else total


def check(conf: RedisSettings, plat: Platform, server: dict) -> tuple[dict, tuple[str, str, str] | None]:
    """(facts for the report, the first problem or None). Adds a warning on an auth-failure jump.

    `server` is what the ServerState probe saw: the checks reach the server the same way
    (over TLS when that is how it answered).
    """
    port, tls_args = tls.cli_connection(server, plat) if server.get("via") == "tls" else (conf.port, "")
    seen = host.get_fact(SecurityState, cli=plat.cli, address=local_address(conf), port=port, tls_args=tls_args)
    warning = acl.config_set_warning(conf, plat)
    if warning:
        report.warn(host.name, warning)
    found: dict = {"checks": {"backend_ping": seen.get("backend_ping", "")}}
    if "backend_ping" not in seen:
        return found, ("setup incomplete", f"{BACKEND_AUTH_FILE} is missing (deployed by an older version?)",
                       "run deploy.py (not verify-only) to write it")
    if seen.get("backend_ping", "").strip() != "PONG":
        return found, ("WRONGPASS (backend identity)",
                       f"the server refuses the backend's password ({seen.get('backend_ping', 'not checked')!r})",
                       "run deploy.py again (it rewrites redis.conf and restarts)")
    if seen.get("admin") != "ok":
        return found, (f"admin identity ({ADMIN_USER}) refused",
                       f"the server refuses the admin identity's password in {CLI_AUTH_FILE}",
                       "run deploy.py again (it rewrites redis.conf and restarts)")
    problem = _least_privilege(conf, plat, seen, found["checks"])
    if problem:
        return found, problem
    since = failures_since_last_run(seen)
    found["auth_failures_since_last_run"] = since
    found["auth_failures_logged"] = int(seen.get("auth_failures") or 0)
    if since >= conf.auth_failure_warn:
        report.warn(host.name, f"{since} failed authentication(s) since the last run (ACL LOG): a client "
                    "has a wrong password or someone is guessing; see ACL LOG as the admin user")
    return found, None


def is_denial(reply: str, command: str) -> bool:
    """A NOPERM naming `command` (`cmd|sub`) or its parent: the wording differs across versions
    (6.x "this user has no permissions to run the 'config' command or its subcommand", 7.0
    "... the 'config|set' command", 7.2+/Valkey "User default has no permissions ...")."""
    names = {command, command.split("|")[0]}
    return reply.startswith("NOPERM") and any(f"'{name}'" in reply for name in names)


def _least_privilege(conf: RedisSettings, plat: Platform, seen: dict,
                     checks: dict) -> tuple[str, str, str] | None:
    """The first denied command the backend identity was not seen to be denied, as a problem."""
    denied = acl.denied_commands(conf, plat)
    expected = [c for c in PROBED if c in denied or c.split("|")[0] in denied]
    for command in PROBED:
        checks[f"{command.replace('|', '_')}_denied"] = is_denial(seen.get(PROBED[command], ""), command)
    for command in expected:
        reply = seen.get(PROBED[command], "")
        if is_denial(reply, command):
            continue
        shown = command.replace("|", " ").upper()
        if reply == "QUEUED":
            return ("least privilege off", f"the backend identity may run {shown}",
                    "run deploy.py again (redis.conf's user lines deny it)")
        return ("least privilege unverified",
                f"the backend identity's {shown} was answered {reply[:120]!r}, not with a NOPERM denial",
                f"ask the server as the backend identity (REDISCLI_AUTH from {BACKEND_AUTH_FILE}); "
                "run deploy.py again")
    return None
