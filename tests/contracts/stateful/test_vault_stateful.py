"""Stateful fuzzing of the SubscriptionVault (issue 20) in the full world of
`vault_helpers.vault_world`: four investors (each may make the others its ERC-7540
operators), the SPV operator (fulfils, funds and withdraws redemption money, distributes
rental income, registers GPUs), a compliance agent (freezes and unfreezes wallets) and the
oracle publishing a moving NAV through the real OracleHub.

Rules: deposit and redeem requests (by the controller or someone else: refused unless an
approved operator; one of each kind pending per controller), fulfilments of both (full
and partial, at the latest NAV, refused when it is stale, not after the request, short of
funds, before the notice period or beyond the backing), cancellations (refused until
`cancel_after`), claims with deposit / mint (both overloads) / redeem / withdraw (partial,
full, over), income claims, income distributions, freezes, redemption funding and
withdrawals, new GPUs, time passing and NAV moves. Every call's outcome is predicted from
a Python model first: it either succeeds with exactly the predicted result or reverts with
exactly the predicted reason (the vault's, the token's or the registry's message).

Invariants, after every step:
- the vault's stablecoin = pending subscriptions + claimable proceeds + redemption funds +
  income owed + an unallocated remainder, which is exactly the income collected and not
  yet credited: at least what the controllers can still be credited, and above it by at
  most the income rounding (one unit per collection and per crediting, plus one per
  controller);
- the vault's shares = shares escrowed for redemption + shares issued and not claimed;
- every fulfilment mints exactly floor(assets * 1e26 / (nav * 1e6)) shares at the NAV it
  reports (less than one share unit in the vault's favour) and sends exactly its assets to
  the treasury; the treasury holds nothing else but withdrawn redemption funds;
- no claim twice: shares claimed = shares issued - shares still claimable, stablecoin paid
  = proceeds set aside - proceeds still claimable, income paid = income credited - income
  owed;
- the share supply never exceeds the backing (active GPUs x shares per GPU);
- every per-controller view (`request`, pending / claimable, max* (0 for a controller
  that may not be paid), `income_owed`, `isOperator`) and every total equals the model.

Speed: the world is built once, in its own `boa.Env`; each example runs in an anchor of it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import boa
import hypothesis
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gpushares import reasons
from gpushares.client import suite
from jurisdictions.codes import Restriction, message
from tests.budgets import budget
from tests.contracts import deployers
from tests.contracts.helpers import FAR_FUTURE, TEST_TABLE, US, gpu, table_rows
from tests.contracts.vault_helpers import (
    CANCEL_AFTER,
    FEE_BPS,
    HEARTBEAT,
    NAV_15,
    NOTICE,
    SHARE,
    USDC,
    VaultWorld,
    vault_world,
)

N = 4
MAX = 2**256 - 1
MAGNITUDE = 10**36
SHARES_PER_GPU = 1_000 * SHARE
SEED_SHARES = 250 * SHARE  # each investor's wallet at the start
NAV_MIN, NAV_MAX = 10**8, 10**10  # 1 to 100 USD
DAY = 86_400

MISSING_ROLE = reasons.ACCESS_CONTROL_MISSING_ROLE

# (kind, value): a portion of some amount the rule reads from the model.
portions = st.one_of(
    st.sampled_from([("all", 0), ("all", 0), ("half", 0)]),
    st.tuples(st.just("bps"), st.integers(1, 10_000)),
    st.tuples(st.just("units"), st.integers(0, 3)),
    st.tuples(st.just("over"), st.sampled_from([1, 10**6])),
)
investors = st.integers(0, N - 1)
# Who calls for a controller: mostly the controller itself.
callers = st.one_of(st.none(), st.none(), st.none(), investors)
deposits = st.one_of(st.integers(1, 100), st.integers(1, 30_000 * USDC),
                     st.sampled_from([0, 1_500 * USDC, 15_000 * USDC, 45_000 * USDC]))
waits = st.sampled_from([1, 60, 3_600, DAY, DAY + 1, NOTICE, CANCEL_AFTER])


def portion(p: tuple[str, int], total: int) -> int:
    kind, value = p
    if kind == "all":
        return total
    if kind == "half":
        return total // 2
    if kind == "bps":
        return total * value // 10_000
    if kind == "units":
        return value
    return total + value


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class Controller:
    """The model of one controller's books in the vault."""

    pdep: int = 0  # pending deposit assets
    tdep: int = 0  # time of the latest deposit request (kept by fulfilments)
    cdep_a: int = 0  # claimable deposit assets
    cdep_s: int = 0  # claimable deposit shares
    pred: int = 0  # pending redeem shares
    tred: int = 0
    cred_s: int = 0  # claimable redeem shares
    cred_a: int = 0  # claimable redeem assets
    snap: int = 0  # income_per_held_share at the last crediting
    credited: int = 0  # income credited, not claimed

    @property
    def held(self) -> int:
        return self.pred + self.cdep_s

    def request(self) -> tuple:
        return (self.pdep, self.tdep, self.cdep_a, self.cdep_s, self.pred, self.tred,
                self.cred_s, self.cred_a)


@dataclass
class Built:
    env: boa.Env
    world: VaultWorld
    people: list = field(default_factory=list)
    observed: int = 0


_BUILT: list[Built] = []


def _build() -> Built:
    env = boa.Env()
    with boa.swap_env(env):
        boa.env.enable_fast_mode()
        chain = deployers.CHAIN
        admin = boa.env.generate_address("vsm-admin")
        kyc = boa.env.generate_address("vsm-kyc")
        operator = boa.env.generate_address("vsm-operator")
        oracle_admin = boa.env.generate_address("vsm-oracle-admin")
        registry = deployers.COMPLIANCE_REGISTRY.at(suite.deploy_registry(chain, kyc))
        with boa.env.prank(kyc):
            registry.set_jurisdictions(table_rows(TEST_TABLE))
            registry.set_investor(operator, US, True, FAR_FUTURE)
        factory = deployers.SPV_FACTORY.at(
            suite.deploy_spv_factory(chain, admin, registry.address, operators=[operator])[1])
        stable = deployers.MOCK_STABLECOIN.at(suite.deploy_mock_stablecoin(chain, admin))
        w = vault_world(registry, factory, stable, admin, operator, oracle_admin, kyc,
                        label="VSM")
        people = [w.investor(f"vsm-investor-{i}") for i in range(N)]
        for who in people:
            w.fund(who, 10**6 * USDC)
        w.fund(operator, 10**12 * USDC)
        with boa.env.prank(operator):
            stable.approve(w.token.address, MAX)
            for who in people:
                w.token.mint(who, SEED_SHARES)
        w.publish_nav(NAV_15)
        return Built(env=env, world=w, people=people, observed=w.observed)


def built() -> Built:
    if not _BUILT:
        _BUILT.append(_build())
    return _BUILT[0]


class VaultMachine(RuleBasedStateMachine):
    # ------------------------------------------------------------ setup

    @initialize(seed=st.sampled_from([True] * 3 + [False]),
                amounts=st.lists(st.one_of(st.integers(1, 30_000 * USDC),
                                           st.sampled_from([15_000 * USDC, 30_000 * USDC])),
                                 min_size=N, max_size=N),
                redeems=st.lists(st.integers(0, 10_000), min_size=N, max_size=N),
                income=st.integers(1, 10_000 * USDC))
    def deploy(self, seed, amounts, redeems, income):
        b = self._built = built()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(boa.swap_env(b.env))
        self._stack.enter_context(b.env.anchor())  # reverted at teardown
        boa.env.sha3_trace = {}
        boa.env.sstore_trace = {}
        w = self.w = b.world
        w.observed = b.observed
        self.vault, self.token, self.stable = w.vault, w.token, w.stable
        self.people = b.people
        self.c = [Controller() for _ in range(N)]
        self.ops: set[tuple[int, int]] = set()
        self.frozen = [False] * N
        self.wallet = [SEED_SHARES] * N
        self.nav, self.nav_time = NAV_15, b.observed
        self.funds = 0
        self.supply = self.token.totalSupply()
        self.cap = self.token.backing()[0]
        self.ps = 0  # income_per_held_share
        self.total_owed = 0
        self.received = self.credited_ever = self.paid_income = 0
        self.n_collects = self.n_settles = 0
        self.fulfilled_shares = self.claimed_shares = 0
        self.fulfilled_assets = self.set_aside = self.paid_assets = self.withdrawn = 0
        self.treasury0 = self.stable.balanceOf(w.treasury)
        self.gpus = 0
        if seed:
            # Start most examples busy: everyone subscribed and asked for a redemption,
            # the notice period passed, a NAV came out, the operator funded and
            # fulfilled what it could (the backing may refuse some), income was
            # distributed over the held shares, and everyone subscribed again.
            for i in range(N):
                self._request_deposit(i, None, amounts[i])
                self._request_redeem(i, None, ("bps", redeems[i]))
            boa.env.time_travel(seconds=NOTICE)
            self._publish(0, 1)
            self._fund_redemptions(100_000 * USDC)
            for i in range(N):
                self._fulfil_deposit(i, ("all", 0))
                # Half the redemptions in full (their controllers may request again).
                self._fulfil_redeem(i, ("all", 0) if i % 2 else ("bps", 5_000 + redeems[i] // 2))
            self._distribute(income)
            for i in range(N):
                self._request_deposit(i, None, amounts[N - 1 - i] // 3)

    def teardown(self):
        stack = getattr(self, "_stack", None)
        if stack is not None:
            stack.close()

    # ------------------------------------------------------------ helpers

    def _now(self) -> int:
        return boa.env.evm.patch.timestamp

    def _held_total(self) -> int:
        return sum(c.held for c in self.c)

    def _claimable_vault(self) -> int:
        return self.token.claimable(self.vault.address)

    def _collect(self, owed: int) -> None:
        """The vault's `_collect`, given what the token owed it before the call."""
        held = self._held_total()
        if owed == 0 or held == 0:
            return
        self.ps += owed * MAGNITUDE // held
        self.received += owed
        self.n_collects += 1

    def _settle(self, i: int) -> None:
        c = self.c[i]
        exact = c.held * (self.ps - c.snap)
        earned = exact // MAGNITUDE
        if exact % MAGNITUDE:
            self.n_settles += 1
        c.snap = self.ps
        c.credited += earned
        self.credited_ever += earned
        self.total_owed += earned

    def _income_owed(self, i: int, owed: int | None = None) -> int:
        """The `income_owed` view (`owed`: what the token owes the vault, if known)."""
        c, held = self.c[i], self._held_total()
        ps = self.ps
        if held:
            owed = self._claimable_vault() if owed is None else owed
            ps += owed * MAGNITUDE // held
        return c.credited + c.held * (ps - c.snap) // MAGNITUDE

    def _pick(self, i: int, attr: str) -> int:
        """Controller `i` if its `attr` is non-zero, else the next one whose is (else `i`):
        most fulfilments, claims and cancellations then have something to act on."""
        for k in range(N):
            if getattr(self.c[(i + k) % N], attr):
                return (i + k) % N
        return i

    def _may_act(self, i: int, by: int | None) -> bool:
        return by is None or by == i or (i, by) in self.ops

    def _caller(self, i: int, by: int | None) -> str:
        return self.people[i if by is None else by]

    def _fresh(self) -> bool:
        return self._now() - self.nav_time <= HEARTBEAT

    def _events(self, name: str) -> list:
        return [e for e in self.vault.get_logs()
                if type(e).__name__ == name and e.address == self.vault.address]

    def _top_up(self, i: int, amount: int) -> None:
        who = self.people[i]
        balance = self.stable.balanceOf(who)
        if balance < amount:
            with boa.env.prank(self.w.stable_admin):
                self.stable.mint(who, amount - balance)

    # ------------------------------------------------------------ oracle and time

    @rule(wait=st.sampled_from([0, 60, 3_600, DAY]), move=st.integers(-2_000, 2_000))
    def publish(self, wait, move):
        self._publish(wait, move)

    def _publish(self, wait: int, move: int) -> None:
        if wait:
            boa.env.time_travel(seconds=wait)
        nav = min(NAV_MAX, max(NAV_MIN, self.nav * (10_000 + move) // 10_000))
        self.nav_time = self.w.publish_nav(nav)
        self.nav = nav
        assert self.w.feed.latestRoundData()[1:4:2] == (nav, self.nav_time)

    @rule(wait=waits)
    def time_passes(self, wait):
        boa.env.time_travel(seconds=wait)

    # ------------------------------------------------------------ requests

    @rule(i=investors, by=callers, amount=deposits)
    def request_deposit(self, i, by, amount):
        self._request_deposit(i, by, amount)

    def _request_deposit(self, i: int, by: int | None, amount: int) -> None:
        who, caller = self.people[i], self._caller(i, by)
        self._top_up(i, amount)
        with boa.env.prank(caller):
            if amount == 0:
                with boa.reverts(reasons.VAULT_ZERO_AMOUNT):
                    self.vault.requestDeposit(amount, who, who)
                return
            if not self._may_act(i, by):
                with boa.reverts(reasons.VAULT_NOT_OWNER_OR_OPERATOR):
                    self.vault.requestDeposit(amount, who, who)
                return
            if self.c[i].pdep:
                hypothesis.event("request_deposit refused: pending")
                with boa.reverts(reasons.VAULT_REQUEST_PENDING):
                    self.vault.requestDeposit(amount, who, who)
                return
            if self.frozen[i]:
                with boa.reverts(message(Restriction.RECEIVER_FROZEN)):
                    self.vault.requestDeposit(amount, who, who)
                return
            assert self.vault.requestDeposit(amount, who, who) == 0
        (event,) = self._events("DepositRequest")
        assert (event.controller, event.owner, event.sender, event.assets) == (
            who, who, caller, amount)
        c = self.c[i]
        hypothesis.event("request_deposit")
        c.pdep = amount
        c.tdep = self._now()

    @rule(i=investors, by=callers, p=portions)
    def request_redeem(self, i, by, p):
        self._request_redeem(i, by, p)

    def _request_redeem(self, i: int, by: int | None, p: tuple[str, int]) -> None:
        who, caller = self.people[i], self._caller(i, by)
        shares = portion(p, self.wallet[i])
        owed = self._claimable_vault()
        with boa.env.prank(caller):
            if shares == 0:
                with boa.reverts(reasons.VAULT_ZERO_AMOUNT):
                    self.vault.requestRedeem(shares, who, who)
                return
            if not self._may_act(i, by):
                with boa.reverts(reasons.VAULT_NOT_OWNER_OR_OPERATOR):
                    self.vault.requestRedeem(shares, who, who)
                return
            if self.c[i].pred:
                hypothesis.event("request_redeem refused: pending")
                with boa.reverts(reasons.VAULT_REQUEST_PENDING):
                    self.vault.requestRedeem(shares, who, who)
                return
            if self.frozen[i]:
                with boa.reverts(message(Restriction.SENDER_FROZEN)):
                    self.vault.requestRedeem(shares, who, who)
                return
            if shares > self.wallet[i]:
                with boa.reverts(message(Restriction.INSUFFICIENT_BALANCE)):
                    self.vault.requestRedeem(shares, who, who)
                return
            assert self.vault.requestRedeem(shares, who, who) == 0
        self._collect(owed)
        self._settle(i)
        c = self.c[i]
        hypothesis.event("request_redeem")
        c.pred = shares
        c.tred = self._now()
        self.wallet[i] -= shares

    # ------------------------------------------------------------ fulfilments

    @rule(i=investors, p=portions)
    def fulfil_deposit(self, i, p):
        self._fulfil_deposit(self._pick(i, "pdep"), p)

    def _fulfil_deposit(self, i: int, p: tuple[str, int]) -> None:
        c, who = self.c[i], self.people[i]
        assets = portion(p, c.pdep)
        owed = self._claimable_vault()
        shares = assets * 10**26 // (self.nav * 10**6)
        with boa.env.prank(self.w.operator):
            expected = None
            if assets == 0 or assets > c.pdep:
                expected = reasons.VAULT_EXCEEDS_PENDING
            elif not self._fresh():
                expected = reasons.VAULT_NAV_STALE
            elif self.nav_time <= c.tdep:
                expected = reasons.VAULT_NAV_NOT_AFTER_REQUEST
            elif shares == 0:
                expected = reasons.VAULT_NO_SHARE_AT_NAV
            elif self.supply + shares > self.cap:
                expected = reasons.TOKEN_MINT_EXCEEDS_ACTIVE_GPUS
            if expected is not None:
                hypothesis.event(f"fulfil_deposit refused: {expected[:40]}")
                with boa.reverts(expected):
                    self.vault.fulfil_deposit(who, assets)
                return
            assert self.vault.fulfil_deposit(who, assets) == shares
        (event,) = self._events("DepositFulfilled")
        assert (event.controller, event.assets, event.shares, event.nav, event.nav_time) == (
            who, assets, shares, self.nav, self.nav_time)
        # No share without its assets at the fulfilment NAV: rounded down, < 1 unit.
        assert shares * self.nav * 10**6 <= assets * 10**26 < (shares + 1) * self.nav * 10**6
        hypothesis.event("fulfil_deposit")
        self._collect(owed)
        self._settle(i)
        c.pdep -= assets
        c.cdep_a += assets
        c.cdep_s += shares
        self.supply += shares
        self.fulfilled_shares += shares
        self.fulfilled_assets += assets
        assert (self.vault.last_fulfilment_nav(), self.vault.last_fulfilment_time()) == (
            self.nav, self._now())

    @rule(i=investors, p=portions)
    def fulfil_redeem(self, i, p):
        self._fulfil_redeem(self._pick(i, "pred"), p)

    def _fulfil_redeem(self, i: int, p: tuple[str, int]) -> None:
        c, who = self.c[i], self.people[i]
        shares = portion(p, c.pred)
        owed = self._claimable_vault()
        gross = shares * self.nav * 10**6 // 10**26
        fee = ceil_div(gross * FEE_BPS, 10_000)
        net = gross - fee
        with boa.env.prank(self.w.operator):
            expected = None
            if shares == 0 or shares > c.pred:
                expected = reasons.VAULT_EXCEEDS_PENDING
            elif self._now() < c.tred + NOTICE:
                expected = reasons.VAULT_NOTICE_NOT_OVER
            elif not self._fresh():
                expected = reasons.VAULT_NAV_STALE
            elif self.nav_time <= c.tred:
                expected = reasons.VAULT_NAV_NOT_AFTER_REQUEST
            elif net > self.funds:
                expected = reasons.VAULT_REDEMPTION_FUNDS_SHORT
            if expected is not None:
                hypothesis.event(f"fulfil_redeem refused: {expected[:40]}")
                with boa.reverts(expected):
                    self.vault.fulfil_redeem(who, shares)
                return
            assert self.vault.fulfil_redeem(who, shares) == net
        (event,) = self._events("RedeemFulfilled")
        assert (event.shares, event.assets, event.fee, event.nav) == (shares, net, fee, self.nav)
        hypothesis.event("fulfil_redeem")
        self._collect(owed)
        self._settle(i)
        c.pred -= shares
        c.cred_s += shares
        c.cred_a += net
        self.funds -= net
        self.supply -= shares
        self.set_aside += net

    @rule(amount=st.one_of(st.just(0), st.integers(1, 50_000 * USDC)))
    def fund_redemptions(self, amount):
        self._fund_redemptions(amount)

    def _fund_redemptions(self, amount: int) -> None:
        with boa.env.prank(self.w.operator):
            if amount == 0:
                with boa.reverts(reasons.VAULT_ZERO_AMOUNT):
                    self.vault.fund_redemptions(amount)
                return
            self.vault.fund_redemptions(amount)
        self.funds += amount

    @rule(p=portions, intruder=st.one_of(st.none(), investors))
    def withdraw_redemption_funds(self, p, intruder):
        amount = portion(p, self.funds)
        if intruder is not None:
            with boa.env.prank(self.people[intruder]), boa.reverts(MISSING_ROLE):
                self.vault.withdraw_redemption_funds(amount)
            return
        with boa.env.prank(self.w.operator):
            if amount == 0 or amount > self.funds:
                with boa.reverts(reasons.VAULT_EXCEEDS_REDEMPTION_FUNDS):
                    self.vault.withdraw_redemption_funds(amount)
                return
            self.vault.withdraw_redemption_funds(amount)
        self.funds -= amount
        self.withdrawn += amount

    # ------------------------------------------------------------ cancellations

    @rule(i=investors, by=callers)
    def cancel_deposit(self, i, by):
        i = self._pick(i, "pdep")
        c, who, caller = self.c[i], self.people[i], self._caller(i, by)
        with boa.env.prank(caller):
            expected = None
            if not self._may_act(i, by):
                expected = reasons.VAULT_NOT_CONTROLLER_OR_OPERATOR
            elif c.pdep == 0:
                expected = reasons.VAULT_NOTHING_PENDING
            elif self._now() < c.tdep + CANCEL_AFTER:
                expected = reasons.VAULT_REQUEST_LOCKED
            elif self.frozen[i]:  # a refund is a payment: the payee check
                expected = message(Restriction.RECEIVER_FROZEN)
            if expected is not None:
                hypothesis.event(f"cancel_deposit refused: {expected[:40]}")
                with boa.reverts(expected):
                    self.vault.cancelDepositRequest(who, who)
                return
            cash = self.stable.balanceOf(who)
            assert self.vault.cancelDepositRequest(who, who) == c.pdep
        hypothesis.event("cancel_deposit")
        assert self.stable.balanceOf(who) == cash + c.pdep  # exactly what was escrowed
        c.pdep = c.tdep = 0

    @rule(i=investors, by=callers)
    def cancel_redeem(self, i, by):
        i = self._pick(i, "pred")
        c, who, caller = self.c[i], self.people[i], self._caller(i, by)
        owed = self._claimable_vault()
        with boa.env.prank(caller):
            expected = None
            if not self._may_act(i, by):
                expected = reasons.VAULT_NOT_CONTROLLER_OR_OPERATOR
            elif c.pred == 0:
                expected = reasons.VAULT_NOTHING_PENDING
            elif self._now() < c.tred + CANCEL_AFTER:
                expected = reasons.VAULT_REQUEST_LOCKED
            elif self.frozen[i]:  # the controller's sender check (a freeze reaches claims)
                expected = message(Restriction.SENDER_FROZEN)
            if expected is not None:
                hypothesis.event(f"cancel_redeem refused: {expected[:40]}")
                with boa.reverts(expected):
                    self.vault.cancelRedeemRequest(who, who)
                return
            assert self.vault.cancelRedeemRequest(who, who) == c.pred
        hypothesis.event("cancel_redeem")
        self._collect(owed)
        self._settle(i)
        self.wallet[i] += c.pred
        c.pred = c.tred = 0

    # ------------------------------------------------------------ claims

    @rule(i=investors, by=callers, to=investors, p=portions,
          kind=st.sampled_from(["deposit", "mint", "deposit2", "mint2"]))
    def claim_shares(self, i, by, to, p, kind):
        i = self._pick(i, "cdep_s")
        two_args = kind.endswith("2")
        if two_args:  # the ERC-4626 overload: the caller is the controller
            by = None
        c, who, caller, receiver = self.c[i], self.people[i], self._caller(i, by), self.people[to]
        owed = self._claimable_vault()
        if kind.startswith("deposit"):
            assets = portion(p, c.cdep_a)
            exceeds = assets == 0 or assets > c.cdep_a
            shares = 0 if exceeds else c.cdep_s * assets // c.cdep_a
            amount, result = assets, shares
        else:
            shares = portion(p, c.cdep_s)
            exceeds = shares == 0 or shares > c.cdep_s
            assets = 0 if exceeds else ceil_div(c.cdep_a * shares, c.cdep_s)
            amount, result = shares, assets
        fn = getattr(self.vault, kind.rstrip("2"))
        args = (amount, receiver) if two_args else (amount, receiver, who)
        expected = None
        if exceeds:
            expected = reasons.VAULT_EXCEEDS_CLAIMABLE
        elif not self._may_act(i, by):
            expected = reasons.VAULT_NOT_CONTROLLER_OR_OPERATOR
        elif shares == 0:
            expected = reasons.VAULT_NO_SHARE_AT_NAV
        elif self.frozen[i]:  # the controller's sender check (a freeze reaches claims)
            expected = message(Restriction.SENDER_FROZEN)
        elif self.frozen[to]:
            expected = message(Restriction.RECEIVER_FROZEN)
        with boa.env.prank(caller):
            if expected is not None:
                hypothesis.event(f"claim_shares refused: {expected[:40]}")
                with boa.reverts(expected):
                    fn(*args)
                return
            assert fn(*args) == result
        (event,) = self._events("Deposit")
        assert (event.sender, event.owner, event.assets, event.shares) == (
            who, receiver, assets, shares)
        hypothesis.event("claim_shares")
        self._collect(owed)
        self._settle(i)
        c.cdep_a -= assets
        c.cdep_s -= shares
        self.wallet[to] += shares
        self.claimed_shares += shares

    @rule(i=investors, by=callers, to=investors, p=portions,
          kind=st.sampled_from(["redeem", "withdraw"]))
    def claim_assets(self, i, by, to, p, kind):
        i = self._pick(i, "cred_s")
        c, who, caller, receiver = self.c[i], self.people[i], self._caller(i, by), self.people[to]
        if kind == "redeem":
            shares = portion(p, c.cred_s)
            exceeds = shares == 0 or shares > c.cred_s
            assets = 0 if exceeds else c.cred_a * shares // c.cred_s
            amount, result = shares, assets
        else:
            assets = portion(p, c.cred_a)
            exceeds = assets == 0 or assets > c.cred_a
            shares = 0 if exceeds else ceil_div(c.cred_s * assets, c.cred_a)
            amount, result = assets, shares
        expected = None
        if exceeds:
            expected = reasons.VAULT_EXCEEDS_CLAIMABLE
        elif not self._may_act(i, by):
            expected = reasons.VAULT_NOT_CONTROLLER_OR_OPERATOR
        elif self.frozen[i] or self.frozen[to]:
            expected = message(Restriction.RECEIVER_FROZEN)
        fn = getattr(self.vault, kind)
        with boa.env.prank(caller):
            if expected is not None:
                hypothesis.event(f"claim_assets refused: {expected[:40]}")
                with boa.reverts(expected):
                    fn(amount, receiver, who)
                return
            cash = self.stable.balanceOf(receiver)
            assert fn(amount, receiver, who) == result
        (event,) = self._events("Withdraw")
        assert (event.sender, event.receiver, event.owner, event.assets, event.shares) == (
            caller, receiver, who, assets, shares)
        assert self.stable.balanceOf(receiver) == cash + assets
        hypothesis.event("claim_assets")
        c.cred_s -= shares
        c.cred_a -= assets
        self.paid_assets += assets

    @rule(i=investors, by=callers, to=investors)
    def claim_income(self, i, by, to):
        c, who, caller, receiver = self.c[i], self.people[i], self._caller(i, by), self.people[to]
        owed = self._claimable_vault()
        amount = self._income_owed(i)
        expected = None
        if not self._may_act(i, by):
            expected = reasons.VAULT_NOT_CONTROLLER_OR_OPERATOR
        elif amount == 0:
            expected = reasons.VAULT_NO_INCOME
        elif self.frozen[i] or self.frozen[to]:
            expected = message(Restriction.RECEIVER_FROZEN)
        with boa.env.prank(caller):
            if expected is not None:
                hypothesis.event(f"claim_income refused: {expected[:40]}")
                with boa.reverts(expected):
                    self.vault.claim_income(receiver, who)
                return
            cash = self.stable.balanceOf(receiver)
            assert self.vault.claim_income(receiver, who) == amount
        assert self.stable.balanceOf(receiver) == cash + amount
        hypothesis.event("claim_income")
        self._collect(owed)
        self._settle(i)
        assert c.credited == amount
        c.credited = 0
        self.total_owed -= amount
        self.paid_income += amount

    # ------------------------------------------------------------ the SPV, compliance

    @precondition(lambda self: self.supply > 0)
    @rule(amount=st.one_of(st.integers(1, 1_000), st.integers(1, 100_000 * USDC)))
    def distribute(self, amount):
        self._distribute(amount)

    def _distribute(self, amount: int) -> None:
        with boa.env.prank(self.w.operator):
            self.token.distribute(amount)

    @rule(i=investors)
    def toggle_freeze(self, i):
        self.frozen[i] = not self.frozen[i]
        with boa.env.prank(self.w.compliance_admin):
            self.w.registry.set_wallet_frozen(self.people[i], self.frozen[i])

    @rule(i=investors, j=investors, approved=st.booleans())
    def set_operator(self, i, j, approved):
        with boa.env.prank(self.people[i]):
            if i == j:
                with boa.reverts(reasons.VAULT_OPERATOR_IS_SELF):
                    self.vault.setOperator(self.people[j], approved)
                return
            assert self.vault.setOperator(self.people[j], approved) is True
        if approved:
            self.ops.add((i, j))
        else:
            self.ops.discard((i, j))

    @precondition(lambda self: self.gpus < 8)
    @rule(n=st.integers(1, 2))
    def add_gpus(self, n):
        with boa.env.prank(self.w.operator):
            self.token.add_gpus([gpu(f"VSM-EXTRA-{self.gpus + k}") for k in range(n)])
        self.gpus += n
        self.cap += n * SHARES_PER_GPU

    # ------------------------------------------------------------ invariants

    @invariant()
    def books_balance(self):
        if not hasattr(self, "c"):
            return
        vault, token, stable = self.vault, self.token, self.stable
        c = self.c
        totals = (
            vault.total_pending_deposit_assets(), vault.total_claimable_deposit_assets(),
            vault.total_claimable_deposit_shares(), vault.total_pending_redeem_shares(),
            vault.total_claimable_redeem_shares(), vault.total_claimable_redeem_assets(),
            vault.redemption_funds(), vault.total_income_owed(), vault.income_per_held_share(),
        )
        assert totals == (
            sum(x.pdep for x in c), sum(x.cdep_a for x in c), sum(x.cdep_s for x in c),
            sum(x.pred for x in c), sum(x.cred_s for x in c), sum(x.cred_a for x in c),
            self.funds, self.total_owed, self.ps,
        )
        # Stablecoin: the books plus the income collected and not yet credited.
        balance = stable.balanceOf(vault.address)
        booked = totals[0] + totals[5] + totals[6] + totals[7]
        extra = balance - booked
        assert extra == self.received - self.credited_ever
        uncredited = sum(x.held * (self.ps - x.snap) // MAGNITUDE for x in c)
        assert uncredited <= extra <= uncredited + self.n_collects + self.n_settles + N
        # Shares: escrowed for redemption + issued and not claimed (nothing else).
        assert token.balanceOf(vault.address) == totals[3] + totals[2]
        # Supply within the backing.
        supply = token.totalSupply()
        assert supply == self.supply <= self.cap == token.backing()[0]
        # Money out: the treasury got exactly the fulfilled subscriptions and the
        # withdrawn redemption funds.
        assert stable.balanceOf(self.w.treasury) == (
            self.treasury0 + self.fulfilled_assets + self.withdrawn)
        # No claim twice.
        assert self.claimed_shares == self.fulfilled_shares - totals[2]
        assert self.paid_assets == self.set_aside - totals[5]
        assert self.paid_income == self.credited_ever - self.total_owed

    @invariant()
    def per_controller_views(self):
        if not hasattr(self, "c"):
            return
        vault = self.vault
        owed = self._claimable_vault()
        for i, (c, who) in enumerate(zip(self.c, self.people, strict=True)):
            assert vault.request(who) == c.request()
            assert vault.income_owed(who) == self._income_owed(i, owed)
        # The single-value views of one controller per step, in turn (they read the same
        # words as `request`), its wallet and its operators.
        self.turn = getattr(self, "turn", -1) + 1
        i = self.turn % N
        c, who = self.c[i], self.people[i]
        assert self.token.balanceOf(who) == self.wallet[i]
        assert (vault.pendingDepositRequest(0, who), vault.claimableDepositRequest(0, who),
                vault.pendingRedeemRequest(0, who), vault.claimableRedeemRequest(0, who)
                ) == (c.pdep, c.cdep_a, c.pred, c.cred_s)
        payable = not self.frozen[i]  # maxRedeem / maxWithdraw: 0 while not payable
        assert (vault.maxDeposit(who), vault.maxMint(who), vault.maxRedeem(who),
                vault.maxWithdraw(who)) == (c.cdep_a, c.cdep_s, c.cred_s * payable,
                                            c.cred_a * payable)
        for j, other in enumerate(self.people):
            if j != i:
                assert vault.isOperator(who, other) == ((i, j) in self.ops)


TestVaultMachine = VaultMachine.TestCase
TestVaultMachine.settings = budget("vault_stateful")
