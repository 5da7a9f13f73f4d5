"""`/openapi.json` documents the API (not the pages), with the shared error body."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_openapi_lists_the_api_paths(app_client: TestClient) -> None:
    response = app_client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/summary" in paths
    assert "/health" in paths


def test_openapi_leaves_pages_out(app_client: TestClient) -> None:
    paths = app_client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not [path for path in paths if path.startswith("/fragments/")]


def test_openapi_documents_the_error_shape(app_client: TestClient) -> None:
    spec = app_client.get("/openapi.json").json()
    responses = spec["paths"]["/api/v1/summary"]["get"]["responses"]
    assert responses["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorPublic"}
    assert set(spec["components"]["schemas"]["ErrorPublic"]["properties"]) == {"ok", "error", "errors", "status"}


def test_swagger_pages_are_not_served(app_client: TestClient) -> None:
    # FastAPI's /docs and /redoc load scripts from a CDN, which the CSP forbids.
    assert app_client.get("/docs").status_code == 404
    assert app_client.get("/redoc").status_code == 404
