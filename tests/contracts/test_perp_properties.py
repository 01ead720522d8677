"""Property tests of PerpMarket's arithmetic, for 6- and 18-decimal margin assets, in the
full suite (`perp_helpers.build_perp_world`: the signed OracleHub and its FeedAdapter
as the GPU-hour index, trades as two-step orders, derived views on the PerpLens):

(a) funding is path independent: `gpushares.perp.funding_step` over `dt` in one step
    and split into random sub-steps (constant price and skew) agree within dust, and
    both stay within dust of the exact integral of the rate (a Fraction: the rate moves
    linearly at the skew's velocity until it reaches the cap, then stays there); on
    chain, one market anchored twice (one accrual vs a poke after every sub-step) gives
    exactly the mirror's paths and so the same index within dust;
(b) the mirror is the market: after random skews (the ratio clamped at +-1 when the
    skew passes the skew scale), funding speeds and caps (a stored rate above a newly
    lowered cap is clamped), start rates and waits, `funding_index()` and
    `funding_rate()` are exactly `gpushares.perp.funding_step` from the stored slot, and
    an accrual writes exactly that;
(c) no fill is better than the index: a closed skew loop's unclamped premiums sum to
    zero (`sum d * (s + d / 2) = (s_end**2 - s_start**2) / 2`), and every charged
    premium (only the leg that increases |skew| pays, a trade crossing zero skew is
    split there) is at least the exact one and at least zero, so the loop's premiums
    sum to at least zero; a trade crossing zero pays what its two halves split at zero
    pay (issue 18 item 2: no premium saved by crossing); on chain any round trip of one
    trader (random trades back to flat, same index, funding off) loses exactly its fees
    plus its (never negative) premiums, so at least its fees;
(d) the lens's `liquidation_price()` agrees with `can_liquidate()` and `liquidate()`
    (the maintenance requirement includes the position's exit premium): with funding
    held constant, the index one feed tick past it makes the position liquidatable,
    the index on the safe side of it (past the rounding band) leaves it alone, and the
    view is the mirror's formula;
(e) a winner's gain beyond the insurance fund is paid pro rata (issue 18 item 5): a
    withdrawal with a position backs nothing with the unrealised gain, the gain is
    realised by an order at `gain * (claims + fund) / claims` (GainHaircut) while the
    fund is short, the market's cash always covers every margin (a pending order's
    keeper fee is reserved inside its margin, no escrow) and the fees, the flat trader
    gets her whole margin back, the fees stay collectable, and new risk is refused
    while the fund is negative (INSURANCE_EXHAUSTED: the order is cancelled,
    `OrderFailed`, and its keeper still paid from the trader's margin);
(f) the maintenance requirement does not depend on the skew: one keeper pass over every
    flagged account leaves nothing liquidatable; no trade at an unchanged index makes
    another trader's healthy position liquidatable, and the round trip around it costs
    at least its fees plus premiums; a long whose `liquidation_price()` is 0 is never
    liquidatable.

Each world is deployed once per module into its own `boa.Env`; every example runs in an
anchor of it (the clock included), and the World's Python-side `last_observed` is
restored after each example. Every executed trade takes the next oracle round, so the
clock moves one second per trade; tests that need exact accounting turn funding off.
The expected values come from the tests' mirror of `contracts/modules/perp_math.vy` in
`perp_helpers` (premium leg by leg, requirements with the exit premium), not from the
client's."""

from __future__ import annotations

import functools
from fractions import Fraction

import boa
import hypothesis
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from gpushares import perp, reasons
from tests.budgets import budget
from tests.contracts.perp_helpers import (
    ABOVE_MAINTENANCE,
    BPS,
    DAY,
    FEED_UNIT,
    INDEX_FEED_ID,
    INSURANCE_EXHAUSTED,
    WAD,
    Built,
    PerpWorld,
    branch,
    build_in_own_env,
    ceil_div,
    example,
    funding_dust,
    funding_off,
    initial_margin,
    liquidation_keeper_fee,
    maintenance_margin,
    modified,
    now,
    params_of,
    premium_and_fill,
    set_keeper_fee,
    set_params,
    signed,
    trade_fee,
)

DECIMALS = [6, 18]
MASK64 = 2**64 - 1
TICK = WAD // FEED_UNIT  # one unit of the 8-decimal feed, in WAD
FEED_MAX = 10**12  # the hub's largest accepted answer in build_perp_world
TRADER_FUNDS = 10**9  # whole units per trader: enough margin for any size tried here
NO_CASH_FOR_KEEPER = reasons.PERP_NOT_ENOUGH_CASH_KEEPER
# Examples per test, capped below the CI profile's 200 (an on-chain example costs
# 50-300 ms of py-evm): the whole file stays around half a minute under CI.


# ---------------------------------------------------------------------------------
# Opening from flat, with the mirror (perp_helpers)
# ---------------------------------------------------------------------------------


def opens(price: int, skew: int, long_oi: int, short_oi: int, equity: int, size_delta: int,
          params: perp.RiskParams, scale: int) -> bool:
    """Whether a position of `size_delta` opens from flat on `equity` (premium, fee,
    initial margin with the exit premium, open-interest caps)."""
    try:
        premium, fill = premium_and_fill(price, skew, size_delta, params.skew_scale, scale)
    except ValueError:
        return False
    after = equity - premium - trade_fee(skew, size_delta, fill, params, scale)
    if after < initial_margin(size_delta, price, params, scale):
        return False
    if size_delta > 0:
        return long_oi + size_delta <= params.max_long_oi * WAD
    return short_oi - size_delta <= params.max_short_oi * WAD


def max_open(w: PerpWorld, equity: int, short: bool) -> int:
    """The largest position (WAD GPU-hours, positive) `equity` opens from flat at the
    index (binary search over `opens`, so every rounding matches the market)."""
    price = w.market.index_price()[0]
    long_oi, short_oi, skew = w.market.market()[:3]
    params = params_of(w)
    lo, hi = 0, max(params.max_long_oi, params.max_short_oi) * WAD
    sign = -1 if short else 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if opens(price, skew, long_oi, short_oi, equity, sign * mid, params, w.value_scale):
            lo = mid
        else:
            hi = mid - 1
    return lo


def exact_funding(fidx: int, rate: int, dt: int, price: int, skew: int,
                  params: perp.RiskParams) -> tuple[Fraction, Fraction]:
    """The exact index and rate after `dt`: the rate moves linearly at the market's
    velocity (its integer `max_funding_velocity * ratio`) until the cap, then stays."""
    rmax = params.max_funding_rate
    r0 = min(max(rate, -rmax), rmax)
    ratio = max(min(int(Fraction(skew, params.skew_scale)), WAD), -WAD)  # truncated
    velocity = int(Fraction(params.max_funding_velocity * ratio, WAD))
    if velocity == 0:
        area, r1 = Fraction(r0 * dt), Fraction(r0)
    else:
        target = rmax if velocity > 0 else -rmax
        t_hit = Fraction((target - r0) * DAY, velocity)
        if dt <= t_hit:
            r1 = r0 + Fraction(velocity * dt, DAY)
            area = (r0 + r1) * dt / 2
        else:
            r1 = Fraction(target)
            area = (r0 + target) * t_hit / 2 + target * (dt - t_hit)
    return fidx + area * price / (DAY * WAD), r1


def split_points(dt: int, cuts: list[int]) -> list[int]:
    """`dt` cut into positive sub-steps at the (distinct, sorted) points `cuts`."""
    points = sorted({c % dt for c in cuts if 0 < c % dt < dt})
    bounds = [0, *points, dt]
    return [b - a for a, b in zip(bounds, bounds[1:], strict=False)]


@functools.cache
def world(decimals: int) -> Built:
    """The module's world for `decimals`, deployed once into its own `boa.Env`."""
    return build_in_own_env(decimals, f"prop-perp-{decimals}", TRADER_FUNDS)


def funding_slot(w: PerpWorld) -> tuple[int, int, int]:
    """The market's stored funding slot: (last accrual, rate, index)."""
    slot = w.market._storage._funding.get()
    return slot & MASK64, signed((slot >> 64) & MASK64, 64), signed(slot >> 128, 128)


def skew_of(w: PerpWorld) -> int:
    return w.market.market()[2]


def refresh(w: PerpWorld, price: int) -> None:
    """The index at `price` (8 decimals): one round when within the feed's move limit;
    a bigger jump is one round with the limit lifted for it (and put back). The price
    path does not matter where this is used (no position yet, or funding held
    constant and only the views and a liquidation at the final price are checked);
    `walk_price` would take hundreds of rounds to reach the feed's extremes."""
    limit = w.hub.feed(INDEX_FEED_ID)[4]
    current = w.hub.latest_value(INDEX_FEED_ID)[0]
    if not limit or abs(price - current) * BPS <= limit * current:
        assert w.set_price(price)
        return
    with boa.env.prank(w.oracle_admin):
        w.hub.set_feed_config(INDEX_FEED_ID, 1, FEED_MAX, 0, DAY, True)
        assert w.set_price(price)
        w.hub.set_feed_config(INDEX_FEED_ID, 1, FEED_MAX, limit, DAY, True)


def poke(w: PerpWorld) -> None:
    """An accrual: the same parameters set again (accrues when the index is fresh)."""
    set_params(w, params_of(w))


velocities = st.one_of(
    st.sampled_from([0, 1, 86_399, 86_400, 10**15, 3 * WAD // 100, WAD, 10 * WAD]),
    st.integers(0, 10 * WAD),
)
rate_caps = st.one_of(
    st.sampled_from([0, 1, 10**12, WAD // 100, 5 * WAD // 100, WAD]),
    st.integers(0, WAD),
)
waits = st.one_of(
    st.sampled_from([1, 2, 59, 3_600, DAY - 1, DAY, 7 * DAY, 30 * DAY]),
    st.integers(1, 60 * DAY),
)
feed_prices = st.one_of(
    st.sampled_from([1, FEED_UNIT // 100, 2 * FEED_UNIT, 1_000 * FEED_UNIT]),
    st.integers(FEED_UNIT // 100, 1_000 * FEED_UNIT),
)


# ---------------------------------------------------------------------------------
# (a) funding path independence: the mirror
# ---------------------------------------------------------------------------------


@settings(budget("perp_pure"))
@given(
    skew_scale=st.sampled_from([1, 1_000, 1_000_000, 10**12]),
    skew_ratio=st.one_of(st.sampled_from([0, 1, -1, WAD, -WAD, 3 * WAD, -3 * WAD]),
                         st.integers(-3 * WAD, 3 * WAD)),
    velocity=velocities, rmax=rate_caps,
    rate=st.integers(-2 * WAD, 2 * WAD),
    fidx=st.integers(-(10**30), 10**30),
    price=st.integers(TICK, 10**22),
    dt=waits,
    cuts=st.lists(st.integers(1, 60 * DAY), max_size=8),
)
def test_funding_step_split_equals_one_step(skew_scale, skew_ratio, velocity, rmax, rate,
                                            fidx, price, dt, cuts):
    params = perp.RiskParams(
        skew_scale=skew_scale, max_long_oi=1, max_short_oi=1, initial_margin_bps=1_000,
        maintenance_margin_bps=500, taker_fee_bps=0, maker_fee_bps=0,
        liquidation_fee_bps=0, min_keeper_fee=0, max_funding_velocity=velocity,
        max_funding_rate=rmax,
    )
    skew = skew_ratio * skew_scale  # WAD GPU-hours: ratio beyond +-1 is clamped
    steps = split_points(dt, cuts)
    one = perp.funding_step(fidx, rate, dt, price, skew, params)
    split = (fidx, rate)
    for step in steps:
        split = perp.funding_step(*split, step, price, skew, params)
    exact_index, exact_rate = exact_funding(fidx, rate, dt, price, skew, params)
    # Each path is the exact integral within its dust, so they are within both.
    assert abs(one[0] - exact_index) <= funding_dust(1, dt, rmax, price)
    assert abs(split[0] - exact_index) <= funding_dust(len(steps), dt, rmax, price)
    # The rate: truncated toward zero once a step (exact once it reaches the cap).
    assert abs(one[1] - exact_rate) < 1
    assert abs(split[1] - exact_rate) < len(steps)
    assert abs(split[1]) <= rmax and abs(one[1]) <= rmax
    if len(steps) == 1:
        assert split == one


# ---------------------------------------------------------------------------------
# (a) + (b) on chain: the mirror is the market, and accrual is path independent
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("perp_on_chain"))
@given(
    price=feed_prices,
    long_size=st.integers(0, 400_000 * WAD), short_size=st.integers(0, 400_000 * WAD),
    skew_scale=st.sampled_from([1, 1_000, 100_000, 1_000_000, 10**12]),
    velocity=velocities, rmax=rate_caps,
    warmup=st.sampled_from([0, 3_600, DAY, 7 * DAY]),
    cap_divisor=st.sampled_from([None, None, 2, 10, 10**30]),  # a lowered cap
    dt=waits,
    cuts=st.lists(st.integers(1, 60 * DAY), min_size=1, max_size=5),
)
def test_market_funding_is_the_mirror_and_path_independent(
    decimals, price, long_size, short_size, skew_scale, velocity, rmax, warmup,
    cap_divisor, dt, cuts,
):
    with example(world(decimals)) as w:
        m = w.market
        refresh(w, price)
        for trader, size in ((w.traders[0], long_size), (w.traders[1], -short_size)):
            if size:
                w.deposit(trader, TRADER_FUNDS * w.unit)
                w.trade(trader, size)
        skew = skew_of(w)
        assert skew == long_size - short_size
        params = params_of(w).model_copy(update={
            "skew_scale": skew_scale, "max_funding_velocity": velocity,
            "max_funding_rate": rmax,
        })
        set_params(w, params)
        if warmup:  # a start rate: the skew's velocity for a while
            boa.env.time_travel(seconds=warmup)
            refresh(w, price)
            poke(w)
        if cap_divisor:  # a cap under the stored rate: clamped at the next step
            params = params.model_copy(update={"max_funding_rate": rmax // cap_divisor})
            set_params(w, params)
        p_wad = price * TICK
        start = funding_slot(w)
        last, rate, fidx = start

        # One step: the views preview exactly the mirror, and an accrual writes it.
        with branch(w):
            boa.env.time_travel(seconds=dt)
            one = perp.funding_step(fidx, rate, now() - last, p_wad, skew, params)
            assert (m.funding_index(), m.funding_rate()) == one
            refresh(w, price)
            poke(w)
            assert funding_slot(w) == (now(), one[1], one[0])
            one_dt = now() - last

        # The same interval with an accrual after every sub-step.
        steps = split_points(dt, cuts)
        with branch(w):
            split = (fidx, rate)
            t = last
            for step in steps:
                boa.env.time_travel(seconds=step)
                refresh(w, price)
                poke(w)
                split = perp.funding_step(*split, now() - t, p_wad, skew, params)
                t = now()
                assert funding_slot(w) == (t, split[1], split[0])
            assert (m.funding_index(), m.funding_rate()) == split
            assert now() - last == one_dt

        dust = (funding_dust(1, one_dt, params.max_funding_rate, p_wad)
                + funding_dust(len(steps), one_dt, params.max_funding_rate, p_wad))
        assert abs(split[0] - one[0]) <= dust
        assert abs(split[1] - one[1]) <= len(steps)


# ---------------------------------------------------------------------------------
# (c) premiums over a closed skew loop; round trips lose at least the fees
# ---------------------------------------------------------------------------------


sizes = st.one_of(
    st.sampled_from([1, 2, 999, WAD, WAD + 1]),
    st.integers(1, 300_000 * WAD),
).flatmap(lambda x: st.sampled_from([x, -x]))



@settings(budget("perp_pure"))
@given(
    price=st.integers(TICK, 10**22), skew_scale=st.integers(1, 10**7),
    start=st.integers(-(10**6) * WAD, 10**6 * WAD),
    deltas=st.lists(sizes, min_size=1, max_size=6),
    decimals=st.sampled_from(DECIMALS),
)
def test_premiums_over_a_closed_skew_loop_sum_to_at_least_zero(price, skew_scale, start,
                                                               deltas, decimals):
    loop = [*deltas, -sum(deltas)]
    if loop[-1] == 0:
        loop.pop()
    scale = perp.value_scale(decimals)
    exact_total, charged_total, rounded_total, skew = Fraction(0), Fraction(0), 0, start
    for d in loop:
        # Exact: d * P * (skew + d / 2) / skew_scale, over the value scale.
        exact = Fraction(d * price * (2 * skew + d), 2 * skew_scale * WAD * scale)
        try:
            rounded, fill = premium_and_fill(price, skew, d, skew_scale, scale)
        except ValueError:  # the market refuses a non-positive fill: no premium
            return
        # What the market charges exactly: the leg that increases |skew| (from zero
        # once the trade crosses it), `P * (end**2 - start**2) / (2 * skew_scale)`.
        end = skew + d
        if skew != 0 and (skew > 0) != (d > 0):
            leg = Fraction(price * end * end, 2 * skew_scale * WAD * scale) \
                if abs(d) > abs(skew) else Fraction(0)
        else:
            leg = exact
        # Never better than the index (no rebate: a skew-reducing trade fills at it),
        # and rounded against the trader: the fill (buys up, sells down), the premium.
        assert (fill >= price) if d > 0 else (fill <= price)
        assert leg >= max(exact, Fraction(0))  # crossing zero pays at least the whole
        assert rounded >= leg
        assert rounded < leg + 1 + Fraction(abs(d), scale)
        if leg == 0:
            assert fill == price and rounded == 0
        exact_total += exact
        charged_total += leg
        rounded_total += rounded
        skew = end
    assert skew == start
    assert exact_total == 0
    assert charged_total <= rounded_total
    assert rounded_total <= charged_total + sum(1 + ceil_div(abs(d), scale) for d in loop)
    assert rounded_total >= 0


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("perp_round_trip"))
@given(
    price=feed_prices,
    other=st.integers(-100_000 * WAD, 100_000 * WAD),
    deltas=st.lists(st.one_of(st.sampled_from([1, -1, 7, -7, WAD, -WAD]),
                              st.integers(-150_000 * WAD, 150_000 * WAD)),
                    min_size=1, max_size=4),
    # The taker fee stays under what the feed's 4 % move limit leaves of the
    # maintenance margin (the market refuses wider: PERP_FEED_MOVE_REACHES_MAINTENANCE).
    maker_fee=st.sampled_from([0, 1, 5]), taker_fee=st.sampled_from([0, 1, 10, 90]),
)
def test_round_trip_loses_at_least_the_fees(decimals, price, other, deltas, maker_fee,
                                            taker_fee):
    """Random trades of one trader back to flat at one index, each executed at the next
    round (one second later; funding off, so nothing settles): the fee and premium of
    each are the mirror's, no premium is negative, and the margin loses exactly their
    sum."""
    with example(world(decimals)) as w:
        m = w.market
        refresh(w, price)
        params = funding_off(w).model_copy(update={
            "taker_fee_bps": taker_fee, "maker_fee_bps": min(maker_fee, taker_fee),
            "max_long_oi": 10**7, "max_short_oi": 10**7,
        })
        set_params(w, params)
        b, a = w.traders[1], w.traders[0]
        if other:
            w.deposit(b, TRADER_FUNDS * w.unit)
            w.trade(b, other)
        w.deposit(a, TRADER_FUNDS * w.unit)
        margin0 = m.position(a)[1]
        p_wad = price * TICK
        fees = premiums = 0
        trades = [d for d in deltas if d]
        size = m.position(a)[0]
        if size + sum(trades):
            trades.append(-(size + sum(trades)))
        for d in trades:
            skew = skew_of(w)
            premium, fill = premium_and_fill(p_wad, skew, d, params.skew_scale, w.value_scale)
            fee = trade_fee(skew, d, fill, params, w.value_scale)
            w.trade(a, d)
            log = modified(w)
            assert (log.fill_price, log.fee, log.premium, log.settled) == (fill, fee, premium, 0)
            assert (fill >= p_wad) if d > 0 else (fill <= p_wad)
            fees += fee
            premiums += premium
        assert m.index_price()[0] == p_wad
        assert m.position(a) == (0, margin0 - fees - premiums, 0, 0)
        # The skew went back where it was; no premium is negative (no fill better than
        # the index), so the round trip costs at least the fees.
        assert skew_of(w) == other
        assert premiums >= 0
        assert margin0 - m.position(a)[1] >= fees


# ---------------------------------------------------------------------------------
# (d) liquidation_price vs can_liquidate
# ---------------------------------------------------------------------------------


def liquidation_terms(pos, fidx_now: int, params: perp.RiskParams,
                      scale: int) -> tuple[int, int]:
    """(num, den) of the lens's `liquidation_price()`: the position is at its
    maintenance requirement (maintenance margin, liquidation fee, keeper fee and exit
    premium; independent of the skew) where `P * den = num`. The requirement per unit
    of notional `c` (WAD) is floored: `den` errs by under `2 * |size|`."""
    size, margin, last, last_funding = pos
    paid = size * (fidx_now - last_funding)
    keeper = params.min_keeper_fee * scale
    c = ((params.maintenance_margin_bps + params.liquidation_fee_bps) * WAD // BPS
         + abs(size) // (2 * params.skew_scale))
    if size > 0:
        return (keeper - margin * scale + size * last + paid) * WAD, size * (WAD - c)
    return (margin * scale - size * last - paid - keeper) * WAD, -size * (WAD + c)


def mirror_liquidation_price(pos, fidx_now: int, params: perp.RiskParams,
                             scale: int) -> int:
    """`PerpLens.liquidation_price()` in Python (funding held where it is now)."""
    if pos[0] == 0:
        return 0
    num, den = liquidation_terms(pos, fidx_now, params, scale)
    if pos[0] > 0 and den <= 0:
        return 2**256 - 1
    return 0 if num <= 0 else num // den


def mirror_liquidatable(pos, fidx_now: int, price: int,
                        params: perp.RiskParams, scale: int) -> bool:
    """`can_liquidate()` in Python at `price`."""
    size, margin, last, last_funding = pos
    equity = margin + perp.settlement(size, last, last_funding, price, fidx_now, scale)
    return equity < maintenance_margin(size, price, params, scale)


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("perp_liquidation"))
@given(
    short=st.booleans(), margin_units=st.integers(20, 50_000),
    bps=st.one_of(st.sampled_from([1, 1_000, 10_000]), st.integers(1, 10_000)),
    other=st.integers(-100_000 * WAD, 100_000 * WAD),
    days=st.sampled_from([0, 1, 7, 30]),
    price=st.sampled_from([FEED_UNIT // 10, 2 * FEED_UNIT, 50 * FEED_UNIT]),
)
def test_liquidation_price_flips_can_liquidate(decimals, short, margin_units, bps, other,
                                               days, price):
    """On the liquidatable side of `liquidation_price()` (one feed tick past it) the
    position is liquidatable; on the safe side, past the band the rounding can move the
    flip by (floor of the equity; ceilings of the requirement and of the exit premium
    per unit; the floored `c` of the view), it is not; the view is the mirror's
    formula, and `can_liquidate` and `liquidate` agree with the mirror at both
    prices."""
    with example(world(decimals)) as w:
        m, lens, scale = w.market, w.lens, w.value_scale
        a, b = w.traders[0], w.traders[1]
        refresh(w, price)
        if other:  # someone else's position: the skew and its funding
            w.deposit(b, TRADER_FUNDS * w.unit)
            w.trade(b, other)
        w.deposit(a, margin_units * w.unit)
        room = max_open(w, margin_units * w.unit, short)
        hypothesis.assume(room > 0)
        size = max(room * bps // 10_000, 1)
        w.trade(a, -size if short else size)
        if days:  # funding moves the position's equity
            boa.env.time_travel(seconds=days * DAY)
            refresh(w, price)
        # Funding held constant from here (accrued under the old parameters first).
        params = funding_off(w)
        fidx = m.funding_index()
        pos = m.position(a)
        liq = lens.liquidation_price(m, a)
        assert liq == mirror_liquidation_price(pos, fidx, params, scale)
        num, den = liquidation_terms(pos, fidx, params, scale)
        n = abs(pos[0])
        # The safe side: the exact equity beats the exact requirement by the rounding
        # band (4 units and the exit premium's per-unit ceiling, n / scale), with `den`
        # off by under 2n and one more P of slack per unit.
        band = (5 * scale + n) * WAD

        if pos[0] > 0:  # a long: liquidatable below the price
            unsafe = (liq - 1) // TICK if 0 < liq < 2**255 else None  # under the price
            safe = None
            if den - 2 * n - WAD > 0:
                safe = max(ceil_div(ceil_div(num + band, den - 2 * n - WAD), TICK), 1)
            sides = [(unsafe, True), (safe, False)]
        else:  # a short: liquidatable above the price
            unsafe = ceil_div(liq + 1, TICK)  # over the exact price
            safe = min((num - band) // (den + 2 * n + WAD) // TICK, FEED_MAX)
            sides = [(unsafe, True), (safe, False)]
        checked = 0
        for feed_price, liquidatable in sides:
            if feed_price is None or not 1 <= feed_price <= FEED_MAX:
                continue
            checked += 1
            with branch(w):
                refresh(w, feed_price)
                p_wad = feed_price * TICK
                assert m.funding_index() == fidx
                assert lens.liquidation_price(m, a) == liq
                assert mirror_liquidatable(pos, fidx, p_wad, params, scale) is liquidatable
                assert lens.can_liquidate(m, a) is liquidatable
                fee = liquidation_keeper_fee(pos[0], p_wad, params, scale)
                spare = m.cash() - m.market()[4]  # fees are not the keeper's
                with boa.env.prank(w.keeper):
                    if not liquidatable:
                        with boa.reverts(ABOVE_MAINTENANCE):
                            m.liquidate(a)
                    elif fee > spare:  # a huge notional: the keeper fee beats the cash
                        with boa.reverts(NO_CASH_FOR_KEEPER):
                            m.liquidate(a)
                    else:
                        assert m.liquidate(a) == fee
        event(f"liquidation price: {'long' if pos[0] > 0 else 'short'}, {checked} sides")


# ---------------------------------------------------------------------------------
# (e) a winner's gain beyond the insurance fund: paid pro rata
# ---------------------------------------------------------------------------------


def free_cash(w: PerpWorld) -> int:
    """Cash beyond every settled margin and the fees (the realised part of the
    insurance fund; a pending order's keeper fee is reserved inside its margin):
    never negative."""
    m = w.market
    _, _, _, margins, fees, _, _ = m.market()
    return m.cash() - margins - fees


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("perp_solvency"))
@hypothesis.example(winner_units=10_000, flat_units=10_000, bps=10_000, rally_bps=5_000,
                    short=False)
@given(
    winner_units=st.integers(1_000, 50_000), flat_units=st.integers(1_000, 50_000),
    bps=st.integers(5_000, 10_000), rally_bps=st.integers(1_000, 20_000),
    short=st.booleans(),
)
def test_a_gain_beyond_the_fund_is_paid_pro_rata_and_never_from_idle_margin(
        decimals, winner_units, flat_units, bps, rally_bps, short):
    """The old market paid a winner's settled gain from its whole cash, other traders'
    margins included (issue 18 item 5). Now: with the position open the winner can
    withdraw only settled margin above the initial margin (the gain backs nothing);
    while the fund is negative new risk is refused (INSURANCE_EXHAUSTED: the order is
    cancelled and its keeper paid from the trader's margin); the order that closes
    the position realises the gain in full while the fund covers it, else
    `gain * (claims + fund) / claims` (GainHaircut; one winner: the fund's cash), so
    the fund never ends negative; after every step the cash covers every margin (a
    pending order's keeper fee is reserved in its margin) and the fees, the flat
    trader gets her whole margin back and the fees are collected. Funding off: the
    marked fund does not move between the checks."""
    with example(world(decimals)) as w:
        m, lens = w.market, w.lens
        winner, flat, newcomer = w.traders[0], w.traders[1], w.traders[2]
        params = funding_off(w)
        w.deposit(flat, flat_units * w.unit)
        w.deposit(winner, winner_units * w.unit)
        size = max_open(w, winner_units * w.unit, short) * bps // 10_000
        hypothesis.assume(size > 0)
        w.trade(winner, -size if short else size)
        size = m.position(winner)[0]
        # The index moves the winner's way (a fall for a short, a rally for a long).
        move = 2 * FEED_UNIT * rally_bps // 10_000
        w.walk_price(2 * FEED_UNIT - move // 3 if short else 2 * FEED_UNIT + move)
        price = m.index_price()[0]
        assert free_cash(w) >= 0

        # The unrealised gain backs no withdrawal.
        margin = m.position(winner)[1]
        need = initial_margin(size, price, params, w.value_scale)
        assert lens.equity(m, winner) >= margin
        assert lens.withdrawable(m, winner) == max(margin - need, 0)
        with boa.env.prank(winner):
            if margin > need:
                with boa.reverts(reasons.PERP_WITHDRAWAL_LEAVE_LESS_INITIAL):
                    m.withdraw_margin(margin - need + 1)
                m.withdraw_margin(margin - need)
            else:
                with boa.reverts(reasons.PERP_WITHDRAWAL_LEAVE_LESS_INITIAL):
                    m.withdraw_margin(1)
        assert free_cash(w) >= 0

        insurance = m.market()[5]
        if insurance < 0:
            event("the fund is short: new risk refused, the gain paid pro rata")
            for account, delta in ((newcomer, WAD), (newcomer, -WAD),
                                   (winner, -WAD if short else WAD)):
                with branch(w):
                    set_keeper_fee(w, w.unit)
                    w.deposit(newcomer, 1_000 * w.unit)
                    w.commit(account, delta)
                    assert w.next_round()
                    # Refused: the order is cancelled and the keeper paid; nothing
                    # is left to execute once the fund recovers.
                    assert w.execute_refused(account, INSURANCE_EXHAUSTED) == w.unit
                    assert free_cash(w) >= 0
        else:
            event("the fund covers the gain: paid in full")

        # The close realises the gain: in full, or pro rata while the fund is short.
        last = m.position(winner)[2]
        gain = perp.settlement(size, last, 0, price, 0, w.value_scale)
        claims = ceil_div(size * (price - last), w.value_scale)
        expected = gain
        if insurance < 0:
            expected = min(gain * (claims + insurance) // claims, gain) \
                if claims + insurance > 0 else 0
        margin = m.position(winner)[1]
        w.trade(winner, -size)
        log = modified(w)
        haircuts = [x for x in m.get_logs() if type(x).__name__ == "GainHaircut"]
        assert log.settled == expected
        assert log.premium == 0  # the close reduces the skew
        if insurance < 0:
            (cut,) = haircuts
            assert (cut.account, cut.gain, cut.paid) == (winner, gain, expected)
        else:
            assert not haircuts
        assert m.position(winner) == (0, margin + expected - log.fee, 0, 0)
        assert m.market()[5] >= 0 and free_cash(w) >= 0

        # Everyone leaves with their whole margin; the fees are collected.
        for account, amount in ((winner, m.position(winner)[1]), (flat, flat_units * w.unit)):
            balance = w.asset.balanceOf(account)
            with boa.env.prank(account):
                m.withdraw_margin(amount)
            assert w.asset.balanceOf(account) == balance + amount
        fees = m.market()[4]
        assert m.collect_fees() == fees
        assert m.cash() == free_cash(w) >= 0


# ---------------------------------------------------------------------------------
# (f) the maintenance requirement does not depend on the skew
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("perp_solvency"))
@hypothesis.example(drop_bps=800)
@given(drop_bps=st.integers(100, 1_500))
def test_one_keeper_pass_leaves_nothing_liquidatable(decimals, drop_bps):
    """A short of 200,000 GPU-hours, then longs of 40,000 (10,600 USD of margin: the
    old 9,000 plus the 1,600 exit premium the requirements now include) and 150,000
    (53,000 USD: 30,500 plus 22,500); the index falls by `drop_bps` (in rounds within
    the feed's 4 % limit); a keeper liquidates every account `can_liquidate` flags, in
    account order (the first long is visited first): afterwards no account is
    liquidatable (a liquidation moves the skew at the index, which no longer changes
    anyone else's requirement)."""
    with example(world(decimals)) as w:
        m, lens = w.market, w.lens
        first, second, short = w.traders[0], w.traders[1], w.traders[2]
        w.deposit(short, 1_000_000 * w.unit)
        w.trade(short, -200_000 * WAD)
        w.deposit(first, 10_600 * w.unit)
        w.trade(first, 40_000 * WAD)
        w.deposit(second, 53_000 * w.unit)
        w.trade(second, 150_000 * WAD)
        w.walk_price(2 * FEED_UNIT * (10_000 - drop_bps) // 10_000)
        flagged = [lens.can_liquidate(m, a) for a in (first, second, short)]
        event(f"keeper pass: {sum(flagged)} flagged")
        for account, liquidatable in zip((first, second, short), flagged, strict=True):
            assert lens.can_liquidate(m, account) is liquidatable  # no knock-on effect
            if liquidatable:
                with boa.env.prank(w.keeper):
                    m.liquidate(account)
        assert [lens.can_liquidate(m, a) for a in (first, second, short)] == [False] * 3


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("perp_solvency"))
@hypothesis.example(victim_units=10_000, victim_hours=40_000, short_hours=300_000)
@given(victim_units=st.integers(1_000, 50_000), victim_hours=st.integers(1_000, 100_000),
       short_hours=st.integers(10_000, 400_000))
def test_no_trade_forces_a_liquidation_and_the_round_trip_loses(decimals, victim_units,
                                                               victim_hours, short_hours):
    """A trader with a healthy long (at most the leverage cap); another trader sells
    `short_hours` at an unchanged index (funding off: the orders execute a second
    apart): the victim's equity and requirement do not move, so she stays safe
    (`can_liquidate` False, a keeper is refused), and the attacker buying back loses
    exactly its fees plus its premiums (never negative: no fill better than the index;
    selling across zero skew pays for the leg past zero), so at least the fees."""
    with example(world(decimals)) as w:
        m, lens = w.market, w.lens
        victim, attacker = w.traders[0], w.traders[2]
        funding_off(w)
        w.deposit(victim, victim_units * w.unit)
        room = max_open(w, victim_units * w.unit, False)
        w.trade(victim, min(victim_hours * WAD, room))
        assert not lens.can_liquidate(m, victim)
        equity, ratio = lens.equity(m, victim), lens.margin_ratio(m, victim)
        w.deposit(attacker, 2_000_000 * w.unit)
        margin0, wallet0 = m.position(attacker)[1], w.asset.balanceOf(attacker)
        w.trade(attacker, -short_hours * WAD)
        log = modified(w)
        fees, premiums = log.fee, log.premium
        assert (lens.equity(m, victim), lens.margin_ratio(m, victim)) == (equity, ratio)
        assert lens.can_liquidate(m, victim) is False
        with boa.env.prank(attacker), boa.reverts(ABOVE_MAINTENANCE):
            m.liquidate(victim)
        w.trade(attacker, short_hours * WAD)
        log = modified(w)
        assert log.fill_price >= m.index_price()[0]  # a buy: never under the index
        fees += log.fee
        premiums += log.premium
        gain = m.position(attacker)[1] - margin0 + w.asset.balanceOf(attacker) - wallet0
        assert gain == -(fees + premiums) and premiums >= 0 and fees > 0


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("perp_solvency"))
@hypothesis.example(skew_scale=10_000, short_hours=100_000, long_hours=1_000)
@given(skew_scale=st.integers(1_000, 1_000_000), short_hours=st.integers(10_000, 400_000),
       long_hours=st.integers(1, 10_000))
def test_zero_liquidation_price_means_never_liquidatable(decimals, skew_scale, short_hours,
                                                         long_hours):
    """A fully margined long (10,000 USD for at most 10,000 GPU-hours at 2 USD) against a
    short skew; the admin then sets a skew scale under the open interest (the exit
    premium in the requirement grows). Whenever `liquidation_price()` says 0,
    `can_liquidate()` is False at the index (and at the feed's lowest price)."""
    with example(world(decimals)) as w:
        m, lens = w.market, w.lens
        a, b = w.traders[0], w.traders[1]
        w.deposit(b, TRADER_FUNDS * w.unit)
        w.trade(b, -short_hours * WAD)
        w.deposit(a, 10_000 * w.unit)
        w.trade(a, long_hours * WAD)
        set_params(w, params_of(w).model_copy(update={"skew_scale": skew_scale}))
        if lens.liquidation_price(m, a) == 0:
            event("liquidation price 0")
            assert not lens.can_liquidate(m, a)
            refresh(w, 1)
            assert not lens.can_liquidate(m, a)
