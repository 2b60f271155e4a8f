"""Every user-facing setting with its one default: the table the README mirrors (a unit test keeps
them in step). Validation is operations/validation.py; loading is operations/settings.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str


# Deployment sizes from the HSI memory table (small 1-4 cameras, medium 5-8, large 8+).
SIZES = {"small": "100mb", "medium": "200mb", "large": "512mb"}
MAXMEMORY_POLICIES = (
    "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
    "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
)

# What the backend's connection must not run: wiping the data, taking the server over, changing users.
DENIED_COMMANDS = (
    "flushall", "flushdb", "debug", "shutdown", "module", "replicaof", "slaveof", "migrate", "acl",
    "config|rewrite",
)
# Never deniable: the backend could no longer log in or talk to the server at all.
ESSENTIAL_COMMANDS = ("auth", "hello", "ping", "quit", "reset", "select", "client", "info")

SETTINGS: tuple[Setting, ...] = (
    Setting("redis_password", None, "Password clients must present. `REDIS_PASSWORD` in the operator's "
            "environment wins; unset, one is generated per host and kept in `.secrets/`."),
    Setting("redis_password_min_length", 16, "Shortest password accepted (not applied to development hosts)."),
    Setting("redis_development", False, "Marks a development host: relaxes the password length rule."),
    Setting("redis_bind", ["127.0.0.1", "-::1"], "Addresses the server listens on (`-` = skip if absent)."),
    Setting("redis_port", 6379, "TCP port."),
    Setting("redis_size", "small", "Deployment size: `small` (1-4 cameras), `medium` (5-8), `large` (8+)."),
    Setting("redis_maxmemory", None, "Memory limit; unset, taken from the size (100mb / 200mb / 512mb)."),
    Setting("redis_maxmemory_policy", "noeviction", "Eviction policy; `noeviction` keeps queues from being "
            "evicted."),
    Setting("redis_appendfsync", "everysec", "AOF fsync policy: `always`, `everysec` or `no`."),
    Setting("redis_flavour", "auto", "`redis`, `valkey`, or `auto` (Redis where the distro ships it)."),
    Setting("redis_backend_env_path", "/opt/hsi/backend/.env", "The HSI backend's `.env` to merge the "
            "Redis keys into; empty to skip."),
    Setting("redis_backend_env_owner", None, "Owner of the backend `.env` and its TLS files; unset, an existing "
            "`.env` keeps its owner, new files belong to the user owning their directory (root when the deploy "
            "creates it). See \"The backend's files\"."),
    Setting("redis_backend_env_group", None, "Group of the backend `.env` and its TLS files; unset, an existing "
            "`.env` keeps its group, else the owner's login group. A new `.env` with it set is 0640, else 0600."),
    Setting("redis_backend_host", "localhost", "Host name the backend uses in `REDIS_URL`."),
    Setting("redis_backend_db", 0, "Database number in `REDIS_URL`."),
    Setting("redis_verify_only", False, "Only verify: change nothing on the host."),
    # TLS, mTLS and the monitoring exporter (issue 3); see operations/tls_preflight.py.
    Setting("redis_tls", False, "Serve TLS on `redis_tls_port`; the backend's `REDIS_URL` becomes `rediss://`."),
    Setting("redis_tls_port", 6380, "TLS port."),
    Setting("redis_tls_only", False, "Close the plain port (`port 0`); needs `redis_tls`."),
    Setting("redis_tls_ca_cert", None, "CA certificate (PEM file on the control machine); unset, the "
            "helper's `.secrets/pki/ca.crt`."),
    Setting("redis_tls_cert", None, "Server certificate (PEM, intermediates may follow); unset, "
            "`.secrets/pki/hosts/<host>/server.crt`."),
    Setting("redis_tls_key", None, "Server key (unencrypted PEM); unset, `.secrets/pki/hosts/<host>/server.key`."),
    Setting("redis_tls_client_cert", None, "Backend client certificate (PEM) for mTLS; unset, none."),
    Setting("redis_tls_client_key", None, "Key of `redis_tls_client_cert` (unencrypted PEM)."),
    Setting("redis_tls_auth_clients", None, "`tls-auth-clients`: `yes`, `optional` or `no`; unset, `yes` "
            "with a client certificate, else `no`."),
    Setting("redis_tls_backend_dir", None, "Host directory for the backend's CA and client files; unset, "
            "`redis-tls/` beside the backend `.env`."),
    # Issue 11: the distro's redis_exporter, with its own least-privilege ACL user.
    Setting("redis_exporter", False, "Install and run the distro's redis_exporter (`prometheus-redis-exporter`) "
            "with its own ACL user `hsi-exporter`; verification requires `redis_up 1` from its metrics. Debian "
            "and Ubuntu only (the RPM family packages none)."),
    Setting("redis_exporter_listen", "127.0.0.1:9121", "Where the exporter serves its metrics "
            "(`REDIS_EXPORTER_WEB_LISTEN_ADDRESS`; loopback by default)."),
    # Issue 4: package source and version policy.
    Setting("redis_source", "distro", "`distro` (the distro's packages), `upstream` (packages.redis.io), or "
            "`auto` (the distro's unless it is below `redis_minimum_version`, then upstream)."),
    Setting("redis_minimum_version", "", "Lowest acceptable server version, e.g. `7.4`; a host below it stops "
            "before anything changes there. Empty: install anyway, with a warning below 7.4."),
    Setting("redis_upstream_version", "7.4", "Upstream release series to pin (`7.4`, `8.0`, or an exact "
            "`7.4.2`); only used with the upstream source."),
    Setting("redis_upstream_key", "", "Path on the control machine to packages.redis.io's ASCII-armored "
            "signing key (download https://packages.redis.io/gpg once); required for the upstream source."),
    Setting("redis_upstream_key_fingerprint", "", "The key's fingerprint as you confirmed it (40 hex digits); "
            "the deploy refuses a key file whose fingerprint differs."),
    # Security (issue 5): least privilege, auth-failure monitoring, host hardening.
    Setting("redis_acl_denied_commands", list(DENIED_COMMANDS), "Commands the backend's identity (the "
            "`default` user) may not run; `NAME` or `NAME|SUBCOMMAND`. The admin user keeps them all."),
    Setting("redis_backend_config_set", False, "Let the backend's identity run CONFIG SET (Redis 7.0+ only; "
            "see Least privilege: it can then switch authentication off). Off: CONFIG GET only."),
    Setting("redis_auth_failure_warn", 10, "Failed authentications since the last run (ACL LOG) at or above "
            "which the summary warns."),
    Setting("redis_kernel_tuning", True, "Set vm.overcommit_memory=1, net.core.somaxconn and THP off "
            "(persistent); always skipped inside containers."),
    # Safety (issue 6): restarts that roll back, rotation, fleet faults.
    Setting("redis_extra_config", [], "Extra redis.conf directive lines appended as given (no newlines); "
            "a line the server rejects is rolled back to the last good config."),
    Setting("redis_restart_wait", 60, "Seconds to wait for the server to answer PING after a restart "
            "before restoring the last good config."),
    Setting("redis_backend_unit", None, "systemd unit of the backend that `rotate.py` restarts after "
            "writing the new password into its `.env` (unset: not restarted)."),
    # Backups, restores, scheduled snapshots (issue 12).
    Setting("redis_backup_dir", "backups", "Directory on the control machine for `backup.py`'s copies "
            "(`<dir>/<host>/<UTC time>/`; directories 0700, files 0600); relative to where pyinfra runs."),
    Setting("redis_backup_keep", 14, "Backups `backup.py` keeps per host on the control machine (the newest)."),
    Setting("redis_backup_schedule", "off", "Snapshots on the host by a systemd timer: `off`, `hourly`, `daily` "
            "or `weekly`; verification warns when the newest is older than twice that."),
    Setting("redis_snapshot_dir", "/var/lib/hsi-redis/snapshots", "Host directory (root only) for the "
            "scheduled snapshots."),
    Setting("redis_snapshot_keep", 7, "Scheduled snapshots kept on the host (the newest)."),
    # Issue 11: backends on their own hosts, and the firewall that admits only them.
    Setting("redis_role", "both", "`both` (the server and the HSI backend on one host), `server` (the server "
            "only: no backend `.env` here), or `backend` (only the backend's `.env` and TLS files, for the "
            "server named in `redis_server`; nothing is installed). See \"Backends on other hosts\"."),
    Setting("redis_server", None, "On a `backend` host: the inventory name of its server host (whose address, "
            "ports, TLS files and password its `.env` gets)."),
    Setting("redis_backend_address", None, "On a `backend` host: its address as its server sees it (IP "
            "address or CIDR), admitted by the server's firewall; unset, its `ssh_hostname` (else its "
            "inventory name) when that is an IP address."),
    Setting("redis_allow_plaintext", False, "Let a server listen beyond loopback without TLS, and admit other "
            "hosts to its plain port next to the TLS port (warned in the summary). Off: beyond loopback needs "
            "`redis_tls`, and other hosts reach only the TLS port."),
    Setting("redis_firewall", True, "On a server listening beyond loopback: admit its ports only from "
            "loopback, its backend hosts and `redis_firewall_allow` (nftables, or firewalld where it runs). "
            "False: the deploy leaves the firewall alone (and removes its own rules)."),
    Setting("redis_firewall_allow", [], "More sources (IP addresses or CIDRs, e.g. monitoring) the firewall "
            "admits to the server's ports."),
)
# redis_backup_schedule: how often, in seconds (verification warns past twice that)
SCHEDULES = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400}
DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}

# Settings that existed once: naming one is an error that says what replaced it.
REMOVED = {
    name: "no longer supported (issue 11): set redis_exporter: true instead -- the deploy installs the distro's "
          "prometheus-redis-exporter and writes its /etc/default file itself, with its own ACL user rather than "
          "the backend's password (see the README's Monitoring)"
    for name in ("redis_exporter_env_path", "redis_exporter_owner", "redis_exporter_unit")
}
