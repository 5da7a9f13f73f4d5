"""Released tables: protect a table of person counts, or release exact or non-person figures.

`protect` takes exact cells as a Polars DataFrame (one or more dimension columns plus a count
column), works out the totals from the exact cells, suppresses (primary, any cells forced by a
companion table, then secondary, see `suppression`), and only then rounds every released value,
totals included, with RR3 (see `rounding`). Suppression decisions are made on exact values, so
rounding never reopens them. The result holds no exact value.

A table of three or more dimensions is laid out as a printed table with a combined stub: rows
are the combinations of all dimensions but the last (those present in the data), columns the
last dimension's categories. Released are the cells, each row's total, each column's total and
the grand total; other margins are not released (they follow from the row totals anyway, and
the audit covers every linear consequence of what is released).

`exact_table` (a provider's own figures, for that provider only) and `aggregate_table` (figures
that are not counts of people) use the same layout and say in their rules why they are exact.
Every table made here is stamped (see `provenance`); nothing else can make one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import InitVar, dataclass, field

import polars as pl

from .provenance import _STAMP, Sealed, released_output, require_stamp
from .rounding import cell_identity, rr3
from .suppression import Item, Table, primary, secondary

RULES_VERSION = "cldx-disclosure/2"
TOTAL_LABEL = "Total"
SUPPRESSED_CSV = "S"
_MADE_BY = "protect, exact_table or aggregate_table"


def rules(threshold: int) -> list[str]:
    """The rules a table made by `protect` with this threshold has passed."""
    return [
        f"primary suppression: a count of 1 to {threshold - 1} people is suppressed (zeros are released)",
        "companion suppression: cells suppressed in a companion table of the same breakdown "
        "(for example clients for an engagements table) are suppressed here too",
        f"secondary suppression: every suppressed value can range over at least {threshold} "
        "given the released cells and totals of this table (audited exactly, on exact values)",
        "tables of three or more dimensions: rows are the combinations of all dimensions but the "
        "last; released are cells, row totals, column totals and the grand total",
        "RR3: every released count, totals included, is randomly rounded to base 3; "
        "1 and 2 go to 3, never 0; direction fixed by a keyed hash of what the cell counts",
        f"percentages, means and intervals only over bases of at least {threshold}",
        "a suppressed value is null with suppressed=true in JSON and S in CSV",
    ]


def _exact_rule(provider: str) -> str:
    return f"exact: {provider}'s own records, shown only to that provider"


def _aggregate_rule(reason: str) -> str:
    return f"not a count of people ({reason}): released as computed"


@dataclass(frozen=True)
class ReleasedValue(Sealed):
    """One released cell or total. Made only by this package (see `provenance`)."""

    at: dict[str, str | None]  # dimension -> category; None marks a total over that dimension
    kind: str  # "cell", "row_total", "column_total", "grand_total"
    value: int | float | None
    suppressed: bool
    exact: bool = False  # a provider's own exact figure (not rounded), for that provider only
    stamp: InitVar[object] = None

    def __post_init__(self, stamp: object) -> None:
        require_stamp(stamp, "ReleasedValue", _MADE_BY)


@released_output
@dataclass(frozen=True)
class ReleasedTable(Sealed):
    """A table that may leave its scope, with the rules it passed. Made only by this package."""

    measure: str
    dimensions: list[str]
    threshold: int | None  # None for exact and aggregate tables (no suppression)
    values: list[ReleasedValue]
    rules: list[str] = field(default_factory=list)
    rules_version: str = RULES_VERSION
    exact: bool = False  # exact figures of one provider, for that provider only
    scope: str | None = None  # the provider an exact table belongs to
    stamp: InitVar[object] = None

    def __post_init__(self, stamp: object) -> None:
        require_stamp(stamp, "ReleasedTable", _MADE_BY)
        # Looked up by coordinates in dimension order; not a field, so equality ignores it.
        index = {tuple(v.at[d] for d in self.dimensions): v for v in self.values}
        object.__setattr__(self, "_index", index)

    def get(self, **at: str | None) -> ReleasedValue:
        """The value at these coordinates; a dimension left out (or None) means its total."""
        unknown = set(at) - set(self.dimensions)
        if unknown:
            raise KeyError(f"not a dimension of this table: {sorted(unknown)}")
        key = tuple(None if at.get(d) is None else str(at[d]) for d in self.dimensions)
        try:
            return self._index[key]
        except KeyError:
            raise KeyError(at) from None

    def suppressed_cells(self) -> set[tuple[str, ...]]:
        """Keys (one category per dimension) of the suppressed cells; totals are not included."""
        return {tuple(v.at[d] for d in self.dimensions) for v in self.values if v.kind == "cell" and v.suppressed}

    def to_json(self) -> dict:
        return {
            "measure": self.measure,
            "dimensions": list(self.dimensions),
            "threshold": self.threshold,
            "exact": self.exact,
            "scope": self.scope,
            "rules_version": self.rules_version,
            "rules": list(self.rules),
            "values": [
                {"at": dict(v.at), "kind": v.kind, "value": v.value, "suppressed": v.suppressed}
                for v in self.values
            ],
        }

    def to_csv_rows(self) -> list[list[str]]:
        """Header then one row per value; totals labelled 'Total', suppressed values 'S';
        then a blank row and the rules this table passed."""
        rows = [[*self.dimensions, self.measure]]
        for v in self.values:
            labels = [TOTAL_LABEL if v.at[d] is None else v.at[d] for d in self.dimensions]
            rows.append([*labels, SUPPRESSED_CSV if v.suppressed else str(v.value)])
        rows.append([])
        rows.append(["Rules version", self.rules_version])
        rows.extend(["Rule", r] for r in self.rules)
        return rows


class _Layout:
    """Where every value of a table sits: rows are combinations of all dimensions but the last
    (a single unnamed row for a one-way table), columns the last dimension's categories.

    `exact` holds every cell (missing combinations within the rows present count 0) and every
    row, column and grand total, summed from the cells.
    """

    def __init__(self, table: pl.DataFrame, count: str, *, people: bool):
        if count not in table.columns:
            raise ValueError(f"no count column {count!r} in {table.columns}")
        dims = [c for c in table.columns if c != count]
        if not dims:
            raise ValueError("expected at least one dimension column")
        dtype = table.schema[count]
        if people and not dtype.is_integer():
            raise TypeError(f"counts of people must be integers, got {dtype}")
        if not people and not dtype.is_numeric():
            raise TypeError(f"values must be numbers, got {dtype}")
        if table[count].null_count():
            raise ValueError("every value must be present (no nulls)")
        if people and table.height and table[count].min() < 0:
            raise ValueError("counts must be non-negative")
        if dtype.is_float() and not table[count].is_finite().all():
            raise ValueError("values must be finite")
        for d in dims:
            if table[d].null_count():
                raise ValueError(f"dimension {d!r} has missing categories (null would read as a total)")

        self.dims = dims
        self.one_way = len(dims) == 1
        value_type = pl.Int64 if dtype.is_integer() else pl.Float64
        grouped = (
            table.select([pl.col(d).cast(pl.String) for d in dims] + [pl.col(count).cast(value_type)])
            .group_by(dims)
            .agg(pl.col(count).sum())
        )
        row_dims, col_dim = dims[:-1], dims[-1]
        keys = [tuple(r) for r in grouped.select(row_dims).iter_rows()] if row_dims else [()] * grouped.height
        self.row_keys: list[tuple[str, ...]] = sorted(set(keys)) if row_dims else [()]
        self.col_cats: list[str] = sorted(set(grouped[col_dim].to_list()))
        self.row_ix = {k: i for i, k in enumerate(self.row_keys)}
        self.col_ix = {c: j for j, c in enumerate(self.col_cats)}
        self.n_rows, self.n_cols = len(self.row_keys), len(self.col_cats)

        zero = 0 if value_type == pl.Int64 else 0.0
        exact: dict[Item, int | float] = {Item(i, j): zero for i in range(self.n_rows) for j in range(self.n_cols)}
        for key, col, value in zip(keys, grouped[col_dim].to_list(), grouped[count].to_list()):
            exact[Item(self.row_ix[key], self.col_ix[col])] += value
        for i in range(self.n_rows):
            exact[Item(i, None)] = sum((exact[Item(i, j)] for j in range(self.n_cols)), zero)
        for j in range(self.n_cols):
            exact[Item(None, j)] = sum((exact[Item(i, j)] for i in range(self.n_rows)), zero)
        exact[Item(None, None)] = sum((exact[Item(None, j)] for j in range(self.n_cols)), zero)
        self.exact = exact

    def released(self, *, row_totals: bool, column_totals: bool, grand_total: bool) -> set[Item]:
        """Cells, and the totals asked for. A one-way table's only total is the grand total."""
        items = {item for item in self.exact if item.is_cell}
        if grand_total:
            items.add(Item(None, None))
        if not self.one_way:
            if row_totals:
                items |= {Item(i, None) for i in range(self.n_rows)}
            if column_totals:
                items |= {Item(None, j) for j in range(self.n_cols)}
        return items

    def cell(self, key: tuple) -> Item | None:
        """The cell with these categories (one per dimension), or None if this table has none."""
        if len(key) != len(self.dims):
            raise ValueError(f"a cell key needs one category per dimension {self.dims}, got {key!r}")
        row = self.row_ix.get(tuple(str(k) for k in key[:-1]))
        col = self.col_ix.get(str(key[-1]))
        return None if row is None or col is None else Item(row, col)

    def at(self, item: Item) -> dict[str, str | None]:
        row_key = (None,) * (len(self.dims) - 1) if item.row is None else self.row_keys[item.row]
        col = None if item.col is None else self.col_cats[item.col]
        return dict(zip(self.dims, (*row_key, col)))

    @staticmethod
    def kind(item: Item) -> str:
        if item.is_cell:
            return "cell"
        if item.row is None and item.col is None:
            return "grand_total"
        return "row_total" if item.row is not None else "column_total"

    @staticmethod
    def order(items: Iterable[Item]) -> list[Item]:
        """Row by row (each row's cells then its total), then column totals, then the grand total."""
        return sorted(items, key=lambda it: (it.row is None, it.row or 0, it.col is None, it.col or 0))


def protect(
    table: pl.DataFrame,
    *,
    key: bytes,
    measure: str = "people",
    count: str = "count",
    threshold: int = 6,
    row_totals: bool = True,
    column_totals: bool = True,
    grand_total: bool = True,
    forced: Iterable[tuple] = (),
) -> ReleasedTable:
    """Suppress and round a table of person counts; totals are computed from the exact cells.

    Dimensions are the columns other than `count` (one or more; categories are cast to
    strings). Missing combinations count 0 within the rows present. For a one-way table only
    the grand total is a total (`row_totals`/`column_totals` ignored). `forced` names cells (one
    category per dimension, in dimension order) to suppress as well, such as the cells
    suppressed in a companion table; cells this table does not have are not released anyway.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    layout = _Layout(table, count, people=True)
    exact = layout.exact
    released = layout.released(row_totals=row_totals, column_totals=column_totals, grand_total=grand_total)
    forced_items = {item for item in map(layout.cell, forced) if item is not None}

    tab = Table(exact, layout.n_rows, layout.n_cols)
    suppressed = secondary(tab, released, primary(exact, released, threshold) | forced_items, threshold)

    values = []
    for item in layout.order(released):
        coords = layout.at(item)
        if item in suppressed:
            values.append(ReleasedValue(coords, layout.kind(item), None, True, stamp=_STAMP))
        else:
            rounded = rr3(exact[item], cell_identity(measure, coords), key)
            values.append(ReleasedValue(coords, layout.kind(item), rounded, False, stamp=_STAMP))
    return ReleasedTable(measure, layout.dims, threshold, values, rules(threshold), stamp=_STAMP)


def exact_table(
    table: pl.DataFrame,
    *,
    measure: str,
    count: str = "count",
    provider: str,
    row_totals: bool = True,
    column_totals: bool = True,
    grand_total: bool = True,
) -> ReleasedTable:
    """A provider's own figures about its own clients, exact (no suppression, no rounding).

    Same layout as `protect`. The table is marked `exact` with `scope` = the provider: it may be
    shown to that provider only, never across providers.
    """
    if not provider:
        raise ValueError("an exact table needs the provider whose records it counts")
    layout = _Layout(table, count, people=True)
    released = layout.released(row_totals=row_totals, column_totals=column_totals, grand_total=grand_total)
    values = [
        ReleasedValue(layout.at(item), layout.kind(item), layout.exact[item], False, exact=True, stamp=_STAMP)
        for item in layout.order(released)
    ]
    return ReleasedTable(
        measure, layout.dims, None, values, [_exact_rule(provider)], exact=True, scope=provider, stamp=_STAMP
    )


def aggregate_table(
    table: pl.DataFrame,
    *,
    measure: str,
    count: str = "count",
    reason: str,
    row_totals: bool = False,
    column_totals: bool = False,
    grand_total: bool = False,
) -> ReleasedTable:
    """Figures that are not counts of people (money, numbers of providers or contracts),
    released as computed; values may be floats.

    Same layout as `protect`; missing combinations are 0. Totals are sums of the cells, so they
    are off unless asked for: a sum is right for money, wrong for a number of distinct providers.
    """
    if not reason:
        raise ValueError("say why these figures are not counts of people")
    layout = _Layout(table, count, people=False)
    released = layout.released(row_totals=row_totals, column_totals=column_totals, grand_total=grand_total)
    values = []
    for item in layout.order(released):
        value = layout.exact[item]
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"value at {layout.at(item)} is not finite")
        values.append(ReleasedValue(layout.at(item), layout.kind(item), value, False, stamp=_STAMP))
    return ReleasedTable(measure, layout.dims, None, values, [_aggregate_rule(reason)], stamp=_STAMP)
