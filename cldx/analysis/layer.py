"""The analytic layer: a columnar copy of the pseudonymised records, kept current with the store.

Reports never scan the record tables. They read this layer: one Parquet file per table and
provider (`<dir>/<table>/provider_id=<id>/data.parquet`, Hive-style, so DuckDB here and Spark or
Trino on a larger estate read the same files), queried through DuckDB with the tables held in
memory once loaded ("warm").

What it holds is what DESIGN.md allows analytic tables to hold: the person pseudonym, birth
year and month, age band, gender, ethnicity, iwi, area rolled up to territorial authority and
region, and the service facts. No names, no dates of birth, and no provider client references:
records are joined on the store's own row ids.

Kept current by provider: a provider's data changes only through its submissions or a Privacy
Act correction (or a retention purge, `cldx.store.retention`), so the store's version of a
provider is (submissions finished, latest finish, latest correction, latest purge).
`ensure_current` compares those with the manifest and rebuilds only the providers that
changed; the web app and the CLI call it before every report, so a report never
reads stale data, and `cldx analytic refresh` builds the whole layer ahead of time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
from sqlalchemy import Engine, text

from cldx.standard.codesets import code_set, ta_regions
from cldx.store.db import read_transaction
from cldx.store.retention import AUDIT_ACTION as PURGE_ACTION
from cldx.store.scope import set_scope

LAYOUT = 3  # bump when a table's columns change: every provider is rebuilt
MANIFEST = "manifest.json"
TABLES = ("clients", "engagements", "assessments", "outcomes")

# Age bands at the start of an engagement (Stats NZ's five-year bands, widened where clients are few).
AGE_BANDS = ((0, 4), (5, 9), (10, 14), (15, 19), (20, 24), (25, 29), (30, 39), (40, 49), (50, 64), (65, None))
UNKNOWN = "Not stated"


def age_band_label(low: int, high: int | None) -> str:
    return f"{low}+" if high is None else f"{low:02d}-{high:02d}"


AGE_BAND_LABELS = tuple(age_band_label(lo, hi) for lo, hi in AGE_BANDS)


# --- What is read from the store, per provider ---------------------------------------------------

_CLIENTS = text("""
    SELECT c.id AS client_id, c.person_key, c.birth_year_month, c.gender, c.primary_ethnicity,
           c.iwi_1, c.area, c.notified_of_sharing_on, c.identity_consent
    FROM client c
    WHERE c.provider_id = :provider AND c.withdrawn_at IS NULL
""")

_ENGAGEMENTS = text("""
    SELECT e.id AS engagement_id, c.id AS client_id, e.service_code, e.start_date, e.end_date, e.end_reason
    FROM engagement e
    JOIN client c ON c.provider_id = e.provider_id AND c.client_ref = e.client_ref
    WHERE e.provider_id = :provider AND e.withdrawn_at IS NULL AND c.withdrawn_at IS NULL
""")

_ATTENDANCE = text("""
    SELECT e.id AS engagement_id, count(*) AS sessions,
           sum(CASE WHEN a.attended THEN 1 ELSE 0 END) AS sessions_attended
    FROM attendance a
    JOIN engagement e ON e.provider_id = a.provider_id AND e.engagement_ref = a.engagement_ref
    WHERE a.provider_id = :provider AND a.withdrawn_at IS NULL
    GROUP BY e.id
""")

_ASSESSMENTS = text("""
    SELECT e.id AS engagement_id, a.phase, a.instrument, a.domain, a.score, a.assessed_on
    FROM assessment a
    JOIN engagement e ON e.provider_id = a.provider_id AND e.engagement_ref = a.engagement_ref
    WHERE a.provider_id = :provider AND a.withdrawn_at IS NULL
""")

_OUTCOMES = text("""
    SELECT e.id AS engagement_id, o.dimension, o.measure, o.baseline, o.result, o.better_off, o.measured_on
    FROM outcome o
    JOIN engagement e ON e.provider_id = o.provider_id AND e.engagement_ref = o.engagement_ref
    WHERE o.provider_id = :provider AND o.withdrawn_at IS NULL
""")

_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "clients": {
        "client_id": pl.Int64, "person_key": pl.String, "birth_year_month": pl.String, "gender": pl.String,
        "primary_ethnicity": pl.String, "iwi_1": pl.String, "area": pl.String,
        "notified_of_sharing_on": pl.Date, "identity_consent": pl.Boolean,
    },
    "engagements": {
        "engagement_id": pl.Int64, "client_id": pl.Int64, "service_code": pl.String, "start_date": pl.Date,
        "end_date": pl.Date, "end_reason": pl.String,
    },
    "attendance": {"engagement_id": pl.Int64, "sessions": pl.Int64, "sessions_attended": pl.Int64},
    "assessments": {
        "engagement_id": pl.Int64, "phase": pl.String, "instrument": pl.String, "domain": pl.String,
        "score": pl.Float64, "assessed_on": pl.Date,
    },
    "outcomes": {
        "engagement_id": pl.Int64, "dimension": pl.String, "measure": pl.String, "baseline": pl.Float64,
        "result": pl.Float64, "better_off": pl.Boolean, "measured_on": pl.Date,
    },
}


def _read(connection, query, provider_id: int, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    result = connection.execute(query, {"provider": provider_id})
    rows = result.fetchall()
    columns = list(result.keys())
    frame = pl.DataFrame([list(r) for r in rows], schema=columns, orient="row", infer_schema_length=None) if rows \
        else pl.DataFrame(schema={c: schema[c] for c in columns})
    # SQLite hands back dates as text and booleans as 0/1, PostgreSQL Decimals for Numeric columns:
    # one type per column here, whichever store it came from.
    return frame.with_columns(_as(frame, c, schema[c]) for c in columns)


def _as(frame: pl.DataFrame, column: str, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Date and frame.schema[column] == pl.String:
        return pl.col(column).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    return pl.col(column).cast(dtype, strict=False)


# --- Person attributes, resolved once per record --------------------------------------------------


def _area_lookup() -> pl.DataFrame:
    """area code (SA2 or TA) -> territorial authority and region codes."""
    regions = ta_regions()
    rows = [(c.code, c.code, regions.get(c.code, (None,))[0]) for c in code_set("territorial_authority")]
    for c in code_set("sa2"):
        rows.append((c.code, c.parent, regions.get(c.parent or "", (None,))[0]))
    return pl.DataFrame(rows, schema={"area": pl.String, "ta": pl.String, "region": pl.String}, orient="row")


def person_attributes(clients: pl.DataFrame) -> pl.DataFrame:
    """Clients with the analytic attributes reports break down by (codes; labels come at output)."""
    areas = _area_lookup()
    return (
        clients.join(areas, on="area", how="left")
        .with_columns(
            # The pseudonym's first 60 bits as a number: counting distinct people hashes an integer
            # instead of 64 characters (a third faster at a million), with a chance of two people
            # colliding of about one in a million million at a million people. A client with no
            # pseudonym is its own person (its record id, negative so it meets no pseudonym).
            person=pl.coalesce(pl.col("person_key").str.slice(0, 15).str.to_integer(base=16, strict=False),
                               -pl.col("client_id")),
            ethnicity=pl.col("primary_ethnicity").str.slice(0, 1),
            iwi=pl.col("iwi_1"),
            birth_month_number=(
                pl.col("birth_year_month").str.slice(0, 4).cast(pl.Int32, strict=False) * 12
                + pl.col("birth_year_month").str.slice(5, 2).cast(pl.Int32, strict=False)
            ),
        )
    )


def age_band_expr(at: pl.Expr, birth_month_number: pl.Expr = pl.col("birth_month_number")) -> pl.Expr:
    """The age band (label) at a date, from the birth year and month (whole years, month precision)."""
    age = ((at.dt.year().cast(pl.Int32) * 12 + at.dt.month().cast(pl.Int32)) - birth_month_number) // 12
    expr = pl.when(age.is_null() | (age < 0)).then(pl.lit(UNKNOWN))
    for (low, high), label in zip(AGE_BANDS, AGE_BAND_LABELS):
        expr = expr.when(age <= high if high is not None else age >= low).then(pl.lit(label))
    return expr.otherwise(pl.lit(UNKNOWN))


_PERSON_COLUMNS = ["person", "gender", "ethnicity", "iwi", "ta", "region"]


def build_provider_tables(connection, provider_id: int) -> dict[str, pl.DataFrame]:
    """One provider's analytic tables, read from the store in the current transaction."""
    clients = person_attributes(_read(connection, _CLIENTS, provider_id, _SCHEMAS["clients"]))
    engagements = _read(connection, _ENGAGEMENTS, provider_id, _SCHEMAS["engagements"])
    attendance = _read(connection, _ATTENDANCE, provider_id, _SCHEMAS["attendance"])
    engagements = (
        engagements.join(clients.select("client_id", "birth_month_number", *_PERSON_COLUMNS), on="client_id", how="inner")
        .join(attendance, on="engagement_id", how="left")
        .with_columns(
            age_band=age_band_expr(pl.col("start_date")),
            sessions=pl.col("sessions").fill_null(0),
            sessions_attended=pl.col("sessions_attended").fill_null(0),
            completed=(pl.col("end_reason") == "completed").fill_null(False),
            closed=pl.col("end_date").is_not_null(),
        )
        .drop("birth_month_number")
    )
    facts = engagements.select("engagement_id", "client_id", "service_code", "start_date", "end_date", "completed",
                               "age_band", *_PERSON_COLUMNS)

    raw = _read(connection, _ASSESSMENTS, provider_id, _SCHEMAS["assessments"])
    pre = raw.filter(pl.col("phase") == "pre").select("engagement_id", "instrument", "domain",
                                                      pre_score="score", pre_on="assessed_on")
    post = raw.filter(pl.col("phase") == "post").select("engagement_id", "instrument", "domain",
                                                        post_score="score", post_on="assessed_on")
    assessments = pre.join(post, on=["engagement_id", "instrument", "domain"], how="full", coalesce=True) \
        .join(facts, on="engagement_id", how="inner")
    outcomes = _read(connection, _OUTCOMES, provider_id, _SCHEMAS["outcomes"]).join(facts, on="engagement_id", how="inner")

    stamp = pl.lit(provider_id, dtype=pl.Int64).alias("provider_id")
    return {
        # primary_ethnicity (the code as recorded) stays for the research extract's ethnicity hierarchy.
        "clients": clients.drop("birth_month_number", "iwi_1").with_columns(stamp),
        "engagements": engagements.with_columns(stamp),
        "assessments": assessments.with_columns(stamp),
        "outcomes": outcomes.with_columns(stamp),
    }


# --- Which providers changed ------------------------------------------------------------------------

_SUBMITTED = text("""
    SELECT provider_id, count(*) AS n, max(finished_at) AS latest
    FROM submission WHERE finished_at IS NOT NULL GROUP BY provider_id
""")
_CORRECTED = text("SELECT provider_id, max(id) FROM record_history WHERE change = 'corrected' GROUP BY provider_id")
# A retention purge is recorded in the audit trail in the transaction that deletes (cldx.store.retention).
_PURGED = text("SELECT provider_id, max(id) FROM audit_event WHERE action = :action AND provider_id IS NOT NULL GROUP BY provider_id")


def store_versions(engine: Engine) -> dict[int, str]:
    """provider id -> a string that changes whenever that provider's analytic data may have."""
    with read_transaction(engine) as session:
        connection = session.connection()
        set_scope(connection, everything=True)
        versions = {int(p): f"{n}:{latest}" for p, n, latest in connection.execute(_SUBMITTED)}
        for p, last in connection.execute(_CORRECTED):
            versions[int(p)] = f"{versions.get(int(p), '0:')}:c{last}"
        for p, last in connection.execute(_PURGED, {"action": PURGE_ACTION}):
            versions[int(p)] = f"{versions.get(int(p), '0:')}:r{last}"
    return versions


def _store_identity(engine: Engine) -> str:
    """Which database the layer copies (never the password): a layer pointed at another is rebuilt."""
    return hashlib.sha256(engine.url.render_as_string(hide_password=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RefreshSummary:
    rebuilt: tuple[int, ...]
    removed: tuple[int, ...]
    rows: dict[str, int]


# --- The layer on disk and in DuckDB -------------------------------------------------------------------


class AnalyticLayer:
    """The Parquet files of one store and a warm DuckDB copy of them for this process."""

    def __init__(self, directory: Path, engine: Engine):
        self.directory = Path(directory)
        self.engine = engine
        self._store = _store_identity(engine)
        self._lock = threading.RLock()
        self._duck: duckdb.DuckDBPyConnection | None = None
        self._loaded: dict[int, str] = {}  # provider id -> version held in DuckDB

    # On disk -----------------------------------------------------------------------------------------

    def _manifest(self) -> dict:
        try:
            manifest = json.loads((self.directory / MANIFEST).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {"layout": LAYOUT, "store": self._store, "providers": {}}
        if manifest.get("layout") != LAYOUT or manifest.get("store") != self._store:
            return {"layout": LAYOUT, "store": self._store, "providers": {}}
        return manifest

    def built_versions(self) -> dict[int, str]:
        return {int(p): v for p, v in self._manifest()["providers"].items()}

    def _path(self, table: str, provider_id: int) -> Path:
        return self.directory / table / f"provider_id={provider_id}" / "data.parquet"

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        """One refresh at a time across processes (web workers, the CLI)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Pseudonymised, not anonymous: only the service's own user may enter the folder at all.
        self.directory.chmod(0o700)
        with open(self.directory / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def refresh(self, providers: set[int] | None = None, *,
                progress: Callable[[int, int], None] | None = None) -> RefreshSummary:
        """Rebuild the files of `providers` (default: those whose data changed) from the store."""
        with self._file_lock():
            wanted = store_versions(self.engine)
            manifest = self._manifest()
            built = {int(p): v for p, v in manifest["providers"].items()}
            if providers is None:
                providers = {p for p, v in wanted.items() if built.get(p) != v}
            removed = tuple(sorted(set(built) - set(wanted)))
            rows = dict.fromkeys(TABLES, 0)
            todo = sorted(providers & set(wanted))
            for done, provider_id in enumerate(todo, 1):
                with read_transaction(self.engine) as session:
                    connection = session.connection()
                    set_scope(connection, everything=True)
                    tables = build_provider_tables(connection, provider_id)
                for name, frame in tables.items():
                    path = self._path(name, provider_id)
                    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                    scratch = path.with_suffix(".parquet.tmp")
                    frame.write_parquet(scratch, statistics=True)
                    os.replace(scratch, path)  # readers see the old file or the new, never half of one
                    rows[name] += frame.height
                built[provider_id] = wanted[provider_id]
                if progress:
                    progress(done, len(todo))
            for provider_id in removed:
                for name in TABLES:
                    self._path(name, provider_id).unlink(missing_ok=True)
                built.pop(provider_id, None)
            manifest = {"layout": LAYOUT, "store": self._store,
                        "providers": {str(p): v for p, v in sorted(built.items())}}
            scratch = self.directory / (MANIFEST + ".tmp")
            scratch.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            os.replace(scratch, self.directory / MANIFEST)
        return RefreshSummary(tuple(todo), removed, rows)

    def ensure_current(self) -> RefreshSummary | None:
        """Bring the files up to date with the store (cheap when nothing changed); None if nothing did."""
        wanted = store_versions(self.engine)
        if wanted == self.built_versions():
            return None
        return self.refresh()

    # In DuckDB -------------------------------------------------------------------------------------------

    def query(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB cursor over the current layer (tables `clients`, `engagements`, `assessments`,
        `outcomes`), brought up to date with the store first."""
        self.ensure_current()
        with self._lock:
            built = self.built_versions()
            if self._duck is None:
                self._write_schemas()
                duck = duckdb.connect(":memory:")
                for name in TABLES:
                    duck.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet(?) LIMIT 0", [str(self._schema_path(name))])
                self._duck, self._loaded = duck, {}
            stale = {p for p, v in built.items() if self._loaded.get(p) != v} | (set(self._loaded) - set(built))
            if stale:
                self._reload(stale, built)
            return self._duck.cursor()

    def frame(self, sql: str, params: list | None = None) -> pl.DataFrame:
        """The result of one DuckDB query over the current layer, as a Polars frame."""
        return pl.DataFrame(self.query().sql(sql, params=params or None))

    def _schema_path(self, name: str) -> Path:
        return self.directory / "_schema" / f"{name}.parquet"

    def _write_schemas(self) -> None:
        """An empty file per table with its columns, so DuckDB knows them before any provider has data."""
        with read_transaction(self.engine) as session:
            connection = session.connection()
            set_scope(connection, everything=True)
            empty = build_provider_tables(connection, -1)
        for name, frame in empty.items():
            path = self._schema_path(name)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            scratch = path.with_suffix(".tmp")
            frame.write_parquet(scratch)
            os.replace(scratch, path)

    def _reload(self, stale: set[int], built: dict[int, str]) -> None:
        duck = self._duck
        assert duck is not None
        duck.execute("BEGIN")
        try:
            for name in TABLES:
                ids = ",".join(str(int(p)) for p in stale)
                duck.execute(f"DELETE FROM {name} WHERE provider_id IN ({ids})")
                files = [str(self._path(name, p)) for p in sorted(stale) if p in built and self._path(name, p).exists()]
                if files:
                    duck.execute(f"INSERT INTO {name} BY NAME SELECT * FROM read_parquet(?)", [files])
            duck.execute("COMMIT")
        except BaseException:
            duck.execute("ROLLBACK")
            raise
        for p in stale:
            if p in built:
                self._loaded[p] = built[p]
            else:
                self._loaded.pop(p, None)


_LAYERS: dict[tuple[str, str], AnalyticLayer] = {}
_LAYERS_LOCK = threading.Lock()


def layer_for(directory: Path, engine: Engine) -> AnalyticLayer:
    """The process's one layer per (directory, store): keeps DuckDB warm between requests, and
    between engines on the same database (each command opens its own)."""
    key = (str(Path(directory).resolve()), engine.url.render_as_string(hide_password=False))
    with _LAYERS_LOCK:
        layer = _LAYERS.get(key)
        if layer is None:
            layer = _LAYERS[key] = AnalyticLayer(directory, engine)
        layer.engine = engine  # the same database; the newest engine is the one still open
        return layer
