"""audit unique link: no two audit entries may chain to the same previous entry

A plain CREATE UNIQUE INDEX, not a batch table copy, so SQLite keeps 0007's triggers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('uq_audit_event_prev_hash', 'audit_event', ['prev_hash'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_audit_event_prev_hash', table_name='audit_event')
