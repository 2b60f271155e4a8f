"""Snapshots and restores on the host (issue 12), against a real local redis-server 7.0: `snapshot`
(a checked RDB and its manifest, root only, retention), the snapshot age in `state`, `stage` and
`restore` (checksum, check tool, every key and TTL back with AOF on, the previous data kept, rollback
when the server does not come up or holds other keys), an AOF directory from another server."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import SERVICE, free_port

# A diskless `redis-cli --rdb` waits out repl-diskless-sync-delay (5 s by default, for more replicas to
# join) before the transfer starts; these servers skip the wait. The snapshot itself is the same.
NO_SYNC_DELAY = ["repl-diskless-sync-delay 0"]


@pytest.fixture
def make_host(make_host):
    def make(name: str = "h", **kw):
        kw.setdefault("extra", list(NO_SYNC_DELAY))
        return make_host(name, **kw)
    return make


def fill_kinds(h) -> None:
    """Strings, a hash, a stream with a consumer group, a list, a sorted set, keys with TTLs."""
    h.cli(stdin="".join([
        "SET s:1 one\n", "SET s:2 two\n", "HSET h:1 a 1 b 2\n", "XADD x:1 1-1 f v\n", "XADD x:1 2-1 g w\n",
        "XGROUP CREATE x:1 workers 0\n", "XREADGROUP GROUP workers c1 COUNT 1 STREAMS x:1 >\n",
        "RPUSH l:1 a b c\n", "ZADD z:1 1 a 2 b\n", "SET t:1 v EX 3000\n", "HSET t:2 f v\n", "EXPIRE t:2 5000\n",
    ]))


def dataset(h) -> dict:
    """Every key's type and value (stream: entries and groups), and its absolute expiry (ms)."""
    found = {}
    for key in sorted(h.cli("--scan").split()):
        kind = h.cli("type", key)
        value = {"string": ("get",), "hash": ("hgetall",), "list": ("lrange", "0", "-1"),
                 "zset": ("zrange", "0", "-1", "withscores"), "stream": ("xrange", "-", "+")}[kind]
        found[key] = (kind, h.cli(value[0], key, *value[1:]), h.cli("pexpiretime", key))
        if kind == "stream":
            found[key] += (h.cli("xinfo", "groups", key),)
    return found


def snapshot(h, into: Path, keep: int = 0):
    return h.run("snapshot", "--into", str(into), "--keep", str(keep))


def staged(h, source: Path) -> Path:
    """A stage (the `stage` verb) holding `source`: a dump.rdb, or a directory's contents."""
    r = h.run("stage", "--work", str(h.root / "work"))
    assert r.code == 0, r.err
    stage = Path(r.keys["stage"])
    if source.is_dir():
        shutil.copytree(source, stage, dirs_exist_ok=True)
    else:
        shutil.copy(source, stage / "dump.rdb")
    return stage


def restore(h, stage: Path, *args: str):
    return h.run("restore", "--work", str(h.root / "work"), "--from", str(stage), *args)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_snapshot_is_a_checked_rdb_with_its_manifest_root_only(host):
    fill_kinds(host)
    into = host.root / "snaps"
    r = snapshot(host, into)
    assert r.code == 0, r.err
    snap = Path(r.keys["snapshot.dir"])
    rdb, manifest = snap / "dump.rdb", json.loads((snap / "manifest.json").read_text())
    assert rdb.read_bytes()[:9] == b"REDIS0010"
    assert r.keys["snapshot.sha256"] == manifest["sha256"] == hashlib.sha256(rdb.read_bytes()).hexdigest()
    assert int(r.keys["snapshot.size"]) == manifest["size"] == rdb.stat().st_size
    assert (manifest["flavour"], manifest["version"], manifest["rdb_version"]) == ("redis", "7.0.15", 10)
    assert manifest["keys"] == manifest["server_keys"] == 8 and manifest["keys_with_ttl"] == 2
    assert manifest["time"].endswith("Z") and snap.name == manifest["time"].replace("-", "").replace(":", "")
    assert (mode(into), mode(snap), mode(rdb), mode(snap / "manifest.json")) == (0o700, 0o700, 0o600, 0o600)
    assert no_secret_in(r, host)
    # the server's own data directory is untouched: the RDB came over the replication stream
    assert not (host.data / "dump.rdb").exists()


def no_secret_in(r, h) -> bool:
    return h.admin_pw not in r.out + r.err and h.backend_pw not in r.out + r.err


def test_snapshots_keep_the_newest_n_and_state_reports_the_newest_age(host):
    host.fill(3)
    into = host.root / "snaps"
    names = []
    for _ in range(3):
        r = snapshot(host, into, keep=2)
        assert r.code == 0, r.err
        names.append(Path(r.keys["snapshot.dir"]).name)
    assert sorted(p.name for p in into.iterdir()) == names[1:]
    assert r.all("pruned") == [names[0]] and len(set(names)) == 3
    os.utime(into / names[2] / "manifest.json", (time.time() - 7200, time.time() - 7200))
    state = host.run("state", "--snapshots", str(into))
    count, age = state.keys["snapshots"].split()
    assert count == "2" and 7195 <= int(age) <= 7300
    assert host.run("state", "--snapshots", str(host.root / "none")).keys["snapshots"] == "0 -"


def test_a_snapshot_needs_the_admin_and_leaves_nothing_when_refused(host):
    host.put_secret("cli.auth", "not-the-admin-password-0")
    into = host.root / "snaps"
    r = snapshot(host, into)
    assert r.code == 1 and "does not answer as hsi-admin" in r.err and "no snapshot taken" in r.err
    assert list(into.iterdir()) == [] and "not-the-admin-password-0" not in r.err


def test_restore_brings_back_every_key_and_ttl_with_aof_on(host):
    fill_kinds(host)
    before = dataset(host)
    snap = Path(snapshot(host, host.root / "snaps").keys["snapshot.dir"])
    manifest = json.loads((snap / "manifest.json").read_text())
    host.cli("flushall")
    host.cli("set", "after-backup", "x")
    stage = staged(host, snap / "dump.rdb")
    r = restore(host, stage, "--sha256", manifest["sha256"], "--keys", str(manifest["keys"]))
    assert r.code == 0, r.err
    assert r.keys["restored"] == "8 6"
    assert dataset(host) == before
    assert host.cli("config", "get", "appendonly").split() == ["appendonly", "yes"]
    assert (host.data / "appendonlydir").is_dir()
    assert any(p.name.startswith("appendonlydir.hsi-before-") for p in host.data.iterdir())
    assert not stage.exists()  # the stage goes with the restore
    assert "appendonly no" not in host.config.read_text()  # the config is as it was
    # a second restart keeps everything (the AOF holds it)
    assert host.ctl("restart", SERVICE).returncode == 0
    host.wait_pong()
    assert dataset(host) == before


def test_a_cut_or_unreadable_backup_is_refused_before_anything_changes(host):
    host.fill(20)
    snap = Path(snapshot(host, host.root / "snaps").keys["snapshot.dir"])
    manifest = json.loads((snap / "manifest.json").read_text())
    run_id = host.cli("info", "server").split("run_id:")[1].split()[0]
    cut = host.root / "cut.rdb"
    cut.write_bytes((snap / "dump.rdb").read_bytes()[:-20])
    r = restore(host, staged(host, cut), "--sha256", manifest["sha256"])
    assert r.code == 1 and "SHA-256 differs" in r.err and "nothing was changed" in r.err
    r = restore(host, staged(host, cut))  # no manifest: the check tool refuses it
    assert r.code == 1 and "cannot read the backup" in r.err and "Unexpected EOF" in r.err, r.err
    newer = host.root / "newer.rdb"
    newer.write_bytes(b"REDIS0012" + (snap / "dump.rdb").read_bytes()[9:])
    r = restore(host, staged(host, newer))
    assert r.code == 1, r.err
    assert "redis 7.0.15 here cannot read the backup (RDB format 12)" in r.err
    assert "Can't handle RDB format version 12" in r.err
    assert host.cli("info", "server").split("run_id:")[1].split()[0] == run_id and host.dbsize() == 20
    assert not any(".hsi-before-" in p.name for p in host.data.iterdir())


def test_a_restore_whose_server_does_not_come_up_rolls_back(make_host):
    """A backup with keys in database 5 cannot load into a server configured with 2 databases."""
    source = make_host("source")
    source.start()
    source.cli(stdin="SELECT 5\nSET far away\n")
    source.fill(4)
    snap = Path(snapshot(source, source.root / "snaps").keys["snapshot.dir"])
    h = make_host("target", extra=["databases 2"])
    h.start()
    h.fill(9, prefix="mine")
    r = restore(h, staged(h, snap / "dump.rdb"))
    assert r.code == 1, r.out
    assert "did not come up on the backup" in r.err and "rolled back" in r.err and "(9 keys)" in r.err, r.err
    assert h.dbsize() == 9 and h.cli("get", "mine3") == "v3"
    assert h.cli("config", "get", "appendonly").split() == ["appendonly", "yes"]
    assert not any(".hsi-before-" in p.name for p in h.data.iterdir())  # everything put back


def test_a_restore_whose_keys_differ_rolls_back(make_host):
    """A server that evicts on its first command (tiny maxmemory, allkeys-lru) holds fewer keys."""
    source = make_host("source")
    source.start()
    source.cli(stdin="".join(f"SET big{i} {'x' * 20000}\n" for i in range(200)))
    snap = Path(snapshot(source, source.root / "snaps").keys["snapshot.dir"])
    h = make_host("target", extra=["maxmemory 2mb", "maxmemory-policy allkeys-lru"])
    h.start()
    r = restore(h, staged(h, snap / "dump.rdb"))
    assert r.code == 1, r.out
    assert "the backup 200 (200 without a TTL)" in r.err and "rolled back" in r.err, r.err
    assert h.dbsize() == 0


def test_an_aof_directory_from_another_server_restores(make_host, tmp_path):
    """The Docker Compose volume: appendonlydir/ with its manifest, written by a separate server."""
    volume = tmp_path / "volume"
    volume.mkdir()
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(volume),
                               "--appendonly", "yes", "--save", ""], stdout=subprocess.DEVNULL)
    try:
        cli = ["redis-cli", "-p", str(port)]
        for _ in range(100):
            if subprocess.run([*cli, "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        lines = "".join(f"SET c{i} {i}\n" for i in range(50)) + "HSET ch f v\nSET ct v EX 4000\nXADD cx 1-1 a b\n"
        subprocess.run(cli, input=lines, capture_output=True, text=True, check=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert (volume / "appendonlydir" / "appendonly.aof.manifest").exists()
    h = make_host()
    h.start()
    r = restore(h, stage_aof(h, volume))
    assert r.code == 0, r.err
    assert r.keys["restored"] == "53 52" and h.cli("get", "c42") == "42" and 3990 < int(h.cli("ttl", "ct")) <= 4000
    assert h.ctl("restart", SERVICE).returncode == 0
    h.wait_pong()
    assert h.dbsize() == 53


def stage_aof(h, volume: Path) -> Path:
    r = h.run("stage", "--work", str(h.root / "work"))
    stage = Path(r.keys["stage"])
    shutil.copytree(volume / "appendonlydir", stage / "appendonlydir")
    return stage


def test_an_aof_this_server_cannot_load_is_refused(host, tmp_path):
    host.fill(5)
    volume = tmp_path / "volume" / "appendonlydir"
    volume.mkdir(parents=True)
    (volume / "appendonly.aof.manifest").write_text("file appendonly.aof.1.base.rdb seq 1 type b\n")
    (volume / "appendonly.aof.1.base.rdb").write_bytes(b"REDIS0012\xfa\x09redis-ver\x058.0.2\xff" + b"\0" * 8)
    r = restore(host, stage_aof(host, volume.parent))
    assert r.code == 1 and "redis 7.0.15 here cannot load the AOF" in r.err, r.err
    assert "Can't handle RDB format version 12" in r.err and "nothing was changed" in r.err
    assert host.dbsize() == 5


def test_a_restore_waits_for_a_pending_restart_to_be_done(host):
    host.fill(2)
    snap = Path(snapshot(host, host.root / "snaps").keys["snapshot.dir"])
    (host.state / "restart-pending").write_text("")
    r = restore(host, staged(host, snap / "dump.rdb"))
    assert r.code == 1 and "run deploy.py first" in r.err and host.dbsize() == 2
