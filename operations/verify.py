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

from . import acl, clients, credentials, firewall, prologue, render, report, schedule
from .acl import ADMIN_USER
from .hoststate import HostState, Server, answered, salted_sha256
from .shell import fail_command
from .target import Target, redis_url
from .validation import memory_bytes


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
        checks.append(("FLUSHALL", "flushall", seen.backend_flushall))
    if denied & {"config", "config|set"}:
        checks.append(('CONFIG SET requirepass ""', "config|set", seen.backend_config_set))
    for shown, command, reply in checks:
        if reply.strip() == "QUEUED":
            return Problem("least privilege off", f"the backend identity may run {shown}",
                           "run deploy.py again (redis.conf's user lines deny it)")
        if not is_denial(reply, command):
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


def firewall_problem(target: Target, state: HostState) -> Problem | None:
    """The deploy's firewall rules are in force where the host manages them (see operations/firewall.py)."""
    chosen, _ = firewall.tool(target, state)
    if chosen == "nft" and state.firewall.table != firewall.mark(target.firewall):
        what = "not the one the deploy wrote" if state.firewall.table else "not loaded"
        ports = ", ".join(map(str, target.firewall.ports))
        return Problem("firewall", f"the nftables table inet hsi_redis is {what}: TCP {ports} are not filtered "
                       "as the settings say",
                       f"run deploy.py again (it loads {firewall.NFT_FILE}); `systemctl status {firewall.UNIT}`")
    if chosen == "firewalld" and not state.firewall.policy:
        return Problem("firewall", "firewalld has no policy hsi-redis loaded",
                       f"run deploy.py again; `firewall-cmd --info-policy=hsi-redis` (file {firewall.POLICY_FILE})")
    return None


# What verification compares between the running server (CONFIG GET) and redis.conf, and the setting
# that decides each (None: the deploy always writes it).
DRIFT_KEYS = {"maxmemory": "redis_maxmemory (or redis_size)", "maxmemory-policy": "redis_maxmemory_policy",
              "appendonly": None, "appendfsync": "redis_appendfsync"}


def config_says(text: str) -> dict[str, str]:
    """The DRIFT_KEYS directives of a redis.conf text, the last one of each as the server reads them."""
    found = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0].lower() in DRIFT_KEYS:
            found[words[0].lower()] = words[1]
    return found


def _same(key: str, running: str, wanted: str) -> bool:
    if key == "maxmemory":  # CONFIG GET answers bytes; the file says 100mb
        return memory_bytes(running) == memory_bytes(wanted)
    return running.lower() == wanted.lower()


def admin_cli(target: Target) -> str:
    """The CLI as the admin identity on the host, reaching the server the way the deploy's checks do (the
    password read from the root-only file on stdin: `--askpass`)."""
    words = [target.row.cli, "--user", ADMIN_USER, "--askpass"]
    if target.local_address != "127.0.0.1":
        words += ["-h", target.local_address]
    tls = target.tls
    if target.plain_port:
        words += ["-p", str(target.plain_port)] if target.plain_port != 6379 else []
    else:
        words += ["--tls", "--cacert", tls.ca, "-p", str(tls.port)]
        words += ["--cert", tls.cli_cert, "--key", tls.cli_key] if tls.mtls else []
    return " ".join(words)


def drift(target: Target, seen: Server) -> list[str]:
    """Warnings (with the fix) for each memory/persistence setting the running server holds other than
    redis.conf says: changed at run time with CONFIG SET, or a config written but not loaded."""
    service, found = target.row.service, []
    for key, wanted in config_says(render.redis_conf(target)).items():
        running = seen.conf.get(key)
        if running is None or _same(key, running, wanted):
            continue
        setting = DRIFT_KEYS[key]
        keep = f"; if {running} is what you want, set {setting} and run deploy.py" if setting else ""
        found.append(
            f"drift: the running server has {key} {running}, redis.conf says {wanted} (changed at run time with "
            f"CONFIG SET?). Fix: `{admin_cli(target)} CONFIG SET {key} {wanted} < {target.cli_auth}` on the host, or `systemctl restart {service}` (it loads redis.conf){keep}")
    return found


def exporter_problem(target: Target, state: HostState) -> Problem | None:
    """The exporter (`redis_exporter: true`) serves its page on the host and says `redis_up 1`."""
    exporter = target.exporter
    if exporter is None or state.exporter_up in ("1", "unverified"):
        return None
    unit = exporter.service
    if state.exporter_up == "0":
        return Problem("exporter not logged in",
                       f"redis_exporter on {exporter.metrics} reports redis_up 0: it cannot reach the server at "
                       f"{exporter.address} or log in as {acl.EXPORTER_USER}",
                       f"journalctl -u {unit} -n 20 says why; run deploy.py again (it rewrites "
                       f"{exporter.env_path} and restarts {unit})")
    return Problem("exporter not answering", f"nothing serves http://{exporter.metrics}/metrics on the host",
                   f"systemctl status {unit}; journalctl -u {unit} -n 20; run deploy.py again (it installs, "
                   "enables and starts it)")


def failures_since_last_run(seen: Server) -> int:
    """New auth failures since the previous run (all of them after a restart or a log reset).

    A full ACL LOG (acllog-max-len entries) drops its oldest entries as new ones come, of any reason (the
    least-privilege probe's NOPERMs too), so there the total can fall, or stand still, while failures
    happen: take the larger of the difference and the failures in entries updated since the last run.
    """
    total = seen.acl_failures or 0
    previous = seen.acl_previous.split()
    same_server = len(previous) >= 2 and previous[0] == seen.run_id and previous[1].isdigit()
    if not same_server:
        return total
    difference = total - int(previous[1])
    if seen.acl_full:
        return max(difference, seen.acl_recent)
    return difference if difference >= 0 else total


def is_denial(reply: str, command: str) -> bool:
    """A NOPERM naming `command` (`cmd|sub`) or its parent. The wording differs across versions: 6.x
    "this user has no permissions to run the 'config' command or its subcommand", 7.0 "... the
    'config|set' command", 7.2+ and Valkey "User default has no permissions to run the 'config|set'
    command"."""
    names = {command, command.split("|")[0]}
    return reply.strip().startswith("NOPERM") and any(f"'{name}'" in reply for name in names)


def connection(target: Target) -> dict:
    """Where the host's clients connect, for the summary: the backend's REDIS_URL (never with a password),
    the CA file it checks the server with, and where its password is kept."""
    settings, backend, tls = target.settings, target.backend, target.tls
    source = settings.password_source
    if source.startswith("generated"):
        origin = f"kept on the control machine in {credentials.secret_path(target.name)}"
    elif source.startswith("environment"):
        origin = "from REDIS_PASSWORD in the operator's environment (the deploy keeps no copy)"
    else:
        origin = "from the inventory's redis_password"
    if backend is not None:
        url, ca = backend.url, backend.tls_files.ca if backend.tls_files else None
        where = f"REDIS_PASSWORD in {backend.env_path}, {origin}"
    else:  # no .env written: what a client would use
        url = (redis_url(settings.backend_host, settings.port, db=settings.backend_db) if tls is None
               else redis_url(settings.backend_host, tls.port, tls=True, db=settings.backend_db))
        ca = tls.ca if tls is not None else None
        where = f"not written on the host (redis_backend_env_path is empty), {origin}"
    return {"redis_url": url, "ca": ca, "password": where}


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
        "uptime_seconds": seen.uptime, "keys": seen.keys, "connect": connection(target),
        "checks": {"auth_ping": seen.auth.strip(), "noauth_ping": seen.noauth.strip(), "service": seen.active,
                   "backend_ping": seen.backend_ping.strip(),
                   "flushall_denied": is_denial(seen.backend_flushall, "flushall"),
                   "config_set_denied": is_denial(seen.backend_config_set, "config|set")},
    }
    if target.tls is not None:
        found["tls"] = {"port": target.tls.port, "via": seen.via, "only": target.tls.only,
                        "auth_clients": target.tls.auth_clients}
    if target.exporter is not None:
        found["exporter"] = {"metrics": f"http://{target.exporter.metrics}/metrics", "redis_up": state.exporter_up}
        if state.exporter_up == "unverified":
            report.warn(target.name, f"the exporter's metrics could not be read on the host (it has neither curl, "
                        f"wget nor bash): check http://{target.exporter.metrics}/metrics yourself")
    problem = (server_problem(target, seen) or identity_problem(target, seen)
               or env_problem(target, state, salt) or firewall_problem(target, state)
               or exporter_problem(target, state))
    for warning in drift(target, seen):
        report.warn(target.name, warning)
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
    if not run_state.is_executing or not target.serves:  # a backend host: backends.backend_answers
        return
    before = None
    if any(op.did_change() for op in changes):
        before = state
        state, salt = prologue.read_state(target.settings, server_only=True)
    problem = record(target, state, salt, before)
    if problem is not None:
        yield fail_command(f"verify failed: {problem.kind}: {problem.text}. Fix: {problem.fix}")
