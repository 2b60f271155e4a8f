import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _private_secret_store(tmp_path, monkeypatch):
    """Generated passwords go to a throwaway store; the operator's REDIS_PASSWORD is ignored."""
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path / "secrets"))
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)


def _chain_is_trusted(path: Path) -> bool:
    """Every directory from / down to `path` is root's (or this user's) and not group/other-writable."""
    for directory in (path, *path.parents):
        info = directory.stat()
        if info.st_uid not in (0, os.getuid()) or info.st_mode & 0o022:
            return False
    return True


@pytest.fixture
def trusted_dir():
    """A fresh directory on a path nobody else may change, readable by all (tests switch users there).

    The `.env` code refuses pytest's tmp_path under the world-writable /tmp, as it should; this
    one lives under the checkout (`.test-dirs/`, git-ignored) and is removed afterwards.
    """
    base = ROOT / ".test-dirs"
    base.mkdir(mode=0o755, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=base))
    path.chmod(0o755)
    if not _chain_is_trusted(path):
        shutil.rmtree(path)
        pytest.skip(f"{ROOT} is on a path other users may change: no trusted directory for this test")
    yield path
    shutil.rmtree(path)
