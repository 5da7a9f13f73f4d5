"""`cldx export research ...`: research (IDI) extracts, from the command line.

Requests are made and decided on the pages or through the API, where who asks and who
approves are signed-in users; here an approved extract is produced (written to a folder once)
and the requests are listed. Producing is audited like every export, with the operating-system
user as the actor.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Files that leave the system: the research (IDI) extract.", no_args_is_help=True)
research_app = typer.Typer(help="Research (IDI) extracts: list the requests, produce an approved one.", no_args_is_help=True)
app.add_typer(research_app, name="research")
console = Console()
errors = Console(stderr=True)


@research_app.command("list")
def list_() -> None:
    """Every extract request, newest first: period, status, who asked and who decided."""
    from cldx.export.research import list_extracts
    from cldx.store.db import read_transaction

    from .stores import open_configured_store

    engine = open_configured_store()
    try:
        with read_transaction(engine) as session:
            rows = [(e.reference, f"{e.period_start:%Y-%m} to {e.period_end:%Y-%m}", e.status, e.requested_by,
                     e.decided_by or "", e.purpose) for e in list_extracts(session)]
    finally:
        engine.dispose()
    table = Table(title="Research extract requests")
    for column in ("reference", "period", "status", "requested by", "decided by", "purpose"):
        table.add_column(column, overflow="fold", no_wrap=column in ("reference", "status"))
    for row in rows:
        table.add_row(*row)
    console.print(table)


@research_app.command("produce")
def produce(
    reference: str = typer.Argument(..., help="The approved request, for example RX-2026-0001."),
    out: Path = typer.Option(..., "--out", help="A new (or empty) folder to write the extract into."),
) -> None:
    """Write an approved extract (Parquet and CSV, data dictionary, disclosure report, manifest) once."""
    from cldx.config import get_settings
    from cldx.export.research import ExtractError, produce_extract

    from .stores import open_configured_store

    engine = open_configured_store()
    try:
        with console.status(f"Producing {reference}: reading the analytic layer, making it k-anonymous, writing files"):
            produced = produce_extract(engine, reference, out, actor=getpass.getuser(), analytic_dir=get_settings().analytic_dir)
    except ExtractError as exc:
        errors.print(f"[red]{exc}[/]")
        raise typer.Exit(2 if exc.kind in ("invalid", "not-found") else 1) from None
    finally:
        engine.dispose()
    table = Table("file", "rows", "bytes", "sha256")
    for entry in produced.manifest["files"]:
        table.add_row(entry["name"], f"{entry['rows']:,}" if "rows" in entry else "", f"{entry['bytes']:,}", entry["sha256"][:16] + "…")
    console.print(table)
    summary = produced.summary
    console.print(f"Wrote {reference} to {produced.directory}: k = {summary['k']} (smallest class "
                  f"{summary['smallest_equivalence_class']}), {summary['people_removed']} people left out, "
                  f"{summary['cells_suppressed']} cells suppressed. Levels: {json.dumps(summary['levels'])}.")
    console.print(f"Manifest SHA-256: {produced.manifest_sha256} (kept with the request).")
