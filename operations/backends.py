"""A backend host's steps (redis_role: backend): its files, once its server has converged, and their check.

On a backend host the deploy writes only the backend's `.env` (REDIS_URL with the server's name and port,
REDIS_PASSWORD: the server's) and the CA and client files, in one call of the host program (`write`);
nothing is installed there. Verification is from the backend's side: the files hold what the server
expects (salted hashes from the read; after a write, read once more).

Servers first. Every host of a run calls the same steps in the same order (`flows.py`); a step does
nothing on a host whose role it is not for. pyinfra orders a run's operations by where the deploy code
calls them and, by default, finishes each operation on every host before the next one starts: so a backend
host's write runs only after every server's install, firewall, configure and verification. At that point
the write asks the run how its server did (`server_verdict`): a failed server fails its backend hosts with
its reason, and nothing is written for a server that does not serve. (`--no-wait` and `--serial` give up
that order: a backend host whose server has no verdict yet fails saying so, nothing written.)
"""

from __future__ import annotations

from pyinfra import host
from pyinfra import state as run_state
from pyinfra.api import operation
from pyinfra.context import ctx_state

from . import clients, program, prologue, report, verify
from .hoststate import HostState
from .program import MergeEntry
from .shell import fail_command
from .target import Target

SERVER_FIX = "fix the server (see its line in this summary), then run deploy.py again for both hosts"
_STEPS = "_hsi_redis_steps"


def remember(step: str, operation_meta) -> None:
    """Keep the current host's operation of `step` for the other hosts of the run to look at once it ran
    (e.g. the server's rotation, for its backend hosts)."""
    steps = getattr(ctx_state.get(), _STEPS, None)
    if steps is None:
        steps = {}
        setattr(ctx_state.get(), _STEPS, steps)
    steps[(step, host.name)] = operation_meta


def recall(step: str, name: str):
    """The operation of `step` that host `name` was given in this run, or None."""
    return getattr(ctx_state.get(), _STEPS, {}).get((step, name))


def succeeded(step: str, name: str) -> bool:
    meta = recall(step, name)
    return meta is not None and meta.is_complete() and meta.did_succeed()


def server_verdict(name: str) -> tuple[str, str]:
    """How the run's server `name` did so far: (`ok` | `failed` | `pending` | `absent`, why).

    `absent`: not part of this run (`--limit`); `pending`: part of it, but not verified yet."""
    state = ctx_state.get()
    server = state.inventory.get_host(name, None)
    if server is None or not state.is_host_in_limit(server):
        return "absent", f"{name} is not part of this run"
    run = report.of(state)
    if server in state.failed_hosts or run.entry(name).get("status") == "failed":
        return "failed", run.problem_of(state, server)
    if run.entry(name).get("status") == "ok":
        return "ok", ""
    return "pending", (f"{name} has not been verified yet in this run (--serial or --no-wait run hosts in their "
                       "own order): run without them, so that servers converge first")


def _fail(target: Target, problem: str, fix: str):
    report.record(host.name, status="failed", failed_step="server", problem=problem, fix=fix)
    return fail_command(problem)


def _server_ready(target: Target):
    """None when the server converged (or is not part of this run: noted); else the failing command."""
    verdict, why = server_verdict(target.server_name)
    if verdict in ("failed", "pending"):
        return _fail(target, f"server {target.server_name} failed: {why}" if verdict == "failed" else why,
                     SERVER_FIX)
    if verdict == "absent":
        report.note(host.name, f"{why}: the files follow its settings; run it too to be sure it serves them")
    return None


@operation()
def backend_files(target: Target, state: HostState, salt: str):
    """
    On a backend host, once its server converged: merge the backend `.env`, write the CA and client files.

    + target: the host's Target (a server's own backend files go with its configuration: nothing here)
    + state: the host's state read (prologue)
    + salt: the salt of that read

    **Example:**

    .. code:: python

        backend_files(name="Write the backend's files", target=target, state=state, salt=salt)
    """
    if target.serves:
        host.noop("the backend's files on a server's host are written with its configuration")
        return
    if run_state.is_executing:
        failing = _server_ready(target)
        if failing is not None:
            yield failing
            return
    if target.verify_only:
        host.noop("verify only: nothing is written")
        return
    entries = clients.entries(target, state, salt)  # unsafe paths are held back (verification names them)
    if not entries:
        host.noop(f"{target.backend.env_path} and its TLS files hold what {target.server_name} expects")
        return
    yield program.command("write", stdin=program.bundle(entries))


def tls_problem(target: Target, state: HostState, salt: str) -> verify.Problem | None:
    """A CA or client file that is missing or differs (the backend could not connect over TLS)."""
    for entry in clients.tls_entries(target, state):
        if state.differs(salt, entry):
            return verify.Problem("backend TLS files", f"{entry.path} is missing or differs from {target.server_name}'s",
                                  "run deploy.py to write it")
    return None


def findings(target: Target, state: HostState, salt: str) -> tuple[dict, verify.Problem | None]:
    backend = target.backend
    found = {"role": "backend", "server": target.server_name, "env": backend.env_path, "url": backend.url}
    return found, verify.env_problem(target, state, salt) or tls_problem(target, state, salt)


@operation()
def backend_ping(target: Target, state: HostState, salt: str, changes: tuple = ()):
    """
    On a backend host whose files this run wrote: PING its server as the backend does (its address and
    port, TLS with its CA and client files, its password on stdin), where the host has redis-cli or
    valkey-cli (it usually has none: the summary says so). A run that wrote nothing pings nothing.

    + target: the host's Target (a server's host: nothing here)
    + state: the prologue's state read
    + salt: the salt of that read
    + changes: this run's operations that may have written the backend's files

    **Example:**

    .. code:: python

        backend_ping(name="PING from the backend host", target=target, state=state, salt=salt)
    """
    if target.serves or not run_state.is_executing or report.of().entry(host.name).get("status") != "ok":
        return
    if not any(op.did_change() for op in changes):
        return  # nothing new: the read was the verification
    backend = target.backend
    if not state.client_cli:
        report.note(host.name, f"no redis-cli or valkey-cli on this host: the connection to "
                    f"{backend.host}:{backend.port} was not tried from here")
        return
    options: dict = {"addr": backend.host, "port": backend.port}
    if backend.tls_files is not None:
        options["ca"] = backend.tls_files.ca
        if backend.tls.mtls:
            options.update(cert=backend.tls_files.cert, key=backend.tls_files.key)
    report.record(host.name, ping_from_backend_host=f"{backend.host}:{backend.port}")
    yield program.command("ping", *program.options(**options),
                          stdin=program.bundle([], password=target.password.reveal()))


@operation(is_idempotent=True)
def backend_answers(target: Target, state: HostState, salt: str, changes: tuple = ()):
    """
    On a backend host: check that its `.env` and TLS files hold what its server expects.

    + target: the host's Target (a server's host is verified by `verify.server_answers`)
    + state: the prologue's state read (the verification itself when nothing changed)
    + salt: the salt of that read
    + changes: this run's operations that may have written the files; when one did, read them again

    **Example:**

    .. code:: python

        backend_answers(name="Verify the backend's files", target=target, state=state, salt=salt)
    """
    if target.serves or not run_state.is_executing:
        return
    if report.of().entry(host.name).get("status") == "failed":
        return  # its server failed: already said
    failing = _server_ready(target)
    if failing is not None:  # verify.py: a server that does not serve fails its backends
        yield failing
        return
    if any(op.did_change() for op in changes):
        state, salt = prologue.read_state(target.settings, server_only=True)
    found, problem = findings(target, state, salt)
    if problem is None:
        report.record(host.name, status="ok", **found)
        return
    report.record(host.name, status="failed", failed_step="verify", kind=problem.kind,
                  problem=f"{problem.kind}: {problem.text}", fix=problem.fix, **found)
    yield fail_command(f"verify failed: {problem.kind}: {problem.text}. Fix: {problem.fix}")


# -- rotation (rotate.py): the server adds the new password, then its backend hosts get it, then the
# server drops the old one (operations/rotation.py)

def _rotation_unfinished(server: str) -> bool:
    """Whether the server's rotation step of this run left two passwords valid (added now, or kept)."""
    meta = recall("rotate", server)
    lines = meta.stdout_lines if meta is not None and meta.is_complete() else []
    return any(line.strip() in ("added=1", "kept_old=1") for line in lines)


def _server_rotated(target: Target):
    """None when the server's rotation step ran in this run and succeeded; else the failing command."""
    server = target.server_name
    verdict, why = server_verdict(server)
    if verdict == "absent":
        return _fail(target, f"{why}: rotate.py must run on it too (its server accepts the new password only "
                     "then); nothing was written", f"run rotate.py for {server} and this host together")
    if verdict == "failed":
        return _fail(target, f"server {server} failed: {why}", SERVER_FIX.replace("deploy.py", "rotate.py"))
    if not succeeded("rotate", server):
        return _fail(target, f"server {server} has not rotated yet in this run (--serial or --no-wait run hosts "
                     "in their own order): run without them", "run rotate.py again without --serial/--no-wait")
    return None


@operation()
def rotate_backend(target: Target, state: HostState, salt: str):
    """
    On a backend host, once its server accepts the new password: the `.env` gets it; the backend's unit
    (redis_backend_unit) is restarted while the rotation is unfinished.

    + target: the backend host's Target with the NEW password (a server's host: nothing here)
    + state: the prologue's state read
    + salt: the salt of that read

    **Example:**

    .. code:: python

        rotate_backend(name="Backend host: the new password", target=new, state=state, salt=salt)
    """
    if target.serves:
        host.noop("a server's own consumers are rotated with it")
        return
    if not run_state.is_executing:
        return
    failing = _server_rotated(target)
    if failing is not None:
        yield failing
        return
    unit = target.settings.backend_unit
    writes = clients.env_differs(target, state, salt)
    if clients.env_problem(target, state) is not None:
        writes = False  # refused from the read: verification names the setting
    # the server's step says whether this rotation is still open: a backend that already has the new
    # password in its .env may still run with the old one (a run cut before its restart)
    restart = bool(unit) and (writes or _rotation_unfinished(target.server_name))
    # what the server's drop step (rotation.py) needs to know of this host
    report.record(host.name, rotation="restarted" if restart or (unit and not writes) else
                  ("written" if writes else "held"))
    entries = [MergeEntry(target.backend.env_path, target.backend.lines, target.backend.owner,
                          target.backend.group)] if writes else []
    if not entries and not restart:
        host.noop(f"{target.backend.env_path} holds the new password")
        return
    yield program.command("write", *program.options(restart_units=unit if restart else None),
                          stdin=program.bundle(entries))


def backend_rotation(name: str) -> str:
    """What backend host `name`'s rotation step of this run did: `restarted` (its unit, or it runs with the
    new password already), `held` (its .env already held it; no unit), `written` (written now, no unit:
    to be restarted by hand), or `missing` (the step did not run or failed)."""
    if not succeeded("rotate-backend", name):
        return "missing"
    return report.of().entry(name).get("rotation", "missing")
