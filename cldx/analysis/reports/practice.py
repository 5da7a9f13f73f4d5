"""Practice summaries: what changed for clients of each service line, in figures fit to publish.

One row per service line (and per cohort within it when `by` names one; default none), counted as
in `outcomes` (a person is counted once in each cell they fall in; totals add up their cells):

- people: people with an engagement open at some time in the period;
- people measured: people with an outcome measured in the period, and how many of them were
  better off in at least one dimension (their latest outcome in it says so), with the percentage;
- the percent better off in each outcome dimension, over the people measured in it;
- the mean change per person on the service line's headline assessment: the instrument most of
  its people were assessed on, on its total domain when it has one (SDQ total difficulties), its
  only domain (K10 distress), or else the person's mean over the domains they were assessed on
  (Family Star Plus areas, all on one scale). Positive = improvement, as in `outcomes`.

Percentages are computed from released counts (`percentage_of`), never exact ones: overall from
the people measured and better off shown in the row; per dimension from the better-off counts the
`outcomes` report releases for the same cells (asked the same way, so rounded the same way), or,
for a cohort's cells, from a release of the same question by service line and cohort.

Each service line also gets a plain-language sentence in the report's notes, written only from
the values released in the table (rounded counts, released percentages and means), so it cannot
say more than the table does. A provider gets its own figures exact, with the controlled figures
of all providers in the same service lines beside them (`peer_*`).
"""

from __future__ import annotations

import polars as pl

from cldx.disclosure import ReleasedValue, Statistic, statistics_table

from ..statistics import paired_change
from .base import Audience, Chart, Period, Report, ReportContext, Section
from .outcomes import (
    MAORI,
    BetterOff,
    Records,
    Release,
    Row,
    instrument_domains,
    cohort_query,
    audience_rows,
    breakdown,
    dimension_labels,
    label_cohort,
    latest_better_off,
    nobody_counted,
    paired_scores,
    parse_cohort,
    pool_people,
    released_at,
    released_better_off,
    totals_last,
)

NAME = "practice"
TITLE = "Practice summaries"
DEFAULT_BY: list[str] = []
ALLOWED = (MAORI, "region", "ethnicity", "age_band", "gender")
# Breakdowns the report's form offers and how many at once (the CLI and API check the same).
ALLOWED_BY: tuple[str, ...] = ALLOWED
MAX_BY = 1
SERVICE = "service"


def _labelled(frame: pl.DataFrame, dims: list[str], labels) -> pl.DataFrame:
    for d in dims:
        frame = label_cohort(frame, d, labels)
    return frame


def served(context: ReportContext, period: Period, dims: list[str], records: Records) -> pl.DataFrame:
    condition, params = period.overlap_sql("start_date", "end_date")
    frame = cohort_query(context, "SELECT {cohorts}count(DISTINCT person) AS count FROM engagements WHERE {where} GROUP BY ALL",
                   [breakdown(d) for d in dims], condition, params, records)
    return _labelled(frame, dims, context.labels)


def measured_people(context: ReportContext, period: Period, dims: list[str], records: Records) -> pl.DataFrame:
    """One row per outcome dimension (code), cell and person measured, with whether they were better off."""
    return _labelled(latest_better_off(context, period, records, [breakdown(d) for d in dims]), dims, context.labels)


def _headline_domains(instrument: str, assessed: list[str]) -> tuple[list[str], str]:
    """Which of an instrument's domains make its headline change, and how to say what it is."""
    domains = instrument_domains().filter(pl.col("instrument") == instrument)
    labels = dict(zip(domains["domain"].to_list(), domains["domain_label"].to_list()))
    if "total" in labels:
        return ["total"], labels["total"]
    if len(labels) == 1:
        return list(labels), next(iter(labels.values()))
    return assessed, "mean over the domains assessed"


def headline_changes(context: ReportContext, period: Period, dims: list[str], records: Records) -> pl.DataFrame:
    """Per service line, cohort cell and person: mean pre and post on the line's headline assessment,
    with `measure` saying what it is ("<instrument>, <domain or how averaged>")."""
    scores = _labelled(paired_scores(context, period, records, [breakdown(d) for d in dims]), dims, context.labels)
    parts = []
    for (service,), in_service in scores.group_by(SERVICE):
        instrument = in_service.group_by("instrument").agg(people=pl.col("person").n_unique()) \
            .sort(["people", "instrument"], descending=[True, False])["instrument"][0]
        in_instrument = in_service.filter(pl.col("instrument") == instrument)
        domains, describe = _headline_domains(instrument, sorted(in_instrument["domain"].unique().to_list()))
        pooled = pool_people(in_instrument.filter(pl.col("domain").is_in(domains)), dims)
        label = in_instrument["instrument_label"][0]
        parts.append(pooled.with_columns(measure=pl.lit(f"{label}, {describe}")))
    return pl.concat(parts) if parts else pl.DataFrame()


def _cell(frame: pl.DataFrame, at: dict[str, str | None]) -> pl.DataFrame:
    for d, category in at.items():
        if category is not None and d in frame.columns:
            frame = frame.filter(pl.col(d) == category)
    return frame


def practice_rows(context: ReportContext, period: Period, dims: list[str], records: Records, release: Release) -> list[Row]:
    people_frame = served(context, period, dims, records)
    if people_frame.is_empty():
        return []
    measured = measured_people(context, period, dims, records)
    anywhere = measured.group_by(*dims, "person").agg(better_off=pl.col("better_off").any())
    counts = anywhere.group_by(*dims).agg(count=pl.len(), better_off=pl.col("better_off").sum().cast(pl.Int64))
    changes = headline_changes(context, period, dims, records)

    population = f"by {', '.join(dims)}, {records.describe()}"
    layout = {"column_totals": False}  # only service lines' rows and their totals are shown
    people = release.people(people_frame, measure=f"people served {population}", **layout)
    with_outcome = release.people(counts.select(*dims, "count"), measure=f"people with an outcome measured {population}",
                                  forced=people.suppressed_cells(), **layout)
    better = release.people(counts.select(*dims, count="better_off"), measure=f"people better off {population}",
                            forced=with_outcome.suppressed_cells(), **layout)
    by_dimension = _better_off_by_dimension(context, period, dims, records, release)
    rows = []
    for at in _coordinates(people_frame, dims):
        n_released = released_at(with_outcome, at)
        values: dict[str, object] = {
            "people": people.get(**at),
            "people_measured": n_released,
            "better_off": released_at(better, at),
            "percent_better_off": None if nobody_counted(n_released) else release.percent(better, with_outcome, at),
        }
        values.update(_dimension_percents(release, by_dimension, dims, at))
        values.update(_headline(release, _cell(changes, at) if at[SERVICE] is not None else pl.DataFrame()))
        rows.append((at, values))
    return rows


def _coordinates(frame: pl.DataFrame, dims: list[str]) -> list[dict[str, str | None]]:
    """Each service line's cells (cohorts) then its total, service lines in order, then the grand total."""
    out = []
    for service in sorted(frame[SERVICE].unique().to_list()):
        if len(dims) > 1:
            cohorts = frame.filter(pl.col(SERVICE) == service)[dims[1]].to_list()
            out += [{SERVICE: service, dims[1]: c} for c in totals_last(cohorts)]
        else:
            out.append({SERVICE: service})
    out.append(dict.fromkeys(dims))
    return out


def _better_off_by_dimension(context: ReportContext, period: Period, dims: list[str], records: Records,
                             release: Release) -> list[BetterOff]:
    """Released better-off counts by dimension and service line (the `outcomes` report's own, with
    line totals), then, with a cohort, by dimension, service line and cohort (for the cohort cells)."""
    by_line = released_better_off(context, period, [SERVICE], records, release)
    return [by_line] if len(dims) == 1 else [by_line, released_better_off(context, period, dims, records, release)]


def _dimension_percents(release: Release, by_dimension: list[BetterOff], dims: list[str],
                        at: dict[str, str | None]) -> dict[str, object]:
    """Percent better off in each dimension, of the released counts for the row's cell."""
    in_cohort = len(dims) > 1 and at[dims[1]] is not None
    released, where = (by_dimension[1], at) if in_cohort else (by_dimension[0], {SERVICE: at[SERVICE]})
    values: dict[str, object] = {}
    for code, label in dimension_labels().items():
        cell = {"dimension": label, **where}
        nobody = nobody_counted(released_at(released.measured, cell))
        values[f"better_off_{code}"] = None if nobody else release.percent(released.better, released.measured, cell)
    return values


def _headline(release: Release, changes: pl.DataFrame) -> dict[str, object]:
    if changes.is_empty():
        return {"change_measure": None, "mean_change": None}
    estimate = paired_change(changes["pre"].to_numpy(), changes["post"].to_numpy())
    return {"change_measure": changes["measure"][0], "mean_change": release.estimate(estimate)}


# --- Sentences from released values only ----------------------------------------------------------------------


def _number(value: object) -> float | int | None:
    """The released number of a value, or None when it is hidden, suppressed or absent."""
    if isinstance(value, (Statistic, ReleasedValue)) and not value.suppressed:
        return value.value
    return None


def _text(number: float | int) -> str:
    return f"{number:,}" if isinstance(number, int) else f"{number:g}"


def sentence(service: str, values: dict[str, object], *, own: bool) -> str:
    """What changed for a service line's clients, in words, from its released values."""
    who = f"{service} (your clients)" if own else service
    if values.get("people_measured") is None:
        return f"{who}: no outcomes were measured in the period."
    percent, measured = _number(values.get("percent_better_off")), _number(values.get("people_measured"))
    if percent is None or measured is None:
        return f"{who}: too few people measured to say how many were better off."
    words = (f"{who}: {_text(percent)}% of the {_text(measured)} people whose outcomes were measured "
             "were better off in at least one area")
    dimensions = {code: _number(values.get(f"better_off_{code}")) for code in dimension_labels()}
    released = {code: p for code, p in dimensions.items() if p is not None}
    if released:
        best = max(released, key=lambda code: released[code])
        words += f", most often in {dimension_labels()[best].lower()} ({_text(released[best])}%)"
    peer = _number(values.get("peer_percent_better_off"))
    if peer is not None:
        words += f" (all providers in this service line: {_text(peer)}%)"
    change = _number(values.get("mean_change"))
    if change is not None:
        direction = "improved" if change > 0 else "worsened" if change < 0 else "did not change"
        amount = f" by {_text(abs(change))} points on average" if change else " on average"
        words += f"; on its headline assessment ({values['change_measure']}) scores {direction}{amount}"
    return words + "."


def run(context: ReportContext, *, period: Period, by: list[str] | str | None, audience: Audience) -> Report:
    cohort = parse_cohort(by, default=DEFAULT_BY, allowed=ALLOWED, audience=audience)
    dims = [SERVICE, *cohort]
    rows = audience_rows(context, audience, lambda records, release: practice_rows(context, period, dims, records, release))
    sentences = [sentence(at[SERVICE], values, own=audience.is_provider)
                 for at, values in rows if at[SERVICE] is not None and all(at[d] is None for d in cohort)]
    who = ("Your own figures are exact; peer_ columns are every provider in the same service lines (you included), "
           "controlled." if audience.is_provider else "Counts randomly rounded to base 3; S = suppressed.")
    table = statistics_table("What changed for clients", dims, rows, threshold=context.threshold, notes=[who])
    return Report(
        name=NAME,
        title=TITLE,
        summary="Per service line" + (f" and {cohort[0]}" if cohort else "") + ": people served, the share better "
                "off overall and in each outcome dimension, and the mean change on the headline assessment.",
        period=period,
        by=dims,
        audience=audience,
        sections=[
            Section("summary", "What changed for clients", table,
                    Chart("bar", x=SERVICE, y="percent_better_off", color=cohort[0] if cohort else None,
                          description="Percent of people measured who were better off in at least one area"),
                    "Better off: the person's latest outcome in a dimension says so; overall, in at least one "
                    "dimension. Mean change: positive = improvement. Percentages are of released (rounded) counts "
                    "and hidden wherever a count they rest on is suppressed."),
        ],
        notes=sentences,
    )
