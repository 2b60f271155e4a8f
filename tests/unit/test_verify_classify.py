"""How verification names a failure, from what redis-cli printed on the host."""

from __future__ import annotations

import pytest

from operations import platform, settings, verify

PLAT = platform.select("debian", "12", "", "auto")
CONF = settings.parse("h", {"redis_password": "x" * 20})[0]
HEALTHY = {"cli": "present", "service_active": "active", "auth_file": "present", "auth_ping": "PONG",
           "noauth_ping": "NOAUTH Authentication required.", "aof_enabled": "1", "loading": "0"}


@pytest.mark.parametrize(
    "changes, kind",
    [
        ({"cli": "missing"}, "not installed"),
        ({"service_active": "failed", "auth_ping": "Could not connect to Redis at 127.0.0.1:6379: "
          "Connection refused", "noauth_ping": "Could not connect"}, "not running or refused"),
        ({"noauth_ping": "PONG"}, "no password required"),
        ({"auth_ping": "AUTH failed: WRONGPASS invalid username-password pair or user is disabled. "
          "NOAUTH Authentication required."}, "WRONGPASS"),
        ({"auth_file": "missing"}, "NOAUTH"),
        ({"aof_enabled": "0"}, "AOF off"),
    ],
)
def test_classification(changes, kind):
    found = verify.classify({**HEALTHY, **changes}, CONF, PLAT)
    assert found is not None and found[0] == kind
    assert found[2], "every failure comes with a fix"


def test_healthy_is_none():
    assert verify.classify(HEALTHY, CONF, PLAT) is None
