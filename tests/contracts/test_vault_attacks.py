"""Regression tests of the two attacks found on the subscription vault while it was built
(issue 20). Each failed against the first version of the contract (1228c7a) and passes
against the fix:

1. Delaying someone else's order: a request restarts its controller's clock (the wait for
   a NAV after it, the notice period), so a one-unit top-up for a victim's controller,
   sent just before each fulfilment, kept the victim's order from ever being filled.
2. The free option on a NAV in flight: a NAV report is signed off-chain and sits in the
   mempool before it lands, so a requester who could cancel until it landed would let the
   order fill at a NAV it likes and cancel it otherwise.
"""

from __future__ import annotations

import boa
import pytest

from gpushares import reasons
from tests.contracts.vault_helpers import CANCEL_AFTER, NAV_15, SHARE, USDC, vault_world


@pytest.fixture
def world(registry, factory, stablecoin, admin, operator, oracle_admin, compliance_admin):
    w = vault_world(registry, factory, stablecoin, admin, operator, oracle_admin,
                    compliance_admin, label="VATTACK")
    w.publish_nav(NAV_15)
    return w


def test_nobody_can_top_up_another_controllers_request_to_delay_it(world):
    vault = world.vault
    victim, attacker = world.investor("victim"), world.investor("griefer")
    world.fund(victim, 1_500 * USDC)
    world.fund(attacker, 10 * USDC)
    with boa.env.prank(victim):
        vault.requestDeposit(1_500 * USDC, victim, victim)
    boa.env.time_travel(seconds=60)
    world.publish_nav(NAV_15)
    # The griefer, just before the operator fulfils, adds one unit to the victim's order.
    with boa.env.prank(attacker):
        with boa.reverts(reasons.VAULT_NOT_CONTROLLER_OR_OPERATOR):
            vault.requestDeposit(1, victim, attacker)
        with boa.reverts(reasons.VAULT_NOT_CONTROLLER_OR_OPERATOR):
            vault.requestRedeem(1, victim, attacker)
    assert vault.pendingDepositRequest(0, victim) == 1_500 * USDC
    with boa.env.prank(world.operator):
        assert vault.fulfil_deposit(victim, 1_500 * USDC) == 100 * SHARE
    # An operator the victim approved may still request for it.
    with boa.env.prank(victim):
        vault.setOperator(attacker, True)
    with boa.env.prank(attacker):
        vault.requestDeposit(1, victim, attacker)
    assert vault.pendingDepositRequest(0, victim) == 1


def test_a_request_cannot_be_cancelled_while_a_nav_is_in_flight(world):
    vault = world.vault
    investor = world.investor("optionist")
    world.fund(investor, 1_500 * USDC)
    with boa.env.prank(investor):
        vault.requestDeposit(1_500 * USDC, investor, investor)
    boa.env.time_travel(seconds=3_600)
    # The next NAV (up 20 %) is signed and in the mempool; the requester sees it first.
    with boa.env.prank(investor), boa.reverts(reasons.VAULT_REQUEST_LOCKED):
        vault.cancelDepositRequest(investor, investor)
    world.publish_nav(18 * 10**8)
    with boa.env.prank(investor), boa.reverts(reasons.VAULT_REQUEST_LOCKED):
        vault.cancelDepositRequest(investor, investor)
    with boa.env.prank(world.operator):
        shares = vault.fulfil_deposit(investor, 1_500 * USDC)
    assert shares == 1_500 * USDC * 10**26 // (18 * 10**8 * USDC)


def test_an_unfulfilled_request_is_returned_in_full_after_cancel_after(world):
    vault, stable = world.vault, world.stable
    investor = world.investor("patient")
    world.fund(investor, 1_500 * USDC)
    with boa.env.prank(investor):
        vault.requestDeposit(1_500 * USDC, investor, investor)
    boa.env.time_travel(seconds=CANCEL_AFTER - 1)
    with boa.env.prank(investor), boa.reverts(reasons.VAULT_REQUEST_LOCKED):
        vault.cancelDepositRequest(investor, investor)
    boa.env.time_travel(seconds=1)
    with boa.env.prank(investor):
        assert vault.cancelDepositRequest(investor, investor) == 1_500 * USDC
    assert stable.balanceOf(investor) == 1_500 * USDC
    assert vault.pendingDepositRequest(0, investor) == 0
    assert vault.total_pending_deposit_assets() == 0


def test_a_frozen_controller_cannot_move_its_claims_to_another_wallet(world):
    """3. A freeze bypass (found by review after 673001c): a frozen controller's issued
    shares, escrowed redemption and pending subscription could be claimed or cancelled
    to an accomplice's eligible wallet. The controller now directs them only as a holder
    sends (check_sender) and is paid only as any payee (income_code)."""
    from jurisdictions.codes import Restriction, message

    vault = world.vault
    frozen, accomplice = world.investor("frozen-holder"), world.investor("accomplice")
    world.fund(frozen, 3_000 * USDC)
    with boa.env.prank(frozen):
        vault.requestDeposit(1_500 * USDC, frozen, frozen)
    boa.env.time_travel(seconds=60)
    world.publish_nav(NAV_15)
    with boa.env.prank(world.operator):
        vault.fulfil_deposit(frozen, 1_500 * USDC)
    with boa.env.prank(frozen):
        vault.mint(40 * SHARE, frozen)
        vault.requestRedeem(10 * SHARE, frozen, frozen)
        vault.requestDeposit(1_500 * USDC, frozen, frozen)
    boa.env.time_travel(seconds=CANCEL_AFTER)
    with boa.env.prank(world.compliance_admin):
        world.registry.set_wallet_frozen(frozen, True)
    with boa.env.prank(frozen):
        with boa.reverts(message(Restriction.SENDER_FROZEN)):
            vault.mint(SHARE, accomplice, frozen)
        with boa.reverts(message(Restriction.SENDER_FROZEN)):
            vault.cancelRedeemRequest(accomplice, frozen)
        with boa.reverts(message(Restriction.RECEIVER_FROZEN)):
            vault.cancelDepositRequest(accomplice, frozen)
    assert world.token.balanceOf(accomplice) == 0
    assert world.stable.balanceOf(accomplice) == 0
    assert vault.maxMint(frozen) == 60 * SHARE
    assert vault.pendingRedeemRequest(0, frozen) == 10 * SHARE
    assert vault.pendingDepositRequest(0, frozen) == 1_500 * USDC
