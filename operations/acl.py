"""Least privilege: two identities in redis.conf.

- `default`: the backend's connection (REDIS_PASSWORD authenticates it). It may run every
  command except the denied list (`redis_acl_denied_commands`: wiping data, taking the
  server over, changing users, CONFIG REWRITE) and CONFIG SET. CONFIG SET could switch
  authentication off (`requirepass ""`); the backend sends it only when its own
  REDIS_MEMORY_APPLY_ON_STARTUP is true, and this deploy writes maxmemory into the config.
  `redis_backend_config_set` allows it back, on Redis 7.0+ only: older servers have no
  protected configs, so CONFIG SET there also reaches `dir`/`dbfilename` (writing files as
  the server's user). CONFIG GET stays allowed everywhere.
- `hsi-admin`: the operator's and the deploy's own identity, full access, with its own
  password generated once per host on the control machine. The deploy's checks use it
  through /etc/hsi-redis/cli.auth and `redis-cli --user`.
- `hsi-exporter` (`redis_exporter: true`): redis_exporter's identity, its own generated
  password, no keys and only the commands the packaged exporters (1.45, 1.69) send with the
  deploy's settings: INFO, CLIENT SETNAME, SLOWLOG GET/LEN, LATENCY LATEST/HISTOGRAM, and
  PING for an operator's check (read from ACL LOG against a `-@all` user). Not CONFIG GET,
  which the exporter's documentation lists: `CONFIG GET *` answers `requirepass`, i.e. the
  backend's password (verified on 7.0.15); the exporter is told to skip it
  (`REDIS_EXPORTER_CONFIG_COMMAND=-`), which costs only its `redis_config_maxclients`
  metric (maxmemory is in INFO too).

Passwords sit in the `user` lines as `#<sha256>`, never in clear. `requirepass` stays in
the file too, holding the backend password: verified on Redis 8.0.2 and 7.0.15, a
`user default ...` line is applied after `requirepass` and replaces its password (a
different `requirepass` password is then refused), so both must carry the same one.
"""

from __future__ import annotations

import hashlib

from .rows import Row

ADMIN_USER = "hsi-admin"
EXPORTER_USER = "hsi-exporter"
# Subcommands a server without them takes as a first-argument rule (6.x), so one list fits every row.
EXPORTER_COMMANDS = ("info", "ping", "client|setname", "slowlog|get", "slowlog|len", "latency|latest",
                     "latency|histogram")


def password_hash(password: str) -> str:
    """`#<sha256 hex>` as ACL rules take it: Redis hashes the password's raw bytes."""
    return "#" + hashlib.sha256(password.encode("utf-8")).hexdigest()


# Servers before 7.0 cannot deny one subcommand: the command is denied whole and these,
# the ones the backend uses, are allowed back. Other `cmd|sub` entries deny all of `cmd`.
# (CONFIG SET is never among them: see `config_set_allowed`.)
SUBCOMMANDS_KEPT = {"config": ("get", "resetstat", "help"), "script": ("load", "exists", "help")}


def config_set_allowed(conf, plat: Row) -> bool:
    """CONFIG SET for the backend: only if the setting asks and the server protects dir/dbfilename (7.0+)."""
    return conf.backend_config_set and plat.acl_deny_subcommands


def config_set_warning(conf, plat: Row) -> str | None:
    """Why `redis_backend_config_set` is not applied on this host, or None."""
    if not conf.backend_config_set or config_set_allowed(conf, plat):
        return None
    return (f"redis_backend_config_set ignored: the backend's identity keeps CONFIG SET denied on "
            f"{plat.name} (a server before 7.0 lets CONFIG SET change dir/dbfilename, i.e. write files "
            "as the server's user); CONFIG GET works")


def denied_commands(conf, plat: Row) -> tuple[str, ...]:
    """What the backend's identity may not run: the configured list, plus CONFIG SET unless allowed."""
    extra = () if config_set_allowed(conf, plat) or "config" in conf.acl_denied else ("config|set",)
    return tuple(conf.acl_denied) + tuple(c for c in extra if c not in conf.acl_denied)


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
    """The backend identity: everything except the `denied` commands (see `denied_commands`)."""
    rules = " ".join([_keys_and_channels(plat), "+@all", *_denials(denied, plat)])
    return f"user default on {password_hash(password)} {rules}"


def admin_user_rule(password: str, plat: Row) -> str:
    return f"user {ADMIN_USER} on {password_hash(password)} {_keys_and_channels(plat)} +@all"


def exporter_user_rule(password: str) -> str:
    """redis_exporter's identity: no keys, no channels, nothing but EXPORTER_COMMANDS."""
    allowed = " ".join(f"+{command}" for command in EXPORTER_COMMANDS)
    return f"user {EXPORTER_USER} on {password_hash(password)} resetkeys -@all {allowed}"


def user_rules(conf, plat: Row, backend_password: str, admin_password: str,
               exporter_password: str | None = None) -> list[str]:
    """The `user` lines of redis.conf, default first (`conf`: the host's Settings); the exporter's last,
    when it runs."""
    rules = [default_user_rule(denied_commands(conf, plat), plat, backend_password),
             admin_user_rule(admin_password, plat)]
    return rules + ([exporter_user_rule(exporter_password)] if exporter_password is not None else [])
