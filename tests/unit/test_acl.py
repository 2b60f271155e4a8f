"""The ACL lines in redis.conf: what the backend and admin identities may do, and no clear text."""

from __future__ import annotations

import hashlib
import stat

from operations import acl, configure, platform, secrets, settings

from .redis_args import split_args

PASSWORD = "p w'\"#$x\\%@é${HOME}€ end "
DEBIAN_12 = platform.TABLE[("debian", "12")]["redis"]
UBUNTU_22 = platform.TABLE[("ubuntu", "22.04")]["redis"]
EL_8 = platform.TABLE[("el", "8")]["redis"]


def _conf(**data):
    conf, found = settings.parse("nvr-1", {"redis_password": PASSWORD, **data})
    assert not found
    return conf


def test_backend_identity_is_denied_the_dangerous_commands_only():
    rule = acl.default_user_rule(_conf(), DEBIAN_12).split()
    assert rule[:3] == ["user", "default", "on"]
    assert rule[3] == "#" + hashlib.sha256(PASSWORD.encode()).hexdigest()
    assert {"~*", "&*", "+@all"} <= set(rule)
    denied = {word[1:] for word in rule if word.startswith("-")}
    assert denied == {"flushall", "flushdb", "debug", "shutdown", "module", "replicaof", "slaveof",
                      "migrate", "acl", "config|rewrite"}
    # The backend tunes memory at run time: CONFIG GET/SET stay.
    assert "config" not in denied and "config|set" not in denied


def test_denied_list_is_configurable():
    rule = acl.default_user_rule(_conf(redis_acl_denied_commands=["flushall", "keys"]), DEBIAN_12)
    assert rule.endswith("+@all -flushall -keys")


def test_admin_identity_has_everything_and_its_own_generated_password():
    admin = acl.admin_password("nvr-1")
    assert admin == acl.admin_password("nvr-1"), "generated once, then reused"
    assert admin != acl.admin_password("nvr-2")
    rule = acl.admin_user_rule(admin, DEBIAN_12)
    assert rule == f"user {acl.ADMIN_USER} on #{hashlib.sha256(admin.reveal().encode()).hexdigest()} ~* &* +@all"
    path = secrets.secret_path("nvr-1", acl.ADMIN_SECRET)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


def test_rendered_config_parses_and_holds_no_clear_text_password():
    conf = _conf()
    text = configure.render_config(conf, DEBIAN_12)
    admin = acl.admin_password("nvr-1").reveal()
    assert PASSWORD not in text and admin not in text
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    parsed = {tuple(split_args(line.encode())[:2]) for line in lines}
    assert (b"requirepass", PASSWORD.encode()) in parsed
    users = [split_args(line.encode()) for line in lines if line.startswith("user ")]
    assert [u[1] for u in users] == [b"default", acl.ADMIN_USER.encode()]
    assert "disable-thp yes" in text.splitlines()
    assert "disable-thp" not in configure.render_config(conf, UBUNTU_22)


def test_secret_store_is_private_even_if_loosened(tmp_path, monkeypatch):
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path / "store"))
    first = secrets.generated_password("@docker/host-1")
    path = secrets.secret_path("@docker/host-1")
    path.chmod(0o644)
    path.parent.chmod(0o755)
    assert secrets.generated_password("@docker/host-1") == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert first.reveal() not in repr(first) and first.reveal() not in str(first)


def test_servers_before_7_deny_whole_commands_and_keep_config_get_set():
    # Redis 6.0 (Ubuntu 22.04): no `-cmd|sub`, no channel rules.
    rule = acl.default_user_rule(_conf(), UBUNTU_22).split()
    assert "&*" not in rule and "-config|rewrite" not in rule
    assert rule[rule.index("-config"):rule.index("-config") + 5] == [
        "-config", "+config|get", "+config|set", "+config|resetstat", "+config|help"]
    assert "&*" not in acl.admin_user_rule(acl.admin_password("nvr-1"), UBUNTU_22)
    # Redis 6.2 (EL8): channel rules yes, subcommand denial no.
    rule = acl.default_user_rule(_conf(redis_acl_denied_commands=["config|rewrite", "config|resetstat",
                                                                  "script|flush"]), EL_8).split()
    assert "&*" in rule
    assert rule[rule.index("+@all") + 1:] == ["-config", "+config|get", "+config|set", "+config|help",
                                              "-script", "+script|load", "+script|exists", "+script|help"]
    # A whole command denied stays denied whole.
    rule = acl.default_user_rule(_conf(redis_acl_denied_commands=["config", "config|rewrite"]), UBUNTU_22)
    assert rule.endswith("+@all -config")
