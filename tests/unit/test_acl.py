"""The ACL lines in redis.conf: what the backend and admin identities may do, and no clear text."""

from __future__ import annotations

import hashlib
import stat

import pytest
import redis

from operations import acl, credentials, prologue, render, rows, validation
from operations.encoding import redis_conf_quote
from operations.target import resolve

from .local_redis import client, local_server, needs_server
from .redis_args import split_args

PASSWORD = "p w'\"#$x\\%@é${HOME}€ end "
DEBIAN_12 = rows.TABLE[("debian", "12")]["redis"]
UBUNTU_22 = rows.TABLE[("ubuntu", "22.04")]["redis"]
EL_8 = rows.TABLE[("el", "8")]["redis"]


def _conf(**data):
    conf, found = validation.parse("nvr-1", {"redis_password": PASSWORD, **data})
    assert not found
    return conf


def _backend_rule(conf, row) -> str:
    return acl.default_user_rule(acl.denied_commands(conf, row), row, conf.password.reveal())


def _admin(host_name: str = "nvr-1") -> str:
    return prologue.admin_password(host_name).reveal()


def _redis_conf(conf, row) -> str:
    return render.redis_conf(resolve(conf, row, prologue.admin_password(conf.host_name)))


def test_backend_identity_is_denied_the_dangerous_commands_only():
    rule = _backend_rule(_conf(), DEBIAN_12).split()
    assert rule[:3] == ["user", "default", "on"]
    assert rule[3] == "#" + hashlib.sha256(PASSWORD.encode()).hexdigest()
    assert {"~*", "&*", "+@all"} <= set(rule)
    denied = {word[1:] for word in rule if word.startswith("-")}
    assert denied == {"flushall", "flushdb", "debug", "shutdown", "module", "replicaof", "slaveof",
                      "migrate", "acl", "config|rewrite", "config|set"}
    # CONFIG SET could switch authentication off (requirepass ""); CONFIG GET stays.
    assert "config" not in denied and "config|get" not in denied


def test_denied_list_is_configurable():
    rule = _backend_rule(_conf(redis_acl_denied_commands=["flushall", "keys"]), DEBIAN_12)
    assert rule.endswith("+@all -flushall -keys -config|set")


def test_config_set_is_allowed_back_only_by_its_setting_on_7_0_and_later():
    rule = _backend_rule(_conf(redis_backend_config_set=True), DEBIAN_12).split()
    assert "-config|set" not in rule and "-config" not in rule and "-config|rewrite" in rule
    assert acl.config_set_allowed(_conf(redis_backend_config_set=True), DEBIAN_12)
    assert not acl.config_set_allowed(_conf(), DEBIAN_12)
    # Before 7.0 CONFIG SET reaches dir/dbfilename (no protected configs): denied whatever the setting.
    for plat in (UBUNTU_22, EL_8):
        assert not acl.config_set_allowed(_conf(redis_backend_config_set=True), plat)
        assert _backend_rule(_conf(redis_backend_config_set=True), plat) == \
            _backend_rule(_conf(), plat)
        assert "CONFIG SET" in acl.config_set_warning(_conf(redis_backend_config_set=True), plat)
        assert acl.config_set_warning(_conf(), plat) is None
    assert acl.config_set_warning(_conf(redis_backend_config_set=True), DEBIAN_12) is None


def test_admin_identity_has_everything_and_its_own_generated_password():
    admin = prologue.admin_password("nvr-1")
    assert admin == prologue.admin_password("nvr-1"), "generated once, then reused"
    assert admin != prologue.admin_password("nvr-2")
    rule = acl.admin_user_rule(admin.reveal(), DEBIAN_12)
    assert rule == f"user {acl.ADMIN_USER} on #{hashlib.sha256(admin.reveal().encode()).hexdigest()} ~* &* +@all"
    path = credentials.secret_path("nvr-1", prologue.ADMIN_SECRET)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


def test_rendered_config_parses_and_holds_no_clear_text_password():
    conf = _conf()
    text = _redis_conf(conf, DEBIAN_12)
    admin = prologue.admin_password("nvr-1").reveal()
    assert PASSWORD not in text and admin not in text
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    parsed = {tuple(split_args(line.encode())[:2]) for line in lines}
    assert (b"requirepass", PASSWORD.encode()) in parsed
    users = [split_args(line.encode()) for line in lines if line.startswith("user ")]
    assert [u[1] for u in users] == [b"default", acl.ADMIN_USER.encode()]
    assert "disable-thp yes" in text.splitlines()
    assert "disable-thp" not in _redis_conf(conf, UBUNTU_22)


def test_secret_store_is_private_even_if_loosened(tmp_path, monkeypatch):
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path / "store"))
    first = credentials.generated_password("@docker/host-1")
    path = credentials.secret_path("@docker/host-1")
    path.chmod(0o644)
    path.parent.chmod(0o755)
    assert credentials.generated_password("@docker/host-1") == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert first.reveal() not in repr(first) and first.reveal() not in str(first)


def test_servers_before_7_deny_whole_commands_and_keep_config_get_only():
    # Redis 6.0 (Ubuntu 22.04): no `-cmd|sub`, no channel rules.
    rule = _backend_rule(_conf(), UBUNTU_22).split()
    assert "&*" not in rule and "-config|rewrite" not in rule and "+config|set" not in rule
    assert rule[rule.index("-config"):rule.index("-config") + 4] == [
        "-config", "+config|get", "+config|resetstat", "+config|help"]
    assert "&*" not in acl.admin_user_rule(_admin(), UBUNTU_22)
    # Redis 6.2 (EL8): channel rules yes, subcommand denial no.
    rule = _backend_rule(_conf(redis_acl_denied_commands=["config|rewrite", "config|resetstat",
                                                          "script|flush"]), EL_8).split()
    assert "&*" in rule
    assert rule[rule.index("+@all") + 1:] == ["-config", "+config|get", "+config|help",
                                              "-script", "+script|load", "+script|exists", "+script|help"]
    # A whole command denied stays denied whole.
    rule = _backend_rule(_conf(redis_acl_denied_commands=["config", "config|rewrite"]), UBUNTU_22)
    assert rule.endswith("+@all -config")


@needs_server
@pytest.mark.parametrize("plat", [DEBIAN_12, UBUNTU_22, EL_8], ids=lambda p: p.name)
def test_rendered_rules_load_into_a_real_server_and_deny_config_set(tmp_path, plat):
    """The rules of each row, loaded into the local 7.0 server: they parse, and the backend
    gets NOPERM for CONFIG SET (`requirepass ""` would switch auth off) but keeps CONFIG GET."""
    lines = [f"requirepass {redis_conf_quote(PASSWORD)}",
             *acl.user_rules(_conf(), plat, PASSWORD, _admin())]
    with local_server(tmp_path, lines) as port:
        backend = client(port, password=PASSWORD)
        for args in (("CONFIG", "SET", "requirepass", ""), ("CONFIG", "SET", "dir", "/tmp"),
                     ("CONFIG", "SET", "dbfilename", "x.rdb"), ("CONFIG", "SET", "maxmemory", "1mb"),
                     ("FLUSHALL",), ("CONFIG", "REWRITE"), ("ACL", "WHOAMI")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                backend.execute_command(*args)
        assert backend.config_get("maxmemory") == {"maxmemory": "0"}
        assert backend.execute_command("CONFIG", "RESETSTAT") in (b"OK", True)
        with pytest.raises(redis.AuthenticationError):
            client(port).ping()
        backend.close()


@needs_server
def test_with_the_setting_the_backend_may_config_set_on_7_0(tmp_path):
    conf = _conf(redis_backend_config_set=True)
    lines = [f"requirepass {redis_conf_quote(PASSWORD)}",
             *acl.user_rules(conf, DEBIAN_12, PASSWORD, _admin())]
    with local_server(tmp_path, lines) as port:
        backend = client(port, password=PASSWORD)
        assert backend.config_set("maxmemory", "150mb") is True
        # What the README warns about: protected configs stay blocked (Redis 7 default) ...
        with pytest.raises(redis.ResponseError, match="protected config"):
            backend.config_set("dir", "/tmp")
        # ... but authentication can be switched off.
        assert backend.config_set("requirepass", "") is True
        assert client(port).ping() is True
        backend.close()
