"""Released statistics: percentages, means and other derived figures, and tables of them.

A statistic is released only over a base of at least the threshold (a percentage also not when
its numerator is a suppressible count, since a known base would give it back); otherwise it is
hidden. A `StatisticsTable` holds rows of named values, each a `Statistic`, a `ReleasedValue`
taken from a released table, or a plain label; a bare number is refused, so a number can only
reach an output through this package. Everything here is stamped (see `provenance`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import InitVar, dataclass, field

from .provenance import _STAMP, Sealed, released_output, require_stamp
from .release import RULES_VERSION, SUPPRESSED_CSV, TOTAL_LABEL, ReleasedValue

_MADE_BY = "percentage, percentage_of, mean, statistic or exact_statistic"

@dataclass(frozen=True)
class Statistic(Sealed):
    """A released statistic with its interval, or a hidden one. Made only by this package."""

    value: float | None
    low: float | None
    high: float | None
    suppressed: bool
    exact: bool = False  # a provider's own exact figure, for that provider only
    stamp: InitVar[object] = None

    def __post_init__(self, stamp: object) -> None:
        require_stamp(stamp, "Statistic", _MADE_BY)

    def to_json(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "suppressed": self.suppressed}


_HIDDEN = Statistic(None, None, None, True, stamp=_STAMP)


def _wilson_percent(numerator: int, base: int, z: float, digits: int) -> tuple[float, float, float]:
    """numerator / base in percent with its Wilson interval, rounded; 0 <= numerator <= base > 0."""
    p = numerator / base
    denom = 1 + z * z / base
    centre = (p + z * z / (2 * base)) / denom
    half = z * math.sqrt(p * (1 - p) / base + z * z / (4 * base * base)) / denom
    return round(100 * p, digits), round(100 * max(0.0, centre - half), digits), round(100 * min(1.0, centre + half), digits)


def percentage(numerator: int, base: int, *, threshold: int = 6, z: float = 1.96, digits: int = 1) -> Statistic:
    """Percentage with a Wilson interval, only when the base is releasable (>= threshold) and
    the numerator is not itself a suppressible count (a percentage of a known base would give
    it back).

    For counts that are not released anywhere. Where the numerator or the base is released (in
    the same report or another), use `percentage_of` on the released values: a percentage of
    exact counts shown beside their RR3-rounded release gives the exact counts back."""
    if base < threshold or 0 < numerator < threshold or not 0 <= numerator <= base:
        return _HIDDEN
    return Statistic(*_wilson_percent(numerator, base, z, digits), False, stamp=_STAMP)


def _released_count(value: object, what: str) -> ReleasedValue:
    if not isinstance(value, ReleasedValue):
        raise TypeError(
            f"{what} must be a ReleasedValue from a released table, got {type(value).__name__}: a percentage "
            "of released counts is computed from the released (rounded) values, never from exact counts"
        )
    if not value.suppressed and (isinstance(value.value, bool) or not isinstance(value.value, numbers.Integral)
                                 or value.value < 0):
        raise ValueError(f"{what} must be a count, got {value.value!r}")
    return value


def percentage_of(
    numerator: ReleasedValue, base: ReleasedValue, *, threshold: int = 6, z: float = 1.96, digits: int = 1
) -> Statistic:
    """`numerator` as a percentage of `base`, with a Wilson interval, computed from the two values
    as released: the RR3-rounded counts, never the exact ones. (A percentage of the exact counts
    shown beside the rounded ones gives the exact counts back: 53.8% of about 15 can only be 7 of
    13.) So the percentage says nothing the released counts do not.

    Hidden when either value is suppressed or the released base is under `threshold`. Rounding
    the two counts independently can put the numerator above the base (8 of 8 may be released as
    9 of 6, 10 of 11 as 12 of 9): the percentage is then capped at 100.0, with the interval of a
    numerator equal to the base. Both values exact (a provider's own figures, from `exact_table`):
    the exact percentage, marked exact, for that provider only, hidden only over a base of 0.
    An exact value over a controlled one (or the reverse) raises ValueError: they are for
    different readers. Bare numbers raise TypeError.
    """
    numerator, base = _released_count(numerator, "numerator"), _released_count(base, "base")
    if numerator.exact != base.exact:
        raise ValueError("a percentage needs both counts exact (a provider's own) or both controlled")
    if numerator.suppressed or base.suppressed:
        return _HIDDEN
    part, whole = int(numerator.value), int(base.value)
    if base.exact:
        if whole == 0:
            return _HIDDEN
        return Statistic(*_wilson_percent(min(part, whole), whole, z, digits), False, exact=True, stamp=_STAMP)
    if whole < max(1, threshold):
        return _HIDDEN
    return Statistic(*_wilson_percent(min(part, whole), whole, z, digits), False, stamp=_STAMP)


def mean(values: list[float], *, threshold: int = 6, z: float = 1.96, digits: int = 2) -> Statistic:
    """Mean with a normal-approximation interval, only over a base of at least `threshold` people."""
    n = len(values)
    if n < threshold:
        return _HIDDEN
    m = sum(values) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in values) / (n - 1)) if n > 1 else 0.0
    half = z * sd / math.sqrt(n)
    return Statistic(round(m, digits), round(m - half, digits), round(m + half, digits), False, stamp=_STAMP)


def _number(x: object, what: str) -> int | float:
    """`x` as a plain Python number (NumPy's too), refusing what is not a finite number."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{what} must be a number, got {type(x).__name__}")
    if not math.isfinite(x):
        raise ValueError(f"{what} must be finite, got {x}")
    return int(x) if isinstance(x, numbers.Integral) else float(x)


def _optional_number(x: object, what: str) -> int | float | None:
    return None if x is None else _number(x, what)


def statistic(
    value: float, low: float | None, high: float | None, *, base: int, threshold: int = 6, digits: int = 2
) -> Statistic:
    """A derived statistic (a mean change, an effect size, a rate ratio...) computed over `base`
    people: released, rounded to `digits`, only when the base is at least `threshold`."""
    value, low, high = _number(value, "value"), _optional_number(low, "low"), _optional_number(high, "high")
    if low is not None and high is not None and low > high:
        raise ValueError(f"interval [{low}, {high}] is upside down")
    if isinstance(base, bool) or not isinstance(base, numbers.Integral) or base < 0:
        raise ValueError(f"base must be a number of people, got {base!r}")
    if base < threshold:
        return _HIDDEN
    rounded = [None if x is None else round(float(x), digits) for x in (value, low, high)]
    return Statistic(*rounded, False, stamp=_STAMP)


def exact_statistic(value: float, low: float | None = None, high: float | None = None) -> Statistic:
    """A provider's own figure about its own clients, exact; for that provider only."""
    value, low, high = _number(value, "value"), _optional_number(low, "low"), _optional_number(high, "high")
    return Statistic(value, low, high, False, exact=True, stamp=_STAMP)


def statistics_rules(threshold: int) -> list[str]:
    """The rules every statistics table with this threshold has passed."""
    return [
        f"percentages only over bases of at least {threshold}, and not when the count behind "
        f"them is 1 to {threshold - 1}",
        "a percentage of counts released here is computed from the released (rounded) counts",
        f"means and other derived statistics only over at least {threshold} people",
        "counts come from released tables (suppressed and RR3-rounded, or a provider's own exact figures)",
        "a suppressed value is null with suppressed=true in JSON and S in CSV",
    ]


def _looks_like_number(text: str) -> bool:
    """A label that reads as a number would smuggle one past the checks."""
    cleaned = text.strip().replace(",", "").rstrip("%").strip()
    if not any(ch.isdigit() for ch in cleaned):
        return False
    try:
        float(cleaned)
    except ValueError:
        return False
    return True


def _check_value(name: str, value: object) -> None:
    if isinstance(value, (Statistic, ReleasedValue)) or value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if _looks_like_number(value):
            raise TypeError(f"{name}: the label {value!r} reads as a number; numbers go in as statistics")
        return
    raise TypeError(
        f"{name}: a {type(value).__name__} cannot go into a released table; use percentage, mean, "
        "statistic or exact_statistic, or a value from a released table"
    )


@released_output
@dataclass(frozen=True)
class StatisticsTable(Sealed):
    """Rows of named released values, with the rules they passed. Made only by `statistics_table`."""

    title: str
    dimensions: list[str]
    columns: list[str]
    rows: list[tuple[dict[str, str | None], dict[str, object]]]
    threshold: int
    rules: list[str]
    notes: list[str] = field(default_factory=list)
    rules_version: str = RULES_VERSION
    stamp: InitVar[object] = None

    def __post_init__(self, stamp: object) -> None:
        require_stamp(stamp, "StatisticsTable", "statistics_table")

    @property
    def exact(self) -> bool:
        """Does the table hold any provider's exact figures (then it is for that provider only)?"""
        return any(
            isinstance(v, (Statistic, ReleasedValue)) and v.exact for _, values in self.rows for v in values.values()
        )

    def _has_interval(self, column: str) -> bool:
        return any(
            isinstance(v := values.get(column), Statistic) and (v.low is not None or v.high is not None)
            for _, values in self.rows
        )

    def to_json(self) -> dict:
        def render(v: object) -> object:
            if isinstance(v, Statistic):
                return v.to_json()
            if isinstance(v, ReleasedValue):
                return {"value": v.value, "suppressed": v.suppressed}
            return v

        return {
            "title": self.title,
            "dimensions": list(self.dimensions),
            "columns": list(self.columns),
            "rows": [
                {"at": dict(at), "values": {name: render(v) for name, v in values.items()}}
                for at, values in self.rows
            ],
            "threshold": self.threshold,
            "rules": list(self.rules),
            "notes": list(self.notes),
            "rules_version": self.rules_version,
        }

    def to_csv_rows(self) -> list[list[str]]:
        """Header (dimensions, then each column, with `_low`/`_high` where it has intervals), one
        row per row; suppressed values 'S'; then a blank row, the rules and the notes."""
        with_interval = {c: self._has_interval(c) for c in self.columns}
        header = list(self.dimensions)
        for c in self.columns:
            header += [c, f"{c}_low", f"{c}_high"] if with_interval[c] else [c]
        out = [header]
        for at, values in self.rows:
            row = [TOTAL_LABEL if at[d] is None else at[d] for d in self.dimensions]
            for c in self.columns:
                row += _csv_cells(values.get(c), with_interval[c])
            out.append(row)
        out.append([])
        out.append(["Rules version", self.rules_version])
        out.extend(["Rule", r] for r in self.rules)
        out.extend(["Note", n] for n in self.notes)
        return out


def _csv_cells(v: object, with_interval: bool) -> list[str]:
    def text(x: object) -> str:
        return "" if x is None else str(x)

    if isinstance(v, Statistic):
        cells = [SUPPRESSED_CSV] * 3 if v.suppressed else [text(v.value), text(v.low), text(v.high)]
    elif isinstance(v, ReleasedValue):
        cells = [SUPPRESSED_CSV if v.suppressed else text(v.value), "", ""]
    elif isinstance(v, bool):
        cells = ["true" if v else "false", "", ""]
    else:
        cells = [text(v), "", ""]
    return cells if with_interval else cells[:1]


def statistics_table(
    title: str,
    dimensions: list[str],
    rows: list[tuple[dict[str, str | None], dict[str, object]]],
    *,
    threshold: int,
    notes: list[str] = (),
) -> StatisticsTable:
    """A table of released statistics. Each row is (coordinates, values): coordinates give a
    category (or None for a total) for every dimension; each value must be a `Statistic`, a
    `ReleasedValue` from a released table, or a label (str, bool or None). A bare number raises
    TypeError: numbers reach an output only through this package."""
    dims = list(dimensions)
    columns: list[str] = []
    checked = []
    for at, values in rows:
        if set(at) != set(dims):
            raise ValueError(f"row coordinates {sorted(at)} do not match the dimensions {dims}")
        for d, category in at.items():
            if category is not None and not isinstance(category, str):
                raise TypeError(f"category of {d!r} must be a str or None, got {type(category).__name__}")
        for name, v in values.items():
            _check_value(name, v)
            if name not in columns:
                columns.append(name)
        checked.append(({d: at[d] for d in dims}, dict(values)))
    table_rules = statistics_rules(threshold)
    if any(isinstance(v, (Statistic, ReleasedValue)) and v.exact for _, values in checked for v in values.values()):
        table_rules.append("exact: a provider's own figures about its own clients, shown only to that provider")
    return StatisticsTable(title, dims, columns, checked, threshold, table_rules, list(notes), stamp=_STAMP)
