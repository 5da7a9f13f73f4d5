"""Bulk paths: whole Polars frames into the record tables, without an ORM object per row.

SQLite gets DB-API `executemany` with values already in SQLAlchemy's storage formats;
PostgreSQL gets `COPY ... FROM STDIN` fed by Polars' CSV writer. Both run on the caller's
connection, inside the caller's transaction, so a submission is stored whole or not at all.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl
from sqlalchemy import Connection, Numeric, String, Table, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY

from cldx.standard import RECORD_TYPES

from .models import IDENTITY_MODELS, RECORD_MODELS, RecordHistory
from .scope import SCOPED_TABLES

# Columns every record carries that are bookkeeping, not the record's own values.
BOOKKEEPING = ("id", "provider_id", "first_submission_id", "last_submission_id", "created_at", "updated_at", "withdrawn_at")
IDENTITY_VALUES = ("family_name", "given_names", "date_of_birth")


def record_table(record_type: str) -> Table:
    return RECORD_MODELS[record_type].__table__  # type: ignore[return-value]


def identity_table(record_type: str) -> Table | None:
    model = IDENTITY_MODELS.get(record_type)
    return model.__table__ if model is not None else None  # type: ignore[return-value]


def value_columns(record_type: str) -> list[str]:
    """The record's own analytic columns, in table order."""
    return [c.name for c in record_table(record_type).columns if c.name not in BOOKKEEPING]


def _polars_type(column) -> pl.DataType:
    python = column.type.python_type
    return {str: pl.String, int: pl.Int64, bool: pl.Boolean, float: pl.Float64}.get(python) or (
        pl.Date if python.__name__ == "date" else pl.Datetime("us", "UTC") if python is datetime else pl.Float64
    )


def _schema(table: Table, columns: list[str]) -> dict[str, pl.DataType]:
    return {name: _polars_type(table.c[name]) for name in columns}


def read_frame(connection: Connection, table: Table, columns: list[str], *where) -> pl.DataFrame:
    """Rows of `table` as a typed Polars frame (Decimals read as floats)."""
    schema = _schema(table, columns)
    rows = connection.execute(select(*[table.c[name] for name in columns]).where(*where)).all()
    if not rows:
        return pl.DataFrame(schema=schema)
    numeric = [i for i, name in enumerate(columns) if schema[name] == pl.Float64]
    if numeric:
        rows = [tuple(float(v) if i in numeric and v is not None else v for i, v in enumerate(r)) for r in rows]
    return pl.DataFrame(rows, schema=schema, orient="row")


# --- Writing --------------------------------------------------------------------------------


def _sqlite_values(frame: pl.DataFrame, table: Table) -> list[tuple]:
    """Rows with dates and times as the text SQLAlchemy's SQLite dialect stores and reads back."""
    exprs = []
    for name in frame.columns:
        dtype = frame.schema[name]
        if dtype == pl.Date:
            exprs.append(pl.col(name).dt.strftime("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(pl.col(name).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%d %H:%M:%S.%6f"))
        else:
            exprs.append(pl.col(name))
    return frame.select(exprs).rows()


_ROW_SECURITY = "cldx_under_row_security"


def _under_row_security(connection: Connection) -> bool:
    """Whether row-level security applies to this connection's role (not a superuser, no BYPASSRLS)."""
    info = connection.connection.info  # the DB-API connection's: one answer per pooled connection
    if _ROW_SECURITY not in info:
        info[_ROW_SECURITY] = not connection.exec_driver_sql(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").scalar_one()
    return info[_ROW_SECURITY]


def insert_frame(connection: Connection, table: Table, frame: pl.DataFrame) -> int:
    """Insert every row of `frame` (its columns named as the table's) into `table`."""
    if frame.height == 0:
        return 0
    columns = frame.columns
    dialect = connection.dialect.name
    if dialect == "postgresql":
        buffer = io.BytesIO()
        frame.write_csv(buffer, include_header=False, null_value="")
        driver = connection.connection.driver_connection
        quoted = ", ".join(f'"{c}"' for c in columns)
        with driver.cursor() as cursor:
            if table.name in SCOPED_TABLES and _under_row_security(connection):
                # PostgreSQL refuses COPY into a table with row-level security for a role it
                # applies to: copy into a scratch table and insert from it, so every row still
                # passes the provider policy. One scratch table per table and connection, made
                # once and emptied at every commit: making and dropping one per insert wrote the
                # system catalogs each time, a third of PostgreSQL's work for a submission.
                scratch = f"cldx_load_{table.name}"
                cursor.execute(f'CREATE TEMP TABLE IF NOT EXISTS "{scratch}" ON COMMIT DELETE ROWS '
                               f'AS SELECT * FROM "{table.name}" WITH NO DATA')
                with cursor.copy(f'COPY "{scratch}" ({quoted}) FROM STDIN WITH (FORMAT csv)') as copy:
                    copy.write(buffer.getvalue())
                # Emptied at once too: a second insert into the table in this transaction must not repeat these rows.
                cursor.execute(f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM "{scratch}"; DELETE FROM "{scratch}"')
            else:
                with cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN WITH (FORMAT csv)') as copy:
                    copy.write(buffer.getvalue())
        return frame.height
    placeholders = ", ".join("?" for _ in columns)
    sql = f'INSERT INTO "{table.name}" ({", ".join(columns)}) VALUES ({placeholders})'
    connection.connection.driver_connection.executemany(sql, _sqlite_values(frame, table))
    return frame.height


def update_by_id(connection: Connection, table: Table, frame: pl.DataFrame) -> int:
    """Set the frame's columns (other than `id`) on the rows with those ids."""
    if frame.height == 0:
        return 0
    columns = [c for c in frame.columns if c != "id"]
    ordered = frame.select(*columns, "id")
    if connection.dialect.name == "postgresql":
        assignments = ", ".join(f'"{c}" = %s' for c in columns)
        sql = f'UPDATE "{table.name}" SET {assignments} WHERE id = %s'
        with connection.connection.driver_connection.cursor() as cursor:
            cursor.executemany(sql, ordered.rows())
    else:
        assignments = ", ".join(f'"{c}" = ?' for c in columns)
        sql = f'UPDATE "{table.name}" SET {assignments} WHERE id = ?'
        connection.connection.driver_connection.executemany(sql, _sqlite_values(ordered, table))
    return frame.height


# --- Upserting a record type ----------------------------------------------------------------


@dataclass
class UpsertResult:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    # Rows (file, row) that asked to withdraw something not stored: the caller warns about them.
    unknown_withdrawals: pl.DataFrame = field(default_factory=pl.DataFrame)


# Stored rows are read by the keys sent while there are at most this many (on SQLite in statements of
# at most KEYED_READ_CHUNK: it takes 32,766 parameters); past it, one scan of the provider's rows is cheaper.
KEYED_READ_LIMIT = 20_000
KEYED_READ_CHUNK = 5_000
SEPARATOR = "\x1f"  # between keys sent to PostgreSQL as one text (ASCII's unit separator)


def read_by_keys(connection: Connection, table: Table, columns: list[str], provider_id: int, sent: pl.Series, *where) -> pl.DataFrame:
    """The provider's rows of `table` (meeting `where` too) whose column `sent.name` holds one of the values in `sent`.

    For the upsert and validation: only stored rows whose key was sent can meet a record sent (a
    superset for a composite key, matched exactly by the join after), and reading the provider's
    whole table instead made each submission slower the more it had sent before."""
    values = sent.drop_nulls().unique().sort().to_list()
    column, own = table.c[sent.name], table.c.provider_id == provider_id
    if len(values) > KEYED_READ_LIMIT:
        return read_frame(connection, table, columns, own, *where).filter(pl.col(sent.name).is_in(values))
    if not values:  # nothing sent: no rows, the right columns, and no need to ask
        return pl.DataFrame(schema=_schema(table, columns))
    if connection.dialect.name == "postgresql":
        # One array parameter: PostgreSQL plans `= ANY(array)` in half the time of a list of 1,000 values.
        # Planned for this array each time, never from a plan kept for the statement: psycopg
        # prepares a statement run five times and PostgreSQL may then keep one generic plan, costed
        # with the statistics of that moment; made while a provider held a few rows, it went on
        # testing every row the provider holds against the array one value at a time (an array
        # bound at execution is not hashed), and the read grew with every batch stored.
        driver = connection.connection.driver_connection
        threshold, driver.prepare_threshold = driver.prepare_threshold, None
        try:
            # The keys as one text split by the database: psycopg quotes a list parameter value by value,
            # as long again as the read itself. As a list when a key holds the separator, or when the
            # only key is empty (string_to_array makes no element of an empty text).
            joined = SEPARATOR.join(values)
            if joined.count(SEPARATOR) == len(values) - 1 and joined:
                sent_array = func.string_to_array(bindparam("sent", joined, type_=String), SEPARATOR, type_=ARRAY(column.type))
            else:
                sent_array = bindparam("sent", values, type_=ARRAY(column.type))
            return read_frame(connection, table, columns, own, column == any_(sent_array), *where)
        finally:
            driver.prepare_threshold = threshold
    parts = [read_frame(connection, table, columns, own, column.in_(values[i:i + KEYED_READ_CHUNK]), *where)
             for i in range(0, len(values), KEYED_READ_CHUNK)]
    return pl.concat(parts) if len(parts) > 1 else parts[0]


UPSERT_PLAN = pl.QueryOptFlags.none(comm_subplan_elim=True)


def _same(a: str, b: str) -> pl.Expr:
    return pl.col(a).eq_missing(pl.col(b))


def upsert_records(
    connection: Connection,
    *,
    record_type: str,
    provider_id: int,
    submission_id: str,
    frame: pl.DataFrame,
    now: datetime,
    stored_identity: pl.DataFrame | None = None,
    seal_identity: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    stored_rows: pl.DataFrame | None = None,
    file_col: str = "__file",
    row_col: str = "__row",
) -> UpsertResult:
    """Store accepted records by key: insert new ones, update changed ones (keeping history), withdraw.

    `frame` holds the standard's typed values plus `action` and the file/row columns. Sending
    the same records again finds every one unchanged and writes nothing.

    Identity values are sealed at rest and the store holds no keys, so for a record type with an
    identity table the caller passes the provider's stored identity already opened
    (`stored_identity`: the key columns and the plain values) to compare with, and
    `seal_identity`, which turns plain identity columns into what is stored.

    `stored_rows`: the provider's stored rows (withdrawn ones too) of at least the keys sent, as
    `read_by_keys` reads them, when the caller has read them in this same transaction already.
    """
    if frame.height == 0:
        return UpsertResult(unknown_withdrawals=pl.DataFrame(schema={file_col: pl.String, row_col: pl.Int64}))
    table = record_table(record_type)
    identity = identity_table(record_type)
    # Columns the caller did not send (person_key before the identity part sets it) are left alone.
    values = [c for c in value_columns(record_type) if c in frame.columns]
    keys = [c.name for c in table.columns if c.name in RECORD_TYPES[record_type].key]
    id_values = list(IDENTITY_VALUES) if identity is not None else []

    if identity is not None and (stored_identity is None or seal_identity is None):
        raise ValueError(f"{record_type} records carry identity: pass stored_identity (opened) and seal_identity")
    if stored_rows is None:
        stored = read_by_keys(connection, table, ["id", *values, "withdrawn_at"], provider_id, frame[keys[0]])
    else:
        stored = stored_rows.select("id", *values, "withdrawn_at")
    stored = stored.lazy()
    if identity is not None:
        stored = stored.join(stored_identity.lazy().select(*keys, *id_values), on=keys, how="left")
    is_stored = pl.col("id__old").is_not_null()
    was_withdrawn = pl.col("withdrawn_at__old").is_not_null()
    compared = [c for c in values + id_values if c not in keys]
    same = pl.all_horizontal([_same(c, f"{c}__old") for c in compared]) if compared else pl.lit(True)
    withdraw = pl.col("action") == "withdraw"
    joined = (
        frame.lazy().select(file_col, row_col, "action", *values, *id_values)
        # A NUMERIC(p, s) column keeps s decimals: compare and store what it will hold, or 5.125
        # (stored as 5.12 or 5.13) would read as changed every time the same file is sent.
        .with_columns(pl.col(c).round(table.c[c].type.scale) for c in values
                      if isinstance(table.c[c].type, Numeric) and table.c[c].type.scale is not None)
        .join(stored.rename({c: f"{c}__old" for c in stored.collect_schema().names() if c not in keys}), on=keys, how="left")
        .with_columns(
            pl.when(withdraw & is_stored & ~was_withdrawn).then(pl.lit("withdrawn"))
            .when(withdraw).then(pl.lit("unknown-withdrawal"))
            .when(~is_stored).then(pl.lit("new"))
            .when(was_withdrawn).then(pl.lit("reinstated"))
            .when(same).then(pl.lit("unchanged"))
            .otherwise(pl.lit("changed"))
            .alias("__outcome")
        )
    )
    outcome = pl.col("__outcome")
    new = outcome == "new"
    parts = {
        "outcomes": joined.select("__outcome"),
        "new": joined.filter(new).select(
            *values,
            pl.lit(provider_id).alias("provider_id"),
            pl.lit(submission_id).alias("first_submission_id"),
            pl.lit(submission_id).alias("last_submission_id"),
            pl.lit(now).alias("created_at"),
            pl.lit(now).alias("updated_at"),
        ),
        "touched": joined.filter(outcome.is_in(["changed", "reinstated", "withdrawn"])),
        "unknown withdrawals": joined.filter(outcome == "unknown-withdrawal").select(file_col, row_col, *keys),
    }
    if identity is not None:
        parts["new identity"] = joined.filter(new & pl.any_horizontal([pl.col(c).is_not_null() for c in id_values])).select(
            pl.lit(provider_id).alias("provider_id"), *keys, *id_values)
    # Every part in one go: the join is made once and each part taken from it (as eager steps,
    # each cost as much again in Polars' own overhead as the work it did). No other optimisation:
    # on a batch's few hundred rows planning them cost a fifth of the upsert and saved nothing.
    got = dict(zip(parts, pl.collect_all(parts.values(), engine="in-memory", optimizations=UPSERT_PLAN)))
    touched = got["touched"]

    insert_frame(connection, table, got["new"])
    if identity is not None:
        insert_frame(connection, identity, seal_identity(got["new identity"]))

    if touched.height:
        history = touched.select(
            pl.lit(record_type).alias("record_type"),
            pl.col("id__old").alias("record_id"),
            pl.lit(provider_id).alias("provider_id"),
            pl.lit(submission_id).alias("submission_id"),
            pl.col("__outcome").alias("change"),
            pl.struct([pl.col(f"{c}__old").alias(c) for c in values if c not in keys]).struct.json_encode().alias("previous"),
            pl.lit(now).alias("changed_at"),
        )
        insert_frame(connection, RecordHistory.__table__, history)  # type: ignore[arg-type]
        withdrawn = pl.col("__outcome") == "withdrawn"
        update_by_id(connection, table, touched.select(
            pl.col("id__old").alias("id"),
            *[pl.when(withdrawn).then(pl.col(f"{c}__old")).otherwise(pl.col(c)).alias(c) for c in values if c not in keys],
            pl.lit(submission_id).alias("last_submission_id"),
            pl.lit(now).alias("updated_at"),
            pl.when(withdrawn).then(pl.lit(now)).otherwise(None).alias("withdrawn_at"),
        ))
        if identity is not None:
            _replace_identity(connection, identity, provider_id, keys, id_values, touched.filter(~withdrawn), seal_identity)

    by = Counter(got["outcomes"]["__outcome"].to_list())
    return UpsertResult(
        new=by["new"],
        changed=by["changed"] + by["reinstated"] + by["withdrawn"],
        unchanged=by["unchanged"],
        unknown_withdrawals=got["unknown withdrawals"],
    )


def _replace_identity(connection: Connection, identity: Table, provider_id: int, keys: list[str], id_values: list[str], rows: pl.DataFrame,
                      seal_identity: Callable[[pl.DataFrame], pl.DataFrame]) -> None:
    """Changed identity values: delete the stored row and insert the new one (fewer statements than upserting)."""
    changed = rows.filter(~pl.all_horizontal([_same(c, f"{c}__old") for c in id_values]))
    if not changed.height:
        return
    key_rows = changed.select(*keys).rows()
    placeholder = "%s" if connection.dialect.name == "postgresql" else "?"
    condition = " AND ".join(f'"{k}" = {placeholder}' for k in keys)
    sql = f'DELETE FROM "{identity.name}" WHERE provider_id = {placeholder} AND {condition}'
    driver = connection.connection.driver_connection
    params = [(provider_id, *k) for k in key_rows]
    if connection.dialect.name == "postgresql":
        with driver.cursor() as cursor:
            cursor.executemany(sql, params)
    else:
        driver.executemany(sql, params)
    insert_frame(connection, identity, seal_identity(changed.filter(pl.any_horizontal([pl.col(c).is_not_null() for c in id_values])).select(
        pl.lit(provider_id).alias("provider_id"), *keys, *id_values)))
