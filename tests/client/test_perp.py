"""`gpushares.client.perp` against the real suite on titanoboa: quotes are the market's
answer (the fill it gives, or the refusal it gives, with the same words), the views
read what the market's views say, and every plan either goes through or is refused
before anything is sent.

The world (module-scoped, each test rolls back to it): `tests.client.test_pool`'s SPV
world, the H100 index at 2.40 USD/GPU-hour, and perp market 1 created by the platform
with the default risk parameters, a fast funding velocity (300 %/day per day) and 2,000
mUSDC of insurance. Alice (a startup), Bob (a speculator) and the keeper get mUSDC.
"""

from __future__ import annotations

from decimal import Decimal

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpushares import perp, reasons
from gpushares.client import perp as perps
from gpushares.client.chain import Refused
from gpushares.client.context import Client
from gpushares.client.units import BadInput
from tests.budgets import budget
from tests.client.conftest import ALICE, BOB, DEPLOYER, OPERATOR, STRANGER, refused_alike, sent
from tests.client.test_pool import (
    HEARTBEAT,
    INDEX_FEED,
    USDC,
    SpvWorld,
    spv_world,
)
from tests.client.test_pool import lend as pools

WAD = perp.WAD
DAY = 86_400
INSURANCE = 2_000 * USDC
PARAMS = perp.RiskParams(
    skew_scale=1_000_000, max_long_oi=500_000, max_short_oi=500_000, initial_margin_bps=1_000,
    maintenance_margin_bps=500, taker_fee_bps=10, maker_fee_bps=5, liquidation_fee_bps=50,
    min_keeper_fee=5 * USDC, max_funding_velocity=3 * WAD, max_funding_rate=5 * WAD // 100,
)


def perp_market(client: Client, world: SpvWorld) -> int:
    """Market 1 on the H100 index at 2.40, seeded with 2,000 of insurance; 20,000 mUSDC
    each to Alice, Bob and the stranger, 100,000 to the platform."""
    world.oracle.publish(INDEX_FEED, "2.40")
    for who, amount in ((DEPLOYER, 100_000), (ALICE, 20_000), (BOB, 20_000),
                        (STRANGER, 1_000_000)):
        sent(client, pools.plan_mint_mock(client, DEPLOYER, who, amount * USDC), DEPLOYER)
    params = perps.risk_params(6, max_funding_velocity="300")
    plan = perps.plan_create(client, DEPLOYER, INDEX_FEED, params, insurance=INSURANCE)
    number, _ = perps.created(client, sent(client, plan, DEPLOYER)[-1])
    sent(client, perps.plan_fund_insurance(client, DEPLOYER, number, INSURANCE), DEPLOYER)
    return number


@pytest.fixture(scope="module")
def world(client: Client) -> SpvWorld:
    result = spv_world(client)
    result.extra["market"] = perp_market(client, result)
    return result


def open_(client: Client, who: str, size: int, margin: int) -> perps.Fill:
    """`who` trades `size` GPU-hours after depositing `margin` mUSDC."""
    plan = perps.plan_open(client, who, 1, size * WAD, margin=margin * USDC)
    (fill,) = perps.outcome(client, 1, sent(client, plan, who)).fills
    return fill


def test_create_sets_the_parameters_and_seeds_the_insurance(client: Client, world: SpvWorld):
    view = perps.market(client, 1)
    assert view.params == PARAMS and view.fee_recipient == DEPLOYER
    market = client.chain.contract("PerpMarket", view.address)
    for role in (perps.RISK_ADMIN_ROLE, perps.GUARDIAN_ROLE):
        assert market.hasRole(role, DEPLOYER)
    assert view.insurance == INSURANCE == market.cash() == market.insurance_fund()
    lines = "\n".join(view.created_lines(DEPLOYER))
    assert f"market 1: PerpMarket {view.address}" in lines
    assert "max leverage 10.00x (initial margin 10.00%), maintenance 5.00%" in lines


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
        "index 2.400000 USD/GPU-h, fresh, updated", f"(heartbeat {HEARTBEAT}s)",
        "open interest long 0 GPU-hours, short 0 GPU-hours",
        "funding rate 0.0000%/day (0.0000% a year), nobody pays",
        "insurance fund 2,000 mUSDC, deficit 0 mUSDC, fees uncollected 0 mUSDC", "paused: no",
        "positions: none",
    ):
        assert fragment in text, text


def test_an_open_fills_as_quoted_and_the_position_reads_the_views(client: Client,
                                                                  world: SpvWorld):
    q = perps.quote(client, 1, ALICE, 3_000 * WAD, margin=1_500 * USDC)
    assert q.refusal is None and q.size_after == 3_000 * WAD
    plan = perps.plan_open(client, ALICE, 1, 3_000 * WAD, margin=1_500 * USDC)
    assert [tx.function for tx in plan.txs] == ["approve", "deposit_margin", "modify_position"]
    assert plan.notes[0] == q.line()
    (fill,) = perps.outcome(client, 1, sent(client, plan, ALICE)).fills
    assert (fill.fill_price, fill.fee, fill.premium) == (q.fill_price, q.fee, q.premium)
    assert fill.margin == q.margin_after == 1_500 * USDC - q.fee - q.premium
    assert "filled buy 3,000 GPU-hours at 2.403600 USD/GPU-h (index 2.400000 USD/GPU-h)" in \
        fill.describe(q.asset)
    mine = perps.position(client, 1, ALICE)
    market = client.chain.contract("PerpMarket", perps.market(client, 1).address)
    assert (mine.size, mine.margin, mine.equity, mine.liquidation_price) == (
        3_000 * WAD, fill.margin, market.equity(ALICE), market.liquidation_price(ALICE))
    assert mine.liquidation_price == q.liquidation_price
    assert mine.describe().startswith(f"{ALICE}: long 3,000 GPU-hours in market 1, margin")


def test_over_leverage_is_refused_like_the_market_does(client: Client, world: SpvWorld):
    plan = perps.plan_open(client, BOB, 1, 20_000 * WAD, margin=1_000 * USDC)
    assert str(plan.refusal).startswith(
        f"trade refused, nothing sent: {reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN}")
    assert "trade at most" in plan.refusal.reason and "max leverage 10.00x" in plan.refusal.reason
    refused_alike(client, plan, BOB, reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN)


@settings(budget("client_perp_quote"))
@given(size=st.integers(-60_000, 60_000).filter(bool), margin=st.integers(0, 8_000),
       long_first=st.booleans())
def test_the_quote_is_the_markets_answer(client: Client, world: SpvWorld, size: int,
                                         margin: int, long_first: bool):
    """Whatever the trade: refused by the plan with a message exactly when the market
    refuses it with that message; otherwise filled at the quote."""
    with boa.env.anchor():
        open_(client, ALICE, 3_000 if long_first else -3_000, 1_500)
        plan = perps.plan_open(client, BOB, 1, size * WAD, margin=margin * USDC)
        if plan.refusal is not None:
            reason = plan.refusal.reason
            expected = next(r for r in (
                reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN, reasons.PERP_MARGIN_DOES_NOT_COVER,
                reasons.PERP_LONG_OPEN_INTEREST_CAP, reasons.PERP_SHORT_OPEN_INTEREST_CAP,
                reasons.PERP_FILL_PRICE_WORSE_ACCEPTABLE) if reason.startswith(r))
            refused_alike(client, plan, BOB, expected)
            return
        q = perps.quote(client, 1, BOB, size * WAD, margin=margin * USDC)
        (fill,) = perps.outcome(client, 1, sent(client, plan, BOB)).fills
        assert (fill.fill_price, fill.fee, fill.premium, fill.margin) == (
            q.fill_price, q.fee, q.premium, q.margin_after)


def test_status_lists_the_positions_as_the_views_value_them(client: Client, world: SpvWorld):
    open_(client, ALICE, 3_000, 1_500)
    open_(client, OPERATOR, -1_000, 1_000)
    view = perps.market(client, 1)
    assert (view.long_oi, view.short_oi, view.skew) == (3_000 * WAD, 1_000 * WAD, 2_000 * WAD)
    text = "\n".join(view.lines())
    assert "skew 2,000 GPU-hours (longs heavier)" in text
    market = client.chain.contract("PerpMarket", view.address)
    shown = perps.positions(client, 1)
    assert [p.account for p in shown] == [ALICE, OPERATOR]
    for p in shown:
        assert (p.pnl, p.funding, p.equity, p.ratio, p.liquidatable) == (
            market.pnl(p.account), market.funding_owed(p.account), market.equity(p.account),
            market.margin_ratio(p.account), market.can_liquidate(p.account))
        assert p.line() in "\n".join(perps.position_lines(shown, True))


def test_funding_runs_from_the_heavier_side(client: Client, world: SpvWorld):
    open_(client, ALICE, 3_000, 1_500)
    open_(client, OPERATOR, -1_000, 1_000)
    boa.env.time_travel(seconds=DAY)
    world.oracle.publish(INDEX_FEED, "2.40")
    view = perps.market(client, 1)
    assert view.funding_rate > 0
    assert "longs pay shorts" in "\n".join(view.lines())
    alice, operator = perps.position(client, 1, ALICE), perps.position(client, 1, OPERATOR)
    assert alice.funding > 0 > operator.funding
    # The other way round: shorts heavier, shorts pay.
    open_(client, STRANGER, -5_000, 5_000)
    boa.env.time_travel(seconds=2 * DAY)
    world.oracle.publish(INDEX_FEED, "2.40")
    view = perps.market(client, 1)
    assert view.funding_rate < 0 and "shorts pay longs" in "\n".join(view.lines())


def test_a_lower_index_makes_the_over_levered_long_liquidatable(client: Client,
                                                                world: SpvWorld):
    open_(client, ALICE, 3_000, 1_500)
    open_(client, BOB, 4_000, 1_100)
    world.oracle.publish(INDEX_FEED, "2.20")
    shown = {p.account: p for p in perps.positions(client, 1)}
    assert shown[BOB].liquidatable and not shown[ALICE].liquidatable
    assert "\n".join(perps.position_lines(list(shown.values()), True)).count("LIQUIDATABLE") == 1
    refused_alike(client, perps.plan_open(client, BOB, 1, -100 * WAD), BOB,
                  reasons.PERP_POSITION_BELOW_MAINTENANCE_MARGIN)


def test_withdrawals_keep_the_initial_margin(client: Client, world: SpvWorld):
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
    with pytest.raises(Refused, match="has no margin in market 1"):
        perps.plan_withdraw(client, BOB, 1)


def test_pause_refuses_opens_but_not_closes(client: Client, world: SpvWorld):
    open_(client, ALICE, 3_000, 1_500)
    sent(client, perps.plan_set(client, DEPLOYER, 1, maintenance_margin="4", paused=True),
         DEPLOYER)
    view = perps.market(client, 1)
    assert view.params == PARAMS.model_copy(update={"maintenance_margin_bps": 400})
    assert view.paused and "PAUSED (no opens or increases)" in "\n".join(view.risk_lines())
    refused_alike(client, perps.plan_open(client, BOB, 1, 100 * WAD, margin=100 * USDC), BOB,
                  reasons.PERP_NEW_RISK_PAUSED_GUARDIAN)
    (fill,) = perps.outcome(client, 1, sent(client, perps.plan_close(client, ALICE, 1),
                                            ALICE)).fills
    assert fill.size == 0 and fill.size_delta == -3_000 * WAD
    done = perps.outcome(client, 1, sent(client, perps.plan_withdraw(client, ALICE, 1), ALICE))
    assert done.withdrawn == fill.margin > 0
    assert perps.position(client, 1, ALICE).describe() == \
        f"{ALICE}: flat in market 1, margin 0 mUSDC"
    with pytest.raises(Refused, match="no open position"):
        perps.plan_close(client, ALICE, 1)


def test_a_stale_index_refuses_trades(client: Client, world: SpvWorld):
    open_(client, ALICE, 3_000, 1_500)
    boa.env.time_travel(seconds=HEARTBEAT + 3_600)
    view = perps.market(client, 1)
    assert not view.index.fresh and view.index.refusal == reasons.PERP_INDEX_PRICE_STALE_OLDER
    assert perps.STALE_NOTE in "\n".join(view.lines())
    assert "positions (1) at the stale index:" in perps.position_lines(
        perps.positions(client, 1), view.index.fresh)[0]
    refused_alike(client, perps.plan_open(client, BOB, 1, 10 * WAD, margin=100 * USDC), BOB,
                  reasons.PERP_INDEX_PRICE_STALE_OLDER)
    refused_alike(client, perps.plan_withdraw(client, ALICE, 1, USDC), ALICE,
                  reasons.PERP_INDEX_PRICE_STALE_OLDER)


def test_risk_parameters_are_checked_as_the_market_checks_them(client: Client,
                                                               world: SpvWorld):
    refused_alike(client, perps.plan_set(client, DEPLOYER, 1, maintenance_margin="12"),
                  DEPLOYER, reasons.PERP_NEED_0_MAINTENANCE_LIQUIDATION)
    refused_alike(client, perps.plan_set(client, DEPLOYER, 1, maker_fee="0.5"), DEPLOYER,
                  reasons.PERP_FEES_ABOVE_THEIR_CAPS)
    refused_alike(client, perps.plan_set(client, BOB, 1, taker_fee="0.2"), BOB,
                  reasons.ACCESS_CONTROL_MISSING_ROLE)
    with pytest.raises(BadInput, match="nothing to change"):
        perps.plan_set(client, DEPLOYER, 1)
    with pytest.raises(BadInput, match="fee_recipient: 'nobody' is not an address"):
        perps.plan_set(client, DEPLOYER, 1, fee_recipient="nobody")


def test_create_is_refused_as_the_factory_refuses(client: Client, world: SpvWorld):
    again = perps.plan_create(client, DEPLOYER, INDEX_FEED, PARAMS)
    refused_alike(client, again, DEPLOYER, reasons.PERP_FACTORY_MARKET_ALREADY_EXISTS)
    stranger = perps.plan_create(client, STRANGER, INDEX_FEED, PARAMS)
    assert "lacks the perp factory's MARKET_CREATOR_ROLE" in stranger.refusal.reason
    with pytest.raises(BadInput, match="the oracle hub has no feed NOPE/USD/GPUh"):
        perps.plan_create(client, DEPLOYER, "NOPE/USD/GPUh", PARAMS)
    with pytest.raises(BadInput, match="unknown perp market 9"):
        perps.market(client, 9)


def test_the_open_interest_cap(client: Client, world: SpvWorld):
    plan = perps.plan_open(client, STRANGER, 1, -600_000 * WAD, margin=900_000 * USDC,
                           slippage="50")
    assert "caps: long 500,000 GPU-hours, short 500,000 GPU-hours" in plan.refusal.reason
    refused_alike(client, plan, STRANGER, reasons.PERP_SHORT_OPEN_INTEREST_CAP)


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
