"""The control machine's side of backups and restores (issue 12): private directories and files,
retention, what `restore_from` may name (and what is refused before any host is touched), the RDB
format check against the target's server, restore.py's confirmation, the new settings."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from operations import backup_store, restores, validation, versions
from operations.backup_store import SourceError

RDB = b"REDIS0010\xfa\x09redis-ver\x067.0.15\xfa\x0aredis-bits\xc0\x40\xfe\x00" + b"\x00" * 16


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def make_backup(root: Path, name: str, content: bytes = RDB, **manifest) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "dump.rdb").write_bytes(content)
    fields = {"file": "dump.rdb", "sha256": hashlib.sha256(content).hexdigest(), "size": len(content),
              "flavour": "redis", "version": "7.0.15", "rdb_version": 10, "keys": 3, **manifest}
    (directory / "manifest.json").write_text(json.dumps(fields))
    return directory


def test_backup_directories_and_files_are_private_from_the_start(tmp_path):
    os.umask(0o022)
    root = tmp_path / "a" / "backups"
    first = backup_store.new_backup_dir(root, "@docker/nvr-1", "20250105T030000Z")
    assert first == root / "@docker_nvr-1" / "20250105T030000Z"
    assert {mode(p) for p in (tmp_path / "a", root, first.parent, first)} == {0o700}
    second = backup_store.new_backup_dir(root, "@docker/nvr-1", "20250105T030000Z")  # taken: now's time
    assert second != first and backup_store.STAMP_RE.fullmatch(second.name)
    with backup_store.create_private(first / "dump.rdb") as handle:
        handle.write(b"x")
    assert mode(first / "dump.rdb") == 0o600
    with pytest.raises(FileExistsError):
        backup_store.create_private(first / "dump.rdb")
    assert mode(backup_store.write_manifest(first, {"a": 1})) == 0o600


def test_retention_keeps_the_newest_complete_backups_only(tmp_path):
    for name in ("20250101T000000Z", "20250102T000000Z", "20250103T000000Z", "20250104T000000Z"):
        make_backup(tmp_path, name)
    (tmp_path / "20250105T000000Z").mkdir()          # incomplete (no manifest): not counted, not removed
    (tmp_path / "notes").mkdir()                     # not ours
    assert backup_store.prune(tmp_path, 2) == ["20250102T000000Z", "20250101T000000Z"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20250103T000000Z", "20250104T000000Z",
                                                          "20250105T000000Z", "notes"]


def test_the_rdb_header_says_its_format_and_writer(tmp_path):
    path = tmp_path / "dump.rdb"
    path.write_bytes(RDB)
    assert backup_store.rdb_version(path) == 10 and backup_store.rdb_writer(path) == "redis 7.0.15"
    path.write_bytes(b"REDIS0011\xfa\x0avalkey-ver\x058.1.1\xfa\x09redis-ver\x057.2.4\xff")
    assert backup_store.rdb_writer(path) == "valkey 8.1.1"
    path.write_bytes(b"*2\r\n$3\r\nSET\r\n")
    assert backup_store.rdb_version(path) is None


def test_restore_from_a_backup_checks_it_against_its_manifest(tmp_path):
    good = make_backup(tmp_path, "20250101T000000Z")
    source = backup_store.resolve(str(good))
    assert (source.kind, source.sha256, source.keys, source.rdb_version, source.writer) == \
        ("backup", hashlib.sha256(RDB).hexdigest(), 3, 10, "redis 7.0.15")
    assert source.files == ((good / "dump.rdb", "dump.rdb"),)
    assert backup_store.resolve(str(good / "manifest.json")).path == good
    cut = make_backup(tmp_path / "cut", "20250101T000000Z")
    (cut / "dump.rdb").write_bytes(RDB[:-4])
    with pytest.raises(SourceError, match="does not match its manifest"):
        backup_store.resolve(str(cut))
    make_backup(tmp_path, "20250102T000000Z", content=RDB + b"\x00")
    assert backup_store.resolve(str(tmp_path)).path.name == "20250102T000000Z", "a host's directory: the newest"


def test_restore_from_an_rdb_file_an_aof_directory_or_a_volume(tmp_path):
    rdb = tmp_path / "some.rdb"
    rdb.write_bytes(RDB)
    assert backup_store.resolve(str(rdb)).kind == "rdb"
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SourceError, match="not an RDB file"):
        backup_store.resolve(str(tmp_path / "notes.txt"))
    volume = tmp_path / "volume"
    aof = volume / "appendonlydir"
    aof.mkdir(parents=True)
    (aof / "appendonly.aof.manifest").write_text(
        "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.0.incr.aof seq 0 type h\n"
        "file appendonly.aof.1.incr.aof seq 1 type i\n")
    (aof / "appendonly.aof.1.base.rdb").write_bytes(RDB)
    with pytest.raises(SourceError, match="appendonly.aof.1.incr.aof is missing"):
        backup_store.resolve(str(volume))
    (aof / "appendonly.aof.1.incr.aof").write_bytes(b"*1\r\n$4\r\nPING\r\n")
    source = backup_store.resolve(str(volume))
    assert source.kind == "aof" and source.rdb_version == 10 and [name for _, name in source.files] == [
        "appendonlydir/appendonly.aof.manifest", "appendonlydir/appendonly.aof.1.base.rdb",
        "appendonlydir/appendonly.aof.1.incr.aof"]  # the history file is not needed
    assert backup_store.resolve(str(aof)).kind == "aof"
    # a dump.rdb newer than every AOF file holds at least as much: it is taken
    (volume / "dump.rdb").write_bytes(RDB)
    old = time.time() - 100
    for path in aof.iterdir():
        os.utime(path, (old, old))
    assert backup_store.resolve(str(volume)).kind == "rdb"
    os.utime(volume / "dump.rdb", (old - 100, old - 100))
    assert backup_store.resolve(str(volume)).kind == "aof"
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no backup"):
        backup_store.resolve(str(tmp_path / "empty"))


def test_a_newer_rdb_format_is_refused_naming_both_versions(tmp_path):
    source = backup_store.resolve(str(make_backup(tmp_path, "20250101T000000Z", content=b"REDIS0012" + RDB[9:],
                                                  version="8.0.2")))
    problem = backup_store.refusal(source, "redis", "5:7.0.15-1~deb12u7")
    assert "written by redis 8.0.2 in RDB format 12" in problem
    assert "redis 7.0.15 on this host reads RDB formats up to 10" in problem and "nothing was changed" in problem
    assert backup_store.refusal(source, "redis", "8.0.2") is None
    assert backup_store.refusal(source, "valkey", "8.1.1") is not None
    assert backup_store.refusal(source, "redis", "9.9.9") is None, "unknown here: the host's check tool decides"
    assert versions.rdb_readable("valkey", "8.1.1+dfsg1-3") == 11


def test_restore_needs_a_confirmation_naming_the_host_on_the_command_line(tmp_path):
    backup = str(make_backup(tmp_path, "20250101T000000Z"))
    ok, problems = restores.check("nvr-1", {"restore_from": backup, "restore_confirm": "nvr-1"},
                                  {"restore_confirm": "nvr-1", "restore_from": backup}, {})
    assert problems == [] and ok.kind == "backup"
    cases = [
        ({"restore_from": backup}, {}, "confirm with --data restore_confirm=nvr-1"),
        ({"restore_from": backup, "restore_confirm": "nvr-1"}, {}, "give it on the command line"),
        ({"restore_from": backup, "restore_confirm": "nvr-2"}, {"restore_confirm": "nvr-2"},
         "'nvr-2' does not name this host"),
        ({"restore_confirm": "nvr-1"}, {"restore_confirm": "nvr-1"}, "restore_from: required"),
        ({"restore_confirm": "nvr-1", "restore_from": str(tmp_path / "none")}, {"restore_confirm": "nvr-1"},
         "does not exist"),
    ]
    for data, command_line, expected in cases:
        source, problems = restores.check("nvr-1", data, command_line, {})
        assert source is None and any(expected in p for p in problems), (expected, problems)
        assert all(p.startswith("nvr-1: restore_") for p in problems)



def test_restore_asks_nothing_of_a_backend_host(tmp_path):
    """A backend host (redis_role: backend) holds no data: the restore's inputs pass it by, needing
    neither restore_from nor a confirmation for it; its server's are checked as ever."""
    backup = str(make_backup(tmp_path, "20250101T000000Z"))
    data = {"nvr": {"restore_from": backup, "restore_confirm": "nvr"},
            "app": {"redis_role": "backend", "redis_server": "nvr"}}
    hosts = [SimpleNamespace(name=name, data=SimpleNamespace(dict=lambda d=d: d)) for name, d in data.items()]
    state = SimpleNamespace(is_host_in_limit=lambda h: True)
    state.inventory = type("Inventory", (), {"__iter__": lambda self: iter(hosts),
                                             "get_override_data": lambda self: {"restore_confirm": "nvr"}})()
    assert restores.inputs(SimpleNamespace(name="app", state=state)) is None
    assert restores.inputs(SimpleNamespace(name="nvr", state=state)).kind == "backup"


def test_backup_settings_are_validated():
    conf, problems = validation.parse("h", {})
    assert problems == [] and (conf.backup_schedule, conf.backup_keep, conf.snapshot_keep) == ("off", 14, 7)
    assert conf.backup_dir == Path("backups") and conf.snapshot_dir == "/var/lib/hsi-redis/snapshots"
    _, problems = validation.parse("h", {"redis_backup_schedule": "monthly", "redis_snapshot_dir": "snaps",
                                         "redis_snapshot_keep": 0, "redis_backup_dir": "a\nb"})
    assert sorted(p.split(":")[1].strip() for p in problems) == [
        "redis_backup_dir", "redis_backup_schedule", "redis_snapshot_dir", "redis_snapshot_keep"]
    for bad in ("/", "/var/lib/../x", "/var/lib/x/", "relative"):
        assert validation.parse("h", {"redis_snapshot_dir": bad})[1], bad
