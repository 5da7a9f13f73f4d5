"""The home page and its htmx fragment show what the database holds."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

import cldx
from cldx.standard import STANDARD_VERSION
from cldx.store.db import make_engine, write_transaction
from cldx.store.migrate import head_revision
from cldx.store.registry import seed_service_lines


def count_in(html: str, name: str) -> str:
    match = re.search(rf'data-count="{name}">([^<]*)<', html)
    assert match, f"no count for {name}"
    return match.group(1)


def test_home_page_shows_the_counts(ministry_client: TestClient, web_db_url: str, add_provider) -> None:
    engine = make_engine(web_db_url)
    with write_transaction(engine) as session:  # the app's worker may hold the lock; wait for it
        seed_service_lines(session)
    engine.dispose()
    add_provider("P0001")
    add_provider("P0002")
    add_provider("P0003")

    response = ministry_client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert count_in(html, "providers") == "3"
    assert count_in(html, "service_lines") == "6"
    assert count_in(html, "contracts") == "0"
    for name in ("client", "dependant", "engagement", "attendance", "assessment", "outcome"):
        assert count_in(html, name) == "0"
    assert head_revision() in html


def test_home_page_uses_the_base_layout(ministry_client: TestClient) -> None:
    html = ministry_client.get("/").text
    assert "Client-Level Data eXchange" in html
    assert '<nav class="site-nav" aria-label="Main">' in html
    assert f"cldx {cldx.__version__}" in html
    assert f"Data standard {STANDARD_VERSION}" in html
    assert '<meta name="htmx-config" content=\'{"includeIndicatorStyles":false}\'>' in html


def test_refresh_button_fetches_the_fragment(ministry_client: TestClient) -> None:
    html = ministry_client.get("/").text
    button = re.search(r"<button[^>]*>Refresh</button>", html, re.S)
    assert button
    assert 'hx-get="/fragments/summary"' in button.group(0)
    assert 'hx-target="#summary"' in button.group(0)
    assert '<div id="summary"' in html


def test_summary_fragment_is_a_partial(ministry_client: TestClient, add_provider) -> None:
    add_provider("P0001")
    response = ministry_client.get("/fragments/summary")
    assert response.status_code == 200
    assert "<html" not in response.text
    assert "<table" in response.text
    assert count_in(response.text, "providers") == "1"
