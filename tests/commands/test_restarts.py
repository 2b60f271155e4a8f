"""Restarts at command level: a file the server reads is written only after a pending restart
is recorded on the host, and a restart still pending from an interrupted run happens even
when no file changes in this run."""

from __future__ import annotations

from operations import certs, configure, platform, settings

from .harness import HEALTHY_SERVER, PASSWORD, HostFixture, run_deploy

MARK = "umask 077; mkdir -p /etc/hsi-redis; [ -e /etc/hsi-redis/restart-pending ] || "
PLAT = platform.TABLE[("debian", "12")]["redis"]
RESTART = "svc=redis-server; cli=redis-cli;"


def test_a_pending_restart_is_recorded_before_each_file_the_server_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path))
    certs.ensure_pki(certs.pki_dir(), {"@fake/deb": ["localhost"]})
    result = run_deploy({"deb": (HostFixture("debian-12", container="docker"), {"redis_tls": True})})
    texts = result.texts("deb")
    for path in (PLAT.dropin_path, "/etc/redis/tls/ca.crt", "/etc/redis/tls/server.crt",
                 "/etc/redis/tls/server.key", PLAT.config_path):
        write = next(i for i, t in enumerate(texts) if f'mv -f "$tmp" {path};' in t)
        assert texts[write - 1].startswith(MARK), path
        assert f"cp {PLAT.config_path} /etc/hsi-redis/restart-pending.tmp" in texts[write - 1]
    # the deploy's own credential is not read by the server: no marker for it
    auth = next(i for i, t in enumerate(texts) if 'mv -f "$tmp" /etc/hsi-redis/cli.auth;' in t)
    assert not texts[auth - 1].startswith(MARK)
    assert any(t.startswith(RESTART) for t in texts[auth:])


def test_a_pending_restart_happens_though_no_file_changes_now(tmp_path, monkeypatch):
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path))
    conf, problems = settings.parse("@fake/deb", {"redis_password": PASSWORD})
    assert problems == []
    # redis.conf already as the deploy wants it
    files = {"deb": {PLAT.config_path: (configure.render_config(conf, PLAT), 0o640, "root", PLAT.group)}}
    owed = HostFixture("debian-12", server=dict(HEALTHY_SERVER, restart_pending="yes"))
    texts = run_deploy({"deb": (owed, {})}, files=files).texts("deb")
    assert not any(t.startswith(MARK) for t in texts), "nothing the server reads changed"
    assert any(t.startswith(RESTART) for t in texts), "the pending restart was not done"
    settled = run_deploy({"deb": (HostFixture("debian-12"), {})}, files=files).texts("deb")
    assert not any(t.startswith(RESTART) for t in settled)
