"""oracle.telemetry.agent: building signed batches from captures with a durable sequence,
and posting them to nodes (retries, rejections, a lost answer), against an in-process
node built on TelemetryStore through httpx's MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from oracle.telemetry import (
    TelemetryAgent,
    TelemetryError,
    TelemetryRejected,
    TelemetryStore,
    TelemetryUnavailable,
    batch_hash,
    recover_agent,
)
from tests.oracle import _telemetry as t
from tests.oracle.test_telemetry import FakeNvml


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def node(store: TelemetryStore, clock: Clock) -> Callable[[httpx.Request], httpx.Response]:
    """The node side of POST /v1/telemetry as agreed with the API."""

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/telemetry"
        try:
            accepted = store.accept(json.loads(request.content), now=int(clock()))
        except TelemetryRejected as exc:
            return httpx.Response(exc.http_status, json={"detail": exc.detail()})
        return httpx.Response(200, json=accepted.response())

    return handle


def make_agent(tmp_path: Path, handler: Callable[[httpx.Request], httpx.Response],
               clock: Clock, nodes: tuple[str, ...] = ("http://node-a:8700/",),
               **kw: Any) -> TelemetryAgent:
    return TelemetryAgent(t.agent_key(), t.SPV, state_path=tmp_path / "agent" / "state.json",
                          nodes=nodes, client=httpx.Client(transport=httpx.MockTransport(handler)),
                          clock=clock, sleep=lambda s: None, **kw)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with TelemetryStore(tmp_path / "node.sqlite", t.registry()) as s:
        yield s


def test_capture_to_accepted_batch(tmp_path: Path, store: TelemetryStore) -> None:
    clock = Clock(t.T0 + 360.25)
    agent = make_agent(tmp_path, node(store, clock), clock)
    signed = agent.from_nvidia_smi(t.NVSMI.read_text())
    assert signed is not None
    assert recover_agent(signed) == agent.address == signed.batch.agent
    assert signed.batch.sequence == int((t.T0 + 360.25) * 1000)
    assert signed.batch.created_at == t.T0 + 360 and signed.batch.source == "nvidia-smi"
    assert len(signed.batch.samples) == 48
    (outcome,) = agent.post(signed)
    assert outcome.ok and outcome.url == "http://node-a:8700"
    assert outcome.batch_hash == batch_hash(signed.batch) and outcome.attempts == 1
    assert store.counts() == {"batches": 1, "samples": 48}
    # the same (growing) capture again: nothing new
    assert agent.from_nvidia_smi(t.NVSMI.read_text()) is None
    # one more row: only that sample, with a higher sequence, from a fresh agent object
    uuid, serial = t.inventory()[0]
    grown = t.NVSMI.read_text() + (f"2026/11/21 10:06:00.104, 0, {uuid}, {serial}, "
                                   "NVIDIA H100 80GB HBM3, 77 %\n")
    clock.now = t.T0 + 361  # within the same millisecond range: sequence still increases
    again = make_agent(tmp_path, node(store, clock), clock).from_nvidia_smi(grown)
    assert again is not None and [s.percent for s in again.batch.samples] == ["77"]
    assert again.batch.sequence > signed.batch.sequence
    assert make_agent(tmp_path, node(store, clock), clock).post(again)[0].ok


def test_sequence_increases_even_if_the_clock_goes_back(tmp_path: Path,
                                                        store: TelemetryStore) -> None:
    clock = Clock(t.T0 + 10)
    agent = make_agent(tmp_path, node(store, clock), clock)
    first = agent.from_dcgm(t.DCGM_1.read_text(), scraped_at=t.T0)
    clock.now = t.T0 + 5
    second = agent.from_dcgm(t.DCGM_2.read_text(), scraped_at=t.T0 + 1)
    assert first is not None and second is not None
    assert second.batch.sequence == first.batch.sequence + 1
    assert agent.state().sequence == second.batch.sequence


def test_retries_then_accepts_and_reports_per_node(tmp_path: Path,
                                                   store: TelemetryStore) -> None:
    clock = Clock(t.T0 + 2)
    real = node(store, clock)
    calls = {"a": 0, "b": 0, "c": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host == "node-a":
            calls["a"] += 1
            return real(request)
        if host == "node-b":  # two 503s, then fine
            calls["b"] += 1
            return httpx.Response(503) if calls["b"] <= 2 else httpx.Response(
                200, json={"accepted": True, "batchHash": "0x", "samples": 8})
        calls["c"] += 1
        raise httpx.ConnectError("connection refused", request=request)

    agent = make_agent(tmp_path, handler, clock, nodes=("http://node-a", "http://node-b",
                                                        "http://node-c"), retries=3)
    signed = agent.from_dcgm(t.DCGM_1.read_text(), scraped_at=t.T0)
    assert signed is not None
    a, b, c = agent.post(signed)
    assert (a.status, a.attempts) == ("accepted", 1)
    assert (b.status, b.attempts) == ("accepted", 3)
    assert (c.status, c.attempts, c.http_status) == ("failed", 4, None)
    assert "ConnectError" in c.message and calls["c"] == 4


def test_rejection_is_final(tmp_path: Path, store: TelemetryStore) -> None:
    clock = Clock(t.T0 + 2)
    calls = []
    real = node(store, clock)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return real(request)

    agent = TelemetryAgent(t.outsider_key(), t.SPV, state_path=tmp_path / "s.json",
                           nodes=["http://node-a"], sleep=lambda s: None, clock=clock,
                           client=httpx.Client(transport=httpx.MockTransport(handler)))
    signed = agent.from_dcgm(t.DCGM_1.read_text(), scraped_at=t.T0)
    assert signed is not None
    (outcome,) = agent.post(signed)
    assert (outcome.status, outcome.code, outcome.http_status) == ("rejected",
                                                                    "unknown_agent", 403)
    assert "register" in outcome.message and len(calls) == 1


def test_lost_answer_then_replayed_counts_as_accepted(tmp_path: Path,
                                                      store: TelemetryStore) -> None:
    clock = Clock(t.T0 + 2)
    real = node(store, clock)
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        response = real(request)
        if len(attempts) == 1:  # committed, but the answer never arrives
            raise httpx.ReadTimeout("timed out", request=request)
        return response

    agent = make_agent(tmp_path, handler, clock)
    signed = agent.from_dcgm(t.DCGM_1.read_text(), scraped_at=t.T0)
    assert signed is not None
    (outcome,) = agent.post(signed)
    assert (outcome.status, outcome.code, outcome.attempts) == ("accepted", "replayed", 2)
    assert store.counts()["batches"] == 1


def test_nvml_and_state_errors(tmp_path: Path, store: TelemetryStore) -> None:
    clock = Clock(t.T0 + 1)
    agent = make_agent(tmp_path, node(store, clock), clock)
    signed = agent.from_nvml(nvml=FakeNvml())
    assert signed is not None and signed.batch.source == "nvml"
    assert agent.post(signed)[0].ok
    with pytest.raises(TelemetryUnavailable):
        agent.from_nvml(nvml=FakeNvml(fail_init=True))
    other = TelemetryAgent(t.agent2_key(), t.SPV, state_path=agent.state_path)
    with pytest.raises(TelemetryError, match="belongs to agent"):
        other.from_dcgm(t.DCGM_1.read_text(), scraped_at=t.T0)
    agent.state_path.write_text("{not json")
    with pytest.raises(TelemetryError, match="unreadable agent state"):
        agent.state()
