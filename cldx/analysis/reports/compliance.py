"""Contract compliance: does each contract's provider send its client-level data on time and complete?

The brief's contract data clause ties payment to data provision, so this report follows each
contract with a data clause. Submissions are made by a provider, not by a contract: a provider
holding two contracts sends one submission a month covering both, so the submission figures
(timeliness, completeness, errors) are the provider's, counted over the months each contract
has data due. Client figures (pre/post pairs, notification) are the contract's own: the
provider's clients with an engagement in the contract's service line.

- Months due: the months from the contract's collection start (or the period's start) to the
  period's end, the contract's end, or the last month whose due date has passed, whichever is
  first. A month's data is due by the end of `due_day` of the following month, New Zealand time.
- On time / late / missing: a month is on time when a submission for it that stored records
  (accepted or partial) was received by the due date; late when the first such submission came
  after it; missing when none came.
- Completeness: the share of rows received (stored or rejected) not rejected for a blank
  required field (rules `required` and `conditional-required`), over the submissions for the
  contract's months due.
- Error rate: rejected rows over rows received, from the submissions' own counts.
- Pre/post pairs: the share of the contract's engagements that closed in the period with a pre
  and a post assessment of the same instrument and domain (blank for service lines no provider
  assesses).
- Notification: the share of the contract's clients (people with an engagement open in the
  period; a person with two client records at the provider counts once, notified if either is)
  whose notified_of_sharing_on is set.
- payment_condition_met: "yes" when at least ON_TIME_MIN % of months due came on time and at
  least COMPLETE_MIN % of rows were complete; the contract decides the real thresholds.

Months and submission rows are not people: they are released as computed through
`aggregate_table`. Client shares are about people, and their bases are released elsewhere: the
people per provider and line by `reach` and `providers`, the engagements closed per provider and
line by the `providers` completion funnel. So each share is `percentage_of` released counts: the
base released exactly as `providers` releases it (same question, same suppression, same rounding),
the part released beside it with its suppression forced. Of exact counts, a share would give back
the exact counts behind those rounded ones (and, where `providers` suppresses a provider's people
to protect a small line, the small line too). A provider's own contracts: its own exact counts.
A provider sees only its own contracts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import polars as pl
from sqlalchemy import Engine, select

from cldx.disclosure import (
    ReleasedTable,
    ReleasedValue,
    Statistic,
    aggregate_table,
    exact_table,
    percentage,
    percentage_of,
    statistics_table,
)
from cldx.store.db import read_transaction
from cldx.store.models import Submission, SubmissionFinding
from cldx.store.scope import set_scope

from . import providers
from .base import Audience, Chart, Period, Report, ReportContext, Section, parse_by
from .coverage import NZ, STORED_STATUSES, month_label, month_number, period_month_number, read_contracts, read_submissions

NAME = "compliance"
TITLE = "Contract compliance"
DEFAULT_BY: list[str] = []  # always one row per contract
# Breakdowns the report's form offers and how many at once (the CLI and API check the same).
ALLOWED_BY: tuple[str, ...] = ()
MAX_BY = 0

# The payment rule shown here; the contract decides the real thresholds.
ON_TIME_MIN = 90.0  # % of months due received on time
COMPLETE_MIN = 95.0  # % of rows received with every required field
# Findings for a blank required field (cldx.ingest.findings).
REQUIRED_RULES = ("required", "conditional-required")
NOT_PEOPLE = "months and submission rows of a contract"
_PERIOD = re.compile(r"^\d{4}-\d{2}$")


# --- Months due ---------------------------------------------------------------------------------------------


def due_by(month: int, due_day: int) -> datetime:
    """The first instant after a month's data is due: the end of `due_day` of the next month, NZ time."""
    following = month + 1
    due = date(following // 12, following % 12 + 1, due_day)
    return datetime.combine(due + timedelta(days=1), time(0), NZ)


def last_month_due(now: datetime, due_day: int) -> int:
    """The latest month whose due date has passed by `now`."""
    month = month_number(now.astimezone(NZ).date()) - 1
    return month if due_by(month, due_day) <= now else month - 1


def months_due(contract: dict, period: Period, now: datetime) -> list[int]:
    first = month_number(contract["start"])
    last = min(month_number(contract["period_end"]), last_month_due(now, contract["due_day"]))
    if period.start is not None:
        first = max(first, month_number(period.start))
    if period.end is not None:
        last = min(last, month_number(period.end))
    return list(range(first, last + 1))


def first_received(submissions: pl.DataFrame) -> dict[tuple[int, int], datetime]:
    """(provider, period month) -> when records for it were first received and stored."""
    firsts: dict[tuple[int, int], datetime] = {}
    for row in submissions.filter(pl.col("status").is_in(STORED_STATUSES)).iter_rows(named=True):
        if not _PERIOD.match(row["period"] or ""):
            continue
        key = (row["provider_id"], period_month_number(row["period"]))
        firsts[key] = min(firsts.get(key, row["received_at"]), row["received_at"])
    return firsts


# --- Submission rows ----------------------------------------------------------------------------------------


def incomplete_rows(engine: Engine, provider_id: int | None) -> dict[str, int]:
    """submission id -> rows rejected for a blank required field (a row with two such findings counts once)."""
    query = (select(SubmissionFinding.submission_id, SubmissionFinding.file, SubmissionFinding.sheet, SubmissionFinding.row)
             .where(SubmissionFinding.rule.in_(REQUIRED_RULES), SubmissionFinding.row.is_not(None)).distinct())
    if provider_id is not None:
        query = query.join(Submission, Submission.id == SubmissionFinding.submission_id).where(Submission.provider_id == provider_id)
    with read_transaction(engine) as session:
        set_scope(session.connection(), everything=True)
        rows = session.execute(query).all()
    counts: dict[str, int] = {}
    for submission_id, *_ in rows:
        counts[submission_id] = counts.get(submission_id, 0) + 1
    return counts


@dataclass
class ContractFigures:
    months_due: int
    on_time: int
    late: int
    missing: int
    rows_received: int
    rows_rejected: int
    rows_incomplete: int

    def share(self, part: int, whole: int) -> float | None:
        return round(100 * part / whole, 1) if whole else None

    @property
    def on_time_share(self) -> float | None:
        return self.share(self.on_time, self.months_due)

    @property
    def completeness(self) -> float | None:
        return self.share(self.rows_received - self.rows_incomplete, self.rows_received)

    @property
    def error_rate(self) -> float | None:
        return self.share(self.rows_rejected, self.rows_received)

    @property
    def payment_condition_met(self) -> str:
        if not self.months_due:
            return "no months due"
        met = (self.on_time_share or 0) >= ON_TIME_MIN and (self.completeness or 0) >= COMPLETE_MIN
        return "yes" if met else "no"


def rows_by_period(submissions: pl.DataFrame, incomplete: dict[str, int]) -> dict[tuple[int, str], tuple[int, int, int]]:
    """(provider, period) -> rows received, rows rejected, rows rejected for a blank required field."""
    totals: dict[tuple[int, str], tuple[int, int, int]] = {}
    for row in submissions.iter_rows(named=True):
        key = (row["provider_id"], row["period"])
        received = row["n_new"] + row["n_changed"] + row["n_unchanged"] + row["n_rejected"]
        before = totals.get(key, (0, 0, 0))
        totals[key] = (before[0] + received, before[1] + row["n_rejected"], before[2] + incomplete.get(row["submission_id"], 0))
    return totals


def contract_figures(contract: dict, months: list[int], firsts: dict, rows: dict) -> ContractFigures:
    on_time = late = 0
    for month in months:
        received = firsts.get((contract["provider_id"], month))
        if received is None:
            continue
        if received < due_by(month, contract["due_day"]):
            on_time += 1
        else:
            late += 1
    sent = [rows.get((contract["provider_id"], month_label(m)), (0, 0, 0)) for m in months]
    received, rejected, blank = (sum(column) for column in zip(*sent)) if sent else (0, 0, 0)
    return ContractFigures(len(months), on_time, late, len(months) - on_time - late, received, rejected, blank)


# --- Client figures, from the analytic layer -------------------------------------------------------------------


@dataclass(frozen=True)
class ClientCounts:
    """The released counts behind the client shares: people (dimensions provider, service) and,
    per unit (`providers.unit_key`), people notified, engagements closed and those with pairs."""

    people: ReleasedTable | None
    notified: ReleasedTable | None
    closed: ReleasedTable | None
    paired: ReleasedTable | None
    assessed: set[str]  # service lines any provider assesses
    threshold: int

    def pre_post_pairs(self, contract: dict) -> Statistic | None:
        if contract["service_code"] not in self.assessed:
            return None
        return self._share(self.paired, self.closed, contract)

    def notified_share(self, contract: dict) -> Statistic | None:
        return self._share(self.notified, self.people, contract, people=True)

    def _share(self, parts: ReleasedTable | None, wholes: ReleasedTable | None, contract: dict, *,
               people: bool = False) -> Statistic | None:
        unit = providers.unit_key(contract["provider"], contract["service"])
        at = {"provider": contract["provider"], "service": contract["service"]} if people else {"unit": unit}
        part, whole = _value(parts, {"unit": unit}), _value(wholes, at)
        if part is None or whole is None:
            # Nothing to count; but where the provider's people are hidden, so is that.
            return percentage(0, 0) if self._people_hidden(contract) else None
        return percentage_of(part, whole, threshold=self.threshold)

    def _people_hidden(self, contract: dict) -> bool:
        value = _value(self.people, {"provider": contract["provider"], "service": contract["service"]})
        return value is not None and value.suppressed


def _value(table: ReleasedTable | None, at: dict[str, str]) -> ReleasedValue | None:
    if table is None:
        return None
    try:
        return table.get(**at)
    except KeyError:
        return None


def unit_counts(context: ReportContext, period: Period, provider_id: int | None) -> pl.DataFrame:
    """Per unit (provider and line): people notified, engagements closed in the period and those
    with a pre and a post assessment; 0 where there are none."""
    closed_in, closed_params = period.within_sql("end_date")
    open_in, open_params = period.overlap_sql("e.start_date", "e.end_date")
    mine_params = [provider_id] if provider_id is not None else []
    mine = "provider_id = ?" if provider_id is not None else "TRUE"
    their_engagements = "e.provider_id = ?" if provider_id is not None else "TRUE"
    pairs = context.layer.frame(
        "SELECT provider_id, service_code, count(*) AS closed, "
        "count(*) FILTER (WHERE engagement_id IN (SELECT engagement_id FROM assessments "
        "                 WHERE pre_score IS NOT NULL AND post_score IS NOT NULL)) AS paired "
        f"FROM engagements WHERE closed AND {closed_in} AND {mine} GROUP BY provider_id, service_code",
        closed_params + mine_params)
    notified = context.layer.frame(
        "SELECT e.provider_id, e.service_code, "
        "count(DISTINCT e.person) FILTER (WHERE c.notified_of_sharing_on IS NOT NULL) AS notified "
        f"FROM engagements e JOIN clients c ON c.client_id = e.client_id WHERE {open_in} AND {their_engagements} "
        "GROUP BY e.provider_id, e.service_code",
        open_params + mine_params)
    frame = pairs.join(notified, on=["provider_id", "service_code"], how="full", coalesce=True).fill_null(0)
    labelled = providers.label_units(frame, context)
    return labelled.select("provider", unit=providers.unit_key(pl.col("provider"), pl.col("service")),
                           closed=pl.col("closed").cast(pl.Int64), paired=pl.col("paired").cast(pl.Int64),
                           notified=pl.col("notified").cast(pl.Int64))


def client_counts(context: ReportContext, period: Period, audience: Audience) -> ClientCounts:
    """The client counts as `providers` releases them (the provider's own exact for a provider)."""
    provider_id = audience.provider_id if audience.is_provider else None
    assessed = set(context.layer.frame("SELECT DISTINCT service_code FROM assessments")["service_code"].to_list())
    people = providers.people_by_provider(context, period)
    units = unit_counts(context, period, provider_id)
    ended = units.filter(pl.col("closed") > 0)  # a unit none of whose engagements closed has no pairs share
    closed, paired = ended.select("unit", count="closed"), ended.select("unit", count="paired")
    notified = units.select("unit", count="notified")
    if audience.is_provider:
        own = audience.provider_code
        people = people.filter(pl.col("provider") == own)
        exact = {name: exact_table(frame, measure=name, provider=own, grand_total=False) if frame.height else None
                 for name, frame in (("people", people), ("people notified", notified), ("engagements closed", closed),
                                     ("engagements closed with pairs", paired))}
        return ClientCounts(*exact.values(), assessed, context.threshold)
    people_table = providers.protect_people(context, people) if people.height else None
    hidden = providers.suppressed_units(people_table) if people_table else set()

    def release(frame: pl.DataFrame, measure: str, forced) -> ReleasedTable | None:
        return providers.protect_units(context, frame, measure=measure, forced=forced) if frame.height else None

    closed_table = release(closed, providers.engagements_measure(providers.COMPLETION.key), hidden)
    return ClientCounts(
        people_table,
        release(notified, "people notified of data sharing by provider and service", hidden),
        closed_table,
        release(paired, "engagements closed with a pre/post pair by provider and service",
                closed_table.suppressed_cells() if closed_table else ()),
        assessed, context.threshold)


# --- The report ---------------------------------------------------------------------------------------------------

COUNT_COLUMNS = ("months_due", "on_time", "late", "missing", "rows_received", "rows_rejected")
SHARE_COLUMNS = ("on_time_share", "completeness", "error_rate")


def released_figures(figures: dict[str, ContractFigures]) -> tuple:
    """Month and row counts, and their shares, as aggregate tables (dimensions contract x measure)."""
    counts = pl.DataFrame([(ref, c, getattr(f, c)) for ref, f in figures.items() for c in COUNT_COLUMNS],
                          schema={"contract": pl.String, "measure": pl.String, "value": pl.Int64}, orient="row")
    shares = pl.DataFrame([(ref, c, getattr(f, c)) for ref, f in figures.items() for c in SHARE_COLUMNS
                           if getattr(f, c) is not None],
                          schema={"contract": pl.String, "measure": pl.String, "value": pl.Float64}, orient="row")
    count_table = aggregate_table(counts, measure="months and rows", count="value", reason=NOT_PEOPLE)
    share_table = aggregate_table(shares, measure="shares of months and rows (%)", count="value",
                                  reason=NOT_PEOPLE) if shares.height else None
    return count_table, share_table


def contract_rows(contracts: pl.DataFrame, figures: dict[str, ContractFigures], clients: ClientCounts) -> list:
    count_table, share_table = released_figures(figures)
    rows = []
    for c in contracts.iter_rows(named=True):
        ref, f = c["contract_ref"], figures[c["contract_ref"]]
        values: dict[str, object] = {column: count_table.get(contract=ref, measure=column) for column in COUNT_COLUMNS}
        for column in SHARE_COLUMNS:
            values[column] = share_table.get(contract=ref, measure=column) if getattr(f, column) is not None else None
        values["pre_post_pairs"] = clients.pre_post_pairs(c)
        values["notified"] = clients.notified_share(c)
        values["payment_condition_met"] = f.payment_condition_met
        rows.append(({"contract": ref, "provider": c["provider"], "service": c["service"]}, values))
    return rows


def summary_section(contracts: pl.DataFrame, figures: dict[str, ContractFigures]) -> Section:
    frame = pl.DataFrame(
        [(f"Wave {c['wave']}", figures[c["contract_ref"]].payment_condition_met, 1) for c in contracts.iter_rows(named=True)],
        schema={"wave": pl.String, "payment_condition_met": pl.String, "contracts": pl.Int64}, orient="row")
    table = aggregate_table(frame, measure="contracts", count="contracts", reason="numbers of contracts",
                            row_totals=True, column_totals=True, grand_total=True)
    chart = Chart("bar", x="wave", y="value", color="payment_condition_met",
                  description="Contracts meeting the payment condition, by roll-out wave")
    return Section("summary", "Contracts meeting the payment condition", table, chart,
                   f"Payment condition: at least {ON_TIME_MIN:g}% of months on time and {COMPLETE_MIN:g}% of rows complete.")


def run(context: ReportContext, *, period: Period, by: list[str] | str | None, audience: Audience,
        now: datetime | None = None) -> Report:
    dims = parse_by(by, default=DEFAULT_BY, allowed=())
    now = now or context.clock()
    provider_id = audience.provider_id if audience.is_provider else None
    contracts = read_contracts(context.engine, provider_id).filter(pl.col("data_clause"))
    submissions = read_submissions(context.engine, provider_id)
    firsts = first_received(submissions)
    sent_rows = rows_by_period(submissions, incomplete_rows(context.engine, provider_id))
    figures = {c["contract_ref"]: contract_figures(c, months_due(c, period, now), firsts, sent_rows)
               for c in contracts.iter_rows(named=True)}
    sections = []
    if figures:
        rows = contract_rows(contracts, figures, client_counts(context, period, audience))
        table = statistics_table("Data provision by contract", ["contract", "provider", "service"], rows,
                                 threshold=context.threshold, notes=_table_notes(audience))
        chart = Chart("bar", x="contract", y="on_time_share", reference=ON_TIME_MIN,
                      description="Share of months due received on time, by contract")
        sections += [Section("contracts", "Data provision by contract", table, chart,
                             "Your own contracts: exact." if audience.is_provider else
                             "Months and rows as counted; client shares hidden under the threshold."),
                     summary_section(contracts, figures)]
    return Report(
        name=NAME,
        title=TITLE,
        summary="Per contract with a data clause: months of data due, received on time, late and missing; "
                "completeness and error rate of rows received; pre/post assessment pairs and client notification.",
        period=period,
        by=dims,
        audience=audience,
        sections=sections,
        notes=[
            "Data for a month is due by the end of the contract's due day of the following month, New Zealand time; "
            "months whose due date is still ahead are not counted.",
            "A provider sends one submission a month for all its contracts: timeliness, completeness and errors are the "
            "provider's, over each contract's months due.",
            f"payment_condition_met is 'yes' at {ON_TIME_MIN:g}% or more of months on time and {COMPLETE_MIN:g}% or more "
            "of rows complete: an illustrative rule; each contract's data clause decides the real thresholds.",
        ],
    )


def _table_notes(audience: Audience) -> list[str]:
    notes = [
        "months_due, on_time, late, missing: months; rows_received, rows_rejected: rows of submitted files.",
        "completeness: % of rows received not rejected for a blank required field; error_rate: % of rows rejected.",
        "pre_post_pairs: % of engagements closed in the period with a pre and a post assessment (blank where the "
        "service line is not assessed); notified: % of clients told their data is shared.",
    ]
    if not audience.is_provider:
        notes.append("Client percentages are of counts released as the providers report releases them (randomly "
                     "rounded to base 3) and hidden where those are suppressed or under the threshold.")
    return notes
