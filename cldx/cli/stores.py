"""Opening the configured store from a command: the one place that turns "cannot open it" into exit 2."""

from __future__ import annotations

import typer
from rich.console import Console

_errors = Console(stderr=True)


def open_configured_store():
    """The engine on CLDX_DATABASE_URL with its keys bound; a missing key file or an old schema exits 2 with why."""
    from cldx.config import get_settings
    from cldx.identity.vault import KeysUnavailable, open_store
    from cldx.store.migrate import SchemaOutOfDate

    try:
        return open_store(get_settings())
    except (KeysUnavailable, SchemaOutOfDate) as exc:
        _errors.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
