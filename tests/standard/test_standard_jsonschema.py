"""The JSON Schemas generated from the standard: valid schemas that accept real records and refuse wrong ones."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from cldx.standard import RECORD_TYPES, STANDARD_VERSION, FieldType, RecordType
from cldx.standard.jsonschema import DATE_PATTERN, record_schema
from cldx.standard.values import ValueProblem, parse_date

RECORD_NAMES = list(RECORD_TYPES)


def validator(record_type: RecordType) -> Draft202012Validator:
    return Draft202012Validator(record_schema(record_type))


def example_row(record_type: RecordType) -> dict[str, object]:
    """A realistic record from the fields' examples, numbers as JSON numbers (built here, not by the module)."""
    row: dict[str, object] = {}
    for f in record_type.fields:
        if not f.example:
            continue
        if f.type is FieldType.INTEGER:
            row[f.name] = int(f.example)
        elif f.type is FieldType.DECIMAL:
            row[f.name] = float(f.example)
        else:
            row[f.name] = f.example
    return row


def errors(record_type: RecordType, row: dict[str, object]) -> list[str]:
    return [e.message for e in validator(record_type).iter_errors(row)]


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_every_record_schema_is_a_valid_draft_2020_12_schema(name):
    schema = record_schema(RECORD_TYPES[name])
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_schema_carries_version_key_identifying_fields_and_one_property_per_field(name):
    rt = RECORD_TYPES[name]
    schema = record_schema(rt)
    assert schema["x-cldx-standard-version"] == STANDARD_VERSION
    assert STANDARD_VERSION in schema["$id"]
    assert schema["x-cldx-key"] == list(rt.key)
    assert schema["x-cldx-identifying"] == [f.name for f in rt.identifying_fields]
    assert list(schema["properties"]) == rt.columns


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_schema_accepts_a_realistic_record_built_from_the_field_examples(name):
    rt = RECORD_TYPES[name]
    row = example_row(rt)
    assert errors(rt, row) == []
    # The schema's own example is that record too.
    assert record_schema(rt)["examples"] == [row]


@pytest.mark.parametrize(
    ("name", "field"),
    [(rt.name, f.name) for rt in RECORD_TYPES.values() for f in rt.fields if f.code_set],
)
def test_schema_rejects_an_unknown_code_in_every_coded_field(name, field):
    rt = RECORD_TYPES[name]
    row = example_row(rt) | {field: "ZZ9"}
    assert errors(rt, row), f"{name}.{field} accepted an unknown code"


@pytest.mark.parametrize(
    ("name", "field"),
    [(rt.name, f.name) for rt in RECORD_TYPES.values() for f in rt.fields if f.type is FieldType.DATE],
)
@pytest.mark.parametrize("bad", ["2017-13-01", "2017-02-32", "03/13/2017", "9 March 2017", "17-03-09", "2017/03/09", ""])
def test_schema_rejects_a_bad_date_in_every_date_field(name, field, bad):
    rt = RECORD_TYPES[name]
    assert errors(rt, example_row(rt) | {field: bad})


@pytest.mark.parametrize("good", ["2017-03-09", "09/03/2017", "9/3/2017", "31/12/2016"])
def test_schema_accepts_iso_and_new_zealand_day_first_dates(good):
    rt = RECORD_TYPES["engagement"]
    assert errors(rt, example_row(rt) | {"start_date": good, "end_date": None}) == []


@pytest.mark.parametrize(
    ("name", "field"),
    [(rt.name, f.name) for rt in RECORD_TYPES.values() for f in rt.fields if f.required],
)
def test_schema_rejects_a_record_missing_a_required_field(name, field):
    rt = RECORD_TYPES[name]
    row = example_row(rt)
    del row[field]
    assert any(field in message for message in errors(rt, row))


def test_identifying_fields_are_optional_so_a_client_who_declines_identity_validates():
    rt = RECORD_TYPES["client"]
    row = {k: v for k, v in example_row(rt).items() if k not in ("family_name", "given_names", "date_of_birth")}
    row["identity_consent"] = "n"
    assert errors(rt, row) == []
    schema = record_schema(rt)
    assert {"family_name", "given_names", "date_of_birth"} <= set(schema["x-cldx-identifying"])
    assert all(schema["properties"][name]["x-cldx-identifying"] for name in ("family_name", "given_names", "date_of_birth"))


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_a_withdrawal_needs_only_the_key(name):
    rt = RECORD_TYPES[name]
    row = {k: v for k, v in example_row(rt).items() if k in rt.key} | {"action": "withdraw"}
    assert errors(rt, row) == []
    # Without the withdraw action the same row is incomplete.
    assert errors(rt, {k: v for k, v in row.items() if k != "action"})


def test_optional_fields_may_be_null_but_required_ones_may_not():
    rt = RECORD_TYPES["client"]
    assert errors(rt, example_row(rt) | {"iwi_2": None, "notified_of_sharing_on": None, "action": None}) == []
    assert errors(rt, example_row(rt) | {"gender": None})


def test_schema_rejects_a_column_the_standard_does_not_have():
    rt = RECORD_TYPES["client"]
    assert errors(rt, example_row(rt) | {"gendr": "21"})


def test_schema_rejects_an_ethnicity_at_level_1_and_an_iwi_region():
    rt = RECORD_TYPES["client"]
    assert errors(rt, example_row(rt) | {"primary_ethnicity": "2"})  # level 1: too coarse
    assert errors(rt, example_row(rt) | {"iwi_1": "04"})  # an iwi region, not an iwi
    assert errors(rt, example_row(rt) | {"area": "001", "primary_ethnicity": "31"}) == []  # a TA is accepted


def test_service_code_is_checked_by_pattern_since_the_list_is_in_the_registry():
    rt = RECORD_TYPES["engagement"]
    prop = record_schema(rt)["properties"]["service_code"]
    assert "enum" not in prop and prop["pattern"]
    assert errors(rt, example_row(rt) | {"service_code": "NEWLINE_2017"}) == []
    assert errors(rt, example_row(rt) | {"service_code": "has space"})


def test_schema_rejects_numbers_out_of_range_and_numbers_written_as_text():
    rt = RECORD_TYPES["attendance"]
    assert errors(rt, example_row(rt) | {"duration_minutes": 1441})
    assert errors(rt, example_row(rt) | {"duration_minutes": -1})
    assert errors(rt, example_row(rt) | {"duration_minutes": 12.5})
    assert errors(rt, example_row(rt) | {"duration_minutes": "60"})


@pytest.mark.parametrize(
    ("instrument", "domain", "score", "valid"),
    [
        ("FSTAR", "keeping_safe", 10, True),
        ("FSTAR", "keeping_safe", 11, False),
        ("FSTAR", "keeping_safe", 0, False),
        ("SDQ", "total", 35, True),
        ("SDQ", "total", 41, False),
        ("K10", "distress", 5, False),  # K10 starts at 10, SDQ scales at 0: ranges follow the instrument
        ("K10", "distress", 50, True),
        ("K10", "keeping_safe", 5, False),  # a Family Star domain is not a K10 domain
    ],
)
def test_assessment_schema_checks_domain_and_score_range_per_instrument(instrument, domain, score, valid):
    rt = RECORD_TYPES["assessment"]
    row = example_row(rt) | {"instrument": instrument, "domain": domain, "score": score}
    assert (errors(rt, row) == []) is valid


def test_outcome_schema_rejects_a_measure_of_another_dimension():
    rt = RECORD_TYPES["outcome"]
    assert errors(rt, example_row(rt) | {"dimension": "knowledge", "measure": "safe_sleep_knowledge"}) == []
    assert errors(rt, example_row(rt) | {"dimension": "knowledge", "measure": "school_attendance"})


DATE_FORMS = {
    "iso": lambda d: d.isoformat(),
    "nz": lambda d: d.strftime("%d/%m/%Y"),
    "nz without leading zeros": lambda d: f"{d.day}/{d.month}/{d.year}",
}


@given(day=st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)), form=st.sampled_from(sorted(DATE_FORMS)))
def test_the_date_pattern_accepts_every_date_parse_date_reads(day, form):
    text = DATE_FORMS[form](day)
    assert parse_date(text) == day
    assert Draft202012Validator({"type": "string", "pattern": DATE_PATTERN}).is_valid(text)


@given(text=st.from_regex(DATE_PATTERN, fullmatch=True).filter(lambda s: s.isascii()))
def test_every_string_the_date_pattern_accepts_is_a_date_form_parse_date_reads(text):
    # The pattern cannot know month lengths, but it never lets through a form cldx cannot read.
    try:
        parse_date(text)
    except ValueProblem as problem:
        assert problem.rule == "impossible-date"
