"""Cohorts: do outcomes differ between a cohort of clients and everyone else?

`by` names the cohort dimension: by default Māori and non-Māori clients (primary ethnicity at level
1; residual ethnicity counts as not stated), or each category of region, service line, age band,
gender or ethnicity against the rest. People whose value is not stated are in neither group.

Counting as in `outcomes`: a person's change on an instrument domain is the mean over their pre/post
pairs (post assessment in the period) within the group, and a person is better off in an outcome
dimension when their latest outcome in it within the group says so. A person with engagements on
both sides (two service lines, a birthday between engagements) is in both groups.

- change: per instrument domain, the cohort's mean change minus the rest's (positive: the cohort
  improved more), with Welch's 95% interval, and Hedges' g with its interval (`mean_difference`).
- better off: per outcome dimension, the cohort's percent better off minus the rest's (percentage
  points, Newcombe's interval) and Cohen's h (`proportion_difference`).

A comparison is released only when both groups have at least the threshold of people (its base is
the smaller group), and a difference in percentages only when both percentages could be. A
provider sees its own clients' comparisons exactly.

The better-off section works on released counts only. The cohort's people measured and better off
in a dimension are the `outcomes` report's cell for that category (asked the same way, so rounded
the same way), and the rest's are released here, one cell per category and dimension (for Māori
the rest is the non-Māori cell of `outcomes`). The percentages, their difference, its interval
and Cohen's h (whose interval depends on the two group sizes alone) are all computed from those
rounded counts: computed from exact counts they would give back the exact counts behind the
rounded ones `outcomes` shows.
"""

from __future__ import annotations

import polars as pl

from cldx.disclosure import statistics_table

from ..layer import UNKNOWN
from ..statistics import EffectEstimate, mean_difference, proportion_difference
from .base import DIMENSIONS, Audience, Chart, Period, Report, ReportContext, Section
from .outcomes import (
    MAORI,
    MAORI_LABEL,
    NON_MAORI_LABEL,
    Breakdown,
    Records,
    Release,
    Row,
    cohort_select,
    dimension_labels,
    label_cohort,
    latest_better_off,
    nobody_counted,
    paired_scores,
    parse_cohort,
    released_at,
    released_better_off,
)

NAME = "cohorts"
TITLE = "Cohort comparisons"
DEFAULT_BY = [MAORI]
ALLOWED = (MAORI, "region", "service", "age_band", "gender", "ethnicity")
# Breakdowns the report's form offers and how many at once (the CLI and API check the same).
ALLOWED_BY: tuple[str, ...] = ALLOWED
MAX_BY = 1

GROUP = "compared"  # the query column saying which side of a comparison a row is on
COHORT, REST = "cohort", "rest"


def _side(by: str, code: str) -> Breakdown:
    """cohort, rest, or NULL (not stated) for one category of `by`."""
    expression = cohort_select(by)
    return Breakdown(
        GROUP,
        f"CASE WHEN ({expression}) IS NULL OR ({expression}) = ? THEN NULL "
        f"WHEN ({expression}) = ? THEN '{COHORT}' ELSE '{REST}' END",
        (UNKNOWN, code),
    )


def cohorts_of(context: ReportContext, by: str, records: Records) -> list[tuple[str, str]]:
    """(code, label) of each cohort compared with the rest."""
    if by == MAORI:
        return [(MAORI_LABEL, MAORI_LABEL)]
    condition, params = records.sql()
    frame = context.layer.frame(
        f"SELECT DISTINCT {cohort_select(by)} AS {by} FROM engagements WHERE {condition}", params
    ).drop_nulls().filter(pl.col(by) != UNKNOWN)
    labelled = label_cohort(frame.with_columns(code=pl.col(by)), by, context.labels)
    return sorted(zip(labelled["code"].to_list(), labelled[by].to_list()), key=lambda pair: pair[1])


def _sides(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return frame.filter(pl.col(GROUP) == COHORT), frame.filter(pl.col(GROUP) == REST)


def change_rows(context: ReportContext, period: Period, by: str, code: str, label: str,
                records: Records, release: Release) -> list[Row]:
    scores = paired_scores(context, period, records, [_side(by, code)]).drop_nulls(GROUP)
    rows = []
    for (instrument, domain), in_domain in scores.group_by("instrument_label", "domain_label", maintain_order=True):
        cohort, rest = _sides(in_domain)
        if cohort.is_empty() or rest.is_empty():
            continue  # nothing to compare
        change_a = cohort["post"] - cohort["pre"]
        change_b = rest["post"] - rest["pre"]
        # Means and Hedges' g stay computed from the exact data: statistics, not percentages of
        # counts. (g's interval width depends on g and the two group sizes alone, so for small
        # groups it narrows the rounded counts of people with pairs that `outcomes` releases.)
        effect = mean_difference(change_a.to_numpy(), change_b.to_numpy())
        base = min(effect.n_a, effect.n_b)
        at = {by: label, "instrument": instrument, "domain": domain}
        rows.append((at, {
            "mean_change_cohort": release.derived(change_a.mean(), None, None, base=base),
            "mean_change_rest": release.derived(change_b.mean(), None, None, base=base),
            **_effect_columns(release, effect, base, "hedges_g", scale=1.0, digits=2),
        }))
    return sorted(rows, key=lambda row: (row[0]["instrument"], row[0]["domain"]))


def _effect_columns(release: Release, effect: EffectEstimate, base: int, size_name: str, *, scale: float,
                    digits: int) -> dict[str, object]:
    scaled = [None if x is None else scale * x for x in (effect.difference, effect.low, effect.high)]
    return {
        "difference": release.derived(*scaled, base=base, digits=digits),
        size_name: release.derived(effect.effect_size, effect.effect_low, effect.effect_high, base=base),
    }


def rest_counts(context: ReportContext, period: Period, by: str, categories: list[tuple[str, str]],
                records: Records) -> pl.DataFrame:
    """Per outcome dimension (labelled) and category of `by`: people measured and better off among
    everyone else with a stated value (a person counted once however many other categories)."""
    names = dimension_labels()
    parts = []
    for code, label in categories:
        people = latest_better_off(context, period, records, [_side(by, code)]).filter(pl.col(GROUP) == REST)
        parts.append(people.group_by("dimension").agg(measured=pl.len(), better_off=pl.col("better_off").sum().cast(pl.Int64))
                     .with_columns(pl.lit(label).alias(by)))
    frame = pl.concat(parts) if parts else pl.DataFrame()
    if frame.is_empty():
        return frame
    named = pl.col("dimension").replace_strict(list(names), list(names.values()), default=pl.col("dimension"))
    return frame.with_columns(dimension=named).select("dimension", by, "measured", "better_off")


def released_rest(context: ReportContext, period: Period, by: str, categories: list[tuple[str, str]],
                  records: Records, release: Release) -> tuple:
    """The rest's people measured and better off, released one cell per dimension and category:
    no totals (the rests overlap, a sum would count people again), so no cell follows from others."""
    counts = rest_counts(context, period, by, categories, records)
    if counts.is_empty():
        return None, None
    layout = {"row_totals": False, "column_totals": False, "grand_total": False}
    population = f"outside each {by} category, by outcome dimension, {records.describe()}"
    measured = release.people(counts.select("dimension", by, count="measured"), measure=f"people measured {population}", **layout)
    better = release.people(counts.select("dimension", by, count="better_off"), measure=f"people better off {population}",
                            forced=measured.suppressed_cells(), **layout)
    return better, measured


def better_off_rows(context: ReportContext, period: Period, by: str, categories: list[tuple[str, str]],
                    records: Records, release: Release) -> list[Row]:
    """Per category and outcome dimension: both sides' percent better off, their difference and
    Cohen's h, all from released counts (see the module docstring)."""
    cohort = released_better_off(context, period, [by], records, release)
    if cohort.counts.is_empty():
        return []
    # For Māori the rest is the non-Māori cell the cohort's table already releases.
    rest = (cohort.better, cohort.measured) if by == MAORI else released_rest(context, period, by, categories, records, release)
    order = list(dimension_labels().values())
    dimensions = sorted(cohort.counts["dimension"].unique().to_list(), key=lambda d: order.index(d) if d in order else len(order))
    rows = []
    for _, label in categories:
        for dimension in dimensions:
            at_cohort = {"dimension": dimension, by: label}
            at_rest = {"dimension": dimension, by: NON_MAORI_LABEL} if by == MAORI else at_cohort
            sides = [(cohort.better, cohort.measured, at_cohort), (*rest, at_rest)]
            if any(nobody_counted(released_at(measured, at)) for _, measured, at in sides):
                continue  # nothing to compare
            rows.append(({by: label, "dimension": dimension}, _compare_shares(release, sides)))
    return rows


def _compare_shares(release: Release, sides: list) -> dict[str, object]:
    """Percent better off on each side and the difference, from the released counts of both sides."""
    percents = [release.percent(better, measured, at) for better, measured, at in sides]
    if any(p.suppressed for p in percents):
        # A difference would give back a percentage its own rules hide.
        return {"percent_cohort": release.hidden(), "percent_rest": release.hidden(),
                "difference": release.hidden(), "cohens_h": release.hidden()}
    # Rounding each count on its own can put the part above the whole: capped, as the percentages are.
    (n_a, x_a), (n_b, x_b) = [(measured.get(**at).value, better.get(**at).value) for better, measured, at in sides]
    effect = proportion_difference(min(x_a, n_a), n_a, min(x_b, n_b), n_b)
    return {"percent_cohort": percents[0], "percent_rest": percents[1],
            **_effect_columns(release, effect, min(n_a, n_b), "cohens_h", scale=100.0, digits=1)}


def run(context: ReportContext, *, period: Period, by: list[str] | str | None, audience: Audience) -> Report:
    by_name = parse_cohort(by, default=DEFAULT_BY, allowed=ALLOWED, audience=audience)[0]
    if audience.is_provider:
        records, release = Records(provider_id=audience.provider_id), Release(context, own=audience.provider_code)
        who = "Your own clients: exact."
    else:
        records, release = Records(), Release(context)
        who = f"Released only where both groups have at least {context.threshold} people."
    categories = cohorts_of(context, by_name, records)
    change = [row for code, label in categories for row in change_rows(context, period, by_name, code, label, records, release)]
    better_off = better_off_rows(context, period, by_name, categories, records, release)
    rest = "non-Māori clients" if by_name == MAORI else "everyone else with a stated " + by_name.replace("_", " ")
    about = "Māori and non-Māori clients" if by_name == MAORI else DIMENSIONS[by_name][2]
    change_table = statistics_table("Difference in mean change", [by_name, "instrument", "domain"], change,
                                    threshold=context.threshold, notes=[who])
    better_table = statistics_table("Difference in percent better off", [by_name, "dimension"], better_off,
                                    threshold=context.threshold, notes=[who])
    return Report(
        name=NAME,
        title=TITLE,
        summary=f"Outcomes of each cohort by {by_name} ({about}) compared with {rest}.",
        period=period,
        by=[by_name],
        audience=audience,
        sections=[
            Section("change", "Difference in mean change", change_table,
                    Chart("interval", x="domain", y="hedges_g", low="hedges_g_low", high="hedges_g_high", reference=0.0,
                          description="Hedges' g, cohort minus the rest, with its 95% interval"),
                    f"Mean change per person (positive = improvement) in the cohort and in {rest}; difference = "
                    "cohort minus rest with Welch's 95% interval; Hedges' g standardises it by the pooled SD."),
            Section("better_off", "Difference in percent better off", better_table,
                    Chart("interval", x="dimension", y="cohens_h", low="cohens_h_low", high="cohens_h_high", reference=0.0,
                          description="Cohen's h, cohort minus the rest, with its 95% interval"),
                    f"Percent of people better off in the cohort and in {rest}; difference in percentage points "
                    "(Newcombe's 95% interval); Cohen's h on the arcsine scale. All from the counts as released "
                    "(randomly rounded to base 3 for the ministry)."),
        ],
        notes=["People whose value is not stated are in neither group; a person with engagements on both sides is in both."],
    )
