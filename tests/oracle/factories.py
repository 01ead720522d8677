"""Shared builders for the oracle tests: signer keys, a domain, report and snapshot makers,
and real attestation logs (built the way the oracle builds them, or rewritten the way an
operator serving a doctored log would)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from itertools import count
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import to_checksum_address

from oracle import attest, canonical, reports
from oracle.entries import ReportEntry
from oracle.log import AttestationLog

LISTINGS_DIR = Path(reports.__file__).resolve().parent / "data" / "listings" / "h100-sxm-us"
LISTING_CSVS: tuple[Path, ...] = tuple(sorted(LISTINGS_DIR.glob("*.csv")))

CHAIN_ID = 31337
HUB = to_checksum_address("0x5fbdb2315678afecb367f032d93f642f64180aa3")
SPV = to_checksum_address("0xe7f1725e7734ce288f8367e1bb143e90bb3f0512")
DOMAIN = attest.Domain(chain_id=CHAIN_ID, hub=HUB)
FEED = reports.feed_id("H100-SXM-US")
CONFIG_VERSION = 1
THRESHOLD = 3
N_SIGNERS = 5


@cache
def signer_keys() -> tuple[bytes, ...]:
    """The 5 keys of the hub's signer set (dev accounts 20..24 of the dev mnemonic)."""
    from gpushares.devnode import dev_key

    return tuple(dev_key(20 + i) for i in range(N_SIGNERS))


@cache
def outsider_key() -> bytes:
    """A key that is not in the signer set (dev account 40)."""
    from gpushares.devnode import dev_key

    return dev_key(40)


def address(key: bytes) -> str:
    return Account.from_key(key).address


def signer_addresses() -> list[str]:
    """The signer set as the hub stores it: ascending by address."""
    return sorted((address(k) for k in signer_keys()), key=lambda a: int(a, 16))


def quorum() -> tuple[bytes, ...]:
    """The 3 keys the oracle signs with (threshold of the 3-of-5 set)."""
    return signer_keys()[:THRESHOLD]


def fake_clock(start: int = 1_772_000_000):
    ticks = count(start)
    return lambda: next(ticks)


# ------------------------------------------------------------------------- reports

HASH_A = "0x" + "aa" * 32
HASH_B = "0x" + "bb" * 32


def price_report(**overrides: Any) -> attest.PriceReport:
    fields: dict[str, Any] = {
        "feed_id": FEED,
        "value": 160_083_350,
        "confidence": 10_994_450,
        "observed_at": 1_772_121_470,
        "methodology_version": 1,
        "inputs_hash": HASH_A,
        "log_size": 1,
        "log_root": HASH_B,
        "config_version": CONFIG_VERSION,
    }
    fields.update(overrides)
    return attest.PriceReport(**fields)


def utilisation_report(**overrides: Any) -> attest.UtilisationReport:
    fields: dict[str, Any] = {
        "spv_token": SPV,
        "period_start": 1_772_064_000,
        "period_end": 1_772_150_400,
        "gpu_count": 4,
        "utilisation_bps": 7_250,
        "rental_revenue": 1_234_000_000,
        "inputs_hash": HASH_A,
        "log_size": 2,
        "log_root": HASH_B,
        "config_version": CONFIG_VERSION,
    }
    fields.update(overrides)
    return attest.UtilisationReport(**fields)


def report_leaf(
    index: int,
    report: attest.PriceReport | attest.UtilisationReport,
    keys: Iterable[bytes] | None = None,
    domain: attest.Domain = DOMAIN,
) -> bytes:
    """The leaf of `report` co-signed by `keys` (default: the quorum) at `index`."""
    signed = attest.cosign(report, domain, quorum() if keys is None else keys)
    return ReportEntry(index=index, signed=signed).leaf()


# ------------------------------------------------------------------------ snapshots


def price_snapshot(prices: Sequence[str], *, observed_at: int = 1_772_121_470) -> dict[str, Any]:
    """An `offer-median` v1 snapshot with one offer per price."""
    return {
        "methodology": "offer-median",
        "version": 1,
        "feedId": FEED,
        "observedAt": observed_at,
        "source": "unit test",
        "offers": [
            {"provider": f"p{i}", "gpu": "H100 SXM", "pricePerGpuHour": p, "country": "US"}
            for i, p in enumerate(prices)
        ],
    }


def utilisation_snapshot(
    start: int, end: int, gpus: dict[str, list[tuple[int, str]]], invoices: Sequence[int] = ()
) -> dict[str, Any]:
    """A `time-weighted-utilisation` v1 snapshot (`gpus`: uuid -> [(time, percent)])."""
    return {
        "methodology": "time-weighted-utilisation",
        "version": 1,
        "spvToken": SPV,
        "periodStart": start,
        "periodEnd": end,
        "gpus": [{"uuid": u, "samples": [[t, p] for t, p in s]} for u, s in gpus.items()],
        "rentalInvoices": list(invoices),
    }


def day_start(csv_path: Path) -> int:
    """Midnight UTC of the day a listings CSV is named after."""
    return int(datetime.fromisoformat(csv_path.stem).replace(tzinfo=UTC).timestamp())


def fleet_snapshot(day: int) -> dict[str, Any]:
    """A constructed day of utilisation for a 4-GPU fleet: samples every 6 hours, one GPU
    reporting from before the period, one reporting past its end, one starting late."""
    start = day_start(LISTING_CSVS[day])
    end = start + 86_400
    h = 3_600
    busy = ["100", "87.5", "62.25", "0"]
    gpus = {
        f"GPU-{day}-a": [(start - 2 * h, "40"), (start + 6 * h, "100"), (start + 18 * h, "75")],
        f"GPU-{day}-b": [(start + i * 6 * h, busy[(i + day) % 4]) for i in range(4)],
        f"GPU-{day}-c": [(start + 3 * h, "55.5"), (end, "100"), (end + h, "0")],
        f"GPU-{day}-d": [(start + 12 * h + day * 60, "99.99")],
    }
    return utilisation_snapshot(start, end, gpus, [1_500_000_000 + day, 250_000_000 * day, 7])


def reference_snapshots() -> list[tuple[str, dict[str, Any]]]:
    """(kind, snapshot) of the reference log's 12 reports: for each of the 6 days of real
    listings, its price report then a utilisation report."""
    out: list[tuple[str, dict[str, Any]]] = []
    for day, csv_path in enumerate(LISTING_CSVS):
        out.append(("price", reports.listings_snapshot(csv_path, FEED)))
        out.append(("utilisation", fleet_snapshot(day)))
    return out


# ----------------------------------------------------------------------------- logs


def build_log(
    path: Path, snapshots: Sequence[tuple[str, dict[str, Any]]] | None = None
) -> AttestationLog:
    """A log as the oracle writes it: the 3-of-5 signer set (entry 0), then one signed
    report per snapshot (entries 1..), each committing to the log before it."""
    log = AttestationLog(path, clock=fake_clock())
    reports.record_signer_set(log, DOMAIN, CONFIG_VERSION, signer_addresses(), THRESHOLD)
    for kind, snapshot in reference_snapshots() if snapshots is None else snapshots:
        reports.attest_snapshot(
            log, kind, snapshot, domain=DOMAIN, config_version=CONFIG_VERSION, keys=quorum()
        )
    return log


@dataclass(frozen=True)
class Row:
    """What an operator serving a log controls for one entry: its bytes and inputs."""

    leaf: bytes
    kind: str
    inputs: bytes | None


def rows_of(log: AttestationLog) -> list[Row]:
    return [Row(e.leaf, e.kind, e.inputs) for e in log.entries()]


def write_log(path: Path, rows: Iterable[Row]) -> AttestationLog:
    """A new log file holding `rows`, appended through the AttestationLog API: a doctored
    log that passes the file's own integrity checks."""
    log = AttestationLog(path, clock=fake_clock())
    for row in rows:
        log.append(row.leaf, kind=row.kind, inputs=row.inputs)
    return log


def leaf_data(leaf: bytes) -> dict[str, Any]:
    data = json.loads(leaf)
    assert isinstance(data, dict)
    return data


def to_leaf(data: dict[str, Any]) -> bytes:
    """`data` (a decoded leaf, perhaps doctored) written in its entry format version."""
    return canonical.jcs(data) if data.get("v") == 2 else canonical.legacy_v1(data)


def renumbered(rows: Sequence[Row]) -> list[Row]:
    """`rows` with every entry's `index` field rewritten to its new position (the index
    is not covered by the report signatures, so this keeps every signature valid)."""
    out = []
    for position, row in enumerate(rows):
        data = leaf_data(row.leaf)
        data["index"] = position
        out.append(Row(to_leaf(data), row.kind, row.inputs))
    return out


def replace_byte(data: bytes, old: bytes, new: bytes) -> bytes:
    """`data` with the single occurrence of `old` replaced by `new` (same length)."""
    assert len(old) == len(new) and data.count(old) == 1, (old, data.count(old))
    return data.replace(old, new)


def raw_connection(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)
