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

        settings = get_settings()
        url = settings.sqlalchemy_url
        upgrade(url)
        engine = make_engine(url)
        try:
            with transaction(engine) as session:
                added = seed_service_lines(session)
            revision = current_revision(engine)
        finally:
            engine.dispose()
        console.print(f"[green]Database ready[/] at {settings.database_url} (schema {revision}; {added} service lines seeded).")
