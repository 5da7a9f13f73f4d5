"""`cldx report NAME` and `cldx analytic refresh` on the stored roll-out (SQLite)."""

from __future__ import annotations

import io
import json

import openpyxl
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cldx.analysis.reports import REPORTS
from cldx.cli.main import app
from cldx.store import read_transaction
from cldx.store.models import AuditEvent

runner = CliRunner()


@pytest.fixture
def cli_store(evidence_sqlite, monkeypatch):
    monkeypatch.setenv("CLDX_DATABASE_URL", evidence_sqlite.engine.url.render_as_string(hide_password=False))
    return evidence_sqlite


def test_refresh_builds_the_layer_then_has_nothing_to_do(cli_store, analytic_dir):
    first = runner.invoke(app, ["analytic", "refresh"])
    assert first.exit_code == 0, first.output
    assert "Rebuilt 325 providers" in first.output
    assert sorted(p.name for p in analytic_dir.iterdir() if p.is_dir()) == ["_schema", "assessments", "clients", "engagements", "outcomes"] \
        or (analytic_dir / "engagements").is_dir()
    again = runner.invoke(app, ["analytic", "refresh"])
    assert "Rebuilt 0 providers" in again.output


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_every_report_runs_as_json(cli_store, name):
    result = runner.invoke(app, ["report", name, "--format", "json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["report"] == name and body["sections"]
    for section in body["sections"]:
        assert section["table"]["rules_version"].startswith("cldx-disclosure/")


def test_reach_as_csv_and_xlsx_with_period_and_breakdown(cli_store, tmp_path):
    result = runner.invoke(app, ["report", "reach", "--period", "2016-07:2017-06", "--by", "region,age_band"])
    assert result.exit_code == 0, result.output
    assert "Rules version" in result.stdout and "Period: 2016-07-01 to 2017-06-30" in result.stdout
    out = tmp_path / "reach.xlsx"
    result = runner.invoke(app, ["report", "reach", "--format", "xlsx", "--out", str(out), "--as", "ana.lyst"])
    assert result.exit_code == 0, result.output
    workbook = openpyxl.load_workbook(io.BytesIO(out.read_bytes()))
    assert workbook.sheetnames[-1] == "Notes"
    with read_transaction(cli_store.engine) as session:
        entry = session.scalars(select(AuditEvent).where(AuditEvent.actor == "ana.lyst")).one()
    assert entry.action == "export" and entry.target == "report:reach" and json.loads(entry.detail)["format"] == "xlsx"


@pytest.mark.parametrize("args", [["report", "nothing"], ["report", "reach", "--by", "shoe_size"], ["report", "reach", "--period", "2017"],
                                  ["report", "reach", "--format", "pdf"], ["report", "reach", "--format", "xlsx"],
                                  ["report", "reach", "--provider", "P9999"]])
def test_bad_usage_exits_2(cli_store, args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output


def test_a_providers_own_view(cli_store):
    result = runner.invoke(app, ["report", "reach", "--provider", "P0001", "--format", "json"])
    body = json.loads(result.stdout)
    assert body["audience"] == {"provider": "P0001"}
    assert all(s["table"]["exact"] for s in body["sections"])
