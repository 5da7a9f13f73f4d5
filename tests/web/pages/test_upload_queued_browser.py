"""A large upload in real headless Chromium: queued for the worker, its progress shown, ending on
the submission page with the receipt.

Here every upload is "large": `queue_threshold_bytes` is 1, so the API answers 202 and the
app's embedded worker thread does the work.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, Route, expect

from cldx.ingest.queue import work_once

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def signed_in(page: Page, provider_user, sign_in_browser) -> None:
    """The seeded provider's submitter."""
    sign_in_browser(page, provider_user)

SUBMISSION_URL = re.compile(r"/submissions/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RECEIPT_API = re.compile(r"/api/v1/submissions/[0-9a-f-]{36}$")


def fill_upload_form(page: Page, provider_code: str, period: str, upload) -> None:
    page.goto("/submissions/new")
    page.get_by_label("Provider").select_option(provider_code)
    page.get_by_label("Month the records are for").fill(period)
    page.get_by_label("Files", exact=True).set_input_files(upload.playwright())


@pytest.mark.parametrize("web_settings", [{"queue_threshold_bytes": 1}], indirect=True, ids=["queued"])
def test_large_upload_shows_progress_and_ends_on_the_receipt(
    page: Page, page_problems: list[str], provider, period: str, faulty_upload
) -> None:
    # Hold the first poll of the receipt until the test has seen the queued state; the worker
    # may finish at any moment after that.
    held: list[Route] = []
    released = False

    def hold(route: Route) -> None:
        if released:
            route.continue_()
        else:
            held.append(route)

    page.route(RECEIPT_API, hold)
    fill_upload_form(page, provider.code, period, faulty_upload)
    with page.expect_response(lambda r: r.url.endswith("/api/v1/submissions") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Send files").click()
    assert answer.value.status == 202
    assert answer.value.json()["status"] == "queued"

    upload_bar = page.locator("#upload-progress")
    expect(upload_bar).to_be_visible()
    assert upload_bar.evaluate("bar => bar.value === bar.max && bar.max >= %d" % faulty_upload.size)  # every byte sent
    expect(page.locator("#worker-progress")).to_be_visible()
    # The worker may take the job between the enqueue and the 202's receipt: either state is progress.
    expect(page.locator("#upload-message")).to_contain_text(re.compile(r"Queued: waiting for a worker|Processing: validating and storing"))
    expect(page.get_by_role("link", name="Open the submission page")).to_have_attribute("href", SUBMISSION_URL)
    expect(page.get_by_role("button", name="Send files")).to_be_disabled()
    for _ in range(200):  # upload.js polls a second after the 202; wait (up to 10 s on a busy machine) until that poll is held
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "upload.js did not poll the receipt"

    released = True
    for route in held:
        route.continue_()
    page.wait_for_url(SUBMISSION_URL, timeout=60_000)  # the worker's pace, on a busy machine
    expect(page.locator("#status-label")).to_have_text("Partly accepted")
    assert page.locator('[data-count="rejected"]').inner_text() == "4"
    assert page.locator("#findings tbody tr").count() == 5
    assert page_problems == []


@pytest.mark.parametrize("web_settings", [{"queue_threshold_bytes": 1, "embedded_worker": False}], indirect=True, ids=["no-worker"])
def test_submission_page_follows_the_worker_and_shows_the_result(
    page: Page, page_problems: list[str], provider, period: str, faulty_upload, web_engine
) -> None:
    fill_upload_form(page, provider.code, period, faulty_upload)
    with page.expect_response(lambda r: r.url.endswith("/api/v1/submissions") and r.request.method == "POST"):
        page.get_by_role("button", name="Send files").click()
    page.get_by_role("link", name="Open the submission page").click()
    page.wait_for_url(SUBMISSION_URL)
    expect(page.locator("#status-label")).to_have_text("Queued")
    expect(page.locator("#job-progress")).to_be_visible()
    expect(page.locator("#job-step")).to_have_text("waiting for a worker")
    page.evaluate("window.beforeWorker = true")

    assert work_once(web_engine)  # the worker this app does not run
    expect(page.locator("#status-label")).to_have_text("Partly accepted", timeout=30_000)
    assert page.evaluate("window.beforeWorker") is None, "the page should have reloaded to show the result"
    assert page.locator('[data-count="new"]').inner_text() == "3"
    assert page_problems == []
