"""The host-side shell behind restarts, run for real with the local sh/awk (and a local
redis-server where one is installed): where a config says its server listens, the probe
finding a running server there rather than at the settings' new port, the stale-AOF check,
and the pending-restart marker."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from operations.facts import WHERE_FUNCTION, ServerState, server_probe_script
from operations.restart_pending import RestartNeeded, mark_script


def sh(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)


def where(config: Path) -> str:
    result = sh(f'{WHERE_FUNCTION}\nwhere {shlex.quote(str(config))} && echo "$wa|$wp|$wt|$wd"')
    return result.stdout.strip() if result.returncode == 0 else "missing"


@pytest.mark.parametrize("text, expected", [
    ("bind 127.0.0.1 -::1\nport 6390\ndir /var/lib/redis\n", "127.0.0.1|6390|0|/var/lib/redis"),
    ('# bind 10.0.0.1\nBIND "127.0.0.2"\nport 0\ntls-port 6380\ndir "/srv/redis"\n',
     "127.0.0.2|0|6380|/srv/redis"),
    ("bind 10.0.0.1\nbind * -::*\n", "127.0.0.1|6379|0|"),   # the last bind wins; * is reached on loopback
    ("bind -::1 127.0.0.1\n", "::1|6379|0|"),
    ("bind ::\nport 7000\nport 7001\n", "::1|7001|0|"),
    ("maxmemory 100mb\n", "127.0.0.1|6379|0|"),               # Redis' defaults
    ("", "missing"),                                          # an empty marker names no server
])
def test_where_reads_listen_address_ports_and_dir(tmp_path, text, expected):
    config = tmp_path / "redis.conf"
    config.write_text(text)
    assert where(config) == expected


def test_where_fails_for_a_missing_file(tmp_path):
    assert where(tmp_path / "nope.conf") == "missing"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def local_server(tmp_path):
    """A throwaway redis-server on a free loopback port (no password), its data in tmp_path."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no local redis-server")
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    for _ in range(100):
        if sh(f"redis-cli -p {port} ping").stdout.strip() == "PONG":
            break
        time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def probe(tmp_path: Path, port: int, listen_from: tuple[str, ...] = ()) -> dict:
    script = server_probe_script("redis-cli", "127.0.0.1", port, "hsi-no-such-service",
                                 str(tmp_path / "data"), config_path=str(tmp_path / "redis.conf"),
                                 listen_from=listen_from)
    return ServerState().process(sh(script).stdout.splitlines())


def test_probe_finds_the_running_server_where_its_config_says(tmp_path, local_server):
    new_port = _free_port()  # the settings' new port: nothing listens there yet
    (tmp_path / "redis.conf").write_text(f"bind 127.0.0.1\nport {new_port}\n")   # already rewritten
    (tmp_path / "pending.conf").write_text(f"bind 127.0.0.1 -::1\nport {local_server}\n")
    files = (str(tmp_path / "redis.conf"), str(tmp_path / "pending.conf"), str(tmp_path / "missing.conf"))
    found = probe(tmp_path, new_port, files)
    assert (found["addr"], found["port"]) == ("127.0.0.1", str(local_server))
    assert found["noauth_ping"].strip() == "PONG" and found["tcp_port"] == str(local_server)
    # verification asks where the settings say, and finds nothing there
    settled = probe(tmp_path, new_port)
    assert settled["port"] == str(new_port) and "Connection refused" in settled["noauth_ping"]


def test_probe_defaults_to_the_config_on_disk_when_nothing_answers(tmp_path):
    if shutil.which("redis-cli") is None:
        pytest.skip("no local redis-cli")
    port = _free_port()
    (tmp_path / "redis.conf").write_text(f"bind 127.0.0.1\nport {port}\ndir {tmp_path}/olddir\n")
    found = probe(tmp_path, _free_port(), (str(tmp_path / "redis.conf"),))
    assert found["port"] == str(port)


def _aof_state(tmp_path: Path, rdb_newer: bool) -> dict:
    data = tmp_path / "data"
    (data / "appendonlydir").mkdir(parents=True)
    aof = data / "appendonlydir" / "appendonly.aof.1.incr.aof"
    for path in (aof, data / "appendonlydir" / "appendonly.aof.manifest", data / "dump.rdb"):
        path.write_text("x")
    old, new = time.time() - 600, time.time()
    for path in (aof, data / "appendonlydir" / "appendonly.aof.manifest", data / "appendonlydir"):
        os.utime(path, (old, old) if rdb_newer else (new, new))
    os.utime(data / "dump.rdb", (new - 300, new - 300))
    script = server_probe_script("no-such-cli", "127.0.0.1", 6379, "hsi-no-such-service", str(data))
    return ServerState().process(sh(script).stdout.splitlines())


def test_an_aof_older_than_dump_rdb_is_stale(tmp_path):
    found = _aof_state(tmp_path, rdb_newer=True)
    assert (found["rdb"], found["aof_files"], found.get("aof_stale")) == ("yes", "yes", "yes")


def test_an_aof_written_after_dump_rdb_is_current(tmp_path):
    found = _aof_state(tmp_path, rdb_newer=False)
    assert (found["rdb"], found["aof_files"], found.get("aof_stale")) == ("yes", "yes", None)


def test_the_marker_keeps_the_config_from_before_the_first_change(tmp_path):
    config, marker = tmp_path / "redis.conf", tmp_path / "state" / "restart-pending"
    config.write_text("port 6379\n")
    assert sh(mark_script(str(config), str(marker))).returncode == 0
    assert marker.read_text() == "port 6379\n" and oct(marker.stat().st_mode & 0o777) == "0o600"
    config.write_text("port 6390\n")  # the file changed; a later change in the same pending window
    assert sh(mark_script(str(config), str(marker))).returncode == 0
    assert marker.read_text() == "port 6379\n"
    marker.unlink()
    assert sh(mark_script(str(tmp_path / "none.conf"), str(marker))).returncode == 0
    assert marker.read_text() == ""


class _Op:
    def __init__(self, changed: bool):
        self.changed = changed

    def did_change(self) -> bool:
        return self.changed


@pytest.mark.parametrize("pending, changed, restart", [
    (None, False, False), ("yes", False, True), (None, True, True), ("yes", True, True),
])
def test_restart_needed_when_changed_now_or_pending(pending, changed, restart):
    needed = RestartNeeded()
    needed.note({"restart_pending": pending} if pending else {})
    needed.op = _Op(changed)
    assert needed.did_change() is restart


def test_restart_scripts_are_posix_shell_and_carry_no_password():
    from operations import persistence, rollback, settings, tls
    from operations.platform import TABLE

    plat = TABLE[("debian", "12")]["redis"]
    conf, problems = settings.parse("h1", {"redis_password": "p" * 20, "redis_port": 6390})
    assert problems == []
    scripts = [
        persistence.start_on_rdb_script(plat),
        rollback.safe_restart_script(conf, plat),
        server_probe_script("redis-cli", "127.0.0.1", 6390, "redis-server", "/var/lib/redis",
                            **tls.probe_kwargs(conf, plat),
                            listen_from=("/etc/redis/redis.conf", "/x", "/y")),
        mark_script("/etc/redis/redis.conf"),
    ]
    checker = shutil.which("shellcheck")
    for script in scripts:
        assert "p" * 20 not in script
        assert subprocess.run(["dash" if shutil.which("dash") else "sh", "-n"], input=script, text=True,
                              capture_output=True, check=False).returncode == 0
        if checker:  # word splitting of the TLS arguments is on purpose (SC2086/SC2046)
            found = subprocess.run([checker, "-s", "sh", "-S", "warning", "-e", "SC2086,SC2046,SC2034", "-"],
                                   input=script, text=True, capture_output=True, check=False)
            assert found.returncode == 0, found.stdout
