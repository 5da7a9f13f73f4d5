"""`cldx standard ...`: the data standard's version and the files generated from it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cldx.standard import SEED_SERVICE_LINES, STANDARD_VERSION
from cldx.standard.docs import DOCS_PATH, REGENERATE, render_docs
from cldx.standard.export import export_standard

app = typer.Typer(help="The data standard: version, templates, schemas and docs.", no_args_is_help=True)


@app.command("version")
def version() -> None:
    """Print the data standard's version."""
    typer.echo(STANDARD_VERSION)


@app.command("export")
def export(
    out_dir: Path = typer.Argument(..., help="Folder to write into (created when missing; files there are overwritten)."),
) -> None:
    """Write the JSON Schemas, CSV and Excel templates, code sets and docs of the standard into DIR."""
    written = export_standard(out_dir, service_lines=_service_lines())
    table = Table(title=f"Data standard {STANDARD_VERSION}: {len(written)} files written to {out_dir}")
    table.add_column("file")
    table.add_column("bytes", justify="right")
    for path in written:
        table.add_row(str(path.relative_to(out_dir)), f"{path.stat().st_size:,}")
    Console().print(table)


def _service_lines() -> list[tuple[str, str]] | tuple:
    """The registry's service lines when the configured database is set up, else the brief's six.

    Templates offer the stored list in their drop-downs, since validation accepts exactly that.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from cldx.config import get_settings
    from cldx.store import make_engine, read_transaction
    from cldx.store.migrate import current_revision, head_revision
    from cldx.store.registry import service_lines

    engine = make_engine(get_settings().sqlalchemy_url)
    try:
        if current_revision(engine) != head_revision():
            return SEED_SERVICE_LINES
        with read_transaction(engine) as session:
            return [(line.code, line.name) for line in service_lines(session)] or SEED_SERVICE_LINES
    except SQLAlchemyError:
        return SEED_SERVICE_LINES
    finally:
        engine.dispose()


@app.command("docs")
def docs(
    path: Path = typer.Argument(Path(DOCS_PATH), help="The Markdown file to write, relative to the current folder."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 when the file differs from a fresh render."),
) -> None:
    """Render docs/data-standard.md from the standard's definitions."""
    fresh = render_docs(SEED_SERVICE_LINES)
    # Compare and write bytes, so line endings are checked too.
    current = path.read_bytes() if path.exists() else None
    if check:
        if current != fresh.encode("utf-8"):
            typer.echo(f"{path} is out of date: run {REGENERATE.replace('`', '')}.", err=True)
            raise typer.Exit(1)
        typer.echo(f"{path} is up to date.")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fresh.encode("utf-8"))
    typer.echo(f"{'Rewrote' if current is not None else 'Wrote'} {path}.")
