"""The exact commands deploy.py sends to each supported release (simulated hosts, fact fixtures).

For every row: the install commands, the config path and its ownership, the service
commands, and what the verify step asks the host (the probe's CLI, service, data dir).
RPM hosts must never see a Debian path, package or user, and Debian/Ubuntu hosts never an
RPM one; Valkey hosts never a Redis one.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from operations import packages

from .harness import HEALTHY_SERVER, HostFixture, run_deploy

APT_INSTALL = (
    'DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Options::="--force-confdef" '
    '-o Dpkg::Options::="--force-confold" install --no-install-recommends -q '
    "-o DPkg::Lock::Timeout=300 {}"
)


@dataclass(frozen=True)
class Expect:
    release: str
    install: tuple[str, ...]
    config: str
    group: str
    service: str
    cli: str
    data_dir: str
    pid_file: str
    log_file: str
    bind: str
    data: tuple = ()


ROWS = {
    "rocky-8": Expect(
        "rocky-8",
        ("dnf module enable -y -q redis:6", "dnf install -y -q redis"),
        "/etc/redis.conf",
        "redis",
        "redis",
        "redis-cli",
        "/var/lib/redis",
        "/run/redis/redis.pid",
        "/var/log/redis/redis.log",
        "127.0.0.1 ::1",
    ),
    "rocky-9": Expect(
        "rocky-9",
        ("dnf module enable -y -q redis:7", "dnf install -y -q redis"),
        "/etc/redis/redis.conf",
        "redis",
        "redis",
        "redis-cli",
        "/var/lib/redis",
        "/run/redis/redis.pid",
        "/var/log/redis/redis.log",
        "127.0.0.1 -::1",
    ),
    "rhel-10": Expect(
        "rhel-10",
        ("dnf install -y -q valkey",),
        "/etc/valkey/valkey.conf",
        "valkey",
        "valkey",
        "valkey-cli",
        "/var/lib/valkey",
        "/run/valkey/valkey.pid",
        "/var/log/valkey/valkey.log",
        "127.0.0.1 -::1",
    ),
    "fedora-40": Expect(
        "fedora-40",
        ("dnf install -y -q redis",),
        "/etc/redis/redis.conf",
        "redis",
        "redis",
        "redis-cli",
        "/var/lib/redis",
        "/run/redis/redis.pid",
        "/var/log/redis/redis.log",
        "127.0.0.1 -::1",
    ),
    "fedora-42": Expect(
        "fedora-42",
        ("dnf install -y -q valkey",),
        "/etc/valkey/valkey.conf",
        "valkey",
        "valkey",
        "valkey-cli",
        "/var/lib/valkey",
        "/run/valkey/valkey.pid",
        "/var/log/valkey/valkey.log",
        "127.0.0.1 -::1",
    ),
    "ubuntu-22.04": Expect(
        "ubuntu-22.04",
        (
            "apt-get update",
            "touch /var/lib/apt/periodic/update-success-stamp",
            APT_INSTALL.format("redis-server redis-tools"),
        ),
        "/etc/redis/redis.conf",
        "redis",
        "redis-server",
        "redis-cli",
        "/var/lib/redis",
        "/run/redis/redis-server.pid",
        "/var/log/redis/redis-server.log",
        "127.0.0.1 ::1",
    ),
    "ubuntu-24.04": Expect(
        "ubuntu-24.04",
        (
            "apt-get update",
            "touch /var/lib/apt/periodic/update-success-stamp",
            APT_INSTALL.format("redis-server redis-tools"),
        ),
        "/etc/redis/redis.conf",
        "redis",
        "redis-server",
        "redis-cli",
        "/var/lib/redis",
        "/run/redis/redis-server.pid",
        "/var/log/redis/redis-server.log",
        "127.0.0.1 -::1",
    ),
    "debian-12": Expect(
        "debian-12",
        (
            "apt-get update",
            "touch /var/lib/apt/periodic/update-success-stamp",
            APT_INSTALL.format("redis-server redis-tools"),
        ),
        "/etc/redis/redis.conf",
        "redis",
        "redis-server",
        "redis-cli",
        "/var/lib/redis",
        "/run/redis/redis-server.pid",
        "/var/log/redis/redis-server.log",
        "127.0.0.1 -::1",
    ),
    "debian-13-valkey": Expect(
        "debian-13",
        (
            "apt-get update",
            "touch /var/lib/apt/periodic/update-success-stamp",
            APT_INSTALL.format("valkey-server valkey-tools"),
        ),
        "/etc/valkey/valkey.conf",
        "valkey",
        "valkey-server",
        "valkey-cli",
        "/var/lib/valkey",
        "/run/valkey/valkey-server.pid",
        "/var/log/valkey/valkey-server.log",
        "127.0.0.1 -::1",
        data=(("redis_flavour", "valkey"),),
    ),
}

# Text that marks the other family (or the other flavour) in anything a host is sent.
DEBIAN_MARKS = (
    "apt-get",
    "DEBIAN_FRONTEND",
    "redis-server",
    "redis-tools",
    "valkey-server",
    "valkey-tools",
    "/var/log/redis/redis-server.log",
    "/run/redis/redis-server.pid",
    "PrivateUsers",
)
RPM_MARKS = (
    "dnf ",
    "/etc/redis.conf",
    "/var/log/redis/redis.log",
    "/run/redis/redis.pid",
    "semanage",
    "/etc/yum.repos.d",
    "/etc/pki/rpm-gpg",
)
REDIS_MARKS = (
    "/etc/redis",
    "/var/lib/redis",
    "/var/log/redis",
    "/run/redis",
    "redis-cli",
    "root:redis",
    "redis-server",
    "dnf install -y -q redis",
)
VALKEY_MARKS = ("valkey",)


def _deploy(name: str, **fixture):
    expect = ROWS[name]
    server = dict(HEALTHY_SERVER, redis_version="7.2.4")
    result = run_deploy({name: (HostFixture(expect.release, server=server, **fixture), dict(expect.data))})
    return expect, result


@pytest.mark.parametrize("name", list(ROWS))
def test_install_config_service_and_verify_commands(name):
    expect, result = _deploy(name)
    texts = result.texts(name)
    config_write = next(t for t in texts if f'mv -f "$tmp" {expect.config};' in t)
    # A real (non-container) host gets kernel tuning right after the install (operations/hardening.py);
    # a server without `disable-thp` (Redis < 6.2) gets the THP unit too.
    sysctl_write = next(t for t in texts if 'mv -f "$tmp" /etc/sysctl.d/60-hsi-redis.conf;' in t)
    hardening = [sysctl_write, "sysctl -q -p /etc/sysctl.d/60-hsi-redis.conf"]
    if any("hsi-redis-thp-off.service" in t for t in texts):
        hardening += [
            next(t for t in texts if 'mv -f "$tmp" /etc/systemd/system/hsi-redis-thp-off.service;' in t),
            "systemctl daemon-reload",
            "systemctl start hsi-redis-thp-off.service",
            "systemctl enable hsi-redis-thp-off.service",
        ]
    # apt's lists are refreshed by operations/packages.py (it waits out a held lock), which
    # then touches the stamp itself; the restart is the rollback-guarded script (rollback.py).
    install = [
        packages.apt_update_script(300) if command == "apt-get update" else command
        for command in expect.install
        if command != "touch /var/lib/apt/periodic/update-success-stamp"
    ]
    restart = next(t for t in texts if t.startswith(f"svc={expect.service}; cli={expect.cli};"))
    # A pending restart is recorded before the config changes (restart_pending.py).
    mark = next(t for t in texts if t.startswith("umask 077; mkdir -p /etc/hsi-redis; [ -e /etc/hsi-redis/restart-"))
    assert f"cp {expect.config} /etc/hsi-redis/restart-pending.tmp" in mark
    assert texts == [
        *install,
        *hardening,
        mark,
        config_write,
        next(t for t in texts if "/etc/hsi-redis/cli.auth;" in t),
        next(t for t in texts if "/etc/hsi-redis/backend.auth;" in t),
        restart,
        f"systemctl start {expect.service}.service",
        f"systemctl enable {expect.service}.service",
    ]
    assert "systemctl restart \"$svc\"" in restart and "restore_files" in restart
    assert f'chown root:{expect.group} "$tmp"; chmod 640' in config_write
    config = result.uploaded(name, expect.config)
    for line in (
        f"bind {expect.bind}",
        f"pidfile {expect.pid_file}",
        f"logfile {expect.log_file}",
        f"dir {expect.data_dir}",
        "appendonly yes",
        "supervised systemd",
    ):
        assert f"\n{line}\n" in config, line
    # The verify step asks the server through the row's CLI, service, data directory and config
    # (TLS off: no TLS port; the CA path is the row's TLS directory, under its config directory).
    probe = result.fact_kwargs(name, "ServerState")[-1]
    assert probe == {
        "cli": expect.cli,
        "address": "127.0.0.1",
        "port": 6379,
        "service": expect.service,
        "data_dir": expect.data_dir,
        "config_path": expect.config,
        "tls_port": 0,
        "tls_ca": probe["tls_ca"],
        "tls_cert": "/etc/hsi-redis/tls/client.crt",
        "tls_key": "/etc/hsi-redis/tls/client.key",
    }
    # EL8 keeps redis.conf directly in /etc; its TLS files still go to /etc/redis/tls.
    tls_dir = "/etc/redis/tls" if expect.config == "/etc/redis.conf" else expect.config.rsplit("/", 1)[0] + "/tls"
    assert probe["tls_ca"] == f"{tls_dir}/ca.crt"
    assert result.report[name]["status"] == "ok"


@pytest.mark.parametrize("name", list(ROWS))
def test_no_other_family_or_flavour_leaks(name):
    expect, result = _deploy(name)
    sent = result.joined(name) + "\n" + repr(result.fact_kwargs(name, "ServerState"))
    rpm = "dnf" in expect.install[-1]
    marks = DEBIAN_MARKS if rpm else RPM_MARKS
    marks += REDIS_MARKS if expect.cli == "valkey-cli" else VALKEY_MARKS
    for mark in marks:
        assert mark not in sent, f"{name}: {mark!r} was sent"


def test_container_dropin_only_where_the_unit_needs_it():
    result = run_deploy(
        {
            "deb": (HostFixture("debian-13", container="docker"), {"redis_flavour": "valkey"}),
            "el9": (HostFixture("rocky-9", container="docker"), {}),
        }
    )
    dropin = "/etc/systemd/system/valkey-server.service.d/hsi-redis.conf"
    assert "PrivateUsers=false" in result.uploaded("deb", dropin)
    assert "systemctl daemon-reload" in result.texts("deb")
    assert not any("service.d" in t for t in result.texts("el9"))


def test_module_stream_already_enabled_is_left_alone():
    _, result = _deploy("rocky-9", module_stream="7")
    assert not any("module" in t for t in result.texts("rocky-9"))
    assert result.fact_kwargs("rocky-9", "EnabledModuleStream")[0] == {"module": "redis"}


def test_another_enabled_stream_is_reset_first():
    _, result = _deploy("rocky-8", module_stream="5")
    texts = result.texts("rocky-8")
    assert texts[:3] == [
        "dnf module reset -y -q redis",
        "dnf module enable -y -q redis:6",
        "dnf install -y -q redis",
    ]


def test_selinux_labels_a_non_default_port_once():
    data = {"redis_port": 6390}
    enforcing = run_deploy({"el9": (HostFixture("rocky-9", selinux="Enforcing"), data)})
    texts = enforcing.texts("el9")
    assert "dnf install -y policycoreutils-python-utils" in texts
    assert "semanage port -a -t redis_port_t -p tcp 6390" in texts
    assert texts.index("semanage port -a -t redis_port_t -p tcp 6390") < texts.index(
        next(t for t in texts if "/etc/redis/redis.conf;" in t)
    ), "labelled before the server moves"
    assert "\nport 6390\n" in enforcing.uploaded("el9", "/etc/redis/redis.conf")
    labelled = run_deploy(
        {
            "el9": (
                HostFixture(
                    "rocky-9",
                    selinux="Enforcing",
                    installed={"policycoreutils-python-utils": "3.6-2.el9"},
                    port_types={6390: "redis_port_t"},
                ),
                data,
            )
        }
    )
    assert not any("semanage" in t for t in labelled.texts("el9"))
    other_type = run_deploy(
        {"el9": (HostFixture("rocky-9", selinux="Permissive", port_types={6390: "unreserved_port_t"}), data)}
    )
    assert "semanage port -m -t redis_port_t -p tcp 6390" in other_type.texts("el9")


def test_selinux_default_port_and_disabled_hosts_need_nothing():
    default = run_deploy({"el9": (HostFixture("rocky-9", selinux="Enforcing"), {})})
    assert not any("semanage" in t for t in default.texts("el9"))
    assert default.fact_kwargs("el9", "TcpPortTypes")[0] == {"ports": (6379,)}
    disabled = run_deploy({"el9": (HostFixture("rocky-9"), {"redis_port": 6390})})
    assert not any("semanage" in t or "policycoreutils" in t for t in disabled.texts("el9"))


def _tls_data(directory, **extra) -> dict:
    """Settings for a TLS host with files made by the certificate helper (as in test_certs.py)."""
    from operations import certs

    paths = certs.pki_layout(directory, "@fake/el9")
    certs.ensure_pki(directory, {"@fake/el9": ["localhost"]})
    return {"redis_tls": True, "redis_tls_ca_cert": str(paths.ca), "redis_tls_cert": str(paths.cert),
            "redis_tls_key": str(paths.key), **extra}


TLS_SERVER = dict(HEALTHY_SERVER, via="tls", tls_port="6380")


def test_selinux_labels_the_tls_port(tmp_path):
    """Item 13 of issue 9: an enforcing host with TLS on labels the TLS port before the server binds it."""
    data = _tls_data(tmp_path / "pki")
    enforcing = run_deploy({"el9": (HostFixture("rocky-9", selinux="Enforcing", server=TLS_SERVER), data)})
    assert enforcing.report["el9"]["status"] == "ok", enforcing.report["el9"]
    texts = enforcing.texts("el9")
    assert enforcing.fact_kwargs("el9", "TcpPortTypes")[0] == {"ports": (6379, 6380)}
    assert "semanage port -a -t redis_port_t -p tcp 6380" in texts
    assert not any("tcp 6379" in t for t in texts), "6379 has the type already"
    assert texts.index("semanage port -a -t redis_port_t -p tcp 6380") < texts.index(
        next(t for t in texts if "/etc/redis/redis.conf;" in t)
    ), "labelled before the server listens there"
    assert "\ntls-port 6380\n" in enforcing.uploaded("el9", "/etc/redis/redis.conf")
    # TLS-only: the plain port is closed, only the TLS port needs the type.
    only = run_deploy({"el9": (HostFixture("rocky-9", selinux="Enforcing"),
                               dict(data, redis_tls_only=True, redis_tls_port=6390))})
    assert only.fact_kwargs("el9", "TcpPortTypes")[0] == {"ports": (6390,)}
    assert "semanage port -a -t redis_port_t -p tcp 6390" in only.texts("el9")
    labelled = run_deploy({"el9": (HostFixture("rocky-9", selinux="Enforcing",
                                               port_types={6379: "redis_port_t", 6380: "redis_port_t"}), data)})
    assert not any("semanage port -a" in t or "semanage port -m" in t for t in labelled.texts("el9"))
