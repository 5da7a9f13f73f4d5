"""`cldx generate`: realistic roll-out data (registry, provider files, history, planted faults)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)


def _day(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a yyyy-mm-dd date") from None


def register(app: typer.Typer) -> None:
    @app.command()
    def generate(
        clients: int = typer.Option(..., "--clients", min=0, help="Number of client persons (N)."),
        seed: int = typer.Option(1, "--seed", help="Random seed: the same seed writes byte-identical files."),
        fault_rate: float = typer.Option(0.0, "--fault-rate", min=0.0, max=0.99, help="Share of records given a realistic fault (0: clean files)."),
        out: Path = typer.Option(..., "--out", help="Folder to write registry/, one folder per provider, faults.csv."),
        start: str = typer.Option("2016-07-01", "--from", help="First day of the generated period."),
        end: str = typer.Option("2018-06-30", "--to", help="Last day of the generated period."),
        excel: bool = typer.Option(False, "--excel", help="Also write each provider's data into the Excel template (DIR/excel/)."),
        providers: str | None = typer.Option(None, "--providers", help="Only these provider folders, comma-separated (the registry is always whole)."),
    ) -> None:
        """Write the brief's roll-out: 75 wave-1 providers ($77.60m), about 250 more in wave 2, and their clients."""
        from cldx.generator.generate import generate as run

        with Progress(TextColumn("providers"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("providers", total=None)
            summary = run(
                clients=clients, seed=seed, fault_rate=fault_rate, out=out, start=_day(start), end=_day(end), excel=excel,
                only=set(providers.split(",")) if providers else None,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        rows = ", ".join(f"{n:,} {name}" for name, n in summary.rows.items())
        console.print(f"[green]Wrote[/] {summary.providers} providers, {summary.contracts} contracts: {rows}; {summary.faults:,} planted faults -> {out}")
