"""Disclosure control: suppression proved with a linear programme, RR3 rounding, outputs.

The LP audit is independent of the module's own max-flow audit: variables are the suppressed
values (cells and totals), each >= 0; released values are fixed at their exact values (the
strictest case: an intruder who could undo the rounding); the constraints are the table's
additivity (row cells add to the row total, column cells to the column total, totals to the
grand total). For every suppressed value, max - min must be at least the threshold. Unbounded
above counts as wide enough.
"""

from __future__ import annotations

import csv
import io
import json

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from cldx.disclosure import RULES_VERSION, cell_identity, mean, percentage, protect, rr3

KEY = b"test key for rounding"
T = 6


def frame(grid: list[list[int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "region": [f"r{i}" for i, row in enumerate(grid) for _ in row],
            "group": [f"c{j}" for row in grid for j, _ in enumerate(row)],
            "count": [v for row in grid for v in row],
        }
    )


def exact_values(grid: list[list[int]]) -> dict[tuple[str | None, str | None], int]:
    """Exact value of every cell and total, keyed by (region, group); None = total."""
    out: dict[tuple[str | None, str | None], int] = {}
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            out[(f"r{i}", f"c{j}")] = v
        out[(f"r{i}", None)] = sum(row)
    for j in range(len(grid[0])):
        out[(None, f"c{j}")] = sum(row[j] for row in grid)
    out[(None, None)] = sum(map(sum, grid))
    return out


def lp_widths(grid: list[list[int]], suppressed: set) -> dict:
    """max - min of each suppressed value by linprog (inf when unbounded above)."""
    exact = exact_values(grid)
    rows = [f"r{i}" for i in range(len(grid))]
    cols = [f"c{j}" for j in range(len(grid[0]))]
    var = sorted(suppressed, key=str)
    index = {k: n for n, k in enumerate(var)}
    # Each constraint: list of (coefficient, key) summing to zero.
    constraints = [[(1, (r, c)) for c in cols] + [(-1, (r, None))] for r in rows]
    constraints += [[(1, (r, c)) for r in rows] + [(-1, (None, c))] for c in cols]
    constraints.append([(1, (r, None)) for r in rows] + [(-1, (None, None))])
    constraints.append([(1, (None, c)) for c in cols] + [(-1, (None, None))])
    a_eq, b_eq = [], []
    for terms in constraints:
        row = [0.0] * len(var)
        rhs = 0.0
        for coef, k in terms:
            if k in index:
                row[index[k]] += coef
            else:
                rhs -= coef * exact[k]
        if any(row):
            a_eq.append(row)
            b_eq.append(rhs)
        else:
            assert rhs == 0
    widths = {}
    for k in var:
        c = [0.0] * len(var)
        c[index[k]] = 1.0
        lo = linprog(c, A_eq=a_eq or None, b_eq=b_eq or None, bounds=(0, None), method="highs")
        assert lo.status == 0, lo.message
        c[index[k]] = -1.0
        hi = linprog(c, A_eq=a_eq or None, b_eq=b_eq or None, bounds=(0, None), method="highs")
        assert hi.status in (0, 3), hi.message
        widths[k] = float("inf") if hi.status == 3 else (-hi.fun) - lo.fun
    return widths


def suppressed_keys(released) -> set:
    return {(v.at["region"], v.at["group"]) for v in released.values if v.suppressed}


count = st.one_of(st.integers(0, 6), st.integers(0, 40))
grids = st.integers(2, 5).flatmap(
    lambda n_cols: st.lists(st.lists(count, min_size=n_cols, max_size=n_cols), min_size=2, max_size=5)
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grids)
def test_protected_table_properties(grid):
    released = protect(frame(grid), key=KEY, measure="clients", threshold=T)
    exact = exact_values(grid)
    assert {(v.at["region"], v.at["group"]) for v in released.values} == set(exact)
    for v in released.values:
        k = (v.at["region"], v.at["group"])
        if v.suppressed:
            assert v.value is None
        else:
            assert v.value % 3 == 0
            assert exact[k] == 0 or exact[k] >= T, (k, exact[k])
            assert abs(v.value - exact[k]) < 3
            assert exact[k] == 0 or v.value > 0
    widths = lp_widths(grid, suppressed_keys(released))
    weak = {k: w for k, w in widths.items() if w < T - 1e-6}
    assert not weak, (grid, weak)
    assert protect(frame(grid), key=KEY, measure="clients", threshold=T) == released


def test_small_cells_and_their_partners_are_suppressed():
    grid = [[3, 20], [15, 14], [9, 2]]
    released = protect(frame(grid), key=KEY, threshold=T)
    assert suppressed_keys(released) == {("r0", "c0"), ("r0", "c1"), ("r2", "c0"), ("r2", "c1")}
    assert min(lp_widths(grid, suppressed_keys(released)).values()) >= T


def test_small_total_is_suppressed_and_protected():
    grid = [[1, 0, 2], [10, 12, 30], [7, 8, 9]]
    released = protect(frame(grid), key=KEY, threshold=T)
    assert released.get(region="r0", group=None).suppressed
    assert min(lp_widths(grid, suppressed_keys(released)).values()) >= T


def test_one_way_table():
    df = pl.DataFrame({"region": ["a", "b", "c", "d"], "count": [4, 30, 12, 0]})
    released = protect(df, key=KEY, threshold=T)
    values = {v.at["region"]: v for v in released.values}
    assert values["a"].suppressed
    assert sum(v.suppressed for v in values.values()) >= 2  # total released, so a partner too
    assert not values[None].suppressed and values[None].value % 3 == 0
    assert values["d"].value == 0 or values["d"].suppressed


def test_different_key_changes_some_directions():
    grid = [[7 + i + j for j in range(5)] for i in range(5)]
    a = protect(frame(grid), key=b"one", threshold=T)
    b = protect(frame(grid), key=b"two", threshold=T)
    assert [v.value for v in a.values] != [v.value for v in b.values]
    assert [v.suppressed for v in a.values] == [v.suppressed for v in b.values]


def test_rr3_rules():
    ident = cell_identity("clients", {"region": "x"})
    assert rr3(0, ident, KEY) == 0
    assert rr3(1, ident, KEY) == 3
    assert rr3(2, ident, KEY) == 3
    for v in (3, 6, 99):
        assert rr3(v, ident, KEY) == v
    with pytest.raises(ValueError):
        rr3(-1, ident, KEY)


@pytest.mark.parametrize("value, nearer", [(7, 6), (8, 9), (13, 12), (41, 42)])
def test_rr3_goes_to_the_nearer_multiple_two_times_in_three(value, nearer):
    n = 6000
    outcomes = [rr3(value, cell_identity("clients", {"id": str(i)}), KEY) for i in range(n)]
    assert set(outcomes) == {value - value % 3, value - value % 3 + 3}
    share = outcomes.count(nearer) / n
    assert abs(share - 2 / 3) < 0.03, share


def test_rr3_is_stable_for_the_same_question():
    ident = cell_identity("clients", {"region": "x", "group": None})
    assert len({rr3(8, ident, KEY) for _ in range(50)}) == 1


def test_outputs_state_rules_and_mark_suppression():
    released = protect(frame([[3, 20], [15, 14], [9, 2]]), key=KEY, measure="clients", threshold=T)
    doc = json.loads(json.dumps(released.to_json()))
    assert doc["rules_version"] == RULES_VERSION and doc["rules"]
    hidden = [v for v in doc["values"] if v["suppressed"]]
    assert hidden and all(v["value"] is None for v in hidden)
    assert all(isinstance(v["value"], int) for v in doc["values"] if not v["suppressed"])
    buf = io.StringIO()
    csv.writer(buf).writerows(released.to_csv_rows())
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows[0] == ["region", "group", "clients"]
    body = rows[1 : 1 + len(released.values)]
    assert sum(r[2] == "S" for r in body) == len(hidden)
    assert ["Rules version", RULES_VERSION] in rows


def test_statistics_only_over_releasable_bases():
    assert percentage(3, 5, threshold=T).suppressed
    assert percentage(3, 50, threshold=T).suppressed  # numerator would come back out
    p = percentage(20, 50, threshold=T)
    assert not p.suppressed and p.value == 40.0 and p.low < 40.0 < p.high
    assert p.to_json()["suppressed"] is False
    assert mean([1.0, 2.0, 3.0], threshold=T).suppressed
    m = mean([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], threshold=T)
    assert m.value == 3.5 and m.low < 3.5 < m.high
