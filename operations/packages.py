"""Package-manager contention: wait for another apt/dnf run to finish instead of failing.

`apt-get install` waits for the dpkg lock by itself (`-o DPkg::Lock::Timeout=N`), but
`apt-get update` ignores that option for the lists lock (verified on Debian 12: it fails at
once with "Could not get lock /var/lib/apt/lists/lock. It is held by process N"). The
update here therefore retries, bounded, and says who holds the lock while it waits.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.facts.files import File
from pyinfra.facts.server import Date

# The file apt touches on update (pyinfra's apt.update uses the same for cache_time).
APT_UPDATE_STAMP = "/var/lib/apt/periodic/update-success-stamp"
RETRY_SECONDS = 3


def apt_update_script(lock_timeout: int) -> str:
    """Shell: `apt-get update`, retried every few seconds for up to `lock_timeout` s while a lock is held."""
    tries = max(1, int(lock_timeout) // RETRY_SECONDS)
    return f"""
i=0
while :; do
  out=$(DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout={int(lock_timeout)} update 2>&1) && break
  case "$out" in *"Could not get lock"*|*"Unable to lock"*) ;; *) printf '%s\\n' "$out" >&2; exit 1;; esac
  i=$((i+1))
  if [ "$i" -ge {tries} ]; then
    printf '%s\\n' "$out" | grep -m1 'Could not get lock' >&2
    echo "hsi-redis: the apt lists lock stayed held for {int(lock_timeout)} s (another apt run?); try again later" >&2
    exit 1
  fi
  echo "waiting for the apt lock: $(printf '%s' "$out" | grep -m1 -o 'held by process.*')"
  sleep {RETRY_SECONDS}
done
mkdir -p {APT_UPDATE_STAMP.rsplit('/', 1)[0]} && touch {APT_UPDATE_STAMP}
""".strip()


@operation()
def apt_update(cache_time: int = 3600, lock_timeout: int = 300):
    """
    Update apt's lists unless updated within `cache_time` seconds; wait out a held lock.

    + cache_time: skip when the last update is younger than this (seconds)
    + lock_timeout: how long to keep retrying while another process holds apt's lock

    **Example:**

    .. code:: python

        apt_update(name="Update apt lists", cache_time=3600, lock_timeout=300)
    """
    stamp = host.get_fact(File, path=APT_UPDATE_STAMP)
    if stamp and stamp.get("mtime"):
        # as pyinfra's apt.update: compare in the host's clock, both read as UTC
        now = datetime.fromtimestamp(host.get_fact(Date).timestamp(), UTC).replace(tzinfo=None)
        if stamp["mtime"] > now - timedelta(seconds=cache_time):
            host.noop("apt lists are fresh")
            return
    yield StringCommand(apt_update_script(lock_timeout))
