"""Reentrancy through the margin asset's transfer hook (issue 23).

The margin asset is a `HookToken`: once armed it calls back into the market from
inside `transfer` / `transferFrom`, with `msg.sender` the token (an attacker-controlled
ERC-777-style hook). Every PerpMarket function that moves the margin asset is the outer
call; every function under the market's one `@nonreentrant` lock is tried as the
re-entry. The re-entry must revert at the market's entry, reasonless and before it calls
anything (Vyper's lock), the hook bubbles that revert so the outer call reverts as a
whole, and nothing moves: the market's storage and every token balance are unchanged.

The outer calls are found in the source, not listed by hand alone:
`test_every_function_that_moves_the_margin_asset_is_an_outer_call` fails when a new
external function reaches `_pull` / `_pay` without a case here, and
`test_every_locked_function_is_tried_as_a_reentry` when a new locked function has no
re-entry payload. Commits, cancellations and executions move no asset (the keeper fee is
reserved in the margin and credited to the keeper's margin in the market, and the trade
settles into the margin): `test_commits_cancellations_and_executions_move_no_asset`
checks that the hook never fires in them, refused trades included. The trade runs in
`settle_order`, which takes no lock (the market calls it inside `execute_order`'s) but
refuses every caller other than the market: re-entered through the hook it reverts with
that reason (`test_settle_order_reentered_through_the_hook_is_refused`), and
`test_every_unlocked_state_changing_function_is_guarded` keeps the unlocked functions to
it and the role-gated administration.
"""

from __future__ import annotations

import re

import boa
import pytest
from boa.contracts.base_evm_contract import BoaError
from eth_abi import encode

from gpushares import reasons
from tests.contracts import deployers
from tests.contracts.perp_helpers import MAX_UINT, WAD, PerpWorld, build_perp_world, hashmap_slot

SOURCE = deployers.CONTRACTS / "PerpMarket.vy"

#: The outer calls: every way the market moves the margin asset (the hook fires in the
#: asset's `transferFrom` for the first two, in its `transfer` for the rest). An order's
#: execution is not one: its keeper fee goes to the keeper's margin in the market.
OUTER = ["deposit_margin", "fund_insurance", "withdraw_margin", "withdraw_margin_with_position",
         "liquidate", "collect_fees"]
#: The re-entries: every function under the lock, called by the hook token.
INNER = ["deposit_margin", "withdraw_margin", "commit_order", "execute_order", "cancel_order",
         "liquidate", "fund_insurance", "collect_fees"]
#: (outer, inner) pairs where the re-entry would fail on its own after the outer call
#: (the outer `collect_fees` leaves no fees to collect): the lock is not the only
#: guard, so only the reasonless revert at entry tells it was the lock.
FAILS_ANYWAY_AFTER = {("collect_fees", "collect_fees")}


class HookPerpWorld:
    """A market margined in a HookToken, with a keeper fee on orders. The hook token's
    own address is a complete participant (margin, an open short, asset approved, no
    pending order), a second victim stays liquidatable, a second order is executable,
    an expired order waits for its cancellation and fees are accrued, so every
    re-entry the hook makes succeeds outside a reentrancy: only the market's lock can
    stop it."""

    def __init__(self):
        self.hook = deployers.HOOK_TOKEN.deploy()
        w: PerpWorld = build_perp_world(asset=self.hook, label="perp-hook", n_traders=7)
        self.w, self.m, self.h, u = w, w.market, self.hook.address, w.unit
        (self.depositor, self.trader, self.victim, self.victim2, self.orderer,
         self.orderer2, self.late) = w.traders
        with boa.env.prank(w.admin):
            self.m.set_order_window(0, 60, u)  # a keeper fee of 1 unit per order
        w.deposit(self.h, 50_000 * u)
        w.trade(self.h, -5_000 * WAD)
        w.deposit(self.trader, 50_000 * u)
        w.trade(self.trader, 20_000 * WAD)
        w.deposit(self.depositor, 1_000 * u)
        for victim in (self.victim, self.victim2):
            w.deposit(victim, 3_000 * u)
            w.trade(victim, 10_000 * WAD)
        w.deposit(self.late, 1_000 * u)
        w.commit(self.late, 100 * WAD)
        boa.env.time_travel(seconds=61)  # the late order expires
        w.walk_price(180 * 10**6)  # 2.00 -> 1.80 USD: the 10x longs fall below
        for orderer in (self.orderer, self.orderer2):
            w.deposit(orderer, 1_000 * u)
            w.commit(orderer, 100 * WAD)
        assert w.next_round()  # the orders are executable
        for account in (self.depositor, w.insurer, self.h):
            w.fund(account, 10**15)
        lens, m = w.lens, self.m
        assert lens.can_liquidate(m.address, self.victim)
        assert lens.can_liquidate(m.address, self.victim2)
        assert not lens.can_liquidate(m.address, self.h)
        assert not lens.can_liquidate(m.address, self.trader)
        assert [lens.order_status(m.address, a)
                for a in (self.orderer, self.orderer2, self.late, self.h)] == [2, 2, 3, 0]
        assert m._storage._book.get() >> 128 > 0  # fees to collect
        assert m.deficit() == 0 and m.market()[5] > 0

    def outer(self, name: str):
        """The victim operation, whose asset transfer fires the hook."""
        m, u, w = self.m, self.w.unit, self.w
        calls = {
            "deposit_margin": (self.depositor, lambda: m.deposit_margin(100 * u)),
            "fund_insurance": (w.insurer, lambda: m.fund_insurance(100 * u)),
            "withdraw_margin": (self.depositor, lambda: m.withdraw_margin(100 * u)),
            "withdraw_margin_with_position": (self.trader, lambda: m.withdraw_margin(100 * u)),
            "liquidate": (w.keeper, lambda: m.liquidate(self.victim)),
            "collect_fees": (w.stranger, lambda: m.collect_fees()),
        }
        sender, fn = calls[name]

        def run():
            with boa.env.prank(sender):
                return fn()

        return run

    def inner(self) -> dict[str, bytes]:
        """Calls back into the market, made by the hook token (msg.sender = its address)."""
        m, u = self.m, self.w.unit
        return {
            "deposit_margin": m.deposit_margin.prepare_calldata(u),
            "withdraw_margin": m.withdraw_margin.prepare_calldata(u),
            "commit_order": m.commit_order.prepare_calldata(100 * WAD, MAX_UINT),
            "execute_order": m.execute_order.prepare_calldata(self.orderer2),
            "cancel_order": m.cancel_order.prepare_calldata(self.late),
            "liquidate": m.liquidate.prepare_calldata(self.victim2),
            "fund_insurance": m.fund_insurance.prepare_calldata(u),
            "collect_fees": m.collect_fees.prepare_calldata(),
        }

    def reenter_alone(self, payload: bytes) -> bool:
        """The hook token's call, made outside any reentrancy: does it go through?"""
        with boa.env.anchor():
            return not boa.env.raw_call(self.m.address, sender=self.h, data=payload).is_error

    def state(self) -> tuple:
        """Everything a refused re-entry must leave as it was: the market's views, its
        storage words, and every position, order and token balance read from storage
        (raw words, exact; reading them through the views costs a call each)."""
        m, s, hook = self.m, self.m._storage, self.hook
        if not hasattr(self, "_slots"):
            w = self.w
            accounts = (self.h, self.depositor, self.trader, self.victim, self.victim2,
                        self.orderer, self.orderer2, self.late, w.keeper, w.insurer,
                        w.stranger, w.fee_recipient)
            self._slots = [hashmap_slot(v.slot, a) for a in accounts
                           for v in (s._pos_a, s._pos_b, s._orders)]
            self._balance_slots = [hashmap_slot(hook._storage.balanceOf.slot, a)
                                   for a in (*accounts, m.address)]
        return (
            m.cash(),
            m.deficit(),
            m.market(),
            tuple(v.get() for v in (s._funding, s._oi, s._sum_size_price, s._sum_size_funding,
                                    s._long_sum_price, s._long_sum_funding, s._book,
                                    s._params_a, s._params_b, s._order_cfg)),
            tuple(boa.env.get_storage(m.address, slot) for slot in self._slots),
            tuple(boa.env.get_storage(hook.address, slot) for slot in self._balance_slots),
            hook.totalSupply(),
        )


@pytest.fixture(scope="module")
def hw() -> HookPerpWorld:
    return HookPerpWorld()


def _deepest_error(frame):
    while True:
        failed = [child for child in frame.children if child.is_error]
        if not failed:
            return frame
        frame = failed[-1]


@pytest.mark.parametrize("inner", INNER)
@pytest.mark.parametrize("outer", OUTER)
def test_reentry_through_the_margin_asset_hook_is_refused(hw, outer, inner):
    m, hook = hw.m, hw.hook
    run = hw.outer(outer)
    payload = hw.inner()[inner]
    # Outside a reentrancy the re-entry goes through in this very state, and (but for
    # the one pair that cannot) in the state the outer call leaves behind too.
    assert hw.reenter_alone(payload), inner
    with boa.env.anchor():
        run()  # without a hook the outer operation goes through
        assert (outer, inner) in FAILS_ANYWAY_AFTER or hw.reenter_alone(payload), inner
    before = hw.state()
    with boa.env.anchor():
        hook.arm(m.address, payload)
        try:
            run()
        except BoaError as error:
            deepest = _deepest_error(error.call_trace)
            # The re-entry reverted in the market at entry, without a reason and before
            # calling anything: the nonreentrant lock.
            assert str(deepest.address) == str(m.address)
            assert deepest.selector == payload[:4]
            assert deepest.children == [] and deepest.output == b""
            # The hook bubbled it: the outer call reverted with the same empty reason.
            assert error.call_trace.output == b""
        else:
            raise AssertionError(f"{outer}: re-entrant {inner} did not revert")
        assert hook.armed()  # the whole outer call, hook included, was rolled back
        assert hw.state() == before  # no value moved
    assert not hook.armed()


@pytest.mark.parametrize("outer", OUTER)
def test_hook_that_reads_a_view_lets_the_call_through(hw, outer):
    """Control: the hook really fires inside each outer call, and a call that takes no
    lock (a view) goes through without changing the outcome."""
    m, hook = hw.m, hw.hook
    run = hw.outer(outer)
    with boa.env.anchor():
        expected = run()
        after = hw.state()
    with boa.env.anchor():
        hook.arm(m.address, m.market.prepare_calldata())
        assert run() == expected
        assert not hook.armed()  # it fired
        assert hw.state() == after


def test_commits_cancellations_and_executions_move_no_asset(hw):
    """A commit reserves the keeper fee in the margin, a cancellation deletes the
    order, an execution takes the fee from the trader's margin into the keeper's and
    settles the trade into the margin, and a refused trade cancels the order and still
    pays the keeper margin to margin: all of it stays in the market, so the asset is
    never called and there is no hook to re-enter through."""
    m, hook, w, u = hw.m, hw.hook, hw.w, hw.w.unit
    hook.arm(m.address, hw.inner()["withdraw_margin"])
    accounts = (hw.trader, hw.depositor, hw.orderer, hw.late, w.keeper, w.stranger)
    balances = tuple(hook.balanceOf(a) for a in (*accounts, m.address))
    cash, keeper_margin = m.cash(), w.margin_of(w.keeper)
    with boa.env.prank(w.stranger):
        m.cancel_order(hw.late)
    assert w.execute(hw.orderer) == u  # the keeper fee, into the keeper's margin
    w.commit(hw.depositor, -100 * WAD, MAX_UINT)  # a sell no fill can satisfy
    w.commit(hw.trader, -1_000 * WAD)
    assert w.next_round()
    assert w.execute_refused(hw.depositor, reasons.PERP_FILL_PRICE_WORSE_ACCEPTABLE) == u
    assert w.execute(hw.trader) == u
    assert w.size_of(hw.trader) == 19_000 * WAD
    assert w.margin_of(w.keeper) == keeper_margin + 3 * u
    assert hook.armed()  # the hook never fired
    assert tuple(hook.balanceOf(a) for a in (*accounts, m.address)) == balances
    assert m.cash() == cash


@pytest.mark.parametrize("outer", OUTER)
def test_settle_order_reentered_through_the_hook_is_refused(hw, outer):
    """`settle_order` (the trade, a call the market makes to itself) has no lock of its
    own: re-entered through the hook with a trade that would go through it is refused
    at its first line (PERP_ONLY_THE_MARKET, before calling anything), the outer call
    reverts as a whole and nothing moves."""
    m, hook = hw.m, hw.hook
    run = hw.outer(outer)
    price = m.index_price()[0]
    payload = m.settle_order.prepare_calldata(hw.h, WAD, MAX_UINT, price, price, 400, 0)
    before = hw.state()
    with boa.env.anchor():
        hook.arm(m.address, payload)
        with pytest.raises(BoaError) as raised:
            run()
        deepest = _deepest_error(raised.value.call_trace)
        assert str(deepest.address) == str(m.address)
        assert deepest.selector == payload[:4]
        assert deepest.children == []
        assert deepest.output == _error(reasons.PERP_ONLY_THE_MARKET)
        assert hook.armed()
        assert hw.state() == before
    assert not hook.armed()


def _error(message: str) -> bytes:
    """The ABI encoding of Error(message)."""
    return bytes.fromhex("08c379a0") + encode(["string"], [message])


# ---------------------------------------------------------------------------------
# The case lists above against the source
# ---------------------------------------------------------------------------------


def _functions(source: str) -> dict[str, tuple[list[str], str]]:
    """Top-level functions of a Vyper source: name -> (decorators, body)."""
    out: dict[str, tuple[list[str], str]] = {}
    decorators: list[str] = []
    for block in re.split(r"\n(?=\S)", source):  # top-level statements
        if block.startswith("@"):
            decorators.append(block.strip())
        elif match := re.match(r"def (\w+)\(", block):
            out[match[1]] = (decorators, block)
            decorators = []
        else:
            decorators = []
    return out


def _moves_the_asset(functions, name, seen=()) -> bool:
    _decorators, body = functions[name]
    if re.search(r"extcall (_ASSET|IERC20\(\w+\))\.transfer", body):
        return True
    return any(_moves_the_asset(functions, callee, (*seen, name))
               for callee in re.findall(r"self\.(_\w+)\(", body)
               if callee in functions and callee not in seen)


def test_every_function_that_moves_the_margin_asset_is_an_outer_call():
    functions = _functions(SOURCE.read_text())
    assert {"_pull", "_pay"} <= {n for n in functions if _moves_the_asset(functions, n)}
    moving = {n for n, (d, _) in functions.items()
              if "@external" in d and _moves_the_asset(functions, n)}
    assert moving == {o.removesuffix("_with_position") for o in OUTER}


def test_every_locked_function_is_tried_as_a_reentry():
    functions = _functions(SOURCE.read_text())
    locked = {n for n, (d, _) in functions.items() if "@external" in d and "@nonreentrant" in d}
    assert locked == set(INNER)


def test_every_unlocked_state_changing_function_is_guarded():
    """The external functions that take no lock and are not views: the role-gated
    administration (each checks its role first) and `settle_order` (refuses every
    caller but the market first, and runs only inside `execute_order`'s lock)."""
    functions = _functions(SOURCE.read_text())
    unlocked = {n: body for n, (d, body) in functions.items()
                if "@external" in d and "@nonreentrant" not in d
                and "@view" not in d and "@pure" not in d}
    assert set(unlocked) == {"settle_order", "set_risk_params", "set_fee_recipient",
                             "set_order_window", "pause", "unpause"}
    for name, body in unlocked.items():
        first = next(line.strip() for line in body.split('"""')[2].splitlines()
                     if line.strip() and not line.strip().startswith("#"))
        if name == "settle_order":
            assert first == "assert msg.sender == self, reasons.PERP_ONLY_THE_MARKET"
        else:
            assert first.startswith("access_control._check_role("), name
