"""The administrator's pages under `/admin`: the registry, users and roles, API tokens.

- `/admin`: what there is to manage, with counts, for a principal holding any of
  MANAGE_REGISTRY, MANAGE_USERS or MANAGE_TOKENS (each section is shown to whoever may open it);
- `/admin/providers`, `/admin/service-lines`, `/admin/contracts` (`registry`): MANAGE_REGISTRY;
- `/admin/users` (`users`): MANAGE_USERS;
- `/admin/tokens` (`tokens`): MANAGE_TOKENS.

A principal without the capability gets 403 before anything is read (the check is a route
dependency, so it also comes before a form is validated). These pages read only the registry,
accounts and tokens, never a provider's submissions or records, so an administrator sees no
client data here (the access matrix and tests/web/test_purpose.py check that no client value
reaches an administrator on any route).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from cldx.access.roles import MANAGE_REGISTRY, MANAGE_TOKENS, MANAGE_USERS, VIEW_AUDIT
from cldx.store.models import ApiToken, Contract, Provider, ServiceLine, User
from cldx.web.auth import principal_of
from cldx.web.deps import SessionDep
from cldx.web.templating import render

from . import registry, tokens, users
from .forms import needs_any

NO_ADMIN = "Your role does not administer cldx (the registry, users or API tokens)."

router = APIRouter(prefix="/admin")


@router.get("", response_class=HTMLResponse, name="admin_page", dependencies=[needs_any(MANAGE_REGISTRY, MANAGE_USERS, MANAGE_TOKENS,
                                                                                         message=NO_ADMIN)])
def admin_page(request: Request, session: SessionDep) -> HTMLResponse:
    principal = principal_of(request)

    def count(query) -> int:
        return session.scalar(select(func.count()).select_from(query.subquery())) or 0

    sections = []
    if principal.can(MANAGE_REGISTRY):
        sections += [
            ("Providers", "/admin/providers", f"{count(select(Provider.id)):,} in the registry",
             "Add a provider or change its name, region or whether it sends names."),
            ("Service lines", "/admin/service-lines", f"{count(select(ServiceLine.id)):,} in the registry",
             "The kinds of service providers' engagements name."),
            ("Contracts", "/admin/contracts", f"{count(select(Contract.id)):,} in the registry",
             "Periods, funding, the data clause and the day data is due."),
        ]
    if principal.can(MANAGE_USERS):
        sections.append(("Users", "/admin/users", f"{count(select(User.id).where(User.is_active.is_(True))):,} active accounts",
                         "Add people, grant and withdraw roles, disable accounts, reset passwords and second factors."))
    if principal.can(MANAGE_TOKENS):
        sections.append(("API tokens", "/admin/tokens", f"{count(select(ApiToken.id).where(ApiToken.revoked_at.is_(None))):,} not revoked",
                         "Issue tokens for providers' case systems and revoke them."))
    return render(request, "admin_index.html", {"sections": sections, "may_audit": principal.can(VIEW_AUDIT)})


router.include_router(registry.router)
router.include_router(users.router)
router.include_router(tokens.router)
