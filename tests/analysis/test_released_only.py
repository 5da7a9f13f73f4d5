"""Nothing leaves through a report without disclosure control: no report, page, API answer or file
can carry a table the disclosure module did not make.

Three layers of proof:
1. structurally, a report section refuses anything `cldx.disclosure.is_released` does not
   recognise, and those types cannot be constructed, copied with changes or subclassed outside
   the module (tests/disclosure checks the constructors);
2. the renderers (CSV, JSON, xlsx) check again, so a report patched after the fact still fails;
3. observed: every table the disclosure module makes during a run is recorded (a spy on its
   constructors), and every table in every output of every report (API JSON, CSV and xlsx
   files, the HTML page) is shown to be one of them, value for value; in the ministry's view
   none of them is exact (only a provider's own view holds exact figures, and only its own).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from html.parser import HTMLParser

import openpyxl
import polars as pl
import pytest

from cldx.analysis.reports import MINISTRY, REPORTS, Audience, Section, run_report
from cldx.disclosure import ReleasedTable, StatisticsTable, is_released, protect
from cldx.export.reports import render


@pytest.fixture
def made(monkeypatch) -> list:
    """Every released table the disclosure module constructs while the test runs."""
    tables: list = []
    for cls in (ReleasedTable, StatisticsTable):
        original = cls.__post_init__

        def spy(self, stamp, _original=original):
            _original(self, stamp)
            tables.append(self)

        monkeypatch.setattr(cls, "__post_init__", spy)
    return tables


def test_a_section_refuses_anything_not_released():
    frame = pl.DataFrame({"region": ["a", "b"], "count": [3, 9]})
    for impostor in (frame, frame.to_dicts(), {"values": []}, "people: 3"):
        with pytest.raises(TypeError):
            Section("x", "X", impostor)
    released = protect(frame, key=b"k")
    with pytest.raises(TypeError):
        dataclasses.replace(released, values=[])
    Section("x", "X", released)  # the real thing is accepted


def test_the_renderers_refuse_a_report_that_was_tampered_with(evidence_sqlite):
    report = run_report("reach", evidence_sqlite.context(), by="service")
    object.__setattr__(report.sections[0], "table", {"measure": "people", "values": []})  # a deliberate bypass
    for fmt in ("csv", "json", "xlsx"):
        with pytest.raises(TypeError):
            render(report, fmt)


def _csv_blocks(data: bytes) -> list[list[list[str]]]:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    return [rows]


class _Tables(HTMLParser):
    """The cell texts of every <table class="report-table"> on a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._in, self._cell = False, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "report-table" in (attrs.get("class") or ""):
            self._in = True
            self.tables.append([])
        elif self._in and tag == "tr":
            self.tables[-1].append([])
        elif self._in and tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag == "table":
            self._in = False
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None


@pytest.mark.parametrize("name", sorted(REPORTS))
@pytest.mark.parametrize("view", ["ministry", "provider"])
def test_every_output_of_every_report_is_made_by_the_disclosure_module(evidence_sqlite, made, name, view):
    context = evidence_sqlite.context()
    audience = MINISTRY if view == "ministry" else Audience(context.labels.provider_ids["P0001"], "P0001")
    report = run_report(name, context, audience=audience)
    made_json = [t.to_json() for t in made]
    made_csv = [t.to_csv_rows() for t in made]
    assert report.sections
    for section in report.sections:
        assert is_released(section.table)
        assert any(section.table is t for t in made), f"{name}/{section.key} was not made during this run"
        assert section.table.to_json() in made_json
        table_json = section.table.to_json()
        if view == "ministry":
            assert not table_json.get("exact"), f"{name}/{section.key}: exact figures in the ministry's view"
        elif table_json.get("exact"):
            assert table_json.get("scope") in (None, "P0001")

    # The files: every section's rows appear in the CSV as the module wrote them; the JSON is the
    # module's JSON; each xlsx sheet holds the module's rows.
    text = render(report, "csv").decode("utf-8-sig")
    file_rows = list(csv.reader(io.StringIO(text)))
    for section in report.sections:
        rows = [r for r in section.table.to_csv_rows() if r]
        for row in rows:
            assert [re.sub(r"^'", "", c) for c in row] in [[re.sub(r"^'", "", c) for c in r] for r in file_rows]
    import json

    assert [s["table"] for s in json.loads(render(report, "json"))["sections"]] == [s.table.to_json() for s in report.sections]
    workbook = openpyxl.load_workbook(io.BytesIO(render(report, "xlsx")))
    for sheet, section in zip(workbook.worksheets, report.sections):
        sheet_rows = [[("" if c is None else str(c)) for c in r] for r in sheet.iter_rows(values_only=True)]
        module_rows = [r for r in section.table.to_csv_rows()]
        module_rows = module_rows[: module_rows.index([])] if [] in module_rows else module_rows
        assert len(sheet_rows) == len(module_rows)
        for got, want in zip(sheet_rows, module_rows):
            assert [_same(g, w) for g, w in zip(got, want)] == [True] * len(want), (got, want)


def _same(got: str, want: str) -> bool:
    if got == want or got == want.lstrip("'") or "'" + got == want:
        return True
    try:
        return float(got) == float(want)
    except ValueError:
        return False


def test_the_api_and_the_page_show_only_what_the_module_made(evidence_sqlite, made, monkeypatch, key_files):
    """The same check through the web app: the API's JSON and the page's HTML tables."""
    from fastapi.testclient import TestClient

    from cldx.access import sessions, totp
    from cldx.access.roles import ANALYST
    from cldx.config import Settings
    from cldx.store import write_transaction
    from cldx.store.models import User, UserRole
    from cldx.web.app import create_app
    from cldx.web.auth import SESSION_COOKIE

    url = evidence_sqlite.engine.url.render_as_string(hide_password=False)
    app = create_app(Settings(database_url=url, embedded_worker=False, analytic_dir=evidence_sqlite.layer_dir))
    with write_transaction(app.state.engine) as session:
        user = User(username="spy.analyst", display_name="Spy", password_hash="x", is_active=True, failed_sign_ins=0,
                    totp_secret=totp.seal_secret(app.state.engine and __import__("cldx.identity.vault", fromlist=["vault_of"]).vault_of(app.state.engine).keys, totp.new_secret()),
                    totp_last_step=1)
        session.add(user)
        session.flush()
        session.add(UserRole(user_id=user.id, role=ANALYST, provider_id=None))
        session.flush()
        _, session_id = sessions.start(session, user, second_factor_done=True)
    with TestClient(app, base_url="https://testserver") as client:
        client.cookies.set(SESSION_COOKIE, session_id)
        for name in sorted(REPORTS):
            made.clear()
            body = client.get(f"/api/v1/reports/{name}").json()
            made_json = [t.to_json() for t in made]
            for section in body["sections"]:
                assert section["table"] in made_json, f"{name}/{section['key']}"
            made.clear()
            page = client.get(f"/reports/{name}")
            assert page.status_code == 200, page.text[:300]
            parser = _Tables()
            parser.feed(page.text)
            made_rows = []
            for t in made:
                rows = t.to_csv_rows()
                made_rows.append(rows[: rows.index([])] if [] in rows else rows)
            assert parser.tables
            for table in parser.tables:
                body_rows = table[1:]
                assert any(_rows_match(body_rows, rows[1:]) for rows in made_rows), f"{name}: a page table no module table matches"


def _rows_match(page_rows: list[list[str]], module_rows: list[list[str]]) -> bool:
    return len(page_rows) == len(module_rows) and all(p == [str(c) for c in m] for p, m in zip(page_rows, module_rows))
