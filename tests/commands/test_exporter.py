"""`redis_exporter: true` at command level: the distro's package in the install call (its EnvironmentFile
before it, so its first start listens on loopback), the file, TLS files and unit in the apply call with
the exporter's own identity, verification on its `redis_up`, rotation leaving it alone, and the RPM family
refusing the setting before anything changes."""

from __future__ import annotations

import hashlib

import pytest

from operations import acl, credentials, pki
from operations.hoststate import Unit

from .harness import PASSWORD, fresh_host, run_flow

ENV = "/etc/default/prometheus-redis-exporter"
UNIT = "prometheus-redis-exporter"
DATA = {"redis_exporter": True}


def lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def exporter_password() -> str:
    return credentials.generated_password("@fake/deb", "exporter_password").reveal()


@pytest.mark.parametrize("release", ["debian-12", "debian-13", "ubuntu-24.04"])
def test_a_fresh_host_gets_the_package_its_file_and_its_own_user(release):
    host = fresh_host(release)
    result = run_flow({"deb": (host, DATA)})
    assert result.report["deb"]["status"] == "ok", result.report["deb"]
    install = result.call("deb", "install")
    assert install.option("packages").split()[-1] == "prometheus-redis-exporter"
    before = install.entry(ENV)  # before the package: its first start reads it (root's: no group yet)
    assert (before.mode, before.user, before.group) == ("640", "root", "root")
    assert lines(before.content)["REDIS_EXPORTER_WEB_LISTEN_ADDRESS"] == "127.0.0.1:9121"
    apply = result.call("deb", "apply")
    assert apply.option("after-units") == UNIT and apply.option("metrics") == "127.0.0.1:9121"
    env = apply.entry(ENV)
    assert (env.mode, env.user, env.group, env.flags) == ("640", "root", "prometheus", ("after", "units"))
    values = lines(env.content)
    password = exporter_password()
    assert values["REDIS_USER"] == "hsi-exporter" and values["REDIS_PASSWORD"] == password
    assert values["REDIS_ADDR"] == "redis://127.0.0.1:6379" and values["REDIS_EXPORTER_CONFIG_COMMAND"] == "-"
    assert PASSWORD not in env.content and not any("TLS" in key for key in values)
    config = apply.entry("/etc/redis/redis.conf").content
    rule = f"user hsi-exporter on #{hashlib.sha256(password.encode()).hexdigest()} resetkeys -@all +info +ping"
    assert f"\n{rule} +client|setname +slowlog|get +slowlog|len +latency|latest +latency|histogram\n" in config
    assert result.report["deb"]["exporter"] == {"metrics": "http://127.0.0.1:9121/metrics", "redis_up": "1"}
    assert password not in str(result.report["deb"]) and password not in "\n".join(result.other["deb"])
    rerun = run_flow({"deb": (host, DATA)})
    assert rerun.calls["deb"] == [] and rerun.report["deb"]["status"] == "ok"


def test_the_user_line_needs_no_subcommand_denial_so_every_row_takes_it():
    assert acl.exporter_user_rule("p").split()[4:] == [
        "resetkeys", "-@all", "+info", "+ping", "+client|setname", "+slowlog|get", "+slowlog|len",
        "+latency|latest", "+latency|histogram"]
    assert "config" not in acl.exporter_user_rule("p"), "CONFIG GET * answers requirepass: the backend's password"


def test_a_stopped_exporter_is_started_and_nothing_else_sent():
    host = fresh_host("debian-12")
    run_flow({"deb": (host, DATA)})
    host.units[UNIT] = Unit("loaded", "failed", "enabled")
    result = run_flow({"deb": (host, DATA)})
    assert result.verbs("deb") == ["apply"]
    apply = result.call("deb", "apply")
    assert apply.entries == () and apply.option("after-units") == UNIT and not apply.flag("enable")


def test_another_listen_address_rewrites_the_file_which_restarts_it():
    host = fresh_host("debian-12")
    run_flow({"deb": (host, DATA)})
    result = run_flow({"deb": (host, {**DATA, "redis_exporter_listen": "127.0.0.1:9200"})})
    apply = result.call("deb", "apply")
    assert apply.paths() == [ENV] and "units" in apply.entry(ENV).flags
    assert apply.option("metrics") == "127.0.0.1:9200"
    assert lines(apply.entry(ENV).content)["REDIS_EXPORTER_WEB_LISTEN_ADDRESS"] == "127.0.0.1:9200"
    wildcard = run_flow({"deb": (host, {**DATA, "redis_exporter_listen": ":9121"})})
    assert wildcard.call("deb", "apply").option("metrics") == "127.0.0.1:9121"  # read where it answers


@pytest.mark.parametrize("up, kind, words", [
    ("0", "exporter not logged in", "reports redis_up 0"),
    ("down", "exporter not answering", "nothing serves http://127.0.0.1:9121/metrics"),
])
def test_verification_fails_the_host_unless_redis_up_is_1(up, kind, words):
    host = fresh_host("debian-12")
    run_flow({"deb": (host, DATA)})
    host.exporter_up = up
    result = run_flow({"deb": (host, DATA)}, entry="verify.py")
    entry = result.report["deb"]
    assert entry["status"] == "failed" and entry["kind"] == kind and words in entry["problem"]
    assert UNIT in entry["fix"]


def test_no_tool_to_read_the_page_is_a_warning_not_a_failure():
    host = fresh_host("debian-12", exporter_up="unverified")
    run_flow({"deb": (host, DATA)})
    result = run_flow({"deb": (host, DATA)}, entry="verify.py")
    assert result.report["deb"]["status"] == "ok"
    assert any("could not be read on the host" in w for w in result.report["deb"]["warnings"])


@pytest.mark.parametrize("release", ["rocky-9", "fedora-42", "rhel-10"])
def test_the_rpm_family_refuses_it_before_anything_changes_and_others_go_on(release):
    result = run_flow({"rpm": (fresh_host(release), DATA), "deb": (fresh_host("debian-12"), DATA)})
    assert result.calls["rpm"] == [] and len(result.failures("rpm")) == 1
    assert "packages no redis_exporter" in result.failures("rpm")[0]
    entry = result.report["rpm"]
    assert entry["status"] == "failed" and entry["failed_step"] == "platform"
    assert "redis_exporter: false" in entry["problem"]
    assert result.report["deb"]["status"] == "ok"


def test_without_the_setting_nothing_of_the_exporter_is_asked_or_sent():
    result = run_flow({"deb": (fresh_host("debian-12"), {})})
    request = result.requests["deb"][0]
    assert request.metrics == "" and UNIT not in request.units and "prometheus-redis-exporter" not in request.packages
    assert "hsi-exporter" not in result.call("deb", "apply").entry("/etc/redis/redis.conf").content
    assert result.call("deb", "apply").option("after-units") is None


def test_tls_only_the_exporter_connects_over_tls_with_its_own_copies(tmp_path):
    directory = tmp_path / "pki"
    pki.ensure_pki(directory, {"@fake/deb": ["localhost", "127.0.0.1"]})
    paths = pki.pki_layout(directory, "@fake/deb")
    data = {**DATA, "redis_tls": True, "redis_tls_only": True, "redis_tls_ca_cert": str(paths.ca),
            "redis_tls_cert": str(paths.cert), "redis_tls_key": str(paths.key), "redis_tls_auth_clients": "no"}
    result = run_flow({"deb": (fresh_host("debian-13"), data)})
    apply = result.call("deb", "apply")
    values = lines(apply.entry(ENV).content)
    assert values["REDIS_ADDR"] == "rediss://127.0.0.1:6380"
    assert values["REDIS_EXPORTER_TLS_CA_CERT_FILE"] == "/etc/hsi-redis-exporter/ca.crt"
    assert "REDIS_EXPORTER_TLS_CLIENT_KEY_FILE" not in values  # no client certificate asked for
    ca = apply.entry("/etc/hsi-redis-exporter/ca.crt")
    assert (ca.mode, ca.user, ca.group, ca.flags) == ("644", "root", "prometheus", ("after", "units", "owndir"))
    assert ca.content == paths.ca.read_text()


def test_rotation_leaves_the_exporter_alone():
    host = fresh_host("debian-12")
    deployed = run_flow({"deb": (host, {**DATA, "redis_backend_unit": "hsi-backend"})})
    config_before = deployed.call("deb", "apply").entry("/etc/redis/redis.conf").content
    rotated = run_flow({"deb": (host, {**DATA, "redis_backend_unit": "hsi-backend",
                                       "redis_password": "a-new-backend-password-0123456789"})}, entry="rotate.py")
    call = rotated.call("deb", "rotate")
    assert ENV not in call.paths() and call.option("restart-units") == "hsi-backend.service"
    exporter_line = next(line for line in config_before.splitlines() if line.startswith("user hsi-exporter "))
    assert exporter_line in call.entry("/etc/redis/redis.conf").content.splitlines()
