"""Practice summaries on the stored roll-out: the figures agree with the files and with the outcomes
report, every sentence quotes only released values, and a provider sees its own exactly."""

from __future__ import annotations

import re

import polars as pl
import pytest

from cldx.analysis.reports import MINISTRY, Audience, Period, ReportError, outcomes, practice
from cldx.disclosure import ReleasedValue, Statistic, is_released

from .test_outcomes import instrument_label, domain_label, latest, outcome_records, row, section

NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")


def released_numbers(table) -> set[float]:
    """Every number the table releases (values and interval ends), unsigned."""
    numbers = set()
    for _, values in table.rows:
        for v in values.values():
            if isinstance(v, Statistic) and not v.suppressed:
                numbers |= {abs(x) for x in (v.value, v.low, v.high) if x is not None}
            elif isinstance(v, ReleasedValue) and not v.suppressed:
                numbers.add(abs(v.value))
    return numbers


def quoted_numbers(sentence: str) -> list[float]:
    return [float(n.replace(",", "")) for n in NUMBER.findall(sentence)]


@pytest.mark.parametrize("by, provider", [(None, None), ("maori", None), (None, "P0001"), ("region", "P0003")])
def test_sentences_quote_only_released_values(evidence_sqlite, by, provider):
    context = evidence_sqlite.context()
    audience = Audience(context.labels.provider_ids[provider], provider) if provider else MINISTRY
    report = practice.run(context, period=Period(), by=by, audience=audience)
    table = report.sections[0].table
    released = released_numbers(table)
    lines = {coords["service"] for coords, _ in table.rows if coords["service"] is not None}
    assert len(report.notes) == len(lines) and lines
    quoted = 0
    for sentence in report.notes:
        for number in quoted_numbers(sentence):
            assert any(abs(number - r) < 1e-9 for r in released), (number, sentence)
            quoted += 1
    assert quoted


def test_figures_agree_with_the_files_and_the_outcomes_report(evidence):
    context = evidence.context()
    report = practice.run(context, period=Period(), by=None, audience=MINISTRY)
    table = report.sections[0].table
    # Better off in at least one dimension, by each person's latest outcome in each, from the files.
    per_dimension = latest(outcome_records(evidence), ["service_code", "dimension"])
    anywhere = per_dimension.group_by("service_code", "person").agg(pl.col("better").any())
    family_start = anywhere.filter(pl.col("service_code") == "FS")
    values = row(table, service="Family Start")
    measured, better = values["people_measured"], values["better_off"]
    assert abs(measured.value - family_start.height) <= 2
    assert abs(better.value - family_start["better"].sum()) <= 2
    # The percentage is of the rounded counts shown beside it, so near the exact one but not it.
    assert values["percent_better_off"].value == round(100 * min(better.value, measured.value) / measured.value, 1)
    assert values["percent_better_off"].value == pytest.approx(100 * family_start["better"].mean(), abs=100 * 4 / measured.value)
    assert not values["people"].exact and values["people"].value % 3 == 0
    # The headline change of Social Workers in Schools is its SDQ total difficulties, as in `outcomes`.
    change = outcomes.run(context, period=Period(), by="service", audience=MINISTRY)
    swis = row(table, service="Social Workers in Schools")
    same = row(section(change, "change"), instrument=instrument_label("SDQ"), domain=domain_label("SDQ", "total"),
               service="Social Workers in Schools")
    assert swis["mean_change"] == same["mean_change"] and "Total difficulties" in swis["change_measure"]
    # Each dimension's percentage is the outcomes report's, of the same released (rounded) counts.
    better_off = section(change, "better_off")
    compared = 0
    for at, practice_values in table.rows:
        for code, label in outcomes.dimension_labels().items():
            try:
                same_cell = row(better_off, dimension=label, service=at["service"])
            except StopIteration:
                assert practice_values[f"better_off_{code}"] is None
                continue
            assert practice_values[f"better_off_{code}"] == same_cell["percent_better_off"], (at, code)
            compared += 1
    assert compared >= 10


def test_a_provider_sees_its_own_summary_exactly_beside_its_peers(evidence):
    context = evidence.context()
    code = "P0001"
    report = practice.run(context, period=Period(), by=None, audience=Audience(context.labels.provider_ids[code], code))
    table = report.sections[0].table
    own_lines = pl.read_csv(evidence.files / code / "engagements.csv", infer_schema=False)["service_code"].unique().to_list()
    assert {coords["service"] for coords, _ in table.rows} == {context.labels.service_lines[s] for s in own_lines} | {None}
    for _, values in table.rows:
        for name, v in values.items():
            if isinstance(v, (Statistic, ReleasedValue)):
                assert v.exact == (not name.startswith("peer_")), name
    assert all("(your clients)" in s for s in report.notes)


def test_every_section_is_released_and_small_cells_hidden(evidence_sqlite):
    context = evidence_sqlite.context()
    report = practice.run(context, period=Period.parse("2017-01:2017-06"), by="region", audience=MINISTRY)
    (summary,) = report.sections
    assert is_released(summary.table) and not summary.table.exact
    assert any(values["people"].suppressed for _, values in summary.table.rows)
    for _, values in summary.table.rows:
        counts = [values["people_measured"], values["better_off"]]
        if any(c is not None and c.suppressed for c in counts):
            assert values["percent_better_off"].suppressed
    report.to_json()


@pytest.mark.parametrize("by", ["service", "region,gender", "provider", "nonsense"])
def test_bad_breakdowns_are_report_errors(evidence_sqlite, by):
    with pytest.raises(ReportError):
        practice.run(evidence_sqlite.context(), period=Period(), by=by, audience=MINISTRY)


@pytest.fixture
def evidence(evidence_sqlite):
    """Reports read the analytic layer, the same DuckDB tables whichever store built it: SQLite
    here (test_reach.py, test_providers.py and test_layer.py run on PostgreSQL too)."""
    return evidence_sqlite
