"""JSON Schemas (draft 2020-12) for the six record types, generated from the field definitions.

A schema describes one record as a JSON object, the shape a provider's system sends to the API:
text, codes and dates are strings, numbers are JSON numbers, and an optional field with no value
is left out or given as null. Each schema carries the standard's version and cldx's own
`x-cldx-*` keywords (the key, the identifying fields, the code set behind each field) so a
reader needs nothing else to know how a record is keyed and which fields are kept apart.

What a schema cannot say is left to cldx's validation and stated in the descriptions: a date
that matches the pattern but is not on the calendar (30/02/2017), an end before a start,
a service code that is not in the ministry's stored list, references to other records.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .codesets import code_set, load_instruments
from .fields import Field, FieldType, RecordType
from .records import RECORD_TYPES, STANDARD_NAME, STANDARD_VERSION

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# The same two forms `values.parse_date` reads: ISO year-month-day or New Zealand day-first, with
# or without leading zeros. Months and days are range-checked so month-first US dates
# (03/13/2017) fail here already; whether the day exists in that month is left to cldx.
_DAY = "(0?[1-9]|[12][0-9]|3[01])"
_MONTH = "(0?[1-9]|1[0-2])"
DATE_PATTERN = f"^([0-9]{{4}}-{_MONTH}-{_DAY}|{_DAY}/{_MONTH}/[0-9]{{4}})$"

WITHDRAW = "withdraw"


def schema_id(record_type: RecordType) -> str:
    """A stable URI naming the schema of a record type in this version of the standard."""
    return f"urn:cldx:data-standard:{STANDARD_VERSION}:{record_type.name}"


def schema_file_name(record_type: RecordType) -> str:
    return f"{record_type.name}.schema.json"


def record_schema(record_type: RecordType) -> dict[str, Any]:
    """The JSON Schema of one record type."""
    required = [f.name for f in record_type.fields if f.required]
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_id(record_type),
        "title": f"{record_type.title} record ({STANDARD_NAME} v{STANDARD_VERSION})",
        "description": (
            f"{record_type.description} One row of {record_type.file_name}. "
            f"Keyed within the provider by {' + '.join(record_type.key)}: sending a record again with the same key "
            "updates it. A record whose action is withdraw needs only its key."
        ),
        "type": "object",
        "x-cldx-standard": STANDARD_NAME,
        "x-cldx-standard-version": STANDARD_VERSION,
        "x-cldx-record-type": record_type.name,
        "x-cldx-file": record_type.file_name,
        "x-cldx-key": list(record_type.key),
        "x-cldx-identifying": [f.name for f in record_type.identifying_fields],
        "x-cldx-references": {r.field: r.record_type for r in record_type.references},
        "properties": {f.name: field_schema(f, key=f.name in record_type.key) for f in record_type.fields},
        "additionalProperties": False,
        # The key is always needed; the other required fields only when the record is added or
        # updated, since a withdrawal names just the record it withdraws.
        "required": list(record_type.key),
    }
    if "action" in record_type.columns:
        schema["if"] = {"properties": {"action": {"const": WITHDRAW}}, "required": ["action"]}
        schema["else"] = {"required": required}
    else:
        schema["required"] = required
    rules = _cross_field_rules(record_type)
    if rules:
        schema["allOf"] = rules
    schema["examples"] = [example_record(record_type)]
    return schema


def all_record_schemas() -> dict[str, dict[str, Any]]:
    """Every record type's schema, by record type name."""
    return {name: record_schema(rt) for name, rt in RECORD_TYPES.items()}


def field_schema(field: Field, key: bool = False) -> dict[str, Any]:
    """The schema of one property: its JSON type and the constraints written on the field."""
    prop: dict[str, Any] = {"title": field.name, "description": _field_description(field)}
    accepted = field.accepted_codes()
    match field.type:
        case FieldType.INTEGER:
            prop["type"] = "integer"
        case FieldType.DECIMAL:
            prop["type"] = "number"
        case FieldType.DATE:
            prop["type"] = "string"
            prop["pattern"] = DATE_PATTERN
        case _:
            prop["type"] = "string"
    if field.min_value is not None:
        prop["minimum"] = _number(field.min_value)
    if field.max_value is not None:
        prop["maximum"] = _number(field.max_value)
    if accepted:
        # Large lists (2,321 areas) are still listed in full: the schema is then complete on its own.
        prop["enum"] = accepted
    else:
        if field.max_length is not None and field.type is not FieldType.DATE:
            prop["maxLength"] = field.max_length
        if field.pattern:
            prop["pattern"] = field.pattern
    if not field.required:
        # Optional fields may be left out or sent as null, as JSON writers do with "no value".
        prop["type"] = [prop["type"], "null"]
        if "enum" in prop:
            prop["enum"] = [*prop["enum"], None]
    if field.example:
        prop["examples"] = [json_value(field, field.example)]
    prop["x-cldx-type"] = str(field.type)
    prop["x-cldx-requirement"] = field.requirement
    if field.required_when:
        prop["x-cldx-required-when"] = field.required_when
    if field.code_set:
        prop["x-cldx-code-set"] = field.code_set
        prop["x-cldx-code-set-version"] = code_set(field.code_set).version
    if field.levels:
        prop["x-cldx-levels"] = list(field.levels)
    if field.identifying:
        prop["x-cldx-identifying"] = True
    if key:
        prop["x-cldx-key"] = True
    return prop


def json_value(field: Field, text: str) -> Any:
    """A value as written in a file, turned into the JSON value the schema expects."""
    match field.type:
        case FieldType.INTEGER:
            return int(text)
        case FieldType.DECIMAL:
            number = Decimal(text)
            return int(number) if number == number.to_integral_value() else float(number)
        case _:
            return text


def example_record(record_type: RecordType) -> dict[str, Any]:
    """A realistic record built from the fields' examples (fields without one are left out)."""
    return {f.name: json_value(f, f.example) for f in record_type.fields if f.example}


def _field_description(field: Field) -> str:
    parts = [field.description]
    if field.required_when:
        parts.append(f"Requirement: {field.required_when}.")
    parts.append(f"Format: {field.format_hint}.")
    if field.type is FieldType.DATE:
        parts.append("cldx also checks that the date exists in the calendar.")
    if field.type is FieldType.CODE and field.code_set is None:
        parts.append("Checked against the service lines stored in cldx's registry, so not listed here.")
    return " ".join(parts)


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _when(**equals: str) -> dict[str, Any]:
    """An `if` that holds when each named property is present and equal to the value."""
    return {"properties": {name: {"const": value} for name, value in equals.items()}, "required": list(equals)}


def _cross_field_rules(record_type: RecordType) -> list[dict[str, Any]]:
    """Rules tying one field's accepted values to another's, from the instrument and measure tables."""
    columns = set(record_type.columns)
    rules: list[dict[str, Any]] = []
    if {"instrument", "domain", "score"} <= columns:
        # Each instrument has its own domains, each domain its own score range.
        for instrument in load_instruments().values():
            domain_rules = [
                {
                    "if": _when(domain=d.code),
                    "then": {"properties": {"score": {"minimum": _number(d.min_score), "maximum": _number(d.max_score)}}},
                }
                for d in instrument.domains.values()
            ]
            rules.append(
                {
                    "if": _when(instrument=instrument.code),
                    "then": {"properties": {"domain": {"enum": list(instrument.domains)}}, "allOf": domain_rules},
                }
            )
    if {"dimension", "measure"} <= columns:
        # Each outcome measure belongs to one dimension.
        measures = code_set("outcome_measure")
        for dimension in code_set("outcome_dimension"):
            rules.append(
                {
                    "if": _when(dimension=dimension.code),
                    "then": {"properties": {"measure": {"enum": [m.code for m in measures if m.parent == dimension.code]}}},
                }
            )
    return rules

