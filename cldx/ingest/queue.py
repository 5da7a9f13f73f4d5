"""The work queue: large submissions wait in the database until a worker takes them.

The queue is two tables (`job`, `job_file`) in the store itself, so the embedded SQLite
default needs no other service, and several workers can share one PostgreSQL (they claim
jobs with `FOR UPDATE SKIP LOCKED`). The submission is stored in one transaction with the
job's completion, so a job retried after a crash never stores anything twice.

A worker that dies (killed, out of memory, its machine gone) leaves its job "running"; it is
taken back at once by a worker on the same host when the process named in the lock (worker
ids are host:pid:thread) no longer exists, and by any worker once the lock is older than
`stale_after` (CLDX_JOB_STALE_SECONDS). A worker refreshes its lock while it works (a
heartbeat), so only a dead or hung worker's lock goes stale. A worker completes or fails a job
only while it still holds the lock, so one that was thought dead but was only slow cannot store
a submission a second time: its transaction is rolled back (JobLost).

A provider's jobs are stored in the order they were queued, since a later submission may
change or withdraw what an earlier one stored: a job waits while an earlier job of its provider
is queued or running. Jobs taken back from a dead worker come after fresh ones.

`attempts` counts attempts that ended in an error; the job fails after MAX_ATTEMPTS. A worker's
death is not counted: a deploy, a restart or a lost machine says nothing against the job, and
counting them would fail good submissions after a few restarts. The price is that a job that
itself kills every worker taking it would be taken again for ever; it is taken only after
every fresh job, holds up only its own provider's later jobs, and each take-back is logged as
a warning. (Bounding that needs a count of take-backs, a column of its own.)
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine, case, exists, or_, select, update
from sqlalchemy.orm import aliased

from cldx.standard import STANDARD_VERSION
from cldx.store import read_transaction, write_transaction
from cldx.store.models import Job, JobFile, Provider, Submission
from cldx.identity.vault import vault_of
from cldx.store.scope import set_scope

from .sources import SourceFile
from .submit import JobLost, Receipt, UnknownProvider, current_period, provider_id_for, submit

logger = logging.getLogger("cldx.queue")
STALE_AFTER = timedelta(seconds=60)  # the default of CLDX_JOB_STALE_SECONDS
MAX_ATTEMPTS = 3
# A worker's lock is refreshed every quarter of the stale time, and at least this often: a
# worker on the default (the web app's embedded one) then stays fresh for workers given a
# stale time down to about 15 s.
HEARTBEAT_MAX = timedelta(seconds=5)


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


def _host() -> str:
    return socket.gethostname()[:60]  # job.locked_by holds 100 characters


def worker_id() -> str:
    """The calling thread's name as a lock holder: host:pid:thread."""
    # current_thread() registers a thread started outside `threading`, so _gone() can see it.
    return f"{_host()}:{os.getpid()}:{threading.current_thread().ident}"


def _gone(holder: str) -> bool:
    """True when `holder` names a worker on this host whose process (or thread) no longer exists.

    Only a certain death counts: another host's worker, a process of another user, or a pid
    reused by another process (or a killed one not yet reaped) is left to the stale time.
    """
    parts = holder.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != _host() or os.name != "posix":  # os.kill(pid, 0) would end a process on Windows
        return False
    try:
        pid, thread = int(parts[1]), int(parts[2])
    except ValueError:
        return False
    if pid == os.getpid():
        return thread not in {t.ident for t in threading.enumerate()}
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class _Claim:
    job_id: int
    submission_id: str
    taken_from: str | None  # the worker a "running" job was taken back from
    why: str


def _claim(engine: Engine, worker: str, stale_after: timedelta) -> _Claim | None:
    now = datetime.now(timezone.utc)
    with write_transaction(engine) as session:
        set_scope(session.connection(), everything=True)  # the worker takes any provider's job
        holders = session.scalars(select(Job.locked_by).where(Job.status == "running", Job.locked_by.is_not(None)).distinct()).all()
        gone = [h for h in holders if _gone(h)]
        abandoned = (Job.status == "running") & or_(Job.locked_at < now - stale_after, Job.locked_by.in_(gone))
        earlier, earlier_submission = aliased(Job), aliased(Submission)
        waits = exists().where(
            earlier.id < Job.id, earlier.status.in_(("queued", "running")),
            earlier_submission.id == earlier.submission_id, earlier_submission.provider_id == Submission.provider_id,
        )
        query = (
            select(Job).join(Submission, Submission.id == Job.submission_id)
            .where(or_(Job.status == "queued", abandoned), Job.attempts < MAX_ATTEMPTS, ~waits)
            .order_by(case((Job.status == "running", 1), else_=0), Job.id)
            .limit(1)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=Job)
        job = session.scalar(query)
        if job is None:
            return None
        taken_from = job.locked_by if job.status == "running" else None
        why = "its process is gone" if taken_from in gone else "its lock went stale"
        job.status, job.locked_by, job.locked_at = "running", worker, now
        job.progress_step = "validating and storing"
        session.execute(update(Submission).where(Submission.id == job.submission_id).values(status="processing"))
        session.flush()
        return _Claim(job.id, job.submission_id, taken_from, why)


def _held(job_id: int, worker: str):
    return (Job.id == job_id, Job.status == "running", Job.locked_by == worker)


class _Heartbeat(threading.Thread):
    """Refreshes a job's lock while its worker works, so only a dead or hung worker's lock goes stale."""

    def __init__(self, engine: Engine, job_id: int, worker: str, every: float) -> None:
        super().__init__(name=f"cldx-heartbeat-{job_id}", daemon=True)
        self.engine, self.job_id, self.worker, self.every = engine, job_id, worker, every
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            try:
                with write_transaction(self.engine) as session:
                    set_scope(session.connection(), everything=True)
                    held = session.connection().execute(
                        update(Job).where(*_held(self.job_id, self.worker)).values(locked_at=datetime.now(timezone.utc))).rowcount
            except Exception as exc:  # noqa: BLE001 - a missed beat is tried again at the next; the lock lasts several
                logger.warning("job %s: heartbeat failed (%s); trying again", self.job_id, type(exc).__name__)
                continue
            if not held:
                logger.warning("job %s: no longer held by %s (another worker took it over)", self.job_id, self.worker)
                return

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)


def _fail(engine: Engine, job_id: int, worker: str, reason: str, *, permanent: bool = False) -> str | None:
    """Count a failed attempt: queue the job again, or fail it (at once when `permanent`, else after
    MAX_ATTEMPTS); return the job's status, or None when the job is no longer this worker's."""
    with write_transaction(engine) as session:
        set_scope(session.connection(), everything=True)
        job = session.scalar(select(Job).where(*_held(job_id, worker)))
        if job is None:
            return None
        job.attempts += 1
        if permanent or job.attempts >= MAX_ATTEMPTS:
            job.status, job.error = "failed", reason if permanent else f"{reason}; given up after {job.attempts} attempts"
            session.execute(update(Submission).where(Submission.id == job.submission_id).values(status="failed", error=job.error))
        else:
            job.status, job.locked_by, job.locked_at = "queued", None, None
            job.error = f"{reason}; the submission will be retried"
        return job.status


def where_raised(exc: BaseException) -> str:
    """Where an exception was raised (file:line in function, and cldx's last line when it was in a library):
    logged instead of its message, which may quote a record."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    place = lambda frame: f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"  # noqa: E731
    ours = [f for f in frames if f"{os.sep}cldx{os.sep}" in f.filename]
    if ours and ours[-1] is not frames[-1]:
        return f"{place(frames[-1])} (from {place(ours[-1])})"
    return place(frames[-1])


def _process(engine: Engine, claim: _Claim, worker: str) -> Receipt:
    with read_transaction(engine) as session:
        set_scope(session.connection(), everything=True)
        submission = session.get(Submission, claim.submission_id)
        keys = vault_of(engine).keys
        files = [SourceFile(f.file_name, keys.open_bytes(f.data, JOB_FILE_PLACE))
                 for f in session.scalars(select(JobFile).where(JobFile.job_id == claim.job_id).order_by(JobFile.id))]
        provider_code = session.scalar(select(Provider.code).where(Provider.id == submission.provider_id))
        args = dict(period=submission.period, mode=submission.mode, submitter=submission.submitter, channel=submission.channel,
                    received_at=submission.received_at)
    return submit(engine, provider=provider_code, files=files, submission_id=claim.submission_id, finish_job=claim.job_id,
                  job_holder=worker, **args)


def work_once(engine: Engine, worker: str | None = None, *, stale_after: timedelta = STALE_AFTER) -> bool:
    """Take one job and finish it (or record why not); False when no job can be taken.

    Logs job ids, submission ids and outcomes (statuses, counts, exception types), never a
    record's contents: an exception's message can quote a value, so only its type and place
    are logged.
    """
    worker = worker or worker_id()
    claim = _claim(engine, worker, stale_after)
    if claim is None:
        return False
    if claim.taken_from:
        logger.warning("job %s taken back from %s (%s)", claim.job_id, claim.taken_from, claim.why)
    logger.info("job %s taken by %s (submission %s)", claim.job_id, worker, claim.submission_id)
    started = time.monotonic()
    heartbeat = _Heartbeat(engine, claim.job_id, worker, min(stale_after / 4, HEARTBEAT_MAX).total_seconds())
    heartbeat.start()
    try:
        receipt = _process(engine, claim, worker)
    except JobLost:
        logger.warning("job %s was taken over by another worker; this worker's work on it was discarded", claim.job_id)
    except UnknownProvider as exc:
        if _fail(engine, claim.job_id, worker, str(exc), permanent=True):
            logger.error("job %s failed: its provider is not in the registry", claim.job_id)
    except Exception as exc:  # noqa: BLE001 - a failed job is recorded and retried, never lost
        status = _fail(engine, claim.job_id, worker, f"{type(exc).__name__} while processing")
        outcome = {"queued": "queued again", "failed": f"failed for good after {MAX_ATTEMPTS} attempts"}.get(status, "no longer held")
        logger.error("job %s: %s at %s; %s", claim.job_id, type(exc).__name__, where_raised(exc), outcome)
    else:
        counts = receipt.counts
        logger.info("job %s done in %.2f s: %s, %d new, %d changed, %d unchanged, %d rejected", claim.job_id, time.monotonic() - started,
                    receipt.status, counts["new"], counts["changed"], counts["unchanged"], counts["rejected"])
    finally:
        heartbeat.stop()
    return True


def work(engine: Engine, *, stop: threading.Event, poll_seconds: float = 1.0, stale_after: timedelta = STALE_AFTER, once: bool = False) -> int:
    """Work the queue until `stop` is set (checked between jobs) or, with `once`, until no job can be taken; return the jobs taken.

    A job's own failure is recorded on the job. Any other error (the database away) is logged
    and the queue looked at again after `poll_seconds`; with `once` it is raised instead.
    """
    taken = 0
    while not stop.is_set():
        try:
            busy = work_once(engine, stale_after=stale_after)
        except Exception as exc:  # noqa: BLE001 - the worker must outlive a database that is away for a while
            if once:
                raise
            logger.error("queue worker error: %s at %s; trying again in %.1f s", type(exc).__name__, where_raised(exc), poll_seconds)
            busy = False
        if busy:
            taken += 1
        elif once:
            break
        else:
            stop.wait(poll_seconds)
    return taken


class Worker(threading.Thread):
    """A background thread that works the queue until stopped (the web app runs one)."""

    def __init__(self, engine: Engine, poll_seconds: float = 1.0, stale_after: timedelta = STALE_AFTER) -> None:
        super().__init__(name="cldx-worker", daemon=True)
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.stale_after = stale_after
        self.stopping = threading.Event()

    def run(self) -> None:
        work(self.engine, stop=self.stopping, poll_seconds=self.poll_seconds, stale_after=self.stale_after)

    def stop(self) -> None:
        self.stopping.set()
