"""Fixtures shared by every test: databases on both backends, and the evidence store (a generated
roll-out stored once per backend, read by the report and research-extract tests).

Every storage test runs on SQLite and on PostgreSQL. The PostgreSQL run creates its own
database and drops it at the end; when no server answers the PostgreSQL tests are skipped
with the reason, unless CLDX_REQUIRE_POSTGRES=1 (CI), where that is a failure.
"""

from __future__ import annotations

import csv
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine

from cldx.analysis.layer import AnalyticLayer, layer_for
from cldx.analysis.reports import ReportContext
from cldx.generator.generate import generate
from cldx.identity.vault import Vault, bind_vault, ensure_key_files, open_vault
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit
from cldx.store import make_engine, transaction
from cldx.store.migrate import upgrade
from cldx.store.registry import seed_service_lines

# The CLI's Rich consoles take their width when cldx.cli is imported (during collection, in any
# worker): wide enough that no test's table rows or tokens are wrapped, whatever the order.
os.environ["COLUMNS"] = "200"

POSTGRES_ADMIN_DSN = os.environ.get("CLDX_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session", autouse=True)
def key_files(tmp_path_factory) -> Iterator[tuple[Path, Path]]:
    """The test run's data keys and linkage secret, made as `cldx init` makes them.

    Set in the environment too, so every `Settings()` a test builds (the web app's, the CLI's)
    uses them instead of files in the working directory.
    """
    folder = tmp_path_factory.mktemp("keys")
    paths = (folder / "cldx-keys.json", folder / "cldx-linkage.json")
    ensure_key_files(*paths)
    saved = {name: os.environ.get(name) for name in ("CLDX_KEY_FILE", "CLDX_LINKAGE_SECRET_FILE", "CLDX_DATABASE_URL", "CLDX_ANALYTIC_DIR")}
    os.environ["CLDX_KEY_FILE"], os.environ["CLDX_LINKAGE_SECRET_FILE"] = (str(p) for p in paths)
    # A test that forgets to name its store gets one in a temporary folder, never cldx.db and
    # cldx-analytic/ in the working directory (the repository, where a developer's demo lives).
    os.environ["CLDX_DATABASE_URL"] = f"sqlite:///{folder / 'unnamed-store.db'}"
    os.environ["CLDX_ANALYTIC_DIR"] = str(folder / "unnamed-analytic")
    yield paths
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def analytic_dir(tmp_path, monkeypatch) -> Path:
    """Each test's own analytic layer folder, so no test writes one into the working directory."""
    folder = tmp_path / "analytic"
    monkeypatch.setenv("CLDX_ANALYTIC_DIR", str(folder))
    return folder


@pytest.fixture
def vault(key_files) -> Vault:
    return open_vault(*key_files)


def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """Create a PostgreSQL database named `<prefix>_<random>`, yield its SQLAlchemy URL, drop it after.

    Skips (or fails, with CLDX_REQUIRE_POSTGRES=1) when no server answers."""
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        reason = f"PostgreSQL not reachable at {POSTGRES_ADMIN_DSN}: {str(exc).strip()}"
        if os.environ.get("CLDX_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " (CLDX_REQUIRE_POSTGRES=1, so this is a failure)")
        pytest.skip(reason)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        dsn = psycopg.conninfo.make_conninfo(POSTGRES_ADMIN_DSN, dbname=name)
        params = psycopg.conninfo.conninfo_to_dict(dsn)
        host, port, user = params.get("host", "127.0.0.1"), params.get("port", "5432"), params.get("user", "postgres")
        try:
            yield f"postgresql+psycopg://{user}@{host}:{port}/{name}"
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run; yields its SQLAlchemy URL."""
    yield from fresh_postgres_database("cldx_test")


def _reset_postgres(url: str) -> None:
    """Empty the test database between tests: drop and recreate the public schema."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """An empty database on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cldx.db'}"
    url = request.getfixturevalue("postgres_database")
    _reset_postgres(url)
    return url


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """A database on each backend with the schema at head."""
    upgrade(database_url)
    return database_url


@pytest.fixture
def engine(migrated_url: str, vault: Vault) -> Iterator[Engine]:
    """An engine on a migrated database of each backend, with the test run's keys bound."""
    engine = make_engine(migrated_url)
    bind_vault(engine, vault)
    yield engine
    engine.dispose()


# --- The evidence store: a generated roll-out stored once per backend ------------------------
#
# A generated roll-out stored once per backend, for every report test to read.
#
# 3,000 client persons over the generator's 325 providers, each provider's whole history sent
# through `submit()` as one submission for the last month the schedule gives it (received now:
# sent at any earlier date, some records would be dates in the future), on SQLite and PostgreSQL.
# Tests of submission timing (coverage, compliance) make their own submissions. Loaded once per test run and
# per backend; tests only read it (a test that writes makes its own store).

CLIENTS = 3000
SEED = 11
ROUNDING_KEY = b"test rounding key: fixed so tables repeat"
NZ = ZoneInfo("Pacific/Auckland")


@dataclass
class EvidenceStore:
    engine: Engine
    files: Path  # the generator's output: registry/, one folder per provider, provider_effects.csv
    layer_dir: Path

    def context(self, layer_dir: Path | None = None) -> ReportContext:
        """A report context on this store; by default on its one warm layer (as the web app keeps
        one per process), so tests do not each reload the files into DuckDB."""
        layer = AnalyticLayer(layer_dir, self.engine) if layer_dir else layer_for(self.layer_dir, self.engine)
        return ReportContext(layer, ROUNDING_KEY)


@pytest.fixture(scope="session")
def rollout_files(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rollout")
    generate(clients=CLIENTS, seed=SEED, fault_rate=0.0, out=out)
    return out


def last_received(files: Path) -> dict[str, tuple[str, datetime]]:
    """provider -> (period, received at) of its last scheduled submission that was not missed."""
    last: dict[str, tuple[str, datetime]] = {}
    with (files / "registry" / "schedule.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["received"]:
                received = datetime.combine(date.fromisoformat(row["received"]), time(10), NZ)
                last[row["provider"]] = max(last.get(row["provider"], (row["period"], received)), (row["period"], received))
    return last


def load(engine: Engine, files: Path) -> None:
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, files / "registry")
    arrival = last_received(files)
    for folder in sorted(p for p in files.iterdir() if p.is_dir() and p.name != "registry"):
        period, _ = arrival[folder.name]
        receipt = submit(engine, provider=folder.name, files=[SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))],
               period=period, submitter=f"{folder.name} case system", channel="test")
        assert receipt.counts["rejected"] == 0, (folder.name, receipt.findings[:3])


@pytest.fixture(scope="session")
def evidence_sqlite(rollout_files, tmp_path_factory, key_files) -> Iterator[EvidenceStore]:
    folder = tmp_path_factory.mktemp("evidence-sqlite")
    url = f"sqlite:///{folder / 'cldx.db'}"
    upgrade(url)
    engine = make_engine(url, default_scope="all")
    bind_vault(engine, open_vault(*key_files))
    load(engine, rollout_files)
    yield EvidenceStore(engine, rollout_files, folder / "analytic")
    engine.dispose()


@pytest.fixture(scope="session")
def evidence_postgresql(rollout_files, tmp_path_factory, key_files) -> Iterator[EvidenceStore]:
    url_source = fresh_postgres_database("cldx_evidence")
    url = next(url_source)
    folder = tmp_path_factory.mktemp("evidence-postgresql")
    upgrade(url)
    engine = make_engine(url, default_scope="all")
    bind_vault(engine, open_vault(*key_files))
    load(engine, rollout_files)
    yield EvidenceStore(engine, rollout_files, folder / "analytic")
    engine.dispose()
    url_source.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def evidence(request) -> EvidenceStore:
    """The stored roll-out on each backend in turn (read only): for tests of what is read from the
    store. Reports read the analytic layer, the same DuckDB tables whichever store it was built
    from, so report tests use `evidence_sqlite`, and `test_reach.py` and `test_providers.py` show
    PostgreSQL's layer gives the same answers (with test_layer.py on both backends)."""
    return request.getfixturevalue(f"evidence_{request.param}")
