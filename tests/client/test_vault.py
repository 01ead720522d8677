"""`gpushares.client.vault` against the real suite on titanoboa: every plan either goes
through, leaving the state the views then show, or names the vault's (or the token's)
own refusal first, before anything is sent, and the chain refuses the same
transactions with the same words.

The world (module-scoped, each test rolls back to it): the suite as `ape run deploy`
deploys it, SPV 1 of `test_pool.spv_world` (8 GPUs backing 8,000 shares, 2,000 of them
Bob's, the NAV feed published 2-of-3 through the real OracleHub), its subscription
vault opened by the SPV operator (who grants it the token's OPERATOR_ROLE but is no
KYC provider) and registered by the KYC provider, Alice funded with 200,000 mUSDC.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import boa
import pytest

from gpushares import reasons
from gpushares.client import kyc
from gpushares.client import vault as sub
from gpushares.client.chain import Refused
from gpushares.client.context import Client
from gpushares.client.units import BadInput
from jurisdictions import codes
from tests.client.conftest import ALICE, BOB, DEPLOYER, KYC, OPERATOR, STRANGER, refused_alike, sent
from tests.client.test_pool import HEARTBEAT, NAV_FEED, NORTH_KOREAN, SpvWorld, spv_world
from tests.contracts.helpers import gpu

USDC = 10**6
SHARE = 10**18
NAV = Decimal(15)
NOTICE_DAYS = 7
CANCEL_DAYS = 14
FEE_BPS = 50
NOT_REGISTERED = codes.message(codes.Restriction.RECEIVER_NOT_REGISTERED)
BLOCKED = codes.message(codes.Restriction.RECEIVER_JURISDICTION_BLOCKED)
FROZEN = codes.message(codes.Restriction.RECEIVER_FROZEN)
SENDER_FROZEN = codes.message(codes.Restriction.SENDER_FROZEN)


@dataclass
class World:
    spv: SpvWorld
    vault: str
    opened: sub.OpenedVault


@pytest.fixture(scope="module")
def world(client: Client) -> World:
    made = spv_world(client)
    made.oracle.publish(NAV_FEED, NAV)
    terms = sub.vault_terms(client, OPERATOR, 1, notice_days=str(NOTICE_DAYS), fee="0.5",
                            cancel_after_days=str(CANCEL_DAYS))
    opened = sub.open_vault(client, OPERATOR, terms)
    sent(client, sub.plan_register_vault(client, KYC, 1), KYC)
    stable = client.erc20(client.deployed.income_token)
    client.chain.send(stable.mint.tx(ALICE, 200_000 * USDC), DEPLOYER)
    return World(made, opened.vault, opened)


def publish(world: World, usd: Decimal | str = NAV) -> int:
    """The next NAV, observed a second after the chain's latest block (forward pricing
    wants it strictly after the request)."""
    boa.env.time_travel(seconds=1)
    return world.spv.oracle.publish(NAV_FEED, usd)


def request_of(client: Client, world: World, who: str) -> tuple[int, ...]:
    vault = client.chain.contract("SubscriptionVault", world.vault)
    return tuple(int(x) for x in vault.request(who))


def subscribed(client: Client, world: World, amount: str = "15000") -> None:
    """Alice's subscription of `amount`, fulfilled at the next NAV (not claimed)."""
    sent(client, sub.plan_request_deposit(client, ALICE, 1, amount), ALICE)
    publish(world)
    sent(client, sub.plan_fulfil_deposit(client, OPERATOR, 1, ALICE), OPERATOR)


def redeeming(client: Client, world: World, shares: str = "100") -> None:
    """Bob's redemption request of `shares`."""
    sent(client, sub.plan_request_redeem(client, BOB, 1, shares), BOB)


# ---------------------------------------------------------------------------------
# Opening and registering a vault
# ---------------------------------------------------------------------------------


def test_open_grants_the_role_and_says_who_must_register(client: Client, world: World):
    opened = world.opened
    assert opened.granted and not opened.registered
    text = "\n".join(opened.lines("ethereum:local:foundry"))
    assert ("ape run spv subscriptions register --network ethereum:local:foundry --account "
            "KYC_PROVIDER --spv 1") in text
    token = client.token(1)
    assert token.hasRole(sub.OPERATOR_ROLE, world.vault)
    vault = client.chain.contract("SubscriptionVault", world.vault)
    assert (vault.notice_period(), vault.redemption_fee_bps(), vault.cancel_after()) == (
        NOTICE_DAYS * sub.DAY, FEE_BPS, CANCEL_DAYS * sub.DAY)
    assert vault.treasury() == OPERATOR and vault.share() == token.address
    assert vault.hasRole(sub.OPERATOR_ROLE, OPERATOR)
    # The KYC provider's registration: an accredited US holder for a century, a custodian.
    record = client.registry().investor(world.vault)
    assert record.registered and record.accredited and record.jurisdiction == 840
    assert record.expires_at > client.chain.now() + 50 * sub.YEAR
    assert client.registry().custodian(world.vault)
    assert sub.registration_line(client, 1) == (
        f"vault {world.vault}: ready: the token's OPERATOR_ROLE granted, an eligible holder, "
        "a custodian")
    again = sub.plan_register_vault(client, KYC, 1)
    assert again.txs == () and "nothing to do" in again.refusal.reason
    view = sub.status(client, 1)
    assert view.address == world.vault and view.nav.nav == 15 * 10**8
    text = "\n".join(view.lines())
    assert "notice period 7d, redemption fee 0.50%, cancel after 14d" in text
    assert f"NAV ({NAV_FEED}) 15 USD per share" in text and ": fresh" in text
    assert "supply 2,000 LSH1 of a 8,000 LSH1 mint cap (room 6,000 LSH1" in text


def test_a_second_vault_and_a_stranger_are_refused_before_anything_is_sent(client: Client,
                                                                          world: World):
    terms = sub.vault_terms(client, OPERATOR, 1)
    refused_alike(client, sub.plan_open(client, OPERATOR, terms), OPERATOR,
                  reasons.VAULT_FACTORY_VAULT_EXISTS)
    stranger = sub.plan_open(client, STRANGER, terms)
    assert reasons.VAULT_FACTORY_NOT_TOKEN_OPERATOR in stranger.refusal.reason
    before = client.chain.head()
    with pytest.raises(Refused, match="vault opening refused, nothing sent"):
        sub.open_vault(client, STRANGER, terms)
    assert client.chain.head() == before


def test_registering_needs_a_kyc_provider_or_the_tokens_admin(client: Client, world: World):
    client.chain.send(client.registry().remove_investor.tx(world.vault), KYC)
    assert f"NOT ready: the token's OPERATOR_ROLE granted, not an eligible holder " \
           f"({NOT_REGISTERED})" in sub.registration_line(client, 1)
    refused = sub.plan_register_vault(client, STRANGER, 1)
    assert refused.txs == () and reasons.ACCESS_CONTROL_MISSING_ROLE in refused.refusal.reason
    assert "a KYC provider must register the vault" in refused.refusal.reason
    # The token's admin may only grant the role, already granted: nothing for it to do.
    assert sub.plan_register_vault(client, OPERATOR, 1).refusal is not None
    plan = sub.plan_register_vault(client, KYC, 1)
    assert [tx.function for tx in plan.txs] == ["set_investor"]
    sent(client, plan, KYC)
    assert client.registry().investor(world.vault).registered


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fee": "10.5"}, "fee: 10.5 is above 10 %"),
    ({"fee": "0.005"}, "finer than a basis point"),
    ({"notice_days": "366"}, "notice_days: 366 days is not between 0 and 365 days"),
    ({"cancel_after_days": "0.5"}, "cancel_after_days: 0.5 days is not between 1 and 90"),
    ({"cancel_after_days": "91"}, "is not between 1 and 90 days"),
    ({"notice_days": "1.0000001"}, "not a whole number of seconds"),
    ({"feed": "NAV/NOPE/USD"}, "the oracle hub has no feed NAV/NOPE/USD"),
    ({"treasury": "0x7099...79C8"}, "treasury: '0x7099...79C8' is not an address"),
])
def test_terms_the_vault_would_refuse_are_bad_input(client: Client, world: World, kwargs,
                                                   message: str):
    with pytest.raises(BadInput) as caught:
        sub.vault_terms(client, OPERATOR, 1, **kwargs)
    assert message in str(caught.value)


def test_an_spv_without_a_vault_is_bad_input(client: Client, world: World):
    with pytest.raises(BadInput, match="unknown SPV id 2"):
        sub.status(client, 2)


# ---------------------------------------------------------------------------------
# Subscriptions
# ---------------------------------------------------------------------------------


def test_request_escrows_and_waits_for_the_next_nav(client: Client, world: World):
    plan = sub.plan_request_deposit(client, ALICE, 1, "15000")
    assert [tx.function for tx in plan.txs] == ["approve", "requestDeposit"]
    assert plan.refusal is None and "about 1,000 LSH1" in plan.notes[0]
    done = sub.outcome(client, 1, sent(client, plan, ALICE))
    assert done.deposit_requested == 15_000 * USDC
    stable = client.erc20(client.deployed.income_token)
    assert stable.balanceOf(world.vault) == 15_000 * USDC
    me = sub.investor(client, 1, ALICE)
    assert me.request.pending_deposit == 15_000 * USDC and me.eligible
    assert me.request.estimated_shares == 1_000 * SHARE
    # Published in the same second as the request: not after it (forward pricing).
    refused_alike(client, sub.plan_fulfil_deposit(client, OPERATOR, 1, ALICE), OPERATOR,
                  reasons.VAULT_NAV_NOT_AFTER_REQUEST)
    (request,) = sub.requests(client, 1).requests
    assert request.deposit_refusal.startswith(reasons.VAULT_NAV_NOT_AFTER_REQUEST)
    assert "not fulfillable now: SubscriptionVault: no NAV published since" in \
        "\n".join(sub.requests(client, 1).lines())


def test_no_top_up_while_a_request_is_pending(client: Client, world: World):
    """A top-up would move the pending order's clock past a NAV already seen in flight:
    the plan refuses it as the vault does, and allows the next request once the first
    is fulfilled."""
    sent(client, sub.plan_request_deposit(client, ALICE, 1, "1500"), ALICE)
    refused_alike(client, sub.plan_request_deposit(client, ALICE, 1, "1"), ALICE,
                  reasons.VAULT_REQUEST_PENDING)
    publish(world)
    sent(client, sub.plan_fulfil_deposit(client, OPERATOR, 1, ALICE), OPERATOR)
    assert sub.plan_request_deposit(client, ALICE, 1, "1").refusal is None


def test_fulfil_at_the_next_nav_then_claim(client: Client, world: World):
    sent(client, sub.plan_request_deposit(client, ALICE, 1, "15000"), ALICE)
    publish(world, "12.5")
    (request,) = sub.requests(client, 1).requests
    assert request.deposit_refusal is None and request.estimated_shares == 1_200 * SHARE
    plan = sub.plan_fulfil_deposit(client, OPERATOR, 1, ALICE)
    assert plan.notes == (f"1,200 LSH1 issued at 12.5 USD per share; 15,000 mUSDC to the "
                          f"treasury {OPERATOR}",)
    stable = client.erc20(client.deployed.income_token)
    treasury_before = stable.balanceOf(OPERATOR)
    done = sub.outcome(client, 1, sent(client, plan, OPERATOR))
    assert (done.shares_issued, done.assets_fulfilled) == (1_200 * SHARE, 15_000 * USDC)
    assert stable.balanceOf(OPERATOR) == treasury_before + 15_000 * USDC
    assert request_of(client, world, ALICE)[:4] == (0, request.deposit_requested_at,
                                                   15_000 * USDC, 1_200 * SHARE)
    view = sub.status(client, 1)
    assert view.last_fulfilment_nav == 1_250_000_000 and view.supply == 3_200 * SHARE
    claim = sub.plan_claim(client, ALICE, 1)
    assert [tx.function for tx in claim.txs] == ["deposit"]
    done = sub.outcome(client, 1, sent(client, claim, ALICE))
    assert done.shares_claimed == 1_200 * SHARE
    assert client.token(1).balanceOf(ALICE) == 1_200 * SHARE
    refused_alike(client, sub.plan_claim(client, ALICE, 1), ALICE,
                  reasons.VAULT_EXCEEDS_CLAIMABLE)


def test_fulfil_beyond_the_backing_says_register_new_gpus_first(client: Client, world: World):
    # 6,000 shares of room at 15 USD: 90,000 mUSDC; 100,000 needs 667 more shares.
    sent(client, sub.plan_request_deposit(client, ALICE, 1, "100000"), ALICE)
    both = sub.plan_fulfil_deposit(client, OPERATOR, 1, ALICE)
    assert both.refusal.reason.startswith(reasons.VAULT_NAV_NOT_AFTER_REQUEST)
    assert "register new GPUs first (1 more GPU(s) of 1,000 LSH1" in both.refusal.reason
    publish(world)
    plan = sub.plan_fulfil_deposit(client, OPERATOR, 1, ALICE)
    refusal = refused_alike(client, plan, OPERATOR, reasons.TOKEN_MINT_EXCEEDS_ACTIVE_GPUS)
    assert ("issuing 6,666.666666666666666666 LSH1 at the NAV would exceed it (supply 2,000 LSH1 "
            "of a 8,000 LSH1 cap): register new GPUs first") in refusal.reason
    # Part of it fits now; the rest after a GPU is registered.
    sent(client, sub.plan_fulfil_deposit(client, OPERATOR, 1, ALICE, "90000"), OPERATOR)
    client.chain.send(client.token(1).add_gpus.tx([gpu("vault-SN-9")]), OPERATOR)
    sent(client, sub.plan_fulfil_deposit(client, OPERATOR, 1, ALICE), OPERATOR)
    assert request_of(client, world, ALICE)[2:4] == (100_000 * USDC,
                                                     6_000 * SHARE + 666_666_666_666_666_666_666)


def test_fulfil_refusals_name_the_vaults_message(client: Client, world: World):
    refused_alike(client, sub.plan_fulfil_deposit(client, OPERATOR, 1, ALICE, "1"), OPERATOR,
                  reasons.VAULT_EXCEEDS_PENDING)
    sent(client, sub.plan_request_deposit(client, ALICE, 1, "1000"), ALICE)
    publish(world)
    refused_alike(client, sub.plan_fulfil_deposit(client, STRANGER, 1, ALICE), STRANGER,
                  reasons.ACCESS_CONTROL_MISSING_ROLE)
    refused_alike(client, sub.plan_fulfil_deposit(client, OPERATOR, 1, ALICE, "1000.000001"),
                  OPERATOR, reasons.VAULT_EXCEEDS_PENDING)
    boa.env.time_travel(seconds=HEARTBEAT + 1)
    stale = sub.plan_fulfil_deposit(client, OPERATOR, 1, ALICE)
    refused_alike(client, stale, OPERATOR, reasons.VAULT_NAV_STALE)
    assert "the oracle must publish a newer NAV first" in stale.refusal.reason
    assert "NOT USABLE: SubscriptionVault: the NAV is older" in sub.status(client, 1).nav.line()


def test_an_unregistered_vault_cannot_take_the_shares(client: Client, world: World):
    sent(client, sub.plan_request_deposit(client, ALICE, 1, "1500"), ALICE)
    client.chain.send(client.registry().remove_investor.tx(world.vault), KYC)
    publish(world)
    refusal = refused_alike(client, sub.plan_fulfil_deposit(client, OPERATOR, 1, ALICE),
                            OPERATOR, NOT_REGISTERED)
    assert "subscriptions register --account KYC_PROVIDER --spv 1" in refusal.reason


def test_blocked_unregistered_and_unfunded_requests_are_refused(client: Client, world: World):
    blocked = sub.plan_request_deposit(client, NORTH_KOREAN, 1, "100")
    refusal = refused_alike(client, blocked, NORTH_KOREAN, BLOCKED)
    assert f"(ERC-1404 code 9: {NORTH_KOREAN} could not receive newly issued LSH1)" in \
        refusal.reason
    assert sub.investor(client, 1, NORTH_KOREAN).eligibility == BLOCKED
    refused_alike(client, sub.plan_request_deposit(client, STRANGER, 1, "100"), STRANGER,
                  NOT_REGISTERED)
    poor = sub.plan_request_deposit(client, BOB, 1, "100")
    refusal = refused_alike(client, poor, BOB, reasons.ERC20_INSUFFICIENT_BALANCE)
    assert "less than the 100 mUSDC to subscribe" in refusal.reason
    with pytest.raises(BadInput, match="amount: 1.0000001 has more than 6 decimals"):
        sub.plan_request_deposit(client, ALICE, 1, "1.0000001")
    with pytest.raises(BadInput, match="must be a positive amount"):
        sub.plan_request_deposit(client, ALICE, 1, "0")


def test_a_claim_to_a_blocked_receiver_is_refused(client: Client, world: World):
    subscribed(client, world, "1500")
    refused_alike(client, sub.plan_claim_shares(client, ALICE, 1, receiver=NORTH_KOREAN), ALICE,
                  BLOCKED)


def test_a_request_is_binding_until_cancel_after(client: Client, world: World):
    refused_alike(client, sub.plan_cancel(client, ALICE, 1, "deposit"), ALICE,
                  reasons.VAULT_NOTHING_PENDING)
    stable = client.erc20(client.deployed.income_token)
    before = stable.balanceOf(ALICE)
    sent(client, sub.plan_request_deposit(client, ALICE, 1, "2500.5"), ALICE)
    locked = sub.plan_cancel(client, ALICE, 1, "deposit")
    refused_alike(client, locked, ALICE, reasons.VAULT_REQUEST_LOCKED)
    assert "cancel after 14d: cancellable from" in locked.refusal.reason
    boa.env.time_travel(seconds=CANCEL_DAYS * sub.DAY - 1)
    refused_alike(client, sub.plan_cancel(client, ALICE, 1, "deposit"), ALICE,
                  reasons.VAULT_REQUEST_LOCKED)
    boa.env.time_travel(seconds=1)
    done = sub.outcome(client, 1, sent(client, sub.plan_cancel(client, ALICE, 1, "deposit"),
                                       ALICE))
    assert done.assets_returned == 2_500_500_000 and stable.balanceOf(ALICE) == before
    with pytest.raises(BadInput, match="kind: 'shares' is not"):
        sub.plan_cancel(client, ALICE, 1, "shares")


# ---------------------------------------------------------------------------------
# Redemptions
# ---------------------------------------------------------------------------------


def test_redemption_after_the_notice_period_from_funded_stablecoin(client: Client,
                                                                   world: World):
    plan = sub.plan_request_redeem(client, BOB, 1, "100")
    assert [tx.function for tx in plan.txs] == ["approve", "requestRedeem"]
    assert "after the 7d notice period" in plan.notes[0]
    done = sub.outcome(client, 1, sent(client, plan, BOB))
    assert done.redeem_requested == 100 * SHARE
    token = client.token(1)
    assert token.balanceOf(world.vault) == 100 * SHARE
    publish(world)
    early = sub.plan_fulfil_redeem(client, OPERATOR, 1, BOB)
    refused_alike(client, early, OPERATOR, reasons.VAULT_NOTICE_NOT_OVER)
    assert "over " in early.refusal.reason and "in 6d 23h" in early.refusal.reason
    boa.env.time_travel(seconds=NOTICE_DAYS * sub.DAY)
    # The NAV above was published before the notice ended but after the request: it
    # would do, were it not stale by now (2-day heartbeat).
    refused_alike(client, sub.plan_fulfil_redeem(client, OPERATOR, 1, BOB), OPERATOR,
                  reasons.VAULT_NAV_STALE)
    publish(world, "12")
    short = sub.plan_fulfil_redeem(client, OPERATOR, 1, BOB)
    refusal = refused_alike(client, short, OPERATOR, reasons.VAULT_REDEMPTION_FUNDS_SHORT)
    # 100 shares at 12 USD = 1,200, the fee (0.5 %) 6: 1,194 needed.
    assert "needs 1,194 mUSDC after the fee" in refusal.reason
    assert "fund first (`ape run spv subscriptions fund --spv 1 --amount 1194`)" in refusal.reason
    refused_alike(client, sub.plan_fund(client, STRANGER, 1, "2000"), STRANGER,
                  reasons.ACCESS_CONTROL_MISSING_ROLE)
    sent(client, sub.plan_fund(client, OPERATOR, 1, "2000"), OPERATOR)
    (request,) = sub.requests(client, 1).requests
    assert request.redeem_refusal is None and request.estimated_proceeds == 1_194 * USDC
    done = sub.outcome(client, 1, sent(client, sub.plan_fulfil_redeem(client, OPERATOR, 1, BOB),
                                       OPERATOR))
    assert (done.shares_redeemed, done.proceeds_set_aside, done.fees) == (
        100 * SHARE, 1_194 * USDC, 6 * USDC)
    assert token.totalSupply() == 1_900 * SHARE and token.balanceOf(world.vault) == 0
    assert sub.status(client, 1).redemption_funds == 806 * USDC
    stable = client.erc20(client.deployed.income_token)
    before = stable.balanceOf(BOB)
    done = sub.outcome(client, 1, sent(client, sub.plan_claim(client, BOB, 1), BOB))
    assert done.proceeds_claimed == 1_194 * USDC == stable.balanceOf(BOB) - before
    refused_alike(client, sub.plan_claim_proceeds(client, BOB, 1), BOB,
                  reasons.VAULT_EXCEEDS_CLAIMABLE)
    # What is left goes back to the treasury, never more.
    refused_alike(client, sub.plan_defund(client, OPERATOR, 1, "806.000001"), OPERATOR,
                  reasons.VAULT_EXCEEDS_REDEMPTION_FUNDS)
    treasury = stable.balanceOf(OPERATOR)
    done = sub.outcome(client, 1, sent(client, sub.plan_defund(client, OPERATOR, 1), OPERATOR))
    assert done.funds_withdrawn == 806 * USDC == stable.balanceOf(OPERATOR) - treasury
    refused_alike(client, sub.plan_defund(client, OPERATOR, 1), OPERATOR,
                  reasons.VAULT_EXCEEDS_REDEMPTION_FUNDS)


def test_redemption_refusals(client: Client, world: World):
    refused_alike(client, sub.plan_fulfil_redeem(client, OPERATOR, 1, BOB), OPERATOR,
                  reasons.VAULT_EXCEEDS_PENDING)
    refused_alike(client, sub.plan_request_redeem(client, BOB, 1, "2000.5"), BOB,
                  codes.message(codes.Restriction.INSUFFICIENT_BALANCE))
    sent(client, kyc.plan_freeze(client, DEPLOYER, BOB), DEPLOYER)
    refused_alike(client, sub.plan_request_redeem(client, BOB, 1, "10"), BOB, SENDER_FROZEN)


def test_a_frozen_controller_or_a_blocked_receiver_is_not_paid(client: Client, world: World):
    redeeming(client, world)
    boa.env.time_travel(seconds=NOTICE_DAYS * sub.DAY)
    publish(world)
    sent(client, sub.plan_fund(client, OPERATOR, 1, "1500"), OPERATOR)
    sent(client, sub.plan_fulfil_redeem(client, OPERATOR, 1, BOB), OPERATOR)
    refused_alike(client, sub.plan_claim_proceeds(client, BOB, 1, receiver=NORTH_KOREAN), BOB,
                  BLOCKED)
    sent(client, kyc.plan_freeze(client, DEPLOYER, BOB), DEPLOYER)
    refusal = refused_alike(client, sub.plan_claim(client, BOB, 1), BOB, FROZEN)
    assert "1,492.5 mUSDC stays claimable" in refusal.reason


def test_cancel_a_redemption_returns_the_shares(client: Client, world: World):
    redeeming(client, world, "250")
    token = client.token(1)
    boa.env.time_travel(seconds=CANCEL_DAYS * sub.DAY)
    refused_alike(client, sub.plan_cancel(client, BOB, 1, "redeem", receiver=NORTH_KOREAN), BOB,
                  BLOCKED)
    done = sub.outcome(client, 1, sent(client, sub.plan_cancel(client, BOB, 1, "redeem"), BOB))
    assert done.shares_returned == 250 * SHARE and token.balanceOf(BOB) == 2_000 * SHARE


def test_escrowed_shares_keep_earning_for_their_owner(client: Client, world: World):
    refused_alike(client, sub.plan_claim_income(client, BOB, 1), BOB, reasons.VAULT_NO_INCOME)
    redeeming(client, world, "500")  # a quarter of the supply
    token = client.token(1)
    stable = client.erc20(client.deployed.income_token)
    client.chain.send(stable.approve.tx(token.address, 10_000 * USDC), OPERATOR)
    client.chain.send(token.distribute.tx(10_000 * USDC), OPERATOR)
    owed = sub.investor(client, 1, BOB).request.income_owed
    assert abs(owed - 2_500 * USDC) <= 1
    assert f"income owed {sub.status(client, 1).asset.fmt(owed)}" in \
        "\n".join(sub.requests(client, 1).lines())
    done = sub.outcome(client, 1, sent(client, sub.plan_claim_income(client, BOB, 1), BOB))
    assert done.income_claimed == owed
    refused_alike(client, sub.plan_claim_income(client, BOB, 1), BOB, reasons.VAULT_NO_INCOME)


def test_the_request_book_lists_every_open_request(client: Client, world: World):
    assert sub.requests(client, 1).requests == []
    assert "requests: none open" in "\n".join(sub.requests(client, 1).lines())
    sent(client, sub.plan_request_deposit(client, ALICE, 1, "3000"), ALICE)
    redeeming(client, world, "10")
    book = sub.requests(client, 1)
    assert [r.controller for r in book.requests] == [ALICE, BOB]
    alice, bob = book.requests
    assert alice.pending_deposit == 3_000 * USDC and bob.pending_redeem == 10 * SHARE
    assert bob.redeem_refusal.startswith(reasons.VAULT_NOTICE_NOT_OVER)
    assert bob.notice_over_at == bob.redeem_requested_at + NOTICE_DAYS * sub.DAY
    text = "\n".join(book.lines())
    assert "requests (2 controller(s)):" in text
    assert "deposit pending 3,000 mUSDC (about 200 LSH1 at the NAV)" in text
    assert "redemption pending 10 LSH1 (about 149.25 mUSDC after the fee at the NAV)" in text
    status = "\n".join(sub.investor(client, 1, BOB).lines())
    assert "holds 1,990 LSH1" in status and "redemption pending 10 LSH1" in status
    assert sub.controllers(client, 1) == [ALICE, BOB]


def test_the_vault_needs_the_tokens_operator_role(client: Client, world: World):
    sent(client, sub.plan_request_deposit(client, ALICE, 1, "1500"), ALICE)
    publish(world)
    token = client.token(1)
    client.chain.send(token.revokeRole.tx(sub.OPERATOR_ROLE, world.vault), OPERATOR)
    refusal = refused_alike(client, sub.plan_fulfil_deposit(client, OPERATOR, 1, ALICE),
                            OPERATOR, reasons.ACCESS_CONTROL_MISSING_ROLE)
    assert "the vault lacks SPV 1's token OPERATOR_ROLE" in refusal.reason
    # A KYC provider cannot grant it (nothing of its own is missing); the token's admin can.
    by_kyc = sub.plan_register_vault(client, KYC, 1)
    assert by_kyc.txs == () and "the token's admin must grant" in by_kyc.refusal.reason
    grant = sub.plan_register_vault(client, OPERATOR, 1)
    assert [tx.function for tx in grant.txs] == ["grantRole"]
    sent(client, grant, OPERATOR)
    sent(client, sub.plan_fulfil_deposit(client, OPERATOR, 1, ALICE), OPERATOR)


def test_only_the_vaults_operator_fulfils_redemptions_and_withdraws_funds(client: Client,
                                                                         world: World):
    redeeming(client, world)
    boa.env.time_travel(seconds=NOTICE_DAYS * sub.DAY)
    publish(world)
    sent(client, sub.plan_fund(client, OPERATOR, 1, "1500"), OPERATOR)
    refused_alike(client, sub.plan_fulfil_redeem(client, STRANGER, 1, BOB), STRANGER,
                  reasons.ACCESS_CONTROL_MISSING_ROLE)
    refused_alike(client, sub.plan_defund(client, STRANGER, 1), STRANGER,
                  reasons.ACCESS_CONTROL_MISSING_ROLE)
    refused_alike(client, sub.plan_fund(client, OPERATOR, 1, "2000000"), OPERATOR,
                  reasons.ERC20_INSUFFICIENT_BALANCE)


def test_claim_takes_shares_and_proceeds_together(client: Client, world: World):
    client.chain.send(client.erc20(client.deployed.income_token).mint.tx(BOB, 3_000 * USDC),
                      DEPLOYER)
    sent(client, sub.plan_request_deposit(client, BOB, 1, "1500"), BOB)
    redeeming(client, world, "100")
    boa.env.time_travel(seconds=NOTICE_DAYS * sub.DAY)
    publish(world)
    sent(client, sub.plan_fund(client, OPERATOR, 1, "1500"), OPERATOR)
    sent(client, sub.plan_fulfil_deposit(client, OPERATOR, 1, BOB), OPERATOR)
    sent(client, sub.plan_fulfil_redeem(client, OPERATOR, 1, BOB), OPERATOR)
    plan = sub.plan_claim(client, BOB, 1)
    assert [tx.function for tx in plan.txs] == ["deposit", "redeem"]
    done = sub.outcome(client, 1, sent(client, plan, BOB))
    assert (done.shares_claimed, done.proceeds_claimed) == (100 * SHARE, 1_492_500_000)
    assert sub.investor(client, 1, BOB).request.empty


def test_income_is_not_paid_to_a_blocked_receiver_or_a_frozen_wallet(client: Client,
                                                                     world: World):
    redeeming(client, world, "500")
    token = client.token(1)
    stable = client.erc20(client.deployed.income_token)
    client.chain.send(stable.approve.tx(token.address, 1_000 * USDC), OPERATOR)
    client.chain.send(token.distribute.tx(1_000 * USDC), OPERATOR)
    refused_alike(client, sub.plan_claim_income(client, BOB, 1, receiver=NORTH_KOREAN), BOB,
                  BLOCKED)
    sent(client, kyc.plan_freeze(client, DEPLOYER, BOB), DEPLOYER)
    refusal = refused_alike(client, sub.plan_claim_income(client, BOB, 1), BOB, FROZEN)
    assert "stays owed" in refusal.reason
