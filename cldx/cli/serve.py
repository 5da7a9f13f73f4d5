"""`cldx serve`: run the web app with uvicorn."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str = typer.Option("127.0.0.1", help="Address to listen on."),
        port: int = typer.Option(8000, help="Port to listen on."),
    ) -> None:
        """Serve the web app and the API."""
        import uvicorn

        from cldx.config import get_settings
        from cldx.web.app import create_app

        settings = get_settings()
        typer.echo(f"cldx serving {settings.database_url} on http://{host}:{port}")
        typer.echo(f"Sign in at http://{host}:{port}/sign-in")
        # proxy_headers off: uvicorn would otherwise believe X-Forwarded-* from any process on
        # 127.0.0.1; create_app believes only CLDX_TRUSTED_PROXIES.
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info", proxy_headers=False)
