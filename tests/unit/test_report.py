"""The end-of-run report: secrets hidden in every form, and every failure with its problem and a fix.

These drive `RunReport.finish` with a small stand-in for pyinfra's state (only what the report
reads: the inventory, the stage, the hosts that connected or failed, and each operation's
result with its output lines).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import click
import pytest
from pyinfra.api.state import StateStage

from operations import report

# A secret with a JSON-escaped quote and backslash and non-ASCII letters (escaped as \u00e4...).
SECRET = "pä\"ss\\wörd-0123456789"
ADMIN = "admin-secret-0123456789"


class _Meta:
    """An operation's result as `report._op_summary` reads it."""

    def __init__(self, names, stderr=(), stdout=(), error=True):
        self.names = set(names)
        self.stderr_lines, self.stdout_lines = list(stderr), list(stdout)
        self._error = error

    def is_complete(self):
        return True

    def did_change(self):
        return False

    def did_error(self):
        return self._error


class _State:
    def __init__(self, hosts, ops=None, failed=()):
        self.inventory = hosts
        self.current_stage = StateStage.Execute
        self.activated_hosts = set(hosts)
        self.failed_hosts = {h for h in hosts if h.name in failed}
        self.ops = {h: {} for h in hosts}
        self._meta = {}
        for host, op_hash, meta in ops or ():
            self.ops[host][op_hash] = SimpleNamespace(operation_meta=meta)
            self._meta[op_hash] = meta

    def get_op_meta(self, op_hash):
        return self._meta[op_hash]


class _Host:
    def __init__(self, name):
        self.name = name


def _host(name):
    return _Host(name)


@pytest.fixture(autouse=True)
def run(monkeypatch, tmp_path) -> report.RunReport:
    """The run's one report object, knowing the run's secrets."""
    monkeypatch.setenv("HSI_REDIS_REPORT", str(tmp_path / "report.json"))
    found = report.RunReport()
    found.add_secret(SECRET)
    found.add_secret(ADMIN)
    return found


def fail(run: report.RunReport, state, host, op_hash) -> None:
    """What pyinfra calls when an operation fails on a host."""
    report._Callbacks(run).operation_host_error(state, host, op_hash)


def finish(run: report.RunReport, state, capsys) -> tuple[str, str, dict]:
    """Run the end of the report; returns (summary printed, report file text, report)."""
    run.finish(state)
    text = report.report_path().read_text()
    return capsys.readouterr().err, text, json.loads(text)


def _strings(value):
    """Every string in a decoded JSON document (keys included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def assert_hidden(summary: str, text: str, document: dict) -> None:
    for secret in (SECRET, ADMIN):
        encoded = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
        for form in {secret} | encoded:
            assert form not in text, f"{form!r} in the report file"
            assert form not in summary, f"{form!r} in the printed summary"
        assert not any(secret in s for s in _strings(document)), "a secret in the decoded report"


# -- item 6: redaction before encoding ----------------------------------------------------------

def test_secrets_with_quotes_backslashes_and_non_ascii_are_hidden_everywhere(run, capsys):
    host = _host("@docker/h1")
    run.record(host.name, status="failed", failed_step="verify", problem=f"WRONGPASS for {SECRET!s}",
                  fix=f"set the password back to {SECRET}", tls={"detail": [f"user admin {ADMIN}", SECRET]})
    run.warn(host.name, f"a warning naming {SECRET}")
    run.note(host.name, f"a note naming {ADMIN}")
    summary, text, document = finish(run, _State([host], failed={host.name}), capsys)
    assert_hidden(summary, text, document)
    entry = document["hosts"][host.name]
    assert entry["problem"] == "WRONGPASS for ********"
    assert entry["tls"]["detail"] == ["user admin ********", "********"]
    assert "warning: a warning naming ********" in summary and "note: a note naming ********" in summary
    assert "fix: set the password back to ********" in summary


def test_failed_operation_output_with_secrets_is_hidden(run, capsys):
    host = _host("@docker/h2")
    meta = _Meta(["Write /etc/hsi-redis/cli.auth (root only)"],
                 stderr=[f"cp: cannot create '/x/{SECRET}': Read-only file system"])
    state = _State([host], ops=[(host, "op1", meta)], failed={host.name})
    fail(run, state, host, "op1")
    summary, text, document = finish(run, state, capsys)
    assert_hidden(summary, text, document)
    assert document["hosts"][host.name]["problem"] == "cp: cannot create '/x/********': Read-only file system"


def test_a_secret_inside_another_is_hidden_whole(run, capsys):
    longer = ADMIN + "-and-more"
    run.add_secret(longer)
    host = _host("h3")
    run.record(host.name, status="failed", failed_step="verify", problem=f"saw {longer}")
    summary, text, document = finish(run, _State([host], failed={host.name}), capsys)
    assert document["hosts"]["h3"]["problem"] == "saw ********"
    assert "-and-more" not in text and "-and-more" not in summary


# -- item 15: a failure's problem is the tool's own error, and it comes with a fix ---------------

APT_MALFORMED = [
    "E: Malformed entry 1 in list file /etc/apt/sources.list.d/broken.list (Component)",
    "E: The list of sources could not be read.",
]
JOB_FAILED = "Job for redis-server.service failed because the control process exited with error code."
ENV = "/opt/hsi/backend/.env"
# Operations are named after the flow that runs them: "Provision Redis for HSI | Install the server".
INSTALL = "Provision Redis for HSI | Install the server"
CONFIGURE = "Provision Redis for HSI | Configure and run the server (TLS, redis.conf, service, clients)"
ROLLED_BACK = ("redis-server did not answer PING with the new config; rolled back to the last good config, which "
               "serves 3 keys (before: 3). Fix the settings and run again")


@pytest.mark.parametrize("step, stderr, stdout, problem, fix_words", [
    # the host program's reasons, which quote the tool's first error line
    (INSTALL, [f"hsi-redis: apt-get update failed: {APT_MALFORMED[0]}"], [],
     f"apt-get update failed: {APT_MALFORMED[0]}", "apt sources"),
    (INSTALL, ["hsi-redis: apt-get update failed: Err:1 http://127.0.0.1:9/x bookworm InRelease"], [],
     "apt-get update failed: Err:1 http://127.0.0.1:9/x bookworm InRelease", "apt sources"),
    (INSTALL, ["hsi-redis: apt-get install failed: E: Unable to locate package redis-server"], [],
     "apt-get install failed: E: Unable to locate package redis-server", "apt-get install"),
    (INSTALL, ["hsi-redis: dnf install failed: Error: Unable to find a match: redis-7.4.*"], [],
     "dnf install failed: Error: Unable to find a match: redis-7.4.*", "dnf"),
    (INSTALL, ["hsi-redis: dnf module enable failed: Error: Problems in request"], [],
     "dnf module enable failed: Error: Problems in request", "dnf install"),
    # an SELinux failure in the install step gets the SELinux fix, not the package one
    (INSTALL, [("hsi-redis: semanage port -a -t redis_port_t -p tcp 6380 failed: ValueError: Port tcp/6380 "
                "already defined")], [],
     "semanage port -a -t redis_port_t -p tcp 6380 failed: ValueError: Port tcp/6380 already defined",
     "semanage port -l"),
    (CONFIGURE, ["hsi-redis: sysctl -p /etc/sysctl.d/60-hsi-redis.conf failed"], [],
     "sysctl -p /etc/sysctl.d/60-hsi-redis.conf failed", "redis_kernel_tuning"),
    (CONFIGURE, ["journal: Bad directive", f"hsi-redis: {ROLLED_BACK}"], [], ROLLED_BACK, "journalctl"),
    (CONFIGURE, [f"mv: cannot move '/opt/hsi/backend/.env.hsi-Ab12' to '{ENV}': Read-only file system",
                 f"hsi-redis: {ENV}: not written"], [], f"{ENV}: not written", "disk"),
    (CONFIGURE, [f"hsi-redis: {ENV} is a symbolic link: refused (it is never followed)"], [],
     f"{ENV} is a symbolic link: refused (it is never followed)", "symbolic link"),
    # a tool's own output, when nothing says why (another deploy's operations, a connector's error)
    ("Install the server | Update apt lists", APT_MALFORMED, [], APT_MALFORMED[0], "apt sources"),
    ("Install the server | Install redis-server", ["E: Unable to locate package redis-server"],
     ["Reading package lists..."], "E: Unable to locate package redis-server", "apt-get install"),
    ("Install the server | Install redis", ["Error: Unable to find a match: redis"], [],
     "Error: Unable to find a match: redis", "dnf"),
    ("Fetch package lists (if older than an hour)",
     ["W: Some index files failed to download.", "E: Failed to fetch http://127.0.0.1:9/x/InRelease"],
     ["Err:1 http://127.0.0.1:9/x bookworm InRelease", "  Could not connect to 127.0.0.1:9"],
     "E: Failed to fetch http://127.0.0.1:9/x/InRelease", "apt sources"),
    ("Run the service | Enable and start redis-server",
     [JOB_FAILED, "See \"systemctl status redis-server.service\"."], [], JOB_FAILED, "journalctl"),
])
def test_failed_step_reports_the_tools_first_error_and_a_fix(run, capsys, step, stderr, stdout, problem,
                                                            fix_words):
    host = _host("@docker/h4")
    state = _State([host], ops=[(host, "op1", _Meta([step], stderr, stdout))], failed={host.name})
    fail(run, state, host, "op1")
    summary, _, document = finish(run, state, capsys)
    entry = document["hosts"][host.name]
    assert entry["status"] == "failed" and entry["failed_step"] == step
    assert entry["problem"] == problem
    assert fix_words in entry["fix"] and "again" in entry["fix"]
    assert entry["failures"] == [{"step": step, "problem": problem, "output": entry["output"],
                                  "fix": entry["fix"]}]
    assert f"FAILED {problem}" in summary and f"fix: {entry['fix']}" in summary


def test_the_operations_own_reason_line_wins(run, capsys):
    host = _host("h5")
    reason = "the apt lists lock stayed held for 300 s (another apt run?); try again later"
    meta = _Meta([INSTALL],
                 ["E: Could not get lock /var/lib/apt/lists/lock. It is held by process 42 (apt-get)",
                  f"hsi-redis: {reason}"])
    state = _State([host], ops=[(host, "op1", meta)], failed={host.name})
    fail(run, state, host, "op1")
    _, _, document = finish(run, state, capsys)
    entry = document["hosts"]["h5"]
    assert entry["problem"] == reason and "lock" in entry["fix"]


def test_unknown_output_and_earlier_failures_still_get_a_problem_and_a_fix(run, capsys):
    quiet, odd, early = _host("quiet"), _host("odd"), _host("early")
    ops = [(quiet, "op1", _Meta(["Do something"])),
           (odd, "op2", _Meta(["Do something else"], ["it broke", "badly"]))]
    state = _State([quiet, odd, early], ops=ops, failed={"quiet", "odd"})
    fail(run, state, quiet, "op1")
    fail(run, state, odd, "op2")
    run.record("early", status="failed", failed_step="platform", problem="ubuntu 18.04 is not supported")
    _, _, document = finish(run, state, capsys)
    hosts = document["hosts"]
    assert hosts["odd"]["problem"] == "badly"
    assert hosts["quiet"]["problem"].startswith("Do something failed")
    assert "supported platform" in hosts["early"]["fix"]
    for name in ("quiet", "odd", "early"):
        entry = hosts[name]
        assert not entry["problem"].startswith("operation failed"), entry
        assert entry["fix"] and entry["failures"][0]["fix"] == entry["fix"], entry


# -- issue 11: where clients connect; a dry run says so -------------------------------------------

def test_the_summary_says_where_clients_connect_never_the_password(run, capsys):
    host = _host("@docker/h9")
    connect = {"redis_url": "rediss://localhost:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/opt/hsi/backend/redis-tls/ca.crt",
               "ca": "/opt/hsi/backend/redis-tls/ca.crt",
               "password": "REDIS_PASSWORD in /opt/hsi/backend/.env, kept on the control machine in /s/h9/redis_password"}
    run.record(host.name, status="ok", flavour="redis", version="7.0.15", uptime_seconds=3, connect=connect,
               exporter={"metrics": "http://127.0.0.1:9121/metrics", "redis_up": "1"})
    summary, _, document = finish(run, _State([host]), capsys)
    lines = summary.splitlines()
    main = next(i for i, line in enumerate(lines) if "@docker/h9" in line)
    assert lines[main].endswith("up 3s, exporter redis_up 1")
    assert lines[main + 1].split() == [
        "clients:", f"REDIS_URL={connect['redis_url']},", "CA", "/opt/hsi/backend/redis-tls/ca.crt,", "password",
        "REDIS_PASSWORD", "in", "/opt/hsi/backend/.env,", "kept", "on", "the", "control", "machine", "in",
        "/s/h9/redis_password"]
    assert document["hosts"][host.name]["connect"] == connect


def _prepared(host, *would_change: bool, checked: bool = True) -> _State:
    """A dry run's state: operations prepared (and, without -y, whether each would change), none run."""
    metas = [SimpleNamespace(_maybe_is_change=change if checked else None, names={f"Flow | Step {i}"},
                             is_complete=lambda: False) for i, change in enumerate(would_change)]
    state = _State([host], ops=[(host, f"op{i}", meta) for i, meta in enumerate(metas)])
    state.current_stage = StateStage.Prepare
    state.check_for_changes = checked
    return state


def test_a_dry_run_labels_every_host_and_says_what_would_run(run, capsys):
    host = _host("@docker/dry")
    run.dry = True
    summary, _, document = finish(run, _prepared(host, False, True, True), capsys)
    entry = document["hosts"][host.name]
    assert entry["status"] == "dry run" and entry["would_change"] == ["Step 1", "Step 2"]
    assert "DRY RUN nothing changed (--dry); would run: Step 1; Step 2" in summary
    assert document["ok"] is False, "a dry run verified nothing"


def test_a_dry_run_that_did_not_look_for_changes_says_how_to(run, capsys):
    host = _host("@docker/dry-y")
    run.dry = True
    summary, _, document = finish(run, _prepared(host, True, checked=False), capsys)
    assert document["hosts"][host.name]["would_change"] is None
    assert "DRY RUN nothing changed (--dry); run it without -y to see what would change" in summary


def test_a_host_nothing_verified_outside_a_dry_run_stays_unverified(run, capsys):
    host = _host("@docker/quiet")
    _, _, document = finish(run, _State([host]), capsys)
    assert document["hosts"][host.name]["status"] == "unverified"


def test_install_reads_dry_from_the_cli_parameters(run):
    state = SimpleNamespace(callback_handlers=None)
    setattr(state, report._ATTRIBUTE, run)
    with click.Context(click.Command("pyinfra"), info_name="pyinfra") as context:
        context.params.update(dry=False)
        assert report.install(state).dry is False
        context.params.update(dry=True)
        assert report.install(state).dry is True


def test_hosts_left_out_by_limit_are_not_in_the_summary(run, capsys):
    ran, left_out = _host("@docker/ran"), _host("@docker/left-out")
    run.record(ran.name, status="ok", flavour="redis", version="7.0.15", uptime_seconds=3)
    state = _State([ran, left_out])
    state.activated_hosts = {ran}
    state.is_host_in_limit = lambda host: host is ran  # `pyinfra ... --limit @docker/ran`
    summary, _, document = finish(run, state, capsys)
    assert list(document["hosts"]) == ["@docker/ran"] and document["ok"] is True
    assert "left-out" not in summary and "(1 host)" in summary
