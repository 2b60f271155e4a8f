"""Where a config says its server listens and keeps its data (the program's reach), read by `verify` with
nothing running: the last `bind`/`port`/`tls-port`/`dir` win, `*` and `::` are reached on loopback,
quoted and upper-case directives count, Redis' defaults fill the rest (ported from main's where())."""

from __future__ import annotations

import os
import time

import pytest

from .conftest import free_port


@pytest.fixture
def h(make_host):
    return make_host()  # never started


def reached(h, text: str) -> tuple[str, str, str]:
    h.write_config(text)
    r = h.run("verify")
    assert r.code == 0 and r.keys["server.via"] == "none", r.out + r.err
    return r.keys["server.addr"], r.keys["server.port"], r.keys["server.tls_port"]


@pytest.mark.parametrize("text, expected", [
    ("bind 127.0.0.1 -::1\nport {p}\n", ("127.0.0.1", "{p}", "0")),
    ('# bind 10.0.0.1\nBIND "127.0.0.2"\nport 0\ntls-port {p}\n', ("127.0.0.2", "0", "{p}")),
    ("bind 10.0.0.1\nbind * -::*\nport {p}\n", ("127.0.0.1", "{p}", "0")),  # the last bind wins
    ("bind -::1 127.0.0.1\nport {p}\n", ("::1", "{p}", "0")),
    ("bind ::\nport 7000\nport {p}\n", ("::1", "{p}", "0")),
    ("maxmemory 100mb\n", ("127.0.0.1", "6379", "0")),                     # Redis' defaults
])
def test_reach_reads_the_listen_address_and_ports(h, text, expected):
    port = str(free_port())
    assert reached(h, text.format(p=port)) == tuple(v.format(p=port) for v in expected)


def test_reach_reads_the_data_directory(h):
    data = h.root / "some data"
    data.mkdir()
    (data / "dump.rdb").write_text("x")
    os.utime(data / "dump.rdb", (1_700_000_000, 1_700_000_000))
    h.write_config(f'port {free_port()}\ndir "{data}"\n')
    r = h.run("verify")
    assert r.keys["data.rdb"] == "1700000000" and r.keys["data.aof"] == "-"


def test_nothing_answering_means_the_config_on_disk(h):
    """The last good config names another port; nothing answers on either: the read reports --config's."""
    (h.state / "last-good").mkdir(mode=0o700)
    (h.state / "last-good" / "redis.conf").write_text(f"port {free_port()}\n")
    port = free_port()
    assert reached(h, f"bind 127.0.0.1\nport {port}\n") == ("127.0.0.1", str(port), "0")


def test_the_aof_s_newest_file_and_dump_rdb_are_reported(h):
    """What the stale-AOF rule compares: dump.rdb's time and the newest file of the AOF."""
    aof = h.data / "appendonlydir"
    aof.mkdir()
    now = int(time.time())
    for name, age in (("appendonly.aof.1.base.rdb", 900), ("appendonly.aof.1.incr.aof", 600),
                      ("appendonly.aof.manifest", 700)):
        (aof / name).write_text("x")
        os.utime(aof / name, (now - age, now - age))
    (h.data / "dump.rdb").write_text("x")
    os.utime(h.data / "dump.rdb", (now - 300, now - 300))
    r = h.run("verify")
    assert (r.keys["data.rdb"], r.keys["data.aof"]) == (str(now - 300), str(now - 600))
