"""backup.py, restore.py and scheduled snapshots on real Debian 12/13 hosts (issue 12).

Hosts (deployed once for the module): Debian 12 (Redis 7.0.15), Debian 13 (Redis 8.0.2), Debian 13 with
Valkey 8.1, and a fresh Debian 12 for the Docker Compose migration, the scheduled snapshots and the
rollback. Every check reads the real server: each key's type, value and absolute expiry (PEXPIRETIME),
consumer groups and their pending entries, AOF on, a second restart.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.program.conftest import free_port

from .conftest import generated_password, make_runner

# Seen by a watcher scanning for world-readable copies: a value only the dataset holds.
MARKER = "hsi-backup-marker-7f3a9c"
KINDS = (  # 8 keys in database 0, two of them with a TTL
    f"SET s:1 {MARKER}\nSET s:2 two\nHSET h:1 a 1 b 2\nRPUSH l:1 a b c\nZADD z:1 1 a 2.5 b\n"
    "XADD x:1 1-1 f v\nXADD x:1 2-1 g w\nXGROUP CREATE x:1 workers 0\nXREADGROUP GROUP workers c1 COUNT 1 STREAMS x:1 >\n"
    "SET t:1 v EX 3000\nHSET t:2 f v\nEXPIRE t:2 5000\n"
)
FILL = KINDS + "SELECT 5\nSET far:1 away\n"  # and one in database 5
ADMIN_CLI = 'REDISCLI_AUTH="$(cat /etc/hsi-redis/cli.auth)" {cli} --no-auth-warning --user hsi-admin'
VALUE = {"string": "GET", "hash": "HGETALL", "list": "LRANGE {} 0 -1", "zset": "ZRANGE {} 0 -1 WITHSCORES",
         "stream": "XRANGE {} - +"}


def admin(host, *args: str, cli: str = "redis-cli", stdin: str | None = None) -> str:
    quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in args)
    return host.sh(f"{ADMIN_CLI.format(cli=cli)} {quoted}", stdin=stdin).stdout.strip()


def dataset(host, cli: str = "redis-cli") -> dict:
    """db -> key -> (type, value, absolute expiry in ms); a stream's consumer groups (name, pending, last id)."""
    found = {}
    for db in ("0", "5"):
        keys = sorted(admin(host, "-n", db, "--scan", cli=cli).split())
        if not keys:
            continue
        types = admin(host, "-n", db, "--csv", cli=cli, stdin="".join(f"TYPE {k}\n" for k in keys)).splitlines()
        commands = []
        for key, kind in zip(keys, (t.strip('"') for t in types), strict=True):
            value = VALUE[kind].format(key) if "{}" in VALUE[kind] else f"{VALUE[kind]} {key}"
            commands += [value, f"PEXPIRETIME {key}"] + ([f"XINFO GROUPS {key}"] if kind == "stream" else [])
        replies = admin(host, "-n", db, "--csv", cli=cli, stdin="".join(c + "\n" for c in commands)).splitlines()
        replies.reverse()
        for key, kind in zip(keys, (t.strip('"') for t in types), strict=True):
            value, expiry = replies.pop(), int(replies.pop())
            if kind == "hash":  # field order is the encoding's: compare as pairs
                cells = next(csv.reader([value]))
                value = sorted(zip(cells[::2], cells[1::2], strict=True))
            groups = ()
            if kind == "stream":
                cells = next(csv.reader([replies.pop()]))
                info = dict(zip(cells[::2], cells[1::2], strict=False))
                groups = (info.get("name"), info.get("pending"), info.get("last-delivered-id"))
            found.setdefault(db, {})[key] = (kind, value, expiry, groups)
    return found


def same_data(after: dict, before: dict) -> None:
    """Every key back, with its value; expiries within a second."""
    assert {db: sorted(keys) for db, keys in after.items()} == {db: sorted(keys) for db, keys in before.items()}
    for db, keys in before.items():
        for key, (kind, value, expiry, groups) in keys.items():
            got = after[db][key]
            assert got[0] == kind and got[1] == value and got[3] == groups, (key, got, before[db][key])
            assert (expiry < 0 and got[2] == expiry) or abs(got[2] - expiry) <= 1000, (key, got[2], expiry)


def aof_on(host, cli: str = "redis-cli") -> bool:
    return "aof_enabled:1" in admin(host, "info", "persistence", cli=cli)


def run_id(host, cli: str = "redis-cli") -> str:
    return admin(host, "info", "server", cli=cli).split("run_id:")[1].split()[0]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return make_runner(tmp_path_factory)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("control") / "backups"


@pytest.fixture(scope="module")
def hosts(host_factory, runner, store):
    """Four deployed hosts; the first three hold the same dataset."""
    found = {"deb12": host_factory("bk-deb12", "bookworm"), "deb13": host_factory("bk-deb13", "trixie"),
             "valkey": host_factory("bk-valkey", "trixie"), "fresh": host_factory("bk-fresh", "bookworm")}
    result = runner({host: data(name, store) for name, host in found.items()})
    assert result.returncode == 0, result.output
    for name in ("deb12", "deb13", "valkey"):
        admin(found[name], cli=cli_of(name), stdin=FILL)
    return found


def cli_of(name: str) -> str:
    return "valkey-cli" if name == "valkey" else "redis-cli"


def data(name: str, store: Path, **extra) -> dict:
    base = {"redis_backup_dir": str(store), "redis_backend_env_path": ""}
    if name == "valkey":
        base["redis_flavour"] = "valkey"
    if name == "fresh":
        base.update(redis_backup_schedule="hourly", redis_snapshot_keep=2)
    return {**base, **extra}


def restore(runner, host, name: str, store: Path, source, confirm: str | None = None, **extra):
    args = ["--data", f"restore_from={source}"]
    if confirm is not False:
        args += ["--data", f"restore_confirm={confirm or host.inventory_name}"]
    return runner({host: data(name, store, **extra)}, entry="restore.py", args=tuple(args))


@pytest.fixture(scope="module")
def backups(hosts, runner, store):
    """backup.py on the three filled hosts (one run); their datasets at that moment."""
    before = {name: dataset(hosts[name], cli_of(name)) for name in ("deb12", "deb13", "valkey")}
    result = runner({hosts[n]: data(n, store) for n in ("deb12", "deb13", "valkey")}, entry="backup.py")
    assert result.returncode == 0, result.output
    found = {name: Path(result.host(hosts[name])["backup"]) for name in before}
    return found, before, result


def secrets_of(runner, *hosts) -> list[str]:
    return [generated_password(runner, h, n) for h in hosts for n in ("redis_password", "admin_password")]


def test_a_backup_is_a_private_checked_copy_with_a_manifest(hosts, backups, runner, store):
    found, before, result = backups
    for name, directory in found.items():
        host = hosts[name]
        manifest = json.loads((directory / "manifest.json").read_text())
        rdb = directory / "dump.rdb"
        assert directory.parent == store / host.inventory_name.replace("/", "_")
        assert (mode(store), mode(directory.parent), mode(directory), mode(rdb), mode(directory / "manifest.json")) \
            == (0o700, 0o700, 0o700, 0o600, 0o600)
        assert manifest["size"] == rdb.stat().st_size and rdb.read_bytes()[:5] == b"REDIS"
        expected = {"deb12": ("redis", "7.0.", 10), "deb13": ("redis", "8.0.", 12), "valkey": ("valkey", "8.1.", 11)}
        flavour, version, rdb_version = expected[name]
        assert manifest["flavour"] == flavour and manifest["version"].startswith(version), manifest
        assert manifest["rdb_version"] == rdb_version and manifest["keys"] == 9 and manifest["keys_with_ttl"] == 2
        assert manifest["host"] == host.inventory_name and manifest["time"].endswith("Z")
        # nothing of it left on the host; nothing secret here or in the output
        assert host.sh("find /var/lib/hsi-redis/outgoing -type f | wc -l").stdout.strip() == "0"
        assert host.sh("stat -c %a /var/lib/hsi-redis /var/lib/hsi-redis/outgoing").stdout.split() == ["700", "700"]
    for secret in secrets_of(runner, *(hosts[n] for n in found)):
        assert secret not in result.output
        assert all(secret not in (d / "manifest.json").read_text() for d in found.values())


@pytest.mark.parametrize("name", ["deb12", "deb13"])
def test_flushall_then_restore_brings_back_every_key_and_ttl_with_aof_on(hosts, backups, runner, store, name):
    found, before, _ = backups
    host = hosts[name]
    assert admin(host, "flushall") == "OK" and admin(host, "dbsize") == "0"
    # no confirmation: nothing happens, not even a read
    server = run_id(host)
    refused = restore(runner, host, name, store, found[name], confirm=False)
    assert refused.returncode != 0 and "restore_confirm" in refused.output
    refused = restore(runner, host, name, store, found[name], confirm="@docker/some-other-host")
    assert refused.returncode != 0 and "does not name this host" in refused.output
    assert run_id(host) == server and admin(host, "dbsize") == "0"

    result = restore(runner, host, name, store, found[name])
    assert result.returncode == 0, result.output
    entry = result.host(host)
    assert entry["status"] == "ok" and entry["restored_keys"] == "9", entry
    same_data(dataset(host), before[name])
    assert aof_on(host) and host.sh("ls /var/lib/redis/appendonlydir | grep -c manifest").stdout.strip() == "1"
    assert host.sh("ls -d /var/lib/redis/*.hsi-before-* | wc -l").stdout.strip() != "0"
    assert "appendonly no" not in host.sh("cat /etc/redis/redis.conf").stdout
    for secret in secrets_of(runner, host):
        assert secret not in result.output
    host.sh("systemctl restart redis-server")
    for _ in range(100):
        if admin(host, "ping") == "PONG":
            break
        time.sleep(0.1)
    same_data(dataset(host), before[name])


@pytest.mark.parametrize("onto", ["deb13", "valkey"])
def test_a_debian_12_backup_restores_onto_newer_servers(hosts, backups, runner, store, onto):
    found, before, _ = backups
    host = hosts[onto]
    result = restore(runner, host, onto, store, found["deb12"])
    assert result.returncode == 0, result.output
    same_data(dataset(host, cli_of(onto)), before["deb12"])
    assert aof_on(host, cli_of(onto))


def test_a_debian_13_backup_onto_debian_12_is_refused_naming_both_versions(hosts, backups, runner, store):
    found, _, _ = backups
    host = hosts["deb12"]
    server, keys = run_id(host), admin(host, "dbsize")
    kept = host.sh("ls -d /var/lib/redis/*.hsi-before-* 2>/dev/null | wc -l").stdout
    result = restore(runner, host, "deb12", store, found["deb13"])
    assert result.returncode != 0
    problem = result.host(host)["problem"]
    assert "written by redis 8.0.2 in RDB format 12" in problem and "redis 7.0.15 on this host reads RDB formats up to 10" \
        in problem, problem
    assert "nothing was changed" in problem
    assert run_id(host) == server and admin(host, "dbsize") == keys
    assert host.sh("ls -d /var/lib/redis/*.hsi-before-* 2>/dev/null | wc -l").stdout == kept
    assert host.sh("ls -A /var/lib/hsi-redis | grep -c incoming || true").stdout.strip() == "0", "nothing was sent"


def test_a_cut_backup_is_refused_by_its_checksum(hosts, backups, runner, store, tmp_path):
    found, _, _ = backups
    cut = tmp_path / "20250101T000000Z"
    cut.mkdir()
    (cut / "manifest.json").write_bytes((found["deb12"] / "manifest.json").read_bytes())
    (cut / "dump.rdb").write_bytes((found["deb12"] / "dump.rdb").read_bytes()[:-10])
    host = hosts["deb12"]
    server = run_id(host)
    result = restore(runner, host, "deb12", store, cut)
    assert result.returncode != 0 and "does not match its manifest" in result.output, result.output
    assert run_id(host) == server


@pytest.fixture(scope="module")
def compose_volume(tmp_path_factory) -> tuple[Path, dict]:
    """A data directory written by a separate `redis-server --appendonly yes --dir ...` (the Compose
    volume's stand-in), and the dataset it holds."""
    volume = tmp_path_factory.mktemp("compose") / "data"
    volume.mkdir()
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(volume),
                               "--appendonly", "yes"], stdout=subprocess.DEVNULL)
    cli = ["redis-cli", "-p", str(port)]
    try:
        for _ in range(100):
            if subprocess.run([*cli, "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        lines = KINDS + "".join(f"SET c:{i} {i}\n" for i in range(300))
        subprocess.run(cli, input=lines, capture_output=True, text=True, check=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    os.utime(volume / "dump.rdb", (time.time() - 60, time.time() - 60))  # the AOF is the newer: it is taken
    assert (volume / "appendonlydir" / "appendonly.aof.manifest").is_file()
    return volume


def test_a_compose_volume_restores_onto_a_fresh_host(hosts, runner, store, compose_volume):
    host = hosts["fresh"]
    assert admin(host, "dbsize") == "0"
    result = restore(runner, host, "fresh", store, compose_volume)
    assert result.returncode == 0, result.output
    assert "AOF directory" in result.host(host)["summary"]
    assert admin(host, "dbsize") == "308" and admin(host, "hget", "h:1", "b") == "2"
    assert admin(host, "get", "s:1") == MARKER and admin(host, "get", "c:299") == "299"
    assert 2900 < int(admin(host, "ttl", "t:1")) <= 3000 and aof_on(host)
    assert admin(host, "xinfo", "groups", "x:1").splitlines()[1] == "workers"


def test_scheduled_snapshots_fire_prune_and_verify_reports_their_age(hosts, runner, store):
    host = hosts["fresh"]
    assert host.sh("systemctl is-enabled hsi-redis-snapshot.timer").stdout.strip() == "enabled"
    assert host.sh("systemctl is-active hsi-redis-snapshot.timer").stdout.strip() == "active"
    assert "OnCalendar=hourly" in host.sh("cat /etc/systemd/system/hsi-redis-snapshot.timer").stdout
    assert host.stat("/usr/local/sbin/hsi-redis") == "755 root root"
    for _ in range(3):  # the timer's service, started as the timer starts it
        host.sh("systemctl start hsi-redis-snapshot.service")
    names = host.sh("ls /var/lib/hsi-redis/snapshots").stdout.split()
    assert len(names) == 2, names  # redis_snapshot_keep
    newest = f"/var/lib/hsi-redis/snapshots/{names[-1]}"
    manifest = json.loads(host.sh(f"cat {newest}/manifest.json").stdout)
    assert manifest["keys"] == int(admin(host, "dbsize")) and manifest["rdb_version"] == 10
    assert host.sh(f"stat -c %a /var/lib/hsi-redis/snapshots {newest} {newest}/dump.rdb").stdout.split() \
        == ["700", "700", "600"]
    fresh = runner({host: data("fresh", store)}, entry="verify.py")
    entry = fresh.host(host)
    assert fresh.returncode == 0 and entry["snapshots"] == 2 and entry["snapshot_age_seconds"] < 120, entry
    assert not [w for w in entry.get("warnings", []) if "snapshot" in w]
    host.sh(f"touch -d '3 hours ago' {newest}/manifest.json")
    stale = runner({host: data("fresh", store)}, entry="verify.py").host(host)
    assert any("newest scheduled snapshot is 3 hours old" in w for w in stale["warnings"]), stale


def test_a_restore_whose_server_does_not_come_up_rolls_back(hosts, backups, runner, store):
    """The Debian 12 backup holds a key in database 5; a server configured with 2 databases refuses to
    load it (the check tool cannot know): the previous data must be put back and served."""
    found, _, _ = backups
    host = hosts["fresh"]
    two = {"redis_extra_config": ["databases 2"]}
    assert runner({host: data("fresh", store, **two)}).returncode == 0
    keys = admin(host, "dbsize")
    kept = host.sh("ls -d /var/lib/redis/*.hsi-before-* 2>/dev/null | wc -l").stdout
    result = restore(runner, host, "fresh", store, found["deb12"], **two)
    assert result.returncode != 0
    problem = result.host(host)["problem"]
    assert "did not come up on the backup" in problem and f"serves the previous data ({keys} keys)" in problem, problem
    assert admin(host, "dbsize") == keys and admin(host, "get", "s:1") == MARKER and aof_on(host)
    assert host.sh("ls -d /var/lib/redis/*.hsi-before-* 2>/dev/null | wc -l").stdout == kept  # all put back
