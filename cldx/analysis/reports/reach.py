"""Reach: how many people, and how many engagements, by any breakdown, for any period.

An engagement counts when it was open at some time in the period. People are distinct person
pseudonyms within a cell, so the same person at two providers (linked by SLK-581) counts once in
a cell they share; a cell's totals are the sums of its cells, which keeps the table additive and
its protection exact (a person in two cells counts in each, and in a total twice).
"""

from __future__ import annotations

from cldx.disclosure import exact_table, protect

from .base import DIMENSIONS, Chart, Period, Report, ReportContext, Section, Audience, dimension_select, label_column, parse_by

NAME = "reach"
TITLE = "Reach"
DEFAULT_BY = ["service"]
# Breakdowns the report's form offers and how many at once (the CLI and API check the same).
ALLOWED_BY: tuple[str, ...] = tuple(DIMENSIONS)
MAX_BY = 3


def run(context: ReportContext, *, period: Period, by: list[str] | str | None, audience: Audience) -> Report:
    dims = parse_by(by, default=DEFAULT_BY)
    condition, params = period.overlap_sql("start_date", "end_date")
    if audience.is_provider:
        condition += " AND provider_id = ?"
        params.append(audience.provider_id)
    selects = ", ".join(f"{dimension_select(d)} AS {d}" for d in dims)
    names = ", ".join(dims)
    frame = context.layer.frame(
        f"SELECT {selects}, count(DISTINCT person) AS people, count(*) AS engagements "
        f"FROM engagements WHERE {condition} GROUP BY {names}",
        params,
    )
    for d in dims:
        frame = label_column(frame, d, context.labels)
    people = frame.select(*dims, count="people")
    engagements = frame.select(*dims, count="engagements")

    if audience.is_provider:
        people_table = exact_table(people, measure="people", provider=audience.provider_code)
        engagement_table = exact_table(engagements, measure="engagements", provider=audience.provider_code)
        note = "Your own records: exact."
    else:
        people_table = protect(people, key=context.rounding_key, measure=f"people by {names}", threshold=context.threshold)
        # Wherever the people are suppressed, so are their engagements (one would hint at the other).
        engagement_table = protect(engagements, key=context.rounding_key, measure=f"engagements by {names}",
                                   threshold=context.threshold, forced=people_table.suppressed_cells())
        note = "Counts randomly rounded to base 3; S = suppressed."
    described = "; ".join(f"{d}: {DIMENSIONS[d][2]}" for d in dims)
    chart = Chart("bar", x=dims[0], y="value", color=dims[1] if len(dims) > 1 else None,
                  description=f"People reached by {', '.join(dims)}")
    return Report(
        name=NAME,
        title=TITLE,
        summary=f"People and engagements with an engagement open at some time in the period, by {', '.join(dims)} ({described}).",
        period=period,
        by=dims,
        audience=audience,
        sections=[
            Section("people", "People reached", people_table, chart, note),
            Section("engagements", "Engagements", engagement_table, None, note),
        ],
        notes=["A person is counted once in each cell they fall in; totals add up their cells."],
    )
