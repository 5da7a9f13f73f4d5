"""Reading what providers send: CSV (any of the encodings Excel writes), the Excel workbook, JSON.

Every source becomes one or more `RawTable`s: all values as text (stripped; blank is ""),
headers matched to the standard's columns, and a `__row` column holding the row number the
provider sees (the spreadsheet row, header = 1; for JSON the item's position). Problems with
a whole file (encoding, headers, an xlsx that is not a zip) become findings here; nothing raises.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import chain, repeat
from typing import Any

import polars as pl

from cldx.standard import RECORD_TYPES, STANDARD_VERSION, FieldType, RecordType, record_type_for_file

from .findings import Finding
from .rows import normalise_header

ROW = "__row"
# Text no file name or database value may hold: control characters, and unpaired surrogates
# (JSON can spell them, "\ud800", but they are not text and cannot be encoded).
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")
# Excel's day zero for serial dates (1900 date system, with Lotus's leap-year bug folded in).
EXCEL_EPOCH = date(1899, 12, 30)
MAX_XLSX_UNCOMPRESSED = 512 * 1024 * 1024
MAX_XLSX_RATIO = 200  # a real workbook compresses 5-20x; a zip bomb far more


@dataclass
class SourceFile:
    """A file as received: its name and bytes.

    Names come from uploads, so they are made storable here, for every channel: control
    characters (NUL included) are dropped and a name longer than 255 characters keeps its end.
    """

    name: str
    data: bytes

    def __post_init__(self) -> None:
        self.name = _CONTROL.sub("", self.name)[-255:]


@dataclass
class RawTable:
    """One record type's rows from one file or sheet, as text."""

    file: str
    sheet: str | None
    record_type: RecordType
    frame: pl.DataFrame  # standard columns present in the file + ROW, all String


@dataclass
class ParsedSource:
    tables: list[RawTable] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _finding(file: str, rule: str, message: str, fix: str, *, row: int | None = None, field_name: str | None = None,
             value: str | None = None, sheet: str | None = None) -> Finding:
    return Finding(file, row, field_name, value, rule, message, fix, sheet)


def parse_source(source: SourceFile, record_type: RecordType | None = None) -> ParsedSource:
    """Read one file; `record_type` overrides detection from the name or headers."""
    name = source.name
    lower = name.lower()
    if lower.endswith((".xlsx", ".xlsm")):
        return _parse_workbook(source)
    if lower.endswith(".json"):
        return _parse_json(source)
    return _parse_csv(source, record_type)


# --- CSV ------------------------------------------------------------------------------------


def decode_text(source: SourceFile) -> tuple[bytes | None, list[Finding]]:
    """The file as UTF-8 bytes (no BOM), or None with the reason it cannot be read.

    UTF-8 is tried first and strictly, so a UTF-8 file is never misread; a file that is not
    UTF-8 but is valid Windows-1252 (Excel's plain "CSV" on Windows) is transcoded with a
    warning. Nothing is ever decoded into mojibake.
    """
    data = source.data
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, [_finding(source.name, "unreadable-file", f"{source.name} is UTF-16 text (Excel's \"Unicode Text\"), not CSV.",
                               'In Excel choose File > Save As > "CSV UTF-8 (Comma delimited)".')]
    if b"\x00" in data:
        return None, [_finding(source.name, "unreadable-file", f"{source.name} contains NUL bytes; it is not a text file.",
                               'Send the CSV file itself, saved as "CSV UTF-8 (Comma delimited)".')]
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")
        return data, []
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError as exc:
        return None, [_finding(source.name, "unreadable-file", f"{source.name} is neither UTF-8 nor Windows-1252 text (byte {exc.start}).",
                               'Save the file as "CSV UTF-8 (Comma delimited)".')]
    return text.encode("utf-8"), [
        _finding(source.name, "windows-1252", f"{source.name} was saved as Windows-1252, not UTF-8; macrons (ā, ē, ī, ō, ū) may have been lost.",
                 'Next time save as "CSV UTF-8 (Comma delimited)" in Excel so macrons survive; check names with macrons.')
    ]


def _read_csv_frame(data: bytes) -> tuple[list[str], pl.DataFrame] | None:
    """Fast path with Polars: (header, body); None when the file needs the careful path.

    The header is read as a data row so duplicate and blank headers come back exactly as
    written; a row with more values than the header makes Polars refuse, which sends the file
    to the careful reader that reports the row.
    """
    try:
        frame = pl.read_csv(io.BytesIO(data), infer_schema=False, has_header=False, raise_if_empty=False)
    except Exception:  # noqa: BLE001 - any parse trouble sends the file to the careful reader
        return None
    if frame.height == 0:
        return [], frame
    header = ["" if v is None else v for v in frame.row(0)]
    body = frame.slice(1).rename({c: f"{i}:{h}" for i, (c, h) in enumerate(zip(frame.columns, header))})
    return header, body


def _careful_rows(data: bytes) -> tuple[list[str], list[list[str]]]:
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    header = next(reader, [])
    return header, list(reader)


def _parse_csv(source: SourceFile, forced: RecordType | None) -> ParsedSource:
    result = ParsedSource()
    data, problems = decode_text(source)
    result.findings += problems
    if data is None:
        return result
    if not data.strip():
        result.findings.append(_finding(source.name, "empty-file", f"{source.name} is empty.", "Send the file with its header row and records."))
        return result
    fast = _read_csv_frame(data)
    if fast is not None:
        header, frame = fast
        frame = frame.with_row_index(ROW, offset=2)
    else:
        try:
            header, rows = _careful_rows(data)
        except csv.Error as exc:
            result.findings.append(_finding(source.name, "unreadable-file", f"{source.name} is not valid CSV: {exc}.",
                                            "Open the file in Excel and save it again as CSV UTF-8."))
            return result
        width = len(header)
        for number, cells in enumerate(rows, start=2):
            if len(cells) > width and any(c.strip() for c in cells[width:]):
                result.findings.append(_finding(source.name, "ragged-row", f"Row {number} has {len(cells)} values but the header has {width} columns.",
                                                "Check for a stray comma or an unquoted value containing a comma, and fix the row.", row=number))
        frame = _text_frame(header, [(cells + [""] * width)[:width] for cells in rows], offset=2)
    record_type = forced or record_type_for_file(source.name) or _record_type_from_header(header)
    if record_type is None:
        result.findings.append(_finding(source.name, "unknown-file", f"Cannot tell which records {source.name} holds from its name or headers.",
                                        f"Name the file after its records: {', '.join(rt.file_name for rt in RECORD_TYPES.values())}."))
        return result
    table = _match_columns(source.name, None, record_type, frame, result.findings)
    if table is not None:
        result.tables.append(table)
    return result


def _text_frame(header: list[str], rows: list[list[str]], offset: int) -> pl.DataFrame:
    """Rows of text under a header, as a frame with the row number each row has for the provider."""
    names = [f"{i}:{h}" for i, h in enumerate(header)]
    return pl.DataFrame({n: [r[i] for r in rows] for i, n in enumerate(names)}, schema={n: pl.String for n in names}).with_row_index(ROW, offset=offset)


def _record_type_from_header(header: list[str]) -> RecordType | None:
    names = {normalise_header(h) for h in header}
    best = max(RECORD_TYPES.values(), key=lambda rt: len(names & set(rt.columns)) - len(set(rt.key) - names) * 10)
    return best if set(best.key) <= names else None


def _match_columns(file: str, sheet: str | None, record_type: RecordType, frame: pl.DataFrame, findings: list[Finding]) -> RawTable | None:
    """Map the file's headers onto the standard's columns; report unknown, duplicate and missing ones."""
    known = set(record_type.columns)
    chosen: dict[str, str] = {}
    for column in frame.columns:
        if column == ROW:
            continue
        header = column.split(":", 1)[1]
        name = normalise_header(header)
        if not name:
            if frame[column].fill_null("").str.strip_chars().str.len_bytes().sum() > 0:
                findings.append(_finding(file, "unknown-column", "A column without a header holds values; they are ignored.",
                                         "Give the column its header, or delete it.", row=1, sheet=sheet))
            continue
        if name in chosen:
            findings.append(_finding(file, "duplicate-column", f"Column {header!r} appears more than once; only the first is read.",
                                     "Delete the extra column.", row=1, field_name=name, value=header, sheet=sheet))
        elif name in known:
            chosen[name] = column
        else:
            findings.append(_finding(file, "unknown-column", f"Column {header!r} is not part of the {record_type.title.lower()} file; it is ignored.",
                                     f"Remove it, or rename it to one of: {', '.join(record_type.columns)}.", row=1, value=header, sheet=sheet))
    missing = [f.name for f in record_type.fields if f.required and f.name not in chosen]
    for name in missing:
        findings.append(_finding(file, "missing-column", f"Required column {name!r} is missing, so no {record_type.title.lower()} records in this file were read.",
                                 f"Add a {name} column to the header row.", row=1, field_name=name, sheet=sheet))
    if missing:
        return None
    # Text stripped, blanks as "", rows that are entirely blank dropped (Excel leaves them).
    columns = [pl.col(src).cast(pl.String).fill_null("").str.strip_chars().alias(name) for name, src in chosen.items()]
    columns += [pl.lit("").alias(name) for name in record_type.columns if name not in chosen]
    frame = (
        frame.lazy()
        .select(pl.col(ROW).cast(pl.Int64), *columns).select(ROW, *record_type.columns)
        .filter(pl.any_horizontal([pl.col(c) != "" for c in record_type.columns]))
        # In-memory: a month's file is small, and the streaming engine's start-up would outweigh it.
        .collect(engine="in-memory")
    )
    return RawTable(file, sheet, record_type, frame)


# --- Excel ----------------------------------------------------------------------------------


def _zip_problem(source: SourceFile) -> str | None:
    """Why an .xlsx cannot be opened safely, or None: it must be a zip, and not a zip bomb."""
    try:
        with zipfile.ZipFile(io.BytesIO(source.data)) as archive:
            total = sum(i.file_size for i in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return "is not an Excel workbook (it is not a valid .xlsx zip file)"
    if total > MAX_XLSX_UNCOMPRESSED or total > MAX_XLSX_RATIO * max(len(source.data), 1):
        return f"expands to {total:,} bytes, far more than a workbook of its size should"
    return None


def excel_cell_text(value: Any, spec_type: FieldType | None) -> str:
    """An Excel cell as the text a provider meant: serial dates become dates, 1.0 becomes 1."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, bool):
        return "y" if value else "n"
    if isinstance(value, (int, float)):
        if spec_type is FieldType.DATE and 1 <= value < 2958466:
            return (EXCEL_EPOCH + timedelta(days=int(value))).isoformat()
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return repr(value) if isinstance(value, float) else str(value)
    return str(value)


def _parse_workbook(source: SourceFile) -> ParsedSource:
    from openpyxl import load_workbook

    result = ParsedSource()
    if (problem := _zip_problem(source)) is not None:
        result.findings.append(_finding(source.name, "unreadable-file", f"{source.name} {problem}.",
                                        "Send the workbook saved from Excel as .xlsx, or the CSV files."))
        return result
    try:
        workbook = load_workbook(io.BytesIO(source.data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for broken files
        result.findings.append(_finding(source.name, "unreadable-file", f"{source.name} cannot be opened as a workbook ({type(exc).__name__}).",
                                        "Open it in Excel, save it as .xlsx, and send it again."))
        return result
    try:
        for sheet in workbook.worksheets:
            title = sheet.title
            if title.strip().lower() == "readme":
                _check_version(source.name, sheet, result)
                continue
            record_type = record_type_for_file(title)
            if record_type is None:
                continue  # the codes and lists sheets, or the provider's own notes
            rows = sheet.iter_rows(values_only=True)
            header_cells = next(rows, None)
            if header_cells is None:
                continue
            header = [excel_cell_text(h, None) for h in header_cells]
            types = [record_type.field(normalise_header(h)).type if normalise_header(h) in record_type.columns else None for h in header]
            body = [[excel_cell_text(v, types[i] if i < len(types) else None) for i, v in enumerate(r[: len(header)])] for r in rows]
            if not body:
                continue
            width = len(header)
            body = [(r + [""] * width)[:width] for r in body]
            frame = _text_frame(header, body, offset=2)
            table = _match_columns(source.name, title, record_type, frame, result.findings)
            if table is not None and table.frame.height:
                result.tables.append(table)
    except Exception as exc:  # noqa: BLE001 - read-only openpyxl parses each sheet as its rows are read
        result.tables.clear()  # a workbook is read whole or not at all
        result.findings.append(_finding(source.name, "unreadable-file", f"{source.name} cannot be read as a workbook ({type(exc).__name__}).",
                                        "Open it in Excel, save it as .xlsx, and send it again."))
    finally:
        workbook.close()
    if not result.tables and not any(f.is_error for f in result.findings):
        result.findings.append(_finding(source.name, "empty-file", f"{source.name} has no records on any record sheet.",
                                        "Fill in the sheets (clients, engagements, ...) below their header rows."))
    return result


def _check_version(file: str, sheet, result: ParsedSource) -> None:
    for row in sheet.iter_rows(min_row=1, max_row=40, max_col=4, values_only=True):
        if row and isinstance(row[0], str) and row[0].strip().lower() == "standard version":
            sent = excel_cell_text(row[1] if len(row) > 1 else None, None)
            if sent != STANDARD_VERSION:
                result.findings.append(_finding(file, "standard-version", f"The workbook is for data standard {sent or '(unknown)'}; cldx reads version {STANDARD_VERSION}.",
                                                "Download the current template and copy your rows into it.", sheet=sheet.title, value=sent))
            return


# --- JSON -----------------------------------------------------------------------------------

MAX_JSON_DEPTH = 8


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, stopping early: a deeply nested body is refused, never recursed into blindly."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, depth + 1) for v in item]
    return deepest


def _holds_non_text(value: Any) -> bool:
    """True when a string or key anywhere in the (depth-checked) body holds NUL or a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _NOT_TEXT.search(item):
                return True
        elif isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item
    return False


def json_value_text(value: Any) -> str | None:
    """A JSON value as the text a CSV cell would hold; None for values no field can hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "y" if value else "n"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return None


def parse_records_json(file: str, body: Any) -> ParsedSource:
    """A JSON batch: {"clients": [{...}, ...], "engagements": [...]} (record type or file stem as keys)."""
    # The usual body (lists of flat records) is read column by column; anything else, and every
    # body with a problem to report, goes the value-by-value way, which gives the same result.
    parsed = _parse_flat_records_json(file, body)
    return parsed if parsed is not None else _parse_records_json_slow(file, body)


def _parse_flat_records_json(file: str, body: Any) -> ParsedSource | None:
    """`parse_records_json` for a body that is an object of lists of flat records; None for any other body.

    Such a body is two levels of containers deep (well within MAX_JSON_DEPTH), so only its text
    needs checking. Every frame is built before the first finding is made, so that a body turned
    down half-way has no partial result: the slow path then reads it from the start.
    """
    if type(body) is not dict:
        return None
    frames: list[tuple[str, pl.DataFrame]] = []
    for key, items in body.items():
        if type(key) is not str or _NOT_TEXT.search(key) or type(items) is not list:
            return None
        frame = _flat_records_frame(items)
        if frame is None:
            return None
        frames.append((key, frame))
    result = ParsedSource()
    for key, frame in frames:
        record_type = record_type_for_file(key)
        if record_type is None:
            result.findings.append(_finding(file, "unknown-file", f"{key!r} is not a record type.",
                                            f"Use one of: {', '.join(rt.sheet_name for rt in RECORD_TYPES.values())}.", sheet=key))
            continue
        table = _match_columns(file, key, record_type, frame, result.findings)
        if table is not None:
            result.tables.append(table)
    return result


def _flat_records_frame(items: list) -> pl.DataFrame | None:
    """The frame `_parse_records_json_slow` hands to `_match_columns` for these items, or None when they are not all flat records.

    A flat record is a dict with str keys whose values are text, numbers, true/false or null,
    and no key or text holds NUL or a lone surrogate. One difference: a missing value or null is
    null here where the slow path has "", which `_match_columns` reads the same way (as blank).
    """
    try:
        if not set(map(type, items)) <= {dict}:
            return None
        # Headers in order of first appearance across the items, as the slow path collects them.
        names = list(dict.fromkeys(chain.from_iterable(items)))
        if not names:
            return _text_frame([], [[] for _ in items], offset=1)
        if not set(map(type, names)) <= {str} or _NOT_TEXT.search("".join(names)):
            return None
        columns = []
        for position, name in enumerate(names):
            cells = list(map(dict.get, items, repeat(name)))
            try:
                # Strict: raises on anything but str and None, and on a lone surrogate.
                column = pl.Series(f"{position}:{name}", cells, dtype=pl.String)
            except TypeError:  # numbers or true/false among the text, or a value no field can hold
                cells = [json_value_text(cell) for cell in cells]
                if None in cells:
                    return None
                column = pl.Series(f"{position}:{name}", cells, dtype=pl.String)
            if "\x00" in "".join(filter(None, cells)):
                return None
            columns.append(column)
        return pl.DataFrame(columns).with_row_index(ROW, offset=1)
    except Exception:  # noqa: BLE001 - whatever this path cannot read, the slow path reads or reports
        return None


def _parse_records_json_slow(file: str, body: Any) -> ParsedSource:
    """`parse_records_json` for a body of any shape: every value looked at in Python, every problem reported."""
    result = ParsedSource()
    if not isinstance(body, dict):
        result.findings.append(_finding(file, "bad-json", "The body must be a JSON object whose keys are record types (clients, engagements, ...).",
                                        'Send {"clients": [{"client_ref": "C-1", ...}], "engagements": [...]}.'))
        return result
    if _depth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        result.findings.append(_finding(file, "bad-json", "The body is nested too deeply.", "Send a flat list of records for each record type."))
        return result
    if _holds_non_text(body):
        result.findings.append(_finding(file, "bad-json", "The body holds a NUL character (\\u0000) or an unpaired surrogate (\\ud800 to \\udfff), which are not text.",
                                        "Remove control characters from the values and names, and send UTF-8 text."))
        return result
    for key, items in body.items():
        record_type = record_type_for_file(str(key))
        if record_type is None:
            result.findings.append(_finding(file, "unknown-file", f"{key!r} is not a record type.",
                                            f"Use one of: {', '.join(rt.sheet_name for rt in RECORD_TYPES.values())}.", sheet=str(key)))
            continue
        if not isinstance(items, list):
            result.findings.append(_finding(file, "bad-json", f"{key} must be a list of records.", f'Send "{key}": [{{...}}, {{...}}].', sheet=str(key)))
            continue
        header: dict[str, int] = {}
        rows: list[dict[str, str]] = []
        for position, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                result.findings.append(_finding(file, "bad-json", f"Item {position} of {key} is not an object.", "Send each record as an object of field: value.",
                                                row=position, sheet=str(key)))
                rows.append({})
                continue
            row: dict[str, str] = {}
            for name, value in item.items():
                text = json_value_text(value)
                if text is None:
                    result.findings.append(_finding(file, "bad-json", f"{name} of item {position} is a {type(value).__name__}; fields hold text, numbers, true/false or null.",
                                                    "Send a single value.", row=position, field_name=str(name), sheet=str(key)))
                    text = ""
                header.setdefault(str(name), len(header))
                row[str(name)] = text
            rows.append(row)
        names = list(header)
        frame = _text_frame(names, [[r.get(n, "") for n in names] for r in rows], offset=1)
        table = _match_columns(file, str(key), record_type, frame, result.findings)
        if table is not None:
            result.tables.append(table)
    return result


def _parse_json(source: SourceFile) -> ParsedSource:
    try:
        body = json.loads(source.data.decode("utf-8-sig"))
    except (ValueError, RecursionError) as exc:  # ValueError: bad UTF-8, bad JSON, an integer of over 4,300 digits
        result = ParsedSource()
        result.findings.append(_finding(source.name, "bad-json", f"{source.name} is not valid JSON ({type(exc).__name__}).", "Send a valid UTF-8 JSON document."))
        return result
    return parse_records_json(source.name, body)
