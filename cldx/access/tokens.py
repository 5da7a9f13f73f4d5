"""API tokens: issuing (shown once), authenticating a request, revoking, listing.

Owns the bearer tokens of the REST API. Two kinds:
- system: a provider's case system sending records; scoped to that one provider (it submits
  and reads that provider's own receipts and findings), owned by no user;
- personal: a user's own token for scripts; it carries the user's roles at the moment of use,
  so withdrawing a role or disabling the user takes effect on the token at once.

A token is `cldx_` followed by 256 random bits (so it is recognisable in logs and by secret
scanners). Only its SHA-256 is stored: the token is random, so no slow hash is needed to stop
guessing, and look-up by hash means the comparison never touches the token itself. The first
few characters (`prefix`) are kept to recognise a token in lists.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from cldx.access import audit
from cldx.access.errors import TokenRefused, UnknownProvider, UnknownToken, UnknownUser
from cldx.access.roles import PROVIDER_SUBMITTER, VIA_PERSONAL_TOKEN, VIA_SYSTEM_TOKEN, Principal
from cldx.access.users import SYSTEM_ACTOR, grants_of
from cldx.store.models import ApiToken, Provider, User

SYSTEM = "system"
PERSONAL = "personal"
KINDS = (SYSTEM, PERSONAL)

TOKEN_PREFIX = "cldx_"
PREFIX_LENGTH = 12  # "cldx_" and 7 random characters: enough to tell tokens apart, useless to guess with
# Writing last_used_at on every request would make every API call a write; to the minute is
# enough to see which tokens are in use.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def hash_token(plaintext: str) -> str:
    """The SHA-256 (hex) a token is stored and looked up by."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def issue(
    session: Session,
    kind: str,
    name: str,
    created_by: str,
    user_id: int | None = None,
    provider_id: int | None = None,
    expires_at: datetime | None = None,
    *,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token and its plaintext; the plaintext exists only in the return value: show it once.

    A system token needs a provider and no user; a personal token needs an active user and no
    provider (its roles come from the user). `TokenRefused` otherwise.
    """
    now = _now(now)
    name = name.strip()
    if kind not in KINDS:
        raise TokenRefused(f"Unknown token kind {kind!r}; kinds are {', '.join(KINDS)}.")
    if not name or len(name) > 100:
        raise TokenRefused("A token needs a name of 1 to 100 characters (say what uses it).")
    if kind == SYSTEM:
        if provider_id is None or user_id is not None:
            raise TokenRefused("A system token is for one provider and belongs to no user.")
        if session.get(Provider, provider_id) is None:
            raise UnknownProvider(f"No provider with id {provider_id}.")
    else:
        if user_id is None or provider_id is not None:
            raise TokenRefused("A personal token belongs to one user and carries that user's roles; it takes no provider.")
        user = session.get(User, user_id)
        if user is None:
            raise UnknownUser(f"No user with id {user_id}.")
        if not user.is_active:
            raise TokenRefused(f"{user.username} is disabled.")
    if expires_at is not None and expires_at <= now:
        raise TokenRefused("The expiry must be in the future.")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(kind=kind, name=name, token_hash=hash_token(plaintext), prefix=plaintext[:PREFIX_LENGTH], user_id=user_id,
                     provider_id=provider_id, created_by=created_by, created_at=now, expires_at=expires_at)
    session.add(token)
    session.flush()
    audit.record(session, actor=created_by, action="token-issued", target=f"{token.name} ({token.prefix}...)",
                 provider_id=provider_id, detail={"id": token.id, "kind": kind, "user_id": user_id, "expires_at":
                                                  expires_at.isoformat() if expires_at else None})
    return token, plaintext


def authenticate(session: Session, plaintext: str, now: datetime | None = None) -> Principal | None:
    """The principal a presented token acts as, or None: unknown, revoked, expired, or its user disabled.

    Notes when the token was used (`last_used_at`, to the minute), so the caller commits.
    """
    now = _now(now)
    if not plaintext.startswith(TOKEN_PREFIX):
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext)))
    if token is None or token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if token.kind == SYSTEM:
        principal = Principal(name=token.name, roles=frozenset({(PROVIDER_SUBMITTER, token.provider_id)}), via=VIA_SYSTEM_TOKEN,
                              token_id=token.id)
    elif token.kind == PERSONAL:
        user = session.get(User, token.user_id)
        if user is None or not user.is_active:
            return None
        principal = Principal(name=user.username, roles=frozenset(grants_of(session, user.id)), via=VIA_PERSONAL_TOKEN,
                              user_id=user.id, token_id=token.id)
    else:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
        session.flush()
    return principal


def revoke(session: Session, token_id: int, *, actor: str = SYSTEM_ACTOR, now: datetime | None = None) -> ApiToken:
    """Stop a token working from now on; revoking it again changes nothing."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise UnknownToken(f"No token with id {token_id}.")
    if token.revoked_at is None:
        token.revoked_at = _now(now)
        session.flush()
        audit.record(session, actor=actor, action="token-revoked", target=f"{token.name} ({token.prefix}...)",
                     provider_id=token.provider_id, detail={"id": token.id, "kind": token.kind})
    return token


@dataclass(frozen=True)
class TokenSummary:
    """One token as lists show it: never the token or its hash."""

    id: int
    kind: str
    name: str
    prefix: str
    owner: str  # the provider code of a system token, the username of a personal one
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


def list_tokens(session: Session, *, include_revoked: bool = True) -> list[TokenSummary]:
    """Every token, oldest first."""
    query = (select(ApiToken, Provider.code, User.username)
             .outerjoin(Provider, Provider.id == ApiToken.provider_id)
             .outerjoin(User, User.id == ApiToken.user_id)
             .order_by(ApiToken.id))
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return [TokenSummary(id=t.id, kind=t.kind, name=t.name, prefix=t.prefix, owner=(code if t.kind == SYSTEM else username) or "",
                         created_by=t.created_by, created_at=t.created_at, expires_at=t.expires_at, last_used_at=t.last_used_at,
                         revoked_at=t.revoked_at)
            for t, code, username in session.execute(query)]
