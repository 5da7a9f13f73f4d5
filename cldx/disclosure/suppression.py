"""Primary and secondary cell suppression for a table laid out as rows x columns with margins.

The table is modelled as a circulation on a small network (the classic view of a two-way
table with its totals): source -> row r carries row total r, row r -> column c carries cell
(r, c), column c -> sink carries column total c, and sink -> source carries the grand total.
Every value of the table is the flow on one edge, and "row cells add to the row total" is flow
conservation at the row node (likewise for columns, and the grand total at source and sink).
A table of three or more dimensions is laid out by `release` with combined rows, so it is the
same network. Edges are kept in a list (not a node-pair matrix), so parallel edges are fine.

What an intruder knows is: every released value exactly (we audit before rounding, the
strictest case), every suppressed or unreleased ("hidden") value is some number >= 0, and the
additive structure. The values of one hidden edge consistent with that form an interval with
integer end points (the constraint matrix of a network is totally unimodular), equal to the
linear-programming bounds; the tests check this against scipy's linprog.

How we find the interval (the residual-graph method): the exact table is itself a feasible
circulation, and any other consistent table differs from it by a circulation that changes only
hidden edges and keeps them >= 0. So for a hidden edge e = (u -> v) with exact value f, the
most e can grow is the max flow from v back to u through the other hidden edges, where a hidden
edge a -> b with exact value x may carry more (capacity "infinite" a -> b) or less (capacity x
b -> a); the most e can shrink is min(f, max flow from u to v) in the same residual graph.

Protection rule: every suppressed value must have an interval at least `threshold` wide. We
only need to know whether it is, so every max-flow search stops after `threshold` units.

Secondary suppression (greedy, to a fixed point): while some suppressed value is weak, suppress
one more released value: the cell that widens the weak value's interval most (then the smallest
exact value); if no single cell widens it, the smallest cell sharing its row or column (some
patterns need two more cells before either helps); failing cells, a total by the same rules.
Hiding more values only relaxes the intruder's constraints, so intervals never shrink as the
loop goes on: a value shown safe once stays safe and is not checked again. A candidate can only
widen the weak value's interval if its edge joins a node reachable from the search's start to a
node that reaches its end in the final residual graph (a new augmenting path must use it), so
only those candidates are scored, by continuing the max flow. Each step suppresses one more
value, and once everything is suppressed every interval is open above, so the loop ends. It is
not optimal (that is an integer program); it is safe by audit.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

# Capacity of "may grow without bound". Far above any real count, and every search is capped
# well below it, so it never runs out.
_UNBOUNDED = 1 << 62


class Item(NamedTuple):
    """One value of the table: a cell (row, col), a row total (row, None), a column total
    (None, col) or the grand total (None, None). (A named tuple: hashed often, cheaply.)"""

    row: int | None
    col: int | None

    @property
    def is_cell(self) -> bool:
        return self.row is not None and self.col is not None


def _edge(item: Item, n_rows: int, n_cols: int) -> tuple[int, int]:
    """(tail, head) nodes of the network edge carrying `item`."""
    source, sink = 0, n_rows + n_cols + 1
    if item.is_cell:
        return 1 + item.row, 1 + n_rows + item.col
    if item.row is not None:
        return source, 1 + item.row
    if item.col is not None:
        return 1 + n_rows + item.col, sink
    return sink, source


class _Residual:
    """Residual graph of the hidden edges around the exact table.

    Hidden edge k gives arc 2k (tail -> head, may grow: unbounded) and arc 2k + 1 (head -> tail,
    may shrink: its exact value). Secondary suppression adds edges as it hides values, and
    adds then pops one to score a candidate.
    """

    def __init__(self, n_nodes: int):
        self.n_nodes = n_nodes
        self.head: list[int] = []
        self.cap: list[int] = []
        self.adj: list[list[int]] = [[] for _ in range(n_nodes)]

    def add(self, tail: int, head: int, value: int) -> int:
        """Add a hidden edge; returns the index of its growing arc (shrinking arc is +1)."""
        arc = len(self.head)
        self.head += [head, tail]
        self.cap += [_UNBOUNDED, value]
        self.adj[tail].append(arc)
        self.adj[head].append(arc + 1)
        return arc

    def pop(self, tail: int, head: int) -> None:
        """Remove the edge added last (undoes `add`)."""
        self.adj[head].pop()
        self.adj[tail].pop()
        del self.head[-2:]
        del self.cap[-2:]


def _augment(graph: _Residual, cap: list[int], s: int, t: int, limit: int) -> int:
    """Push up to `limit` units from s to t, changing `cap`; returns the amount pushed (less
    than `limit` only when that is the max flow)."""
    flow = _short_paths(graph, cap, s, t, limit)
    if flow < limit:
        flow += _dinic(graph, cap, s, t, limit - flow)
    return flow


def _short_paths(graph: _Residual, cap: list[int], s: int, t: int, limit: int) -> int:
    """Push what fits along paths of at most three arcs (s -> x -> y -> t), changing `cap`.

    In a table those are the rectangles (a suppressed cell's row and column partners and the
    fourth corner), which usually give the whole width; found without a breadth-first search,
    so a value shown safe this way costs little. Any augmenting paths are valid, so the max
    flow is finished by `_dinic` from wherever this leaves off.
    """
    head, adj = graph.head, graph.adj
    into_t: dict[int, list[int]] = {}  # tail node -> arcs from it into t
    for arc in adj[t]:
        if cap[arc ^ 1] > 0:
            into_t.setdefault(head[arc], []).append(arc ^ 1)
    if not into_t:
        return 0
    flow = 0

    def send(path: tuple[int, ...]) -> int:
        amount = min(limit - flow, *(cap[a] for a in path))
        for a in path:
            cap[a] -= amount
            cap[a ^ 1] += amount
        return amount

    for first in adj[s]:
        if cap[first] <= 0:
            continue
        x = head[first]
        if x == t:
            flow += send((first,))
            if flow >= limit:
                return flow
            continue
        for last in into_t.get(x, ()):
            if cap[first] > 0 and cap[last] > 0:
                flow += send((first, last))
                if flow >= limit:
                    return flow
        for middle in adj[x]:
            if cap[first] <= 0:
                break
            y = head[middle]
            if y == s or y == t or cap[middle] <= 0:
                continue
            for last in into_t.get(y, ()):
                if cap[first] > 0 and cap[middle] > 0 and cap[last] > 0:
                    flow += send((first, middle, last))
                    if flow >= limit:
                        return flow
    return flow


def _dinic(graph: _Residual, cap: list[int], s: int, t: int, limit: int) -> int:
    """Push up to `limit` units from s to t, changing `cap`, by Dinic's method: shortest-path
    phases, each pushing a blocking flow along the level graph."""
    flow = 0
    head, adj, n = graph.head, graph.adj, graph.n_nodes
    while flow < limit:
        # Levels by breadth-first search, stopped once t is labelled: every node nearer to s
        # is labelled by then, and nothing at t's level but t itself can be on a shortest path.
        level = [-1] * n
        level[s] = 0
        queue = deque([s])
        while queue and level[t] < 0:
            u = queue.popleft()
            next_level = level[u] + 1
            for arc in adj[u]:
                w = head[arc]
                if level[w] < 0 and cap[arc] > 0:
                    level[w] = next_level
                    if w == t:
                        break
                    queue.append(w)
        if level[t] < 0:
            return flow
        last = level[t]
        pointer = [0] * n  # next arc to try at each node, so dead ends are not retried
        # Depth-first walks along the level graph (iterative: paths can be long in big tables).
        path: list[int] = []
        u = s
        while flow < limit:
            if u == t:
                amount = min(limit - flow, *(cap[a] for a in path))
                for a in path:
                    cap[a] -= amount
                    cap[a ^ 1] += amount
                flow += amount
                path, u = [], s
                continue
            arcs = adj[u]
            while pointer[u] < len(arcs):
                arc = arcs[pointer[u]]
                w = head[arc]
                if cap[arc] > 0 and level[w] == level[u] + 1 and (level[w] < last or w == t):
                    break
                pointer[u] += 1
            else:
                if u == s:
                    break  # blocking flow reached: next phase
                arc = path.pop()  # dead end: back up and skip the arc that led here
                u = head[arc ^ 1]
                pointer[u] += 1
                continue
            path.append(arc)
            u = head[arc]
    return flow


def _reach(graph: _Residual, cap: list[int], start: int, forward: bool) -> set[int]:
    """Nodes reachable from `start` (forward) or that can reach `start` (not forward)."""
    seen = {start}
    queue = deque([start])
    head = graph.head
    while queue:
        u = queue.popleft()
        for arc in graph.adj[u]:
            # Arcs come in pairs: arc leaves u, arc ^ 1 enters u from head[arc].
            usable = cap[arc] if forward else cap[arc ^ 1]
            w = head[arc]
            if usable > 0 and w not in seen:
                seen.add(w)
                queue.append(w)
    return seen


class _Search:
    """One capped max flow (s -> t in the residual graph without the audited edge), kept so
    that it can be continued after adding one more hidden edge."""

    def __init__(self, graph: _Residual, arcs: int, s: int, t: int, limit: int):
        self.graph, self.s, self.t, self.limit = graph, s, t, limit
        self.cap = list(graph.cap)
        self.cap[arcs] = self.cap[arcs + 1] = 0  # the audited edge itself does not take part
        self.flow = _augment(graph, self.cap, s, t, limit) if limit > 0 else 0

    def gain_with(self, tail: int, head: int, value: int) -> int:
        """Extra flow (up to the limit) if the edge tail -> head (exact value) were hidden too."""
        if self.flow >= self.limit:
            return 0
        self.graph.add(tail, head, value)
        try:
            cap = self.cap + [_UNBOUNDED, value]
            return _augment(self.graph, cap, self.s, self.t, self.limit - self.flow)
        finally:
            self.graph.pop(tail, head)

    def could_gain(self, tail: int, head: int, value: int, ends: tuple[set[int], set[int]]) -> bool:
        """Would hiding tail -> head open an augmenting path? (It must use one of its arcs.)"""
        if self.flow >= self.limit:
            return False
        from_s, to_t = ends
        return (tail in from_s and head in to_t) or (value > 0 and head in from_s and tail in to_t)

    def ends(self) -> tuple[set[int], set[int]]:
        return _reach(self.graph, self.cap, self.s, True), _reach(self.graph, self.cap, self.t, False)


class Table:
    """Exact values of a table laid out as rows x columns with margins, and its audit."""

    def __init__(self, exact: dict[Item, int], n_rows: int, n_cols: int):
        self.exact = exact
        self.n_rows = n_rows
        self.n_cols = n_cols
        self.n_nodes = n_rows + n_cols + 2
        self._edges = {item: _edge(item, n_rows, n_cols) for item in exact}
        self._at_node: list[list[Item]] = [[] for _ in range(self.n_nodes)]
        for item, (tail, head) in self._edges.items():
            self._at_node[tail].append(item)
            self._at_node[head].append(item)

    def edge(self, item: Item) -> tuple[int, int]:
        return self._edges[item]

    def at_node(self, node: int) -> list[Item]:
        """The values whose edges start or end at `node`."""
        return self._at_node[node]

    def neighbours(self, item: Item) -> set[Item]:
        """The other values meeting `item` in an additive constraint (sharing a node)."""
        tail, head = self._edges[item]
        return (set(self._at_node[tail]) | set(self._at_node[head])) - {item}

    def residual(self, hidden: Iterable[Item]) -> tuple[_Residual, dict[Item, int]]:
        """The residual graph of the hidden values, and the growing arc of each."""
        graph = _Residual(self.n_nodes)
        arcs = {}
        for item in sorted(hidden, key=_order):
            arcs[item] = graph.add(*self.edge(item), self.exact[item])
        return graph, arcs

    def searches(self, graph: _Residual, arcs: dict[Item, int], item: Item, reach: int) -> tuple[_Search, _Search]:
        """(grow, shrink) searches for hidden `item`, capped so that together they stop at a
        width of `reach`: grow at `reach`, shrink at min(exact, what grow left)."""
        u, v = self.edge(item)
        grow = _Search(graph, arcs[item], v, u, reach)
        shrink = _Search(graph, arcs[item], u, v, min(self.exact[item], reach - grow.flow))
        return grow, shrink

    def interval(self, hidden: set[Item], item: Item, reach: int | None = None) -> tuple[int, int | float]:
        """[lo, hi] of the values hidden `item` may take given everything released.

        lo is exact; hi is capped at exact + `reach` when given, else exact (infinite when
        nothing bounds it).
        """
        if item not in hidden:
            return self.exact[item], self.exact[item]
        limit = _UNBOUNDED // 2 if reach is None else reach
        graph, arcs = self.residual(hidden)
        u, v = self.edge(item)
        grow = _Search(graph, arcs[item], v, u, limit)
        shrink = _Search(graph, arcs[item], u, v, self.exact[item])
        hi: int | float = self.exact[item] + grow.flow
        if reach is None and grow.flow >= limit:
            hi = float("inf")
        return self.exact[item] - shrink.flow, hi

    def width(self, hidden: set[Item], item: Item, threshold: int) -> int:
        """Width of `item`'s interval, capped at `threshold`."""
        graph, arcs = self.residual(hidden)
        grow, shrink = self.searches(graph, arcs, item, threshold)
        return min(grow.flow + shrink.flow, threshold)

    def adjacent(self, a: Item, b: Item) -> bool:
        """Do the two values meet in one additive constraint (share a node of the network)?"""
        return bool(set(self._edges[a]) & set(self._edges[b]))


def primary(exact: dict[Item, int], released: set[Item], threshold: int) -> set[Item]:
    """Released values counting 1 .. threshold-1 people. Zeros are released (no person is shown)."""
    return {item for item in released if 0 < exact[item] < threshold}


def secondary(table: Table, released: set[Item], suppressed: set[Item], threshold: int) -> set[Item]:
    """Grow `suppressed` (a subset of `released`) until every suppressed value is protected."""
    suppressed = set(suppressed)
    # One residual graph for the whole loop: each step only adds the newly suppressed edge.
    graph, arcs = table.residual(suppressed | (set(table.exact) - released))
    # Values not yet shown safe, in audit order. Safe stays safe as more is hidden.
    unproven = sorted(suppressed, key=_order)
    while True:
        target = None
        for position, item in enumerate(unproven):
            grow, shrink = table.searches(graph, arcs, item, threshold)
            if grow.flow + shrink.flow < threshold:
                target = item
                del unproven[:position]  # those before it are safe for good
                break
        if target is None:
            return suppressed

        chosen = _choose(table, released, suppressed, target, grow, shrink, threshold)
        suppressed.add(chosen)
        arcs[chosen] = graph.add(*table.edge(chosen), table.exact[chosen])
        bisect.insort(unproven, chosen, key=_order)


def _choose(
    table: Table, released: set[Item], suppressed: set[Item], target: Item, grow: _Search, shrink: _Search,
    threshold: int,
) -> Item:
    """The released value to suppress next for the weak `target`.

    In order of preference: a cell that widens the target's interval (most, then the smallest
    exact value); else a cell sharing a row or column with it (the smallest: some patterns need
    two more cells before either helps); else likewise a total; else any released value.
    """
    # The target's searches ended below their limits, so their residual graphs show exactly
    # which values could open a new augmenting path: one whose edge joins a node reachable from
    # the search's start to a node that reaches its end. The rest cannot widen the interval.
    searches = [s for s in (grow, shrink) if s.flow < s.limit]
    ends = [s.ends() for s in searches]
    width_now = grow.flow + shrink.flow
    touching: set[Item] = set()
    for (from_start, to_end), search in zip(ends, searches):
        for node in min(from_start, to_end, key=len):  # such an edge touches both sets
            for item in table.at_node(node):
                if search.could_gain(*table.edge(item), table.exact[item], (from_start, to_end)):
                    touching.add(item)

    def width_with(item: Item) -> int:
        """The target's width (capped) if `item` were suppressed too."""
        tail, head = table.edge(item)
        value = table.exact[item]
        width = width_now
        for search, search_ends in zip(searches, ends):
            if search.could_gain(tail, head, value, search_ends):
                width += search.gain_with(tail, head, value)
        return min(width, threshold)

    widening: dict[Item, int] = {}
    for item in touching:
        if item in released and item not in suppressed:
            width = width_with(item)
            if width > width_now:
                widening[item] = width
    neighbours = [i for i in table.neighbours(target) if i in released and i not in suppressed]
    for cells in (True, False):
        best = [i for i in widening if i.is_cell == cells]
        if best:
            return min(best, key=lambda i: (-widening[i], table.exact[i], _order(i)))
        near = [i for i in neighbours if i.is_cell == cells]
        if near:
            return min(near, key=lambda i: (table.exact[i], _order(i)))
    return min(released - suppressed, key=lambda i: (table.exact[i], _order(i)))


def _order(item: Item) -> tuple:
    return (item.row is None, item.col is None, item.row or 0, item.col or 0)
