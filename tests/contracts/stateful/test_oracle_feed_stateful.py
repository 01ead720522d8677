"""Stateful fuzzing of OracleHub + FeedAdapter: random price (and utilisation) reports
with random values, observation times, config versions, log checkpoints and signer
subsets (too few, outsiders, unsorted, duplicated, malleable or garbage signatures),
interleaved with signer-set changes, feed reconfiguration and time travel. A pure-Python
model predicts, for every call, the exact refusal string, a refused move (False +
`PriceMoveRefused`) or acceptance, and the exact stored state; an invariant compares
the chain's views with it after every transaction that did not revert.

Two machines share the rules: `TestOracleFeed` starts from a hub without a signer set
or any round; `TestOracleFeedRingWrap` starts from a hub whose feed already holds 250
rounds (compared with the model once, when it is built), so a few accepted reports wrap
the 256-round ring under random sequences.

Speed: each machine deploys its world once, into its own `boa.Env`, and every example
runs inside an anchor (snapshot) of that env, which is reverted at teardown; examples
neither pay for deployment nor see each other's state. Keys are a fixed set of six,
and reports are signed straight from the digest with eth-keys (~0.1 ms a signature)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace

import boa
import hypothesis
from eth_utils import keccak
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gpushares import reasons
from oracle import attest
from tests.budgets import budget
from tests.contracts import oracle_helpers as oh
from tests.contracts.oracle_helpers import USD

KEYS = oh.make_signers(6, "sm-oracle-signer")  # ascending by address
N_KEYS = len(KEYS)
FEED = oh.FEED_ID
INT112_MIN, INT112_MAX = -(2**111), 2**111 - 1
MASK48 = 2**48 - 1
PREFILL_ROUNDS = 250
# After a change to the rounds, every readable round is compared with the model while the
# window is at most FULL_SWEEP long; a longer one in slices (see `_check_rounds`).
FULL_SWEEP = 12
SLICE = 4


@dataclass(frozen=True)
class FeedConfig:
    min_answer: int = oh.FEED_MIN
    max_answer: int = oh.FEED_MAX
    max_move_bps: int = oh.FEED_MOVE_BPS
    heartbeat: int = oh.FEED_HEARTBEAT
    enabled: bool = True


@dataclass
class Model:
    """What the hub must hold."""

    signers: tuple[int, ...] = ()  # indices into KEYS, ascending by address
    threshold: int = 0
    config_version: int = 0
    feed: FeedConfig = field(default_factory=FeedConfig)
    history: list[tuple[int, int]] = field(default_factory=list)  # round - 1 -> (value, at)
    checkpoint: tuple[int, bytes] = (0, oh.ZERO32)
    util_end: int = 0
    util_rounds: int = 0
    util_last: tuple = (0, 0, 0, 0, 0, 0)

    def copy(self) -> Model:
        return replace(self, history=list(self.history))

    @property
    def latest(self) -> tuple[int, int, int]:
        if not self.history:
            return 0, 0, 0
        value, at = self.history[-1]
        return value, at, len(self.history)

    def signer_numbers(self) -> set[int]:
        return {KEYS[i].number for i in self.signers}

    def check_signatures(self, sigs: list[tuple[str, int]]) -> str | None:
        """The hub's `_check_signers`, refusal by refusal. `sigs` holds (kind, signer)
        with kind "ok" (signer: the address it recovers), "malleable" or "invalid"."""
        if self.threshold == 0:
            return oh.NO_SIGNER_SET
        if len(sigs) < self.threshold:
            return oh.TOO_FEW
        members, previous = self.signer_numbers(), 0
        for kind, signer in sigs:
            if kind == "malleable":
                return oh.MALLEABLE
            if kind == "invalid":
                return oh.INVALID_SIGNATURE
            if signer <= previous:
                return oh.UNORDERED
            previous = signer
            if signer not in members:
                return oh.UNAUTHORISED
        return None

    def check_checkpoint(self, size: int, root: bytes) -> str | None:
        stored, stored_root = self.checkpoint
        if size > stored:
            return oh.LOG_SIZE if size > MASK48 else None
        if size == stored and stored != 0 and root != stored_root:
            return oh.FORKED
        return None

    def advance_checkpoint(self, size: int, root: bytes) -> None:
        if size > self.checkpoint[0]:
            self.checkpoint = (size, root)


# ------------------------------------------------------------------ worlds


@dataclass
class World:
    env: boa.Env
    admin: str
    stranger: str
    spv: str
    hub: object
    adapter: object
    domain: attest.Domain
    model: Model


def _build(prefill: int) -> World:
    env = boa.Env()
    with boa.swap_env(env):
        boa.env.enable_fast_mode()
        admin = boa.env.generate_address("sm-oracle-admin")
        stranger = boa.env.generate_address("sm-oracle-stranger")
        spv = boa.env.generate_address("sm-oracle-spv")
        hub = oh.deploy_hub(admin)
        adapter = oh.add_feed(hub, admin)
        dom = oh.domain(hub)
        model = Model()
        if prefill:
            members = (0, 2, 4)
            oh.install(hub, admin, [KEYS[i] for i in members], 2)
            model.signers, model.threshold, model.config_version = members, 2, 1
            with boa.env.prank(admin):
                hub.set_feed_config(FEED, oh.FEED_MIN, oh.FEED_MAX, 0, oh.FEED_HEARTBEAT, True)
            for n in range(1, prefill + 1):
                boa.env.time_travel(seconds=15)
                value = oh.FEED_MIN + (n * 48_271) % (oh.FEED_MAX - oh.FEED_MIN)
                report = oh.price_report(value, oh.now(), 1, log_size=n)
                sigs = oh.fast_signatures(attest.digest(report, dom), [KEYS[0], KEYS[4]])
                assert oh.submit_price(hub, report, sigs) is True
                model.history.append((value, report.observed_at))
            model.checkpoint = (prefill, oh.log_root(prefill))
            with boa.env.prank(admin):  # back to the default move limit
                hub.set_feed_config(FEED, oh.FEED_MIN, oh.FEED_MAX, oh.FEED_MOVE_BPS,
                                    oh.FEED_HEARTBEAT, True)
            # Every example starts from this state: compare all of it once, here.
            for n, (value, at) in enumerate(model.history, start=1):
                assert adapter.getRoundData(n) == (n, value, at, at, n)
            for n in (0, prefill + 1):
                with boa.reverts(oh.ROUND_NOT_YET):
                    adapter.getRoundData(n)
    return World(env, admin, stranger, spv, hub, adapter, dom, model)


_WORLDS: dict[int, World] = {}


def world(prefill: int) -> World:
    if prefill not in _WORLDS:
        _WORLDS[prefill] = _build(prefill)
    return _WORLDS[prefill]


# ------------------------------------------------------------------ strategies

key_subsets = st.lists(st.integers(0, N_KEYS - 1), unique=True, max_size=N_KEYS).map(sorted)
nonempty_key_subsets = st.lists(st.integers(0, N_KEYS - 1), unique=True, min_size=1,
                                max_size=N_KEYS).map(sorted)
signer_choices = st.sampled_from(["quorum"] * 6 + ["too few", "outsider", "any"])
signature_mangling = st.sampled_from(
    ["sorted"] * 12 + ["reversed", "duplicate", "malleable", "garbage"]
)
version_offsets = st.sampled_from([0] * 12 + [-1, 1])
log_sizes = st.sampled_from([*range(0, 41), MASK48, MASK48 + 1])
forks = st.sampled_from([False] * 9 + [True])
waits = st.sampled_from([0, 0, 1, 7, 30, 60, 600])
ALL_VIEWS = frozenset({"signers", "feed", "rounds", "utilisation"})


class OracleFeedMachine(RuleBasedStateMachine):
    PREFILL = 0

    @initialize(install=st.sampled_from([True] * 3 + [False]), members=nonempty_key_subsets,
                threshold=st.integers(1, N_KEYS))
    def deploy(self, install, members, threshold):
        w = world(self.PREFILL)
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(boa.swap_env(w.env))
        self._stack.enter_context(w.env.anchor())  # reverted at teardown
        boa.env.sha3_trace = {}
        boa.env.sstore_trace = {}
        self.w, self.hub, self.adapter, self.dom = w, w.hub, w.adapter, w.domain
        self.model = w.model.copy()
        self.sweep_cursor = 0
        self.counter = 0
        self.changed = set(ALL_VIEWS)
        if install and members:
            majority = len(members) // 2 + 1  # the hub refuses a smaller threshold
            self._set_signers(members, max(min(threshold, len(members)), majority), "sorted",
                              self.w.admin)

    def teardown(self):
        stack = getattr(self, "_stack", None)
        if stack is not None:
            stack.close()

    # ------------------------------------------------------------ helpers

    def _draw_signers(self, data) -> list[int]:
        """Key indices to sign with, ascending: mostly a quorum of the current set."""
        m = self.model
        members = list(m.signers)
        outsiders = [i for i in range(N_KEYS) if i not in m.signers]
        kind = data.draw(signer_choices)
        if kind == "quorum" and members:
            k = data.draw(st.integers(m.threshold, len(members)))
            chosen = data.draw(st.permutations(members))[:k]
        elif kind == "too few" and m.threshold > 1:
            chosen = data.draw(st.permutations(members))[: m.threshold - 1]
        elif kind == "outsider" and outsiders and members:
            chosen = data.draw(st.permutations(members))[: max(0, m.threshold - 1)]
            chosen.append(data.draw(st.sampled_from(outsiders)))
        else:
            chosen = data.draw(key_subsets)
        return sorted(chosen)

    def _sign(self, report, indices: list[int], mangling: str, position: int):
        """Signatures by KEYS[i] for i in `indices` (in that order), then mangled; returns
        (signature structs, what the model sees for each)."""
        report_digest = attest.digest(report, self.dom)
        sigs = oh.fast_signatures(report_digest, [KEYS[i] for i in indices])
        seen = [("ok", KEYS[i].number) for i in indices]
        if mangling == "reversed":
            sigs, seen = sigs[::-1], seen[::-1]
        elif mangling == "duplicate" and sigs:
            p = position % len(sigs)
            sigs.insert(p, sigs[p])
            seen.insert(p, seen[p])
        elif mangling == "malleable" and sigs:
            p = position % len(sigs)
            bit = int.from_bytes(sigs[p][1], "big") >> 255
            high_s = oh.HALF_N + 1 + position  # (N/2, 2**255): only a twin would be here
            sigs[p] = (sigs[p][0], oh.vs_word(high_s, bit))
            seen[p] = ("malleable", 0)
        elif mangling == "garbage" and sigs:
            p = position % len(sigs)
            sigs[p] = (oh.ZERO32, sigs[p][1])
            seen[p] = ("invalid", 0)
        return sigs, seen

    def _draw_value(self, data) -> int:
        m = self.model
        lo, hi = m.feed.min_answer, m.feed.max_answer
        kind = data.draw(st.sampled_from(["near"] * 5 + ["inside", "edge", "outside", "any"]))
        if kind == "near":
            previous = m.latest[0] or (lo + hi) // 2 or 1
            bps = data.draw(st.integers(-2_500, 2_500))
            return previous + previous * bps // 10_000
        if kind == "inside":
            return data.draw(st.integers(lo, hi))
        if kind == "edge":
            return data.draw(st.sampled_from([lo, hi]))
        if kind == "outside":
            step = data.draw(st.integers(1, 10**9))
            return data.draw(st.sampled_from([lo - step, hi + step]))
        return data.draw(st.integers(-(2**120), 2**120))

    def _draw_observed(self, data) -> int:
        now, latest_at = oh.now(), self.model.latest[1]
        kind = data.draw(
            st.sampled_from(["now"] * 6 + ["recent"] * 3 + ["latest", "older", "future"])
        )
        if kind == "now":
            return now
        if kind == "recent":
            return now - data.draw(st.integers(0, 120))
        if kind == "latest":
            return latest_at
        if kind == "older":
            return max(0, latest_at - data.draw(st.integers(1, 100)))
        return now + data.draw(st.integers(1, 100))

    def _set_signers(self, members, threshold, mode, sender):
        m = self.model
        addresses = [KEYS[i].address for i in members]
        if mode == "unsorted" and len(addresses) > 1:
            addresses = addresses[::-1]
        elif mode == "duplicate" and addresses:
            addresses = [*addresses, addresses[-1]]
        elif mode == "zero":
            addresses = [oh.ZERO, *addresses]
        numbers = [int(a, 16) for a in addresses]
        if sender != self.w.admin:
            expected = oh.MISSING_ROLE
        elif not addresses:
            expected = oh.SET_EMPTY
        elif threshold == 0:
            expected = oh.THRESHOLD_ZERO
        elif threshold > len(addresses):
            expected = oh.THRESHOLD_ABOVE
        elif threshold * 2 <= len(addresses):
            expected = reasons.HUB_THRESHOLD_NOT_MAJORITY
        elif numbers != sorted(set(numbers)) or numbers[0] == 0:
            expected = oh.SET_UNSORTED
        else:
            expected = None
        with boa.env.prank(sender):
            if expected is not None:
                with boa.reverts(expected):
                    self.hub.set_signers(addresses, threshold)
                return
            self.hub.set_signers(addresses, threshold)
        (log,) = oh.events(self.hub, "SignerSetChanged")
        m.config_version += 1
        m.signers, m.threshold = tuple(members), threshold
        assert (log.config_version, list(log.signers), log.threshold) == (
            m.config_version, addresses, threshold
        )
        self.changed.add("signers")

    # ------------------------------------------------------------ rules

    @rule(
        data=st.data(),
        wait=waits,
        mangling=signature_mangling,
        position=st.integers(0, 7),
        version_offset=version_offsets,
        log_size=log_sizes,
        fork=forks,
    )
    def submit_price(self, data, wait, mangling, position, version_offset, log_size, fork):
        """Anything goes: any value, time, version, signers and log checkpoint."""
        if wait:
            boa.env.time_travel(seconds=wait)
        self._submit_price(
            value=self._draw_value(data),
            observed=self._draw_observed(data),
            version=max(0, self.model.config_version + version_offset),
            indices=self._draw_signers(data),
            mangling=mangling,
            position=position,
            log_size=log_size,
            root=oh.log_root(log_size, fork="forked" if fork else ""),
        )

    @rule(data=st.data(), wait=st.sampled_from([1, 15, 60, 600]), bps=st.integers(-2_000, 2_000),
          log_growth=st.integers(0, 3))
    def submit_honest_price(self, data, wait, bps, log_growth):
        """What the oracle normally sends: a current, signed quorum, a value near the last
        one, the log grown a little. (Hypothesis has no rule weights; this second rule makes
        accepted reports, and so ring wrap-around, common.)"""
        boa.env.time_travel(seconds=wait)
        m = self.model
        previous = m.latest[0] or (m.feed.min_answer + m.feed.max_answer) // 2 or 1
        value = min(max(previous + previous * bps // 10_000, m.feed.min_answer),
                    m.feed.max_answer)
        size = min(m.checkpoint[0] + log_growth, MASK48)
        members = list(m.signers)
        indices = (sorted(data.draw(st.permutations(members))[: max(1, m.threshold)])
                   if members else [])
        self._submit_price(value=value, observed=oh.now(), version=m.config_version,
                           indices=indices, mangling="sorted", position=0, log_size=size,
                           root=m.checkpoint[1] if size == m.checkpoint[0] else oh.log_root(size))

    def _submit_price(self, *, value, observed, version, indices, mangling, position, log_size,
                      root):
        m = self.model
        self.counter += 1
        report = oh.price_report(value, observed, version, log_size=log_size, root=root,
                                 inputs_hash=keccak(text=f"sm-inputs-{self.counter}"))
        sigs, seen = self._sign(report, indices, mangling, position)

        previous, latest_at, _ = m.latest
        expected: str | None
        if version != m.config_version:
            expected = oh.CONFIG_VERSION
        elif not m.feed.enabled:
            expected = oh.DISABLED
        elif observed > oh.now():
            expected = oh.FUTURE
        elif observed <= latest_at:
            expected = oh.STALE
        elif not m.feed.min_answer <= value <= m.feed.max_answer:
            expected = oh.OUT_OF_BOUNDS
        else:
            expected = m.check_signatures(seen)
        move_refused = False
        if expected is None and m.feed.max_move_bps and previous:
            move = abs(value - previous) * 10_000
            move_refused = move > m.feed.max_move_bps * abs(previous)
        if expected is None and not move_refused:
            expected = m.check_checkpoint(log_size, root)

        hypothesis.event("price: " + (expected or ("move refused" if move_refused else "accepted")))
        if expected is not None:
            with boa.reverts(expected):
                oh.submit_price(self.hub, report, sigs)
            return
        result = oh.submit_price(self.hub, report, sigs)
        if move_refused:
            assert result is False
            (log,) = oh.events(self.hub, "PriceMoveRefused")
            assert (log.feed_id, log.previous_value, log.refused_value, log.move_bps,
                    log.max_move_bps, log.observed_at, log.inputs_hash) == (
                FEED, previous, value, abs(value - previous) * 10_000 // abs(previous),
                m.feed.max_move_bps, observed, bytes.fromhex(report.inputs_hash[2:]),
            )
            assert oh.events(self.hub, "PriceUpdated") == []
            self.changed.add("rounds")  # nothing may have changed: check it did not
            return
        assert result is True
        (log,) = oh.events(self.hub, "PriceUpdated")
        assert (log.feed_id, log.value, log.observed_at, log.inputs_hash, log.log_size,
                log.log_root) == (
            FEED, value, observed, bytes.fromhex(report.inputs_hash[2:]), log_size, root
        )
        m.history.append((value, observed))
        m.advance_checkpoint(log_size, root)
        self.changed.add("rounds")

    @rule(
        data=st.data(),
        wait=waits,
        mangling=st.sampled_from(["sorted"] * 6 + ["reversed", "garbage"]),
        version_offset=version_offsets,
        log_size=log_sizes,
        fork=forks,
    )
    def submit_utilisation(self, data, wait, mangling, version_offset, log_size, fork):
        if wait:
            boa.env.time_travel(seconds=wait)
        m = self.model
        now = oh.now()
        start = data.draw(st.sampled_from([m.util_end] * 3 + [m.util_end - 1, now - 60]))
        end = data.draw(st.sampled_from([now] * 3 + [now - 1, start, start + 30, now + 5]))
        start, end = max(0, start), max(0, end)
        gpus = data.draw(st.sampled_from([1, 8, 2**32 - 1, 0]))
        bps = data.draw(st.integers(0, 10_000))
        version = max(0, m.config_version + version_offset)
        root = oh.log_root(log_size, fork="forked" if fork else "")
        report = oh.utilisation_report(self.w.spv, start, end, version, gpu_count=gpus,
                                       utilisation_bps=bps, rental_revenue=start * 3,
                                       log_size=log_size, root=root)
        sigs, seen = self._sign(report, self._draw_signers(data), mangling, start)
        if version != m.config_version:
            expected = oh.CONFIG_VERSION
        elif not start < end:
            expected = oh.PERIOD_EMPTY
        elif end > now:
            expected = oh.PERIOD_FUTURE
        elif start < m.util_end:
            expected = oh.PERIOD_OVERLAP
        elif gpus == 0:
            expected = oh.NO_GPUS
        else:
            expected = m.check_signatures(seen) or m.check_checkpoint(log_size, root)
        hypothesis.event("utilisation: " + (expected or "accepted"))
        if expected is not None:
            with boa.reverts(expected):
                oh.submit_utilisation(self.hub, report, sigs)
            return
        oh.submit_utilisation(self.hub, report, sigs)
        (log,) = oh.events(self.hub, "UtilisationUpdated")
        assert (log.spv_token, log.period_start, log.period_end, log.gpu_count,
                log.utilisation_bps, log.rental_revenue, log.log_size, log.log_root) == (
            self.w.spv, start, end, gpus, bps, start * 3, log_size, root
        )
        m.util_end, m.util_rounds = end, m.util_rounds + 1
        m.util_last = (start, end, gpus, bps, start * 3, m.util_rounds)
        m.advance_checkpoint(log_size, root)
        self.changed.add("utilisation")

    @rule(
        members=key_subsets,
        threshold=st.integers(0, N_KEYS + 1),
        mode=st.sampled_from(["sorted"] * 6 + ["unsorted", "duplicate", "zero"]),
        by_stranger=st.sampled_from([False] * 9 + [True]),
    )
    def set_signers(self, members, threshold, mode, by_stranger):
        sender = self.w.stranger if by_stranger else self.w.admin
        self._set_signers(members, threshold, mode, sender)

    @rule(
        min_answer=st.sampled_from([-(10**9), -USD, 0, 1, oh.FEED_MIN, USD, INT112_MIN,
                                    INT112_MIN - 1]),
        max_answer=st.sampled_from([USD, 3 * USD, oh.FEED_MAX, 10**12, -1, INT112_MAX,
                                    INT112_MAX + 1]),
        max_move_bps=st.sampled_from([0, 1, 100, 2_000, 10_000, 65_535]),
        heartbeat=st.sampled_from([0, 60, 3_600]),
        enabled=st.sampled_from([True] * 4 + [False]),
    )
    def set_feed_config(self, min_answer, max_answer, max_move_bps, heartbeat, enabled):
        if min_answer < INT112_MIN or max_answer > INT112_MAX:
            expected = oh.BOUNDS_INT112
        elif min_answer > max_answer:
            expected = oh.MIN_ABOVE_MAX
        elif heartbeat == 0:
            expected = oh.HEARTBEAT_ZERO
        else:
            expected = None
        args = (FEED, min_answer, max_answer, max_move_bps, heartbeat, enabled)
        with boa.env.prank(self.w.admin):
            if expected is not None:
                with boa.reverts(expected):
                    self.hub.set_feed_config(*args)
                return
            self.hub.set_feed_config(*args)
        self.model.feed = FeedConfig(min_answer, max_answer, max_move_bps, heartbeat, enabled)
        self.changed.add("feed")

    @rule(seconds=st.sampled_from([1, 59, 3_600, 86_400]))
    def time_travel(self, seconds):
        boa.env.time_travel(seconds=seconds)

    # ------------------------------------------------------------ invariants

    @invariant()
    def chain_matches_model(self):
        """Storage changes only in a transaction that did not revert (and no view reads
        the clock), so the views are compared with the model after each such transaction:
        the latest value, config version and checkpoint always, and the views the
        transaction's kind may have touched. (Every revert was already matched to its
        exact reason by the rule.)"""
        if not self.changed:
            return
        changed, self.changed = self.changed, set()
        m, hub = self.model, self.hub
        assert hub.latest_value(FEED) == m.latest
        assert hub.config_version() == m.config_version
        assert hub.checkpoint() == m.checkpoint
        if "signers" in changed:
            assert hub.threshold() == m.threshold
            assert hub.signers() == [KEYS[i].address for i in m.signers]
            for i, key in enumerate(KEYS):
                assert hub.is_signer(key.address) == (i in m.signers)
        if changed & {"feed", "rounds"}:
            view, f = hub.feed(FEED), m.feed
            assert (view.exists, view.enabled, view.min_answer, view.max_answer,
                    view.max_move_bps, view.heartbeat, view.latest_round, view.adapter) == (
                True, f.enabled, f.min_answer, f.max_answer, f.max_move_bps, f.heartbeat,
                len(m.history), self.adapter.address,
            )
        if "feed" in changed:
            assert self.adapter.heartbeat() == m.feed.heartbeat
        if "utilisation" in changed:
            assert tuple(hub.utilisation(self.w.spv)) == m.util_last
        if "rounds" in changed:
            self._check_rounds()

    def _check_rounds(self):
        """The readable window of rounds (the last min(256, rounds)) against the model's
        history, through `getRoundData`, plus rounds just outside it (unreadable).

        Cost control (py-evm makes every call ~0.5 ms, a reverting one ~1.3 ms, and the
        adapter's nested call several times that): the whole window is compared while it
        is at most FULL_SWEEP rounds long, otherwise the newest and oldest SLICE rounds and
        a rotating block of SLICE, so consecutive checks still walk the whole window (the
        ring-wrap machine's starting window is compared in full when its world is built).
        The adapter is read for the latest round and the oldest readable one; the rest
        goes straight to the hub's `get_round_data`, which the adapter forwards to. One
        unreadable round per check through each of them, rotating over round 0, the first
        future round, the future round sharing the latest's ring slot, and the two rounds
        just evicted."""
        history = self.model.history
        rounds = len(history)
        first = max(1, rounds - oh.RING_SIZE + 1)
        if rounds == 0:
            with boa.reverts(oh.NO_DATA):
                self.adapter.latestRoundData()
        else:
            value, at = history[-1]
            assert self.adapter.latestRoundData() == (rounds, value, at, at, rounds)
            value, at = history[first - 1]
            assert self.adapter.getRoundData(first) == (first, value, at, at, first)
        readable = list(range(first, rounds + 1))
        if len(readable) <= FULL_SWEEP:
            check = readable
        else:
            block = self.sweep_cursor % len(readable)
            check = sorted(set(readable[:SLICE] + readable[-SLICE:]
                               + readable[block:block + SLICE]))
        self.sweep_cursor += SLICE
        for n in check:
            value, at = history[n - 1]
            assert self.hub.get_round_data(FEED, n) == (n, value, at, at, n)
        outside = [n for n in (0, rounds + 1, rounds + oh.RING_SIZE, first - 1, first - 2)
                   if n >= 0 and not first <= n <= rounds]
        turn = self.sweep_cursor // SLICE
        one, other = outside[turn % len(outside)], outside[(turn + 1) % len(outside)]
        with boa.reverts(oh.missing_round(one, rounds)):
            self.adapter.getRoundData(one)
        with boa.reverts(oh.missing_round(other, rounds)):
            self.hub.get_round_data(FEED, other)


class RingWrapMachine(OracleFeedMachine):
    PREFILL = PREFILL_ROUNDS


TestOracleFeed = OracleFeedMachine.TestCase
# Budgets in tests/budgets.py.
TestOracleFeed.settings = budget("oracle_feed_stateful")

# The ring-wrap machine runs at most 40 examples (the CI profile's 200 would add ~20 s):
# its purpose, random sequences across the ring's wrap-around, needs only a handful of
# accepted reports per example, and the main machine carries the breadth.
TestOracleFeedRingWrap = RingWrapMachine.TestCase
TestOracleFeedRingWrap.settings = budget("oracle_ring_wrap_stateful")
