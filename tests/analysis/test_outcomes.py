"""Outcomes on the stored roll-out: changes and better-off shares agree with the generator's files,
small cells are hidden, and a provider sees its own figures exactly beside controlled peers.

The independent computations read the generator's CSV files with Polars and SciPy. Only the person
pseudonym comes from the store (it is keyed: a test cannot recompute it from the files).
"""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest
from scipy import stats
from sqlalchemy import text

from cldx.analysis.reports import MINISTRY, Audience, Period, ReportError
from cldx.analysis.reports import outcomes
from cldx.disclosure import ReleasedValue, Statistic, is_released
from cldx.standard.codesets import load_instruments
from cldx.store.db import read_transaction
from cldx.store.scope import set_scope

THRESHOLD = 6


# --- The generator's files, read independently ----------------------------------------------------------


def read_all(files, name: str) -> pl.DataFrame:
    """One record type from every provider's folder, as text, with a `provider` column."""
    frames = [
        pl.read_csv(folder / name, infer_schema=False).with_columns(provider=pl.lit(folder.name))
        for folder in sorted(p for p in files.iterdir() if p.is_dir() and p.name != "registry")
    ]
    return pl.concat(frames)


def persons(engine) -> pl.DataFrame:
    """provider code, client_ref -> the person pseudonym the layer uses (its client id when unlinked)."""
    with read_transaction(engine) as session:
        connection = session.connection()
        set_scope(connection, everything=True)
        rows = connection.execute(text(
            "SELECT p.code, c.client_ref, c.person_key, c.id FROM client c JOIN provider p ON p.id = c.provider_id "
            "WHERE c.withdrawn_at IS NULL"
        )).all()
    return pl.DataFrame(
        [(code, ref, key if key is not None else f"client:{cid}") for code, ref, key, cid in rows],
        schema={"provider": pl.String, "client_ref": pl.String, "person": pl.String}, orient="row",
    )


def engagements_with_people(evidence) -> pl.DataFrame:
    engagements = read_all(evidence.files, "engagements.csv").select("provider", "engagement_ref", "client_ref", "service_code")
    return engagements.join(persons(evidence.engine), on=["provider", "client_ref"], how="inner")


def person_pairs(evidence) -> pl.DataFrame:
    """Per provider, service line, instrument domain and person: mean pre and post scores over pairs."""
    scores = read_all(evidence.files, "assessments.csv").with_columns(pl.col("score").cast(pl.Float64))
    keys = ["provider", "engagement_ref", "instrument", "domain"]
    pre = scores.filter(pl.col("phase") == "pre").select(*keys, pre="score")
    post = scores.filter(pl.col("phase") == "post").select(*keys, post="score")
    pairs = pre.join(post, on=keys, how="inner").join(engagements_with_people(evidence), on=["provider", "engagement_ref"])
    return pairs.group_by("provider", "service_code", "instrument", "domain", "person").agg(
        pl.col("pre").mean(), pl.col("post").mean(), pairs=pl.len())


def per_person(pairs: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """A person's pairs pooled within `keys` (weighted by their number of pairs)."""
    return pairs.group_by(*keys, "person").agg(
        pre=(pl.col("pre") * pl.col("pairs")).sum() / pl.col("pairs").sum(),
        post=(pl.col("post") * pl.col("pairs")).sum() / pl.col("pairs").sum(),
    )


def improvement(instrument: str, domain: str, people: pl.DataFrame):
    """scipy's paired t on (better side minus worse side): mean change, interval, n."""
    lower_is_better = load_instruments()[instrument].domains[domain].better == "lower"
    first, second = ("pre", "post") if lower_is_better else ("post", "pre")
    result = stats.ttest_rel(people[first].to_numpy(), people[second].to_numpy())
    low, high = result.confidence_interval(0.95)
    return float((people[first] - people[second]).mean()), low, high, people.height


def _date(value: str) -> date:
    return datetime.strptime(value, "%d/%m/%Y").date() if "/" in value else date.fromisoformat(value)


def outcome_records(evidence) -> pl.DataFrame:
    """Every outcome with its service line, client and person; `better` from the y/n flag."""
    measured = read_all(evidence.files, "outcomes.csv").with_columns(
        measured_on=pl.col("measured_on").map_elements(_date, return_dtype=pl.Date), better=pl.col("better_off") == "y")
    return measured.join(engagements_with_people(evidence), on=["provider", "engagement_ref"])


def latest(measured: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Per `keys` and person: better off by their latest outcome (any of those on that day)."""
    keys = [*keys, "person"]
    newest = measured.filter(pl.col("measured_on") == pl.col("measured_on").max().over(keys))
    return newest.group_by(keys).agg(better=pl.col("better").any())


# --- Reading the report ------------------------------------------------------------------------------------------


def section(report, key: str):
    return next(s for s in report.sections if s.key == key).table


def row(table, **at) -> dict[str, object]:
    wanted = {d: at.get(d) for d in table.dimensions}
    return next(values for coords, values in table.rows if coords == wanted)


def instrument_label(code: str) -> str:
    return load_instruments()[code].label


def domain_label(instrument: str, domain: str) -> str:
    return load_instruments()[instrument].domains[domain].label


# --- Tests ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service, instrument, domain", [("SWIS", "SDQ", "total"), ("FS", "FSTAR", "emotional_needs")])
def test_mean_change_matches_a_paired_t_on_the_files(evidence, service, instrument, domain):
    context = evidence.context()
    report = outcomes.run(context, period=Period(), by="service", audience=MINISTRY)
    pairs = person_pairs(evidence).filter((pl.col("instrument") == instrument) & (pl.col("domain") == domain))
    line = context.labels.service_lines[service]
    for category, people in ((line, per_person(pairs.filter(pl.col("service_code") == service), ["service_code"])),
                             (None, per_person(pairs, ["service_code"]))):
        mean, low, high, n = improvement(instrument, domain, people)
        values = row(section(report, "change"), instrument=instrument_label(instrument),
                     domain=domain_label(instrument, domain), service=category)
        change = values["mean_change"]
        assert not change.suppressed and not change.exact
        assert change.value == pytest.approx(mean, abs=0.0051)
        assert change.low == pytest.approx(low, abs=0.0051) and change.high == pytest.approx(high, abs=0.0051)
        assert abs(values["people"].value - n) <= 2  # RR3
    # Lower is better on SDQ difficulties and K10 distress: still, positive means clients improved.
    assert change.value > 0


def test_better_off_percent_matches_the_files(evidence):
    context = evidence.context()
    report = outcomes.run(context, period=Period(), by="service", audience=MINISTRY)
    people = latest(outcome_records(evidence), ["service_code", "dimension"])
    truth = people.group_by("service_code", "dimension").agg(n=pl.len(), x=pl.col("better").sum())
    table = section(report, "better_off")
    dimensions = outcomes.dimension_labels()
    checked = 0
    for service, dimension, n, x in truth.iter_rows():
        values = row(table, dimension=dimensions[dimension], service=context.labels.service_lines[service])
        percent, measured, better = values["percent_better_off"], values["people_measured"], values["better_off"]
        if better.suppressed or measured.suppressed:
            assert percent.suppressed
            continue
        assert abs(measured.value - n) <= 2 and abs(better.value - x) <= 2  # RR3
        # The percentage is of the rounded counts shown, so near the exact one but not it.
        assert percent.value == round(100 * min(better.value, measured.value) / measured.value, 1)
        assert percent.value == pytest.approx(100 * x / n, abs=100 * 4 / (n - 2) + 0.05)
        checked += 1
    assert checked >= 10


def released_share(part: ReleasedValue, whole: ReleasedValue) -> float | None:
    """The percentage the released counts give, as the report must show it (None when it must hide it)."""
    if part.suppressed or whole.suppressed or whole.value < THRESHOLD:
        return None
    return round(100 * min(part.value, whole.value) / whole.value, 1)


@pytest.mark.parametrize("by", ["service", "region", "maori"])
def test_every_better_off_percent_is_of_the_released_counts(evidence_sqlite, by):
    """Regression: a percentage of exact counts beside their rounded release gives the exact counts back."""
    context = evidence_sqlite.context()
    for audience in (MINISTRY, Audience(context.labels.provider_ids["P0001"], "P0001")):
        table = section(outcomes.run(context, period=Period(), by=by, audience=audience), "better_off")
        shown = 0
        for _, values in table.rows:
            for prefix in ("", "peer_") if audience.is_provider else ("",):
                percent = values.get(prefix + "percent_better_off")
                if percent is None:
                    continue
                part, whole = values[prefix + "better_off"], values[prefix + "people_measured"]
                if part.exact:  # the provider's own figures: exact counts, exact percentage
                    assert percent.exact and percent.value == round(100 * part.value / whole.value, 1)
                    continue
                expected = released_share(part, whole)
                assert percent.suppressed == (expected is None)
                if expected is not None:
                    assert not percent.exact and percent.value == expected
                    shown += 1
        assert shown


def test_small_cells_are_hidden(evidence_sqlite):
    context = evidence_sqlite.context()
    report = outcomes.run(context, period=Period.parse("2017-01:2017-06"), by="region", audience=MINISTRY)
    sizes = context.layer.frame(
        "SELECT instrument, domain, region, count(DISTINCT person) AS n FROM assessments "
        "WHERE pre_score IS NOT NULL AND post_score IS NOT NULL "
        "AND post_on BETWEEN DATE '2017-01-01' AND DATE '2017-06-30' GROUP BY ALL")
    labels = context.labels.regions
    small = large = 0
    for instrument, domain, region, n in sizes.iter_rows():
        values = row(section(report, "change"), instrument=instrument_label(instrument),
                     domain=domain_label(instrument, domain), region=labels.get(region, region) if region else "Not stated")
        if n < THRESHOLD:
            small += 1
            assert values["mean_change"].suppressed and values["people"].suppressed
        else:
            large += 1
            assert not values["mean_change"].suppressed
    assert small and large
    for _, values in section(report, "better_off").rows:
        if values["better_off"].suppressed or values["people_measured"].suppressed:
            assert values["percent_better_off"].suppressed


def test_a_provider_sees_its_own_outcomes_exactly_beside_controlled_peers(evidence):
    context = evidence.context()
    code = "P0001"
    report = outcomes.run(context, period=Period(), by="service", audience=Audience(context.labels.provider_ids[code], code))
    pairs = person_pairs(evidence)
    own = pairs.filter(pl.col("provider") == code)
    (instrument, domain), = own.select("instrument", "domain").unique().sort("instrument", "domain").head(1).iter_rows()
    mine = per_person(own.filter((pl.col("instrument") == instrument) & (pl.col("domain") == domain)), ["service_code"])
    mean, low, high, n = improvement(instrument, domain, mine)
    values = row(section(report, "change"), instrument=instrument_label(instrument), domain=domain_label(instrument, domain),
                 service=None)
    assert values["people"].exact and values["people"].value == n
    assert values["mean_change"].exact and values["mean_change"].value == pytest.approx(mean, abs=0.0051)
    assert values["mean_change"].low == pytest.approx(low, abs=0.0051)
    # Peers: every provider in its service lines, controlled.
    assert not values["peer_people"].exact and values["peer_people"].value % 3 == 0
    assert not values["peer_mean_change"].exact
    how_much = section(report, "how_much")
    engagements = pl.read_csv(evidence.files / code / "engagements.csv", infer_schema=False).height
    assert row(how_much, service=None)["engagements"].value == engagements
    assert all(values["people"].exact for _, values in how_much.rows)


def test_every_section_is_released_and_labelled(evidence_sqlite):
    context = evidence_sqlite.context()
    for audience in (MINISTRY, Audience(context.labels.provider_ids["P0002"], "P0002")):
        for by in ("service", "maori", "age_band"):
            report = outcomes.run(context, period=Period(), by=by, audience=audience)
            assert [s.key for s in report.sections] == ["change", "how_much", "how_well", "better_off"]
            for s in report.sections:
                assert is_released(s.table) and s.chart is not None
                for coords, values in s.table.rows:
                    assert all(isinstance(v, (Statistic, ReleasedValue)) or v is None for v in values.values())
                    # Labels, not codes.
                    assert all(c is None or not c.isdigit() for c in coords.values())
            report.to_json()


@pytest.mark.parametrize("by", ["nonsense", "service,region", "maori,gender"])
def test_bad_breakdowns_are_report_errors(evidence_sqlite, by):
    with pytest.raises(ReportError):
        outcomes.run(evidence_sqlite.context(), period=Period(), by=by, audience=MINISTRY)


def test_a_provider_cannot_break_down_by_provider(evidence_sqlite):
    context = evidence_sqlite.context()
    with pytest.raises(ReportError):
        outcomes.run(context, period=Period(), by="provider", audience=Audience(context.labels.provider_ids["P0001"], "P0001"))


@pytest.fixture
def evidence(evidence_sqlite):
    """Reports read the analytic layer, the same DuckDB tables whichever store built it: SQLite
    here (test_reach.py, test_providers.py and test_layer.py run on PostgreSQL too)."""
    return evidence_sqlite
