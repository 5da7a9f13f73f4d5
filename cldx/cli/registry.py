"""`cldx registry ...`: load the ministry's providers, service lines and contracts."""

from __future__ import annotations

import typer

app = typer.Typer(help="The ministry's registry of providers, service lines and contracts.", no_args_is_help=True)
