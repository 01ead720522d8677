"""A node's own durable state beside its attestation log (SQLite, WAL, synchronous=FULL):

- `votes`: the one report this node signed for each log position, so two different
  reports can never both gather a quorum for the same position (with k > n/2). A vote
  binds for `vote_ttl_s`; a leader never appends after its round deadline, which is
  shorter, so a released position is one no leader can still fill.
- `led`: the entries this node appended as a round leader (it publishes those).
- `rounds`: the outcome of every round this node led or refused to co-sign, per feed,
  so `/healthz` says why nothing was published even when the round ran in another
  process (`gpu-oracle round`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

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
"""


class RoundRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    feed: str
    role: str  # "leader" or "cosigner"
    status: str
    detail: str | None
    entry: int | None
    at: float


class VoteConflict(Exception):
    """This node already signed another report for that log position."""


class NodeState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def vote(self, position: int, digest: str, feed: str, *, ttl_s: float,
             now: float | None = None) -> None:
        """Record this node's vote for `digest` at log `position` (idempotent for the same
        digest); raises VoteConflict if it voted for another report there within ttl."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT digest, at FROM votes WHERE position = ?",
                                       (position,)).fetchone()
                if row is not None and row[0] != digest and now - row[1] < ttl_s:
                    raise VoteConflict(
                        f"this node already signed another report for log position {position} "
                        f"{now - row[1]:.0f}s ago; it may sign again after {ttl_s:.0f}s")
                if row is None or row[0] != digest:
                    self._db.execute(
                        "INSERT OR REPLACE INTO votes(position, digest, feed, at) "
                        "VALUES (?, ?, ?, ?)", (position, digest, feed, now))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def mark_led(self, entry_index: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO led(entry_index, at) VALUES (?, ?)",
                             (entry_index, time.time()))

    def led(self) -> list[int]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT entry_index FROM led ORDER BY 1")]

    def record_round(self, feed: str, role: str, status: str, detail: str | None = None,
                     entry: int | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO rounds(feed, role, status, detail, entry, at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (feed, role, status, detail, entry, time.time()))

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
