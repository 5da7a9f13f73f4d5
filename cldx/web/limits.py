"""Limits: the request body's size (`Settings.max_upload_bytes`), answered in the shared error
shape, and how many submissions one process stores at once (`in_submission_slot`).

Not FastAPI's own `max_body_size`: when a request declares a Content-Length over the limit,
Starlette's limiter replaces whatever response the app sends with a plain-text 413, which
would bypass `cldx.web.errors`. Here a declared length over the limit is refused before the
app runs, and a streamed body that grows past it raises a 413 HTTPException from `receive`,
which FastAPI re-raises to the error handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from fastapi import HTTPException, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response


def too_large_message(limit: int) -> str:
    return f"The request is larger than the {limit:,} bytes this server accepts"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            response = error_response(Request(scope), status=413, message=too_large_message(limit))
            await response(scope, receive, send)
            return

        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(status_code=413, detail=too_large_message(limit))
            return message

        await self.app(scope, receive_within_limit, send)


T = TypeVar("T")


async def in_submission_slot(request: Request, work: Callable[[], T]) -> T:
    """Run `work` (a `submit()`) in a worker thread, at most `Settings.submissions_per_process` at once
    in this process; the others wait their turn, first come first served.

    Storing a submission is CPU work in Python and Polars: several at once in one process only took
    turns at the interpreter's lock, each switch costing CPU (measured: a 1,000-record batch took 65
    ms of CPU with 20 in flight over 4 processes, 49 ms with one at a time per process, 47 ms alone).
    More at once needs more processes (`uvicorn --workers`), which the machine's cores serve in parallel.
    """
    state = request.app.state
    if getattr(state, "submission_slots", None) is None:  # made in the event loop, as anyio requires
        state.submission_slots = anyio.CapacityLimiter(state.settings.submissions_per_process)
    return await anyio.to_thread.run_sync(work, limiter=state.submission_slots)
