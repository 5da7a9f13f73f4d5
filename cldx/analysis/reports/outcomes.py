"""Outcomes: did clients' assessed scores improve, and results-based accountability's three questions.

Sections, each broken down by one cohort dimension (default: service line):

- change: for every instrument domain, the mean change per person from the pre to the post
  assessment, with a 95% t interval (`statistics.paired_change`). A pair counts when its post
  assessment fell in the period. A person with several pairs in a cell counts once, with the mean
  of their pairs, so the interval treats people, not engagements, as independent. The sign is
  turned so that a positive change is an improvement, also where a lower score is better.
- how much did we do: people served, engagements and sessions attended, for engagements open at
  some time in the period (sessions are the engagement's whole count: the layer has no dates).
- how well did we do it: completion rate (engagements closed in the period that were completed),
  attendance rate (per person, the share of their scheduled sessions attended, averaged over
  people) and follow-up (engagements closed in the period with a pre assessment that also have a
  post assessment).
- is anyone better off: per outcome dimension, the people measured in the period and those better
  off, with the percentage. A person is better off in a dimension when their latest outcome in it
  (in the cell and period) says so; several measured that day count if any of them does.

A percentage of counts is computed from the counts as released (`percentage_of`): RR3-rounded for
the ministry, so that it cannot give the exact counts back; exact for a provider's own. That holds
for the completion and follow-up rates too, whose engagement counts are released but not shown
(engagements per provider and line are shown in `providers`).

Counting follows `reach`: people are distinct pseudonyms within a cell; totals add up their cells
(a person in two cells counts in each), and a total's statistics pool the cells' people.

Audiences: the ministry gets controlled figures. A provider gets its own figures exact and, beside
each (columns `peer_*`), the controlled figures of all providers in the service lines it delivers,
itself included. `cohorts` and `practice` build on the queries and releases here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

import numpy as np
import polars as pl

from cldx.disclosure import (
    ReleasedTable,
    ReleasedValue,
    Statistic,
    exact_statistic,
    exact_table,
    percentage,
    percentage_of,
    protect,
    statistic,
    statistics_table,
)
from cldx.standard.codesets import code_set, load_instruments

from ..layer import UNKNOWN
from ..statistics import MeanEstimate, paired_change
from .base import (
    DIMENSIONS,
    Audience,
    Chart,
    Period,
    Report,
    ReportContext,
    ReportError,
    Section,
    dimension_select,
    label_column,
    parse_by,
)

NAME = "outcomes"
TITLE = "Outcomes"
DEFAULT_BY = ["service"]

# A cohort dimension of its own: Māori and non-Māori clients (primary ethnicity, level 1: '2' is
# Māori). Residual ethnicity (9: don't know, refused...) is not stated, so in neither group.
MAORI = "maori"
MAORI_LABEL, NON_MAORI_LABEL = "Māori", "Non-Māori"
COHORT_DIMENSIONS = (*DIMENSIONS, MAORI)
# Breakdowns the report's form offers and how many at once (the CLI and API check the same).
ALLOWED_BY: tuple[str, ...] = COHORT_DIMENSIONS
MAX_BY = 1

Row = tuple[dict[str, str | None], dict[str, object]]


# --- Which records, and which cohorts --------------------------------------------------------------------


@dataclass(frozen=True)
class Records:
    """Whose records a query reads: one provider's, every provider's in some service lines, or all."""

    provider_id: int | None = None
    services: tuple[str, ...] | None = None

    def sql(self) -> tuple[str, list]:
        if self.provider_id is not None:
            return "provider_id = ?", [self.provider_id]
        if self.services is not None:
            if not self.services:
                return "FALSE", []
            return f"service_code IN ({', '.join('?' for _ in self.services)})", list(self.services)
        return "TRUE", []

    def describe(self) -> str:
        """Part of a released count's identity: a different population is a different question."""
        if self.provider_id is not None:
            return f"provider {self.provider_id}"
        if self.services is not None:
            return f"service lines {', '.join(sorted(self.services))}"
        return "all providers"


@dataclass(frozen=True)
class Breakdown:
    """A cohort column of a query: its name and the DuckDB expression (with parameters) giving it."""

    name: str
    sql: str
    params: tuple = ()


def cohort_select(name: str) -> str:
    """The DuckDB expression for a cohort dimension's code (the Māori pseudo-dimension included)."""
    if name == MAORI:
        return (f"CASE WHEN ethnicity = '2' THEN '{MAORI_LABEL}' "
                f"WHEN ethnicity IS NULL OR ethnicity = '9' THEN NULL ELSE '{NON_MAORI_LABEL}' END")
    return dimension_select(name)


def breakdown(name: str) -> Breakdown:
    return Breakdown(name, cohort_select(name))


def label_cohort(frame: pl.DataFrame, name: str, labels) -> pl.DataFrame:
    """Codes -> labels for a cohort column ('Not stated' for missing)."""
    if name == MAORI:
        return frame.with_columns(pl.col(name).fill_null(UNKNOWN))
    return label_column(frame, name, labels)


def parse_cohort(by, *, default: list[str], allowed: tuple[str, ...], audience: Audience, at_most: int = 1) -> list[str]:
    dims = parse_by(by, default=default, allowed=allowed)
    if len(dims) > at_most:
        raise ReportError(f"this report breaks down by at most {at_most} dimension(s), not {', '.join(dims)}")
    if audience.is_provider and "provider" in dims:
        raise ReportError("a provider's own report cannot break down by provider")
    return dims


def provider_service_lines(context: ReportContext, provider_id: int) -> tuple[str, ...]:
    frame = context.layer.frame("SELECT DISTINCT service_code FROM engagements WHERE provider_id = ? ORDER BY 1", [provider_id])
    return tuple(frame["service_code"].to_list())


# --- Labels of instruments and outcome dimensions ---------------------------------------------------------


@cache
def instrument_domains() -> pl.DataFrame:
    """instrument, domain -> labels and the sign that makes a positive change an improvement."""
    rows = [
        (i.code, d.code, i.label, d.label, 1.0 if d.better == "higher" else -1.0)
        for i in load_instruments().values() for d in i.domains.values()
    ]
    return pl.DataFrame(rows, schema={"instrument": pl.String, "domain": pl.String, "instrument_label": pl.String,
                                      "domain_label": pl.String, "sign": pl.Float64}, orient="row")


def dimension_labels() -> dict[str, str]:
    return {c.code: c.label for c in code_set("outcome_dimension")}


# --- Queries ------------------------------------------------------------------------------------------------


def cohort_query(context: ReportContext, template: str, cohorts: list[Breakdown], condition: str, params: list,
           records: Records) -> pl.DataFrame:
    """Fill `{cohorts}` (select list), `{names}` and `{where}` into a fixed template and run it."""
    records_sql, records_params = records.sql()
    selects = "".join(f"{c.sql} AS {c.name}, " for c in cohorts)
    names = "".join(f"{c.name}, " for c in cohorts)
    sql = template.format(cohorts=selects, names=names, where=f"({condition}) AND ({records_sql})")
    cohort_params = [p for c in cohorts for p in c.params]
    return context.layer.frame(sql, cohort_params + params + records_params)


def paired_scores(context: ReportContext, period: Period, records: Records, cohorts: list[Breakdown]) -> pl.DataFrame:
    """One row per instrument domain, cohort cell and person: the number of pre/post pairs whose post
    assessment fell in the period and the person's mean pre and post score over them, turned so that
    higher is better (a lower-is-better domain's scores are negated)."""
    condition, params = period.within_sql("post_on")
    frame = cohort_query(
        context,
        "SELECT instrument, domain, {cohorts}person, count(*) AS pairs, avg(pre_score) AS pre, avg(post_score) AS post "
        "FROM assessments WHERE pre_score IS NOT NULL AND post_score IS NOT NULL AND {where} "
        "GROUP BY instrument, domain, {names}person",
        cohorts, condition, params, records,
    )
    return frame.join(instrument_domains(), on=["instrument", "domain"], how="inner").with_columns(
        pre=pl.col("pre") * pl.col("sign"), post=pl.col("post") * pl.col("sign")
    ).drop("sign")


def pool_people(scores: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Merge a person's rows within `keys` into one, weighting their means by their pairs."""
    return scores.group_by(*keys, "person").agg(
        pre=(pl.col("pre") * pl.col("pairs")).sum() / pl.col("pairs").sum(),
        post=(pl.col("post") * pl.col("pairs")).sum() / pl.col("pairs").sum(),
        pairs=pl.col("pairs").sum(),
    )


def latest_better_off(context: ReportContext, period: Period, records: Records, cohorts: list[Breakdown]) -> pl.DataFrame:
    """One row per outcome dimension, cohort cell and person measured in the period: whether their
    latest outcome in that dimension (any of them, when several were measured that day) is better off."""
    condition, params = period.within_sql("measured_on")
    return cohort_query(
        context,
        "WITH measured AS (SELECT dimension, {cohorts}person, measured_on, better_off FROM outcomes WHERE {where}), "
        "ranked AS (SELECT *, max(measured_on) OVER (PARTITION BY dimension, {names}person) AS latest FROM measured) "
        "SELECT dimension, {names}person, coalesce(bool_or(better_off), FALSE) AS better_off FROM ranked "
        "WHERE measured_on IS NOT DISTINCT FROM latest GROUP BY dimension, {names}person",
        cohorts, condition, params, records,
    )


# --- Releasing figures to one reader ---------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """How figures reach one reader: controlled (suppressed, RR3-rounded, hidden under the
    threshold), or exact when they are a provider's own figures shown to that provider (`own`)."""

    context: ReportContext
    own: str | None = None  # the provider whose own figures these are

    @property
    def threshold(self) -> int:
        return self.context.threshold

    def hidden(self) -> Statistic:
        return percentage(0, 0, threshold=max(1, self.threshold))

    def people(self, frame: pl.DataFrame, *, measure: str, row_totals: bool = True, column_totals: bool = True,
               grand_total: bool = True, forced: Iterable[tuple] = ()) -> ReleasedTable:
        """A table of counts of people (or of what people did: engagements, sessions)."""
        totals = {"row_totals": row_totals, "column_totals": column_totals, "grand_total": grand_total}
        if self.own:
            return exact_table(frame, measure=measure, provider=self.own, **totals)
        return protect(frame, key=self.context.rounding_key, measure=measure, threshold=self.threshold,
                       forced=forced, **totals)

    def percent(self, numerators: ReleasedTable | None, bases: ReleasedTable | None, at: dict[str, str | None], *,
                people: int | None = None) -> Statistic | None:
        """The released count at `at` in `numerators` as a percentage of the one in `bases`, with a
        Wilson interval, from the released values (rounded for the ministry, exact for the
        provider's own). `people`: how many people the base covers when it counts something else
        (engagements); hidden when they are too few. Where a table has no such cell (nobody to
        count): None for the provider's own, hidden for others."""
        numerator, base = released_at(numerators, at), released_at(bases, at)
        if numerator is None or base is None:
            return None if self.own else self.hidden()
        if not self.own and people is not None and people < self.threshold:
            return self.hidden()
        return percentage_of(numerator, base, threshold=self.threshold)

    def estimate(self, estimate: MeanEstimate, *, digits: int = 2) -> Statistic | None:
        """A mean over `estimate.n` people with its interval."""
        return self.derived(estimate.mean, estimate.low, estimate.high, base=estimate.n, digits=digits)

    def mean(self, values: np.ndarray, *, digits: int = 2) -> Statistic | None:
        # A mean with its t interval is the paired change from zero.
        return self.estimate(paired_change(np.zeros(len(values)), values), digits=digits)

    def derived(self, value: float | None, low: float | None, high: float | None, *, base: int,
                digits: int = 2) -> Statistic | None:
        """A derived figure (a mean, a difference, an effect size) over `base` people (for a
        comparison, the smaller group's); None for the provider's own when there is nothing."""
        if value is None:
            return None if self.own else self.hidden()
        if self.own:
            return exact_statistic(round(value, digits), *(None if x is None else round(x, digits) for x in (low, high)))
        return statistic(value, low, high, base=base, threshold=self.threshold, digits=digits)


def released_at(table: ReleasedTable | None, at: dict[str, str | None]) -> ReleasedValue | None:
    """The released value at `at`, or None where the table has no such cell (nobody to count)."""
    if table is None:
        return None
    try:
        return table.get(**at)
    except KeyError:
        return None


def nobody_counted(base: ReleasedValue | None) -> bool:
    """No cell, or a released 0 (RR3 keeps 0 and takes 1 and 2 to 3, so it is an exact 0): nobody
    to take a percentage of, which is an empty figure rather than a hidden one."""
    return base is None or (not base.suppressed and base.value == 0)


def beside(own: list[Row], peers: list[Row], prefix: str = "peer_") -> list[Row]:
    """The provider's own rows, each with its peers' figures at the same coordinates."""
    at_peers = {tuple(at.items()): values for at, values in peers}
    return [(at, {**values, **{prefix + k: v for k, v in at_peers.get(tuple(at.items()), {}).items()}}) for at, values in own]


def audience_rows(context: ReportContext, audience: Audience,
                  build: Callable[[Records, Release], list[Row]]) -> list[Row]:
    """Rows for the ministry (every provider, controlled) or for a provider (its own exact, its
    service lines' peers controlled beside them)."""
    if not audience.is_provider:
        return build(Records(), Release(context))
    own = build(Records(provider_id=audience.provider_id), Release(context, own=audience.provider_code))
    peers = build(Records(services=provider_service_lines(context, audience.provider_id)), Release(context))
    return beside(own, peers)


def totals_last(categories: Iterable[str]) -> list[str | None]:
    return [*sorted(categories), None]


# --- Sections ------------------------------------------------------------------------------------------------


def change_rows(context: ReportContext, period: Period, by: str, records: Records, release: Release) -> list[Row]:
    scores = label_cohort(paired_scores(context, period, records, [breakdown(by)]), by, context.labels)
    scores = scores.with_columns(instrument=pl.col("instrument_label"), domain=pl.col("domain_label"))
    if scores.is_empty():
        return []
    people = release.people(
        scores.group_by("instrument", "domain", by).agg(count=pl.len()),
        measure=f"people with pre/post pairs by domain and {by}, {records.describe()}", column_totals=False, grand_total=False,
    )
    rows = []
    for (instrument, domain), in_domain in scores.group_by("instrument", "domain", maintain_order=True):
        for category in totals_last(in_domain[by].unique().to_list()):
            cell = in_domain if category is None else in_domain.filter(pl.col(by) == category)
            change = paired_change(cell["pre"].to_numpy(), cell["post"].to_numpy())
            at = {"instrument": instrument, "domain": domain, by: category}
            rows.append((at, {"people": people.get(**at), "mean_change": release.estimate(change)}))
    return sorted(rows, key=lambda row: (row[0]["instrument"], row[0]["domain"], row[0][by] is None, row[0][by] or ""))


def how_much_rows(context: ReportContext, period: Period, by: str, records: Records, release: Release) -> list[Row]:
    condition, params = period.overlap_sql("start_date", "end_date")
    frame = cohort_query(
        context,
        "SELECT {cohorts}count(DISTINCT person) AS people, count(*) AS engagements, "
        "CAST(sum(sessions_attended) AS BIGINT) AS sessions_attended FROM engagements WHERE {where} GROUP BY ALL",
        [breakdown(by)], condition, params, records,
    )
    frame = label_cohort(frame, by, context.labels)
    if frame.is_empty():
        return []
    population = f"by {by}, {records.describe()}"
    people = release.people(frame.select(by, count="people"), measure=f"people served {population}")
    # Wherever the people are suppressed, so is what they did (one would hint at the other).
    hide = people.suppressed_cells()
    engagements = release.people(frame.select(by, count="engagements"), measure=f"engagements {population}", forced=hide)
    sessions = release.people(frame.select(by, count="sessions_attended"), measure=f"sessions attended {population}", forced=hide)
    return [
        ({by: c}, {"people": people.get(**{by: c}), "engagements": engagements.get(**{by: c}),
                   "sessions_attended": sessions.get(**{by: c})})
        for c in totals_last(frame[by].to_list())
    ]


def _sum_where(frame: pl.DataFrame, by: str, category: str | None, columns: list[str]) -> dict[str, int]:
    cell = frame if category is None else frame.filter(pl.col(by) == category)
    return {c: int(cell[c].sum()) for c in columns}


def how_well_rows(context: ReportContext, period: Period, by: str, records: Records, release: Release) -> list[Row]:
    cohorts = [breakdown(by)]
    closed_in, closed_params = period.within_sql("end_date")
    closed_in = f"end_date IS NOT NULL AND {closed_in}"  # an open period's condition is TRUE: open engagements too
    closed = cohort_query(
        context,
        "SELECT {cohorts}count(DISTINCT person) AS people, count(*) AS closed, count(*) FILTER (WHERE completed) AS completed "
        "FROM engagements WHERE {where} GROUP BY ALL",
        cohorts, closed_in, closed_params, records,
    )
    followed = cohort_query(
        context,
        "SELECT {cohorts}count(DISTINCT person) AS people, count(*) AS assessed, count(*) FILTER (WHERE paired) AS paired "
        "FROM engagements JOIN (SELECT engagement_id, bool_or(post_score IS NOT NULL) AS paired FROM assessments "
        "WHERE pre_score IS NOT NULL GROUP BY engagement_id) USING (engagement_id) WHERE {where} GROUP BY ALL",
        cohorts, closed_in, closed_params, records,
    )
    open_in, open_params = period.overlap_sql("start_date", "end_date")
    attendance = cohort_query(
        context,
        "SELECT {cohorts}person, 100.0 * sum(sessions_attended) / sum(sessions) AS attended "
        "FROM engagements WHERE sessions > 0 AND {where} GROUP BY {names}person",
        cohorts, open_in, open_params, records,
    )
    closed, followed, attendance = (label_cohort(f, by, context.labels) for f in (closed, followed, attendance))
    completed, ended = engagement_counts(release, closed, by, "completed", "closed", engagements_closed_measure(by, records))
    paired, assessed = engagement_counts(release, followed, by, "paired", "assessed",
                                         f"engagements closed with a pre assessment by {by}, {records.describe()}")
    categories = set(closed[by].to_list()) | set(followed[by].to_list()) | set(attendance[by].to_list())
    rows = []
    for category in totals_last(categories) if categories else []:
        at = {by: category}
        attended = attendance if category is None else attendance.filter(pl.col(by) == category)
        ended_people = _sum_where(closed, by, category, ["people"])["people"]
        assessed_people = _sum_where(followed, by, category, ["people"])["people"]
        rows.append((at, {
            "completion_rate": release.percent(completed, ended, at, people=ended_people),
            "attendance_rate": release.mean(attended["attended"].to_numpy(), digits=1),
            "followed_up": release.percent(paired, assessed, at, people=assessed_people),
        }))
    return rows


def engagements_closed_measure(by: str, records: Records) -> str:
    """What the count of engagements closed in the period counts (`providers` asks it by service line too)."""
    return f"engagements closed by {by}, {records.describe()}"


def engagement_counts(release: Release, frame: pl.DataFrame, by: str, part: str, whole: str,
                      measure: str) -> tuple[ReleasedTable | None, ReleasedTable | None]:
    """The released counts behind a rate of engagements (not shown; the rate is computed from
    them): the part (completed, paired) with the whole's suppression forced, and the whole."""
    if frame.is_empty():
        return None, None
    wholes = release.people(frame.select(by, count=whole), measure=measure)
    parts = release.people(frame.select(by, count=part), measure=f"{measure}: {part}", forced=wholes.suppressed_cells())
    return parts, wholes


def better_off_counts(context: ReportContext, period: Period, cohorts: list[str], records: Records) -> pl.DataFrame:
    """Per outcome dimension (labelled) and cohort cell: people measured and people better off."""
    people = latest_better_off(context, period, records, [breakdown(c) for c in cohorts])
    for c in cohorts:
        people = label_cohort(people, c, context.labels)
    labels = dimension_labels()
    named = pl.col("dimension").replace_strict(list(labels), list(labels.values()), default=pl.col("dimension"))
    return (
        people.group_by("dimension", *cohorts)
        .agg(measured=pl.len(), better_off=pl.col("better_off").sum().cast(pl.Int64))
        .with_columns(dimension=named)
    )


@dataclass(frozen=True)
class BetterOff:
    """People measured and better off per outcome dimension (labelled) and cohort cell: the exact
    counts, and their releases (cells and the totals over the last cohort dimension)."""

    counts: pl.DataFrame
    measured: ReleasedTable | None
    better: ReleasedTable | None


def released_better_off(context: ReportContext, period: Period, cohorts: list[str], records: Records,
                        release: Release) -> BetterOff:
    """The better-off counts as released. `cohorts` and `records` name the question, so the same
    cell asked by another report (practice, cohorts) is rounded the same way."""
    counts = better_off_counts(context, period, cohorts, records)
    if counts.is_empty():
        return BetterOff(counts, None, None)
    population = f"by outcome dimension and {' and '.join(cohorts)}, {records.describe()}"
    layout = {"column_totals": False, "grand_total": False}  # a total over dimensions would count people again
    measured = release.people(counts.select("dimension", *cohorts, count="measured"), measure=f"people measured {population}",
                              **layout)
    better = release.people(counts.select("dimension", *cohorts, count="better_off"), measure=f"people better off {population}",
                            forced=measured.suppressed_cells(), **layout)
    return BetterOff(counts, measured, better)


def better_off_rows(context: ReportContext, period: Period, by: str, records: Records, release: Release) -> list[Row]:
    released = released_better_off(context, period, [by], records, release)
    counts = released.counts
    if counts.is_empty():
        return []
    order = {label: i for i, label in enumerate(dimension_labels().values())}
    rows = []
    for dimension in sorted(counts["dimension"].unique().to_list(), key=lambda d: order.get(d, len(order))):
        in_dimension = counts.filter(pl.col("dimension") == dimension)
        for category in totals_last(in_dimension[by].to_list()):
            at = {"dimension": dimension, by: category}
            rows.append((at, {"people_measured": released.measured.get(**at), "better_off": released.better.get(**at),
                              "percent_better_off": release.percent(released.better, released.measured, at)}))
    return rows


# --- The report ------------------------------------------------------------------------------------------------


def _table(context: ReportContext, title: str, dimensions: list[str], rows: list[Row], notes: list[str]):
    return statistics_table(title, dimensions, rows, threshold=context.threshold, notes=notes)


def run(context: ReportContext, *, period: Period, by: list[str] | str | None, audience: Audience) -> Report:
    dims = parse_cohort(by, default=DEFAULT_BY, allowed=COHORT_DIMENSIONS, audience=audience)
    by_name = dims[0]

    def rows(section: Callable) -> list[Row]:
        return audience_rows(context, audience, lambda records, release: section(context, period, by_name, records, release))

    if audience.is_provider:
        who = ("Your own figures are exact; the peer_ columns are every provider in the service lines you deliver "
               "(you included), controlled: counts randomly rounded to base 3, S = suppressed.")
    else:
        who = "Counts randomly rounded to base 3; S = suppressed; statistics hidden over fewer than " \
              f"{context.threshold} people."
    about = DIMENSIONS[by_name][2] if by_name in DIMENSIONS else "Māori and non-Māori clients (primary ethnicity)"
    change = _table(context, "Change in assessed scores", ["instrument", "domain", by_name], rows(change_rows), [who])
    how_much = _table(context, "How much did we do", [by_name], rows(how_much_rows), [who])
    how_well = _table(context, "How well did we do it", [by_name], rows(how_well_rows), [who])
    better_off = _table(context, "Is anyone better off", ["dimension", by_name], rows(better_off_rows), [who])
    return Report(
        name=NAME,
        title=TITLE,
        summary=f"Change in assessed scores and results-based accountability measures, by {by_name} ({about}).",
        period=period,
        by=dims,
        audience=audience,
        sections=[
            Section("change", "Change from pre to post assessment", change,
                    Chart("interval", x="domain", y="mean_change", low="mean_change_low", high="mean_change_high",
                          reference=0.0, description="Mean change per person with its 95% interval; positive = better"),
                    "Mean change per person from the pre to the post assessment (pairs whose post assessment fell in "
                    "the period; a person's pairs averaged), with a 95% t interval. Positive = improvement: where a "
                    "lower score is better (difficulties, distress) the change is pre minus post."),
            Section("how_much", "How much did we do", how_much,
                    Chart("bar", x=by_name, y="people", description=f"People served by {by_name}"),
                    "Engagements open at some time in the period, their people, and the sessions they attended "
                    "(each engagement's whole count)."),
            Section("how_well", "How well did we do it", how_well,
                    Chart("bar", x=by_name, y="completion_rate", description=f"Completion rate by {by_name}"),
                    "Completion rate: engagements closed in the period that were completed (percent, Wilson interval). "
                    "Attendance rate: per person, the share of scheduled sessions attended, averaged over people. "
                    "Followed up: engagements closed in the period with a pre assessment that have a post assessment."),
            Section("better_off", "Is anyone better off", better_off,
                    Chart("bar", x="dimension", y="percent_better_off", color=by_name,
                          description=f"Percent better off by outcome dimension and {by_name}"),
                    "People measured in the period, and those whose latest outcome in the dimension says better "
                    "off. The percentage is of the counts shown (rounded), and hidden wherever one is suppressed."),
        ],
        notes=["A person is counted once in each cell they fall in; totals add up their cells, and a total's "
               "statistics pool its cells' people."],
    )
