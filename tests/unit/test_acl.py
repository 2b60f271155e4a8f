"""The ACL lines in redis.conf: what the backend and admin identities may do, and no clear text."""

from __future__ import annotations

import hashlib
import stat

from operations import acl, configure, platform, secrets, settings

from .redis_args import split_args

PASSWORD = "p w'\"#$x\\%@é${HOME}€ end "


def _conf(**data):
    conf, found = settings.parse("nvr-1", {"redis_password": PASSWORD, **data})
    assert not found
    return conf


def test_backend_identity_is_denied_the_dangerous_commands_only():
    rule = acl.default_user_rule(_conf()).split()
    assert rule[:3] == ["user", "default", "on"]
    assert rule[3] == "#" + hashlib.sha256(PASSWORD.encode()).hexdigest()
    assert {"~*", "&*", "+@all"} <= set(rule)
    denied = {word[1:] for word in rule if word.startswith("-")}
    assert denied == {"flushall", "flushdb", "debug", "shutdown", "module", "replicaof", "slaveof",
                      "migrate", "acl", "config|rewrite"}
    # The backend tunes memory at run time: CONFIG GET/SET stay.
    assert "config" not in denied and "config|set" not in denied


def test_denied_list_is_configurable():
    rule = acl.default_user_rule(_conf(redis_acl_denied_commands=["flushall", "keys"]))
    assert rule.endswith("+@all -flushall -keys")


def test_admin_identity_has_everything_and_its_own_generated_password():
    admin = acl.admin_password("nvr-1")
    assert admin == acl.admin_password("nvr-1"), "generated once, then reused"
    assert admin != acl.admin_password("nvr-2")
    rule = acl.admin_user_rule(admin)
    assert rule == f"user {acl.ADMIN_USER} on #{hashlib.sha256(admin.reveal().encode()).hexdigest()} ~* &* +@all"
    path = secrets.secret_path("nvr-1", acl.ADMIN_SECRET)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


def test_rendered_config_parses_and_holds_no_clear_text_password():
    conf = _conf()
    plat = platform.TABLE[("debian", "12")]["redis"]
    text = configure.render_config(conf, plat)
    admin = acl.admin_password("nvr-1").reveal()
    assert PASSWORD not in text and admin not in text
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    parsed = {tuple(split_args(line.encode())[:2]) for line in lines}
    assert (b"requirepass", PASSWORD.encode()) in parsed
    users = [split_args(line.encode()) for line in lines if line.startswith("user ")]
    assert [u[1] for u in users] == [b"default", acl.ADMIN_USER.encode()]
    assert "disable-thp yes" in text.splitlines()
    old = platform.TABLE[("ubuntu", "22.04")]["redis"]
    assert "disable-thp" not in configure.render_config(conf, old)


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
