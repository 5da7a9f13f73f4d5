"""SLK-581 over whole columns, pseudonyms on ingest, and linkage across providers on generated data."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import date
from importlib import resources
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from cldx.generator.generate import generate
from cldx.identity.deidentify import deidentify_csv, parse_birth_date
from cldx.identity.linkage import linkage_summary, slk581_column
from cldx.identity.slk import person_key, slk581
from cldx.identity.vault import Vault
from cldx.ingest.registry import import_registry
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit
from cldx.store import read_transaction, transaction
from cldx.store.models import Client, ClientIdentity, DependantIdentity, Provider, QuarantinedRow
from cldx.store.registry import seed_service_lines

VECTORS = json.loads(resources.files("cldx.identity").joinpath("slk581_vectors.json").read_text(encoding="utf-8"))["vectors"]


def _slk_frame(rows: list[tuple]) -> list[str | None]:
    frame = pl.DataFrame(rows, schema={"f": pl.String, "g": pl.String, "d": pl.Date, "s": pl.String}, orient="row")
    return slk581_column(frame, "f", "g", "d", "s").to_list()


def test_the_column_expression_matches_the_shared_vectors():
    rows = [(v["family_name"], v["given_names"], date.fromisoformat(v["date_of_birth"]), v["gender"]) for v in VECTORS]
    assert _slk_frame(rows) == [v["slk"] for v in VECTORS]


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12) | st.sampled_from(["", "O", "Ng", "Te Rangi-O'Neill", "Zoë"])


@settings(max_examples=300, deadline=None)
@given(family=st.none() | names, given_=st.none() | names, born=st.dates(date(1900, 1, 1), date(2030, 12, 31)),
       gender=st.sampled_from(["1", "2", "3", "11", "21", "30", "99", "", " 2"]))
def test_the_column_expression_agrees_with_the_python_rules(family, given_, born, gender):
    assert _slk_frame([(family, given_, born, gender)]) == [slk581(family, given_, born, gender)]


@pytest.fixture(scope="module")
def rollout(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("linkage")
    generate(clients=2500, seed=11, fault_rate=0, out=out)
    return out


def _people(rollout: Path) -> tuple[dict[tuple, set[str]], dict[str, int]]:
    """Who each (names, date of birth, gender) is seen by, and how many declined per provider."""
    seen: dict[tuple, set[str]] = defaultdict(set)
    declined: dict[str, int] = defaultdict(int)
    for folder in sorted(p for p in rollout.iterdir() if p.is_dir() and p.name != "registry"):
        with open(folder / "clients.csv", encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                if row["identity_consent"] == "n":
                    declined[folder.name] += 1
                else:
                    seen[(row["family_name"], row["given_names"], row["date_of_birth"], row["gender"])].add(folder.name)
    return seen, declined


def test_the_same_person_at_two_providers_gets_one_pseudonym(engine, vault: Vault, rollout: Path):
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, rollout / "registry")
    seen, declined = _people(rollout)
    shared = {person: providers for person, providers in seen.items() if len(providers) > 1}
    assert len(shared) >= 20, "the generator gives some clients a second service at another provider"
    providers = sorted({p for ps in list(shared.values())[:15] for p in ps})
    for provider in providers:
        folder = rollout / provider
        files = [SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))]
        receipt = submit(engine, provider=provider, files=files, submitter="test", channel="test")
        assert receipt.status == "accepted", receipt.findings[:3]

    with read_transaction(engine) as session:
        keys = {}
        for provider_code, client_ref, key in session.execute(
            select(Client.__table__.c.provider_id, Client.client_ref, Client.person_key)
        ):
            keys[(provider_code, client_ref)] = key
        summary = linkage_summary(session.connection())
    # A client who declined identification is linked only by the provider's reference.
    assert sum(k is None for k in keys.values()) == sum(declined[p] for p in providers)
    expected = {}
    for (family, given_, born, gender), at in seen.items():
        if at & set(providers):
            expected[person_key(slk581(family, given_, parse_birth_date(born), gender), vault.linkage_secret)] = len(at & set(providers))
    assert set(keys.values()) - {None} == set(expected)  # every stored pseudonym is one person's keyed SLK
    assert summary.across_providers == sum(1 for n in expected.values() if n > 1) > 0
    assert summary.persons == len(expected) and summary.clients == len(keys)
    assert summary.unlinked == sum(declined[p] for p in providers)
    # Keys are hex HMACs: no SLK is stored anywhere in the client table.
    assert all(len(k) == 64 and int(k, 16) >= 0 for k in keys.values() if k is not None)


# --- A provider set to send no identity ------------------------------------------------------------


def _pair_sharing_a_person(rollout: Path) -> tuple[str, str]:
    seen, _ = _people(rollout)
    return tuple(sorted(next(ps for ps in seen.values() if len(ps) == 2)))  # type: ignore[return-value]


def _files(folder: Path, deidentified: bool = False) -> list[SourceFile]:
    if deidentified:
        return [SourceFile(p.name, deidentify_csv(p.read_bytes()).text.encode()) for p in sorted(folder.glob("*.csv"))]
    return [SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))]


@pytest.fixture
def pair(engine, rollout: Path) -> tuple[str, str]:
    """The registry loaded, and two providers that share a client; the second set to send no identity."""
    with transaction(engine) as session:
        seed_service_lines(session)
    import_registry(engine, rollout / "registry")
    identified, anonymous = _pair_sharing_a_person(rollout)
    with transaction(engine) as session:
        session.execute(update(Provider).where(Provider.code == anonymous).values(sends_identity=False))
    return identified, anonymous


def test_a_deidentified_provider_links_exactly_like_an_identified_one(engine, vault: Vault, rollout: Path, pair):
    identified, anonymous = pair

    # Names from a provider that sends none: refused whole, nothing kept, not even in quarantine.
    refused = submit(engine, provider=anonymous, files=_files(rollout / anonymous), submitter="test", channel="test")
    assert refused.status == "refused" and refused.exit_code == 1
    assert {f["rule"] for f in refused.findings} == {"identity-not-allowed"}
    assert {f["file"] for f in refused.findings} == {"clients.csv", "dependants.csv"} & {f.name for f in _files(rollout / anonymous)}
    with read_transaction(engine) as session:
        for model in (Client, ClientIdentity, DependantIdentity, QuarantinedRow):
            assert session.scalar(select(func.count()).select_from(model)) == 0

    for provider, deidentified in ((identified, False), (anonymous, True)):
        receipt = submit(engine, provider=provider, files=_files(rollout / provider, deidentified), submitter="test", channel="test")
        assert receipt.status == "accepted", receipt.findings[:3]
    with read_transaction(engine) as session:
        keys = {(code, ref): key for code, ref, key in session.execute(
            select(Provider.code, Client.client_ref, Client.person_key).join(Provider, Provider.id == Client.provider_id))}
        births = {(code, ref): born for code, ref, born in session.execute(
            select(Provider.code, Client.client_ref, Client.birth_year_month).join(Provider, Provider.id == Client.provider_id))}
        assert session.scalar(select(func.count()).select_from(ClientIdentity).join(Provider, Provider.id == ClientIdentity.provider_id)
                              .where(Provider.code == anonymous)) == 0
        summary = linkage_summary(session.connection())
    # Every client of the de-identified provider carries the pseudonym its names would have given.
    with open(rollout / anonymous / "clients.csv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            born = parse_birth_date(row["date_of_birth"])
            expected = None if row["identity_consent"] == "n" else person_key(slk581(row["family_name"], row["given_names"], born, row["gender"]), vault.linkage_secret)
            assert keys[(anonymous, row["client_ref"])] == expected
            assert births[(anonymous, row["client_ref"])] == (None if expected is None else f"{born:%Y-%m}")
    assert summary.across_providers >= 1
    shared = {k for (code, _), k in keys.items() if code == identified} & {k for (code, _), k in keys.items() if code == anonymous}
    assert len(shared) == summary.across_providers


def test_an_slk_whose_date_disagrees_with_the_birth_month_is_an_error(engine, pair):
    _, anonymous = pair
    header = "client_ref,slk581,birth_year_month,gender,primary_ethnicity,area,notified_of_sharing_on"
    body = "\n".join([header, "A-1,MIHAN191220002,2000-12,2,21,100100,2017-01-02", "A-2,MIHAN191220002,2001-12,2,21,100100,2017-01-02",
                      "A-3,MIHAN311120002,2000-11,2,21,100100,2017-01-02", "A-4,,,2,21,100100,2017-01-02", "A-5,smith,2000-12,2,21,100100,2017-01-02"])
    receipt = submit(engine, provider=anonymous, files=[SourceFile("clients.csv", (body + "\n").encode())], submitter="t", channel="test")
    by_row = {(f["row"], f["rule"]) for f in receipt.findings}
    assert (3, "slk-mismatch") in by_row and (4, "slk-mismatch") in by_row  # wrong month; 31 November
    assert (5, "conditional-required") in by_row and (6, "bad-format") in by_row
    assert not any(r == 2 for r, _ in by_row)
    # The SLK is masked in findings like any identifying value.
    assert all("MIHAN" not in (f["value"] or "") and "smith" not in (f["value"] or "") for f in receipt.findings)


def test_an_identified_provider_sending_an_slk_is_warned_and_it_is_ignored(engine, vault: Vault, pair):
    identified, _ = pair
    header = "client_ref,family_name,given_names,date_of_birth,slk581,birth_year_month,gender,primary_ethnicity,area,notified_of_sharing_on"
    body = "\n".join([header, "B-1,Smith,Jane,2000-12-19,OE2OH191220001,1999-01,2,21,100100,2017-01-02"])
    receipt = submit(engine, provider=identified, files=[SourceFile("clients.csv", (body + "\n").encode())], submitter="t", channel="test")
    assert [f["rule"] for f in receipt.findings] == ["deidentified-form-ignored"] and receipt.status == "accepted"
    with read_transaction(engine) as session:
        key, born = session.execute(select(Client.person_key, Client.birth_year_month).where(Client.client_ref == "B-1")).one()
    assert key == person_key("MIHAN191220002", vault.linkage_secret) and born == "2000-12"
