"""The server's firewall (issue 11): who may reach a server that listens beyond loopback.

Loopback always; the server's backend hosts (their `redis_backend_address`) and `redis_firewall_allow`,
on the TLS port (and the plain one with `redis_allow_plaintext`); nobody else on any of its ports.
The deploy only ever adds its own objects and never touches anyone else's rules:

- nftables: its own table `inet hsi_redis`, written to `/etc/hsi-redis/firewall.nft` and loaded as one
  transaction (`nft -f`: the file replaces that table and nothing else), kept across reboots by its own
  unit `hsi-redis-firewall.service` (after nftables.service, whose `flush ruleset` would remove it). The
  loaded table carries the rules' digest in its comment: the state read compares it.
- firewalld, where it runs (the RPM family's usual firewall): its own policy
  `/etc/firewalld/policies/hsi-redis.xml` (ingress any zone, egress the host), then `firewall-cmd --reload`.

A host that may not change its firewall (a container without CAP_NET_ADMIN) is skipped with a note, as
kernel tuning is. A server that no longer needs rules (loopback only, `redis_firewall: false`) has the
deploy's own removed.
"""

from __future__ import annotations

import ipaddress

from pyinfra import host
from pyinfra.api import operation

from . import program, render, report
from .hoststate import HostState
from .program import FileEntry
from .target import STATE_DIR, Firewall, Target

NFT_FILE = f"{STATE_DIR}/firewall.nft"
UNIT = "hsi-redis-firewall.service"
UNIT_FILE = f"/etc/systemd/system/{UNIT}"
POLICY_FILE = "/etc/firewalld/policies/hsi-redis.xml"
NFT = "/usr/sbin/nft"       # where Debian and the RPM family install it
PACKAGE = "nftables"


def mark(firewall: Firewall) -> str:
    """The comment the loaded table carries: the rules' digest."""
    return f"hsi-redis {firewall.digest}"


def _families(sources: tuple[str, ...]) -> tuple[list[str], list[str]]:
    v4 = [s for s in sources if ipaddress.ip_network(s, strict=False).version == 4]
    return v4, [s for s in sources if s not in v4]


def nft_rules(target: Target) -> str:
    firewall = target.firewall
    v4, v6 = _families(firewall.sources)
    return render.render("firewall.nft.j2", name=target.name, mark=mark(firewall), ports=firewall.ports,
                         open_ports=firewall.open_ports, sources=firewall.sources, v4=v4, v6=v6)


def nft_unit(target: Target, state: HostState) -> str:
    return render.render("hsi-redis-firewall.service.j2", service=target.row.service,
                         nft=state.firewall.nft or NFT, file=NFT_FILE)


def firewalld_policy(target: Target) -> str:
    firewall = target.firewall
    v4, _ = _families(firewall.sources)
    sources = [(s, "ipv4" if s in v4 else "ipv6") for s in firewall.sources]
    return render.render("firewalld-policy.xml.j2", name=target.name, ports=firewall.ports,
                         open_ports=firewall.open_ports, sources=sources)


def tool(target: Target, state: HostState) -> tuple[str | None, str | None]:
    """(`nft` | `firewalld` | None, why the step is skipped). None without a reason: nothing to filter."""
    firewall = target.firewall
    if firewall is None:
        return None, None
    if state.firewall.firewalld == "running":
        return "firewalld", None
    if not state.firewall.cap:
        where = ", ".join(target.settings.exposed)
        return None, (f"firewall skipped: this host may not change its firewall (no CAP_NET_ADMIN: a container "
                      f"started without it?); TCP {', '.join(map(str, firewall.ports))} on {where} stay "
                      "unfiltered: filter them where the host's network is managed")
    return "nft", None


def needs_package(target: Target, state: HostState) -> bool:
    """Whether the install step must bring nftables (the nft rules are due and there is no nft)."""
    return tool(target, state)[0] == "nft" and not state.firewall.nft


def entries(target: Target, state: HostState, chosen: str) -> list[FileEntry]:
    if chosen == "nft":
        return [FileEntry(NFT_FILE, nft_rules(target).encode(), 0o600),
                FileEntry(UNIT_FILE, nft_unit(target, state).encode(), 0o644, flags=("unit",))]
    return [FileEntry(POLICY_FILE, firewalld_policy(target).encode(), 0o644)]


def paths(target: Target) -> list[str]:
    """Every file this step may write or remove (for the state read)."""
    return [NFT_FILE, UNIT_FILE, POLICY_FILE] if target.serves else []


def units(target: Target) -> list[str]:
    return [UNIT] if target.serves else []


def loaded(target: Target, state: HostState, chosen: str) -> bool:
    """Whether the rules in force are this run's (the table's digest; firewalld's policy by its file)."""
    if chosen == "nft":
        unit = state.unit(UNIT)
        return (state.firewall.table == mark(target.firewall) and unit.running
                and unit.enabled == "enabled")
    return state.firewall.policy


def _summary(target: Target, chosen: str) -> dict:
    firewall = target.firewall
    return {"tool": chosen, "ports": list(firewall.ports), "open_ports": list(firewall.open_ports),
            "sources": list(firewall.sources), "backend_hosts": list(firewall.backends)}


@operation()
def server_firewall(target: Target, state: HostState, salt: str):
    """
    Admit the server's ports only from loopback, its backend hosts and redis_firewall_allow.

    + target: the host's Target (a backend host, or a verify-only one, changes nothing here)
    + state: the host's state read (prologue)
    + salt: the salt of that read

    **Example:**

    .. code:: python

        server_firewall(name="Firewall", target=target, state=state, salt=salt)
    """
    if not target.serves or target.verify_only:
        host.noop("no firewall step on this host")
        return
    chosen, skipped = tool(target, state)
    if skipped:
        report.note(host.name, skipped)
        host.noop(skipped)
        return
    if chosen is None:  # nothing to filter: the deploy's own rules, if an earlier run left them, go
        leftovers = [p for p in (NFT_FILE, UNIT_FILE, POLICY_FILE) if state.file(p).exists]
        if not leftovers and not state.firewall.table:
            host.noop("the server listens on loopback only, or redis_firewall is off")
            return
        yield program.command("firewall", *program.options(tool="off", fw_unit=UNIT, remove=leftovers))
        return
    report.record(host.name, firewall=_summary(target, chosen))
    if not target.firewall.sources:
        report.note(host.name, f"the firewall admits no other host to TCP {', '.join(map(str, target.firewall.ports))} "
                    "(no backend hosts name this server and redis_firewall_allow is empty): loopback only")
    wanted = entries(target, state, chosen)
    changed = [e for e in wanted if state.differs(salt, e)]
    if not changed and loaded(target, state, chosen):
        host.noop("the firewall rules are in force")
        return
    options = {"tool": chosen, "fw_file": wanted[0].path}
    if chosen == "nft":
        options.update(fw_unit=UNIT, fw_mark=mark(target.firewall))
    yield program.command("firewall", *program.options(**options), stdin=program.bundle(changed))
