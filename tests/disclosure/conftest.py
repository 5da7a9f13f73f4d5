"""Helpers for the disclosure tests: random tables and an independent linear-programming audit.

The audit does not use the module's layout or max-flow code: it lays the table out from the raw
records itself (rows = combinations of all dimensions but the last, as present; columns = the
last dimension's categories, as present; missing combinations within those are 0), writes the
additive constraints (cells add to their row total and to their column total; row totals and
column totals each add to the grand total), fixes every released value at its exact value (the
strictest case: an intruder who could undo the rounding), leaves suppressed and unreleased
values free >= 0, and asks scipy's linprog how far each suppressed value can move.
"""

from __future__ import annotations

import polars as pl
from hypothesis import strategies as st
from scipy.optimize import linprog
from scipy.sparse import lil_matrix

KEY = b"test key for rounding"
T = 6

Key = tuple[str | None, ...]  # one category per dimension; None = total over that dimension


def frame_of(dims: list[str], cells: dict[tuple[str, ...], int], count: str = "count") -> pl.DataFrame:
    """A DataFrame with one row per present cell."""
    columns: dict[str, list] = {d: [k[i] for k in cells] for i, d in enumerate(dims)}
    columns[count] = list(cells.values())
    return pl.DataFrame(columns, schema={**{d: pl.String for d in dims}, count: pl.Int64})


def layout_values(cells: dict[tuple[str, ...], int], n_dims: int) -> dict[Key, int]:
    """Exact value of every cell and every row, column and grand total, keyed like `at`."""
    rows = sorted({k[:-1] for k in cells})
    cols = sorted({k[-1] for k in cells})
    values: dict[Key, int] = {}
    for r in rows:
        for c in cols:
            values[(*r, c)] = cells.get((*r, c), 0)
        values[(*r, None)] = sum(cells.get((*r, c), 0) for c in cols)
    width = n_dims - 1
    for c in cols:
        values[(*(None,) * width, c)] = sum(cells.get((*r, c), 0) for r in rows)
    values[(None,) * (width + 1)] = sum(cells.values())
    return values


def lp_widths(
    cells: dict[tuple[str, ...], int], n_dims: int, released: set[Key], suppressed: set[Key]
) -> dict[Key, float]:
    """max - min of each suppressed value (inf when unbounded above), by linprog.

    `released` are the values published exactly (not suppressed); everything else in the
    layout (suppressed, or never released) is a free variable >= 0.
    """
    values = layout_values(cells, n_dims)
    rows = sorted({k[:-1] for k in cells})
    cols = sorted({k[-1] for k in cells})
    width = n_dims - 1
    free = sorted((k for k in values if k not in released), key=str)
    index = {k: n for n, k in enumerate(free)}

    def row_total(r):
        return (*r, None)

    def col_total(c):
        return (*(None,) * width, c)

    grand = (None,) * (width + 1)
    constraints = [[(1, (*r, c)) for c in cols] + [(-1, row_total(r))] for r in rows]
    constraints += [[(1, (*r, c)) for r in rows] + [(-1, col_total(c))] for c in cols]
    constraints.append([(1, row_total(r)) for r in rows] + [(-1, grand)])
    constraints.append([(1, col_total(c)) for c in cols] + [(-1, grand)])
    a_rows, b_eq = [], []
    for terms in constraints:
        coefficients: dict[int, float] = {}
        rhs = 0.0
        for coef, k in terms:
            if k in index:
                coefficients[index[k]] = coefficients.get(index[k], 0.0) + coef
            else:
                rhs -= coef * values[k]
        if any(coefficients.values()):
            a_rows.append(coefficients)
            b_eq.append(rhs)
        else:
            assert rhs == 0
    n = len(free)
    # Two copies of the system (x and y) in one programme: max x_k - y_k is the width of k.
    a_eq = lil_matrix((2 * len(a_rows), 2 * n))
    for i, coefficients in enumerate(a_rows):
        for j, coef in coefficients.items():
            a_eq[i, j] = coef
            a_eq[len(a_rows) + i, n + j] = coef
    widths: dict[Key, float] = {}
    for k in suppressed:
        c = [0.0] * (2 * n)
        c[index[k]] = -1.0
        c[n + index[k]] = 1.0
        result = linprog(
            c, A_eq=a_eq.tocsr() if a_rows else None, b_eq=b_eq + b_eq if a_rows else None,
            bounds=(0, None), method="highs",
        )
        assert result.status in (0, 3), result.message
        widths[k] = float("inf") if result.status == 3 else -result.fun
    return widths


def released_keys(table) -> tuple[set[Key], set[Key]]:
    """(values published exactly, values suppressed) of a ReleasedTable, keyed like `at`."""
    shown, hidden = set(), set()
    for v in table.values:
        key = tuple(v.at[d] for d in table.dimensions)
        (hidden if v.suppressed else shown).add(key)
    return shown, hidden


# Counts like the ministry's: many small (0 to 6), some larger.
counts = st.one_of(st.integers(0, 6), st.integers(0, 6), st.integers(0, 40))


@st.composite
def tables(draw, max_dims: int = 3):
    """(dimension names, present cells) of a random 1- to `max_dims`-way table; some
    combinations missing, at most about 40 cells."""
    n_dims = draw(st.integers(1, max_dims))
    sizes = [draw(st.integers(1, 4 if n_dims < 3 else 3)) for _ in range(n_dims)]
    if n_dims == 1:
        sizes[0] = draw(st.integers(1, 6))
    dims = [f"d{i}" for i in range(n_dims)]
    keys = [()]
    for i, size in enumerate(sizes):
        keys = [(*k, f"{dims[i]}c{j}") for k in keys for j in range(size)]
    present = [k for k in keys if draw(st.integers(0, 9)) > 0]  # about one in ten missing
    cells = {k: draw(counts) for k in present}
    return dims, cells
