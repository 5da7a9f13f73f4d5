"""`create_app(settings)`: the one FastAPI app serving the JSON API, the pages and the static files.

Built from a `Settings` object (never the environment directly) so the CLI, tests and any
server build the same app. The engine is made once here and kept on `app.state`; requests
get sessions from it through `cldx.web.deps.SessionDep`. Every route depends on
`cldx.web.auth.check_csrf` (and through it `authenticate`): signed in unless marked public.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import cldx
from cldx.config import Settings
from cldx.ingest.queue import Worker
from cldx.identity.vault import open_store
from cldx.store.db import make_session_factory

from .api import api_router, health
from .auth import check_csrf
from .errors import install_error_handlers
from .limits import BodyLimitMiddleware
from .logs import install_log_redaction
from .pages import pages_router
from .security import SecurityHeadersMiddleware
from .templating import PRODUCT_NAME, make_templates
from .throttle import limits_for


def create_app(settings: Settings) -> FastAPI:
    engine = open_store(settings, check_schema=False)  # keys bound; a database that is down shows on /health
    zone = ZoneInfo(settings.timezone)  # an unknown zone fails here, at start-up

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The embedded worker takes large uploads off the queue, so SQLite needs no other process.
        worker = Worker(engine, stale_after=timedelta(seconds=settings.job_stale_seconds)) if settings.embedded_worker else None
        if worker is not None:
            worker.start()
        yield
        if worker is not None:
            worker.stop()
            worker.join(timeout=30)
        engine.dispose()

    app = FastAPI(
        title=f"cldx: {PRODUCT_NAME}",
        summary="Collects client-level records from funded providers; identity kept apart.",
        version=cldx.__version__,
        lifespan=lifespan,
        # FastAPI's /docs and /redoc pages load their scripts from a CDN, which the Content
        # Security Policy forbids; /openapi.json stays.
        docs_url=None,
        redoc_url=None,
        # Secure by default: a route added anywhere needs a signed-in principal (and, for a
        # state-changing request from a page, the session's CSRF token) unless marked public.
        dependencies=[Depends(check_csrf)],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.templates = make_templates(zone=zone)
    app.state.limits = limits_for(settings)  # sign-in rate limits, in this process (see cldx.web.throttle)
    install_log_redaction()

    install_error_handlers(app)
    # The last added runs outermost: security headers wrap everything, early 413s included.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_upload_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.trusted_proxies.strip():
        # Outermost, so the scheme (HSTS) and the client address (sign-in limits) are the
        # caller's everywhere. Here rather than left to uvicorn, whose default trusts any
        # proxy on 127.0.0.1: only the proxies named are believed, whatever serves the app.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)

    app.include_router(health.router)
    app.include_router(api_router)
    app.include_router(pages_router)
    app.mount("/static", StaticFiles(packages=[("cldx.web", "static")]), name="static")
    return app
