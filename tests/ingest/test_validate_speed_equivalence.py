"""The validator against its slower self: exactly the same results for every input.

`validate()` was made faster by running fewer, smaller Polars queries; `_validate_reference.py`
is the validator as it was before. Both get the same submissions, generated with the planted
faults of every kind (CSV, Excel and JSON, header-only files, reading findings) and then spoiled
further at random (Hypothesis): awkward values in every column, withdrawals, repeated keys,
stored records that clash, service lines without ages, the de-identified form. Accepted and
rejected frames (columns, dtypes, rows and their order) and the findings must be equal.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cldx.generator.generate import generate
from cldx.generator.rollout import plan_rollout
from cldx.ingest.findings import RULES
from cldx.ingest.sources import ROW, RawTable, SourceFile, parse_records_json, parse_source
from cldx.ingest.submit import _file_findings
from cldx.ingest.validate import ACTION, FINDING_SCHEMA, Stored, Validated, _d, _field_plan, _v, validate
from cldx.standard import RECORD_TYPES, FieldType

SEED = 11
PROVIDERS = 5
TODAY = date(2018, 1, 15)
EXAMPLES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _reference():
    name = "_validate_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("_validate_reference.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return sys.modules[name]


reference = _reference()


def assert_same(tables: list[RawTable], stored: Stored, **kwargs) -> Validated:
    new = validate(tables, stored, **kwargs)
    old = reference.validate(tables, stored, **kwargs)
    assert list(new.accepted) == list(old.accepted)
    assert list(new.rejected) == list(old.rejected)
    for kind, got, want in [*(("accepted", new.accepted[n], old.accepted[n]) for n in old.accepted),
                            *(("rejected", new.rejected[n], old.rejected[n]) for n in old.rejected),
                            ("findings", new.findings, old.findings)]:
        assert got.schema == want.schema, kind
        assert got.equals(want), (kind, got, want)
    return new


# --- Submissions made by the generator ---------------------------------------------------------


class Provider:
    """One generated provider's files, read the way `submit()` reads them."""

    def __init__(self, folder: Path, workbook: Path) -> None:
        self.code = folder.name
        self.files = [SourceFile(p.name, p.read_bytes()) for p in sorted(folder.glob("*.csv"))]
        self.workbook = SourceFile(workbook.name, workbook.read_bytes())
        parsed = [parse_source(f) for f in self.files]
        self.tables = [t for p in parsed for t in p.tables]
        self.prior = _file_findings(parsed)
        self.frames = {t.record_type.name: t.frame for t in self.tables}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[list[Provider], dict[str, tuple[int | None, int | None]]]:
    out = tmp_path_factory.mktemp("equivalence")
    rollout = plan_rollout(SEED)
    chosen = [p.code for p in rollout.providers[:PROVIDERS]]
    # Many clients over the whole roll-out, so each of the first providers has tens of them.
    generate(clients=20_000, seed=SEED, fault_rate=0.08, out=out, only=chosen, excel=True)
    lines = {line.code: (line.min_client_age, line.max_client_age) for line in rollout.service_lines}
    return [Provider(out / code, out / "excel" / f"{code}.xlsx") for code in chosen], lines


def _stored_of(provider: Provider, lines, share: float = 0.3) -> Stored:
    """Some of the provider's own records as if sent earlier, a few of them clashing with the files."""
    clients = provider.frames["client"]
    some = clients.filter(pl.int_range(pl.len()) % 3 == 0).head(int(clients.height * share) + 1)
    stored = Stored.empty(lines)
    stored.clients = some.select(
        "client_ref",
        pl.col("date_of_birth").str.to_date("%d/%m/%Y", strict=False).fill_null(pl.col("date_of_birth").str.to_date("%Y-%m-%d", strict=False))
        .dt.offset_by("-30y").dt.strftime("%Y-%m").alias("birth_year_month"),
        pl.col("identity_consent").replace_strict({"y": True, "n": False}, default=None, return_dtype=pl.Boolean).alias("identity_consent"),
    )
    stored.client_identity = some.select(
        "client_ref", pl.lit("Someone-Else").alias("family_name"), pl.lit(date(1950, 1, 1)).alias("date_of_birth"))
    stored.engagements = provider.frames["engagement"].select("engagement_ref").head(5)
    pre = provider.frames["assessment"].filter(pl.col("phase") == "pre").head(20)
    stored.pre_assessments = pre.select("engagement_ref", "instrument", "domain", pl.lit(date(2018, 6, 1)).alias("assessed_on"))
    return stored


def test_generated_files_with_planted_faults(world) -> None:
    providers, lines = world
    for provider in providers:
        for deidentified in (False, True):
            assert_same(provider.tables, Stored.empty(lines), today=TODAY, prior=provider.prior, deidentified=deidentified)
        assert_same(provider.tables, _stored_of(provider, lines), today=TODAY, prior=provider.prior)
        # Early in the collection, when most dates are in the future.
        assert_same(provider.tables, _stored_of(provider, lines), today=date(2016, 9, 1), prior=provider.prior)


def test_generated_workbooks(world) -> None:
    providers, lines = world
    for provider in providers:
        parsed = [parse_source(provider.workbook)]
        tables = [t for p in parsed for t in p.tables]
        assert tables
        assert_same(tables, _stored_of(provider, lines), today=TODAY, prior=_file_findings(parsed))


def test_json_bodies_with_lists_of_one_record_type_under_two_keys(world) -> None:
    """Two lists of engagements repeat row numbers in one file: rows are told apart by sheet."""
    providers, lines = world
    for provider in providers:
        body = {}
        for name, frame in provider.frames.items():
            rows = frame.drop(ROW).to_dicts()
            half = len(rows) // 2
            body[RECORD_TYPES[name].sheet_name] = rows[:half]
            body[name] = rows[half:]
        parsed = [parse_records_json("request.json", json.loads(json.dumps(body)))]
        tables = [t for p in parsed for t in p.tables]
        assert_same(tables, _stored_of(provider, lines), today=TODAY, prior=_file_findings(parsed))


def test_header_only_tables_and_no_tables(world) -> None:
    providers, lines = world
    provider = providers[0]
    empty = [RawTable(f"{name}.csv", None, rt, pl.DataFrame(schema={ROW: pl.Int64, **{c: pl.String for c in rt.columns}}))
             for name, rt in RECORD_TYPES.items()]
    for skip_empty in (True, False):
        assert_same(empty, Stored.empty(lines), today=TODAY, skip_empty=skip_empty)
        assert_same(empty[:2] + provider.tables[2:], _stored_of(provider, lines), today=TODAY, skip_empty=skip_empty)
    assert_same([], Stored.empty(lines), today=TODAY, prior=provider.prior)
    assert_same([], Stored.empty(lines), today=TODAY)


def test_a_stored_birth_month_that_is_not_one(world) -> None:
    """Validation never stores such a month; were one stored, the age check stops as it always did,
    and only where it always did: an engagement that is not withdrawn, of a service line it knows."""
    providers, lines = world
    provider = providers[0]
    engagements = next(t for t in provider.tables if t.record_type.name == "engagement")
    first = engagements.frame.head(1)
    stored = Stored.empty(lines)
    stored.clients = pl.DataFrame({"client_ref": first["client_ref"], "birth_year_month": ["1990"], "identity_consent": [True]})
    for action, service, stops in (("", first["service_code"].item(), True), ("withdraw", first["service_code"].item(), False), ("", "XYZ", False)):
        frame = first.with_columns(pl.lit(action).alias("action"), pl.lit(service).alias("service_code"))
        tables = [RawTable(engagements.file, None, engagements.record_type, frame)]
        if stops:
            with pytest.raises(pl.exceptions.InvalidOperationError):
                reference.validate(tables, stored, today=TODAY)
            with pytest.raises(pl.exceptions.InvalidOperationError):
                validate(tables, stored, today=TODAY)
        else:
            assert_same(tables, stored, today=TODAY)


# --- The same submissions, spoiled at random ---------------------------------------------------

# Text a provider might send in any column: well-formed values of every kind and near misses.
AWKWARD = [
    "", "y", "Y", "yes", "TRUE", "1", "0", "n", "no", "false", "maybe", "N",
    "2017-03-04", "2017-3-4", "04/03/2017", "4/3/2017", "2017-02-29", "29/02/2016", "30/02/2017", "02/13/2017", "13/02/2017",
    "0999-01-01", "+2017-03-04", "12017-03-04", "2017/03/04", "2017-03-04x", "٢٠١٧-03-04", "1/1/10000", "00/01/2017",
    "2030-01-01", "01/01/2030", "1900-01-01", "2016-07-01", "2018-06-30", "15/01/2018", "16/01/2018", "2018-01-16",
    "5", "5.0", "5.5", "-1", "1441", "1,000", "$5", " 5", "1e3", "inf", "nan", "NaN", "+5", ".5", "0x10", "100", "27",
    "C-1", "P0001-000001", "-C", "a b", "x" * 41, "x" * 101, "FS", "fs", "ABC", "7", "07", "007", "XYZ",
    "withdraw", "WITHDRAW", "upsert", "Withdraw", "delete",
    "MUROR210519902", "MUROR21051990", "2222222222222", "1990-05", "1990-13", "2001-02", "Pōkai", "O'Neil", "pre", "post",
]
ACTIONS = ["", "", "", "withdraw", "WITHDRAW", "upsert", "Upsert", "remove"]


def _pool(rt, column: str, frames: dict[str, pl.DataFrame]) -> list[str]:
    """Values worth trying in one column: the awkward ones, the field's codes (whole and stripped of
    leading zeros), and values of the same column or of the references elsewhere in the files."""
    values = list(AWKWARD)
    spec = rt.field(column) if column in [f.name for f in rt.fields] else None
    if spec is not None and spec.type is FieldType.CODE and spec.name != "service_code":
        codes = spec.accepted_codes()[:60]
        values += codes + [c.lstrip("0") for c in codes if c.startswith("0")]
    for frame in frames.values():
        if column in frame.columns:
            values += frame[column].head(12).to_list()
    return values


@st.composite
def submissions(draw, providers: list[Provider], lines):
    provider = draw(st.sampled_from(providers))
    frames = dict(provider.frames)
    tables: list[RawTable] = []
    names = [n for n in RECORD_TYPES if n in frames]
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True)):
        rt = RECORD_TYPES[name]
        frame = frames[name]
        start = draw(st.integers(0, max(frame.height - 1, 0)))
        frame = frame.slice(start, draw(st.integers(0, 60)))
        columns = {c: frame[c].to_list() for c in frame.columns}
        if frame.height:
            for _ in range(draw(st.integers(0, 12))):
                row = draw(st.integers(0, frame.height - 1))
                kind = draw(st.sampled_from(["value", "value", "value", "blank", "action", "repeat-key", "copy-row", "identity", "date"]))
                if kind == "action":
                    columns["action"][row] = draw(st.sampled_from(ACTIONS))
                elif kind == "blank":
                    columns[draw(st.sampled_from(rt.columns))][row] = ""
                elif kind == "date":
                    # Any date, in either form: ages at the start of an engagement near every boundary.
                    dated = [f.name for f in rt.fields if f.type is FieldType.DATE]
                    day = draw(st.dates(date(1915, 1, 1), date(2019, 12, 31)))
                    columns[draw(st.sampled_from(dated))][row] = day.isoformat() if draw(st.booleans()) else day.strftime("%d/%m/%Y")
                elif kind == "identity" and name == "client":
                    # The de-identified form, right or not: an SLK and a birth month, agreeing or not.
                    columns["slk581"][row] = draw(st.sampled_from(["MUROR210519902", "MUROR210519901", "999992101199O1", ""]))
                    columns["birth_year_month"][row] = draw(st.sampled_from(["1990-05", "1990-06", "1990-5", ""]))
                elif kind == "repeat-key":
                    other = draw(st.integers(0, frame.height - 1))
                    for key in rt.key:
                        columns[key][row] = columns[key][other]
                elif kind == "copy-row":
                    other = draw(st.integers(0, frame.height - 1))
                    for c in rt.columns:
                        columns[c][row] = columns[c][other]
                else:
                    column = draw(st.sampled_from(rt.columns))
                    columns[column][row] = draw(st.sampled_from(_pool(rt, column, frames)))
        frame = pl.DataFrame(columns, schema=frame.schema)
        if frame.height > 2 and draw(st.booleans()):
            # Several chunks per column, as the CSV reader can return them.
            cut = draw(st.integers(1, frame.height - 1))
            frame = pl.concat([frame.head(cut), frame.tail(frame.height - cut)], rechunk=False)
        sheet = draw(st.sampled_from([None, rt.sheet_name]))
        tables.append(RawTable(rt.file_name if sheet is None else "workbook.xlsx", sheet, rt, frame))
        if draw(st.integers(0, 5)) == 0:
            # A second table of the same kind, whose rows have the same numbers.
            tables.append(RawTable("request.json", draw(st.sampled_from([name, rt.sheet_name])), rt, frame.reverse()))
    tables = draw(st.permutations(tables))

    stored = _stored_of(provider, lines, share=draw(st.sampled_from([0.0, 0.2, 0.6])))
    if stored.clients.height and draw(st.booleans()):
        months = draw(st.lists(st.one_of(st.none(), st.dates(date(1915, 1, 1), date(2019, 12, 31)).map(lambda d: d.strftime("%Y-%m"))),
                               min_size=stored.clients.height, max_size=stored.clients.height))
        stored.clients = stored.clients.with_columns(pl.Series("birth_year_month", months, pl.String))
    if draw(st.booleans()):
        # The same person, stored under a name and date of birth that match the files.
        stored.client_identity = provider.frames["client"].head(10).select(
            "client_ref", "family_name", pl.col("date_of_birth").str.to_date("%d/%m/%Y", strict=False).alias("date_of_birth"))
    service_lines = dict(lines)
    for code in draw(st.lists(st.sampled_from(sorted(lines)), max_size=4, unique=True)):
        change = draw(st.sampled_from(["drop", "no-ages", "young", "old", "ages"]))
        if change == "drop":
            del service_lines[code]
        elif change == "ages":
            low = draw(st.integers(0, 60))
            service_lines[code] = (low, draw(st.integers(low, 100)))
        else:
            service_lines[code] = {"no-ages": (None, None), "young": (None, 10), "old": (70, None)}[change]
    stored.service_lines = service_lines

    prior = pl.DataFrame(schema=FINDING_SCHEMA)
    if tables and draw(st.booleans()):
        rows = []
        for _ in range(draw(st.integers(1, 4))):
            table = draw(st.sampled_from(tables))
            row = draw(st.one_of(st.none(), st.integers(1, 70)))
            rule = draw(st.sampled_from(list(RULES)))
            rows.append((table.file, table.sheet, row, None, None, rule, f"{rule} message", f"{rule} fix"))
        prior = pl.DataFrame(rows, schema=FINDING_SCHEMA, orient="row")
    today = draw(st.sampled_from([TODAY, date(2016, 9, 1), date(2018, 7, 1), date(2030, 1, 1)])) + timedelta(days=draw(st.integers(-3, 3)))
    return tables, stored, {"today": today, "prior": prior, "deidentified": draw(st.booleans()), "skip_empty": draw(st.booleans())}


def _spoils(rt, frames: dict[str, pl.DataFrame]) -> dict[str, list[str]]:
    """Each column's values worth trying, and the de-identified form's pairs (right or not) for clients."""
    spoils = {column: list(dict.fromkeys(_pool(rt, column, frames))) for column in rt.columns}
    if rt.name == "client":
        spoils["identity"] = [f"{slk}|{month}" for slk in ("MUROR210519902", "MUROR210519901", "") for month in ("1990-05", "1990-06", "")]
    return spoils


def test_every_value_in_every_column(world) -> None:
    """Each value worth trying in each column, in turn down the rows: every rule the validator applies is met.

    A row gets one value in every column at once, so a few submissions hold every value; the next
    submission shifts the rows by one, so a value meets other values on its row.
    """
    providers, lines = world
    rules: set[str] = set()
    for provider in providers[:2]:
        stored = _stored_of(provider, lines)
        for name, frame in provider.frames.items():
            rt = RECORD_TYPES[name]
            spoils = _spoils(rt, provider.frames)
            rounds = max(-(-len(values) // frame.height) for values in spoils.values())
            for shift in range(2):
                for first in range(0, rounds * frame.height, frame.height):
                    columns = {c: frame[c].to_list() for c in frame.columns}
                    for column, values in spoils.items():
                        for offset, value in enumerate(values[first:first + frame.height]):
                            row = (offset + shift * (1 + list(spoils).index(column))) % frame.height
                            if column == "identity":
                                columns["slk581"][row], columns["birth_year_month"][row] = value.split("|")
                            else:
                                columns[column][row] = value
                    spoiled = RawTable(rt.file_name, None, rt, pl.DataFrame(columns, schema=frame.schema))
                    tables = [spoiled if t.record_type is rt else t for t in provider.tables]
                    for deidentified in (False, True) if name == "client" else (False,):
                        found = assert_same(tables, stored, today=TODAY, prior=provider.prior, deidentified=deidentified).findings
                        rules.update(found["rule"].to_list())
    # The rest are the readers' and the store's own.
    not_here = {"unreadable-file", "empty-file", "missing-column", "unknown-column", "duplicate-column", "windows-1252", "standard-version",
                "bad-json", "ragged-row", "duplicate-file", "identity-not-allowed", "unknown-file", "withdraw-unknown"}
    assert not set(RULES) - not_here - rules, sorted(set(RULES) - not_here - rules)


def test_spoiled_submissions(world) -> None:
    providers, lines = world

    @EXAMPLES
    @given(submissions(providers, lines))
    def check(submission) -> None:
        tables, stored, kwargs = submission
        assert_same(tables, stored, **kwargs)

    check()


# --- Counting doubt instead of computing it ----------------------------------------------------

SERVICE_CODES = ("FS", "ABC", "007")


@pytest.mark.parametrize("name", list(RECORD_TYPES))
def test_the_quick_value_is_null_exactly_where_blank_or_doubtful(name: str) -> None:
    """What lets `_check` count a field's doubtful values (nulls beyond the blanks it may have)."""
    rt = RECORD_TYPES[name]
    plan = _field_plan(name, SERVICE_CODES)
    codes = {code for spec in rt.fields if spec.type is FieldType.CODE
             for code in (SERVICE_CODES if spec.name == "service_code" else spec.accepted_codes())}
    # Every code, and each stripped of its leading zeros (which the full check may restore).
    values = AWKWARD + sorted(codes | {c.lstrip("0") for c in codes if c.startswith("0")})
    for action in ("", "upsert", "withdraw"):
        frame = pl.DataFrame({c: values for c in rt.columns}).with_columns(pl.lit(action).alias(ACTION))
        for field in plan.fields:
            spec = rt.field(field.name)
            both = frame.with_columns(field.quick, field.doubtful)
            blank_allowed = (pl.col(field.name) == "") & (not spec.required)
            assert both.select((pl.col(_v(field.name)).is_null() == (pl.col(_d(field.name)) | blank_allowed)).all()).item(), field.name
            # Some rows of each kind, only blanks, only doubtful values (every value null), none doubtful.
            for rows in (both, both.head(3), both.filter(pl.col(field.name) == ""), both.filter(pl.col(_d(field.name))),
                         both.filter(pl.col(_d(field.name)) | (pl.col(field.name) == "")), both.filter(~pl.col(_d(field.name)))):
                assert field.doubted(rows) == rows[_d(field.name)].any(), field.name
