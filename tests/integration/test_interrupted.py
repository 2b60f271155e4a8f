"""A run stopped after writing the config and before the restart (tests/integration/
interrupted_deploy.py is deploy.py without its service step): the next run still restarts,
so the server does not keep its old config; the run after that is quiet."""

from __future__ import annotations

import pytest

from .conftest import generated_password, make_runner
from .safety_helpers import fill

INTERRUPTED = "tests/integration/interrupted_deploy.py"
# The stand-in service controller of interrupted_deploy.py: systemctl, except that a restart stops the
# host program (it runs this under `timeout`: the program is the parent of this script's parent), as a
# killed run would.
CUT_AT_RESTART = """#!/bin/sh
case $1 in
  restart) kill -TERM "$(cut -d' ' -f4 /proc/$PPID/stat)"; exit 1;;
  journal) journalctl -u "$2" --since "$3" -o cat --no-pager;;
  show) shift; systemctl show -p LoadState,ActiveState,UnitFileState "$@";;
  is-failed) shift; systemctl is-failed --quiet "$@";;
  *) exec systemctl "$@";;
esac
"""
PENDING = "/etc/hsi-redis/restart-pending"
KEYS = 300
MB = 1024 * 1024


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return make_runner(tmp_path_factory)


def maxmemory(host, password) -> int:
    return int(host.redis_cli("config", "get", "maxmemory", password=password).split()[-1])


def test_interrupted_run_restarts_on_the_next_run(host_factory, runner):
    host = host_factory("interrupted", "bookworm")
    first = runner([host])
    assert first.returncode == 0, first.output
    password = generated_password(runner, host)
    fill(host, KEYS, password=password)
    run_id = host.info(password, "server")["run_id"]

    host.sh("cat > /usr/local/sbin/hsi-test-cut-at-restart && chmod 755 /usr/local/sbin/hsi-test-cut-at-restart",
            stdin=CUT_AT_RESTART)
    cut = runner({host: {"redis_size": "large"}}, entry=INTERRUPTED)
    assert cut.returncode != 0, cut.output  # the run was stopped
    host.sh("grep -qx 'maxmemory 512mb' /etc/redis/redis.conf")  # the file is written...
    assert host.info(password, "server")["run_id"] == run_id     # ...the server not restarted
    assert maxmemory(host, password) == 100 * MB
    pending = host.sh(f"stat -c '%a %U %G' {PENDING}", check=False).stdout.strip()

    resumed = runner({host: {"redis_size": "large"}})
    assert resumed.returncode == 0, resumed.output
    assert host.info(password, "server")["run_id"] != run_id, "the pending restart did not happen"
    assert maxmemory(host, password) == 512 * MB
    assert host.redis_cli("dbsize", password=password) == str(KEYS)
    assert pending == "600 root root", "no pending restart was recorded before the config changed"
    assert host.sh(f"test -e {PENDING}", check=False).returncode != 0, "cleared by the verified restart"

    run_id = host.info(password, "server")["run_id"]
    quiet = runner({host: {"redis_size": "large"}})
    assert quiet.returncode == 0 and quiet.host(host)["changes"] == 0, quiet.output
    assert host.info(password, "server")["run_id"] == run_id
