"""`cldx tokens ...`: issue, revoke and list API tokens.

A system token is for one provider's case system; a personal token is a user's own and acts
with that user's roles. The token is printed once when issued and never stored: lists show
only its first characters. Exit codes as for `cldx users`.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import typer
from rich.table import Table

from cldx.cli.users import actor, console, opened_store, refusals, shown

app = typer.Typer(help="API tokens: system tokens for providers' systems, personal tokens for users.", no_args_is_help=True)


@app.command("issue")
def issue_(
    name: str = typer.Option(..., "--name", help="What uses the token (e.g. the provider's case system)."),
    provider: str | None = typer.Option(None, "--provider", help="A system token for this provider's systems."),
    user: str | None = typer.Option(None, "--user", help="A personal token for this user, acting with their roles."),
    expires_days: int | None = typer.Option(None, "--expires-days", min=1, help="Stop working after this many days (default: never)."),
) -> None:
    """Issue a token and print it once."""
    from cldx.access.tokens import PERSONAL, SYSTEM, issue
    from cldx.access.users import get_user, provider_id_for
    from cldx.store import write_transaction

    if (provider is None) == (user is None):
        console.print("[red]Give exactly one of --provider CODE (a system token) or --user USERNAME (a personal token).[/]")
        raise typer.Exit(2)
    now = datetime.now(timezone.utc)
    expires_at = now + timedelta(days=expires_days) if expires_days else None
    with opened_store() as (engine, zone), refusals():
        with write_transaction(engine) as session:
            if provider is not None:
                token, plaintext = issue(session, SYSTEM, name, actor(), provider_id=provider_id_for(session, provider),
                                         expires_at=expires_at, now=now)
                owner = f"provider {provider}"
            else:
                owner_user = get_user(session, user)
                token, plaintext = issue(session, PERSONAL, name, actor(), user_id=owner_user.id, expires_at=expires_at, now=now)
                owner = f"user {owner_user.username}"
            token_id = token.id
    console.print(f"[green]Issued token {token_id}[/] {name!r} for {owner}"
                  + (f", expiring {shown(expires_at, zone)}" if expires_at else "") + ":")
    typer.echo(plaintext)
    console.print("[yellow]Copy it now: it is not stored and will not be shown again.[/]")


@app.command("revoke")
def revoke_(token_id: int = typer.Argument(..., metavar="ID", help="The token's id, from `cldx tokens list`.")) -> None:
    """Stop a token working from now on."""
    from cldx.access.tokens import revoke
    from cldx.store import write_transaction

    with opened_store() as (engine, _zone), refusals():
        with write_transaction(engine) as session:
            token = revoke(session, token_id, actor=actor())
            name = token.name
    console.print(f"Revoked token {token_id} {name!r}.")


@app.command("list")
def list_(active: bool = typer.Option(False, "--active", help="Leave out revoked tokens.")) -> None:
    """Every token: its first characters, kind, owner, and when it was created, last used and revoked (never the token)."""
    from cldx.access.tokens import list_tokens
    from cldx.store import read_transaction

    with opened_store() as (engine, zone):
        with read_transaction(engine) as session:
            tokens = list_tokens(session, include_revoked=not active)
    table = Table(title=f"{len(tokens)} token(s)")
    # A token is recognised by its first characters, so that column never wraps or shortens.
    for column in ("id", "name", "kind", "owner", "starts", "created", "expires", "last used", "revoked"):
        table.add_column(column, no_wrap=column in ("id", "kind", "owner", "starts"))
    for t in tokens:
        table.add_row(str(t.id), t.name, t.kind, t.owner, t.prefix + "...", shown(t.created_at, zone), shown(t.expires_at, zone),
                      shown(t.last_used_at, zone) or "never", shown(t.revoked_at, zone))
    console.print(table)
