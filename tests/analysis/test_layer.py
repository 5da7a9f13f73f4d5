"""The analytic layer on both backends: built from the store, kept current by provider, holding no identity."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from cldx.analysis.layer import AnalyticLayer, store_versions
from cldx.generator.generate import generate
from cldx.identity import requests
from cldx.identity.vault import vault_of
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit
from cldx.store import transaction
from cldx.store.registry import seed_service_lines


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("layer-rollout")
    generate(clients=300, seed=21, fault_rate=0, out=out)
    return out


def busiest(files: Path, n: int) -> list[Path]:
    folders = [p for p in files.iterdir() if p.is_dir() and p.name != "registry"]
    return sorted(folders, key=lambda p: -len((p / "clients.csv").read_bytes()))[:n]


def send(engine, folder: Path, names: tuple[str, ...] = ()):
    chosen = [p for p in sorted(folder.glob("*.csv")) if not names or p.name in names]
    return submit(engine, provider=folder.name, files=[SourceFile(p.name, p.read_bytes()) for p in chosen],
                  submitter="test", channel="test")


@pytest.fixture
def store(engine, files):
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, files / "registry")
    return engine


def test_the_layer_copies_each_providers_records_and_only_rebuilds_what_changed(store, files, tmp_path):
    first, second = busiest(files, 2)
    send(store, first)
    layer = AnalyticLayer(tmp_path / "layer", store)
    summary = layer.refresh()
    assert len(summary.rebuilt) == 1
    sent = pl.read_csv(first / "engagements.csv", infer_schema=False)
    assert layer.frame("SELECT count(*) AS n FROM engagements")["n"][0] == sent.height
    assert layer.ensure_current() is None  # nothing changed: nothing rebuilt

    send(store, second)
    # The next query brings the layer up to date by itself, rebuilding only the second provider.
    count = layer.frame("SELECT count(*) AS n FROM engagements")["n"][0]
    assert count == sent.height + pl.read_csv(second / "engagements.csv", infer_schema=False).height
    assert layer.built_versions() == store_versions(store)

    # Sending the first provider's files again changes nothing in the data, but is a new submission.
    send(store, first)
    rebuilt = layer.ensure_current()
    assert rebuilt is not None and len(rebuilt.rebuilt) == 1
    assert layer.frame("SELECT count(*) AS n FROM engagements")["n"][0] == count


def test_a_withdrawn_engagement_leaves_the_layer(store, files, tmp_path):
    folder = busiest(files, 1)[0]
    send(store, folder)
    layer = AnalyticLayer(tmp_path / "layer", store)
    before = layer.frame("SELECT count(*) AS n FROM engagements")["n"][0]
    engagements = pl.read_csv(folder / "engagements.csv", infer_schema=False)
    withdrawal = engagements.head(1).with_columns(action=pl.lit("withdraw"))
    submit(store, provider=folder.name, files=[SourceFile("engagements.csv", withdrawal.write_csv().encode())],
           submitter="test", channel="test")
    assert layer.frame("SELECT count(*) AS n FROM engagements")["n"][0] == before - 1


def test_a_privacy_act_correction_reaches_the_layer(store, files, tmp_path, vault):
    folder = busiest(files, 1)[0]
    send(store, folder)
    layer = AnalyticLayer(tmp_path / "layer", store)
    clients = pl.read_csv(folder / "clients.csv", infer_schema=False)
    person = clients.row(0, named=True)
    born = date.fromisoformat(person["date_of_birth"]) if "-" in person["date_of_birth"] else \
        date(int(person["date_of_birth"][6:]), int(person["date_of_birth"][3:5]), int(person["date_of_birth"][:2]))
    assert layer.frame("SELECT count(*) AS n FROM clients WHERE birth_year_month = ?", [born.strftime("%Y-%m")])["n"][0] >= 1
    with transaction(store) as session:
        request = requests.open_request(session, vault_of(store), kind="correction", family_name=person["family_name"],
                                        given_names=person["given_names"], date_of_birth=born, received_on=date(2026, 11, 1),
                                        actor="privacy")
        reference = request.reference
    with transaction(store) as session:
        requests.correct(session, vault_of(store), reference, provider=folder.name, record_type="client",
                         ref=person["client_ref"], field_name="date_of_birth", value="1901-02-03", actor="privacy")
    assert layer.frame("SELECT count(*) AS n FROM clients WHERE birth_year_month = '1901-02'")["n"][0] == 1


def test_the_layer_holds_no_names_dates_of_birth_or_client_references(store, files, tmp_path):
    folder = busiest(files, 1)[0]
    send(store, folder)
    layer = AnalyticLayer(tmp_path / "layer", store)
    layer.refresh()
    clients = pl.read_csv(folder / "clients.csv", infer_schema=False)
    secrets = set(clients["family_name"].drop_nulls()) | set(clients["given_names"].drop_nulls()) | set(clients["client_ref"])
    secrets |= set(clients["date_of_birth"].drop_nulls())
    secrets = {s for s in secrets if len(s) >= 4}
    for path in (tmp_path / "layer").rglob("*.parquet"):
        frame = pl.read_parquet(path)
        assert not {"client_ref", "engagement_ref", "family_name", "given_names", "date_of_birth"} & set(frame.columns), path
        text = " ".join(str(v) for column in frame.columns for v in frame[column].to_list())
        leaked = [s for s in secrets if s in text]
        assert not leaked, (path, leaked[:3])
    assert (tmp_path / "layer").stat().st_mode & 0o077 == 0, "the layer's folder is open to others"
