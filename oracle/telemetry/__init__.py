"""GPU telemetry: per-GPU utilisation from NVIDIA tooling, agent-signed batches, the node's
store, and the utilisation methodology v2 (`time-weighted-utilisation`, version 2).

    capture (DCGM exporter / nvidia-smi CSV / NVML)
        -> samples (dcgm.py, nvsmi.py, nvml.py)
        -> TelemetryAgent: TelemetryBatch signed by the host agent (EIP-191), POST to nodes
        -> TelemetryStore.accept (registry, replay and clock checks; SQLite, durable)
        -> TelemetryStore.snapshot -> methodology v2 -> UtilisationReport

See each module's docstring; `oracle.telemetry.methodology` specifies the method and
the snapshot, `oracle.telemetry.batch` the signed batch, `oracle.telemetry.store` the
rejection codes.
"""

from pathlib import Path

from oracle.telemetry.agent import AgentState, NodeOutcome, TelemetryAgent
from oracle.telemetry.batch import (
    BATCH_TYPE,
    BatchSignatureError,
    SignedBatch,
    Source,
    TelemetryBatch,
    batch_hash,
    recover_agent,
    sign_batch,
    signing_digest,
)
from oracle.telemetry.dcgm import GPU_UTIL, GR_ENGINE_ACTIVE, load_dcgm, parse_dcgm
from oracle.telemetry.methodology import MAX_GAP_S, make_snapshot, utilisation_fields
from oracle.telemetry.nvml import TelemetryUnavailable, read_nvml
from oracle.telemetry.nvsmi import load_nvsmi, parse_nvsmi
from oracle.telemetry.registry import (
    AgentEntry,
    AgentRegistry,
    GpuBinding,
    RegisteredGpu,
    RegistryError,
    load_gpu_inventory,
    serial_hash,
)
from oracle.telemetry.samples import (
    ParsedSamples,
    Sample,
    SkippedLine,
    TelemetryError,
    TelemetryParseError,
    percent_str,
)
from oracle.telemetry.store import Accepted, TelemetryRejected, TelemetryStore

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
"""The shipped synthetic captures (`samples/README.md`)."""

__all__ = [
    "BATCH_TYPE", "GPU_UTIL", "GR_ENGINE_ACTIVE", "MAX_GAP_S", "SAMPLES_DIR",
    "Accepted", "AgentEntry", "AgentRegistry", "AgentState", "BatchSignatureError",
    "GpuBinding", "NodeOutcome", "ParsedSamples", "RegisteredGpu", "RegistryError",
    "Sample", "SignedBatch", "SkippedLine", "Source", "TelemetryAgent", "TelemetryBatch",
    "TelemetryError", "TelemetryParseError", "TelemetryRejected", "TelemetryStore",
    "TelemetryUnavailable", "batch_hash", "load_dcgm", "load_gpu_inventory", "load_nvsmi",
    "make_snapshot", "parse_dcgm", "parse_nvsmi", "percent_str", "read_nvml",
    "recover_agent", "serial_hash", "sign_batch", "signing_digest", "utilisation_fields",
]
