"""Stateful fuzzing of GPUShareToken: random mint / burn / transfer / transferFrom /
distribute / claim / add / impair / retire / pause sequences with six holders, checked
after every step against the issue's invariants and an exact rational model."""

from __future__ import annotations

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

from tests.contracts import deployers
from tests.contracts.helpers import OPERATOR_ROLE, gpu

SHARES_PER_GPU = 1_000 * 10**18
N_HOLDERS = 6  # the operator (holds bought-back shares) and five investors

amounts = st.integers(min_value=1, max_value=3 * SHARES_PER_GPU)
income = st.one_of(st.integers(1, 1_000), st.integers(1, 10**13))
holder_index = st.integers(0, N_HOLDERS - 1)


class _World:
    """Contracts and actors of one example, deployed into that example's own fresh boa
    environment (a new in-memory chain), so examples never slow each other down."""

    def __init__(self):
        admin = boa.env.generate_address("sm-admin")
        self.operator = boa.env.generate_address("sm-operator")
        self.spender = boa.env.generate_address("sm-spender")
        self.holders = [self.operator] + [
            boa.env.generate_address(f"sm-investor-{i}") for i in range(N_HOLDERS - 1)
        ]
        with boa.env.prank(admin):
            self.stable = deployers.MOCK_STABLECOIN.deploy()
            blueprint = deployers.SHARE_TOKEN.deploy_as_blueprint()
            factory = deployers.SPV_FACTORY.deploy(blueprint.address)
            factory.grantRole(OPERATOR_ROLE, self.operator)
            self.stable.mint(self.operator, 10**30)
        with boa.env.prank(self.operator):
            _, address = factory.create_spv(
                "Fuzz SPV", 840, "5493001KJTIIGC8Y1R12", b"\x01" * 32, "Fuzz Shares", "FZZ",
                SHARES_PER_GPU, self.stable.address,
            )
            self.token = deployers.SHARE_TOKEN.at(address)
            self.stable.approve(address, 2**256 - 1)
            self.token.add_gpus([gpu(f"SM-{i}") for i in range(4)])
        for holder in self.holders[1:]:
            with boa.env.prank(holder):
                self.token.approve(self.spender, 2**256 - 1)


class ShareIncomeMachine(RuleBasedStateMachine):
    """One SPV token, six holders, an exact model of what each holder has earned."""

    @initialize()
    def deploy(self):
        self._env = boa.swap_env(boa.Env())
        self._env.__enter__()
        boa.env.enable_fast_mode()
        world = _World()
        self.operator, self.spender = world.operator, world.spender
        self.holders, self.stable, self.token = world.holders, world.stable, world.token
        self.next_serial = 4
        self.status = {i: 1 for i in range(1, 5)}  # gpu id -> ACTIVE(1) / IMPAIRED(2) / RETIRED(4)
        self.balances = [0] * N_HOLDERS
        self.earned = [Fraction(0)] * N_HOLDERS
        self.claimed = [0] * N_HOLDERS
        self.distributed = 0
        self.paused = False

    def teardown(self):
        env = getattr(self, "_env", None)
        if env is not None:
            env.__exit__(None, None, None)

    # --- helpers -------------------------------------------------------------------
    def _count(self, status):
        return sum(1 for s in self.status.values() if s == status)

    def _supply(self):
        return sum(self.balances)

    # --- rules ---------------------------------------------------------------------
    @rule(to=holder_index, amount=amounts)
    def mint(self, to, amount):
        cap = self._count(1) * SHARES_PER_GPU
        with boa.env.prank(self.operator):
            if self.paused:
                with boa.reverts("GPUShareToken: paused"):
                    self.token.mint(self.holders[to], amount)
            elif self._supply() + amount > cap:
                with boa.reverts("GPUShareToken: mint exceeds the active GPUs' backing"):
                    self.token.mint(self.holders[to], amount)
            else:
                self.token.mint(self.holders[to], amount)
                self.balances[to] += amount

    @precondition(lambda self: not self.paused)
    @rule(amount=amounts)
    def burn(self, amount):
        with boa.env.prank(self.operator):
            if amount > self.balances[0]:
                with boa.reverts("erc20: burn amount exceeds balance"):
                    self.token.burn(amount)
            else:
                self.token.burn(amount)
                self.balances[0] -= amount

    @rule(src=holder_index, dst=holder_index, amount=amounts, via_allowance=st.booleans())
    def transfer(self, src, dst, amount, via_allowance):
        via_allowance = via_allowance and src != 0
        amount = min(amount, self.balances[src]) if amount % 5 else amount
        sender = self.spender if via_allowance else self.holders[src]
        with boa.env.prank(sender):
            call = (
                (lambda: self.token.transferFrom(self.holders[src], self.holders[dst], amount))
                if via_allowance
                else (lambda: self.token.transfer(self.holders[dst], amount))
            )
            if self.paused:
                with boa.reverts("GPUShareToken: paused"):
                    call()
            elif amount > self.balances[src]:
                with boa.reverts("erc20: transfer amount exceeds balance"):
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
                with boa.reverts("GPUShareToken: no shares outstanding to receive income"):
                    self.token.distribute(amount)
                return
            self.token.distribute(amount)
        self.distributed += amount
        for i, balance in enumerate(self.balances):
            self.earned[i] += Fraction(amount * balance, supply)

    @rule(who=holder_index)
    def claim(self, who):
        owed = self.token.claimable(self.holders[who])
        with boa.env.prank(self.holders[who]):
            if self.paused:
                with boa.reverts("GPUShareToken: paused"):
                    self.token.claim()
            elif owed == 0:
                with boa.reverts("GPUShareToken: nothing to claim"):
                    self.token.claim()
            else:
                assert self.token.claim() == owed
                self.claimed[who] += owed

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
                with boa.reverts("GPUShareToken: only an active GPU can be impaired"):
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
                with boa.reverts("GPUShareToken: GPU is already retired"):
                    self.token.retire_gpu(gpu_id)
            elif self._supply() > remaining * SHARES_PER_GPU:
                with boa.reverts(
                    "GPUShareToken: burn shares first: supply would exceed the remaining "
                    "GPUs' backing"
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
        paid_or_owed = sum(self.claimed) + sum(claimable)
        assert paid_or_owed <= self.distributed
        assert self.distributed - paid_or_owed <= N_HOLDERS
        assert self.token.total_distributed() == self.distributed
        assert self.token.total_claimed() == sum(self.claimed)
        assert self.stable.balanceOf(self.token.address) == self.distributed - sum(self.claimed)

    @invariant()
    def each_holder_gets_their_exact_share_rounded_down(self):
        tolerance = Fraction(1, 10**9)  # carried sub-unit remainders, far below a unit
        for i, holder in enumerate(self.holders):
            got = self.claimed[i] + self.token.claimable(holder)
            assert got <= self.earned[i] + tolerance
            assert got > self.earned[i] - 1 - tolerance


TestShareIncome = ShareIncomeMachine.TestCase
