"""The home page in real headless Chromium: counts shown, htmx Refresh swaps in new counts, and
the page keeps to its Content Security Policy (the `page` fixture fails on any console error)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def signed_in(page: Page, analyst, sign_in_browser) -> None:
    """An analyst (code given): the whole store's counts."""
    sign_in_browser(page, analyst)


def test_refresh_shows_new_counts_without_reloading(page: Page, page_problems: list[str], add_provider) -> None:
    page.goto("/")
    providers = page.locator('#summary [data-count="providers"]')
    expect(providers).to_have_text("0")
    expect(page.locator('#summary [data-count="client"]')).to_have_text("0")
    assert page.evaluate("typeof window.htmx") == "object", "htmx did not load"
    # htmx was told not to inject its indicator <style>; an injected one would break the CSP.
    assert page.evaluate("document.querySelectorAll('style').length") == 0

    add_provider("P0001")
    page.evaluate("window.notReloaded = true")
    with page.expect_response(lambda response: response.url.endswith("/fragments/summary")) as fragment:
        page.get_by_role("button", name="Refresh").click()
    assert fragment.value.status == 200
    expect(providers).to_have_text("1")
    assert page.evaluate("window.notReloaded") is True, "the page reloaded instead of swapping the fragment"
    assert page_problems == []


def test_home_page_fits_a_360px_screen(page: Page, page_problems: list[str]) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto("/")
    expect(page.get_by_role("button", name="Refresh")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert page_problems == []


def test_browser_enforces_the_content_security_policy(page: Page, page_problems: list[str]) -> None:
    """The policy really reaches the browser, and a violation shows up as a problem."""
    page.goto("/")
    page.evaluate(
        """() => {
            const script = document.createElement('script');
            script.textContent = 'window.inlineRan = true';
            document.head.appendChild(script);
        }"""
    )
    assert page.evaluate("window.inlineRan === undefined")
    violations = [problem for problem in page_problems if "Content Security Policy" in problem]
    assert violations, page_problems
    page_problems.clear()  # provoked on purpose
