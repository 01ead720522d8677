"""The local chain's clock, set where the shipped data is.

The demo, the benchmark and the integration tests start anvil with its genesis block
at the time of the first shipped marketplace snapshot, and move the chain's clock
forward as the story reaches each later snapshot. Every "now" (a report's staleness, a
KYC record's expiry, the depreciation in a NAV per share) is then read from the chain,
and the same run gives the same numbers on any day it is run: nothing depends on this
machine's calendar.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from gpushares.devnode import PROJECT_ROOT

OFFERS = PROJECT_ROOT / "oracle" / "data" / "offers"
HOUR = 3_600


def snapshot_time(path: Path) -> int:
    """When a marketplace snapshot file was collected (its `collected_utc`), unix time."""
    data = json.loads(gzip.decompress(path.read_bytes()) if path.suffix == ".gz"
                      else path.read_bytes())
    return int(datetime.fromisoformat(data["collected_utc"]).timestamp())


@lru_cache(maxsize=8)
def snapshot_times(folder: Path = OFFERS) -> tuple[int, ...]:
    """The collection times of the snapshots in `folder`, oldest first."""
    return tuple(sorted(snapshot_time(p) for p in folder.glob("*.json*")))


def after(moment: int) -> int:
    """The first full hour after `moment`: when a day's snapshot is on-chain-fresh."""
    return (moment // HOUR + 1) * HOUR


def genesis() -> int:
    """Genesis time of the local chains: the hour after the first shipped snapshot
    (2026-02-27 16:00 UTC for the data in this repository)."""
    return after(snapshot_times()[0])


def utc(moment: int) -> str:
    """`2026-02-27 16:00 UTC`."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")
