"""No password in the program's output, in any CLI's argv, or in the program text."""

from __future__ import annotations

import base64
import re

from .conftest import ADMIN_PW, BACKEND_PW, PROGRAM, bundle

NEW_PW = "rotated-Secret-pw-4455667788"


def test_every_verb_keeps_passwords_out_of_output_and_argv(host, tmp_path):
    argv_log = tmp_path / "argv.log"
    wrapper = tmp_path / "redis-cli"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {argv_log}\nexec redis-cli "$@"\n')
    wrapper.chmod(0o755)
    env_file = host.root / "backend" / ".env"
    host.fill(5)
    runs = []

    def run(verb, *args, stdin=None):
        result = host.run(verb, "--cli", str(wrapper), *args, stdin=stdin)
        runs.append((verb, result))
        return result

    run("state", "--env", str(env_file), "--env-keys", "REDIS_PASSWORD")
    run("verify")
    run("keep-last-good")
    run("apply", stdin=bundle(
        ("file", "0640", "root", "root", "restart", str(host.config), host.render(extra=["hz 16"])),
        ("merge", "after", "-", "-", str(env_file), f"REDIS_PASSWORD={BACKEND_PW}\n")))
    run("restart")
    run("secure-aof")
    failing = run("apply", stdin=bundle(
        ("file", "0640", "root", "root", "restart", str(host.config),
         host.render(extra=[f"requirepass-typo {BACKEND_PW} {ADMIN_PW}"]))))
    assert failing.code == 1 and "rolled back" in failing.err
    password_line = f"password {base64.b64encode(NEW_PW.encode()).decode()}\n".encode()
    rotation = run("rotate", "--drop", "1", stdin=password_line + bundle(
        ("file", "0600", "root", "root", "-", str(host.state / "backend.auth"), NEW_PW),
        ("file", "0640", "root", "root", "restart", str(host.config), host.render(backend_pw=NEW_PW)),
        ("merge", "-", "-", "-", str(env_file), f"REDIS_PASSWORD={NEW_PW}\n")))
    assert rotation.code == 0 and rotation.keys["dropped"] == "1", rotation.err
    run("state")
    argv = argv_log.read_text()
    assert argv.count("\n") > 20  # the wrapper saw the calls
    for secret in (ADMIN_PW, BACKEND_PW, NEW_PW):
        assert secret not in argv
        for verb, result in runs:
            assert secret not in result.out and secret not in result.err, verb


def test_the_program_text_holds_no_password_and_passes_them_only_by_environment_or_stdin():
    text = PROGRAM.read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    # the CLI is run in one place (ask), twice: with and without REDISCLI_AUTH
    runs = [line.strip() for line in code.splitlines() if '"$cli" --no-auth-warning' in line]
    assert len(runs) == 2 and runs[0].startswith('REDISCLI_AUTH=$c_pass timeout "$T" "$cli"'), runs
    assert not re.search(r'"\$cli"\s+(?!--no-auth-warning)', code.replace('command -v "$cli"', ""))
    cli_lines = [line for line in code.splitlines() if re.search(r'\bask\b|"\$cli"', line)]
    assert not [line for line in cli_lines if re.search(r"\s(-a|--pass|--askpass)(\s|$)", line)]
    assert re.findall(r"\bAUTH\b(?! failed)", code) == []  # only the reply "AUTH failed" is matched
    assert ADMIN_PW not in text and BACKEND_PW not in text
