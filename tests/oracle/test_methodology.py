"""oracle.methodology: offer-median v1 and time-weighted-utilisation v1, recomputed by hand
and independently, and the refusals of malformed snapshots."""

from __future__ import annotations

import copy
import csv
import decimal
import json
import statistics
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from oracle import attest, methodology, reports
from oracle.methodology import MethodologyError, PriceFields, UtilisationFields
from tests.oracle import factories as f


def price(snapshot: dict[str, Any]) -> PriceFields:
    out = methodology.compute("price", attest.canonical_json(snapshot))
    assert isinstance(out, PriceFields)
    return out


def utilisation(snapshot: dict[str, Any]) -> UtilisationFields:
    out = methodology.compute("utilisation", attest.canonical_json(snapshot))
    assert isinstance(out, UtilisationFields)
    return out


def util_bps(start: int, end: int, gpus: dict[str, list[tuple[int, str]]]) -> int:
    return utilisation(f.utilisation_snapshot(start, end, gpus)).utilisation_bps


# ---------------------------------------------------------------- offer-median v1


@pytest.mark.parametrize(
    ("prices", "value", "confidence"),
    [
        # odd: median 2; deviations 0.5, 0, 1 -> MAD 0.5
        (["3", "1.5", "2"], 200_000_000, 50_000_000),
        # even: median (2 + 4) / 2 = 3; deviations 2, 1, 1, 7 -> (1 + 2) / 2 = 1.5
        (["10", "2", "4", "1"], 300_000_000, 150_000_000),
        # one offer: the value itself, no dispersion
        (["1.23456789"], 123_456_789, 0),
        # two offers: the mean; MAD = half the spread
        (["1.1", "1.4"], 125_000_000, 15_000_000),
        # five offers with an outlier: median 1.56; deviations .06 .02 .01 8.44 0 -> .02
        (["1.5", "1.58", "1.55", "10", "1.56"], 156_000_000, 2_000_000),
        # the median is taken on values, not strings ("10" sorts before "9" as text)
        (["9", "10", "11"], 1_000_000_000, 100_000_000),
        # 8 decimals, ROUND_HALF_EVEN: 100000001.5 -> ...02, 0.5 -> 0, 1.5 -> 2, 2.5 -> 2
        (["1.00000001", "1.00000002"], 100_000_002, 0),
        (["0.000000005"], 0, 0),
        (["0.000000015"], 2, 0),
        (["0.000000025"], 2, 0),
        (["0.000000035"], 4, 0),
        # exponent and trailing-zero spellings are the same number
        (["1.50", "1.500", "1.5"], 150_000_000, 0),
    ],
)
def test_offer_median_by_hand(prices: list[str], value: int, confidence: int) -> None:
    fields = price(f.price_snapshot(prices, observed_at=42))
    assert fields == PriceFields(feed_id=f.FEED, value=value, confidence=confidence,
                                 observed_at=42, methodology_version=1)


def test_offer_median_on_a_real_day_by_hand() -> None:
    # 2026-03-02: 1.564444, 1.537037, 1.601111, 2.133611
    # median (1.564444 + 1.601111) / 2 = 1.5827775
    # deviations .0183335 .0457405 .0183335 .5508335 -> (.0183335 + .0457405) / 2 = .032037
    snap = reports.listings_snapshot(f.LISTINGS_DIR / "2026-03-02.csv", f.FEED)
    fields = price(snap)
    assert (fields.value, fields.confidence) == (158_277_750, 3_203_700)


def _independent(csv_path: Path) -> tuple[int, int, int, int]:
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    prices = [Decimal(r["dph_per_gpu"]) for r in rows]
    med = statistics.median(prices)
    mad = statistics.median([abs(p - med) for p in prices])
    eight = Decimal("0.00000001")
    observed = max(int(datetime.fromisoformat(r["collected_utc"]).timestamp()) for r in rows)
    return (
        int(med.quantize(eight, rounding=ROUND_HALF_EVEN) * 10**8),
        int(mad.quantize(eight, rounding=ROUND_HALF_EVEN) * 10**8),
        observed,
        len(rows),
    )


@pytest.mark.parametrize("csv_path", f.LISTING_CSVS, ids=lambda p: p.stem)
def test_offer_median_on_real_listings(csv_path: Path) -> None:
    value, confidence, observed, n = _independent(csv_path)
    snap = reports.listings_snapshot(csv_path, f.FEED)
    assert len(snap["offers"]) == n and snap["observedAt"] == observed
    assert snap["source"] == f"h100-sxm-us/{csv_path.name} (CCIR sample data, MIT)"
    assert all(o["gpu"] == "H100 SXM" and o["country"] == "US" for o in snap["offers"])
    assert price(snap) == PriceFields(feed_id=f.FEED, value=value, confidence=confidence,
                                      observed_at=observed, methodology_version=1)
    # plausibility: an H100 SXM hour in the US costs $1..$3 in this sample
    assert 100_000_000 < value < 300_000_000 and 0 <= confidence < value


def test_real_listings_observed_at_is_the_collection_time() -> None:
    snap = reports.listings_snapshot(f.LISTINGS_DIR / "2026-03-02.csv", f.FEED)
    # 2026-03-02T15:00:18.792412+00:00, the latest row, truncated to the second
    assert snap["observedAt"] == 1_772_463_618


# --------------------------------------------------------------------- determinism


def _shuffled_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shuffled_keys(v) for k, v in sorted(value.items(), reverse=True)}
    if isinstance(value, list):
        return [_shuffled_keys(v) for v in value]
    return value


@pytest.mark.parametrize("kind", ["price", "utilisation"])
def test_same_snapshot_same_fields(kind: str) -> None:
    snap = (reports.listings_snapshot(f.LISTING_CSVS[1], f.FEED) if kind == "price"
            else f.fleet_snapshot(2))
    inputs = attest.canonical_json(snap)
    first = methodology.compute(kind, inputs)
    assert first is not None
    for _ in range(3):
        assert methodology.compute(kind, inputs) == first
        assert methodology.compute(kind, bytes(inputs)).model_dump() == first.model_dump()
    # key order of the snapshot does not reach the canonical bytes, nor the result
    reordered = attest.canonical_json(_shuffled_keys(copy.deepcopy(snap)))
    assert reordered == inputs
    assert methodology.compute(kind, reordered) == first


@given(st.lists(st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("99999"),
                            places=8, allow_nan=False, allow_infinity=False),
                min_size=1, max_size=15),
       st.randoms())
def test_offer_order_does_not_change_the_value(prices: list[Decimal], rnd) -> None:
    strings = [format(p, "f") for p in prices]
    one = price(f.price_snapshot(strings))
    rnd.shuffle(strings)
    other = price(f.price_snapshot(strings))
    # (the inputs hash does change: the offers list is part of the snapshot)
    assert (one.value, one.confidence) == (other.value, other.confidence)
    med = statistics.median(prices)
    assert one.value == int(med.quantize(Decimal("1E-8"), rounding=ROUND_HALF_EVEN) * 10**8)


LONG = "1.000000005000000000000000000001"  # x 1e8 = 100000000.5000000000000000000001


@pytest.mark.parametrize(
    ("prices", "context"),
    [([LONG], decimal.Context(prec=78)), (["1.564444", "1.601111"], decimal.Context(prec=6))],
    ids=["vyper-prec-78", "prec-6"],
)
def test_result_does_not_depend_on_the_ambient_decimal_context(
    prices: list[str], context: decimal.Context
) -> None:
    snap = f.price_snapshot(prices)
    with decimal.localcontext(decimal.Context()):  # Python's default: prec=28
        default = price(snap)
    with decimal.localcontext(context):
        assert price(snap) == default


def test_rounding_is_exact_for_long_decimals() -> None:
    # run under Python's default context: the test process has vyper's prec=78 installed
    with decimal.localcontext(decimal.Context()):
        assert price(f.price_snapshot([LONG])).value == 100_000_001


# ------------------------------------------------------ time-weighted-utilisation v1


def test_single_gpu_constant() -> None:
    fields = utilisation(f.utilisation_snapshot(1000, 1100, {"g": [(1000, "50")]}, [5, 7]))
    assert fields == UtilisationFields(spv_token=f.SPV, period_start=1000, period_end=1100,
                                       gpu_count=1, utilisation_bps=5_000, rental_revenue=12)


@pytest.mark.parametrize(
    ("samples", "bps"),
    [
        # samples before the period start: the last one before it holds into the period
        ([(50, "100"), (150, "0")], 5_000),
        ([(10, "30"), (50, "100"), (150, "0")], 5_000),
        ([(10, "100"), (90, "20")], 2_000),
        ([(100, "20")], 2_000),  # a sample exactly at the start
        # samples at or after the end are ignored; the last one inside holds to the end
        ([(100, "20"), (200, "100"), (250, "100")], 2_000),
        ([(150, "40"), (199, "0"), (300, "100")], 1_960),  # 49 s at 40% = 19.6%
        ([(200, "100")], 0),  # only a sample at the end: no data in the period
        # time before a GPU's first sample counts as idle
        ([(140, "100")], 6_000),
        ([(199, "100")], 100),
        # gaps: a sample holds until the next one, however far
        ([(100, "100"), (110, "0"), (190, "50")], 1_500),  # 10*100 + 80*0 + 10*50
        ([(100, "10"), (101, "90"), (199, "10")], 8_840),  # 1*10 + 98*90 + 1*10
    ],
)
def test_one_gpu_by_hand(samples: list[tuple[int, str]], bps: int) -> None:
    # period [100, 200): 100 s, so percent-seconds / 100 s = percent, x 100 = bps
    assert util_bps(100, 200, {"g": samples}) == bps


def test_zero_and_full_utilisation() -> None:
    assert util_bps(0, 3_600, {"a": [(0, "0")], "b": [(0, "0"), (1_800, "0")]}) == 0
    assert util_bps(10, 3_610, {"a": [(10, "100")], "b": [(5, "100"), (1_800, "100")]}) == (
        10_000
    )
    # a GPU that never reported during the period counts as idle
    assert util_bps(0, 3_600, {"a": [(0, "100")], "b": [(3_600, "100")]}) == 5_000


def test_multiple_gpus_are_averaged() -> None:
    gpus = {
        "full": [(0, "100")],
        "quarter": [(0, "25")],
        "idle": [(0, "0")],
    }
    # (1 + 0.25 + 0) / 3 = 0.41666.. -> 4166.67 bps -> 4167
    fields = utilisation(f.utilisation_snapshot(0, 1_000, gpus, [100, 200, 300]))
    assert (fields.gpu_count, fields.utilisation_bps, fields.rental_revenue) == (3, 4_167, 600)
    # GPUs are weighted equally whatever their number of samples
    gpus = {"a": [(0, "100"), (1, "100"), (2, "100"), (3, "0")], "b": [(0, "50")]}
    # a: 3 s busy of 4 = 75%; b: 50% -> 62.5%
    assert util_bps(0, 4, gpus) == 6_250


@pytest.mark.parametrize(
    ("pct", "bps"),
    [("0.005", 0), ("0.015", 2), ("0.025", 2), ("0.035", 4), ("33.33335", 3_333)],
)
def test_utilisation_rounds_half_even(pct: str, bps: int) -> None:
    # 0.005% = 0.5 bps, 0.015% = 1.5 bps, ...; 33.33335% = 3333.335 bps -> 3333
    assert util_bps(0, 10_000, {"g": [(0, pct)]}) == bps


def test_fractional_percentages() -> None:
    # 60 s at 99.99%, then 40 s at 12.5%: (5999.4 + 500) / 100 = 64.994% -> 6499.4 -> 6499
    assert util_bps(0, 100, {"g": [(0, "99.99"), (60, "12.5")]}) == 6_499


def test_reference_fleet_day_by_hand() -> None:
    # factories.fleet_snapshot(0), over one day of 24 h:
    #   a: 40% from -2 h (counts from 0 h) for 6 h, 100% for 12 h, 75% for 6 h
    #      -> (240 + 1200 + 450) / 2400 = 0.7875
    #   b: 100, 87.5, 62.25, 0 for 6 h each -> (600 + 525 + 373.5 + 0) / 2400 = 0.624375
    #   c: idle 3 h, 55.5% for 21 h (its samples at and after the end are ignored)
    #      -> 1165.5 / 2400 = 0.485625
    #   d: idle 12 h, 99.99% for 12 h -> 1199.88 / 2400 = 0.49995
    #   mean 2.39745 / 4 = 0.5993625 -> 5993.625 bps -> 5994
    fields = utilisation(f.fleet_snapshot(0))
    start = f.day_start(f.LISTING_CSVS[0])
    assert fields == UtilisationFields(
        spv_token=f.SPV, period_start=start, period_end=start + 86_400, gpu_count=4,
        utilisation_bps=5_994, rental_revenue=1_500_000_007,
    )


def test_no_invoices_is_zero_revenue() -> None:
    fields = utilisation(f.utilisation_snapshot(0, 10, {"g": [(0, "1")]}))
    assert fields.rental_revenue == 0 and fields.utilisation_bps == 100


# -------------------------------------------------------------- malformed snapshots


def _compute_error(kind: str, snapshot: dict[str, Any]) -> str:
    with pytest.raises(MethodologyError) as exc:
        methodology.compute(kind, attest.canonical_json(snapshot))
    return str(exc.value)


def _mutated(base: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    target = out
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


_DELETE = object()
PRICE_BASE = f.price_snapshot(["1.5", "2"])


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["extra"], 1, "snapshot field extra: Extra inputs are not permitted"),
        (["offers", 0, "price"], "1", "snapshot field offers.0.price: Extra inputs are not "
                                       "permitted"),
        (["offers", 1, "pricePerGpuHour"], "-1",
         "snapshot field offers.1.pricePerGpuHour: Value error, price must be positive, got -1"),
        (["offers", 1, "pricePerGpuHour"], "0",
         "snapshot field offers.1.pricePerGpuHour: Value error, price must be positive, got 0"),
        (["offers", 0, "pricePerGpuHour"], "abc",
         "snapshot field offers.0.pricePerGpuHour: Value error, not a plain decimal number "
         "like 2.15: 'abc'"),
        (["offers", 0, "pricePerGpuHour"], "NaN",
         "snapshot field offers.0.pricePerGpuHour: Value error, not a plain decimal number "
         "like 2.15: 'NaN'"),
        (["offers", 0, "pricePerGpuHour"], "Infinity",
         "snapshot field offers.0.pricePerGpuHour: Value error, not a plain decimal number like "
         "2.15: 'Infinity'"),
        (["offers", 0, "pricePerGpuHour"], 2, "snapshot field offers.0.pricePerGpuHour: "
                                              "Input should be a valid string"),
        (["offers", 0, "pricePerGpuHour"], _DELETE, "snapshot field offers.0.pricePerGpuHour: "
                                                    "Field required"),
        (["offers", 0, "provider"], "", "snapshot field offers.0.provider: String should have "
                                        "at least 1 character"),
        (["offers", 0, "country"], "USA", "snapshot field offers.0.country: String should have "
                                          "at most 2 characters"),
        (["offers"], [], "snapshot field offers: List should have at least 1 item"),
        (["feedId"], "0x12", "snapshot field feedId: Value error, expected 0x followed by 64 "
                             "hex digits"),
        (["observedAt"], -1, "snapshot field observedAt: Input should be greater than or equal "
                             "to 0"),
        (["source"], _DELETE, "snapshot field source: Field required"),
    ],
)
def test_malformed_price_snapshot(path: list[Any], value: Any, message: str) -> None:
    assert _compute_error("price", _mutated(PRICE_BASE, path, value)).startswith(message)


UTIL_BASE = f.utilisation_snapshot(0, 100, {"a": [(0, "50")], "b": [(10, "20"), (50, "30")]},
                                   [1, 2])


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["extra"], True, "snapshot field extra: Extra inputs are not permitted"),
        (["gpus", 0, "temperature"], 40, "snapshot field gpus.0.temperature: Extra inputs"),
        (["gpus", 1, "samples"], [[50, "30"], [10, "20"]],
         "snapshot field gpus.1.samples: Value error, sample times must be strictly ascending"),
        (["gpus", 1, "samples"], [[10, "30"], [10, "20"]],
         "snapshot field gpus.1.samples: Value error, sample times must be strictly ascending"),
        (["gpus", 1, "samples"], [], "snapshot field gpus.1.samples: List should have at least "
                                     "1 item"),
        (["gpus", 0, "samples"], [[0, "100.01"]],
         "snapshot field gpus.0.samples: Value error, utilisation percent 100.01 is outside "
         "0..100"),
        (["gpus", 0, "samples"], [[0, "-1"]],
         "snapshot field gpus.0.samples: Value error, utilisation percent -1 is outside 0..100"),
        (["gpus", 0, "samples"], [[0, "x"]], "snapshot field gpus.0.samples: Value error, not a "
                                             "plain decimal number like 2.15: 'x'"),
        (["gpus", 0, "uuid"], "", "snapshot field gpus.0.uuid: String should have at least 1"),
        (["gpus"], [], "snapshot field gpus: List should have at least 1 item"),
        (["rentalInvoices"], [5, -1], "snapshot field rentalInvoices: Value error, rental "
                                      "invoices are non-negative"),
        (["rentalInvoices"], _DELETE, "snapshot field rentalInvoices: Field required"),
        (["spvToken"], f.SPV.replace("e7f1725E", "E7F1725e"),
         "snapshot field spvToken: Value error, bad address checksum"),
        (["periodStart"], -1, "snapshot field periodStart: Input should be greater than or "
                              "equal to 0"),
        (["periodEnd"], 0, "snapshot field periodEnd: Input should be greater than or equal "
                           "to 1"),
    ],
)
def test_malformed_utilisation_snapshot(path: list[Any], value: Any, message: str) -> None:
    assert _compute_error("utilisation", _mutated(UTIL_BASE, path, value)).startswith(message)


def test_a_negative_sample_time_is_not_reported_as_unsorted() -> None:
    snap = f.utilisation_snapshot(0, 100, {"g": [(-5, "100")]})
    try:
        assert utilisation(snap).utilisation_bps == 10_000
    except MethodologyError as exc:
        assert "ascending" not in str(exc)


def test_duplicate_gpu_uuid() -> None:
    snap = _mutated(UTIL_BASE, ["gpus", 1, "uuid"], "a")
    assert _compute_error("utilisation", snap) == "a GPU uuid appears twice in the snapshot"


@pytest.mark.parametrize(("start", "end"), [(100, 100), (100, 99)])
def test_empty_period(start: int, end: int) -> None:
    snap = f.utilisation_snapshot(start, end, {"g": [(0, "1")]})
    assert _compute_error("utilisation", snap) == (
        "utilisation period is empty: periodEnd must exceed periodStart"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff", "the snapshot is not UTF-8 JSON"),
        (b"{", "the snapshot is not UTF-8 JSON"),
        (b"[1]", 'a snapshot is an object naming "methodology" and "version"'),
        (b'{"version":1}', 'a snapshot is an object naming "methodology" and "version"'),
        (b'{"methodology":"offer-median"}', 'an object naming "methodology" and "version"'),
    ],
)
def test_unreadable_snapshot(raw: bytes, message: str) -> None:
    with pytest.raises(MethodologyError, match=message):
        methodology.compute("price", raw)


def test_the_functions_themselves_raise_pydantic_errors() -> None:
    with pytest.raises(ValidationError, match=r"offers\.0\.pricePerGpuHour\n.*must be positive"):
        methodology.offer_median_v1(_mutated(PRICE_BASE, ["offers", 0, "pricePerGpuHour"], "-2"))
    with pytest.raises(ValidationError, match=r"gpus\.0\.samples\n.*strictly ascending"):
        methodology.time_weighted_utilisation_v1(
            _mutated(UTIL_BASE, ["gpus", 0, "samples"], [[5, "1"], [4, "1"]])
        )


# ------------------------------------------------------------- unknown methodology


@pytest.mark.parametrize(
    ("kind", "snapshot"),
    [
        ("price", {**PRICE_BASE, "version": 2}),
        ("price", {**PRICE_BASE, "methodology": "offer-mean"}),
        ("utilisation", {**UTIL_BASE, "version": 0}),
        # a methodology of the other kind is unknown for this kind
        ("price", UTIL_BASE),
        ("utilisation", PRICE_BASE),
    ],
)
def test_unknown_methodology_is_none(kind: str, snapshot: dict[str, Any]) -> None:
    assert methodology.compute(kind, attest.canonical_json(snapshot)) is None


@pytest.mark.parametrize("raw", [b'{"methodology":"offer-median","version":[1]}',
                                 b'{"methodology":{"name":"offer-median"},"version":1}'])
def test_unhashable_methodology_name_or_version(raw: bytes) -> None:
    with pytest.raises(MethodologyError):
        methodology.compute("price", raw)


@pytest.mark.parametrize("version", ["1", True, 1.5])
def test_a_version_that_is_not_an_integer_is_refused(version: object) -> None:
    data = json.dumps({**PRICE_BASE, "version": version}).encode()
    with pytest.raises(methodology.MethodologyError, match="must be a string and"):
        methodology.compute("price", data)


@pytest.mark.parametrize("value", ["1_5", " 2 ", "1e2", "+1", ".5", "1."])
def test_loose_decimal_spellings_are_refused(value: str) -> None:
    snap = copy.deepcopy(PRICE_BASE)
    snap["offers"][0]["pricePerGpuHour"] = value
    with pytest.raises(methodology.MethodologyError, match="not a plain decimal number"):
        methodology.compute("price", attest.canonical_json(snap))
