"""Settings: one default per setting, documented in the README; password sources; errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from operations import credentials, defaults, validation

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path / "store"))
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    return tmp_path / "store"


def test_every_setting_is_in_the_readme_table_with_its_default():
    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r"^\| `(redis_[a-z0-9_]+)` \| (.*?) \|", line)
        if match:
            rows[match.group(1)] = match.group(2)
    assert set(rows) == set(defaults.DEFAULTS), "README settings table and defaults.SETTINGS differ"


def test_defaults_parse_cleanly_and_size_memory():
    conf, problems = validation.parse("h", {})
    assert problems == []
    assert (conf.size, conf.maxmemory, conf.maxmemory_policy) == ("small", "100mb", "noeviction")
    assert conf.bind == ("127.0.0.1", "-::1") and conf.port == 6379
    for size, memory in (("medium", "200mb"), ("large", "512mb")):
        assert validation.parse("h", {"redis_size": size})[0].maxmemory == memory


def test_generated_password_is_stable_private_and_strong(store):
    first = validation.parse("web-1", {})[0].password
    second = validation.parse("web-1", {})[0].password
    other = validation.parse("web-2", {})[0].password
    assert first == second and first != other
    assert len(first.reveal()) == 44  # base64 of 32 bytes
    path = credentials.secret_path("web-1")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700 and store.stat().st_mode & 0o777 == 0o700


def test_environment_password_wins_over_host_data(monkeypatch):
    monkeypatch.setenv("REDIS_PASSWORD", "from-the-environment-123")
    conf, _ = validation.parse("h", {"redis_password": "from-host-data-456789"})
    assert conf.password.reveal() == "from-the-environment-123"
    assert "environment" in conf.password_source


def test_secret_never_prints():
    conf, _ = validation.parse("h", {"redis_password": "a-very-secret-value-123"})
    for text in (repr(conf), str(conf.password), f"{conf.password}", repr(conf.password)):
        assert "a-very-secret-value-123" not in text


@pytest.mark.parametrize(
    "data, setting",
    [
        ({"redis_size": "huge"}, "redis_size"),
        ({"redis_port": 0}, "redis_port"),
        ({"redis_port": "6379x"}, "redis_port"),
        ({"redis_bind": ["127.0.0.1", "localhost"]}, "redis_bind"),
        ({"redis_maxmemory": "lots"}, "redis_maxmemory"),
        ({"redis_appendfsync": "sometimes"}, "redis_appendfsync"),
        ({"redis_backend_env_path": "relative/.env"}, "redis_backend_env_path"),
        ({"redis_backend_env_owner": "Bad User"}, "redis_backend_env_owner"),
        ({"redis_password": "short"}, "redis_password"),
        ({"redis_password": "line\nbreak-but-long-enough"}, "redis_password"),
        ({"redis_password": "nul\x00-but-long-enough"}, "redis_password"),
        ({"redis_sise": "small"}, "redis_sise"),
    ],
)
def test_bad_values_name_host_and_setting(data, setting):
    conf, problems = validation.parse("cam-host", data)
    assert conf is None
    assert any(p.startswith(f"cam-host: {setting}: ") for p in problems), problems


def test_development_hosts_may_have_short_passwords():
    conf, problems = validation.parse("dev", {"redis_password": "dev", "redis_development": True})
    assert problems == [] and conf.password.reveal() == "dev"
