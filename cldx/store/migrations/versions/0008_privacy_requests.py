"""privacy requests: Privacy Act access and correction requests, their subject sealed

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('privacy_request',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reference', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('opened_by', sa.String(length=100), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('closed_by', sa.String(length=100), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_privacy_request')),
    sa.UniqueConstraint('reference', name=op.f('uq_privacy_request_reference'))
    )
    if op.get_context().dialect.name == 'postgresql':
        # 0006's default privileges cover tables made by the role that ran it; this covers any other owner.
        op.execute("GRANT SELECT, INSERT, UPDATE ON privacy_request TO cldx_app")


def downgrade() -> None:
    op.drop_table('privacy_request')
