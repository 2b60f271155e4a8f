"""bench/minimal_deploy.py, the benchmark's yardstick, command by command on a fresh @fake Debian 12 host.

It must stay what issue 10 describes (five operations, nothing more) and, although throwaway,
keep the password out of every command line.
"""

from __future__ import annotations

import pytest

from pyinfra.connectors.fake import FakeConnector

from tests.commands import harness
from tests.commands.harness import PASSWORD, HostFixture, run_deploy

ARGUMENTS: list[dict] = []
FIVE = [
    "Install redis-server",
    "Write /etc/redis/redis.conf",
    "redis-server running and enabled",
    "Restart redis-server (config changed)",
    "PING with the password",
]


@pytest.fixture
def fresh_debian(monkeypatch):
    """The harness' answers, plus the two facts pyinfra's files.template asks on a fresh host.

    Also keeps the connector arguments of every command (`_env` would put a value into the
    remote `sh -c` argv, which the harness' command texts do not show) in `ARGUMENTS`.
    """
    answer = harness._Answers.__call__
    run_command = FakeConnector.run_shell_command
    ARGUMENTS.clear()

    def recording(self, command, print_output=False, print_input=False, **arguments):
        ARGUMENTS.append(arguments)
        return run_command(self, command, print_output=print_output, print_input=print_input, **arguments)

    def call(self, host, cls, *args, **kwargs):
        if cls.__name__ == "Directory":  # /etc/redis exists once the package is in
            is_dir = kwargs["path"] == "/etc/redis"
            return {"mode": 0o755, "user": "redis", "group": "redis"} if is_dir else None
        if cls.__name__ == "TmpDir":
            return "/tmp"
        return answer(self, host, cls, *args, **kwargs)

    monkeypatch.setattr(harness._Answers, "__call__", call)
    monkeypatch.setattr(FakeConnector, "run_shell_command", recording)
    return {"box": (HostFixture("debian-12"), {})}


def test_five_operations_in_order_and_no_password_in_any_command(fresh_debian):
    result = run_deploy(fresh_debian, entry="bench/minimal_deploy.py")
    assert result.operations("box") == FIVE
    assert PASSWORD not in result.joined("box")
    assert ARGUMENTS and not [a for a in ARGUMENTS if PASSWORD in repr(a)], "a password in _env reaches argv"
    (ping,) = [c.text for c in result.commands["box"] if c.operation == "PING with the password"]
    assert "REDISCLI_AUTH=" in ping and "/etc/redis/redis.conf" in ping and "PONG" in ping


def test_apt_update_is_bounded_by_cache_time(fresh_debian):
    """Without cache_time, apt.packages(update=True) would report a change on every run."""
    result = run_deploy(fresh_debian, entry="bench/minimal_deploy.py")
    assert {"path": "/var/lib/apt/periodic/update-success-stamp"} in result.fact_kwargs("box", "File")


def test_the_template_holds_the_password_and_aof(tmp_path):
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(harness.ROOT / "bench")), undefined=StrictUndefined)
    text = env.get_template("minimal-redis.conf.j2").render(password="pw-123")
    lines = text.splitlines()
    assert "requirepass pw-123" in lines and "appendonly yes" in lines
