"""Benchmark: provision N Debian 12 test hosts, then re-run; print wall time and remote commands.

    .venv/bin/python bench/provision.py              # N = 1 and 5
    .venv/bin/python bench/provision.py --hosts 3

Remote commands are counted exactly: a `docker` shim first on PATH logs every
`docker exec` / `docker cp` the @docker connector runs (one per fact or command) and hands
the call to the real client. Not part of the test suite; it prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hosts import build, fleet  # noqa: E402

SHIM = """#!/bin/sh
case "$1" in exec|cp) printf '%s\\n' "$*" >> "$HSI_BENCH_LOG" ;; esac
exec {real} "$@"
"""


def run(hosts: list[str], workdir: Path, label: str) -> tuple[float, dict[str, int], int]:
    log = workdir / f"{label}.log"
    log.write_text("")
    env = dict(os.environ, HSI_BENCH_LOG=str(log), PATH=f"{workdir}:{os.environ['PATH']}",
               HSI_REDIS_SECRETS_DIR=str(workdir / "secrets"), HSI_REDIS_REPORT=str(workdir / f"{label}.json"))
    inventory = workdir / "inventory.py"
    inventory.write_text("bench = " + repr([f"@docker/{h}" for h in hosts]) + "\n")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pyinfra", "-y", str(inventory), "deploy.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    counts = collections.Counter()
    for line in log.read_text().splitlines():
        for host in hosts:
            if f" {host} " in f" {line} " or f" {host}:" in line:
                counts[host] += 1
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
    return elapsed, dict(counts), proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--suite", default="bookworm")
    args = parser.parse_args()
    build.build_host(args.suite)
    real = shutil.which("docker")
    rows = []
    with tempfile.TemporaryDirectory(prefix="hsi-bench-") as tmp:
        workdir = Path(tmp)
        shim = workdir / "docker"
        shim.write_text(SHIM.format(real=real))
        shim.chmod(0o755)
        for count in args.hosts:
            names = [f"hsi-bench-{count}-{i}" for i in range(count)]
            try:
                for name in names:
                    fleet.start_host(name, args.suite, labels={"hsi-redis.bench": "1"})
                for label in ("first run", "re-run"):
                    elapsed, counts, status = run(names, workdir, f"{count}-{label.replace(' ', '-')}")
                    per_host = [counts.get(n, 0) for n in names]
                    rows.append((count, label, elapsed, min(per_host), max(per_host), status))
            finally:
                fleet.remove_hosts(*names)
    print(f"\n{'hosts':>5}  {'run':<9}  {'wall s':>7}  {'cmds/host min':>13}  {'max':>4}  exit")
    for count, label, elapsed, low, high, status in rows:
        print(f"{count:>5}  {label:<9}  {elapsed:>7.1f}  {low:>13}  {high:>4}  {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
