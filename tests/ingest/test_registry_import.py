"""Registry import: bad rows reported by file, row and field; the same files twice change nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cldx.cli.main import app
from cldx.ingest.registry import NothingToImport, import_registry
from cldx.store import transaction
from cldx.store.models import Contract, Provider, ServiceLine
from cldx.store.registry import seed_service_lines

PROVIDERS = """provider_code,name,region_code,ta_code,sends_identity
P0001,Te Whare Tiaki Trust,01,001,y
P0002,Ōtautahi Family Services,13,060,
P0003,Aotearoa Youth Trust,9,,y
"""
SERVICE_LINES = """service_code,name,description,min_client_age,max_client_age
HOME,Home Support,Household help,18,99
"""
CONTRACTS = """contract_ref,provider_code,service_code,period_start,period_end,funding_nzd,data_clause,collection_start,wave,reporting_frequency,due_day
CIS-0001,P0001,FS,2016-07-01,2018-06-30,1147500.00,y,2016-07-01,1,monthly,20
CIS-0002,P0002,SWIS,01/07/2016,30/06/2018,"765,000",y,01/07/2016,1,,
CIS-0003,P0002,HOME,2017-07-01,2018-06-30,50000,n,,2,,
"""


def write(directory: Path, **files: str) -> Path:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / f"{name}.csv").write_text(text, encoding="utf-8")
    return directory


@pytest.fixture
def seeded(engine):
    with transaction(engine) as session:
        seed_service_lines(session)
    return engine


def counts(engine) -> dict[str, int]:
    with transaction(engine) as session:
        return {m.__name__: session.scalar(select(func.count()).select_from(m)) for m in (Provider, ServiceLine, Contract)}


def test_clean_registry_imports_and_twice_changes_nothing(seeded, tmp_path):
    folder = write(tmp_path / "registry", providers=PROVIDERS, service_lines=SERVICE_LINES, contracts=CONTRACTS)
    first = import_registry(seeded, folder)
    assert first.findings == [] or all(not f.is_error for f in first.findings), first.findings
    assert {f.file: f.counts["new"] for f in first.files} == {"service_lines.csv": 1, "providers.csv": 3, "contracts.csv": 3}
    after_first = counts(seeded)

    second = import_registry(seeded, folder)
    assert all(f.counts["new"] == f.counts["changed"] == 0 for f in second.files)
    assert sum(f.counts["unchanged"] for f in second.files) == 7
    assert counts(seeded) == after_first


def test_imported_values_are_parsed_with_defaults(seeded, tmp_path):
    import_registry(seeded, write(tmp_path / "r", providers=PROVIDERS, service_lines=SERVICE_LINES, contracts=CONTRACTS))
    with transaction(seeded) as session:
        cis2 = session.scalar(select(Contract).where(Contract.contract_ref == "CIS-0002"))
        assert cis2.funding_nzd == Decimal("765000.00")
        assert cis2.period_start.isoformat() == "2016-07-01"
        assert (cis2.reporting_frequency, cis2.due_day) == ("monthly", 20)
        p3 = session.scalar(select(Provider).where(Provider.code == "P0003"))
        assert p3.region_code == "09"  # Excel-stripped leading zero restored
        assert session.scalar(select(Provider.sends_identity).where(Provider.code == "P0002")) is True


def test_changed_row_is_updated_not_duplicated(seeded, tmp_path):
    folder = write(tmp_path / "r", providers=PROVIDERS)
    import_registry(seeded, folder)
    write(folder, providers=PROVIDERS.replace("Te Whare Tiaki Trust", "Te Whare Tiaki Trust (renamed)"))
    report = import_registry(seeded, folder)
    assert report.files[0].counts["changed"] == 1 and report.files[0].counts["unchanged"] == 2
    assert counts(seeded)["Provider"] == 3


def test_bad_rows_are_reported_by_file_row_and_field(seeded, tmp_path):
    contracts = CONTRACTS + (
        "CIS-0004,P9999,FS,2016-07-01,2018-06-30,100,y,2016-07-01,1,,\n"  # row 5: unknown provider
        "CIS-0005,P0001,FS,2018-07-01,2016-06-30,100,y,2016-07-01,1,,\n"  # row 6: end before start
        "CIS-0006,P0001,FS,2016-07-01,2018-06-30,lots,y,2016-07-01,1,,\n"  # row 7: not a number
        "CIS-0007,P0001,FS,07/31/2016,2018-06-30,100,y,2016-07-01,1,,\n"  # row 8: month-first date
        "CIS-0001,P0001,FS,2016-07-01,2018-06-30,100,y,2016-07-01,1,,\n"  # row 9: duplicate key
        "CIS-0008,P0001,FS,2016-07-01,2018-06-30,100,y,,1,,\n"  # row 10: collection start missing
    )
    providers = PROVIDERS + "P0004,,01,,\n" + "P0005,Bad Region Trust,77,,\n"  # rows 5 and 6
    report = import_registry(seeded, write(tmp_path / "r", providers=providers, contracts=contracts))
    got = {(f.file, f.row, f.field, f.rule) for f in report.errors}
    assert got == {
        ("providers.csv", 5, "name", "required"),
        ("providers.csv", 6, "region_code", "unknown-code"),
        ("contracts.csv", 4, "service_code", "unknown-reference"),  # HOME not imported in this run
        ("contracts.csv", 5, "provider_code", "unknown-reference"),
        ("contracts.csv", 6, "period_end", "date-order"),
        ("contracts.csv", 7, "funding_nzd", "not-a-number"),
        ("contracts.csv", 8, "period_start", "impossible-date"),
        ("contracts.csv", 9, "contract_ref", "duplicate-key"),
        ("contracts.csv", 10, "collection_start", "conditional-required"),
    }
    assert all(f.message and f.fix for f in report.findings)
    # The good rows still went in.
    assert counts(seeded)["Provider"] == 3 and counts(seeded)["Contract"] == 2


def test_missing_required_column_rejects_the_file(seeded, tmp_path):
    report = import_registry(seeded, write(tmp_path / "r", providers="provider_code,region_code\nP1,01\n"))
    assert [(f.rule, f.field) for f in report.errors] == [("missing-column", "name")]
    assert counts(seeded)["Provider"] == 0


def test_folder_without_registry_files_is_nothing_to_import(seeded, tmp_path):
    with pytest.raises(NothingToImport):
        import_registry(seeded, tmp_path)


def test_cli_exit_codes_and_json_report(migrated_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CLDX_DATABASE_URL", migrated_url)
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    folder = write(tmp_path / "r", providers=PROVIDERS, service_lines=SERVICE_LINES, contracts=CONTRACTS)
    ok = runner.invoke(app, ["registry", "import", str(folder), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["files"][1] == {"file": "providers.csv", "new": 3, "changed": 0, "unchanged": 0, "rejected": 0}
    write(folder, providers=PROVIDERS + "P0009,,01,,\n")
    assert runner.invoke(app, ["registry", "import", str(folder)]).exit_code == 1
    assert runner.invoke(app, ["registry", "import", str(tmp_path / "missing")]).exit_code == 2
