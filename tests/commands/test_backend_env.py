"""The backend .env step on simulated hosts: what it refuses before writing anything, and that a
directory the backend's user controls is written as that user (operations/safe_paths.py)."""

from __future__ import annotations

from .harness import FAIL_HOST_COMMAND, HostFixture, run_deploy

# EnvFileKeys answers for /opt/hsi/backend owned by hsi (uid 1001).
HSI_CHAIN = {
    "controller": {"uid": 1001, "name": "hsi", "gid": 1001},
    "top": {"mode": 0o755, "uid": 1001, "gid": 1001, "user": "hsi", "group": "hsi"},
}
HSI_FILE = {"mode": 0o640, "uid": 1001, "gid": 1001, "user": "hsi", "group": "hsi"}


def deploy(backend_env: dict, **data):
    result = run_deploy({"deb": (HostFixture("debian-12", backend_env=backend_env), data)})
    texts = result.texts("deb")
    failures = [t for t in texts if FAIL_HOST_COMMAND.match(t)]
    merges = [t for t in texts if "hsi_merge=" in t]
    return failures, merges


def test_an_owner_setting_the_directory_user_cannot_give_fails_the_host_unchanged():
    failures, merges = deploy({**HSI_CHAIN, "file": HSI_FILE, "owner": {"uid": 0, "gid": 0}},
                              redis_backend_env_owner="root")
    assert len(failures) == 1 and "redis_backend_env_owner is root" in failures[0], failures
    assert "/opt/hsi/backend/.env" in failures[0] and merges == []


def test_a_link_fails_the_host_naming_the_path_setting():
    failures, merges = deploy({**HSI_CHAIN, "file": "link"})
    assert len(failures) == 1 and "symbolic link" in failures[0] and "redis_backend_env_path" in failures[0]
    assert merges == []


def test_a_refused_directory_fails_the_host_naming_the_path_setting():
    failures, merges = deploy({"refused": "/opt/hsi is writable by its group or by others (mode 775)"})
    assert len(failures) == 1 and "redis_backend_env_path" in failures[0] and "mode 775" in failures[0]
    assert merges == []


def test_an_ambiguous_file_fails_the_host_with_the_line_number():
    failures, merges = deploy({"ambiguous": "7 the key REDIS_URL is quoted"})
    assert len(failures) == 1 and "/opt/hsi/backend/.env line 7: the key REDIS_URL is quoted" in failures[0]
    assert merges == []


def test_a_users_directory_is_written_as_that_user_keeping_the_files_group_and_mode():
    failures, merges = deploy({**HSI_CHAIN, "file": HSI_FILE, "keys": {}})  # keys missing: merge them
    assert len(merges) == 1 and all("verify failed" in f for f in failures)  # verify reads the same fixture
    merge = merges[0]
    assert '[ "${hsi_uid:-0}" = 1001 ]' in merge, "re-checks that hsi still controls the path"
    assert merge.rstrip().endswith('"$hsi_real" .env :1001 640 redis_backend_env_path'), merge[-200:]
