"""initial schema: registry, submissions, users, records, identity

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('app_user',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_user')),
    sa.UniqueConstraint('username', name=op.f('uq_app_user_username'))
    )
    op.create_table('provider',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('region_code', sa.String(length=2), nullable=False),
    sa.Column('ta_code', sa.String(length=3), nullable=True),
    sa.Column('sends_identity', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider')),
    sa.UniqueConstraint('code', name=op.f('uq_provider_code'))
    )
    op.create_table('service_line',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('min_client_age', sa.Integer(), nullable=True),
    sa.Column('max_client_age', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_line')),
    sa.UniqueConstraint('code', name=op.f('uq_service_line_code'))
    )
    op.create_table('contract',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('contract_ref', sa.String(length=40), nullable=False),
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('service_line_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('funding_nzd', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('data_clause', sa.Boolean(), nullable=False),
    sa.Column('collection_start', sa.Date(), nullable=True),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('reporting_frequency', sa.String(length=20), nullable=False),
    sa.Column('due_day', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('due_day BETWEEN 1 AND 28', name=op.f('ck_contract_due_day_range')),
    sa.CheckConstraint('funding_nzd >= 0', name=op.f('ck_contract_funding_not_negative')),
    sa.CheckConstraint('period_end >= period_start', name=op.f('ck_contract_period_order')),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_contract_provider_id_provider')),
    sa.ForeignKeyConstraint(['service_line_id'], ['service_line.id'], name=op.f('fk_contract_service_line_id_service_line')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contract')),
    sa.UniqueConstraint('contract_ref', name=op.f('uq_contract_contract_ref'))
    )
    with op.batch_alter_table('contract', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contract_provider_id'), ['provider_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contract_service_line_id'), ['service_line_id'], unique=False)

    op.create_table('submission',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submitter', sa.String(length=200), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('standard_version', sa.String(length=10), nullable=False),
    sa.Column('n_new', sa.Integer(), nullable=False),
    sa.Column('n_changed', sa.Integer(), nullable=False),
    sa.Column('n_unchanged', sa.Integer(), nullable=False),
    sa.Column('n_warned', sa.Integer(), nullable=False),
    sa.Column('n_rejected', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_submission_provider_id_provider')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_submission'))
    )
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_submission_provider_id'), ['provider_id'], unique=False)

    op.create_table('user_role',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('role', sa.String(length=30), nullable=False),
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_user_role_provider_id_provider')),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_user_role_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_role')),
    sa.UniqueConstraint('user_id', 'role', 'provider_id', name=op.f('uq_user_role_user_id_role_provider_id'))
    )
    with op.batch_alter_table('user_role', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_role_user_id'), ['user_id'], unique=False)

    op.create_table('client',
    sa.Column('client_ref', sa.String(length=40), nullable=False),
    sa.Column('person_key', sa.String(length=64), nullable=True),
    sa.Column('birth_year_month', sa.String(length=7), nullable=True),
    sa.Column('gender', sa.String(length=2), nullable=False),
    sa.Column('primary_ethnicity', sa.String(length=5), nullable=False),
    sa.Column('iwi_1', sa.String(length=4), nullable=True),
    sa.Column('iwi_2', sa.String(length=4), nullable=True),
    sa.Column('iwi_3', sa.String(length=4), nullable=True),
    sa.Column('area', sa.String(length=6), nullable=False),
    sa.Column('notified_of_sharing_on', sa.Date(), nullable=True),
    sa.Column('identity_consent', sa.Boolean(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('first_submission_id', sa.String(length=36), nullable=True),
    sa.Column('last_submission_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['first_submission_id'], ['submission.id'], name=op.f('fk_client_first_submission_id_submission')),
    sa.ForeignKeyConstraint(['last_submission_id'], ['submission.id'], name=op.f('fk_client_last_submission_id_submission')),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_client_provider_id_provider')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_client')),
    sa.UniqueConstraint('provider_id', 'client_ref', name=op.f('uq_client_provider_id_client_ref'))
    )
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_client_person_key'), ['person_key'], unique=False)

    op.create_table('submission_file',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('submission_id', sa.String(length=36), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('record_type', sa.String(length=20), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], name=op.f('fk_submission_file_submission_id_submission'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_submission_file'))
    )
    with op.batch_alter_table('submission_file', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_submission_file_submission_id'), ['submission_id'], unique=False)

    op.create_table('client_identity',
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('client_ref', sa.String(length=40), nullable=False),
    sa.Column('family_name', sa.String(length=100), nullable=True),
    sa.Column('given_names', sa.String(length=100), nullable=True),
    sa.Column('date_of_birth', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['provider_id', 'client_ref'], ['client.provider_id', 'client.client_ref'], name=op.f('fk_client_identity_provider_id_client_ref_client'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('provider_id', 'client_ref', name=op.f('pk_client_identity'))
    )
    op.create_table('dependant',
    sa.Column('dependant_ref', sa.String(length=40), nullable=False),
    sa.Column('client_ref', sa.String(length=40), nullable=False),
    sa.Column('birth_year_month', sa.String(length=7), nullable=True),
    sa.Column('relationship', sa.String(length=20), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('first_submission_id', sa.String(length=36), nullable=True),
    sa.Column('last_submission_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['first_submission_id'], ['submission.id'], name=op.f('fk_dependant_first_submission_id_submission')),
    sa.ForeignKeyConstraint(['last_submission_id'], ['submission.id'], name=op.f('fk_dependant_last_submission_id_submission')),
    sa.ForeignKeyConstraint(['provider_id', 'client_ref'], ['client.provider_id', 'client.client_ref'], name=op.f('fk_dependant_provider_id_client_ref_client')),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_dependant_provider_id_provider')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dependant')),
    sa.UniqueConstraint('provider_id', 'dependant_ref', name=op.f('uq_dependant_provider_id_dependant_ref'))
    )
    op.create_table('engagement',
    sa.Column('engagement_ref', sa.String(length=40), nullable=False),
    sa.Column('client_ref', sa.String(length=40), nullable=False),
    sa.Column('service_code', sa.String(length=20), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('end_reason', sa.String(length=20), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('first_submission_id', sa.String(length=36), nullable=True),
    sa.Column('last_submission_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['first_submission_id'], ['submission.id'], name=op.f('fk_engagement_first_submission_id_submission')),
    sa.ForeignKeyConstraint(['last_submission_id'], ['submission.id'], name=op.f('fk_engagement_last_submission_id_submission')),
    sa.ForeignKeyConstraint(['provider_id', 'client_ref'], ['client.provider_id', 'client.client_ref'], name=op.f('fk_engagement_provider_id_client_ref_client')),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_engagement_provider_id_provider')),
    sa.ForeignKeyConstraint(['service_code'], ['service_line.code'], name=op.f('fk_engagement_service_code_service_line')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_engagement')),
    sa.UniqueConstraint('provider_id', 'engagement_ref', name=op.f('uq_engagement_provider_id_engagement_ref'))
    )
    with op.batch_alter_table('engagement', schema=None) as batch_op:
        batch_op.create_index('ix_engagement_provider_client', ['provider_id', 'client_ref'], unique=False)

    op.create_table('assessment',
    sa.Column('engagement_ref', sa.String(length=40), nullable=False),
    sa.Column('phase', sa.String(length=4), nullable=False),
    sa.Column('instrument', sa.String(length=20), nullable=False),
    sa.Column('domain', sa.String(length=40), nullable=False),
    sa.Column('score', sa.Numeric(precision=8, scale=2), nullable=False),
    sa.Column('assessed_on', sa.Date(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('first_submission_id', sa.String(length=36), nullable=True),
    sa.Column('last_submission_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['first_submission_id'], ['submission.id'], name=op.f('fk_assessment_first_submission_id_submission')),
    sa.ForeignKeyConstraint(['last_submission_id'], ['submission.id'], name=op.f('fk_assessment_last_submission_id_submission')),
    sa.ForeignKeyConstraint(['provider_id', 'engagement_ref'], ['engagement.provider_id', 'engagement.engagement_ref'], name=op.f('fk_assessment_provider_id_engagement_ref_engagement')),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_assessment_provider_id_provider')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assessment')),
    sa.UniqueConstraint('provider_id', 'engagement_ref', 'phase', 'instrument', 'domain', name=op.f('uq_assessment_provider_id_engagement_ref_phase_instrument_domain'))
    )
    op.create_table('attendance',
    sa.Column('engagement_ref', sa.String(length=40), nullable=False),
    sa.Column('session_date', sa.Date(), nullable=False),
    sa.Column('attended', sa.Boolean(), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=True),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('first_submission_id', sa.String(length=36), nullable=True),
    sa.Column('last_submission_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['first_submission_id'], ['submission.id'], name=op.f('fk_attendance_first_submission_id_submission')),
    sa.ForeignKeyConstraint(['last_submission_id'], ['submission.id'], name=op.f('fk_attendance_last_submission_id_submission')),
    sa.ForeignKeyConstraint(['provider_id', 'engagement_ref'], ['engagement.provider_id', 'engagement.engagement_ref'], name=op.f('fk_attendance_provider_id_engagement_ref_engagement')),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_attendance_provider_id_provider')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attendance')),
    sa.UniqueConstraint('provider_id', 'engagement_ref', 'session_date', name=op.f('uq_attendance_provider_id_engagement_ref_session_date'))
    )
    op.create_table('dependant_identity',
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dependant_ref', sa.String(length=40), nullable=False),
    sa.Column('family_name', sa.String(length=100), nullable=True),
    sa.Column('given_names', sa.String(length=100), nullable=True),
    sa.Column('date_of_birth', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['provider_id', 'dependant_ref'], ['dependant.provider_id', 'dependant.dependant_ref'], name=op.f('fk_dependant_identity_provider_id_dependant_ref_dependant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('provider_id', 'dependant_ref', name=op.f('pk_dependant_identity'))
    )
    op.create_table('outcome',
    sa.Column('engagement_ref', sa.String(length=40), nullable=False),
    sa.Column('dimension', sa.String(length=20), nullable=False),
    sa.Column('measure', sa.String(length=40), nullable=False),
    sa.Column('baseline', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('result', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('better_off', sa.Boolean(), nullable=False),
    sa.Column('measured_on', sa.Date(), nullable=False),
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('first_submission_id', sa.String(length=36), nullable=True),
    sa.Column('last_submission_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['first_submission_id'], ['submission.id'], name=op.f('fk_outcome_first_submission_id_submission')),
    sa.ForeignKeyConstraint(['last_submission_id'], ['submission.id'], name=op.f('fk_outcome_last_submission_id_submission')),
    sa.ForeignKeyConstraint(['provider_id', 'engagement_ref'], ['engagement.provider_id', 'engagement.engagement_ref'], name=op.f('fk_outcome_provider_id_engagement_ref_engagement')),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_outcome_provider_id_provider')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outcome')),
    sa.UniqueConstraint('provider_id', 'engagement_ref', 'dimension', 'measure', name=op.f('uq_outcome_provider_id_engagement_ref_dimension_measure'))
    )



def downgrade() -> None:

    op.drop_table('outcome')
    op.drop_table('dependant_identity')
    op.drop_table('attendance')
    op.drop_table('assessment')
    with op.batch_alter_table('engagement', schema=None) as batch_op:
        batch_op.drop_index('ix_engagement_provider_client')

    op.drop_table('engagement')
    op.drop_table('dependant')
    op.drop_table('client_identity')
    with op.batch_alter_table('submission_file', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_submission_file_submission_id'))

    op.drop_table('submission_file')
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_person_key'))

    op.drop_table('client')
    with op.batch_alter_table('user_role', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_role_user_id'))

    op.drop_table('user_role')
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_submission_provider_id'))

    op.drop_table('submission')
    with op.batch_alter_table('contract', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contract_service_line_id'))
        batch_op.drop_index(batch_op.f('ix_contract_provider_id'))

    op.drop_table('contract')
    op.drop_table('service_line')
    op.drop_table('provider')
    op.drop_table('app_user')

