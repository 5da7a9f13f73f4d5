"""correction index: find a provider's latest Privacy Act correction without reading its history

The analytic layer (cldx.analysis.layer) asks, before every report, which providers' data
changed since it was built: new submissions, or a record corrected under a Privacy Act request.
A partial index keeps the second question cheap however long the history grows.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        'ix_record_history_corrected', 'record_history', ['provider_id', 'id'],
        postgresql_where=sa.text("change = 'corrected'"), sqlite_where=sa.text("change = 'corrected'"),
    )


def downgrade() -> None:
    op.drop_index('ix_record_history_corrected', table_name='record_history')
