"""hsi-redis as a package another pyinfra deploy uses: a built wheel (templates and the host program
inside), installed outside the repository, called from a deploy file of the user's own, run from a
directory of the user's own. The secrets and the report land there, never inside the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import ROOT

USER_DEPLOY = '''"""A site's own deploy that provisions Redis for HSI with hsi-redis, then does its own thing."""
import operations
from operations import flows
from pyinfra.operations import server

flows.provision()
server.shell(name="The site's own step", commands=["true"])
print("hsi-redis loaded from", operations.__file__)
'''


def test_a_wheel_installed_elsewhere_provisions_from_a_users_own_deploy(host_factory, tmp_path):
    host = host_factory("packaged", "bookworm")
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = wheels.glob("hsi_redis-*.whl")
    site = tmp_path / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    assert (site / "operations" / "program" / "hsi-redis.sh").is_file()
    assert (site / "operations" / "templates" / "redis.conf.j2").is_file()
    work = tmp_path / "site-work"
    work.mkdir()
    (work / "my_deploy.py").write_text(USER_DEPLOY)
    (work / "inventory.py").write_text(f"hosts = [{host.inventory_name!r}]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HSI_REDIS_", "REDIS_PASSWORD"))}
    env["PYTHONPATH"] = str(site)  # ahead of the repository's editable install
    run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "inventory.py", "my_deploy.py"], cwd=work,
                         env=env, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert f"hsi-redis loaded from {site}" in output, output
    assert "The site's own step" in output
    # secrets and report in the user's directory, nothing written into the installed package
    store = work / ".secrets"
    assert oct(store.stat().st_mode & 0o777) == "0o700"
    report = json.loads((work / "reports" / "last-run.json").read_text())
    assert report["hosts"][host.inventory_name]["status"] == "ok"
    assert not list(site.rglob(".secrets")) and not list(site.rglob("reports"))
    password = next(store.glob("*/redis_password")).read_text().strip()
    assert host.redis_cli("ping", password=password) == "PONG"
