"""Users: accounts, their roles, passwords, second factors, and signing in.

Owns the service the CLI uses now and the web sign-in will call: every function takes the
caller's session and changes nothing outside it, so the caller's transaction decides whether
it all happens (audit entry included). No web code here.

Signing in is two steps for a user whose roles need a second factor: `authenticate_password`,
then `verify_second_factor`; the sign-in is complete (and recorded) only after the second.
Failed passwords and failed codes count together, and the count is reset only by a complete
sign-in, so knowing the password does not buy unlimited guesses at the code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cldx.access import audit, totp
from cldx.access.errors import (
    AlreadyEnrolled,
    InvalidUsername,
    PasswordRejected,
    UnknownProvider,
    UnknownUser,
    UsernameTaken,
)
from cldx.access.passwords import check_password_policy, hash_password, needs_rehash, spend_verification_time, verify_password
from cldx.access.roles import PROVIDER_ROLES, Grant, Principal, RoleError, check_roles, needs_second_factor
from cldx.store.models import Provider, User, UserRole, WebSession

# Consecutive failed sign-ins (passwords and codes together) after which the account is locked
# until an administrator resets it. NIST SP 800-63B asks for at most 100; ten leaves room for
# typing mistakes while stopping guessing long before it could work against a 12-character
# policy or a one-time code. A lock that lifts by itself would stop an administrator hearing of
# an attack; the cost, that anyone can lock a known username, is small with a few hundred
# accounts and administrators at hand.
MAX_FAILED_SIGN_INS = 10

# Lower-case letters, digits and . _ @ + - (an email address works), 2 to 100 characters.
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@+-]{1,99}$")
# The audit trail's actor for work nobody asked for; no user may take the name.
RESERVED_USERNAMES = frozenset({"system"})
SYSTEM_ACTOR = "system"


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def normalise_username(username: str) -> str:
    return username.strip().lower()


# --- Looking things up ------------------------------------------------------------------


def get_user(session: Session, username: str) -> User:
    """The user with this username; `UnknownUser` when there is none."""
    user = session.scalar(select(User).where(User.username == normalise_username(username)))
    if user is None:
        raise UnknownUser(f"No user {username!r}.")
    return user


def provider_id_for(session: Session, code: str) -> int:
    """The id of the provider with this code; `UnknownProvider` when there is none."""
    provider_id = session.scalar(select(Provider.id).where(Provider.code == code))
    if provider_id is None:
        raise UnknownProvider(f"No provider with code {code!r}.")
    return provider_id


def grants_of(session: Session, user_id: int) -> set[Grant]:
    """The roles a user holds, each with its provider id (None for ministry roles)."""
    return {(role, provider_id) for role, provider_id in session.execute(
        select(UserRole.role, UserRole.provider_id).where(UserRole.user_id == user_id))}


def _provider_codes(session: Session, provider_ids: Iterable[int | None]) -> dict[int, str]:
    ids = {p for p in provider_ids if p is not None}
    if not ids:
        return {}
    return {provider_id: code for provider_id, code in session.execute(select(Provider.id, Provider.code).where(Provider.id.in_(ids)))}


def _described(session: Session, grants: Iterable[Grant]) -> list[list[str | None]]:
    """Grants as [role, provider code] pairs, sorted: how the trail and the CLI show them."""
    grants = list(grants)
    codes = _provider_codes(session, (p for _, p in grants))
    return sorted(([role, codes.get(p) if p is not None else None] for role, p in grants), key=lambda g: (g[0], g[1] or ""))


def principal_for_user(session: Session, user: User) -> Principal:
    """The principal a signed-in user acts as: their username and every role they hold now."""
    return Principal(name=user.username, roles=frozenset(grants_of(session, user.id)), user_id=user.id)


def second_factor_required(session: Session, user: User) -> bool:
    """Whether signing in as this user needs a one-time code (any role that needs one)."""
    return needs_second_factor(role for role, _ in grants_of(session, user.id))


def is_locked(user: User) -> bool:
    return user.failed_sign_ins >= MAX_FAILED_SIGN_INS


@dataclass(frozen=True)
class UserSummary:
    """One user as `cldx users list` and the administration page show them (never a secret)."""

    id: int
    username: str
    display_name: str
    email: str | None
    roles: list[list[str | None]]  # [role, provider code or None]
    is_active: bool
    locked: bool
    second_factor_enrolled: bool
    second_factor_required: bool
    last_sign_in_at: datetime | None


def list_users(session: Session) -> list[UserSummary]:
    """Every user, by username."""
    users = list(session.scalars(select(User).order_by(User.username)))
    grants: dict[int, set[Grant]] = {}
    for user_id, role, provider_id in session.execute(select(UserRole.user_id, UserRole.role, UserRole.provider_id)):
        grants.setdefault(user_id, set()).add((role, provider_id))
    summaries = []
    for user in users:
        held = grants.get(user.id, set())
        summaries.append(UserSummary(
            id=user.id, username=user.username, display_name=user.display_name, email=user.email,
            roles=_described(session, held), is_active=user.is_active, locked=is_locked(user),
            second_factor_enrolled=user.totp_secret is not None,
            second_factor_required=needs_second_factor(role for role, _ in held),
            last_sign_in_at=user.last_sign_in_at,
        ))
    return summaries


# --- Changing users (administrators) -------------------------------------------------------


def _checked_password(password: str, username: str) -> str:
    problems = check_password_policy(password, username)
    if problems:
        raise PasswordRejected(problems)
    return hash_password(password)


def _end_web_sessions(session: Session, user: User) -> None:
    """Sign the user out everywhere: after a reset, a role change or disabling, no browser keeps the old access."""
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))


def add_user(
    session: Session,
    username: str,
    password: str,
    display_name: str = "",
    *,
    roles: Iterable[tuple[str, str | None]] = (),
    email: str | None = None,
    actor: str = SYSTEM_ACTOR,
    now: datetime | None = None,
) -> User:
    """Create a user with a password meeting the policy and roles given as (role, provider code or None)."""
    username = normalise_username(username)
    if not USERNAME_PATTERN.match(username) or username in RESERVED_USERNAMES:
        raise InvalidUsername(f"{username!r} is not a valid username: use 2-100 lower-case letters, digits and . _ @ + -"
                              + (" (and not a reserved name)" if username in RESERVED_USERNAMES else "") + ".")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UsernameTaken(f"There is already a user {username!r}.")
    grants = {(role, provider_id_for(session, code) if code else None) for role, code in roles}
    check_roles(grants)
    password_hash = _checked_password(password, username)
    user = User(username=username, display_name=display_name, email=email, password_hash=password_hash, is_active=True,
                failed_sign_ins=0, password_changed_at=_now(now))
    session.add(user)
    session.flush()
    session.add_all(UserRole(user_id=user.id, role=role, provider_id=provider_id) for role, provider_id in grants)
    session.flush()
    audit.record(session, actor=actor, action="user-added", target=username, detail={"roles": _described(session, grants)})
    return user


def set_role(
    session: Session,
    username: str,
    role: str,
    provider_code: str | None = None,
    *,
    remove: bool = False,
    actor: str = SYSTEM_ACTOR,
) -> bool:
    """Grant a role (or with `remove`, withdraw it); True when anything changed.

    Withdrawing a provider role needs no provider code: a user's provider roles are all for one
    provider. The roles left must still keep the rules (`RoleError` otherwise). A change signs
    the user out everywhere, as a reset does: requests already read the roles afresh, but a
    session, its id and its CSRF token, should belong to one set of privileges, so the new roles
    begin with a new sign-in (and, for a role that needs one, its code).
    """
    user = get_user(session, username)
    before = grants_of(session, user.id)
    provider_id = provider_id_for(session, provider_code) if provider_code else None
    if remove:
        if role in PROVIDER_ROLES and provider_id is None:
            matching = {g for g in before if g[0] == role}
        else:
            matching = {(role, provider_id)} & before
        if not matching:
            raise RoleError([f"{user.username} does not hold the {role} role" + (f" for {provider_code}" if provider_code else "") + "."])
        after = before - matching
    else:
        after = before | {(role, provider_id)}
    if after == before:
        return False
    check_roles(after)
    for gone_role, gone_provider in before - after:
        session.execute(delete(UserRole).where(UserRole.user_id == user.id, UserRole.role == gone_role,
                                               UserRole.provider_id.is_(None) if gone_provider is None else UserRole.provider_id == gone_provider))
    session.add_all(UserRole(user_id=user.id, role=r, provider_id=p) for r, p in after - before)
    _end_web_sessions(session, user)
    session.flush()
    changed = (before - after) | (after - before)
    audit.record(session, actor=actor, action="role-change", target=user.username,
                 provider_id=next((p for _, p in changed if p is not None), None),
                 detail={"added": _described(session, after - before), "removed": _described(session, before - after),
                         "roles": _described(session, after)})
    return True


def disable(session: Session, username: str, *, actor: str = SYSTEM_ACTOR) -> User:
    """Stop a user signing in or using their tokens, and sign them out; their history stays."""
    user = get_user(session, username)
    if user.is_active:
        user.is_active = False
        _end_web_sessions(session, user)
        session.flush()
        audit.record(session, actor=actor, action="user-disabled", target=user.username)
    return user


def reset_password(session: Session, username: str, new_password: str, *, actor: str = SYSTEM_ACTOR,
                   now: datetime | None = None) -> User:
    """Set a new password meeting the policy, unlock the account and sign the user out everywhere."""
    user = get_user(session, username)
    user.password_hash = _checked_password(new_password, user.username)
    user.password_changed_at = _now(now)
    user.failed_sign_ins = 0
    _end_web_sessions(session, user)
    session.flush()
    audit.record(session, actor=actor, action="password-reset", target=user.username)
    return user


def reset_second_factor(session: Session, username: str, *, actor: str = SYSTEM_ACTOR) -> User:
    """Forget the user's second factor (a lost phone): they set up a new one at their next sign-in.

    Also unlocks the account and signs the user out everywhere.
    """
    user = get_user(session, username)
    user.totp_secret = None
    user.totp_last_step = None
    user.failed_sign_ins = 0
    _end_web_sessions(session, user)
    session.flush()
    audit.record(session, actor=actor, action="second-factor-reset", target=user.username)
    return user


def enrol_totp(session: Session, user: User | str, sealer: totp.Sealer) -> str:
    """Give the user a new TOTP secret, stored sealed; returns the provisioning URI to show them once.

    Refused (`AlreadyEnrolled`) when they have one: replacing it takes an administrator's reset,
    so someone who has only stolen the password cannot enrol their own phone.
    """
    if isinstance(user, str):
        user = get_user(session, user)
    if user.totp_secret is not None:
        raise AlreadyEnrolled(f"{user.username} already has a second factor; an administrator must reset it first.")
    secret = totp.new_secret()
    user.totp_secret = totp.seal_secret(sealer, secret)
    user.totp_last_step = None
    session.flush()
    return totp.provisioning_uri(secret, user.username)


# --- Signing in -------------------------------------------------------------------------


def _refuse(session: Session, username: str, reason: str, user: User | None = None, *, count: bool = False) -> None:
    if user is not None and count:
        user.failed_sign_ins += 1
        if is_locked(user):
            reason += "; account now locked"
        session.flush()
    audit.record(session, actor=username[:100] or "(empty)", action="sign-in-failed", target=username[:255],
                 detail={"reason": reason})


def _complete(session: Session, user: User, how: str, now: datetime) -> None:
    user.failed_sign_ins = 0
    user.last_sign_in_at = now
    session.flush()
    audit.record(session, actor=user.username, action="sign-in", target=user.username, detail={"how": how})


def authenticate_password(session: Session, username: str, password: str, now: datetime | None = None) -> User | None:
    """The user when the password is right and the account may sign in, else None (the reason goes to the trail).

    Every refusal costs one argon2 verification, whether the username exists or not, so neither
    the answer nor its timing says which usernames exist. When the user's roles need a second
    factor the sign-in is not complete: call `verify_second_factor` next (and `enrol_totp` first
    when they have none). Commit the transaction whatever the answer: a refusal counts towards
    the lock and is recorded in the audit trail.
    """
    now = _now(now)
    name = normalise_username(username)
    user = session.scalar(select(User).where(User.username == name)) if name else None
    if user is None:
        spend_verification_time(password)
        _refuse(session, name, "unknown-user")
        return None
    if not user.is_active or is_locked(user):
        spend_verification_time(password)
        _refuse(session, name, "disabled" if not user.is_active else "locked", user)
        return None
    if user.password_hash is None or not verify_password(user.password_hash, password):
        if user.password_hash is None:
            spend_verification_time(password)
        _refuse(session, name, "wrong-password", user, count=True)
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    if second_factor_required(session, user):
        session.flush()
        return user
    _complete(session, user, "password", now)
    return user


def verify_second_factor(session: Session, user: User, code: str, sealer: totp.Sealer, now: datetime | None = None) -> bool:
    """Finish a sign-in with a one-time code: True when accepted (the sign-in is then recorded).

    A code is accepted once (the step is kept), from a step either side of now; a wrong code
    counts as a failed sign-in.
    """
    now = _now(now)
    if not user.is_active or is_locked(user) or user.totp_secret is None:
        reason = "disabled" if not user.is_active else "locked" if is_locked(user) else "no-second-factor"
        _refuse(session, user.username, reason, user)
        return False
    step = totp.verify(totp.open_secret(sealer, user.totp_secret), code, user.totp_last_step, now)
    if step is None:
        _refuse(session, user.username, "wrong-code", user, count=True)
        return False
    user.totp_last_step = step
    _complete(session, user, "password and one-time code", now)
    return True
