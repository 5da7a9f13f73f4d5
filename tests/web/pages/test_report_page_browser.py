"""A report page in Chromium: the chart is drawn from released values, and changing a breakdown
changes the chart and the table together; no console error, no CSP violation."""

from __future__ import annotations


import pytest
from playwright.sync_api import Page, expect


pytestmark = pytest.mark.browser


def test_an_analyst_changes_a_breakdown_and_chart_and_table_follow(page: Page, page_problems: list[str], sign_in_browser,
                                                                     analyst, stored_rollout):
    sign_in_browser(page, analyst)
    page.goto("/reports/reach")
    chart = page.locator("#chart-people")
    expect(chart.locator("svg .mark-rect path").first).to_be_attached()
    labels_by_service = set(chart.locator("svg .role-axis-label text").all_text_contents())
    header = page.locator("#table-people thead th").first
    expect(header).to_have_text("service")

    page.select_option("#by-0", "age_band")
    page.click("#report-form button[type=submit]")
    expect(page.locator("#table-people thead th").first).to_have_text("age band")
    expect(chart.locator("svg .mark-rect path").first).to_be_attached()
    labels_by_age = set(chart.locator("svg .role-axis-label text").all_text_contents())
    assert "30-39" in labels_by_age and not labels_by_age & {"30-39"} & labels_by_service
    # Every bar is a released value: the table holds the same numbers (suppressed ones drawn as nothing).
    released = [c for c in page.locator("#table-people tbody td").all_inner_texts() if c != "S"]
    assert released and all(int(c) % 3 == 0 for c in released)
    assert page_problems == []
