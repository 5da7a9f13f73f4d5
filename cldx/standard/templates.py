"""Blank templates providers fill in: one CSV per record type and one Excel workbook for all six.

CSV templates hold the header row only, written as UTF-8 with a byte-order mark: Excel opens a
CSV without one in the machine's legacy code page and mangles macrons (Māori becomes MÄori);
with the mark it reads UTF-8 and saves back as "CSV UTF-8". Lines end in CRLF as RFC 4180 says.

The workbook has, in order:
- `README`: the standard's name and version (the cell right of "Standard version", read back by
  `workbook_standard_version`), instructions for provider staff and the list of sheets;
- one sheet per record type, named as its CSV file without `.csv`: a bold, frozen header row,
  a note on every header (description, requirement, format), a drop-down on every coded column,
  and date, code and reference columns formatted as text so Excel keeps 2017-03-09, 09/03/2017
  and territorial authority 001 exactly as typed;
- `codes` (visible): every code a drop-down offers with its label, so staff can look codes up;
- `lists` (hidden): the drop-downs' values, one column per list. Excel's inline lists stop at
  255 characters, so drop-downs point at ranges here instead.

The workbook is written deterministically (fixed zip times and document dates) so the same
standard and service lines always give the same bytes.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet
from openpyxl.writer.excel import ExcelWriter

from .codesets import Code, code_set, load_instruments
from .fields import Field, FieldType, RecordType
from .records import RECORD_TYPES, STANDARD_NAME, STANDARD_VERSION
from .registry import SEED_SERVICE_LINES, WAVE_1_START, ServiceLine

CSV_ENCODING = "utf-8-sig"  # UTF-8 with a byte-order mark, for Excel (see the module docstring)

README_SHEET = "README"
CODES_SHEET = "codes"
LISTS_SHEET = "lists"
VERSION_LABEL = "Standard version"
# Drop-downs and text formats cover this many data rows below the header (rows 2 to 5001).
TEMPLATE_ROWS = 5000
TEXT_FORMAT = "@"
COMMENT_AUTHOR = "cldx data standard"

_BOLD = Font(bold=True)
_HEADER_FILL = PatternFill("solid", start_color="DDEBF7", end_color="DDEBF7")
_KEY_FILL = PatternFill("solid", start_color="FCE4D6", end_color="FCE4D6")
_WRAP = Alignment(wrap_text=True, vertical="top")

# A service line as the drop-down needs it: a ServiceLine, or a (code, name) pair from the store.
ServiceLineLike = ServiceLine | tuple[str, str]


def workbook_file_name() -> str:
    return f"cldx-template-v{STANDARD_VERSION}.xlsx"


# --- CSV ---------------------------------------------------------------------------------


def csv_template(record_type: RecordType) -> bytes:
    """The header-only CSV template of a record type, as the bytes of a file."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerow(record_type.columns)
    return buffer.getvalue().encode(CSV_ENCODING)


# --- Drop-down lists ---------------------------------------------------------------------


def service_line_pairs(service_lines: Iterable[ServiceLineLike]) -> list[tuple[str, str]]:
    """(code, name) of each service line, whether given as ServiceLine or as a pair."""
    return [(s.code, s.name) if isinstance(s, ServiceLine) else (s[0], s[1]) for s in service_lines]


@dataclass(frozen=True)
class CodeList:
    """The codes one or more coded fields accept: a column of the lists sheet and a block of the codes sheet."""

    name: str  # header of its column in the lists sheet, e.g. "ethnicity (levels 2, 3, 4)"
    codes: tuple[tuple[str, str, str], ...]  # (code, label, note)


def code_list_for(field: Field, service_lines: Sequence[ServiceLineLike]) -> CodeList | None:
    """The drop-down list of a coded field, or None for a field that takes free values."""
    if field.code_set is None:
        if field.type is not FieldType.CODE:
            return None
        # The one coded field without a code set of the standard: its codes are the service
        # lines stored in the registry. Any other would need its own list, so fail loudly.
        if field.name != "service_code":
            raise ValueError(f"coded field {field.name!r} has no code set and no registry list")
        return CodeList("service_code", tuple((c, n, "") for c, n in service_line_pairs(service_lines)))
    cs = field.codes
    assert cs is not None
    name = cs.name
    if field.levels and set(field.levels) != {c.level for c in cs}:
        # Only some levels accepted (iwi level 2, ethnicity levels 2-4): a list of its own.
        name += f" (level{'s' if len(field.levels) > 1 else ''} {', '.join(map(str, field.levels))})"
    return CodeList(name, tuple((c.code, c.label, _code_note(cs.name, c)) for c in cs.at_levels(field.levels)))


def _code_note(code_set_name: str, code: Code) -> str:
    """A short note beside a code on the codes sheet, where the code alone is not enough."""
    match code_set_name:
        case "area":
            if code.level == 1:
                return "territorial authority"
            ta = code_set("territorial_authority").get(code.parent)
            return f"SA2 in {ta.label}" if ta else "SA2"
        case "outcome_measure":
            return f"dimension: {code.parent}"
        case "instrument_domain":
            uses = [
                f"{i.code} {d.min_score:g}-{d.max_score:g}, {d.better} is better"
                for i in load_instruments().values()
                for d in i.domains.values()
                if d.code == code.code
            ]
            return "; ".join(uses)
        case "ethnicity" | "iwi" | "gender":
            return f"level {code.level}"
    return code.description


def record_code_lists(service_lines: Sequence[ServiceLineLike]) -> dict[str, CodeList]:
    """Every distinct drop-down list the six record types use, by list name, in field order."""
    lists: dict[str, CodeList] = {}
    for rt in RECORD_TYPES.values():
        for f in rt.fields:
            cl = code_list_for(f, service_lines)
            if cl is not None:
                lists.setdefault(cl.name, cl)
    return lists


# --- Workbook ----------------------------------------------------------------------------


def build_workbook(service_lines: Sequence[ServiceLineLike] = SEED_SERVICE_LINES) -> Workbook:
    """The Excel template as an openpyxl Workbook (see the module docstring for its sheets)."""
    wb = Workbook()
    readme = wb.active
    readme.title = README_SHEET
    lists = record_code_lists(service_lines)
    list_ranges = _list_ranges(lists)
    # Sheets in the order staff meet them: README, the six record sheets, codes, hidden lists.
    for rt in RECORD_TYPES.values():
        _write_record_sheet(wb.create_sheet(rt.sheet_name), rt, service_lines, list_ranges)
    _write_codes_sheet(wb.create_sheet(CODES_SHEET), lists)
    lists_sheet = wb.create_sheet(LISTS_SHEET)
    _write_lists_sheet(lists_sheet, lists)
    lists_sheet.sheet_state = "hidden"
    _write_readme(readme)

    props = wb.properties
    props.title = f"{STANDARD_NAME} v{STANDARD_VERSION}: template"
    props.subject = "Client-level data for the ministry"
    props.creator = COMMENT_AUTHOR
    props.keywords = f"cldx standard {STANDARD_VERSION}"
    # A fixed date instead of now (the day collection under standard v1 began), so the same
    # definitions always give the same bytes.
    props.created = props.modified = datetime.combine(WAVE_1_START, time())
    return wb


def write_workbook(path: Path, service_lines: Sequence[ServiceLineLike] = SEED_SERVICE_LINES) -> Path:
    """Write the Excel template to `path`, byte for byte the same for the same input."""
    path.write_bytes(workbook_bytes(service_lines))
    return path


def workbook_bytes(service_lines: Sequence[ServiceLineLike] = SEED_SERVICE_LINES) -> bytes:
    return save_deterministic(build_workbook(service_lines))


def save_deterministic(wb: Workbook) -> bytes:
    """The workbook's .xlsx bytes, the same for the same content (no save time inside)."""
    buffer = io.BytesIO()
    # openpyxl's save_workbook stamps the time into the file; its writer with our archive does not.
    with _FixedTimeZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).write_data()
    return buffer.getvalue()


class _FixedTimeZipFile(zipfile.ZipFile):
    """A zip whose entries all carry the same time, so the archive does not change from run to run."""

    FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold

    def writestr(self, zinfo_or_arcname, data, compress_type=None, compresslevel=None):  # type: ignore[override]
        if not isinstance(zinfo_or_arcname, zipfile.ZipInfo):
            zinfo_or_arcname = zipfile.ZipInfo(zinfo_or_arcname, date_time=self.FIXED_TIME)
            zinfo_or_arcname.compress_type = self.compression
            zinfo_or_arcname.external_attr = 0o644 << 16
        super().writestr(zinfo_or_arcname, data, compress_type, compresslevel)

    def write(self, filename, arcname=None, compress_type=None, compresslevel=None):  # type: ignore[override]
        # openpyxl writes worksheets through temporary files, whose times would end up in the zip.
        with open(filename, "rb") as fh:
            self.writestr(arcname or Path(filename).name, fh.read(), compress_type, compresslevel)


def workbook_standard_version(wb: Workbook) -> str | None:
    """The standard version a filled-in template was made for (the README's "Standard version")."""
    if README_SHEET not in wb.sheetnames:
        return None
    for label, value, *_ in wb[README_SHEET].iter_rows(min_col=1, max_col=2, values_only=True):
        if label == VERSION_LABEL:
            return None if value is None else str(value)
    return None


def header_note(record_type: RecordType, field: Field) -> str:
    """The note on a column header: what the column holds, whether it is needed and how to write it."""
    lines = [f"{field.name} ({field.requirement}{', part of the key' if field.name in record_type.key else ''})", field.description]
    if field.required_when:
        lines.append(f"Requirement: {field.required_when}.")
    lines.append(f"Format: {field.format_hint}.")
    if field.code_set or field.type is FieldType.CODE:
        lines.append(f"Pick from the drop-down; labels are on the {CODES_SHEET} sheet.")
    # Notes are plain text: the Markdown backticks of the descriptions would show as typed.
    return "\n".join(lines).replace("`", "")


def _list_ranges(lists: dict[str, CodeList]) -> dict[str, str]:
    """Each list's absolute range on the lists sheet (one column per list, codes from row 2)."""
    ranges: dict[str, str] = {}
    for col, cl in enumerate(lists.values(), start=1):
        letter = get_column_letter(col)
        last = max(len(cl.codes) + 1, 2)  # an empty list still needs a valid range
        ranges[cl.name] = f"{quote_sheetname(LISTS_SHEET)}!${letter}$2:${letter}${last}"
    return ranges


def _write_lists_sheet(ws: Worksheet, lists: dict[str, CodeList]) -> None:
    for col, cl in enumerate(lists.values(), start=1):
        ws.cell(row=1, column=col, value=cl.name)
        for row, (code, _label, _note) in enumerate(cl.codes, start=2):
            ws.cell(row=row, column=col, value=code).number_format = TEXT_FORMAT


def _write_record_sheet(
    ws: Worksheet, record_type: RecordType, service_lines: Sequence[ServiceLineLike], list_ranges: dict[str, str]
) -> None:
    last_row = TEMPLATE_ROWS + 1
    for col, field in enumerate(record_type.fields, start=1):
        letter = get_column_letter(col)
        cell = ws.cell(row=1, column=col, value=field.name)
        cell.font = _BOLD
        cell.fill = _KEY_FILL if field.name in record_type.key else _HEADER_FILL
        note = header_note(record_type, field)
        cell.comment = Comment(note, COMMENT_AUTHOR, width=360, height=max(120, 18 * (len(note) // 50 + note.count("\n") + 2)))

        column = ws.column_dimensions[letter]
        column.width = max(len(field.name) + 4, 14)
        if field.type in (FieldType.DATE, FieldType.CODE, FieldType.REFERENCE, FieldType.YES_NO):
            # A column style: Excel gives it to every cell typed in the column, so dates stay as
            # typed and codes keep their leading zeros.
            column.number_format = TEXT_FORMAT

        cells = f"{letter}2:{letter}{last_row}"
        code_list = code_list_for(field, service_lines)
        if code_list is not None:
            # Formulas are stored without the "=" Excel shows; stop-style errors refuse other values.
            dv = DataValidation(type="list", formula1=list_ranges[code_list.name], allow_blank=True, showErrorMessage=True, errorStyle="stop")
            dv.error = f"Choose a code from the list. The codes and what they mean are on the {CODES_SHEET} sheet."
            dv.errorTitle = f"Not a valid {field.name}"[:32]  # Excel's limit on the title
            dv.add(cells)
            ws.add_data_validation(dv)
        elif field.type in (FieldType.INTEGER, FieldType.DECIMAL) and (field.min_value is not None or field.max_value is not None):
            kind = "whole" if field.type is FieldType.INTEGER else "decimal"
            low = field.min_value if field.min_value is not None else -1e15
            high = field.max_value if field.max_value is not None else 1e15
            dv = DataValidation(
                type=kind, operator="between", formula1=f"{low:g}", formula2=f"{high:g}", allow_blank=True, showErrorMessage=True, errorStyle="stop"
            )
            dv.error = f"Write a {field.format_hint}."
            dv.errorTitle = f"Not a valid {field.name}"[:32]
            dv.add(cells)
            ws.add_data_validation(dv)
    ws.freeze_panes = "A2"


def _write_codes_sheet(ws: Worksheet, lists: dict[str, CodeList]) -> None:
    headers = ("list", "code", "label", "note")
    for col, header in enumerate(headers, start=1):
        ws.cell(row=1, column=col, value=header).font = _BOLD
    row = 2
    for cl in lists.values():
        for code, label, note in cl.codes:
            ws.cell(row=row, column=1, value=cl.name)
            ws.cell(row=row, column=2, value=code).number_format = TEXT_FORMAT
            ws.cell(row=row, column=3, value=label)
            ws.cell(row=row, column=4, value=note or None)
            row += 1
    for letter, width in zip("ABCD", (28, 12, 60, 50)):
        ws.column_dimensions[letter].width = width
    ws.freeze_panes = "A2"
    # A filter on the list column lets staff show one list at a time.
    ws.auto_filter.ref = f"A1:D{max(row - 1, 1)}"


def _write_readme(ws: Worksheet) -> None:
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 110
    ws["A1"] = STANDARD_NAME
    ws["A1"].font = Font(bold=True, size=14)
    rows: list[tuple[str | None, str | None]] = [
        (VERSION_LABEL, STANDARD_VERSION),
        ("Template", f"Excel template for the client-level data you send to the ministry ({workbook_file_name()})."),
        (None, None),
        ("How to fill it in", None),
        *((f"{n}.", text) for n, text in enumerate(_INSTRUCTIONS, start=1)),
        (None, None),
        ("Sheets", None),
        *((rt.sheet_name, f"{rt.title}: {rt.description} Key: {' + '.join(rt.key)}. Same columns as {rt.file_name}.") for rt in RECORD_TYPES.values()),
        (CODES_SHEET, "Every code the drop-downs offer, with its label. Filter the list column to see one list."),
        (LISTS_SHEET, "Hidden: the values behind the drop-downs. Do not change it."),
    ]
    for row, (label, text) in enumerate(rows, start=3):
        ws.cell(row=row, column=1, value=label).font = _BOLD
        ws.cell(row=row, column=2, value=text).alignment = _WRAP
    # The version is text, so "1.10" is never read back as the number 1.1.
    version_cell = ws.cell(row=3, column=2)
    version_cell.number_format = TEXT_FORMAT
    version_cell.font = _BOLD


_INSTRUCTIONS = (
    "Use one sheet per kind of record and one row per record. Leave a sheet with its header row only when you have nothing for it.",
    "Do not rename, move or delete the column headings in row 1. Point at (or select) a heading to read what the column holds, "
    "whether it is required and how to write it.",
    "Coded columns have a drop-down. The codes and what they mean are on the codes sheet.",
    "Write dates as 2017-03-09 or as 09/03/2017 (day first). Date, code and reference columns are formatted as text so Excel "
    "keeps what you type, including leading zeros such as territorial authority 001.",
    "Use your own reference for each client, dependant and engagement (client_ref, dependant_ref, engagement_ref) and keep it the "
    "same every month. Never use a name, NHI or IRD number as a reference.",
    "Sending a record again with the same key updates it, so you can send the whole list every month. To withdraw a record "
    "sent by mistake, write withdraw in its action column; its key columns are all that is needed.",
    "Names and dates of birth are kept apart from the data the ministry analyses. When a client declines to be identified, "
    "write n in identity_consent and leave their names and date of birth blank.",
    "Send the workbook through the cldx upload page, or save each sheet as \"CSV UTF-8\" named after the sheet (clients.csv, "
    "engagements.csv and so on).",
    "Do not change the README, codes or hidden lists sheets: cldx reads the standard version from this sheet.",
)
