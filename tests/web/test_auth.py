"""Signing in and out, sessions, CSRF, API tokens: who gets in, and what a refusal looks like.

Personas: a submitter of provider A (P0001) and one of provider B (P0002), an analyst (needs a
one-time code), an administrator, and a system token for provider A.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from cldx.access import tokens, totp, users
from cldx.access.roles import ADMINISTRATOR, ANALYST, PROVIDER_SUBMITTER, PROVIDER_VIEWER
from cldx.store.db import transaction, write_transaction
from cldx.store.models import AuditEvent, Provider, User, WebSession
from cldx.store.registry import seed_service_lines
from cldx.web.auth import SESSION_COOKIE, local_path

A, B = "P0001", "P0002"
CLIENTS = (
    "client_ref,family_name,given_names,date_of_birth,gender,primary_ethnicity,area,notified_of_sharing_on\r\n"
    "C001,Smith,Jane,2008-12-19,2,11,153200,2017-04-25\r\n"
).encode()


@pytest.fixture
def two_providers(web_app) -> dict[str, int]:
    with write_transaction(web_app.state.engine) as session:
        seed_service_lines(session)
        session.add_all([Provider(code=A, name="Provider A", region_code="09"), Provider(code=B, name="Provider B", region_code="09")])
        session.flush()
        return {code: provider_id for code, provider_id in session.execute(select(Provider.code, Provider.id))}


@pytest.fixture
def submitter_a(two_providers, make_user):
    return make_user("a.submitter", (PROVIDER_SUBMITTER, A))


@pytest.fixture
def submitter_b(two_providers, make_user):
    return make_user("b.submitter", (PROVIDER_SUBMITTER, B))


@pytest.fixture
def system_token_a(web_app, two_providers) -> str:
    with write_transaction(web_app.state.engine) as session:
        _, plaintext = tokens.issue(session, tokens.SYSTEM, "A's case system", created_by="test", provider_id=two_providers[A])
    return plaintext


def send(client: TestClient, provider: str, **kwargs):
    return client.post("/api/v1/submissions", data={"provider": provider, "period": "2017-08"},
                       files=[("files", ("clients.csv", CLIENTS, "text/csv"))], **kwargs)


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf_token field"
    return match.group(1)


def sign_in(client: TestClient, username: str, password: str, next_path: str | None = None):
    page = client.get("/sign-in", params={"next": next_path} if next_path else None)
    assert page.status_code == 200
    data = {"username": username, "password": password, "csrf_token": form_token(page.text), "next": next_path or ""}
    return client.post("/sign-in", data=data, follow_redirects=False)


def give_code(client: TestClient, code: str, next_path: str = ""):
    page = client.get("/sign-in/code")
    return client.post("/sign-in/code", data={"code": code, "csrf_token": form_token(page.text), "next": next_path},
                       follow_redirects=False)


def code_now(secret: str, steps: int = 0) -> str:
    return totp.code_at(secret, totp.step_at(datetime.now(timezone.utc)) + steps)


def audit_entries(engine, action: str) -> list[AuditEvent]:
    with transaction(engine) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


# --- Nobody signed in -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/submissions", "/submissions/new", "/submissions/x", "/templates/clients.csv",
                                  "/fragments/summary"])
def test_a_page_sends_strangers_to_sign_in(app_client: TestClient, path: str) -> None:
    response = app_client.get(path, follow_redirects=False)
    assert response.status_code == 303
    location = response.headers["location"]
    assert urlsplit(location).path == "/sign-in"
    assert parse_qs(urlsplit(location).query).get("next", ["/"]) == [path]


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/v1/summary"), ("GET", "/api/v1/submissions/x"), ("POST", "/api/v1/submissions"),
                                              ("GET", "/api/v1/submissions/x/findings")])
def test_the_api_answers_strangers_401_in_the_error_shape(app_client: TestClient, method: str, path: str) -> None:
    response = app_client.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert set(body) == {"ok", "error", "errors", "status"} and body["status"] == 401 and "Bearer" in body["error"]


def test_an_unknown_token_is_401_invalid_token(app_client: TestClient) -> None:
    response = app_client.get("/api/v1/summary", headers={"Authorization": "Bearer cldx_not-a-real-token"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_htmx_is_told_to_go_to_sign_in_instead_of_swapping_it_in(app_client: TestClient) -> None:
    response = app_client.get("/fragments/summary", headers={"HX-Request": "true"}, follow_redirects=False)
    assert response.status_code == 401
    assert response.headers["hx-redirect"].startswith("/sign-in?next=")


@pytest.mark.parametrize("path", ["/health", "/openapi.json", "/sign-in", "/static/cldx.css"])
def test_health_openapi_sign_in_and_static_files_stay_open(app_client: TestClient, path: str) -> None:
    assert app_client.get(path, follow_redirects=False).status_code == 200


def test_openapi_documents_401_and_403(app_client: TestClient) -> None:
    responses = app_client.get("/openapi.json").json()["paths"]["/api/v1/submissions"]["post"]["responses"]
    assert {"401", "403"} <= set(responses)


@pytest.mark.parametrize(("value", "expected"), [
    ("/submissions?page=2", "/submissions?page=2"), ("//evil.example/x", None), ("/\\evil.example", None),
    ("https://evil.example/", None), ("javascript:alert(1)", None), ("submissions", None), ("/a\r\nSet-Cookie: x", None),
])
def test_next_is_only_ever_a_path_here(value: str, expected: str | None) -> None:
    assert local_path(value) == expected


# --- Signing in with a password -----------------------------------------------------------------


def test_sign_in_sets_a_secure_http_only_same_site_cookie_and_goes_where_asked(app_client: TestClient, submitter_a, web_app) -> None:
    response = sign_in(app_client, submitter_a.username, submitter_a.password, "/submissions")
    assert response.status_code == 303 and response.headers["location"] == "/submissions"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"secure", "httponly", "max-age", "path"} <= attributes
    assert "samesite=lax" in cookie.lower()
    assert app_client.get("/submissions").status_code == 200
    [entry] = audit_entries(web_app.state.engine, "sign-in")
    assert entry.actor == submitter_a.username and '"how":"password"' in entry.detail


def test_each_sign_in_step_starts_a_new_session(app_client: TestClient, make_user, session_cookie, new_client) -> None:
    secret = totp.new_secret()
    analyst = make_user("ana.fixed", (ANALYST, None), totp_secret=secret)
    page = app_client.get("/sign-in")
    planted, _ = session_cookie(analyst, second_factor_done=False)
    app_client.cookies.set(SESSION_COOKIE, planted)
    password_step = app_client.post("/sign-in", data={"username": analyst.username, "password": analyst.password,
                                                       "csrf_token": form_token(page.text)}, follow_redirects=False)
    pending = password_step.cookies.get(SESSION_COOKIE)
    assert pending and pending != planted
    code_step = give_code(app_client, code_now(secret))
    complete = code_step.cookies.get(SESSION_COOKIE)
    assert complete and complete not in (planted, pending)
    for old in (planted, pending):  # ids seen before each step are worth nothing after it
        elsewhere = new_client()
        elsewhere.cookies.set(SESSION_COOKIE, old)
        assert elsewhere.get("/", follow_redirects=False).status_code == 303
    assert app_client.get("/").status_code == 200


@pytest.mark.parametrize("username", ["a.submitter", "nobody.here"])
def test_a_refusal_says_the_same_whether_the_user_exists_or_not(app_client: TestClient, submitter_a, web_app, username: str) -> None:
    response = sign_in(app_client, username, "not the password at all")
    assert response.status_code == 401
    assert users.normalise_username(username) not in response.text.replace(f'value="{username}"', "")
    assert "That username and password do not match an account that may sign in." in response.text
    assert SESSION_COOKIE not in response.cookies
    [entry] = audit_entries(web_app.state.engine, "sign-in-failed")
    assert entry.target == username


def test_failed_sign_ins_count_and_lock_the_account(app_client: TestClient, submitter_a, web_app) -> None:
    for _ in range(users.MAX_FAILED_SIGN_INS):
        assert sign_in(app_client, submitter_a.username, "wrong wrong wrong").status_code == 401
    with transaction(web_app.state.engine) as session:
        assert session.get(User, submitter_a.id).failed_sign_ins == users.MAX_FAILED_SIGN_INS  # committed despite the refusal
    # A guesser learns nothing; the owner, who knows the password, is told of the lock.
    guess = sign_in(app_client, submitter_a.username, "another guess")
    assert "locked" not in guess.text
    owner = sign_in(app_client, submitter_a.username, submitter_a.password)
    assert owner.status_code == 401 and "This account is locked" in owner.text
    assert app_client.get("/", follow_redirects=False).status_code == 303
    reasons = [e.detail for e in audit_entries(web_app.state.engine, "sign-in-failed")]
    assert "account now locked" in reasons[users.MAX_FAILED_SIGN_INS - 1] and '"reason":"locked"' in reasons[-1]


def test_sign_in_needs_the_forms_own_token(app_client: TestClient, submitter_a) -> None:
    app_client.get("/sign-in")
    response = app_client.post("/sign-in", data={"username": submitter_a.username, "password": submitter_a.password, "csrf_token": "x" * 43},
                               follow_redirects=False)
    assert response.status_code == 403


def test_a_disabled_user_cannot_sign_in_and_their_session_stops(app_client: TestClient, client_for, submitter_a, web_app) -> None:
    client = client_for(submitter_a)
    assert client.get("/").status_code == 200
    with write_transaction(web_app.state.engine) as session:
        session.execute(update(User).where(User.id == submitter_a.id).values(is_active=False))  # even with the session row left
    assert client.get("/", follow_redirects=False).status_code == 303
    assert sign_in(app_client, submitter_a.username, submitter_a.password).status_code == 401


# --- The second factor --------------------------------------------------------------------------


def test_an_analyst_sets_up_a_second_factor_then_signs_in_with_it(app_client: TestClient, make_user, web_app) -> None:
    analyst = make_user("new.analyst", (ANALYST, None))
    response = sign_in(app_client, analyst.username, analyst.password, "/api/v1/summary")
    assert response.status_code == 303 and response.headers["location"].startswith("/sign-in/code?next=")
    # Only the second-factor pages until the code is given.
    assert app_client.get("/", follow_redirects=False).headers["location"].startswith("/sign-in/code")
    assert app_client.get("/api/v1/summary").status_code == 401

    page = app_client.get("/sign-in/code").text
    uri = re.search(r'<code id="otpauth-uri">([^<]+)</code>', page).group(1).replace("&amp;", "&")
    assert uri.startswith("otpauth://totp/cldx:new.analyst?")
    secret = re.search(r'<p class="secret" id="totp-secret">([^<]+)</p>', page).group(1)
    assert all(len(group) == 4 for group in secret.split()[:-1])
    secret = secret.replace(" ", "")
    assert parse_qs(urlsplit(uri).query)["secret"] == [secret]

    assert give_code(app_client, "000000").status_code == 401
    done = give_code(app_client, code_now(secret), "/api/v1/summary")
    assert done.status_code == 303 and done.headers["location"] == "/api/v1/summary"
    assert app_client.get("/api/v1/summary").status_code == 200
    entries = audit_entries(web_app.state.engine, "sign-in")
    assert [e.actor for e in entries] == ["new.analyst"] and "one-time code" in entries[0].detail
    # Confirmed: the secret is never shown again.
    with transaction(web_app.state.engine) as session:
        assert session.get(User, analyst.id).totp_last_step is not None


def test_a_code_is_accepted_once(app_client: TestClient, new_client, make_user) -> None:
    secret = totp.new_secret()
    analyst = make_user("ana.two", (ANALYST, None), totp_secret=secret)
    code = code_now(secret)
    sign_in(app_client, analyst.username, analyst.password)
    page = app_client.get("/sign-in/code").text
    assert "otpauth://" not in page  # set up already: no secret on the page
    assert give_code(app_client, code).status_code == 303

    again = new_client()
    sign_in(again, analyst.username, analyst.password)
    replay = give_code(again, code)
    assert replay.status_code == 401 and "used already" in replay.text
    assert again.get("/", follow_redirects=False).status_code == 303


def test_a_session_that_skipped_the_code_gets_only_the_code_page(client_for, analyst) -> None:
    client = client_for(analyst, second_factor_done=False)
    assert client.get("/", follow_redirects=False).headers["location"].startswith("/sign-in/code")
    assert client.get("/sign-in/code").status_code == 200


# --- Sessions -----------------------------------------------------------------------------------


def test_sign_out_ends_the_session_and_the_cookie(client_for, submitter_a, web_app, new_client) -> None:
    client = client_for(submitter_a)
    session_id = client.cookies.get(SESSION_COOKIE)
    response = client.post("/sign-out", data={"csrf_token": client.csrf_token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/sign-in")
    assert any(c.startswith(SESSION_COOKIE + '=""') or "Max-Age=0" in c for c in response.headers.get_list("set-cookie"))
    elsewhere = new_client()
    elsewhere.cookies.set(SESSION_COOKIE, session_id)  # a copy kept elsewhere is worth nothing
    assert elsewhere.get("/", follow_redirects=False).status_code == 303
    [entry] = audit_entries(web_app.state.engine, "sign-out")
    assert entry.actor == submitter_a.username


@pytest.mark.parametrize("column", ["last_seen_at", "expires_at"])
def test_an_idle_or_old_session_has_expired(client_for, submitter_a, web_app, column: str) -> None:
    client = client_for(submitter_a)
    assert client.get("/").status_code == 200
    back = datetime.now(timezone.utc) - timedelta(minutes=31)
    with write_transaction(web_app.state.engine) as session:
        session.execute(update(WebSession).values({column: back}))
    assert client.get("/", follow_redirects=False).status_code == 303


def test_using_a_session_restarts_its_idle_time(client_for, submitter_a, web_app) -> None:
    client = client_for(submitter_a)
    earlier = datetime.now(timezone.utc) - timedelta(minutes=20)
    with write_transaction(web_app.state.engine) as session:
        session.execute(update(WebSession).values(last_seen_at=earlier))
    assert client.get("/").status_code == 200
    with transaction(web_app.state.engine) as session:
        assert session.scalar(select(WebSession.last_seen_at)) > earlier + timedelta(minutes=19)


# --- CSRF ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong-token-of-a-plausible-length-000000000"])
def test_a_form_post_without_the_sessions_token_is_403(client_for, submitter_a, token: str | None) -> None:
    client = client_for(submitter_a, csrf=False)
    data = {"provider": A, "period": "2017-08"} | ({"csrf_token": token} if token else {})
    upload = client.post("/submissions", data=data, files=[("files", ("clients.csv", CLIENTS, "text/csv"))])
    assert upload.status_code == 403
    assert client.post("/sign-out", data=data).status_code == 403
    assert client.get("/").status_code == 200  # still signed in
    assert send(client, A).status_code == 403  # the API from a page needs the X-CSRF-Token header


def test_a_form_post_with_the_sessions_token_goes_through(client_for, submitter_a) -> None:
    client = client_for(submitter_a, csrf=False)
    response = client.post("/submissions", data={"provider": A, "period": "2017-08", "csrf_token": client.csrf_token},
                           files=[("files", ("clients.csv", CLIENTS, "text/csv"))], follow_redirects=False)
    assert response.status_code == 303


def test_pages_carry_the_token_for_forms_and_scripts(client_for, submitter_a) -> None:
    client = client_for(submitter_a)
    html = client.get("/submissions/new").text
    assert f'<meta name="csrf-token" content="{client.csrf_token}">' in html
    assert form_token(html) == client.csrf_token


# --- API tokens ---------------------------------------------------------------------------------


def test_a_system_token_submits_for_its_provider_only(app_client: TestClient, system_token_a: str, submitter_b, client_for) -> None:
    bearer = {"Authorization": f"Bearer {system_token_a}"}
    own = send(app_client, A, headers=bearer)  # no CSRF token needed with a Bearer token
    assert own.status_code == 201 and own.json()["submitter"] == "A's case system"
    other = send(app_client, B, headers=bearer)
    assert other.status_code == 422 and other.json()["errors"][0]["message"] == "no provider 'P0002'"  # as for an unknown code
    b_id = send(client_for(submitter_b), B).json()["submission_id"]
    assert app_client.get(f"/api/v1/submissions/{b_id}", headers=bearer).status_code == 404


def test_a_personal_token_carries_its_users_roles(app_client: TestClient, web_app, make_user) -> None:
    viewer = make_user("v.viewer", (ANALYST, None))
    with write_transaction(web_app.state.engine) as session:
        _, plaintext = tokens.issue(session, tokens.PERSONAL, "laptop", created_by="test", user_id=viewer.id)
    bearer = {"Authorization": f"Bearer {plaintext}"}
    assert app_client.get("/api/v1/summary", headers=bearer).status_code == 200  # no code needed: the token is the credential
    assert send(app_client, "P0001", headers=bearer).status_code == 403


# --- Who sees what ------------------------------------------------------------------------------


def test_provider_a_cannot_see_or_send_for_provider_b(client_for, submitter_a, submitter_b) -> None:
    a, b = client_for(submitter_a), client_for(submitter_b)
    b_id = send(b, B).json()["submission_id"]
    a_id = send(a, A).json()["submission_id"]
    for path in (f"/submissions/{b_id}", f"/submissions/{b_id}/findings.csv", f"/api/v1/submissions/{b_id}",
                 f"/api/v1/submissions/{b_id}/findings", f"/api/v1/submissions/{b_id}/rejected?file=clients.csv"):
        nonexistent = path.replace(b_id, "00000000-0000-0000-0000-000000000000")
        response, missing = a.get(path), a.get(nonexistent)
        assert response.status_code == missing.status_code == 404, path
        assert response.json() == missing.json() if path.startswith("/api") else True
    listed = a.get("/submissions").text
    assert a_id in listed and b_id not in listed
    assert f'value="{B}"' not in a.get("/submissions/new").text
    assert send(a, B).status_code == 422
    page = a.post("/submissions", data={"provider": B, "period": "2017-08"}, files=[("files", ("clients.csv", CLIENTS, "text/csv"))])
    assert page.status_code == 422 and "There is no provider &#39;P0002&#39;" in page.text


def test_a_provider_viewer_sees_but_does_not_send(client_for, make_user, submitter_a) -> None:
    viewer = client_for(make_user("a.viewer", (PROVIDER_VIEWER, A)))
    a_id = send(client_for(submitter_a), A).json()["submission_id"]
    assert viewer.get(f"/submissions/{a_id}").status_code == 200
    assert viewer.get("/submissions/new").status_code == 403
    assert send(viewer, A).status_code == 403
    assert 'href="/submissions/new"' not in viewer.get("/").text


@pytest.mark.parametrize("role", [ANALYST, ADMINISTRATOR])
def test_ministry_roles_get_403_on_the_provider_pages(client_for, make_user, submitter_a, role: str) -> None:
    a_id = send(client_for(submitter_a), A).json()["submission_id"]
    client = client_for(make_user("ministry.person", (role, None)))
    for path in ("/submissions/new", "/submissions", f"/submissions/{a_id}", f"/submissions/{a_id}/findings.csv", f"/api/v1/submissions/{a_id}"):
        assert client.get(path).status_code == 403, path
    assert send(client, A).status_code == 403
    home = client.get("/").text
    assert 'href="/submissions' not in home  # no links to pages the role may not use


def test_the_home_page_shows_a_provider_only_its_own_counts(client_for, submitter_a, submitter_b, ministry_client) -> None:
    send(client_for(submitter_b), B)
    a = client_for(submitter_a)
    html = a.get("/").text
    assert "<h1>Provider A</h1>" in html
    assert 'data-count="providers"' not in html and 'data-count="service_lines"' not in html
    assert 'data-count="submissions">0<' in html
    assert a.get("/api/v1/summary").json()["submissions"] == 0
    assert 'data-count="submissions">1<' in ministry_client.get("/").text
    assert 'data-count="providers">2<' in ministry_client.get("/").text
