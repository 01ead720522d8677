"""`jurisdictions.engine` for lending pools: a position in a pool is a holding (issue 17).

Each pool operation is decided as the pool asks the chain: transfers between its parties
through `decide` (or the receiver checks alone), in the pool's order. The chain agrees
on random cases in `tests/contracts/test_differential.py`; these tests pin each rule.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jurisdictions.codes import Restriction, message
from jurisdictions.engine import (
    Decision,
    InvestorRecord,
    Party,
    PoolOperation,
    ShareAsset,
    counted_collateral,
    decide,
    decide_borrow,
    decide_claim_income,
    decide_liquidate,
    decide_pool,
    decide_supply,
    decide_withdraw,
    receiver_decision,
)
from tests.jurisdictions.helpers import LEI_A, LEI_B, book, make_rule, override

NOW = 1_700_000_000
FUTURE = NOW + 365 * 86_400

OK = 900  # recognised, allowed
ACCR = 901  # recognised, accredited only
UNCLEAR = 902  # unclear, allowed, override for LEI_A
BLOCKED = 903  # recognised, blocked
SANCT = 904  # sanctioned (blocked)

RULES = book(
    make_rule("XA", OK),
    make_rule("XB", ACCR, holder_policy="accredited_only"),
    make_rule("XC", UNCLEAR, title_recognition="unclear", title_overrides=[override(LEI_A)]),
    make_rule("XD", BLOCKED, holder_policy="blocked",
              citations=[{"reference": "XD Securities Act"}]),
    make_rule("XF", SANCT, holder_policy="blocked", sanctioned=True,
              citations=[{"reference": "XF Sanctions Order"}]),
)
R = Restriction


def party(address: str, *, registered: bool = True, jurisdiction: int = OK,
          accredited: bool = False, expires_at: int = FUTURE, frozen: bool = False,
          balance: int = 100, frozen_tokens: int = 0, is_spv: bool = False) -> Party:
    record = InvestorRecord(jurisdiction=jurisdiction, accredited=accredited,
                            expires_at=expires_at) if registered else None
    return Party(address=address, record=record, wallet_frozen=frozen, balance=balance,
                 frozen_tokens=frozen_tokens, is_spv=is_spv)


ALICE = party("0xA11CE")
BOB = party("0xB0B")
SPV = party("0x5B5", is_spv=True)
POOL = party("0xP001", accredited=True, balance=10_000)


def asset(*locations: int, lei: str | None = LEI_A, paused: bool = False) -> ShareAsset:
    return ShareAsset(spv_lei=lei, locations=frozenset(locations or (OK,)), paused=paused)


def kw(**extra: Any) -> dict[str, Any]:
    return {"rules": RULES, "now": NOW, **extra}


# -- supply_collateral -------------------------------------------------------------------


def test_supply_for_oneself_is_the_transfer_into_the_pool():
    a = asset()
    assert decide_supply(a, ALICE, None, 10, pool=POOL, **kw()).code == R.SUCCESS
    assert decide_supply(a, ALICE, ALICE, 10, pool=POOL, **kw()).code == R.SUCCESS
    assert decide_supply(a, ALICE, None, 101, pool=POOL, **kw()).code == R.INSUFFICIENT_BALANCE
    frozen = ALICE.model_copy(update={"frozen_tokens": 95})
    assert decide_supply(a, frozen, None, 6, pool=POOL, **kw()).code == R.AMOUNT_FROZEN
    # The pool is a holder like any other: its own record decides its receiving.
    expired_pool = party("0xP001", accredited=True, expires_at=NOW)
    assert (decide_supply(a, ALICE, None, 10, pool=expired_pool, **kw()).code
            == R.RECEIVER_ELIGIBILITY_EXPIRED)


def test_supply_for_another_wallet_is_a_transfer_to_it_first():
    a = asset()
    for beneficiary, code in [
        (party("0xB0B", registered=False), R.RECEIVER_NOT_REGISTERED),
        (party("0xB0B", expires_at=NOW), R.RECEIVER_ELIGIBILITY_EXPIRED),
        (party("0xB0B", frozen=True), R.RECEIVER_FROZEN),
        (party("0xB0B", jurisdiction=BLOCKED), R.RECEIVER_JURISDICTION_BLOCKED),
        (party("0xB0B", jurisdiction=ACCR), R.RECEIVER_NOT_ACCREDITED),
        (party("0xB0B", jurisdiction=ACCR, accredited=True), R.SUCCESS),
    ]:
        got = decide_supply(a, ALICE, beneficiary, 10, pool=POOL, **kw())
        assert got.code == code, beneficiary
        assert got.code == decide(a, ALICE, beneficiary, 10, **kw()).code
    refused = decide_supply(a, ALICE, party("0xB0B", jurisdiction=BLOCKED), 10, pool=POOL, **kw())
    assert refused.message.startswith(message(R.RECEIVER_JURISDICTION_BLOCKED))
    assert "supply_collateral for 0xB0B" in refused.message
    assert refused.citations == ("XD Securities Act",) and refused.jurisdictions == ("XD",)


def test_supply_for_the_spv_under_an_unrecognised_title_stops_at_the_pool():
    """Shares may go back to the SPV (redemption), but supplying puts them in the pool."""
    a = asset(OK, UNCLEAR, lei=LEI_B)  # no override for LEI_B
    assert decide(a, ALICE, SPV, 10, **kw()).code == R.SUCCESS
    got = decide_supply(a, ALICE, SPV, 10, pool=POOL, **kw())
    assert got.code == R.ASSET_TITLE_NOT_RECOGNISED
    assert "into the pool 0xP001" in got.message


# -- withdraw_collateral -----------------------------------------------------------------


def test_withdrawal_to_oneself_moves_nothing_between_holders():
    a = asset()
    partly_frozen = ALICE.model_copy(update={"frozen_tokens": 10**6})
    assert decide_withdraw(a, partly_frozen, None, 50, pooled=50, pool=POOL,
                           **kw()).code == R.SUCCESS
    for caller, code in [
        (party("0xA11CE", frozen=True), R.SENDER_FROZEN),
        (party("0xA11CE", expires_at=NOW), R.SENDER_ELIGIBILITY_EXPIRED),
        (party("0xA11CE", jurisdiction=BLOCKED), R.RECEIVER_JURISDICTION_BLOCKED),
    ]:
        assert decide_withdraw(a, caller, caller, 50, pooled=50, pool=POOL,
                               **kw()).code == code
    assert decide_withdraw(asset(paused=True), ALICE, None, 5, pooled=50, pool=POOL,
                           **kw()).code == R.TOKEN_PAUSED


def test_withdrawal_to_another_wallet_counts_wallet_and_position_together():
    a = asset()
    # wallet 100 + pooled 50 = holding 150.
    assert decide_withdraw(a, ALICE, BOB, 50, pooled=50, pool=POOL, **kw()).code == R.SUCCESS
    assert decide_withdraw(a, ALICE, BOB, 151, pooled=50, pool=POOL,
                           **kw()).code == R.INSUFFICIENT_BALANCE
    # A partial freeze covers pooled shares: 120 frozen of 150 leaves 30.
    frozen = ALICE.model_copy(update={"frozen_tokens": 120})
    assert decide_withdraw(a, frozen, BOB, 30, pooled=50, pool=POOL, **kw()).code == R.SUCCESS
    assert decide_withdraw(a, frozen, BOB, 31, pooled=50, pool=POOL,
                           **kw()).code == R.AMOUNT_FROZEN
    # A freeze of the wallet alone leaves the position free to go.
    wallet_only = ALICE.model_copy(update={"frozen_tokens": 100})
    assert decide_withdraw(a, wallet_only, BOB, 50, pooled=50, pool=POOL,
                           **kw()).code == R.SUCCESS
    got = decide_withdraw(a, ALICE, party("0xB0B", frozen=True), 5, pooled=50, pool=POOL, **kw())
    assert got.code == R.RECEIVER_FROZEN
    assert "the holding counted as wallet 100 + pooled 50" in got.message


def test_the_pool_sends_the_withdrawal_from_its_own_wallet():
    a = asset()
    frozen_pool = party("0xP001", accredited=True, frozen=True, balance=10_000)
    got = decide_withdraw(a, ALICE, BOB, 50, pooled=50, pool=frozen_pool, **kw())
    assert got.code == R.SENDER_FROZEN and "from the pool 0xP001" in got.message
    # Beyond the position the pool refuses with its own message before sending anything:
    # only the holder's side is decided.
    assert decide_withdraw(a, ALICE, BOB, 60, pooled=50, pool=frozen_pool,
                           **kw()).code == R.SUCCESS
    assert decide_withdraw(a, ALICE, BOB, 151, pooled=50, pool=frozen_pool,
                           **kw()).code == R.INSUFFICIENT_BALANCE


def test_withdrawal_to_the_spv_is_a_redemption():
    a = asset(UNCLEAR, lei=LEI_B)
    assert decide_withdraw(a, ALICE, BOB, 5, pooled=50, pool=POOL,
                           **kw()).code == R.ASSET_TITLE_NOT_RECOGNISED
    assert decide_withdraw(a, ALICE, SPV, 5, pooled=50, pool=POOL, **kw()).code == R.SUCCESS
    assert decide_withdraw(a, ALICE, None, 5, pooled=50, pool=POOL,
                           **kw()).code == R.ASSET_TITLE_NOT_RECOGNISED
    assert decide_withdraw(a, SPV, None, 5, pooled=50, pool=POOL, **kw()).code == R.SUCCESS


# -- claim_income, borrow ----------------------------------------------------------------


@pytest.mark.parametrize("decider", [decide_claim_income, decide_borrow])
def test_claim_and_borrow_need_a_holder_the_rules_let_hold(decider):
    for caller in [ALICE, party("x", registered=False), party("x", expires_at=NOW),
                   party("x", frozen=True), party("x", jurisdiction=BLOCKED),
                   party("x", jurisdiction=ACCR), party("x", jurisdiction=999)]:
        got = decider(caller, **kw())
        assert got.code == receiver_decision(caller, rules=RULES, now=NOW).code
    assert decider(party("x", jurisdiction=ACCR), **kw()).code == R.RECEIVER_NOT_ACCREDITED
    got = decider(party("x", jurisdiction=SANCT), **kw())
    assert got.code == R.RECEIVER_JURISDICTION_BLOCKED
    assert got.citations == ("XF Sanctions Order",)


@pytest.mark.parametrize(("balance", "pooled", "frozen", "counted"), [
    (0, 100, 0, 100),
    (100, 100, 100, 100),  # the freeze is covered by the wallet
    (100, 100, 150, 50),
    (100, 100, 200, 0),
    (100, 100, 10**9, 0),
    (0, 100, 30, 70),
    (500, 0, 10, 0),
])
def test_frozen_shares_back_no_loan(balance, pooled, frozen, counted):
    holder = party("0xA11CE", balance=balance, frozen_tokens=frozen)
    assert counted_collateral(holder, pooled) == counted


@given(balance=st.integers(0, 10**30), pooled=st.integers(0, 10**30),
       frozen=st.integers(0, 10**31))
def test_counted_collateral_is_the_unfrozen_part_of_the_position(balance, pooled, frozen):
    holder = party("0xA11CE", balance=balance, frozen_tokens=frozen)
    counted = counted_collateral(holder, pooled)
    assert 0 <= counted <= pooled
    # What stays frozen fits in what is left: the wallet plus the uncounted collateral.
    assert min(frozen, balance + pooled) <= balance + pooled - counted
    assert counted_collateral(holder.model_copy(update={"frozen_tokens": 0}), pooled) == pooled


# -- liquidate ---------------------------------------------------------------------------


def test_liquidation_is_a_transfer_from_the_pool_to_the_liquidator():
    a = asset()
    assert decide_liquidate(a, BOB, pool=POOL, **kw()).code == R.SUCCESS
    assert decide_liquidate(a, party("0xB0B", registered=False), pool=POOL,
                            **kw()).code == R.RECEIVER_NOT_REGISTERED
    # The liquidator's own freeze of shares plays no part: it receives.
    assert decide_liquidate(a, BOB.model_copy(update={"frozen_tokens": 10**9}), pool=POOL,
                            **kw()).code == R.SUCCESS
    expired_pool = party("0xP001", accredited=True, expires_at=NOW - 1, balance=10_000)
    assert decide_liquidate(a, BOB, pool=expired_pool,
                            **kw()).code == R.SENDER_ELIGIBILITY_EXPIRED
    assert decide_liquidate(asset(paused=True), BOB, pool=POOL, **kw()).code == R.TOKEN_PAUSED
    unclear = asset(UNCLEAR, lei=LEI_B)
    assert decide_liquidate(unclear, BOB, pool=POOL,
                            **kw()).code == R.ASSET_TITLE_NOT_RECOGNISED
    assert decide_liquidate(unclear, SPV, pool=POOL, **kw()).code == R.SUCCESS
    # The seizure itself: the pool's wallet must hold it.
    assert decide_liquidate(a, BOB, pool=POOL, seized=10_001,
                            **kw()).code == R.INSUFFICIENT_BALANCE


# -- sanctions, dispatch -----------------------------------------------------------------


def test_no_legal_opinion_lifts_a_sanctioned_location():
    """Sanctioned GPUs: no pool operation moves the shares (except back to the SPV)."""
    a = ShareAsset(spv_lei=LEI_A, locations=frozenset({SANCT}),
                   overridden_locations=frozenset({SANCT}))
    for got in [
        decide_supply(a, ALICE, None, 5, pool=POOL, **kw()),
        decide_supply(a, ALICE, BOB, 5, pool=POOL, **kw()),
        decide_withdraw(a, ALICE, None, 5, pooled=50, pool=POOL, **kw()),
        decide_withdraw(a, ALICE, BOB, 5, pooled=50, pool=POOL, **kw()),
        decide_liquidate(a, BOB, pool=POOL, **kw()),
    ]:
        assert got.code == R.ASSET_TITLE_NOT_RECOGNISED
        assert got.jurisdictions == ("XF",)
    assert decide_withdraw(a, ALICE, SPV, 5, pooled=50, pool=POOL, **kw()).code == R.SUCCESS


def test_decide_pool_dispatches_to_each_operation():
    a = asset()
    bob = party("0xB0B", jurisdiction=ACCR)
    cases: list[tuple[Decision, Decision]] = [
        (decide_pool(a, PoolOperation.SUPPLY_COLLATERAL, ALICE, bob, 5, pool=POOL, **kw()),
         decide_supply(a, ALICE, bob, 5, pool=POOL, **kw())),
        (decide_pool(a, PoolOperation.WITHDRAW_COLLATERAL, ALICE, bob, 5, pool=POOL, pooled=9,
                     **kw()),
         decide_withdraw(a, ALICE, bob, 5, pooled=9, pool=POOL, **kw())),
        (decide_pool(a, PoolOperation.CLAIM_INCOME, bob, pool=POOL, **kw()),
         decide_claim_income(bob, **kw())),
        (decide_pool(a, PoolOperation.BORROW, bob, bob, pool=POOL, **kw()),
         decide_borrow(bob, **kw())),
        (decide_pool(a, PoolOperation.LIQUIDATE, bob, None, 7, pool=POOL, **kw()),
         decide_liquidate(a, bob, pool=POOL, seized=7, **kw())),
    ]
    for got, want in cases:
        assert got == want
    assert [got.code for got, _ in cases] == [R.RECEIVER_NOT_ACCREDITED] * 5


def test_refused_inputs():
    a = asset()
    with pytest.raises(ValueError, match="amount must be >= 1"):
        decide_supply(a, ALICE, None, 0, pool=POOL, **kw())
    with pytest.raises(ValueError, match="amount must be >= 1"):
        decide_withdraw(a, ALICE, BOB, 0, pooled=5, pool=POOL, **kw())
    with pytest.raises(ValueError, match="pooled must be >= 0"):
        decide_withdraw(a, ALICE, BOB, 1, pooled=-1, pool=POOL, **kw())
    with pytest.raises(ValueError, match="seized must be >= 0"):
        decide_liquidate(a, BOB, pool=POOL, seized=-1, **kw())
    with pytest.raises(ValueError, match="pass no counterparty"):
        decide_pool(a, PoolOperation.CLAIM_INCOME, ALICE, BOB, pool=POOL, **kw())
    with pytest.raises(ValueError, match="borrower is no party"):
        decide_pool(a, PoolOperation.LIQUIDATE, ALICE, BOB, pool=POOL, **kw())
