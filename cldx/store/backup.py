"""Backups of the store and restoring them, each checked against a manifest of what was backed up.

A backup is a folder (owner-only) holding one dump of the database and `manifest.json`: the
cldx version, schema revision, backend, time, every table's row count and content hash, the
audit chain's length and head hash, and the dump's size and SHA-256. It never holds the key file
or the linkage secret: those are kept apart (`keys_out` copies them to another folder), so a
stolen backup alone reveals no names and links no one.

- SQLite: an online copy through SQLite's backup API, made while the app runs and writes. The
  copy is read inside one read transaction held across every step, so it is one consistent
  snapshot (in WAL mode the writers carry on meanwhile and the copy never restarts).
- PostgreSQL: `pg_dump --format=custom` under a snapshot exported by the transaction that also
  counts and hashes the tables, so the manifest describes exactly what the dump holds.

Restoring refuses a dump whose SHA-256 differs from the manifest's and a target that is not
empty, then checks the restored store against the manifest: the same tables, row counts,
content hashes, schema revision, and audit chain (intact, same length, same head).

How an audit chain is checked belongs to `cldx.access`, which this part may not import: callers
pass `cldx.access.audit.verify` as `verify_audit`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal
from glob import glob
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cldx import __version__

from .db import make_engine
from .scope import APP_ROLE

FORMAT = "cldx-backup-1"
MANIFEST = "manifest.json"
DUMP_FILES = {"sqlite": "cldx.sqlite3", "postgresql": "cldx.pgdump"}
KEYS_NOTE = ("This backup holds no key file and no linkage secret. Restore them apart from it: without the key file "
             "names and dates of birth cannot be read, without the linkage secret new records no longer link.")
# Pages copied per step of SQLite's backup API (4 MiB at the default page size): small enough
# for steady progress, large enough that stepping costs nothing.
SQLITE_STEP_PAGES = 1024

Progress = Callable[[str, int | None, int | None], None]
"""Told what is happening: (description, done, total); done and total are None for a step that cannot be measured."""


class ChainCheck(Protocol):
    """What `cldx.access.audit.verify` returns, as far as a backup needs it."""

    count: int
    head_hash: str
    problems: list

    @property
    def ok(self) -> bool: ...


AuditVerifier = Callable[[Session], ChainCheck]


class BackupError(RuntimeError):
    """A backup or restore could not be made: something could not be read or written (the CLI exits 2)."""


class DamagedBackup(BackupError):
    """The backup folder's manifest is missing or unreadable, or the dump differs from what it records."""


class TargetNotEmpty(BackupError):
    """The database to restore into already holds tables."""


class ToolMissing(BackupError):
    """pg_dump or pg_restore was not found."""


class KeysNotCopied(BackupError):
    """The backup was written, but copying the key files apart failed."""


# --- What a store holds ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TableFacts:
    rows: int
    sha256: str  # of the rows in primary-key order, each as canonical JSON


@dataclass
class StoreFacts:
    """What a manifest records of a store, read in one snapshot."""

    schema_revision: str | None
    tables: dict[str, TableFacts]
    audit_entries: int
    audit_head_hash: str
    audit_intact: bool
    audit_problems: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables.values())


def read_facts(connection: Connection, *, verify_audit: AuditVerifier, progress: Progress | None = None) -> StoreFacts:
    """Count and hash every table and check the audit chain, all inside the connection's transaction."""
    inspector = inspect(connection)
    names = sorted(inspector.get_table_names())
    tables = {}
    for done, name in enumerate(names):
        if progress:
            progress(f"counting and hashing {name}", done, len(names))
        tables[name] = _table_facts(connection, name, inspector.get_pk_constraint(name).get("constrained_columns") or [])
    if progress:
        progress("checking the audit chain", len(names), len(names))
    revision = MigrationContext.configure(connection).get_current_revision()
    if "audit_event" in tables:
        with Session(bind=connection) as session:
            chain = verify_audit(session)
        entries, head, intact, problems = chain.count, chain.head_hash, chain.ok, [str(getattr(p, "message", p)) for p in chain.problems]
    else:
        entries, head, intact, problems = 0, "", True, []
    return StoreFacts(revision, tables, entries, head, intact, problems)


def _table_facts(connection: Connection, name: str, primary_key: list[str]) -> TableFacts:
    quote_name = connection.dialect.identifier_preparer.quote
    order = primary_key or [c["name"] for c in inspect(connection).get_columns(name)]
    query = f"SELECT * FROM {quote_name(name)} ORDER BY {', '.join(quote_name(c) for c in order)}"
    digest, rows = hashlib.sha256(), 0
    # Raw driver values, streamed: the same backend and driver read the backup and the restored
    # store, so equal content gives equal text.
    result = connection.execution_options(stream_results=True).exec_driver_sql(query)
    for batch in result.partitions(5000):
        for row in batch:
            digest.update(json.dumps([_plain(v) for v in row], separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode())
            digest.update(b"\n")
        rows += len(batch)
    return TableFacts(rows, digest.hexdigest())


def _plain(value: Any) -> Any:
    """A value as JSON can hold it, the same whatever the session's time zone."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes:" + bytes(value).hex()
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return "decimal:" + str(value)
    if isinstance(value, (dict, list)):
        return value
    return str(value)


# --- Backing up -----------------------------------------------------------------------------------


@dataclass
class BackupResult:
    folder: Path
    dump: Path
    manifest: dict[str, Any]
    facts: StoreFacts
    keys_copied: list[Path] = field(default_factory=list)


def backup(
    *,
    url: str,
    out_dir: Path,
    verify_audit: AuditVerifier,
    keys_out: Path | None = None,
    key_files: Sequence[Path] = (),
    progress: Progress | None = None,
) -> BackupResult:
    """Write a backup of the store at `url` into the new (or empty) folder `out_dir`.

    The folder is made owner-only and must be empty, so a backup never mixes with other files
    (such as a key file). `keys_out` copies `key_files` to a folder apart from the backup.
    Raises BackupError (and leaves no partial backup) when something cannot be read or written.
    """
    backend = _backend(url)
    out_dir = Path(out_dir).absolute()
    if keys_out is not None:
        _check_keys_dir(Path(keys_out), out_dir, key_files)
    created = _prepare_folder(out_dir)
    dump = out_dir / DUMP_FILES[backend]
    try:
        if backend == "sqlite":
            facts, tool = _backup_sqlite(url, dump, verify_audit, progress)
        else:
            facts, tool = _backup_postgresql(url, dump, verify_audit, progress)
        if progress:
            progress("hashing the dump", None, None)
        manifest = {
            "format": FORMAT,
            "cldx_version": __version__,
            "schema_revision": facts.schema_revision,
            "backend": backend,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": make_url(url).render_as_string(hide_password=True),
            "tool": tool,
            "dump": {"file": dump.name, "bytes": dump.stat().st_size, "sha256": file_sha256(dump)},
            "tables": {name: {"rows": t.rows, "sha256": t.sha256} for name, t in facts.tables.items()},
            "audit": {"entries": facts.audit_entries, "head_hash": facts.audit_head_hash, "intact": facts.audit_intact,
                      "problems": facts.audit_problems},
            "keys": {"included": False, "note": KEYS_NOTE},
        }
        # Written last: a folder with a manifest holds a whole backup.
        _write_private(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    except BaseException:
        # The folder was empty: whatever is in it now (dump, journal, manifest) is this attempt's.
        for leftover in out_dir.iterdir():
            leftover.unlink(missing_ok=True)
        if created:
            out_dir.rmdir()
        raise
    copied = []
    if keys_out is not None:
        try:
            copied = copy_keys(key_files=key_files, keys_dir=Path(keys_out), data_dir=out_dir)
        except BackupError as exc:
            raise KeysNotCopied(f"the backup in {out_dir} is whole, but the key files were not copied: {exc}") from None
    return BackupResult(out_dir, dump, manifest, facts, copied)


def _backend(url: str) -> str:
    backend = make_url(url).get_backend_name()
    if backend not in DUMP_FILES:
        raise BackupError(f"cannot back up a {backend} database: cldx stores are SQLite or PostgreSQL")
    return backend


def _prepare_folder(folder: Path) -> bool:
    """Make `folder` owner-only, creating it if need be; refuse one that holds anything. True if created."""
    if folder.exists():
        if not folder.is_dir():
            raise BackupError(f"{folder} exists and is not a folder")
        if any(folder.iterdir()):
            raise BackupError(f"{folder} is not empty: give a new or empty folder, so the backup mixes with nothing else")
        created = False
    else:
        try:
            folder.mkdir(parents=True, mode=0o700)
        except OSError as exc:
            raise BackupError(f"cannot create {folder}: {exc.strerror}") from None
        created = True
    folder.chmod(0o700)
    return created


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError(f"{url} is not an SQLite file cldx can back up or restore")
    return Path(database).absolute()


def _backup_sqlite(url: str, dump: Path, verify_audit: AuditVerifier, progress: Progress | None) -> tuple[StoreFacts, str]:
    source_path = _sqlite_path(url)
    if not source_path.is_file():
        raise BackupError(f"no SQLite store at {source_path}")
    _create_private(dump)
    try:
        source = sqlite3.connect(source_path, isolation_level=None, timeout=30)
        target = sqlite3.connect(dump, isolation_level=None)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {source_path}: {exc}") from None
    try:
        source.execute("PRAGMA query_only = ON")
        # One read transaction across every step: all pages come from one snapshot, and the
        # backup is not restarted by the writers committing meanwhile (WAL lets them carry on).
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()

        def step(_status: int, remaining: int, total: int) -> None:
            if progress:
                progress("copying the database", total - remaining, total)

        source.backup(target, pages=SQLITE_STEP_PAGES, progress=step)
        source.execute("COMMIT")
        # A rollback journal, not WAL: the dump is one self-contained file that opens read-only.
        target.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {source_path}: {exc}") from None
    finally:
        source.close()
        target.close()
    # The manifest describes the copy itself, which is exactly what a restore will hold.
    return _facts_of_sqlite_file(dump, verify_audit, progress), f"SQLite {sqlite3.sqlite_version} backup API"


def _facts_of_sqlite_file(path: Path, verify_audit: AuditVerifier, progress: Progress | None) -> StoreFacts:
    # A plain engine, read-only: cldx's own would switch the file to WAL.
    engine = create_engine(f"sqlite:///file:{quote(str(path))}?mode=ro&uri=true")
    try:
        with engine.connect() as connection, connection.begin():
            return read_facts(connection, verify_audit=verify_audit, progress=progress)
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot read {path}: {exc.__cause__ or exc}") from None
    finally:
        engine.dispose()


def _backup_postgresql(url: str, dump: Path, verify_audit: AuditVerifier, progress: Progress | None) -> tuple[StoreFacts, str]:
    pg_dump = find_pg_tool("pg_dump")
    engine = make_engine(url, default_scope="all")
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection, connection.begin():
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            snapshot = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
            bypasses = connection.exec_driver_sql(
                "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").scalar_one()
            facts = read_facts(connection, verify_audit=verify_audit, progress=progress)
            if progress:
                progress("pg_dump", None, None)
            # pg_dump reads the snapshot this transaction exported, so it dumps exactly what was
            # counted and hashed above, whatever is committed meanwhile.
            arguments = ["--format=custom", f"--snapshot={snapshot}", f"--file={dump}"]
            if not bypasses:
                # A role that row-level security applies to would make pg_dump fail; let it read
                # with the policies on, in the ministry-wide scope that lets every row through.
                arguments.append("--enable-row-security")
            _run_pg_tool(pg_dump, arguments, url, options="-c cldx.scope=all")
            dump.chmod(0o600)
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot read the store at {make_url(url).render_as_string(hide_password=True)}: {exc.__cause__ or exc}") from None
    finally:
        engine.dispose()
    version = subprocess.run([pg_dump, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return facts, version


# --- The key files, kept apart --------------------------------------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_keys_dir(keys_dir: Path, data_dir: Path, key_files: Sequence[Path]) -> None:
    keys_dir, data_dir = keys_dir.resolve(), data_dir.resolve()
    if _inside(keys_dir, data_dir) or _inside(data_dir, keys_dir):
        raise BackupError(f"the key files' folder {keys_dir} must be apart from the backup folder {data_dir}, "
                          "not the same, inside it or around it: whoever gets one should not get both")
    if not key_files:
        raise BackupError("no key files given to copy")
    for path in map(Path, key_files):
        if not path.is_file():
            raise BackupError(f"key file {path} not found")
    for path in map(Path, key_files):
        target = keys_dir / path.name
        try:
            differs = target.exists() and target.read_bytes() != path.read_bytes()
        except OSError as exc:
            raise BackupError(f"cannot read {exc.filename}: {exc.strerror}") from None
        if differs:
            raise BackupError(f"{target} exists and differs from {path}: give another folder, so no older key file is lost")


def copy_keys(*, key_files: Sequence[Path], keys_dir: Path, data_dir: Path) -> list[Path]:
    """Copy the key file and linkage secret into `keys_dir` (owner-only), apart from the backup at `data_dir`.

    Refuses a folder that is, holds or sits in the backup folder, and never overwrites a
    different file of the same name (an older key file may hold keys older backups need).
    """
    keys_dir = Path(keys_dir).absolute()
    _check_keys_dir(keys_dir, Path(data_dir).absolute(), key_files)
    try:
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        keys_dir.chmod(0o700)
        copied = []
        for source in map(Path, key_files):
            data = source.read_bytes()
            target = keys_dir / source.name
            if target.exists():  # the same bytes: checked above
                target.chmod(0o600)
            else:
                _write_private(target, data)
            copied.append(target)
    except OSError as exc:
        raise BackupError(f"cannot copy the key files to {keys_dir}: {exc.strerror}") from None
    return copied


# --- Restoring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One comparison of the restored store with the manifest."""

    what: str
    expected: str
    found: str

    @property
    def ok(self) -> bool:
        return self.expected == self.found


@dataclass
class RestoreResult:
    manifest: dict[str, Any]
    facts: StoreFacts
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def read_manifest(backup_dir: Path) -> tuple[dict[str, Any], Path]:
    """The manifest of a backup folder and its dump, after checking the dump's size and SHA-256."""
    backup_dir = Path(backup_dir)
    try:
        manifest = json.loads((backup_dir / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DamagedBackup(f"{backup_dir} holds no {MANIFEST}: it is not a finished cldx backup") from None
    except (OSError, ValueError) as exc:
        raise DamagedBackup(f"cannot read {backup_dir / MANIFEST}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DamagedBackup(f"{backup_dir / MANIFEST} is not a {FORMAT} manifest")
    try:
        name, size, expected = manifest["dump"]["file"], manifest["dump"]["bytes"], manifest["dump"]["sha256"]
        backend, tables, audit = manifest["backend"], manifest["tables"], manifest["audit"]
    except (KeyError, TypeError) as exc:
        raise DamagedBackup(f"{backup_dir / MANIFEST} lacks {exc}") from None
    if backend not in DUMP_FILES or name != DUMP_FILES[backend] or not isinstance(tables, dict) or not isinstance(audit, dict):
        raise DamagedBackup(f"{backup_dir / MANIFEST} names an unknown backend or dump")
    dump = backup_dir / name
    try:
        actual_size = dump.stat().st_size
        actual = file_sha256(dump)
    except OSError as exc:
        raise DamagedBackup(f"cannot read the dump {dump}: {exc.strerror}") from None
    if actual_size != size or actual != expected:
        raise DamagedBackup(f"the dump {dump} is not the one the manifest records (SHA-256 {actual}, {actual_size:,} bytes; "
                            f"expected {expected}, {size:,} bytes): it was changed or damaged, so it is not restored")
    return manifest, dump


def restore(
    *,
    url: str,
    backup_dir: Path,
    verify_audit: AuditVerifier,
    force: bool = False,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore the backup in `backup_dir` into the empty store at `url`, then check it against the manifest.

    Refuses (DamagedBackup) before touching the target when the dump's SHA-256 differs from the
    manifest's, and (TargetNotEmpty) when the target holds tables. `force` lets an SQLite target
    be replaced whole (the backup API swaps every page in one transaction); a PostgreSQL target
    must be empty whatever `force` says, since restoring over tables would mix two stores.
    """
    if progress:
        progress("checking the dump's SHA-256", None, None)
    manifest, dump = read_manifest(backup_dir)
    backend = _backend(url)
    if backend != manifest["backend"]:
        raise BackupError(f"the backup is of a {manifest['backend']} store and cannot be restored into {backend}: "
                          f"restore it into a {manifest['backend']} store")
    if backend == "sqlite":
        path = _sqlite_path(url)
        _restore_sqlite(dump, path, force, progress)
        facts = _facts_of_sqlite_file(path, verify_audit, progress)
    else:
        _restore_postgresql(dump, url, progress)
        facts = _facts_of_postgresql(url, verify_audit, progress)
    return RestoreResult(manifest, facts, compare(manifest, facts))


def compare(manifest: dict[str, Any], facts: StoreFacts) -> list[Check]:
    """What the restored store should match: schema revision, tables, rows and content, audit chain."""
    expected_tables: dict[str, dict] = manifest["tables"]
    audit = manifest["audit"]
    checks = [
        Check("schema revision", str(manifest.get("schema_revision")), str(facts.schema_revision)),
        Check("tables", ", ".join(sorted(expected_tables)), ", ".join(sorted(facts.tables))),
    ]
    for name in sorted(set(expected_tables) | set(facts.tables)):
        want, got = expected_tables.get(name), facts.tables.get(name)
        checks.append(Check(f"{name} rows", str(want["rows"]) if want else "absent", str(got.rows) if got else "absent"))
        checks.append(Check(f"{name} content SHA-256", want["sha256"] if want else "absent", got.sha256 if got else "absent"))
    checks += [
        Check("audit entries", str(audit["entries"]), str(facts.audit_entries)),
        Check("audit head hash", str(audit["head_hash"]), facts.audit_head_hash),
        Check("audit chain intact", str(audit["intact"]), str(facts.audit_intact)),
    ]
    return checks


def _restore_sqlite(dump: Path, path: Path, force: bool, progress: Progress | None) -> None:
    if path.exists() and path.stat().st_size:
        objects = _sqlite_objects(path)
        if objects and not force:
            raise TargetNotEmpty(f"{path} already holds {objects} tables, indexes or triggers: restore into a new file "
                                 "(set CLDX_DATABASE_URL to it), or give --force to replace this store whole")
    elif not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(path)
    try:
        source = sqlite3.connect(f"file:{quote(str(dump))}?mode=ro", uri=True)
        target = sqlite3.connect(path, isolation_level=None, timeout=30)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {path}: {exc}") from None
    try:

        def step(_status: int, remaining: int, total: int) -> None:
            if progress:
                progress("copying into the store", total - remaining, total)

        # The whole target is written in one transaction: a failure leaves it as it was.
        source.backup(target, pages=SQLITE_STEP_PAGES, progress=step)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot restore into {path}: {exc}") from None
    finally:
        source.close()
        target.close()


def _sqlite_objects(path: Path) -> int:
    try:
        with closing(sqlite3.connect(path, timeout=30)) as connection:
            connection.execute("PRAGMA query_only = ON")
            return connection.execute("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchone()[0]
    except sqlite3.Error as exc:
        raise BackupError(f"cannot read {path}: {exc}") from None


# Anything in a schema of its own: a fresh database from `createdb` has none.
_PG_OBJECTS = """
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)')
     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))
"""


def _restore_postgresql(dump: Path, url: str, progress: Progress | None) -> None:
    pg_restore = find_pg_tool("pg_restore")
    where = make_url(url).render_as_string(hide_password=True)
    engine = make_engine(url)
    try:
        with engine.connect() as connection, connection.begin():
            objects = connection.exec_driver_sql(_PG_OBJECTS).scalar_one()
            if objects:
                raise TargetNotEmpty(
                    f"{where} already holds {objects} tables, sequences or functions: cldx restores only into an empty "
                    "PostgreSQL database (restoring over a store would mix the two or stop halfway). Create one "
                    "(createdb NAME), point CLDX_DATABASE_URL at it and restore again; --force does not change this")
            # The dump grants the application's role its privileges; the role belongs to the
            # cluster, not the database, so a new cluster may not have it yet (as migration 0006).
            connection.exec_driver_sql(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN "
                f"CREATE ROLE {APP_ROLE} NOLOGIN NOBYPASSRLS; END IF; END $$")
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot prepare {where} (create the database first, as a role that may create roles): "
                          f"{exc.__cause__ or exc}") from None
    finally:
        engine.dispose()
    if progress:
        progress("pg_restore", None, None)
    # One transaction: a restore that fails leaves the database empty, as it was.
    _run_pg_tool(pg_restore, ["--no-owner", "--exit-on-error", "--single-transaction", str(dump)], url)


def _facts_of_postgresql(url: str, verify_audit: AuditVerifier, progress: Progress | None) -> StoreFacts:
    engine = make_engine(url, default_scope="all")
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection, connection.begin():
            return read_facts(connection, verify_audit=verify_audit, progress=progress)
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot read the restored store: {exc.__cause__ or exc}") from None
    finally:
        engine.dispose()


# --- PostgreSQL's tools ---------------------------------------------------------------------------


def find_pg_tool(name: str) -> str:
    """The path of `name` (pg_dump, pg_restore): on PATH, else the newest in /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", Path(path).parent.parent.name))

    candidates = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), key=version, reverse=True)
    if candidates:
        return candidates[0]
    raise ToolMissing(f"{name} not found on PATH or in /usr/lib/postgresql/*/bin: install the PostgreSQL client tools "
                      "of the server's version or newer (Debian: apt install postgresql-client-15)")


def _run_pg_tool(tool: str, arguments: list[str], url: str, *, options: str | None = None) -> None:
    """Run a PostgreSQL client tool on the database at `url`; the password goes by environment, never argv."""
    target = make_url(url)
    env = dict(os.environ)
    if target.password is not None:
        env["PGPASSWORD"] = str(target.password)
    if options:
        env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} {options}".strip()
    conninfo = target.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    try:
        done = subprocess.run([tool, *arguments, f"--dbname={conninfo}"], env=env, capture_output=True, text=True,
                              check=False, umask=0o077)
    except OSError as exc:
        raise ToolMissing(f"cannot run {tool}: {exc.strerror}") from None
    if done.returncode != 0:
        raise BackupError(f"{Path(tool).name} failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


# --- Files ----------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _create_private(path: Path) -> None:
    """Create `path` empty and owner-only (SQLite then writes into it, keeping the mode)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise BackupError(f"cannot create {path}: {exc.strerror}") from None


def _write_private(path: Path, content: str | bytes) -> None:
    """Write `path` owner-only, atomically (a temporary file renamed into place)."""
    data = content.encode() if isinstance(content, str) else content
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
