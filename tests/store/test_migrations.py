"""The schema: migrations up and down on both backends, and the models they must match."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
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


def test_dropping_the_record_keys_to_submissions_keeps_a_stored_roll_out_whole(database_url):
    """0012 and 0013 copy the client, dependant and engagement tables on SQLite, while engagements refer to clients."""
    from sqlalchemy import exc, insert, text

    from cldx.store.models import Client, Engagement, ServiceLine, Submission

    upgrade(database_url, "0011")
    engine = make_engine(database_url, default_scope="all")
    now = datetime(2018, 7, 1, tzinfo=timezone.utc)
    stamps = {"created_at": now, "updated_at": now}
    try:
        with engine.begin() as connection:
            connection.execute(insert(Provider.__table__).values(id=1, code="P1", name="Test", region_code="01", **stamps))
            connection.execute(insert(ServiceLine.__table__).values(code="FS", name="Family Start", **stamps))
            connection.execute(insert(Submission.__table__).values(
                id="s-1", provider_id=1, period="2018-06", received_at=now, submitter="t", channel="test", status="accepted",
                mode="partial", standard_version="1"))
            sent = {"provider_id": 1, "first_submission_id": "s-1", "last_submission_id": "s-1", **stamps}
            connection.execute(insert(Client.__table__), [
                {"client_ref": f"C-{i}", "gender": "2", "primary_ethnicity": "21", "area": "100100", "identity_consent": True, **sent}
                for i in range(5)])
            connection.execute(insert(Engagement.__table__), [
                {"engagement_ref": f"E-{i}", "client_ref": f"C-{i}", "service_code": "FS", "start_date": now.date(), **sent}
                for i in range(5)])
    finally:
        engine.dispose()

    upgrade(database_url)

    engine = make_engine(database_url, default_scope="all")
    try:
        inspector = inspect(engine)
        for table in ("client", "dependant", "engagement"):
            assert "submission" not in {k["referred_table"] for k in inspector.get_foreign_keys(table)}, table
        assert {k["referred_table"] for k in inspector.get_foreign_keys("engagement")} == {"client"}  # 0013: not service_line
        assert inspector.get_foreign_keys("client") == []  # 0013: not provider
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM client")).scalar_one() == 5
            assert connection.execute(text("SELECT count(*) FROM engagement")).scalar_one() == 5
        # The composite key to the client still holds.
        with pytest.raises(exc.IntegrityError), engine.begin() as connection:
            connection.execute(insert(Engagement.__table__).values(
                engagement_ref="E-9", client_ref="C-9", service_code="FS", start_date=now.date(), provider_id=1, **stamps))
    finally:
        engine.dispose()
