"""Identity at rest: no plaintext name anywhere in the store, and key rotation while it is used.

The store is loaded the way providers load it: the generator's files with faults (so rejected
rows with names sit in quarantine and findings point at names), and an upload waiting in the
queue. Then every table and column is read back and searched.
"""

from __future__ import annotations

import csv
import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, select, text

from cldx.generator.generate import generate
from cldx.identity.rotation import SEALED_PLACES, purge_unused_keys, reseal, values_by_key
from cldx.identity.vault import Vault, bind_vault, key_id_of, vault_of
from cldx.ingest.queue import enqueue
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import load_stored, provider_id_for, submit
from cldx.store import make_engine, read_transaction, transaction
from cldx.store.migrate import upgrade
from cldx.store.registry import seed_service_lines

PERSON_FILES = ("clients.csv", "dependants.csv")


@pytest.fixture(scope="module")
def rollout(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sealed")
    generate(clients=600, seed=5, fault_rate=0.05, out=out)
    return out


def busiest(rollout: Path, n: int) -> list[Path]:
    folders = [p for p in rollout.iterdir() if p.is_dir() and p.name != "registry"]
    return sorted(folders, key=lambda p: (-len((p / "clients.csv").read_bytes()), p.name))[:n]


def files_of(folder: Path) -> list[SourceFile]:
    return [SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))]


@pytest.fixture
def loaded(engine: Engine, rollout: Path) -> tuple[Engine, list[Path]]:
    return load(engine, rollout)


def load(engine: Engine, rollout: Path) -> tuple[Engine, list[Path]]:
    """Three providers' faulty submissions stored (some rows quarantined) and a fourth's queued."""
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, rollout / "registry")
    folders = busiest(rollout, 4)
    for folder in folders[:3]:
        receipt = submit(engine, provider=folder.name, files=files_of(folder), submitter="test", channel="test")
        assert receipt.counts["rejected"] > 0 or receipt.counts["warned"] > 0
    enqueue(engine, provider=folders[3].name, files=files_of(folders[3]), period=None, mode="partial", submitter="test", channel="test")
    return engine, folders


def identity_of(folders: list[Path]) -> tuple[set[str], set[str]]:
    """Every name word (4+ letters) and date of birth written in the providers' person files."""
    words, births = set(), set()
    for folder in folders:
        for name in PERSON_FILES:
            with open(folder / name, encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh):
                    for column in ("family_name", "given_names"):
                        words.update(w for w in re.split(r"[\s-]+", row.get(column) or "") if len(w) >= 4)
                    if row.get("date_of_birth"):
                        births.add(row["date_of_birth"])
    return words, births


def every_value(engine: Engine):
    """(table, column, value) for every non-null value of every column of every table in the store."""
    with read_transaction(engine) as session:
        connection = session.connection()
        for table in inspect(connection).get_table_names():
            for column in inspect(connection).get_columns(table):
                name = column["name"]
                for (value,) in connection.execute(text(f'SELECT "{name}" FROM "{table}" WHERE "{name}" IS NOT NULL')):
                    yield table, name, value


def test_no_plaintext_name_or_birth_date_is_stored_anywhere(loaded, vault: Vault):
    engine, folders = loaded
    words, births = identity_of(folders)
    assert len(words) > 40 and births
    pattern = re.compile(r"(?<!\w)(" + "|".join(sorted(map(re.escape, words), key=len, reverse=True)) + r")(?!\w)")
    sealed_places = {(p.table.name, c) for p in SEALED_PLACES for c in p.columns}
    found, sealed_seen = [], set()
    for table, column, value in every_value(engine):
        if key_id_of(value) is not None:
            # A sealed value holds nothing readable; prove it is one by opening it.
            opened = (vault.keys.open_bytes(bytes(value), f"{table}.{column}") if isinstance(value, (bytes, memoryview))
                      else vault.keys.open(value, f"{table}.{column}"))
            assert opened is not None
            sealed_seen.add((table, column))
            continue
        shown = bytes(value).decode("utf-8", "replace") if isinstance(value, (bytes, memoryview)) else str(value)
        if match := pattern.search(shown):
            found.append((table, column, match.group(0), shown[:80]))
        if "date_of_birth" in column:
            found.append((table, column, "a date of birth column holds an unsealed value", shown[:20]))
    assert found == []
    # Every kind of place that should hold sealed values was exercised by this load.
    assert sealed_seen == sealed_places


def test_the_sqlite_file_holds_no_plaintext_name(tmp_path, vault: Vault, rollout: Path):
    """The embedded store's files on disk (PostgreSQL's are scanned table by table above)."""
    path = tmp_path / "cldx.db"
    upgrade(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}")
    bind_vault(engine, vault)
    engine, folders = load(engine, rollout)
    engine.dispose()
    raw = b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())
    # Full family names of 7+ bytes: long enough that random ciphertext cannot contain one by chance.
    names = set()
    for folder in folders:
        with open(folder / "clients.csv", encoding="utf-8", newline="") as fh:
            names.update(r["family_name"].encode() for r in csv.DictReader(fh) if len(r["family_name"].encode()) >= 7)
    assert len(names) > 10
    assert [n for n in names if n in raw] == []


def opened_identity(engine: Engine, vault: Vault, folders: list[Path]) -> dict:
    with read_transaction(engine) as session:
        return {f.name: {k: v.sort(v.columns[0]).rows() for k, v in load_stored(session, provider_id_for(session, f.name), vault).identity.items()}
                for f in folders}


def test_rotation_reseals_everything_and_nothing_changes_for_providers(loaded, vault: Vault):
    engine, folders = loaded
    before = opened_identity(engine, vault, folders)
    old = vault.keys.current
    new = vault.keys.add_key()
    report = reseal(engine, vault)
    assert report.resealed > 0 and report.sealed_plain == 0
    assert set(values_by_key(engine)) == {new}
    assert opened_identity(engine, vault, folders) == before
    assert purge_unused_keys(engine, vault) == [old]
    # The same files again: identity compares equal under the new key, so nothing changes.
    again = submit(engine, provider=folders[0].name, files=files_of(folders[0]), submitter="test", channel="test")
    assert again.counts["new"] == again.counts["changed"] == 0


def test_rotation_runs_while_submissions_are_stored(loaded, vault: Vault, rollout: Path):
    engine, folders = loaded
    others = [f for f in busiest(rollout, 8) if f not in folders][:3]
    errors: list[BaseException] = []

    def send() -> None:
        try:
            for folder in others:
                submit(engine, provider=folder.name, files=files_of(folder), submitter="test", channel="test")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    sender = threading.Thread(target=send)
    new = vault.keys.add_key()
    sender.start()
    reseal(engine, vault)
    sender.join()
    assert errors == []
    reseal(engine, vault)  # values written under the old key meanwhile are picked up by the next pass
    assert set(values_by_key(engine)) == {new}
    assert vault_of(engine) is vault
    opened = opened_identity(engine, vault, others)
    assert all(provider["client"] for provider in opened.values())


def test_identity_stored_plainly_before_sealing_is_sealed_after_the_upgrade(database_url: str, vault: Vault):
    """A store from before sealing (schema 0002): upgrading and `cldx init`'s re-seal leave no plain value."""
    upgrade(database_url, "0002")
    engine = make_engine(database_url)
    bind_vault(engine, vault)
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO provider (id, code, name, region_code, sends_identity, created_at, updated_at) "
                                    "VALUES (1, 'P1', 'Old Trust', '09', true, '2017-01-01', '2017-01-01')"))
            connection.execute(text("INSERT INTO client (provider_id, client_ref, gender, primary_ethnicity, area, identity_consent, created_at, updated_at) "
                                    "VALUES (1, 'C-1', '21', '21', '100100', true, '2017-01-01', '2017-01-01')"))
            connection.execute(text("INSERT INTO client_identity (provider_id, client_ref, family_name, given_names, date_of_birth) "
                                    "VALUES (1, 'C-1', 'Pōmare', 'Hēmi', '1985-12-19')"))
        upgrade(database_url)
        report = reseal(engine, vault)
        assert report.sealed_plain == 3
        with read_transaction(engine) as session:
            family, given, born = session.execute(text("SELECT family_name, given_names, date_of_birth FROM client_identity")).one()
        assert all(key_id_of(v) == vault.keys.current for v in (family, given, born))
        assert (vault.keys.open(family, "client_identity.family_name"), vault.keys.open(born, "client_identity.date_of_birth")) == ("Pōmare", "1985-12-19")
    finally:
        engine.dispose()
