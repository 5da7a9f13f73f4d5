"""Coverage: monthly shares of CIS spend and providers sending data, checked by hand and on the roll-out."""

from __future__ import annotations

import csv
from datetime import datetime, timezone

import pytest

from cldx.analysis.layer import AnalyticLayer
from cldx.analysis.reports import MINISTRY, Period, ReportContext, ReportError
from cldx.analysis.reports import coverage
from cldx.disclosure import is_released
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit

KEY = b"coverage test key"
CLIENT_HEADER = ("action,client_ref,family_name,given_names,date_of_birth,slk581,birth_year_month,gender,"
                 "primary_ethnicity,iwi_1,iwi_2,iwi_3,area,notified_of_sharing_on,identity_consent\n")
REGISTRY = {
    "service_lines.csv": "service_code,name,description,min_client_age,max_client_age\n"
                         "FS,Family Start,,12,65\nSWIS,Social Workers in Schools,,4,14\n",
    "providers.csv": "provider_code,name,region_code,ta_code,sends_identity\n"
                     "PA,A Trust,02,076,y\nPB,B Trust,02,076,y\nPC,C Trust,02,076,y\n",
    # $100,000 in all: wave 1 is PA's $23,000 (the brief's 23%).
    "contracts.csv": "contract_ref,provider_code,service_code,period_start,period_end,funding_nzd,data_clause,"
                     "collection_start,wave,reporting_frequency,due_day\n"
                     "C-A1,PA,FS,2016-07-01,2019-06-30,23000.00,y,2016-07-01,1,monthly,20\n"
                     "C-A2,PA,SWIS,2017-01-01,2019-06-30,10000.00,y,2017-01-01,2,monthly,20\n"
                     "C-B,PB,SWIS,2016-10-01,2019-06-30,40000.00,y,2016-10-01,2,monthly,20\n"
                     "C-C,PC,FS,2017-07-01,2019-06-30,27000.00,y,2017-07-01,2,monthly,20\n",
}


def client_file(ref: str, area: str = "117200") -> SourceFile:
    return SourceFile("clients.csv", (CLIENT_HEADER + f",{ref},Smith,Jane,1980-01-01,,,21,11,,,,{area},2016-07-05,y\n").encode())


@pytest.fixture
def small_store(engine, tmp_path):
    """Three providers, four contracts; PA sends at 23:30 NZ on 31 July 2016, PB at 02:00 NZ on 1 December
    (still 30 November in UTC), PC's only submission is refused (nothing stored)."""
    folder = tmp_path / "registry"
    folder.mkdir()
    for name, text in REGISTRY.items():
        (folder / name).write_text(text, encoding="utf-8")
    assert import_registry(engine, folder).rejected == 0
    sends = [("PA", "2016-07", datetime(2016, 7, 31, 11, 30, tzinfo=timezone.utc), client_file("A-1"), "partial"),
             ("PB", "2016-11", datetime(2016, 11, 30, 13, 0, tzinfo=timezone.utc), client_file("B-1"), "partial"),
             ("PC", "2017-07", datetime(2017, 8, 10, 0, 0, tzinfo=timezone.utc), client_file("C-1", area=""), "all-or-nothing")]
    for provider, period, at, file, mode in sends:
        submit(engine, provider=provider, files=[file], period=period, mode=mode, submitter="test", channel="test", received_at=at)
    return ReportContext(AnalyticLayer(tmp_path / "layer", engine), KEY)


def values(table, series: str) -> dict[str, float]:
    return {v.at["month"]: v.value for v in table.values if v.kind == "cell" and v.at["series"] == series}


def months(first: str, last: str) -> list[str]:
    out, (y, m) = [], map(int, first.split("-"))
    while f"{y:04d}-{m:02d}" <= last:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def by_hand(changes: dict[str, float], first: str = "2016-07", last: str = "2017-07") -> dict[str, float]:
    """A step series: each value holds from its month until the next change."""
    out, current = {}, 0.0
    for month in months(first, last):
        current = changes.get(month, current)
        out[month] = current
    return out


def test_monthly_shares_of_spend_and_providers_by_wave(small_store):
    report = coverage.run(small_store, period=Period.parse("2016-07:2017-07"), by=["wave"], audience=MINISTRY)
    spend, providers = report.sections[0].table, report.sections[1].table
    assert is_released(spend) and is_released(providers)
    assert values(spend, "All waves") == by_hand({"2016-07": 23.0, "2016-12": 63.0, "2017-01": 73.0})
    assert values(spend, "Wave 1") == by_hand({"2016-07": 23.0})
    assert values(spend, "Wave 2") == by_hand({"2016-12": 40.0, "2017-01": 50.0})
    # The brief's target: 23% from July 2016, 100% from July 2017.
    assert values(spend, "Target (brief)") == by_hand({"2016-07": 23.0, "2017-07": 100.0})
    assert values(spend, "All waves")["2016-07"] == values(spend, "Target (brief)")["2016-07"]
    assert values(providers, "All waves") == by_hand({"2016-07": 33.33, "2016-12": 66.67})
    assert values(providers, "Wave 1") == by_hand({"2016-07": 33.33})
    assert values(providers, "Wave 2") == by_hand({"2016-12": 33.33, "2017-01": 66.67})
    chart = report.sections[0].chart
    assert (chart.kind, chart.x, chart.y, chart.color) == ("line", "month", "value", "series")
    assert report.to_json()["sections"][2]["key"] == "funding"


def test_funding_by_wave_and_without_a_wave_breakdown(small_store):
    report = coverage.run(small_store, period=Period.parse("2016-09:2016-12"), by="", audience=MINISTRY)
    assert report.by == ["wave"]  # the default
    assert set(values(report.sections[0].table, "All waves")) == {"2016-09", "2016-10", "2016-11", "2016-12"}
    funding = report.sections[2].table
    rows = {at["wave"]: v for at, v in funding.rows}
    assert rows["Wave 1"]["funding_nzd"].value == 23000.0 and rows["Wave 1"]["share_of_spend"].value == 23.0
    assert rows["Wave 2"]["providers"].value == 3 and rows["All waves"]["providers"].value == 3
    assert rows["All waves"]["funding_nzd"].value == 100000.0


def test_the_default_months_run_to_the_last_submission(small_store):
    report = coverage.run(small_store, period=Period(), by=None, audience=MINISTRY)
    spend = values(report.sections[0].table, "All waves")
    assert min(spend) == "2016-07" and max(spend) == "2017-08"  # PC's refused submission came in August 2017
    assert spend["2017-08"] == 73.0  # and did not count


def test_only_wave_is_a_breakdown(small_store):
    with pytest.raises(ReportError):
        coverage.run(small_store, period=Period(), by="region", audience=MINISTRY)


def test_on_the_rollout_the_last_month_counts_providers_with_a_submission(evidence):
    report = coverage.run(evidence.context(), period=Period(), by=["wave"], audience=MINISTRY)
    with (evidence.files / "registry" / "contracts.csv").open(encoding="utf-8", newline="") as fh:
        contracts = list(csv.DictReader(fh))
    holders = {r["provider_code"] for r in contracts}
    sent = {p.name for p in evidence.files.iterdir() if p.is_dir() and p.name != "registry"} & holders
    providers = values(report.sections[1].table, "All waves")
    assert providers[max(providers)] == round(100 * len(sent) / len(holders), 2)
    spend = values(report.sections[0].table, "All waves")
    total = sum(float(r["funding_nzd"]) for r in contracts)
    covered = sum(float(r["funding_nzd"]) for r in contracts if r["provider_code"] in sent)
    assert spend[max(spend)] == pytest.approx(round(100 * covered / total, 2), abs=0.01)
    wave_1 = {at["wave"]: v for at, v in report.sections[2].table.rows}["Wave 1"]
    assert wave_1["funding_nzd"].value == pytest.approx(77_600_000.0)
    assert wave_1["share_of_spend"].value == pytest.approx(23.0, abs=0.1)  # the brief's 23%


@pytest.fixture
def evidence(evidence_sqlite):
    """Reports read the analytic layer, the same DuckDB tables whichever store built it: SQLite
    here (test_reach.py, test_providers.py and test_layer.py run on PostgreSQL too)."""
    return evidence_sqlite
