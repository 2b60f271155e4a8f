"""`apply`: one call changes the server (files, AOF, last good config, restart, enable, backend files)."""

from __future__ import annotations

from .conftest import SERVICE, bundle, free_port


def restarts(h) -> int:
    return sum(1 for call in h.calls() if call.split()[0] == "restart")


def config_entry(h, text: str) -> tuple:
    return ("file", "0640", "root", "root", "restart", str(h.config), text)


def test_restart_files_restart_once_and_unchanged_bundles_do_nothing(host):
    host.fill(10)
    other = host.root / "etc" / "app.conf"
    new = host.render(extra=["hz 13"])
    payload = bundle(config_entry(host, new), ("file", "0644", "root", "root", "-", str(other), "x=1\n"))
    before = restarts(host)
    r = host.run("apply", stdin=payload)
    assert r.code == 0, r.err
    assert r.all("changed") == [str(host.config), str(other)] and r.keys["restarted"] == "10 10"
    assert r.keys["last_good"] == "saved" and restarts(host) == before + 1
    assert host.cli("config", "get", "hz").split() == ["hz", "13"] and other.read_text() == "x=1\n"
    assert oct(other.stat().st_mode & 0o777) == "0o644" and not (host.state / "restart-pending").exists()
    again = host.run("apply", stdin=payload)
    assert again.code == 0 and again.out == "" and again.err == "" and restarts(host) == before + 1


def test_a_mode_change_alone_rewrites_without_a_restart(host):
    other = host.root / "etc" / "app.conf"
    host.run("apply", stdin=bundle(("file", "0644", "root", "root", "-", str(other), "x\n")))
    r = host.run("apply", stdin=bundle(("file", "0600", "root", "root", "-", str(other), "x\n")))
    assert r.out == f"changed={other}\n" and oct(other.stat().st_mode & 0o777) == "0o600"


def test_a_truncated_bundle_changes_nothing(host):
    other = host.root / "etc" / "app.conf"
    full = bundle(config_entry(host, host.render(extra=["hz 14"])),
                  ("file", "0644", "root", "root", "-", str(other), "x=1\n" * 200))
    config_before = host.config.read_text()
    for cut in (len(full) - 4, len(full) // 2, full.index(b"\n.\n") + 3):  # mid-entry, mid-body, at a boundary
        r = host.run("apply", stdin=full[:cut])
        assert r.code == 1 and "nothing was changed" in r.err, (cut, r.err)
        assert host.config.read_text() == config_before and not other.exists()
        assert not (host.state / "restart-pending").exists() and restarts(host) == 0
    assert list(host.state.glob(".tmp.*")) == []  # the scratch directory is gone


def test_an_interrupted_run_still_restarts(host):
    """issue 9 item 10: the files were written, the run died before the restart: the marker says so."""
    host.fill(3)
    host.write_config(extra=["hz 15"])
    (host.state / "restart-pending").touch()
    r = host.run("apply", stdin=bundle(config_entry(host, host.config.read_text())))
    assert r.code == 0 and r.keys["restarted"] == "3 3" and "changed" not in r.keys, r.err
    assert host.cli("config", "get", "hz").split() == ["hz", "15"]
    assert not (host.state / "restart-pending").exists()


def test_a_new_port_is_reached_before_and_after(host):
    host.fill(6)
    port = free_port()
    r = host.run("apply", stdin=bundle(config_entry(host, host.render(port=port))))
    assert r.code == 0 and r.keys["restarted"] == "6 6", r.err
    assert host.dbsize(port=port) == 6
    k = host.run("state").keys
    assert k["server.port"] == str(port) and k["server.config"] == "current"


def test_rdb_only_data_survives_turning_aof_on(make_host):
    h = make_host(appendonly=False)
    h.start()
    h.fill(40)
    r = h.run("apply", stdin=bundle(config_entry(h, h.render(appendonly=True))))
    assert r.code == 0, r.err
    assert r.keys["aof"] == "enabled" and r.keys["restarted"] == "40 40"
    assert h.dbsize() == 40 and h.cli("config", "get", "appendonly").split()[1] == "yes"


def test_a_rejected_config_rolls_back_and_skips_the_backend_files(host):
    host.fill(8)
    env = host.root / "backend" / ".env"
    bad = host.render(extra=["requirepass-typo hidden-value z"])
    r = host.run("apply", stdin=bundle(config_entry(host, bad),
                                       ("merge", "after", "-", "-", str(env), "REDIS_URL=redis://x\n")))
    assert r.code == 1 and "rolled back to the last good config, which serves 8 keys" in r.err
    assert "hidden-value" not in r.err + r.out and not env.exists()
    assert host.dbsize() == 8 and "requirepass-typo" not in host.config.read_text()


def test_after_entries_follow_the_restart_and_enable_starts_a_stopped_unit(host):
    env = host.root / "backend" / ".env"
    (host.fake / f"{SERVICE}.enabled").unlink()
    host.stop()
    r = host.run("apply", "--enable", stdin=bundle(("merge", "after", "-", "-", str(env), "REDIS_URL=redis://y\n")))
    assert r.code == 0, r.err
    # stopped cleanly: when its dump.rdb is newer than the idle AOF (a second later), it starts on the dump
    # (AOF off) and AOF goes on live; otherwise on the AOF
    lines = r.out.splitlines()
    assert lines[:2] == ["enabled=1", "started=1"] and lines[-1] == f"changed={env}", lines
    assert set(lines[2:-1]) <= {"aof=enabled"}, lines
    assert env.read_text() == "REDIS_URL=redis://y\n" and oct(env.stat().st_mode & 0o777) == "0o600"
    assert host.run("apply", "--enable", stdin=bundle(("merge", "after", "-", "-", str(env),
                                                       "REDIS_URL=redis://y\n"))).out == ""


def test_unit_files_reload_systemd(host):
    unit = host.root / "etc" / "systemd" / "x.service.d" / "override.conf"
    r = host.run("apply", stdin=bundle(("file", "0644", "root", "root", "unit", str(unit), "[Service]\n")))
    assert r.code == 0 and r.out == f"changed={unit}\n" and "daemon-reload" in " ".join(host.calls())
    assert oct(unit.parent.stat().st_mode & 0o777) == "0o755"


def test_a_run_while_a_restart_is_pending_keeps_the_config_from_before_the_first_change(host):
    """Run 1 saved the running config, wrote a new one and died before its restart; run 2 brings yet
    another config that the server rejects: the rollback goes to the config the server last ran with,
    not to run 1's unproven one."""
    host.fill(4)
    good = host.config.read_text()
    assert host.run("keep-last-good").code == 0
    host.write_config(extra=["hz 16"])  # run 1's file; it died here
    (host.state / "restart-pending").touch()
    r = host.run("apply", stdin=bundle(config_entry(host, host.render(extra=["no-such-directive 1"]))))
    assert r.code == 1 and "rolled back to the last good config, which serves 4 keys" in r.err, r.err
    assert host.config.read_text() == good and host.cli("config", "get", "hz").split() == ["hz", "10"]
