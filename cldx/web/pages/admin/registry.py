"""The registry pages: providers, service lines and contracts (MANAGE_REGISTRY).

- `/admin/providers`, `/admin/service-lines`, `/admin/contracts` (filtered by `?provider=CODE`):
  what the registry holds, and one form to add or change an entry (`?edit=KEY` fills it in).

A form is read with the same field definitions as the registry files (`cldx.standard.registry`,
through `cldx.ingest.rows.check_field`), so a value the import would refuse is refused here
too, and saved the way the import saves it: upserted by its key (`cldx.store.registry`), so
saving a key already in the registry changes that entry and saving it unchanged changes
nothing. The registry functions keep no audit trail, so this module records each add or
change (`registry-change`, with the values changed) in the same transaction.

Nothing here reads a provider's client data: only the registry tables and contract counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cldx.access import audit
from cldx.access.roles import MANAGE_REGISTRY
from cldx.ingest.findings import Finding
from cldx.ingest.rows import check_field
from cldx.standard.codesets import code_set
from cldx.standard.fields import Field
from cldx.standard.registry import CONTRACTS_FILE, DEFAULT_DUE_DAY, PROVIDERS_FILE, REPORTING_FREQUENCIES, SERVICE_LINES_FILE
from cldx.store.db import write_transaction
from cldx.store.models import Base, Contract, Provider, ServiceLine
from cldx.store.registry import ids_by_code, upsert_by_key
from cldx.web.auth import principal_of
from cldx.web.deps import SessionDep
from cldx.web.pages.privacy import needs
from cldx.web.templating import render

from .forms import NO_CONTROL, FormErrors, Notices, clean, has_control

NO_REGISTRY = "Your role does not manage the registry of providers, service lines and contracts."
# Numeric(14, 2): the largest amount the column holds, so a typing slip is a message, not a database error.
MAX_FUNDING = Decimal("999999999999.99")

NOTICES = Notices(
    provider_new="Added provider {item}.",
    provider_changed="Saved the changes to provider {item}.",
    provider_unchanged="Provider {item} already held those values: nothing changed.",
    service_line_new="Added service line {item}.",
    service_line_changed="Saved the changes to service line {item}.",
    service_line_unchanged="Service line {item} already held those values: nothing changed.",
    contract_new="Added contract {item}.",
    contract_changed="Saved the changes to contract {item}.",
    contract_unchanged="Contract {item} already held those values: nothing changed.",
)

router = APIRouter(dependencies=[needs(MANAGE_REGISTRY, NO_REGISTRY)])


# --- Reading a form with the registry files' field definitions --------------------------------


@dataclass(frozen=True)
class Entry:
    """One field of a registry form: the standard's field it fills, its label, the noun messages use, and its hint."""

    spec: Field
    label: str
    noun: str
    hint: str = ""
    rule: str = ""  # how to write it, for a value in the wrong form ("letters, digits ...")
    multiline: bool = False
    chosen: bool = False  # picked from a list rather than typed


def _entries(record_type, *entries: tuple[str, str, str, str, str], lists: frozenset[str] = frozenset()) -> dict[str, Entry]:
    specs = {spec.name: spec for spec in record_type.fields}
    return {name: Entry(specs[name], label, noun, hint, rule, multiline=name == "description", chosen=name in lists)
            for name, label, noun, hint, rule in entries}


CODE_RULE = "letters, digits, - and _ only (no spaces), up to 20 characters, starting with a letter or digit"
REF_RULE = "letters, digits and . _ - / only (no spaces), up to 40 characters, starting with a letter or digit"

PROVIDER_FIELDS = _entries(
    PROVIDERS_FILE,
    ("provider_code", "Provider code", "provider code",
     "The ministry's code for the provider, for example P0001. Saving a code already in the registry changes that provider.", CODE_RULE),
    ("name", "Name", "provider's name", "", ""),
    ("region_code", "Region", "region", "The regional council area of the provider's main office.", ""),
    ("ta_code", "Territorial authority (optional)", "territorial authority", "", ""),
    ("sends_identity", "Sends names and dates of birth", "sends names and dates of birth",
     "Untick when the provider de-identifies on its own machine and sends only the linkage key.", ""),
    lists=frozenset({"region_code", "ta_code"}),
)

SERVICE_LINE_FIELDS = _entries(
    SERVICE_LINES_FILE,
    ("service_code", "Service code", "service code",
     "The short code providers use in their engagements, for example FS. Saving a code already in the registry changes that service line.",
     CODE_RULE),
    ("name", "Name", "service line's name", "", ""),
    ("description", "Who the service is for (optional)", "description", "", ""),
    ("min_client_age", "Youngest plausible client age (optional)", "youngest client age", "In years, 0 to 120.", ""),
    ("max_client_age", "Oldest plausible client age (optional)", "oldest client age", "In years, 0 to 120.", ""),
)

CONTRACT_FIELDS = _entries(
    CONTRACTS_FILE,
    ("contract_ref", "Contract reference", "contract reference",
     "The finance system's contract number, for example CIS-2016-0001. Saving a reference already in the registry changes that contract.",
     REF_RULE),
    ("provider_code", "Provider", "provider", "", "one from the list"),
    ("service_code", "Service line", "service line", "", "one from the list"),
    ("period_start", "First day of the contract", "first day of the contract", "", ""),
    ("period_end", "Last day of the contract", "last day of the contract", "", ""),
    ("funding_nzd", "Annual funding (NZ dollars)", "annual funding", "Digits with an optional decimal point, for example 1147500.00.", ""),
    ("data_clause", "The contract requires client-level data (the data clause)", "data clause",
     "Payment is tied to providing client-level data.", ""),
    ("collection_start", "Collection starts", "day collection starts", "Required when the contract has the data clause.", ""),
    ("wave", "Roll-out wave", "roll-out wave", "1 from 1 July 2016, 2 by 1 July 2017 (1 to 9).", ""),
    ("reporting_frequency", "Reporting frequency", "reporting frequency", "", ""),
    ("due_day", "Due day", "due day", f"Day of the following month by which data is due, 1 to 28 (blank means {DEFAULT_DUE_DAY}).", ""),
    lists=frozenset({"provider_code", "service_code", "reporting_frequency"}),
)

YES_NO_FIELDS = {"sends_identity", "data_clause"}


def _message(entry: Entry, problem: Finding) -> str:
    """The field's problem in words for the person at the form (the finding's own text names CSV columns)."""
    noun, spec = entry.noun, entry.spec
    match problem.rule:
        case "required":
            return f"{'Choose' if entry.chosen else 'Give'} the {noun}."
        case "too-long":
            return f"The {noun} is too long: at most {spec.max_length} characters."
        case "bad-format":
            return f"The {noun} must be {entry.rule or spec.format_hint}."
        case "unknown-code" | "code-level":
            return f"Choose the {noun} from the list."
        case "date-format" | "impossible-date":
            return f"Write the {noun} as a real date, yyyy-mm-dd (for example 2016-07-01)."
        case "not-a-number" | "not-a-whole-number" | "out-of-range":
            return f"The {noun} must be a {spec.format_hint}."
        case "yes-no":
            return f"Choose yes or no for the {noun}."
    return problem.message


def _read(fields: dict[str, Entry], raw: dict[str, str], errors: FormErrors) -> dict[str, Any]:
    """Each field's value as the registry import would read it; problems go to `errors` by field."""
    values: dict[str, Any] = {}
    for name, entry in fields.items():
        text = raw.get(name, "")
        if has_control(text, multiline=entry.multiline):
            errors.add(name, f"The {entry.noun} holds control characters: write it as plain text.")
            values[name] = None
            continue
        value, findings = check_field(entry.spec, text, file="form", row=0)
        problem = next((f for f in findings if f.is_error), None)
        if problem is not None:
            errors.add(name, _message(entry, problem))
        values[name] = value
    return values


def _typed(raw: dict[str, str], fields: dict[str, Entry]) -> dict[str, str]:
    """The form's values as typed (stripped), to show again: a ticked box is "y", an unticked one "n"."""
    return {name: ("y" if raw.get(name) else "n") if name in YES_NO_FIELDS else clean(raw.get(name, "")) for name in fields}


def _shown(value: Any) -> Any:
    """A value as the audit trail's JSON detail holds it."""
    if isinstance(value, (date, Decimal)):
        return value.isoformat() if isinstance(value, date) else str(value)
    return value


def _save(session: Session, model: type[Base], key: str, values: dict[str, Any], *, target: str, actor: str,
          names: dict[str, dict[int, str]] | None = None) -> str:
    """Upsert as the registry import does, and record what changed in the audit trail; "new", "changed" or "unchanged".

    The entry names the provider concerned (the provider itself, or a contract's), so the audit
    page's provider filter finds it. `names` turns id columns into codes for the trail
    (provider_id -> the provider's code), so an entry reads without looking anything up.
    """
    names = names or {}
    existing = session.scalar(select(model).where(getattr(model, key) == values[key]))
    before = {name: getattr(existing, name) for name in values} if existing is not None else {}
    change = upsert_by_key(session, model=model, key=key, values=values)
    if change != "unchanged":
        def show(column: str, value: Any) -> Any:
            return names[column].get(value, value) if column in names and value is not None else _shown(value)

        if existing is None:
            detail = {"change": change, "values": {c: show(c, v) for c, v in values.items()}}
        else:
            detail = {"change": change, "changed": {c: [show(c, before[c]), show(c, v)] for c, v in values.items() if before[c] != v}}
        provider_id = values.get("provider_id") if model is Contract else (
            session.scalar(select(Provider.id).where(Provider.code == values["code"])) if model is Provider else None)
        audit.record(session, actor=actor, action="registry-change", target=target[:255], provider_id=provider_id, detail=detail)
    return change


def _options(name: str) -> list[tuple[str, str]]:
    return [(c.code, f"{c.code} {c.label}") for c in code_set(name)]


def _edit_or_404(session: Session, model: type[Base], key: str, value: str, what: str) -> Any:
    row = session.scalar(select(model).where(getattr(model, key) == value)) if value else None
    if value and row is None:
        raise HTTPException(404, detail=f"There is no {what} {value!r} in the registry.")
    return row


EditQuery = Annotated[str, Query(max_length=40, pattern=NO_CONTROL)]
DoneQuery = Annotated[str, Query(max_length=40, pattern=NO_CONTROL)]
ItemQuery = Annotated[str, Query(max_length=100, pattern=NO_CONTROL)]


# --- Providers -----------------------------------------------------------------------------------


def _provider_context(session: Session, *, values: dict[str, str], errors: FormErrors | None = None, notice: str = "") -> dict[str, Any]:
    regions = dict(_options("regional_council"))
    counts = func.count(Contract.id)
    rows = session.execute(select(Provider, counts).outerjoin(Contract, Contract.provider_id == Provider.id)
                           .group_by(Provider.id).order_by(Provider.code)).all()
    editing = values["provider_code"] if session.scalar(select(Provider.id).where(Provider.code == values["provider_code"])) else ""
    return {
        "providers": [{"item": p, "region": regions.get(p.region_code, p.region_code), "contracts": n} for p, n in rows],
        "fields": PROVIDER_FIELDS,
        "regions": list(regions.items()),
        "tas": _options("territorial_authority"),
        "values": values,
        "editing": editing,
        "errors": errors or FormErrors(),
        "notice": notice,
    }


def _provider_values(row: Provider | None) -> dict[str, str]:
    if row is None:
        return {"provider_code": "", "name": "", "region_code": "", "ta_code": "", "sends_identity": "y"}
    return {"provider_code": row.code, "name": row.name, "region_code": row.region_code, "ta_code": row.ta_code or "",
            "sends_identity": "y" if row.sends_identity else "n"}


@router.get("/providers", response_class=HTMLResponse, name="admin_providers_page")
def providers_page(request: Request, session: SessionDep, edit: EditQuery = "", done: DoneQuery = "", item: ItemQuery = "") -> HTMLResponse:
    row = _edit_or_404(session, Provider, "code", edit.strip(), "provider")
    context = _provider_context(session, values=_provider_values(row), notice=NOTICES.message(done, item))
    return render(request, "admin_providers.html", context)


@router.post("/providers", name="admin_save_provider")
def save_provider(
    request: Request,
    session: SessionDep,
    provider_code: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=1000)] = "",
    region_code: Annotated[str, Form(max_length=20)] = "",
    ta_code: Annotated[str, Form(max_length=20)] = "",
    sends_identity: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    raw = {"provider_code": provider_code, "name": name, "region_code": region_code, "ta_code": ta_code, "sends_identity": sends_identity}
    typed = _typed(raw, PROVIDER_FIELDS)
    errors = FormErrors("provider")
    values = _read(PROVIDER_FIELDS, typed, errors)
    if not errors:
        stored = {"code": values["provider_code"], "name": values["name"], "region_code": values["region_code"],
                  "ta_code": values["ta_code"], "sends_identity": values["sends_identity"]}
        with write_transaction(request.app.state.engine) as writer:
            change = _save(writer, Provider, "code", stored, target=f"provider {stored['code']}", actor=principal_of(request).name)
        return NOTICES.redirect(request, "/admin/providers", f"provider-{change}", stored["code"])
    return render(request, "admin_providers.html", _provider_context(session, values=typed, errors=errors), status_code=422)


# --- Service lines -------------------------------------------------------------------------------


def _service_line_context(session: Session, *, values: dict[str, str], errors: FormErrors | None = None,
                          notice: str = "") -> dict[str, Any]:
    rows = session.execute(select(ServiceLine, func.count(Contract.id)).outerjoin(Contract, Contract.service_line_id == ServiceLine.id)
                           .group_by(ServiceLine.id).order_by(ServiceLine.code)).all()
    editing = values["service_code"] if session.scalar(select(ServiceLine.id).where(ServiceLine.code == values["service_code"])) else ""
    return {"lines": [{"item": s, "contracts": n} for s, n in rows], "fields": SERVICE_LINE_FIELDS, "values": values,
            "editing": editing, "errors": errors or FormErrors(), "notice": notice}


def _service_line_values(row: ServiceLine | None) -> dict[str, str]:
    if row is None:
        return {"service_code": "", "name": "", "description": "", "min_client_age": "", "max_client_age": ""}
    return {"service_code": row.code, "name": row.name, "description": row.description or "",
            "min_client_age": "" if row.min_client_age is None else str(row.min_client_age),
            "max_client_age": "" if row.max_client_age is None else str(row.max_client_age)}


@router.get("/service-lines", response_class=HTMLResponse, name="admin_service_lines_page")
def service_lines_page(request: Request, session: SessionDep, edit: EditQuery = "", done: DoneQuery = "",
                       item: ItemQuery = "") -> HTMLResponse:
    row = _edit_or_404(session, ServiceLine, "code", edit.strip(), "service line")
    context = _service_line_context(session, values=_service_line_values(row), notice=NOTICES.message(done, item))
    return render(request, "admin_service_lines.html", context)


@router.post("/service-lines", name="admin_save_service_line")
def save_service_line(
    request: Request,
    session: SessionDep,
    service_code: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=1000)] = "",
    description: Annotated[str, Form(max_length=4000)] = "",
    min_client_age: Annotated[str, Form(max_length=20)] = "",
    max_client_age: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    raw = {"service_code": service_code, "name": name, "description": description, "min_client_age": min_client_age,
           "max_client_age": max_client_age}
    typed = _typed(raw, SERVICE_LINE_FIELDS)
    errors = FormErrors("service-line")
    values = _read(SERVICE_LINE_FIELDS, typed, errors)
    youngest, oldest = values["min_client_age"], values["max_client_age"]
    if youngest is not None and oldest is not None and oldest < youngest:
        errors.add("max_client_age", "The oldest client age is below the youngest: swap them or correct one.")
    if not errors:
        stored = {"code": values["service_code"], "name": values["name"], "description": values["description"] or "",
                  "min_client_age": youngest, "max_client_age": oldest}
        with write_transaction(request.app.state.engine) as writer:
            change = _save(writer, ServiceLine, "code", stored, target=f"service line {stored['code']}", actor=principal_of(request).name)
        return NOTICES.redirect(request, "/admin/service-lines", f"service-line-{change}", stored["code"])
    return render(request, "admin_service_lines.html", _service_line_context(session, values=typed, errors=errors), status_code=422)


# --- Contracts -----------------------------------------------------------------------------------


def _contract_context(session: Session, *, values: dict[str, str], shown_for: str = "", errors: FormErrors | None = None,
                      notice: str = "", problem: str = "") -> dict[str, Any]:
    providers = list(session.execute(select(Provider.id, Provider.code, Provider.name).order_by(Provider.code)))
    lines = list(session.execute(select(ServiceLine.id, ServiceLine.code, ServiceLine.name).order_by(ServiceLine.code)))
    provider_codes = {p.id: p.code for p in providers}
    line_codes = {s.id: s.code for s in lines}
    query = select(Contract).order_by(Contract.contract_ref)
    contracts: list[Contract] = []
    if not problem:
        if shown_for:
            query = query.where(Contract.provider_id == next((p.id for p in providers if p.code == shown_for), -1))
        contracts = list(session.scalars(query))
    editing = values["contract_ref"] if session.scalar(select(Contract.id).where(Contract.contract_ref == values["contract_ref"])) else ""
    return {
        "contracts": [{"item": c, "provider": provider_codes.get(c.provider_id, ""), "line": line_codes.get(c.service_line_id, "")}
                      for c in contracts],
        "providers": [(p.code, f"{p.code} {p.name}") for p in providers],
        "lines": [(s.code, f"{s.code} {s.name}") for s in lines],
        "frequencies": [(c.code, c.label) for c in code_set("reporting_frequency")],
        "fields": CONTRACT_FIELDS,
        "values": values,
        "editing": editing,
        "shown_for": shown_for,
        "problem": problem,
        "errors": errors or FormErrors(),
        "notice": notice,
    }


def _contract_values(row: Contract | None, session: Session, provider: str = "") -> dict[str, str]:
    if row is None:
        return {"contract_ref": "", "provider_code": provider, "service_code": "", "period_start": "", "period_end": "", "funding_nzd": "",
                "data_clause": "y", "collection_start": "", "wave": "1", "reporting_frequency": "monthly", "due_day": str(DEFAULT_DUE_DAY)}
    return {
        "contract_ref": row.contract_ref,
        "provider_code": session.scalar(select(Provider.code).where(Provider.id == row.provider_id)) or "",
        "service_code": session.scalar(select(ServiceLine.code).where(ServiceLine.id == row.service_line_id)) or "",
        "period_start": row.period_start.isoformat(),
        "period_end": row.period_end.isoformat(),
        "funding_nzd": f"{row.funding_nzd:.2f}",
        "data_clause": "y" if row.data_clause else "n",
        "collection_start": row.collection_start.isoformat() if row.collection_start else "",
        "wave": str(row.wave),
        "reporting_frequency": row.reporting_frequency,
        "due_day": str(row.due_day),
    }


@router.get("/contracts", response_class=HTMLResponse, name="admin_contracts_page")
def contracts_page(
    request: Request,
    session: SessionDep,
    provider: Annotated[str, Query(max_length=40, pattern=NO_CONTROL)] = "",
    edit: EditQuery = "",
    done: DoneQuery = "",
    item: ItemQuery = "",
) -> HTMLResponse:
    provider = provider.strip()
    row = _edit_or_404(session, Contract, "contract_ref", edit.strip(), "contract")
    problem = ""
    if provider and session.scalar(select(Provider.id).where(Provider.code == provider)) is None:
        problem = f"There is no provider {provider!r} in the registry. Choose one from the list."
    context = _contract_context(session, values=_contract_values(row, session, "" if problem else provider), shown_for=provider,
                                notice=NOTICES.message(done, item), problem=problem)
    return render(request, "admin_contracts.html", context, status_code=422 if problem else 200)


@router.post("/contracts", name="admin_save_contract")
def save_contract(
    request: Request,
    session: SessionDep,
    contract_ref: Annotated[str, Form(max_length=100)] = "",
    provider_code: Annotated[str, Form(max_length=100)] = "",
    service_code: Annotated[str, Form(max_length=100)] = "",
    period_start: Annotated[str, Form(max_length=40)] = "",
    period_end: Annotated[str, Form(max_length=40)] = "",
    funding_nzd: Annotated[str, Form(max_length=40)] = "",
    data_clause: Annotated[str, Form(max_length=5)] = "",
    collection_start: Annotated[str, Form(max_length=40)] = "",
    wave: Annotated[str, Form(max_length=20)] = "",
    reporting_frequency: Annotated[str, Form(max_length=40)] = "",
    due_day: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    raw = {"contract_ref": contract_ref, "provider_code": provider_code, "service_code": service_code, "period_start": period_start,
           "period_end": period_end, "funding_nzd": funding_nzd, "data_clause": data_clause, "collection_start": collection_start,
           "wave": wave, "reporting_frequency": reporting_frequency, "due_day": due_day}
    typed = _typed(raw, CONTRACT_FIELDS)
    if not typed["reporting_frequency"]:
        typed["reporting_frequency"] = "monthly"  # blank means monthly, as in contracts.csv
    errors = FormErrors("contract")
    values = _read(CONTRACT_FIELDS, typed, errors)
    providers, lines = ids_by_code(session, Provider), ids_by_code(session, ServiceLine)
    if values["provider_code"] is not None and values["provider_code"] not in providers:
        errors.add("provider_code", f"There is no provider {values['provider_code']!r} in the registry: choose one from the list.")
    if values["service_code"] is not None and values["service_code"] not in lines:
        errors.add("service_code", f"There is no service line {values['service_code']!r} in the registry: choose one from the list.")
    if values["period_start"] and values["period_end"] and values["period_end"] < values["period_start"]:
        errors.add("period_end", "The contract ends before it starts: the last day must be on or after the first.")
    if values["funding_nzd"] is not None and values["funding_nzd"] > MAX_FUNDING:
        errors.add("funding_nzd", "The annual funding is larger than the registry can hold: check the number.")
    if values["data_clause"] and values["collection_start"] is None and "collection_start" not in errors.fields:
        errors.add("collection_start", "Give the day collection starts: the contract has the data clause.")
    if (values["reporting_frequency"] or "monthly") not in REPORTING_FREQUENCIES:
        errors.add("reporting_frequency", "Choose the reporting frequency from the list.")
    if not errors:
        stored = {
            "contract_ref": values["contract_ref"],
            "provider_id": providers[values["provider_code"]],
            "service_line_id": lines[values["service_code"]],
            "period_start": values["period_start"],
            "period_end": values["period_end"],
            "funding_nzd": values["funding_nzd"].quantize(Decimal("0.01")),
            "data_clause": values["data_clause"],
            "collection_start": values["collection_start"],
            "wave": values["wave"],
            "reporting_frequency": values["reporting_frequency"],
            "due_day": values["due_day"] or DEFAULT_DUE_DAY,
        }
        names = {"provider_id": {v: k for k, v in providers.items()}, "service_line_id": {v: k for k, v in lines.items()}}
        with write_transaction(request.app.state.engine) as writer:
            change = _save(writer, Contract, "contract_ref", stored, target=f"contract {stored['contract_ref']}",
                           actor=principal_of(request).name, names=names)
        return NOTICES.redirect(request, "/admin/contracts", f"contract-{change}", stored["contract_ref"])
    return render(request, "admin_contracts.html", _contract_context(session, values=typed, errors=errors), status_code=422)
