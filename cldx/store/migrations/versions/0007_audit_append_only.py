"""audit trail append-only: triggers refuse UPDATE, DELETE (and on PostgreSQL TRUNCATE) of audit entries

Migration 0006 already denies the application role those privileges on PostgreSQL; these
triggers also stop the tables' owner and every SQLite deployment, so an entry changes only
by someone who first drops or disables a trigger (which `cldx audit verify` then still shows
through the hash chain, see cldx.access.audit).

On SQLite a later migration that batch-alters `audit_event` copies the table and so loses
these triggers: such a migration must create them again (`create_triggers` below).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

MESSAGE = "audit_event is append-only"

POSTGRES_UP = (
    f"""
    CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{MESSAGE}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    "CREATE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event"
    " FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()",
    "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event"
    " FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()",
)
POSTGRES_DOWN = (
    "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
    "DROP TRIGGER IF EXISTS audit_event_no_change ON audit_event",
    "DROP FUNCTION IF EXISTS audit_event_append_only()",
)
SQLITE_UP = (
    f"CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event BEGIN SELECT RAISE(ABORT, '{MESSAGE}: UPDATE refused'); END",
    f"CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event BEGIN SELECT RAISE(ABORT, '{MESSAGE}: DELETE refused'); END",
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS audit_event_no_delete",
    "DROP TRIGGER IF EXISTS audit_event_no_update",
)


def create_triggers() -> None:
    for statement in POSTGRES_UP if op.get_context().dialect.name == 'postgresql' else SQLITE_UP:
        op.execute(statement)


def upgrade() -> None:
    create_triggers()


def downgrade() -> None:
    for statement in POSTGRES_DOWN if op.get_context().dialect.name == 'postgresql' else SQLITE_DOWN:
        op.execute(statement)
