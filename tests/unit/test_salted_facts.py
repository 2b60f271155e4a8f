"""The file facts report salted hashes that match what the control machine computes.

Their commands run for real here with the local sh/coreutils (the same tools as a host).
"""

from __future__ import annotations

import hashlib
import subprocess

from operations.backend_env import EnvFileKeys
from operations.facts import ManagedFile, new_salt, salted_sha256

PASSWORD = "correct horse battery staple"


def _run(command: str) -> list[str]:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout.splitlines()


def test_managed_file_hash_is_salted_and_matches(tmp_path):
    path = tmp_path / "cli.auth"
    path.write_text(PASSWORD)
    salt = new_salt()
    fact = ManagedFile()
    found = fact.process(_run(fact.command(path=str(path), salt=salt)))
    assert found["sha256"] == salted_sha256(salt, PASSWORD)
    # What -vvv would print is not the ACL form (#<sha256 of the password>).
    assert found["sha256"] != hashlib.sha256(PASSWORD.encode()).hexdigest()
    assert ManagedFile().process(_run(ManagedFile().command(path=str(tmp_path / "missing"), salt=salt))) is None


def test_env_keys_hashes_are_salted_and_match(trusted_dir):
    path = trusted_dir / ".env"
    line = f"REDIS_PASSWORD='{PASSWORD}'"
    path.write_text(f"A=1\r\n{line}\r\nREDIS_URL=redis://localhost:6379/0\n")
    salt = new_salt()
    fact = EnvFileKeys()
    found = fact.process(_run(fact.command(path=str(path), keys=("REDIS_PASSWORD", "REDIS_URL"), salt=salt)))
    assert found["keys"]["REDIS_PASSWORD"] == [salted_sha256(salt, line)]
    assert found["keys"]["REDIS_URL"] == [salted_sha256(salt, "REDIS_URL=redis://localhost:6379/0")]
    assert salted_sha256(new_salt(), line) != found["keys"]["REDIS_PASSWORD"][0]
