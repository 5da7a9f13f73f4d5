"""k-anonymity for person-level extracts: generalise quasi-identifiers along hierarchies, then
suppress locally what is still too rare, and say how much of each was done.

A quasi-identifier comes with a `Hierarchy`: level 0 is the column as recorded, and each further
level maps the previous level's values to coarser ones (a dict, or an element-wise function on a
String Series), for example territorial authority -> region -> `ALL`. Levels are chained, so every
level is a true generalisation of the one below it.

`k_anonymise` searches the lattice of level vectors (one level per quasi-identifier) for the node
of least information loss (the sum over quasi-identifiers of level / height) at which the rows in
equivalence classes smaller than k, which have to be suppressed, are at most `max_suppression` of
all rows. Ties go to fewer suppressed rows, then to keeping detail in the `prefer` columns, in
order. Touched rows can only fall as levels rise, so the search runs in order of loss and stops at
the first loss that has a satisfying node; no ancestor of a satisfying node is checked.

At the chosen node, the rows of classes smaller than k are suppressed locally: their quasi-
identifier cells are set to `ALL` one column at a time, most specific column (most distinct values
at its level) first, and a row stops as soon as its class reaches k; a row whose class is still
smaller than k with every quasi-identifier suppressed is removed. Every equivalence class of the
result (`ALL` is a value like any other; a missing value reads as `MISSING`) has at least k rows.

The work is done on the distinct combinations of quasi-identifier values (weighted by how many
rows share them), with numpy and Polars, so 100,000 rows take well under a second per search.
Pure functions; imports nothing else from cldx.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import product

import numpy as np
import polars as pl

ALL = "*"  # the fully generalised (or suppressed) value
MISSING = "none"  # what a missing quasi-identifier value is read as: a value of its own

Level = Callable[[pl.Series], pl.Series] | Mapping[str, str] | str

_COMBO = "__kanon_combo__"
_MAX_NODES = 100_000


@dataclass(frozen=True)
class Hierarchy:
    """How one quasi-identifier can be generalised.

    `levels[j]` takes level j (level 0 = the column as recorded, as strings) to level j + 1: a dict
    from value to coarser value (values not in it keep their value), an element-wise function on a
    String Series, or `ALL` (everything becomes `ALL`). `names`, if given, names every level from 0
    to the top for the report (for example "territorial authority", "region", "all").
    """

    column: str
    levels: Sequence[Level]
    names: Sequence[str] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(self.levels))
        object.__setattr__(self, "names", tuple(self.names))
        for j, level in enumerate(self.levels):
            if not (callable(level) or isinstance(level, Mapping) or level == ALL):
                raise TypeError(f"{self.column}: level {j + 1} must be a dict, a function or ALL, got {level!r}")
        if self.names and len(self.names) != self.height + 1:
            raise ValueError(
                f"{self.column}: {len(self.names)} names for {self.height + 1} levels (0 to {self.height})"
            )

    @property
    def height(self) -> int:
        """The highest level (the number of generalisation steps)."""
        return len(self.levels)

    def level_name(self, level: int) -> str:
        if self.names:
            return self.names[level]
        return "as recorded" if level == 0 else f"generalised {level}x"


def mapping_levels(*mappings: Mapping[str, str], to_all: bool = True) -> list[Level]:
    """Levels from chained dicts (each from the previous level's values), then `ALL` on top."""
    levels: list[Level] = [dict(m) for m in mappings]
    return [*levels, ALL] if to_all else levels


_RANGE = re.compile(r"^\s*(\d+)\s*[-\u2013]\s*(\d+)\s*$")
_OPEN = re.compile(r"^\s*(\d+)\s*\+\s*$")


def _band_label(group: Sequence[str]) -> str:
    """"00-04" + "05-09" -> "00-09"; "50-64" + "65+" -> "50+"; anything else joined with "/"."""
    lows: list[tuple[int, str]] = []
    highs: list[tuple[float, str]] = []
    for label in group:
        if m := _RANGE.match(label):
            lows.append((int(m[1]), m[1]))
            highs.append((int(m[2]), m[2]))
        elif m := _OPEN.match(label):
            lows.append((int(m[1]), m[1]))
            highs.append((float("inf"), "+"))
        else:
            return "/".join(group)
    low = min(lows)[1]
    top, high = max(highs)
    return f"{low}+" if top == float("inf") else f"{low}-{high}"


def band_levels(bands: Sequence[Sequence[tuple[str, ...]]], *, to_all: bool = True) -> list[Level]:
    """Levels that merge groups of labels: `bands[j]` lists the groups (of labels as recorded) merged
    at level j + 1; a label in no group keeps its previous level's label. Each level must be a
    coarsening of the one before. Range labels merge into a range ("00-04", "05-09" -> "00-09"),
    others are joined with "/". `ALL` on top unless `to_all` is false."""
    current: dict[str, str] = {}  # label as recorded -> label at the previous level
    levels: list[Level] = []
    for j, groups in enumerate(bands, start=1):
        new = dict(current)
        for group in groups:
            group = tuple(group)
            if not group:
                raise ValueError(f"band level {j}: empty group")
            label = _band_label(group)
            for value in group:
                new[value] = label
        for value in new:
            current.setdefault(value, value)
        step: dict[str, str] = {}
        for value, coarse in new.items():
            previous = current[value]
            if step.setdefault(previous, coarse) != coarse:
                raise ValueError(
                    f"band level {j} splits {previous!r} (it maps to {step[previous]!r} and {coarse!r}): "
                    "each level must merge whole groups of the level before"
                )
        levels.append({a: b for a, b in step.items() if a != b})
        current = new
    return [*levels, ALL] if to_all else levels


@dataclass(frozen=True, eq=False)
class KAnonResult:
    """The anonymised rows and what it took. `suppressed_rows` rows were removed; `suppressed_cells`
    quasi-identifier cells of kept rows were set to `ALL` (cells already `ALL` not counted)."""

    frame: pl.DataFrame
    levels: dict[str, int]
    suppressed_rows: int
    suppressed_cells: int
    k: int
    min_class_size: int
    report: list[str]
    equivalence_classes: int


def equivalence_class_sizes(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """One row per combination of the columns' values present (null is a value), with its `size`,
    smallest first."""
    columns = list(columns)
    if not columns:
        raise ValueError("expected at least one column")
    if "size" in columns:
        raise ValueError("a column called 'size' clashes with the result's size column")
    return frame.group_by(columns).agg(pl.len().cast(pl.Int64).alias("size")).sort(["size", *columns], nulls_last=True)


def is_k_anonymous(frame: pl.DataFrame, columns: Sequence[str], k: int) -> bool:
    """Whether every equivalence class on the columns has at least k rows (an empty frame is)."""
    if frame.height == 0:
        return True
    return int(equivalence_class_sizes(frame, columns)["size"].min()) >= k


# --- The search ---------------------------------------------------------------------------------


class _Column:
    """One quasi-identifier over the distinct combinations: per level, an integer code per
    combination, the values those codes stand for, and the code `ALL` has (or would have)."""

    def __init__(self, hierarchy: Hierarchy, values: np.ndarray):
        uniques, inverse = np.unique(values, return_inverse=True)
        series = pl.Series(hierarchy.column, uniques, dtype=pl.String)
        self.codes: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.star: list[int] = []
        for j in range(hierarchy.height + 1):
            if j:
                series = _apply(hierarchy, j, series)
            level_values, level_codes = np.unique(series.to_numpy(), return_inverse=True)
            self.values.append(level_values)
            self.codes.append(level_codes[inverse].astype(np.int64))
            found = np.flatnonzero(level_values == ALL)
            self.star.append(int(found[0]) if found.size else len(level_values))

    def radix(self, level: int) -> int:
        return max(len(self.values[level]), self.star[level] + 1)

    def all_star(self, level: int) -> bool:
        return len(self.values[level]) == 1 and self.values[level][0] == ALL


def _apply(hierarchy: Hierarchy, j: int, series: pl.Series) -> pl.Series:
    """Level j's values from level j - 1's (on the distinct values only)."""
    step = hierarchy.levels[j - 1]
    if isinstance(step, str):
        out = pl.Series(series.name, [ALL] * series.len(), dtype=pl.String)
    elif isinstance(step, Mapping):
        out = series.replace({str(a): str(b) for a, b in step.items()})
    else:
        out = step(series)
        if not isinstance(out, pl.Series):
            out = pl.Series(series.name, out)
        out = out.cast(pl.String)
    if out.len() != series.len():
        raise ValueError(f"{hierarchy.column}: level {j} returned {out.len()} values for {series.len()}")
    if out.null_count():
        raise ValueError(f"{hierarchy.column}: level {j} maps some values to null")
    return out


def _class_sizes(keys: list[np.ndarray], radices: list[int], weights: np.ndarray) -> np.ndarray:
    """For each combination, the number of rows in its equivalence class on these codes."""
    key = np.zeros(len(weights), dtype=np.int64)
    span = 1
    for codes, radix in zip(keys, radices):
        if span * radix > 2**62:
            _, key = np.unique(key, return_inverse=True)
            span = int(key.max()) + 1 if key.size else 1
        key = key * radix + codes
        span *= radix
    if span <= max(4 * len(key), 1 << 16):
        sizes = np.bincount(key, weights=weights, minlength=span)
        return sizes[key].astype(np.int64)
    _, inverse = np.unique(key, return_inverse=True)
    return np.bincount(inverse, weights=weights)[inverse].astype(np.int64)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "0.00%"


def k_anonymise(
    frame: pl.DataFrame,
    quasi_identifiers: Sequence[Hierarchy],
    *,
    k: int = 5,
    max_suppression: float = 0.05,
    prefer: Sequence[str] | None = None,
    loss: str = "levels",
) -> KAnonResult:
    """The rows of `frame`, generalised and locally suppressed so that every equivalence class on
    the quasi-identifiers has at least k rows (see the module's docstring for the search).

    Quasi-identifier columns come back as strings, missing values as `MISSING`; other columns and
    the order of rows are kept. `max_suppression` bounds the share of rows touched by suppression
    (cells set to `ALL` or the row removed); if no node keeps within it, the node touching fewest
    rows is used and the report says so. `prefer` names quasi-identifiers whose detail matters
    most, first: among otherwise equal nodes, the one with lower levels on them wins.

    `loss` is how information loss is measured: "levels" (the sum of level / height, Sweeney's
    precision) or "entropy" (the sum over quasi-identifiers of the share of the column's entropy
    lost at that level: taking a column of many evenly spread values to `ALL` costs 1, merging a
    rare value into a common one costs little). "entropy" keeps the columns that carry the most
    information and gives up those that carry little, which suits a research extract where a
    few wide columns (birth month, area) would otherwise be dropped whole to spare narrow ones.
    """
    if loss not in ("levels", "entropy"):
        raise ValueError(f"loss must be 'levels' or 'entropy', got {loss!r}")
    qis = list(quasi_identifiers)
    names = [h.column for h in qis]
    if not qis:
        raise ValueError("expected at least one quasi-identifier")
    if len(set(names)) != len(names):
        raise ValueError(f"a quasi-identifier is given twice: {names}")
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise ValueError(f"no such columns: {missing}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if not 0 <= max_suppression <= 1:
        raise ValueError(f"max_suppression must be between 0 and 1, got {max_suppression!r}")
    prefer = list(prefer or [])
    unknown = [c for c in prefer if c not in names]
    if unknown:
        raise ValueError(f"prefer names columns that are not quasi-identifiers: {unknown}")
    heights = [h.height for h in qis]
    n_nodes = int(np.prod([h + 1 for h in heights]))
    if n_nodes > _MAX_NODES:
        raise ValueError(f"the lattice has {n_nodes} nodes; at most {_MAX_NODES} are searched")

    n = frame.height
    base = frame.with_columns(pl.col(c).cast(pl.String).fill_null(MISSING) for c in names)
    combos = base.group_by(names).agg(pl.len().alias("__n")).with_row_index(_COMBO)
    weights = combos["__n"].to_numpy().astype(np.int64)
    columns = [_Column(h, combos[h.column].to_numpy()) for h in qis]

    # Search in order of loss; the first loss that has a satisfying node is the least.
    budget = max_suppression * n
    rank = {c: i for i, c in enumerate(prefer)}
    order_prefer = sorted(range(len(qis)), key=lambda i: rank.get(names[i], len(rank)))
    if loss == "entropy":
        lost = [_entropy_lost(c, weights) for c in columns]

        def node_loss(node: Sequence[int]) -> Fraction | float:
            return sum(lost[i][level] for i, level in enumerate(node))
    else:

        def node_loss(node: Sequence[int]) -> Fraction | float:
            return _loss(node, heights)

    nodes = sorted(product(*(range(h + 1) for h in heights)), key=node_loss)
    satisfying: list[tuple[tuple, int]] = []
    best_effort: tuple[int, Fraction, tuple] | None = None
    found_loss: Fraction | float | None = None
    for node in nodes:
        node_cost = node_loss(node)
        if found_loss is not None and node_cost > found_loss:
            break
        if any(all(a >= b for a, b in zip(node, s)) for s, _ in satisfying):
            continue  # an ancestor of a satisfying node (never one of least loss)
        sizes = _class_sizes([c.codes[l] for c, l in zip(columns, node)],
                             [c.radix(l) for c, l in zip(columns, node)], weights)
        touched = int(weights[sizes < k].sum())
        if touched <= budget:
            satisfying.append((node, touched))
            found_loss = node_cost
        elif best_effort is None or (touched, node_cost) < best_effort[:2]:
            best_effort = (touched, node_cost, node)

    within = bool(satisfying)
    if within:
        chosen, _ = min(satisfying, key=lambda s: (s[1], tuple(s[0][i] for i in order_prefer), s[0]))
    else:
        chosen = best_effort[2] if best_effort else tuple(0 for _ in qis)

    # Local suppression at the chosen node, on the combinations.
    keys = [c.codes[l].copy() for c, l in zip(columns, chosen)]
    radices = [c.radix(l) for c, l in zip(columns, chosen)]
    stars = [c.star[l] for c, l in zip(columns, chosen)]
    starred = np.zeros((len(qis), len(weights)), dtype=bool)
    sizes = _class_sizes(keys, radices, weights)
    small = sizes < k
    touched_rows = int(weights[small].sum())
    specific = sorted(
        (i for i in range(len(qis)) if not columns[i].all_star(chosen[i])),
        key=lambda i: (-len(columns[i].values[chosen[i]]), -rank.get(names[i], len(rank)), i),
    )
    for i in specific:
        if not small.any():
            break
        starred[i] = small & (keys[i] != stars[i])
        keys[i] = np.where(small, stars[i], keys[i])
        sizes = _class_sizes(keys, radices, weights)
        small = small & (sizes < k)
    removed = small
    # A class still under k now has every suppressible cell at ALL: its rows go.
    kept = ~removed
    suppressed_rows = int(weights[removed].sum())
    suppressed_cells = int((starred[:, kept] * weights[kept]).sum())
    rows_with_cells = int(weights[kept & starred.any(axis=0)].sum())
    final_sizes = sizes[kept]
    final_keys = [key[kept] for key in keys]

    # The output rows: the combination's values at the chosen levels, ALL where suppressed.
    lookup = {
        _COMBO: combos[_COMBO],
        **{
            f"__v{i}": pl.Series(np.where(starred[i], ALL, columns[i].values[chosen[i]][columns[i].codes[chosen[i]]]),
                                 dtype=pl.String)
            for i in range(len(qis))
        },
        "__keep": pl.Series(kept),
    }
    table = pl.DataFrame(lookup)
    out = (
        base.join(combos.select([*names, _COMBO]), on=names, how="left", maintain_order="left")
        .join(table, on=_COMBO, how="left", maintain_order="left")
        .filter(pl.col("__keep"))
        .with_columns(pl.col(f"__v{i}").alias(c) for i, c in enumerate(names))
        .select(frame.columns)
    )

    # Count the classes of the result.
    if final_sizes.size:
        classes = int(np.unique(np.stack(final_keys), axis=1).shape[1])
        min_size = int(final_sizes.min())
    else:
        classes, min_size = 0, 0

    levels = {c: int(l) for c, l in zip(names, chosen)}
    report: list[str] = []
    for h, col, level in zip(qis, columns, chosen):
        meaning = h.level_name(level)
        if level and not h.names and col.all_star(level):
            meaning = "fully generalised (*)"
        report.append(f"{h.column}: {meaning} (level {level} of {h.height})")
    report.append(f"rows suppressed (removed): {suppressed_rows:,} of {n:,} ({_pct(suppressed_rows, n)})")
    report.append(
        f"cells suppressed (set to {ALL}): {suppressed_cells:,} of {len(qis) * (n - suppressed_rows):,} "
        f"quasi-identifier cells kept, in {rows_with_cells:,} rows ({_pct(rows_with_cells, n)} of rows)"
    )
    report.append(f"rows touched by suppression: {touched_rows:,} ({_pct(touched_rows, n)}; at most "
                  f"{100 * max_suppression:.2f}% allowed)")
    if not within:
        report.append(f"no generalisation kept suppression within {100 * max_suppression:.2f}%: "
                      "the one that touched fewest rows was used")
    report.append(f"equivalence classes: {classes:,}; smallest class: {min_size:,} (k = {k})")
    return KAnonResult(
        frame=out,
        levels=levels,
        suppressed_rows=suppressed_rows,
        suppressed_cells=suppressed_cells,
        k=k,
        min_class_size=min_size,
        report=report,
        equivalence_classes=classes,
    )


def _entropy_lost(column: _Column, weights: np.ndarray) -> list[float]:
    """Per level, the share of the column's level-0 entropy (over the rows) lost at that level;
    rounded so equal losses compare equal."""
    total = weights.sum()

    def entropy(codes: np.ndarray) -> float:
        if total == 0:
            return 0.0
        counts = np.bincount(codes, weights=weights)
        p = counts[counts > 0] / total
        return float(-(p * np.log(p)).sum())

    base = entropy(column.codes[0])
    if base <= 0:
        return [0.0 for _ in column.codes]
    return [round((base - entropy(codes)) / base, 9) for codes in column.codes]


def _loss(node: Sequence[int], heights: Sequence[int]) -> Fraction:
    return sum((Fraction(l, h) for l, h in zip(node, heights) if h), Fraction(0))
