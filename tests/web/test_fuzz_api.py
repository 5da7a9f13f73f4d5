"""Every API operation, fuzzed from the app's own OpenAPI description by schemathesis, as every kind of caller.

The description is the app's (`app.openapi()`, what `/openapi.json` serves) and requests go to
the app in-process over ASGI (no server). For each caller (a provider's submitter by session
cookie + CSRF header and by system API token, a provider's viewer, an analyst, a research
requester, a privacy officer, an administrator, and nobody) schemathesis sends every operation
its examples, boundary cases (the coverage phase) and generated requests, valid and invalid,
and every answer must be: no 5xx, a status code the operation documents, a documented content
type, a body matching the documented schema. So the description says what the API really
does for every role, not only for the one allowed in.

The store holds a submission and an approved research extract request under the ids the
description gives as examples, so the examples reach past the refusals into the real work
(`test_the_fuzzing_reached_the_work` checks they still do).

Bounded for CI: a few generated requests per operation and caller, derandomized with a fixed
seed (the same requests every run; no example database), no deadline. CLDX_FUZZ_EXAMPLES and
CLDX_FUZZ_SEED widen or vary a run by hand. SQLite for every caller; PostgreSQL (as a member of
cldx_app, so row-level security applies) for the system token, the caller that sends the most.
The submissions API's own properties on both backends stay in tests/web/api/test_fuzz_submissions_api.py.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from psycopg import sql
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance
from sqlalchemy import select
from sqlalchemy.engine import make_url

from cldx.access import sessions, tokens, totp
from cldx.access.roles import ADMINISTRATOR, ANALYST, PRIVACY_OFFICER, PROVIDER_ROLES, PROVIDER_SUBMITTER, PROVIDER_VIEWER, RESEARCH_REQUESTER
from cldx.config import Settings
from cldx.export.research import decide_extract, request_extract
from cldx.identity.vault import ensure_key_files
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit
from cldx.store.db import write_transaction
from cldx.store.migrate import upgrade
from cldx.store.models import Provider, User
from cldx.store.registry import seed_service_lines
from cldx.store.scope import APP_ROLE
from cldx.web.api.submissions import EXAMPLE_SUBMISSION_ID
from cldx.web.app import create_app
from cldx.web.auth import CSRF_HEADER, SESSION_COOKIE

from .conftest import add_user

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SEED = int(os.environ.get("CLDX_FUZZ_SEED", "20161001"))
# Generated requests per operation and caller, beyond the examples and the coverage phase's cases.
MAX_EXAMPLES = int(os.environ.get("CLDX_FUZZ_EXAMPLES", "6"))
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))

PROVIDER, OTHER_PROVIDER = "P0001", "P0002"  # P0001: the provider of the description's example batch
EXAMPLE_REFERENCE = "RX-2017-0001"  # the description's example research extract reference
CLIENTS = (
    "client_ref,family_name,given_names,date_of_birth,gender,primary_ethnicity,area,notified_of_sharing_on\r\n"
    "FZ01,Fuzzname,Aroha,1984-11-23,2,11,153200,2017-04-25\r\n"
    "FZ02,Fuzzname,Bea,1979-10-27,zz,11,153200,2017-04-25\r\n"  # gender zz: rejected, so .../rejected has a row
).encode()


@dataclass(frozen=True)
class Caller:
    name: str
    roles: tuple[tuple[str, str | None], ...] = ()  # none (and no token): nobody
    token: bool = False  # the provider's system token instead of a page session


CALLERS = [
    Caller("submitter (session)", ((PROVIDER_SUBMITTER, PROVIDER),)),
    Caller("submitter (system token)", token=True),
    Caller("viewer", ((PROVIDER_VIEWER, PROVIDER),)),
    Caller("analyst", ((ANALYST, None),)),
    Caller("research requester", ((ANALYST, None), (RESEARCH_REQUESTER, None))),
    Caller("privacy officer", ((PRIVACY_OFFICER, None),)),
    Caller("administrator", ((ADMINISTRATOR, None),)),
    Caller("nobody"),
]
POSTGRES_CALLER = "submitter (system token)"


@dataclass
class FuzzStore:
    app: FastAPI
    headers: dict[str, dict[str, str]]  # caller -> the headers that say who is asking
    answers: Counter = field(default_factory=Counter)  # (caller, method, path, status) -> how many


def seed_store(url: str, analytic_dir: Path) -> FuzzStore:
    """The app on a migrated `url` with two providers, a stored submission with a rejected row and an
    approved research extract request (under the description's example ids), and each caller signed in.

    Ministry callers' sessions have their second factor done, as after the code page."""
    # The analytic folder given: module fixtures start before the per-test CLDX_ANALYTIC_DIR is set.
    app = create_app(Settings(database_url=url, embedded_worker=False, analytic_dir=analytic_dir))
    engine = app.state.engine
    with write_transaction(engine) as session:
        seed_service_lines(session)
        session.add_all([Provider(code=PROVIDER, name="Fuzz Trust", region_code="09"),
                         Provider(code=OTHER_PROVIDER, name="Other Trust", region_code="09")])
        session.flush()
        provider_id = session.scalar(select(Provider.id).where(Provider.code == PROVIDER))
        _, system_token = tokens.issue(session, tokens.SYSTEM, "Fuzz case system", created_by="test", provider_id=provider_id)
    receipt = submit(engine, provider=PROVIDER, files=[SourceFile("clients.csv", CLIENTS)], period="2017-08", submitter="seed",
                     channel="web", submission_id=EXAMPLE_SUBMISSION_ID)
    assert receipt.status == "partial", receipt

    headers: dict[str, dict[str, str]] = {}
    users = {}
    for caller in CALLERS:
        if caller.token:
            headers[caller.name] = {"Authorization": f"Bearer {system_token}"}
        elif not caller.roles:
            headers[caller.name] = {}
        else:
            ministry = any(role not in PROVIDER_ROLES for role, _ in caller.roles)
            user = users[caller.name] = add_user(engine, "fuzz." + caller.name.split()[0], *caller.roles,
                                                 totp_secret=totp.new_secret() if ministry else None)
            with write_transaction(engine) as session:
                row, session_id = sessions.start(session, session.get(User, user.id), second_factor_done=True)
                headers[caller.name] = {"Cookie": f"{SESSION_COOKIE}={session_id}", CSRF_HEADER: row.csrf_token}
    researcher, officer = users["research requester"], users["privacy officer"]
    with write_transaction(engine) as session:
        # Asked "in 2017", so its reference is the example's; requests the fuzzing makes are this year's.
        reference = request_extract(session, actor=researcher.username, user_id=researcher.id, period="2017-07:2017-09",
                                    purpose="Fuzzing: an approved request to try the download on.", today=date(2017, 10, 1)).reference
    assert reference == EXAMPLE_REFERENCE
    with write_transaction(engine) as session:
        decide_extract(session, reference, approve=True, note="", actor=officer.username, user_id=officer.id)
    return FuzzStore(app, headers)


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory, key_files) -> FuzzStore:
    """One SQLite store for the module: callers only read it, or add submissions and requests of their own."""
    folder = tmp_path_factory.mktemp("fuzz-api")
    url = f"sqlite:///{folder / 'cldx.db'}"
    upgrade(url)
    return seed_store(url, folder / "analytic")


@pytest.fixture(scope="module")
def postgres_fuzz_store(tmp_path_factory, key_files) -> Iterator[FuzzStore]:
    """The same on a fresh PostgreSQL database, the app connected as a login role in cldx_app
    (no superuser, no BYPASSRLS), as deployed: row-level security applies to every request."""
    from tests.conftest import fresh_postgres_database

    made = fresh_postgres_database("cldx_fuzz_api")
    url = next(made)
    try:
        upgrade(url)
        login = f"cldx_fuzz_{uuid.uuid4().hex[:10]}"
        admin_dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(login), sql.Identifier(APP_ROLE)))
        store = seed_store(make_url(url).set(username=login).render_as_string(hide_password=False),
                           tmp_path_factory.mktemp("fuzz-api-postgresql") / "analytic")
        try:
            yield store
        finally:
            store.app.state.engine.dispose()
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                admin.execute(sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s"), (login,))
                admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(login)))
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))
    finally:
        made.close()


@pytest.fixture(params=[c.name for c in CALLERS])
def caller(request) -> str:
    return request.param


def openapi_document() -> dict:
    """The app's OpenAPI description, from an app on a throwaway in-memory store.

    Built at import because schemathesis makes its tests (one per operation) when pytest collects
    the module: its fixture-based loader, `schemathesis.pytest.from_fixture`, fails on pytest 9
    (it sets `Node._nodeid`, which pytest 9 no longer has). The description depends on the routes
    alone, so keys made for the moment serve; the requests go to the seeded app."""
    with tempfile.TemporaryDirectory(prefix="cldx-openapi-") as folder:
        keys = (Path(folder) / "keys.json", Path(folder) / "linkage.json")
        ensure_key_files(*keys)
        app = create_app(Settings(database_url="sqlite://", key_file=keys[0], linkage_secret_file=keys[1], embedded_worker=False))
        try:
            return app.openapi()
        finally:
            app.state.engine.dispose()


schema = schemathesis.openapi.from_dict(openapi_document(), config=schemathesis.Config.from_dict({
    "seed": SEED,
    "generation": {"deterministic": True, "database": "none", "max-examples": MAX_EXAMPLES},
}))


def call(case, store: FuzzStore, caller: str) -> None:
    """Send the case to the store's app as `caller` and check the answer against the description."""
    response = case.call_and_validate(app=store.app, headers=store.headers[caller], checks=CHECKS)
    store.answers[caller, case.method, case.path, response.status_code] += 1


@schema.parametrize()
@FUZZ
def test_api_answers_as_documented(case, caller: str, fuzz_store: FuzzStore) -> None:
    call(case, fuzz_store, caller)


@schema.parametrize()
@FUZZ
@pytest.mark.postgres
@pytest.mark.parametrize("caller", [POSTGRES_CALLER])  # also gives each operation's test its own id (xdist needs them unique)
def test_api_answers_as_documented_on_postgresql(case, caller: str, postgres_fuzz_store: FuzzStore) -> None:
    call(case, postgres_fuzz_store, caller)


# What each caller must have got at least once: the examples reach the work, not only the refusals.
REACHED = [
    ("submitter (session)", "POST", "/api/v1/submissions", 201),
    ("submitter (system token)", "POST", "/api/v1/submissions", 201),
    ("viewer", "GET", "/api/v1/submissions/{submission_id}/rejected", 200),
    ("analyst", "GET", "/api/v1/reports/{name}", 200),
    ("research requester", "POST", "/api/v1/research-extracts", 201),
    ("research requester", "GET", "/api/v1/research-extracts/{reference}/download", 200),
    ("privacy officer", "GET", "/api/v1/research-extracts/{reference}", 200),
]


def test_the_fuzzing_reached_the_work(fuzz_store: FuzzStore) -> None:
    if not fuzz_store.answers:
        pytest.skip("the fuzzing test did not run (deselected)")
    missing = [r for r in REACHED if not fuzz_store.answers[r]]
    assert not missing, f"never answered (caller, method, path, status): {missing}; the description's examples no longer reach the app's work"
