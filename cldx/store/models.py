"""SQLAlchemy models: the registry, submissions, users, and the six record types.

Record tables hold only analytic values (birth year and month, codes, dates of service); the
names and exact dates of birth of clients and dependants live in `client_identity` and
`dependant_identity`, so an analytic query can never pick them up by accident. Records are
keyed within their provider by the standard's natural keys, and tables refer to each other by
those keys (provider_id + client_ref ...) so bulk loads need no id look-ups.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations can find constraints again on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always come back timezone-aware.

    SQLite keeps no zone; this makes both backends hand back the same aware UTC value.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type:
        """datetime: SQLAlchemy's TypeDecorator says `object`, and the bulk reader (cldx.store.bulk) would read a time as a number."""
        return datetime

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a zone first")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# --- The registry -----------------------------------------------------------------------


class Provider(Timestamps, Base):
    __tablename__ = "provider"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(String(2))
    ta_code: Mapped[str | None] = mapped_column(String(3))
    # False: the provider de-identifies on its own machine and sends only the linkage key.
    sends_identity: Mapped[bool] = mapped_column(Boolean, default=True)


class ServiceLine(Timestamps, Base):
    __tablename__ = "service_line"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    min_client_age: Mapped[int | None] = mapped_column(Integer)
    max_client_age: Mapped[int | None] = mapped_column(Integer)


class Contract(Timestamps, Base):
    __tablename__ = "contract"
    __table_args__ = (
        CheckConstraint("period_end >= period_start", name="period_order"),
        CheckConstraint("due_day BETWEEN 1 AND 28", name="due_day_range"),
        CheckConstraint("funding_nzd >= 0", name="funding_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contract_ref: Mapped[str] = mapped_column(String(40), unique=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"), index=True)
    service_line_id: Mapped[int] = mapped_column(ForeignKey("service_line.id"), index=True)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    funding_nzd: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    # The brief's contract clause: payment is tied to providing client-level data.
    data_clause: Mapped[bool] = mapped_column(Boolean, default=True)
    collection_start: Mapped[date | None] = mapped_column(Date)
    wave: Mapped[int] = mapped_column(Integer, default=1)
    reporting_frequency: Mapped[str] = mapped_column(String(20), default="monthly")
    due_day: Mapped[int] = mapped_column(Integer, default=20)


# --- Submissions and people ---------------------------------------------------------------


class Submission(Base):
    """A provider's records for a reporting period, as one receipt."""

    __tablename__ = "submission"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitter: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(20))  # cli, api, web, replay
    # queued, processing, accepted (all stored), partial (some rejected), refused (strict), failed
    status: Mapped[str] = mapped_column(String(20))
    # "partial": store the valid records; "all-or-nothing": store nothing when anything fails.
    mode: Mapped[str] = mapped_column(String(20), default="partial")
    standard_version: Mapped[str] = mapped_column(String(10))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    n_new: Mapped[int] = mapped_column(Integer, default=0)
    n_changed: Mapped[int] = mapped_column(Integer, default=0)
    n_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    n_warned: Mapped[int] = mapped_column(Integer, default=0)
    n_rejected: Mapped[int] = mapped_column(Integer, default=0)


class SubmissionFile(Base):
    __tablename__ = "submission_file"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    record_type: Mapped[str | None] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)


class SubmissionFinding(Base):
    """One finding of a submission, as the provider's report shows it."""

    __tablename__ = "submission_finding"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"), index=True)
    file: Mapped[str] = mapped_column(String(255))
    sheet: Mapped[str | None] = mapped_column(String(100))
    row: Mapped[int | None] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(String(100))
    value: Mapped[str | None] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(10))
    message: Mapped[str] = mapped_column(Text)
    fix: Mapped[str] = mapped_column(Text)


class QuarantinedRow(Base):
    """A rejected row kept exactly as sent, so nothing a provider sends is lost."""

    __tablename__ = "quarantined_row"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"), index=True)
    record_type: Mapped[str] = mapped_column(String(20))
    file: Mapped[str] = mapped_column(String(255))
    sheet: Mapped[str | None] = mapped_column(String(100))
    row: Mapped[int] = mapped_column(Integer)
    # The row's cells by column as JSON, sealed (it may hold names): see cldx.identity.vault.
    cells: Mapped[str] = mapped_column(Text)


class RecordHistory(Base):
    """What a record looked like before a submission changed or withdrew it."""

    __tablename__ = "record_history"
    __table_args__ = (
        Index("ix_record_history_record", "record_type", "record_id"),
        # The analytic layer's "was anything corrected since?" question (migration 0010).
        Index("ix_record_history_corrected", "provider_id", "id",
              postgresql_where=text("change = 'corrected'"), sqlite_where=text("change = 'corrected'")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    record_type: Mapped[str] = mapped_column(String(20))
    record_id: Mapped[int] = mapped_column(BigInteger)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"))
    submission_id: Mapped[str] = mapped_column(ForeignKey("submission.id"))
    change: Mapped[str] = mapped_column(String(20))  # changed, withdrawn, reinstated
    # The analytic values before the change, as JSON (identity values are never copied here).
    previous: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Job(Base):
    """Work waiting for the ingest worker; the queue lives in the database, so no other service is needed."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued, running, done, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    progress_step: Mapped[str] = mapped_column(String(100), default="")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobFile(Base):
    """An uploaded file waiting in the queue (deleted once its job is done)."""

    __tablename__ = "job_file"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    data: Mapped[bytes] = mapped_column(LargeBinary)  # sealed bytes: an upload holds names


class User(Timestamps, Base):
    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320))
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2id
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The TOTP secret, sealed like identity (a shared secret, not a hash); null until enrolled.
    totp_secret: Mapped[str | None] = mapped_column(Text)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)  # a code is accepted once
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A bearer token: shown once, stored as its SHA-256 (it is 256 random bits, so no slow hash is needed)."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # system (one provider's case system) or personal (a user's roles)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists so a token can be recognised
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("provider.id"))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebSession(Base):
    """A signed-in browser: the cookie holds a random id, the store its SHA-256 (so a leaked table signs nobody in)."""

    __tablename__ = "web_session"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    second_factor_done: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """One entry of the append-only audit trail; `hash` chains it to the entry before (see cldx.access.audit)."""

    __tablename__ = "audit_event"
    # Two entries can never chain to the same one: a forked trail is refused by the database itself.
    __table_args__ = (Index("uq_audit_event_prev_hash", "prev_hash", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100), index=True)  # username, token name, or "system"
    action: Mapped[str] = mapped_column(String(60), index=True)  # sign-in, sign-in-failed, identity-read, export, ...
    target: Mapped[str] = mapped_column(String(255), default="")
    provider_id: Mapped[int | None] = mapped_column(BigInteger)  # no FK: the trail outlives what it names
    purpose: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class UserRole(Base):
    __tablename__ = "user_role"
    __table_args__ = (UniqueConstraint("user_id", "role", "provider_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(30))
    # Provider roles are bound to one provider organisation; ministry roles leave this empty.
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("provider.id"))


# --- Provider records (analytic part) ---------------------------------------------------


class RecordColumns:
    """What every provider record carries besides its own fields.

    Foreign keys cost a check per row written, which on PostgreSQL is most of the bulk load's
    time, so a record keeps only those that say something: a child record's composite key to
    its parent (which also pins its provider to the parent's). No record has a key to its first
    or last submission: the submission is written by the same transaction and never deleted
    (retention keeps receipts), and checking it for every row was a fifth of PostgreSQL's work
    for a submission (migrations 0004 and 0012). Nor to reference rows that are never deleted
    (migration 0013): a client to its provider (the one its submission is stored under), an
    engagement to its service line (checked against the registry before storing); each check
    share-locked the row it found, and every provider's engagements locked the same few.
    """

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_id: Mapped[int] = mapped_column(BigId)

    first_submission_id: Mapped[str | None] = mapped_column(String(36))
    last_submission_id: Mapped[str | None] = mapped_column(String(36))

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Client(RecordColumns, Base):
    __tablename__ = "client"
    __table_args__ = (UniqueConstraint("provider_id", "client_ref"),)

    client_ref: Mapped[str] = mapped_column(String(40))
    # Keyed linkage pseudonym (HMAC of the SLK-581): set by the identity part.
    person_key: Mapped[str | None] = mapped_column(String(64), index=True)
    birth_year_month: Mapped[str | None] = mapped_column(String(7))  # YYYY-MM
    gender: Mapped[str] = mapped_column(String(2))
    primary_ethnicity: Mapped[str] = mapped_column(String(5))
    iwi_1: Mapped[str | None] = mapped_column(String(4))
    iwi_2: Mapped[str | None] = mapped_column(String(4))
    iwi_3: Mapped[str | None] = mapped_column(String(4))
    area: Mapped[str] = mapped_column(String(6))
    notified_of_sharing_on: Mapped[date | None] = mapped_column(Date)
    identity_consent: Mapped[bool] = mapped_column(Boolean, default=True)


class Dependant(RecordColumns, Base):
    __tablename__ = "dependant"
    __table_args__ = (
        UniqueConstraint("provider_id", "dependant_ref"),
        ForeignKeyConstraint(["provider_id", "client_ref"], ["client.provider_id", "client.client_ref"]),
    )

    dependant_ref: Mapped[str] = mapped_column(String(40))
    client_ref: Mapped[str] = mapped_column(String(40))
    birth_year_month: Mapped[str | None] = mapped_column(String(7))
    relationship: Mapped[str] = mapped_column(String(20))


class Engagement(RecordColumns, Base):
    __tablename__ = "engagement"
    __table_args__ = (
        UniqueConstraint("provider_id", "engagement_ref"),
        ForeignKeyConstraint(["provider_id", "client_ref"], ["client.provider_id", "client.client_ref"]),
        Index("ix_engagement_provider_client", "provider_id", "client_ref"),
    )

    engagement_ref: Mapped[str] = mapped_column(String(40))
    client_ref: Mapped[str] = mapped_column(String(40))
    service_code: Mapped[str] = mapped_column(String(20))  # a service line's code
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    end_reason: Mapped[str | None] = mapped_column(String(20))


_ENGAGEMENT_FK = (["provider_id", "engagement_ref"], ["engagement.provider_id", "engagement.engagement_ref"])


class Attendance(RecordColumns, Base):
    __tablename__ = "attendance"
    __table_args__ = (
        UniqueConstraint("provider_id", "engagement_ref", "session_date"),
        ForeignKeyConstraint(*_ENGAGEMENT_FK),
    )

    engagement_ref: Mapped[str] = mapped_column(String(40))
    session_date: Mapped[date] = mapped_column(Date)
    attended: Mapped[bool] = mapped_column(Boolean)
    duration_minutes: Mapped[int | None] = mapped_column(Integer)


class Assessment(RecordColumns, Base):
    __tablename__ = "assessment"
    __table_args__ = (
        UniqueConstraint("provider_id", "engagement_ref", "phase", "instrument", "domain"),
        ForeignKeyConstraint(*_ENGAGEMENT_FK),
    )

    engagement_ref: Mapped[str] = mapped_column(String(40))
    phase: Mapped[str] = mapped_column(String(4))
    instrument: Mapped[str] = mapped_column(String(20))
    domain: Mapped[str] = mapped_column(String(40))
    score: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    assessed_on: Mapped[date] = mapped_column(Date)


class Outcome(RecordColumns, Base):
    __tablename__ = "outcome"
    __table_args__ = (
        UniqueConstraint("provider_id", "engagement_ref", "dimension", "measure"),
        ForeignKeyConstraint(*_ENGAGEMENT_FK),
    )

    engagement_ref: Mapped[str] = mapped_column(String(40))
    dimension: Mapped[str] = mapped_column(String(20))
    measure: Mapped[str] = mapped_column(String(40))
    baseline: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    result: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    better_off: Mapped[bool] = mapped_column(Boolean)
    measured_on: Mapped[date] = mapped_column(Date)


# --- Identity: names and exact dates of birth, apart from the analytic tables ---------------


class ClientIdentity(Base):
    """A client's name and exact date of birth, readable only by its provider and the privacy officer."""

    __tablename__ = "client_identity"
    __table_args__ = (
        ForeignKeyConstraint(
            ["provider_id", "client_ref"], ["client.provider_id", "client.client_ref"], ondelete="CASCADE"
        ),
    )

    provider_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_ref: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Sealed values (`enc1:<key id>:...`, see cldx.identity.vault): never plain text at rest.
    family_name: Mapped[str | None] = mapped_column(Text)
    given_names: Mapped[str | None] = mapped_column(Text)
    date_of_birth: Mapped[str | None] = mapped_column(Text)  # sealed ISO date


class DependantIdentity(Base):
    __tablename__ = "dependant_identity"
    __table_args__ = (
        ForeignKeyConstraint(
            ["provider_id", "dependant_ref"], ["dependant.provider_id", "dependant.dependant_ref"], ondelete="CASCADE"
        ),
    )

    provider_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dependant_ref: Mapped[str] = mapped_column(String(40), primary_key=True)
    family_name: Mapped[str | None] = mapped_column(Text)  # sealed, as in client_identity
    given_names: Mapped[str | None] = mapped_column(Text)
    date_of_birth: Mapped[str | None] = mapped_column(Text)


class PrivacyRequest(Base):
    """A Privacy Act request (access to or correction of what is held about a person) and its outcome."""

    __tablename__ = "privacy_request"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)  # PA-2026-0001
    kind: Mapped[str] = mapped_column(String(20))  # access, correction
    # Who the request is about (names, date of birth) as JSON, sealed like the identity store.
    subject: Mapped[str] = mapped_column(Text)
    received_on: Mapped[date] = mapped_column(Date)
    opened_by: Mapped[str] = mapped_column(String(100))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open, closed
    outcome: Mapped[str] = mapped_column(Text, default="")
    closed_by: Mapped[str | None] = mapped_column(String(100))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)



class ResearchExtract(Base):
    """A request for a de-identified research (IDI) extract: who asked, for what, who decided, what left.

    The pseudonym key the extract was made with is never stored: two extracts cannot be joined to
    each other or to the live store, and the same extract cannot be made twice (`produced` is final).
    """

    __tablename__ = "research_extract"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)  # RX-2026-0001
    purpose: Mapped[str] = mapped_column(Text)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)  # inclusive
    k: Mapped[int] = mapped_column(Integer)
    date_precision: Mapped[str] = mapped_column(String(10))  # month, quarter, year
    status: Mapped[str] = mapped_column(String(20), default="requested")  # requested, approved, refused, produced
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_by_user_id: Mapped[int | None] = mapped_column(Integer)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_by_user_id: Mapped[int | None] = mapped_column(Integer)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str] = mapped_column(Text, default="")
    produced_by: Mapped[str | None] = mapped_column(String(100))
    produced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # SHA-256 of the extract's manifest.json (which holds every file's checksum): what left, exactly.
    manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    # JSON: row counts per table and the k-anonymity summary, for the request's page.
    summary: Mapped[str] = mapped_column(Text, default="")

# Record type name (as in the standard) -> its analytic model.
RECORD_MODELS: dict[str, type[Base]] = {
    "client": Client,
    "dependant": Dependant,
    "engagement": Engagement,
    "attendance": Attendance,
    "assessment": Assessment,
    "outcome": Outcome,
}

IDENTITY_MODELS: dict[str, type[Base]] = {"client": ClientIdentity, "dependant": DependantIdentity}

