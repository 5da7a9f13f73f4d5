"""`/health`: 200 when the database answers, 503 (and no details) when it does not."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cldx.config import Settings
from cldx.web.app import create_app


def test_health_reports_ok_when_database_answers(app_client: TestClient) -> None:
    response = app_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_health_returns_503_when_database_unavailable(tmp_path) -> None:
    # A SQLite file in a directory that does not exist cannot be opened.
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'missing' / 'cldx.db'}")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unavailable"}
    assert "missing" not in response.text  # the reason is logged, not sent
