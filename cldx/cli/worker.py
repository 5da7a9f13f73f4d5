"""`cldx worker`: work the submission queue in a process of its own (beside or instead of the web app's embedded worker)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        once: bool = typer.Option(False, "--once", help="Work until no job can be taken, then exit."),
        poll: float = typer.Option(1.0, "--poll", min=0.05, metavar="SECONDS", help="Seconds between looks at an empty queue."),
    ) -> None:
        """Work the upload queue until SIGTERM or SIGINT; the job in hand is finished first.

        Logs job ids and outcomes to standard error, never record contents. Exit 0 when stopped
        or (--once) when no job is left to take; 1 when --once ends on an error; 2 when the store
        cannot be opened. A second signal ends the process at once, which is safe too: a job is
        stored whole or not at all, and an unfinished one is taken again.
        """
        import logging
        import signal
        import threading
        from datetime import timedelta

        from cldx.config import get_settings
        from cldx.ingest.queue import where_raised, work, worker_id

        from .stores import open_configured_store

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)  # its schema check's chatter says nothing about jobs
        log = logging.getLogger("cldx.worker")
        settings = get_settings()
        engine = open_configured_store()
        stop = threading.Event()

        def on_signal(signum: int, _frame) -> None:
            log.info("%s: stopping after the job in hand", signal.Signals(signum).name)
            # From another thread: Event.set() here could wait for the lock the interrupted wait() holds.
            threading.Thread(target=stop.set).start()
            signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        stale = timedelta(seconds=settings.job_stale_seconds)
        log.info("worker %s on %s (%s; poll %.2g s; a lock not refreshed for %g s is taken over)", worker_id(),
                 engine.url.render_as_string(hide_password=True), "until no job is left to take" if once else "until stopped",
                 poll, stale.total_seconds())
        try:
            taken = work(engine, stop=stop, poll_seconds=poll, stale_after=stale, once=once)
        except Exception as exc:  # noqa: BLE001 - only --once raises: say what and where, never a record
            log.error("worker stopped by %s at %s", type(exc).__name__, where_raised(exc))
            raise typer.Exit(1) from None
        finally:
            engine.dispose()
        log.info("worker %s stopped after %d job(s)", worker_id(), taken)
