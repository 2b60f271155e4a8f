"""`install`: the exact package-manager commands per case (the deploy's old apt/dnf/semanage command
lines now come from the program). apt-get, dpkg-query, dnf, rpm, getenforce and semanage are fakes on
PATH that record their arguments; nothing is installed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .conftest import FAKE_CTL, bundle, run_program

FAKE_APT = r"""#!/bin/sh
echo "apt-get $*" >> "$FAKE_LOG"
case " $* " in *" install "*) echo "  DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-}" >> "$FAKE_LOG";; esac
case " $* " in *" install "*policycoreutils*) cp "$FAKE_BIN/semanage.fake" "$FAKE_BIN/semanage";; esac
exit 0
"""
FAKE_DPKG_QUERY = r"""#!/bin/sh
for p in $FAKE_INSTALLED; do [ "$p" = "$3" ] && { printf 'install ok installed'; exit 0; }; done
exit 1
"""
FAKE_DNF = r"""#!/bin/sh
echo "dnf $*" >> "$FAKE_LOG"
case "$*" in
  "-q module list --enabled redis") [ -z "${FAKE_STREAM:-}" ] || echo "redis $FAKE_STREAM [e] common [d]";;
  install*policycoreutils*) cp "$FAKE_BIN/semanage.fake" "$FAKE_BIN/semanage";;
esac
exit 0
"""
FAKE_RPM = r"""#!/bin/sh
for p in $FAKE_INSTALLED; do [ "$p" = "$2" ] && exit 0; done
exit 1
"""
FAKE_GETENFORCE = """#!/bin/sh
echo "${FAKE_SELINUX:-Disabled}"
"""
FAKE_SEMANAGE = r"""#!/bin/sh
if [ "$*" = "port -l -n" ]; then cat "$FAKE_PORTS" 2>/dev/null; exit 0; fi
echo "semanage $*" >> "$FAKE_LOG"
"""
INSTALL = ("apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef "
           "-o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=300 ")
UPDATE = "apt-get -q -o DPkg::Lock::Timeout=300 update"
FRONTEND = "  DEBIAN_FRONTEND=noninteractive"


@pytest.fixture
def pm(tmp_path):
    """Run `install` with the fakes; returns (result, the package-manager calls in order)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = {"apt-get": FAKE_APT, "dpkg-query": FAKE_DPKG_QUERY, "dnf": FAKE_DNF, "rpm": FAKE_RPM,
             "getenforce": FAKE_GETENFORCE, "semanage.fake": FAKE_SEMANAGE}
    for name, text in fakes.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log, ports = tmp_path / "pm.log", tmp_path / "ports"
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    fake_units = tmp_path / "units"
    fake_units.mkdir()

    def run(*args, stdin=b"", semanage=True, **env):
        semanage_bin = bin_dir / "semanage"
        if semanage and not semanage_bin.exists():
            semanage_bin.write_text(FAKE_SEMANAGE)
            semanage_bin.chmod(0o755)
        elif not semanage:
            semanage_bin.unlink(missing_ok=True)
        result = run_program("install", "--state-dir", str(state), "--lock-timeout", "300", *args, stdin=stdin,
                             env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log),
                                  "FAKE_BIN": str(bin_dir), "FAKE_PORTS": str(ports),
                                  "HSI_REDIS_APT_STAMP": str(run.stamp), "HSI_REDIS_SERVICE_CTL": str(FAKE_CTL),
                                  "HSI_FAKE_DIR": str(fake_units), **env})
        calls = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return result, calls

    run.stamp, run.ports, run.state, run.units, run.root = tmp_path / "stamp", ports, state, fake_units, tmp_path
    return run


def fresh(stamp: Path) -> None:
    stamp.touch()


def old(stamp: Path) -> None:
    stamp.touch()
    os.utime(stamp, (time.time() - 7200, time.time() - 7200))


def test_apt_distro_install_is_exactly_this(pm):
    r, calls = pm("--pm", "apt", "--packages", "redis-server redis-tools", "--update-max-age", "3600")
    assert r.code == 0, r.err
    assert calls == [UPDATE, INSTALL + "redis-server redis-tools", FRONTEND]
    assert r.out.splitlines() == ["updated=1", "installed=redis-server redis-tools"]


def test_apt_updates_only_when_the_lists_are_old_or_a_repository_file_changed(pm):
    repo = pm.root / "etc" / "hsi-redis-upstream.sources"
    payload = bundle(("file", "0644", "root", "root", "repo", str(repo), "Types: deb\n"))
    args = ("--pm", "apt", "--packages", "redis-server redis-tools", "--update-max-age", "3600")
    fresh(pm.stamp)
    r, calls = pm(*args)
    assert r.code == 0 and calls == [INSTALL + "redis-server redis-tools", FRONTEND], "lists are fresh"
    fresh(pm.stamp)
    r, calls = pm(*args, "--apt-pinned", stdin=payload)
    assert r.code == 0 and calls == [UPDATE, INSTALL + "redis-server redis-tools", FRONTEND], "a new repository"
    assert r.out.splitlines()[0] == f"changed={repo}"
    fresh(pm.stamp)
    r, calls = pm(*args, "--apt-pinned", stdin=payload)
    assert r.code == 0 and calls == [INSTALL + "redis-server redis-tools", FRONTEND], "the same repository"
    old(pm.stamp)
    r, calls = pm(*args, stdin=payload)
    assert r.code == 0 and calls == [UPDATE, INSTALL + "redis-server redis-tools", FRONTEND], "old lists"
    old(pm.stamp)
    r, calls = pm(*args, FAKE_INSTALLED="redis-server redis-tools")
    assert r.code == 0 and calls == [] and r.out == "", "installed, nothing to do"


@pytest.mark.parametrize("enabled, module_calls", [
    ("", ["dnf module enable -y -q redis:6"]),                                   # none enabled yet
    ("5", ["dnf module reset -y -q redis", "dnf module enable -y -q redis:6"]),  # another one: reset first
    ("6", []),                                                                   # ours: left alone
])
def test_dnf_module_stream_then_install(pm, enabled, module_calls):
    r, calls = pm("--pm", "dnf", "--packages", "redis", "--module-stream", "redis:6", FAKE_STREAM=enabled)
    assert r.code == 0, r.err
    assert calls == ["dnf -q module list --enabled redis", *module_calls, "dnf install -y -q redis"]


def test_dnf_installs_nothing_already_there(pm):
    r, calls = pm("--pm", "dnf", "--packages", "valkey", FAKE_INSTALLED="valkey")
    assert r.code == 0 and calls == [] and r.out == ""


def test_dnf_upstream_writes_the_repository_then_installs_the_pinned_series(pm):
    key, repo = pm.root / "pki" / "RPM-GPG-KEY-redis-upstream", pm.root / "repos" / "hsi-redis-upstream.repo"
    payload = bundle(("file", "0644", "root", "root", "repo", str(key), "KEY\n"),
                     ("file", "0644", "root", "root", "repo", str(repo), "[hsi-redis-upstream]\n"))
    r, calls = pm("--pm", "dnf", "--packages", "redis", "--dnf-spec", "redis-7.4.*", stdin=payload)
    assert r.code == 0, r.err
    assert calls == ["dnf install -y -q redis-7.4.*"]
    assert r.out.splitlines() == [f"changed={key}", f"changed={repo}", "installed=redis-7.4.*"]
    assert repo.read_text() == "[hsi-redis-upstream]\n" and oct(repo.stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("listing, commands", [
    # 6379 labelled already, 6380 nowhere: added
    ("redis_port_t tcp 6379, 16379, 26379\n", ["semanage port -a -t redis_port_t -p tcp 6380"]),
    # another type holds 6380: modified
    ("redis_port_t tcp 6379\nhttp_port_t tcp 6380, 80\n", ["semanage port -m -t redis_port_t -p tcp 6380"]),
    # both labelled: nothing
    ("redis_port_t tcp 6379, 6380\n", []),
    # neither: both added
    ("", ["semanage port -a -t redis_port_t -p tcp 6379", "semanage port -a -t redis_port_t -p tcp 6380"]),
])
def test_selinux_ports_are_added_or_modified_once(pm, listing, commands):
    pm.ports.write_text(listing)
    r, calls = pm("--pm", "dnf", "--selinux-ports", "6379 6380", "--selinux-type", "redis_port_t",
                  "--selinux-tools", "policycoreutils-python-utils", FAKE_SELINUX="Enforcing")
    assert r.code == 0, r.err
    assert calls == commands
    assert r.all("selinux_port") == [f"{c.split()[-1]} redis_port_t" for c in commands]


def test_selinux_disabled_needs_nothing_and_missing_tools_come_first(pm):
    args = ("--selinux-ports", "6390", "--selinux-type", "redis_port_t", "--selinux-tools",
            "policycoreutils-python-utils")
    r, calls = pm("--pm", "dnf", *args, semanage=False, FAKE_SELINUX="Disabled")
    assert r.code == 0 and calls == []
    r, calls = pm("--pm", "dnf", *args, semanage=False, FAKE_SELINUX="Permissive")
    assert r.code == 0, r.err
    assert calls == ["dnf install -y -q policycoreutils-python-utils", "semanage port -a -t redis_port_t -p tcp 6390"]
    r, calls = pm("--pm", "apt", *args, semanage=False, FAKE_SELINUX="Enforcing")
    assert r.code == 0, r.err
    assert calls == ["apt-get install -y -q policycoreutils-python-utils", FRONTEND,
                     "semanage port -a -t redis_port_t -p tcp 6390"]


def test_a_unit_file_reloads_systemd_and_a_changed_one_leaves_a_restart_pending(pm):
    """The container drop-in: written before the package (which starts the service); when the server's
    config exists already, the next apply must restart it with the new unit."""
    dropin = pm.root / "system" / "redis-server.service.d" / "hsi-redis.conf"
    config = pm.root / "redis.conf"
    payload = bundle(("file", "0644", "root", "root", "unit,restart", str(dropin), "[Service]\nPrivateUsers=false\n"))
    calls_file = pm.units / "calls"
    r, _ = pm("--pm", "apt", "--service", "redis-server", "--config", str(config), stdin=payload,
              FAKE_INSTALLED="", HSI_REDIS_APT_STAMP=str(pm.stamp))
    assert r.code == 0, r.err
    assert "daemon-reload" in calls_file.read_text().split()
    assert not (pm.state / "restart-pending").exists(), "no config yet: the package starts it fresh"
    config.write_text("port 6379\n")
    payload = bundle(("file", "0644", "root", "root", "unit,restart", str(dropin), "[Service]\nPrivateUsers=no\n"))
    calls_file.unlink()
    r, _ = pm("--pm", "apt", "--service", "redis-server", "--config", str(config), stdin=payload)
    assert r.code == 0, r.err
    assert (pm.state / "restart-pending").exists() and "daemon-reload" in calls_file.read_text().split()
    (pm.state / "restart-pending").unlink()
    calls_file.unlink()
    r, _ = pm("--pm", "apt", "--service", "redis-server", "--config", str(config), stdin=payload)
    assert r.code == 0 and r.out == "" and not (pm.state / "restart-pending").exists()
    assert not calls_file.exists(), "unchanged: no reload"
