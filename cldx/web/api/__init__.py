"""The JSON API under `/api/v1`: one `APIRouter` per resource, joined here.

Every route documents the shared error body (`ErrorPublic`) for its error statuses, in
place of FastAPI's own validation-error schema, because `cldx.web.errors` sends that shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cldx.web.schemas import ErrorPublic

from . import reports, research, submissions, summary

API_PREFIX = "/api/v1"

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "Not signed in: send an API token (Authorization: Bearer <token>)"},
    403: {"model": ErrorPublic, "description": "Your role may not do this"},
    404: {"model": ErrorPublic, "description": "Not found"},
    413: {"model": ErrorPublic, "description": "The body is larger than the server accepts (or a JSON batch holds too many records)"},
    422: {"model": ErrorPublic, "description": "The request is not valid"},
    429: {"model": ErrorPublic, "description": "Too many invalid API tokens from this address: wait the Retry-After seconds"},
    500: {"model": ErrorPublic, "description": "Unexpected error (logged; no details sent)"},
}

api_router = APIRouter(prefix=API_PREFIX, responses=ERROR_RESPONSES)
api_router.include_router(summary.router)
api_router.include_router(submissions.router)
api_router.include_router(reports.router)
api_router.include_router(research.router)
