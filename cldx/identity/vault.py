"""Keys and encryption at rest: the key file, the linkage secret, sealed values.

Identifying values (names, exact dates of birth, quarantined rows, queued files) are stored as
*sealed* values: AES-256-GCM under a data key from the key file, with the key's id in the
value itself, so `cldx keys rotate` can re-encrypt value by value while the service runs and
any reader still opens values sealed under an older key.

A sealed text value is `enc1:<key id>:<base64url(nonce + ciphertext + tag)>`; sealed bytes
are `enc1:<key id>:` followed by the raw nonce + ciphertext + tag. The associated data is the
value's place (`table.column`), so a value copied into another column does not open.

Two files, both created by `cldx init` when absent with owner-only permissions:
- the key file (`CLDX_KEY_FILE`): data keys, one of them current; older ones kept so values
  not yet re-encrypted still open, until `cldx keys purge` removes keys no value uses;
- the linkage secret (`CLDX_LINKAGE_SECRET_FILE`): the HMAC key of person pseudonyms, kept
  apart from the data keys because it must never rotate (a new secret would unlink everyone).

The store never sees a key: ingest seals before writing and opens after reading.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc1:"
_PREFIX_BYTES = PREFIX.encode()
NONCE_BYTES = 12
KEY_FILE_FORMAT = "cldx-keys-1"
LINKAGE_FILE_FORMAT = "cldx-linkage-1"


class KeysUnavailable(LookupError):
    """A sealed value names a key the key file does not hold (or the file is missing)."""


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, readable and writable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _new_key_id(taken: set[str]) -> str:
    while True:
        key_id = "k" + secrets.token_hex(4)
        if key_id not in taken:
            return key_id


@dataclass(frozen=True)
class DataKey:
    id: str
    key: bytes
    created: str


class KeyRing:
    """The data keys of one key file; re-reads the file when it changes (a rotation elsewhere)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mtime: int | None = None
        self._keys: dict[str, DataKey] = {}
        self._ciphers: dict[str, AESGCM] = {}
        self._current = ""
        self._load()

    # -- the file ---------------------------------------------------------------------------

    @staticmethod
    def create(path: Path) -> "KeyRing":
        """A new key file with one key; refuses to overwrite an existing file."""
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} already exists")
        key = DataKey(_new_key_id(set()), AESGCM.generate_key(bit_length=256), datetime.now(timezone.utc).isoformat())
        _write_private(path, _key_file_text(key.id, [key]))
        return KeyRing(path)

    def _load(self) -> None:
        try:
            stat = self.path.stat()
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise KeysUnavailable(f"key file {self.path} not found: run `cldx init` to create it, or set CLDX_KEY_FILE") from None
        if document.get("format") != KEY_FILE_FORMAT:
            raise KeysUnavailable(f"{self.path} is not a cldx key file")
        keys = {k["id"]: DataKey(k["id"], base64.b64decode(k["key"]), k.get("created", "")) for k in document["keys"]}
        if document["current"] not in keys or any(len(k.key) != 32 for k in keys.values()):
            raise KeysUnavailable(f"{self.path} is damaged: the current key is missing or a key is not 256 bits")
        self._keys, self._current, self._mtime = keys, document["current"], stat.st_mtime_ns
        self._ciphers = {k.id: AESGCM(k.key) for k in keys.values()}

    def refresh(self) -> None:
        """Re-read the key file if it changed since it was read."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            with self._lock:
                self._load()

    @property
    def current(self) -> str:
        return self._current

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def add_key(self) -> str:
        """Add a new key and make it current (older keys stay, so their values still open)."""
        with self._lock:
            self._load()
            key = DataKey(_new_key_id(set(self._keys)), AESGCM.generate_key(bit_length=256), datetime.now(timezone.utc).isoformat())
            _write_private(self.path, _key_file_text(key.id, [*self._keys.values(), key]))
            self._load()
            return key.id

    def remove_keys(self, key_ids: set[str]) -> None:
        """Forget keys (never the current one): values sealed under them can no longer be opened."""
        with self._lock:
            self._load()
            if self._current in key_ids:
                raise ValueError("the current key cannot be removed")
            _write_private(self.path, _key_file_text(self._current, [k for k in self._keys.values() if k.id not in key_ids]))
            self._load()

    def _cipher(self, key_id: str) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            self.refresh()  # rotated by another process since we read the file
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise KeysUnavailable(f"no key {key_id!r} in {self.path}: the value was sealed under a key that has been removed")
        return cipher

    # -- sealing ----------------------------------------------------------------------------

    def seal(self, value: str, place: str) -> str:
        key_id = self._current
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, value.encode("utf-8"), place.encode())
        return f"{PREFIX}{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def open(self, token: str, place: str) -> str:
        key_id, body = _split(token)
        raw = base64.urlsafe_b64decode(body)
        return self._cipher(key_id).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], place.encode()).decode("utf-8")

    def seal_bytes(self, data: bytes, place: str) -> bytes:
        key_id = self._current
        nonce = os.urandom(NONCE_BYTES)
        return f"{PREFIX}{key_id}:".encode() + nonce + self._ciphers[key_id].encrypt(nonce, data, place.encode())

    def open_bytes(self, sealed: bytes, place: str) -> bytes:
        if not sealed.startswith(_PREFIX_BYTES):
            raise ValueError("not a sealed value")
        end = sealed.index(b":", len(_PREFIX_BYTES))
        key_id = sealed[len(_PREFIX_BYTES):end].decode("ascii")
        body = sealed[end + 1:]
        return self._cipher(key_id).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], place.encode())

    # -- whole columns (the bulk path) ----------------------------------------------------------

    def seal_series(self, series: pl.Series, place: str) -> pl.Series:
        """Seal every non-null value of a column (dates as ISO text); nulls stay null.

        The bulk path: one draw of random nonces for the whole column instead of a system call
        per value, and the cipher, prefix and associated data looked up once.
        """
        self.refresh()
        if series.dtype == pl.Date:
            series = series.dt.strftime("%Y-%m-%d")
        values = series.to_list()
        key_id = self._current
        encrypt = self._ciphers[key_id].encrypt
        prefix = f"{PREFIX}{key_id}:"
        aad = place.encode()
        nonces = os.urandom(NONCE_BYTES * len(values))
        b64 = base64.urlsafe_b64encode
        sealed = []
        for i, value in enumerate(values):
            if value is None:
                sealed.append(None)
                continue
            nonce = nonces[i * NONCE_BYTES:(i + 1) * NONCE_BYTES]
            sealed.append(prefix + b64(nonce + encrypt(nonce, value.encode("utf-8"), aad)).decode("ascii"))
        return pl.Series(series.name, sealed, dtype=pl.String)

    def open_series(self, series: pl.Series, place: str, dtype: pl.DataType = pl.String) -> pl.Series:
        """Open every non-null sealed value of a column; `dtype=pl.Date` parses ISO dates back."""
        opener = self.open
        opened = pl.Series(series.name, [None if v is None else opener(v, place) for v in series.to_list()], dtype=pl.String)
        return opened.str.to_date("%Y-%m-%d") if dtype == pl.Date else opened


def _split(token: str) -> tuple[str, str]:
    if not token.startswith(PREFIX):
        raise ValueError("not a sealed value")
    key_id, _, body = token[len(PREFIX):].partition(":")
    return key_id, body


def key_id_of(value: str | bytes) -> str | None:
    """The id of the key a sealed value was sealed under (None when it is not sealed)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
        if not value.startswith(_PREFIX_BYTES):
            return None
        end = value.find(b":", len(_PREFIX_BYTES))
        return value[len(_PREFIX_BYTES):end].decode("ascii", "replace") if end > 0 else None
    if not isinstance(value, str) or not value.startswith(PREFIX):
        return None
    return _split(value)[0]


def _key_file_text(current: str, keys: list[DataKey]) -> str:
    return json.dumps({
        "format": KEY_FILE_FORMAT,
        "about": "cldx data keys (AES-256-GCM). Keep this file secret and backed up apart from the database: without it the identity store cannot be read.",
        "current": current,
        "keys": [{"id": k.id, "key": base64.b64encode(k.key).decode("ascii"), "created": k.created} for k in keys],
    }, indent=2) + "\n"


# --- The linkage secret -------------------------------------------------------------------------


def create_linkage_secret(path: Path) -> None:
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    _write_private(path, json.dumps({
        "format": LINKAGE_FILE_FORMAT,
        "about": "cldx linkage secret: the HMAC key of person pseudonyms. Never change it (everyone would unlink); keep it apart from the data and the data keys.",
        "secret": base64.b64encode(secrets.token_bytes(32)).decode("ascii"),
    }, indent=2) + "\n")


def read_linkage_secret(path: Path) -> bytes:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeysUnavailable(f"linkage secret {path} not found: run `cldx init` to create it, or set CLDX_LINKAGE_SECRET_FILE") from None
    if document.get("format") != LINKAGE_FILE_FORMAT:
        raise KeysUnavailable(f"{path} is not a cldx linkage secret")
    secret = base64.b64decode(document["secret"])
    if len(secret) < 32:
        raise KeysUnavailable(f"{path}: the linkage secret must be at least 32 bytes")
    return secret


# --- The vault: what ingest and the pages need, bound to the store they work on ----------------


@dataclass
class Vault:
    """The data keys and the linkage secret of one deployment."""

    keys: KeyRing
    linkage_secret: bytes

    def seal_frame(self, frame: pl.DataFrame, table: str, columns: tuple[str, ...]) -> pl.DataFrame:
        """The frame with `columns` sealed for `table` (dates sealed as ISO text)."""
        return frame.with_columns(self.keys.seal_series(frame[c], f"{table}.{c}") for c in columns if c in frame.columns)

    def open_frame(self, frame: pl.DataFrame, table: str, columns: tuple[str, ...], dates: tuple[str, ...] = ()) -> pl.DataFrame:
        """The frame with sealed `columns` of `table` opened; `dates` are parsed back to dates."""
        return frame.with_columns(
            self.keys.open_series(frame[c], f"{table}.{c}", pl.Date if c in dates else pl.String) for c in columns if c in frame.columns
        )

    def derived_key(self, purpose: str) -> bytes:
        """A secret for one purpose (for example the direction of RR3 rounding), derived from the
        linkage secret so no further file needs keeping; purposes never share a key."""
        return hmac.new(self.linkage_secret, f"cldx derived key: {purpose}".encode(), hashlib.sha256).digest()

    def person_keys(self, slks: pl.Series) -> pl.Series:
        """HMAC-SHA256 of each SLK under the linkage secret, as hex; null SLKs stay null."""
        secret = self.linkage_secret
        digest = hashlib.sha256
        return pl.Series("person_key", [None if s is None else hmac.new(secret, s.encode("ascii"), digest).hexdigest()
                                        for s in slks.to_list()], dtype=pl.String)


def ensure_key_files(key_file: Path, linkage_secret_file: Path) -> list[Path]:
    """Create whichever of the two files is missing (as `cldx init` does); the paths created."""
    created = []
    if not Path(key_file).exists():
        KeyRing.create(Path(key_file))
        created.append(Path(key_file))
    if not Path(linkage_secret_file).exists():
        create_linkage_secret(Path(linkage_secret_file))
        created.append(Path(linkage_secret_file))
    return created


def open_vault(key_file: Path, linkage_secret_file: Path) -> Vault:
    return Vault(KeyRing(Path(key_file)), read_linkage_secret(Path(linkage_secret_file)))


# Engines are built at the edge (the CLI, the web app, a test) and passed down; the vault of
# the store an engine points at travels with it, so `submit(engine, ...)` and the queue worker
# need no extra argument and cannot pick up another deployment's keys.
_VAULTS: "weakref.WeakKeyDictionary[object, Vault]" = weakref.WeakKeyDictionary()


def bind_vault(engine, vault: Vault) -> None:
    _VAULTS[engine] = vault


def vault_of(engine) -> Vault:
    try:
        return _VAULTS[engine]
    except KeyError:
        raise KeysUnavailable("no keys are bound to this store: open it with cldx.identity.vault.bind_vault (the CLI and the web app do)") from None


def open_store(settings, *, check_schema: bool = True):
    """An engine on the configured store with its vault bound: how the edge (CLI, web app) opens it.

    Ministry-wide by default (the CLI, the worker); provider work scopes its own transactions.
    `check_schema` refuses a store that is missing or not upgraded (SchemaOutOfDate); the web
    app skips it so it can start while the database is down and say so on /health.
    """
    from cldx.store import make_engine
    from cldx.store.migrate import require_head

    engine = make_engine(settings.sqlalchemy_url, default_scope="all")
    try:
        if check_schema:
            require_head(engine)
        bind_vault(engine, open_vault(settings.key_file, settings.linkage_secret_file))
    except BaseException:
        engine.dispose()
        raise
    return engine
