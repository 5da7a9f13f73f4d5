"""Privacy Act requests: find a person across providers, export, correct, close; every step audited."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from cldx.access.audit import list_events, verify
from cldx.generator.generate import generate
from cldx.identity.deidentify import parse_birth_date
from cldx.identity.requests import RequestError, close_request, correct, export_person, find_person, open_request
from cldx.identity.vault import Vault
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import load_stored, provider_id_for, submit
from cldx.store import read_transaction, transaction
from cldx.store.models import Client, PrivacyRequest
from cldx.store.registry import seed_service_lines


@pytest.fixture(scope="module")
def rollout(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("requests")
    generate(clients=1500, seed=13, fault_rate=0, out=out)
    return out


def _client_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "clients.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def person(engine, rollout: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """A client seen by two providers, both providers' files stored: (the person, [(provider, client_ref)])."""
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, rollout / "registry")
    seen: dict[tuple, list[tuple[str, str]]] = {}
    rows: dict[tuple, dict[str, str]] = {}
    for folder in sorted(p for p in rollout.iterdir() if p.is_dir() and p.name != "registry"):
        for row in _client_rows(folder):
            if row["identity_consent"] != "n":
                who = (row["family_name"], row["given_names"], parse_birth_date(row["date_of_birth"]))
                seen.setdefault(who, []).append((folder.name, row["client_ref"]))
                rows[who] = row
    who, where = next((w, at) for w, at in seen.items() if len({p for p, _ in at}) == 2)
    for provider in sorted({p for p, _ in where}):
        folder = rollout / provider
        receipt = submit(engine, provider=provider, files=[SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))],
                         submitter="test", channel="test")
        assert receipt.status == "accepted"
    return {"family_name": who[0], "given_names": who[1], "date_of_birth": who[2]}, sorted(where)


def test_an_access_request_finds_exports_and_is_audited(engine, vault: Vault, person):
    subject, where = person
    with transaction(engine) as session:
        request = open_request(session, vault, kind="access", received_on=date(2026, 11, 2), actor="privacy.officer", **subject)
        assert subject["family_name"] not in request.subject  # the subject is sealed
    with transaction(engine) as session:
        found = find_person(session, vault, request.reference, actor="privacy.officer")
    assert sorted((m.provider, m.ref) for m in found.matches if m.record_type == "client") == where
    with transaction(engine) as session:
        export = export_person(session, vault, request.reference, actor="privacy.officer")
    clients = [r for r in export["records"] if r["record_type"] == "client"]
    assert {r["identity"][0]["family_name"] for r in clients} == {subject["family_name"]}
    assert all(r["engagements"] and r["record"] for r in clients)
    with transaction(engine) as session:
        close_request(session, request.reference, outcome="Sent the export to the requester on 2026-11-20.", actor="privacy.officer")
    with read_transaction(engine) as session:
        actions = [e.action for e in list_events(session, actor="privacy.officer", limit=50)]
        assert {"privacy-request-opened", "identity-read", "privacy-request-step", "export", "privacy-request-closed"} <= set(actions)
        reads = list_events(session, action="identity-read", limit=50)
        assert all(e.purpose == f"Privacy Act access request {request.reference}" for e in reads)
        assert verify(session).ok
        assert session.scalar(select(PrivacyRequest.status).where(PrivacyRequest.reference == request.reference)) == "closed"
    with transaction(engine) as session, pytest.raises(RequestError, match="closed"):
        find_person(session, vault, request.reference, actor="privacy.officer")


def test_a_correction_changes_the_record_and_keeps_what_it_was(engine, vault: Vault, person):
    subject, where = person
    provider, ref = where[0]
    with transaction(engine) as session:
        request = open_request(session, vault, kind="correction", received_on=date(2026, 11, 2), actor="po", **subject)
    with transaction(engine) as session:
        correct(session, vault, request.reference, provider=provider, record_type="client", ref=ref, field_name="given_names",
                value="Corrected Name", actor="po")
        correct(session, vault, request.reference, provider=provider, record_type="client", ref=ref, field_name="area", value="076", actor="po")
        with pytest.raises(RequestError, match="cannot be corrected"):
            correct(session, vault, request.reference, provider=provider, record_type="client", ref=ref, field_name="client_ref", value="X", actor="po")
    with read_transaction(engine) as session:
        stored = load_stored(session, provider_id_for(session, provider), vault).identity["client"]
        assert stored.filter(stored["client_ref"] == ref)["given_names"].to_list() == ["Corrected Name"]
        assert session.scalar(select(Client.area).where(Client.client_ref == ref)) == "076"
        steps = [e for e in list_events(session, action="privacy-request-step", limit=10)]
        assert all("Corrected Name" not in e.detail for e in steps)  # the trail names the field, never the value


def test_the_privacy_commands_run_a_request_end_to_end(tmp_path, monkeypatch, rollout: Path):
    from typer.testing import CliRunner

    from cldx.cli.privacy import app as privacy_app
    from cldx.identity.vault import open_store
    from cldx.config import Settings
    from cldx.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'cldx.db'}"
    monkeypatch.setenv("CLDX_DATABASE_URL", url)
    upgrade(url)
    engine = open_store(Settings())
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, rollout / "registry")
    folder = rollout / "P0001"
    submit(engine, provider="P0001", files=[SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))], submitter="t", channel="test")
    engine.dispose()
    row = next(r for r in _client_rows(folder) if r["identity_consent"] != "n")
    runner = CliRunner()
    opened = runner.invoke(privacy_app, ["open", "--kind", "access", "--family-name", row["family_name"], "--given-names", row["given_names"],
                                         "--date-of-birth", parse_birth_date(row["date_of_birth"]).isoformat(), "--received", "2026-11-02"])
    assert opened.exit_code == 0, opened.output
    reference = opened.output.split()[1]
    found = runner.invoke(privacy_app, ["find", reference])
    assert found.exit_code == 0 and row["client_ref"] in found.output
    out = tmp_path / "export.json"
    assert runner.invoke(privacy_app, ["export", reference, "--out", str(out)]).exit_code == 0
    assert row["family_name"] in out.read_text(encoding="utf-8") and oct(out.stat().st_mode)[-3:] == "600"
    assert runner.invoke(privacy_app, ["close", reference, "--outcome", "answered"]).exit_code == 0
    listed = runner.invoke(privacy_app, ["list"])
    assert "closed" in listed.output and row["family_name"] not in listed.output
    assert runner.invoke(privacy_app, ["find", reference]).exit_code == 1
