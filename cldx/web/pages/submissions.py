"""Submissions in the browser: the upload page, a submission's page, and the list of submissions.

The upload form is sent by `static/upload.js` to the JSON API (`POST /api/v1/submissions`), so
staff see the bytes go and, for a large upload, the worker's progress. Without JavaScript the
same form posts here (`POST /submissions`), which calls the same `submit()` (or queues the
files) and redirects to the submission's page with 303.

Everything a request may see goes through three helpers in `cldx.web.visibility` (providers it
may send for, submissions it may list, the submission it asked for), shared with the API: a
provider's staff see and send for their own provider only, an outsider asking for a submission
gets the same 404 as for one that does not exist, and a role that may not use these pages
(ministry roles, for now) gets 403.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from cldx.ingest.findings import RULES
from cldx.ingest.queue import Progress, enqueue, progress
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import MODES, UnknownProvider, submit
from cldx.store.models import Provider, QuarantinedRow, Submission, SubmissionFile, SubmissionFinding
from cldx.web.api.submissions import FINDING_COLUMNS
from cldx.web.auth import principal_of
from cldx.web.deps import SessionDep, SettingsDep
from cldx.web.export import csv_download
from cldx.web.limits import in_submission_slot
from cldx.web.templating import render
from cldx.web.visibility import submission_for, visible_providers, visible_submissions

from .templates_download import template_links

router = APIRouter()

PAGE_SIZE = 50  # submissions per page of the list
# Up to this many findings the page holds them all and filters in the browser; above it the
# server filters and shows this many (the CSV download always has every one).
FINDINGS_ON_PAGE = 2000
ACTIVE_STATUSES = ("queued", "processing")
MAX_FILES = 50
PERIOD_PATTERN = r"\d{4}-(0[1-9]|1[0-2])"
# Stored file names and rule codes hold no control characters, so a filter holding one is refused.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"

# Status shown to provider staff: a short label and what it means for them.
STATUS_TEXT: dict[str, tuple[str, str]] = {
    "queued": ("Queued", "The files are waiting for the background worker. This page updates when they have been processed."),
    "processing": ("Processing", "The files are being checked and stored. This page updates when that is done."),
    "accepted": ("Accepted", "Every record passed the checks and was stored."),
    "partial": (
        "Partly accepted",
        "The records that passed were stored. Rows with errors were not: fix them (the findings below say how) and send them again.",
    ),
    "refused": (
        "Refused",
        "Nothing was stored: you chose all-or-nothing and some rows have errors, or the files held names your organisation "
        "does not send. The findings below say which; fix them and send the files again.",
    ),
    "unreadable": ("Unreadable", "Nothing could be read from the files. The findings below say why."),
    "failed": ("Failed", "Something went wrong on our side while processing the files. Send them again; if it happens again, tell the ministry."),
}

# (value, label, hint) of the mode radio buttons, in plain language.
MODE_CHOICES: tuple[tuple[str, str, str], ...] = (
    ("partial", "Store the rows that pass", "Rows with errors are left out and listed for you to fix and send again."),
    ("all-or-nothing", "Store nothing unless every row passes", "If any row has an error, nothing from these files is stored."),
)
assert tuple(value for value, _, _ in MODE_CHOICES) == MODES


# --- Helpers -------------------------------------------------------------------------------


def page_path(request: Request, path: str) -> str:
    """Root-relative URL of a path in this app (as `app_url` in the templates)."""
    return f"{request.scope.get('root_path', '').rstrip('/')}/{path.lstrip('/')}"


def period_label(period: str) -> str:
    """2017-08 -> August 2017 (the period as stored when it is not a YYYY-MM)."""
    try:
        return datetime.strptime(period, "%Y-%m").strftime("%B %Y")
    except ValueError:
        return period


def display_status(status: str, job: Progress | None) -> str:
    """A queued submission whose job a worker has taken is shown as processing."""
    if status == "queued" and job is not None and job.status == "running":
        return "processing"
    return status


def file_size(size: int) -> str:
    if size < 1024:
        return f"{size:,} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:,.1f} KB"
    return f"{size / 1024 / 1024:,.1f} MB"


# --- The upload page -----------------------------------------------------------------------


def upload_context(
    request: Request, session: Session, *, values: dict[str, str] | None = None, errors: list[dict[str, Any]] | None = None, message: str = ""
) -> dict[str, Any]:
    settings = request.app.state.settings
    providers = visible_providers(request, session)
    if values is None:
        values = {
            "provider": providers[0].code if len(providers) == 1 else "",
            "period": settings.now().astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m"),
            "mode": MODES[0],
        }
    return {
        "providers": providers,
        "values": values,
        "errors": errors or [],
        "error_message": message,
        "invalid": {str(e["location"][-1]) for e in errors or [] if e.get("location")},
        "modes": MODE_CHOICES,
        "period_pattern": PERIOD_PATTERN,
        "max_upload_bytes": settings.max_upload_bytes,
        "max_upload": file_size(settings.max_upload_bytes),
        "templates": template_links(),
    }


@router.get("/submissions/new", response_class=HTMLResponse, name="upload_page")
def upload_page(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "upload.html", upload_context(request, session))


@router.post("/submissions", name="upload_without_script")
async def upload_without_script(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The upload form without JavaScript: submit (or queue) the files, then 303 to the submission page."""
    errors: list[dict[str, Any]] = []
    values = {"provider": "", "period": "", "mode": MODES[0]}
    files: list[SourceFile] = []
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=MAX_FILES)
    except Exception as exc:  # noqa: BLE001 - a malformed body is the sender's problem, never a 500
        if isinstance(exc, HTTPException) and exc.status_code == 413:
            raise  # the upload limit, reached while the body streamed in: the error page says so
        form = None
        errors.append({"location": ["files"], "message": "The form could not be read. Choose the files again and send them."})
    if form is not None:
        values = {name: str(form.get(name) or "").strip() for name in ("provider", "period", "mode")}
        values["mode"] = values["mode"] or MODES[0]
        allowed = await run_in_threadpool(lambda: {p.code for p in visible_providers(request, session)})
        if not values["provider"]:
            errors.append({"location": ["provider"], "message": "Choose the provider the records are from."})
        elif values["provider"] not in allowed:
            # Another provider's code gets the same answer as a code that does not exist.
            errors.append({"location": ["provider"], "message": f"There is no provider {values['provider']!r}. Choose one from the list."})
        if values["period"] and not _is_period(values["period"]):
            errors.append({"location": ["period"], "message": "Write the month as YYYY-MM, for example 2017-08."})
        if values["mode"] not in MODES:
            errors.append({"location": ["mode"], "message": "Choose whether to store the rows that pass or nothing."})
        for item in form.getlist("files"):
            if isinstance(item, UploadFile) and item.filename:
                files.append(SourceFile(item.filename, await item.read()))
        if not files:
            errors.append({"location": ["files"], "message": "Choose at least one file to send."})

    if not errors:
        args = dict(provider=values["provider"], period=values["period"] or None, mode=values["mode"], submitter=principal_of(request).name, channel="web")
        try:
            if sum(len(f.data) for f in files) > settings.queue_threshold_bytes:
                submission_id = await run_in_threadpool(lambda: enqueue(request.app.state.engine, files=files, **args))
            else:
                receipt = await in_submission_slot(request, lambda: submit(request.app.state.engine, files=files, **args))
                submission_id = receipt.submission_id
        except UnknownProvider:
            errors.append({"location": ["provider"], "message": f"There is no provider {values['provider']!r}. Choose one from the list."})
        else:
            return RedirectResponse(page_path(request, f"/submissions/{submission_id}"), status_code=303)

    context = await run_in_threadpool(lambda: upload_context(request, session, values=values, errors=errors, message="The files were not sent"))
    return render(request, "upload.html", context, status_code=422)


def _is_period(value: str) -> bool:
    return re.fullmatch(PERIOD_PATTERN, value) is not None


# --- A submission's page -------------------------------------------------------------------


@dataclass(frozen=True)
class FindingFilters:
    """The findings a page shows: any of severity, file and rule (None: all)."""

    severity: str | None = None
    file: str | None = None
    rule: str | None = None

    @property
    def active(self) -> bool:
        return any((self.severity, self.file, self.rule))

    def matches(self, finding: dict[str, Any]) -> bool:
        return all(wanted is None or finding[name] == wanted for name, wanted in self.items())

    def items(self) -> list[tuple[str, str | None]]:
        return [("severity", self.severity), ("file", self.file), ("rule", self.rule)]

    def where(self, query: Select) -> Select:
        for name, wanted in self.items():
            if wanted is not None:
                query = query.where(getattr(SubmissionFinding, name) == wanted)
        return query


def findings_context(session: Session, submission_id: str, filters: FindingFilters) -> dict[str, Any]:
    """The findings table: its rows, the filter options and how many are shown of how many."""
    of_submission = SubmissionFinding.submission_id == submission_id
    total = session.scalar(select(func.count()).where(of_submission)) or 0
    by_severity = dict(session.execute(select(SubmissionFinding.severity, func.count()).where(of_submission).group_by(SubmissionFinding.severity)).all())
    files = list(session.scalars(select(SubmissionFinding.file).where(of_submission).distinct().order_by(SubmissionFinding.file)))
    rules = [
        (code, RULES[code].title if code in RULES else code, count)
        for code, count in session.execute(
            select(SubmissionFinding.rule, func.count()).where(of_submission).group_by(SubmissionFinding.rule).order_by(SubmissionFinding.rule)
        )
    ]
    ordered = select(*(getattr(SubmissionFinding, c) for c in FINDING_COLUMNS)).where(of_submission).order_by(SubmissionFinding.id)
    complete = total <= FINDINGS_ON_PAGE
    if complete:
        # Every finding is on the page; the ones outside the filters are hidden, so the
        # browser can filter without asking the server again.
        rows = [dict(zip(FINDING_COLUMNS, row)) for row in session.execute(ordered)]
        for row in rows:
            row["shown"] = filters.matches(row)
        shown = sum(row["shown"] for row in rows)
    else:
        rows = [dict(zip(FINDING_COLUMNS, row), shown=True) for row in session.execute(filters.where(ordered).limit(FINDINGS_ON_PAGE))]
        shown = session.scalar(filters.where(select(func.count()).where(of_submission))) or 0
    return {
        "findings": rows,
        "findings_total": total,
        "findings_shown": shown,
        "findings_complete": complete,
        "findings_limit": FINDINGS_ON_PAGE,
        "errors_total": by_severity.get("error", 0),
        "warnings_total": by_severity.get("warning", 0),
        "finding_files": files,
        # The sheet column only for workbooks: a CSV has no sheets.
        "has_sheets": any(row["sheet"] for row in rows),
        "finding_rules": rules,
        "filters": filters,
    }


@router.get("/submissions/{submission_id}", response_class=HTMLResponse, name="submission_page")
def submission_page(
    submission_id: str,
    request: Request,
    session: SessionDep,
    severity: Annotated[str | None, Query(max_length=20, pattern=NO_CONTROL)] = None,
    file: Annotated[str | None, Query(max_length=255, pattern=NO_CONTROL)] = None,
    rule: Annotated[str | None, Query(max_length=40, pattern=NO_CONTROL)] = None,
) -> HTMLResponse:
    submission = submission_for(request, session, submission_id)
    provider = session.get(Provider, submission.provider_id)
    job = progress(request.app.state.engine, submission.id) if submission.status in ACTIVE_STATUSES else None
    status = display_status(submission.status, job)
    files = list(session.scalars(select(SubmissionFile).where(SubmissionFile.submission_id == submission.id).order_by(SubmissionFile.id)))
    # Rejected rows to download, per file and, for a workbook, per sheet (one record type per CSV).
    to_fix: dict[str, list[dict[str, Any]]] = {}
    for name, sheet, count in session.execute(
        select(QuarantinedRow.file, QuarantinedRow.sheet, func.count())
        .where(QuarantinedRow.submission_id == submission.id)
        .group_by(QuarantinedRow.file, QuarantinedRow.sheet)
        .order_by(QuarantinedRow.file, QuarantinedRow.sheet)
    ):
        query = urlencode({"file": name, **({"sheet": sheet} if sheet else {})})
        url = page_path(request, f"/api/v1/submissions/{submission.id}/rejected") + "?" + query
        to_fix.setdefault(name, []).append({"sheet": sheet, "rows": count, "url": url})
    filters = FindingFilters(severity=severity or None, file=file or None, rule=rule or None)
    label, meaning = STATUS_TEXT.get(status, (status.capitalize(), ""))
    context = {
        "submission": submission,
        "provider": provider,
        "period_label": period_label(submission.period),
        "status": status,
        "status_label": label,
        "status_meaning": meaning,
        "active": status in ACTIVE_STATUSES,
        "job": job,
        "mode_label": dict((value, label) for value, label, _ in MODE_CHOICES).get(submission.mode, submission.mode),
        "counts": [
            ("new", "New", submission.n_new),
            ("changed", "Changed", submission.n_changed),
            ("unchanged", "Unchanged", submission.n_unchanged),
            ("warned", "Stored with warnings", submission.n_warned),
            ("rejected", "Rejected", submission.n_rejected),
        ],
        "files": [
            {
                "name": f.file_name,
                "sha256": f.sha256,
                "size": file_size(f.size_bytes),
                "rejected": sum(part["rows"] for part in to_fix.get(f.file_name, [])),
                "to_fix": to_fix.get(f.file_name, []),
            }
            for f in files
        ],
        "api_url": page_path(request, f"/api/v1/submissions/{submission.id}"),
        **findings_context(session, submission.id, filters),
    }
    return render(request, "submission.html", context)


@router.get("/submissions/{submission_id}/findings.csv", name="findings_csv")
def findings_csv(submission_id: str, request: Request, session: SessionDep) -> Response:
    """Every finding of a submission as CSV: the API's `Accept: text/csv` answer, as a plain link."""
    submission = submission_for(request, session, submission_id)
    query = select(*(getattr(SubmissionFinding, c) for c in FINDING_COLUMNS)).where(SubmissionFinding.submission_id == submission.id)
    return csv_download(FINDING_COLUMNS, session.execute(query.order_by(SubmissionFinding.id)), f"findings-{submission.id}.csv")


# --- The list of submissions ---------------------------------------------------------------


@router.get("/submissions", response_class=HTMLResponse, name="submissions_page")
def submissions_page(request: Request, session: SessionDep, page: Annotated[int, Query(ge=1, le=1_000_000)] = 1) -> HTMLResponse:
    visible = visible_submissions(request)
    total = session.scalar(select(func.count()).select_from(visible.subquery())) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    rows = session.execute(
        visible.add_columns(Provider.code, Provider.name)
        .join(Provider, Provider.id == Submission.provider_id)
        .order_by(Submission.received_at.desc(), Submission.id.desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    submissions = [
        {
            "id": s.id,
            "provider_code": code,
            "provider_name": name,
            "period": s.period,
            "received_at": s.received_at,
            "status": s.status,
            "status_label": STATUS_TEXT.get(s.status, (s.status.capitalize(), ""))[0],
            "counts": (s.n_new, s.n_changed, s.n_unchanged, s.n_warned, s.n_rejected),
        }
        for s, code, name in rows
    ]
    context = {
        "submissions": submissions,
        "total": total,
        "page": page,
        "pages": pages,
        "first_number": (page - 1) * PAGE_SIZE + 1,
        "last_number": (page - 1) * PAGE_SIZE + len(submissions),
    }
    return render(request, "submissions.html", context)
