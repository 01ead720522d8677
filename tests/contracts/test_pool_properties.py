"""Property tests of LendingPool's arithmetic, for 6- and 18-decimal loan assets, in a
busy market (lenders, borrowers, months of interest: the share price and the borrow
index are far from 1.0):

(a) no free round trip: deposit then redeem every share (or withdraw `maxWithdraw`),
    mint then redeem, never pays back more than was put in (and loses at most one
    share's worth plus a wei), nor lowers what the other lenders' shares are worth;
    borrow then repay everything never costs less than was borrowed, after any prior
    interest accrual and any wait in between;
(b) the accrual splits: with a constant rate (slope1 = 0, utilisation below the kink),
    accruing over [t0, t2] in one step or over [t0, t1] then [t1, t2] gives the same
    borrow index and total debt within the rounding of `exp` and of the index (bounds
    below), and the same idle liquidity exactly; every accrual's interest is exactly the
    lenders' part plus the reserves' part (`InterestAccrued` against the market deltas),
    and what the views preview is what the accrual writes;
(c) the borrow index never decreases, over random time travel interleaved with accruals,
    borrows, repays, deposits and withdrawals.

Amounts run from 1 to 1e30 base units (1e36 vault shares for mints) with 1, 2 and the
powers of ten as explicit boundaries; borrows are capped at what the market can lend the
test borrower (~2.1e9 USD of headroom at the worlds' NAV).

Each world is deployed once per module into its own `boa.Env`; every example runs in an
anchor of it, which also rolls back the clock, so the World's Python-side `last_observed`
(the oracle's last observation, used by `set_price`) is restored after each example."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpushares import lending
from tests.budgets import budget
from tests.contracts.pool_helpers import (
    DEBT_SCALE,
    MAX_UINT,
    PRICE,
    WAD,
    YEAR,
    ZERO_REDEEM,
    ZERO_SHARES,
    World,
    build_world,
)

DAY = 86_400
DECIMALS = [6, 18]
# NAV high enough that the test borrower's 3,000 shares back ~2.1e9 USD of borrowing
# (2.1e27 base units of an 18-decimal asset); the feed accepts up to 1e15 (1e7 USD).
NAV = 10**6 * PRICE
LENDERS_USD = (3 * 10**9, 2 * 10**9, 10**9)
BORROWERS = ((2_000, 3_000), (2_000, 5_000))  # (shares, bps of the collateral value)
TEST_BORROWER_SHARES = 3_000
# Constant-rate worlds: slope1 = 0 and a kink far above the utilisation (~25-45 %).
CONSTANT_RATES = [2 * WAD // 100, 50 * WAD // 100, 3 * WAD]
KINK = 9 * WAD // 10
RESERVE_FACTOR_BPS = 1_000


def boundaries(top: int) -> list[int]:
    values = {1, 2, 3}
    for k in range(1, len(str(top))):
        values |= {10**k - 1, 10**k, 10**k + 1}
    return sorted(v for v in values if v <= top)


def amounts(top: int = 10**30):
    """1 to `top`, with the small values and every power of ten (+-1) as boundaries."""
    return st.one_of(st.sampled_from(boundaries(top)), st.integers(1, top))


waits = st.one_of(
    st.sampled_from([0, 1, 2, 59, 3_600, DAY, 30 * DAY, YEAR]),
    st.integers(0, 3 * YEAR),
)


def debt_of(scaled: int, index: int) -> int:
    return -(-scaled * index // DEBT_SCALE)


@dataclass
class Built:
    env: boa.Env
    world: World
    last_observed: int


def _busy(w: World, *, months: int) -> None:
    """Lenders supply, two borrowers borrow, `months` of interest accrue (with a repay
    and a deposit on the way, so stored and previewed states differ), and the test
    borrower (borrowers[2]) posts collateral without borrowing."""
    pool, unit = w.pool, w.unit
    for lender, usd in zip(w.lenders, LENDERS_USD, strict=True):
        w.fund(lender, usd * unit)
        with boa.env.prank(lender):
            pool.deposit(usd * unit, lender)
    market = lending.Market(asset_decimals=w.asset_decimals, feed_decimals=8,
                            lltv=pool.lltv(), max_ltv=pool.max_ltv())
    for borrower, (shares, bps) in zip(w.borrowers, BORROWERS, strict=False):
        w.give_shares(borrower, shares * 10**18)
        w.fund(borrower, 10**6 * unit)
        with boa.env.prank(borrower):
            pool.supply_collateral(shares * 10**18, borrower)
            pool.borrow(lending.collateral_value(market, shares * 10**18, NAV) * bps // 10_000,
                        borrower)
    for _ in range(months):
        boa.env.time_travel(seconds=30 * DAY)
        with boa.env.prank(w.borrowers[0]):
            pool.repay(7 * unit + 1, w.borrowers[0])
        w.fund(w.lenders[1], 13 * unit + 7)
        with boa.env.prank(w.lenders[1]):
            pool.deposit(13 * unit + 7, w.lenders[1])
    boa.env.time_travel(seconds=DAY + 17)  # pending interest the views must preview
    assert w.set_price(NAV)
    test_borrower = w.borrowers[2]
    w.give_shares(test_borrower, TEST_BORROWER_SHARES * 10**18)
    with boa.env.prank(test_borrower):
        pool.supply_collateral(TEST_BORROWER_SHARES * 10**18, test_borrower)


_WORLDS: dict[tuple, Built] = {}


def world(decimals: int, rates: tuple | None = None) -> Built:
    key = (decimals, rates)
    if key not in _WORLDS:
        env = boa.Env()
        with boa.swap_env(env):
            boa.env.enable_fast_mode()
            kwargs = {} if rates is None else {"rates": rates}
            w = build_world(asset_decimals=decimals, initial_price=NAV,
                            reserve_factor_bps=RESERVE_FACTOR_BPS,
                            label=f"prop-{decimals}-{rates}", **kwargs)
            _busy(w, months=7 if rates is None else 1)
            assert w.pool.borrow_index() > WAD
            assert w.pool.totalAssets() != w.pool.totalSupply() // 10**6
        _WORLDS[key] = Built(env, w, w.last_observed)
    return _WORLDS[key]


@contextlib.contextmanager
def example(built: Built):
    """One example: the world's env, inside an anchor; the oracle's Python-side clock
    restored on the way out (the anchor rolls the chain's clock back)."""
    w = built.world
    with boa.swap_env(built.env), built.env.anchor():
        boa.env.sha3_trace = {}
        boa.env.sstore_trace = {}
        w.last_observed = built.last_observed
        try:
            yield w
        finally:
            w.last_observed = built.last_observed


def wait_and_refresh(w: World, seconds: int) -> None:
    """Let time pass; keep the NAV fresh for borrows."""
    if seconds:
        boa.env.time_travel(seconds=seconds)
    assert w.set_price(NAV)


def other_claim(w: World) -> int:
    """What the first lender's vault shares are worth now."""
    return w.pool.convertToAssets(w.pool.balanceOf(w.lenders[0]))


def new_account(w: World, label: str, funds: int) -> str:
    account = boa.env.generate_address(label)
    w.fund(account, funds)
    return account


# ---------------------------------------------------------------------------------
# (a) no free round trip
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("pool_round_trip"))
@given(assets=amounts(), wait=waits)
def test_deposit_then_redeem_all_never_profits(decimals, assets, wait):
    with example(world(decimals)) as w:
        pool = w.pool
        boa.env.time_travel(seconds=wait)
        x = new_account(w, "round-trip", assets)
        supplied, total_supply = pool.totalAssets(), pool.totalSupply()
        claims = [other_claim(w)]
        shares = pool.previewDeposit(assets)
        with boa.env.prank(x):
            if shares == 0:
                with boa.reverts(ZERO_SHARES):
                    pool.deposit(assets, x)
                return
            assert pool.deposit(assets, x) == shares
            claims.append(other_claim(w))
            back = pool.previewRedeem(shares)
            if back == 0:
                with boa.reverts(ZERO_REDEEM):
                    pool.redeem(shares, x, x)
                return
            assert pool.redeem(shares, x, x) == back
            claims.append(other_claim(w))
        assert back <= assets
        # ... and loses at most one share's worth (at the price before) plus a wei.
        assert assets - back <= -(-(supplied + 1) // (total_supply + 10**6)) + 1
        assert w.asset.balanceOf(x) == back
        assert pool.balanceOf(x) == 0
        # Rounding in the pool's favour never dilutes the lenders already in it.
        assert claims == sorted(claims)


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("pool_round_trip"))
@given(assets=amounts(), wait=waits)
def test_deposit_then_withdraw_max_never_profits(decimals, assets, wait):
    with example(world(decimals)) as w:
        pool = w.pool
        boa.env.time_travel(seconds=wait)
        x = new_account(w, "round-trip", assets)
        with boa.env.prank(x):
            if pool.previewDeposit(assets) == 0:
                with boa.reverts(ZERO_SHARES):
                    pool.deposit(assets, x)
                return
            shares = pool.deposit(assets, x)
            most = pool.maxWithdraw(x)
            assert most == pool.convertToAssets(shares)  # the deposit itself is idle
            if most == 0:
                return
            burnt = pool.withdraw(most, x, x)
        assert most <= assets
        assert burnt <= shares
        assert w.asset.balanceOf(x) == most


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("pool_round_trip"))
@given(shares=amounts(10**36), wait=waits)
def test_mint_then_redeem_never_profits(decimals, shares, wait):
    with example(world(decimals)) as w:
        pool = w.pool
        boa.env.time_travel(seconds=wait)
        cost = pool.previewMint(shares)
        x = new_account(w, "round-trip", cost)
        claims = [other_claim(w)]
        with boa.env.prank(x):
            assert pool.mint(shares, x) == cost
            assert w.asset.balanceOf(x) == 0
            claims.append(other_claim(w))
            back = pool.previewRedeem(shares)
            if back == 0:
                with boa.reverts(ZERO_REDEEM):
                    pool.redeem(shares, x, x)
                return
            assert pool.redeem(shares, x, x) == back
            claims.append(other_claim(w))
        assert back <= cost
        assert claims == sorted(claims)


def _borrowable(w: World, borrower: str) -> int:
    """The most the borrower can borrow now: max-LTV headroom (gpushares.lending) and
    liquidity, with the pool's rounding of the new debt."""
    pool = w.pool
    market = lending.Market(asset_decimals=w.asset_decimals, feed_decimals=8,
                            lltv=pool.lltv(), max_ltv=pool.max_ltv())
    collateral, debt, scaled = pool.position(borrower)
    price = pool.price()
    supplied, reserves, _, _ = pool.market()
    index, total_scaled = pool.borrow_index(), pool.total_scaled_debt()
    limit = lending.collateral_value(market, collateral, price) * market.max_ltv // WAD

    def fits(assets: int) -> bool:
        added = -(-assets * DEBT_SCALE // index)
        return (lending.within(market, debt_of(scaled + added, index), collateral, price,
                               market.max_ltv)
                and debt_of(total_scaled + added, index) <= supplied + reserves)

    most = max(0, min(limit - debt, supplied + reserves - pool.market()[2]))
    while most and not fits(most):
        most -= 1
    return most


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("pool_borrow_round_trip"))
@given(assets=amounts(), before=waits, between=waits, max_uint=st.booleans())
def test_borrow_then_repay_all_never_costs_less(decimals, assets, before, between, max_uint):
    with example(world(decimals)) as w:
        pool = w.pool
        borrower = w.borrowers[2]
        wait_and_refresh(w, before)
        assets = min(assets, _borrowable(w, borrower))
        index = pool.borrow_index()
        assert index > WAD
        with boa.env.prank(borrower):
            pool.borrow(assets, borrower)
        if between:
            boa.env.time_travel(seconds=between)  # repay works with a stale price too
        debt = pool.position(borrower)[1]
        assert debt >= assets
        w.fund(borrower, debt)
        with boa.env.prank(borrower):
            repaid = pool.repay(MAX_UINT if max_uint else debt, borrower)
        assert repaid == debt >= assets
        assert pool.position(borrower) == (TEST_BORROWER_SHARES * 10**18, 0, 0)
        assert w.asset.balanceOf(borrower) == assets


# ---------------------------------------------------------------------------------
# (b) the accrual splits
# ---------------------------------------------------------------------------------


def _accrue_checked(w: World, seconds: int) -> None:
    """Travel `seconds`, accrue, and check the accrual: the preview is what gets
    written, and the interest is exactly the lenders' part plus the reserves' part."""
    pool = w.pool
    supplied0, reserves0, debt0, idle0 = pool.market()  # stored: accrued just before
    index0 = pool.borrow_index()
    boa.env.time_travel(seconds=seconds)
    preview = (pool.market(), pool.borrow_index())
    pool.accrue_interest()
    logs = [log for log in pool.get_logs() if type(log).__name__ == "InterestAccrued"]
    supplied, reserves, debt, idle = pool.market()
    index = pool.borrow_index()
    assert preview == ((supplied, reserves, debt, idle), index)
    assert pool.totalAssets() == supplied
    assert idle == idle0  # accrual never moves the idle liquidity
    if index == index0:
        assert logs == []
        assert (supplied, reserves, debt) == (supplied0, reserves0, debt0)
        return
    (log,) = logs
    assert log.borrow_index == index
    assert log.interest == debt - debt0
    assert log.to_reserves == log.interest * RESERVE_FACTOR_BPS // 10_000
    assert supplied - supplied0 == log.interest - log.to_reserves
    assert reserves - reserves0 == log.to_reserves


@pytest.mark.parametrize("base", CONSTANT_RATES, ids=["2%", "50%", "300%"])
@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("pool_accrual"))
@given(data=st.data())
def test_accrual_over_one_interval_equals_two(decimals, base, data):
    # Utilisation stays under the kink while the index grows less than ~e**2.4 (from
    # ~30 %, with 90 % of the interest to lenders): each interval at most e**1.
    span = min(3 * YEAR, YEAR * WAD // base)
    interval = st.one_of(st.sampled_from([0, 1, 2, 59, 3_600, DAY]), st.integers(0, span))
    first, second = data.draw(interval, label="first"), data.draw(interval, label="second")
    rates = (base, 0, WAD, KINK)
    built = world(decimals, rates)
    results = []
    for steps in ([first + second], [first, second]):
        with example(built) as w:
            pool = w.pool
            pool.accrue_interest()  # start from a stored state
            total_scaled = pool.total_scaled_debt()
            for seconds in steps:
                supplied, _, debt, _ = pool.market()
                assert w.model.utilisation(supplied, debt) < KINK  # the rate is constant
                _accrue_checked(w, seconds)
            results.append((pool.borrow_index(), pool.market()))
    (index_one, (supplied_one, reserves_one, debt_one, idle_one)), \
        (index_two, (supplied_two, reserves_two, debt_two, idle_two)) = results
    # exp(a + b) vs exp(a) * exp(b) in 18-decimal fixed point, then the index rounded
    # down once or twice: a couple of wei per 1e18 of index.
    tolerance = 2 + 2 * (max(index_one, index_two) // WAD)
    assert abs(index_one - index_two) <= tolerance
    # The debt moves with the index, scaled by the total scaled debt (so in a 1e9-USD,
    # 18-decimal market "a few wei of index" is ~1e4 wei of debt): within that.
    assert abs(debt_one - debt_two) <= total_scaled * abs(index_one - index_two) // DEBT_SCALE + 1
    assert idle_one == idle_two
    # Interest split: the reserve share is floored once per accrual.
    assert supplied_one + reserves_one - (supplied_two + reserves_two) == debt_one - debt_two
    assert abs((reserves_one - reserves_two) * 10_000 // RESERVE_FACTOR_BPS
               - (debt_one - debt_two)) <= 2 * 10_000 // RESERVE_FACTOR_BPS


# ---------------------------------------------------------------------------------
# (c) the borrow index never decreases
# ---------------------------------------------------------------------------------

actions = st.lists(
    st.tuples(waits, st.sampled_from(["view", "accrue", "borrow", "repay", "deposit",
                                      "withdraw"]), st.integers(1, 10_000)),
    min_size=1, max_size=12,
)


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("pool_index_walk"))
@given(steps=actions)
def test_borrow_index_never_decreases(decimals, steps):
    with example(world(decimals)) as w:
        pool = w.pool
        borrower, lender = w.borrowers[2], w.lenders[0]
        w.fund(borrower, 10**12 * w.unit)
        last = pool.borrow_index()
        for seconds, action, bps in steps:
            boa.env.time_travel(seconds=seconds)
            if action == "borrow":
                assert w.set_price(NAV)  # may move the clock one second
            previewed = pool.borrow_index()
            assert previewed >= last
            if action == "accrue":
                pool.accrue_interest()
            elif action == "borrow":
                assets = _borrowable(w, borrower) * bps // 10_000
                if assets:
                    with boa.env.prank(borrower):
                        pool.borrow(assets, borrower)
            elif action == "repay":
                debt = pool.position(borrower)[1]
                # Years at the steep slope can outgrow the borrower's funds: repay what
                # it holds at most.
                amount = min(max(1, debt * bps // 10_000), w.asset.balanceOf(borrower))
                if debt and amount:
                    with boa.env.prank(borrower):
                        pool.repay(amount, borrower)
            elif action == "deposit":
                w.fund(lender, bps * w.unit)
                with boa.env.prank(lender):
                    pool.deposit(bps * w.unit, lender)
            elif action == "withdraw":
                assets = pool.maxWithdraw(lender) * bps // 10_000
                if assets:
                    with boa.env.prank(lender):
                        pool.withdraw(assets, lender, lender)
            index = pool.borrow_index()
            assert index >= previewed >= last
            if action != "view":
                # Any write accrued first (the clock has not moved since the preview).
                assert index == previewed
            last = index
