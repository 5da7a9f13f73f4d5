"""`/api/v1/submissions`: send records (files or a JSON batch), read receipts and findings.

One endpoint takes both forms a provider's system may use: multipart files (CSV or the Excel
workbook) or a JSON body of record lists. Small submissions are processed in the request
(201 with the receipt); large ones are queued for the worker (202; poll the receipt, whose
`progress` says how far it has got). Malformed input is a 422 in the shared error shape, never a 500.

Every caller is signed in (a session or a Bearer token) and sees only what
`cldx.web.visibility` allows: a provider's own submissions (another provider's id is a 404,
as for one that does not exist), and sending for its own provider only (another provider's
code is answered like an unknown one). The submitter recorded is the principal's name.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.datastructures import UploadFile

from cldx.ingest.queue import enqueue, progress
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import MODES, UnknownProvider, quarantined_cells, receipt_for, submit
from cldx.access import audit
from cldx.access.roles import SUBMIT
from cldx.store import write_transaction
from cldx.store.models import Provider, QuarantinedRow, SubmissionFinding
from cldx.web.auth import PrincipalDep, providers_with
from cldx.web.deps import SessionDep, SettingsDep
from cldx.web.export import csv_download, neutralise
from cldx.web.limits import in_submission_slot
from cldx.web.schemas import ErrorPublic
from cldx.web.visibility import NO_SUBMIT, submission_for

router = APIRouter(prefix="/submissions", tags=["submissions"])

FINDING_COLUMNS = ("file", "sheet", "row", "field", "value", "rule", "severity", "message", "fix")
# Stored file and sheet names hold no control characters (see SourceFile), so a query naming one matches nothing.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
# Examples in the API description, for readers and for tests that call the API from it
# (tests/web/test_fuzz_api.py stores a submission under this id).
EXAMPLE_SUBMISSION_ID = "5b7f0c3e-8d2a-4f61-9c4e-2a6d1b9e0f17"
EXAMPLE_BATCH = {
    "provider": "P0001",
    "period": "2017-03",
    "records": {"clients": [{"client_ref": "C-1001", "family_name": "Tane", "given_names": "Aroha", "date_of_birth": "1986-04-12",
                             "gender": "2", "primary_ethnicity": "21", "area": "153200", "notified_of_sharing_on": "2017-03-02"}]},
}
SubmissionId = Annotated[str, Path(description="The submission's id, from its receipt", examples=[EXAMPLE_SUBMISSION_ID])]


class FindingPublic(BaseModel):
    file: str
    sheet: str | None
    row: int | None = Field(description="The spreadsheet row the provider sees (header = 1); for JSON, the item's position.")
    field: str | None
    value: str | None = Field(description="The value as sent; names and dates of birth are masked.")
    rule: str
    severity: str
    message: str
    fix: str


class ProgressPublic(BaseModel):
    status: str
    step: str
    done: int
    total: int
    error: str | None


class ReceiptPublic(BaseModel):
    submission_id: str
    provider: str
    period: str
    status: str = Field(description="queued, processing, accepted, partial, refused, unreadable or failed")
    mode: str
    received_at: str
    submitter: str
    files: list[dict[str, Any]]
    counts: dict[str, int] = Field(description="new, changed, unchanged, warned, rejected")
    findings: list[FindingPublic]
    progress: ProgressPublic | None = None


class SubmissionJSON(BaseModel):
    """A JSON batch from a provider's case system."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_BATCH]})

    provider: str
    period: str | None = Field(None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    mode: str = Field("partial", description="partial: store the valid records; all-or-nothing: store nothing if anything fails.")
    records: dict[str, list[Any]] = Field(description='Record lists by type: {"clients": [{...}], "engagements": [...]}.')


REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["provider", "files"],
                    "properties": {
                        "provider": {"type": "string"},
                        "period": {"type": "string", "pattern": r"^\d{4}-(0[1-9]|1[0-2])$"},
                        "mode": {"type": "string", "enum": list(MODES)},
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    },
                }
            },
            "application/json": {"schema": SubmissionJSON.model_json_schema()},
        },
    }
}


def too_many_records_message(limit: int, count: int) -> str:
    return (f"A JSON batch may hold at most {limit:,} records and this one holds {count:,}. Send it in smaller batches, "
            "or send the records as files (CSV or the Excel workbook): large files are queued for the background worker.")


def _check(provider: Any, period: Any, mode: Any) -> tuple[str, str | None, str]:
    if not isinstance(provider, str) or not provider.strip():
        raise HTTPException(422, detail=[{"location": ["body", "provider"], "message": "provider is required"}])
    if not provider.isprintable():  # NUL and lone surrogates cannot even be looked up
        raise HTTPException(422, detail=[{"location": ["body", "provider"], "message": "provider must be a provider code"}])
    if period not in (None, "") and (not isinstance(period, str) or not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period)):
        raise HTTPException(422, detail=[{"location": ["body", "period"], "message": "period must be YYYY-MM"}])
    mode = mode or "partial"
    if mode not in MODES:
        raise HTTPException(422, detail=[{"location": ["body", "mode"], "message": f"mode must be one of {', '.join(MODES)}"}])
    return provider.strip(), period or None, mode


@router.post("", status_code=201, response_model=ReceiptPublic, openapi_extra=REQUEST_BODY, summary="Send a submission",
             responses={202: {"model": ReceiptPublic, "description": "Queued for the background worker"},
                        415: {"model": ErrorPublic, "description": "Neither multipart/form-data nor application/json"}})
async def create_submission(request: Request, settings: SettingsDep, principal: PrincipalDep, session: SessionDep) -> Response:
    """Validate and store records sent as files (multipart) or as a JSON batch, for a provider the caller sends for."""
    engine = request.app.state.engine
    may_send_for = providers_with(principal, SUBMIT)
    if not may_send_for:
        raise HTTPException(403, detail=NO_SUBMIT)
    content_type = request.headers.get("content-type", "")
    files: list[SourceFile] = []
    records_json = None
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=50, max_fields=50)
        except Exception as exc:  # noqa: BLE001 - a malformed multipart body is the client's error
            if isinstance(exc, HTTPException) and exc.status_code == 413:
                raise  # the upload limit, reached while the body streamed in
            raise HTTPException(422, detail=[{"location": ["body"], "message": "the multipart body cannot be read"}]) from None
        provider, period, mode = _check(form.get("provider"), form.get("period"), form.get("mode"))
        for item in form.getlist("files"):
            if not isinstance(item, UploadFile):
                raise HTTPException(422, detail=[{"location": ["body", "files"], "message": "files must be file uploads"}])
            files.append(SourceFile(item.filename or "upload.csv", await item.read()))
        if not files:
            raise HTTPException(422, detail=[{"location": ["body", "files"], "message": "send at least one file"}])
    elif content_type.startswith("application/json"):
        try:
            body = json.loads(await request.body())
        except (ValueError, RecursionError):  # ValueError: bad JSON or UTF-8, or an integer of over 4,300 digits
            raise HTTPException(422, detail=[{"location": ["body"], "message": "the body is not valid JSON"}]) from None
        if not isinstance(body, dict):
            raise HTTPException(422, detail=[{"location": ["body"], "message": "the body must be a JSON object"}])
        provider, period, mode = _check(body.get("provider"), body.get("period"), body.get("mode"))
        records_json = body.get("records")
        if not isinstance(records_json, dict):
            raise HTTPException(422, detail=[{"location": ["body", "records"], "message": "records must be an object of record lists"}])
        # A batch is processed in the request (files over the queue threshold go to the worker),
        # so its size in records is capped as well as its size in bytes.
        count = sum(len(items) for items in records_json.values() if isinstance(items, list))
        if count > settings.max_batch_records:
            raise HTTPException(413, detail=too_many_records_message(settings.max_batch_records, count))
    else:
        raise HTTPException(415, detail="Send multipart/form-data files or an application/json batch")

    allowed = await run_in_threadpool(lambda: set(session.scalars(select(Provider.code).where(Provider.id.in_(may_send_for)))))
    if provider not in allowed:  # another provider's code is answered like an unknown one
        raise HTTPException(422, detail=[{"location": ["body", "provider"], "message": f"no provider {provider!r}"}])
    # Done with the request's own session: its connection goes back to the pool before submit() or
    # enqueue() take theirs. Held, every submission in flight would need two connections at once,
    # and more of them than the pool holds would wait on each other until its timeout (500s under load).
    await run_in_threadpool(session.close)
    submitter = principal.name
    try:
        if files and sum(len(f.data) for f in files) > settings.queue_threshold_bytes:
            submission_id = await run_in_threadpool(enqueue, engine, provider=provider, files=files, period=period, mode=mode,
                                                    submitter=submitter, channel="api")
            return JSONResponse(_receipt_body(request, submission_id), status_code=202, headers={"Location": f"{request.url.path}/{submission_id}"})
        receipt = await in_submission_slot(request, lambda: submit(engine, provider=provider, files=files, records_json=records_json, period=period,
                                                                    mode=mode, submitter=submitter, channel="api"))
    except UnknownProvider:
        raise HTTPException(422, detail=[{"location": ["body", "provider"], "message": f"no provider {provider!r}"}]) from None
    return JSONResponse(receipt.to_dict(), status_code=201, headers={"Location": f"{request.url.path}/{receipt.submission_id}"})


def _receipt_body(request: Request, submission_id: str) -> dict[str, Any]:
    engine = request.app.state.engine
    from cldx.store import read_transaction

    with read_transaction(engine) as session:
        receipt = None if "\x00" in submission_id else receipt_for(session, submission_id)  # PostgreSQL cannot even compare NUL
    if receipt is None:
        raise HTTPException(404, detail="No such submission")
    body = receipt.to_dict()
    state = progress(engine, submission_id)
    body["progress"] = None if state is None else {"status": state.status, "step": state.step, "done": state.done, "total": state.total, "error": state.error}
    return body


@router.get("/{submission_id}", response_model=ReceiptPublic, summary="A submission's receipt")
def read_submission(submission_id: SubmissionId, request: Request, session: SessionDep) -> JSONResponse:
    """The receipt: status, counts, files with checksums, findings, and the worker's progress when queued."""
    submission_for(request, session, submission_id)
    return JSONResponse(_receipt_body(request, submission_id))


@router.get(
    "/{submission_id}/findings",
    response_model=list[FindingPublic],
    summary="A submission's findings (JSON, or CSV with Accept: text/csv)",
    responses={200: {"content": {"text/csv": {}}}},
)
def read_findings(
    submission_id: SubmissionId,
    request: Request,
    session: SessionDep,
    severity: Annotated[str | None, Query(pattern="^(error|warning)$")] = None,
    file: Annotated[str | None, Query(max_length=255, pattern=NO_CONTROL)] = None,
) -> Response:
    submission_for(request, session, submission_id)
    query = select(SubmissionFinding).where(SubmissionFinding.submission_id == submission_id).order_by(SubmissionFinding.id)
    if severity:
        query = query.where(SubmissionFinding.severity == severity)
    if file:
        query = query.where(SubmissionFinding.file == file)
    rows = [{c: getattr(f, c) for c in FINDING_COLUMNS} for f in session.scalars(query)]
    if "text/csv" in request.headers.get("accept", ""):
        return csv_download(FINDING_COLUMNS, ([r[c] for c in FINDING_COLUMNS] for r in rows), f"findings-{submission_id}.csv")
    return JSONResponse(rows)


@router.get("/{submission_id}/rejected", summary="The rejected rows of one file, with an errors column, ready to fix and send again",
            responses={200: {"content": {"text/csv": {}}}})
def read_rejected(submission_id: SubmissionId, request: Request, session: SessionDep, principal: PrincipalDep,
                  file: Annotated[str, Query(max_length=255, pattern=NO_CONTROL, examples=["clients.csv"])],
                  sheet: Annotated[str | None, Query(max_length=100, pattern=NO_CONTROL, description="For a workbook: one sheet (record type) per CSV.")] = None) -> Response:
    """The provider's own rejected rows exactly as sent, plus `cldx_errors`: fix them in Excel and send the file again."""
    submission = submission_for(request, session, submission_id)
    rows_query = select(QuarantinedRow).where(QuarantinedRow.submission_id == submission_id, QuarantinedRow.file == file)
    findings_query = select(SubmissionFinding).where(SubmissionFinding.submission_id == submission_id, SubmissionFinding.file == file,
                                                     SubmissionFinding.severity == "error")
    if sheet is not None:
        rows_query = rows_query.where(QuarantinedRow.sheet == sheet)
        findings_query = findings_query.where(SubmissionFinding.sheet == sheet)
    rows = list(session.scalars(rows_query.order_by(QuarantinedRow.sheet, QuarantinedRow.row)))
    if rows:
        # Rejected rows are opened from their seal and may hold names: an identity read, audited
        # (in its own short transaction: the request's session only reads).
        with write_transaction(request.app.state.engine) as audit_session:
            audit.record(audit_session, actor=principal.name[:100], action="identity-read", target=submission_id,
                         provider_id=submission.provider_id, purpose="the provider's own rejected rows, to fix and send again",
                         detail={"file": file, "sheet": sheet, "rows": len(rows)})
    notes: dict[tuple[str | None, int], list[str]] = {}  # by sheet and row: a workbook's sheets share row numbers
    for f in session.scalars(findings_query):
        notes.setdefault((f.sheet, f.row), []).append(f"{f.field or 'row'}: {f.message} {f.fix}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    header: list[str] = []
    for row in rows:
        cells = quarantined_cells(request.app.state.engine, row.cells)
        if not header:
            header = list(cells)
            writer.writerow([*header, "cldx_errors"])
        writer.writerow([*(neutralise(cells.get(c)) for c in header), neutralise(" | ".join(notes.get((row.sheet, row.row), [])))])
    stem = (file.rsplit(".", 1)[0] or "rejected") + (f"-{sheet}" if sheet and re.fullmatch(r"[\w-]+", sheet) else "")
    # A header holds Latin-1 only, and a quote or line break would end it: an ASCII name, and the real one encoded (RFC 6266).
    plain = re.sub(r"[^A-Za-z0-9._ -]", "_", stem)
    disposition = f'attachment; filename="{plain}-to-fix.csv"'
    if plain != stem:
        disposition += f"; filename*=UTF-8''{quote(stem + '-to-fix.csv', safe='')}"
    return Response("\ufeff" + buffer.getvalue(), media_type="text/csv; charset=utf-8", headers={"Content-Disposition": disposition})
