"""`export_standard`: every generated file written into one folder, readable and the same each time."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import openpyxl
import pytest
from jsonschema import Draft202012Validator

from cldx.standard import RECORD_TYPES, REGISTRY_FILES, STANDARD_VERSION, code_sets
from cldx.standard.docs import render_docs
from cldx.standard.export import export_standard
from cldx.standard.templates import workbook_standard_version


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("export")
    return out, export_standard(out)


def expected_files() -> set[str]:
    return {
        "data-standard.md",
        *(f"schemas/{name}.schema.json" for name in RECORD_TYPES),
        *(f"templates/{rt.file_name}" for rt in RECORD_TYPES.values()),
        f"templates/cldx-template-v{STANDARD_VERSION}.xlsx",
        *(f"templates/registry/{name}" for name in REGISTRY_FILES),
        *(f"codesets/{name}.csv" for name in code_sets()),
        "codesets/instrument_scores.csv",
        "codesets/service_lines.csv",
        "codesets/SOURCES.md",
    }


def test_export_writes_every_generated_file_and_returns_their_paths(exported):
    out, written = exported
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == expected_files()
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(on_disk)
    assert all(p.stat().st_size > 0 for p in written)


def test_exported_schemas_templates_and_docs_are_the_generated_ones(exported):
    out, _ = exported
    for name in RECORD_TYPES:
        schema = json.loads((out / f"schemas/{name}.schema.json").read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        assert schema["x-cldx-record-type"] == name
    for rt in RECORD_TYPES.values():
        assert next(csv.reader((out / "templates" / rt.file_name).read_text(encoding="utf-8-sig").splitlines())) == rt.columns
    wb = openpyxl.load_workbook(out / f"templates/cldx-template-v{STANDARD_VERSION}.xlsx")
    assert workbook_standard_version(wb) == STANDARD_VERSION
    assert (out / "data-standard.md").read_text(encoding="utf-8") == render_docs()


@pytest.mark.parametrize("name", list(code_sets()))
def test_exported_code_set_csv_holds_every_code_with_its_label(exported, name):
    out, _ = exported
    rows = list(csv.DictReader(io.StringIO((out / f"codesets/{name}.csv").read_text(encoding="utf-8"))))
    assert [(r["code"], r["label"]) for r in rows] == [(c.code, c.label) for c in code_sets()[name]]


def test_exported_service_lines_file_is_a_registry_file_of_the_lines_given(tmp_path):
    export_standard(tmp_path, service_lines=[("FS", "Family Start"), ("NEW_1", "A new line")])
    rows = list(csv.DictReader(io.StringIO((tmp_path / "codesets/service_lines.csv").read_text(encoding="utf-8"))))
    assert list(rows[0]) == REGISTRY_FILES["service_lines.csv"].columns
    assert [(r["service_code"], r["name"]) for r in rows] == [("FS", "Family Start"), ("NEW_1", "A new line")]


def test_exporting_twice_writes_identical_files(exported, tmp_path):
    first_out, first = exported
    second = export_standard(tmp_path)
    changed = [p.relative_to(first_out).as_posix() for p, q in zip(first, second) if p.read_bytes() != q.read_bytes()]
    assert changed == []
