"""Ingest benchmark: cldx against frictionless-py, pandas + SQLAlchemy ORM and a raw bulk insert.

    .venv/bin/python -m benchmarks.ingest            (or `make bench`; `--quick` for a smoke run)

Generates the roll-out (`cldx.generator.generate`, fault rate 0) for `--clients` client persons,
then measures, in this one run and each in its own freshly spawned process (so each peak
memory figure is that measurement's own):

  cldx validation only   parse_source + validate (empty store) over every provider folder;
                         once over all six files, once over clients + engagements only (the
                         files the frictionless comparison uses)
  cldx ingest            the real path, per backend: registry imported, then
                         cldx.ingest.submit.submit() once per provider folder, with a
                         breakdown of where the time goes (parse, validate, upsert, ...);
                         and again with identity neither sealed nor keyed (a benchmark-only
                         stand-in vault), the baseline for the 25% identity cost budget
  (a) frictionless       frictionless.validate of clients + engagements against a Table Schema
                         equivalent to the standard's fields, on a sample; per million extrapolated
  (b) pandas + ORM       pandas.read_csv, typing in pandas, SQLAlchemy ORM objects and
                         session.add_all, on a sample of whole providers; per million extrapolated
  (c) raw bulk insert    the same typed rows (parsed and validated by cldx beforehand, outside
                         the timing) into the same tables of a fresh database: DB-API executemany
                         (SQLite) or COPY FROM STDIN (PostgreSQL), timing only inserts and commits;
                         (c') the same into bare copies of the tables (no keys, indexes or foreign
                         keys), to show what the schema's constraints cost on their own

and prints rows, seconds, rows/s, seconds per million rows and peak memory for each, then the
issue's targets with PASS or MISS: validation >= 20x faster than (a), whole ingest <= 2x the
time of (c) per backend, peak memory < 1 GB. Each row also shows the CPU time of the measuring
process and how many cores' worth of CPU other processes took meanwhile: on a shared machine a
disturbed measurement is flagged rather than silently reported.

The parent process only orchestrates (standard library and psycopg); everything heavy runs in
the spawned children. PostgreSQL scratch databases are named `cldx_bench_<pid>_<what>` and are
dropped at the end; SQLite files and (without --keep) the generated files live in a temporary
folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

# The six files in the order a submission stores them (parents first).
RECORD_FILES = ("clients.csv", "dependants.csv", "engagements.csv", "attendance.csv", "assessments.csv", "outcomes.csv")
FRICTIONLESS_FILES = ("clients.csv", "engagements.csv")
# Raw insert order: parents before children (SQLite enforces foreign keys), identity after its record.
RAW_TABLES = ("client", "client_identity", "dependant", "dependant_identity", "engagement", "attendance", "assessment", "outcome")
IDENTITY_OF = {"client": "client_identity", "dependant": "dependant_identity"}
IDENTITY_VALUES = ("family_name", "given_names", "date_of_birth")

DEFAULT_PG_ADMIN = os.environ.get("CLDX_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
GB = 1_000_000_000
TARGET_SPEEDUP = 20.0
TARGET_RATIO = 2.0
TARGET_MEMORY = 1 * GB
TARGET_IDENTITY_COST = 0.25  # issue 5: sealing and keyed hashing add at most 25% to ingest
BUSY_CORES = 0.25  # other processes' CPU use above which a measurement is flagged as disturbed


# --- Running a measurement in its own process ------------------------------------------------


def _peak_rss_bytes() -> int:
    """This process's peak resident set (VmHWM: the high-water mark of this process image)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def _child_main(conn, fn: Callable[..., dict], kwargs: dict) -> None:
    try:
        result = fn(**kwargs)
        result["peak_rss"] = _peak_rss_bytes()
        conn.send(("ok", result))
    except BaseException:  # noqa: BLE001 - reported by the parent
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def in_child(fn: Callable[..., dict], **kwargs) -> dict:
    """Run `fn(**kwargs)` in a freshly spawned interpreter; its result plus its peak RSS."""
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child_main, args=(send, fn, kwargs))
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before, wall_before = _system_busy_seconds(), time.perf_counter()
    process.start()
    send.close()
    # CPU the measurement's PostgreSQL backends use (they are ours, not competition), sampled.
    backends: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            backends.update(_our_backends_cpu())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        status, payload = receive.recv()
    except EOFError:
        status, payload = "error", "the measurement process died without a result"
    finally:
        done.set()
        sampler.join()
    process.join()
    if status != "ok":
        raise RuntimeError(f"{fn.__name__} failed (exit {process.exitcode}):\n{payload}")
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = (children_after.ru_utime + children_after.ru_stime - children_before.ru_utime - children_before.ru_stime) + sum(backends.values())
    busy, wall = _system_busy_seconds() - busy_before, time.perf_counter() - wall_before
    # Cores' worth of CPU that other processes used while this measurement ran.
    payload["others"] = max(busy - ours, 0.0) / wall if busy == busy and wall > 0 else float("nan")
    return payload


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _system_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (NaN where /proc is missing)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return float("nan")
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS  # all but idle and iowait


def _our_backends_cpu() -> dict[int, float]:
    """CPU seconds so far of the PostgreSQL backends serving this run's scratch databases."""
    tag = f"cldx_bench_{os.getpid()}_".encode()
    found: dict[int, float] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return found
    for entry in entries:
        try:
            if tag not in Path(f"/proc/{entry}/cmdline").read_bytes():
                continue
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            found[int(entry)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
        except (OSError, ValueError, IndexError):
            continue
    return found


class Stopwatch:
    """Wall-clock and this process's CPU time (all its threads) over the timed sections only."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    @contextmanager
    def timing(self):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- Data --------------------------------------------------------------------------------------


def provider_dirs(data: Path) -> list[Path]:
    return sorted(p for p in data.iterdir() if p.is_dir() and p.name != "registry" and (p / "clients.csv").is_file())


def service_lines_from(registry: Path) -> dict[str, tuple[int | None, int | None]]:
    """{code: (min age, max age)} from the registry's service_lines.csv."""
    import csv

    with (registry / "service_lines.csv").open(encoding="utf-8", newline="") as fh:
        return {
            r["service_code"]: (int(r["min_client_age"]) if r["min_client_age"] else None, int(r["max_client_age"]) if r["max_client_age"] else None)
            for r in csv.DictReader(fh)
        }


def count_rows(path: Path) -> int:
    """Data rows of a generated CSV (no embedded newlines in generated values)."""
    with path.open("rb") as fh:
        return max(sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) - 1, 0)


def m_generate(out: str, clients: int, seed: int) -> dict:
    from cldx.generator.generate import generate

    out_path = Path(out)
    marker = out_path / ".cldx-bench.json"
    params = {"clients": clients, "seed": seed, "fault_rate": 0}
    if marker.is_file():
        saved = json.loads(marker.read_text())
        if saved.get("params") == params and all((out_path / p).is_dir() for p in saved.get("providers", [])):
            return {"reused": True, "rows": saved["rows"], "seconds": 0.0, "providers": len(saved["providers"])}
    start = time.perf_counter()
    summary = generate(clients=clients, seed=seed, fault_rate=0, out=out_path)
    seconds = time.perf_counter() - start
    providers = [p.name for p in provider_dirs(out_path)]
    marker.write_text(json.dumps({"params": params, "rows": summary.rows, "providers": providers}))
    return {"reused": False, "rows": summary.rows, "seconds": seconds, "providers": len(providers)}


def _prior_findings(parsed: list) -> Any:
    """Findings made while reading the files, as submit() hands them to validate()."""
    import polars as pl

    from cldx.ingest.validate import FINDING_SCHEMA

    rows = [(f.file, f.sheet, f.row, f.field, f.value, f.rule, f.message, f.fix) for p in parsed for f in p.findings]
    return pl.DataFrame(rows, schema=FINDING_SCHEMA, orient="row") if rows else None


# --- cldx: validation alone --------------------------------------------------------------------


def m_cldx_validate(data: str, files: list[str]) -> dict:
    from datetime import date

    from cldx.ingest.sources import SourceFile, parse_source
    from cldx.ingest.validate import ERROR_RULES, Stored, validate

    root = Path(data)
    lines = service_lines_from(root / "registry")
    today = date.today()
    rows = accepted = rejected = findings = errors = 0
    watch = Stopwatch()
    for folder in provider_dirs(root):
        with watch.timing():
            parsed = [parse_source(SourceFile(name, (folder / name).read_bytes())) for name in files if (folder / name).is_file()]
            tables = [t for p in parsed for t in p.tables]
            result = validate(tables, Stored.empty(lines), today=today, prior=_prior_findings(parsed))
        rows += sum(t.frame.height for t in tables)
        accepted += sum(f.height for f in result.accepted.values())
        rejected += sum(f.height for f in result.rejected.values())
        findings += result.findings.height
        errors += result.findings.filter(result.findings["rule"].is_in(ERROR_RULES)).height
    return {"rows": rows, "seconds": watch.wall, "cpu": watch.cpu, "note": f"{accepted:,} accepted, {rejected:,} rejected, {findings:,} findings ({errors:,} errors)"}


# --- cldx: the whole ingest through submit() ------------------------------------------------------


def setup_database(url: str, data: Path):
    """Schema, the brief's service lines and the generated registry: what `cldx init` + `registry import` do."""
    from cldx.ingest.registry import import_registry
    from cldx.store import migrate, transaction
    from cldx.store.db import make_engine
    from cldx.store.registry import seed_service_lines

    migrate.upgrade(url)
    engine = make_engine(url)
    with transaction(engine) as session:
        seed_service_lines(session)
    report = import_registry(engine, data / "registry")
    if report.errors:
        raise RuntimeError(f"registry import found {len(report.errors)} errors: {report.errors[:3]}")
    return engine


def stored_counts(engine, prefix: str = "") -> dict[str, int]:
    from sqlalchemy import text

    with engine.connect() as connection:
        return {t: connection.execute(text(f'SELECT count(*) FROM "{prefix}{t}"')).scalar_one() for t in RAW_TABLES}


PHASES = (
    "read files from disk",
    "parse files (parse_source)",
    "load stored records (load_stored)",
    "validate",
    "upsert_records (total)",
    "  of which: read stored rows (read_frame)",
    "  of which: insert rows (insert_frame)",
    "  of which: update rows (update_by_id)",
    "findings + quarantine insert (insert_frame)",
    "commit (write_transaction exit)",
    "other (receipt, sha256, sessions, queries)",
)


def _install_phase_timers() -> dict[str, float]:
    """Time submit()'s phases by wrapping the functions it calls (this process only; no cldx code changes)."""
    import cldx.ingest.submit as submit_module
    import cldx.store.bulk as bulk_module

    timers: dict[str, float] = defaultdict(float)

    def wrap(module, name: str, label: str) -> None:
        original = getattr(module, name, None)
        if original is None:
            return

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timers[label] += time.perf_counter() - start

        setattr(module, name, timed)

    wrap(submit_module, "parse_source", PHASES[1])
    wrap(submit_module, "load_stored", PHASES[2])
    wrap(submit_module, "validate", PHASES[3])
    wrap(submit_module, "upsert_records", PHASES[4])
    wrap(bulk_module, "read_frame", PHASES[5])
    wrap(bulk_module, "insert_frame", PHASES[6])
    wrap(bulk_module, "update_by_id", PHASES[7])
    wrap(submit_module, "insert_frame", PHASES[8])

    original_write = getattr(submit_module, "write_transaction", None)
    if original_write is not None:

        @contextmanager
        def timed_write(*args, **kwargs):
            manager = original_write(*args, **kwargs)
            session = manager.__enter__()
            try:
                yield session
            except BaseException:
                if not manager.__exit__(*sys.exc_info()):
                    raise
            else:
                start = time.perf_counter()
                manager.__exit__(None, None, None)
                timers[PHASES[9]] += time.perf_counter() - start

        submit_module.write_transaction = timed_write
    return timers


class PlainKeys:
    """Stands in for the key ring in the identity baseline: values stored as they are."""

    def refresh(self) -> None:
        pass


class PlainVault:
    """The identity baseline (issue 5's 25% budget): no sealing, no keyed hashing.

    Benchmark-only, on purpose: cldx itself has no way to store identity unsealed.
    """

    keys = PlainKeys()
    linkage_secret = b"\0" * 32

    def seal_frame(self, frame, table, columns):
        import polars as pl

        return frame.with_columns(pl.col(c).cast(pl.String) for c in columns if c in frame.columns)

    def open_frame(self, frame, table, columns, dates=()):
        import polars as pl

        return frame.with_columns(pl.col(c).str.to_date("%Y-%m-%d") for c in dates if c in frame.columns)


def m_cldx_ingest(data: str, url: str, sealed: bool = True) -> dict:
    """The real ingest path; `sealed=False` is the baseline without sealing and keyed hashing."""
    root = Path(data)
    engine = setup_database(url, root)
    from cldx.identity.vault import bind_vault, ensure_key_files, open_vault
    import cldx.ingest.submit as submit_module

    if sealed:
        keys = Path(tempfile.mkdtemp(prefix="cldx-bench-keys-"))
        ensure_key_files(keys / "keys.json", keys / "linkage.json")
        bind_vault(engine, open_vault(keys / "keys.json", keys / "linkage.json"))
    else:
        bind_vault(engine, PlainVault())  # type: ignore[arg-type]
        submit_module.with_person_keys = lambda frame, vault: frame.drop("slk581") if "slk581" in frame.columns else frame
    timers = _install_phase_timers()
    from cldx.ingest.sources import SourceFile
    from cldx.ingest.submit import submit

    statuses: Counter = Counter()
    counts: Counter = Counter()
    read_seconds = 0.0
    watch = Stopwatch()
    with watch.timing():
        for folder in provider_dirs(root):
            t = time.perf_counter()
            files = [SourceFile(name, (folder / name).read_bytes()) for name in RECORD_FILES if (folder / name).is_file()]
            read_seconds += time.perf_counter() - t
            receipt = submit(engine, provider=folder.name, files=files, submitter="bench", channel="bench")
            statuses[receipt.status] += 1
            counts.update(receipt.counts)
    seconds = watch.wall
    rows = counts["new"] + counts["changed"] + counts["unchanged"] + counts["rejected"]
    stored = stored_counts(engine)
    engine.dispose()
    timers[PHASES[0]] = read_seconds
    timers[PHASES[-1]] = seconds - sum(v for k, v in timers.items() if not k.startswith(" "))
    phases = {label: timers.get(label, 0.0) for label in PHASES}
    return {
        "rows": rows,
        "seconds": seconds,
        "cpu": watch.cpu,
        "phases": phases,
        "stored": stored,
        "note": f"receipts {dict(statuses)}; new {counts['new']:,}, rejected {counts['rejected']:,}, warned {counts['warned']:,}",
    }


# --- (c) raw bulk insert of the already-parsed rows -----------------------------------------------


def m_prepare_typed(data: str, out: str) -> dict:
    """Untimed: cldx's accepted typed rows, shaped as the tables store them, one Parquet file per table."""
    from datetime import date

    import polars as pl

    from cldx.ingest.sources import SourceFile, parse_source
    from cldx.ingest.validate import Stored, validate
    from cldx.standard import RECORD_TYPES
    from cldx.store.bulk import value_columns

    root, target = Path(data), Path(out)
    lines = service_lines_from(root / "registry")
    rows = 0
    for folder in provider_dirs(root):
        parsed = [parse_source(SourceFile(name, (folder / name).read_bytes())) for name in RECORD_FILES if (folder / name).is_file()]
        result = validate([t for p in parsed for t in p.tables], Stored.empty(lines), today=date.today(), prior=_prior_findings(parsed))
        (target / folder.name).mkdir(parents=True, exist_ok=True)
        for name, frame in result.accepted.items():
            frame = frame.filter(pl.col("action") != "withdraw")
            values = [c for c in value_columns(name) if c in frame.columns]
            frame.select(values).write_parquet(target / folder.name / f"{name}.parquet")
            rows += frame.height
            if name in IDENTITY_OF:
                key = RECORD_TYPES[name].key
                frame.filter(pl.any_horizontal([pl.col(c).is_not_null() for c in IDENTITY_VALUES])).select(*key, *IDENTITY_VALUES).write_parquet(
                    target / folder.name / f"{IDENTITY_OF[name]}.parquet")
    return {"rows": rows}


def _sqlite_rows(frame) -> list[tuple]:
    """Values in the text forms SQLAlchemy's SQLite dialect stores (as cldx writes them)."""
    import polars as pl

    exprs = []
    for name, dtype in frame.schema.items():
        if dtype == pl.Date:
            exprs.append(pl.col(name).dt.strftime("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(pl.col(name).dt.strftime("%Y-%m-%d %H:%M:%S.%6f"))
        else:
            exprs.append(pl.col(name))
    return frame.select(exprs).rows()


def m_raw_insert(data: str, typed: str, url: str, bare: bool = False) -> dict:
    """Insert the typed rows; `bare`: into copies of the tables without keys, indexes or foreign keys."""
    import io
    import uuid
    from datetime import datetime, timezone

    import polars as pl
    from sqlalchemy import text

    root, typed_root = Path(data), Path(typed)
    engine = setup_database(url, root)
    postgres = engine.dialect.name == "postgresql"
    now = datetime.now(timezone.utc)
    with engine.begin() as connection:
        ids = dict(connection.execute(text("SELECT code, id FROM provider")).all())
        submissions = {code: str(uuid.uuid4()) for code in ids}
        connection.execute(
            text("INSERT INTO submission (id, provider_id, period, received_at, submitter, channel, status, mode, standard_version, "
                 "n_new, n_changed, n_unchanged, n_warned, n_rejected) VALUES (:id, :provider_id, '2018-06', :now, 'bench', 'bench', "
                 "'accepted', 'partial', '1.0', 0, 0, 0, 0, 0)"),
            [{"id": submissions[code], "provider_id": pid, "now": now.isoformat() if not postgres else now} for code, pid in ids.items()],
        )
        if bare:
            for table in RAW_TABLES:
                connection.execute(text(f'CREATE TABLE "bare_{table}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING IDENTITY)' if postgres
                                        else f'CREATE TABLE "bare_{table}" AS SELECT * FROM "{table}" WHERE 0'))
    prefix = "bare_" if bare else ""
    raw = engine.raw_connection()
    driver = raw.driver_connection
    rows = 0
    watch = Stopwatch()
    prepare_seconds = 0.0
    for folder in provider_dirs(root):
        # Untimed: read the typed rows and turn them into what the driver takes.
        t = time.perf_counter()
        batches = []
        for table in RAW_TABLES:
            path = typed_root / folder.name / f"{table}.parquet"
            if not path.is_file():
                continue
            frame = pl.read_parquet(path)
            if frame.height == 0:
                continue
            extra = [pl.lit(ids[folder.name]).alias("provider_id")]
            if table not in IDENTITY_OF.values():
                rows += frame.height
                extra += [pl.lit(submissions[folder.name]).alias("first_submission_id"), pl.lit(submissions[folder.name]).alias("last_submission_id"),
                          pl.lit(now).alias("created_at"), pl.lit(now).alias("updated_at")]
            frame = frame.with_columns(extra)
            columns = ", ".join(f'"{c}"' for c in frame.columns)
            if postgres:
                buffer = io.BytesIO()
                frame.write_csv(buffer, include_header=False, null_value="")
                batches.append((f'COPY "{prefix}{table}" ({columns}) FROM STDIN WITH (FORMAT csv)', buffer.getvalue()))
            else:
                batches.append((f'INSERT INTO "{prefix}{table}" ({columns}) VALUES ({", ".join("?" for _ in frame.columns)})', _sqlite_rows(frame)))
        prepare_seconds += time.perf_counter() - t
        # Timed: the inserts and the commit, one transaction per provider.
        with watch.timing():
            if postgres:
                with driver.cursor() as cursor:
                    for sql, payload in batches:
                        with cursor.copy(sql) as copy:
                            copy.write(payload)
                driver.commit()
            else:
                driver.execute("BEGIN")
                for sql, payload in batches:
                    driver.executemany(sql, payload)
                driver.execute("COMMIT")
        del batches
    raw.close()
    stored = stored_counts(engine, prefix)
    engine.dispose()
    how = "COPY FROM STDIN (csv)" if postgres else "executemany"
    where = "bare copies of the tables (no keys, indexes or foreign keys)" if bare else "cldx's tables (keys, unique indexes, foreign keys)"
    return {"rows": rows, "seconds": watch.wall, "cpu": watch.cpu, "stored": stored,
            "note": f"{how} into {where}, one transaction per provider; {prepare_seconds:.1f} s untimed preparing payloads"}


# --- (a) frictionless-py --------------------------------------------------------------------------


def table_schema(record_type, service_codes: list[str]) -> dict:
    """A Table Schema saying what the standard says about each field of `record_type`.

    Types, required, code sets as enum constraints, patterns, lengths, ranges, the key as
    primaryKey. Dates carry the standard's own JSON Schema pattern (ISO or NZ day-first, as
    cldx accepts; a frictionless `date` field takes one format only). What a Table Schema
    cannot express (end before start, references, conditional requirements, age plausibility)
    is left out, so frictionless does less checking than cldx here.
    """
    from cldx.standard.fields import FieldType
    from cldx.standard.jsonschema import DATE_PATTERN

    fields = []
    for spec in record_type.fields:
        field: dict[str, Any] = {"name": spec.name}
        constraints: dict[str, Any] = {}
        if spec.required:
            constraints["required"] = True
        if spec.type is FieldType.DATE:
            field["type"] = "string"
            constraints["pattern"] = DATE_PATTERN
        elif spec.type is FieldType.INTEGER:
            field["type"] = "integer"
        elif spec.type is FieldType.DECIMAL:
            field["type"] = "number"
        elif spec.type is FieldType.YES_NO:
            field["type"] = "boolean"
            field["trueValues"] = ["y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "1"]
            field["falseValues"] = ["n", "N", "no", "No", "NO", "false", "False", "FALSE", "0"]
        else:
            field["type"] = "string"
        codes = service_codes if spec.name == "service_code" else spec.accepted_codes()
        if spec.type is FieldType.CODE and codes:
            constraints["enum"] = list(codes)
        elif spec.pattern:
            constraints["pattern"] = spec.pattern
        if spec.max_length and spec.type in (FieldType.TEXT, FieldType.REFERENCE):
            constraints["maxLength"] = spec.max_length
        if spec.min_value is not None:
            constraints["minimum"] = spec.min_value
        if spec.max_value is not None:
            constraints["maximum"] = spec.max_value
        if constraints:
            field["constraints"] = constraints
        fields.append(field)
    return {"fields": fields, "primaryKey": list(record_type.key), "missingValues": [""]}


def m_frictionless(data: str, providers: list[str]) -> dict:
    import frictionless
    from frictionless import Resource, Schema

    from cldx.standard import record_type_for_file

    root = Path(data)
    codes = sorted(service_lines_from(root / "registry"))
    schemas = {name: table_schema(record_type_for_file(name), codes) for name in FRICTIONLESS_FILES}
    rows = invalid = errors = 0
    error_types: Counter = Counter()
    watch = Stopwatch()
    for code in providers:
        for name in FRICTIONLESS_FILES:
            # frictionless refuses absolute paths as unsafe; the folder goes in as basepath.
            resource = Resource(path=name, basepath=str(root / code), schema=Schema.from_descriptor(schemas[name]))
            with watch.timing():
                report = frictionless.validate(resource)
            task = report.tasks[0]
            if "rows" not in task.stats and task.errors:  # the file was never read: a setup problem, not a data finding
                raise RuntimeError(f"frictionless could not read {code}/{name}: {[e.message for e in task.errors]}")
            rows += task.stats.get("rows") or 0  # a header-only file has no row count
            invalid += 0 if report.valid else 1
            errors += task.stats["errors"] or 0
            error_types.update(e.type for e in task.errors)
    return {"rows": rows, "seconds": watch.wall, "cpu": watch.cpu, "sample": True,
            "note": f"{len(providers)} providers' clients+engagements; {invalid} files invalid, {errors} errors {dict(error_types)}"}


# --- (b) pandas + SQLAlchemy ORM ------------------------------------------------------------------


def m_pandas_orm(data: str, providers: list[str], url: str) -> dict:
    import pandas as pd
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from cldx.store.models import Client, ClientIdentity, Engagement, Provider

    root = Path(data)
    engine = setup_database(url, root)
    with Session(engine) as session:
        ids = dict(session.execute(select(Provider.code, Provider.id)).all())

    def dates(series) -> list:
        iso = pd.to_datetime(series, format="%Y-%m-%d", errors="coerce")
        nz = pd.to_datetime(series, format="%d/%m/%Y", errors="coerce")
        return [None if pd.isna(v) else v.date() for v in iso.fillna(nz)]

    def text(series) -> list:
        return [v or None for v in series]

    def load(code: str) -> int:
        pid = ids[code]
        clients = pd.read_csv(root / code / "clients.csv", dtype=str, keep_default_na=False)
        engagements = pd.read_csv(root / code / "engagements.csv", dtype=str, keep_default_na=False)
        births = dates(clients["date_of_birth"])
        notified = dates(clients["notified_of_sharing_on"])
        consent = [v.lower() not in ("n", "no", "false", "0") for v in clients["identity_consent"]]
        starts, ends = dates(engagements["start_date"]), dates(engagements["end_date"])
        with Session(engine) as session:
            client_objects, identities = [], []
            for i, r in enumerate(clients.itertuples(index=False)):
                client_objects.append(Client(
                    provider_id=pid, client_ref=r.client_ref, gender=r.gender, primary_ethnicity=r.primary_ethnicity,
                    iwi_1=r.iwi_1 or None, iwi_2=r.iwi_2 or None, iwi_3=r.iwi_3 or None, area=r.area,
                    notified_of_sharing_on=notified[i], identity_consent=consent[i],
                    birth_year_month=births[i].strftime("%Y-%m") if births[i] and consent[i] else None,
                ))
                if consent[i]:
                    identities.append(ClientIdentity(provider_id=pid, client_ref=r.client_ref, family_name=r.family_name or None,
                                                     given_names=r.given_names or None, date_of_birth=births[i]))
            session.add_all(client_objects)
            session.flush()  # clients before the rows that refer to them
            session.add_all(identities)
            session.add_all(
                Engagement(provider_id=pid, engagement_ref=r.engagement_ref, client_ref=r.client_ref, service_code=r.service_code,
                           start_date=starts[i], end_date=ends[i], end_reason=r.end_reason or None)
                for i, r in enumerate(engagements.itertuples(index=False))
            )
            session.commit()
        return len(clients) + len(engagements)

    rows = 0
    watch = Stopwatch()
    for code in providers:
        with watch.timing():
            rows += load(code)
    stored = stored_counts(engine)
    engine.dispose()
    return {"rows": rows, "seconds": watch.wall, "cpu": watch.cpu, "sample": True, "stored": stored,
            "note": f"{len(providers)} providers' clients+engagements, one session per provider"}


# --- PostgreSQL scratch databases -------------------------------------------------------------------


class Postgres:
    """Creates and drops scratch databases next to the admin URL's database."""

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.url = make_url(admin_url)
        self.created: list[str] = []

    def _connect(self):
        import psycopg

        u = self.url
        return psycopg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres",
                               password=u.password, dbname=u.database or "postgres", autocommit=True, connect_timeout=5)

    def available(self) -> str | None:
        try:
            with self._connect() as conn:
                conn.execute("SELECT 1")
            return None
        except Exception as exc:  # noqa: BLE001
            return f"{type(exc).__name__}: {exc}".strip()

    def create(self, name: str) -> str:
        with self._connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self._connect() as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


# --- Report --------------------------------------------------------------------------------------


def per_million(result: dict) -> float:
    return result["seconds"] / result["rows"] * 1e6 if result["rows"] else float("nan")


def fmt_row(label: str, r: dict | None, skipped: str = "") -> str:
    if r is None:
        return f"{label:<50} {'skipped: ' + skipped}"
    star = "*" if r.get("sample") else " "
    rate = r["rows"] / r["seconds"] if r["seconds"] else float("nan")
    return (f"{label:<50} {r['rows']:>12,} {r['seconds']:>9.2f} {rate:>10,.0f} {per_million(r):>8.2f}{star} "
            f"{r['peak_rss'] / 1e6:>8,.0f} {r.get('cpu', float('nan')):>8.1f} {r.get('others', float('nan')):>6.2f}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=None, help="client persons to generate (default 500000; 20000 with --quick)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it; reused when DIR already holds the same --clients/--seed")
    parser.add_argument("--frictionless-rows", type=int, default=None, help="sample rows for frictionless (default 100000; 5000 with --quick)")
    parser.add_argument("--pandas-rows", type=int, default=None, help="sample rows for pandas + ORM (default 50000; 5000 with --quick)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_ADMIN, help="admin URL of the PostgreSQL server (scratch databases are created beside it)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 clients, small samples")
    args = parser.parse_args(argv)
    clients = args.clients or (20_000 if args.quick else 500_000)
    friction_rows = args.frictionless_rows or (5_000 if args.quick else 100_000)
    pandas_rows = args.pandas_rows or (5_000 if args.quick else 50_000)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")

    work = Path(tempfile.mkdtemp(prefix="cldx_bench_"))
    data = Path(args.keep).resolve() if args.keep else work / "data"
    pg = Postgres(args.pg_url) if "postgresql" in backends else None
    results: dict[str, dict | None] = {}
    skipped: dict[str, str] = {}
    run_start = time.perf_counter()
    try:
        log(f"generating {clients:,} clients (seed {args.seed}) into {data}")
        gen = in_child(m_generate, out=str(data), clients=clients, seed=args.seed)
        log(("reused the files already there" if gen["reused"] else f"generated in {gen['seconds']:.1f} s") + f": {gen['rows']}")
        dirs = provider_dirs(data)

        # Samples for (a) and (b): whole providers (so engagements find their clients), picked at random.
        sizes = {d.name: sum(count_rows(d / n) for n in FRICTIONLESS_FILES) for d in dirs}
        order = sorted(sizes)
        random.Random(args.seed).shuffle(order)

        def sample(n: int) -> list[str]:
            chosen, total = [], 0
            for code in order:
                if total >= n:
                    break
                chosen.append(code)
                total += sizes[code]
            return chosen

        log("cldx validation only, all six files")
        results["validate_all"] = in_child(m_cldx_validate, data=str(data), files=list(RECORD_FILES))
        log("cldx validation only, clients + engagements")
        results["validate_ce"] = in_child(m_cldx_validate, data=str(data), files=list(FRICTIONLESS_FILES))
        log(f"(a) frictionless on a sample of about {friction_rows:,} rows")
        results["frictionless"] = in_child(m_frictionless, data=str(data), providers=sample(friction_rows))

        if pg is not None and (reason := pg.available()):
            skipped["postgresql"] = f"PostgreSQL not reachable at {args.pg_url} ({reason})"
            backends = [b for b in backends if b != "postgresql"]
            log(skipped["postgresql"])
        typed = work / "typed"
        if backends:
            log("preparing typed rows for the raw insert (untimed)")
            in_child(m_prepare_typed, data=str(data), out=str(typed))
        for backend in backends:
            def url_for(what: str) -> str:
                if backend == "sqlite":
                    return f"sqlite:///{work / (what + '.db')}"
                return pg.create(f"cldx_bench_{os.getpid()}_{what}")

            log(f"cldx ingest -> {backend}")
            results[f"ingest_{backend}"] = in_child(m_cldx_ingest, data=str(data), url=url_for("ingest"))
            log(f"cldx ingest without sealing or keyed hashing (identity baseline) -> {backend}")
            results[f"plain_{backend}"] = in_child(m_cldx_ingest, data=str(data), url=url_for("plain"), sealed=False)
            log(f"(c) raw insert -> {backend}")
            results[f"raw_{backend}"] = in_child(m_raw_insert, data=str(data), typed=str(typed), url=url_for("raw"))
            log(f"(c') raw insert into bare tables -> {backend}")
            results[f"bare_{backend}"] = in_child(m_raw_insert, data=str(data), typed=str(typed), url=url_for("bare"), bare=True)
            log(f"(b) pandas + ORM -> {backend}, sample of about {pandas_rows:,} rows")
            results[f"pandas_{backend}"] = in_child(m_pandas_orm, data=str(data), providers=sample(pandas_rows), url=url_for("pandas"))
            if backend == "postgresql":
                pg.drop_all()
    finally:
        if pg is not None and pg.created:
            try:
                pg.drop_all()
            except Exception as exc:  # noqa: BLE001
                log(f"could not drop scratch databases {pg.created}: {exc}")
        shutil.rmtree(work, ignore_errors=True)

    total_rows = sum(gen["rows"].values())
    wall = time.perf_counter() - run_start
    out = print
    out("")
    out(f"cldx ingest benchmark: {clients:,} clients (seed {args.seed}), {len(dirs)} provider folders, {total_rows:,} record rows "
        f"({', '.join(f'{k} {v:,}' for k, v in gen['rows'].items())})")
    out(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; whole run {wall / 60:.1f} min"
        + ("" if gen["reused"] else f" (generation {gen['seconds']:.0f} s)"))
    out("")
    header = (f"{'measurement':<50} {'rows':>12} {'seconds':>9} {'rows/s':>10} {'s per 1M':>9} {'peak MB':>8} {'CPU s':>8} {'others':>6}")
    out(header)
    out("-" * len(header))
    out(fmt_row("cldx validation only, all six files", results["validate_all"]))
    out(fmt_row("cldx validation only, clients+engagements", results["validate_ce"]))
    out(fmt_row("(a) frictionless validate, clients+engage.", results["frictionless"]))
    for backend in ("sqlite", "postgresql"):
        name = "SQLite" if backend == "sqlite" else "PostgreSQL"
        if f"ingest_{backend}" not in results:
            if backend in skipped:
                out(fmt_row(f"cldx ingest -> {name}", None, skipped[backend]))
            continue
        out(fmt_row(f"cldx ingest (submit) -> {name}", results[f"ingest_{backend}"]))
        out(fmt_row(f"  same, identity not sealed/keyed -> {name}", results.get(f"plain_{backend}")))
        how = "executemany" if backend == "sqlite" else "COPY"
        out(fmt_row(f"(c) raw {how} -> {name}", results[f"raw_{backend}"]))
        out(fmt_row(f"(c') raw {how} -> {name}, bare tables", results[f"bare_{backend}"]))
        out(fmt_row(f"(b) pandas + ORM -> {name}", results[f"pandas_{backend}"]))
    out("* sample: timed on the rows shown, seconds per million extrapolated linearly from it.")
    out("  peak MB: peak resident memory (VmHWM) of the measurement's own process, imports included.")
    out("  CPU s: CPU time of the measuring process over the timed part (all its threads; not the PostgreSQL server's).")
    out("  others: cores' worth of CPU that other processes on the machine used while it ran (0 = a quiet machine; the")
    out("          measurement's own process and its PostgreSQL backends are not counted).")
    busy = [f"{k} ({r['others']:.2f})" for k, r in results.items() if r and r.get("others", 0) > BUSY_CORES]
    if busy:
        out(f"  WARNING: other processes used more than {BUSY_CORES} of a core during {', '.join(busy)}: on {os.cpu_count()} cores "
            "their times are inflated, and so are the ratios built on them.")
    out("")
    out("notes:")
    for key, r in results.items():
        if r and r.get("note"):
            out(f"  {key}: {r['note']}")
    for backend in ("sqlite", "postgresql"):
        ingest, raw = results.get(f"ingest_{backend}"), results.get(f"raw_{backend}")
        if ingest and raw:
            same = all(ingest["stored"][t] == raw["stored"][t] for t in RAW_TABLES)
            out(f"  {backend}: tables after cldx ingest {ingest['stored']}; after raw insert {'the same' if same else raw['stored']}")

    for backend in ("sqlite", "postgresql"):
        ingest = results.get(f"ingest_{backend}")
        if not ingest:
            continue
        out("")
        out(f"where cldx ingest -> {backend} spends its {ingest['seconds']:.1f} s (s per 1M rows in brackets):")
        for label, secs in ingest["phases"].items():
            out(f"  {label:<48} {secs:>8.1f} s {secs / ingest['seconds'] * 100:>5.1f}%  ({secs / ingest['rows'] * 1e6:.2f})")

    out("")
    out("targets (measured in this run):")
    friction, vce, vall = results["frictionless"], results["validate_ce"], results["validate_all"]
    speedup = per_million(friction) / per_million(vce)
    out(f"  validation speedup vs frictionless, same files (clients+engagements): {per_million(friction):.2f} / {per_million(vce):.2f} s per 1M "
        f"= {speedup:.1f}x   target >= {TARGET_SPEEDUP:.0f}x  {verdict(speedup >= TARGET_SPEEDUP)}")
    out(f"    (all six files: {per_million(friction):.2f} / {per_million(vall):.2f} s per 1M = {per_million(friction) / per_million(vall):.1f}x)")
    ratios = {}
    for backend in ("sqlite", "postgresql"):
        ingest, raw, pandas_r = results.get(f"ingest_{backend}"), results.get(f"raw_{backend}"), results.get(f"pandas_{backend}")
        if not (ingest and raw):
            continue
        ratios[backend] = per_million(ingest) / per_million(raw)
        out(f"  cldx ingest / raw insert (same tables), {backend}: {per_million(ingest):.2f} / {per_million(raw):.2f} s per 1M = {ratios[backend]:.2f}x   "
            f"target <= {TARGET_RATIO:.0f}x  {verdict(ratios[backend] <= TARGET_RATIO)}")
        if (bare := results.get(f"bare_{backend}")):
            out(f"    (against the bare-table insert: {per_million(ingest):.2f} / {per_million(bare):.2f} s per 1M = {per_million(ingest) / per_million(bare):.2f}x)")
        if pandas_r:
            out(f"    (pandas + ORM / cldx ingest, {backend}: {per_million(pandas_r):.2f} / {per_million(ingest):.2f} s per 1M "
                f"= {per_million(pandas_r) / per_million(ingest):.1f}x)")
    for backend in ("sqlite", "postgresql"):
        ingest, plain = results.get(f"ingest_{backend}"), results.get(f"plain_{backend}")
        if ingest and plain:
            cost = per_million(ingest) / per_million(plain) - 1
            out(f"  identity sealing + keyed hashing, {backend}: {per_million(ingest):.2f} s per 1M with, {per_million(plain):.2f} without "
                f"= {cost:+.1%}   target <= +{TARGET_IDENTITY_COST:.0%}  {verdict(cost <= TARGET_IDENTITY_COST)}")
    cldx_keys = [k for k in results if (k.startswith("validate") or k.startswith("ingest")) and results[k]]
    peak_key = max(cldx_keys, key=lambda k: results[k]["peak_rss"])
    peak = results[peak_key]["peak_rss"]
    out(f"  peak memory of cldx (largest: {peak_key}): {peak / 1e6:,.0f} MB   target < {TARGET_MEMORY / 1e6:,.0f} MB  {verdict(peak < TARGET_MEMORY)}")

    if args.json:
        Path(args.json).write_text(json.dumps({"clients": clients, "seed": args.seed, "generated_rows": gen["rows"], "results": results,
                                               "speedup_vs_frictionless": speedup, "ingest_over_raw": ratios, "skipped": skipped}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
