"""bench/compare.py's counting and judging, run for real with the local sh (no Docker needed).

The shim is what makes "remote commands per host" exact: it must log one line per `docker exec`
and per `docker cp` with the container's name (never the command text), count nothing else,
and hand every argument to the real client unchanged.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_compare", ROOT / "bench" / "compare.py")
compare = importlib.util.module_from_spec(_spec)
sys.modules["bench_compare"] = compare  # dataclasses look their module up there
_spec.loader.exec_module(compare)

# What pyinfra's @docker connector runs (pyinfra/connectors/docker.py), plus its connect-time inspect.
CALLS = [
    ["container", "inspect", "box-a"],
    ["exec", "-i", "box-a", "sh", "-c", "printf '%s\\n' \"a b\" && echo $HOME"],
    ["exec", "-it", "box-b", "sh", "-c", "true"],
    ["cp", "/tmp/tmpab12", "box-a:/etc/redis/redis.conf"],
    ["cp", "box-b:/etc/hostname", "/tmp/tmpcd34"],
    ["exec", "-i", "-e", "X=1", "box-b", "sh", "-c", "multi\nline"],
]


@pytest.fixture
def shim(tmp_path):
    """The rendered shim in front of a fake real client that records its argv (NUL-separated)."""
    real = tmp_path / "real-docker"
    real.write_text('#!/bin/sh\nfor a in "$@"; do printf \'%s\\0\' "$a"; done >> "$ARGV_LOG"\n'
                    "printf '\\n' >> \"$ARGV_LOG\"\n")
    real.chmod(0o755)
    path = tmp_path / "docker"
    path.write_text(compare.SHIM.format(real=real))
    path.chmod(0o755)
    return path


def run_calls(shim: Path, tmp_path: Path) -> str:
    """Run every call through the shim; return what it logged."""
    log = tmp_path / "bench.log"
    env = {"PATH": "/usr/bin:/bin", "HSI_BENCH_LOG": str(log), "ARGV_LOG": str(tmp_path / "argv.log")}
    for call in CALLS:
        subprocess.run([str(shim), *call], env=env, check=True)
    return log.read_text()


def test_shim_counts_exec_and_cp_per_container_and_nothing_else(shim, tmp_path):
    text = run_calls(shim, tmp_path)
    counts, other = compare.parse_log(text, ["box-a", "box-b", "box-c"])
    assert counts == [2, 3, 0]
    assert other == {"container inspect": 1}
    assert "printf" not in text and "true" not in text, "the shim must not log command text"


def test_shim_passes_every_argument_through_unchanged(shim, tmp_path):
    log, argv_log = tmp_path / "bench.log", tmp_path / "argv.log"
    env = {"PATH": "/usr/bin:/bin", "HSI_BENCH_LOG": str(log), "ARGV_LOG": str(argv_log)}
    for call in CALLS:
        argv_log.write_bytes(b"")
        subprocess.run([str(shim), *call], env=env, check=True)
        assert argv_log.read_bytes() == b"".join(a.encode() + b"\0" for a in call) + b"\n"


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck not installed")
def test_shim_is_shellcheck_clean(shim):
    result = subprocess.run(["shellcheck", "-s", "sh", str(shim)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def _run(seconds: float, counts: list[int], status: int | None = 0):
    return compare.Run(seconds, counts, status)


def test_targets_met_missed_and_not_applicable():
    rows = [
        (1, compare.FIRST, _run(9.0, [27]), _run(8.0, [17])),
        (1, compare.NOOP, _run(3.0, [17]), _run(2.0, [9])),
        (1, compare.VERIFY, _run(2.0, [1]), None),
        (10, compare.FIRST, _run(30.0, [27] * 10), _run(28.0, [17] * 10)),
        (10, compare.NOOP, _run(5.0, [2, 2, 3]), _run(10.0, [9] * 10)),
        (10, compare.VERIFY, _run(2.0, [1] * 10), None),
    ]
    lines = compare.check_targets(rows)
    noop_cmds, noop_ratio, verify_cmds, first_ratio = lines
    assert "N=1: 17 -> MISSED" in noop_cmds and "N=10: 3 -> MISSED" in noop_cmds  # the worst host counts
    assert noop_ratio.endswith("N=10: 0.50x -> met") and "N=1:" not in noop_ratio  # ratios: 10 and 20 only
    assert "N=1: 1 -> met" in verify_cmds and "N=10: 1 -> met" in verify_cmds
    assert first_ratio.endswith("N=10: 1.07x -> met")


def test_a_failed_or_timed_out_run_is_not_judged():
    rows = [
        (10, compare.FIRST, _run(30.0, [27] * 10), _run(900.0, [5] * 10, status=None)),
        (10, compare.NOOP, _run(5.0, [2] * 10, status=1), _run(10.0, [9] * 10)),
    ]
    noop_cmds, noop_ratio, verify_cmds, first_ratio = compare.check_targets(rows)
    assert noop_cmds.endswith("N=10: not measured (a run failed)")
    assert first_ratio.endswith("N=10: not measured (a run failed)")
    assert verify_cmds.endswith("not run at these host counts")
    table = "\n".join(compare.table(rows))
    assert "900.0 (timed out)" in table and "5.0 (exit 1)" in table


def test_the_markdown_report_holds_table_targets_and_conditions():
    from datetime import datetime, timezone

    rows = [(10, compare.NOOP, _run(5.0, [17] * 10), _run(10.0, [9] * 10))]
    rows[0][2].other.update({"container inspect": 10})
    now = datetime.now(timezone.utc)
    text = compare.report(rows, {10: compare.MINIMAL}, {10: (1.0, 2.5)}, "bookworm", now)
    assert "| 10 | no-op rerun | 5.0 | 10.0 | 0.50x | 17 | 9 |" in text.splitlines()
    assert ("- no-op rerun: at most 0.6x the minimal deploy's wall time at 10 and 20 hosts: "
            "N=10: 0.50x -> met") in text
    assert ("N=10: minimal ran first in the first round (then in turns); load average 1.00 before the "
            "hosts started, "
            "2.50 when timing began") in text
    assert "`docker container inspect` ran 10 time(s) in 20 host-runs" in text


def test_the_median_run_counts_and_a_failure_is_never_judged():
    runs = [compare.Run(s, [1], 0) for s in (3.0, 1.0, 2.0)]
    assert compare.median_run(runs).seconds == 2.0
    assert compare.median_run(runs[:2]).seconds == 3.0, "an even count: the upper middle"
    broken = compare.Run(0.5, [1], 1)
    assert compare.median_run([*runs, broken]) is broken
