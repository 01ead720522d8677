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
    GET  /v1/votes/{position}             a peer asks which report this node signed there

The last two are peer endpoints: a request must be signed by a key of the hub's current
signer set (`oracle.peerauth`); anything else is refused with 401 before its body is
parsed, and leaves no state and no log line. Every request body is limited to `[api]
max_body_bytes` (413 beyond, refused before it is read further).

Bytes travel as 0x-hex. Errors are JSON `{"detail": {"code": ..., "message": ...}}`
(or FastAPI's validation list for a malformed body, 422); a refused request changes
nothing. `gpu-oracle verify --node URL` rebuilds the log from these responses and
verifies it like a local file.
"""

from __future__ import annotations

import json
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
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from oracle import attest, peerauth
from oracle.config import ApiConfig
from oracle.entries import EntryFormatError, ReportEntry, parse_leaf
from oracle.log import AttestationLog, EntryNotFound, LogEntry
from oracle.node import Refusal, SignRequest, SignResponse, VoteOut
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


class ErrorDetail(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    message: str


class ErrorOut(BaseModel):
    """Every refusal: a code (stable, for programs) and a message (what to do next)."""

    model_config = ConfigDict(frozen=True)

    detail: ErrorDetail


class ValidationItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    loc: list[str]
    msg: str
    type: str


class ValidationOut(BaseModel):
    """A body or parameter that does not fit the schema (FastAPI's list, no input echo)."""

    model_config = ConfigDict(frozen=True)

    detail: list[ValidationItem]


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route answers."""
    described = {
        400: "a malformed parameter, or a body that is not JSON text",
        401: "not signed by a key of the hub's signer set",
        403: "not allowed", 404: "no such thing", 409: "refused: conflicts with this "
        "node's state or view", 413: "the body is larger than [api] max_body_bytes",
        422: "the body or a parameter is malformed", 429: "over the peer's rate limit",
        503: "this node cannot do that now (no chain, read-only, chain unreachable)"}
    return {code: {"description": described[code],
                   "model": ErrorOut | ValidationOut if code == 422 else ErrorOut}
            for code in codes}


class TelemetryAccepted(BaseModel):
    model_config = ConfigDict(frozen=True)

    accepted: bool
    batchHash: str  # noqa: N815 - the agent's wire format
    samples: int


def _hex(data: bytes | None) -> str | None:
    return None if data is None else "0x" + data.hex()


def _error(code: str, message: str, status: int,
           headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status, {"code": code, "message": message}, headers=headers)


class BodyLimit:
    """Refuses (413) a request body larger than `limit` bytes: at once by its
    Content-Length, or as soon as a streamed body passes the limit; a body within it is
    buffered and handed on, so nothing downstream reads more than `limit` bytes."""

    def __init__(self, inner: Any, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.inner(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.inner(scope, replay, send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"detail": {
            "code": "body_too_large", "message": f"the request body is larger than "
            f"{self.limit} bytes ([api] max_body_bytes): send less"}}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


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

    api_limits = app.state.node.config.api if app.state.node is not None else ApiConfig()
    app.add_middleware(BodyLimit, limit=api_limits.max_body_bytes)
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
             responses=_responses(400, 404, 422))
    async def feed_history(
        feed_ref: str,
        limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 100,
    ) -> FeedHistory:
        fid, values = feed_values(feed_ref)
        return FeedHistory(id=fid, name=feed_name(fid),
                           values=[feeds.value(i, r) for i, r in reversed(values[-limit:])])

    @app.get("/v1/feeds/{feed_ref:path}", response_model=FeedOut,
             summary="One feed and its latest logged value",
             responses=_responses(400, 404, 422))
    async def get_feed(feed_ref: str) -> FeedOut:
        fid, values = feed_values(feed_ref)
        return FeedOut(id=fid, name=feed_name(fid), configured=fid in configured_feeds(),
                       latest=feeds.value(*values[-1]) if values else None)

    @app.get("/v1/checkpoint", response_model=CheckpointOut)
    def checkpoint(log: LogDep) -> CheckpointOut:
        cp = log.checkpoint()
        return CheckpointOut(size=cp.size, root=_hex(cp.root) or "")

    @app.get("/v1/attestations", response_model=EntriesPage, responses=_responses(422))
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

    @app.get("/v1/attestations/{index}", response_model=EntryWithProof,
             responses=_responses(404, 422))
    def attestation(
        log: LogDep,
        index: int,
        size: Annotated[int | None, Query(
            ge=1, description="prove inclusion in the tree of this many entries (a checkpoint "
                              "a report carried on-chain); default: the whole log")] = None,
    ) -> EntryWithProof:
        current = log.size
        if size is not None and size > current:
            raise _error("bad_size", f"the log has {current} entries, not {size}: ask for a "
                                     "checkpoint size it has reached", 422)
        size = current if size is None else size
        if not 0 <= index < size:
            where = "the log has" if size == current else "the checkpoint asked for has"
            raise _error("no_entry", f"no entry {index}: {where} {size} (0..{size - 1})", 404)
        try:
            entry = log.entry(index)
        except EntryNotFound as exc:
            raise _error("no_entry", f"no entry {index}: the log has {log.size}", 404) from exc
        cp = log.checkpoint(size)
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

    @app.get("/v1/consistency", response_model=ConsistencyOut,
             responses=_responses(400, 422))
    def consistency(
        log: LogDep, old: Annotated[int, Query(ge=1)], new: Annotated[int, Query(ge=1)]
    ) -> ConsistencyOut:
        if old > new or new > log.size:
            raise _error("bad_range", f"need 1 <= old <= new <= {log.size}", 400)
        return ConsistencyOut(old_size=old, new_size=new,
                              proof=[_hex(p) or "" for p in log.consistency_proof(old, new)])

    @app.post("/v1/telemetry", response_model=TelemetryAccepted,
              summary="Accept an agent-signed telemetry batch",
              responses=_responses(400, 401, 403, 409, 413, 422, 503))
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

    async def authenticated(request: Request, node: Any) -> tuple[str, bytes]:
        """(signer, raw body) of a peer request: the headers are checked first, then the
        body (already size-limited) is read and the signature verified; nothing is
        parsed, stored or logged before that."""
        try:
            node.verifier.check_headers(request.headers)
            body = await request.body()
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            signer = await run_in_threadpool(node.verifier.verify, method=request.method,
                                             path=path, headers=request.headers, body=body)
        except peerauth.PeerAuthError as exc:
            sign_total.labels(exc.code).inc()
            headers = ({"Retry-After": str(max(1, round(exc.retry_after_s)))}
                       if exc.retry_after_s is not None else None)
            raise _error(exc.code, exc.message, exc.status, headers) from exc
        except Refusal as exc:  # no chain: signers cannot be checked
            sign_total.labels(exc.code).inc()
            raise _error(exc.code, exc.message, exc.status) from exc
        return signer, body

    @app.post("/v1/sign", response_model=SignResponse,
              summary="Co-sign a peer's report if this node would have built it",
              description="A peer endpoint: the request must carry the X-GPU-Oracle-Time, "
                          "-Nonce and -Signature headers of a key in the hub's signer set "
                          "(docs/oracle.md, 'Peer authentication').",
              responses=_responses(401, 403, 409, 413, 422, 429, 503),
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"$ref": "#/components/schemas/SignRequest"}}
              }}})
    async def sign(request: Request, node: NodeDep) -> SignResponse:
        signer, body = await authenticated(request, node)
        try:
            req = SignRequest.model_validate_json(body)
        except ValidationError as exc:
            return invalid(exc.errors())  # type: ignore[return-value]
        if FAULT_SIGN_DELAY_S > 0:  # fault injection for the quorum tests (see above)
            await run_in_threadpool(time.sleep, FAULT_SIGN_DELAY_S)
        try:
            response = await run_in_threadpool(node.cosign, req, signer)
        except Refusal as exc:
            sign_total.labels(exc.code).inc()
            raise _error(exc.code, exc.message, exc.status) from exc
        sign_total.labels("signed").inc()
        return response

    @app.get("/v1/votes/{position}", response_model=VoteOut,
             summary="The report this node signed for a log position (peers only)",
             description="A peer endpoint (authenticated like POST /v1/sign): a leader asks "
                         "before proposing, so it can finish a report already voted for "
                         "instead of splitting the votes. `vote` is null when this node "
                         "signed nothing there, or its log has grown past the position.",
             responses=_responses(401, 413, 422, 429, 503))
    async def votes(request: Request, node: NodeDep,
                    position: Annotated[int, PathParam(ge=0, lt=2**63)]) -> VoteOut:
        await authenticated(request, node)
        return await run_in_threadpool(node.vote_out, position)

    def invalid(errors: Any) -> JSONResponse:
        # FastAPI's default echoes the input back, which cannot be encoded when it holds a
        # lone surrogate; the location and message say what to fix.
        items = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                  "type": str(e.get("type", ""))} for e in errors]
        return JSONResponse({"detail": items}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Every error in the one shape (Starlette's own, e.g. a body that is not JSON
        text or an unknown route, carry a bare string)."""
        detail = exc.detail
        if not isinstance(detail, dict):
            code = {400: "bad_body", 404: "no_route", 405: "bad_method"}.get(
                exc.status_code, f"http_{exc.status_code}")
            message = {400: "the body is not JSON text: send UTF-8 JSON"}.get(
                exc.status_code, str(detail))
            detail = {"code": code, "message": message}
        return JSONResponse({"detail": detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    def openapi() -> dict[str, Any]:
        """FastAPI's document, plus the schema of the body /v1/sign parses itself (after
        authenticating the raw bytes)."""
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            spec = get_openapi(title=app.title, version=app.version,
                               description=app.description, routes=app.routes)
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            schemas["SignRequest"] = SignRequest.model_json_schema(
                ref_template="#/components/schemas/{model}")
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(ConnectionError)
    async def chain_down(request: Request, exc: ConnectionError) -> JSONResponse:
        return JSONResponse({"detail": {"code": "chain_unreachable", "message": str(exc)}},
                            status_code=503)

    return app
