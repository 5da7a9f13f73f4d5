"""Provider scoping in the database: PostgreSQL row-level security on every provider-owned table.

The application scopes every read and write to the caller's provider itself; on PostgreSQL the
database enforces the same, so even a faulty query (a forgotten WHERE) cannot read or write
another provider's rows. Each transaction says whose data it works on:

    set_scope(connection, provider_id=5)      # one provider's own work (a submission, its pages)
    set_scope(connection, everything=True)    # ministry-wide work (the worker, analysis, the CLI)

Both are transaction-local (`set_config(..., true)`), so a pooled connection never carries one
request's provider into the next. A transaction that sets neither sees no provider rows at all.
An engine can be given a connection-wide default (`make_engine(url, default_scope="all")`) for
trusted tools such as the CLI; the web app scopes each request instead.

The policies live in migration 0006 and apply to the application's role (`cldx_app`, which
has no BYPASSRLS) and, being FORCEd, to the tables' owner too; only a superuser bypasses them.
SQLite has no row-level security: there the application's own scoping is the one guard.
"""

from __future__ import annotations

from sqlalchemy import Connection

# The role the application connects as (a login role granted this one); made by migration 0006.
APP_ROLE = "cldx_app"
SCOPE_ALL = "all"
SCOPE_PROVIDER = "provider"

# Tables holding one provider's data, and how a row names its provider.
DIRECT = (
    "submission", "client", "dependant", "engagement", "attendance", "assessment", "outcome",
    "client_identity", "dependant_identity", "record_history",
)
VIA_SUBMISSION = ("submission_file", "submission_finding", "quarantined_row", "job")
VIA_JOB = ("job_file",)
SCOPED_TABLES = DIRECT + VIA_SUBMISSION + VIA_JOB


def set_scope(connection: Connection, *, provider_id: int | None = None, everything: bool = False) -> None:
    """Scope the current transaction to one provider, or to everything (ministry-wide work)."""
    if connection.dialect.name != "postgresql":
        return
    if everything == (provider_id is not None):
        raise ValueError("give either provider_id or everything=True")
    scope, provider = (SCOPE_ALL, "") if everything else (SCOPE_PROVIDER, str(int(provider_id)))  # type: ignore[arg-type]
    connection.exec_driver_sql(
        "SELECT set_config('cldx.scope', %s, true), set_config('cldx.provider_id', %s, true)", (scope, provider)
    )
