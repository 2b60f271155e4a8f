"""Properties of the exact encodings: any printable password survives redis.conf and .env."""

from __future__ import annotations

import io

from dotenv import dotenv_values
from hypothesis import example, given, settings
from hypothesis import strategies as st

from operations.credentials import password_problem
from operations.encoding import dotenv_line, redis_conf_quote

from .redis_args import split_args

# Printable text: letters, marks, numbers, punctuation, symbols, separators (space, NBSP...),
# plus the characters that break naive quoting. No control, format or unassigned characters.
NASTY = " \"'#$\\%@`!;&|<>(){}[]*?~=,:/^é€ß漢🙂${}"
printable = st.characters(categories=("L", "M", "N", "P", "S", "Zs"))
passwords = st.text(alphabet=st.one_of(printable, st.sampled_from(NASTY)), min_size=1, max_size=64)

CORNER_CASES = [
    "p w'\"#$x\\%@é${HOME}€ end ",
    "${REDIS_PASSWORD}", "$${x}", "${:-$}", "\\${x}", "'", '"', "\\", "\\'", "#not-a-comment",
    " leading and trailing ", "a\\x41b", "\\n", "${", "}", "$", "%40%20", "日本語 パスワード", "🙂🙃",
]


@settings(max_examples=500)
@given(passwords)
@example("\\x4")
@example('"\\"')
def test_redis_conf_round_trip(password):
    encoded = redis_conf_quote(password)
    assert encoded.isascii() and " " not in encoded
    assert split_args(f"requirepass {encoded}".encode()) == [b"requirepass", password.encode()]


def test_redis_conf_corner_cases():
    for password in CORNER_CASES:
        assert split_args(f"requirepass {redis_conf_quote(password)}".encode()) == [
            b"requirepass", password.encode()], password


def _read_back(line: str, interpolate: bool) -> str:
    return dotenv_values(stream=io.StringIO(f"OTHER=1\n{line}\nLAST=2\n"), interpolate=interpolate)[
        "REDIS_PASSWORD"]


@settings(max_examples=500)
@given(passwords)
def test_dotenv_round_trip(password):
    line = dotenv_line("REDIS_PASSWORD", password)
    assert "\n" not in line
    assert _read_back(line, interpolate=True) == password
    if "${" not in password:
        assert _read_back(line, interpolate=False) == password


def test_dotenv_corner_cases_even_with_matching_variables_set(monkeypatch):
    # ${HOME} must not expand, whatever the backend's environment holds.
    monkeypatch.setenv("HOME", "/root")
    monkeypatch.setenv("x", "EXPANDED")
    for password in CORNER_CASES:
        assert _read_back(dotenv_line("REDIS_PASSWORD", password), interpolate=True) == password, password


@given(passwords)
def test_printable_passwords_are_accepted(password):
    assert password_problem(password) is None


@given(passwords, st.sampled_from(["\n", "\r", "\x00", "\x07", "\x1b", "\u200b", "\x7f"]), st.data())
def test_control_characters_are_refused(password, bad, data):
    at = data.draw(st.integers(0, len(password)))
    assert password_problem(password[:at] + bad + password[at:]) is not None
