"""LendingPool unit tests: every external function against the real suite (compliance
registry, GPU share token, oracle hub + NAV feed, kinked rate model, factory).

Amounts are checked with exact integer arithmetic mirroring the pool's rounding (and
`gpushares.lending` for health); revert reasons are matched exactly."""

from __future__ import annotations

from decimal import Context, Decimal

import boa
import pytest
from boa.contracts.base_evm_contract import BoaError

from gpushares import lending, reasons
from jurisdictions.codes import Restriction, message
from tests.contracts import deployers
from tests.contracts.helpers import DEFAULT_ADMIN_ROLE, MAGNITUDE, SHARE, ZERO
from tests.contracts.pool_helpers import (
    ABOVE_MAX_LTV_BORROW,
    ABOVE_MAX_LTV_WITHDRAW,
    DEBT_SCALE,
    EXCEEDS_COLLATERAL,
    GUARDIAN_ROLE,
    HEALTHY,
    MASK128,
    MAX_UINT,
    MISSING_ROLE,
    NO_DEBT,
    NO_IDLE,
    NO_INCOME,
    NO_LIQUIDITY,
    NO_RESERVES,
    PAUSED,
    PRICE,
    REPAY_ROUNDS,
    RISK_ADMIN_ROLE,
    STALE,
    VIRTUAL_ASSETS,
    VIRTUAL_SHARES,
    WAD,
    YEAR,
    ZERO_REDEEM,
    ZERO_SHARES,
    World,
    build_world,
)

CTX = Context(prec=60)  # vyper locks the global decimal context

HEARTBEAT = 86_400
LLTV = 80 * WAD // 100
MAX_LTV = 70 * WAD // 100
INCENTIVE = 1_063_829_787_234_042_553  # 1 / (1 - 0.3 * 0.2)
PRICE_DEN = 10 ** (8 + 18)  # feed decimals + share decimals

ZERO_COLLATERAL = reasons.POOL_ZERO_COLLATERAL
ZERO_BORROWER = reasons.POOL_BORROWER_ZERO_ADDRESS
ZERO_BORROW = reasons.POOL_BORROW_ZERO
ZERO_REPAY = reasons.POOL_REPAY_ZERO
ZERO_MINT = reasons.POOL_MINT_ZERO_SHARES
ZERO_WITHDRAW = reasons.POOL_WITHDRAWAL_ZERO
DEPOSIT_CAP = reasons.POOL_DEPOSIT_ABOVE_2_128
PAUSE_UNCHANGED = reasons.POOL_PAUSE_UNCHANGED
BAD_MAX_LTV = reasons.POOL_MAX_LTV_ABOVE_0
BAD_RESERVE = reasons.POOL_RESERVE_FACTOR_ABOVE_50
ZERO_TREASURY = reasons.POOL_TREASURY_ZERO_ADDRESS
INSUFFICIENT_ALLOWANCE = reasons.ERC20_INSUFFICIENT_ALLOWANCE
BURN_EXCEEDS = "erc20: burn amount exceeds balance"


# ---------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------


def _events(contract, name):
    return [log for log in contract.get_logs() if type(log).__name__ == name]


def _event(contract, name):
    (event,) = _events(contract, name)
    return event


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _debt_of(scaled: int, index: int) -> int:
    return _ceil_div(scaled * index, DEBT_SCALE)


def _to_shares(assets: int, supplied: int, total_supply: int, up: bool) -> int:
    num, den = assets * (total_supply + VIRTUAL_SHARES), supplied + VIRTUAL_ASSETS
    return _ceil_div(num, den) if up else num // den


def _to_assets(shares: int, supplied: int, total_supply: int, up: bool) -> int:
    num, den = shares * (supplied + VIRTUAL_ASSETS), total_supply + VIRTUAL_SHARES
    return _ceil_div(num, den) if up else num // den


def _market(w: World) -> lending.Market:
    return lending.Market(
        asset_decimals=w.asset_decimals, feed_decimals=8, lltv=w.pool.lltv(),
        max_ltv=w.pool.max_ltv(),
    )


def _deposit(w: World, lender, assets: int) -> int:
    w.fund(lender, assets)
    with boa.env.prank(lender):
        return w.pool.deposit(assets, lender)


def _supply(w: World, borrower, shares: int) -> None:
    w.give_shares(borrower, shares)
    with boa.env.prank(borrower):
        w.pool.supply_collateral(shares, borrower)


def _borrow(w: World, borrower, assets: int, receiver=None) -> int:
    with boa.env.prank(borrower):
        return w.pool.borrow(assets, receiver or borrower)


def _repay(w: World, payer, assets: int, borrower=None) -> int:
    w.fund(payer, 10**30)
    with boa.env.prank(payer):
        return w.pool.repay(assets, borrower or payer)


def _now() -> int:
    return boa.env.evm.patch.timestamp


def _max_borrow(w: World, borrower) -> int:
    """The largest `assets` `borrow` accepts now (LTV only), by the pool's arithmetic."""
    collateral, _, scaled = w.pool.position(borrower)
    index = w.pool.borrow_index()
    value = lending.collateral_value(_market(w), collateral, w.pool.price())
    limit = value * w.pool.max_ltv() // WAD

    def fits(assets: int) -> bool:
        return _debt_of(scaled + _ceil_div(assets * DEBT_SCALE, index), index) <= limit

    lo, hi = 0, limit + 2
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _max_withdrawable(w: World, borrower) -> int:
    collateral, debt, _ = w.pool.position(borrower)
    market, price = _market(w), w.pool.price()
    lo, hi = 0, collateral + 1
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        ok = lending.within(market, debt, collateral - mid, price, market.max_ltv)
        lo, hi = (mid, hi) if ok else (lo, mid)
    return lo


def _state(w: World, *accounts) -> tuple:
    """Everything a refused call must leave alone, raw storage included."""
    pool, storage = w.pool, w.pool._storage
    return (
        pool.market(),
        pool.borrow_index(),
        pool.total_scaled_debt(),
        pool.total_collateral(),
        pool.totalSupply(),
        pool.income_held(),
        storage._rates.get(),
        storage._supply.get(),
        storage._params.get(),
        tuple(pool.position(a) for a in accounts),
        tuple(pool.balanceOf(a) for a in accounts),
        tuple(w.asset.balanceOf(a) for a in (*accounts, pool.address)),
        tuple(w.token.balanceOf(a) for a in (*accounts, pool.address)),
    )


def _refused(fn, reason: str) -> BoaError:
    """Call `fn`, expect a revert with exactly `reason`, return the error (for its trace)."""
    try:
        fn()
    except BoaError as error:
        assert error.stack_trace.last_frame.pretty_vm_reason == reason
        return error
    raise AssertionError("did not revert")


def _distribute(w: World, amount: int) -> None:
    """The SPV operator distributes rental income (the income token is the loan asset)."""
    w.asset.mint(w.operator, amount)
    with boa.env.prank(w.operator):
        w.asset.approve(w.token.address, MAX_UINT)
        w.token.distribute(amount)


def _freeze(w: World, account) -> None:
    with boa.env.prank(w.kyc):
        w.registry.set_wallet_frozen(account, True)


@pytest.fixture
def world() -> World:
    return build_world()


@pytest.fixture
def loan(world) -> World:
    """100,000 tUSD supplied by lender 0; borrower 0 has 1,000 shares ($15,000 at $15)
    as collateral and owes 10,000 tUSD (66.7 % LTV: under the 70 % max LTV)."""
    _deposit(world, world.lenders[0], 100_000 * world.unit)
    _supply(world, world.borrowers[0], 1_000 * SHARE)
    _borrow(world, world.borrowers[0], 10_000 * world.unit)
    return world


# ---------------------------------------------------------------------------------
# ERC-4626: deposit, mint, withdraw, redeem
# ---------------------------------------------------------------------------------


def test_first_deposit_mints_at_the_virtual_rate(world):
    pool, lender, receiver = world.pool, world.lenders[0], world.lenders[1]
    assert pool.previewDeposit(1_000 * world.unit) == 1_000 * world.unit * VIRTUAL_SHARES
    world.fund(lender, 1_000 * world.unit)
    with boa.env.prank(lender):
        shares = pool.deposit(1_000 * world.unit, receiver)
    event = _event(pool, "Deposit")
    assert shares == 1_000 * world.unit * VIRTUAL_SHARES
    assert (event.sender, event.owner, event.assets, event.shares) == (
        lender, receiver, 1_000 * world.unit, shares,
    )
    assert pool.balanceOf(receiver) == shares and pool.balanceOf(lender) == 0
    assert pool.totalSupply() == shares
    assert pool.totalAssets() == 1_000 * world.unit
    assert world.asset.balanceOf(pool.address) == 1_000 * world.unit
    assert world.asset.balanceOf(lender) == 0
    assert pool.market() == (1_000 * world.unit, 0, 0, 1_000 * world.unit)
    assert pool.decimals() == 12


def _interesting_ratio(loan: World) -> tuple[int, int]:
    """Move the share price off 1:1 (interest), return (supplied, total supply)."""
    boa.env.time_travel(seconds=30 * 86_400 + 17)
    loan.pool.accrue_interest()
    supplied, total_supply = loan.pool.totalAssets(), loan.pool.totalSupply()
    assert supplied > 100_000 * loan.unit
    return supplied, total_supply


AMOUNTS = [1, 7, 999, 123_456_789, 10**6 + 1, 31_415_926_535]


def test_previews_round_in_the_pools_favour(loan):
    pool = loan.pool
    supplied, total_supply = _interesting_ratio(loan)
    differs = 0
    for x in AMOUNTS:
        assert pool.previewDeposit(x) == _to_shares(x, supplied, total_supply, False)
        assert pool.convertToShares(x) == _to_shares(x, supplied, total_supply, False)
        assert pool.previewWithdraw(x) == _to_shares(x, supplied, total_supply, True)
        shares = x * 10**6 + 3
        assert pool.previewRedeem(shares) == _to_assets(shares, supplied, total_supply, False)
        assert pool.convertToAssets(shares) == _to_assets(shares, supplied, total_supply, False)
        assert pool.previewMint(shares) == _to_assets(shares, supplied, total_supply, True)
        assert pool.previewDeposit(x) <= pool.previewWithdraw(x)
        assert pool.previewRedeem(shares) <= pool.previewMint(shares)
        differs += pool.previewWithdraw(x) != pool.previewDeposit(x)
        differs += pool.previewMint(shares) != pool.previewRedeem(shares)
    assert differs >= len(AMOUNTS)  # the direction of rounding mattered


def test_deposit_mint_withdraw_redeem_match_their_previews(loan):
    pool, lender = loan.pool, loan.lenders[1]
    _interesting_ratio(loan)
    loan.fund(lender, 10**6 * loan.unit)
    start = loan.asset.balanceOf(lender)
    with boa.env.prank(lender):
        expected = pool.previewDeposit(1_234_567_891)
        assert pool.deposit(1_234_567_891, lender) == expected
        assets = pool.previewMint(777_777_777_777_777)
        assert pool.mint(777_777_777_777_777, lender) == assets
        mint_event = _event(pool, "Deposit")
        assert (mint_event.assets, mint_event.shares) == (assets, 777_777_777_777_777)
        burnt = pool.previewWithdraw(500_000_001)
        assert pool.withdraw(500_000_001, lender, lender) == burnt
        withdraw_event = _event(pool, "Withdraw")
        paid = pool.previewRedeem(pool.balanceOf(lender))
        assert pool.redeem(pool.balanceOf(lender), lender, lender) == paid
        redeem_event = _event(pool, "Withdraw")
    assert (withdraw_event.sender, withdraw_event.receiver, withdraw_event.owner) == (
        lender, lender, lender,
    )
    assert (withdraw_event.assets, withdraw_event.shares) == (500_000_001, burnt)
    assert redeem_event.assets == paid
    assert pool.balanceOf(lender) == 0
    # Every conversion rounded against the lender: the round trip cannot gain.
    assert loan.asset.balanceOf(lender) <= start


def test_zero_amounts_are_refused(loan):
    pool, lender = loan.pool, loan.lenders[0]
    with boa.env.prank(lender):
        with boa.reverts(ZERO_SHARES):
            pool.deposit(0, lender)
        with boa.reverts(ZERO_MINT):
            pool.mint(0, lender)
        with boa.reverts(ZERO_WITHDRAW):
            pool.withdraw(0, lender, lender)
        with boa.reverts(ZERO_REDEEM):
            pool.redeem(0, lender, lender)
        with boa.reverts(ZERO_REDEEM):
            pool.redeem(1, lender, lender)  # one vault share is worth under 1 wei


def test_max_functions(loan):
    pool, lender, other = loan.pool, loan.lenders[0], loan.lenders[1]
    supplied, total_supply = _interesting_ratio(loan)
    _, reserves, debt, idle = pool.market()
    assert idle == supplied + reserves - debt
    assert pool.maxDeposit(other) == MASK128 - supplied
    assert pool.maxMint(other) == _to_shares(MASK128 - supplied, supplied, total_supply, False)
    claim = _to_assets(pool.balanceOf(lender), supplied, total_supply, False)
    assert claim > idle  # most of it is lent out: the idle liquidity binds
    assert pool.maxWithdraw(lender) == idle
    assert pool.maxRedeem(lender) == _to_shares(idle, supplied, total_supply, False)
    assert pool.maxWithdraw(other) == 0 and pool.maxRedeem(other) == 0
    # A small holder is bound by their own claim instead.
    shares = _deposit(loan, other, 5 * loan.unit)
    assert pool.maxRedeem(other) == shares
    assert pool.maxWithdraw(other) == pool.previewRedeem(shares) <= 5 * loan.unit


def test_withdraw_is_limited_by_idle_liquidity(loan):
    pool, lender = loan.pool, loan.lenders[0]
    _, _, _, idle = pool.market()
    assert idle == 90_000 * loan.unit
    assert pool.maxWithdraw(lender) == idle
    with boa.env.prank(lender):
        with boa.reverts(NO_IDLE):
            pool.withdraw(idle + 1, lender, lender)
        with boa.reverts(NO_IDLE):
            pool.redeem(pool.balanceOf(lender), lender, lender)
        max_redeem = pool.maxRedeem(lender)
        with boa.env.anchor():
            assert pool.redeem(max_redeem, lender, lender) <= idle
        pool.withdraw(idle, lender, lender)
        assert pool.maxWithdraw(lender) == 0 and pool.maxRedeem(lender) == 0
        with boa.reverts(NO_IDLE):
            pool.withdraw(1, lender, lender)
    assert pool.market()[3] == 0
    # A repayment brings liquidity back.
    _repay(loan, loan.borrowers[0], 2_000 * loan.unit)
    assert pool.maxWithdraw(lender) == 2_000 * loan.unit


def test_withdraw_and_redeem_by_a_spender_use_the_allowance(loan):
    pool, owner, spender, receiver = loan.pool, loan.lenders[0], loan.lenders[1], loan.lenders[2]
    with boa.env.prank(spender):
        with boa.reverts(INSUFFICIENT_ALLOWANCE):
            pool.withdraw(1_000 * loan.unit, receiver, owner)
        with boa.reverts(INSUFFICIENT_ALLOWANCE):
            pool.redeem(10**15, receiver, owner)
    allowance = 3 * 10**15
    with boa.env.prank(owner):
        pool.approve(spender, allowance)
    balance = pool.balanceOf(owner)
    with boa.env.prank(spender):
        burnt = pool.withdraw(1_000 * loan.unit, receiver, owner)
        event = _event(pool, "Withdraw")
        assert (event.sender, event.receiver, event.owner) == (spender, receiver, owner)
        assert pool.allowance(owner, spender) == allowance - burnt
        paid = pool.redeem(10**15, receiver, owner)
        assert pool.allowance(owner, spender) == allowance - burnt - 10**15
        with boa.reverts(INSUFFICIENT_ALLOWANCE):
            pool.redeem(allowance, receiver, owner)
    assert pool.balanceOf(owner) == balance - burnt - 10**15
    assert loan.asset.balanceOf(receiver) == 1_000 * loan.unit + paid
    assert loan.asset.balanceOf(spender) == 0
    # Owner withdrawing more than they hold: the burn refuses.
    with boa.env.prank(loan.lenders[2]), boa.reverts(BURN_EXCEEDS):
        pool.withdraw(1, receiver, loan.lenders[2])


def test_deposit_up_to_the_128_bit_bound(world):
    pool, lender = world.pool, world.lenders[0]
    _deposit(world, lender, 10 * world.unit)
    cap = pool.maxDeposit(lender)
    assert cap == MASK128 - 10 * world.unit
    world.fund(lender, cap + 1)
    with boa.env.prank(lender):
        with boa.reverts(DEPOSIT_CAP):
            pool.deposit(cap + 1, lender)
        pool.deposit(cap, lender)
    assert pool.totalAssets() == MASK128
    assert pool.maxDeposit(lender) == 0 and pool.maxMint(lender) == 0


def test_mint_at_max_mint_succeeds(world):
    pool, lender = world.pool, world.lenders[0]
    _deposit(world, lender, 3 * world.unit + 1)
    shares = pool.maxMint(lender)
    world.fund(lender, MASK128)
    with boa.env.prank(lender):
        assets = pool.mint(shares, lender)
    assert assets <= MASK128 - 3 * world.unit - 1
    assert pool.totalAssets() == 3 * world.unit + 1 + assets


def test_vault_shares_are_transferable(loan):
    pool, lender, other = loan.pool, loan.lenders[0], loan.lenders[1]
    with boa.env.prank(lender):
        pool.transfer(other, 10**15)
    assert pool.balanceOf(other) == 10**15
    with boa.env.prank(other):
        assert pool.redeem(10**15, other, other) == 1_000 * loan.unit
    assert (pool.name(), pool.symbol(), pool.asset()) == (
        "GPU Pool tUSD/LSH1", "gpLSH", loan.asset.address,
    )


# ---------------------------------------------------------------------------------
# Collateral
# ---------------------------------------------------------------------------------


def test_supply_collateral_on_behalf_of_a_borrower(world):
    pool, payer, borrower = world.pool, world.borrowers[1], world.borrowers[0]
    world.give_shares(payer, 500 * SHARE)
    with boa.env.prank(payer):
        pool.supply_collateral(500 * SHARE, borrower)
    event = _event(pool, "CollateralSupplied")
    assert (event.sender, event.borrower, event.amount) == (payer, borrower, 500 * SHARE)
    assert pool.position(borrower) == (500 * SHARE, 0, 0)
    assert pool.position(payer) == (0, 0, 0)
    assert pool.total_collateral() == 500 * SHARE
    assert world.token.balanceOf(pool.address) == 500 * SHARE
    assert world.token.balanceOf(payer) == 0


def test_supply_collateral_refusals(world):
    pool, borrower = world.pool, world.borrowers[0]
    world.give_shares(borrower, 100 * SHARE)
    with boa.env.prank(borrower):
        with boa.reverts(ZERO_COLLATERAL):
            pool.supply_collateral(0, borrower)
        with boa.reverts(ZERO_BORROWER):
            pool.supply_collateral(SHARE, ZERO)
        world.token.approve(pool.address, 0)
        with boa.reverts(INSUFFICIENT_ALLOWANCE):
            pool.supply_collateral(SHARE, borrower)
        world.token.approve(pool.address, MAX_UINT)
    # The token's compliance gate applies to the move into the pool.
    _freeze(world, borrower)
    with boa.env.prank(borrower), boa.reverts(message(Restriction.SENDER_FROZEN)):
        pool.supply_collateral(SHARE, borrower)
    assert pool.total_collateral() == 0


def test_withdraw_collateral_without_debt_needs_no_fresh_price(world):
    pool, borrower = world.pool, world.borrowers[0]
    _supply(world, borrower, 300 * SHARE)
    boa.env.time_travel(seconds=HEARTBEAT + 1)
    with boa.reverts(STALE):
        pool.price()
    with boa.env.prank(borrower):
        with boa.reverts(ZERO_COLLATERAL):
            pool.withdraw_collateral(0, borrower)
        with boa.reverts(EXCEEDS_COLLATERAL):
            pool.withdraw_collateral(300 * SHARE + 1, borrower)
        pool.withdraw_collateral(100 * SHARE, world.borrowers[1])
    event = _event(pool, "CollateralWithdrawn")
    assert (event.borrower, event.receiver, event.amount) == (
        borrower, world.borrowers[1], 100 * SHARE,
    )
    assert pool.position(borrower)[0] == 200 * SHARE
    assert pool.total_collateral() == 200 * SHARE
    assert world.token.balanceOf(world.borrowers[1]) == 100 * SHARE


def test_withdraw_collateral_receiver_must_be_eligible(world):
    pool, borrower = world.pool, world.borrowers[0]
    _supply(world, borrower, 300 * SHARE)
    before = _state(world, borrower, world.stranger)
    with boa.env.prank(borrower), boa.reverts(message(Restriction.RECEIVER_NOT_REGISTERED)):
        pool.withdraw_collateral(SHARE, world.stranger)
    _freeze(world, world.borrowers[2])
    with boa.env.prank(borrower), boa.reverts(message(Restriction.RECEIVER_FROZEN)):
        pool.withdraw_collateral(SHARE, world.borrowers[2])
    assert _state(world, borrower, world.stranger) == before


def test_withdraw_collateral_with_debt_stays_within_max_ltv_to_the_wei(loan):
    pool, borrower = loan.pool, loan.borrowers[0]
    boa.env.time_travel(seconds=20 * 3_600 + 5)  # within the price's heartbeat
    most = _max_withdrawable(loan, borrower)
    collateral, debt, _ = pool.position(borrower)
    assert 0 < most < collateral
    assert not lending.within(_market(loan), debt, collateral - most - 1, pool.price(), MAX_LTV)
    with boa.env.prank(borrower):
        with boa.reverts(ABOVE_MAX_LTV_WITHDRAW):
            pool.withdraw_collateral(most + 1, borrower)
        pool.withdraw_collateral(most, borrower)
        assert _events(pool, "InterestAccrued")  # the health check accrued first
    assert pool.position(borrower)[0] == collateral - most
    # With debt, a stale price stops any withdrawal.
    boa.env.time_travel(seconds=HEARTBEAT + 1)
    with boa.env.prank(borrower), boa.reverts(STALE):
        pool.withdraw_collateral(1, borrower)


def test_guardian_pause_stops_collateral_withdrawals(world):
    pool, borrower = world.pool, world.borrowers[0]
    _supply(world, borrower, 300 * SHARE)
    with boa.env.prank(world.admin):
        pool.set_paused(True)
    with boa.env.prank(borrower), boa.reverts(PAUSED):
        pool.withdraw_collateral(SHARE, borrower)
    with boa.env.prank(world.admin):
        pool.set_paused(False)
    with boa.env.prank(borrower):
        pool.withdraw_collateral(SHARE, borrower)
    assert pool.position(borrower)[0] == 299 * SHARE


# ---------------------------------------------------------------------------------
# Borrow
# ---------------------------------------------------------------------------------


def test_borrow_up_to_max_ltv_exact_to_the_wei(world):
    pool, borrower, receiver = world.pool, world.borrowers[0], world.borrowers[1]
    _deposit(world, world.lenders[0], 100_000 * world.unit)
    collateral = 1_234_567_891_234_567_891_234  # 1,234.57 shares
    assert world.set_price(15_123_456_78)
    _supply(world, borrower, collateral)
    market, price = _market(world), pool.price()
    limit = lending.collateral_value(market, collateral, price) * MAX_LTV // WAD
    assert limit == 13_069_653_901  # 18,670.934145 tUSD of value x 70 %, rounded down
    assert lending.within(market, limit, collateral, price, MAX_LTV)
    assert not lending.within(market, limit + 1, collateral, price, MAX_LTV)
    assert _max_borrow(world, borrower) == limit  # index 1.0: debt == assets
    with boa.env.prank(borrower):
        with boa.reverts(ABOVE_MAX_LTV_BORROW):
            pool.borrow(limit + 1, receiver)
        scaled = pool.borrow(limit, receiver)
    event = _event(pool, "Borrowed")
    assert scaled == limit * DEBT_SCALE // WAD
    assert (event.borrower, event.receiver, event.assets, event.scaled_debt) == (
        borrower, receiver, limit, scaled,
    )
    assert pool.position(borrower) == (collateral, limit, scaled)
    assert world.asset.balanceOf(receiver) == limit and world.asset.balanceOf(borrower) == 0
    assert pool.total_scaled_debt() == scaled
    assert pool.market() == (100_000 * world.unit, 0, limit, 100_000 * world.unit - limit)
    assert lending.health(market, collateral, limit, price).within_max_ltv
    with boa.env.prank(borrower), boa.reverts(ABOVE_MAX_LTV_BORROW):
        pool.borrow(1, borrower)


def test_borrow_boundary_after_interest_rounds_the_debt_up(loan):
    pool, borrower = loan.pool, loan.borrowers[0]
    boa.env.time_travel(seconds=45 * 86_400 + 11)
    assert loan.set_price(15 * PRICE)  # a fresh price
    index = pool.borrow_index()
    assert index > WAD
    most = _max_borrow(loan, borrower)
    _, _, scaled = pool.position(borrower)
    with boa.env.prank(borrower):
        with boa.reverts(ABOVE_MAX_LTV_BORROW):
            pool.borrow(most + 1, borrower)
        added = pool.borrow(most, borrower)
        assert _event(pool, "InterestAccrued").borrow_index == index
    assert added == _ceil_div(most * DEBT_SCALE, index)  # scaled up on borrow
    assert pool.position(borrower)[2] == scaled + added
    assert pool.position(borrower)[1] == _debt_of(scaled + added, index)


def test_borrow_needs_liquidity(world):
    pool, borrower = world.pool, world.borrowers[0]
    _deposit(world, world.lenders[0], 1_000 * world.unit)
    _supply(world, borrower, 1_000 * SHARE)  # could borrow 10,500
    with boa.env.prank(borrower):
        with boa.reverts(NO_LIQUIDITY):
            pool.borrow(1_000 * world.unit + 1, borrower)
        pool.borrow(1_000 * world.unit, borrower)
        with boa.reverts(NO_LIQUIDITY):
            pool.borrow(1, borrower)
    assert pool.market() == (1_000 * world.unit, 0, 1_000 * world.unit, 0)


def test_borrow_refusals(loan):
    pool, borrower = loan.pool, loan.borrowers[0]
    with boa.env.prank(borrower), boa.reverts(ZERO_BORROW):
        pool.borrow(0, borrower)
    with boa.env.prank(loan.borrowers[1]), boa.reverts(ABOVE_MAX_LTV_BORROW):
        pool.borrow(1, loan.borrowers[1])  # no collateral
    with boa.env.prank(loan.admin):
        pool.set_paused(True)
    with boa.env.prank(borrower), boa.reverts(PAUSED):
        pool.borrow(1, borrower)
    with boa.env.prank(loan.admin):
        pool.set_paused(False)
    boa.env.time_travel(seconds=HEARTBEAT)
    with boa.env.anchor(), boa.env.prank(borrower):
        pool.borrow(1, borrower)  # exactly one heartbeat old: still fresh
    boa.env.time_travel(seconds=1)
    before = _state(loan, borrower)
    with boa.env.prank(borrower), boa.reverts(STALE):
        pool.borrow(1, borrower)
    assert _state(loan, borrower) == before
    # A fresh price restores borrowing.
    assert loan.set_price(15 * PRICE)
    with boa.env.prank(borrower):
        pool.borrow(1, borrower)


# ---------------------------------------------------------------------------------
# Repay
# ---------------------------------------------------------------------------------


def test_partial_repay_rounds_the_scaled_debt_down(loan):
    pool, borrower = loan.pool, loan.borrowers[0]
    boa.env.time_travel(seconds=10 * 86_400 + 3)
    index = pool.borrow_index()
    _, debt, scaled = pool.position(borrower)
    amount = 3_333_333_333
    assert _repay(loan, borrower, amount) == amount
    removed = amount * DEBT_SCALE // index
    event = _event(pool, "Repaid")
    assert (event.payer, event.borrower, event.assets, event.scaled_debt) == (
        borrower, borrower, amount, removed,
    )
    assert pool.position(borrower)[2] == scaled - removed
    remaining = pool.position(borrower)[1]
    assert remaining == _debt_of(scaled - removed, index)
    assert debt - amount <= remaining <= debt - amount + 1  # never less than owed


def test_full_repay_with_max_uint_pulls_exactly_the_debt(loan):
    pool, borrower = loan.pool, loan.borrowers[0]
    boa.env.time_travel(seconds=77 * 86_400)
    _, debt, scaled = pool.position(borrower)
    loan.fund(borrower, 10**30)
    before = loan.asset.balanceOf(borrower)
    with boa.env.prank(borrower):
        assert pool.repay(MAX_UINT, borrower) == debt
    event = _event(pool, "Repaid")
    assert (event.assets, event.scaled_debt) == (debt, scaled)
    assert loan.asset.balanceOf(borrower) == before - debt
    assert pool.position(borrower) == (1_000 * SHARE, 0, 0)
    assert pool.total_scaled_debt() == 0
    supplied, reserves, total_debt, idle = pool.market()
    assert total_debt == 0 and idle == supplied + reserves
    with boa.env.prank(borrower), boa.reverts(NO_DEBT):
        pool.repay(1, borrower)


def test_repay_of_more_than_the_debt_pulls_only_the_debt(loan):
    pool, borrower = loan.pool, loan.borrowers[0]
    boa.env.time_travel(seconds=1_000)
    debt = pool.position(borrower)[1]
    assert _repay(loan, borrower, debt + 12_345) == debt
    assert pool.position(borrower)[1:] == (0, 0)


def test_repay_works_while_paused_and_while_the_price_is_stale(loan):
    pool, borrower = loan.pool, loan.borrowers[0]
    with boa.env.prank(loan.admin):
        pool.set_paused(True)
    boa.env.time_travel(seconds=HEARTBEAT + 1)
    with boa.reverts(STALE):
        pool.price()
    assert _repay(loan, borrower, 1_000 * loan.unit) == 1_000 * loan.unit
    debt = pool.position(borrower)[1]
    assert _repay(loan, borrower, MAX_UINT) == debt
    assert pool.position(borrower)[1] == 0


def test_third_party_repays_on_behalf(loan):
    pool, borrower, payer = loan.pool, loan.borrowers[0], loan.stranger
    loan.fund(payer, 20_000 * loan.unit)
    debt = pool.position(borrower)[1]
    with boa.env.prank(payer):
        pool.repay(4_000 * loan.unit, borrower)
        event = _event(pool, "Repaid")
        assert (event.payer, event.borrower) == (payer, borrower)
        pool.repay(MAX_UINT, borrower)
    assert pool.position(borrower)[1] == 0
    assert loan.asset.balanceOf(payer) == 20_000 * loan.unit - debt
    assert loan.asset.balanceOf(borrower) == 10_000 * loan.unit  # the loan, untouched


def test_repay_refusals(loan):
    pool, borrower = loan.pool, loan.borrowers[0]
    with boa.env.prank(borrower), boa.reverts(ZERO_REPAY):
        pool.repay(0, borrower)
    loan.fund(loan.borrowers[1], loan.unit)
    with boa.env.prank(loan.borrowers[1]), boa.reverts(NO_DEBT):
        pool.repay(loan.unit, loan.borrowers[1])
    with boa.env.prank(loan.stranger), boa.reverts(INSUFFICIENT_ALLOWANCE):
        pool.repay(loan.unit, borrower)  # no allowance, no funds


def test_repay_that_rounds_to_zero_scaled_debt_is_refused(world):
    """Only reachable once the index has grown past 1e6 (years at 100 % utilisation)."""
    pool, borrower = world.pool, world.borrowers[0]
    _deposit(world, world.lenders[0], 1_000 * world.unit)
    _supply(world, borrower, 1_000 * SHARE)
    _borrow(world, borrower, 1_000 * world.unit)  # 100 % utilisation: 312 % a year
    boa.env.time_travel(seconds=5 * YEAR)
    assert pool.borrow_index() > DEBT_SCALE
    with boa.env.prank(borrower), boa.reverts(REPAY_ROUNDS):
        pool.repay(1, borrower)
    debt = pool.position(borrower)[1]
    assert _repay(world, borrower, MAX_UINT) == debt
    assert pool.position(borrower)[1] == 0


# ---------------------------------------------------------------------------------
# Liquidate
# ---------------------------------------------------------------------------------


def _expected_seized(w: World, repaid: int, price: int) -> int:
    return repaid * INCENTIVE * PRICE_DEN // (WAD * price * w.unit)


def test_liquidation_boundary_is_the_liquidation_ltv(loan):
    pool, borrower, liquidator = loan.pool, loan.borrowers[0], loan.liquidator
    loan.fund(liquidator, 10**30)
    boa.env.time_travel(seconds=100)
    now = _now()
    collateral, debt, _ = pool.position(borrower)
    threshold = lending.price_for_ltv(_market(loan), collateral, debt, LLTV)
    with boa.env.anchor():
        assert loan.set_price(threshold + 1, observed_at=now)
        assert not lending.health(_market(loan), collateral, debt, threshold + 1).liquidatable
        with boa.env.prank(liquidator), boa.reverts(HEALTHY):
            pool.liquidate(borrower, MAX_UINT)
    with boa.env.anchor():
        assert loan.set_price(threshold, observed_at=now)
        assert lending.health(_market(loan), collateral, debt, threshold).liquidatable
        with boa.env.prank(liquidator):
            repaid, seized, bad = pool.liquidate(borrower, 1_000 * loan.unit)
        assert (repaid, bad) == (1_000 * loan.unit, 0)
        assert seized == _expected_seized(loan, repaid, threshold)


def test_healthy_loan_is_refused(loan):
    with boa.env.prank(loan.liquidator), boa.reverts(HEALTHY):
        loan.pool.liquidate(loan.borrowers[0], MAX_UINT)
    with boa.env.prank(loan.liquidator), boa.reverts(NO_DEBT):
        loan.pool.liquidate(loan.borrowers[1], MAX_UINT)
    with boa.env.prank(loan.liquidator), boa.reverts(ZERO_REPAY):
        loan.pool.liquidate(loan.borrowers[0], 0)


def test_partial_liquidation_above_lltv_exact_amounts(loan):
    pool, borrower, liquidator = loan.pool, loan.borrowers[0], loan.liquidator
    loan.fund(liquidator, 10**30)
    boa.env.time_travel(seconds=3_600)
    assert loan.set_price(12 * PRICE)  # 10,000 / 12,000 = 83.3 % > 80 %
    price = pool.price()
    collateral, debt, scaled = pool.position(borrower)
    assert lending.health(_market(loan), collateral, debt, price).liquidatable
    index = pool.borrow_index()
    supplied, reserves, total_debt, idle = pool.market()
    asset_before = loan.asset.balanceOf(liquidator)
    repay = 2_500 * loan.unit + 17
    with boa.env.prank(liquidator):
        repaid, seized, bad = pool.liquidate(borrower, repay)
    event = _event(pool, "Liquidated")
    assert repaid == repay and bad == 0
    assert seized == _expected_seized(loan, repay, price) == 221_631_207_180_851_063_789
    assert (event.borrower, event.liquidator, event.repaid, event.collateral_seized) == (
        borrower, liquidator, repaid, seized,
    )
    assert event.bad_debt == 0 and not _events(pool, "BadDebtWrittenOff")
    removed = repay * DEBT_SCALE // index
    assert pool.position(borrower) == (
        collateral - seized, _debt_of(scaled - removed, index), scaled - removed,
    )
    assert loan.token.balanceOf(liquidator) == seized
    assert loan.asset.balanceOf(liquidator) == asset_before - repay
    assert pool.total_collateral() == collateral - seized
    new_supplied, new_reserves, new_debt, new_idle = pool.market()
    assert (new_supplied, new_reserves) == (supplied, reserves)  # no loss to lenders
    assert new_idle == idle + repay
    assert new_debt == _debt_of(scaled - removed, index) <= total_debt - repay + 1
    # The liquidator received more value than they repaid: the incentive.
    seized_value = lending.collateral_value(_market(loan), seized, price)
    assert seized_value * WAD // repay >= INCENTIVE - 10**9


def test_liquidation_repaying_everything_leaves_no_bad_debt(loan):
    pool, borrower, liquidator = loan.pool, loan.borrowers[0], loan.liquidator
    loan.fund(liquidator, 10**30)
    assert loan.set_price(12 * PRICE)
    collateral, debt, _ = pool.position(borrower)
    with boa.env.prank(liquidator):
        repaid, seized, bad = pool.liquidate(borrower, MAX_UINT)
        assert not _events(pool, "BadDebtWrittenOff")
        assert _event(pool, "Liquidated").repaid == debt
    assert (repaid, bad) == (debt, 0)
    assert seized == _expected_seized(loan, debt, 12 * PRICE) < collateral
    assert pool.position(borrower) == (collateral - seized, 0, 0)
    assert pool.total_scaled_debt() == 0
    # The borrower keeps the rest and can take it without any price.
    with boa.env.prank(borrower):
        pool.withdraw_collateral(collateral - seized, borrower)


def test_full_liquidation_writes_off_bad_debt_against_the_lenders(loan):
    pool, borrower, liquidator = loan.pool, loan.borrowers[0], loan.liquidator
    loan.fund(liquidator, 10**30)
    boa.env.time_travel(seconds=86_400)
    assert loan.set_price(5 * PRICE)  # collateral worth 5,000 against ~10,000 of debt
    collateral, debt, scaled = pool.position(borrower)
    index = pool.borrow_index()
    supplied, reserves, _, idle = pool.market()
    assets_before = pool.totalAssets()
    with boa.env.prank(liquidator):
        repaid, seized, bad = pool.liquidate(borrower, MAX_UINT)
    per_repaid, per_seized = INCENTIVE * PRICE_DEN, WAD * 5 * PRICE * loan.unit
    assert seized == collateral
    # 5,000 tUSD of collateral / 1.0638: rounded up against the liquidator.
    assert repaid == _ceil_div(collateral * per_seized, per_repaid) == 4_700_000_001
    removed = repaid * DEBT_SCALE // index
    assert bad == _debt_of(scaled - removed, index)
    assert debt - repaid <= bad <= debt - repaid + 1
    written = _event(pool, "BadDebtWrittenOff")
    assert (written.borrower, written.assets, written.from_lenders, written.from_reserves) == (
        borrower, bad, bad, 0,
    )
    assert _event(pool, "Liquidated").bad_debt == bad
    assert pool.totalAssets() == assets_before - bad == supplied - bad
    assert pool.market() == (supplied - bad, reserves, 0, idle + repaid)
    assert pool.position(borrower) == (0, 0, 0)
    assert pool.total_scaled_debt() == 0 and pool.total_collateral() == 0
    assert loan.token.balanceOf(liquidator) == collateral


def test_bad_debt_beyond_the_lenders_assets_comes_from_reserves(world):
    pool, borrower, liquidator = world.pool, world.borrowers[0], world.liquidator
    _deposit(world, world.lenders[0], 1_000 * world.unit)
    _supply(world, borrower, 1_000 * SHARE)
    _borrow(world, borrower, 1_000 * world.unit)  # all of it: the reserves get lent out too
    boa.env.time_travel(seconds=YEAR // 4)
    assert world.set_price(1)  # the hub's lowest bound: 1e-8 USD per share
    supplied, reserves, debt, idle = pool.market()
    assert debt > supplied and reserves > 0 and idle == 0
    world.fund(liquidator, 10**30)
    with boa.env.prank(liquidator):
        repaid, seized, bad = pool.liquidate(borrower, MAX_UINT)
    assert seized == 1_000 * SHARE and repaid == 10  # 1,000 shares at 1e-8 USD / 1.0638
    assert debt - repaid <= bad <= debt - repaid + 1
    assert bad > supplied
    written = _event(pool, "BadDebtWrittenOff")
    assert written.assets == bad
    assert written.from_lenders == supplied  # the lenders first, all of their assets
    assert written.from_reserves == bad - supplied > 0  # the reserves only beyond them
    left = reserves - written.from_reserves
    assert pool.market() == (0, left, 0, left)
    assert pool.totalAssets() == 0
    assert left in (repaid - 1, repaid)  # the liquidator's repayment is all that is left


@pytest.mark.parametrize("who", ["stranger", "frozen"])
def test_ineligible_liquidator_is_refused_before_accrual(loan, who):
    pool, borrower = loan.pool, loan.borrowers[0]
    assert loan.set_price(12 * PRICE)  # liquidatable
    if who == "stranger":
        liquidator, reason = loan.stranger, message(Restriction.RECEIVER_NOT_REGISTERED)
    else:
        liquidator, reason = loan.liquidator, message(Restriction.RECEIVER_FROZEN)
        _freeze(loan, liquidator)
    loan.fund(liquidator, 10**30)
    boa.env.time_travel(seconds=600)  # interest pending: an accrual would show
    before = _state(loan, borrower, liquidator)
    stored_rates = pool._storage._rates.get()
    error = _refused(lambda: _liquidate_as(pool, liquidator, borrower), reason)
    assert _state(loan, borrower, liquidator) == before
    assert pool._storage._rates.get() == stored_rates
    assert pool.borrow_index() > stored_rates % 2**192  # the pending interest is still pending
    # The pool only asked the share token (restriction code and message): no rate model,
    # no feed, no asset: the refusal came before the accrual and the price.
    called = {str(child.address) for child in error.call_trace.children}
    assert called == {str(loan.token.address)}
    # An eligible liquidator goes through in the same state.
    other = loan.liquidator if who == "stranger" else loan.borrowers[2]
    loan.fund(other, 10**30)
    assert _liquidate_as(pool, other, borrower)[0] == 1_000 * loan.unit


def _liquidate_as(pool, liquidator, borrower):
    with boa.env.prank(liquidator):
        return pool.liquidate(borrower, 1_000 * 10**6)


def test_liquidation_refused_with_a_stale_price(loan):
    pool = loan.pool
    assert loan.set_price(12 * PRICE)
    loan.fund(loan.liquidator, 10**30)
    boa.env.time_travel(seconds=HEARTBEAT + 1)
    before = _state(loan, loan.borrowers[0], loan.liquidator)
    with boa.env.prank(loan.liquidator), boa.reverts(STALE):
        pool.liquidate(loan.borrowers[0], MAX_UINT)
    assert _state(loan, loan.borrowers[0], loan.liquidator) == before


def test_liquidation_continues_while_paused(loan):
    pool = loan.pool
    assert loan.set_price(12 * PRICE)
    loan.fund(loan.liquidator, 10**30)
    with boa.env.prank(loan.admin):
        pool.set_paused(True)
    with boa.env.prank(loan.liquidator):
        repaid, seized, _ = pool.liquidate(loan.borrowers[0], 1_000 * loan.unit)
    assert repaid == 1_000 * loan.unit and seized == _expected_seized(loan, repaid, 12 * PRICE)


def test_liquidation_of_a_frozen_borrower_still_works(loan):
    """Freezing the borrower does not shield the loan: the shares go pool -> liquidator."""
    assert loan.set_price(12 * PRICE)
    _freeze(loan, loan.borrowers[0])
    loan.fund(loan.liquidator, 10**30)
    with boa.env.prank(loan.liquidator):
        _, seized, _ = loan.pool.liquidate(loan.borrowers[0], 1_000 * loan.unit)
    assert loan.token.balanceOf(loan.liquidator) == seized > 0


# ---------------------------------------------------------------------------------
# Collateral income
# ---------------------------------------------------------------------------------


class Twins:
    """Each borrower's twin holds directly, at every distribution, exactly the shares the
    borrower has in the pool; the twin's income is what the borrower is owed."""

    def __init__(self, w: World, borrowers):
        self.w = w
        self.bank = w.operator
        self.twins = {b: boa.env.generate_address(f"twin-{i}") for i, b in enumerate(borrowers)}
        w.register(*self.twins.values())
        self.paid = dict.fromkeys(borrowers, 0)
        self.twin_paid = dict.fromkeys(borrowers, 0)
        self.claims = dict.fromkeys(borrowers, 0)
        with boa.env.prank(self.bank):
            w.token.mint(self.bank, 3_000 * SHARE)

    def supply(self, borrower, shares):
        _supply(self.w, borrower, shares)
        with boa.env.prank(self.bank):
            self.w.token.transfer(self.twins[borrower], shares)

    def removed(self, borrower, shares):
        """The borrower's pool position lost `shares` (withdrawal or liquidation)."""
        with boa.env.prank(self.twins[borrower]):
            self.w.token.transfer(self.bank, shares)

    def claim(self, borrower):
        owed = self.w.pool.income_owed(borrower)
        with boa.env.prank(borrower):
            paid = self.w.pool.claim_income()
        event = _event(self.w.pool, "CollateralIncomeClaimed")
        assert paid == owed and (event.borrower, event.amount) == (borrower, paid)
        with boa.env.prank(self.twins[borrower]):
            self.twin_paid[borrower] += self.w.token.claim()
        self.paid[borrower] += paid
        self.claims[borrower] += 1

    def check(self):
        for borrower, twin in self.twins.items():
            ours = self.paid[borrower] + self.w.pool.income_owed(borrower)
            direct = self.twin_paid[borrower] + self.w.token.claimable(twin)
            assert abs(ours - direct) <= self.claims[borrower] + 1, borrower


def test_collateral_income_belongs_to_the_borrowers_as_if_held_directly(world):
    w, pool = world, world.pool
    b0, b1, b2 = w.borrowers
    _deposit(w, w.lenders[0], 100_000 * w.unit)
    twins = Twins(w, w.borrowers)
    twins.supply(b0, 600 * SHARE)
    twins.supply(b1, 1_000 * SHARE)
    _distribute(w, 1_234_567_891)
    twins.check()
    assert pool.income_owed(b0) > 0 and pool.income_owed(b2) == 0
    boa.env.time_travel(seconds=86_400)
    assert w.set_price(15 * PRICE)
    twins.supply(b2, 900 * SHARE)  # joins late: nothing from the first distribution
    twins.supply(b1, 400 * SHARE)
    assert pool.income_owed(b2) == 0
    _distribute(w, 777_777_777)
    twins.check()
    with boa.env.prank(b0):
        pool.withdraw_collateral(250 * SHARE, b0)
    twins.removed(b0, 250 * SHARE)
    twins.claim(b0)
    twins.check()
    _distribute(w, 3_333_333_333)
    twins.check()
    # b1 borrows, the NAV falls and a liquidator seizes part of b1's collateral.
    _borrow(w, b1, 14_000 * w.unit)
    assert w.set_price(12 * PRICE)
    w.fund(w.liquidator, 10**30)
    with boa.env.prank(w.liquidator):
        _, seized, _ = pool.liquidate(b1, 3_000 * w.unit)
    twins.removed(b1, seized)
    twins.check()
    ips_before = w.token.income_per_share()
    _distribute(w, 999_999_999)
    twins.check()
    # The liquidator earns on the seized shares only from their receipt on.
    assert w.token.claimable(w.liquidator) == seized * (
        w.token.income_per_share() - ips_before
    ) // MAGNITUDE
    for borrower in w.borrowers:
        twins.claim(borrower)
    twins.check()
    assert all(pool.income_owed(b) == 0 for b in w.borrowers)
    # The pool paid out no more than it took from the token; the dust stays in the pool.
    assert pool.income_held() + w.token.claimable(pool.address) <= 3
    assert sum(twins.paid.values()) > 0


def test_liquidation_keeps_income_earned_before_with_the_borrower(loan):
    pool, borrower = loan.pool, loan.borrowers[0]
    assert loan.token.totalSupply() == 1_000 * SHARE  # all of it in the pool
    _distribute(loan, 8_000 * loan.unit)
    assert pool.income_owed(borrower) == 8_000 * loan.unit
    assert loan.set_price(12 * PRICE)
    loan.fund(loan.liquidator, 10**30)
    with boa.env.prank(loan.liquidator):
        _, seized, _ = pool.liquidate(borrower, 5_000 * loan.unit)
    assert pool.income_owed(borrower) == 8_000 * loan.unit  # unchanged by the seizure
    assert loan.token.claimable(loan.liquidator) == 0
    _distribute(loan, 1_000 * loan.unit)
    remaining = 1_000 * SHARE - seized
    expected = 8_000 * loan.unit + 1_000 * loan.unit * remaining // (1_000 * SHARE)
    assert abs(pool.income_owed(borrower) - expected) <= 1
    on_seized = 1_000 * loan.unit * seized // (1_000 * SHARE)
    assert abs(loan.token.claimable(loan.liquidator) - on_seized) <= 1


def test_pool_claims_income_from_the_token_lazily(world):
    pool, b0, b1 = world.pool, world.borrowers[0], world.borrowers[1]
    _supply(world, b0, 600 * SHARE)
    _supply(world, b1, 1_400 * SHARE)
    with boa.env.prank(world.operator):
        world.token.mint(world.operator, 2_000 * SHARE)
    ips = world.token.income_per_share()
    _distribute(world, 4_000 * world.unit + 3)  # $1 a share, plus dust
    step = world.token.income_per_share() - ips
    assert pool.income_held() == 0
    in_pool = world.token.claimable(pool.address)
    assert in_pool == 2_000 * SHARE * step // MAGNITUDE == 2_000 * world.unit + 1
    owed0, owed1 = pool.income_owed(b0), pool.income_owed(b1)
    assert owed0 == 600 * SHARE * step // MAGNITUDE == 600 * world.unit
    assert owed1 == 1_400 * SHARE * step // MAGNITUDE == 1_400 * world.unit + 1
    with boa.env.prank(b0):
        assert pool.claim_income() == owed0
    token_claim = _event(pool, "IncomeClaimed")  # the token's event, in the pool's call
    assert (token_claim.holder, token_claim.amount) == (pool.address, in_pool)
    assert world.token.claimable(pool.address) == 0
    assert pool.income_held() == in_pool - owed0
    claimed_total = world.token.total_claimed()
    with boa.env.prank(b1):
        assert pool.claim_income() == owed1
        assert not _events(pool, "IncomeClaimed")  # paid from what was held
        assert _event(pool, "CollateralIncomeClaimed").amount == owed1
    assert world.token.total_claimed() == claimed_total
    assert pool.income_held() == in_pool - owed0 - owed1 == 0
    assert world.asset.balanceOf(b0) == owed0 and world.asset.balanceOf(b1) == owed1
    with boa.env.prank(b0), boa.reverts(NO_INCOME):
        pool.claim_income()
    # A wallet the rules do not let hold the shares takes no income out (issue 17).
    with boa.env.prank(world.stranger), boa.reverts(message(Restriction.RECEIVER_NOT_REGISTERED)):
        pool.claim_income()
    # The income held never mixes with the lenders' accounting.
    assert pool.market() == (0, 0, 0, 0)


# ---------------------------------------------------------------------------------
# Reserves
# ---------------------------------------------------------------------------------


def test_collect_reserves_pays_the_treasury_only(loan):
    pool = loan.pool
    boa.env.time_travel(seconds=YEAR // 2)
    _repay(loan, loan.borrowers[0], MAX_UINT)
    reserves = pool.market()[1]
    assert reserves > 0
    with boa.env.prank(loan.stranger):  # anyone may call; the assets go to the treasury
        assert pool.collect_reserves(reserves // 3) == reserves // 3
        event = _event(pool, "ReservesCollected")
        assert (event.treasury, event.amount) == (loan.treasury, reserves // 3)
        assert pool.collect_reserves(MAX_UINT) == reserves - reserves // 3
        with boa.reverts(NO_RESERVES):
            pool.collect_reserves(MAX_UINT)
    assert loan.asset.balanceOf(loan.treasury) == reserves
    assert loan.asset.balanceOf(loan.stranger) == 0
    assert pool.market()[1] == 0
    with boa.reverts(NO_RESERVES):
        pool.collect_reserves(0)


def test_collect_reserves_is_limited_by_idle_liquidity(world):
    pool = world.pool
    _deposit(world, world.lenders[0], 1_000 * world.unit)
    _supply(world, world.borrowers[0], 1_000 * SHARE)
    _borrow(world, world.borrowers[0], 1_000 * world.unit)
    boa.env.time_travel(seconds=30 * 86_400)
    supplied, reserves, debt, idle = pool.market()
    assert reserves > 0 and idle == 0
    with boa.reverts(NO_RESERVES):
        pool.collect_reserves(MAX_UINT)
    _repay(world, world.borrowers[0], 7)
    idle = pool.market()[3]
    assert idle in (6, 7)  # the scaled debt removed is rounded down
    assert pool.collect_reserves(MAX_UINT) == idle
    assert world.asset.balanceOf(world.treasury) == idle
    assert pool.market()[1] == reserves - idle and pool.market()[3] == 0


def test_collect_reserves_follows_a_new_treasury(loan):
    pool = loan.pool
    boa.env.time_travel(seconds=YEAR // 4)
    _repay(loan, loan.borrowers[0], 5_000 * loan.unit)
    with boa.env.prank(loan.admin):
        pool.set_risk_parameters(MAX_LTV, 1_000, loan.stranger)
    paid = pool.collect_reserves(MAX_UINT)
    assert paid > 0 and loan.asset.balanceOf(loan.stranger) == paid
    assert loan.asset.balanceOf(loan.treasury) == 0


# ---------------------------------------------------------------------------------
# Risk parameters, pause, roles
# ---------------------------------------------------------------------------------


def test_set_risk_parameters_role_bounds_and_event(world):
    pool, admin = world.pool, world.admin
    with boa.env.prank(world.stranger), boa.reverts(MISSING_ROLE):
        pool.set_risk_parameters(MAX_LTV, 1_000, world.treasury)
    with boa.env.prank(admin):
        for max_ltv in (0, LLTV, LLTV + 1, 2**64 - 1):
            with boa.reverts(BAD_MAX_LTV):
                pool.set_risk_parameters(max_ltv, 1_000, world.treasury)
        with boa.reverts(BAD_RESERVE):
            pool.set_risk_parameters(MAX_LTV, 5_001, world.treasury)
        with boa.reverts(ZERO_TREASURY):
            pool.set_risk_parameters(MAX_LTV, 1_000, ZERO)
        pool.set_risk_parameters(LLTV - 1, 5_000, world.stranger)
        event = _event(pool, "RiskParametersChanged")
    assert (event.max_ltv, event.reserve_factor_bps, event.treasury, event.admin) == (
        LLTV - 1, 5_000, world.stranger, admin,
    )
    assert (pool.max_ltv(), pool.reserve_factor_bps(), pool.treasury()) == (
        LLTV - 1, 5_000, world.stranger,
    )
    # A separate risk admin may do it; the role is what counts.
    with boa.env.prank(admin):
        pool.grantRole(RISK_ADMIN_ROLE, world.lenders[2])
    with boa.env.prank(world.lenders[2]):
        pool.set_risk_parameters(1, 0, world.treasury)
    assert (pool.max_ltv(), pool.reserve_factor_bps()) == (1, 0)


def test_set_risk_parameters_keeps_the_pause(world):
    pool = world.pool
    with boa.env.prank(world.admin):
        pool.set_paused(True)
        pool.set_risk_parameters(60 * WAD // 100, 2_000, world.treasury)
    assert pool.paused()
    assert (pool.max_ltv(), pool.reserve_factor_bps()) == (60 * WAD // 100, 2_000)


def test_set_risk_parameters_accrues_at_the_old_reserve_factor_first(loan):
    pool = loan.pool
    boa.env.time_travel(seconds=20 * 86_400)
    supplied, reserves, debt, _ = pool.market()
    interest = debt - 10_000 * loan.unit
    with boa.env.prank(loan.admin):
        pool.set_risk_parameters(MAX_LTV, 5_000, loan.treasury)
    accrued = _event(pool, "InterestAccrued")
    assert accrued.interest == interest
    assert accrued.to_reserves == interest * 1_000 // 10_000  # the old 10 %
    assert pool.market()[1] == reserves
    # Interest from now on goes 50 % to the reserves.
    boa.env.time_travel(seconds=20 * 86_400)
    pool.accrue_interest()
    later = _event(pool, "InterestAccrued")
    assert later.to_reserves == later.interest * 5_000 // 10_000
    assert pool.market()[1] == reserves + later.to_reserves


def test_new_max_ltv_applies_to_borrowing(loan):
    pool, borrower = loan.pool, loan.borrowers[0]
    with boa.env.prank(loan.admin):
        pool.set_risk_parameters(60 * WAD // 100, 1_000, loan.treasury)
    # 10,000 of debt against 15,000 of value is above 60 %: no more borrowing...
    with boa.env.prank(borrower), boa.reverts(ABOVE_MAX_LTV_BORROW):
        pool.borrow(1, borrower)
    # ...and no withdrawal, but the loan is not liquidatable (the LLTV is immutable).
    with boa.env.prank(borrower), boa.reverts(ABOVE_MAX_LTV_WITHDRAW):
        pool.withdraw_collateral(1, borrower)
    with boa.env.prank(loan.liquidator), boa.reverts(HEALTHY):
        pool.liquidate(borrower, MAX_UINT)


def test_set_paused_role_events_and_unchanged_state(world):
    pool = world.pool
    assert not pool.paused()
    with boa.env.prank(world.stranger), boa.reverts(MISSING_ROLE):
        pool.set_paused(True)
    with boa.env.prank(world.admin):
        with boa.reverts(PAUSE_UNCHANGED):
            pool.set_paused(False)
        pool.set_paused(True)
        ev = _event(pool, "PauseChanged")
        assert (ev.paused, ev.account) == (True, world.admin)
        assert pool.paused()
        with boa.reverts(PAUSE_UNCHANGED):
            pool.set_paused(True)
        pool.grantRole(GUARDIAN_ROLE, world.lenders[2])
    with boa.env.prank(world.lenders[2]):
        pool.set_paused(False)
        ev = _event(pool, "PauseChanged")
        assert (ev.paused, ev.account) == (False, world.lenders[2])
    assert not pool.paused()
    assert (pool.max_ltv(), pool.reserve_factor_bps()) == (MAX_LTV, 1_000)  # untouched
    with boa.env.prank(world.admin):
        pool.revokeRole(GUARDIAN_ROLE, world.lenders[2])
    with boa.env.prank(world.lenders[2]), boa.reverts(MISSING_ROLE):
        pool.set_paused(True)


def test_pause_blocks_only_borrow_and_collateral_withdrawal(loan):
    pool, lender, borrower = loan.pool, loan.lenders[0], loan.borrowers[0]
    _deposit(loan, loan.lenders[1], 10 * loan.unit)
    _supply(loan, loan.borrowers[1], 10 * SHARE)
    _distribute(loan, 1_000 * loan.unit)
    boa.env.time_travel(seconds=86_400)
    with boa.env.prank(loan.admin):
        pool.set_paused(True)
    with boa.env.prank(borrower):
        with boa.reverts(PAUSED):
            pool.borrow(1, borrower)
        with boa.reverts(PAUSED):
            pool.withdraw_collateral(1, borrower)
    # Everything else continues.
    _deposit(loan, lender, 1_000 * loan.unit)
    loan.fund(lender, 10**12)
    with boa.env.prank(lender):
        pool.mint(10**12, lender)
        pool.withdraw(500 * loan.unit, lender, lender)
        pool.redeem(10**12, lender, lender)
    _supply(loan, borrower, 10 * SHARE)
    _repay(loan, borrower, 100 * loan.unit)
    with boa.env.prank(borrower):
        assert pool.claim_income() > 0
    assert pool.collect_reserves(MAX_UINT) > 0
    pool.accrue_interest()
    assert loan.set_price(12 * PRICE)
    loan.fund(loan.liquidator, 10**30)
    with boa.env.prank(loan.liquidator):
        assert pool.liquidate(borrower, 100 * loan.unit)[0] == 100 * loan.unit
    assert pool.paused()


def test_roles_are_administered_by_the_admin(world):
    pool = world.pool
    assert pool.RISK_ADMIN_ROLE() == RISK_ADMIN_ROLE
    assert pool.GUARDIAN_ROLE() == GUARDIAN_ROLE
    assert pool.DEFAULT_ADMIN_ROLE() == DEFAULT_ADMIN_ROLE
    with boa.env.prank(world.stranger):
        for role in (DEFAULT_ADMIN_ROLE, RISK_ADMIN_ROLE, GUARDIAN_ROLE):
            with boa.reverts(MISSING_ROLE):
                pool.grantRole(role, world.stranger)
    with boa.env.prank(world.admin):
        pool.renounceRole(GUARDIAN_ROLE, world.admin)
    assert not pool.hasRole(GUARDIAN_ROLE, world.admin)
    with boa.env.prank(world.admin), boa.reverts(MISSING_ROLE):
        pool.set_paused(True)


# ---------------------------------------------------------------------------------
# Interest
# ---------------------------------------------------------------------------------


def test_no_interest_without_debt(world):
    pool = world.pool
    _deposit(world, world.lenders[0], 1_000 * world.unit)
    boa.env.time_travel(seconds=YEAR)
    pool.accrue_interest()
    assert not _events(pool, "InterestAccrued")
    assert pool.borrow_index() == WAD
    assert pool.totalAssets() == 1_000 * world.unit
    assert pool._storage._rates.get() >> 192 == _now()  # the clock still moves


def test_interest_at_a_constant_rate_compounds_continuously():
    rate_per_year = 10 * WAD // 100
    w = build_world(rates=(rate_per_year, 0, 0, WAD // 2), label="flat")
    pool, borrower = w.pool, w.borrowers[0]
    rate = rate_per_year // YEAR
    assert w.model.borrow_rate(1, 1) == w.model.borrow_rate(1, 0) == rate
    _deposit(w, w.lenders[0], 100_000 * w.unit)
    _supply(w, borrower, 1_000 * SHARE)
    scaled = _borrow(w, borrower, 7_777 * w.unit + 123)
    start = _now()
    elapsed = 0
    for step in (1, 59, 3_600, 86_400, 30 * 86_400, YEAR):
        boa.env.time_travel(seconds=step)
        elapsed += step
        if step == 86_400:
            pool.accrue_interest()  # accruing in between changes nothing beyond rounding
        index = pool.borrow_index()
        growth = CTX.exp(CTX.divide(Decimal(rate * (_now() - start)), Decimal(WAD)))
        exact = CTX.multiply(Decimal(WAD), growth)
        error = CTX.divide(abs(CTX.subtract(Decimal(index), exact)), exact)
        assert error < Decimal("1e-15"), step
        assert pool.position(borrower)[1] == _debt_of(scaled, index)
        assert pool.market()[2] == _debt_of(scaled, index)
        exact_debt = CTX.divide(CTX.multiply(Decimal(scaled), exact), Decimal(DEBT_SCALE))
        debt_error = abs(CTX.subtract(Decimal(pool.position(borrower)[1]), exact_debt))
        assert debt_error <= CTX.multiply(exact_debt, Decimal("1e-15")) + 1
    assert _now() - start == elapsed
    pool.accrue_interest()
    assert _event(pool, "InterestAccrued").borrow_index == pool.borrow_index()


def test_reserve_factor_split_is_exact(loan):
    pool = loan.pool
    for seconds in (1, 13, 86_400, 7 * 86_400 + 1):
        boa.env.time_travel(seconds=seconds)
        supplied, reserves, debt, idle = pool.market()
        stored_supply = pool._storage._supply.get()
        total_scaled = pool.total_scaled_debt()
        debt_before = _debt_of(total_scaled, pool._storage._rates.get() & (2**192 - 1))
        pool.accrue_interest()
        event = _event(pool, "InterestAccrued")
        assert event.interest == _debt_of(total_scaled, event.borrow_index) - debt_before
        assert event.to_reserves == event.interest * 1_000 // 10_000
        assert (stored_supply & MASK128) + event.interest - event.to_reserves == supplied
        assert (stored_supply >> 128) + event.to_reserves == reserves
        # The views saw the pending interest exactly; the accrual wrote the same numbers.
        assert pool.market() == (supplied, reserves, debt, idle)
        assert idle == supplied + reserves - debt  # interest moves both sides alike


def test_accrue_interest_is_idempotent_within_a_block(loan):
    pool = loan.pool
    boa.env.time_travel(seconds=1_000)
    pool.accrue_interest()
    state = _state(loan, loan.borrowers[0])
    pool.accrue_interest()
    assert not _events(pool, "InterestAccrued")
    assert _state(loan, loan.borrowers[0]) == state


def test_price_view(world):
    assert world.pool.price() == 15 * PRICE
    assert world.set_price(14 * PRICE + 1)
    assert world.pool.price() == 14 * PRICE + 1
    boa.env.time_travel(seconds=HEARTBEAT + 1)
    with boa.reverts(STALE):
        world.pool.price()


# ---------------------------------------------------------------------------------
# Compliance findings
# ---------------------------------------------------------------------------------


def test_frozen_borrower_cannot_move_collateral_to_another_wallet(world):
    # The pool checks the move as if the borrower sent the shares itself (found by this
    # test: the token alone only sees pool -> receiver).
    pool, borrower, accomplice = world.pool, world.borrowers[0], world.borrowers[1]
    _supply(world, borrower, 1_000 * SHARE)
    _freeze(world, borrower)
    # Directly, the frozen wallet can send nothing.
    with boa.env.prank(borrower), boa.reverts(message(Restriction.SENDER_FROZEN)):
        world.token.transfer(accomplice, 0)
    with boa.env.prank(borrower), boa.reverts(message(Restriction.SENDER_FROZEN)):
        pool.withdraw_collateral(500 * SHARE, accomplice)
    with boa.env.prank(borrower), boa.reverts(message(Restriction.SENDER_FROZEN)):
        pool.withdraw_collateral(500 * SHARE, borrower)
    assert world.token.balanceOf(accomplice) == 0
    assert pool.position(borrower)[0] == 1_000 * SHARE


def test_frozen_borrower_cannot_claim_collateral_income(world):
    # As GPUShareToken.claim refuses a frozen wallet (found by this test); the income
    # keeps accruing and is paid once the wallet is unfrozen.
    pool, borrower = world.pool, world.borrowers[0]
    _supply(world, borrower, 1_000 * SHARE)
    _distribute(world, 1_000 * world.unit)
    _freeze(world, borrower)
    with boa.env.prank(borrower), boa.reverts(message(Restriction.RECEIVER_FROZEN)):
        pool.claim_income()
    assert world.asset.balanceOf(borrower) == 0
    with boa.env.prank(world.kyc):
        world.registry.set_wallet_frozen(borrower, False)
    with boa.env.prank(borrower):
        assert pool.claim_income() == 1_000 * world.unit


def test_frozen_borrower_cannot_borrow_but_can_repay(world):
    # Borrowing moves no shares, so the token's rules never see it: the pool asks the
    # registry itself. Repaying only lowers the pool's risk, and stays open.
    pool, borrower = world.pool, world.borrowers[0]
    _deposit(world, world.lenders[0], 10_000 * world.unit)
    _supply(world, borrower, 1_000 * SHARE)
    _borrow(world, borrower, 100 * world.unit)
    _freeze(world, borrower)
    before = pool.position(borrower)
    with boa.env.prank(borrower), boa.reverts(message(Restriction.RECEIVER_FROZEN)):
        pool.borrow(1 * world.unit, borrower)
    assert pool.position(borrower) == before
    _repay(world, borrower, 2**256 - 1)
    assert pool.position(borrower)[1] == 0


# ---------------------------------------------------------------------------------
# Other markets: an 18-decimal loan asset, a model above the pool's rate cap
# ---------------------------------------------------------------------------------


def test_borrow_and_liquidation_with_an_18_decimal_asset():
    w = build_world(asset_decimals=18, label="dec18")
    pool, borrower = w.pool, w.borrowers[0]
    assert w.unit == 10**18 and pool.decimals() == 24
    _deposit(w, w.lenders[0], 100_000 * w.unit)
    collateral = 987_654_321_987_654_321_987
    _supply(w, borrower, collateral)
    limit = lending.collateral_value(_market(w), collateral, 15 * PRICE) * MAX_LTV // WAD
    assert limit == collateral * 15 * PRICE * w.unit // PRICE_DEN * MAX_LTV // WAD
    with boa.env.prank(borrower):
        with boa.reverts(ABOVE_MAX_LTV_BORROW):
            pool.borrow(limit + 1, borrower)
        pool.borrow(limit, borrower)
    assert w.set_price(12 * PRICE)
    w.fund(w.liquidator, 10**40)
    repay = 1_234 * w.unit + 5
    with boa.env.prank(w.liquidator):
        repaid, seized, bad = pool.liquidate(borrower, repay)
    assert (repaid, bad) == (repay, 0)
    assert seized == repay * INCENTIVE * PRICE_DEN // (WAD * 12 * PRICE * w.unit)


MODEL_ABOVE_THE_CAP = """
# pragma version ~=0.4.3

@external
@view
def borrow_rate(total_supplied: uint256, total_borrowed: uint256) -> uint256:
    return 10**30
"""


def test_rate_above_the_cap_is_capped_at_1000_percent_a_year(world):
    model = boa.loads(MODEL_ABOVE_THE_CAP)
    with boa.env.prank(world.admin):
        address = world.factory.create_market(
            world.asset.address, world.token.address, world.feed.address, model.address, LLTV,
            MAX_LTV, 1_000, world.treasury, "capped", "cap",
        )
    pool = deployers.LENDING_POOL.at(address)
    world.register(pool.address)
    world.pool = pool
    _deposit(world, world.lenders[0], 100_000 * world.unit)
    _supply(world, world.borrowers[0], 1_000 * SHARE)
    _borrow(world, world.borrowers[0], 1_000 * world.unit)
    cap = 10 * WAD // YEAR
    start = _now()
    boa.env.time_travel(seconds=86_400)
    exact = CTX.multiply(
        Decimal(WAD), CTX.exp(CTX.divide(Decimal(cap * (_now() - start)), Decimal(WAD)))
    )
    index = pool.borrow_index()
    assert CTX.divide(abs(CTX.subtract(Decimal(index), exact)), exact) < Decimal("1e-15")
    assert index < WAD * 1_028 // 1_000  # 1,000 % a year for a day: +2.78 %, not 10**30
