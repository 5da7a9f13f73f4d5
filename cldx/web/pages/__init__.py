"""Server-rendered pages: one module per page (its routes and htmx fragments), joined here.

Pages are not part of the API, so they stay out of the OpenAPI document. Fragments live
under `/fragments/` and render a partial template (`templates/_<name>.html`) that the full
page includes, so the first load and an htmx refresh show the same markup.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import admin, home, privacy, reports, research, sign_in, submissions, templates_download

pages_router = APIRouter(include_in_schema=False)
pages_router.include_router(sign_in.router)
pages_router.include_router(home.router)
pages_router.include_router(submissions.router)
pages_router.include_router(templates_download.router)
pages_router.include_router(privacy.router)
pages_router.include_router(reports.router)
pages_router.include_router(research.router)
pages_router.include_router(admin.router)
