"""bench/minimal_deploy.py, the benchmark's yardstick, command by command on a fresh @fake Debian 12 host.

It must stay what issue 10 describes (five operations, nothing more) and, although throwaway,
keep the password out of every command line.
"""

from __future__ import annotations

import pytest
from pyinfra.connectors.fake import FakeConnector

from tests.commands import harness
from tests.commands.harness import PASSWORD, HostFixture, run_flow

ARGUMENTS: list[dict] = []
FIVE = [
    "Install redis-server",
    "Write /etc/redis/redis.conf",
    "redis-server running and enabled",
    "Restart redis-server (config changed)",
    "PING with the password",
]


def fresh_debian_facts(fixture: HostFixture, cls, kwargs: dict):
    """pyinfra's own facts, as a fresh Debian 12 host answers them (nothing installed, nothing running)."""
    name = cls.__name__
    if name == "Directory":  # /etc/redis exists once the package is in
        return {"mode": 0o755, "user": "redis", "group": "redis"} if kwargs["path"] == "/etc/redis" else None
    if name == "TmpDir":
        return "/tmp"
    if name == "File":
        return None  # no stamp, no redis.conf yet
    if name in ("DebPackages", "RpmPackages"):
        return {package: [version] for package, version in fixture.installed.items()}
    if name in ("SystemdStatus", "SystemdEnabled"):
        return {service: False for service in kwargs["services"]}
    if name in ("Sha1File", "Sha256File", "Md5File"):
        return None
    raise AssertionError(f"the bench test has no fixture for fact {name} {kwargs}")


@pytest.fixture
def fresh_debian(monkeypatch):
    """A fresh @fake Debian 12 host; keeps the connector arguments of every command (`_env` would put a
    value into the remote `sh -c` argv, which the command texts do not show) in `ARGUMENTS`."""
    run_command = FakeConnector.run_shell_command
    ARGUMENTS.clear()

    def recording(self, command, print_output=False, print_input=False, **arguments):
        ARGUMENTS.append(arguments)
        return run_command(self, command, print_output=print_output, print_input=print_input, **arguments)

    monkeypatch.setattr(FakeConnector, "run_shell_command", recording)
    return {"box": (HostFixture("debian-12"), {})}


def test_five_operations_in_order_and_no_password_in_any_command(fresh_debian):
    result = run_flow(fresh_debian, entry="bench/minimal_deploy.py", answer=fresh_debian_facts)
    assert result.operations("box") == FIVE
    assert PASSWORD not in "\n".join(text for _, text in result.commands["box"])
    assert ARGUMENTS and not [a for a in ARGUMENTS if PASSWORD in repr(a)], "a password in _env reaches argv"
    (ping,) = [text for operation, text in result.commands["box"] if operation == "PING with the password"]
    assert "REDISCLI_AUTH=" in ping and "/etc/redis/redis.conf" in ping and "PONG" in ping
    assert result.requests["box"] == [], "not ours: no hsi-redis state read"


def test_apt_update_is_bounded_by_cache_time(fresh_debian):
    """Without cache_time, apt.packages(update=True) would report a change on every run."""
    result = run_flow(fresh_debian, entry="bench/minimal_deploy.py", answer=fresh_debian_facts)
    assert {"path": "/var/lib/apt/periodic/update-success-stamp"} in result.fact_kwargs("box", "File")


def test_the_template_holds_the_password_and_aof(tmp_path):
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(harness.ROOT / "bench")), undefined=StrictUndefined)
    text = env.get_template("minimal-redis.conf.j2").render(password="pw-123")
    lines = text.splitlines()
    assert "requirepass pw-123" in lines and "appendonly yes" in lines
