"""Reach on the stored roll-out: counts agree with the generator's files, and every table is controlled."""

from __future__ import annotations

import polars as pl
import pytest

from cldx.analysis.reports import MINISTRY, Audience, Period, ReportError, run_report
from cldx.disclosure import is_released


def engagements_in_files(files) -> pl.DataFrame:
    frames = []
    for folder in sorted(p for p in files.iterdir() if p.is_dir() and p.name != "registry"):
        frames.append(pl.read_csv(folder / "engagements.csv", infer_schema=False).with_columns(provider=pl.lit(folder.name)))
    return pl.concat(frames)


def test_reach_by_service_is_controlled_and_close_to_the_truth(evidence):
    report = run_report("reach", evidence.context(), by="service")
    people, engagements = report.sections[0].table, report.sections[1].table
    assert is_released(people) and is_released(engagements)
    assert not people.exact
    truth = engagements_in_files(evidence.files).group_by("service_code").len()
    labels = evidence.context().labels.service_lines
    for row in truth.iter_rows(named=True):
        released = engagements.get(service=labels[row["service_code"]])
        if released.suppressed:
            continue
        assert released.value % 3 == 0
        assert abs(released.value - row["len"]) <= 2  # RR3 moves a count by at most 2
    total = engagements.get(service=None)
    assert abs(total.value - truth["len"].sum()) <= 2


def test_reach_by_three_dimensions_suppresses_small_cells(evidence):
    report = run_report("reach", evidence.context(), by="region,ethnicity,age_band", period="2016-07:2017-06")
    table = report.sections[0].table
    values = [v for v in table.values if not v.suppressed]
    assert values and all(v.value % 3 == 0 for v in values)
    assert any(v.suppressed for v in table.values)
    # Engagements are suppressed wherever people are.
    assert report.sections[1].table.suppressed_cells() >= table.suppressed_cells()


def test_a_provider_sees_its_own_reach_exactly(evidence):
    context = evidence.context()
    code = "P0001"
    report = run_report("reach", context, by="service", audience=Audience(context.labels.provider_ids[code], code))
    engagements = report.sections[1].table
    assert engagements.exact
    truth = pl.read_csv(evidence.files / code / "engagements.csv", infer_schema=False).height
    assert engagements.get(service=None).value == truth


def test_the_same_question_gets_the_same_answer(evidence):
    first = run_report("reach", evidence.context(), by="region,gender").to_json()
    again = run_report("reach", evidence.context(), by="region,gender").to_json()
    first.pop("generated_at"), again.pop("generated_at")
    assert first == again


@pytest.mark.parametrize("by, period", [("nonsense", None), ("region,region", None), (None, "2017-13:2018-01"), (None, "2018-01:2017-01"), (None, "2017")])
def test_bad_parameters_are_report_errors(evidence_sqlite, by, period):
    with pytest.raises(ReportError):
        run_report("reach", evidence_sqlite.context(), by=by, period=period)


def test_period_parsing():
    assert str(Period.parse("2016-07:2017-06")) == "2016-07-01 to 2017-06-30"
    assert Period.parse(":2017-02").end.isoformat() == "2017-02-28"
    assert Period.parse(None) == Period()
