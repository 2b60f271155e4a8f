"""Fleet faults in one run of five hosts: one is gone (its container was removed), one has
its package manager locked for a few seconds. The locked one waits and converges, as do the
other three; the summary and the JSON report name the missing host and why; exit non-zero."""

from __future__ import annotations

import subprocess
import time

from tests.hosts import fleet

from .conftest import generated_password

LOCK_SECONDS = 10
# Hold apt's real (fcntl) locks, as a running apt/unattended-upgrades would; `flock` would not
# block apt. perl is part of every Debian install. Writes a marker once all three are held.
HOLD_APT_LOCKS = (
    "perl -MFcntl -e 'for my $f (@ARGV) { open(my $h, \">>\", $f) or die; push @h, $h; "
    "my $l = pack(\"ssx4qqix4\", F_WRLCK, 0, 0, 0, 0); fcntl($h, F_SETLKW, $l) or die \"$f: $!\"; } "
    f"open(my $m, \">\", \"/run/hsi-test-locked\"); close $m; sleep {LOCK_SECONDS}' "
    "/var/lib/dpkg/lock-frontend /var/lib/apt/lists/lock /var/lib/dpkg/lock"
)


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
    locked_at = time.monotonic()

    result = run_pyinfra([*good, gone])
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

    # the locked host waited for apt rather than failing: its update ran after the lock went
    waited = result.host(locked)["timings"]["Install the server | Update apt lists (waits for a held apt lock)"]
    assert waited >= 1.0, result.host(locked)["timings"]
    assert time.monotonic() - locked_at > LOCK_SECONDS
    assert locked.sh("pgrep -x perl", check=False).returncode == 1, "the lock holder should be gone"
