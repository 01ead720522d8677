"""Turn a raw input snapshot into a signed report and append it to the attestation log.

The report commits to the log as it stands *before* its own entry: `logSize` is the
log's size and `logRoot` its RFC 6962 root. The append uses the log's optimistic
`expect_size`, so a concurrent append makes this one fail (and retry) instead of
logging a report whose checkpoint is not its predecessor's.

In this part of the oracle one process holds the k signer keys it signs with (the demo
and tests use 3 of a 5-key set); the multi-node quorum, where each node holds one key
and recomputes before co-signing, builds on the same functions.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from oracle import attest, methodology
from oracle.entries import ReportEntry, SignerSetEntry, parse_leaf
from oracle.log import AttestationLog, LogConflict

DATA_DIR = Path(__file__).resolve().parent / "data"
MAX_APPEND_ATTEMPTS = 5


def feed_id(name: str) -> str:
    """A feed id from a readable name: the name's UTF-8 bytes, right-padded to 32."""
    raw = name.encode()
    if not 0 < len(raw) <= 32:
        raise ValueError(f"a feed name is 1..32 bytes, got {len(raw)}: {name!r}")
    return "0x" + raw.ljust(32, b"\0").hex()


def feed_name(feed: str) -> str:
    """The readable name of a feed id made by `feed_id` (hex if it is not text)."""
    raw = bytes.fromhex(feed[2:]).rstrip(b"\0")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return feed


def listings_snapshot(csv_path: Path, feed: str) -> dict[str, Any]:
    """An `offer-median` v1 snapshot from one day's marketplace listings CSV (the format
    of `oracle/data/listings/`): one offer per listing at its USD price per GPU-hour,
    observed at the collection time."""
    offers: list[dict[str, Any]] = []
    collected = 0
    with csv_path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            seen = int(datetime.fromisoformat(row["collected_utc"]).timestamp())
            collected = max(collected, seen)
            offers.append(
                {
                    "provider": f"listing:{row['listing_id']}",
                    "gpu": row["gpu_name"],
                    "pricePerGpuHour": row["dph_per_gpu"],
                    "country": row["geolocation"].rsplit(",", 1)[-1].strip()[:2] or None,
                }
            )
    if not offers:
        raise ValueError(f"{csv_path}: no listings")
    return {
        "methodology": "offer-median",
        "version": 1,
        "feedId": feed,
        "observedAt": collected,
        "source": f"{csv_path.parent.name}/{csv_path.name} (CCIR sample data, MIT)",
        "offers": offers,
    }


def record_signer_set(
    log: AttestationLog, domain: attest.Domain, config_version: int, signers: Sequence[str],
    threshold: int,
) -> int:
    """Append the hub's signer set for `config_version` unless the log already has it;
    returns its entry index."""
    for index in log.indices("signer_set"):
        parsed = parse_leaf(log.entry(index).leaf)
        assert isinstance(parsed, SignerSetEntry)
        if parsed.domain == domain and parsed.config_version == config_version:
            if list(parsed.signers) != list(signers) or parsed.threshold != threshold:
                raise ValueError(
                    f"the log already records config version {config_version} with a "
                    "different signer set: this log belongs to another hub deployment"
                )
            return index
    for _ in range(MAX_APPEND_ATTEMPTS):
        size = log.size
        leaf = SignerSetEntry(
            index=size, domain=domain, config_version=config_version, signers=list(signers),
            threshold=threshold,
        ).leaf()
        try:
            return log.append(leaf, kind="signer_set", expect_size=size).index
        except LogConflict:
            continue
    raise RuntimeError("the log kept growing under us; is another writer busy? try again")


def attest_snapshot(
    log: AttestationLog,
    kind: str,
    snapshot: dict[str, Any],
    *,
    domain: attest.Domain,
    config_version: int,
    keys: Sequence[bytes | str],
) -> ReportEntry:
    """Compute the report from `snapshot`, sign it with `keys`, append it (with the
    canonical snapshot stored beside it); returns the logged entry."""
    inputs = attest.canonical_json(snapshot)
    fields = methodology.compute(kind, inputs)
    if fields is None:
        raise methodology.MethodologyError(
            f"no {kind} methodology {snapshot.get('methodology')!r} "
            f"v{snapshot.get('version')} in this build"
        )
    for _ in range(MAX_APPEND_ATTEMPTS):
        checkpoint = log.checkpoint()
        common = {
            "inputs_hash": attest.inputs_hash(inputs),
            "log_size": checkpoint.size,
            "log_root": "0x" + checkpoint.root.hex(),
            "config_version": config_version,
        }
        report: attest.PriceReport | attest.UtilisationReport
        if kind == "price":
            report = attest.PriceReport(**fields.model_dump(), **common)
        elif kind == "utilisation":
            report = attest.UtilisationReport(**fields.model_dump(), **common)
        else:
            raise ValueError(f"unknown report kind {kind!r}: price or utilisation")
        entry = ReportEntry(index=checkpoint.size, signed=attest.cosign(report, domain, keys))
        try:
            log.append(entry.leaf(), kind=kind, inputs=inputs, expect_size=checkpoint.size)
        except LogConflict:
            continue
        return entry
    raise RuntimeError("the log kept growing under us; is another writer busy? try again")
