"""Provider data written into the Excel template, as staff who keep a spreadsheet would send it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from cldx.standard import RECORD_TYPES, ServiceLine
from cldx.standard.templates import build_workbook, save_deterministic

EXCEL_MAX_ROWS = 1_048_576  # rows in one sheet, the header included


def fits_workbook(frames: dict[str, pl.DataFrame]) -> bool:
    return all(frame.height < EXCEL_MAX_ROWS for frame in frames.values())


def write_provider_workbook(path: Path, frames: dict[str, pl.DataFrame], service_lines: Sequence[ServiceLine]) -> bool:
    """Fill each record sheet below its header; False (nothing written) when a sheet would overflow."""
    if not fits_workbook(frames):
        return False
    wb = build_workbook(service_lines)
    for record, frame in frames.items():
        sheet = wb[RECORD_TYPES[record].sheet_name]
        for row in frame.select(RECORD_TYPES[record].columns).iter_rows():
            # Blank cells stay empty; values are text, as the template's text-formatted columns hold them.
            sheet.append([value or None for value in row])
    path.write_bytes(save_deterministic(wb))
    return True
