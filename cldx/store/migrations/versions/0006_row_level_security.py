"""row-level security: every provider-owned table readable and writable only in its provider's scope

PostgreSQL only (SQLite has no row-level security). Creates the application role `cldx_app`
(NOLOGIN: a deployment makes its login role a member of it), grants it the tables, forbids it
to change or delete audit entries, and on each provider-owned table enables and FORCEs a policy
that lets a row through only when the transaction's scope allows its provider (see
cldx.store.scope). Creating the role needs CREATEROLE; run migrations as the tables' owner.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

from cldx.store.scope import APP_ROLE, DIRECT, SCOPED_TABLES, VIA_JOB, VIA_SUBMISSION

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

ALLOWS = f"""
CREATE OR REPLACE FUNCTION cldx_scope_allows(provider bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('cldx.scope', true), '') = 'all'
        OR (coalesce(current_setting('cldx.scope', true), '') = 'provider'
            AND provider = nullif(current_setting('cldx.provider_id', true), '')::bigint)
$$
"""


def _condition(table: str) -> str:
    if table in DIRECT:
        return "cldx_scope_allows(provider_id)"
    if table in VIA_SUBMISSION:
        # submission is itself scoped, so the row is visible only when its submission is.
        return "EXISTS (SELECT 1 FROM submission s WHERE s.id = submission_id)"
    if table in VIA_JOB:
        return "EXISTS (SELECT 1 FROM job j WHERE j.id = job_id)"
    raise ValueError(table)


def upgrade() -> None:
    if op.get_context().dialect.name != 'postgresql':
        return
    op.execute(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN NOBYPASSRLS;
            END IF;
        END $$
    """)
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}")
    # The audit trail is append-only for the application.
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_event FROM {APP_ROLE}")
    op.execute(ALLOWS)
    for table in SCOPED_TABLES:
        condition = _condition(table)
        op.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
        op.execute(f'CREATE POLICY provider_scope ON "{table}" USING ({condition}) WITH CHECK ({condition})')


def downgrade() -> None:
    if op.get_context().dialect.name != 'postgresql':
        return
    for table in reversed(SCOPED_TABLES):
        op.execute(f'DROP POLICY IF EXISTS provider_scope ON "{table}"')
        op.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')
    op.execute("DROP FUNCTION IF EXISTS cldx_scope_allows(bigint)")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM {APP_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
    # The role is the cluster's, not this database's: other databases may use it, so it stays.
