"""Schema migrations with Alembic, driven from code so `cldx init` needs no alembic.ini."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine



def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "cldx.store:migrations")
    # Alembic reads options through ConfigParser interpolation; a '%' in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema at `url` to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


class SchemaOutOfDate(RuntimeError):
    """The store's schema is not the one this version of cldx needs (`cldx init` upgrades it)."""


def require_head(engine: Engine) -> None:
    """Refuse to work on a store whose schema is missing or behind: say how to fix it instead of failing on a table."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        state = "has no cldx schema" if current is None else f"is at schema {current}, this cldx needs {head}"
        raise SchemaOutOfDate(f"the store at {where} {state}: run `cldx init` to create or upgrade it")
