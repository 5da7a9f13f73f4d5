"""What a request may see: the one place pages and API routes ask which providers, submissions
and counts the signed-in principal may have.

Provider roles (provider-submitter, provider-viewer, a system token) see their own provider's
submissions, findings and rejected rows, exactly; submitters (and system tokens) send for that
provider only. Ministry roles see no provider's submissions through these pages for now (403):
the analyst's disclosure-controlled tables and the privacy officer's audited Privacy Act work
are their own pages, and an administrator sees no client data at all. Asking for a submission
of another provider gets the same 404 as asking for one that does not exist (DESIGN.md,
"Interfaces"); a role that may not use a page at all gets 403 whatever the id.

Shared by `cldx.web.pages` and `cldx.web.api` (which the pages import, so it cannot live in
either without an import cycle).
"""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from fastapi import HTTPException, Request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cldx.access.roles import SUBMIT, VIEW_PROVIDER, Principal
from cldx.store.models import RECORD_MODELS, Contract, Provider, ServiceLine, Submission
from cldx.store.summary import DatabaseSummary, database_summary

from .auth import principal_of, providers_with

NO_SUBMIT = "Your role does not send records for a provider."
NO_VIEW = "Your role does not see providers' submissions."
NOT_FOUND = "There is no submission with that id, or you may not see it."


def visible_providers(request: Request, session: Session) -> list[Provider]:
    """The providers this request may send records for; 403 when it may send for none."""
    ids = providers_with(principal_of(request), SUBMIT)
    if not ids:
        raise HTTPException(403, detail=NO_SUBMIT)
    return list(session.scalars(select(Provider).where(Provider.id.in_(ids)).order_by(Provider.code)))


def visible_submissions(request: Request) -> Select[tuple[Submission]]:
    """The submissions this request may list; 403 when it may see no provider's."""
    ids = providers_with(principal_of(request), VIEW_PROVIDER)
    if not ids:
        raise HTTPException(403, detail=NO_VIEW)
    return select(Submission).where(Submission.provider_id.in_(ids))


def submission_for(request: Request, session: Session, submission_id: str) -> Submission:
    """The submission the request names, or 404 (also for one the request may not see)."""
    visible = visible_submissions(request)
    # PostgreSQL cannot even compare a NUL, so such an id is answered here.
    submission = None if "\x00" in submission_id else session.scalar(visible.where(Submission.id == submission_id))
    if submission is None:
        raise HTTPException(404, detail=NOT_FOUND)
    return submission


def own_provider(principal: Principal) -> int | None:
    """The provider whose own data the principal sees (None for ministry principals)."""
    ids = providers_with(principal, VIEW_PROVIDER)
    return next(iter(ids)) if len(ids) == 1 else None


def provider_summary(session: Session, provider_id: int) -> DatabaseSummary:
    """What the store holds for one provider, in the shape of the whole-store summary.

    The registry's service lines are the same for everyone; contracts, submissions and records
    are the provider's own.
    """
    def count(model, *where) -> int:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

    return DatabaseSummary(
        providers=1,
        service_lines=count(ServiceLine),
        contracts=count(Contract, Contract.provider_id == provider_id),
        submissions=count(Submission, Submission.provider_id == provider_id),
        records={name: count(model, model.provider_id == provider_id, model.withdrawn_at.is_(None))
                 for name, model in RECORD_MODELS.items()},
        schema_revision=MigrationContext.configure(session.connection()).get_current_revision(),
    )


def summary_for(request: Request, session: Session) -> DatabaseSummary:
    """The whole store's counts for ministry principals; a provider's own for provider principals.

    The whole-store counts are never shown to a provider: they say how much other providers sent.
    """
    provider_id = own_provider(principal_of(request))
    return provider_summary(session, provider_id) if provider_id is not None else database_summary(session)
