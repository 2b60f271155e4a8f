"""`python -m operations.certs INVENTORY`: the private PKI helper's command line (see operations/pki.py).

It reads a pyinfra inventory the way pyinfra does, works out the names each host's server certificate
must cover, and creates (or keeps) the CA and the certificates.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import runpy
import sys
from pathlib import Path

from .pki import BACKEND_CLIENT, LOCAL_NAMES, ensure_pki, pki_dir

# -- inventory reading for the command line -------------------------------------------------------

def _module_data(path: Path) -> dict:
    if not path.exists():
        return {}
    return {k: v for k, v in runpy.run_path(str(path)).items() if not k.startswith("_")}


def _is_name(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", value))


def host_names(inventory: Path, group_data: Path | None = None, extra: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Inventory host -> the names its server certificate must cover.

    Reads a pyinfra inventory file the way pyinfra does (each module-level list/tuple is a
    group of `"name"` or `("name", {data})`) plus `group_data/all.py` and `group_data/<group>.py`.
    Names: `redis_backend_host`, the host's address (`ssh_hostname` or its name when that is a
    DNS name/IP), `extra`, and the local names the deploy's own checks use. Backend hosts
    (`redis_role: backend`) run no server and get none.
    """
    group_data = group_data or Path.cwd() / "group_data"
    module = _module_data(inventory)
    common = _module_data(group_data / "all.py")
    hosts: dict[str, list[str]] = {}
    for group, members in module.items():
        if not isinstance(members, (list, tuple)):
            continue
        group_vars = _module_data(group_data / f"{group}.py")
        for member in members:
            name, data = (member, {}) if isinstance(member, str) else (member[0], dict(member[1]))
            merged = {**common, **group_vars, **data}
            if merged.get("redis_role") == "backend":
                continue  # no server there: a backend host gets its server's CA (and client pair)
            names = [str(merged.get("redis_backend_host") or "localhost")]
            address = str(merged.get("ssh_hostname") or name)
            if _is_name(address):
                names.append(address)
            hosts.setdefault(name, [])
            hosts[name] = list(dict.fromkeys(hosts[name] + names + list(extra) + list(LOCAL_NAMES)))
    return hosts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m operations.certs",
        description="Create (or keep) a private CA, one Redis server certificate per inventory host "
                    "and a backend client certificate, for sites without a PKI. Existing valid files "
                    "are kept; keys are written 0600 in 0700 directories.",
    )
    parser.add_argument("inventory", type=Path, help="pyinfra inventory file (e.g. inventories/production.py)")
    parser.add_argument("--dir", type=Path, default=None,
                        help=f"output directory (default: {pki_dir()}, or $HSI_REDIS_SECRETS_DIR/pki)")
    parser.add_argument("--san", action="append", default=[],
                        help="extra name or address every server certificate covers (repeatable)")
    parser.add_argument("--no-client", action="store_true", help="do not create the backend client certificate")
    args = parser.parse_args(argv)
    if not args.inventory.exists():
        parser.error(f"{args.inventory}: no such inventory file")
    directory = args.dir or pki_dir()
    hosts = host_names(args.inventory, extra=tuple(args.san))
    for line in ensure_pki(directory, hosts, client=not args.no_client):
        print(line)
    print(f"\nCA: {directory / 'ca.crt'}; with redis_tls=true the deploy finds these files by default."
          f"\nmTLS: set redis_tls_client_cert={directory / (BACKEND_CLIENT + '.crt')} and "
          f"redis_tls_client_key={directory / (BACKEND_CLIENT + '.key')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
