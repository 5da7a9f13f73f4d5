"""`create()`: the web app built from the environment's settings, for an ASGI server started on its own.

`cldx serve` runs one process. Several worker processes (`uvicorn --workers 4`, gunicorn's
uvicorn workers) need an import string that each worker calls to build its own app, engine
and connection pool, after the fork:

    CLDX_DATABASE_URL=postgresql://cldx@db/cldx uvicorn --factory cldx.web.asgi:create --workers 4 --no-proxy-headers

(`--no-proxy-headers` as `cldx serve` does: `CLDX_TRUSTED_PROXIES` says whose forwarded headers to believe.)
"""

from __future__ import annotations

from fastapi import FastAPI

from cldx.config import get_settings
from cldx.web.app import create_app


def create() -> FastAPI:
    """The app for `CLDX_*` settings in the environment (read when the worker calls this)."""
    return create_app(get_settings())
