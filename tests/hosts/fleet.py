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


# A systemd container exits at once (status 255, no output) when the kernel has no inotify instance
# left for it (fs.inotify.max_user_instances, 128 by default, ~7 a host; scripts/docker-engine.sh
# raises it). Another host stopping frees some: a few more starts, bounded (about 40 s).
START_BACKOFF = (2, 5, 10, 20)


class HostDied(RuntimeError):
    """The container's PID 1 exited before systemd came up."""


def start_host(name: str, suite: str = "bookworm", ssh: bool = False, publish: tuple[int, ...] = (),
               labels: dict[str, str] | None = None, cap_add: tuple[str, ...] = (), network: str | None = None) -> str:
    """Start (or replace) a test host and wait until systemd is up. Returns the container name.

    `cap_add`: extra capabilities (NET_ADMIN: the host may change its firewall and make network
    namespaces of its own). `network`: another container whose network namespace this one shares
    (`--network container:NAME`: a backend host reaching its server on 127.0.0.1; no hostname then)."""
    image = (SSH_IMAGE if ssh else HOST_IMAGE).format(suite=suite)
    args = ["run", "-d", "--name", name, "--label", f"{LABEL}=1"]
    args += ["--network", f"container:{network}"] if network else ["--hostname", name]
    for key, value in (labels or {}).items():
        args += ["--label", f"{key}={value}"]
    for port in publish:
        args += ["-p", f"127.0.0.1::{port}"]
    for capability in cap_add:
        args += ["--cap-add", capability]
    for pause in (*START_BACKOFF, None):
        _docker("rm", "-f", name, check=False)
        _docker(*args, *SYSTEMD_RUN_ARGS, image)
        try:
            wait_for_systemd(name)
            return name
        except HostDied as exc:
            if pause is None:
                raise
            print(f"[hosts] {exc}; starting it again in {pause} s", file=sys.stderr)
            time.sleep(pause)
    return name


def _running(name: str) -> tuple[bool, str]:
    state = _docker("inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", name, check=False).stdout.split()
    return (state[:1] == ["true"]), (state[1] if len(state) > 1 else "?")


def wait_for_systemd(name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = _docker("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            return
        running, code = _running(name)
        if not running:
            raise HostDied(f"{name}: the container exited (status {code}) before systemd came up "
                           "(too few inotify instances? see scripts/docker-engine.sh)")
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
