"""`cldx privacy ...`: Privacy Act requests, for the privacy officer: open, find, export, correct, close, list."""

from __future__ import annotations

import getpass
import json
from datetime import date, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Privacy Act requests: find everything held about a person, export, correct, record the outcome (all audited).",
                  no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


def _day(text: str, option: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        errors.print(f"[red]{option} {text!r} is not a date (yyyy-mm-dd).[/]")
        raise typer.Exit(2) from None


def _run(step):
    """Run `step(session, vault)` in one write transaction on the configured store; refusals exit 1."""
    from cldx.identity.requests import RequestError
    from cldx.identity.vault import vault_of
    from cldx.store import write_transaction

    from .stores import open_configured_store

    engine = open_configured_store()
    try:
        with write_transaction(engine) as session:
            return step(session, vault_of(engine))
    except RequestError as exc:
        errors.print(f"[red]{exc}.[/]")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


@app.command("open")
def open_(
    kind: str = typer.Option(..., "--kind", help="access or correction"),
    family_name: str = typer.Option(..., "--family-name"),
    given_names: str = typer.Option("", "--given-names"),
    date_of_birth: str = typer.Option(..., "--date-of-birth", help="yyyy-mm-dd"),
    received: str = typer.Option(date.today().isoformat(), "--received", help="the day the request was received (yyyy-mm-dd)"),
) -> None:
    """Record a new request (the person it is about is kept sealed) and print its reference."""
    from cldx.identity.requests import open_request

    born, received_on = _day(date_of_birth, "--date-of-birth"), _day(received, "--received")
    request = _run(lambda session, vault: open_request(session, vault, kind=kind, family_name=family_name, given_names=given_names,
                                                       date_of_birth=born, received_on=received_on, actor=getpass.getuser()))
    console.print(f"Opened {request.reference} ({kind}).")


@app.command("find")
def find(reference: str) -> None:
    """The records held about the request's subject, by provider (audited as an identity read)."""
    from cldx.identity.requests import find_person

    found = _run(lambda session, vault: find_person(session, vault, reference, actor=getpass.getuser()))
    table = Table(title=f"Records held about the subject of {reference}")
    for column in ("provider", "record", "reference", "given names match"):
        table.add_column(column)
    for match in found.matches:
        table.add_row(match.provider, match.record_type, match.ref, "yes" if match.given_names_match else "no")
    console.print(table)


@app.command("export")
def export(reference: str, out: Path = typer.Option(..., "--out", help="JSON file to write (it holds identity: hand it over securely)")) -> None:
    """Everything held about the subject, as JSON, for an access request (audited as an export)."""
    from cldx.identity.requests import export_person

    document = _run(lambda session, vault: export_person(session, vault, reference, actor=getpass.getuser()))
    out.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    out.chmod(0o600)
    console.print(f"Wrote {len(document['records'])} record(s) to {out} (owner-only).")


@app.command("correct")
def correct_(
    reference: str,
    provider: str = typer.Option(..., "--provider"),
    record_type: str = typer.Option("client", "--record", help="client or dependant"),
    ref: str = typer.Option(..., "--ref", help="the provider's client_ref or dependant_ref"),
    field_name: str = typer.Option(..., "--field"),
    value: str = typer.Option(..., "--value"),
) -> None:
    """Correct one value of a record the request found (the old value is kept in the record's history)."""
    from cldx.identity.requests import correct

    _run(lambda session, vault: correct(session, vault, reference, provider=provider, record_type=record_type, ref=ref,
                                        field_name=field_name, value=value, actor=getpass.getuser()))
    console.print(f"Corrected {field_name} of {provider} {record_type} {ref}.")


@app.command("close")
def close(reference: str, outcome: str = typer.Option(..., "--outcome", help="what was done, for the record")) -> None:
    """Close a request with its outcome."""
    from cldx.identity.requests import close_request

    _run(lambda session, vault: close_request(session, reference, outcome=outcome, actor=getpass.getuser()))
    console.print(f"Closed {reference}.")


@app.command("list")
def list_() -> None:
    """Every request with its status and outcome (never whom it is about)."""
    from cldx.identity.requests import list_requests

    requests = _run(lambda session, vault: list_requests(session))
    table = Table(title="Privacy Act requests")
    for column in ("reference", "kind", "received", "opened by", "status", "outcome"):
        table.add_column(column)
    for r in requests:
        table.add_row(r.reference, r.kind, r.received_on.isoformat(), r.opened_by, r.status, r.outcome)
    console.print(table)
