"""Stateful fuzzing of GPUShareToken: random mint / burn / transfer / transferFrom /
distribute / claim / add / impair / retire / pause sequences, plus the compliance agent
powers (wallet freezes, partial freezes, forced transfers, wallet recoveries), checked
after every step against the income invariants and an exact rational model. Every
share movement's expected outcome comes from the Python engine (`decide`), so the
machine also holds the engine and the chain to the same restriction codes."""

from __future__ import annotations

import contextlib
from fractions import Fraction

import boa
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from gpushares import reasons
from jurisdictions.codes import Restriction, message
from jurisdictions.engine import InvestorRecord, Party, ShareAsset, decide
from jurisdictions.rules import Citation, JurisdictionRules, RuleBook
from tests.budgets import budget
from tests.contracts import deployers
from tests.contracts.helpers import (
    FAR_FUTURE,
    FORCED_TRANSFER_ROLE,
    FREEZER_ROLE,
    MAGNITUDE,
    MAX_INCOME_PER_SHARE,
    OPERATOR_ROLE,
    RECOVERY_ROLE,
    US,
    gpu,
    table_rows,
)

SHARES_PER_GPU = 1_000 * 10**18
N_HOLDERS = 6  # the operator (holds bought-back shares) and five investors
MAX_WALLETS = 9  # recoveries may add up to three new wallets
LEI = "5493001KJTIIGC8Y1R12"
RULES = RuleBook([
    JurisdictionRules(
        alpha2="US", numeric=US, name="United States (test rule)",
        title_recognition="recognised", holder_policy="allowed",
        basis="A test rule for the state machine, not the shipped rules data.",
        citations=(Citation(reference="test"),), as_of="2026-01-01", reviewed_by="tests",
    )
])

amounts = st.integers(min_value=1, max_value=3 * SHARES_PER_GPU)
income = st.one_of(st.integers(1, 1_000), st.integers(1, 10**13))
holder_index = st.integers(0, N_HOLDERS - 1)


class _World:
    """Contracts and actors, deployed once into the machine's own boa environment; every
    example runs inside an anchor of it, so it starts from this state and leaves none."""

    def __init__(self):
        admin = boa.env.generate_address("sm-admin")
        self.compliance = boa.env.generate_address("sm-compliance")
        self.agent = boa.env.generate_address("sm-agent")
        self.operator = boa.env.generate_address("sm-operator")
        self.spender = boa.env.generate_address("sm-spender")
        self.holders = [self.operator] + [
            boa.env.generate_address(f"sm-investor-{i}") for i in range(N_HOLDERS - 1)
        ]
        with boa.env.prank(self.compliance):
            self.registry = deployers.COMPLIANCE_REGISTRY.deploy(self.compliance)
            self.registry.set_jurisdictions(table_rows({US: (1, 1)}))
            for holder in self.holders:
                self.registry.set_investor(holder, US, False, FAR_FUTURE)
        with boa.env.prank(admin):
            self.stable = deployers.MOCK_STABLECOIN.deploy()
            blueprint = deployers.SHARE_TOKEN.deploy_as_blueprint()
            factory = deployers.SPV_FACTORY.deploy(blueprint.address, self.registry.address)
            factory.grantRole(OPERATOR_ROLE, self.operator)
            self.stable.mint(self.operator, 10**30)
        with boa.env.prank(self.operator):
            _, address = factory.create_spv(
                "Fuzz SPV", 840, LEI, b"\x01" * 32, "Fuzz Shares", "FZZ",
                SHARES_PER_GPU, self.stable.address,
            )
            self.token = deployers.SHARE_TOKEN.at(address)
            for role in (FREEZER_ROLE, FORCED_TRANSFER_ROLE, RECOVERY_ROLE):
                self.token.grantRole(role, self.agent)
            self.stable.approve(address, 2**256 - 1)
            self.token.add_gpus([gpu(f"SM-{i}") for i in range(4)])
        for holder in self.holders[1:]:
            with boa.env.prank(holder):
                self.token.approve(self.spender, 2**256 - 1)


_BUILT: list[tuple[boa.Env, _World]] = []


def _world() -> tuple[boa.Env, _World]:
    """The machine's environment and world, deployed on first use (one `boa.Env` per
    worker: each new Env wraps py-evm's shared SHA3 opcode once more)."""
    if not _BUILT:
        env = boa.Env()
        with boa.swap_env(env):
            boa.env.enable_fast_mode()
            _BUILT.append((env, _World()))
    return _BUILT[0]


class ShareIncomeMachine(RuleBasedStateMachine):
    """One SPV token, six holders, an exact model of what each holder has earned."""

    @initialize()
    def deploy(self):
        env, world = _world()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(boa.swap_env(env))
        self._stack.enter_context(env.anchor())  # reverted at teardown
        boa.env.sha3_trace = {}
        boa.env.sstore_trace = {}
        self.operator, self.spender = world.operator, world.spender
        self.holders = list(world.holders)  # recoveries append wallets to this copy
        self.stable, self.token = world.stable, world.token
        self.registry, self.compliance, self.agent = world.registry, world.compliance, world.agent
        self.next_serial = 4
        self.status = {i: 1 for i in range(1, 5)}  # gpu id -> ACTIVE(1) / IMPAIRED(2) / RETIRED(4)
        self.balances = [0] * N_HOLDERS
        self.earned = [Fraction(0)] * N_HOLDERS
        self.claimed = [0] * N_HOLDERS  # per wallet; a recovery moves the pending part
        self.total_claimed = 0
        self.distributed = 0
        self.paused = False
        self.wallet_frozen = [False] * N_HOLDERS
        self.frozen_tokens = [0] * N_HOLDERS

    def teardown(self):
        stack = getattr(self, "_stack", None)
        if stack is not None:
            stack.close()

    # --- helpers -------------------------------------------------------------------
    def _count(self, status):
        return sum(1 for s in self.status.values() if s == status)

    def _supply(self):
        return sum(self.balances)

    def _party(self, i):
        return Party(
            address=self.holders[i],
            record=InvestorRecord(jurisdiction=US, accredited=False, expires_at=FAR_FUTURE),
            wallet_frozen=self.wallet_frozen[i],
            balance=self.balances[i],
            frozen_tokens=self.frozen_tokens[i],
            is_spv=i == 0,
        )

    def _expected(self, src, dst, amount):
        """The engine's code for a movement (src/dst None: mint/burn); checks the chain
        predicts the same code before the movement is tried."""
        asset = ShareAsset(
            spv_lei=LEI,
            locations=frozenset({US}) if self._count(1) + self._count(2) else frozenset(),
            paused=self.paused,
        )
        sender = None if src is None else self._party(src)
        receiver = None if dst is None else self._party(dst)
        code = decide(asset, sender, receiver, amount, rules=RULES, now=boa.env.timestamp).code
        zero = "0x0000000000000000000000000000000000000000"
        onchain = self.token.detectTransferRestriction(
            zero if src is None else self.holders[src],
            zero if dst is None else self.holders[dst],
            amount,
        )
        assert onchain == code, f"engine {code!r} != chain {onchain}"
        return code

    # --- rules ---------------------------------------------------------------------
    @rule(to=holder_index, amount=amounts)
    def mint(self, to, amount):
        cap = self._count(1) * SHARES_PER_GPU
        code = self._expected(None, to, amount)
        with boa.env.prank(self.operator):
            if code != Restriction.SUCCESS:
                with boa.reverts(message(code)):
                    self.token.mint(self.holders[to], amount)
            elif self._supply() + amount > cap:
                with boa.reverts(reasons.TOKEN_MINT_EXCEEDS_ACTIVE_GPUS):
                    self.token.mint(self.holders[to], amount)
            else:
                self.token.mint(self.holders[to], amount)
                self.balances[to] += amount

    @rule(amount=amounts)
    def burn(self, amount):
        code = self._expected(0, None, amount)
        with boa.env.prank(self.operator):
            if code != Restriction.SUCCESS:
                with boa.reverts(message(code)):
                    self.token.burn(amount)
            else:
                self.token.burn(amount)
                self.balances[0] -= amount

    @rule(data=st.data(), amount=amounts, via_allowance=st.booleans())
    def transfer(self, data, amount, via_allowance):
        src = data.draw(self._wallet_index())
        dst = data.draw(self._wallet_index())
        via_allowance = via_allowance and src != 0
        amount = min(amount, self.balances[src]) if amount % 5 else amount
        sender = self.spender if via_allowance else self.holders[src]
        with boa.env.prank(sender):
            call = (
                (lambda: self.token.transferFrom(self.holders[src], self.holders[dst], amount))
                if via_allowance
                else (lambda: self.token.transfer(self.holders[dst], amount))
            )
            code = self._expected(src, dst, amount)
            if code != Restriction.SUCCESS:
                with boa.reverts(message(code)):
                    call()
            else:
                call()
                self.balances[src] -= amount
                self.balances[dst] += amount

    @rule(amount=income)
    def distribute(self, amount):
        supply = self._supply()
        with boa.env.prank(self.operator):
            if supply == 0:
                with boa.reverts(reasons.TOKEN_NO_SHARES_OUTSTANDING_RECEIVE):
                    self.token.distribute(amount)
                return
            # A dust supply with large income would push the accumulator past its bound:
            # refused, never wrapped (the foundation's overflow guard).
            magnified = amount * MAGNITUDE + self.token.income_carry()
            if self.token.income_per_share() + magnified // supply > MAX_INCOME_PER_SHARE:
                with boa.reverts(
                    reasons.TOKEN_INCOME_PER_SHARE_OVERFLOW
                ):
                    self.token.distribute(amount)
                return
            self.token.distribute(amount)
        self.distributed += amount
        for i, balance in enumerate(self.balances):
            self.earned[i] += Fraction(amount * balance, supply)

    @rule(data=st.data())
    def claim(self, data):
        who = data.draw(self._wallet_index())
        owed = self.token.claimable(self.holders[who])
        with boa.env.prank(self.holders[who]):
            if self.paused:
                with boa.reverts(reasons.TOKEN_PAUSED):
                    self.token.claim()
            elif self.wallet_frozen[who]:
                with boa.reverts(
                    reasons.TOKEN_WALLET_FROZEN_COMPLIANCE_AGENT
                ):
                    self.token.claim()
            elif owed == 0:
                with boa.reverts(reasons.TOKEN_NOTHING_CLAIM):
                    self.token.claim()
            else:
                assert self.token.claim() == owed
                self.claimed[who] += owed
                self.total_claimed += owed

    @precondition(lambda self: len(self.status) < 12)
    @rule()
    def add_gpu(self):
        self.next_serial += 1
        with boa.env.prank(self.operator):
            first = self.token.add_gpus([gpu(f"SM-{self.next_serial}")])
        self.status[first] = 1

    @rule(data=st.data())
    def impair(self, data):
        gpu_id = data.draw(st.sampled_from(sorted(self.status)))
        with boa.env.prank(self.operator):
            if self.status[gpu_id] != 1:
                with boa.reverts(reasons.TOKEN_ACTIVE_GPU_IMPAIRED):
                    self.token.impair_gpu(gpu_id)
            else:
                self.token.impair_gpu(gpu_id)
                self.status[gpu_id] = 2

    @rule(data=st.data())
    def retire(self, data):
        gpu_id = data.draw(st.sampled_from(sorted(self.status)))
        remaining = self._count(1) + self._count(2) - 1
        with boa.env.prank(self.operator):
            if self.status[gpu_id] == 4:
                with boa.reverts(reasons.TOKEN_GPU_ALREADY_RETIRED):
                    self.token.retire_gpu(gpu_id)
            elif self._supply() > remaining * SHARES_PER_GPU:
                with boa.reverts(
                    reasons.TOKEN_BURN_SHARES_FIRST_SUPPLY
                ):
                    self.token.retire_gpu(gpu_id)
            else:
                self.token.retire_gpu(gpu_id)
                self.status[gpu_id] = 4

    @rule()
    def toggle_pause(self):
        with boa.env.prank(self.operator):
            if self.paused:
                self.token.unpause()
            else:
                self.token.pause()
        self.paused = not self.paused

    # --- compliance agent powers ----------------------------------------------------
    def _wallet_index(self):
        return st.integers(0, len(self.holders) - 1)

    @rule(data=st.data())
    def toggle_wallet_freeze(self, data):
        who = data.draw(self._wallet_index())
        with boa.env.prank(self.compliance):
            self.registry.set_wallet_frozen(self.holders[who], not self.wallet_frozen[who])
        self.wallet_frozen[who] = not self.wallet_frozen[who]

    @rule(data=st.data(), amount=st.one_of(st.just(0), amounts))
    def set_frozen_tokens(self, data, amount):
        who = data.draw(self._wallet_index())
        with boa.env.prank(self.agent):
            if amount == self.frozen_tokens[who]:
                with boa.reverts(reasons.TOKEN_FROZEN_AMOUNT_UNCHANGED):
                    self.token.setFrozenTokens(self.holders[who], amount)
                return
            self.token.setFrozenTokens(self.holders[who], amount)
        self.frozen_tokens[who] = amount
        assert self.token.getFrozenTokens(self.holders[who]) == amount

    @rule(data=st.data(), amount=amounts)
    def forced_transfer(self, data, amount):
        src = data.draw(self._wallet_index())
        dst = data.draw(self._wallet_index())
        amount = min(amount, self.balances[src]) if amount % 3 else amount
        call = lambda: self.token.forcedTransfer(self.holders[src], self.holders[dst], amount)  # noqa: E731
        with boa.env.prank(self.agent):
            if src == dst:
                with boa.reverts(reasons.TOKEN_FORCED_TRANSFER_ACCOUNT_ITSELF):
                    call()
            elif amount == 0:
                with boa.reverts(reasons.TOKEN_FORCED_TRANSFER_AMOUNT_ZERO):
                    call()
            elif self.wallet_frozen[dst]:
                with boa.reverts(message(Restriction.RECEIVER_FROZEN)):
                    call()
            elif amount > self.balances[src]:
                with boa.reverts(reasons.TOKEN_FORCED_TRANSFER_EXCEEDS_SENDER):
                    call()
            else:
                call()  # works while paused and from frozen wallets and frozen shares
                # The freeze shrinks by the frozen shares taken only (a freeze above the
                # balance keeps covering what the holder has in a pool).
                free = self.balances[src] - min(self.frozen_tokens[src], self.balances[src])
                if amount > free:
                    self.frozen_tokens[src] -= amount - free
                self.balances[src] -= amount
                self.balances[dst] += amount

    @rule(data=st.data(), to_new_wallet=st.booleans())
    def recover_wallet(self, data, to_new_wallet):
        src = data.draw(self._wallet_index())
        if to_new_wallet and len(self.holders) < MAX_WALLETS:
            new = boa.env.generate_address(f"sm-recovered-{len(self.holders)}")
            with boa.env.prank(self.compliance):
                self.registry.set_investor(new, US, False, FAR_FUTURE)
            with boa.env.prank(new):
                self.token.approve(self.spender, 2**256 - 1)
            self.holders.append(new)
            for column, empty in ((self.balances, 0), (self.earned, Fraction(0)),
                                  (self.claimed, 0), (self.wallet_frozen, False),
                                  (self.frozen_tokens, 0)):
                column.append(empty)
            dst = len(self.holders) - 1
        else:
            dst = data.draw(self._wallet_index())
        lost, new = self.holders[src], self.holders[dst]
        income = self.token.claimable(lost)
        income_before = self.token.claimable(new)
        with boa.env.prank(self.agent):
            if src == dst:
                with boa.reverts(reasons.TOKEN_RECOVERY_SAME_WALLET):
                    self.token.recover_wallet(lost, new)
                return
            if self.wallet_frozen[dst]:
                with boa.reverts(message(Restriction.RECEIVER_FROZEN)):
                    self.token.recover_wallet(lost, new)
                return
            if not self.wallet_frozen[src]:
                # The lost key could still act: the registry must stop it first.
                with boa.reverts(reasons.TOKEN_RECOVERY_LOST_WALLET_ACTIVE):
                    self.token.recover_wallet(lost, new)
                with boa.env.prank(self.compliance):
                    self.registry.set_wallet_frozen(lost, True)
                self.wallet_frozen[src] = True
            if self.balances[src] == 0 and income == 0 and self.frozen_tokens[src] == 0:
                with boa.reverts(reasons.TOKEN_LOST_WALLET_HOLDS_NO):
                    self.token.recover_wallet(lost, new)
                return
            self.token.recover_wallet(lost, new)
        assert self.token.claimable(lost) == 0
        assert income + income_before <= self.token.claimable(new) <= income + income_before + 1
        self.balances[dst] += self.balances[src]
        self.balances[src] = 0
        self.frozen_tokens[dst] += self.frozen_tokens[src]
        self.frozen_tokens[src] = 0
        self.earned[dst] += self.earned[src] - self.claimed[src]
        self.earned[src] = Fraction(0)
        self.claimed[src] = 0

    # --- invariants ----------------------------------------------------------------
    @invariant()
    def supply_matches_balances_and_backing(self):
        onchain = [self.token.balanceOf(h) for h in self.holders]
        assert onchain == self.balances
        supply = self.token.totalSupply()
        assert supply == sum(onchain)
        backing_gpus = self._count(1) + self._count(2)
        assert self.token.active_gpus() == self._count(1)
        assert self.token.impaired_gpus() == self._count(2)
        assert supply <= backing_gpus * SHARES_PER_GPU
        assert self.token.backing()[1] == backing_gpus * SHARES_PER_GPU

    @invariant()
    def claims_never_exceed_deposits_and_dust_is_bounded(self):
        claimable = [self.token.claimable(h) for h in self.holders]
        paid_or_owed = self.total_claimed + sum(claimable)
        assert paid_or_owed <= self.distributed
        assert self.distributed - paid_or_owed <= len(self.holders)
        assert self.token.total_distributed() == self.distributed
        assert self.token.total_claimed() == self.total_claimed
        assert self.stable.balanceOf(self.token.address) == self.distributed - self.total_claimed

    @invariant()
    def each_holder_gets_their_exact_share_rounded_down(self):
        tolerance = Fraction(1, 10**9)  # carried sub-unit remainders, far below a unit
        for i, holder in enumerate(self.holders):
            assert self.token.getFrozenTokens(holder) == self.frozen_tokens[i]
            got = self.claimed[i] + self.token.claimable(holder)
            assert got <= self.earned[i] + tolerance
            assert got > self.earned[i] - 1 - tolerance


TestShareIncome = ShareIncomeMachine.TestCase
# Budgets in tests/budgets.py: the sequences that matter (claims around freezes,
# transfers and redemptions between distributions) show up within the first few dozen
# examples; `make test-deep` runs 2,000.
TestShareIncome.settings = budget("income_stateful")
