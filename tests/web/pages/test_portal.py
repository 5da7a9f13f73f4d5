"""The provider portal home page (`/` for a provider's staff) and the figures behind it
(`cldx.web.portal`): due dates around midnight in New Zealand, the data-quality score against a
hand-computed case, findings to fix until a clean re-submission, the benchmark as the providers
report released it, and nothing of another provider's. On SQLite and on PostgreSQL, where the app
connects as a role under row-level security (`matrix_settings`).

The case (provider P0001, contract C-A: collection from July 2017 to the end of September 2017,
due on the 20th of the following month):
- July 2017: 3 clients, received 18 August 10:00 NZ: on time, accepted.
- August 2017: the faulty upload (7 rows, 4 rejected: see conftest.py), received 21 September
  00:30 NZ (still 20 September in UTC): late, partly accepted.
- September 2017: nothing: missing.
P0002 holds its own contract and sends a faulty upload of its own for August, which must never
show on P0001's page or in its figures.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from cldx.access.roles import PROVIDER_SUBMITTER, PROVIDER_VIEWER
from cldx.analysis.reports import Audience, run_report
from cldx.config import Settings
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit
from cldx.store import transaction
from cldx.store.db import read_transaction
from cldx.store.models import Provider
from cldx.store.registry import seed_service_lines
from cldx.web import portal
from cldx.web.pages.home import BENCHMARK_REPORT, BENCHMARK_SECTION, LINE_ROW

from .conftest import CLIENTS_HEADER, FAULTY, FIXED

NZ = ZoneInfo("Pacific/Auckland")
OWN, OWN_NAME = "P0001", "Te Whare Tiaki Trust"
OTHER, OTHER_NAME = "P0002", "Zetaprovider Other Trust"
PROVIDERS_CSV = ("provider_code,name,region_code,ta_code,sends_identity\n"
                 f"{OWN},{OWN_NAME},09,076,y\n{OTHER},{OTHER_NAME},09,076,y\n")
CONTRACTS_CSV = ("contract_ref,provider_code,service_code,period_start,period_end,funding_nzd,data_clause,collection_start,"
                 "wave,reporting_frequency,due_day\n"
                 f"C-A,{OWN},SWIS,2017-07-01,2017-09-30,100000.00,y,2017-07-01,1,monthly,20\n"
                 # No data clause: asks for no data, so it is never due nor missing.
                 f"C-A-FREE,{OWN},FS,2017-01-01,2019-06-30,50000.00,n,,1,monthly,20\n"
                 f"C-B,{OTHER},SWIS,2017-07-01,2017-09-30,100000.00,y,2017-07-01,1,monthly,20\n")
# July: three clients, all valid.
JULY = [SourceFile("clients.csv", (CLIENTS_HEADER + "".join(
    f"C10{i},Smith,Jane,19/12/2008,2,11,,,,153200,2017-04-25,y\r\n" for i in range(1, 4))).encode())]


def nz(*parts: int) -> datetime:
    """A New Zealand wall-clock time, as the aware UTC instant it is."""
    return datetime(*parts, tzinfo=NZ).astimezone(timezone.utc)


def month_number(year: int, month: int) -> int:
    return year * 12 + month - 1


def files(upload) -> list[SourceFile]:
    return [SourceFile(name, data) for name, data in upload.files]


@pytest.fixture
def web_settings(matrix_settings: Settings) -> Settings:
    return matrix_settings


def registry_files(engine, tmp_path) -> dict[str, int]:
    """The six service lines, both providers and their contracts; provider code -> id."""
    with transaction(engine) as session:
        seed_service_lines(session)
    folder = tmp_path / "registry"
    folder.mkdir()
    (folder / "providers.csv").write_text(PROVIDERS_CSV, encoding="utf-8")
    (folder / "contracts.csv").write_text(CONTRACTS_CSV, encoding="utf-8")
    assert import_registry(engine, folder).rejected == 0
    with read_transaction(engine) as session:
        return dict(session.execute(select(Provider.code, Provider.id)).all())


@pytest.fixture
def registry(engine, tmp_path) -> dict[str, int]:
    return registry_files(engine, tmp_path)


def send(engine, provider: str, period: str, at: datetime, upload_files: list[SourceFile]):
    return submit(engine, provider=provider, files=upload_files, period=period, submitter="test", channel="test", received_at=at)


@pytest.fixture
def sent(engine, registry) -> dict[str, str]:
    """The case in the module docstring; which submission is which."""
    july = send(engine, OWN, "2017-07", nz(2017, 8, 18, 10, 0), JULY)
    assert july.status == "accepted" and july.counts["new"] == 3
    august = send(engine, OWN, "2017-08", nz(2017, 9, 21, 0, 30), files(FAULTY))
    assert august.received_at.day == 20  # the 20th in UTC, yet past the due date in New Zealand
    assert august.status == "partial" and august.counts["rejected"] == 4
    assert august.counts["new"] + august.counts["changed"] + august.counts["unchanged"] == 3
    other = send(engine, OTHER, "2017-08", nz(2017, 9, 10, 9, 0), files(FAULTY))
    assert other.status == "partial"
    return {"july": july.submission_id, "august": august.submission_id, "other": other.submission_id}


# --- What is due and when ------------------------------------------------------------------------------


def test_the_next_month_due_turns_over_at_midnight_in_new_zealand(engine, registry) -> None:
    send(engine, OWN, "2017-07", nz(2017, 8, 18, 10, 0), JULY)
    with read_transaction(engine) as session:
        before = portal.portal_for(session, registry[OWN], now=nz(2017, 9, 20, 23, 59, 59))
        after = portal.portal_for(session, registry[OWN], now=nz(2017, 9, 21, 0, 0, 1))
    # Only the contract with a data clause is due; August is due until the end of 20 September, NZ time.
    assert [(d.contract_ref, d.period, d.received_at) for d in before.due] == [("C-A", "2017-08", None)]
    assert before.due[0].due_at == nz(2017, 9, 21) == datetime(2017, 9, 20, 12, tzinfo=timezone.utc)
    assert before.due[0].deadline == nz(2017, 9, 20, 23, 59, 59)
    assert before.missing == []
    # One second after midnight (still 20 September in UTC), August is overdue and September next,
    # due by the end of 20 October in daylight time (+13).
    assert nz(2017, 9, 21, 0, 0, 1).day == 20
    assert [(d.contract_ref, d.period) for d in after.due] == [("C-A", "2017-09")]
    assert after.due[0].due_at == datetime(2017, 10, 20, 11, tzinfo=timezone.utc)
    assert [(m.period, m.contracts, m.due_at) for m in after.missing] == [("2017-08", ("C-A",), nz(2017, 9, 21))]


def test_contracts_not_started_or_ended_are_not_due() -> None:
    started = portal.ContractTerms("C-NOW", "Family Start", date(2017, 7, 1), date(2018, 6, 30), 20)
    later = portal.ContractTerms("C-LATER", "Family Start", date(2017, 11, 1), date(2018, 6, 30), 20)
    ended = portal.ContractTerms("C-ENDED", "Family Start", date(2016, 7, 1), date(2017, 8, 31), 20)
    last_month = portal.ContractTerms("C-SEPT", "Family Start", date(2016, 7, 1), date(2017, 9, 30), 5)
    now = nz(2017, 10, 3, 12, 0)
    due = portal.next_due([started, later, ended, last_month], {month_number(2017, 9): nz(2017, 10, 1)}, now)
    # C-LATER has not started; C-ENDED's last month (August) was due by 20 September. C-SEPT ended on
    # 30 September but September's data is due by 5 October: still listed (and received), soonest first.
    assert [(d.contract_ref, d.period, d.received_at) for d in due] == [
        ("C-SEPT", "2017-09", nz(2017, 10, 1)), ("C-NOW", "2017-09", nz(2017, 10, 1))]


# --- The data-quality score ------------------------------------------------------------------------------


def test_quality_score_against_a_hand_computed_case(engine, registry, sent) -> None:
    with read_transaction(engine) as session:
        figures = portal.portal_for(session, registry[OWN], now=nz(2017, 10, 25, 12, 0))
    q = figures.quality
    # The 12 reporting months up to September 2017 (the last month due, and the contract's last).
    assert (portal.month_name(q.first_month), portal.month_name(q.last_month)) == ("October 2016", "September 2017")
    # Rows: July 3 + August 7 received, 4 rejected (P0002's never count).
    assert (q.rows.part, q.rows.whole, q.rows.percent) == (6, 10, 60.0)
    # Months: July on time, August late (00:30 on the 21st NZ), September missing.
    assert (q.months.part, q.months.whole, q.months.percent, q.late, q.missing) == (1, 3, 33.3, 1, 1)
    assert q.score == round(100 * (6 / 10 + 1 / 3) / 2) == 47
    assert [m.period for m in figures.missing] == ["2017-09"]


def test_quality_score_without_anything_due_or_sent(engine, registry) -> None:
    with read_transaction(engine) as session:
        q = portal.portal_for(session, registry[OWN], now=nz(2017, 7, 10, 12, 0)).quality
    assert (q.rows.whole, q.months.whole, q.score) == (0, 0, None)


# --- Findings still to fix ---------------------------------------------------------------------------------


def test_findings_to_fix_until_a_clean_resubmission(engine, registry, sent) -> None:
    with read_transaction(engine) as session:
        to_fix = portal.findings_to_fix(session, registry[OWN])
    assert [(t.submission_id, t.period, t.errors, t.rows_rejected) for t in to_fix] == [(sent["august"], "2017-08", 4, 4)]
    # A clean submission for another month fixes nothing; one for August does.
    send(engine, OWN, "2017-09", nz(2017, 10, 2, 9, 0), JULY)
    with read_transaction(engine) as session:
        assert [t.submission_id for t in portal.findings_to_fix(session, registry[OWN])] == [sent["august"]]
    fixed = send(engine, OWN, "2017-08", nz(2017, 10, 3, 9, 0), files(FIXED))
    assert fixed.status == "accepted"
    with read_transaction(engine) as session:
        assert portal.findings_to_fix(session, registry[OWN]) == []
        # P0002's faulty August is still its own to fix.
        assert [t.submission_id for t in portal.findings_to_fix(session, registry[OTHER])] == [sent["other"]]


# --- The page -------------------------------------------------------------------------------------------


class Cells(HTMLParser):
    """The text of each row of one table (by id), cell by cell."""

    def __init__(self, html: str, table_id: str) -> None:
        super().__init__()
        self.table_id, self.depth, self.rows, self._cell = table_id, 0, [], None
        self.feed(html)

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "table" and dict(attrs).get("id") == self.table_id:
            self.depth = 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag) -> None:
        if tag == "table":
            self.depth = 0
        elif self.depth and tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join(self._cell.split()))
            self._cell = None

    def handle_data(self, data) -> None:
        if self._cell is not None:
            self._cell += data


def test_the_portal_shows_the_providers_own_figures(client_for, make_user, ministry_client, registry, sent) -> None:
    client = client_for(make_user("tiaki.submitter", (PROVIDER_SUBMITTER, OWN)))
    response = client.get("/")
    assert response.status_code == 200, response.text
    html = response.text
    # The contract has ended: nothing is due now, September is missing. The score's window ends
    # with the contract, so it is the hand-computed case whatever today's date.
    assert 'id="nothing-due"' in html
    missing = Cells(html, "missing-table").rows[1:]
    # September was due by the end of 20 October, shown in New Zealand (daylight) time.
    assert missing == [["September 2017 Missing", "20 Oct 2017, 23:59:59 NZDT", "C-A"]]
    assert re.search(r'id="quality-score">47<', html)
    assert re.search(r'data-share="rows">60.0%<', html) and re.search(r'data-share="months">33.3%<', html)
    assert "6 of 10 rows received" in html and "1 of 3 months due (1 late, 1 missing)" in html
    assert "October 2016 to September 2017" in html
    # Findings to fix: the August submission, linked to its page and its findings CSV.
    fix_rows = Cells(html, "to-fix-table").rows
    assert len(fix_rows) == 2 and fix_rows[1][0] == "August 2017" and fix_rows[1][3] == "4"
    assert f'href="/submissions/{sent["august"]}?severity=error"' in html
    assert f'href="/submissions/{sent["august"]}/findings.csv"' in html
    # Latest submissions as a table: period, status, received, new, changed, unchanged, rejected.
    latest = Cells(html, "latest-submissions").rows
    assert latest[0] == ["Period", "Status", "Received", "New", "Changed", "Unchanged", "Rejected"]
    assert [r[0] for r in latest[1:]] == ["August 2017", "July 2017"]
    assert latest[1][1] == "Partly accepted" and latest[1][-1] == "4" and latest[2][3] == "3"
    assert "21 Sep 2017, 00:30:00 NZST" in latest[1][2]  # received, shown in New Zealand time
    # Templates and the upload page, for a submitter.
    assert 'href="/templates/clients.csv"' in html and re.search(r'href="/templates/[^"]+\.xlsx"', html)
    assert 'id="upload-link"' in html and 'id="upload-page-link"' in html
    # Nothing of the other provider: not its code, name, submissions or counts.
    for leak in (OTHER, OTHER_NAME, sent["other"]):
        assert leak not in html
    # The ministry's home page keeps its whole-store counts and none of the portal.
    ministry = ministry_client.get("/").text
    assert 'id="role-notes"' in ministry and 'data-count="providers">2<' in ministry
    assert 'id="quality"' not in ministry and 'id="benchmark"' not in ministry and 'id="due"' not in ministry


def test_the_benchmark_is_the_providers_report_own_and_line_rows_and_a_viewer_cannot_upload(client_for, make_user, registry, sent, web_app) -> None:
    client = client_for(make_user("tiaki.viewer", (PROVIDER_VIEWER, OWN)))
    html = client.get("/").text
    assert 'class="chart-spec"' in html and "vega-embed" in html  # the chart, and the chart scripts loaded
    # No one here is assessed, so the chart falls back from improvement to completion.
    assert '"title":"Completion, case-mix adjusted"' in html and '"who":"You · Social Workers in Schools"' in html
    shown = Cells(html, "table-benchmark").rows
    # The same report the page ran (its cached context), for this provider's audience and months:
    # its released rows, the provider's own and its line's, cell for cell; peers' rows left out.
    audience = Audience(registry[OWN], OWN)
    report = run_report(BENCHMARK_REPORT, web_app.state.report_context, period="2016-09:2017-08", audience=audience)
    section = next(s for s in report.sections if s.key == BENCHMARK_SECTION)
    assert any(at["provider"] == OTHER for at, _ in section.table.rows)  # the report has a peer row...
    kept = portal.own_and_line(section, OWN).table
    expected = kept.to_csv_rows()
    expected = expected[:expected.index([])]
    assert [at["provider"] for at, _ in kept.rows] == [None, OWN]  # ...the page only the line's and its own
    assert shown[0] == [h.replace("_", " ") for h in expected[0]]
    assert shown[1] == [LINE_ROW, *expected[1][1:]]
    assert shown[2] == expected[2]
    assert "September 2016 to August 2017" in html
    assert 'href="/reports/providers?period_from=2016-09&amp;period_to=2017-08"' in html
    for leak in (OTHER, OTHER_NAME):
        assert leak not in html
    # A viewer sends nothing: no upload link anywhere (the templates are for everyone).
    assert 'href="/submissions/new"' not in html
    assert "Send records" not in html and 'id="upload-page-link"' not in html
    assert 'href="/templates/clients.csv"' in html


def test_a_provider_with_nothing_yet(client_for, make_user, registry) -> None:
    html = client_for(make_user("tiaki.submitter", (PROVIDER_SUBMITTER, OWN))).get("/").text
    assert 'id="no-benchmark"' in html and "No results yet" in html
    assert 'id="nothing-to-fix"' in html and 'id="no-submissions"' in html
    assert re.search(r'id="quality-score">0<', html)  # three months due, none received: 0 of 3 on time
    assert OTHER not in html



def test_the_portal_reads_the_day_from_the_settings(client_for, make_user, registry, sent, web_app) -> None:
    """CLDX_TODAY (the demo's clock): on 15 September 2017, August is due, not yet missing."""
    web_app.state.settings = web_app.state.settings.model_copy(update={"today": date(2017, 9, 15)})
    now = web_app.state.settings.now()
    assert now.astimezone(ZoneInfo("Pacific/Auckland")).date() == date(2017, 9, 15)
    html = client_for(make_user("tiaki.submitter", (PROVIDER_SUBMITTER, OWN))).get("/").text
    due = Cells(html, "due-table").rows[1:]
    assert [row[1] for row in due] == ["August 2017"], due
    assert 'id="missing-table"' not in html


# --- The ministry's roll-out overview ------------------------------------------------------------------


def test_an_analyst_lands_on_the_rollout_overview_and_other_ministry_roles_do_not(client_for, make_user, ministry_client, registry,
                                                                                 sent, web_app) -> None:
    from cldx.analysis.reports import MINISTRY

    from ..conftest import second_factor_user

    html = ministry_client.get("/").text
    assert "<h1>Roll-out overview</h1>" in html and 'class="chart-spec"' in html
    report = run_report("coverage", web_app.state.report_context, audience=MINISTRY)
    for key in ("spend", "providers"):
        rows = next(s for s in report.sections if s.key == key).table.to_csv_rows()
        rows = rows[:rows.index([])] if [] in rows else rows
        shown = Cells(html, f"table-overview-{key}").rows
        assert shown[0] == [h.replace("_", " ") for h in rows[0]] and shown[1:] == rows[1:], key
    # The spend series carries the brief's target: 23% from July 2016, 100% from July 2017.
    assert ["2017-07", "Target (brief)", "100.0"] in Cells(html, "table-overview-spend").rows
    for name in ("reach", "outcomes", "providers", "compliance", "practice"):
        assert f'href="/reports/{name}"' in html
    # A privacy officer (no analysis capability) sees the counts page, not the overview.
    officer = client_for(second_factor_user(make_user, "pia.officer", "privacy-officer")).get("/").text
    assert "<h1>What the database holds</h1>" in officer and "chart-spec" not in officer
