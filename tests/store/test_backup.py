"""`cldx backup` and `cldx restore` on SQLite and PostgreSQL (cldx.store.backup, cldx.cli.backup).

A store with real data (a generated roll-out's providers sent through `submit`) is backed up
while a writer thread keeps submitting, restored into an empty database and compared with the
source: one consistent snapshot, every table equal, the audit chain whole, names readable with
the keys restored apart, and no key material in the backup. A changed dump and a target that is
not empty are refused.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import shutil
import stat
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, MetaData, func, inspect, select
from typer.testing import CliRunner

from cldx.access.audit import verify
from cldx.cli.main import app
from cldx.config import Settings
from cldx.generator.generate import generate
from cldx.identity.vault import bind_vault, open_store, open_vault
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit
from cldx.store import make_engine, read_transaction, transaction
from cldx.store import backup as backup_module
from cldx.store.backup import DamagedBackup, TargetNotEmpty, ToolMissing, backup, restore
from cldx.store.migrate import upgrade
from cldx.store.models import AuditEvent, ClientIdentity, Provider, Submission
from cldx.store.registry import seed_service_lines
from tests.conftest import POSTGRES_ADMIN_DSN, fresh_postgres_database

# The twelve providers with most clients in this roll-out (about 280 clients, 8,600 rows):
# the first nine are stored before the tests, the writer thread keeps sending the other three.
SENDERS = ("P0075", "P0064", "P0040", "P0055", "P0036", "P0059", "P0039", "P0057", "P0024", "P0043", "P0038", "P0008")
STORED, WRITTEN = SENDERS[:9], SENDERS[9:]
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@dataclass
class Source:
    backend: str
    url: str
    engine: Engine
    files: Path


@pytest.fixture(scope="module")
def rollout(tmp_path_factory) -> Path:
    """The SENDERS' files, and a registry cut down to them (importing all 325 providers would take most of the time)."""
    out = tmp_path_factory.mktemp("backup-rollout")
    generate(clients=2000, seed=5, fault_rate=0, out=out, only=SENDERS)
    for name, column in (("providers.csv", "provider_code"), ("contracts.csv", "provider_code")):
        path = out / "registry" / name
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            fields, rows = reader.fieldnames, [row for row in reader if row[column] in SENDERS]
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fields)
            writer.writeheader()
            writer.writerows(rows)
    return out


def _send(engine: Engine, folder: Path) -> None:
    submit(engine, provider=folder.name, files=[SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))],
           submitter="test", channel="test")


@pytest.fixture(scope="module", params=BACKENDS)
def source(request, rollout, tmp_path_factory, key_files) -> Iterator[Source]:
    """A store per backend holding the STORED providers' records (module-wide; tests only add submissions)."""
    databases = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('backup-source') / 'cldx.db'}"
    else:
        databases = fresh_postgres_database("cldx_backup_source")
        url = next(databases)
    upgrade(url)
    engine = make_engine(url, default_scope="all")
    bind_vault(engine, open_vault(*key_files))
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, rollout / "registry")
    for code in STORED:
        _send(engine, rollout / code)
    yield Source(request.param, url, engine, rollout)
    engine.dispose()
    if databases is not None:
        databases.close()


@pytest.fixture
def empty_url(source, tmp_path) -> Iterator[str]:
    """An empty database of the source's backend to restore into."""
    if source.backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored' / 'cldx.db'}"
    else:
        yield from fresh_postgres_database("cldx_restored")


def table_digests(url: str) -> dict[str, tuple[int, str]]:
    """Every table's row count and SHA-256 of its rows in primary-key order, computed apart from cldx.store.backup."""
    engine = make_engine(url, default_scope="all")
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        digests = {}
        with engine.connect() as connection:
            for name, table in metadata.tables.items():
                rows = connection.execute(select(table).order_by(*(table.primary_key.columns or table.columns))).all()
                digests[name] = (len(rows), hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest())
        return digests
    finally:
        engine.dispose()


def is_empty(url: str) -> bool:
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return True
    engine = make_engine(url)
    try:
        return inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def owner_only(path: Path, mode: int) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == mode


# --- Consistency while the app writes ---------------------------------------------------------------


class Writer(threading.Thread):
    """Keeps submitting the WRITTEN providers' files (each send: a submission and its audit entry) until stopped."""

    def __init__(self, engine: Engine, files: Path) -> None:
        super().__init__(daemon=True)
        self.engine, self.files = engine, files
        self.stop, self.sent, self.error = threading.Event(), 0, None
        self.progressed = threading.Condition()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for code in WRITTEN:
                    _send(self.engine, self.files / code)
                    with self.progressed:
                        self.sent += 1
                        self.progressed.notify_all()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def wait_for(self, count: int, timeout: float = 30) -> bool:
        with self.progressed:
            return self.progressed.wait_for(lambda: self.sent >= count or self.error is not None, timeout)


def test_backup_while_submitting_is_one_consistent_snapshot(source, empty_url, tmp_path, monkeypatch):
    # Small steps, so the SQLite copy is still under way while the writer commits.
    monkeypatch.setattr(backup_module, "SQLITE_STEP_PAGES", 50)
    with read_transaction(source.engine) as session:
        initial = session.scalar(select(func.count()).select_from(Submission))
    writer = Writer(source.engine, source.files)
    waited = []

    def progress(description, done, total):
        # The snapshot is taken before the first report: hold the backup until the writer has
        # committed twice more, so the dump is made while those commits land.
        if not waited:
            waited.append(writer.sent)
            assert writer.wait_for(writer.sent + 2), writer.error

    writer.start()
    try:
        assert writer.wait_for(1), writer.error
        sent_before = writer.sent
        result = backup(url=source.url, out_dir=tmp_path / "backup", verify_audit=verify, progress=progress)
    finally:
        writer.stop.set()
        writer.join(60)
    assert writer.error is None, writer.error
    assert waited, "the backup reported no progress"

    restored = restore(url=empty_url, backup_dir=tmp_path / "backup", verify_audit=verify)
    assert restored.ok, [c for c in restored.checks if not c.ok]

    engine = make_engine(empty_url, default_scope="all")
    try:
        with read_transaction(engine) as session:
            submissions = set(session.scalars(select(Submission.id)))
            audited = set(session.scalars(select(AuditEvent.target).where(AuditEvent.action == "submission")))
            chain = verify(session)
    finally:
        engine.dispose()
    # One snapshot: every submission copied has its audit entry (written in the same
    # transaction) and no entry names a submission the copy lacks; the chain is whole.
    assert {str(s) for s in submissions} == set(audited)
    assert chain.ok and chain.count == result.facts.audit_entries and chain.head_hash == result.facts.audit_head_hash
    with read_transaction(source.engine) as session:
        live = session.scalar(select(func.count()).select_from(Submission))
    # The writer went on committing during the backup; the copy holds what was there at its start.
    assert initial + sent_before <= len(submissions) < live


# --- A faithful copy, keys apart ---------------------------------------------------------------------


def key_material(key_files: tuple[Path, Path]) -> list[bytes]:
    """Every form a secret could take in a file: the files themselves, each raw key and its base64 text."""
    key_file, linkage_file = key_files
    material = [key_file.read_bytes(), linkage_file.read_bytes()]
    secrets = [base64.b64decode(k["key"]) for k in json.loads(key_file.read_text())["keys"]]
    secrets.append(base64.b64decode(json.loads(linkage_file.read_text())["secret"]))
    for secret in secrets:
        material += [secret, base64.b64encode(secret), base64.urlsafe_b64encode(secret), secret.hex().encode()]
    return material


def test_restore_is_the_store_and_names_open_with_keys_restored_apart(source, empty_url, tmp_path, key_files):
    keys_out = tmp_path / "keys-apart"
    result = backup(url=source.url, out_dir=tmp_path / "backup", verify_audit=verify, keys_out=keys_out, key_files=key_files)

    # Owner-only, and no key material anywhere in the backup folder.
    folder = tmp_path / "backup"
    assert sorted(p.name for p in folder.iterdir()) == sorted([result.dump.name, "manifest.json"])
    assert owner_only(folder, 0o700) and all(owner_only(p, 0o600) for p in folder.iterdir())
    for path in folder.iterdir():
        data = path.read_bytes()
        assert not any(secret in data for secret in key_material(key_files)), f"key material in {path.name}"
    assert owner_only(keys_out, 0o700)
    assert [(p.name, p.read_bytes()) for p in sorted(keys_out.iterdir())] == [(p.name, p.read_bytes()) for p in sorted(key_files)]
    assert all(owner_only(p, 0o600) for p in keys_out.iterdir())

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["backend"] == source.backend and manifest["schema_revision"] and manifest["keys"]["included"] is False
    assert manifest["dump"]["sha256"] == hashlib.sha256(result.dump.read_bytes()).hexdigest()

    restored = restore(url=empty_url, backup_dir=folder, verify_audit=verify)
    assert restored.ok, [c for c in restored.checks if not c.ok]

    # Every table equal to the source's (no writer now), by a digest computed apart from cldx's own.
    expected, found = table_digests(source.url), table_digests(empty_url)
    assert found == expected
    assert {name: rows for name, (rows, _) in found.items()} == {name: t["rows"] for name, t in manifest["tables"].items()}
    assert found["client_identity"][0] > 200

    # The operator puts the keys back (from the copy kept apart): the restored store opens and names read.
    keys = Settings(database_url=empty_url, key_file=keys_out / key_files[0].name, linkage_secret_file=keys_out / key_files[1].name)
    engine = open_store(keys)
    try:
        vault_keys = open_vault(keys.key_file, keys.linkage_secret_file).keys
        with read_transaction(engine) as session:
            row = session.execute(
                select(ClientIdentity.client_ref, ClientIdentity.family_name, Provider.code)
                .join(Provider, Provider.id == ClientIdentity.provider_id).order_by(Provider.code, ClientIdentity.client_ref).limit(1)
            ).one()
    finally:
        engine.dispose()
    assert row.family_name.startswith("enc1:")
    name = vault_keys.open(row.family_name, "client_identity.family_name")
    with (source.files / row.code / "clients.csv").open(encoding="utf-8") as fh:
        sent = {r["client_ref"]: r["family_name"] for r in csv.DictReader(fh)}
    assert name == sent[row.client_ref]


# --- Refusals ----------------------------------------------------------------------------------------


def test_a_changed_dump_is_refused_and_nothing_restored(source, empty_url, tmp_path):
    result = backup(url=source.url, out_dir=tmp_path / "backup", verify_audit=verify)
    data = bytearray(result.dump.read_bytes())
    data[len(data) // 2] ^= 0x01
    result.dump.write_bytes(bytes(data))
    with pytest.raises(DamagedBackup, match="SHA-256"):
        restore(url=empty_url, backup_dir=tmp_path / "backup", verify_audit=verify)
    assert is_empty(empty_url)


def test_restore_refuses_a_store_that_is_not_empty(source, tmp_path):
    backup(url=source.url, out_dir=tmp_path / "backup", verify_audit=verify)
    before = table_digests(source.url)
    with pytest.raises(TargetNotEmpty):
        restore(url=source.url, backup_dir=tmp_path / "backup", verify_audit=verify)
    if source.backend == "postgresql":
        with pytest.raises(TargetNotEmpty, match="empty PostgreSQL database"):
            restore(url=source.url, backup_dir=tmp_path / "backup", verify_audit=verify, force=True)
    assert table_digests(source.url) == before
    if source.backend == "sqlite":
        # --force (SQLite only) replaces a store whole: the backup API swaps every page at once.
        other = f"sqlite:///{tmp_path / 'other.db'}"
        upgrade(other)
        restored = restore(url=other, backup_dir=tmp_path / "backup", verify_audit=verify, force=True)
        assert restored.ok
        assert table_digests(other) == before


def test_backup_refuses_a_folder_in_use_and_keys_beside_the_data(source, tmp_path, key_files):
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("something else")
    with pytest.raises(backup_module.BackupError, match="not empty"):
        backup(url=source.url, out_dir=used, verify_audit=verify)
    for keys_out in (tmp_path / "backup", tmp_path / "backup" / "keys", tmp_path):
        with pytest.raises(backup_module.BackupError, match="apart from the backup folder"):
            backup(url=source.url, out_dir=tmp_path / "backup", verify_audit=verify, keys_out=keys_out, key_files=key_files)
        assert not (tmp_path / "backup").exists()


def test_pg_tools_missing_are_named(monkeypatch):
    monkeypatch.setattr(backup_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(backup_module, "glob", lambda pattern: [])
    with pytest.raises(ToolMissing, match="pg_dump not found on PATH or in /usr/lib/postgresql"):
        backup_module.find_pg_tool("pg_dump")


# --- The commands ------------------------------------------------------------------------------------


def test_cli_backup_and_restore(source, empty_url, tmp_path, monkeypatch):
    runner = CliRunner()
    monkeypatch.setenv("CLDX_DATABASE_URL", source.url)
    folder, keys_out = tmp_path / "backup", tmp_path / "keys"

    refused = runner.invoke(app, ["backup", str(folder), "--keys-out", str(folder / "keys")])
    assert refused.exit_code == 2 and "apart from the backup folder" in refused.output

    made = runner.invoke(app, ["backup", str(folder), "--keys-out", str(keys_out)])
    assert made.exit_code == 0, made.output
    assert "holds no keys" in made.output and "audit" in made.output and "chain intact" in made.output
    assert sorted(p.name for p in keys_out.iterdir()) == ["cldx-keys.json", "cldx-linkage.json"]
    manifest = json.loads((folder / "manifest.json").read_text())
    # What left the building is in the source's audit trail, after the snapshot (the backup does not hold it).
    with read_transaction(source.engine) as session:
        entry = session.scalars(select(AuditEvent).where(AuditEvent.action == "backup").order_by(AuditEvent.id.desc())).first()
        source_chain = verify(session)
    assert entry is not None and entry.target == str(folder.resolve())
    assert json.loads(entry.detail)["dump_sha256"] == manifest["dump"]["sha256"] and json.loads(entry.detail)["keys_copied"] is True
    assert source_chain.ok and source_chain.count > manifest["audit"]["entries"]

    monkeypatch.setenv("CLDX_DATABASE_URL", empty_url)
    done = runner.invoke(app, ["restore", str(folder)])
    assert done.exit_code == 0, done.output
    for said in ("matches the manifest", "row counts of all", "content SHA-256 of all", "audit chain: intact",
                 "holds every key the restored values are sealed under"):
        assert said in done.output, done.output
    # The restore is the restored store's next entry, chained to the head it was backed up with.
    restored_engine = make_engine(empty_url, default_scope="all")
    try:
        with read_transaction(restored_engine) as session:
            last = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
            restored_chain = verify(session)
    finally:
        restored_engine.dispose()
    assert last.action == "restore" and last.prev_hash == manifest["audit"]["head_hash"]
    assert json.loads(last.detail)["checks_differing"] == [] and json.loads(last.detail)["dump_sha256"] == manifest["dump"]["sha256"]
    assert restored_chain.ok and restored_chain.count == manifest["audit"]["entries"] + 1

    again = runner.invoke(app, ["restore", str(folder)])
    assert again.exit_code == 2 and "Not restored" in again.output

    # A manifest that disagrees with its (unchanged) dump: restored, but the check says so (exit 1).
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    manifest = json.loads((changed / "manifest.json").read_text())
    manifest["tables"]["client"]["rows"] += 1
    (changed / "manifest.json").write_text(json.dumps(manifest))
    target = f"sqlite:///{tmp_path / 'second.db'}" if source.backend == "sqlite" else None
    if target is None:
        databases = fresh_postgres_database("cldx_restored")
        target = next(databases)
    try:
        monkeypatch.setenv("CLDX_DATABASE_URL", target)
        differs = runner.invoke(app, ["restore", str(changed)])
    finally:
        if source.backend == "postgresql":
            databases.close()
    assert differs.exit_code == 1, differs.output
    assert "client rows" in differs.output and "differ from the manifest" in differs.output


# --- PostgreSQL as a role row-level security applies to -------------------------------------------


@pytest.mark.postgres
def test_postgresql_backup_by_an_owner_without_bypassrls(rollout, tmp_path, key_files):
    """The tables' owner is subject to the FORCEd policies: pg_dump still reads every row, restore puts them back."""
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        if os.environ.get("CLDX_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_DSN}: {exc}")
    role = f"cldx_backup_owner_{uuid.uuid4().hex[:8]}"
    names = [f"{role}_source", f"{role}_restored"]
    params = psycopg.conninfo.conninfo_to_dict(POSTGRES_ADMIN_DSN)
    host, port = params.get("host", "127.0.0.1"), params.get("port", "5432")
    with admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        try:
            for name in names:
                admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role)))
            url, target = (f"postgresql+psycopg://{role}@{host}:{port}/{name}" for name in names)
            upgrade(url)
            engine = make_engine(url, default_scope="all")
            bind_vault(engine, open_vault(*key_files))
            try:
                with transaction(engine) as session:
                    seed_service_lines(session)
                import_registry(engine, rollout / "registry")
                _send(engine, rollout / STORED[0])
            finally:
                engine.dispose()
            backup(url=url, out_dir=tmp_path / "backup", verify_audit=verify)
            restored = restore(url=target, backup_dir=tmp_path / "backup", verify_audit=verify)
            assert restored.ok, [c for c in restored.checks if not c.ok]
            assert restored.facts.tables["client"].rows > 0
            assert table_digests(target) == table_digests(url)
        finally:
            for name in names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
