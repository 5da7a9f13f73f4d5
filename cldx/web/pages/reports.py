"""Report pages: the list of reports, and each report as a form, charts and tables with downloads.

A report page runs the same `run_report` as the CLI and the API (`cldx.web.reports`), shows each
section's released table as HTML with its chart beside it (a Vega-Lite spec drawn by
`static/charts.js` from a JSON data block: no inline script), and links the CSV, Excel and JSON
downloads (the API's, so a download is audited in one place). Analysts see the ministry's
controlled view; a provider's staff their own.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse

from cldx.analysis.reports import REPORTS, Report, Section
from cldx.disclosure import ReleasedTable
from cldx.web.charts import bar_chart, funnel_chart, interval_chart, line_chart, spec_json
from cldx.web.reports import audience_for, report_for
from cldx.web.templating import render

router = APIRouter()

# How a breakdown reads in the form (the rest: its name with spaces).
BREAKDOWN_LABELS = {"maori": "Māori and non-Māori", "ta": "territorial authority", "iwi": "iwi"}

# What each report answers, in a line, for the list page.
ABOUT: dict[str, str] = {
    "reach": "How many people and engagements, by service, area, ethnicity, iwi, age, gender or provider.",
    "outcomes": "What changed for clients: assessment change and who is better off.",
    "providers": "Providers compared with their service line, adjusted for case mix, with funnel plots.",
    "cohorts": "Outcomes compared between groups of clients, with effect sizes.",
    "coverage": "How much of CIS spend and how many providers send client-level data, against the targets.",
    "compliance": "Per contract: data on time, complete, paired assessments, errors and notification.",
    "practice": "A publishable summary of what changed for clients, per service line.",
}


@router.get("/reports", response_class=HTMLResponse, name="reports")
def reports_index(request: Request) -> HTMLResponse:
    audience = audience_for(request)
    reports = [(m.NAME, m.TITLE, ABOUT.get(m.NAME, "")) for m in REPORTS.values()]
    return render(request, "reports.html", {"reports": reports, "audience": audience})


@router.get("/reports/{name}", response_class=HTMLResponse, name="report")
async def report_page(
    request: Request,
    name: Annotated[str, Path(max_length=40, pattern=r"^[a-z_]+$")],
    period_from: Annotated[str | None, Query(max_length=10)] = None,
    period_to: Annotated[str | None, Query(max_length=10)] = None,
    by: Annotated[list[str] | None, Query(max_length=8)] = None,
) -> HTMLResponse:
    if name not in REPORTS:
        raise HTTPException(404, detail=f"There is no report {name!r}.")
    period = None
    if period_from or period_to:
        period = f"{period_from or ''}:{period_to or ''}"
    chosen = [b for b in (by or []) if b]
    error = None
    try:
        report = await report_for(request, name, period=period, by=",".join(chosen) or None)
    except HTTPException as exc:
        if exc.status_code != 422:
            raise
        # A bad period or breakdown: show the form again with what was wrong, and the defaults.
        error = str(exc.detail)
        report = await report_for(request, name, period=None, by=None)
    query = urlencode({k: v for k, v in (("period", period), ("by", ",".join(report.by))) if v})
    api = f"/api/v1/reports/{name}" + (f"?{query}" if query else "")
    join = "&" if query else "?"
    return render(request, "report.html", {
        "report": report,
        "charts": True,
        "sections": [section_view(s) for s in report.sections],
        "error": error,
        "dimensions": [(d, BREAKDOWN_LABELS.get(d, d.replace("_", " "))) for d in REPORTS[name].ALLOWED_BY],
        "max_by": REPORTS[name].MAX_BY,
        "chosen": report.by,
        "period_from": period_from or "",
        "period_to": period_to or "",
        "downloads": [("CSV", f"{api}{join}format=csv"), ("Excel", f"{api}{join}format=xlsx"), ("JSON", api)],
    }, status_code=422 if error else 200)


# --- From a released table to what the page shows ----------------------------------------------------------


def section_view(section: Section) -> dict[str, Any]:
    rows = section.table.to_csv_rows()  # type: ignore[attr-defined]
    cut = rows.index([]) if [] in rows else len(rows)
    table = section.table
    return {
        "key": section.key,
        "title": section.title,
        "note": section.note,
        "header": rows[0],
        "rows": rows[1:cut],
        "rules": list(table.rules),  # type: ignore[attr-defined]
        "rules_version": table.rules_version,  # type: ignore[attr-defined]
        "chart": _chart_spec(section),
    }


def chart_rows(section: Section) -> list[dict[str, Any]]:
    """The released values of a section as flat rows (suppressed values left out: nothing to draw)."""
    doc = section.table.to_json()  # type: ignore[attr-defined]
    rows: list[dict[str, Any]] = []
    if isinstance(section.table, ReleasedTable):
        for v in doc["values"]:
            if v["kind"] == "cell" and not v["suppressed"]:
                rows.append({**v["at"], "value": v["value"]})
        return rows
    for row in doc["rows"]:
        flat: dict[str, Any] = dict(row["at"])
        for name, value in row["values"].items():
            if isinstance(value, dict):
                if value.get("suppressed"):
                    continue
                flat[name] = value.get("value")
                if value.get("low") is not None:
                    flat[f"{name}_low"] = value["low"]
                if value.get("high") is not None:
                    flat[f"{name}_high"] = value["high"]
            else:
                flat[name] = value
        rows.append(flat)
    return rows


def _chart_spec(section: Section) -> str | None:
    chart = section.chart
    if chart is None:
        return None
    rows = [r for r in chart_rows(section) if r.get(chart.y) is not None]
    description = chart.description or section.title
    if chart.kind == "bar":
        spec = bar_chart(rows, x=chart.x, y=chart.y, color=chart.color, title=section.title, description=description)
    elif chart.kind == "line":
        spec = line_chart(rows, x=chart.x, y=chart.y, color=chart.color, title=section.title, description=description)
    elif chart.kind == "interval":
        spec = interval_chart(rows, category=chart.x, value=chart.y, low=chart.low or f"{chart.y}_low",
                              high=chart.high or f"{chart.y}_high", title=section.title, description=description,
                              reference=chart.reference)
    elif chart.kind == "funnel":
        # The limits travel with each point (released at the point's released size), so the
        # same rows give the points and, sorted by size, the funnel's lines.
        limits = sorted((r for r in rows if r.get("low998") is not None), key=lambda r: r[chart.x])
        spec = funnel_chart(rows, limits, x=chart.x, y=chart.y, title=section.title, description=description,
                            target=chart.reference, label=rows and next(iter(rows[0])) or None)
    else:
        return None
    return spec_json(spec)
