"""What the operator reads at the end of a run (simulated hosts): drift between the running server and
redis.conf as a warning with the fix, and where each host's clients connect."""

from __future__ import annotations

from operations import pki

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


def test_the_report_says_where_the_backend_connects_and_where_its_password_is(tmp_path):
    result = run_flow({"deb": (fresh_host("debian-12"), {"redis_password": None})})
    connect = result.report["deb"]["connect"]
    store = tmp_path / "secrets" / "_fake_deb" / "redis_password"
    assert connect == {"redis_url": "redis://localhost:6379/0", "ca": None,
                       "password": f"REDIS_PASSWORD in /opt/hsi/backend/.env, kept on the control machine in {store}"}
    assert store.read_text().strip() not in str(result.report["deb"])


def test_with_tls_the_url_and_the_backends_ca_copy(tmp_path, monkeypatch):
    pki.ensure_pki(pki.pki_dir(), {"@fake/deb": ["localhost", "127.0.0.1"]})
    monkeypatch.setenv("REDIS_PASSWORD", "from-the-operators-environment-0123")
    result = run_flow({"deb": (fresh_host("debian-12"), {"redis_tls": True, "redis_tls_only": True})})
    connect = result.report["deb"]["connect"]
    ca = "/opt/hsi/backend/redis-tls/ca.crt"
    assert connect["redis_url"] == f"rediss://localhost:6380/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    assert connect["ca"] == ca
    assert connect["password"] == ("REDIS_PASSWORD in /opt/hsi/backend/.env, from REDIS_PASSWORD in the operator's "
                                   "environment (the deploy keeps no copy)")


def test_without_a_backend_env_the_summary_says_the_password_is_not_on_the_host():
    result = run_flow({"deb": (fresh_host("debian-12"), {"redis_backend_env_path": ""})})
    connect = result.report["deb"]["connect"]
    assert connect["redis_url"] == "redis://localhost:6379/0"
    assert connect["password"] == ("not written on the host (redis_backend_env_path is empty), from the inventory's "
                                   "redis_password")
