"""`cldx backup` and `cldx restore`: a checked copy of the store, never with its keys (cldx.store.backup).

Each is recorded in the audit trail (`backup` in the store backed up, `restore` in the store restored).

Exit codes: 0 done (and, for restore, every check passed); 1 restored but a check failed;
2 nothing done: something could not be read or written, the backup is damaged, or the target
is not empty.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

console = Console()
errors = Console(stderr=True)


def _bar():
    """A Rich progress display and the callback cldx.store.backup reports to."""
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), console=console, transient=True)
    task = bar.add_task("starting", total=None)

    def report(description: str, done: int | None, total: int | None) -> None:
        bar.update(task, description=description, completed=done or 0, total=total)

    return bar, report


def _audit(url: str, action: str, folder: Path, detail: dict) -> None:
    """Record a backup or a restore in the audit trail of the store at `url`, as the operator running it.

    What left the building, and what came back, is the privacy officer's to see. A backup's entry
    comes after its snapshot, so the backup does not hold it; a restore's after its checks, so they
    compare the store as backed up. When the store cannot take the entry, says so and carries on:
    the backup or restore itself is done.
    """
    import getpass

    from sqlalchemy.exc import SQLAlchemyError

    from cldx.access.audit import record
    from cldx.store import make_engine, write_transaction

    engine = make_engine(url, default_scope="all")
    try:
        with write_transaction(engine) as session:
            record(session, actor=getpass.getuser()[:100], action=action, target=str(folder.resolve())[-255:], detail=detail)
    except SQLAlchemyError as exc:
        errors.print(f"[yellow]Not recorded in the audit trail[/] ({type(exc).__name__}): record the {action} by hand.")
    finally:
        engine.dispose()


def register(app: typer.Typer) -> None:
    @app.command()
    def backup(
        out_dir: Path = typer.Argument(..., help="A new or empty folder for the backup (made owner-only)."),
        keys_out: Path | None = typer.Option(
            None, "--keys-out", metavar="DIR",
            help="Also copy the key file and the linkage secret to this folder (owner-only); it must be apart from OUT_DIR.",
        ),
    ) -> None:
        """Back up the store at CLDX_DATABASE_URL: an online copy (SQLite) or pg_dump (PostgreSQL), with a manifest.

        The backup never holds the key file or the linkage secret: back those up apart.
        Exit 0: written; 2: something could not be read or written (nothing is left behind).
        """
        from cldx.access.audit import verify
        from cldx.config import get_settings
        from cldx.store.backup import BackupError, KeysNotCopied, backup as run

        settings = get_settings()
        key_files = (settings.key_file, settings.linkage_secret_file)
        bar, report = _bar()
        try:
            with bar:
                result = run(url=settings.sqlalchemy_url, out_dir=out_dir, verify_audit=verify, progress=report,
                             keys_out=keys_out, key_files=key_files if keys_out is not None else ())
        except KeysNotCopied as exc:
            errors.print(f"[red]Keys not copied:[/] {exc}")
            raise typer.Exit(2) from None
        except BackupError as exc:
            errors.print(f"[red]Backup not made:[/] {exc}")
            raise typer.Exit(2) from None
        m, facts = result.manifest, result.facts
        _audit(settings.sqlalchemy_url, "backup", result.folder, {
            "dump_sha256": m["dump"]["sha256"], "tables": len(facts.tables), "rows": facts.total_rows,
            "audit_entries": facts.audit_entries, "keys_copied": bool(result.keys_copied)})
        console.print(f"[green]Backed up[/] {m['source']} (schema {m['schema_revision']}) to {result.folder}")
        console.print(f"  dump      {result.dump.name}: {m['dump']['bytes']:,} bytes, SHA-256 {m['dump']['sha256']} ({m['tool']})")
        console.print(f"  tables    {len(facts.tables)} tables, {facts.total_rows:,} rows, each counted and hashed in manifest.json")
        chain = "intact" if facts.audit_intact else f"[red]BROKEN[/] ({len(facts.audit_problems)} problem(s); run cldx audit verify)"
        console.print(f"  audit     {facts.audit_entries:,} entries, head {facts.audit_head_hash or '-'}, chain {chain}")
        console.print(f"[yellow]The backup holds no keys[/]: neither the key file ({settings.key_file}) nor the linkage secret "
                      f"({settings.linkage_secret_file}) is in it.")
        if result.keys_copied:
            console.print(f"Copied them to {result.keys_copied[0].parent} (owner-only). Keep that copy apart from the backup: "
                          "whoever has both can read every name.")
        else:
            console.print("Back them up apart from this folder (or use --keys-out DIR): without them a restored store's names "
                          "cannot be read and new records no longer link.")

    @app.command()
    def restore(
        backup_dir: Path = typer.Argument(..., help="A folder written by cldx backup."),
        force: bool = typer.Option(
            False, "--force",
            help="SQLite only: replace a store that already holds tables. PostgreSQL restores only into an empty database.",
        ),
    ) -> None:
        """Restore a backup into the empty store at CLDX_DATABASE_URL and check it against the backup's manifest.

        The dump's SHA-256 is checked first; afterwards row counts, every table's content hash,
        the schema revision and the audit chain. Put the key file and linkage secret back apart.
        Exit 0: restored and checked; 1: restored but a check failed; 2: nothing restored.
        """
        from cldx.access.audit import verify
        from cldx.config import get_settings
        from cldx.store.backup import BackupError, restore as run
        from cldx.store.migrate import head_revision

        settings = get_settings()
        bar, report = _bar()
        try:
            with bar:
                result = run(url=settings.sqlalchemy_url, backup_dir=backup_dir, verify_audit=verify, force=force, progress=report)
        except BackupError as exc:
            errors.print(f"[red]Not restored:[/] {exc}")
            raise typer.Exit(2) from None
        m, facts = result.manifest, result.facts
        failed = [c for c in result.checks if not c.ok]
        _audit(settings.sqlalchemy_url, "restore", Path(backup_dir), {
            "source": m["source"], "backed_up_at": m["created_at"], "dump_sha256": m["dump"]["sha256"],
            "checks_differing": [c.what for c in failed]})
        console.print(f"Restored the backup of {m['source']} made {m['created_at']} (cldx {m['cldx_version']}) into {settings.database_url}.")
        console.print(f"  [green]ok[/]  dump SHA-256 {m['dump']['sha256']} matches the manifest")
        tables = [c for c in result.checks if c.what.endswith(" rows")]
        hashes = [c for c in result.checks if c.what.endswith(" content SHA-256")]
        for label, group in (
            (f"schema revision {facts.schema_revision}", [c for c in result.checks if c.what in ("schema revision", "tables")]),
            (f"row counts of all {len(tables)} tables ({facts.total_rows:,} rows)", tables),
            (f"content SHA-256 of all {len(hashes)} tables", hashes),
            (f"audit chain: {'intact' if facts.audit_intact else 'broken, as it was when backed up'}, "
             f"{facts.audit_entries:,} entries, head {facts.audit_head_hash or '-'}", [c for c in result.checks if c.what.startswith("audit")]),
        ):
            ok = all(c.ok for c in group)
            console.print(f"  {'[green]ok[/]' if ok else '[red]DIFFERS[/]'}  {label} {'equal to the manifest' if ok else ''}".rstrip())
        for check in failed:
            console.print(f"      [red]{check.what}[/]: manifest {check.expected}, restored {check.found}")
        _keys_note(settings)
        if facts.schema_revision != head_revision():
            console.print(f"The restored schema is {facts.schema_revision}, this cldx uses {head_revision()}: run `cldx init` to upgrade it.")
        if failed:
            console.print(f"[red]{len(failed)} check(s) differ from the manifest[/]: the restored store is not the one backed up.")
            raise typer.Exit(1)


def _keys_note(settings) -> None:
    """Say whether the key file in place opens the restored store's sealed values; the keys come back apart."""
    from cldx.identity.rotation import values_by_key
    from cldx.identity.vault import KeysUnavailable, KeyRing, read_linkage_secret
    from cldx.store import make_engine

    try:
        ring = KeyRing(settings.key_file)
        read_linkage_secret(settings.linkage_secret_file)
    except KeysUnavailable as exc:
        console.print(f"[yellow]Keys not in place[/]: {exc}. Put the key file and linkage secret back from where they were "
                      "backed up apart (CLDX_KEY_FILE, CLDX_LINKAGE_SECRET_FILE): without them names cannot be read.")
        return
    engine = make_engine(settings.sqlalchemy_url, default_scope="all")
    try:
        used = {key for key in values_by_key(engine) if key is not None}
    except Exception as exc:  # a schema this cldx does not know: say so, the restore itself stands
        console.print(f"[yellow]Could not check the keys against the restored store[/]: {exc}")
        return
    finally:
        engine.dispose()
    missing = sorted(used - set(ring.key_ids))
    if missing:
        console.print(f"[yellow]The key file {settings.key_file} lacks key(s) {', '.join(missing)}[/] that restored values are "
                      "sealed under: put back the key file kept with this backup.")
    else:
        console.print(f"  [green]ok[/]  the key file {settings.key_file} holds every key the restored values are sealed under")
