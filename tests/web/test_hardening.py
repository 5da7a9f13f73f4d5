"""Hardening (issue 10, item 4): sign-in rate limits, session rotation, security headers, upload limits.

Each part pins one measure: the sign-in forms and API tokens answer 429 with Retry-After past
their limits (and the lock-out still happens as before); a session id and its CSRF token change
at every sign-in step, and an administrator's change to a user's roles, password or second
factor ends the user's sessions; every kind of response carries the security headers, and HSTS
only over HTTPS; an upload over the limit is refused with 413 while it is still streaming in,
with nothing stored. Log privacy is tests/web/test_log_privacy.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cldx.access import tokens, totp, users
from cldx.access.roles import ADMINISTRATOR, ANALYST, PROVIDER_SUBMITTER, PROVIDER_VIEWER
from cldx.config import Settings
from cldx.store.db import transaction, write_transaction
from cldx.store.migrate import upgrade
from cldx.store.models import Job, Provider, Submission, User
from cldx.store.registry import seed_service_lines
from cldx.web.app import create_app
from cldx.web.auth import CSRF_HEADER, SESSION_COOKIE, public
from cldx.web.security import CONTENT_SECURITY_POLICY, PERMISSIONS_POLICY, STRICT_TRANSPORT_SECURITY

from .conftest import BASE_URL, Persona, add_user
from .test_auth import code_now, form_token, give_code, sign_in

A = "P0001"
CLIENTS = (
    "client_ref,family_name,given_names,date_of_birth,gender,primary_ethnicity,area,notified_of_sharing_on\r\n"
    "C001,Smith,Jane,2008-12-19,2,11,153200,2017-04-25\r\n"
).encode()
SMALL_LIMITS = {"sign_in_attempts_per_username": 3, "sign_in_attempts_per_address": 5, "sign_in_window_seconds": 300}
small_limits = pytest.mark.parametrize("web_settings", [SMALL_LIMITS], indirect=True)


class Clock:
    """A monotonic clock the test moves by hand (the limiters' `clock`)."""

    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(web_app: FastAPI) -> Clock:
    clock = Clock()
    web_app.state.limits.set_clock(clock)
    return clock


@pytest.fixture
def provider_a(web_app) -> int:
    with write_transaction(web_app.state.engine) as session:
        seed_service_lines(session)
        session.add(Provider(code=A, name="Provider A", region_code="09"))
        session.flush()
        return session.scalar(select(Provider.id).where(Provider.code == A))


@pytest.fixture
def submitter(provider_a, make_user) -> Persona:
    return make_user("sam.submitter", (PROVIDER_SUBMITTER, A), (PROVIDER_VIEWER, A))


def failed_sign_ins(web_app, user: Persona) -> int:
    with transaction(web_app.state.engine) as session:
        return session.get(User, user.id).failed_sign_ins


def count(web_app, model) -> int:
    with transaction(web_app.state.engine) as session:
        return session.scalar(select(func.count()).select_from(model))


def assert_too_many(response, *, page: bool = True) -> None:
    assert response.status_code == 429
    assert 0 < int(response.headers["retry-after"]) <= SMALL_LIMITS["sign_in_window_seconds"]
    if page:
        assert "Too many sign-in attempts" in response.text and "Wait 5 minutes" in response.text
    assert SESSION_COOKIE not in response.cookies


# --- 1. Sign-in rate limits ----------------------------------------------------------------------


@small_limits
def test_the_attempt_past_the_limit_is_429_even_with_the_right_password_then_works_after_the_window(
        app_client: TestClient, web_app, submitter, clock) -> None:
    for _ in range(SMALL_LIMITS["sign_in_attempts_per_username"]):
        assert sign_in(app_client, submitter.username, "not the password at all").status_code == 401
    refused = sign_in(app_client, submitter.username, submitter.password)
    assert_too_many(refused)
    assert '<p id="sign-in-error">Too many sign-in attempts' in refused.text  # on the form, where the error goes
    assert app_client.get("/", follow_redirects=False).status_code == 303  # not signed in
    assert failed_sign_ins(web_app, submitter) == 3  # refused before the password was looked at: no count, no lock

    clock.now += SMALL_LIMITS["sign_in_window_seconds"] + 1
    accepted = sign_in(app_client, submitter.username, submitter.password)
    assert accepted.status_code == 303 and accepted.cookies.get(SESSION_COOKIE)
    assert app_client.get("/").status_code == 200


@small_limits
def test_the_limit_slides_instead_of_resetting_on_the_minute(app_client: TestClient, submitter, clock) -> None:
    for _ in range(3):
        sign_in(app_client, submitter.username, "wrong wrong wrong")
        clock.now += 100
    # The first failure is 300 s old: one slot is free again, and only one.
    assert sign_in(app_client, submitter.username, "wrong again here").status_code == 401
    refused = sign_in(app_client, submitter.username, submitter.password)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "100"


@small_limits
def test_one_address_trying_many_usernames_is_limited(app_client: TestClient, new_client, submitter, make_user, clock) -> None:
    others = [make_user(f"user.{i}", (PROVIDER_VIEWER, A)) for i in range(4)]
    for name in [o.username for o in others] + ["nobody.one"]:  # one guess each: below every lock and username limit
        assert sign_in(app_client, name, "Spring2017!Spring").status_code == 401
    assert_too_many(sign_in(app_client, submitter.username, submitter.password))  # a sixth username, the right password
    assert_too_many(sign_in(new_client(), "nobody.three", "anything at all"))  # a new cookie jar does not help: same address

    elsewhere = TestClient(app_client.app, base_url=BASE_URL, client=("198.51.100.7", 50000))
    assert sign_in(elsewhere, submitter.username, submitter.password).status_code == 303  # another address is not affected


@pytest.mark.parametrize("web_settings", [{"sign_in_attempts_per_address": 2}], indirect=True)
def test_accepted_sign_ins_do_not_use_up_the_addresss_allowance(app_client: TestClient, new_client, submitter, clock) -> None:
    for _ in range(4):  # an office signing in through one gateway
        assert sign_in(new_client(), submitter.username, submitter.password).status_code == 303
    assert sign_in(new_client(), submitter.username, "wrong wrong wrong").status_code == 401
    assert sign_in(new_client(), submitter.username, "wrong wrong wrong").status_code == 401
    assert_too_many(sign_in(new_client(), submitter.username, submitter.password), page=False)  # failures do count


@small_limits
def test_the_code_form_is_limited_too(app_client: TestClient, make_user, clock) -> None:
    secret = totp.new_secret()
    analyst = make_user("ana.limited", (ANALYST, None), totp_secret=secret)
    assert sign_in(app_client, analyst.username, analyst.password).status_code == 303  # accepted: its slot is given back
    for wrong in ("000000", "111111", "222222"):
        assert give_code(app_client, wrong if wrong != code_now(secret) else "333333").status_code == 401
    refused = give_code(app_client, code_now(secret))
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert '<p id="code-error">Too many sign-in attempts' in refused.text
    assert app_client.get("/", follow_redirects=False).headers["location"].startswith("/sign-in/code")

    clock.now += 301
    assert give_code(app_client, code_now(secret)).status_code == 303
    assert app_client.get("/").status_code == 200


@small_limits
def test_failed_api_tokens_are_limited_per_address(app_client: TestClient, web_app, provider_a, clock) -> None:
    with write_transaction(web_app.state.engine) as session:
        _, good = tokens.issue(session, tokens.SYSTEM, "A's case system", created_by="test", provider_id=provider_a)
    for i in range(SMALL_LIMITS["sign_in_attempts_per_address"]):
        assert app_client.get("/api/v1/summary", headers={"Authorization": f"Bearer cldx_guess{i}"}).status_code == 401
    refused = app_client.get("/api/v1/summary", headers={"Authorization": f"Bearer {good}"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    body = refused.json()
    assert body["status"] == 429 and "API tokens that are not valid" in body["error"]
    assert app_client.get("/api/v1/summary", headers={"Authorization": f"Bearer {good}"}).status_code == 429

    clock.now += 301
    assert app_client.get("/api/v1/summary", headers={"Authorization": f"Bearer {good}"}).status_code == 200


@pytest.mark.parametrize("web_settings", [SMALL_LIMITS, {**SMALL_LIMITS, "trusted_proxies": "testclient"}], indirect=True)
def test_x_forwarded_for_counts_only_from_a_trusted_proxy(app_client: TestClient, web_settings, submitter, make_user, clock) -> None:
    trusted = bool(web_settings.trusted_proxies)
    for i in range(SMALL_LIMITS["sign_in_attempts_per_address"]):
        app_client.headers["X-Forwarded-For"] = f"203.0.113.{i}"  # a new address each time, if believed
        assert sign_in(app_client, make_user(f"user.{i}", (PROVIDER_VIEWER, A)).username, "anything at all").status_code == 401
    app_client.headers["X-Forwarded-For"] = "203.0.113.99"
    answer = sign_in(app_client, submitter.username, submitter.password)
    assert answer.status_code == (303 if trusted else 429)


@pytest.mark.parametrize("web_settings", [{"sign_in_attempts_per_username": users.MAX_FAILED_SIGN_INS + 2}], indirect=True)
def test_the_lock_out_still_happens_as_before(app_client: TestClient, web_app, submitter) -> None:
    """The per-username limit sits above the lock's 10 (by default 20; 12 here, to be quick): the lock comes first,
    and the owner is told of it. tests/web/test_auth.py's lock-out test runs with the defaults."""
    assert Settings().sign_in_attempts_per_username > users.MAX_FAILED_SIGN_INS + 1
    for _ in range(users.MAX_FAILED_SIGN_INS):
        assert sign_in(app_client, submitter.username, "wrong wrong wrong").status_code == 401
    assert failed_sign_ins(web_app, submitter) == users.MAX_FAILED_SIGN_INS
    owner = sign_in(app_client, submitter.username, submitter.password)
    assert owner.status_code == 401 and "This account is locked" in owner.text
    # Past the username limit a locked account stops costing an argon2 verification per try.
    answers = [sign_in(app_client, submitter.username, "guess guess guess").status_code for _ in range(2)]
    assert answers == [401, 429]


# --- 2. Session rotation ---------------------------------------------------------------------


def meta_csrf(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match, "no csrf-token meta"
    return match.group(1)


def still_works(web_app, session_id: str, path: str = "/") -> bool:
    client = TestClient(web_app, base_url=BASE_URL, raise_server_exceptions=False)
    client.cookies.set(SESSION_COOKIE, session_id)
    return client.get(path, follow_redirects=False).status_code == 200


def test_each_sign_in_step_gives_a_new_session_id_and_csrf_token(app_client: TestClient, web_app, make_user, session_cookie) -> None:
    secret = totp.new_secret()
    analyst = make_user("ana.rotate", (ANALYST, None), totp_secret=secret)
    planted, planted_csrf = session_cookie(analyst, second_factor_done=False)  # e.g. fixed by an attacker before sign-in
    page = app_client.get("/sign-in")
    app_client.cookies.set(SESSION_COOKIE, planted)
    password_step = app_client.post("/sign-in", data={"username": analyst.username, "password": analyst.password,
                                                      "csrf_token": form_token(page.text)}, follow_redirects=False)
    pending = password_step.cookies.get(SESSION_COOKIE)
    assert pending and pending != planted
    code_page = app_client.get("/sign-in/code")
    pending_csrf = form_token(code_page.text)
    assert pending_csrf != planted_csrf

    done = give_code(app_client, code_now(secret))
    complete = done.cookies.get(SESSION_COOKIE)
    assert complete and complete not in (planted, pending)
    home = app_client.get("/")
    assert home.status_code == 200
    assert meta_csrf(home.text) not in (planted_csrf, pending_csrf)
    assert not still_works(web_app, planted) and not still_works(web_app, pending)
    assert still_works(web_app, complete)


@pytest.fixture
def admin_client(client_for, make_user) -> TestClient:
    return client_for(make_user("ada.admin", (ADMINISTRATOR, None), totp_secret=totp.new_secret()))


def test_withdrawing_a_role_ends_the_users_sessions_and_the_capability_with_them(admin_client, client_for, submitter, web_app) -> None:
    client = client_for(submitter)
    old_id = client.cookies.get(SESSION_COOKIE)
    assert client.get("/submissions/new").status_code == 200
    changed = admin_client.post("/admin/users/roles", data={"username": submitter.username, "role": PROVIDER_SUBMITTER,
                                                            "action": "withdraw"}, follow_redirects=False)
    assert changed.status_code == 303
    # The old session is gone: its pages send it to sign in, its API calls are 401, its writes go nowhere.
    assert client.get("/submissions/new", follow_redirects=False).status_code == 303
    assert client.post("/api/v1/submissions", data={"provider": A}, files=[("files", ("clients.csv", CLIENTS, "text/csv"))]).status_code == 401
    assert not still_works(web_app, old_id)
    assert count(web_app, Submission) == 0
    # Signed in again, the viewer role it kept still works, the withdrawn one does not.
    again = client_for(submitter)
    assert again.get("/submissions").status_code == 200
    assert again.get("/submissions/new").status_code == 403


def test_granting_a_role_ends_the_users_sessions(admin_client, client_for, make_user, provider_a, web_app) -> None:
    viewer = make_user("vic.viewer", (PROVIDER_VIEWER, A))
    client = client_for(viewer)
    old_id = client.cookies.get(SESSION_COOKIE)
    assert admin_client.post("/admin/users/roles", data={"username": viewer.username, "role": PROVIDER_SUBMITTER, "provider": A},
                             follow_redirects=False).status_code == 303
    assert not still_works(web_app, old_id)
    assert client_for(viewer).get("/submissions/new").status_code == 200  # the new role, from a new session


@pytest.mark.parametrize(("path", "data"), [
    ("/admin/users/password", {"password": "a brand new passphrase here"}),
    ("/admin/users/second-factor", {}),
])
def test_a_password_or_second_factor_reset_ends_the_users_sessions(admin_client, client_for, submitter, web_app, path, data) -> None:
    client = client_for(submitter)
    old_id = client.cookies.get(SESSION_COOKIE)
    assert admin_client.post(path, data={"username": submitter.username, **data}, follow_redirects=False).status_code == 303
    assert not still_works(web_app, old_id)


def test_a_role_change_from_the_command_line_service_ends_sessions_too(client_for, submitter, web_app) -> None:
    old_id = client_for(submitter).cookies.get(SESSION_COOKIE)
    with write_transaction(web_app.state.engine) as session:
        assert users.set_role(session, submitter.username, PROVIDER_VIEWER, remove=True, actor="test")
    assert not still_works(web_app, old_id)
    with write_transaction(web_app.state.engine) as session:
        assert not users.set_role(session, submitter.username, PROVIDER_SUBMITTER, A, actor="test")  # held already: nothing changes
    assert still_works(web_app, client_for(submitter).cookies.get(SESSION_COOKIE), "/submissions")


# --- 3. Security headers -----------------------------------------------------------------------


def boom_routes(app: FastAPI) -> None:
    @app.get("/api/v1/test-hardening-boom")
    @public  # about the error answer, not sign-in
    def api_boom() -> None:
        raise RuntimeError("boom")

    @app.get("/test-hardening-boom")
    @public
    def page_boom() -> None:
        raise RuntimeError("boom")


# (kind, method, path, status, content type it must be, signed in)
RESPONSES = [
    ("page", "GET", "/", 200, "text/html", True),
    ("API JSON", "GET", "/api/v1/summary", 200, "application/json", True),
    ("static file", "GET", "/static/cldx.css", 200, "text/css", False),
    ("file download", "GET", "/templates/clients.csv", 200, "text/csv", True),
    ("report download", "GET", "/api/v1/reports/reach?format=csv", 200, "text/csv", True),
    ("redirect to sign-in", "GET", "/submissions", 303, "", False),
    ("404 page", "GET", "/no-such-page", 404, "text/html", True),
    ("404 API", "GET", "/api/v1/no-such-thing", 404, "application/json", True),
    ("422 page", "GET", "/sign-in?next=/" + "x" * 2100, 422, "text/html", False),
    ("422 API", "GET", "/api/v1/reports/reach?format=pdf", 422, "application/json", True),
    ("401 API", "GET", "/api/v1/summary", 401, "application/json", False),
    ("500 page", "GET", "/test-hardening-boom", 500, "text/html", False),
    ("500 API", "GET", "/api/v1/test-hardening-boom", 500, "application/json", False),
]


def assert_security_headers(response, *, hsts: bool) -> None:
    headers = response.headers
    assert headers.get_list("content-security-policy") == [CONTENT_SECURITY_POLICY]
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["permissions-policy"] == PERMISSIONS_POLICY and "camera=()" in PERMISSIONS_POLICY
    if hsts:
        assert headers.get_list("strict-transport-security") == [STRICT_TRANSPORT_SECURITY]
    else:
        assert "strict-transport-security" not in headers


@pytest.fixture(scope="module")
def headers_app(tmp_path_factory, key_files) -> Iterator[tuple[FastAPI, str]]:
    """One app for every response kind (a fresh database per case would take most of the time), and an analyst's token."""
    folder = tmp_path_factory.mktemp("headers")
    url = f"sqlite:///{folder / 'cldx.db'}"
    upgrade(url)
    app = create_app(Settings(database_url=url, analytic_dir=folder / "analytic"))
    boom_routes(app)
    analyst = add_user(app.state.engine, "ana.headers", (ANALYST, None), totp_secret=totp.new_secret())
    with write_transaction(app.state.engine) as session:
        seed_service_lines(session)
        token = tokens.issue(session, tokens.PERSONAL, "headers", created_by="test", user_id=analyst.id)[1]
    yield app, token
    app.state.engine.dispose()


@pytest.mark.parametrize("base_url", ["https://testserver", "http://testserver"])
@pytest.mark.parametrize(("kind", "method", "path", "status", "content_type", "signed_in"), RESPONSES, ids=[r[0] for r in RESPONSES])
def test_every_kind_of_response_carries_the_headers_and_hsts_only_over_https(
        headers_app, base_url, kind, method, path, status, content_type, signed_in) -> None:
    app, token = headers_app
    # A personal token rather than a cookie: the Secure session cookie is not sent over http://.
    headers = {"Authorization": f"Bearer {token}"} if signed_in else {}
    with TestClient(app, base_url=base_url, raise_server_exceptions=False) as client:
        response = client.request(method, path, headers=headers, follow_redirects=False)
    assert response.status_code == status, (kind, response.text[:300])
    assert response.headers.get("content-type", "").startswith(content_type)
    assert_security_headers(response, hsts=base_url.startswith("https"))


@pytest.mark.parametrize("web_settings", [{"max_upload_bytes": 100}], indirect=True)
@pytest.mark.parametrize("base_url", ["https://testserver", "http://testserver"])
def test_early_413s_carry_the_headers(web_app, base_url) -> None:
    with TestClient(web_app, base_url=base_url, raise_server_exceptions=False) as client:
        response = client.post("/api/v1/submissions", content=b"x" * 101, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert_security_headers(response, hsts=base_url.startswith("https"))


@pytest.mark.parametrize("web_settings", [{}, {"trusted_proxies": "10.0.0.0/8, testclient"}], indirect=True)
def test_x_forwarded_proto_is_believed_only_from_a_trusted_proxy(web_app, web_settings) -> None:
    """TLS ended at a proxy: HSTS when the proxy is listed in CLDX_TRUSTED_PROXIES, never on a stranger's say-so."""
    trusted = bool(web_settings.trusted_proxies)
    with TestClient(web_app, base_url="http://testserver", raise_server_exceptions=False) as client:
        response = client.get("/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert_security_headers(response, hsts=trusted)


# --- 4. Upload limits --------------------------------------------------------------------------

LIMIT = 20_000
CHUNK = 1_000
small_uploads = pytest.mark.parametrize("web_settings", [{"max_upload_bytes": LIMIT, "max_batch_records": 3}], indirect=True)


def multipart(boundary: str, fields: dict[str, str], file_data: bytes) -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode() for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="clients.csv"\r\nContent-Type: text/csv\r\n\r\n'
                 .encode() + file_data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def big_clients(size: int) -> bytes:
    rows = [CLIENTS]
    i = 2
    while sum(len(r) for r in rows) < size:
        rows.append(f"C{i:05d},Longfamilyname{i},Given,2008-12-19,2,11,153200,2017-04-25\r\n".encode())
        i += 1
    return b"".join(rows)


def stream(app: FastAPI, path: str, headers: dict[str, str], body: bytes, *, declare_length: bool) -> tuple[int, bytes, int, int]:
    """Send `body` to the app in 1,000-byte messages, as a server passes a body on; (status, body, messages read, messages in all)."""
    chunks = [body[at:at + CHUNK] for at in range(0, len(body), CHUNK)]
    read = 0
    answer: dict[str, Any] = {"body": b""}
    all_headers = {**headers, **({"content-length": str(len(body))} if declare_length else {"transfer-encoding": "chunked"})}

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read < len(chunks):
            read += 1
            return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}
        await anyio.sleep_forever()  # the client waits for an answer
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "https", "path": path,
             "raw_path": path.encode(), "root_path": "", "query_string": b"", "client": ("testclient", 50000), "server": ("testserver", 443),
             "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in all_headers.items()]}

    async def main() -> None:
        with anyio.fail_after(30):
            await app(scope, receive, send)

    anyio.run(main)
    return answer["status"], answer["body"], read, len(chunks)


@pytest.fixture
def submitter_session(session_cookie, submitter) -> tuple[str, str]:
    return session_cookie(submitter)


def sender(kind: str, session: tuple[str, str], token: str) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, extra form fields) for each way a browser or a system sends."""
    session_id, csrf = session
    cookie = {"cookie": f"{SESSION_COOKIE}={session_id}"}
    return {
        "page, token in header": ({**cookie, CSRF_HEADER: csrf}, {}),           # the page handler reads the form
        "page, token in form": (cookie, {"csrf_token": csrf}),                   # the CSRF check reads the form
        "system token": ({"authorization": f"Bearer {token}"}, {}),
    }[kind]


@pytest.fixture
def system_token(web_app, provider_a) -> str:
    with write_transaction(web_app.state.engine) as session:
        return tokens.issue(session, tokens.SYSTEM, "A's case system", created_by="test", provider_id=provider_a)[1]


@small_uploads
@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
@pytest.mark.parametrize(("path", "kind"), [
    ("/submissions", "page, token in header"), ("/submissions", "page, token in form"), ("/submissions", "system token"),
    ("/api/v1/submissions", "page, token in header"), ("/api/v1/submissions", "system token"),
])
def test_a_multipart_upload_over_the_limit_is_413_before_it_is_read_and_nothing_is_stored(
        web_app, submitter_session, system_token, path, kind, declare_length) -> None:
    headers, fields = sender(kind, submitter_session, system_token)
    body = multipart("b0undary", {**fields, "provider": A, "period": "2017-08"}, big_clients(10 * LIMIT))
    status, answer, read, total = stream(web_app, path, {**headers, "content-type": "multipart/form-data; boundary=b0undary"}, body,
                                         declare_length=declare_length)
    assert status == 413, answer[:300]
    assert f"larger than the {LIMIT:,} bytes this server accepts".encode() in answer
    assert read <= LIMIT // CHUNK + 2 < total  # stopped at the limit, not after reading everything
    if not declare_length:
        assert read > 0
    else:
        assert read == 0  # a declared length over the limit is refused before a byte is read
    assert count(web_app, Submission) == count(web_app, Job) == 0


@small_uploads
@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
def test_a_json_batch_over_the_byte_limit_is_413_before_it_is_read(web_app, system_token, declare_length) -> None:
    row = '{"client_ref": "C1", "family_name": "Smith", "given_names": "Jane", "date_of_birth": "2008-12-19"}'
    body = ('{"provider": "P0001", "period": "2017-08", "records": {"clients": [' + ",".join([row] * 2000) + "]}}").encode()
    status, answer, read, total = stream(web_app, "/api/v1/submissions", {"authorization": f"Bearer {system_token}",
                                                                           "content-type": "application/json"}, body,
                                         declare_length=declare_length)
    assert status == 413 and b'"status":413' in answer
    assert read <= LIMIT // CHUNK + 2 < total
    assert count(web_app, Submission) == 0


@small_uploads
def test_the_upload_page_says_what_the_limit_is(client_for, submitter, web_app) -> None:
    client = client_for(submitter)
    response = client.post("/submissions", data={"provider": A, "period": "2017-08"},
                           files=[("files", ("clients.csv", big_clients(2 * LIMIT), "text/csv"))])
    assert response.status_code == 413 and response.headers["content-type"].startswith("text/html")
    assert f"The request is larger than the {LIMIT:,} bytes this server accepts" in response.text
    assert count(web_app, Submission) == 0


@small_uploads
def test_a_json_batch_with_too_many_records_is_413_and_nothing_is_stored(app_client: TestClient, web_app, system_token) -> None:
    bearer = {"Authorization": f"Bearer {system_token}"}
    client = {"client_ref": "C1", "family_name": "Smith", "given_names": "Jane", "date_of_birth": "2008-12-19", "gender": "2",
              "primary_ethnicity": "11", "area": "153200", "notified_of_sharing_on": "2017-04-25"}
    records = [{**client, "client_ref": f"C{i}"} for i in range(4)]
    refused = app_client.post("/api/v1/submissions", json={"provider": A, "period": "2017-08", "records": {"clients": records}},
                              headers=bearer)
    assert refused.status_code == 413
    assert refused.json()["error"].startswith("A JSON batch may hold at most 3 records and this one holds 4.")
    assert count(web_app, Submission) == 0
    accepted = app_client.post("/api/v1/submissions", json={"provider": A, "period": "2017-08", "records": {"clients": records[:3]}},
                               headers=bearer)
    assert accepted.status_code == 201, accepted.text[:300]
    assert count(web_app, Submission) == 1


def test_the_limits_are_documented_in_the_api(app_client: TestClient) -> None:
    responses = app_client.get("/openapi.json").json()["paths"]["/api/v1/submissions"]["post"]["responses"]
    assert {"413", "429"} <= set(responses)

