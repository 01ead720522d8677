"""KinkedRateModel: constructor refusals, the curve at its landmarks (zero, kink, above
the kink, full and over-full utilisation), the per-second conversion, and that the rate
never falls as utilisation rises (hypothesis, against a Python reference as well)."""

from __future__ import annotations

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpushares import reasons
from tests.budgets import budget
from tests.contracts import deployers

WAD = 10**18
YEAR = 31_536_000
MAX_RATE_PER_YEAR = 10 * WAD
KINK_REFUSED = reasons.RATE_MODEL_KINK_STRICTLY_BETWEEN_0
MAX_REFUSED = reasons.RATE_MODEL_MAXIMUM_RATE_ABOVE_1

# 2 % base, +10 % up to an 80 % kink, +300 % from the kink to full utilisation.
BASE, SLOPE1, SLOPE2, KINK = 2 * WAD // 100, 10 * WAD // 100, 300 * WAD // 100, 80 * WAD // 100


def _deploy(base=BASE, slope1=SLOPE1, slope2=SLOPE2, kink=KINK):
    return deployers.KINKED_RATE_MODEL.deploy(base, slope1, slope2, kink)


def ref_utilisation(supplied: int, borrowed: int) -> int:
    if borrowed == 0:
        return 0
    if borrowed >= supplied:
        return WAD
    return borrowed * WAD // supplied


def ref_annual(params: tuple[int, int, int, int], u: int) -> int:
    base, slope1, slope2, kink = params
    if u <= kink:
        return base + slope1 * u // kink
    return base + slope1 + slope2 * (u - kink) // (WAD - kink)


@pytest.fixture
def model():
    return _deploy()


# ---------------------------------------------------------------------------------
# Constructor
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kink", [0, WAD, WAD + 1, 2**256 - 1])
def test_constructor_refuses_a_kink_outside_the_open_interval(kink):
    with boa.reverts(KINK_REFUSED):
        _deploy(kink=kink)


@pytest.mark.parametrize(
    "rates",
    [
        (MAX_RATE_PER_YEAR + 1, 0, 0),
        (0, MAX_RATE_PER_YEAR + 1, 0),
        (0, 0, MAX_RATE_PER_YEAR + 1),
        (4 * WAD, 3 * WAD, 3 * WAD + 1),
    ],
)
def test_constructor_refuses_a_maximum_rate_above_1000_percent(rates):
    with boa.reverts(MAX_REFUSED):
        _deploy(*rates)


def test_constructor_refuses_an_overflowing_sum():
    # The sum overflows uint256 before the cap is even compared: a bare revert.
    with boa.reverts():
        _deploy(2**255, 2**255, 0)


def test_constructor_accepts_the_bounds_and_stores_the_parameters():
    edge = _deploy(4 * WAD, 3 * WAD, 3 * WAD, 1)  # sum exactly 1,000 %, kink 1 wei
    assert (edge.base_rate_per_year(), edge.slope1_per_year(), edge.slope2_per_year()) == (
        4 * WAD, 3 * WAD, 3 * WAD,
    )
    assert edge.kink() == 1
    assert _deploy(kink=WAD - 1).kink() == WAD - 1
    assert edge.SECONDS_PER_YEAR() == YEAR
    assert edge.MAX_RATE_PER_YEAR() == MAX_RATE_PER_YEAR
    # Top of the curve: exactly the cap, per second rounded down.
    assert edge.borrow_rate_per_year(1, 1) == MAX_RATE_PER_YEAR
    assert edge.borrow_rate(1, 1) == MAX_RATE_PER_YEAR // YEAR


# ---------------------------------------------------------------------------------
# Utilisation
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("supplied", "borrowed", "expected"),
    [
        (0, 0, 0),  # empty pool
        (10**12, 0, 0),
        (0, 5, WAD),  # debt without lenders' assets (bad debt, reserves lent out)
        (100, 100, WAD),
        (100, 150, WAD),  # capped
        (3, 1, WAD // 3),  # rounded down
        (1_000_000, 800_000, KINK),
        (2**128 - 1, 2**128 - 2, (2**128 - 2) * WAD // (2**128 - 1)),
    ],
)
def test_utilisation(model, supplied, borrowed, expected):
    assert model.utilisation(supplied, borrowed) == expected


# ---------------------------------------------------------------------------------
# The curve
# ---------------------------------------------------------------------------------


def test_rate_at_zero_utilisation_is_the_base(model):
    assert model.borrow_rate_per_year(10**12, 0) == BASE
    assert model.borrow_rate_per_year(0, 0) == BASE
    assert model.borrow_rate(10**12, 0) == BASE // YEAR == 634_195_839


def test_rate_at_the_kink_is_base_plus_slope1(model):
    assert model.borrow_rate_per_year(1_000_000, 800_000) == BASE + SLOPE1
    assert model.borrow_rate(1_000_000, 800_000) == (BASE + SLOPE1) // YEAR


def test_rate_just_below_and_above_the_kink(model):
    supplied = 10**18
    below = model.borrow_rate_per_year(supplied, KINK - 1)
    above = model.borrow_rate_per_year(supplied, KINK + 1)
    assert below == BASE + SLOPE1 * (KINK - 1) // KINK == BASE + SLOPE1 - 1
    assert above == BASE + SLOPE1 + SLOPE2 * 1 // (WAD - KINK) == BASE + SLOPE1 + 15
    assert below < BASE + SLOPE1 < above


def test_rate_halfway_below_the_kink(model):
    # u = 40 %: half of slope1.
    assert model.borrow_rate_per_year(1_000, 400) == BASE + SLOPE1 // 2


def test_rate_above_the_kink(model):
    # u = 90 %: half-way from the kink to 100 %, so half of slope2 on top.
    assert model.borrow_rate_per_year(1_000, 900) == BASE + SLOPE1 + SLOPE2 // 2
    # u = 95 %: three quarters of slope2.
    assert model.borrow_rate_per_year(1_000, 950) == BASE + SLOPE1 + 3 * SLOPE2 // 4


@pytest.mark.parametrize(
    ("supplied", "borrowed"), [(1_000, 1_000), (1_000, 1_001), (1, 10**30), (0, 1)]
)
def test_rate_at_and_above_full_utilisation_is_capped(model, supplied, borrowed):
    top = BASE + SLOPE1 + SLOPE2
    assert model.borrow_rate_per_year(supplied, borrowed) == top
    assert model.borrow_rate(supplied, borrowed) == top // YEAR == 98_934_550_989


@pytest.mark.parametrize(
    ("supplied", "borrowed"),
    [
        (1, 0), (7, 1), (10**6, 123_456), (10**6, 800_000), (10**6, 800_001),
        (10**6, 999_999), (5, 5),
    ],
)
def test_per_second_rate_is_the_annual_rate_rounded_down(model, supplied, borrowed):
    annual = model.borrow_rate_per_year(supplied, borrowed)
    assert annual == ref_annual((BASE, SLOPE1, SLOPE2, KINK), ref_utilisation(supplied, borrowed))
    assert model.borrow_rate(supplied, borrowed) == annual // YEAR


def test_flat_model_has_a_constant_rate():
    flat = _deploy(7 * WAD // 100, 0, 0, WAD // 2)
    rates = {flat.borrow_rate(1_000, b) for b in (0, 1, 500, 999, 1_000, 5_000)}
    assert rates == {7 * WAD // 100 // YEAR}


# ---------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------

_params = st.tuples(
    st.integers(0, 4 * WAD),
    st.integers(0, 3 * WAD),
    st.integers(0, 3 * WAD),
    st.integers(1, WAD - 1),
)


@settings(budget("rate_model_chain"))
@given(
    params=_params,
    supplied=st.integers(1, 2**128 - 1),
    borrowed=st.lists(st.integers(0, 2**128), min_size=2, max_size=12),
)
def test_rate_is_monotonic_in_utilisation(params, supplied, borrowed):
    model = _deploy(*params)
    borrowed = sorted(borrowed)
    per_year = [model.borrow_rate_per_year(supplied, b) for b in borrowed]
    per_second = [model.borrow_rate(supplied, b) for b in borrowed]
    assert per_year == sorted(per_year)
    assert per_second == sorted(per_second)
    assert per_year == [ref_annual(params, ref_utilisation(supplied, b)) for b in borrowed]
    assert per_second == [r // YEAR for r in per_year]
    assert all(params[0] <= r <= sum(params[:3]) for r in per_year)


@settings(deadline=None)
@given(
    borrowed=st.integers(1, 2**128 - 1),
    supplied=st.lists(st.integers(0, 2**128 - 1), min_size=2, max_size=12),
)
def test_rate_never_rises_when_lenders_supply_more(borrowed, supplied):
    model = _deploy()
    supplied = sorted(supplied)
    rates = [model.borrow_rate(s, borrowed) for s in supplied]
    assert rates == sorted(rates, reverse=True)
    assert rates == [
        ref_annual((BASE, SLOPE1, SLOPE2, KINK), ref_utilisation(s, borrowed)) // YEAR
        for s in supplied
    ]
