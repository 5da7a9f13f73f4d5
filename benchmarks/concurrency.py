"""Concurrency benchmark: 20 provider systems posting JSON batches to a real cldx server at once.

    .venv/bin/python -m benchmarks.concurrency       (or `make bench-concurrency`; `--quick` for a smoke run)

Per backend, in this one run:

  store      a fresh database (SQLite in WAL mode; a PostgreSQL database created for the run), the
             schema, the six service lines, a registry of the 20 providers with the most generated
             records and their contracts, and one system API token per provider;
  server     uvicorn as a real process, the app built by `cldx.web.asgi:create` from CLDX_* settings in
             its environment: one worker on SQLite (one writer at a time anyway), --workers on
             PostgreSQL, where the app connects as a login role in cldx_app (row-level security on,
             as deployed);
  load       20 threads, one per provider system, each with its own token and HTTP connection, post
             JSON batches of --batch records back to back for --seconds (a provider's own generated
             clients with their engagements; refs made unique per batch, so every record is new);
             requests in flight at the end are waited for and counted;
  checks     every record the answers say was stored is stored exactly once and only under its own
             provider: rows per provider and table = the receipts' counts, no key twice, every ref
             carries its provider's code, one submission per 201 answer and by that provider's token;
  baseline   the same batches in this process through `submit()`, one after another, on a fresh store
             of the same backend for the same time: one core's ingest with no HTTP and no concurrency;

then prints validated records/s (records in receipts: stored plus rejected), request latency as the
submitters see it (p50, p99, max), accepted/rejected/error counts, the ratio to the baseline, where
the CPU went while the load ran (server processes, PostgreSQL backends, the submitters, and anything
else on the machine), and the issue's targets on PostgreSQL: >= 20,000 records/s with p99 < 2 s.

The server, the database and the 20 submitters share this machine's cores: on a 2-core machine the
submitters' CPU and PostgreSQL's come out of the server's share, which the CPU lines show.

WARM-UP: before the clock starts each system makes one GET /api/v1/summary, one system at a time.
A token's first use in a minute writes its last-use time on a second connection while the
request's session still holds its first: enough first uses at once (more than a worker's pool of
15 holds) wait on each other until the pool's 30 s timeout and answer 500. The warm-up keeps
that race out of the measurement; `--no-warm-up` leaves it in (cldx.web.auth can end the
request's transaction before that write to remove it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROVIDERS = 20
DEFAULT_PG_ADMIN = os.environ.get("CLDX_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_RATE = 20_000  # validated records per second, PostgreSQL
TARGET_P99 = 2.0  # seconds
REQUEST_TIMEOUT = 120.0
SERVER_START_TIMEOUT = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- Data: realistic records from the generator, made into unique batches -------------------------


@dataclass
class ProviderPool:
    """One provider's generated clients, each with its engagements: the material its batches are cut from."""

    code: str
    clients: list[dict[str, str]]
    engagements: dict[str, list[dict[str, str]]]  # client_ref -> its engagements


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        # Blank cells left out, as a case system's JSON would leave them out.
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def make_pools(clients: int, seed: int, folder: Path) -> tuple[list[ProviderPool], Path]:
    """Generate a roll-out; the 20 providers with the most records and a registry of them alone."""
    from cldx.generator.generate import generate

    generate(clients=clients, seed=seed, fault_rate=0, out=folder / "rollout")
    rollout = folder / "rollout"
    sizes = {p.name: len(_rows(p / "clients.csv")) + len(_rows(p / "engagements.csv"))
             for p in rollout.iterdir() if p.is_dir() and (p / "clients.csv").is_file()}
    chosen = sorted(sorted(sizes), key=lambda code: -sizes[code])[:PROVIDERS]
    pools = []
    for code in sorted(chosen):
        engagements: dict[str, list[dict[str, str]]] = defaultdict(list)
        for row in _rows(rollout / code / "engagements.csv"):
            engagements[row["client_ref"]].append(row)
        pools.append(ProviderPool(code, _rows(rollout / code / "clients.csv"), dict(engagements)))
    registry = folder / "registry"
    registry.mkdir()
    shutil.copy(rollout / "registry" / "service_lines.csv", registry)
    for name, column in (("providers.csv", "provider_code"), ("contracts.csv", "provider_code")):
        with (rollout / "registry" / name).open(encoding="utf-8", newline="") as source, (registry / name).open("w", encoding="utf-8", newline="") as out:
            reader = csv.DictReader(source)
            writer = csv.DictWriter(out, fieldnames=reader.fieldnames)
            writer.writeheader()
            writer.writerows(r for r in reader if r[column] in chosen)
    return pools, registry


def batch_records(pool: ProviderPool, number: int, size: int) -> dict[str, list[dict[str, str]]]:
    """Batch `number` of a provider: `size` records, its clients in turn, each followed by its engagements.

    Refs get the provider's code in front and the batch number (and round of the pool) behind, so
    every record of the run is new and names its provider: the checks can tell whose any stored row is."""
    clients: list[dict[str, str]] = []
    engagements: list[dict[str, str]] = []
    start = number * 97  # a different slice of the pool for each batch
    i = 0
    while len(clients) + len(engagements) < size:
        client = pool.clients[(start + i) % len(pool.clients)]
        suffix = f"{number}.{i // len(pool.clients)}"  # a small pool comes round more than once in a batch
        i += 1
        ref = f"{pool.code}-{client['client_ref']}-{suffix}"
        if len(ref) > 40:
            raise ValueError(f"{ref} is longer than a reference may be")
        clients.append({**client, "client_ref": ref})
        for engagement in pool.engagements.get(client["client_ref"], []):
            if len(clients) + len(engagements) >= size:
                break
            engagements.append({**engagement, "client_ref": ref, "engagement_ref": f"{pool.code}-{engagement['engagement_ref']}-{suffix}"})
    return {"clients": clients, "engagements": engagements}


# --- Stores ---------------------------------------------------------------------------------------


class Postgres:
    """Scratch databases beside the admin URL's, and a login role in cldx_app for the app."""

    def __init__(self, admin_url: str) -> None:
        import psycopg

        self.psycopg = psycopg
        self.params = psycopg.conninfo.conninfo_to_dict(admin_url)
        self.admin_url = admin_url
        self.databases: list[str] = []
        self.login = f"cldx_bench_conc_{os.getpid()}"
        self.role_made = False

    def _admin(self):
        return self.psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5)

    def available(self) -> str | None:
        try:
            with self._admin() as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001
            return f"{type(exc).__name__}: {exc}".strip()
        return None

    def url(self, database: str, user: str | None = None) -> str:
        host, port = self.params.get("host", "127.0.0.1"), self.params.get("port", "5432")
        return f"postgresql+psycopg://{user or self.params.get('user', 'postgres')}@{host}:{port}/{database}"

    def create(self, name: str) -> tuple[str, str]:
        """A new database; its superuser URL and the URL the app uses (the login role in cldx_app)."""
        from psycopg import sql

        from cldx.store.migrate import upgrade
        from cldx.store.scope import APP_ROLE

        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.databases.append(name)
        upgrade(self.url(name))  # creates cldx_app (migration 0006) the first time
        if not self.role_made:
            with self._admin() as conn:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(self.login), sql.Identifier(APP_ROLE)))
            self.role_made = True
        return self.url(name), self.url(name, self.login)

    def drop_all(self) -> None:
        from psycopg import sql

        with self._admin() as conn:
            for name in self.databases:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            self.databases.clear()
            if self.role_made:
                conn.execute(sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s"), (self.login,))
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(self.login)))
                self.role_made = False


@dataclass
class Store:
    admin_url: str  # sees everything: setup and checks
    app_url: str  # what the app (and the baseline) connects as
    tokens: dict[str, str]  # provider code -> system token
    token_names: dict[str, str]  # provider code -> the token's name (the submitter receipts name)


def setup_store(admin_url: str, app_url: str, registry: Path, codes: list[str]) -> Store:
    """Schema, service lines, the registry, a system token per provider: what `cldx init`, `cldx registry
    import` and `cldx tokens issue` do."""
    from sqlalchemy import select

    from cldx.access import tokens
    from cldx.ingest.registry import import_registry
    from cldx.store import make_engine, transaction
    from cldx.store.migrate import upgrade
    from cldx.store.models import Provider
    from cldx.store.registry import seed_service_lines

    upgrade(admin_url)
    engine = make_engine(admin_url, default_scope="all")
    try:
        with transaction(engine) as session:
            seed_service_lines(session)
        report = import_registry(engine, registry)
        if report.rejected:
            raise RuntimeError(f"registry import rejected rows: {report.findings[:3]}")
        issued, names = {}, {}
        with transaction(engine) as session:
            ids = dict(session.execute(select(Provider.code, Provider.id)).all())
            for code in codes:
                names[code] = f"{code} case system"
                issued[code] = tokens.issue(session, tokens.SYSTEM, names[code], created_by="benchmark", provider_id=ids[code])[1]
    finally:
        engine.dispose()
    return Store(admin_url, app_url, issued, names)


# --- The server -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`uvicorn --factory cldx.web.asgi:create` in its own process group, started and stopped by this run."""

    def __init__(self, app_url: str, keys: tuple[Path, Path], folder: Path, workers: int) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "CLDX_DATABASE_URL": app_url, "CLDX_KEY_FILE": str(keys[0]), "CLDX_LINKAGE_SECRET_FILE": str(keys[1]),
               "CLDX_ANALYTIC_DIR": str(folder / "analytic"), "CLDX_EMBEDDED_WORKER": "false"}
        self.log_path = folder / f"server-{self.port}.log"
        self.log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "cldx.web.asgi:create", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(workers), "--log-level", "warning", "--no-access-log", "--no-proxy-headers"],
            env=env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers = workers

    def wait_ready(self) -> None:
        import httpx2

        deadline = time.monotonic() + SERVER_START_TIMEOUT
        ready = 0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server stopped (exit {self.process.returncode}):\n{self.log_path.read_text()[-3000:]}")
            try:
                # Several answers in a row: with several workers the first answers before the others have started.
                ready = ready + 1 if httpx2.get(self.base_url + "/health", timeout=2).status_code == 200 else 0
            except httpx2.HTTPError:
                ready = 0
            # With several workers, uvicorn's own process and each worker; then wait for them to go
            # idle, so the CPU of their start-up is not counted as the load's.
            if ready >= 3 and len(self.worker_pids()) >= self.workers:
                used = sum(cpu_of(p) for p in self.pids())
                time.sleep(0.5)
                if sum(cpu_of(p) for p in self.pids()) - used < 0.05:
                    return
                continue
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within {SERVER_START_TIMEOUT:.0f} s:\n{self.log_path.read_text()[-3000:]}")

    def pids(self) -> list[int]:
        """The server's processes: uvicorn's own and, with several workers, its children (the workers
        and multiprocessing's resource tracker)."""
        found = [self.process.pid]
        try:
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
        return found

    def worker_pids(self) -> list[int]:
        if self.workers == 1:
            return [self.process.pid]
        found = []
        for pid in self.pids()[1:]:
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(pid)
            except OSError:
                continue
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # uvicorn stops its workers and waits for them
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # the group this run started, by its id
                self.process.wait()
        self.log_file.close()


# --- CPU accounting -----------------------------------------------------------------------------------


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return 0.0


def system_busy() -> float:
    """CPU seconds all cores spent busy since boot (NaN where /proc is missing)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return float("nan")
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS


def postgres_backends(database: str | None) -> list[int]:
    """The PostgreSQL backends serving `database` (their process titles name it)."""
    if not database:
        return []
    tag = f" {database} ".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/cmdline").read_bytes().startswith(b"postgres:") and tag in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


class CpuMeter:
    """CPU of the server, of the database's backends, of this process (the submitters) and of the rest, over the load.

    Sampled every half second, so processes that come and go (a backend per new connection) count too."""

    def __init__(self, server: Server, database: str | None) -> None:
        self.server, self.database = server, database
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.kind: dict[int, str] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for kind, pids in (("server", self.server.pids()), ("postgres", postgres_backends(self.database))):
            for pid in pids:
                value = cpu_of(pid)
                if pid not in self.first:
                    # A process born during the load counts from 0; one there before, from now.
                    self.first[pid] = 0.0 if self.started else value
                    self.kind[pid] = kind
                self.last[pid] = max(value, self.last.get(pid, 0.0))

    def _run(self) -> None:
        while not self.done.wait(0.5):
            self._sample()

    def __enter__(self) -> CpuMeter:
        self.started = False
        self._sample()
        self.started = True
        self.wall, self.busy, self.own = time.perf_counter(), system_busy(), time.process_time()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()
        self._sample()
        wall = time.perf_counter() - self.wall
        self.seconds = wall
        used = Counter()
        for pid, kind in self.kind.items():
            used[kind] += self.last[pid] - self.first[pid]
        used["submitters"] = time.process_time() - self.own
        busy = system_busy() - self.busy
        used["others"] = max(busy - sum(used.values()), 0.0) if busy == busy else float("nan")
        self.cores = {k: v / wall for k, v in used.items()}


# --- The load ------------------------------------------------------------------------------------------


@dataclass
class Answer:
    provider: str
    number: int
    status: int  # 0: no answer (connection error, timeout)
    seconds: float
    records: int
    counts: dict[str, int] = field(default_factory=dict)
    submitter: str = ""
    error: str = ""


def run_load(server: Server, store: Store, pools: list[ProviderPool], batch: int, seconds: float,
             warm_up: bool = True) -> tuple[list[Answer], float]:
    """20 provider systems posting batches until `seconds` have passed; every answer, and the wall time to the last."""
    import httpx2

    answers: list[Answer] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(len(pools) + 1)
    deadline: list[float] = [0.0]

    def system(pool: ProviderPool) -> None:
        headers = {"Authorization": f"Bearer {store.tokens[pool.code]}", "Content-Type": "application/json"}
        with httpx2.Client(base_url=server.base_url, headers=headers, timeout=REQUEST_TIMEOUT) as client:
            if warm_up:
                # One read per system before the clock starts, one system at a time (WARM-UP in the docstring).
                with lock:
                    client.get("/api/v1/summary").raise_for_status()
            start_gate.wait()
            number = 0
            while time.perf_counter() < deadline[0]:
                records = batch_records(pool, number, batch)
                body = json.dumps({"provider": pool.code, "records": records}).encode()
                sent = time.perf_counter()
                try:
                    response = client.post("/api/v1/submissions", content=body)
                except httpx2.HTTPError as exc:
                    answer = Answer(pool.code, number, 0, time.perf_counter() - sent, batch, error=f"{type(exc).__name__}: {exc}")
                else:
                    answer = Answer(pool.code, number, response.status_code, time.perf_counter() - sent, batch)
                    if response.status_code in (200, 201):
                        receipt = response.json()
                        answer.counts, answer.submitter = receipt["counts"], receipt["submitter"]
                    else:
                        answer.error = response.text[:300]
                with lock:
                    answers.append(answer)
                number += 1

    threads = [threading.Thread(target=system, args=(pool,), name=f"system-{pool.code}") for pool in pools]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline[0] = started + seconds
    start_gate.wait()
    for thread in threads:
        thread.join()
    return answers, time.perf_counter() - started


# --- Checks --------------------------------------------------------------------------------------------


def check_store(store: Store, answers: list[Answer], pools: list[ProviderPool]) -> list[str]:
    """Problems found (none: every accepted record stored once, under its own provider, and nothing else)."""
    from sqlalchemy import func, select

    from cldx.store import make_engine
    from cldx.store.models import Client, Engagement, Provider, Submission

    problems = []
    accepted: Counter = Counter()
    created: Counter = Counter()
    for a in answers:
        if a.status == 201:
            accepted[a.provider] += a.counts["new"] + a.counts["changed"] + a.counts["unchanged"]
            created[a.provider] += 1
            if a.submitter != store.token_names[a.provider]:
                problems.append(f"{a.provider} batch {a.number}: receipt names {a.submitter!r}, not its token")
    engine = make_engine(store.admin_url, default_scope="all")
    try:
        with engine.connect() as connection:
            codes = dict(connection.execute(select(Provider.id, Provider.code)).all())
            stored: Counter = Counter()
            for model, ref in ((Client, Client.client_ref), (Engagement, Engagement.engagement_ref)):
                rows = connection.execute(select(model.provider_id, func.count(), func.count(func.distinct(ref))).group_by(model.provider_id)).all()
                for provider_id, count, distinct in rows:
                    stored[codes[provider_id]] += count
                    if count != distinct:
                        problems.append(f"{codes[provider_id]}: {count - distinct} {model.__tablename__} refs stored twice")
                # Every ref begins with the code of the provider that sent it (batch_records makes them so).
                strays = connection.execute(select(func.count()).select_from(model).join(Provider, Provider.id == model.provider_id)
                                            .where(~ref.startswith(Provider.code + "-"))).scalar_one()
                if strays:
                    problems.append(f"{strays} {model.__tablename__} rows under a provider other than the one that sent them")
            submissions = Counter({codes[p]: n for p, n in connection.execute(
                select(Submission.provider_id, func.count()).group_by(Submission.provider_id)).all()})
    finally:
        engine.dispose()
    for pool in pools:
        if stored[pool.code] != accepted[pool.code]:
            problems.append(f"{pool.code}: {stored[pool.code]:,} records stored, receipts say {accepted[pool.code]:,} accepted")
        if submissions[pool.code] != created[pool.code]:
            problems.append(f"{pool.code}: {submissions[pool.code]} submissions stored for {created[pool.code]} answers of 201")
    return problems


# --- The baseline: the same batches through submit(), serially, in this process ----------------------------


def run_baseline(store: Store, keys: tuple[Path, Path], pools: list[ProviderPool], batch: int, seconds: float) -> dict[str, Any]:
    from cldx.identity.vault import bind_vault, open_vault
    from cldx.ingest.submit import submit
    from cldx.store import make_engine

    engine = make_engine(store.app_url, default_scope="all")
    bind_vault(engine, open_vault(*keys))
    validated = batches = 0
    latencies = []
    cpu, started = time.process_time(), time.perf_counter()
    try:
        number = 0
        while time.perf_counter() - started < seconds:
            for pool in pools:  # round robin, as the 20 systems' batches arrive
                if time.perf_counter() - started >= seconds:
                    break
                records = batch_records(pool, number, batch)
                sent = time.perf_counter()
                receipt = submit(engine, provider=pool.code, records_json=records, submitter=store.token_names[pool.code], channel="api")
                latencies.append(time.perf_counter() - sent)
                validated += sum(receipt.counts[k] for k in ("new", "changed", "unchanged", "rejected"))
                batches += 1
            number += 1
    finally:
        engine.dispose()
    wall = time.perf_counter() - started
    return {"records": validated, "batches": batches, "seconds": wall, "rate": validated / wall, "cores": (time.process_time() - cpu) / wall,
            "p50": percentile(latencies, 50)}


# --- Measuring one backend ------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def measure(name: str, make_store, pools: list[ProviderPool], registry: Path, keys: tuple[Path, Path], folder: Path, workers: int,
            batch: int, seconds: float, database: str | None, warm_up: bool = True) -> dict[str, Any]:
    codes = [p.code for p in pools]
    admin_url, app_url = make_store("load")
    store = setup_store(admin_url, app_url, registry, codes)
    log(f"{name}: starting the server ({workers} worker{'s' if workers > 1 else ''})")
    server = Server(app_url, keys, folder, workers)
    try:
        server.wait_ready()
        log(f"{name}: {len(pools)} provider systems posting batches of {batch:,} records for {seconds:.0f} s")
        with CpuMeter(server, database) as meter:
            answers, wall = run_load(server, store, pools, batch, seconds, warm_up)
    finally:
        server.stop()
    log(f"{name}: {len(answers)} answers in {wall:.1f} s; checking the store")
    problems = check_store(store, answers, pools)
    statuses = Counter(a.status for a in answers)
    ok = [a for a in answers if a.status == 201]
    counts = Counter()
    for a in ok:
        counts.update(a.counts)
    validated = counts["new"] + counts["changed"] + counts["unchanged"] + counts["rejected"]
    errors = [a for a in answers if a.status != 201]
    log(f"{name}: baseline, the same batches through submit() serially for {seconds:.0f} s")
    base_admin, base_app = make_store("baseline")
    base_store = setup_store(base_admin, base_app, registry, codes)
    baseline = run_baseline(base_store, keys, pools, batch, seconds)
    latencies = [a.seconds for a in ok]
    return {
        "backend": name, "workers": workers, "requests": len(answers), "statuses": dict(statuses), "wall": wall,
        "validated": validated, "accepted": counts["new"] + counts["changed"] + counts["unchanged"], "rejected": counts["rejected"],
        "rate": validated / wall if wall else float("nan"), "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
        "max": max(latencies, default=float("nan")), "errors": len(errors), "error_samples": sorted({f"{a.status} {a.error[:160]}" for a in errors})[:3],
        "problems": problems, "baseline": baseline, "cores": meter.cores, "server_log": server.log_path.read_text()[-2000:],
    }


def report(rows: list[dict[str, Any]], args, skipped: dict[str, str]) -> None:
    out = print
    out("")
    out(f"cldx concurrency benchmark: {PROVIDERS} provider systems, JSON batches of {args.batch:,} records, {args.seconds:.0f} s of load; "
        f"machine: {os.cpu_count()} cores")
    out("")
    header = (f"{'backend':<11}{'workers':>8}{'requests':>9}{'accepted':>10}{'rejected':>9}{'errors':>7}{'records/s':>11}"
              f"{'p50 s':>8}{'p99 s':>8}{'max s':>8}{'baseline/s':>11}{'ratio':>7}  checks")
    out(header)
    out("-" * len(header))
    for r in rows:
        b = r["baseline"]
        out(f"{r['backend']:<11}{r['workers']:>8}{r['requests']:>9,}{r['accepted']:>10,}{r['rejected']:>9,}{r['errors']:>7}{r['rate']:>11,.0f}"
            f"{r['p50']:>8.2f}{r['p99']:>8.2f}{r['max']:>8.2f}{b['rate']:>11,.0f}{r['rate'] / b['rate']:>6.2f}x  "
            + ("ok" if not r["problems"] else f"{len(r['problems'])} PROBLEMS"))
    for name, reason in skipped.items():
        out(f"{name:<11} skipped: {reason}")
    out("")
    out("  records/s: records in the receipts (stored + rejected) per second of load, until the last answer came back.")
    out("  p50/p99/max: seconds from sending a batch to its receipt, as the provider systems saw it (201 answers).")
    out("  baseline: the same batches through submit() one after another in one process (no HTTP, no concurrency); ratio = records/s over it.")
    out("")
    out("where the CPU went during the load (cores' worth; the machine has %d):" % os.cpu_count())
    for r in rows:
        c = r["cores"]
        out(f"  {r['backend']:<11} server {c.get('server', 0):.2f}, PostgreSQL {c.get('postgres', 0):.2f}, submitters (this process) "
            f"{c.get('submitters', 0):.2f}, others {c.get('others', float('nan')):.2f};  baseline's own process {r['baseline']['cores']:.2f}")
    for r in rows:
        if r["problems"] or r["errors"]:
            out("")
            out(f"{r['backend']}: answers {r['statuses']}")
            for line in r["problems"][:10] + r["error_samples"]:
                out(f"  {line}")
            if any(s >= 500 for s in r["statuses"]):
                out("  the server's log ends:")
                out("    " + r["server_log"].replace("\n", "\n    "))
    pg = next((r for r in rows if r["backend"] == "PostgreSQL"), None)
    out("")
    out("targets (PostgreSQL):")
    if pg is None:
        out("  not measured")
    else:
        out(f"  validated records/s {pg['rate']:,.0f}   target >= {TARGET_RATE:,}  {'PASS' if pg['rate'] >= TARGET_RATE else 'MISS'}")
        out(f"  p99 latency {pg['p99']:.2f} s   target < {TARGET_P99:.0f} s  {'PASS' if pg['p99'] < TARGET_P99 else 'MISS'}")
    out("  every accepted record stored exactly once, under its own provider: "
        + ("PASS" if rows and all(not r["problems"] for r in rows) else "FAIL"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.concurrency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=None, help="how long the systems send (default 30; 5 with --quick)")
    parser.add_argument("--batch", type=int, default=1000, help="records per JSON batch")
    parser.add_argument("--workers", type=int, default=4, help="server worker processes on PostgreSQL (SQLite: always 1)")
    parser.add_argument("--clients", type=int, default=None, help="clients to generate for the record pools (default 20000; 3000 with --quick)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG_ADMIN, help="admin URL of the PostgreSQL server (a scratch database is created beside it)")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                        help="let the systems' first requests arrive all at once, each the first use of its token (WARM-UP in the module's docstring)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 s of load, a small generated pool")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (5.0 if args.quick else 30.0)
    clients = args.clients or (3_000 if args.quick else 20_000)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if set(backends) - {"sqlite", "postgresql"}:
        parser.error(f"unknown backend(s): {', '.join(sorted(set(backends) - {'sqlite', 'postgresql'}))}")

    from cldx.identity.vault import ensure_key_files

    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    folder = Path(tempfile.mkdtemp(prefix="cldx_bench_conc_"))
    pg = Postgres(args.pg_url) if "postgresql" in backends else None
    try:
        keys = (folder / "keys.json", folder / "linkage.json")
        ensure_key_files(*keys)
        log(f"generating {clients:,} clients (seed {args.seed}); record pools of the {PROVIDERS} providers with the most")
        pools, registry = make_pools(clients, args.seed, folder)
        for backend in backends:
            if backend == "sqlite":
                def sqlite_store(what: str) -> tuple[str, str]:
                    url = f"sqlite:///{folder / (what + '.db')}"  # WAL: cldx.store.make_engine sets it on every file store
                    return url, url

                rows.append(measure("SQLite", sqlite_store, pools, registry, keys, folder, 1, args.batch, args.seconds, None, args.warm_up))
            else:
                reason = pg.available()
                if reason:
                    skipped["PostgreSQL"] = f"not reachable at {args.pg_url} ({reason})"
                    log(skipped["PostgreSQL"])
                    continue
                names: list[str] = []

                def pg_store(what: str) -> tuple[str, str]:
                    names.append(f"cldx_bench_conc_{os.getpid()}_{what}")
                    return pg.create(names[-1])

                database = f"cldx_bench_conc_{os.getpid()}_load"
                rows.append(measure("PostgreSQL", pg_store, pools, registry, keys, folder, args.workers, args.batch, args.seconds, database,
                                    args.warm_up))
    finally:
        if pg is not None:
            try:
                pg.drop_all()
            except Exception as exc:  # noqa: BLE001
                log(f"could not drop the scratch databases {pg.databases}: {exc}")
        shutil.rmtree(folder, ignore_errors=True)
    report(rows, args, skipped)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": rows, "skipped": skipped}, indent=2, default=str))
    return 0 if all(not r["problems"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
