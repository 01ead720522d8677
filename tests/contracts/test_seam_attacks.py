"""Adversarial review of issue 17 ("compliance at every seam"): new attack paths through
the share token, the lending pool and the compliance registry that the regression
tests in test_compliance_seams.py do not cover.

Every test asserts the SAFE behaviour: a failing test is a finding. The tests marked
FINDING failed on c0a74f5; the others are attacks that the code refuses (kept as
regression tests).
"""

from __future__ import annotations

import boa
import pytest
from eth_utils import keccak

from gpushares import reasons
from jurisdictions.codes import Restriction, message
from tests.contracts import deployers
from tests.contracts.helpers import (
    FAR_FUTURE,
    FORCED_TRANSFER_ROLE,
    FREEZER_ROLE,
    KP,
    RECOVERY_ROLE,
    SHARE,
    US,
)
from tests.contracts.pool_helpers import (
    ABOVE_MAX_LTV_BORROW,
    MAX_UINT,
    WAD,
    World,
    build_world,
)

SANCTIONED = 4  # jurisdictions.codes.TitleStatus.SANCTIONED
ALLOWED, BLOCKED = 1, 3
AMOUNT_FROZEN = message(Restriction.AMOUNT_FROZEN)
BLOCKED_MESSAGE = message(Restriction.RECEIVER_JURISDICTION_BLOCKED)


# ---------------------------------------------------------------------------------
# World and helpers
# ---------------------------------------------------------------------------------


@pytest.fixture
def world() -> World:
    w = build_world(label="atk")
    w.fund(w.lenders[0], 200_000 * w.unit)
    with boa.env.prank(w.lenders[0]):
        w.pool.deposit(200_000 * w.unit, w.lenders[0])
    return w




def _wallet(w: World, label: str, jurisdiction: int = US) -> str:
    account = boa.env.generate_address(label)
    w.register(account, jurisdiction=jurisdiction)
    return account






def _refused(sender: str, call, *args) -> bool:
    """Whether `call(*args)` sent by `sender` reverts (state stays changed when it does
    not, so the assertions after it show the damage)."""
    try:
        with boa.env.prank(sender):
            call(*args)
    except boa.BoaError:
        return True
    return False


def _second_pool(w: World):
    """Another market on the same share token (another custodian)."""
    with boa.env.prank(w.admin):
        address = w.factory.create_market(
            w.asset.address, w.token.address, w.feed.address, w.model.address,
            75 * WAD // 100, 60 * WAD // 100, 1_000, w.treasury, "GPU Pool B", "gpB",
        )
    pool = deployers.LENDING_POOL.at(address)
    with boa.env.prank(w.kyc):
        w.registry.set_investor(pool.address, US, True, FAR_FUTURE)
        w.registry.set_custodian(pool.address, True)
    return pool


def _books_balance(w: World, pool=None) -> None:
    pool = pool or w.pool
    assert w.token.balanceOf(pool.address) == pool.total_collateral()


# =================================================================================
# FINDINGS (these fail on c0a74f5)
# =================================================================================


def test_finding_forced_transfer_of_wallet_shares_unfreezes_pooled_shares(world):
    """FINDING. A holder with 400 shares in the wallet and 600 in the pool is frozen for
    all 1,000. A court seizes the 400 wallet shares with `forcedTransfer`: the token
    clamps the freeze to `balance - amount` of the WALLET (0), ignoring the 600 pooled
    shares, so the holder withdraws them to an accomplice."""
    w, holder, court = world, world.borrowers[0], world.liquidator
    accomplice = _wallet(w, "atk-accomplice")
    w.give_shares(holder, 400 * SHARE)
    w.supply(holder, 600 * SHARE)
    agent = w.agent(FREEZER_ROLE, FORCED_TRANSFER_ROLE)
    with boa.env.prank(agent):
        w.token.setFrozenTokens(holder, 1_000 * SHARE)
        w.token.forcedTransfer(holder, court, 400 * SHARE)
    escaped = not _refused(holder, lambda: w.pool.withdraw_collateral(600 * SHARE, accomplice))
    assert not escaped, (
        f"frozen pooled shares escaped: accomplice holds {w.token.balanceOf(accomplice)}, "
        f"holder's frozen amount now {w.token.getFrozenTokens(holder)}")
    assert w.token.getFrozenTokens(holder) >= 600 * SHARE


def test_finding_recover_position_drops_a_partial_freeze_on_pooled_shares(world):
    """FINDING. All of a holder's shares are pooled and frozen. The recovery agent moves
    the position to the new wallet; `recover_wallet` cannot follow (the lost wallet holds
    nothing in the token), so the freeze stays on the lost wallet and the new wallet (the
    same holder) withdraws the formerly frozen shares to anyone. A RECOVERY_ROLE agent
    without FREEZER_ROLE thus lifts a freeze."""
    w, lost = world, world.borrowers[0]
    new = _wallet(w, "atk-new")
    accomplice = _wallet(w, "atk-accomplice")
    w.supply(lost, 600 * SHARE)
    agent = w.agent(FREEZER_ROLE, RECOVERY_ROLE)
    with boa.env.prank(agent):
        w.token.setFrozenTokens(lost, 600 * SHARE)
    with boa.env.prank(w.kyc):
        w.registry.set_wallet_frozen(lost, True)  # recovery starts by stopping the lost key
    with boa.env.prank(agent):
        # Fixed: the position cannot leave the freeze behind ...
        with boa.reverts(reasons.POOL_RECOVER_WALLET_FIRST):
            w.pool.recover_position(lost, new)
        # ... the wallet recovery moves it (a freeze alone is something to recover).
        w.token.recover_wallet(lost, new)
        w.pool.recover_position(lost, new)
    assert w.token.getFrozenTokens(new) == 600 * SHARE
    escaped = not _refused(new, lambda: w.pool.withdraw_collateral(600 * SHARE, accomplice))
    assert not escaped, (
        f"frozen pooled shares escaped after recovery: accomplice holds "
        f"{w.token.balanceOf(accomplice)}; frozen on new {w.token.getFrozenTokens(new)}, "
        f"on lost {w.token.getFrozenTokens(lost)}")


def test_finding_recover_wallet_first_unfreezes_the_lost_wallets_pooled_shares(world):
    """FINDING. The documented order is `recover_wallet` then `recover_position`. The
    first moves the WHOLE frozen amount to the new wallet, so between the two calls the
    lost wallet's pooled shares are unfrozen; a "lost" key that is not lost (or a
    front-runner holding it) withdraws them to an accomplice."""
    w, lost = world, world.borrowers[0]
    new = _wallet(w, "atk-new")
    accomplice = _wallet(w, "atk-accomplice")
    w.give_shares(lost, 100 * SHARE)
    w.supply(lost, 600 * SHARE)
    agent = w.agent(FREEZER_ROLE, RECOVERY_ROLE)
    with boa.env.prank(agent):
        w.token.setFrozenTokens(lost, 700 * SHARE)
        # Fixed: no recovery while the lost key can still act ...
        with boa.reverts(reasons.TOKEN_RECOVERY_LOST_WALLET_ACTIVE):
            w.token.recover_wallet(lost, new)
    with boa.env.prank(w.kyc):
        w.registry.set_wallet_frozen(lost, True)  # ... and once it cannot, it cannot
    with boa.env.prank(agent):
        w.token.recover_wallet(lost, new)
    escaped = not _refused(lost, lambda: w.pool.withdraw_collateral(600 * SHARE, accomplice))
    assert not escaped, (
        f"the lost wallet moved its frozen pooled shares: accomplice holds "
        f"{w.token.balanceOf(accomplice)}; frozen on lost {w.token.getFrozenTokens(lost)}")


def test_finding_frozen_shares_end_up_backing_a_loan(world):
    """FINDING. 1,000 pooled, 700 frozen: `borrow` correctly counts only the 300 free
    shares (up to 3,150 at 15 USD, 70 %). But `withdraw_collateral` checks the LTV
    against ALL remaining collateral, frozen included, so the holder then withdraws the
    300 free shares to an accomplice: it walks away with the loan AND the free shares,
    and the loan is now backed only by frozen shares (3,000 of their value escaped)."""
    w, holder = world, world.borrowers[0]
    accomplice = _wallet(w, "atk-accomplice")
    w.supply(holder, 1_000 * SHARE)
    agent = w.agent(FREEZER_ROLE)
    with boa.env.prank(agent):
        w.token.setFrozenTokens(holder, 700 * SHARE)
    with boa.env.prank(holder):
        w.pool.borrow(3_000 * w.unit, holder)
    escaped = not _refused(holder, lambda: w.pool.withdraw_collateral(300 * SHARE, accomplice))
    assert not escaped, (
        f"holder kept a {w.debt_of(holder)} loan and moved its free shares out; "
        f"position now {w.pool.position(holder)[0]} shares, all frozen")


@pytest.mark.parametrize("receiver", ["this_pool", "another_pool"])
def test_finding_forced_withdraw_into_a_custodian_orphans_the_shares(world, receiver):
    """FINDING. `forced_withdraw` lets the receiver be a custodian: the pool itself (a
    self-transfer: the position shrinks, the shares stay in the pool owned by nobody) or
    another pool (the shares land there with no position). `forcedTransfer` refuses a
    custodian receiver; the pool path does not."""
    w, target, bystander = world, world.borrowers[0], world.borrowers[1]
    w.supply(target, 500 * SHARE)
    w.supply(bystander, 500 * SHARE)
    other = w.pool if receiver == "this_pool" else _second_pool(w)
    agent = w.agent(FORCED_TRANSFER_ROLE)
    refused = _refused(agent, lambda: w.pool.forced_withdraw(target, other.address, 500 * SHARE))
    assert refused, (
        f"seized shares went to a custodian: pool balance {w.token.balanceOf(w.pool.address)}, "
        f"pool books {w.pool.total_collateral()}, other custodian balance "
        f"{w.token.balanceOf(other.address)} / books {other.total_collateral()}")
    _books_balance(w)


def test_finding_recover_position_into_a_custodian(world):
    """FINDING. `recover_position` accepts a custodian (the pool itself) as the new wallet:
    the position is then owned by a contract that can never act on it (collateral and
    income stuck, debt only repayable by third parties). `recover_wallet` refuses a
    custodian; the pool path does not."""
    w, lost = world, world.borrowers[0]
    w.supply(lost, 500 * SHARE)
    agent = w.agent(RECOVERY_ROLE)
    refused = _refused(agent, lambda: w.pool.recover_position(lost, w.pool.address))
    assert refused, f"the pool now owns a position of {w.pool.position(w.pool.address)[0]} shares"


def test_finding_registry_wallet_freeze_of_the_pool_bricks_every_position(world):
    """FINDING (documented in docs/lending.md as "never do this", but the rule says agent
    powers refuse a custodian's wallet). The registry's FREEZER_ROLE freezes the pool's
    wallet: every holder's withdrawals, income claims and every liquidation stop."""
    w, bystander = world, world.borrowers[1]
    w.supply(bystander, 500 * SHARE)
    w.distribute(8_000 * w.unit)
    refused = _refused(w.kyc, lambda: w.registry.set_wallet_frozen(w.pool.address, True))
    if not refused:
        blocked_withdraw = _refused(
            bystander, lambda: w.pool.withdraw_collateral(500 * SHARE, bystander))
        blocked_claim = _refused(bystander, lambda: w.pool.claim_income())
        pytest.fail(f"registry froze the pool's wallet: bystander withdrawal refused="
                    f"{blocked_withdraw}, income claim refused={blocked_claim}")


def test_finding_token_income_reaches_a_blocked_jurisdiction_resident(world):
    """FINDING (consistency). A holder whose KYC provider records a move to North Korea
    can no longer take pooled-share income (`claim_income` refuses with the blocked-
    residence message), but takes the income of its wallet shares with `token.claim()`:
    the token only refuses registry-frozen wallets."""
    w, holder = world, world.borrowers[0]
    w.give_shares(holder, 1_000 * SHARE)
    w.distribute(8_000 * w.unit)
    w.register(holder, jurisdiction=KP)
    before = w.asset.balanceOf(holder)
    refused = _refused(holder, lambda: w.token.claim())
    assert refused, f"a North Korean resident claimed {w.asset.balanceOf(holder) - before}"


def test_finding_pool_pays_income_while_the_token_is_paused(world):
    """FINDING (low). The token's pause "stops ... income claims", but the pool pays
    `claim_income` from income it already pulled: once any borrower has claimed, the
    others keep claiming through the pause."""
    w, a, b = world, world.borrowers[0], world.borrowers[1]
    w.supply(a, 1_000 * SHARE)
    w.supply(b, 1_000 * SHARE)
    w.distribute(8_000 * w.unit)
    with boa.env.prank(a):
        w.pool.claim_income()  # the pool pulls both borrowers' income
    with boa.env.prank(w.operator):
        w.token.pause()
    with boa.env.prank(a), boa.reverts():
        w.token.claim()  # direct claims stop
    refused = _refused(b, lambda: w.pool.claim_income())
    assert refused, "pool income was paid while the token was paused"


def test_finding_a_sanctioned_row_can_still_let_residents_hold(world):
    """FINDING (low, defence in depth). "Sanctioned means never" is enforced on-chain for
    title overrides only: the registry accepts a row (SANCTIONED, ALLOWED), after which a
    resident of the sanctioned country can receive shares. The Python rules refuse that
    combination; the registry should too (or treat a sanctioned title as a blocked
    residence)."""
    w = world
    refused = _refused(w.kyc, lambda: w.registry.set_jurisdictions(
        [(KP, SANCTIONED, ALLOWED, keccak(text="KP sanctioned, typo"))]))
    if not refused:
        resident = _wallet(w, "atk-kp-resident", jurisdiction=KP)
        assert not w.token.canReceive(resident), "a sanctioned-country resident may receive"


# =================================================================================
# Attacks that are refused (regression tests)
# =================================================================================


def _selector(signature: str) -> int:
    return int.from_bytes(keccak(text=signature)[:4], "big")


def _interface_id(*signatures: str) -> bytes:
    value = 0
    for signature in signatures:
        value ^= _selector(signature)
    return value.to_bytes(4, "big")


def test_erc165_ids_are_the_xor_of_their_selectors(world):
    token = world.token
    ids = {
        "ERC-7943": _interface_id(
            "forcedTransfer(address,address,uint256)", "setFrozenTokens(address,uint256)",
            "canSend(address)", "canReceive(address)", "getFrozenTokens(address)",
            "canTransfer(address,address,uint256)"),
        "ERC-1404": _interface_id(
            "detectTransferRestriction(address,address,uint256)",
            "messageForTransferRestriction(uint8)"),
        "EIP-2612": _interface_id(
            "permit(address,address,uint256,uint256,uint8,bytes32,bytes32)",
            "nonces(address)", "DOMAIN_SEPARATOR()"),
        "ERC-20": _interface_id(
            "totalSupply()", "balanceOf(address)", "transfer(address,uint256)",
            "transferFrom(address,address,uint256)", "approve(address,uint256)",
            "allowance(address,address)"),
        "ERC-165": _interface_id("supportsInterface(bytes4)"),
        "EIP-5267": _interface_id("eip712Domain()"),
    }
    assert ids["ERC-7943"] == bytes.fromhex("3edbb4c4")  # the spec's value
    for name, interface_id in ids.items():
        assert token.supportsInterface(interface_id), name
    assert not token.supportsInterface(b"\xff\xff\xff\xff")  # ERC-165 requires false
    assert not token.supportsInterface(b"\x00\x00\x00\x00")


def test_forced_transfer_unfreezes_before_the_transfer_event(world):
    """ERC-7943: a forced transfer taking frozen shares emits `Frozen` before `Transfer`,
    and `ForcedTransfer`."""
    w, holder, court = world, world.borrowers[0], world.liquidator
    w.give_shares(holder, 1_000 * SHARE)
    agent = w.agent(FREEZER_ROLE, FORCED_TRANSFER_ROLE)
    with boa.env.prank(agent):
        w.token.setFrozenTokens(holder, 1_000 * SHARE)
        w.token.forcedTransfer(holder, court, 400 * SHARE)
    names = [type(e).__name__ for e in w.token.get_logs()]
    assert names.index("Frozen") < names.index("Transfer") < names.index("ForcedTransfer")
    assert w.token.getFrozenTokens(holder) == 600 * SHARE


def test_can_transfer_implies_can_send_and_can_receive_and_predicts_transfers(world):
    """ERC-7943: canTransfer performs canSend(from) and canReceive(to), and a transfer
    succeeds exactly when canTransfer says so, over a matrix of account states."""
    w = world
    now = boa.env.evm.patch.timestamp
    states = {}
    for state in ["ok", "expired", "frozen", "kp", "partial", "removed"]:
        account = boa.env.generate_address(f"atk-matrix-{state}")
        w.register(account)
        w.give_shares(account, 10 * SHARE)
        states[state] = account
    states["never"] = boa.env.generate_address("atk-matrix-never")  # no record, no shares
    agent = w.agent(FREEZER_ROLE)
    with boa.env.prank(agent):
        w.token.setFrozenTokens(states["partial"], 5 * SHARE)
    with boa.env.prank(w.kyc):
        w.registry.set_investor(states["expired"], US, True, now + 5)
        w.registry.set_wallet_frozen(states["frozen"], True)
        w.registry.remove_investor(states["removed"])
    w.register(states["kp"], jurisdiction=KP)
    boa.env.time_travel(seconds=10)
    for s_name, sender in states.items():
        for r_name, receiver in states.items():
            if sender == receiver:
                continue
            for amount in (1 * SHARE, 6 * SHARE):
                can = w.token.canTransfer(sender, receiver, amount)
                if not w.token.canSend(sender) or not w.token.canReceive(receiver):
                    assert not can, (s_name, r_name)
                with boa.env.anchor():
                    moved = not _refused(sender, w.token.transfer, receiver, amount)
                assert moved == can, (s_name, r_name, amount)


def test_two_pools_never_release_more_than_the_unfrozen_holding(world):
    """Partial freeze across two custodians: 300 in the wallet, 500 in pool A, 500 in pool
    B, 1,000 frozen. Whatever order the holder tries, at most 300 shares leave."""
    w, holder = world, world.borrowers[0]
    accomplice = _wallet(w, "atk-accomplice")
    pool_b = _second_pool(w)
    w.give_shares(holder, 1_300 * SHARE)
    with boa.env.prank(holder):
        w.token.approve(pool_b.address, MAX_UINT)
        w.pool.supply_collateral(500 * SHARE, holder)
        pool_b.supply_collateral(500 * SHARE, holder)
    agent = w.agent(FREEZER_ROLE)
    with boa.env.prank(agent):
        w.token.setFrozenTokens(holder, 1_000 * SHARE)
    amounts = (500 * SHARE, 300 * SHARE, 100 * SHARE, 50 * SHARE, 1 * SHARE)
    for _ in range(3):
        for pool in (w.pool, pool_b):
            for amount in amounts:
                _refused(holder, pool.withdraw_collateral, amount, accomplice)
        for amount in amounts:
            _refused(holder, w.token.transfer, accomplice, amount)
        # shuffle: take pooled shares home, try to put them in the other pool
        for pool, other in ((w.pool, pool_b), (pool_b, w.pool)):
            _refused(holder, pool.withdraw_collateral, 250 * SHARE, holder)
            _refused(holder, other.supply_collateral, 250 * SHARE, holder)
    moved = w.token.balanceOf(accomplice)
    assert moved <= 300 * SHARE
    # ... and exactly the unfrozen 300 can leave in the end.
    for pool in (w.pool, pool_b):
        left = pool.position(holder)[0]
        if left:
            with boa.env.prank(holder):
                pool.withdraw_collateral(left, holder)
    with boa.env.prank(holder):
        if moved < 300 * SHARE:
            w.token.transfer(accomplice, 300 * SHARE - moved)
        with boa.reverts(AMOUNT_FROZEN):
            w.token.transfer(accomplice, 1)
    _books_balance(w)
    _books_balance(w, pool_b)


def test_recovery_into_a_wallet_with_a_position_merges_exactly(world):
    """recover_position into a wallet that already has a position with debt: collateral,
    debt and income add up; both are paid out in full; the books stay whole."""
    w, lost, new, other = world, world.borrowers[0], world.borrowers[1], world.borrowers[2]
    w.supply(lost, 900 * SHARE)
    w.supply(new, 600 * SHARE)
    w.give_shares(other, 6_500 * SHARE)  # 8,000 shares in all
    with boa.env.prank(lost):
        w.pool.borrow(2_000 * w.unit, lost)
    with boa.env.prank(new):
        w.pool.borrow(1_000 * w.unit, new)
    w.distribute(8_000 * w.unit)
    owed = w.pool.income_owed(lost) + w.pool.income_owed(new)
    p_lost, p_new = w.pool.position(lost), w.pool.position(new)
    agent = w.agent(RECOVERY_ROLE)
    with boa.env.prank(w.kyc):
        w.registry.remove_investor(lost)  # the lost key stops acting
    with boa.env.prank(agent):
        w.pool.recover_position(lost, new)
    merged = w.pool.position(new)
    assert merged[0] == p_lost[0] + p_new[0] and merged[2] == p_lost[2] + p_new[2]
    assert owed <= w.pool.income_owed(new) <= owed + 1
    w.distribute(8_000 * w.unit)  # more income after the merge goes to `new`
    with boa.env.prank(new):
        paid = w.pool.claim_income()
    assert paid >= owed + 1_500 * w.unit - 2
    with boa.env.prank(new):
        w.fund(new, 10_000 * w.unit)
        w.pool.repay(MAX_UINT, new)
        w.pool.withdraw_collateral(1_500 * SHARE, new)
    assert w.pool.position(new) == (0, 0, 0)
    _books_balance(w)
    assert w.pool.total_collateral() == 0 and w.pool.total_scaled_debt() == 0


def test_lost_wallet_reused_after_recovery_gets_nothing_back(world):
    """After recover_position the lost wallet (still registered, keys maybe stolen)
    supplies fresh shares: it gets no old income and cannot take recovered collateral."""
    w, lost = world, world.borrowers[0]
    new = _wallet(w, "atk-new")
    w.supply(lost, 1_000 * SHARE)
    w.give_shares(w.borrowers[1], 7_000 * SHARE)
    w.distribute(8_000 * w.unit)
    agent = w.agent(RECOVERY_ROLE)
    with boa.env.prank(w.kyc):
        w.registry.set_wallet_frozen(lost, True)
    with boa.env.prank(agent):
        w.pool.recover_position(lost, new)
    with boa.env.prank(w.kyc):
        w.registry.set_wallet_frozen(lost, False)  # say the key turned up again
    with boa.env.prank(w.borrowers[1]):
        w.token.transfer(lost, 100 * SHARE)
    with boa.env.prank(lost):
        w.pool.supply_collateral(100 * SHARE, lost)
        with boa.reverts(reasons.POOL_NO_COLLATERAL_INCOME_CLAIM):
            w.pool.claim_income()
        with boa.reverts(reasons.POOL_WITHDRAWAL_EXCEEDS_COLLATERAL):
            w.pool.withdraw_collateral(101 * SHARE, lost)
    with boa.env.prank(new):
        assert w.pool.claim_income() >= 1_000 * w.unit - 1
    _books_balance(w)


def test_forced_withdraw_income_stays_with_the_borrower_and_bystanders(world):
    w, target, bystander, court = (world, world.borrowers[0], world.borrowers[1],
                                   world.liquidator)
    w.supply(target, 1_000 * SHARE)
    w.supply(bystander, 1_000 * SHARE)
    w.give_shares(w.borrowers[2], 6_000 * SHARE)
    w.distribute(8_000 * w.unit)  # 1,000 each
    agent = w.agent(FORCED_TRANSFER_ROLE)
    with boa.env.prank(agent):
        w.pool.forced_withdraw(target, court, 1_000 * SHARE)
    w.distribute(8_000 * w.unit)  # the court's shares earn the second 1,000
    assert 1_000 * w.unit - 1 <= w.pool.income_owed(target) <= 1_000 * w.unit
    assert 2_000 * w.unit - 1 <= w.pool.income_owed(bystander) <= 2_000 * w.unit
    assert 1_000 * w.unit - 1 <= w.token.claimable(court) <= 1_000 * w.unit
    for holder in (target, bystander):
        with boa.env.prank(holder):
            w.pool.claim_income()
    _books_balance(w)


@pytest.mark.parametrize("who", ["kp", "frozen", "unregistered"])
def test_agent_paths_never_deliver_to_an_ineligible_wallet(world, who):
    w, target = world, world.borrowers[0]
    w.supply(target, 500 * SHARE)
    bad = boa.env.generate_address(f"atk-bad-{who}")
    if who == "kp":
        w.register(bad, jurisdiction=KP)
    elif who == "frozen":
        w.register(bad)
        with boa.env.prank(w.kyc):
            w.registry.set_wallet_frozen(bad, True)
    agent = w.agent(FORCED_TRANSFER_ROLE, RECOVERY_ROLE)
    with boa.env.prank(agent):
        with boa.reverts():
            w.pool.forced_withdraw(target, bad, 500 * SHARE)
        with boa.reverts():
            w.pool.recover_position(target, bad)
    assert w.pool.position(target)[0] == 500 * SHARE and w.token.balanceOf(bad) == 0


def test_an_expired_holder_only_repays_until_renewed(world):
    w, holder, friend = world, world.borrowers[0], world.borrowers[1]
    w.supply(holder, 1_000 * SHARE)
    with boa.env.prank(holder):
        w.pool.borrow(1_000 * w.unit, holder)
    w.distribute(8_000 * w.unit)
    with boa.env.prank(w.kyc):
        w.registry.set_investor(holder, US, True, boa.env.evm.patch.timestamp + 5)
    boa.env.time_travel(seconds=10)
    w.set_price(15 * 10**8)
    for call in (lambda: w.pool.withdraw_collateral(100 * SHARE, holder),
                 lambda: w.pool.withdraw_collateral(100 * SHARE, friend),
                 lambda: w.pool.borrow(1 * w.unit, holder),
                 lambda: w.pool.borrow(1 * w.unit, friend),
                 lambda: w.pool.claim_income(),
                 lambda: w.pool.supply_collateral(1, friend)):
        assert _refused(holder, call)
    w.fund(holder, 2_000 * w.unit)
    with boa.env.prank(holder):
        w.pool.repay(MAX_UINT, holder)
    w.register(holder)
    with boa.env.prank(holder):
        w.pool.withdraw_collateral(1_000 * SHARE, holder)
        assert w.pool.claim_income() > 0


def test_a_spender_with_an_allowance_cannot_credit_its_own_position(world):
    """An ineligible spender (North Korean resident) approved by a holder can neither pull
    the shares to itself nor credit them to its own pool position: supply pulls from the
    caller only, and a transferFrom into the pool credits nobody."""
    w, owner = world, world.borrowers[0]
    spender = _wallet(w, "atk-kp-spender", jurisdiction=KP)
    w.give_shares(owner, 1_000 * SHARE)
    with boa.env.prank(owner):
        w.token.approve(spender, MAX_UINT)
    with boa.env.prank(spender):
        with boa.reverts(BLOCKED_MESSAGE):
            w.token.transferFrom(owner, spender, 100 * SHARE)
        with boa.reverts():
            w.pool.supply_collateral(100 * SHARE, spender)
        w.token.transferFrom(owner, w.pool.address, 100 * SHARE)  # a donation
    assert w.pool.position(spender) == (0, 0, 0)
    assert w.pool.total_collateral() == 0


def test_re_registration_never_lifts_a_registry_freeze_on_a_position(world):
    w, holder, friend = world, world.borrowers[0], world.borrowers[1]
    w.supply(holder, 1_000 * SHARE)
    w.distribute(8_000 * w.unit)
    with boa.env.prank(w.kyc):
        w.registry.set_wallet_frozen(holder, True)
        w.registry.remove_investor(holder)
        w.registry.set_investor(holder, US, True, FAR_FUTURE)
    for call in (lambda: w.pool.withdraw_collateral(1 * SHARE, holder),
                 lambda: w.pool.withdraw_collateral(1 * SHARE, friend),
                 lambda: w.pool.borrow(1 * w.unit, holder),
                 lambda: w.pool.claim_income()):
        assert _refused(holder, call)


def test_liquidation_cannot_route_collateral_to_an_ineligible_wallet(world):
    """A position whose holder moved to a blocked jurisdiction: a KP liquidator is refused,
    an eligible one is paid; the KP holder's leftover income stays unclaimable."""
    w, holder = world, world.borrowers[0]
    kp_liquidator = _wallet(w, "atk-kp-liquidator", jurisdiction=KP)
    w.supply(holder, 1_000 * SHARE)
    with boa.env.prank(holder):
        w.pool.borrow(10_000 * w.unit, holder)
    w.distribute(8_000 * w.unit)
    w.register(holder, jurisdiction=KP)
    assert w.set_price(11 * 10**8)  # 10,000 / 11,000 > 80 %
    for liquidator in (kp_liquidator, holder):
        w.fund(liquidator, 20_000 * w.unit)
        with boa.env.prank(liquidator), boa.reverts(BLOCKED_MESSAGE):
            w.pool.liquidate(holder, MAX_UINT)
    w.fund(w.liquidator, 20_000 * w.unit)
    with boa.env.prank(w.liquidator):
        w.pool.liquidate(holder, MAX_UINT)
    assert w.token.balanceOf(kp_liquidator) == 0
    with boa.env.prank(holder), boa.reverts(BLOCKED_MESSAGE):
        w.pool.claim_income()
    _books_balance(w)


def test_supply_for_another_respects_the_suppliers_partial_freeze(world):
    w, supplier, friend = world, world.borrowers[0], world.borrowers[1]
    w.give_shares(supplier, 1_000 * SHARE)
    agent = w.agent(FREEZER_ROLE)
    with boa.env.prank(agent):
        w.token.setFrozenTokens(supplier, 700 * SHARE)
    with boa.env.prank(supplier):
        with boa.reverts(AMOUNT_FROZEN):
            w.pool.supply_collateral(301 * SHARE, friend)
        w.pool.supply_collateral(300 * SHARE, friend)
        with boa.reverts(AMOUNT_FROZEN):
            w.pool.supply_collateral(1, supplier)
    assert w.pool.position(friend)[0] == 300 * SHARE


def test_borrowing_before_a_partial_freeze_does_not_double_count(world):
    """Borrow first, then a freeze of the whole holding: no further borrow, no withdrawal
    to another wallet (the free part is zero)."""
    w, holder = world, world.borrowers[0]
    accomplice = _wallet(w, "atk-accomplice")
    w.supply(holder, 1_000 * SHARE)
    with boa.env.prank(holder):
        w.pool.borrow(1_000 * w.unit, holder)
    agent = w.agent(FREEZER_ROLE)
    with boa.env.prank(agent):
        w.token.setFrozenTokens(holder, 1_000 * SHARE)
    with boa.env.prank(holder):
        with boa.reverts(ABOVE_MAX_LTV_BORROW):
            w.pool.borrow(1 * w.unit, holder)
        with boa.reverts(AMOUNT_FROZEN):
            w.pool.withdraw_collateral(1, accomplice)
