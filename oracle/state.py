"""A node's own durable state beside its attestation log (SQLite, WAL, synchronous=FULL):

- `votes`: the one report this node signed for each log position, so two different
  reports can never both gather a quorum for the same position (with k > n/2). A vote
  binds for good: it never expires, survives restarts, and stops mattering only once
  the log has grown past its position (then no report can name that position again).
  The vote keeps the report and its inputs, so a leader can find it (`GET
  /v1/votes/{position}`) and finish it instead of splitting the votes.
- `led`: the entries this node appended as a round leader (it publishes those).
- `rounds`: the outcome of every round this node led or refused to co-sign, per feed,
  so `/healthz` says why nothing was published even when the round ran in another
  process (`gpu-oracle round`). Only authenticated requests are recorded, and only the
  newest `ROUNDS_KEPT_PER_FEED` rows of each feed and role (and `ROUNDS_KEPT` in all)
  are kept.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

ROUNDS_KEPT_PER_FEED = 1_000
ROUNDS_KEPT = 20_000
VOTES_KEPT_BEHIND = 100  # votes for positions this far behind the log are dropped

_SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    position INTEGER PRIMARY KEY,
    digest   TEXT NOT NULL,
    feed     TEXT NOT NULL,
    at       REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS led (
    entry_index INTEGER PRIMARY KEY,
    at          REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    feed     TEXT NOT NULL,
    role     TEXT NOT NULL,
    status   TEXT NOT NULL,
    detail   TEXT,
    entry    INTEGER,
    at       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rounds_feed ON rounds(feed, id);
CREATE INDEX IF NOT EXISTS rounds_feed_role ON rounds(feed, role, id);
"""
# Columns added to `votes` after its first release (older state files get them on open).
_VOTE_COLUMNS = {"kind": "TEXT", "report": "TEXT", "inputs": "BLOB"}


class RoundRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    feed: str
    role: str  # "leader" or "cosigner"
    status: str
    detail: str | None
    entry: int | None
    at: float


class Vote(BaseModel):
    """This node's vote at one log position: the report it signed, and its inputs."""

    model_config = ConfigDict(frozen=True)

    position: int
    digest: str
    feed: str
    kind: str | None
    report: dict[str, Any] | None
    inputs: bytes | None
    at: float


class VoteConflict(Exception):
    """This node already signed another report for that log position."""

    def __init__(self, message: str, vote: Vote) -> None:
        super().__init__(message)
        self.vote = vote


class NodeState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(votes)")}
        for name, kind in _VOTE_COLUMNS.items():
            if name not in have:
                self._db.execute(f"ALTER TABLE votes ADD COLUMN {name} {kind}")
        self._inserts = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def vote(self, position: int, digest: str, feed: str, *, kind: str | None = None,
             report: dict[str, Any] | None = None, inputs: bytes | None = None,
             at: float) -> None:
        """Record this node's vote for `digest` at log `position`, for good (idempotent for
        the same digest); raises VoteConflict if it voted for another report there, at
        any time before. `at` is the chain's time (for the record only)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                existing = self._vote_locked(position)
                if existing is not None and existing.digest != digest:
                    raise VoteConflict(
                        f"this node already signed another report for log position "
                        f"{position} (a {existing.feed} report, digest {existing.digest}); "
                        "it signs one report per position, for good. Finish that report "
                        f"(GET /v1/votes/{position} shows it; `gpu-oracle round` adopts "
                        "it) or wait until the log has grown past the position", existing)
                if existing is None:
                    self._db.execute(
                        "INSERT INTO votes(position, digest, feed, at, kind, report, inputs) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (position, digest, feed, at, kind,
                         None if report is None else json.dumps(report, sort_keys=True),
                         inputs))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def vote_at(self, position: int) -> Vote | None:
        """This node's vote at `position`, if it cast one (and it was not pruned)."""
        with self._lock:
            return self._vote_locked(position)

    def _vote_locked(self, position: int) -> Vote | None:
        row = self._db.execute(
            "SELECT position, digest, feed, kind, report, inputs, at FROM votes "
            "WHERE position = ?", (position,)).fetchone()
        if row is None:
            return None
        return Vote(position=row[0], digest=row[1], feed=row[2], kind=row[3],
                    report=None if row[4] is None else json.loads(row[4]),
                    inputs=None if row[5] is None else bytes(row[5]), at=row[6])

    def prune_votes(self, log_size: int) -> None:
        """Drop votes for positions well behind the log (a position the log has grown
        past binds nothing: no report can name it again)."""
        with self._lock:
            self._db.execute("DELETE FROM votes WHERE position < ?",
                             (log_size - VOTES_KEPT_BEHIND,))

    def mark_led(self, entry_index: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO led(entry_index, at) VALUES (?, ?)",
                             (entry_index, time.time()))

    def led(self) -> list[int]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT entry_index FROM led ORDER BY 1")]

    def record_round(self, feed: str, role: str, status: str, detail: str | None = None,
                     entry: int | None = None) -> None:
        """Record a round's outcome; keeps the newest ROUNDS_KEPT_PER_FEED of the feed and
        role, and ROUNDS_KEPT in all."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO rounds(feed, role, status, detail, entry, at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (feed, role, status, detail, entry, time.time()))
            newest = cursor.lastrowid
            self._db.execute(
                "DELETE FROM rounds WHERE feed = ? AND role = ? AND id <= (SELECT id FROM "
                "rounds WHERE feed = ? AND role = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (feed, role, feed, role, ROUNDS_KEPT_PER_FEED))
            self._inserts += 1
            if self._inserts % 256 == 0 and newest is not None:
                self._db.execute("DELETE FROM rounds WHERE id <= ?", (newest - ROUNDS_KEPT,))

    def latest_rounds(self) -> list[RoundRecord]:
        """The newest round record of each feed (and role)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT feed, role, status, detail, entry, at FROM rounds WHERE id IN "
                "(SELECT MAX(id) FROM rounds GROUP BY feed, role) ORDER BY feed, role"
            ).fetchall()
        return [RoundRecord(feed=r[0], role=r[1], status=r[2], detail=r[3], entry=r[4], at=r[5])
                for r in rows]

    def round_counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT role, status, COUNT(*) FROM rounds GROUP BY role, status").fetchall()
        return {(r[0], r[1]): r[2] for r in rows}
