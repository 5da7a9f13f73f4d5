"""What may leave: only things this package made (provenance), exact and aggregate tables, derived
statistics, and statistics tables that refuse bare numbers; their JSON and CSV forms."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import polars as pl
import pytest

from cldx.disclosure import (
    RULES_VERSION,
    ReleasedTable,
    ReleasedValue,
    Statistic,
    StatisticsTable,
    aggregate_table,
    exact_statistic,
    exact_table,
    is_released,
    mean,
    percentage,
    protect,
    statistic,
    statistics_table,
)

from .conftest import KEY, T

PEOPLE = pl.DataFrame({"region": ["north", "north", "south", "south"], "service": ["a", "b", "a", "b"],
                       "count": [3, 20, 15, 14]})


def csv_text(rows: list[list[str]]) -> list[list[str]]:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return list(csv.reader(io.StringIO(buf.getvalue())))


# --- Provenance -----------------------------------------------------------------------------------


def test_released_things_cannot_be_made_outside_the_package():
    with pytest.raises(TypeError, match="only be made by cldx.disclosure"):
        ReleasedValue({"region": "north"}, "cell", 12, False)
    with pytest.raises(TypeError, match="only be made by cldx.disclosure"):
        ReleasedTable("people", ["region"], 6, [])
    with pytest.raises(TypeError, match="only be made by cldx.disclosure"):
        Statistic(50.0, 40.0, 60.0, False)
    with pytest.raises(TypeError, match="only be made by cldx.disclosure"):
        StatisticsTable("t", [], [], [], 6, [])
    with pytest.raises(TypeError, match="only be made by cldx.disclosure"):
        ReleasedValue({"region": "north"}, "cell", 12, False, stamp=object())


def test_released_things_cannot_be_copied_with_other_numbers_or_subclassed():
    table = protect(PEOPLE, key=KEY, threshold=T)
    with pytest.raises(TypeError):
        dataclasses.replace(table.values[0], value=4, suppressed=False)
    with pytest.raises(TypeError):
        dataclasses.replace(table, values=[])
    with pytest.raises(TypeError):
        dataclasses.replace(percentage(20, 50), value=1.0)
    for cls in (ReleasedTable, ReleasedValue, Statistic, StatisticsTable):
        with pytest.raises(TypeError, match="cannot be subclassed"):
            type("Forged", (cls,), {})


def test_is_released_only_for_tables_made_here():
    assert is_released(protect(PEOPLE, key=KEY, threshold=T))
    assert is_released(exact_table(PEOPLE, measure="people", provider="P0001"))
    assert is_released(aggregate_table(PEOPLE, measure="dollars", reason="money"))
    assert is_released(statistics_table("t", [], [], threshold=T))
    for other in (PEOPLE, {"values": []}, None, 12, protect(PEOPLE, key=KEY).values[0], percentage(20, 50)):
        assert not is_released(other)


# --- Protected, exact and aggregate tables -------------------------------------------------------


def test_suppressed_cells_are_keys_of_cells_only():
    table = protect(PEOPLE, key=KEY, threshold=T)
    assert table.suppressed_cells() == {("north", "a"), ("north", "b"), ("south", "a"), ("south", "b")}
    assert all(isinstance(k, tuple) and len(k) == 2 for k in table.suppressed_cells())


def test_exact_table_is_the_providers_own_figures():
    table = exact_table(PEOPLE, measure="people", provider="P0001")
    assert table.exact and table.scope == "P0001" and table.threshold is None
    assert table.get(region="north", service="a").value == 3  # exact: no suppression, no rounding
    assert table.get(region="north").value == 23 and table.get().value == 52
    assert table.rules == ["exact: P0001's own records, shown only to that provider"]
    doc = table.to_json()
    assert doc["exact"] is True and doc["scope"] == "P0001" and doc["rules_version"] == RULES_VERSION
    rows = csv_text(table.to_csv_rows())
    assert ["north", "a", "3"] in rows and ["Rule", "exact: P0001's own records, shown only to that provider"] in rows
    with pytest.raises(ValueError):
        exact_table(PEOPLE, measure="people", provider="")


def test_aggregate_table_releases_non_person_figures_as_computed():
    money = pl.DataFrame({"region": ["north", "south"], "dollars": [1234.5, 0.25]})
    table = aggregate_table(money, measure="funding", count="dollars", reason="money paid to providers")
    assert [v.value for v in table.values] == [1234.5, 0.25]  # no totals unless asked: sums may be wrong
    assert table.rules == ["not a count of people (money paid to providers): released as computed"]
    assert not table.exact and not any(v.suppressed for v in table.values)
    with_total = aggregate_table(money, measure="funding", count="dollars", reason="money", grand_total=True)
    assert with_total.get().value == 1234.75
    assert json.loads(json.dumps(with_total.to_json()))["values"][-1]["value"] == 1234.75
    with pytest.raises(ValueError):
        aggregate_table(money, measure="funding", count="dollars", reason="")


def test_protected_outputs_state_rules_and_mark_suppression():
    table = protect(PEOPLE, key=KEY, measure="clients", threshold=T)
    doc = json.loads(json.dumps(table.to_json()))
    assert doc["rules_version"] == "cldx-disclosure/2" == RULES_VERSION
    assert doc["exact"] is False and doc["scope"] is None
    assert any("companion" in r for r in doc["rules"]) and any("three or more" in r for r in doc["rules"])
    hidden = [v for v in doc["values"] if v["suppressed"]]
    assert hidden and all(v["value"] is None for v in hidden)
    rows = csv_text(table.to_csv_rows())
    assert rows[0] == ["region", "service", "clients"]
    assert rows[len(table.values) + 1] == []
    assert rows[len(table.values) + 2] == ["Rules version", RULES_VERSION]
    assert sum(r[:1] == ["Rule"] for r in rows) == len(table.rules)


# --- Statistics ---------------------------------------------------------------------------------


def test_derived_statistic_only_over_a_releasable_base():
    assert statistic(0.4567, 0.1, 0.8, base=5, threshold=T).suppressed
    s = statistic(0.4567, 0.1234, 0.8, base=6, threshold=T)
    assert not s.suppressed and (s.value, s.low, s.high) == (0.46, 0.12, 0.8) and not s.exact
    assert statistic(-1.23456, None, None, base=40, digits=3).value == -1.235
    with pytest.raises(ValueError):
        statistic(float("nan"), None, None, base=40)
    with pytest.raises(ValueError):
        statistic(1.0, 2.0, 0.5, base=40)  # interval upside down


def test_exact_statistic_is_marked_exact():
    s = exact_statistic(3.14159, 2.0, 4.0)
    assert s.exact and not s.suppressed and s.value == 3.14159
    with pytest.raises(TypeError):
        exact_statistic("3")


def test_percentage_and_mean_keep_their_rules():
    assert percentage(3, 5, threshold=T).suppressed
    assert percentage(3, 50, threshold=T).suppressed  # numerator would come back out
    assert not percentage(0, 50, threshold=T).suppressed
    assert mean([1.0] * 5, threshold=T).suppressed and not mean([1.0] * 6, threshold=T).suppressed


def test_statistics_table_refuses_bare_numbers():
    at = {"region": "north"}
    for bare in (12, 12.5, True and 3, "12", " 45.5% ", "1,234"):
        with pytest.raises(TypeError):
            statistics_table("t", ["region"], [(at, {"value": bare})], threshold=T)
    with pytest.raises(ValueError):
        statistics_table("t", ["region"], [({"area": "north"}, {"flag": "above"})], threshold=T)
    with pytest.raises(TypeError):
        statistics_table("t", ["region"], [({"region": 3}, {"flag": "above"})], threshold=T)


def test_statistics_table_outputs():
    people = protect(PEOPLE, key=KEY, threshold=T)
    rows = [
        ({"region": "north"}, {"share": percentage(20, 50, threshold=T), "people": people.get(region="north"),
                               "flag": "above", "small": True}),
        ({"region": "south"}, {"share": percentage(3, 50, threshold=T), "people": people.get(region="south"),
                               "flag": None, "small": False}),
        ({"region": None}, {"share": percentage(23, 100, threshold=T), "people": people.get(), "flag": "Māori"}),
    ]
    table = statistics_table("Share by region", ["region"], rows, threshold=T, notes=["share of people seen"])
    assert is_released(table) and not table.exact
    doc = json.loads(json.dumps(table.to_json()))
    assert set(doc) >= {"title", "dimensions", "columns", "rows", "threshold", "rules", "rules_version"}
    assert doc["columns"] == ["share", "people", "flag", "small"]
    north = doc["rows"][0]["values"]
    assert north["share"] == {"value": 40.0, "low": north["share"]["low"], "high": north["share"]["high"],
                              "suppressed": False}
    assert set(north["people"]) == {"value", "suppressed"} and north["flag"] == "above" and north["small"] is True
    assert doc["rows"][1]["values"]["share"]["suppressed"] is True and doc["rows"][1]["values"]["share"]["value"] is None
    assert doc["rows"][2]["at"] == {"region": None}
    csv_rows = csv_text(table.to_csv_rows())
    assert csv_rows[0] == ["region", "share", "share_low", "share_high", "people", "flag", "small"]
    assert csv_rows[2][:4] == ["south", "S", "S", "S"]
    assert csv_rows[3][0] == "Total"
    assert ["Rules version", RULES_VERSION] in csv_rows and ["Note", "share of people seen"] in csv_rows
    own = statistics_table("Own", ["region"], [({"region": "north"}, {"mean": exact_statistic(2.5)})], threshold=T)
    assert own.exact and any(r.startswith("exact") for r in own.rules)


def test_numpy_numbers_become_plain_numbers():
    import numpy as np

    s = statistic(np.float32(0.25), None, None, base=np.int64(40))
    assert type(s.value) is float and s.value == 0.25
    e = exact_statistic(np.int64(7))
    assert type(e.value) is int and json.dumps(e.to_json())
