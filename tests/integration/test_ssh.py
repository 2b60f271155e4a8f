"""The production path: pyinfra's SSH connector as a non-root user with sudo (key auth,
port 22 published on 127.0.0.1). The whole deploy converges and verifies, and no file
holding the password is world-readable at any moment of the run (a watcher on the host
scans the places uploads could land every 0.1 s while the deploy runs)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.hosts import fleet

from .conftest import Host, assert_converged

PASSWORD = "hsiSshTestPassword0123456789abcdef"  # given through REDIS_PASSWORD, as an operator would
WATCHED = "/tmp /var/tmp /home/hsi /etc/redis /etc/hsi-redis /opt/hsi /root"
WATCHER = (
    "touch /run/hsi-watch-started; end=$(( $(date +%s) + 240 )); "
    "while [ ! -e /run/hsi-watch-stop ] && [ $(date +%s) -lt $end ]; do "
    f"find {WATCHED} -xdev -type f -perm -004 -print0 2>/dev/null "
    "| xargs -0 -r grep -lF -f /run/hsi-pw 2>/dev/null >> /run/hsi-watch-hits; sleep 0.1; done; "
    "touch /run/hsi-watch-done"
)


@dataclass(frozen=True)
class SshHost(Host):
    """A test host inventoried by address, as a production host is."""

    @property
    def inventory_name(self) -> str:
        return "127.0.0.1"


def _key_pair(directory) -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    path = directory / "id_ed25519"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    os.chmod(path, 0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return str(path), public.decode()


def test_ssh_sudo_host_converges_without_exposing_secrets(host_factory, run_pyinfra, tmp_path):
    started = host_factory("ssh", ssh=True, publish=(22,))
    host = SshHost(started.container)
    key_path, public = _key_pair(tmp_path)
    host.sh("cat > /home/hsi/.ssh/authorized_keys && chown hsi:hsi /home/hsi/.ssh/authorized_keys "
            "&& chmod 600 /home/hsi/.ssh/authorized_keys && systemctl start ssh", stdin=public + "\n")
    data = {
        "ssh_port": fleet.published_port(host.container, 22),
        "ssh_user": "hsi",
        "ssh_key": key_path,
        "ssh_known_hosts_file": str(tmp_path / "known_hosts"),
        "ssh_strict_host_key_checking": "off",
        "_sudo": True,
    }
    host.sh("umask 077; cat > /run/hsi-pw", stdin=PASSWORD + "\n")
    subprocess.run(["docker", "exec", "-d", host.container, "sh", "-c", WATCHER], check=True)
    host.sh("for i in $(seq 50); do [ -e /run/hsi-watch-started ] && exit 0; sleep 0.1; done; exit 1")
    # the watcher sees a world-readable secret: plant one, wait for the hit, then start clean
    host.sh("cp /run/hsi-pw /tmp/planted && chmod 644 /tmp/planted && for i in $(seq 50); do "
            "grep -q /tmp/planted /run/hsi-watch-hits 2>/dev/null && exit 0; sleep 0.1; done; exit 1")
    host.sh("rm /tmp/planted && sleep 0.3 && : > /run/hsi-watch-hits")

    result = run_pyinfra({host: data}, env={"REDIS_PASSWORD": PASSWORD})
    host.sh("touch /run/hsi-watch-stop; for i in $(seq 100); do [ -e /run/hsi-watch-done ] && exit 0; "
            "sleep 0.1; done; exit 1")

    assert result.returncode == 0, result.output
    entry = result.host(host)
    assert entry["status"] == "ok" and entry["platform"] == "debian-12", entry
    # secret files: root only (redis.conf readable by the server's group, never by others)
    assert_converged(host, PASSWORD)
    assert host.stat("/etc/hsi-redis/last-good/redis.conf") == "600 root root"
    # ... and never world-readable anywhere during the run, nor left in a temporary directory
    assert host.sh("cat /run/hsi-watch-hits 2>/dev/null || true").stdout.strip() == ""
    leftovers = host.sh("grep -rlF -f /run/hsi-pw /tmp /var/tmp /home/hsi 2>/dev/null || true").stdout
    assert leftovers.strip() == ""
    assert PASSWORD not in result.output
    assert PASSWORD not in host.sh("ps -eo args").stdout

    again = run_pyinfra({host: data}, env={"REDIS_PASSWORD": PASSWORD})
    assert again.returncode == 0 and again.host(host)["changes"] == 0, again.output
