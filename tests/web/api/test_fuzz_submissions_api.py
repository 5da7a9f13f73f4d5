"""The submissions API never answers 500 to malformed input, on SQLite and PostgreSQL.

Random bodies (any bytes as JSON, JSON of any shape, multipart with odd file names, contents
and fields, raw multipart, wrong content types, missing fields, huge periods) get a 2xx
receipt or a 4xx in the shared error shape `{ok: false, error, errors, status}`; a body over
`max_upload_bytes` gets 413 saying the limit; cells that a spreadsheet would run as formulas
come back from the CSV downloads prefixed with a quote, while plain numbers such as -5 do not.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cldx.access import tokens
from cldx.config import Settings
from cldx.store import make_engine, transaction
from cldx.store.models import Provider
from cldx.store.registry import seed_service_lines
from cldx.web.app import create_app

URL = "/api/v1/submissions"
LIMIT = 256 * 1024  # max_upload_bytes for these tests
QUEUE_AT = 48 * 1024  # larger uploads are queued (202) instead of processed in the request

# One app (and database) per test and backend; the properties hold for each request alone.
API = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

CLIENT_HEADER = ["client_ref", "family_name", "given_names", "date_of_birth", "gender", "primary_ethnicity", "iwi_1", "area",
                 "notified_of_sharing_on", "identity_consent"]
FORMULA_START = ("=", "+", "-", "@")
PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def client_row(i: int, family: str = "Pōkai", given: str = "Mere", gender: str = "2") -> list[str]:
    return [f"C-{i}", family, given, "1990-05-17", gender, "21", "0402", "100100", "2017-03-09", "y"]


def clients_csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CLIENT_HEADER)
    writer.writerows(rows)
    return buffer.getvalue().encode()


GOOD_CSV = clients_csv([client_row(i) for i in range(1, 4)] + [client_row(9, gender="zz")])


@pytest.fixture
def api(migrated_url: str) -> Iterator[TestClient]:
    """The app on a migrated database (SQLite, then PostgreSQL) holding provider P1."""
    engine = make_engine(migrated_url)
    with transaction(engine) as session:
        seed_service_lines(session)
        provider = Provider(code="P1", name="Fuzz Trust", region_code="01")
        session.add(provider)
        session.flush()
        _, token = tokens.issue(session, tokens.SYSTEM, "Fuzz case system", created_by="test", provider_id=provider.id)
    engine.dispose()
    settings_ = Settings(database_url=migrated_url, embedded_worker=False, max_upload_bytes=LIMIT, queue_threshold_bytes=QUEUE_AT)
    with TestClient(create_app(settings_), raise_server_exceptions=False, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def assert_error_shape(response) -> dict:
    body = response.json()
    assert set(body) == {"ok", "error", "errors", "status"}, body
    assert body["ok"] is False and body["status"] == response.status_code
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["errors"], list)
    return body


def assert_answered(response) -> dict:
    """No 5xx; a 4xx in the error shape; a 201/202 with a receipt."""
    assert response.status_code < 500, (response.status_code, response.text[:1000])
    if response.status_code >= 400:
        return assert_error_shape(response)
    assert response.status_code in (201, 202), response.status_code
    receipt = response.json()
    assert {"submission_id", "provider", "period", "status", "counts", "findings", "files"} <= set(receipt)
    for finding in receipt["findings"]:
        assert set(finding) == {"file", "sheet", "row", "field", "value", "rule", "severity", "message", "fix"}
        assert finding["message"] and finding["fix"]
    return receipt


def assert_reads_work(api: TestClient, receipt: dict) -> None:
    """Everything a receipt points at can be read back: the receipt, findings (JSON and CSV) and each file's rejected rows."""
    sid = receipt["submission_id"]
    assert api.get(f"{URL}/{sid}").status_code == 200
    assert api.get(f"{URL}/{sid}/findings").status_code == 200
    assert api.get(f"{URL}/{sid}/findings", headers={"accept": "text/csv"}).status_code == 200
    for file in receipt["files"]:
        for path in ("findings", "rejected"):
            response = api.get(f"{URL}/{sid}/{path}", params={"file": file["name"]}, headers={"accept": "text/csv"})
            assert response.status_code == 200, (path, file["name"], response.text[:500])


# --- Strategies ------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(["P1", "\x00", "a\x00b", "\ud800", "x\udfffy", "2017-07", "all-or-nothing", "y" * 300]),
)


def json_containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


json_values = st.recursive(json_scalars, json_containers, max_leaves=16)
record_keys = st.sampled_from(["clients", "Clients", "client", "engagements", "outcomes", "nope", "x" * 300 + "/clients", "clients." + "a" * 200, ""])
field_names = st.one_of(st.sampled_from([*CLIENT_HEADER, "action", "y" * 300, "\x00", "\ud800", ""]), st.text(max_size=8))
good_record = st.fixed_dictionaries({k: st.just(v) for k, v in zip(CLIENT_HEADER, client_row(1))})
records = st.one_of(st.lists(st.one_of(good_record, st.dictionaries(field_names, json_values, max_size=5), json_values), max_size=4), json_values)
json_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"provider": st.one_of(st.just("P1"), json_values, st.sampled_from(["P\x00", "\ud800", " P1 ", "", "NOPE" * 100]))},
        optional={
            "records": st.one_of(st.dictionaries(record_keys, records, max_size=3), json_values),
            "period": st.one_of(st.sampled_from(["2017-07", "2017-13", "", "2017-07" * 1000]), json_values),
            "mode": st.one_of(st.sampled_from(["partial", "all-or-nothing", "strict", ""]), json_values),
        },
    ),
)


def as_json_bytes(value) -> bytes:
    # ensure_ascii writes lone surrogates as \ud800 escapes, which a JSON parser accepts.
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


file_names = st.one_of(
    st.sampled_from(["clients.csv", "engagements.csv", "Clients.CSV", "anything.xlsx", "batch.json", "", "clients-ō.csv",
                     "Te Whāiti clients.csv", 'a"b.csv', "x" * 300 + ".csv", "../../etc/passwd", "ü" * 300]),
    st.text(max_size=40),
)
file_bodies = st.one_of(
    st.just(GOOD_CSV), st.binary(max_size=400), st.just(b""), st.just(b"PK\x03\x04" + b"\0" * 50),
    st.just(GOOD_CSV + b"\x00"), st.just(GOOD_CSV.decode().encode("cp1252", errors="replace")),
    st.just(clients_csv([client_row(i, family="f" * 90) for i in range(600)])),  # over QUEUE_AT: queued
    json_bodies.map(as_json_bytes),
)
form_values = st.one_of(st.sampled_from(["P1", "NOPE", "", "2017-07", "2017-7", "partial", "all-or-nothing", "strict"]), st.text(max_size=30))


# --- Bodies of any kind ----------------------------------------------------------------------------


@API
@given(body=st.one_of(st.binary(max_size=2000), json_bodies.map(as_json_bytes)))
@example(body=b'{"provider": "P1", "records": {"clients": [' + b"1" * 5000 + b"]}}")  # an integer Python will not convert
@example(body=b'{"provider": ' + b"1" * 5000 + b"}")
@example(body=b'{"provider": "\\ud800", "records": {}}')
@example(body=b'{"provider": "P\\u0000", "records": {}}')
@example(body=b'{"provider": "P1", "records": {"clients": [{"client_ref": "\\ud800"}]}}')
@example(body=b'{"provider": "P1", "records": {"clients": [{"client_ref": "C\\u00001"}]}}')
@example(body=b'{"provider": "P1", "records": {"' + b"x" * 300 + b'": []}}')  # a key longer than a sheet column holds
@example(body=b'{"provider": "P1", "records": {"' + b"x" * 300 + b'/clients": [{"client_ref": "C-1"}]}}')  # ... that is a record list
@example(body=b"[" * 100_000)
def test_any_json_body_is_answered_without_a_500(api, body):
    response = api.post(URL, content=body, headers={"content-type": "application/json"})
    receipt = assert_answered(response)
    if response.status_code == 201:
        assert receipt["provider"] == "P1"
        assert_reads_work(api, receipt)


@API
@given(
    files=st.lists(st.tuples(st.sampled_from(["files", "files", "files", "file", "provider"]), file_names, file_bodies), max_size=4),
    fields=st.dictionaries(st.sampled_from(["provider", "provider", "period", "mode", "other"]), form_values, max_size=4),
)
@example(files=[("files", "clients-ō.csv", GOOD_CSV)], fields={"provider": "P1"})  # a name an HTTP header cannot hold
@example(files=[("files", "x" * 300 + ".csv", GOOD_CSV)], fields={"provider": "P1"})  # longer than a file name column holds
def test_any_multipart_upload_is_answered_without_a_500(api, files, fields):
    response = api.post(URL, data=fields, files=[(field, (name, data, "application/octet-stream")) for field, name, data in files])
    receipt = assert_answered(response)
    if response.status_code == 201:  # a queued (202) receipt lists its files once the worker has stored them
        assert len(receipt["files"]) == len([f for f in files if f[0] == "files"])
    if response.status_code in (201, 202):
        assert all(len(f["name"]) <= 255 for f in receipt["files"])
        assert_reads_work(api, receipt)


def raw_part(headers: bytes, body: bytes) -> bytes:
    return b"--b\r\n" + headers + b"\r\n\r\n" + body + b"\r\n"


@API
@given(name=st.binary(max_size=60), provider=st.binary(max_size=20), extra=st.binary(max_size=200), tail=st.sampled_from([b"--b--\r\n", b"", b"--b"]))
@example(name=b"cli\x00ents.csv", provider=b"P1", extra=b"", tail=b"--b--\r\n")  # NUL in a file name
@example(name=b"clients.csv", provider=b"P\x001", extra=b"", tail=b"--b--\r\n")  # NUL in the provider code
@example(name=b"cli\xffents\r.csv", provider=b"P1", extra=b"", tail=b"--b--\r\n")
def test_raw_multipart_bodies_are_answered_without_a_500(api, name, provider, extra, tail):
    body = (raw_part(b'Content-Disposition: form-data; name="provider"', provider)
            + raw_part(b'Content-Disposition: form-data; name="files"; filename="' + name + b'"\r\nContent-Type: text/csv', GOOD_CSV)
            + extra + tail)
    response = api.post(URL, content=body, headers={"content-type": "multipart/form-data; boundary=b"})
    receipt = assert_answered(response)
    if response.status_code in (201, 202):
        assert all("\x00" not in f["name"] for f in receipt["files"])
        assert_reads_work(api, receipt)


@API
@given(content_type=st.one_of(
    st.sampled_from(["", "text/plain", "text/csv", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data",
                     "multipart/form-data; boundary=", "multipart/form-data; boundary=zz", "multipart/mixed; boundary=b",
                     "application/jsonx", "application/json; charset=latin-1", "APPLICATION/JSON"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
), body=st.binary(max_size=300))
def test_wrong_content_types_are_answered_without_a_500(api, content_type, body):
    response = api.post(URL, content=body, headers={"content-type": content_type})
    assert_answered(response)
    if not content_type.startswith(("multipart/form-data", "application/json")):
        assert response.status_code == 415


MISSING_AND_WRONG = [
    ("json", {}, "provider"),
    ("json", {"provider": "P1"}, "records"),
    ("json", {"provider": "P1", "records": []}, "records"),
    ("json", {"records": {"clients": []}}, "provider"),
    ("json", {"provider": "NOPE", "records": {}}, "provider"),
    ("json", {"provider": "P1", "records": {}, "mode": "strict"}, "mode"),
    ("json", {"provider": "P1", "records": {}, "period": "07/2017"}, "period"),
    ("form", {"provider": "P1"}, "files"),
    ("form", {"period": "2017-07"}, "provider"),
    ("form", {"provider": "NOPE"}, "provider"),
]


def test_missing_and_wrong_fields_are_422_saying_where(api):
    for kind, payload, where in MISSING_AND_WRONG:
        if kind == "json":
            response = api.post(URL, json=payload)
        else:
            files = [("files", ("clients.csv", GOOD_CSV, "text/csv"))] if where != "files" else [("other", ("x.csv", b"x", "text/csv"))]
            response = api.post(URL, data=payload, files=files)
        assert response.status_code == 422, (kind, payload)
        body = assert_error_shape(response)
        assert body["errors"] and body["errors"][0]["location"][-1] == where, (kind, payload, body)


@API
@given(length=st.integers(8, 300_000), kind=st.sampled_from(["json", "form"]))
@example(length=LIMIT, kind="json")
def test_huge_periods_are_refused_in_the_error_shape(api, length, kind):
    period = "2017-07" + "9" * length
    if kind == "json":
        response = api.post(URL, json={"provider": "P1", "period": period, "records": {}})
    else:
        response = api.post(URL, data={"provider": "P1", "period": period}, files=[("files", ("clients.csv", GOOD_CSV, "text/csv"))])
    assert response.status_code in (413, 422)
    body = assert_error_shape(response)
    if response.status_code == 422:
        assert body["errors"][0]["location"][-1] == "period"


# --- The upload limit ----------------------------------------------------------------------------


def test_body_over_the_limit_is_413_with_a_clear_message(api):
    """With a Content-Length the limit is known at once; a chunked body is stopped as it streams in."""
    big = clients_csv([client_row(i, family="f" * 90) for i in range(LIMIT // 100)])
    assert len(big) > LIMIT
    bodies = {
        "application/json": json.dumps({"provider": "P1", "records": {"clients": [{"family_name": big.decode()}]}}).encode(),
        "multipart/form-data; boundary=b": (raw_part(b'Content-Disposition: form-data; name="provider"', b"P1")
                                            + raw_part(b'Content-Disposition: form-data; name="files"; filename="clients.csv"', big) + b"--b--\r\n"),
    }

    def chunks(body: bytes):
        for at in range(0, len(body), 16 * 1024):
            yield body[at:at + 16 * 1024]

    for content_type, body in bodies.items():
        for streamed in (False, True):
            response = api.post(URL, content=chunks(body) if streamed else body, headers={"content-type": content_type})
            assert response.status_code == 413, (content_type, streamed, response.text[:300])
            assert f"{LIMIT:,} bytes" in assert_error_shape(response)["error"]

    # Just under the limit is accepted (queued, being over the queue threshold).
    body = clients_csv([client_row(i) for i in range(1, 2000)])
    assert QUEUE_AT < len(body) < LIMIT - 1000
    response = api.post(URL, data={"provider": "P1"}, files=[("files", ("clients.csv", body, "text/csv"))])
    assert response.status_code == 202
    assert_answered(response)


# --- Reading back with odd identifiers -------------------------------------------------------------


@pytest.fixture
def submitted(api) -> str:
    """The id of a stored submission with a rejected row."""
    return api.post(URL, data={"provider": "P1"}, files=[("files", ("clients.csv", GOOD_CSV, "text/csv"))]).json()["submission_id"]


@API
@given(submission_id=st.one_of(st.text(max_size=50), st.sampled_from(["\x00", "a\x00b", "%", "..", "x" * 300])),
       file=st.one_of(st.text(max_size=50), st.sampled_from(["\x00", "clients.csv", "ō.csv", 'a"b\r\nX-Evil: 1', "x" * 300])))
def test_reads_with_odd_ids_and_file_names_are_answered_without_a_500(api, submitted, submission_id, file):
    real = submitted
    for sid in (quote(submission_id, safe=""), real):
        for path, params in (("", {}), ("/findings", {"file": file}), ("/rejected", {"file": file})):
            response = api.get(f"{URL}/{sid}{path}", params=params, headers={"accept": "text/csv"})
            assert response.status_code < 500, (sid, path, file, response.text[:500])
            if response.status_code >= 400:
                assert_error_shape(response)
            else:
                disposition = response.headers.get("content-disposition", "")
                assert "\r" not in disposition and "\n" not in disposition


# --- Formulas in the CSV downloads ---------------------------------------------------------------


def shown_in_csv(value: str) -> str:
    """A cell Excel would run as a formula gets a leading quote; plain numbers stay numbers."""
    if value[:1] in FORMULA_START and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/csv")
    text = response.content.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline="")))


formula_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=20)
payloads = st.one_of(
    st.tuples(st.sampled_from(FORMULA_START), formula_text).map(lambda t: (t[0] + t[1]).strip()),
    st.sampled_from(["-5", "+3", "-0.5", "=1+1", "@SUM(A1:A9)", "-1+2", '=HYPERLINK("http://x.test","click")', "+64 21 555 0100",
                     "=cmd|' /C calc'!A0", "-", "@", "Smith"]),
)


@API
@given(family=payloads, given_names=payloads, gender=payloads)
def test_formulas_come_back_as_text_in_csv_downloads(api, family, given_names, gender):
    rows = [client_row(1), client_row(2, family=family, given=given_names, gender=gender)]
    receipt = api.post(URL, data={"provider": "P1"}, files=[("files", ("clients.csv", clients_csv(rows), "text/csv"))]).json()
    sid = receipt["submission_id"]
    assert receipt["counts"]["rejected"] == 1  # the gender is never a code, so row 3 comes back to fix

    rejected = csv_rows(api.get(f"{URL}/{sid}/rejected", params={"file": "clients.csv"}))
    header, [row] = rejected[0], rejected[1:]
    cells = dict(zip(header, row))
    assert cells["family_name"] == shown_in_csv(family)
    assert cells["given_names"] == shown_in_csv(given_names)
    assert cells["gender"] == shown_in_csv(gender)
    assert cells["client_ref"] == "C-2" and cells["date_of_birth"] == "1990-05-17"

    findings = csv_rows(api.get(f"{URL}/{sid}/findings", headers={"accept": "text/csv"}))
    found = [dict(zip(findings[0], r)) for r in findings[1:]]
    assert [f["value"] for f in found if f["field"] == "gender"] == [shown_in_csv(gender)]
    for table in (rejected, findings):
        for line in table:
            for cell in line:
                assert cell[:1] not in FORMULA_START or PLAIN_NUMBER.fullmatch(cell), cell
