"""`/api/v1/summary`: what the database holds."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cldx.standard import RECORD_TYPES
from cldx.store.db import make_engine, transaction
from cldx.store.migrate import head_revision
from cldx.store.registry import seed_service_lines


def test_summary_of_an_empty_database(ministry_client: TestClient) -> None:
    response = ministry_client.get("/api/v1/summary")
    assert response.status_code == 200
    assert response.json() == {
        "providers": 0,
        "service_lines": 0,
        "contracts": 0,
        "submissions": 0,
        "records": {name: 0 for name in RECORD_TYPES},
        "schema_revision": head_revision(),
    }


def test_summary_records_keep_the_standards_order(ministry_client: TestClient) -> None:
    records = ministry_client.get("/api/v1/summary").json()["records"]
    assert list(records) == ["client", "dependant", "engagement", "attendance", "assessment", "outcome"]


def test_summary_counts_what_was_added(ministry_client: TestClient, web_db_url: str, add_provider) -> None:
    engine = make_engine(web_db_url)
    with transaction(engine) as session:
        seed_service_lines(session)
    engine.dispose()
    add_provider("P0001")
    add_provider("P0002")
    body = ministry_client.get("/api/v1/summary").json()
    assert (body["providers"], body["service_lines"]) == (2, 6)
