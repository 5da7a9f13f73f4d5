"""Response shapes of the JSON API (`XPublic`), kept apart from the store's models.

The error body is here too, so OpenAPI documents the shape `cldx.web.errors` sends.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from cldx.store.summary import DatabaseSummary


class HealthPublic(BaseModel):
    status: Literal["ok", "error"]
    database: Literal["ok", "unavailable"]


class SummaryPublic(BaseModel):
    """What the database holds: registry sizes, submissions, and records held by type."""

    providers: int
    service_lines: int
    contracts: int
    submissions: int
    records: dict[str, int] = Field(
        description="Records currently held (withdrawn ones excluded) by record type, in the standard's order."
    )
    schema_revision: str | None = Field(description="Alembic revision the database is at; null before `cldx init`.")

    @classmethod
    def from_summary(cls, summary: DatabaseSummary) -> SummaryPublic:
        return cls(
            providers=summary.providers,
            service_lines=summary.service_lines,
            contracts=summary.contracts,
            submissions=summary.submissions,
            records=dict(summary.records),
            schema_revision=summary.schema_revision,
        )


class ErrorDetail(BaseModel):
    location: list[str | int] = Field(default_factory=list, description='Where, e.g. ["query", "limit"].')
    message: str
    type: str | None = Field(None, description="Machine-readable error type, e.g. int_parsing.")


class ErrorPublic(BaseModel):
    """Every error the API sends has this shape (see `cldx.web.errors`)."""

    ok: Literal[False] = False
    error: str
    errors: list[ErrorDetail | dict[str, Any]] = Field(default_factory=list)
    status: int
