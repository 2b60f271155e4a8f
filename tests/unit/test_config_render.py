"""redis.conf rendering: the directives the mission requires, and an exact password."""

from __future__ import annotations

import re

from operations import prologue, render, rows, validation
from operations.target import resolve


def _conf(data=None):
    conf, problems = validation.parse("h", {"redis_password": "p@ss word#1 \"quoted\" é", **(data or {})})
    assert not problems
    return conf


def _render(conf, row) -> str:
    return render.redis_conf(resolve(conf, row, prologue.admin_password(conf.host_name)))


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, []).append(value)
    return out


def _decode_redis_arg(arg: str) -> str:
    assert arg.startswith('"') and arg.endswith('"')
    raw = re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), arg[1:-1])
    return raw.encode("latin-1").decode("utf-8")


def test_required_directives():
    plat = rows.select("debian", "12", "", "auto")
    text = _render(_conf(), plat)
    d = _directives(text)
    assert d["appendonly"] == ["yes"] and d["appendfsync"] == ["everysec"]
    assert d["bind"] == ["127.0.0.1 -::1"] and d["protected-mode"] == ["yes"]
    assert d["supervised"] == ["systemd"] and d["daemonize"] == ["no"]
    assert d["maxmemory"] == ["100mb"] and d["maxmemory-policy"] == ["noeviction"]
    assert d["dir"] == ["/var/lib/redis"] and d["save"] == ["3600 1", "300 100", "60 10000"]
    assert _decode_redis_arg(d["requirepass"][0]) == 'p@ss word#1 "quoted" é'
    assert "\n\n\n" not in text


def test_valkey_row_paths_and_old_servers_bind():
    valkey = rows.select("debian", "13", "", "valkey")
    d = _directives(_render(_conf(), valkey))
    assert d["dir"] == ["/var/lib/valkey"] and d["logfile"] == ["/var/log/valkey/valkey-server.log"]
    old = rows.select("ubuntu", "22.04", "debian", "auto")
    assert _directives(_render(_conf(), old))["bind"] == ["127.0.0.1 ::1"]
