"""no record keys to submissions: clients, dependants and engagements lose theirs too

Migration 0004 dropped the keys of attendance, assessments and outcomes to `submission`; this
drops those of the other records. A record's first and last submission are written by the
same transaction as the record and never deleted (retention keeps receipts), and checking them
for every row stored was a fifth of PostgreSQL's work for a submission.

On SQLite, dropping a key means copying the table (Alembic's batch mode), and dropping the old
copy of `client` while engagements refer to it would fail with foreign keys enforced: they are
off while the tables are copied and checked after.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

TABLES = ('client', 'dependant', 'engagement')
KEYS = ('first_submission_id', 'last_submission_id')


def _foreign_keys(enforced: bool) -> None:
    """SQLite only: a pragma that takes effect outside a transaction only."""
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.get_context().autocommit_block():
        op.execute(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")
        if enforced:
            broken = op.get_bind().exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"rows refer to rows that are missing after copying the tables: {broken[:5]}")


def upgrade() -> None:
    _foreign_keys(False)
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for key in KEYS:
                batch_op.drop_constraint(op.f(f'fk_{table}_{key}_submission'), type_='foreignkey')
    _foreign_keys(True)


def downgrade() -> None:
    _foreign_keys(False)
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for key in KEYS:
                batch_op.create_foreign_key(op.f(f'fk_{table}_{key}_submission'), 'submission', [key], ['id'])
    _foreign_keys(True)
