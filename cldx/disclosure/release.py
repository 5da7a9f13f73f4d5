"""Protect a one- or two-way table of person counts and say how it was protected.

`protect` takes exact cells as a Polars DataFrame (one or two dimension columns plus a count
column), works out the totals from the exact cells, suppresses (primary then secondary, see
`suppression`), and only then rounds every released value, totals included, with RR3 (see
`rounding`). Suppression decisions are made on exact values, so rounding never reopens them.
The result holds no exact value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import polars as pl

from .rounding import cell_identity, rr3
from .suppression import Item, Table, primary, secondary

RULES_VERSION = "cldx-disclosure/1"
TOTAL_LABEL = "Total"
SUPPRESSED_CSV = "S"


def rules(threshold: int) -> list[str]:
    return [
        f"primary suppression: a count of 1 to {threshold - 1} people is suppressed (zeros are released)",
        f"secondary suppression: every suppressed value can range over at least {threshold} "
        "given the released cells and totals of this table (audited on exact values)",
        "RR3: every released count, totals included, is randomly rounded to base 3; "
        "1 and 2 go to 3, never 0; direction fixed by a keyed hash of what the cell counts",
        f"percentages, means and intervals only over bases of at least {threshold}",
        "a suppressed value is null with suppressed=true in JSON and S in CSV",
    ]


@dataclass(frozen=True)
class ReleasedValue:
    at: dict[str, str | None]  # dimension -> category; None marks a total over that dimension
    kind: str  # "cell", "row_total", "column_total", "grand_total"
    value: int | None
    suppressed: bool


@dataclass(frozen=True)
class ReleasedTable:
    measure: str
    dimensions: list[str]
    threshold: int
    values: list[ReleasedValue]
    rules: list[str] = field(default_factory=list)
    rules_version: str = RULES_VERSION

    def get(self, **at: str | None) -> ReleasedValue:
        full = {d: at.get(d) for d in self.dimensions}
        for v in self.values:
            if v.at == full:
                return v
        raise KeyError(at)

    def to_json(self) -> dict:
        return {
            "measure": self.measure,
            "dimensions": list(self.dimensions),
            "threshold": self.threshold,
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
) -> ReleasedTable:
    """Suppress and round a table of person counts; totals are computed from the exact cells.

    Dimensions are the columns other than `count` (one or two). Missing combinations count 0.
    For a one-way table only the grand total is a total (`row_totals`/`column_totals` ignored).
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    dims = [c for c in table.columns if c != count]
    if len(dims) not in (1, 2):
        raise ValueError(f"expected one or two dimension columns, got {dims}")
    if table.height and (table[count].min() < 0 or table[count].null_count()):
        raise ValueError("counts must be non-negative and present")
    grouped = table.group_by(dims).agg(pl.col(count).sum())
    one_way = len(dims) == 1
    if one_way:
        row_cats: list[str] = [""]
        col_cats = sorted({str(x) for x in grouped[dims[0]].to_list()})
    else:
        row_cats = sorted({str(x) for x in grouped[dims[0]].to_list()})
        col_cats = sorted({str(x) for x in grouped[dims[1]].to_list()})
    r_ix = {c: i for i, c in enumerate(row_cats)}
    c_ix = {c: j for j, c in enumerate(col_cats)}
    n_rows, n_cols = len(row_cats), len(col_cats)

    exact: dict[Item, int] = {Item(i, j): 0 for i in range(n_rows) for j in range(n_cols)}
    for rec in grouped.iter_rows(named=True):
        i = 0 if one_way else r_ix[str(rec[dims[0]])]
        j = c_ix[str(rec[dims[-1]])]
        exact[Item(i, j)] += int(rec[count])
    for i in range(n_rows):
        exact[Item(i, None)] = sum(exact[Item(i, j)] for j in range(n_cols))
    for j in range(n_cols):
        exact[Item(None, j)] = sum(exact[Item(i, j)] for i in range(n_rows))
    exact[Item(None, None)] = sum(exact[Item(None, j)] for j in range(n_cols))

    released = {item for item in exact if item.is_cell}
    if grand_total:
        released.add(Item(None, None))
    if not one_way:
        if row_totals:
            released |= {Item(i, None) for i in range(n_rows)}
        if column_totals:
            released |= {Item(None, j) for j in range(n_cols)}

    tab = Table(exact, n_rows, n_cols)
    suppressed = secondary(tab, released, primary(exact, released, threshold), threshold)

    def at(item: Item) -> dict[str, str | None]:
        if one_way:
            return {dims[0]: None if item.col is None else col_cats[item.col]}
        return {
            dims[0]: None if item.row is None else row_cats[item.row],
            dims[1]: None if item.col is None else col_cats[item.col],
        }

    def kind(item: Item) -> str:
        if item.is_cell:
            return "cell"
        if item.row is None and item.col is None:
            return "grand_total"
        return "row_total" if item.row is not None else "column_total"

    order = sorted(released, key=lambda it: (it.row is None, it.row or 0, it.col is None, it.col or 0))
    values = []
    for item in order:
        coords = at(item)
        if item in suppressed:
            values.append(ReleasedValue(coords, kind(item), None, True))
        else:
            rounded = rr3(exact[item], cell_identity(measure, coords), key)
            values.append(ReleasedValue(coords, kind(item), rounded, False))
    return ReleasedTable(measure, dims, threshold, values, rules(threshold))


@dataclass(frozen=True)
class Statistic:
    value: float | None
    low: float | None
    high: float | None
    suppressed: bool

    def to_json(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "suppressed": self.suppressed}


_HIDDEN = Statistic(None, None, None, True)


def percentage(numerator: int, base: int, *, threshold: int = 6, z: float = 1.96, digits: int = 1) -> Statistic:
    """Percentage with a Wilson interval, only when the base is releasable (>= threshold) and
    the numerator is not itself a suppressible count (a percentage of a known base would give
    it back)."""
    if base < threshold or 0 < numerator < threshold or not 0 <= numerator <= base:
        return _HIDDEN
    p = numerator / base
    denom = 1 + z * z / base
    centre = (p + z * z / (2 * base)) / denom
    half = z * math.sqrt(p * (1 - p) / base + z * z / (4 * base * base)) / denom
    return Statistic(round(100 * p, digits), round(100 * max(0.0, centre - half), digits),
                     round(100 * min(1.0, centre + half), digits), False)


def mean(values: list[float], *, threshold: int = 6, z: float = 1.96, digits: int = 2) -> Statistic:
    """Mean with a normal-approximation interval, only over a base of at least `threshold` people."""
    n = len(values)
    if n < threshold:
        return _HIDDEN
    m = sum(values) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in values) / (n - 1)) if n > 1 else 0.0
    half = z * sd / math.sqrt(n)
    return Statistic(round(m, digits), round(m - half, digits), round(m + half, digits), False)
