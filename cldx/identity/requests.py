"""Privacy Act requests: find everything held about a person, export it, correct it, record the outcome.

With a provider's view of its own records, this is the only path that returns identity: the
privacy officer opens a request (who it is about, when it was received), and every step that
opens identifying values says so in the audit trail with the request as its purpose.

Finding a person: the identity store is sealed, so it cannot be searched by name in SQL. The
birth month (kept in the analytic tables) narrows the candidates to a few; only their identity
is opened and compared: family name letter for letter after folding (as SLK-581 folds:
"Pōmare" = "POMARE") and the exact date of birth; given names (folded likewise) decide
whether a record goes into an access export. A client who declined identification holds no identity and cannot be found this way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session

from cldx.access import audit
from cldx.store.bulk import IDENTITY_VALUES
from cldx.store.models import (
    Assessment,
    Attendance,
    Client,
    ClientIdentity,
    Dependant,
    DependantIdentity,
    Engagement,
    Outcome,
    PrivacyRequest,
    Provider,
    RecordHistory,
)
from cldx.store.scope import set_scope

from .slk import fold
from .vault import Vault

KINDS = ("access", "correction")
SUBJECT_PLACE = "privacy_request.subject"
# What a correction may change: the identity values and the client's own demographic fields.
CORRECTABLE = {
    "client": ("family_name", "given_names", "date_of_birth", "gender", "primary_ethnicity", "iwi_1", "iwi_2", "iwi_3", "area"),
    "dependant": ("family_name", "given_names", "date_of_birth", "relationship"),
}


class RequestError(ValueError):
    """A request step cannot be taken as asked (closed request, unknown record, field not correctable)."""


@dataclass(frozen=True)
class Subject:
    family_name: str
    given_names: str
    date_of_birth: date


@dataclass(frozen=True)
class Match:
    """One record held about the person: which provider, which kind of record, its reference.

    Family name and date of birth always match; `given_names_match` is false when the given
    names differ (a twin, say, or the very name a correction request says is wrong), so an
    export leaves such a record out and a correction may still name it.
    """

    provider: str
    provider_id: int
    record_type: str  # client or dependant
    ref: str
    given_names_match: bool = True


@dataclass
class Found:
    request: str
    matches: list[Match] = field(default_factory=list)


def subject_of(vault: Vault, request: PrivacyRequest) -> Subject:
    """Whom the request is about, as the privacy officer recorded it when opening it."""
    values = json.loads(vault.keys.open(request.subject, SUBJECT_PLACE))
    return Subject(values["family_name"], values["given_names"], date.fromisoformat(values["date_of_birth"]))


def _request(session: Session, reference: str, *, open_only: bool = True) -> PrivacyRequest:
    request = session.scalar(select(PrivacyRequest).where(PrivacyRequest.reference == reference))
    if request is None:
        raise RequestError(f"no Privacy Act request {reference!r}")
    if open_only and request.status != "open":
        raise RequestError(f"request {reference} is closed")
    return request


def _purpose(request: PrivacyRequest) -> str:
    return f"Privacy Act {request.kind} request {request.reference}"


def open_request(session: Session, vault: Vault, *, kind: str, family_name: str, given_names: str, date_of_birth: date,
                 received_on: date, actor: str) -> PrivacyRequest:
    """Record a new request; the subject is sealed. Call inside a write transaction."""
    if kind not in KINDS:
        raise RequestError(f"kind must be one of {', '.join(KINDS)}")
    if not fold(family_name):
        raise RequestError("a family name is needed to find the person")
    set_scope(session.connection(), everything=True)
    year = received_on.year
    count = session.scalar(select(func.count()).select_from(PrivacyRequest).where(PrivacyRequest.reference.like(f"PA-{year}-%"))) or 0
    subject = json.dumps({"family_name": family_name, "given_names": given_names, "date_of_birth": date_of_birth.isoformat()})
    request = PrivacyRequest(reference=f"PA-{year}-{count + 1:04d}", kind=kind, subject=vault.keys.seal(subject, SUBJECT_PLACE),
                             received_on=received_on, opened_by=actor, status="open", outcome="")
    session.add(request)
    session.flush()
    audit.record(session, actor=actor, action="privacy-request-opened", target=request.reference, purpose=_purpose(request),
                 detail={"kind": kind, "received_on": received_on.isoformat()})
    return request


def _candidates(connection: Connection, model, identity_model, key: str, birth_month: str) -> list[tuple]:
    """(provider id, provider code, ref, sealed family, given, birth) of records born in that month."""
    record, identity = model.__table__, identity_model.__table__
    query = (
        select(record.c.provider_id, Provider.code, record.c[key], *[identity.c[c] for c in IDENTITY_VALUES])
        .join(identity, (identity.c.provider_id == record.c.provider_id) & (identity.c[key] == record.c[key]))
        .join(Provider, Provider.id == record.c.provider_id)
        .where(record.c.birth_year_month == birth_month)
    )
    return connection.execute(query).all()


def find_person(session: Session, vault: Vault, reference: str, *, actor: str) -> Found:
    """Every client and dependant record held about the request's subject. Audited as an identity read."""
    set_scope(session.connection(), everything=True)
    request = _request(session, reference)
    subject = subject_of(vault, request)
    month = f"{subject.date_of_birth:%Y-%m}"
    found = Found(request.reference)
    opened = 0
    for record_type, model, identity_model, key in (("client", Client, ClientIdentity, "client_ref"),
                                                    ("dependant", Dependant, DependantIdentity, "dependant_ref")):
        place = identity_model.__tablename__
        for provider_id, code, ref, family, given, born in _candidates(session.connection(), model, identity_model, key, month):
            opened += 1
            if family is None or born is None:
                continue
            if fold(vault.keys.open(family, f"{place}.family_name")) != fold(subject.family_name):
                continue
            if vault.keys.open(born, f"{place}.date_of_birth") != subject.date_of_birth.isoformat():
                continue
            same_given = not subject.given_names or given is None or fold(vault.keys.open(given, f"{place}.given_names")) == fold(subject.given_names)
            found.matches.append(Match(code, provider_id, record_type, ref, same_given))
    audit.record(session, actor=actor, action="identity-read", target=request.reference, purpose=_purpose(request),
                 detail={"step": "find", "candidates_opened": opened, "records_found": len(found.matches)})
    return found


def _rows(connection: Connection, table, *where) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row._mapping.items()} for row in connection.execute(select(table).where(*where))]


def _plain(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if hasattr(value, "as_integer_ratio") and not isinstance(value, (int, float)):
        return float(value)  # Decimal
    return value


def export_person(session: Session, vault: Vault, reference: str, *, actor: str) -> dict[str, Any]:
    """Everything held about the subject, for an access request: identity opened, records, history."""
    found = find_person(session, vault, reference, actor=actor)
    request = _request(session, reference)
    connection = session.connection()
    held: list[dict[str, Any]] = []
    for match in (m for m in found.matches if m.given_names_match):
        if match.record_type == "client":
            record_table, identity_table, key = Client.__table__, ClientIdentity.__table__, "client_ref"
        else:
            record_table, identity_table, key = Dependant.__table__, DependantIdentity.__table__, "dependant_ref"
        mine = lambda t, column=key: (t.c.provider_id == match.provider_id, t.c[column] == match.ref)  # noqa: E731
        identity = _rows(connection, identity_table, *mine(identity_table))
        for row in identity:
            for column in IDENTITY_VALUES:
                if row[column] is not None:
                    row[column] = vault.keys.open(row[column], f"{identity_table.name}.{column}")
        entry: dict[str, Any] = {"provider": match.provider, "record_type": match.record_type, "ref": match.ref,
                                 "identity": identity, "record": _rows(connection, record_table, *mine(record_table))}
        if match.record_type == "client":
            engagements = _rows(connection, Engagement.__table__, *mine(Engagement.__table__, "client_ref"))
            refs = [e["engagement_ref"] for e in engagements]
            entry["engagements"] = engagements
            for name, model in (("attendance", Attendance), ("assessments", Assessment), ("outcomes", Outcome)):
                table = model.__table__
                entry[name] = _rows(connection, table, table.c.provider_id == match.provider_id, table.c.engagement_ref.in_(refs)) if refs else []
            entry["dependants"] = _rows(connection, Dependant.__table__, *mine(Dependant.__table__, "client_ref"))
        record_ids = [r["id"] for r in entry["record"]]
        history = RecordHistory.__table__
        entry["history"] = _rows(connection, history, history.c.record_type == match.record_type, history.c.record_id.in_(record_ids)) if record_ids else []
        held.append(entry)
    audit.record(session, actor=actor, action="privacy-request-step", target=request.reference, purpose=_purpose(request),
                 detail={"step": "export", "records": len(held)})
    audit.record(session, actor=actor, action="export", target=f"{request.reference} access export", purpose=_purpose(request),
                 detail={"records": len(held)})
    return {"request": request.reference, "kind": request.kind, "received_on": request.received_on.isoformat(),
            "exported_at": datetime.now(timezone.utc).isoformat(), "records": held}


def correct(session: Session, vault: Vault, reference: str, *, provider: str, record_type: str, ref: str, field_name: str,
            value: str, actor: str) -> None:
    """Correct one value of a record the request found; the old analytic value is kept in the record's history."""
    set_scope(session.connection(), everything=True)
    request = _request(session, reference)
    if field_name not in CORRECTABLE.get(record_type, ()):
        raise RequestError(f"{field_name} of a {record_type} cannot be corrected here; correctable: {', '.join(CORRECTABLE.get(record_type, ()))}")
    found = find_person(session, vault, reference, actor=actor)
    match = next((m for m in found.matches if (m.provider, m.record_type, m.ref) == (provider, record_type, ref)), None)
    if match is None:
        raise RequestError(f"{provider} {record_type} {ref} is not a record the request found")
    model, identity_model, key = ((Client, ClientIdentity, "client_ref") if record_type == "client" else (Dependant, DependantIdentity, "dependant_ref"))
    if field_name in IDENTITY_VALUES:
        if field_name == "date_of_birth":
            value = date.fromisoformat(value).isoformat()  # a correction is written as the store holds it
        table = identity_model.__table__
        session.execute(update(table).where(table.c.provider_id == match.provider_id, table.c[key] == ref)
                        .values({field_name: vault.keys.seal(value, f"{table.name}.{field_name}")}))
        if field_name == "date_of_birth":
            # The birth month is analytic: keep its old value in the history, as for any analytic
            # correction (the analytic layer also sees from the history that the record changed).
            record = model.__table__
            row = session.execute(select(record).where(record.c.provider_id == match.provider_id, record.c[key] == ref)).one()
            session.add(RecordHistory(record_type=record_type, record_id=row.id, provider_id=match.provider_id,
                                      submission_id=row.last_submission_id, change="corrected",
                                      previous=json.dumps({"birth_year_month": row.birth_year_month})))
            session.execute(update(record).where(record.c.id == row.id)
                            .values(birth_year_month=value[:7], updated_at=datetime.now(timezone.utc)))
    else:
        record = model.__table__
        row = session.execute(select(record).where(record.c.provider_id == match.provider_id, record.c[key] == ref)).one()
        session.add(RecordHistory(record_type=record_type, record_id=row.id, provider_id=match.provider_id, submission_id=row.last_submission_id,
                                  change="corrected", previous=json.dumps({field_name: _plain(getattr(row, field_name))})))
        session.execute(update(record).where(record.c.id == row.id).values({field_name: value, "updated_at": datetime.now(timezone.utc)}))
    # The audit entry names the field, never the value: the trail must not become an identity store.
    audit.record(session, actor=actor, action="privacy-request-step", target=request.reference, provider_id=match.provider_id,
                 purpose=_purpose(request), detail={"step": "correct", "record_type": record_type, "ref": ref, "field": field_name})


def close_request(session: Session, reference: str, *, outcome: str, actor: str) -> PrivacyRequest:
    set_scope(session.connection(), everything=True)
    request = _request(session, reference)
    request.status, request.outcome, request.closed_by, request.closed_at = "closed", outcome, actor, datetime.now(timezone.utc)
    session.flush()
    audit.record(session, actor=actor, action="privacy-request-closed", target=request.reference, purpose=_purpose(request),
                 detail={"outcome": outcome})
    return request


def list_requests(session: Session) -> list[PrivacyRequest]:
    set_scope(session.connection(), everything=True)
    return list(session.scalars(select(PrivacyRequest).order_by(PrivacyRequest.id)))
