#!/bin/sh
# Make sure a Docker engine answers; install and start one when it does not.
#   scripts/docker-engine.sh start   -> prints "started" when this call started dockerd
#   scripts/docker-engine.sh stop    -> stops the dockerd that `start` started (pid file)
# Debian's docker.io is used (no registry is needed: test images are built locally).
set -eu
PIDFILE=${HSI_REDIS_DOCKERD_PIDFILE:-/tmp/hsi-redis-dockerd.pid}

# Every systemd test host takes about 7 inotify instances, all counted against root; the kernel's
# default of 128 stops the 19th host: its systemd exits at once (status 255, no output).
INOTIFY_INSTANCES=1024
inotify_room() {
    have=$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 0)
    [ "$have" -ge "$INOTIFY_INSTANCES" ] && return 0
    if ! sysctl -q -w "fs.inotify.max_user_instances=$INOTIFY_INSTANCES" 2>/dev/null; then
        echo "[engine] fs.inotify.max_user_instances is $have: more than about $((have / 7)) test hosts at once" \
             "will not start (as root: sysctl -w fs.inotify.max_user_instances=$INOTIFY_INSTANCES)" >&2
    fi
}

case "${1:-start}" in
start)
    inotify_room
    if docker info >/dev/null 2>&1; then exit 0; fi
    if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
        if [ "$(id -u)" != 0 ]; then
            echo "Docker engine missing: install docker.io and debootstrap (needs root)" >&2; exit 1
        fi
        echo "[engine] installing docker.io and debootstrap" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
    fi
    echo "[engine] starting dockerd" >&2
    nohup dockerd >/tmp/hsi-redis-dockerd.log 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 60); do
        if docker info >/dev/null 2>&1; then echo started; exit 0; fi
        sleep 1
    done
    echo "dockerd did not come up; see /tmp/hsi-redis-dockerd.log" >&2
    exit 1
    ;;
stop)
    [ -f "$PIDFILE" ] || exit 0
    pid=$(cat "$PIDFILE")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    rm -f "$PIDFILE"
    ;;
*)
    echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
