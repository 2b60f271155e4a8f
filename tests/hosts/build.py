"""Build the Docker test-host images: systemd-booted Debian hosts without python3.

    python -m tests.hosts.build              every image the test suite and the demo use
    python -m tests.hosts.build SUITE ...    only the plain host images of these suites

Images are built once and reused by tag:
  hsi-redis/host:<suite>      systemd as PID 1, nothing else (targets need no Python)
  hsi-redis/ssh-host:<suite>  the same plus openssh-server and sudo, for the SSH connector

The base comes from `docker pull debian:<suite>` where a registry answers; on machines
without one it is bootstrapped with debootstrap and imported. Both paths end in
`docker commit`, so no image builder (buildx) is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

SUITES = ("bookworm", "trixie")
# The suite of the SSH host (tests/integration/test_ssh.py starts it with ssh=True).
SSH_SUITES = ("bookworm",)
BASE_PACKAGES = "systemd,systemd-sysv,dbus,ca-certificates,procps"
HOST_IMAGE = "hsi-redis/host:{suite}"
SSH_IMAGE = "hsi-redis/ssh-host:{suite}"
# Units that are useless (or noisy) in a test container.
MASKED_UNITS = (
    "getty.target",
    "console-getty.service",
    "systemd-logind.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
)
# STOPSIGNAL is not a valid commit change on engine 20.10: containers get --stop-signal at run time.
COMMIT_CHANGES = (
    'CMD ["/lib/systemd/systemd"]',
    "ENV container=docker",
)


def log(message: str) -> None:
    print(f"[hosts] {message}", file=sys.stderr, flush=True)


def docker(*args: str, check: bool = True, timeout: float | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, timeout=timeout, text=True, capture_output=True, **kw)


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


def _commit_args() -> list[str]:
    args: list[str] = []
    for change in COMMIT_CHANGES:
        args += ["--change", change]
    return args


def _mask_script() -> str:
    return "; ".join(f"ln -sf /dev/null /etc/systemd/system/{unit}" for unit in MASKED_UNITS)


def _run_and_commit(source: str, tag: str, script: str) -> None:
    """Run `script` in a throwaway container of `source`, commit the result as `tag`."""
    name = f"hsi-redis-build-{tag.replace('/', '-').replace(':', '-')}"
    docker("rm", "-f", name, check=False)
    try:
        # labelled like test hosts, so a build killed half-way is cleaned up with them
        docker("run", "--name", name, "--label", "hsi-redis.test=1", source, "/bin/sh", "-c", script,
               timeout=900)
        docker("commit", *_commit_args(), name, tag)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"building {tag} failed:\n{exc.stdout}\n{exc.stderr}") from exc
    finally:
        docker("rm", "-f", name, check=False)


def _pull_base(suite: str) -> str | None:
    try:
        result = docker("pull", f"debian:{suite}", check=False, timeout=120)
    except subprocess.TimeoutExpired:
        return None
    return f"debian:{suite}" if result.returncode == 0 else None


def _debootstrap_base(suite: str) -> str:
    """Bootstrap a minimal root filesystem and import it (about 50 s a suite)."""
    if shutil.which("debootstrap") is None:
        raise SystemExit("no registry answered and debootstrap is missing: apt-get install -y debootstrap")
    tag = f"hsi-redis/base:{suite}"
    if image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix=f"hsi-redis-{suite}-") as root:
        log(f"{suite}: debootstrap (no registry reachable)")
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", suite, root],
            check=True,
            capture_output=True,
        )
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-", tag], stdin=tar.stdout, check=True, capture_output=True)
        tar.wait()
    return tag


# Test workers (pytest-xdist) may ask for the same image at once: one builds it, the others wait.
LOCK_FILE = "/tmp/hsi-redis-image-{name}.lock"


@contextlib.contextmanager
def _build_lock(tag: str):
    with open(LOCK_FILE.format(name=tag.replace("/", "-").replace(":", "-")), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure(tag: str, make_source_and_script) -> str:
    """Reuse `tag` when present; otherwise run the script in its source image and commit it."""
    if image_exists(tag):
        return tag
    with _build_lock(tag):
        if image_exists(tag):  # built by another process while this one waited
            return tag
        source, script = make_source_and_script()
        _run_and_commit(source, tag, script)
    log(f"{tag}: built")
    return tag


def build_host(suite: str) -> str:
    def source_and_script() -> tuple[str, str]:
        pulled = _pull_base(suite)
        if pulled:
            log(f"{suite}: building from {pulled}")
            script = (
                "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; "
                f"apt-get install -y -qq --no-install-recommends {BASE_PACKAGES.replace(',', ' ')} >/dev/null; "
                "rm -rf /var/lib/apt/lists/*; "
            )
            source = pulled
        else:
            source = _debootstrap_base(suite)
            script = "set -e; rm -rf /var/lib/apt/lists/*; "
        # No python3 in the image: targets must not need it, and this proves it.
        return source, script + _mask_script() + "; ! command -v python3"

    return _ensure(HOST_IMAGE.format(suite=suite), source_and_script)


def build_ssh_host(suite: str) -> str:
    """The host image plus sshd, sudo and an unprivileged `hsi` user (key installed at run time)."""

    def source_and_script() -> tuple[str, str]:
        script = (
            "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; "
            "apt-get install -y -qq --no-install-recommends openssh-server sudo >/dev/null; "
            "rm -rf /var/lib/apt/lists/*; "
            "useradd --create-home --shell /bin/bash hsi; "
            "echo 'hsi ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/hsi; chmod 0440 /etc/sudoers.d/hsi; "
            "install -d -m 0700 -o hsi -g hsi /home/hsi/.ssh; "
            "printf 'PasswordAuthentication no\\nKbdInteractiveAuthentication no\\n' "
            "> /etc/ssh/sshd_config.d/hsi-test.conf; "
            "systemctl enable ssh >/dev/null 2>&1 || true; ! command -v python3"
        )
        return build_host(suite), script

    return _ensure(SSH_IMAGE.format(suite=suite), source_and_script)


def required_images() -> list[str]:
    """Every image the test suite and the demo start (fleet.start_host), by tag."""
    return [HOST_IMAGE.format(suite=s) for s in SUITES] + [SSH_IMAGE.format(suite=s) for s in SSH_SUITES]


def build_all(suites: tuple[str, ...] = SUITES, ssh_suites: tuple[str, ...] = SSH_SUITES) -> list[str]:
    """Build (or reuse) the host images of `suites` and the SSH images of `ssh_suites`."""
    with ThreadPoolExecutor(max_workers=max(1, len(suites))) as pool:
        built = list(pool.map(build_host, suites))
    return built + [build_ssh_host(suite) for suite in ssh_suites]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suites", nargs="*", help="only these suites' plain host images")
    args = parser.parse_args(argv)
    if args.suites:
        build_all(tuple(args.suites), ())
    else:
        build_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
