"""Security checks for verification: the backend identity, least privilege, auth failures.

One fact, one trip, run on the host as the admin identity (password read there from
/etc/hsi-redis/cli.auth, never in argv):

- the backend identity logs in (PING with the password from /etc/hsi-redis/backend.auth);
- `ACL DRYRUN default flushall` is refused (the denied list is in effect);
- failed authentications: the sum of the `count` of ACL LOG entries whose reason is `auth`,
  compared with what the previous run saw (kept in /etc/hsi-redis/auth-failures as
  `run_id total epoch`). The fact writes that file itself: verification must not count as a
  change, and the counter has to move on in verify-only runs too.

The ACL LOG is in memory: a restart (new run_id) or `ACL LOG RESET` starts it again, and
then everything in it counts as new.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase

from . import report, tls
from .facts import ADMIN_USER, BACKEND_AUTH_FILE, CLI_AUTH_FILE, STATE_DIR, _key_values
from .persistence import local_address
from .platform import Platform
from .settings import RedisSettings

AUTH_FAILURES_FILE = f"{STATE_DIR}/auth-failures"

# Sums the `count` of every `reason auth` entry. Raw redis-cli output is one element per line,
# alternating field name and value, so names sit on odd lines whatever a value (e.g. a
# username an attacker chose) says.
_ACL_LOG_AWK = (
    'NR % 2 == 1 { key = $0; next } key == "count" { count = $0 } '
    'key == "reason" && $0 == "auth" { sum += count } END { print sum + 0 }'
)


def security_probe_script(cli: str, address: str, port: int, tls_args: str = "") -> str:
    """`tls_args`: redis-cli's TLS arguments when the server answers over TLS (TLS-only: no plain port)."""
    return f"""
cli={shlex.quote(cli)}; addr={shlex.quote(address)}; port={int(port)}
auth={CLI_AUTH_FILE}; backend={BACKEND_AUTH_FILE}; seen={AUTH_FAILURES_FILE}
ask() {{ timeout 5 "$cli" --no-auth-warning -h "$addr" -p "$port" {tls_args} "$@" 2>&1 | tr -d '\\r'; }}
admin() {{ REDISCLI_AUTH="$(cat "$auth")" ask --user {ADMIN_USER} "$@"; }}
if [ -s "$backend" ]; then
  echo "backend_ping=$(REDISCLI_AUTH="$(cat "$backend")" ask ping | head -n 1)"
fi
[ -s "$auth" ] && [ "$(admin ping)" = PONG ] || {{ echo admin=refused; exit 0; }}
echo admin=ok
echo "flushall_dryrun=$(admin acl dryrun default flushall | head -n 1)"
run_id=$(admin info server | sed -n 's/^run_id://p')
total=$(admin acl log 128 | awk {shlex.quote(_ACL_LOG_AWK)})
[ -f "$seen" ] && echo "previous=$(head -n 1 "$seen")"
echo "run_id=$run_id"; echo "auth_failures=$total"
umask 077; printf '%s %s %s\\n' "$run_id" "$total" "$(date +%s)" > "$seen.tmp" && mv -f "$seen.tmp" "$seen"
true
""".strip()


class SecurityState(FactBase):
    """What the security checks need, in one trip (and moves the auth-failure counter on).

    Returns ``backend_ping``, ``admin`` (ok/refused), ``flushall_dryrun``, ``run_id``,
    ``auth_failures`` (now in ACL LOG) and ``previous`` (``run_id total epoch`` last time).
    """

    def command(self, cli: str, address: str, port: int, tls_args: str = "") -> str:
        return security_probe_script(cli, address, port, tls_args)

    def process(self, output):
        return _key_values(output)


def failures_since_last_run(seen: dict) -> int:
    """New auth failures since the previous run (all of them after a restart or a log reset)."""
    total = int(seen.get("auth_failures") or 0)
    previous = (seen.get("previous") or "").split()
    same_server = len(previous) >= 2 and previous[0] == seen.get("run_id") and previous[1].isdigit()
    if same_server and total >= int(previous[1]):
        return total - int(previous[1])
    return total


def check(conf: RedisSettings, plat: Platform, server: dict) -> tuple[dict, tuple[str, str, str] | None]:
    """(facts for the report, the first problem or None). Adds a warning on an auth-failure jump.

    `server` is what the ServerState probe saw: the checks reach the server the same way
    (over TLS when that is how it answered).
    """
    port, tls_args = tls.cli_connection(server, plat) if server.get("via") == "tls" else (conf.port, "")
    seen = host.get_fact(SecurityState, cli=plat.cli, address=local_address(conf), port=port, tls_args=tls_args)
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
    found["checks"]["flushall_denied"] = seen.get("flushall_dryrun", "") != "OK"
    if "flushall" in conf.acl_denied and seen.get("flushall_dryrun", "") == "OK":
        return found, ("least privilege off", "the backend identity may run FLUSHALL",
                       "run deploy.py again (redis.conf's user lines deny it)")
    since = failures_since_last_run(seen)
    found["auth_failures_since_last_run"] = since
    found["auth_failures_logged"] = int(seen.get("auth_failures") or 0)
    if since >= conf.auth_failure_warn:
        report.warn(host.name, f"{since} failed authentication(s) since the last run (ACL LOG): a client "
                    "has a wrong password or someone is guessing; see ACL LOG as the admin user")
    return found, None
