"""Root never works by path where another user controls the directory (operations/safe_paths.py).

Run for real on this machine: as root, directories are given to `nobody`, which plays the
backend's user, and the `.env` / owned-file steps run exactly as on a host (fact, plan, commands).
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess

import pytest

from operations.encoding import dotenv_line
from operations.facts import ManagedFile, new_salt

from .local_ops import NOBODY, deploy_env, deploy_files, env_fact, listing, run_sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: gives directories to nobody")

OWNED = {"REDIS_URL": "REDIS_URL=redis://localhost:6379/0",
         "REDIS_PASSWORD": dotenv_line("REDIS_PASSWORD", "pw-0123456789abcdef")}
BACKEND = "DATABASE_URL=postgresql://hsi@db/hsi\n"


def users_dir(parent, name="backend", uid=NOBODY, mode=0o755):
    path = parent / name
    path.mkdir()
    os.chown(path, uid, uid)
    path.chmod(mode)
    return path


def secret_file(parent, content=b"root-only admin secret\n"):
    """Stands for /etc/hsi-redis/cli.auth: root 0600 in a root directory."""
    path = parent / "cli.auth"
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def fingerprint(path):
    info = os.lstat(path)
    return hashlib.sha256(path.read_bytes()).hexdigest(), info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def test_env_in_a_directory_the_backend_user_owns_is_written_as_that_user(trusted_dir):
    backend = users_dir(trusted_dir)
    outcome = deploy_env(backend / ".env", OWNED)
    assert outcome.returncode == 0, outcome.stderr
    assert listing(backend) == {".env": (NOBODY, NOBODY, 0o600)}


def test_root_never_chowns_chmods_or_moves_in_a_users_directory(trusted_dir):
    """Spies in front of chown/chgrp/chmod/mv/mktemp log who ran them on what: in the user's
    directory only that user may have."""
    backend = users_dir(trusted_dir)
    (backend / ".env").write_text(BACKEND)
    os.chown(backend / ".env", NOBODY, NOBODY)
    spies = trusted_dir / "spies"
    spies.mkdir()
    log = trusted_dir / "calls.log"
    log.touch()
    log.chmod(0o666)
    for tool in ("chown", "chgrp", "chmod", "mv", "mktemp", "install", "mkdir"):
        real = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True,
                              check=True).stdout.strip()
        spy = spies / tool
        spy.write_text(f'#!/bin/sh\necho "$(id -u) {tool} $*" >> {log}\nexec {real} "$@"\n')
        spy.chmod(0o755)
    env = {"PATH": f"{spies}:{os.environ['PATH']}"}
    assert deploy_env(backend / ".env", OWNED, env=env).returncode == 0
    assert deploy_files(backend / "redis-tls", {"ca.crt": ("CA\n", 0o644), "client.key": ("KEY\n", 0o600)},
                        env=env).returncode == 0
    calls = [line.split(" ", 2) for line in log.read_text().splitlines()]
    inside = [call for call in calls if str(backend) in call[2]]
    assert {call[1] for call in inside} >= {"chmod", "mv", "mktemp"}, calls
    assert all(call[0] == str(NOBODY) for call in inside), inside
    assert listing(backend)[".env"][:2] == (NOBODY, NOBODY)
    assert listing(backend / "redis-tls") == {"ca.crt": (NOBODY, NOBODY, 0o644),
                                              "client.key": (NOBODY, NOBODY, 0o600)}


@pytest.mark.parametrize("owner", [None, "nobody"])
def test_env_that_is_a_link_to_a_root_secret_is_refused_and_nothing_changes(trusted_dir, owner):
    """The review's attack: the backend user replaces .env by a link to /etc/hsi-redis/cli.auth."""
    secret = secret_file(trusted_dir)
    backend = users_dir(trusted_dir)
    (backend / ".env").symlink_to(secret)
    before, entries = fingerprint(secret), listing(backend)
    outcome = deploy_env(backend / ".env", OWNED, owner=owner)
    assert outcome.returncode == 1 and "redis_backend_env_path" in outcome.stderr, outcome.stderr
    assert "symbolic link" in outcome.stderr
    assert fingerprint(secret) == before and listing(backend) == entries
    assert os.readlink(backend / ".env") == str(secret)
    # The fact did not read through the link either.
    found, _ = env_fact(backend / ".env", tuple(OWNED))
    assert found["file"] == "link" and found["keys"] == {}


def test_a_link_swapped_in_after_the_check_is_read_only_as_the_user(trusted_dir):
    """Even if the user wins the race between the fact and the merge, the merge runs as that user
    and cannot read the root-only file (it fails; nothing is written)."""
    secret = secret_file(trusted_dir)
    backend = users_dir(trusted_dir)
    (backend / ".env").write_text(BACKEND)
    os.chown(backend / ".env", NOBODY, NOBODY)
    found, salt = env_fact(backend / ".env", tuple(OWNED))
    from operations.backend_env import env_commands

    commands = env_commands(str(backend / ".env"), OWNED, found, salt, None, None)
    (backend / ".env").unlink()
    (backend / ".env").symlink_to(secret)  # the swap
    result = run_sh(commands[0])
    assert result.returncode != 0
    assert os.path.islink(backend / ".env") and fingerprint(secret)[0] == hashlib.sha256(
        b"root-only admin secret\n").hexdigest()
    assert [name for name in os.listdir(backend) if name != ".env"] == []


def test_existing_env_keeps_owner_and_group_and_only_loses_bits(trusted_dir):
    """Item 8: a service user's .env (here in a root directory) stays theirs; 0644 becomes 0640."""
    for mode, expected in ((0o640, 0o640), (0o644, 0o640), (0o600, 0o600), (0o755, 0o640), (0o660, 0o660)):
        path = trusted_dir / f"env-{mode:o}"
        path.write_text(BACKEND)
        os.chown(path, NOBODY, NOBODY)
        path.chmod(mode)
        outcome = deploy_env(path, OWNED)
        assert outcome.returncode == 0, outcome.stderr
        assert listing(trusted_dir)[path.name] == (NOBODY, NOBODY, expected), mode
        assert path.read_text().startswith(BACKEND)
        assert deploy_env(path, OWNED).commands == [], "a second run changes nothing"


def test_owner_and_group_settings_still_win_in_a_root_directory(trusted_dir):
    path = trusted_dir / ".env"
    path.write_text(BACKEND)
    path.chmod(0o600)
    assert deploy_env(path, OWNED, owner="nobody").returncode == 0
    assert listing(trusted_dir)[".env"] == (NOBODY, NOBODY, 0o600)
    assert deploy_env(path, OWNED, owner="root", group="nogroup").returncode == 0
    assert listing(trusted_dir)[".env"] == (0, NOBODY, 0o600)
    fresh = trusted_dir / "new.env"
    assert deploy_env(fresh, OWNED, group="nogroup").returncode == 0
    assert listing(trusted_dir)["new.env"] == (0, NOBODY, 0o640), "group set: group may read a new file"


def test_an_owner_setting_the_directory_owner_cannot_give_is_refused(trusted_dir):
    backend = users_dir(trusted_dir)
    outcome = deploy_env(backend / ".env", OWNED, owner="root")
    assert outcome.returncode == 1 and "redis_backend_env_owner" in outcome.stderr, outcome.stderr
    assert listing(backend) == {}


def test_a_file_of_another_user_in_the_users_directory_is_refused(trusted_dir):
    backend = users_dir(trusted_dir)
    (backend / ".env").write_text(BACKEND)  # root's, as an older deploy left it
    outcome = deploy_env(backend / ".env", OWNED)
    assert outcome.returncode == 1 and "chown nobody" in outcome.stderr, outcome.stderr
    assert (backend / ".env").read_text() == BACKEND


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o1777, 0o2770])
@pytest.mark.parametrize("where", ["directory", "parent"])
def test_group_or_other_writable_directories_are_refused(trusted_dir, mode, where):
    parent = users_dir(trusted_dir, "parent", uid=0, mode=0o755)
    backend = users_dir(parent, uid=NOBODY)
    (parent if where == "parent" else backend).chmod(mode)
    outcome = deploy_env(backend / ".env", OWNED)
    assert outcome.returncode == 1 and "writable by its group or by others" in outcome.stderr
    assert "redis_backend_env_path" in outcome.stderr
    files = deploy_files(backend / "redis-tls", {"ca.crt": ("CA\n", 0o644)})
    assert files.returncode == 1 and "redis_tls_backend_dir" in files.stderr
    assert listing(backend) == {}


def test_two_users_on_the_path_are_refused(trusted_dir):
    outer = users_dir(trusted_dir, "outer", uid=NOBODY)
    inner = users_dir(outer, "inner", uid=1)  # daemon
    outcome = deploy_env(inner / ".env", OWNED)
    assert outcome.returncode == 1 and "different users" in outcome.stderr, outcome.stderr


def test_directory_links_are_followed_only_through_directories_root_controls(trusted_dir):
    real = users_dir(trusted_dir, "releases", uid=0)
    (trusted_dir / "current").symlink_to(real)  # a deploy layout: root's link in root's directory
    assert deploy_env(trusted_dir / "current" / ".env", OWNED).returncode == 0
    assert listing(real) == {".env": (0, 0, 0o600)}
    # A link the user controls, pointing into a root directory: written as the user, who cannot.
    backend = users_dir(trusted_dir)
    (backend / "app").symlink_to(real)
    outcome = deploy_env(backend / "app" / ".env", OWNED)
    assert outcome.returncode == 1 and "nobody" in outcome.stderr, outcome.stderr
    assert listing(real) == {".env": (0, 0, 0o600)}


def test_owned_files_in_a_users_directory_replace_links_and_never_chown_their_targets(trusted_dir):
    """The chown-through-a-link attack: redis-tls/ca.crt replaced by a link to a root file with the
    same content (the server's CA). Written as the user, the link is replaced; the target keeps
    its owner."""
    server_ca = trusted_dir / "server-ca.crt"
    server_ca.write_text("CA\n")
    server_ca.chmod(0o644)
    secret = secret_file(trusted_dir)
    backend = users_dir(trusted_dir)
    tls = users_dir(backend, "redis-tls", mode=0o750)
    (tls / "ca.crt").symlink_to(server_ca)
    (tls / "client.key").symlink_to(secret)
    before = fingerprint(server_ca), fingerprint(secret)
    outcome = deploy_files(tls, {"ca.crt": ("CA\n", 0o644), "client.key": ("KEY\n", 0o600)})
    assert outcome.returncode == 0, outcome.stderr
    assert (fingerprint(server_ca), fingerprint(secret)) == before
    assert listing(tls) == {"ca.crt": (NOBODY, NOBODY, 0o644), "client.key": (NOBODY, NOBODY, 0o600)}
    assert (tls / "client.key").read_text() == "KEY\n"
    assert deploy_files(tls, {"ca.crt": ("CA\n", 0o644), "client.key": ("KEY\n", 0o600)}).commands == []


def test_owned_files_in_a_root_directory_go_to_their_owner_directory_last(trusted_dir):
    """Owner set, path root's: root writes into a root-owned directory, hands it over at the end;
    the next run finds the directory the user's and writes nothing (or, when needed, as them)."""
    tls = trusted_dir / "redis-tls"
    files = {"ca.crt": ("CA\n", 0o644), "client.key": ("KEY\n", 0o600)}
    assert deploy_files(tls, files, owner="nobody").returncode == 0
    assert listing(trusted_dir)["redis-tls"] == (NOBODY, NOBODY, 0o750)
    assert listing(tls) == {"ca.crt": (NOBODY, NOBODY, 0o644), "client.key": (NOBODY, NOBODY, 0o600)}
    assert deploy_files(tls, files, owner="nobody").commands == []
    changed = deploy_files(tls, {**files, "ca.crt": ("CA2\n", 0o644)}, owner="nobody")
    assert changed.returncode == 0 and (tls / "ca.crt").read_text() == "CA2\n"
    refused = deploy_files(tls, files, owner="root")
    assert refused.returncode == 1 and "redis_backend_env_owner" in refused.stderr


def test_managed_file_fact_does_not_follow_links(trusted_dir):
    secret = secret_file(trusted_dir)
    link = trusted_dir / "link"
    link.symlink_to(secret)
    fact = ManagedFile()
    found = fact.process(run_sh(fact.command(path=str(link), salt=new_salt())).stdout.splitlines())
    assert found["link"] is True and found["sha256"] == ""


def test_host_scripts_pass_shellcheck():
    """The shell these steps send, composed as on a host, in POSIX sh."""
    from operations import backend_env, safe_paths

    scripts = [
        backend_env.EnvFileKeys().command(path="/opt/hsi/backend/.env", keys=tuple(OWNED), salt="ab", owner="hsi"),
        backend_env.merge_command("/opt/hsi/backend/.env", OWNED, ":1001", 0o640, 1001).get_raw_value(),
        safe_paths.OwnedFiles().command(directory="/opt/hsi/backend/redis-tls", names=("ca.crt",), salt="ab"),
        "hsi_merge=x\n" + backend_env._MERGE_SH,
        "hsi_find=x\n" + backend_env._READ_SH,
        safe_paths._WRITE_FILES,
    ]
    for script in scripts:
        # SC2016: awk programs and inner scripts are single-quoted on purpose; SC2034: the
        # chain functions set variables some callers do not read.
        result = subprocess.run(["shellcheck", "-s", "sh", "-e", "SC2016,SC2034", "-"], input=script,
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout
