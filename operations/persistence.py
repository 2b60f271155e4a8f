"""Keep the data when AOF is turned on.

The trap (verified on Redis 7.0.15): a server whose data is only in dump.rdb, restarted
with `appendonly yes` in its config, creates an empty AOF, loads that, and starts EMPTY;
its next shutdown then overwrites dump.rdb. The safe path is to turn AOF on in the
running server (`CONFIG SET appendonly yes`), which writes the whole dataset into a new
AOF, wait until that rewrite has finished, and only then change the file and restart.

A stopped server with an RDB and no AOF is started once on its old config first, so that
its data is in memory when AOF is turned on.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import StringCommand, operation

from . import tls
from .facts import ADMIN_USER, CLI_AUTH_FILE, ServerState
from .platform import Platform
from .settings import RedisSettings
from .shell import fail_command

# How long to wait for the AOF rewrite (0.5 s steps): large datasets take a while.
REWRITE_WAIT_STEPS = 1200


def local_address(conf: RedisSettings) -> str:
    """The address a client on the host uses to reach the server."""
    first = conf.bind[0].lstrip("-")
    return {"*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(first, first)


def server_state(conf: RedisSettings, plat: Platform) -> dict:
    return host.get_fact(
        ServerState, cli=plat.cli, address=local_address(conf), port=conf.port, service=plat.service,
        data_dir=plat.data_dir, **tls.probe_kwargs(conf, plat),
    )


def _ask_function(cli: str, address: str, port: int, use_auth: bool, auth_user: str = ADMIN_USER,
                  tls_args: str = "") -> str:
    prefix = f'REDISCLI_AUTH="$(cat {CLI_AUTH_FILE})" ' if use_auth else ""
    user = f"--user {shlex.quote(auth_user)} " if use_auth and auth_user != "default" else ""
    extra = f" {tls_args}" if tls_args else ""
    return (
        f"ask() {{ {prefix}timeout 10 {shlex.quote(cli)} --no-auth-warning {user}"
        f"-h {shlex.quote(address)} -p {int(port)}{extra} \"$@\" 2>&1 | tr -d '\\r'; }}"
    )


def enable_aof_script(cli: str, address: str, port: int, use_auth: bool, auth_user: str = ADMIN_USER,
                      tls_args: str = "") -> str:
    """Shell: turn AOF on in the running server and wait until the dataset is in it."""
    return "; ".join((
        "set -e",
        _ask_function(cli, address, port, use_auth, auth_user, tls_args),
        'reply=$(ask config set appendonly yes)',
        '[ "$reply" = OK ] || { echo "CONFIG SET appendonly yes failed: $reply" >&2; exit 1; }',
        "i=0",
        "while :; do info=$(ask info persistence); "
        'case "$info" in *aof_enabled:1*) ;; *) info=""; esac; '
        'case "$info" in *aof_rewrite_in_progress:0*aof_rewrite_scheduled:0*) break; esac; '
        f'i=$((i+1)); [ "$i" -lt {REWRITE_WAIT_STEPS} ] || '
        '{ echo "AOF rewrite did not finish in time" >&2; exit 1; }; sleep 0.5; done',
        'case "$info" in *aof_last_bgrewrite_status:ok*) ;; '
        '*) echo "AOF rewrite failed: the server keeps running, its config was not changed" >&2; exit 1; esac',
    ))


def start_and_wait_script(service: str, cli: str, address: str, port: int) -> str:
    """Shell: start a stopped server on its current config and wait until it answers."""
    return "; ".join((
        f"systemctl start {shlex.quote(service)}",
        _ask_function(cli, address, port, False),
        "i=0",
        'while :; do case "$(ask ping)" in *PONG*|*NOAUTH*) break; esac; '
        'i=$((i+1)); [ "$i" -lt 120 ] || { echo "server did not answer after start" >&2; exit 1; }; '
        "sleep 0.5; done",
    ))


def _pong(reply: str | None) -> bool:
    return (reply or "").strip() == "PONG"


@operation()
def secure_data(conf: RedisSettings, plat: Platform):
    """
    Make sure the data of a running (or stopped, RDB-only) server is in an AOF.

    + conf: the host's settings
    + plat: the host's platform row

    Does nothing when the package is not installed, AOF is already on, or there is no data.
    """
    state = server_state(conf, plat)
    if state.get("cli") != "present":
        return
    address = local_address(conf)
    if state.get("service_active") != "active":
        if state.get("rdb") == "yes" and state.get("aof_files") != "yes":
            yield StringCommand(start_and_wait_script(plat.service, plat.cli, address, conf.port))
            # The server now runs on its old config: ask again who it answers to.
            state = server_state(conf, plat)
        else:
            return
    if state.get("aof_enabled") == "1":
        return
    if _pong(state.get("noauth_ping")):
        use_auth = False
    elif _pong(state.get("auth_ping")):
        use_auth = True
    else:
        yield fail_command(
            "the running server refuses the deploy's credentials "
            f"(without: {state.get('noauth_ping', '').strip()!r}, with {CLI_AUTH_FILE}: "
            f"{state.get('auth_ping', 'no file').strip()!r}); its data cannot be moved into an AOF "
            f"safely, so its config is left alone. Put its current password in {CLI_AUTH_FILE} "
            "(root, 0600) and run again."
        )
        return
    port, tls_args = tls.cli_connection(state, plat) if state.get("via") == "tls" else (conf.port, "")
    yield StringCommand(enable_aof_script(plat.cli, address, port, use_auth,
                                          state.get("auth_user") or ADMIN_USER, tls_args))
