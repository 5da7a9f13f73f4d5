"""Fixtures shared by every test: databases on both backends.

Every storage test runs on SQLite and on PostgreSQL. The PostgreSQL run creates its own
database and drops it at the end; when no server answers the PostgreSQL tests are skipped
with the reason, unless CLDX_REQUIRE_POSTGRES=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine

from cldx.identity.vault import Vault, bind_vault, ensure_key_files, open_vault
from cldx.store import make_engine
from cldx.store.migrate import upgrade

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
    saved = {name: os.environ.get(name) for name in ("CLDX_KEY_FILE", "CLDX_LINKAGE_SECRET_FILE")}
    os.environ["CLDX_KEY_FILE"], os.environ["CLDX_LINKAGE_SECRET_FILE"] = (str(p) for p in paths)
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


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run; yields its SQLAlchemy URL."""
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        reason = f"PostgreSQL not reachable at {POSTGRES_ADMIN_DSN}: {str(exc).strip()}"
        if os.environ.get("CLDX_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " (CLDX_REQUIRE_POSTGRES=1, so this is a failure)")
        pytest.skip(reason)
    name = f"cldx_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        dsn = psycopg.conninfo.make_conninfo(POSTGRES_ADMIN_DSN, dbname=name)
        params = psycopg.conninfo.conninfo_to_dict(dsn)
        host, port, user = params.get("host", "127.0.0.1"), params.get("port", "5432"), params.get("user", "postgres")
        try:
            yield f"postgresql+psycopg://{user}@{host}:{port}/{name}"
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


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
