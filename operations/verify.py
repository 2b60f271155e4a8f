"""Ask the server what a client sees, classify any failure the way an operator thinks, say the fix.

The checks read what the host program reported (`hoststate.Server`): authenticated PING is PONG,
PING without a password is refused (NOAUTH), AOF is on, TLS is as configured, the backend's identity
logs in and is denied what it must not run (the NOPERM itself, not merely "not OK"), and the backend
`.env` holds exactly what the server expects. On a run that changed nothing the state read of the
prologue is the verification (no further trip); after changes the server part is read once more.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import state as run_state
from pyinfra.api import operation

from . import acl, clients, prologue, report, schedule
from .acl import ADMIN_USER
from .hoststate import HostState, Server, answered, salted_sha256
from .shell import fail_command
from .target import Target


@dataclass(frozen=True)
class Problem:
    kind: str
    text: str
    fix: str


def _has(reply: str, *needles: str) -> bool:
    return any(needle in reply for needle in needles)


def server_problem(target: Target, seen: Server) -> Problem | None:
    """The first thing wrong with the server itself, or None."""
    row, service = target.row, target.row.service
    if not seen.cli:
        return Problem("not installed", f"{row.cli} is not installed",
                       f"run deploy.py (not verify-only) to install {' '.join(row.packages)}")
    refused = _has(seen.auth + seen.noauth, "Connection refused", "Could not connect")
    if not seen.running or refused or not answered(seen.noauth + seen.auth):
        return Problem("not running or refused",
                       f"{service} is {seen.active or 'unknown'}; nothing answers on port "
                       f"{target.plain_port or (target.tls.port if target.tls else '?')}",
                       f"systemctl status {service}; journalctl -u {service} -n 50; check redis_port/redis_bind")
    if target.tls is not None:
        problem = tls_problem(target, seen)
        if problem:
            return problem
    if seen.noauth.strip() == "PONG":
        return Problem("no password required", "the server answers PING without a password",
                       "requirepass is not in effect: run deploy.py again (it rewrites the config and restarts)")
    if _has(seen.auth, "WRONGPASS", "invalid password", "invalid username-password"):
        return Problem("WRONGPASS", "the server rejects the deployed admin password (it runs with other users)",
                       f"run deploy.py again, or restart {service} if its config was changed by hand")
    if seen.identity == "none" or _has(seen.auth, "NOAUTH"):
        return Problem("NOAUTH", f"no credential on the host gets PONG ({target.cli_auth} missing or stale)",
                       "run deploy.py (not verify-only) to write it")
    if not seen.up:
        return Problem("unexpected reply", f"authenticated PING answered {seen.auth.strip()!r}",
                       f"journalctl -u {service} -n 50")
    if seen.info.get("loading") == "1":
        return Problem("loading", "the server is still loading its dataset", "wait, then run verify.py again")
    if not seen.aof:
        return Problem("AOF off", "the server runs without AOF persistence",
                       "run deploy.py again: it turns AOF on without losing data")
    return None


def tls_problem(target: Target, seen: Server) -> Problem | None:
    tls, service = target.tls, target.row.service
    if seen.tls_port != tls.port or not answered(seen.tls_ping):
        return Problem("TLS", f"nothing answers TLS on port {tls.port} ({(seen.tls_ping or 'no reply')!r})",
                       f"journalctl -u {service} -n 50 (certificate/key unreadable?); run deploy.py again")
    if tls.only and answered(seen.plain_ping):
        return Problem("plain port open", f"TLS-only, yet port {target.settings.port} answers without TLS",
                       f"run deploy.py again (it writes `port 0`) or restart {service}")
    if tls.auth_clients == "yes" and answered(seen.tls_nocert):
        return Problem("mTLS not enforced", "a TLS client without a certificate is accepted",
                       f"run deploy.py again (tls-auth-clients yes) or restart {service}")
    return None


def identity_problem(target: Target, seen: Server) -> Problem | None:
    """The backend identity logs in, and is denied what it must not run (the denial itself: NOPERM)."""
    if seen.backend_ping.strip() != "PONG":
        return Problem("WRONGPASS (backend identity)",
                       f"the server refuses the backend's password ({seen.backend_ping.strip() or 'not checked'!r})",
                       "run deploy.py again (it rewrites redis.conf and restarts)")
    if seen.identity != ADMIN_USER:
        return Problem(f"admin identity ({ADMIN_USER}) refused",
                       f"the server refuses the admin identity's password in {target.cli_auth}",
                       "run deploy.py again (it rewrites redis.conf and restarts)")
    denied = set(acl.denied_commands(target.settings, target.row))
    checks = []
    if "flushall" in denied:
        checks.append(("FLUSHALL", seen.backend_flushall))
    if denied & {"config", "config|set"}:
        checks.append(('CONFIG SET requirepass ""', seen.backend_config_set))
    for shown, reply in checks:
        if "QUEUED" in reply:
            return Problem("least privilege off", f"the backend identity may run {shown}",
                           "run deploy.py again (redis.conf's user lines deny it)")
        if "NOPERM" not in reply:
            return Problem("least privilege unverified",
                           f"the denial of {shown} to the backend identity could not be seen ({reply.strip()!r})",
                           "run verify.py again; if it persists, check the user lines in redis.conf")
    return None


def env_problem(target: Target, state: HostState, salt: str) -> Problem | None:
    backend = target.backend
    if backend is None:
        return None
    unsafe = clients.env_problem(target, state)
    if unsafe:
        return Problem("backend .env unsafe", unsafe, "see the message; nothing was written there")
    for why in clients.dir_problems(target, state).values():
        return Problem("client files unsafe", why, "see the message; nothing was written there")
    info = state.envs.get(backend.env_path)
    if info is None or info.file.kind == "-":
        return Problem("backend .env missing", f"{backend.env_path} does not exist", "run deploy.py")
    for key, line in backend.lines:
        if key in ("REDIS_PASSWORD", "REDIS_URL") and info.keys.get(key) != (salted_sha256(salt, line),):
            kind = "WRONGPASS (backend)" if key == "REDIS_PASSWORD" else "backend URL"
            return Problem(kind, f"{backend.env_path}: {key} differs from what the server expects",
                           "run deploy.py to rewrite it, then restart the backend")
    if info.file.mode & 0o007:
        return Problem("backend .env readable", f"{backend.env_path} is mode {info.file.mode:o}",
                       f"chmod o-rwx {backend.env_path}")
    return None


def failures_since_last_run(seen: Server) -> int:
    """New auth failures since the previous run (all of them after a restart or a log reset)."""
    total = seen.acl_failures or 0
    previous = seen.acl_previous.split()
    same_server = len(previous) >= 2 and previous[0] == seen.run_id and previous[1].isdigit()
    if same_server and total >= int(previous[1]):
        return total - int(previous[1])
    return total


def findings(target: Target, state: HostState, salt: str, before: HostState | None = None) -> tuple[dict, Problem | None]:
    """What the report shows of the host, and the first problem (None: healthy).

    `before`: the prologue's read when the host was read again after changes. Failed authentications
    are counted from it: each read moves the host's counter on, so the second read would only see
    the seconds between the two (and a restart empties ACL LOG).
    """
    seen = state.server
    counted = before.server if before is not None and before.server.acl_failures is not None else seen
    found: dict = {
        "platform": target.row.name, "flavour": target.row.flavour, "version": seen.version, "aof": seen.aof,
        "uptime_seconds": seen.uptime, "keys": seen.keys,
        "checks": {"auth_ping": seen.auth.strip(), "noauth_ping": seen.noauth.strip(), "service": seen.active,
                   "backend_ping": seen.backend_ping.strip(),
                   "flushall_denied": "NOPERM" in seen.backend_flushall,
                   "config_set_denied": "NOPERM" in seen.backend_config_set},
    }
    if target.tls is not None:
        found["tls"] = {"port": target.tls.port, "via": seen.via, "only": target.tls.only,
                        "auth_clients": target.tls.auth_clients}
    problem = (server_problem(target, seen) or identity_problem(target, seen)
               or env_problem(target, state, salt))
    snapshots, stale, none_yet = schedule.age_finding(target, state)
    found.update(snapshots)
    if stale:
        report.warn(target.name, stale)
    if none_yet:
        report.note(target.name, none_yet)
    if problem is None and counted.acl_failures is not None:
        since = failures_since_last_run(counted)
        found["auth_failures_since_last_run"] = since
        found["auth_failures_logged"] = counted.acl_failures
        if since >= target.settings.auth_failure_warn:
            report.warn(target.name, f"{since} failed authentication(s) since the last run (ACL LOG): a client "
                        "has a wrong password or someone is guessing; see ACL LOG as the admin user")
    return found, problem


def record(target: Target, state: HostState, salt: str, before: HostState | None = None) -> Problem | None:
    found, problem = findings(target, state, salt, before)
    if problem is None:
        report.record(target.name, status="ok", **found)
    else:
        report.record(target.name, status="failed", failed_step="verify", kind=problem.kind,
                      problem=f"{problem.kind}: {problem.text}", fix=problem.fix, **found)
    return problem


@operation(is_idempotent=True)
def server_answers(target: Target, state: HostState, salt: str, changes: tuple = ()):
    """
    Check the server as a client sees it; fail the host (with the fix) if it is not right.

    + target: the host's Target
    + state: the prologue's state read (the verification itself when nothing changed)
    + salt: the salt of that read
    + changes: the operations of this run that may have changed the host; when one did, the
      server is read once more

    **Example:**

    .. code:: python

        server_answers(name="Verify", target=target, state=state, salt=salt, changes=(configured,))
    """
    if not run_state.is_executing:
        return
    before = None
    if any(op.did_change() for op in changes):
        before = state
        state, salt = prologue.read_state(target.settings, server_only=True)
    problem = record(target, state, salt, before)
    if problem is not None:
        yield fail_command(f"verify failed: {problem.kind}: {problem.text}. Fix: {problem.fix}")
