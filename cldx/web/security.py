"""Security headers sent on every response: the page policy lives here and only here.

Pages load nothing from other hosts and carry no inline scripts or styles, so the Content
Security Policy can forbid both; a page that breaks the rule fails in the browser (and in the
Playwright test) instead of quietly working. No page may be framed (`frame-ancestors 'none'`,
and `X-Frame-Options: DENY` for browsers that predate it), none shares a browsing context
with a window another site opened (`Cross-Origin-Opener-Policy`), and none may use the
camera, microphone, location or payment (`Permissions-Policy`).

`Strict-Transport-Security` only on a response to a request that came over TLS: a browser
ignores it over plain HTTP anyway, and sending it there would only mislead. Behind a
reverse proxy that ends TLS, the request reaches cldx as http:// unless the proxy is listed in
`CLDX_TRUSTED_PROXIES`; then its `X-Forwarded-Proto` sets the scheme (uvicorn's
`ProxyHeadersMiddleware`, installed by `create_app`), and with it HSTS.
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

# Features a page could ask the browser for; cldx uses none of them.
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), browsing-topics=()"
# A year, the subdomains too (cldx's host has none of its own that serve plain HTTP); not
# `preload`, which is a commitment for the whole domain that only its owner can make.
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": PERMISSIONS_POLICY,
}


def apply_security_headers(headers: MutableHeaders, scope: Scope) -> None:
    """Set (not add) each security header, so a response never carries two policies; HSTS over TLS only."""
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value
    if scope.get("scheme") in ("https", "wss"):
        headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY


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
                apply_security_headers(MutableHeaders(scope=message), scope)
            await send(message)

        await self.app(scope, receive, send_with_headers)
