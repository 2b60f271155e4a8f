import pytest


@pytest.fixture(autouse=True)
def _private_secret_store(tmp_path, monkeypatch):
    """Generated passwords go to a throwaway store; the operator's REDIS_PASSWORD is ignored."""
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path / "secrets"))
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
