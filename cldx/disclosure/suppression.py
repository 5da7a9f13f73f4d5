"""Primary and secondary cell suppression for a two-way table with margins.

The table is modelled as a circulation on a small network (the classic view of a two-way
table with its totals): source -> row r carries row total r, row r -> column c carries cell
(r, c), column c -> sink carries column total c, and sink -> source carries the grand total.
Every value of the table is the flow on one edge, and "row cells add to the row total" is flow
conservation at the row node (likewise for columns, and the grand total at source and sink).

What an intruder knows is: every released value exactly (we audit before rounding, the
strictest case), every suppressed or unreleased value is some number >= 0, and the additive
structure. The values of one suppressed edge consistent with that form an interval; because the
constraint matrix of a network is totally unimodular, its end points are integers and equal the
linear-programming bounds (the tests check this against scipy's linprog). We find each end point
by bisection on "is there a feasible circulation with this edge fixed at t?", a max-flow question.

Protection rule: every suppressed value v must have an interval [lo, hi] with hi - lo >= the
threshold (we only search up to v + threshold, which is enough to decide that).

Secondary suppression (greedy, to a fixed point): while some suppressed value is weak, suppress
one more released value that shares a row or column with it (a cell, or failing that a total),
choosing the candidate that widens the weak value's interval most, then the smallest exact value.
Each step suppresses one more value, and once everything is suppressed every interval is open
above, so the loop ends. It is not optimal (that is an integer program); it is safe by audit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

_BIG = 10**12  # "no upper bound" for suppressed or unreleased values


@dataclass(frozen=True)
class Item:
    """One value of the table: a cell (row, col), a row total (row, None), a column total
    (None, col) or the grand total (None, None)."""

    row: int | None
    col: int | None

    @property
    def is_cell(self) -> bool:
        return self.row is not None and self.col is not None


def _edge(item: Item, n_rows: int, n_cols: int) -> tuple[int, int]:
    source, sink = 0, n_rows + n_cols + 1
    if item.is_cell:
        return 1 + item.row, 1 + n_rows + item.col
    if item.row is not None:
        return source, 1 + item.row
    if item.col is not None:
        return 1 + n_rows + item.col, sink
    return sink, source


def _max_flow(cap: list[list[int]], s: int, t: int) -> int:
    n = len(cap)
    total = 0
    while True:
        parent = [-1] * n
        parent[s] = s
        queue = deque([s])
        while queue and parent[t] == -1:
            u = queue.popleft()
            for v in range(n):
                if parent[v] == -1 and cap[u][v] > 0:
                    parent[v] = u
                    queue.append(v)
        if parent[t] == -1:
            return total
        push, v = _BIG * 1000, t
        while v != s:
            push = min(push, cap[parent[v]][v])
            v = parent[v]
        v = t
        while v != s:
            cap[parent[v]][v] -= push
            cap[v][parent[v]] += push
            v = parent[v]
        total += push


class Table:
    """Exact values of a two-way table and which of them are hidden (suppressed or unreleased)."""

    def __init__(self, exact: dict[Item, int], n_rows: int, n_cols: int):
        self.exact = exact
        self.n_rows = n_rows
        self.n_cols = n_cols

    def feasible(self, hidden: set[Item], fixed: Item, t: int) -> bool:
        """Is there a table agreeing with every released value, all values >= 0, with `fixed` = t?"""
        n = self.n_rows + self.n_cols + 2
        cap = [[0] * (n + 2) for _ in range(n + 2)]
        excess = [0] * n
        for item, value in self.exact.items():
            u, v = _edge(item, self.n_rows, self.n_cols)
            if item == fixed:
                low, high = t, t
            elif item in hidden:
                low, high = 0, _BIG
            else:
                low, high = value, value
            cap[u][v] += high - low
            excess[v] += low
            excess[u] -= low
        super_s, super_t = n, n + 1
        need = 0
        for node, e in enumerate(excess):
            if e > 0:
                cap[super_s][node] += e
                need += e
            elif e < 0:
                cap[node][super_t] += -e
        return _max_flow(cap, super_s, super_t) == need

    def interval(self, hidden: set[Item], item: Item, reach: int) -> tuple[int, int]:
        """[lo, hi] of values `item` may take; hi is capped at exact + reach."""
        v = self.exact[item]
        lo_ok, lo_bad = v, -1  # smallest feasible in [0, v]
        while lo_ok - lo_bad > 1:
            mid = (lo_ok + lo_bad) // 2
            if self.feasible(hidden, item, mid):
                lo_ok = mid
            else:
                lo_bad = mid
        if self.feasible(hidden, item, v + reach):
            return lo_ok, v + reach
        hi_ok, hi_bad = v, v + reach
        while hi_bad - hi_ok > 1:
            mid = (hi_ok + hi_bad) // 2
            if self.feasible(hidden, item, mid):
                hi_ok = mid
            else:
                hi_bad = mid
        return lo_ok, hi_ok

    def adjacent(self, a: Item, b: Item) -> bool:
        """Do the two values meet in one additive constraint (share a node of the network)?"""
        return bool(set(_edge(a, self.n_rows, self.n_cols)) & set(_edge(b, self.n_rows, self.n_cols)))

    def width(self, hidden: set[Item], item: Item, threshold: int) -> int:
        lo, hi = self.interval(hidden, item, threshold)
        return hi - lo


def primary(exact: dict[Item, int], released: set[Item], threshold: int) -> set[Item]:
    """Released values counting 1 .. threshold-1 people. Zeros are released (no person is shown)."""
    return {item for item in released if 0 < exact[item] < threshold}


def secondary(table: Table, released: set[Item], suppressed: set[Item], threshold: int) -> set[Item]:
    """Grow `suppressed` (a subset of `released`) until every suppressed value is protected."""
    suppressed = set(suppressed)
    unreleased = set(table.exact) - released
    while True:
        hidden = suppressed | unreleased
        weak = [i for i in sorted(suppressed, key=_order) if table.width(hidden, i, threshold) < threshold]
        if not weak:
            return suppressed
        target = weak[0]
        open_items = released - suppressed
        candidates = [i for i in open_items if table.adjacent(i, target) and i.is_cell]
        if not candidates:
            candidates = [i for i in open_items if table.adjacent(i, target)]
        if not candidates:
            candidates = list(open_items)

        def score(item: Item) -> tuple[int, int, tuple]:
            gain = min(table.width(hidden | {item}, target, threshold), threshold)
            return (-gain, table.exact[item], _order(item))

        suppressed.add(min(candidates, key=score))




def _order(item: Item) -> tuple:
    return (item.row is None, item.col is None, item.row or 0, item.col or 0)
