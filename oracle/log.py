"""The oracle's attestation log: an append-only SQLite store shaped as an RFC 6962 Merkle tree.

Every attestation the node makes is appended as one *entry*. The entry's ``leaf`` is the
exact canonical byte string produced by the attestation module; this module never parses
it. The Merkle tree (see :mod:`oracle.merkle`) is built over the leaves in append order,
so entry ``i`` is leaf ``i`` of the tree, and a checkpoint ``(size, root)`` commits to the
first ``size`` entries. Anyone holding a checkpoint can be given inclusion proofs for
entries and consistency proofs between checkpoints.

Durability and integrity:

- the database runs in WAL mode with ``synchronous=FULL``; each append is a single
  ``BEGIN IMMEDIATE ... COMMIT`` transaction and :meth:`AttestationLog.append` returns
  only after the commit, so an acknowledged append survives a crash or power loss, and a
  crash in the middle of an append leaves the log as it was before;
- the entry index is taken inside that transaction, so several processes appending to
  the same file serialise and never leave a gap; a trigger refuses any insert whose
  index is not ``max(idx) + 1``;
- triggers refuse every ``UPDATE`` and ``DELETE`` of an entry, whoever the writer is;
- opening the log checks the schema version, that the indices are exactly ``0..n-1``
  and that every stored leaf hash is the hash of its leaf, and raises
  :class:`LogCorrupted` naming the first bad index otherwise.

Publication bookkeeping (was entry ``i`` sent on chain, in which transaction, with what
outcome) is mutable and therefore lives outside the tree, in the ``publications`` table.

An :class:`AttestationLog` may be used from several threads (calls are serialised by a
lock) and the same file may be open in several processes: readers see other processes'
appends as soon as they are committed.

``AttestationLog(path, read_only=True)`` is the auditor's view: it opens the file with
SQLite's ``mode=ro``, so it reads a running node's newest entries from the ``-wal`` file
beside it and never writes the database, checkpoints the WAL or changes the journal mode
(a read-write connection that closes last checkpoints the WAL into the file and deletes
it). A read-only folder without a ``-wal`` file (a stopped node's log on a read-only
mount) is read as immutable: no ``-wal`` means no connection has the log open.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from oracle import merkle

__all__ = [
    "SCHEMA_VERSION",
    "AppendResult",
    "AttestationLog",
    "AttestationLogError",
    "Checkpoint",
    "EntryNotFound",
    "LogBusy",
    "LogClosed",
    "LogConflict",
    "LogCorrupted",
    "LogUnreadable",
    "LogEntry",
    "MetaConflict",
    "Publication",
    "PublicationConflict",
    "PublicationStatus",
]

SCHEMA_VERSION = 1
"""Version of the on-disk schema written by this module (``meta.schema_version``)."""

MAX_KIND_LENGTH = 64
"""Longest accepted entry kind."""

_KIND_RE = re.compile(r"[A-Za-z0-9_.:-]+")
_BUSY_TIMEOUT_S = 30.0
_READ_BATCH = 512

PublicationStatus = Literal["pending", "published", "refused", "failed"]
_OUTCOME_STATUSES = ("published", "refused", "failed")
_FINAL_STATUSES = ("published", "refused")


# --------------------------------------------------------------------------- errors


class AttestationLogError(Exception):
    """Base class of every error raised by the attestation log."""


class LogCorrupted(AttestationLogError):
    """The log file fails an integrity check; ``index`` is the first bad entry, if any."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class LogConflict(AttestationLogError):
    """``append(..., expect_size=...)`` found the log at another size; nothing was written."""

    def __init__(self, message: str, *, expected: int, actual: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class EntryNotFound(AttestationLogError, IndexError):
    """No entry at the requested index (the log is shorter)."""


class LogBusy(AttestationLogError):
    """Another connection held the write lock for longer than the busy timeout."""


class LogUnreadable(AttestationLogError):
    """A log opened read-only cannot be read where it is, or shows no log at all (for
    example a copy made without its ``-wal`` file); nothing was changed."""


class LogClosed(AttestationLogError):
    """The :class:`AttestationLog` was used after :meth:`AttestationLog.close`."""


class MetaConflict(AttestationLogError):
    """``set_meta`` was asked to change a key that already has another value."""


class PublicationConflict(AttestationLogError):
    """A publication record change that would break the publish-at-most-once rules."""


# --------------------------------------------------------------------------- models

_Hash = Annotated[bytes, Field(min_length=merkle.HASH_SIZE, max_length=merkle.HASH_SIZE)]
_Index = Annotated[int, Field(ge=0)]
_MODEL_CONFIG = ConfigDict(frozen=True, strict=True, ser_json_bytes="hex", val_json_bytes="hex")


class Checkpoint(BaseModel):
    """The Merkle root of the first ``size`` entries of the log."""

    model_config = _MODEL_CONFIG

    size: _Index
    root: _Hash


class LogEntry(BaseModel):
    """One stored entry; ``leaf`` is what the tree commits to, ``leaf_hash`` its hash."""

    model_config = _MODEL_CONFIG

    index: _Index
    kind: str
    leaf: bytes
    leaf_hash: _Hash
    inputs: bytes | None
    inputs_location: str | None
    appended_at: int


class Publication(BaseModel):
    """Publication bookkeeping of one entry (outside the tree, mutable)."""

    model_config = _MODEL_CONFIG

    index: _Index
    status: PublicationStatus
    tx_hash: str | None
    raw_tx: bytes | None
    nonce: int | None
    sender: str | None
    block_number: int | None
    detail: str | None
    updated_at: int


class AppendResult(BaseModel):
    """Where an append landed and the checkpoint of the log right after it."""

    model_config = _MODEL_CONFIG

    index: _Index
    checkpoint: Checkpoint


# --------------------------------------------------------------------------- schema

_SCHEMA = f"""
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL CHECK (length(key) > 0),
    value TEXT NOT NULL
);
CREATE TRIGGER meta_write_once BEFORE UPDATE ON meta
WHEN NEW.key IS NOT OLD.key OR NEW.value IS NOT OLD.value
BEGIN
    SELECT RAISE(ABORT, 'attestation log meta is write-once: an existing key cannot change');
END;
CREATE TRIGGER meta_no_delete BEFORE DELETE ON meta
BEGIN
    SELECT RAISE(ABORT, 'attestation log meta is write-once: keys cannot be deleted');
END;

CREATE TABLE entries (
    idx             INTEGER PRIMARY KEY CHECK (idx >= 0),
    kind            TEXT    NOT NULL CHECK (length(kind) BETWEEN 1 AND {MAX_KIND_LENGTH}),
    leaf            BLOB    NOT NULL CHECK (typeof(leaf) = 'blob' AND length(leaf) > 0),
    leaf_hash       BLOB    NOT NULL CHECK (typeof(leaf_hash) = 'blob'
                                            AND length(leaf_hash) = {merkle.HASH_SIZE}),
    inputs          BLOB    CHECK (inputs IS NULL OR typeof(inputs) = 'blob'),
    inputs_location TEXT,
    appended_at     INTEGER NOT NULL
);
CREATE INDEX entries_by_leaf_hash ON entries (leaf_hash);
CREATE INDEX entries_by_kind ON entries (kind, idx);
CREATE TRIGGER entries_contiguous BEFORE INSERT ON entries
WHEN NEW.idx IS NOT (SELECT coalesce(max(idx), -1) + 1 FROM entries)
BEGIN
    SELECT RAISE(ABORT, 'attestation log entries must be appended at index max(idx) + 1');
END;
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN
    SELECT RAISE(ABORT, 'attestation log is append-only: entries cannot be updated');
END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN
    SELECT RAISE(ABORT, 'attestation log is append-only: entries cannot be deleted');
END;

CREATE TABLE publications (
    idx          INTEGER PRIMARY KEY REFERENCES entries (idx),
    status       TEXT    NOT NULL
                         CHECK (status IN ('pending', 'published', 'refused', 'failed')),
    tx_hash      TEXT,
    raw_tx       BLOB,
    nonce        INTEGER,
    sender       TEXT,
    block_number INTEGER,
    detail       TEXT,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX publications_by_status ON publications (status);
CREATE TRIGGER publications_no_delete BEFORE DELETE ON publications
BEGIN
    SELECT RAISE(ABORT, 'publication records cannot be deleted');
END;
"""

_REQUIRED_TRIGGERS = (
    "entries_contiguous",
    "entries_no_update",
    "entries_no_delete",
)


# --------------------------------------------------------------------------- validation


def _as_bytes(value: object, what: str, *, allow_none: bool = False) -> bytes | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bytes):
        out = value
    elif isinstance(value, bytearray | memoryview):
        out = bytes(value)
    elif isinstance(value, str):
        raise TypeError(f"{what} must be bytes, not str: encode it (canonically) first")
    else:
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    if not out:
        raise ValueError(
            f"{what} is empty; pass the canonical bytes"
            + (" (or None when there is nothing to store)" if allow_none else "")
        )
    return out


def _check_kind(kind: object) -> str:
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a str such as 'price', not {type(kind).__name__}")
    if not 1 <= len(kind) <= MAX_KIND_LENGTH or not _KIND_RE.fullmatch(kind):
        raise ValueError(
            f"kind {kind!r} is not valid: use 1..{MAX_KIND_LENGTH} characters from "
            "A-Z a-z 0-9 _ . : - (for example 'price', 'utilisation', 'signer_set')"
        )
    return kind


def _check_text(value: object, what: str, *, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(
            f"{what} is empty; pass a non-empty string" + (" or None" if allow_none else "")
        )
    return value


def _check_uint(value: object, what: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return value


def _now() -> int:
    return int(time.time())


# --------------------------------------------------------------------------- the log


class AttestationLog:
    """An append-only attestation log in one SQLite file (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        clock: Callable[[], int] = _now,
        read_only: bool = False,
    ) -> None:
        """Open the log at ``path``, creating it if it does not exist and ``create`` is true.

        Opening checks integrity (see :meth:`verify_integrity`) and raises
        :class:`LogCorrupted` if the file fails it. ``clock`` returns the unix time in
        seconds stamped on new rows (tests pass a fake clock). ``read_only`` opens an
        existing log without ever writing to it (see the module docstring); every write
        then raises :class:`AttestationLogError`.
        """
        self._path = Path(path)
        self._clock = clock
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._read_only = read_only
        create = create and not read_only
        if not self._path.exists() and not create:
            raise FileNotFoundError(
                f"attestation log {str(self._path)!r} does not exist; check the path, or "
                "open it with create=True to start a new, empty log"
            )
        if self._path.is_dir():
            raise IsADirectoryError(
                f"attestation log path {str(self._path)!r} is a directory; give a file path "
                "such as attestations.sqlite3"
            )
        if read_only:
            conn = self._connect_read_only()
        else:
            try:
                conn = self._connect(self._path)
            except sqlite3.Error as exc:
                raise AttestationLogError(
                    f"cannot open attestation log {str(self._path)!r}: {exc}"
                ) from exc
        self._conn = conn
        try:
            if read_only:
                self._check_schema_read_only(conn)
            else:
                self._configure(conn)
                self._ensure_schema(conn, create=create)
            self._range = merkle.CompactRange()
            self._verify_locked()
        except BaseException:
            conn.close()
            self._conn = None
            raise

    # -- connection set-up -----------------------------------------------------------

    @staticmethod
    def _connect(target: str | Path, *, uri: bool = False) -> sqlite3.Connection:
        return sqlite3.connect(
            target,
            uri=uri,
            timeout=_BUSY_TIMEOUT_S,
            isolation_level=None,  # autocommit; transactions are explicit below
            check_same_thread=False,  # guarded by self._lock
        )

    def _connect_read_only(self) -> sqlite3.Connection:
        """A ``mode=ro`` connection that has read the schema (so SQLite has found the
        WAL), or, in a read-only folder without a ``-wal`` file, an immutable one."""
        uri = self._path.resolve().as_uri()
        failure: sqlite3.Error | None = None
        for query in ("?mode=ro", "?mode=ro&immutable=1"):
            try:
                conn = self._connect(uri + query, uri=True)
            except sqlite3.Error as exc:
                failure = exc
                break
            try:
                conn.execute("PRAGMA query_only=ON")
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.Error as exc:
                conn.close()
                failure = exc
            # SQLite cannot open a WAL database read-only where it may not create the
            # -shm file. With no -wal file either, nobody has the log open (a connection
            # in WAL mode keeps its -wal file) and the file alone is the whole log.
            if (getattr(failure, "sqlite_errorcode", None) != sqlite3.SQLITE_CANTOPEN
                    or self._sidecar("-wal").exists()):
                break
        raise LogUnreadable(
            f"cannot read the attestation log {str(self._path)!r} read-only ({failure}); "
            f"a log in WAL mode needs its {self._sidecar('-wal').name} and "
            f"{self._sidecar('-shm').name} files beside it, readable, on a local filesystem"
        ) from failure

    def _sidecar(self, suffix: str) -> Path:
        return self._path.with_name(self._path.name + suffix)

    def _check_schema_read_only(self, conn: sqlite3.Connection) -> None:
        try:
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError as exc:
            raise LogCorrupted(
                f"{str(self._path)!r} is not a readable SQLite database ({exc}); "
                "check the path, or restore the log from a backup"
            ) from exc
        if not tables:
            raise LogUnreadable(
                f"{str(self._path)!r} holds no attestation log: the database is empty. A "
                "running node keeps its newest entries in the write-ahead file "
                f"{self._sidecar('-wal').name} beside its log, so this is a copy or a file "
                "mounted or linked without that file (or not a log at all)"
            )
        if not {"meta", "entries", "publications"} <= tables:
            raise LogCorrupted(
                f"{str(self._path)!r} is a SQLite database but not an attestation log "
                f"(tables: {', '.join(sorted(tables))}); check the path"
            )

    def _configure(self, conn: sqlite3.Connection) -> None:
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise LogCorrupted(
                f"{str(self._path)!r} is not a readable SQLite database ({exc}); "
                "restore the log from a backup"
            ) from exc
        if str(mode).lower() != "wal":
            raise AttestationLogError(
                f"cannot switch {str(self._path)!r} to WAL journal mode (got {mode!r}); "
                "the log must be on a local filesystem that supports shared memory"
            )

    def _ensure_schema(self, conn: sqlite3.Connection, *, create: bool) -> None:
        with self._write_txn(conn):
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if not tables:
                if not create:
                    raise AttestationLogError(
                        f"{str(self._path)!r} is an empty database, not an attestation log; "
                        "open it with create=True to initialise it"
                    )
                for statement in _split_sql(_SCHEMA):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('tree', 'rfc6962-sha256')",
                )
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('created_at', ?)",
                    (str(int(self._clock())),),
                )
                return
            if not {"meta", "entries", "publications"} <= tables:
                raise LogCorrupted(
                    f"{str(self._path)!r} is a SQLite database but not an attestation log "
                    f"(tables: {', '.join(sorted(tables))}); check the path"
                )

    # -- transactions ------------------------------------------------------------------

    @contextmanager
    def _write_txn(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception)."""
        conn = conn if conn is not None else self._connection()
        if self._read_only:
            raise AttestationLogError(
                f"attestation log {str(self._path)!r} was opened read-only; open it without "
                "read_only=True to write"
            )
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise LogBusy(
                    f"attestation log {str(self._path)!r} stayed locked by another writer "
                    f"for {_BUSY_TIMEOUT_S:.0f} s; retry, and check for a stuck process"
                ) from exc
            raise AttestationLogError(f"cannot start a write transaction: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LogClosed(
                f"attestation log {str(self._path)!r} is closed; open a new AttestationLog"
            )
        return self._conn

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def close(self) -> None:
        """Close the database connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> AttestationLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else f"size={self._range.size}"
        return f"AttestationLog({str(self._path)!r}, {state})"

    # -- integrity ----------------------------------------------------------------------

    def verify_integrity(self) -> Checkpoint:
        """Re-check the whole file; return the checkpoint of everything verified.

        Checks that the schema version is one this code knows, that the append-only
        triggers are in place, that entry indices are exactly ``0..n-1`` and that every
        stored ``leaf_hash`` is the RFC 6962 hash of its ``leaf``. Raises
        :class:`LogCorrupted` (with ``.index`` set to the first bad entry when there is
        one) otherwise. O(n) hashing.
        """
        with self._lock:
            return self._verify_locked()

    def _verify_locked(self) -> Checkpoint:
        conn = self._connection()
        try:
            # One read transaction, so the checks see one consistent snapshot even while
            # another process appends.
            conn.execute("BEGIN")
            try:
                cr = self._verify_snapshot(conn)
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:
            raise LogCorrupted(
                f"attestation log {str(self._path)!r} cannot be read ({exc}); "
                "restore it from a backup"
            ) from exc
        self._range = cr
        return Checkpoint(size=cr.size, root=cr.root())

    def _verify_snapshot(self, conn: sqlite3.Connection) -> merkle.CompactRange:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise LogCorrupted(
                f"{str(self._path)!r} has no schema_version in its meta table; "
                "it is not an attestation log written by this software"
            )
        if row[0] != str(SCHEMA_VERSION):
            raise LogCorrupted(
                f"{str(self._path)!r} has schema version {row[0]!r}, this code knows only "
                f"version {SCHEMA_VERSION}; use the matching release of the oracle"
            )
        triggers = {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        }
        cr = merkle.CompactRange()
        expected = 0
        for idx, leaf, stored_hash in conn.execute(
            "SELECT idx, leaf, leaf_hash FROM entries ORDER BY idx"
        ):
            if idx != expected:
                raise LogCorrupted(
                    f"attestation log {str(self._path)!r} has a gap: entry {expected} is "
                    f"missing (next stored index is {idx}); the log was tampered with, "
                    "restore it from a backup",
                    index=expected,
                )
            self._check_row_hash(idx, leaf, stored_hash)
            cr.append(stored_hash)
            expected += 1
        missing = [t for t in _REQUIRED_TRIGGERS if t not in triggers]
        if missing:
            raise LogCorrupted(
                f"attestation log {str(self._path)!r} lacks its append-only triggers "
                f"({', '.join(missing)}); someone altered the schema, audit the file"
            )
        return cr

    def _check_row_hash(self, idx: int, leaf: object, stored_hash: object) -> None:
        if (
            not isinstance(leaf, bytes)
            or not isinstance(stored_hash, bytes)
            or merkle.leaf_hash(leaf) != stored_hash
        ):
            raise LogCorrupted(
                f"attestation log {str(self._path)!r}: entry {idx} is corrupted (its stored "
                "leaf hash is not the hash of its leaf); restore the log from a backup",
                index=idx,
            )

    def _refresh(self) -> None:
        """Fold entries appended by other connections into the in-memory compact range.

        One indexed query for rows past the cached size; each new row is verified
        (contiguous index, leaf hash) before it is trusted.
        """
        conn = self._connection()
        start = self._range.size
        rows = conn.execute(
            "SELECT idx, leaf, leaf_hash FROM entries WHERE idx >= ? ORDER BY idx", (start,)
        ).fetchall()
        if not rows:
            return
        cr = self._range.copy()
        for idx, leaf, stored_hash in rows:
            if idx != cr.size:
                raise LogCorrupted(
                    f"attestation log {str(self._path)!r} has a gap: entry {cr.size} is "
                    f"missing (next stored index is {idx})",
                    index=cr.size,
                )
            self._check_row_hash(idx, leaf, stored_hash)
            cr.append(stored_hash)
        self._range = cr

    # -- reading ------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of entries (including ones appended by other connections)."""
        with self._lock:
            self._refresh()
            return self._range.size

    def checkpoint(self, size: int | None = None) -> Checkpoint:
        """The Merkle root of the first ``size`` entries (default: all of them).

        The current checkpoint is O(log n); an older size rehashes its stored leaf hashes.
        """
        with self._lock:
            self._refresh()
            current = self._range.size
            if size is None:
                size = current
            size = self._check_size(size, current, "checkpoint size")
            if size == current:
                return Checkpoint(size=current, root=self._range.root())
            return Checkpoint(
                size=size, root=merkle.root_from_leaf_hashes(self._leaf_hashes_locked(size))
            )

    def _check_size(self, size: object, current: int, what: str) -> int:
        _check_uint(size, what)
        assert isinstance(size, int)
        if size > current:
            raise ValueError(
                f"{what} {size} is beyond the end of the log, which has {current} entries"
            )
        return size

    def entry(self, index: int) -> LogEntry:
        """The entry at ``index``; :class:`EntryNotFound` if the log is shorter."""
        _check_uint(index, "entry index")
        with self._lock:
            row = (
                self._connection()
                .execute(
                    "SELECT idx, kind, leaf, leaf_hash, inputs, inputs_location, appended_at "
                    "FROM entries WHERE idx = ?",
                    (index,),
                )
                .fetchone()
            )
            if row is None:
                self._refresh()
                raise EntryNotFound(
                    f"no entry at index {index}: the log has {self._range.size} entries "
                    f"(indices 0..{self._range.size - 1})"
                    if self._range.size
                    else f"no entry at index {index}: the log is empty"
                )
            return self._row_to_entry(row)

    def _row_to_entry(self, row: tuple) -> LogEntry:
        idx, kind, leaf, stored_hash, inputs, inputs_location, appended_at = row
        self._check_row_hash(idx, leaf, stored_hash)
        return LogEntry(
            index=idx,
            kind=kind,
            leaf=leaf,
            leaf_hash=stored_hash,
            inputs=inputs,
            inputs_location=inputs_location,
            appended_at=appended_at,
        )

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[LogEntry]:
        """Iterate over entries ``start <= index < stop`` (``stop`` defaults to the size now).

        Rows are read in batches, so the iterator holds no database cursor between items
        and the log may be appended to while iterating (new entries past ``stop`` are not
        included). Raises ``ValueError`` for a range outside ``[0, size]``.
        """
        _check_uint(start, "start")
        with self._lock:
            self._refresh()
            current = self._range.size
        if stop is None:
            stop = current
        else:
            stop = self._check_size(stop, current, "stop")
        if start > stop:
            raise ValueError(f"start {start} is after stop {stop}; give start <= stop")
        return self._iter_entries(start, stop)

    def _iter_entries(self, start: int, stop: int) -> Iterator[LogEntry]:
        next_idx = start
        while next_idx < stop:
            with self._lock:
                rows = (
                    self._connection()
                    .execute(
                        "SELECT idx, kind, leaf, leaf_hash, inputs, inputs_location, "
                        "appended_at FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx "
                        "LIMIT ?",
                        (next_idx, stop, _READ_BATCH),
                    )
                    .fetchall()
                )
            if not rows:
                raise LogCorrupted(
                    f"entry {next_idx} vanished from {str(self._path)!r} while reading",
                    index=next_idx,
                )
            for row in rows:
                if row[0] != next_idx:
                    raise LogCorrupted(
                        f"attestation log {str(self._path)!r} has a gap at entry {next_idx}",
                        index=next_idx,
                    )
                yield self._row_to_entry(row)
                next_idx += 1

    def leaf_hashes(self, size: int | None = None) -> list[bytes]:
        """The stored leaf hashes of the first ``size`` entries (default: all)."""
        with self._lock:
            self._refresh()
            current = self._range.size
            size = current if size is None else self._check_size(size, current, "size")
            return self._leaf_hashes_locked(size)

    def _leaf_hashes_locked(self, size: int) -> list[bytes]:
        hashes = [
            row[0]
            for row in self._connection().execute(
                "SELECT leaf_hash FROM entries WHERE idx < ? ORDER BY idx", (size,)
            )
        ]
        if len(hashes) != size:
            raise LogCorrupted(
                f"attestation log {str(self._path)!r} returned {len(hashes)} leaf hashes "
                f"for its first {size} entries; run verify_integrity()"
            )
        return hashes

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 6962 inclusion proof of entry ``index`` in the tree of the first ``size``
        entries (default: all). Verify with :func:`oracle.merkle.verify_inclusion`."""
        with self._lock:
            self._refresh()
            current = self._range.size
            size = current if size is None else self._check_size(size, current, "tree size")
            _check_uint(index, "entry index")
            if index >= size:
                raise EntryNotFound(
                    f"entry {index} is not in the tree of size {size}; "
                    "prove it against a checkpoint that includes it"
                )
            return merkle.inclusion_proof(self._leaf_hashes_locked(size), index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 6962 consistency proof from the first ``old_size`` entries to the first
        ``new_size`` (default: all). Verify with :func:`oracle.merkle.verify_consistency`."""
        with self._lock:
            self._refresh()
            current = self._range.size
            new_size = (
                current if new_size is None else self._check_size(new_size, current, "new size")
            )
            _check_uint(old_size, "old size")
            if old_size > new_size:
                raise ValueError(
                    f"old size {old_size} is larger than new size {new_size}; "
                    "a consistency proof goes from an older checkpoint to a newer one"
                )
            return merkle.consistency_proof(self._leaf_hashes_locked(new_size), old_size, new_size)

    def find_leaf(self, leaf: bytes) -> int | None:
        """Index of the first entry whose leaf is exactly ``leaf``, or None."""
        data = _as_bytes(leaf, "leaf")
        assert data is not None
        with self._lock:
            for idx, stored in self._connection().execute(
                "SELECT idx, leaf FROM entries WHERE leaf_hash = ? ORDER BY idx",
                (merkle.leaf_hash(data),),
            ):
                if stored == data:
                    return int(idx)
            return None

    # -- appending ----------------------------------------------------------------------

    def append(
        self,
        leaf: bytes,
        *,
        kind: str,
        inputs: bytes | None = None,
        inputs_location: str | None = None,
        expect_size: int | None = None,
    ) -> AppendResult:
        """Append one entry durably and return its index and the new checkpoint.

        ``leaf`` is the canonical attestation bytes the tree commits to; ``inputs`` the
        canonical raw input snapshot stored alongside (not in the tree), or
        ``inputs_location`` where it is stored instead. With ``expect_size`` the append
        only happens if the log has exactly that many entries inside the write
        transaction; otherwise :class:`LogConflict` is raised and nothing is written (use
        this when ``leaf`` commits to the previous checkpoint). Returns after COMMIT.
        """
        data = _as_bytes(leaf, "leaf")
        assert data is not None
        kind = _check_kind(kind)
        raw_inputs = _as_bytes(inputs, "inputs", allow_none=True)
        location = _check_text(inputs_location, "inputs_location", allow_none=True)
        _check_uint(expect_size, "expect_size", allow_none=True)
        lh = merkle.leaf_hash(data)
        appended_at = int(self._clock())
        with self._lock:
            with self._write_txn() as conn:
                # Holding the write lock: nobody can append until COMMIT, so the size read
                # here is the index this entry gets.
                self._refresh()
                index = self._range.size
                if expect_size is not None and index != expect_size:
                    raise LogConflict(
                        f"the log has {index} entries, not the expected {expect_size}: "
                        "another writer appended first; rebuild the entry against the "
                        "current checkpoint and retry",
                        expected=expect_size,
                        actual=index,
                    )
                conn.execute(
                    "INSERT INTO entries (idx, kind, leaf, leaf_hash, inputs, inputs_location,"
                    " appended_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (index, kind, data, lh, raw_inputs, location, appended_at),
                )
            # Committed: only now does the in-memory tree move.
            self._range.append(lh)
            return AppendResult(
                index=index, checkpoint=Checkpoint(size=index + 1, root=self._range.root())
            )

    # -- publication bookkeeping --------------------------------------------------------

    _PUBLICATION_COLUMNS = (
        "idx, status, tx_hash, raw_tx, nonce, sender, block_number, detail, updated_at"
    )

    def _publication_row(self, conn: sqlite3.Connection, index: int) -> tuple | None:
        return conn.execute(
            f"SELECT {self._PUBLICATION_COLUMNS} FROM publications WHERE idx = ?", (index,)
        ).fetchone()

    def _require_entry(self, conn: sqlite3.Connection, index: int) -> None:
        if conn.execute("SELECT 1 FROM entries WHERE idx = ?", (index,)).fetchone() is None:
            raise EntryNotFound(
                f"no entry at index {index}: append the entry before recording its publication"
            )

    def record_pending(
        self, index: int, *, tx_hash: str, raw_tx: bytes, nonce: int, sender: str
    ) -> None:
        """Record, before broadcasting, that entry ``index`` is being sent in this transaction.

        Allowed when the entry has no publication record or its last attempt ``failed``,
        and (for a fee bump) when it is ``pending`` with the same ``sender`` and ``nonce``:
        transactions sharing a nonce cannot both be mined, so the entry still gets
        published at most once. Anything else raises :class:`PublicationConflict`.
        """
        _check_uint(index, "index")
        tx_hash = _check_text(tx_hash, "tx_hash")  # type: ignore[assignment]
        raw = _as_bytes(raw_tx, "raw_tx")
        _check_uint(nonce, "nonce")
        sender = _check_text(sender, "sender")  # type: ignore[assignment]
        now = int(self._clock())
        with self._lock, self._write_txn() as conn:
            self._require_entry(conn, index)
            row = self._publication_row(conn, index)
            if row is not None:
                status, old_nonce, old_sender = row[1], row[4], row[5]
                if status in _FINAL_STATUSES:
                    raise PublicationConflict(
                        f"entry {index} is already {status} (tx {row[2]}); "
                        "it must not be published again"
                    )
                if status == "pending" and (old_nonce != nonce or old_sender != sender):
                    raise PublicationConflict(
                        f"entry {index} is already pending in tx {row[2]} (sender {old_sender}, "
                        f"nonce {old_nonce}); record its outcome first, or replace it with "
                        "the same sender and nonce"
                    )
            conn.execute(
                "INSERT INTO publications (idx, status, tx_hash, raw_tx, nonce, sender, "
                "block_number, detail, updated_at) VALUES (?, 'pending', ?, ?, ?, ?, NULL, "
                "NULL, ?) ON CONFLICT (idx) DO UPDATE SET status = excluded.status, "
                "tx_hash = excluded.tx_hash, raw_tx = excluded.raw_tx, nonce = excluded.nonce,"
                " sender = excluded.sender, block_number = NULL, detail = NULL, "
                "updated_at = excluded.updated_at",
                (index, tx_hash, raw, nonce, sender, now),
            )

    def record_outcome(
        self,
        index: int,
        *,
        status: Literal["published", "refused", "failed"],
        tx_hash: str | None,
        block_number: int | None,
        detail: str | None = None,
    ) -> None:
        """Record how the publication of entry ``index`` ended.

        ``published`` needs ``tx_hash`` and ``block_number`` (the mined transaction, which
        may be a fee-bump replacement of the pending one). ``published`` and ``refused``
        are final: recording the same outcome again is a no-op, a different one raises
        :class:`PublicationConflict`. ``failed`` means "not on chain, retry": the entry
        shows up in :meth:`unpublished` again. An outcome may be recorded without a
        pending record (e.g. refused by a pre-flight check). The pending transaction's
        ``raw_tx``, ``nonce`` and ``sender`` are kept.
        """
        _check_uint(index, "index")
        if status not in _OUTCOME_STATUSES:
            raise ValueError(
                f"status must be one of {', '.join(_OUTCOME_STATUSES)}, got {status!r} "
                "(use record_pending for 'pending')"
            )
        tx_hash = _check_text(tx_hash, "tx_hash", allow_none=True)
        block_number = _check_uint(block_number, "block_number", allow_none=True)
        detail = _check_text(detail, "detail", allow_none=True)
        if status == "published" and (tx_hash is None or block_number is None):
            raise ValueError(
                "a 'published' outcome needs the tx_hash and block_number of the mined transaction"
            )
        now = int(self._clock())
        with self._lock, self._write_txn() as conn:
            self._require_entry(conn, index)
            row = self._publication_row(conn, index)
            if row is None:
                conn.execute(
                    "INSERT INTO publications (idx, status, tx_hash, raw_tx, nonce, sender, "
                    "block_number, detail, updated_at) VALUES (?, ?, ?, NULL, NULL, NULL, ?, ?, ?)",
                    (index, status, tx_hash, block_number, detail, now),
                )
                return
            old_status = row[1]
            new_tx = tx_hash if tx_hash is not None else row[2]
            if old_status in _FINAL_STATUSES:
                if (old_status, row[2], row[6], row[7]) == (status, new_tx, block_number, detail):
                    return
                raise PublicationConflict(
                    f"entry {index} is already {old_status} (tx {row[2]}, block {row[6]}); "
                    f"refusing to record it as {status}"
                )
            conn.execute(
                "UPDATE publications SET status = ?, tx_hash = ?, block_number = ?, detail = ?,"
                " updated_at = ? WHERE idx = ?",
                (status, new_tx, block_number, detail, now, index),
            )

    def publication(self, index: int) -> Publication | None:
        """The publication record of entry ``index``, or None if it was never sent."""
        _check_uint(index, "index")
        with self._lock:
            row = self._publication_row(self._connection(), index)
        return None if row is None else _row_to_publication(row)

    def publications(self) -> list[Publication]:
        """Every publication record, by entry index."""
        with self._lock:
            rows = (
                self._connection()
                .execute(f"SELECT {self._PUBLICATION_COLUMNS} FROM publications ORDER BY idx")
                .fetchall()
            )
        return [_row_to_publication(r) for r in rows]

    def unpublished(self, kind: str | None = None) -> list[int]:
        """Indices (ascending) of entries with no publication record or a ``failed`` one,
        optionally only those of ``kind``. ``pending`` entries are not included: resolve
        them (receipt lookup) with :meth:`record_outcome` first."""
        sql = (
            "SELECT e.idx FROM entries e LEFT JOIN publications p ON p.idx = e.idx "
            "WHERE (p.idx IS NULL OR p.status = 'failed')"
        )
        params: tuple = ()
        if kind is not None:
            sql += " AND e.kind = ?"
            params = (_check_kind(kind),)
        with self._lock:
            return [r[0] for r in self._connection().execute(sql + " ORDER BY e.idx", params)]

    def indices(self, kind: str) -> list[int]:
        """Indices (ascending) of the entries of ``kind`` (through the kind index, so
        finding the few signer-set entries does not read the whole log)."""
        with self._lock:
            rows = self._connection().execute(
                "SELECT idx FROM entries WHERE kind = ? ORDER BY idx", (_check_kind(kind),)
            )
            return [r[0] for r in rows]

    # -- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """The value stored under ``key`` in the meta table, or None."""
        _check_text(key, "meta key")
        with self._lock:
            row = (
                self._connection().execute("SELECT value FROM meta WHERE key = ?", (key,))
            ).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``; keys are write-once.

        Setting a key to the value it already has is a no-op; changing it raises
        :class:`MetaConflict` (e.g. a log created for one chain opened for another).
        """
        _check_text(key, "meta key")
        if not isinstance(value, str):
            raise TypeError(f"meta value must be a str, not {type(value).__name__}")
        with self._lock, self._write_txn() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
            elif row[0] != value:
                raise MetaConflict(
                    f"meta key {key!r} is already {row[0]!r} in {str(self._path)!r}, refusing "
                    f"to change it to {value!r}; this log belongs to another configuration, "
                    "use another log file"
                )


def _row_to_publication(row: tuple) -> Publication:
    idx, status, tx_hash, raw_tx, nonce, sender, block_number, detail, updated_at = row
    return Publication(
        index=idx,
        status=status,
        tx_hash=tx_hash,
        raw_tx=raw_tx,
        nonce=nonce,
        sender=sender,
        block_number=block_number,
        detail=detail,
        updated_at=updated_at,
    )


def _split_sql(script: str) -> list[str]:
    """Split the schema into statements (triggers contain ``;`` inside BEGIN ... END)."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if text.endswith(";") and sqlite3.complete_statement(text):
            statements.append(text)
            current = []
    if "\n".join(current).strip():
        raise AssertionError("incomplete statement in the attestation log schema")
    return statements
