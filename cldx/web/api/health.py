"""`/health`: is the app up and does the database answer? For load balancers and `make demo`.

Outside `/api/v1` on purpose: probes expect a fixed, unversioned path. Open to anyone (a
probe has no account); it says nothing but "ok" or "unavailable".
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from cldx.web.auth import public
from cldx.web.deps import SessionDep
from cldx.web.schemas import HealthPublic

logger = logging.getLogger("cldx.web")

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthPublic,
    responses={503: {"model": HealthPublic, "description": "The database does not answer"}},
    summary="Health check",
)
@public
def health(session: SessionDep) -> HealthPublic | JSONResponse:
    """Runs `SELECT 1`: 200 when the database answers, 503 when it does not."""
    try:
        session.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        # The reason goes to the log only: it can name hosts and users.
        logger.warning("Health check: database unavailable (%s)", type(exc).__name__, exc_info=exc)
        body = HealthPublic(status="error", database="unavailable")
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthPublic(status="ok", database="ok")
