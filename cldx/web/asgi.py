"""`create()`: the web app built from the environment's settings, for an ASGI server started on its own.

`cldx serve` runs one process. Several worker processes (`uvicorn --workers 4`, gunicorn's
uvicorn workers) need an import string that each worker calls to build its own app, engine
and connection pool, after the fork:

    CLDX_DATABASE_URL=postgresql://cldx@db/cldx uvicorn --factory cldx.web.asgi:create --workers 4 --no-proxy-headers

(`--no-proxy-headers` as `cldx serve` does: `CLDX_TRUSTED_PROXIES` says whose forwarded headers to believe.)
"""

from __future__ import annotations

import os

# Polars runs one thread per worker process unless POLARS_MAX_THREADS says otherwise (set before
# Polars is first imported). Workers are processes sharing the machine's cores, and a request's
# frames are small: one thread per core per worker only made the workers' threads wait on each
# other (measured: a tenth more CPU per submission with two threads on two cores).
os.environ.setdefault("POLARS_MAX_THREADS", "1")

from fastapi import FastAPI  # noqa: E402

from cldx.config import get_settings  # noqa: E402
from cldx.web.app import create_app  # noqa: E402


def create() -> FastAPI:
    """The app for `CLDX_*` settings in the environment (read when the worker calls this)."""
    return create_app(get_settings())
