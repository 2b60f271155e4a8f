"""What the program shows of a server that did not come up (its log and journal lines) never carries a
directive's arguments: its REDACT expression, run as `reasons()` runs it (sed -E)."""

from __future__ import annotations

import re
import subprocess

import pytest

from .conftest import PROGRAM, SHELL


def redact(line: str) -> str:
    """`line` through the program's own REDACT expression (taken from its text, evaluated by the shell)."""
    (assignment,) = re.findall(r"^REDACT=.*$", PROGRAM.read_text(), re.MULTILINE)
    script = f'{assignment}\nprintf "%s\\n" "$1" | sed -E "$REDACT"'
    done = subprocess.run([SHELL, "-c", script, "redact", line], capture_output=True, text=True, check=True)
    return done.stdout


@pytest.mark.parametrize("line, hidden", [
    (">>> 'requirepass \"s3cret\"'", "s3cret"),
    (">>> 'bogus-directive s3cret more'", "s3cret"),
    (">>> 'requirepass \"a'b\"'", "a'b"),
    ("user default on >s3cret ~*", "s3cret"),
    ("user default on #0123abcd ~*", "0123abcd"),
    ("masterauth s3cret", "s3cret"),
    ("MASTERAUTH s3cret", "s3cret"),
    ("tls-key-file-pass s3cret", "s3cret"),
])
def test_journal_redaction_hides_arguments(line, hidden):
    out = redact(line)
    assert hidden not in out
    assert out.split()[0] in line


@pytest.mark.parametrize("line", [
    "redis-server.service: Main process exited, code=exited, status=1/FAILURE",
    "redis-server.service: Failed to set up user namespacing: Operation not permitted",
    "Bad directive or wrong number of arguments",
])
def test_journal_redaction_keeps_other_lines(line):
    assert redact(line).strip() == line
