"""A durable record of how many rows each source returned, to notice a source that
suddenly returns far fewer (an API change, a partial download, a filter gone wrong)
before its thin data moves the index.

The record is a small SQLite file (one row per run), so concurrent runs do not lose
each other's updates and a crash mid-write leaves the previous state intact.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from oracle.sources.errors import SourceError

WINDOW = 7  # runs the usual count is the median of
MIN_RUNS = 3  # runs needed before a drop is flagged
THRESHOLD = Decimal("0.5")  # flag when accepted < THRESHOLD * median
KEEP = 200  # runs kept per source; older ones are pruned

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    accepted INTEGER NOT NULL CHECK (accepted >= 0),
    recorded_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_source ON runs (source, id);
"""


def _median(values: list[int]) -> Decimal:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return Decimal(ordered[mid])
    return (Decimal(ordered[mid - 1]) + Decimal(ordered[mid])) / 2


class RowCountHistory:
    """Accepted-row counts per source name, persisted in the SQLite file at `path`
    (created with its parent folder if missing)."""

    def __init__(self, path: Path, *, clock: Callable[[], int] | None = None) -> None:
        self.path = Path(path)
        self._clock = clock or (lambda: time.time_ns() // 1_000_000_000)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise SourceError(f"{self.path}: cannot open the row-count history ({exc}); "
                              "check the path, or move a damaged file aside to start a "
                              "fresh history") from exc

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        return db

    def recent(self, source: str, limit: int = WINDOW) -> list[int]:
        """The accepted counts of the source's last `limit` runs, oldest first."""
        try:
            db = self._connect()
            try:
                rows = db.execute(
                    "SELECT accepted FROM runs WHERE source = ? ORDER BY id DESC LIMIT ?",
                    (source, limit)).fetchall()
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise SourceError(f"{self.path}: cannot read the row-count history ({exc}); "
                              "move the damaged file aside to start a fresh one") from exc
        return [r[0] for r in reversed(rows)]

    def check_and_record(self, source: str, accepted: int) -> tuple[bool, str | None]:
        """Compare this run with the source's usual count, then record it.

        Returns (True, note) when `accepted` is below half the median of the last
        `WINDOW` recorded runs and at least `MIN_RUNS` runs are recorded; otherwise
        (False, None). The run is recorded either way, so a lasting change becomes the
        new usual after a few runs.
        """
        if isinstance(accepted, bool) or not isinstance(accepted, int) or accepted < 0:
            raise ValueError(f"accepted must be a non-negative integer, got {accepted!r}")
        try:
            db = self._connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    rows = db.execute(
                        "SELECT accepted FROM runs WHERE source = ? ORDER BY id DESC LIMIT ?",
                        (source, WINDOW)).fetchall()
                    db.execute(
                        "INSERT INTO runs (source, accepted, recorded_at) VALUES (?, ?, ?)",
                        (source, accepted, self._clock()))
                    db.execute(
                        "DELETE FROM runs WHERE source = ? AND id NOT IN (SELECT id FROM runs "
                        "WHERE source = ? ORDER BY id DESC LIMIT ?)", (source, source, KEEP))
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise SourceError(f"{self.path}: cannot update the row-count history ({exc}); "
                              "move the damaged file aside to start a fresh one") from exc
        counts = [r[0] for r in rows]
        if len(counts) < MIN_RUNS:
            return False, None
        usual = _median(counts)
        if Decimal(accepted) < THRESHOLD * usual:
            usual_text = format(usual.normalize(), "f") if usual % 1 else str(int(usual))
            return True, (f"returned {accepted} rows, usual is {usual_text} "
                          f"(median of the last {len(counts)} runs)")
        return False, None
