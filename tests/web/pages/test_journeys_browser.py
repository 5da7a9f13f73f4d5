"""The four journeys issue 9 names, each from the sign-in form to the end, in real headless Chromium.

1. A provider's submitter signs in, downloads the Excel template, uploads files with planted
   faults, reads each fault at its file, row and field, fixes them and uploads again, then sends
   the same files a third time and sees 0 new and every row unchanged.
2. An analyst signs in with password and one-time code, opens the reach explorer and changes a
   breakdown: the chart and the table change together.
3. A privacy officer signs in, checks the audit trail's chain, approves a researcher's extract
   request and finds the decision in the trail with the chain still intact.
4. A provider's user asks for another provider's submission (404, page and API) and for the
   ministry's pages (403).

Nobody is signed in by cookie here: every journey types its password (and code) into the real
forms. The `page` fixture fails a test on any console error, failed request or CSP violation,
and leaves a screenshot in test-artifacts/ when a test fails.
"""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import openpyxl
import pytest
from playwright.sync_api import Page, expect

from cldx.access import totp
from cldx.access.roles import ANALYST
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit
from cldx.standard import RECORD_TYPES
from cldx.standard.templates import csv_template
from cldx.store import write_transaction
from cldx.store.models import Provider

from ..conftest import Persona, second_factor_user
from .conftest import FIXED
from .test_submissions_browser import count, fill_upload_form, send, visible_findings

pytestmark = pytest.mark.browser

OTHER_PROVIDER = "P0002"


def sign_in_with_form(page: Page, user: Persona) -> None:
    """Type the password (and, for ministry roles, the current one-time code) into the sign-in forms."""
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    if user.totp_secret is not None:
        expect(page.get_by_role("heading", name="Your one-time code")).to_be_visible()
        page.get_by_label("Code").fill(totp.code_at(user.totp_secret, totp.step_at(datetime.now(timezone.utc))))
        page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signed-in-as")).to_have_text(user.username)


def forget_expected_refusals(page_problems: list[str], *statuses: int) -> None:
    """A page answered 403 or 404 on purpose: Chromium logs that as a console error."""
    page_problems[:] = [p for p in page_problems if not any(f"status of {s}" in p for s in statuses)]


# --- 1. A provider sends, fixes and sends again -----------------------------------------------------------------


def test_a_provider_downloads_the_template_fixes_planted_faults_and_resends(
    page: Page, page_problems: list[str], provider, provider_user, period: str, faulty_upload, fixed_upload,
    expected_findings, tmp_path: Path,
) -> None:
    sign_in_with_form(page, provider_user)
    expect(page.get_by_role("heading", name=provider.name, level=1)).to_be_visible()

    # The Excel template: one sheet per record type, headed as that record type's CSV template.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Upload").click()
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile(r"^Excel workbook")).click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    workbook = openpyxl.load_workbook(io.BytesIO(saved.read_bytes()))
    for record_type in RECORD_TYPES.values():
        sheet = workbook[record_type.sheet_name]
        header = csv_template(record_type).decode("utf-8-sig").splitlines()[0].split(",")
        assert [c.value for c in next(sheet.iter_rows(max_row=1))] == header, sheet.title

    # The faulty files: each fault at its file, row and field, with what to do.
    fill_upload_form(page, provider.code, period, faulty_upload)
    send(page)
    expect(page.locator("#status-label")).to_have_text("Partly accepted")
    assert visible_findings(page) == expected_findings
    for row in page.locator("#findings tbody tr").all():
        expect(row.locator("td").last).not_to_be_empty()  # the fix, never blank

    # Fixed and sent again: nothing rejected.
    fill_upload_form(page, provider.code, period, fixed_upload)
    send(page)
    expect(page.locator("#status-label")).to_have_text("Accepted")
    assert count(page, "rejected") == "0"

    # The same files a third time: 0 new, every row unchanged.
    fill_upload_form(page, provider.code, period, fixed_upload)
    send(page)
    rows = sum(data.count(b"\n") - 1 for _, data in FIXED.files)
    assert (count(page, "new"), count(page, "changed"), count(page, "unchanged"), count(page, "rejected")) == ("0", "0", str(rows), "0")
    assert page_problems == []


# --- 2. An analyst explores reach ----------------------------------------------------------------------------------


def test_an_analyst_changes_a_breakdown_in_the_reach_explorer(page: Page, page_problems: list[str], make_user, stored_rollout) -> None:
    analyst = second_factor_user(make_user, "ana.journey", ANALYST)
    sign_in_with_form(page, analyst)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    page.get_by_role("link", name=re.compile("^Reach")).first.click()
    chart, table = page.locator("#chart-people"), page.locator("#table-people")
    expect(chart.locator("svg .mark-rect path").first).to_be_attached()
    expect(table.locator("thead th").first).to_have_text("service")
    bars_before = chart.locator("svg .mark-rect path").count()
    rows_before = table.locator("tbody tr").all_inner_texts()

    page.get_by_label("First").select_option("age_band")
    page.get_by_role("button", name="Show").click()
    expect(table.locator("thead th").first).to_have_text("age band")
    expect(chart.locator("svg .mark-rect path").first).to_be_attached()
    rows_after = table.locator("tbody tr").all_inner_texts()
    assert rows_after != rows_before
    # The chart draws the table's released rows (a suppressed one has nothing to draw), in its order.
    spec = json.loads(chart.locator("script.chart-spec").text_content())
    assert spec["encoding"]["x"]["field"] == "age_band"
    released = [cells[0] for cells in (row.split("\t") for row in rows_after) if cells[0] != "Total" and set(cells[1:]) != {"S"}]
    assert spec["encoding"]["x"]["scale"]["domain"] == released
    assert chart.locator("svg .mark-rect path").count() != bars_before
    assert page_problems == []


# --- 3. A privacy officer checks the trail and approves an extract ----------------------------------------------


def test_a_privacy_officer_verifies_the_audit_chain_and_approves_an_extract(
    page: Page, page_problems: list[str], client_for, researcher, officer,
) -> None:
    from .test_research_pages import ask

    reference = ask(client_for(researcher))
    sign_in_with_form(page, officer)
    nav = page.get_by_role("navigation", name="Main")

    nav.get_by_role("link", name="Audit trail").click()
    expect(page.locator("#chain-title")).to_have_text("Chain intact")
    head_before = page.locator("#head-hash").inner_text()

    nav.get_by_role("link", name="Research extracts").click()
    page.get_by_role("link", name=reference).click()
    expect(page.locator("#extract-status")).to_have_text("requested")
    page.get_by_label("Note (optional)").fill("Within the evaluation's ethics approval.")
    page.get_by_role("button", name="Approve the request").click()
    expect(page.locator("#extract-status")).to_have_text("approved")

    # The decision is in the trail, and the chain (now one entry longer) still checks.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit trail").click()
    page.get_by_label("What").select_option("research-extract-decided")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#chain-title")).to_have_text("Chain intact")
    assert page.locator("#head-hash").inner_text() != head_before
    entries = page.locator("#audit-entries tbody tr")
    expect(entries).to_have_count(1)
    expect(entries.first).to_contain_text(officer.username)
    expect(entries.first).to_contain_text(reference)
    assert page_problems == []


# --- 4. A provider cannot see another's data or the ministry's pages ----------------------------------------------


def test_a_provider_gets_404_for_anothers_submission_and_403_for_ministry_pages(
    page: Page, page_problems: list[str], web_app, provider, provider_user, fixed_upload, period: str,
) -> None:
    engine = web_app.state.engine
    with write_transaction(engine) as session:
        session.add(Provider(code=OTHER_PROVIDER, name="Another Trust", region_code="02"))
    others = submit(engine, provider=OTHER_PROVIDER, period=period,
                    files=[SourceFile(name, data) for name, data in fixed_upload.files], submitter="test", channel="test")

    sign_in_with_form(page, provider_user)
    response = page.goto(f"/submissions/{others.submission_id}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.locator("main")).not_to_contain_text("Another Trust")
    response = page.goto(f"/api/v1/submissions/{others.submission_id}")
    assert response is not None and response.status == 404

    for path in ("/privacy/audit", "/privacy/requests", "/research"):
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        expect(page.locator("main")).to_contain_text("not")  # says why, in words
    # The navigation never offers what the role cannot open.
    links = page.get_by_role("navigation", name="Main").get_by_role("link").all_inner_texts()
    assert not {"Audit trail", "Privacy Act requests", "Research extracts"} & set(links)
    forget_expected_refusals(page_problems, 403, 404)
    assert page_problems == []
