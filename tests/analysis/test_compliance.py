"""Compliance: months on time, late and missing, row errors and client shares per contract, on hand-made submissions."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from cldx.analysis.layer import AnalyticLayer
from cldx.analysis.reports import MINISTRY, Audience, Period, ReportContext, ReportError
from cldx.analysis.reports import compliance, providers
from cldx.disclosure import Statistic, is_released
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit

KEY = b"compliance test key"
THRESHOLD = 6
REGISTRY = {
    "service_lines.csv": "service_code,name,description,min_client_age,max_client_age\nFS,Family Start,,12,65\n",
    "providers.csv": "provider_code,name,region_code,ta_code,sends_identity\nPA,A Trust,02,076,y\nPB,B Trust,02,076,y\n",
    "contracts.csv": "contract_ref,provider_code,service_code,period_start,period_end,funding_nzd,data_clause,"
                     "collection_start,wave,reporting_frequency,due_day\n"
                     "C-A,PA,FS,2016-07-01,2019-06-30,500000.00,y,2016-07-01,1,monthly,20\n"
                     "C-B,PB,FS,2016-07-01,2019-06-30,300000.00,y,2016-07-01,1,monthly,20\n",
}
HEADERS = {
    "clients.csv": "action,client_ref,family_name,given_names,date_of_birth,slk581,birth_year_month,gender,"
                   "primary_ethnicity,iwi_1,iwi_2,iwi_3,area,notified_of_sharing_on,identity_consent",
    "engagements.csv": "action,engagement_ref,client_ref,service_code,start_date,end_date,end_reason",
    "assessments.csv": "action,engagement_ref,phase,instrument,domain,score,assessed_on",
}
NAMES = ["Aroha", "Ben", "Cara", "Dan", "Eru", "Fia", "Gus", "Hine", "Ivy"]


def csv_file(name: str, rows: list[str]) -> SourceFile:
    return SourceFile(name, ("\n".join([HEADERS[name], *rows]) + "\n").encode())


def clients(provider: str, n: int, *, not_notified: int = 0) -> SourceFile:
    """n clients; the last `not_notified` of them have no notification date."""
    rows = [f",{provider}-{i},Smith,{NAMES[i - 1]},1980-01-0{i},,,21,11,,,,117200,{'' if i > n - not_notified else '2016-07-04'},y"
            for i in range(1, n + 1)]
    return csv_file("clients.csv", rows)


def nz(*parts: int) -> datetime:
    """A New Zealand wall-clock time as UTC (NZST +12 until the last Sunday of September, then NZDT +13)."""
    return datetime(*parts, tzinfo=ZoneInfo("Pacific/Auckland")).astimezone(timezone.utc)


def send(engine, provider: str, period: str, at: datetime, files: list[SourceFile]):
    return submit(engine, provider=provider, files=files, period=period, submitter="test", channel="test", received_at=at)


@pytest.fixture
def store(engine, tmp_path):
    """PA: July on time (20 August 23:30 NZ), August late (21 September 00:30 NZ, still the 20th in UTC),
    September missing, October on time with one row rejected for a blank area. 8 clients, 7 notified;
    8 engagements closed on 30 September, 6 with pre and post. PB: July on time, one client in service."""
    folder = tmp_path / "registry"
    folder.mkdir()
    for name, text in REGISTRY.items():
        (folder / name).write_text(text, encoding="utf-8")
    assert import_registry(engine, folder).rejected == 0
    engagements = [f",E-{i},PA-{i},FS,2016-07-0{i}," for i in range(1, 9)]
    pre = [f",E-{i},pre,FSTAR,keeping_safe,4,2016-07-09" for i in range(1, 9)]
    july = send(engine, "PA", "2016-07", nz(2016, 8, 20, 23, 30),
                [clients("PA", 8, not_notified=1), csv_file("engagements.csv", [r + "," for r in engagements]),
                 csv_file("assessments.csv", pre)])
    assert july.counts == {"new": 24, "changed": 0, "unchanged": 0, "warned": 1, "rejected": 0}
    august = send(engine, "PA", "2016-08", nz(2016, 9, 21, 0, 30), [clients("PA", 8, not_notified=1)])
    assert august.received_at.day == 20  # the 20th in UTC, yet late in New Zealand
    closed = [r + "2016-09-30,completed" for r in engagements]
    post = [f",E-{i},post,FSTAR,keeping_safe,7,2016-09-28" for i in range(1, 7)]
    blank_area = csv_file("clients.csv", [",PA-9,Smith,Ivy,1980-01-09,,,21,11,,,,,2016-10-01,y"])
    october = send(engine, "PA", "2016-10", nz(2016, 11, 10, 10, 0),
                   [blank_area, csv_file("engagements.csv", closed), csv_file("assessments.csv", post)])
    assert october.counts["rejected"] == 1 and october.counts["changed"] == 8 and october.counts["new"] == 6
    send(engine, "PB", "2016-07", nz(2016, 8, 15, 9, 0), [clients("PB", 1), csv_file("engagements.csv", [",E-1,PB-1,FS,2016-07-01,,"])])
    return ReportContext(AnalyticLayer(tmp_path / "layer", engine), KEY)


def row_of(report, contract: str) -> dict:
    table = report.sections[0].table
    return next(values for at, values in table.rows if at["contract"] == contract)


def test_months_on_time_late_and_missing_and_row_errors(store):
    report = compliance.run(store, period=Period.parse("2016-07:2016-10"), by=None, audience=MINISTRY)
    assert all(is_released(s.table) for s in report.sections)
    row = row_of(report, "C-A")
    counts = {c: row[c].value for c in ("months_due", "on_time", "late", "missing", "rows_received", "rows_rejected")}
    # 24 rows in July, 8 unchanged in August, 15 in October (8 engagements, 6 assessments, 1 rejected client).
    assert counts == {"months_due": 4, "on_time": 2, "late": 1, "missing": 1, "rows_received": 47, "rows_rejected": 1}
    assert row["on_time_share"].value == 50.0
    assert row["error_rate"].value == round(100 / 47, 1)
    assert row["completeness"].value == round(100 * 46 / 47, 1)  # the rejected row lacked a required area
    assert row["payment_condition_met"] == "no"
    # About clients: percentages of counts released as the providers report releases them. PB has
    # one client, so its people are suppressed there, and PA's 8 too: the line's total less PA's
    # would give PB's back. So the 6 of 8 pairs and the 7 of 8 notified are hidden for the ministry
    # (exact percentages would have said 8, and so 1 for PB).
    line = providers.run(store, period=Period.parse("2016-07:2016-10"), by=None, audience=MINISTRY).sections[0].table
    assert next(v for at, v in line.rows if at["provider"] == "PA")["people"].suppressed
    for contract in ("C-A", "C-B"):
        for share in ("pre_post_pairs", "notified"):
            value = row_of(report, contract)[share]
            assert isinstance(value, Statistic) and value.suppressed and not value.exact, (contract, share)
    chart = report.sections[0].chart
    assert (chart.kind, chart.x, chart.y, chart.reference) == ("bar", "contract", "on_time_share", compliance.ON_TIME_MIN)
    assert report.to_json()["sections"][0]["table"]["rows"][0]["values"]["payment_condition_met"] == "no"
    assert report.sections[0].table.to_csv_rows()[0][:4] == ["contract", "provider", "service", "months_due"]


def test_a_month_received_on_time_and_complete_meets_the_payment_condition(store):
    report = compliance.run(store, period=Period.parse("2016-07:2016-07"), by=None, audience=MINISTRY)
    row = row_of(report, "C-A")
    assert (row["months_due"].value, row["on_time"].value, row["completeness"].value) == (1, 1, 100.0)
    assert row["payment_condition_met"] == "yes"
    summary = report.sections[1].table
    assert summary.get(wave="Wave 1", payment_condition_met="yes").value == 2
    assert summary.get().value == 2


def test_months_whose_due_date_is_ahead_are_not_due(store):
    now = nz(2016, 10, 15, 12, 0)  # September's data is due on 20 October
    report = compliance.run(store, period=Period(), by=None, audience=MINISTRY, now=now)
    row = row_of(report, "C-A")
    assert (row["months_due"].value, row["on_time"].value, row["late"].value) == (2, 1, 1)


def test_a_provider_sees_only_its_own_contracts_exactly(store):
    audience = Audience(store.labels.provider_ids["PA"], "PA")
    report = compliance.run(store, period=Period.parse("2016-07:2016-10"), by=None, audience=audience)
    table = report.sections[0].table
    assert [at["contract"] for at, _ in table.rows] == ["C-A"]
    assert table.exact
    row = row_of(report, "C-A")
    assert row["pre_post_pairs"].exact and row["pre_post_pairs"].value == 75.0
    assert row["notified"].value == 87.5 and row["on_time"].value == 2
    other = compliance.run(store, period=Period.parse("2016-07:2016-10"), by=None,
                           audience=Audience(store.labels.provider_ids["PB"], "PB"))
    assert [at["contract"] for at, _ in other.sections[0].table.rows] == ["C-B"]
    assert row_of(other, "C-B")["notified"].value == 100.0  # its own single client, exact


def test_compliance_takes_no_breakdown(store):
    with pytest.raises(ReportError):
        compliance.run(store, period=Period(), by="service", audience=MINISTRY)


def test_on_the_rollout_every_month_due_is_on_time_late_or_missing(evidence):
    """The roll-out store holds one submission per provider (its last scheduled month, received now)."""
    report = compliance.run(evidence.context(), period=Period.parse("2016-07:2018-06"), by=None, audience=MINISTRY)
    with (evidence.files / "registry" / "contracts.csv").open(encoding="utf-8", newline="") as fh:
        expected = {r["contract_ref"] for r in csv.DictReader(fh) if r["data_clause"] == "y"}
    table = report.sections[0].table
    assert {at["contract"] for at, _ in table.rows} == expected
    for _, row in table.rows:
        months = row["months_due"].value
        assert row["on_time"].value + row["late"].value + row["missing"].value == months
        assert row["on_time"].value == 0  # received years after any month of this period was due
        assert row["payment_condition_met"] == "no"
        assert row["pre_post_pairs"] is None or not row["pre_post_pairs"].exact


def possible_shares(base: int) -> set[float]:
    """The percentages a rounded count (a multiple of 3, capped at the base) can make of a rounded base."""
    return {round(100 * min(part, base) / base, 1) for part in range(0, base + 3, 3)}


def test_on_the_rollout_client_shares_are_of_the_counts_the_providers_report_releases(evidence):
    context, period = evidence.context(), Period.parse("2016-07:2018-06")
    table = compliance.run(context, period=period, by=None, audience=MINISTRY).sections[0].table
    shown = providers.run(context, period=period, by=None, audience=MINISTRY)
    people = {(at["provider"], at["service"]): v["people"] for at, v in shown.sections[0].table.rows}
    closed = {(at["provider"], at["service"]): v["engagements"]
              for at, v in next(s for s in shown.sections if s.key == "funnel_completion").table.rows}
    released = 0
    for at, row in table.rows:
        unit = (at["provider"], at["service"])
        for share, base in (("notified", people.get(unit)), ("pre_post_pairs", closed.get(unit))):
            value = row[share]
            if value is None or base is None:
                continue
            if base.suppressed or base.value < THRESHOLD:
                assert value.suppressed, (at, share)
            elif not value.suppressed:
                assert value.value in possible_shares(base.value), (at, share, value.value, base.value)
                released += 1
    assert released


@pytest.fixture
def evidence(evidence_sqlite):
    """Reports read the analytic layer, the same DuckDB tables whichever store built it: SQLite
    here (test_reach.py, test_providers.py and test_layer.py run on PostgreSQL too)."""
    return evidence_sqlite
