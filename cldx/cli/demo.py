"""`cldx demo`: load the realistic demo data set through the providers' own path."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        clients: int = typer.Option(20_000, "--clients", help="Client persons in the demo roll-out."),
        seed: int = typer.Option(2016, "--seed", help="Generator seed."),
        fault_rate: float = typer.Option(0.005, "--fault-rate", help="Share of records with a realistic fault, so data quality has something to show."),
        data: Path = typer.Option(Path("demo-data"), "--data", help="Where the generated provider files are written."),
        workers: int = typer.Option(2, "--workers", min=1, help="Processes replaying providers in parallel."),
    ) -> None:
        """Generate the demo roll-out and replay its two years of monthly submissions (once: skipped when data is loaded)."""
        from sqlalchemy import func, select

        from cldx.config import get_settings
        from cldx.generator.generate import generate
        from cldx.ingest.registry import import_registry
        from cldx.ingest.replay import read_schedule, replay_provider
        from cldx.store import make_engine, read_transaction
        from cldx.store.models import Submission

        settings = get_settings()
        engine = make_engine(settings.sqlalchemy_url)
        with read_transaction(engine) as session:
            already = session.scalar(select(func.count()).select_from(Submission))
        if already:
            console.print(f"The demo data is already loaded ({already:,} submissions); delete the database to load it again.")
            engine.dispose()
            return
        with console.status(f"Generating {clients:,} clients into {data}/ ..."):
            generate(clients=clients, seed=seed, fault_rate=fault_rate, out=data)
        report = import_registry(engine, data / "registry")
        engine.dispose()
        imported = ", ".join(f"{f.counts['new']} new in {f.file}" for f in report.files)
        console.print(f"Registry: {imported}.")

        schedule = read_schedule(data)
        totals: dict[str, int] = {}
        with Progress(TextColumn("replaying monthly submissions"), BarColumn(), MofNCompleteColumn(), TextColumn("providers"),
                      TimeElapsedColumn(), console=console) as bar, \
                ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            # spawn, not fork: a forked child inherits Polars' thread pool locked and hangs.
            task = bar.add_task("replay", total=len(schedule))
            futures = [pool.submit(replay_provider, settings, str(data), provider, rows) for provider, rows in schedule.items()]
            for future in as_completed(futures):
                for key, value in future.result().items():
                    totals[key] = totals.get(key, 0) + value
                bar.advance(task)
        console.print(
            f"[green]Demo loaded:[/] {totals.get('submissions', 0):,} submissions; {totals.get('new', 0):,} records new, "
            f"{totals.get('changed', 0):,} changed, {totals.get('rejected', 0):,} rejected (planted faults and what hangs off them)."
        )
