"""Unit tests for the safety settings, the rotation's consumers and target, the report's connect reasons,
the password store. (The rollback, rotation and apt scripts are the host program's now: see tests/program.)"""

from __future__ import annotations

import base64
import logging

import pytest

from operations import credentials, program, prologue, render, report, rotation, validation
from operations.credentials import Secret
from operations.rows import TABLE
from operations.target import resolve

PLAT = TABLE[("debian", "12")]["redis"]


def conf(**data):
    parsed, problems = validation.parse("h1", {"redis_password": "p" * 20, **data})
    assert not problems, problems
    return parsed


def problems(**data):
    return validation.parse("h1", {"redis_password": "p" * 20, **data})[1]


def target(settings):
    return resolve(settings, PLAT, prologue.admin_password(settings.host_name))


def test_extra_config_lines_are_kept_in_order():
    assert conf(redis_extra_config=["maxclients 500", " hz 20 "]).extra_config == ("maxclients 500", "hz 20")
    assert conf(redis_extra_config="hz 20").extra_config == ("hz 20",)
    assert conf().extra_config == ()


@pytest.mark.parametrize("value", [["a\nb"], ["x\r"], ["nul\x00"], [""], [5], {"a": 1}])
def test_extra_config_rejects_line_breaks_and_non_lines(value):
    found = problems(redis_extra_config=value)
    assert found and all(p.startswith("h1: redis_extra_config:") for p in found)


def test_backend_unit_and_restart_wait():
    assert conf(redis_backend_unit="hsi-backend").backend_unit == "hsi-backend.service"
    assert conf(redis_backend_unit="hsi@1.service").backend_unit == "hsi@1.service"
    assert conf().backend_unit is None
    assert problems(redis_backend_unit="bad unit; rm")[0].startswith("h1: redis_backend_unit:")
    assert conf(redis_restart_wait=30).restart_wait == 30
    assert problems(redis_restart_wait=1)[0].startswith("h1: redis_restart_wait:")


def test_the_old_exporter_settings_say_what_replaced_them():
    for name in ("redis_exporter_env_path", "redis_exporter_owner", "redis_exporter_unit"):
        found = problems(**{name: "x"})
        assert len(found) == 1 and found[0].startswith(f"h1: {name}: no longer supported")
        assert "redis_exporter: true" in found[0]


def test_rotation_restarts_every_consumer_unit_and_nothing_else():
    both = conf(redis_backend_unit="hsi-backend", redis_exporter=True)
    # the exporter logs in as its own user: no consumer of the backend's password
    assert rotation.consumers(target(both)) == (["hsi-backend.service"], [])
    units, manual = rotation.consumers(target(conf()))
    assert units == [] and len(manual) == 1 and "redis_backend_unit" in manual[0]
    # A unit without a file the deploy writes for it is no consumer of the password.
    assert rotation.consumers(target(conf(redis_backend_env_path="", redis_backend_unit="x"))) == ([], [])


def test_extra_config_lands_at_the_end_of_redis_conf():
    text = render.redis_conf(target(conf(redis_extra_config=["hz 20"])))
    assert text.rstrip().endswith("hz 20")
    assert "redis_extra_config" not in render.redis_conf(target(conf()))


def test_rotation_password_travels_base64_on_stdin():
    """The new password is the bundle's first line, base64 (tests/program/test_credentials.py: never in argv)."""
    entry = program.FileEntry("/etc/hsi-redis/backend.auth", b"p" * 20, 0o600)
    lines = program.bundle([entry], password="p" * 20)
    assert lines[0] == "password cHBwcHBwcHBwcHBwcHBwcHBwcHA=" and lines[-1] == "end"
    assert not any("p" * 20 in line for line in lines)
    assert base64.b64decode(lines[2]) == b"p" * 20
    command = program.command("rotate", *program.options(drop=1), stdin=lines)
    assert "p" * 20 not in command.get_raw_value() and "cHBwcHBw" not in command.get_raw_value()
    assert program.bundle([]) == []  # nothing to send: empty stdin, no `end` alone


def test_pending_password_is_reused_then_promoted(tmp_path, monkeypatch):
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path))
    current = credentials.generated_password("@docker/x")
    pending = credentials.pending_password("@docker/x")
    assert pending != current and credentials.pending_password("@docker/x") == pending
    path = credentials.secret_path("@docker/x")
    assert oct(path.with_name(path.name + ".next").stat().st_mode & 0o777) == "0o600"
    credentials.promote_pending("@docker/x")
    assert credentials.generated_password("@docker/x") == pending
    credentials.promote_pending("@docker/x")  # nothing pending: no change
    assert credentials.generated_password("@docker/x") == pending


def test_rotation_target(tmp_path, monkeypatch):
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path))
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    given = target(conf())
    assert rotation.new_target(given).password == given.password  # a given password is the target itself
    generated, found = validation.parse("h1", {})
    assert not found
    new = rotation.new_target(target(generated))
    assert new.password != generated.password and isinstance(new.password, Secret)
    assert new.password == credentials.pending_password("h1")
    assert dict(new.backend.lines)["REDIS_PASSWORD"] != dict(target(generated).backend.lines)["REDIS_PASSWORD"]


def test_connect_reason_from_the_error_log():
    run = report.RunReport()
    handler = report._ErrorLog(run)
    record = logging.LogRecord("pyinfra", logging.ERROR, __file__, 1,
                               "    [\x1b[1m@docker/gone\x1b[0m] Local command failed: docker run -d gone\n"
                               "Unable to find image\ndocker: Error response from daemon: no such host", None, None)
    handler.emit(record)
    # pyinfra colours the prefix; the host name between the brackets is what is matched
    reason = run.connect_reason("@docker/gone")
    assert reason.startswith("Local command failed") and "Error response from daemon" in reason
    assert run.connect_reason("@docker/other").startswith("no reason given")
