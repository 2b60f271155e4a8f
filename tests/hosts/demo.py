"""`make demo`: start a Debian 12 and a Debian 13 test host, provision and verify them.

    python -m tests.hosts.demo            start (or reuse) the hosts and run deploy.py
    python -m tests.hosts.demo --remove   remove the demo hosts

The hosts stay up afterwards so you can look around; re-running is safe (the second run
changes nothing). Passwords are generated into .secrets/ on this machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from operations import credentials

from . import fleet

ROOT = Path(__file__).resolve().parents[2]
DEMO_HOSTS = {"hsi-redis-demo-bookworm": "bookworm", "hsi-redis-demo-trixie": "trixie"}


def _running(name: str) -> bool:
    result = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name],
                            capture_output=True, text=True)
    return result.stdout.strip() == "true"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--remove", action="store_true", help="remove the demo hosts")
    args = parser.parse_args(argv)
    if args.remove:
        fleet.remove_hosts(*DEMO_HOSTS)
        print("demo hosts removed")
        return 0

    for name, suite in DEMO_HOSTS.items():
        if _running(name):
            print(f"[demo] {name}: already running, reusing it")
        else:
            print(f"[demo] {name}: starting a Debian {suite} host")
            fleet.start_host(name, suite)

    env = dict(os.environ, HSI_REDIS_DOCKER_HOSTS=",".join(DEMO_HOSTS))
    command = [sys.executable, "-m", "pyinfra", "-y", "inventories/docker.py", "deploy.py"]
    print(f"[demo] {' '.join(command[2:])}", flush=True)
    status = subprocess.call(command, cwd=ROOT, env=env)

    first = next(iter(DEMO_HOSTS))
    password_file = credentials.secret_path(f"@docker/{first}")
    print(
        "\nThe hosts keep running. To look around:\n"
        f"  docker exec -it {first} bash\n"
        f"  docker exec -i {first} sh -c 'REDISCLI_AUTH=\"$(cat)\" redis-cli --no-auth-warning ping' "
        f"< {password_file}   # PONG\n"
        f"  docker exec {first} redis-cli ping   # NOAUTH: no password, refused\n"
        f"  docker exec {first} cat /opt/hsi/backend/.env   (shows the password)\n"
        "Check only:   .venv/bin/pyinfra -y inventories/docker.py verify.py\n"
        "Report:       reports/last-run.json\n"
        "Remove them:  make demo-clean"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
