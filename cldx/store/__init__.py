"""The store: SQLAlchemy models, Alembic migrations, engines and sessions, bulk paths.

Owns every table. Identifying values (names, exact dates of birth) live in their own
`*_identity` tables, apart from the analytic record tables. May import `cldx.standard` only.
"""

from .db import make_engine, make_session_factory, read_transaction, transaction, write_transaction

__all__ = ["make_engine", "make_session_factory", "read_transaction", "transaction", "write_transaction"]
