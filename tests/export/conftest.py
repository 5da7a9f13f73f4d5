"""What every research-extract test shares: the scan of an extract for direct identifiers.

`direct_identifiers(files, engine)` collects, from the generator's files and the store, every
value that names a client or a record: family and given names (clients and dependants), dates
of birth in every form a file could hold them, provider client and engagement references, raw
SLK-581s (sent by de-identified providers, or computed from the names), and the live person
pseudonyms. `scan_extract(folder, identifiers)` reads every file of an extract (each table as
Parquet and CSV, and the raw bytes, and the dictionary, report and manifest) and returns each
place an identifier appears.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import Engine, text

from cldx.identity.slk import fold, slk581
from cldx.standard import RECORD_TYPES
from cldx.standard.codesets import code_sets


@dataclass
class Identifiers:
    names: set[str] = field(default_factory=set)  # folded, upper case
    long_values: set[str] = field(default_factory=set)  # dates of birth, references, SLKs, pseudonyms


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _day(value: str) -> date:
    """A date as the generator writes it: ISO, or New Zealand day-first."""
    if "/" in value:
        day, month, year = value.split("/")
        return date(int(year), int(month), int(day))
    return date.fromisoformat(value)


def _dates(day: date) -> set[str]:
    return {day.isoformat(), f"{day:%d/%m/%Y}", f"{day.day}/{day.month}/{day.year}", f"{day:%d%m%Y}", f"{day:%Y%m%d}"}


def direct_identifiers(files: Path, engine: Engine) -> Identifiers:
    found = Identifiers()
    for folder in sorted(p for p in files.iterdir() if p.is_dir() and p.name != "registry"):
        for row in _rows(folder / "clients.csv"):
            found.long_values.add(row["client_ref"])
            for name in (row["family_name"], *row["given_names"].split()):
                if fold(name):
                    found.names.add(fold(name))
            if row["slk581"]:
                found.long_values.add(row["slk581"])
            if row["date_of_birth"]:
                born = _day(row["date_of_birth"])
                found.long_values |= _dates(born)
                found.long_values.add(slk581(row["family_name"], row["given_names"], born, row["gender"]))
        for row in _rows(folder / "dependants.csv"):
            found.long_values.add(row["dependant_ref"])
            for name in (row["family_name"], *row["given_names"].split()):
                if fold(name):
                    found.names.add(fold(name))
            if row["date_of_birth"]:
                found.long_values |= _dates(_day(row["date_of_birth"]))
        for row in _rows(folder / "engagements.csv"):
            found.long_values.add(row["engagement_ref"])
    with engine.connect() as connection:
        found.long_values |= {k for (k,) in connection.execute(text("SELECT person_key FROM client WHERE person_key IS NOT NULL"))}
        found.long_values |= {str(k) for (k,) in connection.execute(text("SELECT code FROM provider"))}
    return found


def _vocabulary() -> set[str]:
    """The words the dictionary and report are written from (the standard, the code sets): a
    name that is also such a word (an iwi's name, say) is not a leak when it appears there."""
    words: set[str] = set()
    texts = [f.description for rt in RECORD_TYPES.values() for f in rt.fields]
    texts += [c.label for cs in code_sets().values() for c in cs.codes]
    for piece in texts:
        words |= {fold(w) for w in re.findall(r"[^\W\d_]+", piece)}
    return words


# What the manifest says about the request itself (who asked and approved, when, the period and
# the purpose as typed): facts about the request, not about a client, so a date or a username in
# them that happens to equal a client's is not a leak.
REQUEST_FACTS = ("purpose", "period", "requested_by", "requested_at", "approved_by", "approved_at", "produced_at")


def scan_extract(folder: Path, identifiers: Identifiers) -> list[str]:
    """Every place an identifier appears in the extract's files ([] when clean)."""
    problems: list[str] = []
    vocabulary = _vocabulary()
    for path in sorted(folder.iterdir()):
        raw = path.read_bytes()
        if path.name == "manifest.json":
            manifest = json.loads(raw)
            raw = json.dumps({k: v for k, v in manifest.items() if k not in REQUEST_FACTS}).encode()
        for value in identifiers.long_values:
            # Eight digits alone (19851219) turn up inside random hex pseudonyms by chance; they are
            # looked for as whole cells below, the other forms anywhere in the bytes.
            if len(value) >= 6 and not (value.isdigit() and len(value) == 8) and value.encode() in raw:
                problems.append(f"{path.name}: holds {value!r}")
        if path.suffix in (".parquet", ".csv"):
            frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, infer_schema=False)
            for column in frame.columns:
                values = {str(v) for v in frame[column].drop_nulls().unique().to_list()}
                for value in values:
                    if value in identifiers.long_values:
                        problems.append(f"{path.name}: {column} holds {value!r}")
                    if fold(value) in identifiers.names:
                        problems.append(f"{path.name}: {column} holds the name {value!r}")
                    # A short reference that `long_values` skipped (fewer than 6 characters) still may not be a cell.
        else:
            words = {fold(w) for w in re.findall(r"[^\W\d_]+", raw.decode("utf-8"))}
            for word in (words & identifiers.names) - vocabulary:
                problems.append(f"{path.name}: holds the name {word!r}")
    return problems


@pytest.fixture(scope="session")
def scan():
    return scan_extract


@pytest.fixture(scope="session")
def identifiers_of():
    return direct_identifiers
