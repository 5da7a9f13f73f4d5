"""`cldx export research list` and `produce` on the stored roll-out (SQLite)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cldx.cli.main import app
from cldx.export.research import decide_extract, request_extract
from cldx.store import transaction

runner = CliRunner()


@pytest.fixture
def approved(evidence_sqlite, monkeypatch) -> str:
    monkeypatch.setenv("CLDX_DATABASE_URL", evidence_sqlite.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CLDX_ANALYTIC_DIR", str(evidence_sqlite.layer_dir))
    with transaction(evidence_sqlite.engine) as session:
        reference = request_extract(session, actor="ana", user_id=1, period="2016-07:2017-06",
                                    purpose="Outcomes by region for the 2017 evaluation, in the IDI.").reference
    with transaction(evidence_sqlite.engine) as session:
        decide_extract(session, reference, approve=True, note="", actor="po", user_id=2)
    return reference


def test_produce_writes_the_extract_once_and_list_shows_it(approved, tmp_path) -> None:
    out = tmp_path / "extract"
    result = runner.invoke(app, ["export", "research", "produce", approved, "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["reference"] == approved and manifest["k"] == 5
    assert "Manifest SHA-256" in result.output and "k = 5" in result.output
    again = runner.invoke(app, ["export", "research", "produce", approved, "--out", str(tmp_path / "again")])
    assert again.exit_code == 1 and "produced already" in again.output
    listing = runner.invoke(app, ["export", "research", "list"])
    assert listing.exit_code == 0 and approved in listing.output and "produced" in listing.output


def test_unknown_reference_exits_2(approved, tmp_path) -> None:
    result = runner.invoke(app, ["export", "research", "produce", "RX-1999-0001", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "no research extract request" in result.output
