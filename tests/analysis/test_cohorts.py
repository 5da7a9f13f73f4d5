"""Cohort comparisons on the stored roll-out: effect sizes agree with statsmodels on groups built
from the generator's files, small groups are hidden, and a provider sees its own exactly."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from statsmodels.stats.meta_analysis import effectsize_smd

from cldx.analysis.reports import MINISTRY, Audience, Period, ReportError, cohorts, outcomes
from cldx.analysis.statistics import mean_difference
from cldx.disclosure import ReleasedValue, Statistic, is_released
from cldx.standard.codesets import load_instruments

from .test_outcomes import (
    THRESHOLD,
    domain_label,
    instrument_label,
    latest,
    outcome_records,
    person_pairs,
    persons,
    read_all,
    row,
    section,
)


def client_groups(evidence, column: str, group) -> pl.DataFrame:
    """provider, client_ref -> 'cohort', 'rest' or null, from the clients' files."""
    clients = read_all(evidence.files, "clients.csv").select("provider", "client_ref", code=pl.col(column).str.slice(0, 1))
    return clients.with_columns(side=group(pl.col("code"))).select("provider", "client_ref", "side")


def maori(code: pl.Expr) -> pl.Expr:
    return pl.when(code.is_null() | (code == "9")).then(None).when(code == "2").then(pl.lit("cohort")).otherwise(pl.lit("rest"))


def changes_by_side(evidence, groups: pl.DataFrame, instrument: str, domain: str) -> dict[str, np.ndarray]:
    """Per side: each person's mean improvement over their pairs on one domain (lower-better turned round)."""
    engagements = read_all(evidence.files, "engagements.csv").select("provider", "engagement_ref", "client_ref")
    scores = read_all(evidence.files, "assessments.csv").with_columns(pl.col("score").cast(pl.Float64)).filter(
        (pl.col("instrument") == instrument) & (pl.col("domain") == domain))
    keys = ["provider", "engagement_ref"]
    pairs = (scores.filter(pl.col("phase") == "pre").select(*keys, pre="score")
             .join(scores.filter(pl.col("phase") == "post").select(*keys, post="score"), on=keys)
             .join(engagements, on=keys).join(groups, on=["provider", "client_ref"]).drop_nulls("side")
             .join(persons(evidence.engine), on=["provider", "client_ref"]))
    sign = -1.0 if load_instruments()[instrument].domains[domain].better == "lower" else 1.0
    people = pairs.group_by("side", "person").agg(change=(sign * (pl.col("post") - pl.col("pre"))).mean())
    return {side: people.filter(pl.col("side") == side)["change"].to_numpy() for side in ("cohort", "rest")}


@pytest.mark.parametrize("instrument, domain", [("SDQ", "total"), ("FSTAR", "emotional_needs")])
def test_hedges_g_matches_statsmodels_for_maori_and_non_maori(evidence, instrument, domain):
    report = cohorts.run(evidence.context(), period=Period(), by=None, audience=MINISTRY)
    groups = changes_by_side(evidence, client_groups(evidence, "primary_ethnicity", maori), instrument, domain)
    a, b = groups["cohort"], groups["rest"]
    g, var_g = effectsize_smd(a.mean(), a.std(ddof=1), len(a), b.mean(), b.std(ddof=1), len(b))
    values = row(section(report, "change"), maori="Māori", instrument=instrument_label(instrument),
                 domain=domain_label(instrument, domain))
    assert not values["hedges_g"].suppressed
    assert values["hedges_g"].value == pytest.approx(float(g), abs=0.0051)
    half = 1.959964 * math.sqrt(float(var_g))
    assert values["hedges_g"].low == pytest.approx(float(g) - half, abs=0.0051)
    assert values["difference"].value == pytest.approx(a.mean() - b.mean(), abs=0.0051)
    assert values["mean_change_cohort"].value == pytest.approx(a.mean(), abs=0.0051)


def test_better_off_difference_and_cohens_h(evidence):
    context = evidence.context()
    report = cohorts.run(context, period=Period(), by="maori", audience=MINISTRY)
    # Each person's latest outcome on each side (ethnicity from the client records, so a person
    # recorded as Maori at one provider and not at another is on both sides, as in the report).
    sides = client_groups(evidence, "primary_ethnicity", maori).drop_nulls("side")
    measured = outcome_records(evidence).join(sides, on=["provider", "client_ref"])
    truth = latest(measured, ["side", "dimension"]).group_by("dimension", "side").agg(n=pl.len(), x=pl.col("better").sum())
    # Everything is computed from the counts the outcomes report releases for the same cells, and
    # hidden wherever it hides one of them.
    shown = section(outcomes.run(context, period=Period(), by="maori", audience=MINISTRY), "better_off")
    checked = hidden = 0
    for code, label in outcomes.dimension_labels().items():
        exact = {side: (x, n) for _, side, n, x in truth.filter(pl.col("dimension") == code).iter_rows()}
        values = row(section(report, "better_off"), maori="Māori", dimension=label)
        released = {}
        for side, group in (("cohort", "Māori"), ("rest", "Non-Māori")):
            counts = row(shown, dimension=label, maori=group)
            released[side] = None if counts["better_off"].suppressed or counts["people_measured"].suppressed else (
                min(counts["better_off"].value, counts["people_measured"].value), counts["people_measured"].value)
        if any(r is None or r[1] < THRESHOLD for r in released.values()):
            assert all(v.suppressed for v in values.values())
            hidden += 1
            continue
        for side in ("cohort", "rest"):  # the same people, rounded
            assert abs(released[side][1] - exact[side][1]) <= 2 and abs(released[side][0] - exact[side][0]) <= 2
        (x_a, n_a), (x_b, n_b) = released["cohort"], released["rest"]
        assert values["percent_cohort"].value == round(100 * x_a / n_a, 1)
        assert values["percent_rest"].value == round(100 * x_b / n_b, 1)
        assert values["difference"].value == pytest.approx(100 * (x_a / n_a - x_b / n_b), abs=0.051)
        h = 2 * math.asin(math.sqrt(x_a / n_a)) - 2 * math.asin(math.sqrt(x_b / n_b))
        assert values["cohens_h"].value == pytest.approx(h, abs=0.0051)
        half = 1.959964 * math.sqrt(1 / n_a + 1 / n_b)
        assert values["cohens_h"].low == pytest.approx(h - half, abs=0.0051)
        # Near the exact figures all the same.
        (tx_a, tn_a), (tx_b, tn_b) = exact["cohort"], exact["rest"]
        assert values["difference"].value == pytest.approx(100 * (tx_a / tn_a - tx_b / tn_b),
                                                           abs=100 * 4 / (tn_a - 2) + 100 * 4 / (tn_b - 2))
        checked += 1
    assert checked


def test_better_off_rest_is_released_for_other_breakdowns(evidence_sqlite):
    """By region the rest is everyone in another stated region: its own release, no exact counts."""
    context = evidence_sqlite.context()
    table = section(cohorts.run(context, period=Period(), by="region", audience=MINISTRY), "better_off")
    shown = section(outcomes.run(context, period=Period(), by="region", audience=MINISTRY), "better_off")
    released = 0
    for at, values in table.rows:
        same = row(shown, dimension=at["dimension"], region=at["region"])
        if values["percent_cohort"].suppressed:
            assert all(v.suppressed for v in values.values())
            continue
        # The cohort's side is the outcomes report's percentage of the same rounded counts.
        assert values["percent_cohort"] == same["percent_better_off"]
        assert not values["percent_rest"].suppressed and values["percent_rest"].value <= 100.0
        released += 1
    assert released


def test_small_groups_are_hidden_and_the_rest_released(evidence_sqlite):
    context = evidence_sqlite.context()
    report = cohorts.run(context, period=Period(), by="gender", audience=MINISTRY)
    table = section(report, "change")
    hidden = released = 0
    for coords, values in table.rows:
        instrument = next(i for i in ("FSTAR", "SDQ", "K10") if instrument_label(i) == coords["instrument"])
        domain = next(d for d, v in load_instruments()[instrument].domains.items() if v.label == coords["domain"])
        code = {v: k for k, v in context.labels.genders.items()}[coords["gender"]]
        sizes = context.layer.frame(
            "SELECT substr(gender, 1, 1) = ? AS cohort, count(DISTINCT person) AS n FROM assessments "
            "WHERE instrument = ? AND domain = ? AND pre_score IS NOT NULL AND post_score IS NOT NULL AND gender IS NOT NULL "
            "GROUP BY ALL", [code, instrument, domain])
        smallest = int(sizes["n"].min()) if sizes.height == 2 else 0
        if smallest < THRESHOLD:
            hidden += 1
            assert all(v.suppressed for v in values.values())
        else:
            released += 1
            assert not values["hedges_g"].suppressed and not values["difference"].suppressed
    assert hidden and released


def test_hedges_g_is_the_statistics_module_on_the_same_groups(evidence_sqlite):
    context = evidence_sqlite.context()
    report = cohorts.run(context, period=Period(), by="service", audience=MINISTRY)
    pairs = person_pairs(evidence_sqlite).filter((pl.col("instrument") == "SDQ") & (pl.col("domain") == "total"))
    by_side = pairs.with_columns(side=pl.when(pl.col("service_code") == "SWIS").then(pl.lit("cohort")).otherwise(pl.lit("rest")))
    people = by_side.group_by("side", "person").agg(
        change=((pl.col("pre") - pl.col("post")) * pl.col("pairs")).sum() / pl.col("pairs").sum())
    a = people.filter(pl.col("side") == "cohort")["change"].to_numpy()
    b = people.filter(pl.col("side") == "rest")["change"].to_numpy()
    effect = mean_difference(a, b)
    values = row(section(report, "change"), service="Social Workers in Schools", instrument=instrument_label("SDQ"),
                 domain=domain_label("SDQ", "total"))
    assert values["hedges_g"].value == pytest.approx(effect.effect_size, abs=0.0051)
    assert values["difference"].low == pytest.approx(effect.low, abs=0.0051)


def test_a_provider_sees_its_own_comparisons_exactly(evidence):
    context = evidence.context()
    code = "P0001"
    report = cohorts.run(context, period=Period(), by="maori", audience=Audience(context.labels.provider_ids[code], code))
    values = [v for s in report.sections for _, row_values in s.table.rows for v in row_values.values() if v is not None]
    assert values and all(v.exact for v in values)
    assert all(s.table.exact for s in report.sections)


def test_every_section_is_released(evidence_sqlite):
    context = evidence_sqlite.context()
    for by in ("maori", "region", "age_band", "ethnicity"):
        report = cohorts.run(context, period=Period.parse("2016-07:2017-12"), by=by, audience=MINISTRY)
        for s in report.sections:
            assert is_released(s.table) and not s.table.exact and s.chart.kind == "interval"
            for _, values in s.table.rows:
                assert all(isinstance(v, (Statistic, ReleasedValue)) for v in values.values())
        report.to_json()


@pytest.mark.parametrize("by", ["ta", "maori,region", "provider"])
def test_bad_breakdowns_are_report_errors(evidence_sqlite, by):
    with pytest.raises(ReportError):
        cohorts.run(evidence_sqlite.context(), period=Period(), by=by, audience=MINISTRY)


@pytest.fixture
def evidence(evidence_sqlite):
    """Reports read the analytic layer, the same DuckDB tables whichever store built it: SQLite
    here (test_reach.py, test_providers.py and test_layer.py run on PostgreSQL too)."""
    return evidence_sqlite
