"""Data across restarts: secure-aof (the RDB-only trap), keep-last-good, the safe restart and its
rollback, data-directory moves, a stale AOF."""

from __future__ import annotations

import os
import shutil
import time

from .conftest import SERVICE


def aof_config_restart(h) -> None:
    """Restart on a config that says appendonly yes, the way the trap bites (no program involved)."""
    h.write_config(appendonly=True)
    assert h.ctl("restart", SERVICE).returncode == 0
    h.wait_pong()


def test_the_rdb_only_trap_is_real(make_host):
    """Without the program: RDB-only data + `appendonly yes` + restart = an empty server (FACTS.md)."""
    h = make_host(appendonly=False)
    h.start()
    h.fill(30)
    aof_config_restart(h)
    assert h.dbsize() == 0


def test_secure_aof_puts_every_key_into_the_aof(make_host):
    h = make_host(appendonly=False)
    h.start()
    h.fill(30)
    h.fill(5, prefix="x", ttl=900)
    r = h.run("secure-aof")
    assert r.code == 0 and r.out == "aof=enabled\n", r.err
    assert h.cli("config", "get", "appendonly").split() == ["appendonly", "yes"]
    aof_config_restart(h)
    assert h.dbsize() == 35
    assert h.run("secure-aof").out == ""  # AOF on already: nothing to do


def test_secure_aof_refuses_without_a_working_credential(make_host):
    h = make_host(appendonly=False)
    h.start()
    h.fill(3)
    h.put_secret("cli.auth", "not-the-password-000")
    r = h.run("secure-aof")
    assert r.code == 1 and "refuses the deploy's credentials" in r.err and "nothing was changed" in r.err
    assert h.cli("config", "get", "appendonly").split() == ["appendonly", "no"]
    assert "not-the-password-000" not in r.err


def test_secure_aof_starts_a_stopped_rdb_only_server_once(make_host):
    h = make_host(appendonly=False)
    h.start()
    h.fill(12)
    h.stop()  # shutdown saves dump.rdb (save rules)
    assert (h.data / "dump.rdb").exists() and not (h.data / "appendonlydir").exists()
    r = h.run("secure-aof")
    assert r.code == 0 and r.keys == {"started": "1", "aof": "enabled"}, r.err
    aof_config_restart(h)
    assert h.dbsize() == 12


def test_a_stopped_rdb_only_server_whose_config_turns_aof_on_starts_on_its_dump_first(make_host):
    h = make_host(appendonly=False)
    h.start()
    h.fill(12)
    h.stop()
    h.write_config(appendonly=True)  # someone changed the file: a plain start would load nothing
    config = h.config.read_bytes()
    r = h.run("secure-aof")
    assert r.code == 0 and r.keys["started"] == "1" and r.keys["aof"] == "enabled", r.err
    assert h.dbsize() == 12 and h.config.read_bytes() == config
    assert not (h.state / "restart-pending").exists()


def test_keep_last_good_saves_config_and_credential_root_only(host):
    r = host.run("keep-last-good")
    assert r.out == "last_good=saved\n"
    lg = host.state / "last-good"
    assert oct(lg.stat().st_mode & 0o777) == "0o700"
    for name in ("redis.conf", "cli.auth"):
        assert oct((lg / name).stat().st_mode & 0o777) == "0o600"
    assert (lg / "redis.conf").read_text() == host.config.read_text()
    assert host.run("keep-last-good").out == ""  # same files: nothing to do
    host.write_config(extra=["hz 11"])
    (host.state / "restart-pending").touch()  # the running server may not run this file
    assert host.run("keep-last-good").out == ""
    assert "hz 11" not in (lg / "redis.conf").read_text()


def test_good_restart_keeps_the_keys_and_clears_the_pending_marker(host):
    host.fill(20)
    host.fill(4, prefix="ttl", ttl=900)
    (host.state / "restart-pending").touch()
    host.write_config(extra=["hz 12"])
    r = host.run("restart")
    assert r.code == 0 and r.keys["restarted"] == "24 24", r.err
    assert not (host.state / "restart-pending").exists()
    assert host.cli("config", "get", "hz").split() == ["hz", "12"]
    assert (host.state / "last-good" / "redis.conf").read_text() == host.config.read_text()
    assert host.dbsize() == 24


def test_a_rejected_config_rolls_back_and_hides_its_arguments(host):
    host.fill(9)
    assert host.run("keep-last-good").code == 0
    good = host.config.read_text()
    host.write_config(extra=["requirepass-typo s3cr3t-ARG y"])
    r = host.run("restart")
    assert r.code == 1
    last = r.err.strip().splitlines()[-1]
    assert last.startswith("hsi-redis: ") and "rolled back to the last good config, which serves 9 keys" in last
    assert "requirepass-typo <arguments hidden>" in r.err
    assert "s3cr3t-ARG" not in r.err + r.out
    assert host.config.read_text() == good and host.dbsize() == 9
    assert not (host.state / "restart-pending").exists()


def test_without_a_last_good_config_a_failed_restart_says_so(host):
    host.write_config(extra=["bogus-directive 1"])
    r = host.run("restart")
    assert r.code == 1 and "there is no last good config to restore" in r.err


def test_a_new_data_directory_takes_the_data_along(host):
    host.fill(15)
    new = host.root / "newdata"
    new.mkdir()
    (new / "dump.rdb").write_text("old junk")
    host.write_config(data=new)
    r = host.run("restart")
    assert r.code == 0, r.err
    assert r.keys["data_moved"] == f"{host.data} {new}" and r.keys["restarted"] == "15 15"
    assert host.cli("config", "get", "dir").split() == ["dir", str(new)]
    assert [p.name for p in new.glob("dump.rdb.hsi-before-*")] and (new / "appendonlydir").is_dir()
    assert oct(new.stat().st_mode & 0o777) == "0o755"  # kept: it existed


def stale_aof_host(make_host):
    """A stopped server whose AOF is stale: it ran without AOF after an AOF period (old keys in the
    AOF, old + new keys in the newer dump.rdb); its config and the last good copy say appendonly no."""
    h = make_host(appendonly=True)
    h.start()
    h.fill(5, prefix="old")
    h.write_config(appendonly=False)
    assert h.ctl("restart", SERVICE).returncode == 0
    h.wait_pong()
    h.fill(7, prefix="new")
    assert h.run("keep-last-good").code == 0
    h.stop()
    aof_files = list((h.data / "appendonlydir").iterdir())
    for path in aof_files:
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    assert os.stat(h.data / "dump.rdb").st_mtime > max(os.stat(p).st_mtime for p in aof_files)
    return h


def test_a_stale_aof_beside_a_newer_rdb_is_never_loaded(make_host):
    """issue 9 item 11: apply starts the server on the RDB with AOF off, turns AOF on live, then restarts."""
    from .conftest import bundle

    h = stale_aof_host(make_host)
    new = h.render(appendonly=True)
    r = h.run("apply", stdin=bundle(("file", "0640", "root", "root", "restart", str(h.config), new)))
    assert r.code == 0, r.err
    assert r.keys["started"] == "1" and r.keys["aof"] == "enabled" and r.keys["restarted"] == "12 12"
    assert h.dbsize() == 12 and h.cli("config", "get", "appendonly").split()[1] == "yes"


def test_a_stale_aof_with_a_config_that_turns_aof_on_starts_on_the_newer_dump(make_host):
    h = stale_aof_host(make_host)
    h.write_config(appendonly=True)  # on disk already, no restart pending
    config = h.config.read_bytes()
    r = h.run("secure-aof")
    assert r.code == 0 and r.keys["aof"] == "enabled", r.err
    assert h.dbsize() == 12 and h.config.read_bytes() == config
    assert not (h.state / "restart-pending").exists()


def test_a_stale_aof_server_that_does_not_start_on_its_config_is_refused_untouched(make_host):
    h = stale_aof_host(make_host)
    h.write_config(appendonly=True, extra=["bogus-directive-by-hand yes"])
    files = [h.config, h.data / "dump.rdb", *sorted((h.data / "appendonlydir").iterdir())]
    before = [p.read_bytes() for p in files]
    for verb in ("secure-aof", "restart"):
        r = h.run(verb)
        assert r.code == 1 and "does not start on its config" in r.err and "nothing was changed" in r.err, r.err
        assert "is newer than the AOF" in r.err and "dump.rdb" in r.err
        assert h.ctl("is-active", SERVICE).stdout.strip() != "active"
        assert [p.read_bytes() for p in files] == before
        assert not (h.state / "restart-pending").exists()
    h.write_config(appendonly=True)  # the operator fixes it
    r = h.run("restart")
    assert r.code == 0 and h.dbsize() == 12, r.err


def test_a_failed_snapshot_means_no_restart_and_the_config_put_back(host):
    """The data directory vanished under the running server: BGSAVE fails (like a full disk)."""
    host.fill(6)
    assert host.run("keep-last-good").code == 0
    good = host.config.read_text()
    pid = host.cli("info", "server").split("process_id:")[1].split()[0]
    host.write_config(extra=["hz 17"])
    shutil.rmtree(host.data)
    started = time.monotonic()
    r = host.run("restart")
    assert r.code == 1 and "the snapshot before the restart failed" in r.err and "put back" in r.err, r.err
    assert time.monotonic() - started < 10
    assert host.config.read_text() == good
    assert host.cli("info", "server").split("process_id:")[1].split()[0] == pid and host.dbsize() == 6


def test_a_failed_aof_rewrite_leaves_aof_off_and_the_data_in_memory(make_host):
    h = make_host(appendonly=False)
    h.start()
    h.fill(6)
    shutil.rmtree(h.data)
    started = time.monotonic()
    r = h.run("secure-aof")
    assert r.code == 1 and time.monotonic() - started < 10, r.err
    assert "the config was not changed" in r.err
    assert h.cli("config", "get", "appendonly").split() == ["appendonly", "no"] and h.dbsize() == 6


def test_a_data_move_that_fails_after_the_stop_serves_on_the_last_good_config(host):
    host.fill(4)
    assert host.run("keep-last-good").code == 0
    new = host.root / "newdata"
    host.write_config(data=new)
    r = host.run("restart", "--user", "no-such-user-hsi")  # the new directory cannot be given to it
    assert r.code == 1 and "copying the data" in r.err and "runs on the last good one" in r.err, r.err
    assert host.cli("config", "get", "dir").split() == ["dir", str(host.data)] and host.dbsize() == 4


def test_a_data_move_is_copied_by_the_servers_user(tmp_path):
    """The new directory belongs to the server's user: the copy runs as that user, not as root."""
    import pwd
    import tempfile
    from pathlib import Path

    from .conftest import Host, _kill_servers, free_port

    shared = Path(tempfile.mkdtemp(dir="/tmp"))
    shared.chmod(0o755)
    h = Host(shared / "h", free_port())
    try:
        h.start()
        h.fill(9)
        new = shared / "srv" / "redis"
        h.write_config(data=new)
        r = h.run("restart", "--user", "nobody", "--group", "nogroup")
        assert r.code == 0 and r.keys["restarted"] == "9 9", r.err
        nobody = pwd.getpwnam("nobody").pw_uid
        assert new.stat().st_uid == nobody and oct(new.stat().st_mode & 0o777) == "0o750"
        assert (new / "dump.rdb").stat().st_uid == nobody  # written by nobody: a copy, not root's
        assert h.dbsize() == 9
    finally:
        _kill_servers(h.fake)
        shutil.rmtree(shared)


def test_a_stopped_server_with_aof_and_a_new_data_directory_takes_its_data_along(host):
    """issue 9 item 11: the server is stopped when the config with a new `dir` arrives; the old directory
    is the one of the config it last ran with (the last good copy), and its AOF goes along."""
    host.fill(11)
    assert host.run("keep-last-good").code == 0
    host.stop()
    new = host.root / "moved"
    host.write_config(data=new)
    (host.state / "restart-pending").touch()
    r = host.run("restart")
    assert r.code == 0 and r.keys["data_moved"] == f"{host.data} {new}", r.err
    assert r.keys["restarted"] == "- 11" and (new / "appendonlydir").is_dir()
    assert host.cli("config", "get", "dir").split() == ["dir", str(new)] and host.dbsize() == 11
