"""Settings validation: every bad value is named as `host: setting: problem`, for every host."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from operations import defaults, settings, validation
from operations.credentials import Secret

from .conftest import ROOT

GOOD_PASSWORD = "correct horse battery staple"


def problems(data: dict, host: str = "nvr-1") -> list[str]:
    return validation.parse(host, {"redis_password": GOOD_PASSWORD, **data})[1]


def test_defaults_are_valid():
    conf, found = validation.parse("nvr-1", {})
    assert found == [] and conf is not None
    assert conf.bind == ("127.0.0.1", "-::1") and conf.warnings == ()
    assert "flushall" in conf.acl_denied and "config|rewrite" in conf.acl_denied
    assert len(conf.password) >= 40  # generated


def test_every_setting_has_help_and_a_unique_name():
    names = [s.name for s in defaults.SETTINGS]
    assert len(names) == len(set(names))
    for row in defaults.SETTINGS:
        assert row.name.startswith("redis_") and row.help.strip(), row


def test_backend_config_set_is_off_by_default_and_cannot_contradict_the_denied_list():
    conf, found = validation.parse("nvr-1", {"redis_password": GOOD_PASSWORD})
    assert found == [] and conf.backend_config_set is False
    conf, found = validation.parse("nvr-1", {"redis_password": GOOD_PASSWORD,
                                          "redis_backend_config_set": "yes"})
    assert found == [] and conf.backend_config_set is True
    for denied in (["config|set"], ["flushall", "config"]):
        found = problems({"redis_backend_config_set": True, "redis_acl_denied_commands": denied})
        assert any(p.startswith("nvr-1: redis_backend_config_set: ") and "redis_acl_denied_commands" in p
                   for p in found), found


@pytest.mark.parametrize("setting, value, expected", [
    ("redis_password", "line one\nline two", "contains a newline"),
    ("redis_password", "carriage\rreturn-long-enough", "contains a newline"),
    ("redis_password", "nul\x00byte-long-enough-yes", "NUL"),
    ("redis_password", "bell\x07-long-enough-password", "control"),
    ("redis_password", "short", "shorter than 16"),
    ("redis_password", 12345678901234567, "expected text"),
    ("redis_bind", ["127.0.0.1", "10.0.0.300"], "not an IP address"),
    ("redis_bind", "localhost", "not an IP address"),
    ("redis_bind", [], "expected a list"),
    ("redis_port", 0, "out of range"),
    ("redis_port", 70000, "out of range"),
    ("redis_port", "6379x", "whole number"),
    ("redis_port", True, "whole number"),
    ("redis_size", "huge", "not one of"),
    ("redis_maxmemory", "12 parsecs", "not a size"),
    ("redis_maxmemory", "100xb", "not a size"),
    ("redis_maxmemory", "-1mb", "not a size"),
    ("redis_maxmemory", "512kb", "below 1mb"),
    ("redis_maxmemory_policy", "evict-everything", "not one of"),
    ("redis_appendfsync", "sometimes", "not one of"),
    ("redis_flavour", "keydb", "not one of"),
    ("redis_development", "maybe", "true or false"),
    ("redis_verify_only", 2, "true or false"),
    ("redis_backend_env_path", "relative/.env", "absolute file path"),
    ("redis_backend_env_path", "/opt/hsi/../etc/shadow", "absolute file path"),
    ("redis_backend_env_path", "/opt/hsi/", "absolute file path"),
    ("redis_backend_env_owner", "Bad User", "valid user name"),
    ("redis_backend_env_group", "grp;rm", "valid group name"),
    ("redis_backend_host", "bad host", "host name or IP"),
    ("redis_backend_db", 16, "out of range"),
    ("redis_acl_denied_commands", ["flush all"], "not a command name"),
    ("redis_acl_denied_commands", ["AUTH"], "cannot be denied"),
    ("redis_acl_denied_commands", "ping", "cannot be denied"),
    ("redis_acl_denied_commands", 5, "expected a list"),
    ("redis_auth_failure_warn", 0, "out of range"),
    ("redis_kernel_tuning", "sometimes", "true or false"),
    ("redis_backend_config_set", "sometimes", "true or false"),
    ("redis_pasword", "typo", "unknown setting"),
])
def test_bad_value_names_host_and_setting(setting, value, expected):
    found = problems({setting: value})
    assert found, f"{setting}={value!r} was accepted"
    assert any(p.startswith(f"nvr-1: {setting}: ") and expected in p for p in found), found


def test_password_rules_leave_printable_characters_alone():
    for password in ("p w'\"#$x\\%@é${HOME}€ end ", "パスワード パスワード パスワード", "🙂" * 16):
        conf, found = validation.parse("nvr-1", {"redis_password": password})
        assert found == [] and conf.password.reveal() == password


def test_development_host_may_have_a_short_password_on_loopback_only():
    assert problems({"redis_password": "dev", "redis_development": True}) == []
    found = problems({"redis_password": "dev", "redis_development": True, "redis_bind": ["0.0.0.0"],
                      "redis_allow_plaintext": True})
    assert len(found) == 1 and found[0].startswith("nvr-1: redis_password: ") and "beyond loopback" in found[0]


def test_non_loopback_without_tls_is_refused_unless_plaintext_is_allowed_then_warned():
    conf, found = validation.parse("nvr-1", {"redis_password": GOOD_PASSWORD, "redis_bind": ["127.0.0.1", "10.20.0.5"]})
    assert conf is None and len(found) == 1, found
    assert found[0].startswith("nvr-1: redis_bind: ") and "10.20.0.5" in found[0] and "redis_allow_plaintext" in found[0]
    conf, found = validation.parse("nvr-1", {"redis_password": GOOD_PASSWORD, "redis_bind": ["127.0.0.1", "10.20.0.5"],
                                             "redis_allow_plaintext": True})
    assert found == []
    assert len(conf.warnings) == 1 and "10.20.0.5" in conf.warnings[0] and "TLS" in conf.warnings[0]
    conf, _ = validation.parse("nvr-1", {"redis_password": GOOD_PASSWORD, "redis_bind": ["10.20.0.5"],
                                         "redis_allow_plaintext": "yes"})
    assert conf.warnings
    # With TLS on (its files are checked by the TLS tests), no warning.
    assert validation._network_warnings(("10.20.0.5",), tls_enabled=True) == ()
    assert validation._network_warnings(("10.20.0.5",), tls_enabled=False)


def test_environment_password_wins_and_is_validated(monkeypatch):
    monkeypatch.setenv("REDIS_PASSWORD", "from the environment, long enough")
    conf, found = validation.parse("nvr-1", {"redis_password": GOOD_PASSWORD})
    assert found == [] and conf.password.reveal() == "from the environment, long enough"
    monkeypatch.setenv("REDIS_PASSWORD", "bad\x1b[31m long enough")
    assert any("environment REDIS_PASSWORD" in p for p in validation.parse("nvr-1", {})[1])


def test_secret_in_host_data_is_accepted_and_never_printed():
    conf, found = validation.parse("nvr-1", {"redis_password": Secret(GOOD_PASSWORD)})
    assert found == [] and conf.password.reveal() == GOOD_PASSWORD
    assert GOOD_PASSWORD not in repr(conf) and GOOD_PASSWORD not in f"{conf.password}"


def test_denied_commands_are_normalised():
    conf, found = validation.parse("nvr-1", {"redis_password": GOOD_PASSWORD,
                                            "redis_acl_denied_commands": "FLUSHALL, flushall Config|Rewrite"})
    assert found == [] and conf.acl_denied == ("flushall", "config|rewrite")


@pytest.mark.parametrize("text, size", [
    ("100mb", 100 * 1024**2), ("1g", 10**9), ("1GB", 1024**3), ("2000000", 2000000), ("64k", 64000),
    ("1.5gb", None), ("mb", None), ("0mb", None), ("", None),
])
def test_memory_sizes_follow_redis_units(text, size):
    assert validation.memory_bytes(text) == size


class _FakeData:
    def __init__(self, data):
        self._data = data

    def dict(self):
        return self._data


class _FakeHost:
    def __init__(self, name, data):
        self.name, self.data = name, _FakeData(data)


def test_all_hosts_are_checked_before_anything_runs():
    inventory = [
        _FakeHost("good", {"redis_password": GOOD_PASSWORD}),
        _FakeHost("bad-1", {"redis_port": 0, "redis_password": "x\ny"}),
        _FakeHost("bad-2", {"redis_bind": ["not-an-ip"]}),
    ]
    with pytest.raises(settings.SettingsError) as caught:
        settings.load_all(inventory)
    found = caught.value.problems
    assert any(p.startswith("bad-1: redis_port: ") for p in found)
    assert any(p.startswith("bad-1: redis_password: ") for p in found)
    assert any(p.startswith("bad-2: redis_bind: ") for p in found)
    assert not any(p.startswith("good:") for p in found)
    assert "x\ny" not in str(caught.value)


def test_debug_inventory_shows_a_secret_as_asterisks(tmp_path):
    """`pyinfra INVENTORY debug-inventory` dumps host data: a Secret there prints as asterisks."""
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        "from operations.credentials import Secret\n"
        f"hosts = [('@fake/nvr-1', {{'redis_password': Secret({GOOD_PASSWORD!r})}})]\n"
    )
    proc = subprocess.run([sys.executable, "-m", "pyinfra", str(inventory), "debug-inventory"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"redis_password": "********"' in proc.stdout + proc.stderr
    assert GOOD_PASSWORD not in proc.stdout + proc.stderr


# Every text setting is matched whole: a regex anchored with `$` also accepts a trailing newline
# ("localhost\n"), which would then reach the host's files. Issue 9, item 7.
TEXT_SETTINGS = {
    "redis_backend_host": "localhost",
    "redis_backend_env_path": "/opt/hsi/backend/.env",
    "redis_backend_env_owner": "hsi",
    "redis_backend_env_group": "hsi",
    "redis_exporter_listen": "127.0.0.1:9121",
    "redis_tls_backend_dir": "/opt/hsi/backend/redis-tls",
    "redis_backend_unit": "hsi-backend.service",
    "redis_minimum_version": "7.0",
    "redis_upstream_version": "7.4",
    "redis_maxmemory": "256mb",
}
LIST_SETTINGS = {"redis_bind": "127.0.0.1", "redis_acl_denied_commands": "flushall"}


def _breaks(good: str) -> list[str]:
    return [good + "\n", good + "\r\n", good[:2] + "\n" + good[2:], good + "\x00", good + "\t"]


@pytest.mark.parametrize("setting", sorted(TEXT_SETTINGS))
def test_text_settings_are_matched_whole(setting):
    good = TEXT_SETTINGS[setting]
    assert problems({setting: good}) == [], f"{setting}={good!r} should pass"
    for bad in _breaks(good):
        found = problems({setting: bad})
        assert any(p.startswith(f"nvr-1: {setting}: ") for p in found), \
            f"{setting}={bad!r} was accepted: {found}"


@pytest.mark.parametrize("setting", sorted(LIST_SETTINGS))
def test_list_items_are_matched_whole(setting):
    good = LIST_SETTINGS[setting]
    assert problems({setting: [good]}) == [], f"{setting}=[{good!r}] should pass"
    for bad in _breaks(good):
        for value in ([bad], bad):  # a list item, and the comma/space separated text form
            found = problems({setting: value})
            assert any(p.startswith(f"nvr-1: {setting}: ") for p in found), \
                f"{setting}={value!r} was accepted: {found}"


@pytest.mark.parametrize("address", ["fe80::1%eth0\n", "fe80::1%eth 0", "::1%lo\r\n"])
def test_scoped_addresses_cannot_smuggle_a_line_break(address):
    # Python's ipaddress accepts any text after `%` (an IPv6 scope), newlines included.
    assert any(p.startswith("nvr-1: redis_bind: ") for p in problems({"redis_bind": [address]}))
    assert any(p.startswith("nvr-1: redis_backend_host: ") for p in problems({"redis_backend_host": address}))


@pytest.mark.parametrize("setting, value", [
    ("redis_backend_host", 1234), ("redis_backend_host", ["localhost"]),
    ("redis_backend_env_group", 1000), ("redis_exporter_listen", 9121),
    ("redis_acl_denied_commands", [5]), ("redis_maxmemory", ["256mb"]),
])
def test_text_settings_must_be_text(setting, value):
    assert any(p.startswith(f"nvr-1: {setting}: ") for p in problems({setting: value}))


def test_text_settings_with_upstream_source_are_matched_whole(tmp_path):
    key = tmp_path / "redis.asc"
    key.write_text("not a key")
    found = problems({"redis_source": "upstream", "redis_upstream_key": str(key),
                      "redis_upstream_key_fingerprint": "A" * 40 + "\n"})
    # whitespace in a fingerprint is formatting (gpg prints groups); the key file is what is wrong here
    assert any(p.startswith("nvr-1: redis_upstream_key: ") for p in found), found


def test_maxmemory_may_be_a_number_of_bytes():
    assert problems({"redis_maxmemory": 268435456}) == []
