"""The research extract: the two-person flow, the extract's content, k-anonymity (cross-checked by
pycanon), dictionary, manifest, and the scan for direct identifiers; on SQLite and PostgreSQL.

The flow runs on an empty migrated store of each backend; the extracts are made from the
evidence store (3,000 generated client persons submitted through `submit()`), read through the
same analytic layer the reports use.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import select

from cldx.access.audit import verify
from cldx.analysis.reports import Period
from cldx.disclosure.kanonymity import ALL, equivalence_class_sizes
from cldx.export import research
from cldx.export.research import ExtractError, build_extract, decide_extract, produce_extract, request_extract
from cldx.store import transaction
from cldx.store.models import AuditEvent, ResearchExtract

PURPOSE = "How Family Start outcomes differ by region, for the ministry's 2017 evaluation."
QIS = ["age_band", "gender", "ethnicity", "iwi", "area"]
TABLE_COLUMNS = {
    "clients": ["person", "age_band", "gender", "ethnicity", "iwi", "area"],
    "engagements": ["engagement", "person", "service_line", "start", "end", "end_reason", "sessions_recorded",
                    "sessions_attended", "completed"],
    "assessments": ["engagement", "instrument", "domain", "pre_score", "pre_assessed", "post_score", "post_assessed"],
    "outcomes": ["engagement", "dimension", "measure", "baseline", "result", "better_off", "measured"],
}


def ask(engine, *, actor="ana", user_id=1, period="2016-07:2017-06", purpose=PURPOSE, **options) -> str:
    with transaction(engine) as session:
        return request_extract(session, actor=actor, user_id=user_id, period=period, purpose=purpose, **options).reference


def decide(engine, reference, *, approve=True, note="", actor="po", user_id=2):
    with transaction(engine) as session:
        return decide_extract(session, reference, approve=approve, note=note, actor=actor, user_id=user_id).status


def status_of(engine, reference) -> str:
    with transaction(engine) as session:
        return session.scalar(select(ResearchExtract.status).where(ResearchExtract.reference == reference))


def audit_entries(engine, target: str) -> list[tuple[str, str]]:
    with transaction(engine) as session:
        return [(e.action, e.actor) for e in session.scalars(select(AuditEvent).where(AuditEvent.target == target).order_by(AuditEvent.id))]


# --- The flow -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "field"), [
    ({"period": "2016-07"}, "period"),
    ({"period": "2016-07:"}, "period"),
    ({"period": "2017-06:2016-07"}, "period"),
    ({"period": "2016-13:2017-01"}, "period"),
    ({"period": "2090-01:2090-12"}, "period"),
    ({"purpose": "research"}, "purpose"),
    ({"purpose": "x" * 2001}, "purpose"),
    ({"k": 4}, "k"),
    ({"k": 51}, "k"),
    ({"k": True}, "k"),
    ({"date_precision": "day"}, "date_precision"),
])
def test_a_request_that_cannot_be_taken_says_which_field(engine, options, field) -> None:
    with pytest.raises(ExtractError) as caught:
        ask(engine, **options)
    assert caught.value.kind == "invalid" and caught.value.field == field
    with transaction(engine) as session:
        assert session.scalar(select(ResearchExtract.id)) is None
        assert session.scalar(select(AuditEvent.id).where(AuditEvent.action == "research-extract-requested")) is None


def test_the_requester_cannot_approve_their_own_request_even_as_a_privacy_officer(engine) -> None:
    reference = ask(engine)
    assert reference == f"RX-{date.today().year}-0001"
    for actor, user_id in (("ana", 1), ("ana", None)):  # by user id, and by name where no id is known
        with pytest.raises(ExtractError) as caught:
            decide(engine, reference, actor=actor, user_id=user_id)
        assert caught.value.kind == "forbidden" and "another privacy officer" in str(caught.value)
    assert status_of(engine, reference) == "requested"
    assert audit_entries(engine, reference) == [("research-extract-requested", "ana")]


def test_another_officer_decides_once_and_a_refusal_says_why(engine, tmp_path) -> None:
    approved, refused = ask(engine), ask(engine)
    assert approved != refused
    assert decide(engine, approved) == "approved"
    with pytest.raises(ExtractError) as caught:
        decide(engine, approved, approve=False, note="changed my mind", actor="other", user_id=3)
    assert caught.value.kind == "conflict"
    with pytest.raises(ExtractError) as caught:
        decide(engine, refused, approve=False, note="  ")
    assert caught.value.field == "note"
    assert decide(engine, refused, approve=False, note="The purpose does not need iwi; ask again without it.") == "refused"
    with pytest.raises(ExtractError) as caught:
        produce_extract(engine, refused, tmp_path / "refused", actor="ana", analytic_dir=tmp_path / "layer")
    assert caught.value.kind == "conflict" and "was refused" in str(caught.value)
    assert not (tmp_path / "refused").exists()
    assert audit_entries(engine, approved) == [("research-extract-requested", "ana"), ("research-extract-decided", "po")]
    with transaction(engine) as session:
        assert verify(session).ok


def test_an_unknown_reference_is_not_found(engine, tmp_path) -> None:
    for reference in ("RX-2026-9999", "nonsense", ""):
        with pytest.raises(ExtractError) as caught:
            decide(engine, reference)
        assert caught.value.kind == "not-found"


def test_an_approved_extract_of_an_empty_store_is_made_once(engine, tmp_path) -> None:
    reference = ask(engine)
    decide(engine, reference)
    with pytest.raises(ExtractError) as caught:
        produce_extract(engine, reference, tmp_path / "x", actor="someone", user_id=9, analytic_dir=tmp_path / "layer",
                        only_requester=True)
    assert caught.value.kind == "forbidden"
    produced = produce_extract(engine, reference, tmp_path / "x", actor="ana", user_id=1, analytic_dir=tmp_path / "layer",
                               only_requester=True)
    assert produced.manifest["rows"] == {"clients": 0, "engagements": 0, "assessments": 0, "outcomes": 0}
    assert pl.read_parquet(tmp_path / "x" / "clients.parquet").columns == TABLE_COLUMNS["clients"]
    with pytest.raises(ExtractError) as caught:
        produce_extract(engine, reference, tmp_path / "y", actor="ana", analytic_dir=tmp_path / "layer")
    assert caught.value.kind == "conflict" and "produced already" in str(caught.value)
    assert not (tmp_path / "y").exists()
    assert status_of(engine, reference) == "produced"
    assert [a for a, _ in audit_entries(engine, f"research:{reference}")] == ["export"]


def test_a_failed_write_leaves_the_extract_approved_and_nothing_behind(engine, tmp_path, monkeypatch) -> None:
    reference = ask(engine)
    decide(engine, reference)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(research, "write_extract", broken)
    with pytest.raises(OSError):
        produce_extract(engine, reference, tmp_path / "x", actor="ana", analytic_dir=tmp_path / "layer")
    assert status_of(engine, reference) == "approved"
    assert list(tmp_path.glob(f".{reference}-*")) == [] and not (tmp_path / "x").exists()
    assert audit_entries(engine, f"research:{reference}") == []


def test_an_extract_is_not_written_over_a_folder_with_files(engine, tmp_path) -> None:
    reference = ask(engine)
    decide(engine, reference)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ExtractError):
        produce_extract(engine, reference, tmp_path / "full", actor="ana", analytic_dir=tmp_path / "layer")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert status_of(engine, reference) == "approved"


# --- The extract, from the evidence store ----------------------------------------------------------------


@pytest.fixture
def produced(evidence, tmp_path):
    """An extract of the roll-out's first year, asked, approved by someone else and produced."""
    reference = ask(evidence.engine)
    decide(evidence.engine, reference)
    out = tmp_path / reference
    return produce_extract(evidence.engine, reference, out, actor="ana", analytic_dir=evidence.layer_dir), evidence


def test_the_extract_is_k_anonymous_per_pycanon(produced) -> None:
    extract, _ = produced
    clients = pl.read_parquet(extract.directory / "clients.parquet")
    assert clients.height > 500
    sizes = equivalence_class_sizes(clients, QIS)
    assert sizes["size"].min() >= 5 and sizes["size"].sum() == clients.height
    anonymity = pytest.importorskip("pycanon.anonymity", reason="pycanon (installed with --no-deps) cross-checks k")
    import pandas as pd

    # pycanon groups on values; a missing value is a value of its own (as k_anonymise counts it).
    as_pandas = pd.DataFrame(clients.select(pl.col(c).fill_null("none") for c in QIS).to_dict(as_series=False))
    assert anonymity.k_anonymity(as_pandas, QIS) >= 5
    assert anonymity.k_anonymity(as_pandas, QIS) == extract.summary["smallest_equivalence_class"]
    # The CSV holds the same rows as the Parquet.
    as_csv = pl.read_csv(extract.directory / "clients.csv", infer_schema=False)
    assert as_csv.columns == clients.columns and as_csv.height == clients.height
    assert anonymity.k_anonymity(pd.DataFrame(as_csv.select(pl.col(c).fill_null("none") for c in QIS).to_dict(as_series=False)), QIS) >= 5


def test_no_direct_identifier_is_in_the_extract(produced, scan, identifiers_of) -> None:
    extract, evidence = produced
    identifiers = identifiers_of(evidence.files, evidence.engine)
    assert len(identifiers.names) > 100 and len(identifiers.long_values) > 3000
    assert scan(extract.directory, identifiers) == []


def test_the_scan_finds_a_planted_identifier(produced, scan, identifiers_of, tmp_path) -> None:
    """The scan is not vacuous: a name, a date of birth, a reference or an SLK put into a copy is found."""
    extract, evidence = produced
    identifiers = identifiers_of(evidence.files, evidence.engine)
    clients = pl.read_parquet(extract.directory / "clients.parquet")
    name = sorted(identifiers.names)[0].title()
    reference = next(v for v in sorted(identifiers.long_values) if v.startswith("P0001-"))
    born = next(v for v in sorted(identifiers.long_values) if len(v) == 10 and v[4] == "-")
    for planted in (name, reference, born):
        copy = tmp_path / f"copy-{planted}"
        copy.mkdir()
        clients.with_columns(pl.lit(planted).alias("age_band")).write_parquet(copy / "clients.parquet")
        assert any(planted in problem for problem in scan(copy, identifiers)), planted


def test_the_tables_hold_only_what_the_dictionary_describes(produced) -> None:
    extract, _ = produced
    dictionary = json.loads((extract.directory / "data_dictionary.json").read_text())
    described = {t["name"]: [c["name"] for c in t["columns"]] for t in dictionary["tables"]}
    assert described == TABLE_COLUMNS
    for name, columns in TABLE_COLUMNS.items():
        frame = pl.read_parquet(extract.directory / f"{name}.parquet")
        assert frame.columns == columns
        assert frame.height == extract.manifest["rows"][name] == next(t["rows"] for t in dictionary["tables"] if t["name"] == name)
        assert pl.read_csv(extract.directory / f"{name}.csv", infer_schema=False).height == frame.height
    markdown = (extract.directory / "data_dictionary.md").read_text()
    for name, columns in TABLE_COLUMNS.items():
        assert f"## {name} (" in markdown
        for column in columns:
            assert f"| {column} |" in markdown
    # Every code present has its label from the classification.
    gender = next(c for c in dictionary["tables"][0]["columns"] if c["name"] == "gender")
    assert gender["codes"] and all(code["label"] for code in gender["codes"])


def test_the_manifest_checksums_every_file_and_the_store_keeps_its_own(produced) -> None:
    extract, evidence = produced
    manifest = json.loads((extract.directory / "manifest.json").read_text())
    names = {entry["name"] for entry in manifest["files"]}
    assert names == {f"{t}.{x}" for t in TABLE_COLUMNS for x in ("parquet", "csv")} | {
        "data_dictionary.json", "data_dictionary.md", "disclosure_report.json", "disclosure_report.md"}
    assert {p.name for p in extract.directory.iterdir()} == names | {"manifest.json"}
    for entry in manifest["files"]:
        data = (extract.directory / entry["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
    assert manifest["purpose"] == PURPOSE and manifest["approved_by"] == "po" and manifest["requested_by"] == "ana"
    assert manifest["period"] == {"from": "2016-07-01", "to": "2017-06-30"}
    stored = hashlib.sha256((extract.directory / "manifest.json").read_bytes()).hexdigest()
    with transaction(evidence.engine) as session:
        row = session.scalar(select(ResearchExtract).where(ResearchExtract.reference == extract.reference))
        assert row.status == "produced" and row.manifest_sha256 == stored
        event = session.scalar(select(AuditEvent).where(AuditEvent.target == f"research:{extract.reference}"))
        assert event.action == "export" and json.loads(event.detail)["manifest_sha256"] == stored
    assert oct(extract.directory.stat().st_mode & 0o777) == "0o700"


def test_the_disclosure_report_says_what_was_generalised_and_suppressed(produced) -> None:
    extract, _ = produced
    report = json.loads((extract.directory / "disclosure_report.json").read_text())
    clients = pl.read_parquet(extract.directory / "clients.parquet")
    assert report["k"] == 5 and report["smallest_equivalence_class"] >= 5
    assert report["people_released"] == clients.height == report["people_in_period"] - report["people_removed"]
    # Local suppression's stars, in the columns not generalised all the way to `*`.
    partly = [q["column"] for q in report["quasi_identifiers"] if q["level"] < q["height"]]
    assert report["cells_suppressed"] == sum(int((clients[c] == ALL).sum()) for c in partly)
    assert [q["column"] for q in report["quasi_identifiers"]] == QIS
    markdown = (extract.directory / "disclosure_report.md").read_text()
    for q in report["quasi_identifiers"]:
        assert f"| {q['column']} | {q['generalised_to']} |" in markdown


def test_dates_are_coarsened_and_areas_are_no_finer_than_territorial_authority(produced) -> None:
    extract, _ = produced
    engagements = pl.read_parquet(extract.directory / "engagements.parquet")
    assert engagements["start"].str.contains(r"^\d{4}-\d{2}$").all()
    assert engagements["end"].drop_nulls().str.contains(r"^\d{4}-\d{2}$").all()
    # Every engagement overlaps the period asked for.
    assert (engagements["start"] <= "2017-06").all()
    assert (engagements["end"].drop_nulls() >= "2016-07").all()
    clients = pl.read_parquet(extract.directory / "clients.parquet")
    assert (clients["area"].drop_nulls().str.len_chars() <= 3).all()  # TA codes are 3 digits, SA2 codes 6
    assert clients["age_band"].drop_nulls().str.contains(r"^(\d{2}-\d{2}|\d{2}\+|\*|Not stated)$").all()
    assert set(engagements["person"]) <= set(clients["person"])


def test_two_extracts_of_the_same_data_cannot_be_joined(evidence, tmp_path) -> None:
    """Each extract's pseudonyms are made with a key of its own: no person or engagement value is
    shared between two extracts, nor with the store's pseudonyms."""
    layer = evidence.context().layer
    period = Period(date(2016, 7, 1), date(2017, 6, 30))
    first, second = build_extract(layer, period), build_extract(layer, period)
    assert first.clients.height == second.clients.height
    assert not set(first.clients["person"]) & set(second.clients["person"])
    assert not set(first.engagements["engagement"]) & set(second.engagements["engagement"])
    stored = set(layer.frame("SELECT person_key FROM clients WHERE person_key IS NOT NULL")["person_key"])
    assert not {p for p in first.clients["person"]} & {k[:research.PSEUDONYM_HEX] for k in stored}


@pytest.mark.parametrize(("precision", "pattern"), [("quarter", r"^\d{4}-Q[1-4]$"), ("year", r"^\d{4}$")])
def test_dates_take_the_precision_asked_for(evidence, precision, pattern) -> None:
    tables = build_extract(evidence.context().layer, Period(date(2016, 7, 1), date(2017, 6, 30)), date_precision=precision)
    assert tables.engagements["start"].str.contains(pattern).all()
    assert tables.outcomes["measured"].drop_nulls().str.contains(pattern).all()


def test_a_higher_k_generalises_further(evidence) -> None:
    layer = evidence.context().layer
    period = Period(date(2016, 7, 1), date(2017, 6, 30))
    five, twenty = build_extract(layer, period, k=5), build_extract(layer, period, k=20)
    assert twenty.kanon.min_class_size >= 20
    assert sum(twenty.kanon.levels.values()) >= sum(five.kanon.levels.values())
