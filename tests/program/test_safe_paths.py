"""Root never works by path where another user controls the directory (issue 9 items 2 and 8), run for
real: as root, directories are given to `nobody`, who plays the backend's user, and the program writes
the backend's `.env` (a `merge` entry) and its TLS files (`file` entries) exactly as the deploy sends them.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from .conftest import bundle

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: gives directories to nobody")

NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = pwd.getpwnam("nobody").pw_gid
NOGROUP_NAME = grp.getgrgid(NOGROUP).gr_name
URL = "REDIS_URL=redis://localhost:6379/0\n"
BACKEND = "DATABASE_URL=postgresql://hsi@db/hsi\n"


@pytest.fixture
def h(make_host):
    return make_host()  # no server: these entries never restart it


@pytest.fixture
def trusted():
    """A directory every user can traverse, on a path only root controls (/tmp/X, root 0755)."""
    path = Path(tempfile.mkdtemp(dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def users_dir(parent: Path, name: str = "backend", uid: int = NOBODY, mode: int = 0o755) -> Path:
    path = parent / name
    path.mkdir()
    os.chown(path, uid, pwd.getpwuid(uid).pw_gid)
    path.chmod(mode)
    return path


def secret_file(parent: Path, content: bytes = b"root-only admin secret\n") -> Path:
    """Stands for /etc/hsi-redis/cli.auth: root 0600 in a root directory."""
    path = parent / "cli.auth"
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def fingerprint(path) -> tuple:
    info = os.lstat(path)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest(), info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def listing(directory: Path) -> dict[str, tuple[int, int, int]]:
    """{name: (uid, gid, mode)} of a directory's entries, links not followed."""
    return {name: (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode))
            for name in sorted(os.listdir(directory)) for info in [os.lstat(directory / name)]}


def merge(h, path, user: str = "-", group: str = "-", env: dict | None = None):
    return h.run("apply", stdin=bundle(("merge", "after", user, group, str(path), URL)), env=env)


def files(h, directory: Path, contents: dict[str, tuple[str, str]], user: str = "nobody",
          group: str = NOGROUP_NAME, env: dict | None = None):
    """Whole files (name -> (content, mode)) as the deploy sends a client's TLS files."""
    entries = [("file", mode, user, group, "after", str(directory / name), content)
               for name, (content, mode) in contents.items()]
    return h.run("apply", stdin=bundle(*entries), env=env)


def spies(where: Path, log: Path, tools=("chown", "chgrp", "chmod", "mv", "mktemp", "install", "mkdir", "cp"),
          extra: dict[str, str] | None = None) -> dict:
    """Scripts in front of `tools` that log `uid tool args` (and run `extra[tool]` first); the PATH."""
    where.mkdir()
    log.touch()
    log.chmod(0o666)
    for tool in tools:
        real = shutil.which(tool)
        spy = where / tool
        spy.write_text(f'#!/bin/sh\necho "$(id -u) {tool} $*" >> {log}\n{(extra or {}).get(tool, "")}\n'
                       f'exec {real} "$@"\n')
        spy.chmod(0o755)
    return {"PATH": f"{where}:{os.environ['PATH']}"}


def test_an_env_in_a_directory_the_backend_user_owns_is_written_as_that_user(h, trusted):
    backend = users_dir(trusted)
    r = merge(h, backend / ".env")
    assert r.code == 0, r.err
    assert listing(backend) == {".env": (NOBODY, NOGROUP, 0o600)}


def test_root_never_chowns_chmods_or_moves_in_a_users_directory(h, trusted):
    """Spies in front of chown/chgrp/chmod/mv/mktemp/install/mkdir/cp log who ran them on what: inside the
    user's directory only that user did."""
    backend = users_dir(trusted)
    (backend / ".env").write_text(BACKEND)
    os.chown(backend / ".env", NOBODY, NOGROUP)
    log = trusted / "calls.log"
    env = spies(trusted / "spies", log)
    assert merge(h, backend / ".env", env=env).code == 0
    r = files(h, backend / "redis-tls", {"ca.crt": ("CA\n", "0644"), "client.key": ("KEY\n", "0600")}, env=env)
    assert r.code == 0, r.err
    calls = [line.split(" ", 2) for line in log.read_text().splitlines()]
    inside = [call for call in calls if str(backend) in call[2]]
    assert {call[1] for call in inside} >= {"chmod", "mv", "mktemp", "mkdir"}, calls
    assert all(call[0] == str(NOBODY) for call in inside), inside
    assert listing(backend)[".env"][:2] == (NOBODY, NOGROUP)
    assert listing(backend / "redis-tls") == {"ca.crt": (NOBODY, NOGROUP, 0o644),
                                              "client.key": (NOBODY, NOGROUP, 0o600)}


@pytest.mark.parametrize("target", ["cli.auth", "/etc/shadow"])
@pytest.mark.parametrize("owner", ["-", "nobody"])
def test_an_env_that_is_a_link_to_a_root_secret_is_refused_and_nothing_changes(h, trusted, owner, target):
    """The review's attack: the backend user replaces .env by a link to /etc/hsi-redis/cli.auth (or
    /etc/shadow), hoping the next deploy hands them its content."""
    secret = secret_file(trusted) if target == "cli.auth" else Path(target)
    backend = users_dir(trusted)
    (backend / ".env").symlink_to(secret)
    before, entries = fingerprint(secret), listing(backend)
    r = merge(h, backend / ".env", user=owner)
    assert r.code == 1 and "symbolic link" in r.err, r.err
    assert fingerprint(secret) == before and listing(backend) == entries
    assert os.readlink(backend / ".env") == str(secret)
    # the read does not go through the link either
    read = h.run("verify", "--salt", "ab", "--env", str(backend / ".env"), "--env-keys", "REDIS_URL")
    assert read.keys["env"].split()[0] == "l" and read.all("envkey") == [] and read.all("envbad") == []


def test_a_link_swapped_in_after_the_check_is_read_only_as_the_user(h, trusted):
    """Even if the user wins the race between the link check and the read (here: while the writer makes
    its temporary file), the merge runs as that user and cannot read the root-only file: it fails,
    nothing is written, the link stays."""
    secret = secret_file(trusted)
    backend = users_dir(trusted)
    env_file = backend / ".env"
    env_file.write_text(BACKEND)
    os.chown(env_file, NOBODY, NOGROUP)
    swap = f'case "$*" in *{backend}/*) rm -f {env_file} && ln -s {secret} {env_file};; esac'
    env = spies(trusted / "spies", trusted / "calls.log", tools=("mktemp",), extra={"mktemp": swap})
    r = merge(h, env_file, env=env)
    assert r.code == 1 and "not written" in r.err, r.err
    assert env_file.is_symlink() and fingerprint(secret)[0] == hashlib.sha256(b"root-only admin secret\n").hexdigest()
    assert os.listdir(backend) == [".env"], "temporary files left behind"


def test_a_file_swapped_for_a_link_after_the_check_is_replaced_not_followed(h, trusted):
    secret = secret_file(trusted)
    backend = users_dir(trusted)
    tls = users_dir(backend, "redis-tls", mode=0o750)
    ca = tls / "ca.crt"
    swap = f'case "$*" in *{tls}/*) ln -sf {secret} {ca};; esac'
    env = spies(trusted / "spies", trusted / "calls.log", tools=("mktemp",), extra={"mktemp": swap})
    before = fingerprint(secret)
    r = files(h, tls, {"ca.crt": ("CA\n", "0644")}, env=env)
    assert r.code == 0, r.err
    assert fingerprint(secret) == before
    assert listing(tls) == {"ca.crt": (NOBODY, NOGROUP, 0o644)} and ca.read_text() == "CA\n"


@pytest.mark.parametrize("mode, expected", [(0o640, 0o640), (0o644, 0o640), (0o600, 0o600), (0o755, 0o640),
                                            (0o660, 0o660)])
def test_an_existing_env_keeps_owner_and_group_and_only_loses_bits(h, trusted, mode, expected):
    """Item 8: a service user's .env (here in a root directory) stays theirs; 0644 becomes 0640."""
    path = trusted / ".env"
    path.write_text(BACKEND)
    os.chown(path, NOBODY, NOGROUP)
    path.chmod(mode)
    r = merge(h, path)
    assert r.code == 0, r.err
    assert listing(trusted)[".env"] == (NOBODY, NOGROUP, expected)
    assert path.read_text() == BACKEND + URL
    assert merge(h, path).out == "", "a second run changes nothing"


def test_owner_and_group_settings_win_in_a_root_directory(h, trusted):
    path = trusted / ".env"
    path.write_text(BACKEND)
    path.chmod(0o600)
    assert merge(h, path, user="nobody").code == 0
    assert listing(trusted)[".env"] == (NOBODY, NOGROUP, 0o600), "the owner's login group with it"
    assert merge(h, path, user="nobody").out == ""
    assert merge(h, path, user="root", group=NOGROUP_NAME).code == 0
    assert listing(trusted)[".env"] == (0, NOGROUP, 0o600)
    fresh = trusted / "new.env"
    r = merge(h, fresh, group=NOGROUP_NAME)
    assert r.code == 0, r.err
    assert listing(trusted)["new.env"] == (0, NOGROUP, 0o640), "group set: the group may read a new file"
    assert merge(h, fresh, group=NOGROUP_NAME).out == ""


def test_an_owner_setting_the_directory_owner_cannot_give_is_refused(h, trusted):
    backend = users_dir(trusted)
    r = merge(h, backend / ".env", user="root")
    assert r.code == 1 and "belongs to nobody" in r.err, r.err
    assert listing(backend) == {}


def test_a_file_of_another_user_in_the_users_directory_is_refused(h, trusted):
    backend = users_dir(trusted)
    (backend / ".env").write_text(BACKEND)  # root's, as an older deploy left it
    r = merge(h, backend / ".env")
    assert r.code == 1 and f"chown nobody {backend / '.env'}" in r.err, r.err
    assert (backend / ".env").read_text() == BACKEND and listing(backend)[".env"][0] == 0


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o1777, 0o2770])
@pytest.mark.parametrize("where", ["directory", "parent"])
def test_group_or_other_writable_directories_are_refused(h, trusted, mode, where):
    parent = users_dir(trusted, "parent", uid=0, mode=0o755)
    backend = users_dir(parent)
    (parent if where == "parent" else backend).chmod(mode)
    r = merge(h, backend / ".env")
    if where == "parent" and mode == 0o1777:
        # sticky, as /tmp: others cannot rename or remove the user's directory in it, so the user's own
        # directory decides (written as nobody)
        assert r.code == 0 and listing(backend) == {".env": (NOBODY, NOGROUP, 0o600)}, r.err
        return
    assert r.code == 1 and "writable by" in r.err, r.err
    r = files(h, backend / "redis-tls", {"ca.crt": ("CA\n", "0644")})
    assert r.code == 1 and "writable by" in r.err, r.err
    assert listing(backend) == {}


def test_two_users_on_the_path_are_refused(h, trusted):
    outer = users_dir(trusted, "outer")
    inner = users_dir(outer, "inner", uid=pwd.getpwnam("daemon").pw_uid)
    r = merge(h, inner / ".env")
    assert r.code == 1 and "belongs to daemon inside a directory nobody controls" in r.err, r.err
    assert listing(inner) == {}


def test_directory_links_are_followed_only_through_directories_root_controls(h, trusted):
    real = users_dir(trusted, "releases", uid=0)
    (trusted / "current").symlink_to(real)  # a deploy layout: root's link in root's directory
    assert merge(h, trusted / "current" / ".env").code == 0
    assert listing(real) == {".env": (0, 0, 0o600)}
    # a link the user controls, pointing into a root directory: written as the user, who cannot
    backend = users_dir(trusted)
    (backend / "app").symlink_to(real)
    os.lchown(backend / "app", NOBODY, NOGROUP)
    (real / ".env").write_text(BACKEND)
    r = merge(h, backend / "app" / ".env")
    assert r.code == 1, r.err
    assert listing(real) == {".env": (0, 0, 0o600)} and (real / ".env").read_text() == BACKEND


def test_owned_files_in_a_users_directory_replace_links_and_never_touch_their_targets(h, trusted):
    """The chown-through-a-link attack: redis-tls/ca.crt replaced by a link to a root file with the same
    content (the server's CA), client.key by a link to a secret. Written as the user, each link is replaced
    by the file (the rename replaces the link); the targets keep their owner, mode and content. A .env that
    is a link is refused instead (a merge reads the file)."""
    server_ca = trusted / "server-ca.crt"
    server_ca.write_text("CA\n")
    server_ca.chmod(0o644)
    secret = secret_file(trusted)
    backend = users_dir(trusted)
    tls = users_dir(backend, "redis-tls", mode=0o750)
    (tls / "ca.crt").symlink_to(server_ca)
    (tls / "client.key").symlink_to(secret)
    before = fingerprint(server_ca), fingerprint(secret)
    wanted = {"ca.crt": ("CA\n", "0644"), "client.key": ("KEY\n", "0600")}
    r = files(h, tls, wanted)
    assert r.code == 0, r.err
    assert (fingerprint(server_ca), fingerprint(secret)) == before
    assert listing(tls) == {"ca.crt": (NOBODY, NOGROUP, 0o644), "client.key": (NOBODY, NOGROUP, 0o600)}
    assert (tls / "client.key").read_text() == "KEY\n"
    assert files(h, tls, wanted).out == ""


@pytest.mark.parametrize("swap", ["fifo", "link"])
def test_a_staged_file_swapped_before_roots_comparison_is_neither_followed_nor_waited_on(trusted, swap):
    """A whole file right in the user's directory (parents root's) is staged in root's own directory and
    renamed in. Root compares the current file first: a link or a FIFO the user swaps in just then is read
    without following it and without waiting (a FIFO would hang the run), then replaced by the file."""
    from .conftest import Host, _kill_servers, free_port, run_program

    h = Host(trusted / "h", free_port())
    secret = secret_file(trusted)
    os.utime(secret, (1_600_000_000, 1_700_000_000))  # atime before mtime: any read moves it (relatime)
    backend = users_dir(trusted)
    target = backend / "ca.crt"
    target.write_text("old\n")
    make = f"mkfifo {target}" if swap == "fifo" else f"ln -s {secret} {target}"
    # mktemp runs (as root, in the stage) between the checks and the comparison read
    env = spies(trusted / "spies", trusted / "calls.log", tools=("mktemp",),
                extra={"mktemp": f'case "$*" in *.ca.crt.hsi-*) rm -f {target}; {make};; esac'})
    try:
        r = run_program("apply", *h.common(), stdin=bundle(("file", "0644", "root", "root", "after", str(target),
                                                             "CA\n")),
                        env={"HSI_REDIS_SERVICE_CTL": "/bin/false", **env}, timeout=20)
    finally:
        _kill_servers(h.fake)
    assert r.code == 0, r.err
    assert not target.is_symlink() and target.read_text() == "CA\n" and listing(backend)["ca.crt"][0] == 0
    assert os.stat(secret).st_atime == 1_600_000_000, "root read the link's target"
    assert fingerprint(secret)[0] == hashlib.sha256(b"root-only admin secret\n").hexdigest()
