"""Fixtures for the web app: an app on a fresh SQLite database, a TestClient, a live server and a
real headless Chromium.

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
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cldx.config import Settings
from cldx.store.db import make_engine, transaction
from cldx.store.migrate import upgrade
from cldx.store.models import Provider
from cldx.web.app import create_app

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


@pytest.fixture
def app_client(web_app: FastAPI) -> Iterator[TestClient]:
    """A TestClient that answers 500s like a server would (instead of raising in the test)."""
    with TestClient(web_app, raise_server_exceptions=False) as client:
        yield client


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
