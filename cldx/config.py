"""One settings object for the whole of cldx, read from `CLDX_*` environment variables.

Built once at the edge (the CLI or the web app) and passed down; parts never read the
environment themselves. Secrets can be given as `CLDX_<NAME>_FILE` pointing at a file.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """cldx configuration; every field is documented in docs/settings.md."""

    model_config = SettingsConfigDict(env_prefix="CLDX_", extra="ignore")

    database_url: str = Field(
        "sqlite:///cldx.db",
        description="SQLAlchemy URL of the store: SQLite (embedded default) or postgresql+psycopg://...",
    )
    max_upload_bytes: int = Field(
        200 * 1024 * 1024, description="Largest upload the web app accepts, in bytes."
    )
    max_batch_records: int = Field(
        50_000, description="Most records one JSON batch to the API may hold (it is processed in the request; larger sets go as files, which are queued)."
    )
    sign_in_window_seconds: int = Field(
        300, gt=0, description="The sliding window the sign-in limits count over, in seconds."
    )
    sign_in_attempts_per_address: int = Field(
        50, gt=0, description="Failed (or in-flight) sign-in attempts one client address may make per window; also its failed API tokens. Then 429."
    )
    sign_in_attempts_per_username: int = Field(
        20, gt=0, description="Failed (or in-flight) sign-in attempts per username per window, from anywhere (above the lock-out's 10 in a row). Then 429."
    )
    trusted_proxies: str = Field(
        "", description="Comma-separated addresses or networks of reverse proxies whose X-Forwarded-Proto and X-Forwarded-For are believed; empty: none."
    )
    submissions_per_process: int = Field(
        1, gt=0, description="Submissions one web server process validates and stores at once; more wait their turn. Several at once in one process only take turns at Python's interpreter lock: for more at once, run more processes (uvicorn --workers)."
    )
    queue_threshold_bytes: int = Field(
        2 * 1024 * 1024, description="Uploads larger than this go to the background worker instead of being processed in the request."
    )
    embedded_worker: bool = Field(
        True, description="Run a queue worker thread inside the web app (the embedded default needs no other process)."
    )
    job_stale_seconds: float = Field(
        60.0, gt=0, description="A running job whose worker has not refreshed its lock for this long is taken by another worker (workers refresh it every quarter of this, at least every 5 s; a worker on the same host takes a dead worker's job at once)."
    )
    timezone: str = Field("Pacific/Auckland", description="Time zone times are shown in (they are stored in UTC).")
    today: date | None = Field(
        None,
        description="The day taken as today for what is due (the provider portal's due dates, compliance's months due, the upload form's month); blank: the real date. The demo's data ends in 2018, so `make demo` sets it to just after its last submission.",
    )
    key_file: Path = Field(
        Path("cldx-keys.json"),
        description="The data keys that encrypt names, dates of birth, quarantined rows and queued files (created by `cldx init`, owner-only; back it up apart from the database).",
    )
    linkage_secret_file: Path = Field(
        Path("cldx-linkage.json"),
        description="The secret that keys person pseudonyms (created by `cldx init`, owner-only; keep it apart from the data and never change it).",
    )

    analytic_dir: Path = Field(
        Path("cldx-analytic"),
        description="Where the analytic layer (pseudonymised Parquet copy of the records, one file per table and provider) is kept; rebuilt from the store when missing.",
    )
    retention_years: int = Field(
        7, ge=1, description="How many years records are kept after their last activity; `cldx retention apply` purges what is older (cldx.store.retention)."
    )

    def now(self) -> datetime:
        """The current instant in UTC, or, with `today` set, this time of day on that day in `timezone`."""
        real = datetime.now(UTC)
        if self.today is None:
            return real
        zone = ZoneInfo(self.timezone)
        return datetime.combine(self.today, real.astimezone(zone).time(), zone).astimezone(UTC)

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with the psycopg 3 driver named, so `postgresql://` works as people write it."""
        url = self.database_url
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix):]
        return url


def get_settings() -> Settings:
    return Settings()
