"""`cldx init`: create or upgrade the store's schema and seed what every deployment starts with."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()


def register(app: typer.Typer) -> None:
    @app.command()
    def init() -> None:
        """Create or upgrade the database at CLDX_DATABASE_URL and seed the brief's six service lines."""
        from cldx.config import get_settings
        from cldx.store import make_engine, transaction
        from cldx.store.migrate import current_revision, upgrade
        from cldx.store.registry import seed_service_lines

        from cldx.identity.rotation import reseal
        from cldx.identity.vault import bind_vault, ensure_key_files, open_vault

        settings = get_settings()
        for path in ensure_key_files(settings.key_file, settings.linkage_secret_file):
            console.print(f"[yellow]Created {path}[/] (owner-only). Back it up apart from the database: without it identity cannot be read or linked.")
        url = settings.sqlalchemy_url
        upgrade(url)
        engine = make_engine(url)
        try:
            vault = open_vault(settings.key_file, settings.linkage_secret_file)
            bind_vault(engine, vault)
            with transaction(engine) as session:
                added = seed_service_lines(session)
            revision = current_revision(engine)
            # A store upgraded from before sealing holds identity in plain text: seal it now.
            report = reseal(engine, vault)
        finally:
            engine.dispose()
        console.print(f"[green]Database ready[/] at {settings.database_url} (schema {revision}; {added} service lines seeded).")
        if report.sealed_plain:
            console.print(f"Sealed {report.sealed_plain:,} identity values an earlier version stored in plain text.")
