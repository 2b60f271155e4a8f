"""verify.py on a real host: each failure is classified with its fix, and deploy.py heals it."""

from __future__ import annotations


def test_verify_classifies_failures_and_deploy_heals(host_factory, run_pyinfra):
    host = host_factory("verify", "bookworm")
    data = {host: {"redis_password": "verify-test-password-0123"}}

    untouched = run_pyinfra(data, entry="verify.py")
    assert untouched.returncode != 0
    assert untouched.host(host)["kind"] == "not installed"
    assert host.sh("command -v redis-server", check=False).returncode != 0, "verify.py must change nothing"

    assert run_pyinfra(data).returncode == 0
    ok = run_pyinfra(data, entry="verify.py")
    assert ok.returncode == 0 and ok.host(host)["status"] == "ok", ok.output

    # The server's backend identity now wants another password than the one deployed (the
    # deploy's own checks log in as the admin identity, so this is named precisely). Only the
    # admin may change it: the backend identity is denied CONFIG SET.
    assert "NOPERM" in host.redis_cli("config", "set", "requirepass", "x", password="verify-test-password-0123")
    host.sh('REDISCLI_AUTH="$(cat /etc/hsi-redis/cli.auth)" redis-cli --no-auth-warning --user hsi-admin '
            "config set requirepass someone-else-changed-it")
    wrong = run_pyinfra(data, entry="verify.py")
    assert wrong.returncode != 0 and wrong.host(host)["kind"] == "WRONGPASS (backend identity)"
    assert "verify failed: WRONGPASS (backend identity)" in wrong.output and "Fix:" in wrong.output

    host.sh("systemctl stop redis-server")
    stopped = run_pyinfra(data, entry="verify.py")
    assert stopped.returncode != 0 and stopped.host(host)["kind"] == "not running or refused"

    healed = run_pyinfra(data)
    assert healed.returncode == 0 and healed.host(host)["status"] == "ok", healed.output
    assert host.redis_cli("ping", password="verify-test-password-0123") == "PONG"
