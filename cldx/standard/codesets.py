"""Code sets: the official classifications and cldx's own small lists, shipped in the package.

Each code set names its source and version so a released table can say what it was coded
against. The CSV files in `codesets/` were taken from `shared/codesets/` (provenance in
`codesets/SOURCES.md`); nothing here reaches the network.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Iterable, Iterator


@dataclass(frozen=True)
class Code:
    """One code of a code set."""

    code: str
    label: str
    level: int = 1
    parent: str | None = None
    description: str = ""


@dataclass(frozen=True)
class CodeSet:
    """A named list of codes with where it came from."""

    name: str
    title: str
    source: str
    version: str
    codes: tuple[Code, ...]
    # Documentation for provider staff: which codes to choose and why.
    note: str = ""
    _by_code: dict[str, Code] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_code", {c.code: c for c in self.codes})

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[Code]:
        return iter(self.codes)

    def __len__(self) -> int:
        return len(self.codes)

    def get(self, code: str) -> Code | None:
        return self._by_code.get(code)

    def at_levels(self, levels: Iterable[int] | None) -> tuple[Code, ...]:
        """The codes a field accepts when it takes only some levels of the classification."""
        if levels is None:
            return self.codes
        wanted = set(levels)
        return tuple(c for c in self.codes if c.level in wanted)

    def ancestor(self, code: str, level: int) -> Code | None:
        """The code's ancestor at `level` (itself when already there): how reports roll codes up."""
        current = self._by_code.get(code)
        while current is not None and current.level > level:
            current = self._by_code.get(current.parent) if current.parent else None
        return current if current is not None and current.level == level else None

    def restore_leading_zeros(self, value: str, levels: Iterable[int] | None = None) -> str | None:
        """The one code that `value` is, once Excel's stripped leading zeros are put back.

        Excel turns territorial authority "001" into 1. Only when exactly one accepted code fits
        is it returned; otherwise None, so nothing is guessed.
        """
        if not value.isdigit():
            return None
        fits = [c.code for c in self.at_levels(levels) if c.code.lstrip("0") == value.lstrip("0") and c.code != value]
        return fits[0] if len(fits) == 1 else None


@dataclass(frozen=True)
class InstrumentDomain:
    """One scored domain of an assessment instrument."""

    code: str
    label: str
    min_score: float
    max_score: float
    better: str  # "higher" or "lower": the direction of improvement


@dataclass(frozen=True)
class Instrument:
    code: str
    label: str
    source: str
    domains: dict[str, InstrumentDomain]


def _rows(file_name: str) -> list[dict[str, str]]:
    with resources.files(__package__).joinpath("codesets", file_name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _classification(file_name: str) -> tuple[Code, ...]:
    return tuple(
        Code(code=r["code"], label=r["label"], level=int(r["level"]), parent=r["parent_code"] or None)
        for r in _rows(file_name)
    )


def _plain(file_name: str) -> tuple[Code, ...]:
    return tuple(Code(code=r["code"], label=r["label"], description=r.get("description", "")) for r in _rows(file_name))


def _inline(*pairs: tuple[str, str]) -> tuple[Code, ...]:
    return tuple(Code(code=c, label=label) for c, label in pairs)


STATS_NZ_GEOGRAPHY = (
    "Stats NZ Geographic Areas File 2018 (meshblock concordance, CC BY 4.0; datafinder.stats.govt.nz/table/104680)"
)


def _area_codes() -> tuple[Code, ...]:
    # Territorial authorities at level 1, SA2s at level 2 under their TA: a provider that knows
    # only the district sends the TA; reports can always roll an SA2 up to its TA and region.
    tas = tuple(Code(code=r["code"], label=r["label"], level=1) for r in _rows("territorial_authority.csv"))
    sa2s = tuple(Code(code=r["code"], label=r["label"], level=2, parent=r["ta_code"]) for r in _rows("sa2.csv"))
    return tas + sa2s


@cache
def code_sets() -> dict[str, CodeSet]:
    """Every code set of the standard, by name."""
    instruments = load_instruments()
    sets = [
        CodeSet(
            "ethnicity",
            "Ethnicity (ETHNIC05 v2)",
            "Stats NZ Ethnicity New Zealand Standard Classification 2005, v2 (levels 1-4)",
            "ETHNIC05 v2",
            _classification("ethnicity.csv"),
            note="Send the client's primary ethnicity at level 2 (two digits) or finer; reports roll it up.",
        ),
        CodeSet(
            "iwi",
            "Iwi (Stats NZ Iwi statistical standard)",
            "Stats NZ Iwi statistical standard, 27 May 2022 (HL7NZ iwi-code v2.0.0)",
            "2022-05-27",
            _classification("iwi.csv"),
            note="Send four-digit iwi codes (level 2), residuals 4444-9999 included; up to three per client.",
        ),
        CodeSet(
            "gender",
            "Gender identity (SCGI v1.0)",
            "Stats NZ Statistical Classification of Gender Identity v1.0 (2015), with cldx residual codes 9, 94, 95, 99",
            "SCGI v1.0",
            _classification("gender.csv"),
        ),
        CodeSet(
            "regional_council",
            "Regional council (REGC2018)",
            STATS_NZ_GEOGRAPHY,
            "2018",
            tuple(Code(code=r["code"], label=r["label"]) for r in _rows("regional_council.csv")),
        ),
        CodeSet(
            "territorial_authority",
            "Territorial authority (TA2018)",
            STATS_NZ_GEOGRAPHY,
            "2018",
            tuple(Code(code=r["code"], label=r["label"], parent=r["region_code"]) for r in _rows("territorial_authority.csv")),
        ),
        CodeSet(
            "sa2",
            "Statistical area 2 (SA22018)",
            STATS_NZ_GEOGRAPHY,
            "2018",
            tuple(Code(code=r["code"], label=r["label"], parent=r["ta_code"]) for r in _rows("sa2.csv")),
        ),
        CodeSet(
            "area",
            "Geographic area (SA2 2018, or territorial authority 2018)",
            STATS_NZ_GEOGRAPHY,
            "2018",
            _area_codes(),
            note="Send the six-digit SA2 of the client's usual residence, or the three-digit territorial authority when the SA2 is not known.",
        ),
        CodeSet("end_reason", "Engagement end reason", "cldx data standard", "1", _plain("end_reason.csv")),
        CodeSet("relationship", "Dependant relationship", "cldx data standard", "1", _plain("relationship.csv")),
        CodeSet(
            "instrument",
            "Assessment instrument",
            "cldx data standard (instruments as published by their authors)",
            "1",
            tuple(Code(code=i.code, label=i.label, description=i.source) for i in instruments.values()),
        ),
        CodeSet(
            "instrument_domain",
            "Assessment domain",
            "cldx data standard",
            "1",
            tuple(
                {
                    d.code: Code(code=d.code, label=d.label)
                    for i in instruments.values()
                    for d in i.domains.values()
                }.values()
            ),
            note="Each instrument has its own domains; see the instruments table for which domain belongs to which.",
        ),
        CodeSet(
            "outcome_dimension",
            "Outcome dimension",
            "The brief: change in knowledge, attitude, skills, behaviour and/or circumstances",
            "1",
            _inline(
                ("knowledge", "Knowledge"),
                ("attitude", "Attitude"),
                ("skills", "Skills"),
                ("behaviour", "Behaviour"),
                ("circumstances", "Circumstances"),
            ),
        ),
        CodeSet(
            "outcome_measure",
            "Outcome measure",
            "cldx data standard",
            "1",
            tuple(
                Code(code=r["code"], label=r["label"], level=2, parent=r["dimension"], description=r["description"])
                for r in _rows("outcome_measure.csv")
            ),
        ),
        CodeSet("phase", "Assessment phase", "cldx data standard", "1", _inline(("pre", "Before the service"), ("post", "After the service"))),
        CodeSet("yes_no", "Yes or no", "cldx data standard", "1", _inline(("y", "Yes"), ("n", "No"))),
        CodeSet(
            "reporting_frequency",
            "Contract reporting frequency",
            "cldx data standard",
            "1",
            _inline(("monthly", "Monthly: data for each calendar month, due the following month")),
        ),
        CodeSet(
            "action",
            "Record action",
            "cldx data standard",
            "1",
            _inline(("upsert", "Add or update the record (the default when blank)"), ("withdraw", "Withdraw the record with this key")),
        ),
    ]
    return {s.name: s for s in sets}


def code_set(name: str) -> CodeSet:
    return code_sets()[name]


@cache
def load_instruments() -> dict[str, Instrument]:
    """Assessment instruments with the score range and better direction of each domain."""
    instruments: dict[str, Instrument] = {}
    for r in _rows("instrument.csv"):
        inst = instruments.setdefault(
            r["instrument"], Instrument(r["instrument"], r["instrument_label"], r["source"], {})
        )
        inst.domains[r["domain"]] = InstrumentDomain(
            r["domain"], r["domain_label"], float(r["min_score"]), float(r["max_score"]), r["better"]
        )
    return instruments


@cache
def ta_regions() -> dict[str, tuple[str, ...]]:
    """Territorial authority code -> every regional council code it touches (most meshblocks first)."""
    spans: dict[str, list[tuple[int, str]]] = {}
    for r in _rows("ta_regc_concordance.csv"):
        spans.setdefault(r["ta_code"], []).append((-int(r["meshblock_count"]), r["region_code"]))
    return {ta: tuple(region for _, region in sorted(pairs)) for ta, pairs in spans.items()}
