"""Every page of the app, as the persona who uses it, checked by axe-core in Chromium at 1280 and 360 px.

No page may have a serious or critical axe-core violation (tests/web/axe.py), and at 360 px none
may be wider than the screen (a wide table scrolls inside its own `.table-scroll` box, never the
page). Each page must also load with no console error, page error, failed request, request to
another host or Content Security Policy violation, and its charts must be drawn before axe looks.

One app, one live server and one set of data serve the whole module (built once by the
module-scoped `site` fixture: a small generated roll-out for the reports, a submission with
findings, a Privacy Act request, research extracts asked for, decided and produced), and one
browser context per persona keeps its session cookie; each check opens a fresh page in it, at
1280 px, and after checking it there narrows the window to 360 px and checks again (the
stylesheet's media queries and "container"-wide charts follow a resize), which halves the time
the server spends building report pages.

To check a new page, add one line to PAGES: a name, the persona (a key of PERSONAS, or None for
nobody signed in) and the path, which may name the site's objects as {submission},
{privacy_request}, {extract_to_decide} or {extract_produced}. A new persona is one line in
PERSONAS: its roles and how far it has signed in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine

from cldx.access import sessions, totp
from cldx.access.roles import ADMINISTRATOR, ANALYST, PRIVACY_OFFICER, PROVIDER_SUBMITTER, RESEARCH_REQUESTER
from cldx.analysis.reports import REPORTS
from cldx.config import Settings
from cldx.export.research import decide_extract, produce_extract, request_extract
from cldx.generator.generate import generate
from cldx.identity import requests as privacy_requests
from cldx.identity.vault import vault_of
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit
from cldx.store import transaction
from cldx.store.db import write_transaction
from cldx.store.migrate import upgrade
from cldx.store.models import User
from cldx.store.registry import seed_service_lines
from cldx.web.app import create_app
from cldx.web.auth import SESSION_COOKIE

from .axe import axe_violations
from .conftest import add_user, serve
from .pages.conftest import FAULTY

pytestmark = pytest.mark.browser

WIDTHS = {"1280px": {"width": 1280, "height": 800}, "360px": {"width": 360, "height": 740}}
# The generated roll-out's eight largest providers (400 clients, seed 9), the first the largest:
# enough records for every report to draw; only theirs are generated (the registry is whole).
SENDERS = ("P0029", "P0092", "P0226", "P0298", "P0275", "P0088", "P0078", "P0234")
PROVIDER = SENDERS[0]  # the provider persona's
PERIOD = "2017-08"


@dataclass(frozen=True)
class PersonaSpec:
    """Who signs in: roles as (role, provider code or None); ministry roles have a second factor."""

    roles: tuple[tuple[str, str | None], ...]
    second_factor: str | None = None  # None, "confirmed" or "unconfirmed" (set up, no code typed yet)
    code_given: bool = True  # False: signed in with the password only, the one-time code still to come


PERSONAS: dict[str, PersonaSpec] = {
    "provider": PersonaSpec(((PROVIDER_SUBMITTER, PROVIDER),)),
    "analyst": PersonaSpec(((ANALYST, None),), "confirmed"),
    "researcher": PersonaSpec(((ANALYST, None), (RESEARCH_REQUESTER, None)), "confirmed"),
    "privacy officer": PersonaSpec(((PRIVACY_OFFICER, None),), "confirmed"),
    "administrator": PersonaSpec(((ADMINISTRATOR, None),), "confirmed"),
    "awaiting code": PersonaSpec(((ANALYST, None),), "unconfirmed", code_given=False),
}


@dataclass(frozen=True)
class Screen:
    """A page to check: what to call it, who looks at it (None: nobody signed in), and its path."""

    name: str
    persona: str | None
    path: str


PAGES: list[Screen] = [
    Screen("home as provider", "provider", "/"),
    Screen("home as analyst", "analyst", "/"),
    Screen("sign-in", None, "/sign-in"),
    Screen("sign-in code (setting up)", "awaiting code", "/sign-in/code"),
    Screen("submissions", "provider", "/submissions"),
    Screen("upload", "provider", "/submissions/new"),
    Screen("submission with findings", "provider", "/submissions/{submission}"),
    Screen("reports", "analyst", "/reports"),
    *(Screen(f"report {name}", "analyst", f"/reports/{name}") for name in REPORTS),
    Screen("report reach as provider", "provider", "/reports/reach"),
    Screen("research extracts", "researcher", "/research"),
    Screen("research extract to decide", "privacy officer", "/research/{extract_to_decide}"),
    Screen("research extract produced", "researcher", "/research/{extract_produced}"),
    Screen("privacy requests", "privacy officer", "/privacy/requests"),
    Screen("privacy request", "privacy officer", "/privacy/requests/{privacy_request}"),
    Screen("audit trail", "privacy officer", "/privacy/audit"),
    Screen("administration", "administrator", "/admin"),
    Screen("admin providers", "administrator", "/admin/providers"),
    Screen("admin service lines", "administrator", "/admin/service-lines"),
    Screen("admin contracts", "administrator", "/admin/contracts"),
    Screen("admin users", "administrator", "/admin/users"),
    Screen("admin tokens", "administrator", "/admin/tokens"),
]

# Records CSP violations from the first script on (init scripts are not subject to the policy).
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.cspViolations.push(event.violatedDirective + ' ' + event.blockedURI + ' ' + (event.sample || ''));
});
"""
CHARTS_SETTLED = """() => [...document.querySelectorAll('figure.chart')]
  .every((figure) => ['rendered', 'failed'].includes(figure.dataset.chartState))"""


@dataclass
class Site:
    url: str
    engine: Engine
    objects: dict[str, str]  # what PAGES' paths may name
    users: dict[str, int]  # persona -> user id
    contexts: dict[str | None, object] = field(default_factory=dict)  # persona -> browser context (made when first used)


# --- The data: built once for the module ----------------------------------------------------


def store_rollout(engine: Engine, out: Path) -> None:
    """A small generated roll-out: the whole registry and the SENDERS' records."""
    generate(clients=400, seed=9, fault_rate=0, out=out, only=SENDERS)
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, out / "registry")
    for folder in (out / code for code in SENDERS):
        submit(engine, provider=folder.name, files=[SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))],
               submitter="test", channel="test")


def make_personas(engine: Engine) -> dict[str, int]:
    users = {}
    for name, spec in PERSONAS.items():
        secret = totp.new_secret() if spec.second_factor else None
        persona = add_user(engine, name.replace(" ", "."), *spec.roles, totp_secret=secret, confirmed=spec.second_factor == "confirmed")
        users[name] = persona.id
    return users


def make_objects(engine: Engine, users: dict[str, int], analytic_dir: Path, out: Path) -> dict[str, str]:
    """A submission with findings, a Privacy Act request, and research extracts: one to decide, one produced."""
    receipt = submit(engine, provider=PROVIDER, files=[SourceFile(name, data) for name, data in FAULTY.files], period=PERIOD,
                     submitter="provider", channel="web")
    assert receipt.findings, receipt
    researcher, officer = ("researcher", users["researcher"]), ("privacy.officer", users["privacy officer"])
    with write_transaction(engine) as session:
        privacy = privacy_requests.open_request(session, vault_of(engine), kind="access", family_name="Smith", given_names="Jane",
                                                date_of_birth=date(2008, 12, 19), received_on=date(2017, 11, 1), actor=officer[0])
        to_decide = request_extract(session, actor=researcher[0], user_id=researcher[1], period="2016-07:2017-06",
                                    purpose="Re-referral within a year of Social Workers in Schools, for the evaluation team.")
        produced = request_extract(session, actor=researcher[0], user_id=researcher[1], period="2016-07:2017-06",
                                   purpose="Engagement length by service line, for the sector workforce study.")
        objects = {"privacy_request": privacy.reference, "extract_to_decide": to_decide.reference,
                   "extract_produced": produced.reference}
    with write_transaction(engine) as session:
        decide_extract(session, objects["extract_produced"], approve=True, note="", actor=officer[0], user_id=officer[1])
    produce_extract(engine, objects["extract_produced"], out, actor=researcher[0], user_id=researcher[1], analytic_dir=analytic_dir)
    return {"submission": receipt.submission_id, **objects}


@pytest.fixture(scope="module")
def site(tmp_path_factory, browser) -> Iterator[Site]:
    started = time.monotonic()
    folder = tmp_path_factory.mktemp("accessibility")
    url = f"sqlite:///{folder / 'cldx.db'}"
    upgrade(url)
    # The analytic folder is named here: the per-test CLDX_ANALYTIC_DIR is not set yet at module scope.
    app = create_app(Settings(database_url=url, analytic_dir=folder / "analytic", embedded_worker=False))
    engine = app.state.engine
    store_rollout(engine, folder / "rollout")
    users = make_personas(engine)
    objects = make_objects(engine, users, folder / "analytic", folder / "extract")
    with serve(app) as base_url:
        site = Site(base_url, engine, objects, users)
        print(f"accessibility site set up in {time.monotonic() - started:.1f} s")
        yield site
        for context in site.contexts.values():
            context.close()  # type: ignore[attr-defined]


def context_for(site: Site, browser, persona: str | None):
    """The persona's browser context, signed in (a session cookie, as the sign-in form sets) on first use."""
    if persona not in site.contexts:
        context = browser.new_context(base_url=site.url, viewport=next(iter(WIDTHS.values())))
        if persona is not None:
            spec = PERSONAS[persona]
            with write_transaction(site.engine) as session:
                _, session_id = sessions.start(session, session.get(User, site.users[persona]), second_factor_done=spec.code_given)
            context.add_cookies([{"name": SESSION_COOKIE, "value": session_id, "url": site.url + "/", "httpOnly": True,
                                  "secure": True, "sameSite": "Lax"}])
        site.contexts[persona] = context
    return site.contexts[persona]


# --- The checks -------------------------------------------------------------------------------


@pytest.mark.parametrize("screen", PAGES, ids=lambda screen: screen.name)
def test_page_is_accessible(site: Site, browser, screen: Screen) -> None:
    """Loaded once, then checked at each width in turn (resized: media queries and charts follow)."""
    problems: list[str] = []
    failures: list[str] = []
    page = context_for(site, browser, screen.persona).new_page()
    page.set_default_timeout(10_000)
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url} ({req.failure})"))
    page.on("request", lambda req: None if req.url.startswith((site.url + "/", "data:", "blob:"))
            else problems.append(f"request to another host: {req.url}"))
    page.add_init_script(RECORD_VIOLATIONS)
    try:
        path = screen.path.format(**site.objects)
        response = page.goto(path)
        assert response is not None and response.status == 200, f"{path}: {response.status if response else 'no response'}"
        assert page.url == site.url + path, f"{path} went to {page.url} (is {screen.persona!r} the right persona?)"
        page.wait_for_function(CHARTS_SETTLED)
        failed_charts = page.eval_on_selector_all("figure.chart[data-chart-state=failed]", "(figures) => figures.map((f) => f.id)")
        assert failed_charts == [], f"charts not drawn: {failed_charts}"
        for width, viewport in WIDTHS.items():
            page.set_viewport_size(viewport)
            settle(page)
            failures += [f"at {width}: {violation}" for violation in axe_violations(page)]
            if viewport["width"] <= 360:
                scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
                if scroll_width > inner_width:
                    failures.append(f"at {width}: the page is {scroll_width} px wide, wider than the screen; sticking out: "
                                    f"{', '.join(sticking_out(page))}")
        problems.extend(f"CSP violation: {v}" for v in page.evaluate("window.cspViolations"))
        assert failures == [], f"{screen.name} ({path}):\n" + "\n".join(failures)
        assert problems == [], "\n".join(problems)
    finally:
        page.close()


def settle(page) -> None:
    """After a resize: Vega redraws "container"-wide charts on the window's resize event; two frames later all is laid out."""
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


def sticking_out(page) -> list[str]:
    """What sticks out past the right edge of the screen (to say what to fix), outermost first."""
    return page.evaluate("""() => {
      const out = [];
      for (const element of document.querySelectorAll('body *')) {
        const box = element.getBoundingClientRect();
        if (box.right > window.innerWidth + 0.5 && !element.closest('.table-scroll')) {
          out.push(element.tagName.toLowerCase() + (element.id ? '#' + element.id : '') +
                   (element.className && typeof element.className === 'string' ? '.' + element.className.trim().replace(/\\s+/g, '.') : '') +
                   ' (' + Math.round(box.right) + ' px)');
        }
      }
      return out.slice(0, 8);
    }""")


def test_the_checks_find_what_they_look_for(site: Site, browser) -> None:
    """A control: an image without a text alternative and a box wider than a phone, added to a
    page, are reported by axe (with rule, impact and where) and by the overflow check."""
    page = context_for(site, browser, None).new_page()
    try:
        page.goto("/sign-in")
        page.set_viewport_size(WIDTHS["360px"])
        page.evaluate("""() => {
          const image = document.createElement('img');
          image.src = 'data:,';
          image.id = 'no-alt';
          const wide = document.createElement('div');
          wide.id = 'too-wide';
          // Through the CSSOM, which the policy allows (a style attribute it would not); an empty
          // box adds nothing to the page's scrolling area, so it has a height too.
          wide.style.width = '900px';
          wide.style.height = '1rem';
          document.querySelector('main').append(image, wide);
        }""")
        settle(page)
        violations = axe_violations(page)
        assert any(v.startswith("image-alt (critical): ") and "#no-alt" in v for v in violations), violations
        assert page.evaluate("document.documentElement.scrollWidth") > 360
        assert any(element.startswith("div#too-wide") for element in sticking_out(page)), sticking_out(page)
    finally:
        page.close()
