"""GPUShareToken's compliance gate: every way around it is refused with the registry's
message and moves nothing; the agent powers (partial freeze, forced transfer, wallet
recovery) do what they promise and no more; the ERC-1404 / ERC-7943 views agree with
enforcement."""

from __future__ import annotations

import boa
import pytest
from eth_account import Account
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from gpushares import reasons
from jurisdictions.codes import Restriction, message
from tests.budgets import budget
from tests.contracts.helpers import (
    BLOCKED,
    CH,
    FORCED_TRANSFER_ROLE,
    FR,
    FREEZER_ROLE,
    KP,
    NOT_RECOGNISED,
    RECOGNISED,
    RECOVERY_ROLE,
    SHARE,
    TEST_TABLE,
    UNCLEAR,
    US,
    USDC,
    ZERO,
    gpu,
    register,
)
from tests.contracts.test_shares import _permit_signature

S = Restriction
MISSING_ROLE = reasons.ACCESS_CONTROL_MISSING_ROLE
ZERO32 = b"\0" * 32
OPINION = keccak(text="legal-opinion-fr")


def refused(code: Restriction):
    """Expect a revert with exactly the registry's message for `code`."""
    return boa.reverts(message(code))


def _events(contract, name):
    return [log for log in contract.get_logs() if type(log).__name__ == name]


def _event(contract, name):
    return _events(contract, name)[-1]


def _state(token, *accounts):
    return (token.totalSupply(), *(token.balanceOf(a) for a in accounts))


@pytest.fixture(scope="session")
def agent():
    return boa.env.generate_address("compliance-agent")


@pytest.fixture
def holders(token, operator, alice, bob):
    """alice holds 100 shares, bob 50, the operator (the SPV) 20."""
    with boa.env.prank(operator):
        token.mint(alice, 100 * SHARE)
        token.mint(bob, 50 * SHARE)
        token.mint(operator, 20 * SHARE)
    return token


@pytest.fixture
def agents(holders, operator, agent):
    """The token's admin (operator) granted every agent role to `agent`."""
    with boa.env.prank(operator):
        for role in (FREEZER_ROLE, FORCED_TRANSFER_ROLE, RECOVERY_ROLE):
            holders.grantRole(role, agent)
    return holders


def _set_row(registry, compliance_admin, code, title, policy):
    with boa.env.prank(compliance_admin):
        registry.set_jurisdictions([(code, title, policy, keccak(text=f"{code}-{title}"))])


def _freeze_wallet(registry, compliance_admin, account, frozen=True):
    with boa.env.prank(compliance_admin):
        registry.set_wallet_frozen(account, frozen)


# ---------------------------------------------------------------------------------
# Bypass attempts: transfer, transferFrom, permit, mint
# ---------------------------------------------------------------------------------


def test_transfer_to_an_unregistered_receiver(holders, alice, stranger):
    before = _state(holders, alice, stranger)
    with boa.env.prank(alice):
        with refused(S.RECEIVER_NOT_REGISTERED):
            holders.transfer(stranger, SHARE)
        with refused(S.RECEIVER_NOT_REGISTERED):  # even a zero-amount transfer
            holders.transfer(stranger, 0)
    assert _state(holders, alice, stranger) == before


def test_transfer_from_an_unregistered_sender(holders, registry, compliance_admin, alice, bob):
    with boa.env.prank(compliance_admin):
        registry.remove_investor(alice)
    before = _state(holders, alice, bob)
    with boa.env.prank(alice), refused(S.SENDER_NOT_REGISTERED):
        holders.transfer(bob, SHARE)
    with boa.env.prank(alice):
        holders.approve(bob, SHARE)
    with boa.env.prank(bob), refused(S.SENDER_NOT_REGISTERED):
        holders.transferFrom(alice, bob, SHARE)
    assert _state(holders, alice, bob) == before
    assert holders.allowance(alice, bob) == SHARE


def test_transfer_from_by_an_approved_third_party(holders, registry, compliance_admin, alice, bob,
                                                  stranger):
    with boa.env.prank(alice):
        holders.approve(stranger, 5 * SHARE)
    before = _state(holders, alice, bob, stranger)
    # The spender sends to itself (it never did KYC).
    with boa.env.prank(stranger), refused(S.RECEIVER_NOT_REGISTERED):
        holders.transferFrom(alice, stranger, SHARE)
    assert holders.allowance(alice, stranger) == 5 * SHARE  # the whole call reverted
    # The sender's wallet is frozen: an allowance does not get around it.
    _freeze_wallet(registry, compliance_admin, alice)
    with boa.env.prank(stranger), refused(S.SENDER_FROZEN):
        holders.transferFrom(alice, bob, SHARE)
    assert holders.allowance(alice, stranger) == 5 * SHARE
    assert _state(holders, alice, bob, stranger) == before
    # Once alice is unfrozen the same allowance works for an eligible receiver.
    _freeze_wallet(registry, compliance_admin, alice, False)
    with boa.env.prank(stranger):
        holders.transferFrom(alice, bob, SHARE)
    assert holders.allowance(alice, stranger) == 4 * SHARE
    assert holders.balanceOf(bob) == 51 * SHARE


def test_permit_then_transfer_from_to_an_ineligible_receiver(token, registry, compliance_admin,
                                                             operator, bob, stranger):
    key = Account.create().key
    holder = Account.from_key(key).address
    register(registry, compliance_admin, holder)
    with boa.env.prank(operator):
        token.mint(holder, 5 * SHARE)
    deadline = boa.env.timestamp + 3600
    sig = _permit_signature(token, key, stranger, 2 * SHARE, 0, deadline)
    token.permit(holder, stranger, 2 * SHARE, deadline, sig.v, sig.r.to_bytes(32, "big"),
                 sig.s.to_bytes(32, "big"))
    with boa.env.prank(stranger), refused(S.RECEIVER_NOT_REGISTERED):
        token.transferFrom(holder, stranger, 2 * SHARE)
    kp = boa.env.generate_address("kp-resident")
    register(registry, compliance_admin, kp, jurisdiction=KP)
    with boa.env.prank(stranger), refused(S.RECEIVER_JURISDICTION_BLOCKED):
        token.transferFrom(holder, kp, 2 * SHARE)
    assert token.balanceOf(holder) == 5 * SHARE and token.balanceOf(stranger) == 0
    assert token.allowance(holder, stranger) == 2 * SHARE
    with boa.env.prank(stranger):
        token.transferFrom(holder, bob, 2 * SHARE)
    assert token.balanceOf(bob) == 2 * SHARE


def test_mint_to_ineligible_investors(token, registry, compliance_admin, operator, stranger):
    kp, ch = boa.env.generate_address("kp"), boa.env.generate_address("ch")
    register(registry, compliance_admin, kp, jurisdiction=KP, accredited=True)
    register(registry, compliance_admin, ch, jurisdiction=CH, accredited=False)
    unlisted = boa.env.generate_address("unlisted")
    register(registry, compliance_admin, unlisted, jurisdiction=4)
    with boa.env.prank(operator):
        with refused(S.RECEIVER_JURISDICTION_BLOCKED):  # blocked even when accredited
            token.mint(kp, SHARE)
        with refused(S.RECEIVER_NOT_ACCREDITED):
            token.mint(ch, SHARE)
        with refused(S.RECEIVER_JURISDICTION_BLOCKED):  # residence not in the table
            token.mint(unlisted, SHARE)
        with refused(S.RECEIVER_NOT_REGISTERED):
            token.mint(stranger, SHARE)
    assert token.totalSupply() == 0
    register(registry, compliance_admin, ch, jurisdiction=CH, accredited=True)
    with boa.env.prank(operator):
        token.mint(ch, SHARE)
    assert token.balanceOf(ch) == SHARE


def test_transfer_to_a_non_accredited_resident_of_an_accredited_only_jurisdiction(
        holders, registry, compliance_admin, alice):
    ch = boa.env.generate_address("ch")
    register(registry, compliance_admin, ch, jurisdiction=CH)
    with boa.env.prank(alice), refused(S.RECEIVER_NOT_ACCREDITED):
        holders.transfer(ch, SHARE)
    assert holders.balanceOf(ch) == 0


def test_expired_sender(holders, registry, compliance_admin, alice, bob):
    register(registry, compliance_admin, alice, expires_at=boa.env.timestamp + 100)
    boa.env.time_travel(seconds=99)
    with boa.env.prank(alice):
        holders.transfer(bob, SHARE)  # one second before expiry
    boa.env.time_travel(seconds=1)
    before = _state(holders, alice, bob)
    with boa.env.prank(alice), refused(S.SENDER_ELIGIBILITY_EXPIRED):
        holders.transfer(bob, SHARE)
    with boa.env.prank(alice):
        holders.approve(bob, SHARE)
    with boa.env.prank(bob), refused(S.SENDER_ELIGIBILITY_EXPIRED):
        holders.transferFrom(alice, bob, SHARE)
    assert _state(holders, alice, bob) == before
    register(registry, compliance_admin, alice)  # renewed
    with boa.env.prank(alice):
        holders.transfer(bob, SHARE)


def test_expired_receiver(holders, registry, compliance_admin, operator, alice, bob):
    register(registry, compliance_admin, bob, expires_at=boa.env.timestamp + 100)
    boa.env.time_travel(seconds=100)
    before = _state(holders, alice, bob)
    with boa.env.prank(alice), refused(S.RECEIVER_ELIGIBILITY_EXPIRED):
        holders.transfer(bob, SHARE)
    with boa.env.prank(operator), refused(S.RECEIVER_ELIGIBILITY_EXPIRED):
        holders.mint(bob, SHARE)
    assert _state(holders, alice, bob) == before


def test_wallet_frozen_in_the_registry(holders, registry, compliance_admin, operator, alice, bob):
    before = _state(holders, alice, bob, operator)
    _freeze_wallet(registry, compliance_admin, alice)
    with boa.env.prank(alice), refused(S.SENDER_FROZEN):
        holders.transfer(bob, SHARE)
    with boa.env.prank(bob), refused(S.RECEIVER_FROZEN):
        holders.transfer(alice, SHARE)
    with boa.env.prank(operator), refused(S.RECEIVER_FROZEN):
        holders.mint(alice, SHARE)
    with boa.env.prank(alice), refused(S.SENDER_FROZEN):  # not even back to the SPV
        holders.transfer(operator, SHARE)
    _freeze_wallet(registry, compliance_admin, operator)
    with boa.env.prank(operator), refused(S.SENDER_FROZEN):
        holders.burn(SHARE)
    assert _state(holders, alice, bob, operator) == before
    _freeze_wallet(registry, compliance_admin, alice, False)
    with boa.env.prank(alice):
        holders.transfer(bob, SHARE)


def test_partial_freeze(agents, agent, operator, alice, bob):
    token = agents
    with boa.env.prank(agent):
        token.setFrozenTokens(alice, 60 * SHARE)
    with boa.env.prank(alice):
        with refused(S.AMOUNT_FROZEN):
            token.transfer(bob, 40 * SHARE + 1)
        with refused(S.INSUFFICIENT_BALANCE):  # the balance check comes first
            token.transfer(bob, 101 * SHARE)
        token.transfer(bob, 40 * SHARE)  # exactly the unfrozen part
        with refused(S.AMOUNT_FROZEN):
            token.transfer(bob, 1)
        token.approve(bob, 2**256 - 1)
    with boa.env.prank(bob), refused(S.AMOUNT_FROZEN):
        token.transferFrom(alice, bob, 1)
    assert token.balanceOf(alice) == 60 * SHARE and token.balanceOf(bob) == 90 * SHARE
    with boa.env.prank(agent):
        token.setFrozenTokens(alice, 1_000 * SHARE)  # more than the balance: nothing moves
    with boa.env.prank(alice), refused(S.AMOUNT_FROZEN):
        token.transfer(bob, 1)
    with boa.env.prank(agent):
        token.setFrozenTokens(operator, 20 * SHARE)
    with boa.env.prank(operator), refused(S.AMOUNT_FROZEN):
        token.burn(SHARE)
    assert token.balanceOf(alice) == 60 * SHARE and token.totalSupply() == 170 * SHARE


# ---------------------------------------------------------------------------------
# Title recognition stops transfers (except redemption to the SPV)
# ---------------------------------------------------------------------------------


def _assert_title_stop(token, operator, alice, bob):
    with boa.env.prank(alice), refused(S.ASSET_TITLE_NOT_RECOGNISED):
        token.transfer(bob, SHARE)
    with boa.env.prank(alice):
        token.approve(bob, SHARE)
    with boa.env.prank(bob), refused(S.ASSET_TITLE_NOT_RECOGNISED):
        token.transferFrom(alice, bob, SHARE)
    with boa.env.prank(operator):
        with refused(S.ASSET_TITLE_NOT_RECOGNISED):
            token.mint(alice, SHARE)
        with refused(S.ASSET_TITLE_NOT_RECOGNISED):  # a mint is never a redemption
            token.mint(operator, SHARE)
        with refused(S.ASSET_TITLE_NOT_RECOGNISED):  # nor a transfer by the SPV
            token.transfer(alice, SHARE)
    supply = token.totalSupply()
    with boa.env.prank(alice):
        token.transfer(operator, 10 * SHARE)  # redemption to the SPV
    with boa.env.prank(operator):
        token.burn(30 * SHARE)
    assert token.totalSupply() == supply - 30 * SHARE
    assert token.balanceOf(alice) == 90 * SHARE and token.balanceOf(operator) == 0


def test_title_not_recognised_after_gpus_were_added(holders, registry, compliance_admin,
                                                    operator, alice, bob):
    _set_row(registry, compliance_admin, US, NOT_RECOGNISED, TEST_TABLE[US][1])
    assert not registry.asset_title_recognised(holders.address)
    _assert_title_stop(holders, operator, alice, bob)
    _set_row(registry, compliance_admin, US, *TEST_TABLE[US])
    with boa.env.prank(alice):
        holders.transfer(bob, SHARE)
    with boa.env.prank(operator):
        holders.mint(alice, SHARE)
    assert holders.balanceOf(bob) == 51 * SHARE


def test_title_stop_when_an_unclear_locations_override_is_cleared(holders, registry, operator,
                                                                  alice, bob):
    with boa.env.prank(operator):
        registry.set_title_override(holders.address, FR, OPINION)
        holders.add_gpus([gpu("FR-1", location=FR)])
        registry.set_title_override(holders.address, FR, ZERO32)
    _assert_title_stop(holders, operator, alice, bob)
    with boa.env.prank(operator):
        registry.set_title_override(holders.address, FR, OPINION)
    with boa.env.prank(alice):
        holders.transfer(bob, SHARE)
    # Retiring the GPU that sits in the unclear location also lifts the stop.
    with boa.env.prank(operator):
        registry.set_title_override(holders.address, FR, ZERO32)
        holders.retire_gpu(9)
    with boa.env.prank(alice):
        holders.transfer(bob, SHARE)
    assert holders.balanceOf(bob) == 52 * SHARE


def test_title_stop_when_the_location_row_becomes_unclear(holders, registry, compliance_admin,
                                                          operator, alice, bob):
    _set_row(registry, compliance_admin, US, UNCLEAR, TEST_TABLE[US][1])
    with boa.env.prank(alice), refused(S.ASSET_TITLE_NOT_RECOGNISED):
        holders.transfer(bob, SHARE)
    with boa.env.prank(operator):  # the SPV can record an opinion for the new status
        registry.set_title_override(holders.address, US, OPINION)
    with boa.env.prank(alice):
        holders.transfer(bob, SHARE)
    with boa.env.prank(operator):
        registry.set_title_override(holders.address, US, ZERO32)
    with boa.env.prank(alice), refused(S.ASSET_TITLE_NOT_RECOGNISED):
        holders.transfer(bob, SHARE)
    _set_row(registry, compliance_admin, US, RECOGNISED, TEST_TABLE[US][1])
    with boa.env.prank(alice):
        holders.transfer(bob, SHARE)
    assert holders.balanceOf(bob) == 52 * SHARE


# ---------------------------------------------------------------------------------
# Agent powers: refusals
# ---------------------------------------------------------------------------------


AGENT_CALLS = [
    ("setFrozenTokens", FREEZER_ROLE, lambda a, b: (a, SHARE)),
    ("forcedTransfer", FORCED_TRANSFER_ROLE, lambda a, b: (a, b, SHARE)),
    ("recover_wallet", RECOVERY_ROLE, lambda a, b: (a, b)),
]


@pytest.mark.parametrize(("fn", "role", "args"), AGENT_CALLS, ids=[c[0] for c in AGENT_CALLS])
def test_agent_functions_need_their_own_role(holders, registry, compliance_admin, operator,
                                             stranger, alice, bob, fn, role, args):
    if fn == "recover_wallet":  # a recovery needs the lost wallet frozen in the registry
        _freeze_wallet(registry, compliance_admin, alice)
    for caller in (stranger, alice, operator):  # not even the token's admin by default
        with boa.env.prank(caller), boa.reverts(MISSING_ROLE):
            getattr(holders, fn)(*args(alice, bob))
    with boa.env.prank(operator):  # the other agent roles are not enough
        for other in {FREEZER_ROLE, FORCED_TRANSFER_ROLE, RECOVERY_ROLE} - {role}:
            holders.grantRole(other, stranger)
    with boa.env.prank(stranger), boa.reverts(MISSING_ROLE):
        getattr(holders, fn)(*args(alice, bob))
    with boa.env.prank(operator):
        holders.grantRole(role, stranger)
    with boa.env.prank(stranger):
        getattr(holders, fn)(*args(alice, bob))


def test_forced_transfer_refusals(agents, registry, compliance_admin, agent, alice, bob,
                                  stranger):
    token = agents
    before = _state(token, alice, bob, stranger)
    _freeze_wallet(registry, compliance_admin, bob)
    kp = boa.env.generate_address("kp")
    register(registry, compliance_admin, kp, jurisdiction=KP)
    with boa.env.prank(agent):
        with refused(S.RECEIVER_FROZEN):
            token.forcedTransfer(alice, bob, SHARE)
        with refused(S.RECEIVER_NOT_REGISTERED):
            token.forcedTransfer(alice, stranger, SHARE)
        with refused(S.RECEIVER_JURISDICTION_BLOCKED):
            token.forcedTransfer(alice, kp, SHARE)
        with boa.reverts(reasons.TOKEN_RECEIVER_ZERO_ADDRESS):
            token.forcedTransfer(alice, ZERO, SHARE)
        with boa.reverts(reasons.TOKEN_FORCED_TRANSFER_ACCOUNT_ITSELF):
            token.forcedTransfer(alice, alice, SHARE)
        with boa.reverts(reasons.TOKEN_FORCED_TRANSFER_AMOUNT_ZERO):
            token.forcedTransfer(alice, bob, 0)
    _freeze_wallet(registry, compliance_admin, bob, False)
    with boa.env.prank(agent):
        with boa.reverts(reasons.TOKEN_FORCED_TRANSFER_EXCEEDS_SENDER):
            token.forcedTransfer(alice, bob, 100 * SHARE + 1)
        with boa.reverts(reasons.TOKEN_FORCED_TRANSFER_EXCEEDS_SENDER):
            token.forcedTransfer(stranger, bob, 1)
    assert _state(token, alice, bob, stranger) == before


def test_recovery_to_an_ineligible_wallet_is_refused(agents, registry, compliance_admin, agent,
                                                     alice, bob, stranger):
    token = agents
    before = _state(token, alice, bob, stranger)
    kp = boa.env.generate_address("kp")
    register(registry, compliance_admin, kp, jurisdiction=KP)
    expiring = boa.env.generate_address("expiring")
    register(registry, compliance_admin, expiring, expires_at=boa.env.timestamp + 10)
    boa.env.time_travel(seconds=10)
    _freeze_wallet(registry, compliance_admin, bob)
    with boa.env.prank(agent):
        with refused(S.RECEIVER_NOT_REGISTERED):
            token.recover_wallet(alice, stranger)
        with refused(S.RECEIVER_FROZEN):
            token.recover_wallet(alice, bob)
        with refused(S.RECEIVER_JURISDICTION_BLOCKED):
            token.recover_wallet(alice, kp)
        with refused(S.RECEIVER_ELIGIBILITY_EXPIRED):
            token.recover_wallet(alice, expiring)
        with boa.reverts(reasons.TOKEN_RECEIVER_ZERO_ADDRESS):
            token.recover_wallet(alice, ZERO)
        with boa.reverts(reasons.TOKEN_RECOVERY_SAME_WALLET):
            token.recover_wallet(alice, alice)
    assert _state(token, alice, bob, stranger) == before


def test_recovery_of_an_empty_wallet_is_refused(agents, registry, compliance_admin, agent, bob,
                                                stranger):
    register(registry, compliance_admin, stranger)
    _freeze_wallet(registry, compliance_admin, stranger)
    with boa.env.prank(agent):
        with boa.reverts(reasons.TOKEN_LOST_WALLET_HOLDS_NO):
            agents.recover_wallet(stranger, bob)
        # A freeze alone is recovered: it may cover the holder's shares in a pool
        # (the pool's recover_position then follows it).
        agents.setFrozenTokens(stranger, SHARE)
        before = agents.getFrozenTokens(bob)
        agents.recover_wallet(stranger, bob)
        with boa.reverts(reasons.TOKEN_LOST_WALLET_HOLDS_NO):  # nothing left
            agents.recover_wallet(stranger, bob)
    assert agents.getFrozenTokens(bob) == before + SHARE
    assert agents.getFrozenTokens(stranger) == 0


# ---------------------------------------------------------------------------------
# Agent powers: what they do
# ---------------------------------------------------------------------------------


def test_set_frozen_tokens(agents, agent, alice):
    token = agents
    assert token.getFrozenTokens(alice) == 0
    with boa.env.prank(agent):
        assert token.setFrozenTokens(alice, 30 * SHARE)
        event = _event(token, "Frozen")
        with boa.reverts(reasons.TOKEN_FROZEN_AMOUNT_UNCHANGED):
            token.setFrozenTokens(alice, 30 * SHARE)
        with boa.reverts(reasons.TOKEN_CANNOT_FREEZE_ZERO_ADDRESS):
            token.setFrozenTokens(ZERO, SHARE)
    assert (event.user, event.amount) == (alice, 30 * SHARE)
    assert token.getFrozenTokens(alice) == 30 * SHARE
    with boa.env.prank(agent):
        token.setFrozenTokens(alice, 0)
        unfrozen = _event(token, "Frozen")
    assert (unfrozen.user, unfrozen.amount) == (alice, 0)
    assert token.canTransfer(alice, alice, 100 * SHARE)


def test_frozen_shares_keep_earning_income(agents, funded, agent, operator, alice, bob):
    token = agents
    with boa.env.prank(operator):
        token.burn(20 * SHARE)  # alice 100, bob 50
    with boa.env.prank(agent):
        token.setFrozenTokens(alice, 100 * SHARE)
    with boa.env.prank(operator):
        token.distribute(1_500 * USDC)
    assert token.claimable(alice) == 1_000 * USDC and token.claimable(bob) == 500 * USDC
    with boa.env.prank(agent):
        token.setFrozenTokens(alice, 0)
    assert token.claimable(alice) == 1_000 * USDC  # freezing never touched income
    with boa.env.prank(agent):
        token.setFrozenTokens(alice, 100 * SHARE)
    with boa.env.prank(alice):
        assert token.claim() == 1_000 * USDC  # and claiming is not a share movement


@pytest.mark.parametrize("situation", ["paused", "wallet-frozen", "expired", "title-stopped",
                                       "unregistered"])
def test_forced_transfer_bypasses_sender_side_restrictions(agents, registry, compliance_admin,
                                                           agent, operator, alice, bob,
                                                           situation):
    token = agents
    if situation == "paused":
        with boa.env.prank(operator):
            token.pause()
        code = S.TOKEN_PAUSED
    elif situation == "wallet-frozen":
        _freeze_wallet(registry, compliance_admin, alice)
        code = S.SENDER_FROZEN
    elif situation == "expired":
        register(registry, compliance_admin, alice, expires_at=boa.env.timestamp + 1)
        boa.env.time_travel(seconds=1)
        code = S.SENDER_ELIGIBILITY_EXPIRED
    elif situation == "title-stopped":
        _set_row(registry, compliance_admin, US, NOT_RECOGNISED, TEST_TABLE[US][1])
        code = S.ASSET_TITLE_NOT_RECOGNISED
    else:
        with boa.env.prank(compliance_admin):
            registry.remove_investor(alice)
        code = S.SENDER_NOT_REGISTERED
    assert token.detectTransferRestriction(alice, bob, 30 * SHARE) == code
    with boa.env.prank(agent):
        assert token.forcedTransfer(alice, bob, 30 * SHARE)
        forced = _event(token, "ForcedTransfer")
        transfer = _event(token, "Transfer")
    assert (forced.sender, forced.receiver, forced.amount) == (alice, bob, 30 * SHARE)
    assert (transfer.sender, transfer.receiver, transfer.value) == (alice, bob, 30 * SHARE)
    assert token.balanceOf(alice) == 70 * SHARE and token.balanceOf(bob) == 80 * SHARE
    assert not _events(token, "Frozen")


def test_forced_transfer_shrinks_the_partial_freeze_it_takes(agents, agent, alice, bob):
    token = agents
    with boa.env.prank(agent):
        token.setFrozenTokens(alice, 30 * SHARE)
        token.forcedTransfer(alice, bob, 70 * SHARE)  # only unfrozen shares: freeze kept
        assert not _events(token, "Frozen")
        assert token.getFrozenTokens(alice) == 30 * SHARE
        token.forcedTransfer(alice, bob, 20 * SHARE)  # takes 20 frozen shares
        frozen = _event(token, "Frozen")
    assert (frozen.user, frozen.amount) == (alice, 10 * SHARE)
    assert token.getFrozenTokens(alice) == 10 * SHARE == token.balanceOf(alice)
    with boa.env.prank(agent):
        token.setFrozenTokens(alice, 1_000 * SHARE)  # above the balance (pooled shares)
        token.forcedTransfer(alice, bob, 10 * SHARE)
        shrunk = _event(token, "Frozen")
    # Only the 10 frozen shares taken leave the freeze: the rest keeps covering what
    # the holder has outside the wallet (a pool position).
    assert (shrunk.user, shrunk.amount) == (alice, 990 * SHARE)
    assert token.getFrozenTokens(alice) == 990 * SHARE and token.balanceOf(alice) == 0
    assert token.balanceOf(bob) == 150 * SHARE


def test_forced_transfer_leaves_earned_income_with_the_sender(agents, funded, agent, operator,
                                                              alice, bob):
    token = agents
    with boa.env.prank(operator):
        token.distribute(1_700 * USDC)  # 170 shares: 10 USDC per share
    with boa.env.prank(agent):
        token.forcedTransfer(alice, bob, 100 * SHARE)
    assert token.claimable(alice) == 1_000 * USDC and token.claimable(bob) == 500 * USDC
    with boa.env.prank(operator):
        token.distribute(1_700 * USDC)
    assert token.claimable(alice) == 1_000 * USDC and token.claimable(bob) == 2_000 * USDC


def test_recover_wallet_moves_shares_income_and_freeze(agents, funded, registry,
                                                       compliance_admin, agent, operator, alice,
                                                       bob):
    token = agents
    new_wallet = boa.env.generate_address("alice-new")
    register(registry, compliance_admin, new_wallet)
    with boa.env.prank(operator):
        token.mint(new_wallet, 30 * SHARE)  # the new wallet already holds a position
        token.distribute(2_000 * USDC)  # 200 shares: 10 USDC per share
    with boa.env.prank(agent):
        token.setFrozenTokens(alice, 40 * SHARE)
        token.setFrozenTokens(new_wallet, 5 * SHARE)
    _freeze_wallet(registry, compliance_admin, alice)  # recovery ignores the lost wallet's state
    with boa.env.prank(operator):
        token.pause()  # and the pause
    old_claimable, new_claimable = token.claimable(alice), token.claimable(new_wallet)
    assert (old_claimable, new_claimable) == (1_000 * USDC, 300 * USDC)
    with boa.env.prank(agent):
        token.recover_wallet(alice, new_wallet)
        recovered = _event(token, "WalletRecovered")
        frozen = _events(token, "Frozen")
        transfer = _event(token, "Transfer")
    assert (recovered.lost_wallet, recovered.new_wallet, recovered.shares,
            recovered.claimable_income, recovered.frozen, recovered.agent) == (
        alice, new_wallet, 100 * SHARE, 1_000 * USDC, 40 * SHARE, agent)
    assert [(e.user, e.amount) for e in frozen] == [(alice, 0), (new_wallet, 45 * SHARE)]
    assert (transfer.sender, transfer.receiver, transfer.value) == (alice, new_wallet,
                                                                   100 * SHARE)
    assert token.balanceOf(alice) == 0 and token.balanceOf(new_wallet) == 130 * SHARE
    assert token.claimable(alice) == 0
    assert token.claimable(new_wallet) == old_claimable + new_claimable
    assert token.getFrozenTokens(alice) == 0 and token.getFrozenTokens(new_wallet) == 45 * SHARE
    assert token.totalSupply() == 200 * SHARE
    with boa.env.prank(operator):
        token.unpause()
        token.distribute(2_000 * USDC)
    assert token.claimable(alice) == 0
    assert token.claimable(new_wallet) == 1_300 * USDC + 1_300 * USDC
    with boa.env.prank(new_wallet):
        assert token.claim() == 2_600 * USDC
    with boa.env.prank(agent), boa.reverts(
            reasons.TOKEN_LOST_WALLET_HOLDS_NO):
        token.recover_wallet(alice, new_wallet)


# The token fixture is built once for the test; every example runs in its own anchor.
@settings(budget("gated_token_property"))
@given(
    lost=st.integers(1, 10**6), new=st.integers(0, 10**6), rest=st.integers(1, 10**6),
    income=st.lists(st.integers(1, 10**9), min_size=1, max_size=3),
)
def test_recover_wallet_income_is_conserved_up_to_rounding(token, registry, compliance_admin,
                                                           admin, stablecoin, operator, agent,
                                                           alice, bob, lost, new, rest, income):
    """The new wallet's accrual becomes exactly the sum of both wallets' accruals; in
    whole income units that is the sum of both claimables, or one more when their
    rounding remainders add up to a unit (the event reports the lost wallet's share)."""
    with boa.env.anchor():
        third = boa.env.generate_address("third")
        register(registry, compliance_admin, third)
        with boa.env.prank(admin):
            stablecoin.mint(operator, sum(income))
        with boa.env.prank(operator):
            stablecoin.approve(token.address, sum(income))
            token.grantRole(RECOVERY_ROLE, agent)
            token.mint(alice, lost)
            if new:
                token.mint(bob, new)
            token.mint(third, rest)
            for amount in income:
                token.distribute(amount)
        old_claimable, new_claimable = token.claimable(alice), token.claimable(bob)
        _freeze_wallet(registry, compliance_admin, alice)
        with boa.env.prank(agent):
            token.recover_wallet(alice, bob)
            event = _event(token, "WalletRecovered")
        assert event.claimable_income == old_claimable and event.shares == lost
        assert token.claimable(alice) == 0 and token.balanceOf(bob) == lost + new
        assert token.claimable(bob) - (old_claimable + new_claimable) in (0, 1)
        assert token.claimable(bob) + token.claimable(third) <= sum(income)


@settings(budget("gated_token_property"))
@given(balance=st.integers(1, 10**6), frozen=st.integers(0, 2 * 10**6),
       amount=st.integers(0, 2 * 10**6))
def test_partial_freeze_property(token, operator, agent, alice, bob, balance, frozen, amount):
    """A transfer passes exactly when it fits the balance and the unfrozen balance."""
    with boa.env.anchor():
        with boa.env.prank(operator):
            token.mint(alice, balance)
            token.grantRole(FREEZER_ROLE, agent)
        if frozen:
            with boa.env.prank(agent):
                token.setFrozenTokens(alice, frozen)
        if amount > balance:
            expected = S.INSUFFICIENT_BALANCE
        elif amount > balance - min(frozen, balance):
            expected = S.AMOUNT_FROZEN
        else:
            expected = S.SUCCESS
        assert token.detectTransferRestriction(alice, bob, amount) == expected
        with boa.env.prank(alice):
            if expected == S.SUCCESS:
                token.transfer(bob, amount)
                assert token.balanceOf(alice) == balance - amount
            else:
                with refused(expected):
                    token.transfer(bob, amount)
                assert token.balanceOf(alice) == balance


def test_recover_wallet_with_income_only(agents, funded, registry, compliance_admin, agent,
                                         operator, alice, bob):
    token = agents
    with boa.env.prank(operator):
        token.distribute(1_700 * USDC)
    with boa.env.prank(alice):
        token.transfer(bob, 100 * SHARE)  # sold everything, income stays behind
    new_wallet = boa.env.generate_address("alice-new")
    register(registry, compliance_admin, new_wallet)
    with boa.env.prank(agent), boa.reverts(reasons.TOKEN_RECOVERY_LOST_WALLET_ACTIVE):
        token.recover_wallet(alice, new_wallet)  # the lost key could still move shares
    with boa.env.prank(compliance_admin):
        registry.remove_investor(alice)  # ... or be frozen: removed is enough
    with boa.env.prank(agent):
        token.recover_wallet(alice, new_wallet)
        recovered = _event(token, "WalletRecovered")
    assert (recovered.shares, recovered.claimable_income, recovered.frozen) == (
        0, 1_000 * USDC, 0)
    assert token.claimable(alice) == 0 and token.claimable(new_wallet) == 1_000 * USDC
    assert not _events(token, "Transfer") and not _events(token, "Frozen")


# ---------------------------------------------------------------------------------
# ERC-1404 / ERC-7943 views agree with enforcement
# ---------------------------------------------------------------------------------


def _situation(code, token, registry, compliance_admin, operator, agent, alice, bob, stranger):
    """Put the chain in a state where moving shares gives `code`; returns
    (sender, receiver, amount)."""
    other = boa.env.generate_address("other")
    if code == S.SUCCESS:
        return alice, bob, SHARE
    if code == S.TOKEN_PAUSED:
        with boa.env.prank(operator):
            token.pause()
        return alice, bob, SHARE
    if code == S.ASSET_TITLE_NOT_RECOGNISED:
        _set_row(registry, compliance_admin, US, NOT_RECOGNISED, TEST_TABLE[US][1])
        return alice, bob, SHARE
    if code == S.SENDER_NOT_REGISTERED:
        with boa.env.prank(compliance_admin):
            registry.remove_investor(alice)
        return alice, bob, SHARE
    if code == S.SENDER_ELIGIBILITY_EXPIRED:
        register(registry, compliance_admin, alice, expires_at=boa.env.timestamp + 5)
        boa.env.time_travel(seconds=5)
        return alice, bob, SHARE
    if code == S.SENDER_FROZEN:
        _freeze_wallet(registry, compliance_admin, alice)
        return alice, bob, SHARE
    if code == S.RECEIVER_NOT_REGISTERED:
        return alice, stranger, SHARE
    if code == S.RECEIVER_ELIGIBILITY_EXPIRED:
        register(registry, compliance_admin, other, expires_at=boa.env.timestamp + 5)
        boa.env.time_travel(seconds=5)
        return alice, other, SHARE
    if code == S.RECEIVER_FROZEN:
        _freeze_wallet(registry, compliance_admin, bob)
        return alice, bob, SHARE
    if code == S.RECEIVER_JURISDICTION_BLOCKED:
        register(registry, compliance_admin, other, jurisdiction=KP)
        return alice, other, SHARE
    if code == S.RECEIVER_NOT_ACCREDITED:
        register(registry, compliance_admin, other, jurisdiction=CH)
        return alice, other, SHARE
    if code == S.RECEIVER_REGION_UNKNOWN:
        # CH gets a regional row: a resident recorded without a region is refused
        # (before the accredited-only policy is looked at).
        with boa.env.prank(compliance_admin):
            registry.set_subdivisions([(CH, 0x4745, RECOGNISED, BLOCKED, keccak(text="CH-GE"))])
        register(registry, compliance_admin, other, jurisdiction=CH, accredited=True)
        return alice, other, SHARE
    if code == S.INSUFFICIENT_BALANCE:
        return alice, bob, 100 * SHARE + 1
    assert code == S.AMOUNT_FROZEN
    with boa.env.prank(agent):
        token.setFrozenTokens(alice, 50 * SHARE)
    return alice, bob, 50 * SHARE + 1


@pytest.mark.parametrize("code", list(Restriction), ids=[r.name for r in Restriction])
def test_detect_transfer_restriction_matches_enforcement(agents, registry, compliance_admin,
                                                         operator, agent, alice, bob, stranger,
                                                         code):
    token = agents
    sender, receiver, amount = _situation(code, token, registry, compliance_admin, operator,
                                          agent, alice, bob, stranger)
    assert token.detectTransferRestriction(sender, receiver, amount) == code
    assert registry.can_transfer(token.address, sender, receiver, amount) == code
    assert token.canTransfer(sender, receiver, amount) == (code == S.SUCCESS)
    assert token.messageForTransferRestriction(code) == message(code)
    before = _state(token, sender, receiver)
    with boa.env.prank(sender):
        if code == S.SUCCESS:
            token.transfer(receiver, amount)
            assert token.balanceOf(receiver) == before[2] + amount
            return
        with refused(code):
            token.transfer(receiver, amount)
    assert _state(token, sender, receiver) == before


@pytest.mark.parametrize(
    ("code", "setup"),
    [
        (S.SUCCESS, None),
        (S.RECEIVER_NOT_REGISTERED, "unregistered"),
        (S.RECEIVER_JURISDICTION_BLOCKED, "kp"),
        (S.RECEIVER_NOT_ACCREDITED, "ch"),
        (S.TOKEN_PAUSED, "paused"),
    ],
)
def test_detect_transfer_restriction_for_a_mint(holders, registry, compliance_admin, operator,
                                                code, setup):
    receiver = boa.env.generate_address("new-investor")
    if setup is None:
        register(registry, compliance_admin, receiver)
    elif setup == "kp":
        register(registry, compliance_admin, receiver, jurisdiction=KP)
    elif setup == "ch":
        register(registry, compliance_admin, receiver, jurisdiction=CH)
    elif setup == "paused":
        register(registry, compliance_admin, receiver)
        with boa.env.prank(operator):
            holders.pause()
    assert holders.detectTransferRestriction(ZERO, receiver, SHARE) == code
    assert holders.canTransfer(ZERO, receiver, SHARE) == (code == 0)
    with boa.env.prank(operator):
        if code == S.SUCCESS:
            holders.mint(receiver, SHARE)
        else:
            with refused(code):
                holders.mint(receiver, SHARE)
    assert holders.balanceOf(receiver) == (SHARE if code == S.SUCCESS else 0)


@pytest.mark.parametrize("code", [*range(13), 13, 99, 255])
def test_message_for_transfer_restriction(token, code):
    assert token.messageForTransferRestriction(code) == message(code)


# ---------------------------------------------------------------------------------
# Audit findings: frozen wallets cannot claim (M1); freezes saturate on recovery (L3)
# ---------------------------------------------------------------------------------


def test_a_frozen_wallet_cannot_claim_but_keeps_accruing(holders, funded, registry,
                                                         compliance_admin, operator, alice):
    with boa.env.prank(operator):
        holders.distribute(170 * USDC)  # alice 100 of 170 shares
    _freeze_wallet(registry, compliance_admin, alice)
    with boa.env.prank(alice), boa.reverts(
        reasons.TOKEN_WALLET_FROZEN_COMPLIANCE_AGENT
    ):
        holders.claim()
    with boa.env.prank(operator):
        holders.distribute(170 * USDC)
    assert holders.claimable(alice) == 200 * USDC
    _freeze_wallet(registry, compliance_admin, alice, frozen=False)
    with boa.env.prank(alice):
        assert holders.claim() == 200 * USDC


def test_an_expired_or_removed_holder_can_still_claim(holders, funded, registry,
                                                      compliance_admin, operator, alice, bob):
    with boa.env.prank(operator):
        holders.distribute(170 * USDC)
    with boa.env.prank(compliance_admin):
        registry.remove_investor(alice)
        registry.set_investor(bob, US, False, boa.env.timestamp + 1)
    boa.env.time_travel(seconds=10)
    with boa.env.prank(alice):
        assert holders.claim() == 100 * USDC  # earned income is never confiscated
    with boa.env.prank(bob):
        assert holders.claim() == 50 * USDC


def test_recovery_saturates_frozen_amounts(agents, registry, compliance_admin, agent, alice,
                                           bob):
    _freeze_wallet(registry, compliance_admin, alice)
    with boa.env.prank(agent):
        agents.setFrozenTokens(alice, 2**256 - 1)  # "freeze everything"
        agents.setFrozenTokens(bob, 2**256 - 1)
        agents.recover_wallet(alice, bob)
    assert agents.getFrozenTokens(bob) == 2**256 - 1
    assert agents.getFrozenTokens(alice) == 0
    assert agents.balanceOf(bob) == 150 * SHARE
