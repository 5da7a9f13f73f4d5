"""`cldx keys ...`: the data keys that seal identity at rest: status, rotation, purge."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Data keys: which key seals how many values, rotation, purging retired keys.", no_args_is_help=True)
console = Console()


def _open():
    from cldx.identity.vault import vault_of

    from .stores import open_configured_store

    engine = open_configured_store()
    return engine, vault_of(engine)


def _audit(engine, action: str, detail: dict) -> None:
    """Record a key change in the audit trail (cldx.access.audit), as the operator running the command."""
    import getpass

    from cldx.access.audit import record
    from cldx.store import write_transaction

    with write_transaction(engine) as session:
        record(session, actor=getpass.getuser(), action=action, target="data keys", detail=detail)


@app.command("status")
def status() -> None:
    """How many stored values each key seals (values in plain text would be listed as "not sealed")."""
    from cldx.identity.rotation import values_by_key

    engine, vault = _open()
    try:
        counts = values_by_key(engine)
    finally:
        engine.dispose()
    table = Table(title=f"Keys in {vault.keys.path}")
    table.add_column("key")
    table.add_column("values sealed", justify="right")
    table.add_column("")
    for key_id in vault.keys.key_ids:
        table.add_row(key_id, f"{counts.get(key_id, 0):,}", "current" if key_id == vault.keys.current else "retired")
    if counts.get(None):
        table.add_row("not sealed", f"{counts[None]:,}", "[red]run cldx init[/]")
    console.print(table)


@app.command("rotate")
def rotate(
    purge: bool = typer.Option(False, "--purge", help="Afterwards remove retired keys no value uses any more."),
) -> None:
    """Add a new current key and re-seal every value under it, in small batches while the service runs."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from cldx.identity.rotation import purge_unused_keys, reseal

    engine, vault = _open()
    try:
        old = vault.keys.current
        new = vault.keys.add_key()
        console.print(f"New current key {new} (was {old}); other processes pick it up from {vault.keys.path} on their next write.")
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as bar:
            task = bar.add_task("re-sealing")
            report = reseal(engine, vault, progress=lambda table, n: bar.update(task, description=f"re-sealing {table}: {n:,} rows"))
        console.print(f"[green]Re-sealed {report.resealed:,} values[/] under {new} in {report.passes} pass(es)"
                      + (f"; sealed {report.sealed_plain:,} plain values" if report.sealed_plain else "") + ".")
        _audit(engine, "key-rotation", {"old": old, "new": new, "resealed": report.resealed, "sealed_plain": report.sealed_plain})
        if purge:
            removed = purge_unused_keys(engine, vault)
            _audit(engine, "key-purge", {"removed": removed})
            console.print(f"Removed retired keys: {', '.join(removed) or 'none'}.")
        else:
            console.print("Retired keys stay in the key file so backups still open; `cldx keys purge` removes those no stored value uses.")
    finally:
        engine.dispose()


@app.command("purge")
def purge() -> None:
    """Remove retired keys that no stored value uses (values in old backups will no longer open)."""
    from cldx.identity.rotation import purge_unused_keys

    engine, vault = _open()
    try:
        removed = purge_unused_keys(engine, vault)
        _audit(engine, "key-purge", {"removed": removed})
    finally:
        engine.dispose()
    console.print(f"Removed retired keys: {', '.join(removed) or 'none (a retired key still seals values: run cldx keys rotate)'}.")
