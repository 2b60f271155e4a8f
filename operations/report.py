"""The end of a run: one summary line per host, and the same facts as JSON.

One `RunReport` per pyinfra run (`of(state)`; kept on the run's State object). Verification records
what it found; a state callback notes, for hosts that fail earlier, which operation failed and the last
lines it printed (commands never carry secrets, and everything is scrubbed of the run's secrets anyway,
before and after encoding). Every failure gets a problem (the operation's own `hsi-redis: ` reason,
else the tool's first error line, e.g. apt's `E: ...`) and a fix (see `_FIXES`). When the pyinfra process exits, the summary is printed and the JSON report
written to `reports/last-run.json` in the working directory (or `$HSI_REDIS_REPORT`). pyinfra's own exit
code is non-zero when any host failed.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click
from pyinfra.api.state import BaseStateCallback, StateStage
from pyinfra.context import ContextObject, ctx_state

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Operations report why they failed on a stderr line starting with this (see shell.fail_command).
REASON_PREFIX = "hsi-redis: "
MASK = "********"
CONNECT_FIX = "check that the host is up and reachable (ssh, or the container is running)"
# A tool's own error line, by how each tool starts it; earlier patterns win (apt's `E:` says
# more than the `Err:` line of the fetch that caused it).
_TOOL_ERRORS = tuple(re.compile(p) for p in (
    r"E: ",                      # apt-get, apt-cache
    r"Error: ",                  # dnf
    r"Job for \S+ failed",       # systemctl start/restart
    r"Failed to ",               # systemctl, systemd tools
    r"dpkg: error",
    r"Err:\d*",                  # apt: a fetch that failed
    r"[\w.-]+: (cannot|can't|failed|invalid)",  # coreutils: "mv: cannot move ..."
))
# What to do: (pattern in the problem, pattern in the failed step's name, fix); the first row with a
# match wins, `_FALLBACK_FIX` else. The host program's reasons quote the tool ("apt-get update failed:
# E: Malformed ..."), so problem patterns are searched anywhere.
_FIXES = (
    (r"[Cc]ould not get lock|[Uu]nable to lock|lock stayed held", None,
     "another apt/dnf run holds the package lock: let it finish (`ps aux | grep -e apt -e dpkg -e dnf` "
     "on the host shows it), then run deploy.py again"),
    (r"apt-get update failed|E: (Malformed|The list of sources|Failed to fetch|Type |Conflicting|Invalid)|Err:",
     None,
     "fix the host's apt sources (`apt-get update` on the host shows the error; see /etc/apt/sources.list "
     "and /etc/apt/sources.list.d/), then run deploy.py again"),
    # before the package rows: SELinux ports are labelled in the install step
    (r"semanage|SELinux", None,
     "check SELinux on the host (`semanage port -l`, `ausearch -m avc`), then run deploy.py again"),
    (r"(apt-get install|dnf install|dnf module \w+) failed|E: |Error: |dpkg: ", r"^Install ",
     "run the same install on the host (`apt-get install PACKAGE` or `dnf install PACKAGE`) to see why it "
     "fails; fix that (repository, disk space, a broken package), then run deploy.py again"),
    (r"sysctl", None,
     "check the kernel settings on the host (`sysctl -p /etc/sysctl.d/60-hsi-redis.conf` shows the "
     "error), or set redis_kernel_tuning=false; then run deploy.py again"),
    (r"Job for |Failed to (start|restart)|did not answer|does not answer|rolled back", None,
     "see why the server does not start: `systemctl status SERVICE` and `journalctl -u SERVICE` on the "
     "host; fix the cause or the setting, then run deploy.py again"),
    (r"PING to \S+ as the backend", None,
     "the backend host cannot reach its server as the backend would: check that redis_backend_host resolves "
     "there to the server, that the server's firewall admits this host (redis_backend_address), and the TLS "
     "files; then run deploy.py again"),
    (r"refused|not written|cannot create|symbolic link|writable by", None,
     "check the path the problem names on the host (its owner, its directory's owner and mode, no "
     "symbolic link; the disk is neither full nor read-only); fix it, then run deploy.py again"),
    (r"packages no redis_exporter", None,
     "set redis_exporter: false for this host (an exporter you install yourself can use its own ACL user, "
     "see the README's Monitoring), then run deploy.py again"),
    (None, r"^platform$",
     "run it on a supported platform with systemd running (see the README's platform table)"),
    (None, r"^version policy$",
     "install a server that meets redis_minimum_version (redis_source=upstream), or lower "
     "redis_minimum_version; then run deploy.py again"),
)
_FALLBACK_FIX = ("do what the problem says, or read the output above (run again with -v to see each "
                 "command, -vvv its output); fix the cause on the host, then run the same command again")


def problem_in(stderr: list[str], stdout: list[str]) -> str | None:
    """What a failed operation's output says went wrong: its last `hsi-redis: ` reason, else the
    tool's first error line (stderr before stdout), else its last line; None if it printed nothing."""
    reasons = [line[len(REASON_PREFIX):] for line in stderr if line.startswith(REASON_PREFIX)]
    if reasons:
        return reasons[-1].strip()
    lines = [line.strip() for line in stderr + stdout if line.strip()]
    for pattern in _TOOL_ERRORS:
        for line in lines:
            if pattern.match(line):
                return line
    return (stderr and stderr[-1].strip()) or (lines[-1] if lines else None)


def fix_for(step: str, problem: str) -> str:
    """What the operator should do about a failure, from the step's name and the problem.

    >>> fix_for("Provision Redis for HSI | Install the server", "apt-get update failed: E: Malformed")[:28]
    "fix the host's apt sources ("
    """
    operation = step.rsplit(" | ", 1)[-1]  # "Provision Redis for HSI | Install the server": the step's own name
    for in_problem, in_step, fix in _FIXES:
        if (in_problem and re.search(in_problem, problem)) or (in_step and re.search(in_step, operation)):
            return fix
    return _FALLBACK_FIX


def report_path() -> Path:
    return Path(os.environ.get("HSI_REDIS_REPORT") or Path.cwd() / "reports" / "last-run.json")


class RunReport:
    """What a run found per host, the secrets to scrub from it, and the errors logged before connecting."""

    def __init__(self) -> None:
        self.results: dict[str, dict] = {}
        self.secrets: set[str] = set()
        self.early_errors: list[str] = []
        self.finished = False
        self.dry = False  # `pyinfra --dry`: every host is prepared, none is changed

    # -- recording ---------------------------------------------------------------------------------
    def entry(self, host_name: str) -> dict:
        return self.results.setdefault(host_name, {})

    def record(self, host_name: str, **fields) -> None:
        self.entry(host_name).update(fields)

    def _append(self, host_name: str, key: str, text: str) -> None:
        items = self.entry(host_name).setdefault(key, [])
        if text not in items:
            items.append(text)

    def warn(self, host_name: str, text: str) -> None:
        """Something the operator must act on; printed under the host's summary line."""
        self._append(host_name, "warnings", text)

    def note(self, host_name: str, text: str) -> None:
        """Something the operator should know (e.g. a step skipped on purpose)."""
        self._append(host_name, "notes", text)

    def add_secret(self, value: str) -> None:
        """Scrub this value from anything the report prints or writes."""
        if value:
            self.secrets.add(value)

    # -- scrubbing ---------------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        """`text` with every known secret, and its JSON-escaped forms, replaced by asterisks."""
        forms = set()
        for secret in self.secrets:
            forms |= {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
        for form in sorted(forms, key=len, reverse=True):  # a secret inside a longer one: the longer first
            text = text.replace(form, MASK)
        return text

    def redact_all(self, value):
        """Every string in a JSON-able structure scrubbed (before encoding: escaping cannot hide one)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact(str(k)): self.redact_all(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact_all(v) for v in value]
        return value

    def encoded(self, document: dict) -> str:
        """The JSON text: every string scrubbed before encoding, the encoded text once more."""
        return self.redact(json.dumps(self.redact_all(document), indent=2, sort_keys=True))

    # -- the end of the run ------------------------------------------------------------------------
    def connect_reason(self, host_name: str) -> str:
        marker = f"[{host_name}]"
        for message in self.early_errors:
            if marker in message:
                lines = [line.strip() for line in message.split(marker, 1)[1].splitlines() if line.strip()]
                # the command that failed, then the lines that say why (e.g. docker's error)
                why = [line for line in lines[1:] if "rror" in line or "denied" in line or "refused" in line]
                return self.redact(" | ".join(lines[:1] + why[:2])[:400] or "connection failed")
        return "no reason given (see the output above)"

    def problem_of(self, state, host) -> str:
        """Why `host` failed, as far as the run knows now (for hosts that depend on it: a backend host
        names its server's problem)."""
        if host not in state.activated_hosts:
            return f"could not connect: {self.connect_reason(host.name)}"
        entry = self.entry(host.name)
        if entry.get("_problem_from_output"):
            problem = _op_summary(state, host, self.redact)[3]
            if problem:
                return problem
        return self.redact(entry.get("problem", "failed (see the output above)"))

    def finish(self, state) -> None:
        if self.finished:
            return
        inventory = getattr(state, "inventory", None)
        if inventory is None or getattr(state, "current_stage", StateStage.Setup) < StateStage.Connect:
            return  # the run never tried to reach a host (debug-inventory, --help, a settings error...)
        self.finished = True
        # `--limit`: the hosts left out were never meant to run (they are not "unreachable")
        in_limit = getattr(state, "is_host_in_limit", lambda host: True)
        rows = [(host.name, self._host_entry(state, host)) for host in inventory if in_limit(host)]
        self._print(rows)
        path = report_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            document = {"finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                        "ok": all(entry["status"] == "ok" for _, entry in rows),
                        "hosts": dict(rows)}
            path.write_text(self.encoded(document) + "\n")
            print(f"    report: {path}", file=sys.stderr)
        except OSError as exc:
            print(f"    report not written ({path}): {exc}", file=sys.stderr)

    def _host_entry(self, state, host) -> dict:
        entry = self.entry(host.name)
        changed, names, failure, output_problem = _op_summary(state, host, self.redact)
        entry["changes"] = changed
        entry["changed_operations"] = names
        if host.name not in {h.name for h in state.activated_hosts}:
            entry.update(status="failed", failed_step="connect",
                         problem=f"could not connect: {self.connect_reason(host.name)}")
            entry.setdefault("fix", CONNECT_FIX)
        if host in state.failed_hosts or entry.get("status") == "failed":
            entry["status"] = "failed"
            entry.setdefault("problem", "failed before verification")
            if failure:
                entry.setdefault("output", failure)
            if entry.pop("_problem_from_output", False):
                if output_problem:
                    entry["problem"] = output_problem  # the tool's own words; failed_step names the step
                else:
                    entry["problem"] += " (it printed nothing; run again with -vvv to see the command)"
            step = entry.get("failed_step", "unknown")
            entry.setdefault("fix", fix_for(step, entry["problem"]))
            entry["failures"] = [{"step": step, "problem": entry["problem"],
                                  "output": entry.get("output", []), "fix": entry["fix"]}]
        elif self.dry:
            entry["status"] = "dry run"
            entry["would_change"] = _would_change(state, host)
        else:
            entry.setdefault("status", "unverified")
        if "started" in entry and "finished" in entry:
            entry["seconds"] = round(entry["finished"] - entry["started"], 2)
        entry.setdefault("failures", [])
        entry.setdefault("timings", {})
        for key in ("started", "finished", "_op_started", "_problem_from_output"):
            entry.pop(key, None)
        return self.redact_all(entry)

    def _print(self, rows: list[tuple[str, dict]]) -> None:
        width = max([len(name) for name, _ in rows] + [4])
        status_width = max([len(entry["status"]) for _, entry in rows] + [6])  # "DRY RUN" is 7
        out = sys.stderr
        print(f"\n--> hsi-redis summary ({len(rows)} host{'s' if len(rows) != 1 else ''})", file=out)
        for name, entry in rows:
            if entry["status"] == "ok" and entry.get("summary"):  # backup.py, restore.py: what they did
                detail = entry["summary"]
            elif entry["status"] == "ok" and entry.get("role") == "backend":
                detail = (f"backend of {entry.get('server', '?')}: {entry.get('env', '.env')} and its TLS files "
                          f"as the server expects, {entry['changes']} change(s)")
            elif entry["status"] == "ok":
                detail = (f"{entry.get('flavour', 'redis')} {entry.get('version', '?')}, AOF on, auth ok, "
                          f"{entry['changes']} change(s), up {entry.get('uptime_seconds', '?')}s")
                if "auth_failures_since_last_run" in entry:
                    detail += f", {entry['auth_failures_since_last_run']} auth failure(s) since the last run"
                if entry.get("exporter"):
                    detail += f", exporter redis_up {entry['exporter'].get('redis_up') or '?'}"
            elif entry["status"] == "dry run":
                would = entry.get("would_change")
                detail = ("nothing changed (--dry); " + ("would run: " + "; ".join(would) if would else
                          "nothing to do" if would is not None else "run it without -y to see what would change"))
            else:
                detail = entry.get("problem", "")
            lines = [f"    {name:<{width}}  {entry['status'].upper():<{status_width}} {detail}"]
            pad = f"    {'':<{width}}  {'':<{status_width}} "
            if entry.get("connect"):
                lines.append(f"{pad}clients: {_connect_line(entry['connect'])}")
            lines += [f"{pad}warning: {w}" for w in entry.get("warnings", [])]
            lines += [f"{pad}note: {n}" for n in entry.get("notes", [])]
            if entry["status"] != "ok" and entry.get("fix"):
                lines.append(f"{pad}fix: {entry['fix']}")
            for line in lines:
                print(self.redact(line), file=out)


def _connect_line(connect: dict) -> str:
    """Where the host's clients connect: the URL, the CA, where the password is (never the password)."""
    parts = [f"REDIS_URL={connect['redis_url']}"]
    if connect.get("ca"):
        parts.append(f"CA {connect['ca']}")
    parts.append(f"password {connect['password']}")
    return ", ".join(parts)


def _would_change(state, host) -> list[str] | None:
    """The operations a dry run prepared that would change the host (pyinfra ran their command
    generators to decide; no command ran); None when pyinfra did not look (`-y` skips it)."""
    if not getattr(state, "check_for_changes", False):
        return None
    names = []
    for op_hash, op_data in state.ops.get(host, {}).items():
        if getattr(op_data.operation_meta, "_maybe_is_change", None):
            names.append(_op_name(state, op_hash).rsplit(" | ", 1)[-1])
    return names


def _op_name(state, op_hash) -> str:
    return ", ".join(sorted(state.get_op_meta(op_hash).names))


def _op_summary(state, host, redact) -> tuple[int, list[str], list[str], str | None]:
    """Changed operation count, their names, and of a failed operation (if any) the last lines it
    printed and the problem they state (see `problem_in`)."""
    changed, names, failure, problem = 0, [], [], None
    for op_hash, op_data in state.ops.get(host, {}).items():
        meta = op_data.operation_meta
        if not meta.is_complete():
            continue
        if meta.did_change():
            changed += 1
            names.append(_op_name(state, op_hash))
        elif meta.did_error() and not failure:
            try:
                stderr, stdout = meta.stderr_lines, meta.stdout_lines
            except (AssertionError, RuntimeError):
                stderr, stdout = [], []
            failure = [redact(line) for line in (stderr or stdout)[-8:]]
            problem = problem_in([redact(line) for line in stderr], [redact(line) for line in stdout])
    return changed, names, failure, problem


class _ErrorLog(logging.Handler):
    """Keeps pyinfra's error log lines, so hosts that fail to connect get their reason."""

    def __init__(self, run: RunReport):
        super().__init__(level=logging.ERROR)
        self.run = run

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.run.early_errors.append(_ANSI.sub("", record.getMessage()))
        except Exception:  # noqa: BLE001 - a log handler must never break the run
            self.handleError(record)


class _Callbacks(BaseStateCallback):
    def __init__(self, run: RunReport):
        self.run = run

    def host_connect_error(self, state, host, error):
        self.run.record(host.name, status="failed", failed_step="connect", problem=self.run.redact(str(error)),
                        fix=CONNECT_FIX)

    def operation_host_start(self, state, host, op_hash):
        entry = self.run.entry(host.name)
        now = time.monotonic()
        entry.setdefault("started", now)
        entry.setdefault("_op_started", {})[op_hash] = now

    def operation_host_success(self, state, host, op_hash, retry_count=0):
        self._timing(state, host, op_hash)
        self.run.record(host.name, finished=time.monotonic())

    def operation_host_error(self, state, host, op_hash, retry_count=0, max_retries=0):
        self._timing(state, host, op_hash)
        entry = self.run.entry(host.name)
        entry["finished"] = time.monotonic()
        if entry.get("status") == "failed":
            return  # the step that failed already said why (verification, safety checks)
        name = _op_name(state, op_hash)
        entry.update(status="failed", failed_step=name, problem=f"{name} failed", _problem_from_output=True)

    def _timing(self, state, host, op_hash) -> None:
        """Seconds each operation took on the host (the report's `timings`)."""
        entry = self.run.entry(host.name)
        started = entry.get("_op_started", {}).pop(op_hash, None)
        if started is not None:
            entry.setdefault("timings", {})[_op_name(state, op_hash)] = round(time.monotonic() - started, 2)


_ATTRIBUTE = "_hsi_redis_report"


def of(state=None) -> RunReport:
    """The report of this run (created with the run's State, or the current one's)."""
    if state is None or isinstance(state, ContextObject):  # pyinfra's `state` proxy: the run's State
        state = ctx_state.get()
    run = getattr(state, _ATTRIBUTE, None)
    if run is None:
        run = RunReport()
        setattr(state, _ATTRIBUTE, run)
    return run


def install(state) -> RunReport:
    """Hook the report into this run (safe to call again; config.py calls it before hosts connect, so
    the summary is written even when no host connects; callbacks are re-added after `state.init`)."""
    if isinstance(state, ContextObject):
        state = ctx_state.get()
    run = of(state)
    # pyinfra keeps --dry in its CLI's parameters only (not in Config): read them while the CLI runs
    context = click.get_current_context(silent=True)
    if context is not None and context.params.get("dry"):
        run.dry = True
    logger = logging.getLogger("pyinfra")
    if not any(isinstance(h, _ErrorLog) and h.run is run for h in logger.handlers):
        logger.addHandler(_ErrorLog(run))
        atexit.register(run.finish, state)
    handlers = getattr(state, "callback_handlers", None)
    if handlers is not None and not any(isinstance(h, _Callbacks) and h.run is run for h in handlers):
        state.add_callback_handler(_Callbacks(run))
    return run


# The flows' shorthand: everything goes to the current run's one report.
def record(host_name: str, **fields) -> None:
    of().record(host_name, **fields)


def warn(host_name: str, text: str) -> None:
    of().warn(host_name, text)


def note(host_name: str, text: str) -> None:
    of().note(host_name, text)


def add_secret(value: str) -> None:
    of().add_secret(value)
