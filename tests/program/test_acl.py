"""What the state read tells about the server's users (issue 9 items 4 and 5): failed authentications in
ACL LOG counted exactly whatever the usernames hold, also once the log is full and drops old entries;
the least-privilege probe seen as the backend sees it (a NOPERM naming the command, on every version).

The program's output goes through the Python side that reads it (hoststate.parse, verify's checks)."""

from __future__ import annotations

import time

import pytest

from operations import hoststate, verify
from operations.credentials import Secret
from operations.rows import TABLE
from operations.target import resolve
from operations.validation import parse
from tests.unit.local_redis import fail_auth

from .conftest import BACKEND_PW

HOSTILE = [
    b"evil\nname",                                  # a newline
    b"x\nreason\nauth\ncount\n999",                 # lines that look like fields and values
    b"two words", b'dq"uote', b"sq'uote", b"back\\slash", b'\\"', b"a,b", b"",
    b"count", b"reason", b"auth", b"username",      # field names and values as usernames
    "ünï€ode".encode(), b"\x01\x7f\xff",             # non-ASCII and control bytes
    b'","count",7', b"\r\n", b"age-seconds",
]


def seen(host) -> hoststate.Server:
    """The server part of a state read, as the deploy reads it (and the counter moved on)."""
    r = host.run("state")
    assert r.code == 0 and "error" not in r.keys, r.out + r.err
    return hoststate.parse(r.out.splitlines()).server


def test_hostile_usernames_are_counted_exactly(host):
    seen(host)
    for number, username in enumerate(HOSTILE, start=1):
        fail_auth(host.port, username, times=number)
    fail_auth(host.port, "default", times=3)  # a wrong password for the real user
    server = seen(host)
    expected = sum(range(1, len(HOSTILE) + 1)) + 3
    assert server.acl_failures == expected  # the probe's own NOPERM entries are not auth failures
    assert verify.failures_since_last_run(server) == expected
    assert not server.acl_full
    assert verify.failures_since_last_run(seen(host)) == 0


def test_a_username_with_a_newline_does_not_shift_older_entries(host):
    """A later failure as another such name is listed first (newest first): a line-based reading shifted
    every older entry, and 26 failures were counted as 1."""
    seen(host)
    fail_auth(host.port, b"evil\nname", times=25)
    fail_auth(host.port, b"second\nline")
    server = seen(host)
    assert server.acl_failures == 26 and verify.failures_since_last_run(server) == 26


def test_entries_falling_off_a_full_log_are_not_new_failures(make_host):
    """ACL LOG keeps `acllog-max-len` entries: new non-auth entries (the probe's own NOPERMs, a backend
    hitting a denied command) push old auth entries out. That lowers the total without any new failure,
    and must not be reported as every failure left in the log being new; new failures on a full log are
    still seen (the entries updated since the last run)."""
    h = make_host(extra=["acllog-max-len 16"])
    h.start()
    seen(h)
    for number in range(16):
        fail_auth(h.port, f"guess-{number}")
    server = seen(h)
    assert server.acl_full and verify.failures_since_last_run(server) >= 12  # the probe's entries took some
    for command in ("FLUSHDB", "ACL WHOAMI", "MODULE LIST", "REPLICAOF NO ONE", "SLAVEOF NO ONE"):
        assert h.cli(*command.split(), password=BACKEND_PW, user="").startswith("NOPERM"), command
    server = seen(h)
    assert server.acl_full and server.acl_failures < 16
    assert verify.failures_since_last_run(server) == 0, server
    time.sleep(2.1)  # the reading is whole seconds: entries within ~2 s of the last run may be missed
    for number in range(4):
        fail_auth(h.port, f"late-{number}")
    server = seen(h)
    assert server.acl_recent == 4 and verify.failures_since_last_run(server) == 4, server


def test_verify_moves_the_counter_on_like_the_state_read(host):
    """The check after a run's changes moves the counter on too, so the next run counts from the end of
    this one; the run reports the count of its first read (operations/verify.py findings)."""
    seen(host)
    fail_auth(host.port, "someone", times=2)
    r = host.run("verify")
    assert r.keys["acl.failures"] == "2" and r.keys["acl.full"] == "0"
    assert verify.failures_since_last_run(seen(host)) == 0


@pytest.mark.parametrize("total, previous, full, recent, expected", [
    (7, "abc 3 1795690000", False, 0, 4),
    (7, "old 3 1795690000", False, 0, 7),   # restarted server (new run id): everything in the log is new
    (7, "abc 9 1795690000", False, 0, 7),   # a reset log
    (2, "", False, 0, 2),
    (9, "abc 14 1795690000", True, 0, 0),   # full: old entries fell off, nothing new
    (9, "abc 14 1795690000", True, 4, 4),
    (20, "abc 14 1795690000", True, 0, 6),
    (9, "old 14 1795690000", True, 0, 9),
])
def test_failures_since_last_run(total, previous, full, recent, expected):
    server = hoststate.Server(info={"run_id": "abc"}, acl_failures=total, acl_previous=previous, acl_full=full,
                              acl_recent=recent)
    assert verify.failures_since_last_run(server) == expected


# -- least privilege: the denial itself ------------------------------------------------------------

def target():
    settings, problems = parse("h", {"redis_password": "p" * 24})
    assert not problems
    return resolve(settings, TABLE[("debian", "12")]["redis"], Secret("a" * 24))


def server(flushall: str, config_set: str) -> hoststate.Server:
    return hoststate.Server(identity="hsi-admin", backend_ping="PONG", backend_flushall=flushall,
                            backend_config_set=config_set)


@pytest.mark.parametrize("reply", [
    "ERR unknown command 'FLUSHALL'",
    "ERR syntax error",
    "",
    "Could not connect to Redis at 127.0.0.1:6379: Connection refused",
    "NOAUTH Authentication required.",
    "NOPERM this user has no permissions to access one of the keys used as arguments",
    "NOPERM this user has no permissions to run the 'flushdb' command",
])
def test_a_reply_that_is_not_the_denial_leaves_least_privilege_unverified(reply):
    denied = "NOPERM this user has no permissions to run the 'config|set' command"
    problem = verify.identity_problem(target(), server(reply, denied))
    assert problem is not None and problem.kind == "least privilege unverified" and "FLUSHALL" in problem.text
    problem = verify.identity_problem(target(), server(
        "NOPERM this user has no permissions to run the 'flushall' command", reply))
    assert problem is not None and problem.kind == "least privilege unverified" and "CONFIG SET" in problem.text


def test_an_allowed_command_is_least_privilege_off(host):
    """The probe as the backend on a real server: FLUSHALL denied (NOPERM), CONFIG SET allowed there
    (QUEUED: the conftest's rules do not deny it), nothing actually run."""
    host.fill(3)
    maxmemory = host.cli("config", "get", "maxmemory")
    found = seen(host)
    assert verify.is_denial(found.backend_flushall, "flushall") and found.backend_config_set == "QUEUED"
    problem = verify.identity_problem(target(), found)
    assert problem is not None and problem.kind == "least privilege off" and "CONFIG SET" in problem.text
    assert host.dbsize() == 3 and host.cli("config", "get", "maxmemory") == maxmemory
