"""The API tokens page: list, issue and revoke tokens (MANAGE_TOKENS).

- `GET /admin/tokens`: every token (id, name, kind, owner, what it may do, first characters,
  created, expires, last used, revoked), never the token or its hash.
- `POST /admin/tokens`: issue one. The answer is the page itself with the token on it, once:
  the token exists only in `cldx.access.tokens.issue`'s return value, so it is not kept to be
  shown again, and the answer is marked `Cache-Control: no-store` so no cache keeps it either.
  This is the one write here that is not Post/Redirect/Get: a redirect would have to carry the
  token somewhere to show it.
- `POST /admin/tokens/revoke`: stop one working (Post/Redirect/Get).

`cldx.access.tokens` records issuing and revoking in the audit trail (the token's name and
first characters, never the token). A system token is a provider's case system: it sends
that provider's records. A personal token carries its owner's roles when it is used, so the
page issues one only to the administrator asking: handing an administrator a token that acts
as someone else would let them act with roles they do not hold (a privacy officer's, say).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cldx.access import tokens, users
from cldx.access.errors import TokenRefused, UnknownProvider, UnknownToken, UnknownUser
from cldx.access.roles import MANAGE_TOKENS, PROVIDER_SUBMITTER
from cldx.store.db import read_transaction, write_transaction
from cldx.store.models import ApiToken, Provider
from cldx.web.auth import principal_of
from cldx.web.deps import SessionDep
from cldx.web.pages.privacy import needs
from cldx.web.templating import render

from .forms import NO_CONTROL, FormErrors, Notices, clean, has_control

NO_TOKENS = "Your role does not manage API tokens."
NO_SUCH_TOKEN = "There is no API token with that id."
MAX_NAME = 100
MAX_EXPIRY_DAYS = 3650

KIND_CHOICES = [
    (tokens.SYSTEM, "System token for a provider's case system", "Sends that provider's records and reads its own receipts and findings."),
    (tokens.PERSONAL, "Personal token for you", "For your own scripts: it acts with your roles at the time it is used."),
]

NOTICES = Notices(token_revoked="Revoked token {item}: it no longer works.",
                  token_unchanged="Token {item} was already revoked: nothing changed.")

router = APIRouter(prefix="/tokens", dependencies=[needs(MANAGE_TOKENS, NO_TOKENS)])


def _scope(token: tokens.TokenSummary, roles_of: dict[str, list[list[str | None]]]) -> str:
    """What a token may do, in words: a system token's fixed role, a personal token's owner's roles now."""
    if token.kind == tokens.SYSTEM:
        return f"{PROVIDER_SUBMITTER} for {token.owner}"
    held = roles_of.get(token.owner, [])
    return "the roles of " + token.owner + ": " + (", ".join(f"{r} ({c})" if c else str(r) for r, c in held) or "none")


def _context(request: Request, session: Session, *, errors: FormErrors | None = None, values: dict[str, str] | None = None,
             issued: dict[str, Any] | None = None, notice: str = "") -> dict[str, Any]:
    roles_of = {u.username: u.roles for u in users.list_users(session)}
    now = datetime.now(timezone.utc)
    listed = tokens.list_tokens(session)
    return {
        "tokens": [{"item": t, "scope": _scope(t, roles_of),
                    "state": "revoked" if t.revoked_at else "expired" if t.expires_at and t.expires_at <= now else "active"}
                   for t in reversed(listed)],  # newest first
        "providers": [(code, f"{code} {name}") for code, name in session.execute(select(Provider.code, Provider.name).order_by(Provider.code))],
        "kinds": KIND_CHOICES,
        "errors": errors or FormErrors(),
        "values": values or {"kind": "", "name": "", "provider": "", "expires_days": ""},
        "issued": issued,
        "notice": notice,
    }


@router.get("", response_class=HTMLResponse, name="admin_tokens_page")
def tokens_page(
    request: Request,
    session: SessionDep,
    done: Annotated[str, Query(max_length=40, pattern=NO_CONTROL)] = "",
    item: Annotated[str, Query(max_length=100, pattern=NO_CONTROL)] = "",
) -> HTMLResponse:
    return render(request, "admin_tokens.html", _context(request, session, notice=NOTICES.message(done, item)))


@router.post("", name="admin_issue_token")
def issue_token(
    request: Request,
    session: SessionDep,
    kind: Annotated[str, Form(max_length=20)] = "",
    name: Annotated[str, Form(max_length=2 * MAX_NAME)] = "",
    provider: Annotated[str, Form(max_length=40)] = "",
    expires_days: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    values = {"kind": clean(kind), "name": clean(name), "provider": clean(provider), "expires_days": clean(expires_days)}
    errors = FormErrors("issue")
    principal = principal_of(request)
    if values["kind"] not in tokens.KINDS:
        errors.add("kind", "Choose a system token (a provider's case system) or a personal token (yours).")
    if not values["name"] or len(values["name"]) > MAX_NAME or has_control(values["name"]):
        errors.add("name", f"Name the token in 1 to {MAX_NAME} characters of plain text: say what uses it, for example "
                           "\"Te Whare Tiaki case system\".")
    provider_id = None
    if values["kind"] == tokens.SYSTEM:
        if not values["provider"]:
            errors.add("provider", "Choose the provider whose case system will use the token.")
        else:
            provider_id = session.scalar(select(Provider.id).where(Provider.code == values["provider"]))
            if provider_id is None:
                errors.add("provider", f"There is no provider {values['provider']!r}: choose one from the list.")
    elif values["kind"] == tokens.PERSONAL:
        if values["provider"]:
            errors.add("provider", "Leave the provider empty: a personal token carries your roles, not a provider's.")
        if principal.user_id is None:
            errors.add("kind", "Only a signed-in user can be given a personal token.")
    expires_at = None
    if values["expires_days"]:
        if not values["expires_days"].isdigit() or not 1 <= int(values["expires_days"]) <= MAX_EXPIRY_DAYS:
            errors.add("expires_days", f"Give the number of days as a whole number from 1 to {MAX_EXPIRY_DAYS}, or leave it empty for a "
                                       "token that does not expire.")
        else:
            expires_at = datetime.now(timezone.utc) + timedelta(days=int(values["expires_days"]))
    if not errors:
        try:
            with write_transaction(request.app.state.engine) as writer:
                if values["kind"] == tokens.SYSTEM:
                    token, plaintext = tokens.issue(writer, tokens.SYSTEM, values["name"], principal.name, provider_id=provider_id,
                                                    expires_at=expires_at)
                    owner = f"provider {values['provider']}"
                else:
                    token, plaintext = tokens.issue(writer, tokens.PERSONAL, values["name"], principal.name, user_id=principal.user_id,
                                                    expires_at=expires_at)
                    owner = f"you ({principal.name})"
                issued = {"id": token.id, "name": token.name, "owner": owner, "plaintext": plaintext, "expires_at": expires_at}
        except (TokenRefused, UnknownProvider, UnknownUser) as exc:
            errors.add("kind" if isinstance(exc, UnknownUser) else "provider" if isinstance(exc, UnknownProvider) else "name", str(exc))
        else:
            # The page with the token, once; read afresh so the list shows the new token's row.
            with read_transaction(request.app.state.engine) as fresh:
                context = _context(request, fresh, issued=issued)
            return render(request, "admin_tokens.html", context, status_code=201,
                          headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
    return render(request, "admin_tokens.html", _context(request, session, errors=errors, values=values), status_code=422)


@router.post("/revoke", name="admin_revoke_token")
def revoke_token(request: Request, token_id: Annotated[str, Form(max_length=20)] = "") -> Response:
    if not token_id.isdigit() or len(token_id) > 18:
        raise HTTPException(404, detail=NO_SUCH_TOKEN)
    try:
        with write_transaction(request.app.state.engine) as writer:
            # `revoke` changes nothing for a revoked token and does not say so: looked at first, for the confirmation.
            already = writer.scalar(select(ApiToken.revoked_at).where(ApiToken.id == int(token_id))) is not None
            token = tokens.revoke(writer, int(token_id), actor=principal_of(request).name)
    except UnknownToken:
        raise HTTPException(404, detail=NO_SUCH_TOKEN) from None
    return NOTICES.redirect(request, "/admin/tokens", "token-unchanged" if already else "token-revoked", str(token.id))
