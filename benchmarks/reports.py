"""Report benchmark: a reach report by three dimensions at a million clients, against bare DuckDB.

    .venv/bin/python -m benchmarks.reports            (or `make bench-reports`; `--quick` for a smoke run)

Per backend (SQLite, then PostgreSQL when one answers), in this one run:

  store        a fresh database with the generator's registry (325 providers, their contracts)
               and `--clients` client records with about two engagements each, written straight
               into the record tables (the ingest benchmark measures ingest; this one measures
               reading), plus one submission per provider so the layer sees data to copy;
  plain SQL    for scale: the store's own join and GROUP BY (engagements x clients by area,
               ethnicity and birth month), once;
  layer build  `cldx analytic refresh` from empty: every provider's Parquet files;
  warm load    the first report's load of the files into DuckDB (once per process);
  reach        `run_report("reach", by="region,ethnicity,age_band")`, warm: the store's version
               check, the DuckDB query, labels, disclosure control of people and engagements
               (primary and secondary suppression with the exact audit, RR3), median of --repeat;
  bare DuckDB  the same GROUP BY (distinct people and engagements by the three dimensions) over
               the same data in a DuckDB in-memory table, no cldx code at all: the floor;

and prints each, the ratio reach / bare DuckDB, and the issue's target: reach under 1 s warm.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import numpy as np

DIMENSIONS = "region,ethnicity,age_band"
TARGET_SECONDS = 1.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- Data --------------------------------------------------------------------------------------------------


def synthetic_records(provider_ids: list[int], lines_of: dict[int, list[str]], clients: int, seed: int):
    """Columns of clients and engagements: realistic shapes, vectorised (a million in seconds)."""
    from cldx.standard.codesets import code_set

    rng = np.random.default_rng(seed)
    weights = rng.lognormal(0, 0.8, len(provider_ids))
    provider_of = rng.choice(np.array(provider_ids), size=clients, p=weights / weights.sum())
    sa2 = np.array([c.code for c in code_set("sa2")])
    ethnicities = np.array(["11", "12", "21", "31", "32", "33", "42", "43", "51", "61", "99"])
    eth_p = np.array([0.45, 0.05, 0.25, 0.05, 0.04, 0.03, 0.04, 0.03, 0.02, 0.02, 0.02])
    iwi = np.array([c.code for c in code_set("iwi") if c.level == 2])
    born = rng.integers(1940 * 12, 2017 * 12, size=clients)
    # About one person in 30 is also a client of a second provider: the same pseudonym twice.
    person = np.arange(clients)
    shared = rng.random(clients) < 1 / 30
    person[shared] = rng.integers(0, clients, size=int(shared.sum()))
    ethnicity = rng.choice(ethnicities, size=clients, p=eth_p)
    client_cols = {
        "provider_id": provider_of,
        "client_ref": np.char.add("C", np.arange(clients).astype(str)),
        "person_key": np.char.add("p", person.astype(str)),
        "birth_year_month": np.array([f"{b // 12:04d}-{b % 12 + 1:02d}" for b in born]),
        "gender": rng.choice(np.array(["11", "21", "30", "99"]), size=clients, p=[0.47, 0.5, 0.02, 0.01]),
        "primary_ethnicity": ethnicity,
        "iwi_1": np.where(ethnicity == "21", rng.choice(iwi, size=clients), None),
        "area": rng.choice(sa2, size=clients),
    }
    per_client = rng.choice(np.array([1, 2, 3]), size=clients, p=[0.35, 0.35, 0.30])
    owner = np.repeat(np.arange(clients), per_client)
    n = len(owner)
    start = date(2016, 7, 1).toordinal() + rng.integers(0, 3 * 365, size=n)
    length = rng.integers(14, 400, size=n)
    still_open = rng.random(n) < 0.15
    line_choice = rng.random(n)
    service = np.array([lines_of[p][int(x * len(lines_of[p]))] for p, x in zip(provider_of[owner], line_choice)])
    engagement_cols = {
        "provider_id": provider_of[owner],
        "engagement_ref": np.char.add("E", np.arange(n).astype(str)),
        "client_ref": client_cols["client_ref"][owner],
        "service_code": service,
        "start_date": [date.fromordinal(int(s)) for s in start],
        "end_date": [None if o else date.fromordinal(int(s + d)) for s, d, o in zip(start, length, still_open)],
        "end_reason": np.where(still_open, None, np.where(rng.random(n) < 0.7, "completed", "withdrew")),
    }
    return client_cols, engagement_cols


def load_store(url: str, registry: Path, clients: int, seed: int) -> dict:
    from sqlalchemy import select, text

    from cldx.ingest.registry import import_registry
    from cldx.store import make_engine, transaction
    from cldx.store.migrate import upgrade
    from cldx.store.models import Contract, ServiceLine, Submission
    from cldx.store.registry import seed_service_lines

    upgrade(url)
    engine = make_engine(url, default_scope="all")
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, registry)
    with transaction(engine) as session:
        lines_of: dict[int, list[str]] = {}
        for provider_id, code in session.execute(select(Contract.provider_id, ServiceLine.code).join(ServiceLine)):
            lines_of.setdefault(int(provider_id), []).append(code)
    started = time.perf_counter()
    client_cols, engagement_cols = synthetic_records(sorted(lines_of), lines_of, clients, seed)
    now = datetime.now(timezone.utc)
    client_rows = list(zip(*(client_cols[c].tolist() if hasattr(client_cols[c], "tolist") else client_cols[c] for c in client_cols)))
    engagement_rows = list(zip(*(engagement_cols[c].tolist() if hasattr(engagement_cols[c], "tolist") else engagement_cols[c] for c in engagement_cols)))
    log(f"  made {len(client_rows):,} clients and {len(engagement_rows):,} engagements in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    client_columns = ", ".join([*client_cols, "identity_consent", "created_at", "updated_at"])
    engagement_columns = ", ".join([*engagement_cols, "created_at", "updated_at"])
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "sqlite":
            stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
            cursor.executemany(f"INSERT INTO client ({client_columns}) VALUES ({', '.join('?' * 11)})",
                               (r + (True, stamp, stamp) for r in client_rows))
            cursor.executemany(f"INSERT INTO engagement ({engagement_columns}) VALUES ({', '.join('?' * 9)})",
                               ((*r[:4], r[4].isoformat(), r[5].isoformat() if r[5] else None, r[6], stamp, stamp) for r in engagement_rows))
        else:
            with cursor.copy(f"COPY client ({client_columns}) FROM STDIN") as copy:
                for r in client_rows:
                    copy.write_row(r + (True, now, now))
            with cursor.copy(f"COPY engagement ({engagement_columns}) FROM STDIN") as copy:
                for r in engagement_rows:
                    copy.write_row(r + (now, now))
        raw.commit()
    finally:
        raw.close()
    with transaction(engine) as session:
        for provider_id in sorted(lines_of):
            session.add(Submission(id=str(uuid.uuid4()), provider_id=provider_id, period="2019-06", received_at=now,
                                   submitter="benchmark", channel="benchmark", status="accepted", standard_version="1.1",
                                   finished_at=now))
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    log(f"  stored them in {time.perf_counter() - started:.1f} s")
    return {"engine": engine, "clients": len(client_rows), "engagements": len(engagement_rows)}


# --- Measurements -------------------------------------------------------------------------------------------


def median_time(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def measure_backend(name: str, url: str, registry: Path, folder: Path, clients: int, seed: int, repeat: int) -> dict:
    from sqlalchemy import text

    from cldx.analysis.layer import AnalyticLayer
    from cldx.analysis.reports import ReportContext, run_report
    from cldx.disclosure import protect

    log(f"{name}: building the store")
    store = load_store(url, registry, clients, seed)
    engine = store["engine"]
    figures = {"backend": name, "clients": store["clients"], "engagements": store["engagements"]}

    with engine.connect() as connection:
        started = time.perf_counter()
        connection.execute(text(
            "SELECT c.area, c.primary_ethnicity, c.birth_year_month, count(DISTINCT c.person_key), count(*) "
            "FROM engagement e JOIN client c ON c.provider_id = e.provider_id AND c.client_ref = e.client_ref "
            "GROUP BY c.area, c.primary_ethnicity, c.birth_year_month")).fetchall()
        figures["plain_sql"] = time.perf_counter() - started

    layer = AnalyticLayer(folder / f"analytic-{name}", engine)
    started = time.perf_counter()
    layer.refresh()
    figures["layer_build"] = time.perf_counter() - started
    context = ReportContext(layer, b"benchmark rounding key")
    started = time.perf_counter()
    layer.query()
    figures["warm_load"] = time.perf_counter() - started

    run_report("reach", context, by=DIMENSIONS)  # labels loaded, caches warm
    figures["reach"], report = median_time(lambda: run_report("reach", context, by=DIMENSIONS), repeat)
    people = report.sections[0].table
    figures["cells"] = sum(1 for v in people.values if v.kind == "cell")
    figures["suppressed"] = sum(1 for v in people.values if v.suppressed)

    # Where the time goes: the query alone, and disclosure control alone on its result.
    sql = ("SELECT region, ethnicity, age_band, count(DISTINCT person) AS people, count(*) AS engagements "
           "FROM engagements GROUP BY region, ethnicity, age_band")
    figures["reach_query"], frame = median_time(lambda: layer.frame(sql), repeat)
    cells = frame.select("region", "ethnicity", "age_band", count="people").fill_null("?")
    figures["reach_disclosure"], _ = median_time(lambda: protect(cells, key=b"k", measure="people"), repeat)

    bare = duckdb.connect(":memory:")
    files = str(folder / f"analytic-{name}" / "engagements" / "*" / "data.parquet")
    bare.execute(f"CREATE TABLE engagements AS SELECT * FROM read_parquet('{files}')")
    figures["bare_duckdb"], _ = median_time(lambda: bare.execute(sql).fetchall(), repeat)
    bare.close()
    engine.dispose()
    return figures


def report(rows: list[dict]) -> None:
    print()
    print(f"Reach by {DIMENSIONS}, warm (median of runs), disclosure control included")
    header = f"{'backend':<11}{'clients':>11}{'engagements':>13}{'plain SQL':>11}{'layer build':>13}{'warm load':>11}" \
             f"{'reach':>9}{'query':>8}{'disclose':>10}{'bare DuckDB':>13}{'ratio':>8}  target < {TARGET_SECONDS:.0f} s"
    print(header)
    for r in rows:
        ratio = r["reach"] / r["bare_duckdb"]
        verdict = "PASS" if r["reach"] < TARGET_SECONDS else "MISS"
        print(f"{r['backend']:<11}{r['clients']:>11,}{r['engagements']:>13,}{r['plain_sql']:>10.2f}s{r['layer_build']:>12.1f}s"
              f"{r['warm_load']:>10.2f}s{r['reach']:>8.3f}s{r['reach_query']:>7.3f}s{r['reach_disclosure']:>9.3f}s"
              f"{r['bare_duckdb']:>12.3f}s{ratio:>7.1f}x  {verdict}")
    for r in rows:
        print(f"{r['backend']}: {r['cells']:,} cells, {r['suppressed']:,} values suppressed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2016)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="50,000 clients, 3 repeats: a smoke run")
    parser.add_argument("--postgres", default=os.environ.get("CLDX_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
                        help="An admin URL of a PostgreSQL server for a scratch database (skipped when none answers)")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.repeat = 50_000, 3

    import psycopg

    from cldx.generator.generate import generate

    rows = []
    with tempfile.TemporaryDirectory(prefix="cldx-bench-reports-") as scratch:
        folder = Path(scratch)
        log("generating the registry (325 providers and their contracts)")
        generate(clients=200, seed=args.seed, fault_rate=0, out=folder / "rollout")
        registry = folder / "rollout" / "registry"
        rows.append(measure_backend("SQLite", f"sqlite:///{folder / 'bench.db'}", registry, folder, args.clients, args.seed, args.repeat))
        try:
            admin = psycopg.connect(args.postgres, autocommit=True, connect_timeout=3)
        except psycopg.Error as exc:
            log(f"PostgreSQL skipped: {exc}")
        else:
            name = f"cldx_bench_reports_{os.getpid()}"
            admin.execute(f'CREATE DATABASE "{name}"')
            try:
                params = psycopg.conninfo.conninfo_to_dict(args.postgres)
                url = f"postgresql+psycopg://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:{params.get('port', '5432')}/{name}"
                rows.append(measure_backend("PostgreSQL", url, registry, folder, args.clients, args.seed, args.repeat))
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.close()
    report(rows)


if __name__ == "__main__":
    main()
