"""The audit trail: a hash chain that shows edited, deleted and inserted entries, on both backends."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from cldx.access.audit import ACTIONS, GENESIS, entry_hash, hash_of, list_events, record, verify
from cldx.generator.generate import generate
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit
from cldx.store import read_transaction, transaction, write_transaction
from cldx.store.models import AuditEvent, Submission
from cldx.store.registry import seed_service_lines

T0 = datetime(2018, 7, 15, 9, 0, tzinfo=timezone.utc)


def build_chain(engine: Engine, n: int) -> list[AuditEvent]:
    """n entries by two actors, a minute apart, in one write transaction."""
    with write_transaction(engine) as session:
        return [
            record(session, actor="alice" if i % 2 else "bob", action="identity-read", target=f"client C{i}",
                   provider_id=7, purpose="Privacy Act request 12", detail={"fields": ["family_name"], "i": i},
                   at=T0 + timedelta(minutes=i))
            for i in range(n)
        ]


def check(engine: Engine, **kwargs):
    with read_transaction(engine) as session:
        return verify(session, **kwargs)


def tamper(engine: Engine, *statements: tuple[str, dict]) -> None:
    """Change the trail as someone with DDL rights would: get round the append-only triggers first."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE audit_event DISABLE TRIGGER USER")
        else:
            connection.exec_driver_sql("DROP TRIGGER audit_event_no_update")
            connection.exec_driver_sql("DROP TRIGGER audit_event_no_delete")
        for statement, params in statements:
            connection.execute(text(statement), params)
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE audit_event ENABLE TRIGGER USER")


def test_a_chain_of_entries_verifies(engine):
    events = build_chain(engine, 12)
    assert events[0].prev_hash == GENESIS
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    result = check(engine)
    assert result.ok, result.problems
    assert (result.count, result.head_id, result.head_hash) == (12, events[-1].id, events[-1].hash)


def test_the_hash_covers_every_field_but_id_and_hash(engine):
    event = build_chain(engine, 1)[0]
    fields = dict(at=event.at, actor=event.actor, action=event.action, target=event.target, provider_id=event.provider_id,
                  purpose=event.purpose, detail=event.detail, prev_hash=event.prev_hash)
    assert entry_hash(**fields) == event.hash
    for name, other in [("at", event.at + timedelta(microseconds=1)), ("actor", "mallory"), ("action", "export"),
                        ("target", "client C9"), ("provider_id", None), ("purpose", ""), ("detail", "{}"), ("prev_hash", "1" * 64)]:
        assert entry_hash(**{**fields, name: other}) != event.hash, name


def test_record_refuses_unknown_actions_and_naive_times(engine):
    with write_transaction(engine) as session:
        with pytest.raises(ValueError, match="unknown audit action"):
            record(session, actor="alice", action="peek")
        with pytest.raises(ValueError, match="timezone"):
            record(session, actor="alice", action="sign-in", at=datetime(2018, 7, 15, 9, 0))
    assert "privacy-request-closed" in ACTIONS and all(ACTIONS.values())


def test_the_database_refuses_to_change_or_delete_entries(engine):
    build_chain(engine, 2)
    for statement in ("UPDATE audit_event SET purpose = 'nothing to see'", "DELETE FROM audit_event"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.exec_driver_sql(statement)
    assert check(engine).count == 2


def test_an_edited_entry_is_reported_at_its_id(engine):
    events = build_chain(engine, 6)
    tamper(engine, ("UPDATE audit_event SET purpose = 'routine check' WHERE id = :id", {"id": events[3].id}))
    result = check(engine)
    assert not result.ok
    assert [(p.entry_id, p.kind) for p in result.problems] == [(events[3].id, "edited")]


def test_an_edited_and_rehashed_entry_breaks_the_link_from_the_next(engine):
    events = build_chain(engine, 6)
    edited = events[2]
    new_hash = entry_hash(at=edited.at, actor=edited.actor, action=edited.action, target=edited.target, provider_id=edited.provider_id,
                          purpose="routine check", detail=edited.detail, prev_hash=edited.prev_hash)
    tamper(engine, ("UPDATE audit_event SET purpose = 'routine check', hash = :hash WHERE id = :id", {"hash": new_hash, "id": edited.id}))
    [problem] = check(engine).problems
    assert (problem.entry_id, problem.kind) == (events[3].id, "deleted")
    assert f"entry {edited.id} was changed and re-hashed" in problem.message


def test_a_deleted_middle_entry_is_reported_with_the_missing_ids(engine):
    events = build_chain(engine, 6)
    tamper(engine, ("DELETE FROM audit_event WHERE id = :id", {"id": events[2].id}))
    result = check(engine)
    [problem] = result.problems
    assert (problem.entry_id, problem.kind, problem.ids) == (events[3].id, "deleted", (events[1].id, events[3].id))
    assert f"id {events[2].id} is absent" in problem.message
    assert result.count == 5


def test_a_deleted_first_entry_is_reported(engine):
    events = build_chain(engine, 3)
    tamper(engine, ("DELETE FROM audit_event WHERE id = :id", {"id": events[0].id}))
    [problem] = check(engine).problems
    assert (problem.entry_id, problem.kind) == (events[1].id, "deleted")


def test_a_forged_entry_inserted_in_the_middle_is_reported(engine):
    events = build_chain(engine, 6)
    after = events[2]
    # The forger makes room by moving the later entries up, and gives the forgery a correct
    # link to the entry before it and a correct hash of its own.
    forged = dict(id=after.id + 1, at=after.at + timedelta(seconds=30), actor="alice", action="export", target="all clients",
                  provider_id=7, purpose="approved", detail="{}", prev_hash=after.hash)
    forged["hash"] = entry_hash(**{k: v for k, v in forged.items() if k != "id"})
    # Moving the later entries up and dropping the index that forbids a fork both need DDL rights.
    tamper(engine, ("UPDATE audit_event SET id = id + 100 WHERE id > :id", {"id": after.id}),
           ("DROP INDEX uq_audit_event_prev_hash", {}))
    with engine.begin() as connection:
        connection.execute(insert(AuditEvent.__table__).values(**forged))
    [problem] = check(engine).problems
    assert (problem.entry_id, problem.kind, problem.ids) == (forged["id"], "inserted", (forged["id"],))
    assert f"chains to entry {after.id}" in problem.message


def test_the_database_refuses_a_second_entry_chaining_to_the_same_one(engine):
    events = build_chain(engine, 3)
    fork = dict(at=events[1].at + timedelta(seconds=1), actor="mallory", action="export", target="x", provider_id=None,
                purpose="", detail="{}", prev_hash=events[0].hash)
    fork["hash"] = entry_hash(**fork)
    with pytest.raises(IntegrityError):
        with engine.begin() as connection:
            connection.execute(insert(AuditEvent.__table__).values(**fork))
    assert check(engine).ok


def test_a_deleted_last_entry_shows_only_against_a_kept_head(engine):
    events = build_chain(engine, 4)
    kept = check(engine).head_hash
    tamper(engine, ("DELETE FROM audit_event WHERE id = :id", {"id": events[-1].id}))
    assert check(engine).ok  # the chain alone cannot tell: what remains is whole
    [problem] = check(engine, expect_head=kept).problems
    assert problem.kind == "head-missing"


def test_a_kept_head_still_verifies_after_more_entries(engine):
    events = build_chain(engine, 3)
    kept = check(engine).head_hash
    build_chain(engine, 2)
    result = check(engine, expect_head=kept)
    assert result.ok and result.expected_head_id == events[-1].id and result.count == 5


def test_concurrent_appends_form_one_chain(engine):
    per_thread, start = 8, threading.Barrier(2)
    errors: list[BaseException] = []

    def append(actor: str) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with write_transaction(engine) as session:
                    record(session, actor=actor, action="sign-in", target=f"{actor}-{i}")
                    time.sleep(0.002)  # hold the transaction open so the other thread tries to append meanwhile
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = check(engine)
    assert result.ok, result.problems
    assert result.count == 2 * per_thread


def test_list_events_filters_by_who_what_when_and_provider(engine):
    build_chain(engine, 6)
    with write_transaction(engine) as session:
        record(session, actor="alice", action="sign-in-failed", target="alice", at=T0 + timedelta(days=1))
    with read_transaction(engine) as session:
        assert [e.actor for e in list_events(session, actor="alice")] == ["alice"] * 4
        assert [e.target for e in list_events(session, action="sign-in-failed")] == ["alice"]
        window = list_events(session, since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4))
        assert [e.target for e in window] == ["client C3", "client C2"]  # newest first; until is exclusive
        assert len(list_events(session, provider_id=7)) == 6
        assert len(list_events(session, limit=2)) == 2


@pytest.fixture(scope="module")
def small_rollout(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rollout")
    generate(clients=60, seed=5, fault_rate=0, out=out)
    return out


def test_a_submission_records_one_entry_in_its_transaction(engine, small_rollout):
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, small_rollout / "registry")
    folder = next(p for p in sorted(small_rollout.iterdir()) if p.is_dir() and p.name != "registry")
    files = [SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))]
    receipt = submit(engine, provider=folder.name, files=files, submitter="case-system", channel="test", received_at=T0)
    with read_transaction(engine) as session:
        [event] = list_events(session, action="submission")
        provider_id = session.scalar(select(Submission.provider_id).where(Submission.id == receipt.submission_id))
    assert (event.actor, event.target, event.provider_id) == ("case-system", receipt.submission_id, provider_id)
    assert hash_of(event) == event.hash and check(engine).ok
    detail = json.loads(event.detail)
    assert detail["status"] == receipt.status and detail["counts"] == receipt.counts
    assert detail["files"] == [f.name for f in files]
