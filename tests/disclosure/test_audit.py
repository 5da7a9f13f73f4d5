"""The residual-graph audit finds exactly the interval linprog finds, for any set of hidden values.

`Table.interval` (no reach) gives both end points exactly; here they are compared with the
linear programme's min and max over random tables and random hidden sets, including one-row
tables and hidden grand totals (unbounded above).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from cldx.disclosure.suppression import Item, Table


def ordered(items) -> list[Item]:
    return sorted(items, key=lambda i: (i.row is None, i.row or 0, i.col is None, i.col or 0))


def table_of(grid: list[list[int]]) -> Table:
    n_rows, n_cols = len(grid), len(grid[0])
    exact = {Item(i, j): v for i, row in enumerate(grid) for j, v in enumerate(row)}
    for i, row in enumerate(grid):
        exact[Item(i, None)] = sum(row)
    for j in range(n_cols):
        exact[Item(None, j)] = sum(row[j] for row in grid)
    exact[Item(None, None)] = sum(map(sum, grid))
    return Table(exact, n_rows, n_cols)


def lp_interval(table: Table, hidden: set[Item], item: Item) -> tuple[float, float]:
    """min and max of `item` with released values fixed and hidden ones free >= 0."""
    free = ordered(hidden)
    index = {k: n for n, k in enumerate(free)}
    rows, cols = range(table.n_rows), range(table.n_cols)
    constraints = [[(1, Item(i, j)) for j in cols] + [(-1, Item(i, None))] for i in rows]
    constraints += [[(1, Item(i, j)) for i in rows] + [(-1, Item(None, j))] for j in cols]
    constraints.append([(1, Item(i, None)) for i in rows] + [(-1, Item(None, None))])
    constraints.append([(1, Item(None, j)) for j in cols] + [(-1, Item(None, None))])
    a_eq, b_eq = [], []
    for terms in constraints:
        row, rhs = [0.0] * len(free), 0.0
        for coef, k in terms:
            if k in index:
                row[index[k]] += coef
            else:
                rhs -= coef * table.exact[k]
        if any(row):
            a_eq.append(row)
            b_eq.append(rhs)
    c = [0.0] * len(free)
    c[index[item]] = 1.0
    lo = linprog(c, A_eq=a_eq or None, b_eq=b_eq or None, bounds=(0, None), method="highs")
    c[index[item]] = -1.0
    hi = linprog(c, A_eq=a_eq or None, b_eq=b_eq or None, bounds=(0, None), method="highs")
    assert lo.status == 0 and hi.status in (0, 3)
    return lo.fun, float("inf") if hi.status == 3 else -hi.fun


@st.composite
def grids_and_hidden(draw):
    n_rows, n_cols = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    grid = [[draw(st.integers(0, 12)) for _ in range(n_cols)] for _ in range(n_rows)]
    table = table_of(grid)
    hidden = {item for item in ordered(table.exact) if draw(st.integers(0, 2)) == 0}
    if not hidden:
        hidden = {Item(0, 0)}
    return table, hidden


@settings(max_examples=40, deadline=None)
@given(grids_and_hidden())
def test_residual_interval_equals_linear_programme(case):
    table, hidden = case
    for item in ordered(hidden):
        lo, hi = table.interval(hidden, item)
        lp_lo, lp_hi = lp_interval(table, hidden, item)
        assert abs(lo - lp_lo) < 1e-6 and (hi == lp_hi or abs(hi - lp_hi) < 1e-6), (item, (lo, hi), (lp_lo, lp_hi))
        assert table.width(hidden, item, 6) == min(hi - lo, 6)


def test_released_value_has_no_room():
    table = table_of([[1, 2], [3, 4]])
    assert table.interval(set(), Item(0, 0)) == (1, 1)
    assert table.interval({Item(0, 0)}, Item(0, 0)) == (1, 1)  # alone in its row: recoverable
