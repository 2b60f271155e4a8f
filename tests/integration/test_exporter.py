"""The distro's redis_exporter on real Debian 12 and 13 hosts (issue 11): installed from the Debian archive,
run by its packaged unit with the deploy's EnvironmentFile and its own ACL user, `redis_up 1` read from
its metrics on the host, that user refused writes, FLUSHALL and CONFIG GET, still `redis_up 1` after
rotate.py; first with the plain port, then the same hosts moved to TLS-only with mTLS. Then the operator's
side on the converged pair: `--dry` labels hosts and changes nothing, `--limit` runs and lists one host.

One module, two hosts, run in order: each host is deployed twice (plain, then TLS-only) and rotated twice.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dotenv import dotenv_values

from operations import pki as pki_helper

from .conftest import generated_password, make_runner

ENV = "/etc/default/prometheus-redis-exporter"
UNIT = "prometheus-redis-exporter"
VERSIONS = {"bookworm": "1.45.", "trixie": "1.69."}
# A stand-in for the HSI backend, so a rotation finishes in one run (the exporter is no consumer).
BACKEND_UNIT = (
    "printf '[Unit]\\nDescription=stand-in for the HSI backend\\n[Service]\\nExecStart=/bin/sleep infinity\\n' "
    "> /etc/systemd/system/hsi-backend.service && systemctl daemon-reload && systemctl start hsi-backend"
)
PLAIN = {"redis_exporter": True, "redis_backend_unit": "hsi-backend"}
TLS_FILES = ("/etc/hsi-redis-exporter/ca.crt", "/etc/hsi-redis-exporter/client.crt",
             "/etc/hsi-redis-exporter/client.key")


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return make_runner(tmp_path_factory)


@pytest.fixture(scope="module")
def hosts(host_factory):
    """A Debian 12 and a Debian 13 host with a stand-in backend unit, by suite."""
    found = {suite: host_factory(f"exporter-{suite}", suite) for suite in VERSIONS}
    for host in found.values():
        host.sh(BACKEND_UNIT)
    return found


def tls_data(runner, host) -> dict:
    """TLS-only with mTLS; the server certificate covers 127.0.0.1, where the exporter connects."""
    pki = Path(runner.secrets_dir) / "pki"
    pki_helper.ensure_pki(pki, {host.inventory_name: ["127.0.0.1", "localhost"]})
    return {**PLAIN, "redis_tls": True, "redis_tls_only": True,
            "redis_tls_client_cert": str(pki / "backend-client.crt"),
            "redis_tls_client_key": str(pki / "backend-client.key")}


def metrics(host) -> dict[str, str]:
    """The exporter's page read on the host as the deploy reads it without curl or wget (bash's /dev/tcp)."""
    page = host.sh("timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9121 && "
                   "printf \"GET /metrics HTTP/1.0\\r\\n\\r\\n\" >&3 && cat <&3'").stdout
    return dict(line.split(" ", 1) for line in page.splitlines() if line.startswith("redis_") and " " in line)


def as_exporter(host, password: str, *args: str, tls: bool = False) -> str:
    """redis-cli as hsi-exporter on the host (its password on stdin), over TLS with its own files."""
    connect = ("-p 6380 --tls --cacert /etc/hsi-redis-exporter/ca.crt --cert /etc/hsi-redis-exporter/client.crt "
               "--key /etc/hsi-redis-exporter/client.key") if tls else "-p 6379"
    script = f'REDISCLI_AUTH="$(cat)" timeout 5 redis-cli --no-auth-warning --user hsi-exporter {connect} {" ".join(args)}'
    return host.sh(script + " 2>&1", check=False, stdin=password).stdout.strip()


def as_admin(host, *args: str, tls: bool = False) -> str:
    connect = ("-p 6380 --tls --cacert /etc/redis/tls-ca.crt --cert /etc/hsi-redis/tls/client.crt "
               "--key /etc/hsi-redis/tls/client.key") if tls else ""
    return host.sh(f'REDISCLI_AUTH="$(cat /etc/hsi-redis/cli.auth)" redis-cli --no-auth-warning --user hsi-admin '
                   f"{connect} {' '.join(args)}").stdout


def backend_password(host) -> str:
    return dotenv_values(stream=io.StringIO(host.sh("cat /opt/hsi/backend/.env").stdout))["REDIS_PASSWORD"]


def main_pid(host) -> str:
    return host.sh(f"systemctl show -p MainPID --value {UNIT}").stdout.strip()


def check_exporter(runner, host, tls: bool) -> str:
    """What every converged host shows; returns the exporter's password."""
    # what it runs for a page is all allowed: no denial of its user in ACL LOG
    assert as_admin(host, "acl log reset", tls=tls).strip() == "OK"
    assert metrics(host)["redis_up"] == "1" and metrics(host)["redis_up"] == "1"
    assert "hsi-exporter" not in as_admin(host, "acl log", tls=tls)
    assert host.sh(f"systemctl is-active {UNIT}; systemctl is-enabled {UNIT}").stdout.split() == ["active", "enabled"]
    assert host.stat(ENV) == "640 root prometheus"
    env = dotenv_values(stream=io.StringIO(host.sh(f"cat {ENV}").stdout))
    password = generated_password(runner, host, "exporter_password")
    assert env["REDIS_USER"] == "hsi-exporter" and env["REDIS_PASSWORD"] == password
    assert backend_password(host) not in host.sh(f"cat {ENV}").stdout, "never the backend's password"
    # it listens on loopback only (0100007F:23A1 is 127.0.0.1:9121 in /proc/net/tcp)
    sockets = host.sh("cat /proc/net/tcp /proc/net/tcp6").stdout
    listening = [line.split()[1] for line in sockets.splitlines()[1:] if line.split()[3] == "0A"]
    assert [a for a in listening if a.endswith(":23A1")] == ["0100007F:23A1"], listening
    # its identity: no writes, no wiping, no CONFIG GET (which would hand it requirepass)
    assert as_exporter(host, password, "ping", tls=tls) == "PONG"
    for command in ("set hsi:probe x", "flushall", "config get requirepass", "get hsi:probe"):
        assert as_exporter(host, password, command, tls=tls).startswith("NOPERM"), command
    return password


@pytest.mark.parametrize("suite", list(VERSIONS))
def test_plain_the_packaged_exporter_reports_redis_up_with_its_own_read_only_user(runner, hosts, suite):
    host = hosts[suite]
    result = runner({host: PLAIN})
    assert result.returncode == 0, result.output
    entry = result.host(host)
    assert entry["status"] == "ok", entry
    assert entry["exporter"] == {"metrics": "http://127.0.0.1:9121/metrics", "redis_up": "1"}
    version = host.sh(f"dpkg-query -W -f '${{Version}}' {UNIT}").stdout
    assert version.startswith(VERSIONS[suite]), version  # the Debian archive's package
    password = check_exporter(runner, host, tls=False)
    assert password not in result.output
    again = runner({host: PLAIN})
    assert again.returncode == 0 and again.host(host)["changes"] == 0, again.output


@pytest.mark.parametrize("suite", list(VERSIONS))
def test_plain_rotation_leaves_the_exporter_reporting(runner, hosts, suite):
    host = hosts[suite]
    old, pid = generated_password(runner, host), main_pid(host)
    result = runner({host: PLAIN}, entry="rotate.py")
    assert result.returncode == 0, result.output
    assert result.host(host)["status"] == "ok", result.host(host)
    assert generated_password(runner, host) != old and backend_password(host) != old
    assert metrics(host)["redis_up"] == "1"
    assert main_pid(host) == pid, "the exporter was not restarted: its password did not change"


@pytest.mark.parametrize("suite", list(VERSIONS))
def test_tls_only_the_exporter_follows_over_tls_with_its_own_files(runner, hosts, suite):
    host = hosts[suite]
    pid = main_pid(host)
    result = runner({host: tls_data(runner, host)})
    assert result.returncode == 0, result.output
    assert result.host(host)["status"] == "ok", result.host(host)
    assert main_pid(host) != pid, "restarted: its file changed"
    env = dotenv_values(stream=io.StringIO(host.sh(f"cat {ENV}").stdout))
    assert env["REDIS_ADDR"] == "rediss://127.0.0.1:6380"
    assert env["REDIS_EXPORTER_TLS_CLIENT_KEY_FILE"] == "/etc/hsi-redis-exporter/client.key"
    assert host.stat("/etc/hsi-redis-exporter") == "750 root prometheus"
    assert [host.stat(path) for path in TLS_FILES] == ["644 root prometheus", "644 root prometheus",
                                                       "640 root prometheus"]
    assert "Connection refused" in host.sh("timeout 5 redis-cli -p 6379 ping 2>&1", check=False).stdout
    check_exporter(runner, host, tls=True)


@pytest.mark.parametrize("suite", list(VERSIONS))
def test_tls_only_rotation_leaves_the_exporter_reporting(runner, hosts, suite):
    host = hosts[suite]
    old, pid = generated_password(runner, host), main_pid(host)
    result = runner({host: tls_data(runner, host)}, entry="rotate.py")
    assert result.returncode == 0, result.output
    assert result.host(host)["status"] == "ok", result.host(host)
    assert generated_password(runner, host) != old
    assert metrics(host)["redis_up"] == "1" and main_pid(host) == pid


def test_a_dry_run_labels_the_hosts_and_changes_nothing_and_limit_runs_one(runner, hosts):
    bookworm, trixie = hosts["bookworm"], hosts["trixie"]
    inventory = {bookworm: tls_data(runner, bookworm), trixie: {**tls_data(runner, trixie), "redis_maxmemory": "150mb"}}
    config_before = trixie.sh("sha256sum /etc/redis/redis.conf").stdout
    dry = runner(inventory, args=("--dry",), yes=False)  # no -y: pyinfra works out what would change
    assert dry.returncode == 0, dry.output
    assert {name: entry["status"] for name, entry in dry.report["hosts"].items()} == {
        bookworm.inventory_name: "dry run", trixie.inventory_name: "dry run"}
    assert dry.host(bookworm)["would_change"] == []
    assert [step for step in dry.host(trixie)["would_change"] if step.startswith("Configure")], dry.host(trixie)
    assert "DRY RUN nothing changed (--dry); nothing to do" in dry.output
    assert "DRY RUN nothing changed (--dry); would run: Configure" in dry.output
    assert trixie.sh("sha256sum /etc/redis/redis.conf").stdout == config_before
    one = runner(inventory, entry="verify.py", args=("--limit", bookworm.inventory_name))
    assert one.returncode == 0, one.output
    assert list(one.report["hosts"]) == [bookworm.inventory_name] and one.report["ok"] is True
    assert "(1 host)" in one.output and trixie.inventory_name not in one.output.split("hsi-redis summary")[1]
