"""no per-row keys from records to reference rows: engagements to service lines, clients to providers

Each row stored checked its key to a reference row, and a key check takes a share lock on the
row it finds. Every engagement of every provider locked the same few `service_line` rows, so
submissions running in parallel queued to share those locks, and the checks were a fifth of
PostgreSQL's work for a submission (about 5 ms of 25 per 1,000 records); a client's key to its
provider cost about 1.5 ms more. Neither says anything the rest does not: a service code is
checked against the registry's service lines before anything is stored, a client's provider is
the one the submission is stored under, and no service line or provider is ever deleted. The
composite keys between records (an engagement's client, an assessment's engagement) stay.

On SQLite, dropping a key means copying the table (Alembic's batch mode), and dropping the old
copy of `client` while engagements refer to it would fail with foreign keys enforced: they are
off while the tables are copied and checked after, as in 0012.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

# table, key name, its columns, the table and columns it refers to
KEYS = (
    ('engagement', 'fk_engagement_service_code_service_line', ['service_code'], 'service_line', ['code']),
    ('client', 'fk_client_provider_id_provider', ['provider_id'], 'provider', ['id']),
)


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
    for table, name, _, _, _ in KEYS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(name), type_='foreignkey')
    _foreign_keys(True)
    # The service code keeps the type it had from its key (the service line's code).
    with op.batch_alter_table('engagement', schema=None) as batch_op:
        batch_op.alter_column('service_code', existing_type=sa.String(length=20), existing_nullable=False)


def downgrade() -> None:
    _foreign_keys(False)
    for table, name, columns, referred, referred_columns in KEYS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(op.f(name), referred, columns, referred_columns)
    _foreign_keys(True)
