"""The end of a run: one summary line per host, and the same facts as JSON.

Verification records what it found with `record()`. A state callback notes, for hosts that
fail earlier, which operation failed and the last lines it printed (commands here never
carry secrets, and the output is scrubbed of the run's passwords anyway). When the pyinfra
process exits, the summary is printed and the JSON report is written to
`reports/last-run.json` (or `$HSI_REDIS_REPORT`), both with every known secret hidden: each
string is scrubbed before it is printed or encoded, and the encoded text once more. pyinfra's
own exit code is non-zero when any host failed.
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
        entry.update(status="failed", failed_step=name, problem=f"operation failed: {name}")


def _op_timing(state, host, op_hash) -> None:
    """Seconds each operation took on the host (the report's `timings`)."""
    entry = RESULTS.setdefault(host.name, {})
    started = entry.get("_op_started", {}).pop(op_hash, None)
    if started is not None:
        name = ", ".join(sorted(state.get_op_meta(op_hash).names))
        entry.setdefault("timings", {})[name] = round(time.monotonic() - started, 2)


def _op_summary(state, host) -> tuple[int, list[str], list[str]]:
    """Changed operation count, their names, and the output of a failed operation (if any)."""
    changed, names, failure = 0, [], []
    for op_hash, op_data in state.ops.get(host, {}).items():
        meta = op_data.operation_meta
        if not meta.is_complete():
            continue
        if meta.did_change():
            changed += 1
            names.append(", ".join(sorted(state.get_op_meta(op_hash).names)))
        elif meta.did_error() and not failure:
            try:
                failure = [redact(line) for line in (meta.stderr_lines or meta.stdout_lines)[-8:]]
            except (AssertionError, RuntimeError):
                failure = []
    return changed, names, failure


def _finish(state) -> None:
    inventory = getattr(state, "inventory", None)
    if inventory is None or getattr(state, "current_stage", StateStage.Setup) < StateStage.Connect:
        return  # the run never tried to reach a host (debug-inventory, --help, a settings error...)
    hosts = list(inventory)
    rows = []
    for host in hosts:
        entry = RESULTS.setdefault(host.name, {})
        changed, names, failure = _op_summary(state, host)
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
                reasons = [line[len(_REASON_PREFIX):] for line in failure if line.startswith(_REASON_PREFIX)]
                if reasons and entry["problem"].startswith("operation failed"):
                    entry["problem"] = reasons[-1]  # the operation's own words; failed_step names it
            entry["failures"] = [{"step": entry.get("failed_step", "unknown"), "problem": entry["problem"],
                                  "output": entry.get("output", [])}]
        else:
            entry.setdefault("status", "unverified")
        if "started" in entry and "finished" in entry:
            entry["seconds"] = round(entry["finished"] - entry["started"], 2)
        entry.setdefault("failures", [])
        entry.setdefault("timings", {})
        entry.pop("started", None)
        entry.pop("finished", None)
        entry.pop("_op_started", None)
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
