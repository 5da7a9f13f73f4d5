"""The `cldx` command: one Typer app with a sub-app or command per part."""

from __future__ import annotations

import typer

from cldx import __version__

from . import audit as audit_cmd
from . import backup as backup_cmd
from . import demo as demo_cmd
from . import export as export_cmd
from . import generate as generate_cmd
from . import identity as identity_cmd
from . import keys as keys_cmd
from . import privacy as privacy_cmd
from . import registry as registry_cmd
from . import report as report_cmd
from . import retention as retention_cmd
from . import rules as rules_cmd
from . import serve as serve_cmd
from . import standard as standard_cmd
from . import store as store_cmd
from . import submit as submit_cmd
from . import tokens as tokens_cmd
from . import users as users_cmd
from . import worker as worker_cmd

app = typer.Typer(
    name="cldx",
    help="Client-Level Data eXchange: collect providers' client-level records, keep identity apart, report safely.",
    no_args_is_help=True,
    add_completion=False,
)
store_cmd.register(app)
backup_cmd.register(app)
serve_cmd.register(app)
worker_cmd.register(app)
generate_cmd.register(app)
submit_cmd.register(app)
demo_cmd.register(app)
identity_cmd.register(app)
report_cmd.register(app)
app.add_typer(report_cmd.analytic_app, name="analytic")
app.add_typer(standard_cmd.app, name="standard")
app.add_typer(registry_cmd.app, name="registry")
app.add_typer(rules_cmd.app, name="rules")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(privacy_cmd.app, name="privacy")
app.add_typer(users_cmd.app, name="users")
app.add_typer(tokens_cmd.app, name="tokens")
app.add_typer(export_cmd.app, name="export")
app.add_typer(retention_cmd.app, name="retention")


@app.command()
def version() -> None:
    """Print the cldx version."""
    typer.echo(__version__)


if __name__ == "__main__":  # pragma: no cover
    app()
