"""sealed identity: names and dates of birth held as AES-GCM sealed text

Identity columns become TEXT because a sealed value (`enc1:<key id>:<base64>`) is longer than
the plain one and a sealed date of birth is no longer a date. Values already stored in plain
text are sealed by `cldx init` right after this upgrade (a migration holds no keys).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

IDENTITY_TABLES = ('client_identity', 'dependant_identity')


def upgrade() -> None:
    for table in IDENTITY_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('family_name', existing_type=sa.String(length=100), type_=sa.Text(), existing_nullable=True)
            batch_op.alter_column('given_names', existing_type=sa.String(length=100), type_=sa.Text(), existing_nullable=True)
            batch_op.alter_column('date_of_birth', existing_type=sa.Date(), type_=sa.Text(), existing_nullable=True,
                                  postgresql_using='date_of_birth::text')


def downgrade() -> None:
    # Only a store without sealed values can go back: a sealed date of birth is not a date.
    for table in IDENTITY_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('date_of_birth', existing_type=sa.Text(), type_=sa.Date(), existing_nullable=True,
                                  postgresql_using='date_of_birth::date')
            batch_op.alter_column('given_names', existing_type=sa.Text(), type_=sa.String(length=100), existing_nullable=True)
            batch_op.alter_column('family_name', existing_type=sa.Text(), type_=sa.String(length=100), existing_nullable=True)
