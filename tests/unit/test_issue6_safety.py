"""Unit tests for the safety modules: settings, rollback and rotation scripts, report, store."""

from __future__ import annotations

import logging
import subprocess

import pytest

from operations import packages, report, rollback, rotation, secrets, settings
from operations.platform import TABLE
from operations.secrets import Secret

PLAT = TABLE[("debian", "12")]["redis"]


def conf(**data):
    parsed, problems = settings.parse("h1", {"redis_password": "p" * 20, **data})
    assert not problems, problems
    return parsed


def problems(**data):
    return settings.parse("h1", {"redis_password": "p" * 20, **data})[1]


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


def test_exporter_unit_needs_the_exporter_file():
    assert conf(redis_exporter_env_path="/etc/x.env", redis_exporter_unit="exp").exporter_unit == "exp.service"
    assert conf().exporter_unit is None
    assert problems(redis_exporter_unit="exp") == [
        "h1: redis_exporter_unit: needs redis_exporter_env_path (the file the exporter reads)"]
    assert problems(redis_exporter_env_path="/etc/x.env", redis_exporter_unit="a b")[0].startswith(
        "h1: redis_exporter_unit:")


def test_rotation_restarts_every_consumer_unit_and_nothing_else():
    both = conf(redis_backend_unit="hsi-backend", redis_exporter_env_path="/etc/x.env", redis_exporter_unit="exp")
    script = rotation.drop_old_script(both, PLAT)
    _syntax_ok(script)
    assert script.index("try-restart hsi-backend.service") < script.index("try-restart exp.service") < script.index(
        "resetpass")
    assert "try-restart" not in rotation.drop_old_script(conf(), PLAT)
    # A unit without a file the deploy writes for it is no consumer of the password.
    assert "try-restart" not in rotation.drop_old_script(conf(redis_backend_env_path="", redis_backend_unit="x"),
                                                         PLAT)


def test_extra_config_lands_at_the_end_of_redis_conf():
    from operations.configure import render_config

    text = render_config(conf(redis_extra_config=["hz 20"]), PLAT)
    assert text.rstrip().endswith("hz 20")
    assert "redis_extra_config" not in render_config(conf(), PLAT)


def _syntax_ok(script: str) -> None:
    result = subprocess.run(["sh", "-n"], check=False, input=script, text=True, capture_output=True)
    assert result.returncode == 0, result.stderr


def test_host_scripts_are_valid_shell_and_carry_no_password():
    c = conf(redis_extra_config=["hz 20"])
    for script in (rollback.safe_restart_script(c, PLAT), rollback.keep_last_good_script(c, PLAT),
                   rotation.add_password_script(c, PLAT), rotation.drop_old_script(c, PLAT),
                   packages.apt_update_script(300)):
        _syntax_ok(script)
        assert "p" * 20 not in script


def test_rotation_password_travels_base64_on_stdin():
    assert "p" * 20 not in rotation.add_password_script(conf(), PLAT)
    assert rotation._stdin("p" * 20) == ["cHBwcHBwcHBwcHBwcHBwcHBwcHA="]


@pytest.mark.parametrize("line, hidden", [
    (">>> 'requirepass \"s3cret\"'", "s3cret"),
    (">>> 'bogus-directive s3cret more'", "s3cret"),
    (">>> 'requirepass \"a'b\"'", "a'b"),
    ("user default on >s3cret ~*", "s3cret"),
    ("masterauth s3cret", "s3cret"),
])
def test_journal_redaction_hides_arguments(line, hidden):
    out = subprocess.run(["sed", "-E", rollback.REDACT_SED], input=line + "\n", text=True,
                         capture_output=True, check=True).stdout
    assert hidden not in out
    assert out.split()[0] in line


@pytest.mark.parametrize("line", [
    "redis-server.service: Main process exited, code=exited, status=1/FAILURE",
    "redis-server.service: Failed to set up user namespacing: Operation not permitted",
    "Bad directive or wrong number of arguments",
])
def test_journal_redaction_keeps_other_lines(line):
    out = subprocess.run(["sed", "-E", rollback.REDACT_SED], input=line + "\n", text=True,
                         capture_output=True, check=True).stdout
    assert out.strip() == line


def test_last_good_lives_in_the_root_only_state_dir():
    assert rollback.last_good_path(PLAT) == "/etc/hsi-redis/last-good/redis.conf"


def test_pending_password_is_reused_then_promoted(tmp_path, monkeypatch):
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path))
    current = secrets.generated_password("@docker/x")
    pending = secrets.pending_password("@docker/x")
    assert pending != current and secrets.pending_password("@docker/x") == pending
    path = secrets.secret_path("@docker/x")
    assert oct(path.with_name(path.name + ".next").stat().st_mode & 0o777) == "0o600"
    secrets.promote_pending("@docker/x")
    assert secrets.generated_password("@docker/x") == pending
    secrets.promote_pending("@docker/x")  # nothing pending: no change
    assert secrets.generated_password("@docker/x") == pending


def test_rotation_target(tmp_path, monkeypatch):
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path))
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    given = conf()
    assert rotation.target_settings(given, "h1") is given  # a given password is the target itself
    generated, found = settings.parse("h1", {})
    assert not found
    target = rotation.target_settings(generated, "h1")
    assert target.password != generated.password and isinstance(target.password, Secret)


def test_connect_reason_from_the_error_log():
    report._EARLY_ERRORS.clear()
    handler = report._ErrorLog(level=logging.ERROR)
    record = logging.LogRecord("pyinfra", logging.ERROR, __file__, 1,
                               "    [\x1b[1m@docker/gone\x1b[0m] Local command failed: docker run -d gone\n"
                               "Unable to find image\ndocker: Error response from daemon: no such host", None, None)
    handler.emit(record)
    # pyinfra colours the prefix; the host name between the brackets is what is matched
    reason = report._connect_reason("@docker/gone")
    assert reason.startswith("Local command failed") and "Error response from daemon" in reason
    assert report._connect_reason("@docker/other").startswith("no reason given")
