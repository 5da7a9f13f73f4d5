"""Security headers are on every response: pages, API, static files, errors (500s included)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cldx.web.auth import public
from cldx.web.security import CONTENT_SECURITY_POLICY

EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def assert_security_headers(response) -> None:
    assert response.headers.get_list("content-security-policy") == [EXPECTED_CSP]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


def test_policy_is_the_agreed_one() -> None:
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/fragments/summary",
        "/health",
        "/api/v1/summary",
        "/openapi.json",
        "/static/cldx.css",
        "/static/vendor/htmx-2.0.11.min.js",
        "/no-such-page",
        "/api/v1/no-such-thing",
    ],
)
def test_security_headers_on(ministry_client: TestClient, path: str) -> None:
    assert_security_headers(ministry_client.get(path))


@pytest.mark.parametrize("path", ["/", "/sign-in", "/api/v1/summary"])
def test_security_headers_on_answers_to_strangers(app_client: TestClient, path: str) -> None:
    assert_security_headers(app_client.get(path, follow_redirects=False))


def test_security_headers_on_unexpected_errors(web_app: FastAPI) -> None:
    @web_app.get("/api/v1/test-boom")
    @public  # about the error answer, not sign-in
    def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(web_app, raise_server_exceptions=False) as client:
        response = client.get("/api/v1/test-boom")
    assert response.status_code == 500
    assert_security_headers(response)
