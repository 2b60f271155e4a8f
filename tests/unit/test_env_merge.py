"""The .env merge script, run for real with the local sh/awk (the same POSIX tools as a host)."""

from __future__ import annotations

import io
import os

import pytest
from dotenv import dotenv_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operations.backend_env import merge_command
from operations.encoding import dotenv_line
from operations.facts import salted_sha256

from .local_ops import deploy_env, env_fact, run_sh


def run_merge(path, lines: dict[str, str]):
    result = run_sh(merge_command(str(path), lines))
    assert result.returncode == 0, result.stderr


OWNED = {"REDIS_URL": "REDIS_URL=redis://localhost:6379/0", "REDIS_PASSWORD": dotenv_line("REDIS_PASSWORD", "p'w$x")}


def test_creates_missing_file_and_directory(trusted_dir):
    path = trusted_dir / "app" / ".env"
    run_merge(path, OWNED)
    assert path.read_text() == "REDIS_URL=redis://localhost:6379/0\nREDIS_PASSWORD='p\\'w$x'\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in path.parent.iterdir() if p.name != ".env"], "temporary files left behind"


def test_replaces_in_place_drops_duplicates_keeps_the_rest(trusted_dir):
    path = trusted_dir / ".env"
    path.write_bytes(
        b"# comment\r\nA=1\r\n  export REDIS_URL = redis://old:1/2\r\n\r\nB='two words'\n"
        b"REDIS_PASSWORD=old\nREDIS_PASSWORD=again\nREDIS_URLX=keep\nC=\"${A}\"\n"
    )
    run_merge(path, OWNED)
    assert path.read_bytes() == (  # a replaced line keeps its own line ending
        b"# comment\r\nA=1\r\nREDIS_URL=redis://localhost:6379/0\r\n\r\nB='two words'\n"
        b"REDIS_PASSWORD='p\\'w$x'\nREDIS_URLX=keep\nC=\"${A}\"\n"
    )
    assert dotenv_values(path)["REDIS_PASSWORD"] == "p'w$x"


def test_is_a_fixed_point(trusted_dir):
    path = trusted_dir / ".env"
    path.write_text("X=1\n")
    run_merge(path, OWNED)
    once = path.read_bytes()
    run_merge(path, OWNED)
    assert path.read_bytes() == once


def test_crlf_file_keeps_crlf_on_every_line_and_the_deploy_settles(trusted_dir):
    """A Windows-edited .env stays CRLF, the lines the merge writes included; the next run sees
    nothing to do (the fact hashes lines without their CR)."""
    path = trusted_dir / ".env"
    path.write_bytes(b"DATABASE_URL=postgresql://db/hsi\r\nREDIS_URL=redis://old:1/0\r\nLOG_LEVEL=INFO\r\n")
    first = deploy_env(path, OWNED)
    assert first.returncode == 0 and len(first.commands) == 1, first.stderr
    merged = path.read_bytes()
    assert merged == (b"DATABASE_URL=postgresql://db/hsi\r\nREDIS_URL=redis://localhost:6379/0\r\n"
                      b"LOG_LEVEL=INFO\r\nREDIS_PASSWORD='p\\'w$x'\r\n")
    assert dotenv_values(path)["REDIS_PASSWORD"] == "p'w$x"
    again = deploy_env(path, OWNED)
    assert again.commands == [] and path.read_bytes() == merged


# (file content, line number the refusal names, a value that must not appear in the message)
AMBIGUOUS = {
    "double-quoted key": ('A=1\n"REDIS_URL"=redis://evil:1/0\n', 2, "evil"),
    "single-quoted key": ("A=1\nB=2\n'REDIS_PASSWORD'=hunter2-secret\n", 3, "hunter2"),
    "exported quoted key": ("export 'REDIS_URL'=redis://evil:1/0\n", 1, "evil"),
    "multi-line owned value": ('REDIS_PASSWORD="hunter2-first\nsecond-part"\n', 1, "hunter2"),
    "multi-line single-quoted": ("X=1\nREDIS_PASSWORD='hunter2\n'\n", 2, "hunter2"),
    "owned key inside another value": ('CERT="-----BEGIN\nREDIS_PASSWORD=hunter2\n-----END"\n', 2, "hunter2"),
    "form-feed indent": ("REDIS_URL=redis://a:1/0\n\fREDIS_URL=redis://evil:1/0\n", 2, "evil"),
    "bare carriage return": ("X=1\rREDIS_PASSWORD=hunter2\n", 1, "hunter2"),
    "crlf multi-line": ('A=1\r\nREDIS_PASSWORD="hunter2\r\nmore"\r\n', 2, "hunter2"),
}


@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_a_file_the_merge_cannot_read_unambiguously_is_refused_unchanged(trusted_dir, case):
    content, line, secret = AMBIGUOUS[case]
    path = trusted_dir / ".env"
    path.write_bytes(content.encode())
    found, _ = env_fact(path, tuple(OWNED))
    assert found["ambiguous"] is not None and found["ambiguous"].split()[0] == str(line), found["ambiguous"]
    outcome = deploy_env(path, OWNED)  # the operation refuses from the fact
    assert outcome.returncode == 1 and f"{path} line {line}: " in outcome.stderr, outcome.stderr
    assert "redis_backend_env_path" in outcome.stderr and secret not in outcome.stderr
    # The merge itself refuses too (the file may change between the fact and the command).
    result = run_sh(merge_command(str(path), OWNED))
    assert result.returncode != 0 and f"{path} line {line}: " in result.stderr, result.stderr
    assert secret not in result.stderr
    assert path.read_bytes() == content.encode()
    assert os.listdir(trusted_dir) == [".env"], "temporary files left behind"


def test_other_keys_may_have_multi_line_values(trusted_dir):
    path = trusted_dir / ".env"
    before = 'CERT="-----BEGIN\nREDIS_PASSWORDS ARE HERE\n-----END"\nREDIS_URL=redis://old:1/0\n'
    path.write_text(before)
    outcome = deploy_env(path, OWNED)
    assert outcome.returncode == 0, outcome.stderr
    values = dotenv_values(path)
    assert values["CERT"] == "-----BEGIN\nREDIS_PASSWORDS ARE HERE\n-----END"
    assert values["REDIS_URL"] == "redis://localhost:6379/0" and values["REDIS_PASSWORD"] == "p'w$x"


other_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"), max_size=40
).filter(lambda s: "REDIS_URL" not in s and "REDIS_PASSWORD" not in s)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(other_line, max_size=8))
def test_other_lines_survive_byte_for_byte(trusted_dir, lines):
    path = trusted_dir / ".env"
    original = "".join(f"{line}\n" for line in lines)
    path.write_bytes(original.encode())
    result = run_sh(merge_command(str(path), OWNED))
    if result.returncode:  # an open quote in another key's value swallowed the owned keys' lines
        assert "the quoted value" in result.stderr or "inside the multi-line" in result.stderr, result.stderr
        return
    merged = path.read_bytes().decode().split("\n")[:-1]  # not splitlines(): \x1e etc. are not breaks here
    assert [line for line in merged if not line.startswith("REDIS_")] == lines
    assert merged[-2:] == list(OWNED.values())


def test_password_reads_back_through_python_dotenv(trusted_dir):
    path = trusted_dir / ".env"
    for password in ("a b#c", 'q"\'\\', "${HOME}$x", "ünï©ødé", "%40@:/?&=", "end\\", "'\"'"):
        run_merge(path, {"REDIS_PASSWORD": dotenv_line("REDIS_PASSWORD", password)})
        assert dotenv_values(stream=io.StringIO(path.read_text()))["REDIS_PASSWORD"] == password


printable = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(printable)
def test_the_merge_never_refuses_its_own_lines(trusted_dir, password):
    """Whatever the password, the line the deploy writes is read unambiguously on the next run."""
    path = trusted_dir / ".env"
    lines = {**OWNED, "REDIS_PASSWORD": dotenv_line("REDIS_PASSWORD", password)}
    path.write_text("A='x'\n" + "".join(f"{line}\n" for line in lines.values()) + 'B="y"\n')
    found, salt = env_fact(path, tuple(lines))
    assert found["ambiguous"] is None
    assert found["keys"]["REDIS_PASSWORD"] == [salted_sha256(salt, lines["REDIS_PASSWORD"])]


# Fragments of .env lines: quotes opened and closed across lines, quoted keys, exports, escapes.
FRAGMENTS = [
    "A=1", "REDIS_URL=redis://old:1/0", "export REDIS_URL = redis://x:2/0", "'REDIS_URL'=q", '"REDIS_PASSWORD"=q',
    "REDIS_PASSWORD='old'", 'REDIS_PASSWORD="open', "REDIS_PASSWORD='open", 'C="open', "D='open", 'close"', "close'",
    "E='a\\'b'", 'F="a\\"b"', "G='x\\", "# REDIS_URL=comment", "  REDIS_PASSWORD = spaced", "\tREDIS_URL=tab",
    "REDIS_URL", "H=", "REDIS_PASSWORD=x # note", "I='a' # c", "\x0bREDIS_PASSWORD=vt", "export REDIS_PASSWORD='e'",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=7), st.booleans())
def test_what_the_merge_accepts_python_dotenv_reads_as_written(trusted_dir, fragments, crlf):
    """The refusal rule checked against python-dotenv itself: whenever the merge goes ahead, the
    backend's reader gets exactly the deployed values; when it refuses, nothing changed."""
    path = trusted_dir / ".env"
    newline = "\r\n" if crlf else "\n"
    original = "".join(f"{fragment}{newline}" for fragment in fragments).encode()
    path.write_bytes(original)
    result = run_sh(merge_command(str(path), OWNED))
    if result.returncode:
        assert " line " in result.stderr, result.stderr
        assert path.read_bytes() == original
        return
    values = dotenv_values(stream=io.StringIO(path.read_bytes().decode(), newline=""))
    assert values["REDIS_URL"] == "redis://localhost:6379/0"
    assert values["REDIS_PASSWORD"] == "p'w$x"
