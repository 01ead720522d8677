"""Stateful fuzzing of LendingPool in the full suite (`pool_helpers.build_world`): three
lenders, three borrowers, a liquidator that is also the keeper, the SPV operator paying
rental income, and the NAV oracle moving the collateral price.

Rules: deposit / mint / withdraw / redeem (amounts drawn relative to the lender's balance
or claim, over it too), supply / withdraw collateral, borrow (relative to the headroom
that `gpushares.lending` computes), repay (partial, exact, `2**256 - 1`, by the borrower or
someone else), liquidate, a keeper pass that liquidates every loan `gpushares.lending`
calls liquidatable, reserve collection, price moves up and down through the signed hub,
time travel (seconds to months, the price refreshed unless the rule lets it go stale) and
rental income (distributed by the operator, claimed by borrowers). Every call's outcome
is predicted first, from the pool's views and the Python health mirror: a call either
succeeds with exactly the predicted result or reverts with exactly the predicted reason.
So "borrow succeeds iff the loan stays within max LTV and the pool has the liquidity" and
"liquidation succeeds iff `gpushares.lending` says liquidatable" are checked on every try.

Invariants (after every step): the pool's assets cover the lenders' claims and the
reserves, and idle liquidity never exceeds what it holds (income it holds for borrowers
excluded: the income token is the loan asset); the borrowers' rounded-up debts add up to
the total debt within one wei each and never below it; the borrow index never decreases;
collateral adds up (positions, `total_collateral`, the pool's share balance); collateral
income owed to borrowers is covered by the income the pool holds and can claim.

Speed: each machine deploys its world once, into its own `boa.Env`, and every example
runs inside an anchor of that env (reverted at teardown), like the oracle machine. The
anchor also rolls back the clock, so the World's Python-side `last_observed` is restored
with it. Two machines share the rules: a 6-decimal and an 18-decimal loan asset."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import boa
import hypothesis
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gpushares import lending, reasons
from tests.budgets import budget
from tests.contracts.helpers import SHARE
from tests.contracts.pool_helpers import (
    ABOVE_MAX_LTV_BORROW,
    ABOVE_MAX_LTV_WITHDRAW,
    DEBT_SCALE,
    EXCEEDS_COLLATERAL,
    HEALTHY,
    MAX_UINT,
    NO_DEBT,
    NO_IDLE,
    NO_INCOME,
    NO_LIQUIDITY,
    NO_RESERVES,
    PAUSED,
    PRICE,
    REPAY_ROUNDS,
    STALE,
    WAD,
    ZERO_REDEEM,
    ZERO_SHARES,
    World,
    build_world,
)

HEARTBEAT = 86_400  # build_world's default feed heartbeat
DAY = 86_400
N_LENDERS = N_BORROWERS = 3
LENDER_FUNDS = 200_000  # whole asset units, each
BORROWER_FUNDS = 2_000
LIQUIDATOR_FUNDS = 10**9
OPERATOR_FUNDS = 10**9
COLLATERAL_EACH = 2_000 * SHARE  # of the token's 8,000-share cap
OPERATOR_SHARES = 1_000 * SHARE  # so income is shared with a holder outside the pool
PRICE_MIN, PRICE_MAX = PRICE // 100, 1_000 * PRICE

MINT_ZERO = reasons.POOL_MINT_ZERO_SHARES
WITHDRAW_ZERO = reasons.POOL_WITHDRAWAL_ZERO
COLLATERAL_ZERO = reasons.POOL_ZERO_COLLATERAL
BORROW_ZERO = reasons.POOL_BORROW_ZERO
REPAY_ZERO = reasons.POOL_REPAY_ZERO
ROUNDS_TO_NOTHING = reasons.POOL_LIQUIDATION_ROUNDS_NOTHING
BURN_EXCEEDS = "erc20: burn amount exceeds balance"
PAUSE_UNCHANGED = reasons.POOL_PAUSE_UNCHANGED

# (kind, value): a portion of some total the rule reads from the chain.
portions = st.one_of(
    st.sampled_from([("all", 0), ("all", 0), ("half", 0)]),
    st.tuples(st.just("bps"), st.integers(1, 10_000)),
    st.tuples(st.just("wei"), st.integers(0, 3)),
    st.tuples(st.just("over"), st.sampled_from([1, 2, 10**6])),
)
actors = st.integers(0, N_BORROWERS - 1)
price_moves = st.one_of(
    st.integers(-500, 500),  # bps: day-to-day noise
    st.integers(-8_000, -1_000),  # a crash (liquidations, bad debt)
    st.integers(1_000, 10_000),  # a rally
)
waits = st.sampled_from([1, 60, 3_600, DAY, 7 * DAY, 30 * DAY, 90 * DAY])


def portion(p: tuple[str, int], total: int) -> int:
    kind, value = p
    if kind == "all":
        return total
    if kind == "half":
        return total // 2
    if kind == "bps":
        return total * value // 10_000
    if kind == "wei":
        return value
    return total + value


def debt_of(scaled: int, index: int) -> int:
    """The pool's `_debt_of`: rounded up."""
    return -(-scaled * index // DEBT_SCALE)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class Built:
    env: boa.Env
    world: World
    last_observed: int


_WORLDS: dict[int, Built] = {}


def _build(decimals: int) -> Built:
    env = boa.Env()
    with boa.swap_env(env):
        boa.env.enable_fast_mode()
        w = build_world(asset_decimals=decimals, label=f"sm-pool-{decimals}")
        for lender in w.lenders:
            w.fund(lender, LENDER_FUNDS * w.unit)
        for borrower in w.borrowers:
            w.give_shares(borrower, COLLATERAL_EACH)
            w.fund(borrower, BORROWER_FUNDS * w.unit)
        w.give_shares(w.operator, OPERATOR_SHARES)
        w.fund(w.liquidator, LIQUIDATOR_FUNDS * w.unit)
        w.asset.mint(w.operator, OPERATOR_FUNDS * w.unit)
        with boa.env.prank(w.operator):
            w.asset.approve(w.token.address, MAX_UINT)
    return Built(env, w, w.last_observed)


def world(decimals: int) -> Built:
    if decimals not in _WORLDS:
        _WORLDS[decimals] = _build(decimals)
    return _WORLDS[decimals]


class PoolMachine(RuleBasedStateMachine):
    DECIMALS = 6

    # ------------------------------------------------------------ setup

    @initialize(seed=st.sampled_from([True] * 4 + [False]),
                deposits=st.lists(st.integers(1, 10_000), min_size=3, max_size=3),
                loans=st.lists(st.sampled_from([0, 2_000, 5_000, 8_000, 9_500, 10_000]),
                               min_size=3, max_size=3))
    def deploy(self, seed, deposits, loans):
        built = world(self.DECIMALS)
        self._built = built
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(boa.swap_env(built.env))
        self._stack.enter_context(built.env.anchor())  # reverted at teardown
        boa.env.sha3_trace = {}
        boa.env.sstore_trace = {}
        w = self.w = built.world
        w.last_observed = built.last_observed
        self.pool, self.asset, self.token = w.pool, w.asset, w.token
        self.market = lending.Market(
            asset_decimals=self.DECIMALS, feed_decimals=w.feed.decimals(),
            lltv=self.pool.lltv(), max_ltv=self.pool.max_ltv(),
        )
        self.incentive = self.pool.liquidation_incentive()
        assert self.incentive == lending.liquidation_incentive(self.market.lltv)
        self.price = self.pool.price()
        self.shares = [0] * N_LENDERS  # vault shares per lender (model)
        self.collateral = [0] * N_BORROWERS  # collateral per borrower (model)
        self.last_index = self.pool.borrow_index()
        self.steps = 0
        self.paused = False
        self.debt_ops = 0  # successful borrows, repays and liquidations
        if seed:
            # Start most examples from a busy pool, so 30-40 steps reach deep states.
            for i, bps in enumerate(deposits):
                self._deposit(i, ("bps", bps))
            for i, bps in enumerate(loans):
                self._supply_collateral(i, ("all", 0))
                if bps:
                    self._borrow(i, ("bps", bps))

    def teardown(self):
        stack = getattr(self, "_stack", None)
        if stack is not None:
            stack.close()
            self.w.last_observed = self._built.last_observed

    # ------------------------------------------------------------ helpers

    def _now(self) -> int:
        return boa.env.evm.patch.timestamp

    def _fresh(self) -> bool:
        return self._now() - self.w.last_observed <= HEARTBEAT

    def _checked_price(self) -> int | None:
        """The pool's price when fresh (equal to the last published one), else None
        after checking that the pool refuses it as stale."""
        if self._fresh():
            price = self.pool.price()
            assert price == self.price
            return price
        with boa.reverts(STALE):
            self.pool.price()
        return None

    def _health(self, b: int, price: int) -> lending.Health:
        collateral, debt, _ = self.pool.position(self.w.borrowers[b])
        return lending.health(self.market, collateral, debt, price)

    def _debtor(self, b: int) -> int:
        """Borrower `b` if it has debt, else the next one that has (else `b`)."""
        for k in range(N_BORROWERS):
            if self.pool.position(self.w.borrowers[(b + k) % N_BORROWERS])[2]:
                return (b + k) % N_BORROWERS
        return b

    def _top_up(self, account: str, amount: int) -> None:
        balance = self.asset.balanceOf(account)
        if balance < amount:
            self.asset.mint(account, amount - balance)

    # ------------------------------------------------------------ lenders

    @rule(i=actors, p=portions)
    def deposit(self, i, p):
        self._deposit(i, p)

    def _deposit(self, i, p):
        lender = self.w.lenders[i]
        amount = portion(p, self.asset.balanceOf(lender))
        self._top_up(lender, amount)
        expected = self.pool.previewDeposit(amount)
        with boa.env.prank(lender):
            if expected == 0:
                hypothesis.event("deposit: zero shares")
                with boa.reverts(ZERO_SHARES):
                    self.pool.deposit(amount, lender)
                return
            assert self.pool.deposit(amount, lender) == expected
        self.shares[i] += expected

    @rule(i=actors, p=portions)
    def mint(self, i, p):
        lender = self.w.lenders[i]
        shares = portion(p, self.pool.convertToShares(self.asset.balanceOf(lender)))
        cost = self.pool.previewMint(shares)
        self._top_up(lender, cost)
        balance = self.asset.balanceOf(lender)
        with boa.env.prank(lender):
            if shares == 0:
                with boa.reverts(MINT_ZERO):
                    self.pool.mint(shares, lender)
                return
            assert self.pool.mint(shares, lender) == cost
        assert self.asset.balanceOf(lender) == balance - cost
        self.shares[i] += shares

    @rule(i=actors, p=portions)
    def withdraw(self, i, p):
        lender = self.w.lenders[i]
        claim = self.pool.convertToAssets(self.shares[i])
        idle = self.pool.market()[3]
        assert self.pool.maxWithdraw(lender) == min(claim, idle)
        assets = portion(p, claim)
        burnt = self.pool.previewWithdraw(assets)
        balance = self.asset.balanceOf(lender)
        with boa.env.prank(lender):
            if assets == 0:
                expected = WITHDRAW_ZERO
            elif assets > idle:
                expected = NO_IDLE
            elif burnt > self.shares[i]:
                expected = BURN_EXCEEDS
            else:
                expected = None
            hypothesis.event(f"withdraw: {expected or 'ok'}")
            if expected is not None:
                with boa.reverts(expected):
                    self.pool.withdraw(assets, lender, lender)
                return
            assert self.pool.withdraw(assets, lender, lender) == burnt
        assert self.asset.balanceOf(lender) == balance + assets
        self.shares[i] -= burnt

    @rule(i=actors, p=portions)
    def redeem(self, i, p):
        lender = self.w.lenders[i]
        shares = portion(p, self.shares[i])
        assets = self.pool.previewRedeem(shares)
        supplied, _, _, idle = self.pool.market()
        total_supply = self.pool.totalSupply()
        assert self.pool.maxRedeem(lender) == min(
            self.shares[i], idle * (total_supply + 10**6) // (supplied + 1)
        )
        balance = self.asset.balanceOf(lender)
        with boa.env.prank(lender):
            if assets == 0:
                expected = ZERO_REDEEM
            elif assets > idle:
                expected = NO_IDLE
            elif shares > self.shares[i]:
                expected = BURN_EXCEEDS
            else:
                expected = None
            hypothesis.event(f"redeem: {expected or 'ok'}")
            if expected is not None:
                with boa.reverts(expected):
                    self.pool.redeem(shares, lender, lender)
                return
            assert self.pool.redeem(shares, lender, lender) == assets
        assert self.asset.balanceOf(lender) == balance + assets
        self.shares[i] -= shares

    # ------------------------------------------------------------ borrowers

    @rule(b=actors, p=portions)
    def supply_collateral(self, b, p):
        self._supply_collateral(b, p)

    def _supply_collateral(self, b, p):
        borrower = self.w.borrowers[b]
        amount = min(portion(p, self.token.balanceOf(borrower)), self.token.balanceOf(borrower))
        with boa.env.prank(borrower):
            if amount == 0:
                with boa.reverts(COLLATERAL_ZERO):
                    self.pool.supply_collateral(amount, borrower)
                return
            self.pool.supply_collateral(amount, borrower)
        self.collateral[b] += amount

    @rule(b=actors, p=portions)
    def withdraw_collateral(self, b, p):
        borrower = self.w.borrowers[b]
        collateral, debt, scaled = self.pool.position(borrower)
        amount = portion(p, collateral)
        expected = None
        if amount == 0:
            expected = COLLATERAL_ZERO
        elif self.paused:
            expected = PAUSED
        elif amount > collateral:
            expected = EXCEEDS_COLLATERAL
        elif scaled != 0:
            price = self._checked_price()
            if price is None:
                expected = STALE
            elif not lending.within(self.market, debt, collateral - amount, price,
                                    self.market.max_ltv):
                expected = ABOVE_MAX_LTV_WITHDRAW
        hypothesis.event(f"withdraw_collateral: {expected or 'ok'}")
        shares_before = self.token.balanceOf(borrower)
        with boa.env.prank(borrower):
            if expected is not None:
                with boa.reverts(expected):
                    self.pool.withdraw_collateral(amount, borrower)
                return
            self.pool.withdraw_collateral(amount, borrower)
        assert self.token.balanceOf(borrower) == shares_before + amount
        self.collateral[b] -= amount

    @rule(b=actors, p=portions)
    def borrow(self, b, p):
        self._borrow(b, p)

    def _borrow(self, b, p):
        borrower = self.w.borrowers[b]
        collateral, debt, scaled = self.pool.position(borrower)
        price = self._checked_price()
        # Headroom as the keeper and the CLI compute it (gpushares.lending).
        limit = lending.collateral_value(self.market, collateral, price or self.price)
        headroom = max(0, limit * self.market.max_ltv // WAD - debt)
        supplied, reserves, _, idle = self.pool.market()
        if p[0] == "wei" or headroom or p[0] == "over":
            amount = portion(p, headroom)
        else:  # no headroom: try a slice of the idle liquidity instead
            amount = portion(p, idle)
        index = self.pool.borrow_index()
        added = ceil_div(amount * DEBT_SCALE, index)
        if amount == 0:
            expected = BORROW_ZERO
        elif self.paused:
            expected = PAUSED
        elif price is None:
            expected = STALE
        elif not lending.within(self.market, debt_of(scaled + added, index), collateral,
                                price, self.market.max_ltv):
            expected = ABOVE_MAX_LTV_BORROW
        elif debt_of(self.pool.total_scaled_debt() + added, index) > supplied + reserves:
            expected = NO_LIQUIDITY
        else:
            expected = None
        hypothesis.event(f"borrow: {expected or 'ok'}")
        balance = self.asset.balanceOf(borrower)
        with boa.env.prank(borrower):
            if expected is not None:
                with boa.reverts(expected):
                    self.pool.borrow(amount, borrower)
                return
            assert self.pool.borrow(amount, borrower) == added
        self.debt_ops += 1
        assert self.asset.balanceOf(borrower) == balance + amount
        assert self.pool.position(borrower)[2] == scaled + added

    @rule(b=actors, any_borrower=st.sampled_from([False] * 3 + [True]), p=portions,
          by_borrower=st.booleans(), max_uint=st.booleans())
    def repay(self, b, any_borrower, p, by_borrower, max_uint):
        b = b if any_borrower else self._debtor(b)
        borrower = self.w.borrowers[b]
        payer = borrower if by_borrower else self.w.liquidator
        _, debt, scaled = self.pool.position(borrower)
        amount = MAX_UINT if max_uint and p[0] == "all" else portion(p, debt)
        index = self.pool.borrow_index()
        repaid, removed = amount, scaled
        if amount == 0:
            expected = REPAY_ZERO
        elif scaled == 0:
            expected = NO_DEBT
        else:
            expected = None
            if amount >= debt:
                repaid = debt
            else:
                removed = amount * DEBT_SCALE // index
                if removed == 0:
                    expected = REPAY_ROUNDS
        hypothesis.event(f"repay: {expected or ('full' if repaid == debt else 'partial')}")
        if expected is None:
            self._top_up(payer, repaid)
        balance = self.asset.balanceOf(payer)
        with boa.env.prank(payer):
            if expected is not None:
                with boa.reverts(expected):
                    self.pool.repay(amount, borrower)
                return
            assert self.pool.repay(amount, borrower) == repaid
        self.debt_ops += 1
        assert self.asset.balanceOf(payer) == balance - repaid
        assert self.pool.position(borrower)[2] == scaled - removed
        if repaid == debt:
            assert self.pool.position(borrower)[1] == 0

    @rule(b=actors)
    def claim_income(self, b):
        borrower = self.w.borrowers[b]
        owed = self.pool.income_owed(borrower)
        balance = self.asset.balanceOf(borrower)
        with boa.env.prank(borrower):
            if owed == 0:
                with boa.reverts(NO_INCOME):
                    self.pool.claim_income()
                return
            assert self.pool.claim_income() == owed
        hypothesis.event("claim_income: ok")
        assert self.asset.balanceOf(borrower) == balance + owed
        assert self.pool.income_owed(borrower) == 0

    # ------------------------------------------------------------ liquidations

    def _liquidate(self, b: int, max_repay: int) -> str | None:
        """Liquidates as the liquidator after predicting the outcome; returns the
        refusal or None. The prediction of "liquidatable" is gpushares.lending's."""
        w, pool = self.w, self.pool
        borrower = w.borrowers[b]
        collateral, debt, scaled = pool.position(borrower)
        index = pool.borrow_index()
        price = self._checked_price() if scaled else None
        expected = None
        if max_repay == 0:
            expected = REPAY_ZERO
        elif scaled == 0:
            expected = NO_DEBT
        elif price is None:
            expected = STALE
        elif not lending.health(self.market, collateral, debt, price).liquidatable:
            expected = HEALTHY
        repaid = seized = bad = removed = 0
        if expected is None:
            per_repaid = self.incentive * 10 ** (self.market.feed_decimals + 18)
            per_seized = WAD * price * 10**self.DECIMALS
            repaid = min(max_repay, debt)
            seized = repaid * per_repaid // per_seized
            if seized >= collateral:
                seized = collateral
                repaid = min(debt, ceil_div(collateral * per_seized, per_repaid))
            removed = scaled if repaid >= debt else repaid * DEBT_SCALE // index
            if removed == 0 and seized == 0 and collateral != 0:
                expected = ROUNDS_TO_NOTHING
            elif seized == collateral and scaled - removed != 0:
                total = pool.total_scaled_debt() - removed
                bad = debt_of(total, index) - debt_of(total - (scaled - removed), index)
        hypothesis.event(f"liquidate: {expected or ('bad debt' if bad else 'ok')}")
        with boa.env.prank(w.liquidator):
            if expected is not None:
                with boa.reverts(expected):
                    pool.liquidate(borrower, max_repay)
                return expected
            supplied, reserves, _, _ = pool.market()
            assets_before = self.asset.balanceOf(w.liquidator)
            shares_before = self.token.balanceOf(w.liquidator)
            assert pool.liquidate(borrower, max_repay) == (repaid, seized, bad)
        self.debt_ops += 1
        logs = [log for log in pool.get_logs() if type(log).__name__ == "BadDebtWrittenOff"]
        if bad:
            (log,) = logs
            from_lenders = min(bad, supplied)
            assert (log.assets, log.from_lenders, log.from_reserves) == (
                bad, from_lenders, bad - from_lenders
            )
            assert pool.market()[:2] == (supplied - from_lenders, reserves - bad + from_lenders)
            assert pool.position(borrower) == (0, 0, 0)
        else:
            assert logs == []
        assert self.asset.balanceOf(w.liquidator) == assets_before - repaid
        assert self.token.balanceOf(w.liquidator) == shares_before + seized
        self.collateral[b] -= seized
        return None

    @rule(b=actors, any_borrower=st.sampled_from([False] * 3 + [True]), p=portions,
          max_uint=st.booleans())
    def liquidate(self, b, any_borrower, p, max_uint):
        b = b if any_borrower else self._debtor(b)
        debt = self.pool.position(self.w.borrowers[b])[1]
        self._liquidate(b, MAX_UINT if max_uint and p[0] == "all" else portion(p, debt))

    @rule(b=actors, above=st.booleans())
    def liquidate_at_the_boundary(self, b, above):
        """The NAV set to exactly the highest price at which the loan is liquidatable
        (`gpushares.lending.price_for_ltv`), or one unit above it: the pool must agree
        with the mirror on both sides of the edge."""
        b = self._debtor(b)
        borrower = self.w.borrowers[b]
        if self.w.last_observed >= self._now():
            boa.env.time_travel(seconds=1)  # so set_price does not move the clock itself
        collateral, debt, _ = self.pool.position(borrower)
        if debt == 0 or collateral == 0:
            return
        edge = lending.price_for_ltv(self.market, collateral, debt, self.market.lltv)
        price = edge + 1 if above else edge
        if not 1 <= price <= PRICE_MAX:  # the feed takes any positive answer up to 1e15
            return
        assert self.w.set_price(price)
        self.price = price
        assert self.pool.position(borrower)[1] == debt
        assert lending.health(self.market, collateral, debt, price).liquidatable is not above
        outcome = self._liquidate(b, MAX_UINT)
        hypothesis.event(f"liquidate at the edge: {outcome or 'ok'}")
        assert outcome == (HEALTHY if above else None)

    @rule()
    def keeper_pass(self):
        """The keeper: every loan gpushares.lending calls liquidatable is liquidated in
        full; every other loan is refused as healthy (the mirror agrees with the pool)."""
        price = self._checked_price()
        before = [self.pool.position(b) for b in self.w.borrowers]
        healthy = []
        for b, (_, debt, _) in enumerate(before):
            if debt == 0:
                healthy.append(True)
                continue
            if price is None:
                assert self._liquidate(b, MAX_UINT) == STALE
                healthy.append(True)
                continue
            liquidatable = self._health(b, price).liquidatable
            healthy.append(not liquidatable)
            assert self._liquidate(b, MAX_UINT) == (None if liquidatable else HEALTHY)
        if price is None:
            return
        for b, was_healthy in enumerate(healthy):
            assert not self._health(b, price).liquidatable
            if was_healthy:
                assert self.pool.position(self.w.borrowers[b]) == before[b]
            else:
                assert self.pool.position(self.w.borrowers[b])[1] == 0

    @rule(p=portions)
    def collect_reserves(self, p):
        _, reserves, _, idle = self.pool.market()
        amount = portion(p, reserves)
        paid = min(amount, reserves, idle)
        treasury_before = self.asset.balanceOf(self.w.treasury)
        with boa.env.prank(self.w.stranger):
            if paid == 0:
                with boa.reverts(NO_RESERVES):
                    self.pool.collect_reserves(amount)
                return
            assert self.pool.collect_reserves(amount) == paid
        assert self.asset.balanceOf(self.w.treasury) == treasury_before + paid

    @rule(paused=st.sampled_from([True, False, False]))
    def set_paused(self, paused):
        """The guardian stops (or resumes) borrows and collateral withdrawals; deposits,
        withdrawals, repays and liquidations carry on. (Biased to resume.)"""
        with boa.env.prank(self.w.admin):
            if paused == self.paused:
                with boa.reverts(PAUSE_UNCHANGED):
                    self.pool.set_paused(paused)
                return
            self.pool.set_paused(paused)
        self.paused = paused
        assert self.pool.paused() == paused

    # ------------------------------------------------------------ oracle, time, income

    @rule(bps=price_moves)
    def move_price(self, bps):
        self._set_price(self.price + self.price * bps // 10_000)

    @rule(bps=st.integers(1_000, 9_000))
    def crash(self, bps):
        """The NAV falls 10-90 % (liquidations, and bad debt past ~1 - lltv / incentive)."""
        self._set_price(self.price - self.price * bps // 10_000)

    @rule(data=st.data())
    def recover(self, data):
        """The NAV climbs back to somewhere around where the market started."""
        self._set_price(data.draw(st.integers(10 * PRICE, 20 * PRICE)))

    def _set_price(self, new: int) -> None:
        new = min(max(new, PRICE_MIN), PRICE_MAX)
        assert self.w.set_price(new)
        self.price = new

    @rule(seconds=waits, keep_fresh=st.sampled_from([True] * 4 + [False]))
    def time_travel(self, seconds, keep_fresh):
        boa.env.time_travel(seconds=seconds)
        if keep_fresh:
            assert self.w.set_price(self.price)

    @rule(extra=st.sampled_from([1, 60, DAY]))
    def let_price_go_stale(self, extra):
        """The oracle goes quiet for longer than the heartbeat."""
        quiet_for = self._now() - self.w.last_observed
        boa.env.time_travel(seconds=max(HEARTBEAT + extra - quiet_for, extra))
        assert not self._fresh()

    @rule()
    def refresh_price(self):
        assert self.w.set_price(self.price)

    @rule(p=st.sampled_from([1, 7, 10**3, 10**6, 10**9]), whole=st.integers(0, 10_000))
    def distribute_income(self, p, whole):
        amount = p if whole == 0 else whole * self.w.unit
        with boa.env.prank(self.w.operator):
            self.token.distribute(amount)

    # ------------------------------------------------------------ invariants

    @invariant()
    def pool_invariants(self):
        """One invariant that reads every view once (a view that previews interest costs
        ~3 ms in py-evm); each check below is one of the pool's promises."""
        pool, w = self.pool, self.w
        supplied, reserves, total_debt, idle = pool.market()
        held = pool.income_held()
        balance = self.asset.balanceOf(pool.address)
        total_supply = pool.totalSupply()
        positions = [pool.position(b) for b in w.borrowers]
        index = pool.borrow_index()
        self.steps += 1

        # Lenders' shares as the model has them.
        assert [pool.balanceOf(lender) for lender in w.lenders] == self.shares
        assert total_supply == sum(self.shares)

        # 1. The pool's assets cover the lenders' claims (each rounded down, as
        #    convertToAssets gives them) plus the reserves. The income the pool holds
        #    for borrowers is in its balance too (the income token is the loan asset):
        #    it is not the lenders'.
        claims = [s * (supplied + 1) // (total_supply + 10**6) for s in self.shares]
        probe = self.steps % N_LENDERS  # one lender a step through the pool's own view
        assert pool.convertToAssets(self.shares[probe]) == claims[probe]
        assert balance >= held
        own = balance - held
        assert own + total_debt >= sum(claims) + reserves
        #    ... and the pool's accounting: everything it owes is held or lent out, and
        #    the surplus is rounding dust in the pool's favour (a wei or two per borrow,
        #    repay or liquidation; deposits, withdrawals, interest and write-offs are exact).
        surplus = own + total_debt - (supplied + reserves)
        assert 0 <= surplus <= 2 * self.debt_ops

        # 2. Idle liquidity is what the accounting says and never more than the pool
        #    holds (of its own).
        assert idle == max(0, supplied + reserves - total_debt)
        assert idle <= own <= balance

        # 3. The borrowers' debts, each rounded up, add up to the total debt (rounded
        #    up once) within one wei per borrower, never below it.
        debts = sum(p[1] for p in positions)
        assert total_debt <= debts <= total_debt + N_BORROWERS
        assert sum(p[2] for p in positions) == pool.total_scaled_debt()

        # 4. The borrow index never decreases.
        assert index >= self.last_index >= WAD
        self.last_index = index

        # 5. Collateral adds up: positions, total_collateral, the pool's share balance.
        assert [p[0] for p in positions] == self.collateral
        total_collateral = pool.total_collateral()
        assert sum(self.collateral) == total_collateral
        assert total_collateral == self.token.balanceOf(pool.address)

        # 6. Collateral income owed to borrowers is covered by what the pool holds and
        #    can claim from the share token.
        owed = sum(pool.income_owed(b) for b in w.borrowers)
        assert owed <= held + self.token.claimable(pool.address)


class PoolMachine18(PoolMachine):
    DECIMALS = 18


# py-evm: ~1 ms a call, ~40 calls a step with the invariants. The machines run fewer,
# deeper examples (most start from a busy pool); budgets in tests/budgets.py.
_SETTINGS = budget("pool_stateful")

TestPool6 = PoolMachine.TestCase
TestPool6.settings = _SETTINGS
TestPool18 = PoolMachine18.TestCase
TestPool18.settings = _SETTINGS
