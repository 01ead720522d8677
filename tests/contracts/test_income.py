"""GPUShareToken rental income: distribute, claim, corrections, rounding, odd tokens."""

from __future__ import annotations

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpushares import reasons
from tests.budgets import budget
from tests.contracts import deployers
from tests.contracts.conftest import create_token
from tests.contracts.helpers import MAX_INCOME_PER_SHARE, SHARE, USDC, gpu, make_lei, register


def _event(contract, name):
    """The last event called `name` that `contract` emitted in the last call."""
    return [log for log in contract.get_logs() if type(log).__name__ == name][-1]


def _with_holders(token, operator, holders):
    with boa.env.prank(operator):
        for holder, shares in holders:
            token.mint(holder, shares)


def test_distribute_and_claim_pro_rata(token, funded, operator, alice, bob):
    _with_holders(token, operator, [(alice, 3_000 * SHARE), (bob, 5_000 * SHARE)])
    with boa.env.prank(operator):
        token.distribute(10_281_600_000)  # $10,281.60
        event = _event(token, "IncomeDistributed")
    assert event.amount == 10_281_600_000 and event.total_supply == 8_000 * SHARE
    assert event.operator == operator and event.income_per_share == token.income_per_share()
    assert token.claimable(alice) == 3_855_600_000
    assert token.claimable(bob) == 6_426_000_000
    assert token.total_distributed() == 10_281_600_000
    with boa.env.prank(alice):
        assert token.claim() == 3_855_600_000
        claimed = _event(token, "IncomeClaimed")
        with boa.reverts(reasons.TOKEN_NOTHING_CLAIM):
            token.claim()
    assert (claimed.holder, claimed.amount) == (alice, 3_855_600_000)
    assert funded.balanceOf(alice) == 3_855_600_000
    assert token.claimable(alice) == 0 and token.total_claimed() == 3_855_600_000


def test_income_earned_before_a_transfer_stays_with_the_seller(token, funded, operator, alice, bob):
    _with_holders(token, operator, [(alice, 1_000 * SHARE)])
    with boa.env.prank(operator):
        token.distribute(1_000 * USDC)
    with boa.env.prank(alice):
        token.transfer(bob, 1_000 * SHARE)
    assert token.claimable(alice) == 1_000 * USDC and token.claimable(bob) == 0
    with boa.env.prank(operator):
        token.distribute(500 * USDC)
    assert token.claimable(alice) == 1_000 * USDC and token.claimable(bob) == 500 * USDC


def test_minted_and_burnt_shares_keep_income_history(token, funded, operator, alice):
    _with_holders(token, operator, [(operator, 1_000 * SHARE)])
    with boa.env.prank(operator):
        token.distribute(100 * USDC)
        token.mint(alice, 1_000 * SHARE)  # new shares earn nothing from the past
        assert token.claimable(alice) == 0
        token.burn(1_000 * SHARE)  # the operator's earned income survives the burn
        assert token.claimable(operator) == 100 * USDC
        token.distribute(100 * USDC)
    assert token.claimable(alice) == 100 * USDC
    assert token.claimable(operator) == 100 * USDC


def test_distribute_guards(token, funded, operator, stranger, alice):
    with boa.env.prank(operator):
        with boa.reverts(reasons.TOKEN_DISTRIBUTE_AMOUNT_ZERO):
            token.distribute(0)
        with boa.reverts(reasons.TOKEN_NO_SHARES_OUTSTANDING_RECEIVE):
            token.distribute(USDC)
    _with_holders(token, operator, [(alice, SHARE)])
    with boa.env.prank(stranger), boa.reverts(reasons.ACCESS_CONTROL_MISSING_ROLE):
        token.distribute(USDC)
    with boa.env.prank(operator), boa.reverts(reasons.ERC20_INSUFFICIENT_ALLOWANCE):
        funded.approve(token.address, 0)
        token.distribute(USDC)
    assert token.total_distributed() == 0


def test_distribute_rejects_an_income_per_share_overflow(token, funded, operator, alice):
    _with_holders(token, operator, [(alice, 1)])  # one base unit outstanding
    too_much = MAX_INCOME_PER_SHARE // 10**36 + 1
    with boa.env.prank(operator):
        with boa.reverts(
            reasons.TOKEN_INCOME_PER_SHARE_OVERFLOW
        ):
            token.distribute(too_much)
        token.distribute(too_much - 2)
    assert token.claimable(alice) == too_much - 2


def test_rounding_dust_stays_in_the_contract_and_is_carried(token, funded, operator, alice, bob):
    _with_holders(token, operator, [(alice, 1), (bob, 2)])  # 3 base units: thirds never divide
    with boa.env.prank(operator):
        token.distribute(1)
        assert token.income_carry() > 0
        token.distribute(2)
    paid = token.claimable(alice) + token.claimable(bob)
    assert paid <= 3 and 3 - paid <= 2
    assert token.claimable(alice) == 1 and token.claimable(bob) == 2


# Supplies from 1e6 base units (a dust supply with huge income per share trips the
# overflow guard, tested above). Each example deploys a token, so examples are capped;
# the stateful test explores the same invariant in depth.
@settings(budget("income_property"))
@given(
    shares=st.lists(st.integers(10**6, 10**27), min_size=1, max_size=5),
    amounts=st.lists(st.integers(1, 10**15), min_size=1, max_size=4),
)
def test_claims_never_exceed_deposits(factory, operator, stablecoin, admin, registry,
                                      compliance_admin, shares, amounts):
    with boa.env.anchor():
        token = create_token(
            factory, operator, stablecoin.address, lei=make_lei("FUZZ00000000000000"),
            shares_per_gpu=10**27,
        )
        holders = [boa.env.generate_address(f"h{i}") for i in range(len(shares))]
        register(registry, compliance_admin, *holders)
        with boa.env.prank(admin):
            stablecoin.mint(operator, sum(amounts))
        with boa.env.prank(operator):
            token.add_gpus([gpu(f"F-{i}") for i in range(5)])
            stablecoin.approve(token.address, sum(amounts))
            for holder, amount in zip(holders, shares, strict=True):
                token.mint(holder, amount)
            for amount in amounts:
                token.distribute(amount)
        total = sum(token.claimable(h) for h in holders)
        assert total <= sum(amounts)
        assert sum(amounts) - total <= len(holders)


def _spv_paying_in(deployer, factory, operator, alice, tag):
    """An SPV whose income token is the mock `deployer` builds: one GPU, alice holds one
    share, the operator holds 1,000 approved units of the income token."""
    income = deployer.deploy()
    token = create_token(factory, operator, income.address, lei=make_lei(f"{tag:0<18}"))
    income.mint(operator, 1_000 * USDC)
    with boa.env.prank(operator):
        token.add_gpus([gpu(f"{tag}-1")])
        token.mint(alice, SHARE)
        income.approve(token.address, 1_000 * USDC)
    return income, token


def test_fee_on_transfer_income_token_distributes_only_what_arrived(factory, operator, alice):
    fee_token, token = _spv_paying_in(deployers.FEE_ON_TRANSFER_TOKEN, factory, operator, alice,
                                      "FEE")
    with boa.env.prank(operator):
        token.distribute(1_000 * USDC)
    assert token.total_distributed() == 990 * USDC
    assert token.claimable(alice) == 990 * USDC
    with boa.env.prank(alice):
        token.claim()
    assert fee_token.balanceOf(alice) == 990 * USDC


def test_income_token_without_return_values_works(factory, operator, alice):
    usdt_like, token = _spv_paying_in(deployers.NO_RETURN_TOKEN, factory, operator, alice,
                                      "NORET")
    with boa.env.prank(operator):
        token.distribute(100 * USDC)
    with boa.env.prank(alice):
        assert token.claim() == 100 * USDC
    assert usdt_like.balanceOf(alice) == 100 * USDC


def test_income_token_answering_false_is_refused(factory, operator, alice):
    liar, token = _spv_paying_in(deployers.FALSE_RETURN_TOKEN, factory, operator, alice, "FALSE")
    with boa.env.prank(operator):
        token.distribute(50 * USDC)
    liar.set_failing(True)
    with boa.env.prank(operator), boa.reverts(reasons.TOKEN_INCOME_TOKEN_TRANSFERFROM_FAILED):
        token.distribute(50 * USDC)
    with boa.env.prank(alice), boa.reverts(reasons.TOKEN_INCOME_TOKEN_TRANSFER_FAILED):
        token.claim()
    assert token.claimable(alice) == 50 * USDC and token.total_claimed() == 0
    assert token.total_distributed() == 50 * USDC


def test_claim_cannot_be_reentered(factory, operator, alice, registry, compliance_admin):
    evil, token = _spv_paying_in(deployers.REENTRANT_TOKEN, factory, operator, alice, "REENTER")
    register(registry, compliance_admin, evil.address)
    with boa.env.prank(operator):
        token.mint(evil.address, SHARE)  # so the re-entering claim has income to take
        token.distribute(100 * USDC)
    assert token.claimable(evil.address) == 50 * USDC  # only the lock can stop it
    evil.arm(token.address)
    # The token's transfer calls back into claim() during alice's claim: the lock
    # makes the inner call revert, so the whole claim reverts and nothing is paid.
    with boa.env.prank(alice), boa.reverts():
        token.claim()
    assert token.claimable(alice) == 50 * USDC and token.total_claimed() == 0
    assert evil.balanceOf(alice) == 0
    assert evil.armed()  # the revert rolled back the token's own state too


@pytest.mark.parametrize("amount", [1, 7, 10**6, 10**12])
def test_claimable_matches_exact_share(token, funded, operator, alice, bob, amount):
    _with_holders(token, operator, [(alice, 1_234 * SHARE), (bob, 4_321 * SHARE)])
    with boa.env.prank(operator):
        token.distribute(amount)
    supply = 5_555 * SHARE
    assert token.claimable(alice) == amount * 1_234 * SHARE // supply
    assert token.claimable(bob) == amount * 4_321 * SHARE // supply
