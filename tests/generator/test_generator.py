"""The generator: reproducible, true to the brief's roll-out, realistic, and honest about its faults."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cldx.cli.main import app
from cldx.generator.faults import EXPECTED_RULE
from cldx.generator.generate import generate
from cldx.ingest.registry import import_registry
from cldx.ingest.rows import check_field
from cldx.standard import RECORD_TYPES, code_set
from cldx.standard.values import ValueProblem, parse_date

N = 2000


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    generate(clients=N, seed=7, fault_rate=0, out=out)
    return out


@pytest.fixture(scope="module")
def faulty(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faulty")
    generate(clients=N, seed=7, fault_rate=0.03, out=out)
    return out


def provider_folders(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and p.name != "registry")


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_writes_byte_identical_files(clean, tmp_path):
    # Another process with another hash seed, as a second run of the command would be: set and
    # dict-of-str iteration order changes with PYTHONHASHSEED, so an in-process rerun cannot catch it.
    again = tmp_path / "again"
    code = f"from pathlib import Path; from cldx.generator.generate import generate; generate(clients={N}, seed=7, fault_rate=0, out=Path({str(again)!r}))"
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True)
    assert digest(again) == digest(clean)


def test_another_seed_writes_other_files(clean, tmp_path):
    other = tmp_path / "other"
    generate(clients=N, seed=8, fault_rate=0, out=other)
    assert digest(other)["P0001/clients.csv"] != digest(clean)["P0001/clients.csv"]


def test_each_provider_folder_holds_only_its_six_files(clean):
    expected = {rt.file_name for rt in RECORD_TYPES.values()}
    for folder in provider_folders(clean):
        assert {p.name for p in folder.iterdir()} == expected


def test_wave_1_is_the_brief_table_and_23_percent_of_spend(clean):
    contracts = read(clean / "registry" / "contracts.csv")
    wave1 = [c for c in contracts if c["wave"] == "1"]
    by_line = defaultdict(lambda: [0, Decimal(0)])
    for c in wave1:
        by_line[c["service_code"]][0] += 1
        by_line[c["service_code"]][1] += Decimal(c["funding_nzd"])
    assert dict(by_line) == {
        "FS": [32, Decimal("36720000.00")],
        "ES": [1, Decimal("1210000.00")],
        "SWIS": [28, Decimal("21450000.00")],
        "YWSS": [6, Decimal("2310000.00")],
        "MASS": [7, Decimal("2010000.00")],
        "STAND": [1, Decimal("13900000.00")],
    }
    assert len({c["provider_code"] for c in wave1}) == 75
    assert all(c["collection_start"] == "2016-07-01" for c in wave1)

    wave2 = [c for c in contracts if c["wave"] == "2"]
    wave2_total = sum(Decimal(c["funding_nzd"]) for c in wave2)
    assert wave2_total == Decimal("260000000.00")
    new_providers = {c["provider_code"] for c in wave2} - {c["provider_code"] for c in wave1}
    assert 240 <= len(new_providers) <= 260
    assert all("2016-07-01" < c["collection_start"] <= "2017-07-01" for c in wave2)
    share = Decimal("77600000") / (Decimal("77600000") + wave2_total)
    assert round(share * 100) == 23


def test_every_wave_1_provider_has_at_least_20_clients(clean):
    wave1 = {c["provider_code"] for c in read(clean / "registry" / "contracts.csv") if c["wave"] == "1"}
    counts = {p: len(read(clean / p / "clients.csv")) for p in wave1}
    assert min(counts.values()) >= 20, sorted(counts.items(), key=lambda kv: kv[1])[:3]


def test_total_clients_is_n_persons_plus_their_second_providers(clean):
    rows = sum(len(read(f / "clients.csv")) for f in provider_folders(clean))
    assert N < rows < N * 1.1


def _person(row: dict[str, str]) -> tuple | None:
    if not row["family_name"]:
        return None
    return row["family_name"], row["given_names"], parse_date(row["date_of_birth"]), row["gender"][:1]


def test_some_clients_are_seen_by_two_providers_and_two_service_lines(clean):
    seen: dict[tuple, set[str]] = defaultdict(set)
    lines: dict[tuple, set[str]] = defaultdict(set)
    for folder in provider_folders(clean):
        service_of = {e["client_ref"]: e["service_code"] for e in read(folder / "engagements.csv")}
        for row in read(folder / "clients.csv"):
            if (person := _person(row)) is not None:
                seen[person].add(folder.name)
                lines[person].add(service_of[row["client_ref"]])
    shared = [p for p, providers in seen.items() if len(providers) > 1]
    assert len(shared) >= N * 0.01
    assert any(len(lines[p]) > 1 for p in shared), "no client crosses service lines"


def test_names_carry_macrons_hyphens_and_apostrophes(clean):
    names = " ".join(r["family_name"] + " " + r["given_names"] for f in provider_folders(clean) for r in read(f / "clients.csv"))
    assert any(ch in names for ch in "āēīōū")
    assert "-" in names and "'" in names


def test_clean_files_pass_every_field_rule_and_resolve_every_reference(clean):
    for folder in provider_folders(clean):
        refs: dict[str, set[str]] = {}
        for rt in RECORD_TYPES.values():
            rows = read(folder / rt.file_name)
            assert list(rows[0].keys()) if rows else True
            keys = Counter(tuple(r[k] for k in rt.key) for r in rows)
            assert max(keys.values(), default=1) == 1, f"{folder.name}/{rt.file_name} repeats a key"
            for n, row in enumerate(rows, start=2):
                for spec in rt.fields:
                    _, found = check_field(spec, row[spec.name], file=rt.file_name, row=n)
                    assert found == [], f"{folder.name}/{rt.file_name} row {n}: {found}"
                for reference in rt.references:
                    assert row[reference.field] in refs[reference.record_type], f"{folder.name}/{rt.file_name} row {n}"
            refs[rt.name] = {r[rt.key[0]] for r in rows}


def test_engagements_end_after_they_start_and_scores_fit_their_instrument(clean):
    from cldx.standard import load_instruments

    instruments = load_instruments()
    for folder in provider_folders(clean)[:40]:
        for e in read(folder / "engagements.csv"):
            if e["end_date"]:
                assert parse_date(e["end_date"]) >= parse_date(e["start_date"])
                assert e["end_reason"]
        for a in read(folder / "assessments.csv"):
            domain = instruments[a["instrument"]].domains[a["domain"]]
            assert domain.min_score <= float(a["score"]) <= domain.max_score


def _is_faulty(kind: str, value: str, field: str, record: str, row: dict, rows: list[dict], index: int, clients: set[str]) -> bool:
    spec = RECORD_TYPES[record].field(field)
    if kind == "invalid-code":
        return value != "" and (spec.code_set is None or value not in code_set(spec.code_set))
    if kind in ("impossible-date", "month-first-date"):
        try:
            parse_date(value)
        except ValueProblem as problem:
            return problem.rule == "impossible-date"
        return False
    if kind == "blank-required":
        return value == "" and spec.required
    if kind == "missing-notification":
        return value == ""
    if kind == "unknown-client":
        return value not in clients
    if kind == "end-before-start":
        return parse_date(value) < parse_date(row["start_date"])
    if kind == "duplicate-reference":
        key = RECORD_TYPES[record].key
        return any(all(r[k] == row[k] for k in key) for r in rows[:index])
    if kind == "stripped-leading-zeros":
        return code_set(spec.code_set).restore_leading_zeros(value, spec.levels) is not None
    raise AssertionError(kind)


def test_planted_fault_list_matches_the_files(faulty):
    faults = read(faulty / "faults.csv")
    assert len(faults) > 100
    assert {f["kind"] for f in faults} == set(EXPECTED_RULE)
    by_file = defaultdict(list)
    for f in faults:
        by_file[(f["provider"], f["file"])].append(f)
    for (provider, file), planted in by_file.items():
        record = next(rt.name for rt in RECORD_TYPES.values() if rt.file_name == file)
        rows = read(faulty / provider / file)
        clients = {r["client_ref"] for r in read(faulty / provider / "clients.csv")}
        assert len({int(f["row"]) for f in planted}) == len(planted), "one fault per row"
        for f in planted:
            index = int(f["row"]) - 2
            row = rows[index]
            assert _is_faulty(f["kind"], row[f["field"]], f["field"], record, row, rows, index, clients), f


def test_fault_rate_is_about_the_share_asked_for(faulty, clean):
    rows = sum(len(read(f / rt.file_name)) for f in provider_folders(clean) for rt in RECORD_TYPES.values())
    assert 0.02 < len(read(faulty / "faults.csv")) / rows < 0.035


def test_schedule_covers_each_provider_from_its_collection_start(clean):
    contracts = read(clean / "registry" / "contracts.csv")
    first = {}
    for c in contracts:
        first[c["provider_code"]] = min(first.get(c["provider_code"], c["collection_start"]), c["collection_start"])
    schedule = read(clean / "registry" / "schedule.csv")
    periods = defaultdict(list)
    for s in schedule:
        periods[s["provider"]].append(s)
    assert set(periods) == set(first)
    for provider, rows in periods.items():
        assert rows[0]["period"] == first[provider][:7]
        assert rows[-1]["period"] == "2018-06"
        for s in rows:
            if s["received"]:
                assert s["received"] > s["period"] + "-31"
    received = [s["received"] for s in schedule]
    assert "" in received, "some months are missed"
    late = [s for s in schedule if s["received"] and s["received"][8:] > "20" and s["received"][:7] > s["period"]]
    assert late, "some submissions are late"


def test_generated_registry_imports_cleanly(clean, engine):
    report = import_registry(engine, clean / "registry")
    assert report.errors == []
    assert {f.file: f.counts["new"] + f.counts["unchanged"] for f in report.files} == {
        "service_lines.csv": 14, "providers.csv": 325, "contracts.csv": 335,
    }


def test_provider_effects_name_some_better_and_some_worse(clean):
    planted = Counter(r["planted"] for r in read(clean / "provider_effects.csv"))
    assert planted["better"] >= 5 and planted["worse"] >= 5


def test_cli_generate_writes_the_layout(tmp_path):
    result = CliRunner().invoke(app, ["generate", "--clients", "300", "--seed", "2", "--fault-rate", "0.05", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "registry" / "schedule.csv").exists() and (tmp_path / "faults.csv").exists()
    assert (tmp_path / "P0001" / "clients.csv").exists()


def test_excel_copies_hold_the_same_rows_as_the_csv_files(tmp_path):
    import openpyxl

    generate(clients=300, seed=4, fault_rate=0, out=tmp_path, excel=True, only={"P0001", "P0002"})
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["P0001", "P0002", "excel", "registry"]
    folder = tmp_path / "P0001"
    book = openpyxl.load_workbook(tmp_path / "excel" / f"{folder.name}.xlsx", read_only=True)
    for rt in RECORD_TYPES.values():
        rows = read(folder / rt.file_name)
        sheet_rows = [r for r in book[rt.sheet_name].iter_rows(min_row=2, values_only=True) if any(r)]
        assert len(sheet_rows) == len(rows)
        if rows:
            first = {k: v for k, v in zip(rt.columns, sheet_rows[0])}
            assert {k: (first[k] or "") for k in rt.columns} == rows[0]
    assert {p.name for p in folder.iterdir()} == {rt.file_name for rt in RECORD_TYPES.values()}
