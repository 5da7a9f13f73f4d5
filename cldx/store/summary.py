"""What the database holds, in numbers: the home page and `/api/v1/summary` show this."""

from __future__ import annotations

from dataclasses import dataclass

from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import RECORD_MODELS, Contract, Provider, ServiceLine, Submission


@dataclass(frozen=True)
class DatabaseSummary:
    providers: int
    service_lines: int
    contracts: int
    submissions: int
    # Record type -> records currently held (withdrawn ones excluded), in the standard's order.
    records: dict[str, int]
    schema_revision: str | None


def database_summary(session: Session) -> DatabaseSummary:
    def count(model, *where) -> int:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

    return DatabaseSummary(
        providers=count(Provider),
        service_lines=count(ServiceLine),
        contracts=count(Contract),
        submissions=count(Submission),
        records={name: count(model, model.withdrawn_at.is_(None)) for name, model in RECORD_MODELS.items()},
        schema_revision=MigrationContext.configure(session.connection()).get_current_revision(),
    )
