"""`cldx audit ...`: check the audit trail's hash chain and list its entries."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="The audit trail: check its hash chain, list who did what and when.", no_args_is_help=True)
console = Console()

HASH = re.compile(r"[0-9a-f]{64}")


def _open_store():
    from cldx.config import get_settings
    from cldx.store import make_engine

    from cldx.store.migrate import SchemaOutOfDate, require_head

    settings = get_settings()
    engine = make_engine(settings.sqlalchemy_url, default_scope="all")
    try:
        require_head(engine)
    except SchemaOutOfDate as exc:
        engine.dispose()
        Console(stderr=True).print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    return engine, ZoneInfo(settings.timezone)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option) from None


@app.command("verify")
def verify_command(
    expect_head: str | None = typer.Option(
        None, "--expect-head", metavar="HASH",
        help="A head hash printed by an earlier verify: the entry with that hash, and every entry before it, must still be intact.",
    ),
) -> None:
    """Recompute every entry's hash and check each links to the one before; exit 1 and say where if not."""
    from cldx.access.audit import verify
    from cldx.store import read_transaction

    if expect_head is not None:
        expect_head = expect_head.strip().lower()
        if not HASH.fullmatch(expect_head):
            raise typer.BadParameter("a head hash is 64 hexadecimal characters", param_hint="--expect-head")
    engine, _zone = _open_store()
    try:
        with read_transaction(engine) as session:
            result = verify(session, expect_head=expect_head)
    finally:
        engine.dispose()

    if not result.ok:
        console.print(f"[red]Audit trail broken[/]: {len(result.problems)} problem(s) in {result.count:,} entries.")
        for problem in result.problems:
            where = f"entry {problem.entry_id}" if problem.entry_id is not None else "trail"
            console.print(f"  [bold]{where}[/] [red]{problem.kind}[/]: {problem.message}")
        raise typer.Exit(1)
    if result.count == 0:
        console.print("[green]Audit trail is empty.[/]")
        return
    console.print(f"[green]Audit trail intact[/]: {result.count:,} entries, each matching its hash and linked to the one before.")
    if expect_head is not None:
        after = "it is the head" if result.expected_head_id == result.head_id else f"entries after it up to {result.head_id} are new since"
        console.print(f"Expected head found at entry {result.expected_head_id}; {after}.")
    console.print(f"Head: entry {result.head_id}, hash [bold]{result.head_hash}[/]")
    # Removing entries from the end leaves a whole chain; only a head kept elsewhere shows it.
    console.print("Keep this hash apart from the database; `cldx audit verify --expect-head HASH` later shows whether "
                  "anything up to it was removed or rewritten.", style="dim")


@app.command("list")
def list_command(
    actor: str | None = typer.Option(None, "--actor", help="Only entries by this user, token or 'system'."),
    action: str | None = typer.Option(None, "--action", help="Only entries of this action (e.g. sign-in-failed, identity-read)."),
    since: str | None = typer.Option(None, "--since", metavar="YYYY-MM-DD", help="From the start of this day (local time)."),
    until: str | None = typer.Option(None, "--until", metavar="YYYY-MM-DD", help="Up to the end of this day (local time)."),
    provider: str | None = typer.Option(None, "--provider", metavar="CODE", help="Only entries about this provider."),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many entries, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON."),
) -> None:
    """Entries newest first, filtered by who, what, when and which provider."""
    from sqlalchemy import select

    from cldx.access.audit import ACTIONS, list_events
    from cldx.store import read_transaction
    from cldx.store.models import Provider

    if action is not None and action not in ACTIONS:
        raise typer.BadParameter(f"unknown action {action!r}; one of: {', '.join(ACTIONS)}", param_hint="--action")
    first_day, last_day = _day(since, "--since"), _day(until, "--until")
    engine, zone = _open_store()
    try:
        with read_transaction(engine) as session:
            provider_id = None
            if provider is not None:
                provider_id = session.scalar(select(Provider.id).where(Provider.code == provider))
                if provider_id is None:
                    console.print(f"[red]No provider {provider!r} in the registry.[/]")
                    raise typer.Exit(2)
            events = list_events(
                session, actor=actor, action=action, provider_id=provider_id, limit=limit,
                since=datetime.combine(first_day, time(), zone) if first_day else None,
                until=datetime.combine(last_day + timedelta(days=1), time(), zone) if last_day else None,
            )
            codes = dict(session.execute(select(Provider.id, Provider.code).where(Provider.id.in_({e.provider_id for e in events if e.provider_id is not None}))).all())
    finally:
        engine.dispose()

    if as_json:
        typer.echo(json.dumps([
            {"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action, "target": e.target,
             "provider_id": e.provider_id, "provider": codes.get(e.provider_id), "purpose": e.purpose,
             "detail": json.loads(e.detail), "hash": e.hash}
            for e in events
        ], indent=2, ensure_ascii=False))
        return
    table = Table(title=f"Audit trail: {len(events)} entr{'y' if len(events) == 1 else 'ies'}, newest first")
    # Who, what and when stay whole on a narrow terminal; the free text folds.
    for column in ("id", "at", "actor", "action"):
        table.add_column(column, justify="right" if column == "id" else "left", no_wrap=True)
    for column in ("target", "provider", "purpose", "detail"):
        table.add_column(column, overflow="fold")
    for e in events:
        provider_shown = codes.get(e.provider_id) or ("" if e.provider_id is None else f"#{e.provider_id}")
        table.add_row(str(e.id), e.at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.action, e.target,
                      provider_shown, e.purpose, "" if e.detail == "{}" else e.detail)
    console.print(table)
