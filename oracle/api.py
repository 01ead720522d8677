"""The oracle node's HTTP API (FastAPI). `create_app()` builds it from `Settings`.

Read by anyone (auditors, dashboards, lending-pool keepers):

    GET  /healthz                         status, and why the node is degraded if it is
    GET  /metrics                         Prometheus text
    GET  /v1/feeds                        every feed with its latest logged value
    GET  /v1/feeds/{id}                   one feed (id: 0x feed id or the feed's name)
    GET  /v1/feeds/{id}/history?limit=N   its logged values, newest first
    GET  /v1/checkpoint                   the log's current (size, RFC 6962 root)
    GET  /v1/attestations?after=N&limit=M entries N+1.. (leaf, inputs, publication)
    GET  /v1/attestations/{n}             one entry, its signatures and inclusion proof
    GET  /v1/consistency?old=M&new=N      consistency proof between two sizes

Written by the node's counterparts (only when the node runs with a config):

    POST /v1/telemetry                    an agent-signed telemetry batch
    POST /v1/sign                         a peer asks this node to co-sign a report

Bytes travel as 0x-hex. Errors are JSON `{"detail": {"code": ..., "message": ...}}`
(or FastAPI's validation list for a malformed body, 422); a refused request changes
nothing. `gpu-oracle verify --node URL` rebuilds the log from these responses and
verifies it like a local file.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from pydantic import BaseModel, ConfigDict
from pydantic_settings import BaseSettings, SettingsConfigDict

from oracle import attest
from oracle.entries import EntryFormatError, ReportEntry, parse_leaf
from oracle.log import AttestationLog, EntryNotFound, LogEntry
from oracle.node import Refusal, SignRequest, SignResponse
from oracle.reports import feed_id as make_feed_id
from oracle.reports import feed_name

MAX_PAGE = 1_000
MAX_HISTORY = 1_000
# Fault injection for the quorum tests: delay every co-signing answer by this many
# seconds, so a test can kill the node while a leader waits on it. Unset in production.
FAULT_SIGN_DELAY_S = float(os.environ.get("GPU_ORACLE_FAULT_SIGN_DELAY_S", "0") or 0)


class Settings(BaseSettings):
    """Node settings, from the environment (`GPU_ORACLE_CONFIG=node.toml`, or
    `GPU_ORACLE_LOG=...` for a read-only node that only serves a log) or `create_app`."""

    model_config = SettingsConfigDict(env_prefix="GPU_ORACLE_")

    log: Path | None = None
    config: Path | None = None


@lru_cache
def get_settings() -> Settings:
    return Settings()


# ------------------------------------------------------------------ response models


class CheckpointOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    size: int
    root: str


class PublicationOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: str
    tx_hash: str | None
    block_number: int | None


class EntryOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    kind: str
    leaf: str
    leaf_hash: str
    inputs: str | None
    inputs_location: str | None
    publication: PublicationOut | None


class EntryWithProof(EntryOut):
    report: dict[str, Any] | None
    signatures: list[str]
    signers: list[str]
    tree_size: int
    root: str
    inclusion_proof: list[str]


class EntriesPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    entries: list[EntryOut]
    size: int


class ConsistencyOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    old_size: int
    new_size: int
    proof: list[str]


class FeedValue(BaseModel):
    model_config = ConfigDict(frozen=True)

    entry: int
    value: int
    value_decimal: str
    confidence: int
    observed_at: int
    methodology_version: int
    inputs_hash: str
    published: bool


class FeedOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    decimals: int = attest.PRICE_DECIMALS
    configured: bool
    latest: FeedValue | None


class FeedHistory(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    values: list[FeedValue]


class TelemetryAccepted(BaseModel):
    model_config = ConfigDict(frozen=True)

    accepted: bool
    batchHash: str  # noqa: N815 - the agent's wire format
    samples: int


def _hex(data: bytes | None) -> str | None:
    return None if data is None else "0x" + data.hex()


def _error(code: str, message: str, status: int) -> HTTPException:
    return HTTPException(status, {"code": code, "message": message})


# ------------------------------------------------------------------ feed index


class FeedIndex:
    """Every price feed's logged values, kept up to date incrementally as the log grows
    (so `/v1/feeds/{id}` answers from memory)."""

    def __init__(self, log: AttestationLog) -> None:
        self.log = log
        self._lock = threading.Lock()
        self._seen = 0
        self._values: dict[str, list[tuple[int, attest.PriceReport]]] = {}

    def refresh(self) -> dict[str, list[tuple[int, attest.PriceReport]]]:
        size = self.log.size
        if size != self._seen:
            with self._lock:
                if size != self._seen:
                    for index in self.log.indices("price"):
                        if index < self._seen or index >= size:
                            continue
                        try:
                            entry = parse_leaf(self.log.entry(index).leaf)
                        except EntryFormatError:
                            continue
                        if isinstance(entry, ReportEntry):
                            report = entry.signed.report
                            assert isinstance(report, attest.PriceReport)
                            self._values.setdefault(report.feed_id, []).append((index, report))
                    self._seen = size
        return self._values

    def value(self, index: int, report: attest.PriceReport) -> FeedValue:
        pub = self.log.publication(index)
        return FeedValue(entry=index, value=report.value,
                         value_decimal=attest.fixed_str(report.value),
                         confidence=report.confidence, observed_at=report.observed_at,
                         methodology_version=report.methodology_version,
                         inputs_hash=report.inputs_hash,
                         published=pub is not None and pub.status == "published")


# ------------------------------------------------------------------ dependencies


def get_log(request: Request) -> AttestationLog:
    """The app's log (a dependency shared by every route)."""
    return request.app.state.log


def get_node(request: Request) -> Any:
    node = request.app.state.node
    if node is None:
        raise _error("read_only", "this node only serves its log (started without a "
                     "config); send this to a node started with --config", 503)
    return node


LogDep = Annotated[AttestationLog, Depends(get_log)]
NodeDep = Annotated[Any, Depends(get_node)]


def _sync_loop(node: Any, stop: threading.Event) -> None:
    """Pull peers' new entries every `sync_interval_s`, so the quorum's logs converge
    even when this node is not asked to co-sign."""
    from oracle.node import SyncError

    while not stop.wait(node.config.rounds.sync_interval_s):
        try:
            for peer, why in node.sync_all().items():
                logging.getLogger("oracle.node").info("sync from %s: %s", peer, why)
        except (SyncError, ConnectionError, OSError) as exc:
            logging.getLogger("oracle.node").warning("sync failed: %s", exc)
        except Exception:
            logging.getLogger("oracle.node").exception("sync failed unexpectedly")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app: a full node with `settings.config`, else a read-only server of
    `settings.log`."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        node = app.state.node
        syncer = None
        if node is not None and node.config.rounds.sync_interval_s > 0:
            syncer = threading.Thread(target=_sync_loop, args=(node, stop), daemon=True,
                                      name="peer-sync")
            syncer.start()
        yield
        stop.set()
        if syncer is not None:
            syncer.join(timeout=10)
        if node is not None:
            node.close()

    app = FastAPI(title="GPU oracle node", version="2", docs_url="/docs",
                  description=__doc__, lifespan=lifespan)
    if settings.config is not None:
        from oracle.node import load_node

        node = load_node(settings.config)
        app.state.node = node
        app.state.log = node.log
    elif settings.log is not None:
        app.state.node = None
        app.state.log = AttestationLog(settings.log, create=False, read_only=True)
    else:
        raise ValueError("give a node config (GPU_ORACLE_CONFIG) or a log (GPU_ORACLE_LOG)")
    feeds = FeedIndex(app.state.log)
    app.state.feeds = feeds

    registry = CollectorRegistry()
    requests_total = Counter("gpu_oracle_http_requests", "HTTP requests served",
                             ["route", "status"], registry=registry)
    telemetry_total = Counter("gpu_oracle_telemetry_batches", "Telemetry batches received",
                              ["result"], registry=registry)
    sign_total = Counter("gpu_oracle_sign_requests", "Co-signing requests received",
                         ["result"], registry=registry)
    log_size = Gauge("gpu_oracle_log_size", "Entries in the attestation log", registry=registry)
    feed_value = Gauge("gpu_oracle_feed_value", "Latest logged value of a feed (decimal)",
                       ["feed"], registry=registry)
    feed_observed = Gauge("gpu_oracle_feed_observed_at_seconds",
                          "Observation time of a feed's latest logged value", ["feed"],
                          registry=registry)
    rounds_total = Gauge("gpu_oracle_rounds", "Rounds recorded by this node",
                         ["role", "status"], registry=registry)

    class CountRequests:
        """Counts responses by route and status (plain ASGI: no per-request task)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.inner(scope, receive, send)
                return

            async def counting_send(message: Any) -> None:
                if message["type"] == "http.response.start":
                    route = scope.get("route")
                    requests_total.labels(getattr(route, "path", "unmatched"),
                                          str(message["status"])).inc()
                await send(message)

            await self.inner(scope, receive, counting_send)

    app.add_middleware(CountRequests)

    def entry_out(log: AttestationLog, entry: LogEntry) -> EntryOut:
        pub = log.publication(entry.index)
        return EntryOut(
            index=entry.index, kind=entry.kind, leaf=_hex(entry.leaf) or "",
            leaf_hash=_hex(entry.leaf_hash) or "", inputs=_hex(entry.inputs),
            inputs_location=entry.inputs_location,
            publication=None if pub is None else PublicationOut(
                status=pub.status, tx_hash=pub.tx_hash, block_number=pub.block_number),
        )

    def configured_feeds() -> set[str]:
        node = app.state.node
        if node is None:
            return set()
        return {make_feed_id(label) for label, job in node.jobs.items() if job.kind == "price"}

    def resolve_feed(ref: str) -> str:
        if ref.startswith("0x") and len(ref) == 66:
            try:
                bytes.fromhex(ref[2:])
                return ref.lower()
            except ValueError:
                pass
        try:
            return make_feed_id(ref)
        except ValueError as exc:
            raise _error("bad_feed", f"{ref!r} is neither a 0x feed id nor a feed name: {exc}",
                         400) from exc

    @app.get("/healthz", summary="Liveness, log size, and why the node is degraded")
    def healthz(log: LogDep) -> dict[str, Any]:
        node = app.state.node
        if node is None:
            return {"status": "ok", "log_size": log.size, "mode": "read-only"}
        return node.health()

    @app.get("/metrics", response_class=PlainTextResponse,
             summary="Prometheus metrics (text exposition format)")
    def metrics(log: LogDep) -> PlainTextResponse:
        log_size.set(log.size)
        for fid, values in feeds.refresh().items():
            index, report = values[-1]
            feed_value.labels(feed_name(fid)).set(report.value / 10**attest.PRICE_DECIMALS)
            feed_observed.labels(feed_name(fid)).set(report.observed_at)
        node = app.state.node
        if node is not None:
            for (role, status), count in node.state.round_counts().items():
                rounds_total.labels(role, status).set(count)
        return PlainTextResponse(generate_latest(registry).decode(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/feeds", response_model=list[FeedOut], summary="Every feed, latest value")
    async def list_feeds() -> list[FeedOut]:
        values = feeds.refresh()
        out = []
        for fid in sorted(set(values) | configured_feeds()):
            history = values.get(fid)
            out.append(FeedOut(id=fid, name=feed_name(fid), configured=fid in configured_feeds(),
                               latest=None if not history else feeds.value(*history[-1])))
        return out

    def feed_values(ref: str) -> tuple[str, list[tuple[int, attest.PriceReport]]]:
        fid = resolve_feed(ref)
        values = feeds.refresh().get(fid, [])
        if not values and fid not in configured_feeds():
            raise _error("unknown_feed", f"no feed {ref!r}: see GET /v1/feeds for the feeds "
                         "this node knows", 404)
        return fid, values

    @app.get("/v1/feeds/{feed_ref:path}/history", response_model=FeedHistory,
             summary="A feed's logged values, newest first",
             responses={400: {"description": "bad feed id"},
                        404: {"description": "unknown feed"}})
    async def feed_history(
        feed_ref: str,
        limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 100,
    ) -> FeedHistory:
        fid, values = feed_values(feed_ref)
        return FeedHistory(id=fid, name=feed_name(fid),
                           values=[feeds.value(i, r) for i, r in reversed(values[-limit:])])

    @app.get("/v1/feeds/{feed_ref:path}", response_model=FeedOut,
             summary="One feed and its latest logged value",
             responses={400: {"description": "bad feed id"},
                        404: {"description": "unknown feed"}})
    async def get_feed(feed_ref: str) -> FeedOut:
        fid, values = feed_values(feed_ref)
        return FeedOut(id=fid, name=feed_name(fid), configured=fid in configured_feeds(),
                       latest=feeds.value(*values[-1]) if values else None)

    @app.get("/v1/checkpoint", response_model=CheckpointOut)
    def checkpoint(log: LogDep) -> CheckpointOut:
        cp = log.checkpoint()
        return CheckpointOut(size=cp.size, root=_hex(cp.root) or "")

    @app.get("/v1/attestations", response_model=EntriesPage)
    def attestations(
        log: LogDep,
        after: Annotated[int, Query(ge=-1, description="last index already held")] = -1,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> EntriesPage:
        size = log.size
        start = min(after + 1, size)
        stop = min(start + limit, size)
        return EntriesPage(entries=[entry_out(log, e) for e in log.entries(start, stop)],
                           size=size)

    @app.get("/v1/attestations/{index}", response_model=EntryWithProof)
    def attestation(log: LogDep, index: int) -> EntryWithProof:
        size = log.size
        if not 0 <= index < size:
            raise _error("no_entry", f"no entry {index}: the log has {size} (0..{size - 1})",
                         404)
        try:
            entry = log.entry(index)
        except EntryNotFound as exc:
            raise _error("no_entry", f"no entry {index}: the log has {log.size}", 404) from exc
        cp = log.checkpoint()
        proof = log.inclusion_proof(index, cp.size)
        report: dict[str, Any] | None = None
        signatures: list[str] = []
        signers: list[str] = []
        try:
            parsed = parse_leaf(entry.leaf)
        except EntryFormatError:
            parsed = None
        if isinstance(parsed, ReportEntry):
            report = parsed.signed.report.canonical()
            signatures = list(parsed.signed.signatures)
            signers = list(parsed.signed.signers)
        return EntryWithProof(**entry_out(log, entry).model_dump(), report=report,
                              signatures=signatures, signers=signers, tree_size=cp.size,
                              root=_hex(cp.root) or "",
                              inclusion_proof=[_hex(p) or "" for p in proof])

    @app.get("/v1/consistency", response_model=ConsistencyOut)
    def consistency(
        log: LogDep, old: Annotated[int, Query(ge=1)], new: Annotated[int, Query(ge=1)]
    ) -> ConsistencyOut:
        if old > new or new > log.size:
            raise _error("bad_range", f"need 1 <= old <= new <= {log.size}", 400)
        return ConsistencyOut(old_size=old, new_size=new,
                              proof=[_hex(p) or "" for p in log.consistency_proof(old, new)])

    @app.post("/v1/telemetry", response_model=TelemetryAccepted,
              summary="Accept an agent-signed telemetry batch",
              responses={401: {}, 403: {}, 409: {}, 422: {}, 503: {}})
    def telemetry(body: dict[str, Any], node: NodeDep) -> TelemetryAccepted:
        from oracle.telemetry.store import TelemetryRejected

        cfg = node.config.telemetry
        try:
            accepted = node.telemetry_store().accept(
                body, node.agent_registry(), now=node.now(), max_age_s=cfg.max_age_s,
                max_skew_s=cfg.max_skew_s)
        except TelemetryRejected as exc:
            telemetry_total.labels(exc.code).inc()
            raise _error(exc.code, exc.message, exc.http_status) from exc
        except Refusal as exc:  # the node cannot take telemetry (no agents registry)
            telemetry_total.labels(exc.code).inc()
            raise _error(exc.code, exc.message, exc.status) from exc
        telemetry_total.labels("accepted").inc()
        return TelemetryAccepted(accepted=True, batchHash=accepted.batch_hash,
                                 samples=accepted.samples)

    @app.post("/v1/sign", response_model=SignResponse,
              summary="Co-sign a peer's report after recomputing it",
              responses={403: {}, 409: {}, 422: {}, 503: {}})
    def sign(body: SignRequest, node: NodeDep) -> SignResponse:
        if FAULT_SIGN_DELAY_S > 0:  # fault injection for the quorum tests (see above)
            time.sleep(FAULT_SIGN_DELAY_S)
        try:
            response = node.cosign(body)
        except Refusal as exc:
            sign_total.labels(exc.code).inc()
            raise _error(exc.code, exc.message, exc.status) from exc
        sign_total.labels("signed").inc()
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input back, which cannot be encoded when it holds a
        # lone surrogate; the location and message say what to fix.
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                   "type": str(e.get("type", ""))} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(ConnectionError)
    async def chain_down(request: Request, exc: ConnectionError) -> JSONResponse:
        return JSONResponse({"detail": {"code": "chain_unreachable", "message": str(exc)}},
                            status_code=503)

    return app
