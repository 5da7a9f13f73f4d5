"""Fixtures for the web app: an app on a fresh SQLite database, TestClients (anonymous and signed
in as a persona), a live server and a real headless Chromium.

Every page and endpoint but sign-in, /health and /openapi.json needs a signed-in principal.
`make_user` adds a user straight to the store (with a cheap argon2 hash, so tests stay fast),
`client_for(user)` gives a TestClient carrying a fresh session cookie for them and, as a
default header, the session's CSRF token (a test about CSRF leaves it off), and
`sign_in_browser(page, user)` puts a session cookie in a Playwright page's context.
`ministry_client` is an analyst who has given their code: the whole-store view.

Page tests reuse `live_server` (the app served by uvicorn on 127.0.0.1 and a free port) and
`page` (a Playwright page in a fresh browser context whose base URL is that server). Every
browser test fails if the page logged a console error, threw, had a request fail, or asked
another host for anything (a CSP violation is a console error in Chromium); a failing browser
test leaves a screenshot in `test-artifacts/`.

Chromium is Debian's `/usr/bin/chromium`. Without it the browser tests are skipped with the
reason, unless CLDX_REQUIRE_BROWSER=1 (CI), where that is a failure.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from cldx.access import sessions, totp
from cldx.access.roles import ANALYST, PRIVACY_OFFICER, RESEARCH_REQUESTER
from cldx.config import Settings
from cldx.identity.vault import vault_of
from cldx.store.db import make_engine, transaction, write_transaction
from cldx.store.migrate import upgrade
from cldx.store.models import Provider, User, UserRole
from cldx.web.app import create_app
from cldx.web.auth import CSRF_HEADER, SESSION_COOKIE

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT_S = 10.0

_reports = pytest.StashKey[dict[str, pytest.TestReport]]()


# --- The app on a fresh database -------------------------------------------------------------


@pytest.fixture
def web_db_url(tmp_path: Path) -> str:
    """A SQLite file in tmp_path with the schema at head."""
    url = f"sqlite:///{tmp_path / 'cldx.db'}"
    upgrade(url)
    return url


@pytest.fixture
def web_settings(web_db_url: str, request: pytest.FixtureRequest) -> Settings:
    """Settings for the app under test; a test changes some through indirect parametrization:
    `@pytest.mark.parametrize("web_settings", [{"queue_threshold_bytes": 1}], indirect=True)`."""
    overrides = getattr(request, "param", {})
    return Settings(database_url=web_db_url, **overrides)


@pytest.fixture
def web_app(web_settings: Settings) -> FastAPI:
    return create_app(web_settings)


# HTTPS, so the client sends the Secure session cookie back.
BASE_URL = "https://testserver"


@pytest.fixture
def app_client(web_app: FastAPI) -> Iterator[TestClient]:
    """An anonymous TestClient that answers 500s like a server would (instead of raising in the
    test). It runs the app's lifespan (the embedded worker), which `client_for` clients share."""
    with TestClient(web_app, base_url=BASE_URL, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def new_client(web_app: FastAPI, app_client: TestClient) -> Callable[[], TestClient]:
    """Another anonymous browser (its own cookies) on the same app."""
    return lambda: TestClient(web_app, base_url=BASE_URL, raise_server_exceptions=False)


# --- Personas ----------------------------------------------------------------------------------

# argon2id at its cheapest: the hash is checked with the parameters it carries, so sign-in works
# the same, in a millisecond instead of a tenth of a second.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "kettle harbour umbrella"


@dataclass(frozen=True)
class Persona:
    id: int
    username: str
    password: str
    totp_secret: str | None = None


@pytest.fixture
def make_user(web_app: FastAPI) -> Callable[..., Persona]:
    """Add a user with roles given as (role, provider code or None); optionally with a TOTP secret set up."""
    engine = web_app.state.engine

    def make(username: str, *roles: tuple[str, str | None], **kwargs) -> Persona:
        return add_user(engine, username, *roles, **kwargs)

    return make


def add_user(engine, username: str, *roles: tuple[str, str | None], password: str = PASSWORD, totp_secret: str | None = None,
             confirmed: bool = True, active: bool = True) -> Persona:
    """`make_user` on any engine (a module-scoped app's, e.g.)."""
    with write_transaction(engine) as session:
        user = User(username=username, display_name=username.title(), password_hash=CHEAP_HASHER.hash(password), is_active=active,
                    failed_sign_ins=0, password_changed_at=datetime.now(timezone.utc))
        if totp_secret is not None:
            user.totp_secret = totp.seal_secret(vault_of(engine).keys, totp_secret)
            # A confirmed factor has had a code accepted (long ago); an unconfirmed one never has.
            user.totp_last_step = 1 if confirmed else None
        session.add(user)
        session.flush()
        for role, code in roles:
            provider_id = session.scalar(select(Provider.id).where(Provider.code == code)) if code else None
            assert code is None or provider_id is not None, f"no provider {code}"
            session.add(UserRole(user_id=user.id, role=role, provider_id=provider_id))
        return Persona(user.id, username, password, totp_secret)


@pytest.fixture
def session_cookie(web_app: FastAPI) -> Callable[..., tuple[str, str]]:
    """A new session for a user: (cookie value, CSRF token). By default the second factor is done."""
    engine = web_app.state.engine

    def start(user: Persona, *, second_factor_done: bool = True) -> tuple[str, str]:
        with write_transaction(engine) as session:
            row, session_id = sessions.start(session, session.get(User, user.id), second_factor_done=second_factor_done)
            return session_id, row.csrf_token

    return start


@pytest.fixture
def client_for(web_app: FastAPI, app_client: TestClient, session_cookie) -> Callable[..., TestClient]:
    """A TestClient signed in as `user` (its own session), sending the CSRF token unless told not to."""

    def make(user: Persona, *, csrf: bool = True, second_factor_done: bool = True) -> TestClient:
        session_id, csrf_token = session_cookie(user, second_factor_done=second_factor_done)
        client = TestClient(web_app, base_url=BASE_URL, raise_server_exceptions=False)
        client.cookies.set(SESSION_COOKIE, session_id)
        if csrf:
            client.headers[CSRF_HEADER] = csrf_token
        client.csrf_token = csrf_token  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def analyst(make_user) -> Persona:
    return make_user("ana.lyst", (ANALYST, None), totp_secret=totp.new_secret())


@pytest.fixture
def ministry_client(client_for, analyst: Persona) -> TestClient:
    """Signed in as an analyst (code given): sees the whole store's counts."""
    return client_for(analyst)


@pytest.fixture
def sign_in_browser(web_app: FastAPI, live_server: str, session_cookie) -> Callable[..., None]:
    """Sign a Playwright page's context in as `user` (a session cookie, as the sign-in form sets)."""

    def sign_in(page, user: Persona) -> None:
        """`page` is a Page or a BrowserContext."""
        session_id, _ = session_cookie(user)
        context = getattr(page, "context", page)
        context.add_cookies([{"name": SESSION_COOKIE, "value": session_id, "url": live_server + "/", "httpOnly": True,
                                   "secure": True, "sameSite": "Lax"}])

    return sign_in


@pytest.fixture
def add_provider(web_db_url: str) -> Iterator[Callable[..., None]]:
    """Insert a provider straight into the test database (the registry import is not needed)."""
    engine = make_engine(web_db_url)

    def add(code: str, name: str = "Test provider", region_code: str = "09") -> None:
        with transaction(engine) as session:
            session.add(Provider(code=code, name=name, region_code=region_code))

    yield add
    engine.dispose()


# --- A live server and a real browser ----------------------------------------------------------


@pytest.fixture
def live_server(web_app: FastAPI) -> Iterator[str]:
    """Serve `web_app` with uvicorn in a background thread; yields the base URL (no trailing /)."""
    with serve(web_app) as url:
        yield url


@contextmanager
def serve(web_app: FastAPI) -> Iterator[str]:
    """`live_server` for any app and scope (a module's own, e.g.); yields the base URL.

    The socket is bound here (port 0) and handed to uvicorn, so there is no race for the port.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(web_app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="cldx-live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            sock.close()
            pytest.fail("uvicorn stopped before it started serving")
        if time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            pytest.fail(f"uvicorn did not start within {SERVER_START_TIMEOUT_S} s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SERVER_START_TIMEOUT_S)
        sock.close()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, for the whole session."""
    reason = None
    if not CHROMIUM.exists():
        reason = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:
            reason = f"Python playwright is not installed: {exc}"
    if reason is not None:
        if os.environ.get("CLDX_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (CLDX_REQUIRE_BROWSER=1, so this is a failure)")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page_problems() -> list[str]:
    """What went wrong in the browser during a test: console errors, page errors, failed requests,
    requests to other hosts. A test that provokes one on purpose removes it from the list."""
    return []


@pytest.fixture
def page(browser, live_server: str, page_problems: list[str], request: pytest.FixtureRequest):
    """A page in a fresh browser context whose base URL is the live server (`page.goto("/")`)."""
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)

    def on_console(message) -> None:
        if message.type == "error":
            page_problems.append(f"console error: {message.text}")

    def on_request(req) -> None:
        if not (req.url.startswith(live_server + "/") or req.url.startswith("data:")):
            page_problems.append(f"request to another host: {req.url}")

    # A request aborted after its answer arrived is the page moving on, not a failure: the upload page
    # opens the receipt from the XHR's load handler, and Chromium sometimes reports the POST as
    # aborted when that navigation commits before it has marked the response's body as read.
    answered: set = set()

    def on_request_failed(req) -> None:
        if req in answered and "ERR_ABORTED" in (req.failure or ""):
            return
        page_problems.append(f"request failed: {req.url} ({req.failure})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: page_problems.append(f"page error: {error}"))
    page.on("response", lambda response: answered.add(response.request))
    page.on("requestfailed", on_request_failed)
    page.on("request", on_request)

    yield page

    reports = request.node.stash.get(_reports, {})
    failed = any(report.failed for report in reports.values())
    if failed or page_problems:
        _screenshot(page, request.node.nodeid, request.config.rootpath)
    context.close()
    if page_problems and not failed:
        pytest.fail("the browser reported problems:\n" + "\n".join(page_problems))


def _screenshot(page, nodeid: str, rootpath: Path) -> None:
    artifacts = rootpath / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")
    try:
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    except Exception as exc:  # a screenshot is a courtesy; never hide the real failure
        print(f"could not save a screenshot for {nodeid}: {exc}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item, so the `page` fixture knows the test failed."""
    report = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


# --- The access matrix: every route, as every persona, against each provider's objects ---------
#
# Shared by tests/web/test_access_matrix.py (no cross-provider read or write) and
# tests/web/test_purpose.py (identity only to the provider that sent it, or to the privacy
# officer under a Privacy Act request). A test module opts in by overriding `web_settings` with
# `matrix_settings` (SQLite, then PostgreSQL as a non-superuser member of cldx_app, so
# row-level security is in force) and asks for `access_matrix`.
#
# Routes are enumerated from the app, so a new route is called automatically; a route whose
# path or required query parameters the matrix does not know how to fill is listed in
# `MatrixRun.unknown_routes`, which the tests require to be empty (add its parameter below).

MATRIX_PROVIDERS = {"A": ("P0001", "Provider A Trust"), "B": ("P0002", "Provider B Trust")}
MATRIX_PERIOD, MATRIX_QUEUED_PERIOD, MATRIX_WRITE_PERIOD = "2017-08", "2017-09", "2017-10"
MATRIX_FILE = "clients.csv"
MATRIX_CLIENT_HEADER = ["client_ref", "family_name", "given_names", "date_of_birth", "gender", "primary_ethnicity", "area",
                        "notified_of_sharing_on"]
# (client_ref, family name, given names, date of birth, gender): distinctive, so a leak is unmistakable.
# Per provider: two stored, one rejected (gender zz: quarantined, with a finding), one in a queued upload.
MATRIX_PEOPLE = {
    "A": {
        "stored": [("ALPHAREF01", "Alphaprovidername", "Quillonalpha", date(1984, 11, 23), "2"),
                   ("ALPHAREF02", "Alphaprovidername", "Rosamundalpha", date(1979, 10, 27), "2")],
        "rejected": [("ALPHAREF03", "Alphaprovidername", "Thaddeusalpha", date(1991, 12, 14), "zz")],
        "queued": [("ALPHAREF04", "Alphaprovidername", "Ulrikaalpha", date(1988, 10, 19), "2")],
    },
    "B": {
        "stored": [("BETAREF01", "Betaprovidername", "Quillonbeta", date(1983, 12, 16), "2"),
                   ("BETAREF02", "Betaprovidername", "Rosamundbeta", date(1976, 11, 28), "2")],
        "rejected": [("BETAREF03", "Betaprovidername", "Thaddeusbeta", date(1990, 10, 15), "zz")],
        "queued": [("BETAREF04", "Betaprovidername", "Ulrikabeta", date(1987, 12, 21), "2")],
    },
}
UNKNOWN_REFERENCE = "PA-1999-0001"  # a well-formed Privacy Act reference that names no request
# A research extract request (no one's identity, no provider's objects): asked for by the research
# requester persona and approved by the privacy officer persona, so the requester's download is
# really made (once: every later call is a 409).
UNKNOWN_RESEARCH_REFERENCE = "RX-1999-0001"
MATRIX_RESEARCH_PERIOD = "2017-08:2017-10"
RESEARCH_ROUTE_PREFIXES = ("/research", "/api/v1/research-extracts")


def date_forms(day: date) -> list[str]:
    """Every way a page or file might write a date of birth: ISO, dd/mm/yyyy, "23 November 1984"."""
    return [day.isoformat(), day.strftime("%d/%m/%Y"), f"{day.day} {day:%B %Y}"]


def matrix_csv(rows: list[tuple]) -> bytes:
    lines = [",".join(MATRIX_CLIENT_HEADER)]
    for i, (ref, family, given, born, gender) in enumerate(rows):
        # The first row writes its date of birth as dd/mm/yyyy, as Excel users do.
        written = born.strftime("%d/%m/%Y") if i == 0 else born.isoformat()
        lines.append(f"{ref},{family},{given},{written},{gender},11,153200,2017-04-25")
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass(frozen=True)
class SeededProvider:
    label: str  # "A" or "B"
    code: str
    id: int
    stored_id: str  # a processed submission, with a rejected row and findings
    queued_id: str  # a queued upload the worker has not taken (no worker runs)
    people: tuple[tuple, ...]

    @property
    def submission_ids(self) -> tuple[str, str]:
        return (self.stored_id, self.queued_id)

    @property
    def identity(self) -> list[str]:
        """Family names, given names and dates of birth in every form."""
        values = {family for _, family, _, _, _ in self.people} | {given for _, _, given, _, _ in self.people}
        values |= {form for _, _, _, born, _ in self.people for form in date_forms(born)}
        return sorted(values)

    @property
    def client_refs(self) -> list[str]:
        return [ref for ref, *_ in self.people]

    @property
    def identifiers(self) -> list[str]:
        return self.identity + self.client_refs


@dataclass
class MatrixPersona:
    name: str
    provider: str | None  # "A"/"B": the provider whose own data it may see
    capabilities: frozenset[str]
    connect: Callable[[], dict[str, str]]  # the request headers that say who is asking
    per_session: bool  # a page session: a new one after every state-changing request (sign-out ends it)


@dataclass(frozen=True)
class RouteSpec:
    path: str  # as the app declares it: /submissions/{submission_id}
    method: str
    path_params: tuple[str, ...]
    required_query: tuple[str, ...]

    @property
    def names_research_extract(self) -> bool:
        """Its `{reference}` is a research extract request's (RX-...), not a Privacy Act request's."""
        return self.path.startswith(RESEARCH_ROUTE_PREFIXES)

    @property
    def states_purpose(self) -> bool:
        """It names a Privacy Act request: the privacy officer's stated purpose for opening identity."""
        return bool(PURPOSE_PARAMS & set(self.path_params)) and not self.names_research_extract


@dataclass(frozen=True)
class MatrixCall:
    route: str
    method: str
    variant: str  # Accept header for reads; form or json body for writes
    persona: str
    target: str | None  # whose objects the path or body names ("A"/"B"), None for neither
    url: str
    status: int
    location: str
    content_type: str
    attachment: bool
    text: str  # body (JSON also decoded), Location and Content-Disposition, lower-cased
    changed: tuple[str, ...] = ()  # the target provider's tables this (non-owner) write changed
    error: str = ""


@dataclass
class MatrixRun:
    backend: str
    providers: dict[str, SeededProvider]
    personas: list[MatrixPersona]
    routes: list[RouteSpec]
    unknown_routes: list[str]
    calls: list[MatrixCall]
    reference: str  # the Privacy Act request (the privacy officer's stated purpose), about A's first client
    unattributed_changes: list[str]  # provider rows changed by reads or by writes naming another provider
    research_reference: str = ""  # the research extract request, approved, of the research requester persona

    def spec(self, call: MatrixCall) -> RouteSpec:
        return next(s for s in self.routes if s.path == call.route and s.method == call.method)

    def persona(self, name: str) -> MatrixPersona:
        return next(p for p in self.personas if p.name == name)

    def table(self, calls: list[MatrixCall] | None = None) -> str:
        rows = calls if calls is not None else self.calls
        lines = [f"{'METHOD':6} {'ROUTE':48} {'VARIANT':16} {'PERSONA':24} {'TARGET':6} STATUS"]
        lines += [f"{c.method:6} {c.route:48} {c.variant:16} {c.persona:24} {c.target or '-':6} {c.status}"
                  + (f" -> {c.location}" if c.location else "") + (f" CHANGED {','.join(c.changed)}" if c.changed else "")
                  for c in rows]
        return "\n".join(lines)


SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
# Path parameters the matrix knows how to fill, and what they name: a provider's object (called
# with A's and with B's), a request by reference (a Privacy Act request: a stated purpose; or, on
# the research extract routes, a research extract request: see `RouteSpec.states_purpose`), or
# something of nobody's. A reference is called with one that exists and one that does not.
PROVIDER_PARAMS = {"submission_id"}
PURPOSE_PARAMS = {"reference"}
# Reports: the route decides access the same way for every report, so the matrix asks two (reach,
# and providers, the one that names providers) of every persona; every report's own output is
# checked in tests/analysis (test_released_only.py), and asking all seven here took minutes.
FIXED_PARAMS = {"file_name": [MATRIX_FILE], "name": ["reach", "providers"]}
REQUIRED_QUERY = {"file": MATRIX_FILE}
MOUNTS_WITHOUT_DATA = {"/static"}
# Kept out of the before/after comparison: the trail records refusals (not provider data), and a
# token's last use changes when it is used.
DUMP_SKIP = {"audit_event", "web_session"}
DUMP_VOLATILE = {("api_token", "last_used_at")}


def matrix_routes(app: FastAPI) -> tuple[list[RouteSpec], list[str]]:
    """Every (route, method) of the app, and the routes the matrix cannot call (to be added to it)."""
    from fastapi.routing import iter_route_contexts
    from starlette.routing import Mount

    def walk(dependant):
        yield dependant
        for sub in dependant.dependencies:
            yield from walk(sub)

    specs, unknown = [], []
    for ctx in iter_route_contexts(app.routes):
        original = ctx.original_route
        if isinstance(original, Mount):
            if ctx.path not in MOUNTS_WITHOUT_DATA:
                unknown.append(f"mount {ctx.path}: a mounted app the matrix does not call")
            continue
        methods, path = ctx.methods, ctx.path_format
        if not methods or not path:
            unknown.append(f"{type(original).__name__} {ctx.path}: not an HTTP route the matrix can call")
            continue
        dependant = getattr(ctx, "dependant", None)
        if dependant is not None:
            path_params = tuple(dict.fromkeys(p.name for d in walk(dependant) for p in d.path_params))
            required = tuple(dict.fromkeys(q.alias for d in walk(dependant) for q in d.query_params if q.field_info.is_required()))
        else:
            path_params, required = tuple(getattr(ctx, "param_convertors", {}) or {}), ()
        problems = [f"path parameter {{{p}}}" for p in path_params if p not in PROVIDER_PARAMS | PURPOSE_PARAMS | set(FIXED_PARAMS)]
        problems += [f"required query parameter {q}" for q in required if q not in REQUIRED_QUERY]
        for method in sorted(methods - {"HEAD"}) or sorted(methods):
            if problems:
                unknown.append(f"{method} {path}: the matrix does not know how to fill {', '.join(problems)}")
            else:
                specs.append(RouteSpec(path, method, path_params, required))
    return specs, unknown


def provider_rows(engine, provider_id: int) -> dict[str, list[tuple]]:
    """Every row of one provider in every table that names a provider, a submission or a job."""
    from cldx.store.models import Base, Job, Submission

    out: dict[str, list[tuple]] = {}
    submissions = select(Submission.id).where(Submission.provider_id == provider_id)
    jobs = select(Job.id).where(Job.submission_id.in_(submissions))
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in DUMP_SKIP:
                continue
            c = table.c
            if table.name == "provider":
                where = c.id == provider_id
            elif "provider_id" in c:
                where = c.provider_id == provider_id
            elif "submission_id" in c:
                where = c.submission_id.in_(submissions)
            elif "job_id" in c:
                where = c.job_id.in_(jobs)
            else:
                continue
            columns = [col for col in c if (table.name, col.name) not in DUMP_VOLATILE]
            out[table.name] = [tuple(row) for row in conn.execute(select(*columns).where(where).order_by(*table.primary_key.columns))]
    return out


def _text_of(response) -> str:
    body = response.content.decode("utf-8", "replace")
    parts = [body, response.headers.get("location", ""), response.headers.get("content-disposition", "")]
    if "json" in response.headers.get("content-type", ""):
        try:
            parts.append(json.dumps(json.loads(body), ensure_ascii=False))
        except ValueError:
            pass
    return "\n".join(parts).lower()


@pytest.fixture
def matrix_settings(migrated_url: str) -> Iterator[Settings]:
    """Settings on each backend; on PostgreSQL the app connects as a fresh login role in cldx_app
    (no superuser, no BYPASSRLS), as a deployment does, so row-level security applies."""
    if not migrated_url.startswith("postgresql"):
        yield Settings(database_url=migrated_url, embedded_worker=False)
        return
    import uuid

    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    from cldx.store.scope import APP_ROLE

    login = f"cldx_matrix_{uuid.uuid4().hex[:10]}"
    admin_dsn = make_url(migrated_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(login), sql.Identifier(APP_ROLE)))
    try:
        yield Settings(database_url=make_url(migrated_url).set(username=login).render_as_string(hide_password=False), embedded_worker=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s"), (login,))
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(login)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))


_matrix_runs = pytest.StashKey[dict[str, MatrixRun]]()


@pytest.fixture
def access_matrix(request: pytest.FixtureRequest, database_url: str) -> MatrixRun:
    """The matrix's calls on this backend: run once per test session and backend (about 2,000
    requests), then shared by every test that reads it (they only read the recorded calls)."""
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    runs = request.config.stash.setdefault(_matrix_runs, {})
    if backend not in runs:
        runs[backend] = run_access_matrix(request.getfixturevalue("web_app"), request.getfixturevalue("app_client"),
                                          request.getfixturevalue("make_user"), request.getfixturevalue("session_cookie"),
                                          request.getfixturevalue("migrated_url"), backend)
    return runs[backend]


def run_access_matrix(web_app: FastAPI, app_client: TestClient, make_user, session_cookie, migrated_url: str, backend: str) -> MatrixRun:
    """Seed providers A and B, call every route as every persona with A's and B's objects; the calls."""
    from cldx.access import tokens
    from cldx.access.roles import (
        ADMINISTRATOR, CAPABILITIES, PRIVACY_OFFICER, PROVIDER_SUBMITTER, PROVIDER_VIEWER, RESEARCH_REQUESTER,
    )
    from cldx.export.research import decide_extract, request_extract
    from cldx.identity import requests as privacy_requests
    from cldx.ingest.queue import enqueue
    from cldx.ingest.sources import SourceFile
    from cldx.ingest.submit import submit
    from cldx.store.registry import seed_service_lines

    engine = web_app.state.engine
    with write_transaction(engine) as session:
        seed_service_lines(session)
        for code, name in MATRIX_PROVIDERS.values():
            session.add(Provider(code=code, name=name, region_code="09"))
        session.flush()
        ids = dict(session.execute(select(Provider.code, Provider.id)).all())

    providers: dict[str, SeededProvider] = {}
    for label, (code, _) in MATRIX_PROVIDERS.items():
        people = MATRIX_PEOPLE[label]
        receipt = submit(engine, provider=code, files=[SourceFile(MATRIX_FILE, matrix_csv(people["stored"] + people["rejected"]))],
                         period=MATRIX_PERIOD, submitter=f"seed.{label.lower()}", channel="web")
        assert receipt.status == "partial" and receipt.counts["rejected"] == 1, receipt
        queued = enqueue(engine, provider=code, files=[SourceFile(MATRIX_FILE, matrix_csv(people["queued"]))], period=MATRIX_QUEUED_PERIOD,
                         mode="partial", submitter=f"seed.{label.lower()}", channel="api")
        all_people = tuple(people["stored"] + people["rejected"] + people["queued"])
        providers[label] = SeededProvider(label, code, ids[code], receipt.submission_id, queued, all_people)

    subject = MATRIX_PEOPLE["A"]["stored"][0]
    with write_transaction(engine) as session:
        reference = privacy_requests.open_request(session, vault_of(engine), kind="access", family_name=subject[1], given_names=subject[2],
                                                  date_of_birth=subject[3], received_on=date(2017, 11, 1), actor="pia.matrix").reference
        system_tokens = {label: tokens.issue(session, tokens.SYSTEM, f"{label}'s case system", created_by="test", provider_id=p.id)[1]
                         for label, p in providers.items()}

    def caps(*roles: str) -> frozenset[str]:
        return frozenset(c for role in roles for c in CAPABILITIES[role])

    # One client (its portal started once: four times faster than a client per persona); who is
    # asking travels in each request's own headers, and the client's cookie jar is emptied after each.
    def anonymous() -> dict[str, str]:
        return {}

    def bearer(token: str) -> Callable[[], dict[str, str]]:
        return lambda: {"Authorization": f"Bearer {token}"}

    def signed_in(user: Persona, **kwargs) -> Callable[[], dict[str, str]]:
        def connect() -> dict[str, str]:
            session_id, csrf_token = session_cookie(user, **kwargs)
            return {"Cookie": f"{SESSION_COOKIE}={session_id}", CSRF_HEADER: csrf_token}
        return connect

    A, B = providers["A"].code, providers["B"].code
    analyst_user = make_user("matrix.analyst", (ANALYST, None), totp_secret=totp.new_secret())
    researcher_user = make_user("matrix.researcher", (ANALYST, None), (RESEARCH_REQUESTER, None), totp_secret=totp.new_secret())
    privacy_user = make_user("matrix.privacy", (PRIVACY_OFFICER, None), totp_secret=totp.new_secret())
    with write_transaction(engine) as session:
        research_reference = request_extract(session, actor=researcher_user.username, user_id=researcher_user.id, period=MATRIX_RESEARCH_PERIOD,
                                             purpose="The matrix's research extract: who may see, decide and take it.").reference
    with write_transaction(engine) as session:
        decide_extract(session, research_reference, approve=True, note="", actor=privacy_user.username, user_id=privacy_user.id)
    waiting_user = make_user("matrix.waiting", (ANALYST, None), totp_secret=totp.new_secret())
    with write_transaction(engine) as session:
        analyst_token = tokens.issue(session, tokens.PERSONAL, "analyst's token", created_by="test", user_id=analyst_user.id)[1]
    personas = [
        MatrixPersona("anonymous", None, frozenset(), anonymous, False),
        MatrixPersona("A submitter", "A", caps(PROVIDER_SUBMITTER), signed_in(make_user("matrix.a.submitter", (PROVIDER_SUBMITTER, A))), True),
        MatrixPersona("A viewer", "A", caps(PROVIDER_VIEWER), signed_in(make_user("matrix.a.viewer", (PROVIDER_VIEWER, A))), True),
        MatrixPersona("A system token", "A", caps(PROVIDER_SUBMITTER), bearer(system_tokens["A"]), False),
        MatrixPersona("B submitter", "B", caps(PROVIDER_SUBMITTER), signed_in(make_user("matrix.b.submitter", (PROVIDER_SUBMITTER, B))), True),
        MatrixPersona("B viewer", "B", caps(PROVIDER_VIEWER), signed_in(make_user("matrix.b.viewer", (PROVIDER_VIEWER, B))), True),
        MatrixPersona("B system token", "B", caps(PROVIDER_SUBMITTER), bearer(system_tokens["B"]), False),
        MatrixPersona("analyst", None, caps(ANALYST), signed_in(analyst_user), True),
        MatrixPersona("analyst's token", None, caps(ANALYST), bearer(analyst_token), False),
        MatrixPersona("analyst awaiting code", None, frozenset(), signed_in(waiting_user, second_factor_done=False), True),
        MatrixPersona("research requester", None, caps(ANALYST, RESEARCH_REQUESTER), signed_in(researcher_user), True),
        MatrixPersona("privacy officer", None, caps(PRIVACY_OFFICER), signed_in(privacy_user), True),
        MatrixPersona("administrator", None, caps(ADMINISTRATOR), signed_in(make_user(
            "matrix.admin", (ADMINISTRATOR, None), totp_secret=totp.new_secret())), True),
    ]

    routes, unknown = matrix_routes(web_app)

    # What each route is called with: (variant, target, path values, request kwargs).
    def write_bodies(target: SeededProvider) -> list[tuple[str, dict]]:
        # Overwrite the target's first client and add one: what a write across providers would try.
        first = target.people[0]
        rows = [(first[0], "Overwrittenname", "Intrudername", date(1970, 10, 10), "2"), (f"{target.label}INTRUDER", "Intrudername", "Newname",
                                                                                        date(1970, 10, 11), "2")]
        fields = {"provider": target.code, "period": MATRIX_WRITE_PERIOD, "mode": "partial"}
        records = [dict(zip(MATRIX_CLIENT_HEADER, [r[0], r[1], r[2], r[3].isoformat(), r[4], "11", "153200", "2017-04-25"])) for r in rows]
        return [("form", {"data": fields, "files": [("files", (MATRIX_FILE, matrix_csv(rows), "text/csv"))]}),
                ("json", {"json": {**fields, "records": {"clients": records}}})]

    def plans(spec: RouteSpec):
        targets: list[SeededProvider | None]
        if PROVIDER_PARAMS & set(spec.path_params) or spec.method not in SAFE:
            targets = list(providers.values())
        else:
            targets = [None]
        for target in targets:
            choices: list[list[tuple[str, str]]] = []
            for name in spec.path_params:
                if name in PROVIDER_PARAMS:
                    values = list(target.submission_ids)  # type: ignore[union-attr]
                elif name in PURPOSE_PARAMS and spec.names_research_extract:
                    values = [research_reference, UNKNOWN_RESEARCH_REFERENCE]
                elif name in PURPOSE_PARAMS:
                    values = [reference, UNKNOWN_REFERENCE]
                else:
                    values = FIXED_PARAMS[name]
                choices.append([(name, v) for v in values])
            for combo in itertools.product(*choices):
                url = spec.path.format(**{k: quote(v, safe="") for k, v in combo})
                params = {q: REQUIRED_QUERY[q] for q in spec.required_query}
                if spec.method in SAFE:
                    for accept in ("*/*", "application/json", "text/csv"):
                        yield accept, target, url, {"params": params, "headers": {"accept": accept}}
                else:
                    for variant, body in write_bodies(target):  # type: ignore[arg-type]
                        yield variant, target, url, {"params": params, **body}

    def owns(persona: MatrixPersona, target: SeededProvider | None) -> bool:
        return target is not None and persona.provider == target.label

    # Everyone else first, then the providers' own reads, then their own writes (which change their data).
    work = [(persona, spec, *plan) for spec in routes for plan in plans(spec) for persona in personas]
    work.sort(key=lambda w: (owns(w[0], w[3]), owns(w[0], w[3]) and w[1].method not in SAFE))

    dump_engine = make_engine(migrated_url, default_scope="all")  # the superuser: sees every row
    headers: dict[str, dict[str, str]] = {}
    calls: list[MatrixCall] = []
    unattributed: list[str] = []
    try:
        # What each provider holds; no request by anyone but a provider's own may change it.
        held = {label: provider_rows(dump_engine, p.id) for label, p in providers.items()}
        own_writes_from = next((i for i, w in enumerate(work) if owns(w[0], w[3]) and w[1].method not in SAFE), len(work))

        def check_untouched() -> None:
            for label, p in providers.items():
                now = provider_rows(dump_engine, p.id)
                unattributed.extend(f"provider {label}'s {name} changed before its own personas wrote anything"
                                    for name in sorted(now) if now[name] != held[label].get(name))

        for i, (persona, spec, variant, target, url, kwargs) in enumerate(work):
            if i == own_writes_from:
                check_untouched()
            who = headers.get(persona.name) or headers.setdefault(persona.name, persona.connect())
            write = spec.method not in SAFE
            error = ""
            try:
                response = app_client.request(spec.method, url, follow_redirects=False, **{**kwargs, "headers": {**who, **kwargs.get("headers", {})}})
            except Exception as exc:  # noqa: BLE001 - recorded; the tests fail on it
                status, location, content_type, attachment, text, error = 0, "", "", False, "", repr(exc)
            else:
                status, location = response.status_code, response.headers.get("location", "")
                content_type = response.headers.get("content-type", "")
                attachment = response.headers.get("content-disposition", "").lower().startswith("attachment")
                text = _text_of(response)
            finally:
                app_client.cookies.clear()
            changed: tuple[str, ...] = ()
            if write and target is not None and not owns(persona, target):
                now = provider_rows(dump_engine, target.id)
                changed = tuple(name for name in sorted(now) if now[name] != held[target.label].get(name))
                held[target.label] = now
            if write and persona.per_session:
                headers.pop(persona.name, None)  # the request may have ended or replaced the session
            calls.append(MatrixCall(spec.path, spec.method, variant, persona.name, target.label if target else None, url, status, location,
                                    content_type, attachment, text, changed, error))
        if own_writes_from == len(work):
            check_untouched()
    finally:
        dump_engine.dispose()
    return MatrixRun(backend, providers, personas, routes, unknown, calls, reference, unattributed, research_reference)


# --- People of the research-extract flow ---------------------------------------------------


def second_factor_user(make_user, username: str, *roles: str):
    """A ministry-wide user with these roles and a second factor enrolled."""
    return make_user(username, *((role, None) for role in roles), totp_secret=totp.new_secret())


@pytest.fixture
def researcher(make_user):
    return second_factor_user(make_user, "rua.researcher", ANALYST, RESEARCH_REQUESTER)


@pytest.fixture
def officer(make_user):
    return second_factor_user(make_user, "pia.officer", PRIVACY_OFFICER)


@pytest.fixture
def officer_researcher(make_user):
    """Holds both roles: may ask, and decide others' requests, never their own."""
    return second_factor_user(make_user, "both.hats", ANALYST, RESEARCH_REQUESTER, PRIVACY_OFFICER)


# --- A small roll-out stored through the providers' path (report, chart and journey pages) ------


@pytest.fixture(scope="session")
def rollout(tmp_path_factory) -> Path:
    """A generated 400-client roll-out (seed 9), made once per worker."""
    from cldx.generator.generate import generate

    out = tmp_path_factory.mktemp("rollout")
    generate(clients=400, seed=9, fault_rate=0, out=out)
    return out


@pytest.fixture
def stored_rollout(web_app, rollout: Path) -> None:
    """The registry and the eight largest providers' records in the app's store: every chart has bars."""
    from cldx.ingest.registry import import_registry
    from cldx.ingest.sources import SourceFile
    from cldx.ingest.submit import submit
    from cldx.store.registry import seed_service_lines

    engine = web_app.state.engine
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, rollout / "registry")
    folders = sorted((p for p in rollout.iterdir() if p.is_dir() and p.name != "registry"),
                     key=lambda p: -len((p / "clients.csv").read_bytes()))[:8]
    for folder in folders:
        submit(engine, provider=folder.name, files=[SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))],
               submitter="test", channel="test")
