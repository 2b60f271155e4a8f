"""The backend identity's ACL line per release row, as deploy.py writes it into redis.conf.

Servers before 7.0 (Ubuntu 22.04: Redis 6.0; EL8: 6.2) cannot deny one subcommand and have
no protected configs: CONFIG is denied whole, CONFIG GET (and RESETSTAT, HELP) allowed back,
CONFIG SET never, whatever `redis_backend_config_set` says (the summary warns).
"""

from __future__ import annotations

import pytest

from .harness import fresh_host, run_flow

CONFIG = {"debian-12": "/etc/redis/redis.conf", "ubuntu-22.04": "/etc/redis/redis.conf",
          "rocky-8": "/etc/redis.conf"}


def _default_rules(release: str, **data) -> tuple[list[str], dict]:
    result = run_flow({"h": (fresh_host(release), data)})
    config = result.call("h", "apply").entry(CONFIG[release]).content
    line = next(line for line in config.splitlines() if line.startswith("user default "))
    return line.split()[4:], result.report["h"]


@pytest.mark.parametrize("release", ["ubuntu-22.04", "rocky-8"])
@pytest.mark.parametrize("allowed", [False, True])
def test_before_7_config_set_stays_denied(release, allowed):
    rules, report = _default_rules(release, redis_backend_config_set=allowed)
    start = rules.index("-config")
    assert rules[start:start + 4] == ["-config", "+config|get", "+config|resetstat", "+config|help"]
    assert not any(rule.startswith("+config|set") for rule in rules)
    assert report["status"] == "ok"
    warnings = report.get("warnings", [])
    assert any("redis_backend_config_set ignored" in w and "dir/dbfilename" in w for w in warnings) == allowed


@pytest.mark.parametrize("allowed", [False, True])
def test_from_7_config_set_follows_the_setting(allowed):
    rules, report = _default_rules("debian-12", redis_backend_config_set=allowed)
    assert ("-config|set" in rules) == (not allowed)
    assert "-config|rewrite" in rules and "-config" not in rules
    assert not any("redis_backend_config_set" in w for w in report.get("warnings", []))
