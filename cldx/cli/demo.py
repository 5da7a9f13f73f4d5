"""`cldx demo`: load the realistic demo data set through the providers' own path."""

from __future__ import annotations

import multiprocessing
import secrets
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        clients: int = typer.Option(20_000, "--clients", help="Client persons in the demo roll-out."),
        seed: int = typer.Option(2016, "--seed", help="Generator seed."),
        fault_rate: float = typer.Option(0.005, "--fault-rate", help="Share of records with a realistic fault, so data quality has something to show."),
        data: Path = typer.Option(Path("demo-data"), "--data", help="Where the generated provider files are written."),
        workers: int = typer.Option(2, "--workers", min=1, help="Processes replaying providers in parallel."),
    ) -> None:
        """Generate the demo roll-out and replay its two years of monthly submissions (once: skipped when data is loaded)."""
        from sqlalchemy import func, select

        from cldx.config import get_settings
        from cldx.generator.generate import generate
        from cldx.ingest.registry import import_registry
        from cldx.ingest.replay import read_schedule, replay_provider
        from cldx.store import make_engine, read_transaction
        from cldx.store.models import Submission

        settings = get_settings()
        engine = make_engine(settings.sqlalchemy_url)
        with read_transaction(engine) as session:
            already = session.scalar(select(func.count()).select_from(Submission))
        if already:
            console.print(f"The demo data is already loaded ({already:,} submissions); delete the database to load it again.")
            _show_accounts(data)
            engine.dispose()
            return
        with console.status(f"Generating {clients:,} clients into {data}/ ..."):
            generate(clients=clients, seed=seed, fault_rate=fault_rate, out=data)
        report = import_registry(engine, data / "registry")
        engine.dispose()
        imported = ", ".join(f"{f.counts['new']} new in {f.file}" for f in report.files)
        console.print(f"Registry: {imported}.")

        schedule = read_schedule(data)
        totals: dict[str, int] = {}
        with Progress(TextColumn("replaying monthly submissions"), BarColumn(), MofNCompleteColumn(), TextColumn("providers"),
                      TimeElapsedColumn(), console=console) as bar, \
                ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            # spawn, not fork: a forked child inherits Polars' thread pool locked and hangs.
            task = bar.add_task("replay", total=len(schedule))
            futures = [pool.submit(replay_provider, settings, str(data), provider, rows) for provider, rows in schedule.items()]
            for future in as_completed(futures):
                for key, value in future.result().items():
                    totals[key] = totals.get(key, 0) + value
                bar.advance(task)
        console.print(
            f"[green]Demo loaded:[/] {totals.get('submissions', 0):,} submissions; {totals.get('new', 0):,} records new, "
            f"{totals.get('changed', 0):,} changed, {totals.get('rejected', 0):,} rejected (planted faults and what hangs off them)."
        )
        make_demo_accounts(settings, data / ACCOUNTS_FILE, sorted(schedule)[:DEMO_PROVIDERS])
        _request_demo_extract(settings)
        _build_analytic_layer(settings)
        _show_accounts(data)


ACCOUNTS_FILE = "accounts.txt"
DEMO_PROVIDERS = 3  # providers that get a submitter and a viewer account
# (username, roles as (role, provider or None)); provider accounts are added per demo provider.
MINISTRY_ACCOUNTS = (
    ("admin", (("administrator", None),)),
    ("analyst", (("analyst", None),)),
    ("researcher", (("analyst", None), ("research-requester", None))),
    ("privacy", (("privacy-officer", None),)),
)


def make_demo_accounts(settings, path: Path, providers: list[str]) -> None:
    """One account per role (and a submitter and viewer for a few providers), written to `path` (owner-only).

    Passwords are random for each demo database; ministry roles get their second factor here,
    so the file also holds each one's TOTP secret (a demo convenience: real users enrol their own).
    """
    from urllib.parse import parse_qs, urlparse

    from cldx.access.users import add_user, enrol_totp
    from cldx.identity.vault import open_store, vault_of
    from cldx.store import write_transaction

    accounts = list(MINISTRY_ACCOUNTS) + [
        (f"{code.lower()}.{kind}", ((f"provider-{kind}", code),)) for code in providers for kind in ("submitter", "viewer")
    ]
    engine = open_store(settings)
    lines = ["# cldx demo accounts: sign in at http://127.0.0.1:8000/sign-in", "# username  password  roles  [TOTP secret]"]
    try:
        with write_transaction(engine) as session:
            for username, roles in accounts:
                password = secrets.token_urlsafe(12)
                add_user(session, username, password, roles=roles, actor="demo")
                secret = ""
                if any(role in ("administrator", "analyst", "research-requester", "privacy-officer") for role, _ in roles):
                    uri = enrol_totp(session, username, vault_of(engine).keys)
                    secret = parse_qs(urlparse(uri).query)["secret"][0]
                shown = ",".join(role + (f"@{code}" if code else "") for role, code in roles)
                lines.append(f"{username}  {password}  {shown}  {secret}".rstrip())
    finally:
        engine.dispose()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


def _request_demo_extract(settings) -> None:
    """A research extract the researcher has asked for, waiting for the privacy officer's decision."""
    from sqlalchemy import select

    from cldx.export.research import request_extract
    from cldx.identity.vault import open_store
    from cldx.store import write_transaction
    from cldx.store.models import User

    engine = open_store(settings)
    try:
        with write_transaction(engine) as session:
            researcher = session.scalar(select(User).where(User.username == "researcher"))
            request_extract(session, actor="researcher", user_id=researcher.id if researcher else None, period="2016-07:2017-06",
                            purpose="Family Start and Social Workers in Schools outcomes by region and ethnicity in the "
                                    "first year of the roll-out, for the ministry's evaluation in the IDI.")
    finally:
        engine.dispose()


def _build_analytic_layer(settings) -> None:
    """Build the reports' analytic layer now, so the first report page opens at once."""
    from cldx.analysis.layer import layer_for
    from cldx.identity.vault import open_store

    engine = open_store(settings)
    try:
        with Progress(TextColumn("building the analytic layer"), BarColumn(), MofNCompleteColumn(), TextColumn("providers"),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("layer", total=None)
            layer_for(settings.analytic_dir, engine).refresh(progress=lambda done, total: bar.update(task, completed=done, total=total))
    finally:
        engine.dispose()


def _show_accounts(data: Path) -> None:
    path = data / ACCOUNTS_FILE
    if path.exists():
        # Plain print, not the Rich console: a console wraps long lines at the terminal's width,
        # which would split a TOTP secret over two lines for someone to copy.
        print(f"Demo accounts (also in {path}). Ministry roles also give a one-time code: "
              "`.venv/bin/python -c \"import pyotp; print(pyotp.TOTP('SECRET').now())\"`")
        print(path.read_text(encoding="utf-8"), end="", flush=True)
