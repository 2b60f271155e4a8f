"""Start and remove systemd test hosts (containers) for the demo and the tests.

Every container carries the label `hsi-redis.test=1` so a crashed run can be cleaned up
with `python -m tests.hosts.fleet --remove-all`. Hosts are reached only through
`docker exec` or ports published on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from .build import HOST_IMAGE, SSH_IMAGE

LABEL = "hsi-redis.test"
# systemd as PID 1 without --privileged (which this sandbox refuses): see TEST-HOSTS.md.
SYSTEMD_RUN_ARGS = (
    "--cap-add", "SYS_ADMIN",
    "--security-opt", "seccomp=unconfined",
    "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run",
    "--tmpfs", "/run/lock",
    "-e", "container=docker",
    "--stop-signal", "SIGRTMIN+3",
)


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, text=True, capture_output=True)


def start_host(name: str, suite: str = "bookworm", ssh: bool = False, publish: tuple[int, ...] = (),
               labels: dict[str, str] | None = None) -> str:
    """Start (or replace) a test host and wait until systemd is up. Returns the container name."""
    image = (SSH_IMAGE if ssh else HOST_IMAGE).format(suite=suite)
    _docker("rm", "-f", name, check=False)
    args = ["run", "-d", "--name", name, "--hostname", name, "--label", f"{LABEL}=1"]
    for key, value in (labels or {}).items():
        args += ["--label", f"{key}={value}"]
    for port in publish:
        args += ["-p", f"127.0.0.1::{port}"]
    _docker(*args, *SYSTEMD_RUN_ARGS, image)
    wait_for_systemd(name)
    return name


def wait_for_systemd(name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = _docker("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{name}: systemd did not come up (state {state!r})")


def published_port(name: str, port: int) -> int:
    """The 127.0.0.1 port Docker published for the container's `port`."""
    out = _docker("port", name, f"{port}/tcp").stdout
    for line in out.splitlines():
        if line.startswith("127.0.0.1:"):
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"{name}: port {port} is not published on 127.0.0.1")


def remove_hosts(*names: str) -> None:
    if names:
        _docker("rm", "-f", *names, check=False)


def remove_all() -> None:
    ids = _docker("ps", "-aq", "--filter", f"label={LABEL}=1").stdout.split()
    remove_hosts(*ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="manage hsi-redis test hosts")
    parser.add_argument("--remove-all", action="store_true", help="remove every labelled test host")
    args = parser.parse_args(argv)
    if args.remove_all:
        remove_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
