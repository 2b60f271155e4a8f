"""The program's `firewall`, `write` and `ping` verbs and the state read's firewall part (issue 11).

nftables for real, inside a network namespace each test makes for itself (`ip netns`: its own empty
ruleset, nothing of this machine's touched): our table loads as one transaction, carries its mark, comes
back the same on a second load, leaves a foreign table alone, survives a broken file, and goes with
`--tool off`. firewalld through a stand-in `firewall-cmd` on PATH (no firewalld here): the exact calls."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid

import pytest

from operations import program, render

from .conftest import BACKEND_PW, FAKE_CTL, SERVICE, bundle, give_client_pair, run_program, tls_context

MARK = "hsi-redis 0123456789abcdef"
FOREIGN = "table inet foreign { chain input { type filter hook input priority 0; policy accept; tcp dport 22 accept; } }"


def rules(mark: str = MARK, sources=("10.77.0.3",), ports=(6379, 6380), open_ports=(6380,)) -> str:
    return render.render("firewall.nft.j2", name="nvr", mark=mark, ports=ports, open_ports=open_ports,
                         sources=sources, v4=[s for s in sources if ":" not in s],
                         v6=[s for s in sources if ":" in s])


@pytest.fixture
def netns():
    name = f"hsi-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def box(tmp_path, netns):
    """Runs the program (and nft) inside the namespace, with its own state dir and fake systemctl."""
    state, fake = tmp_path / "state", tmp_path / "fake"
    state.mkdir(mode=0o700)
    fake.mkdir()

    class Box:
        nft_file = state / "firewall.nft"
        unit_file = tmp_path / "units" / "hsi-redis-firewall.service"
        calls = fake / "calls"

        @staticmethod
        def run(verb: str, *args: str, stdin: bytes | str | None = None, path: str | None = None):
            env = {"HSI_REDIS_SERVICE_CTL": str(FAKE_CTL), "HSI_FAKE_DIR": str(fake)}
            if path:
                env["PATH"] = f"{path}:{os.environ['PATH']}"
            data = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
            done = subprocess.run(["ip", "netns", "exec", netns, "dash", "-c", program.text(), "hsi-redis", verb,
                                   "--state-dir", str(state), *args], input=data, capture_output=True,
                                  env={**{k: v for k, v in os.environ.items() if not k.startswith("HSI_")}, **env},
                                  timeout=60, check=False)
            return done.returncode, done.stdout.decode(), done.stderr.decode()

        @staticmethod
        def nft(*args: str) -> str:
            return subprocess.run(["ip", "netns", "exec", netns, "nft", *args], capture_output=True, text=True,
                                  check=True).stdout

        def load(self, text: str = "", mark: str = MARK):
            entries = [("file", "0600", "root", "root", "-", str(self.nft_file), text or rules(mark)),
                       ("file", "0644", "root", "root", "unit", str(self.unit_file), "[Unit]\n")]
            return self.run("firewall", "--tool", "nft", "--fw-file", str(self.nft_file), "--fw-unit",
                            "hsi-redis-firewall.service", "--fw-mark", mark, stdin=bundle(*entries))

    return Box()


def test_nft_loads_our_table_once_and_again_leaving_a_foreign_table_alone(box):
    box.nft("add", "table", "inet", "foreign")
    box.nft("add", "chain", "inet", "foreign", "input", "{ type filter hook input priority 0; policy accept; }")
    box.nft("add", "rule", "inet", "foreign", "input", "tcp", "dport", "22", "accept")
    foreign = box.nft("list", "table", "inet", "foreign")
    code, out, err = box.load()
    assert code == 0, err
    assert "firewall=loaded" in out and f"changed={box.nft_file}" in out
    listed = box.nft("list", "table", "inet", "hsi_redis")
    assert f'comment "{MARK}"' in listed and "10.77.0.3" in listed and 'iif "lo" accept' in listed
    assert "tcp dport { 6379, 6380 } drop" in listed
    assert "enable hsi-redis-firewall.service" in box.calls.read_text()
    assert oct(box.nft_file.stat().st_mode & 0o777) == "0o600"
    # again: same table, same foreign table
    code, out, err = box.load()
    assert code == 0 and "changed=" not in out, (out, err)
    assert box.nft("list", "table", "inet", "hsi_redis") == listed
    assert box.nft("list", "table", "inet", "foreign") == foreign
    # the state read sees the capability, nft and our mark
    code, out, _ = box.run("state", "--firewall", "--no-server")
    assert code == 0 and "firewall.cap=1" in out and f"firewall.table={MARK}" in out and "firewall.nft=/" in out
    assert "server." not in out


def test_a_new_source_list_replaces_the_table_in_one_transaction(box):
    assert box.load()[0] == 0
    code, _, err = box.load(rules("hsi-redis fedcba9876543210", sources=("10.77.0.2", "fd00::7")),
                            mark="hsi-redis fedcba9876543210")
    assert code == 0, err
    listed = box.nft("list", "table", "inet", "hsi_redis")
    assert "10.77.0.3" not in listed and "10.77.0.2" in listed and "fd00::7" in listed
    assert box.nft("list", "tables").count("hsi_redis") == 1


def test_a_broken_rules_file_fails_with_nfts_reason_and_the_loaded_table_stays(box):
    assert box.load()[0] == 0
    before = box.nft("list", "table", "inet", "hsi_redis")
    code, _, err = box.load(rules().replace("tcp dport { 6379, 6380 } drop", "tcp dport { 6379, 6380 } dorp"))
    assert code == 1 and err.startswith(f"hsi-redis: nft -f {box.nft_file} failed: "), err
    assert box.nft("list", "table", "inet", "hsi_redis") == before


def test_off_removes_only_what_is_ours(box):
    box.nft("add", "table", "inet", "foreign")
    assert box.load()[0] == 0
    code, out, err = box.run("firewall", "--tool", "off", "--fw-unit", "hsi-redis-firewall.service",
                             "--remove", str(box.nft_file), "--remove", str(box.unit_file),
                             "--remove", str(box.unit_file.parent / "absent"))
    assert code == 0, err
    assert "firewall=removed" in out and f"removed={box.nft_file}" in out and f"removed={box.unit_file}" in out
    assert "absent" not in out and not box.nft_file.exists() and not box.unit_file.exists()
    assert "hsi_redis" not in box.nft("list", "tables") and "foreign" in box.nft("list", "tables")
    assert "disable hsi-redis-firewall.service" in box.calls.read_text()


FAKE_FIREWALL_CMD = """#!/bin/sh
echo "$*" >> "$FW_CALLS"
case $1 in
  --state) echo running;;
  --get-policies) [ -f "$FW_LOADED" ] && echo "allow-host-ipv6 hsi-redis" || echo allow-host-ipv6;;
  --reload) if [ -f "$FW_POLICY" ]; then : > "$FW_LOADED"; else rm -f "$FW_LOADED"; fi;;
esac
"""


def test_firewalld_gets_our_policy_file_then_a_reload(tmp_path):
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir(mode=0o700)
    (bin_dir / "firewall-cmd").write_text(FAKE_FIREWALL_CMD)
    (bin_dir / "firewall-cmd").chmod(0o755)
    policy, calls, loaded = tmp_path / "firewalld" / "policies" / "hsi-redis.xml", tmp_path / "calls", tmp_path / "loaded"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FW_CALLS": str(calls), "FW_LOADED": str(loaded),
           "FW_POLICY": str(policy)}
    done = run_program("firewall", "--state-dir", str(state), "--tool", "firewalld", "--fw-file", str(policy),
                       stdin=bundle(("file", "0644", "root", "root", "-", str(policy), "<policy/>\n")), env=env)
    assert done.code == 0, done.err
    assert done.out == f"changed={policy}\nfirewall=loaded\n"
    assert calls.read_text().splitlines() == ["--reload", "--get-policies"]
    assert policy.read_text() == "<policy/>\n"
    state_read = run_program("state", "--state-dir", str(state), "--firewall", "--no-server", env=env)
    assert "firewall.firewalld=running" in state_read.out and "firewall.policy=1" in state_read.out
    off = run_program("firewall", "--state-dir", str(state), "--tool", "off", "--remove", str(policy), env=env)
    assert off.code == 0 and f"removed={policy}" in off.out, off.err
    assert not policy.exists() and calls.read_text().splitlines()[-2:] == ["--state", "--reload"]


def test_firewalld_that_does_not_load_the_policy_fails_the_host(tmp_path):
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir(mode=0o700)
    (bin_dir / "firewall-cmd").write_text("#!/bin/sh\n[ \"$1\" != --reload ] || { echo 'Error: INVALID_POLICY: "
                                          "bad rule' >&2; exit 1; }\n")
    (bin_dir / "firewall-cmd").chmod(0o755)
    policy = tmp_path / "hsi-redis.xml"
    done = run_program("firewall", "--state-dir", str(state), "--tool", "firewalld", "--fw-file", str(policy),
                       stdin=bundle(("file", "0644", "root", "root", "-", str(policy), "<policy/>\n")),
                       env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert done.code == 1 and done.err == "hsi-redis: firewall-cmd --reload failed: Error: INVALID_POLICY: bad rule\n"


def test_write_puts_a_client_hosts_files_and_restarts_its_units(tmp_path):
    state, fake = tmp_path / "state", tmp_path / "fake"
    state.mkdir(mode=0o700)
    fake.mkdir()
    (fake / "hsi-backend.active").touch()
    env_file, ca = tmp_path / "backend" / ".env", tmp_path / "backend" / "redis-tls" / "ca.crt"
    env_file.parent.mkdir()
    env_file.write_text("DATABASE_URL=postgres://x\nREDIS_PASSWORD=old\n")
    done = run_program("write", "--state-dir", str(state), "--restart-units", "hsi-backend.service",
                       stdin=bundle(("merge", "after", "-", "-", str(env_file), "REDIS_PASSWORD='new'\n"),
                                    ("file", "0644", "root", "root", "after,owndir", str(ca), "CA\n")),
                       env={"HSI_REDIS_SERVICE_CTL": str(FAKE_CTL), "HSI_FAKE_DIR": str(fake)})
    assert done.code == 0, done.err
    assert done.out.splitlines() == [f"changed={env_file}", f"changed={ca}", "restarted_unit=hsi-backend.service"]
    assert env_file.read_text() == "DATABASE_URL=postgres://x\nREDIS_PASSWORD='new'\n" and ca.read_text() == "CA\n"
    assert (fake / "calls").read_text().splitlines() == ["try-restart hsi-backend.service"]
    # nothing of a server is asked for: no CLI needed on a backend host
    assert "redis-cli" not in done.err


def test_the_state_read_of_a_backend_host_has_no_server_part(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    done = run_program("state", "--state-dir", str(state), "--no-server", "--file", str(tmp_path / "missing"))
    assert done.code == 0 and f"file=- - - - - {tmp_path / 'missing'}" in done.out
    assert not [line for line in done.out.splitlines() if line.startswith(("server.", "keys=", "firewall."))]


def test_no_capability_reads_as_zero():
    """CapEff without CAP_NET_ADMIN (bit 12), as in a container started without it: dropped from the
    bounding set, root's program runs without it."""
    done = subprocess.run(["setpriv", "--bounding-set", "-net_admin", "dash", "-c", program.text(), "hsi-redis",
                           "state", "--no-server", "--firewall"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "firewall.cap=0" in done.stdout, done.stdout + done.stderr
    assert "firewall.table=" not in done.stdout


def _password_line(password: str) -> str:
    return f"password {base64.b64encode(password.encode()).decode()}\nend\n"


def test_ping_asks_the_server_as_the_backend_over_tls_with_its_own_files(make_host, pki, tmp_path):
    """A backend host's check: its address, port, CA and client pair (not the deploy's /etc/hsi-redis/tls
    ones); the password on stdin, never in argv; a wrong one fails with the server's reply."""
    h = make_host()
    h.tls = tls_context(pki, h.port)
    h.write_config(port=0)
    give_client_pair(h, pki)  # the deploy's own pair: moved aside below, so the backend's files must do
    assert h.ctl("start", SERVICE).returncode == 0
    h.wait_pong(tls=True)
    shutil.rmtree(h.state / "tls")
    backend = ["--addr", "localhost", "--port", str(h.port), "--ca", pki["ca"], "--cert", pki["client_cert"],
               "--key", pki["client_key"]]
    r = h.run("ping", *backend, stdin=_password_line(BACKEND_PW))
    assert (r.code, r.out) == (0, "ping=PONG\n"), r.err
    wrong = h.run("ping", *backend, stdin=_password_line("not-the-password-0123456789"))
    assert wrong.code == 1 and wrong.err.startswith(f"hsi-redis: PING to localhost:{h.port} as the backend "
                                                    "answered '"), wrong.err
    assert "not-the-password" not in wrong.err + wrong.out
    no_cert = h.run("ping", *backend[:6], stdin=_password_line(BACKEND_PW))
    assert no_cert.code == 1, "mTLS: without the client pair the server refuses"


def test_ping_on_a_host_without_a_cli_says_so(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dash", "grep", "base64", "head", "cat", "tr", "sed", "awk"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    done = run_program("ping", "--state-dir", str(tmp_path / "state"), "--addr", "redis.lan",
                       stdin=_password_line("pw"), env={"PATH": str(bin_dir)})
    assert (done.code, done.out) == (0, "ping=-\n"), done.err
