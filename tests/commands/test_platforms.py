"""What deploy.py asks each supported release to do (simulated hosts, the one state read from fixtures).

For every row: the install call (package manager, packages, module stream), the apply call (the config
at the row's path with its owner, group and mode, the row's service, CLI and files, kernel tuning on a
real machine), what the verification reads, and that a second run changes nothing and reads once.
RPM hosts are never asked about a Debian path, package or user, and Debian/Ubuntu hosts never an RPM
one; Valkey hosts never a Redis one. (What the program then runs on the host, the apt/dnf/semanage
command lines, is tested against fakes of those tools in tests/program/test_install*.py.)
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from operations import pki
from operations.hoststate import Layout

from .harness import HostFixture, fresh_host, healthy_server, run_flow

SYSCTL = "/etc/sysctl.d/60-hsi-redis.conf"
THP_UNIT = "/etc/systemd/system/hsi-redis-thp-off.service"


@dataclass(frozen=True)
class Expect:
    release: str
    pm: str
    packages: str
    module_stream: str | None
    config: str
    group: str
    service: str
    cli: str
    data_dir: str
    pid_file: str
    log_file: str
    bind: str
    thp_unit: bool = False
    data: tuple = ()


def _rpm(release, packages, stream, config, flavour, bind="127.0.0.1 -::1") -> Expect:
    return Expect(release, "dnf", packages, stream, config, flavour, flavour, f"{flavour}-cli", f"/var/lib/{flavour}",
                  f"/run/{flavour}/{flavour}.pid", f"/var/log/{flavour}/{flavour}.log", bind)


def _deb(release, flavour="redis", bind="127.0.0.1 -::1", **kw) -> Expect:
    return Expect(release, "apt", f"{flavour}-server {flavour}-tools", None, f"/etc/{flavour}/{flavour}.conf", flavour,
                  f"{flavour}-server", f"{flavour}-cli", f"/var/lib/{flavour}", f"/run/{flavour}/{flavour}-server.pid",
                  f"/var/log/{flavour}/{flavour}-server.log", bind, **kw)


ROWS = {
    "rocky-8": _rpm("rocky-8", "redis", "redis:6", "/etc/redis.conf", "redis", bind="127.0.0.1 ::1"),
    "rocky-9": _rpm("rocky-9", "redis", "redis:7", "/etc/redis/redis.conf", "redis"),
    "rhel-10": _rpm("rhel-10", "valkey", None, "/etc/valkey/valkey.conf", "valkey"),
    "fedora-40": _rpm("fedora-40", "redis", None, "/etc/redis/redis.conf", "redis"),
    "fedora-42": _rpm("fedora-42", "valkey", None, "/etc/valkey/valkey.conf", "valkey"),
    # Redis 6.0: no `-` before an optional bind address, no disable-thp (a unit turns THP off)
    "ubuntu-22.04": _deb("ubuntu-22.04", bind="127.0.0.1 ::1", thp_unit=True),
    "ubuntu-24.04": _deb("ubuntu-24.04"),
    "debian-12": _deb("debian-12"),
    "debian-13-valkey": _deb("debian-13", flavour="valkey", data=(("redis_flavour", "valkey"),)),
}

# Text that marks the other family (or the other flavour) in anything a host is asked to do.
DEBIAN_MARKS = ("--pm apt", "update-max-age", "apt-pinned", "redis-server", "redis-tools", "valkey-server",
                "valkey-tools", "/var/log/redis/redis-server.log", "/run/redis/redis-server.pid", "PrivateUsers",
                "/etc/apt")
RPM_MARKS = ("--pm dnf", "module-stream", "dnf-spec", "/etc/redis.conf", "/var/log/redis/redis.log",
             "/run/redis/redis.pid", "selinux", "/etc/yum.repos.d", "/etc/pki/rpm-gpg")
REDIS_MARKS = ("/etc/redis", "/var/lib/redis", "/var/log/redis", "/run/redis", "redis-cli", "root redis\n",
               "redis-server", "--packages redis", "--user redis", "--group redis", "--service redis")
VALKEY_MARKS = ("valkey",)


def _deploy(name: str, fixture: HostFixture | None = None, data: dict | None = None):
    expect = ROWS[name]
    fixture = fixture or fresh_host(expect.release)
    return expect, fixture, run_flow({name: (fixture, {**dict(expect.data), **(data or {})})})


@pytest.mark.parametrize("name", list(ROWS))
def test_install_configure_and_verify_calls(name):
    expect, fixture, result = _deploy(name)
    assert result.verbs(name) == ["install", "apply"] and result.other[name] == []
    install = result.call(name, "install")
    assert install.option("pm") == expect.pm and install.option("packages") == expect.packages
    assert install.option("module-stream") == expect.module_stream
    assert install.option("lock-timeout") == "300"
    assert install.option("update-max-age") == ("3600" if expect.pm == "apt" else None)
    assert not install.flag("apt-pinned") and install.option("dnf-spec") is None  # the distro's packages
    assert install.entries == ()  # a real machine: no container drop-in, no repository
    apply = result.call(name, "apply")
    for key, value in (("service", expect.service), ("config", expect.config), ("cli", expect.cli),
                       ("data-dir", expect.data_dir), ("log", expect.log_file), ("group", expect.group),
                       ("state-dir", "/etc/hsi-redis"), ("admin-user", "hsi-admin")):
        assert install.option(key) == value and apply.option(key) == value, key
    assert apply.flag("enable"), "a fresh host's service is enabled and started"
    # A real (non-container) machine gets kernel tuning; a server without `disable-thp` the THP unit too.
    assert apply.option("sysctl") == SYSCTL
    assert apply.option("enable-units") == ("hsi-redis-thp-off.service" if expect.thp_unit else None)
    paths = [expect.config, "/etc/hsi-redis/cli.auth", "/etc/hsi-redis/backend.auth", SYSCTL]
    paths += [THP_UNIT] if expect.thp_unit else []
    assert apply.paths() == [*paths, "/opt/hsi/backend/.env"]
    config = apply.entry(expect.config)
    assert (config.mode, config.user, config.group, config.flags) == ("640", "root", expect.group, ("restart",))
    for path in ("/etc/hsi-redis/cli.auth", "/etc/hsi-redis/backend.auth"):
        entry = apply.entry(path)
        assert (entry.mode, entry.user, entry.group, entry.flags) == ("600", "root", "root", ("-",))
    for line in (f"bind {expect.bind}", f"pidfile {expect.pid_file}", f"logfile {expect.log_file}",
                 f"dir {expect.data_dir}", "appendonly yes", "supervised systemd", "port 6379"):
        assert f"\n{line}\n" in config.content, line
    assert ("disable-thp yes" in config.content) != expect.thp_unit
    merge = apply.entry("/opt/hsi/backend/.env")
    assert merge.kind == "merge" and merge.flags == ("after",)
    # The state read asked about the row's layout; after the changes, verification read the server again.
    first, again = result.requests[name]
    layout = Layout(expect.service, expect.config, expect.cli, expect.data_dir)
    assert layout in first.layouts and layout in again.layouts and again.server_only and not first.server_only
    assert result.report[name]["status"] == "ok", result.report[name]
    assert result.report[name]["platform"] == (expect.release if name.startswith(("ubuntu", "debian"))
                                               else result.report[name]["platform"])
    # the same host once more: converged, so the one read is all that happens
    rerun = run_flow({name: (fixture, dict(expect.data))})
    assert rerun.calls[name] == [] and rerun.other[name] == [] and len(rerun.requests[name]) == 1
    assert rerun.report[name]["status"] == "ok"


@pytest.mark.parametrize("name", list(ROWS))
def test_no_other_family_or_flavour_leaks(name):
    expect, _, result = _deploy(name)
    sent = result.joined(name)
    marks = DEBIAN_MARKS if expect.pm == "dnf" else RPM_MARKS
    marks += REDIS_MARKS if expect.cli == "valkey-cli" else VALKEY_MARKS
    for mark in marks:
        assert mark not in sent, f"{name}: {mark!r} was sent"


def test_verify_reads_once_and_changes_nothing():
    for release, data in (("debian-12", {}), ("rocky-8", {}), ("debian-13", {"redis_flavour": "valkey"})):
        fixture = fresh_host(release)
        run_flow({"h": (fixture, data)})  # converged by a deploy
        result = run_flow({"h": (fixture, data)}, entry="verify.py")
        assert result.calls["h"] == [] and result.other["h"] == [] and len(result.requests["h"]) == 1
        assert result.report["h"]["status"] == "ok"
    # a host that is not right: still the one read, no host-program call, the host fails with the fix
    broken = run_flow({"h": (fresh_host("debian-12"), {})}, entry="verify.py")
    assert broken.calls["h"] == [] and len(broken.requests["h"]) == 1
    (failure,) = broken.failures("h")
    assert "backend .env missing" in failure and broken.report["h"]["status"] == "failed"


def test_verify_only_hosts_get_no_call():
    fixture = fresh_host("debian-12")
    run_flow({"h": (fixture, {})})
    result = run_flow({"h": (fixture, {"redis_verify_only": True})})
    assert result.calls["h"] == [] and len(result.requests["h"]) == 1 and result.report["h"]["status"] == "ok"
    fresh = run_flow({"h": (fresh_host("debian-12"), {"redis_verify_only": True})})
    assert fresh.calls["h"] == [] and len(fresh.requests["h"]) == 1 and fresh.report["h"]["status"] == "failed"


def test_container_dropin_only_where_the_unit_needs_it():
    result = run_flow({
        "deb": (fresh_host("debian-13", container="docker"), {"redis_flavour": "valkey"}),
        "el9": (fresh_host("rocky-9", container="docker"), {}),
    })
    dropin = result.call("deb", "install").entry("/etc/systemd/system/valkey-server.service.d/hsi-redis.conf")
    assert "PrivateUsers=false" in dropin.content and dropin.flags == ("unit", "restart")
    assert (dropin.mode, dropin.user, dropin.group) == ("644", "root", "root")
    assert "service.d" not in result.joined("el9")
    # inside a container the kernel is not ours: no sysctl file, no THP unit, a note says why
    for name in ("deb", "el9"):
        apply = result.call(name, "apply")
        assert apply.option("sysctl") is None and SYSCTL not in apply.paths()
        assert any("kernel tuning skipped" in note and "docker container" in note
                   for note in result.report[name]["notes"])


def test_module_stream_already_enabled_is_left_alone():
    _, _, result = _deploy("rocky-9", fresh_host("rocky-9", module_stream="7"))
    assert result.call("rocky-9", "install").option("module-stream") is None
    assert result.requests["rocky-9"][0].modules == ("redis",)


def test_another_enabled_stream_is_replaced_by_the_rows():
    """The reset of the other stream is the program's (tests/program/test_install.py)."""
    _, _, result = _deploy("rocky-8", fresh_host("rocky-8", module_stream="5"))
    assert result.call("rocky-8", "install").option("module-stream") == "redis:6"


def test_only_the_stream_missing_still_calls_install():
    installed = fresh_host("rocky-9", installed={"redis": "7.2.4-1.el9"}, module_stream="6")
    _, _, result = _deploy("rocky-9", installed)
    install = result.call("rocky-9", "install")
    assert install.option("module-stream") == "redis:7" and install.option("packages") is None


def test_selinux_labels_a_non_default_port_once():
    data = {"redis_port": 6390}
    enforcing = run_flow({"el9": (fresh_host("rocky-9", selinux="Enforcing"), data)})
    install = enforcing.call("el9", "install")
    assert install.option("selinux-ports") == "6390" and install.option("selinux-type") == "redis_port_t"
    assert install.option("selinux-tools") == "policycoreutils-python-utils"
    assert enforcing.verbs("el9") == ["install", "apply"], "labelled before the server moves"
    assert "\nport 6390\n" in enforcing.call("el9", "apply").entry("/etc/redis/redis.conf").content
    assert enforcing.requests["el9"][0].selinux_ports == (6390,)
    labelled = run_flow({"el9": (fresh_host("rocky-9", selinux="Enforcing", installed={"redis": "7.2.4-1.el9"},
                                            module_stream="7", port_types={6390: "redis_port_t"}), data)})
    assert labelled.verbs("el9") == ["apply"]
    # another type holds the port: labelled again (the program uses `semanage port -m`)
    other_type = run_flow({"el9": (fresh_host("rocky-9", selinux="Permissive",
                                              port_types={6390: "unreserved_port_t"}), data)})
    assert other_type.call("el9", "install").option("selinux-ports") == "6390"


def test_selinux_default_port_and_disabled_hosts_need_nothing():
    default = run_flow({"el9": (fresh_host("rocky-9", selinux="Enforcing"), {})})
    assert "selinux" not in default.joined("el9")
    assert default.requests["el9"][0].selinux_ports == (6379,)
    disabled = run_flow({"el9": (fresh_host("rocky-9"), {"redis_port": 6390})})
    assert "selinux" not in disabled.joined("el9") and "policycoreutils" not in disabled.joined("el9")


def _tls_data(directory, host: str = "@fake/el9", **extra) -> dict:
    """Settings for a TLS host with files made by the certificate helper (as in test_certs.py)."""
    pki.ensure_pki(directory, {host: ["localhost"]})
    paths = pki.pki_layout(directory, host)
    return {"redis_tls": True, "redis_tls_ca_cert": str(paths.ca), "redis_tls_cert": str(paths.cert),
            "redis_tls_key": str(paths.key), **extra}


def tls_server(tls_port: int = 6380, **changes):
    """A server serving TLS on `tls_port` (no client certificate required) and plain on 6379."""
    values = {"tls_port": tls_port, "tls_ping": "PONG", "tls_nocert": "NOAUTH Authentication required.",
              "plain_ping": "NOAUTH Authentication required."}
    values.update(changes)
    return healthy_server(**values)


def test_selinux_labels_the_tls_port(tmp_path):
    """Item 13 of issue 9: an enforcing host with TLS on labels the TLS port before the server binds it."""
    data = _tls_data(tmp_path / "pki")
    enforcing = run_flow({"el9": (fresh_host("rocky-9", selinux="Enforcing", server=tls_server()), data)})
    assert enforcing.report["el9"]["status"] == "ok", enforcing.report["el9"]
    assert enforcing.requests["el9"][0].selinux_ports == (6379, 6380)
    assert enforcing.call("el9", "install").option("selinux-ports") == "6380", "6379 has the type already"
    assert enforcing.verbs("el9") == ["install", "apply"], "labelled before the server listens there"
    assert "\ntls-port 6380\n" in enforcing.call("el9", "apply").entry("/etc/redis/redis.conf").content
    # TLS-only: the plain port is closed, only the TLS port needs the type.
    only_server = tls_server(6390, via="tls", port=0, plain_ping="Could not connect: Connection refused")
    only = run_flow({"el9": (fresh_host("rocky-9", selinux="Enforcing", server=only_server),
                             dict(data, redis_tls_only=True, redis_tls_port=6390))})
    assert only.requests["el9"][0].selinux_ports == (6390,)
    assert only.call("el9", "install").option("selinux-ports") == "6390"
    assert "\nport 0\n" in only.call("el9", "apply").entry("/etc/redis/redis.conf").content
    labelled = run_flow({"el9": (fresh_host("rocky-9", selinux="Enforcing", server=tls_server(),
                                            port_types={6379: "redis_port_t", 6380: "redis_port_t"}), data)})
    assert labelled.call("el9", "install").option("selinux-ports") is None


@pytest.mark.parametrize("name, tls_dir", [("debian-12", "/etc/redis"), ("rocky-8", "/etc/redis"),
                                           ("debian-13-valkey", "/etc/valkey")])
def test_tls_files_live_under_the_rows_config_directory(tmp_path, name, tls_dir):
    """Right in the config directory (one level into a directory the server's user may control);
    EL8 keeps redis.conf directly in /etc, its TLS files still go to /etc/redis."""
    expect = ROWS[name]
    _, _, result = _deploy(name, fresh_host(expect.release, server=tls_server()),
                           _tls_data(tmp_path / "pki", host=f"@fake/{name}"))
    apply = result.call(name, "apply")
    ca, cert, key = (apply.entry(f"{tls_dir}/{f}") for f in ("tls-ca.crt", "tls-server.crt", "tls-server.key"))
    assert (ca.mode, ca.user, ca.group, ca.flags) == ("644", "root", "root", ("restart",))
    assert (cert.mode, cert.flags) == ("644", ("restart",))
    assert (key.mode, key.user, key.group, key.flags) == ("600", expect.group, expect.group, ("restart",))
    assert "PRIVATE KEY" in key.content and "PRIVATE" not in result.report[name].get("problem", "")
    config = apply.entry(expect.config).content
    assert f"\ntls-cert-file {tls_dir}/tls-server.crt\n" in config and f"\ntls-key-file {tls_dir}/tls-server.key\n" in config
    assert result.report[name]["status"] == "ok", result.report[name]


def test_tls_only_with_mtls_the_clients_files_and_a_converged_rerun(tmp_path):
    """Every file of the fullest setup (TLS-only, mTLS, the backend's and the exporter's TLS files) in
    one apply call, after the drop-in in the install call; the same host once more: the read only."""
    directory = tmp_path / "pki"
    pki.ensure_pki(directory, {"@fake/h": ["localhost", "127.0.0.1"]})
    paths = pki.pki_layout(directory, "@fake/h")
    data = {**_tls_data(directory, host="@fake/h"), "redis_tls_only": True,
            "redis_tls_client_cert": str(paths.client_cert), "redis_tls_client_key": str(paths.client_key),
            "redis_exporter": True}
    server = tls_server(via="tls", port=0, tls_nocert="Error: Connection reset by peer",
                        plain_ping="Could not connect to Redis at 127.0.0.1:6379: Connection refused")
    host = fresh_host("debian-12", container="docker", server=server)
    result = run_flow({"h": (host, data)})
    assert result.report["h"]["status"] == "ok", result.report["h"]
    apply = result.call("h", "apply")
    assert "\nport 0\n" in apply.entry("/etc/redis/redis.conf").content
    assert "\ntls-auth-clients yes\n" in apply.entry("/etc/redis/redis.conf").content
    for path in ("/etc/hsi-redis/tls/client.crt", "/etc/hsi-redis/tls/client.key"):  # the deploy's own checks
        assert (apply.entry(path).mode, apply.entry(path).user) == ("600", "root")
    after = [e.path for e in apply.entries if "after" in e.flags]
    assert after == ["/opt/hsi/backend/.env",
                     *(f"/opt/hsi/backend/redis-tls/{f}" for f in ("ca.crt", "client.crt", "client.key")),
                     "/etc/default/prometheus-redis-exporter",
                     *(f"/etc/hsi-redis-exporter/{f}" for f in ("ca.crt", "client.crt", "client.key"))]
    merged = dict(line.split("=", 1) for line in apply.entry("/opt/hsi/backend/.env").content.splitlines())
    assert merged["REDIS_URL"].startswith("rediss://localhost:6380/0?ssl_cert_reqs=required")
    rerun = run_flow({"h": (host, data)})
    assert rerun.calls["h"] == [] and rerun.other["h"] == [] and len(rerun.requests["h"]) == 1
