"""GPUShareToken share movements: mint, burn, transfer, transferFrom, permit, pause."""

from __future__ import annotations

import boa
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from gpushares import reasons
from tests.contracts.helpers import (
    MAX_SUPPLY,
    PAUSER_ROLE,
    PERMIT_TYPES,
    SHARE,
    SHARES_PER_GPU,
    ZERO,
    register,
)

INSUFFICIENT = "The amount exceeds the sender's share balance."
PAUSED = "The share token is paused: no shares can move until the SPV unpauses it."


def test_mint_within_active_backing(token, operator, alice):
    with boa.env.prank(operator):
        token.mint(alice, 3 * SHARES_PER_GPU)
        transfer = token.get_logs()[-1]
    assert token.balanceOf(alice) == 3 * SHARES_PER_GPU == token.totalSupply()
    assert (transfer.sender, transfer.receiver, transfer.value) == (ZERO, alice, 3 * SHARES_PER_GPU)
    with boa.env.prank(operator):
        token.mint(alice, 5 * SHARES_PER_GPU)
        with boa.reverts(reasons.TOKEN_MINT_EXCEEDS_ACTIVE_GPUS):
            token.mint(alice, 1)


def test_mint_guards(token, operator, alice, stranger):
    with boa.env.prank(stranger), boa.reverts(reasons.ACCESS_CONTROL_MISSING_ROLE):
        token.mint(alice, 1)
    with boa.env.prank(operator):
        with boa.reverts(reasons.TOKEN_MINT_AMOUNT_ZERO):
            token.mint(alice, 0)
        with boa.reverts("erc20: mint to the zero address"):
            token.mint(ZERO, 1)
    assert token.totalSupply() == 0


def test_mint_never_exceeds_max_supply(factory, operator, stablecoin, alice):
    from tests.contracts.conftest import create_token
    from tests.contracts.helpers import gpu, make_lei

    big = create_token(factory, operator, stablecoin.address, lei=make_lei("MAXSUPPLY000000000"),
                       shares_per_gpu=MAX_SUPPLY)
    with boa.env.prank(operator):
        big.add_gpus([gpu("BIG-1"), gpu("BIG-2")])
        big.mint(alice, MAX_SUPPLY)
        with boa.reverts(reasons.TOKEN_MINT_EXCEEDS_MAX_SUPPLY):
            big.mint(alice, 1)


def test_burn(token, operator, alice):
    with boa.env.prank(operator):
        token.mint(operator, 2 * SHARE)
        token.mint(alice, 2 * SHARE)
        token.burn(SHARE)
        event = token.get_logs()[-1]
        with boa.reverts(reasons.TOKEN_BURN_AMOUNT_ZERO):
            token.burn(0)
        with boa.reverts(INSUFFICIENT):
            token.burn(2 * SHARE)
    assert (event.sender, event.receiver, event.value) == (operator, ZERO, SHARE)
    assert token.totalSupply() == 3 * SHARE and token.balanceOf(operator) == SHARE
    with boa.env.prank(alice), boa.reverts(reasons.ACCESS_CONTROL_MISSING_ROLE):
        token.burn(SHARE)


def test_transfer(token, operator, alice, bob):
    with boa.env.prank(operator):
        token.mint(alice, 10 * SHARE)
    with boa.env.prank(alice):
        assert token.transfer(bob, 4 * SHARE)
        event = token.get_logs()[-1]
        with boa.reverts(INSUFFICIENT):
            token.transfer(bob, 7 * SHARE)
        with boa.reverts("erc20: transfer to the zero address"):
            token.transfer(ZERO, SHARE)
    assert (event.sender, event.receiver, event.value) == (alice, bob, 4 * SHARE)
    assert token.balanceOf(alice) == 6 * SHARE and token.balanceOf(bob) == 4 * SHARE


def test_transfer_from_uses_allowance(token, operator, alice, bob, stranger):
    with boa.env.prank(operator):
        token.mint(alice, 10 * SHARE)
    with boa.env.prank(alice):
        token.approve(stranger, 3 * SHARE)
    with boa.env.prank(stranger):
        with boa.reverts(reasons.ERC20_INSUFFICIENT_ALLOWANCE):
            token.transferFrom(alice, bob, 4 * SHARE)
        assert token.transferFrom(alice, bob, 3 * SHARE)
    assert token.allowance(alice, stranger) == 0
    assert token.balanceOf(bob) == 3 * SHARE
    with boa.env.prank(alice):
        token.approve(stranger, 2**256 - 1)
    with boa.env.prank(stranger):
        token.transferFrom(alice, bob, SHARE)
    assert token.allowance(alice, stranger) == 2**256 - 1


def _permit_signature(token, owner_key, spender, value, nonce, deadline):
    data = {
        "types": PERMIT_TYPES,
        "primaryType": "Permit",
        "domain": {
            "name": token.name(),
            "version": "1",
            "chainId": boa.env.evm.patch.chain_id,
            "verifyingContract": token.address,
        },
        "message": {
            "owner": Account.from_key(owner_key).address,
            "spender": spender,
            "value": value,
            "nonce": nonce,
            "deadline": deadline,
        },
    }
    return Account.sign_message(encode_typed_data(full_message=data), owner_key)


def test_permit_then_transfer_from(token, operator, bob, stranger, registry, compliance_admin):
    key = b"\x42" * 32
    holder = Account.from_key(key).address
    register(registry, compliance_admin, holder)
    with boa.env.prank(operator):
        token.mint(holder, 5 * SHARE)
    deadline = boa.env.timestamp + 3600
    sig = _permit_signature(token, key, stranger, 2 * SHARE, 0, deadline)
    token.permit(holder, stranger, 2 * SHARE, deadline, sig.v, sig.r.to_bytes(32, "big"),
                 sig.s.to_bytes(32, "big"))
    assert token.allowance(holder, stranger) == 2 * SHARE and token.nonces(holder) == 1
    with boa.reverts("erc20: invalid signature"):  # replay: the nonce moved on
        token.permit(holder, stranger, 2 * SHARE, deadline, sig.v, sig.r.to_bytes(32, "big"),
                     sig.s.to_bytes(32, "big"))
    with boa.env.prank(stranger):
        token.transferFrom(holder, bob, 2 * SHARE)
    assert token.balanceOf(bob) == 2 * SHARE
    late = _permit_signature(token, key, stranger, SHARE, 1, boa.env.timestamp - 1)
    with boa.reverts("erc20: expired deadline"):
        token.permit(holder, stranger, SHARE, boa.env.timestamp - 1, late.v,
                     late.r.to_bytes(32, "big"), late.s.to_bytes(32, "big"))


def test_domain_separator_and_eip712_domain(token):
    fields, name, version, chain_id, contract, _salt, _ext = token.eip712Domain()
    assert name == token.name() and version == "1" and contract == token.address
    assert chain_id == boa.env.evm.patch.chain_id
    assert len(token.DOMAIN_SEPARATOR()) == 32


def test_pause_stops_movements_and_claims_but_not_income(token, funded, operator, alice, bob):
    with boa.env.prank(operator):
        token.mint(alice, 10 * SHARE)
        token.mint(operator, 10 * SHARE)
        token.pause()
        paused = token.get_logs()[-1]
        assert token.paused()
        with boa.reverts(reasons.TOKEN_ALREADY_PAUSED):
            token.pause()
        with boa.reverts(PAUSED):
            token.mint(alice, SHARE)
        with boa.reverts(PAUSED):
            token.burn(SHARE)
        token.distribute(1_000 * 10**6)  # income is never turned away
    assert type(paused).__name__ == "Paused" and paused.account == operator
    with boa.env.prank(alice):
        with boa.reverts(PAUSED):
            token.transfer(bob, SHARE)
        token.approve(bob, SHARE)
        with boa.reverts(reasons.TOKEN_PAUSED):
            token.claim()
    with boa.env.prank(bob), boa.reverts(PAUSED):
        token.transferFrom(alice, bob, SHARE)
    with boa.env.prank(operator):
        token.unpause()
        unpaused = token.get_logs()[-1]
        with boa.reverts(reasons.TOKEN_NOT_PAUSED):
            token.unpause()
    assert type(unpaused).__name__ == "Unpaused"
    assert not token.paused()
    assert token.income_per_share() > 1  # the pause bit never leaks into the accumulator
    with boa.env.prank(alice):
        token.transfer(bob, SHARE)
        assert token.claim() == 500 * 10**6


@pytest.mark.parametrize("fn", ["pause", "unpause"])
def test_pause_requires_pauser(token, stranger, fn):
    with boa.env.prank(stranger), boa.reverts(reasons.ACCESS_CONTROL_MISSING_ROLE):
        getattr(token, fn)()


def test_roles_can_be_delegated(token, operator, stranger):
    with boa.env.prank(operator):
        token.grantRole(PAUSER_ROLE, stranger)
    with boa.env.prank(stranger):
        token.pause()
    assert token.paused()
    assert token.supportsInterface(bytes.fromhex("7965db0b"))
