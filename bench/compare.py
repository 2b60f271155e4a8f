"""Benchmark: hsi-redis against a minimal 5-operation pyinfra deploy, side by side on fresh hosts.

    .venv/bin/python bench/compare.py                       # N = 1, 10 and 20 (what `make bench` runs)
    .venv/bin/python bench/compare.py --hosts 1 2           # a quick look
    .venv/bin/python bench/compare.py --hosts 10 --keep     # leave the hosts up afterwards

For each N it starts 2N fresh Debian 12 systemd test hosts (N for hsi-redis, N for
bench/minimal_deploy.py), then, one deploy after the other so they never share the cores, times
first converge (deploy.py / minimal_deploy.py), no-op reruns of each, and verify.py (hsi-redis
only). Everything repeats (--repeats, 3 by default) and the run of median wall time counts, so one
run slowed by the machine (containers still settling, another process) does not decide a ratio:
each round starts 2N fresh hosts for the first converges, the last round also times the no-op
reruns and verify.py that many times. The two deploys take turns going first (printed). Every
host gets the same preparation before any timing: a `PrivateUsers=false` drop-in for
redis-server, the container quirk that hsi-redis handles itself and the minimal deploy does not
(it could not start Redis in a container otherwise).

Remote commands are counted exactly: a `docker` shim first on PATH logs, per container, every
`docker exec` (one per command or fact) and `docker cp` (one per upload or download) that
pyinfra's @docker connector runs, then hands the call to the real client. The connector's one
`docker container inspect` per host at connect time is local bookkeeping and is not counted (it
is listed in the notes). Wall time is the whole pyinfra process, start to exit.

It prints a table and the issue's targets (met or missed) and writes both as markdown to --out.
It is not a test: a missed target or a failed run never changes its exit code, which is non-zero
only when the benchmark itself could not run (no hosts, bad arguments).
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))

from tests.hosts import build, fleet  # noqa: E402

HSI = "hsi-redis"
MINIMAL = "minimal"
FIRST, NOOP, VERIFY = "first converge", "no-op rerun", "verify.py"

# Logs the container of each remote command, never the command itself (it may carry data).
# pyinfra's connector runs `docker exec -i|-it CONTAINER sh -c ...` and `docker cp SRC DST`
# with CONTAINER:PATH on one side; anything else is logged as `other SUBCOMMAND...`.
SHIM = """#!/bin/sh
container() {{
    while [ $# -gt 0 ]; do
        case "$1" in
            -e|-u|-w|--env|--env-file|--user|--workdir) shift 2 ;;
            -*) shift ;;
            *) printf '%s' "$1"; return ;;
        esac
    done
}}
case "$1" in
    exec) shift; printf 'exec %s\\n' "$(container "$@")" >> "$HSI_BENCH_LOG"; set -- exec "$@" ;;
    cp)
        for arg in "$2" "$3"; do
            case "$arg" in *:*) printf 'cp %s\\n' "${{arg%%:*}}" >> "$HSI_BENCH_LOG" ;; esac
        done ;;
    *) printf 'other %s %s\\n' "$1" "$2" >> "$HSI_BENCH_LOG" ;;
esac
exec {real} "$@"
"""

# The one host preparation both sides get (see the module docstring).
DROPIN_DIR = "/etc/systemd/system/redis-server.service.d"
PREPARE = (f"mkdir -p {DROPIN_DIR} && "
           f"printf '[Service]\\nPrivateUsers=false\\n' > {DROPIN_DIR}/00-bench-container.conf && "
           "systemctl daemon-reload")

# (run, what, limit, host counts it applies to; None = all) -- from issue 10.
TARGETS = (
    (NOOP, "cmds", 2, None),
    (NOOP, "ratio", 0.6, (10, 20)),
    (VERIFY, "cmds", 1, None),
    (FIRST, "ratio", 1.1, (10, 20)),
)


@dataclass
class Run:
    """One pyinfra run: wall seconds, remote commands per host, exit code (None: timed out)."""

    seconds: float
    counts: list[int]
    status: int | None
    other: collections.Counter = field(default_factory=collections.Counter)

    @property
    def ok(self) -> bool:
        return self.status == 0


def parse_log(text: str, hosts: list[str]) -> tuple[list[int], collections.Counter]:
    """Remote commands per host (in `hosts` order) and the other docker subcommands seen."""
    counts = collections.Counter()
    other = collections.Counter()
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind in ("exec", "cp"):
            counts[rest] += 1
        elif kind == "other":
            other[rest.strip()] += 1
    return [counts.get(h, 0) for h in hosts], other


def run_bounded(cmd: list[str], cwd: Path, env: dict, timeout: float, output: Path) -> int | None:
    """Run cmd in its own process group, output to a file; kill the group on timeout or interrupt."""
    with output.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run_pyinfra(kind: str, deploy: str, hosts: list[str], workdir: Path, label: str, timeout: float,
                password: str) -> Run:
    """One timed pyinfra run of `deploy` against `hosts`; its output goes to workdir/label.out."""
    log = workdir / f"{label}.log"
    log.write_text("")
    inventory = workdir / f"{kind}-inventory.py"
    inventory.write_text("bench = " + repr([f"@docker/{h}" for h in hosts]) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_PASSWORD"}
    env.update(HSI_BENCH_LOG=str(log), PATH=f"{workdir}:{env['PATH']}")
    if kind == HSI:  # from the repository root (config.py hooks the report in); a private store
        cwd = ROOT
        env.update(HSI_REDIS_SECRETS_DIR=str(workdir / "secrets"),
                   HSI_REDIS_REPORT=str(workdir / f"{label}.json"))
    else:  # from bench/, so the project's config.py is not loaded
        cwd = BENCH
        env["REDIS_PASSWORD"] = password
    start = time.monotonic()
    status = run_bounded([sys.executable, "-m", "pyinfra", "-y", str(inventory), deploy], cwd, env, timeout,
                         workdir / f"{label}.out")
    seconds = time.monotonic() - start
    counts, other = parse_log(log.read_text(), hosts)
    if status != 0:
        tail = (workdir / f"{label}.out").read_text(errors="replace")[-3000:]
        why = "timed out" if status is None else f"exit {status}"
        print(f"!! {label}: {why}; last output:\n{tail}", file=sys.stderr)
    return Run(seconds, counts, status, other)


def start_hosts(names: list[str], suite: str, run_id: str) -> None:
    """Start the hosts in parallel and prepare each; raise after all tries if any failed."""
    def one(name: str) -> None:
        fleet.start_host(name, suite, labels={"hsi-redis.bench": run_id})
        subprocess.run(["docker", "exec", name, "sh", "-c", PREPARE], check=True, capture_output=True,
                       timeout=60)

    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        futures = [pool.submit(one, n) for n in names]
    errors = [f.exception() for f in futures if f.exception()]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(names)} hosts did not start: {errors[0]}")


def measure(count: int, first: str, args, workdir: Path, run_id: str) -> tuple[list[tuple], float]:
    """--repeats rounds, each on 2*count fresh hosts: both deploys' first converge (taking turns going
    first); in the last round also the no-op reruns and verify.py runs (--repeats each, in turns). The
    median of each counts.

    Returns rows (count, run, hsi Run, minimal Run or None) and the load average when timing began.
    """
    deploys = {HSI: "deploy.py", MINIMAL: "minimal_deploy.py"}
    other = MINIMAL if first == HSI else HSI
    password = secrets.token_urlsafe(24)
    step = workdir / f"n{count}"
    step.mkdir()
    shutil.copy(workdir / "docker", step / "docker")
    samples: dict[str, dict[str, list[Run]]] = {run: {HSI: [], MINIMAL: []}
                                                for run in (FIRST, NOOP, VERIFY)}
    loads = []
    for round_ in range(args.repeats):
        names = {kind: [f"hsi-bench-{run_id}-{count}{kind[0]}{round_}-{i}" for i in range(count)]
                 for kind in (HSI, MINIMAL)}
        order = [first, other] if round_ % 2 == 0 else [other, first]
        last = round_ == args.repeats - 1
        try:
            started = time.monotonic()
            start_hosts(names[HSI] + names[MINIMAL], args.suite, run_id)
            loads.append(os.getloadavg()[0])
            print(f"== {count} host(s) per deploy, round {round_ + 1} of {args.repeats}: {2 * count} fresh "
                  f"hosts up in {time.monotonic() - started:.0f} s; {order[0]} goes first; "
                  f"load {loads[-1]:.2f}", flush=True)
            for kind in order:
                samples[FIRST][kind].append(run_pyinfra(kind, deploys[kind], names[kind], step,
                                                        f"{kind}-first-converge-{round_ + 1}", args.timeout,
                                                        password))
                show(FIRST, kind, samples[FIRST][kind][-1])
            for attempt in range(args.repeats if last else 0):
                for kind in (order if attempt % 2 == 0 else order[::-1]):
                    samples[NOOP][kind].append(run_pyinfra(kind, deploys[kind], names[kind], step,
                                                           f"{kind}-no-op-rerun-{attempt + 1}", args.timeout,
                                                           password))
                    show(NOOP, kind, samples[NOOP][kind][-1])
            for attempt in range(args.repeats if last else 0):
                samples[VERIFY][HSI].append(run_pyinfra(HSI, "verify.py", names[HSI], step,
                                                        f"{HSI}-verify-{attempt + 1}", args.timeout,
                                                        password))
                show(VERIFY, HSI, samples[VERIFY][HSI][-1])
        finally:
            if args.keep and last:
                print(f"   kept: {' '.join(names[HSI] + names[MINIMAL])}\n   remove with: docker rm -f "
                      f"$(docker ps -aq --filter label=hsi-redis.bench={run_id})")
            else:
                fleet.remove_hosts(*names[HSI], *names[MINIMAL])
                if not args.keep:
                    remove_run_hosts(run_id)  # any a start interrupted half-way
    rows = [(count, run, median_run(samples[run][HSI]),
             median_run(samples[run][MINIMAL]) if run != VERIFY else None) for run in (FIRST, NOOP, VERIFY)]
    return rows, loads[0]


def median_run(runs: list[Run]) -> Run:
    """The run of median wall time (the upper one of an even count); a failed run, if any, instead: a
    failure is shown and never judged."""
    failed = [r for r in runs if not r.ok]
    if failed:
        return failed[0]
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def remove_run_hosts(run_id: str) -> None:
    """Remove every container this run labelled (and only those)."""
    listed = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=hsi-redis.bench={run_id}"],
                            capture_output=True, text=True, check=False)
    fleet.remove_hosts(*listed.stdout.split())


def show(run: str, kind: str, result: Run) -> None:
    print(f"   {run:<15} {kind:<9} {result.seconds:6.1f} s  {fmt_counts(result)} cmds/host"
          f"{'' if result.ok else '  FAILED'}", flush=True)


def fmt_counts(run: Run | None) -> str:
    if run is None:
        return "-"
    low, high = min(run.counts), max(run.counts)
    return str(low) if low == high else f"{low}-{high}"


def fmt_seconds(run: Run | None) -> str:
    if run is None:
        return "-"
    mark = "" if run.ok else (" (timed out)" if run.status is None else f" (exit {run.status})")
    return f"{run.seconds:.1f}{mark}"


def fmt_ratio(hsi: Run, minimal: Run | None) -> str:
    return f"{hsi.seconds / minimal.seconds:.2f}x" if minimal and minimal.seconds else "-"


def check_targets(rows: list[tuple]) -> list[str]:
    """One line per target and host count: the figure, the limit, met or missed."""
    lines = []
    for run, what, limit, applies in TARGETS:
        if what == "cmds":
            title = f"{run}: at most {limit} remote command(s) per host (hsi-redis)"
        else:
            title = f"{run}: at most {limit}x the minimal deploy's wall time at 10 and 20 hosts"
        checks = []
        for count, row_run, hsi, minimal in rows:
            if row_run != run or (applies and count not in applies):
                continue
            if not hsi.ok or (what == "ratio" and not (minimal and minimal.ok)):
                checks.append(f"N={count}: not measured (a run failed)")
                continue
            value = max(hsi.counts) if what == "cmds" else hsi.seconds / minimal.seconds
            shown = str(value) if what == "cmds" else f"{value:.2f}x"
            checks.append(f"N={count}: {shown} -> {'met' if value <= limit else 'MISSED'}")
        lines.append(f"{title}: {'; '.join(checks) if checks else 'not run at these host counts'}")
    return lines


def table(rows: list[tuple]) -> list[str]:
    head = ("hosts", "run", "hsi-redis s", "minimal s", "ratio", "hsi-redis cmds/host", "minimal cmds/host")
    body = [(str(c), run, fmt_seconds(h), fmt_seconds(m), fmt_ratio(h, m), fmt_counts(h), fmt_counts(m))
            for c, run, h, m in rows]
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|",
            *("| " + " | ".join(r) + " |" for r in body)]


def notes(rows: list[tuple], firsts: dict[int, str], loads: dict[int, tuple[float, float]]) -> list[str]:
    lines = [f"N={c}: {firsts[c]} ran first in the first round (then in turns); load average "
             f"{loads[c][0]:.2f} before the hosts started, {loads[c][1]:.2f} when timing began"
             for c in loads]
    seen, host_runs = collections.Counter(), 0
    for _count, _run, hsi, minimal in rows:
        for run in (hsi, minimal):
            if run:
                seen.update(run.other)
                host_runs += len(run.counts)
    for sub, times in sorted(seen.items()):
        lines.append(f"not counted: `docker {sub}` ran {times} time(s) in {host_runs} host-runs "
                     "(connector bookkeeping on the control machine)")
    return lines


def report(rows, firsts, loads, suite: str, started: datetime, repeats: int = 1) -> str:
    import pyinfra  # noqa: PLC0415 - only for its version

    head = (f"hsi-redis vs a minimal 5-operation deploy (bench/compare.py), {started:%Y-%m-%d %H:%M} UTC, "
            f"{os.cpu_count()} cores, {platform.python_version()}, pyinfra {pyinfra.__version__}, "
            f"Debian {suite} systemd containers through @docker; wall seconds of the whole pyinfra run, "
            "remote commands per host (docker exec + docker cp; min-max where hosts differ)"
            + (f"; each figure the median of {repeats} runs (first converge: on fresh hosts each time)."
               if repeats > 1 else "."))
    return "\n".join([head, "", *table(rows), "", "Targets (issue 10):", "",
                      *(f"- {t}" for t in check_targets(rows)), "", "Notes:", "",
                      *(f"- {n}" for n in notes(rows, firsts, loads))]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/compare.py", description=__doc__.split("\n\nFor each N")[0],
        epilog="How it times and counts: the docstring of bench/compare.py and the README's Benchmarks.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 10, 20], metavar="N",
                        help="host counts per deploy (default: 1 10 20)")
    parser.add_argument("--keep", action="store_true", help="leave the hosts (and the work directory) up")
    parser.add_argument("--out", type=Path, default=BENCH / "last-results.md",
                        help="markdown results file (default: bench/last-results.md)")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds allowed per pyinfra run (default 900)")
    parser.add_argument("--repeats", type=int, default=3, metavar="K",
                        help="runs of each kind per deploy (first converges on fresh hosts each time); "
                        "the median counts (default 3)")
    parser.add_argument("--suite", default="bookworm", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.hosts) or len(set(args.hosts)) != len(args.hosts):
        parser.error("--hosts: distinct counts of 1 or more")
    if args.repeats < 1:
        parser.error("--repeats: 1 or more")
    # SIGTERM ends the run like Ctrl-C does: through the finally blocks that remove the hosts.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    build.build_host(args.suite)
    run_id = secrets.token_hex(3)  # in names and the hsi-redis.bench label: this run's hosts only
    started = datetime.now(timezone.utc)
    workdir = Path(tempfile.mkdtemp(prefix="hsi-bench-"))
    shim = workdir / "docker"
    real = shutil.which("docker")
    if not real:
        parser.error("no docker client on PATH")
    shim.write_text(SHIM.format(real=shlex.quote(real)))
    shim.chmod(0o755)
    rows, firsts, loads, broken = [], {}, {}, []
    try:
        for index, count in enumerate(args.hosts):
            firsts[count] = HSI if index % 2 == 0 else MINIMAL
            before = os.getloadavg()[0]
            try:
                measured, load = measure(count, firsts[count], args, workdir, run_id)
                rows += measured
                loads[count] = (before, load)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:  # hosts did not start
                print(f"!! N={count}: not measured: {exc}", file=sys.stderr)
                broken.append(count)
    finally:
        if args.keep:
            print(f"work directory (logs, pyinfra output, secrets): {workdir}")
        else:
            remove_run_hosts(run_id)
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(rows, firsts, loads, args.suite, started, args.repeats)
    args.out.write_text(text)
    print("\n" + text + f"\nwritten to {args.out}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
