"""oracle.telemetry.store: accepting signed batches (every rejection code, nothing written
on rejection), durability across reopening, and the v2 snapshot it builds."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oracle import attest, methodology
from oracle.telemetry import (
    SignedBatch,
    TelemetryError,
    TelemetryRejected,
    TelemetryStore,
    batch_hash,
    load_dcgm,
    sign_batch,
)
from tests.oracle import _telemetry as t
from tests.oracle.test_telemetry import GR_1, GR_2

NOW = t.T0 + 2


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with TelemetryStore(tmp_path / "telemetry.sqlite", t.registry()) as s:
        yield s


def scrape_batch(**kw: Any) -> SignedBatch:
    return t.signed(load_dcgm(t.DCGM_1, scraped_at=t.T0), created_at=t.T0 + 1, **kw)


def dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return list(db.iterdump())


def test_accept_and_answer(store: TelemetryStore) -> None:
    signed = scrape_batch()
    accepted = store.accept(signed, now=NOW)
    assert accepted.response() == {"accepted": True, "batchHash": batch_hash(signed.batch),
                                   "samples": 8}
    assert accepted.agent == t.address(t.agent_key()) and accepted.sequence == 1
    assert store.counts() == {"batches": 1, "samples": 8}
    assert store.last_sequence(accepted.agent) == 1
    assert store.batches(t.SPV, t.T0, t.T0 + 1) == [signed]
    # the request body as a dict is accepted the same way
    second = t.signed(load_dcgm(t.DCGM_2, scraped_at=t.T0 + 300), sequence=2)
    assert store.accept(second.canonical(), now=t.T0 + 301).samples == 8


def rejections() -> list[tuple[str, Any]]:
    """(code, a function giving (body, now)) for every rejection code."""
    uuid = t.uuids()[0]
    one = [t.sample(uuid, t.T0, "50")]

    def unsigned() -> Any:
        return {"batch": t.batch(one).canonical(), "signature": ""}

    def missing_signature() -> Any:
        return {"batch": t.batch(one).canonical()}

    def bad_signature() -> Any:  # signed by someone else, naming the agent
        return sign_batch(t.batch(one), t.agent_key()).model_copy(
            update={"signature": sign_batch(t.batch(one, k=t.outsider_key()),
                                            t.outsider_key()).signature})

    def malformed_signature() -> Any:
        return {"batch": t.batch(one).canonical(), "signature": "0xdeadbeef"}

    def altered() -> Any:
        body = t.signed(one).canonical()
        body["batch"]["samples"][0]["percent"] = "99"
        return body

    def unknown_agent() -> Any:
        return t.signed(one, k=t.outsider_key())

    def wrong_spv() -> Any:
        return t.signed(one, spv=t.SPV2)

    def unknown_gpu() -> Any:  # a GPU of the second agent
        return t.signed([t.sample(t.EXTRA_GPUS[0][0], t.T0, "50")])

    def unregistered_gpu() -> Any:
        return t.signed([t.sample("GPU-ffffffff-4e5f-6071-8293-a4b5c6d7e8f9", t.T0, "50")])

    def wrong_serial() -> Any:
        return t.signed([t.sample(uuid, t.T0, "50", serial="1652922099999")])

    def stale() -> Any:
        return t.signed([t.sample(uuid, NOW - 901, "50")], created_at=NOW - 5)

    def stale_batch() -> Any:
        return t.signed(one, created_at=NOW - 901)

    def future() -> Any:
        return t.signed([t.sample(uuid, NOW + 61, "50")], created_at=NOW)

    def invalid() -> Any:
        body = t.signed(one).canonical()
        body["batch"]["samples"][0]["percent"] = 50
        return body

    def invalid_shape() -> Any:
        return ["not", "an", "object"]

    def extra_field() -> Any:
        return {**t.signed(one).canonical(), "note": "hi"}

    return [
        ("unsigned", unsigned), ("unsigned", missing_signature),
        ("bad_signature", bad_signature), ("bad_signature", malformed_signature),
        ("bad_signature", altered),
        ("unknown_agent", unknown_agent), ("wrong_spv", wrong_spv),
        ("unknown_gpu", unknown_gpu), ("unknown_gpu", unregistered_gpu),
        ("unknown_gpu", wrong_serial),
        ("stale", stale), ("stale", stale_batch), ("future", future),
        ("invalid", invalid), ("invalid", invalid_shape), ("invalid", extra_field),
    ]


@pytest.mark.parametrize(("code", "make"), rejections(),
                         ids=[make.__name__ for _, make in rejections()])
def test_rejections_change_nothing(store: TelemetryStore, code: str, make: Any) -> None:
    store.accept(scrape_batch(), now=NOW)
    before = dump(store.path)
    with pytest.raises(TelemetryRejected) as info:
        store.accept(make(), now=NOW)
    assert info.value.code == code, info.value
    assert info.value.detail() == {"code": code, "message": info.value.message}
    assert 400 <= info.value.http_status < 500
    assert dump(store.path) == before


def test_replays(store: TelemetryStore) -> None:
    uuid = t.uuids()[0]
    first = t.signed([t.sample(uuid, t.T0, "50")], sequence=5)
    store.accept(first, now=NOW)
    before = dump(store.path)
    cases = {
        # the identical batch again
        "identical": first,
        # new samples but a sequence not above the last
        "sequence": t.signed([t.sample(uuid, t.T0 + 1, "50")], sequence=5),
        "lower": t.signed([t.sample(uuid, t.T0 + 1, "50")], sequence=4),
        # a new sequence repeating an accepted (uuid, time)
        "sample": t.signed([t.sample(uuid, t.T0, "60")], sequence=6),
    }
    messages = {}
    for name, body in cases.items():
        with pytest.raises(TelemetryRejected) as info:
            store.accept(body, now=NOW)
        assert info.value.code == "replayed", name
        assert info.value.http_status == 409
        messages[name] = info.value.message
        assert dump(store.path) == before
    assert batch_hash(first.batch) in messages["identical"]
    assert "not above its last accepted sequence 5" in messages["sequence"]
    assert f"{uuid} at unix time {t.T0}" in messages["sample"]
    # sequences are per agent: another agent starts anywhere
    other = t.signed([t.sample(t.EXTRA_GPUS[0][0], t.T0, "1")], k=t.agent2_key(), sequence=1)
    assert store.accept(other, now=NOW).sequence == 1


def test_durable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.sqlite"
    signed = scrape_batch()
    with TelemetryStore(path, t.registry()) as s:
        s.accept(signed, now=NOW)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    with TelemetryStore(path, t.registry()) as s:
        assert s.batches(t.SPV, t.T0, t.T0 + 1) == [signed]
        with pytest.raises(TelemetryRejected, match="replayed"):
            s.accept(signed, now=NOW)
        with pytest.raises(sqlite3.DatabaseError, match="immutable"):
            s._db.execute("UPDATE batches SET sequence = 99")


def test_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TelemetryError, match="not a telemetry store"):
        TelemetryStore(path)


def test_store_needs_a_registry(tmp_path: Path) -> None:
    with TelemetryStore(tmp_path / "x.sqlite") as s:
        with pytest.raises(TelemetryError, match="no agent registry"):
            s.accept(scrape_batch(), now=NOW)
        assert s.accept(scrape_batch(), t.registry(), now=NOW).samples == 8


def test_snapshot_end_to_end(store: TelemetryStore) -> None:
    """Two DCGM scrapes 5 minutes apart; period 10:00-10:10. Each scrape's sample holds
    300 s; the agent2 GPUs report nothing (idle)."""
    store.accept(scrape_batch(), now=NOW)
    store.accept(t.signed(load_dcgm(t.DCGM_2, scraped_at=t.T0 + 300), sequence=2),
                 now=t.T0 + 301)
    snap = store.snapshot(t.SPV, t.T0, t.T0 + 600, rental_invoices=[1_000, 2_500])
    assert snap["methodology"] == "time-weighted-utilisation" and snap["version"] == 2
    assert snap["attestation"] == "self-reported"
    assert [g["serialHash"] for g in snap["gpus"]] == sorted(g["serialHash"]
                                                             for g in snap["gpus"])
    assert len(snap["gpus"]) == 10 and len(snap["batches"]) == 2
    assert set(snap) == {"methodology", "version", "attestation", "spvToken", "periodStart",
                         "periodEnd", "gpus", "batches", "rentalInvoices"}
    fields = methodology.compute("utilisation", attest.canonical_json(snap))
    total = sum(Decimal(a) * 300 + Decimal(b) * 300 for a, b in zip(GR_1, GR_2, strict=True))
    expected = total / (100 * 600 * 10) * 10_000
    assert fields is not None
    assert fields.utilisation_bps == int(expected.quantize(Decimal(1)))
    assert fields.gpu_count == 10 and fields.rental_revenue == 3_500
    # a later period sees the second scrape only if within the max gap
    assert len(store.snapshot(t.SPV, t.T0 + 1200, t.T0 + 1800)["batches"]) == 1
    assert store.snapshot(t.SPV, t.T0 + 1300, t.T0 + 1800)["batches"] == []
    with pytest.raises(TelemetryError, match="no GPU is registered"):
        store.snapshot(t.SPV.lower().replace("e7", "e8"), t.T0, t.T0 + 600)
    with pytest.raises(ValueError, match="empty period"):
        store.snapshot(t.SPV, t.T0, t.T0)


def test_snapshot_leaves_out_batches_the_registry_no_longer_allows(
        store: TelemetryStore) -> None:
    store.accept(scrape_batch(), now=NOW)
    moved = t.registry().model_validate({"agents": [
        e.model_dump(by_alias=True) if e.address != t.address(t.agent_key())
        else {**e.model_dump(by_alias=True), "address": t.address(t.outsider_key())}
        for e in t.registry().agents]})
    snap = store.snapshot(t.SPV, t.T0, t.T0 + 600, registry=moved)
    assert snap["batches"] == []
    assert methodology.compute("utilisation", attest.canonical_json(snap)).utilisation_bps == 0
