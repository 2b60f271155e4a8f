"""Counting failed authentications from ACL LOG, and the 'since the last run' arithmetic."""

from __future__ import annotations

import subprocess

from operations import security

# `redis-cli --csv acl log 128` (Redis 7.0.15): the whole reply on one line, every string in
# double quotes with newlines, quotes and backslashes escaped. Usernames here: one holding
# newlines and field names (25 failures), one holding `","count",7` (2), then a NOPERM entry.
ACL_LOG_CSV = (
    '"count",25,"reason","auth","context","toplevel","object","AUTH","username",'
    '"x\\nreason\\nauth\\ncount\\n999","age-seconds","0.4","client-info","id=5 cmd=auth user=default",'
    '"count",2,"reason","auth","context","toplevel","object","AUTH","username","\\",\\"count\\",7",'
    '"age-seconds","0.1","client-info","id=6 cmd=auth user=default",'
    '"count",4,"reason","command","context","multi","object","flushall","username","default",'
    '"age-seconds","1.5","client-info","id=7 cmd=flushall user=default"\n'
)
# Redis 7.2+ and Valkey add integer fields after client-info.
ACL_LOG_CSV_72 = (
    '"count",3,"reason","auth","context","toplevel","object","AUTH","username","a b",'
    '"age-seconds","0.2","client-info","id=9","entry-id",1,"timestamp-created",1795690000000,'
    '"timestamp-last-updated",1795690000100,'
    '"count",1,"reason","auth","context","toplevel","object","AUTH","username","",'
    '"age-seconds","0.3","client-info","id=8","entry-id",0,"timestamp-created",1795690000000,'
    '"timestamp-last-updated",1795690000000\n'
)


def _awk(text: str, since: int = -1) -> str:
    """`total recent entries` as the probe's awk prints them."""
    return subprocess.run(["awk", "-v", f"since={since}", security._ACL_LOG_AWK], input=text,
                          capture_output=True, text=True, check=True).stdout.strip()


def test_sums_auth_entries_only_whatever_the_usernames_say():
    assert "\\n" in ACL_LOG_CSV and ACL_LOG_CSV.count("\n") == 1
    assert _awk(ACL_LOG_CSV) == "27 0 3"
    assert _awk(ACL_LOG_CSV_72) == "4 0 2"


def test_recent_failures_are_those_in_entries_updated_since_the_last_run():
    # Ages 0.4 and 0.1 s (auth), 1.5 s (command); a margin of one second for whole-second epochs.
    assert _awk(ACL_LOG_CSV, since=2) == "27 27 3"
    assert _awk(ACL_LOG_CSV, since=1) == "27 0 3"
    assert _awk(ACL_LOG_CSV_72, since=60) == "4 4 2"


def test_empty_or_failed_log_counts_zero():
    assert _awk("") == "0 0 0"
    assert _awk("\n") == "0 0 0"
    assert _awk('ERROR,"NOPERM this user has no permissions to run the \'acl|log\' command"\n') == "0 0 0"


def test_failures_since_last_run():
    seen = {"run_id": "abc", "auth_failures": "7", "previous": "abc 3 1795690000"}
    assert security.failures_since_last_run(seen) == 4
    # Restarted server (new run id) or a reset log: everything in it is new.
    assert security.failures_since_last_run({**seen, "previous": "old 3 1795690000"}) == 7
    assert security.failures_since_last_run({**seen, "previous": "abc 9 1795690000"}) == 7
    assert security.failures_since_last_run({"run_id": "abc", "auth_failures": "2"}) == 2


def test_probe_script_reads_acl_log_as_csv():
    assert '--csv acl log "$max"' in security.security_probe_script("redis-cli", "127.0.0.1", 6379)


def test_a_full_log_counts_the_larger_of_the_difference_and_the_recent_entries():
    seen = {"run_id": "abc", "auth_failures": "9", "previous": "abc 14 1795690000", "acl_log_full": "yes",
            "auth_failures_recent": "0"}
    assert security.failures_since_last_run(seen) == 0  # old entries fell off, nothing new
    assert security.failures_since_last_run({**seen, "auth_failures_recent": "4"}) == 4
    assert security.failures_since_last_run({**seen, "auth_failures": "20"}) == 6
    assert security.failures_since_last_run({**seen, "previous": "old 14 1795690000"}) == 9


def test_probe_script_keeps_passwords_out_of_argv():
    script = security.security_probe_script("redis-cli", "127.0.0.1", 6379)
    assert 'REDISCLI_AUTH="$(cat "$auth")"' in script and 'REDISCLI_AUTH="$(cat "$backend")"' in script
    assert " -a " not in script and "--pass" not in script
