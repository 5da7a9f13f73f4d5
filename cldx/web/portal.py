"""The provider portal's own figures: what is due and when, a data-quality score, findings to fix.

Owns the queries behind a provider's home page (`cldx.web.pages.home`) about the provider's own
contracts and submissions, and `own_and_line`, which keeps the provider's own rows and its
service lines' benchmark rows of a released report table. Everything computed here is the
provider's own data, shown to its own staff exactly: every query names the provider, and on
PostgreSQL the request's session is scoped to it as well (row-level security). Nothing here
counts anything about other providers: the peer benchmark comes from the `providers` report,
released by `cldx.disclosure`, and is only filtered here, never computed.

Timing follows the compliance report (`cldx.analysis.reports.compliance`), so the home page and
that report agree: a month's data is due by the end of the contract's `due_day` of the following
month, New Zealand time; a month counts as received once a submission for it stored records
(accepted or partial), on time when the first such submission came before the due date.

`now` is a parameter of everything that depends on the clock (default: the current time), so
tests put the clock where they need it without patching it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cldx.analysis.reports import Period, Section
from cldx.analysis.reports.compliance import due_by, last_month_due, months_due
from cldx.analysis.reports.coverage import NZ, STORED_STATUSES, month_label, month_number, period_month_number
from cldx.disclosure import statistics_table
from cldx.disclosure.statistics import StatisticsTable
from cldx.store.models import Contract, ServiceLine, Submission, SubmissionFinding

WINDOW_MONTHS = 12  # the data-quality score and the benchmark look back this many months
MISSING_SHOWN = 6  # missing months listed on the page (the rest are counted)
TO_FIX_SHOWN = 10  # submissions with findings to fix listed on the page (the rest are counted)
DEFAULT_DUE_DAY = 20  # the registry's default, for a provider holding no contract with a data clause
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def month_name(number: int) -> str:
    """A month number (`coverage.month_number`) as people write it: August 2017."""
    return date(number // 12, number % 12 + 1, 1).strftime("%B %Y")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# --- The provider's contracts and what it has stored ------------------------------------------------


@dataclass(frozen=True)
class ContractTerms:
    """A contract with a data clause, as the compliance rules read it."""

    contract_ref: str
    service: str  # the service line's name
    start: date  # collection start, else the contract's start
    period_end: date
    due_day: int

    def months_due(self, period: Period, now: datetime) -> list[int]:
        """The months whose data was due by `now` (compliance's definition, same arguments)."""
        return months_due({"start": self.start, "period_end": self.period_end, "due_day": self.due_day}, period, now)

    def due_at(self, month: int) -> datetime:
        return due_by(month, self.due_day)


def contracts_of(session: Session, provider_id: int) -> list[ContractTerms]:
    """The provider's contracts with a data clause (those without one ask for no data)."""
    rows = session.execute(
        select(Contract.contract_ref, ServiceLine.name, Contract.collection_start, Contract.period_start, Contract.period_end,
               Contract.due_day)
        .join(ServiceLine, ServiceLine.id == Contract.service_line_id)
        .where(Contract.provider_id == provider_id, Contract.data_clause.is_(True))
        .order_by(Contract.contract_ref)
    ).all()
    # Collection starts with the contract when no separate date is given (as compliance reads it).
    return [ContractTerms(ref, service, collection or start, end, due_day) for ref, service, collection, start, end, due_day in rows]


def first_stored(session: Session, provider_id: int) -> dict[int, datetime]:
    """Month number -> when a submission for that month first stored records (compliance's `first_received`)."""
    rows = session.execute(
        select(Submission.period, func.min(Submission.received_at))
        .where(Submission.provider_id == provider_id, Submission.status.in_(STORED_STATUSES),
               Submission.finished_at.is_not(None))
        .group_by(Submission.period)
    ).all()
    return {period_month_number(period): at for period, at in rows if _PERIOD.match(period or "")}


# --- What is due and when ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _MonthDue:
    """A reporting month and the first instant after its deadline (compliance.due_by), as pages show them."""

    month: int
    due_at: datetime

    @property
    def period(self) -> str:
        return month_label(self.month)

    @property
    def month_name(self) -> str:
        return month_name(self.month)

    @property
    def deadline(self) -> datetime:
        """The last second of the due day: what the page shows (the instant after it would read as the next day)."""
        return self.due_at - timedelta(seconds=1)


@dataclass(frozen=True)
class DueMonth(_MonthDue):
    """The next month whose data a contract asks for, and whether it has come."""

    contract_ref: str = ""
    service: str = ""
    received_at: datetime | None = None  # the first stored submission for the month, if any


@dataclass(frozen=True)
class MissingMonth(_MonthDue):
    """A month due with nothing stored; `due_at` is the earliest due date among the contracts asking for it."""

    contracts: tuple[str, ...] = ()


def next_due(contracts: list[ContractTerms], stored: dict[int, datetime], now: datetime) -> list[DueMonth]:
    """Per contract in force, the next month whose due date is still ahead.

    In force: its collection has started (on or before today in New Zealand) and a month of it is
    still to fall due (a contract that ended on 30 June still wants June's data in July)."""
    today = now.astimezone(NZ).date()
    due = []
    for c in contracts:
        month = max(last_month_due(now, c.due_day) + 1, month_number(c.start))
        if c.start > today or month > month_number(c.period_end):
            continue
        due.append(DueMonth(month, c.due_at(month), contract_ref=c.contract_ref, service=c.service, received_at=stored.get(month)))
    return sorted(due, key=lambda d: (d.due_at, d.contract_ref))


def missing_months(contracts: list[ContractTerms], stored: dict[int, datetime], now: datetime) -> list[MissingMonth]:
    """Every month due by `now` under any contract with nothing stored for it, most recent first."""
    missing: dict[int, list[tuple[datetime, str]]] = {}
    for c in contracts:
        for month in c.months_due(Period(), now):
            if month not in stored:
                missing.setdefault(month, []).append((c.due_at(month), c.contract_ref))
    return [MissingMonth(month, min(at for at, _ in entries), tuple(sorted({ref for _, ref in entries})))
            for month, entries in sorted(missing.items(), reverse=True)]


# --- The data-quality score --------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """`part` of `whole`, as a percentage with one decimal (None when there is no whole)."""

    part: int
    whole: int

    @property
    def percent(self) -> float | None:
        return round(100 * self.part / self.whole, 1) if self.whole else None


@dataclass(frozen=True)
class QualityScore:
    """Two shares over the last WINDOW_MONTHS reporting months, and their mean as the score.

    rows: rows received (stored or rejected, compliance's rows_received) that were not rejected,
    over every finished submission for a month of the window (compliance's 100 - error_rate);
    months: the window's months due (under any contract with a data clause) received on time.
    """

    first_month: int
    last_month: int
    rows: Share
    months: Share
    late: int
    missing: int

    @property
    def first_name(self) -> str:
        return month_name(self.first_month)

    @property
    def last_name(self) -> str:
        return month_name(self.last_month)

    @property
    def score(self) -> int | None:
        """The mean of the shares that have a base, to the whole per cent; None with neither.

        From the exact fractions, not the rounded percentages shown, so rounding happens once."""
        shares = [s.part / s.whole for s in (self.rows, self.months) if s.whole]
        return round(100 * sum(shares) / len(shares)) if shares else None


def reporting_window(contracts: list[ContractTerms], now: datetime) -> tuple[int, int]:
    """The last WINDOW_MONTHS reporting months: up to the latest month whose data has fallen due,
    and no later than the last month the contracts run to (after they end nothing more falls due,
    so the window stays on the months the provider reported on)."""
    if contracts:
        last = min(max(last_month_due(now, c.due_day) for c in contracts), max(month_number(c.period_end) for c in contracts))
    else:
        last = last_month_due(now, DEFAULT_DUE_DAY)
    return last - WINDOW_MONTHS + 1, last


def quality_score(session: Session, provider_id: int, contracts: list[ContractTerms], stored: dict[int, datetime],
                  now: datetime) -> QualityScore:
    """The provider's score over its reporting window (see QualityScore), from its own submissions only."""
    first, last = reporting_window(contracts, now)
    window = Period(date(first // 12, first % 12 + 1, 1), _month_end(last))
    # A month due under two contracts is one month for the provider (it sends one submission a
    # month for all its contracts), due by the earlier of their due dates.
    due: dict[int, datetime] = {}
    for c in contracts:
        for month in c.months_due(window, now):
            due[month] = min(due.get(month, c.due_at(month)), c.due_at(month))
    on_time = sum(1 for month, at in due.items() if month in stored and stored[month] < at)
    late = sum(1 for month, at in due.items() if month in stored and stored[month] >= at)
    received, rejected = session.execute(
        select(func.coalesce(func.sum(Submission.n_new + Submission.n_changed + Submission.n_unchanged + Submission.n_rejected), 0),
               func.coalesce(func.sum(Submission.n_rejected), 0))
        .where(Submission.provider_id == provider_id, Submission.finished_at.is_not(None),
               Submission.period >= month_label(first), Submission.period <= month_label(last))
    ).one()
    return QualityScore(first, last, Share(int(received) - int(rejected), int(received)), Share(on_time, len(due)), late,
                        len(due) - on_time - late)


def _month_end(month: int) -> date:
    return date((month + 1) // 12, (month + 1) % 12 + 1, 1) - timedelta(days=1)


# --- Findings still to fix ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ToFix:
    """A submission whose errors no later clean submission for its period has made good."""

    submission_id: str
    period: str
    received_at: datetime
    status: str
    errors: int
    rows_rejected: int

    @property
    def period_name(self) -> str:
        """August 2017 (the period as stored when it is not a YYYY-MM)."""
        return month_name(period_month_number(self.period)) if _PERIOD.match(self.period) else self.period


def findings_to_fix(session: Session, provider_id: int) -> list[ToFix]:
    """Submissions with error findings for periods where no later submission was accepted without
    errors, newest first. A later clean submission for the period stands for the fix: it was
    stored whole, so whatever the earlier one lacked has been sent since."""
    errors = (select(SubmissionFinding.submission_id, func.count().label("errors"))
              .join(Submission, Submission.id == SubmissionFinding.submission_id)
              .where(Submission.provider_id == provider_id, SubmissionFinding.severity == "error")
              .group_by(SubmissionFinding.submission_id).subquery())
    faulty = session.execute(
        select(Submission.id, Submission.period, Submission.received_at, Submission.status, Submission.n_rejected, errors.c.errors)
        .join(errors, errors.c.submission_id == Submission.id)
        .where(Submission.provider_id == provider_id)
    ).all()
    clean = dict(session.execute(
        select(Submission.period, func.max(Submission.received_at))
        .where(Submission.provider_id == provider_id, Submission.status == "accepted", Submission.id.not_in(select(errors.c.submission_id)))
        .group_by(Submission.period)
    ).all())
    to_fix = [ToFix(sid, period, received, status, int(count), rejected) for sid, period, received, status, rejected, count in faulty
              if period not in clean or clean[period] <= received]
    return sorted(to_fix, key=lambda t: (t.received_at, t.submission_id), reverse=True)


# --- The benchmark: the provider's own rows of a released table ------------------------------------


def benchmark_period(stored: dict[int, datetime], now: datetime) -> Period:
    """The WINDOW_MONTHS months up to the latest month the provider has stored data for, and no
    later than the last full month (the current month's data is still coming in). Results are
    only as recent as the data sent: a provider that stopped sending sees its last year of data,
    and the page says which months."""
    last_full = month_number(now.astimezone(NZ).date()) - 1
    last = min(max(stored), last_full) if stored else last_full
    first = last - WINDOW_MONTHS + 1
    return Period(date(first // 12, first % 12 + 1, 1), _month_end(last))


def own_and_line(section: Section, provider_code: str) -> Section:
    """The section with only the provider's own rows and its service lines' rows (provider blank).

    The rows are kept as `cldx.disclosure` released them (own exact, line controlled) and put
    back through `statistics_table`, which accepts only released values; peers' rows are left out
    so the home page names no other provider."""
    table = section.table
    if not isinstance(table, StatisticsTable) or "provider" not in table.dimensions:
        raise ValueError(f"section {section.key!r} has no provider rows to choose from")
    rows = [(at, values) for at, values in table.rows if at["provider"] in (None, provider_code)]
    kept = statistics_table(table.title, table.dimensions, rows, threshold=table.threshold, notes=table.notes)
    return Section(section.key, section.title, kept, section.chart, section.note)


# --- Everything the page shows ----------------------------------------------------------------------


@dataclass(frozen=True)
class Portal:
    now: datetime
    due: list[DueMonth]
    missing: list[MissingMonth]  # all of them, most recent first; the page shows MISSING_SHOWN
    quality: QualityScore
    to_fix: list[ToFix]  # all of them, newest first; the page shows TO_FIX_SHOWN
    benchmark_period: Period
    has_contracts: bool

    @property
    def missing_shown(self) -> list[MissingMonth]:
        return self.missing[:MISSING_SHOWN]

    @property
    def to_fix_shown(self) -> list[ToFix]:
        return self.to_fix[:TO_FIX_SHOWN]


def portal_for(session: Session, provider_id: int, *, now: datetime | None = None) -> Portal:
    """The provider's own figures for its home page, as of `now` (default: the current time)."""
    now = now or utc_now()
    contracts = contracts_of(session, provider_id)
    stored = first_stored(session, provider_id)
    return Portal(
        now=now,
        due=next_due(contracts, stored, now),
        missing=missing_months(contracts, stored, now),
        quality=quality_score(session, provider_id, contracts, stored, now),
        to_fix=findings_to_fix(session, provider_id),
        benchmark_period=benchmark_period(stored, now),
        has_contracts=bool(contracts),
    )
