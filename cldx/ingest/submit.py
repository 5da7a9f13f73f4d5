"""Submissions: read, validate and store a provider's records for a period, and give a receipt.

Every channel (the CLI, the API's files and JSON, the upload page, the queue worker) calls
`submit()`. Everything a submission stores (its receipt, its records, its quarantined rows and
its findings) is written in one transaction: a crash leaves all of it or none.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from cldx.access import audit  # the audit trail: one entry per stored submission
from cldx.standard import STANDARD_VERSION
from cldx.standard.records import IDENTIFIED_FORM
from cldx.store import lock_for_writing, read_transaction, write_transaction
from cldx.identity.linkage import with_person_keys
from cldx.identity.vault import Vault, vault_of
from cldx.store.scope import set_scope
from cldx.store.bulk import IDENTITY_VALUES, insert_frame, read_by_keys, read_frame, upsert_records, value_columns
from cldx.store.models import (
    IDENTITY_MODELS,
    Assessment,
    Client,
    ClientIdentity,
    DependantIdentity,
    Engagement,
    Job,
    JobFile,
    Provider,
    QuarantinedRow,
    ServiceLine,
    Submission,
    SubmissionFile,
    SubmissionFinding,
)

from .findings import RULES, Finding
from .sources import ParsedSource, RawTable, SourceFile, parse_records_json, parse_source
from .validate import ERROR_RULES, FILE, FINDING_SCHEMA, ORDER, ROW, SHEET, WARNED, Stored, Validated, validate

NZ = ZoneInfo("Pacific/Auckland")
MODES = ("partial", "all-or-nothing")


class UnknownProvider(LookupError):
    """No provider with that code: nothing can be read for it."""


class JobLost(RuntimeError):
    """The queue job being completed is no longer held by the worker completing it: nothing is stored.

    Another worker took it over (this one was thought dead) and stores it instead.
    """


@dataclass
class Receipt:
    """What the provider gets back; `to_dict()` is the shape DESIGN.md promises."""

    submission_id: str
    provider: str
    period: str
    status: str
    mode: str
    received_at: datetime
    submitter: str
    files: list[dict[str, Any]]
    counts: dict[str, int]
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(f["severity"] == "error" for f in self.findings)

    @property
    def exit_code(self) -> int:
        """0: all accepted; 1: some rejected or strict mode refused; 2: nothing could be read."""
        if self.status == "unreadable":
            return 2
        return 1 if self.has_errors else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission_id,
            "provider": self.provider,
            "period": self.period,
            "status": self.status,
            "mode": self.mode,
            "received_at": self.received_at.isoformat(),
            "submitter": self.submitter,
            "files": self.files,
            "counts": self.counts,
            "findings": self.findings,
        }


def current_period(now: datetime) -> str:
    return now.astimezone(NZ).strftime("%Y-%m")


def provider_id_for(session: Session, code: str) -> int:
    found = session.scalar(select(Provider.id).where(Provider.code == code))
    if found is None:
        raise UnknownProvider(f"no provider with code {code!r}")
    return found


@dataclass
class StoredForProvider:
    """What validation and upserting need of the provider's stored records, identity opened."""

    stored: Stored
    identity: dict[str, pl.DataFrame]  # record type -> key columns + plain identity values
    # record type -> the stored rows (withdrawn ones too) of the keys named, as the upsert reads them
    # (`keep_rows`); only when read in the transaction that stores.
    rows: dict[str, pl.DataFrame] = field(default_factory=dict)


@dataclass
class _Checked:
    """A submission validated against the store, or refused for identity sent by a provider that sends none."""

    identity_sent: pl.DataFrame | None
    known: StoredForProvider | None
    validated: Validated | None


def _open_identity(connection, vault: Vault, model, key: str, provider_id: int, only: list[str] | None = None) -> pl.DataFrame:
    table = model.__table__
    if only is None:
        sealed = read_frame(connection, table, [key, *IDENTITY_VALUES], table.c.provider_id == provider_id)
    else:
        sealed = read_by_keys(connection, table, [key, *IDENTITY_VALUES], provider_id, pl.Series(key, only, dtype=pl.String))
    return vault.open_frame(sealed, table.name, IDENTITY_VALUES, dates=("date_of_birth",))


def sent_keys(tables: list[RawTable]) -> dict[str, list[str]]:
    """The keys of the client and dependant records sent: the only ones whose stored identity is opened.

    Stored identity is only ever joined to the records sent, by key (validation's ref-reused check,
    and the upsert comparing names and dates of birth), and key values reach both as sent (text,
    stripped). Opening all of it instead made every submission slower the more the provider had
    sent before: one decryption per stored name and date of birth, each time.
    """
    sent: dict[str, set[str]] = {"client": set(), "dependant": set()}
    for table in tables:
        name, key = table.record_type.name, table.record_type.key[0]
        if name in sent and key in table.frame.columns:
            sent[name].update(table.frame[key].drop_nulls().to_list())
    return {name: sorted(keys) for name, keys in sent.items()}


def referenced_keys(tables: list[RawTable]) -> dict[str, list[str]]:
    """The client and engagement refs named anywhere in the records sent (as keys or references).

    Validation looks stored records up only by these: a reference to a client or engagement, an
    engagement's client's birth month (the age check), an assessment's stored pre assessment. So
    these are the only stored rows it needs, and a provider's hundredth batch reads what its first did.
    """
    named: dict[str, set[str]] = {"client_ref": set(), "engagement_ref": set()}
    for table in tables:
        for column, refs in named.items():
            if column in table.frame.columns:
                refs.update(table.frame[column].drop_nulls().to_list())
    return {"client": sorted(named["client_ref"]), "engagement": sorted(named["engagement_ref"])}


def load_stored(session: Session, provider_id: int, vault: Vault, sent: dict[str, list[str]] | None = None,
                referenced: dict[str, list[str]] | None = None, *, keep_rows: bool = False) -> StoredForProvider:
    """The provider's stored records, as the validator needs them (withdrawn records excluded).

    With `sent` (from `sent_keys`), stored identity is opened for those clients and dependants only;
    with `referenced` (from `referenced_keys`), only the clients, engagements and pre assessments
    those refs name are read. Without them, everything the provider holds. With `keep_rows` (and
    `referenced`), the clients' and engagements' whole rows are read and kept for the upsert."""
    connection = session.connection()
    lines = {code: (lo, hi) for code, lo, hi in session.execute(select(ServiceLine.code, ServiceLine.min_client_age, ServiceLine.max_client_age))}
    live = lambda model: (model.provider_id == provider_id, model.withdrawn_at.is_(None))  # noqa: E731
    rows: dict[str, pl.DataFrame] = {}

    def read(model, columns: list[str], key: str, *where) -> pl.DataFrame:
        """The live rows of `model` whose `key` (client_ref or engagement_ref) is referenced."""
        if referenced is None:
            return read_frame(connection, model.__table__, columns, *live(model), *where)
        keys = pl.Series(key, referenced[key.removesuffix("_ref")], dtype=pl.String)
        record_type = model.__tablename__
        if keep_rows and record_type in ("client", "engagement"):  # keyed by the ref itself: the upsert's rows
            rows[record_type] = read_by_keys(connection, model.__table__, ["id", *value_columns(record_type), "withdrawn_at"], provider_id, keys)
            return rows[record_type].lazy().filter(pl.col("withdrawn_at").is_null()).select(columns).collect(engine="in-memory")
        return read_by_keys(connection, model.__table__, columns, provider_id, keys, model.withdrawn_at.is_(None), *where)

    clients = read(Client, ["client_ref", "birth_year_month", "identity_consent"], "client_ref")
    client_identity = _open_identity(connection, vault, ClientIdentity, "client_ref", provider_id, None if sent is None else sent["client"])
    dependant_identity = _open_identity(connection, vault, DependantIdentity, "dependant_ref", provider_id,
                                        None if sent is None else sent["dependant"])
    engagements = read(Engagement, ["engagement_ref"], "engagement_ref")
    pre = read(Assessment, ["engagement_ref", "instrument", "domain", "assessed_on"], "engagement_ref", Assessment.phase == "pre")
    stored = Stored(clients, client_identity.select("client_ref", "family_name", "date_of_birth"), engagements, pre, lines)
    return StoredForProvider(stored, {"client": client_identity, "dependant": dependant_identity}, rows)


def _duplicate_file(source: SourceFile) -> ParsedSource:
    """Findings point at files by name, so a name must mean one file: a second one is not read."""
    return ParsedSource(findings=[Finding(source.name, None, None, None, "duplicate-file",
                                          f"Two files named {source.name} were sent; only the first was read.",
                                          "Send one file per record type, or combine the rows into one file.")])


def _provider_version(session: Session, provider_id: int) -> tuple:
    """Changes whenever a submission for the provider is stored."""
    return tuple(session.execute(select(func.count(Submission.id), func.max(Submission.finished_at)).where(Submission.provider_id == provider_id)).one())


def _file_findings(parsed: list[ParsedSource]) -> pl.DataFrame:
    rows = [f for p in parsed for f in p.findings]
    if not rows:
        return pl.DataFrame(schema=FINDING_SCHEMA)
    return pl.DataFrame(
        [(f.file, f.sheet, f.row, f.field, f.value, f.rule, f.message, f.fix) for f in rows], schema=FINDING_SCHEMA, orient="row"
    )


def _identity_sent(tables: list[RawTable], provider: str) -> pl.DataFrame | None:
    """A finding per file holding names or dates of birth, for a provider set to send none."""
    rows = []
    for table in tables:
        columns = [c for c in IDENTIFIED_FORM if c in table.frame.columns]
        if not columns:
            continue
        holding = table.frame.filter(pl.any_horizontal([pl.col(c).fill_null("") != "" for c in columns])).height
        if holding:
            rows.append((table.file, table.sheet, None, ", ".join(columns), None, "identity-not-allowed",
                         f"{holding:,} row(s) hold a name or date of birth, but {provider} is set to send no identity. "
                         "Nothing from this submission was kept.",
                         "De-identify the files first (cldx deidentify FILE... --out DIR, or choose them on the upload page, "
                         "which removes names in your browser) and send the de-identified files."))
    return pl.DataFrame(rows, schema=FINDING_SCHEMA, orient="row") if rows else None


def _with_severity(findings: pl.DataFrame) -> pl.DataFrame:
    return findings.with_columns(pl.col("rule").replace_strict({c: str(r.severity) for c, r in RULES.items()}).alias("severity"))


def submit(
    engine: Engine,
    *,
    provider: str,
    files: list[SourceFile] | None = None,
    records_json: Any = None,
    period: str | None = None,
    mode: str = "partial",
    submitter: str,
    channel: str,
    received_at: datetime | None = None,
    submission_id: str | None = None,
    finish_job: int | None = None,
    job_holder: str | None = None,
) -> Receipt:
    """Validate and store a submission; raise UnknownProvider before anything is read.

    `submission_id` names a queued submission to complete (its receipt already exists);
    `finish_job` is the queue job to mark done in the same transaction, so a crash leaves
    the job to be retried and never a half-stored submission; with `job_holder`, only while
    that worker still holds the job's lock (else JobLost, and nothing is stored).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    received_at = received_at or datetime.now(timezone.utc)
    period = period or current_period(received_at)
    files = files or []

    first_of_name = {f.name: i for i, f in reversed(list(enumerate(files)))}
    parsed = [parse_source(f) if first_of_name[f.name] == i else _duplicate_file(f) for i, f in enumerate(files)]
    if records_json is not None:
        parsed.append(parse_records_json("request.json", records_json))
    tables: list[RawTable] = [t for p in parsed for t in p.tables]
    prior = _file_findings(parsed)
    file_list = [{"name": f.name, "sha256": hashlib.sha256(f.data).hexdigest(), "size_bytes": len(f.data)} for f in files]

    vault = vault_of(engine)
    wanted = sent_keys(tables), referenced_keys(tables)  # the stored records validation and the upsert can meet
    today = received_at.astimezone(NZ).date()

    def check(session: Session, provider_id: int, keep_rows: bool) -> _Checked:
        set_scope(session.connection(), provider_id=provider_id)  # the database keeps it to this provider too
        deidentified = not session.scalar(select(Provider.sends_identity).where(Provider.id == provider_id))
        # Names from a provider set to send no identity: refuse the lot and keep none of it.
        identity_sent = _identity_sent(tables, provider) if deidentified else None
        if identity_sent is not None:
            return _Checked(identity_sent, None, None)
        known = load_stored(session, provider_id, vault, *wanted, keep_rows=keep_rows)
        return _Checked(None, known, validate(tables, known.stored, today=today, prior=prior, deidentified=deidentified))

    with ExitStack() as stack:
        if engine.dialect.name == "postgresql":
            # One transaction under the provider's own lock: other providers' submissions go on in
            # parallel, and the stored rows read to validate are still current when storing, so the
            # upsert takes them instead of reading them again.
            session = stack.enter_context(write_transaction(engine))
            provider_id = provider_id_for(session, provider)
            lock_for_writing(session.connection(), provider_id)
            checked = check(session, provider_id, keep_rows=True)
        else:
            # SQLite has one writer at a time: validate against a snapshot before taking the write
            # lock, so other submissions are stored meanwhile; validate again under the lock only if
            # the provider's records changed in between.
            with read_transaction(engine) as reading:
                provider_id = provider_id_for(reading, provider)
                version = _provider_version(reading, provider_id)
                checked = check(reading, provider_id, keep_rows=False)
            session = stack.enter_context(write_transaction(engine, lock=provider_id))
            set_scope(session.connection(), provider_id=provider_id)
            if checked.identity_sent is None and _provider_version(session, provider_id) != version:
                checked = check(session, provider_id, keep_rows=False)
        identity_sent, known, validated = checked.identity_sent, checked.known, checked.validated
        submission = session.get(Submission, submission_id) if submission_id else None
        if submission is None:
            submission = Submission(
                id=submission_id or str(uuid.uuid4()), provider_id=provider_id, period=period, received_at=received_at,
                submitter=submitter, channel=channel, status="processing", mode=mode, standard_version=STANDARD_VERSION,
            )
            session.add(submission)
        if finish_job is not None:
            held = () if job_holder is None else (Job.status == "running", Job.locked_by == job_holder)
            finished = session.connection().execute(update(Job).where(Job.id == finish_job, *held).values(
                status="done", progress_step="done", progress_done=Job.progress_total, error=None))
            if finished.rowcount != 1:
                raise JobLost(f"job {finish_job} is not held by {job_holder}")
            session.execute(delete(JobFile).where(JobFile.job_id == finish_job))
        session.add_all(SubmissionFile(submission_id=submission.id, file_name=f["name"], record_type=None, sha256=f["sha256"], size_bytes=f["size_bytes"]) for f in file_list)
        session.flush()
        connection = session.connection()

        if identity_sent is not None:
            findings = pl.concat([prior, identity_sent])
        else:
            findings = validated.findings
        has_errors = bool(findings["rule"].is_in(ERROR_RULES).any())
        counts = {"new": 0, "changed": 0, "unchanged": 0, "warned": 0,
                  "rejected": sum(f.height for f in validated.rejected.values()) if validated is not None else 0}
        if not tables:
            status = "unreadable"
        elif identity_sent is not None:
            status = "refused"  # nothing of it is stored, not even in quarantine
        elif mode == "all-or-nothing" and has_errors:
            status = "refused"  # strict: no record is stored when anything fails
        else:
            extra: list[pl.DataFrame] = []
            for name in ORDER:
                if name not in validated.accepted:
                    continue
                accepted = validated.accepted[name]
                if name == "client":
                    accepted = with_person_keys(accepted, vault)  # the SLK exists only in memory
                result = upsert_records(
                    connection, record_type=name, provider_id=provider_id, submission_id=submission.id, frame=accepted, now=received_at,
                    stored_identity=known.identity.get(name), seal_identity=_sealer(vault, name), stored_rows=known.rows.get(name),
                )
                counts["new"] += result.new
                counts["changed"] += result.changed
                counts["unchanged"] += result.unchanged
                if result.unknown_withdrawals.height:
                    # A row asking to withdraw what is not stored is warned about too (once, if warned already).
                    unknown = _unknown_withdrawal_findings(accepted, result.unknown_withdrawals)
                    extra.append(unknown)
                    counts["warned"] += pl.concat([accepted.filter(pl.col(WARNED)).select(FILE, ROW),
                                                   unknown.select(pl.col("file").alias(FILE), pl.col("row").alias(ROW))]).unique().height
                else:
                    counts["warned"] += int(accepted[WARNED].sum())
                _quarantine(connection, submission.id, name, validated.rejected.get(name), vault)
            if extra:
                findings = pl.concat([findings, *extra]).sort(["file", "row"], maintain_order=True)
            status = "partial" if counts["rejected"] or has_errors else "accepted"
        if status in ("refused", "unreadable"):
            counts["rejected"] = sum(t.frame.height for t in tables)
        if findings.height:
            # Sheets and fields can be named by the sender (JSON keys, sheet titles): cut to what the columns hold.
            findings = _with_severity(findings).with_columns(pl.col(c).str.slice(0, _width(SubmissionFinding, c)) for c in ("sheet", "field"))
            insert_frame(connection, SubmissionFinding.__table__, findings.select(
                pl.lit(submission.id).alias("submission_id"), "file", "sheet", "row", "field", "value", "rule", "severity", "message", "fix"))
        submission.status = status
        submission.n_new, submission.n_changed, submission.n_unchanged = counts["new"], counts["changed"], counts["unchanged"]
        submission.n_warned, submission.n_rejected = counts["warned"], counts["rejected"]
        submission.finished_at = datetime.now(timezone.utc)
        # Audit (cldx.access.audit): one entry per stored submission, last in the transaction
        # because it queues on the trail's lock until commit.
        audit.record(session, actor=submitter[:100], action="submission", target=submission.id, provider_id=provider_id,
                     detail={"status": status, "counts": counts, "files": [f["name"] for f in file_list],
                             "channel": channel, "period": period, "mode": mode})
        session.flush()

    return Receipt(
        submission_id=submission.id, provider=provider, period=period, status=status, mode=mode, received_at=received_at,
        submitter=submitter, files=file_list, counts=counts, findings=findings.select(*FINDING_ORDER).to_dicts() if findings.height else [],
    )


FINDING_ORDER = ("file", "sheet", "row", "field", "value", "rule", "severity", "message", "fix")


def _unknown_withdrawal_findings(accepted: pl.DataFrame, unknown: pl.DataFrame) -> pl.DataFrame:
    key = unknown.columns[2]
    rows = unknown.join(accepted.select(FILE, ROW, SHEET), on=[FILE, ROW], how="left")
    return rows.select(
        pl.col(FILE).alias("file"), pl.col(SHEET).alias("sheet"), pl.col(ROW).alias("row"), pl.lit(key).alias("field"),
        pl.col(key).cast(pl.String).alias("value"), pl.lit("withdraw-unknown").alias("rule"),
        pl.format("There is no stored record {} to withdraw (or it is already withdrawn).", pl.col(key)).alias("message"),
        pl.lit("Check the key; nothing was changed.").alias("fix"),
    )


def _width(model, column: str) -> int:
    return model.__table__.c[column].type.length


def _sealer(vault: Vault, record_type: str):
    model = IDENTITY_MODELS.get(record_type)
    if model is None:
        return None
    return lambda frame: vault.seal_frame(frame, model.__tablename__, IDENTITY_VALUES)


def _quarantine(connection, submission_id: str, record_type: str, rejected: pl.DataFrame | None, vault: Vault) -> None:
    """Keep rejected rows as sent; sealed, because a client row holds a name and date of birth."""
    if rejected is None or rejected.height == 0:
        return
    rejected = rejected.with_columns(pl.col(SHEET).str.slice(0, _width(QuarantinedRow, "sheet")))
    cells = [c for c in rejected.columns if c not in (FILE, SHEET, ROW)]
    rows = rejected.select(
        pl.lit(submission_id).alias("submission_id"),
        pl.lit(record_type).alias("record_type"),
        pl.col(FILE).alias("file"),
        pl.col(SHEET).alias("sheet"),
        pl.col(ROW).alias("row"),
        pl.struct(cells).struct.json_encode().alias("cells"),
    )
    insert_frame(connection, QuarantinedRow.__table__, vault.seal_frame(rows, QuarantinedRow.__tablename__, ("cells",)))


def quarantined_cells(engine_or_vault, sealed: str) -> dict[str, Any]:
    """A quarantined row's cells, opened (for the provider's own download of its rows)."""
    vault = engine_or_vault if isinstance(engine_or_vault, Vault) else vault_of(engine_or_vault)
    return json.loads(vault.keys.open(sealed, f"{QuarantinedRow.__tablename__}.cells"))


def receipt_for(session: Session, submission_id: str) -> Receipt | None:
    """A stored submission's receipt, findings included."""
    submission = session.get(Submission, submission_id)
    if submission is None:
        return None
    provider = session.get(Provider, submission.provider_id)
    files = [{"name": f.file_name, "sha256": f.sha256, "size_bytes": f.size_bytes}
             for f in session.scalars(select(SubmissionFile).where(SubmissionFile.submission_id == submission_id).order_by(SubmissionFile.id))]
    findings = [
        {"file": f.file, "sheet": f.sheet, "row": f.row, "field": f.field, "value": f.value, "rule": f.rule, "severity": f.severity, "message": f.message, "fix": f.fix}
        for f in session.scalars(select(SubmissionFinding).where(SubmissionFinding.submission_id == submission_id).order_by(SubmissionFinding.id))
    ]
    return Receipt(
        submission_id=submission.id, provider=provider.code if provider else "", period=submission.period, status=submission.status,
        mode=submission.mode, received_at=submission.received_at, submitter=submission.submitter, files=files,
        counts={"new": submission.n_new, "changed": submission.n_changed, "unchanged": submission.n_unchanged,
                "warned": submission.n_warned, "rejected": submission.n_rejected},
        findings=findings,
    )
