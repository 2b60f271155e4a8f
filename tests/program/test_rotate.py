"""Zero-downtime rotation of the backend identity's password."""

from __future__ import annotations

import base64
import hashlib

from operations.hoststate import salted_sha256

from .conftest import BACKEND_PW, SERVICE, bundle, give_client_pair, tls_context

NEW_PW = "new-Backend-pw-9876543210zz"


def stdin(host, *entries) -> bytes:
    return f"password {base64.b64encode(NEW_PW.encode()).decode()}\n".encode() + (bundle(*entries) if entries else b"")


def files(host) -> tuple:
    """What the deploy sends with a rotation: backend.auth and the config, both with the new password."""
    return (("file", "0600", "root", "root", "-", str(host.state / "backend.auth"), NEW_PW),
            ("file", "0640", "root", "root", "restart", str(host.config), host.render(backend_pw=NEW_PW)))


def pong(host, password: str) -> bool:
    return host.cli("ping", password=password, user="") == "PONG"


def test_add_then_drop(host):
    host.fill(3)
    r = host.run("rotate-add", stdin=stdin(host))
    assert r.code == 0 and r.out == "added=1\n", r.err
    assert pong(host, BACKEND_PW) and pong(host, NEW_PW)  # both work while clients move over
    assert host.run("rotate-add", stdin=stdin(host)).out == ""  # already there
    r = host.run("rotate-drop", stdin=stdin(host))
    assert r.code == 0 and r.out == "dropped=1\n", r.err
    assert pong(host, NEW_PW) and not pong(host, BACKEND_PW)
    assert host.dbsize() == 3


def test_full_rotation_writes_files_without_a_restart_and_restarts_consumers(host):
    (host.fake / "backend.unit").touch()
    before = [c for c in host.calls() if c.startswith("restart ")]
    r = host.run("rotate", "--drop", "1", "--restart-units", "backend", stdin=stdin(host, *files(host)))
    assert r.code == 0, r.err
    assert r.all("changed") == [str(host.state / "backend.auth"), str(host.config)]
    assert r.keys["added"] == "1" and r.keys["restarted_unit"] == "backend" and r.keys["dropped"] == "1"
    assert [c for c in host.calls() if c.startswith("restart ")] == before  # the server was not restarted
    assert "try-restart backend" in host.calls()
    assert pong(host, NEW_PW) and not pong(host, BACKEND_PW)
    assert (host.state / "last-good" / "redis.conf").read_text() == host.config.read_text()
    # the file on disk carries the new password: a later restart keeps it
    assert host.ctl("restart", SERVICE).returncode == 0
    host.wait_pong()
    assert pong(host, NEW_PW) and not pong(host, BACKEND_PW)
    again = host.run("rotate", "--drop", "1", "--restart-units", "backend", stdin=stdin(host, *files(host)))
    assert again.code == 0 and again.out == ""  # done: nothing changes, no consumer restarted


def test_an_interrupted_rotation_finishes_when_run_again(host):
    assert host.run("rotate-add", stdin=stdin(host)).code == 0  # the run died after step 1
    r = host.run("rotate", "--drop", "1", stdin=stdin(host, *files(host)))
    assert r.code == 0 and "added" not in r.keys and r.keys["dropped"] == "1", r.err
    assert pong(host, NEW_PW) and not pong(host, BACKEND_PW)


def test_drop_0_keeps_the_old_password(host):
    r = host.run("rotate", "--drop", "0", stdin=stdin(host, *files(host)))
    assert r.code == 0 and r.keys["kept_old"] == "1", r.err
    assert pong(host, NEW_PW) and pong(host, BACKEND_PW)


def test_a_consumer_that_cannot_restart_keeps_the_old_password(host):
    (host.fake / "backend.fail").touch()
    r = host.run("rotate", "--drop", "1", "--restart-units", "backend", stdin=stdin(host, *files(host)))
    assert r.code == 1 and "restarting backend failed" in r.err
    assert pong(host, NEW_PW) and pong(host, BACKEND_PW)


def test_rotation_refuses_when_neither_password_works(host):
    host.put_secret("backend.auth", "stale-password-0000000")
    r = host.run("rotate-add", stdin=stdin(host))
    assert r.code == 1 and "accepts neither" in r.err and not pong(host, NEW_PW)
    bad = host.run("rotate-add", stdin="password !!notbase64\n")
    assert bad.code == 1 and "base64" in bad.err


def test_keeping_the_old_password_leaves_a_notice_the_next_read_sees(host):
    """A consumer must be restarted by hand (--drop 0): the old password stays, and a root-only notice
    holds the new password's SHA-256; the state read reports its salted hash, so the next run knows the
    operator was told for THIS password. Dropping the old password removes it."""
    notice = host.state / "rotation-notice"
    r = host.run("rotate", "--drop", "0", stdin=stdin(host, *files(host)))
    assert r.code == 0 and r.keys["kept_old"] == "1", r.err
    digest = hashlib.sha256(NEW_PW.encode()).hexdigest()
    assert notice.read_text() == digest + "\n" and oct(notice.stat().st_mode & 0o777) == "0o600"
    assert notice.stat().st_uid == 0 and list(host.state.glob(".notice.*")) == []
    read = host.run("state", "--salt", "ab12", "--file", str(notice)).keys["file"]
    assert read == f"f 600 root root {salted_sha256('ab12', digest + chr(10))} {notice}"
    assert NEW_PW not in read and pong(host, BACKEND_PW)
    again = host.run("rotate", "--drop", "1", stdin=stdin(host, *files(host)))
    assert again.code == 0 and again.keys["dropped"] == "1" and not notice.exists(), again.err
    assert not pong(host, BACKEND_PW) and pong(host, NEW_PW)


def test_no_notice_when_there_is_no_old_password_to_keep(host):
    assert host.run("rotate", "--drop", "1", stdin=stdin(host, *files(host))).keys["dropped"] == "1"
    r = host.run("rotate", "--drop", "0", stdin=stdin(host, *files(host)))
    assert r.code == 0 and r.out == "" and not (host.state / "rotation-notice").exists()


def test_a_failed_notice_keeps_the_old_password_and_says_so(host):
    (host.state / "rotation-notice").mkdir()  # cannot be replaced by a file
    r = host.run("rotate", "--drop", "0", stdin=stdin(host, *files(host)))
    assert r.code == 1 and "rotation-notice" in r.err and "old password stays valid" in r.err
    assert list(host.state.glob(".notice.*")) == []
    assert pong(host, BACKEND_PW) and pong(host, NEW_PW)


def test_rotation_on_a_tls_only_server_with_client_certificates(make_host, pki):
    """issue 9 item 12: no plain port; the program reaches the TLS port with the deploy's client pair."""
    h = make_host()
    h.tls = tls_context(pki, h.port)
    h.write_config(port=0)
    give_client_pair(h, pki)
    assert h.ctl("start", SERVICE).returncode == 0
    h.wait_pong(tls=True)
    h.cli("set", "k", "v", tls=True)
    tls_files = (("file", "0600", "root", "root", "-", str(h.state / "backend.auth"), NEW_PW),
                 ("file", "0640", "root", "root", "restart", str(h.config), h.render(port=0, backend_pw=NEW_PW)))
    r = h.run("rotate", "--drop", "1", stdin=stdin(h, *tls_files))
    assert r.code == 0 and r.keys["added"] == "1" and r.keys["dropped"] == "1", r.err
    assert h.cli("ping", password=NEW_PW, user="", tls=True) == "PONG"
    assert "WRONGPASS" in h.cli("ping", password=BACKEND_PW, user="", tls=True)
    assert h.cli("get", "k", tls=True) == "v"
