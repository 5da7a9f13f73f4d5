"""Security headers sent on every response: the page policy lives here and only here.

Pages load nothing from other hosts and carry no inline scripts or styles, so the Content
Security Policy can forbid both; a page that breaks the rule fails in the browser (and in the
Playwright test) instead of quietly working.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def apply_security_headers(headers: MutableHeaders) -> None:
    """Set (not add) each security header, so a response never carries two policies."""
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value


class SecurityHeadersMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware) so streaming and static files pass untouched.

    Starlette's outermost ServerErrorMiddleware sends 500 responses outside every user
    middleware; `cldx.web.errors` applies the same headers to those itself.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                apply_security_headers(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)
