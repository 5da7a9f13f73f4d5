"""Engines and sessions: one place that knows how to connect to SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


class _HideRowValues(logging.Filter):
    """Keep SQLAlchemy's DEBUG line for each result row but not the row's values.

    Rows hold CSRF tokens, file names (staff name files after clients) and sealed identity;
    `hide_parameters` (below) covers what goes in, this what comes out, so turning SQL logging
    up to find a problem does not copy the store into the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Row %r":
            record.msg, record.args = "Row (values hidden)", ()
        return True


def _hide_values_from_logs() -> None:
    engine_logger = logging.getLogger("sqlalchemy.engine.Engine")
    if not any(isinstance(f, _HideRowValues) for f in engine_logger.filters):
        engine_logger.addFilter(_HideRowValues())


def make_engine(url: str, *, default_scope: str | None = None, **kwargs) -> Engine:
    """An engine for `url`, with SQLite set up to behave like a real database.

    SQLite enforces foreign keys only when asked, and WAL lets readers (the web app) carry on
    while a submission is being written. On PostgreSQL, `default_scope="all"` lets trusted
    ministry-side tools (the CLI, the worker) read across providers under row-level security
    without scoping each transaction; without it an unscoped transaction sees no provider rows.

    SQL parameters never reach a log or an error's text (`hide_parameters`), nor result rows a
    log (`_HideRowValues`): they are names, tokens and file names as often as they are ids.
    """
    kwargs.setdefault("hide_parameters", True)
    _hide_values_from_logs()
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            # cldx says when transactions begin (below) instead of letting pysqlite guess.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            if ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection) -> None:
            # A writer takes SQLite's write lock up front (IMMEDIATE), so it waits its turn
            # instead of failing when it upgrades a read transaction another writer overtook.
            if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                return  # asked for no transaction (a pragma that works only outside one, say)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if connection.info.pop(IMMEDIATE, False) else "BEGIN")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    if default_scope is not None:

        @event.listens_for(engine, "connect")
        def _default_scope(dbapi_connection, _record) -> None:
            # The scope a transaction has when it sets none itself (see cldx.store.scope).
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT set_config('cldx.scope', %s, false)", (default_scope,))
            dbapi_connection.commit()

    return engine


IMMEDIATE = "cldx_begin_immediate"


@contextmanager
def write_transaction(engine: Engine, *, lock: int | None = None) -> Iterator[Session]:
    """A session for a transaction that writes, serialised with other writers of the same `lock`.

    SQLite allows one writer at a time, so the write lock is taken at BEGIN. PostgreSQL runs
    writers in parallel; `lock` (a provider id, say) takes a transaction-scoped advisory lock
    so two submissions for the same provider never interleave.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.info[IMMEDIATE] = True
        with connection.begin():
            if lock is not None:
                lock_for_writing(connection, lock)
            with Session(bind=connection, expire_on_commit=False) as session:
                yield session
                session.flush()


def lock_for_writing(connection, lock: int) -> None:
    """Wait for, then hold until the transaction ends, PostgreSQL's advisory lock `lock` (nothing on SQLite,
    whose write transactions hold the one write lock anyway)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (lock,))


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work is committed together, or rolled back on any error.

    On SQLite it takes the write lock at BEGIN: a transaction that reads and then writes would
    otherwise fail at once ("database is locked") whenever another writer committed between
    its read and its write. Work that only reads uses `read_transaction`.
    """
    with write_transaction(engine) as session:
        yield session


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Session]:
    """A session for reading only: on SQLite it takes no write lock, so it never waits for writers."""
    with make_session_factory(engine)() as session, session.begin():
        yield session
