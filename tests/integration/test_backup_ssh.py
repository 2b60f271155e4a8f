"""backup.py and restore.py over the production path: pyinfra's SSH connector as a non-root user with
sudo. The data streams through the sudo'd command's stdout/stdin (pyinfra's own get_file would copy it
into /tmp readable by everyone); a watcher on the host scans every place a copy could land, every 0.1 s
while both run, for a world-readable file holding a value only the dataset holds."""

from __future__ import annotations

import json
import secrets
import stat
import subprocess
from pathlib import Path

from tests.hosts import fleet

from .conftest import make_runner
from .test_backup import admin
from .test_ssh import SshHost, _key_pair

MARKER = "hsi-ssh-backup-marker-51c2e8"
WATCHED = "/tmp /var/tmp /home/hsi /var/lib/hsi-redis /var/lib/redis /etc/hsi-redis /root"
WATCHER = (
    "touch /run/hsi-watch-started; end=$(( $(date +%s) + 400 )); "
    "while [ ! -e /run/hsi-watch-stop ] && [ $(date +%s) -lt $end ]; do "
    f"find {WATCHED} -xdev -type f -perm -004 -print0 2>/dev/null "
    f"| xargs -0 -r grep -laF {MARKER} 2>/dev/null >> /run/hsi-watch-hits; sleep 0.1; done; "
    "touch /run/hsi-watch-done"
)


def test_backup_and_restore_over_ssh_with_sudo_leave_nothing_readable(host_factory, tmp_path_factory, tmp_path):
    started = host_factory("bk-ssh", ssh=True, publish=(22,))
    host = SshHost(started.container)
    key_path, public = _key_pair(tmp_path)
    host.sh("cat > /home/hsi/.ssh/authorized_keys && chown hsi:hsi /home/hsi/.ssh/authorized_keys "
            "&& chmod 600 /home/hsi/.ssh/authorized_keys && systemctl start ssh", stdin=public + "\n")
    store = tmp_path / "backups"
    data = {"ssh_port": fleet.published_port(host.container, 22), "ssh_user": "hsi", "ssh_key": key_path,
            "ssh_known_hosts_file": str(tmp_path / "known_hosts"), "ssh_strict_host_key_checking": "off",
            "_sudo": True, "redis_backup_dir": str(store), "redis_backend_env_path": ""}
    runner = make_runner(tmp_path_factory)
    assert runner({host: data}).returncode == 0
    # a dataset of several chunks of the stream (random: RDB compression cannot shrink it), the marker inside
    admin(host, stdin=f"SET marker {MARKER}\n" + "".join(f"SET k{i} {secrets.token_hex(1500)}\n" for i in range(2000)))
    subprocess.run(["docker", "exec", "-d", host.container, "sh", "-c", WATCHER], check=True)
    host.sh("for i in $(seq 50); do [ -e /run/hsi-watch-started ] && exit 0; sleep 0.1; done; exit 1")

    backup = runner({host: data}, entry="backup.py")
    assert backup.returncode == 0, backup.output
    directory = Path(backup.host(host)["backup"])
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["keys"] == 2001 and manifest["size"] > 4 << 20
    assert stat.S_IMODE((directory / "dump.rdb").stat().st_mode) == 0o600
    assert admin(host, "flushall") == "OK"
    restored = runner({host: data}, entry="restore.py",
                      args=("--data", f"restore_from={directory}", "--data", "restore_confirm=127.0.0.1"))
    host.sh("touch /run/hsi-watch-stop; for i in $(seq 100); do [ -e /run/hsi-watch-done ] && exit 0; "
            "sleep 0.1; done; exit 1")
    assert restored.returncode == 0, restored.output
    assert admin(host, "dbsize") == "2001" and admin(host, "get", "marker") == MARKER
    assert host.sh("cat /run/hsi-watch-hits 2>/dev/null || true").stdout.strip() == ""
    # nothing left where pyinfra's own transfers would have put it
    assert host.sh(f"grep -rlaF {MARKER} /tmp /var/tmp /home/hsi 2>/dev/null || true").stdout.strip() == ""
    assert host.sh("ls -A /var/lib/hsi-redis/outgoing; ls -A /var/lib/hsi-redis | grep incoming || true").stdout \
        .strip() == ""
