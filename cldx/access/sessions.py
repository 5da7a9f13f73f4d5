"""Web sessions: starting, finding, refreshing and ending a signed-in browser's session.

Owns the server side of a page session (the `web_session` row) and its lifetimes; the web app
owns the cookie. The cookie holds 256 random bits; the store holds only their SHA-256, so a
copy of the table signs nobody in. Each session carries its own CSRF token (forms echo it).

A session ends at the first of: `ABSOLUTE_LIFETIME` after it started, `IDLE_TIMEOUT` after it
was last used, sign-out, its user being disabled (`users.disable` deletes the rows; `find`
also refuses an inactive user, in case a row was left), or an administrator changing the
user's roles, password or second factor (`users.set_role` and the resets delete them too). A session made by the password step
for a user whose roles need a one-time code has `second_factor_done` false; the web app lets
it reach only the second-factor pages. Completing that step starts a new session (new id):
the id changes whenever the privilege does, so an id planted or seen before sign-in is useless.

Like `cldx.access.users`, every function works in the caller's session and commits nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cldx.access import audit
from cldx.store.models import User, WebSession

# A working day: long enough not to interrupt a day's uploads, short enough that a browser
# left signed in on a shared computer does not stay so overnight.
ABSOLUTE_LIFETIME = timedelta(hours=8)
# Unused for half an hour: the person has probably left the screen (NIST SP 800-63B AAL2 asks
# for at most 30 minutes of inactivity).
IDLE_TIMEOUT = timedelta(minutes=30)
# `last_seen_at` is written at most once a minute, so reading a page is not a write each time.
TOUCH_RESOLUTION = timedelta(minutes=1)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def hash_session_id(session_id: str) -> str:
    """The SHA-256 (hex) a session id is stored and looked up by."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ActiveSession:
    """A session that is still good, with its user (what a request is authenticated by)."""

    row: WebSession
    user: User

    @property
    def needs_touch(self) -> bool:
        return datetime.now(timezone.utc) - self.row.last_seen_at >= TOUCH_RESOLUTION


def start(session: Session, user: User, *, second_factor_done: bool, now: datetime | None = None) -> tuple[WebSession, str]:
    """A new session for `user` and the id for the cookie (it exists only in the return value)."""
    now = _now(now)
    session_id = secrets.token_urlsafe(32)
    row = WebSession(session_hash=hash_session_id(session_id), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
                     second_factor_done=second_factor_done, created_at=now, last_seen_at=now, expires_at=now + ABSOLUTE_LIFETIME)
    session.add(row)
    session.flush()
    return row, session_id


def find(session: Session, session_id: str, now: datetime | None = None) -> ActiveSession | None:
    """The session a cookie names when it is still good (not expired, not idle, user active), else None.

    Reads only: an expired row is left for `end` or `purge_expired`, so a page view never writes.
    """
    now = _now(now)
    if not session_id or len(session_id) > 200:
        return None
    found = session.execute(select(WebSession, User).join(User, User.id == WebSession.user_id)
                            .where(WebSession.session_hash == hash_session_id(session_id))).first()
    if found is None:
        return None
    row, user = found
    if row.expires_at <= now or row.last_seen_at + IDLE_TIMEOUT <= now or not user.is_active:
        return None
    return ActiveSession(row, user)


def touch(session: Session, session_row_id: int, now: datetime | None = None) -> None:
    """Note that the session was used now (restarting its idle time)."""
    row = session.get(WebSession, session_row_id)
    if row is not None:
        row.last_seen_at = _now(now)
        session.flush()


def end(session: Session, session_id: str, *, reason: str = "signed out") -> bool:
    """End the session a cookie names (if any), recording a sign-out; True when there was one."""
    row = session.scalar(select(WebSession).where(WebSession.session_hash == hash_session_id(session_id)))
    if row is None:
        return False
    user = session.get(User, row.user_id)
    session.delete(row)
    session.flush()
    if user is not None:
        audit.record(session, actor=user.username, action="sign-out", target=user.username, detail={"reason": reason})
    return True


def discard(session: Session, session_row_id: int) -> None:
    """Remove a session row without recording anything (it is being replaced by a new one)."""
    session.execute(delete(WebSession).where(WebSession.id == session_row_id))


def purge_expired(session: Session, now: datetime | None = None) -> int:
    """Delete sessions past their absolute lifetime or idle timeout; how many were deleted."""
    now = _now(now)
    result = session.execute(delete(WebSession).where(
        (WebSession.expires_at <= now) | (WebSession.last_seen_at <= now - IDLE_TIMEOUT)))
    return result.rowcount or 0
