"""`cldx submit`: send a provider's files as one submission, exactly as DESIGN.md describes."""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)


def register(app: typer.Typer) -> None:
    @app.command()
    def submit(
        files: list[Path] = typer.Argument(..., help="clients.csv, engagements.csv, ... or the filled-in Excel workbook."),
        provider: str = typer.Option(..., "--provider", help="The provider's code."),
        period: str | None = typer.Option(None, "--period", help="Reporting period YYYY-MM (default: this month in New Zealand)."),
        strict: bool = typer.Option(False, "--strict", help="Store nothing if any record has an error."),
        as_json: bool = typer.Option(False, "--json", help="Print the receipt as JSON."),
    ) -> None:
        """Validate and store a submission.

        Exit 0: all accepted; 1: some records rejected (or strict mode refused); 2: nothing could
        be read (unknown provider, unreadable file, bad usage).
        """
        from cldx.ingest.sources import SourceFile
        from cldx.ingest.submit import UnknownProvider, submit as run

        from .stores import open_configured_store

        if period is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
            errors.print(f"[red]--period {period!r} is not YYYY-MM.[/]")
            raise typer.Exit(2)
        sources = []
        for path in files:
            try:
                sources.append(SourceFile(path.name, path.read_bytes()))
            except OSError as exc:
                errors.print(f"[red]Cannot read {path}: {exc.strerror}.[/]")
                raise typer.Exit(2) from None
        engine = open_configured_store()
        try:
            receipt = run(engine, provider=provider, files=sources, period=period, mode="all-or-nothing" if strict else "partial",
                          submitter=getpass.getuser(), channel="cli")
        except UnknownProvider:
            errors.print(f"[red]No provider {provider!r} in the registry.[/] Check the code, or import the registry first.")
            raise typer.Exit(2) from None
        finally:
            engine.dispose()
        if as_json:
            typer.echo(json.dumps(receipt.to_dict(), ensure_ascii=False, indent=2))
        else:
            _print_receipt(receipt)
        raise typer.Exit(receipt.exit_code)


def _print_receipt(receipt) -> None:
    colour = {"accepted": "green", "partial": "yellow"}.get(receipt.status, "red")
    console.print(f"Submission [bold]{receipt.submission_id}[/] for {receipt.provider}, period {receipt.period}: [{colour}]{receipt.status}[/]")
    console.print(", ".join(f"{n} {k}" for k, n in receipt.counts.items()))
    if receipt.findings:
        table = Table("file", "row", "field", "value", "rule", "message", "fix", title=f"{len(receipt.findings)} findings")
        for f in receipt.findings[:200]:
            style = "red" if f["severity"] == "error" else "yellow"
            table.add_row(f["file"] + (f" [{f['sheet']}]" if f["sheet"] else ""), str(f["row"] or ""), f["field"] or "", f["value"] or "",
                          f"[{style}]{f['rule']}[/]", f["message"], f["fix"])
        console.print(table)
        if len(receipt.findings) > 200:
            console.print(f"... and {len(receipt.findings) - 200} more: use --json for all of them.")
