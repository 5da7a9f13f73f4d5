"""Registry import: the ministry's providers, service lines and contracts from its finance system.

`import_registry(engine, directory)` reads `service_lines.csv`, `providers.csv` and
`contracts.csv` (any of them may be absent), reports every bad row by file, row and field,
and upserts the good rows by key in one transaction. Importing the same files twice changes
nothing. A contract whose provider or service line is itself rejected is rejected too, so
no row is stored half-connected.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from cldx.standard import REGISTRY_FILES, RecordType
from cldx.standard.registry import DEFAULT_DUE_DAY, REPORTING_FREQUENCIES
from cldx.store import transaction
from cldx.store.models import Contract, Provider, ServiceLine
from cldx.store.registry import ids_by_code, upsert_by_key

from .findings import Finding
from .rows import check_field, read_csv

# Dependencies first: contracts refer to providers and service lines.
IMPORT_ORDER = ("service_lines.csv", "providers.csv", "contracts.csv")


@dataclass
class FileResult:
    file: str
    counts: Counter = field(default_factory=Counter)  # new / changed / unchanged / rejected


@dataclass
class RegistryImport:
    files: list[FileResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(f.counts["rejected"] for f in self.files)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [{"file": f.file, **{k: f.counts[k] for k in ("new", "changed", "unchanged", "rejected")}} for f in self.files],
            "findings": [f.to_dict() for f in self.findings],
        }


class NothingToImport(Exception):
    """The directory holds none of the registry files."""


def _valid_rows(record_type: RecordType, path: Path, report: RegistryImport) -> tuple[list[tuple[int, dict]], FileResult]:
    """Rows that pass field checks and are not duplicate keys, with the file's findings recorded."""
    parsed = read_csv(path, record_type)
    result = FileResult(path.name)
    report.findings.extend(parsed.findings)
    seen: dict[tuple, int] = {}
    good: list[tuple[int, dict]] = []
    for row_number, raw in parsed.rows:
        values: dict[str, Any] = {}
        row_findings: list[Finding] = []
        for spec in record_type.fields:
            if spec.name in raw:
                values[spec.name], found = check_field(spec, raw[spec.name], file=path.name, row=row_number)
                row_findings.extend(found)
            else:
                values[spec.name] = None
        key = tuple(values[k] for k in record_type.key)
        if None not in key:
            if key in seen:
                row_findings.append(
                    Finding(path.name, row_number, record_type.key[0], raw[record_type.key[0]], "duplicate-key",
                            f"{record_type.key[0]} {raw[record_type.key[0]]!r} was already given on row {seen[key]}.",
                            "Keep one row per key: delete or correct this one.")
                )
            else:
                seen[key] = row_number
        report.findings.extend(row_findings)
        if any(f.is_error for f in row_findings):
            result.counts["rejected"] += 1
        else:
            good.append((row_number, values))
    return good, result


def _contract_findings(file: str, row: int, values: dict, providers: dict[str, int], lines: dict[str, int]) -> list[Finding]:
    """Checks across fields and against the registry for one contract row."""
    found = []
    if values["provider_code"] not in providers:
        found.append(Finding(file, row, "provider_code", values["provider_code"], "unknown-reference",
                             f"No provider {values['provider_code']!r} in providers.csv or the registry.",
                             "Add the provider to providers.csv, or correct the code."))
    if values["service_code"] not in lines:
        found.append(Finding(file, row, "service_code", values["service_code"], "unknown-reference",
                             f"No service line {values['service_code']!r} in service_lines.csv or the registry.",
                             "Add the service line to service_lines.csv, or correct the code."))
    if values["period_start"] and values["period_end"] and values["period_end"] < values["period_start"]:
        found.append(Finding(file, row, "period_end", values["period_end"].isoformat(), "date-order",
                             "period_end is before period_start.", "Swap the dates or correct the end date."))
    if values["data_clause"] and values["collection_start"] is None:
        found.append(Finding(file, row, "collection_start", "", "conditional-required",
                             "collection_start is required when data_clause is y.",
                             "Give the date client-level data collection starts under this contract."))
    frequency = (values["reporting_frequency"] or "monthly").lower()
    if frequency not in REPORTING_FREQUENCIES:
        found.append(Finding(file, row, "reporting_frequency", values["reporting_frequency"], "unknown-code",
                             f"{values['reporting_frequency']!r} is not a reporting frequency cldx supports.",
                             f"Use one of: {', '.join(REPORTING_FREQUENCIES)}."))
    return found


def import_registry(engine: Engine, directory: Path) -> RegistryImport:
    """Validate and upsert the registry files in `directory`; raise NothingToImport when none are there."""
    paths = {name: directory / name for name in IMPORT_ORDER if (directory / name).is_file()}
    if not paths:
        raise NothingToImport(f"{directory} holds none of {', '.join(IMPORT_ORDER)}")
    report = RegistryImport()

    with transaction(engine) as session:
        for name, path in paths.items():
            record_type = REGISTRY_FILES[name]
            rows, result = _valid_rows(record_type, path, report)
            report.files.append(result)
            # Read after earlier files were applied, so contracts see this import's providers.
            providers, lines = ids_by_code(session, Provider), ids_by_code(session, ServiceLine)
            for row_number, values in rows:
                if name == "contracts.csv":
                    problems = _contract_findings(name, row_number, values, providers, lines)
                    if problems:
                        report.findings.extend(problems)
                        result.counts["rejected"] += 1
                        continue
                model, key, stored = _stored_values(name, values, providers, lines)
                result.counts[upsert_by_key(session, model=model, key=key, values=stored)] += 1
    return report


def _stored_values(name: str, v: dict, providers: dict[str, int], lines: dict[str, int]):
    """Map a file row onto its model's columns, filling the standard's defaults for blanks."""
    if name == "service_lines.csv":
        return ServiceLine, "code", {
            "code": v["service_code"], "name": v["name"], "description": v["description"] or "",
            "min_client_age": v["min_client_age"], "max_client_age": v["max_client_age"],
        }
    if name == "providers.csv":
        return Provider, "code", {
            "code": v["provider_code"], "name": v["name"], "region_code": v["region_code"], "ta_code": v["ta_code"],
            "sends_identity": True if v["sends_identity"] is None else v["sends_identity"],
        }
    return Contract, "contract_ref", {
        "contract_ref": v["contract_ref"],
        "provider_id": providers[v["provider_code"]],
        "service_line_id": lines[v["service_code"]],
        "period_start": v["period_start"],
        "period_end": v["period_end"],
        "funding_nzd": Decimal(v["funding_nzd"]).quantize(Decimal("0.01")),
        "data_clause": v["data_clause"],
        "collection_start": v["collection_start"],
        "wave": v["wave"],
        "reporting_frequency": (v["reporting_frequency"] or "monthly").lower(),
        "due_day": v["due_day"] or DEFAULT_DUE_DAY,
    }
