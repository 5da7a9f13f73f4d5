"""Replaying a roll-out folder's history: each provider's records, month by month, as submissions.

Reads the layout DESIGN.md gives `cldx generate` (`registry/schedule.csv` and one folder per
provider) and sends each month's records through `submit()` with the received time the
schedule gives, so coverage and compliance have a real history. A record is sent in the month
it first happens (a client with their first engagement, a session in its month); an
engagement is sent open when it starts and again, closed, in the month it ends, as a case
system would. A missed month's records arrive with the next submission.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
from sqlalchemy import Engine

from cldx.standard import RECORD_TYPES

from .sources import SourceFile
from .submit import Receipt, submit
from .validate import _date_expr

NZ = ZoneInfo("Pacific/Auckland")
# The column whose month decides when a record is first sent.
WHEN = {"attendance": "session_date", "assessment": "assessed_on", "outcome": "measured_on"}


@dataclass
class ReplayPlan:
    provider: str
    period: str
    received_at: datetime
    files: list[SourceFile]


def _month(column: str) -> pl.Expr:
    parsed, _ = _date_expr(pl.col(column).fill_null(""))
    return parsed.dt.strftime("%Y-%m")


def _read(folder: Path, record: str) -> pl.DataFrame:
    path = folder / RECORD_TYPES[record].file_name
    return pl.read_csv(path, infer_schema=False).with_columns(pl.all().fill_null(""))


def provider_months(folder: Path) -> dict[str, pl.DataFrame]:
    """Each record with `__month`, the month it is first sent; closing engagements appear twice."""
    frames = {name: _read(folder, name) for name in RECORD_TYPES}
    engagements = frames["engagement"].with_columns(_month("start_date").alias("__month"), _month("end_date").alias("__end"))
    opened = engagements.with_columns(
        pl.when(pl.col("__end") > pl.col("__month")).then(pl.lit("")).otherwise(pl.col("end_date")).alias("end_date"),
        pl.when(pl.col("__end") > pl.col("__month")).then(pl.lit("")).otherwise(pl.col("end_reason")).alias("end_reason"),
    )
    closed = engagements.filter(pl.col("__end") > pl.col("__month")).with_columns(pl.col("__end").alias("__month"))
    first_month = engagements.group_by("client_ref").agg(pl.col("__month").min().alias("__month"))
    # Sent once there is something to send about them, and never before the dates they carry.
    clients = frames["client"].join(first_month, on="client_ref", how="left").with_columns(
        pl.max_horizontal(pl.col("__month").fill_null("0000-00"), _month("notified_of_sharing_on").fill_null("0000-00")).alias("__month"))
    dependants = frames["dependant"].join(clients.select("client_ref", pl.col("__month").alias("__client_month")), on="client_ref", how="left").with_columns(
        pl.max_horizontal(pl.col("__client_month").fill_null("0000-00"), _month("date_of_birth").fill_null("0000-00")).alias("__month")).drop("__client_month")
    result = {
        "client": clients,
        "dependant": dependants,
        "engagement": pl.concat([opened.drop("__end"), closed.drop("__end")]),
    }
    for name, column in WHEN.items():
        result[name] = frames[name].with_columns(_month(column).alias("__month"))
    return result


def _csv_bytes(frame: pl.DataFrame, record: str) -> bytes:
    buffer = io.StringIO()
    frame.select(RECORD_TYPES[record].columns).write_csv(buffer)
    return buffer.getvalue().encode("utf-8")


def _month_number(column: str) -> pl.Expr:
    return pl.col(column).str.slice(0, 4).cast(pl.Int32) * 12 + pl.col(column).str.slice(5, 2).cast(pl.Int32)


def plan_provider(folder: Path, schedule: list[dict[str, str]]) -> list[ReplayPlan]:
    """One provider's submissions: each record goes in the first received month at or after its own."""
    received = sorted((r for r in schedule if r["received"]), key=lambda r: r["period"])
    if not received:
        return []
    periods = pl.DataFrame({"__send": [r["period"] for r in received]}).with_columns(_month_number("__send").alias("__n"))
    batches: dict[str, dict[str, pl.DataFrame]] = {r["period"]: {} for r in received}
    for name, frame in provider_months(folder).items():
        timed = frame.with_columns(_month_number("__month").fill_null(0).alias("__n")).sort("__n")
        # A record from before the first received month goes with that first submission.
        sent = timed.join_asof(periods, on="__n", strategy="forward").with_columns(pl.col("__send").fill_null(""))
        for (period,), part in sent.partition_by("__send", as_dict=True).items():
            if period:
                batches[period][name] = part
    plans = []
    for row in received:
        files = []
        for name, rt in RECORD_TYPES.items():
            part = batches[row["period"]].get(name)
            files.append(SourceFile(rt.file_name, _csv_bytes(part if part is not None else pl.DataFrame(schema={c: pl.String for c in rt.columns}), name)))
        at = datetime.combine(datetime.fromisoformat(row["received"]).date(), time(10, 0), NZ)
        plans.append(ReplayPlan(folder.name, row["period"], at, files))
    return plans


def read_schedule(root: Path, until: str | None = None) -> dict[str, list[dict[str, str]]]:
    """registry/schedule.csv by provider (periods after `until` left out)."""
    with (root / "registry" / "schedule.csv").open(encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if until is None or r["period"] <= until]
    by_provider: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_provider.setdefault(row["provider"], []).append(row)
    return by_provider


def plan_replay(root: Path, until: str | None = None) -> list[ReplayPlan]:
    """Every scheduled submission with a received date, in the order they were received."""
    plans = [plan for provider, rows in read_schedule(root, until).items() for plan in plan_provider(root / provider, rows)]
    plans.sort(key=lambda p: (p.received_at, p.provider))
    return plans


def replay(engine: Engine, root: Path, *, until: str | None = None, progress: Callable[[int, int], None] | None = None) -> list[Receipt]:
    plans = plan_replay(root, until)
    receipts = []
    for done, plan in enumerate(plans, start=1):
        receipts.append(submit(engine, provider=plan.provider, files=plan.files, period=plan.period, submitter=f"{plan.provider} case system",
                               channel="replay", received_at=plan.received_at))
        if progress:
            progress(done, len(plans))
    return receipts


def replay_provider(settings, root: str, provider: str, rows: list[dict[str, str]]) -> dict[str, int]:
    """Replay one provider's history in its own process (providers are independent of each other)."""
    from cldx.identity.vault import open_store

    engine = open_store(settings)
    totals = {"submissions": 0, "new": 0, "changed": 0, "unchanged": 0, "warned": 0, "rejected": 0}
    try:
        for plan in plan_provider(Path(root) / provider, rows):
            receipt = submit(engine, provider=plan.provider, files=plan.files, period=plan.period, submitter=f"{plan.provider} case system",
                             channel="replay", received_at=plan.received_at)
            totals["submissions"] += 1
            for key, value in receipt.counts.items():
                totals[key] += value
    finally:
        engine.dispose()
    return totals
