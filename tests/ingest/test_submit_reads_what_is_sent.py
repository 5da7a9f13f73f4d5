"""A submission reads and opens the stored records it sends, not all the provider sent before, on SQLite and PostgreSQL.

`submit()` opens stored names and dates of birth only for the clients and dependants sent
(`sent_keys`), and the upsert reads stored rows only by the keys sent (`bulk.read_by_keys`), so
a provider's hundredth batch costs what its first did. Neither may change an outcome: new,
changed, unchanged, reinstated and withdrawn records, a reused client_ref, identity changes and
their history come out the same whichever way the stored rows are read (by keys in one
statement, in many small ones, or the whole table).
"""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest
from sqlalchemy import select

import cldx.store.bulk as bulk
from cldx.identity.vault import Vault, vault_of
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import sent_keys, submit
from cldx.store import transaction
from cldx.store.models import Client, ClientIdentity, Engagement, Provider, RecordHistory
from cldx.store.registry import seed_service_lines

RECEIVED = datetime(2018, 7, 15, 9, 0, tzinfo=timezone.utc)
CLIENTS = "action,client_ref,family_name,given_names,date_of_birth,gender,primary_ethnicity,area,notified_of_sharing_on"
ENGAGEMENTS = "action,engagement_ref,client_ref,service_code,start_date,end_date,end_reason"
STORED = 30  # clients (each with an engagement) stored before the submission under test


def client(i: int, family: str = "Ngata", area: str = "100100", action: str = "") -> str:
    return f"{action},K-{i},{family},Aroha,1990-05-{i % 28 + 1:02d},2,21,{area},2017-01-02"


def files(clients: list[str], engagements: list[str] = ()) -> list[SourceFile]:
    sent = [SourceFile("clients.csv", ("\n".join([CLIENTS, *clients]) + "\n").encode())]
    if engagements:
        sent.append(SourceFile("engagements.csv", ("\n".join([ENGAGEMENTS, *engagements]) + "\n").encode()))
    return sent


@pytest.fixture
def providers(engine) -> list[str]:
    """P1 and P2, each with the same STORED clients and an engagement each, stored."""
    with transaction(engine) as session:
        seed_service_lines(session)
        session.add_all([Provider(code=code, name=f"Scaling Trust {code}", region_code="01") for code in ("P1", "P2")])
    for code in ("P1", "P2"):
        receipt = submit(engine, provider=code, files=files([client(i) for i in range(STORED)],
                                                            [f",E-{i},K-{i},FS,2017-02-01,," for i in range(STORED)]),
                         submitter="t", channel="test", received_at=RECEIVED)
        assert receipt.counts["new"] == 2 * STORED, receipt.findings[:3]
    return ["P1", "P2"]


def the_second_submission(engine, code: str) -> tuple[dict, list[tuple]]:
    """One of each outcome against the stored records: the receipt's counts and findings, and what the provider then holds."""
    receipt = submit(engine, provider=code, files=files(
        [client(0),                      # unchanged
         client(1, area="100200"),       # changed (a value)
         client(2, family="Ngāti"),      # changed (identity only)
         client(3, action="withdraw"),   # withdrawn
         client(STORED + 1),             # new
         ",K-4,Someone,Else,1970-01-01,2,21,100100,2017-01-02"],  # K-4 reused for another person: rejected
        [",E-5,K-5,FS,2017-02-01,2017-06-30,completed",  # changed
         f",E-{STORED + 1},K-{STORED + 1},FS,2017-03-01,,"]),  # new, for the new client
        submitter="t", channel="test", received_at=RECEIVED)
    with transaction(engine) as session:
        pid = session.scalar(select(Provider.id).where(Provider.code == code))
        clients = session.execute(select(Client.client_ref, Client.area, Client.person_key, Client.withdrawn_at.is_not(None))
                                  .where(Client.provider_id == pid).order_by(Client.client_ref)).all()
        engagements = session.execute(select(Engagement.engagement_ref, Engagement.end_date, Engagement.end_reason)
                                      .where(Engagement.provider_id == pid).order_by(Engagement.engagement_ref)).all()
        history = session.execute(select(RecordHistory.record_type, RecordHistory.change, RecordHistory.previous)
                                  .where(RecordHistory.provider_id == pid).order_by(RecordHistory.id)).all()
        sealed = session.execute(select(ClientIdentity.client_ref, ClientIdentity.family_name).where(ClientIdentity.provider_id == pid)).all()
    identity = sorted((ref, vault_of(engine).keys.open(family, "client_identity.family_name")) for ref, family in sealed)
    return ({"counts": receipt.counts, "findings": [(f["row"], f["field"], f["rule"]) for f in receipt.findings]},
            [*map(tuple, clients), *map(tuple, engagements), *map(tuple, history), *identity])


EXPECTED_COUNTS = {"new": 2, "changed": 4, "unchanged": 1, "warned": 0, "rejected": 1}


@pytest.mark.parametrize("reading", ["by keys", "by keys, two at a time", "whole table"])
def test_every_outcome_comes_out_right_however_stored_rows_are_read(engine, providers, reading, monkeypatch):
    if reading == "by keys, two at a time":
        monkeypatch.setattr(bulk, "KEYED_READ_CHUNK", 2)
    elif reading == "whole table":
        monkeypatch.setattr(bulk, "KEYED_READ_LIMIT", 0)
    receipt, stored = the_second_submission(engine, "P1")
    assert receipt["counts"] == EXPECTED_COUNTS, receipt
    assert (7, "client_ref", "ref-reused") in receipt["findings"]
    clients = {row[0]: (row[1], row[3]) for row in stored if len(row) == 4}
    assert clients["K-1"] == ("100200", False) and clients["K-3"] == ("100100", True) and f"K-{STORED + 1}" in clients
    assert dict(row for row in stored if len(row) == 2)["K-2"] == "Ngāti"
    assert [row[:2] for row in stored if len(row) == 3 and row[0] in ("client", "engagement")] == [
        ("client", "changed"), ("client", "changed"), ("client", "withdrawn"), ("engagement", "changed")]


def test_reading_by_keys_stores_exactly_what_reading_the_whole_table_does(engine, providers, monkeypatch):
    monkeypatch.setattr(bulk, "KEYED_READ_CHUNK", 2)
    by_keys = the_second_submission(engine, "P1")
    monkeypatch.setattr(bulk, "KEYED_READ_LIMIT", 0)
    whole_table = the_second_submission(engine, "P2")
    assert by_keys == whole_table


def test_only_the_identity_of_the_clients_sent_is_opened(engine, providers, monkeypatch):
    opened: list[int] = []
    original = Vault.open_frame

    def counting(self, frame: pl.DataFrame, table: str, columns, dates=()):
        if table == "client_identity":
            opened.append(frame.height)
        return original(self, frame, table, columns, dates)

    monkeypatch.setattr(Vault, "open_frame", counting)
    receipt = submit(engine, provider="P1", files=files([client(0), client(1, family="Changed")]), submitter="t", channel="test",
                     received_at=RECEIVED)
    assert receipt.counts["unchanged"] == 1 and receipt.counts["changed"] == 1
    assert opened and max(opened) == 2, opened  # of the STORED clients, the two sent


def test_sent_keys_are_the_clients_and_dependants_sent_as_text():
    from cldx.ingest.sources import parse_source

    tables = [t for f in files([client(0), "  ,K-9 ,X,Y,1990-01-01,2,21,100100,2017-01-02"], [",E-1,K-0,FS,2017-02-01,,"])
              for t in parse_source(f).tables]
    assert sent_keys(tables) == {"client": ["K-0", "K-9"], "dependant": []}  # stripped, as validation and the upsert see them


@pytest.mark.parametrize("with_separator", [False, True])
def test_keys_read_back_exactly_whatever_they_hold(engine, with_separator):
    """PostgreSQL gets the keys as one text split by string_to_array, or as a list when a key holds the separator."""
    from sqlalchemy import insert

    awkward = ["plain", "with,comma", 'with"quote', "{braced}", "back\\slash", " spaced ", "NULL", "", "Ngāti", "a;b"]
    if with_separator:
        awkward.append(f"odd{bulk.SEPARATOR}one")
    now = RECEIVED
    with transaction(engine) as session:
        session.add(Provider(code="P9", name="Keys Trust", region_code="01"))
        session.flush()
        pid = session.scalar(select(Provider.id).where(Provider.code == "P9"))
        session.execute(insert(Client.__table__), [
            {"client_ref": ref, "gender": "2", "primary_ethnicity": "21", "area": "100100", "identity_consent": True,
             "provider_id": pid, "created_at": now, "updated_at": now} for ref in [*awkward, "not sent", "plain2"]])
    asked = pl.Series("client_ref", [*awkward, "never stored", None], dtype=pl.String)
    with transaction(engine) as session:
        found = bulk.read_by_keys(session.connection(), Client.__table__, ["client_ref"], pid, asked)
    assert sorted(found["client_ref"].to_list()) == sorted(awkward)
    with transaction(engine) as session:
        only_empty = bulk.read_by_keys(session.connection(), Client.__table__, ["client_ref"], pid, pl.Series("client_ref", [""]))
    assert only_empty["client_ref"].to_list() == [""]
