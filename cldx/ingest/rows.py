"""Reading a small CSV file and checking its rows field by field against a record type.

This is the row-at-a-time path, for files measured in hundreds of rows (the ministry's
registry). It yields findings rather than raising, so one bad row never hides the next.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cldx.standard import Field, FieldType, RecordType
from cldx.standard.values import ValueProblem, parse_date, parse_decimal, parse_integer, parse_yes_no

from .findings import Finding


def normalise_header(header: str) -> str:
    """Headers match case- and space-insensitively: ' Client Ref ' is client_ref."""
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def mask(value: str) -> str:
    """How a name or date of birth is shown in a finding: enough to find the cell, not to read it."""
    return value[:1] + "*" * max(len(value) - 1, 2) if value else value


@dataclass
class CsvFile:
    """A CSV file read against a record type: its rows by field name, and what was wrong with it."""

    name: str
    record_type: RecordType
    # (spreadsheet row number, field name -> raw text); the header is row 1.
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    readable: bool = True


def read_csv(path: Path, record_type: RecordType) -> CsvFile:
    result = CsvFile(path.name, record_type)

    def file_finding(rule: str, message: str, fix: str, value: str | None = None, field_name: str | None = None) -> None:
        result.findings.append(Finding(path.name, 1 if rule != "unreadable-file" else None, field_name, value, rule, message, fix))

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        result.readable = False
        file_finding("unreadable-file", f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start}).", "Save the file as CSV UTF-8.")
        return result
    except OSError as exc:
        result.readable = False
        file_finding("unreadable-file", f"{path.name} cannot be opened: {exc.strerror}.", "Check the file exists and can be read.")
        return result

    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or not any(cell.strip() for cell in header):
        result.readable = False
        file_finding("empty-file", f"{path.name} has no header row.", f"Start the file with the header: {','.join(record_type.columns)}.")
        return result

    known = set(record_type.columns)
    positions: dict[str, int] = {}
    for index, cell in enumerate(header):
        name = normalise_header(cell)
        if not name:
            continue
        if name in positions:
            file_finding("duplicate-column", f"Column {cell!r} appears more than once.", "Delete the extra column.", cell, name)
        elif name in known:
            positions[name] = index
        else:
            file_finding("unknown-column", f"Column {cell!r} is not part of the {record_type.title.lower()} file; it is ignored.", f"Remove it, or rename it to one of: {', '.join(record_type.columns)}.", cell)
    missing = [f.name for f in record_type.fields if f.required and f.name not in positions]
    for name in missing:
        file_finding("missing-column", f"Required column {name!r} is missing.", f"Add a {name} column to the header row.", None, name)
    if missing:
        result.readable = False
        return result

    for row_number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue  # blank lines (Excel leaves them) are not records
        result.rows.append(
            (row_number, {name: (cells[i].strip() if i < len(cells) else "") for name, i in positions.items()})
        )
    return result


def check_field(spec: Field, raw: str, *, file: str, row: int) -> tuple[Any, list[Finding]]:
    """Parse one value; return it (None when blank or wrong) and any findings."""
    shown = mask(raw) if spec.identifying else raw

    def problem(rule: str, message: str, fix: str) -> tuple[None, list[Finding]]:
        return None, [Finding(file, row, spec.name, shown, rule, message, fix)]

    if raw == "":
        if spec.required:
            return problem("required", f"{spec.name} is required.", f"Fill in {spec.name}: {spec.format_hint}.")
        return None, []
    try:
        match spec.type:
            case FieldType.DATE:
                return parse_date(raw), []
            case FieldType.YES_NO:
                return parse_yes_no(raw), []
            case FieldType.INTEGER:
                value: Any = parse_integer(raw)
            case FieldType.DECIMAL:
                value = parse_decimal(raw)
            case _:
                value = raw
    except ValueProblem as exc:
        return problem(exc.rule, exc.message if spec.identifying is False else f"{spec.name} cannot be read.", exc.fix)

    if isinstance(value, str):
        if spec.max_length and len(value) > spec.max_length:
            return problem("too-long", f"{spec.name} is {len(value)} characters; at most {spec.max_length} are allowed.", f"Shorten {spec.name}.")
        if spec.pattern and not re.match(spec.pattern, value):
            return problem("bad-format", f"{value!r} is not a valid {spec.name}.", f"Write {spec.name} as {spec.format_hint}.")
        if spec.code_set:
            codes = spec.codes
            assert codes is not None
            if value not in codes and (restored := codes.restore_leading_zeros(value, spec.levels)):
                return restored, [
                    Finding(file, row, spec.name, shown, "leading-zeros-restored", f"{value!r} was read as {restored!r} ({codes.get(restored).label}).", f"Format the {spec.name} column as Text so codes keep their leading zeros.")
                ]
            if value not in codes:
                return problem("unknown-code", f"{value!r} is not a code in {codes.title}.", f"Use {spec.format_hint}; the templates list every code.")
            if spec.levels and codes.get(value).level not in spec.levels:
                return problem("code-level", f"{value!r} is a level {codes.get(value).level} code; {spec.name} takes {spec.format_hint}.", "Send the finer code the client gave.")
    else:
        if spec.min_value is not None and value < spec.min_value or spec.max_value is not None and value > spec.max_value:
            return problem("out-of-range", f"{raw} is outside the allowed range for {spec.name}.", f"Write {spec.format_hint}.")
    return value, []
