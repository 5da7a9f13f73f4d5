"""Report files: a `Report` as CSV, JSON or Excel, each carrying the disclosure rules it passed.

Only released tables reach here (a `Report` cannot hold any other kind), and each format says so:
CSV ends every section with its rules, JSON carries them per table, and the workbook has a
`Notes` sheet with the report's period, audience, rules and rules version. Suppressed values are
`S` in CSV and Excel and `null` with `"suppressed": true` in JSON.
"""

from __future__ import annotations

import csv
import io
import json

from openpyxl import Workbook
from openpyxl.styles import Font

from cldx.analysis.reports import Report
from cldx.disclosure import is_released
from cldx.standard.templates import save_deterministic

FORMATS = ("csv", "json", "xlsx")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _checked(report: Report) -> Report:
    for section in report.sections:
        if not is_released(section.table):  # a Section refuses these already; a file never carries one
            raise TypeError(f"{report.name}/{section.key} was not released by cldx.disclosure")
    return report


def _safe_text(value: str) -> str:
    # A spreadsheet runs a cell starting with = + - @ as a formula; labels are data, never formulas.
    return "'" + value if value[:1] in ("=", "+", "-", "@") and not _is_number(value) else value


def _is_number(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False


def report_json(report: Report) -> bytes:
    return json.dumps(_checked(report).to_json(), ensure_ascii=False, indent=1).encode("utf-8")


def report_csv(report: Report) -> bytes:
    """Every section as a block: its title, its table (header, rows, rules), then a blank row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([report.title, f"Period: {report.period}"])
    writer.writerow([report.summary])
    writer.writerow([])
    for section in _checked(report).sections:
        writer.writerow([section.title])
        for row in section.table.to_csv_rows():  # type: ignore[attr-defined]
            writer.writerow([_safe_text(str(c)) for c in row])
        writer.writerow([])
    for note in report.notes:
        writer.writerow(["Note", note])
    return buffer.getvalue().encode("utf-8-sig")  # Excel opens UTF-8 CSV correctly only with the BOM


def report_xlsx(report: Report) -> bytes:
    """One sheet per section (the table as released) and a Notes sheet with what was applied."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    bold = Font(bold=True)
    rules_seen: dict[str, list[str]] = {}
    for section in _checked(report).sections:
        sheet = workbook.create_sheet(_sheet_name(section.title, workbook.sheetnames))
        rows = section.table.to_csv_rows()  # type: ignore[attr-defined]
        body = rows[: rows.index([])] if [] in rows else rows
        for r, row in enumerate(body, 1):
            for c, value in enumerate(row, 1):
                cell = sheet.cell(r, c)
                text = str(value)
                if r > 1 and _is_number(text) and text not in ("",):
                    cell.value = float(text) if any(ch in text for ch in ".eE") else int(text)
                else:
                    cell.value = _safe_text(text)
                if r == 1:
                    cell.font = bold
        table = section.table
        rules_seen.setdefault(f"{table.rules_version}", [])  # type: ignore[attr-defined]
        for rule in table.rules:  # type: ignore[attr-defined]
            if rule not in rules_seen[table.rules_version]:  # type: ignore[attr-defined]
                rules_seen[table.rules_version].append(rule)  # type: ignore[attr-defined]
    notes = workbook.create_sheet("Notes")
    lines = [
        ("Report", report.title),
        ("About", report.summary),
        ("Period", str(report.period)),
        ("Breakdown", ", ".join(report.by) or "none"),
        ("For", report.audience.provider_code or "the ministry (disclosure-controlled)"),
        ("Generated", report.generated_at.isoformat(timespec="seconds")),
        ("Suppressed values", "S"),
    ]
    lines += [("Note", n) for n in report.notes]
    for version, rules in rules_seen.items():
        lines.append(("Rules version", version))
        lines += [("Rule", r) for r in rules]
    for r, (label, value) in enumerate(lines, 1):
        notes.cell(r, 1, label).font = bold
        notes.cell(r, 2, _safe_text(value))
    return save_deterministic(workbook)


def _sheet_name(title: str, taken: list[str]) -> str:
    base = "".join(ch for ch in title if ch not in "[]:*?/\\")[:28] or "Table"
    name, n = base, 2
    while name in taken:
        name, n = f"{base[:26]} {n}", n + 1
    return name


def render(report: Report, fmt: str) -> bytes:
    if fmt == "csv":
        return report_csv(report)
    if fmt == "json":
        return report_json(report)
    if fmt == "xlsx":
        return report_xlsx(report)
    raise ValueError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")
