"""rotate.py with the backend on another host (issue 11): the server adds the new password, then the
backend host's `.env` gets it (its unit restarted), then the server drops the old one; without a backend
unit the old password stays until a second run finds the `.env` holding the new one."""

from __future__ import annotations

import hashlib

from operations import credentials

from .harness import HostFixture, fresh_host, healthy_server, run_flow

SERVER, BACKEND = "nvr", "app"
ENV = "/opt/hsi/backend/.env"
NOTICE = "/etc/hsi-redis/rotation-notice"
FAIL_ROTATE = {"hsi-redis rotate ": {"success": False,
                                     "stderr": "hsi-redis: the server refuses hsi-admin with /etc/hsi-redis/cli.auth"},
               "exit 1": {"success": False, "stderr": "simulated failure"}}


def hosts(backend_unit: bool = True, server_data: dict | None = None) -> dict:
    server = {"redis_role": "server", "redis_password": None, "redis_backend_host": "nvr.lan",
              **(server_data or {})}
    backend = {"redis_role": "backend", "redis_server": f"@fake/{SERVER}", "redis_password": None,
               **({"redis_backend_unit": "hsi-backend"} if backend_unit else {})}
    return {SERVER: (fresh_host("debian-12", server=healthy_server()), server),
            BACKEND: (HostFixture("debian-12"), backend)}


def converged(backend_unit: bool = True, server_data: dict | None = None) -> dict:
    pair = hosts(backend_unit, server_data)
    first = run_flow(pair)
    assert first.report[BACKEND]["status"] == "ok", first.report
    return pair


def env_password(pair: dict) -> str:
    return pair[BACKEND][0].envs[ENV][0]["REDIS_PASSWORD"].split("=", 1)[1].strip("'")


def test_the_backend_host_gets_the_new_password_between_add_and_drop():
    pair = converged()
    old = credentials.generated_password(f"@fake/{SERVER}").reveal()
    assert env_password(pair) == old
    result = run_flow(pair, entry="rotate.py")
    new = credentials.secret_path(f"@fake/{SERVER}").read_text().strip()
    assert new != old, "the pending password became the current one"
    rotate = result.call(SERVER, "rotate")
    assert rotate.option("drop") == "0" and rotate.password == new, "the old one stays while backend hosts move"
    write = result.call(BACKEND, "write")
    assert write.option("restart-units") == "hsi-backend.service" and write.paths() == [ENV]
    assert new in write.entry(ENV).content and old not in write.entry(ENV).content
    drop = result.call(SERVER, "rotate-drop")
    assert drop.password == new
    order = result.sequence
    assert order.index((SERVER, "rotate")) < order.index((BACKEND, "write")) < order.index((SERVER, "rotate-drop"))
    assert result.report[BACKEND]["status"] == "ok" and result.report[SERVER]["status"] == "ok"
    assert not [w for w in result.report[SERVER].get("warnings", []) if "rotation not finished" in w]
    assert env_password(pair) == new


def test_without_a_backend_unit_the_old_password_stays_until_the_next_run():
    pair = converged(backend_unit=False)
    old = credentials.generated_password(f"@fake/{SERVER}").reveal()
    first = run_flow(pair, entry="rotate.py")
    assert "rotate-drop" not in first.verbs(SERVER)
    write = first.call(BACKEND, "write")
    assert write.option("restart-units") is None
    (warning,) = [w for w in first.report[SERVER]["warnings"] if "rotation not finished" in w]
    assert f"the HSI backend on @fake/{BACKEND}" in warning and "redis_backend_unit" in warning
    assert credentials.secret_path(f"@fake/{SERVER}").read_text().strip() == old, "not promoted yet"
    # a run that finds the .env holding the new password but no notice of the server's for it (a run cut
    # before the server's program left it: nobody was told to restart) keeps the old password
    cut = run_flow(pair, entry="rotate.py")
    assert "rotate-drop" not in cut.verbs(SERVER)
    # the server's program left its notice for the new password (kept_old); the operator restarted the
    # backend; the next run drops the old password
    new = env_password(pair)
    pair[SERVER][0].files[NOTICE] = ((hashlib.sha256(new.encode()).hexdigest() + "\n").encode(), 0o600, "root",
                                     "root")
    second = run_flow(pair, entry="rotate.py")
    assert second.verbs(BACKEND) == [] and "rotate-drop" in second.verbs(SERVER)
    assert second.call(SERVER, "rotate-drop").password == env_password(pair) != old
    assert credentials.secret_path(f"@fake/{SERVER}").read_text().strip() == env_password(pair)


def test_a_server_that_fails_to_rotate_leaves_its_backend_host_untouched():
    pair = converged()
    server_fixture, data = pair[SERVER]
    pair[SERVER] = (server_fixture, {**data, "fake_responses": FAIL_ROTATE})
    before = env_password(pair)
    result = run_flow(pair, entry="rotate.py")
    assert result.verbs(BACKEND) == [] and env_password(pair) == before
    entry = result.report[BACKEND]
    assert entry["status"] == "failed" and entry["problem"] == (
        f"server @fake/{SERVER} failed: the server refuses hsi-admin with /etc/hsi-redis/cli.auth"), entry


def test_an_explicit_password_reaches_the_backend_host(monkeypatch):
    pair = converged(server_data={"redis_password": "the-old-password-0123456789"})
    pair[SERVER] = (pair[SERVER][0], {**pair[SERVER][1], "redis_password": "the-new-password-0123456789"})
    result = run_flow(pair, entry="rotate.py")
    assert "the-new-password-0123456789" in result.call(BACKEND, "write").entry(ENV).content
    assert result.call(SERVER, "rotate-drop").password == "the-new-password-0123456789"
