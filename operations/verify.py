"""Ask the server what a client sees, classify any failure the way an operator thinks, say the fix.

Checks, run on the host with the password read there from a root-only file:
authenticated PING is PONG, PING without a password is refused (NOAUTH), AOF is on, and
the backend's `.env` holds exactly the password the server wants. The findings go to the
run's report; a failed check fails the host (so the exit code says so).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra import state as run_state
from pyinfra.api import deploy, operation

from . import report, security, tls
from .backend_env import EnvFileKeys, env_problem, owned_lines
from .facts import CLI_AUTH_FILE, new_salt, salted_sha256
from .persistence import server_state
from .platform import Platform
from .settings import RedisSettings
from .shell import fail_command


def _has(reply: str, *needles: str) -> bool:
    return any(needle in reply for needle in needles)


def classify(seen: dict, conf: RedisSettings, plat: Platform) -> tuple[str, str, str] | None:
    """(kind, problem, fix) for the first thing wrong, or None when the server is healthy."""
    service = plat.service
    if seen.get("cli") != "present":
        return ("not installed", f"{plat.cli} is not installed",
                f"run deploy.py (not verify-only) to install {' '.join(plat.packages)}")
    auth = seen.get("auth_ping", "")
    noauth = seen.get("noauth_ping", "")
    if seen.get("service_active") != "active" or _has(auth + noauth, "Connection refused", "Could not connect"):
        return ("not running or refused",
                f"{service} is {seen.get('service_active') or 'unknown'}; nothing answers on port {conf.port}",
                f"systemctl status {service}; journalctl -u {service} -n 50; check redis_port/redis_bind")
    if noauth.strip() == "PONG":
        return ("no password required", "the server answers PING without a password",
                "requirepass is not in effect: run deploy.py again (it rewrites the config and restarts)")
    if seen.get("auth_file") != "present":
        return ("NOAUTH", f"{CLI_AUTH_FILE} is missing, so no client on the host has the password",
                "run deploy.py (not verify-only) to write it")
    if _has(auth, "WRONGPASS", "invalid password", "invalid username-password"):
        return ("WRONGPASS", "the server rejects the deployed password (it runs with another one)",
                f"run deploy.py again, or restart {service} if its config was changed by hand")
    if _has(auth, "NOAUTH"):
        return ("NOAUTH", "the server asked for a password the check could not give",
                f"check {CLI_AUTH_FILE} and run deploy.py again")
    if auth.strip() != "PONG":
        return ("unexpected reply", f"authenticated PING answered {auth.strip()!r}",
                f"journalctl -u {service} -n 50")
    if seen.get("loading") == "1":
        return ("loading", "the server is still loading its dataset", "wait, then run verify.py again")
    if seen.get("aof_enabled") != "1":
        return ("AOF off", "the server runs without AOF persistence",
                "run deploy.py again: it turns AOF on without losing data")
    return None


def _backend_env_problem(conf: RedisSettings) -> tuple[str, str, str] | None:
    if conf.backend_env_path is None:
        return None
    path = conf.backend_env_path
    salt = new_salt()
    current = host.get_fact(EnvFileKeys, path=path, keys=("REDIS_URL", "REDIS_PASSWORD"), salt=salt,
                            owner=conf.backend_env_owner or "", group=conf.backend_env_group or "")
    unsafe = env_problem(path, current, conf.backend_env_owner, conf.backend_env_group)
    if unsafe:  # a link, a directory others may change, lines python-dotenv may read otherwise
        return ("backend .env unsafe", unsafe, "fix what the message names, then run deploy.py")
    if current.get("file") is None:
        return ("backend .env missing", f"{path} does not exist", "run deploy.py")
    expected = owned_lines(conf)
    for key in ("REDIS_PASSWORD", "REDIS_URL"):
        want = salted_sha256(salt, expected[key])
        if current["keys"].get(key) != [want]:
            kind = "WRONGPASS (backend)" if key == "REDIS_PASSWORD" else "backend URL"
            return (kind, f"{path}: {key} differs from what the server expects",
                    "run deploy.py to rewrite it, then restart the backend")
    # Its owner and group may read it (the backend may read through either); others may not.
    if current["file"]["mode"] & 0o007:
        return ("backend .env readable", f"{path} is mode {current['file']['mode']:o}",
                f"chmod o-rwx {path}")
    return None


def check_host(conf: RedisSettings, plat: Platform) -> tuple[str, str, str] | None:
    """Verify one host and record what it found; returns the problem, or None."""
    seen = server_state(conf, plat)
    found = {
        "platform": plat.name,
        "flavour": plat.flavour,
        "version": seen.get("valkey_version") or seen.get("redis_version"),
        "aof": seen.get("aof_enabled") == "1",
        "uptime_seconds": int(seen.get("uptime_in_seconds") or 0),
        "keys": int(seen.get("keys") or 0),
        "checks": {
            "auth_ping": seen.get("auth_ping", "").strip(),
            "noauth_ping": seen.get("noauth_ping", "").strip(),
            "service": seen.get("service_active"),
        },
    }
    if conf.tls is not None:
        found["tls"] = {"port": conf.tls.port, "via": seen.get("via"), "only": conf.tls.only,
                        "auth_clients": conf.tls.auth_clients}
    problem = tls.tls_problem(seen, conf, plat) or classify(seen, conf, plat) or _backend_env_problem(conf)
    if problem is None:  # backend identity, least privilege, auth failures (operations/security.py)
        extra, problem = security.check(conf, plat, seen)
        found["checks"].update(extra.pop("checks"))
        found.update(extra)
    if problem is None:
        report.record(host.name, status="ok", **found)
        return None
    kind, text, fix = problem
    report.record(host.name, status="failed", failed_step="verify", kind=kind,
                  problem=f"{kind}: {text}", fix=fix, **found)
    return problem


@operation(is_idempotent=True)
def server_answers(conf: RedisSettings, plat: Platform):
    """
    Check the server as a client sees it; fail the host (with the fix) if it is not right.

    + conf: the host's settings
    + plat: the host's platform row

    Runs only when operations execute, after every change: it changes nothing itself.
    """
    if not run_state.is_executing:
        return
    problem = check_host(conf, plat)
    if problem is not None:
        kind, text, fix = problem
        yield fail_command(f"verify failed: {kind}: {text}. Fix: {fix}")


@deploy("Verify")
def verify_server(conf: RedisSettings, plat: Platform):
    server_answers(name="Verify: authenticated PING, NOAUTH without password, AOF, backend .env",
                   conf=conf, plat=plat)
