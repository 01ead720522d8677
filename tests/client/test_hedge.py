"""`gpushares.client.hedge` against the real suite on titanoboa: the hedge sells active
GPUs x hours x the attested (or given) utilisation as an order, its margin is the
notional over the leverage plus fee, premium and the order's keeper fee (raised to the
initial margin when that is more), a keeper executes it at the next round as quoted,
and whatever the index does the hedged revenue stays where the fill locked it.

The world: `test_perp`'s market 1 (H100 index at 2.40) and SPV 1's 8 H100s; the
operator holds 1,000,000 mUSDC (the suite funds it).
"""

from __future__ import annotations

from decimal import Decimal

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpushares import perp, reasons
from gpushares.client import hedge as hedges
from gpushares.client import perp as perps
from gpushares.client.chain import Refused
from gpushares.client.context import Client
from gpushares.client.units import BadInput
from tests.budgets import budget
from tests.client.conftest import DEPLOYER, OPERATOR, refused_alike, sent
from tests.client.test_perp import (
    ORDER_FEE,
    PARAMS,
    executed,
    next_round,
    perp_market,
    refused_at_execution,
)
from tests.client.test_pool import HEARTBEAT, SpvWorld, spv_world
from tests.contracts.helpers import SHARES_PER_GPU, make_lei

WAD = perp.WAD
SCALE = perp.value_scale(6)
GPUS, HOURS = 8, 720


@pytest.fixture(scope="module")
def world(client: Client) -> SpvWorld:
    result = spv_world(client)
    perp_market(client, result)
    return result


def test_without_an_attested_utilisation_the_hedge_asks_for_one(client: Client,
                                                                world: SpvWorld):
    assert hedges.attested_utilisation(client, 1) is None
    with pytest.raises(BadInput, match="no attested utilisation for LSH1.*pass --utilisation"):
        hedges.quote(client, OPERATOR, 1, 1, HOURS)


def test_the_dry_run_sizes_the_margin_and_the_scenarios(client: Client, world: SpvWorld):
    h = hedges.quote(client, OPERATOR, 1, 1, HOURS, utilisation="0.85", source="--utilisation")
    size = perp.hedge_size(GPUS, HOURS, Decimal("0.85"))
    assert h.size == size == 4_896 * WAD and h.refusal is None and not h.margin_raised
    premium, fill = perp.premium(240 * WAD // 100, 0, -size, PARAMS.skew_scale, SCALE)
    fee = perp.trade_fee(0, -size, fill, PARAMS, SCALE)
    assert (h.fill_price, h.fee, h.premium, h.keeper_fee) == (fill, fee, premium, ORDER_FEE)
    assert h.acceptable_price == perp.acceptable_price(fill, -size, Decimal(1))
    notional = perp.ceil_div(size * fill, SCALE)
    assert h.margin == perp.ceil_div(notional, 2) + fee + premium + ORDER_FEE
    text = "\n".join(h.lines())
    for label, value in (("GPUs (active)", "8"), ("hours", "720"),
                         ("utilisation", "85.00% (--utilisation)"),
                         ("GPU-hours hedged", "4,896 GPU-hours (short)"),
                         ("index price", "2.400000 USD/GPU-h"),
                         ("margin posted", f"{h.asset.fmt(h.margin)} (leverage 2x; 1 mUSDC of it "
                                           "reserved for the keeper)")):
        assert f"{label:<20} {value}" in text, text
    assert [s.move for s in h.scenarios] == list(hedges.MOVES)
    # Whatever the index does, the hedged revenue stays where the fill locked it.
    assert {s.hedged for s in h.scenarios} <= set(range(h.revenue - fee - 1, h.revenue - fee + 1))
    assert [s.unhedged for s in h.scenarios] == sorted(s.unhedged for s in h.scenarios)


@settings(budget("client_hedge_scenarios"))
@given(util_bps=st.integers(1, 10_000), hours=st.integers(1, 2_000),
       leverage=st.sampled_from(["1", "2", "3.5", "5"]))
def test_the_hedged_revenue_does_not_move_with_the_index(client: Client, world: SpvWorld,
                                                         util_bps: int, hours: int,
                                                         leverage: str):
    h = hedges.quote(client, OPERATOR, 1, 1, hours, utilisation=Decimal(util_bps) / 10_000,
                     leverage=leverage)
    assert h.size == perp.hedge_size(GPUS, hours, Decimal(util_bps) / 10_000)
    if h.refusal is None:
        locked = h.revenue - h.fee  # the premium is in the fill already
        assert all(abs(s.hedged - locked) <= 2 for s in h.scenarios)  # three floors apart
        assert h.margin >= perp.initial_margin(-h.size, h.index_price, PARAMS, SCALE)


def test_the_hedge_sells_the_attested_utilisation(client: Client, world: SpvWorld):
    world.oracle.utilisation(world.token, 8_000)
    attested = hedges.attested_utilisation(client, 1)
    assert attested is not None and attested.bps == 8_000
    h = hedges.quote(client, OPERATOR, 1, 1, HOURS)
    assert h.size == 4_608 * WAD and h.source.startswith("oracle: 8 GPUs reporting")
    plan = hedges.plan_hedge(client, OPERATOR, h)
    assert [tx.function for tx in plan.txs] == ["approve", "deposit_margin", "commit_order"]
    assert plan.txs[-1].args == (-h.size, h.acceptable_price)
    sent(client, plan, OPERATOR)
    order = perps.order(client, 1, OPERATOR)
    assert order is not None and order.size_delta == -h.size
    assert h.committed(order).startswith("hedge order committed: sell 4,608 GPU-hours in "
                                         "market 1")
    fill = executed(client, OPERATOR)  # the keeper, at the next round (same index)
    after = perps.position(client, 1, OPERATOR)
    assert after.size == -h.size and fill.fill_price == h.fill_price
    assert after.margin == h.margin - ORDER_FEE - fill.fee - fill.premium
    assert h.done(fill, after).startswith(
        f"hedged: short 4,608 GPU-hours in market 1, margin {h.asset.fmt(after.margin)}")


def test_high_leverage_raises_the_margin_to_the_initial_margin(client: Client,
                                                               world: SpvWorld):
    h = hedges.quote(client, OPERATOR, 1, 1, HOURS, utilisation="0.85", leverage="10")
    assert h.margin_raised and h.refusal is None
    assert "margin raised to" in h.lines()[0]
    sent(client, hedges.plan_hedge(client, OPERATOR, h), OPERATOR)
    assert executed(client, OPERATOR).size == -h.size


def test_a_hedge_is_refused_as_the_market_refuses_it(client: Client, world: SpvWorld):
    with pytest.raises(BadInput, match="above market 1's max leverage 10.00x"):
        hedges.quote(client, OPERATOR, 1, 1, HOURS, utilisation="0.85", leverage="20")
    with pytest.raises(BadInput, match="utilisation: a fraction in"):
        hedges.quote(client, OPERATOR, 1, 1, HOURS, utilisation="85")
    # Paused: the commit would go through, its execution would not.
    sent(client, perps.plan_set(client, DEPLOYER, 1, paused=True), DEPLOYER)
    h = hedges.quote(client, OPERATOR, 1, 1, HOURS, utilisation="0.85")
    plan = hedges.plan_hedge(client, OPERATOR, h)
    assert h.refusal == reasons.PERP_NEW_RISK_PAUSED_GUARDIAN
    assert str(plan.refusal).startswith("hedge refused, nothing sent")
    refused_at_execution(client, plan, OPERATOR, reasons.PERP_NEW_RISK_PAUSED_GUARDIAN)
    sent(client, perps.plan_set(client, DEPLOYER, 1, paused=False), DEPLOYER)
    # One order at a time.
    sent(client, hedges.plan_hedge(client, OPERATOR, h), OPERATOR)
    refused_alike(client, hedges.plan_hedge(client, OPERATOR, h), OPERATOR,
                  reasons.PERP_ORDER_ALREADY_PENDING)


def test_a_stale_index_still_takes_the_hedges_order(client: Client, world: SpvWorld):
    boa.env.time_travel(seconds=HEARTBEAT + 3_600)
    h = hedges.quote(client, OPERATOR, 1, 1, HOURS, utilisation="0.85")
    plan = hedges.plan_hedge(client, OPERATOR, h)
    assert h.refusal is None and plan.refusal is None
    assert any("stale or halted now" in note for note in plan.notes)
    sent(client, plan, OPERATOR)
    refused_alike(client, perps.plan_execute(client, OPERATOR, 1, OPERATOR), OPERATOR,
                  reasons.PERP_INDEX_PRICE_STALE_OR_HALTED)
    next_round(client)
    assert perps.execution(client, 1, OPERATOR).refusal is None


def test_an_spv_without_active_gpus_has_nothing_to_hedge(client: Client, world: SpvWorld):
    client.chain.send(client.spv_factory().create_spv.tx(
        "Empty Fleet LLC", 840, make_lei("CLIENTTEST00000002"), b"\x02" * 32, "Empty Shares",
        "EMP1", SHARES_PER_GPU, client.deployed.income_token), OPERATOR)
    with pytest.raises(Refused, match=r"SPV 2 \(EMP1\) has no active GPUs"):
        hedges.quote(client, OPERATOR, 1, 2, HOURS, utilisation="0.85")
