"""time-weighted-utilisation v2 (oracle.telemetry.methodology): hand-computed cases, the
max-gap rule, refusals (forged batches, unregistered GPUs, ...) and hypothesis
properties of the aggregation."""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle import attest, methodology
from oracle.methodology import MethodologyError, UtilisationFields
from oracle.telemetry import (
    MAX_GAP_S,
    GpuBinding,
    Sample,
    SignedBatch,
    load_nvsmi,
    make_snapshot,
    percent_str,
    sign_batch,
    utilisation_fields,
)
from oracle.telemetry.methodology import _round_half_even
from tests.oracle import _telemetry as t
from tests.oracle import factories as f
from tests.oracle.test_telemetry import NVSMI_VALUES


def gpus(n: int | None = None, *, extra: bool = False) -> list[GpuBinding]:
    """The first n GPUs of the demo agent (all 8 by default), plus agent2's two."""
    own = [b for b in t.registry().registered_gpus(t.SPV)
           if b.agent == t.address(t.agent_key())]
    own.sort(key=lambda b: t.uuids().index(b.uuid))
    chosen = own if n is None else own[:n]
    if extra:
        chosen += [b for b in t.registry().registered_gpus(t.SPV)
                   if b.agent == t.address(t.agent2_key())]
    return chosen


def snap(batches: Sequence[SignedBatch], start: int, end: int,
         registered: Sequence[GpuBinding] | None = None,
         invoices: Sequence[int] = ()) -> dict[str, Any]:
    return make_snapshot(t.SPV, start, end, list(gpus() if registered is None else registered),
                         list(batches), list(invoices))


def compute(snapshot: dict[str, Any]) -> UtilisationFields:
    out = methodology.compute("utilisation", attest.canonical_json(snapshot))
    assert isinstance(out, UtilisationFields)
    return out


def bps(snapshot: dict[str, Any]) -> int:
    return compute(snapshot).utilisation_bps


def one(uuid_index: int, points: Sequence[tuple[int, str]], sequence: int = 1) -> SignedBatch:
    uuid = t.uuids()[uuid_index]
    return t.signed([t.sample(uuid, when, p) for when, p in points], sequence=sequence)


# ------------------------------------------------------------------ worked cases


def test_nvsmi_capture_by_hand() -> None:
    """The shipped nvidia-smi capture: 6 one-minute samples per GPU, period 10:00-10:06:
    each GPU's utilisation is the mean of its 6 readings, the fleet's the mean of those."""
    batch = t.signed(load_nvsmi(t.NVSMI), source="nvidia-smi")
    fields = compute(snap([batch], t.T0, t.T0 + 360, invoices=[7, 8]))
    exact = Fraction(sum(map(sum, NVSMI_VALUES)), 6 * 8) * 100  # bps
    assert fields.utilisation_bps == round(exact) == 7_817
    assert (fields.gpu_count, fields.rental_revenue, fields.spv_token) == (8, 15, t.SPV)
    assert (fields.period_start, fields.period_end) == (t.T0, t.T0 + 360)
    # the two agent2 GPUs registered but silent count as idle: 8/10 of that
    assert bps(snap([batch], t.T0, t.T0 + 360, gpus(extra=True))) == round(exact * 8 / 10)


def test_max_gap_makes_a_silent_gpu_idle() -> None:
    hour = 3_600
    assert MAX_GAP_S == 900
    # one 100 % sample at the start holds 900 s of the hour: 25 %
    assert bps(snap([one(0, [(t.T0, "100")])], t.T0, t.T0 + hour, gpus(1))) == 2_500
    # samples every 900 s hold the whole hour
    every = [(t.T0 + k * 900, "100") for k in range(4)]
    assert bps(snap([one(0, every)], t.T0, t.T0 + hour, gpus(1))) == 10_000
    # 901 s apart: one second idle after each of the first three; the last (at 2703 s)
    # holds to the end: (3 x 900 + 897) / 3600
    spaced = [(t.T0 + k * 901, "100") for k in range(4)]
    assert bps(snap([one(0, spaced)], t.T0, t.T0 + hour, gpus(1))) == round(
        Fraction(3 * 900 + 897, hour) * 10_000) == 9_992


def test_samples_before_the_period_and_idle_before_the_first() -> None:
    hour = 3_600
    # 300 s before the start: holds 600 s into the period
    early = one(0, [(t.T0 - 300, "100")])
    assert bps(snap([early], t.T0, t.T0 + hour, gpus(1))) == round(Fraction(600, hour) * 10_000)
    # too early to matter
    assert bps(snap([one(0, [(t.T0 - 900, "100")])], t.T0, t.T0 + hour, gpus(1))) == 0
    # idle before the first sample (at +1800), which holds 900 s
    late = one(0, [(t.T0 + 1_800, "50")])
    assert bps(snap([late], t.T0, t.T0 + hour, gpus(1))) == 1_250
    # samples at or after the end do not count
    assert bps(snap([one(0, [(t.T0 + hour, "100")])], t.T0, t.T0 + hour, gpus(1))) == 0


def test_batches_merge_per_gpu() -> None:
    a = one(0, [(t.T0, "100"), (t.T0 + 600, "0")], sequence=1)
    b = one(0, [(t.T0 + 300, "50")], sequence=2)  # interleaves with a
    # 0..300 at 100, 300..600 at 50, 600..900 at 0: (300 + 150) / 900
    assert bps(snap([a, b], t.T0, t.T0 + 900, gpus(1))) == 5_000


@pytest.mark.parametrize(("num", "den", "expected"), [
    (5, 2, 2), (7, 2, 4), (1, 2, 0), (3, 2, 2), (10, 4, 2), (11, 4, 3), (0, 9, 0), (9, 3, 3),
])
def test_round_half_even(num: int, den: int, expected: int) -> None:
    assert _round_half_even(num, den) == expected


# ------------------------------------------------------------------ refusals


def base() -> dict[str, Any]:
    batch = t.signed([t.sample(u, t.T0, "50") for u in t.uuids()[:2]])
    return snap([batch], t.T0, t.T0 + 600, gpus(2))


def test_forged_batch_is_refused() -> None:
    tampered = base()
    tampered["batches"][0]["batch"]["samples"][0]["percent"] = "100"
    with pytest.raises(MethodologyError, match="altered or forged"):
        utilisation_fields(tampered)
    # a real signature by another key over the same batch
    forged = base()
    batch = forged["batches"][0]["batch"]
    outsider = sign_batch(t.batch([t.sample(u, t.T0, "50") for u in t.uuids()[:2]],
                                  k=t.outsider_key()), t.outsider_key())
    forged["batches"][0]["signature"] = outsider.signature
    assert forged["batches"][0]["batch"] == batch
    with pytest.raises(MethodologyError, match="altered or forged"):
        compute(forged)
    bad_v = base()
    bad_v["batches"][0]["signature"] = bad_v["batches"][0]["signature"][:-2] + "1d"
    with pytest.raises(MethodologyError, match="signature v must be 27 or 28"):
        compute(bad_v)


def mutate(change: str) -> dict[str, Any]:
    s = base()
    if change == "unlisted_gpu":
        s["gpus"] = [g for g in s["gpus"] if g["uuid"] != t.uuids()[1]]
    elif change == "other_agent":
        s["gpus"][0]["agent"] = t.address(t.agent2_key())
    elif change == "spv":
        s["batches"].append(t.signed([t.sample(t.uuids()[0], t.T0 + 1, "5")], spv=t.SPV2,
                                     sequence=2).canonical())
    elif change == "sequence":
        s["batches"].append(t.signed([t.sample(t.uuids()[0], t.T0 + 1, "5")]).canonical())
    elif change == "sample_twice":
        s["batches"].append(t.signed([t.sample(t.uuids()[0], t.T0, "5")],
                                     sequence=2).canonical())
    elif change == "serial":
        s["batches"] = [t.signed([t.sample(t.uuids()[0], t.T0, "5", serial="123")]
                                 ).canonical()]
    elif change == "gpu_twice":
        s["gpus"].append(copy.deepcopy(s["gpus"][0]))
    elif change == "extra_field":
        s["maxGap"] = 60
    elif change == "attestation":
        s["attestation"] = "tee"
    elif change == "empty_period":
        s["periodEnd"] = s["periodStart"]
    elif change == "no_gpus":
        s["gpus"] = []
    elif change == "negative_invoice":
        s["rentalInvoices"] = [-1]
    elif change == "float_invoice":
        s["rentalInvoices"] = ["1"]
    return s


@pytest.mark.parametrize(("change", "match"), [
    ("unlisted_gpu", "is not registered for the SPV"),
    ("other_agent", "is registered to agent"),
    ("spv", "reports for SPV"),
    ("sequence", "a second batch with that agent and sequence"),
    ("sample_twice", "a second sample for"),
    ("serial", "does not hash to the registered"),
    ("gpu_twice", "appears twice"),
    ("extra_field", "maxGap"),
    ("attestation", "attestation"),
    ("empty_period", "period is empty"),
    ("no_gpus", "gpus"),
    ("negative_invoice", "non-negative"),
    ("float_invoice", "rentalInvoices"),
])
def test_refusals(change: str, match: str) -> None:
    with pytest.raises(MethodologyError, match=match):
        compute(mutate(change))
    with pytest.raises(MethodologyError, match=match):
        utilisation_fields(mutate(change))  # directly, outside compute's wrapper too


# ------------------------------------------------------------------ properties

percents = st.decimals(min_value=0, max_value=100, places=4).map(percent_str)


@st.composite
def fleets(draw: st.DrawFn) -> tuple[int, int, list[list[Sample]]]:
    """(start, end, batches): up to 4 GPUs of the demo agent with random samples around
    the period, split into 1..3 batches."""
    start = t.T0
    end = start + draw(st.integers(60, 7_200))
    n = draw(st.integers(1, 4))
    samples: list[Sample] = []
    for i in range(n):
        times = draw(st.lists(st.integers(start - 1_200, end + 100), min_size=0,
                              max_size=6, unique=True))
        samples += [t.sample(t.uuids()[i], when, draw(percents)) for when in times]
    if not samples:
        samples = [t.sample(t.uuids()[0], start, draw(percents))]
    cuts = draw(st.lists(st.integers(0, len(samples)), max_size=2))
    bounds = sorted({0, len(samples), *cuts})
    parts = [samples[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    return start, end, parts


def sign_all(parts: list[list[Sample]]) -> list[SignedBatch]:
    return [t.signed(p, sequence=i + 1) for i, p in enumerate(parts)]


@given(percents, st.integers(60, 20_000), st.integers(1, 8))
def test_constant_utilisation_gives_itself(u: str, length: int, n: int) -> None:
    start, end = t.T0, t.T0 + length
    times = list(range(start, end, MAX_GAP_S))
    batch = t.signed([t.sample(uuid, when, u) for when in times for uuid in t.uuids()[:n]])
    expected = (Decimal(u) * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    assert bps(snap([batch], start, end, gpus(n))) == int(expected)


@given(fleets())
def test_bounds_order_and_reproducibility(fleet: tuple[int, int, list[list[Sample]]]) -> None:
    start, end, parts = fleet
    batches = sign_all(parts)
    n = 4
    snapshot = snap(batches, start, end, gpus(n))
    fields = compute(snapshot)
    assert 0 <= fields.utilisation_bps <= 10_000
    assert fields.gpu_count == n
    # the order of batches (and GPUs) in the input does not matter ...
    shuffled = list(batches)
    random.Random(len(parts)).shuffle(shuffled)
    reordered = snap(shuffled, start, end, list(reversed(gpus(n))))
    assert attest.canonical_json(reordered) == attest.canonical_json(snapshot)
    raw = copy.deepcopy(snapshot)
    raw["batches"].reverse()
    raw["gpus"].reverse()
    assert utilisation_fields(raw) == fields
    # ... and recomputing gives the same fields
    assert compute(snapshot) == fields


@given(fleets())
def test_silent_gpus_lower_the_fleet_figure(fleet: tuple[int, int, list[list[Sample]]]
                                            ) -> None:
    start, end, parts = fleet
    batches = sign_all(parts)
    reporting = bps(snap(batches, start, end, gpus(4)))
    with_silent = bps(snap(batches, start, end, gpus(4, extra=True)))
    assert with_silent <= reporting
    # exactly 4/6 of the figure, up to the two roundings
    assert abs(with_silent * 6 - reporting * 4) <= 5


@st.composite
def dense_fleets(draw: st.DrawFn) -> tuple[int, int, dict[str, list[tuple[int, str]]]]:
    """Samples from the period start on, never more than MAX_GAP_S apart, the last within
    MAX_GAP_S of the end: v1 and v2 see the same time-weighted figure."""
    start = t.T0
    end = start + draw(st.integers(60, 5_000))
    out = {}
    for i in range(draw(st.integers(1, 4))):
        times = [start]
        while True:
            step = draw(st.integers(1, MAX_GAP_S))
            if times[-1] + step >= end:
                break
            times.append(times[-1] + step)
        out[t.uuids()[i]] = [(when, draw(percents)) for when in times]
    return start, end, out


@given(dense_fleets())
def test_agrees_with_v1_when_no_gap_exceeds_the_limit(
        fleet: tuple[int, int, dict[str, list[tuple[int, str]]]]) -> None:
    start, end, series = fleet
    v1 = methodology.compute("utilisation", attest.canonical_json(
        f.utilisation_snapshot(start, end, series)))
    batch = t.signed([t.sample(u, when, p) for u, pts in series.items() for when, p in pts])
    v2 = compute(snap([batch], start, end, gpus(len(series))))
    assert v1 is not None
    assert abs(v1.utilisation_bps - v2.utilisation_bps) <= 1
    assert (v1.gpu_count, v1.spv_token) == (v2.gpu_count, v2.spv_token)
