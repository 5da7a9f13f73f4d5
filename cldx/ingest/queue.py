"""The work queue: large submissions wait in the database until a worker takes them.

The queue is two tables (`job`, `job_file`) in the store itself, so the embedded SQLite
default needs no other service, and several workers can share one PostgreSQL (they claim
jobs with `FOR UPDATE SKIP LOCKED`). A job whose worker died is taken again once its lock is
older than `STALE_AFTER`; the submission is stored in one transaction with the job's
completion, so a retried job never stores anything twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, or_, select, update

from cldx.standard import STANDARD_VERSION
from cldx.store import read_transaction, write_transaction
from cldx.store.models import Job, JobFile, Provider, Submission
from cldx.identity.vault import vault_of
from cldx.store.scope import set_scope

from .sources import SourceFile
from .submit import UnknownProvider, current_period, provider_id_for, submit

logger = logging.getLogger("cldx.queue")
STALE_AFTER = timedelta(minutes=10)
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Progress:
    status: str
    step: str
    done: int
    total: int
    error: str | None


JOB_FILE_PLACE = "job_file.data"  # the associated data sealed queued files are bound to


def enqueue(engine: Engine, *, provider: str, files: list[SourceFile], period: str | None, mode: str, submitter: str, channel: str) -> str:
    """Record a queued submission and its files; return the submission id at once."""
    now = datetime.now(timezone.utc)
    submission_id = str(uuid.uuid4())
    with write_transaction(engine) as session:
        provider_id = provider_id_for(session, provider)
        set_scope(session.connection(), provider_id=provider_id)
        session.add(Submission(
            id=submission_id, provider_id=provider_id, period=period or current_period(now), received_at=now, submitter=submitter,
            channel=channel, status="queued", mode=mode, standard_version=STANDARD_VERSION,
        ))
        session.flush()
        job = Job(submission_id=submission_id, status="queued", progress_total=sum(len(f.data) for f in files), progress_step="waiting for a worker")
        session.add(job)
        session.flush()
        # A queued upload holds names and dates of birth: it waits sealed.
        keys = vault_of(engine).keys
        session.add_all(JobFile(job_id=job.id, file_name=f.name, data=keys.seal_bytes(f.data, JOB_FILE_PLACE)) for f in files)
    return submission_id


def progress(engine: Engine, submission_id: str) -> Progress | None:
    with read_transaction(engine) as session:
        job = session.scalar(select(Job).where(Job.submission_id == submission_id))
        if job is None:
            return None
        return Progress(job.status, job.progress_step, job.progress_done, job.progress_total, job.error)


def _claim(engine: Engine, worker: str) -> Job | None:
    now = datetime.now(timezone.utc)
    takeable = or_(Job.status == "queued", (Job.status == "running") & (Job.locked_at < now - STALE_AFTER))
    with write_transaction(engine) as session:
        set_scope(session.connection(), everything=True)  # the worker takes any provider's job
        query = select(Job).where(takeable, Job.attempts < MAX_ATTEMPTS).order_by(Job.id).limit(1)
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        job = session.scalar(query)
        if job is None:
            return None
        job.status, job.locked_by, job.locked_at = "running", worker, now
        job.attempts += 1
        job.progress_step = "validating and storing"
        session.execute(update(Submission).where(Submission.id == job.submission_id).values(status="processing"))
        session.flush()
        return job


def _fail(engine: Engine, job_id: int, message: str) -> None:
    with write_transaction(engine) as session:
        set_scope(session.connection(), everything=True)
        job = session.get(Job, job_id)
        job.error = message
        if job.attempts >= MAX_ATTEMPTS:
            job.status = "failed"
            session.execute(update(Submission).where(Submission.id == job.submission_id).values(status="failed", error=message))
        else:
            job.status = "queued"


def work_once(engine: Engine, worker: str | None = None) -> bool:
    """Take one job and finish it; False when the queue is empty."""
    worker = worker or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    job = _claim(engine, worker)
    if job is None:
        return False
    with read_transaction(engine) as session:
        set_scope(session.connection(), everything=True)
        submission = session.get(Submission, job.submission_id)
        keys = vault_of(engine).keys
        files = [SourceFile(f.file_name, keys.open_bytes(f.data, JOB_FILE_PLACE))
                 for f in session.scalars(select(JobFile).where(JobFile.job_id == job.id).order_by(JobFile.id))]
        provider_code = session.scalar(select(Provider.code).where(Provider.id == submission.provider_id))
        args = dict(period=submission.period, mode=submission.mode, submitter=submission.submitter, channel=submission.channel,
                    received_at=submission.received_at)
    try:
        submit(engine, provider=provider_code, files=files, submission_id=job.submission_id, finish_job=job.id, **args)
    except UnknownProvider as exc:
        _fail(engine, job.id, str(exc))
    except Exception as exc:  # noqa: BLE001 - a failed job is recorded and retried, never lost
        logger.exception("job %s failed", job.id)
        _fail(engine, job.id, f"{type(exc).__name__} while processing; the submission will be retried")
    return True


class Worker(threading.Thread):
    """A background thread that works the queue until stopped (the web app runs one)."""

    def __init__(self, engine: Engine, poll_seconds: float = 1.0) -> None:
        super().__init__(name="cldx-worker", daemon=True)
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                busy = work_once(self.engine)
            except Exception:  # noqa: BLE001 - the worker must outlive one bad job
                logger.exception("queue worker error")
                busy = False
            if not busy:
                self.stopping.wait(self.poll_seconds)

    def stop(self) -> None:
        self.stopping.set()
