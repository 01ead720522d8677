"""PerpMarket unit tests: every external function against the real suite (OracleHub +
FeedAdapter index feed signed 2-of-3, a test stablecoin, the factory, one market and
the stateless PerpLens for the derived views).

A trade is an order: committed, then executed by a keeper at the index of the first
oracle round observed after the commit (the order lifecycle itself is tested in
test_perp_orders.py). Every amount is checked with exact integers against the
market's own formulas (`contracts/modules/perp_math.vy`: the premium paid leg by leg,
split at zero skew; margin requirements with the exit premium; settlement; the funding
step of `gpushares.perp`), predicted at the block the order executes in; refusals are
matched on their exact strings.

One world per asset-decimals is built per module and every test runs in its own
`boa.env.anchor()` (tests/contracts/conftest.py), so tests never see each other."""

from __future__ import annotations

from dataclasses import dataclass, replace

import boa
import pytest

from gpushares import perp, reasons
from tests.contracts.perp_helpers import (
    ABOVE_MAINTENANCE,
    BELOW_INITIAL,
    BELOW_INITIAL_WITHDRAW,
    BPS,
    DAY,
    DEFAULT_ADMIN_ROLE,
    DEFICIT_PAUSED,
    EXCEEDS_MARGIN,
    FEED_TICK,
    FEED_UNIT,
    FILL_NOT_POSITIVE,
    GPUH,
    GUARDIAN_PAUSED,
    GUARDIAN_ROLE,
    INDEX_FEED_ID,
    INSURANCE_EXHAUSTED,
    LIQUIDATABLE,
    LONG_CAP,
    MAX_UINT,
    MISSING_ROLE,
    MOVE_NOT_COVERED,
    NO_FEES,
    NO_MARGIN_FOR_FEE,
    NO_POSITION,
    NOT_POSITIVE,
    REDUCTION_BELOW_MAINTENANCE,
    RISK_ADMIN_ROLE,
    SHORT_CAP,
    SLIPPAGE,
    STALE,
    WAD,
    ZERO_AMOUNT,
    ZERO_SIZE,
    PerpWorld,
    branch,
    build_perp_world,
    event_of,
    events_of,
    exit_premium,
    initial_margin,
    liquidation_keeper_fee,
    maintenance_margin,
    move_covered,
    now,
    params_of,
    premium_and_fill,
    restoring,
    round_after_commit,
    set_move_limit,
    trade_fee,
)

PRICE = 2 * FEED_UNIT  # the world's starting index: 2 USD per GPU-hour
MASK128 = 2**128 - 1
MASK96 = 2**96 - 1
MAX_OI = 2**40  # the highest open-interest cap (whole GPU-hours)

ZERO_FEE_RECIPIENT = reasons.PERP_FEE_RECIPIENT_ZERO_ADDRESS
AMOUNT_TOO_LARGE = reasons.PERP_AMOUNT_TOO_LARGE
BAD_SCALE = reasons.PERP_SKEW_SCALE_1_2
BAD_MARGINS = reasons.PERP_NEED_0_MAINTENANCE_LIQUIDATION
BAD_FEES = reasons.PERP_FEES_ABOVE_THEIR_CAPS
BAD_KEEPER_OR_FUNDING = reasons.PERP_KEEPER_FEE_FUNDING_PARAMETER


# ---------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _world6() -> PerpWorld:
    return build_perp_world(label="pm6")


@pytest.fixture(scope="module", params=[6, 18], ids=["6-decimals", "18-decimals"])
def _world_any(request) -> PerpWorld:
    return build_perp_world(asset_decimals=request.param, label=f"pmx{request.param}")


@pytest.fixture
def world(_world6):
    """The 6-decimal market (10,000 tUSD of insurance, index 2 USD, move limit 4 %)."""
    yield from restoring(_world6)


@pytest.fixture
def any_world(_world_any):
    """The market with a 6- and an 18-decimal margin asset."""
    yield from restoring(_world_any)


@dataclass(frozen=True)
class Snapshot:
    """What the market's `_trade` reads, at the current block."""

    price: int
    fresh: bool
    long_oi: int
    short_oi: int
    insurance: int
    deficit: int
    paused: bool
    max_move_bps: int
    params: perp.RiskParams
    vs: int

    @property
    def skew(self) -> int:
        return self.long_oi - self.short_oi


@dataclass(frozen=True)
class Quote:
    """A predicted execution: the refusal, or the trade's result."""

    refusal: str | None
    fill_price: int = 0
    fee: int = 0
    premium: int = 0
    size_after: int = 0
    margin_after: int = 0
    settled: int = 0


def _snapshot(w: PerpWorld) -> Snapshot:
    m = w.market
    price, fresh = m.index_price()
    long_oi, short_oi, _skew, _margins, _fees, insurance, deficit = m.market()
    return Snapshot(
        price=price, fresh=fresh, long_oi=long_oi, short_oi=short_oi, insurance=insurance,
        deficit=deficit, paused=m.paused(), max_move_bps=w.hub.trading_state(INDEX_FEED_ID)[4],
        params=params_of(w), vs=w.value_scale,
    )


def _predict(s: Snapshot, size: int, margin: int, settled: int, size_delta: int,
             acceptable: int) -> Quote:
    """The market's `_trade` on a position of `size` and settled `margin` whose
    settlement at the order's round is `settled` (no haircut: the fund is not short
    wherever a test predicts a realised gain), in the market's order of checks."""
    p, vs = s.params, s.vs
    if size_delta == 0:
        return Quote(ZERO_SIZE)
    if not s.fresh:
        return Quote(STALE)
    if size and margin + settled < maintenance_margin(size, s.price, p, vs):
        return Quote(LIQUIDATABLE)
    new_size = size + size_delta
    increases = abs(new_size) > abs(size) or (
        size != 0 and new_size != 0 and (new_size > 0) != (size > 0))
    if increases:
        if s.paused:
            return Quote(GUARDIAN_PAUSED)
        if s.deficit:
            return Quote(DEFICIT_PAUSED)
        if s.insurance < 0:
            return Quote(INSURANCE_EXHAUSTED)
        if not move_covered(s.max_move_bps, p):
            return Quote(MOVE_NOT_COVERED)
    try:
        premium, fill = premium_and_fill(s.price, s.skew, size_delta, p.skew_scale, vs)
    except ValueError as exc:
        return Quote(str(exc))
    if (fill > acceptable) if size_delta > 0 else (fill < acceptable):
        return Quote(SLIPPAGE, fill_price=fill)
    fee = trade_fee(s.skew, size_delta, fill, p, vs)
    after = margin + settled - premium - fee
    result = {"fill_price": fill, "fee": fee, "premium": premium, "size_after": new_size,
              "margin_after": max(after, 0), "settled": settled}
    if after < 0:
        return Quote(NO_MARGIN_FOR_FEE, **result)
    if new_size != 0:
        if increases:
            if after < initial_margin(new_size, s.price, p, vs):
                return Quote(BELOW_INITIAL, **result)
            longs = s.long_oi + max(new_size, 0) - max(size, 0)
            shorts = s.short_oi + max(-new_size, 0) - max(-size, 0)
            if longs > p.max_long_oi * WAD and longs > s.long_oi:
                return Quote(LONG_CAP, **result)
            if shorts > p.max_short_oi * WAD and shorts > s.short_oi:
                return Quote(SHORT_CAP, **result)
        elif after < maintenance_margin(new_size, s.price, p, vs):
            return Quote(REDUCTION_BELOW_MAINTENANCE, **result)
    return Quote(None, **result)


def _acceptable(size_delta: int) -> int:
    return MAX_UINT if size_delta > 0 else 0


def _quote(w: PerpWorld, account, size_delta: int, acceptable: int | None = None) -> Quote:
    """The market's answer to `account`'s order were it executed in this block at the
    latest index (the round an order fills at is the latest one in these tests)."""
    if acceptable is None:
        acceptable = _acceptable(size_delta)
    size, margin, _, _ = w.market.position(account)
    settled = _lens(w).equity(account) - margin if size else 0
    return _predict(_snapshot(w), size, margin, settled, size_delta, acceptable)


def _max_size_for_margin(w: PerpWorld, margin: int, short: bool) -> int:
    """The largest position `margin` opens from flat now (binary search over the
    prediction, so every rounding matches the market)."""
    s, sign = _snapshot(w), -1 if short else 1
    lo, hi = 0, max(s.params.max_long_oi, s.params.max_short_oi) * WAD
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _predict(s, 0, margin, 0, sign * mid, _acceptable(sign)).refusal is None:
            lo = mid
        else:
            hi = mid - 1
    return lo


# ---------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------


class _Lens:
    """The PerpLens views of one market: `_lens(w).equity(account)`."""

    def __init__(self, w: PerpWorld):
        self._lens, self._market = w.lens, w.market.address

    def __getattr__(self, name):
        view = getattr(self._lens, name)
        return lambda *args: view(self._market, *args)


def _lens(w: PerpWorld) -> _Lens:
    return _Lens(w)


def _trade(w: PerpWorld, account, size_delta: int, acceptable: int | None = None,
           price: int | None = None) -> None:
    """Commit, the next round (at `price`, 8 decimals, or the latest value again),
    execute: the clock moves one second (funding accrues over it)."""
    w.commit(account, size_delta, acceptable)
    round_after_commit(w, price)
    w.execute(account)


def _trade_together(w: PerpWorld, *orders) -> None:
    """Several `(account, size_delta)` orders committed in one block and executed in
    the block of the one round after them, in order: no funding between them."""
    for account, size_delta in orders:
        w.commit(account, size_delta)
    round_after_commit(w)
    for account, _ in orders:
        w.execute(account)


def _open(w: PerpWorld, account, margin: int, size_delta: int) -> None:
    w.deposit(account, margin)
    _trade(w, account, size_delta)


def _execute_and_check(w: PerpWorld, account, size_delta: int, acceptable: int | None):
    """Execute `account`'s order and check the PositionModified event, the stored
    position, the fee book and the funding accrual against the prediction made in the
    execution's block. Returns the PositionModified event."""
    m = w.market
    quote = _quote(w, account, size_delta, acceptable)
    assert quote.refusal is None, quote.refusal
    price, fidx, rate = w.price_wad(), m.funding_index(), m.funding_rate()
    fees = m.market()[4]
    w.execute(account)
    event = event_of(m, "PositionModified")
    for funding in events_of(m, "FundingAccrued"):
        assert (funding.funding_index, funding.funding_rate, funding.index_price) == (
            fidx, rate, price)
    assert (
        event.account, event.size_delta, event.size, event.index_price, event.fill_price,
        event.fee, event.premium, event.settled, event.margin,
    ) == (
        account, size_delta, quote.size_after, price, quote.fill_price, quote.fee,
        quote.premium, quote.settled, quote.margin_after,
    )
    kept = quote.size_after != 0
    assert m.position(account) == (
        quote.size_after, quote.margin_after, price if kept else 0, fidx if kept else 0,
    )
    assert m.market()[4] == fees + quote.fee
    return event


def _check_trades(w: PerpWorld, *orders, price: int | None = None):
    """Commit `(account, size_delta[, acceptable])` orders in this block, publish one
    round (at `price` or the latest value), execute and check each in order."""
    orders = [(*order, None) if len(order) == 2 else order for order in orders]
    for account, size_delta, acceptable in orders:
        w.commit(account, size_delta, acceptable)
    round_after_commit(w, price)
    return [_execute_and_check(w, *order) for order in orders]


def _check_trade(w: PerpWorld, account, size_delta: int, acceptable: int | None = None,
                 *, price: int | None = None):
    """One checked trade (see `_execute_and_check`)."""
    return _check_trades(w, (account, size_delta, acceptable), price=price)[0]


def _refused(w: PerpWorld, account, size_delta: int, reason: str,
             acceptable: int | None = None, *, keeper_fee: int | None = None) -> None:
    """The order commits, but its trade at the next round is refused with `reason`:
    the execution goes through and cancels the order (`OrderFailed`), the keeper is
    paid min(keeper fee, margin) from the trader's margin into its own margin in the
    market, and nothing else moves: the position keeps its size and settlement point,
    no funding accrues, no token moves, the fee book and the sum of margins stay (all
    inside an anchor). `keeper_fee` is the order window's fee for the order (one unit
    of the asset unless given)."""
    m = w.market
    with branch(w):
        if keeper_fee is None:
            keeper_fee = w.unit
        with boa.env.prank(w.admin):
            m.set_order_window(0, 2 * DAY, keeper_fee)
        w.commit(account, size_delta, acceptable)
        round_after_commit(w)
        margin = m.position(account)[1]
        cash, book, funding = m.cash(), m.market()[3:5], m._storage._funding.get()
        balances = (w.asset.balanceOf(m.address), w.asset.balanceOf(w.keeper))
        # No revert: the order is settled and gone (the helper checks the event, the
        # position, the keeper's margin and that nobody can execute the order later).
        assert w.execute_refused(account, reason) == min(keeper_fee, margin)
        failed = w.last_refusal
        assert (failed.round_id, failed.price) == (w.hub.trading_state(INDEX_FEED_ID)[2],
                                                   w.price_wad())
        assert tuple(m.order(account)) == (0, 0, 0, 0, 0)
        assert (m.cash(), m.market()[3:5], m._storage._funding.get()) == (cash, book, funding)
        assert (w.asset.balanceOf(m.address), w.asset.balanceOf(w.keeper)) == balances


def _execution_reverts(w: PerpWorld, account, size_delta: int, reason: str) -> None:
    """The order commits, but its execution at the next round is refused BEFORE the
    trade (a check of the index): it reverts, changes nothing, and the order stays
    pending (all inside an anchor)."""
    m = w.market
    with branch(w):
        w.commit(account, size_delta)
        round_after_commit(w)
        position, order, cash = m.position(account), m.order(account), m.cash()
        with boa.reverts(reason):
            w.execute(account)
        assert (m.position(account), m.order(account), m.cash()) == (position, order, cash)


def _set_params(w: PerpWorld, **changes) -> None:
    with boa.env.prank(w.admin):
        w.market.set_risk_params(replace(w.params, **changes).as_tuple())


def _make_stale(w: PerpWorld) -> None:
    boa.env.time_travel(seconds=DAY + 1)
    assert w.market.index_price()[1] is False


def _first_liquidatable_tick(w: PerpWorld, account) -> int:
    """The feed value (8 decimals) closest to `liquidation_price` on the liquidatable
    side (longs: at or below it; shorts: above it)."""
    lp = _lens(w).liquidation_price(account)
    return lp // FEED_TICK if w.size_of(account) > 0 else lp // FEED_TICK + 1


def _make_liquidatable(w: PerpWorld, account) -> None:
    """Walk the index (within the feed's move limit) to the first liquidatable tick;
    funding accrued on the way may move it, so aim again until it is."""
    for _ in range(3):
        w.walk_price(_first_liquidatable_tick(w, account))
        if _lens(w).can_liquidate(account):
            return
    raise AssertionError("the position did not become liquidatable")


# ---------------------------------------------------------------------------------
# Margin: deposit and withdraw
# ---------------------------------------------------------------------------------


def test_deposit_credits_the_margin_and_the_internal_cash(any_world):
    w = any_world
    m, alice = w.market, w.traders[0]
    amount = 1_234 * w.unit + 7
    cash, balance = m.cash(), w.asset.balanceOf(m.address)
    w.fund(alice, amount)
    with boa.env.prank(alice):
        m.deposit_margin(amount)
    event = event_of(m, "MarginDeposited")
    assert (event.account, event.sender, event.amount, event.margin) == (
        alice, alice, amount, amount,
    )
    assert m.position(alice) == (0, amount, 0, 0)
    assert m.cash() == cash + amount
    assert w.asset.balanceOf(m.address) == balance + amount
    assert w.asset.balanceOf(alice) == 0
    assert m.market()[3] == amount  # the margin book
    w.deposit(alice, 1)
    assert event_of(m, "MarginDeposited").margin == amount + 1


def test_zero_amounts_are_refused(world):
    """Deposits, withdrawals (with and without a position) and insurance funding of
    zero are refused."""
    m, alice, bob = world.market, world.traders[0], world.traders[1]
    world.fund(alice, 10**12)
    _open(world, bob, 1_000 * world.unit, 100 * GPUH)
    with boa.env.prank(alice):
        with boa.reverts(ZERO_AMOUNT):
            m.deposit_margin(0)
        with boa.reverts(ZERO_AMOUNT):
            m.withdraw_margin(0)
        with boa.reverts(ZERO_AMOUNT):
            m.fund_insurance(0)
    with boa.env.prank(bob), boa.reverts(ZERO_AMOUNT):
        m.withdraw_margin(0)


def test_withdraw_without_a_position_returns_the_margin(any_world):
    w = any_world
    m, alice = w.market, w.traders[0]
    amount = 500 * w.unit
    w.deposit(alice, amount)
    cash = m.cash()
    with boa.env.prank(alice):
        with boa.reverts(EXCEEDS_MARGIN):
            m.withdraw_margin(amount + 1)
        m.withdraw_margin(amount // 5)
        event = event_of(m, "MarginWithdrawn")
        assert (event.account, event.amount, event.margin) == (
            alice, amount // 5, amount - amount // 5,
        )
        m.withdraw_margin(amount - amount // 5)
    assert w.asset.balanceOf(alice) == amount
    assert m.position(alice) == (0, 0, 0, 0)
    assert m.cash() == cash - amount
    assert m.market()[3] == 0


def test_deposit_always_works_on_a_stale_index(world):
    """A trader must be able to save a position from liquidation whatever the oracle
    does: deposits never read the index."""
    m, alice, bob = world.market, world.traders[0], world.traders[1]
    _open(world, alice, 1_000 * world.unit, 1_000 * GPUH)
    margin = world.margin_of(alice)
    _make_stale(world)
    world.deposit(alice, 10 * world.unit)
    world.deposit(bob, 10 * world.unit)
    assert world.margin_of(alice) == margin + 10 * world.unit
    assert m.position(bob) == (0, 10 * world.unit, 0, 0)


def test_withdraw_without_a_position_works_on_a_stale_index(world):
    """Without a position nothing depends on the index: the margin is the claim."""
    m, bob = world.market, world.traders[1]
    world.deposit(bob, 300 * world.unit)
    _make_stale(world)
    with boa.env.prank(bob):
        m.withdraw_margin(300 * world.unit)
    assert world.asset.balanceOf(bob) == 300 * world.unit


def test_withdraw_with_a_position_is_refused_on_a_stale_index(world):
    """With a position the withdrawal is checked against a mark: a stale mark could
    hide a loss, so it is refused until a fresh report arrives."""
    m, alice = world.market, world.traders[0]
    _open(world, alice, 1_000 * world.unit, 1_000 * GPUH)
    _make_stale(world)
    with boa.env.prank(alice), boa.reverts(STALE):
        m.withdraw_margin(1)
    assert world.set_price(PRICE)
    with boa.env.prank(alice):
        m.withdraw_margin(1)


def test_index_is_fresh_up_to_exactly_the_heartbeat(world):
    m = world.market
    updated = world.feed.latestRoundData()[3]
    boa.env.time_travel(seconds=updated + DAY - now())
    assert m.index_price() == (PRICE * FEED_TICK, True)
    boa.env.time_travel(seconds=1)
    assert m.index_price() == (PRICE * FEED_TICK, False)


@pytest.mark.parametrize("rise", [True, False], ids=["gain", "loss"])
def test_withdraw_with_a_position_counts_losses_not_gains(any_world, rise):
    """A withdrawal with a position settles nothing: the margin stays settled where it
    was, and what stays, less any unrealised loss and funding owed, must cover the
    initial margin at the index (exit premium included). An unrealised gain backs
    nothing until an order realises it. `withdrawable()` exactly is accepted, one unit
    more is not."""
    w = any_world
    m, alice, lens = w.market, w.traders[0], _lens(w)
    size = 1_000 * GPUH
    _open(w, alice, 1_000 * w.unit, size)
    _, margin, last_price, last_funding = m.position(alice)
    w.walk_price(22 * FEED_UNIT // 10 if rise else 19 * FEED_UNIT // 10)  # +10 % / -5 %
    price, fidx, p = w.price_wad(), m.funding_index(), params_of(w)
    settled = perp.settlement(size, last_price, last_funding, price, fidx, w.value_scale)
    assert (settled > 0) is rise
    assert lens.equity(alice) == margin + settled
    need = initial_margin(size, price, p, w.value_scale)
    free = margin + min(settled, 0) - need
    assert lens.withdrawable(alice) == free > 0
    with boa.env.prank(alice):
        with boa.reverts(EXCEEDS_MARGIN):
            m.withdraw_margin(margin + 1)
        with boa.reverts(BELOW_INITIAL_WITHDRAW):
            m.withdraw_margin(free + 1)
        m.withdraw_margin(free)
    event = event_of(m, "MarginWithdrawn")
    assert (event.account, event.amount, event.margin) == (alice, free, margin - free)
    # Nothing settled: the position keeps its settlement point, the PnL stays unrealised.
    assert m.position(alice) == (size, margin - free, last_price, last_funding)
    assert lens.pnl(alice) == perp.settlement(size, last_price, 0, price, 0, w.value_scale)
    assert lens.withdrawable(alice) == 0
    assert w.asset.balanceOf(alice) == free


@pytest.mark.parametrize("short", [False, True], ids=["long", "short"])
def test_a_skew_reducing_open_fills_at_the_index_without_a_rebate(any_world, short):
    """Bob's 200,000 GPU-hour position makes the skew; Alice's 20,000 the other way
    reduce it and fill at the index, never better: no premium either way (no rebate
    to withdraw), the maker fee on 40,000 USD (20 USD). The open needs the initial
    margin (10 % of 40,000 USD + the 5 USD keeper fee + the 400 USD exit premium at
    zero skew) + the fee, to the unit; `withdrawable()` is margin - initial margin at
    the opening index and after a move in her favour (the gain stays unrealised), and
    the requirements do not depend on the skew."""
    w = any_world
    m, alice, bob, lens = w.market, w.traders[0], w.traders[1], _lens(w)
    sign = -1 if short else 1
    size = sign * 20_000 * GPUH
    _open(w, bob, 150_000 * w.unit, -10 * size)
    price, p, scale = w.price_wad(), params_of(w), w.value_scale
    premium, fill = premium_and_fill(price, -10 * size, size, p.skew_scale, scale)
    assert (premium, fill) == (0, price)
    assert lens.fill_price(size) == price
    fee = trade_fee(-10 * size, size, fill, p, scale)
    assert fee == 20 * w.unit
    need = initial_margin(size, price, p, scale)
    assert exit_premium(size, price, p.skew_scale, scale) == 400 * w.unit
    assert need == 4_405 * w.unit
    least = need + premium + fee

    w.deposit(alice, least - 1)
    assert _quote(w, alice, size).refusal == BELOW_INITIAL
    _refused(w, alice, size, BELOW_INITIAL, keeper_fee=0)  # to the unit
    w.deposit(alice, 1)
    event = _check_trade(w, alice, size)
    assert (event.fill_price, event.premium, event.fee, event.margin) == (
        price, 0, fee, need,
    )
    assert m.market()[2] == -9 * size
    assert lens.equity(alice) == need and lens.withdrawable(alice) == 0
    assert not lens.can_liquidate(alice)

    w.deposit(alice, 1_000 * w.unit)
    assert lens.withdrawable(alice) == 1_000 * w.unit
    w.walk_price(PRICE + sign * FEED_UNIT // 10)  # 2.10 USD long, 1.90 USD short
    price, margin = w.price_wad(), w.margin_of(alice)
    need = initial_margin(size, price, p, scale)
    assert need == (4_185 if short else 4_625) * w.unit  # 10 % + 5 USD + exit premium
    assert lens.equity(alice) > margin  # a gain, which backs nothing yet
    assert lens.withdrawable(alice) == margin - need
    with boa.env.prank(alice):
        with boa.reverts(BELOW_INITIAL_WITHDRAW):
            m.withdraw_margin(margin - need + 1)
        m.withdraw_margin(margin - need)
    assert w.margin_of(alice) == need and lens.withdrawable(alice) == 0


# ---------------------------------------------------------------------------------
# Trading: open, increase, reduce, flip, close
# ---------------------------------------------------------------------------------


def test_open_long_fills_at_the_skew_premium(any_world):
    """From zero skew a buy of 1,000 GPU-hours fills at P * (1 + 500 / 1e6): 2.001
    USD. The premium (1 USD) goes to the insurance fund, the taker fee (10 bps of
    the fill notional, 2.001 USD) to the fee book."""
    w = any_world
    m, alice = w.market, w.traders[0]
    size, deposit = 1_000 * GPUH, 1_000 * w.unit
    w.deposit(alice, deposit)
    price = w.price_wad()
    insurance = m.market()[5]
    premium, fill = premium_and_fill(price, 0, size, w.params.skew_scale, w.value_scale)
    fee = trade_fee(0, size, fill, params_of(w), w.value_scale)
    assert _lens(w).fill_price(size) == fill == 2_001 * WAD // 1_000
    assert premium == w.unit and fee == 2_001 * w.unit // 1_000
    event = _check_trade(w, alice, size)
    assert (event.fill_price, event.premium, event.fee, event.settled, event.margin) == (
        fill, premium, fee, 0, deposit - premium - fee,
    )
    assert m.market()[:5] == (size, 0, size, deposit - premium - fee, fee)
    assert m.market()[5] == insurance + premium


def test_open_short_fills_below_the_index(any_world):
    w = any_world
    m, alice = w.market, w.traders[0]
    size = -1_000 * GPUH
    w.deposit(alice, 1_000 * w.unit)
    assert premium_and_fill(w.price_wad(), 0, size, w.params.skew_scale, w.value_scale)[1] == (
        1_999 * WAD // 1_000)
    event = _check_trade(w, alice, size)
    assert event.fill_price == 1_999 * WAD // 1_000
    assert event.premium == w.unit  # a sell below the index pays the premium too
    assert event.fee == 1_999 * w.unit // 1_000
    assert m.market()[:3] == (0, -size, size)


def test_increase_settles_pnl_and_funding_first(world):
    """An increase settles the open position at the order's round (PnL minus the
    funding the long owes, accrued up to the execution) before charging the new
    premium, which grows with the skew the trade leaves."""
    m, alice = world.market, world.traders[0]
    size = 10_000 * GPUH
    _open(world, alice, 5_000 * world.unit, size)
    opened = now()
    boa.env.time_travel(seconds=3_600)
    world.walk_price(21 * FEED_UNIT // 10)  # +5 %: two rounds
    event = _check_trade(world, alice, 5_000 * GPUH)
    price = world.price_wad()
    fidx, rate = perp.funding_step(0, 0, now() - opened, price, size, params_of(world))
    assert (m.funding_index(), m.funding_rate()) == (fidx, rate)  # accrued by the trade
    assert fidx > 0 and rate > 0
    assert event.settled == perp.settlement(size, PRICE * FEED_TICK, 0, price, fidx,
                                            world.value_scale)
    assert event.settled < size * (price - PRICE * FEED_TICK) // world.value_scale
    assert event.fill_price == premium_and_fill(price, size, 5_000 * GPUH, 1_000_000,
                                        world.value_scale)[1]


def test_reduce_realises_pnl_with_the_maker_fee_at_the_index(world):
    """Reducing the only position reduces the skew: the maker fee applies and the
    trade fills at the index (no premium, no rebate)."""
    m, alice = world.market, world.traders[0]
    _open(world, alice, 1_000 * world.unit, 1_000 * GPUH)
    world.walk_price(22 * FEED_UNIT // 10)
    event = _check_trade(world, alice, -400 * GPUH)
    fill = event.fill_price
    assert fill == world.price_wad() and event.premium == 0
    assert event.settled > 0
    assert event.fee == perp.ceil_div(400 * GPUH * 5 * fill, world.value_scale * BPS)
    assert event.size == 600 * GPUH
    assert m.market()[:3] == (600 * GPUH, 0, 600 * GPUH)


def test_flip_splits_the_fee_between_maker_and_taker(world):
    """Selling 1,500 against one's own 1,000 long: 1,000 reduce the skew (maker, no
    premium), 500 open a short (taker, and the premium of a 500 leg from zero skew,
    averaged over the 1,500)."""
    m, alice = world.market, world.traders[0]
    _open(world, alice, 1_000 * world.unit, 1_000 * GPUH)
    event = _check_trade(world, alice, -1_500 * GPUH)
    taker, maker = 500 * GPUH, 1_000 * GPUH
    assert event.fee == perp.ceil_div(
        (taker * 10 + maker * 5) * event.fill_price, world.value_scale * BPS
    )
    # The 500 leg pays 500 x P x 250 / 1e6 = 0.25 USD; averaged over 1,500 GPU-hours.
    assert event.premium == world.unit // 4
    paid = perp.ceil_div(PRICE * FEED_TICK * 500 * GPUH, 2 * 1_000_000 * WAD) * 500 * GPUH
    assert event.fill_price == PRICE * FEED_TICK - perp.ceil_div(paid, 1_500 * GPUH)
    assert event.size == -500 * GPUH
    assert m.market()[:3] == (0, 500 * GPUH, -500 * GPUH)


def test_maker_and_taker_fees_split_a_trade_that_crosses_the_skew(world):
    """Bob's 3,000 long is the skew; Alice sells 5,000: the first 3,000 reduce the
    skew (maker, 5 bps), the last 2,000 build a short skew (taker, 10 bps)."""
    m, alice, bob = world.market, world.traders[0], world.traders[1]
    _open(world, bob, 2_000 * world.unit, 3_000 * GPUH)
    world.deposit(alice, 5_000 * world.unit)
    event = _check_trade(world, alice, -5_000 * GPUH)
    fill, scale = event.fill_price, world.value_scale
    assert event.fee == perp.ceil_div(
        (2_000 * GPUH * 10 + 3_000 * GPUH * 5) * fill, scale * BPS
    )
    all_maker = perp.ceil_div(5_000 * GPUH * 5 * fill, scale * BPS)
    all_taker = perp.ceil_div(5_000 * GPUH * 10 * fill, scale * BPS)
    assert all_maker < event.fee < all_taker
    assert m.market()[:3] == (3_000 * GPUH, 5_000 * GPUH, -2_000 * GPUH)


def test_an_order_of_the_whole_position_returns_to_flat(world):
    """There is no close call: an order of minus the size closes, at the index (it
    reduces the skew), with an acceptable price exactly its fill."""
    m, alice, lens = world.market, world.traders[0], _lens(world)
    _open(world, alice, 1_000 * world.unit, -1_000 * GPUH)
    world.walk_price(19 * FEED_UNIT // 10)  # the short gains
    fill = lens.fill_price(1_000 * GPUH)
    assert fill == world.price_wad()
    event = _check_trade(world, alice, 1_000 * GPUH, fill)
    assert (event.size_delta, event.size, event.fill_price) == (1_000 * GPUH, 0, fill)
    assert event.settled > 0
    assert m.position(alice) == (0, event.margin, 0, 0)
    assert m.market()[:3] == (0, 0, 0)
    assert lens.pnl(alice) == 0 and lens.funding_owed(alice) == 0
    assert lens.equity(alice) == lens.withdrawable(alice) == event.margin


def test_acceptable_price_bounds_a_buy(world):
    """A buy fills at most at `acceptable_price`: the exact fill passes, one wei less
    is refused (the order is cancelled, its keeper paid)."""
    alice, bob = world.traders[0], world.traders[1]
    _open(world, bob, 1_000 * world.unit, -2_000 * GPUH)
    world.deposit(alice, 1_000 * world.unit)
    fill = _lens(world).fill_price(700 * GPUH)
    assert fill == world.price_wad()  # against the short skew: at the index
    _refused(world, alice, 700 * GPUH, SLIPPAGE, fill - 1)
    assert _check_trade(world, alice, 700 * GPUH, fill).fill_price == fill


def test_acceptable_price_bounds_a_sell(world):
    """A sell fills at least at `acceptable_price`: the exact fill passes, one wei more
    is refused."""
    alice, bob = world.traders[0], world.traders[1]
    _open(world, bob, 1_000 * world.unit, 2_000 * GPUH)
    world.deposit(alice, 1_000 * world.unit)
    fill = _lens(world).fill_price(-700 * GPUH)
    assert fill == world.price_wad()
    _refused(world, alice, -700 * GPUH, SLIPPAGE, fill + 1)
    assert _check_trade(world, alice, -700 * GPUH, fill).fill_price == fill


def test_acceptable_price_bounds_a_premium_paying_buy(world):
    """On a premium-paying buy the bound is the average fill, premium included."""
    alice = world.traders[0]
    world.deposit(alice, 1_000 * world.unit)
    fill = _lens(world).fill_price(700 * GPUH)
    assert fill == premium_and_fill(world.price_wad(), 0, 700 * GPUH, 1_000_000,
                            world.value_scale)[1] > world.price_wad()
    _refused(world, alice, 700 * GPUH, SLIPPAGE, fill - 1)
    assert _check_trade(world, alice, 700 * GPUH, fill).fill_price == fill


def test_zero_size_is_refused(world):
    world.deposit(world.traders[0], world.unit)
    with boa.reverts(ZERO_SIZE):
        world.commit(world.traders[0], 0, 0)


def test_fill_price_must_stay_positive(world):
    """A sell of twice the skew scale would fill at zero or less: its trade is refused
    at execution (before any margin or cap check), and the view refuses it the same
    way."""
    alice = world.traders[0]
    world.deposit(alice, 10 * world.unit)  # the keeper fee
    too_big = -2 * world.params.skew_scale * GPUH
    with boa.reverts(FILL_NOT_POSITIVE):
        _lens(world).fill_price(too_big)
    _refused(world, alice, too_big, FILL_NOT_POSITIVE)
    # One GPU-hour less fills above zero (the view answers; the margin is the limit).
    assert 0 < _lens(world).fill_price(too_big + GPUH) < world.price_wad()


def test_margin_must_cover_the_fee_and_the_premium(world):
    """One unit of margin cannot pay the 1 USD premium and 2 USD fee of a 1,000
    GPU-hour open. With a keeper fee of one unit the refused order still pays it: the
    keeper takes the whole margin."""
    world.deposit(world.traders[0], world.unit)
    assert _quote(world, world.traders[0], 1_000 * GPUH).refusal == NO_MARGIN_FOR_FEE
    _refused(world, world.traders[0], 1_000 * GPUH, NO_MARGIN_FOR_FEE)


@pytest.mark.parametrize("short", [False, True], ids=["long", "short"])
def test_leverage_cap_is_the_initial_margin(any_world, short):
    """The largest position 1,000 units of margin opens (a search over the market's own
    checks: initial margin with the exit premium, plus the premium and fee) is
    accepted; one wei more is refused by the leverage cap. Leverage stays under
    `max_leverage()` (the keeper fee and exit premium are on top)."""
    w = any_world
    alice, lens = w.traders[0], _lens(w)
    sign = -1 if short else 1
    deposit = 1_000 * w.unit
    w.deposit(alice, deposit)
    largest = _max_size_for_margin(w, deposit, short)
    assert largest > 0
    _refused(w, alice, sign * (largest + 1), BELOW_INITIAL, keeper_fee=0)
    _check_trade(w, alice, sign * largest)
    price, p = w.price_wad(), params_of(w)
    equity = lens.equity(alice)
    assert w.market.market()[2] == sign * largest
    assert equity >= initial_margin(sign * largest, price, p, w.value_scale)
    assert perp.notional(largest, price, w.value_scale) * WAD // equity <= lens.max_leverage()
    _refused(w, alice, sign * GPUH, BELOW_INITIAL)  # an increase needs it too


def test_open_interest_caps_bind_each_side(world):
    """Caps lowered to 1,000 long and 800 short GPU-hours: each side fills to its cap
    exactly and not one wei more. Above a cap (after it is lowered) the side can
    only shrink, while the other side still trades."""
    m = world.market
    alice, bob, carol, dave = world.traders
    _set_params(world, max_long_oi=1_000, max_short_oi=800)
    for account in world.traders:
        world.deposit(account, 5_000 * world.unit)
    _trade(world, alice, 1_000 * GPUH)
    _refused(world, bob, 1, LONG_CAP)
    _trade(world, bob, -800 * GPUH)
    _refused(world, carol, -1, SHORT_CAP)
    _refused(world, alice, -1_001 * GPUH, SHORT_CAP)  # a flip adds to the other side
    assert m.market()[:2] == (1_000 * GPUH, 800 * GPUH)

    _set_params(world, max_long_oi=500, max_short_oi=800)
    _refused(world, alice, 1, LONG_CAP)
    _refused(world, dave, 1, LONG_CAP)
    _trade(world, alice, -100 * GPUH)  # the side above its cap shrinks
    _trade(world, bob, 100 * GPUH)  # the short side makes room ...
    _trade(world, carol, -100 * GPUH)  # ... and refills: longs did not grow
    assert m.market()[:2] == (900 * GPUH, 800 * GPUH)


def test_reduction_below_maintenance_is_refused(world):
    """Alice's long sits just above maintenance while Bob's big short makes the skew
    short. Selling half of it increases the skew: the premium (about 462 GPU-hours x
    the index) and the 1 % taker fee cost more than the maintenance (9 % and the exit
    premium) the smaller size releases, so the reduction is refused. Once Bob has
    closed, her long is the skew: the same sell reduces it, fills at the index for the
    maker fee only, and passes."""
    m, alice, bob, lens = world.market, world.traders[0], world.traders[1], _lens(world)
    _set_params(world, taker_fee_bps=100, maintenance_margin_bps=900, liquidation_fee_bps=0)
    _open(world, alice, 2_500 * world.unit, 10_000 * GPUH)
    _open(world, bob, 60_000 * world.unit, -100_000 * GPUH)
    skew, p = m.market()[2], params_of(world)
    assert skew == -90_000 * GPUH
    assert world.set_price(lens.liquidation_price(alice) // FEED_TICK + 1_000)
    assert not lens.can_liquidate(alice)
    price = world.price_wad()
    assert lens.equity(alice) - maintenance_margin(10_000 * GPUH, price, p,
                                             world.value_scale) < world.unit
    quote = _quote(world, alice, -5_000 * GPUH)
    assert quote.refusal == REDUCTION_BELOW_MAINTENANCE
    released = maintenance_margin(10_000 * GPUH, price, p, world.value_scale) \
        - maintenance_margin(5_000 * GPUH, price, p, world.value_scale)
    assert quote.premium + quote.fee > released > 800 * world.unit
    _refused(world, alice, -5_000 * GPUH, REDUCTION_BELOW_MAINTENANCE)
    _trade(world, bob, 100_000 * GPUH)  # Bob closes
    assert m.market()[2] == 10_000 * GPUH
    quote = _quote(world, alice, -5_000 * GPUH)
    assert quote.refusal is None
    assert (quote.fill_price, quote.premium) == (world.price_wad(), 0)
    _check_trade(world, alice, -5_000 * GPUH)


def test_liquidatable_position_cannot_be_modified_but_can_be_topped_up(world):
    alice, lens = world.traders[0], _lens(world)
    _open(world, alice, 2_300 * world.unit, 10_000 * GPUH)
    _make_liquidatable(world, alice)
    for size_delta in (GPUH, -GPUH, -10_000 * GPUH, -20_000 * GPUH):
        _refused(world, alice, size_delta, LIQUIDATABLE)
    world.deposit(alice, 500 * world.unit)
    assert not lens.can_liquidate(alice)
    _check_trade(world, alice, -10_000 * GPUH)


# ---------------------------------------------------------------------------------
# Funding
# ---------------------------------------------------------------------------------


def test_funding_rate_velocity_is_proportional_to_the_skew(world):
    """After six hours the rate has moved by velocity x 0.25 day, with velocity =
    max_funding_velocity x skew / skew_scale: twice the skew, twice the rate."""
    m, alice = world.market, world.traders[0]
    rates = []
    for skew in (50_000 * GPUH, 100_000 * GPUH):
        with branch(world):
            _open(world, alice, 100_000 * world.unit, skew)
            opened = now()
            boa.env.time_travel(seconds=6 * 3_600)
            assert world.set_price(PRICE)
            dt = now() - opened
            expected = perp.funding_step(0, 0, dt, world.price_wad(), skew, params_of(world))
            assert (m.funding_index(), m.funding_rate()) == expected
            velocity = world.params.max_funding_velocity * skew // (1_000_000 * GPUH)
            assert m.funding_rate() == velocity * dt // DAY
            rates.append(m.funding_rate())
    assert rates[1] == 2 * rates[0] > 0


@pytest.mark.parametrize("short", [False, True], ids=["long-skew", "short-skew"])
def test_funding_rate_is_clamped_at_the_maximum(world, short):
    """At 100 %/day per day and a 10 % skew the rate reaches the 5 %/day cap after
    half a day; two days later it is exactly the cap (signed), and the index is the
    trapezoid up to the cap plus the flat part."""
    m, alice = world.market, world.traders[0]
    _set_params(world, max_funding_velocity=WAD)
    skew = (-1 if short else 1) * 100_000 * GPUH
    _open(world, alice, 100_000 * world.unit, skew)
    opened = now()
    boa.env.time_travel(seconds=2 * DAY)
    assert world.set_price(PRICE)
    cap = world.params.max_funding_rate
    fidx, rate = perp.funding_step(0, 0, now() - opened, world.price_wad(), skew,
                                   params_of(world))
    assert rate == (-cap if short else cap)
    assert (m.funding_index(), m.funding_rate()) == (fidx, rate)
    # Flat at the cap for the last 1.5 days (and a bit): more than 1.5 x 5 % x P.
    assert abs(fidx) > 3 * cap * world.price_wad() // 2 // WAD


@pytest.mark.parametrize("short_skew", [False, True], ids=["longs-pay", "shorts-pay"])
def test_the_heavy_side_pays_and_funding_owed_rounds_against_the_trader(world,
                                                                          short_skew):
    """With more longs than shorts the rate turns positive and longs pay shorts (and
    the reverse). `funding_owed` rounds a payment up and a receipt down; closing
    settles the funding rounded down for the trader (read in the execution's block)."""
    m, alice, bob, lens = world.market, world.traders[0], world.traders[1], _lens(world)
    sign = -1 if short_skew else 1
    heavy, light = sign * 3_000_123_456_789 * 10**9, -sign * 1_000_987_654_321 * 10**9
    _open(world, alice, 10_000 * world.unit, heavy)
    _open(world, bob, 10_000 * world.unit, light)
    boa.env.time_travel(seconds=DAY)
    assert world.set_price(PRICE)
    world.commit(alice, -heavy)  # the close, executed below at the next round
    round_after_commit(world)
    fidx = m.funding_index()
    assert (m.funding_rate() > 0) == (not short_skew) and m.funding_rate() != 0
    scale = world.value_scale
    raw_heavy = heavy * (fidx - m.position(alice)[3])
    raw_light = light * (fidx - m.position(bob)[3])
    assert raw_heavy > 0 > raw_light  # the heavy side owes, the light side receives
    assert raw_heavy % scale != 0 and raw_light % scale != 0
    assert lens.funding_owed(alice) == perp.ceil_div(raw_heavy, scale)  # paid: up
    assert lens.funding_owed(bob) == -((-raw_light) // scale)  # received: down
    assert lens.pnl(alice) == 0 and lens.pnl(bob) == 0
    assert lens.equity(alice) == world.margin_of(alice) + (-raw_heavy) // scale
    owed = lens.funding_owed(alice)
    event = _execute_and_check(world, alice, -heavy, None)
    assert event.settled == (-raw_heavy) // scale == -owed


def test_funding_accrual_is_path_independent(world):
    """Accruing once after a day or every hour (set_risk_params accrues) gives the same
    index and rate, up to rounding dust."""
    m, alice = world.market, world.traders[0]
    _open(world, alice, 100_000 * world.unit, 80_000 * GPUH)
    start = now()
    with boa.env.anchor():
        boa.env.time_travel(seconds=DAY - 100)
        one_step = (m.funding_index(), m.funding_rate())
    for _ in range(24):
        boa.env.time_travel(seconds=(DAY - 100) // 24)
        with boa.env.prank(world.admin):
            m.set_risk_params(world.params.as_tuple())
        assert events_of(m, "FundingAccrued")
    boa.env.time_travel(seconds=start + DAY - 100 - now())
    stepwise = (m.funding_index(), m.funding_rate())
    assert one_step[0] > 0
    assert abs(stepwise[0] - one_step[0]) <= 24
    assert abs(stepwise[1] - one_step[1]) <= 24


# ---------------------------------------------------------------------------------
# Views (PerpLens)
# ---------------------------------------------------------------------------------


def test_views_without_a_position(world):
    m, alice, lens = world.market, world.traders[0], _lens(world)
    world.deposit(alice, 77 * world.unit)
    assert m.position(alice) == (0, 77 * world.unit, 0, 0)
    assert lens.pnl(alice) == 0 and lens.funding_owed(alice) == 0
    assert lens.equity(alice) == lens.withdrawable(alice) == 77 * world.unit
    assert lens.margin_ratio(alice) == MAX_UINT
    assert lens.liquidation_price(alice) == 0
    assert lens.can_liquidate(alice) is False
    assert m.position(world.stranger) == (0, 0, 0, 0)
    assert lens.equity(world.stranger) == 0


def test_pnl_equity_and_margin_ratio_views(any_world):
    """Gains round down, losses up (a short after a rise loses a non-round amount).
    The two orders execute in one block: no skew, no funding."""
    w = any_world
    m, alice, bob, lens = w.market, w.traders[0], w.traders[1], _lens(w)
    size = 1_234_567 * GPUH // 1_000
    w.deposit(alice, 1_000 * w.unit)
    w.deposit(bob, 1_000 * w.unit)
    _trade_together(w, (alice, size), (bob, -size))
    assert w.set_price(PRICE + 3_333_333)
    price, scale = w.price_wad(), w.value_scale
    move = price - PRICE * FEED_TICK
    assert m.funding_index() == 0
    assert lens.pnl(alice) == size * move // scale
    assert lens.pnl(bob) == -perp.ceil_div(size * move, scale)
    # Both rounded against the trader: together they lose a unit unless exact.
    assert lens.pnl(alice) + lens.pnl(bob) == (-1 if size * move % scale else 0)
    for account in (alice, bob):
        equity = w.margin_of(account) + lens.pnl(account)
        assert lens.equity(account) == equity
        assert lens.margin_ratio(account) == equity * WAD // perp.ceil_div(size * price, scale)


def _expected_liquidation_price(w: PerpWorld, account) -> int:
    """`liquidation_price` from its formula: the index at which equity (funding held
    where it is now) meets maintenance + liquidation fee + min keeper fee + the exit
    premium `|size| / (2 x skew_scale)` of the notional (all WAD x WAD, floored). Only
    for a position some positive price liquidates."""
    m, p, vs = w.market, params_of(w), w.value_scale
    size, margin, last, last_funding = m.position(account)
    funding_paid = size * (m.funding_index() - last_funding)
    keeper = p.min_keeper_fee * vs
    c = (p.maintenance_margin_bps + p.liquidation_fee_bps) * WAD // BPS \
        + abs(size) // (2 * p.skew_scale)
    if size > 0:
        num = (keeper - margin * vs + size * last + funding_paid) * WAD
        den = size * (WAD - c)
    else:
        num = (margin * vs - size * last - funding_paid - keeper) * WAD
        den = -size * (WAD + c)
    assert num > 0 and den > 0
    return num // den


def _check_liquidation_boundary(w: PerpWorld, account) -> None:
    """Walk the index to the safe side of `liquidation_price`, then: one feed tick on
    the safe side `can_liquidate` is false and a keeper is refused; at the first tick
    on the liquidatable side it is true and a keeper liquidates (for a fee)."""
    m, lens = w.market, _lens(w)
    step = 1 if w.size_of(account) > 0 else -1
    w.walk_price(_first_liquidatable_tick(w, account) + step)
    liquidation_price = lens.liquidation_price(account)
    inside = _first_liquidatable_tick(w, account)
    outside = inside + step
    with branch(w):
        assert w.set_price(outside)
        assert lens.can_liquidate(account) is False
        with boa.env.prank(w.keeper), boa.reverts(ABOVE_MAINTENANCE):
            m.liquidate(account)
    assert w.set_price(inside)
    assert lens.can_liquidate(account) is True
    # A second of funding later (none without a skew), still the formula.
    assert lens.liquidation_price(account) == _expected_liquidation_price(w, account)
    assert lens.liquidation_price(account) // FEED_TICK == liquidation_price // FEED_TICK
    with boa.env.prank(w.keeper):
        assert m.liquidate(account) > 0


@pytest.mark.parametrize("short", [False, True], ids=["long", "short"])
def test_liquidation_price_is_the_boundary_of_can_liquidate(world, short):
    """At the feed tick on the liquidatable side of `liquidation_price` the position
    can be liquidated (and a keeper does); one tick back it cannot (and a keeper is
    refused). A counter-position executed in the same block keeps the skew, hence
    funding, at zero."""
    m, alice, bob, lens = world.market, world.traders[0], world.traders[1], _lens(world)
    sign = -1 if short else 1
    size = sign * 100_000 * GPUH
    world.deposit(bob, 100_000 * world.unit)
    world.deposit(alice, 32_000 * world.unit)
    _trade_together(world, (bob, -size), (alice, size))  # bob pays the premium ...
    assert event_of(m, "PositionModified").premium == 0  # ... alice fills at the index
    assert m.market()[2] == 0 and m.funding_index() == 0
    liquidation_price = lens.liquidation_price(alice)
    assert liquidation_price == _expected_liquidation_price(world, alice)
    _check_liquidation_boundary(world, alice)
    assert m.funding_index() == 0  # no skew, no funding: nothing moved the price


@pytest.mark.parametrize("short", [False, True], ids=["long", "short"])
def test_liquidation_price_does_not_depend_on_the_skew(world, short):
    """Bob's 200,000 GPU-hour position makes the skew; Alice's 20,000 the other way
    reduce it (at the index, the maker fee only). Her liquidation price is the
    linear formula, the same as without Bob (up to his funding), and the exact
    `can_liquidate` boundary, one feed tick either side. Moving the skew further
    (Carol trading Bob's way) does not bring it nearer."""
    m, alice, bob, carol = world.market, *world.traders[:3]
    lens = _lens(world)
    sign = -1 if short else 1
    size = sign * 20_000 * GPUH
    world.deposit(bob, 150_000 * world.unit)
    world.deposit(alice, 10_000 * world.unit)
    _trade_together(world, (bob, -10 * size), (alice, size))
    assert m.market()[2] == -9 * size
    liquidation_price = lens.liquidation_price(alice)
    assert liquidation_price == _expected_liquidation_price(world, alice)
    # Margin 9,980 USD after the 20 USD fee, c = 5.5 % + 20,000 / 2,000,000 (the exit
    # premium). Long: (40,000 - 9,980 + 5) / (20,000 x 0.935) = 1.6056 USD. Short:
    # (40,000 + 9,980 - 5) / (20,000 x 1.065) = 2.3462 USD.
    assert liquidation_price // 10**14 == (16_056 if sign > 0 else 23_462)
    with branch(world):
        _open(world, carol, 100_000 * world.unit, -5 * size)
        assert m.market()[2] == -14 * size
        assert lens.liquidation_price(alice) == _expected_liquidation_price(world, alice)
        assert abs(lens.liquidation_price(alice) - liquidation_price) < 10**12  # funding
        assert lens.can_liquidate(alice) is False
    _check_liquidation_boundary(world, alice)


def test_a_rise_never_liquidates_a_long(world):
    """Skew scale 100,000 GPU-hours: Bob's 100,000 short fills at half the index and
    Alice's 10,000 long against it at the index. Her liquidation price is below the
    index and no rise, however large, makes her liquidatable: the requirement does
    not depend on the skew, and her exit premium grows with the price at |size| / (2
    x skew_scale) = 5 % of the notional, far less than her gain. (A view: the test
    lifts the feed's move limit to jump the index.)"""
    m, alice, bob, lens = world.market, world.traders[0], world.traders[1], _lens(world)
    _set_params(world, skew_scale=100_000)
    world.fund(world.insurer, 100_000 * world.unit)
    with boa.env.prank(world.insurer):
        m.fund_insurance(100_000 * world.unit)
    _open(world, bob, 400_000 * world.unit, -100_000 * GPUH)
    assert event_of(m, "PositionModified").fill_price == world.price_wad() // 2
    _open(world, alice, 4_000 * world.unit, 10_000 * GPUH)
    price = world.price_wad()
    assert lens.can_liquidate(alice) is False
    assert 0 < lens.liquidation_price(alice) < price
    set_move_limit(world, 0)
    for value in (4 * FEED_UNIT, 40 * FEED_UNIT, 10_000 * FEED_UNIT):
        assert world.set_price(value)
        assert lens.can_liquidate(alice) is False


def test_liquidation_price_is_zero_when_no_price_liquidates_a_long(world):
    """A long margined beyond its whole notional and requirement cannot be liquidated
    at any positive price."""
    alice, lens = world.traders[0], _lens(world)
    _open(world, alice, 3_000 * world.unit, 1_000 * GPUH)
    assert lens.liquidation_price(alice) == 0
    set_move_limit(world, 0)  # a view: jump the index in one report
    assert world.set_price(1)  # the hub's minimum: 1e-8 USD
    assert lens.can_liquidate(alice) is False


def test_max_leverage_is_one_over_the_initial_margin(world):
    lens = _lens(world)
    assert lens.max_leverage() == 10 * WAD
    set_move_limit(world, 80)  # 80 x 1.005 % + 0.1 % < the 1 % maintenance below
    _set_params(world, initial_margin_bps=200, maintenance_margin_bps=100,
                liquidation_fee_bps=50)
    assert lens.max_leverage() == 50 * WAD
    _set_params(world, initial_margin_bps=3_000)
    assert lens.max_leverage() == BPS * WAD // 3_000


@pytest.mark.parametrize("size_delta", [1, 999 * GPUH, -1, -999 * GPUH, -3_000 * GPUH,
                                        -3_001 * GPUH, -7_001 * GPUH])
def test_fill_price_view_matches_the_premium_formula(world, size_delta):
    """`P * (1 + (skew + size_delta / 2) / skew_scale)` on the part that increases the
    absolute skew, averaged over the trade, buys rounded up, sells down, never better
    than the index: sells into the 3,000 long skew fill at the index up to 3,000; a
    bigger sell pays the premium of its leg past zero skew (from zero), averaged over
    the whole sell."""
    _open(world, world.traders[1], 10_000 * world.unit, 3_000 * GPUH)
    price, scale = world.price_wad(), world.params.skew_scale
    den = 2 * scale * WAD
    if size_delta > 0:
        expected = price + perp.ceil_div(price * (6_000 * GPUH + size_delta), den)
    elif size_delta >= -3_000 * GPUH:
        expected = price
    else:
        leg = -(size_delta + 3_000 * GPUH)
        expected = price - perp.ceil_div(perp.ceil_div(price * leg, den) * leg, -size_delta)
    assert _lens(world).fill_price(size_delta) == expected == premium_and_fill(
        price, 3_000 * GPUH, size_delta, scale, world.value_scale)[1]


def test_market_view_tracks_open_interest_margins_fees_and_insurance(world):
    """At an unchanged index and funding (both orders execute in one block), the
    insurance fund is the seed plus every premium paid (never negative: no rebates);
    fees stay apart in their own book."""
    m, alice, bob = world.market, world.traders[0], world.traders[1]
    seed = m.market()[5]
    assert seed == 10_000 * world.unit
    world.deposit(alice, 2_000 * world.unit)
    world.deposit(bob, 2_000 * world.unit)
    first, second = _check_trades(world, (alice, 4_000 * GPUH), (bob, -1_500 * GPUH))
    fees = first.fee + second.fee
    margins = first.margin + second.margin
    assert second.premium == 0  # against the skew
    assert m.market() == (
        4_000 * GPUH, 1_500 * GPUH, 2_500 * GPUH, margins, fees,
        seed + first.premium + second.premium, 0,
    )
    assert m.cash() == seed + 4_000 * world.unit


# ---------------------------------------------------------------------------------
# Liquidation
# ---------------------------------------------------------------------------------


def test_liquidation_pays_the_keeper_and_the_rest_to_insurance(any_world):
    """Keeper fee = min_keeper_fee + notional x liquidation_fee; the insurance keeps
    equity - fee (the exit premium included); the position, its open interest and its
    margin disappear."""
    w = any_world
    m, alice, keeper, lens = w.market, w.traders[0], w.keeper, _lens(w)
    size = 10_000 * GPUH
    _open(w, alice, 2_300 * w.unit, size)
    _make_liquidatable(w, alice)
    price, fidx, p = w.price_wad(), m.funding_index(), params_of(w)
    _, margin, last_price, last_funding = m.position(alice)
    unrealised = size * (price - last_price) - size * (fidx - last_funding)
    equity = margin + unrealised // w.value_scale
    assert lens.equity(alice) == equity
    assert equity < maintenance_margin(size, price, p, w.value_scale)
    fee = liquidation_keeper_fee(size, price, p, w.value_scale)
    assert fee == w.params.min_keeper_fee + (size * price // w.value_scale) * 50 // BPS
    assert 0 <= fee < equity
    insurance, cash = m.market()[5], m.cash()
    with boa.env.prank(keeper):
        assert m.liquidate(alice) == fee
    event = event_of(m, "PositionLiquidated")
    assert (event.account, event.keeper, event.size, event.index_price, event.equity,
            event.exit_premium, event.keeper_fee) == (
        alice, keeper, size, price, equity,
        exit_premium(size, price, p.skew_scale, w.value_scale), fee)
    assert not events_of(m, "BadDebt") and not events_of(m, "InsuranceExhausted")
    assert w.asset.balanceOf(keeper) == fee
    assert m.position(alice) == (0, 0, 0, 0)
    assert m.market()[:4] == (0, 0, 0, 0)
    assert m.cash() == cash - fee
    # The fund had marked the position at -ceil(unrealised); it now holds equity - fee.
    assert m.market()[5] == insurance + perp.ceil_div(unrealised, w.value_scale) \
        + margin - fee
    with boa.env.prank(keeper), boa.reverts(NO_POSITION):
        m.liquidate(alice)


def test_liquidation_is_refused_above_maintenance_and_without_a_position(world):
    m, alice = world.market, world.traders[0]
    _open(world, alice, 2_300 * world.unit, 10_000 * GPUH)
    with boa.env.prank(world.keeper):
        with boa.reverts(ABOVE_MAINTENANCE):
            m.liquidate(alice)
        with boa.reverts(NO_POSITION):
            m.liquidate(world.traders[1])


def test_liquidation_is_refused_on_a_stale_index(world):
    m, alice = world.market, world.traders[0]
    _open(world, alice, 2_300 * world.unit, 10_000 * GPUH)
    _make_liquidatable(world, alice)
    _make_stale(world)
    assert _lens(world).can_liquidate(alice)
    with boa.env.prank(world.keeper), boa.reverts(STALE):
        m.liquidate(alice)


def test_bad_debt_within_the_insurance_fund(world):
    """Keepers slept while the index walked 25 % down (every round within the feed's
    move limit): equity is negative, the fund pays the difference and the keeper fee
    (BadDebt), and stays positive: no deficit, no pause."""
    m, alice, lens = world.market, world.traders[0], _lens(world)
    world.fund(world.insurer, 100_000 * world.unit)
    with boa.env.prank(world.insurer):
        m.fund_insurance(100_000 * world.unit)
    _open(world, alice, 45_000 * world.unit, 100_000 * GPUH)
    world.walk_price(15 * FEED_UNIT // 10)
    equity = lens.equity(alice)
    assert equity < 0
    with boa.env.prank(world.keeper):
        fee = m.liquidate(alice)
    assert event_of(m, "BadDebt").amount == -equity
    assert event_of(m, "BadDebt").account == alice
    assert not events_of(m, "InsuranceExhausted")
    assert m.deficit() == 0 and m.market()[5] > 0
    assert world.asset.balanceOf(world.keeper) == fee
    world.deposit(world.traders[1], 1_000 * world.unit)
    _trade(world, world.traders[1], 100 * GPUH)  # new risk is still open


def test_insurance_exhaustion_records_a_deficit_and_pauses_new_risk(world):
    """Bob's short balances Alice's long (both executed in one block: no funding), so
    the fund has no exposure to gain from Alice's loss: a fall through her margin (30 %,
    walked while keepers slept) is a loss it cannot absorb. InsuranceExhausted records
    the shortfall as `deficit`; opens and increases are refused until `fund_insurance`
    covers all of it, while reductions and closes still work."""
    m, alice, bob, carol = world.market, *world.traders[:3]
    lens = _lens(world)
    world.deposit(bob, 50_000 * world.unit)
    world.deposit(alice, 32_000 * world.unit)
    _trade_together(world, (bob, -100_000 * GPUH), (alice, 100_000 * GPUH))
    world.walk_price(14 * FEED_UNIT // 10)
    equity = lens.equity(alice)
    with boa.env.prank(world.keeper):
        m.liquidate(alice)
    assert event_of(m, "BadDebt").amount == -equity
    exhausted = event_of(m, "InsuranceExhausted")
    deficit = m.deficit()
    assert deficit > 0
    assert (exhausted.deficit, exhausted.insurance) == (deficit, -deficit)
    assert m.market()[5] == -deficit

    world.deposit(carol, 1_000 * world.unit)
    _refused(world, carol, 10 * GPUH, DEFICIT_PAUSED)
    _refused(world, bob, -10 * GPUH, DEFICIT_PAUSED)
    with branch(world):
        _trade(world, bob, 40_000 * GPUH)  # reductions and closes still work
        _trade(world, bob, 60_000 * GPUH)
        assert world.size_of(bob) == 0

    world.fund(world.insurer, deficit)
    with boa.env.prank(world.insurer):
        m.fund_insurance(deficit - 1)
    event = event_of(m, "InsuranceFunded")
    assert (event.sender, event.amount, event.deficit) == (world.insurer, deficit - 1, 1)
    _refused(world, carol, 10 * GPUH, DEFICIT_PAUSED)
    with boa.env.prank(world.insurer):
        m.fund_insurance(1)
    assert event_of(m, "InsuranceFunded").deficit == 0
    assert m.deficit() == 0
    assert m.market()[5] == 0
    _trade(world, carol, 10 * GPUH)


def test_negative_insurance_without_deficit_pauses_new_risk(world):
    """Traders' unrealised gains beyond the fund make it negative: new risk is
    refused (INSURANCE_EXHAUSTED) though no liquidation recorded a deficit;
    reductions still work."""
    m, alice, bob = world.market, world.traders[0], world.traders[1]
    _open(world, alice, 45_000 * world.unit, 100_000 * GPUH)
    world.walk_price(23 * FEED_UNIT // 10)
    assert m.market()[5] < 0 and m.deficit() == 0
    world.deposit(bob, 1_000 * world.unit)
    assert _quote(world, bob, GPUH).refusal == INSURANCE_EXHAUSTED
    _refused(world, bob, GPUH, INSURANCE_EXHAUSTED)
    _refused(world, alice, GPUH, INSURANCE_EXHAUSTED)
    _trade(world, alice, -10_000 * GPUH)
    assert world.size_of(alice) == 90_000 * GPUH


# ---------------------------------------------------------------------------------
# Guardian, roles, parameters
# ---------------------------------------------------------------------------------


def test_guardian_pause_stops_new_risk_only(world):
    """Paused: opens, increases and flips are refused; reductions, closes, deposits,
    withdrawals and liquidations go on. Unpausing restores everything."""
    m, alice, bob, carol = world.market, *world.traders[:3]
    _open(world, alice, 2_300 * world.unit, 10_000 * GPUH)
    world.deposit(bob, 1_000 * world.unit)
    with boa.env.prank(world.admin):
        m.pause()
    event = event_of(m, "PauseChanged")
    assert (event.paused, event.account) == (True, world.admin)
    assert m.paused() is True
    assert _quote(world, bob, GPUH).refusal == GUARDIAN_PAUSED
    for account, size_delta in ((bob, GPUH), (bob, -GPUH), (alice, GPUH),
                                (alice, -20_000 * GPUH)):
        _refused(world, account, size_delta, GUARDIAN_PAUSED)
    _trade(world, alice, -1_000 * GPUH)
    world.deposit(alice, world.unit)
    world.deposit(carol, world.unit)
    with boa.env.prank(alice):
        m.withdraw_margin(world.unit)
    with boa.env.prank(bob):
        m.withdraw_margin(world.unit)
    with branch(world):
        _trade(world, alice, -9_000 * GPUH)
        assert world.size_of(alice) == 0
    with branch(world):
        _make_liquidatable(world, alice)
        with boa.env.prank(world.keeper):
            m.liquidate(alice)
    with boa.env.prank(world.admin):
        m.unpause()
    event = event_of(m, "PauseChanged")
    assert (event.paused, event.account) == (False, world.admin)
    assert m.paused() is False
    _trade(world, bob, GPUH)


def test_admin_holds_the_market_roles(world):
    m = world.market
    assert m.RISK_ADMIN_ROLE() == RISK_ADMIN_ROLE
    assert m.GUARDIAN_ROLE() == GUARDIAN_ROLE
    for role in (DEFAULT_ADMIN_ROLE, RISK_ADMIN_ROLE, GUARDIAN_ROLE):
        assert m.hasRole(role, world.admin)
        assert not m.hasRole(role, world.stranger)


@pytest.mark.parametrize("call", ["set_risk_params", "set_fee_recipient", "set_order_window",
                                  "pause", "unpause"])
def test_strangers_cannot_administer(world, call):
    m = world.market
    args = {
        "set_risk_params": (world.params.as_tuple(),),
        "set_fee_recipient": (world.stranger,),
        "set_order_window": (0, 600, 0),
        "pause": (),
        "unpause": (),
    }[call]
    with boa.env.prank(world.stranger), boa.reverts(MISSING_ROLE):
        getattr(m, call)(*args)


def test_risk_admin_and_guardian_are_separate_roles(world):
    """A risk admin sets parameters and the order window but cannot pause; a guardian
    pauses but cannot set either."""
    m, risk, guardian = world.market, world.traders[2], world.traders[3]
    with boa.env.prank(world.admin):
        m.grantRole(RISK_ADMIN_ROLE, risk)
        m.grantRole(GUARDIAN_ROLE, guardian)
    with boa.env.prank(risk):
        m.set_risk_params(replace(world.params, taker_fee_bps=20).as_tuple())
        m.set_order_window(0, 600, 0)
        with boa.reverts(MISSING_ROLE):
            m.pause()
    with boa.env.prank(guardian):
        m.pause()
        with boa.reverts(MISSING_ROLE):
            m.set_risk_params(world.params.as_tuple())
        with boa.reverts(MISSING_ROLE):
            m.set_fee_recipient(guardian)
        with boa.reverts(MISSING_ROLE):
            m.set_order_window(0, 600, 0)
    assert m.paused() and m.risk_params()[5] == 20


def test_set_fee_recipient(world):
    m, new = world.market, world.traders[3]
    with boa.env.prank(world.admin):
        with boa.reverts(ZERO_FEE_RECIPIENT):
            m.set_fee_recipient("0x" + "00" * 20)
        m.set_fee_recipient(new)
    event = event_of(m, "FeeRecipientChanged")
    assert (event.recipient, event.admin) == (new, world.admin)
    assert m.fee_recipient() == new


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"skew_scale": 0}, BAD_SCALE),
        ({"max_long_oi": 0}, BAD_SCALE),
        ({"max_short_oi": 0}, BAD_SCALE),
        ({"skew_scale": 2**64}, BAD_SCALE),
        ({"max_long_oi": MAX_OI + 1}, BAD_SCALE),
        ({"max_short_oi": MAX_OI + 1}, BAD_SCALE),
        ({"max_long_oi": 2**64 - 1}, BAD_SCALE),  # the old limit: too wide for exact maths
        ({"max_short_oi": 2**64}, BAD_SCALE),
        ({"initial_margin_bps": 199, "maintenance_margin_bps": 100}, BAD_MARGINS),
        ({"initial_margin_bps": BPS + 1}, BAD_MARGINS),
        ({"maintenance_margin_bps": 0}, BAD_MARGINS),
        ({"maintenance_margin_bps": 950}, BAD_MARGINS),  # 950 + 50 = initial
        ({"liquidation_fee_bps": 600}, BAD_MARGINS),
        ({"taker_fee_bps": 101, "maker_fee_bps": 5}, BAD_FEES),
        ({"maker_fee_bps": 11}, BAD_FEES),
        ({"initial_margin_bps": 2_000, "liquidation_fee_bps": 501}, BAD_FEES),
        ({"min_keeper_fee": 2**96}, BAD_KEEPER_OR_FUNDING),
        ({"max_funding_velocity": 10 * WAD + 1}, BAD_KEEPER_OR_FUNDING),
        ({"max_funding_rate": WAD + 1}, BAD_KEEPER_OR_FUNDING),
    ],
    ids=lambda value: "-".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, dict) else None,
)
@pytest.mark.parametrize("max_move_bps", [1, 0], ids=["move-1bp", "no-move-limit"])
def test_set_risk_params_refuses_each_invalid_parameter(world, changes, reason,
                                                         max_move_bps):
    """Each parameter's own check, with a feed move limit of 1 bp (which the feed
    check passes wherever any move limit could) and with none (which covers no
    parameters at all): the parameters are validated before the feed's move limit,
    so an invalid parameter always gets its own reason (a zero maintenance margin
    too, which no move limit could cover)."""
    set_move_limit(world, max_move_bps)
    with boa.env.prank(world.admin), boa.reverts(reason):
        world.market.set_risk_params(replace(world.params, **changes).as_tuple())


def test_set_risk_params_accepts_every_boundary(world):
    """Every parameter at its limit, with a feed move limit of 1 bp. A maintenance
    margin of 1 bp is the one limit no feed can cover now (a 1 bp move plus the
    liquidation fee on it reaches it): the lowest is 2 bps, without fees."""
    m = world.market
    set_move_limit(world, 1)
    for changes in (
        {"skew_scale": 2**64 - 1, "max_long_oi": MAX_OI, "max_short_oi": MAX_OI},
        {"skew_scale": 1, "max_long_oi": 1, "max_short_oi": 1},
        {"initial_margin_bps": 200, "maintenance_margin_bps": 149, "liquidation_fee_bps": 50},
        {"initial_margin_bps": BPS, "maintenance_margin_bps": 2, "liquidation_fee_bps": 500,
         "taker_fee_bps": 0, "maker_fee_bps": 0},
        {"taker_fee_bps": 100, "maker_fee_bps": 100},
        {"taker_fee_bps": 0, "maker_fee_bps": 0, "liquidation_fee_bps": 0,
         "min_keeper_fee": 0},
        {"min_keeper_fee": 2**96 - 1, "max_funding_velocity": 10 * WAD,
         "max_funding_rate": WAD},
    ):
        params = replace(world.params, **changes)
        with boa.env.prank(world.admin):
            m.set_risk_params(params.as_tuple())
        event = event_of(m, "RiskParametersChanged")
        assert event.params == params.as_tuple() == tuple(m.risk_params())
        assert event.admin == world.admin
    with boa.env.prank(world.admin), boa.reverts(MOVE_NOT_COVERED):
        m.set_risk_params(replace(world.params, maintenance_margin_bps=1, taker_fee_bps=0,
                                  maker_fee_bps=0, liquidation_fee_bps=0).as_tuple())


def test_set_risk_params_accrues_under_the_old_parameters_and_keeps_the_pause(world):
    """Funding up to the change accrues at the old velocity; the guardian's pause
    survives a parameter change."""
    m, alice = world.market, world.traders[0]
    skew = 100_000 * GPUH
    _open(world, alice, 100_000 * world.unit, skew)
    opened = now()
    boa.env.time_travel(seconds=DAY // 2)
    expected = perp.funding_step(0, 0, now() - opened, world.price_wad(), skew,
                                 params_of(world))
    with boa.env.prank(world.admin):
        m.pause()
        m.set_risk_params(replace(world.params, max_funding_velocity=0).as_tuple())
    accrued = event_of(m, "FundingAccrued")
    assert (accrued.funding_index, accrued.funding_rate) == expected
    assert m.paused() is True
    boa.env.time_travel(seconds=3_600)
    assert m.funding_rate() == expected[1]  # no velocity any more: the rate holds


# ---------------------------------------------------------------------------------
# Fees, insurance, donations
# ---------------------------------------------------------------------------------


def test_collect_fees_pays_the_fee_recipient(world):
    """Anyone may trigger it; the fees go to `fee_recipient`, leave `cash`, and leave
    the insurance fund untouched."""
    m, alice, bob = world.market, world.traders[0], world.traders[1]
    world.deposit(alice, 2_000 * world.unit)
    world.deposit(bob, 2_000 * world.unit)
    fees = _check_trade(world, alice, 3_000 * GPUH).fee
    fees += _check_trade(world, bob, -5_000 * GPUH).fee
    insurance, cash = m.market()[5], m.cash()
    with boa.env.prank(world.stranger):
        assert m.collect_fees() == fees
    event = event_of(m, "FeesCollected")
    assert (event.recipient, event.amount) == (world.fee_recipient, fees)
    assert world.asset.balanceOf(world.fee_recipient) == fees
    assert m.cash() == cash - fees
    assert m.market()[4] == 0 and m.market()[5] == insurance
    with boa.env.prank(world.stranger), boa.reverts(NO_FEES):
        m.collect_fees()


def test_collect_fees_follows_the_fee_recipient(world):
    m, new = world.market, world.traders[3]
    _open(world, world.traders[0], 1_000 * world.unit, 1_000 * GPUH)
    with boa.env.prank(world.admin):
        m.set_fee_recipient(new)
    fees = m.market()[4]
    m.collect_fees()
    assert world.asset.balanceOf(new) == fees and world.asset.balanceOf(world.fee_recipient) == 0


def test_fund_insurance_adds_to_the_fund(world):
    m = world.market
    before = m.market()[5]
    world.fund(world.stranger, 123 * world.unit)
    with boa.env.prank(world.stranger):
        m.fund_insurance(123 * world.unit)
    event = event_of(m, "InsuranceFunded")
    assert (event.sender, event.amount, event.deficit) == (world.stranger, 123 * world.unit, 0)
    assert m.market()[5] == before + 123 * world.unit


def test_a_donation_changes_nothing(world):
    """A plain transfer to the market is not in `cash`: no margin, fee, insurance or
    view moves, and nobody can withdraw it."""
    m, alice, bob, lens = world.market, world.traders[0], world.traders[1], _lens(world)
    _open(world, alice, 1_000 * world.unit, 2_000 * GPUH)
    world.deposit(bob, 500 * world.unit)

    def snapshot():
        return (
            m.cash(), m.market(), m.position(alice), m.position(bob),
            lens.equity(alice), lens.withdrawable(alice), lens.withdrawable(bob),
            lens.margin_ratio(alice), lens.liquidation_price(alice), lens.fill_price(GPUH),
        )

    before = snapshot()
    world.asset.mint(world.stranger, 50_000 * world.unit)
    with boa.env.prank(world.stranger):
        world.asset.transfer(m.address, 50_000 * world.unit)
    assert snapshot() == before
    with boa.env.prank(bob), boa.reverts(EXCEEDS_MARGIN):
        m.withdraw_margin(500 * world.unit + 1)


# ---------------------------------------------------------------------------------
# Index out of range
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("feed_value", [0, -5 * FEED_UNIT, 10**20],
                         ids=["zero", "negative", "above-2**96-wad"])
def test_a_non_positive_or_out_of_range_index_stops_trading(world, feed_value):
    """Reachable only if the oracle admin widens the hub's bounds (the default minimum
    is 1): the market then reads price 0 / not fresh and refuses executions,
    withdrawals with a position and liquidations with NOT_POSITIVE; deposits, commits
    and withdrawals without a position still work."""
    m, alice, bob = world.market, world.traders[0], world.traders[1]
    _open(world, alice, 2_300 * world.unit, 10_000 * GPUH)
    with boa.env.prank(world.oracle_admin):
        world.hub.set_feed_config(INDEX_FEED_ID, -10 * FEED_UNIT, 10**21, 0, DAY, True)
    assert world.set_price(feed_value)
    assert m.index_price() == (0, False)
    for size_delta in (GPUH, -10_000 * GPUH):
        _execution_reverts(world, alice, size_delta, NOT_POSITIVE)
    with boa.env.prank(alice), boa.reverts(NOT_POSITIVE):
        m.withdraw_margin(1)
    with boa.env.prank(world.keeper), boa.reverts(NOT_POSITIVE):
        m.liquidate(alice)
    world.deposit(alice, world.unit)
    world.deposit(bob, world.unit)
    with boa.env.prank(bob):
        m.withdraw_margin(world.unit)


# ---------------------------------------------------------------------------------
# Accounting limits
# ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _world18() -> PerpWorld:
    return build_perp_world(asset_decimals=18, label="pm18")


@pytest.fixture
def world18(_world18):
    yield from restoring(_world18)


def test_the_sum_of_margins_is_capped_at_its_128_bits(world18):
    """The margin book holds the sum of all margins in 128 bits: a deposit that would
    take the sum beyond 2**128-1 is refused, whoever makes it, so it never spills into
    the fee book next to it. Up to the limit everything works: no fees appear, both
    margins come back in full, and a withdrawal makes room again."""
    w = world18
    m, alice, bob = w.market, w.traders[0], w.traders[1]
    assert m.market()[3] == 0
    w.fund(alice, MASK128 + 1)
    with boa.env.prank(alice), boa.reverts(AMOUNT_TOO_LARGE):
        m.deposit_margin(MASK128 + 1)  # one account alone
    with boa.env.prank(alice):
        m.deposit_margin(MASK128 - 5)
    w.deposit(bob, 5)
    assert m.market()[3:5] == (MASK128, 0)
    for account in (alice, bob):
        w.fund(account, 1)
        with boa.env.prank(account), boa.reverts(AMOUNT_TOO_LARGE):
            m.deposit_margin(1)  # the sum, whichever account adds to it
    with boa.reverts(NO_FEES):
        m.collect_fees()
    with boa.env.prank(bob):
        m.withdraw_margin(5)
    assert m.market()[3:5] == (MASK128 - 5, 0)
    with boa.env.prank(bob):
        m.deposit_margin(1)  # room again
        m.withdraw_margin(1)
    with boa.env.prank(alice):
        m.withdraw_margin(MASK128 - 5)
    assert m.market()[3:5] == (0, 0)
    # Everything minted to them came back; the market holds its insurance only.
    assert (w.asset.balanceOf(alice), w.asset.balanceOf(bob)) == (MASK128 + 2, 6)
    assert m.cash() == w.asset.balanceOf(m.address) == 10_000 * w.unit


def test_a_settled_gain_never_overflows_the_margin_fields(world18):
    """Alice's margin is the whole 128 bits. She buys 1,000 GPU-hours (the premium and
    fee bring it just under) and the index rises 10 %. A withdrawal settles nothing, so
    a 1-wei one goes through; her 200 USD gain settles into the margin only when an
    order executes, and that would take the sum of margins past its 128 bits: the
    execution is refused, her position stays 1,000 GPU-hours and the fee book is
    untouched."""
    w = world18
    m, alice = w.market, w.traders[0]
    size = 1_000 * GPUH
    _open(w, alice, MASK128, size)
    fees = m.market()[4]
    w.walk_price(22 * FEED_UNIT // 10)
    assert _lens(w).equity(alice) > MASK128
    margin = w.margin_of(alice)
    with boa.env.prank(alice):
        m.withdraw_margin(1)
    assert w.margin_of(alice) == margin - 1
    _refused(w, alice, -GPUH, AMOUNT_TOO_LARGE)
    _refused(w, alice, GPUH, AMOUNT_TOO_LARGE)
    assert w.size_of(alice) == size
    assert m.market()[4] == fees


def test_erc165_answers_for_erc165_and_access_control_only(world):
    """ERC-165 0x01ffc9a7 and snekmate's IAccessControl 0x7965db0b (the XOR of hasRole,
    getRoleAdmin, grantRole, revokeRole and renounceRole); anything else is refused."""
    from eth_utils import keccak

    def selector(signature: str) -> int:
        return int.from_bytes(keccak(text=signature)[:4], "big")

    access = 0
    for signature in ("hasRole(bytes32,address)", "getRoleAdmin(bytes32)",
                      "grantRole(bytes32,address)", "revokeRole(bytes32,address)",
                      "renounceRole(bytes32,address)"):
        access ^= selector(signature)
    assert access == 0x7965DB0B
    assert selector("supportsInterface(bytes4)") == 0x01FFC9A7
    market = world.market
    assert market.supportsInterface((0x01FFC9A7).to_bytes(4, "big"))
    assert market.supportsInterface(access.to_bytes(4, "big"))
    for other in (0xFFFFFFFF, 0, 0x36372B07, 0x87DFE5A0):
        assert not market.supportsInterface(other.to_bytes(4, "big")), hex(other)
