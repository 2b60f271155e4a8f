"""What the operator reads at the end of a run (simulated hosts): drift between the running server and
redis.conf as a warning with the fix."""

from __future__ import annotations

from .harness import fresh_host, healthy_server, run_flow

RUNNING_CONFIG = {"maxmemory": "104857600", "maxmemory-policy": "noeviction", "appendonly": "yes",
                  "appendfsync": "everysec"}


def test_a_setting_changed_at_run_time_is_a_warning_of_a_healthy_host():
    server = healthy_server(conf={**RUNNING_CONFIG, "maxmemory": "524288000"})  # CONFIG SET maxmemory 500mb
    result = run_flow({"deb": (fresh_host("debian-12", server=server), {})}, entry="verify.py")
    warnings = result.report["deb"].get("warnings", [])
    assert [w for w in warnings if w.startswith("drift: ")] == [
        w for w in warnings if "maxmemory 524288000, redis.conf says 100mb" in w], warnings
    assert any("CONFIG SET maxmemory 100mb" in w for w in warnings)


def test_a_server_that_runs_its_config_has_no_drift_warning():
    server = healthy_server(conf=RUNNING_CONFIG)
    result = run_flow({"deb": (fresh_host("debian-12", server=server), {})}, entry="verify.py")
    assert not [w for w in result.report["deb"].get("warnings", []) if w.startswith("drift")]
