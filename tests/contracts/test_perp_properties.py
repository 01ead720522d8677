"""Property tests of PerpMarket's arithmetic, for 6- and 18-decimal margin assets, in the
full suite (`perp_helpers.build_perp_world`: the signed OracleHub and its FeedAdapter
as the GPU-hour index):

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
    zero (`sum d * (s + d / 2) = (s_end**2 - s_start**2) / 2`), every charged premium
    is at least the exact one and at least zero (a skew-reducing trade fills at the
    index, no rebate), so the loop's premiums sum to at least zero; on chain any round
    trip of one trader (random trades back to flat, same index, same block) loses
    exactly its fees plus its (never negative) premiums, so at least its fees;
(d) `liquidation_price()` agrees with `can_liquidate()` and `liquidate()`: with funding
    held constant (no funding speed, no cap), the index one feed tick on the safe side of
    it (plus the rounding band) leaves a long or a short alone, one tick past it makes
    the position liquidatable, and the view is the mirror's formula;
(e) what is guaranteed when a winner's settled gain is paid beyond the insurance fund
    (a KNOWN LIMITATION, docs/perps.md "Limits": withdrawals are first come first
    served until the fund is refilled): whenever the market's cash no longer covers
    every settled margin and the fees, `insurance_fund()` is visibly negative (it was
    before the withdrawal too) and new risk is refused (INSURANCE_EXHAUSTED); while it
    covers them, a flat trader gets her whole margin back;
(f) the maintenance requirement does not depend on the skew: one keeper pass over every
    flagged account leaves nothing liquidatable; no trade at an unchanged index makes
    another trader's healthy position liquidatable, and the round trip around it costs
    at least its fees plus premiums; a long whose `liquidation_price()` is 0 is never
    liquidatable.

Each world is deployed once per module into its own `boa.Env`; every example runs in an
anchor of it (the clock included), and the World's Python-side `last_observed` is
restored after each example."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
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
    INSURANCE_EXHAUSTED,
    MAX_UINT,
    WAD,
    PerpWorld,
    build_perp_world,
)

DECIMALS = [6, 18]
MASK64 = 2**64 - 1
TICK = WAD // FEED_UNIT  # one unit of the 8-decimal feed, in WAD
FEED_MAX = 10**12  # the hub's largest accepted answer in build_perp_world
TRADER_FUNDS = 10**9  # whole units per trader: enough margin for any size tried here
NO_CASH_FOR_KEEPER = reasons.PERP_NOT_ENOUGH_CASH_KEEPER
# Examples per test, capped below the CI profile's 200 (an on-chain example costs
# 50-300 ms of py-evm): the whole file stays around half a minute under CI.


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def signed(x: int, bits: int) -> int:
    return x - (1 << bits) if x >> (bits - 1) else x


def funding_dust(steps: int, dt: int, rmax: int, price: int) -> int:
    """Bound on |computed - exact integral| of the funding index (WAD USD per
    GPU-hour) over `dt` seconds accrued in `steps` steps at a constant price and skew:
    per step one wei of the index's floor; in area (rate x seconds) per step the
    trapezoid's halving, the cap-hit time truncated to the second (at most one second
    of the rate's swing to the cap, <= rmax) and the rate's truncation (< 1 wei a step)
    carried over the rest of the interval."""
    area = steps * (2 + rmax) + steps * dt
    return steps + ceil_div(area * price, DAY * WAD)


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


@dataclass
class Built:
    env: boa.Env
    world: PerpWorld
    last_observed: int


_WORLDS: dict[int, Built] = {}


def world(decimals: int) -> Built:
    if decimals not in _WORLDS:
        env = boa.Env()
        with boa.swap_env(env):
            boa.env.enable_fast_mode()
            w = build_perp_world(asset_decimals=decimals, label=f"prop-perp-{decimals}")
            for trader in w.traders:
                w.fund(trader, TRADER_FUNDS * w.unit)
        _WORLDS[decimals] = Built(env, w, w.last_observed)
    return _WORLDS[decimals]


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


@contextlib.contextmanager
def branch(w: PerpWorld):
    """A nested anchor: a what-if on the same state, the oracle's clock restored."""
    last_observed = w.last_observed
    with boa.env.anchor():
        try:
            yield
        finally:
            w.last_observed = last_observed


def funding_slot(w: PerpWorld) -> tuple[int, int, int]:
    """The market's stored funding slot: (last accrual, rate, index)."""
    slot = w.market._storage._funding.get()
    return slot & MASK64, signed((slot >> 64) & MASK64, 64), signed(slot >> 128, 128)


def params_of(w: PerpWorld) -> perp.RiskParams:
    return perp.RiskParams.from_chain(tuple(w.market.risk_params()))


def set_params(w: PerpWorld, params: perp.RiskParams) -> None:
    with boa.env.prank(w.admin):
        w.market.set_risk_params(params.as_tuple())


def state_of(w: PerpWorld) -> perp.MarketState:
    m = w.market
    price, fresh = m.index_price()
    long_oi, short_oi, _, _, _, insurance, deficit = m.market()
    return perp.MarketState(
        price=price, fresh=fresh, long_oi=long_oi, short_oi=short_oi, paused=m.paused(),
        deficit=deficit, insurance=insurance, params=params_of(w),
        asset_decimals=w.asset_decimals,
    )


def now() -> int:
    return boa.env.evm.patch.timestamp


def skew_of(w: PerpWorld) -> int:
    return w.market.market()[2]


def refresh(w: PerpWorld, price: int) -> None:
    assert w.set_price(price)


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
            fill = perp.fill_price(price, skew, d, skew_scale)
        except ValueError:  # the market refuses a non-positive fill: no premium
            return
        rounded = perp.premium_cost(d, fill, price, scale)
        # Never better than the index (no rebate: a skew-reducing trade fills at it),
        # and rounded against the trader: the fill (buys up, sells down), the premium.
        assert (fill >= price) if d > 0 else (fill <= price)
        charged = max(exact, Fraction(0))
        assert rounded >= charged
        assert rounded < charged + 1 + Fraction(abs(d), scale)
        if exact <= 0:
            assert fill == price and rounded == 0
        exact_total += exact
        charged_total += charged
        rounded_total += rounded
        skew += d
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
    maker_fee=st.sampled_from([0, 1, 5]), taker_fee=st.sampled_from([0, 1, 10, 100]),
)
def test_round_trip_loses_at_least_the_fees(decimals, price, other, deltas, maker_fee,
                                            taker_fee):
    with example(world(decimals)) as w:
        m = w.market
        refresh(w, price)
        params = params_of(w).model_copy(update={
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
        time0 = now()
        fees = premiums = 0
        trades = [d for d in deltas if d]
        for d in trades:
            state = state_of(w)
            size = m.position(a)[0]
            quote = perp.quote_trade(state, size, m.equity(a), d, MAX_UINT if d > 0 else 0)
            assert quote.refusal is None
            if size + d == 0:
                with boa.env.prank(a):
                    m.close_position(0 if d < 0 else MAX_UINT)
            else:
                w.trade(a, d)
            (log,) = [x for x in m.get_logs() if type(x).__name__ == "PositionModified"]
            assert (log.fee, log.premium, log.settled) == (quote.fee, quote.premium, 0)
            assert log.premium >= 0
            fees += log.fee
            premiums += log.premium
        size = m.position(a)[0]
        if size:
            state = state_of(w)
            acceptable = 0 if size > 0 else MAX_UINT
            quote = perp.quote_trade(state, size, m.equity(a), -size, acceptable)
            assert quote.refusal is None
            with boa.env.prank(a):
                m.close_position(acceptable)
            (log,) = [x for x in m.get_logs() if type(x).__name__ == "PositionModified"]
            assert (log.fee, log.premium, log.settled) == (quote.fee, quote.premium, 0)
            fees += log.fee
            premiums += log.premium
            trades.append(-size)
        assert now() == time0  # one block: no funding, no index move
        assert m.position(a) == (0, margin0 - fees - premiums, 0, 0)
        # The skew went back where it was; no premium is negative (no fill better than
        # the index), so the round trip costs at least the fees.
        assert m.market()[2] == other
        assert premiums >= 0
        assert margin0 - m.position(a)[1] >= fees


# ---------------------------------------------------------------------------------
# (d) liquidation_price vs can_liquidate
# ---------------------------------------------------------------------------------


def liquidation_terms(pos, fidx_now: int, params: perp.RiskParams,
                      scale: int) -> tuple[int, int]:
    """(num, den) of `liquidation_price()`: the position is at its maintenance
    requirement (independent of the skew) where `P * den = num`."""
    size, margin, last, last_funding = pos
    paid = size * (fidx_now - last_funding)
    c = params.maintenance_margin_bps + params.liquidation_fee_bps
    keeper = params.min_keeper_fee * scale
    if size > 0:
        num = (keeper - margin * scale + size * last + paid) * BPS
        return num, size * (BPS - c)
    num = (margin * scale - size * last - paid - keeper) * BPS
    return num, -size * (BPS + c)


def mirror_liquidation_price(pos, fidx_now: int, params: perp.RiskParams,
                             scale: int) -> int:
    """`liquidation_price()` in Python (funding held where it is now)."""
    if pos[0] == 0:
        return 0
    num, den = liquidation_terms(pos, fidx_now, params, scale)
    return 0 if num <= 0 else num // den


def mirror_liquidatable(pos, fidx_now: int, price: int,
                        params: perp.RiskParams, scale: int) -> bool:
    """`can_liquidate()` in Python at `price`."""
    size, margin, last, last_funding = pos
    equity = margin + perp.settlement(size, last, last_funding, price, fidx_now, scale)
    return equity < perp.maintenance_margin(size, price, params, scale)


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
    flip by (floor of the equity, ceiling of the requirement: within the conservative
    `3 + P / value_scale` units), it is not; the view is the mirror's formula, and
    `can_liquidate` and `liquidate` agree with the mirror at both prices."""
    with example(world(decimals)) as w:
        m, scale = w.market, w.value_scale
        a, b = w.traders[0], w.traders[1]
        refresh(w, price)
        if other:  # someone else's position: the skew and its funding
            w.deposit(b, TRADER_FUNDS * w.unit)
            w.trade(b, other)
        w.deposit(a, margin_units * w.unit)
        room = perp.max_size_for_margin(state_of(w), margin_units * w.unit, short)
        size = max(room * bps // 10_000, 1)
        w.trade(a, -size if short else size)
        if days:  # funding moves the position's equity
            boa.env.time_travel(seconds=days * DAY)
            refresh(w, price)
        # Funding held constant from here (accrued under the old parameters first).
        params = params_of(w).model_copy(update={"max_funding_velocity": 0,
                                                 "max_funding_rate": 0})
        set_params(w, params)
        fidx = m.funding_index()
        pos = m.position(a)
        liq = m.liquidation_price(a)
        assert liq == mirror_liquidation_price(pos, fidx, params, scale)
        num, den = liquidation_terms(pos, fidx, params, scale)

        if pos[0] > 0:  # a long: liquidatable below the price
            unsafe = (liq - 1) // TICK if liq else None  # under the exact price
            # Safe where P * den - num >= (3 * scale + P) * BPS.
            safe = None
            if den > BPS:
                safe = max(-(-(Fraction(num + 3 * scale * BPS) / (den - BPS)) // TICK), 1)
            sides = [(unsafe, True), (safe, False)]
        else:  # a short: liquidatable above the price
            unsafe = ceil_div(liq + 1, TICK)  # over the exact price
            # Safe where num - P * den >= (3 * scale + P) * BPS.
            safe = min(Fraction(num - 3 * scale * BPS) / (den + BPS) // TICK, FEED_MAX)
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
                assert m.liquidation_price(a) == liq
                assert mirror_liquidatable(pos, fidx, p_wad, params, scale) is liquidatable
                assert m.can_liquidate(a) is liquidatable
                fee = perp.keeper_fee(pos[0], p_wad, params, scale)
                spare = m.cash() - m.market()[4]
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
# (e) a winner paid beyond the insurance fund: what is guaranteed
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("perp_solvency"))
@hypothesis.example(winner_units=10_000, flat_units=10_000, bps=10_000, rally_bps=5_000,
                    short=False)
@given(
    winner_units=st.integers(1_000, 50_000), flat_units=st.integers(1_000, 50_000),
    bps=st.integers(5_000, 10_000), rally_bps=st.integers(1_000, 20_000),
    short=st.booleans(),
)
def test_a_winner_paid_beyond_the_fund_leaves_a_visible_deficit_and_pauses_new_risk(
        decimals, winner_units, flat_units, bps, rally_bps, short):
    """A winner takes what the market lets her (`withdrawable`, at most the cash). Her
    settled gain is paid from the market's whole cash, so once it outgrows the
    insurance fund other traders' settled margins back it: a KNOWN LIMITATION
    (docs/perps.md, "Limits": withdrawals are first come first served until the fund
    is refilled). What the market does guarantee: whenever the cash no longer covers
    every settled margin and the fees, `insurance_fund()` is negative, visibly so
    already before the withdrawal, and opens and increases are refused with
    INSURANCE_EXHAUSTED; while the cash covers them, a flat trader gets her whole
    margin back."""
    with example(world(decimals)) as w:
        m = w.market
        winner, flat, newcomer = w.traders[0], w.traders[1], w.traders[2]
        w.deposit(flat, flat_units * w.unit)
        w.deposit(winner, winner_units * w.unit)
        room = perp.max_size_for_margin(state_of(w), winner_units * w.unit, short)
        size = room * bps // 10_000
        w.trade(winner, -size if short else size)
        # The index moves the winner's way (a fall for a short, a rally for a long).
        move = 2 * FEED_UNIT * rally_bps // 10_000
        refresh(w, 2 * FEED_UNIT - move // 3 if short else 2 * FEED_UNIT + move)
        insurance_before = m.insurance_fund()
        amount = min(m.withdrawable(winner), m.cash())
        if amount:
            with boa.env.prank(winner):
                m.withdraw_margin(amount)
        _, _, _, margins, fees, insurance, deficit = m.market()
        # Settling the gain moves it between the books: the fund's mark only loses its
        # rounding (unrealised gains are marked up, settled ones paid down).
        assert insurance == m.insurance_fund()
        assert 0 <= insurance - insurance_before <= 1
        assert deficit == 0  # no liquidation: nothing recorded, the fund is marked
        if m.cash() < margins + fees:
            event("cash short of the margins: deficit visible, new risk refused")
            assert insurance_before < 0 and m.insurance_fund() < 0
            w.deposit(newcomer, 1_000 * w.unit)
            for account, delta in ((newcomer, WAD), (newcomer, -WAD),
                                   (winner, WAD if size and not short else -WAD)):
                quote = perp.quote_trade(state_of(w), m.position(account)[0],
                                         m.equity(account), delta,
                                         MAX_UINT if delta > 0 else 0)
                assert quote.refusal == INSURANCE_EXHAUSTED
                with boa.reverts(INSURANCE_EXHAUSTED):
                    w.trade(account, delta)
        else:
            event("cash covers the margins: the flat trader leaves")
            balance = w.asset.balanceOf(flat)
            with boa.env.prank(flat):
                m.withdraw_margin(flat_units * w.unit)
            assert w.asset.balanceOf(flat) == balance + flat_units * w.unit


# ---------------------------------------------------------------------------------
# (f) the maintenance requirement does not depend on the skew
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("perp_solvency"))
@hypothesis.example(drop_bps=800)
@given(drop_bps=st.integers(100, 1_500))
def test_one_keeper_pass_leaves_nothing_liquidatable(decimals, drop_bps):
    """A short of 200,000 GPU-hours, then longs of 40,000 (9,000 USD of margin) and
    150,000 (30,500 USD); the index falls by `drop_bps`; a keeper liquidates every
    account `can_liquidate` flags, in account order (the first long is visited first):
    afterwards no account is liquidatable (a liquidation moves the skew at the index,
    which no longer changes anyone else's requirement)."""
    with example(world(decimals)) as w:
        m = w.market
        first, second, short = w.traders[0], w.traders[1], w.traders[2]
        w.deposit(short, 1_000_000 * w.unit)
        w.trade(short, -200_000 * WAD)
        w.deposit(first, 9_000 * w.unit)
        w.trade(first, 40_000 * WAD)
        w.deposit(second, 30_500 * w.unit)
        w.trade(second, 150_000 * WAD)
        refresh(w, 2 * FEED_UNIT * (10_000 - drop_bps) // 10_000)
        flagged = [m.can_liquidate(a) for a in (first, second, short)]
        event(f"keeper pass: {sum(flagged)} flagged")
        for account, liquidatable in zip((first, second, short), flagged, strict=True):
            assert m.can_liquidate(account) is liquidatable  # no knock-on effect
            if liquidatable:
                with boa.env.prank(w.keeper):
                    m.liquidate(account)
        assert [m.can_liquidate(a) for a in (first, second, short)] == [False] * 3


@pytest.mark.parametrize("decimals", DECIMALS)
@settings(budget("perp_solvency"))
@hypothesis.example(victim_units=10_000, victim_hours=40_000, short_hours=300_000)
@given(victim_units=st.integers(1_000, 50_000), victim_hours=st.integers(1_000, 100_000),
       short_hours=st.integers(10_000, 400_000))
def test_no_trade_forces_a_liquidation_and_the_round_trip_loses(decimals, victim_units,
                                                               victim_hours, short_hours):
    """A trader with a healthy long (at most the leverage cap); another trader sells
    `short_hours` at an unchanged index, in one block: the victim's equity and
    requirement do not move, so she stays safe (`can_liquidate` False, a keeper is
    refused), and the attacker buying back loses exactly its fees plus its premiums
    (never negative: no fill better than the index), so at least the fees."""
    with example(world(decimals)) as w:
        m = w.market
        victim, attacker = w.traders[0], w.traders[2]
        w.deposit(victim, victim_units * w.unit)
        room = perp.max_size_for_margin(state_of(w), victim_units * w.unit, False)
        w.trade(victim, min(victim_hours * WAD, room))
        assert not m.can_liquidate(victim)
        equity, ratio = m.equity(victim), m.margin_ratio(victim)
        w.deposit(attacker, 2_000_000 * w.unit)
        margin0, wallet0 = m.position(attacker)[1], w.asset.balanceOf(attacker)
        w.trade(attacker, -short_hours * WAD)
        (log,) = [x for x in m.get_logs() if type(x).__name__ == "PositionModified"]
        fees, premiums = log.fee, log.premium
        assert (m.equity(victim), m.margin_ratio(victim)) == (equity, ratio)
        assert m.can_liquidate(victim) is False
        with boa.env.prank(attacker), boa.reverts(ABOVE_MAINTENANCE):
            m.liquidate(victim)
        with boa.env.prank(attacker):
            m.close_position(MAX_UINT)
        (log,) = [x for x in m.get_logs() if type(x).__name__ == "PositionModified"]
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
    short skew; the admin then sets a skew scale under the open interest. Whenever
    `liquidation_price()` says 0, `can_liquidate()` is False at the index (and at the
    feed's lowest price)."""
    with example(world(decimals)) as w:
        m = w.market
        a, b = w.traders[0], w.traders[1]
        w.deposit(b, TRADER_FUNDS * w.unit)
        w.trade(b, -short_hours * WAD)
        w.deposit(a, 10_000 * w.unit)
        w.trade(a, long_hours * WAD)
        set_params(w, params_of(w).model_copy(update={"skew_scale": skew_scale}))
        if m.liquidation_price(a) == 0:
            event("liquidation price 0")
            assert not m.can_liquidate(a)
            refresh(w, 1)
            assert not m.can_liquidate(a)
