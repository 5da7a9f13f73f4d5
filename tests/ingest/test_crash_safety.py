"""Crash safety of the queue: a `cldx worker` killed with SIGKILL at random points loses and duplicates nothing.

The slow test runs the real command in a fresh interpreter (never a fork of this one: Polars'
thread pool would deadlock), kills it at random moments, restarts it, and checks after every
kill that each submission is stored whole or not at all; at the end the store must equal a
reference store that processed the same submissions without kills, table by table. The RNG is
seeded; the seed is printed and `CLDX_CRASH_SEED=N` repeats a run. The quick tests pin down each
mechanism it relies on (cldx.ingest.queue): a dead local worker's job is taken back at once, a
stale lock once it is stale, a working worker's heartbeat keeps its lock, a worker that lost
its job stores nothing, a death is not an attempt but an error is, a provider's jobs keep
their order.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine, func, select, update

from cldx.access import audit
from cldx.generator.generate import generate
from cldx.identity.vault import PREFIX, bind_vault, open_vault, vault_of
from cldx.ingest import queue
from cldx.ingest.queue import _claim, _fail, _Heartbeat, _process, enqueue, work_once
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import JobLost
from cldx.standard import RECORD_TYPES
from cldx.store import make_engine, read_transaction, transaction
from cldx.store.migrate import upgrade
from cldx.store.models import (
    RECORD_MODELS,
    AuditEvent,
    Base,
    Job,
    JobFile,
    QuarantinedRow,
    RecordHistory,
    Submission,
    SubmissionFile,
    SubmissionFinding,
)
from cldx.store.registry import seed_service_lines

# Eight of the generator's busiest providers at this size: about 16,000 records each, so a job
# takes a noticeable part of a second and a kill can land anywhere inside one.
CLIENTS, SEED = 60_000, 5
PROVIDERS = ("P0217", "P0225", "P0075", "P0204", "P0218", "P0220", "P0212", "P0221")

# (provider, files, period, mode) in the order queued. "faulty" files have rows that are
# rejected; "clean" ones sent after them store those rows; "revised" ones change clients'
# areas and outcomes' results and withdraw attendance; an all-or-nothing send with errors is
# refused and stores only its findings.
PLAN = (
    ("P0217", "faulty", "2018-04", "partial"),
    ("P0225", "clean", "2018-04", "partial"),
    ("P0075", "faulty", "2018-04", "all-or-nothing"),
    ("P0204", "clean", "2018-04", "partial"),
    ("P0217", "clean", "2018-05", "partial"),
    ("P0225", "revised", "2018-05", "partial"),
    ("P0218", "faulty", "2018-05", "partial"),
    ("P0075", "clean", "2018-05", "partial"),
    ("P0220", "clean", "2018-05", "partial"),
    ("P0204", "revised", "2018-06", "partial"),
    ("P0218", "clean", "2018-06", "partial"),
    ("P0212", "faulty", "2018-06", "partial"),
    ("P0217", "revised", "2018-06", "partial"),
    ("P0221", "clean", "2018-06", "partial"),
    ("P0225", "faulty", "2018-06", "partial"),
    ("P0220", "revised", "2018-06", "partial"),
)
KILLS = 20  # at least this many SIGKILLs per backend
STORED = ("accepted", "partial", "refused", "unreadable")  # a submission's statuses once it is stored


# --- Files and stores ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crash_files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crash-files")
    generate(clients=CLIENTS, seed=SEED, fault_rate=0, out=root / "clean", only=PROVIDERS)
    generate(clients=CLIENTS, seed=SEED, fault_rate=0.05, out=root / "faulty", only=PROVIDERS)
    for provider in PROVIDERS:
        _revise(root / "clean" / provider, root / "revised" / provider)
    return root


def _revise(source: Path, out: Path) -> None:
    """A later send of the same records: every 9th client moves area, every 6th outcome changes, every 13th session is withdrawn."""
    out.mkdir(parents=True)
    for path in sorted(source.glob("*.csv")):
        frame = pl.read_csv(path, infer_schema=False)
        every = lambda n: (pl.int_range(pl.len()) % n) == n - 1  # noqa: E731
        if path.name == "clients.csv":
            frame = frame.with_columns(pl.when(every(9)).then(pl.col("area").shift(1)).otherwise(pl.col("area")).alias("area"))
        elif path.name == "outcomes.csv":
            frame = frame.with_columns(pl.when(every(6) & pl.col("baseline").is_not_null()).then(pl.col("baseline"))
                                       .otherwise(pl.col("result")).alias("result"))
        elif path.name == "attendance.csv":
            frame = frame.with_columns(pl.when(every(13)).then(pl.lit("withdraw")).otherwise(pl.col("action")).alias("action"))
        frame.write_csv(out / path.name)


def files_of(folder: Path) -> list[SourceFile]:
    return [SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))]


def _store(url: str, key_files, files: Path) -> Engine:
    """A migrated store with the service lines and the generator's registry, keys bound."""
    upgrade(url)
    engine = make_engine(url, default_scope="all")
    bind_vault(engine, open_vault(*key_files))
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, files / "clean" / "registry")
    return engine


def _enqueue_plan(engine: Engine, files: Path) -> list[str]:
    return [enqueue(engine, provider=provider, files=files_of(files / kind / provider), period=period, mode=mode,
                    submitter="crash test", channel="api") for provider, kind, period, mode in PLAN]


@contextmanager
def _reference_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second empty database on the same backend, for the store processed without kills."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'reference.db'}"
        return
    from tests.conftest import fresh_postgres_database

    made = fresh_postgres_database("cldx_crash_reference")
    try:
        yield next(made)
    finally:
        made.close()


# --- What is stored, per submission and table by table ---------------------------------------


@dataclass(frozen=True)
class Stored:
    """One submission as the store holds it: its status and receipt counts, the rows it wrote, its job."""

    status: str
    receipt: tuple
    rows: tuple  # rows written, per table, in a fixed order
    job_status: str
    job_files: int


def _per_submission(engine: Engine, sids: list[str]) -> list[Stored]:
    """Each submission's state, in `sids` order: what one look at the store shows of it."""
    with read_transaction(engine) as session:
        def count_by(column, *where) -> dict[str, int]:
            return dict(session.execute(select(column, func.count()).where(*where).group_by(column)).all())

        tables = [count_by(SubmissionFile.submission_id), count_by(SubmissionFinding.submission_id), count_by(QuarantinedRow.submission_id),
                  count_by(RecordHistory.submission_id), count_by(AuditEvent.target, AuditEvent.action == "submission")]
        tables += [count_by(model.first_submission_id) for model in RECORD_MODELS.values()]
        submissions = {s.id: s for s in session.scalars(select(Submission).where(Submission.id.in_(sids)))}
        jobs = {j.submission_id: j for j in session.scalars(select(Job).where(Job.submission_id.in_(sids)))}
        job_files = dict(session.execute(select(Job.submission_id, func.count(JobFile.id)).join(JobFile, JobFile.job_id == Job.id)
                                         .group_by(Job.submission_id)).all())
    out = []
    for sid in sids:
        s = submissions[sid]
        out.append(Stored(s.status, (s.n_new, s.n_changed, s.n_unchanged, s.n_warned, s.n_rejected),
                          tuple(t.get(sid, 0) for t in tables), jobs[sid].status, job_files.get(sid, 0)))
    return out


def _check_all_or_nothing(now: list[Stored], reference: list[Stored], seed: int, when: str) -> int:
    """Every submission is stored whole (as in the reference) or not at all, and each provider's in order; return how many are stored."""
    stored_by_provider: dict[str, list[bool]] = defaultdict(list)
    for i, (got, want) in enumerate(zip(now, reference)):
        label = f"submission {i} {PLAN[i]} {when} (seed {seed})"
        stored = got.status in STORED
        stored_by_provider[PLAN[i][0]].append(stored)
        if stored:
            assert (got.status, got.receipt, got.rows) == (want.status, want.receipt, want.rows), label
            assert (got.job_status, got.job_files) == ("done", 0), label
        else:
            assert got.status in ("queued", "processing"), label
            assert got.rows == (0,) * len(got.rows), f"{label}: rows stored for a submission not stored"
            assert got.job_status in ("queued", "running") and got.job_files > 0, label
    for provider, flags in stored_by_provider.items():
        assert flags == sorted(flags, reverse=True), f"{provider}'s submissions stored out of order {when} (seed {seed}): {flags}"
    return sum(s.status in STORED for s in now)


IGNORED = {"id", "created_at", "updated_at", "received_at", "finished_at", "changed_at", "at", "locked_at", "locked_by",
           "hash", "prev_hash"}  # times and surrogate ids differ between any two stores; the audit hashes chain the times


def _tables(engine: Engine, sids: list[str]) -> dict[str, list[tuple]]:
    """Every table's rows, comparable between stores: times and surrogate ids left out, submission ids as their place in
    PLAN, record ids as the record's key, withdrawal times as whether withdrawn, sealed values opened."""
    names = {sid: f"submission {i}" for i, sid in enumerate(sids)}
    keys = vault_of(engine).keys
    out: dict[str, list[tuple]] = {}
    with read_transaction(engine) as session:
        record_keys = {}
        for record_type, model in RECORD_MODELS.items():
            columns = [model.__table__.c[k] for k in RECORD_TYPES[record_type].key]
            record_keys.update({(record_type, row[0]): (row[1], *row[2:]) for row in session.execute(
                select(model.__table__.c.id, model.__table__.c.provider_id, *columns))})
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name not in IGNORED]
            rows = []
            for row in session.execute(select(*columns)):
                values = []
                for column, value in zip(columns, row):
                    if column.name == "withdrawn_at":
                        value = value is not None
                    elif table.name == "record_history" and column.name == "record_id":
                        value = record_keys[(row.record_type, value)]
                    elif isinstance(value, str) and value in names:
                        value = names[value]
                    elif isinstance(value, str) and value.startswith(PREFIX):
                        value = keys.open(value, f"{table.name}.{column.name}")
                    values.append(value)
                rows.append(tuple(values))
            out[table.name] = sorted(rows, key=repr)
    return out


def _assert_same_tables(got: dict[str, list[tuple]], want: dict[str, list[tuple]], seed: int) -> None:
    assert got.keys() == want.keys()
    for name in want:
        if got[name] != want[name]:
            extra, missing = Counter(got[name]) - Counter(want[name]), Counter(want[name]) - Counter(got[name])
            pytest.fail(f"table {name} differs from the reference (seed {seed}): {sum(extra.values())} rows more, "
                        f"{sum(missing.values())} fewer; e.g. more {list(extra)[:2]}, fewer {list(missing)[:2]}")


# --- The worker as a process -------------------------------------------------------------------


def _start_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    """`cldx worker` in a fresh interpreter, its log (standard error) to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "cldx", "worker", "--poll", "0.2", *args], env=env, cwd=log.parent,
                                stdout=out, stderr=subprocess.STDOUT)


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 60, count: int = 1) -> bool:
    """Wait until `text` is in the log `count` times; False if the process ended or the time ran out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.read_text(encoding="utf-8", errors="replace").count(text) >= count:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def _worker_env(url: str, key_files, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CLDX_DATABASE_URL": url,
        "CLDX_KEY_FILE": str(key_files[0]),
        "CLDX_LINKAGE_SECRET_FILE": str(key_files[1]),
        "CLDX_ANALYTIC_DIR": str(tmp_path / "analytic"),
        # Long: a restarted worker must resume the killed one's job because that process is
        # gone, not because its lock went stale.
        "CLDX_JOB_STALE_SECONDS": "600",
    }


@pytest.mark.slow
def test_a_worker_killed_at_random_points_loses_and_duplicates_nothing(database_url, crash_files, key_files, tmp_path):
    backend = database_url.split(":")[0]
    seed = int(os.environ.get("CLDX_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\ncrash-safety seed {seed} on {backend} (CLDX_CRASH_SEED={seed} repeats this run)")
    rng = random.Random(seed)
    began = time.monotonic()

    # The reference: the same submissions queued and worked in this process, with no kills.
    with _reference_url(database_url, tmp_path) as reference_url:
        reference = _store(reference_url, key_files, crash_files)
        try:
            reference_sids = _enqueue_plan(reference, crash_files)
            took = []  # each job's time here, in PLAN order (with no kills the jobs go in the order queued)
            while True:
                started = time.monotonic()
                if not work_once(reference):
                    break
                took.append(time.monotonic() - started)
            expected = _per_submission(reference, reference_sids)
            for (_, kind, _, mode), done in zip(PLAN, expected):  # the plan does what it says
                assert done.status == ("refused" if mode == "all-or-nothing" else "partial" if kind == "faulty" else "accepted")
                assert kind != "revised" or done.receipt[1] > 0  # records changed
            reference_tables = _tables(reference, reference_sids)
        finally:
            reference.dispose()
    reference_done = time.monotonic()

    engine = _store(database_url, key_files, crash_files)
    try:
        sids = _enqueue_plan(engine, crash_files)
        env = _worker_env(database_url, key_files, tmp_path)
        logs: list[Path] = []
        kills, in_job, stored, trace = 0, 0, 0, []
        place = {sid: i for i, sid in enumerate(sids)}

        def taken(log: Path, nth: int) -> int:
            """The PLAN index of the nth job a worker took, from its log."""
            return place[re.findall(r" taken by \S+ \(submission ([-0-9a-f]+)\)", log.read_text())[nth - 1]]

        # How much longer than here a fresh worker's first job takes (code still to load) and its
        # later ones, from every worker's log so far (medians: the machine's load varies).
        first_ratios: list[float] = []
        later_ratios: list[float] = []
        learnt: dict[Path, int] = defaultdict(int)  # log -> its jobs done already counted

        def learn(log: Path) -> None:
            done = [float(t) for t in re.findall(r" done in ([\d.]+) s", log.read_text())]
            for nth, seconds in enumerate(done[learnt[log]:], start=learnt[log] + 1):
                (first_ratios if nth == 1 else later_ratios).append(seconds / took[taken(log, nth)])
            learnt[log] = len(done)

        def ratio(nth: int) -> float:
            ratios = sorted(first_ratios if nth == 1 else later_ratios)
            return ratios[len(ratios) // 2]

        start_ups: list[float] = []  # a fresh worker's time from its start to taking a job

        def start_up() -> float:
            return sorted(start_ups)[len(start_ups) // 2]

        while kills < KILLS:
            log = tmp_path / f"worker-{len(logs):02d}.log"
            logs.append(log)
            # Kills store about a third of a job each on average; near the end, seldom any, so the
            # queue does not run out before the kills do.
            few_left = len(PLAN) - stored <= (KILLS - kills) / 2 + 2
            spawned = time.monotonic()
            proc = _start_worker(env, log)
            if not start_ups:
                # The first worker is let finish two jobs, to time a fresh process's first job
                # and a later one; then it is killed in the third.
                assert _wait_for(log, " taken by ", proc), log.read_text()
                start_ups.append(time.monotonic() - spawned)
                assert _wait_for(log, " done in ", proc, count=2), log.read_text()
                learn(log)
                in_job += _wait_for(log, " taken by ", proc, count=3)
                how, delay = "in its 3rd job", rng.uniform(0, 1.5 * ratio(3) * took[taken(log, 3)])
            elif stored == len(PLAN):
                # Everything stored before the kills ran out (a fast run): the rest kill a fresh
                # worker finding the queue empty, which must change nothing either.
                how, delay = "idle", rng.uniform(0, 1.2 * start_up())
            elif rng.random() < 0.7:
                # Most kills come while a job is worked, from its start to past its commit (as
                # long as it takes here): mostly a fresh worker's first job, sometimes its
                # second; with few jobs left, before the job's end.
                nth = 2 if not few_left and rng.random() < 0.15 else 1
                how, delay = f"in job {nth}", 0.0
                if _wait_for(log, " taken by ", proc, count=nth):
                    in_job += 1
                    if nth == 1:
                        start_ups.append(time.monotonic() - spawned)
                    delay = rng.uniform(0, (0.7 if few_left else 1.5) * ratio(nth) * took[taken(log, nth)])
            else:
                # The rest anywhere in start-up: loading code, opening the store, claiming a job.
                how, delay = "from start", rng.uniform(0, (0.6 if few_left else 1.2) * start_up())
            time.sleep(delay)
            assert proc.poll() is None, f"the worker ended by itself (seed {seed}): {log.read_text()}"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)  # reaped, so its pid is gone
            learn(log)
            kills += 1
            stored = _check_all_or_nothing(_per_submission(engine, sids), expected, seed, f"after kill {kills}")
            trace.append(f"{how} +{delay:.2f} s: {stored} stored")
        killing_done = time.monotonic()
        print("kills:", "; ".join(trace))
        # About 70% of kills are aimed inside a job; a quarter at least must have landed there
        # (a floor timing cannot miss, so the test says something without being flaky).
        assert in_job >= KILLS // 4, f"only {in_job} of {kills} kills came during a job (seed {seed})"

        # Then it drains: every job finished, the queue empty, the store as the reference's.
        log = tmp_path / "worker-drain.log"
        logs.append(log)
        drain = _start_worker(env, log, "--once")
        assert drain.wait(timeout=300) == 0, log.read_text()
        drained = time.monotonic()
        final = _per_submission(engine, sids)
        assert _check_all_or_nothing(final, expected, seed, "at the end") == len(PLAN)
        with read_transaction(engine) as session:
            jobs = session.execute(select(Job.status, Job.attempts, Job.error)).all()
            assert session.scalar(select(func.count()).select_from(JobFile)) == 0
            assert audit.verify(session).ok
        assert jobs == [("done", 0, None)] * len(PLAN), "a kill must not count as an attempt"
        _assert_same_tables(_tables(engine, sids), reference_tables, seed)
    finally:
        engine.dispose()

    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in logs)
    assert "(its process is gone)" in text, "no restarted worker took back a killed one's job"
    # Job ids and outcomes only: no client reference, date or name from the files.
    assert not re.search(r"P\d{4}-\d{6}|\d\d/\d\d/\d{4}", text)
    names = set(pl.concat([pl.read_csv(crash_files / "clean" / p / "clients.csv", infer_schema=False)["family_name"]
                           for p in PROVIDERS]).drop_nulls())
    assert not names & set(re.findall(r"\w+", text))
    print(f"{backend}: {kills} kills ({in_job} timed from a job's start; start-up {start_up():.1f} s; a fresh worker's first job "
          f"{ratio(1):.1f}x as long as here, later ones {ratio(2):.1f}x), {stored} of {len(PLAN)} submissions stored meanwhile; reference "
          f"{reference_done - began:.0f} s, kills {killing_done - reference_done:.0f} s, drain {drained - killing_done:.0f} s, "
          f"checks {time.monotonic() - drained:.0f} s")


def test_sigterm_finishes_the_job_in_hand_then_stops(engine, migrated_url, crash_files, key_files, tmp_path):
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, crash_files / "clean" / "registry")
    for provider in PROVIDERS[:3]:
        enqueue(engine, provider=provider, files=files_of(crash_files / "clean" / provider), period="2018-06", mode="partial",
                submitter="t", channel="api")
    log = tmp_path / "worker.log"
    proc = _start_worker(_worker_env(migrated_url, key_files, tmp_path), log)
    assert _wait_for(log, " taken by ", proc), log.read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, log.read_text()
    text = log.read_text()
    assert "SIGTERM: stopping after the job in hand" in text and "stopped after" in text
    with read_transaction(engine) as session:
        statuses = Counter(session.scalars(select(Job.status)))
    assert statuses["running"] == 0 and statuses["done"] == text.count(" taken by ") >= 1, (statuses, text)


# --- The mechanisms, one at a time (in this process) ---------------------------------------------


@pytest.fixture
def small_queue(engine, crash_files):
    """The registry, and a way to queue a small submission (a few clients) for a provider."""
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, crash_files / "clean" / "registry")
    lines = {p: (crash_files / "clean" / p / "clients.csv").read_text(encoding="utf-8").splitlines() for p in PROVIDERS}

    def send(provider: str, rows: int = 5) -> str:
        return enqueue(engine, provider=provider, files=[SourceFile("clients.csv", "\n".join(lines[provider][:rows + 1]).encode())],
                       period="2018-06", mode="partial", submitter="t", channel="api")

    return send


def _job(engine: Engine, sid: str) -> Job:
    with read_transaction(engine) as session:
        return session.scalar(select(Job).where(Job.submission_id == sid))


def _lock(engine: Engine, sid: str, holder: str, at: datetime) -> None:
    with transaction(engine) as session:
        session.execute(update(Job).where(Job.submission_id == sid).values(status="running", locked_by=holder, locked_at=at))


def _reaped_pid() -> int:
    """The pid of a process that has ended and been reaped (so no process has it, barring reuse)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_or_stale_workers_job_is_taken_back_and_a_live_ones_is_not(engine, small_queue):
    now = datetime.now(timezone.utc)
    host = queue._host()
    dead, fresh, alive, elsewhere = small_queue("P0217"), small_queue("P0225"), small_queue("P0075"), small_queue("P0204")
    _lock(engine, dead, f"{host}:{_reaped_pid()}:1", now)  # this host, its process gone: taken back at once
    _lock(engine, alive, f"{host}:{os.getppid()}:1", now)  # this host, a live process, a fresh lock: left alone
    _lock(engine, elsewhere, "elsewhere:1:1", now - timedelta(seconds=2))  # another host: only its lock's age counts
    stale_after = timedelta(seconds=5)
    assert work_once(engine, stale_after=stale_after) and _job(engine, fresh).status == "done"  # fresh jobs first
    assert work_once(engine, stale_after=stale_after)
    assert (_job(engine, dead).status, _job(engine, dead).attempts) == ("done", 0)  # a death is not an attempt
    assert not work_once(engine, stale_after=stale_after)
    assert _job(engine, alive).status == _job(engine, elsewhere).status == "running"

    # A worker's heartbeat keeps its lock fresh while it works; once it stops, the lock goes stale.
    beat = _Heartbeat(engine, _job(engine, elsewhere).id, "elsewhere:1:1", every=0.05)
    beat.start()
    time.sleep(0.5)
    beat.stop()
    assert _job(engine, elsewhere).locked_at > now - timedelta(seconds=0.2)
    _lock(engine, elsewhere, "elsewhere:1:1", now - timedelta(seconds=10))
    assert work_once(engine, stale_after=stale_after)
    assert (_job(engine, elsewhere).status, _job(engine, elsewhere).attempts) == ("done", 0)


def test_a_providers_jobs_keep_their_order_and_a_worker_that_lost_its_job_stores_nothing(engine, small_queue):
    first, second, other = small_queue("P0217"), small_queue("P0217"), small_queue("P0225")
    minute = timedelta(seconds=60)
    a = _claim(engine, "w:1:1", minute)
    assert a.submission_id == first
    assert _claim(engine, "w:2:2", minute).submission_id == other  # not `second`: `first` is in hand
    assert _claim(engine, "w:3:3", minute) is None
    _process(engine, a, "w:1:1")
    b = _claim(engine, "w:3:3", minute)
    assert b.submission_id == second

    _lock(engine, second, "w:4:4", datetime.now(timezone.utc))  # taken over while w:3:3 was thought dead
    with pytest.raises(JobLost):
        _process(engine, b, "w:3:3")
    assert _fail(engine, b.job_id, "w:3:3", "late") is None  # nor can it fail the job
    with read_transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(SubmissionFile).where(SubmissionFile.submission_id == second)) == 0
        assert session.get(Submission, second).status == "processing"
    job = _job(engine, second)
    assert (job.status, job.locked_by, job.attempts, job.error) == ("running", "w:4:4", 0, None)


def test_an_error_is_an_attempt_and_its_message_is_not_logged(engine, small_queue, monkeypatch, caplog):
    sid = small_queue("P0217")

    def broken(*_args, **_kwargs):
        raise ValueError("could not read 'Ngata' as a date")  # a message that quotes a record

    monkeypatch.setattr(queue, "submit", broken)
    for attempt in range(1, queue.MAX_ATTEMPTS + 1):
        assert work_once(engine)
        job = _job(engine, sid)
        assert (job.status, job.attempts) == ("queued" if attempt < queue.MAX_ATTEMPTS else "failed", attempt)
    assert not work_once(engine)
    assert job.error == "ValueError while processing; given up after 3 attempts"
    with read_transaction(engine) as session:
        assert (session.get(Submission, sid).status, session.get(Submission, sid).error) == ("failed", job.error)
    assert "ValueError at test_crash_safety.py" in caplog.text and "Ngata" not in caplog.text
