"""Jinja2 set-up for the pages: one environment per app, the globals every page's layout needs.

Every page extends `templates/base.html`; this module gives it the product name, the cldx and
data standard versions for the footer, the navigation the signed-in principal may use, and
`static_url()` so templates never spell out a host (nothing is ever loaded from another one).
`render` adds `principal` (None when nobody is signed in) and `csrf_token` (the session's, for
forms and the `<meta name="csrf-token">` scripts read) to every page's context.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

import cldx
from cldx.access.roles import (
    DECIDE_RESEARCH_EXTRACT, MANAGE_REGISTRY, MANAGE_TOKENS, MANAGE_USERS, PROVIDER_CAPABILITIES, READ_IDENTITY, REQUEST_RESEARCH_EXTRACT,
    SUBMIT, VIEW_ANALYSIS, VIEW_AUDIT, VIEW_PROVIDER, Principal,
)
from cldx.standard import STANDARD_NAME, STANDARD_VERSION

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

PRODUCT_NAME = "Client-Level Data eXchange"

# (label, path, capability needed (or any of several) or None) in the order the header shows them;
# later pages add themselves here. A link shows only to a principal who may open the page: a
# provider capability for one of the principal's providers, a ministry capability held at all.
NAVIGATION: tuple[tuple[str, str, str | tuple[str, ...] | None], ...] = (
    ("Home", "/", None),
    ("Submissions", "/submissions", VIEW_PROVIDER),
    ("Upload", "/submissions/new", SUBMIT),
    ("Reports", "/reports", (VIEW_ANALYSIS, VIEW_PROVIDER)),
    ("Research extracts", "/research", (REQUEST_RESEARCH_EXTRACT, DECIDE_RESEARCH_EXTRACT)),
    ("Privacy Act requests", "/privacy/requests", READ_IDENTITY),
    ("Audit trail", "/privacy/audit", VIEW_AUDIT),
    ("Administration", "/admin", (MANAGE_USERS, MANAGE_TOKENS, MANAGE_REGISTRY)),
)


def _may(principal: Principal, capability: str | tuple[str, ...] | None) -> bool:
    if capability is None:
        return True
    if isinstance(capability, tuple):
        return any(_may(principal, c) for c in capability)
    if capability in PROVIDER_CAPABILITIES:
        return any(principal.can(capability, p) for p in principal.provider_ids)
    return principal.can(capability)


def navigation_for(principal: Principal | None) -> list[tuple[str, str]]:
    """The (label, path) links a principal may follow; none before sign-in."""
    if principal is None:
        return []
    return [(label, path) for label, path, capability in NAVIGATION if _may(principal, capability)]


@jinja2.pass_context
def app_url(context: dict[str, Any], path: str) -> str:
    """Root-relative URL of a path in this app, honouring a proxy's root_path.

    Root-relative rather than `url_for` (absolute): an absolute URL built from the Host
    header names a host, and behind a TLS proxy it would say http://.
    """
    request: Request = context["request"]
    root = request.scope.get("root_path", "").rstrip("/")
    return f"{root}/{path.lstrip('/')}"


@jinja2.pass_context
def static_url(context: dict[str, Any], path: str) -> str:
    """Root-relative URL of a file in `static/` (the tests check each one exists)."""
    return app_url(context, f"/static/{path.lstrip('/')}")


def make_templates(*, zone: ZoneInfo) -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,  # a misspelt variable is a bug, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        product_name=PRODUCT_NAME,
        cldx_version=cldx.__version__,
        standard_name=STANDARD_NAME,
        standard_version=STANDARD_VERSION,
        app_url=app_url,
        static_url=static_url,
    )
    env.filters["number"] = lambda value: f"{value:,}"
    env.filters["local_time"] = lambda value: _local_time(value, zone)
    return Jinja2Templates(env=env)


def _local_time(value: datetime, zone: ZoneInfo) -> str:
    """Times are stored in UTC and shown in the configured zone (Pacific/Auckland by default)."""
    return value.astimezone(zone).strftime("%-d %b %Y, %H:%M:%S %Z")


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render `templates/<name>` with the app's environment, and who is signed in."""
    templates: Jinja2Templates = request.app.state.templates
    auth = getattr(request.state, "auth", None)
    principal = auth.principal if auth is not None else None
    context = {
        "principal": principal,
        "csrf_token": auth.csrf_token if auth is not None else None,
        "navigation": navigation_for(principal),
        "charts": False,  # a page with charts says so, and only it loads the chart scripts
        **(context or {}),
    }
    return templates.TemplateResponse(request, name, context, status_code=status_code, headers=headers)
