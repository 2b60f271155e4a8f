import pytest


@pytest.fixture(autouse=True)
def _private_secret_store(tmp_path, monkeypatch):
    """Generated passwords (the admin identity's) go to a throwaway store, the report to a temp file;
    the operator's REDIS_PASSWORD is ignored."""
    monkeypatch.setenv("HSI_REDIS_SECRETS_DIR", str(tmp_path / "secrets"))
    monkeypatch.setenv("HSI_REDIS_REPORT", str(tmp_path / "report.json"))
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
