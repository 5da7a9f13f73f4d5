"""`/api/v1/reports`: the evidence as JSON, CSV or Excel, with the same parameters as `cldx report`.

Analysts get the ministry's view (every person count disclosure-controlled); a provider's staff
and systems get their own provider's view. CSV and Excel answers are downloads and are audited.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from cldx.analysis.reports import REPORTS
from cldx.export.reports import MEDIA_TYPES, render
from cldx.web.reports import audit_download, report_for

router = APIRouter(prefix="/reports", tags=["reports"])


class ReportListing(BaseModel):
    name: str
    title: str
    default_by: list[str]


class ReportPublic(BaseModel):
    report: str
    title: str
    summary: str
    period: dict[str, str | None]
    by: list[str]
    audience: dict[str, Any]
    generated_at: str
    notes: list[str]
    sections: list[dict[str, Any]]


@router.get("", response_model=list[ReportListing], summary="The reports there are")
def list_reports() -> list[ReportListing]:
    return [ReportListing(name=m.NAME, title=m.TITLE, default_by=list(m.DEFAULT_BY)) for m in REPORTS.values()]


@router.get(
    "/{name}",
    response_model=ReportPublic,
    summary="Run a report",
    responses={200: {"content": {MEDIA_TYPES["csv"]: {}, MEDIA_TYPES["xlsx"]: {}}}},
)
async def read_report(
    request: Request,
    name: Annotated[str, Path(max_length=40, pattern=r"^[a-z_]+$", description=f"One of: {', '.join(REPORTS)}", examples=["reach"])],
    period: Annotated[str | None, Query(max_length=40, description="FROM:TO as months (2016-07:2017-06) or days; none: everything stored")] = None,
    by: Annotated[str | None, Query(max_length=200, description="Breakdowns, comma-separated (service, region, ta, ethnicity, iwi, age_band, gender, provider)")] = None,
    format: Annotated[Literal["json", "csv", "xlsx"], Query(description="json (default), csv or xlsx")] = "json",
) -> Any:
    """Every table in the answer says which disclosure rules it passed; a suppressed value is
    null with `"suppressed": true` (JSON) or `S` (CSV, Excel). A provider's own figures are exact."""
    report = await report_for(request, name, period=period, by=by)
    if format == "json":
        return JSONResponse(report.to_json())
    data = render(report, format)
    audit_download(request, report, format)
    filename = f"cldx-{report.name}.{format}"
    return Response(data, media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
