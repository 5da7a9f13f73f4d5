"""Providers: whose clients do markedly better or worse than the clients of other providers of the
same service line, once the mix of clients each serves is allowed for?

One row per provider and service line (a provider with contracts in two lines is compared within
each line, with that line's other providers), on three measures, each in per cent:

- completion: of the engagements that ended in the period, the share that ended `completed`;
- attendance: for each engagement open in the period with sessions recorded, the share of its
  sessions attended, averaged over engagements (an engagement's sessions are not independent
  trials, so the engagement, not the session, is the unit);
- improvement, the primary measure: for each engagement with a pre and a post assessment (the
  post in the period), the change on each instrument domain, signed so that positive is better and
  scaled by the domain's range (per cent of the scale, so instruments compare), averaged over
  its domains.

Case mix: indirect standardisation within the service line (`indirect_standardise`, one row per
engagement). Each engagement is compared with the line's mean for its stratum: age band x
ethnicity, and for improvement also the baseline band (the line's tertile of how much of the scale
was left to gain at the pre assessment: clients with more room gain more). A stratum with fewer
than MIN_STRATUM engagements in the line is merged into a coarser one (ethnicity dropped, then age
band): a stratum held by one provider compares that provider with itself. A provider's adjusted
figure is the line's figure plus its mean difference from what its clients would predict
(additive for all three measures, so a change and a rate are treated alike).

Control limits (Spiegelhalter 2005, funnel plots): the difference is divided by the line's
within-stratum standard deviation, so every line shares one funnel in standard deviations,
limits +/- z sqrt(1/n + tau^2) at 95% and 99.8% for n engagements. tau^2 is the variance between
providers beyond chance (additive random effects, z-scores winsorised at 10%), estimated over all
lines, 0 when providers vary no more than chance; without it every large provider of a line
whose providers truly differ a little would be flagged. Normal limits on the residual SD rather
than the Poisson limits of the ratio: completion is common (about 70%), where Poisson overstates
the variance about threefold and flags nothing. A provider is an outlier when its improvement is
beyond a 99.8% limit; the 95% flags of all three measures are shown as early warnings. A line
with one provider has no peers and nothing is flagged there.

Disclosure: people per provider and line by `protect` over provider x line with the line totals
but not the provider totals (in so sparse a table those spread secondary suppression through the
empty cells until nearly every provider is hidden), rounded as the reach report rounds the same
cell; every line of a provider with a line of too few people is suppressed too, so its total in
the reach report cannot give the small one back. Each measure's engagement count by `protect`
with the people's suppression forced. A row's figures and flags are released only when its people
are, over a base of the people they are computed from. The funnel limits are drawn at the released
(rounded) engagement count, so they do not give the exact count back; flags use the exact count.
The crude completion rate is a percentage of released counts (`percentage_of`): the completed
engagements, released beside the engagement count with its suppression forced, over that count
(for a line, over the line's own released counts); of the exact counts it would give back the
exact count behind the rounded one in the funnel. Attendance and improvement are means, and the
adjusted figures statistics, computed from the exact data.
A provider sees its own rows exact, and its peers' rows and the line's figures as the ministry does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl

from cldx.disclosure import (
    ReleasedTable,
    Statistic,
    exact_statistic,
    exact_table,
    percentage_of,
    protect,
    statistic,
    statistics_table,
)
from cldx.standard.codesets import load_instruments

from ..statistics import FUNNEL_LEVELS, classify, indirect_standardise, mean_funnel
from . import outcomes
from .base import Audience, Chart, Period, Report, ReportContext, Section, label_column, parse_by

NAME = "providers"
TITLE = "Provider performance"
DEFAULT_BY = ["service"]
# Breakdowns the report's form offers and how many at once (the CLI and API check the same).
ALLOWED_BY: tuple[str, ...] = ("service",)
MAX_BY = 1

MIN_STRATUM = 10  # engagements a case-mix stratum needs in its line before it stands on its own
WINSORISE = 0.10  # share of z-scores pulled in at each end before estimating tau^2
NO_PEERS = "no peers"
OUTLIER_LEVEL = 0.998
PERCENT_DIGITS = 1
SD_DIGITS = 2
LIMIT_NAMES = {0.95: "95", 0.998: "998"}  # column suffixes the funnel chart reads (low95, high998, ...)


@dataclass(frozen=True)
class Measure:
    key: str
    title: str
    means: str
    strata: tuple[tuple[str, ...], ...]  # finest first; a stratum too small falls back to the next


_AGE_ETHNICITY = (("age_band", "ethnicity"), ("age_band",))
COMPLETION = Measure("completion", "Completion", "% of engagements ended in the period that were completed", _AGE_ETHNICITY)
ATTENDANCE = Measure("attendance", "Attendance", "% of sessions attended, averaged over engagements", _AGE_ETHNICITY)
IMPROVEMENT = Measure(
    "improvement", "Improvement",
    "mean change in assessment scores, % of the scale, positive = better",
    (("age_band", "ethnicity", "baseline_band"), ("age_band", "baseline_band"), ("baseline_band",)),
)
MEASURES = (COMPLETION, ATTENDANCE, IMPROVEMENT)


# --- One row per engagement and measure, outcome in per cent ------------------------------------------

_FACTS = "provider_id, service_code, person, age_band, ethnicity"


def completion_rows(context: ReportContext, period: Period) -> pl.DataFrame:
    condition, params = period.within_sql("end_date")
    return context.layer.frame(
        f"SELECT {_FACTS}, CASE WHEN completed THEN 100.0 ELSE 0.0 END AS outcome FROM engagements "
        f"WHERE end_date IS NOT NULL AND {condition} ORDER BY engagement_id",
        params,
    )


def attendance_rows(context: ReportContext, period: Period) -> pl.DataFrame:
    condition, params = period.overlap_sql("start_date", "end_date")
    return context.layer.frame(
        f"SELECT {_FACTS}, 100.0 * sessions_attended / sessions AS outcome FROM engagements "
        f"WHERE sessions > 0 AND {condition} ORDER BY engagement_id",
        params,
    )


@lru_cache(maxsize=1)
def domain_scales() -> pl.DataFrame:
    """instrument, domain -> lowest and highest score and which way is better (+1 higher, -1 lower)."""
    rows = [(code, name, float(d.min_score), float(d.max_score), 1.0 if d.better == "higher" else -1.0)
            for code, instrument in load_instruments().items() for name, d in instrument.domains.items()]
    return pl.DataFrame(rows, schema=["instrument", "domain", "lowest", "highest", "direction"], orient="row")


def improvement_rows(context: ReportContext, period: Period) -> pl.DataFrame:
    condition, params = period.within_sql("post_on")
    pairs = context.layer.frame(
        f"SELECT engagement_id, {_FACTS}, instrument, domain, pre_score, post_score FROM assessments "
        f"WHERE pre_score IS NOT NULL AND post_score IS NOT NULL AND {condition}",
        params,
    )
    width = pl.col("highest") - pl.col("lowest")
    room = (pl.when(pl.col("direction") > 0).then(pl.col("highest") - pl.col("pre_score"))
            .otherwise(pl.col("pre_score") - pl.col("lowest")))
    per_engagement = (
        pairs.sort("engagement_id", "instrument", "domain")
        .join(domain_scales(), on=["instrument", "domain"], how="inner", maintain_order="left")
        .with_columns(change=100 * pl.col("direction") * (pl.col("post_score") - pl.col("pre_score")) / width,
                      room=100 * room / width)
        .group_by("engagement_id", *_FACTS.split(", "))
        .agg(outcome=pl.col("change").mean(), room=pl.col("room").mean().round(6))
        .sort("engagement_id")
    )
    # Tertiles of room by rank (ties share the lower band), so the bands do not depend on row order.
    rank = pl.col("room").rank("min").over("service_code") - 1
    return per_engagement.with_columns(
        baseline_band=(1 + (3 * rank) // pl.len().over("service_code")).cast(pl.String)
    ).drop("engagement_id", "room")


ROWS: dict[str, Callable[[ReportContext, Period], pl.DataFrame]] = {
    "completion": completion_rows, "attendance": attendance_rows, "improvement": improvement_rows,
}


# --- Comparison within each line -------------------------------------------------------------------------


def case_mix(rows: pl.DataFrame, levels: tuple[tuple[str, ...], ...]) -> pl.DataFrame:
    """Adds `case_mix`: the finest stratum of `levels` with at least MIN_STRATUM rows in the line."""
    stratum = None
    for columns in levels:
        key = pl.concat_str([pl.col(c).cast(pl.String).fill_null("?") for c in columns], separator="/")
        big_enough = pl.len().over("service_code", key) >= MIN_STRATUM
        stratum = pl.when(big_enough).then(key) if stratum is None else stratum.when(big_enough).then(key)
    return rows.with_columns(case_mix=stratum.otherwise(pl.lit("all")))


@dataclass(frozen=True)
class Comparison:
    """One measure compared: `units` per provider x line, `lines` per line, and tau^2."""

    measure: Measure
    units: pl.DataFrame  # provider_id, service_code, n, people, crude, adjusted, adjusted_low/high, difference, peers, flag
    lines: pl.DataFrame  # service_code, n, people, mean
    between_variance: float


_UNIT_SCHEMA = {"provider_id": pl.Int64, "n": pl.Int64, "people": pl.Int64, "service_code": pl.String, "crude": pl.Float64,
                "adjusted": pl.Float64, "adjusted_low": pl.Float64, "adjusted_high": pl.Float64,
                "difference": pl.Float64, "peers": pl.Int64}
_LINE_SCHEMA = {"service_code": pl.String, "n": pl.Int64, "people": pl.Int64, "mean": pl.Float64}


def compare(rows: pl.DataFrame, measure: Measure) -> Comparison:
    """Each provider against its line's other providers, then flagged on the shared funnel."""
    parts = [compare_line(service, line_rows, measure)
             for (service,), line_rows in rows.group_by(["service_code"], maintain_order=True)]
    units = pl.concat([u for u, _ in parts]) if parts else pl.DataFrame(schema=_UNIT_SCHEMA)
    lines = pl.concat([line for _, line in parts]) if parts else pl.DataFrame(schema=_LINE_SCHEMA)
    tau2 = between_provider_variance(units.filter(pl.col("difference").is_not_null() & (pl.col("n") >= 2)))
    flags = [flag(d, n, peers, tau2) for d, n, peers in units.select("difference", "n", "peers").iter_rows()]
    return Comparison(measure, units.with_columns(flag=pl.Series(flags, dtype=pl.String)), lines, tau2)


def compare_line(service: str, rows: pl.DataFrame, measure: Measure) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One line: per provider n, people, crude and adjusted figure, and the standardised difference."""
    rows = case_mix(rows, measure.strata)
    standardised = indirect_standardise(rows, unit="provider_id", strata=["case_mix"], outcome="outcome", binary=False)
    line_mean = float(rows["outcome"].mean())
    within_sd = rows.select((pl.col("outcome") - pl.col("outcome").mean().over("case_mix")).std()).item()
    peers = standardised.height
    comparable = peers > 1 and within_sd is not None and within_sd > 0
    people = rows.group_by("provider_id").agg(people=pl.col("person").n_unique())
    units = standardised.join(people, on="provider_id").select(
        "provider_id", "n", "people",
        pl.lit(service).alias("service_code"),
        (pl.col("observed") / pl.col("n")).alias("crude"),
        (line_mean + pl.col("adjusted_difference")).alias("adjusted"),
        (line_mean + pl.col("difference_low")).alias("adjusted_low"),
        (line_mean + pl.col("difference_high")).alias("adjusted_high"),
        (pl.col("adjusted_difference") / within_sd if comparable else pl.lit(None)).alias("difference"),
        pl.lit(peers).alias("peers"),
    ).cast(_UNIT_SCHEMA)
    line = pl.DataFrame({"service_code": [service], "n": [rows.height], "people": [rows["person"].n_unique()],
                         "mean": [line_mean]}, schema=_LINE_SCHEMA)
    return units, line


def between_provider_variance(units: pl.DataFrame) -> float:
    """tau^2 on the standardised scale (Spiegelhalter 2005, section 5.3): phi from the mean of the
    winsorised squared z-scores, then tau^2 = (k phi - (k - 1)) / (sum w - sum w^2 / sum w) with
    w = n, floored at 0."""
    k = units.height
    if k < 3:
        return 0.0
    n = units["n"].to_numpy().astype(float)
    z = units["difference"].to_numpy() * np.sqrt(n)
    low, high = np.quantile(z, [WINSORISE, 1 - WINSORISE])
    phi = float(np.mean(np.clip(z, low, high) ** 2))
    denominator = n.sum() - (n**2).sum() / n.sum()
    if k * phi <= k - 1 or denominator <= 0:
        return 0.0
    return (k * phi - (k - 1)) / denominator


@lru_cache(maxsize=4096)
def limits(n: float, between_variance: float) -> dict[float, tuple[float, float]]:
    """95% and 99.8% limits, in standard deviations, for a provider's difference over n engagements."""
    # mean_funnel gives +/- z sd / sqrt(n); with sd = sqrt(1 + n tau^2) that is +/- z sqrt(1/n + tau^2).
    funnel = mean_funnel(0.0, math.sqrt(1 + n * between_variance), n, FUNNEL_LEVELS)
    return {level: (float(low), float(high)) for level, (low, high) in funnel.items()}


def flag(difference: float | None, n: int, peers: int, between_variance: float) -> str | None:
    if peers < 2:
        return NO_PEERS
    if difference is None:
        return None
    return classify(difference, limits(n, between_variance))


def outlier(improvement_flag: str | None) -> str | None:
    """The primary measure's verdict at 99.8%: better or worse than peers, or within."""
    level = f"{OUTLIER_LEVEL * 100:g}%"
    if improvement_flag == f"above {level}":
        return "better than peers"
    if improvement_flag == f"below {level}":
        return "worse than peers"
    if improvement_flag in (None, NO_PEERS):
        return improvement_flag
    return "no"


# --- Release ---------------------------------------------------------------------------------------------------


@dataclass
class Released:
    """What one audience may see, by (provider code, service label)."""

    context: ReportContext
    audience: Audience
    people: ReleasedTable
    own_people: ReleasedTable | None
    engagements: dict[str, ReleasedTable]
    own_engagements: dict[str, ReleasedTable]
    completed: Completed

    def is_own(self, provider: str | None) -> bool:
        return self.audience.is_provider and provider == self.audience.provider_code

    def people_at(self, provider: str | None, service: str):
        table = self.own_people if self.is_own(provider) else self.people
        return table.get(provider=provider, service=service)

    def hidden(self, provider: str | None, service: str) -> bool:
        return not self.is_own(provider) and self.people.get(provider=provider, service=service).suppressed

    def figure(self, provider: str | None, service: str, value: float | None, low: float | None = None,
               high: float | None = None, *, people: int, digits: int, hide: bool = False):
        """A figure about `people` people: exact in the provider's own row, else controlled; None
        where there is nothing to compute (no engagements of that kind), S where it is hidden."""
        if low is None or high is None:
            low = high = None
        if self.is_own(provider):
            if value is None:
                return None
            return exact_statistic(*(None if x is None else round(x, digits + 2) for x in (value, low, high)))
        # A row whose people are suppressed shows nothing: even "no figure" would say something of it.
        hide = hide or self.hidden(provider, service)
        if value is None and not hide:
            return None
        return statistic(0.0 if value is None else value, low, high, base=0 if hide else people,
                         threshold=self.context.threshold, digits=digits)

    def completion_rate(self, provider: str | None, service: str, *, people: int) -> Statistic | None:
        """The crude completion rate of a provider's row (or, for provider None, the line's), from
        the released counts: completed engagements over engagements ended. None where none ended."""
        own = self.is_own(provider)
        part, whole = self.completed.at(provider, service, own=own)
        if whole is None:
            return self.figure(provider, service, None, people=people, digits=PERCENT_DIGITS)
        if not own and (self.hidden(provider, service) or people < self.context.threshold):
            return self.figure(provider, service, 0.0, people=people, digits=PERCENT_DIGITS, hide=True)
        digits = PERCENT_DIGITS + 2 if own else PERCENT_DIGITS
        return percentage_of(part, whole, threshold=self.context.threshold, digits=digits)

    def label(self, provider: str | None, service: str, text: str | None, *, people: int) -> str | None:
        """A verdict (a flag) is shown where the figure it is about is: it says something about those people."""
        if self.is_own(provider):
            return text
        return None if self.hidden(provider, service) or people < self.context.threshold else text


def unit_key(provider, service):
    """One provider's row in one line, as a single category (strings or Polars expressions)."""
    return provider + " | " + service


@dataclass(frozen=True)
class Completed:
    """Released counts behind the crude completion rate: engagements ended and completed, per
    provider and line (ended: the completion funnel's count) and per line."""

    ended: ReleasedTable | None
    completed: ReleasedTable | None
    own_ended: ReleasedTable | None
    own_completed: ReleasedTable | None
    line_ended: ReleasedTable | None
    line_completed: ReleasedTable | None

    def at(self, provider: str | None, service: str, *, own: bool):
        """(completed, ended) released for a provider's row or (provider None) a line; Nones where none ended."""
        if provider is None:
            tables, at = (self.line_completed, self.line_ended), {"service": service}
        else:
            tables = (self.own_completed, self.own_ended) if own else (self.completed, self.ended)
            at = {"unit": unit_key(provider, service)}
        values = []
        for table in tables:
            try:
                values.append(None if table is None else table.get(**at))
            except KeyError:
                values.append(None)
        return (None, None) if None in values else tuple(values)


PEOPLE_MEASURE = "people by provider, service"  # the reach report's question (`--by provider,service`)


def engagements_measure(key: str) -> str:
    """What a measure's engagement count per provider and line counts; `compliance` asks it too."""
    return f"{key} engagements by provider and service"


def protect_people(context: ReportContext, people: pl.DataFrame) -> ReleasedTable:
    """People by provider and line (`people_by_provider`), as this report releases them."""
    # Cells and line totals, not provider totals: each provider holds one or two of the lines, and
    # with provider totals in the table secondary suppression spreads through the empty cells until
    # almost every provider is hidden. The measure name and coordinates are the reach report's,
    # so a cell both release is rounded the same way in both.
    return protect(people, key=context.rounding_key, measure=PEOPLE_MEASURE, threshold=context.threshold,
                   row_totals=False, forced=small_siblings(people, context.threshold))


def protect_units(context: ReportContext, counts: pl.DataFrame, *, measure: str, forced) -> ReleasedTable:
    """A count per provider and line (column `unit`, see `unit_key`), one cell each, no totals: with
    none released no cell can be worked out from the others (a two-way layout would round
    thousands of empty cells)."""
    return protect(counts, key=context.rounding_key, measure=measure, threshold=context.threshold, forced=forced,
                   grand_total=False)


def suppressed_units(people_table: ReleasedTable) -> set[tuple[str]]:
    """The units (provider and line) whose people are suppressed, as cells of a unit table."""
    return {(unit_key(p, s),) for p, s in people_table.suppressed_cells()}


def label_units(frame: pl.DataFrame, context: ReportContext) -> pl.DataFrame:
    """provider_id, service_code -> provider, service: the labels a unit (`unit_key`) is made of."""
    frame = frame.rename({"provider_id": "provider", "service_code": "service"})
    for dimension in ("provider", "service"):
        frame = label_column(frame, dimension, context.labels)
    return frame


def people_by_provider(context: ReportContext, period: Period) -> pl.DataFrame:
    """People with an engagement open in the period, by provider and line: the reach report's question."""
    condition, params = period.overlap_sql("start_date", "end_date")
    frame = context.layer.frame(
        f"SELECT provider_id, service_code, count(DISTINCT person) AS people FROM engagements WHERE {condition} GROUP BY 1, 2",
        params,
    )
    return label_units(frame, context).select("provider", "service", count="people")


def small_siblings(people: pl.DataFrame, threshold: int) -> set[tuple[str, str]]:
    """Every line of a provider that has a line with 1 to threshold - 1 people: the provider's total,
    released by the reach report, less its other lines would otherwise give the small one back."""
    small = people.filter((pl.col("count") > 0) & (pl.col("count") < threshold))["provider"].unique().to_list()
    return set(people.filter(pl.col("provider").is_in(small)).select("provider", "service").iter_rows())


def release(context: ReportContext, audience: Audience, people: pl.DataFrame, comparisons: list[Comparison]) -> Released:
    people_table = protect_people(context, people)
    own = audience.provider_code
    hidden_units = suppressed_units(people_table)
    engagements, own_engagements = {}, {}
    for comparison in comparisons:
        labelled = label_units(comparison.units, context)
        counts = labelled.select(unit=unit_key(pl.col("provider"), pl.col("service")), count="n")
        engagements[comparison.measure.key] = protect_units(
            context, counts, measure=engagements_measure(comparison.measure.key), forced=hidden_units)
        mine = counts.filter(labelled["provider"] == own) if audience.is_provider else counts.clear()
        if mine.height:
            own_engagements[comparison.measure.key] = exact_table(
                mine, measure=f"{comparison.measure.key} engagements", provider=own, grand_total=False)
    own_people = None
    mine = people.filter(pl.col("provider") == own) if audience.is_provider else people.clear()
    if mine.height:
        own_people = exact_table(mine, measure="people", provider=own)
    completion = next(c for c in comparisons if c.measure.key == COMPLETION.key)
    completed = release_completed(context, audience, completion, engagements[COMPLETION.key],
                                  own_engagements.get(COMPLETION.key))
    return Released(context, audience, people_table, own_people, engagements, own_engagements, completed)


def release_completed(context: ReportContext, audience: Audience, completion: Comparison, ended: ReleasedTable,
                      own_ended: ReleasedTable | None) -> Completed:
    """The completed engagements beside the engagements ended (released above), per provider and
    line with the ended count's suppression forced; and both per line, for the line's rate."""
    # The crude rate is the mean of 100 (completed) and 0: completed = crude x n / 100.
    done = (pl.col("crude") * pl.col("n") / 100).round().cast(pl.Int64)
    labelled = label_units(completion.units, context)
    counts = labelled.select(unit=unit_key(pl.col("provider"), pl.col("service")), count=done)
    completed = protect_units(context, counts, measure=f"{COMPLETION.key} engagements completed by provider and service",
                              forced=ended.suppressed_cells())
    own_completed = None
    if own_ended is not None:
        mine = counts.filter(labelled["provider"] == audience.provider_code)
        own_completed = exact_table(mine, measure=f"{COMPLETION.key} engagements completed", provider=audience.provider_code,
                                    grand_total=False)
    # A line's engagements ended and completed are the outcomes report's (how well, by service line):
    # released the same way there and here, so the same cell is rounded the same way.
    lines = label_column(completion.lines.rename({"service_code": "service"}), "service", context.labels).select(
        "service", closed="n", completed=(pl.col("mean") * pl.col("n") / 100).round().cast(pl.Int64))
    measure = outcomes.engagements_closed_measure("service", outcomes.Records())
    line_completed, line_ended = outcomes.engagement_counts(outcomes.Release(context), lines, "service", "completed", "closed",
                                                            measure)
    return Completed(ended, completed, own_ended, own_completed, line_ended, line_completed)


# --- Sections ----------------------------------------------------------------------------------------------------


def _unit_records(comparison: Comparison, context: ReportContext) -> dict[tuple[str, str], dict]:
    labelled = label_units(comparison.units, context)
    return {(r["provider"], r["service"]): r for r in labelled.iter_rows(named=True)}


def _line_records(comparison: Comparison, context: ReportContext) -> dict[str, dict]:
    labelled = label_column(comparison.lines.rename({"service_code": "service"}), "service", context.labels)
    return {r["service"]: r for r in labelled.iter_rows(named=True)}


def _line_values(released: Released, lines: dict[str, dict[str, dict]], service: str) -> dict[str, object]:
    """The line's own figures, the benchmark its providers are set against (no flags)."""
    values: dict[str, object] = {"people": released.people_at(None, service)}
    for key, records in lines.items():
        line = records.get(service)
        mean, base = (None, 0) if line is None else (line["mean"], line["people"])
        if key == COMPLETION.key:
            values[f"{key}_rate"] = released.completion_rate(None, service, people=base)
        else:
            values[f"{key}_rate"] = released.figure(None, service, mean, people=base, digits=PERCENT_DIGITS)
        values[f"{key}_adjusted"] = released.figure(None, service, mean, people=base, digits=PERCENT_DIGITS)
        values[f"{key}_flag"] = None
    values["outlier"] = None
    return values


def _unit_values(released: Released, units: dict[str, dict[tuple[str, str], dict]], provider: str,
                 service: str) -> dict[str, object]:
    values: dict[str, object] = {"people": released.people_at(provider, service)}
    for key, records in units.items():
        unit = records.get((provider, service), {})
        base = unit.get("people", 0)
        if key == COMPLETION.key:
            values[f"{key}_rate"] = released.completion_rate(provider, service, people=base)
        else:
            values[f"{key}_rate"] = released.figure(provider, service, unit.get("crude"), people=base, digits=PERCENT_DIGITS)
        values[f"{key}_adjusted"] = released.figure(provider, service, unit.get("adjusted"), unit.get("adjusted_low"),
                                                    unit.get("adjusted_high"), people=base, digits=PERCENT_DIGITS)
        values[f"{key}_flag"] = released.label(provider, service, unit.get("flag"), people=base)
    # From the released improvement flag, so hidden wherever that is.
    values["outlier"] = outlier(values.get(f"{IMPROVEMENT.key}_flag"))
    return values


def comparison_section(released: Released, comparisons: list[Comparison], keys: list[tuple[str, str]],
                       services: list[str]) -> Section:
    context = released.context
    units = {c.measure.key: _unit_records(c, context) for c in comparisons}
    lines = {c.measure.key: _line_records(c, context) for c in comparisons}
    rows = []
    for service in services:
        rows.append(({"provider": None, "service": service}, _line_values(released, lines, service)))
        rows += [({"provider": provider, "service": service}, _unit_values(released, units, provider, service))
                 for provider, unit_service in keys if unit_service == service]
    notes = [f"{m.key}: {m.means}" for m in MEASURES] + [
        "_rate: as recorded; _adjusted: the line's figure plus the provider's difference from what its mix of clients "
        "predicts, with a 95% interval; the provider column blank (Total) is the line's own figure, the benchmark.",
        "_flag: against the funnel's 95% and 99.8% control limits; outlier: improvement beyond the 99.8% limit.",
    ]
    table = statistics_table("Providers against their service line", ["provider", "service"], rows,
                             threshold=context.threshold, notes=notes)
    chart = Chart("interval", x="provider", y="improvement_adjusted", low="improvement_adjusted_low",
                  high="improvement_adjusted_high", color="service",
                  description="Case-mix adjusted improvement per provider with its 95% interval, by service line")
    return Section("comparison", "Providers against their service line", table, chart, _audience_note(released.audience))


def funnel_section(released: Released, comparison: Comparison, keys: list[tuple[str, str]]) -> Section:
    context, key = released.context, comparison.measure.key
    units = _unit_records(comparison, context)
    rows = []
    for provider, service in keys:
        unit = units.get((provider, service))
        if unit is None:
            continue
        values = funnel_values(released, comparison, provider, service, unit)
        rows.append(({"provider": provider, "service": service}, values))
    table = statistics_table(
        f"{comparison.measure.title}: funnel", ["provider", "service"], rows, threshold=context.threshold,
        notes=[f"difference: case-mix adjusted {comparison.measure.means}, minus what the provider's clients predict, "
               "in standard deviations of the line's engagements; limits at 95% and 99.8% for the engagements shown, "
               "widened for variation between providers beyond chance where there is any."],
    )
    chart = Chart("funnel", x="engagements", y="difference", low="low998", high="high998", reference=0.0,
                  description=f"{comparison.measure.title}: each provider's difference from expected against its "
                              "number of engagements, with 95% and 99.8% control limits")
    return Section(f"funnel_{key}", f"{comparison.measure.title}: funnel plot", table, chart, _audience_note(released.audience))


def funnel_values(released: Released, comparison: Comparison, provider: str, service: str, unit: dict) -> dict:
    own = released.is_own(provider)
    counts = released.own_engagements if own else released.engagements
    count = counts[comparison.measure.key].get(unit=unit_key(provider, service))
    people = unit["people"]
    values: dict[str, object] = {
        "engagements": count,
        "difference": released.figure(provider, service, unit["difference"], people=people, digits=SD_DIGITS,
                                      hide=count.suppressed),
        "flag": released.label(provider, service, None if count.suppressed else unit["flag"], people=people),
    }
    # Limits at the count shown (rounded for peers), so they do not give the exact count back.
    at = {} if count.suppressed or unit["difference"] is None else limits(count.value, comparison.between_variance)
    for level, name in LIMIT_NAMES.items():
        low, high = at.get(level, (None, None))
        values[f"low{name}"] = released.figure(provider, service, low, people=people, digits=SD_DIGITS, hide=count.suppressed)
        values[f"high{name}"] = released.figure(provider, service, high, people=people, digits=SD_DIGITS, hide=count.suppressed)
    return values


def _audience_note(audience: Audience) -> str:
    if audience.is_provider:
        return (f"Your own rows ({audience.provider_code}) are exact; your peers' rows and the line's figures are "
                "controlled as for the ministry: counts randomly rounded to base 3, S = suppressed.")
    return "Counts randomly rounded to base 3; S = suppressed; figures shown only over at least the threshold of people."


# --- The report ----------------------------------------------------------------------------------------------------


def run(context: ReportContext, *, period: Period, by: list[str] | str | None, audience: Audience) -> Report:
    dims = parse_by(by, default=DEFAULT_BY, allowed=("service",))
    comparisons = [compare(ROWS[m.key](context, period), m) for m in MEASURES]
    people = people_by_provider(context, period)
    released = release(context, audience, people, comparisons)
    keys = sorted({(p, s) for p, s in people.select("provider", "service").iter_rows()}, key=lambda k: (k[1], k[0]))
    services = sorted({s for _, s in keys})
    if audience.is_provider:
        # A provider is compared with the peers of its own lines only.
        services = [s for s in services if (audience.provider_code, s) in set(keys)]
        keys = [k for k in keys if k[1] in services]
    sections = [comparison_section(released, comparisons, keys, services)]
    sections += [funnel_section(released, c, keys) for c in comparisons]
    return Report(
        name=NAME,
        title=TITLE,
        summary=("Completion, attendance and improvement per provider and service line, adjusted for the age, "
                 "ethnicity and (for improvement) baseline scores of each provider's clients, against funnel-plot "
                 "control limits of the line's providers; outliers are providers whose improvement is beyond the "
                 "99.8% limit."),
        period=period,
        by=dims,
        audience=audience,
        sections=sections,
        notes=[
            "Providers are compared within a service line; a provider with two lines has a row in each.",
            "Case mix by indirect standardisation within the line: age band x ethnicity (and baseline band for "
            "improvement); strata with too few engagements are merged into coarser ones.",
            "Control limits in standard deviations of the line's engagements, shared by all lines (Spiegelhalter 2005), "
            "widened for variation between providers beyond chance (additive random effects).",
        ],
    )
