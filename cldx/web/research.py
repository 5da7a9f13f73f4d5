"""What the research extract API and pages share: who sees which request, and the download.

The flow itself (request, decision, production, and every audit entry) is `cldx.export.research`;
this module only puts the web's principal in front of it:
- who may look at all: a research requester (their own requests) or a privacy officer (every
  request). Anyone else is refused (403) before anything is read; a requester naming someone
  else's request is answered as if there were none (404), so references say nothing about
  who else asked;
- the download: the approved extract written once into a temporary folder (owner-only,
  removed when the response is made), zipped, and given only to whoever asked for it.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from cldx.access.roles import DECIDE_RESEARCH_EXTRACT, REQUEST_RESEARCH_EXTRACT, Principal
from cldx.export.research import (
    MAX_PURPOSE, REFERENCE_PATTERN, ExtractError, get_extract, list_extracts, produce_extract, same_person, zip_directory,
)
from cldx.store.models import ResearchExtract

NO_RESEARCH = "Your role does not request or decide research extracts."
NO_REQUEST = "Your role does not request research extracts (the research-requester role does)."
NO_DECIDE = "Only a privacy officer approves or refuses a research extract request."
NO_EXTRACT = "There is no research extract request with that reference."

MAX_NOTE = MAX_PURPOSE
REFERENCE_REGEX = f"^{REFERENCE_PATTERN.pattern}$"  # for path parameters: RX-<year>-<number>

# How the web answers each kind of `ExtractError`.
STATUS = {"invalid": 422, "forbidden": 403, "not-found": 404, "conflict": 409}

# PostgreSQL advisory lock key serialising new requests: a reference is the year's count plus one,
# so two requests at once would otherwise both take the same one (and the second fail on the
# unique index). The first 8 bytes of SHA-256 of this module's purpose, as a signed 64-bit integer:
# far from the small provider ids `write_transaction(lock=...)` is also given.
REQUEST_LOCK = int.from_bytes(hashlib.sha256(b"cldx.web.research extract requests").digest()[:8], "big", signed=True)


def may_see(principal: Principal) -> bool:
    return principal.can(REQUEST_RESEARCH_EXTRACT) or principal.can(DECIDE_RESEARCH_EXTRACT)


def is_requester(principal: Principal, extract: ResearchExtract) -> bool:
    return same_person(extract, principal.name, principal.user_id)


def extracts_for(session: Session, principal: Principal) -> list[ResearchExtract]:
    """Every request for a privacy officer; a requester's own otherwise (newest first)."""
    if principal.can(DECIDE_RESEARCH_EXTRACT):
        return list_extracts(session)
    if principal.user_id is not None:
        return list_extracts(session, requested_by_user_id=principal.user_id)
    return [e for e in list_extracts(session) if is_requester(principal, e)]


def visible_extract(session: Session, principal: Principal, reference: str) -> ResearchExtract:
    """The request, when the principal may see it; `ExtractError` (not-found) otherwise."""
    extract = get_extract(session, reference)
    if principal.can(DECIDE_RESEARCH_EXTRACT) or is_requester(principal, extract):
        return extract
    raise ExtractError(NO_EXTRACT, kind="not-found")


def clean_text(value: str) -> bool:
    """Text a person typed: no control characters but tabs and line breaks, and encodable (a lone
    surrogate from JSON cannot be stored, and PostgreSQL cannot hold NUL)."""
    if any(ord(c) < 32 and c not in "\t\n\r" or ord(c) == 127 for c in value):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def summary_of(extract: ResearchExtract) -> dict[str, Any] | None:
    """Row counts and the k-anonymity summary, once produced."""
    if not extract.summary:
        return None
    try:
        return json.loads(extract.summary)
    except ValueError:
        return None


def period_label(extract: ResearchExtract) -> str:
    """2016-07 to 2017-06 when the period is whole months (as the form asks), else the days."""
    start, end = extract.period_start, extract.period_end
    next_month = end.replace(year=end.year + (end.month == 12), month=end.month % 12 + 1, day=1)
    if start.day == 1 and (next_month - end).days == 1:
        return f"{start:%Y-%m} to {end:%Y-%m}"
    return f"{start.isoformat()} to {end.isoformat()}"


def to_json(extract: ResearchExtract) -> dict[str, Any]:
    def at(value):
        return value.isoformat(timespec="seconds") if value is not None else None

    return {
        "reference": extract.reference,
        "status": extract.status,
        "purpose": extract.purpose,
        "period": {"from": extract.period_start.isoformat(), "to": extract.period_end.isoformat()},
        "k": extract.k,
        "date_precision": extract.date_precision,
        "requested_by": extract.requested_by,
        "requested_at": at(extract.requested_at),
        "decided_by": extract.decided_by,
        "decided_at": at(extract.decided_at),
        "decision_note": extract.decision_note,
        "produced_by": extract.produced_by,
        "produced_at": at(extract.produced_at),
        "manifest_sha256": extract.manifest_sha256,
        "summary": summary_of(extract),
    }


def produce_zip(request: Request, principal: Principal, reference: str) -> bytes:
    """Write the approved extract (for its requester only), zip it and remove the files: the zip is
    the one copy that leaves. `ExtractError` when this principal may not take it, or not now."""
    app = request.app
    with tempfile.TemporaryDirectory(prefix="cldx-research-") as folder:
        produced = produce_extract(app.state.engine, reference, Path(folder) / reference, actor=principal.name,
                                   user_id=principal.user_id, analytic_dir=app.state.settings.analytic_dir, only_requester=True)
        return zip_directory(produced.directory)
