"""oracle.index: the GPU-hour index. Version 1 (kept so logged values verify):
properties with hypothesis (permutation invariance, bounds, bounded influence of one
contributor, the weight cap), the publication gates, each drop rule, determinism, market
utilisation. Version 2 (what nodes build): voice by GPU capacity, so made-up hosts do not
move it (the review's Sybil attack), the listings contributor, the same properties; and
the five shipped marketplace days for every model (including the results table of
docs/index-methodology.md, regenerated here from the code)."""

from __future__ import annotations

import decimal
import random
import re
from collections.abc import Sequence
from decimal import Decimal
from functools import cache, partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from oracle import attest, index, methodology
from oracle.methodology import MethodologyError, PriceFields
from oracle.sources.marketplace import parse_snapshot
from oracle.sources.quote import Quote, SourceResult, SourceTier

ROOT = Path(index.__file__).resolve().parent.parent
OFFER_FILES = tuple(sorted((ROOT / "oracle" / "data" / "offers").glob("*.json.gz")))
DOC = ROOT / "docs" / "index-methodology.md"
H100 = "H100-SXM-80GB/USD/GPUh"
T0 = 1_772_000_000
EPS = Decimal("1e-40")  # room for Decimal rounding at 120 significant digits


def quote(host: str = "h1", price: str = "2", *, provider: str = "market", offer: str = "",
          machine: str | None = None, gpu: str = "H100 SXM", ram: int | None = 80,
          count: int = 1, fraction: str | None = None, reliability: str | None = "0.99",
          rented: bool = False, observed_at: int = T0,
          tier: SourceTier = SourceTier.EXECUTABLE_OFFER) -> Quote:
    return Quote(source="test", provider=provider, host=host,
                 offer_id=offer or f"{host}-{machine}-{price}-{count}", machine=machine,
                 gpu_name=gpu, gpu_ram_gb=ram, gpu_count=count, gpu_fraction=fraction,
                 price_per_gpu_hour=price, reliability=reliability, rented=rented,
                 observed_at=observed_at, tier=tier)


def contributor(host: str, price: str, machines: int = 2,
                tier: SourceTier = SourceTier.EXECUTABLE_OFFER,
                provider: str = "market") -> list[Quote]:
    """A contributor whose value is exactly `price`: `machines` machines, one quote each."""
    return [quote(host, price, provider=provider, machine=f"{host}-m{i}", tier=tier,
                  offer=f"{provider}-{host}-{i}") for i in range(machines)]


# The version 1 tests build version 1 snapshots.
build_v1 = partial(index.build_snapshot, version=1)
feeds_v1 = partial(index.index_feed_snapshots, version=1)


def run(quotes: Sequence[Quote], feed: str = H100, observed_at: int = T0,
        version: int = 1) -> index.IndexResult:
    return index.evaluate(index.build_snapshot(feed, quotes, observed_at, version=version))


def points(result: index.IndexResult) -> list[tuple[Decimal, Decimal]]:
    out = []
    for c in result.contributor_values:
        if c.accepted:
            assert c.share is not None
            out.append((c.value, c.share))
    return out


def accepted_keys(result: index.IndexResult) -> set[str]:
    return {c.key for c in result.contributor_values if c.accepted}


def no_floats(value: Any) -> bool:
    if isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(no_floats(k) and no_floats(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(no_floats(v) for v in value)
    return True


# ---------------------------------------------------------------- strategies

prices = st.integers(min_value=100, max_value=100_000).map(lambda c: str(Decimal(c) / 10_000))
tiers = st.sampled_from(list(SourceTier))


@st.composite
def contributors(draw: st.DrawFn, min_size: int = 5, max_size: int = 12,
                 price: st.SearchStrategy[str] = prices, min_machines: int = 1) -> list[Quote]:
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    out: list[Quote] = []
    for i in range(n):
        out += contributor(f"h{i}", draw(price), draw(st.integers(min_machines, 4)),
                           draw(tiers))
    return out


# ------------------------------------------------------------- table and feeds


def test_feeds_cover_every_model_within_32_bytes() -> None:
    assert set(index.MODELS) == {f.model for f in index.FEEDS.values()}
    expected = {"H100-SXM-80GB", "H100-PCIE-80GB", "H200-141GB", "H200-NVL-141GB",
                "A100-SXM-80GB", "A100-PCIE-80GB", "L40S-48GB", "RTX4090-24GB", "V100-32GB"}
    assert set(index.MODELS) == expected
    for name, feed in index.FEEDS.items():
        assert len(name.encode()) <= 32 and feed.name == name
        assert index.feed_name_for(feed.model) == name
        assert feed.feed_id.startswith("0x") and len(feed.feed_id) == 66
    assert index.feed_name_for("H100-SXM-80GB") == "H100-SXM-80GB/USD/GPUh"
    with pytest.raises(ValueError, match="unknown GPU model"):
        index.feed_name_for("B200")


@pytest.mark.parametrize(("listed", "key", "gb"), [
    ("H100 SXM", "H100-SXM-80GB", None),
    ("NVIDIA H100 80GB HBM3", "H100-SXM-80GB", 80),
    ("h100-sxm5", "H100-SXM-80GB", None),
    ("H100 PCIE", "H100-PCIE-80GB", None),
    ("NVIDIA A100-SXM4-40GB", "A100-SXM-80GB", 40),
    ("NVIDIA A100 80GB PCIe", "A100-PCIE-80GB", 80),
    ("Tesla V100", "V100-32GB", None),
    ("NVIDIA GeForce RTX 4090", "RTX4090-24GB", None),
    ("H200 NVL", "H200-NVL-141GB", None),
    ("H200", "H200-141GB", None),
    ("L40S", "L40S-48GB", None),
    ("L40", None, None),
    ("RTX 4090 D", None, None),
    ("H100", None, None),
])
def test_names_match_the_model_table(listed: str, key: str | None, gb: int | None) -> None:
    model = index.model_for_name(listed)
    assert (model.key if model else None) == key
    assert index.normalise_gpu_name(listed)[1] == gb


def test_every_memory_factor_is_published_with_its_verdict() -> None:
    for model in index.MODELS.values():
        assert model.memory[0].factor == 1 and model.memory[0].admitted()
        for cls in model.memory:
            assert cls.rationale and cls.lo_gb <= cls.nominal_gb <= cls.hi_gb
            assert cls.admitted() == (abs(cls.factor.ln()) <= index.MAX_ABS_LN_FACTOR)
    assert index.MODELS["V100-32GB"].memory[1].admitted()
    assert not index.MODELS["RTX4090-24GB"].memory[1].admitted()
    assert not index.MODELS["A100-PCIE-80GB"].memory[1].admitted()


# ------------------------------------------------------------------- snapshot


@given(contributors(), st.randoms(use_true_random=False))
def test_permutation_invariance(quotes: list[Quote], rnd: random.Random) -> None:
    shuffled = list(quotes)
    rnd.shuffle(shuffled)
    a = build_v1(H100, quotes, T0)
    b = build_v1(H100, shuffled, T0)
    assert attest.canonical_json(a) == attest.canonical_json(b)
    # evaluate does not rely on the snapshot's order either
    c = dict(b, quotes=list(reversed(b["quotes"])))
    assert index.evaluate(a) == index.evaluate(b) == index.evaluate(c)


def test_snapshot_shape_and_hash() -> None:
    quotes = [q for i in range(6) for q in contributor(f"h{i}", f"1.{i}")]
    sources = [{"source": "b", "rows": 3}, {"source": "a", "rows": 2}]
    snap = build_v1(H100, quotes, T0, sources)
    assert list(snap) == ["methodology", "version", "feedId", "model", "observedAt",
                          "sources", "quotes"]
    assert snap["methodology"] == "gpu-hour-index" and snap["version"] == 1
    assert snap["model"] == "H100-SXM-80GB" and snap["feedId"] == index.FEEDS[H100].feed_id
    assert [s["source"] for s in snap["sources"]] == ["a", "b"]
    body = attest.canonical_json(snap)
    assert attest.inputs_hash(body) == attest.inputs_hash(
        attest.canonical_json(build_v1(H100, quotes[::-1], T0, sources[::-1])))
    with pytest.raises(ValueError, match="unknown index feed"):
        build_v1("B200/USD/GPUh", quotes, T0)


def test_index_feed_snapshots_groups_by_model() -> None:
    quotes = [quote("a", gpu="H100 SXM"), quote("b", gpu="Tesla V100", ram=16),
              quote("c", gpu="RTX 4090", ram=48), quote("d", gpu="B200", ram=192)]
    snaps = feeds_v1(quotes, T0)
    assert set(snaps) == set(index.FEEDS)
    assert [q["host"] for q in snaps[H100]["quotes"]] == ["a"]
    assert [q["host"] for q in snaps["V100-32GB/USD/GPUh"]["quotes"]] == ["b"]
    assert [q["host"] for q in snaps["RTX4090-24GB/USD/GPUh"]["quotes"]] == ["c"]
    assert snaps["H200-141GB/USD/GPUh"]["quotes"] == []
    assert index.evaluate(snaps["H200-141GB/USD/GPUh"]).withheld_reason.startswith(
        "too_few_contributors: 0")


def test_source_descriptions_are_canonical() -> None:
    source = shipped_day(OFFER_FILES[-1])
    described = index.describe_source(source)
    assert described["rowsSeen"] == source.rows_seen and described["source"] == "vastai-offers"
    snaps = index.index_feed_snapshots(source.quotes, source.observed_at, [described])
    body = attest.canonical_json(snaps[H100])  # no floats anywhere
    assert b'"rowsRejected"' in body
    assert index.evaluate(snaps[H100]) == shipped_results()["2026-03-03"][H100]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda s: s.update(version=3), "version"),
    (lambda s: s.update(methodology="offer-median"), "methodology"),
    (lambda s: s.update(feedId="0x" + "00" * 32), "not an index feed"),
    (lambda s: s.update(model="V100-32GB"), "is not the model of feed"),
    (lambda s: s.update(extra=1), "extra"),
    (lambda s: s["quotes"][0].update(pricePerGpuHour="-1"), "pricePerGpuHour"),
    (lambda s: s["quotes"][0].update(pricePerGpuHour=1.5), "pricePerGpuHour"),
    (lambda s: s.pop("quotes"), "quotes"),
])
def test_malformed_snapshots_are_refused(mutate: Any, message: str) -> None:
    snap = build_v1(H100, [q for i in range(5) for q in contributor(f"h{i}", "2")],
                                T0)
    mutate(snap)
    with pytest.raises(MethodologyError, match=message):
        index.evaluate(snap)
    with pytest.raises(MethodologyError):
        index.price_fields(snap)


# -------------------------------------------------------------- the estimator


@given(contributors(min_size=1))
def test_value_lies_between_the_accepted_contributors(quotes: list[Quote]) -> None:
    result = run(quotes)
    if result.value is None:
        assert result.withheld_reason
        return
    accepted = [v for v, _ in points(result)]
    assert min(accepted) <= result.band_lower <= result.value <= result.band_upper
    assert result.band_upper <= max(accepted)
    assert result.confidence == max(result.value - result.band_lower,
                                    result.band_upper - result.value)
    shares = [s for _, s in points(result)]
    assert max(shares) <= index.MAX_SHARE + EPS
    assert abs(sum(shares) - 1) < EPS


def _bound(before: index.IndexResult, after: index.IndexResult) -> None:
    """The formal bounded-influence property: with c = MAX_SHARE and the original
    accepted set's weighted quantiles L (lower) and U (upper),
    L(1/2 - c) <= new value <= U(1/2 + c)."""
    pts = points(before)
    c = index.MAX_SHARE
    lo = index.weighted_quantile(pts, Decimal("0.5") - c - EPS, side="lower")
    hi = index.weighted_quantile(pts, Decimal("0.5") + c + EPS, side="upper")
    assert after.value is not None
    assert lo <= after.value <= hi, (lo, after.value, hi)


extreme = st.sampled_from(["0.000001", "0.001", "0.5", "0.9", "1", "1.1", "2", "1000",
                           "1000000"])


@given(st.data(), extreme, tiers, st.integers(1, 30))
def test_one_extra_contributor_moves_the_value_by_at_most_one_capped_weight(
        data: st.DataObject, multiplier: str, tier: SourceTier, machines: int) -> None:
    # a base whose values lie within a factor 1.25 (ln 0.22): the screen keeps all of
    # them whatever one more contributor does to its centre and scale
    base = data.draw(contributors(price=st.integers(10_000, 12_500).map(
        lambda c: str(Decimal(c) / 10_000)), min_machines=2))
    before = run(base)
    assert before.value is not None and before.contributors_accepted == before.contributors
    with decimal.localcontext(methodology.CONTEXT):
        price = str((before.value * Decimal(multiplier)).quantize(Decimal("1e-12")))
    assume(Decimal(price) > 0)
    after = run(base + contributor("intruder", price, machines, tier, provider="other"))
    assert accepted_keys(before) <= accepted_keys(after)
    if Decimal(multiplier) in (Decimal("0.000001"), Decimal("1000000")):
        assert "other/intruder" not in accepted_keys(after)
        assert after.value == before.value  # screened out: nothing else changed
    if after.value is not None:
        _bound(before, after)


# mostly near 1 USD, sometimes far off: exercises the screen as well as the estimator
near_or_far = st.one_of(st.integers(7_000, 14_000).map(lambda c: str(Decimal(c) / 10_000)),
                        st.integers(7_000, 14_000).map(lambda c: str(Decimal(c) / 10_000)),
                        st.integers(7_000, 14_000).map(lambda c: str(Decimal(c) / 10_000)),
                        st.sampled_from(["0.05", "0.4", "0.6", "1.8", "3", "40"]))


@given(contributors(min_size=5, max_size=10, price=near_or_far, min_machines=2),
       st.one_of(near_or_far, prices), tiers, st.integers(1, 30))
def test_bounded_influence_whenever_the_accepted_set_is_kept(
        base: list[Quote], price: str, tier: SourceTier, machines: int) -> None:
    before = run(base)
    after = run(base + contributor("intruder", price, machines, tier, provider="other"))
    assume(before.value is not None and after.value is not None)
    assume(accepted_keys(after) - {"other/intruder"} == accepted_keys(before))
    _bound(before, after)


@given(st.lists(st.integers(1, 10_000).map(Decimal), min_size=1, max_size=15),
       st.integers(1, 10_000).map(Decimal))
def test_cap_shares(weights: list[Decimal], extra: Decimal) -> None:
    shares = index.cap_shares(weights)
    assert abs(sum(shares) - 1) < EPS
    if len(weights) * index.MAX_SHARE > 1:
        assert max(shares) <= index.MAX_SHARE + EPS
        free = [(w, s) for w, s in zip(weights, shares, strict=True)
                if s < index.MAX_SHARE - EPS]
        for (w1, s1), (w2, s2) in zip(free, free[1:], strict=False):
            assert abs(s1 * w2 - s2 * w1) < EPS * 10_000  # proportional below the cap
    else:
        assert len(set(shares)) == 1
    # adding a weight never raises anyone else's share (what bounded influence needs)
    more = index.cap_shares([*weights, extra])
    if len(weights) * index.MAX_SHARE >= 1:
        assert all(b <= a + EPS for a, b in zip(shares, more, strict=False))
    assert index.cap_shares(list(reversed(weights))) == list(reversed(shares))


def test_weighted_quantiles_and_median() -> None:
    pts = [(Decimal(v), Decimal(1)) for v in (1, 2, 3, 4)]
    assert index.weighted_median(pts) == Decimal("2.5")  # equal weights: the median
    assert index.weighted_quantile(pts, Decimal("0.5"), side="lower") == 2
    assert index.weighted_quantile(pts, Decimal("0.5"), side="upper") == 3
    assert index.weighted_quantile(pts, Decimal(0), side="lower") == 1
    assert index.weighted_quantile(pts, Decimal(1), side="upper") == 4
    heavy = [(Decimal(1), Decimal(3)), (Decimal(10), Decimal(1)), (Decimal(5), Decimal(1))]
    assert index.weighted_median(heavy) == 1


def test_tier_weights_and_the_cap_in_a_result() -> None:
    quotes = (contributor("trade", "2", 9, SourceTier.TRADE)
              + [q for i in range(6) for q in contributor(f"card{i}", f"1.{i}", 1,
                                                           SourceTier.RATE_CARD)])
    result = run(quotes)
    by_host = {c.host: c for c in result.contributor_values}
    assert by_host["trade"].weight == 9 and by_host["card0"].weight == 1  # 3 * sqrt(9)
    assert by_host["trade"].share == index.MAX_SHARE
    with decimal.localcontext(methodology.CONTEXT):
        assert by_host["card0"].share == Decimal("0.8") / 6


# --------------------------------------------------------------- publication


def test_publishes_at_the_gates() -> None:
    quotes = [q for i in range(5) for q in contributor(f"h{i}", f"1.{i}", 2)]
    result = run(quotes)
    assert result.value == Decimal("1.2") and result.withheld_reason is None
    assert result.contributors_accepted == 5 and result.observations == 10


def test_withheld_below_the_contributor_minimum() -> None:
    result = run([q for i in range(4) for q in contributor(f"h{i}", "2", 5)])
    assert result.value is None and result.band_lower is None and result.confidence is None
    assert result.withheld_reason == ("too_few_contributors: 4 accepted contributor(s) of 4, "
                                      "need 5")
    with pytest.raises(MethodologyError, match="withheld: too_few_contributors"):
        index.price_fields(build_v1(H100, [], T0))


def test_screened_contributors_do_not_count_toward_the_minimum() -> None:
    quotes = [q for i in range(4) for q in contributor(f"h{i}", "2", 3)]
    result = run(quotes + contributor("far", "40", 3))
    assert result.contributors == 5 and result.outliers_screened == 1
    assert result.withheld_reason.startswith("too_few_contributors: 4 accepted")


def test_withheld_below_the_observation_minimum() -> None:
    quotes = [q for i in range(9) for q in contributor(f"h{i}", "2", 1)]
    result = run(quotes)
    assert result.value is None
    assert result.withheld_reason.startswith("too_few_observations: 9 observation(s)")
    # slices of one machine are one observation, however many
    sliced = [quote(f"h{i}", "2", machine=f"m{i}", count=c, fraction=str(Decimal(c) / 8),
                    offer=f"{i}-{c}") for i in range(5) for c in (1, 2, 4, 8)]
    assert run(sliced).observations == 5


def test_withheld_above_the_dispersion_limit() -> None:
    with decimal.localcontext(methodology.CONTEXT):
        spread = [str(Decimal(x).exp().quantize(Decimal("1e-8")))
                  for x in ("-0.6", "-0.3", "0", "0.3", "0.6")]
    result = run([q for i, p in enumerate(spread) for q in contributor(f"h{i}", p)])
    assert result.outliers_screened == 0 and result.dispersion > index.MAX_DISPERSION
    assert result.value is None and result.withheld_reason.startswith("dispersion_too_high")
    with pytest.raises(MethodologyError, match="dispersion_too_high"):
        methodology.compute("price", attest.canonical_json(
            build_v1(H100, [q for i, p in enumerate(spread)
                                        for q in contributor(f"h{i}", p)], T0)))


# ------------------------------------------------------------------- drop rules


def test_each_drop_rule() -> None:
    good = [q for i in range(5) for q in contributor(f"h{i}", "2")]
    bad = [
        quote("x", gpu="H100 PCIE", offer="b1"),                        # other_model
        quote("x", observed_at=T0 + 1, offer="b2"),                     # observed_after
        quote("x", observed_at=T0 - index.MAX_QUOTE_AGE_S - 1, offer="b3"),  # stale
        quote("x", ram=94, offer="b4"),                                 # memory_not_in_table
        quote("x", reliability="0.899999", offer="b5"),                 # low_reliability
        quote("h0", "3", offer="market-h0-0", observed_at=T0 - 10),     # duplicate (older)
        quote("h1", "9", machine="h1-m9", offer="c1",
              tier=SourceTier.RATE_CARD),                               # superseded tier
    ]
    result = run(good + bad)
    assert result.quotes_in == 17 and result.quotes_used == 10
    assert result.dropped == {
        "other_model": 1, "observed_after_snapshot": 1, "stale": 1, "memory_unknown": 0,
        "memory_not_in_table": 1, "adjustment_too_large": 0, "low_reliability": 1,
        "duplicate_offer": 1, "superseded_by_stronger_tier": 1}
    assert result.value == 2
    # a quote exactly MAX_QUOTE_AGE_S old and exactly at the reliability floor is kept
    edge = quote("h9", observed_at=T0 - index.MAX_QUOTE_AGE_S, reliability="0.9")
    assert run(good + [edge]).quotes_used == 11


def test_memory_variants_are_normalised_or_dropped() -> None:
    v100 = "V100-32GB/USD/GPUh"
    quotes = [q for i in range(5) for q in contributor(f"h{i}", "0.2")]
    quotes = [q.model_copy(update={"gpu_name": "Tesla V100", "gpu_ram_gb": 32}) for q in quotes]
    sixteen = quote("s", "0.1", gpu="Tesla V100", ram=16, machine="s1")
    unknown = quote("u", "0.2", gpu="Tesla V100", ram=None)
    result = run([*quotes, sixteen, unknown], v100)
    assert result.dropped["memory_unknown"] == 1
    by_host = {c.host: c for c in result.contributor_values}
    assert by_host["s"].value == Decimal("0.124")  # 0.1 * 1.24
    # the memory a name states counts when gpuRamGb is absent
    named = quote("n", "0.1", gpu="Tesla V100-SXM2-16GB", ram=None, machine="n1")
    assert {c.host: c.value for c in run([*quotes, named], v100).contributor_values}["n"] \
        == Decimal("0.124")
    rtx = [q.model_copy(update={"gpu_name": "RTX 4090", "gpu_ram_gb": 24}) for q in quotes]
    result = run([*rtx, quote("big", "0.5", gpu="RTX 4090", ram=48)], "RTX4090-24GB/USD/GPUh")
    assert result.dropped["adjustment_too_large"] == 1 and result.contributors == 5
    # a model with one memory size takes an unstated one as that size
    assert run([quote("a", ram=None)]).quotes_used == 1


def test_rented_offers_count_at_their_price() -> None:
    quotes = [q for i in range(5) for q in contributor(f"h{i}", "2")]
    rented = quote("r", "1.5", rented=True, machine="r1")
    result = run([*quotes, rented])
    assert {c.host: c.value for c in result.contributor_values}["r"] == Decimal("1.5")


# ---------------------------------------------------------------- determinism


def test_same_result_whatever_the_ambient_decimal_context() -> None:
    quotes = [q for i in range(7) for q in contributor(f"h{i}", f"1.{i}3", i % 3 + 1)]
    snap = build_v1(H100, quotes, T0)
    first = index.evaluate(snap)
    with decimal.localcontext(decimal.Context(prec=6, rounding=decimal.ROUND_DOWN)):
        assert index.evaluate(snap) == first
        assert index.price_fields(snap) == index.price_fields(snap)
    assert index.evaluate(snap) == first
    assert attest.inputs_hash(attest.canonical_json(snap)) == attest.inputs_hash(
        attest.canonical_json(build_v1(H100, quotes, T0)))
    assert no_floats(first.model_dump()) and no_floats(snap)


def test_price_fields_round_to_8_decimals_and_match_the_registry() -> None:
    quotes = [q for i, p in enumerate(["1.000000001", "1.000000003", "1.000000005",
                                       "1.000000007", "1.000000025"])
              for q in contributor(f"h{i}", p)]
    snap = build_v1(H100, quotes, T0)
    result = index.evaluate(snap)
    assert result.value == Decimal("1.000000005")
    assert result.band_lower == Decimal("1.000000001")  # 5 equal shares: the extremes
    assert result.band_upper == Decimal("1.000000025")
    fields = index.price_fields(snap)
    # 100000000.5 -> 100000000 and 2.0 -> 2 (ROUND_HALF_EVEN)
    assert fields == PriceFields(feed_id=index.FEEDS[H100].feed_id, value=100_000_000,
                                 confidence=2, observed_at=T0, methodology_version=1)
    assert methodology.compute("price", attest.canonical_json(snap)) == fields


# -------------------------------------------------------------- market utilisation


def test_market_utilisation_from_slices() -> None:
    quotes = [
        # an 8-GPU box still offering 1, 2 and 4: 4 rented
        quote("a", machine="m1", count=1, fraction="0.125", offer="1"),
        quote("a", machine="m1", count=2, fraction="0.25", offer="2"),
        quote("a", machine="m1", count=4, fraction="0.5", offer="3"),
        # a 7-GPU box (fraction 1/7 as the marketplace writes it) offering 1: 6 rented
        quote("b", machine="m2", count=1, fraction="0.142857", offer="4"),
        # a whole 8-GPU box offered: 0 rented
        quote("c", machine="m3", count=8, fraction="1", offer="5"),
        # a box with an explicit rented quote of 2 and an offer of 2: 2 of 4 rented
        quote("d", machine="m4", count=2, fraction="0.5", offer="6"),
        quote("d", machine="m4", count=2, fraction="0.5", offer="7", rented=True),
        # a rate card without a machine or fraction: its own machine, nothing rented
        quote("e", count=1, offer="8", tier=SourceTier.RATE_CARD),
        quote("e", count=1, offer="8", tier=SourceTier.RATE_CARD),  # the same offer again
        quote("f", gpu="Tesla V100", ram=16, machine="v", count=1, fraction="0.5",
              offer="9"),
        quote("g", gpu="B200", machine="z", offer="10"),
    ]
    util = index.market_utilisation(quotes)
    assert set(util) == {"H100-SXM-80GB", "V100-32GB"}
    h100 = util["H100-SXM-80GB"]
    assert (h100.machines, h100.gpus_total, h100.gpus_offered, h100.gpus_rented,
            h100.rented_quotes) == (5, 8 + 7 + 8 + 4 + 1, 4 + 1 + 8 + 2 + 1, 4 + 6 + 2, 1)
    assert h100.utilisation_bps == 4286  # 12 / 28
    assert util["V100-32GB"].utilisation_bps == 5000
    assert index.market_utilisation(list(reversed(quotes))) == util


# ------------------------------------------------------------------ version 2


def gpu_contributor(host: str, price: str, gpus: int, *, machines: int = 1,
                    provider: str = "market") -> list[Quote]:
    """A contributor with `machines` machines of `gpus` GPUs each, one whole-machine
    offer each, at `price`."""
    return [quote(host, price, provider=provider, machine=f"{host}-m{i}", count=gpus,
                  fraction="1", offer=f"{provider}-{host}-{i}") for i in range(machines)]


def test_v2_weighs_contributors_by_gpus() -> None:
    quotes = [q for i in range(5) for q in gpu_contributor(f"h{i}", f"2.{i}", 8, machines=2)]
    quotes += gpu_contributor("small", "2.9", 1, machines=2)
    result = run(quotes, version=2)
    weights = {c.host: c.weight for c in result.contributor_values}
    assert weights["h0"] == 2 * 16 and weights["small"] == 2 * 2  # tier 2 x GPUs
    by_host = {c.host: c for c in result.contributor_values}
    assert by_host["h0"].gpus == 16 and by_host["small"].gpus == 2
    # slices of one machine count its GPUs once: 1-, 2- and 4-GPU slices of an 8-GPU box
    sliced = quotes[:-2] + [quote("small", "2.9", machine="box", count=c,
                                  fraction=str(Decimal(c) / 8), offer=f"s{c}")
                            for c in (1, 2, 4)]
    assert {c.host: c.gpus for c in run(sliced, version=2).contributor_values}["small"] == 8
    assert result.version == 2 and index.price_fields(
        index.build_snapshot(H100, quotes, T0)).methodology_version == 2


@given(st.integers(min_value=1, max_value=60), st.sampled_from(["0.05", "0.0001", "500"]))
def test_v2_a_crowd_of_made_up_hosts_does_not_move_the_index(n: int, price: str) -> None:
    """Any number of one-GPU hosts at any price, against an honest market of 8 hosts
    with 16 GPUs each: the value stays the honest one (version 1: they take it over)."""
    honest = [q for i in range(8) for q in gpu_contributor(f"h{i}", f"2.{i}", 8, machines=2)]
    sybils = [q for i in range(n) for q in gpu_contributor(f"sybil{i}", price, 1)]
    before = run(honest, version=2)
    after = run(honest + sybils, version=2)
    assert before.value is not None and after.value is not None
    honest_values = [c.value for c in before.contributor_values]
    assert min(honest_values) <= after.value <= max(honest_values)
    assert abs(after.value - before.value) <= Decimal("0.1")


@given(contributors(min_machines=2), st.randoms(use_true_random=False))
def test_v2_permutation_invariance(quotes: list[Quote], rnd: random.Random) -> None:
    shuffled = list(quotes)
    rnd.shuffle(shuffled)
    a = index.build_snapshot(H100, quotes, T0)
    b = index.build_snapshot(H100, shuffled, T0)
    assert a == b and index.evaluate(a) == index.evaluate(b)


@given(contributors(min_size=5, max_size=10, min_machines=2))
def test_v2_value_lies_between_the_accepted_contributors(quotes: list[Quote]) -> None:
    result = run(quotes, version=2)
    accepted = [c.value for c in result.contributor_values if c.accepted]
    if result.value is not None:
        assert min(accepted) <= result.value <= max(accepted)
        assert sum(c.share for c in result.contributor_values if c.accepted) == \
            pytest.approx(1, abs=1e-30)
        assert all(c.share <= index.MAX_SHARE + EPS for c in result.contributor_values
                   if c.accepted)


def test_v2_sybil_hosts_on_a_shipped_day() -> None:
    """The review's attack on the RTX 4090 feed: made-up hosts at 0.05, a majority of
    the contributors. Version 1 publishes 0.05; version 2 the honest value."""
    source = shipped_day(OFFER_FILES[-1])
    feed = index.feed_name_for("RTX4090-24GB")
    sybils = [Quote(source="sybil", provider="vast.ai", host=f"sybil-{i}",
                    offer_id=f"sybil-{i}", machine=f"sybil-m{i}", gpu_name="RTX 4090",
                    gpu_ram_gb=24, gpu_count=1, price_per_gpu_hour="0.05",
                    reliability="0.99", observed_at=source.observed_at,
                    tier=SourceTier.EXECUTABLE_OFFER) for i in range(30)]
    honest = run(source.quotes, feed, source.observed_at, version=2)
    attacked = run(list(source.quotes) + sybils, feed, source.observed_at, version=2)
    assert attacked.contributors > 2 * honest.contributors_accepted  # a majority of hosts
    assert attacked.value == honest.value
    assert run(list(source.quotes) + sybils, feed, source.observed_at,
               version=1).value == Decimal("0.05")


def test_v2_listings_count_a_location_once() -> None:
    """The US listings have no host id: one contributor per location, machines from the
    marketplace's per-machine reliability. V100 on 2026-03-03 read 0.0216 (v1, a
    contributor per listing: one cheap fleet in Washington made most of them); version 2
    is within 5 % of the global index."""
    from oracle.sources.listings import parse_csv

    day = ROOT / "oracle" / "data" / "listings" / "v100-us" / "2026-03-03.csv"
    listed = parse_csv(day)
    assert {q.host for q in listed.quotes} >= {"location:Washington, US", "location:Oregon, US"}
    washington = [q for q in listed.quotes if q.host == "location:Washington, US"]
    assert len({q.machine for q in washington}) < len(washington)  # slices merged
    observed = max(q.observed_at for q in listed.quotes)
    feed = index.feed_name_for("V100-32GB")
    us = run(listed.quotes, feed, observed, version=2)
    world = shipped_results()["2026-03-03"][feed]
    assert us.value is not None and world.value is not None
    assert abs(us.value / world.value - 1) < Decimal("0.05")


# ------------------------------------------------------------------ real data


@cache
def shipped_day(path: Path) -> SourceResult:
    return parse_snapshot(path)


@cache
def shipped_results() -> dict[str, dict[str, index.IndexResult]]:
    out: dict[str, dict[str, index.IndexResult]] = {}
    for path in OFFER_FILES:
        day = re.search(r"(\d{4}-\d{2}-\d{2})", path.name).group(1)  # type: ignore[union-attr]
        source = shipped_day(path)
        snaps = index.index_feed_snapshots(source.quotes, source.observed_at)
        out[day] = {name: index.evaluate(s) for name, s in snaps.items()}
    return out


def test_the_shipped_days_are_there() -> None:
    assert len(OFFER_FILES) == 5


def test_real_data_every_day_every_model() -> None:
    results = shipped_results()
    for day, by_feed in results.items():
        assert set(by_feed) == set(index.FEEDS)
        h100 = by_feed[H100]
        assert h100.value is not None, (day, h100.withheld_reason)
        assert Decimal("0.5") < h100.value < 3, day
        assert h100.band_lower <= h100.value <= h100.band_upper
        # no offers at all for these on the marketplace in these days
        for name in ("H100-PCIE-80GB/USD/GPUh", "A100-SXM-80GB/USD/GPUh"):
            assert by_feed[name].quotes_in == 0
            assert by_feed[name].withheld_reason.startswith("too_few_contributors: 0")
        # 4 or 5 hosts with 5..7 machines: never enough
        assert by_feed["H200-NVL-141GB/USD/GPUh"].value is None
        # the 40 GB A100s need too much adjustment; too few 80 GB hosts remain
        a100 = by_feed["A100-PCIE-80GB/USD/GPUh"]
        assert a100.value is None and a100.dropped["adjustment_too_large"] > 0
        assert by_feed["RTX4090-24GB/USD/GPUh"].value is not None
        for result in by_feed.values():
            assert sum(result.dropped.values()) + result.quotes_used == result.quotes_in


def test_real_data_registry_agrees() -> None:
    for path in OFFER_FILES:
        source = shipped_day(path)
        for name, snap in index.index_feed_snapshots(source.quotes,
                                                     source.observed_at).items():
            body = attest.canonical_json(snap)
            result = index.evaluate(snap)
            if result.value is None:
                with pytest.raises(MethodologyError, match="withheld"):
                    methodology.compute("price", body)
            else:
                assert methodology.compute("price", body) == index.price_fields(snap), name


def test_real_data_utilisation_is_inferred_from_slices() -> None:
    for path in OFFER_FILES:
        quotes = shipped_day(path).quotes
        assert not any(q.rented for q in quotes)
        util = index.market_utilisation(quotes)
        for u in util.values():
            assert 0 <= u.utilisation_bps <= 10_000 and u.rented_quotes == 0
            assert u.gpus_rented == u.gpus_total - u.gpus_offered


def test_factors_reproduce_from_the_shipped_days() -> None:
    """The published memory factors are the median over the shipped days of the daily
    ratio of the median nominal-size to the median variant contributor value (screening
    aside), rounded to 2 decimals; a test keeps the table honest."""
    cases = {"A100-PCIE-80GB": 40, "RTX4090-24GB": 48, "V100-32GB": 16}
    for key, variant_gb in cases.items():
        model = index.MODELS[key]
        variant = model.memory_class(variant_gb)
        assert isinstance(variant, index.MemoryClass)
        ratios = []
        for path in OFFER_FILES:
            source = shipped_day(path)
            mine = [q for q in source.quotes
                    if (m := index.model_for_name(q.gpu_name)) is not None and m.key == key]
            medians = []
            for want in (model.memory[0], variant):
                subset = [q.model_copy(update={"gpu_ram_gb": model.nominal_gb}) for q in mine
                          if model.memory_class(q.gpu_ram_gb) == want]
                result = run(subset, model.feed, source.observed_at)
                values = [c.value for c in result.contributor_values]
                medians.append(methodology.median(values) if values else None)
            if medians[0] is not None and medians[1] is not None:
                ratios.append(medians[0] / medians[1])
        with decimal.localcontext(methodology.CONTEXT):
            assert methodology.median(ratios).quantize(Decimal("0.01")) == variant.factor, key


def _fmt(value: Decimal | None, places: int = 4) -> str:
    return "-" if value is None else str(value.quantize(Decimal(1).scaleb(-places)))


def results_table() -> str:
    """The results table of docs/index-methodology.md, from the code."""
    lines = ["| day | feed | value (USD/GPU-h) | band | confidence | contributors "
             "(accepted/all) | observations | dispersion | quotes in / used |",
             "|---|---|---|---|---|---|---|---|---|"]
    for day, by_feed in shipped_results().items():
        for name, r in by_feed.items():
            if r.value is None:
                assert r.withheld_reason is not None
                value, band = f"withheld: {r.withheld_reason}", "-"
            else:
                value, band = _fmt(r.value), f"{_fmt(r.band_lower)} .. {_fmt(r.band_upper)}"
            lines.append(f"| {day} | {name} | {value} | {band} | {_fmt(r.confidence)} | "
                         f"{r.contributors_accepted}/{r.contributors} | {r.observations} | "
                         f"{_fmt(r.dispersion, 3)} | {r.quotes_in} / {r.quotes_used} |")
    return "\n".join(lines) + "\n"


def utilisation_table() -> str:
    """The market utilisation table of docs/index-methodology.md, from the code."""
    lines = ["| day | model | machines | GPUs total | offered | rented (inferred) | "
             "utilisation |", "|---|---|---|---|---|---|---|"]
    for path in OFFER_FILES:
        day = re.search(r"(\d{4}-\d{2}-\d{2})", path.name).group(1)  # type: ignore[union-attr]
        for key, u in index.market_utilisation(shipped_day(path).quotes).items():
            lines.append(f"| {day} | {key} | {u.machines} | {u.gpus_total} | "
                         f"{u.gpus_offered} | {u.gpus_rented} | "
                         f"{Decimal(u.utilisation_bps).scaleb(-2)}% |")
    return "\n".join(lines) + "\n"


def worked_example(day: str = "2026-03-03") -> str:
    """The worked example of docs/index-methodology.md: every H100 SXM contributor of
    one shipped day, from the code."""
    r = shipped_results()[day][H100]
    lines = [f"Screen centre (weighted median ln v) {_fmt(r.screen_centre, 6)}, scale "
             f"{_fmt(r.screen_scale, 6)}, limit {_fmt(index.SCREEN_K * r.screen_scale, 6)} "
             f"in ln.", "",
             "| host | quotes | machines | GPUs | value | (ln v - centre) / scale | accepted "
             "| weight | share |", "|---|---|---|---|---|---|---|---|---|"]
    for c in r.contributor_values:
        lines.append(f"| {c.host} | {c.quotes} | {c.observations} | {c.gpus} | "
                     f"{_fmt(c.value)} | "
                     f"{_fmt(c.log_deviation, 2)} | {'yes' if c.accepted else 'no'} | "
                     f"{_fmt(c.weight)} | {_fmt(c.share)} |")
    lines += ["", f"Value {_fmt(r.value, 8)}, band {_fmt(r.band_lower, 8)} .. "
              f"{_fmt(r.band_upper, 8)}, n_eff {_fmt(r.effective_contributors)}, confidence "
              f"{_fmt(r.confidence, 8)}, dispersion {_fmt(r.dispersion)}."]
    return "\n".join(lines) + "\n"


def test_doc_tables_are_the_code_s_results() -> None:
    text = DOC.read_text(encoding="utf-8")
    for table in (results_table(), utilisation_table(), worked_example()):
        assert table in text, "regenerate: python -m tests.oracle.test_index"


if __name__ == "__main__":  # print the doc's tables
    print(worked_example())
    print(results_table())
    print(utilisation_table())
