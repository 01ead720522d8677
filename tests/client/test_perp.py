"""`gpushares.client.perp` against the real suite on titanoboa: quotes are the market's
answer (the fill an order gets at the next round, or the refusal the market gives, with
the same words and what to do about it), the views read what the PerpLens says, and
every plan either goes through or is refused before anything is sent; a commit the
market would take but whose execution it would refuse is refused too.

The world (module-scoped, each test rolls back to it): `tests.client.test_pool`'s SPV
world, the H100 index at 2.40 USD/GPU-hour with a 4 % move limit per update (the
default margins accept up to 4.87 %), and perp market 1 created by the platform with
the default risk parameters, a fast funding velocity (300 %/day per day), the default
order window (1 mUSDC keeper fee, executable until two heartbeats after the commit) and
2,000 mUSDC of insurance. Alice (a startup), Bob (a speculator) and the keeper get
mUSDC.
"""

from __future__ import annotations

from decimal import Decimal

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpushares import perp, reasons
from gpushares.client import perp as perps
from gpushares.client.chain import Plan, Refused
from gpushares.client.context import Client
from gpushares.client.units import BadInput
from oracle.reports import feed_id
from tests.budgets import budget
from tests.client.conftest import ALICE, BOB, DEPLOYER, OPERATOR, STRANGER, refused_alike, sent
from tests.client.test_pool import (
    HEARTBEAT,
    INDEX_FEED,
    KEEPER,
    SIGNERS,
    USDC,
    Oracle,
    SpvWorld,
    spv_world,
)
from tests.client.test_pool import lend as pools
from tests.contracts.oracle_helpers import publish_price

WAD = perp.WAD
DAY = 86_400
INSURANCE = 2_000 * USDC
MAX_MOVE_BPS = 400
INDEX_FID = bytes.fromhex(feed_id(INDEX_FEED)[2:])
PARAMS = perp.RiskParams(
    skew_scale=1_000_000, max_long_oi=500_000, max_short_oi=500_000, initial_margin_bps=1_000,
    maintenance_margin_bps=500, taker_fee_bps=10, maker_fee_bps=5, liquidation_fee_bps=50,
    min_keeper_fee=5 * USDC, max_funding_velocity=3 * WAD, max_funding_rate=5 * WAD // 100,
)
ORDER_FEE = USDC  # the order window's keeper fee at creation: 1 mUSDC


def set_move_limit(client: Client, bps: int) -> None:
    """The hub admin sets the index feed's move limit per update."""
    hub = client.hub()
    info = hub.feed(INDEX_FID)
    client.chain.send(hub.set_feed_config.tx(INDEX_FID, int(info.min_answer),
                                             int(info.max_answer), bps, HEARTBEAT, True),
                      DEPLOYER)


def perp_market(client: Client, world: SpvWorld) -> int:
    """Market 1 on the H100 index at 2.40 (move limit 4 %), its order window set and
    2,000 of insurance seeded; 20,000 mUSDC each to Alice and Bob, 1,000,000 to the
    stranger, 100,000 to the platform."""
    world.oracle.publish(INDEX_FEED, "2.40")
    set_move_limit(client, MAX_MOVE_BPS)
    for who, amount in ((DEPLOYER, 100_000), (ALICE, 20_000), (BOB, 20_000),
                        (STRANGER, 1_000_000)):
        sent(client, pools.plan_mint_mock(client, DEPLOYER, who, amount * USDC), DEPLOYER)
    params = perps.risk_params(6, max_funding_velocity="300")
    plan = perps.plan_create(client, DEPLOYER, INDEX_FEED, params, insurance=INSURANCE)
    number, _ = perps.created(client, sent(client, plan, DEPLOYER)[-1])
    sent(client, perps.plan_setup(client, DEPLOYER, number, insurance=INSURANCE), DEPLOYER)
    return number


@pytest.fixture(scope="module")
def world(client: Client) -> SpvWorld:
    result = spv_world(client)
    result.extra["market"] = perp_market(client, result)
    return result


def oracle(client: Client) -> Oracle:
    hub = client.hub()
    return Oracle(client.chain.at("OracleHub", hub.address), int(hub.config_version()))


def index_usd(client: Client) -> Decimal:
    return Decimal(int(client.hub().latest_value(INDEX_FID)[0])) / 10**8


def next_round(client: Client, usd: str | Decimal | None = None) -> None:
    """The next oracle round (the latest value again unless given), a second later: an
    order committed before fills at it."""
    boa.env.time_travel(seconds=1)
    oracle(client).publish(INDEX_FEED, index_usd(client) if usd is None else usd)


def walk(client: Client, usd: str) -> None:
    """Move the index to `usd` in accepted rounds, each within the 4 % move limit."""
    target = Decimal(usd)
    while (now := index_usd(client)) != target:
        step = now * MAX_MOVE_BPS / 10_000
        nxt = min(target, now + step) if target > now else max(target, now - step)
        next_round(client, nxt.quantize(Decimal("0.00000001")))


def executed(client: Client, who: str, usd: str | Decimal | None = None) -> perps.Fill:
    """The next round (at `usd`), then the keeper executes `who`'s order."""
    next_round(client, usd)
    (fill,) = perps.outcome(client, 1, sent(client, perps.plan_execute(client, KEEPER, 1, who),
                                            KEEPER)).fills
    return fill


def open_(client: Client, who: str, size: int, margin: int) -> perps.Fill:
    """`who` trades `size` GPU-hours after depositing `margin` mUSDC: commit, the next
    round at the same index, the keeper's execution."""
    sent(client, perps.plan_commit(client, who, 1, size * WAD, margin=margin * USDC), who)
    return executed(client, who)


def keeper_margin(client: Client) -> int:
    return perps.position(client, 1, KEEPER).margin


def refused_at_execution(client: Client, plan: Plan, sender: str, reason: str) -> None:
    """A commit plan the client refuses because the market would refuse the order's trade:
    sent anyway, the market takes the commit, and the execution at the next round
    cancels the order with `reason` (`OrderFailed`; the plan's refusal starts with it),
    the keeper still paid from the trader's margin; the state is left as it was."""
    assert plan.refusal is not None and plan.refusal.reason.startswith(reason), plan.refusal
    assert perps.AT_EXECUTION in plan.refusal.reason
    with boa.env.anchor():
        for tx in plan.txs:
            client.chain.send(tx, sender)
        next_round(client)
        execute = perps.plan_execute(client, KEEPER, 1, sender)
        assert execute.refusal is None and reason in execute.notes[0], execute.notes
        margin, earned = perps.position(client, 1, sender).margin, keeper_margin(client)
        done = perps.outcome(client, 1, [client.chain.send(execute.txs[0], KEEPER)])
        (failed,) = done.failed
        assert (failed.reason, failed.keeper_fee, done.fills) == (reason, ORDER_FEE, [])
        assert perps.order(client, 1, sender) is None
        assert perps.position(client, 1, sender).margin == margin - ORDER_FEE
        assert keeper_margin(client) == earned + ORDER_FEE


def market_contract(client: Client):
    return client.chain.contract("PerpMarket", perps.market(client, 1).address)


# ---------------------------------------------------------------------------------
# Creating and reading
# ---------------------------------------------------------------------------------


def test_create_sets_the_parameters_the_order_window_and_seeds_the_insurance(
        client: Client, world: SpvWorld):
    view = perps.market(client, 1)
    assert view.params == PARAMS and view.fee_recipient == DEPLOYER
    market = market_contract(client)
    for role in (perps.RISK_ADMIN_ROLE, perps.GUARDIAN_ROLE):
        assert market.hasRole(role, DEPLOYER)
    assert view.insurance == INSURANCE == market.cash() == market.market()[5]
    assert view.window == perps.OrderWindow(min_delay=0, max_age=2 * HEARTBEAT,
                                            keeper_fee=ORDER_FEE)
    assert view.index.max_move_bps == MAX_MOVE_BPS and view.move_covered
    lines = "\n".join(view.created_lines(DEPLOYER))
    assert f"market 1: PerpMarket {view.address}" in lines
    assert "max leverage 10.00x (initial margin 10.00%), maintenance 5.00%" in lines
    assert "keeper fee 1 mUSDC per order (reserved in the margin, paid to the executor)" in lines
    assert "index feed move limit 400 bps per update (covered: these margins accept up to " \
           "487 bps)" in lines
    assert client.chain.code(client.deployed.perp_lens or "")


def test_status_of_a_new_market(client: Client, world: SpvWorld):
    view = perps.market(client, 1)
    text = "\n".join(view.lines() + perps.position_lines(perps.positions(client, 1), True))
    for fragment in (
        f"perp market 1: {INDEX_FEED} / mUSDC at {view.address}",
        f"index feed    {INDEX_FEED} adapter {view.feed_adapter}",
        "max leverage 10.00x (initial margin 10.00%), maintenance 5.00%, liquidation fee "
        "0.50% + 5 mUSDC minimum keeper fee",
        "fees taker 0.10%, maker 0.05%; skew scale 1,000,000 GPU-hours; OI caps long 500,000, "
        "short 500,000 GPU-hours",
        "funding velocity 300.0000%/day per day at full skew, cap 5.0000%/day",
        "orders: executable 0s to 4d after the commit (then only cancelled), at the first "
        "oracle round after it; keeper fee 1 mUSDC per order (reserved in the margin, paid to "
        "the executor)",
        "index 2.400000 USD/GPU-h (round", ", fresh, updated", f"(heartbeat {HEARTBEAT}s)",
        "open interest long 0 GPU-hours, short 0 GPU-hours",
        "funding rate 0.0000%/day (0.0000% a year), nobody pays",
        "insurance fund 2,000 mUSDC, deficit 0 mUSDC, fees uncollected 0 mUSDC",
        "paused: no", "positions: none",
    ):
        assert fragment in text, text


def test_every_refusal_of_the_market_is_explained(client: Client, world: SpvWorld):
    constants = [name for name in dir(reasons) if name.startswith("PERP_")]
    assert len(constants) > 40
    for name in constants:
        reason = getattr(reasons, name)
        sentence = perp.EXPLANATIONS[reason]
        assert sentence[0].isupper() and sentence.endswith("."), name
        assert perp.explain(reason, " (x)") == f"{reason} (x). {sentence}"
    assert perp.explain("OracleHub: something") == "OracleHub: something"


# ---------------------------------------------------------------------------------
# Orders
# ---------------------------------------------------------------------------------


def test_a_commit_fills_at_the_next_round_as_quoted(client: Client, world: SpvWorld):
    q = perps.quote(client, 1, ALICE, 3_000 * WAD, margin=1_500 * USDC)
    assert q.refusal is None and q.size_after == 3_000 * WAD and q.keeper_fee == ORDER_FEE
    plan = perps.plan_commit(client, ALICE, 1, 3_000 * WAD, margin=1_500 * USDC)
    assert [tx.function for tx in plan.txs] == ["approve", "deposit_margin", "commit_order"]
    assert plan.notes[0] == q.line() and "reserves the 1 mUSDC keeper fee" in plan.notes[2]
    (committed,) = perps.outcome(client, 1, sent(client, plan, ALICE)).committed
    assert (committed.size_delta, committed.keeper_fee) == (3_000 * WAD, ORDER_FEE)
    mine = perps.position(client, 1, ALICE)
    assert mine.size == 0 and mine.margin == 1_500 * USDC
    assert mine.order is not None and mine.order.status == perp.ORDER_WAITING
    assert "waiting for an oracle round after the commit" in mine.order.line()
    # No round after the commit yet: the keeper is refused as the market refuses it (the
    # execution would revert, changing nothing).
    assert perps.execution(client, 1, ALICE).reverts
    refused_alike(client, perps.plan_execute(client, KEEPER, 1, ALICE), KEEPER,
                  reasons.PERP_NO_ORACLE_ROUND_AFTER)
    next_round(client)
    assert perps.order(client, 1, ALICE).status == perp.ORDER_EXECUTABLE
    predicted = perps.execution(client, 1, ALICE)
    assert predicted.refusal is None and not predicted.reverts
    execute = perps.plan_execute(client, KEEPER, 1, ALICE)
    assert execute.notes[1].startswith("the keeper earns the 1 mUSDC keeper fee (credited to "
                                       "its margin in the market")
    earned = keeper_margin(client)
    done = perps.outcome(client, 1, sent(client, execute, KEEPER))
    (fill,), (run,) = done.fills, done.executed
    assert (run.keeper, run.keeper_fee, run.round_id) == (KEEPER, ORDER_FEE, predicted.round_id)
    assert keeper_margin(client) == earned + ORDER_FEE  # withdrawable like any margin
    assert perps.outcome(client, 1, sent(client, perps.plan_withdraw(client, KEEPER, 1),
                                         KEEPER)).withdrawn == earned + ORDER_FEE
    assert (fill.fill_price, fill.fee, fill.premium) == (q.fill_price, q.fee, q.premium)
    assert (fill.fill_price, fill.margin) == (predicted.fill_price, predicted.margin_after)
    assert fill.margin == q.margin_after == 1_500 * USDC - ORDER_FEE - q.fee - q.premium
    assert "filled buy 3,000 GPU-hours at 2.403600 USD/GPU-h (index 2.400000 USD/GPU-h)" in \
        fill.describe(q.asset)
    mine = perps.position(client, 1, ALICE)
    lens, where = perps.lens(client), market_contract(client).address
    assert mine.order is None
    assert (mine.size, mine.margin, mine.equity, mine.liquidation_price, mine.withdrawable) == (
        3_000 * WAD, fill.margin, lens.equity(where, ALICE), lens.liquidation_price(where, ALICE),
        lens.withdrawable(where, ALICE))
    assert mine.liquidation_price == q.liquidation_price
    assert mine.describe().startswith(f"{ALICE}: long 3,000 GPU-hours in market 1, margin")


def test_the_order_fills_at_the_first_round_observed_after_the_commit(client: Client,
                                                                     world: SpvWorld):
    boa.env.time_travel(seconds=10)
    sent(client, perps.plan_commit(client, BOB, 1, 1_000 * WAD, margin=1_000 * USDC,
                                   slippage="10"), BOB)
    committed_at = perps.order(client, 1, BOB).committed_at
    # A report observed before the commit but landing after it was public at the commit:
    # it does not count.
    hub = client.chain.at("OracleHub", client.hub().address)
    last = int(client.hub().latest_value(INDEX_FID)[1])
    assert last < committed_at - 1
    accepted, _ = publish_price(hub, SIGNERS, DEPLOYER, INDEX_FID, 235_000_000, last,
                                int(client.hub().config_version()), committed_at - 1)
    assert accepted
    refused_alike(client, perps.plan_execute(client, KEEPER, 1, BOB), KEEPER,
                  reasons.PERP_NO_ORACLE_ROUND_AFTER)
    next_round(client, "2.44")  # the first round observed after the commit
    next_round(client, "2.50")
    predicted = perps.execution(client, 1, BOB)
    assert predicted.index_price == 244 * WAD // 100 and predicted.refusal is None
    (run,) = perps.outcome(client, 1, sent(client, perps.plan_execute(client, KEEPER, 1, BOB),
                                           KEEPER)).executed
    assert (run.price, run.round_id) == (244 * WAD // 100, predicted.round_id)
    assert perps.position(client, 1, BOB).size == 1_000 * WAD


def test_the_order_window_min_delay_expiry_and_cancellation(client: Client, world: SpvWorld):
    sent(client, perps.plan_set(client, DEPLOYER, 1, order_min_delay=60, order_max_age=120,
                                order_keeper_fee="2"), DEPLOYER)
    assert perps.market(client, 1).window == perps.OrderWindow(min_delay=60, max_age=120,
                                                               keeper_fee=2 * USDC)
    sent(client, perps.plan_commit(client, ALICE, 1, 100 * WAD, margin=100 * USDC), ALICE)
    next_round(client)
    early = perps.plan_execute(client, KEEPER, 1, ALICE)
    assert "executable in" in early.refusal.reason
    refused_alike(client, early, KEEPER, reasons.PERP_ORDER_NOT_EXECUTABLE_YET)
    refused_alike(client, perps.plan_cancel(client, STRANGER, 1, ALICE), STRANGER,
                  reasons.PERP_ORDER_NOT_EXPIRED)
    boa.env.time_travel(seconds=121)
    view = perps.order(client, 1, ALICE)
    assert view.status == perp.ORDER_EXPIRED and "EXPIRED" in view.line()
    refused_alike(client, perps.plan_execute(client, KEEPER, 1, ALICE), KEEPER,
                  reasons.PERP_ORDER_EXPIRED_CANCEL)
    assert [o.account for o in perps.orders(client, 1)] == [ALICE]
    cancel = perps.plan_cancel(client, STRANGER, 1, ALICE)
    assert cancel.notes == (f"the 2 mUSDC keeper fee reserved in {ALICE}'s margin is free "
                            "again",)
    (gone,) = perps.outcome(client, 1, sent(client, cancel, STRANGER)).cancelled
    assert (gone.caller, gone.keeper_fee) == (STRANGER, 2 * USDC)
    mine = perps.position(client, 1, ALICE)
    assert mine.order is None and mine.margin == 100 * USDC and perps.orders(client, 1) == []
    refused_alike(client, perps.plan_cancel(client, STRANGER, 1, ALICE), STRANGER,
                  reasons.PERP_NO_PENDING_ORDER)
    refused_alike(client, perps.plan_set(client, DEPLOYER, 1, order_max_age=30), DEPLOYER,
                  reasons.PERP_ORDER_WINDOW_OUT_OF_RANGE)


def test_one_order_at_a_time_and_the_keeper_fee_comes_from_the_margin(client: Client,
                                                                      world: SpvWorld):
    refused_alike(client, perps.plan_commit(client, BOB, 1, 10 * WAD), BOB,
                  reasons.PERP_MARGIN_DOES_NOT_COVER_KEEPER)
    sent(client, perps.plan_commit(client, BOB, 1, 10 * WAD, margin=100 * USDC), BOB)
    again = perps.plan_commit(client, BOB, 1, 10 * WAD)
    assert "waiting for an oracle round" in again.refusal.reason
    refused_alike(client, again, BOB, reasons.PERP_ORDER_ALREADY_PENDING)
    # Nothing leaves the margin while the order is pending (its keeper fee is reserved,
    # and nobody can make the trade fail after seeing the round's price).
    refused_alike(client, perps.plan_withdraw(client, BOB, 1, 1), BOB,
                  reasons.PERP_ORDER_ALREADY_PENDING)
    refused_alike(client, perps.plan_withdraw(client, BOB, 1), BOB,
                  reasons.PERP_ORDER_ALREADY_PENDING)
    assert perps.position(client, 1, BOB).margin == 100 * USDC
    refused_alike(client, perps.plan_commit(client, ALICE, 1, 0, margin=USDC), ALICE,
                  reasons.PERP_ZERO_SIZE)


def test_over_leverage_is_refused_like_the_execution_would_be(client: Client, world: SpvWorld):
    plan = perps.plan_commit(client, BOB, 1, 20_000 * WAD, margin=1_000 * USDC)
    assert str(plan.refusal).startswith(
        f"order refused, nothing sent: {reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN}")
    assert "order at most" in plan.refusal.reason and "max leverage 10.00x" in plan.refusal.reason
    assert perp.EXPLANATIONS[reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN] in plan.refusal.reason
    refused_at_execution(client, plan, BOB, reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN)


@settings(budget("client_perp_quote"))
@given(size=st.integers(-60_000, 60_000).filter(bool), margin=st.integers(0, 8_000),
       long_first=st.booleans())
def test_the_quote_is_the_markets_answer(client: Client, world: SpvWorld, size: int,
                                         margin: int, long_first: bool):
    """Whatever the order: refused by the plan with a message exactly when the market
    refuses its commit or its execution with that message; otherwise filled at the
    quote."""
    with boa.env.anchor():
        open_(client, ALICE, 3_000 if long_first else -3_000, 1_500)
        plan = perps.plan_commit(client, BOB, 1, size * WAD, margin=margin * USDC)
        if plan.refusal is not None:
            reason = plan.refusal.reason
            if reason.startswith(reasons.PERP_MARGIN_DOES_NOT_COVER_KEEPER):
                refused_alike(client, plan, BOB, reasons.PERP_MARGIN_DOES_NOT_COVER_KEEPER)
                return
            expected = next(r for r in (
                reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN, reasons.PERP_MARGIN_DOES_NOT_COVER,
                reasons.PERP_LONG_OPEN_INTEREST_CAP, reasons.PERP_SHORT_OPEN_INTEREST_CAP,
                reasons.PERP_FILL_PRICE_WORSE_ACCEPTABLE) if reason.startswith(r))
            refused_at_execution(client, plan, BOB, expected)
            return
        q = perps.quote(client, 1, BOB, size * WAD, margin=margin * USDC)
        lens = perps.lens(client)
        assert q.fill_price == lens.fill_price(market_contract(client).address, size * WAD)
        sent(client, plan, BOB)
        fill = executed(client, BOB)
        assert (fill.fill_price, fill.fee, fill.premium, fill.margin) == (
            q.fill_price, q.fee, q.premium, q.margin_after)


def test_a_trade_crossing_zero_skew_pays_the_premium_of_its_second_leg(client: Client,
                                                                       world: SpvWorld):
    open_(client, STRANGER, -100_000, 60_000)
    q = perps.quote(client, 1, DEPLOYER, 150_000 * WAD, margin=80_000 * USDC)
    # The first 100,000 only bring the skew back to zero: no premium; the last 50,000
    # pay from zero skew.
    price, scale = 24 * WAD // 10, perp.value_scale(6)
    leg = perp.ceil_div(perp.ceil_div(price * 50_000 * WAD, 2 * 10**6 * WAD) * 50_000 * WAD,
                        scale)
    assert q.refusal is None and q.premium == leg == 3_000 * USDC
    sent(client, perps.plan_commit(client, DEPLOYER, 1, 150_000 * WAD, margin=80_000 * USDC),
         DEPLOYER)
    fill = executed(client, DEPLOYER)
    assert (fill.premium, fill.fill_price) == (q.premium, q.fill_price)
    assert perps.market(client, 1).skew == 50_000 * WAD


# ---------------------------------------------------------------------------------
# Positions, funding, liquidation, withdrawals
# ---------------------------------------------------------------------------------


def test_status_lists_the_positions_and_pending_orders(client: Client, world: SpvWorld):
    open_(client, ALICE, 3_000, 1_500)
    open_(client, OPERATOR, -1_000, 1_000)
    sent(client, perps.plan_commit(client, BOB, 1, 500 * WAD, margin=500 * USDC), BOB)
    view = perps.market(client, 1)
    assert (view.long_oi, view.short_oi, view.skew) == (3_000 * WAD, 1_000 * WAD, 2_000 * WAD)
    assert "skew 2,000 GPU-hours (longs heavier)" in "\n".join(view.lines())
    lens, where = perps.lens(client), view.address
    shown = perps.positions(client, 1)
    # The keeper is listed too: its fees are credited to its margin in the market.
    assert sorted(p.account for p in shown) == sorted([ALICE, OPERATOR, BOB, KEEPER])
    assert next(p for p in shown if p.account == KEEPER).size == 0
    for p in shown:
        assert (p.pnl, p.funding, p.equity, p.ratio, p.liquidatable, p.withdrawable) == (
            lens.pnl(where, p.account), lens.funding_owed(where, p.account),
            lens.equity(where, p.account), lens.margin_ratio(where, p.account),
            lens.can_liquidate(where, p.account), lens.withdrawable(where, p.account))
    text = "\n".join(perps.position_lines(shown, True))
    assert all(p.line() in text for p in shown)
    assert f"{BOB}: order buy 500 GPU-hours (worst fill" in text
    bob = next(p for p in shown if p.account == BOB)
    assert perps.order_lines(perps.orders(client, 1))[1] == bob.order.line()


def test_funding_runs_from_the_heavier_side(client: Client, world: SpvWorld):
    open_(client, ALICE, 3_000, 1_500)
    open_(client, OPERATOR, -1_000, 1_000)
    boa.env.time_travel(seconds=DAY)
    next_round(client)
    view = perps.market(client, 1)
    assert view.funding_rate > 0
    assert "longs pay shorts" in "\n".join(view.lines())
    alice, operator = perps.position(client, 1, ALICE), perps.position(client, 1, OPERATOR)
    assert alice.funding > 0 > operator.funding
    # The other way round: shorts heavier, shorts pay.
    open_(client, STRANGER, -5_000, 5_000)
    boa.env.time_travel(seconds=2 * DAY)
    next_round(client)
    view = perps.market(client, 1)
    assert view.funding_rate < 0 and "shorts pay longs" in "\n".join(view.lines())


def test_a_lower_index_makes_the_over_levered_long_liquidatable(client: Client,
                                                                world: SpvWorld):
    open_(client, ALICE, 3_000, 1_500)
    open_(client, BOB, 4_000, 1_100)
    walk(client, "2.20")
    shown = {p.account: p for p in perps.positions(client, 1)}
    assert shown[BOB].liquidatable and not shown[ALICE].liquidatable
    assert "\n".join(perps.position_lines(list(shown.values()), True)).count("LIQUIDATABLE") == 1
    refused_at_execution(client, perps.plan_commit(client, BOB, 1, -100 * WAD), BOB,
                         reasons.PERP_POSITION_BELOW_MAINTENANCE_MARGIN)


def test_withdrawals_keep_the_initial_margin_and_count_losses_not_gains(client: Client,
                                                                        world: SpvWorld):
    open_(client, ALICE, 3_000, 1_500)
    plan = perps.plan_withdraw(client, ALICE, 1)
    assert "for the funding that accrues until the transaction is mined" in plan.notes[0]
    done = perps.outcome(client, 1, sent(client, plan, ALICE))
    mine = perps.position(client, 1, ALICE)
    need = perp.initial_margin(mine.size, mine.index_price, PARAMS, perp.value_scale(6))
    assert done.withdrawn > 0 and need <= mine.equity <= need + 5 * USDC
    refused_alike(client, perps.plan_withdraw(client, ALICE, 1, 10 * USDC), ALICE,
                  reasons.PERP_WITHDRAWAL_LEAVE_LESS_INITIAL)
    refused_alike(client, perps.plan_withdraw(client, ALICE, 1, 1_000_000 * USDC), ALICE,
                  reasons.PERP_WITHDRAWAL_EXCEEDS_MARGIN)
    # A gain backs nothing until an order realises it: the equity grows, what can be
    # withdrawn does not.
    walk(client, "2.60")
    mine = perps.position(client, 1, ALICE)
    assert mine.pnl > 500 * USDC and mine.equity > mine.margin
    assert mine.withdrawable == perp.withdrawable(mine.size, mine.margin, mine.equity,
                                                  mine.index_price, PARAMS, perp.value_scale(6))
    refused_alike(client, perps.plan_withdraw(client, ALICE, 1, 100 * USDC), ALICE,
                  reasons.PERP_WITHDRAWAL_LEAVE_LESS_INITIAL)
    with pytest.raises(Refused, match="a gain does not until an order realises it"):
        perps.plan_withdraw(client, ALICE, 1)
    # Realised by an order (a small reduction settles the whole position), it can go.
    sent(client, perps.plan_commit(client, ALICE, 1, -10 * WAD), ALICE)
    executed(client, ALICE)
    assert perps.position(client, 1, ALICE).withdrawable > 400 * USDC
    sent(client, perps.plan_withdraw(client, ALICE, 1, 400 * USDC), ALICE)
    with pytest.raises(Refused, match="has no margin in market 1"):
        perps.plan_withdraw(client, BOB, 1)


def test_a_halted_feed_stops_executions_not_commits(client: Client, world: SpvWorld):
    open_(client, ALICE, 3_000, 1_500)
    hub = client.chain.at("OracleHub", client.hub().address)
    boa.env.time_travel(seconds=1)
    accepted, _ = publish_price(hub, SIGNERS, DEPLOYER, INDEX_FID, 300_000_000,
                                int(client.hub().latest_value(INDEX_FID)[1]),
                                int(client.hub().config_version()))
    assert not accepted  # +25 %: refused, and the feed halts
    view = perps.market(client, 1)
    assert view.index.halted and not view.index.fresh
    assert view.index.refusal == reasons.PERP_INDEX_PRICE_STALE_OR_HALTED
    assert "the hub halted the feed" in "\n".join(view.lines())
    plan = perps.plan_commit(client, BOB, 1, 100 * WAD, margin=100 * USDC, slippage="5")
    assert plan.refusal is None and "stale or halted now" in plan.notes[-1]
    sent(client, plan, BOB)
    refused_alike(client, perps.plan_execute(client, KEEPER, 1, BOB), KEEPER,
                  reasons.PERP_INDEX_PRICE_STALE_OR_HALTED)
    refused_alike(client, perps.plan_withdraw(client, ALICE, 1, USDC), ALICE,
                  reasons.PERP_INDEX_PRICE_STALE_OR_HALTED)
    fill = executed(client, BOB, "2.45")  # an accepted report lifts the halt
    assert fill.index_price == 245 * WAD // 100 and not perps.market(client, 1).index.halted


def test_a_stale_index_stops_executions_and_withdrawals_with_a_position(client: Client,
                                                                        world: SpvWorld):
    open_(client, ALICE, 3_000, 1_500)
    boa.env.time_travel(seconds=HEARTBEAT + 3_600)
    view = perps.market(client, 1)
    assert not view.index.fresh and view.index.refusal == reasons.PERP_INDEX_PRICE_STALE_OR_HALTED
    assert perps.STALE_NOTE in "\n".join(view.lines())
    assert "positions (2) at the stale index:" in perps.position_lines(  # Alice, the keeper
        perps.positions(client, 1), view.index.fresh)[0]
    sent(client, perps.plan_commit(client, BOB, 1, 10 * WAD, margin=100 * USDC), BOB)
    refused_alike(client, perps.plan_execute(client, KEEPER, 1, BOB), KEEPER,
                  reasons.PERP_INDEX_PRICE_STALE_OR_HALTED)
    refused_alike(client, perps.plan_withdraw(client, ALICE, 1, USDC), ALICE,
                  reasons.PERP_INDEX_PRICE_STALE_OR_HALTED)
    assert executed(client, BOB).size == 10 * WAD


# ---------------------------------------------------------------------------------
# Risk administration
# ---------------------------------------------------------------------------------


def test_pause_refuses_opens_but_not_closes(client: Client, world: SpvWorld):
    open_(client, ALICE, 3_000, 1_500)
    sent(client, perps.plan_set(client, DEPLOYER, 1, maintenance_margin="4.5", paused=True),
         DEPLOYER)
    view = perps.market(client, 1)
    assert view.params == PARAMS.model_copy(update={"maintenance_margin_bps": 450})
    assert view.paused and "PAUSED (no opens or increases)" in "\n".join(view.risk_lines())
    refused_at_execution(client, perps.plan_commit(client, BOB, 1, 100 * WAD,
                                                   margin=100 * USDC), BOB,
                         reasons.PERP_NEW_RISK_PAUSED_GUARDIAN)
    sent(client, perps.plan_close(client, ALICE, 1), ALICE)
    fill = executed(client, ALICE)
    assert fill.size == 0 and fill.size_delta == -3_000 * WAD
    done = perps.outcome(client, 1, sent(client, perps.plan_withdraw(client, ALICE, 1), ALICE))
    assert done.withdrawn == fill.margin > 0
    assert perps.position(client, 1, ALICE).describe() == \
        f"{ALICE}: flat in market 1, margin 0 mUSDC"
    with pytest.raises(Refused, match="no open position"):
        perps.plan_close(client, ALICE, 1)


def test_risk_parameters_are_checked_as_the_market_checks_them(client: Client,
                                                               world: SpvWorld):
    refused_alike(client, perps.plan_set(client, DEPLOYER, 1, maintenance_margin="12"),
                  DEPLOYER, reasons.PERP_NEED_0_MAINTENANCE_LIQUIDATION)
    refused_alike(client, perps.plan_set(client, DEPLOYER, 1, maker_fee="0.5"), DEPLOYER,
                  reasons.PERP_FEES_ABOVE_THEIR_CAPS)
    refused_alike(client, perps.plan_set(client, BOB, 1, taker_fee="0.2"), BOB,
                  reasons.ACCESS_CONTROL_MISSING_ROLE)
    # 3 % maintenance accepts feed moves up to 2.88 %: the feed's 4 % is too wide.
    plan = perps.plan_set(client, DEPLOYER, 1, maintenance_margin="3")
    assert "accept at most 288 bps" in plan.refusal.reason
    refused_alike(client, plan, DEPLOYER, reasons.PERP_FEED_MOVE_REACHES_MAINTENANCE)
    with pytest.raises(BadInput, match="nothing to change"):
        perps.plan_set(client, DEPLOYER, 1)
    with pytest.raises(BadInput, match="fee_recipient: 'nobody' is not an address"):
        perps.plan_set(client, DEPLOYER, 1, fee_recipient="nobody")


def test_a_wider_move_limit_stops_new_risk_but_not_closes(client: Client, world: SpvWorld):
    open_(client, ALICE, 3_000, 1_500)
    set_move_limit(client, 500)
    view = perps.market(client, 1)
    assert not view.move_covered and "NOT covered" in "\n".join(view.lines())
    plan = perps.plan_commit(client, BOB, 1, 100 * WAD, margin=100 * USDC)
    assert "the index feed moves up to 500 bps per update" in plan.refusal.reason
    refused_at_execution(client, plan, BOB, reasons.PERP_FEED_MOVE_REACHES_MAINTENANCE)
    sent(client, perps.plan_close(client, ALICE, 1), ALICE)
    assert executed(client, ALICE).size == 0


def test_create_is_refused_as_the_factory_refuses(client: Client, world: SpvWorld):
    again = perps.plan_create(client, DEPLOYER, INDEX_FEED, PARAMS)
    refused_alike(client, again, DEPLOYER, reasons.PERP_FACTORY_MARKET_ALREADY_EXISTS)
    stranger = perps.plan_create(client, STRANGER, INDEX_FEED, PARAMS)
    assert "lacks the perp factory's MARKET_CREATOR_ROLE" in stranger.refusal.reason
    # Another stablecoin on the same feed: the feed's move limit must suit the margins.
    other = client.chain.deploy("MockStablecoin", [], DEPLOYER).contract_address
    set_move_limit(client, 0)
    wide = perps.plan_create(client, DEPLOYER, INDEX_FEED, PARAMS, asset=other)
    assert "the index feed's move limit is no limit per update" in wide.refusal.reason
    refused_alike(client, wide, DEPLOYER, reasons.PERP_FEED_MOVE_REACHES_MAINTENANCE)
    set_move_limit(client, MAX_MOVE_BPS)
    number, _ = perps.created(client, sent(client, perps.plan_create(
        client, DEPLOYER, INDEX_FEED, PARAMS, asset=other), DEPLOYER)[-1])
    refused_alike(client, perps.plan_setup(client, STRANGER, number), STRANGER,
                  reasons.ACCESS_CONTROL_MISSING_ROLE)
    sent(client, perps.plan_setup(client, DEPLOYER, number, keeper_fee="0.5", max_age=600),
         DEPLOYER)
    assert perps.market(client, number).window == perps.OrderWindow(
        min_delay=0, max_age=600, keeper_fee=USDC // 2)
    with pytest.raises(BadInput, match="the oracle hub has no feed NOPE/USD/GPUh"):
        perps.plan_create(client, DEPLOYER, "NOPE/USD/GPUh", PARAMS)
    with pytest.raises(BadInput, match="unknown perp market 9"):
        perps.market(client, 9)


def test_the_open_interest_cap(client: Client, world: SpvWorld):
    sent(client, pools.plan_mint_mock(client, DEPLOYER, STRANGER, 1_500_000 * USDC), DEPLOYER)
    plan = perps.plan_commit(client, STRANGER, 1, -600_000 * WAD, margin=2_000_000 * USDC,
                             slippage="50")
    assert "caps: long 500,000 GPU-hours, short 500,000 GPU-hours" in plan.refusal.reason
    refused_at_execution(client, plan, STRANGER, reasons.PERP_SHORT_OPEN_INTEREST_CAP)


def test_fees_are_collected_for_the_recipient(client: Client, world: SpvWorld):
    refused_alike(client, perps.plan_collect_fees(client, BOB, 1), BOB,
                  reasons.PERP_NO_FEES_COLLECT)
    fill = open_(client, ALICE, 3_000, 1_500)
    done = perps.outcome(client, 1, sent(client, perps.plan_collect_fees(client, BOB, 1), BOB))
    assert done.fees_collected == fill.fee


def test_sizes_and_amounts_are_parsed_or_refused(client: Client, world: SpvWorld):
    assert perps.parse_size("4608.5", "--long") == 4_608_500_000_000_000_000_000
    with pytest.raises(BadInput, match="--long: must be a positive amount"):
        perps.parse_size("-1", "--long")
    with pytest.raises(BadInput, match="max_leverage: must be positive"):
        perps.risk_params(6, max_leverage="0")
    assert perps.risk_params(6, max_leverage="3").initial_margin_bps == 3_334
    assert perps.risk_params(6) == PARAMS.model_copy(update={"max_funding_velocity":
                                                             3 * WAD // 100})
    assert perp.acceptable_price(2 * WAD, 1, Decimal(1)) == 202 * WAD // 100
    with pytest.raises(BadInput, match="order_min_delay: 'soon' is not a whole number"):
        perps.plan_set(client, DEPLOYER, 1, order_min_delay="soon")
