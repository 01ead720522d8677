"""Differential test of the subscription vault's compliance (issue 20): the Python engine
(`jurisdictions.engine.decide_vault`) against the chain, for every vault operation that
moves shares or pays stablecoin.

The world (a vault world from `tests/contracts/vault_helpers.py`) is set up once per
module with positions in every state: claimable shares (Alice, Carol), shares escrowed for
redemption past their cancel lock (Alice), fulfilled redemption proceeds (Bob), wallet
shares (Alice, Bob) and stablecoin to subscribe with (everyone), and no rental income
left uncollected by the vault. Each example then draws the rules (the movement
differential's strategy: random titles, policies, sanctions, overrides and Ukraine's
regional rows), every investor's record (residence, region, accreditation, expiry,
wallet freeze), the token's pause, one operation and its parties, asks the engine, and
performs the operation: it succeeds exactly when the engine's code is 0, else reverts with
exactly the code's message.
"""

from __future__ import annotations

from collections import Counter

import boa
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from jurisdictions.codes import Restriction, message
from jurisdictions.engine import (
    InvestorRecord,
    Party,
    ShareAsset,
    VaultOperation,
    decide_vault,
)
from jurisdictions.rules import RuleBook, encode_subdivision
from tests.budgets import budget, examples
from tests.contracts.helpers import FAR_FUTURE, FREEZER_ROLE, US, write_rules_table
from tests.contracts.test_differential import UA_CRIMEA, Holder, holders, rule_sets
from tests.contracts.vault_helpers import (
    CANCEL_AFTER,
    NAV_15,
    NOTICE,
    SHARE,
    USDC,
    vault_world,
)

N_EXAMPLES = examples("differential_vault")
ALICE, BOB, CAROL = range(3)
STEP = 3


class VaultDifferential:
    """The module's world and the model of the records it overwrites."""

    def __init__(self, w) -> None:
        self.w = w
        self.people = [w.investor(n) for n in ("vd-alice", "vd-bob", "vd-carol")]
        alice, bob, carol = self.people
        vault, token = w.vault, w.token
        for who in self.people:
            w.fund(who, 10_000 * USDC)
        w.fund(w.operator, 10_000 * USDC)
        w.publish_nav(NAV_15)
        boa.env.time_travel(seconds=60)
        for who in self.people:
            with boa.env.prank(who):
                vault.requestDeposit(1_500 * USDC, who, who)
        boa.env.time_travel(seconds=60)
        w.publish_nav(NAV_15)
        with boa.env.prank(w.operator):
            for who in self.people:
                vault.fulfil_deposit(who, 1_500 * USDC)
        with boa.env.prank(alice):
            vault.mint(60 * SHARE, alice)
        with boa.env.prank(bob):
            vault.mint(100 * SHARE, bob)
            vault.requestRedeem(50 * SHARE, bob, bob)
        with boa.env.prank(alice):
            vault.requestRedeem(30 * SHARE, alice, alice)
        # Income on the held shares, collected by the vault (so no example's claim has
        # the token pay the vault: the vault's own residence is not under test here).
        with boa.env.prank(w.operator):
            w.stable.approve(token.address, 2**256 - 1)
            token.distribute(1_000 * USDC)
        with boa.env.prank(carol):
            vault.claim_income(carol)
        assert token.claimable(vault.address) == 0
        boa.env.time_travel(seconds=NOTICE)
        w.publish_nav(16 * 10**8)
        with boa.env.prank(w.operator):
            w.stable.approve(vault.address, 2**256 - 1)
            vault.fund_redemptions(1_000 * USDC)
            vault.fulfil_redeem(bob, 50 * SHARE)
            token.grantRole(FREEZER_ROLE, w.operator)
        boa.env.time_travel(seconds=CANCEL_AFTER)  # Alice's redemption may be cancelled
        assert vault.maxMint(alice) == 40 * SHARE and vault.maxMint(carol) == 100 * SHARE
        assert vault.pendingRedeemRequest(0, alice) == 30 * SHARE
        assert vault.maxRedeem(bob) == 50 * SHARE
        self.vault_party_record = InvestorRecord(jurisdiction=US, accredited=True,
                                                 expires_at=FAR_FUTURE)

    def write(self, rules: RuleBook, records: tuple[Holder, ...], paused: bool) -> int:
        w = self.w
        write_rules_table(w.registry, w.compliance_admin, rules)
        now = boa.env.timestamp + STEP
        with boa.env.prank(w.compliance_admin):
            for who, holder in zip(self.people, records, strict=True):
                record = holder.record(now)
                if record is None:
                    w.registry.remove_investor(who)
                else:
                    w.registry.set_investor(
                        who, record.jurisdiction, record.accredited, record.expires_at,
                        encode_subdivision(record.subdivision) if record.subdivision else 0)
                if holder.wallet_frozen:
                    w.registry.set_wallet_frozen(who, True)
        if paused:
            with boa.env.prank(w.operator):
                w.token.pause()
        boa.env.time_travel(seconds=STEP)
        return now

    def party(self, index: int, holder: Holder, now: int) -> Party:
        who = self.people[index]
        return Party(address=who, record=holder.record(now), wallet_frozen=holder.wallet_frozen,
                     balance=self.w.token.balanceOf(who),
                     frozen_tokens=self.w.token.getFrozenTokens(who))

    def vault_party(self) -> Party:
        vault = self.w.vault.address
        return Party(address=vault, record=self.vault_party_record,
                     balance=self.w.token.balanceOf(vault), is_spv=True)


OPERATIONS = {
    # operation -> (controller or owner, amount) choices that are valid for the vault's
    # own accounting, so that only compliance can refuse.
    VaultOperation.REQUEST_DEPOSIT: [ALICE, BOB, CAROL],
    VaultOperation.CLAIM_SHARES: [ALICE, CAROL],
    VaultOperation.REQUEST_REDEEM: [BOB],  # Alice's redemption is pending: no top-up
    VaultOperation.CANCEL_REDEEM: [ALICE],
    VaultOperation.CLAIM_ASSETS: [BOB],
}


@st.composite
def cases(draw):
    op = draw(st.sampled_from(list(OPERATIONS)))
    party = draw(st.sampled_from(OPERATIONS[op]))
    receiver = draw(st.sampled_from([party, party, ALICE, BOB, CAROL]))
    return (draw(rule_sets()), draw(st.tuples(holders, holders, holders)),
            draw(st.sampled_from([False] * 11 + [True])), op, party, receiver)


def run(d: VaultDifferential, rules_tuple, records, paused, op, party_index, receiver_index
        ) -> Restriction:
    rules = RuleBook(list(rules_tuple))
    now = d.write(rules, records, paused)
    w, vault = d.w, d.w.vault
    party = d.party(party_index, records[party_index], now)
    receiver = d.party(receiver_index, records[receiver_index], now)
    asset = ShareAsset(locations=frozenset({US}), paused=paused,
                       overridden_locations=frozenset())
    shares = {VaultOperation.CLAIM_SHARES: SHARE, VaultOperation.REQUEST_REDEEM: SHARE,
              VaultOperation.CANCEL_REDEEM: 30 * SHARE}.get(op, 0)
    decision = decide_vault(asset, op, vault=d.vault_party(), party=party, receiver=receiver,
                            shares=shares, rules=rules, now=now)
    who, to = d.people[party_index], d.people[receiver_index]
    calls = {
        VaultOperation.REQUEST_DEPOSIT: lambda: vault.requestDeposit(USDC, who, who),
        VaultOperation.CLAIM_SHARES: lambda: vault.mint(SHARE, to, who),
        VaultOperation.REQUEST_REDEEM: lambda: vault.requestRedeem(SHARE, who, who),
        VaultOperation.CANCEL_REDEEM: lambda: vault.cancelRedeemRequest(to, who),
        VaultOperation.CLAIM_ASSETS: lambda: vault.redeem(SHARE, to, who),
    }
    report = (f"engine={decision.code!r} op={op} party={party!r} receiver={receiver!r} "
              f"paused={paused}\n  rules: {[r.alpha2 for r in rules.values()]}")
    before = (w.token.balanceOf(to), w.stable.balanceOf(to), w.token.balanceOf(vault.address))
    with boa.env.prank(who):
        if decision.code is Restriction.SUCCESS:
            calls[op]()
            after = (w.token.balanceOf(to), w.stable.balanceOf(to),
                     w.token.balanceOf(vault.address))
            assert after != before or op is VaultOperation.REQUEST_DEPOSIT, report
        else:
            with boa.reverts(message(decision.code)):
                calls[op]()
    return decision.code


@pytest.fixture(scope="module")
def differential(registry, factory, stablecoin, admin, operator, oracle_admin,
                 compliance_admin):
    w = vault_world(registry, factory, stablecoin, admin, operator, oracle_admin,
                    compliance_admin, label="VDIFF")
    return VaultDifferential(w)


def test_vault_engine_matches_chain_on_random_cases(differential):
    """Random rules, records, pause and one vault operation: the engine's code decides
    whether the vault's call succeeds, and a refusal reverts with the code's message."""
    seen: Counter[Restriction] = Counter()

    @settings(budget("differential_vault"))
    @given(cases())
    def check(case) -> None:
        with boa.env.anchor():
            code = run(differential, *case)
        seen[code] += 1
        event(f"code {int(code):2d} {code.name}")
        event(f"operation {case[3]}")

    check()
    assert sum(seen.values()) >= N_EXAMPLES
    assert Restriction.SUCCESS in seen and len(seen) >= 5, seen


R = Restriction
GUARD = [
    # (rules as the base table, record changes, paused, operation, party, receiver)
    ({}, VaultOperation.REQUEST_DEPOSIT, ALICE, ALICE, R.SUCCESS),
    ({ALICE: Holder(jurisdiction=408)}, VaultOperation.REQUEST_DEPOSIT, ALICE, ALICE,
     R.RECEIVER_JURISDICTION_BLOCKED),
    ({ALICE: Holder(jurisdiction=804, accredited=True)}, VaultOperation.REQUEST_DEPOSIT,
     ALICE, ALICE, R.RECEIVER_REGION_UNKNOWN),
    ({ALICE: Holder(jurisdiction=804, accredited=True, region="43")},
     VaultOperation.REQUEST_DEPOSIT, ALICE, ALICE, R.RECEIVER_JURISDICTION_BLOCKED),
    ({ALICE: Holder(jurisdiction=804, accredited=True, region="30")},
     VaultOperation.REQUEST_DEPOSIT, ALICE, ALICE, R.SUCCESS),
    # A frozen controller cannot direct its claim to another wallet (no freeze bypass).
    ({CAROL: Holder(wallet_frozen=True)}, VaultOperation.CLAIM_SHARES, CAROL, CAROL,
     R.SENDER_FROZEN),
    ({CAROL: Holder(wallet_frozen=True)}, VaultOperation.CLAIM_SHARES, CAROL, ALICE,
     R.SENDER_FROZEN),
    ({ALICE: Holder(wallet_frozen=True)}, VaultOperation.CANCEL_REDEEM, ALICE, BOB,
     R.SENDER_FROZEN),
    ({BOB: Holder(jurisdiction=None)}, VaultOperation.CLAIM_SHARES, CAROL, BOB,
     R.RECEIVER_NOT_REGISTERED),
    ({}, VaultOperation.CLAIM_SHARES, CAROL, CAROL, R.SUCCESS),
    ({BOB: Holder(wallet_frozen=True)}, VaultOperation.REQUEST_REDEEM, BOB, BOB,
     R.SENDER_FROZEN),
    ({BOB: Holder(expiry=0)}, VaultOperation.REQUEST_REDEEM, BOB, BOB,
     R.SENDER_ELIGIBILITY_EXPIRED),
    ({}, VaultOperation.REQUEST_REDEEM, BOB, BOB, R.SUCCESS),
    ({CAROL: Holder(jurisdiction=408)}, VaultOperation.CANCEL_REDEEM, ALICE, CAROL,
     R.RECEIVER_JURISDICTION_BLOCKED),
    ({}, VaultOperation.CANCEL_REDEEM, ALICE, ALICE, R.SUCCESS),
    ({BOB: Holder(wallet_frozen=True)}, VaultOperation.CLAIM_ASSETS, BOB, BOB,
     R.RECEIVER_FROZEN),
    ({CAROL: Holder(jurisdiction=804, accredited=True, region="43")},
     VaultOperation.CLAIM_ASSETS, BOB, CAROL, R.RECEIVER_JURISDICTION_BLOCKED),
    ({BOB: Holder(expiry=0)}, VaultOperation.CLAIM_ASSETS, BOB, BOB, R.SUCCESS),  # earned
]


def test_fixed_vault_scenarios(differential):
    """Coverage guard: the rules of the issue, by name, through the same comparison."""
    got = []
    for changes, op, party, receiver, _ in GUARD:
        records = tuple(changes.get(i, Holder(US, accredited=True)) for i in range(3))
        with boa.env.anchor():
            got.append(run(differential, UA_CRIMEA, records, False, op, party, receiver))
    assert got == [expected for *_, expected in GUARD]
