"""The oracle node's HTTP API (FastAPI), read-only part: what an auditor fetches.

    GET /healthz                        liveness and the log's size
    GET /v1/checkpoint                  the log's current (size, RFC 6962 root)
    GET /v1/attestations?after=N&limit=M   entries N+1.. (leaf, inputs, publication)
    GET /v1/attestations/{n}            one entry with its inclusion proof
    GET /v1/consistency?old=M&new=N     consistency proof between two sizes

Bytes travel as 0x-hex. `gpu-oracle verify --node URL` rebuilds the log from these
responses and verifies it like a local file, so a node cannot show an auditor anything
it could not also show in a file. (Feeds, telemetry, co-signing and metrics are the
next oracle issue's.)
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict
from pydantic_settings import BaseSettings, SettingsConfigDict

from oracle.log import AttestationLog, EntryNotFound, LogEntry

MAX_PAGE = 1_000


class Settings(BaseSettings):
    """Node settings, from the environment (`GPU_ORACLE_LOG=...`) or `create_app`."""

    model_config = SettingsConfigDict(env_prefix="GPU_ORACLE_")

    log: Path = Path("attestations.sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()


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


def _hex(data: bytes | None) -> str | None:
    return None if data is None else "0x" + data.hex()


def get_log(request: Request) -> AttestationLog:
    """The app's log (a dependency, so tests and the next issue's routes share it)."""
    return request.app.state.log


LogDep = Annotated[AttestationLog, Depends(get_log)]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app over one log file (opened read-only: the node's writer is elsewhere)."""
    settings = settings or get_settings()
    app = FastAPI(title="GPU oracle node", version="1", docs_url="/docs")
    app.state.log = AttestationLog(settings.log, create=False)

    def entry_out(log: AttestationLog, entry: LogEntry) -> EntryOut:
        pub = log.publication(entry.index)
        return EntryOut(
            index=entry.index, kind=entry.kind, leaf=_hex(entry.leaf) or "",
            leaf_hash=_hex(entry.leaf_hash) or "", inputs=_hex(entry.inputs),
            inputs_location=entry.inputs_location,
            publication=None if pub is None else PublicationOut(
                status=pub.status, tx_hash=pub.tx_hash, block_number=pub.block_number),
        )

    @app.get("/healthz")
    def healthz(log: LogDep) -> dict[str, object]:
        return {"status": "ok", "log_size": log.size}

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
        try:
            entry = log.entry(index)
        except EntryNotFound as exc:
            raise HTTPException(404, f"no entry {index}: the log has {log.size}") from exc
        cp = log.checkpoint()
        proof = log.inclusion_proof(index, cp.size)
        return EntryWithProof(**entry_out(log, entry).model_dump(), tree_size=cp.size,
                              root=_hex(cp.root) or "", inclusion_proof=[_hex(p) or ""
                                                                          for p in proof])

    @app.get("/v1/consistency", response_model=ConsistencyOut)
    def consistency(
        log: LogDep, old: Annotated[int, Query(ge=1)], new: Annotated[int, Query(ge=1)]
    ) -> ConsistencyOut:
        if old > new or new > log.size:
            raise HTTPException(400, f"need 1 <= old <= new <= {log.size}")
        return ConsistencyOut(old_size=old, new_size=new,
                              proof=[_hex(p) or "" for p in log.consistency_proof(old, new)])

    return app
