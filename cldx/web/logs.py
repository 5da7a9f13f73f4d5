"""What the web app's logs may hold: no query strings in the access log.

The server's access log (uvicorn's `uvicorn.access` logger) writes each request's path with
its query string, and a query string is where secrets and personal data end up when a client
gets things wrong: an API token sent as `?access_token=`, a file named after a client in
`?file=`, a name typed into a search. The log keeps the method, the path, the status and the
address (enough to follow an incident), and the query becomes `?...`, so an operator can
still see that there was one.

The other things that must never reach a log are kept out where they are made: cldx's own
log lines name exception types and paths, never values; the store's engines hide SQL
parameters (`cldx.store.db.make_engine`), so neither SQLAlchemy's statement log nor an
error's text repeats a row's values; session ids, passwords and codes travel only in cookies
and bodies, which no server log records.
"""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"


def without_query(path: str) -> str:
    """`/a/b?x=1` -> `/a/b?...` (a path without a query stays as it is)."""
    head, mark, _ = path.partition("?")
    return head + "?..." if mark else path


class DropQueryStrings(logging.Filter):
    """Rewrites an access-log record's path (uvicorn's args: client, method, path, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], without_query(args[2]), *args[3:])
        return True


def install_log_redaction() -> None:
    """Attach the filter to the access logger, once per process (a logger's filters outlive its handlers).

    A logger's own filters run before any handler, whoever configured the handlers (uvicorn's
    default config, a deployment's own log config) and whatever they format.
    """
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, DropQueryStrings) for f in access.filters):
        access.addFilter(DropQueryStrings())
