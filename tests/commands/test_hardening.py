"""Kernel tuning on a non-container host, command by command (pyinfra's @fake connector with
fact fixtures patched into Host.get_fact; nothing runs anywhere)."""

from __future__ import annotations

import base64

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.host import Host
from pyinfra.context import ctx_host, ctx_state

from operations import hardening, platform, report, settings

REAL_MACHINE = {"os_id": "debian", "version_id": "12", "id_like": "", "container": "none", "systemd": "yes"}


def fake_facts(kernel: dict, files: dict | None = None):
    """A Host.get_fact replacement answering from fixtures: name of the fact class -> value."""
    files = files or {}

    def get_fact(self, cls, *args, **kwargs):
        name = cls.__name__
        if name == "KernelState":
            return dict(kernel)
        if name == "ManagedFile":
            return files.get(kwargs["path"])
        if name in ("SystemdStatus", "SystemdEnabled"):
            return {}
        raise AssertionError(f"unexpected fact {name} {kwargs}")

    return get_fact


def commands_of(deploy_func, *args, kernel: dict, files: dict | None = None, monkeypatch) -> list[tuple]:
    """Run `deploy_func` on one @fake host; return (operation name, command text, stdin) per command."""
    monkeypatch.setattr(Host, "get_fact", fake_facts(kernel, files))
    inventory = Inventory((["@fake/box"], {"fake_delay": 0, "fake_delay_jitter": 0}))
    state = State(inventory, Config())
    connect_all(state)
    add_deploy(state, deploy_func, *args)
    (box,) = list(inventory)
    produced = []
    with ctx_state.use(state), ctx_host.use(box):
        for op_hash in state.get_op_order():
            op_data = state.ops[box].get(op_hash)
            if op_data is None:
                continue
            name = ", ".join(sorted(state.get_op_meta(op_hash).names))
            for command in op_data.command_generator():
                text = command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
                stdin = getattr(command, "connector_arguments", {}).get("_stdin")
                produced.append((name, text, stdin))
    return produced


def _conf(**data) -> settings.RedisSettings:
    conf, problems = settings.parse("box", {"redis_password": "x" * 32, **data})
    assert not problems
    return conf


def _file_content(stdin) -> str:
    return base64.b64decode("".join(stdin)).decode()


DEBIAN_12 = platform.TABLE[("debian", "12")]["redis"]
UBUNTU_22 = platform.TABLE[("ubuntu", "22.04")]["redis"]


def test_real_machine_gets_persistent_and_applied_sysctls(monkeypatch):
    kernel = {"vm.overcommit_memory": "0", "net.core.somaxconn": "128", "thp": "always"}
    produced = commands_of(hardening.harden_host, _conf(), DEBIAN_12, REAL_MACHINE, kernel=kernel,
                           monkeypatch=monkeypatch)
    by_op = {name: (text, stdin) for name, text, stdin in produced}
    write = by_op[f"Harden the host | Write {hardening.SYSCTL_FILE}"]
    content = _file_content(write[1])
    assert "vm.overcommit_memory = 1" in content.splitlines()
    assert f"net.core.somaxconn = {hardening.TCP_BACKLOG}" in content.splitlines()
    assert "chmod 644" in write[0] and hardening.SYSCTL_FILE in write[0]
    apply = by_op["Harden the host | Apply the kernel settings"]
    assert apply[0] == f"sysctl -q -p {hardening.SYSCTL_FILE}"
    # Redis 7.0 turns THP off for itself (disable-thp): no extra unit.
    assert not any("thp" in name.lower() for name in by_op)


def test_somaxconn_is_raised_never_lowered_and_nothing_reapplied(monkeypatch):
    kernel = {"vm.overcommit_memory": "1", "net.core.somaxconn": "4096", "thp": "madvise"}
    assert hardening.wanted_sysctls(kernel)["net.core.somaxconn"] == 4096
    produced = commands_of(hardening.harden_host, _conf(), DEBIAN_12, REAL_MACHINE, kernel=kernel,
                           monkeypatch=monkeypatch)
    names = [name for name, _, _ in produced]
    assert "Harden the host | Apply the kernel settings" not in names, "the kernel already has the values"
    content = _file_content(produced[0][2])
    assert "net.core.somaxconn = 4096" in content


def test_old_server_without_disable_thp_gets_a_boot_unit(monkeypatch):
    kernel = {"vm.overcommit_memory": "1", "net.core.somaxconn": "4096", "thp": "always"}
    produced = commands_of(hardening.harden_host, _conf(), UBUNTU_22, REAL_MACHINE, kernel=kernel,
                           monkeypatch=monkeypatch)
    unit_path = f"/etc/systemd/system/{hardening.THP_UNIT}"
    unit = [stdin for name, text, stdin in produced if unit_path in name]
    assert unit, [name for name, _, _ in produced]
    content = _file_content(unit[0])
    assert "Before=redis-server.service" in content
    assert "echo never" in content and "/sys/kernel/mm/transparent_hugepage/enabled" in content
    assert any("systemctl" in text and hardening.THP_UNIT in text for _, text, _ in produced)


@pytest.mark.parametrize("identity, data, why", [
    ({**REAL_MACHINE, "container": "docker"}, {}, "docker container"),
    ({**REAL_MACHINE, "container": "lxc"}, {}, "lxc container"),
    (REAL_MACHINE, {"redis_kernel_tuning": False}, "redis_kernel_tuning=false"),
])
def test_skipped_with_a_note(monkeypatch, identity, data, why):
    report.RESULTS.pop("@fake/box", None)
    produced = commands_of(hardening.harden_host, _conf(**data), DEBIAN_12, identity, kernel={},
                           monkeypatch=monkeypatch)
    assert produced == []
    assert any(why in text for text in report.RESULTS["@fake/box"]["notes"])
