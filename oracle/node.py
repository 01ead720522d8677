"""One oracle node of a k-of-n quorum: its own key, its own log, its peers.

A round, led by one node (`gpu-oracle round`, or `Node.run_round`):

1. The leader pulls its peers' newer log entries (`sync`), so it builds on the longest
   log the quorum holds; every pulled entry is checked (format, k-of-n signatures,
   inputs hash) before it is appended, and a peer whose log forks from ours is refused.
2. For every feed that is due (no value yet, a move beyond the feed's deviation
   threshold, or its heartbeat elapsed, and newer data than the hub holds), it builds
   the canonical input snapshot from its own sources and computes the report with the
   methodology the snapshot names. A withheld feed (too few contributors, an input
   older than its heartbeat allows) is recorded with its reason; nothing stale is
   carried forward.
3. Before proposing at log position P it asks its peers which report, if any, they
   already signed for P (`GET /v1/votes/{P}`, authenticated). A report some node voted
   for that the leader would sign is finished first (adopted), so votes are not split;
   a position whose votes are split so that no report can reach k is reported stuck.
4. It signs, then asks every peer `POST /v1/sign` (authenticated by its signer key, see
   `oracle.peerauth`) with the report and its inputs. A peer syncs its log up to the
   report's checkpoint, builds the same feed from its *own* sources and compares every
   field (value and confidence within the feed's `agree_bps`, observation time never
   later than its own newest data, period, methodology), checks that the leader's
   inputs hash to `inputsHash` and recompute to the report (the log's auditability),
   and refuses a second, different report for a log position it already signed, for
   good.
5. With k signatures (its own included), the leader appends the report to its log and
   publishes it through the publisher. A peer that is down or disagrees is outvoted and
   named in the round's record; with fewer than k, nothing is appended or published and
   `/healthz` shows why.

Safety needs k > n/2: every node signs at most one report per log position, ever, so
two different reports cannot both reach k signatures for one position.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import httpx
from eth_account import Account
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpushares import abi
from oracle import attest, methodology, peerauth
from oracle.config import IndexFeedConfig, NavFeedConfig, NodeConfig, UtilisationConfig
from oracle.entries import EntryFormatError, ReportEntry, SignerSetEntry, parse_leaf
from oracle.log import AttestationLog, LogConflict
from oracle.reports import feed_id as make_feed_id
from oracle.reports import feed_name
from oracle.state import NodeState, VoteConflict

log_ = logging.getLogger("oracle.node")

PAGE = 500
NODE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
#: Two nodes' source runs are compared only if they were observed this close together
#: (a co-signer compares a report with its own run observed at or before the report's).
OBSERVATION_SKEW_S = 3_600
#: A leader finishes at most this many reports other nodes voted for before its own.
MAX_ADOPTIONS = 4


# ------------------------------------------------------------------ wire models


class SignRequest(BaseModel):
    """A leader's request to co-sign one report (`POST /v1/sign`, authenticated)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    leader: str = Field(pattern=NODE_NAME, description="the leader's node name, as this "
                        "node's config names its peer")
    kind: Literal["price", "utilisation"]
    report: dict[str, Any] = Field(description="the report's fields, camelCase as logged")
    inputs: str = Field(min_length=2, description="the canonical input snapshot (JSON text)")


class SignResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    signer: str
    signature: str


class VoteRecord(BaseModel):
    """The report a node signed for a log position (its vote), with its inputs."""

    model_config = ConfigDict(frozen=True)

    digest: str
    feed: str
    kind: Literal["price", "utilisation"]
    report: dict[str, Any]
    inputs: str


class VoteOut(BaseModel):
    """`GET /v1/votes/{position}`: this node's vote at a position of its log, if any."""

    model_config = ConfigDict(frozen=True)

    position: int
    log_size: int
    vote: VoteRecord | None


class Refusal(Exception):
    """A co-signing request this node refuses; `status` is the HTTP status to answer."""

    def __init__(self, code: str, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class SyncError(Exception):
    """A peer's log cannot be merged into ours (fork, bad entry, unreachable)."""


class Withheld(Exception):
    """A feed has nothing to publish this round; the message says why."""


class RoundOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    feed: str
    status: Literal["published", "refused", "withheld", "skipped", "no_quorum", "failed",
                    "stuck"]
    detail: str | None = None
    entry: int | None = None
    value: int | None = None
    tx_hash: str | None = None
    signers: list[str] = []
    disagreements: dict[str, str] = {}  # peer -> why it did not sign
    elapsed_s: float = 0.0


@dataclass
class Built:
    """A feed's report inputs for this round."""

    label: str  # feed name (price) or "utilisation:<token>"
    kind: Literal["price", "utilisation"]
    snapshot: dict[str, Any]
    inputs: bytes = b""
    fields: Any = None
    newest: int | None = None  # the newest observation of this node's own data

    def __post_init__(self) -> None:
        self.inputs = attest.canonical_json(self.snapshot)
        fields = methodology.compute(self.kind, self.inputs)
        if fields is None:
            raise Withheld(f"no {self.kind} methodology {self.snapshot.get('methodology')!r} "
                           "in this build")
        self.fields = fields

    @property
    def methodology(self) -> tuple[Any, Any]:
        return self.snapshot.get("methodology"), self.snapshot.get("version")


def safe_text(text: str, limit: int = 80) -> str:
    """`text` fit for a log line or a record: printable characters only (anything else
    escaped), at most `limit` characters. Log lines are built from such fields."""
    out = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode()
                  for ch in text[:limit])
    return out + ("..." if len(text) > limit else "")


def report_label(report: attest.Report) -> str:
    return (safe_text(feed_name(report.feed_id)) if isinstance(report, attest.PriceReport)
            else f"utilisation:{report.spv_token}")


def _move_bps(a: int, b: int) -> float:
    """|a - b| in basis points of |b| (of 1 when b is 0)."""
    return abs(a - b) * 10_000 / max(abs(b), 1)


# ------------------------------------------------------------------ feed jobs


@dataclass
class _Job:
    node: Node
    label: str
    kind: Literal["price", "utilisation"] = "price"
    agree_bps: int = 100
    deviation_bps: int = 50
    heartbeat_s: int = 86_400

    def build(self) -> Built:  # pragma: no cover - abstract
        raise NotImplementedError

    def build_like(self, report: attest.Report) -> Built:
        """This node's own build of the feed to compare `report` with (a co-signer's
        view): by default its current build."""
        return self.build()

    def due(self, built: Built, now: int) -> str | None:
        """None if the report should be published; else why not."""
        if self.kind != "price":
            return None
        onchain = self.node.onchain_price(built.fields.feed_id)
        if onchain is None:
            return None
        value, observed = onchain
        if built.fields.observed_at <= observed:
            return (f"no newer data: the hub already holds an observation of "
                    f"{observed} (this one is of {built.fields.observed_at})")
        if value != 0:
            move = abs(built.fields.value - value) * 10_000 / abs(value)
            if move >= self.deviation_bps:
                return None
        else:
            return None
        if now - observed >= self.heartbeat_s:
            return None
        return (f"moved less than {self.deviation_bps} bps and the heartbeat of "
                f"{self.heartbeat_s}s has not elapsed")

    def differences(self, ours: Built, report: attest.Report) -> list[str]:
        """Every field in which `report` differs from what this node built (`ours`)
        beyond the feed's tolerances; empty if it would sign it."""
        diffs: list[str] = []
        o = ours.fields
        if isinstance(report, attest.PriceReport):
            if report.feed_id != o.feed_id:
                diffs.append(f"feedId {report.feed_id}, this node builds {o.feed_id}")
            if report.methodology_version != o.methodology_version:
                diffs.append(f"methodologyVersion {report.methodology_version}, this node "
                             f"builds {o.methodology_version}")
            newest = ours.newest if ours.newest is not None else o.observed_at
            if report.observed_at > newest:
                diffs.append(f"observedAt {report.observed_at} is later than this node's "
                             f"newest data ({newest})")
            elif report.observed_at < o.observed_at:
                diffs.append(f"observedAt {report.observed_at} is earlier than this node's "
                             f"data for it ({o.observed_at})")
            elif report.observed_at - o.observed_at > OBSERVATION_SKEW_S:
                diffs.append(f"observedAt {report.observed_at}: this node's nearest data "
                             f"before it is of {o.observed_at}, more than "
                             f"{OBSERVATION_SKEW_S} s earlier")
            move = _move_bps(report.value, o.value)
            if move > self.agree_bps:
                diffs.append(f"value {report.value}, this node gets {o.value} ({move:.0f} bps "
                             f"apart, the limit is {self.agree_bps})")
            gap = abs(report.confidence - o.confidence) * 10_000
            if gap > self.agree_bps * max(abs(o.value), 1):
                diffs.append(f"confidence {report.confidence}, this node gets {o.confidence} "
                             f"(more than {self.agree_bps} bps of the value apart)")
        else:
            for name in ("spv_token", "period_start", "period_end", "gpu_count"):
                if getattr(report, name) != getattr(o, name):
                    diffs.append(f"{name} {getattr(report, name)}, this node builds "
                                 f"{getattr(o, name)}")
            for name in ("utilisation_bps", "rental_revenue"):
                move = _move_bps(getattr(report, name), getattr(o, name))
                if move > self.agree_bps:
                    diffs.append(f"{name} {getattr(report, name)}, this node gets "
                                 f"{getattr(o, name)} ({move:.0f} bps apart, the limit is "
                                 f"{self.agree_bps})")
        return diffs


@dataclass
class IndexJob(_Job):
    model: str = ""

    def _runs(self) -> list[Any]:
        offers = self.node.config.sources.offers
        if offers is None:
            raise Withheld("no [sources] offers configured for the index")
        files = sorted(offers.glob("*.json*")) if offers.is_dir() else [offers]
        if not files:
            raise Withheld(f"no marketplace snapshots in {offers}")
        results = [_parsed(f) for f in files]
        now = self.node.chain_time()
        results = sorted((r for r in results if r.observed_at <= now),
                         key=lambda r: r.observed_at)
        if not results:
            raise Withheld(f"no marketplace snapshot in {offers} is observed before the "
                           f"chain's clock ({now})")
        return results

    def build(self, *, at: int | None = None) -> Built:
        """The index from this node's newest source run (with `replay`, the oldest run
        newer than the hub's value); with `at`, from its newest run observed at or
        before `at` (a co-signer's view of a report observed then)."""
        from oracle import index

        results = self._runs()
        chosen = results[-1]
        if at is not None:
            before = [r for r in results if r.observed_at <= at]
            chosen = before[-1] if before else results[0]
        elif self.node.config.sources.replay:
            published = self.node.onchain_price(make_feed_id(self.label))
            newer = [r for r in results if published is None or r.observed_at > published[1]]
            if newer:
                chosen = newer[0]
        snapshot = index.build_snapshot(self.label, chosen.quotes, chosen.observed_at,
                                        [index.describe_source(chosen)])
        result = index.evaluate(snapshot)
        if result.value is None:
            raise Withheld(f"index withheld: {result.withheld_reason}")
        built = Built(self.label, "price", snapshot)
        built.newest = results[-1].observed_at
        return built

    def build_like(self, report: attest.Report) -> Built:
        assert isinstance(report, attest.PriceReport)
        return self.build(at=report.observed_at)


@dataclass
class NavJob(_Job):
    spec: NavFeedConfig | None = None

    def build(self) -> Built:
        """The NAV per share (nav-per-share v2): the register and supply as the chain
        holds them, each index model at its latest logged value, the fleet's latest
        utilisation report. The report is observed at the oldest index observation, and
        withheld if an index input is older than its feed's heartbeat allows (or the
        utilisation report older than `max_utilisation_age_s`)."""
        from oracle import valuation

        assert self.spec is not None
        node = self.node
        token = node.token(self.spec.spv_token)
        count = int(token.functions.gpu_count().call())
        rows = [token.functions.gpus(i).call() for i in range(1, count + 1)]
        supply = int(token.functions.totalSupply().call())
        if supply == 0:
            raise Withheld(f"{self.spec.spv_token} has no shares outstanding")
        holdings = valuation.holdings_from_register(rows, self.spec.model_map)
        models = sorted({h.index_model for h in holdings if h.status != "retired"})
        now = node.chain_now()
        index_inputs: dict[str, dict[str, Any]] = {}
        for model in models:
            name = _index_feed_name(model)
            latest = node.latest_logged_price(name)
            if latest is None:
                raise Withheld(f"no logged {model} index value yet to value the fleet against")
            entry_index, report = latest
            allowed = self._max_age(name)
            age = now - report.observed_at
            if age > allowed:
                raise Withheld(
                    f"stale input: the {model} index (log entry {entry_index}) was observed "
                    f"at {report.observed_at}, {age} s before the chain's clock, older than "
                    f"the {allowed} s its heartbeat allows; publish a newer {model} index "
                    "first")
            acq = self.spec.index_at_acquisition.get(model)
            if acq is None:
                raise Withheld(f"no index_at_acquisition configured for {model}")
            index_inputs[model] = {
                "atAcquisition": acq.value,
                "atAcquisitionSource": acq.source,
                "now": attest.fixed_str(report.value),
                "nowConfidence": attest.fixed_str(report.confidence),
                "observedAt": report.observed_at,
                "source": f"{model} index, log entry {entry_index}",
            }
        util = node.latest_logged_utilisation(self.spec.spv_token)
        if util is not None and now - util[1].period_end > self.spec.max_utilisation_age_s:
            raise Withheld(
                f"stale input: the fleet's latest utilisation report (log entry {util[0]}) "
                f"ends at {util[1].period_end}, {now - util[1].period_end} s before the "
                f"chain's clock, older than max_utilisation_age_s "
                f"({self.spec.max_utilisation_age_s}); report a newer period first")
        utilisation = ({"bps": 0, "periodStart": 0, "periodEnd": 0,
                        "source": "no utilisation report logged yet"} if util is None else
                       {"bps": util[1].utilisation_bps, "periodStart": util[1].period_start,
                        "periodEnd": util[1].period_end, "source": f"log entry {util[0]}"})
        observed = min((i["observedAt"] for i in index_inputs.values()), default=now)
        snapshot = valuation.nav_snapshot(
            feed_name=self.label, spv_token=self.spec.spv_token,
            observed_at=observed, total_supply=supply,
            economic_life_years=self.spec.economic_life_years, gpus=holdings,
            index=index_inputs, utilisation=utilisation, version=valuation.VERSION)
        return Built(self.label, "price", snapshot)

    def _max_age(self, index_feed: str) -> int:
        """How old an index input may be: the smaller of the index feed's and this NAV
        feed's on-chain heartbeats (what their consumers accept), or this feed's
        configured heartbeat where the hub has neither."""
        beats = [self.node.feed_heartbeat(name) for name in (index_feed, self.label)]
        return min([b for b in beats if b > 0] or [self.heartbeat_s])


@dataclass
class UtilisationJob(_Job):
    spec: UtilisationConfig | None = None

    def build(self, *, period: tuple[int, int] | None = None) -> Built:
        """The fleet's utilisation over the last full period before the chain's clock
        (or over `period`, one of this feed's periods that has ended: a co-signer's view
        of a report for it)."""
        assert self.spec is not None
        store = self.node.telemetry_store()
        now = self.node.chain_now()
        if period is None:
            end = now // self.spec.period_s * self.spec.period_s
            start = end - self.spec.period_s
            onchain = self.node.onchain_utilisation(self.spec.spv_token)
            if onchain is not None and onchain >= end:
                raise Withheld(f"the period ending {end} is already on-chain")
        else:
            start, end = period
            if end - start != self.spec.period_s or end % self.spec.period_s or end > now:
                raise Withheld(f"{start}..{end} is not one of this feed's periods that has "
                               f"ended ({self.spec.period_s} s, aligned, before {now})")
        registry = self.node.agent_registry()
        snapshot = store.snapshot(self.spec.spv_token, start, end, registry=registry)
        return Built(self.label, "utilisation", snapshot)

    def build_like(self, report: attest.Report) -> Built:
        assert isinstance(report, attest.UtilisationReport)
        return self.build(period=(report.period_start, report.period_end))


def _parsed(path: Path) -> Any:
    """A snapshot file's quotes, parsed once per file version (every round and every
    co-signing request reads the same files)."""
    stat = path.stat()
    return _parse_cached(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _parse_cached(path: str, mtime_ns: int, size: int) -> Any:
    from oracle.sources import marketplace

    return marketplace.parse_snapshot(Path(path))


def _index_feed_name(model: str) -> str:
    from oracle import index

    return index.feed_name_for(model)


def explain(ours: dict[str, Any], theirs: Any) -> str:
    """What differs between this node's snapshot and the leader's inputs, in a few
    words (the leader's inputs serve only this: explaining a disagreement)."""
    if not isinstance(theirs, dict):
        return "the leader's inputs are not an object"
    notes = []
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key), theirs.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            note = f"{key}: the leader's {len(b)}, this node's {len(a)}"
            if key == "quotes":
                hosts_a = {(q.get("provider"), q.get("host")) for q in a if isinstance(q, dict)}
                hosts_b = {(q.get("provider"), q.get("host")) for q in b if isinstance(q, dict)}
                note += (f" ({len(hosts_b - hosts_a)} contributor(s) only in the leader's, "
                         f"{len(hosts_a - hosts_b)} only in this node's)")
            notes.append(note)
        elif isinstance(a, dict | list) or isinstance(b, dict | list):
            notes.append(f"{key} differs")
        else:
            notes.append(f"{key}: the leader's {safe_text(str(b), 40)}, this node's "
                         f"{safe_text(str(a), 40)}")
    return "; ".join(notes[:6]) or "the inputs are the same"


# ------------------------------------------------------------------ the node


@dataclass
class _HubView:
    version: int
    signers: list[str]
    threshold: int
    at: float


@dataclass
class Node:
    config: NodeConfig
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        # Both keys decrypted once, at start: a wrong passphrase fails here, not at the
        # first publication, and a keystore's scrypt is paid once.
        self.key = self.config.signer_key()
        self.publisher_key = self.config.publisher_key()
        self.address = Account.from_key(self.key).address
        self.log = AttestationLog(self.config.log, create=True)
        self.state = NodeState(self.config.state)
        self._lock = threading.RLock()
        self._hub_view: _HubView | None = None
        self._web3: Any = None
        self._chain_id_value: int | None = None
        self._hub: Any = None
        self._tokens: dict[str, Any] = {}
        self._store: Any = None
        self._registry: Any = None
        self._chain_time: tuple[int, float] | None = None  # (chain time, monotonic when read)
        api = self.config.api
        self.verifier = peerauth.Verifier(
            receiver=self.config.name, chain_id=self._chain_id_checked,
            hub=lambda: self.hub.address, chain_time=self.chain_time,
            signer_set=lambda: self.hub_view(peerauth.HUB_VIEW_MAX_AGE_S).signers,
            window_s=api.auth_window_s, rate_per_s=api.peer_rate_per_s, burst=api.peer_burst)
        self.jobs: dict[str, _Job] = {}
        for feed in self.config.feeds:
            if isinstance(feed, IndexFeedConfig):
                name = _index_feed_name(feed.model)
                self.jobs[name] = IndexJob(self, name, "price", feed.agree_bps,
                                           feed.deviation_bps, feed.heartbeat_s,
                                           model=feed.model)
            else:
                name = self.nav_feed_name(feed)
                self.jobs[name] = NavJob(self, name, "price", feed.agree_bps,
                                         feed.deviation_bps, feed.heartbeat_s, spec=feed)
        for util in self.config.utilisation:
            name = f"utilisation:{util.spv_token}"
            self.jobs[name] = UtilisationJob(self, name, "utilisation", spec=util)

    def close(self) -> None:
        self.http.close()
        self.log.close()
        self.state.close()
        if self._store is not None:
            self._store.close()

    # ------------------------------------------------------------ chain

    @property
    def hub(self) -> Any:
        if self._hub is None:
            if not self.config.rpc or not self.config.hub:
                raise Refusal("no_chain", "this node has no rpc/hub configured", 503)
            from oracle.verify import connect_hub

            self._hub = connect_hub(self.config.rpc, self.config.hub)
            self._web3 = self._hub.w3
        return self._hub

    @property
    def domain(self) -> attest.Domain:
        hub = self.hub
        return attest.Domain(chain_id=self._chain_id(), hub=hub.address)

    def _chain_id(self) -> int:
        if self._chain_id_value is None:
            self._chain_id_value = int(self._web3.eth.chain_id)
        return self._chain_id_value

    def _chain_id_checked(self) -> int:
        self.hub  # noqa: B018 - raises Refusal(no_chain) on a node without a chain
        return self._chain_id()

    def chain_now(self) -> int:
        """The latest block's time (observations are never later than the block)."""
        hub = self.hub
        now = int(hub.w3.eth.get_block("latest")["timestamp"])
        self._chain_time = (now, time.monotonic())
        return now

    def chain_time(self, max_age_s: float = 1.0) -> int:
        """The chain's time as last read, if read within `max_age_s` (this process's
        monotonic clock), else read now: for checks that run on every request."""
        cached = self._chain_time
        if cached is not None and time.monotonic() - cached[1] <= max_age_s:
            return cached[0]
        return self.chain_now()

    def feed_heartbeat(self, name: str) -> int:
        """The hub's heartbeat of a feed (seconds; 0 if the hub has no such feed)."""
        return int(self.hub.functions.feed_heartbeat(bytes.fromhex(make_feed_id(name)[2:]))
                   .call())

    def now(self) -> int:
        """The time this node acts at: the chain's (its latest block), which is what every
        consumer's staleness check reads; this machine's clock only for a node with no
        chain configured (an offline co-signer of telemetry, say)."""
        if self.config.rpc and self.config.hub:
            return self.chain_now()
        return int(self.clock())

    def hub_view(self, max_age_s: float = 5.0) -> _HubView:
        view = self._hub_view
        if view is None or time.monotonic() - view.at > max_age_s:
            fns = self.hub.functions
            view = _HubView(int(fns.config_version().call()), list(fns.signers().call()),
                            int(fns.threshold().call()), time.monotonic())
            self._hub_view = view
        return view

    def token(self, address: str) -> Any:
        if address not in self._tokens:
            self._tokens[address] = self.hub.w3.eth.contract(
                attest.checksum_address(address), abi=abi.load("GPUShareToken"))
        return self._tokens[address]

    def onchain_price(self, feed: str) -> tuple[int, int] | None:
        value, observed, round_id = self.hub.functions.latest_value(
            bytes.fromhex(feed[2:])).call()
        return None if round_id == 0 else (int(value), int(observed))

    def onchain_utilisation(self, token: str) -> int | None:
        view = self.hub.functions.utilisation(attest.checksum_address(token)).call()
        return None if view[-1] == 0 else int(view[1])

    # ------------------------------------------------------------ telemetry

    def agent_registry(self) -> Any:
        if self._registry is None:
            from oracle.telemetry.registry import AgentRegistry

            path = self.config.telemetry.agents
            if path is None:
                raise Refusal("no_agents", "this node has no [telemetry] agents registry", 503)
            self._registry = AgentRegistry.load(path)
        return self._registry

    def telemetry_store(self) -> Any:
        if self._store is None:
            from oracle.telemetry.store import TelemetryStore

            self._store = TelemetryStore(self.config.state.with_name(
                self.config.state.stem + "-telemetry.sqlite"))
        return self._store

    # ------------------------------------------------------------ log queries

    def latest_logged_price(self, name: str) -> tuple[int, attest.PriceReport] | None:
        target = make_feed_id(name)
        for index in reversed(self.log.indices("price")):
            entry = parse_leaf(self.log.entry(index).leaf)
            if isinstance(entry, ReportEntry) and entry.signed.report.feed_id == target:
                assert isinstance(entry.signed.report, attest.PriceReport)
                return index, entry.signed.report
        return None

    def latest_logged_utilisation(self, token: str) -> tuple[int, attest.UtilisationReport] | None:
        token = attest.checksum_address(token)
        for index in reversed(self.log.indices("utilisation")):
            entry = parse_leaf(self.log.entry(index).leaf)
            if isinstance(entry, ReportEntry) and entry.signed.report.spv_token == token:
                assert isinstance(entry.signed.report, attest.UtilisationReport)
                return index, entry.signed.report
        return None

    def nav_feed_name(self, feed: NavFeedConfig) -> str:
        from oracle import valuation

        if self.config.rpc and self.config.hub:
            try:
                symbol = self.token(feed.spv_token).functions.symbol().call()
                return valuation.nav_feed_name(symbol)
            except Exception as exc:  # noqa: BLE001 - fall back to the address
                log_.warning("cannot read the symbol of %s (%s); naming its NAV feed by "
                             "address", feed.spv_token, exc)
        return valuation.nav_feed_name(feed.spv_token[2:10])

    # ------------------------------------------------------------ sync

    def sync_from(self, peer: str, url: str, *, up_to: int | None = None) -> int:
        """Append the peer's entries beyond our log (up to size `up_to`), each checked;
        returns how many were added. Raises SyncError on a fork or a bad entry."""
        added = 0
        with self._lock:
            while up_to is None or self.log.size < up_to:
                size = self.log.size
                try:
                    resp = self.http.get(f"{url}/v1/attestations",
                                         params={"after": size - 1, "limit": PAGE})
                    resp.raise_for_status()
                    page = resp.json()
                except (httpx.HTTPError, ValueError) as exc:
                    raise SyncError(f"cannot read {peer}'s log at {url}: {exc}") from exc
                entries = page.get("entries", [])
                if not entries:
                    break
                for item in entries:
                    if up_to is not None and self.log.size >= up_to:
                        break
                    self._append_synced(peer, item)
                    added += 1
            if fork := self._peer_prefix_mismatch(peer, url):
                raise SyncError(fork)
        return added

    def _peer_prefix_mismatch(self, peer: str, url: str) -> str | None:
        """Our log and the peer's must agree on their common prefix (no fork)."""
        try:
            cp = self.http.get(f"{url}/v1/checkpoint").json()
        except (httpx.HTTPError, ValueError) as exc:
            return f"cannot read {peer}'s checkpoint: {exc}"
        common = min(int(cp["size"]), self.log.size)
        if common == 0:
            return None
        ours = "0x" + self.log.checkpoint(common).root.hex()
        if common == int(cp["size"]):
            theirs = cp["root"]
        else:
            try:
                item = self.http.get(f"{url}/v1/attestations/{common - 1}").json()
            except (httpx.HTTPError, ValueError) as exc:
                return f"cannot read {peer}'s entry {common - 1}: {exc}"
            if item.get("leaf_hash") != "0x" + self.log.entry(common - 1).leaf_hash.hex():
                return (f"{peer}'s log differs from ours at entry {common - 1}: a fork; "
                        "stop one of the nodes and compare both logs with `gpu-oracle verify`")
            return None
        if ours != theirs:
            return (f"{peer}'s log of size {common} has root {theirs}, ours {ours}: a fork; "
                    "stop one of the nodes and compare both logs with `gpu-oracle verify`")
        return None

    def _append_synced(self, peer: str, item: dict[str, Any]) -> None:
        index = int(item["index"])
        if index != self.log.size:
            raise SyncError(f"{peer} sent entry {index} when our log needs {self.log.size}")
        leaf = bytes.fromhex(item["leaf"][2:])
        inputs = bytes.fromhex(item["inputs"][2:]) if item.get("inputs") else None
        try:
            entry = parse_leaf(leaf)
        except EntryFormatError as exc:
            raise SyncError(f"{peer}'s entry {index} is malformed: {exc}") from exc
        if entry.index != index:
            raise SyncError(f"{peer}'s entry {index} claims position {entry.index}")
        if isinstance(entry, SignerSetEntry):
            view = self.hub_view(max_age_s=0)
            known = self._signer_set(entry.config_version)
            if known is None and not (entry.config_version == view.version and
                                      list(entry.signers) == view.signers and
                                      entry.threshold == view.threshold):
                raise SyncError(f"{peer}'s entry {index} is a signer set the hub does not hold")
            kind = "signer_set"
        else:
            signers = self._signer_set(entry.signed.report.config_version)
            if signers is None:
                raise SyncError(f"{peer}'s entry {index} names config version "
                                f"{entry.signed.report.config_version}, not in our log")
            try:
                attest.check_signatures(entry.signed, signers[0], signers[1])
            except attest.AttestationError as exc:
                raise SyncError(f"{peer}'s entry {index}: {exc}") from exc
            if inputs is None or attest.inputs_hash(inputs) != entry.signed.report.inputs_hash:
                raise SyncError(f"{peer}'s entry {index}: inputs missing or not matching "
                                "the report's inputsHash")
            kind = entry.signed.kind
        try:
            self.log.append(leaf, kind=kind, inputs=inputs, expect_size=index)
        except LogConflict as exc:
            raise SyncError(f"our log grew while syncing from {peer}: {exc}") from exc
        pub = item.get("publication")
        if pub and pub.get("status") == "published" and pub.get("tx_hash"):
            self._copy_publication(index, pub)

    def _copy_publication(self, index: int, pub: dict[str, Any]) -> None:
        """Record a peer's publication of an entry once the chain confirms it."""
        try:
            receipt = self.hub.w3.eth.get_transaction_receipt(pub["tx_hash"])
        except Exception:  # noqa: BLE001 - not (yet) visible: leave it unpublished here
            return
        if receipt["status"] == 1:
            self.log.record_outcome(index, status="published", tx_hash=pub["tx_hash"],
                                    block_number=int(receipt["blockNumber"]),
                                    detail="published by a peer")

    def _signer_set(self, config_version: int) -> tuple[list[str], int] | None:
        for index in reversed(self.log.indices("signer_set")):
            entry = parse_leaf(self.log.entry(index).leaf)
            if isinstance(entry, SignerSetEntry) and entry.config_version == config_version:
                return list(entry.signers), entry.threshold
        return None

    def sync_all(self) -> dict[str, str]:
        """Pull from every peer; returns the peers that could not be synced, with why."""
        problems: dict[str, str] = {}
        for peer in self.config.peers:
            try:
                self.sync_from(peer.name, peer.url)
            except SyncError as exc:
                problems[peer.name] = str(exc)
        return problems

    def _ensure_signer_set(self) -> None:
        view = self.hub_view(max_age_s=0)
        if view.version == 0:
            raise Refusal("no_signers", "the hub has no signer set yet", 503)
        if self._signer_set(view.version) is None:
            from oracle.reports import record_signer_set

            record_signer_set(self.log, self.domain, view.version, view.signers, view.threshold)

    # ------------------------------------------------------------ peer requests

    def peer_headers(self, peer: str, method: str, path: str, body: bytes = b"") -> dict[str, str]:
        """The authentication headers of a request from this node to `peer` (its name)."""
        return peerauth.sign_headers(
            self.key, chain_id=self._chain_id_checked(), hub=self.hub.address, receiver=peer,
            method=method, path=path, stamp=self.chain_time(), body=body)

    # ------------------------------------------------------------ co-signing

    def cosign(self, req: SignRequest, signer: str = "?") -> SignResponse:
        """Co-sign an authenticated peer's report if this node would have built it (see
        the module doc). `signer` is the address that signed the request."""
        label = _label_of(req)
        try:
            response, label = self._cosign(req)
        except Refusal as exc:
            self.state.record_round(label, "cosigner", f"refused:{exc.code}", exc.message)
            log_.warning("refused to co-sign %s for %s (%s): %s", label, req.leader, signer,
                         exc.code)
            raise
        self.state.record_round(label, "cosigner", "signed", f"for {req.leader}")
        return response

    def _cosign(self, req: SignRequest) -> tuple[SignResponse, str]:
        url = self.config.peer_url(req.leader)
        if url is None:
            raise Refusal("unknown_leader", f"{req.leader!r} is not one of this node's peers",
                          403)
        report = _parse_report(req.kind, req.report)
        label = report_label(report)
        inputs = req.inputs.encode()
        self._check_inputs(inputs, report)
        with self._lock:
            if self.log.size < report.log_size:
                try:
                    self.sync_from(req.leader, url, up_to=report.log_size)
                except SyncError as exc:
                    raise Refusal("sync", str(exc), 409) from exc
            self._check_position(report)
            digest = attest.digest(report, self.domain).hex()
            existing = self.state.vote_at(report.log_size)
            if existing is not None and existing.digest != digest:
                raise Refusal("already_voted", f"this node already signed another report for "
                              f"log position {report.log_size} (a {existing.feed} report, "
                              f"digest {existing.digest}), and signs one per position, for "
                              f"good: finish that one (GET /v1/votes/{report.log_size})")
            self._judge(req.kind, report, inputs)
            signed = attest.sign(report, self.domain, self.key)
            try:
                self.state.vote(report.log_size, digest, label, kind=req.kind,
                                report=report.canonical(), inputs=inputs, at=self.chain_time())
            except VoteConflict as exc:
                raise Refusal("already_voted", str(exc)) from exc
        return SignResponse(signer=self.address, signature=signed), label

    def _check_inputs(self, inputs: bytes, report: attest.Report) -> None:
        """The cheap checks of a peer's inputs, before anything is computed: the item
        limit (before parsing), canonical JSON, the hash, a current methodology."""
        limit = self.config.api.max_input_items
        if inputs.count(b"{") + inputs.count(b"[") > limit:
            raise Refusal("too_many_inputs", f"the inputs hold more than {limit} JSON objects "
                          "and arrays ([api] max_input_items)", 422)
        if attest.inputs_hash(inputs) != report.inputs_hash:
            raise Refusal("bad_inputs", "the inputs do not hash to the report's inputsHash", 422)
        try:
            data = json.loads(inputs)
            canonical = attest.canonical_json(data)
        except (ValueError, RecursionError, attest.AttestationError) as exc:
            raise Refusal("bad_inputs", f"the inputs are not canonical JSON: {exc}", 422) from exc
        if canonical != inputs:
            raise Refusal("bad_inputs", "the inputs are not in canonical form", 422)
        try:
            methodology.check_current(data)
        except methodology.MethodologyError as exc:
            raise Refusal("retired_methodology", str(exc), 422) from exc

    def _check_position(self, report: attest.Report) -> None:
        """The report names the hub's config version, this node is a signer, and the
        report's checkpoint is this node's log as it stands (called with the lock)."""
        view = self.hub_view()
        if report.config_version != view.version:
            raise Refusal("config_version", f"the report names config version "
                          f"{report.config_version}, the hub is at {view.version}")
        if self.address not in view.signers:
            raise Refusal("not_signer", f"this node's key {self.address} is not in the hub's "
                          "signer set", 503)
        if self.log.size != report.log_size:
            raise Refusal("checkpoint", f"the report commits to log size {report.log_size}, "
                          f"this node's log has {self.log.size} entries")
        root = "0x" + self.log.checkpoint(report.log_size).root.hex()
        if root != report.log_root:
            raise Refusal("checkpoint", f"the report commits to root {report.log_root} at "
                          f"size {report.log_size}, this node's log has {root}: a fork")

    def _judge(self, kind: str, report: attest.Report, inputs: bytes) -> None:
        """Refuse unless this node would have built `report` itself: its own build of the
        feed (from its own sources, its log at the report's checkpoint) agrees on every
        field; and the leader's inputs recompute to the report (the log must let an
        auditor recompute it). The leader's inputs explain a disagreement, nothing else."""
        label = report_label(report)
        job = self.jobs.get(label)
        if job is None or job.kind != kind:
            raise Refusal("unknown_feed", f"this node does not run {label}; add it to its "
                          "config to co-sign it")
        observed = (report.observed_at if isinstance(report, attest.PriceReport)
                    else report.period_end)
        now = self.chain_time(0.0)
        if observed > now:
            raise Refusal("disagree", f"the report is observed at {observed}, after the "
                          f"chain's clock ({now})")
        try:
            ours = job.build_like(report)
        except (Withheld, methodology.MethodologyError) as exc:
            raise Refusal("disagree", f"this node's own sources give no value: {exc}") from exc
        theirs = json.loads(inputs)
        diffs = job.differences(ours, report)
        if ours.methodology != (theirs.get("methodology"), theirs.get("version")):
            diffs.insert(0, f"methodology {theirs.get('methodology')!r} "
                            f"v{theirs.get('version')}, this node builds "
                            f"{ours.methodology[0]!r} v{ours.methodology[1]}")
        if diffs:
            raise Refusal("disagree", "this node's own sources give another report: "
                          + "; ".join(diffs) + f". Inputs: {explain(ours.snapshot, theirs)}")
        try:
            fields = methodology.compute(kind, inputs)
        except methodology.MethodologyError as exc:
            raise Refusal("disagree", f"recomputing the leader's inputs fails: {exc}") from exc
        if fields is None:
            raise Refusal("unknown_methodology", "this node does not know the snapshot's "
                          "methodology; upgrade it", 422)
        mine = fields.model_dump()
        theirs_fields = {k: getattr(report, k) for k in mine}
        if mine != theirs_fields:
            diff = {k: (theirs_fields[k], mine[k]) for k in mine if mine[k] != theirs_fields[k]}
            raise Refusal("disagree", f"recomputed from the leader's inputs, this node gets "
                          f"{ {k: v[1] for k, v in diff.items()} } where the report says "
                          f"{ {k: v[0] for k, v in diff.items()} }")

    def vote_out(self, position: int) -> VoteOut:
        """This node's vote at `position` while the log has not grown past it (for an
        authenticated peer: `GET /v1/votes/{position}`)."""
        size = self.log.size
        vote = self.state.vote_at(position) if position >= size else None
        record = None
        if vote is not None and vote.report is not None and vote.kind in ("price",
                                                                        "utilisation"):
            record = VoteRecord(digest=vote.digest, feed=vote.feed, kind=vote.kind,
                                report=vote.report, inputs=(vote.inputs or b"").decode())
        return VoteOut(position=position, log_size=size, vote=record)

    # ------------------------------------------------------------ leading

    def run_round(self, feeds: list[str] | None = None) -> list[RoundOutcome]:
        """Lead one round over the due feeds (all configured feeds by default)."""
        problems = self.sync_all()
        for peer, why in problems.items():
            log_.warning("could not sync from %s: %s", peer, why)
        self._ensure_signer_set()
        outcomes: list[RoundOutcome] = []
        # Utilisation first, then index feeds, then NAV (which reads both from the log).
        order = sorted(self.jobs.values(), key=lambda j: (
            0 if isinstance(j, UtilisationJob) else 1 if isinstance(j, IndexJob) else 2))
        for job in order:
            if feeds is not None and job.label not in feeds:
                continue
            for outcome in self._lead(job):
                self.state.record_round(outcome.feed, "leader", outcome.status,
                                        outcome.detail, outcome.entry)
                outcomes.append(outcome)
        self.state.prune_votes(self.log.size)
        return outcomes

    def _lead(self, job: _Job) -> list[RoundOutcome]:
        started = time.monotonic()
        try:
            built = job.build()
            methodology.check_current(built.snapshot)
        except (Withheld, methodology.MethodologyError) as exc:
            return [RoundOutcome(feed=job.label, status="withheld", detail=str(exc))]
        not_due = job.due(built, self.chain_now())
        if not_due is not None:
            return [RoundOutcome(feed=job.label, status="skipped", detail=not_due)]
        view = self.hub_view(max_age_s=0)
        adopted, blocked = self._settle(view)
        if blocked is not None:
            status: Literal["stuck", "no_quorum"] = ("stuck" if blocked.startswith("stuck")
                                                    else "no_quorum")
            return [*adopted, RoundOutcome(feed=job.label, status=status, detail=blocked)]
        if adopted:  # the log grew: the feed may be built on what was just appended
            try:
                built = job.build()
            except (Withheld, methodology.MethodologyError) as exc:
                return [*adopted, RoundOutcome(feed=job.label, status="withheld",
                                               detail=str(exc))]
            not_due = job.due(built, self.chain_now())
            if not_due is not None:
                return [*adopted, RoundOutcome(feed=job.label, status="skipped",
                                               detail=not_due)]
        with self._lock:
            checkpoint = self.log.checkpoint()
            common = {"inputs_hash": attest.inputs_hash(built.inputs),
                      "log_size": checkpoint.size, "log_root": "0x" + checkpoint.root.hex(),
                      "config_version": view.version}
            report = attest.REPORT_TYPES[built.kind](**built.fields.model_dump(), **common)
        return [*adopted, self._propose(job.label, built.kind, report, built.inputs, view,
                                        started)]

    def _settle(self, view: _HubView) -> tuple[list[RoundOutcome], str | None]:
        """Finish the reports nodes already voted for at the log's position before
        proposing a new one there, so votes are not split: returns the outcomes of the
        reports finished (adopted), and why this node cannot propose at the position, or
        None. A position is stuck when no report can reach k signatures any more."""
        outcomes: list[RoundOutcome] = []
        for _ in range(MAX_ADOPTIONS):
            position = self.log.size
            votes = self._votes_at(position)
            cast = {n: v for n, v in votes.items() if v is not None and v != "unknown"}
            if not cast:
                return outcomes, None
            free = [n for n, v in votes.items() if v is None or v == "unknown"]
            groups: dict[str, list[tuple[str, VoteRecord]]] = {}
            for name, vote in cast.items():
                assert isinstance(vote, VoteRecord)
                groups.setdefault(vote.digest, []).append((name, vote))
            mine = votes.get(self.config.name)
            mine_digest = mine.digest if isinstance(mine, VoteRecord) else None
            order = sorted(groups, key=lambda d: (d != mine_digest, -len(groups[d]), d))
            finished = False
            for digest in order:
                voters = groups[digest]
                record = voters[0][1]
                if len(voters) + len(free) < view.threshold:
                    continue
                try:
                    report = _parse_report(record.kind, record.report)
                    inputs = record.inputs.encode()
                    if report.config_version != view.version:
                        continue
                    if mine_digest is None:  # would this node sign it?
                        with self._lock:
                            self._check_position(report)
                            self._judge(record.kind, report, inputs)
                except Refusal:
                    continue
                names = ", ".join(sorted(n for n, _ in voters))
                outcome = self._propose(report_label(report), record.kind, report, inputs,
                                        view, time.monotonic())
                outcomes.append(outcome.model_copy(update={"detail": (
                    f"adopted the report {names} voted for at log position {position}"
                    + (f"; {outcome.detail}" if outcome.detail else ""))}))
                finished = True
                break
            if not finished:
                best = max(len(v) for v in groups.values())
                if best + len(free) < view.threshold:
                    split = "; ".join(f"{', '.join(sorted(n for n, _ in v))}: {v[0][1].feed} "
                                      f"({d[:10]})" for d, v in sorted(groups.items()))
                    return outcomes, (
                        f"stuck: log position {position} can never be filled: the votes are "
                        f"split ({split}) and no report can reach {view.threshold} "
                        "signatures. See docs/oracle.md, 'A stuck position'")
                if mine_digest is not None:
                    return outcomes, (f"this node voted for a {mine.feed} report at log "  # type: ignore[union-attr]
                                      f"position {position} that it cannot finish now; "
                                      "it signs nothing else there")
                return outcomes, None
            if self.log.size == position:  # the adopted report did not reach k
                if mine_digest is not None or outcomes[-1].status != "published":
                    return outcomes, (f"the report voted for at log position {position} did "
                                      f"not reach {view.threshold} signatures this round")
        return outcomes, None

    def _votes_at(self, position: int) -> dict[str, VoteRecord | None | str]:
        """Every node's vote at `position`: this node's, and each peer's (authenticated
        `GET /v1/votes/{position}`; "unknown" for a peer that did not answer)."""
        out: dict[str, VoteRecord | None | str] = {}
        own = self.vote_out(position).vote
        out[self.config.name] = own
        peers = list(self.config.peers)
        if not peers:
            return out
        digest_domain = self.domain

        def ask(name: str, url: str) -> VoteRecord | None | str:
            path = f"/v1/votes/{position}"
            try:
                resp = self.http.get(f"{url}{path}", headers=self.peer_headers(name, "GET", path),
                                     timeout=self.config.rounds.sign_timeout_s)
                if resp.status_code != 200:
                    return "unknown"
                got = VoteOut.model_validate(resp.json())
            except (httpx.HTTPError, ValueError, ValidationError):
                return "unknown"
            if got.vote is None:
                return None if got.log_size <= position else "unknown"
            try:
                report = _parse_report(got.vote.kind, got.vote.report)
            except Refusal:
                return "unknown"
            if report.log_size != position or \
                    attest.digest(report, digest_domain).hex() != got.vote.digest:
                return "unknown"
            return got.vote

        with ThreadPoolExecutor(max_workers=len(peers), thread_name_prefix="votes") as pool:
            futures = {pool.submit(ask, p.name, p.url): p.name for p in peers}
            for future in as_completed(futures):
                out[futures[future]] = future.result()
        return out

    def _propose(self, label: str, kind: Literal["price", "utilisation"],
                 report: attest.Report, inputs: bytes, view: _HubView,
                 started: float) -> RoundOutcome:
        """Vote for `report` (at its log position, for good), collect k signatures,
        append and publish."""
        digest = attest.digest(report, self.domain)
        try:
            self.state.vote(report.log_size, digest.hex(), label, kind=kind,
                            report=report.canonical(), inputs=inputs, at=self.chain_time())
        except VoteConflict as exc:
            return RoundOutcome(feed=label, status="no_quorum", detail=str(exc))
        signatures = {self.address: attest.sign(report, self.domain, self.key)}
        disagreements = self._collect(kind, report, inputs, view, signatures)
        value = getattr(report, "value", None)
        if value is None:
            value = getattr(report, "utilisation_bps", None)
        if len(signatures) < view.threshold:
            detail = (f"{len(signatures)} of the {view.threshold} signatures needed; "
                      + "; ".join(f"{p}: {why}" for p, why in sorted(disagreements.items())))
            log_.error("round for %s: no quorum (%d of %d signatures)", label,
                       len(signatures), view.threshold)
            return RoundOutcome(feed=label, status="no_quorum", detail=detail, value=value,
                                signers=sorted(signatures), disagreements=disagreements,
                                elapsed_s=time.monotonic() - started)
        for peer in disagreements:
            log_.warning("round for %s: %s outvoted", label, peer)
        # The leader's own signature and the first peers' that arrived, in address order.
        own = [(self.address, signatures[self.address])]
        others = [(a, sig) for a, sig in signatures.items() if a != self.address]
        chosen = sorted(own + others[:view.threshold - 1], key=lambda kv: int(kv[0], 16))
        signed = attest.SignedReport(kind=kind, domain=self.domain, report=report,
                                     signatures=[s for _, s in chosen],
                                     signers=[a for a, _ in chosen])
        attest.check_signatures(signed, view.signers, view.threshold)
        entry = ReportEntry(index=report.log_size, signed=signed)
        try:
            self.log.append(entry.leaf(), kind=kind, inputs=inputs,
                            expect_size=report.log_size)
        except LogConflict as exc:
            return RoundOutcome(feed=label, status="failed",
                                detail=f"the log grew during the round: {exc}")
        self.state.mark_led(entry.index)
        outcome = self._publish(entry.index)
        return RoundOutcome(
            feed=label, status="published" if outcome.status == "published" else "refused",
            detail=outcome.detail, entry=entry.index, value=value, tx_hash=outcome.tx_hash,
            signers=[a for a, _ in chosen], disagreements=disagreements,
            elapsed_s=time.monotonic() - started)

    def _collect(self, kind: str, report: attest.Report, inputs: bytes, view: _HubView,
                 signatures: dict[str, str]) -> dict[str, str]:
        """Ask every peer to co-sign until the threshold is met; returns why the others
        did not sign."""
        body = json.dumps(SignRequest(leader=self.config.name, kind=kind,  # type: ignore[arg-type]
                                      report=report.canonical(),
                                      inputs=inputs.decode()).model_dump()).encode()
        disagreements: dict[str, str] = {}
        digest = attest.digest(report, self.domain)
        timeout = self.config.rounds.sign_timeout_s
        peers = list(self.config.peers)
        if not peers:
            return disagreements
        pool = ThreadPoolExecutor(max_workers=len(peers), thread_name_prefix="cosign")
        futures = {pool.submit(self._ask, p.name, p.url, body, timeout): p.name for p in peers}
        answered: set[str] = set()

        def take(future: Any) -> None:
            peer = futures[future]
            answered.add(peer)
            ok, payload = future.result()
            if not ok:
                disagreements[peer] = payload
                return
            try:
                signer = attest.recover(digest, payload["signature"])
            except (attest.AttestationError, KeyError, TypeError) as exc:
                disagreements[peer] = f"returned an unusable signature: {exc}"
                return
            if signer not in view.signers:
                disagreements[peer] = f"signed with {signer}, not a hub signer"
                return
            signatures[signer] = payload["signature"]

        try:
            for future in as_completed(futures, timeout=timeout + 1):
                take(future)
                if len(signatures) >= view.threshold:
                    break
        except TimeoutError:
            pass
        # With the quorum met, the others get a short grace to answer, so a disagreeing
        # node is named in the round's record rather than cut off.
        if len(signatures) >= view.threshold and len(answered) < len(futures):
            try:
                for future in as_completed([f for f in futures if futures[f] not in answered],
                                           timeout=self.config.rounds.outvote_grace_s):
                    take(future)
            except TimeoutError:
                pass
        for peer in futures.values():
            if peer not in answered:
                disagreements[peer] = (f"no answer within {timeout:.0f}s" if
                                       len(signatures) < view.threshold else
                                       "had not answered when the quorum was reached")
        pool.shutdown(wait=False, cancel_futures=True)
        return disagreements

    def _ask(self, peer: str, url: str, body: bytes, timeout: float) -> tuple[bool, Any]:
        path = "/v1/sign"
        try:
            headers = {"content-type": "application/json",
                       **self.peer_headers(peer, "POST", path, body)}
            resp = self.http.post(f"{url}{path}", content=body, headers=headers,
                                  timeout=timeout)
        except httpx.HTTPError as exc:
            return False, f"down or unreachable ({type(exc).__name__}: {exc})"
        try:
            data = resp.json()
        except ValueError:
            return False, f"answered HTTP {resp.status_code} without JSON"
        if resp.status_code != 200:
            detail = data.get("detail") if isinstance(data, dict) else data
            if isinstance(detail, dict):
                return False, f"refused ({detail.get('code')}): {detail.get('message')}"
            return False, f"refused (HTTP {resp.status_code}): {detail}"
        return True, data

    def _publish(self, index: int) -> Any:
        from oracle.publisher import Publisher, PublishOutcome

        if self.publisher_key is None:
            return PublishOutcome(index=index, status="refused",
                                  detail="no publisher_key_file: logged, not published")
        publisher = Publisher(self.hub.w3, self.hub.address, self.log, self.publisher_key)
        return publisher.publish(index)

    def publish_led(self) -> list[Any]:
        """Publish every entry this node led that is not yet on-chain (after a restart)."""
        unpublished = set(self.log.unpublished("price")) | set(self.log.unpublished("utilisation"))
        return [self._publish(i) for i in self.state.led() if i in unpublished]

    # ------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        reasons = []
        feeds: dict[str, Any] = {}
        for record in self.state.latest_rounds():
            if record.role != "leader":
                continue
            feeds[record.feed] = record.model_dump(exclude={"feed", "role"})
            if record.status in ("no_quorum", "failed", "stuck"):
                reasons.append(f"{record.feed}: {record.status}: {record.detail}")
        size = self.log.size
        pending = self.state.vote_at(size)
        vote = None if pending is None else {
            "position": pending.position, "feed": pending.feed, "digest": pending.digest,
            "at": pending.at}
        return {"status": "degraded" if reasons else "ok", "node": self.config.name,
                "signer": self.address, "log_size": size, "reasons": reasons,
                "pending_vote": vote, "feeds": feeds}


def _parse_report(kind: str, data: dict[str, Any]) -> attest.Report:
    try:
        report = attest.REPORT_TYPES[kind].from_canonical(data)
    except (attest.AttestationError, ValueError, KeyError) as exc:
        raise Refusal("bad_report", f"the report is malformed: {exc}", 422) from exc
    assert isinstance(report, attest.PriceReport | attest.UtilisationReport)
    return report


def _label_of(req: SignRequest) -> str:
    """The feed a (possibly malformed) request is about, for the round record: printable
    text only, whatever the request holds."""
    if req.kind == "price":
        fid = req.report.get("feedId")
        try:
            return (safe_text(feed_name(fid)) if isinstance(fid, str) and fid.startswith("0x")
                    and len(fid) == 66 else "?")
        except ValueError:
            return "?"
    token = req.report.get("spvToken")
    return f"utilisation:{safe_text(token, 42) if isinstance(token, str) else '?'}"


def load_node(config_path: Path) -> Node:
    from oracle.config import load_config

    return Node(load_config(config_path))
