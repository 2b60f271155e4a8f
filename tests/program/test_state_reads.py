"""`state` as the deploy reads it: what `hoststate.parse` makes of the program's real output, salted
hashes that match the control machine's and nothing else, and a TLS-only server found on the TLS port
it listens on while its config already names another one."""

from __future__ import annotations

import hashlib
import shutil

from operations.hoststate import HostState, new_salt, parse, salted_sha256

from .conftest import ADMIN_PW, BACKEND_PW, SERVICE, free_port, give_client_pair, tls_context


def test_parse_turns_the_real_output_into_typed_values(host, tmp_path):
    host.fill(4)
    env = tmp_path / ".env"
    url_line, password_line = "REDIS_URL=redis://localhost:6379/0", f"REDIS_PASSWORD='{BACKEND_PW}'"
    env.write_text(f"A=1\r\n{password_line}\r\n{url_line}\r\n")
    salt = new_salt()
    out = host.run("state", "--salt", salt, "--file", str(host.state / "cli.auth"), "--file",
                   str(tmp_path / "missing"), "--env", str(env), "--env-keys", "REDIS_URL REDIS_PASSWORD",
                   "--units", SERVICE, "--kernel").out
    state = parse(out.splitlines())
    assert isinstance(state, HostState) and state.errors == ()
    assert state.os_id and isinstance(state.systemd, bool) and state.restart_pending is False
    seen = state.server
    assert seen.running and seen.up and seen.identity == "hsi-admin" and seen.via == "plain"
    assert seen.port == host.port and seen.keys == 4 and seen.aof is True and seen.version.startswith("7.")
    assert isinstance(seen.acl_failures, int) and seen.backend_ping == "PONG"
    cli_auth = state.file(str(host.state / "cli.auth"))
    assert cli_auth.same(salt, ADMIN_PW, 0o600, "root", "root")
    assert not state.file(str(tmp_path / "missing")).exists
    info = state.envs[str(env)]
    assert info.crlf is True and info.file.mode == 0o644 and info.bad == ()
    assert info.keys == {"REDIS_URL": (salted_sha256(salt, url_line),),
                         "REDIS_PASSWORD": (salted_sha256(salt, password_line),)}
    assert state.unit(SERVICE).running
    assert "vm.overcommit_memory" in state.kernel


def test_hashes_are_salted_afresh_and_never_the_acl_form(host):
    """What -vvv prints of a read cannot be matched against the `#<sha256>` of the user lines."""
    path = str(host.state / "cli.auth")
    first, second = new_salt(), new_salt()
    one = parse(host.run("state", "--salt", first, "--file", path).out.splitlines()).file(path)
    two = parse(host.run("state", "--salt", second, "--file", path).out.splitlines()).file(path)
    assert one.sha == salted_sha256(first, ADMIN_PW) and two.sha == salted_sha256(second, ADMIN_PW)
    assert one.sha != two.sha and hashlib.sha256(ADMIN_PW.encode()).hexdigest() not in (one.sha, two.sha)


def test_tls_only_while_the_config_names_a_new_tls_port(make_host, pki):
    """A TLS-only server whose config already names another tls-port (restart pending) is found on the
    port it listens on now, through the last good config, with the deploy's client pair."""
    h = make_host()
    old_tls = h.port
    h.tls = tls_context(pki, old_tls)
    h.write_config(port=0)
    give_client_pair(h, pki)
    done = h.ctl("start", SERVICE)
    assert done.returncode == 0, done.stderr
    h.wait_pong(tls=True)
    h.cli("set", "a", "1", tls=True)
    (h.state / "last-good").mkdir(mode=0o700)
    shutil.copy(h.config, h.state / "last-good" / "redis.conf")
    h.tls = tls_context(pki, free_port())
    h.write_config(port=0)
    (h.state / "restart-pending").touch()
    k = h.run("state").keys
    assert k["server.via"] == "tls" and k["server.tls_port"] == str(old_tls) and k["server.config"] == "last-good"
    assert k["server.identity"] == "hsi-admin" and k["keys"] == "1" and k["tls.ping"] == "PONG"
