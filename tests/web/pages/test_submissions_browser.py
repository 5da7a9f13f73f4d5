"""A provider's journey in real headless Chromium: upload files with faults, read each finding
at its exact row and field, filter, download the findings, fix the files and send them again.

The `page` fixture fails a test on any console error, page error, failed request or request to
another host, so these also show the pages keep to the Content Security Policy.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def signed_in(page: Page, provider_user, sign_in_browser) -> None:
    """The seeded provider's submitter."""
    sign_in_browser(page, provider_user)

SUBMISSION_URL = re.compile(r"/submissions/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def fill_upload_form(page: Page, provider_code: str, period: str, upload) -> None:
    page.goto("/submissions/new")
    page.get_by_label("Provider").select_option(provider_code)
    page.get_by_label("Month the records are for").fill(period)
    page.get_by_label("Store the rows that pass").check()
    page.get_by_label("Files", exact=True).set_input_files(upload.playwright())


def send(page: Page, expected_status: int = 201) -> None:
    """Press Send and wait for the API's answer and the submission page."""
    with page.expect_response(lambda r: r.url.endswith("/api/v1/submissions") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Send files").click()
    assert answer.value.status == expected_status, answer.value.text()
    page.wait_for_url(SUBMISSION_URL)


def count(page: Page, name: str) -> str:
    return page.locator(f'[data-count="{name}"]').inner_text()


def visible_findings(page: Page) -> list[tuple[str, int, str, str, str]]:
    rows = page.locator("#findings tbody tr:visible")
    return [
        (r["file"], int(r["row"]), r["field"], r["rule"], r["severity"])
        for r in rows.evaluate_all("rows => rows.map(r => ({...r.dataset}))")
    ]


def test_provider_fixes_what_the_findings_point_at(
    page: Page, page_problems: list[str], provider, period: str, faulty_upload, fixed_upload, expected_findings, tmp_path: Path
) -> None:
    # 1. The faulty files: every finding at its row and field.
    fill_upload_form(page, provider.code, period, faulty_upload)
    send(page)
    expect(page.locator("h1")).to_have_text(f"Submission: {provider.name}, August 2017")
    expect(page.locator("#status-label")).to_have_text("Partly accepted")
    assert count(page, "new") == "3"
    assert count(page, "rejected") == "4"
    assert visible_findings(page) == expected_findings
    impossible = page.locator('#findings tr[data-rule="impossible-date"]')
    expect(impossible.locator("td").nth(1)).to_have_text("3")  # the spreadsheet row
    expect(impossible.locator("td").nth(2)).to_have_text("date_of_birth")
    expect(impossible).to_contain_text("not a real calendar date")
    expect(page.locator('#findings tr[data-rule="unknown-code"]')).to_contain_text("7 is not a code in Gender identity")
    expect(page.locator('#findings tr[data-rule="unknown-reference"]')).to_contain_text("client_ref C999")
    expect(page.locator('#findings tr[data-rule="date-order"]')).to_contain_text("end_date 2017-08-01 is before start_date 2017-08-20")
    expect(page.locator("#findings-count")).to_have_text(re.compile(r"Showing\s+5\s+of 5 findings"))

    # 2. Errors only: the count changes in place, and the address keeps the filter.
    page.evaluate("window.notReloaded = true")
    page.get_by_label("Severity").select_option("error")
    expect(page.locator("#findings-shown")).to_have_text("4")
    assert [f[4] for f in visible_findings(page)] == ["error"] * 4
    assert page.url.endswith("?severity=error")
    page.get_by_label("File", exact=True).select_option("engagements.csv")
    expect(page.locator("#findings-shown")).to_have_text("2")
    page.get_by_role("link", name="Clear filters").click()
    expect(page.locator("#findings-shown")).to_have_text("5")
    assert page.evaluate("window.notReloaded") is True, "filtering reloaded the page"

    # 3. All findings as CSV.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download all findings (CSV)").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.startswith("findings-") and saved.suffix == ".csv"
    with saved.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["file"], int(r["row"]), r["field"], r["rule"], r["severity"]) for r in rows] == expected_findings
    assert all(r["message"] and r["fix"] for r in rows)

    # 4. The rejected rows of a file, to fix and send again.
    with page.expect_download() as download:
        page.locator('tr[data-file="engagements.csv"]').get_by_role("link", name=re.compile("Download rejected rows to fix")).click()
    assert download.value.suggested_filename == "engagements-to-fix.csv"

    # 5. Fixed files: nothing rejected.
    fill_upload_form(page, provider.code, period, fixed_upload)
    send(page)
    expect(page.locator("#status-label")).to_have_text("Accepted")
    assert count(page, "rejected") == "0"
    assert count(page, "new") == "4"
    assert count(page, "unchanged") == "3"
    assert visible_findings(page) == [("clients.csv", 5, "notified_of_sharing_on", "not-notified", "warning")]

    # 6. The same files again: nothing new, everything unchanged.
    fill_upload_form(page, provider.code, period, fixed_upload)
    send(page)
    assert count(page, "new") == "0"
    assert count(page, "changed") == "0"
    assert count(page, "unchanged") == "7"
    assert count(page, "rejected") == "0"

    # 7. The list has all three, newest first.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Submissions").click()
    # expect() waits for the list page: the click returns before the navigation ends.
    expect(page.locator("#submissions tbody .badge")).to_have_text(["Accepted", "Accepted", "Partly accepted"])
    assert page_problems == []


def test_api_errors_are_shown_next_to_the_form(page: Page, page_problems: list[str], provider, period: str, faulty_upload) -> None:
    fill_upload_form(page, provider.code, period, faulty_upload)
    # A provider that has gone from the registry since the page was loaded.
    page.evaluate("document.querySelector('#provider option[value=\"P0001\"]').value = 'GONE'")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/submissions")) as answer:
        page.get_by_role("button", name="Send files").click()
    assert answer.value.status == 422
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("The files were not sent")
    expect(alert.get_by_role("link", name=re.compile("Provider: no provider 'GONE'"))).to_have_attribute("href", "#provider")
    expect(alert).to_be_focused()
    expect(page.get_by_label("Provider")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("button", name="Send files")).to_be_enabled()
    assert page.url.endswith("/submissions/new")
    # The browser logs a failed (4xx) fetch as a console error; that one was provoked.
    page_problems[:] = [p for p in page_problems if "422" not in p]
    assert page_problems == []


def test_upload_form_can_be_used_from_the_keyboard(page: Page, page_problems: list[str], provider, period: str, faulty_upload) -> None:
    page.goto("/submissions/new")
    page.get_by_label("Files", exact=True).set_input_files(faulty_upload.playwright())
    page.get_by_label("Provider").focus()
    order: list[str] = []
    for _ in range(8):
        focused = page.evaluate("document.activeElement.id")
        if not order or order[-1] != focused:  # the month input takes a Tab per part (month, year)
            order.append(focused)
        page.keyboard.press("Tab")
    assert order[:5] == ["provider", "period", "mode-partial", "files", "send"]
    page.get_by_label("Month the records are for").fill(period)
    page.get_by_role("button", name="Send files").focus()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/submissions")):
        page.keyboard.press("Enter")
    page.wait_for_url(SUBMISSION_URL)
    page.locator("#filter-severity").focus()
    page.keyboard.press("ArrowDown")  # Errors only
    expect(page.locator("#findings-shown")).to_have_text("4")
    assert page_problems == []


@pytest.mark.parametrize("path", ["/submissions/new", "/submissions", "submission"])
def test_pages_fit_a_360px_screen(page: Page, page_problems: list[str], provider, period: str, faulty_upload, path: str) -> None:
    if path == "submission":
        fill_upload_form(page, provider.code, period, faulty_upload)
        send(page)
        path = page.url
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(path)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    for region in page.locator(".table-scroll").all():
        # A wide table scrolls inside its box, which is keyboard focusable and labelled.
        assert region.get_attribute("tabindex") == "0"
        assert region.get_attribute("role") == "region"
    assert page_problems == []
