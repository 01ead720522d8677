"""Stateful fuzzing of PerpMarket in the full suite (`perp_helpers.build_perp_world`: the
signed OracleHub and its FeedAdapter as the GPU-hour index, a test stablecoin, the
factory and one market): four traders, a keeper, an insurer, the risk admin (also the
guardian) and the oracle moving the index.

Rules: margin deposits; withdrawals (portions of `withdrawable()`, exactly it, and over
it); trades (open or increase long and short sized from `gpushares.perp.max_size_for_margin`,
over that size too, reduce, flip, close by `close_position` and by `modify_position`,
random and dust sizes, with an acceptable price that is loose, exactly the fill or one
wei worse); index moves through the hub (noise, crashes, rallies); time travel (seconds to
weeks, the index refreshed unless the rule lets it go stale); single liquidations; a
keeper pass; `fund_insurance`; `collect_fees`; risk parameter changes (caps under the
open interest, margins, fees, funding speed and cap, the same parameters to poke an
accrual); the guardian's pause; and a split accrual at a constant index and skew.
Every call's outcome is predicted first, from the market's views and the Python mirror
(`gpushares.perp`, its `MarketState` built from `index_price()`, `market()`, `paused()`,
`deficit()`, `risk_params()` and `equity(account)`): a call either succeeds with exactly
the predicted effects (positions, events, returned values, the funding slot) or reverts
with exactly the predicted reason. (A withdrawal, fee collection or liquidation the
market has no cash for reverts with a bare underflow, predicted too: a winner's settled
gain is paid from the whole cash when the insurance fund, marked to the index, is
negative, a KNOWN LIMITATION documented in docs/perps.md, "Limits";
`test_perp_properties.py` checks what is guaranteed then.)

Invariants (after every step):
1. value conservation: the market's balance is its `cash` (no donations here), and cash
   is the settled margins (the positions' margins add up to `market()[3]`) plus the fees
   plus the insurance fund's realised part, which the machine tracks on its own (seed,
   fundings, premiums minus settlements, what liquidations leave minus keeper fees);
2. marked to the index: `insurance_fund()` is the mirror's (realised part less the
   positions' exact unrealised PnL and funding, rounded up), and the traders' equities
   (each rounded against the trader) plus the fees plus the fund never exceed the cash,
   and fall short of it by at most one base unit per open position (dust in the
   market's favour);
3. funding is zero-sum up to dust: the traders' `funding_owed` (payers rounded up,
   receivers down) add up to at least the exact aggregate the fund holds (a Fraction
   from the positions and the funding index) and at most one base unit per open
   position above it;
4. the open interest and the market's aggregate sums (size x last price, size x last
   funding) are the positions'; over a cap the open interest only shrinks (a cap
   lowered under it binds increases, not existing positions); every successful open or
   increase left the position at or above the initial margin (checked at the trade);
5. the funding index and rate the views give are the mirror's `funding_step` from the
   stored slot, every accruing call writes exactly that to the slot, and a split accrual
   (a poke in between, constant index and skew) equals the one-step accrual within a
   second of funding at the cap per accrual;
6. a liquidated position was below maintenance at the liquidation (mirror just before
   the call, and the `PositionLiquidated` event's equity); after a keeper pass on a
   fresh index no position is liquidatable (unless the market had no cash for the keeper
   fee, which is predicted). One round is enough: the maintenance requirement does not
   depend on the skew a liquidation moves;
7. no fill is better than the index: every trade's premium is at least zero (a
   skew-reducing trade fills at the index, no rebate).

The views that read the index cost 3-10 ms each in py-evm, so the invariant reads the
positions, the open interest, the book and `cash` from storage, `insurance_fund()` and
one more view a step, computes every trader's equity and funding with the mirror, and
checks the mirror against the market's own `equity`, `market()`, `funding_owed`,
`funding_index`/`funding_rate`, `withdrawable`, `can_liquidate` and `position` for one
trader a step, in rotation (the rules read those views for the trader they touch too).

Speed: each machine deploys its world once, into its own `boa.Env`; every example runs
inside an anchor of it (reverted at teardown, clock included, so the World's Python-side
`last_observed` is restored). Two machines: a 6-decimal and an 18-decimal margin asset."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from fractions import Fraction

import boa
import hypothesis
from eth_utils import keccak
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gpushares import perp, reasons
from tests.budgets import budget
from tests.contracts.perp_helpers import (
    ABOVE_MAINTENANCE,
    BELOW_INITIAL_WITHDRAW,
    DAY,
    EXCEEDS_MARGIN,
    FEED_UNIT,
    MAX_UINT,
    NO_FEES,
    NO_POSITION,
    STALE,
    WAD,
    ZERO_AMOUNT,
    PerpWorld,
    build_perp_world,
)

HEARTBEAT = DAY  # build_perp_world's default feed heartbeat
N_TRADERS = 4
PRICE0 = 2 * FEED_UNIT  # build_perp_world's first index: 2 USD per GPU-hour
PRICE_MIN, PRICE_MAX = FEED_UNIT // 100, 1_000 * FEED_UNIT  # the hub takes 1 to 1e12
TRADER_FUNDS = 10**7  # whole asset units minted to each trader up front
MASK64 = 2**64 - 1
MASK96 = 2**96 - 1
MASK128 = 2**128 - 1
NO_CASH_FOR_KEEPER = reasons.PERP_NOT_ENOUGH_CASH_KEEPER
# A bare Vyper underflow (`cash -= amount` when the market holds less than a winner's
# margin, say): the reverts carry no reason string.
UNDERFLOW = "safesub"

# (kind, value): a portion of some total the rule reads from the chain.
portions = st.one_of(
    st.sampled_from([("all", 0), ("all", 0), ("half", 0)]),
    st.tuples(st.just("bps"), st.integers(1, 10_000)),
    st.tuples(st.just("wei"), st.integers(0, 3)),
    st.tuples(st.just("over"), st.sampled_from([1, 2, 10**6])),
)
traders = st.integers(0, N_TRADERS - 1)
# Margin amounts: a few base units, or whole units up to 50,000.
deposits = st.one_of(
    st.tuples(st.just("wei"), st.sampled_from([0, 1, 7])),
    st.tuples(st.just("whole"), st.integers(1, 50_000)),
)
waits = st.sampled_from([1, 60, 3_600, 6 * 3_600, DAY, 3 * DAY, 7 * DAY, 14 * DAY])
trade_kinds = st.sampled_from(["reduce", "flip", "close", "close_modify", "random", "dust"])
slippages = st.sampled_from(["any"] * 6 + ["exact", "worse"])


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


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def signed(x: int, bits: int) -> int:
    return x - (1 << bits) if x >> (bits - 1) else x


def hashmap_slot(slot: int, account: str) -> int:
    """Storage slot of `HashMap[address, ...]` at `slot`, key `account` (Vyper:
    keccak256(slot . key))."""
    key = bytes(12) + bytes.fromhex(str(account)[2:])
    return int.from_bytes(keccak(slot.to_bytes(32, "big") + key), "big")


def funding_dust(steps: int, dt: int, rmax: int, price: int) -> int:
    """Bound on |computed - exact integral| of the funding index over `dt` seconds in
    `steps` accruals at a constant price and skew: per accrual one wei of the index's
    floor, and in area (WAD x seconds) the rate's truncation carried over the rest of the
    interval, the trapezoid's halving and the cap-hit time truncated to the second (at
    most one second of the rate cap)."""
    area = steps * (2 + rmax) + steps * dt
    return steps + ceil_div(area * price, DAY * WAD)


@dataclass
class Built:
    env: boa.Env
    world: PerpWorld
    last_observed: int


_WORLDS: dict[int, Built] = {}


def _build(decimals: int) -> Built:
    env = boa.Env()
    with boa.swap_env(env):
        boa.env.enable_fast_mode()
        w = build_perp_world(asset_decimals=decimals, label=f"sm-perp-{decimals}")
        for trader in w.traders:
            w.fund(trader, TRADER_FUNDS * w.unit)
        w.fund(w.insurer, TRADER_FUNDS * w.unit)
    return Built(env, w, w.last_observed)


def world(decimals: int) -> Built:
    if decimals not in _WORLDS:
        _WORLDS[decimals] = _build(decimals)
    return _WORLDS[decimals]


class PerpMachine(RuleBasedStateMachine):
    DECIMALS = 6

    # ------------------------------------------------------------ setup

    @initialize(seed=st.sampled_from([True] * 4 + [False]),
                margins=st.lists(st.integers(100, 50_000), min_size=4, max_size=4),
                opens=st.lists(st.integers(-10_000, 10_000), min_size=4, max_size=4))
    def deploy(self, seed, margins, opens):
        built = world(self.DECIMALS)
        self._built = built
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(boa.swap_env(built.env))
        self._stack.enter_context(built.env.anchor())  # reverted at teardown
        boa.env.sha3_trace = {}
        boa.env.sstore_trace = {}
        w = self.w = built.world
        w.last_observed = built.last_observed
        self.m, self.asset = w.market, w.asset
        self.vs = w.value_scale
        self.params = perp.RiskParams.from_chain(tuple(self.m.risk_params()))
        self.price = PRICE0  # the feed's latest answer (8 decimals)
        self.paused = False
        self.deficit = 0
        self.fees = 0
        # The insurance fund's realised part: cash - margins - fees, tracked on its own.
        self.realised = self.m.cash()
        self.prev_oi = (0, 0)
        self.steps = 0
        self._sent = []
        storage = self.m._storage
        self._pos_slots = [
            (hashmap_slot(storage._pos_a.slot, a), hashmap_slot(storage._pos_b.slot, a))
            for a in w.traders
        ]
        assert self.m.market() == (0, 0, 0, 0, 0, self.realised, 0)
        if seed:
            # Most examples start from a busy market, so 35 steps reach deep states.
            for i, (units, bps) in enumerate(zip(margins, opens, strict=True)):
                self._deposit(i, ("whole", units))
                if bps:
                    self._open(i, bps < 0, abs(bps), "any")

    def teardown(self):
        stack = getattr(self, "_stack", None)
        if stack is not None:
            stack.close()
            self.w.last_observed = self._built.last_observed

    # ------------------------------------------------------------ mirror

    def _now(self) -> int:
        return boa.env.evm.patch.timestamp

    def _fresh(self) -> bool:
        return self._now() - self.w.last_observed <= HEARTBEAT

    def _price_wad(self) -> int:
        return self.price * (WAD // FEED_UNIT)

    def _slot(self) -> tuple[int, int, int]:
        """The stored funding slot: (last accrual, rate, index)."""
        slot = self.m._storage._funding.get()
        return slot & MASK64, signed((slot >> 64) & MASK64, 64), signed(slot >> 128, 128)

    def _skew(self) -> int:
        oi = self.m._storage._oi.get()
        return (oi & MASK128) - (oi >> 128)

    def _raw_position(self, i: int) -> tuple[int, int, int, int]:
        """Trader `i`'s position read from the market's storage (what `position()`
        decodes), without a call: (size, margin, last price, last funding)."""
        slot_a, slot_b = self._pos_slots[i]
        a = boa.env.get_storage(self.m.address, slot_a)
        b = boa.env.get_storage(self.m.address, slot_b)
        return signed(a >> 128, 128), a & MASK128, b & MASK96, signed(b >> 96, 160)

    def _funding_now(self, price: int, skew: int) -> tuple[int, int]:
        """(index, rate) accrued to now at `price` and `skew` (what the views and the
        next accrual give)."""
        last, rate, fidx = self._slot()
        return perp.funding_step(fidx, rate, self._now() - last, price, skew, self.params)

    def _check_accrued(self, before: tuple[int, int, int], price: int, skew: int) -> None:
        """After a call that accrues: the slot holds exactly the mirror's step from
        `before` (the slot before the call) to now."""
        last, rate, fidx = before
        now = self._now()
        if now <= last:
            assert self._slot() == before
            return
        fidx, rate = perp.funding_step(fidx, rate, now - last, price, skew, self.params)
        assert self._slot() == (now, rate, fidx)

    def _equity_of(self, pos, price: int, fidx: int) -> int:
        size, margin, last_price, last_funding = pos
        if size == 0:
            return margin
        return margin + perp.settlement(size, last_price, last_funding, price, fidx, self.vs)

    def _unrealised(self, positions, price: int, fidx: int) -> int:
        """The traders' PnL minus funding owed, exactly (WAD x WAD)."""
        return sum(s * (price - lp) - s * (fidx - lf) for s, _, lp, lf in positions)

    def _state(self) -> perp.MarketState:
        """The pre-trade check's state, from the market's views (checked against the
        machine's model on the way)."""
        m = self.m
        price, fresh = m.index_price()
        long_oi, short_oi, skew, _, fees, insurance, deficit = m.market()
        paused = m.paused()
        params = perp.RiskParams.from_chain(tuple(m.risk_params()))
        assert (price, fresh) == (self._price_wad(), self._fresh())
        assert skew == long_oi - short_oi
        assert (paused, deficit, m.deficit(), params, fees) == (
            self.paused, self.deficit, self.deficit, self.params, self.fees
        )
        return perp.MarketState(
            price=price, fresh=fresh, long_oi=long_oi, short_oi=short_oi, paused=paused,
            deficit=deficit, insurance=insurance, params=params,
            asset_decimals=self.DECIMALS,
        )

    def _top_up(self, account: str, amount: int) -> None:
        balance = self.asset.balanceOf(account)
        if balance < amount:
            self.asset.mint(account, amount - balance)

    def _logs(self, name: str) -> list:
        """The market's events `name` from the last call the machine sent it (read
        right after the call: a view call replaces the market's last computation)."""
        return [log for log in self._sent if type(log).__name__ == name]

    def _send(self, account: str, fn, *args):
        """`fn(*args)` from `account`; keeps the market's events of that call."""
        with boa.env.prank(account):
            result = fn(*args)
        self._sent = self.m.get_logs()
        return result

    # ------------------------------------------------------------ margin

    @rule(i=traders, d=deposits)
    def deposit(self, i, d):
        self._deposit(i, d)

    def _deposit(self, i, d):
        trader = self.w.traders[i]
        kind, value = d
        amount = value if kind == "wei" else value * self.w.unit
        self._top_up(trader, amount)
        before = self.m.position(trader)
        slot = self._slot()
        with boa.env.prank(trader):
            if amount == 0:
                with boa.reverts(ZERO_AMOUNT):
                    self.m.deposit_margin(amount)
                return
            self.m.deposit_margin(amount)
        # Always works (stale, paused, liquidatable): margin only, no settlement, no
        # accrual.
        size, margin, lp, lf = before
        assert self.m.position(trader) == (size, margin + amount, lp, lf)
        assert self._slot() == slot

    @rule(i=traders, p=portions)
    def withdraw(self, i, p):
        m, w = self.m, self.w
        trader = w.traders[i]
        pos = m.position(trader)
        size, margin, lp, lf = pos
        price = self._price_wad()
        skew = self._skew()
        fidx, _ = self._funding_now(price, skew)
        equity = self._equity_of(pos, price, fidx)
        need = perp.initial_margin(size, price, self.params, self.vs) if size else 0
        withdrawable = m.withdrawable(trader)
        assert withdrawable == (margin if size == 0 else max(0, equity - need))
        amount = portion(p, withdrawable)
        cash = m.cash()
        settled = 0
        if amount == 0:
            expected = ZERO_AMOUNT
        elif size != 0:
            settled = equity - margin
            if not self._fresh():
                expected = STALE
            elif equity < amount:
                expected = EXCEEDS_MARGIN
            elif equity - amount < need:
                expected = BELOW_INITIAL_WITHDRAW
            else:
                expected = UNDERFLOW if amount > cash else None
        elif amount > margin:
            expected = EXCEEDS_MARGIN
        else:
            expected = UNDERFLOW if amount > cash else None
        hypothesis.event(f"withdraw ({'position' if size else 'flat'}): {expected or 'ok'}")
        slot = self._slot()
        balance = self.asset.balanceOf(trader)
        with boa.env.prank(trader):
            if expected == UNDERFLOW:
                with boa.reverts(compiler=UNDERFLOW):
                    m.withdraw_margin(amount)
                return
            if expected is not None:
                with boa.reverts(expected):
                    m.withdraw_margin(amount)
                return
        self._send(trader, m.withdraw_margin, amount)
        assert self.asset.balanceOf(trader) == balance + amount
        if size == 0:
            assert m.position(trader) == (0, margin - amount, 0, 0)
            assert self._slot() == slot
        else:
            # Settled at the index first: PnL and funding into the margin.
            assert m.position(trader) == (size, equity - amount, price, fidx)
            self._check_accrued(slot, price, skew)
            self.realised -= settled
        (log,) = self._logs("MarginWithdrawn")
        assert (log.amount, log.margin) == (amount, m.position(trader)[1])

    # ------------------------------------------------------------ trading

    @rule(i=traders, short=st.booleans(), bps=st.integers(1, 12_000), slip=slippages)
    def open_position(self, i, short, bps, slip):
        """Open or increase by `bps` of the largest position the trader's equity opens
        from flat (`gpushares.perp.max_size_for_margin`; over 10,000 bps: beyond the
        leverage cap)."""
        self._open(i, short, bps, slip)

    def _open(self, i, short, bps, slip):
        def sizer(state, size, equity):
            room = perp.max_size_for_margin(self._sizing(state), max(equity, 0), short)
            delta = room * bps // 10_000
            return -delta if short else delta

        self._trade(i, sizer, slip)

    @rule(i=traders, kind=trade_kinds, bps=st.integers(1, 10_000),
          size=st.integers(-2 * 10**6 * WAD, 2 * 10**6 * WAD),
          dust=st.integers(1, 1_000), slip=slippages)
    def trade(self, i, kind, bps, size, dust, slip):
        """Reduce, flip, close (both ways), a random size, or a few wei of size."""
        if kind == "reduce":
            self._trade(i, lambda state, current, equity: -current * bps // 10_000, slip)
        elif kind == "flip":
            def sizer(state, current, equity):
                room = perp.max_size_for_margin(self._sizing(state), max(equity, 0),
                                                current > 0)
                extra = room * bps // 10_000 or 1
                return -current - (extra if current > 0 else -extra)

            self._trade(i, sizer, slip)
        elif kind == "close":
            self._trade(i, lambda state, current, equity: -current, slip, close=True)
        elif kind == "close_modify":
            self._trade(i, lambda state, current, equity: -current, slip)
        elif kind == "random":
            self._trade(i, lambda state, current, equity: size, slip)
        else:
            self._trade(i, lambda state, current, equity: dust if bps % 2 else -dust, slip)

    @staticmethod
    def _sizing(state: perp.MarketState) -> perp.MarketState:
        """The market as the sizing heuristic sees it: fresh and open (so a stale or
        paused market still gets real sizes, and refuses them)."""
        return state.model_copy(update={
            "fresh": True, "paused": False, "deficit": 0,
            "insurance": max(state.insurance, 0),
        })

    def _trade(self, i, sizer, slip, close=False) -> str | None:
        """One trade of `sizer(state, size, equity)` by trader `i`, predicted with
        `gpushares.perp.quote_trade` first."""
        m, w = self.m, self.w
        trader = w.traders[i]
        state = self._state()
        pos = m.position(trader)
        assert pos == self._raw_position(i)
        size, margin, _, _ = pos
        price, skew, p = state.price, state.skew, self.params
        fidx, _ = self._funding_now(price, skew)
        equity = self._equity_of(pos, price, fidx)
        assert m.equity(trader) == equity
        settled = equity - margin
        delta = sizer(state, size, equity)

        acceptable = MAX_UINT if delta > 0 else 0
        if slip != "any" and delta != 0:
            try:
                fill = perp.fill_price(price, skew, delta, p.skew_scale)
            except ValueError:
                fill = None
            if fill is not None:
                worse = slip == "worse"
                acceptable = fill - worse if delta > 0 else fill + worse
        if close and size == 0:
            quote = perp.TradeQuote(refusal=NO_POSITION)
        else:
            quote = perp.quote_trade(state, size, equity, delta, acceptable)
        expected = quote.refusal
        new_size = size + delta
        increases = abs(new_size) > abs(size) or (
            size != 0 and new_size != 0 and (new_size > 0) != (size > 0))
        what = ("close" if new_size == 0 else "open" if size == 0
                else "flip" if (new_size > 0) != (size > 0)
                else "increase" if increases else "reduce")
        hypothesis.event(f"trade {what}: {expected or 'ok'}")
        slot = self._slot()
        if expected is not None:
            with boa.env.prank(trader), boa.reverts(expected):
                if close:
                    m.close_position(acceptable)
                else:
                    m.modify_position(delta, acceptable)
            return expected
        if close:
            self._send(trader, m.close_position, acceptable)
        else:
            self._send(trader, m.modify_position, delta, acceptable)
        self._check_accrued(slot, price, skew)
        (log,) = self._logs("PositionModified")
        assert (log.size_delta, log.size, log.index_price, log.fill_price, log.fee,
                log.premium, log.settled, log.margin) == (
            delta, new_size, price, quote.fill_price, quote.fee, quote.premium, settled,
            quote.margin_after,
        )
        assert quote.margin_after == equity - quote.premium - quote.fee
        # 7. Never better than the index: no rebate.
        assert log.premium >= 0
        assert (log.fill_price >= price) if delta > 0 else (log.fill_price <= price)
        if new_size:
            assert self._raw_position(i) == (new_size, quote.margin_after, price, fidx)
        else:
            assert self._raw_position(i) == (0, quote.margin_after, 0, 0)
        if increases and new_size:
            # The leverage cap: every open or increase leaves the initial margin.
            assert quote.margin_after >= perp.initial_margin(new_size, price, p, self.vs)
        self.fees += quote.fee
        self.realised += quote.premium - settled
        return None

    # ------------------------------------------------------------ liquidations

    def _liquidatable(self, i: int) -> bool:
        """The mirror's verdict on trader `i` at the latest index (fresh or not)."""
        pos = self._raw_position(i)
        if pos[0] == 0:
            return False
        price, skew = self._price_wad(), self._skew()
        fidx, _ = self._funding_now(price, skew)
        mm = perp.maintenance_margin(pos[0], price, self.params, self.vs)
        return self._equity_of(pos, price, fidx) < mm

    def _liquidate(self, i: int) -> str | None:
        """The keeper liquidates trader `i` after predicting the outcome; returns the
        refusal or None."""
        m, w = self.m, self.w
        account = w.traders[i]
        pos = self._raw_position(i)
        size, margin, _, _ = pos
        price = self._price_wad()
        skew = self._skew()
        fidx, _ = self._funding_now(price, skew)
        equity = self._equity_of(pos, price, fidx)
        mm = perp.maintenance_margin(size, price, self.params, self.vs) if size else 0
        fee = perp.keeper_fee(size, price, self.params, self.vs) if size else 0
        cash = m.cash()
        if size == 0:
            expected = NO_POSITION
        elif not self._fresh():
            expected = STALE
        elif equity >= mm:
            expected = ABOVE_MAINTENANCE
        elif cash < self.fees:
            expected = UNDERFLOW
        elif fee > cash - self.fees:
            expected = NO_CASH_FOR_KEEPER
        else:
            expected = None
        hypothesis.event(f"liquidate: {expected or ('bad debt' if equity < 0 else 'ok')}")
        slot = self._slot()
        keeper_balance = self.asset.balanceOf(w.keeper)
        with boa.env.prank(w.keeper):
            if expected == UNDERFLOW:
                with boa.reverts(compiler=UNDERFLOW):
                    m.liquidate(account)
                return expected
            if expected is not None:
                with boa.reverts(expected):
                    m.liquidate(account)
                return expected
        assert self._send(w.keeper, m.liquidate, account) == fee
        self._check_accrued(slot, price, skew)
        # The position was below maintenance at the liquidation (mirror and event).
        assert equity < mm
        (log,) = self._logs("PositionLiquidated")
        assert (log.account, log.keeper, log.size, log.index_price, log.equity,
                log.keeper_fee) == (account, w.keeper, size, price, equity, fee)
        assert log.equity < mm
        bad = self._logs("BadDebt")
        assert [b.amount for b in bad] == ([-equity] if equity < 0 else [])
        assert self._raw_position(i) == (0, 0, 0, 0)
        assert self.asset.balanceOf(w.keeper) == keeper_balance + fee
        # The fund keeps what the margin leaves after the keeper fee (or pays the rest).
        self.realised += margin - fee
        rest = [self._raw_position(k) for k in range(N_TRADERS)]
        insurance = self.realised - ceil_div(self._unrealised(rest, price, fidx), self.vs)
        exhausted = self._logs("InsuranceExhausted")
        if insurance < 0:
            self.deficit = max(self.deficit, -insurance)
            assert [(e.deficit, e.insurance) for e in exhausted] == [(self.deficit, insurance)]
            hypothesis.event("liquidate: insurance exhausted")
        else:
            assert exhausted == []
        assert m.deficit() == self.deficit
        return None

    @rule(i=traders, any_trader=st.sampled_from([False] * 3 + [True]))
    def liquidate(self, i, any_trader):
        if not any_trader:  # biased to a position the mirror calls liquidatable
            i = next((k % N_TRADERS for k in range(i, i + N_TRADERS)
                      if self._liquidatable(k % N_TRADERS)), i)
        self._liquidate(i)

    @rule()
    def keeper_pass(self):
        """The keeper liquidates every position `can_liquidate` flags when visited (the
        mirror agrees with the view), in one round: a liquidation moves the skew at the
        index price, which no longer changes another position's requirement. On a
        fresh index no position is left liquidatable, except one whose keeper fee the
        market has no cash for."""
        m, w = self.m, self.w
        kept: set[int] = set()
        for i, account in enumerate(w.traders):
            if self._raw_position(i)[0] == 0:
                continue
            flagged = m.can_liquidate(account)
            assert flagged == self._liquidatable(i)
            if not flagged:
                continue
            outcome = self._liquidate(i)
            if outcome is not None:
                assert outcome in (STALE, NO_CASH_FOR_KEEPER, UNDERFLOW)
                kept.add(i)
        if not self._fresh():
            return
        for i, account in enumerate(w.traders):
            assert self._liquidatable(i) == (i in kept)
            if self._raw_position(i)[0] != 0:
                assert m.can_liquidate(account) == (i in kept)

    # ------------------------------------------------------------ insurance, fees, admin

    @rule(choice=st.sampled_from(["zero", "wei", "deficit", "deficit-1", "whole"]),
          units=st.integers(1, 50_000))
    def fund_insurance(self, choice, units):
        amount = {"zero": 0, "wei": 1, "deficit": self.deficit,
                  "deficit-1": max(self.deficit - 1, 0), "whole": units * self.w.unit}[choice]
        insurer = self.w.insurer
        self._top_up(insurer, amount)
        with boa.env.prank(insurer):
            if amount == 0:
                with boa.reverts(ZERO_AMOUNT):
                    self.m.fund_insurance(amount)
                return
        self._send(insurer, self.m.fund_insurance, amount)
        self.deficit -= min(self.deficit, amount)
        self.realised += amount
        (log,) = self._logs("InsuranceFunded")
        assert (log.amount, log.deficit) == (amount, self.deficit)
        assert self.m.deficit() == self.deficit

    @rule()
    def collect_fees(self):
        m, w = self.m, self.w
        cash = m.cash()
        balance = self.asset.balanceOf(w.fee_recipient)
        with boa.env.prank(w.stranger):
            if self.fees == 0:
                with boa.reverts(NO_FEES):
                    m.collect_fees()
                return
            if self.fees > cash:
                hypothesis.event("collect_fees: underflow")
                with boa.reverts(compiler=UNDERFLOW):
                    m.collect_fees()
                return
            assert m.collect_fees() == self.fees
        assert self.asset.balanceOf(w.fee_recipient) == balance + self.fees
        self.fees = 0

    @rule(kind=st.sampled_from(["same", "same", "caps", "margins", "fees", "funding",
                                "keeper"]),
          data=st.data())
    def set_risk_params(self, kind, data):
        """New parameters (always valid); funding accrues under the old ones first when
        the index is fresh ("same" only pokes that accrual)."""
        p = self.params.model_dump()
        if kind == "caps":
            long_oi, short_oi = self.m.market()[:2]
            choices = [1, 100_000, 500_000, max(long_oi // WAD, 1), max(short_oi // WAD, 1)]
            p["max_long_oi"] = data.draw(st.sampled_from(choices))
            p["max_short_oi"] = data.draw(st.sampled_from(choices))
        elif kind == "margins":
            p["initial_margin_bps"] = data.draw(st.sampled_from([500, 1_000, 2_000]))
            p["liquidation_fee_bps"] = data.draw(st.sampled_from([0, 50, 100]))
            p["maintenance_margin_bps"] = data.draw(st.sampled_from([100, 250, 350]))
        elif kind == "fees":
            p["taker_fee_bps"] = data.draw(st.sampled_from([0, 10, 100]))
            p["maker_fee_bps"] = data.draw(st.integers(0, p["taker_fee_bps"]))
        elif kind == "funding":
            p["max_funding_velocity"] = data.draw(
                st.sampled_from([0, 3 * WAD // 100, WAD, 10 * WAD]))
            p["max_funding_rate"] = data.draw(st.sampled_from([0, WAD // 100, 5 * WAD // 100,
                                                               WAD]))
        elif kind == "keeper":
            p["min_keeper_fee"] = data.draw(st.sampled_from([0, 1, 5, 100])) * self.w.unit
        new = perp.RiskParams(**p)
        price, skew, slot = self._price_wad(), self._skew(), self._slot()
        fresh = self._fresh()
        with boa.env.prank(self.w.admin):
            self.m.set_risk_params(new.as_tuple())
        if fresh:
            self._check_accrued(slot, price, skew)  # under the old parameters
        else:
            assert self._slot() == slot
        self.params = new
        assert perp.RiskParams.from_chain(tuple(self.m.risk_params())) == new

    @rule(on=st.sampled_from([True, False, False]))
    def set_pause(self, on):
        with boa.env.prank(self.w.admin):
            if on:
                self.m.pause()
            else:
                self.m.unpause()
        self.paused = on
        assert self.m.paused() == on

    # ------------------------------------------------------------ oracle, time

    @rule(bps=st.integers(-500, 500))
    def move_price(self, bps):
        """Hour-to-hour noise of the index."""
        self._set_price(self.price + self.price * bps // 10_000)

    @rule(bps=st.integers(1_000, 8_000))
    def crash(self, bps):
        """The index falls 10-80 %: longs liquidatable, bad debt, the fund exhausted."""
        self._set_price(self.price - self.price * bps // 10_000)

    @rule(bps=st.integers(1_000, 15_000))
    def rally(self, bps):
        """The index climbs 10-150 %: shorts liquidatable, the fund owes the longs."""
        self._set_price(self.price + self.price * bps // 10_000)

    @rule()
    def refresh_price(self):
        assert self.w.set_price(self.price)

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
        quiet_for = self._now() - self.w.last_observed
        boa.env.time_travel(seconds=max(HEARTBEAT + extra - quiet_for, extra))
        assert not self._fresh()

    @rule(dt1=waits, dt2=waits)
    def split_accrual(self, dt1, dt2):
        """Funding accrued in one step or with a poke in between (the same parameters
        set again, which accrues on a fresh index), at a constant index and skew: the
        chain follows the mirror's split path exactly, and that path is the one-step
        accrual within dust."""
        m = self.m
        price, skew = self._price_wad(), self._skew()
        last0, rate0, fidx0 = self._slot()
        boa.env.time_travel(seconds=dt1)
        assert self.w.set_price(self.price)  # the same index, fresh for the poke
        t1 = self._now()
        with boa.env.prank(self.w.admin):
            m.set_risk_params(self.params.as_tuple())
        fidx1, rate1 = perp.funding_step(fidx0, rate0, t1 - last0, price, skew, self.params)
        assert self._slot() == (t1, rate1, fidx1)
        boa.env.time_travel(seconds=dt2)
        t2 = self._now()
        split = perp.funding_step(fidx1, rate1, t2 - t1, price, skew, self.params)
        assert (m.funding_index(), m.funding_rate()) == split
        one, one_rate = perp.funding_step(fidx0, rate0, t2 - last0, price, skew, self.params)
        dust = funding_dust(1, t2 - last0, self.params.max_funding_rate, price) + funding_dust(
            2, t2 - last0, self.params.max_funding_rate, price)
        assert abs(split[0] - one) <= dust
        assert abs(split[1] - one_rate) <= 2
        hypothesis.event(f"split accrual: {'exact' if split[0] == one else 'dust'}")
        assert self.w.set_price(self.price)  # fresh again for the rules that follow

    # ------------------------------------------------------------ invariants

    @invariant()
    def market_invariants(self):
        """Reads the market's storage (no call) and one view; the views' values for
        every trader are the mirror's, checked one view and one trader a step."""
        m, w, vs = self.m, self.w, self.vs
        self.steps += 1
        storage = m._storage
        positions = [self._raw_position(i) for i in range(N_TRADERS)]
        oi, book, cash = storage._oi.get(), storage._book.get(), storage.cash.get()
        long_oi, short_oi = oi & MASK128, oi >> 128
        skew = long_oi - short_oi
        margins, fees = book & MASK128, book >> 128
        price = self._price_wad()
        open_positions = sum(1 for pos in positions if pos[0] != 0)

        # 1. Value conservation: balance = cash = margins + fees + realised insurance.
        assert self.asset.balanceOf(m.address) == cash
        assert margins == sum(pos[1] for pos in positions)
        assert fees == self.fees
        assert storage.deficit.get() == self.deficit
        assert cash == margins + fees + self.realised
        if self.realised < 0:  # the settled margins and fees are not all in cash
            hypothesis.event("invariant: cash short of margins + fees")

        # 4a. The open interest and the aggregate sums are the positions'.
        assert long_oi == sum(max(pos[0], 0) for pos in positions)
        assert short_oi == sum(max(-pos[0], 0) for pos in positions)
        assert storage._sum_size_price.get() == sum(s * lp for s, _, lp, _ in positions)
        assert storage._sum_size_funding.get() == sum(s * lf for s, _, _, lf in positions)

        # 2. Marked to the index: the market's fund is the mirror's (the realised part
        #    less the positions' exact unrealised, rounded against the fund), and the
        #    traders' equities (against the traders) + fees + the fund are the cash less
        #    dust in the market's favour.
        fidx, rate = self._funding_now(price, skew)
        unrealised = self._unrealised(positions, price, fidx)
        insurance = m.insurance_fund()
        assert insurance == self.realised - ceil_div(unrealised, vs)
        equities = [self._equity_of(pos, price, fidx) for pos in positions]
        marked = sum(equities) + fees + insurance
        assert marked <= cash <= marked + open_positions

        # 3. Funding is zero-sum: the traders' rounded debts vs the exact aggregate.
        owed = [ceil_div(s * (fidx - lf), vs) for s, _, _, lf in positions]
        exact = Fraction(sum(s * (fidx - lf) for s, _, _, lf in positions), vs)
        assert exact <= sum(owed) <= exact + open_positions

        # The mirror against the market's own views: one view a step, in a rotation of
        # nine (coprime with the four traders, so every trader meets every view).
        j = self.steps % N_TRADERS
        account = w.traders[j]
        check = self.steps % 9
        if check in (0, 3, 6):
            assert m.equity(account) == equities[j]
        elif check == 1:
            assert m.market() == (long_oi, short_oi, skew, margins, fees, insurance,
                                  self.deficit)
        elif check == 2:
            assert m.funding_owed(account) == owed[j]
        elif check == 4:
            assert (m.funding_index(), m.funding_rate()) == (fidx, rate)
        elif check == 5:
            size = positions[j][0]
            need = perp.initial_margin(size, price, self.params, vs) if size else 0
            assert m.withdrawable(account) == max(0, equities[j] - need)
        elif check == 7:
            size = positions[j][0]
            mm = perp.maintenance_margin(size, price, self.params, vs)
            assert m.can_liquidate(account) == (size != 0 and equities[j] < mm)
        else:
            assert m.position(account) == positions[j]

        # 4b. Over a cap the open interest only shrinks.
        assert long_oi <= self.params.max_long_oi * WAD or long_oi <= self.prev_oi[0]
        assert short_oi <= self.params.max_short_oi * WAD or short_oi <= self.prev_oi[1]
        self.prev_oi = (long_oi, short_oi)


class PerpMachine18(PerpMachine):
    DECIMALS = 18


# py-evm reads of the index cost milliseconds (the feed asks the hub): the machines run
# fewer, deeper examples (most start from a busy market), ~25 ms a step with the
# invariant; budgets in tests/budgets.py.
_SETTINGS = budget("perp_stateful")

TestPerp6 = PerpMachine.TestCase
TestPerp6.settings = _SETTINGS
TestPerp18 = PerpMachine18.TestCase
TestPerp18.settings = _SETTINGS
