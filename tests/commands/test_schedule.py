"""Scheduled snapshots (redis_backup_schedule) as the deploy's one apply call carries them: the program
file, the service and the timer in the bundle, the timer enabled; a converged host costs the read only;
turned off, the timer is disabled; verification reports the newest snapshot's age from the same read.
The timer firing and the snapshot itself: tests/integration/test_backup.py, tests/program/test_snapshot.py."""

from __future__ import annotations

from operations import program, schedule

from .harness import fresh_host, run_flow

SERVICE_PATH = f"/etc/systemd/system/{schedule.SERVICE}"
TIMER_PATH = f"/etc/systemd/system/{schedule.TIMER}"


def _deploy(host, data: dict, entry: str = "deploy.py"):
    return run_flow({"box": (host, data)}, entry=entry)


def test_a_schedule_installs_the_program_the_units_and_enables_the_timer():
    host = fresh_host("debian-12", container="docker")
    result = _deploy(host, {"redis_backup_schedule": "daily", "redis_snapshot_keep": 5})
    apply = result.call("box", "apply")
    installed = apply.entry(program.INSTALLED_PATH)
    assert installed.content == program.source() and (installed.mode, installed.user) == ("755", "root")
    service = apply.entry(SERVICE_PATH).content
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    assert exec_start.startswith("ExecStart=/usr/local/sbin/hsi-redis snapshot ")
    for expected in ("--into /var/lib/hsi-redis/snapshots", "--keep 5", "--service redis-server",
                     "--config /etc/redis/redis.conf", "--cli redis-cli", "--admin-user hsi-admin"):
        assert expected in exec_start, exec_start
    timer = apply.entry(TIMER_PATH)
    assert "OnCalendar=daily" in timer.content and "Persistent=true" in timer.content and timer.flags == ("unit",)
    assert schedule.TIMER in apply.option("enable-units").split()
    assert result.requests["box"][0].snapshots == "/var/lib/hsi-redis/snapshots"
    # converged: the next run reads once and calls nothing
    assert _deploy(host, {"redis_backup_schedule": "daily", "redis_snapshot_keep": 5}).calls["box"] == []
    # another schedule: only the timer file travels (systemd reloads it)
    again = _deploy(host, {"redis_backup_schedule": "hourly", "redis_snapshot_keep": 5}).call("box", "apply")
    assert again.paths() == [TIMER_PATH] and "OnCalendar=hourly" in again.entry(TIMER_PATH).content


def test_no_schedule_installs_nothing_and_turning_it_off_disables_the_timer():
    host = fresh_host("debian-13", container="docker")
    apply = _deploy(host, {}).call("box", "apply")
    assert not {program.INSTALLED_PATH, SERVICE_PATH, TIMER_PATH} & set(apply.paths())
    assert apply.option("disable-units") is None
    _deploy(host, {"redis_backup_schedule": "weekly"})
    off = _deploy(host, {})
    assert off.call("box", "apply").option("disable-units") == schedule.TIMER
    assert off.call("box", "apply").paths() == []
    assert _deploy(host, {}).calls["box"] == []


def test_paths_with_spaces_and_percent_reach_the_program_unchanged():
    assert schedule.exec_arg("/srv/redis snaps/50%") == '"/srv/redis snaps/50%%"'
    assert schedule.exec_arg("/var/lib/hsi-redis/snapshots") == "/var/lib/hsi-redis/snapshots"
    assert schedule.exec_arg('a"b$c') == '"a\\"b$$c"'


def test_verification_reports_the_newest_snapshot_age():
    data = {"redis_backup_schedule": "hourly"}
    host = fresh_host("debian-12", container="docker")
    _deploy(host, data)
    host.snapshots, host.snapshot_age = 3, 600
    fresh = _deploy(host, data, entry="verify.py").report["box"]
    assert fresh["status"] == "ok" and fresh["snapshot_age_seconds"] == 600 and fresh["snapshots"] == 3
    assert not [w for w in fresh.get("warnings", []) if "snapshot" in w]
    host.snapshot_age = 3 * 3600
    stale = _deploy(host, data, entry="verify.py").report["box"]
    assert any("newest scheduled snapshot is 3 hours old" in w for w in stale["warnings"]), stale
    host.snapshots, host.snapshot_age = 0, None
    none = _deploy(host, data, entry="verify.py").report["box"]
    assert any("no scheduled snapshot" in n for n in none["notes"])
    assert not [w for w in none.get("warnings", []) if "snapshot" in w]
    # without a schedule nothing is asked or said
    quiet = _deploy(host, {}, entry="verify.py")
    assert quiet.requests["box"][0].snapshots == "" and "snapshot_age_seconds" not in quiet.report["box"]
