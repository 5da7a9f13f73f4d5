"""The one place an exception becomes a response: JSON for the API, an HTML page otherwise.

Modelled on Datasette's `handle_exception.py`. API paths (and requests whose Accept header
prefers JSON) get `{"ok": false, "error": message, "errors": [details], "status": code}`;
pages get `templates/<status>.html` when there is one, else `templates/error.html`, both in
the base layout. Validation errors are 422 with each error's location and message. Anything
unexpected is logged here and answered with a generic 500: the client never sees exception
text or a traceback (they could hold identifying data). `Redirect` is how a dependency sends a
browser elsewhere (to sign in): 303, or for an htmx request a 401 with `HX-Redirect`, since
htmx would otherwise swap the sign-in page into the fragment it asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .security import apply_security_headers
from .templating import render

logger = logging.getLogger("cldx.web")

# Paths that only ever speak JSON, whatever the Accept header says.
JSON_PATH_PREFIXES = ("/api/",)
JSON_PATHS = frozenset({"/api", "/health", "/openapi.json"})

GENERIC_500_MESSAGE = "Something went wrong on our side. The error has been logged."
VALIDATION_MESSAGE = "The request is not valid"


class Redirect(Exception):
    """Send the browser to `location` (a root-relative URL) instead of answering the request."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def error_body(message: str, *, status: int, errors: Iterable[Any] = ()) -> dict[str, Any]:
    """The JSON error shape; `tests/web/test_errors.py` pins it."""
    return {"ok": False, "error": message, "errors": list(errors), "status": status}


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through this module (FastAPI's HTTPException subclasses Starlette's)."""
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    app.add_exception_handler(Redirect, redirect_handler)
    # Starlette sends this one from its outermost ServerErrorMiddleware, then re-raises the
    # exception so the server logs it too.
    app.add_exception_handler(Exception, unexpected_exception_handler)


async def http_exception_handler(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code in (204, 304):  # no body allowed
        return Response(status_code=exc.status_code, headers=exc.headers)
    if isinstance(exc.detail, str) and exc.detail:
        message, errors = exc.detail, []
    else:
        message = _phrase(exc.status_code)
        errors = exc.detail if isinstance(exc.detail, list) else [exc.detail] if exc.detail else []
    return error_response(request, status=exc.status_code, message=message, errors=errors, headers=exc.headers)


async def redirect_handler(request: Request, exc: Redirect) -> Response:
    if request.headers.get("hx-request") == "true":
        response = Response(status_code=401, headers={"HX-Redirect": exc.location})
    else:
        response = Response(status_code=303, headers={"Location": exc.location})
    apply_security_headers(response.headers, request.scope)
    return response


async def validation_exception_handler(request: Request, exc: RequestValidationError) -> Response:
    errors = [validation_detail(error) for error in exc.errors()]
    message = VALIDATION_MESSAGE
    if errors:
        first = errors[0]
        where = ".".join(str(part) for part in first["location"])
        message += f": {where + ': ' if where else ''}{first['message']}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
    return error_response(request, status=422, message=message, errors=errors)


def validation_detail(error: Mapping[str, Any]) -> dict[str, Any]:
    """Location, message and type of one validation error.

    Deliberately not `input` (it would echo what was sent, names and dates of birth
    included) nor `ctx` (it can hold exception objects that do not serialise).
    """
    return {
        "location": [part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
        "message": str(error.get("msg", "")),
        "type": str(error.get("type", "")) or None,
    }


async def unexpected_exception_handler(request: Request, exc: Exception) -> Response:
    logger.error("Unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    return error_response(request, status=500, message=GENERIC_500_MESSAGE)


def error_response(
    request: Request,
    *,
    status: int,
    message: str,
    errors: Iterable[Any] = (),
    headers: Mapping[str, str] | None = None,
) -> Response:
    errors = list(errors)
    if wants_json(request):
        response: Response = JSONResponse(error_body(message, status=status, errors=errors), status_code=status)
    else:
        response = _html_error(request, status=status, message=message, errors=errors)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    # 500s leave through ServerErrorMiddleware, outside SecurityHeadersMiddleware.
    apply_security_headers(response.headers, request.scope)
    return response


def _html_error(request: Request, *, status: int, message: str, errors: list[Any]) -> Response:
    context = {"status": status, "title": _phrase(status), "message": message, "errors": errors}
    try:
        templates = request.app.state.templates
        try:
            templates.get_template(f"{status}.html")
            name = f"{status}.html"
        except jinja2.TemplateNotFound:
            name = "error.html"
        return render(request, name, context, status_code=status)
    except Exception:
        # A broken error page must not hide the original error behind a second one.
        logger.exception("Could not render the error page for status %s", status)
        return PlainTextResponse(f"{status} {_phrase(status)}", status_code=status)


def wants_json(request: Request) -> bool:
    path = request.url.path
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    if path in JSON_PATHS or path.startswith(JSON_PATH_PREFIXES):
        return True
    return prefers_json(request.headers.get("accept", ""))


def prefers_json(accept: str) -> bool:
    """True when the Accept header ranks application/json above text/html.

    `*/*` (curl, htmx) ranks both the same, so it gets HTML on page paths.
    """
    ranges = _parse_accept(accept)
    return _quality(ranges, "application/json") > _quality(ranges, "text/html")


def _parse_accept(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for item in accept.lower().split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if "/" not in media:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0  # a malformed header is the client's problem, never a 500
        ranges.append((media, q))
    return ranges


def _quality(ranges: list[tuple[str, float]], media_type: str) -> float:
    """q of the most specific range matching `media_type` (exact, then type/*, then */*)."""
    main_type = media_type.split("/")[0]
    best: tuple[int, float] | None = None
    for media, q in ranges:
        if media == media_type:
            specificity = 2
        elif media == f"{main_type}/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if best is None or specificity > best[0]:
            best = (specificity, q)
    return best[1] if best else 0.0


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
