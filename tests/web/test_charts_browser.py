"""Charts in real headless Chromium, under cldx's own Content Security Policy.

A small app serves the package's `/static` files through `SecurityHeadersMiddleware` (as
`cldx.web.app` does) and pages holding one figure of each kind `cldx.web.charts` builds. Each
figure must get an SVG with marks, a suppressed (None) value must draw no mark, a label holding
"</script>" must stay data, and the page must log no console error and no CSP violation: Vega
runs with `ast: true` and vega-embed's bundled expression interpreter, never eval. Controls show
the checks can fail: the same vendored scripts without `ast` are refused eval, and an inline
script is refused while a JSON data block is not (it is never executed).

The `page` fixture (tests/web/conftest.py) fails a test on any console error, page error or
request to another host, and leaves a screenshot in test-artifacts/ when a test fails.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from importlib import resources
from pathlib import Path
from xml.etree import ElementTree

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from playwright.sync_api import expect

from cldx.web.charts import bar_chart, funnel_chart, interval_chart, line_chart, spec_json
from cldx.web.security import SecurityHeadersMiddleware

STATIC = resources.files("cldx.web") / "static"
VENDOR_SCRIPTS = ["vendor/vega-6.4.0.min.js", "vendor/vega-lite-6.5.0.min.js", "vendor/vega-embed-7.3.0.min.js"]
# Every vendored script whose checksum vendor/README.md records (axe-core: tests only, see tests/web/axe.py).
CHECKSUMMED_SCRIPTS = [*VENDOR_SCRIPTS, "vendor/htmx-2.0.11.min.js", "vendor/axe-core-4.14.1.min.js"]
BREAKOUT = "Kōwhai </script><script>window.brokeOut = true</script><!--"

# Records every CSP violation the page reports (init scripts are not subject to the page's policy).
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.cspViolations.push(event.violatedDirective + ' ' + event.blockedURI + ' ' + (event.sample || ''));
});
"""


# --- The charts on the page --------------------------------------------------------------------


def bar_spec() -> dict:
    rows = [
        {"provider": "Aroha Trust", "clients": 42},
        {"provider": BREAKOUT, "clients": 17},
        {"provider": "Suppressed Trust", "clients": None},
        {"provider": "Tui Services", "clients": 8},
    ]
    return bar_chart(rows, x="provider", y="clients", title="Clients by provider", description="Bar chart of clients by provider",
                     x_title="Provider", y_title="Clients")


def grouped_bar_spec() -> dict:
    rows = [{"area": area, "gender": gender, "clients": n}
            for area, gender, n in [("North", "Female", 12), ("North", "Male", 9), ("South", "Female", None), ("South", "Male", 4)]]
    return bar_chart(rows, x="area", y="clients", color="gender", title="Clients by area and gender",
                     description="Grouped bar chart of clients by area and gender")


def line_spec() -> dict:
    rows = [{"month": f"2017-{m:02d}", "referrals": n} for m, n in zip(range(3, 9), [5, 7, None, 9, 12, 11])]
    return line_chart(rows, x="month", y="referrals", title="Referrals by month", description="Line chart of referrals by month",
                      x_title="Month", y_title="Referrals")


def interval_spec() -> dict:
    rows = [
        {"provider": "Aroha Trust", "rate": 0.42, "low": 0.35, "high": 0.5},
        {"provider": "Suppressed Trust", "rate": None, "low": None, "high": None},
        {"provider": "Tui Services", "rate": 0.3, "low": 0.21, "high": 0.41},
        {"provider": "Kea Care", "rate": 0.55, "low": 0.4, "high": 0.69},
    ]
    return interval_chart(rows, category="provider", value="rate", low="low", high="high", reference=0.4,
                          title="Completion rate", description="Completion rate by provider with 95% intervals")


def funnel_spec() -> dict:
    points = [
        {"provider": "A", "clients": 20, "rate": 0.45, "flag": "within"},
        {"provider": "B", "clients": 60, "rate": 0.62, "flag": "above 95%"},
        {"provider": "C", "clients": 150, "rate": 0.25, "flag": "below 99.8%"},
        {"provider": "D", "clients": 90, "rate": None, "flag": None},
        {"provider": "E", "clients": 200, "rate": 0.41, "flag": "within"},
    ]
    limits = [{"clients": n, "target": 0.4, "low95": 0.4 - 1.96 * (0.24 / n) ** 0.5, "high95": 0.4 + 1.96 * (0.24 / n) ** 0.5,
               "low998": max(0.0, 0.4 - 3.09 * (0.24 / n) ** 0.5), "high998": 0.4 + 3.09 * (0.24 / n) ** 0.5}
              for n in range(10, 210, 10)]
    return funnel_chart(points, limits, x="clients", y="rate", label="provider", title="Completion rate against size",
                        description="Funnel plot of completion rate against number of clients")


SPECS = {"bar": bar_spec, "grouped": grouped_bar_spec, "line": line_spec, "interval": interval_spec, "funnel": funnel_spec}


def inline_figure(name: str, spec: dict | str, caption: str = "") -> str:
    body = spec if isinstance(spec, str) else spec_json(spec)
    caption = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure class="chart" id="{name}"><script type="application/json" class="chart-spec">{body}</script>{caption}</figure>'


def page_html(body: str, *, scripts: list[str] | None = None, extra_head: str = "") -> str:
    scripts = [*VENDOR_SCRIPTS, "charts.js"] if scripts is None else scripts
    urls = [src if src.startswith("/") else f"/static/{src}" for src in ["vendor/htmx-2.0.11.min.js", *scripts]]
    tags = "\n".join(f'<script src="{url}" defer></script>' for url in urls)
    return f"""<!doctype html>
<html lang="en-NZ">
<head>
<meta charset="utf-8">
<meta name="htmx-config" content='{{"includeIndicatorStyles":false}}'>
<title>Charts</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/cldx.css">
<link rel="stylesheet" href="/static/vendor/vega-embed.css">
{tags}
{extra_head}
</head>
<body><main class="wrap">{body}</main></body>
</html>"""


def chart_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(SecurityHeadersMiddleware)
    app.mount("/static", StaticFiles(packages=[("cldx.web", "static")]), name="static")

    @app.get("/charts")
    def charts() -> HTMLResponse:
        figures = "".join(inline_figure(name, make()) for name, make in SPECS.items())
        figures += '<figure class="chart" id="from-url" data-spec-url="/specs/bar.json"></figure>'
        figures += inline_figure("captioned", line_spec(), caption="Referrals (chart)")
        figures += '<div id="swapped"></div><button type="button" hx-get="/fragment" hx-target="#swapped">More</button>'
        return HTMLResponse(page_html(figures))

    @app.get("/specs/{name}.json")
    def spec(name: str) -> Response:
        if name not in SPECS:
            return JSONResponse({"detail": "no such chart"}, status_code=404)
        return Response(spec_json(SPECS[name]()), media_type="application/json")

    @app.get("/fragment")
    def fragment() -> HTMLResponse:
        return HTMLResponse(inline_figure("htmx-line", line_spec()))

    @app.get("/broken")
    def broken() -> HTMLResponse:
        figures = inline_figure("bad-json", '{"mark": "bar", ')
        figures += inline_figure("bad-spec", {"description": "Nonsense", "mark": {"type": "nonsense"},
                                              "encoding": {"x": {"field": "a", "type": "quantitative"}}, "data": {"values": [{"a": 1}]}})
        figures += '<figure class="chart" id="missing" data-spec-url="/specs/nothing.json"></figure>'
        return HTMLResponse(page_html(figures))

    @app.get("/controls")
    def controls() -> HTMLResponse:
        # The same vendored scripts, drawn without `ast`, and an inline script beside a data block.
        figures = f'<div id="no-ast"></div><script type="application/json" id="no-ast-spec">{spec_json(bar_spec())}</script>'
        figures += "<script>window.inlineRan = true</script>"
        return HTMLResponse(page_html(figures, scripts=[*VENDOR_SCRIPTS, "/test-controls.js"]))

    @app.get("/test-controls.js")
    def control_script() -> Response:
        script = """
document.addEventListener('DOMContentLoaded', () => {
  const spec = JSON.parse(document.getElementById('no-ast-spec').textContent);
  window.noAst = vegaEmbed(document.getElementById('no-ast'), spec, {renderer: 'svg', defaultStyle: false, actions: false})
    .then(() => 'rendered', (error) => 'failed: ' + error);
});
"""
        return Response(script, media_type="text/javascript")

    return app


@pytest.fixture
def web_app() -> FastAPI:
    """The charts app, in place of cldx's (the `live_server` fixture serves this one)."""
    return chart_app()


def open_page(page, path: str) -> list[str]:
    """Go to `path`, recording CSP violations; returns the console warnings as they come."""
    warnings: list[str] = []
    page.on("console", lambda message: warnings.append(message.text) if message.type == "warning" else None)
    page.add_init_script(RECORD_VIOLATIONS)
    page.goto(path)
    return warnings


def wait_until_settled(page) -> None:
    page.wait_for_function("""() => [...document.querySelectorAll('figure.chart')]
        .every((figure) => ['rendered', 'failed'].includes(figure.dataset.chartState))""")


def count(page, selector: str) -> int:
    return page.locator(selector).count()


def mark_count(page, figure: str, mark: str, element: str = "path") -> int:
    """Data marks only (role-mark), not axis ticks or legend symbols."""
    return count(page, f"#{figure} svg g.mark-{mark}.role-mark {element}")


# --- The tests ---------------------------------------------------------------------------------


@pytest.mark.browser
def test_every_chart_kind_draws_under_the_policy(page, page_problems: list[str]) -> None:
    warnings = open_page(page, "/charts")
    wait_until_settled(page)
    states = page.eval_on_selector_all("figure.chart", "(figures) => figures.map((f) => [f.id, f.dataset.chartState])")
    assert all(state == "rendered" for _, state in states), states

    # Bars: four providers, one suppressed: three bars, yet four labels on the axis.
    assert mark_count(page, "bar", "rect") == 3
    labels = page.eval_on_selector_all("#bar svg .role-axis-label text", "(texts) => texts.map((t) => t.textContent)")
    assert "Suppressed Trust" in labels
    # The "</script>" label stayed data: drawn as text, nothing ran, the figure is whole.
    assert any("</script>" in label for label in labels), labels
    assert page.evaluate("window.brokeOut === undefined")
    assert page.eval_on_selector("#bar .chart-spec", "(block) => JSON.parse(block.textContent).data.values[1].provider") == BREAKOUT
    # Grouped bars: one of four suppressed.
    assert mark_count(page, "grouped", "rect") == 3
    assert count(page, "#grouped svg .role-legend-symbol path") == 2
    # Line: six months, one suppressed: five points, and the line breaks there (two segments).
    assert mark_count(page, "line", "symbol") == 5
    line_path = page.get_attribute("#line svg g.mark-line.role-mark path", "d")
    assert line_path is not None and line_path.count("M") == 2, line_path
    # Interval: four providers, one suppressed: three points, three intervals, one reference rule.
    assert mark_count(page, "interval", "symbol") == 3
    assert mark_count(page, "interval", "rule", "line") == 4
    # Funnel: five units, one suppressed; four limit lines and the target.
    assert mark_count(page, "funnel", "symbol") == 4
    assert mark_count(page, "funnel", "line") == 4
    assert mark_count(page, "funnel", "rule", "line") == 1
    # From a URL, like the inline one.
    assert mark_count(page, "from-url", "rect") == 3

    # Named for assistive technology; downloads offered as PNG and SVG, as buttons after the figure
    # (outside role="img", which would hide them from assistive technology); vega-embed's own off.
    assert page.get_attribute("#line", "role") == "img"
    assert page.get_attribute("#line", "aria-label") == "Line chart of referrals by month"
    # A captioned figure keeps its caption as its name (no role is allowed on it); its canvas is the image.
    assert page.get_attribute("#captioned", "role") is None
    assert page.get_attribute("#captioned > .chart-canvas", "role") == "img"
    assert page.get_attribute("#captioned > .chart-canvas", "aria-label") == "Line chart of referrals by month"
    expect(page.get_by_role("figure", name="Referrals (chart)")).to_be_visible()
    assert count(page, "figure.chart .vega-actions, figure.chart button, figure.chart a") == 0
    for figure in [*SPECS, "from-url", "captioned"]:
        buttons = page.locator(f"#{figure} + .chart-downloads").get_by_role("button")
        shown = buttons.evaluate_all("(buttons) => buttons.map((b) => b.firstChild.nodeValue)")  # the visible label
        assert shown == ["Download PNG", "Download SVG"], figure
    title = SPECS["line"]()["title"]
    expect(page.locator("#line-downloads").get_by_role("button", name=f"Download SVG ({title})", exact=True)).to_be_visible()
    # width "container": the chart fills the figure's width.
    figure_width = page.eval_on_selector("#bar", "(f) => f.getBoundingClientRect().width")
    svg_width = page.eval_on_selector("#bar svg", "(svg) => svg.getBoundingClientRect().width")
    assert svg_width > 0.9 * figure_width, (svg_width, figure_width)
    # No <style> injected (vega-embed's and vega-tooltip's are off; vega-embed.css stands in).
    assert page.evaluate("document.querySelectorAll('style').length") == 0

    # Downloads work under the policy (a data: URL for PNG, through a canvas; a blob: URL for SVG),
    # from the keyboard as well: the buttons are in the tab order. Named from the spec's title.
    downloads = page.locator("#line-downloads")
    downloads.get_by_role("button", name="Download PNG").focus()
    with page.expect_download() as png:
        page.keyboard.press("Enter")
    assert png.value.suggested_filename == "referrals-by-month.png"
    assert Path(png.value.path()).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.format") == "svg"
    with page.expect_download() as svg:
        page.keyboard.press("Enter")
    assert svg.value.suggested_filename == "referrals-by-month.svg"
    assert ElementTree.fromstring(Path(svg.value.path()).read_bytes()).tag == "{http://www.w3.org/2000/svg}svg"
    # The "</script>" label is escaped in the SVG, which still parses.
    with page.expect_download() as bar_svg:
        page.locator("#bar-downloads").get_by_role("button", name="Download SVG").click()
    bar_text = Path(bar_svg.value.path()).read_text(encoding="utf-8")
    assert "&lt;/script&gt;" in bar_text and "<script" not in bar_text
    ElementTree.fromstring(bar_text)

    # A tooltip appears on hover, styled by the served stylesheet.
    page.hover("#bar svg g.mark-rect.role-mark path >> nth=0")
    tooltip = page.locator("#vg-tooltip-element")
    tooltip.wait_for(state="visible")
    assert "Aroha Trust" in tooltip.inner_text()

    # htmx swaps in a new figure: it is drawn too, and htmx did not run its data block.
    with page.expect_response(lambda response: response.url.endswith("/fragment")):
        page.get_by_role("button", name="More").click()
    expect(page.locator("#htmx-line")).to_have_attribute("data-chart-state", "rendered")
    assert mark_count(page, "htmx-line", "symbol") == 5

    assert page.evaluate("window.cspViolations") == []
    assert warnings == []  # Vega-Lite warns of specs it had to change
    assert page_problems == []


@pytest.mark.browser
def test_a_chart_that_cannot_be_drawn_says_so(page, page_problems: list[str]) -> None:
    open_page(page, "/broken")
    wait_until_settled(page)
    for figure in ["bad-json", "bad-spec", "missing"]:
        assert page.get_attribute(f"#{figure}", "data-chart-state") == "failed", figure
        assert page.inner_text(f"#{figure} .chart-error") == "This chart could not be drawn."
        assert page.get_attribute(f"#{figure}", "role") is None
    assert page.evaluate("window.cspViolations") == []
    # Each failure is logged for developers (and the missing spec's 404 by the browser): expected.
    expected = [problem for problem in page_problems if "cldx chart:" in problem or "404" in problem]
    assert len([problem for problem in expected if "cldx chart:" in problem]) == 3, page_problems
    assert [problem for problem in page_problems if problem not in expected] == []
    page_problems.clear()


@pytest.mark.browser
def test_the_checks_catch_eval_and_inline_script(page, page_problems: list[str]) -> None:
    """Controls: without `ast` Vega compiles expressions with Function(), which the policy
    refuses; an inline script is refused and reported, while the JSON data block beside it is not."""
    open_page(page, "/controls")
    page.wait_for_function("() => window.noAst !== undefined")
    outcome = page.evaluate("window.noAst")
    assert outcome.startswith("failed"), outcome
    assert page.evaluate("window.inlineRan === undefined")
    violations = page.evaluate("window.cspViolations")
    assert any(v.startswith("script-src") and "eval" in v for v in violations), violations
    assert any(v.startswith("script-src") and "inline" in v for v in violations), violations
    assert len(violations) == 2, violations  # nothing about the data block
    assert any("Content Security Policy" in problem for problem in page_problems), page_problems
    page_problems.clear()  # provoked on purpose


# --- Without a browser: the JSON and the vendored files ----------------------------------------


def test_spec_json_cannot_end_its_script_block() -> None:
    spec = bar_spec()
    text = spec_json(spec)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == json.loads(json.dumps(spec))
    # An HTML parser sees the whole block as one script element.
    page = inline_figure("bar", spec)
    assert page.count("</script>") == 1 and page.endswith("</script></figure>")
    assert html.unescape(text) == text


def test_suppressed_values_are_left_out_of_every_mark() -> None:
    bar = bar_spec()
    assert bar["transform"] == [{"filter": 'isValid(datum["clients"])'}]
    assert bar["encoding"]["x"]["scale"]["domain"][2] == "Suppressed Trust"  # the category keeps its slot
    assert line_spec()["mark"]["invalid"] == "break-paths-filter-domains"
    for layer in interval_spec()["layer"][:2]:
        assert all(step["filter"].startswith("isValid(") for step in layer["transform"])
    funnel = funnel_spec()
    assert funnel["layer"][-1]["transform"] == [{"filter": 'isValid(datum["clients"])'}, {"filter": 'isValid(datum["rate"])'}]
    assert funnel["layer"][1]["encoding"]["y"]["field"] == "reference_value"  # target from the limits rows
    for spec in (bar, line_spec(), interval_spec(), funnel):
        assert spec["$schema"] == "https://vega.github.io/schema/vega-lite/v6.json"
        assert spec["width"] == "container" and spec["description"]


def test_vendored_scripts_match_the_readme() -> None:
    readme = (STATIC / "vendor" / "README.md").read_text(encoding="utf-8")
    for name in CHECKSUMMED_SCRIPTS:
        digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()
        file_name = Path(name).name
        assert re.search(rf"`{re.escape(file_name)}`.*`{digest}`", readme, re.DOTALL), f"{file_name}: {digest} not in README"
