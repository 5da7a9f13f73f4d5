"""`cldx init` creates the schema and seeds the brief's service lines, idempotently."""

from __future__ import annotations

from sqlalchemy import func, select
from typer.testing import CliRunner

from cldx.cli.main import app
from cldx.standard import SEED_SERVICE_LINES
from cldx.store import make_engine, transaction
from cldx.store.models import ServiceLine


def test_init_twice_seeds_the_six_service_lines_once(database_url, monkeypatch):
    monkeypatch.setenv("CLDX_DATABASE_URL", database_url)
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(app, ["init"])
        assert result.exit_code == 0, result.output
    engine = make_engine(database_url)
    try:
        with transaction(engine) as session:
            codes = set(session.scalars(select(ServiceLine.code)))
            assert session.scalar(select(func.count()).select_from(ServiceLine)) == 6
    finally:
        engine.dispose()
    assert codes == {line.code for line in SEED_SERVICE_LINES}
