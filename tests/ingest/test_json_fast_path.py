"""The column-by-column reading of JSON record lists gives exactly what the value-by-value reading gave.

`parse_records_json` reads the usual body (an object of lists of flat records) with a fast path
and everything else with the original code, kept unchanged as `_parse_records_json_slow`: that is
the yardstick (`reference_parse_records_json` below). For generated bodies of every shape, the two
must give the same tables (frames, column names and types) and the same findings, in the same order.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cldx.ingest.sources as sources
from cldx.ingest.sources import ParsedSource, parse_records_json
from cldx.standard import RECORD_TYPES, record_type_for_file

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# The value-by-value reading, kept in `sources` as the fast path's fallback for unusual bodies:
# taken here as the function object, so a test that forbids the module's fallback leaves it usable.
reference_parse_records_json = sources._parse_records_json_slow


def outcome(parse, body: Any) -> ParsedSource | type[BaseException]:
    """What a parser makes of a body: its result, or the type of what it raised."""
    try:
        return parse("request.json", body)
    except Exception as exc:  # noqa: BLE001 - raising is an outcome too, and must be the same
        return type(exc)


def assert_same(actual: ParsedSource | type[BaseException], expected: ParsedSource | type[BaseException]) -> None:
    """Same tables (frames cell for cell, column names and types) and same findings, in order."""
    if not isinstance(expected, ParsedSource) or not isinstance(actual, ParsedSource):
        assert actual == expected
        return
    assert [(t.file, t.sheet, t.record_type.name) for t in actual.tables] == [(t.file, t.sheet, t.record_type.name) for t in expected.tables]
    for got, want in zip(actual.tables, expected.tables):
        assert got.record_type is want.record_type
        assert got.frame.columns == want.frame.columns
        assert got.frame.dtypes == want.frame.dtypes
        assert got.frame.equals(want.frame)
    assert actual.findings == expected.findings


# --- Generated bodies -----------------------------------------------------------------------------

def _nested(depth: int) -> Any:
    """A value `depth` containers deep (objects and lists in turn): from harmless to too deep."""
    value: Any = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


# Keys of the body: record types as providers spell them, and keys that are not record types.
USUAL_KEYS = st.sampled_from(["clients", "engagements", "Clients", "client", "engagement", "attendance", "outcomes", "dependants",
                              "assessments", "nope", "", "a/b/clients", "clients.csv", "x" * 300])
ODD_KEYS = st.sampled_from(["clients\x00", "\udc00", "\x00"])
# Headers beyond the standard's: the same after normalising (so duplicates), blank, unknown.
EXTRA_NAMES = ["Client Ref", " client_ref ", "CLIENT-REF", "Start Date", "", " ", "notes", "Engagement_Ref", "y" * 300]
ODD_NAMES = st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy"])
# Text a JSON parser can produce, without NUL or lone surrogates.
CLEAN_TEXT = st.one_of(
    st.sampled_from(["C-1", "C-2", "E-1", "", " ", "  padded  ", "2016-07-11", "2017-13-40", "21", "11", "315500", "y", "n", "FS", "Mitchell",
                     "Ngā", "completed"]),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12),
)
TEXT_VALUES = st.one_of(CLEAN_TEXT, st.none())
MIXED_VALUES = st.one_of(
    CLEAN_TEXT, st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63), st.floats(),
    st.floats(-1e20, 1e20).map(float.__floor__).map(float),  # integral floats: 3.0 reads "3"
)
ODD_VALUES = st.one_of(
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "\udbff"]),
    st.lists(TEXT_VALUES, max_size=2),
    st.dictionaries(st.sampled_from(EXTRA_NAMES), MIXED_VALUES, max_size=2),
    st.integers(1, 12).map(_nested),
)


@st.composite
def ordinary_records(draw, key: str) -> list[dict]:
    """Flat records: the record type's columns (or another's) and a few extra, each present or not, in varying order."""
    record_type = record_type_for_file(key) or draw(st.sampled_from(list(RECORD_TYPES.values())))
    pool = list(record_type.columns) + draw(st.lists(st.sampled_from(EXTRA_NAMES), max_size=2, unique=True))
    values = draw(st.sampled_from([TEXT_VALUES, MIXED_VALUES]))
    items = []
    for _ in range(draw(st.integers(0, 6))):
        names = draw(st.permutations(pool)) if draw(st.booleans()) else pool
        items.append({name: draw(values) for name in names if draw(st.integers(0, 3))})
    return items


@st.composite
def ordinary_bodies(draw) -> dict:
    keys = draw(st.lists(USUAL_KEYS, max_size=3, unique=True))
    return {key: draw(ordinary_records(key)) for key in keys}


@st.composite
def any_bodies(draw) -> Any:
    """An ordinary body with up to three things wrong: an odd value, name, item, list or key; now and then not an object at all."""
    if draw(st.integers(0, 15)) == 15:
        return draw(st.one_of(MIXED_VALUES, ODD_VALUES, st.lists(ordinary_records("clients"), max_size=2)))
    body = draw(ordinary_bodies())
    for _ in range(draw(st.integers(0, 3))):
        lists = [key for key, value in body.items() if isinstance(value, list)]
        items = [(key, at) for key in lists for at, item in enumerate(body[key]) if isinstance(item, dict)]
        change = draw(st.sampled_from(["value", "name", "item", "list", "key", "int key"]))
        if change in ("value", "name") and items:
            key, at = draw(st.sampled_from(items))
            item = body[key][at]
            if change == "value" and item:
                item[draw(st.sampled_from(list(item)))] = draw(ODD_VALUES)
            else:
                item[draw(ODD_NAMES)] = draw(TEXT_VALUES)
        elif change == "item" and lists:
            key = draw(st.sampled_from(lists))
            body[key].insert(draw(st.integers(0, len(body[key]))), draw(st.one_of(MIXED_VALUES, ODD_VALUES, st.lists(TEXT_VALUES, max_size=2))))
        elif change == "list" and lists:
            body[draw(st.sampled_from(lists))] = draw(st.one_of(MIXED_VALUES, ODD_VALUES, st.dictionaries(st.sampled_from(EXTRA_NAMES), TEXT_VALUES, max_size=2)))
        elif change == "key":
            body[draw(ODD_KEYS)] = draw(ordinary_records("clients"))
        elif change == "int key" and items:
            key, at = draw(st.sampled_from(items))
            body[key][at][draw(st.integers(0, 2))] = "x"
    return body


@PROPERTY
@given(body=any_bodies())
def test_any_body_reads_as_it_did(body):
    """Whatever the shape, and whichever path reads it: the same tables and findings as before, or the same exception."""
    assert_same(outcome(parse_records_json, body), outcome(reference_parse_records_json, body))


def _slow_path_refused(file, body):
    raise AssertionError("the slow path was taken")


@PROPERTY
@given(body=ordinary_bodies())
def test_ordinary_bodies_take_the_fast_path(body):
    """Lists of flat records with text, numbers, true/false and null never need the slow path."""
    expected = reference_parse_records_json("request.json", body)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sources, "_parse_records_json_slow", _slow_path_refused)
        assert_same(parse_records_json("request.json", body), expected)


NOT_TEXT = st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "\udbff"])


@PROPERTY
@given(body=ordinary_bodies(), bad=NOT_TEXT, data=st.data())
def test_one_nul_or_surrogate_anywhere_is_reported_as_before(body, bad, data):
    """A single NUL or lone surrogate in a value, a field name or a key of an ordinary body: one bad-json finding, as before."""
    items = [item for records in body.values() for item in records]
    where = data.draw(st.sampled_from(["key"] + (["name"] if items else []) + (["value"] if any(items) else [])), label="where")
    if where == "key":
        body[bad] = data.draw(ordinary_records("clients"), label="records")
    else:
        item = data.draw(st.sampled_from([item for item in items if item or where == "name"]), label="item")
        if where == "name":
            item[bad] = data.draw(TEXT_VALUES, label="value")
        else:
            item[data.draw(st.sampled_from(list(item)), label="field")] = bad
    expected = reference_parse_records_json("request.json", body)
    assert [f.rule for f in expected.findings] == ["bad-json"] and expected.tables == []
    assert_same(parse_records_json("request.json", body), expected)


# --- Examples -------------------------------------------------------------------------------------


def typical_body(clients: int = 340, engagements: int = 660) -> dict:
    """Like an API batch: text values, some fields missing on some records, a null here and there."""
    client_rows = []
    for i in range(clients):
        row = {"client_ref": f"C-{i}", "family_name": "Mitchell", "given_names": "Liam", "date_of_birth": "1982-09-12", "gender": "21",
               "primary_ethnicity": "11", "area": "315500", "notified_of_sharing_on": "2016-07-11", "identity_consent": "y"}
        if i % 7 == 0:
            del row["given_names"]
        if i % 11 == 0:
            row["date_of_birth"] = None
        client_rows.append(row)
    engagement_rows = [{"engagement_ref": f"E-{i}", "client_ref": f"C-{i % clients}", "service_code": "FS", "start_date": "2016-07-12",
                        **({} if i % 3 else {"end_date": "2017-07-14", "end_reason": "completed"})} for i in range(engagements)]
    return {"clients": client_rows, "engagements": engagement_rows}


def test_a_typical_batch_takes_the_fast_path(monkeypatch):
    body = typical_body()
    expected = reference_parse_records_json("request.json", body)
    assert [t.frame.height for t in expected.tables] == [340, 660]
    monkeypatch.setattr(sources, "_parse_records_json_slow", _slow_path_refused)
    assert_same(parse_records_json("request.json", body), expected)
    # Numbers and true/false among the text are read there too.
    body["clients"][5]["gender"] = 21
    body["clients"][6]["identity_consent"] = True
    body["engagements"][0]["service_code"] = 3.0
    assert_same(parse_records_json("request.json", body), reference_parse_records_json("request.json", body))


@pytest.mark.parametrize("change", [
    lambda body: body["clients"][3].update(family_name="Mit\x00chell"),
    lambda body: body["clients"][3].update(family_name="\ud800"),
    lambda body: body["engagements"][9].update({"end\x00reason": "x"}),
    lambda body: body["engagements"][9].update({"\udfff": "x"}),
    lambda body: body["engagements"][9].update(end_reason={"nested": "object"}),
    lambda body: body["engagements"][9].update(end_reason=_nested(10)),
    lambda body: body["engagements"].insert(4, "not an object"),
    lambda body: body["engagements"][9].update({1: "x"}),
    lambda body: body.update(provider="P0001"),
    lambda body: body.update({"clients\x00": []}),
])
def test_a_body_that_is_not_plain_records_takes_the_slow_path(change):
    """Only the slow path reports problems: a body with one (or with a non-text key) goes that way, and reads as it did."""
    body = typical_body(20, 30)
    change(body)
    taken = []
    original = sources._parse_records_json_slow

    def slow(file, body):
        taken.append(True)
        return original(file, body)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sources, "_parse_records_json_slow", slow)
        assert_same(parse_records_json("request.json", body), reference_parse_records_json("request.json", body))
    assert taken == [True]
