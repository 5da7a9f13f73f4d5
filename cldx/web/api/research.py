"""`/api/v1/research-extracts`: request a research (IDI) extract, decide it, take it once.

The same three audited steps as `cldx export research` and the `/research` pages
(`cldx.export.research` holds them): a research requester asks (201), a privacy officer other
than the requester approves or refuses (200; their own request is a 403, a second decision a
409), and the requester downloads the approved extract as a zip, once (a second download is a
409: an extract is made once). Who sees which request is `cldx.web.research`'s rule: officers
every one, requesters their own, everyone else 403.

Bad input is a 422 in the shared error shape naming the field (`body.purpose`, `body.k`, ...),
whether pydantic or the flow's own checks find it; never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cldx.access.roles import DECIDE_RESEARCH_EXTRACT, REQUEST_RESEARCH_EXTRACT, Principal
from cldx.export.research import DEFAULT_K, MAX_K, MAX_PURPOSE, MIN_K, MIN_PURPOSE, PRECISIONS, ExtractError, decide_extract, request_extract
from cldx.store.db import write_transaction
from cldx.web.auth import CSRF_HEADER, CSRF_REFUSED, PrincipalDep, principal_of, tokens_match
from cldx.web.deps import SessionDep
from cldx.web.research import (
    MAX_NOTE, NO_DECIDE, NO_REQUEST, NO_RESEARCH, REFERENCE_REGEX, REQUEST_LOCK, STATUS, clean_text, extracts_for, may_see,
    produce_zip, to_json, visible_extract,
)
from cldx.web.schemas import ErrorPublic

router = APIRouter(prefix="/research-extracts", tags=["research extracts"])

CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorPublic, "description": "The request is not in a state for this step (already decided, not approved, already produced)"},
}
# FastAPI reads a JSON body before any dependency runs, and answers 400 when its bytes are not
# even text (invalid UTF-8); JSON that decodes but is wrong is a 422 like any other bad input.
UNREADABLE: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorPublic, "description": "The body cannot be read as JSON text (not UTF-8)"},
}
Reference = Annotated[str, Path(max_length=40, pattern=REFERENCE_REGEX, description="The request's reference, RX-<year>-<number>",
                                 examples=["RX-2017-0001"])]
Precision = Literal["month", "quarter", "year"]
assert PRECISIONS == ("month", "quarter", "year")


def _plain(value: str) -> str:
    if not clean_text(value):
        raise ValueError("must not hold control characters")
    return value


class ExtractRequestJSON(BaseModel):
    """What a research requester sends to ask for an extract."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "period": "2016-07:2017-06", "purpose": "Which Family Start clients go on to Social Workers in Schools; for the ministry's evaluation team.",
        "k": 5, "date_precision": "month"}]})

    period: str = Field(max_length=40, description="FROM:TO as months (2016-07:2017-06) or days; both ends are needed")
    purpose: str = Field(max_length=MAX_PURPOSE, description=f"The research question and who will use the extract ({MIN_PURPOSE} to {MAX_PURPOSE} characters)")
    k: int = Field(DEFAULT_K, ge=MIN_K, le=MAX_K, strict=True, description=f"Every combination of quasi-identifiers is shared by at least k people ({MIN_K} to {MAX_K})")
    date_precision: Precision = Field("month", description="Dates are coarsened to month, quarter or year")

    _no_control = field_validator("period", "purpose")(_plain)


class DecisionJSON(BaseModel):
    """A privacy officer's decision on someone else's request."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"decision": "approve", "note": ""}]})

    decision: Literal["approve", "refuse"]
    note: str = Field("", max_length=MAX_NOTE, description="Why; needed to refuse, so the requester can put it right")

    _no_control = field_validator("note")(_plain)


class ExtractPublic(BaseModel):
    reference: str
    status: str = Field(description="requested, approved, refused, producing or produced")
    purpose: str
    period: dict[str, str] = Field(description='{"from": first day, "to": last day} (inclusive)')
    k: int
    date_precision: str
    requested_by: str
    requested_at: str | None
    decided_by: str | None
    decided_at: str | None
    decision_note: str
    produced_by: str | None
    produced_at: str | None
    manifest_sha256: str | None = Field(description="SHA-256 of the extract's manifest.json (which checksums every file): what left")
    summary: dict[str, Any] | None = Field(description="Once produced: rows per table and what k-anonymity took")


def _needs(allowed: Callable[[Principal], bool], message: str):
    """A route dependency: 403 unless the principal may. A dependency, so the refusal comes before
    the body is validated: a role that may not ask learns nothing about what a good request is."""

    def check(request: Request) -> None:
        if not allowed(principal_of(request)):
            raise HTTPException(403, detail=message)

    return [Depends(check)]


def _same_site(request: Request) -> None:
    """The download is a GET that changes state (the extract is made then, once). A browser sends
    its session cookie on a link followed from another site, so from a page session it also needs
    the session's CSRF token (as a POST does): no other site can spend the one download by a link.
    An API token is its own proof."""
    auth = request.state.auth
    if not auth.via_token and auth.web_session is not None and not tokens_match(auth.csrf_token, request.headers.get(CSRF_HEADER)):
        raise HTTPException(403, detail=CSRF_REFUSED)


MAY_SEE = _needs(may_see, NO_RESEARCH)
MAY_REQUEST = _needs(lambda p: p.can(REQUEST_RESEARCH_EXTRACT), NO_REQUEST)
MAY_DECIDE = _needs(lambda p: p.can(DECIDE_RESEARCH_EXTRACT), NO_DECIDE)


def _refusal(exc: ExtractError) -> Exception:
    """The flow's refusal as the API answers it; a field's problem reads like pydantic's."""
    if exc.kind == "invalid":
        location = ("body", exc.field) if exc.field else ("body",)
        return RequestValidationError([{"loc": location, "msg": str(exc), "type": "value_error"}])
    return HTTPException(STATUS.get(exc.kind, 422), detail=str(exc))


@router.get("", response_model=list[ExtractPublic], dependencies=MAY_SEE,
            summary="Research extract requests (a privacy officer's: all; a requester's: their own)")
def list_research_extracts(session: SessionDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    return [to_json(e) for e in extracts_for(session, principal)]


@router.post("", status_code=201, response_model=ExtractPublic, responses=UNREADABLE, dependencies=MAY_REQUEST,
             summary="Ask for a research extract")
def create_research_extract(body: ExtractRequestJSON, request: Request, principal: PrincipalDep) -> JSONResponse:
    """Recorded as `requested` (and in the audit trail); a privacy officer other than you decides it."""
    try:
        with write_transaction(request.app.state.engine, lock=REQUEST_LOCK) as writer:
            extract = request_extract(writer, actor=principal.name, user_id=principal.user_id, period=body.period, purpose=body.purpose,
                                      k=body.k, date_precision=body.date_precision)
            answer = to_json(extract)
    except ExtractError as exc:
        raise _refusal(exc) from None
    return JSONResponse(answer, status_code=201, headers={"Location": f"{request.url.path}/{answer['reference']}"})


@router.get("/{reference}", response_model=ExtractPublic, dependencies=MAY_SEE, summary="One research extract request")
def read_research_extract(reference: Reference, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    try:
        return to_json(visible_extract(session, principal, reference))
    except ExtractError as exc:
        raise _refusal(exc) from None


@router.post("/{reference}/decision", response_model=ExtractPublic, responses={**CONFLICT, **UNREADABLE}, dependencies=MAY_DECIDE,
             summary="Approve or refuse a request (never your own)")
def decide_research_extract(reference: Reference, body: DecisionJSON, request: Request, principal: PrincipalDep) -> dict[str, Any]:
    try:
        with write_transaction(request.app.state.engine) as writer:
            extract = decide_extract(writer, reference, approve=body.decision == "approve", note=body.note, actor=principal.name,
                                     user_id=principal.user_id)
            return to_json(extract)
    except ExtractError as exc:
        raise _refusal(exc) from None


@router.get("/{reference}/download", response_class=Response, dependencies=[*MAY_REQUEST, Depends(_same_site)],
            summary="Take the approved extract (a zip; once, and only the requester)",
            responses={200: {"content": {"application/zip": {}}, "description": "The extract's files, zipped"}, **CONFLICT})
def download_research_extract(reference: Reference, request: Request, session: SessionDep, principal: PrincipalDep) -> Response:
    """Writes the extract (audited as an `export`), answers it as a zip and keeps no copy: a second
    download is a 409, so ask again for another. From a browser session, send the session's
    X-CSRF-Token header too (the page's own download is a form)."""
    try:
        visible_extract(session, principal, reference)
        data = produce_zip(request, principal, reference)
    except ExtractError as exc:
        raise _refusal(exc) from None
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{reference}.zip"',
        "Cache-Control": "no-store",
    })
