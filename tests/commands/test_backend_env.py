"""The backend .env on simulated hosts: what the deploy refuses from the state read, before anything is
written there (the host fails naming the setting, and the merge is never sent), and that in a directory
the backend's user controls the merge names no owner, so the program writes as that user keeping the
file's owner, group and mode (tests/program/test_writes.py)."""

from __future__ import annotations

from .harness import fresh_host, run_flow

ENV = "/opt/hsi/backend/.env"
BACKEND_DIR = "/opt/hsi/backend"
HSI_DIR = {BACKEND_DIR: ("hsi", "hsi", "hsi")}  # /opt/hsi/backend owned by hsi, who controls it


def deploy(envs: dict | None = None, env_details: dict | None = None, dirs: dict | None = None, **data):
    host = fresh_host("debian-12", envs=envs or {}, env_details=env_details or {}, dirs=dirs or {})
    result = run_flow({"deb": (host, data)})
    merges = [e for c in result.calls["deb"] for e in c.entries if e.kind == "merge"]
    return result, result.failures("deb"), merges


def existing(user: str = "hsi", group: str = "hsi", mode: int = 0o640) -> dict:
    return {ENV: ({"DATABASE_URL": "DATABASE_URL=postgres://x"}, mode, user, group)}


def test_an_owner_setting_the_directory_user_cannot_give_fails_the_host_unchanged():
    result, failures, merges = deploy(existing(), dirs=HSI_DIR, redis_backend_env_owner="root")
    assert len(failures) == 1 and "redis_backend_env_owner is root" in failures[0], failures
    assert ENV in failures[0] and merges == []
    assert result.report["deb"]["status"] == "failed" and result.report["deb"]["kind"] == "backend .env unsafe"


def test_a_file_another_user_owns_in_a_users_directory_is_refused():
    """Written as the directory's user, the file would be taken from its owner."""
    _, failures, merges = deploy(existing(user="www-data", group="www-data"), dirs=HSI_DIR)
    assert len(failures) == 1 and "belongs to www-data" in failures[0] and "redis_backend_env_path" in failures[0]
    assert merges == []


def test_a_link_fails_the_host_naming_the_path_setting():
    _, failures, merges = deploy(existing(), env_details={ENV: {"kind": "l"}}, dirs=HSI_DIR)
    assert len(failures) == 1 and "symbolic link" in failures[0] and "redis_backend_env_path" in failures[0]
    assert merges == []


def test_a_refused_directory_fails_the_host_naming_the_path_setting():
    _, failures, merges = deploy(env_details={ENV: {"writer": "unsafe"}},
                                 dirs={BACKEND_DIR: ("root", "root", "unsafe")})
    assert len(failures) == 1 and "redis_backend_env_path" in failures[0] and "writable by" in failures[0]
    assert merges == []


def test_an_ambiguous_file_fails_the_host_with_the_line_number():
    _, failures, merges = deploy(existing(user="root", group="root", mode=0o600),
                                 env_details={ENV: {"bad": ((7, "quoted-key"),)}})
    assert len(failures) == 1 and f"{ENV}: the merge cannot read" in failures[0] and f"{ENV} line 7: quoted-key" in failures[0]
    assert merges == []


def test_a_users_directory_is_written_as_that_user_keeping_the_files_group_and_mode():
    result, failures, merges = deploy(existing(), dirs=HSI_DIR)  # keys missing: merge them
    assert failures == [] and len(merges) == 1, failures
    (merge,) = merges
    assert merge.path == ENV and (merge.user, merge.group) == ("-", "-"), "the file keeps its owner and group"
    assert merge.flags == ("after",)
    lines = dict(line.split("=", 1) for line in merge.content.splitlines())
    assert set(lines) == {"REDIS_URL", "REDIS_PASSWORD"} and lines["REDIS_URL"] == "redis://localhost:6379/0"
    assert result.report["deb"]["status"] == "ok"


def test_owner_and_group_settings_travel_with_the_merge():
    _, failures, merges = deploy(redis_backend_env_owner="hsi", redis_backend_env_group="www-data")
    assert failures == [] and [(m.user, m.group) for m in merges] == [("hsi", "www-data")]


def test_a_converged_env_is_not_merged_again_and_a_loose_mode_is():
    host = fresh_host("debian-12")
    run_flow({"deb": (host, {})})
    assert run_flow({"deb": (host, {})}).calls["deb"] == []
    lines, _, user, group = host.envs[ENV]
    host.envs[ENV] = (lines, 0o644, user, group)  # someone made it world-readable
    (call,) = run_flow({"deb": (host, {})}).calls["deb"]
    assert [e.path for e in call.entries] == [ENV], "the merge tightens it"
