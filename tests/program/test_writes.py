"""Writing files (issue 9 items 2 and 8): root writes only where root alone controls the chain; a
directory a user owns is written as that user; links are never followed; the .env merge."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from .conftest import bundle


@pytest.fixture
def h(make_host):
    return make_host()  # no server needed: nothing here restarts


@pytest.fixture
def shared():
    """A directory every user can traverse (/tmp/X, 0755, root), removed afterwards."""
    path = Path(tempfile.mkdtemp(dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def apply(h, *entries, **kw):
    return h.run("apply", stdin=bundle(*entries), **kw)


def test_root_writes_by_path_creating_missing_directories(h, tmp_path):
    target = tmp_path / "a" / "b c" / "file.conf"
    r = apply(h, ("file", "0640", "root", "daemon", "-", str(target), b"one\x00two\n"))
    assert r.code == 0 and r.out == f"changed={target}\n", r.err
    assert target.read_bytes() == b"one\x00two\n"
    st = target.stat()
    assert oct(st.st_mode & 0o777) == "0o640" and st.st_uid == 0 and st.st_gid == shutil._get_gid("daemon")
    assert oct(target.parent.stat().st_mode & 0o777) == "0o755"
    assert [p.name for p in target.parent.iterdir()] == ["file.conf"]  # no temp file left behind


def test_a_symlinked_target_is_never_followed(h, tmp_path):
    """A whole file that is a link is replaced by the file itself (the rename replaces the link; its
    target is never read or written); a merge, which would read through it, is refused."""
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    link = tmp_path / "file.conf"
    link.symlink_to(victim)
    r = apply(h, ("file", "0600", "root", "root", "-", str(link), "evil\n"))
    assert r.code == 0 and r.out == f"changed={link}\n", r.err
    assert victim.read_text() == "keep me\n" and not link.is_symlink() and link.read_text() == "evil\n"
    env = tmp_path / ".env"
    env.symlink_to(victim)
    r = apply(h, ("merge", "-", "-", "-", str(env), "REDIS_URL=x\n"))
    assert r.code == 1 and "symbolic link" in r.err and victim.read_text() == "keep me\n" and env.is_symlink()


def test_a_group_writable_directory_takes_whole_files_by_rename_and_refuses_merges(h, shared):
    """Like Debian's /etc/redis (redis:redis 2770): a whole file is staged in root's own directory and
    renamed in, owner and mode set before it appears; a merge (which reads the file) is refused."""
    loose = shared / "loose"
    loose.mkdir()
    loose.chmod(0o2775)
    r = apply(h, ("file", "0640", "root", "root", "-", str(loose / "f"), "x\n"))
    assert r.code == 0 and r.out == f"changed={loose / 'f'}\n", r.err
    assert (loose / "f").read_text() == "x\n" and oct((loose / "f").stat().st_mode & 0o777) == "0o640"
    assert not any(p.name.startswith(".f.hsi-") for p in loose.iterdir()), "nothing staged beside it"
    r = apply(h, ("merge", "-", "-", "-", str(loose / ".env"), "REDIS_URL=x\n"))
    assert r.code == 1 and "writable by its group or others" in r.err and not (loose / ".env").exists()
    deeper = loose / "sub"
    deeper.mkdir()
    r = apply(h, ("file", "0600", "root", "root", "-", str(deeper / "f"), "x\n"))
    assert r.code == 1 and "writable by its group or others" in r.err and not (deeper / "f").exists()
    r = apply(h, ("file", "0600", "root", "root", "-", "/tmp/hsi-redis-test-never", "x\n"))
    assert r.code == 1 and not Path("/tmp/hsi-redis-test-never").exists()  # straight into sticky /tmp: no


def test_a_directory_a_user_owns_is_written_as_that_user(h, shared):
    app = shared / "app"
    app.mkdir()
    shutil.chown(app, "nobody", "nogroup")
    env = app / "sub" / ".env"
    r = apply(h, ("merge", "-", "-", "-", str(env), "REDIS_URL=redis://u\n"))
    assert r.code == 0 and r.out == f"changed={env}\n", r.err
    for path in (env, env.parent):
        assert (path.stat().st_uid, path.stat().st_gid) == (shutil._get_uid("nobody"), shutil._get_gid("nogroup"))
    assert oct(env.stat().st_mode & 0o777) == "0o600" and env.read_text() == "REDIS_URL=redis://u\n"
    # a whole file right in the user's directory (its parents root's) keeps the owner it asks for: staged
    # in root's own directory and renamed in; one level deeper the user controls the path, so no
    r = apply(h, ("file", "0600", "root", "root", "-", str(app / "x"), "x\n"))
    assert r.code == 0 and (app / "x").stat().st_uid == 0, r.err
    r = apply(h, ("file", "0600", "root", "root", "-", str(app / "sub" / "x"), "x\n"))
    assert r.code == 1 and "belongs to nobody" in r.err and not (app / "sub" / "x").exists()
    r = apply(h, ("file", "0640", "nobody", "nogroup", "-", str(app / "y"), "y\n"))
    assert r.code == 0 and (app / "y").stat().st_uid == shutil._get_uid("nobody")


def test_a_user_cannot_redirect_a_root_write_through_a_link_it_controls(h, shared):
    """The user swaps its directory for a link to a root-only place: the write runs as the user, so
    it fails there instead of writing into /etc-like places as root."""
    app = shared / "app"
    app.mkdir()
    shutil.chown(app, "nobody", "nogroup")
    secret_dir = shared / "rootonly"
    secret_dir.mkdir(mode=0o700)
    (app / "cfg").symlink_to(secret_dir)
    os.lchown(app / "cfg", shutil._get_uid("nobody"), shutil._get_gid("nogroup"))
    r = apply(h, ("file", "0600", "-", "-", "-", str(app / "cfg" / "planted"), "x\n"))
    assert r.code == 1 and not (secret_dir / "planted").exists()


MERGE_CASES = [
    # (current file, wanted lines, result)
    (b"A=1\nREDIS_URL=old\nB=2\n", "REDIS_URL=new\n", b"A=1\nREDIS_URL=new\nB=2\n"),
    (b"A=1\r\nexport REDIS_URL = old\r\nREDIS_URL=dup\r\nB=2\r\n", "REDIS_URL=new\nREDIS_PASSWORD='p'\n",
     b"A=1\r\nREDIS_URL=new\r\nB=2\r\nREDIS_PASSWORD='p'\r\n"),
    (b"# comment\n\nX=\"multi\nREDIS_URLS inside\n\"\n", "REDIS_URL=new\n",
     b"# comment\n\nX=\"multi\nREDIS_URLS inside\n\"\nREDIS_URL=new\n"),
    (b"REDIS_PASSWORD='it''s'\n  weird line  \n", "REDIS_PASSWORD=x\n", b"REDIS_PASSWORD=x\n  weird line  \n"),
]


@pytest.mark.parametrize("current, wanted, result", MERGE_CASES)
def test_the_env_merge(h, tmp_path, current, wanted, result):
    env = tmp_path / ".env"
    env.write_bytes(current)
    env.chmod(0o755)
    os.chown(env, 0, shutil._get_gid("daemon"))
    r = apply(h, ("merge", "-", "-", "-", str(env), wanted))
    assert r.code == 0 and r.out == f"changed={env}\n", r.err
    assert env.read_bytes() == result
    st = env.stat()
    assert oct(st.st_mode & 0o777) == "0o640" and st.st_gid == shutil._get_gid("daemon")  # kept, tightened
    assert apply(h, ("merge", "-", "-", "-", str(env), wanted)).out == ""


@pytest.mark.parametrize("line, reason, lineno", [
    ("\"REDIS_URL\"=x", "quoted-key", 2),
    ("'REDIS_URL'=x", "quoted-key", 2),
    ("REDIS_URL=\"open", "unterminated-quote", 2),
    ("REDIS_URL='open", "multi-line-value", 2),
    ("X='a\nREDIS_URL=inside", "inside-multi-line-value", 3),
])
def test_an_ambiguous_env_changes_nothing(h, tmp_path, line, reason, lineno):
    env = tmp_path / ".env"
    text = f"A=1\n{line}\nB='x'\n" if reason != "multi-line-value" else f"A=1\n{line}\nB=close'\n"
    env.write_text(text)
    r = apply(h, ("merge", "-", "-", "-", str(env), "REDIS_URL=new\n"))
    assert r.code == 1 and f"line {lineno}: the deploy cannot merge this line ({reason})" in r.err, r.err
    assert env.read_text() == text
