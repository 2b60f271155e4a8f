"""`state` and `verify` against a real redis-server: reaching it, identities, the backend's
least privilege, ACL LOG, TLS, file/dir/env reports."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from operations import acl
from operations.hoststate import salted_sha256

from .conftest import ADMIN_PW, BACKEND_PW, PLAT, SERVICE, free_port, give_client_pair, tls_context

SALT = "00ff1234abcd"


def test_plain_server_one_call_reports_everything(host):
    host.fill(7)
    host.fill(3, prefix="t", ttl=600)
    r = host.run("state", "--salt", SALT)
    assert r.code == 0 and r.err == "", r.err
    k = r.keys
    assert k["server.via"] == "plain" and k["server.port"] == str(host.port) and k["server.config"] == "current"
    assert k["server.noauth"].startswith("NOAUTH") and k["server.auth"] == "PONG"
    assert k["server.identity"] == "hsi-admin" and k["server.active"] == "active" and k["server.enabled"] == "enabled"
    assert (k["keys"], k["persistent"]) == ("10", "7")
    assert k["info.redis_version"].startswith("7.") and k["info.aof_enabled"] == "1"
    assert k["conf.appendonly"] == "yes" and k["conf.dir"] == str(host.data) and k["conf.port"] == str(host.port)
    assert k["backend.ping"] == "PONG"
    assert k["backend.flushall"].startswith("NOPERM") and k["backend.config_set"] == "QUEUED"
    assert k["acl.failures"] == "0" and k["restart_pending"] == "0" and k["data.aof"] != "-"
    assert host.dbsize() == 10  # the FLUSHALL probe flushed nothing


def test_flushall_allowed_is_queued_and_discarded(make_host):
    h = make_host()
    open_rule = acl.default_user_rule(("acl",), PLAT, BACKEND_PW)
    h.write_config(h.render().replace(h.render().split("\nuser default ")[1].split("\n")[0],
                                      open_rule.removeprefix("user default ")))
    h.start()
    h.fill(4)
    k = h.run("state").keys
    assert k["backend.flushall"] == "QUEUED" and k["backend.ping"] == "PONG"
    assert h.dbsize() == 4


def test_server_without_the_admin_identity_is_asked_as_default(make_host):
    h = make_host()
    h.write_config("\n".join(line for line in h.render().splitlines() if not line.startswith("user hsi-admin")))
    h.put_secret("cli.auth", BACKEND_PW)  # a pre-admin deploy kept the backend password there
    h.start()
    k = h.run("state").keys
    assert k["server.identity"] == "default" and k["server.auth"] == "PONG" and k["keys"] == "0"


def test_refused_credentials_become_keys_not_a_failure(host):
    host.put_secret("cli.auth", "wrong-password-000000")
    host.put_secret("backend.auth", "wrong-password-000000")
    r = host.run("state")
    assert r.code == 0
    k = r.keys
    assert k["server.identity"] == "refused" and "WRONGPASS" in k["server.auth"]
    assert "WRONGPASS" in k["backend.ping"] and "keys" not in k


def test_stopped_server_and_bad_options_never_fail(make_host):
    h = make_host()  # never started
    r = h.run("state")
    assert r.code == 0 and r.keys["server.via"] == "none" and r.keys["server.active"] == "inactive"
    bad = h.run("state", "--salt", "xyz!")
    assert bad.code == 0 and bad.keys["error"] == "--salt must be hex"
    assert h.run("state", "--bogus", "1").keys["error"] == "unknown option --bogus"


def test_current_port_while_the_config_names_a_new_one(host):
    """issue 9 item 9: with a new port in --config and a restart pending, the server is asked where it is."""
    host.fill(5)
    (host.state / "last-good").mkdir(mode=0o700)
    shutil.copy(host.config, host.state / "last-good" / "redis.conf")
    new_port = free_port()
    host.write_config(port=new_port)
    (host.state / "restart-pending").touch()
    k = host.run("state").keys
    assert k["server.port"] == str(host.port) and k["server.config"] == "last-good" and k["keys"] == "5"
    assert k["restart_pending"] == "1"
    (host.state / "restart-pending").unlink()  # not pending: --config first, then the last good config
    k = host.run("state").keys
    assert k["server.port"] == str(host.port) and k["server.config"] == "last-good" and k["keys"] == "5"


def test_hostile_acl_log_usernames_are_counted_as_data(host):
    names = ["ev\"il\ncount\n1000\nreason\nauth", "sp ace 'q'", "\"\\x41\"", "a,b,\"c\"", "plain"]
    for name in names:
        for _ in range(5):
            assert "WRONGPASS" in host.cli("ping", user=name, password="nope-nope")
    r = host.run("state")
    k = r.keys
    assert k["acl.failures"] == "25", r.out
    assert "acl.previous" not in k
    again = host.run("state").keys
    run_id, total, epoch = again["acl.previous"].split()
    assert run_id == k["info.run_id"] and total == "25" and epoch.isdigit()
    assert oct((host.state / "auth-failures").stat().st_mode & 0o777) == "0o600"
    assert host.run("verify").keys["acl.failures"] == "25"


def test_tls_only_with_mutual_tls(make_host, pki):
    h = make_host()
    tls_port = h.port
    h.tls = tls_context(pki, tls_port)
    h.write_config(port=0)
    give_client_pair(h, pki)
    done = h.ctl("start", SERVICE)
    assert done.returncode == 0, done.stderr
    h.wait_pong(tls=True)
    h.cli("set", "a", "1", tls=True)
    (h.state / "last-good").mkdir(mode=0o700)
    old_plain = free_port()
    (h.state / "last-good" / "redis.conf").write_text(h.render(port=old_plain, tls=None))
    k = h.run("state").keys
    assert k["server.via"] == "tls" and k["server.port"] == "0" and k["server.tls_port"] == str(tls_port)
    assert k["server.identity"] == "hsi-admin" and k["keys"] == "1" and k["tls.ping"] == "PONG"
    assert k["backend.ping"] == "PONG"
    assert not k["tls.nocert"].startswith(("PONG", "NOAUTH"))  # mTLS: no certificate, no conversation
    assert "refused" in k["plain.ping"]  # the old plain port is closed


def test_tls_without_client_certificates_required(make_host, pki):
    h = make_host()
    h.tls = tls_context(pki, free_port(), auth_clients="no")
    h.write_config()
    h.start()
    k = h.run("state").keys
    assert k["server.via"] == "plain" and k["tls.ping"] == "PONG"
    assert k["tls.nocert"].startswith("NOAUTH")  # no certificate needed: the server talks
    assert k["plain.ping"].startswith("NOAUTH")


def test_layouts_pick_the_active_unit(host):
    other = host.root / "nothing.conf"
    args = ["--state-dir", str(host.state)]
    r = host.run("state", *args, "--layout", f"valkey-server:{other}:valkey-cli:/nowhere",
                 "--layout", f"{SERVICE}:{host.config}:redis-cli:{host.data}", common=False)
    k = r.keys
    assert k["server.layout"] == "1" and k["server.identity"] == "hsi-admin", r.out
    host.stop()
    r = host.run("state", *args, "--layout", f"valkey-server:{other}:valkey-cli:/nowhere",
                 "--layout", f"{SERVICE}:{host.config}:redis-cli:{host.data}", common=False)
    assert r.keys["server.layout"] == "1" and r.keys["server.via"] == "none" and r.keys["data.rdb"] != "-"


def test_file_and_dir_reports(host, tmp_path):
    regular = tmp_path / "a file.txt"
    regular.write_bytes(b"secret\x00bytes")
    link = tmp_path / "link"
    link.symlink_to(regular)
    k = host.run("state", "--salt", SALT, "--file", str(regular), "--file", str(link),
                 "--file", str(tmp_path / "missing"), "--dir", str(tmp_path), "--dir", "/tmp/no/such").all
    files = k("file")
    assert files[0] == f"f 644 root root {salted_sha256(SALT, regular.read_bytes())} {regular}"
    assert files[1].startswith("l 777 root root - ") and files[2] == f"- - - - - {tmp_path / 'missing'}"
    dirs = k("dir")
    assert dirs[0].split()[:5] == ["d", oct(tmp_path.stat().st_mode & 0o777)[2:], "root", "root", "root"]
    assert dirs[1] == "- - - - unsafe /tmp/no/such"  # would be created inside /tmp (world-writable)


@pytest.fixture
def shared_dir():
    """A directory chain any user can traverse (/tmp/x 0755), removed afterwards."""
    path = Path(tempfile.mkdtemp(dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_dir_writer_is_the_owning_user_or_unsafe(host, shared_dir):
    owned = shared_dir / "app"
    owned.mkdir()
    shutil.chown(owned, "nobody", "nogroup")
    loose = shared_dir / "loose"
    loose.mkdir()
    loose.chmod(0o775)
    k = host.run("state", "--dir", str(owned), "--dir", str(owned / "sub"), "--dir", str(loose / "x")).all("dir")
    assert k[0].split()[4] == "nobody" and k[1].split()[4] == "nobody"
    assert k[2].split()[4] == "unsafe"


def test_env_report_hashes_owned_lines_and_flags_ambiguous_ones(host, tmp_path):
    env = tmp_path / ".env"
    lines = [
        "DATABASE_URL=postgres://x",
        "export REDIS_URL = redis://localhost:6379/0",
        'OTHER="multi',
        "REDIS_PASSWORD=inside-another-value",
        'end"',
        "REDIS_PASSWORD='p w'",
        '"REDIS_URL"=quoted-key',
        "REDIS_SSL='never closed",
        'REDIS_KEY="opens',
        'closes"',
    ]
    env.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    r = host.run("state", "--salt", SALT, "--env", str(env), "--env-keys", "REDIS_URL REDIS_PASSWORD REDIS_SSL REDIS_KEY",
                 "--env", str(tmp_path / "none.env"), "--env-keys", "REDIS_URL")
    assert r.all("env")[0].split() == ["f", "644", "root", "root", "1", "root", str(env)]
    assert r.all("env")[1].split()[0] == "-"
    assert r.all("envkey") == [
        f"0 REDIS_URL {salted_sha256(SALT, lines[1])}",
        f"0 REDIS_PASSWORD {salted_sha256(SALT, lines[5])}",
    ]
    # line 4 is inside OTHER's value for python-dotenv, an assignment for a line-based reader: refused
    assert r.all("envbad") == ["0 4 inside-multi-line-value", "0 7 quoted-key", "0 8 unterminated-quote",
                               "0 9 multi-line-value"]
    assert "inside-another-value" not in r.out and "p w" not in r.out


def test_verify_is_the_server_part_and_never_fails(host, tmp_path):
    r = host.run("verify", "--file", str(host.config), "--salt", SALT)
    assert r.code == 0 and "os_id" not in r.keys and r.keys["server.auth"] == "PONG"
    assert r.keys["file"].startswith("f 640 root root ")
    host.stop()
    assert host.run("verify").code == 0


def test_state_under_bash_and_as_an_installed_file(host, tmp_path):
    """The same text runs under bash, and as a file (hsi-redis VERB)."""
    from .conftest import FAKE_CTL, PROGRAM
    assert host.run("state", shell="bash").keys["server.auth"] == "PONG"
    installed = tmp_path / "hsi-redis"
    shutil.copy(PROGRAM, installed)
    installed.chmod(0o755)
    done = subprocess.run([str(installed), "state", *host.common()], capture_output=True, text=True, check=False,
                          env={**os.environ, "HSI_REDIS_SERVICE_CTL": str(FAKE_CTL), "HSI_FAKE_DIR": str(host.fake)})
    assert "server.identity=hsi-admin" in done.stdout


def test_passwords_never_printed(host):
    host.fill(2)
    r = host.run("state", "--env", str(host.state / "backend.auth"), "--env-keys", "X")
    for secret in (ADMIN_PW, BACKEND_PW):
        assert secret not in r.out and secret not in r.err
