"""PerpMarket two-step orders (issue 18, v2.1), against the real suite (signed OracleHub
and its FeedAdapter, a test stablecoin, the factory, one market, the PerpLens).

The order lifecycle: `commit_order` reserves the keeper fee in the margin (nothing moves:
margin, book, cash and insurance stay; no withdrawal while the order is pending), one
pending order per account; `execute_order` (anyone, paid the fee in force
from the trader's margin into its own margin in the market, no token moves) fills at the
index of the first oracle round OBSERVED strictly after the commit (a same-block round,
or a report stored after the commit but observed before it, is not eligible), within
`[commit + min_delay, commit + max_age]`; past that only `cancel_order` (anyone) remains,
and it just deletes the order. A trade refused at execution (its own checks) cancels the
order (`OrderFailed`) and still pays the keeper min(fee, margin): nobody can hold an order
back; only the checks before the trade (no order, too early, expired, no round after the
commit, stale or halted index, too many rounds, too little gas) revert and keep it. The
trade runs in `settle_order`, which only the market may call. The order window and its
validation, the events, `PerpLens.order_status`.

Then the rest of the v2 rules an order meets: the premium of a trade crossing zero skew
paid leg by leg; a halted feed (a refused move) stops executions, liquidations and
withdrawals with a position but not deposits, commits or cancellations; risk parameters
and new risk refused while the feed's move limit could take a position from maintenance
to bad debt in one update; fees never withdrawable."""

from __future__ import annotations

from dataclasses import replace

import boa
import pytest
from boa.contracts.base_evm_contract import BoaError

from gpushares import reasons
from tests.contracts import deployers
from tests.contracts.perp_helpers import (
    BPS,
    DAY,
    FEED_TICK,
    FEED_UNIT,
    FREE_CASH,
    GPUH,
    INDEX_FEED_ID,
    INSURANCE_EXHAUSTED,
    MAX_UINT,
    MISSING_ROLE,
    MOVE_NOT_COVERED,
    NO_MARGIN_FOR_KEEPER,
    NO_ORDER,
    NO_ROUND_AFTER,
    ORDER_EXPIRED,
    ORDER_NOT_EXPIRED,
    ORDER_PENDING,
    ORDER_TOO_EARLY,
    PAST_ROUND_NOT_POSITIVE,
    RISK_ADMIN_ROLE,
    SLIPPAGE,
    STALE,
    WAD,
    PerpWorld,
    branch,
    build_perp_world,
    ceil_div,
    decode_refusal,
    event_of,
    events_of,
    now,
    premium_and_fill,
    restoring,
    round_after_commit,
    set_move_limit,
)

PRICE = 2 * FEED_UNIT
MASK88 = 2**88 - 1
MASK96 = 2**96 - 1
MAX_ORDER_SIZE = 2**100
MIN_AGE, MAX_AGE = 60, 30 * DAY
WINDOW_OUT_OF_RANGE = reasons.PERP_ORDER_WINDOW_OUT_OF_RANGE
ORDER_TOO_LARGE = reasons.PERP_ORDER_SIZE_TOO_LARGE
TOO_MANY_ROUNDS = reasons.PERP_TOO_MANY_ROUNDS_SINCE

NONE, WAITING, EXECUTABLE, EXPIRED = 0, 1, 2, 3  # PerpLens.order_status


@pytest.fixture(scope="module")
def _world() -> PerpWorld:
    return build_perp_world(label="po")


@pytest.fixture
def world(_world):
    """The 6-decimal market (10,000 tUSD of insurance, index 2 USD, move limit 4 %,
    heartbeat one day, default order window: no delay, two days, no keeper fee)."""
    yield from restoring(_world)


# ---------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------


def _status(w: PerpWorld, account) -> int:
    return w.lens.order_status(w.market.address, account)


def _window(w: PerpWorld, min_delay: int, max_age: int, keeper_fee: int) -> None:
    with boa.env.prank(w.admin):
        w.market.set_order_window(min_delay, max_age, keeper_fee)


def _trade(w: PerpWorld, account, size_delta: int, acceptable: int | None = None) -> None:
    w.commit(account, size_delta, acceptable)
    round_after_commit(w)
    w.execute(account)


def _latest_round(w: PerpWorld) -> int:
    return w.hub.trading_state(INDEX_FEED_ID)[2]


# ---------------------------------------------------------------------------------
# The order window
# ---------------------------------------------------------------------------------


def test_the_default_order_window_is_two_heartbeats_clamped(world):
    """At deploy: no delay, no keeper fee, orders live two heartbeats of the index feed,
    at least a minute and at most 30 days."""
    m = world.market
    assert m.order_window() == (0, 2 * DAY, 0)
    assert (m.oracle_hub(), m.index_feed_id()) == (world.hub.address, INDEX_FEED_ID)
    view = world.hub.feed(INDEX_FEED_ID)
    for heartbeat, max_age in ((10, MIN_AGE), (30, MIN_AGE), (31, 62), (2 * 3_600, 4 * 3_600),
                               (15 * DAY, MAX_AGE), (20 * DAY, MAX_AGE)):
        with boa.env.prank(world.oracle_admin):
            world.hub.set_feed_config(INDEX_FEED_ID, view.min_answer, view.max_answer, 400,
                                      heartbeat, True)
        with boa.env.prank(world.admin):
            market = deployers.PERP_MARKET.deploy(world.asset.address, world.feed.address,
                                                  world.fee_recipient, world.admin)
        assert market.order_window() == (0, max_age, 0), heartbeat


@pytest.mark.parametrize("window", [(0, MIN_AGE - 1, 0), (0, MAX_AGE + 1, 0), (60, 60, 0),
                                    (61, 60, 0), (0, 600, 2**96)],
                         ids=["age<1min", "age>30days", "delay=age", "delay>age", "fee>96bits"])
def test_set_order_window_refuses_each_out_of_range_value(world, window):
    with boa.env.prank(world.admin), boa.reverts(WINDOW_OUT_OF_RANGE):
        world.market.set_order_window(*window)


def test_set_order_window_accepts_every_boundary_and_emits(world):
    m, risk = world.market, world.traders[3]
    for window in ((0, MIN_AGE, 0), (MIN_AGE - 1, MIN_AGE, MASK96), (MAX_AGE - 1, MAX_AGE, 0),
                   (30, 600, 7 * world.unit)):
        _window(world, *window)
        event = event_of(m, "OrderWindowChanged")
        assert (event.min_delay, event.max_age, event.keeper_fee, event.admin) == (
            *window, world.admin)
        assert m.order_window() == window
    with boa.env.prank(world.stranger), boa.reverts(MISSING_ROLE):
        m.set_order_window(0, 600, 0)
    with boa.env.prank(world.admin):
        m.grantRole(RISK_ADMIN_ROLE, risk)
    with boa.env.prank(risk):
        m.set_order_window(1, 61, 1)
    assert m.order_window() == (1, 61, 1)


# ---------------------------------------------------------------------------------
# Commit
# ---------------------------------------------------------------------------------


def test_commit_reserves_the_keeper_fee_and_records_the_order(world):
    """A commit moves nothing: the margin, the margin book, `cash` and the insurance fund
    stay (the keeper fee is reserved in the margin, taken only at execution). The order
    keeps the size, the acceptable price (capped at 88 bits; the event shows it as
    given), the commit time and the feed's latest round; `order()` shows the keeper fee
    in force (a window change shows at once)."""
    m, alice = world.market, world.traders[0]
    fee = 3 * world.unit
    _window(world, 0, 600, fee)
    world.deposit(alice, 100 * world.unit)
    cash, book, insurance = m.cash(), m.market()[3], m.market()[5]
    balance = world.asset.balanceOf(m.address)
    round_id = _latest_round(world)
    world.commit(alice, 100 * GPUH, MAX_UINT)
    event = event_of(m, "OrderCommitted")
    assert (event.account, event.size_delta, event.acceptable_price, event.keeper_fee,
            event.commit_round) == (alice, 100 * GPUH, MAX_UINT, fee, round_id)
    assert tuple(m.order(alice)) == (100 * GPUH, MASK88, fee, now(), round_id)
    assert world.margin_of(alice) == 100 * world.unit
    assert (m.cash(), m.market()[3], m.market()[5]) == (cash, book, insurance)
    assert world.asset.balanceOf(m.address) == balance
    assert _status(world, alice) == WAITING
    # A sell's acceptable price is kept as given; a margin of exactly the fee commits.
    bob = world.traders[1]
    world.deposit(bob, fee)
    world.commit(bob, -5 * GPUH, 19 * WAD // 10)
    assert tuple(m.order(bob))[:3] == (-5 * GPUH, 19 * WAD // 10, fee)
    assert world.margin_of(bob) == fee
    _window(world, 0, 600, 4 * world.unit)  # the fee in force is the one shown
    assert m.order(alice)[2] == m.order(bob)[2] == 4 * world.unit


def test_no_withdrawal_while_an_order_is_pending(world):
    """While an order is pending no margin can be withdrawn, not even above the keeper
    fee (PERP_ORDER_ALREADY_PENDING; the lens shows 0 withdrawable): its fee stays
    reserved, and a trader who has seen the round's price cannot take the margin away
    to make the trade fail. Deposits go on. Once the order is gone (executed, or
    cancelled after expiry) the margin is free again."""
    m, alice, bob = world.market, world.traders[0], world.traders[1]
    fee = 3 * world.unit
    _window(world, 0, 60, fee)
    world.deposit(alice, 100 * world.unit)
    world.deposit(bob, 100 * world.unit)
    world.commit(alice, 10 * GPUH)
    world.commit(bob, -10 * GPUH)
    for account in (alice, bob):
        assert world.lens.withdrawable(m.address, account) == 0
        for amount in (1, 97 * world.unit, 100 * world.unit):
            with boa.env.prank(account), boa.reverts(ORDER_PENDING):
                m.withdraw_margin(amount)
    world.deposit(alice, world.unit)  # deposits always work
    assert world.margin_of(alice) == 101 * world.unit
    round_after_commit(world)
    world.execute(alice)
    assert world.lens.withdrawable(m.address, alice) > 0
    with boa.env.prank(alice):
        m.withdraw_margin(world.unit)
    boa.env.time_travel(seconds=61)  # Bob's order expires unexecuted
    with boa.env.prank(bob), boa.reverts(ORDER_PENDING):
        m.withdraw_margin(1)
    m.cancel_order(bob)
    assert world.lens.withdrawable(m.address, bob) == 100 * world.unit
    with boa.env.prank(bob):
        m.withdraw_margin(100 * world.unit)  # all of it
    assert world.margin_of(bob) == 0 and world.asset.balanceOf(bob) == 100 * world.unit


def test_commit_needs_margin_for_the_keeper_fee_and_a_bounded_size(world):
    m, alice = world.market, world.traders[0]
    _window(world, 0, 600, 3 * world.unit)
    world.deposit(alice, 3 * world.unit - 1)
    with boa.reverts(NO_MARGIN_FOR_KEEPER):
        world.commit(alice, GPUH)
    with boa.reverts(reasons.PERP_ZERO_SIZE):
        world.commit(alice, 0)
    _window(world, 0, 600, 0)
    for size in (MAX_ORDER_SIZE + 1, -MAX_ORDER_SIZE - 1):
        with boa.reverts(ORDER_TOO_LARGE):
            world.commit(alice, size)
    for size in (MAX_ORDER_SIZE, -MAX_ORDER_SIZE):
        with boa.env.anchor():
            world.commit(alice, size)
            assert m.order(alice)[0] == size


def test_one_pending_order_per_account(world):
    m, alice, bob = world.market, world.traders[0], world.traders[1]
    world.deposit(alice, 1_000 * world.unit)
    world.deposit(bob, 1_000 * world.unit)
    world.commit(alice, 100 * GPUH)
    with boa.reverts(ORDER_PENDING):
        world.commit(alice, -100 * GPUH)
    world.commit(bob, -100 * GPUH)  # another account may
    round_after_commit(world)
    world.execute(alice)
    assert tuple(m.order(alice)) == (0, 0, 0, 0, 0) and _status(world, alice) == NONE
    world.commit(alice, -100 * GPUH)  # once executed, the next one
    assert m.order(alice)[0] == -100 * GPUH


def test_commit_needs_no_fresh_index(world):
    """A commit does not read the price: it works on a stale index (the execution
    waits for a fresh round after it; on a halted feed, see below)."""
    m, alice = world.market, world.traders[0]
    world.deposit(alice, 1_000 * world.unit)
    boa.env.time_travel(seconds=DAY + 1)
    assert m.index_price()[1] is False
    world.commit(alice, 100 * GPUH)
    assert m.order(alice)[0] == 100 * GPUH
    with boa.reverts(STALE):
        world.execute(alice)
    round_after_commit(world)
    world.execute(alice)
    assert world.size_of(alice) == 100 * GPUH


# ---------------------------------------------------------------------------------
# Execute: which round
# ---------------------------------------------------------------------------------


def test_execute_needs_a_round_observed_after_the_commit(world):
    """Right after the commit there is no round after it; a round observed in the
    commit's own second (the same block) is not after it either; the next one is."""
    m, alice = world.market, world.traders[0]
    world.deposit(alice, 1_000 * world.unit)
    boa.env.time_travel(seconds=10)  # the last report is 10 s old
    world.commit(alice, 100 * GPUH)
    committed = now()
    with boa.reverts(NO_ROUND_AFTER):
        world.execute(alice)
    assert _status(world, alice) == WAITING
    assert world.set_price(PRICE)  # observed now: the commit's second
    assert world.hub.trading_state(INDEX_FEED_ID)[1] == committed
    with boa.reverts(NO_ROUND_AFTER):
        world.execute(alice)
    assert _status(world, alice) == WAITING
    boa.env.time_travel(seconds=1)
    assert world.set_price(PRICE + 1)
    assert _status(world, alice) == EXECUTABLE
    world.execute(alice)
    event = event_of(m, "OrderExecuted")
    assert (event.round_id, event.price) == (_latest_round(world), (PRICE + 1) * FEED_TICK)


def test_a_report_observed_before_the_commit_is_skipped(world):
    """A report that lands after the commit but was observed before it (public before
    the commit: its price was known) is skipped, and the order waits for the next
    round: it fills at the later round's price, never at the known one."""
    m, alice = world.market, world.traders[0]
    world.deposit(alice, 1_000 * world.unit)
    boa.env.time_travel(seconds=100)
    world.commit(alice, 100 * GPUH)
    committed, commit_round = now(), _latest_round(world)
    assert m.order(alice)[4] == commit_round
    known = PRICE * 102 // 100
    assert world.set_price(known, observed_at=committed - 5)  # stored now, observed before
    assert _latest_round(world) == commit_round + 1
    with boa.reverts(NO_ROUND_AFTER):
        world.execute(alice)
    assert _status(world, alice) == WAITING
    later = PRICE * 99 // 100
    boa.env.time_travel(seconds=1)
    assert world.set_price(later)
    world.execute(alice)
    executed = event_of(m, "OrderExecuted")
    assert (executed.account, executed.round_id, executed.price) == (
        alice, commit_round + 2, later * FEED_TICK)
    assert event_of(m, "PositionModified").index_price == later * FEED_TICK
    assert m.position(alice)[2] == later * FEED_TICK


def test_the_first_round_after_the_commit_is_used_not_the_latest(world):
    """Later rounds do not change the fill: the first round observed after the commit
    sets it (funding accrues at the latest index)."""
    m, alice = world.market, world.traders[0]
    world.deposit(alice, 1_000 * world.unit)
    world.commit(alice, 100 * GPUH)
    commit_round = _latest_round(world)
    first = PRICE * 101 // 100
    round_after_commit(world, first)
    assert world.next_round(PRICE * 103 // 100)
    assert world.next_round(PRICE * 104 // 100)
    world.execute(alice)
    executed = event_of(m, "OrderExecuted")
    assert (executed.round_id, executed.price) == (commit_round + 1, first * FEED_TICK)
    modified = event_of(m, "PositionModified")
    scale = world.params.skew_scale
    assert (modified.index_price, modified.fill_price) == (
        first * FEED_TICK, premium_and_fill(first * FEED_TICK, 0, 100 * GPUH, scale,
                                    world.value_scale)[1])
    assert event_of(m, "FundingAccrued").index_price == PRICE * 104 // 100 * FEED_TICK


@pytest.mark.parametrize(("skipped", "executes"), [(31, True), (32, False)])
def test_the_round_search_looks_through_32_rounds(world, skipped, executes):
    """The search starts after the commit's round: 31 reports observed before the
    commit and the first after it are found; 32 such reports put the round after
    beyond the search (the order then waits for its expiry)."""
    m, alice = world.market, world.traders[0]
    world.deposit(alice, 1_000 * world.unit)
    boa.env.time_travel(seconds=100)
    world.commit(alice, 100 * GPUH)
    committed = now()
    for i in range(skipped):
        assert world.set_price(PRICE, observed_at=committed - 90 + i)
    boa.env.time_travel(seconds=1)
    assert world.set_price(PRICE + 7)
    if executes:
        world.execute(alice)
        assert event_of(m, "OrderExecuted").price == (PRICE + 7) * FEED_TICK
    else:
        with boa.reverts(TOO_MANY_ROUNDS):
            world.execute(alice)
        assert m.order(alice)[0] == 100 * GPUH


def test_a_non_positive_round_after_the_commit_refuses_the_execution(world):
    """With bounds the oracle admin widened, the first round after the commit may be
    zero: the order cannot fill at it, even once a positive round is the latest."""
    m, alice = world.market, world.traders[0]
    world.deposit(alice, 1_000 * world.unit)
    with boa.env.prank(world.oracle_admin):
        world.hub.set_feed_config(INDEX_FEED_ID, -10 * FEED_UNIT, 10**12, 0, DAY, True)
    world.commit(alice, 100 * GPUH)
    round_after_commit(world, 0)
    assert world.next_round(PRICE)
    assert m.index_price() == (PRICE * FEED_TICK, True)
    with boa.reverts(PAST_ROUND_NOT_POSITIVE):
        world.execute(alice)


@pytest.mark.parametrize("fee_units", [0, 1], ids=["no-keeper-fee", "keeper-fee"])
def test_a_trader_cannot_hold_an_order_back_by_making_executions_fail(world, fee_units):
    """The free option helper-12 found, closed. The plan: Alice commits a 10,000
    GPU-hour buy, makes the keepers' executions at the round after the commit (2.00
    USD) fail, and once the index has risen two rounds (+8 %) redeposits and executes
    it herself at the old price (or lets it expire after a fall). Taking the margin
    away after the commit is refused now (no withdrawal while an order is pending).
    Committing with too little margin for the trade (only the keeper fee) makes the
    trade fail, but the keeper's failed execution cancels the order (and pays the
    keeper): there is nothing left to execute later, at any price, by her or anyone,
    and no position."""
    m, alice = world.market, world.traders[0]
    fee = fee_units * world.unit
    _window(world, 0, 2 * DAY, fee)
    world.deposit(alice, 3_000 * world.unit)
    world.commit(alice, 10_000 * GPUH)
    with boa.env.prank(alice), boa.reverts(ORDER_PENDING):
        m.withdraw_margin(3_000 * world.unit - fee)  # cannot take it away
    # The other way in, Bob's: a commit with no margin beyond the keeper fee.
    bob = world.traders[1]
    world.deposit(bob, 3_000 * world.unit)
    with boa.env.prank(bob):
        m.withdraw_margin(3_000 * world.unit - fee)  # no order yet: allowed
    world.commit(bob, 10_000 * GPUH)
    round_after_commit(world)  # the round both orders are to fill at: 2.00 USD
    assert world.execute_refused(bob, reasons.PERP_MARGIN_DOES_NOT_COVER) == fee
    assert world.margin_of(world.keeper) == fee
    world.execute(alice)  # hers fills at the round after the commit, as committed
    assert world.size_of(alice) == 10_000 * GPUH
    world.walk_price(PRICE * 104 * 104 // 10_000)  # two rounds up, 4 % each
    world.deposit(bob, 3_000 * world.unit)
    for executor in (bob, world.keeper):
        with boa.env.prank(executor), boa.reverts(NO_ORDER):
            m.execute_order(bob)  # at the old round's price: no order to fill
    assert world.size_of(bob) == 0 and world.margin_of(bob) == 3_000 * world.unit
    assert _status(world, bob) == NONE


# ---------------------------------------------------------------------------------
# Execute: when, by whom, for what
# ---------------------------------------------------------------------------------


def test_the_minimum_delay_is_enforced(world):
    m, alice = world.market, world.traders[0]
    _window(world, 30, 600, 0)
    world.deposit(alice, 1_000 * world.unit)
    world.commit(alice, 100 * GPUH)
    committed = now()
    round_after_commit(world)
    with boa.reverts(ORDER_TOO_EARLY):
        world.execute(alice)
    assert _status(world, alice) == WAITING
    boa.env.time_travel(seconds=committed + 29 - now())
    with boa.reverts(ORDER_TOO_EARLY):
        world.execute(alice)
    boa.env.time_travel(seconds=1)
    assert _status(world, alice) == EXECUTABLE
    world.execute(alice)
    assert m.position(alice)[0] == 100 * GPUH


def test_an_expired_order_only_cancels_and_nothing_moves(world):
    """Up to `max_age` after the commit the order executes and cannot be cancelled;
    one second later it cannot execute, and anyone may cancel it: the order is just
    deleted (its fee was reserved in the margin, never taken: nothing to return)."""
    m, alice, stranger = world.market, world.traders[0], world.stranger
    fee = 2 * world.unit
    _window(world, 0, 60, fee)
    world.deposit(alice, 100 * world.unit)
    world.commit(alice, 10 * GPUH)
    committed = now()
    round_after_commit(world)
    boa.env.time_travel(seconds=committed + 60 - now())
    assert _status(world, alice) == EXECUTABLE
    with boa.env.prank(stranger), boa.reverts(ORDER_NOT_EXPIRED):
        m.cancel_order(alice)
    with branch(world):
        world.execute(alice)  # still in time
    boa.env.time_travel(seconds=1)
    assert _status(world, alice) == EXPIRED
    with boa.reverts(ORDER_EXPIRED):
        world.execute(alice)
    cash, book = m.cash(), m.market()[3]
    with boa.env.prank(stranger):
        m.cancel_order(alice)
    event = event_of(m, "OrderCancelled")
    assert (event.account, event.caller, event.keeper_fee) == (alice, stranger, fee)
    assert tuple(m.order(alice)) == (0, 0, 0, 0, 0) and _status(world, alice) == NONE
    assert world.margin_of(alice) == 100 * world.unit
    assert world.margin_of(stranger) == 0 and world.asset.balanceOf(stranger) == 0
    assert (m.cash(), m.market()[3]) == (cash, book)
    for call in (m.cancel_order, m.execute_order):
        with boa.env.prank(stranger), boa.reverts(NO_ORDER):
            call(alice)
    world.commit(alice, 10 * GPUH)  # a new order


def test_the_keeper_is_paid_the_fee_in_force_into_its_margin(world):
    """Anyone executes and receives the keeper fee in force at the execution (not the
    one at the commit), taken from the trader's margin and credited to the keeper's
    margin in the market: no token moves, `cash`, the sum of margins (but for the
    premium and fee the trade pays) and the insurance fund (but for the premium) stay.
    The keeper withdraws it like any margin."""
    m, alice = world.market, world.traders[0]
    keeper = boa.env.generate_address("orders-keeper")
    _window(world, 0, 600, 4 * world.unit)
    world.deposit(alice, 1_000 * world.unit)
    world.commit(alice, 1_000 * GPUH)
    fee = 9 * world.unit
    _window(world, 0, 600, fee)  # pending orders pay the fee in force
    round_after_commit(world)
    cash, book, insurance = m.cash(), m.market()[3], m.market()[5]
    balance = world.asset.balanceOf(m.address)
    price = world.price_wad()
    premium, fill = premium_and_fill(price, 0, 1_000 * GPUH, world.params.skew_scale,
                             world.value_scale)
    assert world.execute(alice, keeper) == fee
    executed = event_of(m, "OrderExecuted")
    assert (executed.account, executed.keeper, executed.round_id, executed.price,
            executed.keeper_fee) == (alice, keeper, _latest_round(world), price, fee)
    modified = event_of(m, "PositionModified")
    assert (modified.fill_price, modified.premium) == (fill, premium)
    assert modified.margin == 1_000 * world.unit - fee - premium - modified.fee
    assert world.margin_of(alice) == modified.margin
    assert m.position(keeper) == (0, fee, 0, 0)
    assert world.asset.balanceOf(keeper) == 0
    assert world.asset.balanceOf(m.address) == balance
    assert (m.cash(), m.market()[3]) == (cash, book - premium - modified.fee)
    assert m.market()[5] == insurance + premium  # the keeper fee is margin, not the fund's
    with boa.env.prank(keeper):
        m.withdraw_margin(fee)
    assert world.asset.balanceOf(keeper) == fee and m.position(keeper) == (0, 0, 0, 0)


def test_a_refused_trade_cancels_the_order_and_pays_the_keeper(world):
    """The acceptable price refuses the fill: the execution does not revert, it cancels
    the order (`OrderFailed` carries the refusal, ABI-encoded) and the keeper is paid
    the fee from the trader's margin into its own; the position, `cash`, the sum of
    margins and the fee book are unchanged. The order is gone: no later execution, no
    cancellation, and a new commit is possible at once."""
    m, alice = world.market, world.traders[0]
    fee = world.unit
    _window(world, 0, 60, fee)
    world.deposit(alice, 1_000 * world.unit)
    world.commit(alice, 1_000 * GPUH, PRICE * FEED_TICK)  # the premium puts it above
    round_after_commit(world)
    cash, book = m.cash(), m.market()[3:5]
    with boa.env.prank(world.keeper):
        assert m.execute_order(alice) == fee
    failed = event_of(m, "OrderFailed")
    assert (failed.account, failed.keeper, failed.round_id, failed.price,
            failed.keeper_fee) == (alice, world.keeper, _latest_round(world),
                                   world.price_wad(), fee)
    assert bytes(failed.reason)[:4] == bytes.fromhex("08c379a0")
    assert decode_refusal(failed.reason) == SLIPPAGE
    assert not events_of(m, "OrderExecuted") and not events_of(m, "PositionModified")
    assert tuple(m.order(alice)) == (0, 0, 0, 0, 0) and _status(world, alice) == NONE
    assert m.position(alice) == (0, 1_000 * world.unit - fee, 0, 0)
    assert m.position(world.keeper) == (0, fee, 0, 0)
    assert (m.cash(), m.market()[3:5]) == (cash, book)
    for call in (m.execute_order, m.cancel_order):
        with boa.reverts(NO_ORDER):
            call(alice)
    boa.env.time_travel(seconds=61)
    with boa.reverts(NO_ORDER):
        m.cancel_order(alice)
    world.commit(alice, 1_000 * GPUH)  # a new order at once
    round_after_commit(world)
    assert world.execute(alice) == fee
    assert world.size_of(alice) == 1_000 * GPUH


def test_a_refused_trade_pays_the_keeper_at_most_the_margin(world):
    """The fee in force rose after the commit beyond the trader's margin: the trade
    cannot pay it (PERP_MARGIN_DOES_NOT_COVER) and the keeper gets the whole margin,
    min(fee, margin), no more."""
    m, alice = world.market, world.traders[0]
    _window(world, 0, 60, world.unit)
    world.deposit(alice, 3 * world.unit)
    world.commit(alice, GPUH)
    _window(world, 0, 60, 5 * world.unit)
    round_after_commit(world)
    cash = m.cash()
    assert world.execute_refused(alice, reasons.PERP_MARGIN_DOES_NOT_COVER) == 3 * world.unit
    assert m.position(alice) == (0, 0, 0, 0)
    assert m.position(world.keeper) == (0, 3 * world.unit, 0, 0)
    assert m.cash() == cash


def _least_gas_that_goes_through(w: PerpWorld, account) -> int:
    """The least gas with which `execute_order(account)` does not revert (a binary
    search, each attempt in an anchor)."""
    def goes_through(gas: int) -> bool:
        with branch(w), boa.env.prank(w.keeper):
            try:
                w.market.execute_order(account, gas=gas)
            except BoaError:
                return False
            return True

    lo, hi = 100_000, 2_000_000
    assert not goes_through(lo) and goes_through(hi)
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if goes_through(mid) else (mid, hi)
    return hi


def test_an_execution_with_too_little_gas_reverts_and_keeps_the_order(world):
    """`execute_order` needs 300,000 gas left before it runs the trade (the trade's
    call gets 63/64 of it, far more than a trade costs): a keeper sending less is
    refused (PERP_SEND_MORE_GAS) and the order stays, unpaid. So no keeper can make a
    trade fail for want of gas, which would cancel the order and still pay it: at the
    least gas that goes through, a good order executes in full and a refused one fails
    with its own reason, never with an empty one (out of gas)."""
    m, alice, bob = world.market, world.traders[0], world.traders[1]
    _window(world, 0, 600, world.unit)
    world.deposit(alice, 1_000 * world.unit)
    world.deposit(bob, 1_000 * world.unit)
    world.commit(alice, 100 * GPUH)
    world.commit(bob, 100 * GPUH, PRICE * FEED_TICK)  # the premium puts it above
    round_after_commit(world)
    order = tuple(m.order(alice))
    least = _least_gas_that_goes_through(world, alice)
    assert 300_000 < least < 320_000, least  # the check, and what little runs before it
    for gas in (least - 1, 300_000, 250_000):
        with boa.env.prank(world.keeper), boa.reverts(reasons.PERP_SEND_MORE_GAS):
            m.execute_order(alice, gas=gas)
    assert tuple(m.order(alice)) == order and _status(world, alice) == EXECUTABLE
    assert world.margin_of(alice) == 1_000 * world.unit
    assert world.margin_of(world.keeper) == 0
    for gas in (least, least + 1_000, least + 50_000):
        with branch(world), boa.env.prank(world.keeper):
            assert m.execute_order(alice, gas=gas) == world.unit
            assert not events_of(m, "OrderFailed") and event_of(m, "OrderExecuted")
            assert world.size_of(alice) == 100 * GPUH
    least_refused = _least_gas_that_goes_through(world, bob)
    assert 300_000 < least_refused < 320_000, least_refused
    for gas in (least_refused, least_refused + 1_000, least_refused + 50_000):
        with branch(world), boa.env.prank(world.keeper):
            assert m.execute_order(bob, gas=gas) == world.unit
            assert decode_refusal(event_of(m, "OrderFailed").reason) == SLIPPAGE


def test_only_the_market_may_call_settle_order(world):
    """The trade runs in `settle_order`, a call the market makes to itself: anyone else
    (the trader, a keeper, the admin, a stranger) is refused (PERP_ONLY_THE_MARKET),
    whatever the arguments, so no trade skips the order's checks."""
    m, alice = world.market, world.traders[0]
    world.deposit(alice, 1_000 * world.unit)
    world.commit(alice, 100 * GPUH)
    round_after_commit(world)
    price = world.price_wad()
    position, order = m.position(alice), tuple(m.order(alice))
    for caller in (alice, world.keeper, world.admin, world.stranger):
        for args in ((alice, 100 * GPUH, MAX_UINT, price, price, 400, 0),
                     (alice, 100 * GPUH, MAX_UINT, price // 2, price, 400, 0)):
            with boa.env.prank(caller), boa.reverts(reasons.PERP_ONLY_THE_MARKET):
                m.settle_order(*args)
    assert (m.position(alice), tuple(m.order(alice))) == (position, order)
    world.execute(alice)  # the order itself still executes
    assert world.size_of(alice) == 100 * GPUH


def test_order_status_walks_through_every_value(world):
    m, alice = world.market, world.traders[0]
    _window(world, 5, 60, 0)
    world.deposit(alice, 1_000 * world.unit)
    assert _status(world, alice) == NONE
    world.commit(alice, 10 * GPUH)
    assert _status(world, alice) == WAITING  # no round after it
    round_after_commit(world)
    assert _status(world, alice) == WAITING  # the minimum delay
    boa.env.time_travel(seconds=5)
    assert _status(world, alice) == EXECUTABLE
    with branch(world):
        world.execute(alice)
        assert _status(world, alice) == NONE
    boa.env.time_travel(seconds=56)
    assert _status(world, alice) == EXPIRED
    m.cancel_order(alice)
    assert _status(world, alice) == NONE


def test_liquidation_keeps_a_pending_order(world):
    """A liquidation leaves a pending order; the fee it reserved was margin and went
    with the rest of it. The order can still only execute or expire: executed, its
    trade cannot pay (PERP_MARGIN_DOES_NOT_COVER), the order is cancelled and the
    keeper gets min(fee, margin) = 0; expired, it is just deleted."""
    m, alice = world.market, world.traders[0]
    fee = world.unit
    _window(world, 0, 60, fee)
    world.deposit(alice, 2_301 * world.unit)
    _trade(world, alice, 10_000 * GPUH)
    world.commit(alice, 1_000 * GPUH)
    order = tuple(m.order(alice))
    lp = world.lens.liquidation_price(m.address, alice)
    world.walk_price(lp // FEED_TICK)
    with boa.env.prank(world.keeper):
        m.liquidate(alice)
    assert m.position(alice) == (0, 0, 0, 0)
    assert tuple(m.order(alice)) == order
    keeper_margin = world.margin_of(world.keeper)
    with branch(world):
        assert world.execute_refused(alice, reasons.PERP_MARGIN_DOES_NOT_COVER) == 0
        assert world.margin_of(world.keeper) == keeper_margin
        assert m.position(alice) == (0, 0, 0, 0)
    boa.env.time_travel(seconds=61)
    m.cancel_order(alice)
    assert m.position(alice) == (0, 0, 0, 0) and tuple(m.order(alice)) == (0, 0, 0, 0, 0)


# ---------------------------------------------------------------------------------
# The premium across zero skew
# ---------------------------------------------------------------------------------


def test_a_trade_crossing_zero_skew_pays_the_premium_of_its_leg_past_zero(world):
    """Issue 18, item 2: with the skew at -100,000 GPU-hours a buy of 200,000 used to
    pay no premium. Now the first 100,000 close the skew at the index (no rebate) and
    the 100,000 past zero pay `100,000 x P x 100,000 / (2 x 1e6)` = 10,000 USD,
    averaged over the buy (fill 2.05 USD); selling it back across zero pays again."""
    m, alice, bob = world.market, world.traders[0], world.traders[1]
    scale, vs = world.params.skew_scale, world.value_scale
    world.deposit(bob, 50_000 * world.unit)
    world.deposit(alice, 100_000 * world.unit)
    _trade(world, bob, -100_000 * GPUH)
    assert m.market()[2] == -100_000 * GPUH
    price = world.price_wad()
    leg = 100_000 * GPUH
    paid = ceil_div(price * leg, 2 * scale * WAD) * leg  # perp_math._premium, start 0
    premium, fill = ceil_div(paid, vs), price + ceil_div(paid, 200_000 * GPUH)
    assert (premium, fill) == (10_000 * world.unit, 205 * WAD // 100)
    assert (premium, fill) == premium_and_fill(price, -100_000 * GPUH, 200_000 * GPUH, scale, vs)
    assert world.lens.fill_price(m.address, 200_000 * GPUH) == fill
    insurance = m.market()[5]
    _trade(world, alice, 200_000 * GPUH)
    event = event_of(m, "PositionModified")
    assert (event.premium, event.fill_price) == (premium, fill)
    # Maker fee on the 100,000 that closed the skew, taker on the rest, at the fill.
    assert event.fee == ceil_div((leg * 5 + leg * 10) * fill, vs * BPS)
    assert m.market()[5] >= insurance + premium  # and Bob's funding
    _trade(world, alice, -200_000 * GPUH)
    back = event_of(m, "PositionModified")
    assert (back.premium, back.fill_price) == (premium, 195 * WAD // 100)
    assert m.market()[2] == -100_000 * GPUH


# ---------------------------------------------------------------------------------
# A halted feed
# ---------------------------------------------------------------------------------


def test_a_halted_feed_stops_executions_liquidations_and_withdrawals_with_a_position(world):
    """The hub refused a report for moving too far: the stored index is known to be
    wrong, so the market reads it as not fresh. Executions, liquidations and
    withdrawals with a position are refused; deposits, withdrawals without a
    position, commits and cancellations go on. The next accepted report lifts the
    halt and the waiting order fills at the round it was waiting for."""
    m, hub = world.market, world.hub
    alice, bob, carol, dave = world.traders
    _window(world, 0, 60, world.unit)
    world.deposit(alice, 2_300 * world.unit + world.unit)  # and the order's keeper fee
    _trade(world, alice, 10_000 * GPUH)
    world.deposit(dave, 100 * world.unit)
    world.commit(dave, 10 * GPUH)  # it will expire
    boa.env.time_travel(seconds=61)
    lp = world.lens.liquidation_price(m.address, alice)
    world.walk_price(lp // FEED_TICK)
    assert world.lens.can_liquidate(m.address, alice)
    world.deposit(carol, 100 * world.unit)
    world.deposit(bob, 100 * world.unit)
    world.commit(carol, 10 * GPUH)
    round_after_commit(world)
    carol_round, carol_price = _latest_round(world), world.price_wad()
    value = hub.trading_state(INDEX_FEED_ID)[0]
    assert not world.set_price(value * 110 // 100)  # +10 %: refused, halted
    assert hub.trading_state(INDEX_FEED_ID)[5] is True
    assert m.index_price() == (carol_price, False)

    with boa.reverts(STALE):
        world.execute(carol)
    with boa.env.prank(world.keeper), boa.reverts(STALE):
        m.liquidate(alice)
    with boa.env.prank(alice), boa.reverts(STALE):
        m.withdraw_margin(1)
    world.deposit(carol, world.unit)
    with boa.env.prank(bob):
        m.withdraw_margin(50 * world.unit)
    world.commit(bob, -10 * GPUH)
    with boa.env.prank(world.stranger):
        m.cancel_order(dave)
    assert world.margin_of(dave) == 100 * world.unit

    assert world.next_round()  # the stored value again: accepted, the halt lifts
    assert hub.trading_state(INDEX_FEED_ID)[5] is False
    assert m.index_price() == (carol_price, True)
    world.execute(carol)
    assert (event_of(m, "OrderExecuted").round_id, world.size_of(carol)) == (
        carol_round, 10 * GPUH)
    with boa.env.prank(world.keeper):
        m.liquidate(alice)


# ---------------------------------------------------------------------------------
# The feed's move limit against the maintenance margin
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "widest"),
    [({}, 487), ({"maintenance_margin_bps": 800, "liquidation_fee_bps": 100,
                  "taker_fee_bps": 50}, 742)],
    ids=["defaults", "mm-8%-liq-1%-taker-0.5%"],
)
def test_set_risk_params_refuses_a_move_limit_reaching_the_maintenance_margin(
        world, changes, widest):
    """One update of m bps, the liquidation fee on the moved notional and the exit fee
    must stay below the maintenance margin: m x (1 + liq) + taker < mm. The widest
    move limit a parameter set accepts is exact; one bp more, and a feed without a
    limit (0), are refused."""
    params = replace(world.params, **changes)
    assert widest * (BPS + params.liquidation_fee_bps) + params.taker_fee_bps * BPS \
        < params.maintenance_margin_bps * BPS \
        <= (widest + 1) * (BPS + params.liquidation_fee_bps) + params.taker_fee_bps * BPS
    for move, accepted in ((widest, True), (widest + 1, False), (0, False)):
        set_move_limit(world, move)
        with boa.env.prank(world.admin):
            if accepted:
                world.market.set_risk_params(params.as_tuple())
                assert tuple(world.market.risk_params()) == params.as_tuple()
            else:
                with boa.reverts(MOVE_NOT_COVERED):
                    world.market.set_risk_params(params.as_tuple())


def test_new_risk_is_refused_once_the_move_limit_is_widened(world):
    """The oracle admin widens the feed's move limit past what the maintenance margin
    covers: trades that add risk (opens, increases, flips) are refused (the order is
    cancelled, the keeper paid, the position unchanged), those that reduce or close
    still go through; narrowing it again reopens new risk."""
    m, alice, bob = world.market, world.traders[0], world.traders[1]
    world.deposit(alice, 5_000 * world.unit)
    world.deposit(bob, 5_000 * world.unit)
    _trade(world, alice, 1_000 * GPUH)
    set_move_limit(world, 600)
    _window(world, 0, 600, world.unit)
    for account, size in ((bob, 10 * GPUH), (alice, 10 * GPUH), (alice, -2_000 * GPUH)):
        with branch(world):
            world.commit(account, size)
            round_after_commit(world)
            position = m.position(account)
            keeper_margin = world.margin_of(world.keeper)
            assert world.execute_refused(account, MOVE_NOT_COVERED) == world.unit
            assert m.position(account) == (position[0], position[1] - world.unit,
                                           *position[2:])
            assert world.margin_of(world.keeper) == keeper_margin + world.unit
    with boa.env.prank(world.admin), boa.reverts(MOVE_NOT_COVERED):
        m.set_risk_params(world.params.as_tuple())
    _trade(world, alice, -400 * GPUH)
    _trade(world, alice, -600 * GPUH)
    assert world.size_of(alice) == 0
    set_move_limit(world, 400)
    _trade(world, bob, 10 * GPUH)
    assert world.size_of(bob) == 10 * GPUH


# ---------------------------------------------------------------------------------
# Fees are not margin
# ---------------------------------------------------------------------------------


def test_withdrawals_cannot_take_fees(world):
    """Issue 18, item 5, constructed: Bob's short (at his minimum margin) balances
    Alice's long; the index jumps 50 % (the oracle admin lifted the move limit, the
    keepers slept), Alice closes with the whole gain (the fund, marking Bob's loss, is
    not short), and the index comes back: the fund is negative and the market's cash
    no longer covers every margin. Alice's withdrawal of her whole margin would take
    the uncollected fees: refused (PERP_FREE_CASH_DOES_NOT_COVER); exactly the cash
    beyond them goes through, and the fees are still collected. Carol's pending order
    reserves its keeper fee in her margin, which is margin like any other (no escrow:
    no cash is set aside for it)."""
    m, alice, bob, carol = world.market, *world.traders[:3]
    _window(world, 0, 600, 5 * world.unit)
    world.deposit(bob, 40_300 * world.unit)
    world.deposit(alice, 40_000 * world.unit)
    world.deposit(carol, 5_000 * world.unit)
    world.commit(bob, -100_000 * GPUH)
    world.commit(alice, 100_000 * GPUH)
    round_after_commit(world)
    world.execute(bob)
    world.execute(alice)
    set_move_limit(world, 0)
    assert world.set_price(3 * FEED_UNIT)
    assert m.market()[5] > 0
    _trade(world, alice, -100_000 * GPUH)  # the whole gain realised: no haircut
    assert not events_of(m, "GainHaircut")
    assert world.set_price(PRICE)
    assert m.market()[5] < 0
    world.commit(carol, 10 * GPUH)  # her keeper fee stays in her margin
    keeper_margin = world.margin_of(world.keeper)
    assert world.margin_of(carol) == 5_000 * world.unit
    fees = m.market()[4]
    assert fees > 0
    free = m.cash() - fees
    margin = world.margin_of(alice)
    assert 0 < free < margin
    with boa.env.prank(alice):
        with boa.reverts(FREE_CASH):
            m.withdraw_margin(margin)
        with boa.reverts(FREE_CASH):
            m.withdraw_margin(free + 1)
        m.withdraw_margin(free)
    assert m.cash() == fees
    assert m.collect_fees() == fees
    assert m.cash() == 0
    # Carol's order cannot add risk on a short fund: it is cancelled and the keeper
    # paid into its margin (which, like every margin now, the cash no longer covers).
    round_after_commit(world)
    assert _status(world, carol) == EXECUTABLE
    assert world.execute_refused(carol, INSURANCE_EXHAUSTED) == 5 * world.unit
    assert world.margin_of(carol) == 4_995 * world.unit
    assert world.margin_of(world.keeper) == keeper_margin + 5 * world.unit
    with boa.env.prank(world.keeper), boa.reverts(FREE_CASH):
        m.withdraw_margin(5 * world.unit)
