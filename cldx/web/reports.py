"""Reports for a request: who the report is for, the warm analytic layer, and audited downloads.

Shared by the API (`/api/v1/reports`) and the pages (`/reports`). Analysts (VIEW_ANALYSIS) get
the ministry's disclosure-controlled view; a provider's staff get their own provider's view
(their own figures exact, peers controlled); every other role gets 403. A report file leaving
as CSV or Excel is written to the audit trail (what left, in which form, for whom).
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from cldx.access import audit
from cldx.access.roles import VIEW_ANALYSIS
from cldx.analysis.layer import layer_for
from cldx.analysis.reports import MINISTRY, Audience, Report, ReportContext, ReportError, run_report
from cldx.identity.vault import vault_of
from cldx.store import write_transaction

from .auth import principal_of
from .visibility import own_provider

NO_REPORTS = "Your role does not see reports."


def audience_for(request: Request) -> Audience:
    """The ministry view for analysts, a provider's own view for its staff, else 403."""
    principal = principal_of(request)
    provider_id = own_provider(principal)
    if provider_id is not None:
        context = report_context(request)
        if provider_id not in context.labels.providers:
            context.forget_labels()  # a provider registered since the labels were read
        return Audience(provider_id, context.labels.providers.get(provider_id))
    if principal.can(VIEW_ANALYSIS):
        return MINISTRY
    raise HTTPException(403, detail=NO_REPORTS)


def report_context(request: Request) -> ReportContext:
    state = request.app.state
    context = getattr(state, "report_context", None)
    if context is None:
        engine = state.engine
        context = state.report_context = ReportContext(
            layer_for(state.settings.analytic_dir, engine), vault_of(engine).derived_key("rr3 rounding"), clock=state.settings.now
        )
    return context


async def report_for(request: Request, name: str, *, period: str | None, by: str | None) -> Report:
    """Run the report off the event loop (DuckDB and the layer refresh block); bad parameters are 422."""
    audience = audience_for(request)
    context = report_context(request)
    try:
        return await run_in_threadpool(run_report, name, context, period=period, by=by, audience=audience)
    except ReportError as exc:
        status = 404 if name not in _report_names() else 422
        raise HTTPException(status, detail=str(exc)) from None


def _report_names() -> set[str]:
    from cldx.analysis.reports import REPORTS

    return set(REPORTS)


def audit_download(request: Request, report: Report, fmt: str) -> None:
    principal = principal_of(request)
    with write_transaction(request.app.state.engine) as session:
        audit.record(session, actor=principal.name, action="export", target=f"report:{report.name}",
                     provider_id=report.audience.provider_id, purpose="report",
                     detail={"format": fmt, "period": report.period.to_json(), "by": report.by,
                             "audience": report.audience.to_json(), "channel": "web"})
