"""A server and its backend on separate simulated hosts (issue 11): what each host is asked to do, in
which order; a failed server fails its backend host with the reason; a converged pair is one read each.
The same run on real Debian hosts: tests/integration/test_backend_host.py."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from operations import firewall, pki
from operations.hoststate import FirewallState

from .harness import PASSWORD, HostFixture, fresh_host, healthy_server, run_flow

SERVER, BACKEND = "nvr", "app"
ENV = "/opt/hsi/backend/.env"
TLS_DIR = "/opt/hsi/backend/redis-tls"
FAIL_APPLY = {"hsi-redis apply ": {"success": False, "stderr": "hsi-redis: redis-server did not answer after starting it"},
              "exit 1": {"success": False, "stderr": "simulated failure"}}


@pytest.fixture
def tls(tmp_path) -> dict:
    """The server's TLS files (mTLS: the helper's backend client pair), SAN the name backends use."""
    directory = tmp_path / "pki"
    pki.ensure_pki(directory, {f"@fake/{SERVER}": ["redis.campus.lan", "localhost"]})
    paths = pki.pki_layout(directory, f"@fake/{SERVER}")
    return {"redis_tls": True, "redis_tls_ca_cert": str(paths.ca), "redis_tls_cert": str(paths.cert),
            "redis_tls_key": str(paths.key), "redis_tls_client_cert": str(paths.client_cert),
            "redis_tls_client_key": str(paths.client_key), "redis_backend_host": "redis.campus.lan"}


def tls_server(**changes):
    values = {"tls_port": 6380, "tls_ping": "PONG", "tls_nocert": "Error: Connection reset by peer",
              "plain_ping": "NOAUTH Authentication required."}
    return healthy_server(**{**values, **changes})


def pair(tls: dict, server_data: dict | None = None, backend_data: dict | None = None, server_host=None,
         backend_host=None) -> dict:
    server = {"redis_role": "server", "redis_bind": ["127.0.0.1", "10.20.0.5"], **tls, **(server_data or {})}
    backend = {"redis_role": "backend", "redis_server": f"@fake/{SERVER}", "redis_backend_address": "10.20.0.7",
               "redis_password": None, **(backend_data or {})}
    return {SERVER: (server_host or fresh_host("debian-12", server=tls_server(), firewall=FirewallState(cap=True)),
                     server),
            BACKEND: (backend_host or HostFixture("debian-12"), backend)}


def test_the_backend_host_gets_only_its_files_after_the_server_converged(tls):
    hosts = pair(tls)
    result = run_flow(hosts)
    assert result.failures(SERVER) == [] and result.failures(BACKEND) == []
    # the backend host: one read without a server part, one write, one read to verify; nothing installed
    assert result.verbs(BACKEND) == ["write"]
    request, again = result.requests[BACKEND]
    assert again.server is False and again.files == request.files and again.envs == request.envs
    assert request.server is False and request.packages == () and request.layouts == () and not request.firewall
    write = result.call(BACKEND, "write")
    assert sorted(write.paths()) == [ENV, f"{TLS_DIR}/ca.crt", f"{TLS_DIR}/client.crt", f"{TLS_DIR}/client.key"]
    lines = dict(line.split("=", 1) for line in write.entry(ENV).content.splitlines())
    url = urlsplit(lines["REDIS_URL"])
    assert (url.scheme, url.hostname, url.port, url.path) == ("rediss", "redis.campus.lan", 6380, "/0")
    assert parse_qs(url.query)["ssl_ca_certs"] == [f"{TLS_DIR}/ca.crt"]
    assert PASSWORD in lines["REDIS_PASSWORD"], "the server's password"
    server_files = result.call(SERVER, "apply")
    assert write.entry(f"{TLS_DIR}/ca.crt").content == server_files.entry("/etc/redis/tls-ca.crt").content
    assert write.entry(f"{TLS_DIR}/client.key").mode == "600"
    # the server-only host writes no backend .env and no backend TLS files
    assert ENV not in result.joined(SERVER) and TLS_DIR not in result.joined(SERVER)
    # servers first: the backend's write runs after the server's apply and its verification
    assert result.sequence.index((BACKEND, "write")) > result.sequence.index((SERVER, "apply"))
    assert result.report[BACKEND]["status"] == "ok" and result.report[BACKEND]["server"] == f"@fake/{SERVER}"
    assert result.report[SERVER]["status"] == "ok"


def test_a_converged_pair_is_one_read_each(tls):
    hosts = pair(tls)
    run_flow(hosts)
    again = run_flow(hosts)
    assert again.calls == {SERVER: [], BACKEND: []}, again.calls
    assert [len(r) for r in again.requests.values()] == [1, 1]
    assert again.report[BACKEND]["status"] == "ok"
    checked = run_flow(hosts, entry="verify.py")
    assert checked.calls == {SERVER: [], BACKEND: []} and checked.report[BACKEND]["status"] == "ok"


def test_a_failed_server_fails_its_backend_host_with_the_reason_and_writes_nothing(tls):
    result = run_flow(pair(tls, server_data={"fake_responses": FAIL_APPLY}))
    assert "write" not in result.verbs(BACKEND)
    entry = result.report[BACKEND]
    assert entry["status"] == "failed" and entry["failed_step"] == "server", entry
    assert entry["problem"] == f"server @fake/{SERVER} failed: redis-server did not answer after starting it", entry
    assert result.failures(BACKEND) == [f"echo 'hsi-redis: {entry['problem']}' >&2; exit 1"]


def test_a_backend_hosts_env_the_merge_cannot_read_fails_naming_the_setting(tls):
    backend = HostFixture("debian-12", envs={ENV: ({"DATABASE_URL": "DATABASE_URL=x"}, 0o600, "root", "root")},
                          env_details={ENV: {"bad": ((3, "quoted-key"),)}})
    result = run_flow(pair(tls, backend_host=backend))
    assert result.verbs(BACKEND) == ["write"] and ENV not in result.call(BACKEND, "write").paths()
    assert result.report[BACKEND]["status"] == "failed" and "line 3: quoted-key" in result.report[BACKEND]["problem"]


def test_the_firewall_admits_the_backend_hosts_address_on_the_tls_port_only(tls):
    result = run_flow(pair(tls, server_data={"redis_firewall_allow": ["192.0.2.0/28"]}))
    assert "nftables" in result.call(SERVER, "install").option("packages").split()
    call = result.call(SERVER, "firewall")
    assert call.option("tool") == "nft" and call.option("fw-unit") == firewall.UNIT
    rules = call.entry(firewall.NFT_FILE).content
    assert "elements = { 10.20.0.7, 192.0.2.0/28 }" in rules
    assert "tcp dport { 6380 } ip saddr @sources4 accept" in rules and "tcp dport { 6379, 6380 } drop" in rules
    assert 'iif "lo" accept' in rules and call.option("fw-mark") in rules
    assert "ExecStart=/usr/sbin/nft -f /etc/hsi-redis/firewall.nft" in call.entry(firewall.UNIT_FILE).content
    # before the server is configured (it may open on the network only behind the rules)
    verbs = result.verbs(SERVER)
    assert verbs.index("firewall") < verbs.index("apply")
    assert result.report[SERVER]["firewall"]["sources"] == ["10.20.0.7", "192.0.2.0/28"]


def test_plain_text_allowed_opens_the_plain_port_to_the_sources_too(tls):
    result = run_flow(pair(tls, server_data={"redis_allow_plaintext": True}))
    assert "tcp dport { 6379, 6380 } ip saddr @sources4 accept" in \
        result.call(SERVER, "firewall").entry(firewall.NFT_FILE).content


def test_firewalld_hosts_get_the_deploys_own_policy(tls):
    el9 = fresh_host("rocky-9", server=tls_server(), firewall=FirewallState(cap=True, firewalld="running"))
    result = run_flow(pair(tls, server_host=el9))
    call = result.call(SERVER, "firewall")
    assert call.option("tool") == "firewalld" and call.paths() == [firewall.POLICY_FILE]
    policy = call.entry(firewall.POLICY_FILE).content
    assert '<rule family="ipv4" priority="-2">\n    <source address="10.20.0.7"/>\n    <port port="6380" ' \
           'protocol="tcp"/>\n    <accept/>' in policy
    assert policy.count("<drop/>") == 2 and '<ingress-zone name="ANY"/>' in policy
    assert "nftables" not in (result.call(SERVER, "install").option("packages") or "")
    again = run_flow(pair(tls, server_host=el9))
    assert "firewall" not in again.verbs(SERVER)


def test_a_container_without_net_admin_skips_the_firewall_with_a_note(tls):
    server = fresh_host("debian-12", container="docker", server=tls_server(), firewall=FirewallState(cap=False))
    result = run_flow(pair(tls, server_host=server))
    assert "firewall" not in result.verbs(SERVER)
    assert "nftables" not in (result.call(SERVER, "install").option("packages") or "")
    assert any("firewall skipped" in note and "CAP_NET_ADMIN" in note for note in result.report[SERVER]["notes"])
    assert result.report[SERVER]["status"] == "ok"


def test_rules_left_from_an_earlier_run_go_when_the_server_returns_to_loopback(tls):
    hosts = pair(tls)
    run_flow(hosts)
    server_fixture, data = hosts[SERVER]
    back = {**data, "redis_bind": ["127.0.0.1"]}
    result = run_flow({SERVER: (server_fixture, back), BACKEND: hosts[BACKEND]})
    call = result.call(SERVER, "firewall")
    assert call.option("tool") == "off" and set(call.options["remove"]) == {firewall.NFT_FILE, firewall.UNIT_FILE}


def test_a_backend_host_with_a_cli_pings_its_server_after_a_write_and_only_then(tls):
    backend = HostFixture("debian-12", client_cli="/usr/bin/redis-cli")
    hosts = pair(tls, backend_host=backend)
    result = run_flow(hosts)
    assert result.verbs(BACKEND) == ["write", "ping"]
    ping = result.call(BACKEND, "ping")
    assert (ping.option("addr"), ping.option("port")) == ("redis.campus.lan", "6380")
    assert (ping.option("ca"), ping.option("cert"), ping.option("key")) == (
        f"{TLS_DIR}/ca.crt", f"{TLS_DIR}/client.crt", f"{TLS_DIR}/client.key")
    assert ping.password == PASSWORD and PASSWORD not in ping.text
    assert run_flow(hosts).calls[BACKEND] == [], "nothing written: the read is the verification"


def test_a_backend_host_without_a_cli_says_the_connection_was_not_tried(tls):
    result = run_flow(pair(tls))
    assert "ping" not in result.verbs(BACKEND)
    assert any("no redis-cli or valkey-cli on this host" in n for n in result.report[BACKEND]["notes"])



def test_backup_passes_a_backend_host_by(tls, monkeypatch, tmp_path):
    """A backend host holds no Redis data: backup.py asks it for nothing beyond the read and says where
    its data is."""
    monkeypatch.chdir(tmp_path)
    result = run_flow(pair(tls), entry="backup.py")
    assert result.verbs(BACKEND) == []
    assert result.report[BACKEND]["status"] == "ok"
    assert result.report[BACKEND]["summary"] == f"backend host: no data here (its server @fake/{SERVER} holds it)"
