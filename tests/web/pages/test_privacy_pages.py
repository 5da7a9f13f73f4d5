"""The privacy officer's pages: the audit trail (filters, paging, the chain's status) and Privacy Act
requests (open, find, export, close), who may use them, and that every identity read is audited."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect
from sqlalchemy import select, text

from cldx.access import audit, totp
from cldx.access.roles import ADMINISTRATOR, ANALYST, PRIVACY_OFFICER, PROVIDER_VIEWER
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit
from cldx.store.db import read_transaction, write_transaction
from cldx.store.models import AuditEvent, Provider
from cldx.web.pages.privacy import AUDIT_PAGE_SIZE
from cldx.web.templating import NAVIGATION, navigation_for

from .conftest import FIXED, PERIOD

REQUEST_PATHS = ["/privacy/requests", "/privacy/requests/PA-2026-0001"]
REQUEST_POSTS = ["/privacy/requests", "/privacy/requests/PA-2026-0001/find", "/privacy/requests/PA-2026-0001/export",
                 "/privacy/requests/PA-2026-0001/close"]


@pytest.fixture
def officer(make_user):
    return make_user("pia.officer", (PRIVACY_OFFICER, None), totp_secret=totp.new_secret())


@pytest.fixture
def officer_client(client_for, officer) -> TestClient:
    return client_for(officer)


@pytest.fixture
def admin(make_user):
    return make_user("ada.admin", (ADMINISTRATOR, None), totp_secret=totp.new_secret())


@pytest.fixture
def seeded(web_app, provider):
    """The fixed clients (Jane Smith, born 2008-12-19, among them) stored for the seeded provider."""
    files = [SourceFile(name, data) for name, data in FIXED.files]
    receipt = submit(web_app.state.engine, provider=provider.code, files=files, period=PERIOD, submitter="tiaki.submitter", channel="web")
    assert receipt.submission_id
    return provider


def entries(web_app, **filters) -> list[AuditEvent]:
    with read_transaction(web_app.state.engine) as session:
        return audit.list_events(session, limit=None, **filters)


def tamper(engine, statement: str, params: dict) -> None:
    """Change the trail as someone with DDL rights would (as tests/access/test_audit.py does)."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER USER")
        else:
            connection.exec_driver_sql("DROP TRIGGER audit_event_no_update")
            connection.exec_driver_sql("DROP TRIGGER audit_event_no_delete")
        connection.execute(text(statement), params)
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE audit_event ENABLE TRIGGER USER")


def add_entries(web_app, *rows: dict) -> None:
    with write_transaction(web_app.state.engine) as session:
        for row in rows:
            audit.record(session, **row)


def shown_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-entry="(\d+)">', html)]


# --- Who may use them --------------------------------------------------------------------------


def test_provider_staff_and_analysts_may_not_read_the_audit_trail(client_for, provider_user, make_user, analyst) -> None:
    viewer = make_user("tiaki.viewer", (PROVIDER_VIEWER, "P0001"))
    for user in (provider_user, viewer, analyst):
        response = client_for(user).get("/privacy/audit")
        assert response.status_code == 403, user.username
        assert "does not read the audit trail" in response.text


def test_privacy_officers_and_administrators_read_the_audit_trail(client_for, officer, admin) -> None:
    for user in (officer, admin):
        assert client_for(user).get("/privacy/audit").status_code == 200


@pytest.mark.parametrize("path", REQUEST_PATHS)
def test_only_privacy_officers_see_requests(client_for, provider_user, analyst, admin, path: str) -> None:
    for user in (provider_user, analyst, admin):
        response = client_for(user).get(path)
        assert response.status_code == 403, (user.username, path)


@pytest.mark.parametrize("path", REQUEST_POSTS)
def test_only_privacy_officers_act_on_requests(client_for, provider_user, analyst, admin, path: str) -> None:
    for user in (provider_user, analyst, admin):
        client = client_for(user)
        response = client.post(path, data={"csrf_token": client.csrf_token, "outcome": "x", "kind": "access"})
        assert response.status_code == 403, (user.username, path)


def test_anonymous_visitors_are_sent_to_sign_in(app_client: TestClient) -> None:
    for path in ("/privacy/audit", *REQUEST_PATHS):
        response = app_client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/sign-in")


def test_navigation_shows_the_pages_to_whoever_may_open_them(officer_client, client_for, admin, analyst) -> None:
    assert ("Audit trail", "/privacy/audit", "view-audit") in NAVIGATION
    html = officer_client.get("/").text
    assert 'href="/privacy/audit"' in html and 'href="/privacy/requests"' in html
    html = client_for(admin).get("/").text
    assert 'href="/privacy/audit"' in html and 'href="/privacy/requests"' not in html
    html = client_for(analyst).get("/").text
    assert "/privacy/" not in html
    assert navigation_for(None) == []


def test_an_unknown_reference_is_not_found(officer_client) -> None:
    for path in ("/privacy/requests/PA-2026-9999", "/privacy/requests/nothing", "/privacy/requests/%00"):
        assert officer_client.get(path).status_code == 404, path
    assert officer_client.post("/privacy/requests/PA-2026-9999/find").status_code == 404


# --- The audit trail -----------------------------------------------------------------------


def test_the_audit_page_lists_entries_newest_first_under_the_chain_status(web_app, officer_client) -> None:
    add_entries(web_app,
                {"actor": "alice", "action": "sign-in", "target": "alice"},
                {"actor": "bob", "action": "token-issued", "target": "bob's <token>", "detail": {"note": "<b>bold</b>"}})
    html = officer_client.get("/privacy/audit").text
    ids = shown_ids(html)
    assert ids == sorted(ids, reverse=True) and len(ids) >= 2
    chain = html.index('id="chain-status"')
    assert chain < html.index('id="audit-entries"')
    assert "Intact:" in html
    with read_transaction(web_app.state.engine) as session:
        result = audit.verify(session)
    assert f"{result.count} entries" in html and result.head_hash in html
    # Values are escaped.
    assert "bob&#39;s &lt;token&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_the_audit_filters(web_app, officer_client, add_provider) -> None:
    add_provider("P0009")
    with read_transaction(web_app.state.engine) as session:
        provider_id = session.scalar(select(Provider.id).where(Provider.code == "P0009"))
    now = datetime.now(timezone.utc)
    add_entries(web_app,
                {"actor": "old.hand", "action": "sign-in", "target": "old.hand", "at": now - timedelta(days=30)},
                {"actor": "tiaki", "action": "submission", "target": "S-1", "provider_id": provider_id},
                {"actor": "alice", "action": "sign-out", "target": "alice"})
    by_actor = shown_ids(officer_client.get("/privacy/audit", params={"actor": "alice"}).text)
    assert by_actor == [e.id for e in entries(web_app, actor="alice")] and by_actor
    by_action = shown_ids(officer_client.get("/privacy/audit", params={"action": "submission"}).text)
    assert by_action == [e.id for e in entries(web_app, action="submission")] and by_action
    by_provider = officer_client.get("/privacy/audit", params={"provider": "P0009"}).text
    assert shown_ids(by_provider) == [e.id for e in entries(web_app, provider_id=provider_id)]
    assert "<td>P0009</td>" in by_provider
    # From/to are days in Pacific/Auckland; "to" takes in its whole day.
    old_day = (now - timedelta(days=30)).astimezone(ZoneInfo("Pacific/Auckland")).date()
    that_day = shown_ids(officer_client.get("/privacy/audit", params={"from": old_day.isoformat(), "to": old_day.isoformat()}).text)
    assert that_day == [e.id for e in entries(web_app, actor="old.hand")]
    since = shown_ids(officer_client.get("/privacy/audit", params={"from": (old_day + timedelta(days=1)).isoformat()}).text)
    assert entries(web_app, actor="old.hand")[0].id not in since and since
    # A filter that cannot be understood says so.
    bad = officer_client.get("/privacy/audit", params={"from": "31/12/2026"})
    assert bad.status_code == 422 and "yyyy-mm-dd" in bad.text
    unknown = officer_client.get("/privacy/audit", params={"action": "no-such-thing"})
    assert unknown.status_code == 422 and "There is no action" in unknown.text
    nobody = officer_client.get("/privacy/audit", params={"provider": "P9999"})
    assert nobody.status_code == 422 and shown_ids(nobody.text) == []


def test_the_audit_trail_pages(web_app, officer_client) -> None:
    add_entries(web_app, *({"actor": "bulk", "action": "sign-in", "target": f"u{i}"} for i in range(AUDIT_PAGE_SIZE + 5)))
    first = officer_client.get("/privacy/audit", params={"actor": "bulk"}).text
    assert len(shown_ids(first)) == AUDIT_PAGE_SIZE
    assert "Page 1 of 2" in first and 'href="/privacy/audit?actor=bulk&amp;page=2"' in first
    second = officer_client.get("/privacy/audit", params={"actor": "bulk", "page": 2}).text
    assert len(shown_ids(second)) == 5
    assert min(shown_ids(first)) > max(shown_ids(second))


def test_a_tampered_trail_shows_the_broken_chain_with_the_entry(web_app, officer_client) -> None:
    add_entries(web_app, *({"actor": "alice", "action": "sign-in", "target": f"t{i}"} for i in range(3)))
    victim = entries(web_app, actor="alice")[1]
    tamper(web_app.state.engine, "UPDATE audit_event SET target = 'changed' WHERE id = :id", {"id": victim.id})
    html = officer_client.get("/privacy/audit").text
    assert "Chain broken" in html and "Intact:" not in html
    assert f'data-entry="{victim.id}" data-kind="edited"' in html
    assert f"Entry {victim.id} (edited)" in html
    assert html.index('id="chain-problems"') < html.index('id="audit-entries"')


# --- Privacy Act requests ------------------------------------------------------------------


def open_jane(client: TestClient, **overrides) -> str:
    form = {"kind": "access", "family_name": "Smith", "given_names": "Jane", "date_of_birth": "2008-12-19", "received_on": "2026-03-02",
            **overrides}
    response = client.post("/privacy/requests", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/privacy/requests/PA-2026-")
    return location.rsplit("/", 1)[1]


def test_a_privacy_officer_works_a_request_through(web_app, seeded, officer_client, officer) -> None:
    reference = open_jane(officer_client)

    listing = officer_client.get("/privacy/requests").text
    row = re.search(rf'<tr data-request="{reference}">.*?</tr>', listing, re.S).group(0)
    assert "access" in row and "2026-03-02" in row and officer.username in row and "open" in row
    assert "Smith" not in listing and "2008-12-19" not in listing  # the list never says whom it is about

    page = officer_client.get(f"/privacy/requests/{reference}").text
    assert "Jane Smith, born 2008-12-19" in page  # the officer's own case

    found = officer_client.post(f"/privacy/requests/{reference}/find")
    assert found.status_code == 200
    match = re.search(r'<tr data-provider="P0001" data-ref="C001">(.*?)</tr>', found.text, re.S)
    assert match and "client" in match.group(1) and "yes" in match.group(1)

    export = officer_client.post(f"/privacy/requests/{reference}/export")
    assert export.status_code == 200
    assert export.headers["content-disposition"] == f'attachment; filename="{reference}-export.json"'
    assert export.headers["cache-control"] == "no-store"
    document = json.loads(export.content)
    assert document["request"] == reference
    assert [r["ref"] for r in document["records"]] == ["C001"]
    assert "Smith" in export.text and "Jane" in export.text

    purpose = f"Privacy Act access request {reference}"
    reads = entries(web_app, action="identity-read")
    assert len(reads) == 2 and all(e.purpose == purpose and e.actor == officer.username for e in reads)
    exports = entries(web_app, action="export")
    assert [e.purpose for e in exports] == [purpose]
    audit_page = officer_client.get("/privacy/audit", params={"action": "identity-read"}).text
    assert purpose in audit_page

    closed = officer_client.post(f"/privacy/requests/{reference}/close", data={"outcome": "Export sent by courier."}, follow_redirects=False)
    assert closed.status_code == 303
    page = officer_client.get(f"/privacy/requests/{reference}").text
    assert 'id="request-status">closed<' in page and "Export sent by courier." in page
    assert "Find records" not in page
    assert [e.target for e in entries(web_app, action="privacy-request-closed")] == [reference]
    # A closed request takes no further steps.
    again = officer_client.post(f"/privacy/requests/{reference}/find")
    assert again.status_code == 409 and "closed" in again.text


def test_opening_a_request_checks_the_form(officer_client) -> None:
    response = officer_client.post("/privacy/requests", data={"kind": "other", "family_name": " ", "date_of_birth": "19/12/2008",
                                                              "received_on": "2026-03-02"})
    assert response.status_code == 422
    assert "access or a correction" in response.text and "family name" in response.text and "yyyy-mm-dd" in response.text
    assert 'id="no-requests"' in response.text


def test_closing_needs_an_outcome(officer_client) -> None:
    reference = open_jane(officer_client)
    response = officer_client.post(f"/privacy/requests/{reference}/close", data={"outcome": "  "})
    assert response.status_code == 422 and "Write the outcome" in response.text


def test_forms_without_the_csrf_token_are_refused(client_for, officer) -> None:
    signed_in = client_for(officer)
    reference = open_jane(signed_in)
    client = client_for(officer, csrf=False)
    for path, data in (("/privacy/requests", {"kind": "access", "family_name": "Smith", "date_of_birth": "2008-12-19", "received_on": "2026-03-02"}),
                       (f"/privacy/requests/{reference}/find", {}),
                       (f"/privacy/requests/{reference}/export", {}),
                       (f"/privacy/requests/{reference}/close", {"outcome": "done"})):
        response = client.post(path, data=data)
        assert response.status_code == 403, path
    # With the token in the form (as the pages send it) the same works.
    response = client.post(f"/privacy/requests/{reference}/find", data={"csrf_token": client.csrf_token})
    assert response.status_code == 200


def test_request_pages_have_no_inline_script(officer_client) -> None:
    reference = open_jane(officer_client)
    for html in (officer_client.get("/privacy/requests").text, officer_client.get(f"/privacy/requests/{reference}").text,
                 officer_client.get("/privacy/audit").text):
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)
        assert " style=" not in html and not re.search(r"\son[a-z]+=", html)


# --- In a browser --------------------------------------------------------------------------


def test_a_privacy_officer_opens_a_request_in_the_browser(page, sign_in_browser, officer) -> None:
    sign_in_browser(page, officer)
    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Privacy Act requests").click()
    expect(page.get_by_role("heading", name="Privacy Act requests", level=1)).to_be_visible()
    page.get_by_label("Access (what is held about the person)").check()
    page.get_by_label("Family name").fill("Pōmare")
    page.get_by_label("Given names").fill("Hana")
    page.get_by_label("Date of birth").fill("2010-01-02")
    page.get_by_label("Received").fill("2026-03-02")
    page.get_by_role("button", name="Open the request").click()
    expect(page.get_by_role("heading", name=re.compile(r"Request PA-2026-\d{4}"))).to_be_visible()
    expect(page.locator("#subject")).to_contain_text("Hana Pōmare")
    reference = page.get_by_role("heading", level=1).inner_text().split()[-1]
    page.get_by_role("link", name="Privacy Act requests").first.click()
    expect(page.locator(f'tr[data-request="{reference}"]')).to_contain_text("open")
