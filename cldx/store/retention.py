"""Retention: purge what is older than the retention period, identity first, crash-safe and idempotent.

A ministry may keep client-level records only as long as it needs them (`CLDX_RETENTION_YEARS`,
default 7). `apply_retention` removes what has been out of use for longer than that, as of a day.

What "older than the period" means. The cutoff is the as-of day less the period in calendar
years (29 February becomes 28 February); timestamps are compared with midnight at the start of
the cutoff day in the configured zone. Something dated on the cutoff day itself is kept.

- A client (one person's record at one provider) expires when nothing about them is dated on or
  after the cutoff: the client record was last changed (`updated_at`; sending it again unchanged
  does not count) before the cutoff, and so were each of their dependants and engagements and
  each engagement's attendance, assessments and outcomes, and every one of those engagements
  started, ended, had a session, was assessed and had an outcome measured before the cutoff. So
  an engagement that ended within the period keeps the person, and an open engagement keeps
  them if it had activity (a session, an assessment, an outcome, a change) within the period. A
  person with one old and one recent engagement is kept whole: records go only with their
  person. The same person at another provider is judged there on its own.
- With an expired client go their sealed identity (`client_identity`), their dependants and the
  dependants' identity, their engagements, and the engagements' attendance, assessments and
  outcomes.
- Record history (earlier versions of records) changed before the cutoff, whoever it belongs to,
  and any history of the records purged.
- Of submissions received before the cutoff: their quarantined (rejected) rows and their
  findings; the receipt itself (provider, period, counts, status, file names and checksums,
  who sent it) stays, because it holds nothing about a person and contract compliance is
  measured from it.
- Queue jobs that finished (done or failed) and were queued before the cutoff, with any upload
  still held for them (`job_file`, the only raw files the store keeps). Queued or running jobs
  stay.
- Never the audit trail: it is the record of what was done (retention runs included) and its
  hash chain must stay whole. It holds no names or dates of birth.

Crash safety. Each provider is purged in two transactions, each with its audit entry
(`retention-purge`, counts per table, the cutoff and the period; never an identifier of a
person) written in the same transaction as its deletes: first everything sealed that can hold a
name or a date of birth (identity rows, quarantined rows, queued uploads), then the analytic
records. A crash therefore never leaves a deletion unrecorded or a recorded deletion undone,
and what it can leave is records without identity, never identity without its records' purge
on the way: the trail is the journal. A later run first finishes any provider whose identity
step is in the trail without its records step, with that step's own cutoff, then does its own
work; selection depends only on dates, so running again purges nothing more.

The analytic layer learns that a provider's records were purged from these audit entries (see
`cldx.analysis.layer.store_versions`) and rebuilds that provider before its next answer.

The store may not import the audit trail (`cldx.access`), so the caller passes its `record`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from .db import read_transaction, write_transaction
from .models import (
    Assessment,
    Attendance,
    AuditEvent,
    Client,
    ClientIdentity,
    Dependant,
    DependantIdentity,
    Engagement,
    Job,
    JobFile,
    Outcome,
    Provider,
    QuarantinedRow,
    RecordHistory,
    Submission,
    SubmissionFinding,
)
from .scope import set_scope

AUDIT_ACTION = "retention-purge"
DEFAULT_YEARS = 7
FINISHED_JOBS = ("done", "failed")
# The tables each step purges, in the order results are shown (children before parents).
IDENTITY_TABLES = ("client_identity", "dependant_identity", "quarantined_row", "job_file")
RECORD_TABLES = ("record_history", "attendance", "assessment", "outcome", "engagement", "dependant", "client",
                 "submission_finding", "job")
TABLES = IDENTITY_TABLES + RECORD_TABLES
# Client references per statement: well under SQLite's bound-parameter limit, few round trips.
CHUNK = 500

# What the caller passes to write the trail: `cldx.access.audit.record` (or the same signature).
AuditRecorder = Callable[..., Any]
# progress(step, done, total): step is "checking", or "purging" as providers are done.
ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Cutoff:
    """The retention cutoff of one run: what is dated before `day` (or stamped before `at`) is old."""

    as_of: date
    years: int
    day: date
    at: datetime  # midnight at the start of `day` in the configured zone, in UTC


@dataclass(frozen=True)
class RetentionResult:
    """What a run purged (or, dry, would purge): rows per table, providers touched, the cutoff used.

    `resumed`: providers whose interrupted earlier run was finished first (their rows are in
    `counts` too); on a dry run, those that a real run would finish first (not counted).
    """

    cutoff: Cutoff
    dry_run: bool
    counts: dict[str, int]
    providers: tuple[int, ...] = ()
    resumed: tuple[int, ...] = ()
    run: str | None = None

    @property
    def clients(self) -> int:
        return self.counts.get("client", 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def cutoff_for(*, as_of: date, years: int, zone: str = "Pacific/Auckland") -> Cutoff:
    """The cutoff `years` calendar years before `as_of` (29 February falls back to the 28th)."""
    if years < 1:
        raise ValueError("the retention period is at least one year")
    try:
        day = as_of.replace(year=as_of.year - years)
    except ValueError:
        day = as_of.replace(year=as_of.year - years, day=28)
    return Cutoff(as_of=as_of, years=years, day=day, at=datetime.combine(day, time(0), ZoneInfo(zone)).astimezone(UTC))


# --- Which clients have expired -------------------------------------------------------------------


def _recent_child(model, dated: str, cutoff: Cutoff):
    """An engagement (of the enclosing query) has a child dated or changed on or after the cutoff."""
    return exists().where(model.provider_id == Engagement.provider_id, model.engagement_ref == Engagement.engagement_ref,
                          or_(getattr(model, dated) >= cutoff.day, model.updated_at >= cutoff.at))


def expired_clients(connection: Connection, *, provider_id: int, cutoff: Cutoff) -> list[str]:
    """The client references of a provider whose every record and date lies before the cutoff."""
    recent_dependant = exists().where(Dependant.provider_id == Client.provider_id, Dependant.client_ref == Client.client_ref,
                                      Dependant.updated_at >= cutoff.at)
    recent_engagement = exists().where(
        Engagement.provider_id == Client.provider_id, Engagement.client_ref == Client.client_ref,
        or_(Engagement.updated_at >= cutoff.at, Engagement.start_date >= cutoff.day, Engagement.end_date >= cutoff.day,
            _recent_child(Attendance, "session_date", cutoff), _recent_child(Assessment, "assessed_on", cutoff),
            _recent_child(Outcome, "measured_on", cutoff)),
    )
    query = (select(Client.client_ref)
             .where(Client.provider_id == provider_id, Client.updated_at < cutoff.at, ~recent_dependant, ~recent_engagement)
             .order_by(Client.client_ref))
    return list(connection.execute(query).scalars())


# --- What each table loses -------------------------------------------------------------------------


def _old_submissions(provider_id: int, cutoff: Cutoff):
    """The provider's submissions received before the cutoff (their receipts stay; rows and findings go)."""
    return select(Submission.id).where(Submission.provider_id == provider_id, Submission.received_at < cutoff.at)


def _old_jobs(provider_id: int, cutoff: Cutoff):
    """The provider's queue jobs that finished and were queued before the cutoff (unfinished work stays)."""
    return (select(Job.id).join(Submission, Submission.id == Job.submission_id)
            .where(Submission.provider_id == provider_id, Job.status.in_(FINISHED_JOBS), Job.created_at < cutoff.at))


def _identity_targets(provider_id: int, refs: list[str], cutoff: Cutoff) -> Iterator[tuple[str, Any, Any]]:
    """(table name, table, condition) of the identity step for these clients: their and their dependants' identity."""
    if refs:
        dependants = select(Dependant.dependant_ref).where(Dependant.provider_id == provider_id, Dependant.client_ref.in_(refs))
        yield "client_identity", ClientIdentity, (ClientIdentity.provider_id == provider_id) & ClientIdentity.client_ref.in_(refs)
        yield "dependant_identity", DependantIdentity, \
            (DependantIdentity.provider_id == provider_id) & DependantIdentity.dependant_ref.in_(dependants)


def _identity_provider_targets(provider_id: int, cutoff: Cutoff) -> Iterator[tuple[str, Any, Any]]:
    """The identity step's provider-wide part: sealed rejected rows and held uploads, which can hold names."""
    yield "quarantined_row", QuarantinedRow, QuarantinedRow.submission_id.in_(_old_submissions(provider_id, cutoff))
    yield "job_file", JobFile, JobFile.job_id.in_(_old_jobs(provider_id, cutoff))


def _record_targets(provider_id: int, refs: list[str], cutoff: Cutoff) -> Iterator[tuple[str, Any, Any]]:
    """(table name, table, condition) of the records step for these clients, children first."""
    if not refs:
        return
    engagements = select(Engagement.engagement_ref).where(Engagement.provider_id == provider_id, Engagement.client_ref.in_(refs))
    records = [
        ("attendance", Attendance, (Attendance.provider_id == provider_id) & Attendance.engagement_ref.in_(engagements)),
        ("assessment", Assessment, (Assessment.provider_id == provider_id) & Assessment.engagement_ref.in_(engagements)),
        ("outcome", Outcome, (Outcome.provider_id == provider_id) & Outcome.engagement_ref.in_(engagements)),
        ("engagement", Engagement, (Engagement.provider_id == provider_id) & Engagement.client_ref.in_(refs)),
        ("dependant", Dependant, (Dependant.provider_id == provider_id) & Dependant.client_ref.in_(refs)),
        ("client", Client, (Client.provider_id == provider_id) & Client.client_ref.in_(refs)),
    ]
    # History of these records changed on or after the cutoff (history changed before it goes
    # with the provider's old history below, so no row is counted twice).
    for name, model, condition in records:
        yield "record_history", RecordHistory, (
            (RecordHistory.record_type == name) & RecordHistory.record_id.in_(select(model.id).where(condition))
            & (RecordHistory.changed_at >= cutoff.at))
    yield from records


def _record_provider_targets(provider_id: int, cutoff: Cutoff) -> Iterator[tuple[str, Any, Any]]:
    """The records step's provider-wide part: old history, old submissions' findings, old finished jobs."""
    yield "record_history", RecordHistory, (RecordHistory.provider_id == provider_id) & (RecordHistory.changed_at < cutoff.at)
    yield "submission_finding", SubmissionFinding, SubmissionFinding.submission_id.in_(_old_submissions(provider_id, cutoff))
    yield "job", Job, Job.id.in_(_old_jobs(provider_id, cutoff))


def _chunks(refs: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(refs), CHUNK):
        yield refs[start:start + CHUNK]


def _step_targets(step: str, provider_id: int, refs: list[str], cutoff: Cutoff) -> Iterator[tuple[str, Any, Any]]:
    per_client, per_provider = ((_identity_targets, _identity_provider_targets) if step == "identity"
                                else (_record_targets, _record_provider_targets))
    for chunk in _chunks(refs):
        yield from per_client(provider_id, chunk, cutoff)
    yield from per_provider(provider_id, cutoff)


def _run_step(connection: Connection, step: str, provider_id: int, cutoff: Cutoff, *, dry_run: bool) -> dict[str, int]:
    """Delete (or, dry, count) one step's rows of one provider; rows per table."""
    refs = expired_clients(connection, provider_id=provider_id, cutoff=cutoff)
    counts = dict.fromkeys(IDENTITY_TABLES if step == "identity" else RECORD_TABLES, 0)
    for name, model, condition in _step_targets(step, provider_id, refs, cutoff):
        if dry_run:
            counts[name] += connection.execute(select(func.count()).select_from(model).where(condition)).scalar_one()
        else:
            counts[name] += connection.execute(delete(model).where(condition)).rowcount
    return counts


# --- Runs, and the trail as their journal -----------------------------------------------------------


def _detail(run: str, step: str, cutoff: Cutoff, counts: dict[str, int], **more: Any) -> dict[str, Any]:
    """An audit entry's detail: counts, cutoff and period only (never who)."""
    return {"run": run, "step": step, "as_of": cutoff.as_of.isoformat(), "cutoff": cutoff.day.isoformat(),
            "cutoff_at": cutoff.at.isoformat(), "retention_years": cutoff.years, "counts": counts, **more}


def _target(cutoff: Cutoff) -> str:
    return f"records older than {cutoff.years} years (before {cutoff.day.isoformat()})"


def unfinished_runs(session: Session) -> list[tuple[int, str, Cutoff]]:
    """(provider id, run, cutoff) of identity steps in the trail whose records step never followed."""
    started: dict[tuple[str, int], Cutoff] = {}
    finished: set[tuple[str, int]] = set()
    query = (select(AuditEvent.provider_id, AuditEvent.detail)
             .where(AuditEvent.action == AUDIT_ACTION, AuditEvent.provider_id.is_not(None)).order_by(AuditEvent.id))
    for provider_id, text in session.execute(query):
        detail = json.loads(text)
        key = (detail.get("run", ""), int(provider_id))
        if detail.get("step") == "identity":
            started[key] = Cutoff(as_of=date.fromisoformat(detail["as_of"]), years=int(detail["retention_years"]),
                                  day=date.fromisoformat(detail["cutoff"]), at=datetime.fromisoformat(detail["cutoff_at"]))
        elif detail.get("step") == "records":
            finished.add(key)
    return [(provider_id, run, cutoff) for (run, provider_id), cutoff in started.items() if (run, provider_id) not in finished]


def _purge_step(engine: Engine, step: str, provider_id: int, run: str, cutoff: Cutoff, *, actor: str,
                record: AuditRecorder, record_empty: bool = False) -> dict[str, int]:
    """One step for one provider in its own transaction, its audit entry written in the same one.

    A step that purged nothing writes no entry, unless `record_empty`: a records step that follows
    a recorded identity step always closes it in the trail, or later runs would resume it forever.
    """
    # The provider's lock (as submissions take it on PostgreSQL): no submission of this provider
    # can interleave between choosing the expired clients and deleting them.
    with write_transaction(engine, lock=provider_id) as session:
        connection = session.connection()
        set_scope(connection, provider_id=provider_id)  # row-level security keeps the deletes to this provider
        counts = _run_step(connection, step, provider_id, cutoff, dry_run=False)
        if record_empty or any(counts.values()):
            # Last in the transaction: it queues on the trail's lock until commit (cldx.access.audit).
            record(session, actor=actor, action=AUDIT_ACTION, target=_target(cutoff), provider_id=provider_id,
                   detail=_detail(run, step, cutoff, counts))
    return counts


def _purge_records_step(engine: Engine, provider_id: int, run: str, cutoff: Cutoff, *, actor: str,
                        record: AuditRecorder, after_identity: bool) -> dict[str, int]:
    """The records step: a function of its own so a test can stop a run between the two steps."""
    return _purge_step(engine, "records", provider_id, run, cutoff, actor=actor, record=record, record_empty=after_identity)


def _planned(engine: Engine, cutoff: Cutoff, progress: ProgressCallback | None) -> dict[int, dict[str, int]]:
    """provider id -> rows per table a run would purge, for providers with anything to purge."""
    with read_transaction(engine) as session:
        set_scope(session.connection(), everything=True)
        providers = list(session.scalars(select(Provider.id).order_by(Provider.id)))
    plan: dict[int, dict[str, int]] = {}
    for done, provider_id in enumerate(providers, 1):
        with read_transaction(engine) as session:
            connection = session.connection()
            set_scope(connection, everything=True)
            counts = {**_run_step(connection, "identity", provider_id, cutoff, dry_run=True),
                      **_run_step(connection, "records", provider_id, cutoff, dry_run=True)}
        if any(counts.values()):
            plan[provider_id] = counts
        if progress:
            progress("checking", done, len(providers))
    return plan


def apply_retention(
    *,
    engine: Engine,
    as_of: date,
    years: int = DEFAULT_YEARS,
    actor: str,
    record: AuditRecorder,
    dry_run: bool = False,
    zone: str = "Pacific/Auckland",
    progress: ProgressCallback | None = None,
) -> RetentionResult:
    """Purge everything older than `years` before `as_of` (see the module docstring), identity first.

    Dry: count what would go and change nothing (no audit entry either). Otherwise finish any
    interrupted earlier run, then purge provider by provider (identity step, then records step,
    each committed with its audit entry), then write one entry with the run's totals, even when
    nothing was purged, so the trail shows every run.
    """
    cutoff = cutoff_for(as_of=as_of, years=years, zone=zone)
    totals = dict.fromkeys(TABLES, 0)
    with read_transaction(engine) as session:
        pending = unfinished_runs(session)
    if dry_run:
        plan = _planned(engine, cutoff, progress)
        for counts in plan.values():
            for name, n in counts.items():
                totals[name] += n
        return RetentionResult(cutoff=cutoff, dry_run=True, counts=totals, providers=tuple(sorted(plan)),
                               resumed=tuple(sorted({p for p, _, _ in pending})))

    touched: set[int] = set()
    for provider_id, earlier_run, earlier_cutoff in pending:
        counts = _purge_records_step(engine, provider_id, earlier_run, earlier_cutoff, actor=actor, record=record, after_identity=True)
        for name, n in counts.items():
            totals[name] += n
        touched.add(provider_id)

    plan = _planned(engine, cutoff, progress)
    run = str(uuid.uuid4())
    for done, provider_id in enumerate(sorted(plan), 1):
        identity = _purge_step(engine, "identity", provider_id, run, cutoff, actor=actor, record=record)
        records = _purge_records_step(engine, provider_id, run, cutoff, actor=actor, record=record,
                                      after_identity=any(identity.values()))
        for counts in (identity, records):
            for name, n in counts.items():
                totals[name] += n
        if progress:
            progress("purging", done, len(plan))
        touched.add(provider_id)

    resumed = tuple(sorted({p for p, _, _ in pending}))
    with write_transaction(engine) as session:
        record(session, actor=actor, action=AUDIT_ACTION, target=_target(cutoff),
               detail=_detail(run, "finished", cutoff, totals, providers=len(touched), resumed=len(resumed)))
    return RetentionResult(cutoff=cutoff, dry_run=False, counts=totals, providers=tuple(sorted(touched)), resumed=resumed, run=run)
