"""Least privilege: two identities in redis.conf.

- `default`: the backend's connection (REDIS_PASSWORD authenticates it). It may run every
  command except the denied list (`redis_acl_denied_commands`: wiping data, taking the
  server over, changing users, CONFIG REWRITE). CONFIG GET/SET stay: the backend tunes
  maxmemory at run time.
- `hsi-admin`: the operator's and the deploy's own identity, full access, with its own
  password generated once per host on the control machine. The deploy's checks use it
  through /etc/hsi-redis/cli.auth and `redis-cli --user`.

Passwords sit in the `user` lines as `#<sha256>`, never in clear. `requirepass` stays in
the file too, holding the backend password: verified on Redis 8.0.2 and 7.0.15, a
`user default ...` line is applied after `requirepass` and replaces its password (a
different `requirepass` password is then refused), so both must carry the same one.
"""

from __future__ import annotations

import hashlib

from . import secrets
from .facts import ADMIN_USER
from .secrets import Secret
from .settings import RedisSettings

__all__ = ["ADMIN_USER", "admin_password", "password_hash", "user_rules"]
ADMIN_SECRET = "admin_password"


def admin_password(host_name: str) -> Secret:
    """The admin identity's password for `host_name` (generated once, kept on the control machine)."""
    return secrets.generated_password(host_name, ADMIN_SECRET)


def password_hash(password: Secret) -> str:
    """`#<sha256 hex>` as ACL rules take it: Redis hashes the password's raw bytes."""
    return "#" + hashlib.sha256(password.reveal().encode("utf-8")).hexdigest()


def default_user_rule(conf: RedisSettings) -> str:
    """The backend identity: everything except the denied commands."""
    denied = " ".join(f"-{command}" for command in conf.acl_denied)
    return f"user default on {password_hash(conf.password)} ~* &* +@all {denied}".rstrip()


def admin_user_rule(password: Secret) -> str:
    return f"user {ADMIN_USER} on {password_hash(password)} ~* &* +@all"


def user_rules(conf: RedisSettings, admin: Secret) -> list[str]:
    """The `user` lines of redis.conf, default first."""
    return [default_user_rule(conf), admin_user_rule(admin)]
