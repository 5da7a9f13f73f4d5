"""Submissions end to end: the generator's files through `submit()`, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timezone
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from cldx.cli.main import app
from cldx.generator.faults import EXPECTED_RULE
from cldx.generator.generate import generate
from cldx.ingest.queue import enqueue, work_once
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import UnknownProvider, receipt_for, submit
from cldx.standard import RECORD_TYPES
from cldx.standard.templates import workbook_bytes
from cldx.store import transaction
from cldx.identity.slk import person_key, slk581
from cldx.store.models import RECORD_MODELS, Client, ClientIdentity, Job, JobFile, QuarantinedRow, RecordHistory, Submission
from cldx.store.registry import seed_service_lines

RECEIVED = datetime(2018, 7, 15, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def clean_files(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    generate(clients=400, seed=3, fault_rate=0, out=out)
    return out


@pytest.fixture(scope="module")
def faulty_files(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faulty")
    generate(clients=400, seed=3, fault_rate=0.04, out=out)
    return out


@pytest.fixture
def registry(engine, clean_files):
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, clean_files / "registry")
    return engine


def files_of(folder: Path) -> list[SourceFile]:
    return [SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))]


def busiest(root: Path, n: int = 3) -> list[Path]:
    folders = [p for p in root.iterdir() if p.is_dir() and p.name != "registry"]
    return sorted(folders, key=lambda p: -len((p / "clients.csv").read_bytes()))[:n]


def send(engine, folder: Path, **kwargs):
    return submit(engine, provider=folder.name, files=files_of(folder), submitter="test", channel="test", received_at=RECEIVED, **kwargs)


def dump(engine) -> dict[str, list[tuple]]:
    with engine.connect() as connection:
        return {
            name: sorted(map(tuple, connection.execute(text(f"SELECT * FROM {model.__tablename__} ORDER BY id")).all()))
            for name, model in RECORD_MODELS.items()
        }


def test_clean_files_are_accepted_with_no_findings(registry, clean_files):
    for folder in busiest(clean_files):
        receipt = send(registry, folder)
        assert receipt.findings == [], receipt.findings[:3]
        assert receipt.status == "accepted"
        rows = sum(len(list(csv.DictReader(io.StringIO(f.data.decode())))) for f in files_of(folder))
        assert receipt.counts == {"new": rows, "changed": 0, "unchanged": 0, "warned": 0, "rejected": 0}


def test_the_same_files_twice_change_nothing(registry, clean_files):
    folder = busiest(clean_files, 1)[0]
    first = send(registry, folder)
    before = dump(registry)
    second = send(registry, folder)
    assert second.counts == {"new": 0, "changed": 0, "unchanged": first.counts["new"], "warned": 0, "rejected": 0}
    assert dump(registry) == before


def test_every_planted_fault_is_reported_at_its_file_row_and_field(registry, faulty_files):
    with open(faulty_files / "faults.csv", encoding="utf-8") as fh:
        planted = list(csv.DictReader(fh))
    assert {f["kind"] for f in planted} == set(EXPECTED_RULE)
    # The providers with most faults, plus whichever are needed to cover every kind: enough to
    # check every kind of fault at every layer without submitting all 325 providers.
    by_count = sorted({f["provider"] for f in planted}, key=lambda p: -sum(f["provider"] == p for f in planted))
    providers = by_count[:12]
    for kind in EXPECTED_RULE:
        if not any(f["kind"] == kind and f["provider"] in providers for f in planted):
            providers.append(next(f["provider"] for f in planted if f["kind"] == kind))
    missed = []
    for provider in providers:
        receipt = send(registry, faulty_files / provider)
        found = {(f["file"], f["row"], f["field"], f["rule"]) for f in receipt.findings}
        missed += [f for f in planted if f["provider"] == provider and (f["file"], int(f["row"]), f["field"], EXPECTED_RULE[f["kind"]]) not in found]
    assert missed == []


def test_rejected_rows_are_quarantined_and_the_rest_stored(registry, faulty_files):
    folder = busiest(faulty_files, 1)[0]
    receipt = send(registry, folder)
    assert receipt.status == "partial" and receipt.counts["rejected"] > 0
    with transaction(registry) as session:
        quarantined = session.scalar(select(func.count()).select_from(QuarantinedRow).where(QuarantinedRow.submission_id == receipt.submission_id))
        stored = sum(session.scalar(select(func.count()).select_from(m)) for m in RECORD_MODELS.values())
    assert quarantined == receipt.counts["rejected"]
    assert stored == receipt.counts["new"]


def test_strict_mode_stores_nothing_when_anything_fails(registry, faulty_files):
    folder = busiest(faulty_files, 1)[0]
    receipt = send(registry, folder, mode="all-or-nothing")
    assert receipt.status == "refused" and receipt.exit_code == 1
    assert all(rows == [] for rows in dump(registry).values())
    with transaction(registry) as session:
        assert receipt_for(session, receipt.submission_id).findings  # the report is kept


def _csv(header: str, *rows: str) -> SourceFile:
    return SourceFile("clients.csv", ("\n".join([header, *rows]) + "\n").encode("utf-8"))


CLIENT_HEADER = "action,client_ref,family_name,given_names,date_of_birth,gender,primary_ethnicity,area,notified_of_sharing_on"


def test_a_changed_record_keeps_its_history(registry, clean_files):
    provider = busiest(clean_files, 1)[0].name
    first = submit(registry, provider=provider, files=[_csv(CLIENT_HEADER, ",H-1,Ngata,Aroha,1990-05-17,21,21,100100,2017-01-02")], submitter="a", channel="test")
    second = submit(registry, provider=provider, files=[_csv(CLIENT_HEADER, ",H-1,Ngata,Aroha,1990-05-17,21,21,100200,2017-01-02")], submitter="b", channel="test")
    assert first.counts["new"] == 1 and second.counts["changed"] == 1
    with transaction(registry) as session:
        client = session.scalar(select(Client).where(Client.client_ref == "H-1"))
        history = session.scalars(select(RecordHistory).where(RecordHistory.record_id == client.id, RecordHistory.record_type == "client")).all()
    assert client.area == "100200"
    assert (client.first_submission_id, client.last_submission_id) == (first.submission_id, second.submission_id)
    assert [(h.change, h.submission_id, json.loads(h.previous)["area"]) for h in history] == [("changed", second.submission_id, "100100")]
    assert "Ngata" not in history[0].previous  # identity never copied into history


def test_an_unknown_withdrawal_is_counted_warned_once_whatever_follows_it(registry, clean_files):
    """The warned count is per row: a clients' unknown withdrawal is not counted again with the engagements after it."""
    provider = busiest(clean_files, 1)[0].name
    receipt = submit(registry, provider=provider, records_json={
        "clients": [{"client_ref": "U-1", "family_name": "Smith", "given_names": "Jo", "date_of_birth": "1988-02-03", "gender": "21",
                     "primary_ethnicity": "11", "area": "100100", "notified_of_sharing_on": "2017-01-02"},
                    {"action": "withdraw", "client_ref": "U-404"}],
        "engagements": [{"engagement_ref": "UE-1", "client_ref": "U-1", "service_code": "FS", "start_date": "2017-02-01"}],
    }, submitter="t", channel="test")
    assert [(f["sheet"], f["rule"]) for f in receipt.findings] == [("clients", "withdraw-unknown")]
    assert receipt.counts["new"] == 2 and receipt.counts["warned"] == 1, receipt.counts


def test_withdraw_action_withdraws_and_unknown_withdrawal_warns(registry, clean_files):
    provider = busiest(clean_files, 1)[0].name
    submit(registry, provider=provider, files=[_csv(CLIENT_HEADER, ",W-1,Smith,Jo,1988-02-03,21,11,100100,2017-01-02")], submitter="t", channel="test")
    receipt = submit(registry, provider=provider, files=[_csv(CLIENT_HEADER, "withdraw,W-1,,,,,,,", "withdraw,W-404,,,,,,,")], submitter="t", channel="test")
    assert receipt.counts["changed"] == 1
    assert [(f["row"], f["rule"]) for f in receipt.findings] == [(3, "withdraw-unknown")]
    with transaction(registry) as session:
        assert session.scalar(select(Client.withdrawn_at).where(Client.client_ref == "W-1")) is not None
    # The next send reads the withdrawal time back (as a time: it was once read as a number and failed).
    again = submit(registry, provider=provider, files=[_csv(CLIENT_HEADER, ",W-1,Smith,Jo,1988-02-03,21,11,100100,2017-01-02")], submitter="t", channel="test")
    assert again.counts["changed"] == 1  # reinstated


def test_identity_is_kept_apart_and_declined_identity_not_stored(registry, clean_files, vault):
    provider = busiest(clean_files, 1)[0].name
    header = CLIENT_HEADER + ",identity_consent"
    receipt = submit(registry, provider=provider, files=[_csv(header,
        ",I-1,Pōmare,Hēmi,1985-12-19,11,21,100100,2017-01-02,y",
        ",I-2,Hidden,Person,1986-01-01,21,11,100100,2017-01-02,n")], submitter="t", channel="test")
    assert [f["rule"] for f in receipt.findings] == ["identity-declined"]
    with transaction(registry) as session:
        sealed = {i.client_ref: (i.family_name, i.date_of_birth) for i in session.scalars(select(ClientIdentity))}
        clients = {c.client_ref: (c.birth_year_month, c.person_key) for c in session.scalars(select(Client))}
    opened = {ref: (vault.keys.open(name, "client_identity.family_name"), vault.keys.open(born, "client_identity.date_of_birth"))
              for ref, (name, born) in sealed.items()}
    assert opened == {"I-1": ("Pōmare", "1985-12-19")}
    assert all(value.startswith("enc1:") for pair in sealed.values() for value in pair)
    assert clients["I-1"] == ("1985-12", person_key(slk581("Pōmare", "Hēmi", date(1985, 12, 19), "11"), vault.linkage_secret))
    assert clients["I-2"] == (None, None)  # declined: linked only by the provider's reference


def test_excel_workbook_with_serial_dates_and_stripped_zeros_is_read(registry, clean_files):
    provider = busiest(clean_files, 1)[0].name
    book = openpyxl.load_workbook(io.BytesIO(workbook_bytes()))
    sheet = book["clients"]
    header = [c.value for c in sheet[1]]
    row = {"client_ref": "X-1", "family_name": "Tūroa", "given_names": "Mere", "date_of_birth": 33000, "gender": 21,
           "primary_ethnicity": 21, "iwi_1": 402, "area": 1, "notified_of_sharing_on": datetime(2017, 1, 2)}
    for column, name in enumerate(header, start=1):
        sheet.cell(row=2, column=column, value=row.get(name))
    buffer = io.BytesIO()
    book.save(buffer)
    receipt = submit(registry, provider=provider, files=[SourceFile("monthly.xlsx", buffer.getvalue())], submitter="t", channel="test")
    assert receipt.counts["new"] == 1, receipt.findings
    assert {(f["sheet"], f["field"], f["rule"]) for f in receipt.findings} == {
        ("clients", "iwi_1", "leading-zeros-restored"), ("clients", "area", "leading-zeros-restored")}
    with transaction(registry) as session:
        client = session.scalar(select(Client).where(Client.client_ref == "X-1"))
        assert (client.area, client.iwi_1, client.birth_year_month) == ("001", "0402", "1990-05")


def test_unknown_provider_reads_nothing(registry):
    with pytest.raises(UnknownProvider):
        submit(registry, provider="NOPE", files=[_csv(CLIENT_HEADER)], submitter="t", channel="test")


def test_queued_submission_is_finished_by_the_worker(registry, clean_files):
    folder = busiest(clean_files, 1)[0]
    submission_id = enqueue(registry, provider=folder.name, files=files_of(folder), period="2018-06", mode="partial", submitter="t", channel="api")
    with transaction(registry) as session:
        assert session.get(Submission, submission_id).status == "queued"
    assert work_once(registry) is True
    assert work_once(registry) is False
    with transaction(registry) as session:
        receipt = receipt_for(session, submission_id)
        job = session.scalar(select(Job).where(Job.submission_id == submission_id))
        leftover = session.scalar(select(func.count()).select_from(JobFile))
    assert receipt.status == "accepted" and receipt.counts["new"] > 0
    assert job.status == "done" and leftover == 0


def test_cli_submit_exit_codes_and_json_receipt(migrated_url, clean_files, monkeypatch, tmp_path):
    monkeypatch.setenv("CLDX_DATABASE_URL", migrated_url)
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    assert runner.invoke(app, ["registry", "import", str(clean_files / "registry")]).exit_code == 0
    folder = busiest(clean_files, 1)[0]
    ok = runner.invoke(app, ["submit", "--provider", folder.name, "--period", "2018-06", "--json", *map(str, sorted(folder.glob("*.csv")))])
    assert ok.exit_code == 0, ok.output
    receipt = json.loads(ok.output)
    assert set(receipt) >= {"submission_id", "provider", "period", "status", "counts", "findings"}
    assert set(receipt["counts"]) == {"new", "changed", "unchanged", "warned", "rejected"}
    bad = tmp_path / "clients.csv"
    bad.write_text(CLIENT_HEADER + "\n,B-1,A,B,31/02/1990,21,21,100100,2017-01-02\n", encoding="utf-8")
    failed = runner.invoke(app, ["submit", "--provider", folder.name, "--json", str(bad)])
    assert failed.exit_code == 1
    finding = json.loads(failed.output)["findings"][0]
    assert {k: finding[k] for k in ("file", "row", "field", "rule", "severity")} == {
        "file": "clients.csv", "row": 2, "field": "date_of_birth", "rule": "impossible-date", "severity": "error"}
    assert finding["value"] == "3***"  # dates of birth are masked in findings
    assert runner.invoke(app, ["submit", "--provider", "NOPE", str(bad)]).exit_code == 2
    assert runner.invoke(app, ["submit", "--provider", folder.name, str(tmp_path / "missing.csv")]).exit_code == 2
    assert runner.invoke(app, ["submit", "--provider", folder.name, "--period", "2018-13", str(bad)]).exit_code == 2


def test_a_second_file_of_the_same_name_is_reported_not_mixed_in(registry, clean_files):
    provider = busiest(clean_files, 1)[0].name
    first = _csv(CLIENT_HEADER, ",D-1,Ngata,Aroha,1990-05-17,21,21,100100,2017-01-02")
    second = _csv(CLIENT_HEADER, ",D-2,Smith,Jo,31/02/1990,21,21,100100,2017-01-02")
    receipt = submit(registry, provider=provider, files=[first, second], submitter="t", channel="test")
    assert receipt.counts["new"] == 1
    assert [(f["file"], f["rule"]) for f in receipt.findings] == [("clients.csv", "duplicate-file")]
