"""The exporter's side of the program: `--metrics` reads its page on the host (curl, wget, else bash's
/dev/tcp: a minimal Debian has only bash) and reports `exporter.up`; `apply --after-units` enables and
starts the exporter, restarting it when a file flagged `units` (its environment file, its TLS files) changed."""

from __future__ import annotations

import http.server
import os
import threading
from pathlib import Path

import pytest

from .conftest import bundle, free_port

TOOLS = ("curl", "wget", "bash")


class _Page(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body if self.path == "/metrics" else b"")

    def log_message(self, *args):
        pass


@pytest.fixture
def page():
    """A stand-in for the exporter's web server on a loopback port: set `.body`."""
    handler = type("Page", (_Page,), {"body": b""})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.handler = handler
    server.address = f"127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def path_without(tmp_path: Path, *missing: str) -> str:
    """A PATH holding every command of this machine except `missing` (links in one directory)."""
    found = tmp_path / f"bin-without-{'-'.join(missing) or 'nothing'}"
    found.mkdir(exist_ok=True)
    for directory in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            link = found / name
            if name not in missing and not link.exists() and not link.is_symlink():
                link.symlink_to(os.path.join(directory, name))
    return str(found)


METRICS = (b"# HELP redis_up Information about the Redis instance\n# TYPE redis_up gauge\nredis_up {}\n"
           b"redis_uptime_in_seconds 42\n")


@pytest.mark.parametrize("missing", [(), ("curl",), ("curl", "wget")])
def test_redis_up_is_read_with_whatever_the_host_has(host, page, tmp_path, missing):
    page.handler.body = METRICS.replace(b"{}", b"1")
    r = host.run("state", "--metrics", page.address, env={"PATH": path_without(tmp_path, *missing)})
    assert r.code == 0 and r.keys["exporter.up"] == "1", (r.out, r.err)
    page.handler.body = METRICS.replace(b"{}", b"0")
    assert host.run("verify", "--metrics", page.address).keys["exporter.up"] == "0"


def test_nothing_listening_is_down_and_no_tool_is_unverified(host, tmp_path):
    nobody = f"127.0.0.1:{free_port()}"
    assert host.run("verify", "--metrics", nobody).keys["exporter.up"] == "down"
    r = host.run("verify", "--metrics", nobody, env={"PATH": path_without(tmp_path, *TOOLS)})
    assert r.code == 0 and r.keys["exporter.up"] == "unverified", (r.out, r.err)


def test_a_page_without_redis_up_is_down(host, page):
    page.handler.body = b"go_goroutines 7\n"
    assert host.run("state", "--metrics", page.address).keys["exporter.up"] == "down"


def test_no_metrics_option_no_exporter_line(host):
    assert "exporter.up" not in host.run("state").keys


def env_entry(host, text: str) -> tuple:
    return ("file", "0640", "root", "root", "after,units", str(host.root / "etc" / "default" / "exporter"), text)


def unit_calls(host, unit: str) -> list[str]:
    return [c.split()[0] for c in host.calls() if c.split()[1:] == [unit]]


def test_after_units_are_enabled_started_and_restarted_only_when_their_files_change(host, page):
    page.handler.body = METRICS.replace(b"{}", b"1")
    args = ("--after-units", "exporter", "--metrics", page.address)
    first = host.run("apply", *args, stdin=bundle(env_entry(host, "REDIS_USER=hsi-exporter\n")))
    assert first.code == 0, first.err
    assert first.all("enabled") == ["exporter"] and first.keys["restarted_unit"] == "exporter"
    assert (host.fake / "exporter.enabled").exists() and (host.fake / "exporter.active").exists()
    again = host.run("apply", *args, stdin=bundle(env_entry(host, "REDIS_USER=hsi-exporter\n")))
    assert again.code == 0 and again.out == "", again.out
    assert unit_calls(host, "exporter").count("restart") == 1
    changed = host.run("apply", *args, stdin=bundle(env_entry(host, "REDIS_USER=hsi-exporter\nX=1\n")))
    assert changed.keys["restarted_unit"] == "exporter" and unit_calls(host, "exporter").count("restart") == 2
    (host.fake / "exporter.active").unlink()  # stopped by hand: started again, not restarted
    stopped = host.run("apply", *args, stdin=bundle(env_entry(host, "REDIS_USER=hsi-exporter\nX=1\n")))
    assert stopped.keys["started_unit"] == "exporter" and "restarted_unit" not in stopped.keys


def test_a_file_without_the_units_flag_restarts_nothing(host):
    other = ("file", "0644", "root", "root", "after", str(host.root / "etc" / "other"), "x\n")
    (host.fake / "exporter.enabled").touch()
    (host.fake / "exporter.active").touch()
    r = host.run("apply", "--after-units", "exporter", stdin=bundle(other))
    assert r.code == 0 and r.all("changed") == [other[-2]] and "restarted_unit" not in r.keys


def test_an_exporter_that_cannot_start_fails_the_call_saying_so(host):
    (host.fake / "exporter.fail").touch()
    r = host.run("apply", "--after-units", "exporter", stdin=bundle(env_entry(host, "A=1\n")))
    assert r.code == 1 and "hsi-redis: restart exporter failed: see systemctl status exporter" in r.err
