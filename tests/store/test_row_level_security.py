"""Provider isolation in PostgreSQL itself: the application's role sees only its provider's rows.

The rest of the suite connects as the superuser, which bypasses row-level security; these tests
connect as a login role that is a member of `cldx_app`, as a deployment's web app does, and run
deliberately unscoped queries (no WHERE on provider) to show the database keeps providers apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.engine import make_url

from cldx.store import make_engine, transaction
from cldx.store.models import Client, ClientIdentity, Provider, QuarantinedRow, Submission
from cldx.store.scope import APP_ROLE, SCOPED_TABLES, set_scope
from cldx.store.migrate import upgrade

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url(request) -> str:
    url = request.getfixturevalue("postgres_database")
    from tests.conftest import _reset_postgres

    _reset_postgres(url)
    upgrade(url)
    return url


@pytest.fixture
def app_engine(pg_url: str) -> Iterator[Engine]:
    """An engine connected as a fresh login role that is a member of cldx_app (no superuser, no BYPASSRLS)."""
    login = f"cldx_rls_{uuid.uuid4().hex[:10]}"
    admin_dsn = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(login), sql.Identifier(APP_ROLE)))
    engine = make_engine(make_url(pg_url).set(username=login).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(login)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))


def _seed(url: str) -> tuple[int, int]:
    """Two providers, each with a submission, a client, its identity and a quarantined row (as the superuser)."""
    engine = make_engine(url)
    ids = []
    try:
        with transaction(engine) as session:
            for code in ("P1", "P2"):
                provider = Provider(code=code, name=f"Trust {code}", region_code="09")
                session.add(provider)
                session.flush()
                ids.append(provider.id)
                submission = Submission(id=str(uuid.uuid4()), provider_id=provider.id, period="2017-01", submitter="t", channel="test",
                                        status="accepted", mode="partial", standard_version="1.1")
                session.add(submission)
                session.flush()
                session.add(Client(provider_id=provider.id, client_ref=f"{code}-C1", gender="2", primary_ethnicity="21", area="100100"))
                session.flush()
                session.add(ClientIdentity(provider_id=provider.id, client_ref=f"{code}-C1"))  # values not needed here
                session.add(QuarantinedRow(submission_id=submission.id, record_type="client", file="clients.csv", row=2, cells="enc1:x:z"))
    finally:
        engine.dispose()
    return ids[0], ids[1]


def test_every_provider_table_has_a_forced_policy(pg_url: str):
    engine = make_engine(pg_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, count(p.polname) FROM pg_class c "
                "LEFT JOIN pg_policy p ON p.polrelid = c.oid WHERE c.relname = ANY(:tables) GROUP BY 1, 2, 3"), {"tables": list(SCOPED_TABLES)}).all()
    finally:
        engine.dispose()
    assert sorted(r[0] for r in rows) == sorted(SCOPED_TABLES)
    assert all(enabled and forced and policies == 1 for _, enabled, forced, policies in rows)


def test_an_unscoped_query_as_the_application_role_sees_no_foreign_rows(pg_url: str, app_engine: Engine):
    first, second = _seed(pg_url)
    with app_engine.connect() as connection, connection.begin():
        # No scope at all: a query that forgot its WHERE sees nothing, not everything.
        assert connection.execute(select(func.count()).select_from(Client)).scalar_one() == 0
    with app_engine.connect() as connection, connection.begin():
        set_scope(connection, provider_id=first)
        for model in (Client, ClientIdentity, Submission):
            rows = connection.execute(select(model.__table__.c.provider_id)).scalars().all()
            assert rows == [first], model.__tablename__
        # Rows that name their provider only through their submission are kept apart too.
        assert connection.execute(select(func.count()).select_from(QuarantinedRow)).scalar_one() == 1
        # An unscoped UPDATE or DELETE touches only the provider's own rows.
        assert connection.execute(text("UPDATE client SET area = '076'")).rowcount == 1
        assert connection.execute(text("DELETE FROM quarantined_row")).rowcount == 1
    with app_engine.connect() as connection, connection.begin():
        set_scope(connection, everything=True)
        assert sorted(connection.execute(select(Client.provider_id)).scalars()) == [first, second]
        assert connection.execute(text("SELECT area FROM client WHERE provider_id = :p"), {"p": second}).scalar_one() == "100100"


def test_writing_a_row_for_another_provider_is_refused(pg_url: str, app_engine: Engine):
    first, second = _seed(pg_url)
    with pytest.raises(DBAPIError, match="row-level security"):
        with app_engine.connect() as connection, connection.begin():
            set_scope(connection, provider_id=first)
            connection.execute(text("INSERT INTO client (provider_id, client_ref, gender, primary_ethnicity, area, identity_consent, "
                                    "created_at, updated_at) VALUES (:p, 'X-1', '2', '21', '100100', true, now(), now())"), {"p": second})
    with pytest.raises(DBAPIError, match="row-level security"):
        with app_engine.connect() as connection, connection.begin():
            set_scope(connection, provider_id=first)
            connection.execute(text("UPDATE client SET provider_id = :p"), {"p": second})


def test_the_application_cannot_rewrite_the_audit_trail(pg_url: str, app_engine: Engine):
    with pytest.raises(DBAPIError, match="permission denied"):
        with app_engine.connect() as connection, connection.begin():
            connection.execute(text("DELETE FROM audit_event"))


CLIENTS = ("action,client_ref,family_name,given_names,date_of_birth,gender,primary_ethnicity,area,notified_of_sharing_on\n"
           ",C-1,Pōmare,Hēmi,1985-12-19,11,21,100100,2017-01-02\n,C-2,Ngata,Aroha,1990-05-17,2,21,100100,\n")


def test_submissions_and_the_worker_run_as_the_application_role(pg_url: str, app_engine: Engine, vault):
    """The real code paths scope their own transactions, so they work under row-level security."""
    from cldx.identity.vault import bind_vault
    from cldx.ingest.queue import enqueue, work_once
    from cldx.ingest.sources import SourceFile
    from cldx.ingest.submit import submit
    from cldx.store.registry import seed_service_lines

    first, second = _seed(pg_url)
    admin = make_engine(pg_url)
    with transaction(admin) as session:
        seed_service_lines(session)
    admin.dispose()
    bind_vault(app_engine, vault)
    receipt = submit(app_engine, provider="P1", files=[SourceFile("clients.csv", CLIENTS.encode())], submitter="t", channel="test")
    assert receipt.status == "accepted" and receipt.counts["new"] == 2
    queued = enqueue(app_engine, provider="P2", files=[SourceFile("clients.csv", CLIENTS.encode())], period=None, mode="partial",
                     submitter="t", channel="test")
    assert work_once(app_engine)
    with app_engine.connect() as connection, connection.begin():
        set_scope(connection, provider_id=second)
        assert connection.execute(select(Submission.status).where(Submission.id == queued)).scalar_one() == "accepted"
        assert sorted(connection.execute(select(Client.client_ref)).scalars()) == ["C-1", "C-2", "P2-C1"]
