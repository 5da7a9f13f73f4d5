"""`cldx registry ...`: load the ministry's providers, service lines and contracts."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="The ministry's registry of providers, service lines and contracts.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


@app.command("import")
def import_(
    directory: Path = typer.Argument(..., help="Folder holding providers.csv, service_lines.csv and/or contracts.csv."),
    as_json: bool = typer.Option(False, "--json", help="Print the import report as JSON."),
) -> None:
    """Import the registry files; importing the same files twice changes nothing.

    Exit 0: every row accepted; 1: some rows rejected (the rest imported); 2: nothing could be read.
    """
    from cldx.config import get_settings
    from cldx.ingest.registry import NothingToImport, import_registry
    from cldx.store import make_engine

    if not directory.is_dir():
        errors.print(f"[red]{directory} is not a folder.[/]")
        raise typer.Exit(2)
    engine = make_engine(get_settings().sqlalchemy_url)
    try:
        report = import_registry(engine, directory)
    except NothingToImport as exc:
        errors.print(f"[red]Nothing imported:[/] {exc}.")
        raise typer.Exit(2) from None
    finally:
        engine.dispose()

    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        counts = Table("file", "new", "changed", "unchanged", "rejected", title="Registry import")
        for f in report.files:
            counts.add_row(f.file, *(str(f.counts[k]) for k in ("new", "changed", "unchanged", "rejected")))
        console.print(counts)
        if report.findings:
            table = Table("file", "row", "field", "value", "rule", "message", "fix", title="Findings")
            for f in report.findings:
                style = "red" if f.is_error else "yellow"
                table.add_row(f.file, str(f.row or ""), f.field or "", f.value or "", f"[{style}]{f.rule}[/]", f.message, f.fix)
            console.print(table)
    if report.errors:
        raise typer.Exit(1)
