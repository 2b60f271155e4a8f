"""`install`: argument handling, the bundle written before the package, apt's lists lock, dnf streams.

Package managers are fakes on PATH that record their arguments (no packages are installed)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .conftest import bundle, run_program

FAKE_APT = r"""#!/bin/sh
echo "apt-get $*" >> "$FAKE_LOG"
[ -n "${FAKE_CHECK:-}" ] && { [ -e "$FAKE_CHECK" ] && echo "check: present" || echo "check: missing"; } >> "$FAKE_LOG"
case " $* " in
  *" update "*)
    n=$(cat "$FAKE_LOG.locks" 2>/dev/null || echo 0)
    if [ "$n" -gt 0 ]; then
      echo $((n - 1)) > "$FAKE_LOG.locks"
      echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2
      echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
      exit 100
    fi
    [ -z "${FAKE_UPDATE_ERR:-}" ] || { echo "Err:1 http://x bookworm InRelease"; echo "$FAKE_UPDATE_ERR" >&2; exit 100; }
    echo "Reading package lists...";;
  *" install "*)
    [ -z "${FAKE_INSTALL_ERR:-}" ] || { echo "Reading package lists..."; echo "$FAKE_INSTALL_ERR" >&2; exit 100; };;
esac
exit 0
"""

FAKE_DNF = r"""#!/bin/sh
echo "dnf $*" >> "$FAKE_LOG"
case "$*" in
  "-q module list --enabled redis") [ -z "${FAKE_STREAM:-}" ] || echo "redis $FAKE_STREAM [e] common [d]";;
  install*) [ -z "${FAKE_INSTALL_ERR:-}" ] || { echo "$FAKE_INSTALL_ERR" >&2; exit 1; };;
esac
exit 0
"""


@pytest.fixture
def fakes(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("apt-get", FAKE_APT), ("dnf", FAKE_DNF), ("rpm", "#!/bin/sh\nexit 1\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "pm.log"
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    stamp = tmp_path / "update-success-stamp"

    def run(*args, stdin=b"", **env):
        result = run_program("install", "--state-dir", str(state), *args, stdin=stdin,
                             env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log),
                                  "HSI_REDIS_APT_STAMP": str(stamp), **env})
        calls = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return result, calls

    run.log, run.stamp = log, stamp
    return run


def test_apt_writes_the_bundle_first_then_updates_and_installs(fakes, tmp_path):
    dropin = tmp_path / "etc" / "policy" / "drop-in.conf"
    repo = tmp_path / "etc" / "sources" / "upstream.sources"
    payload = bundle(("file", "0644", "root", "root", "unit", str(dropin), "[Service]\n"),
                     ("file", "0644", "root", "root", "repo", str(repo), "Types: deb\n"))
    r, calls = fakes("--pm", "apt", "--packages", "hsi-test-server hsi-test-tools", "--lock-timeout", "7",
                     stdin=payload, FAKE_CHECK=str(dropin), HSI_REDIS_SERVICE_CTL="/bin/true")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [f"changed={dropin}", f"changed={repo}", "updated=1",
                                  "installed=hsi-test-server hsi-test-tools"]
    assert calls[0] == "apt-get -q -o DPkg::Lock::Timeout=7 update" and calls[1] == "check: present"
    install = calls[2]
    for part in ("install -y -q --no-install-recommends", "Dpkg::Options::=--force-confdef",
                 "Dpkg::Options::=--force-confold", "DPkg::Lock::Timeout=7", "hsi-test-server hsi-test-tools"):
        assert part in install
    assert fakes.stamp.exists()


def test_apt_skips_a_fresh_update_and_installed_packages(fakes):
    fakes.stamp.touch()
    r, calls = fakes("--pm", "apt", "--packages", "hsi-test-server", "--update-max-age", "3600")
    assert r.code == 0 and len(calls) == 1 and " install " in calls[0] and r.out == "installed=hsi-test-server\n"
    os.utime(fakes.stamp, (time.time() - 7200, time.time() - 7200))
    r, calls = fakes("--pm", "apt", "--packages", "hsi-test-server", "--update-max-age", "3600")
    assert any(c.endswith(" update") for c in calls)
    r, calls = fakes("--pm", "apt", "--packages", "redis-server")  # really installed on this machine
    assert r.code == 0 and r.out == "" and calls == []


def test_apt_update_waits_while_another_process_holds_the_lock(fakes):
    Path(f"{fakes.log}.locks").write_text("1")
    r, calls = fakes("--pm", "apt", "--packages", "hsi-test-server", "--lock-timeout", "10")
    assert r.code == 0, r.err
    assert r.keys["waiting"] == "apt lists lock held by process 4242 (apt-get)" and r.keys["updated"] == "1"
    assert sum(c.endswith(" update") for c in calls) == 2


def test_apt_update_gives_up_after_the_lock_timeout(fakes):
    Path(f"{fakes.log}.locks").write_text("99")
    started = time.monotonic()
    r, calls = fakes("--pm", "apt", "--packages", "hsi-test-server", "--lock-timeout", "1")
    assert r.code == 1 and time.monotonic() - started < 8
    assert "the apt lists lock stayed held for 1 s (held by process 4242 (apt-get))" in r.err.splitlines()[-1]
    assert not any(" install " in f" {c} " for c in calls)


def test_apt_failures_report_the_tools_first_error_line(fakes):
    r, _ = fakes("--pm", "apt", "--packages", "hsi-test-server", FAKE_UPDATE_ERR="E: The repository is not signed.")
    assert r.code == 1 and r.err.strip().endswith("apt-get update failed: Err:1 http://x bookworm InRelease")
    fakes.stamp.touch()
    r, _ = fakes("--pm", "apt", "--packages", "hsi-test-server", FAKE_INSTALL_ERR="E: Unable to locate package x")
    assert r.code == 1 and r.err.strip() == "hsi-redis: apt-get install failed: E: Unable to locate package x"


def test_dnf_resets_another_stream_enables_ours_and_installs(fakes):
    r, calls = fakes("--pm", "dnf", "--packages", "redis", "--module-stream", "redis:7", FAKE_STREAM="6")
    assert r.code == 0, r.err
    assert calls == ["dnf -q module list --enabled redis", "dnf module reset -y -q redis",
                     "dnf module enable -y -q redis:7", "dnf install -y -q redis"]
    assert r.out.splitlines() == ["module=redis:7", "installed=redis"]
    r, calls = fakes("--pm", "dnf", "--packages", "redis", "--dnf-spec", "redis-7.4.*", "--module-stream", "redis:7",
                     FAKE_STREAM="7", FAKE_INSTALL_ERR="Error: Unable to find a match: redis-7.4.*")
    assert calls[-1] == "dnf install -y -q redis-7.4.*"
    assert r.code == 1 and r.err.strip() == "hsi-redis: dnf install failed: Error: Unable to find a match: redis-7.4.*"


def test_bad_arguments_are_refused_before_anything_runs(fakes):
    for args in (["--pm", "zypper"], ["--pm", "apt", "--lock-timeout", "soon"], ["--pm", "apt", "--packages"]):
        r, calls = fakes(*args)
        assert r.code == 1 and r.err.startswith("hsi-redis: ") and calls == []
