"""Store functions for the registry: providers, service lines and contracts, upserted by key."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cldx.standard import SEED_SERVICE_LINES

from .models import Base, Contract, Provider, ServiceLine

Change = Literal["new", "changed", "unchanged"]


def upsert_by_key(session: Session, *, model: type[Base], key: str, values: dict[str, Any]) -> Change:
    """Insert the row, or update it when a value differs; say which happened.

    Comparing before writing is what makes importing the same file twice change nothing
    (not even `updated_at`).
    """
    existing = session.scalar(select(model).where(getattr(model, key) == values[key]))
    if existing is None:
        session.add(model(**values))
        session.flush()
        return "new"
    differing = {name: value for name, value in values.items() if getattr(existing, name) != value}
    if not differing:
        return "unchanged"
    for name, value in differing.items():
        setattr(existing, name, value)
    session.flush()
    return "changed"


def seed_service_lines(session: Session) -> int:
    """Add the brief's six service lines where missing (never overwrite the registry's own edits)."""
    known = set(session.scalars(select(ServiceLine.code)))
    added = 0
    for line in SEED_SERVICE_LINES:
        if line.code not in known:
            session.add(
                ServiceLine(
                    code=line.code,
                    name=line.name,
                    description=line.description,
                    min_client_age=line.min_client_age,
                    max_client_age=line.max_client_age,
                )
            )
            added += 1
    session.flush()
    return added


def ids_by_code(session: Session, model: type[Provider] | type[ServiceLine]) -> dict[str, int]:
    return {code: id_ for code, id_ in session.execute(select(model.code, model.id))}


def service_lines(session: Session) -> list[ServiceLine]:
    return list(session.scalars(select(ServiceLine).order_by(ServiceLine.code)))


__all__ = ["Change", "Contract", "ids_by_code", "seed_service_lines", "service_lines", "upsert_by_key"]
