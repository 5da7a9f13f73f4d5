"""The submission pages served to a TestClient: upload form, submission page, findings CSV, list.

The browser journeys are in `test_submissions_browser.py`; these pin what the server sends.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from cldx.access.roles import SUBMIT, VIEW_PROVIDER
from cldx.config import Settings
from cldx.web.auth import CSRF_HEADER, SESSION_COOKIE
from cldx.ingest.queue import work_once
from cldx.web.app import create_app
from cldx.web.pages import submissions as submissions_page
from cldx.web.templating import NAVIGATION

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class Page(HTMLParser):
    """The tags of a page, and anything inline that the Content Security Policy would refuse."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[str] = []
        self._in: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        self._in = tag if tag in ("script", "style") else None
        if "style" in attributes:
            self.inline.append(f"style attribute on <{tag}>")
        self.inline += [f"{name} on <{tag}>" for name in attributes if name.startswith("on")]

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in and data.strip():
            self.inline.append(f"inline <{self._in}>")

    def find(self, tag: str, **wanted: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in wanted.items())]


def send(client: TestClient, upload, *, provider: str = "P0001", period: str = "2017-08", mode: str = "partial") -> dict:
    response = client.post("/api/v1/submissions", data={"provider": provider, "period": period, "mode": mode}, files=upload.multipart())
    assert response.status_code == 201, response.text
    return response.json()


def finding_rows(html: str) -> list[dict[str, str | None]]:
    return [attrs for tag, attrs in Page(html).tags if tag == "tr" and "data-severity" in attrs]


def shown_count(html: str) -> str:
    match = re.search(r'<span id="findings-shown">([^<]*)</span>', html)
    assert match, "no count of findings shown"
    return match.group(1)


# --- Navigation and templates -----------------------------------------------------------------


def test_navigation_has_submissions_and_upload() -> None:
    assert ("Submissions", "/submissions", VIEW_PROVIDER) in NAVIGATION
    assert ("Upload", "/submissions/new", SUBMIT) in NAVIGATION


@pytest.mark.parametrize("path", ["/submissions", "/submissions/new"])
def test_navigation_marks_the_current_page(provider_client: TestClient, path: str) -> None:
    html = provider_client.get(path).text
    assert f'<a href="{path}" aria-current="page">' in html


def test_upload_page_links_every_template(provider_client: TestClient) -> None:
    from cldx.standard import RECORD_TYPES
    from cldx.standard.templates import workbook_file_name

    html = provider_client.get("/submissions/new").text
    links = {a["href"] for a in Page(html).find("a") if (a.get("href") or "").startswith("/templates/")}
    assert links == {f"/templates/{rt.file_name}" for rt in RECORD_TYPES.values()} | {f"/templates/{workbook_file_name()}"}
    for link in links:
        assert provider_client.get(link).status_code == 200, link


@pytest.mark.parametrize("name", ["client", "dependant", "engagement", "attendance", "assessment", "outcome"])
def test_csv_template_header_is_the_standards_columns(provider_client: TestClient, name: str) -> None:
    from cldx.standard import RECORD_TYPES

    rt = RECORD_TYPES[name]
    response = provider_client.get(f"/templates/{rt.file_name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{rt.file_name}"'
    assert response.content.startswith(b"\xef\xbb\xbf")  # for Excel: UTF-8 with a byte-order mark
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows == [rt.columns]


def test_workbook_template_opens_and_offers_the_stored_service_lines(provider_client: TestClient, web_engine, provider) -> None:
    from openpyxl import load_workbook

    from cldx.standard import RECORD_TYPES, STANDARD_VERSION
    from cldx.standard.templates import workbook_file_name, workbook_standard_version
    from cldx.store.db import write_transaction
    from cldx.store.models import ServiceLine

    with write_transaction(web_engine) as session:
        session.add(ServiceLine(code="NEWSL", name="A service line added to the registry", description=""))
    response = provider_client.get(f"/templates/{workbook_file_name()}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    workbook = load_workbook(io.BytesIO(response.content))
    assert workbook_standard_version(workbook) == STANDARD_VERSION
    for rt in RECORD_TYPES.values():
        header = [cell.value for cell in workbook[rt.sheet_name][1]]
        assert header == rt.columns
    codes = {row[1] for row in workbook["codes"].iter_rows(min_row=2, values_only=True) if row[0] == "service_code"}
    assert {"SWIS", "NEWSL"} <= codes


def test_unknown_template_is_404(provider_client: TestClient) -> None:
    response = provider_client.get("/templates/nothing.csv")
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in response.text


# --- The upload page ---------------------------------------------------------------------------


def test_upload_page_has_a_labelled_form_for_the_api(provider_client: TestClient, provider) -> None:
    response = provider_client.get("/submissions/new")
    assert response.status_code == 200
    page = Page(response.text)
    [form] = page.find("form", id="upload-form")
    assert form["method"] == "post" and form["action"] == "/submissions"  # without JavaScript
    assert form["enctype"] == "multipart/form-data"
    assert form["data-api-url"] == "/api/v1/submissions"  # what upload.js sends to
    labelled = {a["for"] for a in page.find("label")}
    for control in ("provider", "period", "mode-partial", "mode-all-or-nothing", "files"):
        assert control in labelled, f"{control} has no label"
    [files] = page.find("input", id="files")
    assert files["type"] == "file" and "multiple" in files and files["accept"] == ".csv,.xlsx"
    [period] = page.find("input", id="period")
    assert period["value"] == datetime.now(ZoneInfo("Pacific/Auckland")).strftime("%Y-%m")
    # One provider: chosen already.
    assert "selected" in page.find("option", value=provider.code)[0]
    assert [a["value"] for a in page.find("input", name="mode")] == ["partial", "all-or-nothing"]
    assert "checked" in page.find("input", id="mode-partial")[0]
    assert page.find("div", id="form-errors", role="alert")
    assert page.find("progress", id="upload-progress")
    assert page.find("script", src="/static/upload.js")


def test_upload_page_offers_only_the_signed_in_provider(provider_client: TestClient, provider, add_provider) -> None:
    add_provider("P0002", "Another provider")
    page = Page(provider_client.get("/submissions/new").text)
    assert [o["value"] for o in page.find("option") if o.get("value")] == [provider.code]


@pytest.mark.parametrize("path", ["/submissions", "/submissions/new"])
def test_pages_have_no_inline_script_or_style(provider_client: TestClient, provider, faulty_upload, path: str) -> None:
    receipt = send(provider_client, faulty_upload)
    for url in (path, f"/submissions/{receipt['submission_id']}"):
        page = Page(provider_client.get(url).text)
        assert page.inline == [], url
        for _, attrs in page.tags:
            for name in ("src", "href"):
                if (attrs.get(name) or "").startswith("/static/"):
                    assert provider_client.get(attrs[name]).status_code == 200, attrs[name]


def test_upload_without_script_redirects_to_the_submission_page(provider_client: TestClient, provider, faulty_upload) -> None:
    response = provider_client.post(
        "/submissions", data={"provider": provider.code, "period": "2017-08", "mode": "partial"}, files=faulty_upload.multipart(),
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert re.fullmatch(rf"/submissions/{UUID}", response.headers["location"])
    page = provider_client.get(response.headers["location"]).text
    assert 'data-count="rejected">4<' in page
    assert "<dd>tiaki.submitter</dd>" in page  # the submitter: who was signed in


def test_upload_without_script_lists_what_is_missing(provider_client: TestClient, provider) -> None:
    response = provider_client.post("/submissions", data={"provider": "", "period": "2017-13"}, files=[("files", ("", b"", "application/octet-stream"))])
    assert response.status_code == 422
    page = Page(response.text)
    [alert] = page.find("div", id="form-errors", role="alert")
    assert "hidden" not in alert
    links = [a["href"] for a in page.find("a") if (a.get("href") or "").startswith("#")]
    assert links[1:] == ["#provider", "#period", "#files"]  # the first is the skip link
    assert "Choose the provider" in response.text and "YYYY-MM" in response.text and "at least one file" in response.text
    assert page.find("select", id="provider")[0].get("aria-invalid") == "true"


def test_upload_without_script_refuses_an_unknown_provider(provider_client: TestClient, provider, faulty_upload) -> None:
    response = provider_client.post("/submissions", data={"provider": "NOPE"}, files=faulty_upload.multipart())
    assert response.status_code == 422
    assert "There is no provider &#39;NOPE&#39;" in response.text


# --- A submission's page -----------------------------------------------------------------------


def test_submission_page_shows_the_receipt(provider_client: TestClient, provider, faulty_upload, expected_findings) -> None:
    receipt = send(provider_client, faulty_upload)
    response = provider_client.get(f"/submissions/{receipt['submission_id']}")
    assert response.status_code == 200
    html = response.text
    assert f"Submission: {provider.name}, August 2017" in html
    assert f"<dd>{provider.code} · {provider.name}</dd>" in html
    assert "<dd>2017-08</dd>" in html
    received = datetime.fromisoformat(receipt["received_at"]).astimezone(ZoneInfo("Pacific/Auckland"))
    assert received.strftime("%-d %b %Y, %H:%M:%S %Z") in html  # shown in New Zealand time
    assert "Partly accepted" in html
    for name, value in receipt["counts"].items():
        assert f'data-count="{name}">{value}<' in html
    for file in receipt["files"]:
        assert file["sha256"] in html
    rows = [(r["data-file"], int(r["data-row"]), r["data-field"], r["data-rule"], r["data-severity"]) for r in finding_rows(html)]
    assert rows == expected_findings
    assert shown_count(html) == "5"
    page = Page(html)
    assert page.find("table", id="findings")
    assert all(th.get("scope") == "col" for tag, th in page.tags if tag == "th" and th.get("scope") != "row")
    assert page.find("caption", id="findings-caption")
    # The page is complete, so the browser filters; the sheet column only appears for workbooks.
    assert page.find("form", id="findings-filters")[0]["data-complete"] == "true"
    assert "<th scope=\"col\">Sheet</th>" not in html


def test_submission_page_links_the_findings_csv_and_each_files_rejected_rows(provider_client: TestClient, provider, faulty_upload) -> None:
    receipt = send(provider_client, faulty_upload)
    sid = receipt["submission_id"]
    hrefs = [a["href"] for a in Page(provider_client.get(f"/submissions/{sid}").text).find("a")]
    assert f"/submissions/{sid}/findings.csv" in hrefs
    assert f"/api/v1/submissions/{sid}/rejected?file=clients.csv" in hrefs
    assert f"/api/v1/submissions/{sid}/rejected?file=engagements.csv" in hrefs
    rejected = provider_client.get(f"/api/v1/submissions/{sid}/rejected?file=clients.csv")
    rows = list(csv.DictReader(io.StringIO(rejected.content.decode("utf-8-sig"))))
    assert [r["client_ref"] for r in rows] == ["C002", "C003"]


def test_findings_csv_is_the_apis_csv(provider_client: TestClient, provider, faulty_upload, expected_findings) -> None:
    sid = send(provider_client, faulty_upload)["submission_id"]
    page_csv = provider_client.get(f"/submissions/{sid}/findings.csv")
    api_csv = provider_client.get(f"/api/v1/submissions/{sid}/findings", headers={"Accept": "text/csv"})
    assert page_csv.status_code == 200
    assert page_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert page_csv.headers["content-disposition"] == f'attachment; filename="findings-{sid}.csv"'
    assert page_csv.content == api_csv.content
    rows = list(csv.DictReader(io.StringIO(page_csv.content.decode("utf-8-sig"))))
    assert [(r["file"], int(r["row"]), r["field"], r["rule"], r["severity"]) for r in rows] == expected_findings


def test_submission_page_filters_on_the_server_too(provider_client: TestClient, provider, faulty_upload) -> None:
    sid = send(provider_client, faulty_upload)["submission_id"]
    html = provider_client.get(f"/submissions/{sid}?severity=error&file=clients.csv").text
    shown = [r for r in finding_rows(html) if "hidden" not in r]
    assert [(r["data-row"], r["data-rule"]) for r in shown] == [("3", "impossible-date"), ("4", "unknown-code")]
    assert len(finding_rows(html)) == 5  # all on the page, the rest hidden, so the browser can refilter
    assert shown_count(html) == "2"
    assert "selected" in Page(html).find("option", value="error")[0]


def test_submission_page_with_many_findings_filters_in_the_database(
    provider_client: TestClient, provider, faulty_upload, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submissions_page, "FINDINGS_ON_PAGE", 3)
    sid = send(provider_client, faulty_upload)["submission_id"]
    html = provider_client.get(f"/submissions/{sid}").text
    assert len(finding_rows(html)) == 3
    assert shown_count(html) == "5"
    assert "The table lists the first 3" in html
    assert Page(html).find("form", id="findings-filters")[0]["data-complete"] == "false"
    html = provider_client.get(f"/submissions/{sid}?severity=warning").text
    assert [r["data-rule"] for r in finding_rows(html)] == ["not-notified"]
    assert shown_count(html) == "1"


def test_clean_submission_says_there_is_nothing_to_fix(provider_client: TestClient, provider, fixed_upload) -> None:
    sid = send(provider_client, fixed_upload)["submission_id"]
    html = provider_client.get(f"/submissions/{sid}").text
    assert "Accepted" in html
    assert 'data-count="rejected">0<' in html
    assert "rejected?file=" not in html


def test_unknown_submission_is_a_404_page(provider_client: TestClient) -> None:
    for path in ("/submissions/00000000-0000-0000-0000-000000000000", "/submissions/nope/findings.csv"):
        response = provider_client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        assert "<h1>Page not found</h1>" in response.text


def test_queued_submission_shows_progress_until_the_worker_is_done(web_db_url: str, provider, faulty_upload, provider_user,
                                                                   session_cookie) -> None:
    settings = Settings(database_url=web_db_url, queue_threshold_bytes=1, embedded_worker=False)
    app = create_app(settings)
    session_id, csrf_token = session_cookie(provider_user)
    with TestClient(app, base_url="https://testserver", cookies={SESSION_COOKIE: session_id}, headers={CSRF_HEADER: csrf_token}) as client:
        response = client.post(
            "/submissions", data={"provider": provider.code, "period": "2017-08"}, files=faulty_upload.multipart(), follow_redirects=False
        )
        assert response.status_code == 303
        html = client.get(response.headers["location"]).text
        page = Page(html)
        [status] = page.find("section", id="submission-status")
        assert status["data-status"] == "queued"
        assert status["data-poll-url"] == "/api/v1/submissions/" + response.headers["location"].rsplit("/", 1)[1]
        assert page.find("progress", id="job-progress")
        assert "waiting for a worker" in html
        assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in html
        assert 'data-count="new"' not in html  # no counts before the worker has done its work

        assert work_once(app.state.engine)
        html = client.get(response.headers["location"]).text
        assert Page(html).find("section", id="submission-status")[0].get("data-poll-url") is None
        assert "http-equiv" not in html
        assert 'data-count="rejected">4<' in html


# --- The list ----------------------------------------------------------------------------------


def test_submissions_list_is_empty_at_first(provider_client: TestClient) -> None:
    response = provider_client.get("/submissions")
    assert response.status_code == 200
    assert "No submissions yet." in response.text


def test_submissions_list_is_newest_first_and_paginated(
    provider_client: TestClient, provider, faulty_upload, fixed_upload, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submissions_page, "PAGE_SIZE", 2)
    ids = [send(provider_client, upload)["submission_id"] for upload in (faulty_upload, fixed_upload, fixed_upload)]

    first = provider_client.get("/submissions").text
    assert re.findall(rf'data-submission="({UUID})"', first) == [ids[2], ids[1]]
    assert f'href="/submissions/{ids[2]}"' in first
    assert "Page 1 of 2" in first and 'href="/submissions?page=2"' in first
    second = provider_client.get("/submissions?page=2").text
    assert re.findall(rf'data-submission="({UUID})"', second) == [ids[0]]
    assert "Partly accepted" in second and "<td>2017-08</td>" in second
    assert 'href="/submissions?page=1"' in second
    row = re.search(rf'data-submission="{ids[0]}">(.*?)</tr>', second, re.S).group(1)
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["3", "0", "0", "1", "4"]  # new ... rejected
    assert provider_client.get("/submissions?page=0").status_code == 422
    assert "No submissions on this page" in provider_client.get("/submissions?page=9").text


# --- A workbook --------------------------------------------------------------------------------


def filled_workbook(rows: dict[str, list[dict[str, str]]]) -> bytes:
    """The Excel template with `rows` typed into its sheets."""
    from openpyxl import load_workbook

    from cldx.standard.templates import workbook_bytes

    workbook = load_workbook(io.BytesIO(workbook_bytes()))
    for sheet, records in rows.items():
        ws = workbook[sheet]
        columns = [cell.value for cell in ws[1]]
        for row, record in enumerate(records, start=2):
            for name, value in record.items():
                ws.cell(row=row, column=columns.index(name) + 1, value=value)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_workbook_findings_show_the_sheet_and_rejected_rows_come_per_sheet(provider_client: TestClient, provider) -> None:
    client = dict(family_name="Smith", given_names="Jane", gender="2", primary_ethnicity="11", area="153200",
                  notified_of_sharing_on="2017-04-25", identity_consent="y")
    data = filled_workbook({
        "clients": [dict(client, client_ref="C001", date_of_birth="31/02/2009"), dict(client, client_ref="C002", date_of_birth="2009-02-01")],
        "engagements": [dict(engagement_ref="E001", client_ref="C999", service_code="SWIS", start_date="2017-04-28")],
    })
    response = provider_client.post("/api/v1/submissions", data={"provider": provider.code, "period": "2017-08"},
                               files=[("files", ("monthly.xlsx", data, "application/octet-stream"))])
    assert response.status_code == 201
    sid = response.json()["submission_id"]
    html = provider_client.get(f"/submissions/{sid}").text
    assert '<th scope="col">Sheet</th>' in html
    assert "<td>clients</td>" in html and "<td>engagements</td>" in html
    hrefs = [a["href"] for a in Page(html).find("a", **{"class": "to-fix"})]
    assert hrefs == [f"/api/v1/submissions/{sid}/rejected?file=monthly.xlsx&sheet=clients",
                     f"/api/v1/submissions/{sid}/rejected?file=monthly.xlsx&sheet=engagements"]
    # Each sheet's rows under its own header, with only its own errors (both are row 2).
    clients = provider_client.get(hrefs[0])
    assert clients.headers["content-disposition"] == 'attachment; filename="monthly-clients-to-fix.csv"'
    [row] = list(csv.DictReader(io.StringIO(clients.content.decode("utf-8-sig"))))
    assert row["client_ref"] == "C001" and "date_of_birth" in row["cldx_errors"] and "C999" not in row["cldx_errors"]
    [row] = list(csv.DictReader(io.StringIO(provider_client.get(hrefs[1]).content.decode("utf-8-sig"))))
    assert row["engagement_ref"] == "E001" and row["cldx_errors"].startswith("client_ref:")


def test_odd_ids_and_filters_are_answered_not_500(provider_client: TestClient, provider, faulty_upload) -> None:
    sid = send(provider_client, faulty_upload)["submission_id"]
    assert provider_client.get("/submissions/%00").status_code == 404
    assert provider_client.get(f"/submissions/{sid}%00/findings.csv").status_code == 404
    assert provider_client.get(f"/submissions/{sid}", params={"file": "clients.csv\x00"}).status_code == 422
    assert provider_client.get(f"/submissions/{sid}", params={"rule": "x" * 41}).status_code == 422
    # An unknown value is just a filter that matches nothing.
    html = provider_client.get(f"/submissions/{sid}", params={"severity": "fatal"}).text
    assert shown_count(html) == "0"
    assert '<p id="no-match" class="hint">' in html
