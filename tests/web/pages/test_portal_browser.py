"""The provider portal home page in headless Chromium, as a provider's submitter: every section
shows, the benchmark chart is drawn, and the page fits 1280 and 360 px wide with no serious or
critical axe-core finding, console error or Content Security Policy violation (the `page` fixture
fails on the last two)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from cldx.access.roles import PROVIDER_SUBMITTER

from ..axe import axe_violations
from .conftest import FAULTY
from .test_portal import JULY, OWN, files, nz, registry_files, send

pytestmark = pytest.mark.browser


@pytest.fixture
def submitter(web_app, make_user, tmp_path):
    """The portal test's case on the app's own database, and a submitter of its provider."""
    engine = web_app.state.engine
    registry_files(engine, tmp_path)
    send(engine, OWN, "2017-07", nz(2017, 8, 18, 10, 0), JULY)
    send(engine, OWN, "2017-08", nz(2017, 9, 21, 0, 30), files(FAULTY))
    return make_user("tiaki.submitter", (PROVIDER_SUBMITTER, OWN))


def test_the_portal_at_1280_and_360_px(page: Page, page_problems: list[str], sign_in_browser, submitter) -> None:
    sign_in_browser(page, submitter)
    for width in (1280, 360):
        page.set_viewport_size({"width": width, "height": 800})
        page.goto("/")
        for heading in ("What is due", "Data quality", "Findings to fix", "Latest submissions",
                        "Your results beside your service line", "Templates", "Records held"):
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        chart = page.locator("#chart-benchmark")
        expect(chart).to_have_attribute("data-chart-state", "rendered")
        expect(chart.locator("svg").first).to_be_attached()
        expect(page.locator("#quality-score")).to_have_text("47")
        expect(page.get_by_role("link", name="Send records").first).to_be_visible()
        # Wide tables scroll inside their own box; the page itself never scrolls sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= width, width
        assert axe_violations(page) == [], width
    assert page_problems == []
