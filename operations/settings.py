"""Settings of the hosts of a run: loaded from pyinfra host data and validated, every host at once.

Each setting is read from pyinfra host data (inventory, `group_data/`, `--data`) under its name in
operations/defaults.py. `load(host)` validates *every* host of the run on its first call and raises one
`SettingsError` naming each `host: setting: problem`, so a bad value anywhere stops the run before any
host is touched.
"""

from __future__ import annotations

from typing import Any

from .validation import Settings, SettingsError, check_topology, parse

__all__ = ["Settings", "SettingsError", "backends_of", "clear_cache", "load", "load_all"]


def _host_data(host) -> tuple[dict[str, Any], str]:
    """The host's merged data (CLI --data > host > group > all), our keys only, and the address pyinfra
    reaches it by (`ssh_hostname`, else its name)."""
    merged = host.data.dict()
    ours = {k: v for k, v in merged.items() if isinstance(k, str) and k.startswith("redis_")}
    address = merged.get("ssh_hostname")
    return ours, address if isinstance(address, str) and address else host.name


_cache: dict[int, dict[str, Settings]] = {}


def load_all(inventory) -> dict[str, Settings]:
    """Validate every host in the inventory; raise SettingsError listing all problems."""
    key = id(inventory)
    if key not in _cache:
        parsed, problems, names = {}, [], []
        for inv_host in inventory:
            names.append(inv_host.name)
            result, host_problems = parse(inv_host.name, *_host_data(inv_host))
            problems += host_problems
            if result is not None:
                parsed[inv_host.name] = result
        parsed, across = check_topology(parsed, names)
        problems += across
        if problems:
            raise SettingsError(problems)
        _cache[key] = parsed
    return _cache[key]


def backends_of(inventory, server: str) -> list[Settings]:
    """The backend hosts (redis_role: backend) whose redis_server is `server`, in inventory order."""
    return [conf for conf in load_all(inventory).values() if conf.role == "backend" and conf.server == server]


def has_backend_hosts(inventory) -> bool:
    """Whether any host of the inventory is a backend host (redis_role: backend)."""
    return any(conf.role == "backend" for conf in load_all(inventory).values())


def clear_cache() -> None:
    """Forget validated inventories (tests run several inventories in one process)."""
    _cache.clear()


def load(host) -> Settings:
    """Settings of `host`, validating the whole inventory (`host.state`'s) on first use."""
    return load_all(host.state.inventory)[host.name]

