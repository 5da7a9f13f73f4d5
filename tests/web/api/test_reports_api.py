"""`/api/v1/reports` and the report pages: who gets which view, formats, downloads audited, bad input 4xx."""

from __future__ import annotations

import io
import json
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import select

from cldx.access.roles import PRIVACY_OFFICER, PROVIDER_SUBMITTER
from cldx.generator.generate import generate
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit
from cldx.store import transaction
from cldx.store.models import AuditEvent
from cldx.store.registry import seed_service_lines

PROVIDERS = 6


@pytest.fixture(scope="module")
def rollout(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports-rollout")
    generate(clients=400, seed=5, fault_rate=0, out=out)
    return out


@pytest.fixture
def stored(web_app, rollout) -> list[str]:
    """The busiest few providers' records, stored; their codes."""
    engine = web_app.state.engine
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, rollout / "registry")
    folders = sorted((p for p in rollout.iterdir() if p.is_dir() and p.name != "registry"),
                     key=lambda p: -len((p / "clients.csv").read_bytes()))[:PROVIDERS]
    for folder in folders:
        submit(engine, provider=folder.name, files=[SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))],
               submitter="test", channel="test")
    return [f.name for f in folders]


def test_the_list_of_reports(ministry_client, stored):
    answer = ministry_client.get("/api/v1/reports")
    assert answer.status_code == 200
    assert "reach" in {r["name"] for r in answer.json()}


def test_an_analyst_gets_controlled_tables(ministry_client, stored):
    answer = ministry_client.get("/api/v1/reports/reach", params={"by": "region,gender", "period": "2016-07:2019-06"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["audience"] == {"ministry": True} and body["by"] == ["region", "gender"]
    for section in body["sections"]:
        table = section["table"]
        assert table["rules_version"].startswith("cldx-disclosure/") and table["rules"]
        assert not table.get("exact")
        for value in table["values"]:
            assert (value["value"] is None) == value["suppressed"]
            assert value["suppressed"] or value["value"] % 3 == 0


def test_a_provider_gets_its_own_figures_exactly(make_user, client_for, stored, rollout):
    code = stored[0]
    client = client_for(make_user("own.staff", (PROVIDER_SUBMITTER, code)))
    body = client.get("/api/v1/reports/reach").json()
    assert body["audience"] == {"provider": code}
    engagements = next(s for s in body["sections"] if s["key"] == "engagements")["table"]
    assert engagements["exact"] is True
    total = next(v for v in engagements["values"] if v["kind"] == "grand_total")["value"]
    with open(rollout / code / "engagements.csv", encoding="utf-8") as sent:
        assert total == sum(1 for _ in sent) - 1  # every engagement it sent, header aside


def test_downloads_are_files_and_audited(ministry_client, stored, web_app, analyst):
    csv_answer = ministry_client.get("/api/v1/reports/reach", params={"format": "csv", "by": "service"})
    assert csv_answer.status_code == 200 and csv_answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_answer.headers["content-disposition"]
    text = csv_answer.content.decode("utf-8-sig")
    assert "Rules version" in text and "people" in text
    xlsx = ministry_client.get("/api/v1/reports/reach", params={"format": "xlsx"})
    workbook = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert "Notes" in workbook.sheetnames
    notes = [row for row in workbook["Notes"].iter_rows(values_only=True)]
    assert any(label == "Rules version" for label, _ in notes)
    with transaction(web_app.state.engine) as session:
        exports = session.scalars(select(AuditEvent).where(AuditEvent.action == "export")).all()
    assert [(e.actor, json.loads(e.detail)["format"]) for e in exports] == [(analyst.username, "csv"), (analyst.username, "xlsx")]


def test_roles_without_reports_are_refused(make_user, client_for, app_client, stored):
    officer = client_for(make_user("pri.vacy", (PRIVACY_OFFICER, None), totp_secret="JBSWY3DPEHPK3PXP"))
    assert officer.get("/api/v1/reports/reach").status_code == 403
    assert app_client.get("/api/v1/reports/reach").status_code == 401


@pytest.mark.parametrize("params, status", [
    ({"by": "nonsense"}, 422),
    ({"by": "region,region"}, 422),
    ({"period": "2017-13:2018-01"}, 422),
    ({"period": "2018"}, 422),
    ({"period": "x" * 41}, 422),
    ({"format": "pdf"}, 422),
])
def test_bad_parameters_are_422(ministry_client, stored, params, status):
    answer = ministry_client.get("/api/v1/reports/reach", params=params)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]


def test_an_unknown_report_is_404(ministry_client, stored):
    assert ministry_client.get("/api/v1/reports/nothing").status_code == 404
    assert ministry_client.get("/reports/nothing").status_code == 404


def test_the_report_page_shows_tables_chart_and_downloads(ministry_client, stored):
    page = ministry_client.get("/reports/reach", params={"by": ["region", "gender"], "period_from": "2016-07", "period_to": "2018-06"})
    assert page.status_code == 200, page.text
    html = page.text
    assert 'id="table-people"' in html and 'class="chart-spec"' in html
    assert "format=csv" in html and "format=xlsx" in html
    assert "Disclosure rules applied" in html
    bad = ministry_client.get("/reports/reach", params={"by": ["nonsense"]})
    assert bad.status_code == 422 and 'id="report-error"' in bad.text
    index = ministry_client.get("/reports")
    assert index.status_code == 200 and "/reports/reach" in index.text
