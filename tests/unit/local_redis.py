"""A throwaway redis-server on this machine (loopback port, temp dir) for tests that need a real one.

The machine's Debian redis-server (7.0) is used; tests skip where it is missing. Besides the
server, `run_fact` runs a fact's shell command locally with /bin/sh (as pyinfra would on a
host) and `LocalHost` lets code that calls `host.get_fact` run against it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

SERVER = shutil.which("redis-server")
needs_server = pytest.mark.skipif(SERVER is None or shutil.which("redis-cli") is None,
                                  reason="no local redis-server/redis-cli")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_server(tmp_path: Path, user_lines: list[str]):
    """Start a server whose users are `user_lines` (redis.conf `user` lines); yields its port."""
    port = _free_port()
    conf = tmp_path / "redis.conf"
    conf.write_text("\n".join([
        f"port {port}", "bind 127.0.0.1", f"dir {tmp_path}", 'save ""', "appendonly no",
        f"pidfile {tmp_path}/redis.pid", f"logfile {tmp_path}/redis.log", "daemonize yes", *user_lines,
    ]) + "\n")
    subprocess.run([SERVER, str(conf)], check=True, capture_output=True)
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("the local redis-server did not start: "
                                 + (tmp_path / "redis.log").read_text(errors="replace"))
        yield port
    finally:
        pid = (tmp_path / "redis.pid").read_text().strip() if (tmp_path / "redis.pid").exists() else ""
        if pid:
            subprocess.run(["kill", pid], check=False)
            for _ in range(100):
                if not (tmp_path / "redis.pid").exists():
                    break
                time.sleep(0.05)


def client(port: int, **auth) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0), socket_timeout=5, **auth)


def fail_auth(port: int, username: bytes | str, times: int = 1) -> None:
    """`times` failed `AUTH username wrong` (any bytes: newlines, quotes, spaces), a connection each."""
    name = username.encode() if isinstance(username, str) else username
    request = b"*3\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n$5\r\nwrong\r\n" % (len(name), name)
    for _ in range(times):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            reply = sock.recv(4096)
        assert reply.startswith(b"-WRONGPASS"), reply


def run_fact(fact_cls, **kwargs):
    """The fact's command run here by /bin/sh, its output through the fact's own `process`."""
    fact = fact_cls()
    result = subprocess.run(["sh", "-c", fact.command(**kwargs)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return fact.process(result.stdout.splitlines())


class LocalHost:
    """Stands in for pyinfra's `host` where code calls `host.get_fact`: runs facts here."""

    name = "@local/test"

    def __init__(self, rewrite=lambda script: script):
        self.rewrite = rewrite  # e.g. point /etc/hsi-redis paths at a temp dir

    def get_fact(self, fact_cls, **kwargs):
        rewrite = self.rewrite

        class Rewritten(fact_cls):
            def command(self, **kw):
                return rewrite(super().command(**kw))

        return run_fact(Rewritten, **kwargs)
