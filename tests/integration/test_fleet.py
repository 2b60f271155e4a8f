"""Fleet faults in one run of five hosts: one is gone (its container was removed), one has
its package manager locked while the run reaches it. The locked one waits and converges, as do
the other three; the summary and the JSON report name the missing host and why; exit non-zero."""

from __future__ import annotations

import subprocess
import threading
import time

from tests.hosts import fleet

from .conftest import generated_password

HOLD_LIMIT_SECONDS = 120
# Hold apt's real (fcntl) locks, as a running apt/unattended-upgrades would; `flock` would not
# block apt. perl is part of every Debian install. Marks when all three are held, and lets go
# when told (or after the limit).
HOLD_APT_LOCKS = (
    "perl -MFcntl -e 'for my $f (@ARGV) { open(my $h, \">>\", $f) or die; push @h, $h; "
    "my $l = pack(\"ssx4qqix4\", F_WRLCK, 0, 0, 0, 0); fcntl($h, F_SETLKW, $l) or die \"$f: $!\"; } "
    "open(my $m, \">\", \"/run/hsi-test-locked\"); close $m; my $end = time + "
    f"{HOLD_LIMIT_SECONDS}; "
    "until (-e \"/run/hsi-test-release\" or time > $end) { select(undef, undef, undef, 0.1) }' "
    "/var/lib/dpkg/lock-frontend /var/lib/apt/lists/lock /var/lib/dpkg/lock"
)
WAIT_WHILE_LOCKED = 4


def test_one_missing_host_does_not_stop_the_others(host_factory, run_pyinfra):
    good = [host_factory(f"fleet-{i}") for i in range(4)]
    gone = host_factory("fleet-gone")
    fleet.remove_hosts(gone.container)  # unknown to Docker now: connecting fails

    locked = good[0]
    subprocess.run(["docker", "exec", "-d", locked.container, "sh", "-c", HOLD_APT_LOCKS], check=True)
    deadline = time.monotonic() + 10
    while locked.sh("test -e /run/hsi-test-locked", check=False).returncode != 0:
        assert time.monotonic() < deadline, "the apt locks were not taken"
        time.sleep(0.2)

    # Run the fleet; once the locked host's apt update is seen running, keep the lock a few
    # seconds more, then let go.
    outcome = {}
    run = threading.Thread(target=lambda: outcome.update(result=run_pyinfra([*good, gone])))
    run.start()
    seen_waiting = None
    while run.is_alive() and seen_waiting is None:
        # the update operation's shell (the bracket keeps pgrep from matching its own shell)
        if locked.sh("pgrep -f '[D]Pkg::Lock::Timeout=[0-9]* update'", check=False).returncode == 0:
            seen_waiting = time.monotonic()
        time.sleep(0.2)
    time.sleep(WAIT_WHILE_LOCKED)
    locked.sh("touch /run/hsi-test-release")
    run.join(600)
    result = outcome["result"]
    assert result.returncode != 0, result.output

    missing = result.host(gone)
    assert missing["status"] == "failed"
    assert missing["failed_step"] == "connect"
    assert "could not connect" in missing["problem"] and gone.container in missing["problem"]
    assert missing["failures"][0]["step"] == "connect"
    assert result.report["ok"] is False
    summary = result.output.split("hsi-redis summary", 1)[1]
    assert f"{gone.inventory_name}  FAILED could not connect" in summary

    for host in good:
        entry = result.host(host)
        assert entry["status"] == "ok", (host, entry)
        assert entry["platform"] == "debian-12" and entry["version"].startswith("7.")
        assert entry["checks"]["auth_ping"] == "PONG" and entry["changes"] > 0
        assert entry["timings"] and entry["failures"] == []
        assert host.redis_cli("ping", password=generated_password(run_pyinfra, host)) == "PONG"

    # the locked host's apt-get ran into the held lock, waited it out, and went on
    assert seen_waiting is not None, "the apt update never ran while the lock was held"
    waited = result.host(locked)["timings"]["Provision Redis for HSI | Install the server"]
    assert waited >= WAIT_WHILE_LOCKED - 1, result.host(locked)["timings"]
    assert locked.sh("pgrep -x perl", check=False).returncode == 1, "the lock holder should be gone"


def test_broken_apt_sources_report_apts_own_error_and_a_fix(host_factory, run_pyinfra):
    """A host whose apt sources are broken fails at the apt step; the report names that step, gives
    apt's own first error as the problem and says what to do (issue 9, item 15)."""
    host = host_factory("fleet-broken-apt")
    # A malformed line (no suite): apt refuses it at once, no network needed.
    host.sh("echo 'deb http://127.0.0.1:9/nothing' > /etc/apt/sources.list.d/broken.list")
    result = run_pyinfra([host])
    assert result.returncode != 0, result.output
    entry = result.host(host)
    assert entry["status"] == "failed", entry
    assert entry["failed_step"].endswith("Install the server"), entry
    # the host program's reason quotes apt's own first error
    assert "E: Malformed entry 1 in list file /etc/apt/sources.list.d/broken.list" in entry["problem"], entry
    assert "apt sources" in entry["fix"] and "deploy.py again" in entry["fix"], entry
    assert entry["failures"] == [{"step": entry["failed_step"], "problem": entry["problem"],
                                  "output": entry["output"], "fix": entry["fix"]}]
    assert any("E: Malformed entry" in line for line in entry["output"]), entry["output"]
    summary = result.output.split("hsi-redis summary", 1)[1]
    assert f"{host.inventory_name}  FAILED apt-get update failed: E: Malformed entry 1" in summary, summary
    assert f"fix: {entry['fix']}" in summary, summary
    assert host.sh("command -v redis-server", check=False).returncode != 0, "nothing is installed"
