"""submissions: findings, quarantine, history, job queue; records lose row_hash

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('job',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('submission_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('locked_by', sa.String(length=100), nullable=True),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('progress_done', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=False),
    sa.Column('progress_step', sa.String(length=100), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], name=op.f('fk_job_submission_id_submission'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job')),
    sa.UniqueConstraint('submission_id', name=op.f('uq_job_submission_id'))
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index('ix_job_status', ['status', 'id'], unique=False)

    op.create_table('quarantined_row',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('submission_id', sa.String(length=36), nullable=False),
    sa.Column('record_type', sa.String(length=20), nullable=False),
    sa.Column('file', sa.String(length=255), nullable=False),
    sa.Column('sheet', sa.String(length=100), nullable=True),
    sa.Column('row', sa.Integer(), nullable=False),
    sa.Column('cells', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], name=op.f('fk_quarantined_row_submission_id_submission'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantined_row'))
    )
    with op.batch_alter_table('quarantined_row', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantined_row_submission_id'), ['submission_id'], unique=False)

    op.create_table('record_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('record_type', sa.String(length=20), nullable=False),
    sa.Column('record_id', sa.BigInteger(), nullable=False),
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('submission_id', sa.String(length=36), nullable=False),
    sa.Column('change', sa.String(length=20), nullable=False),
    sa.Column('previous', sa.Text(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_record_history_provider_id_provider')),
    sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], name=op.f('fk_record_history_submission_id_submission')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_record_history'))
    )
    with op.batch_alter_table('record_history', schema=None) as batch_op:
        batch_op.create_index('ix_record_history_record', ['record_type', 'record_id'], unique=False)

    op.create_table('submission_finding',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('submission_id', sa.String(length=36), nullable=False),
    sa.Column('file', sa.String(length=255), nullable=False),
    sa.Column('sheet', sa.String(length=100), nullable=True),
    sa.Column('row', sa.Integer(), nullable=True),
    sa.Column('field', sa.String(length=100), nullable=True),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('rule', sa.String(length=40), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('fix', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], name=op.f('fk_submission_finding_submission_id_submission'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_submission_finding'))
    )
    with op.batch_alter_table('submission_finding', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_submission_finding_submission_id'), ['submission_id'], unique=False)

    op.create_table('job_file',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], name=op.f('fk_job_file_job_id_job'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_file'))
    )
    with op.batch_alter_table('job_file', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_file_job_id'), ['job_id'], unique=False)

    with op.batch_alter_table('assessment', schema=None) as batch_op:
        batch_op.drop_column('row_hash')

    with op.batch_alter_table('attendance', schema=None) as batch_op:
        batch_op.drop_column('row_hash')

    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.drop_column('row_hash')

    with op.batch_alter_table('dependant', schema=None) as batch_op:
        batch_op.drop_column('row_hash')

    with op.batch_alter_table('engagement', schema=None) as batch_op:
        batch_op.drop_column('row_hash')

    with op.batch_alter_table('outcome', schema=None) as batch_op:
        batch_op.drop_column('row_hash')

    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mode', sa.String(length=20), nullable=False, server_default='partial'))
        batch_op.add_column(sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('error', sa.Text(), nullable=True))




def downgrade() -> None:

    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.drop_column('error')
        batch_op.drop_column('finished_at')
        batch_op.drop_column('mode')

    with op.batch_alter_table('outcome', schema=None) as batch_op:
        batch_op.add_column(sa.Column('row_hash', sa.VARCHAR(length=64), nullable=False, server_default=''))

    with op.batch_alter_table('engagement', schema=None) as batch_op:
        batch_op.add_column(sa.Column('row_hash', sa.VARCHAR(length=64), nullable=False, server_default=''))

    with op.batch_alter_table('dependant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('row_hash', sa.VARCHAR(length=64), nullable=False, server_default=''))

    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('row_hash', sa.VARCHAR(length=64), nullable=False, server_default=''))

    with op.batch_alter_table('attendance', schema=None) as batch_op:
        batch_op.add_column(sa.Column('row_hash', sa.VARCHAR(length=64), nullable=False, server_default=''))

    with op.batch_alter_table('assessment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('row_hash', sa.VARCHAR(length=64), nullable=False, server_default=''))

    with op.batch_alter_table('job_file', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_file_job_id'))

    op.drop_table('job_file')
    with op.batch_alter_table('submission_finding', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_submission_finding_submission_id'))

    op.drop_table('submission_finding')
    with op.batch_alter_table('record_history', schema=None) as batch_op:
        batch_op.drop_index('ix_record_history_record')

    op.drop_table('record_history')
    with op.batch_alter_table('quarantined_row', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantined_row_submission_id'))

    op.drop_table('quarantined_row')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index('ix_job_status')

    op.drop_table('job')

