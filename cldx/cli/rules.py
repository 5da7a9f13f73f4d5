"""`cldx rules ...`: the validation rule catalogue."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The validation rules findings refer to.", no_args_is_help=True)
RULES_DOC = Path("docs/rules.md")


@app.command("docs")
def docs(
    path: Path = typer.Argument(RULES_DOC, help="Where to write the catalogue."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 when the file is out of date."),
) -> None:
    """Write docs/rules.md from the rule definitions."""
    from cldx.ingest.findings import render_rules_doc

    fresh = render_rules_doc().encode("utf-8")
    current = path.read_bytes() if path.exists() else None
    if check:
        if current != fresh:
            typer.echo(f"{path} is out of date: run `make docs`.", err=True)
            raise typer.Exit(1)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fresh)
    typer.echo(f"Wrote {path}.")


@app.command("list")
def list_rules() -> None:
    """Print every rule id with its severity and title."""
    from cldx.ingest.findings import RULES

    for rule in RULES.values():
        typer.echo(f"{rule.code:28} {rule.severity:8} {rule.title}")
