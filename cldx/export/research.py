"""The research (IDI) extract: requested by an analyst, decided by a privacy officer, made once.

The brief sends anonymised client-level data to Stats NZ's Integrated Data Infrastructure for
research. Here that is a flow of three audited steps, each by a named person:

1. `request_extract`: an analyst holding research-requester asks for a period and says what for
   (`research-extract-requested`).
2. `decide_extract`: a privacy officer approves or refuses it, never their own request: the two
   people rule compares the users, not their roles, so someone holding both roles still cannot
   approve what they asked for (`research-extract-decided`).
3. `produce_extract`: the approved extract is written once (`cldx export research produce`, or
   the requester's download on the page) and the request keeps the SHA-256 of its manifest, so
   the privacy officer can say exactly what left (`export`, target `research:<reference>`).

What an extract holds (`build_extract`), read from the analytic layer (already without names,
dates of birth or provider references):
- `clients`: one row per person whose engagement overlaps the period: a pseudonym made for this
  extract alone (HMAC-SHA256 of the live pseudonym under a random key that is used once and
  never stored, so two extracts join neither to each other nor to the store), age band, gender
  (top level), ethnicity (level 2), iwi and territorial authority. Those five are the
  quasi-identifiers: the table is made k-anonymous (`cldx.disclosure.k_anonymise`, k >= 5,
  least entropy lost) by generalising along the classifications' own hierarchies (age bands ->
  wider bands; ethnicity level 2 -> 1; iwi -> iwi region; territorial authority -> region; each
  then to `*`) and, as a last resort, local suppression (`*`). A person still too rare is left
  out, with their engagements. Age is an age band, not the birth year and month: as a
  quasi-identifier a birth month would have to be banded anyway, and a band is what analysis uses.
- `engagements`, `assessments`, `outcomes`: the service facts of those people, keyed by an
  engagement pseudonym made the same way, every date coarsened to the requested precision
  (month, quarter or year). No provider is named: a small provider in a small place would narrow
  who its clients are; the service line is kept.
Each table is written as Parquet and CSV, beside a data dictionary generated from the data
standard (Markdown and JSON), the disclosure report (what was generalised and suppressed) and a
manifest (row counts, bytes and SHA-256 of every file).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import secrets
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from cldx import __version__
from cldx.access import audit
from cldx.analysis.layer import UNKNOWN, age_band_expr, layer_for
from cldx.analysis.reports.base import Period, ReportError
from cldx.disclosure.kanonymity import ALL, MISSING, Hierarchy, KAnonResult, band_levels, k_anonymise
from cldx.standard import RECORD_TYPES, STANDARD_NAME, STANDARD_VERSION
from cldx.standard.codesets import code_set
from cldx.store.db import read_transaction, transaction
from cldx.store.models import ResearchExtract, ServiceLine
from cldx.store.scope import set_scope

PRECISIONS = ("month", "quarter", "year")
DEFAULT_K = 5
MIN_K, MAX_K = 5, 50  # a requester may ask for more protection than the default, never less
MAX_SUPPRESSION = 0.05  # share of people local suppression may touch before wider generalisation is preferred
MIN_PURPOSE, MAX_PURPOSE = 20, 2000
REFERENCE_PATTERN = re.compile(r"RX-\d{4}-\d{4,8}")
FORMAT = "cldx-research-extract/1"
PSEUDONYM_HEX = 20  # 80 bits: no two people of a million share one (chance about 4 in 10^13)

# Statuses, in the order a request moves through them.
REQUESTED, APPROVED, REFUSED, PRODUCING, PRODUCED = "requested", "approved", "refused", "producing", "produced"


class ExtractError(ValueError):
    """A step cannot be taken as asked. `kind` says how the web answers: 422 invalid, 403 forbidden,
    404 not found, 409 conflict (the request is not in a state for this step)."""

    def __init__(self, message: str, kind: str = "invalid", field: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.field = field


# --- The request and its decision -------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


def parse_period(value: str) -> Period:
    """A bounded period (an extract always says which months it covers)."""
    try:
        period = Period.parse(value)
    except ReportError as exc:
        raise ExtractError(str(exc)[:1].upper() + str(exc)[1:] + ".", field="period") from None
    if period.start is None or period.end is None:
        raise ExtractError("Give the period with both ends, for example 2016-07:2017-06.", field="period")
    return period


def request_extract(session: Session, *, actor: str, user_id: int | None, period: str, purpose: str,
                    k: int = DEFAULT_K, date_precision: str = "month", today: date | None = None) -> ResearchExtract:
    """Record a request for an extract (status `requested`). Call inside a write transaction."""
    bounds = parse_period(period)
    purpose = (purpose or "").strip()
    if len(purpose) < MIN_PURPOSE:
        raise ExtractError(f"Say what the extract is for, in at least {MIN_PURPOSE} characters "
                           "(the research question and who will use it).", field="purpose")
    if len(purpose) > MAX_PURPOSE:
        raise ExtractError(f"The purpose is {len(purpose)} characters; keep it within {MAX_PURPOSE}.", field="purpose")
    if isinstance(k, bool) or not isinstance(k, int) or not MIN_K <= k <= MAX_K:
        raise ExtractError(f"k must be a whole number from {MIN_K} to {MAX_K} (default {DEFAULT_K}).", field="k")
    if date_precision not in PRECISIONS:
        raise ExtractError(f"Dates are coarsened to one of: {', '.join(PRECISIONS)}.", field="date_precision")
    today = today or _now().date()
    if bounds.start > today:  # type: ignore[operator]
        raise ExtractError("The period starts in the future: there is nothing to extract yet.", field="period")
    year = today.year
    count = session.scalar(select(func.count()).select_from(ResearchExtract)
                           .where(ResearchExtract.reference.like(f"RX-{year}-%"))) or 0
    extract = ResearchExtract(
        reference=f"RX-{year}-{count + 1:04d}", purpose=purpose, period_start=bounds.start, period_end=bounds.end,
        k=k, date_precision=date_precision, status=REQUESTED, requested_by=actor, requested_by_user_id=user_id,
        requested_at=_now(), decision_note="", summary="",
    )
    session.add(extract)
    session.flush()
    audit.record(session, actor=actor, action="research-extract-requested", target=extract.reference, purpose=purpose,
                 detail={"period": f"{bounds.start}:{bounds.end}", "k": k, "date_precision": date_precision})
    return extract


def get_extract(session: Session, reference: str) -> ResearchExtract:
    if REFERENCE_PATTERN.fullmatch(reference or "") is None:
        raise ExtractError("There is no research extract request with that reference.", kind="not-found")
    extract = session.scalar(select(ResearchExtract).where(ResearchExtract.reference == reference))
    if extract is None:
        raise ExtractError("There is no research extract request with that reference.", kind="not-found")
    return extract


def list_extracts(session: Session, *, requested_by_user_id: int | None = None) -> list[ResearchExtract]:
    """Newest first; only one requester's own when `requested_by_user_id` is given."""
    query = select(ResearchExtract).order_by(ResearchExtract.id.desc())
    if requested_by_user_id is not None:
        query = query.where(ResearchExtract.requested_by_user_id == requested_by_user_id)
    return list(session.scalars(query))


def same_person(extract: ResearchExtract, actor: str, user_id: int | None) -> bool:
    """Whether `actor` is who asked for the extract (by user id when both are known, else by name)."""
    if user_id is not None and extract.requested_by_user_id is not None:
        return user_id == extract.requested_by_user_id
    return actor == extract.requested_by


def decide_extract(session: Session, reference: str, *, approve: bool, note: str, actor: str,
                   user_id: int | None) -> ResearchExtract:
    """Approve or refuse a requested extract; never one's own. Call inside a write transaction."""
    extract = get_extract(session, reference)
    note = (note or "").strip()
    if same_person(extract, actor, user_id):
        raise ExtractError(f"You asked for {reference}: another privacy officer must approve or refuse it "
                           "(an extract needs two people).", kind="forbidden")
    if extract.status != REQUESTED:
        raise ExtractError(f"{reference} was already {extract.status}; a decision is made once.", kind="conflict")
    if not approve and not note:
        raise ExtractError("Say why the request is refused, so the requester can put it right.", field="note")
    if len(note) > MAX_PURPOSE:
        raise ExtractError(f"Keep the note within {MAX_PURPOSE} characters.", field="note")
    # Claimed with a conditional update so two officers deciding at once cannot both succeed.
    claimed = session.execute(
        update(ResearchExtract).where(ResearchExtract.id == extract.id, ResearchExtract.status == REQUESTED)
        .values(status=APPROVED if approve else REFUSED, decided_by=actor, decided_by_user_id=user_id,
                decided_at=_now(), decision_note=note)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise ExtractError(f"{reference} was decided by someone else meanwhile.", kind="conflict")
    session.refresh(extract)
    audit.record(session, actor=actor, action="research-extract-decided", target=reference, purpose=extract.purpose,
                 detail={"decision": "approved" if approve else "refused", "note": note,
                         "requested_by": extract.requested_by})
    return extract


# --- Quasi-identifier hierarchies ----------------------------------------------------------------


def _ancestor_map(name: str, level: int) -> dict[str, str]:
    """Every code of the code set deeper than `level` -> its ancestor at `level`."""
    codes = code_set(name)
    out = {}
    for code in codes.codes:
        if code.level > level:
            ancestor = codes.ancestor(code.code, level)
            if ancestor is not None:
                out[code.code] = ancestor.code
    return out


# Age bands at the start of the period (the reports' bands), merged into wider ones step by step.
AGE_BAND_MERGES = (
    (("00-04", "05-09"), ("10-14", "15-19"), ("20-24", "25-29"), ("30-39", "40-49"), ("50-64", "65+")),
    (("00-04", "05-09", "10-14", "15-19"), ("20-24", "25-29", "30-39", "40-49", "50-64", "65+")),
)


def quasi_identifiers() -> list[Hierarchy]:
    """The five quasi-identifiers of the clients table, each with the classification's own hierarchy.

    Ethnicity starts at level 2 and gender at the standard's top level: the finer codes are rare
    and say more about a person than any research question here needs, so they never leave.
    """
    regions = {c.code: c.parent for c in code_set("territorial_authority").codes if c.parent}
    return [
        Hierarchy("age_band", band_levels(AGE_BAND_MERGES),
                  names=["age band", "wider age band", "widest age band", "all"]),
        Hierarchy("gender", [ALL], names=["top level", "all"]),
        Hierarchy("ethnicity", [_ancestor_map("ethnicity", 1), ALL], names=["level 2", "level 1", "all"]),
        Hierarchy("iwi", [_ancestor_map("iwi", 1), ALL], names=["iwi", "iwi region", "all"]),
        Hierarchy("area", [regions, ALL], names=["territorial authority", "region", "all"]),
    ]


def _released_levels(people: pl.DataFrame) -> pl.DataFrame:
    """Gender at its top level and ethnicity at level 2 before anything else (see `quasi_identifiers`)."""
    gender, ethnicity = _ancestor_map("gender", 1), _ancestor_map("ethnicity", 2)
    return people.with_columns(pl.col("gender").replace(gender), pl.col("ethnicity").replace(ethnicity))


# Prefer keeping detail, among equally good generalisations, in this order.
PREFER = ("area", "ethnicity", "age_band", "iwi", "gender")


# --- Building the tables ----------------------------------------------------------------------------


def _keyed(key: bytes, values: list[str]) -> list[str]:
    return [hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX] for v in values]


def _coarsen(column: str, precision: str) -> pl.Expr:
    """A date as text at the extract's precision: 2017-03, 2017-Q1 or 2017."""
    day = pl.col(column)
    if precision == "month":
        out = day.dt.strftime("%Y-%m")
    elif precision == "quarter":
        out = day.dt.year().cast(pl.String) + "-Q" + day.dt.quarter().cast(pl.String)
    else:
        out = day.dt.year().cast(pl.String)
    return out.alias(column)


@dataclass
class ExtractTables:
    """The tables of one extract and what making the clients table k-anonymous took."""

    clients: pl.DataFrame
    engagements: pl.DataFrame
    assessments: pl.DataFrame
    outcomes: pl.DataFrame
    kanon: KAnonResult
    people_in_period: int
    people_removed: int
    engagements_removed: int
    duplicate_client_records: int

    def tables(self) -> dict[str, pl.DataFrame]:
        return {"clients": self.clients, "engagements": self.engagements, "assessments": self.assessments,
                "outcomes": self.outcomes}


def build_extract(layer, period: Period, *, k: int = DEFAULT_K, date_precision: str = "month",
                  key: bytes | None = None) -> ExtractTables:
    """The extract's tables from the analytic layer (see the module's docstring). `key` is the
    pseudonym key: random (and forgotten) unless a test passes one."""
    if date_precision not in PRECISIONS:
        raise ValueError(f"date_precision must be one of {PRECISIONS}")
    key = key if key is not None else secrets.token_bytes(32)
    where, params = period.overlap_sql("start_date", "end_date")
    engagements = layer.frame(
        f"SELECT engagement_id, client_id, service_code, start_date, end_date, end_reason, sessions, sessions_attended, "
        f"completed FROM engagements WHERE {where}", params)
    clients = layer.frame(
        f"SELECT client_id, person_key, birth_year_month, gender, primary_ethnicity, iwi, ta FROM clients "
        f"WHERE client_id IN (SELECT client_id FROM engagements WHERE {where})", params)

    # One row per person. A person with records at two providers is one person; the attributes of
    # the most recently stored record stand for them. A record without a pseudonym (no identity
    # consent) is a person of its own.
    clients = clients.with_columns(
        source=pl.coalesce(pl.lit("person:") + pl.col("person_key"), pl.lit("client:") + pl.col("client_id").cast(pl.String)))
    sources = clients["source"].unique().sort().to_list()
    person_of_source = pl.DataFrame({"source": sources, "person": _keyed(key, sources)},
                                    schema={"source": pl.String, "person": pl.String})
    clients = clients.join(person_of_source, on="source", how="left")
    # Age is released as the age band when the person's time in the period began (the later of the
    # period's start and their first engagement's), never as a birth date or month.
    began = engagements.group_by("client_id").agg(pl.col("start_date").min().alias("began")).with_columns(
        pl.max_horizontal(pl.col("began"), pl.lit(period.start)).alias("began"))
    people = (
        clients.join(began, on="client_id", how="left")
        .with_columns(birth_month_number=pl.col("birth_year_month").str.slice(0, 4).cast(pl.Int32, strict=False) * 12
                      + pl.col("birth_year_month").str.slice(5, 2).cast(pl.Int32, strict=False))
        .with_columns(age_band=age_band_expr(pl.col("began")))
        .sort("client_id", descending=True)
        .unique(subset="person", keep="first", maintain_order=True)
        .select("person", "age_band", gender="gender", ethnicity="primary_ethnicity", iwi="iwi", area="ta")
        .sort("person")  # pseudonym order: random, so row order says nothing about the store
    )
    kanon = k_anonymise(_released_levels(people), quasi_identifiers(), k=k, max_suppression=MAX_SUPPRESSION,
                        prefer=list(PREFER), loss="entropy")
    kept_people = kanon.frame.with_columns(
        pl.when(pl.col(c) == MISSING).then(None).otherwise(pl.col(c)).alias(c) for c in ("age_band", "gender", "ethnicity", "iwi", "area")
    )

    person_of_client = clients.select("client_id", "person").join(kept_people.select("person"), on="person", how="semi")
    ids = engagements["engagement_id"].cast(pl.String).to_list()
    engagement_keys = pl.DataFrame({"engagement_id": engagements["engagement_id"],
                                    "engagement": _keyed(key, [f"engagement:{i}" for i in ids])},
                                   schema={"engagement_id": pl.Int64, "engagement": pl.String})
    kept = engagements.join(person_of_client, on="client_id", how="inner").join(engagement_keys, on="engagement_id")
    out_engagements = (
        kept.with_columns(_coarsen("start_date", date_precision), _coarsen("end_date", date_precision))
        .select("engagement", "person", service_line="service_code", start="start_date", end="end_date",
                end_reason="end_reason", sessions_recorded=pl.col("sessions").cast(pl.Int64),
                sessions_attended=pl.col("sessions_attended").cast(pl.Int64), completed="completed")
        .sort("person", "start", "engagement")
    )
    wanted = kept.select("engagement_id", "engagement")
    assessments = layer.frame(
        f"SELECT engagement_id, instrument, domain, pre_score, pre_on, post_score, post_on FROM assessments "
        f"WHERE engagement_id IN (SELECT engagement_id FROM engagements WHERE {where})", params)
    out_assessments = (
        assessments.join(wanted, on="engagement_id", how="inner")
        .with_columns(_coarsen("pre_on", date_precision), _coarsen("post_on", date_precision))
        .select("engagement", "instrument", "domain", "pre_score", pre_assessed="pre_on", post_score="post_score",
                post_assessed="post_on")
        .sort("engagement", "instrument", "domain")
    )
    outcomes = layer.frame(
        f"SELECT engagement_id, dimension, measure, baseline, result, better_off, measured_on FROM outcomes "
        f"WHERE engagement_id IN (SELECT engagement_id FROM engagements WHERE {where})", params)
    out_outcomes = (
        outcomes.join(wanted, on="engagement_id", how="inner")
        .with_columns(_coarsen("measured_on", date_precision))
        .select("engagement", "dimension", "measure", "baseline", "result", "better_off", measured="measured_on")
        .sort("engagement", "dimension", "measure")
    )
    return ExtractTables(
        clients=kept_people,
        engagements=out_engagements,
        assessments=out_assessments,
        outcomes=out_outcomes,
        kanon=kanon,
        people_in_period=people.height,
        people_removed=kanon.suppressed_rows,
        engagements_removed=engagements.height - kept.height,
        duplicate_client_records=clients.height - people.height,
    )


# --- The data dictionary, generated from the standard ----------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str
    source: str = ""  # record.field in the data standard, or how it is derived
    code_set: str | None = None  # whose labels the codes present get


def _field(record: str, name: str) -> str:
    return RECORD_TYPES[record].field(name).description


def dictionary_columns(tables: ExtractTables, precision: str) -> dict[str, list[Column]]:
    """The columns of every table, described from the standard and from what this extract did."""
    levels = tables.kanon.levels
    level_name = {h.column: h.level_name(levels[h.column]) for h in quasi_identifiers()}
    when = {"month": "year and month (yyyy-mm)", "quarter": "year and quarter (yyyy-Qn)", "year": "year (yyyy)"}[precision]
    generalised = "; `*` where suppressed to keep every combination of the quasi-identifiers shared by at least k people"
    area_set = "territorial_authority" if levels["area"] == 0 else "regional_council" if levels["area"] == 1 else None
    ethnicity_level = {0: 2, 1: 1}.get(levels["ethnicity"])
    person = ("The person's pseudonym in this extract only (HMAC-SHA256 of the live pseudonym under a key made for this "
              "extract and then discarded): it joins this extract's tables and nothing else.")
    engagement = "The engagement's pseudonym in this extract only (made like `person`): joins assessments and outcomes."
    return {
        "clients": [
            Column("person", "text", person, "derived: keyed pseudonym of SLK-581"),
            Column("age_band", "text", f"Age in whole years when the person's time in the period began (the later of "
                   f"the period's start and their first engagement's), from the date of birth, as {level_name['age_band']} "
                   f"(00-04 ... 65+, merged when wider; {UNKNOWN} when no date of birth was recorded){generalised}.",
                   "derived: client.date_of_birth"),
            Column("gender", "code", f"{_field('client', 'gender')} At {level_name['gender']}{generalised}.", "client.gender", "gender"),
            Column("ethnicity", "code", f"{_field('client', 'primary_ethnicity')} At {level_name['ethnicity']} of the "
                   f"classification{generalised}.", "client.primary_ethnicity", "ethnicity" if ethnicity_level else None),
            Column("iwi", "code", f"{_field('client', 'iwi_1')} At {level_name['iwi']}{generalised}.", "client.iwi_1",
                   "iwi" if levels["iwi"] < 2 else None),
            Column("area", "code", f"{_field('client', 'area')} Coarsened to {level_name['area']}{generalised}.",
                   "client.area", area_set),
        ],
        "engagements": [
            Column("engagement", "text", engagement, "derived"),
            Column("person", "text", "The client's `person` (clients table).", "derived"),
            Column("service_line", "code", _field("engagement", "service_code"), "engagement.service_code", "service_line"),
            Column("start", "text", f"{_field('engagement', 'start_date')} Given as {when}.", "engagement.start_date"),
            Column("end", "text", f"{_field('engagement', 'end_date')} Given as {when}; empty while the engagement is open.",
                   "engagement.end_date"),
            Column("end_reason", "code", _field("engagement", "end_reason"), "engagement.end_reason", "end_reason"),
            Column("sessions_recorded", "integer", "Sessions recorded for the engagement (attendance rows).", "attendance"),
            Column("sessions_attended", "integer", "Sessions the client attended.", "attendance.attended"),
            Column("completed", "yes/no", "Whether the engagement ended with end_reason completed.", "derived: engagement.end_reason"),
        ],
        "assessments": [
            Column("engagement", "text", "The engagement (engagements table).", "derived"),
            Column("instrument", "code", _field("assessment", "instrument"), "assessment.instrument", "instrument"),
            Column("domain", "code", _field("assessment", "domain"), "assessment.domain", "instrument_domain"),
            Column("pre_score", "decimal", f"The score before the service. {_field('assessment', 'score')}", "assessment.score (phase pre)"),
            Column("pre_assessed", "text", f"When the pre assessment was made, as {when}.", "assessment.assessed_on (phase pre)"),
            Column("post_score", "decimal", f"The score at the end of the service. {_field('assessment', 'score')}", "assessment.score (phase post)"),
            Column("post_assessed", "text", f"When the post assessment was made, as {when}.", "assessment.assessed_on (phase post)"),
        ],
        "outcomes": [
            Column("engagement", "text", "The engagement (engagements table).", "derived"),
            Column("dimension", "code", _field("outcome", "dimension"), "outcome.dimension", "outcome_dimension"),
            Column("measure", "code", _field("outcome", "measure"), "outcome.measure", "outcome_measure"),
            Column("baseline", "decimal", _field("outcome", "baseline"), "outcome.baseline"),
            Column("result", "decimal", _field("outcome", "result"), "outcome.result"),
            Column("better_off", "yes/no", _field("outcome", "better_off"), "outcome.better_off"),
            Column("measured", "text", f"{_field('outcome', 'measured_on')} Given as {when}.", "outcome.measured_on"),
        ],
    }


TABLE_DESCRIPTIONS = {
    "clients": "One row per person with an engagement in the period: the quasi-identifiers, k-anonymous.",
    "engagements": "One row per engagement of those people that overlaps the period.",
    "assessments": "Pre and post scores of an engagement's assessments, side by side, one row per instrument domain.",
    "outcomes": "An engagement's outcome measures.",
}


def _labels(code_set_name: str, values: list[str], service_lines: dict[str, str]) -> list[dict[str, str]]:
    if code_set_name == "service_line":
        return [{"code": v, "label": service_lines.get(v, "")} for v in values]
    codes = {c.code: c.label for c in code_set(code_set_name).codes}
    return [{"code": v, "label": codes.get(v, "")} for v in values]


def data_dictionary(tables: ExtractTables, extract: dict[str, Any], service_lines: dict[str, str]) -> dict[str, Any]:
    """The dictionary as a JSON document: every table and column, and the labels of the codes present."""
    out_tables = []
    for name, columns in dictionary_columns(tables, extract["date_precision"]).items():
        frame = tables.tables()[name]
        described = []
        for column in columns:
            entry: dict[str, Any] = {"name": column.name, "type": column.type, "description": column.description,
                                     "source": column.source}
            if column.code_set:
                present = sorted(v for v in frame[column.name].drop_nulls().unique().to_list() if v != ALL)
                entry["code_set"] = column.code_set if column.code_set == "service_line" else code_set(column.code_set).title
                entry["codes"] = _labels(column.code_set, present, service_lines)
            described.append(entry)
        out_tables.append({"name": name, "files": [f"{name}.parquet", f"{name}.csv"], "rows": frame.height,
                           "description": TABLE_DESCRIPTIONS[name], "columns": described})
    return {
        "extract": extract["reference"],
        "standard": {"name": STANDARD_NAME, "version": STANDARD_VERSION},
        "conventions": [
            f"`{ALL}` marks a quasi-identifier suppressed for k-anonymity; an empty value is one not recorded.",
            "Codes are those of the classifications named; the labels of the codes present are listed.",
            f"Dates are coarsened to {extract['date_precision']}; no exact date, name, provider or provider reference is present.",
        ],
        "tables": out_tables,
    }


def dictionary_markdown(document: dict[str, Any]) -> str:
    lines = [f"# Data dictionary: research extract {document['extract']}", "",
             f"Generated from the {document['standard']['name']} v{document['standard']['version']}.", ""]
    lines += [f"- {c}" for c in document["conventions"]] + [""]
    for table in document["tables"]:
        lines += [f"## {table['name']} ({table['rows']:,} rows)", "", table["description"], "",
                  f"Files: {', '.join(table['files'])}", "", "| column | type | description | source |", "|---|---|---|---|"]
        for c in table["columns"]:
            lines.append(f"| {c['name']} | {c['type']} | {c['description'].replace('|', '/')} | {c['source']} |")
        lines.append("")
        for c in table["columns"]:
            if c.get("codes"):
                lines += [f"### {table['name']}.{c['name']}: {c['code_set']}", "", "| code | label |", "|---|---|"]
                lines += [f"| {x['code']} | {x['label'].replace('|', '/')} |" for x in c["codes"]]
                lines.append("")
    return "\n".join(lines)


# --- The disclosure report ------------------------------------------------------------------------


def disclosure_report(tables: ExtractTables, extract: dict[str, Any]) -> dict[str, Any]:
    kanon = tables.kanon
    qis = quasi_identifiers()
    return {
        "extract": extract["reference"],
        "k": kanon.k,
        "quasi_identifiers": [
            {"column": h.column, "level": kanon.levels[h.column], "height": h.height,
             "generalised_to": h.level_name(kanon.levels[h.column])} for h in qis
        ],
        "people_in_period": tables.people_in_period,
        "people_released": tables.clients.height,
        "people_removed": tables.people_removed,
        "cells_suppressed": kanon.suppressed_cells,
        "engagements_removed_with_their_person": tables.engagements_removed,
        "client_records_merged_into_one_person": tables.duplicate_client_records,
        "equivalence_classes": kanon.equivalence_classes,
        "smallest_equivalence_class": kanon.min_class_size,
        "max_suppression": MAX_SUPPRESSION,
        "steps": kanon.report,
        "removed_before_release": [
            "names and dates of birth (never in the analytic layer); birth year and month (age band instead)",
            "provider client and engagement references, provider codes and store row ids",
            "the live person pseudonym (re-keyed with a key made for this extract and discarded)",
            f"exact dates (coarsened to {extract['date_precision']})",
            "statistical area 2 (coarsened to territorial authority at least)",
        ],
    }


def disclosure_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Disclosure report: research extract {report['extract']}", "",
             f"k-anonymity with k = {report['k']} on the quasi-identifiers of `clients`: every combination of their "
             f"values is shared by at least {report['k']} people (smallest: {report['smallest_equivalence_class']:,}, "
             f"in {report['equivalence_classes']:,} combinations).", "",
             "| quasi-identifier | released as | level |", "|---|---|---|"]
    lines += [f"| {q['column']} | {q['generalised_to']} | {q['level']} of {q['height']} |" for q in report["quasi_identifiers"]]
    lines += ["", f"- people with an engagement in the period: {report['people_in_period']:,}",
              f"- people released: {report['people_released']:,}; left out (too rare even fully suppressed): {report['people_removed']:,}, "
              f"with their {report['engagements_removed_with_their_person']:,} engagements",
              f"- quasi-identifier cells suppressed (`*`): {report['cells_suppressed']:,}",
              f"- client records at more than one provider merged into one person: {report['client_records_merged_into_one_person']:,}",
              "", "Steps:", ""]
    lines += [f"- {s}" for s in report["steps"]] + ["", "Removed before release:", ""]
    lines += [f"- {s}" for s in report["removed_before_release"]]
    return "\n".join(lines) + "\n"


# --- Writing the files ------------------------------------------------------------------------------


def _csv_bytes(frame: pl.DataFrame) -> bytes:
    # Booleans as y/n, as the standard writes them; empty for missing (Polars' default).
    frame = frame.with_columns(pl.when(pl.col(c)).then(pl.lit("y")).otherwise(pl.lit("n")).alias(c)
                               for c, t in frame.schema.items() if t == pl.Boolean)
    return frame.write_csv().encode("utf-8")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_extract(tables: ExtractTables, out_dir: Path, extract: dict[str, Any], service_lines: dict[str, str]) -> dict[str, Any]:
    """Write every file of the extract into `out_dir` (made, owner-only) and return the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    files: list[tuple[str, Path]] = []
    for name, frame in tables.tables().items():
        parquet = out_dir / f"{name}.parquet"
        frame.write_parquet(parquet)
        (out_dir / f"{name}.csv").write_bytes(_csv_bytes(frame))
        files += [(name, parquet), (name, out_dir / f"{name}.csv")]
    dictionary = data_dictionary(tables, extract, service_lines)
    (out_dir / "data_dictionary.json").write_text(json.dumps(dictionary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "data_dictionary.md").write_text(dictionary_markdown(dictionary), encoding="utf-8")
    report = disclosure_report(tables, extract)
    (out_dir / "disclosure_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "disclosure_report.md").write_text(disclosure_markdown(report), encoding="utf-8")
    files += [(None, out_dir / n) for n in ("data_dictionary.json", "data_dictionary.md", "disclosure_report.json", "disclosure_report.md")]
    rows = {name: frame.height for name, frame in tables.tables().items()}
    manifest = {
        "format": FORMAT,
        **extract,
        "software": f"cldx {__version__}",
        "k": tables.kanon.k,
        "rows": rows,
        "files": [{"name": path.name, **({"table": table, "rows": rows[table]} if table else {}),
                   "bytes": path.stat().st_size, "sha256": _sha256(path)} for table, path in files],
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


# --- Producing an approved extract -----------------------------------------------------------------


@dataclass(frozen=True)
class Produced:
    reference: str
    directory: Path
    manifest: dict[str, Any]
    manifest_sha256: str
    summary: dict[str, Any] = field(default_factory=dict)


def _extract_facts(extract: ResearchExtract) -> dict[str, Any]:
    return {
        "reference": extract.reference,
        "purpose": extract.purpose,
        "period": {"from": extract.period_start.isoformat(), "to": extract.period_end.isoformat()},
        "date_precision": extract.date_precision,
        "requested_by": extract.requested_by,
        "requested_at": extract.requested_at.isoformat() if extract.requested_at else None,
        "approved_by": extract.decided_by,
        "approved_at": extract.decided_at.isoformat() if extract.decided_at else None,
        "produced_at": _now().isoformat(timespec="seconds"),
    }


def produce_extract(engine: Engine, reference: str, out_dir: Path, *, actor: str, user_id: int | None = None,
                    analytic_dir: Path, only_requester: bool = False) -> Produced:
    """Write the approved extract to `out_dir` (which must not exist yet or be empty) and mark it produced.

    The request is claimed first (approved -> producing, a conditional update), so two calls
    cannot both write it; if writing fails the claim is let go and nothing is recorded as
    produced. `only_requester` (the web download) lets only the user who asked take it.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ExtractError(f"{out_dir} already exists and is not an empty folder; choose a new one.", field="out")
    with transaction(engine) as session:
        set_scope(session.connection(), everything=True)
        extract = get_extract(session, reference)
        if only_requester and not same_person(extract, actor, user_id):
            raise ExtractError(f"Only {extract.requested_by}, who asked for {reference}, may take it.", kind="forbidden")
        if extract.status != APPROVED:
            state = {REQUESTED: "is waiting for a privacy officer's decision", REFUSED: "was refused",
                     PRODUCING: "is being produced", PRODUCED: f"was produced already, on {extract.produced_at:%Y-%m-%d} "
                     f"(an extract is made once; ask again for another)" if extract.produced_at else "was produced already"}
            raise ExtractError(f"{reference} {state.get(extract.status, extract.status)}.", kind="conflict")
        claimed = session.execute(
            update(ResearchExtract).where(ResearchExtract.id == extract.id, ResearchExtract.status == APPROVED)
            .values(status=PRODUCING, produced_by=actor, produced_at=_now())
            .execution_options(synchronize_session=False)).rowcount
        if claimed != 1:
            raise ExtractError(f"{reference} is being produced by someone else.", kind="conflict")
        facts = _extract_facts(extract)
        period = Period(extract.period_start, extract.period_end)
        k, precision = extract.k, extract.date_precision
        service_lines = dict(session.execute(select(ServiceLine.code, ServiceLine.name)).all())
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{reference}-", dir=out_dir.parent))
    placed = False
    try:
        tables = build_extract(layer_for(analytic_dir, engine), period, k=k, date_precision=precision)
        manifest = write_extract(tables, staging, facts, service_lines)
        manifest_sha256 = _sha256(staging / "manifest.json")
        summary = {"rows": manifest["rows"], "k": k, "smallest_equivalence_class": tables.kanon.min_class_size,
                   "people_removed": tables.people_removed, "cells_suppressed": tables.kanon.suppressed_cells,
                   "levels": tables.kanon.levels}
        # The files take their place first; the record of what left is committed once they have.
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
        out_dir.chmod(0o700)
        placed = True
        with transaction(engine) as session:
            set_scope(session.connection(), everything=True)
            session.execute(update(ResearchExtract).where(ResearchExtract.reference == reference)
                            .values(status=PRODUCED, manifest_sha256=manifest_sha256, summary=json.dumps(summary, sort_keys=True))
                            .execution_options(synchronize_session=False))
            audit.record(session, actor=actor, action="export", target=f"research:{reference}", purpose=facts["purpose"],
                         detail={"manifest_sha256": manifest_sha256, "rows": manifest["rows"], "k": k,
                                 "approved_by": facts["approved_by"], "out": str(out_dir)})
    except BaseException:
        # Nothing is left behind that the store does not record as produced.
        shutil.rmtree(out_dir if placed else staging, ignore_errors=True)
        with transaction(engine) as session:
            set_scope(session.connection(), everything=True)
            session.execute(update(ResearchExtract).where(ResearchExtract.reference == reference, ResearchExtract.status == PRODUCING)
                            .values(status=APPROVED, produced_by=None, produced_at=None)
                            .execution_options(synchronize_session=False))
        raise
    return Produced(reference, out_dir, manifest, manifest_sha256, summary)


def zip_directory(directory: Path) -> bytes:
    """The extract's files as one zip (the page's download), in the manifest's order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.iterdir()):
            archive.write(path, arcname=f"{directory.name}/{path.name}")
    return buffer.getvalue()
