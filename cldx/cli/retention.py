"""`cldx retention apply`: purge records older than the retention period (rules in cldx.store.retention)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="Retention: purge records older than the retention period (CLDX_RETENTION_YEARS).", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


@app.callback()
def _group() -> None:
    """Retention: purge records older than the retention period (CLDX_RETENTION_YEARS)."""
    # A callback keeps `apply` a subcommand (Typer would otherwise make a lone command the group itself).


@app.command("apply")
def apply(
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be purged; change nothing."),
    as_of: str = typer.Option(None, "--as-of", metavar="YYYY-MM-DD",
                              help="The day the period is counted back from (default: today, the real date, in CLDX_TIMEZONE)."),
) -> None:
    """Purge clients with no activity within the period (identity first), old rejected rows, findings and jobs.

    Every purge is written to the audit trail with counts per table, the cutoff and the period; the audit trail itself is never purged. Running it again purges nothing more and finishes a run that was interrupted.
    """
    import getpass

    from cldx.access.audit import record
    from cldx.config import get_settings
    from cldx.store.retention import IDENTITY_TABLES, TABLES, apply_retention

    from .stores import open_configured_store

    settings = get_settings()
    # The real date, not CLDX_TODAY: that setting moves what is due for demos, and must never make a purge reach further.
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    try:
        day = date.fromisoformat(as_of) if as_of else today
    except ValueError:
        errors.print(f"[red]--as-of {as_of}: write the day as YYYY-MM-DD[/]")
        raise typer.Exit(2) from None
    if day > today and not dry_run:
        errors.print(f"[red]--as-of {day} is in the future: that would purge records still within the period (try --dry-run)[/]")
        raise typer.Exit(2)

    engine = open_configured_store()
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("providers"),
                      TimeElapsedColumn(), console=errors, transient=True) as bar:
            task = bar.add_task("checking", total=None)
            result = apply_retention(
                engine=engine, as_of=day, years=settings.retention_years, actor=getpass.getuser(), record=record,
                dry_run=dry_run, zone=settings.timezone,
                progress=lambda step, done, total: bar.update(task, description=step, completed=done, total=total),
            )
        rebuilt = None
        if not dry_run and settings.analytic_dir.exists():
            # Reports would rebuild it before their next answer; do it now so the purged records'
            # pseudonymised copies leave the layer's files at once, not whenever a report next runs.
            from cldx.analysis.layer import layer_for

            rebuilt = layer_for(settings.analytic_dir, engine).ensure_current()
    finally:
        engine.dispose()

    cutoff = result.cutoff
    verb = "would be purged" if dry_run else "purged"
    console.print(f"Retention period {cutoff.years} years as of {cutoff.as_of}: older than {cutoff.day}"
                  + (" (dry run: nothing changed)." if dry_run else "."), soft_wrap=True)
    table = Table()
    table.add_column("table")
    table.add_column("step")
    table.add_column(f"rows {verb}", justify="right")
    for name in TABLES:
        table.add_row(name, "identity" if name in IDENTITY_TABLES else "records", f"{result.counts[name]:,}")
    console.print(table)
    console.print(f"{result.clients:,} clients at {len(result.providers):,} providers {verb}.")
    if result.resumed:
        console.print(f"{'A run would first finish' if dry_run else 'Finished first'} an interrupted run at "
                      f"{len(result.resumed):,} providers.", soft_wrap=True)
    if not dry_run:
        console.print("Recorded in the audit trail (retention-purge: counts per table, the cutoff and the period); "
                      "the audit trail itself is never purged.", soft_wrap=True)
        if rebuilt is not None:
            console.print(f"Analytic layer: rebuilt {len(rebuilt.rebuilt):,} providers.")
