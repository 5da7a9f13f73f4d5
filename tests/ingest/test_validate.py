"""Validation's quick field checks against its full ones, on awkward input."""

from __future__ import annotations

import polars as pl
import pytest

from cldx.ingest.validate import ACTION, _d, _field_plan, _p, _v
from cldx.standard import RECORD_TYPES, FieldType

SERVICE_CODES = ("FS", "ABC", "007")

# Text a provider might send in any column: well-formed values of every kind and near misses.
AWKWARD = [
    "", "y", "Y", "yes", "TRUE", "1", "0", "n", "no", "false", "maybe",
    "2017-03-04", "2017-3-4", "04/03/2017", "4/3/2017", "2017-02-29", "29/02/2016", "30/02/2017", "02/13/2017",
    "0999-01-01", "+2017-03-04", "12017-03-04", "2017/03/04", "2017-03-04x", "٢٠١٧-03-04", "1/1/10000", "00/01/2017",
    "5", "5.0", "5.5", "-1", "1441", "1,000", "$5", " 5", "1e3", "inf", "nan", "NaN", "+5", ".5", "0x10",
    "C-1", "P0001-000001", "-C", "a b", "x" * 41, "x" * 101, "FS", "fs", "ABC", "7", "07", "007",
]


def _codes_of(spec) -> list[str]:
    if spec.type is not FieldType.CODE:
        return []
    codes = list(SERVICE_CODES) if spec.name == "service_code" else spec.accepted_codes()
    # Every accepted code, and each stripped of its leading zeros (which the full check may restore).
    return codes + [c.lstrip("0") for c in codes if c.startswith("0")]


@pytest.mark.parametrize("name", list(RECORD_TYPES))
def test_quick_checks_agree_with_the_full_checks_wherever_they_pass(name: str) -> None:
    rt = RECORD_TYPES[name]
    plan = _field_plan(name, SERVICE_CODES)
    values = AWKWARD + sorted({code for spec in rt.fields for code in _codes_of(spec)})
    for action in ("", "upsert", "withdraw"):
        frame = pl.DataFrame({c: values for c in rt.columns}).with_columns(pl.lit(action).alias(ACTION))
        for field in plan.fields:
            both = frame.with_columns(field.quick.alias("quick"), field.doubtful).with_columns(field.typed, field.problem)
            assert both.get_column(_d(field.name)).null_count() == 0, field.name
            passed = both.filter(~pl.col(_d(field.name)))
            assert passed.get_column("quick").equals(passed.get_column(_v(field.name)), check_names=False), field.name
            assert passed.get_column(_p(field.name)).null_count() == passed.height, field.name
            if rt.field(field.name).type is FieldType.CODE:
                # Nor was a code restored: what was sent is what is kept.
                sent, kept = passed.get_column(field.name), passed.get_column(_v(field.name))
                assert ((sent == kept) | kept.is_null()).all(), field.name

