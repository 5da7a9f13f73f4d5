"""`/api/v1/summary`: what the database holds, in numbers (the home page shows the same)."""

from __future__ import annotations

from fastapi import APIRouter

from cldx.store.summary import database_summary
from cldx.web.deps import SessionDep
from cldx.web.schemas import SummaryPublic

router = APIRouter(prefix="/summary", tags=["summary"])


@router.get("", response_model=SummaryPublic, summary="What the database holds")
def read_summary(session: SessionDep) -> SummaryPublic:
    """Numbers of providers, service lines, contracts and submissions, records held by type, and
    the schema revision."""
    return SummaryPublic.from_summary(database_summary(session))
