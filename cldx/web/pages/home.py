"""The home page, which depends on the role, with an htmx Refresh that reloads just the counts.

A provider's staff get their organisation's portal: what is due and when, its latest
submissions, a data-quality score, findings still to fix, the templates, and its own results
beside its service line's benchmark (the `providers` report, as `cldx.disclosure` released it),
above its own counts. The provider's own figures come from `cldx.web.portal`. An analyst first
sees the roll-out overview (the coverage report's shares of spend and of providers against the
brief's targets, as released for the ministry) and the way into each report. Ministry roles see
what the whole store holds (registry sizes, submissions, records by type: counts only, no client
data) and what their role is for. The whole-store counts are never shown to a provider: they
would say how much others sent.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from cldx.access.roles import ROLES, SUBMIT, VIEW_ANALYSIS
from cldx.analysis.reports import Period, Section
from cldx.analysis.reports.providers import MEASURES
from cldx.standard import RECORD_TYPES
from cldx.store.models import Provider, Submission
from cldx.web import portal
from cldx.web.auth import principal_of
from cldx.web.charts import interval_chart, spec_json
from cldx.web.deps import SessionDep
from cldx.web.reports import report_for
from cldx.web.templating import render
from cldx.web.visibility import own_provider, summary_for

from .reports import chart_rows, section_view  # the report page's view of a section, so both show it alike
from .submissions import STATUS_TEXT, period_label
from .templates_download import template_links

router = APIRouter()

LATEST_SUBMISSIONS = 5
OVERVIEW_REPORT = "coverage"
OVERVIEW_SECTIONS = ("spend", "providers")
# The ministry's pages, as the overview lists them: (report, what an analyst goes there for).
MINISTRY_REPORTS = (
    ("reach", "Reach explorer: people and engagements by service, period and breakdowns"),
    ("outcomes", "Outcomes: what changed for clients"),
    ("providers", "Provider comparison, with funnel plots"),
    ("compliance", "Compliance and data quality per contract"),
    ("practice", "Effective-practice summary"),
    ("cohorts", "Cohort comparisons"),
)
BENCHMARK_REPORT = "providers"
BENCHMARK_SECTION = "comparison"
LINE_ROW = "All providers (benchmark)"  # the line's row, whose provider the report leaves blank ("Total")
# The chart's labels, short enough to leave the plot some room on a phone.
OWN_POINT, LINE_POINT = "You · {service}", "All providers · {service}"

# What each ministry role is for, in a line (provider roles get their organisation's page).
ROLE_NOTES: dict[str, str] = {
    "analyst": "Analysts see disclosure-controlled tables across providers: reach, outcomes, provider and cohort comparisons, coverage and compliance (Reports).",
    "research-requester": "Research requesters may ask for a de-identified research (IDI) extract.",
    "privacy-officer": "Privacy officers open identifying values for Privacy Act work, with a stated purpose (cldx privacy); every opening is audited.",
    "administrator": "Administrators manage users, roles, API tokens and the registry (cldx users, cldx tokens, cldx registry); they see no client data.",
}


def summary_context(request: Request, session: Session) -> dict[str, Any]:
    principal = principal_of(request)
    provider_id = own_provider(principal)
    summary = summary_for(request, session)
    record_rows = [
        (name, RECORD_TYPES[name].title if name in RECORD_TYPES else name, count)
        for name, count in summary.records.items()
    ]
    return {
        "summary": summary,
        "record_rows": record_rows,
        "counted_at": datetime.now(timezone.utc),
        "provider": session.get(Provider, provider_id) if provider_id is not None else None,
    }


def home_context(request: Request, session: Session, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything but the benchmark (which runs a report); `now` for the provider's due dates."""
    principal = principal_of(request)
    context = summary_context(request, session)
    provider = context["provider"]
    latest = []
    if provider is not None:
        latest = [
            {"submission": s, "status_label": STATUS_TEXT.get(s.status, (s.status.capitalize(), ""))[0],
             "period_label": period_label(s.period)}
            for s in session.scalars(select(Submission).where(Submission.provider_id == provider.id)
                                     .order_by(Submission.received_at.desc(), Submission.id.desc()).limit(LATEST_SUBMISSIONS))
        ]
    roles = [role for role in ROLES if principal.has(role)]
    return {
        **context,
        "latest": latest,
        "may_submit": provider is not None and principal.can(SUBMIT, provider.id),
        "roles": roles,
        "role_notes": [ROLE_NOTES[role] for role in roles if role in ROLE_NOTES],
        "portal": portal.portal_for(session, provider.id, now=now or request.app.state.settings.now()) if provider is not None else None,
        "templates": template_links() if provider is not None else [],
        "overview": None,  # an analyst's roll-out overview (overview_context)
        "status_labels": {status: label for status, (label, _) in STATUS_TEXT.items()},
    }


@router.get("/", response_class=HTMLResponse, name="home")
async def home(request: Request, session: SessionDep) -> HTMLResponse:
    # The database work and the report both block: neither runs on the event loop.
    context = await run_in_threadpool(home_context, request, session)
    if context["portal"] is not None:
        context.update(await benchmark_context(request, context["provider"], context["portal"].benchmark_period))
    elif principal_of(request).can(VIEW_ANALYSIS):
        context.update(await overview_context(request))
    return render(request, "home.html", context)


@router.get("/fragments/summary", response_class=HTMLResponse, name="summary_fragment")
def summary_fragment(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "_summary.html", summary_context(request, session))


# --- The ministry's roll-out overview -------------------------------------------------------------------


async def overview_context(request: Request) -> dict[str, Any]:
    """The coverage report's month-by-month shares of CIS spend and of providers against the brief's
    targets (23% from July 2016, 100% from July 2017), as released for the ministry: an analyst's
    first view of the roll-out, with the way into every other report."""
    report = await report_for(request, OVERVIEW_REPORT, period=None, by=None)
    sections = [section_view(s) for s in report.sections if s.key in OVERVIEW_SECTIONS]
    return {"overview": {"report": report, "sections": sections}, "charts": any(s["chart"] for s in sections),
            "ministry_reports": MINISTRY_REPORTS}


# --- The provider's results beside its service line ------------------------------------------------


async def benchmark_context(request: Request, provider: Provider, period: Period) -> dict[str, Any]:
    """The `providers` report's comparison for the provider's own audience, its own rows and its
    lines' rows only; `benchmark` is None when the layer holds none of its engagements yet."""
    context: dict[str, Any] = {"benchmark": None, "benchmark_error": None, "benchmark_period": period,
                               "benchmark_url": _report_url(period)}
    try:
        report = await report_for(request, BENCHMARK_REPORT, period=_period_text(period), by=None)
    except HTTPException as exc:
        if exc.status_code != 422:
            raise
        context["benchmark_error"] = str(exc.detail)  # a period the report refuses: say so, keep the page
        return context
    section = next((s for s in report.sections if s.key == BENCHMARK_SECTION), None)
    if section is None:
        return context
    own = portal.own_and_line(section, provider.code)
    if not any(at["provider"] == provider.code for at, _ in own.table.rows):  # type: ignore[attr-defined]
        return context  # nothing of the provider's in the layer for these months
    context["benchmark"] = benchmark_view(own, provider.code)
    # Only a page with a chart loads the chart scripts (render's default is False).
    context["charts"] = context["benchmark"]["chart"] is not None
    return context


def benchmark_view(section: Section, provider_code: str) -> dict[str, Any]:
    """The section as the report page shows it (header, rows, rules), with the line's rows named as
    the benchmark and a chart that shows them beside the provider's."""
    view = section_view(section)
    # The line's rows read "Total" in the report's table; here they are the benchmark beside the provider.
    rows = section.table.rows  # type: ignore[attr-defined]
    view["rows"] = [[LINE_ROW if at["provider"] is None else cells[0], *cells[1:]]
                    for (at, _), cells in zip(rows, view["rows"])]
    view["chart"] = benchmark_chart(section, provider_code)
    view["notes"] = list(section.table.notes)  # type: ignore[attr-defined]
    return view


def benchmark_chart(section: Section, provider_code: str) -> str | None:
    """The section's interval chart (case-mix adjusted figure with its 95% interval) for the provider
    and its lines' benchmark, labelled so both show: the report's chart leaves the line rows out.
    Improvement first, as in the report; where the provider has no improvement figure (a line no
    one assesses), the next measure it has."""
    rows = chart_rows(section)  # the released values, suppressed ones left out
    for measure in sorted(MEASURES, key=lambda m: m.key != "improvement"):
        y = f"{measure.key}_adjusted"
        points = [{"who": (OWN_POINT if r["provider"] == provider_code else LINE_POINT).format(service=r["service"]),
                   "value": r[y], "low": r.get(f"{y}_low"), "high": r.get(f"{y}_high")}
                  for r in rows if r.get(y) is not None]
        if any(r["provider"] == provider_code and r.get(y) is not None for r in rows):
            title = f"{measure.title}, case-mix adjusted"  # short: a longer title is cut off on a phone
            description = (f"{measure.title} ({measure.means}), adjusted for the mix of clients, for {provider_code} with its 95% "
                           "interval, beside the service line's figure")
            return spec_json(interval_chart(points, category="who", value="value", low="low", high="high", title=title,
                                            description=description, category_title="", value_title=f"{measure.title} (%)"))
    return None


def _period_text(period: Period) -> str:
    return f"{period.start.isoformat()}:{period.end.isoformat()}"  # type: ignore[union-attr]


def _report_url(period: Period) -> str:
    return f"/reports/{BENCHMARK_REPORT}?period_from={period.start:%Y-%m}&period_to={period.end:%Y-%m}"
