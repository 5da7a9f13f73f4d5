"""The store: SQLAlchemy models, Alembic migrations, engines and sessions, bulk paths.

Owns every table. Identifying values (names, exact dates of birth) live in their own
`*_identity` tables, apart from the analytic record tables. May import `cldx.standard` only.
"""

from .db import lock_for_writing, make_engine, make_session_factory, read_transaction, transaction, write_transaction

__all__ = ["lock_for_writing", "make_engine", "make_session_factory", "read_transaction", "transaction", "write_transaction"]
