"""Counting failed authentications from ACL LOG, and the 'since the last run' arithmetic."""

from __future__ import annotations

import subprocess

from operations import security

# `redis-cli acl log` (raw, Redis 8.0.2) after 1 failure as user "count" and 6 as "default":
# field names on odd lines, values on even lines, whatever the values say.
ACL_LOG = """count
1
reason
auth
context
toplevel
object
AUTH
username
count
age-seconds
0.004
client-info
id=12 addr=127.0.0.1:53942 laddr=127.0.0.1:7001 fd=12 name= cmd=auth user=default
entry-id
1
count
6
reason
auth
context
toplevel
object
AUTH
username
reason
age-seconds
0.008
client-info
id=11 addr=127.0.0.1:53926 laddr=127.0.0.1:7001 fd=12 name= cmd=auth user=default
entry-id
0
count
4
reason
command
context
toplevel
object
flushall
username
default
"""


def _awk(text: str) -> str:
    return subprocess.run(["awk", security._ACL_LOG_AWK], input=text, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_sums_auth_entries_only_and_ignores_values_that_look_like_field_names():
    assert _awk(ACL_LOG) == "7"


def test_empty_log_counts_zero():
    assert _awk("") == "0"


def test_failures_since_last_run():
    seen = {"run_id": "abc", "auth_failures": "7", "previous": "abc 3 1795690000"}
    assert security.failures_since_last_run(seen) == 4
    # Restarted server (new run id) or a reset log: everything in it is new.
    assert security.failures_since_last_run({**seen, "previous": "old 3 1795690000"}) == 7
    assert security.failures_since_last_run({**seen, "previous": "abc 9 1795690000"}) == 7
    assert security.failures_since_last_run({"run_id": "abc", "auth_failures": "2"}) == 2


def test_probe_script_keeps_passwords_out_of_argv():
    script = security.security_probe_script("redis-cli", "127.0.0.1", 6379)
    assert 'REDISCLI_AUTH="$(cat "$auth")"' in script and 'REDISCLI_AUTH="$(cat "$backend")"' in script
    assert " -a " not in script and "--pass" not in script
