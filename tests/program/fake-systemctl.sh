#!/bin/sh
# Stand-in for systemctl/journalctl in the host program's tests (HSI_REDIS_SERVICE_CTL).
#
#   fake-systemctl.sh ACTION UNIT...        ACTION: start stop restart try-restart is-active is-failed
#                                           is-enabled enable disable reset-failed daemon-reload show
#   fake-systemctl.sh journal UNIT SINCE    the unit's journal lines since 'YYYY-mm-dd HH:MM:SS'
#
# Everything lives in $HSI_FAKE_DIR. A unit with a file UNIT.config (holding a redis.conf path) is a
# Redis server, run as `redis-server CONFIG --daemonize no --supervised no` in its own session: our
# configs say `supervised systemd`, which needs a real systemd. Its stderr (fatal config errors) goes
# to the unit's journal, its own log to the config's logfile. Other units are consumers: restarts only
# succeed unless UNIT.fail exists. Every call is appended to $HSI_FAKE_DIR/calls.
set -u
D=${HSI_FAKE_DIR:?HSI_FAKE_DIR names the fake units directory}
action=$1
shift
echo "$action $*" >>"$D/calls"

note() {  # UNIT TEXT...: journal lines, stamped with the epoch for `journal SINCE`
    u=$1
    shift
    now=$(date +%s)
    printf '%s\n' "$*" | while IFS= read -r line; do printf '%s|%s\n' "$now" "$line"; done >>"$D/$u.journal"
}
alive() {  # PID: running and not a zombie (an orphaned server is reaped by PID 1, maybe late)
    [ -r "/proc/$1/stat" ] && read -r _ _ st _ <"/proc/$1/stat" && [ "$st" != Z ]
}
running() { [ -f "$D/$1.pid" ] && alive "$(cat "$D/$1.pid")"; }
logfile() { awk 'tolower($1) == "logfile" { l = $2 } END { gsub(/"/, "", l); print l }' "$1"; }

start() {
    u=$1
    [ -f "$D/$u.config" ] || { [ ! -f "$D/$u.fail" ] && touch "$D/$u.active"; return; }
    running "$u" && return 0
    cfg=$(cat "$D/$u.config")
    log=$(logfile "$cfg")
    lines=0
    [ -f "$log" ] && lines=$(wc -l <"$log")
    rm -f "$D/$u.failed" "$D/$u.stderr"
    setsid redis-server "$cfg" --daemonize no --supervised no --pidfile "$D/$u.redis.pid" \
        </dev/null >"$D/$u.stderr" 2>&1 &
    echo $! >"$D/$u.pid"
    i=0
    while [ "$i" -lt 100 ]; do
        if ! running "$u"; then
            note "$u" "$(cat "$D/$u.stderr")"
            note "$u" "$u.service: Failed with result 'exit-code'."
            rm -f "$D/$u.pid"
            touch "$D/$u.failed"
            return 1
        fi
        if [ -f "$log" ] && tail -n +"$((lines + 1))" "$log" | grep -q 'Ready to accept connections'; then
            note "$u" "Started $u.service."
            return 0
        fi
        i=$((i + 1))
        sleep 0.05
    done
    return 0
}
stop() {
    u=$1
    rm -f "$D/$u.active"
    running "$u" || { rm -f "$D/$u.pid"; return 0; }
    pid=$(cat "$D/$u.pid")
    kill "$pid"
    i=0
    while alive "$pid" && [ "$i" -lt 200 ]; do
        i=$((i + 1))
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null
    rm -f "$D/$u.pid"
    note "$u" "Stopped $u.service."
}
state() {
    if running "$1" || [ -f "$D/$1.active" ]; then echo active
    elif [ -f "$D/$1.failed" ]; then echo failed
    else echo inactive
    fi
}

case $action in
start) start "$1" ;;
stop) stop "$1" ;;
restart)
    [ -f "$D/$1.fail" ] && exit 1
    stop "$1"
    start "$1"
    ;;
try-restart)
    [ -f "$D/$1.fail" ] && exit 1
    if [ "$(state "$1")" = active ]; then stop "$1" && start "$1"; fi
    ;;
is-active)
    s=$(state "$1")
    echo "$s"
    [ "$s" = active ]
    ;;
is-failed)
    s=$(state "$1")
    echo "$s"
    [ "$s" = failed ]
    ;;
is-enabled)
    if [ -f "$D/$1.enabled" ]; then echo enabled; else echo disabled; exit 1; fi
    ;;
enable) touch "$D/$1.enabled" ;;
disable) rm -f "$D/$1.enabled" ;;
reset-failed) rm -f "$D/$1.failed" ;;
daemon-reload) ;;
show)
    first=1
    for u in "$@"; do
        [ "$first" = 1 ] || echo
        first=0
        load=not-found
        { [ -f "$D/$u.config" ] || [ -f "$D/$u.unit" ]; } && load=loaded
        enabled=disabled
        [ -f "$D/$u.enabled" ] && enabled=enabled
        [ "$load" = loaded ] || enabled=''
        printf 'LoadState=%s\nActiveState=%s\nUnitFileState=%s\n' "$load" "$(state "$u")" "$enabled"
    done
    ;;
journal)
    since=$(date -d "$2" +%s)
    [ -f "$D/$1.journal" ] || exit 0
    awk -v since="$since" '{ p = index($0, "|"); if (substr($0, 1, p - 1) + 0 >= since) print substr($0, p + 1) }' \
        "$D/$1.journal"
    ;;
*)
    echo "fake-systemctl: unknown action $action" >&2
    exit 2
    ;;
esac
