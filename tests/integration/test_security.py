"""Secure by default, on real Debian 12 and 13 hosts: validation before anything runs, nasty
passwords end to end, nothing leaks (-vvv, --debug, --diff, process listings, logs), least
privilege for the backend, auth-failure monitoring, kernel tuning skipped in containers."""

from __future__ import annotations

import re

import hashlib
import io
import subprocess
import time

import pytest
import redis
from dotenv import dotenv_values
from redis.backoff import NoBackoff
from redis.retry import Retry

from operations import acl, prologue
from operations.encoding import redis_conf_quote
from tests.hosts import fleet

from .conftest import generated_password, make_runner

# One nasty password per host: quotes, #, $, ${...}, backslashes, %, @, spaces at the ends, non-ASCII.
NASTY = {
    "exposed-12": "p w'\"#$x\\%@é${HOME}€ end ",
    "exposed-13": "\\x41\\\"'${REDIS_PASSWORD}$$ `id` ;|& 日本語 🙂 #",
    "local-12": " #lead % %40 \\n \\\\ ''\"\" ${:-$} ~!@ ",
    "valkey-13": "$(touch /tmp/pwned) ${PATH} \\\\ '\" # valkey ✓ ",
}
SUITE = {"exposed-12": "bookworm", "exposed-13": "trixie", "local-12": "bookworm", "valkey-13": "trixie"}
EXPOSED = ("exposed-12", "exposed-13", "valkey-13")
SERVER = {name: "valkey" if name.startswith("valkey") else "redis" for name in NASTY}
# The exposed hosts listen on all addresses so the test reaches them through a port
# published on 127.0.0.1 (and so they get the no-TLS warning: plain text is allowed on purpose).
PLAIN = {"redis_bind": ["*"], "redis_allow_plaintext": True}
DATA = {
    "exposed-12": PLAIN,
    "exposed-13": PLAIN,
    "local-12": {},
    "valkey-13": {**PLAIN, "redis_flavour": "valkey"},
}
WATCH = (
    "i=0; while [ ! -e /root/ps.stop ] && [ $i -lt 3000 ]; do ps -eo args >> /root/ps.log; "
    "i=$((i+1)); sleep 0.05; done"
)


@pytest.fixture(scope="module")
def hosts(host_factory):
    return {name: host_factory(f"sec-{name}", SUITE[name], publish=(6379,) if name in EXPOSED else ())
            for name in NASTY}


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return make_runner(tmp_path_factory)


def inventory(hosts, **extra) -> dict:
    return {host: {"redis_password": NASTY[name], **DATA[name], **extra.get(name, {})}
            for name, host in hosts.items()}


def admin_password(runner, host) -> str:
    return generated_password(runner, host, prologue.ADMIN_SECRET)


def all_secrets(runner, hosts) -> list[str]:
    return list(NASTY.values()) + [admin_password(runner, h) for h in hosts.values()]


def assert_no_secret(text: str, values: list[str], where: str) -> None:
    for value in values:
        assert value not in text, f"a password appears in {where}"
        assert redis_conf_quote(value) not in text, f"an encoded password appears in {where}"
        # The ACL form (#<sha256>) is open to offline guessing: facts print salted hashes only.
        assert hashlib.sha256(value.encode()).hexdigest() not in text, f"a password's SHA-256 appears in {where}"


def report_strings(value):
    """Every string in a decoded JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from report_strings(key)
            yield from report_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from report_strings(item)


def test_bad_settings_stop_the_run_and_touch_no_host(hosts, runner):
    bad = inventory(hosts, **{
        "exposed-12": {"redis_password": "two\nlines and long enough"},
        "exposed-13": {"redis_maxmemory": "lots"},
        "local-12": {"redis_bind": ["127.0.0.1", "999.1.1.1"], "redis_password": "short"},
        "valkey-13": {"redis_acl_denied_commands": ["flushall", "AUTH"]},
    })
    result = runner(bad)
    assert result.returncode != 0
    for name, setting, problem in (("exposed-12", "redis_password", "contains a newline"),
                                   ("exposed-13", "redis_maxmemory", "is not a size"),
                                   ("local-12", "redis_bind", "is not an IP address"),
                                   ("local-12", "redis_password", "shorter than 16"),
                                   ("valkey-13", "redis_acl_denied_commands", "cannot be denied")):
        assert f"{hosts[name].inventory_name}: {setting}: " in result.output, result.output
        assert problem in result.output
    assert "two\nlines" not in result.output
    for host in hosts.values():
        for server in ("redis-server", "valkey-server"):
            assert host.sh(f"command -v {server}", check=False).returncode != 0, f"{server} got installed"
        assert host.sh("test -e /etc/hsi-redis", check=False).returncode != 0


@pytest.fixture(scope="module")
def first_run(hosts, runner):
    """Provision all three at -vvv while a loop on each host records every process's argv."""
    watchers = []
    for host in hosts.values():
        host.sh("rm -f /root/ps.stop /root/ps.log")
        watchers.append(subprocess.Popen(["docker", "exec", host.container, "sh", "-c", WATCH]))
    try:
        result = runner(inventory(hosts), args=("-vvv",))
    finally:
        for host in hosts.values():
            host.sh("touch /root/ps.stop", check=False)
        for watcher in watchers:
            watcher.wait(timeout=30)
    listings = {name: host.sh("cat /root/ps.log").stdout for name, host in hosts.items()}
    return result, listings


def test_first_run_at_vvv_leaks_nothing(first_run, hosts, runner):
    result, listings = first_run
    assert result.returncode == 0, result.output
    values = all_secrets(runner, hosts)
    assert_no_secret(result.output, values, "pyinfra -vvv output")
    assert ">>> sh -c" in result.output, "-vvv prints command text"
    for name, listing in listings.items():
        assert listing.count("\n") > 100, f"{name}: the process watcher did not run"
        assert_no_secret(listing, values, f"{name}'s process listing")
    assert any(re.search(r"hsi-redis (state|verify) ", listing) for listing in listings.values()), \
        "no listing caught the state read or the verification"
    # Decoded: a password escaped in the file (\", \\, \u00e9) reads back as itself here.
    assert_no_secret("\n".join(report_strings(result.report)), values, "the JSON report")
    for name, host in hosts.items():
        server = SERVER[name]
        logs = host.sh(f"cat /var/log/{server}/*.log; journalctl -u {server}-server -o cat --no-pager").stdout
        assert_no_secret(logs, values, f"{name}'s server logs")


def test_nasty_passwords_authenticate_and_read_back_exactly(first_run, hosts):
    for name, host in hosts.items():
        password, cli = NASTY[name], f"{SERVER[name]}-cli"
        assert host.redis_cli("ping", password=password, cli=cli) == "PONG", name
        assert "NOAUTH" in host.redis_cli("ping", cli=cli)
        env = host.sh("cat /opt/hsi/backend/.env").stdout
        assert dotenv_values(stream=io.StringIO(env))["REDIS_PASSWORD"] == password, name
        config = host.sh(f"cat /etc/{SERVER[name]}/{SERVER[name]}.conf").stdout
        assert password not in config, "clear text in the server's config"
        assert host.sh("test -e /tmp/pwned", check=False).returncode != 0, "a password ran as shell code"


def test_file_modes_and_owners(first_run, hosts):
    for name, host in hosts.items():
        server = SERVER[name]
        assert host.stat(f"/etc/{server}/{server}.conf") == f"640 root {server}"
        assert host.stat("/etc/hsi-redis") == "700 root root"
        for name in ("cli.auth", "backend.auth", "auth-failures"):
            assert host.stat(f"/etc/hsi-redis/{name}") == "600 root root", name
        assert host.stat("/opt/hsi/backend/.env") == "600 root root"


def test_report_flags_no_tls_and_skips_kernel_tuning_in_containers(first_run, hosts):
    result, _ = first_run
    for name, host in hosts.items():
        entry = result.host(host)
        assert entry["status"] == "ok", entry
        assert entry["checks"]["backend_ping"] == "PONG" and entry["checks"]["flushall_denied"] is True
        assert entry["checks"]["config_set_denied"] is True
        assert any("kernel tuning skipped" in note and "docker container" in note for note in entry["notes"])
        warned = any("without TLS" in warning for warning in entry.get("warnings", []))
        assert warned == (name in EXPOSED), entry
    assert "kernel tuning skipped" in result.output and "without TLS" in result.output


def _client(host, **auth) -> redis.Redis:
    port = fleet.published_port(host.container, 6379)
    return redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0), socket_timeout=10,
                       decode_responses=True, **auth)


@pytest.mark.parametrize("name", EXPOSED)
def test_backend_identity_keeps_what_it_needs_and_nothing_more(first_run, hosts, name):
    backend = _client(hosts[name], password=NASTY[name])
    with pytest.raises(redis.ResponseError):  # refused to everyone first (enable-debug-command no)
        backend.execute_command("DEBUG", "SLEEP", "0")
    for command in (("FLUSHALL",), ("FLUSHDB",), ("SHUTDOWN", "NOSAVE"),
                    ("CONFIG", "REWRITE"), ("ACL", "SETUSER", "intruder", "on", ">x", "+@all"),
                    ("ACL", "LIST"), ("MODULE", "LIST"), ("REPLICAOF", "127.0.0.1", "1"),
                    ("SLAVEOF", "NO", "ONE"), ("MIGRATE", "127.0.0.1", "1", "k", "0", "100"),
                    # Issue 9: CONFIG SET would let the backend's password switch authentication off.
                    ("CONFIG", "SET", "requirepass", ""), ("CONFIG", "SET", "maxmemory", "1mb"),
                    ("CONFIG", "SET", "dir", "/tmp")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            backend.execute_command(*command)
    with pytest.raises(redis.AuthenticationError):
        _client(hosts[name]).ping()
    # What the HSI backend does, all through the same identity (CONFIG GET, not SET).
    assert backend.ping() is True
    assert "redis_version" in backend.info()
    assert backend.config_get("maxmemory")["maxmemory"] == str(100 * 1024 * 1024)
    pubsub = backend.pubsub()
    pubsub.subscribe("hsi:events")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    assert backend.publish("hsi:events", "motion") == 1
    assert pubsub.get_message(timeout=5)["data"] == "motion"
    pubsub.close()
    backend.rpush("hsi:queue", "a", "b")
    assert backend.blpop(["hsi:queue"], timeout=1) == ("hsi:queue", "a")
    backend.xadd("hsi:stream", {"camera": "garage"})
    backend.xgroup_create("hsi:stream", "workers", id="0")
    assert backend.xreadgroup("workers", "w1", {"hsi:stream": ">"}, count=1)
    assert backend.xautoclaim("hsi:stream", "workers", "w2", min_idle_time=0)[1]
    backend.hset("hsi:h", mapping={"a": "1"})
    assert backend.hgetall("hsi:h") == {"a": "1"}
    backend.sadd("hsi:s", "x")
    assert backend.smembers("hsi:s") == {"x"}
    backend.zadd("hsi:z", {"x": 1.5})
    assert backend.zrange("hsi:z", 0, -1, withscores=True) == [("x", 1.5)]
    backend.pfadd("hsi:hll", "a", "b")
    assert backend.pfcount("hsi:hll") == 2
    assert backend.expire("hsi:h", 100) and 0 < backend.ttl("hsi:h") <= 100
    assert "hsi:h" in list(backend.scan_iter(match="hsi:*"))
    sha = backend.script_load("return redis.call('GET', KEYS[1])")
    backend.set("hsi:k", "v")
    assert backend.evalsha(sha, 1, "hsi:k") == "v"
    backend.close()


@pytest.mark.parametrize("name", EXPOSED)
def test_admin_identity_can_do_everything(first_run, hosts, runner, name):
    admin = _client(hosts[name], username=acl.ADMIN_USER, password=admin_password(runner, hosts[name]))
    assert admin.execute_command("ACL", "WHOAMI") == acl.ADMIN_USER
    assert any(line.startswith("user default") for line in admin.acl_list())
    assert isinstance(admin.execute_command("MODULE", "LIST"), list)
    assert admin.execute_command("REPLICAOF", "NO", "ONE") in ("OK", True)
    admin.set("hsi:doomed", "1")
    assert admin.flushdb() is True and admin.dbsize() == 0
    assert admin.flushall() is True
    admin.close()


def test_debug_and_diff_runs_leak_nothing(first_run, hosts, runner):
    values = all_secrets(runner, hosts)
    debug = runner(inventory(hosts), args=("--debug",))
    assert debug.returncode == 0, debug.output
    assert_no_secret(debug.output, values, "--debug output")
    assert all(debug.host(h)["changes"] == 0 for h in hosts.values()), debug.output
    # --diff with a real config change (pyinfra would print a put/template diff here).
    diff = runner(inventory(hosts, **{"local-12": {"redis_size": "medium"}}), args=("--diff", "-vv"))
    assert diff.returncode == 0, diff.output
    assert diff.host(hosts["local-12"])["changes"] >= 1
    assert_no_secret(diff.output, values, "--diff output")


# Failed AUTHs under hostile usernames, as redis-cli reads them from stdin ("\n" inside double
# quotes is a newline): 25 under one name holding a newline, then one each under names holding
# newlines and field names, a space, quotes, a backslash. Raw line-based reading of ACL LOG
# counted such a series as 1.
HOSTILE_AUTH = ['AUTH "evil\\nname" wrong'] * 25 + [
    'AUTH "x\\nreason\\nauth\\ncount\\n999" wrong', 'AUTH "two words" wrong', 'AUTH "dq\\"uote" wrong',
    "AUTH \"sq'uote\" wrong", 'AUTH "back\\\\slash" wrong', "AUTH count wrong", "AUTH reason wrong",
]


@pytest.mark.parametrize("name", ["local-12", "valkey-13"])
def test_auth_failures_since_the_last_run_are_reported(first_run, hosts, runner, name):
    host, cli = hosts[name], f"{SERVER[name]}-cli"
    data = inventory(hosts, **{name: {"redis_auth_failure_warn": 3}})
    quiet = runner({host: data[host]}, entry="verify.py")
    assert quiet.returncode == 0, quiet.output
    for attempt in range(3):
        assert "NOAUTH" in host.redis_cli("ping", password=f"guess-{attempt}", cli=cli)
    time.sleep(0.2)
    noisy = runner({host: data[host]}, entry="verify.py")
    assert noisy.returncode == 0, noisy.output
    entry = noisy.host(host)
    assert entry["auth_failures_since_last_run"] == 3, entry
    assert any("3 failed authentication" in warning for warning in entry.get("warnings", [])), entry
    assert "3 failed authentication" in noisy.output
    calm = runner({host: data[host]}, entry="verify.py")
    assert calm.host(host)["auth_failures_since_last_run"] == 0
    assert not any("failed authentication" in w for w in calm.host(host).get("warnings", []))
    replies = host.sh(f"{cli} --no-auth-warning", stdin="\n".join(HOSTILE_AUTH) + "\n").stdout
    assert replies.count("WRONGPASS") == len(HOSTILE_AUTH), replies
    hostile = runner({host: data[host]}, entry="verify.py")
    assert hostile.returncode == 0, hostile.output
    assert hostile.host(host)["auth_failures_since_last_run"] == len(HOSTILE_AUTH) == 32, hostile.host(host)
    assert "32 failed authentication" in hostile.output


def _generated_passwords(count: int, seed: int) -> list[str]:
    """Printable passwords drawn from the nasty characters and random printable code points."""
    import random
    import unicodedata

    rng = random.Random(seed)
    nasty = " \"'#$\\%@`!;&|<>(){}[]*?~=,:/^${"
    out = []
    while len(out) < count:
        chars = []
        for _ in range(rng.randint(1, 40)):
            if rng.random() < 0.5:
                chars.append(rng.choice(nasty))
            else:
                char = chr(rng.choice((rng.randint(0x20, 0x7e), rng.randint(0xa0, 0x2fff),
                                       rng.randint(0x1f300, 0x1f64f))))
                if unicodedata.category(char)[0] in "LMNPS" or char == " ":
                    chars.append(char)
        if chars:
            out.append("".join(chars))
    return out


# For each password: a throwaway server on a unix socket, configured by a file holding
# `requirepass <our encoding>`, must answer PONG to exactly that password.
REAL_SERVER_CHECK = r"""
cd /root; i=0
while read -r quoted raw; do
  i=$((i+1))
  printf 'port 0\nunixsocket /root/pt.sock\nsave ""\nappendonly no\ndaemonize yes\npidfile /root/pt.pid\n' > pt.conf
  printf 'requirepass %s\n' "$(printf %s "$quoted" | base64 -d)" >> pt.conf
  rm -f pt.sock pt.pid; @SERVER@ pt.conf >/dev/null 2>&1 || { echo "$i start-failed"; continue; }
  n=0; while [ ! -S pt.sock ] && [ $n -lt 50 ]; do sleep 0.05; n=$((n+1)); done
  reply=$(printf %s "$raw" | base64 -d > pt.pw; REDISCLI_AUTH="$(cat pt.pw)" @CLI@ --no-auth-warning -s pt.sock ping 2>&1)
  wrong=$(REDISCLI_AUTH="x$(cat pt.pw)" @CLI@ --no-auth-warning -s pt.sock ping 2>&1)
  echo "$i $reply $(echo "$wrong" | grep -c NOAUTH)"
  kill "$(cat pt.pid)"; n=0; while [ -e pt.pid ] && [ $n -lt 50 ]; do sleep 0.05; n=$((n+1)); done
done
rm -f pt.conf pt.pw
"""


@pytest.mark.parametrize("name", ["local-12", "exposed-13", "valkey-13"])
def test_generated_passwords_round_trip_through_a_real_server(first_run, hosts, name):
    import base64

    passwords = _generated_passwords(40, seed=len(name))
    lines = "".join(
        f"{base64.b64encode(redis_conf_quote(p).encode()).decode()} {base64.b64encode(p.encode()).decode()}\n"
        for p in passwords
    )
    server = SERVER[name]
    script = REAL_SERVER_CHECK.replace("@SERVER@", f"{server}-server").replace("@CLI@", f"{server}-cli")
    result = hosts[name].sh(script, stdin=lines)
    replies = result.stdout.splitlines()
    assert len(replies) == len(passwords), result.stdout + result.stderr
    for line, password in zip(replies, passwords, strict=True):
        assert line.split(" ", 1)[1] == "PONG 1", (password, line)


def test_backend_config_set_setting_allows_it_and_then_says_what_it_allows(first_run, hosts, runner):
    """With redis_backend_config_set on 7.0+ (Redis 7.0, Valkey 8.1) the backend may CONFIG SET;
    dir/dbfilename stay protected (as the README says), and turning it off denies it again."""
    chosen = {hosts[name]: name for name in ("exposed-12", "valkey-13")}
    data = inventory(hosts)
    allowed = runner({host: {**data[host], "redis_backend_config_set": True} for host in chosen})
    assert allowed.returncode == 0, allowed.output
    for host, name in chosen.items():
        entry = allowed.host(host)
        assert entry["status"] == "ok" and entry["checks"]["config_set_denied"] is False, entry
        backend = _client(host, password=NASTY[name])
        assert backend.config_set("maxmemory", "150mb") is True
        with pytest.raises(redis.ResponseError, match="protected"):
            backend.config_set("dir", "/tmp")
        with pytest.raises(redis.exceptions.NoPermissionError):
            backend.execute_command("FLUSHALL")
        backend.close()
    denied = runner({host: data[host] for host in chosen})
    assert denied.returncode == 0, denied.output
    for host, name in chosen.items():
        assert denied.host(host)["checks"]["config_set_denied"] is True
        backend = _client(host, password=NASTY[name])
        assert backend.config_get("maxmemory")["maxmemory"] == str(100 * 1024 * 1024), "restart restored it"
        with pytest.raises(redis.exceptions.NoPermissionError):
            backend.config_set("requirepass", "")
        backend.close()
        assert "NOAUTH" in host.redis_cli("ping", cli=f"{SERVER[name]}-cli")
