"""The schema: migrations up and down on both backends, and the models they must match."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from cldx.store import make_engine, transaction
from cldx.store.migrate import current_revision, downgrade, head_revision, upgrade
from cldx.store.models import IDENTITY_MODELS, RECORD_MODELS, Base, Provider

IDENTIFYING_COLUMNS = {"family_name", "given_names", "date_of_birth"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_run_up_down_and_up_again(database_url):
    upgrade(database_url)
    assert set(Base.metadata.tables) <= _tables(database_url)
    downgrade(database_url, "base")
    assert _tables(database_url) <= {"alembic_version"}
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_models_match_the_migrated_schema(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == [], f"models and migrations disagree; write a migration: {differences}"


def test_names_and_birth_dates_live_only_in_identity_tables(engine):
    inspector = inspect(engine)
    for name, model in RECORD_MODELS.items():
        columns = {c["name"] for c in inspector.get_columns(model.__tablename__)}
        assert not columns & IDENTIFYING_COLUMNS, f"{name} holds identifying columns {columns & IDENTIFYING_COLUMNS}"
    for model in IDENTITY_MODELS.values():
        columns = {c["name"] for c in inspector.get_columns(model.__tablename__)}
        assert IDENTIFYING_COLUMNS <= columns


def test_timestamps_come_back_as_aware_utc(engine):
    in_auckland = datetime(2017, 7, 20, 9, 30, tzinfo=timezone(timedelta(hours=12)))
    with transaction(engine) as session:
        session.add(Provider(code="P1", name="Test", region_code="01", created_at=in_auckland, updated_at=in_auckland))
    with transaction(engine) as session:
        stored = session.scalar(select(Provider.created_at))
    assert stored == in_auckland
    assert stored.utcoffset() == timedelta(0)
