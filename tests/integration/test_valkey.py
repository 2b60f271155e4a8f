"""Valkey on a real Debian 13 host, the version policy and the upstream pin on Debian 12 hosts.

Hosts (one pyinfra run provisions all four in parallel):
- trixie with `redis_flavour: valkey`: the spine's acceptance 1-3 hold for Valkey;
- bookworm (redis-server 7.0.15) with `redis_minimum_version: 7.4`: stops before any change;
- bookworm with the default policy: deploys, and the summary warns that 7.0.15 is below 7.4;
- bookworm with `redis_source: upstream`: packages.redis.io is unreachable here, so the host
  must fail at the install, and the pin must keep Debian's own redis-server from sneaking in
  (this checks on a real apt that the key, the deb822 sources file and the pin are accepted).
"""

from __future__ import annotations

import io
import time

import pytest
from dotenv import dotenv_values

from tests.commands.harness import make_signing_key

from .conftest import generated_password, make_runner

VALKEY = {"redis_flavour": "valkey"}
STRICT = {"redis_minimum_version": "7.4"}
# What a host looks like where the deploy has changed nothing (package, files, service).
UNTOUCHED_PROBE = (
    "dpkg-query -W -f '${Status}\\n' redis-server 2>/dev/null | grep -c 'ok installed' || true; "
    "ls -d /etc/redis /etc/hsi-redis /opt/hsi /etc/systemd/system/redis-server.service.d 2>/dev/null "
    "| wc -l; "
    "ls -l --time-style=+%s /var/lib/apt/lists 2>/dev/null | md5sum"
)


@pytest.fixture(scope="module")
def policy_hosts(host_factory):
    return {
        "valkey": host_factory("valkey-trixie", "trixie"),
        "strict": host_factory("policy-strict", "bookworm"),
        "default": host_factory("policy-default", "bookworm"),
        "upstream": host_factory("upstream-pin", "bookworm"),
    }


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return make_runner(tmp_path_factory)


@pytest.fixture(scope="module")
def upstream_settings(tmp_path_factory):
    path, fingerprint = make_signing_key(tmp_path_factory.mktemp("key"))
    return {
        "redis_source": "upstream",
        "redis_upstream_key": str(path),
        "redis_upstream_key_fingerprint": fingerprint,
    }


@pytest.fixture(scope="module")
def first_run(policy_hosts, runner, upstream_settings):
    before = policy_hosts["strict"].sh(UNTOUCHED_PROBE).stdout
    result = runner(
        {
            policy_hosts["valkey"]: VALKEY,
            policy_hosts["strict"]: STRICT,
            policy_hosts["default"]: {},
            policy_hosts["upstream"]: upstream_settings,
        }
    )
    return result, before


def test_valkey_serves_with_password_aof_and_env(policy_hosts, runner, first_run):
    result, _ = first_run
    host = policy_hosts["valkey"]
    entry = result.host(host)
    assert entry["status"] == "ok", result.output
    assert entry["flavour"] == "valkey" and entry["version"].startswith("8."), entry
    password = generated_password(runner, host)
    assert host.redis_cli("ping", password=password, cli="valkey-cli") == "PONG"
    assert "NOAUTH" in host.redis_cli("ping", cli="valkey-cli")
    persistence = host.redis_cli("info", "persistence", password=password, cli="valkey-cli")
    info = dict(line.split(":", 1) for line in persistence.splitlines() if ":" in line)
    assert info["aof_enabled"] == "1"
    assert host.stat("/etc/valkey/valkey.conf") == "640 root valkey"
    assert host.sh("systemctl is-active valkey-server").stdout.strip() == "active"
    # No Redis package, path or user on a Valkey host.
    assert host.sh("dpkg-query -W redis-server >/dev/null 2>&1 && echo yes || echo no").stdout.strip() == "no"
    assert host.sh("test -e /etc/redis/redis.conf && echo yes || echo no").stdout.strip() == "no"
    env = dotenv_values(stream=io.StringIO(host.sh("cat /opt/hsi/backend/.env").stdout))
    assert env["REDIS_PASSWORD"] == password
    assert env["REDIS_URL"] == "redis://localhost:6379/0"
    assert host.stat("/opt/hsi/backend/.env") == "600 root root"
    assert password not in result.output


def test_minimum_version_stops_that_host_before_any_change(policy_hosts, first_run):
    result, before = first_run
    host = policy_hosts["strict"]
    entry = result.host(host)
    assert result.returncode != 0  # a host failed, and the exit code says so
    assert entry["status"] == "failed", entry
    assert entry["failed_step"] == "version policy"
    assert "7.0.15" in entry["problem"] and "below redis_minimum_version 7.4" in entry["problem"], entry
    assert entry["changes"] == 0, entry["changed_operations"]
    assert host.sh(UNTOUCHED_PROBE).stdout == before
    assert "below redis_minimum_version 7.4" in result.output


def test_default_policy_deploys_and_warns(policy_hosts, runner, first_run):
    result, _ = first_run
    host = policy_hosts["default"]
    entry = result.host(host)
    assert entry["status"] == "ok", result.output
    assert entry["version"] == "7.0.15"
    assert any("7.0.15" in w and "below 7.4" in w for w in entry.get("warnings", [])), entry
    assert "warning: redis 7.0.15" in result.output
    password = generated_password(runner, host)
    assert host.redis_cli("ping", password=password) == "PONG"


def test_verify_applies_the_version_policy(policy_hosts, runner, first_run):
    """verify.py judges the installed server: below the minimum it fails, and changes nothing."""
    host = policy_hosts["default"]  # deployed with the default policy: redis-server 7.0.15
    strict = runner({host: STRICT}, entry="verify.py")
    assert strict.returncode != 0
    entry = strict.host(host)
    assert entry["failed_step"] == "version policy", entry
    assert "7.0.15" in entry["problem"] and "below redis_minimum_version 7.4" in entry["problem"], entry
    assert entry["changes"] == 0
    lenient = runner({host: {}}, entry="verify.py")
    assert lenient.returncode == 0 and lenient.host(host)["status"] == "ok", lenient.output
    assert any("below 7.4" in w for w in lenient.host(host).get("warnings", []))


def test_second_run_changes_nothing(policy_hosts, runner, first_run):
    hosts = {policy_hosts["valkey"]: VALKEY, policy_hosts["default"]: {}}
    clis = {policy_hosts["valkey"]: "valkey-cli", policy_hosts["default"]: "redis-cli"}
    before = {}
    for host in hosts:
        password = generated_password(runner, host)
        before[host] = host.redis_cli("info", "server", password=password, cli=clis[host])
    time.sleep(1.5)
    result = runner(hosts)
    assert result.returncode == 0, result.output
    for host in hosts:
        assert result.host(host)["changes"] == 0, result.host(host)["changed_operations"]
        password = generated_password(runner, host)
        after = host.redis_cli("info", "server", password=password, cli=clis[host])
        run_id = [line for line in before[host].splitlines() if line.startswith("run_id:")]
        assert run_id and run_id[0] in after.splitlines(), "the server was restarted"


def test_upstream_pin_keeps_the_distro_package_out(policy_hosts, first_run):
    result, _ = first_run
    host = policy_hosts["upstream"]
    entry = result.host(host)
    assert entry["status"] == "failed", entry
    assert "packages.redis.io" in entry["failed_step"], entry
    assert host.stat("/etc/apt/keyrings/redis-archive-keyring.asc") == "644 root root"
    assert "Signed-By: /etc/apt/keyrings/redis-archive-keyring.asc" in host.sh(
        "cat /etc/apt/sources.list.d/hsi-redis-upstream.sources"
    ).stdout
    policy = host.sh("apt-cache policy redis-server").stdout
    assert "Candidate: (none)" in policy, policy
    assert " -1\n" in policy and "7.0.15" in policy, "Debian's package is pinned to -1"
    installed = "dpkg-query -W -f '${Status}' redis-server 2>/dev/null || true"
    assert "ok installed" not in host.sh(installed).stdout
    assert host.sh("test -e /etc/redis/redis.conf && echo yes || echo no").stdout.strip() == "no"
