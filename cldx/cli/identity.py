"""`cldx deidentify` and `cldx linkage summary`: identity at the source, and what links."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)
linkage_app = typer.Typer(help="Linkage and consent: how many clients link across providers and service lines; who was notified.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    @app.command()
    def deidentify(
        files: list[Path] = typer.Argument(..., help="The provider's CSV files of the standard (clients.csv, dependants.csv, ...).", exists=True, dir_okay=False),
        out: Path = typer.Option(..., "--out", help="Folder for the de-identified files (same names); nothing else is written there."),
    ) -> None:
        """Remove names and exact dates of birth on this machine, adding slk581 and birth_year_month.

        For providers set to send no identity: send the files written to --out. Exit 0 when every
        row was keyed, 1 when some rows could not be (listed by row, never by value), 2 when a file
        cannot be read.
        """
        from cldx.identity.deidentify import UnreadableCsv, deidentify_csv

        results = []
        for path in files:
            if path.suffix.lower() != ".csv":
                errors.print(f"[red]{path.name}: only CSV files can be de-identified.[/] Save each sheet of the workbook as \"CSV UTF-8\" first.")
                raise typer.Exit(2)
            try:
                results.append((path.name, deidentify_csv(path.read_bytes())))
            except OSError as exc:
                errors.print(f"[red]Cannot read {path}: {exc.strerror}.[/]")
                raise typer.Exit(2) from None
            except UnreadableCsv as exc:
                errors.print(f"[red]{path.name}: {exc}.[/] Save it again from Excel as \"CSV UTF-8\".")
                raise typer.Exit(2) from None
        if len({name for name, _ in results}) != len(results):
            errors.print("[red]Two input files have the same name; the output would overwrite one.[/]")
            raise typer.Exit(2)
        out.mkdir(parents=True, exist_ok=True)
        problems = 0
        for name, result in results:
            (out / name).write_text(result.text, encoding="utf-8", newline="")
            console.print(f"{name}: {result.rows:,} rows written to {out / name}")
            for problem in result.problems:
                errors.print(f"  [yellow]{name} {problem}[/]")
            problems += len(result.problems)
        raise typer.Exit(1 if problems else 0)

    app.add_typer(linkage_app, name="linkage")


def _read(count):
    """`count(connection)` in one read transaction on the configured store (counts need no keys)."""
    from cldx.config import get_settings
    from cldx.store import make_engine, read_transaction
    from cldx.store.migrate import SchemaOutOfDate, require_head

    engine = make_engine(get_settings().sqlalchemy_url, default_scope="all")
    try:
        require_head(engine)
        with read_transaction(engine) as session:
            return count(session.connection())
    except SchemaOutOfDate as exc:
        errors.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    finally:
        engine.dispose()


@linkage_app.command("summary")
def summary() -> None:
    """Counts of clients, persons and persons linked across providers and across service lines."""
    from cldx.identity.linkage import linkage_summary

    result = _read(linkage_summary)
    table = Table(title="Linkage (counts only; no pseudonym leaves the store)")
    table.add_column("")
    table.add_column("count", justify="right")
    for label, value in (
        ("client records", result.clients),
        ("with a pseudonym", result.keyed),
        ("without (identity declined: linked only by the provider's reference)", result.unlinked),
        ("distinct persons", result.persons),
        ("persons seen by two or more providers", result.across_providers),
        ("persons in two or more service lines", result.across_service_lines),
    ):
        table.add_row(label, f"{value:,}")
    console.print(table)
    if result.by_service_line_pair:
        pairs = Table(title="Persons in both service lines")
        for column in ("service line", "and", "persons"):
            pairs.add_column(column, justify="right" if column == "persons" else "left")
        for a, b, n in result.by_service_line_pair:
            pairs.add_row(a, b, f"{n:,}")
        console.print(pairs)


@linkage_app.command("notifications")
def notifications(
    only_missing: bool = typer.Option(False, "--only-missing", help="List only providers with clients not notified."),
) -> None:
    """Per provider: clients, clients not told their data is shared with the ministry, clients who declined identity."""
    from cldx.identity.consent import notification_counts

    rows = _read(notification_counts)
    table = Table(title="Notification of sharing and declined identity, by provider")
    for column in ("provider", "clients", "not notified", "notified", "declined identity"):
        table.add_column(column, justify="left" if column == "provider" else "right")
    for row in rows:
        if only_missing and not row.not_notified:
            continue
        table.add_row(row.provider, f"{row.clients:,}", f"{row.not_notified:,}", f"{row.notified_share:.1%}", f"{row.declined_identity:,}")
    console.print(table)
