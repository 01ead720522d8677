"""The host agent: turns a capture into a signed batch and posts it to the oracle nodes.

    agent = TelemetryAgent(key, spv_token, state_path=Path("/var/lib/gpu-agent/state.json"),
                           nodes=["https://oracle-1.example:8700", "https://oracle-2..."])
    signed = agent.from_dcgm(httpx.get("http://localhost:9400/metrics").text)
    if signed is not None:
        for outcome in agent.post(signed):
            print(outcome.url, outcome.status, outcome.message)

State (a small JSON file, written atomically and fsynced before a batch is returned):
the last sequence number and, per GPU, the newest sample time already put in a batch.
Sequence numbers are max(previous + 1, unix milliseconds), so they increase strictly
even if the state file is lost. Only samples newer than the GPU's newest batched sample
go into a new batch, so an nvidia-smi capture file that keeps growing can be posted
again and again.

Delivery: the same signed batch goes to every node (`POST {url}/v1/telemetry`, body
`{"batch": {...}, "signature": "0x..."}`). Connection errors, timeouts, HTTP 429 and 5xx
are retried with exponential back-off; a 4xx rejection (`{"detail": {"code",
"message"}}`) is final. A `replayed` answer to a retry that names this batch's hash
counts as accepted (the earlier attempt reached the node; its answer was lost). Each
sample is batched once: a batch no node took is not rebuilt (nodes refuse data older
than 15 minutes anyway), so keep the agent running close to the capture.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any, Literal

import httpx
from eth_account import Account
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oracle import attest
from oracle.retry import (
    TRANSIENT_STATUSES,
    RetriesExhausted,
    RetryPolicy,
    TransientStatus,
    retry_after,
)
from oracle.telemetry.batch import (
    MAX_SAMPLES,
    SignedBatch,
    Source,
    TelemetryBatch,
    batch_hash,
    sign_batch,
)
from oracle.telemetry.dcgm import parse_dcgm
from oracle.telemetry.nvml import read_nvml
from oracle.telemetry.nvsmi import parse_nvsmi
from oracle.telemetry.samples import Sample, TelemetryError

ENDPOINT = "/v1/telemetry"


class AgentState(BaseModel):
    """The agent's durable state file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    agent: str
    sequence: int = 0
    last_sample_time: dict[str, int] = Field(default_factory=dict, alias="lastSampleTime")


@dataclass(frozen=True)
class NodeOutcome:
    """What one node answered. `status`: accepted, rejected (a final 4xx: `code` is the
    node's rejection code) or failed (unreachable or 5xx after every retry)."""

    url: str
    status: Literal["accepted", "rejected", "failed"]
    http_status: int | None
    code: str | None
    message: str
    batch_hash: str
    attempts: int

    @property
    def ok(self) -> bool:
        return self.status == "accepted"


_LOG = logging.getLogger("oracle.telemetry.agent")


class TelemetryAgent:
    """Signs captures with the agent's key and posts them to oracle nodes."""

    def __init__(self, key: bytes | str, spv_token: str, *, state_path: Path,
                 nodes: Sequence[str] = (), timeout_s: float = 10.0, retries: int = 3,
                 backoff_s: float = 0.5, client: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._key = key
        self.address: str = Account.from_key(key).address
        self.spv_token = attest.checksum_address(spv_token)
        self.state_path = Path(state_path)
        self.nodes = [n.rstrip("/") for n in nodes]
        self.retries = retries
        self.backoff_s = backoff_s
        self._client = client or httpx.Client(timeout=timeout_s)
        self._clock = clock
        self._sleep = sleep

    # ------------------------------------------------------------------ building

    def from_dcgm(self, text: str, *, scraped_at: int | None = None) -> SignedBatch | None:
        """A signed batch of a DCGM exporter scrape (stamped now unless given), or None if
        it holds nothing new."""
        when = int(self._clock()) if scraped_at is None else scraped_at
        return self.build(parse_dcgm(text, scraped_at=when), "dcgm")

    def from_nvidia_smi(self, text: str, *, tz: tzinfo | str = UTC) -> SignedBatch | None:
        """A signed batch of an nvidia-smi CSV capture (see `nvsmi.parse_nvsmi` for `tz`),
        or None if it holds nothing new."""
        return self.build(parse_nvsmi(text, tz=tz), "nvidia-smi")

    def from_nvml(self, *, nvml: Any = None) -> SignedBatch | None:
        """A signed batch of one NVML reading of this machine's GPUs (raises
        `TelemetryUnavailable` without a driver/GPU)."""
        return self.build(read_nvml(now=int(self._clock()), nvml=nvml), "nvml")

    def build(self, samples: Sequence[Sample], source: Source) -> SignedBatch | None:
        """Sign the samples newer than those already batched, as the next batch; None if
        there are none. The new state is on disk before the batch is returned."""
        with self._locked_state() as state:
            fresh = [s for s in sorted(samples, key=lambda s: (s.time, s.uuid))
                     if s.time > state.last_sample_time.get(s.uuid, -1)]
            if not fresh:
                return None
            if len(fresh) > MAX_SAMPLES:
                raise TelemetryError(f"{len(fresh)} new samples, a batch holds at most "
                                     f"{MAX_SAMPLES}: post captures more often")
            now = self._clock()
            sequence = max(state.sequence + 1, int(now * 1000))
            batch = TelemetryBatch(agent=self.address, spv_token=self.spv_token,
                                   sequence=sequence, created_at=int(now), source=source,
                                   samples=fresh)
            signed = sign_batch(batch, self._key)
            state.sequence = sequence
            for s in fresh:
                state.last_sample_time[s.uuid] = max(s.time,
                                                     state.last_sample_time.get(s.uuid, -1))
            self._write_state(state)
            return signed

    # ------------------------------------------------------------------ posting

    def post(self, signed: SignedBatch, nodes: Sequence[str] | None = None
             ) -> list[NodeOutcome]:
        """Post `signed` to every node (default: the agent's) and return their answers."""
        return [self._post_one(url.rstrip("/"), signed)
                for url in (self.nodes if nodes is None else nodes)]

    def _post_one(self, url: str, signed: SignedBatch) -> NodeOutcome:
        digest = batch_hash(signed.batch)
        body = signed.canonical()
        attempts = 0
        last_status: int | None = None

        def post() -> httpx.Response:
            nonlocal attempts, last_status
            attempts += 1
            last_status = None
            response = self._client.post(url + ENDPOINT, json=body)
            if response.status_code in TRANSIENT_STATUSES:
                last_status = response.status_code
                raise TransientStatus(response.status_code,
                                      retry_after(httpx.HTTPStatusError(
                                          "", request=response.request, response=response)))
            return response

        # The oracle's one retry policy (oracle.retry): transport errors and transient
        # statuses retried with exponential backoff, anything else answered at once.
        policy = RetryPolicy(attempts=self.retries + 1, initial_s=self.backoff_s)
        try:
            response = policy.call(
                post, what=f"POST {url}{ENDPOINT}", logger=_LOG, sleep=self._sleep,
                advice="check that the node is up and reachable; the batch is kept and "
                       "can be posted again (a node refuses a repeat as replayed)")
        except RetriesExhausted as exc:
            return NodeOutcome(url, "failed", last_status, None,
                               f"gave up after {attempts} attempts: {exc.errors[-1]}",
                               digest, attempts)
        return _outcome(url, response, digest, attempts)

    # ------------------------------------------------------------------ state

    def state(self) -> AgentState:
        """The state on disk (a fresh one if there is no file yet)."""
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return AgentState(agent=self.address)
        try:
            state = AgentState.model_validate(json.loads(text))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise TelemetryError(f"{self.state_path}: unreadable agent state ({exc}); move "
                                 "it aside: sequence numbers restart from the clock") from exc
        if state.agent != self.address:
            raise TelemetryError(f"{self.state_path} belongs to agent {state.agent}, this "
                                 f"agent is {self.address}: give each agent its own file")
        return state

    @contextmanager
    def _locked_state(self) -> Iterator[AgentState]:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.state_path.with_name(self.state_path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self.state()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_state(self, state: AgentState) -> None:
        data = json.dumps(state.model_dump(by_alias=True), sort_keys=True, indent=1)
        directory = self.state_path.parent
        fd, tmp = tempfile.mkstemp(prefix=self.state_path.name, dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.state_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


def _outcome(url: str, response: httpx.Response, digest: str, attempts: int) -> NodeOutcome:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if (200 <= response.status_code < 300 and isinstance(payload, dict)
            and payload.get("accepted") is True):
        return NodeOutcome(url, "accepted", response.status_code, None,
                           f"accepted {payload.get('samples')} samples", digest, attempts)
    detail = payload.get("detail") if isinstance(payload, dict) else None
    code = detail.get("code") if isinstance(detail, dict) else None
    message = (detail.get("message") if isinstance(detail, dict)
               else str(detail) if detail is not None else response.text[:200])
    if code == "replayed" and attempts > 1 and digest in str(message):
        return NodeOutcome(url, "accepted", response.status_code, code,
                           f"accepted by an earlier attempt ({message})", digest, attempts)
    return NodeOutcome(url, "rejected", response.status_code, code,
                       str(message), digest, attempts)
