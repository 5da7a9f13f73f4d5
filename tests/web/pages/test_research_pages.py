"""The research extract pages: the list and the form to ask, a request's page with the step its
status allows (an officer decides someone else's, the requester downloads once), who may use
them, and errors shown on the page. On SQLite and on PostgreSQL (the app a member of cldx_app),
on a store with no client data; one run in Chromium: a privacy officer approves a request."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect

from cldx.access.roles import ADMINISTRATOR, ANALYST, RESEARCH_REQUESTER
from cldx.config import Settings
from cldx.web.templating import NAVIGATION, navigation_for

from ..conftest import second_factor_user

PURPOSE = "Re-referral within a year of Social Workers in Schools, for the Ministry's evaluation team."
FORM = {"period_from": "2016-07", "period_to": "2017-06", "purpose": PURPOSE, "k": "5", "date_precision": "month"}
YEAR = date.today().year


@pytest.fixture
def web_settings(matrix_settings: Settings) -> Settings:
    return matrix_settings


def ask(client: TestClient, **changes) -> str:
    response = client.post("/research", data={**FORM, **changes}, follow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert re.fullmatch(rf"/research/RX-{YEAR}-\d{{4}}", location), location
    return location.rsplit("/", 1)[1]


def status_on(html: str) -> str:
    return re.search(r'id="extract-status">([a-z]+)<', html).group(1)


# --- Who may use them --------------------------------------------------------------------------


def test_roles_without_research_are_refused(client_for, make_user, analyst, researcher, app_client) -> None:
    reference = ask(client_for(researcher))
    admin = second_factor_user(make_user, "ada.admin", ADMINISTRATOR)
    for user in (analyst, admin):
        client = client_for(user)
        for path in ("/research", f"/research/{reference}"):
            response = client.get(path)
            assert response.status_code == 403, (user.username, path)
            assert "does not request or decide research extracts" in response.text
        for path in ("/research", f"/research/{reference}/decision", f"/research/{reference}/download"):
            assert client.post(path, data={**FORM, "decision": "approve"}).status_code == 403, (user.username, path)
    for path in ("/research", f"/research/{reference}"):
        response = app_client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/sign-in")


def test_requesters_do_not_decide_and_officers_do_not_ask_or_take(client_for, researcher, officer) -> None:
    reference = ask(client_for(researcher))
    response = client_for(researcher).post(f"/research/{reference}/decision", data={"decision": "approve"})
    assert response.status_code == 403 and "Only a privacy officer" in response.text
    officer_client = client_for(officer)
    response = officer_client.post("/research", data=FORM)
    assert response.status_code == 403 and "research-requester" in response.text
    assert officer_client.post(f"/research/{reference}/download").status_code == 403


def test_navigation_shows_research_to_requesters_and_officers(client_for, researcher, officer, analyst) -> None:
    assert ("Research extracts", "/research", ("request-research-extract", "decide-research-extract")) in NAVIGATION
    for user in (researcher, officer):
        assert 'href="/research"' in client_for(user).get("/").text, user.username
    assert 'href="/research"' not in client_for(analyst).get("/").text
    assert navigation_for(None) == []


def test_requesters_see_their_own_and_officers_every_request(client_for, researcher, officer, make_user) -> None:
    other = second_factor_user(make_user, "other.researcher", ANALYST, RESEARCH_REQUESTER)
    mine = ask(client_for(researcher))
    theirs = ask(client_for(other), purpose="Engagement length by service line, for the sector workforce study.")
    listing = client_for(researcher).get("/research").text
    assert f'data-extract="{mine}"' in listing and theirs not in listing
    assert client_for(researcher).get(f"/research/{theirs}").status_code == 404
    everything = client_for(officer).get("/research").text
    assert everything.index(f'data-extract="{theirs}"') < everything.index(f'data-extract="{mine}"')  # newest first
    assert 'id="request-extract"' not in everything  # an officer does not ask
    for path in ("/research/RX-1999-0001", "/research/nothing", "/research/%00", "/research/RX-2026-1%00"):
        assert client_for(officer).get(path).status_code == 404, path
    assert client_for(officer).post("/research/RX-1999-0001/decision", data={"decision": "approve"}).status_code == 404


# --- Asking ------------------------------------------------------------------------------------


def test_a_requester_asks_through_the_form(client_for, researcher) -> None:
    client = client_for(researcher)
    empty = client.get("/research").text
    assert 'id="no-extracts"' in empty and 'id="request-extract"' in empty
    reference = ask(client, k="8", date_precision="quarter")
    row = re.search(rf'<tr data-extract="{reference}">.*?</tr>', client.get("/research").text, re.S).group(0)
    assert "2016-07 to 2017-06" in row and "Re-referral within a year" in row and researcher.username in row
    assert ">requested<" in row and re.search(r"NZ[SD]T", row)  # times in Pacific/Auckland
    page = client.get(f"/research/{reference}").text
    assert status_on(page) == "requested" and PURPOSE.replace("'", "&#39;") in page
    assert "Quarter (2017-Q1)" in page and "<dd>8</dd>" in page
    assert 'id="awaiting-decision"' in page and "A privacy officer other than you must approve or refuse" in page
    assert 'id="approve-extract"' not in page and 'id="download"' not in page


@pytest.mark.parametrize("changes, field, message", [
    ({"period_from": ""}, "period_from", "first month of the period"),
    ({"period_to": "06/2017"}, "period_to", "last month of the period"),
    ({"period_from": "2017-07", "period_to": "2016-06"}, "period_from", "ends before it starts"),
    ({"period_from": "2098-01", "period_to": "2098-06"}, "period_from", "starts in the future"),
    ({"purpose": "For research."}, "purpose", "at least 20 characters"),
    ({"purpose": PURPOSE + "\x00"}, "purpose", "control characters"),
    ({"k": "4"}, "k", "k must be a whole number from 5 to 50"),
    ({"k": "five"}, "k", "k must be a whole number from 5 to 50"),
    ({"date_precision": "week"}, "date_precision", "month, quarter or year"),
])
def test_a_form_that_cannot_be_taken_says_which_field(client_for, researcher, changes, field, message) -> None:
    client = client_for(researcher)
    response = client.post("/research", data={**FORM, **changes})
    assert response.status_code == 422, response.text
    summary = re.search(r'<div id="form-errors".*?</div>', response.text, re.S).group(0)
    assert message in summary.replace("&#39;", "'")
    assert f'href="#{field}"' in summary
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', response.text)
    assert 'id="no-extracts"' in response.text  # nothing recorded


def test_the_form_keeps_what_was_typed(client_for, researcher) -> None:
    response = client_for(researcher).post("/research", data={**FORM, "k": "4", "purpose": "Line one\r\nline two of the purpose"})
    assert response.status_code == 422
    assert ">Line one\nline two of the purpose</textarea>" in response.text
    assert 'value="2016-07"' in response.text and 'value="4"' in response.text


# --- Deciding ----------------------------------------------------------------------------------


def test_another_officer_approves_once(client_for, researcher, officer) -> None:
    reference = ask(client_for(researcher))
    officer_client = client_for(officer)
    page = officer_client.get(f"/research/{reference}").text
    assert 'id="approve-extract"' in page and 'id="refuse-extract"' in page
    assert '<label for="refuse-note">' in page and '<label for="approve-note">' in page
    response = officer_client.post(f"/research/{reference}/decision", data={"decision": "approve", "note": ""}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/research/{reference}"
    page = officer_client.get(f"/research/{reference}").text
    assert status_on(page) == "approved" and officer.username in page
    assert 'id="approve-extract"' not in page and 'id="awaiting-download"' in page
    again = officer_client.post(f"/research/{reference}/decision", data={"decision": "refuse", "note": "No."})
    assert again.status_code == 409 and "already approved" in again.text and status_on(again.text) == "approved"


def test_a_refusal_needs_a_note(client_for, researcher, officer) -> None:
    reference = ask(client_for(researcher))
    officer_client = client_for(officer)
    response = officer_client.post(f"/research/{reference}/decision", data={"decision": "refuse", "note": "  "})
    assert response.status_code == 422 and "Say why the request is refused" in response.text
    assert 'href="#refuse-note"' in response.text and status_on(response.text) == "requested"
    bad = officer_client.post(f"/research/{reference}/decision", data={"decision": "perhaps"})
    assert bad.status_code == 422 and "approve or refuse" in bad.text
    officer_client.post(f"/research/{reference}/decision", data={"decision": "refuse", "note": "Say which outcomes you need."})
    page = client_for(researcher).get(f"/research/{reference}").text
    assert status_on(page) == "refused" and "Say which outcomes you need." in page and 'id="download"' not in page


def test_the_requester_cannot_decide_their_own_even_as_a_privacy_officer(client_for, officer_researcher) -> None:
    client = client_for(officer_researcher)
    reference = ask(client)
    page = client.get(f"/research/{reference}").text
    assert 'id="approve-extract"' not in page and "A privacy officer other than you" in page
    response = client.post(f"/research/{reference}/decision", data={"decision": "approve"})
    assert response.status_code == 403
    assert "another privacy officer must approve or refuse it" in response.text and status_on(response.text) == "requested"
    assert status_on(client.get(f"/research/{reference}").text) == "requested"


# --- Taking the extract ------------------------------------------------------------------------


def test_the_requester_downloads_the_approved_extract_once(client_for, researcher, officer, make_user) -> None:
    client = client_for(researcher)
    reference = ask(client)
    early = client.post(f"/research/{reference}/download")
    assert early.status_code == 409 and "waiting for a privacy officer" in early.text
    client_for(officer).post(f"/research/{reference}/decision", data={"decision": "approve"})
    page = client.get(f"/research/{reference}").text
    assert re.search(r'<button type="submit" class="button" id="download">Download the extract \(zip\)</button>', page)

    # Nobody else takes it: not another requester (404), not the officer (403).
    other = second_factor_user(make_user, "other.researcher", ANALYST, RESEARCH_REQUESTER)
    assert client_for(other).post(f"/research/{reference}/download").status_code == 404
    assert 'id="download"' not in client_for(officer).get(f"/research/{reference}").text

    response = client.post(f"/research/{reference}/download")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == f'attachment; filename="{reference}.zip"'
    assert response.headers["cache-control"] == "no-store"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert {f"{reference}/{name}" for name in ("manifest.json", "clients.parquet", "clients.csv", "data_dictionary.md")} <= set(archive.namelist())

    page = client.get(f"/research/{reference}").text
    assert status_on(page) == "produced"
    assert re.search(r'<code id="manifest-sha256">[0-9a-f]{64}</code>', page)
    assert re.search(r'<tr data-table="clients"><th scope="row">clients</th><td class="num">0</td></tr>', page)
    assert 'id="kanonymity"' in page and 'id="download"' not in page
    again = client.post(f"/research/{reference}/download")
    assert again.status_code == 409 and "produced already" in again.text


def test_an_officer_holding_both_roles_does_not_take_anothers_extract(client_for, researcher, officer, officer_researcher) -> None:
    reference = ask(client_for(researcher))
    client_for(officer).post(f"/research/{reference}/decision", data={"decision": "approve"})
    response = client_for(officer_researcher).post(f"/research/{reference}/download")
    assert response.status_code == 403 and f"Only {researcher.username}, who asked for {reference}, may take it." in response.text
    assert status_on(client_for(researcher).get(f"/research/{reference}").text) == "approved"


def test_forms_without_the_csrf_token_are_refused(client_for, researcher, officer) -> None:
    reference = ask(client_for(researcher))
    assert client_for(researcher, csrf=False).post("/research", data=FORM).status_code == 403
    assert client_for(officer, csrf=False).post(f"/research/{reference}/decision", data={"decision": "approve"}).status_code == 403
    assert status_on(client_for(officer).get(f"/research/{reference}").text) == "requested"


def test_research_pages_have_no_inline_script_or_style(client_for, researcher, officer) -> None:
    client = client_for(researcher)
    reference = ask(client)
    pages = [client.get("/research").text, client.get(f"/research/{reference}").text, client_for(officer).get(f"/research/{reference}").text,
             client.post("/research", data={**FORM, "k": "1"}).text]
    for html in pages:
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)
        assert " style=" not in html and not re.search(r"\son[a-z]+=", html)


# --- In a browser ------------------------------------------------------------------------------


@pytest.mark.browser
def test_a_privacy_officer_approves_a_request_in_the_browser(page, sign_in_browser, client_for, researcher, officer) -> None:
    reference = ask(client_for(researcher))
    sign_in_browser(page, officer)
    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Research extracts").click()
    expect(page.get_by_role("heading", name="Research extracts", level=1)).to_be_visible()
    page.get_by_role("link", name=reference).click()
    expect(page.get_by_role("heading", name=f"Research extract {reference}", level=1)).to_be_visible()
    expect(page.locator("#extract-status")).to_have_text("requested")
    page.get_by_label("Note (optional)").fill("Within the evaluation's ethics approval.")
    page.get_by_role("button", name="Approve the request").click()
    expect(page.locator("#extract-status")).to_have_text("approved")
    expect(page.locator("#decision-note")).to_have_text("Within the evaluation's ethics approval.")
    expect(page.get_by_role("button", name="Approve the request")).to_have_count(0)
