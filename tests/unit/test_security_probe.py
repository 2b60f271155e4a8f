"""The security probe (operations/security.py) against a real local redis-server 7.0.

Least privilege must be seen as the backend identity sees it: a NOPERM reply, on every server
version (no ACL DRYRUN before 7.0). Failed authentications in ACL LOG are counted whatever the
usernames hold (newlines, spaces, quotes, backslashes, field names).
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import redis

from operations import acl, platform, report, security, settings
from operations.facts import STATE_DIR

from .local_redis import LocalHost, client, fail_auth, local_server, needs_server

PASSWORD = "b'a\"ck end#$x\\ %@"
DEBIAN_12 = platform.TABLE[("debian", "12")]["redis"]
UBUNTU_22 = platform.TABLE[("ubuntu", "22.04")]["redis"]
SERVER_SEEN = {"via": "plain"}


def _conf(**data) -> settings.RedisSettings:
    conf, problems = settings.parse("nvr-1", {"redis_password": PASSWORD, **data})
    assert not problems
    return conf


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """probe(user_lines, conf) -> (found, problem) from security.check on a local server."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "cli.auth").write_text(acl.admin_password("nvr-1").reveal())
    (state / "backend.auth").write_text(PASSWORD)
    monkeypatch.setattr(security, "host", LocalHost(rewrite=lambda s: s.replace(STATE_DIR, str(state))))
    report.RESULTS.clear()
    servers = []

    def run(user_lines, conf=None):
        if not servers:
            servers.append(local_server(tmp_path, user_lines))
            servers.append(servers[0].__enter__())
        conf = dataclasses.replace(conf or _conf(), port=servers[1])
        return security.check(conf, DEBIAN_12, SERVER_SEEN)

    def port():
        return servers[1]

    run.port = port
    yield run
    if servers:
        servers[0].__exit__(None, None, None)
    report.RESULTS.clear()


def _admin_line(extra: str = "") -> str:
    return acl.admin_user_rule(acl.admin_password("nvr-1"), DEBIAN_12) + extra


def _default_line(rules: str) -> str:
    return f"user default on {acl.password_hash(settings.Secret(PASSWORD))} ~* &* {rules}"


# --- item 4: the denial itself, as the backend identity ---

@needs_server
def test_deployed_rules_pass_because_the_backend_gets_noperm(probe):
    conf = _conf()
    found, problem = probe(acl.user_rules(conf, DEBIAN_12, acl.admin_password("nvr-1")), conf)
    assert problem is None, problem
    assert found["checks"]["flushall_denied"] is True
    assert found["checks"]["config_set_denied"] is True


@needs_server
def test_allowed_flushall_is_caught_on_a_server_without_acl_dryrun(probe):
    # The admin cannot run ACL DRYRUN (as on servers before 7.0); the backend may FLUSHALL.
    found, problem = probe([_default_line("+@all"), _admin_line(" -acl|dryrun")])
    assert problem is not None and problem[0] == "least privilege off", problem
    assert "FLUSHALL" in problem[1]
    assert found["checks"]["flushall_denied"] is False


@needs_server
def test_allowed_config_set_is_caught(probe):
    # The rules before issue 9: FLUSHALL denied, CONFIG SET allowed (it can switch auth off).
    found, problem = probe([_default_line("+@all -flushall -config|rewrite"), _admin_line()])
    assert problem is not None and problem[0] == "least privilege off", problem
    assert "CONFIG SET" in problem[1]
    assert found["checks"]["config_set_denied"] is False


@needs_server
def test_the_probe_changes_nothing_even_when_everything_is_allowed(probe):
    lines = [_default_line("+@all"), _admin_line()]
    found, problem = probe(lines)
    assert problem is not None and problem[0] == "least privilege off"
    backend = client(probe.port(), password=PASSWORD)
    backend.set("still", "here")
    probe(lines)
    assert backend.get("still") == b"here", "the probe ran FLUSHALL"
    assert backend.config_get("maxmemory")["maxmemory"] == "0", "the probe changed a setting"
    with pytest.raises(redis.AuthenticationError):
        client(probe.port()).ping()
    backend.close()


@pytest.mark.parametrize("reply", [
    "ERR unknown command 'FLUSHALL'",
    "ERR syntax error",
    "",
    "Could not connect to Redis at 127.0.0.1:6379: Connection refused",
    "NOAUTH Authentication required.",
])
def test_a_reply_that_is_not_a_denial_leaves_least_privilege_unverified(monkeypatch, reply):
    seen = {"backend_ping": "PONG", "admin": "ok", "run_id": "a" * 40, "auth_failures": "0",
            "probe1": "OK", "probe2": reply, "probe3": "NOPERM this user has no permissions to run the "
            "'config|set' command", "probe4": "OK", "flushall_dryrun": reply}

    class Stub:
        name = "@local/stub"

        def get_fact(self, *args, **kwargs):
            return dict(seen)

    monkeypatch.setattr(security, "host", Stub())
    found, problem = security.check(_conf(), DEBIAN_12, SERVER_SEEN)
    assert problem is not None and problem[0] == "least privilege unverified", problem
    assert found["checks"]["flushall_denied"] is False


@pytest.mark.parametrize("flushall, config_set", [
    # Redis 6.0 / 6.2: the parent command's name, "or its subcommand".
    ("NOPERM this user has no permissions to run the 'flushall' command or its subcommand",
     "NOPERM this user has no permissions to run the 'config' command or its subcommand"),
    # Redis 7.0.
    ("NOPERM this user has no permissions to run the 'flushall' command",
     "NOPERM this user has no permissions to run the 'config|set' command"),
    # Redis 7.2+, 8.x and Valkey.
    ("NOPERM User default has no permissions to run the 'flushall' command",
     "NOPERM User default has no permissions to run the 'config|set' command"),
])
def test_every_version_s_denial_text_is_recognised(monkeypatch, flushall, config_set):
    seen = {"backend_ping": "PONG", "admin": "ok", "run_id": "a" * 40, "auth_failures": "0",
            "probe1": "OK", "probe2": flushall, "probe3": config_set, "probe4": "OK"}

    class Stub:
        name = "@local/stub"

        def get_fact(self, *args, **kwargs):
            return dict(seen)

    monkeypatch.setattr(security, "host", Stub())
    found, problem = security.check(_conf(), DEBIAN_12, SERVER_SEEN)
    assert problem is None, problem
    assert found["checks"]["flushall_denied"] is True and found["checks"]["config_set_denied"] is True


# --- item 5: ACL LOG read as structured data ---

HOSTILE = [
    b"evil\nname",                                  # a newline
    b"x\nreason\nauth\ncount\n999",                 # lines that look like fields and values
    b"two words", b'dq"uote', b"sq'uote", b"back\\slash", b'\\"', b"a,b", b"",
    b"count", b"reason", b"auth", b"username",      # field names and values as usernames
    "ünï€ode".encode(), b"\x01\x7f\xff",             # non-ASCII and control bytes
]


@needs_server
def test_25_failures_as_a_username_with_a_newline_count_as_25(probe):
    conf = _conf()
    lines = acl.user_rules(conf, DEBIAN_12, acl.admin_password("nvr-1"))
    found, _ = probe(lines, conf)
    before = found["auth_failures_logged"]
    fail_auth(probe.port(), b"evil\nname", times=25)
    # A later failure as another such name is listed first (newest first) and shifted the
    # old line-based reading for every older entry: 26 failures were counted as 1.
    fail_auth(probe.port(), b"second\nline")
    found, problem = probe(lines, conf)
    assert problem is None, problem
    assert found["auth_failures_logged"] - before == 26
    assert found["auth_failures_since_last_run"] == 26


@needs_server
def test_hostile_usernames_are_counted_exactly(probe):
    conf = _conf()
    lines = acl.user_rules(conf, DEBIAN_12, acl.admin_password("nvr-1"))
    probe(lines, conf)
    for number, username in enumerate(HOSTILE, start=1):
        fail_auth(probe.port(), username, times=number)
    fail_auth(probe.port(), "default", times=3)  # a wrong password for the real user
    found, _ = probe(lines, conf)
    expected = sum(range(1, len(HOSTILE) + 1)) + 3
    assert found["auth_failures_since_last_run"] == expected
    assert found["auth_failures_logged"] == expected  # the probe's own NOPERM entries are not auth


def test_probe_reads_acl_log_as_csv_not_raw_lines():
    script = security.security_probe_script("redis-cli", "127.0.0.1", 6379)
    assert '--csv acl log "$max"' in script



@needs_server
def test_config_denied_whole_is_checked_too(probe):
    conf = _conf(redis_acl_denied_commands=["flushall", "config"])
    found, problem = probe([_default_line("+@all -flushall"), _admin_line()], conf)
    assert problem is not None and "CONFIG SET" in problem[1], problem


@needs_server
def test_entries_falling_off_a_full_log_are_not_new_failures(probe):
    """ACL LOG keeps `acllog-max-len` entries: new non-auth entries (the probe's own NOPERMs, a
    backend hitting a denied command) push old auth entries out. That lowers the total without
    any new failure, and must not be reported as every failure left in the log being new."""
    conf = _conf(redis_auth_failure_warn=3)
    lines = ["acllog-max-len 16", *acl.user_rules(conf, DEBIAN_12, acl.admin_password("nvr-1"))]
    probe(lines, conf)
    for number in range(16):
        fail_auth(probe.port(), f"guess-{number}")
    found, _ = probe(lines, conf)
    assert found["auth_failures_since_last_run"] >= 12  # the probe's own 2 entries pushed some out
    backend = client(probe.port(), password=PASSWORD)
    for command in (("FLUSHDB",), ("ACL", "WHOAMI"), ("MODULE", "LIST"), ("REPLICAOF", "NO", "ONE"),
                    ("SLAVEOF", "NO", "ONE")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            backend.execute_command(*command)
    backend.close()
    report.RESULTS.clear()
    found, problem = probe(lines, conf)
    assert problem is None
    assert found["auth_failures_since_last_run"] == 0, found
    assert not report.RESULTS.get(security.host.name, {}).get("warnings"), report.RESULTS
    # New failures on a full log are still seen (the entries written since the last run).
    time.sleep(2.1)  # the reading is whole seconds: entries within ~2 s of the last run may be missed
    for number in range(4):
        fail_auth(probe.port(), f"late-{number}")
    found, _ = probe(lines, conf)
    assert found["auth_failures_since_last_run"] == 4, found
