"""The research extract pages: ask for a research (IDI) extract, decide it, take it once.

- `/research` (research requesters and privacy officers): the requests, newest first (a
  privacy officer sees every one, a requester their own), and for a requester the form to ask
  for one: the period as two months, what it is for, k and the precision dates are kept to.
- `/research/{reference}`: the request, and the step its status allows: a privacy officer who
  did not ask for it approves or refuses it (a refusal says why); the requester, once it is
  approved, downloads it (a zip, made then and once: nothing is kept to download again); once
  produced, who took it, when, the manifest's SHA-256 and what k-anonymity took.

Every step is `cldx.export.research`'s, which records it in the audit trail; who sees which
request is `cldx.web.research`'s rule (another requester's reference is a 404). A role without
the capability gets 403 before anything is read; a step the request is not in a state for is
shown on the page with 409, and a requester deciding their own request gets 403 with why.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from cldx.access.roles import DECIDE_RESEARCH_EXTRACT, REQUEST_RESEARCH_EXTRACT
from cldx.export.research import (
    APPROVED, DEFAULT_K, MAX_K, MAX_PURPOSE, MIN_K, MIN_PURPOSE, PRECISIONS, REQUESTED, ExtractError, decide_extract, get_extract,
    quasi_identifiers, request_extract,
)
from cldx.store.db import read_transaction, write_transaction
from cldx.store.models import ResearchExtract
from cldx.web.auth import forbidden, principal_of
from cldx.web.deps import SessionDep
from cldx.web.pages.privacy import needs, page_path
from cldx.web.research import (
    MAX_NOTE, NO_DECIDE, NO_EXTRACT, NO_REQUEST, NO_RESEARCH, REQUEST_LOCK, STATUS, clean_text, extracts_for, is_requester, may_see,
    period_label, produce_zip, summary_of, visible_extract,
)
from cldx.web.templating import render

PRECISION_LABELS = {"month": "Month (2017-03)", "quarter": "Quarter (2017-Q1)", "year": "Year (2017)"}
assert tuple(PRECISION_LABELS) == PRECISIONS
# The colour of each status's badge (its text says it all): waiting, done, refused.
STATUS_BADGES = {"requested": "badge-queued", "approved": "badge-accepted", "refused": "badge-refused",
                 "producing": "badge-processing", "produced": "badge-request-closed"}
MONTH = re.compile(r"\d{4}-\d{2}")
# A browser sends a textarea's line breaks as CRLF: counted as one character, as the page counts them.
MAX_TYPED = 2 * MAX_PURPOSE


def _may_see(request: Request) -> None:
    if not may_see(principal_of(request)):
        raise forbidden(NO_RESEARCH)


router = APIRouter(prefix="/research", dependencies=[Depends(_may_see)])


def _extract_or_404(session: Session, request: Request, reference: str) -> ResearchExtract:
    try:
        return visible_extract(session, principal_of(request), reference)
    except ExtractError:
        raise HTTPException(404, detail=NO_EXTRACT) from None


def _fresh(request: Request, reference: str) -> ResearchExtract:
    """The request as stored now (the request's own session may have read it before a step changed it)."""
    with read_transaction(request.app.state.engine) as session:
        return get_extract(session, reference)


def _typed(value: str) -> str:
    return value.replace("\r\n", "\n").strip()


# --- The list, and asking for an extract ---------------------------------------------------------


def _list_context(request: Request, session: Session, *, values: dict[str, str] | None = None,
                  errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    principal = principal_of(request)
    return {
        "extracts": [{"item": e, "period": period_label(e), "badge": STATUS_BADGES.get(e.status, "")} for e in extracts_for(session, principal)],
        "sees_all": principal.can(DECIDE_RESEARCH_EXTRACT),
        "may_request": principal.can(REQUEST_RESEARCH_EXTRACT),
        "values": values or {"period_from": "", "period_to": "", "purpose": "", "k": str(DEFAULT_K), "date_precision": "month"},
        "precisions": PRECISION_LABELS,
        "limits": {"min_k": MIN_K, "max_k": MAX_K, "default_k": DEFAULT_K, "min_purpose": MIN_PURPOSE, "max_purpose": MAX_PURPOSE},
        "errors": errors or [],
        "invalid": {e["field"] for e in errors or []},
    }


@router.get("", response_class=HTMLResponse, name="research_extracts_page")
def research_extracts_page(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "research_extracts.html", _list_context(request, session))


@router.post("", name="request_research_extract", dependencies=[needs(REQUEST_RESEARCH_EXTRACT, NO_REQUEST)])
def request_research_extract(
    request: Request,
    session: SessionDep,
    period_from: Annotated[str, Form(max_length=20)] = "",
    period_to: Annotated[str, Form(max_length=20)] = "",
    purpose: Annotated[str, Form(max_length=MAX_TYPED)] = "",
    k: Annotated[str, Form(max_length=10)] = "",
    date_precision: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    values = {"period_from": period_from.strip(), "period_to": period_to.strip(), "purpose": _typed(purpose), "k": k.strip(),
              "date_precision": date_precision.strip()}
    errors: list[dict[str, str]] = []
    for name, end in (("period_from", "first"), ("period_to", "last")):
        if not MONTH.fullmatch(values[name]):
            errors.append({"field": name, "message": f"Give the {end} month of the period as yyyy-mm, for example "
                                                     f"{'2016-07' if end == 'first' else '2017-06'}."})
    if not clean_text(values["purpose"]):
        errors.append({"field": "purpose", "message": "The purpose holds control characters: write it as plain text."})
    if not re.fullmatch(r"\d{1,3}", values["k"]) or not MIN_K <= int(values["k"]) <= MAX_K:
        errors.append({"field": "k", "message": f"k must be a whole number from {MIN_K} to {MAX_K} (default {DEFAULT_K})."})
    if values["date_precision"] not in PRECISIONS:
        errors.append({"field": "date_precision", "message": "Choose whether dates are kept to the month, quarter or year."})
    if not errors:
        principal = principal_of(request)
        try:
            with write_transaction(request.app.state.engine, lock=REQUEST_LOCK) as writer:
                reference = request_extract(writer, actor=principal.name, user_id=principal.user_id,
                                            period=f"{values['period_from']}:{values['period_to']}", purpose=values["purpose"],
                                            k=int(values["k"]), date_precision=values["date_precision"]).reference
        except ExtractError as exc:
            errors.append({"field": exc.field or "purpose", "message": str(exc)})
        else:
            return RedirectResponse(page_path(request, f"/research/{reference}"), status_code=303)
    return render(request, "research_extracts.html", _list_context(request, session, values=values, errors=errors), status_code=422)


# --- One request: decide it, take it -------------------------------------------------------------


def _levels(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """What each quasi-identifier was generalised to, in words ("birth: 5-year range")."""
    levels = summary.get("levels") or {}
    try:
        names = {h.column: h for h in quasi_identifiers()}
        return [(column, names[column].level_name(level) if column in names else str(level)) for column, level in levels.items()]
    except Exception:  # noqa: BLE001 - the numbers are still right; the words are a courtesy
        return [(column, f"level {level}") for column, level in levels.items()]


def _extract_context(request: Request, extract: ResearchExtract, *, error: str = "", error_field: str = "",
                     note: str = "") -> dict[str, Any]:
    principal = principal_of(request)
    requester = is_requester(principal, extract)
    summary = summary_of(extract)
    return {
        "item": extract,
        "period": period_label(extract),
        "badge": STATUS_BADGES.get(extract.status, ""),
        "precision": PRECISION_LABELS.get(extract.date_precision, extract.date_precision),
        "summary": summary,
        "levels": _levels(summary) if summary else [],
        "is_requester": requester,
        "may_decide": extract.status == REQUESTED and not requester and principal.can(DECIDE_RESEARCH_EXTRACT),
        "may_download": extract.status == APPROVED and requester and principal.can(REQUEST_RESEARCH_EXTRACT),
        "error": error,
        "error_field": error_field,
        "note": note,
        "max_note": MAX_NOTE,
    }


@router.get("/{reference}", response_class=HTMLResponse, name="research_extract_page")
def research_extract_page(reference: str, request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "research_extract.html", _extract_context(request, _extract_or_404(session, request, reference)))


@router.post("/{reference}/decision", name="decide_research_extract_page", dependencies=[needs(DECIDE_RESEARCH_EXTRACT, NO_DECIDE)])
def decide_research_extract_page(
    reference: str,
    request: Request,
    session: SessionDep,
    decision: Annotated[str, Form(max_length=10)] = "",
    note: Annotated[str, Form(max_length=2 * MAX_NOTE)] = "",
) -> Response:
    _extract_or_404(session, request, reference)
    note = _typed(note)
    if decision not in ("approve", "refuse"):
        error, field, status = "Choose whether to approve or refuse the request.", "", 422
    elif not clean_text(note):
        error, field, status = "The note holds control characters: write it as plain text.", "note", 422
    else:
        principal = principal_of(request)
        try:
            with write_transaction(request.app.state.engine) as writer:
                decide_extract(writer, reference, approve=decision == "approve", note=note, actor=principal.name, user_id=principal.user_id)
        except ExtractError as exc:
            error, field, status = str(exc), exc.field, STATUS.get(exc.kind, 422)
        else:
            return RedirectResponse(page_path(request, f"/research/{reference}"), status_code=303)
    return render(request, "research_extract.html",
                  _extract_context(request, _fresh(request, reference), error=error, error_field=field, note=note), status_code=status)


@router.post("/{reference}/download", name="download_research_extract_page", dependencies=[needs(REQUEST_RESEARCH_EXTRACT, NO_REQUEST)])
def download_research_extract_page(reference: str, request: Request, session: SessionDep) -> Response:
    _extract_or_404(session, request, reference)
    try:
        data = produce_zip(request, principal_of(request), reference)
    except ExtractError as exc:
        return render(request, "research_extract.html", _extract_context(request, _fresh(request, reference), error=str(exc)),
                      status_code=STATUS.get(exc.kind, 409))
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{reference}.zip"',
        "Cache-Control": "no-store",
    })
