"""Planting the faults real provider files have, and listing each one in `faults.csv`.

A share F of the rows of every file gets exactly one fault of a kind that fits the file. The
row numbers are the spreadsheet rows the provider sees (the header is row 1), and faults never
add or remove rows, so the list stays true of the file as written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from cldx.standard import RECORD_TYPES

# What each fault kind should be reported as by validation (a rule id of cldx.ingest.findings).
EXPECTED_RULE = {
    "invalid-code": "unknown-code",
    "impossible-date": "impossible-date",
    "month-first-date": "impossible-date",
    "end-before-start": "date-order",
    "unknown-client": "unknown-reference",
    "duplicate-reference": "duplicate-key",
    "blank-required": "required",
    "stripped-leading-zeros": "leading-zeros-restored",
    "missing-notification": "not-notified",
}

# (kind, field) choices per record type. Code faults use values no code set holds.
FAULTS: dict[str, tuple[tuple[str, str], ...]] = {
    "client": (
        ("invalid-code", "gender"), ("invalid-code", "primary_ethnicity"), ("invalid-code", "area"),
        ("impossible-date", "date_of_birth"), ("month-first-date", "notified_of_sharing_on"),
        ("blank-required", "gender"), ("blank-required", "area"), ("duplicate-reference", "client_ref"),
        ("stripped-leading-zeros", "area"), ("stripped-leading-zeros", "iwi_1"),
        ("missing-notification", "notified_of_sharing_on"),
    ),
    "dependant": (
        ("invalid-code", "relationship"), ("impossible-date", "date_of_birth"), ("unknown-client", "client_ref"),
        ("duplicate-reference", "dependant_ref"), ("blank-required", "relationship"),
    ),
    "engagement": (
        ("invalid-code", "service_code"), ("impossible-date", "start_date"), ("month-first-date", "start_date"),
        ("end-before-start", "end_date"), ("unknown-client", "client_ref"), ("duplicate-reference", "engagement_ref"),
        ("blank-required", "start_date"),
    ),
    "attendance": (
        ("impossible-date", "session_date"), ("blank-required", "attended"), ("duplicate-reference", "engagement_ref"),
    ),
    "assessment": (
        ("invalid-code", "instrument"), ("month-first-date", "assessed_on"), ("blank-required", "score"),
        ("duplicate-reference", "engagement_ref"),
    ),
    "outcome": (
        ("invalid-code", "measure"), ("impossible-date", "measured_on"), ("blank-required", "better_off"),
        ("duplicate-reference", "engagement_ref"),
    ),
}
BAD_CODES = {"gender": "7", "primary_ethnicity": "88", "area": "999999", "relationship": "cousin", "service_code": "XYZ", "instrument": "PHQ", "measure": "happiness"}


@dataclass(frozen=True)
class PlantedFault:
    provider: str
    file: str
    row: int  # spreadsheet row: the header is row 1
    field: str
    kind: str


def _parts(text: str) -> tuple[int, int, int, str] | None:
    """(year, month, day, style) of a date written by the generator, or None when blank."""
    if not text:
        return None
    if "/" in text:
        d, m, y = text.split("/")
        return int(y), int(m), int(d), "nz"
    y, m, d = text.split("-")
    return int(y), int(m), int(d), "iso"


def _spoiled_date(text: str, kind: str, rng: np.random.Generator) -> str | None:
    parts = _parts(text)
    if parts is None:
        return None
    year, month, day_, style = parts
    if kind == "month-first-date":
        # The provider's export wrote month first; the day is over 12, so no month can be read.
        day_ = max(day_, 13)
        return f"{month:02d}/{day_:02d}/{year}"
    bad_month, bad_day = (2, 30) if rng.random() < 0.5 else (int(rng.choice([4, 6, 9, 11])), 31)
    return f"{bad_day:02d}/{bad_month:02d}/{year}" if style == "nz" else f"{year}-{bad_month:02d}-{bad_day:02d}"


def plant_faults(record: str, frame: pl.DataFrame, provider: str, rate: float, rng: np.random.Generator) -> tuple[pl.DataFrame, list[PlantedFault]]:
    if rate <= 0 or frame.height == 0:
        return frame, []
    rt = RECORD_TYPES[record]
    columns = {name: frame[name].to_list() for name in frame.columns}
    chosen = np.flatnonzero(rng.random(frame.height) < rate)
    faulted: set[int] = set()
    planted: list[PlantedFault] = []
    options = FAULTS[record]
    for i in chosen.tolist():
        for attempt in rng.permutation(len(options)).tolist():
            kind, field = options[attempt]
            value = columns[field][i]
            new: str | None
            if kind == "invalid-code":
                new = BAD_CODES[field]
            elif kind in ("impossible-date", "month-first-date"):
                new = _spoiled_date(value, kind, rng)
            elif kind in ("blank-required", "missing-notification"):
                new = "" if value else None
            elif kind == "unknown-client":
                new = f"X-{provider}-{i:06d}"
            elif kind == "end-before-start":
                start = _parts(columns["start_date"][i])
                # Only where the start date itself is sound, so the one fault is the order.
                new = None if not value or start is None or i in faulted else (
                    f"{max(start[2] - 1, 1) if start[2] > 1 else 1:02d}/{start[1]:02d}/{start[0] - 1}" if start[3] == "nz"
                    else f"{start[0] - 1}-{start[1]:02d}-{start[2]:02d}")
            elif kind == "duplicate-reference":
                # Repeat the previous row's whole key; that row must itself be untouched.
                if i == 0 or (i - 1) in faulted or columns[rt.key[0]][i - 1] == "":
                    new = None
                else:
                    for key_field in rt.key[1:]:
                        columns[key_field][i] = columns[key_field][i - 1]
                    new = columns[rt.key[0]][i - 1]
            elif kind == "stripped-leading-zeros":
                # Excel reads a TA code "001" or an iwi code "0402" as a number and drops its zeros.
                new = value.lstrip("0") if value.startswith("0") else None
            else:  # pragma: no cover - every kind is handled above
                raise AssertionError(kind)
            if new is None or new == value:
                continue
            columns[field][i] = new
            faulted.add(i)
            planted.append(PlantedFault(provider, rt.file_name, i + 2, field, kind))
            break
    return pl.DataFrame(columns, schema=frame.schema), planted
