"""One oracle node of a k-of-n quorum: its own key, its own log, its peers.

A round, led by one node (`gpu-oracle round`, or `Node.run_round`):

1. The leader pulls its peers' newer log entries (`sync`), so it builds on the longest
   log the quorum holds; every pulled entry is checked (format, k-of-n signatures,
   inputs hash) before it is appended, and a peer whose log forks from ours is refused.
2. For every feed that is due (no value yet, a move beyond the feed's deviation
   threshold, or its heartbeat elapsed, and newer data than the hub holds), it builds
   the canonical input snapshot from its own sources and computes the report with the
   methodology the snapshot names. A withheld index (too few contributors, too
   dispersed) is recorded with its reason; nothing stale is carried forward.
3. It signs, then asks every peer `POST /v1/sign` with the report and its inputs. A peer
   syncs its log up to the report's checkpoint, recomputes the report from the same
   inputs (and signs only if it gets the same fields), builds the same feed from its
   *own* sources and refuses if its value differs by more than the feed's `agree_bps`,
   and refuses a second, different report for a log position it already signed.
4. With k signatures (its own included) before the round deadline, the leader appends
   the report to its log and publishes it through the publisher. A peer that is down
   or disagrees is outvoted and named in the round's record; with fewer than k, nothing
   is appended or published and `/healthz` shows why.

Safety needs k > n/2: every node signs at most one report per log position, so two
different reports cannot both reach k signatures for one position.
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
from pydantic import BaseModel, ConfigDict, Field

from gpushares import abi
from oracle import attest, methodology
from oracle.config import IndexFeedConfig, NavFeedConfig, NodeConfig, UtilisationConfig
from oracle.entries import EntryFormatError, ReportEntry, SignerSetEntry, parse_leaf
from oracle.log import AttestationLog, LogConflict
from oracle.reports import feed_id as make_feed_id
from oracle.reports import feed_name
from oracle.state import NodeState, VoteConflict

log_ = logging.getLogger("oracle.node")

PAGE = 500


# ------------------------------------------------------------------ wire models


class SignRequest(BaseModel):
    """A leader's request to co-sign one report (`POST /v1/sign`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    leader: str = Field(min_length=1, max_length=64, description="the leader's node name")
    kind: Literal["price", "utilisation"]
    report: dict[str, Any] = Field(description="the report's fields, camelCase as logged")
    inputs: str = Field(min_length=2, max_length=8_000_000,
                        description="the canonical input snapshot (JSON text)")


class SignResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    signer: str
    signature: str


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
    status: Literal["published", "refused", "withheld", "skipped", "no_quorum", "failed"]
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

    def __post_init__(self) -> None:
        self.inputs = attest.canonical_json(self.snapshot)
        fields = methodology.compute(self.kind, self.inputs)
        if fields is None:
            raise Withheld(f"no {self.kind} methodology {self.snapshot.get('methodology')!r} "
                           "in this build")
        self.fields = fields


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


@dataclass
class IndexJob(_Job):
    model: str = ""

    def build(self) -> Built:
        from oracle import index

        offers = self.node.config.sources.offers
        if offers is None:
            raise Withheld("no [sources] offers configured for the index")
        files = sorted(offers.glob("*.json*")) if offers.is_dir() else [offers]
        if not files:
            raise Withheld(f"no marketplace snapshots in {offers}")
        results = [_parsed(f) for f in files]
        results.sort(key=lambda r: r.observed_at)
        chosen = results[-1]
        if self.node.config.sources.replay:
            published = self.node.onchain_price(make_feed_id(self.label))
            newer = [r for r in results if published is None or r.observed_at > published[1]]
            if newer:
                chosen = newer[0]
        snapshot = index.build_snapshot(self.label, chosen.quotes, chosen.observed_at,
                                        [index.describe_source(chosen)])
        result = index.evaluate(snapshot)
        if result.value is None:
            raise Withheld(f"index withheld: {result.withheld_reason}")
        return Built(self.label, "price", snapshot)


@dataclass
class NavJob(_Job):
    spec: NavFeedConfig | None = None

    def build(self) -> Built:
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
        index_inputs: dict[str, dict[str, str]] = {}
        for model in models:
            latest = node.latest_logged_price(_index_feed_name(model))
            if latest is None:
                raise Withheld(f"no logged {model} index value yet to value the fleet against")
            entry_index, report = latest
            acq = self.spec.index_at_acquisition.get(model)
            if acq is None:
                raise Withheld(f"no index_at_acquisition configured for {model}")
            index_inputs[model] = {
                "atAcquisition": acq.value,
                "atAcquisitionSource": acq.source,
                "now": attest.fixed_str(report.value),
                "nowConfidence": attest.fixed_str(report.confidence),
                "source": f"{model} index, log entry {entry_index}",
            }
        util = node.latest_logged_utilisation(self.spec.spv_token)
        utilisation = ({"bps": 0, "periodStart": 0, "periodEnd": 0,
                        "source": "no utilisation report logged yet"} if util is None else
                       {"bps": util[1].utilisation_bps, "periodStart": util[1].period_start,
                        "periodEnd": util[1].period_end, "source": f"log entry {util[0]}"})
        snapshot = valuation.nav_snapshot(
            feed_name=self.label, spv_token=self.spec.spv_token,
            observed_at=node.chain_now(), total_supply=supply,
            economic_life_years=self.spec.economic_life_years, gpus=holdings,
            index=index_inputs, utilisation=utilisation)
        return Built(self.label, "price", snapshot)


@dataclass
class UtilisationJob(_Job):
    spec: UtilisationConfig | None = None

    def build(self) -> Built:
        assert self.spec is not None
        store = self.node.telemetry_store()
        end = self.node.chain_now() // self.spec.period_s * self.spec.period_s
        start = end - self.spec.period_s
        onchain = self.node.onchain_utilisation(self.spec.spv_token)
        if onchain is not None and onchain >= end:
            raise Withheld(f"the period ending {end} is already on-chain")
        registry = self.node.agent_registry()
        snapshot = store.snapshot(self.spec.spv_token, start, end, registry=registry)
        return Built(self.label, "utilisation", snapshot)


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

    def chain_now(self) -> int:
        """The latest block's time (observations are never later than the block)."""
        hub = self.hub
        return int(hub.w3.eth.get_block("latest")["timestamp"])

    def now(self) -> int:
        """The time this node acts at: the chain's (its latest block), which is what every
        consumer's staleness check reads; this machine's clock only for a node with no
        chain configured (an offline co-signer of telemetry, say)."""
        if self.config.rpc and self.config.hub:
            return self.chain_now()
        return int(self.clock())

    def hub_view(self, max_age_s: float = 5.0) -> _HubView:
        view = self._hub_view
        if view is None or self.clock() - view.at > max_age_s:
            fns = self.hub.functions
            view = _HubView(int(fns.config_version().call()), list(fns.signers().call()),
                            int(fns.threshold().call()), self.clock())
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

    # ------------------------------------------------------------ co-signing

    def cosign(self, req: SignRequest) -> SignResponse:
        """Co-sign a leader's report if this node gets the same report (see module doc)."""
        label = "?"
        try:
            response, label = self._cosign(req)
        except Refusal as exc:
            self.state.record_round(label if label != "?" else _label_of(req), "cosigner",
                                    f"refused:{exc.code}", exc.message)
            log_.warning("refused to co-sign %s for %s: %s", _label_of(req), req.leader,
                         exc.message)
            raise
        self.state.record_round(label, "cosigner", "signed", f"for {req.leader}")
        return response

    def _cosign(self, req: SignRequest) -> tuple[SignResponse, str]:
        url = self.config.peer_url(req.leader)
        if url is None:
            raise Refusal("unknown_leader", f"{req.leader!r} is not one of this node's peers",
                          403)
        inputs = req.inputs.encode()
        try:
            canonical = attest.canonical_json(json.loads(inputs))
        except (ValueError, RecursionError, attest.AttestationError) as exc:
            raise Refusal("bad_inputs", f"the inputs are not canonical JSON: {exc}", 422) from exc
        if canonical != inputs:
            raise Refusal("bad_inputs", "the inputs are not in canonical form", 422)
        try:
            report = attest.REPORT_TYPES[req.kind].from_canonical(req.report)
        except (attest.AttestationError, ValueError) as exc:
            raise Refusal("bad_report", f"the report is malformed: {exc}", 422) from exc
        label = (feed_name(report.feed_id) if isinstance(report, attest.PriceReport)
                 else f"utilisation:{report.spv_token}")
        if attest.inputs_hash(inputs) != report.inputs_hash:
            raise Refusal("bad_inputs", "the inputs do not hash to the report's inputsHash", 422)
        try:
            fields = methodology.compute(req.kind, inputs)
        except methodology.MethodologyError as exc:
            raise Refusal("disagree", f"recomputing from the inputs fails: {exc}") from exc
        if fields is None:
            raise Refusal("unknown_methodology", "this node does not know the snapshot's "
                          "methodology; upgrade it", 422)
        mine = fields.model_dump()
        theirs = {k: getattr(report, k) for k in mine}
        if mine != theirs:
            diff = {k: (theirs[k], mine[k]) for k in mine if mine[k] != theirs[k]}
            raise Refusal("disagree", f"recomputed from the same inputs, this node gets "
                          f"{ {k: v[1] for k, v in diff.items()} } where the report says "
                          f"{ {k: v[0] for k, v in diff.items()} }")
        view = self.hub_view()
        if report.config_version != view.version:
            raise Refusal("config_version", f"the report names config version "
                          f"{report.config_version}, the hub is at {view.version}")
        if self.address not in view.signers:
            raise Refusal("not_signer", f"this node's key {self.address} is not in the hub's "
                          "signer set", 503)
        with self._lock:
            if self.log.size < report.log_size:
                try:
                    self.sync_from(req.leader, url, up_to=report.log_size)
                except SyncError as exc:
                    raise Refusal("sync", str(exc), 409) from exc
            if self.log.size != report.log_size:
                raise Refusal("checkpoint", f"the report commits to log size {report.log_size}"
                              f", this node's log has {self.log.size} entries")
            root = "0x" + self.log.checkpoint(report.log_size).root.hex()
            if root != report.log_root:
                raise Refusal("checkpoint", f"the report commits to root {report.log_root} at "
                              f"size {report.log_size}, this node's log has {root}: a fork")
            # With the log at the leader's checkpoint, the node's own view of the feed
            # reads the same history (NAV values the fleet at the latest logged index).
            self._independent_check(label, report)
            signed = attest.sign(report, self.domain, self.key)
            try:
                self.state.vote(report.log_size, attest.digest(report, self.domain).hex(),
                                label, ttl_s=self.config.rounds.vote_ttl_s)
            except VoteConflict as exc:
                raise Refusal("already_voted", str(exc)) from exc
        return SignResponse(signer=self.address, signature=signed), label

    def _independent_check(self, label: str, report: attest.Report) -> None:
        """Build the same feed from this node's own sources; refuse a value that differs
        by more than the feed's agree_bps."""
        job = self.jobs.get(label)
        if job is None:
            raise Refusal("unknown_feed", f"this node does not run {label}; add it to its "
                          "config to co-sign it")
        try:
            built = job.build()
        except Withheld as exc:
            raise Refusal("disagree", f"this node's own sources give no value: {exc}") from exc
        ours = built.fields
        if isinstance(report, attest.PriceReport):
            a, b = ours.value, report.value
        else:
            a, b = ours.utilisation_bps, report.utilisation_bps
        if a == b:
            return
        move_bps = abs(a - b) * 10_000 / max(abs(b), 1)
        if move_bps > job.agree_bps:
            raise Refusal("disagree", f"this node's own sources give {a}, the report {b} "
                          f"({move_bps:.0f} bps apart, the limit is {job.agree_bps})")

    # ------------------------------------------------------------ leading

    def run_round(self, feeds: list[str] | None = None) -> list[RoundOutcome]:
        """Lead one round over the due feeds (all configured feeds by default)."""
        problems = self.sync_all()
        for peer, why in problems.items():
            log_.warning("could not sync from %s: %s", peer, why)
        self._ensure_signer_set()
        outcomes = []
        # Utilisation first, then index feeds, then NAV (which reads both from the log).
        order = sorted(self.jobs.values(), key=lambda j: (
            0 if isinstance(j, UtilisationJob) else 1 if isinstance(j, IndexJob) else 2))
        for job in order:
            if feeds is not None and job.label not in feeds:
                continue
            outcome = self._lead(job)
            self.state.record_round(job.label, "leader", outcome.status, outcome.detail,
                                    outcome.entry)
            outcomes.append(outcome)
        return outcomes

    def _lead(self, job: _Job) -> RoundOutcome:
        started = time.monotonic()
        try:
            built = job.build()
        except Withheld as exc:
            return RoundOutcome(feed=job.label, status="withheld", detail=str(exc))
        except methodology.MethodologyError as exc:
            return RoundOutcome(feed=job.label, status="withheld", detail=str(exc))
        not_due = job.due(built, self.chain_now())
        if not_due is not None:
            return RoundOutcome(feed=job.label, status="skipped", detail=not_due)
        view = self.hub_view(max_age_s=0)
        with self._lock:
            checkpoint = self.log.checkpoint()
            common = {"inputs_hash": attest.inputs_hash(built.inputs),
                      "log_size": checkpoint.size, "log_root": "0x" + checkpoint.root.hex(),
                      "config_version": view.version}
            report = attest.REPORT_TYPES[built.kind](**built.fields.model_dump(), **common)
            digest = attest.digest(report, self.domain)
            try:
                self.state.vote(checkpoint.size, digest.hex(), job.label,
                                ttl_s=self.config.rounds.vote_ttl_s)
            except VoteConflict as exc:
                return RoundOutcome(feed=job.label, status="no_quorum", detail=str(exc))
        signatures = {self.address: attest.sign(report, self.domain, self.key)}
        disagreements = self._collect(built, report, view, signatures)
        value = getattr(report, "value", None)
        if value is None:
            value = getattr(report, "utilisation_bps", None)
        if len(signatures) < view.threshold:
            detail = (f"{len(signatures)} of the {view.threshold} signatures needed; "
                      + "; ".join(f"{p}: {why}" for p, why in sorted(disagreements.items())))
            log_.error("round for %s: no quorum: %s", job.label, detail)
            return RoundOutcome(feed=job.label, status="no_quorum", detail=detail, value=value,
                                signers=sorted(signatures), disagreements=disagreements,
                                elapsed_s=time.monotonic() - started)
        for peer, why in disagreements.items():
            log_.warning("round for %s: %s outvoted: %s", job.label, peer, why)
        if time.monotonic() - started > self.config.rounds.deadline_s:
            return RoundOutcome(feed=job.label, status="failed", detail=(
                "the round outlasted its deadline; its votes may have lapsed, so it is not "
                "appended"), disagreements=disagreements)
        # The leader's own signature and the first peers' that arrived, in address order.
        own = [(self.address, signatures[self.address])]
        others = [(a, sig) for a, sig in signatures.items() if a != self.address]
        chosen = sorted(own + others[:view.threshold - 1], key=lambda kv: int(kv[0], 16))
        signed = attest.SignedReport(kind=built.kind, domain=self.domain, report=report,
                                     signatures=[s for _, s in chosen],
                                     signers=[a for a, _ in chosen])
        attest.check_signatures(signed, view.signers, view.threshold)
        entry = ReportEntry(index=report.log_size, signed=signed)
        try:
            self.log.append(entry.leaf(), kind=built.kind, inputs=built.inputs,
                            expect_size=report.log_size)
        except LogConflict as exc:
            return RoundOutcome(feed=job.label, status="failed",
                                detail=f"the log grew during the round: {exc}")
        self.state.mark_led(entry.index)
        outcome = self._publish(entry.index)
        return RoundOutcome(
            feed=job.label, status="published" if outcome.status == "published" else "refused",
            detail=outcome.detail, entry=entry.index, value=value, tx_hash=outcome.tx_hash,
            signers=[a for a, _ in chosen], disagreements=disagreements,
            elapsed_s=time.monotonic() - started)

    def _collect(self, built: Built, report: attest.Report, view: _HubView,
                 signatures: dict[str, str]) -> dict[str, str]:
        """Ask every peer to co-sign until the threshold is met; returns why the others
        did not sign."""
        body = SignRequest(leader=self.config.name, kind=built.kind,
                           report=report.canonical(), inputs=built.inputs.decode()).model_dump()
        disagreements: dict[str, str] = {}
        digest = attest.digest(report, self.domain)
        timeout = self.config.rounds.sign_timeout_s
        peers = list(self.config.peers)
        if not peers:
            return disagreements
        pool = ThreadPoolExecutor(max_workers=len(peers), thread_name_prefix="cosign")
        futures = {pool.submit(self._ask, p.url, body, timeout): p.name for p in peers}
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

    def _ask(self, url: str, body: dict[str, Any], timeout: float) -> tuple[bool, Any]:
        try:
            resp = self.http.post(f"{url}/v1/sign", json=body, timeout=timeout)
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
            if record.status in ("no_quorum", "failed"):
                reasons.append(f"{record.feed}: {record.status}: {record.detail}")
        return {"status": "degraded" if reasons else "ok", "node": self.config.name,
                "signer": self.address, "log_size": self.log.size, "reasons": reasons,
                "feeds": feeds}


def _label_of(req: SignRequest) -> str:
    """The feed a (possibly malformed) request is about, for the round record."""
    if req.kind == "price":
        fid = req.report.get("feedId")
        try:
            return feed_name(fid) if isinstance(fid, str) and fid.startswith("0x") else "?"
        except ValueError:
            return "?"
    return f"utilisation:{str(req.report.get('spvToken'))[:42]}"


def load_node(config_path: Path) -> Node:
    from oracle.config import load_config

    return Node(load_config(config_path))
