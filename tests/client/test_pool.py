"""`gpushares.client.pool` against the real suite on titanoboa: every plan either goes
through, leaving the state the views then show, or names the pool's own refusal before
anything is sent, and the pool refuses the same transactions with the same words.

The world (module-scoped, each test rolls back to it): the suite as `ape run deploy`
deploys it, the TEST jurisdiction table, an SPV of 8 H100s whose shares Bob holds,
a 2-of-3 oracle signer set publishing the NAV per share through the hub, lending
market 1 created by the platform (`create_market`), 50,000 mUSDC supplied by Alice
and 250 of Bob's shares posted as collateral. The other client tests build on the
same pieces (`spv_world`, `Oracle`, `lending_market`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpushares import lending, reasons
from gpushares.client import kyc
from gpushares.client import pool as lend
from gpushares.client.chain import Refused
from gpushares.client.context import Client
from gpushares.client.units import WAD, BadInput
from jurisdictions import codes
from jurisdictions.codes import Restriction, message
from oracle.reports import feed_id
from tests.budgets import budget
from tests.client.conftest import ALICE, BOB, DEPLOYER, KYC, OPERATOR, STRANGER, refused_alike, sent
from tests.contracts.helpers import (
    FAR_FUTURE,
    KP,
    SHARE,
    SHARES_PER_GPU,
    TEST_TABLE,
    US,
    gpu,
    make_lei,
    table_rows,
)
from tests.contracts.oracle_helpers import addresses, make_signers, publish_price

KEEPER = boa.env.generate_address("client-keeper")
NORTH_KOREAN = boa.env.generate_address("client-north-korean")
NAV_FEED = "NAV/LSH1/USD"
INDEX_FEED = "H100-SXM-80GB/USD/GPUh"
HEARTBEAT = 2 * 86_400
USDC = 10**6
NAV = Decimal(15)  # USD per share
COLLATERAL = 250 * SHARE
SUPPLY = 50_000 * USDC
SIGNERS = make_signers(3, "client-oracle")
NOT_REGISTERED = codes.message(codes.Restriction.RECEIVER_NOT_REGISTERED)
BLOCKED = codes.message(codes.Restriction.RECEIVER_JURISDICTION_BLOCKED)


# ---------------------------------------------------------------------------------
# World builders (the other client tests import these)
# ---------------------------------------------------------------------------------


@dataclass
class Oracle:
    """Publishes feed values as signed 2-of-3 reports through the hub (observed now, or
    a second after the feed's last value: the hub wants strictly newer data)."""

    hub: Any  # titanoboa's handle
    version: int

    def publish(self, name: str, usd: Decimal | str) -> int:
        value = int(Decimal(usd) * 10**8)
        fid = bytes.fromhex(feed_id(name)[2:])
        last = self.hub.latest_value(fid)[1]
        accepted, _ = publish_price(self.hub, SIGNERS, DEPLOYER, fid, value, last, self.version)
        assert accepted
        return value

    def utilisation(self, token: str, bps: int) -> None:
        """Every GPU of `token` busy `bps` over the last 15 minutes."""
        from oracle import attest
        from tests.contracts.oracle_helpers import fast_signatures, utilisation_report

        now = boa.env.evm.patch.timestamp
        report = utilisation_report(token, now - 900, now, self.version, utilisation_bps=bps)
        domain = attest.Domain(chain_id=boa.env.evm.patch.chain_id, hub=str(self.hub.address))
        with boa.env.prank(DEPLOYER):
            self.hub.submit_utilisation(report.as_tuple(),
                                        fast_signatures(attest.digest(report, domain), SIGNERS[:2]))


@dataclass
class SpvWorld:
    token: str
    oracle: Oracle
    extra: dict[str, Any] = field(default_factory=dict)


def spv_world(client: Client) -> SpvWorld:
    """The TEST jurisdictions, the people registered (the keeper in the US, one
    investor in North Korea, STRANGER nowhere), SPV 1 (LSH1, 8 GPUs, 2,000 shares to
    Bob), the signer set and the NAV and H100 index feeds."""
    chain = client.chain
    registry = client.registry()
    chain.send(registry.set_jurisdictions.tx(table_rows(TEST_TABLE)), DEPLOYER)
    for who, where in ((OPERATOR, US), (ALICE, US), (BOB, US), (KEEPER, US), (DEPLOYER, US),
                       (NORTH_KOREAN, KP)):
        chain.send(registry.set_investor.tx(who, where, True, FAR_FUTURE), KYC)
    chain.send(client.spv_factory().create_spv.tx(
        "Lone Star GPU Fleet I LLC", 840, make_lei("CLIENTTEST00000001"), b"\x01" * 32,
        "Lone Star H100 Shares", "LSH1", SHARES_PER_GPU, client.deployed.income_token), OPERATOR)
    token = client.token(1)
    boa.env.time_travel(seconds=10)
    chain.send(token.add_gpus.tx([gpu(f"client-SN-{i}") for i in range(8)]), OPERATOR)
    chain.send(token.mint.tx(BOB, 2_000 * SHARE), OPERATOR)
    hub = client.hub()
    chain.send(hub.set_signers.tx(addresses(SIGNERS), 2), DEPLOYER)
    for name, top in ((NAV_FEED, 10**15), (INDEX_FEED, 50 * 10**8)):
        chain.send(hub.add_feed.tx(bytes.fromhex(feed_id(name)[2:]), name, 1, top, 0, HEARTBEAT),
                   DEPLOYER)
    oracle = Oracle(chain.at("OracleHub", hub.address), int(hub.config_version()))
    return SpvWorld(token.address, oracle)


def lending_market(client: Client, world: SpvWorld) -> int:
    """Market 1 (defaults: LLTV 80 %, max LTV 70 %), priced at the NAV; Alice supplies
    50,000 and Bob posts 250 shares."""
    world.oracle.publish(NAV_FEED, NAV)
    made = lend.create_market(client, DEPLOYER, lend.market_terms(client, DEPLOYER, 1))
    sent(client, lend.plan_mint_mock(client, DEPLOYER, ALICE, 100_000 * USDC), DEPLOYER)
    sent(client, lend.plan_mint_mock(client, DEPLOYER, KEEPER, 50_000 * USDC), DEPLOYER)
    sent(client, lend.plan_supply(client, ALICE, made.number, SUPPLY), ALICE)
    sent(client, lend.plan_deposit_collateral(client, BOB, made.number, COLLATERAL), BOB)
    world.extra["created"] = made
    return made.number


@pytest.fixture(scope="module")
def world(client: Client) -> SpvWorld:
    result = spv_world(client)
    lending_market(client, result)
    return result


def borrow(client: Client, ltv: Decimal) -> int:
    """Bob borrows `ltv` of his collateral's value (whole mUSDC); returns the amount."""
    value = 250 * NAV * ltv
    amount = int(value) * USDC
    sent(client, lend.plan_borrow(client, BOB, 1, amount), BOB)
    return amount


# ---------------------------------------------------------------------------------
# Creating and reading a market
# ---------------------------------------------------------------------------------


def test_create_deploys_a_rate_model_and_registers_the_pool(client: Client, world: SpvWorld):
    made: lend.CreatedMarket = world.extra["created"]
    assert made.registered and made.number == 1
    view = lend.market(client, 1)
    assert (view.lltv, view.max_ltv, view.reserve_factor_bps) == (80 * WAD // 100,
                                                                   70 * WAD // 100, 1_000)
    assert (view.name, view.symbol, view.treasury) == ("GPU Lend LSH1/mUSDC", "lLSH1", DEPLOYER)
    assert view.feed == NAV_FEED and view.spv_id == 1 and view.collateral.symbol == "LSH1"
    model = client.chain.contract("KinkedRateModel", view.rate_model)
    assert (model.base_rate_per_year(), model.slope1_per_year(), model.slope2_per_year(),
            model.kink()) == (2 * WAD // 100, 10 * WAD // 100, 300 * WAD // 100, 80 * WAD // 100)
    record = client.registry().investor(view.address)
    assert record.registered and record.accredited and record.jurisdiction == 840
    assert record.expires_at > client.chain.now() + 50 * lend.YEAR
    assert view.liquidation_incentive == lending.liquidation_incentive(view.lltv)
    lines = "\n".join(made.lines())
    assert "market 1 can hold LSH1 collateral now" in lines
    assert f"market 1: pool {view.address} (GPU Lend LSH1/mUSDC, lLSH1)" in lines


def test_status_reads_the_contracts_views(client: Client, world: SpvWorld):
    view = lend.market(client, 1)
    pool = client.chain.contract("LendingPool", view.address)
    assert view.total_supplied == pool.totalAssets() == SUPPLY
    assert (view.total_supplied, view.reserves, view.total_borrowed, view.idle) == (
        SUPPLY, *tuple(pool.market())[1:])
    assert view.price.price == pool.price() == 15 * 10**8 and view.price.fresh
    assert view.total_collateral == COLLATERAL == pool.total_collateral()
    text = "\n".join(view.lines())
    for fragment in ("market 1: GPU Lend LSH1/mUSDC (lLSH1) at",
                     f"price feed    {NAV_FEED} adapter {view.feed_adapter}",
                     "LLTV 80.00%, max LTV 70.00%, liquidation incentive 1.0638, reserve factor "
                     "10.00%", "paused: no", f"(heartbeat {HEARTBEAT}s)",
                     "utilisation 0.00%, borrow APR 2.00%, supply APR 0.00%",
                     "total supplied 50,000 mUSDC", "total collateral 250 LSH1"):
        assert fragment in text, text
    book = lend.loans(client, 1)
    assert [loan.borrower for loan in book.loans] == [BOB]
    assert book.loans[0].debt == 0 and book.loans[0].health is not None


def test_supply_and_the_lenders_position(client: Client, world: SpvWorld):
    mine = lend.position(client, 1, ALICE)
    assert mine.vault_shares > 0 and SUPPLY - 1 <= mine.supplied_value <= SUPPLY
    assert mine.wallet_assets == 100_000 * USDC - SUPPLY
    assert mine.withdrawable == mine.supplied_value
    # A second supply: the approval first (Alice's is used up), then the deposit.
    plan = lend.plan_supply(client, ALICE, 1, 1_000 * USDC)
    assert [tx.function for tx in plan.txs] == ["approve", "deposit"] and plan.refusal is None
    done = lend.outcome(client, 1, sent(client, plan, ALICE))
    assert done.deposited == 1_000 * USDC and done.minted > 0


def test_supply_more_than_the_wallet_is_refused(client: Client, world: SpvWorld):
    plan = lend.plan_supply(client, STRANGER, 1, 10 * USDC)
    assert plan.refusal is not None and "holds 0 mUSDC, less than the 10 mUSDC to supply" in \
        plan.refusal.reason
    assert str(plan.refusal).startswith("supply refused, nothing sent")


# ---------------------------------------------------------------------------------
# Borrowing
# ---------------------------------------------------------------------------------


def test_deposit_collateral_notes_the_headroom(client: Client, world: SpvWorld):
    plan = lend.plan_deposit_collateral(client, BOB, 1, 10 * SHARE)
    assert plan.refusal is None
    # 260 shares at 15 USD, 70 % of it, less the one unit of rounding.
    assert "collateral worth 3,900 mUSDC at 15 USD per share: borrow up to 2,730 mUSDC more" in \
        plan.notes[0]
    done = lend.outcome(client, 1, sent(client, plan, BOB))
    assert done.collateral_in == 10 * SHARE
    assert lend.position(client, 1, BOB).collateral == 260 * SHARE


def test_borrow_within_the_max_ltv(client: Client, world: SpvWorld):
    plan = lend.plan_borrow(client, BOB, 1, 2_587 * USDC)  # 69 % of 3,750
    assert plan.refusal is None
    assert plan.notes == ("LTV after the borrow 68.99% (max 70.00%, liquidation above 80.00%)",)
    done = lend.outcome(client, 1, sent(client, plan, BOB))
    assert done.borrowed == 2_587 * USDC
    me = lend.position(client, 1, BOB)
    assert 2_587 * USDC <= me.debt <= 2_587 * USDC + 1
    assert me.wallet_assets == 2_587 * USDC
    assert me.health is not None and me.health.within_max_ltv and not me.health.liquidatable
    assert "LTV 68.99% (max 70.00%, liquidation above 80.00%)" in me.describe()
    # Health factor and liquidation price say the same as the mirror.
    assert me.health_factor == me.health.value * me.params.lltv // me.debt > WAD
    assert me.liquidation_price is not None
    assert lending.health(me.params, me.collateral, me.debt, me.liquidation_price).liquidatable
    assert not lending.health(me.params, me.collateral, me.debt,
                              me.liquidation_price + 1).liquidatable


def test_borrow_above_the_max_ltv_is_refused_like_the_pool_does(client: Client, world: SpvWorld):
    plan = lend.plan_borrow(client, BOB, 1, 2_700 * USDC)  # 72 %
    assert plan.refusal is not None
    assert str(plan.refusal).startswith(
        "borrow refused, nothing sent: borrowing 2,700 mUSDC would put the loan at LTV 72.00%, "
        "above the max LTV 70.00%")
    room = lend.position(client, 1, BOB).max_borrow
    assert room == 2_625 * USDC and "borrow at most 2,625 mUSDC" in plan.refusal.reason
    refused_alike(client, plan, BOB, reasons.POOL_BORROW_PUT_LOAN_ABOVE)


@settings(budget("client_pool_max_borrow"))
@given(already=st.integers(0, 2_000), nav_cents=st.integers(500, 3_000))
def test_max_borrow_is_exactly_what_the_pool_accepts(client: Client, world: SpvWorld,
                                                     already: int, nav_cents: int):
    """Whatever the debt and the price: `max_borrow` goes through, one unit more is
    refused by the plan and by the pool."""
    with boa.env.anchor():
        world.oracle.publish(NAV_FEED, Decimal(nav_cents) / 100)
        if already and lend.position(client, 1, BOB).max_borrow >= already * USDC:
            sent(client, lend.plan_borrow(client, BOB, 1, already * USDC), BOB)
        room = lend.position(client, 1, BOB).max_borrow
        assert room is not None
        refused_alike(client, lend.plan_borrow(client, BOB, 1, room + 1), BOB,
                      reasons.POOL_BORROW_PUT_LOAN_ABOVE)
        if room:
            sent(client, lend.plan_borrow(client, BOB, 1, room), BOB)
            assert lend.position(client, 1, BOB).health.within_max_ltv


def test_a_lower_nav_flags_the_loan_and_the_book_matches_the_mirror(client: Client,
                                                                    world: SpvWorld):
    borrow(client, Decimal("0.69"))
    near = lend.loans(client, 1)
    assert "near liquidation" in "\n".join(near.lines(near=15 * WAD // 100))
    assert "near liquidation" not in "\n".join(near.lines())
    world.oracle.publish(NAV_FEED, "12.5")
    book = lend.loans(client, 1)
    (loan,) = book.liquidatable
    collateral, debt, _ = client.chain.contract("LendingPool", book.address).position(BOB)
    assert (loan.collateral, loan.debt) == (collateral, debt)
    assert loan.health == lending.health(book.params, collateral, debt, 12_5000_0000)
    text = "\n".join(book.lines())
    assert f"{BOB}: collateral 250 LSH1, debt 2,587" in text and "LIQUIDATABLE" in text


def test_pause_blocks_borrowing_not_repaying(client: Client, world: SpvWorld):
    borrow(client, Decimal("0.5"))
    sent(client, lend.plan_set(client, DEPLOYER, 1, paused=True), DEPLOYER)
    assert lend.market(client, 1).paused
    refused_alike(client, lend.plan_borrow(client, BOB, 1, 100 * USDC), BOB,
                  reasons.POOL_PAUSED_GUARDIAN_REPAY_STILL)
    refused_alike(client, lend.plan_withdraw_collateral(client, BOB, 1, SHARE), BOB,
                  reasons.POOL_PAUSED_GUARDIAN_REPAY_STILL)
    before = lend.position(client, 1, BOB).debt
    done = lend.outcome(client, 1, sent(client, lend.plan_repay(client, BOB, 1, 100 * USDC), BOB))
    assert done.repaid == 100 * USDC
    assert lend.position(client, 1, BOB).debt == before - 100 * USDC
    twice = lend.plan_set(client, DEPLOYER, 1, paused=True)
    refused_alike(client, twice, DEPLOYER, reasons.POOL_PAUSE_UNCHANGED)


def test_a_frozen_wallet_cannot_borrow(client: Client, world: SpvWorld):
    sent(client, kyc.plan_freeze(client, DEPLOYER, BOB), DEPLOYER)
    refused_alike(client, lend.plan_borrow(client, BOB, 1, 100 * USDC), BOB,
                  message(Restriction.RECEIVER_FROZEN))


def test_a_stale_price_stops_borrowing_and_withdrawals_but_not_repaying(client: Client,
                                                                       world: SpvWorld):
    borrow(client, Decimal("0.5"))
    boa.env.time_travel(seconds=HEARTBEAT + 3_600)
    view = lend.market(client, 1)
    assert not view.price.fresh and view.price.refusal == reasons.POOL_COLLATERAL_PRICE_STALE_OLDER
    assert lend.STALE_NOTE in "\n".join(view.lines())
    book = lend.loans(client, 1)
    assert "at the stale price" in book.lines()[0] and book.liquidatable == []
    refused_alike(client, lend.plan_borrow(client, BOB, 1, 100 * USDC), BOB,
                  reasons.POOL_COLLATERAL_PRICE_STALE_OLDER)
    withdraw = lend.plan_withdraw_collateral(client, BOB, 1, 100 * SHARE)
    assert str(withdraw.refusal).startswith(
        "collateral withdrawal refused, nothing sent: "
        f"{reasons.POOL_COLLATERAL_PRICE_STALE_OLDER}")
    refused_alike(client, withdraw, BOB, reasons.POOL_COLLATERAL_PRICE_STALE_OLDER)
    me = lend.position(client, 1, BOB)
    assert me.max_borrow is None and not me.price_fresh
    sent(client, lend.plan_mint_mock(client, DEPLOYER, BOB, 1_000 * USDC), DEPLOYER)
    done = lend.outcome(client, 1, sent(client, lend.plan_repay(client, BOB, 1), BOB))
    assert done.repaid >= 1_875 * USDC
    assert lend.position(client, 1, BOB).debt == 0
    # Without debt the collateral comes back whatever the price.
    sent(client, lend.plan_withdraw_collateral(client, BOB, 1), BOB)
    assert lend.position(client, 1, BOB).wallet_shares == 2_000 * SHARE


def test_collateral_withdrawal_above_the_max_ltv_is_refused(client: Client, world: SpvWorld):
    borrow(client, Decimal("0.6"))
    plan = lend.plan_withdraw_collateral(client, BOB, 1, 50 * SHARE)
    refused_alike(client, plan, BOB, reasons.POOL_WITHDRAWAL_PUT_LOAN_ABOVE)
    too_much = lend.plan_withdraw_collateral(client, BOB, 1, 251 * SHARE)
    refused_alike(client, too_much, BOB, reasons.POOL_WITHDRAWAL_EXCEEDS_COLLATERAL)


def test_claim_income_pays_the_collaterals_share(client: Client, world: SpvWorld):
    refused_alike(client, lend.plan_claim_income(client, BOB, 1), BOB,
                  reasons.POOL_NO_COLLATERAL_INCOME_CLAIM)
    token = client.chain.contract("GPUShareToken", world.token)
    stable = client.erc20(client.deployed.income_token)
    client.chain.send(stable.approve.tx(token.address, 10_000 * USDC), OPERATOR)
    client.chain.send(token.distribute.tx(10_000 * USDC), OPERATOR)
    owed = lend.position(client, 1, BOB).income_owed
    assert abs(owed - 10_000 * USDC * COLLATERAL // int(token.totalSupply())) <= 1
    done = lend.outcome(client, 1, sent(client, lend.plan_claim_income(client, BOB, 1), BOB))
    assert done.income_claimed == owed and lend.position(client, 1, BOB).income_owed == 0


def test_set_changes_only_the_max_ltv(client: Client, world: SpvWorld):
    before = lend.market(client, 1)
    sent(client, lend.plan_set(client, DEPLOYER, 1, max_ltv="65"), DEPLOYER)
    after = lend.market(client, 1)
    assert after.max_ltv == 65 * WAD // 100
    assert (after.reserve_factor_bps, after.treasury) == (before.reserve_factor_bps,
                                                         before.treasury)
    assert "max LTV 65.00%, reserve factor 10.00%" in after.risk_line()
    refused_alike(client, lend.plan_set(client, BOB, 1, max_ltv="60"), BOB,
                  reasons.ACCESS_CONTROL_MISSING_ROLE)
    with pytest.raises(BadInput, match="below the market's LLTV"):
        lend.plan_set(client, DEPLOYER, 1, max_ltv="80")
    with pytest.raises(BadInput, match="nothing to change"):
        lend.plan_set(client, DEPLOYER, 1)


def test_everyone_exits_with_interest(client: Client, world: SpvWorld):
    borrow(client, Decimal("0.5"))
    too_much = lend.plan_withdraw(client, ALICE, 1)
    refused_alike(client, too_much, ALICE, reasons.POOL_NOT_ENOUGH_IDLE_LIQUIDITY)
    boa.env.time_travel(seconds=30 * 86_400)
    sent(client, lend.plan_mint_mock(client, DEPLOYER, BOB, 1_000 * USDC), DEPLOYER)
    sent(client, lend.plan_repay(client, BOB, 1), BOB)
    sent(client, lend.plan_withdraw_collateral(client, BOB, 1), BOB)
    done = lend.outcome(client, 1, sent(client, lend.plan_withdraw(client, ALICE, 1), ALICE))
    assert done.withdrawn > SUPPLY  # interest earned
    mine = lend.position(client, 1, ALICE)
    assert mine.vault_shares == 0 and lend.market(client, 1).total_collateral == 0
    with pytest.raises(Refused, match="has supplied nothing"):
        lend.plan_withdraw(client, ALICE, 1)
    with pytest.raises(Refused, match="has no debt in market 1"):
        lend.plan_repay(client, BOB, 1)


def test_a_market_created_without_kyc_rights_cannot_hold_collateral_until_registered(
        client: Client, world: SpvWorld):
    factory = client.lending_factory()
    client.chain.send(factory.grantRole.tx(lend.MARKET_CREATOR_ROLE, OPERATOR), DEPLOYER)
    terms = lend.market_terms(client, OPERATOR, 1, lltv="75", max_ltv="60.5",
                              reserve_factor="12.5", base_rate="1", kink="90",
                              name="Lone Star conservative", symbol="lLSC")
    made = lend.create_market(client, OPERATOR, terms)
    assert made.number == 2 and not made.registered
    text = "\n".join(made.lines("ethereum:local:foundry"))
    assert (f"ape run kyc register --network ethereum:local:foundry --account KYC_PROVIDER "
            f"--investor {made.pool} --jurisdiction 840 --accredited --valid-days 3650") in text
    view = lend.market(client, 2)
    assert (view.lltv, view.max_ltv, view.reserve_factor_bps, view.treasury) == (
        75 * WAD // 100, 605 * WAD // 1000, 1_250, OPERATOR)
    deposit = lend.plan_deposit_collateral(client, BOB, 2, 10 * SHARE)
    refused_alike(client, deposit, BOB, NOT_REGISTERED)
    sent(client, lend.plan_register_pool(client, KYC, made.pool, terms), KYC)
    sent(client, lend.plan_deposit_collateral(client, BOB, 2, 10 * SHARE), BOB)
    assert lend.numbers(client) == [1, 2]


def test_a_creator_without_the_role_is_refused_before_anything_is_deployed(client: Client,
                                                                           world: SpvWorld):
    terms = lend.market_terms(client, STRANGER, 1)
    before = client.chain.head()
    with pytest.raises(Refused, match="lacks the lending factory's MARKET_CREATOR_ROLE"):
        lend.create_market(client, STRANGER, terms)
    assert client.chain.head() == before


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: lend.market(c, 9), "unknown market 9: the factory has markets 1..1"),
    (lambda c: lend.market_terms(c, DEPLOYER, 1, feed="NAV/NOPE/USD"),
     "the oracle hub has no feed NAV/NOPE/USD"),
    (lambda c: lend.market_terms(c, DEPLOYER, 1, lltv="96"), "above the factory's 95 % limit"),
    (lambda c: lend.market_terms(c, DEPLOYER, 1, max_ltv="80"), "must be below the LLTV"),
    (lambda c: lend.market_terms(c, DEPLOYER, 1, treasury="0x7099...79C8"),
     "treasury: '0x7099...79C8' is not an address"),
    (lambda c: lend.plan_borrow(c, "bob", 1, 1), "borrower: 'bob' is not an address"),
    (lambda c: lend.plan_borrow(c, BOB, 1, 0), "amount: must be a positive amount"),
    (lambda c: lend.market(c, 1).asset.parse("1.0000001", "--amount"),
     "--amount: 1.0000001 has more than 6 decimals"),
])
def test_unusable_input_is_bad_input(client: Client, world: SpvWorld, call, message: str):
    with pytest.raises(BadInput) as caught:
        call(client)
    assert message in str(caught.value)


def test_only_the_mocks_owner_mints(client: Client, world: SpvWorld):
    plan = lend.plan_mint_mock(client, OPERATOR, ALICE, USDC)
    assert plan.refusal is not None and "may not mint the mock" in plan.refusal.reason


def test_a_blocked_resident_may_not_receive_collateral(client: Client, world: SpvWorld):
    plan = lend.plan_withdraw_collateral(client, BOB, 1, SHARE, receiver=NORTH_KOREAN)
    refused_alike(client, plan, BOB, BLOCKED)


def test_a_plain_share_transfer_to_the_pool_is_refused_before_sending(client: Client,
                                                                     world: SpvWorld):
    """The pool credits only collateral posted through `supply_collateral`: shares sent to
    it by a plain transfer (which the registry allows, the pool being an eligible holder)
    would be credited to nobody, and nothing sweeps them. The client refuses (review of
    the wallet app); the same transfer to a wallet or to the SPV goes through."""
    from gpushares.client import spv

    pool = lend.market(client, 1).address
    plan = spv.plan_transfer(client, BOB, 1, pool, "1")
    assert plan.refusal is not None
    assert "lending pool 1" in plan.refusal.reason
    assert "credited to nobody" in plan.refusal.reason
    for other in (client.token(1).address, client.deployed.compliance_registry):
        refusal = spv.plan_transfer(client, BOB, 1, other, "1").refusal
        assert refusal is not None and "credited to nobody" in refusal.reason
    assert spv.suite_contract(client, ALICE) is None
    assert spv.plan_transfer(client, BOB, 1, ALICE, "1").refusal is None
