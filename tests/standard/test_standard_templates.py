"""The CSV templates and the Excel workbook generated from the standard."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest
from openpyxl.utils import get_column_letter, range_boundaries
from openpyxl.workbook.workbook import Workbook

from cldx.standard import RECORD_TYPES, SEED_SERVICE_LINES, STANDARD_VERSION, FieldType
from cldx.standard.templates import (
    CODES_SHEET,
    LISTS_SHEET,
    README_SHEET,
    TEMPLATE_ROWS,
    csv_template,
    workbook_bytes,
    workbook_standard_version,
    write_workbook,
)

RECORD_NAMES = list(RECORD_TYPES)
CODED_FIELDS = [(rt.name, f.name) for rt in RECORD_TYPES.values() for f in rt.fields if f.code_set or f.type is FieldType.CODE]


@pytest.fixture(scope="module")
def workbook(tmp_path_factory) -> Workbook:
    path = write_workbook(tmp_path_factory.mktemp("template") / "template.xlsx")
    return openpyxl.load_workbook(path)


def accepted_values(record_name: str, field_name: str, service_codes: list[str] | None = None) -> list[str]:
    f = RECORD_TYPES[record_name].field(field_name)
    if f.code_set is None:
        return service_codes if service_codes is not None else [s.code for s in SEED_SERVICE_LINES]
    return f.accepted_codes()


def dropdown_values(wb: Workbook, record_name: str, field_name: str) -> list[str]:
    """The values of the list drop-down covering the field's whole column, read from the range it points at."""
    rt = RECORD_TYPES[record_name]
    ws = wb[rt.sheet_name]
    letter = get_column_letter(rt.columns.index(field_name) + 1)
    wanted = f"{letter}2:{letter}{TEMPLATE_ROWS + 1}"
    lists = [dv for dv in ws.data_validations.dataValidation if dv.type == "list" and wanted in str(dv.sqref).split()]
    assert len(lists) == 1, f"{record_name}.{field_name}: expected one list drop-down on {wanted}, found {len(lists)}"
    sheet_part, cells = lists[0].formula1.lstrip("=").rsplit("!", 1)
    min_col, min_row, max_col, max_row = range_boundaries(cells.replace("$", ""))
    assert min_col == max_col
    source = wb[sheet_part.strip("'")]
    return [row[0] for row in source.iter_rows(min_row=min_row, max_row=max_row, min_col=min_col, max_col=max_col, values_only=True)]


# --- CSV ---


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_csv_template_is_the_header_row_only_and_equals_the_record_columns(name):
    rt = RECORD_TYPES[name]
    rows = list(csv.reader(io.StringIO(csv_template(rt).decode("utf-8-sig"), newline="")))
    assert rows == [rt.columns]


def test_csv_template_starts_with_a_utf8_byte_order_mark_so_excel_keeps_macrons():
    assert csv_template(RECORD_TYPES["client"]).startswith(b"\xef\xbb\xbf")


# --- Workbook ---


def test_readme_is_the_first_sheet_and_carries_the_standard_version(workbook):
    assert workbook.sheetnames[0] == README_SHEET
    assert workbook_standard_version(workbook) == STANDARD_VERSION
    text = " ".join(str(v) for row in workbook[README_SHEET].iter_rows(values_only=True) for v in row if v)
    for rt in RECORD_TYPES.values():
        assert rt.sheet_name in text  # the list of sheets


def test_standard_version_is_unknown_for_a_workbook_without_readme():
    assert workbook_standard_version(openpyxl.Workbook()) is None


def test_workbook_has_a_sheet_per_record_type_in_order_then_codes_and_hidden_lists(workbook):
    assert workbook.sheetnames == [README_SHEET, *(rt.sheet_name for rt in RECORD_TYPES.values()), CODES_SHEET, LISTS_SHEET]
    assert workbook[LISTS_SHEET].sheet_state == "hidden"
    assert workbook[CODES_SHEET].sheet_state == "visible"


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_record_sheet_header_is_the_record_columns_bold_and_frozen(workbook, name):
    rt = RECORD_TYPES[name]
    ws = workbook[rt.sheet_name]
    header = next(ws.iter_rows(min_row=1, max_row=1))
    assert [c.value for c in header] == rt.columns
    assert all(c.font.bold for c in header)
    assert ws.freeze_panes == "A2"
    assert ws.max_row == 1  # blank below the header


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_every_column_header_has_a_note_with_description_requirement_and_format(workbook, name):
    rt = RECORD_TYPES[name]
    ws = workbook[rt.sheet_name]
    for col, f in enumerate(rt.fields, start=1):
        comment = ws.cell(row=1, column=col).comment
        assert comment is not None, f"{name}.{f.name} has no note"
        # Notes are plain text, so the descriptions' Markdown backticks are dropped.
        for part in (f.description, f.requirement, f.format_hint):
            assert part.replace("`", "") in comment.text


@pytest.mark.parametrize(("name", "field"), CODED_FIELDS)
def test_every_coded_field_has_a_dropdown_listing_exactly_its_accepted_codes(workbook, name, field):
    assert dropdown_values(workbook, name, field) == accepted_values(name, field)


def test_service_code_dropdown_lists_the_service_lines_it_is_given(tmp_path):
    path = write_workbook(tmp_path / "t.xlsx", service_lines=[("FS", "Family Start"), ("NEW_1", "A new line")])
    wb = openpyxl.load_workbook(path)
    assert dropdown_values(wb, "engagement", "service_code") == ["FS", "NEW_1"]


def test_dropdown_codes_are_text_so_leading_zeros_survive(workbook):
    assert "001" in dropdown_values(workbook, "client", "area")
    assert "0402" in dropdown_values(workbook, "client", "iwi_1")


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_date_code_and_reference_columns_are_formatted_as_text(workbook, name):
    rt = RECORD_TYPES[name]
    ws = workbook[rt.sheet_name]
    for col, f in enumerate(rt.fields, start=1):
        if f.type in (FieldType.DATE, FieldType.CODE, FieldType.REFERENCE):
            assert ws.column_dimensions[get_column_letter(col)].number_format == "@", f"{name}.{f.name} is not a text column"


def test_duration_has_a_whole_number_check_within_its_bounds(workbook):
    ws = workbook["attendance"]
    letter = get_column_letter(RECORD_TYPES["attendance"].columns.index("duration_minutes") + 1)
    (dv,) = [dv for dv in ws.data_validations.dataValidation if f"{letter}2:{letter}{TEMPLATE_ROWS + 1}" in str(dv.sqref)]
    assert (dv.type, dv.formula1, dv.formula2) == ("whole", "0", "1440")


def test_codes_sheet_gives_a_label_for_every_dropdown_code(workbook):
    labelled = {(row[1]) for row in workbook[CODES_SHEET].iter_rows(min_row=2, values_only=True) if row[2]}
    for name, field in CODED_FIELDS:
        missing = set(accepted_values(name, field)) - labelled
        assert not missing, f"{name}.{field}: no label on the codes sheet for {sorted(missing)[:5]}"


def test_workbook_is_the_same_bytes_on_every_build():
    assert workbook_bytes() == workbook_bytes()


def test_workbook_written_to_a_path_opens_with_openpyxl(tmp_path: Path):
    path = write_workbook(tmp_path / "cldx.xlsx")
    assert openpyxl.load_workbook(path, read_only=True).sheetnames[0] == README_SHEET
