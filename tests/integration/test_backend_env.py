"""The backend's files where the backend's user owns the directory, on a real Debian 12 host
(issue 9, items 2 and 8): root never follows that user's links, an existing `.env` keeps its
owner, group and (never looser) mode, CRLF stays CRLF, and a `.env` the merge cannot read
unambiguously is refused with the line number.

The backend's user is `hsi` (uid 1001), owning /opt/hsi/backend as a checkout would."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dotenv import dotenv_values

from operations import pki as pki_helper

from .conftest import generated_password, make_runner

ENV = "/opt/hsi/backend/.env"
BACKEND_LINES = "DATABASE_URL=postgresql+asyncpg://hsi:s3cr%40t@localhost:5432/hsi\nLOG_LEVEL=INFO\n"
AS_HSI = "setpriv --reuid=hsi --regid=hsi --init-groups --"


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return make_runner(tmp_path_factory)


@pytest.fixture(scope="module")
def backend_host(host_factory, runner):
    """A converged host whose backend directory and .env (0640) belong to hsi."""
    host = host_factory("envowner", "bookworm")
    host.sh("useradd --uid 1001 --user-group --create-home hsi && mkdir -p /opt/hsi/backend && "
            "chown hsi:hsi /opt/hsi/backend")
    write_env(host, BACKEND_LINES)
    result = runner([host])
    assert result.returncode == 0, result.output
    return host


def write_env(host, content: str, mode: str = "640") -> None:
    """The backend's user writes its own .env (as it would with its editor)."""
    host.sh(f"rm -f {ENV} && {AS_HSI} sh -c 'umask 077; cat > {ENV}; chmod {mode} {ENV}'", stdin=content)


def snapshot(host, *paths: str) -> str:
    """Owner, mode, link target and content hash of each path (links not followed), and the listing."""
    script = "; ".join(
        f"stat -c '%n %U %G %a %F' {p}; readlink {p}; [ -L {p} ] || sha256sum {p} 2>&1" for p in paths)
    return host.sh(f"{script}; ls -la --time-style=+ /opt/hsi/backend", check=False).stdout


def test_a_service_users_env_keeps_owner_group_and_mode(backend_host, runner):
    """Item 8: hsi:hsi 0640 stays hsi:hsi 0640 (it became root 0600 before), other lines kept."""
    host = backend_host
    assert host.stat(ENV) == "640 hsi hsi"
    env = dotenv_values(stream=io.StringIO(host.sh(f"cat {ENV}").stdout))
    assert env["REDIS_PASSWORD"] == generated_password(runner, host)
    assert env["DATABASE_URL"] == "postgresql+asyncpg://hsi:s3cr%40t@localhost:5432/hsi"
    # The backend itself (hsi) reads it.
    assert "REDIS_PASSWORD=" in host.sh(f"{AS_HSI} cat {ENV}").stdout
    again = runner([host])
    assert again.returncode == 0 and again.host(host)["changes"] == 0, again.output
    assert again.host(host)["status"] == "ok"


def test_a_new_env_in_the_users_directory_belongs_to_that_user(backend_host, runner):
    host = backend_host
    host.sh(f"rm -f {ENV}")
    result = runner([host])
    assert result.returncode == 0, result.output
    assert host.stat(ENV) == "600 hsi hsi"


def test_a_world_readable_env_is_tightened_to_0640(backend_host, runner):
    host = backend_host
    write_env(host, BACKEND_LINES, mode="644")
    result = runner([host])
    assert result.returncode == 0, result.output
    assert host.stat(ENV) == "640 hsi hsi"


@pytest.mark.parametrize("target", ["/etc/hsi-redis/cli.auth", "/etc/shadow"])
def test_env_linked_to_a_root_file_is_refused_and_its_content_never_reaches_hsi(backend_host, runner, target):
    """Item 2: hsi replaces .env by a link to a root-only file; the deploy (told to give the .env
    to hsi, so that the old code handed hsi the target's content) fails that host naming the
    setting, and nothing changes."""
    host = backend_host
    host.sh(f"rm -f {ENV} && {AS_HSI} ln -s {target} {ENV}")
    secret_line = host.sh(f"head -n 1 {target}").stdout.strip()
    assert secret_line
    before = snapshot(host, target, ENV)
    result = runner({host: {"redis_backend_env_owner": "hsi"}})
    assert result.returncode != 0, result.output
    entry = result.host(host)
    assert entry["status"] == "failed", entry
    assert "redis_backend_env_path" in entry["problem"] and "symbolic link" in entry["problem"], entry
    assert entry["changes"] == 0, entry["changed_operations"]
    assert snapshot(host, target, ENV) == before
    # No file hsi can read holds the target's content (grep runs as hsi; the pattern on stdin).
    found = host.sh(f"{AS_HSI} grep -rlsF -f - /opt /home /tmp /var/tmp", check=False, stdin=secret_line + "\n")
    assert found.stdout == "", found.stdout
    assert secret_line not in result.output
    write_env(host, BACKEND_LINES)
    assert runner([host]).returncode == 0


def test_crlf_env_keeps_crlf_and_the_next_run_changes_nothing(backend_host, runner):
    host = backend_host
    write_env(host, BACKEND_LINES.replace("\n", "\r\n") + "REDIS_URL=redis://old-host:6379/3\r\n")
    result = runner([host])
    assert result.returncode == 0, result.output
    raw = host.sh(f"od -An -c {ENV} | tr -d ' \\n'").stdout
    lines = raw.split("\\n")[:-1]
    assert len(lines) == 4 and all(line.endswith("\\r") for line in lines), raw
    env = dotenv_values(stream=io.StringIO(host.sh(f"cat {ENV}").stdout, newline=""))
    assert env["REDIS_URL"] == "redis://localhost:6379/0"
    assert env["REDIS_PASSWORD"] == generated_password(runner, host)
    again = runner([host])
    assert again.returncode == 0 and again.host(host)["changes"] == 0, again.output


@pytest.mark.parametrize("content, line", [
    (BACKEND_LINES + "'REDIS_PASSWORD'=sneaky-value-1\n", 3),
    (BACKEND_LINES + '"REDIS_URL"=redis://sneaky-value-2:1/0\n', 3),
    ('REDIS_PASSWORD="sneaky-value-3\ncontinued"\n' + BACKEND_LINES, 1),
])
def test_an_env_the_merge_cannot_read_unambiguously_is_refused(backend_host, runner, content, line):
    host = backend_host
    write_env(host, content)
    before = snapshot(host, ENV)
    result = runner([host])
    assert result.returncode != 0, result.output
    entry = result.host(host)
    assert f"{ENV} line {line}: " in entry["problem"], entry
    assert "sneaky-value" not in result.output and "sneaky-value" not in str(entry)
    assert snapshot(host, ENV) == before
    write_env(host, BACKEND_LINES)
    assert runner([host]).returncode == 0


def test_tls_files_of_users_are_written_as_them_and_links_never_chowned(host_factory, tmp_path_factory):
    """The backend's redis-tls/ (in hsi's directory): its user replaces ca.crt by a link to the server's
    CA, same content. The old code chowned through the link and gave it the server's CA."""
    host = host_factory("tlsowner", "bookworm")
    host.sh("useradd --uid 1001 --user-group hsi && mkdir -p /opt/hsi/backend && chown hsi:hsi /opt/hsi/backend")
    runner = make_runner(tmp_path_factory)
    pki = Path(runner.secrets_dir) / "pki"
    pki_helper.ensure_pki(pki, {host.inventory_name: ["localhost"]})
    data = {
        "redis_tls": True, "redis_backend_env_owner": "hsi",
        "redis_tls_client_cert": str(pki / "backend-client.crt"),
        "redis_tls_client_key": str(pki / "backend-client.key"),
    }
    first = runner({host: data})
    assert first.returncode == 0, first.output
    assert host.stat("/opt/hsi/backend/redis-tls") == "750 hsi hsi"
    assert host.stat("/opt/hsi/backend/redis-tls/client.key") == "600 hsi hsi"
    server_ca = "/etc/redis/tls-ca.crt"
    host.sh(f"{AS_HSI} ln -sf {server_ca} /opt/hsi/backend/redis-tls/ca.crt")
    before = snapshot(host, server_ca)
    second = runner({host: data})
    assert second.returncode == 0, second.output
    assert snapshot(host, server_ca) == before
    assert host.stat(server_ca) == "644 root root"
    path = "/opt/hsi/backend/redis-tls/ca.crt"
    assert host.sh(f"stat -c '%a %U %F' {path}").stdout.strip() == "644 hsi regular file", path
    third = runner({host: data})
    assert third.returncode == 0 and third.host(host)["changes"] == 0, third.output
    # hsi swaps the whole directory for a link to the server's: refused, naming the setting.
    host.sh(f"{AS_HSI} sh -c 'mv /opt/hsi/backend/redis-tls /opt/hsi/backend/old-tls && "
            "ln -s /etc/redis /opt/hsi/backend/redis-tls'")
    server_dir = snapshot(host, server_ca, "/etc/redis", "/etc/redis/tls-server.key")
    fourth = runner({host: data})
    assert fourth.returncode != 0, fourth.output
    assert "redis_tls_backend_dir" in fourth.host(host)["problem"], fourth.host(host)
    assert snapshot(host, server_ca, "/etc/redis", "/etc/redis/tls-server.key") == server_dir
