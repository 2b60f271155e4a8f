"""rotate.py at command level: the same host view as deploy.py, TLS-only servers, and the old
password kept while a consumer of it cannot be restarted by the run (issue 9, item 12)."""

from __future__ import annotations

import hashlib

import pytest

from operations import certs

from .harness import HEALTHY_SERVER, PASSWORD, HostFixture, make_signing_key, run_deploy

NOTICE = "/etc/hsi-redis/rotation-notice"
ENV = "/opt/hsi/backend/.env"
EXPORTER_ENV = "/etc/default/prometheus-redis-exporter"
TLS_SERVER = dict(HEALTHY_SERVER, via="tls", tls_port="6380")


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    path, fingerprint = make_signing_key(tmp_path_factory.mktemp("key"))
    return {"redis_source": "upstream", "redis_upstream_key": str(path),
            "redis_upstream_key_fingerprint": fingerprint}


def script(result, host: str, operation: str) -> str:
    """The one command the operation whose name contains `operation` sent."""
    found = [c.text for c in result.commands[host] if operation in c.operation]
    assert len(found) == 1, (operation, result.operations(host))
    return found[0]


def sent(result, host: str, operation: str) -> bool:
    return any(operation in c.operation for c in result.commands[host])


def notice_content(password: str = PASSWORD) -> str:
    return hashlib.sha256(password.encode()).hexdigest() + "\n"


@pytest.mark.parametrize("release", ["rocky-8", "ubuntu-22.04"])
def test_rotate_sees_the_upstream_row_like_deploy(key, release):
    """An upstream host's config is where upstream's package keeps it: rotate.py takes the package
    source step too, or it would write the distro's config (/etc/redis.conf on EL8, Ubuntu 22.04's
    other bind line) and the next deploy would restart the server."""
    deployed = run_deploy({"h": (HostFixture(release), key)})
    rotated = run_deploy({"h": (HostFixture(release), dict(key, redis_backend_unit="hsi-backend"))},
                         entry="rotate.py")
    config = "/etc/redis/redis.conf"
    assert not any("/etc/redis.conf" in t for t in rotated.texts("h"))
    assert rotated.uploaded("h", config) == deployed.uploaded("h", config)
    assert rotated.report["h"]["source"] == "upstream"


def _tls_data(directory, **extra) -> dict:
    paths = certs.pki_layout(directory, "@fake/h")
    certs.ensure_pki(directory, {"@fake/h": ["localhost"]})
    return {"redis_tls": True, "redis_tls_only": True, "redis_tls_ca_cert": str(paths.ca),
            "redis_tls_cert": str(paths.cert), "redis_tls_key": str(paths.key),
            "redis_tls_client_cert": str(paths.client_cert), "redis_tls_client_key": str(paths.client_key),
            "redis_backend_unit": "hsi-backend", **extra}


def test_rotate_reaches_a_tls_only_server_over_tls(tmp_path):
    result = run_deploy({"h": (HostFixture("debian-12", server=TLS_SERVER), _tls_data(tmp_path / "pki"))},
                        entry="rotate.py")
    assert result.report["h"]["status"] == "ok", result.report["h"]
    for operation in ("Add the new password", "drop the old password"):
        text = script(result, "h", operation)
        assert "port=6380\n" in text and "6379" not in text, operation
        assert "--tls --cacert /etc/redis/tls/ca.crt" in text
        assert "--cert /etc/hsi-redis/tls/client.crt --key /etc/hsi-redis/tls/client.key" in text


def test_without_a_backend_unit_the_old_password_stays_and_the_summary_says_what_to_restart():
    first = run_deploy({"h": (HostFixture("debian-12"), {})}, entry="rotate.py")
    assert not sent(first, "h", "drop the old password"), first.operations("h")
    assert first.uploaded("h", NOTICE) == notice_content()
    warnings = first.report["h"]["warnings"]
    assert any(ENV in w and "Restart" in w and "rotate.py again" in w for w in warnings), warnings
    assert first.report["h"]["status"] == "ok"
    # The second run: the .env already holds the new password and the notice is there: drop.
    second = run_deploy({"h": (HostFixture("debian-12"), {})}, entry="rotate.py",
                        files={"h": {NOTICE: (notice_content(), 0o600)}})
    drop = script(second, "h", "drop the old password")
    assert "resetpass" in drop and "systemctl" not in drop
    assert not any("rotate.py again" in w for w in second.report["h"].get("warnings", []))


def test_consumers_with_units_are_restarted_before_the_drop_in_one_run():
    data = {"redis_backend_unit": "hsi-backend", "redis_exporter_env_path": EXPORTER_ENV,
            "redis_exporter_unit": "prometheus-redis-exporter"}
    result = run_deploy({"h": (HostFixture("debian-12"), data)}, entry="rotate.py")
    drop = script(result, "h", "drop the old password")
    backend = drop.index("systemctl try-restart hsi-backend.service")
    exporter = drop.index("systemctl try-restart prometheus-redis-exporter.service")
    assert max(backend, exporter) < drop.index("resetpass")
    assert not sent(result, "h", NOTICE)
    assert not any("rotate.py again" in w for w in result.report["h"].get("warnings", []))


def test_an_exporter_without_a_unit_keeps_the_old_password_too():
    data = {"redis_backend_unit": "hsi-backend", "redis_exporter_env_path": EXPORTER_ENV}
    result = run_deploy({"h": (HostFixture("debian-12"), data)}, entry="rotate.py")
    assert not sent(result, "h", "drop the old password")
    warning = next(w for w in result.report["h"]["warnings"] if "rotate.py again" in w)
    assert EXPORTER_ENV in warning and "redis_exporter_unit" in warning
    assert ENV not in warning, "the backend is restarted by its unit"
