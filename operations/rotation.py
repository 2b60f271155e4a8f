"""Zero-downtime password rotation for the `default` user (entry point: rotate.py).

Steps, each deciding from what the server accepts, so a run interrupted anywhere can simply
be run again:

1. `add_password`: if the server does not accept the new password yet, add it beside the
   old one (`ACL SETUSER default #<sha256>`, sent as the admin identity: the backend's own
   identity may not change users; both passwords now work).
2. The files: the backend credential `backend.auth`, redis.conf (`requirepass` and the
   `user default` line new, written without a restart: the running server already has it),
   the last good config copy, the backend `.env` and the exporter's file.
3. `drop_old_passwords`: while the server still has more than the new password, restart
   the consumers' units (`redis_backend_unit`, `redis_exporter_unit`) so they read the new
   files, then `ACL SETUSER default resetpass #<sha256 new>` (one atomic command: old ones
   go, new stays).

The old password is dropped only when every consumer the deploy knows of (the backend's
`.env`, the exporter's file) has the new one and runs with it. A consumer without a unit
cannot be restarted by the run: the run then keeps the old password valid, writes a notice
on the host (`rotation-notice`) and the summary says what to restart; the next run, finding
the files already holding the new password and the notice given, drops the old one. A
generated password stays pending (`.next`) until the drop is done.

The server is reached as the other scripts reach it: the plain port, or under TLS-only the
TLS port over TLS (the server's CA, and the deploy's client certificate under mTLS).

The new password travels base64-encoded on stdin; on the host it is only ever in shell
variables, in the environment of redis-cli (REDISCLI_AUTH) and as a SHA-256 piped into it.
Connected clients stay authenticated; new connections need the new password.
The admin identity (`hsi-admin`, password in cli.auth) is not rotated here; only the backend's.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from dataclasses import dataclass, replace

from pyinfra.api import StringCommand, deploy, operation
from pyinfra.operations import python

from . import report, secrets, tls
from .backend_env import write_backend_env
from .configure import render_config
from .exporter import write_exporter_env
from .facts import ADMIN_USER, BACKEND_AUTH_FILE, CLI_AUTH_FILE, STATE_DIR
from .managed_files import managed_file
from .persistence import local_address
from .platform import Platform
from .rollback import record_last_good
from .settings import RedisSettings

USER = "default"  # the backend's identity
AUTH_FILE = BACKEND_AUTH_FILE  # its current password on the host
# SHA-256 of the password a rotation was held back for (a consumer to restart by hand): root only.
NOTICE_FILE = f"{STATE_DIR}/rotation-notice"


@dataclass(frozen=True)
class Consumer:
    """A program that reads the backend's password from a file the deploy writes."""

    what: str
    path: str
    unit: str | None  # restarted by rotate.py when set
    setting: str      # the setting that names its unit


def consumers(conf: RedisSettings) -> list[Consumer]:
    """Every consumer of the password the settings name: the backend's `.env`, the exporter's file."""
    found = []
    if conf.backend_env_path:
        found.append(Consumer("the HSI backend", conf.backend_env_path, conf.backend_unit,
                              "redis_backend_unit"))
    if conf.exporter_env_path:
        found.append(Consumer("redis_exporter", conf.exporter_env_path, conf.exporter_unit,
                              "redis_exporter_unit"))
    return found


def held_back_warning(waiting: list[Consumer]) -> str:
    """What the summary says when the old password stays valid for consumers without a unit."""
    what = " and ".join(f"{c.what} (reads {c.path})" for c in waiting)
    them = "them" if len(waiting) > 1 else "it"
    return (f"password rotation not finished: the new password is in place, the old one stays valid until "
            f"{what} {'are' if len(waiting) > 1 else 'is'} restarted. Restart {them}, then run rotate.py again "
            f"(before any deploy.py) to drop the old password; with {' and '.join(c.setting for c in waiting)} "
            f"set, rotate.py restarts {them} itself")


def _stdin(password: str) -> list[str]:
    encoded = base64.b64encode(password.encode()).decode()
    return [encoded[i:i + 76] for i in range(0, len(encoded), 76)]


def _prelude(conf: RedisSettings, plat: Platform) -> str:
    port, tls_args = tls.local_client(conf, plat)  # under TLS-only: the TLS port, over TLS
    return f"""
new=$(base64 -d); cli={shlex.quote(plat.cli)}; addr={shlex.quote(local_address(conf))}; port={int(port)}
auth={shlex.quote(AUTH_FILE)}; admin_auth={shlex.quote(CLI_AUTH_FILE)}
say() {{ echo "hsi-redis: $*" >&2; }}
# as PASSWORD ARGS...: the CLI as the backend's identity with PASSWORD (environment, never argv);
# admin ARGS...: as the admin identity (user changes). stdin passes through to both.
# Both reach the server at $port, with TLS arguments where the plain port is closed.
as() {{ pw=$1; shift; REDISCLI_AUTH="$pw" timeout 10 "$cli" --no-auth-warning -h "$addr" -p "$port" {tls_args} "$@" 2>&1 | tr -d '\\r'; }}
admin() {{ REDISCLI_AUTH="$(cat "$admin_auth")" timeout 10 "$cli" --no-auth-warning --user {ADMIN_USER} -h "$addr" -p "$port" {tls_args} "$@" 2>&1 | tr -d '\\r'; }}
pong() {{ [ "$(as "$1" ping </dev/null)" = PONG ]; }}
sha() {{ printf '%s' "$1" | sha256sum | cut -c1-64; }}
[ -n "$new" ] || {{ say "no new password received"; exit 1; }}
""".strip()


def add_password_script(conf: RedisSettings, plat: Platform) -> str:
    return _prelude(conf, plat) + f"""
# Asked of the admin identity (ACL GETUSER lists password hashes): a trial AUTH with the new
# password would land in ACL LOG as a failed login and show up as an auth failure.
if admin acl getuser {USER} </dev/null | grep -qx "$(sha "$new")"; then
  echo "the server already accepts the new password"; exit 0
fi
old=$(cat "$auth" 2>/dev/null)
if [ -z "$old" ] || ! pong "$old"; then
  say "the server accepts neither the new password nor the one in $auth: run deploy.py first"; exit 1
fi
reply=$(printf 'ACL SETUSER {USER} #%s\\n' "$(sha "$new")" | admin)
[ "$reply" = OK ] || {{ say "ACL SETUSER failed: $reply"; exit 1; }}
pong "$new" || {{ say "the server does not accept the new password after adding it"; exit 1; }}
echo "added the new password beside the old one"
"""


def drop_old_script(conf: RedisSettings, plat: Platform) -> str:
    units = [c.unit for c in consumers(conf) if c.unit]
    restarts = "".join(
        f'systemctl try-restart {shlex.quote(unit)} || {{ say "restarting {unit} failed; the old password '
        f'stays valid until it runs with the new one"; exit 1; }}; echo "restarted {unit}"\n'
        for unit in units
    )
    return _prelude(conf, plat) + f"""
pong "$new" || {{ say "the server does not accept the new password: run rotate.py again"; exit 1; }}
count=$(admin acl list </dev/null | grep '^user {USER} ' | tr ' ' '\\n' | grep -c '^#')
if [ "$count" -le 1 ]; then echo "only the new password is valid"; exit 0; fi
# Every consumer the deploy restarts reads the new password before the old one goes.
{restarts}reply=$(printf 'ACL SETUSER {USER} resetpass #%s\\n' "$(sha "$new")" | admin)
[ "$reply" = OK ] || {{ say "ACL SETUSER resetpass failed: $reply"; exit 1; }}
pong "$new" || {{ say "the server does not accept the new password after dropping the old"; exit 1; }}
echo "dropped $((count - 1)) old password(s)"
"""


@operation()
def add_password(conf: RedisSettings, plat: Platform):
    """
    Make the server accept `conf.password` too (the old one keeps working).

    + conf: the host's settings, with the NEW password
    + plat: the host's platform row

    **Example:**

    .. code:: python

        add_password(name="Add the new password", conf=new_conf, plat=plat)
    """
    yield StringCommand(add_password_script(conf, plat), _stdin=_stdin(conf.password.reveal()))


@operation()
def drop_old_passwords(conf: RedisSettings, plat: Platform):
    """
    Restart the consumers' units (those set), then leave `conf.password` as the only valid password.

    + conf: the host's settings, with the NEW password
    + plat: the host's platform row

    **Example:**

    .. code:: python

        drop_old_passwords(name="Drop the old password", conf=new_conf, plat=plat)
    """
    yield StringCommand(drop_old_script(conf, plat), _stdin=_stdin(conf.password.reveal()))


def target_settings(conf: RedisSettings, host_name: str) -> RedisSettings:
    """The host's settings with the password to rotate TO.

    REDIS_PASSWORD in the environment or `redis_password` host data name it; for generated
    passwords a new one is created beside the current one in the control machine's store
    (`<name>.next`) and promoted once the host is done (an interrupted run reuses it).
    """
    if not conf.password_source.startswith("generated"):
        return conf
    return replace(conf, password=secrets.pending_password(host_name))


def notice(conf: RedisSettings) -> str:
    """The notice file's content: the new password's SHA-256 (as redis.conf's user line holds it)."""
    return hashlib.sha256(conf.password.reveal().encode()).hexdigest() + "\n"


@deploy("Rotate the password")
def rotate_password(conf: RedisSettings, plat: Platform, host_name: str) -> RedisSettings:
    """Move the host to a new password without downtime; returns the settings with it.

    The old password is dropped (and a generated new one promoted in the store) only when
    every consumer runs with the new one: restarted here through its unit, or, without a
    unit, told to the operator by an earlier run whose files held the same new password.
    """
    new = target_settings(conf, host_name)
    add_password(name="Add the new password beside the old one (ACL)", conf=new, plat=plat)
    managed_file(name=f"Write {AUTH_FILE} (root only)", path=AUTH_FILE, content=new.password.reveal(),
                 user="root", group="root", mode=0o600)
    # No restart: the running server already accepts the new password.
    managed_file(name=f"Write {plat.config_path} (requirepass; no restart)", path=plat.config_path,
                 content=render_config(new, plat), user="root", group=plat.group, mode=0o640)
    record_last_good(name="Record the config as the last good one", conf=new, plat=plat)
    # Each consumer's file-writing operation, by the setting that names the consumer's unit.
    written = {"redis_backend_unit": write_backend_env(new), "redis_exporter_unit": write_exporter_env(new)}
    waiting = [c for c in consumers(new) if c.unit is None]
    gate = []
    if waiting:
        # Written after the files: a run interrupted before it never counts as "the operator was told".
        told = managed_file(name=f"Write {NOTICE_FILE} (rotation held back for a restart)", path=NOTICE_FILE,
                            content=notice(new), user="root", group="root", mode=0o600)
        files = [written[c.setting] for c in waiting]

        def restarted() -> bool:
            """The files already held the new password, and an earlier run said to restart their readers."""
            return not told.did_change() and not any(op.did_change() for op in files)

        python.call(name="Keep the old password: a consumer must be restarted first (see the summary)",
                    function=report.warn, host_name=host_name, text=held_back_warning(waiting),
                    _if=lambda: not restarted())
        gate = [restarted]
    drop_old_passwords(name="Restart the consumers' units, then drop the old password", conf=new, plat=plat,
                       _if=gate)
    if new is not conf:
        python.call(name="Make the new password the current one in the control machine's store",
                    function=secrets.promote_pending, host_name=host_name, _if=gate)
    return new
