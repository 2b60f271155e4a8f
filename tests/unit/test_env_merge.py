"""The .env merge script, run for real with the local sh/awk (the same POSIX tools as a host)."""

from __future__ import annotations

import io
import subprocess

from dotenv import dotenv_values
from hypothesis import given, settings
from hypothesis import strategies as st

from operations.backend_env import merge_command
from operations.encoding import dotenv_line


def run_merge(path, lines: dict[str, str]) -> None:
    command = merge_command(str(path), lines, "root", "root")
    stdin = "".join(f"{line}\n" for line in command.connector_arguments["_stdin"])
    subprocess.run(["sh", "-c", command.get_raw_value()], input=stdin, text=True, check=True)


OWNED = {"REDIS_URL": "REDIS_URL=redis://localhost:6379/0", "REDIS_PASSWORD": dotenv_line("REDIS_PASSWORD", "p'w$x")}


def test_creates_missing_file_and_directory(tmp_path):
    path = tmp_path / "app" / ".env"
    run_merge(path, OWNED)
    assert path.read_text() == "REDIS_URL=redis://localhost:6379/0\nREDIS_PASSWORD='p\\'w$x'\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in path.parent.iterdir() if p.name != ".env"], "temporary files left behind"


def test_replaces_in_place_drops_duplicates_keeps_the_rest(tmp_path):
    path = tmp_path / ".env"
    path.write_bytes(
        b"# comment\r\nA=1\r\n  export REDIS_URL = redis://old:1/2\r\n\r\nB='two words'\n"
        b"REDIS_PASSWORD=old\nREDIS_PASSWORD=again\nREDIS_URLX=keep\nC=\"${A}\"\n"
    )
    run_merge(path, OWNED)
    assert path.read_bytes() == (
        b"# comment\r\nA=1\r\nREDIS_URL=redis://localhost:6379/0\n\r\nB='two words'\n"
        b"REDIS_PASSWORD='p\\'w$x'\nREDIS_URLX=keep\nC=\"${A}\"\n"
    )
    assert dotenv_values(path)["REDIS_PASSWORD"] == "p'w$x"


def test_is_a_fixed_point(tmp_path):
    path = tmp_path / ".env"
    path.write_text("X=1\n")
    run_merge(path, OWNED)
    once = path.read_bytes()
    run_merge(path, OWNED)
    assert path.read_bytes() == once


other_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"), max_size=40
).filter(lambda s: "REDIS_URL" not in s and "REDIS_PASSWORD" not in s)


@settings(max_examples=60, deadline=None)
@given(st.lists(other_line, max_size=8))
def test_other_lines_survive_byte_for_byte(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("env") / ".env"
    original = "".join(f"{line}\n" for line in lines)
    path.write_bytes(original.encode())
    run_merge(path, OWNED)
    merged = path.read_bytes().decode().split("\n")[:-1]  # not splitlines(): \x1e etc. are not breaks here
    assert [line for line in merged if not line.startswith("REDIS_")] == lines
    assert merged[-2:] == list(OWNED.values())


def test_password_reads_back_through_python_dotenv(tmp_path):
    path = tmp_path / ".env"
    for password in ("a b#c", 'q"\'\\', "${HOME}$x", "ünï©ødé", "%40@:/?&="):
        run_merge(path, {"REDIS_PASSWORD": dotenv_line("REDIS_PASSWORD", password)})
        assert dotenv_values(stream=io.StringIO(path.read_text()))["REDIS_PASSWORD"] == password
