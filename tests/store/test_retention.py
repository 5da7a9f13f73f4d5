"""`cldx retention apply`: exactly the records older than the period go, identity first, audited, on both backends."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timezone

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from cldx.access.audit import list_events, record, verify
from cldx.analysis.layer import AnalyticLayer, layer_for
from cldx.cli.main import app
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit
from cldx.store import make_engine, read_transaction, transaction, write_transaction
from cldx.store import retention
from cldx.store.models import Base, Client, ClientIdentity, Job, JobFile, Provider
from cldx.store.registry import seed_service_lines
from cldx.store.retention import TABLES, apply_retention, cutoff_for
from cldx.store.scope import APP_ROLE

AS_OF = date(2026, 7, 1)
YEARS = 7
CUTOFF = cutoff_for(as_of=AS_OF, years=YEARS)  # 1 July 2019, midnight in Auckland

# Who is purged and who is kept, by (provider, client_ref); the store below is built to match.
PURGED = {
    ("P0001", "C-OLD1"),  # ended in 2017, with a dependant, attendance, assessments, an outcome, history from 2018
    ("P0001", "C-OLD2"),  # no engagement, last changed 2017
    ("P0002", "C-OLD3"),  # ended in 2016
    ("P0002", "C-OPEN"),  # an open engagement with no activity since 2016
}
KEPT = {
    ("P0001", "C-MIX"),   # one engagement ended 2016, another started 2025
    ("P0001", "C-NEW1"),  # engaged 2025
    ("P0002", "C-ACT"),   # open since 2016, a session in 2020
    ("P0002", "C-NEW2"),  # engaged 2024
}
NAMES = ("Aperahama", "Whaanga", "Pōkai", "Tipene", "Marino", "Hohaia", "Rangi", "Kereama", "Tuhoe")

CLIENT_HEADER = "client_ref,family_name,given_names,date_of_birth,gender,primary_ethnicity,iwi_1,area,notified_of_sharing_on,identity_consent"
ENGAGEMENT_HEADER = "engagement_ref,client_ref,service_code,start_date,end_date,end_reason"


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=9, tzinfo=timezone.utc)


def send(engine: Engine, provider: str, received: str, **files: list[str]):
    """Submit CSV files (name -> [header, rows...]) as the provider's case system on the day given."""
    sources = [SourceFile(f"{name}.csv", ("\n".join(lines) + "\n").encode()) for name, lines in files.items()]
    return submit(engine, provider=provider, files=sources, submitter="case system", channel="test", received_at=at(received))


def client(ref: str, family: str, given: str, born: str, area: str = "100100", gender: str = "21") -> str:
    return f"{ref},{family},{given},{born},{gender},37,,{area},2016-06-01,y"


@pytest.fixture
def store(engine: Engine) -> Engine:
    """Two providers' records on both sides of the cutoff, sent through submit() on the days they date from."""
    with transaction(engine) as session:
        seed_service_lines(session)
        session.add_all([Provider(code="P0001", name="Te Aroha Trust", region_code="01"),
                         Provider(code="P0002", name="Whānau Services", region_code="02")])
    old = send(
        engine, "P0001", "2017-03-15",
        clients=[CLIENT_HEADER, client("C-OLD1", "Aperahama", "Mere", "1990-04-02"), client("C-OLD2", "Whaanga", "Hone", "1985-11-30"),
                 client("C-MIX", "Pōkai", "Aroha", "1992-07-11"), client("C-BAD", "Tipene", "Rawiri", "1991-01-01", gender="zz")],
        dependants=["dependant_ref,client_ref,family_name,given_names,date_of_birth,relationship",
                    "D-OLD1,C-OLD1,Aperahama,Tama,2016-05-05,child"],
        engagements=[ENGAGEMENT_HEADER, "E-OLD1,C-OLD1,FS,2016-08-01,2017-02-20,completed", "E-MIX-OLD,C-MIX,FS,2016-07-10,2016-12-01,completed"],
        attendance=["engagement_ref,session_date,attended,duration_minutes", "E-OLD1,2016-09-01,y,60", "E-MIX-OLD,2016-08-01,y,30"],
        assessments=["engagement_ref,phase,instrument,domain,score,assessed_on",
                     "E-OLD1,pre,FSTAR,wellbeing,4,2016-08-05", "E-OLD1,post,FSTAR,wellbeing,7,2017-02-10"],
        outcomes=["engagement_ref,dimension,measure,baseline,result,better_off,measured_on", "E-OLD1,knowledge,parenting_knowledge,1,3,y,2017-02-15"],
    )
    assert old.status == "partial" and old.counts["rejected"] == 1, old.findings
    # 2018: two clients move; their earlier versions go to the record history (older than the cutoff).
    moved = send(engine, "P0001", "2018-05-10", clients=[CLIENT_HEADER, client("C-OLD1", "Aperahama", "Mere", "1990-04-02", area="100200"),
                                                          client("C-MIX", "Pōkai", "Aroha", "1992-07-11", area="100200")])
    assert moved.counts["changed"] == 2
    recent = send(engine, "P0001", "2025-05-10",
                  clients=[CLIENT_HEADER, client("C-NEW1", "Marino", "Ana", "1995-03-03"), client("C-BAD2", "Hohaia", "Piri", "1993-02-02", gender="zz")],
                  engagements=[ENGAGEMENT_HEADER, "E-NEW1,C-NEW1,FS,2025-01-15,,", "E-MIX-NEW,C-MIX,FS,2025-02-01,,"],
                  attendance=["engagement_ref,session_date,attended,duration_minutes", "E-NEW1,2025-03-01,y,45"])
    assert recent.counts["rejected"] == 1
    assert send(engine, "P0001", "2025-06-01", clients=[CLIENT_HEADER, client("C-NEW1", "Marino", "Ana", "1995-03-03", area="100200")]).counts["changed"] == 1

    early = send(engine, "P0002", "2016-11-20",
                 clients=[CLIENT_HEADER, client("C-OLD3", "Rangi", "Wiremu", "1980-01-20"), client("C-OPEN", "Kereama", "Huia", "1988-08-08"),
                          client("C-ACT", "Tuhoe", "Kiri", "1987-12-12")],
                 engagements=[ENGAGEMENT_HEADER, "E-OLD3,C-OLD3,FS,2016-01-04,2016-10-01,completed", "E-OPEN,C-OPEN,FS,2015-05-01,,",
                              "E-ACT,C-ACT,FS,2016-02-01,,"],
                 attendance=["engagement_ref,session_date,attended,duration_minutes", "E-OPEN,2016-03-01,y,60"],
                 outcomes=["engagement_ref,dimension,measure,baseline,result,better_off,measured_on", "E-OLD3,knowledge,parenting_knowledge,2,3,y,2016-09-30"])
    assert early.status == "accepted", early.findings
    assert send(engine, "P0002", "2020-04-01", attendance=["engagement_ref,session_date,attended,duration_minutes", "E-ACT,2020-03-10,y,50"]).status == "accepted"
    assert send(engine, "P0002", "2024-09-01", clients=[CLIENT_HEADER, client("C-NEW2", "Marino", "Rua", "1999-09-09")],
                engagements=[ENGAGEMENT_HEADER, "E-NEW2,C-NEW2,FS,2024-08-01,,"]).status == "accepted"

    # The queue: finished jobs from before the cutoff (one failed, its upload still held), a recent
    # finished one, and an old one still queued (unfinished work is never purged).
    moved_id = moved.submission_id
    jobs = [(old.submission_id, "done", "2017-03-15"), (early.submission_id, "failed", "2016-11-20"),
            (recent.submission_id, "done", "2025-05-10"), (moved_id, "queued", "2018-05-10")]
    with write_transaction(engine) as session:
        for submission_id, status, day in jobs:
            job = Job(submission_id=submission_id, status=status, created_at=at(day))
            session.add(job)
            session.flush()
            if status != "done":
                session.add(JobFile(job_id=job.id, file_name="clients.csv", data=b"enc1:k0:sealed upload"))
    return engine


def dump(engine: Engine, *, audit: bool = False) -> dict[str, dict[tuple, dict]]:
    """Every table's rows by primary key (the audit trail only if asked)."""
    with read_transaction(engine) as session:
        return {table.name: {tuple(row._mapping[c.name] for c in table.primary_key.columns): dict(row._mapping)
                             for row in session.execute(select(table))}
                for table in Base.metadata.sorted_tables if audit or table.name != "audit_event"}


def provider_ids(engine: Engine) -> dict[str, int]:
    with read_transaction(engine) as session:
        return dict(session.execute(select(Provider.code, Provider.id)).all())


def expected_after(before: dict[str, dict[tuple, dict]], engine: Engine) -> dict[str, dict[tuple, dict]]:
    """`before` less exactly what the rules say goes (see cldx.store.retention)."""
    ids = provider_ids(engine)
    people = {(ids[p], ref) for p, ref in PURGED}
    engagements = {(r["provider_id"], r["engagement_ref"]) for r in before["engagement"].values() if (r["provider_id"], r["client_ref"]) in people}
    dependants = {(r["provider_id"], r["dependant_ref"]) for r in before["dependant"].values() if (r["provider_id"], r["client_ref"]) in people}
    old_submissions = {r["id"] for r in before["submission"].values() if r["received_at"] < CUTOFF.at}
    old_jobs = {r["id"] for r in before["job"].values() if r["status"] in ("done", "failed") and r["created_at"] < CUTOFF.at}
    by_person = lambda r: (r["provider_id"], r["client_ref"]) in people  # noqa: E731
    by_engagement = lambda r: (r["provider_id"], r["engagement_ref"]) in engagements  # noqa: E731
    goes = {
        "client": by_person, "engagement": by_person, "dependant": by_person, "client_identity": by_person,
        "attendance": by_engagement, "assessment": by_engagement, "outcome": by_engagement,
        "dependant_identity": lambda r: (r["provider_id"], r["dependant_ref"]) in dependants,
        "quarantined_row": lambda r: r["submission_id"] in old_submissions,
        "submission_finding": lambda r: r["submission_id"] in old_submissions,
        "job": lambda r: r["id"] in old_jobs,
        "job_file": lambda r: r["job_id"] in old_jobs,
    }
    purged_records = {(name, r["id"]) for name in ("client", "dependant", "engagement", "attendance", "assessment", "outcome")
                      for r in before[name].values() if goes[name](r)}
    goes["record_history"] = lambda r: r["changed_at"] < CUTOFF.at or (r["record_type"], r["record_id"]) in purged_records
    return {name: {k: r for k, r in rows.items() if not goes.get(name, lambda _: False)(r)} for name, rows in before.items()}


def clients_in(engine: Engine) -> set[tuple[str, str]]:
    with read_transaction(engine) as session:
        return set(session.execute(select(Provider.code, Client.client_ref).join(Provider, Provider.id == Client.provider_id)).all())


def purge(engine: Engine, **kwargs):
    return apply_retention(engine=engine, as_of=kwargs.pop("as_of", AS_OF), years=kwargs.pop("years", YEARS), actor="records.officer",
                           record=record, **kwargs)


def test_cutoff_is_the_period_in_calendar_years_at_midnight_in_auckland():
    assert CUTOFF.day == date(2019, 7, 1)
    assert CUTOFF.at == datetime(2019, 6, 30, 12, 0, tzinfo=timezone.utc)  # NZST is UTC+12
    assert cutoff_for(as_of=date(2028, 2, 29), years=7).day == date(2021, 2, 28)
    with pytest.raises(ValueError):
        cutoff_for(as_of=AS_OF, years=0)


def test_apply_purges_exactly_the_old_records_in_every_table_and_audits_counts_only(store):
    before = dump(store)
    assert clients_in(store) == PURGED | KEPT
    with read_transaction(store) as session:
        person_keys = set(session.scalars(select(Client.person_key)))
        trail_before = session.scalar(select(func.count()).select_from(Base.metadata.tables["audit_event"]))

    result = purge(store)

    after = dump(store)
    assert after == expected_after(before, store)
    assert clients_in(store) == KEPT
    # Every kind of thing the rules name was there to purge, and the counts are what left each table.
    assert {name: len(before[name]) - len(after[name]) for name in TABLES} == result.counts
    assert all(result.counts[name] > 0 for name in TABLES), result.counts
    assert result.clients == 4 and len(result.providers) == 2 and not result.resumed

    with read_transaction(store) as session:
        entries = list(reversed(list_events(session, action="retention-purge", limit=None)))
        assert session.scalar(select(func.count()).select_from(Base.metadata.tables["audit_event"])) == trail_before + len(entries)
        assert verify(session).ok
    # Per provider the identity step, then the records step, then the run's totals.
    assert [json.loads(e.detail)["step"] for e in entries] == ["identity", "records", "identity", "records", "finished"]
    details = [json.loads(e.detail) for e in entries]
    assert all(d["cutoff"] == "2019-07-01" and d["retention_years"] == YEARS and d["as_of"] == "2026-07-01" for d in details)
    assert details[-1]["counts"] == result.counts
    assert sum(d["counts"].get("client_identity", 0) for d in details[:-1]) == result.counts["client_identity"]
    said = " ".join(e.target + e.detail + e.purpose for e in entries)
    refs = {ref for _, ref in PURGED | KEPT} | {"D-OLD1", "E-OLD1", "E-OPEN", "E-OLD3"}
    leaked = [word for word in (*refs, *NAMES, *person_keys) if word and word in said]
    assert leaked == []


def test_a_dry_run_changes_nothing_and_counts_what_a_run_purges(store):
    before = dump(store, audit=True)
    dry = purge(store, dry_run=True)
    assert dump(store, audit=True) == before  # the audit trail too: a dry run writes nothing
    assert dry.dry_run and dry.clients == 4
    assert purge(store).counts == dry.counts


def test_a_second_run_purges_nothing(store):
    purge(store)
    once = dump(store)
    again = purge(store)
    assert again.total == 0 and again.providers == ()
    assert dump(store) == once
    with read_transaction(store) as session:
        last = list_events(session, action="retention-purge", limit=1)[0]
        assert json.loads(last.detail)["step"] == "finished" and verify(session).ok


def test_a_run_killed_between_identity_and_records_is_finished_by_the_next_run(store, monkeypatch):
    before = dump(store)
    p1 = provider_ids(store)["P0001"]

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(retention, "_purge_records_step", crash)
    with pytest.raises(RuntimeError, match="killed"):
        purge(store)
    monkeypatch.undo()
    # Identity went first and its purge is in the trail; the records are still there.
    with read_transaction(store) as session:
        identity_left = set(session.execute(select(ClientIdentity.provider_id, ClientIdentity.client_ref)).all())
        steps = [json.loads(e.detail)["step"] for e in list_events(session, action="retention-purge", limit=None)]
        assert retention.unfinished_runs(session)[0][0] == p1
    assert (p1, "C-OLD1") not in identity_left and (p1, "C-MIX") in identity_left
    assert clients_in(store) == PURGED | KEPT
    assert steps == ["identity"]

    # Re-run with a period so long that nothing is old by it: the interrupted run is still finished,
    # with its own cutoff, before anything else.
    resumed = purge(store, years=30)
    assert resumed.resumed == (p1,) and resumed.counts["client"] == 2
    assert clients_in(store) == KEPT | {c for c in PURGED if c[0] == "P0002"}
    purge(store)
    assert dump(store) == expected_after(before, store)
    with read_transaction(store) as session:
        assert retention.unfinished_runs(session) == [] and verify(session).ok


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_purge_runs_under_row_level_security_as_the_application_role(store, migrated_url):
    """The rest of the suite connects as a superuser, whom row-level security does not bind: here the
    purge runs as a login role in cldx_app, as a deployment's does, and still does exactly its work."""
    before = dump(store)
    login = f"cldx_retention_{uuid.uuid4().hex[:10]}"
    admin_dsn = make_url(migrated_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(login), sql.Identifier(APP_ROLE)))
    app_engine = make_engine(make_url(migrated_url).set(username=login).render_as_string(hide_password=False))
    try:
        result = purge(app_engine)
    finally:
        app_engine.dispose()
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(login)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))
    assert result.clients == 4
    assert dump(store) == expected_after(before, store)


def test_the_analytic_layer_no_longer_reports_purged_people(store, tmp_path):
    layer = AnalyticLayer(tmp_path / "layer", store)
    with read_transaction(store) as session:
        keys = dict(session.execute(select(Client.client_ref, Client.person_key)).all())
    assert set(layer.frame("SELECT person_key FROM clients")["person_key"]) == set(keys.values())
    engagements = layer.frame("SELECT count(*) AS n FROM engagements")["n"][0]
    purge(store)
    # The same warm layer: the purge's audit entries tell it the two providers changed.
    assert set(layer.frame("SELECT person_key FROM clients")["person_key"]) == {keys[ref] for _, ref in KEPT}
    assert layer.frame("SELECT count(*) AS n FROM engagements")["n"][0] == engagements - 3  # E-OLD1, E-OLD3, E-OPEN


def test_the_command_prints_counts_per_table_and_purges(store, migrated_url, monkeypatch, analytic_dir):
    monkeypatch.setenv("CLDX_DATABASE_URL", migrated_url)
    layer_for(analytic_dir, store).refresh()
    runner = CliRunner()

    refused = runner.invoke(app, ["retention", "apply", "--as-of", "2999-01-01"])
    assert refused.exit_code == 2 and "future" in refused.output
    assert runner.invoke(app, ["retention", "apply", "--as-of", "1 July"]).exit_code == 2

    monkeypatch.setenv("CLDX_RETENTION_YEARS", "30")
    nothing = runner.invoke(app, ["retention", "apply", "--dry-run", "--as-of", "2026-07-01"])
    assert nothing.exit_code == 0, nothing.output
    assert "0 clients at 0 providers would be purged" in nothing.output
    monkeypatch.delenv("CLDX_RETENTION_YEARS")

    dry = runner.invoke(app, ["retention", "apply", "--dry-run", "--as-of", "2026-07-01"])
    assert dry.exit_code == 0, dry.output
    assert "older than 2019-07-01" in dry.output and "dry run: nothing changed" in dry.output
    assert "4 clients at 2 providers would be purged" in dry.output
    assert clients_in(store) == PURGED | KEPT

    done = runner.invoke(app, ["retention", "apply", "--as-of", "2026-07-01"])
    assert done.exit_code == 0, done.output
    assert "4 clients at 2 providers purged" in done.output and "Analytic layer: rebuilt 2 providers" in done.output
    for name in TABLES:
        assert name in done.output
    assert clients_in(store) == KEPT
