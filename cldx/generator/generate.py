"""`generate()`: write the whole roll-out to a folder, byte-identical for the same arguments."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from cldx.standard import RECORD_TYPES

from .faults import PlantedFault, plant_faults
from .persons import plan_persons
from .records import provider_files
from .rollout import Rollout, plan_rollout, schedule_rows

DEFAULT_START = date(2016, 7, 1)
DEFAULT_END = date(2018, 6, 30)


@dataclass
class GenerationSummary:
    out: Path
    providers: int
    contracts: int
    clients: int  # client persons
    rows: dict[str, int] = field(default_factory=dict)  # record type -> rows written
    faults: int = 0


def _write_csv(path: Path, header: list[str], rows) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_registry(rollout: Rollout, folder: Path, start: date, end: date, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _write_csv(
        folder / "service_lines.csv",
        ["service_code", "name", "description", "min_client_age", "max_client_age"],
        [(s.code, s.name, s.description, s.min_client_age, s.max_client_age) for s in rollout.service_lines],
    )
    _write_csv(
        folder / "providers.csv",
        ["provider_code", "name", "region_code", "ta_code", "sends_identity"],
        [(p.code, p.name, p.region_code, p.ta_code, "y" if p.sends_identity else "n") for p in rollout.providers],
    )
    _write_csv(
        folder / "contracts.csv",
        ["contract_ref", "provider_code", "service_code", "period_start", "period_end", "funding_nzd", "data_clause",
         "collection_start", "wave", "reporting_frequency", "due_day"],
        [
            (c.contract_ref, rollout.providers[c.provider_index].code, c.service_code, c.period_start.isoformat(),
             c.period_end.isoformat(), f"{c.funding_nzd:.2f}", "y", c.collection_start.isoformat(), c.wave, "monthly", 20)
            for c in rollout.contracts
        ],
    )
    _write_csv(folder / "schedule.csv", ["provider", "period", "received"], schedule_rows(rollout, start, end, seed))


def generate(
    *,
    clients: int,
    seed: int,
    fault_rate: float,
    out: Path,
    start: date = DEFAULT_START,
    end: date = DEFAULT_END,
    excel: bool = False,
    only: Collection[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GenerationSummary:
    """Write registry, provider files and ground truth for `clients` client persons.

    The output folder is emptied of earlier generator output first, so a rerun never leaves
    stale providers behind. `only` limits the provider folders written to those codes (the
    registry is always whole); every provider's records are the same with or without it.
    """
    if not 0 <= fault_rate < 1:
        raise ValueError("fault rate must be at least 0 and below 1")
    if end <= start:
        raise ValueError("--to must be after --from")
    rollout = plan_rollout(seed)
    persons = plan_persons(rollout, clients, start, end, seed)

    out.mkdir(parents=True, exist_ok=True)
    for p in rollout.providers:
        shutil.rmtree(out / p.code, ignore_errors=True)
    shutil.rmtree(out / "excel", ignore_errors=True)
    write_registry(rollout, out / "registry", start, end, seed)

    summary = GenerationSummary(out, len(rollout.providers), len(rollout.contracts), clients, {name: 0 for name in RECORD_TYPES})
    planted: list[PlantedFault] = []
    chosen = [p for p in rollout.providers if only is None or p.code in only]
    for done, provider in enumerate(chosen, start=1):
        files = provider_files(rollout, persons, provider, end, seed)
        folder = out / provider.code
        folder.mkdir()
        fault_rng = np.random.default_rng([seed, 4, provider.index])
        for record, frame in files.frames.items():
            frame, faults = plant_faults(record, frame, provider.code, fault_rate, fault_rng)
            planted += faults
            # Blank cells are written as nothing at all, as Excel and case systems write them.
            frame.with_columns(pl.when(pl.all() != "").then(pl.all()).name.keep()).write_csv(folder / RECORD_TYPES[record].file_name)
            summary.rows[record] += frame.height
            if excel:
                files.frames[record] = frame
        if excel:
            from .excel import write_provider_workbook

            # Beside the CSV files, not in the provider's folder, which holds only the six CSVs.
            excel_folder = out / "excel"
            excel_folder.mkdir(exist_ok=True)
            write_provider_workbook(excel_folder / f"{provider.code}.xlsx", files.frames, rollout.service_lines)
        if progress:
            progress(done, len(chosen))

    _write_csv(out / "faults.csv", ["provider", "file", "row", "field", "kind"], [(f.provider, f.file, f.row, f.field, f.kind) for f in planted])
    # The generator's ground truth for comparisons: which providers it made better or worse.
    _write_csv(
        out / "provider_effects.csv",
        ["provider", "quality", "planted"],
        [(p.code, f"{p.quality:.3f}", "better" if p.quality >= 1.5 else "worse" if p.quality <= -1.5 else "") for p in rollout.providers],
    )
    summary.faults = len(planted)
    return summary
