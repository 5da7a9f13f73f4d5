"""Coverage: how much of the Community Investment Strategy sends client-level data, month by month.

The brief's targets are shares of CIS spend: client-level data from 23% of CIS services (by
service expenditure) from 1 July 2016 (wave 1), and 100% by 1 July 2017. For each month, a
contract counts as covered once its collection has started (collection_start, else its
period_start, on or before the month's end) and its provider has had at least one submission
that stored records (accepted or partial) received by the end of that month, New Zealand time.

Spend covered is the annual funding of covered contracts over the annual funding of every
contract in the registry: the brief's 23% and 100% are of total CIS spend, not of the contracts
in force in a month, so the denominator does not move as waves join. Providers covered is the
number of providers with a covered contract over the number of providers holding any contract.
Broken down by wave, each wave's series is still a share of the whole CIS (so wave 1 tops out at
its 23% and the waves' spend shares add up to "All waves"); a provider holding contracts in both
waves counts in each, so provider shares by wave need not add up.

None of these figures counts people (they are money and numbers of organisations), so they are
released as computed through `disclosure.aggregate_table`, for every audience alike.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import Engine, select

from cldx.disclosure import aggregate_table, statistics_table
from cldx.store.db import read_transaction
from cldx.store.models import Contract, Provider, ServiceLine, Submission
from cldx.store.scope import set_scope

from .base import Audience, Chart, Period, Report, ReportContext, Section, parse_by

NAME = "coverage"
TITLE = "Roll-out coverage"
DEFAULT_BY = ["wave"]
# Breakdowns the report's form offers and how many at once (the CLI and API check the same).
ALLOWED_BY: tuple[str, ...] = ("wave",)
MAX_BY = 1

NZ = ZoneInfo("Pacific/Auckland")
# Submissions that stored client-level data; refused, unreadable and failed ones delivered none.
STORED_STATUSES = ("accepted", "partial")
# The brief's targets, as shares (%) of total CIS spend from the first day of a month.
TARGETS = ((date(2016, 7, 1), 23.0), (date(2017, 7, 1), 100.0))
ALL_WAVES = "All waves"
TARGET_SERIES = "Target (brief)"
NOT_PEOPLE = "funding and numbers of providers"
DIGITS = 2


# --- Months --------------------------------------------------------------------------------------------


def month_number(day: date) -> int:
    """Months since year 0, so months compare and count as integers."""
    return day.year * 12 + day.month - 1


def month_label(number: int) -> str:
    return f"{number // 12:04d}-{number % 12 + 1:02d}"


def period_month_number(period: str) -> int:
    """A submission's `YYYY-MM` period as a month number."""
    return int(period[:4]) * 12 + int(period[5:7]) - 1


def received_month(received_at: datetime) -> int:
    """The New Zealand month a submission was received in (stored times are UTC)."""
    return month_number(received_at.astimezone(NZ).date())


def target_for(month: int) -> float:
    value = 0.0
    for start, share in TARGETS:
        if month >= month_number(start):
            value = share
    return value


# --- The registry and submissions, read from the store ------------------------------------------------

_CONTRACT_SCHEMA = {
    "contract_id": pl.Int64, "contract_ref": pl.String, "provider_id": pl.Int64, "provider": pl.String,
    "service_code": pl.String, "service": pl.String, "wave": pl.Int64, "funding_nzd": pl.Float64,
    "start": pl.Date, "period_start": pl.Date, "period_end": pl.Date, "due_day": pl.Int64, "data_clause": pl.Boolean,
}

_SUBMISSION_SCHEMA = {
    "submission_id": pl.String, "provider_id": pl.Int64, "period": pl.String, "received_at": pl.Datetime("us", "UTC"),
    "received_month": pl.Int64, "status": pl.String, "n_new": pl.Int64, "n_changed": pl.Int64,
    "n_unchanged": pl.Int64, "n_warned": pl.Int64, "n_rejected": pl.Int64,
}


def read_contracts(engine: Engine, provider_id: int | None = None) -> pl.DataFrame:
    """Every contract (or one provider's) with its provider code, service line and collection start."""
    query = (
        select(Contract.id, Contract.contract_ref, Contract.provider_id, Provider.code, ServiceLine.code, ServiceLine.name,
               Contract.wave, Contract.funding_nzd, Contract.collection_start, Contract.period_start, Contract.period_end,
               Contract.due_day, Contract.data_clause)
        .join(Provider, Provider.id == Contract.provider_id)
        .join(ServiceLine, ServiceLine.id == Contract.service_line_id)
        .order_by(Contract.contract_ref)
    )
    if provider_id is not None:
        query = query.where(Contract.provider_id == provider_id)
    with read_transaction(engine) as session:
        set_scope(session.connection(), everything=True)
        rows = session.execute(query).all()
    # Collection starts with the contract when no separate date is given.
    records = [(i, ref, p, code, sc, sn, w, float(f), cs or ps, ps, pe, dd, bool(dc))
               for i, ref, p, code, sc, sn, w, f, cs, ps, pe, dd, dc in rows]
    return pl.DataFrame(records, schema=_CONTRACT_SCHEMA, orient="row")


def read_submissions(engine: Engine, provider_id: int | None = None) -> pl.DataFrame:
    """Finished submissions (or one provider's) with their received month in New Zealand time."""
    query = select(Submission.id, Submission.provider_id, Submission.period, Submission.received_at, Submission.status,
                   Submission.n_new, Submission.n_changed, Submission.n_unchanged, Submission.n_warned,
                   Submission.n_rejected).where(Submission.finished_at.is_not(None))
    if provider_id is not None:
        query = query.where(Submission.provider_id == provider_id)
    with read_transaction(engine) as session:
        set_scope(session.connection(), everything=True)
        rows = session.execute(query).all()
    records = [(sid, p, period, at, received_month(at), status, *counts) for sid, p, period, at, status, *counts in rows]
    return pl.DataFrame(records, schema=_SUBMISSION_SCHEMA, orient="row")


# --- Counting ----------------------------------------------------------------------------------------------


def covered_from(contracts: pl.DataFrame, submissions: pl.DataFrame) -> pl.DataFrame:
    """Contracts with `covered_from`: the first month both started and with data received (null if never)."""
    first = (submissions.filter(pl.col("status").is_in(STORED_STATUSES))
             .group_by("provider_id").agg(pl.col("received_month").min().alias("first_received")))
    start = pl.col("start").dt.year().cast(pl.Int64) * 12 + pl.col("start").dt.month().cast(pl.Int64) - 1
    return (contracts.join(first, on="provider_id", how="left")
            .with_columns(start_month=start)
            .with_columns(covered_from=pl.when(pl.col("first_received").is_null()).then(None)
                          .otherwise(pl.max_horizontal("start_month", "first_received"))))


def month_range(contracts: pl.DataFrame, submissions: pl.DataFrame, period: Period) -> list[int]:
    """From the first collection start to the period's end (else the last submission or contract start)."""
    if contracts.is_empty():
        return []
    first = month_number(contracts["start"].min())
    last = max([month_number(contracts["start"].max()), *submissions["received_month"].to_list()])
    if period.start is not None:
        first = max(first, month_number(period.start))
    if period.end is not None:
        last = month_number(period.end)
    return list(range(first, last + 1))


def monthly_shares(contracts: pl.DataFrame, months: list[int], by_wave: bool) -> pl.DataFrame:
    """month, series, spend (% of all CIS funding), providers (% of providers with contracts)."""
    total_funding = contracts["funding_nzd"].sum()
    total_providers = contracts["provider_id"].n_unique()
    month_frame = pl.DataFrame({"month": months}, schema={"month": pl.Int64})
    covered = month_frame.join(contracts.filter(pl.col("covered_from").is_not_null()), how="cross") \
        .filter(pl.col("covered_from") <= pl.col("month"))
    series = [(ALL_WAVES, covered)]
    if by_wave:
        series += [(f"Wave {w}", covered.filter(pl.col("wave") == w)) for w in sorted(contracts["wave"].unique())]
    frames = []
    for name, part in series:
        sums = part.group_by("month").agg(pl.col("funding_nzd").sum().alias("funding"),
                                          pl.col("provider_id").n_unique().alias("n_providers"))
        frames.append(month_frame.join(sums, on="month", how="left").with_columns(series=pl.lit(name)))
    shares = pl.concat(frames).with_columns(
        spend=(100 * pl.col("funding").fill_null(0) / total_funding).round(DIGITS),
        providers=(100 * pl.col("n_providers").fill_null(0).cast(pl.Float64) / total_providers).round(DIGITS),
    )
    return shares.select("month", "series", "spend", "providers")


def with_target(shares: pl.DataFrame, months: list[int]) -> pl.DataFrame:
    target = pl.DataFrame({"month": months, "series": [TARGET_SERIES] * len(months),
                           "spend": [target_for(m) for m in months]},
                          schema={"month": pl.Int64, "series": pl.String, "spend": pl.Float64})
    return pl.concat([shares.select("month", "series", "spend"), target])


def labelled(frame: pl.DataFrame, value: str) -> pl.DataFrame:
    return frame.select(pl.col("month").map_elements(month_label, return_dtype=pl.String), "series", pl.col(value).alias("value"))


# --- Sections -----------------------------------------------------------------------------------------------


def funding_section(contracts: pl.DataFrame, threshold: int) -> Section:
    """The registry by wave: annual funding, its share of CIS spend, contracts and providers."""
    waves = [(f"Wave {w}", contracts.filter(pl.col("wave") == w)) for w in sorted(contracts["wave"].unique())]
    groups = [*waves, (ALL_WAVES, contracts)]
    total = contracts["funding_nzd"].sum()
    frame = pl.DataFrame(
        [(name, round(part["funding_nzd"].sum(), 2), round(100 * part["funding_nzd"].sum() / total, DIGITS) if total else 0.0,
          part.height, part["provider_id"].n_unique()) for name, part in groups],
        schema={"wave": pl.String, "funding_nzd": pl.Float64, "share_of_spend": pl.Float64, "contracts": pl.Int64,
                "providers": pl.Int64}, orient="row")
    tables = {column: aggregate_table(frame.select("wave", column), measure=column, count=column, reason=NOT_PEOPLE)
              for column in ("funding_nzd", "share_of_spend", "contracts", "providers")}
    # "All waves" is its own row, not a sum: a provider with contracts in two waves is one provider.
    rows = [({"wave": name}, {column: table.get(wave=name) for column, table in tables.items()}) for name, _ in groups]
    table = statistics_table("CIS funding by roll-out wave", ["wave"], rows, threshold=threshold,
                             notes=["Annual funding in NZD from the contract registry; not counts of people."])
    chart = Chart("bar", x="wave", y="funding_nzd", description="Annual CIS funding by roll-out wave")
    return Section("funding", "Funding by wave", table, chart, "Annual funding of every contract in the registry.")


def share_section(key: str, title: str, frame: pl.DataFrame, reference: float | None, note: str) -> Section:
    table = aggregate_table(frame, measure=f"{key} covered (%)", count="value", reason=NOT_PEOPLE)
    chart = Chart("line", x="month", y="value", color="series", reference=reference,
                  description=f"Share of {title.lower()} from which client-level data is received, by month")
    return Section(key, title, table, chart, note)


def run(context: ReportContext, *, period: Period, by: list[str] | str | None, audience: Audience) -> Report:
    dims = parse_by(by, default=DEFAULT_BY, allowed=("wave",))
    contracts = read_contracts(context.engine)
    submissions = read_submissions(context.engine)
    months = month_range(contracts, submissions, period)
    sections: list[Section] = []
    if months:
        shares = monthly_shares(covered_from(contracts, submissions), months, by_wave="wave" in dims)
        sections += [
            share_section("spend", "CIS spend", labelled(with_target(shares, months), "spend"), None,
                          "Annual funding of contracts sending data, as a % of all CIS funding in the registry; "
                          f"'{TARGET_SERIES}' is 23% from July 2016 and 100% from July 2017."),
            share_section("providers", "Providers", labelled(shares, "providers"), 100.0,
                          "Providers with a contract sending data, as a % of providers holding a contract."),
        ]
    if not contracts.is_empty():
        sections.append(funding_section(contracts, context.threshold))
    return Report(
        name=NAME,
        title=TITLE,
        summary="Share of CIS spend and of providers from which client-level data is received, by month"
                + (" and roll-out wave" if "wave" in dims else "") + ", against the brief's targets.",
        period=period,
        by=dims,
        audience=audience,
        sections=sections,
        notes=[
            "A contract is covered from the month (New Zealand time) by whose end its collection has started and "
            "its provider has had a submission accepted in whole or in part.",
            "Shares of spend are of total CIS funding (every contract in the registry), as the brief's targets are; "
            "each wave's series is its part of that whole.",
            "The brief allows collection from up to 23% of CIS spend from 1 July 2016 and aims for 100% by "
            "1 July 2017.",
            "Money and numbers of providers are not counts of people: released as computed.",
        ],
    )
