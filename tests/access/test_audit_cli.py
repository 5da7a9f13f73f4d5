"""`cldx audit verify` and `cldx audit list` on a SQLite store, through the sub-app itself."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from cldx.access.audit import record
from cldx.cli.audit import app
from cldx.cli.main import app as main_app
from cldx.store import make_engine, transaction, write_transaction
from cldx.store.migrate import upgrade
from cldx.store.models import Provider

T0 = datetime(2018, 7, 15, 21, 0, tzinfo=timezone.utc)  # 16 July, 9 am in Auckland


@pytest.fixture
def store(tmp_path, monkeypatch) -> Engine:
    """A migrated SQLite store at CLDX_DATABASE_URL holding five entries, one a day."""
    url = f"sqlite:///{tmp_path / 'cldx.db'}"
    monkeypatch.setenv("CLDX_DATABASE_URL", url)
    upgrade(url)
    engine = make_engine(url)
    with transaction(engine) as session:
        provider = Provider(code="P042", name="Te Whare", region_code="02")
        session.add(provider)
        session.flush()
        provider_id = provider.id
    with write_transaction(engine) as session:
        for day, (actor, action) in enumerate([("alice", "sign-in"), ("alice", "identity-read"), ("bob", "sign-in-failed"),
                                               ("bob", "sign-in"), ("alice", "export")]):
            record(session, actor=actor, action=action, target=f"t{day}", at=T0 + timedelta(days=day),
                   provider_id=provider_id if action == "identity-read" else None,
                   purpose="Privacy Act request 12" if action == "identity-read" else "")
    yield engine
    engine.dispose()


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def listed(*args: str) -> list[dict]:
    result = run("list", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_verify_prints_the_head_and_exits_0(store):
    result = run("verify")
    assert result.exit_code == 0, result.output
    assert "5 entries" in result.output
    head = listed("--limit", "1")[0]["hash"]
    assert head in result.output
    assert run("verify", "--expect-head", head).exit_code == 0


def test_verify_exits_1_and_names_the_entry_when_one_was_edited(store):
    with store.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER audit_event_no_update")
        connection.exec_driver_sql("UPDATE audit_event SET actor = 'carol' WHERE id = 3")
    result = run("verify")
    assert result.exit_code == 1
    assert "entry 3" in result.output and "edited" in result.output


def test_verify_with_an_unknown_head_exits_1_and_a_malformed_one_2(store):
    assert run("verify", "--expect-head", "ab" * 32).exit_code == 1
    assert run("verify", "--expect-head", "not-a-hash").exit_code == 2


def test_list_filters_by_who_what_when_and_provider(store):
    assert [e["action"] for e in listed("--actor", "bob")] == ["sign-in", "sign-in-failed"]
    assert [e["actor"] for e in listed("--action", "sign-in")] == ["bob", "alice"]
    # Days are Auckland days: the entries fall on 16, 17, ... July there.
    assert [e["target"] for e in listed("--since", "2018-07-17", "--until", "2018-07-18")] == ["t2", "t1"]
    [read] = listed("--provider", "P042")
    assert (read["action"], read["provider"], read["purpose"]) == ("identity-read", "P042", "Privacy Act request 12")
    assert len(listed("--limit", "2")) == 2


def test_list_prints_a_table_and_refuses_bad_filters(store):
    result = run("list", "--actor", "alice")
    assert result.exit_code == 0 and "3 entries" in result.output and "identity-read" in result.output
    assert run("list", "--action", "peek").exit_code == 2
    assert run("list", "--since", "16/07/2018").exit_code == 2
    assert run("list", "--provider", "NOPE").exit_code == 2


def test_key_rotation_and_purge_are_recorded(store, tmp_path, monkeypatch):
    monkeypatch.setenv("CLDX_KEY_FILE", str(tmp_path / "keys.json"))
    monkeypatch.setenv("CLDX_LINKAGE_SECRET_FILE", str(tmp_path / "linkage.json"))
    runner = CliRunner()
    assert runner.invoke(main_app, ["init"]).exit_code == 0
    rotated = runner.invoke(main_app, ["keys", "rotate", "--purge"])
    assert rotated.exit_code == 0, rotated.output
    rotation, purge = listed("--action", "key-rotation"), listed("--action", "key-purge")
    assert len(rotation) == 1 and set(rotation[0]["detail"]) >= {"old", "new", "resealed"}
    assert rotation[0]["detail"]["old"] in purge[0]["detail"]["removed"]
    assert run("verify").exit_code == 0
