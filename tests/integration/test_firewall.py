"""The firewall on a real Debian 12 host that may change it (a container started with --cap-add
NET_ADMIN), issue 11. Two more sources live in network namespaces the test makes inside that container
(veth pairs, addresses only there): `monitor` (10.78.0.2, in redis_firewall_allow) and `intruder`
(10.77.0.2, on no list). Nothing outside the container is contacted.

The rules are there after the first run (nftables installed by the deploy), unchanged by the second;
the intruder's connections are dropped (they time out, never refused), the monitor reaches the TLS port
but not the plain one (no redis_allow_plaintext), loopback always works; another table survives every
run; the table comes back at boot (a container restart); verify.py notices a missing table and deploy.py
puts it back; a new list replaces the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from operations import pki as pki_helper
from tests.hosts import fleet

from .conftest import generated_password, make_runner

SETUP = """
set -e
ip netns add intruder; ip netns add monitor
ip link add fw-i0 type veth peer name fw-i1; ip link set fw-i1 netns intruder
ip addr add 10.77.0.1/24 dev fw-i0; ip link set fw-i0 up
ip netns exec intruder sh -c 'ip addr add 10.77.0.2/24 dev fw-i1; ip link set fw-i1 up; ip link set lo up'
ip link add fw-m0 type veth peer name fw-m1; ip link set fw-m1 netns monitor
ip addr add 10.78.0.1/24 dev fw-m0; ip link set fw-m0 up
ip netns exec monitor sh -c 'ip addr add 10.78.0.2/24 dev fw-m1; ip link set fw-m1 up; ip link set lo up'
"""
FOREIGN = ("nft add table inet foreign && nft add chain inet foreign input '{ type filter hook input priority 0; "
           "policy accept; }' && nft add rule inet foreign input tcp dport 2222 counter accept")
DROPPED = 124  # `timeout` killed the client: the connection hung (dropped), it was not refused


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return make_runner(tmp_path_factory)


@pytest.fixture(scope="module")
def fw(host_factory, runner):
    host = host_factory("firewall", "bookworm", cap_add=("NET_ADMIN",))
    host.sh("apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2 >/dev/null")
    host.sh(SETUP)
    directory = Path(runner.secrets_dir) / "pki"
    pki_helper.ensure_pki(directory, {host.inventory_name: ["10.77.0.1", "10.78.0.1", "localhost", "127.0.0.1"]})
    return host


def data(**extra) -> dict:
    return {"redis_bind": ["127.0.0.1", "-10.77.0.1", "-10.78.0.1"], "redis_tls": True,
            "redis_firewall_allow": ["10.78.0.2"], **extra}


def client(host, runner, where: str, address: str, port: int) -> tuple[int, str]:
    """PING from a namespace (`-`: the host itself), TLS on 6380; (exit code, reply)."""
    tls = "--tls --cacert /etc/redis/tls-ca.crt" if port == 6380 else ""
    run = "" if where == "-" else f"ip netns exec {where} "
    done = host.sh(f'REDISCLI_AUTH="$(cat)" {run}timeout 4 redis-cli --no-auth-warning -h {address} -p {port} {tls} '
                   "ping 2>&1", check=False, stdin=generated_password(runner, host))
    return done.returncode, done.stdout.strip()


def table(host) -> str:
    return host.sh("nft list table inet hsi_redis").stdout


def test_first_run_installs_nftables_and_loads_the_rules(fw, runner):
    assert fw.sh("command -v nft", check=False).returncode != 0, "the image has no nftables"
    result = runner({fw: data()})
    assert result.returncode == 0, result.output
    entry = result.host(fw)
    assert entry["status"] == "ok", entry
    assert entry["firewall"] == {"tool": "nft", "ports": [6379, 6380], "open_ports": [6380],
                                 "sources": ["10.78.0.2"], "backend_hosts": []}
    rules = table(fw)
    assert 'comment "hsi-redis ' in rules and "10.78.0.2" in rules and "tcp dport { 6379, 6380 } drop" in rules
    assert fw.sh("systemctl is-enabled hsi-redis-firewall.service").stdout.strip() == "enabled"
    assert fw.stat("/etc/hsi-redis/firewall.nft") == "600 root root"


def test_who_gets_through(fw, runner):
    assert client(fw, runner, "monitor", "10.78.0.1", 6380) == (0, "PONG")
    code, reply = client(fw, runner, "monitor", "10.78.0.1", 6379)
    assert code == DROPPED and "refused" not in reply, (code, reply)  # plain text: loopback only
    for port in (6379, 6380):
        code, reply = client(fw, runner, "intruder", "10.77.0.1", port)
        assert code == DROPPED and "refused" not in reply, (port, code, reply)
    # loopback, and the host's own addresses from the host itself (through lo)
    assert client(fw, runner, "-", "127.0.0.1", 6379) == (0, "PONG")
    assert client(fw, runner, "-", "10.77.0.1", 6380) == (0, "PONG")


def test_a_second_run_changes_nothing_and_foreign_rules_survive(fw, runner):
    fw.sh(FOREIGN)
    foreign, ours = fw.sh("nft list table inet foreign").stdout, table(fw)
    again = runner({fw: data()})
    assert again.returncode == 0 and again.host(fw)["changes"] == 0, again.output
    assert table(fw) == ours
    assert fw.sh("nft list table inet foreign").stdout == foreign


def test_verify_notices_a_missing_table_and_deploy_puts_it_back(fw, runner):
    ours = table(fw)
    fw.sh("nft delete table inet hsi_redis")
    # without the table nothing stops the intruder: the drops above were the table's
    assert client(fw, runner, "intruder", "10.77.0.1", 6380) == (0, "PONG")
    checked = runner({fw: data()}, entry="verify.py")
    assert checked.returncode != 0
    entry = checked.host(fw)
    assert entry["kind"] == "firewall" and "not loaded" in entry["problem"], entry
    healed = runner({fw: data()})
    assert healed.returncode == 0 and healed.host(fw)["status"] == "ok", healed.output
    assert table(fw) == ours
    assert client(fw, runner, "intruder", "10.77.0.1", 6380)[0] == DROPPED


def test_a_new_list_replaces_the_table_and_only_it(fw, runner):
    foreign = fw.sh("nft list table inet foreign").stdout
    moved = runner({fw: data(redis_firewall_allow=["10.77.0.2"])})
    assert moved.returncode == 0, moved.output
    assert client(fw, runner, "intruder", "10.77.0.1", 6380) == (0, "PONG")
    assert client(fw, runner, "monitor", "10.78.0.1", 6380)[0] == DROPPED
    assert fw.sh("nft list table inet foreign").stdout == foreign
    assert fw.sh("nft list tables").stdout.count("hsi_redis") == 1


def test_the_rules_come_back_at_boot(fw, runner):
    ours = table(fw)
    subprocess_restart(fw.container)
    assert table(fw) == ours
    assert fw.sh("systemctl is-active hsi-redis-firewall.service").stdout.strip() == "active"


def subprocess_restart(container: str) -> None:
    """Reboot the host (its network namespace, veth pairs and ruleset start empty again)."""
    fleet._docker("restart", container)
    fleet.wait_for_systemd(container)
