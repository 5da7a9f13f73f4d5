"""`/api/v1/summary`: what the database holds, in numbers (the home page shows the same).

A provider's principal gets its own provider's counts; ministry principals the whole store's
(`cldx.web.visibility.summary_for`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from cldx.web.deps import SessionDep
from cldx.web.schemas import SummaryPublic
from cldx.web.visibility import summary_for

router = APIRouter(prefix="/summary", tags=["summary"])


@router.get("", response_model=SummaryPublic, summary="What the database holds")
def read_summary(request: Request, session: SessionDep) -> SummaryPublic:
    """Numbers of providers, service lines, contracts and submissions, records held by type, and
    the schema revision: the whole store for ministry roles, a provider's own for its staff and
    systems (providers is then 1)."""
    return SummaryPublic.from_summary(summary_for(request, session))
