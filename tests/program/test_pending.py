"""The pending-restart marker is down before the first file the server reads changes: a run that dies
between writing those files and the restart leaves it, and the next run restarts though nothing differs
any more (the deploy then sends an apply call with no file: tests/commands/test_restarts.py)."""

from __future__ import annotations

import os

from .conftest import bundle

# mv that fails for one target (a write dying half-way: disk full, a kill), else the real one
FAKE_MV = r"""#!/bin/sh
for a in "$@"; do [ "$a" = "$FAKE_MV_FAIL" ] && { echo "mv: cannot move to '$a': No space left on device" >&2; exit 1; }; done
exec /bin/mv "$@"
"""


def restarts(h) -> int:
    return sum(1 for call in h.calls() if call.split()[0] == "restart")


def test_a_run_that_dies_after_writing_leaves_the_restart_pending(host, tmp_path):
    host.fill(5)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mv").write_text(FAKE_MV)
    (bin_dir / "mv").chmod(0o755)
    cert = host.root / "etc" / "redis" / "tls" / "server.crt"
    new = host.render(extra=["hz 17"])
    payload = bundle(("file", "0640", "root", "root", "restart", str(host.config), new),
                     ("file", "0644", "root", "root", "restart", str(cert), "CERT\n"))
    before = restarts(host)
    r = host.run("apply", stdin=payload, env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_MV_FAIL": str(cert)})
    assert r.code == 1 and "not written" in r.err
    assert host.config.read_text() == new and not cert.exists()
    assert (host.state / "restart-pending").exists() and restarts(host) == before, "died before the restart"
    assert host.cli("config", "get", "hz").split() == ["hz", "10"]
    # the next run: redis.conf is as wanted already, the marker still says restart
    r = host.run("apply", stdin=bundle(("file", "0640", "root", "root", "restart", str(host.config), new)))
    assert r.code == 0 and "changed" not in r.keys and r.keys["restarted"] == "5 5", r.err
    assert host.cli("config", "get", "hz").split() == ["hz", "17"] and not (host.state / "restart-pending").exists()
