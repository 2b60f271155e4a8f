"""Restarts at command level: every file the server reads travels flagged `restart` (the program records
a pending restart before writing one and restarts once: tests/program/test_apply.py), the deploy's own
credentials do not, and a restart still pending from an interrupted run happens even when no file
changes in this run."""

from __future__ import annotations

from operations import pki, rows

from .harness import fresh_host, healthy_server, run_flow

PLAT = rows.TABLE[("debian", "12")]["redis"]


def test_every_file_the_server_reads_is_flagged_restart():
    pki.ensure_pki(pki.pki_dir(), {"@fake/deb": ["localhost"]})
    server = healthy_server(tls_port=6380, tls_ping="PONG", tls_nocert="NOAUTH Authentication required.",
                            plain_ping="NOAUTH Authentication required.")
    result = run_flow({"deb": (fresh_host("debian-12", container="docker", server=server), {"redis_tls": True})})
    # the container drop-in is written before the package (which starts the service)
    dropin = result.call("deb", "install").entry(PLAT.dropin_path)
    assert "restart" in dropin.flags and "unit" in dropin.flags
    apply = result.call("deb", "apply")
    for path in ("/etc/redis/tls-ca.crt", "/etc/redis/tls-server.crt", "/etc/redis/tls-server.key",
                 PLAT.config_path):
        assert apply.entry(path).flags == ("restart",), path
    # the deploy's own credentials are not read by the server: no restart for them
    for path in ("/etc/hsi-redis/cli.auth", "/etc/hsi-redis/backend.auth"):
        assert "restart" not in apply.entry(path).flags, path
    assert result.report["deb"]["status"] == "ok", result.report["deb"]


def test_a_pending_restart_happens_though_no_file_changes_now():
    host = fresh_host("debian-12")
    run_flow({"deb": (host, {})})  # converged: redis.conf already as the deploy wants it
    host.restart_pending = True     # an earlier run wrote a file the server reads, then stopped
    owed = run_flow({"deb": (host, {})})
    (call,) = owed.calls["deb"]
    assert call.verb == "apply" and call.entries == (), "nothing the server reads changed"
    assert call.option("service") == PLAT.service and call.option("config") == PLAT.config_path
    assert owed.report["deb"]["status"] == "ok"
    settled = run_flow({"deb": (host, {})})
    assert settled.calls["deb"] == [] and len(settled.requests["deb"]) == 1
