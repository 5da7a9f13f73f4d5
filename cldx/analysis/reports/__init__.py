"""The reports: each a module with NAME, TITLE, DEFAULT_BY, ALLOWED_BY, MAX_BY and
`run(context, period=, by=, audience=)`.

`REPORTS` is the one list the CLI (`cldx report NAME`), the API (`/api/v1/reports/{name}`) and
the pages serve; adding a report here adds it everywhere.
"""

from __future__ import annotations

from types import ModuleType

from . import cohorts, compliance, coverage, outcomes, practice, providers, reach
from .base import MINISTRY, Audience, Chart, Period, Report, ReportContext, ReportError, Section

REPORTS: dict[str, ModuleType] = {m.NAME: m for m in (reach, outcomes, providers, cohorts, coverage, compliance, practice)}


def run_report(name: str, context: ReportContext, *, period: Period | str | None = None,
               by: list[str] | str | None = None, audience: Audience = MINISTRY) -> Report:
    """Run one report by name (ReportError for an unknown name or bad parameters)."""
    module = REPORTS.get(name)
    if module is None:
        raise ReportError(f"no report {name!r}: choose from {', '.join(REPORTS)}")
    if not isinstance(period, Period):
        period = Period.parse(period)
    asked = [b for b in (by.split(",") if isinstance(by, str) else by or []) if b.strip()]
    if len(asked) > module.MAX_BY:
        raise ReportError(f"{name} takes at most {module.MAX_BY} breakdown{'s' if module.MAX_BY != 1 else ''}"
                          + (f" ({', '.join(module.ALLOWED_BY)})" if module.ALLOWED_BY else ""))
    return module.run(context, period=period, by=by, audience=audience)


__all__ = ["MINISTRY", "REPORTS", "Audience", "Chart", "Period", "Report", "ReportContext", "ReportError", "Section", "run_report"]
