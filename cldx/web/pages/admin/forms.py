"""What every administration page shares: who may open it, form errors, and the confirmation after a write.

A write answers in one of two ways. When it worked: a 303 to the section's page with
`?done=<what>&item=<key>` (Post/Redirect/Get, so reloading the page never repeats the write),
and the page turns that pair into one sentence from its own list (`Notices`); anything not on
the list shows nothing, so a crafted link cannot put words on the page. When it did not: the
same page again at 422 with each problem next to its field and listed in a summary at the top.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse

from cldx.web.auth import forbidden, principal_of
from cldx.web.pages.privacy import page_path

# Query values a page reads: printable, no control characters (as the other pages' filters).
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
# What a confirmation may name: codes, contract references, usernames, token ids.
ITEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+/-]{0,99}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def needs_any(*capabilities: str, message: str):
    """A route dependency: 403 unless the principal holds at least one of the (ministry-wide) capabilities."""

    def check(request: Request) -> None:
        principal = principal_of(request)
        if not any(principal.can(capability) for capability in capabilities):
            raise forbidden(message)

    return Depends(check)


@dataclass
class FormErrors:
    """The problems with one form: field name -> message, in the order found; `form` says which form on the page."""

    form: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        """Keep the first problem per field: the one to fix first."""
        self.fields.setdefault(name, message)

    def __bool__(self) -> bool:
        return bool(self.fields)

    def for_form(self, form: str) -> dict[str, str]:
        return self.fields if form == self.form else {}


class Notices:
    """The confirmations a page may show after a write, keyed by `done`; `{item}` is the thing written."""

    def __init__(self, **templates: str) -> None:
        self.templates = {name.replace("_", "-"): text for name, text in templates.items()}

    def message(self, done: str, item: str) -> str:
        """The sentence for `done` and `item`, or "" for anything this page did not send."""
        template = self.templates.get(done)
        if template is None or (item and not ITEM.fullmatch(item)):
            return ""
        return template.format(item=item)

    def redirect(self, request: Request, path: str, done: str, item: str, **query: str) -> RedirectResponse:
        """303 to `path` showing the confirmation `done` (one of this page's own)."""
        assert done in self.templates, done
        values = {**{k: v for k, v in query.items() if v}, "done": done, "item": item}
        return RedirectResponse(page_path(request, path) + "?" + urlencode(values), status_code=303)


def clean(value: str) -> str:
    """A typed value without surrounding spaces (a browser sends a textarea's line breaks as CRLF: kept as LF)."""
    return value.replace("\r\n", "\n").strip()


def has_control(value: str, *, multiline: bool = False) -> bool:
    """Whether a value holds control characters (a line break is allowed where the field is a text area)."""
    return bool(CONTROL.search(value.replace("\n", "") if multiline else value))
