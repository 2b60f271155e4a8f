"""SELinux: label the server's TCP ports so the confined server may bind them.

The policy labels 6379 (and 16379, 26379) `redis_port_t` already; any other port the server
listens on (the plain `redis_port` unless TLS-only closes it, and `redis_tls_port` with TLS
on) needs `semanage port -a -t redis_port_t -p tcp N`, or `-m` when another type holds the port.
Hosts with SELinux disabled are left alone; permissive hosts are labelled too, so that
switching them to enforcing later does not break the server.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation
from pyinfra.operations import apt, dnf

from .platform import Platform
from .settings import RedisSettings
from .tls import plain_port


def server_ports(conf: RedisSettings) -> tuple[int, ...]:
    """The TCP ports the server listens on: the plain port (0 when TLS-only), then the TLS port.

    **Example:** ``server_ports(conf)`` is ``(6379, 6380)`` with ``redis_tls: true``.
    """
    ports = [plain_port(conf)]
    if conf.tls is not None:
        ports.append(conf.tls.port)
    return tuple(dict.fromkeys(p for p in ports if p > 0))


class TcpPortTypes(FactBase):
    """The SELinux type of each given TCP port (`semanage port -l`); ports without one are absent.

    Returns ``{port: type}``. Ranges such as ``1024-65535`` of the catch-all types are skipped.
    """

    def command(self, ports: tuple[int, ...]) -> str:
        wanted = " ".join(str(int(p)) for p in ports)
        return (
            "semanage port -l -n 2>/dev/null | awk -v want=" + shlex.quote(wanted) + " '"
            'BEGIN { n = split(want, w, " ") } $2 == "tcp" { '
            'line = $0; sub(/^[^ ]+ +tcp +/, "", line); gsub(/ /, "", line); m = split(line, p, ","); '
            'for (i = 1; i <= m; i++) for (j = 1; j <= n; j++) if (p[i] == w[j]) print w[j] "=" $1 }\'; true'
        )

    def process(self, output):
        found: dict[int, str] = {}
        for line in output:
            port, sep, kind = line.partition("=")
            if sep and port.strip().isdigit():
                found.setdefault(int(port), kind.strip())
        return found


@operation()
def port_labels(ports: tuple[int, ...], se_type: str):
    """
    Give each TCP port the SELinux type `se_type` (idempotent: reads `semanage port -l` first).

    + ports: TCP port numbers
    + se_type: e.g. ``"redis_port_t"``

    **Example:**

    .. code:: python

        port_labels(name="Label 6390 redis_port_t", ports=(6390,), se_type="redis_port_t")
    """
    current = host.get_fact(TcpPortTypes, ports=tuple(ports))
    for port in ports:
        have = current.get(port)
        if have == se_type:
            continue
        option = "-a" if have is None else "-m"
        yield StringCommand("semanage port", option, "-t", shlex.quote(se_type), "-p tcp", str(int(port)))


def label_server_ports(conf, plat: Platform, selinux_mode: str) -> None:
    """On SELinux hosts: semanage's package, then the labels for the server's ports."""
    if selinux_mode not in ("Enforcing", "Permissive"):
        return
    ports = server_ports(conf)
    installer = apt.packages if plat.package_manager == "apt" else dnf.packages
    installer(name=f"Install {', '.join(plat.selinux_tools)} (semanage)", packages=list(plat.selinux_tools))
    port_labels(
        name=f"Label TCP port(s) {', '.join(map(str, ports))} {plat.selinux_port_type} (SELinux)",
        ports=ports,
        se_type=plat.selinux_port_type,
    )
