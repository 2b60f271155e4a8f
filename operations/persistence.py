"""Keep the data when AOF is turned on.

The trap (verified on Redis 7.0.15): a server whose data is only in dump.rdb, restarted
with `appendonly yes` in its config, creates an empty AOF, loads that, and starts EMPTY;
its next shutdown then overwrites dump.rdb. The safe path is to turn AOF on in the
running server (`CONFIG SET appendonly yes`), which writes the whole dataset into a new
AOF, wait until that rewrite has finished, and only then change the file and restart.

A stopped server whose data is in dump.rdb -- with no AOF beside it, or an AOF older than it
(AOF off for a while, a dump restored by hand) -- is started once on that dump with AOF off,
whatever its config says, so that its data is in memory when AOF is turned on: started with
`appendonly yes`, it would load the older AOF (the data goes back in time) or none at all.

The questions asked here go to the running server where it listens now (the config it was
started with), not to a new port or address the settings ask for: that is where it moves to.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import StringCommand, operation

from . import tls
from .facts import ADMIN_USER, CLI_AUTH_FILE, RESTART_PENDING, WHERE_FUNCTION, ServerState, last_good_copy
from .platform import Platform
from .restart_pending import RestartNeeded, mark_script
from .settings import RedisSettings
from .shell import fail_command
from .tls_probe import answered, client_args

# How long to wait for the AOF rewrite (0.5 s steps): large datasets take a while.
REWRITE_WAIT_STEPS = 1200


def local_address(conf: RedisSettings) -> str:
    """The address a client on the host uses to reach the server."""
    first = conf.bind[0].lstrip("-")
    return {"*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(first, first)


def server_state(conf: RedisSettings, plat: Platform, running: bool = False) -> dict:
    """The ServerState fact. `running`: ask the server where its config files say it listens
    now (the config on disk, the copy kept with a pending restart, the last good one), for the
    questions before its config changes; otherwise where the settings say (verification)."""
    listen_from = (plat.config_path, RESTART_PENDING, last_good_copy(plat.config_path))
    extra = {"listen_from": listen_from} if running else {}
    return host.get_fact(
        ServerState, cli=plat.cli, address=local_address(conf), port=conf.port, service=plat.service,
        data_dir=plat.data_dir, **tls.probe_kwargs(conf, plat), **extra,
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


# How long a stopped server may take to answer once started on its dump.rdb (0.5 s steps).
START_WAIT_STEPS = 240


def start_on_rdb_script(plat: Platform) -> str:
    """Shell: start a stopped server on its dump.rdb, AOF off whatever its config says, and wait
    until it answers.

    Its config gets `appendonly no` at the end for this start (the last directive wins), after a
    pending restart is recorded: the deploy turns AOF on live next, writes its own config and
    restarts. Should the run stop in between, the server keeps loading the dump, never the
    older AOF. A server that does not start on its config is stopped again with the file as it
    was, and the host fails: starting it on the deploy's config instead would load the older AOF.
    """
    tls_args = client_args(tls.server_paths(plat)["ca"], *tls.cli_paths().values())
    data = shlex.quote(plat.data_dir)
    return f"""{mark_script(plat.config_path)} || exit 1
cfg={shlex.quote(plat.config_path)}; svc={shlex.quote(plat.service)}; cli={shlex.quote(plat.cli)}
{WHERE_FUNCTION}
where "$cfg"; dir=${{wd:-{data}}}
cp -p "$cfg" "$cfg.hsi-orig" && cp -p "$cfg" "$cfg.hsi-rdb" \\
  && printf '\\n# hsi-redis: start on dump.rdb; AOF is turned on live next\\nappendonly no\\n' >> "$cfg.hsi-rdb" \\
  && mv -f "$cfg.hsi-rdb" "$cfg" || {{ echo "hsi-redis: cannot add appendonly no to $cfg" >&2; exit 1; }}
tls=""; if [ "$wp" = 0 ]; then wp=$wt; tls="{tls_args}"; fi
timeout {START_WAIT_STEPS // 2} systemctl start "$svc" 2>/dev/null
i=0; up=no
while [ "$i" -lt {START_WAIT_STEPS} ]; do
  case "$(timeout 5 "$cli" --no-auth-warning -h "$wa" -p "$wp" $tls ping 2>&1)" in *PONG*|*NOAUTH*) up=yes; break;; esac
  systemctl is-failed --quiet "$svc" && break
  i=$((i+1)); sleep 0.5
done
if [ "$up" = no ]; then
  systemctl stop "$svc"; systemctl reset-failed "$svc" 2>/dev/null; mv -f "$cfg.hsi-orig" "$cfg"
  echo "hsi-redis: $svc is stopped and does not start on its config $cfg (journalctl -u $svc). Its data is" \\
    "in $dir/dump.rdb (no AOF beside it, or an older one), and starting it with the deploy's config" \\
    "(appendonly yes) would load the older AOF or none, so nothing was changed. Make it start" \\
    "(systemctl start $svc), or move $dir/dump.rdb aside if the AOF is what you want, then run again." >&2
  exit 1
fi
rm -f "$cfg.hsi-orig"
echo "started $svc on $dir/dump.rdb (AOF off until it is turned on live)"
"""


def _pong(reply: str | None) -> bool:
    return (reply or "").strip() == "PONG"


@operation()
def secure_data(conf: RedisSettings, plat: Platform, restart: RestartNeeded | None = None):
    """
    Make sure the data of a running (or stopped, with its data in dump.rdb) server is in an AOF.

    + conf: the host's settings
    + plat: the host's platform row
    + restart: told whether the probe saw a restart still pending from an earlier run

    Does nothing when the package is not installed, AOF is already on, or there is no data.
    """
    state = server_state(conf, plat, running=True)
    if restart is not None:
        restart.note(state)
    if state.get("cli") != "present":
        return
    if state.get("service_active") != "active":
        if state.get("rdb") != "yes" or (state.get("aof_files") == "yes" and state.get("aof_stale") != "yes"):
            return  # no data, or an AOF at least as new as the dump: the normal start loads it
        yield StringCommand(start_on_rdb_script(plat))
        # The server now runs on its dump with AOF off: ask again who it answers to.
        state = server_state(conf, plat, running=True)
    if state.get("aof_enabled") == "1":
        return
    address, port = state.get("addr") or local_address(conf), int(state.get("port") or conf.port)
    if _pong(state.get("noauth_ping")):
        use_auth = False
    elif _pong(state.get("auth_ping")):
        use_auth = True
    elif not answered(state.get("noauth_ping")):
        yield fail_command(
            f"{plat.service} is {state.get('service_active')} but does not answer where its config "
            f"({plat.config_path}) says it listens ({address} port {port}: "
            f"{state.get('noauth_ping', '').strip()!r}); its config is left alone. "
            f"Check systemctl status {plat.service} and run again."
        )
        return
    else:
        yield fail_command(
            "the running server refuses the deploy's credentials "
            f"(without: {state.get('noauth_ping', '').strip()!r}, with {CLI_AUTH_FILE}: "
            f"{state.get('auth_ping', 'no file').strip()!r}); its data cannot be moved into an AOF "
            f"safely, so its config is left alone. Put its current password in {CLI_AUTH_FILE} "
            "(root, 0600) and run again."
        )
        return
    port, tls_args = tls.cli_connection(state, plat) if state.get("via") == "tls" else (port, "")
    yield StringCommand(enable_aof_script(plat.cli, address, port, use_auth,
                                          state.get("auth_user") or ADMIN_USER, tls_args))
