"""Who is asking: every request is authenticated here, and every state-changing one CSRF-checked.

Two ways in:
- a page session: the `cldx_session` cookie holds a random id, looked up by its SHA-256 in
  `web_session` (`cldx.access.sessions` owns lifetimes: 8 hours at most, 30 minutes idle);
- an API token: `Authorization: Bearer cldx_...` (`cldx.access.tokens.authenticate`). When a
  request carries one, the cookie is ignored: a token says exactly who is calling.

Secure by default: `authenticate` and `check_csrf` are dependencies of the whole app
(`create_app`), so a new route needs a signed-in principal unless its endpoint is marked
`@public` (sign-in) or `@second_factor_step` (the one-time code pages and sign-out, which a
session still waiting for its code may use). `/openapi.json` and `/static` are not routes with
dependencies and stay open: the sign-in page needs the stylesheet, and neither holds data.

Without a principal a page request is sent to `/sign-in?next=<path>` (303) and an API request
gets 401 in the shared error shape with `WWW-Authenticate: Bearer`. Failed API tokens are
counted per client address (`cldx.web.throttle`): past the limit the address gets 429 with
`Retry-After` before any token it sends is looked up.

The cookie is Secure (HTTPS only; browsers also accept it from http://localhost for
development), HttpOnly (no script can read it) and SameSite=Lax: the browser sends it when
someone follows a link to a submission from an email, but never with a request another site
starts in the background or a form another site posts. Lax rather than Strict because Strict
would make every link from outside look signed out; what Lax still lets through (top-level
GETs) changes nothing, and every POST needs the session's CSRF token as well: a hidden
`csrf_token` field in forms, the `X-CSRF-Token` header from scripts (read from the page's
`<meta name="csrf-token">`). Requests with a Bearer token need none: another site cannot make
a browser send one. The sign-in form, before there is a session, is protected by a
double-submit token (a SameSite=Strict cookie that the form must echo).

For a provider principal the request's database transaction is scoped to its provider, so
PostgreSQL's row-level security enforces what the pages already filter (`cldx.store.scope`).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cldx.access import sessions, tokens
from cldx.access.roles import Principal
from cldx.access.users import principal_for_user
from cldx.store.db import write_transaction
from cldx.store.models import ApiToken, User, WebSession
from cldx.store.scope import set_scope

from .deps import SessionDep
from .errors import Redirect, wants_json
from .throttle import client_address, limits_of, retry_after_headers, wait_text

SESSION_COOKIE = "cldx_session"
SIGN_IN_COOKIE = "cldx_sign_in"  # the sign-in form's double-submit CSRF token
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Enough for the upload form (its own limits are the same); a form is parsed once and cached.
MAX_FORM_FILES = 50
MAX_FORM_FIELDS = 50

# How a route may be reached (a marker on its endpoint function).
SIGNED_IN = "signed-in"
PUBLIC = "public"
SECOND_FACTOR_STEP = "second-factor-step"

SIGN_IN_PATH = "/sign-in"
SECOND_FACTOR_PATH = "/sign-in/code"

CSRF_REFUSED = "This form has expired or did not come from this site. Go back, reload the page and try again."
SIGN_IN_NEEDED = "Sign in, or send an API token as Authorization: Bearer <token>."


def too_many_bad_tokens(seconds: int) -> str:
    return (f"Too many requests with API tokens that are not valid came from this address. Wait {wait_text(seconds)}, "
            "then send a valid token (unknown, revoked and expired tokens all count).")


F = TypeVar("F", bound=Callable[..., Any])


def public(endpoint: F) -> F:
    """Mark a route as open to anyone (sign-in)."""
    endpoint.cldx_access = PUBLIC  # type: ignore[attr-defined]
    return endpoint


def second_factor_step(endpoint: F) -> F:
    """Mark a route as open to a session that has passed the password but not yet the code."""
    endpoint.cldx_access = SECOND_FACTOR_STEP  # type: ignore[attr-defined]
    return endpoint


def route_access(request: Request) -> str:
    return getattr(request.scope.get("endpoint"), "cldx_access", SIGNED_IN)


@dataclass(frozen=True)
class Auth:
    """What a request was authenticated by. `principal` is None until sign-in is complete."""

    principal: Principal | None = None
    user: User | None = None            # the session's user, also while the second factor is pending
    web_session: WebSession | None = None
    session_id: str | None = None       # the cookie's value (to end or replace the session)
    via_token: bool = False

    @property
    def pending_second_factor(self) -> bool:
        return self.web_session is not None and self.principal is None

    @property
    def csrf_token(self) -> str | None:
        return self.web_session.csrf_token if self.web_session is not None else None


ANONYMOUS = Auth()


# --- Paths -----------------------------------------------------------------------------------


def app_path(request: Request, path: str) -> str:
    """Root-relative URL of a path in this app (honours a proxy's root_path)."""
    return f"{request.scope.get('root_path', '').rstrip('/')}/{path.lstrip('/')}"


def local_path(value: str | None) -> str | None:
    """`value` when it is a path in this app ("/submissions?page=2"), else None.

    Only a single leading slash: "//host" and "/\\host" are other hosts to a browser, and a
    scheme or host part means someone is trying to send the user elsewhere after signing in.
    """
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return None
    if any(ord(c) < 0x20 or c == "\x7f" or c == "\\" for c in value) or len(value) > 2000:
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def requested_path(request: Request) -> str:
    """The path and query asked for, without the root_path (what `next` carries)."""
    path = request.url.path
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    return path + (f"?{request.url.query}" if request.url.query else "")


def sign_in_url(request: Request, target: str = SIGN_IN_PATH) -> str:
    wanted = requested_path(request)
    query = "" if wanted == "/" else "?" + urlencode({"next": wanted})
    return app_path(request, target) + query


# --- Cookies ---------------------------------------------------------------------------------


def cookie_path(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/") or "/"


def set_session_cookie(response: Response, request: Request, session_id: str) -> None:
    response.set_cookie(SESSION_COOKIE, session_id, max_age=int(sessions.ABSOLUTE_LIFETIME.total_seconds()),
                        path=cookie_path(request), secure=True, httponly=True, samesite="lax")


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path=cookie_path(request), secure=True, httponly=True, samesite="lax")


def sign_in_form_token(request: Request) -> str:
    """The sign-in form's CSRF token: the one its cookie already holds, or a new one."""
    current = request.cookies.get(SIGN_IN_COOKIE, "")
    return current if 20 <= len(current) <= 100 else secrets.token_urlsafe(32)


def set_sign_in_cookie(response: Response, request: Request, token: str) -> None:
    # Strict: a form another site posts arrives without it, so it cannot sign anyone in.
    response.set_cookie(SIGN_IN_COOKIE, token, max_age=3600, path=cookie_path(request), secure=True, httponly=True,
                        samesite="strict")


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; an absent token never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


# --- The dependencies ------------------------------------------------------------------------


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _token_principal(request: Request, session: Session, plaintext: str) -> Principal | None:
    """The token's principal. `tokens.authenticate` notes the use (once a minute): that write
    gets a short transaction of its own, so the request's own session stays read-only and
    never waits for SQLite's write lock on an ordinary read."""
    last_used = session.execute(select(ApiToken.last_used_at).where(ApiToken.token_hash == tokens.hash_token(plaintext))).first()
    if last_used is None:
        return None
    if last_used[0] is None or datetime.now(timezone.utc) - last_used[0] >= tokens.LAST_USED_RESOLUTION:
        with write_transaction(request.app.state.engine) as writer:
            principal = tokens.authenticate(writer, plaintext)
        return principal
    return tokens.authenticate(session, plaintext)


def _unauthenticated(request: Request, *, bad_token: bool = False) -> Exception:
    if wants_json(request):
        challenge = 'Bearer error="invalid_token"' if bad_token else "Bearer"
        message = "The API token is not valid (unknown, revoked, expired, or its user disabled)." if bad_token else SIGN_IN_NEEDED
        return HTTPException(401, detail=message, headers={"WWW-Authenticate": challenge})
    return Redirect(sign_in_url(request))


def scope_database(session: Session, principal: Principal) -> None:
    """A provider principal's transaction sees only its provider's rows (PostgreSQL row-level security).

    Ministry principals keep the engine's ministry-wide default; what they may open is decided
    by the capability checks (an administrator, for one, is refused the provider pages).
    """
    if len(principal.provider_ids) == 1:
        set_scope(session.connection(), provider_id=next(iter(principal.provider_ids)))


def authenticate(request: Request, session: SessionDep) -> Auth:
    """Find who is asking and refuse (redirect or 401) when the route needs someone else."""
    access = route_access(request)
    auth = ANONYMOUS
    bearer = _bearer(request)
    if bearer is not None:
        # Failed tokens are counted per address (cldx.web.throttle); past the limit the
        # address is refused before the store is asked, valid token or not.
        token_limit, address = limits_of(request).tokens, client_address(request)
        refused = token_limit.check(address=address)
        if not refused.allowed:
            raise HTTPException(429, detail=too_many_bad_tokens(refused.retry_after), headers=retry_after_headers(refused))
        principal = _token_principal(request, session, bearer) if bearer else None
        if principal is not None:
            auth = Auth(principal=principal, via_token=True)
        else:
            token_limit.note(address=address)
            if access != PUBLIC:
                raise _unauthenticated(request, bad_token=True)
    else:
        session_id = request.cookies.get(SESSION_COOKIE)
        active = sessions.find(session, session_id) if session_id else None
        if active is not None:
            if active.needs_touch:
                with write_transaction(request.app.state.engine) as writer:
                    sessions.touch(writer, active.row.id)
            principal = principal_for_user(session, active.user)
            # Checked on every request, not only at sign-in: a role needing a code granted
            # since then takes effect at once.
            complete = active.row.second_factor_done or not principal.needs_second_factor
            auth = Auth(principal=principal if complete else None, user=active.user, web_session=active.row, session_id=session_id)
    request.state.auth = auth

    if access == PUBLIC:
        return auth
    if access == SECOND_FACTOR_STEP:
        if auth.web_session is None and auth.principal is None:
            raise _unauthenticated(request)
        return auth
    if auth.principal is None:
        if auth.pending_second_factor and not wants_json(request):
            raise Redirect(sign_in_url(request, SECOND_FACTOR_PATH))
        raise _unauthenticated(request)
    scope_database(session, auth.principal)
    return auth


AuthDep = Annotated[Auth, Depends(authenticate)]


async def check_csrf(request: Request, auth: AuthDep) -> None:
    """Refuse (403) a state-changing request from a page session that lacks its session's CSRF token."""
    if request.method in SAFE_METHODS or auth.via_token or auth.web_session is None or route_access(request) == PUBLIC:
        return  # the sign-in form checks its own double-submit token, session or not
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        try:
            form = await request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS)
        except HTTPException:
            raise  # the upload limit, reached while the body streamed in
        except Exception:  # noqa: BLE001 - an unreadable form carries no token
            form = None
        value = form.get(CSRF_FIELD) if form is not None else None
        given = value if isinstance(value, str) else None
    if not tokens_match(auth.csrf_token, given):
        raise HTTPException(403, detail=CSRF_REFUSED)


def principal_of(request: Request) -> Principal:
    """The principal `authenticate` found for this request (401 if none: a public route asked)."""
    auth = getattr(request.state, "auth", ANONYMOUS)
    if auth.principal is None:
        raise HTTPException(401, detail=SIGN_IN_NEEDED, headers={"WWW-Authenticate": "Bearer"})
    return auth.principal


def current_principal(auth: AuthDep) -> Principal:
    """The signed-in principal (the app-wide `authenticate` has already refused anyone else)."""
    if auth.principal is None:  # only on a route marked public or second_factor_step
        raise HTTPException(401, detail=SIGN_IN_NEEDED, headers={"WWW-Authenticate": "Bearer"})
    return auth.principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


# --- What a principal may do -----------------------------------------------------------------


def providers_with(principal: Principal, capability: str) -> frozenset[int]:
    """The providers for which the principal holds a provider capability (SUBMIT, VIEW_PROVIDER)."""
    return frozenset(p for p in principal.provider_ids if principal.can(capability, p))


def forbidden(message: str = "Your role does not allow this page.") -> HTTPException:
    return HTTPException(403, detail=message)
