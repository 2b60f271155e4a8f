"""Kernel tuning on a non-container host, as the apply call carries it (the one state read tells the
running kernel's values; the sysctl file and the THP unit travel in the bundle, `--sysctl` applies the
file to the running kernel and `--enable-units` starts the THP unit: tests/program/test_kernel.py)."""

from __future__ import annotations

import pytest

from operations import configure, render

from .harness import fresh_host, run_flow

SYSCTL = configure.SYSCTL_FILE
THP_PATH = f"/etc/systemd/system/{configure.THP_UNIT}"


def _apply(release: str = "debian-12", kernel: dict | None = None, data: dict | None = None, **fixture):
    host = fresh_host(release, **fixture)
    if kernel is not None:
        host.kernel = dict(kernel)
    result = run_flow({"box": (host, data or {})})
    return result, result.call("box", "apply"), host


def test_real_machine_gets_persistent_and_applied_sysctls():
    _, apply, host = _apply(kernel={"vm.overcommit_memory": "0", "net.core.somaxconn": "128", "thp": "always"})
    entry = apply.entry(SYSCTL)
    lines = entry.content.splitlines()
    assert "vm.overcommit_memory = 1" in lines and f"net.core.somaxconn = {render.TCP_BACKLOG}" in lines
    assert (entry.mode, entry.user, entry.group) == ("644", "root", "root")
    assert apply.option("sysctl") == SYSCTL
    # Redis 7.0 turns THP off for itself (disable-thp): no extra unit.
    assert THP_PATH not in apply.paths() and apply.option("enable-units") is None
    # once the kernel has the values, a re-run sends nothing
    assert run_flow({"box": (host, {})}).calls["box"] == []


def test_somaxconn_is_raised_never_lowered_and_nothing_reapplied():
    kernel = {"vm.overcommit_memory": "1", "net.core.somaxconn": "4096", "thp": "madvise"}
    _, apply, _ = _apply(kernel=kernel)
    assert apply.option("sysctl") is None, "the kernel already has the values"
    assert "net.core.somaxconn = 4096" in apply.entry(SYSCTL).content.splitlines()


def test_old_server_without_disable_thp_gets_a_boot_unit():
    kernel = {"vm.overcommit_memory": "1", "net.core.somaxconn": "4096", "thp": "always"}
    _, apply, host = _apply("ubuntu-22.04", kernel=kernel)
    unit = apply.entry(THP_PATH)
    assert "Before=redis-server.service" in unit.content
    assert "echo never" in unit.content and "/sys/kernel/mm/transparent_hugepage/enabled" in unit.content
    assert unit.flags == ("unit",) and apply.option("enable-units") == configure.THP_UNIT
    assert run_flow({"box": (host, {})}).calls["box"] == [], "started and enabled: nothing more"


@pytest.mark.parametrize("container, data, why", [
    ("docker", {}, "docker container"),
    ("lxc", {}, "lxc container"),
    ("none", {"redis_kernel_tuning": False}, "redis_kernel_tuning=false"),
])
def test_skipped_with_a_note(container, data, why):
    result, apply, _ = _apply("ubuntu-22.04", data=data, container=container,
                              kernel={"vm.overcommit_memory": "0", "net.core.somaxconn": "128", "thp": "always"})
    assert SYSCTL not in apply.paths() and THP_PATH not in apply.paths()
    assert apply.option("sysctl") is None and apply.option("enable-units") is None
    assert any(why in text for text in result.report["box"]["notes"])
