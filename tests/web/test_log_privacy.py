"""The logs carry no personal data and no secrets, whatever a full journey through the app does.

One journey against a live uvicorn server (its access and error logs on, at debug), with the
root logger at DEBUG (cldx's loggers, the multipart parser, everything else), SQLAlchemy's
statement log on at DEBUG, and the server's stdout and stderr captured too:

- a provider's submitter signs in with a password (and once with a wrong one), uploads a CSV
  with names and dates of birth (ISO and dd/mm/yyyy) through the upload page, reads its page;
- the provider's case system sends a JSON batch with its API token, reads the findings and the
  rejected rows, once with the token in the query string as well (a client that got it wrong),
  and a stranger tries a token that does not exist;
- a privacy officer signs in with a password and a one-time code, opens a Privacy Act request
  about one of the clients, finds the records held about them and exports them; everyone signs out.

Then every captured line is searched for every name, every date of birth (ISO, dd/mm/yyyy and
the ddmmyyyy an SLK-581 holds), the token, the passwords, the TOTP secret and the codes used,
and every session id and CSRF token the server issued: none may be there. Names are searched
without regard to case (a file named after a client is in lower case).
"""

from __future__ import annotations

import io
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone

import httpx2 as httpx
import pytest
import uvicorn

from cldx.access import tokens, totp
from cldx.access.roles import PRIVACY_OFFICER, PROVIDER_SUBMITTER
from cldx.store.db import write_transaction
from cldx.store.models import Provider
from cldx.store.registry import seed_service_lines
from cldx.web.auth import SESSION_COOKIE, SIGN_IN_COOKIE

A = "P0001"
# (client_ref, family name, given names, date of birth, as written in the file): distinctive, so a hit is a leak.
PEOPLE = [
    ("C001", "Quennell-Ardwyn", "Marisol", date(1987, 3, 14), "iso"),
    ("C002", "Thistlewood", "Evangelina", date(2004, 7, 21), "dmy"),
    ("C003", "Oyelaran", "Bartholomew", date(1999, 11, 2), "iso"),  # rejected: gender 7 is no code (quarantined, sealed)
]
BATCH_PERSON = ("C010", "Vasquez-Ilunga", "Perpetua", date(2011, 5, 30))
FILE_NAME = "referrals-quennell-ardwyn.csv"  # named after a client, as staff sometimes do
SUBMITTER_PASSWORD = "lantern orchard basalt"
OFFICER_PASSWORD = "gannet quarry velvet"
WRONG_PASSWORD = "marmalade tundra 1987"


def clients_csv() -> bytes:
    lines = ["client_ref,family_name,given_names,date_of_birth,gender,primary_ethnicity,area,notified_of_sharing_on"]
    for ref, family, given, born, style in PEOPLE:
        written = born.isoformat() if style == "iso" else born.strftime("%d/%m/%Y")
        gender = "7" if ref == "C003" else "2"
        lines.append(f"{ref},{family},{given},{written},{gender},11,153200,2017-04-25")
    return ("\r\n".join(lines) + "\r\n").encode()


def dates_of(born: date) -> list[str]:
    return [born.isoformat(), born.strftime("%d/%m/%Y"), born.strftime("%d%m%Y")]


# --- Capturing every log --------------------------------------------------------------------------

# The test's own HTTP client logs what it sends (its URLs, query strings included): that is the
# caller's log, not the server's, so it is left out of what is searched.
CLIENT_SIDE = ("httpx2", "httpcore2")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in CLIENT_SIDE:
            return
        self.lines.append(self.format(record))  # the message with its arguments, and any traceback


@pytest.fixture
def capture() -> Iterator[Capture]:
    """The root logger at DEBUG into `Capture` (uvicorn's own loggers are added when the server starts)."""
    handler = Capture()
    root = logging.getLogger()
    # SQLAlchemy holds its loggers at WARNING unless told otherwise: told, as an operator chasing a problem would.
    loud = [root, logging.getLogger("sqlalchemy")]
    levels = [logger.level for logger in loud]
    root.addHandler(handler)
    for logger in loud:
        logger.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    for logger, level in zip(loud, levels):
        logger.setLevel(level)
    for name in ("uvicorn", "uvicorn.access"):
        logging.getLogger(name).removeHandler(handler)


@contextmanager
def serve_logging(app, handler: Capture) -> Iterator[str]:
    """Serve the app with uvicorn, access log on, at debug; its loggers (which do not propagate) also into `handler`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="debug", access_log=True, lifespan="on")
    for name in ("uvicorn", "uvicorn.access"):  # configured (propagate off) by Config above
        logging.getLogger(name).addHandler(handler)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class Browser:
    """An HTTP client that keeps the app's cookies itself (they are Secure, and the live server is http://127.0.0.1)
    and remembers every session id and token the server hands out."""

    def __init__(self, base_url: str, secrets: set[str]) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.cookies: dict[str, str] = {}
        self.secrets = secrets

    def request(self, method: str, url: str, *, follow: bool = True, headers: dict[str, str] | None = None, **kwargs) -> httpx.Response:
        while True:
            sent = dict(headers or {})
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            response = self.http.request(method, url, headers=sent, **kwargs)
            for header in response.headers.get_list("set-cookie"):
                name, _, rest = header.partition("=")
                value = rest.split(";")[0].strip('"')
                if not value or "max-age=0" in header.lower():
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
                    if name in (SESSION_COOKIE, SIGN_IN_COOKIE):
                        self.secrets.add(value)
            for token in re.findall(r'name="csrf_token" value="([^"]+)"|<meta name="csrf-token" content="([^"]+)">', response.text
                                    if "text/html" in response.headers.get("content-type", "") else ""):
                self.secrets.update(t for t in token if t)
            if follow and response.status_code in (302, 303) and "location" in response.headers:
                method, url, kwargs, headers = "GET", response.headers["location"], {}, None
                continue
            return response

    def get(self, url: str, **kwargs) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def form_token(self, path: str) -> str:
        page = self.get(path)
        return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

    def sign_in(self, username: str, password: str) -> httpx.Response:
        return self.post("/sign-in", data={"username": username, "password": password, "csrf_token": self.form_token("/sign-in")},
                         follow=False)


# --- The journey ---------------------------------------------------------------------------------


def test_a_full_journey_leaves_no_personal_data_or_secret_in_any_log(capture: Capture, web_app, make_user, capfd) -> None:
    engine = web_app.state.engine
    with write_transaction(engine) as session:
        seed_service_lines(session)
        provider = Provider(code=A, name="Provider A", region_code="09")
        session.add(provider)
        session.flush()
        _, token = tokens.issue(session, tokens.SYSTEM, "A's case system", created_by="test", provider_id=provider.id)
    secret = totp.new_secret()
    submitter = make_user("sam.submitter", (PROVIDER_SUBMITTER, A), password=SUBMITTER_PASSWORD)
    officer = make_user("pia.privacy", (PRIVACY_OFFICER, None), password=OFFICER_PASSWORD, totp_secret=secret)
    issued: set[str] = set()
    codes: list[str] = []

    with serve_logging(web_app, capture) as base:
        # A provider's submitter: a wrong password, then the right one; an upload through the page.
        staff = Browser(base, issued)
        assert staff.sign_in(submitter.username, WRONG_PASSWORD).status_code == 401
        assert staff.sign_in(submitter.username, SUBMITTER_PASSWORD).status_code == 303
        upload = staff.post("/submissions", data={"provider": A, "period": "2017-08", "mode": "partial",
                                                  "csrf_token": staff.form_token("/submissions/new")},
                            files=[("files", (FILE_NAME, clients_csv(), "text/csv"))], follow=False)
        assert upload.status_code == 303, upload.text[:500]
        page_submission = upload.headers["location"].rsplit("/", 1)[-1]
        assert "Partly accepted" in staff.get(f"/submissions/{page_submission}").text
        assert staff.get(f"/submissions/{page_submission}/findings.csv").status_code == 200

        # The case system: a JSON batch, its findings, the rejected rows of the page's upload.
        system = Browser(base, issued)
        bearer = {"Authorization": f"Bearer {token}"}
        ref, family, given, born = BATCH_PERSON
        batch = {"provider": A, "period": "2017-09", "records": {"clients": [
            {"client_ref": ref, "family_name": family, "given_names": given, "date_of_birth": born.isoformat(), "gender": "2",
             "primary_ethnicity": "11", "area": "153200", "notified_of_sharing_on": "2017-04-25"}]}}
        sent = system.post("/api/v1/submissions", json=batch, headers=bearer)
        assert sent.status_code == 201, sent.text[:500]
        api_submission = sent.json()["submission_id"]
        assert system.get(f"/api/v1/submissions/{api_submission}/findings", headers=bearer).status_code == 200
        # A client that also puts its token in the query string, and asks for a file named after a client.
        leaky = system.get(f"/api/v1/submissions/{page_submission}/rejected", params={"file": FILE_NAME, "access_token": token},
                           headers=bearer)
        assert leaky.status_code == 200 and "Oyelaran" in leaky.text  # the rejected row, names and all, to its own provider
        assert system.get("/api/v1/summary", headers={"Authorization": "Bearer cldx_" + "x" * 43}).status_code == 401

        # The privacy officer: password and code, a Privacy Act request, find and export.
        privacy = Browser(base, issued)
        assert privacy.sign_in(officer.username, OFFICER_PASSWORD).headers["location"].startswith("/sign-in/code")
        code = totp.code_at(secret, totp.step_at(datetime.now(timezone.utc)))
        codes.append(code)
        done = privacy.post("/sign-in/code", data={"code": code, "csrf_token": privacy.form_token("/sign-in/code")}, follow=False)
        assert done.status_code == 303, done.text[:500]
        person = PEOPLE[0]
        opened = privacy.post("/privacy/requests", data={"kind": "access", "family_name": person[1], "given_names": person[2],
                                                         "date_of_birth": person[3].isoformat(), "received_on": "2017-11-01",
                                                         "csrf_token": privacy.form_token("/privacy/requests")}, follow=False)
        assert opened.status_code == 303, opened.text[:500]
        request_path = opened.headers["location"]
        csrf = privacy.form_token(request_path)
        found = privacy.post(f"{request_path}/find", data={"csrf_token": csrf})
        assert found.status_code == 200 and "C001" in found.text
        exported = privacy.post(f"{request_path}/export", data={"csrf_token": csrf})
        assert exported.status_code == 200 and person[1] in exported.text

        for browser in (staff, privacy):
            assert browser.post("/sign-out", data={"csrf_token": browser.form_token("/")}, follow=False).status_code == 303

    out, err = capfd.readouterr()
    logs = "\n".join(capture.lines) + "\n" + out + "\n" + err
    assert any(line.startswith("uvicorn.access") and '"GET /api/v1/submissions/' in line and "/rejected" in line
               for line in capture.lines), "the access log was not captured"
    assert any(line.startswith("sqlalchemy.engine") for line in capture.lines), "SQLAlchemy's statement log was not captured"

    names = [n for _, family, given, _, _ in PEOPLE for n in (family, given)] + [BATCH_PERSON[1], BATCH_PERSON[2]]
    births = [d for *_, born, _ in PEOPLE for d in dates_of(born)] + dates_of(BATCH_PERSON[3])
    secrets = {"the API token": [token], "a password": [SUBMITTER_PASSWORD, OFFICER_PASSWORD, WRONG_PASSWORD],
               "the TOTP secret": [secret], "a one-time code": codes, "a session id or CSRF token": sorted(issued)}
    assert len(issued) >= 6  # session ids for three sign-ins and more, and the forms' tokens
    found_in_logs = [f"name {n!r}" for n in names if n.lower() in logs.lower()]
    found_in_logs += [f"date of birth {d!r}" for d in births if d in logs]
    found_in_logs += [f"{what} ({value[:6]}...)" for what, values in secrets.items() for value in values
                      if re.search(rf"(?<![0-9A-Za-z_-]){re.escape(value)}(?![0-9A-Za-z_-])", logs)]
    if found_in_logs:
        needles = [v.lower() for v in names + births + [x for values in secrets.values() for x in values]]
        lines = [line.strip()[:300] for line in io.StringIO(logs) if any(n in line.lower() for n in needles)]
        pytest.fail("the logs hold " + ", ".join(found_in_logs) + f"\nin {len(lines)} lines, such as:\n" + "\n".join(lines[:8]))
