"""`gpushares.client.keeper` against the real suite on titanoboa: a pass finds what the
mirrors (and the PerpLens's `can_liquidate` and `order_status`) say is due, sends
nothing when the keeper may not take the collateral or the price is stale, liquidates
what it planned, executes due perp orders at the first round after their commit (one
whose trade the market refuses too: it fails and is cancelled, the keeper paid all the
same), cancels expired ones, and a second pass finds nothing.

The world (module-scoped, each test rolls back to it): lending market 1 and perp market
1 as in `test_pool` and `test_perp`; Bob's loan at 69 % of his collateral's value and
Bob's ~9x perp long (an order, executed), then the NAV falling and the index walking
down in rounds within the feed's 4 % move limit, so both can be liquidated.
"""

from __future__ import annotations

from decimal import Decimal

import boa
import pytest

from gpushares import lending, perp, reasons
from gpushares.client import keeper as keepers
from gpushares.client import perp as perps
from gpushares.client import pool as pools
from gpushares.client.chain import Plan
from gpushares.client.context import Client
from gpushares.client.units import BadInput
from oracle.reports import feed_id
from tests.client.conftest import ALICE, BOB, DEPLOYER, STRANGER, refused_alike, sent
from tests.client.test_perp import (
    INDEX_FID,
    MAX_MOVE_BPS,
    ORDER_FEE,
    PARAMS,
    next_round,
    open_,
    perp_market,
    walk,
)
from tests.client.test_pool import (
    BLOCKED,
    HEARTBEAT,
    INDEX_FEED,
    KEEPER,
    NAV_FEED,
    NORTH_KOREAN,
    NOT_REGISTERED,
    SHARE,
    SIGNERS,
    USDC,
    SpvWorld,
    borrow,
    lending_market,
    spv_world,
)
from tests.contracts.oracle_helpers import publish_price

WAD = perp.WAD
SCALE = perp.value_scale(6)
A100 = "A100-SXM-80GB/USD/GPUh"


@pytest.fixture(scope="module")
def world(client: Client) -> SpvWorld:
    """Both markets, Bob's loan and Bob's long, then the fall: NAV 15 -> 12.5, index
    2.40 -> 2.20 in rounds of at most 4 %."""
    result = spv_world(client)
    lending_market(client, result)
    perp_market(client, result)
    result.extra["loan"] = borrow(client, Decimal("0.69"))
    open_(client, ALICE, 3_000, 1_500)
    open_(client, BOB, 4_000, 1_100)
    result.oracle.publish(NAV_FEED, "12.5")
    walk(client, "2.20")
    return result


def balances(client: Client, who: str) -> tuple[int, int]:
    stable = client.erc20(client.deployed.income_token)
    return int(stable.balanceOf(who)), int(client.token(1).balanceOf(who))


def keeper_margin(client: Client, number: int = 1) -> int:
    """The keeper's margin in a perp market: where executions credit its fees."""
    return perps.position(client, number, KEEPER).margin


def latest_round(client: Client) -> int:
    return int(client.hub().latest_value(INDEX_FID)[2])


def refuse_a_move(client: Client, usd: str) -> None:
    """A signed report the hub refuses (beyond the feed's move limit): the feed halts."""
    hub = client.hub()
    boa.env.time_travel(seconds=1)
    accepted, _ = publish_price(client.chain.at("OracleHub", hub.address), SIGNERS, DEPLOYER,
                                INDEX_FID, int(Decimal(usd) * 10**8),
                                int(hub.latest_value(INDEX_FID)[1]), int(hub.config_version()))
    assert not accepted


def test_the_pass_finds_the_loan_and_the_position_and_a_dry_run_sends_nothing(
        client: Client, world: SpvWorld):
    head = client.chain.head()
    plan = keepers.plan_pass(client, KEEPER)
    assert plan.refusal is None and (plan.loans_due, plan.positions_due) == (1, 1)
    assert plan.orders_due == 0 and plan.perps[0].orders == []
    (loan,) = plan.lending[0].due
    book = pools.loans(client, 1)
    assert loan.borrower == BOB and loan.debt == book.loans[0].debt
    assert (loan.repaid, loan.seized, loan.bad_debt) == keepers.predict(
        book, book.loans[0], keepers.MAX_UINT256)
    (due,) = plan.perps[0].due
    bob = perps.position(client, 1, BOB)
    assert bob.liquidatable and due.equity == bob.equity
    assert due.maintenance == perp.maintenance_margin(4_000 * WAD, 220 * WAD // 100, PARAMS,
                                                      SCALE)
    text = "\n".join(plan.lines(dry_run=True))
    for fragment in ("market 1 (LSH1/mUSDC): 1 open loan(s), 1 liquidatable at 12.5 USD per share",
                     f"{BOB}: debt 2,587", "-> would repay",
                     "dry run: 1 loan(s) would be liquidated; nothing sent",
                     f"perp market 1 ({INDEX_FEED} / mUSDC): 2 open position(s), 1 liquidatable "
                     f"at 2.200000 USD/GPU-h (round {latest_round(client)})",
                     f"{BOB}: long 4,000 GPU-hours, equity",
                     "-> would liquidate: keeper fee 49 mUSDC, bad debt 0 mUSDC",
                     "dry run: 1 position(s) would be liquidated; nothing sent",
                     "no orders to execute or cancel"):
        assert fragment in text, text
    assert [tx.function for tx in plan.lending[0].txs] == ["approve", "liquidate"]
    assert [tx.function for tx in plan.perps[0].txs] == ["liquidate"]
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
    assert (done.orders_executed, done.orders_cancelled, done.orders_refused) == (0, 0, 0)
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
    assert "executed" not in text  # no order was due
    again = keepers.plan_pass(client, KEEPER)
    assert (again.loans_due, again.positions_due, again.orders_due) == (0, 0, 0)
    text = "\n".join(again.lines())
    assert "no unhealthy loans" in text and "no liquidatable positions" in text
    assert "no orders to execute or cancel" in text


def test_the_keeper_executes_an_order_at_the_first_round_after_its_commit(client: Client,
                                                                          world: SpvWorld):
    sent(client, perps.plan_commit(client, STRANGER, 1, -1_000 * WAD, margin=500 * USDC),
         STRANGER)
    committed_at = latest_round(client)
    # No round after the commit yet: the order waits, nothing is sent for it.
    waiting = keepers.plan_pass(client, KEEPER, [], [1])
    (pending,) = waiting.perps[0].orders
    assert pending.action == "wait" and pending.order.status == perp.ORDER_WAITING
    assert waiting.orders_due == 0
    assert [tx.function for tx in waiting.perps[0].txs] == ["liquidate"]  # Bob's
    text = "\n".join(waiting.lines(dry_run=True))
    assert ("perp market 1: 1 pending order(s): 0 to execute, 0 expired to cancel, 1 waiting"
            in text)
    assert (f"{STRANGER}: order sell 1,000 GPU-hours committed at round {committed_at}: "
            "waiting for an oracle round after the commit") in text
    next_round(client, "2.25")
    plan = keepers.plan_pass(client, KEEPER, [], [1])
    (due,) = plan.perps[0].executions
    expected = perps.execution(client, 1, STRANGER)
    assert due.quote == expected and expected.refusal is None
    assert (expected.round_id, expected.index_price) == (committed_at + 1, 225 * WAD // 100)
    assert [tx.function for tx in plan.perps[0].txs] == ["liquidate", "execute_order"]
    text = "\n".join(plan.lines(dry_run=True))
    assert (f"{STRANGER}: order sell 1,000 GPU-hours committed at round {committed_at} -> would "
            f"execute at round {committed_at + 1}'s index 2.250000 USD/GPU-h: fill "
            f"{perps.fmt_price(expected.fill_price)}") in text
    assert ("dry run: 1 order(s) would be executed and 0 expired order(s) cancelled; nothing "
            "sent") in text
    cash_before, margin_before = balances(client, KEEPER)[0], keeper_margin(client)
    lines: list[str] = []
    done = keepers.run(client, KEEPER, plan, on_line=lines.append)
    assert done.errors == [] and (done.positions, done.orders_executed) == (1, 1)
    # Bob's liquidation at 2.25 (5 + 0.5 % of 9,000) is paid out; the order's keeper
    # fee is credited to the keeper's margin in the market.
    assert balances(client, KEEPER)[0] - cash_before == 50 * USDC
    assert keeper_margin(client) - margin_before == ORDER_FEE
    assert perps.position(client, 1, STRANGER).size == -1_000 * WAD
    assert perps.order(client, 1, STRANGER) is None
    text = "\n".join(lines)
    money = perps.market(client, 1).asset.fmt
    assert (f"{STRANGER}: order sell 1,000 GPU-hours committed at round {committed_at}, executed "
            f"at round {committed_at + 1}'s index 2.250000 USD/GPU-h: filled at "
            f"{perps.fmt_price(expected.fill_price)}, fee {money(expected.fee)}") in text
    assert "now short 1,000 GPU-hours; keeper fee 1 mUSDC" in text
    assert (f"keeper fees 1 mUSDC credited to {KEEPER}'s margin in perp market 1 (`ape run perp "
            "withdraw --market 1 --all`)") in text
    assert ("executed 1 order(s) (perp market 1: keeper fees 1 mUSDC), cancelled 0 expired "
            "order(s)") in text
    # Liquidations go first: Bob's line comes before the execution's.
    assert text.index(f"{BOB}: long 4,000") < text.index(f"{STRANGER}: order sell")
    again = keepers.plan_pass(client, KEEPER, [], [1])
    assert again.orders_due == 0 and again.perps[0].orders == []


def test_an_order_whose_trade_the_market_refuses_fails_and_is_cancelled(client: Client,
                                                                      world: SpvWorld):
    """A buy committed with no slippage; the next round is higher, so its fill passes the
    acceptable price: the keeper executes it all the same, the market refuses the trade
    and cancels the order (nobody can hold an order back for a better moment), and the
    keeper fee moves from the trader's margin to the keeper's."""
    sent(client, perps.plan_commit(client, STRANGER, 1, 1_000 * WAD, margin=500 * USDC,
                                   slippage="0"), STRANGER)
    n = latest_round(client)
    next_round(client, "2.28")
    plan = keepers.plan_pass(client, KEEPER, [], [1])
    (failing,) = plan.perps[0].orders
    assert failing.action == "fail" and failing.quote is not None
    assert failing.quote.refusal == reasons.PERP_FILL_PRICE_WORSE_ACCEPTABLE
    assert plan.orders_due == 1 and plan.perps[0].executions == [failing]
    assert [t.function for t in plan.perps[0].txs] == ["execute_order"]  # Bob healthy at 2.28
    text = "\n".join(plan.lines(dry_run=True))
    assert (f"{STRANGER}: order buy 1,000 GPU-hours committed at round {n} -> would execute it at "
            f"round {n + 1}'s index 2.280000 USD/GPU-h, but the market refuses its trade: "
            f"{reasons.PERP_FILL_PRICE_WORSE_ACCEPTABLE}") in text
    assert "the order fails and is cancelled, keeper fee 1 mUSDC" in text
    assert "1 to execute (1 failing)" in text
    assert "dry run: 1 order(s) would be executed (1 failing) and 0 expired" in text
    margin, earned = perps.position(client, 1, STRANGER).margin, keeper_margin(client)
    lines: list[str] = []
    done = keepers.run(client, KEEPER, plan, on_line=lines.append)
    assert done.errors == [] and (done.orders_executed, done.orders_failed) == (0, 1)
    assert perps.order(client, 1, STRANGER) is None
    after = perps.position(client, 1, STRANGER)
    assert (after.size, after.margin) == (0, margin - ORDER_FEE)
    assert keeper_margin(client) - earned == ORDER_FEE
    (event,) = client.chain.contract("PerpMarket", plan.perps[0].address).history("OrderFailed")
    assert (int(event["round_id"]), event["account"]) == (n + 1, STRANGER)
    text = "\n".join(lines)
    assert (f"{STRANGER}: order buy 1,000 GPU-hours committed at round {n}, failed at round "
            f"{n + 1}'s index 2.280000 USD/GPU-h: the market refused its trade "
            f"({reasons.PERP_FILL_PRICE_WORSE_ACCEPTABLE}) and cancelled the order; keeper fee "
            "1 mUSDC") in text
    assert ("executed 1 order(s) (perp market 1: keeper fees 1 mUSDC), 1 of them failed "
            "(cancelled by the market), cancelled 0 expired order(s)") in text


def test_an_expired_order_is_cancelled_though_the_index_is_stale(client: Client,
                                                                 world: SpvWorld):
    """An order no round follows: past its max age only a cancellation ends it, which
    needs no index (stale by then): its keeper fee is no longer reserved, nobody earns
    it."""
    sent(client, perps.plan_commit(client, STRANGER, 1, 1_000 * WAD, margin=500 * USDC),
         STRANGER)
    n = latest_round(client)
    margin, earned = perps.position(client, 1, STRANGER).margin, keeper_margin(client)
    boa.env.time_travel(seconds=2 * HEARTBEAT + 1)  # past the order's max age
    plan = keepers.plan_pass(client, KEEPER, [], [1])
    assert plan.perps[0].index.refusal == reasons.PERP_INDEX_PRICE_STALE_OR_HALTED
    (expired,) = plan.perps[0].cancellations
    assert expired.order.status == perp.ORDER_EXPIRED and plan.orders_due == 1
    assert [t.function for t in plan.perps[0].txs] == ["cancel_order"]
    text = "\n".join(plan.lines(dry_run=True))
    assert f"perp market 1: {reasons.PERP_INDEX_PRICE_STALE_OR_HALTED} (the index is" in text
    assert "liquidations and order executions wait for a fresh index, skipped" in text
    assert (f"{STRANGER}: order buy 1,000 GPU-hours committed at round {n}, expired 1s ago -> "
            "would cancel it: its keeper fee 1 mUSDC no longer reserved") in text
    lines: list[str] = []
    done = keepers.run(client, KEEPER, plan, on_line=lines.append)
    assert done.errors == [] and (done.positions, done.orders_cancelled) == (0, 1)
    assert perps.order(client, 1, STRANGER) is None
    assert perps.position(client, 1, STRANGER).margin == margin
    assert keeper_margin(client) == earned
    text = "\n".join(lines)
    assert (f"{STRANGER}: expired order buy 1,000 GPU-hours (committed at round {n}) cancelled: "
            "its keeper fee 1 mUSDC is no longer reserved in its margin") in text
    assert "executed 0 order(s), cancelled 1 expired order(s)" in text
    assert "liquidated" not in text  # the index is stale: Bob's liquidation waits


def test_a_halted_feed_stops_liquidations_and_executions_until_an_accepted_report(
        client: Client, world: SpvWorld):
    sent(client, perps.plan_commit(client, STRANGER, 1, -1_000 * WAD, margin=500 * USDC),
         STRANGER)
    next_round(client, "2.22")
    refuse_a_move(client, "2.60")  # +17 %, beyond the 4 % limit: the hub halts the feed
    plan = keepers.plan_pass(client, KEEPER, [], [1])
    p = plan.perps[0]
    assert p.index.halted and (plan.positions_due, plan.orders_due) == (0, 0)
    (waits,) = p.orders
    assert waits.action == "wait" and waits.waits_for_index
    assert waits.order.status == perp.ORDER_EXECUTABLE  # the lens: its round is there
    assert p.txs == []
    text = "\n".join(plan.lines(dry_run=True))
    assert (f"perp market 1: {reasons.PERP_INDEX_PRICE_STALE_OR_HALTED} (the hub halted the feed: "
            f"it refused a report for moving more than {MAX_MOVE_BPS} bps") in text
    assert "due, but the index is stale or halted: it waits for the next accepted report" in text
    assert "no liquidatable positions (1 perp market(s) skipped: stale or halted index)" in text
    assert "no orders to execute or cancel (1 perp market(s) skipped" in text
    assert keepers.run(client, KEEPER, plan) == keepers.KeeperOutcome()
    next_round(client, "2.23")  # an accepted report lifts the halt
    plan = keepers.plan_pass(client, KEEPER, [], [1])
    assert (plan.positions_due, plan.orders_due) == (1, 1)
    done = keepers.run(client, KEEPER, plan)
    assert (done.positions, done.orders_executed) == (1, 1)
    # The order filled at the first round observed after its commit (2.22), not the
    # latest one.
    event = client.chain.contract("PerpMarket", p.address).history("OrderExecuted")[-1]
    assert int(event["price"]) == 222 * WAD // 100


def test_a_stale_price_and_index_pause_the_keeper(client: Client, world: SpvWorld):
    boa.env.time_travel(seconds=HEARTBEAT + 3_600)
    plan = keepers.plan_pass(client, KEEPER)
    assert (plan.loans_due, plan.positions_due, plan.orders_due) == (0, 0, 0)
    text = "\n".join(plan.lines())
    for fragment in (f"market 1: {reasons.POOL_COLLATERAL_PRICE_STALE_OLDER}: liquidations are "
                     "paused until a fresh price, skipped",
                     "no unhealthy loans (1 market(s) skipped: stale price)",
                     f"perp market 1: {reasons.PERP_INDEX_PRICE_STALE_OR_HALTED} (the index is "
                     "2d 1h",
                     "liquidations and order executions wait for a fresh index, skipped",
                     "no liquidatable positions (1 perp market(s) skipped: stale or halted "
                     "index)"):
        assert fragment in text, text
    assert keepers.run(client, KEEPER, plan).errors == []


def test_the_markets_a_pass_covers(client: Client, world: SpvWorld):
    perps_only = keepers.plan_pass(client, KEEPER, [], [1])
    assert perps_only.lending == [] and "no unhealthy loans" not in "\n".join(perps_only.lines())
    lending_only = keepers.plan_pass(client, KEEPER, [1], [])
    text = "\n".join(lending_only.lines())
    assert lending_only.perps == [] and "position" not in text and "order" not in text
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


def a100_round(world: SpvWorld, usd: str) -> None:
    boa.env.time_travel(seconds=1)
    world.oracle.publish(A100, usd)


def a100_trade(client: Client, world: SpvWorld, number: int, who: str, size: int,
               margin: int) -> None:
    """`who` commits `size` GPU-hours with `margin`; the next A100 round (same value);
    the keeper executes it."""
    sent(client, perps.plan_commit(client, who, number, size * WAD, margin=margin * USDC), who)
    value = Decimal(int(client.hub().latest_value(bytes.fromhex(feed_id(A100)[2:]))[0])) / 10**8
    a100_round(world, str(value))
    sent(client, perps.plan_execute(client, KEEPER, number, who), KEEPER)


def test_a_bad_debt_liquidation_records_a_deficit_that_pauses_new_risk(client: Client,
                                                                       world: SpvWorld):
    """Market 2 on the A100 index (4 % move limit) with 10 of insurance: a long and a
    short of 4,000 GPU-hours; the index slides 20 % in rounds no keeper acts on, the
    long's loss exceeds its margin and the insurance, a deficit is recorded and new risk
    pauses until it is funded. (One round alone cannot do it: the margins cover one
    whole move.)"""
    hub = client.hub()
    client.chain.send(hub.add_feed.tx(bytes.fromhex(feed_id(A100)[2:]), A100, 1, 50 * 10**8,
                                      MAX_MOVE_BPS, HEARTBEAT), DEPLOYER)
    world.oracle.publish(A100, "1.50")
    plan = perps.plan_create(client, DEPLOYER, A100, PARAMS)
    number, _ = perps.created(client, sent(client, plan, DEPLOYER)[-1])
    sent(client, perps.plan_setup(client, DEPLOYER, number, insurance=10 * USDC), DEPLOYER)
    for who, size, margin in ((BOB, 4_000, 650), (STRANGER, -4_000, 2_000)):
        a100_trade(client, world, number, who, size, margin)
    for usd in ("1.44", "1.383", "1.328", "1.275", "1.224", "1.20"):
        a100_round(world, usd)
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
    opening = perps.plan_commit(client, ALICE, number, 100 * WAD, margin=100 * USDC)
    assert "fund the insurance (`ape run perp fund-insurance`)" in opening.refusal.reason
    assert opening.refusal is not None and "at execution" in opening.refusal.reason
    assert opening.refusal.reason.startswith(reasons.PERP_INSURANCE_DEFICIT_RECORDED_NEW)
    with boa.env.anchor():  # sent anyway: the market takes the commit, refuses the trade
        sent(client, Plan(opening.txs), ALICE)
        a100_round(world, "1.20")
        plan = keepers.plan_pass(client, KEEPER, [], [number])
        (failing,) = plan.perps[0].executions
        assert failing.action == "fail" and failing.quote is not None
        assert failing.quote.refusal == reasons.PERP_INSURANCE_DEFICIT_RECORDED_NEW
        assert keepers.run(client, KEEPER, plan).orders_failed == 1
        assert perps.order(client, number, ALICE) is None
        assert perps.position(client, number, ALICE).size == 0
    funding = perps.plan_fund_insurance(client, DEPLOYER, number, 1_000 * USDC)
    assert "covers the deficit: new risk resumes" in funding.notes[0]
    sent(client, funding, DEPLOYER)
    assert perps.market(client, number).deficit == 0
    a100_trade(client, world, number, ALICE, 100, 100)
    assert perps.position(client, number, ALICE).size == 100 * WAD
