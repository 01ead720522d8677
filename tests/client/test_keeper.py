"""`gpushares.client.keeper` against the real suite on titanoboa: a pass finds what the
mirrors (and the market's `can_liquidate`) say is liquidatable, sends nothing when the
keeper may not take the collateral or the price is stale, liquidates what it planned,
and a second pass finds nothing.

The world (module-scoped, each test rolls back to it): lending market 1 and perp market
1 as in `test_pool` and `test_perp`; Bob's loan at 69 % of his collateral's value and
Bob's ~9x perp long, then the NAV and the index falling so both can be liquidated.
"""

from __future__ import annotations

from decimal import Decimal

import boa
import pytest

from gpushares import lending, perp, reasons
from gpushares.client import keeper as keepers
from gpushares.client import perp as perps
from gpushares.client import pool as pools
from gpushares.client.context import Client
from gpushares.client.units import BadInput
from oracle.reports import feed_id
from tests.client.conftest import ALICE, BOB, DEPLOYER, STRANGER, refused_alike, sent
from tests.client.test_perp import PARAMS, open_, perp_market
from tests.client.test_pool import (
    BLOCKED,
    HEARTBEAT,
    INDEX_FEED,
    KEEPER,
    NAV_FEED,
    NORTH_KOREAN,
    NOT_REGISTERED,
    SHARE,
    USDC,
    SpvWorld,
    borrow,
    lending_market,
    spv_world,
)

WAD = perp.WAD
SCALE = perp.value_scale(6)
A100 = "A100-SXM-80GB/USD/GPUh"


@pytest.fixture(scope="module")
def world(client: Client) -> SpvWorld:
    """Both markets, Bob's loan and Bob's long, then the fall: NAV 15 -> 12.5, index
    2.40 -> 2.20."""
    result = spv_world(client)
    lending_market(client, result)
    perp_market(client, result)
    result.extra["loan"] = borrow(client, Decimal("0.69"))
    open_(client, ALICE, 3_000, 1_500)
    open_(client, BOB, 4_000, 1_100)
    result.oracle.publish(NAV_FEED, "12.5")
    result.oracle.publish(INDEX_FEED, "2.20")
    return result


def balances(client: Client, who: str) -> tuple[int, int]:
    stable = client.erc20(client.deployed.income_token)
    return int(stable.balanceOf(who)), int(client.token(1).balanceOf(who))


def test_the_pass_finds_the_loan_and_the_position_and_a_dry_run_sends_nothing(
        client: Client, world: SpvWorld):
    head = client.chain.head()
    plan = keepers.plan_pass(client, KEEPER)
    assert plan.refusal is None and (plan.loans_due, plan.positions_due) == (1, 1)
    (loan,) = plan.lending[0].due
    book = pools.loans(client, 1)
    assert loan.borrower == BOB and loan.debt == book.loans[0].debt
    assert (loan.repaid, loan.seized, loan.bad_debt) == keepers.predict(
        book, book.loans[0], keepers.MAX_UINT256)
    text = "\n".join(plan.lines(dry_run=True))
    for fragment in ("market 1 (LSH1/mUSDC): 1 open loan(s), 1 liquidatable at 12.5 USD per share",
                     f"{BOB}: debt 2,587", "-> would repay",
                     "dry run: 1 loan(s) would be liquidated; nothing sent",
                     f"perp market 1 ({INDEX_FEED} / mUSDC): 2 open position(s), 1 liquidatable "
                     "at 2.200000 USD/GPU-h",
                     f"{BOB}: long 4,000 GPU-hours, equity",
                     "-> would liquidate: keeper fee 49 mUSDC, bad debt 0 mUSDC",
                     "dry run: 1 position(s) would be liquidated; nothing sent"):
        assert fragment in text, text
    assert [tx.function for tx in plan.lending[0].txs] == ["approve", "liquidate"]
    assert client.chain.head() == head


def test_a_keeper_who_may_not_hold_the_collateral_is_refused_before_any_transaction(
        client: Client, world: SpvWorld):
    for keeper, code, message in ((STRANGER, 6, NOT_REGISTERED), (NORTH_KOREAN, 9, BLOCKED)):
        plan = keepers.plan_pass(client, keeper, [1], [])
        assert plan.refusal is not None
        assert (f"{keeper} may not hold LSH1 collateral (ERC-1404 code {code}): {message}"
                in plan.refusal.reason)
        assert str(plan.refusal).startswith("keeper refused, nothing sent")
        before = balances(client, BOB), pools.loans(client, 1)
        done = keepers.run(client, keeper, plan)
        assert done.errors and done.loans == 0
        assert (balances(client, BOB), pools.loans(client, 1)) == before
        # The pool refuses the keeper with the share token's own message.
        refused_alike(client, pools.plan_liquidate(client, keeper, 1, BOB), keeper, message)


def test_a_keeper_without_the_loan_asset_is_refused(client: Client, world: SpvWorld):
    poor = boa.env.generate_address("client-poor-keeper")
    client.chain.send(client.registry().set_investor.tx(poor, 840, True, 2**40), DEPLOYER)
    plan = keepers.plan_pass(client, poor, [1], [])
    assert plan.refusal is not None and f"{poor} holds 0 mUSDC, the liquidations need" in \
        plan.refusal.reason


def test_the_keeper_liquidates_both_and_a_second_pass_finds_nothing(client: Client,
                                                                    world: SpvWorld):
    plan = keepers.plan_pass(client, KEEPER)
    (expected,) = plan.lending[0].due
    cash_before, shares_before = balances(client, KEEPER)
    lines: list[str] = []
    done = keepers.run(client, KEEPER, plan, on_line=lines.append)
    assert done.errors == [] and (done.loans, done.positions) == (1, 1)
    cash, shares = balances(client, KEEPER)
    fee = perp.keeper_fee(4_000 * WAD, 220 * WAD // 100, PARAMS, SCALE)
    assert fee == 49 * USDC
    repaid = cash_before - (cash - fee)
    assert expected.debt <= repaid <= expected.debt + expected.debt // 10_000 + 1
    assert shares - shares_before == expected.seized > 0
    collateral, debt, _ = client.chain.contract("LendingPool", plan.lending[0].address).position(
        BOB)
    assert collateral == 250 * SHARE - expected.seized
    assert debt == 0 or not lending.health(pools.loans(client, 1).params, collateral, debt,
                                           12_5000_0000).liquidatable
    assert perps.position(client, 1, BOB).size == 0
    text = "\n".join(lines)
    assert f"{BOB}: debt 2,587" in text and "bad debt written off 0 mUSDC" in text
    assert "liquidated 1 loan(s) (market 1: repaid" in text and "bad debt 0 mUSDC)" in text
    assert f"{BOB}: long 4,000 GPU-hours closed at 2.200000 USD/GPU-h" in text
    assert "liquidated 1 position(s) (perp market 1: keeper fees 49 mUSDC, bad debt 0 mUSDC)" \
        in text
    again = keepers.plan_pass(client, KEEPER)
    assert (again.loans_due, again.positions_due) == (0, 0)
    text = "\n".join(again.lines())
    assert "no unhealthy loans" in text and "no liquidatable positions" in text


def test_a_stale_price_and_index_pause_the_keeper(client: Client, world: SpvWorld):
    boa.env.time_travel(seconds=HEARTBEAT + 3_600)
    plan = keepers.plan_pass(client, KEEPER)
    assert (plan.loans_due, plan.positions_due) == (0, 0)
    text = "\n".join(plan.lines())
    for fragment in (f"market 1: {reasons.POOL_COLLATERAL_PRICE_STALE_OLDER}: liquidations are "
                     "paused until a fresh price, skipped",
                     "no unhealthy loans (1 market(s) skipped: stale price)",
                     f"perp market 1: {reasons.PERP_INDEX_PRICE_STALE_OLDER}: liquidations wait "
                     "for a fresh index, skipped",
                     "no liquidatable positions (1 perp market(s) skipped: stale index)"):
        assert fragment in text, text
    assert keepers.run(client, KEEPER, plan).errors == []


def test_the_markets_a_pass_covers(client: Client, world: SpvWorld):
    perps_only = keepers.plan_pass(client, KEEPER, [], [1])
    assert perps_only.lending == [] and "no unhealthy loans" not in "\n".join(perps_only.lines())
    lending_only = keepers.plan_pass(client, KEEPER, [1], [])
    assert lending_only.perps == [] and "position" not in "\n".join(lending_only.lines())
    with pytest.raises(BadInput, match="unknown perp market 3"):
        keepers.plan_pass(client, KEEPER, [], [3])
    with pytest.raises(BadInput, match="keeper: 'k' is not an address"):
        keepers.plan_pass(client, "k")


def test_a_capped_repayment_liquidates_part_of_the_loan(client: Client, world: SpvWorld):
    plan = keepers.plan_pass(client, KEEPER, [1], [], max_repay="500")
    (due,) = plan.lending[0].due
    assert due.repaid == 500 * USDC and due.bad_debt == 0
    keepers.run(client, KEEPER, plan)
    assert pools.position(client, 1, BOB).debt == pytest.approx(due.debt - 500 * USDC, abs=10)


def test_a_bad_debt_liquidation_records_a_deficit_that_pauses_new_risk(client: Client,
                                                                       world: SpvWorld):
    """Market 2 on the A100 index with 10 of insurance: a long and a short of 4,000
    GPU-hours; the index falls 20 %, the long's loss exceeds its margin and the
    insurance, a deficit is recorded and new risk pauses until it is funded."""
    hub = client.hub()
    client.chain.send(hub.add_feed.tx(bytes.fromhex(feed_id(A100)[2:]), A100, 1, 50 * 10**8, 0,
                                      HEARTBEAT), DEPLOYER)
    world.oracle.publish(A100, "1.50")
    plan = perps.plan_create(client, DEPLOYER, A100, PARAMS)
    number, _ = perps.created(client, sent(client, plan, DEPLOYER)[-1])
    sent(client, perps.plan_fund_insurance(client, DEPLOYER, number, 10 * USDC), DEPLOYER)
    for who, size, margin in ((BOB, 4_000, 650), (STRANGER, -4_000, 2_000)):
        sent(client, perps.plan_open(client, who, number, size * WAD, margin=margin * USDC), who)
    world.oracle.publish(A100, "1.20")
    bob = perps.position(client, number, BOB)
    assert bob.liquidatable and bob.equity < -10 * USDC
    lines: list[str] = []
    done = keepers.run(client, KEEPER, keepers.plan_pass(client, KEEPER, [], [number]),
                       on_line=lines.append)
    assert done.positions == 1
    view = perps.market(client, number)
    assert view.deficit > 0
    text = "\n".join(lines)
    assert f"insurance fund exhausted: deficit {view.asset.fmt(view.deficit)} recorded" in text
    assert "keeper fee 29 mUSDC, bad debt" in text
    assert "new risk paused by the recorded deficit" in "\n".join(view.lines())
    opening = perps.plan_open(client, ALICE, number, 100 * WAD, margin=100 * USDC)
    assert "`ape run perp fund-insurance`" in opening.refusal.reason
    refused_alike(client, opening, ALICE, reasons.PERP_INSURANCE_DEFICIT_RECORDED_NEW)
    funding = perps.plan_fund_insurance(client, DEPLOYER, number, 1_000 * USDC)
    assert "covers the deficit: new risk resumes" in funding.notes[0]
    sent(client, funding, DEPLOYER)
    assert perps.market(client, number).deficit == 0
    sent(client, perps.plan_open(client, ALICE, number, 100 * WAD, margin=100 * USDC), ALICE)
