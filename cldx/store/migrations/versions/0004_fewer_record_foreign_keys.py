"""fewer record foreign keys: drop those another key implies, which cost a check per row

A child record's composite key to its parent (provider_id + client_ref or engagement_ref)
already pins its provider, so its own key to `provider` goes; attendance, assessments and
outcomes (most of the rows) also lose their keys to `submission`, a row the same transaction
writes and nothing deletes. On PostgreSQL these checks were most of the bulk load's time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

PROVIDER_IMPLIED = ('dependant', 'engagement', 'attendance', 'assessment', 'outcome')
HIGH_VOLUME = ('attendance', 'assessment', 'outcome')


def upgrade() -> None:
    for table in PROVIDER_IMPLIED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f'fk_{table}_provider_id_provider'), type_='foreignkey')
            if table in HIGH_VOLUME:
                batch_op.drop_constraint(op.f(f'fk_{table}_first_submission_id_submission'), type_='foreignkey')
                batch_op.drop_constraint(op.f(f'fk_{table}_last_submission_id_submission'), type_='foreignkey')


def downgrade() -> None:
    for table in PROVIDER_IMPLIED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(op.f(f'fk_{table}_provider_id_provider'), 'provider', ['provider_id'], ['id'])
            if table in HIGH_VOLUME:
                batch_op.create_foreign_key(op.f(f'fk_{table}_first_submission_id_submission'), 'submission', ['first_submission_id'], ['id'])
                batch_op.create_foreign_key(op.f(f'fk_{table}_last_submission_id_submission'), 'submission', ['last_submission_id'], ['id'])
