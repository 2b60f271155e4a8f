"""The backend `.env` merge (issue 9 item 8), run by the program as the deploy runs it: a `merge` entry of
`apply`, and the `--env` scan of `verify`/`state` that the deploy decides from. The rule is checked against
python-dotenv itself (the backend's reader): whenever the merge goes ahead, python-dotenv reads exactly the
wanted values and every other key as before; when it refuses, nothing changed, and the scan names the
same lines."""

from __future__ import annotations

import io
import os

import pytest
from dotenv import dotenv_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operations.encoding import dotenv_line
from operations.hoststate import salted_sha256

from .conftest import bundle

SALT = "5a17"
OWNED = {"REDIS_URL": "REDIS_URL=redis://localhost:6379/0", "REDIS_PASSWORD": dotenv_line("REDIS_PASSWORD", "p'w$x")}
WANTED = {"REDIS_URL": "redis://localhost:6379/0", "REDIS_PASSWORD": "p'w$x"}


@pytest.fixture
def h(make_host):
    return make_host()  # no server: a merge entry alone never restarts


@pytest.fixture
def envdir(tmp_path):
    """The .env's own directory (the host's files live beside it in pytest's tmp_path)."""
    path = tmp_path / "env"
    path.mkdir()
    return path


def merge(h, path, lines: dict[str, str] = OWNED, user: str = "-", group: str = "-"):
    wanted = "".join(f"{line}\n" for line in lines.values())
    return h.run("apply", stdin=bundle(("merge", "-", user, group, str(path), wanted)))


def scan(h, path, keys=tuple(OWNED)) -> tuple[dict[str, list[str]], list[tuple[int, str]], str]:
    """({KEY: [salted hash of each assigning line]}, [(line, reason)], crlf) as the state read reports."""
    r = h.run("verify", "--salt", SALT, "--env", str(path), "--env-keys", " ".join(keys))
    assert r.code == 0 and not r.keys.get("error"), r.out + r.err
    found: dict[str, list[str]] = {}
    for value in r.all("envkey"):
        _, key, sha = value.split()
        found.setdefault(key, []).append(sha)
    bad = [(int(v.split(" ", 2)[1]), v.split(" ", 2)[2]) for v in r.all("envbad")]
    return found, bad, r.keys["env"].split()[4]


def settled(h, path, lines: dict[str, str] = OWNED) -> bool:
    """What the deploy decides from the read: every owned key assigned once, by exactly the wanted line."""
    found, bad, _ = scan(h, path, tuple(lines))
    return not bad and all(found.get(k) == [salted_sha256(SALT, line)] for k, line in lines.items())


def read(path) -> dict:
    return dotenv_values(stream=io.StringIO(path.read_bytes().decode(), newline=""))


def test_creates_a_missing_file_and_directory(h, envdir):
    path = envdir / "app" / ".env"
    r = merge(h, path)
    assert r.code == 0 and r.out == f"changed={path}\n", r.err
    assert path.read_text() == "REDIS_URL=redis://localhost:6379/0\nREDIS_PASSWORD='p\\'w$x'\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert os.listdir(path.parent) == [".env"], "temporary files left behind"
    assert settled(h, path)


def test_replaces_in_place_drops_duplicates_keeps_the_rest(h, envdir):
    path = envdir / ".env"
    path.write_bytes(
        b"# comment\r\nA=1\r\n  export REDIS_URL = redis://old:1/2\r\n\r\nB='two words'\n"
        b"REDIS_PASSWORD=old\nREDIS_PASSWORD=again\nREDIS_URLX=keep\nC=\"${A}\"\n"
    )
    assert merge(h, path).code == 0
    assert path.read_bytes() == (  # a replaced line keeps its own line ending
        b"# comment\r\nA=1\r\nREDIS_URL=redis://localhost:6379/0\r\n\r\nB='two words'\n"
        b"REDIS_PASSWORD='p\\'w$x'\nREDIS_URLX=keep\nC=\"${A}\"\n"
    )
    assert read(path)["REDIS_PASSWORD"] == "p'w$x"
    assert settled(h, path)


def test_is_a_fixed_point(h, envdir):
    path = envdir / ".env"
    path.write_text("X=1\n")
    assert merge(h, path).code == 0
    once = path.read_bytes()
    again = merge(h, path)
    assert again.code == 0 and again.out == "" and path.read_bytes() == once


def test_a_crlf_file_keeps_crlf_on_every_line_and_the_read_settles(h, envdir):
    """A Windows-edited .env stays CRLF, appended lines included (they take the last line's ending); the
    read hashes lines without their CR, so the next run sees nothing to do."""
    path = envdir / ".env"
    path.write_bytes(b"DATABASE_URL=postgresql://db/hsi\r\nREDIS_URL=redis://old:1/0\r\nLOG_LEVEL=INFO\r\n")
    assert scan(h, path)[2] == "1"
    assert merge(h, path).code == 0
    assert path.read_bytes() == (b"DATABASE_URL=postgresql://db/hsi\r\nREDIS_URL=redis://localhost:6379/0\r\n"
                                 b"LOG_LEVEL=INFO\r\nREDIS_PASSWORD='p\\'w$x'\r\n")
    assert read(path)["REDIS_PASSWORD"] == "p'w$x"
    assert settled(h, path)


def test_appended_lines_take_the_last_line_s_ending(h, envdir):
    path = envdir / ".env"
    path.write_bytes(b"A=1\r\nREDIS_URL=old\r\nB=2\n")  # mixed: the replaced line keeps CRLF, the appended LF
    assert scan(h, path)[2] == "0"
    assert merge(h, path).code == 0
    assert path.read_bytes() == b"A=1\r\nREDIS_URL=redis://localhost:6379/0\r\nB=2\nREDIS_PASSWORD='p\\'w$x'\n"


# (file content, line number the refusal names, its reason, a value that must not appear in the message)
AMBIGUOUS = {
    "double-quoted key": ('A=1\n"REDIS_URL"=redis://evil:1/0\n', 2, "quoted-key", "evil"),
    "single-quoted key": ("A=1\nB=2\n'REDIS_PASSWORD'=hunter2-secret\n", 3, "quoted-key", "hunter2"),
    "exported quoted key": ("export 'REDIS_URL'=redis://evil:1/0\n", 1, "quoted-key", "evil"),
    "multi-line owned value": ('REDIS_PASSWORD="hunter2-first\nsecond-part"\n', 1, "multi-line-value", "hunter2"),
    "multi-line single-quoted": ("X=1\nREDIS_PASSWORD='hunter2\n'\n", 2, "multi-line-value", "hunter2"),
    "owned key inside another value": ('CERT="-----BEGIN\nREDIS_PASSWORD=hunter2\n-----END"\n', 2,
                                       "inside-multi-line-value", "hunter2"),
    "form-feed indent": ("REDIS_URL=redis://a:1/0\n\fREDIS_URL=redis://evil:1/0\n", 2, "odd-whitespace", "evil"),
    "vertical-tab before =": ("REDIS_URL\v=redis://evil:1/0\n", 1, "odd-whitespace", "evil"),
    "no-break space indent": ("A=1\n\u00a0REDIS_URL=redis://evil:1/0\n", 2, "odd-whitespace", "evil"),
    "bare carriage return": ("X=1\rREDIS_PASSWORD=hunter2\n", 1, "carriage-return", "hunter2"),
    "crlf multi-line": ('A=1\r\nREDIS_PASSWORD="hunter2\r\nmore"\r\n', 2, "multi-line-value", "hunter2"),
    "owned key without =": ("REDIS_URL\nA=1\n", 1, "no-equals", "A=1"),
    "owned key, a comment, no =": ("REDIS_PASSWORD # hunter2\n", 1, "no-equals", "hunter2"),
    # python-dotenv reads to the next such quote, wherever it is: the appended lines would close it
    "a quote that never closes, at the end": ("A=1\nB='never closed\n", 2, "unterminated-quote", "never"),
    "a quoted key that never closes": ("'UNCLOSED=x\n", 1, "unterminated-quote", "UNCLOSED"),
    "an owned value that never closes": ('REDIS_URL="redis://evil\n', 1, "unterminated-quote", "evil"),
}


@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_a_file_the_merge_cannot_read_unambiguously_is_refused_unchanged(h, envdir, case):
    content, line, reason, secret = AMBIGUOUS[case]
    path = envdir / ".env"
    path.write_bytes(content.encode())
    _, bad, _ = scan(h, path)
    assert (line, reason) in bad, bad  # the deploy refuses from the read, before anything changes
    r = merge(h, path)  # and the merge itself (the file may change between the read and the write)
    assert r.code == 1 and f"{path} line {line}: " in r.err and reason in r.err, r.err
    assert secret not in r.err + r.out and r.out == ""
    assert path.read_bytes() == content.encode()
    assert os.listdir(envdir) == [".env"], "temporary files left behind"


def test_other_keys_may_have_multi_line_values(h, envdir):
    path = envdir / ".env"
    path.write_text('CERT="-----BEGIN\nREDIS_PASSWORDS ARE HERE\n-----END"\nREDIS_URL=redis://old:1/0\n')
    r = merge(h, path)
    assert r.code == 0, r.err
    values = read(path)
    assert values["CERT"] == "-----BEGIN\nREDIS_PASSWORDS ARE HERE\n-----END"
    assert values["REDIS_URL"] == WANTED["REDIS_URL"] and values["REDIS_PASSWORD"] == WANTED["REDIS_PASSWORD"]
    assert settled(h, path)


def test_a_line_python_dotenv_rejects_is_replaced_when_it_names_an_owned_key(h, envdir):
    """`REDIS_URL='a'b` is an error for python-dotenv (the key stays unset); the merge writes the key."""
    path = envdir / ".env"
    path.write_text("REDIS_URL='a'b\nREDIS_PASSWORD='it''s'\n  weird line  \n")
    assert merge(h, path).code == 0
    assert path.read_text() == "REDIS_URL=redis://localhost:6379/0\nREDIS_PASSWORD='p\\'w$x'\n  weird line  \n"


def test_passwords_read_back_through_python_dotenv(h, envdir):
    path = envdir / ".env"
    for password in ("a b#c", 'q"\'\\', "${HOME}$x", "ünï©ødé", "%40@:/?&=", "end\\", "'\"'", "\u00a0x\u2028"):
        r = merge(h, path, {"REDIS_PASSWORD": dotenv_line("REDIS_PASSWORD", password)})
        assert r.code == 0, r.err
        assert read(path)["REDIS_PASSWORD"] == password


def test_a_file_without_a_final_newline_gets_the_keys_on_their_own_lines(h, envdir):
    path = envdir / ".env"
    path.write_bytes(b"A=1")
    assert merge(h, path).code == 0
    assert read(path) == {"A": "1", **WANTED}


# -- properties, against python-dotenv --------------------------------------------------------------

HYPOTHESIS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

printable = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)


@settings(max_examples=40, **HYPOTHESIS)
@given(printable)
def test_the_merge_never_refuses_its_own_lines(h, envdir, password):
    """Whatever the password, the line the deploy writes is read unambiguously on the next run."""
    path = envdir / ".env"
    lines = {**OWNED, "REDIS_PASSWORD": dotenv_line("REDIS_PASSWORD", password)}
    path.write_text("A='x'\n" + "".join(f"{line}\n" for line in lines.values()) + 'B="y"\n')
    assert settled(h, path, lines)


# Fragments of .env lines: quotes opened and closed across lines, quoted keys, exports, escapes, the
# whitespace python-dotenv skips and a line-based reader does not.
FRAGMENTS = [
    "A=1", "REDIS_URL=redis://old:1/0", "export REDIS_URL = redis://x:2/0", "'REDIS_URL'=q", '"REDIS_PASSWORD"=q',
    "REDIS_PASSWORD='old'", 'REDIS_PASSWORD="open', "REDIS_PASSWORD='open", 'C="open', "D='open", 'close"', "close'",
    "E='a\\'b'", 'F="a\\"b"', "G='x\\", "# REDIS_URL=comment", "  REDIS_PASSWORD = spaced", "\tREDIS_URL=tab",
    "REDIS_URL", "H=", "REDIS_PASSWORD=x # note", "I='a' # c", "\x0bREDIS_PASSWORD=vt", "export REDIS_PASSWORD='e'",
    "REDIS_URL='a'b", "J='x'y", "\u00a0REDIS_URL=nbsp", "K\u2003=em", "export\fREDIS_URL=ff", "'L", "M=\"\\\\\"",
    "N='\\\\'", "REDIS_PASSWORD #x", "=bad", "O= #c", "P=#v", "\ufeffQ=bom", "  ", "",
]


def _check_against_dotenv(h, path, original: bytes) -> bool:
    """Whether the merge went ahead; either way, python-dotenv agrees and the read agrees with the merge."""
    before = dotenv_values(stream=io.StringIO(original.decode(), newline=""))
    _, bad, _ = scan(h, path)
    r = merge(h, path)
    if r.code:
        assert " line " in r.err, r.err
        assert path.read_bytes() == original
        assert bad, "the read must refuse what the merge refuses"
        return False
    assert not bad, bad
    after = read(path)
    assert {k: after.get(k) for k in OWNED} == WANTED
    assert {k: v for k, v in after.items() if k not in OWNED} == {k: v for k, v in before.items() if k not in OWNED}
    assert settled(h, path)
    return True


@settings(max_examples=100, **HYPOTHESIS)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=7), st.booleans())
def test_what_the_merge_accepts_python_dotenv_reads_as_written(h, envdir, fragments, crlf):
    """The refusal rule checked against python-dotenv itself: whenever the merge goes ahead, the backend's
    reader gets exactly the deployed values and every other key as before; when it refuses, nothing changed
    and the read refused too."""
    path = envdir / ".env"
    newline = "\r\n" if crlf else "\n"
    original = "".join(f"{fragment}{newline}" for fragment in fragments).encode()
    path.write_bytes(original)
    _check_against_dotenv(h, path, original)


other_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"), max_size=40
).filter(lambda s: "REDIS_URL" not in s and "REDIS_PASSWORD" not in s)


@settings(max_examples=40, **HYPOTHESIS)
@given(st.lists(other_line, max_size=8))
def test_other_lines_survive_byte_for_byte(h, envdir, lines):
    path = envdir / ".env"
    original = "".join(f"{line}\n" for line in lines).encode()
    path.write_bytes(original)
    if _check_against_dotenv(h, path, original):  # refused: a quote that never closes, odd spacing...
        merged = path.read_bytes().decode().split("\n")[:-1]  # not splitlines(): \x1e etc. are no breaks here
        assert merged == [*lines, *OWNED.values()]  # no line of theirs assigns an owned key: all kept
