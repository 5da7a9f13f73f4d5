"""The one error handler (`cldx.web.errors`): the JSON shape for the API, HTML pages otherwise.

Test-only routes are added to the app here; nothing in cldx serves them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date

import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel

from cldx.config import Settings
from cldx.web.app import create_app
from cldx.web.auth import public
from cldx.web.errors import GENERIC_500_MESSAGE, prefers_json

SECRET = "Jane Smith 19/12/2000"


class Person(BaseModel):
    family_name: str
    date_of_birth: date


def add_test_routes(app: FastAPI) -> None:
    @app.get("/api/v1/test-items")
    @public  # these routes test error answers, not sign-in
    def items(limit: int) -> dict:
        return {"limit": limit}

    @app.post("/api/v1/test-people")
    @public  # these routes test error answers, not sign-in
    def people(person: Person) -> dict:
        return {"ok": True}

    @app.post("/api/v1/test-upload")
    @public  # these routes test error answers, not sign-in
    async def upload(request: Request) -> dict:
        return {"size": len(await request.body())}

    @app.get("/api/v1/test-boom")
    @public  # these routes test error answers, not sign-in
    def api_boom() -> None:
        raise RuntimeError(f"secret detail: {SECRET}")

    @app.get("/api/v1/test-forbidden")
    @public  # these routes test error answers, not sign-in
    def forbidden() -> None:
        raise HTTPException(status_code=403, detail="You may not use this")

    @app.get("/api/v1/test-conflict")
    @public  # these routes test error answers, not sign-in
    def conflict() -> None:
        raise HTTPException(status_code=409, detail=[{"location": ["body", "code"], "message": "taken"}])

    @app.get("/test-page-items", response_class=HTMLResponse)
    @public  # these routes test error answers, not sign-in
    def page_items(limit: int) -> str:
        return f"<p>{limit}</p>"

    @app.get("/test-page-boom", response_class=HTMLResponse)
    @public  # these routes test error answers, not sign-in
    def page_boom() -> str:
        raise RuntimeError(f"secret detail: {SECRET}")


@pytest.fixture
def client(web_app: FastAPI) -> Iterator[TestClient]:
    add_test_routes(web_app)
    with TestClient(web_app, raise_server_exceptions=False) as client:
        yield client


# --- The JSON shape ------------------------------------------------------------------------


def test_api_404_has_error_shape(client: TestClient) -> None:
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"ok": False, "error": "Not Found", "errors": [], "status": 404}


def test_api_http_exception_keeps_its_message(client: TestClient) -> None:
    response = client.get("/api/v1/test-forbidden")
    assert response.status_code == 403
    assert response.json() == {"ok": False, "error": "You may not use this", "errors": [], "status": 403}


def test_api_http_exception_with_structured_detail_puts_it_in_errors(client: TestClient) -> None:
    response = client.get("/api/v1/test-conflict")
    assert response.json() == {
        "ok": False,
        "error": "Conflict",
        "errors": [{"location": ["body", "code"], "message": "taken"}],
        "status": 409,
    }


def test_api_405_has_error_shape_and_allow_header(client: TestClient) -> None:
    response = client.post("/api/v1/summary")
    assert response.status_code == 405
    assert response.json() == {"ok": False, "error": "Method Not Allowed", "errors": [], "status": 405}
    assert response.headers["allow"] == "GET"


def test_api_422_lists_location_and_message(client: TestClient) -> None:
    response = client.get("/api/v1/test-items", params={"limit": "lots"})
    assert response.status_code == 422
    body = response.json()
    assert body["ok"] is False
    assert body["status"] == 422
    assert body["error"].startswith("The request is not valid: query.limit: ")
    assert body["errors"] == [
        {
            "location": ["query", "limit"],
            "message": "Input should be a valid integer, unable to parse string as an integer",
            "type": "int_parsing",
        }
    ]


def test_api_422_counts_further_errors(client: TestClient) -> None:
    response = client.post("/api/v1/test-people", json={})
    assert response.status_code == 422
    body = response.json()
    assert [error["location"] for error in body["errors"]] == [["body", "family_name"], ["body", "date_of_birth"]]
    assert body["error"].endswith("(and 1 more)")


def test_api_422_never_echoes_the_input(client: TestClient) -> None:
    # A missing field's error carries the whole body as its input: names included.
    response = client.post("/api/v1/test-people", json={"family_name": SECRET})
    assert response.status_code == 422
    assert SECRET not in response.text
    assert "input" not in response.json()["errors"][0]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"\xff\xfe\x00", b"[1, 2", b"null", b'{"family_name": "A", "date_of_birth": "31/02/2020"}'],
)
def test_api_malformed_body_is_4xx_not_500(client: TestClient, body: bytes) -> None:
    response = client.post("/api/v1/test-people", content=body, headers={"content-type": "application/json"})
    # 422 when it parses as JSON but is wrong; FastAPI says 400 when it cannot decode it at all.
    assert response.status_code in (400, 422)
    assert response.json()["ok"] is False
    assert response.json()["status"] == response.status_code


def test_api_500_is_generic_and_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="cldx.web"):
        response = client.get("/api/v1/test-boom")
    assert response.status_code == 500
    assert response.json() == {"ok": False, "error": GENERIC_500_MESSAGE, "errors": [], "status": 500}
    assert SECRET not in response.text
    assert "Traceback" not in response.text
    logged = [record for record in caplog.records if record.name == "cldx.web" and record.exc_info]
    assert logged and SECRET in str(logged[0].exc_info[1])


@pytest.fixture
def small_limit_client(web_db_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=web_db_url, max_upload_bytes=100))
    add_test_routes(app)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


TOO_LARGE = {
    "ok": False,
    "error": "The request is larger than the 100 bytes this server accepts",
    "errors": [],
    "status": 413,
}


def test_api_body_at_the_upload_limit_is_accepted(small_limit_client: TestClient) -> None:
    assert small_limit_client.post("/api/v1/test-upload", content=b"x" * 100).json() == {"size": 100}


def test_api_body_declared_over_the_upload_limit_is_413(small_limit_client: TestClient) -> None:
    response = small_limit_client.post("/api/v1/test-upload", content=b"x" * 101)
    assert response.status_code == 413
    assert response.json() == TOO_LARGE


def test_api_body_streamed_over_the_upload_limit_is_413(small_limit_client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for _ in range(5):
            yield b"x" * 30

    response = small_limit_client.post("/api/v1/test-upload", content=chunks())
    assert response.status_code == 413
    assert response.json() == TOO_LARGE


# --- HTML pages ------------------------------------------------------------------------------


def test_page_404_renders_html(client: TestClient) -> None:
    response = client.get("/no-such-page", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "<h1>Page not found</h1>" in html  # templates/404.html
    assert '<header class="site-header">' in html  # in the base layout (no links: nobody is signed in)
    assert "/no-such-page" in html


def test_page_404_escapes_the_path(client: TestClient) -> None:
    response = client.get("/%3Cscript%3Ealert(1)%3C/script%3E")
    assert response.status_code == 404
    assert "<script>alert(1)" not in response.text
    assert "&lt;script&gt;" in response.text


def test_page_without_own_template_uses_error_html(client: TestClient) -> None:
    response = client.post("/")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Method Not Allowed</h1>" in response.text
    assert "Error 405" in response.text


def test_page_422_lists_the_errors(client: TestClient) -> None:
    response = client.get("/test-page-items", params={"limit": "lots"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "<code>query.limit</code>: Input should be a valid integer" in response.text


def test_page_500_is_generic_html(client: TestClient) -> None:
    response = client.get("/test-page-boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert GENERIC_500_MESSAGE in response.text
    assert SECRET not in response.text
    assert "Traceback" not in response.text


def test_page_path_answers_json_when_accept_prefers_it(client: TestClient) -> None:
    response = client.get("/no-such-page", headers={"accept": "application/json"})
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error": "Not Found", "errors": [], "status": 404}


def test_api_path_answers_json_whatever_accept_says(client: TestClient) -> None:
    response = client.get("/api/v1/no-such-thing", headers={"accept": "text/html"})
    assert response.json()["status"] == 404


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json", True),
        ("application/json, text/html;q=0.9", True),
        ("text/html, application/json;q=0.9", False),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        ("*/*", False),
        ("", False),
        ("application/*", True),
        ("application/json;q=0.5, */*;q=0.1", True),
        ("application/json;q=nonsense, text/html", False),
        (";;;,/,garbage", False),
    ],
)
def test_prefers_json(accept: str, expected: bool) -> None:
    assert prefers_json(accept) is expected
