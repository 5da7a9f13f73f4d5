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

import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from cldx.access import sessions, totp
from cldx.access.roles import ANALYST
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

    def make(username: str, *roles: tuple[str, str | None], password: str = PASSWORD, totp_secret: str | None = None,
             confirmed: bool = True, active: bool = True) -> Persona:
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

    return make


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
    """Serve `web_app` with uvicorn in a background thread; yields the base URL (no trailing /).

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

    page.on("console", on_console)
    page.on("pageerror", lambda error: page_problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda req: page_problems.append(f"request failed: {req.url} ({req.failure})"))
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
