"""Signing in and out: the password form, the one-time code (and setting one up), sign-out.

The service work is `cldx.access.users` (passwords, codes, the lock, the audit entries) and
`cldx.access.sessions` (the session rows); this module turns it into pages and cookies. Every
sign-in step runs in a write transaction that commits whatever the answer, so a refusal counts
towards the lock and stays in the audit trail.

A refusal says the same whatever the reason (no such user, wrong password, disabled), so the
page never tells a stranger which usernames exist. One exception: someone who types the right
password for a locked account is told it is locked (otherwise its owner would keep trying);
a guesser, who does not know the password, learns nothing.

Each completed step starts a new session with a new id and a new CSRF token (the old one is
deleted), so an id a browser had before signing in, or before giving its code, is worth
nothing afterwards.

Both forms are rate-limited per client address and per username (`cldx.web.throttle`): past
the limit the form is shown again at 429 with `Retry-After` and how long to wait, before the
password or code is even looked at. The lock-out stays as it was: the limits sit above it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from cldx.access import sessions, totp
from cldx.access.errors import AlreadyEnrolled
from cldx.access.passwords import verify_password
from cldx.access.users import (
    MAX_FAILED_SIGN_INS,
    authenticate_password,
    enrol_totp,
    is_locked,
    normalise_username,
    second_factor_required,
    verify_second_factor,
)
from cldx.identity.vault import vault_of
from cldx.store.db import write_transaction
from cldx.store.models import User
from cldx.web.auth import (
    CSRF_REFUSED,
    SECOND_FACTOR_PATH,
    SIGN_IN_COOKIE,
    SIGN_IN_PATH,
    AuthDep,
    app_path,
    clear_session_cookie,
    local_path,
    public,
    second_factor_step,
    set_session_cookie,
    set_sign_in_cookie,
    sign_in_form_token,
    tokens_match,
)
from cldx.web.templating import render
from cldx.web.throttle import client_address, limits_of, retry_after_headers, too_many_message

router = APIRouter()

REFUSED = "That username and password do not match an account that may sign in. Check them and try again."
LOCKED = (f"This account is locked after {MAX_FAILED_SIGN_INS} failed sign-ins in a row. "
          "Ask an administrator to unlock it (they can reset your password or second factor).")
WRONG_CODE = "That code is not right, or it has been used already. Wait for the next code in your app and type it."
SIGNED_OUT = "You have signed out."
MAX_FORM_FIELDS = 10


def _next_of(value: Any) -> str:
    return local_path(value if isinstance(value, str) else None) or "/"


def _with_next(path: str, next_path: str) -> str:
    return path + ("" if next_path == "/" else "?" + urlencode({"next": next_path}))


async def _small_form(request: Request) -> dict[str, str]:
    """The sign-in forms' text fields; an unreadable body reads as empty (then refused)."""
    try:
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    except HTTPException:
        raise
    except Exception:  # noqa: BLE001 - a malformed body is the sender's problem, never a 500
        return {}
    return {name: value for name, value in form.items() if isinstance(value, str)}


# --- The password form -----------------------------------------------------------------------


def _sign_in_page(request: Request, *, next_path: str, username: str = "", error: str = "", notice: str = "",
                  status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    token = sign_in_form_token(request)
    response = render(request, "sign_in.html", {"form_token": token, "next": next_path, "username": username, "error": error,
                                                "notice": notice}, status_code=status_code, headers=headers)
    set_sign_in_cookie(response, request, token)
    return response


@router.get("/sign-in", response_class=HTMLResponse, name="sign_in_page")
@public
def sign_in_page(request: Request, auth: AuthDep, next: Annotated[str | None, Query(max_length=2000)] = None,
                 signed_out: Annotated[bool, Query(alias="signed-out")] = False) -> Response:
    next_path = _next_of(next)
    if auth.principal is not None:
        return RedirectResponse(app_path(request, next_path), status_code=303)
    if auth.pending_second_factor:
        return RedirectResponse(app_path(request, _with_next(SECOND_FACTOR_PATH, next_path)), status_code=303)
    return _sign_in_page(request, next_path=next_path, notice=SIGNED_OUT if signed_out else "")


@dataclass(frozen=True)
class PasswordOutcome:
    session_id: str | None = None  # the new session's id when the password was accepted
    needs_code: bool = False
    locked: bool = False


def _password_step(request: Request, username: str, password: str, old_session_id: str | None) -> PasswordOutcome:
    with write_transaction(request.app.state.engine) as session:
        user = authenticate_password(session, username, password)
        if user is None:
            return PasswordOutcome(locked=_owner_of_locked_account(session, username, password))
        if old_session_id:
            old = sessions.find(session, old_session_id)
            if old is not None:
                sessions.discard(session, old.row.id)
        sessions.purge_expired(session)  # housekeeping that needs no job of its own: one small DELETE per sign-in
        needs_code = second_factor_required(session, user)
        _, session_id = sessions.start(session, user, second_factor_done=not needs_code)
        return PasswordOutcome(session_id=session_id, needs_code=needs_code)


def _owner_of_locked_account(session, username: str, password: str) -> bool:
    """True when the account is locked and `password` is its password (only then is the lock told)."""
    user = session.scalar(select(User).where(User.username == normalise_username(username))) if username.strip() else None
    return (user is not None and user.is_active and is_locked(user) and user.password_hash is not None
            and verify_password(user.password_hash, password))


@router.post("/sign-in", name="sign_in")
@public
async def sign_in(request: Request, auth: AuthDep) -> Response:
    form = await _small_form(request)
    if not tokens_match(request.cookies.get(SIGN_IN_COOKIE), form.get("csrf_token")):
        raise HTTPException(403, detail=CSRF_REFUSED)
    username, password = form.get("username", "")[:200], form.get("password", "")[:1000]
    next_path = _next_of(form.get("next"))
    limit = limits_of(request).sign_in
    attempt = limit.take(address=client_address(request), username=normalise_username(username))
    if not attempt.allowed:
        return _sign_in_page(request, next_path=next_path, username=username, error=too_many_message(attempt.retry_after),
                             status_code=429, headers=retry_after_headers(attempt))
    outcome = await run_in_threadpool(_password_step, request, username, password, auth.session_id)
    if outcome.session_id is None:
        return _sign_in_page(request, next_path=next_path, username=username, error=LOCKED if outcome.locked else REFUSED,
                             status_code=401)
    limit.give_back(attempt)  # only failures (and attempts in flight) count
    target = _with_next(SECOND_FACTOR_PATH, next_path) if outcome.needs_code else next_path
    response = RedirectResponse(app_path(request, target), status_code=303)
    set_session_cookie(response, request, outcome.session_id)
    response.delete_cookie(SIGN_IN_COOKIE, path=request.scope.get("root_path", "").rstrip("/") or "/")
    return response


# --- The one-time code -------------------------------------------------------------------------


def secret_of(uri: str) -> str:
    """The base32 secret inside an otpauth:// URI."""
    return parse_qs(urlsplit(uri).query).get("secret", [""])[0]


def secret_groups(secret: str) -> list[str]:
    """The secret in groups of four, as authenticator apps ask for it to be typed."""
    return re.findall(".{1,4}", secret)


def _enrolment_uri(request: Request, user: User) -> str | None:
    """The provisioning URI to show when the user has no confirmed second factor yet, else None.

    A secret nobody has used yet (no code ever accepted) is shown again, so closing the page
    before scanning it does not lock its owner out; once a code has been accepted it is never
    shown again, and replacing it takes an administrator's reset.
    """
    keys = vault_of(request.app.state.engine).keys
    with write_transaction(request.app.state.engine) as session:
        fresh = session.get(User, user.id)
        if fresh is None:
            return None
        if fresh.totp_secret is None:
            try:
                return enrol_totp(session, fresh, keys)
            except AlreadyEnrolled:  # another tab enrolled it a moment ago
                session.refresh(fresh)
        if fresh.totp_secret is not None and fresh.totp_last_step is None:
            return totp.provisioning_uri(totp.open_secret(keys, fresh.totp_secret), fresh.username)
    return None


def _code_page(request: Request, auth, *, next_path: str, error: str = "", status_code: int = 200, enrolment: bool = True) -> Response:
    uri = _enrolment_uri(request, auth.user) if enrolment else None
    secret = secret_of(uri) if uri else ""
    context = {"next": next_path, "error": error, "enrolment_uri": uri, "secret_groups": secret_groups(secret),
               "username": auth.user.username}
    return render(request, "sign_in_code.html", context, status_code=status_code)


@router.get("/sign-in/code", response_class=HTMLResponse, name="second_factor_page")
@second_factor_step
def second_factor_page(request: Request, auth: AuthDep, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    next_path = _next_of(next)
    if auth.principal is not None:
        return RedirectResponse(app_path(request, next_path), status_code=303)
    return _code_page(request, auth, next_path=next_path)


@dataclass(frozen=True)
class CodeOutcome:
    session_id: str | None = None  # the new, complete session's id when the code was accepted
    locked: bool = False


def _code_step(request: Request, auth, code: str) -> CodeOutcome:
    keys = vault_of(request.app.state.engine).keys
    with write_transaction(request.app.state.engine) as session:
        user = session.get(User, auth.user.id)
        if user is None:
            return CodeOutcome()
        if verify_second_factor(session, user, code, keys):
            sessions.discard(session, auth.web_session.id)
            _, session_id = sessions.start(session, user, second_factor_done=True)
            return CodeOutcome(session_id=session_id)
        if is_locked(user) or not user.is_active:
            sessions.discard(session, auth.web_session.id)
            return CodeOutcome(locked=True)
        return CodeOutcome()


@router.post("/sign-in/code", name="second_factor")
@second_factor_step
async def second_factor(request: Request, auth: AuthDep) -> Response:
    # check_csrf has already compared the form's token with the session's.
    form = await _small_form(request)
    next_path = _next_of(form.get("next"))
    if auth.principal is not None:
        return RedirectResponse(app_path(request, next_path), status_code=303)
    limit = limits_of(request).sign_in
    attempt = limit.take(address=client_address(request), username=auth.user.username)
    if not attempt.allowed:
        # Without the set-up key (reading it would touch the store): the page after the wait shows it again.
        response = _code_page(request, auth, next_path=next_path, error=too_many_message(attempt.retry_after), status_code=429,
                              enrolment=False)
        response.headers.update(retry_after_headers(attempt))
        return response
    outcome = await run_in_threadpool(_code_step, request, auth, form.get("code", "")[:20])
    if outcome.session_id is not None:
        limit.give_back(attempt)
        response = RedirectResponse(app_path(request, next_path), status_code=303)
        set_session_cookie(response, request, outcome.session_id)
        return response
    if outcome.locked:
        response = _sign_in_page(request, next_path=next_path, error=LOCKED, status_code=401)
        clear_session_cookie(response, request)
        return response
    return await run_in_threadpool(lambda: _code_page(request, auth, next_path=next_path, error=WRONG_CODE, status_code=401))


# --- Signing out -------------------------------------------------------------------------------


def _sign_out(request: Request, session_id: str) -> None:
    with write_transaction(request.app.state.engine) as session:
        sessions.end(session, session_id)


@router.post("/sign-out", name="sign_out")
@second_factor_step
async def sign_out(request: Request, auth: AuthDep) -> Response:
    """End the session (check_csrf has checked the form's token), forget the cookie, show the sign-in page."""
    if auth.session_id:
        await run_in_threadpool(_sign_out, request, auth.session_id)
    response = RedirectResponse(app_path(request, SIGN_IN_PATH + "?signed-out=true"), status_code=303)
    clear_session_cookie(response, request)
    return response
