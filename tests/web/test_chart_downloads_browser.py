"""Chart downloads on a real report page in Chromium: every chart offers PNG and SVG.

Each figure on /reports/reach is followed by "Download PNG" and "Download SVG" buttons (outside
the figure's role="img", in the tab order); clicking one saves a file named after the report and
chart, made by the Vega view in the browser: a real PNG and an SVG document. Under the app's own
Content Security Policy, with no console error and no CSP violation (the `page` fixture fails the
test on either).
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest
from playwright.sync_api import Page, expect


pytestmark = pytest.mark.browser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG_ROOT = "{http://www.w3.org/2000/svg}svg"
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.cspViolations.push(event.violatedDirective + ' ' + event.blockedURI);
});
"""


def test_every_chart_on_a_report_downloads_as_png_and_svg(page: Page, page_problems: list[str], sign_in_browser, analyst,
                                                          stored_rollout) -> None:
    sign_in_browser(page, analyst)
    page.add_init_script(RECORD_VIOLATIONS)
    page.goto("/reports/reach")
    page.wait_for_function("""() => [...document.querySelectorAll('figure.chart')]
        .every((figure) => ['rendered', 'failed'].includes(figure.dataset.chartState))""")
    figures = page.eval_on_selector_all("figure.chart", "(figures) => figures.map((f) => [f.id, f.dataset.chartState])")
    assert figures and all(state == "rendered" for _, state in figures), figures

    for figure_id, _ in figures:
        key = figure_id.removeprefix("chart-")
        # The buttons follow the figure, outside its role="img" (which hides what is inside it).
        bar = page.locator(f"#{figure_id} + .chart-downloads")
        expect(bar.get_by_role("button", name="Download PNG")).to_be_visible()
        assert page.eval_on_selector(f"#{figure_id}-downloads", "(bar) => bar.closest('[role=img]') === null")

        with page.expect_download() as png:
            bar.get_by_role("button", name="Download PNG").click()
        assert png.value.suggested_filename == f"reach-{key}.png"
        assert Path(png.value.path()).read_bytes().startswith(PNG_SIGNATURE)

        with page.expect_download() as svg:
            bar.get_by_role("button", name="Download SVG").click()
        assert svg.value.suggested_filename == f"reach-{key}.svg"
        root = ElementTree.fromstring(Path(svg.value.path()).read_bytes())
        assert root.tag == SVG_ROOT
        # The chart itself, not an empty frame: its marks are in the file.
        assert any(element.get("class", "").startswith("mark-") for element in root.iter()), figure_id

    assert page.evaluate("window.cspViolations") == []
    assert page_problems == []


def test_the_chart_and_its_table_sit_side_by_side_on_a_wide_screen(page: Page, page_problems: list[str], sign_in_browser,
                                                                    analyst, stored_rollout) -> None:
    sign_in_browser(page, analyst)
    page.goto("/reports/reach")
    expect(page.locator("#chart-people")).to_have_attribute("data-chart-state", "rendered")

    def boxes() -> tuple[dict, dict]:
        chart = page.locator("#chart-people").bounding_box()
        table = page.locator("#section-people .table-scroll").bounding_box()
        assert chart and table
        return chart, table

    chart, table = boxes()  # 1280 px: two columns, the table to the right of the chart
    assert table["x"] >= chart["x"] + chart["width"] and abs(table["y"] - chart["y"]) < 40, (chart, table)
    page.set_viewport_size({"width": 800, "height": 900})  # narrower: the table under the chart
    chart, table = boxes()
    assert table["y"] >= chart["y"] + chart["height"] and abs(table["x"] - chart["x"]) < 2, (chart, table)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page_problems == []
