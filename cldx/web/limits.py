"""The request body limit (`Settings.max_upload_bytes`), answered in the shared error shape.

Not FastAPI's own `max_body_size`: when a request declares a Content-Length over the limit,
Starlette's limiter replaces whatever response the app sends with a plain-text 413, which
would bypass `cldx.web.errors`. Here a declared length over the limit is refused before the
app runs, and a streamed body that grows past it raises a 413 HTTPException from `receive`,
which FastAPI re-raises to the error handler.
"""

from __future__ import annotations

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
