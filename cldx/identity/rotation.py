"""Re-sealing: every sealed value under the current key, in small transactions while the service runs.

`reseal()` walks each place identity is kept (`SEALED_PLACES`), a batch of rows at a time,
and re-encrypts any value sealed under another key (or, after an upgrade from a version that
stored it plainly, not sealed at all). Each batch is its own short write transaction, so
submissions go on meanwhile; a value written under an old key by a process that had not yet
seen the new key file is picked up by the next pass, and passes repeat until one finds nothing.
Old keys stay in the key file (values in backups still open) until `purge_unused_keys()`
finds that no value uses them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, LargeBinary, Table, bindparam, or_, select, tuple_, update

from cldx.store import read_transaction, write_transaction
from cldx.store.models import ClientIdentity, DependantIdentity, JobFile, QuarantinedRow

from .vault import PREFIX, Vault, key_id_of

BATCH_ROWS = 2000


@dataclass(frozen=True)
class SealedPlace:
    """A table and the columns in it that hold sealed values, with its primary key."""

    table: Table
    columns: tuple[str, ...]

    @property
    def key(self) -> list[str]:
        return [c.name for c in self.table.primary_key.columns]

    @property
    def binary(self) -> bool:
        return isinstance(self.table.c[self.columns[0]].type, LargeBinary)


SEALED_PLACES: tuple[SealedPlace, ...] = (
    SealedPlace(ClientIdentity.__table__, ("family_name", "given_names", "date_of_birth")),  # type: ignore[arg-type]
    SealedPlace(DependantIdentity.__table__, ("family_name", "given_names", "date_of_birth")),  # type: ignore[arg-type]
    SealedPlace(QuarantinedRow.__table__, ("cells",)),  # type: ignore[arg-type]
    SealedPlace(JobFile.__table__, ("data",)),  # type: ignore[arg-type]
)


@dataclass
class ResealReport:
    resealed: int = 0  # values moved from an older key to the current one
    sealed_plain: int = 0  # values found in plain text (stored before sealing existed) and sealed
    passes: int = 0


def _stale(place: SealedPlace, current: str):
    """Rows holding a value not sealed under `current` (text columns filter in SQL)."""
    if place.binary:
        return None  # queued files are few and short-lived: checked in Python
    prefix = f"{PREFIX}{current}:%"
    return or_(*[place.table.c[c].is_not(None) & place.table.c[c].not_like(prefix) for c in place.columns])


def _reseal_value(vault: Vault, place: str, value, current: str, report: ResealReport):
    if value is None:
        return None
    keys = vault.keys
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
        kid = key_id_of(value)
        if kid == current:
            return value
        plain = keys.open_bytes(value, place) if kid else value
        if kid:
            report.resealed += 1
        else:
            report.sealed_plain += 1
        return keys.seal_bytes(plain, place)
    kid = key_id_of(value)
    if kid == current:
        return value
    if kid:
        report.resealed += 1
        return keys.seal(keys.open(value, place), place)
    report.sealed_plain += 1
    return keys.seal(str(value), place)


def _reseal_place(engine: Engine, vault: Vault, place: SealedPlace, report: ResealReport, progress: Callable[[str, int], None] | None) -> int:
    """One pass over a place; how many rows it rewrote."""
    current = vault.keys.current
    table, key = place.table, place.key
    stale = _stale(place, current)
    rewritten = 0
    after: tuple | None = None
    while True:
        # Keyset paging on the primary key: each batch is a short transaction of its own.
        with write_transaction(engine) as session:
            query = select(*[table.c[k] for k in key], *[table.c[c] for c in place.columns])
            if stale is not None:
                query = query.where(stale)
            if after is not None:
                query = query.where(tuple_(*[table.c[k] for k in key]) > tuple_(*after))
            rows = session.execute(query.order_by(*[table.c[k] for k in key]).limit(BATCH_ROWS)).all()
            if not rows:
                break
            after = tuple(rows[-1][: len(key)])
            changes = []
            for row in rows:
                values = row[len(key):]
                new = [_reseal_value(vault, f"{table.name}.{c}", v, current, report) for c, v in zip(place.columns, values)]
                if any(n is not v and n != v for n, v in zip(new, values)):
                    changes.append({**{f"k_{k}": row[i] for i, k in enumerate(key)}, **{f"v_{c}": n for c, n in zip(place.columns, new)}})
            if changes:
                statement = update(table).where(*[table.c[k] == bindparam(f"k_{k}") for k in key]).values(
                    {c: bindparam(f"v_{c}") for c in place.columns})
                session.connection().execute(statement, changes)
                rewritten += len(changes)
        if progress:
            progress(table.name, rewritten)
    return rewritten


def reseal(engine: Engine, vault: Vault, progress: Callable[[str, int], None] | None = None, max_passes: int = 10) -> ResealReport:
    """Bring every sealed value under the current key; repeat until a pass changes nothing."""
    report = ResealReport()
    for _ in range(max_passes):
        vault.keys.refresh()
        report.passes += 1
        if sum(_reseal_place(engine, vault, place, report, progress) for place in SEALED_PLACES) == 0:
            break
    return report


def values_by_key(engine: Engine) -> Counter:
    """How many stored values are sealed under each key id (`None`: not sealed)."""
    counts: Counter = Counter()
    with read_transaction(engine) as session:
        for place in SEALED_PLACES:
            for column in place.columns:
                col = place.table.c[column]
                for (value,) in session.execute(select(col).where(col.is_not(None))).yield_per(5000):
                    counts[key_id_of(value)] += 1
    return counts


def purge_unused_keys(engine: Engine, vault: Vault) -> list[str]:
    """Remove from the key file every non-current key that no stored value uses; the ids removed."""
    used = values_by_key(engine)
    unused = {k for k in vault.keys.key_ids if k != vault.keys.current and used.get(k, 0) == 0}
    if unused:
        vault.keys.remove_keys(unused)
    return sorted(unused)
