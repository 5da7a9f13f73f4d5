"""The audit trail: append-only entries, each chained to the one before by SHA-256.

Owns what an audit entry says, how its hash is computed, how entries are appended without two
writers chaining to the same entry, and how the chain is checked. May import `cldx.store` only.

An entry's hash covers every field but `id` and `hash` itself, including `prev_hash` (the hash
of the entry before, by id; `GENESIS` for the first). Changing, inserting or deleting an entry
therefore breaks either the entry's own hash or the link from the entry after it, and `verify`
names the entries. What the chain alone cannot show: that entries were removed from the *end*
(the remaining chain is still whole), or that someone with write access rewrote every hash from
a change onward. `verify` returns the head hash so it can be kept elsewhere and given back later
(`expect_head`): every entry up to the kept head must still be there, unchanged.

The database forbids UPDATE and DELETE on `audit_event` (migration 0007's triggers; on
PostgreSQL also the application role's privileges, migration 0006); the chain is what still
shows tampering by someone able to get round those.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cldx.store.models import AuditEvent

# The prev_hash of the first entry.
GENESIS = "0" * 64

# PostgreSQL advisory lock key that serialises appends to the chain: the first 8 bytes of
# SHA-256("cldx.access.audit chain") as a signed 64-bit integer. Far from the small provider ids
# that `write_transaction(lock=...)` uses, so the two never collide.
CHAIN_LOCK = 8202816117094086311

# Every action the trail knows, with what an entry of it records.
ACTIONS: dict[str, str] = {
    "sign-in": "A user signed in (target: the username; detail: how, e.g. password + second factor).",
    "sign-in-failed": "A sign-in was refused (target: the username tried; detail: why).",
    "sign-out": "A user signed out or their session was ended.",
    "submission": "A provider's submission was stored (target: submission id; detail: status, counts, files).",
    "identity-read": "Identifying values (names, dates of birth) were decrypted for someone; purpose says why.",
    "export": "A research extract or report file left the system (target: the file; purpose: what for).",
    "role-change": "A user's roles were granted or withdrawn (target: the user; detail: before and after).",
    "token-issued": "An API token was issued (target: token name and prefix, never the token).",
    "token-revoked": "An API token was revoked (target: token name and prefix).",
    "user-added": "A user account was created (target: the username; detail: roles).",
    "user-disabled": "A user account was disabled (target: the username).",
    "password-reset": "A user's password was reset (target: the username).",
    "second-factor-reset": "A user's second factor was reset (target: the username).",
    "key-rotation": "A new data key was made current and stored values re-sealed (detail: old and new key ids, counts).",
    "key-purge": "Retired data keys no stored value uses were removed (detail: the key ids removed).",
    "privacy-request-opened": "A Privacy Act request was opened (target: the request; purpose: what it asks).",
    "privacy-request-step": "A step was taken on a Privacy Act request (target: the request; detail: the step).",
    "research-extract-requested": "A research (IDI) extract was requested (target: the request; purpose: the research purpose).",
    "research-extract-decided": "A research extract request was approved or refused (target: the request; detail: decision, note).",
    "privacy-request-closed": "A Privacy Act request was closed (target: the request; detail: the outcome).",
    "registry-change": "A provider, service line or contract was added or changed (target: which one; detail: the values changed).",
    "backup": "A backup of the store was written (target: its folder; detail: the dump's SHA-256, tables, rows, whether keys were copied).",
    "restore": "A backup was restored into this store (target: its folder; detail: the backup's source and time, the dump's SHA-256, checks that differed).",
    "retention-purge": "Records older than the retention period were purged (detail: run, step, cutoff, period, rows per table; never who).",
}

# Column widths, checked here so an over-long value fails the same way on SQLite (which would
# store it) as on PostgreSQL (which refuses it).
_WIDTHS = {"actor": 100, "target": 255}


def canonical_detail(detail: dict[str, Any] | None) -> str:
    """The JSON text stored in `detail`: keys sorted, no spaces, so equal details are equal text."""
    return json.dumps(detail or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(*, at: datetime, actor: str, action: str, target: str, provider_id: int | None,
               purpose: str, detail: str, prev_hash: str) -> str:
    """SHA-256 (hex) of an entry's canonical form: every field but id and hash, as sorted-key JSON.

    Times are written in UTC with microseconds (what both backends keep), `provider_id` as a
    number or null, and `detail` as the stored text itself, so any change to it shows.
    """
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    canonical = json.dumps(
        {
            "at": at.astimezone(timezone.utc).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "target": target,
            "provider_id": provider_id,
            "purpose": purpose,
            "detail": detail,
            "prev_hash": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def hash_of(entry: Any) -> str:
    """The hash an entry (an `AuditEvent` or a row with its columns) should carry."""
    return entry_hash(at=entry.at, actor=entry.actor, action=entry.action, target=entry.target, provider_id=entry.provider_id,
                      purpose=entry.purpose, detail=entry.detail, prev_hash=entry.prev_hash)


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str = "",
    provider_id: int | None = None,
    purpose: str = "",
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one entry to the trail inside the caller's transaction; it stands or falls with it.

    Call it inside a write transaction (`cldx.store.write_transaction`) and as late in it as
    you can. On SQLite that transaction already holds the database's one write lock (BEGIN
    IMMEDIATE), so no other writer can append between reading the last hash and adding the
    entry. On PostgreSQL this takes a transaction-scoped advisory lock (`CHAIN_LOCK`) held
    until commit: appends from all transactions queue there, which is why it should come last,
    with no other advisory lock taken after it.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; known: {', '.join(ACTIONS)}")
    if not actor:
        raise ValueError("an audit entry needs an actor (a username, a token name, or 'system')")
    for name, value in (("actor", actor), ("target", target)):
        if len(value) > _WIDTHS[name]:
            raise ValueError(f"audit {name} longer than {_WIDTHS[name]} characters: {value[:40]!r}...")
    at = at or datetime.now(timezone.utc)
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    at = at.astimezone(timezone.utc)

    if session.get_bind().dialect.name == "postgresql":
        # Wait for any other transaction appending to commit, so the last entry read below is
        # really the last. Under REPEATABLE READ or SERIALIZABLE the snapshot may predate that
        # commit and two entries would chain to the same one: refuse rather than fork the chain.
        isolation = session.execute(
            text("SELECT current_setting('transaction_isolation') FROM (SELECT pg_advisory_xact_lock(:key)) AS locked"),
            {"key": CHAIN_LOCK},
        ).scalar_one()
        if isolation != "read committed":
            raise RuntimeError(f"audit entries must be recorded in a READ COMMITTED transaction, not {isolation}")
    prev_hash = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or GENESIS

    stored_detail = canonical_detail(detail)
    event = AuditEvent(at=at, actor=actor, action=action, target=target, provider_id=provider_id, purpose=purpose,
                       detail=stored_detail, prev_hash=prev_hash)
    event.hash = hash_of(event)
    session.add(event)
    session.flush()  # the next record() in this transaction must see this entry as the last
    return event


# --- Checking the chain ---------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One break in the chain: where it shows (`entry_id`), what kind, and what it means.

    kind: `edited` (content does not match its hash), `deleted` (an entry's predecessor is
    missing), `inserted` (entries sit between an entry and the one it chains to), `reordered`,
    `broken-link` (an entry's predecessor is not the entry before it and nothing explains it),
    `head-missing` (the expected head hash is not in the chain). `ids` are the entries involved.
    """

    entry_id: int | None
    kind: str
    message: str
    ids: tuple[int, ...] = ()


@dataclass
class VerifyResult:
    """The outcome of `verify`: problems in id order; head hash and count to keep elsewhere."""

    count: int = 0
    head_id: int | None = None
    head_hash: str = GENESIS
    problems: list[Problem] = field(default_factory=list)
    expected_head_id: int | None = None  # the entry whose hash was given as `expect_head`, if found

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Link:
    """A link to check after the walk: entry `entry_id` claims `prev_hash`; `before_id` precedes it."""

    entry_id: int
    prev_hash: str
    before_id: int | None


def verify(session: Session, *, expect_head: str | None = None, batch_size: int = 2000) -> VerifyResult:
    """Walk the trail in id order, recompute every hash and check every link.

    Gaps in ids alone are not a problem (a PostgreSQL sequence skips the ids of rolled-back
    transactions); a broken link is, and the ids then help say what happened.
    """
    result = VerifyResult()
    broken_links: list[_Link] = []
    expected_prev, before_id = GENESIS, None
    table = AuditEvent.__table__
    rows = session.execute(select(table).order_by(table.c.id).execution_options(yield_per=batch_size))
    for row in rows:
        result.count += 1
        if hash_of(row) != row.hash:
            result.problems.append(Problem(row.id, "edited", f"entry {row.id} ({row.action} by {row.actor}) does not match its "
                                           "hash: it was changed after it was written", (row.id,)))
        if row.prev_hash != expected_prev:
            broken_links.append(_Link(row.id, row.prev_hash, before_id))
        if expect_head is not None and row.hash == expect_head:
            result.expected_head_id = row.id
        expected_prev, before_id = row.hash, row.id
    result.head_id, result.head_hash = before_id, expected_prev
    rows.close()

    # Explaining a broken link needs look-ups; done after the walk so they never interleave
    # with the streaming cursor.
    result.problems.extend(_explain(session, link) for link in broken_links)
    if expect_head is not None and result.expected_head_id is None:
        result.problems.append(Problem(None, "head-missing", f"no entry has the expected head hash {expect_head}: the entry kept as "
                                       "the head, or entries before it, were deleted or rewritten"))
    result.problems.sort(key=lambda p: (p.entry_id is None, p.entry_id or 0))
    return result


def _explain(session: Session, link: _Link) -> Problem:
    """Say what a broken link means: which entries were deleted, inserted or moved."""
    entry_id, before_id = link.entry_id, link.before_id
    if link.prev_hash == GENESIS:
        # It claims to be the first entry, yet entries come before it: those were inserted.
        inserted = _ids_between(session, None, entry_id)
        return Problem(entry_id, "inserted", f"entry {entry_id} is the start of the chain, but entries {_show(inserted)} come "
                       "before it: they were inserted", tuple(inserted))
    chained_to = session.scalar(select(AuditEvent.id).where(AuditEvent.hash == link.prev_hash))
    if chained_to is None:
        if before_id is None:
            return Problem(entry_id, "deleted", f"entry {entry_id} is the first entry but chains to an earlier one: the entries "
                           f"before it (ids below {entry_id}) were deleted", (entry_id,))
        missing = entry_id - before_id - 1
        gap = "" if missing < 1 else f"; id {before_id + 1} is absent" if missing == 1 else f"; ids {before_id + 1}..{entry_id - 1} are absent"
        return Problem(entry_id, "deleted", f"entry {entry_id} chains to an entry that is no longer there: entries between "
                       f"{before_id} and {entry_id} were deleted, or entry {before_id} was changed and re-hashed{gap}",
                       (before_id, entry_id))
    if before_id is not None and chained_to < before_id:
        inserted = _ids_between(session, chained_to, entry_id)
        return Problem(inserted[0] if inserted else entry_id, "inserted", f"entry {entry_id} chains to entry {chained_to}, so "
                       f"entries {_show(inserted)} between them were inserted", tuple(inserted))
    return Problem(entry_id, "reordered", f"entry {entry_id} chains to entry {chained_to}, which comes after it: entries were "
                   "reordered", (entry_id, chained_to))


def _ids_between(session: Session, after: int | None, before: int, limit: int = 20) -> list[int]:
    query = select(AuditEvent.id).where(AuditEvent.id < before).order_by(AuditEvent.id).limit(limit)
    if after is not None:
        query = query.where(AuditEvent.id > after)
    return list(session.scalars(query))


def _show(ids: list[int]) -> str:
    return ", ".join(map(str, ids)) + (" ..." if len(ids) >= 20 else "")


# --- Reading the trail -----------------------------------------------------------------


def list_events(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    provider_id: int | None = None,
    limit: int | None = 100,
) -> list[AuditEvent]:
    """Entries matching every filter given, newest first; `since` is inclusive, `until` exclusive."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    if provider_id is not None:
        query = query.where(AuditEvent.provider_id == provider_id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))
