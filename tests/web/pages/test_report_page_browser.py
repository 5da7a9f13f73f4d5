"""A report page in Chromium: the chart is drawn from released values, and changing a breakdown
changes the chart and the table together; no console error, no CSP violation."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from cldx.generator.generate import generate
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit
from cldx.store import transaction
from cldx.store.registry import seed_service_lines

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def rollout(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report-page-rollout")
    generate(clients=400, seed=9, fault_rate=0, out=out)
    return out


@pytest.fixture
def stored(web_app, rollout) -> None:
    engine = web_app.state.engine
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, rollout / "registry")
    folders = sorted((p for p in rollout.iterdir() if p.is_dir() and p.name != "registry"),
                     key=lambda p: -len((p / "clients.csv").read_bytes()))[:8]
    for folder in folders:
        submit(engine, provider=folder.name, files=[SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))],
               submitter="test", channel="test")


def test_an_analyst_changes_a_breakdown_and_chart_and_table_follow(page: Page, page_problems: list[str], sign_in_browser,
                                                                     analyst, stored):
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
