"""The home page, which depends on the role, with an htmx Refresh that reloads just the counts.

A provider's staff see their own organisation: its submissions, contracts and records held, and
its latest submissions. Ministry roles see what the whole store holds (registry sizes,
submissions, records by type: counts only, no client data) and what their role is for. The
whole-store counts are never shown to a provider: they would say how much others sent.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from cldx.access.roles import ROLES, SUBMIT
from cldx.standard import RECORD_TYPES
from cldx.store.models import Provider, Submission
from cldx.web.auth import principal_of
from cldx.web.deps import SessionDep
from cldx.web.templating import render
from cldx.web.visibility import own_provider, summary_for

router = APIRouter()

LATEST_SUBMISSIONS = 5

# What each ministry role is for, in a line (provider roles get their organisation's page).
ROLE_NOTES: dict[str, str] = {
    "analyst": "Analysts see disclosure-controlled tables across providers: reach, outcomes, provider and cohort comparisons, coverage and compliance (Reports).",
    "research-requester": "Research requesters may ask for a de-identified research (IDI) extract.",
    "privacy-officer": "Privacy officers open identifying values for Privacy Act work, with a stated purpose (cldx privacy); every opening is audited.",
    "administrator": "Administrators manage users, roles, API tokens and the registry (cldx users, cldx tokens, cldx registry); they see no client data.",
}


def summary_context(request: Request, session: Session) -> dict[str, Any]:
    principal = principal_of(request)
    provider_id = own_provider(principal)
    summary = summary_for(request, session)
    record_rows = [
        (name, RECORD_TYPES[name].title if name in RECORD_TYPES else name, count)
        for name, count in summary.records.items()
    ]
    return {
        "summary": summary,
        "record_rows": record_rows,
        "counted_at": datetime.now(timezone.utc),
        "provider": session.get(Provider, provider_id) if provider_id is not None else None,
    }


def home_context(request: Request, session: Session) -> dict[str, Any]:
    principal = principal_of(request)
    context = summary_context(request, session)
    provider = context["provider"]
    latest = []
    if provider is not None:
        latest = list(session.scalars(select(Submission).where(Submission.provider_id == provider.id)
                                      .order_by(Submission.received_at.desc(), Submission.id.desc()).limit(LATEST_SUBMISSIONS)))
    roles = [role for role in ROLES if principal.has(role)]
    return {
        **context,
        "latest": latest,
        "may_submit": provider is not None and principal.can(SUBMIT, provider.id),
        "roles": roles,
        "role_notes": [ROLE_NOTES[role] for role in roles if role in ROLE_NOTES],
    }


@router.get("/", response_class=HTMLResponse, name="home")
def home(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "home.html", home_context(request, session))


@router.get("/fragments/summary", response_class=HTMLResponse, name="summary_fragment")
def summary_fragment(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "_summary.html", summary_context(request, session))
