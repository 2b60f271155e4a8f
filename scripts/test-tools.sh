#!/bin/sh
# Make sure the tools the host program's tests run are here (tests/program: no Docker needed):
# the ShellCheck linter (every .sh file must pass `shellcheck -s sh`) and a local redis-server, redis-cli.
# Debian's packages are installed when missing (needs root), as scripts/docker-engine.sh does for docker.io.
set -eu
missing=''
command -v shellcheck >/dev/null 2>&1 || missing="$missing shellcheck"
{ command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; } || missing="$missing redis-server"
[ -n "$missing" ] || exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing test tools:$missing (install them: Debian/Ubuntu package names as listed)" >&2
    exit 1
fi
echo "[tools] installing$missing" >&2
apt-get update -qq
# policy-rc.d-free machines start the packaged redis-server on 6379; the tests use their own servers and ports
# shellcheck disable=SC2086 # one word per package
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
