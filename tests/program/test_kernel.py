"""`apply --sysctl FILE --enable-units UNITS`: kernel tuning on a real machine (the deploy sends these only
outside containers). The sysctl file travels in the bundle and is applied to the running kernel after it
is written; the THP unit is enabled and started. `sysctl` is a fake on PATH that records its arguments."""

from __future__ import annotations

import os

from .conftest import bundle

FAKE_SYSCTL = r"""#!/bin/sh
echo "sysctl $* | $(cat "$3" | grep -c '=')" >> "$FAKE_LOG"
[ -z "${FAKE_FAIL:-}" ] || { echo "sysctl: permission denied on key 'vm.overcommit_memory'" >&2; exit 255; }
"""


def _fake(tmp_path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "sysctl").write_text(FAKE_SYSCTL)
    (bin_dir / "sysctl").chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(tmp_path / "sysctl.log")}


def test_the_sysctl_file_is_written_then_applied_and_the_thp_unit_started(host, tmp_path):
    env = _fake(tmp_path)
    sysctl_file = host.root / "etc" / "sysctl.d" / "60-hsi-redis.conf"
    unit = host.root / "etc" / "systemd" / "system" / "hsi-redis-thp-off.service"
    payload = bundle(("file", "0644", "root", "root", "-", str(sysctl_file),
                      "vm.overcommit_memory = 1\nnet.core.somaxconn = 511\n"),
                     ("file", "0644", "root", "root", "unit", str(unit), "[Unit]\n"))
    r = host.run("apply", "--sysctl", str(sysctl_file), "--enable-units", "hsi-redis-thp-off.service",
                 stdin=payload, env=env)
    assert r.code == 0, r.err
    assert r.out.splitlines() == [f"changed={sysctl_file}", f"changed={unit}", "kernel=applied",
                                  "enabled=hsi-redis-thp-off.service"]
    assert (tmp_path / "sysctl.log").read_text() == f"sysctl -q -p {sysctl_file} | 2\n", "after it was written"
    calls = host.calls()
    assert calls.index("daemon-reload ") < calls.index("enable hsi-redis-thp-off.service") \
        < calls.index("start hsi-redis-thp-off.service")
    assert not any(c.startswith("restart ") for c in calls), "kernel settings do not restart the server"


def test_a_kernel_that_refuses_fails_the_host_with_a_reason(host, tmp_path):
    env = {**_fake(tmp_path), "FAKE_FAIL": "1"}
    sysctl_file = host.root / "60-hsi-redis.conf"
    sysctl_file.write_text("vm.overcommit_memory = 1\n")
    r = host.run("apply", "--sysctl", str(sysctl_file), env=env)
    assert r.code == 1 and r.err.strip().splitlines()[-1] == f"hsi-redis: sysctl -p {sysctl_file} failed"
