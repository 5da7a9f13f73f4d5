"""`cldx users ...`: add, list, disable, change roles, reset passwords and second factors.

For administrators at the server's shell; each command is one transaction through
`cldx.access.users`, recorded in the audit trail as `cli:<login name>`. Exit 0: done;
1: refused by a rule (password policy, role rules, unknown user or provider); 2: bad usage or
the store's keys cannot be read.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from cldx.access.errors import AccessError, PasswordRejected
from cldx.access.roles import PROVIDER_ROLES, ROLES, RoleError

app = typer.Typer(help="User accounts: roles, passwords and second factors.", no_args_is_help=True)
console = Console()


def actor() -> str:
    """Who the audit trail says did it: the operating-system login running the command."""
    try:
        return f"cli:{getpass.getuser()}"[:100]
    except (KeyError, OSError):  # no login name (a container with no passwd entry)
        return "cli"


@contextmanager
def opened_store() -> Iterator[tuple[object, ZoneInfo]]:
    """The configured store with its keys bound, and the zone times are shown in; exit 2 when the keys are missing."""
    from cldx.config import get_settings

    from .stores import open_configured_store

    settings = get_settings()
    engine = open_configured_store()
    try:
        yield engine, ZoneInfo(settings.timezone)
    finally:
        engine.dispose()


@contextmanager
def refusals() -> Iterator[None]:
    """Turn a refusal from the access service into its message and exit code 1."""
    try:
        yield
    except PasswordRejected as exc:
        console.print("[red]Password refused:[/]")
        for problem in exc.problems:
            console.print(f"  - {problem}")
        raise typer.Exit(1) from None
    except RoleError as exc:
        for problem in exc.problems:
            console.print(f"[red]{problem}[/]")
        raise typer.Exit(1) from None
    except AccessError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


def shown(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""


def read_password(from_stdin: bool, prompt: str = "Password") -> str:
    """A password from the first line of standard input, or typed twice without echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=True)


def _print_enrolment(username: str, uri: str) -> None:
    console.print(f"[bold]{username}'s roles need a one-time code at sign-in.[/] Add this to their authenticator app "
                  "(it is shown once; give it to them directly, never by email):")
    typer.echo(uri)


ROLE_HELP = f"A role: {', '.join(ROLES)}. Repeat for several."
PROVIDER_HELP = "The provider's code, for provider-submitter and provider-viewer (a user's provider roles are all for one provider)."


@app.command("add")
def add(
    username: str = typer.Argument(..., help="Lower-case letters, digits and . _ @ + - (an email address works)."),
    role: list[str] = typer.Option(..., "--role", help=ROLE_HELP),
    provider: str | None = typer.Option(None, "--provider", help=PROVIDER_HELP),
    display_name: str = typer.Option("", "--display-name", help="The person's name as pages show it."),
    email: str | None = typer.Option(None, "--email"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input instead of asking."),
) -> None:
    """Add a user with a password (asked twice, not echoed) and roles; prints the second-factor set-up when a role needs one."""
    from cldx.access.users import add_user, enrol_totp, second_factor_required
    from cldx.identity.vault import vault_of
    from cldx.store import write_transaction

    if provider and not PROVIDER_ROLES & set(role):
        console.print(f"[red]--provider is only for the provider roles ({', '.join(sorted(PROVIDER_ROLES))}).[/]")
        raise typer.Exit(2)
    grants = [(r, provider if r in PROVIDER_ROLES else None) for r in role]
    password = read_password(password_stdin)
    uri = None
    with opened_store() as (engine, _zone), refusals():
        with write_transaction(engine) as session:
            user = add_user(session, username, password, display_name, roles=grants, email=email, actor=actor())
            if second_factor_required(session, user):
                uri = enrol_totp(session, user, vault_of(engine).keys)
            name = user.username
    console.print(f"[green]Added {name}[/] with roles: {', '.join(_role_text(r, provider) for r in role)}.")
    if uri:
        _print_enrolment(name, uri)


def _role_text(role: str, provider: str | None) -> str:
    return f"{role} ({provider})" if provider and role in PROVIDER_ROLES else role


@app.command("list")
def list_() -> None:
    """Every user: roles (with provider codes), whether active, second factor, last sign-in."""
    from cldx.access.users import list_users
    from cldx.store import read_transaction

    with opened_store() as (engine, zone):
        with read_transaction(engine) as session:
            users = list_users(session)
    table = Table(title=f"{len(users)} user(s)")
    for column in ("username", "name", "roles", "active", "second factor", "last sign-in"):
        table.add_column(column, no_wrap=column in ("username", "roles"))
    for user in users:
        roles = "\n".join(_role_text(role, code) for role, code in user.roles) or "none"
        active = "locked" if user.is_active and user.locked else "yes" if user.is_active else "disabled"
        factor = "enrolled" if user.second_factor_enrolled else "not enrolled" if user.second_factor_required else "not needed"
        table.add_row(user.username, user.display_name, roles, active, factor, shown(user.last_sign_in_at, zone))
    console.print(table)


@app.command("disable")
def disable_(username: str = typer.Argument(...)) -> None:
    """Stop a user signing in or using their API tokens (their history stays)."""
    from cldx.access.users import disable
    from cldx.store import write_transaction

    with opened_store() as (engine, _zone), refusals():
        with write_transaction(engine) as session:
            user = disable(session, username, actor=actor())
            name = user.username
    console.print(f"Disabled {name}: they are signed out and their tokens no longer work.")


@app.command("set-role")
def set_role_(
    username: str = typer.Argument(...),
    role: str = typer.Argument(..., help=f"One of: {', '.join(ROLES)}."),
    provider: str | None = typer.Option(None, "--provider", help=PROVIDER_HELP),
    remove: bool = typer.Option(False, "--remove", help="Withdraw the role instead of granting it."),
) -> None:
    """Grant a role to a user, or withdraw it with --remove."""
    from cldx.access.users import enrol_totp, get_user, second_factor_required, set_role
    from cldx.identity.vault import vault_of
    from cldx.store import write_transaction

    uri = None
    with opened_store() as (engine, _zone), refusals():
        with write_transaction(engine) as session:
            changed = set_role(session, username, role, provider, remove=remove, actor=actor())
            user = get_user(session, username)
            if not remove and user.totp_secret is None and second_factor_required(session, user):
                uri = enrol_totp(session, user, vault_of(engine).keys)
            name = user.username
    what = _role_text(role, provider)
    if not changed:
        console.print(f"{name} already holds {what}; nothing changed.")
    else:
        console.print(f"{'Withdrew' if remove else 'Granted'} {what} {'from' if remove else 'to'} {name}.")
    if uri:
        _print_enrolment(name, uri)


@app.command("reset")
def reset(
    username: str = typer.Argument(...),
    password: bool = typer.Option(False, "--password", help="Set a new password (asked twice, not echoed)."),
    second_factor: bool = typer.Option(False, "--second-factor", help="Forget their second factor; they set up a new one at their next sign-in."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="With --password: read it from standard input."),
) -> None:
    """Reset a user's password and/or second factor; either also unlocks the account and signs them out everywhere."""
    from cldx.access.users import reset_password, reset_second_factor
    from cldx.store import write_transaction

    if not (password or second_factor):
        console.print("[red]Say what to reset: --password, --second-factor, or both.[/]")
        raise typer.Exit(2)
    new_password = read_password(password_stdin, "New password") if password else None
    with opened_store() as (engine, _zone), refusals():
        with write_transaction(engine) as session:
            if new_password is not None:
                reset_password(session, username, new_password, actor=actor())
            if second_factor:
                reset_second_factor(session, username, actor=actor())
    done = [w for w, asked in (("password", password), ("second factor", second_factor)) if asked]
    console.print(f"Reset {' and '.join(done)} for {username}; the account is unlocked and signed out everywhere.")
