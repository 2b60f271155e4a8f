"""How verification names a failure, from what the host program reported (`hoststate.Server`/`HostState`)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from operations import rows, validation, verify
from operations.credentials import Secret
from operations.hoststate import EnvInfo, FileInfo, HostState, Server, salted_sha256
from operations.target import ServerTls, resolve

PLAT = rows.select("debian", "12", "", "auto")
CONF = validation.parse("h", {"redis_password": "x" * 20})[0]
ADMIN = Secret("admin-password-0123456789")  # not generated: this runs at import
TARGET = resolve(CONF, PLAT, ADMIN)
NOPERM = "NOPERM this user has no permissions to run the '{}' command"
HEALTHY = Server(
    layout=0, active="active", enabled="enabled", cli=True, via="plain", addr="127.0.0.1", port=6379,
    config="current", noauth="NOAUTH Authentication required.", auth="PONG", identity="hsi-admin",
    info={"redis_version": "7.0.15", "aof_enabled": "1", "loading": "0", "uptime_in_seconds": "9",
          "run_id": "a" * 40},
    backend_ping="PONG", backend_flushall=NOPERM.format("flushall"), backend_config_set=NOPERM.format("config|set"),
    acl_failures=0,
)
SALT = "00ff"


def _info(**changes) -> dict:
    return {**HEALTHY.info, **changes}


@pytest.mark.parametrize(
    "changes, kind",
    [
        ({"cli": False}, "not installed"),
        ({"active": "failed", "auth": "Could not connect to Redis at 127.0.0.1:6379: Connection refused",
          "noauth": "Could not connect to Redis at 127.0.0.1:6379: Connection refused"}, "not running or refused"),
        ({"active": "active", "auth": "", "noauth": ""}, "not running or refused"),  # nothing answered
        ({"noauth": "PONG"}, "no password required"),
        ({"auth": "AUTH failed: WRONGPASS invalid username-password pair or user is disabled. "
          "NOAUTH Authentication required.", "identity": "refused"}, "WRONGPASS"),
        ({"auth": "NOAUTH Authentication required.", "identity": "none"}, "NOAUTH"),  # no cli.auth on the host
        ({"auth": "ERR unexpected", "identity": "hsi-admin"}, "unexpected reply"),
        ({"info": _info(loading="1")}, "loading"),
        ({"info": _info(aof_enabled="0")}, "AOF off"),
    ],
)
def test_classification(changes, kind):
    found = verify.server_problem(TARGET, replace(HEALTHY, **changes))
    assert found is not None and found.kind == kind
    assert found.fix, "every failure comes with a fix"


def test_healthy_is_none():
    assert verify.server_problem(TARGET, HEALTHY) is None
    assert verify.identity_problem(TARGET, HEALTHY) is None


def _tls_target(only: bool, auth_clients: str):
    tls = ServerTls(port=6380, only=only, auth_clients=auth_clients, dir="/etc/redis/tls", ca="/etc/redis/tls/ca.crt",
                    cert="/etc/redis/tls/server.crt", key="/etc/redis/tls/server.key",
                    cli_cert="/etc/hsi-redis/tls/client.crt", cli_key="/etc/hsi-redis/tls/client.key",
                    mtls=auth_clients == "yes")
    return replace(TARGET, tls=tls, plain_port=0 if only else 6379)


REFUSED = "Could not connect to Redis at 127.0.0.1:6379: Connection refused"
HANDSHAKE = "Could not negotiate a TLS connection: certificate required"


@pytest.mark.parametrize("only, auth, changes, kind", [
    (True, "yes", {}, None),
    (True, "yes", {"tls_port": 0, "tls_ping": ""}, "TLS"),                      # nothing on the TLS port
    (True, "yes", {"tls_ping": REFUSED}, "TLS"),
    (True, "yes", {"plain_ping": "NOAUTH Authentication required."}, "plain port open"),
    (True, "yes", {"tls_nocert": "NOAUTH Authentication required."}, "mTLS not enforced"),
    (False, "no", {"plain_ping": "NOAUTH Authentication required.", "tls_nocert": "NOAUTH ..."}, None),
    (False, "optional", {"tls_nocert": "NOAUTH Authentication required."}, None),
])
def test_tls_classification(only, auth, changes, kind):
    seen = replace(HEALTHY, via="tls" if only else "plain", port=0 if only else 6379, tls_port=6380,
                   tls_ping="PONG", tls_nocert=HANDSHAKE, plain_ping=REFUSED if only else "PONG")
    found = verify.server_problem(_tls_target(only, auth), replace(seen, **changes))
    assert (found and found.kind) == kind, found


@pytest.mark.parametrize("changes, kind", [
    ({"backend_ping": "AUTH failed: WRONGPASS invalid username-password pair"}, "WRONGPASS (backend identity)"),
    ({"backend_ping": ""}, "WRONGPASS (backend identity)"),
    ({"identity": "default"}, "admin identity (hsi-admin) refused"),
    ({"backend_flushall": "QUEUED"}, "least privilege off"),
    ({"backend_config_set": "QUEUED"}, "least privilege off"),
    # a reply that is not a denial proves nothing
    ({"backend_flushall": "ERR unknown command 'FLUSHALL'"}, "least privilege unverified"),
    ({"backend_flushall": "ERR syntax error"}, "least privilege unverified"),
    ({"backend_flushall": ""}, "least privilege unverified"),
    ({"backend_flushall": REFUSED}, "least privilege unverified"),
    ({"backend_config_set": "NOAUTH Authentication required."}, "least privilege unverified"),
])
def test_identity_classification(changes, kind):
    found = verify.identity_problem(TARGET, replace(HEALTHY, **changes))
    assert found is not None and found.kind == kind and found.fix


@pytest.mark.parametrize("flushall, config_set", [
    # Redis 6.0 / 6.2: the parent command's name, "or its subcommand".
    ("NOPERM this user has no permissions to run the 'flushall' command or its subcommand",
     "NOPERM this user has no permissions to run the 'config' command or its subcommand"),
    # Redis 7.0.
    ("NOPERM this user has no permissions to run the 'flushall' command",
     "NOPERM this user has no permissions to run the 'config|set' command"),
    # Redis 7.2+, 8.x and Valkey.
    ("NOPERM User default has no permissions to run the 'flushall' command",
     "NOPERM User default has no permissions to run the 'config|set' command"),
])
def test_every_version_s_denial_text_is_recognised(flushall, config_set):
    seen = replace(HEALTHY, backend_flushall=flushall, backend_config_set=config_set)
    assert verify.identity_problem(TARGET, seen) is None
    found, _ = verify.findings(TARGET, HostState(server=seen), "00")
    assert found["checks"]["flushall_denied"] and found["checks"]["config_set_denied"]
    found, problem = verify.findings(TARGET, replace(_env_state(), server=seen), SALT)
    assert problem is None and found["checks"]["flushall_denied"] and found["checks"]["config_set_denied"]


def test_only_what_is_denied_is_checked():
    allowed = resolve(validation.parse("h", {"redis_password": "x" * 20, "redis_backend_config_set": True})[0],
                      PLAT, ADMIN)
    assert verify.identity_problem(allowed, replace(HEALTHY, backend_config_set="QUEUED")) is None
    no_flushall = resolve(validation.parse("h", {"redis_password": "x" * 20,
                                                 "redis_acl_denied_commands": ["keys"]})[0],
                          PLAT, ADMIN)
    assert verify.identity_problem(no_flushall, replace(HEALTHY, backend_flushall="QUEUED")) is None
    # CONFIG denied whole is checked through CONFIG SET too
    whole = resolve(validation.parse("h", {"redis_password": "x" * 20, "redis_acl_denied_commands": ["config"]})[0],
                    PLAT, ADMIN)
    assert verify.identity_problem(whole, replace(HEALTHY, backend_config_set="QUEUED")).kind == "least privilege off"


# -- the backend .env, read as salted hashes of the lines that assign the keys the deploy owns ------

def _env_state(lines: dict[str, str] | None = None, mode: int = 0o600, kind: str = "f", writer: str = "root",
               bad: tuple = ()) -> HostState:
    backend = TARGET.backend
    wanted = dict(backend.lines) if lines is None else lines
    keys = {key: (salted_sha256(SALT, line),) for key, line in wanted.items()}
    info = EnvInfo(FileInfo(kind, mode, "root", "root", writer=writer), crlf=False, keys=keys, bad=bad)
    return HostState(envs={backend.env_path: info}, server=HEALTHY)


def test_env_as_the_server_expects_is_healthy():
    assert verify.env_problem(TARGET, _env_state(), SALT) is None
    found, problem = verify.findings(TARGET, _env_state(), SALT)
    assert problem is None and found["platform"] == "debian-12" and found["aof"] is True
    assert found["checks"]["auth_ping"] == "PONG" and found["checks"]["flushall_denied"] is True


@pytest.mark.parametrize("state, kind", [
    (HostState(envs={}), "backend .env missing"),
    (HostState(envs={"/opt/hsi/backend/.env": EnvInfo(FileInfo("-"), crlf=False)}), "backend .env missing"),
    (_env_state({**dict(TARGET.backend.lines), "REDIS_PASSWORD": "REDIS_PASSWORD='old'"}), "WRONGPASS (backend)"),
    (_env_state({"REDIS_URL": dict(TARGET.backend.lines)["REDIS_URL"]}), "WRONGPASS (backend)"),
    (_env_state({**dict(TARGET.backend.lines), "REDIS_URL": "REDIS_URL=redis://other:6379/0"}), "backend URL"),
    (_env_state(mode=0o644), "backend .env readable"),
    (_env_state(kind="l"), "backend .env unsafe"),
    (_env_state(writer="unsafe"), "backend .env unsafe"),
    (_env_state(bad=((3, "multi-line-value"),)), "backend .env unsafe"),
])
def test_env_classification(state, kind):
    found = verify.env_problem(TARGET, state, SALT)
    assert found is not None and found.kind == kind and found.fix


def test_no_backend_env_setting_means_no_env_check():
    conf = validation.parse("h", {"redis_password": "x" * 20, "redis_backend_env_path": ""})[0]
    target = resolve(conf, PLAT, ADMIN)
    assert target.backend is None and verify.env_problem(target, HostState(), SALT) is None


def test_the_first_problem_wins_and_is_what_the_report_shows():
    seen = replace(HEALTHY, info=_info(aof_enabled="0"), backend_flushall="QUEUED")
    found, problem = verify.findings(TARGET, replace(_env_state(mode=0o644), server=seen), SALT)
    assert problem.kind == "AOF off" and found["aof"] is False
