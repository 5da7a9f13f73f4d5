"""`cldx report NAME` and `cldx analytic refresh`: the evidence, disclosure-controlled, from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()
errors = Console(stderr=True)

analytic_app = typer.Typer(help="The analytic layer reports read (a pseudonymised columnar copy of the records).",
                           no_args_is_help=True)


def report_context(engine, settings):
    """The context every report runs in: the warm layer of this store and the rounding key of this deployment."""
    from cldx.analysis.layer import layer_for
    from cldx.analysis.reports import ReportContext
    from cldx.identity.vault import vault_of

    return ReportContext(layer_for(settings.analytic_dir, engine), vault_of(engine).derived_key("rr3 rounding"), clock=settings.now)


def register(app: typer.Typer) -> None:
    from cldx.analysis.reports import REPORTS

    names = ", ".join(REPORTS)

    @app.command()
    def report(
        name: str = typer.Argument(..., help=f"Which report: {names}."),
        period: str = typer.Option(None, "--period", help="FROM:TO as months (2016-07:2017-06) or days; default: everything stored."),
        by: str = typer.Option(None, "--by", help="Breakdowns, comma-separated: service, region, ta, ethnicity, iwi, age_band, gender, provider."),
        fmt: str = typer.Option("csv", "--format", help="csv, json or xlsx."),
        out: Path = typer.Option(None, "--out", help="Write the file here (default: standard output; xlsx needs --out)."),
        provider: str = typer.Option(None, "--provider", help="One provider's own view (its figures exact) instead of the ministry's."),
        actor: str = typer.Option("cli", "--as", help="Who is asking, for the audit trail."),
    ) -> None:
        """Run a report; every table passes disclosure control (a provider's own figures excepted)."""
        from cldx.access import audit
        from cldx.analysis.reports import MINISTRY, Audience, ReportError, run_report
        from cldx.config import get_settings
        from cldx.export.reports import FORMATS, render
        from cldx.store import transaction

        from .stores import open_configured_store

        if fmt not in FORMATS:
            errors.print(f"[red]--format {fmt}: choose from {', '.join(FORMATS)}[/]")
            raise typer.Exit(2)
        if fmt == "xlsx" and out is None:
            errors.print("[red]an xlsx file needs --out FILE[/]")
            raise typer.Exit(2)
        engine = open_configured_store()
        try:
            context = report_context(engine, get_settings())
            audience = MINISTRY
            if provider is not None:
                provider_id = context.labels.provider_ids.get(provider)
                if provider_id is None:
                    errors.print(f"[red]no provider {provider!r}[/]")
                    raise typer.Exit(2)
                audience = Audience(provider_id, provider)
            try:
                result = run_report(name, context, period=period, by=by, audience=audience)
            except ReportError as exc:
                errors.print(f"[red]{exc}[/]")
                raise typer.Exit(2) from None
            data = render(result, fmt)
            with transaction(engine) as session:
                # What left the system, in which form and for whom: the privacy officer's "exports".
                audit.record(session, actor=actor, action="export", target=f"report:{name}",
                             provider_id=audience.provider_id, purpose="report",
                             detail={"format": fmt, "period": result.period.to_json(), "by": result.by,
                                     "audience": result.audience.to_json(), "file": str(out) if out else "stdout"})
        finally:
            engine.dispose()
        if out is None:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            out.write_bytes(data)
            errors.print(f"Wrote {result.title} ({fmt}, {len(data):,} bytes) to {out}.")


@analytic_app.command("refresh")
def refresh(full: bool = typer.Option(False, "--full", help="Rebuild every provider, not only those whose data changed.")) -> None:
    """Bring the analytic layer up to date with the store (reports do this themselves; this does it ahead of time)."""
    from cldx.analysis.layer import layer_for, store_versions
    from cldx.config import get_settings

    from .stores import open_configured_store

    settings = get_settings()
    engine = open_configured_store()
    try:
        layer = layer_for(settings.analytic_dir, engine)
        providers = set(store_versions(engine)) if full else None
        with Progress(TextColumn("building the analytic layer"), BarColumn(), MofNCompleteColumn(), TextColumn("providers"),
                      TimeElapsedColumn(), console=errors) as bar:
            task = bar.add_task("refresh", total=None)
            summary = layer.refresh(providers, progress=lambda done, total: bar.update(task, completed=done, total=total))
    finally:
        engine.dispose()
    table = Table("table", "rows written")
    for name, rows in summary.rows.items():
        table.add_row(name, f"{rows:,}")
    console.print(f"Rebuilt {len(summary.rebuilt)} providers, removed {len(summary.removed)}, in {settings.analytic_dir}.")
    console.print(table)
