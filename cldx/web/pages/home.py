"""The home page: what the database holds, with an htmx Refresh that reloads just the counts."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from cldx.standard import RECORD_TYPES
from cldx.store.summary import database_summary
from cldx.web.deps import SessionDep
from cldx.web.templating import render

router = APIRouter()


def summary_context(session: Session) -> dict[str, Any]:
    summary = database_summary(session)
    record_rows = [
        (name, RECORD_TYPES[name].title if name in RECORD_TYPES else name, count)
        for name, count in summary.records.items()
    ]
    return {"summary": summary, "record_rows": record_rows, "counted_at": datetime.now(timezone.utc)}


@router.get("/", response_class=HTMLResponse, name="home")
def home(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "home.html", summary_context(session))


@router.get("/fragments/summary", response_class=HTMLResponse, name="summary_fragment")
def summary_fragment(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "_summary.html", summary_context(session))
