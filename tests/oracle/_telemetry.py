"""Shared builders for the telemetry tests: agent keys, the shipped captures' GPUs, a
registry, and signed batches."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from eth_account import Account
from eth_utils import to_checksum_address

from oracle.telemetry import (
    SAMPLES_DIR,
    AgentRegistry,
    Sample,
    SignedBatch,
    TelemetryBatch,
    sign_batch,
)
from tests.oracle import factories as f

T0 = 1_795_255_200  # 2026-11-21 10:00:00 UTC, the shipped captures' first time
SPV = f.SPV
SPV2 = to_checksum_address("0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0")
DCGM_1 = SAMPLES_DIR / "dcgm-gpu-node-07-20261121T100000Z.prom"
DCGM_2 = SAMPLES_DIR / "dcgm-gpu-node-07-20261121T100500Z.prom"
NVSMI = SAMPLES_DIR / "nvidia-smi-gpu-node-07-20261121T1000Z.csv"
GPUS_CSV = SAMPLES_DIR / "gpus.csv"
REGISTRY_TOML = SAMPLES_DIR / "registry.example.toml"

# The second agent's two GPUs (not in the shipped captures).
EXTRA_GPUS = (
    ("GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9", "1652922019001"),
    ("GPU-1a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9", "1652922019002"),
)


@cache
def key(index: int) -> bytes:
    from gpushares.devnode import dev_key

    return dev_key(index)


def agent_key() -> bytes:
    """The demo agent (dev account 30), registered in `registry.example.toml`."""
    return key(30)


def agent2_key() -> bytes:
    """A second agent (dev account 31): two GPUs of SPV, nothing of SPV2."""
    return key(31)


def spv2_agent_key() -> bytes:
    """An agent registered only for SPV2 (dev account 32)."""
    return key(32)


def outsider_key() -> bytes:
    return key(40)


def address(k: bytes) -> str:
    return Account.from_key(k).address


@cache
def inventory() -> tuple[tuple[str, str], ...]:
    """(uuid, serial) of the 8 GPUs of the shipped captures, in index order."""
    with GPUS_CSV.open() as handle:
        return tuple((row["uuid"], row["serial"]) for row in csv.DictReader(handle))


def uuids() -> list[str]:
    return [u for u, _ in inventory()]


@cache
def registry() -> AgentRegistry:
    """The example registry plus a second agent on SPV and one agent on SPV2."""
    base = AgentRegistry.load(REGISTRY_TOML)
    return AgentRegistry.model_validate({"agents": [
        *(e.model_dump(by_alias=True) for e in base.agents),
        {"address": address(agent2_key()), "spvToken": SPV,
         "gpus": [{"uuid": u, "serial": s} for u, s in EXTRA_GPUS]},
        {"address": address(spv2_agent_key()), "spvToken": SPV2,
         "gpus": [{"uuid": "GPU-2a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
                   "serial": "1652922019003"}]},
    ]})


def sample(uuid: str, time: int, percent: str, serial: str | None = None,
           metric: str = "DCGM_FI_DEV_GPU_UTIL") -> Sample:
    return Sample(uuid=uuid, serial=serial, time=time, percent=percent,
                  metric=metric)  # type: ignore[arg-type]


def batch(samples: Iterable[Sample], *, k: bytes | None = None, spv: str = SPV,
          sequence: int = 1, created_at: int | None = None,
          source: str = "dcgm", agent: str | None = None) -> TelemetryBatch:
    k = agent_key() if k is None else k
    listed = list(samples)
    return TelemetryBatch(
        agent=agent or address(k), spv_token=spv, sequence=sequence,
        created_at=max(s.time for s in listed) if created_at is None else created_at,
        source=source, samples=listed)  # type: ignore[arg-type]


def signed(samples: Iterable[Sample], *, k: bytes | None = None, **kw: Any) -> SignedBatch:
    k = agent_key() if k is None else k
    return sign_batch(batch(samples, k=k, **kw), k)


def constant(uuids_: Sequence[str], times: Sequence[int], percent: str) -> list[Sample]:
    return [sample(u, t, percent) for t in times for u in uuids_]
