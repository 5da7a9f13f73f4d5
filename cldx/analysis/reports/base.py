"""What every report shares: the request (period, breakdowns, audience), labels, and the report itself.

A `Report` is a list of `Section`s, and a section's table must be something only
`cldx.disclosure` can make (`is_released`): a table that skipped disclosure control cannot even
be put into a report, so no page, API answer or file built from reports can carry one. A
provider's own figures are released too, by `disclosure.exact_table`, which says they are exact
and whose they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from sqlalchemy import Engine, text

from cldx.disclosure import is_released
from cldx.standard.codesets import code_set
from cldx.store.db import read_transaction
from cldx.store.scope import set_scope

from ..layer import UNKNOWN, AnalyticLayer


class ReportError(ValueError):
    """A report asked for with parameters it cannot take (the CLI exits 2, the API answers 422)."""


# --- The request -----------------------------------------------------------------------------------------

_MONTH = re.compile(r"^\d{4}-\d{2}$")


def _parse_bound(text_value: str, *, end: bool) -> date:
    value = text_value.strip()
    try:
        if _MONTH.match(value):
            year, month = int(value[:4]), int(value[5:])
            first = date(year, month, 1)
            if not end:
                return first
            following = date(year + (month == 12), month % 12 + 1, 1)
            return date.fromordinal(following.toordinal() - 1)
        return date.fromisoformat(value)
    except ValueError:
        raise ReportError(f"{value!r} is not a date: write YYYY-MM or YYYY-MM-DD") from None


@dataclass(frozen=True)
class Period:
    """The days a report covers, both ends included; either end may be open."""

    start: date | None = None
    end: date | None = None

    @classmethod
    def parse(cls, value: str | None) -> "Period":
        """`FROM:TO` with months (`2016-07:2017-06`) or days (`2016-07-01:2017-06-30`); either side may be empty."""
        if value is None or not value.strip():
            return cls()
        if ":" not in value:
            raise ReportError(f"period {value!r}: write FROM:TO, for example 2016-07:2017-06")
        left, right = value.split(":", 1)
        period = cls(_parse_bound(left, end=False) if left.strip() else None,
                     _parse_bound(right, end=True) if right.strip() else None)
        if period.start and period.end and period.start > period.end:
            raise ReportError(f"period {value!r} ends before it starts")
        return period

    def __str__(self) -> str:
        if self.start is None and self.end is None:
            return "everything stored"
        return f"{self.start or '…'} to {self.end or '…'}"

    def to_json(self) -> dict:
        return {"from": self.start.isoformat() if self.start else None, "to": self.end.isoformat() if self.end else None}

    def overlap_sql(self, start_column: str, end_column: str) -> tuple[str, list]:
        """A DuckDB condition for "active at some point in the period" and its parameters."""
        clauses, params = [], []
        if self.end is not None:
            clauses.append(f"{start_column} <= ?")
            params.append(self.end)
        if self.start is not None:
            clauses.append(f"({end_column} IS NULL OR {end_column} >= ?)")
            params.append(self.start)
        return (" AND ".join(clauses) or "TRUE"), params

    def within_sql(self, column: str) -> tuple[str, list]:
        """A DuckDB condition for "on a day in the period"."""
        clauses, params = [], []
        if self.start is not None:
            clauses.append(f"{column} >= ?")
            params.append(self.start)
        if self.end is not None:
            clauses.append(f"{column} <= ?")
            params.append(self.end)
        return (" AND ".join(clauses) or "TRUE"), params


@dataclass(frozen=True)
class Audience:
    """Who the report is for: the ministry (every person count controlled) or one provider (its own
    figures exact; anything about other providers controlled)."""

    provider_id: int | None = None
    provider_code: str | None = None

    @property
    def is_provider(self) -> bool:
        return self.provider_id is not None

    def to_json(self) -> dict:
        return {"provider": self.provider_code} if self.is_provider else {"ministry": True}


MINISTRY = Audience()


# --- Labels --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Labels:
    """Codes in the layer -> the words people read; registry names from the store, the rest from code sets."""

    providers: dict[int, str]  # id -> code
    provider_ids: dict[str, int]
    service_lines: dict[str, str]  # code -> name
    regions: dict[str, str]
    tas: dict[str, str]
    ethnicities: dict[str, str]  # level-1 code -> label
    iwi: dict[str, str]
    genders: dict[str, str]  # level-1 code -> label

    @classmethod
    def load(cls, engine: Engine) -> "Labels":
        with read_transaction(engine) as session:
            connection = session.connection()
            set_scope(connection, everything=True)
            providers = {int(i): c for i, c in connection.execute(text("SELECT id, code FROM provider"))}
            lines = dict(connection.execute(text("SELECT code, name FROM service_line")).all())
        level1 = lambda name: {c.code: c.label for c in code_set(name) if c.level == 1}  # noqa: E731
        return cls(
            providers=providers,
            provider_ids={c: i for i, c in providers.items()},
            service_lines=lines,
            regions={c.code: c.label for c in code_set("regional_council")},
            tas={c.code: c.label for c in code_set("territorial_authority")},
            ethnicities=level1("ethnicity"),
            iwi={c.code: c.label for c in code_set("iwi") if c.level == 2},
            genders=level1("gender"),
        )


# Breakdowns a report may ask for: name -> (layer column, label table on Labels, what it means).
DIMENSIONS: dict[str, tuple[str, str | None, str]] = {
    "service": ("service_code", "service_lines", "service line of the engagement"),
    "region": ("region", "regions", "regional council of the client's area"),
    "ta": ("ta", "tas", "territorial authority of the client's area"),
    "ethnicity": ("ethnicity", "ethnicities", "the client's primary ethnicity (level 1)"),
    "iwi": ("iwi", "iwi", "the client's first iwi"),
    "age_band": ("age_band", None, "age at the start of the engagement"),
    "gender": ("gender_group", "genders", "gender (level 1)"),
    "provider": ("provider_id", "providers", "provider organisation"),
}


def parse_by(value: str | list[str] | None, *, default: list[str], allowed: tuple[str, ...] = tuple(DIMENSIONS)) -> list[str]:
    """`--by service,region` -> ['service', 'region'], checked against the dimensions a report knows."""
    if value is None or value == "" or value == []:
        return list(default)
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ReportError(f"unknown breakdown {', '.join(unknown)}: choose from {', '.join(allowed)}")
    if len(set(names)) != len(names):
        raise ReportError("a breakdown is named twice")
    return names


def dimension_select(name: str) -> str:
    """The DuckDB expression giving a dimension's code for one row of the layer."""
    column = DIMENSIONS[name][0]
    if column == "gender_group":
        return "substr(gender, 1, 1)"
    return column


def label_column(frame, name: str, labels: Labels):
    """Replace a dimension's codes in a Polars frame by their labels (missing -> 'Not stated')."""
    import polars as pl

    table = DIMENSIONS[name][1]
    if table is None:
        return frame.with_columns(pl.col(name).cast(pl.String).fill_null(UNKNOWN))
    mapping = getattr(labels, table)
    keys = [str(k) for k in mapping]
    return frame.with_columns(
        pl.col(name).cast(pl.String).replace_strict(keys, [str(v) for v in mapping.values()], default=pl.col(name).cast(pl.String))
        .fill_null(UNKNOWN)
    )


# --- Charts and sections ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chart:
    """What to draw from a section's released table; the web part turns it into a Vega-Lite spec."""

    kind: str  # bar, line, interval, funnel
    x: str
    y: str
    color: str | None = None
    low: str | None = None
    high: str | None = None
    reference: float | None = None
    description: str = ""


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    table: object  # a ReleasedTable or StatisticsTable: checked below
    chart: Chart | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if not is_released(self.table):
            raise TypeError(f"section {self.key!r}: only a table released by cldx.disclosure may go into a report")


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    summary: str
    period: Period
    by: list[str]
    audience: Audience
    sections: list[Section]
    notes: list[str] = field(default_factory=list)
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def to_json(self) -> dict:
        return {
            "report": self.name,
            "title": self.title,
            "summary": self.summary,
            "period": self.period.to_json(),
            "by": list(self.by),
            "audience": self.audience.to_json(),
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "notes": list(self.notes),
            "sections": [
                {"key": s.key, "title": s.title, "note": s.note, "table": s.table.to_json()}  # type: ignore[attr-defined]
                for s in self.sections
            ],
        }


@dataclass
class ReportContext:
    """What a report runs on: the layer (warm DuckDB), the store (registry), the rounding key."""

    layer: AnalyticLayer
    rounding_key: bytes
    threshold: int = 6
    # What is due depends on the day: the app's clock (Settings.now, which a demo sets back).
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    _labels: Labels | None = None

    @property
    def engine(self) -> Engine:
        return self.layer.engine

    @property
    def labels(self) -> Labels:
        if self._labels is None:
            self._labels = Labels.load(self.engine)
        return self._labels

    def forget_labels(self) -> None:
        """Read the registry's names again on next use (providers and service lines are added while running)."""
        self._labels = None
