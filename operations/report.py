"""The end of a run: one summary line per host, and the same facts as JSON.

Verification records what it found with `record()`. A state callback notes, for hosts that
fail earlier, which operation failed and the last lines it printed (commands here never
carry secrets, and the output is scrubbed of the run's passwords anyway). Every failure gets
a problem (the operation's own `hsi-redis: ` reason, else the tool's first error line, e.g.
apt's `E: ...`) and a fix (by the step that failed, see `_FIXES`). When the pyinfra process
exits, the summary is printed and the JSON report is written to `reports/last-run.json` (or
`$HSI_REDIS_REPORT`), both with every known secret hidden: each string is scrubbed before it
is printed or encoded, and the encoded text once more. pyinfra's own exit code is non-zero
when any host failed.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from pyinfra.api.state import BaseStateCallback, StateStage

from .secrets import PROJECT_ROOT

RESULTS: dict[str, dict] = {}
_SECRETS: set[str] = set()
_installed: set[int] = set()
# Error messages pyinfra logged before deploy.py was loaded (connection failures).
_EARLY_ERRORS: list[str] = []
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Operations report why they failed on a stderr line starting with this (see shell.fail_command).
_REASON_PREFIX = "hsi-redis: "
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
# What to do: (pattern in the problem, pattern in the failed operation's name, fix); the first
# row with a match wins, `_FALLBACK_FIX` else.
_FIXES = (
    (r"[Cc]ould not get lock|[Uu]nable to lock|lock stayed held", None,
     "another apt/dnf run holds the package lock: let it finish (`ps aux | grep -e apt -e dpkg -e dnf` "
     "on the host shows it), then run deploy.py again"),
    (r"^E: (Malformed|The list of sources|Failed to fetch|Type |Conflicting|Invalid)|^Err:",
     r"apt lists|package lists",
     "fix the host's apt sources (`apt-get update` on the host shows the error; see /etc/apt/sources.list "
     "and /etc/apt/sources.list.d/), then run deploy.py again"),
    (r"^E: |^Error: |^dpkg: ", r"^Install |dnf module",
     "run the same install on the host (`apt-get install PACKAGE` or `dnf install PACKAGE`, the package "
     "is in the step's name) to see why it fails; fix that (repository, disk space, a broken package), "
     "then run deploy.py again"),
    (r"^Job for |^Failed to (start|restart)", r"[Ss]tart|[Rr]estart",
     "see why the service does not start: `systemctl status SERVICE` and `journalctl -u SERVICE` on the "
     "host (SERVICE is in the step's name); fix the cause or the setting, then run deploy.py again"),
    (None, r"^Write |[Dd]irectory",
     "check the path in the step's name on the host: its directory exists, its owner and group exist, "
     "the disk is neither full nor read-only; then run deploy.py again"),
    (None, r"SELinux|semanage",
     "check SELinux on the host (`semanage port -l`, `ausearch -m avc`), then run deploy.py again"),
    (None, r"[Kk]ernel|THP|sysctl",
     "check the kernel settings on the host (`sysctl -p /etc/sysctl.d/60-hsi-redis.conf` shows the "
     "error), or set redis_kernel_tuning=false; then run deploy.py again"),
    (None, r"^platform$",
     "run it on a supported platform with systemd running (see the README's platform table)"),
    (None, r"^version policy$",
     "install a server that meets redis_minimum_version (redis_source=upstream), or lower "
     "redis_minimum_version; then run deploy.py again"),
)
_FALLBACK_FIX = ("do what the problem says, or read the output above (run again with -v to see each "
                 "command, -vvv its output); fix the cause on the host, then run the same command again")


def report_path() -> Path:
    return Path(os.environ.get("HSI_REDIS_REPORT") or PROJECT_ROOT / "reports" / "last-run.json")


def redact(text: str) -> str:
    """`text` with every known secret, and its JSON-escaped forms, replaced by asterisks."""
    forms = set()
    for secret in _SECRETS:
        if secret:
            forms |= {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    for form in sorted(forms, key=len, reverse=True):  # a secret inside a longer one: the longer first
        text = text.replace(form, "********")
    return text


def _redacted(value):
    """A copy of a report value (dicts, lists, strings) with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {_redacted(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(item) for item in value]
    return value


def add_secret(value: str) -> None:
    """Scrub this value from anything the report prints or writes."""
    _SECRETS.add(value)


def record(host_name: str, **fields) -> None:
    RESULTS.setdefault(host_name, {}).update(fields)


def warn(host_name: str, text: str) -> None:
    """Something the operator must act on; printed under the host's summary line."""
    warnings = RESULTS.setdefault(host_name, {}).setdefault("warnings", [])
    if text not in warnings:
        warnings.append(text)


def note(host_name: str, text: str) -> None:
    """Something the operator should know (e.g. a step skipped on purpose)."""
    notes = RESULTS.setdefault(host_name, {}).setdefault("notes", [])
    if text not in notes:
        notes.append(text)


class _ErrorLog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            _EARLY_ERRORS.append(_ANSI.sub("", record.getMessage()))
        except Exception:  # noqa: BLE001 - a log handler must never break the run
            self.handleError(record)


def capture_connect_errors() -> None:
    """Keep pyinfra's error log lines, so hosts that fail to connect get their reason.

    Connections happen before deploy.py loads (and `state.init` drops callbacks added
    earlier), so `config.py`, which pyinfra loads first, calls this.
    """
    logger = logging.getLogger("pyinfra")
    if not any(isinstance(h, _ErrorLog) for h in logger.handlers):
        handler = _ErrorLog(level=logging.ERROR)
        logger.addHandler(handler)


def _connect_reason(host_name: str) -> str:
    marker = f"[{host_name}]"
    for message in _EARLY_ERRORS:
        if marker in message:
            lines = [line.strip() for line in message.split(marker, 1)[1].splitlines() if line.strip()]
            # the command that failed, then the lines that say why (e.g. docker's error)
            why = [line for line in lines[1:] if "rror" in line or "denied" in line or "refused" in line]
            return redact(" | ".join(lines[:1] + why[:2])[:400] or "connection failed")
    return "no reason given (see the output above)"


class _Callbacks(BaseStateCallback):
    @staticmethod
    def host_connect_error(state, host, error):
        record(host.name, status="failed", failed_step="connect", problem=redact(str(error)),
               fix="check that the host is up and reachable (ssh, or the container is running)")

    @staticmethod
    def operation_host_start(state, host, op_hash):
        entry = RESULTS.setdefault(host.name, {})
        now = time.monotonic()
        entry.setdefault("started", now)
        entry.setdefault("_op_started", {})[op_hash] = now

    @staticmethod
    def operation_host_success(state, host, op_hash, retry_count=0):
        _op_timing(state, host, op_hash)
        record(host.name, finished=time.monotonic())

    @staticmethod
    def operation_host_error(state, host, op_hash, retry_count=0, max_retries=0):
        _op_timing(state, host, op_hash)
        entry = RESULTS.setdefault(host.name, {})
        entry["finished"] = time.monotonic()
        if entry.get("status") == "failed":
            return  # the step that failed already said why (verification, safety checks)
        name = ", ".join(sorted(state.get_op_meta(op_hash).names))
        # `_finish` puts the operation's own words (or its tool's error line) here.
        entry.update(status="failed", failed_step=name, problem=f"{name} failed", _problem_from_output=True)


def _op_timing(state, host, op_hash) -> None:
    """Seconds each operation took on the host (the report's `timings`)."""
    entry = RESULTS.setdefault(host.name, {})
    started = entry.get("_op_started", {}).pop(op_hash, None)
    if started is not None:
        name = ", ".join(sorted(state.get_op_meta(op_hash).names))
        entry.setdefault("timings", {})[name] = round(time.monotonic() - started, 2)


def _op_summary(state, host) -> tuple[int, list[str], list[str], str | None]:
    """Changed operation count, their names, and of a failed operation (if any) the last lines
    it printed and the problem they state (see `_problem_in`)."""
    changed, names, failure, problem = 0, [], [], None
    for op_hash, op_data in state.ops.get(host, {}).items():
        meta = op_data.operation_meta
        if not meta.is_complete():
            continue
        if meta.did_change():
            changed += 1
            names.append(", ".join(sorted(state.get_op_meta(op_hash).names)))
        elif meta.did_error() and not failure:
            try:
                stderr, stdout = meta.stderr_lines, meta.stdout_lines
            except (AssertionError, RuntimeError):
                stderr, stdout = [], []
            failure = [redact(line) for line in (stderr or stdout)[-8:]]
            problem = _problem_in([redact(line) for line in stderr], [redact(line) for line in stdout])
    return changed, names, failure, problem


def _problem_in(stderr: list[str], stdout: list[str]) -> str | None:
    """What a failed operation's output says went wrong: its last `hsi-redis: ` reason, else the
    tool's first error line (stderr before stdout), else its last line; None if it printed nothing."""
    reasons = [line[len(_REASON_PREFIX):] for line in stderr if line.startswith(_REASON_PREFIX)]
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

    >>> fix_for("Update apt lists (waits for a held apt lock)", "E: Malformed entry 1 in ...")[:28]
    "fix the host's apt sources ("
    """
    operation = step.rsplit(" | ", 1)[-1]  # "Install the server | Update apt lists": the operation's own name
    for in_problem, in_step, fix in _FIXES:
        if (in_problem and re.search(in_problem, problem)) or (in_step and re.search(in_step, operation)):
            return fix
    return _FALLBACK_FIX


def _finish(state) -> None:
    inventory = getattr(state, "inventory", None)
    if inventory is None or getattr(state, "current_stage", StateStage.Setup) < StateStage.Connect:
        return  # the run never tried to reach a host (debug-inventory, --help, a settings error...)
    hosts = list(inventory)
    rows = []
    for host in hosts:
        entry = RESULTS.setdefault(host.name, {})
        changed, names, failure, output_problem = _op_summary(state, host)
        entry["changes"] = changed
        entry["changed_operations"] = names
        if host.name not in {h.name for h in state.activated_hosts}:
            entry.update(status="failed", failed_step="connect", problem=f"could not connect: "
                         f"{_connect_reason(host.name)}")
            entry.setdefault("fix", "check that the host is up and reachable (ssh, or the container "
                                    "is running)")
        if host in state.failed_hosts or entry.get("status") == "failed":
            entry["status"] = "failed"
            entry.setdefault("problem", "failed before verification")
            if failure:
                entry.setdefault("output", failure)
            if entry.get("_problem_from_output"):
                if output_problem:
                    entry["problem"] = output_problem  # the tool's own words; failed_step names the step
                else:
                    entry["problem"] += " (it printed nothing; run again with -vvv to see the command)"
            step = entry.get("failed_step", "unknown")
            entry.setdefault("fix", fix_for(step, entry["problem"]))
            entry["failures"] = [{"step": step, "problem": entry["problem"],
                                  "output": entry.get("output", []), "fix": entry["fix"]}]
        else:
            entry.setdefault("status", "unverified")
        if "started" in entry and "finished" in entry:
            entry["seconds"] = round(entry["finished"] - entry["started"], 2)
        entry.setdefault("failures", [])
        entry.setdefault("timings", {})
        entry.pop("started", None)
        entry.pop("finished", None)
        entry.pop("_op_started", None)
        entry.pop("_problem_from_output", None)
        rows.append((host.name, _redacted(entry)))

    width = max([len(name) for name, _ in rows] + [4])
    out = sys.stderr
    print(f"\n--> hsi-redis summary ({len(rows)} host{'s' if len(rows) != 1 else ''})", file=out)
    for name, entry in rows:
        status = entry["status"].upper()
        if entry["status"] == "ok":
            detail = (f"{entry.get('flavour', 'redis')} {entry.get('version', '?')}, "
                      f"AOF on, auth ok, {entry['changes']} change(s), up {entry.get('uptime_seconds', '?')}s")
            if "auth_failures_since_last_run" in entry:
                detail += f", {entry['auth_failures_since_last_run']} auth failure(s) since the last run"
        else:
            detail = entry.get("problem", "")
        print(f"    {name:<{width}}  {status:<6} {detail}", file=out)
        for warning in entry.get("warnings", []):
            print(f"    {'':<{width}}  {'':<6} warning: {warning}", file=out)
        for text in entry.get("notes", []):
            print(f"    {'':<{width}}  {'':<6} note: {text}", file=out)
        if entry["status"] != "ok" and entry.get("fix"):
            print(f"    {'':<{width}}  {'':<6} fix: {entry['fix']}", file=out)

    path = report_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "ok": all(entry["status"] == "ok" for _, entry in rows),
            "hosts": {name: entry for name, entry in rows},
        }
        # Strings were redacted before encoding; the encoded text once more, in case.
        path.write_text(redact(json.dumps(document, indent=2, sort_keys=True)) + "\n")
        print(f"    report: {path}", file=out)
    except OSError as exc:
        print(f"    report not written ({path}): {exc}", file=out)


def install(state) -> None:
    """Hook the report into this run (once per run, however many hosts load deploy.py).

    Safe to call before the hosts connect (config.py does): the summary is then written
    even when no host connects; the callbacks are (re)added once the state is initialised.
    """
    capture_connect_errors()
    if id(state) not in _installed:
        _installed.add(id(state))
        atexit.register(_finish, state)
    handlers = getattr(state, "callback_handlers", None)
    if handlers is not None and not any(isinstance(h, _Callbacks) for h in handlers):
        state.add_callback_handler(_Callbacks())


def track(state, conf) -> None:
    """Report on this run and scrub this host's secrets (its password and the admin's) from
    anything the report prints or writes. Called by every entry file, for every host."""
    from . import acl

    add_secret(conf.password.reveal())
    add_secret(acl.admin_password(conf.host_name).reveal())
    install(state)
