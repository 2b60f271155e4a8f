"""rotate.py at command level (issue 9 item 12): the host seen as deploy.py sees it (one prologue: platform
row and package source), TLS-only servers, and the old password kept while a consumer of it cannot be
restarted by the run. Such a run leaves a notice on the host (the program writes it); the next run's
state read sees it, and with the consumers' files already holding the new password, drops the old one."""

from __future__ import annotations

import hashlib

import pytest

from operations import configure, credentials, pki, prologue, rows
from operations.rows import TABLE
from operations.target import resolve
from operations.validation import parse

from .harness import PASSWORD, HostFixture, healthy_server, make_signing_key, run_flow

NOTICE = "/etc/hsi-redis/rotation-notice"
ENV = "/opt/hsi/backend/.env"
EXPORTER_ENV = "/etc/default/prometheus-redis-exporter"


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    path, fingerprint = make_signing_key(tmp_path_factory.mktemp("key"))
    return {"redis_source": "upstream", "redis_upstream_key": str(path),
            "redis_upstream_key_fingerprint": fingerprint}


def notice_content(password: str = PASSWORD) -> bytes:
    return hashlib.sha256(password.encode()).hexdigest().encode() + b"\n"


def warnings(result, host: str = "h") -> list[str]:
    return result.report[host].get("warnings", [])


def held_back(result, host: str = "h") -> list[str]:
    return [w for w in warnings(result, host) if "rotation not finished" in w]


def rendered_config(release: str, data: dict, upstream: bool) -> tuple[str, str]:
    """(path, content) of redis.conf as the deploy renders it for the release's distro or upstream row."""
    settings, problems = parse("@fake/h", {"redis_password": PASSWORD, **data})
    assert not problems, problems
    row = TABLE[RELEASES[release]]["redis"]
    row = rows.upstream(row) if upstream else row
    target = resolve(settings, row, prologue.admin_password(settings.host_name))
    [entry] = [e for e in configure.server_entries(target) if e.path == row.config_path]
    return entry.path, entry.content.decode()


RELEASES = {"rocky-8": ("el", "8"), "ubuntu-22.04": ("ubuntu", "22.04")}


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_rotate_sees_the_upstream_row_like_deploy(key, release):
    """An upstream host's config is where upstream's package keeps it: rotate.py takes the package
    source step too, or it would write the distro's config (/etc/redis.conf on EL8, Ubuntu 22.04's
    other bind line) and the next deploy would restart the server."""
    data = dict(key, redis_backend_unit="hsi-backend")
    rotated = run_flow({"h": (HostFixture(release), data)}, entry="rotate.py")
    assert rotated.report["h"]["source"] == "upstream" and rotated.report["h"]["status"] == "ok"
    rotate = rotated.call("h", "rotate")
    deployed = run_flow({"h": (HostFixture(release), data)})
    path, content = rendered_config(release, data, upstream=True)
    assert deployed.call("h", "apply").entry(path).content == content
    assert rotate.option("config") == path == "/etc/redis/redis.conf" and "/etc/redis.conf" not in rotate.paths()
    assert rotate.entry(path).content == content != rendered_config(release, data, upstream=False)[1]


def test_rotate_on_a_tls_only_server_keeps_it_tls_only(tmp_path):
    """The program reaches the server where it is (tests/program: rotation over TLS with the client pair);
    the rotation's config keeps the plain port closed and the TLS one, the deploy's client pair in place."""
    directory = tmp_path / "pki"
    paths = pki.pki_layout(directory, "@fake/h")
    pki.ensure_pki(directory, {"@fake/h": ["localhost"]})
    data = {"redis_tls": True, "redis_tls_only": True, "redis_tls_ca_cert": str(paths.ca),
            "redis_tls_cert": str(paths.cert), "redis_tls_key": str(paths.key),
            "redis_tls_client_cert": str(paths.client_cert), "redis_tls_client_key": str(paths.client_key),
            "redis_backend_unit": "hsi-backend"}
    server = healthy_server(via="tls", port=0, tls_port=6380, tls_ping="PONG", plain_ping="")
    result = run_flow({"h": (HostFixture("debian-12", server=server), data)}, entry="rotate.py")
    assert result.report["h"]["status"] == "ok", result.report["h"]
    rotate = result.call("h", "rotate")
    config = rotate.entry("/etc/redis/redis.conf").content
    assert "\nport 0\n" in config and "\ntls-port 6380\n" in config
    assert rotate.option("drop") == "1" and rotate.option("restart-units") == "hsi-backend.service"
    assert "REDIS_URL=rediss://" in rotate.entry(ENV).content


def test_without_a_backend_unit_the_old_password_stays_and_a_second_run_drops_it():
    fixture = HostFixture("debian-12")
    first = run_flow({"h": (fixture, {})}, entry="rotate.py")
    rotate = first.call("h", "rotate")
    assert rotate.option("drop") == "0" and rotate.option("restart-units") is None
    assert rotate.password == PASSWORD and ENV in rotate.paths()
    [warning] = held_back(first)
    assert ENV in warning and "Restart it" in warning and "run rotate.py again" in warning
    assert "redis_backend_unit" in warning and first.report["h"]["status"] == "ok"
    assert NOTICE in first.requests["h"][0].files  # the read asks for the notice
    # the program left its notice (kept_old); the .env holds the new password now (the first run's merge)
    fixture.files[NOTICE] = (notice_content(), 0o600, "root", "root")
    second = run_flow({"h": (fixture, {})}, entry="rotate.py")
    assert second.call("h", "rotate").option("drop") == "1"
    assert held_back(second) == [] and second.report["h"]["status"] == "ok"


def test_the_old_password_stays_until_the_operator_was_told_for_this_password():
    """The .env already holds the new password (a run stopped before its notice, or a notice for another
    password): nobody was told to restart the backend, so the old password stays and the summary says so."""
    env_lines = {"REDIS_URL": "REDIS_URL=redis://127.0.0.1:6379/0", "REDIS_PASSWORD": f"REDIS_PASSWORD='{PASSWORD}'"}
    for files in ({}, {NOTICE: (notice_content("an-older-rotation-password"), 0o600, "root", "root")}):
        fixture = HostFixture("debian-12", files=dict(files), envs={ENV: (env_lines, 0o600, "root", "root")})
        result = run_flow({"h": (fixture, {})}, entry="rotate.py")
        assert result.call("h", "rotate").option("drop") == "0", files
        assert len(held_back(result)) == 1


def test_consumers_with_units_are_restarted_before_the_drop_in_one_run():
    # the exporter (redis_exporter: true) logs in as its own user: no consumer of this password
    data = {"redis_backend_unit": "hsi-backend", "redis_exporter": True}
    result = run_flow({"h": (HostFixture("debian-12"), data)}, entry="rotate.py")
    rotate = result.call("h", "rotate")
    # the program restarts these (try-restart) after writing the files and before the drop
    assert rotate.option("restart-units") == "hsi-backend.service"
    assert rotate.option("drop") == "1" and ENV in rotate.paths() and EXPORTER_ENV not in rotate.paths()
    assert held_back(result) == []


def test_a_generated_password_stays_pending_until_the_old_one_is_dropped():
    data = {"redis_password": None}
    fixture = HostFixture("debian-12")
    current = credentials.generated_password("@fake/h").reveal()
    store = credentials.secret_path("@fake/h")
    pending = store.with_name(store.name + credentials.PENDING_SUFFIX)
    first = run_flow({"h": (fixture, data)}, entry="rotate.py")
    new = first.call("h", "rotate").password
    assert new != current and pending.read_text().strip() == new and store.read_text().strip() == current
    assert current not in str(first.report) and new not in str(first.report)
    fixture.files[NOTICE] = (notice_content(new), 0o600, "root", "root")
    second = run_flow({"h": (fixture, data)}, entry="rotate.py")
    assert second.call("h", "rotate").password == new and second.call("h", "rotate").option("drop") == "1"
    assert not pending.exists() and store.read_text().strip() == new
