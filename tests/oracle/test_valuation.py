"""oracle.valuation: nav-per-share v1, checked against a worked example computed by hand
and against an independent reference implementation written from the specification
(fractions.Fraction straight from the decimal strings), plus the refusals and the
register helpers."""

from __future__ import annotations

import copy
import decimal
import random
from collections import namedtuple
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from oracle import attest, methodology, reports, valuation
from oracle.methodology import MethodologyError, PriceFields
from oracle.valuation import GpuHolding, RegisterError

YEAR = 31_557_600  # a Julian year in seconds
OBSERVED = 1_772_323_200  # 2026-03-01T00:00:00Z
SPV = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
FEED = reports.feed_id("NAV/GPUS-A/USD")
USD = 10**8
SHARE = 10**18


def serial(n: int) -> str:
    return "0x" + (n + 1).to_bytes(32, "big").hex()


def gpu(
    n: int,
    *,
    age: int = YEAR,
    cost: int = 25_000 * USD,
    status: str = "active",
    model: str = "H100-SXM5-80GB",
    index_model: str = "H100-SXM-80GB",
    observed: int = OBSERVED,
) -> dict[str, Any]:
    return {
        "serialHash": serial(n),
        "model": model,
        "indexModel": index_model,
        "acquisitionCost": cost,
        "commissionedAt": observed - age,
        "status": status,
    }


def level(at: str = "2.40", now: str = "2.10", conf: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"atAcquisition": at, "now": now, "source": "log entry 12"}
    if conf is not None:
        out["nowConfidence"] = conf
    return out


def snapshot(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "feed_id": FEED,
        "spv_token": SPV,
        "observed_at": OBSERVED,
        "total_supply": 1_000 * SHARE,
        "economic_life_years": "4",
        "gpus": [gpu(0)],
        "index": {"H100-SXM-80GB": level()},
        "utilisation": {"bps": 8_000, "periodStart": OBSERVED - 3_600,
                        "periodEnd": OBSERVED, "source": "log entry 15"},
    }
    args.update(overrides)
    return valuation.nav_snapshot(**args)


def computed(snap: dict[str, Any]) -> PriceFields:
    out = methodology.compute("price", attest.canonical_json(snap))
    assert isinstance(out, PriceFields)
    return out


# ----------------------------------------------------- reference, from the spec only


def reference(snap: dict[str, Any], shift: int = 0) -> Fraction:
    """Fleet value (USD 8 decimals, exact) with every index model's `now` moved by
    `shift` times its nowConfidence; written from the docs, sharing no code."""
    life = Fraction(snap["economicLifeYears"]) * YEAR
    bps = snap["utilisation"]["bps"]
    util = Fraction(1, 2) + Fraction(1, 2) * min(Fraction(1), Fraction(bps, 8_000))
    total = Fraction(0)
    for g in snap["gpus"]:
        if g["status"] == "retired":
            continue
        lvl = snap["index"][g["indexModel"]]
        now = Fraction(lvl["now"]) + shift * Fraction(lvl.get("nowConfidence", "0"))
        ratio = max(Fraction(0), now) / Fraction(lvl["atAcquisition"])
        market = min(Fraction(3, 2), max(Fraction(1, 4), ratio))
        age = snap["observedAt"] - g["commissionedAt"]
        book = g["acquisitionCost"] * max(Fraction(0), 1 - age / life)
        total += book * market * (util if g["status"] == "active" else Fraction(1, 4))
    return total


# ------------------------------------------------------------------- worked example

# The example of docs/index-methodology.md (NAV section): 4 GPUs, 2,800 shares, 4-year life.
EXAMPLE_GPUS = [
    gpu(0, cost=28_500 * USD, age=3 * YEAR // 2),
    gpu(1, cost=28_500 * USD, age=3 * YEAR // 2),
    gpu(2, cost=28_500 * USD, age=3 * YEAR // 2, status="impaired"),
    gpu(3, cost=15_000 * USD, age=3 * YEAR, status="retired", model="A100-SXM4-80GB",
        index_model="A100-SXM-80GB"),
]


def example() -> dict[str, Any]:
    return snapshot(
        total_supply=2_800 * SHARE,
        gpus=EXAMPLE_GPUS,
        index={"H100-SXM-80GB": level("2.85", "2.19", "0.07")},
        utilisation={"bps": 7_350, "periodStart": OBSERVED - 30 * 86_400,
                     "periodEnd": OBSERVED, "source": "log entry 15"},
    )


def test_worked_example_by_hand() -> None:
    # H100: age 1.5 of 4 years -> book 28,500 * (1 - 1.5/4) = 17,812.5 USD
    book = Fraction(28_500) * (1 - Fraction(3, 2) / 4)
    assert book == Fraction(35_625, 2)
    # market 2.19 / 2.85 = 73/95 (inside [1/4, 3/2]) -> 17,812.5 * 73/95 = 13,687.5
    market = Fraction(219, 285)
    assert book * market == Fraction(27_375, 2)
    # utilisation 7,350 bps: 1/2 + 1/2 * 7,350/8,000 = 0.959375
    util = Fraction(1, 2) + Fraction(1, 2) * Fraction(7_350, 8_000)
    assert util == Fraction(307, 320)
    active = book * market * util  # 13,131.4453125 USD each
    impaired = book * market / 4  # 3,421.875 USD
    total = 2 * active + impaired  # the retired A100 counts 0
    assert total == Fraction("29684.765625")
    # per share: 29,684.765625 / 2,800 = 10.60170200892857.. -> down to 10.60170200
    assert total / 2_800 > Fraction("10.601702008") and total / 2_800 < Fraction("10.601702009")
    # confidence: index 2.19 -/+ 0.07 moves the market factor by 0.14 / 2.85 in all;
    # spread of the fleet = (2 * 0.959375 + 1/4) * 17,812.5 * 0.14 / 2.85
    #  = 2.16875 * 17,812.5 * 14 / 285 = 38,630.859375 * 14 / 285 = 1,897.65625 USD;
    # half of it per share = 1,897.65625 / 2,800 / 2 = 0.3388671875 -> up to 0.33886719
    spread = (2 * util + Fraction(1, 4)) * book * Fraction(14, 285)
    assert spread == Fraction("1897.65625")
    assert spread / 2_800 / 2 == Fraction("0.3388671875")

    result = valuation.evaluate(example())
    assert result.value == 1_060_170_200
    assert result.confidence == 33_886_719
    assert result.total_value == 2_968_476_562_500
    assert result.utilisation_factor == Decimal("0.95937500")
    rows = {g.serial_hash: g for g in result.gpus}
    assert [rows[serial(i)].value for i in range(4)] == [
        1_313_144_531_250, 1_313_144_531_250, 342_187_500_000, 0]
    assert rows[serial(0)].book_value == 1_781_250_000_000
    assert rows[serial(0)].market_factor == Decimal("0.76842105")
    assert rows[serial(2)].utilisation_factor == Decimal("0.25")
    assert rows[serial(3)].book_value == 375_000_000_000  # 15,000 * 1/4, but retired
    assert rows[serial(3)].market_factor is None
    assert rows[serial(3)].value == 0
    assert valuation.price_fields(example()) == PriceFields(
        feed_id=FEED, value=1_060_170_200, confidence=33_886_719, observed_at=OBSERVED,
        methodology_version=1)


def test_compute_dispatches_to_price_fields() -> None:
    snap = example()
    assert computed(snap) == valuation.price_fields(snap)
    # the example's bytes, pinned (docs/index-methodology.md (NAV section) quotes this hash)
    assert attest.inputs_hash(attest.canonical_json(snap)) == (
        "0xf9be70ccea7940701da3886bdfc926b91da4bdc2d6e45c2e6048b3f4fa7526c5")


# -------------------------------------------------------------- random fleets

LIVES = st.sampled_from(["3", "3.5", "4", "4.25", "5", "4.99999999"])
LEVELS = st.integers(1, 100_000).map(lambda c: f"{c // 100}.{c % 100:02d}")
MODELS = ("H100-SXM-80GB", "A100-SXM-80GB")


@st.composite
def fleets(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 8))
    gpus = [
        gpu(
            i,
            age=draw(st.integers(0, 6 * YEAR)),
            cost=draw(st.integers(1, 10**14)),
            status=draw(st.sampled_from(["active", "active", "impaired", "retired"])),
            index_model=draw(st.sampled_from(MODELS)),
        )
        for i in range(n)
    ]
    index = {
        m: level(draw(LEVELS), draw(LEVELS), draw(st.none() | LEVELS)) for m in MODELS
    }
    return snapshot(
        gpus=gpus,
        index=index,
        economic_life_years=draw(LIVES),
        total_supply=draw(st.integers(1, 10**24)),
        utilisation={"bps": draw(st.integers(0, 10_000)), "periodStart": 0,
                     "periodEnd": OBSERVED, "source": "x"},
    )


@given(fleets())
def test_matches_the_reference_and_rounds_against_the_borrower(snap: dict[str, Any]) -> None:
    fields = computed(snap)
    assert fields == valuation.price_fields(snap)
    supply = snap["totalSupply"]
    exact = reference(snap)
    # value is the largest 8-decimal amount whose total over the supply does not exceed
    # the fleet's exact value
    assert fields.value * supply <= exact * SHARE < (fields.value + 1) * supply
    assert fields.value == (exact * SHARE / supply).__floor__()
    half_spread = (reference(snap, +1) - reference(snap, -1)) * SHARE / supply / 2
    assert fields.confidence == half_spread.__ceil__()
    assert fields.confidence >= 0
    result = valuation.evaluate(snap)
    assert result.total_value == exact.__floor__()
    assert sum(g.value for g in result.gpus) <= result.total_value


@given(fleets(), st.data())
def test_non_increasing_in_age(snap: dict[str, Any], data: st.DataObject) -> None:
    older = copy.deepcopy(snap)
    i = data.draw(st.integers(0, len(older["gpus"]) - 1))
    older["gpus"][i]["commissionedAt"] -= data.draw(st.integers(1, 2 * YEAR))
    assume(older["gpus"][i]["commissionedAt"] >= 0)
    assert computed(older).value <= computed(snap).value
    # the whole fleet a while later (same index, same utilisation)
    later = copy.deepcopy(snap)
    later["observedAt"] += data.draw(st.integers(1, 2 * YEAR))
    assert computed(later).value <= computed(snap).value


@given(fleets(), st.sampled_from(MODELS), st.integers(1, 100_000))
def test_non_decreasing_in_index_now(snap: dict[str, Any], model: str, cents: int) -> None:
    higher = copy.deepcopy(snap)
    if model not in higher["index"]:
        return
    now = Fraction(higher["index"][model]["now"]) + Fraction(cents, 100)
    higher["index"][model]["now"] = f"{Decimal(now.numerator) / now.denominator:f}"
    assert computed(higher).value >= computed(snap).value


@given(fleets(), st.integers(0, 10_000))
def test_non_decreasing_in_utilisation(snap: dict[str, Any], bps: int) -> None:
    other = copy.deepcopy(snap)
    other["utilisation"]["bps"] = bps
    low, high = sorted([snap, other], key=lambda s: s["utilisation"]["bps"])
    assert computed(low).value <= computed(high).value


@given(fleets(), st.integers(0, 3 * YEAR))
def test_zero_once_every_gpu_is_past_its_life(snap: dict[str, Any], extra: int) -> None:
    life = Fraction(snap["economicLifeYears"]) * YEAR
    latest = max(g["commissionedAt"] for g in snap["gpus"])
    snap["observedAt"] = latest + (life.__ceil__()) + extra
    fields = computed(snap)
    assert fields.value == 0
    assert fields.confidence == 0


@given(fleets(), st.sampled_from(["active", "impaired"]))
def test_retired_gpus_contribute_nothing(snap: dict[str, Any], status: str) -> None:
    base = valuation.evaluate(snap)
    # a retired GPU of a model with no index entry at all: accepted and worth 0
    extra = gpu(99, status="retired", model="V100-SXM2-32GB", index_model="V100",
                age=YEAR)
    with_retired = copy.deepcopy(snap)
    with_retired["gpus"].append(extra)
    assert valuation.evaluate(with_retired).value == base.value
    assert valuation.evaluate(with_retired).total_value == base.total_value
    # retiring a GPU removes exactly its value
    i = 0
    retired = copy.deepcopy(snap)
    retired["gpus"][i]["status"] = "retired"
    without = copy.deepcopy(snap)
    del without["gpus"][i]
    if not without["gpus"]:
        assert valuation.evaluate(retired).value == 0
    else:
        assert valuation.evaluate(retired).total_value == valuation.evaluate(without).total_value


@given(fleets())
def test_impaired_never_worth_more_than_active(snap: dict[str, Any]) -> None:
    active = copy.deepcopy(snap)
    impaired = copy.deepcopy(snap)
    for g in active["gpus"]:
        if g["status"] == "impaired":
            g["status"] = "active"
    for g in impaired["gpus"]:
        if g["status"] == "active":
            g["status"] = "impaired"
    assert computed(impaired).value <= computed(snap).value <= computed(active).value


def test_market_factor_is_clamped() -> None:
    def factor(now: str) -> Decimal | None:
        snap = snapshot(index={"H100-SXM-80GB": level("2", now)})
        return valuation.evaluate(snap).gpus[0].market_factor

    assert factor("20") == Decimal("1.5")  # a 10x print counts as 1.5x
    assert factor("3") == Decimal("1.5")
    assert factor("2.5") == Decimal("1.25")
    assert factor("0.6") == Decimal("0.3")
    assert factor("0.02") == Decimal("0.25")  # a 100x drop counts as 1/4


def test_confidence_absent_is_zero_and_clamp_narrows_it() -> None:
    assert computed(snapshot()).confidence == 0
    # 1 GPU, book 25,000 * 3/4, utilisation factor 1, supply 1,000: market 2.10/2.40 -/+
    # 0.24/2.40 -> half spread 18,750 * 0.1 / 1,000 = 1.875 USD
    snap = snapshot(index={"H100-SXM-80GB": level("2.40", "2.10", "0.24")})
    assert computed(snap).confidence == 187_500_000
    # now 3.5 +/- 1 on 2: both 1.25 and 2.25 clamp... 1.25 stays, 2.25 -> 1.5
    snap = snapshot(index={"H100-SXM-80GB": level("2", "3.5", "1")})
    # hi 1.5, lo 1.25: 18,750 * 0.25 / 1,000 / 2 = 2.34375
    assert computed(snap).confidence == 234_375_000
    # a confidence larger than the level: the low side counts as 0 -> clamped to 1/4
    snap = snapshot(index={"H100-SXM-80GB": level("2", "1", "5")})
    # hi 1.5, lo 0.25: 18,750 * 1.25 / 1,000 / 2 = 11.71875
    assert computed(snap).confidence == 1_171_875_000


def test_impaired_and_utilisation_constants() -> None:
    # 1 GPU, book 18,750 USD, market 1 (2.10 / 2.10), supply 1,000 shares
    flat = {"H100-SXM-80GB": level("2.10", "2.10")}

    def value(status: str, bps: int) -> int:
        return computed(snapshot(gpus=[gpu(0, status=status)], index=flat, utilisation={
            "bps": bps, "periodStart": 0, "periodEnd": OBSERVED, "source": "x"})).value

    assert value("active", 10_000) == 1_875_000_000  # 18.75 USD per share
    assert value("active", 8_000) == 1_875_000_000  # target: fully let
    assert value("active", 4_000) == 1_406_250_000  # 0.75
    assert value("active", 0) == 937_500_000  # floor 0.5
    assert value("impaired", 10_000) == 468_750_000  # 0.25 whatever the utilisation
    assert value("impaired", 0) == 468_750_000
    assert value("retired", 10_000) == 0


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("life", ["2.99999999", "5.00000001", "0", "-4", "6", "1"])
def test_economic_life_outside_3_to_5_refused(life: str) -> None:
    with pytest.raises(MethodologyError, match="economic life"):
        snapshot(economic_life_years=life)
    raw = snapshot()
    raw["economicLifeYears"] = life
    with pytest.raises(MethodologyError, match="economic life"):
        computed(raw)


@pytest.mark.parametrize("life", ["3", "5", "3.0", "4.5", Decimal("3.75"), 4])
def test_economic_life_inside_accepted(life: Any) -> None:
    assert computed(snapshot(economic_life_years=life)).value > 0


@pytest.mark.parametrize("life", ["4e0", " 4", "four", "4.", 4.0])
def test_economic_life_must_be_a_plain_decimal(life: Any) -> None:
    with pytest.raises(MethodologyError):
        snapshot(economic_life_years=life)


@pytest.mark.parametrize("supply", [0, -1, True, "1000", 1.5, 2**256])
def test_total_supply_refused(supply: Any) -> None:
    with pytest.raises(MethodologyError, match="totalSupply"):
        snapshot(total_supply=supply)


def test_total_supply_zero_refused_by_compute() -> None:
    raw = snapshot()
    raw["totalSupply"] = 0
    with pytest.raises(MethodologyError, match="totalSupply"):
        computed(raw)


def test_commissioning_after_observation_refused() -> None:
    with pytest.raises(MethodologyError, match="after the valuation time"):
        snapshot(gpus=[gpu(0, age=-1)])
    raw = snapshot()
    raw["gpus"][0]["commissionedAt"] = OBSERVED + 1
    with pytest.raises(MethodologyError, match="after the valuation time"):
        computed(raw)
    with pytest.raises(MethodologyError, match="after the valuation time"):
        valuation.evaluate(raw)
    # age 0 is fine: a GPU commissioned at the valuation time is at full book value
    assert valuation.evaluate(snapshot(gpus=[gpu(0, age=0)])).gpus[0].book_value == (
        25_000 * USD)


def test_missing_index_entry_refused() -> None:
    with pytest.raises(MethodologyError, match="has no entry in index"):
        snapshot(gpus=[gpu(0, index_model="B200")])


def test_unsorted_or_repeated_gpus_refused_in_a_raw_snapshot() -> None:
    raw = snapshot(gpus=[gpu(0), gpu(1)])
    raw["gpus"].reverse()
    with pytest.raises(MethodologyError, match="out of order"):
        computed(raw)
    raw["gpus"] = [raw["gpus"][0], raw["gpus"][0]]
    with pytest.raises(MethodologyError, match="appears twice"):
        computed(raw)
    with pytest.raises(MethodologyError, match="appears twice"):
        snapshot(gpus=[gpu(0), gpu(0)])


@pytest.mark.parametrize(
    ("path", "bad", "match"),
    [
        (("index", "H100-SXM-80GB", "now"), "0", "positive"),
        (("index", "H100-SXM-80GB", "atAcquisition"), "-2", "positive"),
        (("index", "H100-SXM-80GB", "nowConfidence"), "-0.1", "non-negative"),
        (("index", "H100-SXM-80GB", "now"), "2.1e0", "plain decimal"),
        (("utilisation", "bps"), 10_001, "bps"),
        (("utilisation", "periodEnd"), OBSERVED + 1, "utilisation period"),
        (("utilisation", "periodStart"), OBSERVED + 1, "utilisation period"),
        (("utilisation", "periodStart"), OBSERVED, "empty utilisation period"),
        (("gpus", 0, "status"), "sold", "status"),
        (("gpus", 0, "acquisitionCost"), 0, "acquisitionCost"),
        (("gpus", 0, "acquisitionCost"), "25000", "acquisitionCost"),
        (("gpus", 0, "serialHash"), "0x" + "00" * 32, "zero"),
        (("gpus", 0, "extra"), 1, "extra"),
        (("methodology",), "offer-median", "methodology"),
        (("observedAt",), True, "observedAt"),
        (("spvToken",), "0x1234", "spvToken"),
    ],
)
def test_malformed_snapshots_refused(path: tuple[Any, ...], bad: Any, match: str) -> None:
    raw = snapshot(index={"H100-SXM-80GB": level(conf="0.05")})
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = bad
    with pytest.raises(MethodologyError, match=match):
        valuation.evaluate(raw)


def test_no_utilisation_measured_counts_as_idle() -> None:
    # an empty period (e.g. no utilisation report logged yet) is allowed with bps 0 only
    idle = snapshot(utilisation={"bps": 0, "periodStart": 0, "periodEnd": 0,
                                 "source": "no utilisation report logged yet"})
    measured_idle = snapshot(utilisation={"bps": 0, "periodStart": 0, "periodEnd": OBSERVED,
                                          "source": "log entry 15"})
    assert computed(idle).value == computed(measured_idle).value > 0
    assert valuation.evaluate(idle).utilisation_factor == Decimal("0.5")


def test_feed_given_by_name_or_id() -> None:
    by_name = snapshot(feed_id=None, feed_name=valuation.nav_feed_name("GPUS-A"))
    assert by_name == snapshot()
    with pytest.raises(MethodologyError, match="exactly one"):
        snapshot(feed_name="NAV/GPUS-A/USD")
    with pytest.raises(MethodologyError, match="exactly one"):
        snapshot(feed_id=None)
    with pytest.raises(MethodologyError, match="nav_feed_name"):
        snapshot(feed_id=None, feed_name="NAV/" + "X" * 40)


def test_floats_refused() -> None:
    with pytest.raises(MethodologyError, match="float"):
        snapshot(economic_life_years=4.0)
    with pytest.raises(MethodologyError, match="float"):
        snapshot(index={"H100-SXM-80GB": {"atAcquisition": 2.4, "now": "2.1", "source": "x"}})
    raw = snapshot()
    raw["gpus"][0]["acquisitionCost"] = 2.5e12
    with pytest.raises(MethodologyError, match="acquisitionCost"):
        valuation.evaluate(raw)


def test_nav_too_large_for_int256_refused() -> None:
    with pytest.raises(MethodologyError, match="int256"):
        snapshot(gpus=[gpu(0, age=0, cost=2**250)], total_supply=1,
                 index={"H100-SXM-80GB": level("1", "1")})


# ---------------------------------------------------------------- determinism


def test_reproducible_bytes_whatever_the_spelling_order_or_context() -> None:
    one = example()
    shuffled = list(EXAMPLE_GPUS)
    random.Random(7).shuffle(shuffled)
    other = snapshot(
        total_supply=2_800 * SHARE,
        gpus=[GpuHolding.model_validate(g) for g in shuffled],
        index={
            "H100-SXM-80GB": valuation.IndexLevel.model_validate(level("2.85", "2.19", "0.07")),
            "B200": level("5", "5"),  # used by no GPU: dropped
        },
        utilisation=valuation.UtilisationInput(
            bps=7_350, period_start=OBSERVED - 30 * 86_400, period_end=OBSERVED,
            source="log entry 15"),
        economic_life_years=Decimal("4"),
        feed_id=FEED.upper().replace("0X", "0x"),
        spv_token=SPV.lower(),
    )
    assert attest.canonical_json(one) == attest.canonical_json(other)
    assert [g["serialHash"] for g in one["gpus"]] == sorted(g["serialHash"] for g in one["gpus"])
    assert set(one["index"]) == {"H100-SXM-80GB"}  # the retired A100 needs no entry
    first = valuation.evaluate(one)
    with decimal.localcontext(decimal.Context(prec=3, rounding=decimal.ROUND_CEILING)):
        assert valuation.evaluate(one) == first
        assert computed(other) == valuation.price_fields(one)


@given(fleets())
def test_snapshot_round_trips_through_canonical_json(snap: dict[str, Any]) -> None:
    rebuilt = valuation.nav_snapshot(
        feed_id=snap["feedId"], spv_token=snap["spvToken"], observed_at=snap["observedAt"],
        total_supply=snap["totalSupply"], economic_life_years=snap["economicLifeYears"],
        gpus=list(reversed(snap["gpus"])), index=snap["index"],
        utilisation=snap["utilisation"],
    )
    assert attest.canonical_json(rebuilt) == attest.canonical_json(snap)


def test_as_dict_is_canonical_json_ready() -> None:
    out = valuation.evaluate(example()).as_dict()
    attest.canonical_json(out)  # no floats, no Decimals
    assert out["value"] == 1_060_170_200
    assert out["decimals"] == 8
    assert out["gpus"][3]["marketFactor"] is None
    assert out["gpus"][3]["utilisationFactor"] == "0.00000000"


# ---------------------------------------------------------------- feed names


def test_nav_feed_name() -> None:
    assert valuation.nav_feed_name("GPUS-A") == "NAV/GPUS-A/USD"
    name = valuation.nav_feed_name("X" * 24)
    assert len(name.encode()) == 32
    assert reports.feed_name(reports.feed_id(name)) == name
    with pytest.raises(ValueError, match="at most 24 bytes"):
        valuation.nav_feed_name("X" * 25)
    with pytest.raises(ValueError, match="at most 24 bytes"):
        valuation.nav_feed_name("Ä" * 13)  # 26 bytes in UTF-8
    for bad in ["", "GPU Shares", "A/B", "a\tb"]:
        with pytest.raises(ValueError, match="symbol"):
            valuation.nav_feed_name(bad)


# ---------------------------------------------------------------- register rows

MODEL_MAP = {"H100-SXM5-80GB": "H100-SXM-80GB", "A100-SXM4-80GB": "A100-SXM-80GB"}
H100 = b"H100-SXM5-80GB".ljust(32, b"\0")


def register_tuple(n: int = 0, *, model: Any = H100, status: Any = 1,
                   cost: Any = 2_500_000_000_000) -> tuple[Any, ...]:
    return (bytes.fromhex(serial(n)[2:]), model, 840, b"dc-1".ljust(32, b"\0"), cost,
            1_700_000_000, status, 0)


def test_holdings_from_register_tuples_mappings_and_structs() -> None:
    Gpu = namedtuple("Gpu", valuation.REGISTER_FIELDS)  # a struct object, as ape returns
    rows = [
        register_tuple(0),
        dict(zip(valuation.REGISTER_FIELDS, register_tuple(1, status=2), strict=True)),
        Gpu(*register_tuple(2, status=4, model=b"A100-SXM4-80GB".ljust(32, b"\0"))),
        register_tuple(3, model="H100-SXM5-80GB"),
    ]
    holdings = valuation.holdings_from_register(rows, MODEL_MAP)
    assert [h.status for h in holdings] == ["active", "impaired", "retired", "active"]
    assert holdings[0] == GpuHolding(
        serial_hash=serial(0), model="H100-SXM5-80GB", index_model="H100-SXM-80GB",
        acquisition_cost=2_500_000_000_000, commissioned_at=1_700_000_000, status="active")
    assert holdings[2].index_model == "A100-SXM-80GB"
    snap = snapshot(gpus=holdings, observed_at=OBSERVED)
    assert [g["serialHash"] for g in snap["gpus"]] == [serial(i) for i in range(4)]
    assert valuation.holdings_from_register([], MODEL_MAP) == []


def test_holdings_from_register_retired_unmapped_model_keeps_its_code() -> None:
    rows = [register_tuple(0, status=4, model=b"V100-SXM2-32GB".ljust(32, b"\0"))]
    (holding,) = valuation.holdings_from_register(rows, MODEL_MAP)
    assert holding.index_model == "V100-SXM2-32GB"


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (register_tuple(model=b"B200-SXM-192GB".ljust(32, b"\0")),
         "'B200-SXM-192GB' has no index model: add it to the model map"),
        (register_tuple(status=2, model=b"B200".ljust(32, b"\0")), "has no index model"),
        (register_tuple(status=0), "no GPU under that id"),
        (register_tuple(status=3), "not a GPUStatus flag"),
        (register_tuple(status=True), "not a GPUStatus flag"),
        (register_tuple(model=b"\0" * 32), "model is empty"),
        (register_tuple(model=b"H\xff".ljust(32, b"\0")), "not ASCII"),
        (register_tuple(model=b"x" * 33), "bytes32 holds 32"),
        (register_tuple(cost=0), "acquisition_cost"),
        (register_tuple()[:6], "8 fields"),
        ({"serial_hash": b"\x01" * 32, "model": H100}, "missing acquisition_cost"),
        (b"\x01" * 32, "expected the GPU struct"),
    ],
)
def test_holdings_from_register_errors(row: Any, match: str) -> None:
    with pytest.raises(RegisterError, match=match) as info:
        valuation.holdings_from_register([register_tuple(5), row], MODEL_MAP)
    assert "register row 1" in str(info.value)


# ------------------------------------------------------------------ version 2


def test_v2_is_observed_at_its_oldest_input() -> None:
    """nav-per-share v2: each index level names the observation time of the report it
    comes from, and the valuation is stamped with the oldest (the report is no fresher
    than its market data); the utilisation period may end later. Same formula as v1."""
    older, newer = OBSERVED - 7_200, OBSERVED - 3_600
    levels = {"H100-SXM-80GB": {**level(), "observedAt": older},
              "A100-SXM-80GB": {**level("1.20", "1.10"), "observedAt": newer}}
    gpus = [gpu(0), gpu(1, model="A100-SXM4-80GB", index_model="A100-SXM-80GB")]
    util = {"bps": 8_000, "periodStart": OBSERVED - 900, "periodEnd": OBSERVED,
            "source": "log entry 15"}
    snap = snapshot(version=2, observed_at=older, gpus=gpus, index=levels, utilisation=util)
    fields = computed(snap)
    assert fields.observed_at == older and fields.methodology_version == 2
    v1 = snapshot(observed_at=older, gpus=gpus, utilisation={**util, "periodEnd": older,
                                                             "periodStart": older - 900},
                  index={k: {x: y for x, y in v.items() if x != "observedAt"}
                         for k, v in levels.items()})
    assert computed(v1).value == fields.value  # the formula is version 1's
    with pytest.raises(MethodologyError, match="is not the oldest observation"):
        snapshot(version=2, observed_at=newer, gpus=gpus, index=levels, utilisation=util)
    with pytest.raises(MethodologyError, match="names no observedAt"):
        snapshot(version=2, observed_at=older, gpus=gpus, utilisation=util,
                 index={**levels, "H100-SXM-80GB": level()})
    with pytest.raises(MethodologyError, match="name no observedAt in version 1"):
        snapshot(observed_at=OBSERVED, gpus=gpus, index=levels)
