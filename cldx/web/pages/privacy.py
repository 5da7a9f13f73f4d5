"""The privacy officer's pages: the audit trail, and Privacy Act requests.

- `/privacy/audit` (VIEW_AUDIT: privacy officers and administrators): the trail, newest first,
  filtered by who, what, from/to (days in the configured zone, Pacific/Auckland by default) and
  provider, 100 entries a page, under the chain's status from `cldx.access.audit.verify`.
- `/privacy/requests` (READ_IDENTITY: privacy officers only): the requests (reference, kind,
  received, who opened it, status and outcome; never whom it is about) and a form to open one;
  a request's page finds the records held about its subject, exports them (a JSON download
  that is never cached) and closes the request with its outcome.

Every step that opens identifying values goes through `cldx.identity.requests`, which records
it in the audit trail with the request as its purpose; this module never decrypts a record's
identity itself. The one thing it opens is the request's own subject (what the privacy officer
typed in when opening it), shown on the request's page to whoever holds READ_IDENTITY.

A role without the capability gets 403 before anything is read (the capability check is a
route dependency, so it also comes before form validation); an unknown reference gets 404.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cldx.access.audit import ACTIONS, verify
from cldx.access.roles import READ_IDENTITY, VIEW_AUDIT
from cldx.identity import requests as privacy_requests
from cldx.identity.requests import KINDS, Found, RequestError
from cldx.identity.vault import vault_of
from cldx.store.db import write_transaction
from cldx.store.models import AuditEvent, PrivacyRequest, Provider
from cldx.store.scope import set_scope
from cldx.web.auth import forbidden, principal_of
from cldx.web.deps import SessionDep
from cldx.web.templating import render

NO_AUDIT = "Your role does not read the audit trail."
NO_IDENTITY = "Your role does not handle Privacy Act requests."
NO_REQUEST = "There is no Privacy Act request with that reference."

AUDIT_PAGE_SIZE = 100
# References are made by `open_request`: PA-<year>-<number>. Anything else cannot name one.
REFERENCE_PATTERN = re.compile(r"PA-\d{4}-\d{4,8}")
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
MAX_NAME = 200
MAX_OUTCOME = 2000

KIND_LABELS = {"access": "Access (what is held about the person)", "correction": "Correction (of what is held)"}
assert set(KIND_LABELS) == set(KINDS)


def needs(capability: str, message: str):
    """A route dependency: 403 unless the principal holds the (ministry-wide) capability."""

    def check(request: Request) -> None:
        if not principal_of(request).can(capability):
            raise forbidden(message)

    return Depends(check)


router = APIRouter(prefix="/privacy")


def page_path(request: Request, path: str) -> str:
    return f"{request.scope.get('root_path', '').rstrip('/')}/{path.lstrip('/')}"


# --- The audit trail -----------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    action: str = ""
    since: str = ""  # yyyy-mm-dd, a day in the configured zone (inclusive)
    until: str = ""  # yyyy-mm-dd, inclusive
    provider: str = ""

    @property
    def active(self) -> bool:
        return any(self.query().values())

    def query(self) -> dict[str, str]:
        """The filters as the page's query string has them (empty ones left out)."""
        values = {"actor": self.actor, "action": self.action, "from": self.since, "to": self.until, "provider": self.provider}
        return {name: value for name, value in values.items() if value}


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None
    except ValueError:
        return None


def _where(query: Select, filters: AuditFilters, zone: ZoneInfo, session: Session, problems: list[str]) -> Select | None:
    """The query narrowed by the filters; None when a filter can match nothing (problems say why)."""
    if filters.actor:
        query = query.where(AuditEvent.actor == filters.actor)
    if filters.action:
        if filters.action not in ACTIONS:
            problems.append(f"There is no action {filters.action!r}. Choose one from the list.")
        query = query.where(AuditEvent.action == filters.action)
    for text, label, inclusive in ((filters.since, "From", True), (filters.until, "To", False)):
        if not text:
            continue
        day = _day(text)
        if day is None:
            problems.append(f"{label}: write the day as yyyy-mm-dd, for example 2026-03-31.")
            continue
        # Days begin at local midnight; "to" takes in the whole of its day.
        start = datetime.combine(day if inclusive else day + timedelta(days=1), time.min, tzinfo=zone)
        query = query.where(AuditEvent.at >= start) if inclusive else query.where(AuditEvent.at < start)
    if filters.provider:
        provider_id = session.scalar(select(Provider.id).where(Provider.code == filters.provider))
        if provider_id is None:
            problems.append(f"There is no provider {filters.provider!r}.")
            return None
        query = query.where(AuditEvent.provider_id == provider_id)
    return None if problems else query


@router.get("/audit", response_class=HTMLResponse, name="audit_page", dependencies=[needs(VIEW_AUDIT, NO_AUDIT)])
def audit_page(
    request: Request,
    session: SessionDep,
    actor: Annotated[str, Query(max_length=100, pattern=NO_CONTROL)] = "",
    action: Annotated[str, Query(max_length=40, pattern=NO_CONTROL)] = "",
    since: Annotated[str, Query(alias="from", max_length=20, pattern=NO_CONTROL)] = "",
    until: Annotated[str, Query(alias="to", max_length=20, pattern=NO_CONTROL)] = "",
    provider: Annotated[str, Query(max_length=40, pattern=NO_CONTROL)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    zone = ZoneInfo(request.app.state.settings.timezone)
    filters = AuditFilters(actor.strip(), action.strip(), since.strip(), until.strip(), provider.strip())
    problems: list[str] = []
    chain = verify(session)
    entries: list[AuditEvent] = []
    total = 0
    where = _where(select(AuditEvent), filters, zone, session, problems)
    if where is not None:
        total = session.scalar(select(func.count()).select_from(where.subquery())) or 0
        entries = list(session.scalars(where.order_by(AuditEvent.id.desc()).offset((page - 1) * AUDIT_PAGE_SIZE).limit(AUDIT_PAGE_SIZE)))
    codes = dict(session.execute(select(Provider.id, Provider.code).where(
        Provider.id.in_({e.provider_id for e in entries if e.provider_id is not None}))).all()) if entries else {}
    pages = max(1, -(-total // AUDIT_PAGE_SIZE))
    base = page_path(request, "/privacy/audit")
    query = filters.query()

    def page_url(number: int) -> str:
        return base + "?" + urlencode({**query, **({"page": number} if number > 1 else {})}) if query or number > 1 else base

    context = {
        "chain": chain,
        "entries": [
            {"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "target": e.target,
             "provider": codes.get(e.provider_id, "") if e.provider_id is not None else "", "purpose": e.purpose,
             "detail": "" if e.detail in ("", "{}") else e.detail}
            for e in entries
        ],
        "actions": ACTIONS,
        "filters": filters,
        "problems": problems,
        "total": total,
        "page": page,
        "pages": pages,
        "first_number": (page - 1) * AUDIT_PAGE_SIZE + 1,
        "last_number": (page - 1) * AUDIT_PAGE_SIZE + len(entries),
        "newer_url": page_url(page - 1) if page > 1 else None,
        "older_url": page_url(page + 1) if page < pages else None,
        "zone": zone.key,
    }
    return render(request, "privacy_audit.html", context, status_code=422 if problems else 200)


# --- Privacy Act requests ------------------------------------------------------------------

requests_router = APIRouter(prefix="/requests", dependencies=[needs(READ_IDENTITY, NO_IDENTITY)])


def _request_row(session: Session, reference: str) -> PrivacyRequest:
    """The request the path names, or 404."""
    if REFERENCE_PATTERN.fullmatch(reference) is None:
        raise HTTPException(404, detail=NO_REQUEST)
    set_scope(session.connection(), everything=True)
    row = session.scalar(select(PrivacyRequest).where(PrivacyRequest.reference == reference))
    if row is None:
        raise HTTPException(404, detail=NO_REQUEST)
    return row




def _list_context(request: Request, session: Session, *, values: dict[str, str] | None = None,
                  errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    zone = ZoneInfo(request.app.state.settings.timezone)
    rows = privacy_requests.list_requests(session)
    return {
        "requests": list(reversed(rows)),  # newest first
        "kinds": KIND_LABELS,
        "values": values or {"kind": "access", "family_name": "", "given_names": "", "date_of_birth": "",
                             "received_on": datetime.now(zone).date().isoformat()},
        "errors": errors or [],
        "invalid": {e["field"] for e in errors or []},
    }


@requests_router.get("", response_class=HTMLResponse, name="privacy_requests_page")
def requests_page(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "privacy_requests.html", _list_context(request, session))


@requests_router.post("", name="open_privacy_request")
def open_privacy_request(
    request: Request,
    session: SessionDep,
    kind: Annotated[str, Form(max_length=20)] = "",
    family_name: Annotated[str, Form(max_length=MAX_NAME)] = "",
    given_names: Annotated[str, Form(max_length=MAX_NAME)] = "",
    date_of_birth: Annotated[str, Form(max_length=20)] = "",
    received_on: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    values = {"kind": kind.strip(), "family_name": family_name.strip(), "given_names": given_names.strip(),
              "date_of_birth": date_of_birth.strip(), "received_on": received_on.strip()}
    errors: list[dict[str, str]] = []
    zone = ZoneInfo(request.app.state.settings.timezone)
    today = datetime.now(zone).date()
    if values["kind"] not in KINDS:
        errors.append({"field": "kind", "message": "Choose whether the request is for access or a correction."})
    if not values["family_name"]:
        errors.append({"field": "family_name", "message": "Write the family name of the person the request is about."})
    born = _day(values["date_of_birth"])
    if born is None:
        errors.append({"field": "date_of_birth", "message": "Write the date of birth as yyyy-mm-dd, for example 2008-12-19."})
    elif born > today:
        errors.append({"field": "date_of_birth", "message": "The date of birth is in the future."})
    received = _day(values["received_on"])
    if received is None:
        errors.append({"field": "received_on", "message": "Write the day the request was received as yyyy-mm-dd."})
    elif received > today:
        errors.append({"field": "received_on", "message": "The day the request was received is in the future."})
    if not errors:
        engine = request.app.state.engine
        try:
            with write_transaction(engine) as writer:
                opened = privacy_requests.open_request(
                    writer, vault_of(engine), kind=values["kind"], family_name=values["family_name"], given_names=values["given_names"],
                    date_of_birth=born, received_on=received, actor=principal_of(request).name)  # type: ignore[arg-type]
                reference = opened.reference
        except RequestError as exc:
            errors.append({"field": "family_name", "message": f"{str(exc)[:1].upper()}{str(exc)[1:]}."})
        else:
            return RedirectResponse(page_path(request, f"/privacy/requests/{reference}"), status_code=303)
    return render(request, "privacy_requests.html", _list_context(request, session, values=values, errors=errors), status_code=422)


def _request_context(request: Request, row: PrivacyRequest, *, found: Found | None = None, error: str = "") -> dict[str, Any]:
    return {
        "item": row,
        "subject": privacy_requests.subject_of(vault_of(request.app.state.engine), row),
        "kind_label": KIND_LABELS.get(row.kind, row.kind),
        "found": found,
        "error": error,
        "purpose": f"Privacy Act {row.kind} request {row.reference}",
    }


@requests_router.get("/{reference}", response_class=HTMLResponse, name="privacy_request_page")
def request_page(reference: str, request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "privacy_request.html", _request_context(request, _request_row(session, reference)))


def _step(request: Request, reference: str, step):
    """Run `step(session, vault)` in one write transaction; its audit entries stand or fall with it."""
    engine = request.app.state.engine
    with write_transaction(engine) as writer:
        return step(writer, vault_of(engine))


@requests_router.post("/{reference}/find", response_class=HTMLResponse, name="privacy_request_find")
def find_records(reference: str, request: Request, session: SessionDep) -> HTMLResponse:
    row = _request_row(session, reference)
    actor = principal_of(request).name
    try:
        found = _step(request, reference, lambda writer, vault: privacy_requests.find_person(writer, vault, reference, actor=actor))
    except RequestError as exc:
        return render(request, "privacy_request.html", _request_context(request, row, error=f"{exc}."), status_code=409)
    return render(request, "privacy_request.html", _request_context(request, row, found=found))


@requests_router.post("/{reference}/export", name="privacy_request_export")
def export_records(reference: str, request: Request, session: SessionDep) -> Response:
    row = _request_row(session, reference)
    actor = principal_of(request).name
    try:
        document = _step(request, reference, lambda writer, vault: privacy_requests.export_person(writer, vault, reference, actor=actor))
    except RequestError as exc:
        return render(request, "privacy_request.html", _request_context(request, row, error=f"{exc}."), status_code=409)
    body = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="{reference}-export.json"',
        "Cache-Control": "no-store",
    })


@requests_router.post("/{reference}/close", name="privacy_request_close")
def close_privacy_request(
    reference: str,
    request: Request,
    session: SessionDep,
    outcome: Annotated[str, Form(max_length=MAX_OUTCOME)] = "",
) -> Response:
    row = _request_row(session, reference)
    outcome = outcome.strip()
    if not outcome:
        return render(request, "privacy_request.html",
                      _request_context(request, row, error="Write the outcome: what was done, for the record."), status_code=422)
    actor = principal_of(request).name
    try:
        _step(request, reference, lambda writer, vault: privacy_requests.close_request(writer, reference, outcome=outcome, actor=actor))
    except RequestError as exc:
        return render(request, "privacy_request.html", _request_context(request, row, error=f"{exc}."), status_code=409)
    return RedirectResponse(page_path(request, f"/privacy/requests/{reference}"), status_code=303)


router.include_router(requests_router)
