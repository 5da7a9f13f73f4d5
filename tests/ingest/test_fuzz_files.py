"""Bad input, tested: broken files never crash the reader, and never leave half a submission.

The first half reads generated broken files (wrong encodings, ragged rows, huge fields, NUL
bytes, empty and header-only files, workbooks that are not zips or are zip bombs, deep or
oddly shaped JSON) and checks that every problem becomes a finding with a known rule, a
message and a fix, on the row the provider sees. The second half sends broken submissions
through `submit()` on SQLite and PostgreSQL: a receipt always, counts that match the record
tables, nothing stored in strict mode when anything fails, the same submission twice changes
nothing, and a crash in the middle of storing leaves nothing behind.
"""

from __future__ import annotations

import csv
import io
import json
import struct
import uuid
import zipfile
from datetime import date

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from sqlalchemy import func, select

import cldx.ingest.sources as sources
import cldx.ingest.submit as submit_module
from cldx.ingest.findings import RULES
from cldx.ingest.sources import ROW, ParsedSource, SourceFile, parse_records_json, parse_source
from cldx.ingest.submit import MODES, Receipt, UnknownProvider, submit
from cldx.ingest.validate import FINDING_SCHEMA, Stored, validate
from cldx.standard import SEED_SERVICE_LINES
from cldx.store import transaction
from cldx.store.models import (
    IDENTITY_MODELS,
    RECORD_MODELS,
    Provider,
    QuarantinedRow,
    RecordHistory,
    Submission,
    SubmissionFile,
    SubmissionFinding,
)
from cldx.store.registry import seed_service_lines

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Database-backed properties share one database per test (per backend): each example uses a
# provider of its own, so no example sees another's records.
DB = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

TODAY = date(2018, 1, 15)
STORED = Stored.empty({line.code: (line.min_client_age, line.max_client_age) for line in SEED_SERVICE_LINES})

CLIENT_HEADER = ["client_ref", "family_name", "given_names", "date_of_birth", "gender", "primary_ethnicity", "iwi_1", "area",
                 "notified_of_sharing_on", "identity_consent"]
ENGAGEMENT_HEADER = ["engagement_ref", "client_ref", "service_code", "start_date", "end_date", "end_reason"]
ATTENDANCE_HEADER = ["engagement_ref", "session_date", "attended", "duration_minutes"]
ASSESSMENT_HEADER = ["engagement_ref", "phase", "instrument", "domain", "score", "assessed_on"]
OUTCOME_HEADER = ["engagement_ref", "dimension", "measure", "baseline", "result", "better_off", "measured_on"]


def client_row(i: int, family: str = "Pōkai", given: str = "Mere", gender: str = "2") -> list[str]:
    return [f"C-{i}", family, given, "1990-05-17", gender, "21", "0402", "100100", "2017-03-09", "y"]


def engagement_row(i: int) -> list[str]:
    return [f"E-{i}", f"C-{i}", "FS", "2017-01-01", "", ""]


def csv_line(cells: list[str]) -> str:
    """One record without its line ending (Python's writer quotes a cell holding CR or LF only if its terminator has them)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue().removesuffix("\r\n")


def csv_text(header: list[str], rows: list[list[str]], newline: str = "\r\n") -> str:
    return "".join(csv_line(cells) + newline for cells in [header, *rows])


def clients_csv(n: int, newline: str = "\r\n") -> bytes:
    return csv_text(CLIENT_HEADER, [client_row(i) for i in range(1, n + 1)], newline).encode()


def only_table(parsed: ParsedSource) -> pl.DataFrame:
    assert len(parsed.tables) == 1, parsed
    return parsed.tables[0].frame


def assert_report(parsed: ParsedSource) -> None:
    """Every finding names a known rule and says what is wrong and how to fix it."""
    assert isinstance(parsed, ParsedSource)
    for finding in parsed.findings:
        assert finding.rule in RULES, finding
        assert finding.message and finding.fix, finding


def prior_frame(parsed: list[ParsedSource]) -> pl.DataFrame:
    """The reading findings as `submit()` hands them to the validator."""
    rows = [(f.file, f.sheet, f.row, f.field, f.value, f.rule, f.message, f.fix) for p in parsed for f in p.findings]
    return pl.DataFrame(rows, schema=FINDING_SCHEMA, orient="row")


def validated(*files: SourceFile):
    parsed = [parse_source(f) for f in files]
    tables = [t for p in parsed for t in p.tables]
    return parsed, validate(tables, STORED, today=TODAY, prior=prior_frame(parsed))


def error_rows(findings: pl.DataFrame, rule: str | None = None) -> set[int]:
    errors = findings.filter(pl.col("rule").is_in([c for c, r in RULES.items() if r.severity == "error"]))
    if rule is not None:
        errors = errors.filter(pl.col("rule") == rule)
    return set(errors["row"].to_list())


# Text people type into names: te reo Māori macrons, curly quotes, dashes, accents, and anything else.
name_text = st.text(
    st.one_of(st.sampled_from("āēīōūĀĒĪŌŪ’‘“”–—éüñ '-,\"\n"), st.characters(codec="utf-8", exclude_characters="\x00")),
    min_size=1, max_size=25,
).map(str.strip).filter(bool)


# --- 1. Any bytes at all ---------------------------------------------------------------------


@FUZZ
@given(name=st.sampled_from(["clients.csv", "engagements.csv", "notes.txt", "anything.xlsx", "Book1.XLSM", "x.json", "clients.json"]),
       data=st.one_of(st.binary(max_size=3000), st.text(max_size=500).map(str.encode),
                      st.binary(max_size=500).map(lambda b: b"PK\x03\x04" + b), st.binary(max_size=500).map(lambda b: clients_csv(3) + b)))
@example(name="x.json", data=b"1" * 5000)  # an integer longer than Python will convert
@example(name="x.json", data=b'{"clients": [{"client_ref": "\\ud800"}]}')  # a lone surrogate
@example(name="x.json", data=b"[" * 100_000)
@example(name="clients.csv", data=b"\xff\xfec\x00l\x00")  # UTF-16
def test_parse_source_never_raises_on_any_bytes(name, data):
    parsed = parse_source(SourceFile(name, data))
    assert_report(parsed)
    rules = {f.rule for f in parsed.findings}
    if name.endswith(".csv"):
        body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
        if b"\x00" in data or data.startswith((b"\xff\xfe", b"\xfe\xff")):
            assert "unreadable-file" in rules and not parsed.tables
        else:
            try:
                body.decode("utf-8")
                assert "windows-1252" not in rules
            except UnicodeDecodeError:
                try:
                    body.decode("cp1252")
                    assert "windows-1252" in rules
                except UnicodeDecodeError:
                    assert "unreadable-file" in rules and not parsed.tables
    if not parsed.tables:
        assert parsed.findings, "a file that gives no records must say why"


def is_control(ch: str) -> bool:
    return ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF


@FUZZ
@given(name=st.one_of(st.text(max_size=400), st.text(st.characters(codec="utf-8", categories=["L", "N"]), max_size=255)))
@example(name="cli\x00ents.csv")
@example(name="x" * 300 + "/clients.csv")
def test_file_names_are_kept_storable(name):
    """Upload names end up in VARCHAR(255) columns: no control characters, at most 255 characters, the end kept."""
    kept = SourceFile(name, b"").name
    assert len(kept) <= 255 and not any(is_control(ch) for ch in kept)
    if len(name) <= 255 and not any(is_control(ch) for ch in name):
        assert kept == name
    if name.endswith("clients.csv"):
        assert kept.endswith("clients.csv")  # the record type is still read from the name


# --- 2. Encodings, line endings, BOM, embedded newlines -----------------------------------------


@FUZZ
@given(names=st.lists(st.tuples(name_text, name_text), min_size=1, max_size=8), newline=st.sampled_from(["\n", "\r\n"]), bom=st.booleans())
def test_utf8_text_comes_back_identical(names, newline, bom):
    rows = [client_row(i, family, given) for i, (family, given) in enumerate(names, start=1)]
    data = (b"\xef\xbb\xbf" if bom else b"") + csv_text(CLIENT_HEADER, rows, newline).encode("utf-8")
    parsed = parse_source(SourceFile("clients.csv", data))
    assert parsed.findings == []
    frame = only_table(parsed)
    assert frame["family_name"].to_list() == [family for family, _ in names]
    assert frame["given_names"].to_list() == [given for _, given in names]
    assert frame["client_ref"].to_list() == [f"C-{i}" for i in range(1, len(names) + 1)]
    # Embedded newlines are inside one cell: record k is still spreadsheet row k + 1.
    assert frame[ROW].to_list() == list(range(2, len(names) + 2))


@FUZZ
@given(names=st.lists(st.tuples(name_text, name_text), min_size=1, max_size=8), newline=st.sampled_from(["\n", "\r\n"]))
@example(names=[("Pōkai", "Mere")], newline="\r\n")  # the macron is lost to '?', the file is Windows-1252
@example(names=[("Ã©", "x")], newline="\n")  # Windows-1252 bytes that happen to be UTF-8
def test_windows_1252_is_transcoded_with_a_warning_never_mojibake(names, newline):
    """Excel's plain CSV: characters Windows-1252 lacks are lost (as Excel loses them), the rest survive."""
    rows = [client_row(i, family, given) for i, (family, given) in enumerate(names, start=1)]
    data = csv_text(CLIENT_HEADER, rows, newline).encode("cp1252", errors="replace")
    try:
        text = data.decode("utf-8")
        expected_rules = []
    except UnicodeDecodeError:
        text = data.decode("cp1252")
        expected_rules = ["windows-1252"]
    parsed = parse_source(SourceFile("clients.csv", data))
    assert_report(parsed)
    assert [f.rule for f in parsed.findings] == expected_rules
    expected = list(csv.reader(io.StringIO(text, newline="")))[1:]
    frame = only_table(parsed)
    assert frame["family_name"].to_list() == [r[1] for r in expected]
    assert frame["given_names"].to_list() == [r[2] for r in expected]


@FUZZ
@given(data=st.binary(min_size=1, max_size=200).filter(lambda b: b"\x00" not in b))
def test_bytes_neither_utf8_nor_windows_1252_are_unreadable(data):
    data = clients_csv(2) + b"\x81" + data  # 0x81 is undefined in Windows-1252 and never valid UTF-8 here
    parsed = parse_source(SourceFile("clients.csv", data))
    assert [f.rule for f in parsed.findings] == ["unreadable-file"] and parsed.tables == []


@FUZZ
@given(
    records=st.lists(st.tuples(st.booleans(), st.sampled_from(["\n", "\r\n"]), st.integers(0, 2)), min_size=1, max_size=10),
    data=st.data(),
)
def test_findings_point_at_the_spreadsheet_row(records, data):
    """Mixed CRLF and LF, cells holding newlines, blank lines and a ragged row: every finding keeps its row.

    Each record is (a name holding a newline?, its line ending, blank lines before it).
    A blank line is a row in Excel, so it counts; a newline inside a quoted cell does not.
    """
    bad = data.draw(st.integers(0, len(records) - 1), label="record with a bad gender")
    ragged = data.draw(st.none() | st.integers(0, len(records) - 1).filter(lambda k: k != bad), label="ragged record")
    text = csv_line(CLIENT_HEADER) + "\r\n"
    row, expected_rows = 1, []
    for k, (multiline, ending, blanks) in enumerate(records):
        text += ending * blanks
        row += blanks + 1
        expected_rows.append(row)
        cells = client_row(k, family="Te\nWhāiti" if multiline else "Smith", gender="zz" if k == bad else "2")
        if k == ragged:
            cells.append("stray")
        text += csv_line(cells) + ending
    parsed, result = validated(SourceFile("clients.csv", text.encode()))
    assert_report(parsed[0])
    assert error_rows(result.findings, "unknown-code") == {expected_rows[bad]}
    if ragged is None:
        assert error_rows(result.findings) == {expected_rows[bad]}
    else:
        assert error_rows(result.findings, "ragged-row") == {expected_rows[ragged]}
        assert error_rows(result.findings) == {expected_rows[bad], expected_rows[ragged]}
    assert sorted(result.rejected["client"][ROW].to_list()) == sorted(error_rows(result.findings))
    assert result.accepted["client"].height == len(records) - len(error_rows(result.findings))


# --- 3. Ragged rows, huge fields, NUL bytes, empty files -----------------------------------------


@FUZZ
@given(n=st.integers(1, 12), data=st.data())
def test_ragged_rows_are_reported_on_their_row_and_rejected(n, data):
    ragged = data.draw(st.sets(st.integers(0, n - 1), min_size=1), label="ragged records")
    cell = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=5).map(str.strip).filter(bool)
    extra = data.draw(st.lists(cell, min_size=1, max_size=3), label="extra values")
    rows = [client_row(i) + (extra if i in ragged else []) for i in range(n)]
    parsed, result = validated(SourceFile("clients.csv", csv_text(CLIENT_HEADER, rows).encode()))
    assert_report(parsed[0])
    expected = {k + 2 for k in ragged}
    assert {f.row for f in parsed[0].findings if f.rule == "ragged-row"} == expected
    assert set(result.rejected["client"][ROW].to_list()) == expected
    assert result.accepted["client"].height == n - len(ragged)


@settings(FUZZ, max_examples=15)
@given(length=st.integers(101, 100_000), field=st.sampled_from(["family_name", "given_names", "client_ref"]),
       char=st.sampled_from("xā,\"\n"), position=st.integers(0, 3))
def test_huge_fields_are_too_long_on_their_row(length, field, char, position):
    rows = [client_row(i) for i in range(4)]
    rows[position][CLIENT_HEADER.index(field)] = "a" + char * length + "z"
    parsed, result = validated(SourceFile("clients.csv", csv_text(CLIENT_HEADER, rows).encode()))
    assert parsed[0].findings == []
    too_long = result.findings.filter(pl.col("rule") == "too-long")
    assert too_long.select("row", "field").rows() == [(position + 2, field)]
    assert error_rows(result.findings) == {position + 2}
    assert result.rejected["client"][ROW].to_list() == [position + 2]


def test_huge_field_in_a_file_the_careful_reader_reads_is_still_a_report():
    """A ragged row sends the file to Python's csv module, whose field limit is 128 KiB."""
    rows = [client_row(1, family="x" * 200_000), client_row(2) + ["stray"]]
    parsed = parse_source(SourceFile("clients.csv", csv_text(CLIENT_HEADER, rows).encode()))
    assert_report(parsed)
    assert parsed.findings and any(f.is_error for f in parsed.findings)


@FUZZ
@given(n=st.integers(0, 5), data=st.data())
def test_nul_bytes_make_the_file_unreadable(n, data):
    clean = clients_csv(n)
    at = data.draw(st.integers(0, len(clean)), label="position")
    parsed = parse_source(SourceFile("clients.csv", clean[:at] + b"\x00" + clean[at:]))
    assert [f.rule for f in parsed.findings] == ["unreadable-file"]
    assert parsed.tables == []


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\r\n", b"\n\n\n", b"  \t \r\n ", b"\xef\xbb\xbf\r\n"])
def test_empty_file_is_reported(data):
    parsed = parse_source(SourceFile("clients.csv", data))
    assert [f.rule for f in parsed.findings] == ["empty-file"]
    assert parsed.tables == []


@pytest.mark.parametrize("newline", ["", "\n", "\r\n", "\r\n\r\n"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_header_only_file_has_no_records_and_no_errors(newline, bom):
    parsed = parse_source(SourceFile("clients.csv", bom + (",".join(CLIENT_HEADER) + newline).encode()))
    assert parsed.findings == []
    assert only_table(parsed).height == 0


@FUZZ
@given(n=st.integers(1, 6), newline=st.sampled_from(["\n", "\r\n"]))
def test_bom_changes_nothing(n, newline):
    plain = parse_source(SourceFile("clients.csv", clients_csv(n, newline)))
    marked = parse_source(SourceFile("clients.csv", b"\xef\xbb\xbf" + clients_csv(n, newline)))
    assert marked.findings == plain.findings == []
    assert only_table(marked).equals(only_table(plain))


# --- 4. Workbooks that are not zips, zip bombs, broken workbooks ---------------------------------


def workbook_bytes(rows: list[list[str]], title: str = "clients") -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title
    sheet.append(CLIENT_HEADER)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


GOOD_WORKBOOK = workbook_bytes([client_row(i) for i in range(1, 4)])


def test_good_workbook_is_read():
    parsed = parse_source(SourceFile("anything.xlsx", GOOD_WORKBOOK))
    assert parsed.findings == []
    assert only_table(parsed)["client_ref"].to_list() == ["C-1", "C-2", "C-3"]


@FUZZ
@given(data=st.one_of(st.binary(max_size=2000), st.binary(max_size=2000).map(lambda b: b"PK\x03\x04" + b),
                      st.binary(max_size=200).map(lambda b: b"PK\x05\x06" + b)))
def test_xlsx_that_is_not_a_zip_is_unreadable(data):
    parsed = parse_source(SourceFile("anything.xlsx", data))
    assert [f.rule for f in parsed.findings] == ["unreadable-file"]
    assert parsed.tables == []


def _replace_member(workbook: bytes, member: str, change) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(workbook))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            target.writestr(info.filename, change(data) if info.filename == member else data)
    return out.getvalue()


def test_workbook_whose_sheet_breaks_while_its_rows_are_read_is_unreadable():
    """Read-only openpyxl parses a sheet only as its rows are read: a cut sheet fails there, not on opening."""
    damaged = _replace_member(GOOD_WORKBOOK, "xl/worksheets/sheet1.xml", lambda xml: xml[: len(xml) // 2])
    parsed = parse_source(SourceFile("anything.xlsx", damaged))
    assert [f.rule for f in parsed.findings] == ["unreadable-file"]
    assert parsed.tables == []


@FUZZ
@given(data=st.data())
def test_damaged_workbook_is_a_finding_never_an_exception(data):
    how = data.draw(st.sampled_from(["flip", "truncate", "sheet-xml"]), label="damage")
    if how == "flip":
        damaged = bytearray(GOOD_WORKBOOK)
        for at in data.draw(st.lists(st.integers(0, len(damaged) - 1), min_size=1, max_size=8), label="bytes"):
            damaged[at] ^= data.draw(st.integers(1, 255))
        damaged = bytes(damaged)
    elif how == "truncate":
        damaged = GOOD_WORKBOOK[: data.draw(st.integers(0, len(GOOD_WORKBOOK) - 1), label="length")]
    else:
        cut = data.draw(st.integers(0, 4000), label="cut")
        junk = data.draw(st.binary(max_size=20), label="junk")
        damaged = _replace_member(GOOD_WORKBOOK, "xl/worksheets/sheet1.xml", lambda xml: xml[:cut] + junk + xml[cut + len(junk):])
    parsed = parse_source(SourceFile("anything.xlsx", damaged))
    assert_report(parsed)
    assert parsed.tables or parsed.findings
    if any(f.rule == "unreadable-file" for f in parsed.findings):
        assert parsed.tables == [], "an unreadable workbook gives no records at all"


def test_zip_bomb_is_refused_without_expanding_it():
    """300 MB of zeros compresses to about 1.4 MB: far more than a workbook of that size holds."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            chunk = b"\0" * (4 << 20)
            for _ in range(75):
                member.write(chunk)
    parsed = parse_source(SourceFile("anything.xlsx", out.getvalue()))
    assert [f.rule for f in parsed.findings] == ["unreadable-file"]
    assert "expands to" in parsed.findings[0].message
    assert parsed.tables == []


def test_workbook_over_the_configured_expansion_limit_is_refused(monkeypatch):
    monkeypatch.setattr(sources, "MAX_XLSX_UNCOMPRESSED", 4096)
    parsed = parse_source(SourceFile("anything.xlsx", GOOD_WORKBOOK))
    assert [f.rule for f in parsed.findings] == ["unreadable-file"]
    assert parsed.tables == []


def _claim_size(archive: bytes, member: str, claimed: int) -> bytes:
    """The zip with `member`'s uncompressed size rewritten to `claimed`, in its local and central headers."""
    data = bytearray(archive)
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        info = z.getinfo(member)
        start = z.start_dir
    struct.pack_into("<I", data, info.header_offset + 22, claimed)
    at = start
    while data[at:at + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, at + 28)
        if data[at + 46:at + 46 + name_len].decode() == member:
            struct.pack_into("<I", data, at + 24, claimed)
        at += 46 + name_len + extra_len + comment_len
    return bytes(data)


@pytest.mark.parametrize("claimed", [1, 100, 10_000])
def test_zip_that_lies_about_its_sizes_is_unreadable(claimed):
    """A bomb can claim small members; reading stops at the claimed size and the CRC check refuses the rest."""
    big = [client_row(i, family="x" * 90) for i in range(1, 400)]
    lying = _claim_size(workbook_bytes(big), "xl/worksheets/sheet1.xml", claimed)
    parsed = parse_source(SourceFile("anything.xlsx", lying))
    assert_report(parsed)
    assert [f.rule for f in parsed.findings] == ["unreadable-file"]
    assert parsed.tables == []


# --- 5. JSON: deep, huge, and the wrong shape ------------------------------------------------------


def nested(depth: int, kind: str):
    value: object = "x"
    for _ in range(depth):
        value = [value] if kind == "list" else {"clients": value}
    return value


@pytest.mark.parametrize("depth", [9, 1000, 10_000, 200_000])
@pytest.mark.parametrize("kind", ["list", "object"])
def test_deeply_nested_json_is_bad_json_not_a_recursion_error(depth, kind):
    text = ("[" * depth + "1" + "]" * depth) if kind == "list" else ('{"clients":' * depth + "1" + "}" * depth)
    parsed = parse_source(SourceFile("x.json", text.encode()))
    assert [f.rule for f in parsed.findings] == ["bad-json"]
    if depth <= 10_000:
        body = nested(depth, kind)
        parsed = parse_records_json("request.json", {"clients": body} if kind == "list" else body)
        assert [f.rule for f in parsed.findings] == ["bad-json"]
        assert parsed.tables == []


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "=cmd|' /C calc'!A0", "-5", "1" * 200]),
)


def json_containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)


json_values = st.recursive(json_scalars, json_containers, max_leaves=20)
record_keys = st.sampled_from(["clients", "Clients", "client", "engagements", "attendance", "outcomes", "nope", "a/b/clients", "x" * 300, ""])
field_names = st.one_of(st.sampled_from(CLIENT_HEADER + ["action", "y" * 300, "\x00", "\ud800", ""]), st.text(max_size=10))
json_records = st.one_of(
    st.dictionaries(field_names, json_values, max_size=6),
    st.fixed_dictionaries({name: st.sampled_from(value) for name, value in zip(CLIENT_HEADER, zip(*(client_row(i) for i in range(3))))}),
    json_values,
)
json_bodies = st.one_of(json_values, st.dictionaries(record_keys, st.one_of(st.lists(json_records, max_size=5), json_values), max_size=4))


@FUZZ
@given(body=json_bodies)
def test_json_of_any_shape_is_a_report(body):
    parsed = parse_records_json("request.json", body)
    assert_report(parsed)
    if not isinstance(body, dict):
        assert [f.rule for f in parsed.findings] == ["bad-json"]
    # The same body as a file.
    parsed = parse_source(SourceFile("x.json", json.dumps(body).encode()))
    assert_report(parsed)


@pytest.mark.parametrize("value", ["C\x001", "\ud800", "ok\udbff"])
def test_json_text_a_database_cannot_hold_is_bad_json(value):
    """NUL characters and unpaired surrogates are not text: refused as JSON, never passed on."""
    body = {"clients": [dict(zip(CLIENT_HEADER, client_row(1, family=value)))]}
    parsed = parse_records_json("request.json", body)
    assert "bad-json" in {f.rule for f in parsed.findings}
    assert all(value not in t.frame["family_name"].to_list() for t in parsed.tables)
    parsed = parse_source(SourceFile("x.json", json.dumps(body).encode()))
    assert "bad-json" in {f.rule for f in parsed.findings}


def test_huge_json_arrays_are_read_or_reported():
    good = dict(zip(CLIENT_HEADER, client_row(1)))
    parsed = parse_records_json("request.json", {"clients": [dict(good, client_ref=f"C-{i}") for i in range(20_000)]})
    assert parsed.findings == [] and only_table(parsed).height == 20_000
    parsed = parse_records_json("request.json", {"clients": list(range(20_000))})
    assert {f.rule for f in parsed.findings} == {"bad-json", "missing-column"}
    assert len([f for f in parsed.findings if f.rule == "bad-json"]) == 20_000


@FUZZ
@given(n=st.integers(1, 6), data=st.data())
def test_a_bad_item_in_one_record_list_rejects_only_that_item(n, data):
    """Item positions repeat across the lists of one JSON body: a finding names its list (sheet)."""
    bad = data.draw(st.sets(st.integers(0, n - 1), min_size=1), label="bad engagements")
    clients = [dict(zip(CLIENT_HEADER, client_row(i))) for i in range(n)]
    engagements = [dict(zip(ENGAGEMENT_HEADER, engagement_row(i))) for i in range(n)]
    for k in bad:
        engagements[k]["end_reason"] = {"nested": "object"}
    parsed = parse_records_json("request.json", {"clients": clients, "engagements": engagements})
    assert {(f.sheet, f.row) for f in parsed.findings} == {("engagements", k + 1) for k in bad}
    tables = parsed.tables
    result = validate(tables, STORED, today=TODAY, prior=prior_frame([parsed]))
    assert result.accepted["client"].height == n
    assert result.rejected["client"].height == 0
    assert sorted(result.rejected["engagement"][ROW].to_list()) == sorted(k + 1 for k in bad)


@FUZZ
@given(n=st.integers(1, 5), data=st.data())
def test_two_lists_of_one_record_type_keep_their_own_rows(n, data):
    """{"clients": [...], "client": [...]} (or a workbook's clients and client sheets): item k of one list is not item k of the other."""
    bad = data.draw(st.sets(st.integers(0, n - 1), min_size=1), label="bad clients")
    first = [dict(zip(CLIENT_HEADER, client_row(i, gender="zz" if i in bad else "2"))) for i in range(n)]
    second = [dict(zip(CLIENT_HEADER, client_row(100 + i))) for i in range(n)]
    parsed = parse_records_json("request.json", {"clients": first, "client": second})
    result = validate(parsed.tables, STORED, today=TODAY, prior=prior_frame([parsed]))
    assert sorted(result.rejected["client"]["client_ref"].to_list()) == sorted(f"C-{i}" for i in bad)
    assert result.accepted["client"].height == 2 * n - len(bad)


# --- 6. End to end on both backends --------------------------------------------------------------


@pytest.fixture
def seeded(engine):
    with transaction(engine) as session:
        seed_service_lines(session)
    return engine


def new_provider(engine) -> tuple[str, int]:
    code = f"P{uuid.uuid4().hex[:10]}"
    with transaction(engine) as session:
        provider = Provider(code=code, name="Fuzz Trust", region_code="01")
        session.add(provider)
        session.flush()
        return code, provider.id


def stored_records(engine, provider_id: int) -> int:
    with transaction(engine) as session:
        return sum(session.scalar(select(func.count()).select_from(m).where(m.provider_id == provider_id)) for m in RECORD_MODELS.values())


def dump(engine, provider_id: int) -> dict[str, list[tuple]]:
    """Every row the provider has in the record, identity and history tables."""
    tables = [*RECORD_MODELS.values(), *IDENTITY_MODELS.values(), RecordHistory]
    with transaction(engine) as session:
        out = {}
        for model in tables:
            table = model.__table__
            keys = [c for c in table.primary_key.columns]
            out[table.name] = [tuple(r) for r in session.execute(select(table).where(table.c.provider_id == provider_id).order_by(*keys))]
        return out


def submission_rows(engine, submission_id: str) -> dict[str, int]:
    with transaction(engine) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model).where(model.submission_id == submission_id))
            for model in (QuarantinedRow, SubmissionFinding, SubmissionFile)
        }


@st.composite
def broken_files(draw) -> list[SourceFile]:
    """One to four files of a submission: good ones, and good ones broken in the ways providers break them."""
    n = draw(st.integers(0, 6), label="clients")
    clients = [client_row(i) for i in range(n)]
    engagements = [engagement_row(i) for i in range(draw(st.integers(0, n), label="engagements"))]
    for rows, header in ((clients, CLIENT_HEADER), (engagements, ENGAGEMENT_HEADER)):
        for row in rows:  # a few bad cells
            if draw(st.integers(0, 4)) == 0:
                row[draw(st.integers(0, len(header) - 1))] = draw(st.sampled_from(["", "zz", "31/02/2017", "x" * 150, "=1+1", "-5", "ā"]))
    kinds = draw(st.lists(st.sampled_from([
        "clients", "engagements", "cp1252", "ragged", "huge", "nul", "empty", "header-only", "garbage", "not-a-zip",
        "workbook", "json", "json-odd", "long-name", "unknown-name",
    ]), min_size=1, max_size=4, unique=True))
    files = []
    for kind in kinds:
        if kind == "clients":
            files.append(SourceFile("clients.csv", csv_text(CLIENT_HEADER, clients, draw(st.sampled_from(["\n", "\r\n"]))).encode()))
        elif kind == "engagements":
            files.append(SourceFile("engagements.csv", csv_text(ENGAGEMENT_HEADER, engagements).encode()))
        elif kind == "cp1252":
            files.append(SourceFile("dependants.csv", "dependant_ref,client_ref,family_name,given_names,date_of_birth,relationship\n"
                                    "D-1,C-0,Pōkai,Tama,2016-11-02,child\nD-2,C-1,Smith,Āni,2016-11-02,child\n".encode("cp1252", errors="replace")))
        elif kind == "ragged":
            files.append(SourceFile("engagements.csv", csv_text(ENGAGEMENT_HEADER, [r + (["x"] if i % 2 else []) for i, r in enumerate(engagements)]).encode()))
        elif kind == "huge":
            files.append(SourceFile("clients.csv", csv_text(CLIENT_HEADER, [client_row(900, family="h" * 100_000), *clients]).encode()))
        elif kind == "nul":
            files.append(SourceFile("clients.csv", csv_text(CLIENT_HEADER, clients).encode() + b"\x00"))
        elif kind == "empty":
            files.append(SourceFile("clients.csv", b""))
        elif kind == "header-only":
            files.append(SourceFile("clients.csv", (",".join(CLIENT_HEADER) + "\r\n").encode()))
        elif kind == "garbage":
            files.append(SourceFile("clients.csv", draw(st.binary(max_size=300))))
        elif kind == "not-a-zip":
            files.append(SourceFile("anything.xlsx", b"PK\x03\x04" + draw(st.binary(max_size=100))))
        elif kind == "workbook":
            files.append(SourceFile("anything.xlsx", workbook_bytes(clients)))
        elif kind == "json":
            body = {"clients": [dict(zip(CLIENT_HEADER, r)) for r in clients], "engagements": [dict(zip(ENGAGEMENT_HEADER, r)) for r in engagements]}
            files.append(SourceFile("batch.json", json.dumps(body).encode()))
        elif kind == "json-odd":
            files.append(SourceFile("odd.json", json.dumps(draw(json_bodies)).encode()))
        elif kind == "long-name":
            files.append(SourceFile("z" * 240 + ".csv", csv_text(CLIENT_HEADER, clients).encode()))
        else:
            files.append(SourceFile("notes.csv", b"a,b\n1,2\n"))
    # One file per name: the findings of two files with the same name could not be told apart.
    unique = {f.name: f for f in files}
    return list(unique.values())


@DB
@given(files=broken_files(), mode=st.sampled_from(MODES))
def test_broken_submission_gives_a_receipt_that_matches_the_store(seeded, files, mode):
    engine = seeded
    code, provider_id = new_provider(engine)
    receipt = submit(engine, provider=code, files=files, submitter="t", channel="test", mode=mode)
    assert isinstance(receipt, Receipt)
    assert all(f["rule"] in RULES and f["message"] and f["fix"] for f in receipt.findings)
    counts = receipt.counts
    assert counts["changed"] == counts["unchanged"] == 0  # a provider of its own: nothing was stored before
    assert stored_records(engine, provider_id) == counts["new"]
    rows = submission_rows(engine, receipt.submission_id)
    assert rows["submission_finding"] == len(receipt.findings)
    assert rows["submission_file"] == len(files)
    with transaction(engine) as session:
        assert session.get(Submission, receipt.submission_id).status == receipt.status
    if receipt.status in ("accepted", "partial"):
        assert rows["quarantined_row"] == counts["rejected"]
        # Every rejected row is explained by an error on its row.
        with transaction(engine) as session:
            quarantined = session.execute(select(QuarantinedRow.file, QuarantinedRow.sheet, QuarantinedRow.row)
                                          .where(QuarantinedRow.submission_id == receipt.submission_id)).all()
        explained = {(f["file"], f["sheet"], f["row"]) for f in receipt.findings if f["severity"] == "error"}
        assert set(quarantined) <= explained
    else:
        assert counts["new"] == 0 and rows["quarantined_row"] == 0
    if mode == "all-or-nothing" and receipt.has_errors:
        assert receipt.status in ("refused", "unreadable")
        assert stored_records(engine, provider_id) == 0
    if receipt.status == "accepted":
        assert not receipt.has_errors

    # The same submission again changes nothing.
    before = dump(engine, provider_id)
    again = submit(engine, provider=code, files=files, submitter="t", channel="test", mode=mode)
    assert again.status == receipt.status
    assert (again.counts["new"], again.counts["changed"], again.counts["unchanged"]) == (0, 0, counts["new"])
    assert dump(engine, provider_id) == before


scores = st.decimals(min_value=1, max_value=10, places=3).map(str)
amounts = st.one_of(st.just(""), st.decimals(min_value=-1000, max_value=1000, places=3).map(str))


@st.composite
def valid_files(draw) -> list[SourceFile]:
    n = draw(st.integers(1, 5))
    names = draw(st.lists(st.tuples(name_text, name_text), min_size=n, max_size=n))
    clients = [client_row(i, family[:100], given[:100]) for i, (family, given) in enumerate(names)]
    engagements = [engagement_row(i) for i in range(n)]
    attendance = [[f"E-{i}", f"2017-02-0{d}", draw(st.sampled_from("yn")), str(draw(st.integers(0, 600)))] for i in range(n) for d in range(1, 3)]
    assessments = [[f"E-{i}", "pre", "FSTAR", "wellbeing", draw(scores), "2017-02-01"] for i in range(n)]
    outcomes = [[f"E-{i}", "attitude", "attitude_to_school", draw(amounts), draw(amounts), "y", "2017-03-01"] for i in range(n)]
    as_json = draw(st.booleans())
    parts = [("clients", CLIENT_HEADER, clients), ("engagements", ENGAGEMENT_HEADER, engagements), ("attendance", ATTENDANCE_HEADER, attendance),
             ("assessments", ASSESSMENT_HEADER, assessments), ("outcomes", OUTCOME_HEADER, outcomes)]
    if as_json:
        return [SourceFile("batch.json", json.dumps({name: [dict(zip(header, r)) for r in rows] for name, header, rows in parts}).encode())]
    return [SourceFile(f"{name}.csv", csv_text(header, rows).encode()) for name, header, rows in parts]


# Decimals finer than the store keeps (NUMERIC(8, 2) and (12, 2)): sent again, they are unchanged.
FINE_DECIMALS = [SourceFile("batch.json", json.dumps({
    "clients": [dict(zip(CLIENT_HEADER, client_row(1)))],
    "engagements": [dict(zip(ENGAGEMENT_HEADER, engagement_row(1)))],
    "assessments": [dict(zip(ASSESSMENT_HEADER, ["E-1", "pre", "FSTAR", "wellbeing", "5.125", "2017-02-01"]))],
    "outcomes": [dict(zip(OUTCOME_HEADER, ["E-1", "attitude", "attitude_to_school", "62.555", "-0.005", "y", "2017-03-01"]))],
}).encode())]


@settings(DB, max_examples=15)
@given(files=valid_files())
@example(files=FINE_DECIMALS)
def test_same_valid_submission_twice_changes_nothing(seeded, files):
    engine = seeded
    code, provider_id = new_provider(engine)
    first = submit(engine, provider=code, files=files, submitter="t", channel="test")
    assert first.status == "accepted", first.findings
    assert first.counts["new"] == stored_records(engine, provider_id) > 0
    before = dump(engine, provider_id)
    second = submit(engine, provider=code, files=files, submitter="t", channel="test")
    assert second.status == "accepted"
    assert second.counts == {"new": 0, "changed": 0, "unchanged": first.counts["new"], "warned": first.counts["warned"], "rejected": 0}
    assert dump(engine, provider_id) == before


def test_strict_mode_with_one_error_stores_nothing(seeded):
    code, provider_id = new_provider(seeded)
    rows = [client_row(i) for i in range(5)]
    rows[3][CLIENT_HEADER.index("gender")] = "zz"
    files = [SourceFile("clients.csv", csv_text(CLIENT_HEADER, rows).encode()),
             SourceFile("engagements.csv", csv_text(ENGAGEMENT_HEADER, [engagement_row(i) for i in range(3)]).encode())]
    receipt = submit(seeded, provider=code, files=files, submitter="t", channel="test", mode="all-or-nothing")
    assert receipt.status == "refused"
    assert [(f["row"], f["rule"]) for f in receipt.findings if f["severity"] == "error"] == [(5, "unknown-code")]
    assert stored_records(seeded, provider_id) == 0
    assert submission_rows(seeded, receipt.submission_id)["quarantined_row"] == 0


def test_unknown_provider_raises_before_anything_is_stored(seeded):
    with pytest.raises(UnknownProvider):
        submit(seeded, provider="NOPE", files=[SourceFile("clients.csv", clients_csv(2))], submitter="t", channel="test")
    with transaction(seeded) as session:
        assert session.scalar(select(func.count()).select_from(Submission)) == 0


class SimulatedCrash(RuntimeError):
    pass


def table_counts(engine) -> dict[str, int]:
    with transaction(engine) as session:
        models = (Submission, SubmissionFile, SubmissionFinding, QuarantinedRow, RecordHistory, *RECORD_MODELS.values(), *IDENTITY_MODELS.values())
        return {m.__tablename__: session.scalar(select(func.count()).select_from(m)) for m in models}


def test_crash_while_storing_leaves_nothing(seeded, monkeypatch):
    """The store fails on the n-th record type: no receipt, record, finding, file or quarantined row remains."""
    files = [
        SourceFile("clients.csv", csv_text(CLIENT_HEADER, [client_row(i) for i in range(4)] + [client_row(9, gender="zz")]).encode()),
        SourceFile("engagements.csv", csv_text(ENGAGEMENT_HEADER, [engagement_row(i) for i in range(4)]).encode()),
        SourceFile("attendance.csv", csv_text(ATTENDANCE_HEADER, [[f"E-{i}", "2017-02-01", "y", "60"] for i in range(4)]).encode()),
        SourceFile("assessments.csv", csv_text(ASSESSMENT_HEADER, [[f"E-{i}", "pre", "FSTAR", "wellbeing", "5", "2017-02-01"] for i in range(4)]).encode()),
        SourceFile("outcomes.csv", csv_text(OUTCOME_HEADER, [[f"E-{i}", "attitude", "attitude_to_school", "1", "2", "y", "2017-03-01"] for i in range(4)]).encode()),
    ]
    real = submit_module.upsert_records
    for crash_at in (3, 1, 5):  # the third record type (client and engagement written, attendance fails), the first, the last
        code, provider_id = new_provider(seeded)
        calls: list[str] = []

        def crashing(connection, **kwargs):
            calls.append(kwargs["record_type"])
            if len(calls) == crash_at:
                raise SimulatedCrash(f"disk full while storing {kwargs['record_type']}")
            return real(connection, **kwargs)

        before = table_counts(seeded)
        monkeypatch.setattr(submit_module, "upsert_records", crashing)
        with pytest.raises(SimulatedCrash):
            submit(seeded, provider=code, files=files, submitter="t", channel="test")
        assert len(calls) == crash_at
        assert table_counts(seeded) == before
        assert all(rows == [] for rows in dump(seeded, provider_id).values())

        monkeypatch.setattr(submit_module, "upsert_records", real)
        receipt = submit(seeded, provider=code, files=files, submitter="t", channel="test")
        assert receipt.status == "partial" and receipt.counts["new"] == stored_records(seeded, provider_id) == 20
