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

from .rows import Row

ADMIN_USER = "hsi-admin"


def password_hash(password: str) -> str:
    """`#<sha256 hex>` as ACL rules take it: Redis hashes the password's raw bytes."""
    return "#" + hashlib.sha256(password.encode("utf-8")).hexdigest()


# Servers before 7.0 cannot deny one subcommand: the command is denied whole and these,
# the ones the backend uses, are allowed back. Other `cmd|sub` entries deny all of `cmd`.
SUBCOMMANDS_KEPT = {"config": ("get", "set", "resetstat", "help"), "script": ("load", "exists", "help")}


def _denials(denied: tuple[str, ...], plat: Row) -> list[str]:
    if plat.acl_deny_subcommands:
        return [f"-{command}" for command in denied]
    rules: list[str] = []
    whole = {command for command in denied if "|" not in command}
    for command in denied:
        parent = command.split("|")[0]
        if f"-{parent}" in rules:
            continue
        rules.append(f"-{parent}")
        if parent not in whole:
            gone = {c.split("|")[1] for c in denied if c.startswith(parent + "|")}
            rules += [f"+{parent}|{sub}" for sub in SUBCOMMANDS_KEPT.get(parent, ()) if sub not in gone]
    return rules


def _keys_and_channels(plat: Row) -> str:
    return "~* &*" if plat.acl_channels else "~*"  # before 6.2 every channel is allowed anyway


def default_user_rule(denied: tuple[str, ...], plat: Row, password: str) -> str:
    """The backend identity: everything except the denied commands."""
    rules = " ".join([_keys_and_channels(plat), "+@all", *_denials(denied, plat)])
    return f"user default on {password_hash(password)} {rules}"


def admin_user_rule(password: str, plat: Row) -> str:
    return f"user {ADMIN_USER} on {password_hash(password)} {_keys_and_channels(plat)} +@all"


def user_rules(settings, plat: Row, backend_password: str, admin_password: str) -> list[str]:
    """The `user` lines of redis.conf, default first (`settings`: the host's Settings)."""
    return [default_user_rule(settings.acl_denied, plat, backend_password), admin_user_rule(admin_password, plat)]
