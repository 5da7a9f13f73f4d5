"""Everything generated from the standard, written into one folder for providers and developers.

`export_standard(out_dir)` writes:

    data-standard.md
    schemas/<record>.schema.json           one per record type
    templates/<file>.csv                   header-only CSV templates, one per record type
    templates/cldx-template-v<version>.xlsx
    templates/registry/<file>.csv          header-only registry files, for ministry staff
    codesets/<code set>.csv                every code set, one layout for all
    codesets/instrument_scores.csv         domains with score ranges and better direction
    codesets/service_lines.csv             the service lines used, as a registry file
    codesets/SOURCES.md                    provenance of the official code sets

The service lines are a parameter because they live in the store, which this part may not
import: the CLI passes the stored list, and the brief's six are the default.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from .codesets import CodeSet, code_sets, load_instruments
from .docs import render_docs
from .jsonschema import record_schema, schema_file_name
from .records import RECORD_TYPES
from .registry import REGISTRY_FILES, SEED_SERVICE_LINES, SERVICE_LINES_FILE, ServiceLine
from .templates import ServiceLineLike, csv_template, service_line_pairs, workbook_bytes, workbook_file_name

CODE_SET_COLUMNS = ("code", "label", "level", "parent_code", "description")
# Generated code-set CSVs are read by programs, not opened in Excel first: plain UTF-8.
CODE_SET_ENCODING = "utf-8"


def export_standard(out_dir: Path | str, service_lines: Sequence[ServiceLineLike] = SEED_SERVICE_LINES) -> list[Path]:
    """Write the standard's generated files under `out_dir`; returns the paths written, in order."""
    out = Path(out_dir)
    files: dict[str, bytes] = {"data-standard.md": render_docs(service_lines).encode("utf-8")}
    for rt in RECORD_TYPES.values():
        files[f"schemas/{schema_file_name(rt)}"] = _json_bytes(record_schema(rt))
    for rt in RECORD_TYPES.values():
        files[f"templates/{rt.file_name}"] = csv_template(rt)
    files[f"templates/{workbook_file_name()}"] = workbook_bytes(service_lines)
    for rt in REGISTRY_FILES.values():
        files[f"templates/registry/{rt.file_name}"] = csv_template(rt)
    for cs in code_sets().values():
        files[f"codesets/{cs.name}.csv"] = code_set_csv(cs)
    files["codesets/instrument_scores.csv"] = instrument_scores_csv()
    files["codesets/service_lines.csv"] = service_lines_csv(service_lines)
    files["codesets/SOURCES.md"] = resources.files(__package__).joinpath("codesets", "SOURCES.md").read_bytes()

    written = []
    for relative, content in files.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written


def code_set_csv(cs: CodeSet) -> bytes:
    """A code set as CSV in one layout for every set, whatever the shape of its source file."""
    return _csv_bytes(CODE_SET_COLUMNS, ((c.code, c.label, c.level, c.parent or "", c.description) for c in cs))


def instrument_scores_csv() -> bytes:
    rows = (
        (i.code, i.label, d.code, d.label, f"{d.min_score:g}", f"{d.max_score:g}", d.better, i.source)
        for i in load_instruments().values()
        for d in i.domains.values()
    )
    return _csv_bytes(("instrument", "instrument_label", "domain", "domain_label", "min_score", "max_score", "better", "source"), rows)


def service_lines_csv(service_lines: Sequence[ServiceLineLike]) -> bytes:
    """The service lines as a `service_lines.csv` registry file (optional columns blank for bare pairs)."""
    rows = []
    for line, (code, name) in zip(service_lines, service_line_pairs(service_lines)):
        if isinstance(line, ServiceLine):
            rows.append((code, name, line.description, line.min_client_age, line.max_client_age))
        else:
            rows.append((code, name, "", "", ""))
    return _csv_bytes(SERVICE_LINES_FILE.columns, rows)


def _csv_bytes(header: Sequence[str], rows) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode(CODE_SET_ENCODING)


def _json_bytes(value: object) -> bytes:
    # Keys in the order written (it reads top-down: $schema, $id, title ...); macrons kept as is.
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
