"""Methodology `time-weighted-utilisation` version 2: utilisation from agent-signed telemetry.

Version 1 took per-GPU samples on the node's word. Version 2's snapshot carries the
agent-signed batches themselves, so an auditor checks that every sample was signed by
the agent registered for that GPU, and the GPUs by their on-chain serial hash, so a GPU
that reported nothing counts as idle instead of silently dropping out of the mean.

Snapshot (canonical JSON, `oracle.attest.canonical_json`):

    {"methodology": "time-weighted-utilisation", "version": 2,
     "attestation": "self-reported",
     "spvToken": "0x...", "periodStart": 1795255200, "periodEnd": 1795258800,
     "gpus": [{"serialHash": "0x<keccak256(serial)>", "uuid": "GPU-...",
               "agent": "0x..."}, ...],                 # ordered by serialHash
     "batches": [{"batch": {...}, "signature": "0x..."}, ...],  # by agent, sequence
     "rentalInvoices": [1200000000, ...]}

- `attestation: "self-reported"`: the samples are the host's own NVIDIA tooling readings,
  signed by the host agent's key. The signature proves who reported and that nothing
  was changed after; it does not prove the GPU really was busy (that needs attested
  hardware: a later version may name another attestation).
- `gpus`: every GPU registered for the SPV token (the node's agent registry), with the
  one agent allowed to report it. `serialHash` = keccak256(UTF-8 board serial), the key
  of `GPUShareToken.gpu_id_of_serial`.
- `batches`: every accepted batch with a sample in [periodStart - MAX_GAP_S, periodEnd),
  whole (the signature covers the whole batch; samples outside the period are ignored).
  Batch JSON: see `oracle.telemetry.batch`.

Checks (each failure is a `MethodologyError` naming the batch and sample):
every batch's EIP-191 signature recovers its `agent`; its `spvToken` is the snapshot's;
no two batches share (agent, sequence); every sample's UUID is one of `gpus` and that
GPU's `agent` is the batch's agent; a sample that names its serial matches the GPU's
`serialHash`; no two samples share (uuid, time); GPUs are distinct by UUID and hash.

Computation (exact integer arithmetic, no floats; percents are parsed as decimals under
`oracle.methodology.CONTEXT`):

1. Per GPU, its samples from all batches in time order. A sample holds from its time
   until the GPU's next sample, the period end, or **MAX_GAP_S = 900 s (15 minutes)
   after its time, whichever comes first**; time not covered by any sample counts as
   idle (so: idle before the first sample, and idle once an agent has been silent for
   15 minutes: a host that stops reporting is not assumed to be rented). A sample
   before periodStart holds into the period on the same terms.
2. A GPU's busy time is the sum of percent/100 x held seconds within
   [periodStart, periodEnd); its utilisation is busy time / (periodEnd - periodStart).
3. The fleet's utilisation is the mean over **all registered GPUs** (`gpus`), in basis
   points, rounded half to even once, at the end: bps = round(sum over GPUs and samples
   of percent x seconds x 100 / (period x gpu count)).
4. `gpuCount` = number of registered GPUs; `rentalRevenue` = sum of `rentalInvoices`.

With samples at most 15 minutes apart and none before the period, version 2 gives the
version 1 figure (up to v1's rounding of its per-GPU quotients), so the two agree on the
same data; the order of `batches` and `gpus` does not change the result.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from oracle import attest
from oracle import methodology as core
from oracle.methodology import MethodologyError, UtilisationFields
from oracle.telemetry.batch import BatchSignatureError, SignedBatch, recover_agent
from oracle.telemetry.registry import GpuBinding, serial_hash
from oracle.telemetry.samples import GpuUuid, Sample

NAME = "time-weighted-utilisation"
VERSION = 2
ATTESTATION = "self-reported"
MAX_GAP_S = 900
"""Longest time one sample holds: a GPU silent for longer counts as idle from then on."""
PERCENT_UNITS = 10_000
"""Percents have at most 4 decimals: percent x 10^4 is an integer."""


class SnapshotGpu(BaseModel):
    """A registered GPU in a v2 snapshot."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    serial_hash: Annotated[attest.Hex32, Field(alias="serialHash")]
    uuid: GpuUuid
    agent: attest.Address


class UtilisationV2Inputs(BaseModel):
    """The v2 snapshot (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    methodology: Literal["time-weighted-utilisation"]
    version: Literal[2]
    attestation: Literal["self-reported"]
    spv_token: Annotated[attest.Address, Field(alias="spvToken")]
    period_start: Annotated[int, Field(alias="periodStart", ge=0, strict=True)]
    period_end: Annotated[int, Field(alias="periodEnd", ge=1, strict=True)]
    gpus: Annotated[list[SnapshotGpu], Field(min_length=1)]
    batches: list[SignedBatch]
    rental_invoices: Annotated[list[Annotated[int, Field(strict=True)]],
                               AfterValidator(core.non_negative_invoices),
                               Field(alias="rentalInvoices")]



def make_snapshot(spv_token: str, period_start: int, period_end: int,
                  gpus: list[GpuBinding], batches: list[SignedBatch],
                  rental_invoices: list[int] | tuple[int, ...] = ()) -> dict[str, Any]:
    """The canonical v2 snapshot dict (GPUs ordered by serial hash, batches by agent and
    sequence), ready for `attest.canonical_json`."""
    ordered = sorted(batches, key=lambda b: (int(b.batch.agent, 16), b.batch.sequence))
    return {
        "methodology": NAME,
        "version": VERSION,
        "attestation": ATTESTATION,
        "spvToken": attest.checksum_address(spv_token),
        "periodStart": period_start,
        "periodEnd": period_end,
        "gpus": [{"serialHash": g.serial_hash, "uuid": g.uuid, "agent": g.agent}
                 for g in sorted(gpus, key=lambda g: g.serial_hash)],
        "batches": [b.canonical() for b in ordered],
        "rentalInvoices": list(rental_invoices),
    }


def utilisation_fields(data: dict[str, Any]) -> UtilisationFields:
    """The report fields of a v2 snapshot. Raises `MethodologyError` naming the first
    problem (malformed snapshot, forged or misattributed batch, unregistered GPU)."""
    with localcontext(core.CONTEXT):
        try:
            inputs = UtilisationV2Inputs.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise MethodologyError(f"snapshot field {where}: {err['msg']}") from exc
        start, end = inputs.period_start, inputs.period_end
        if end <= start:
            raise MethodologyError("utilisation period is empty: periodEnd must exceed "
                                   "periodStart")
        series = _series(inputs)
        numerator = sum(_busy(points, start, end) for points in series.values())
        denominator = 100 * (end - start) * len(inputs.gpus)
        return UtilisationFields(
            spv_token=inputs.spv_token,
            period_start=start,
            period_end=end,
            gpu_count=len(inputs.gpus),
            utilisation_bps=_round_half_even(numerator, denominator),
            rental_revenue=sum(inputs.rental_invoices),
        )


def _series(inputs: UtilisationV2Inputs) -> dict[str, list[tuple[int, int]]]:
    """Per registered GPU uuid: its (time, percent x 10^4) samples in time order, after
    checking every batch and sample (see the module docstring)."""
    by_uuid: dict[str, SnapshotGpu] = {}
    hashes: set[str] = set()
    for gpu in inputs.gpus:
        if gpu.uuid in by_uuid or gpu.serial_hash in hashes:
            raise MethodologyError(f"GPU {gpu.uuid} / {gpu.serial_hash} appears twice in "
                                   "the snapshot's gpus")
        by_uuid[gpu.uuid] = gpu
        hashes.add(gpu.serial_hash)
    series: dict[str, dict[int, int]] = {uuid: {} for uuid in by_uuid}
    sequences: set[tuple[str, int]] = set()
    for i, signed in enumerate(inputs.batches):
        batch = signed.batch
        where = f"batches[{i}] (agent {batch.agent}, sequence {batch.sequence})"
        try:
            signer = recover_agent(signed)
        except BatchSignatureError as exc:
            raise MethodologyError(f"{where}: {exc}") from exc
        if signer != batch.agent:
            raise MethodologyError(f"{where}: the signature recovers {signer}, not the "
                                   "batch's agent: the batch was altered or forged")
        if batch.spv_token != inputs.spv_token:
            raise MethodologyError(f"{where}: reports for SPV {batch.spv_token}, the "
                                   f"snapshot is for {inputs.spv_token}")
        if (batch.agent, batch.sequence) in sequences:
            raise MethodologyError(f"{where}: a second batch with that agent and sequence")
        sequences.add((batch.agent, batch.sequence))
        for j, sample in enumerate(batch.samples):
            _check_sample(sample, by_uuid, batch.agent, f"{where} sample {j}")
            points = series[sample.uuid]
            if sample.time in points:
                raise MethodologyError(f"{where} sample {j}: a second sample for "
                                       f"{sample.uuid} at unix time {sample.time}")
            points[sample.time] = int(Decimal(sample.percent) * PERCENT_UNITS)
    return {uuid: sorted(points.items()) for uuid, points in series.items()}


def _check_sample(sample: Sample, gpus: dict[str, SnapshotGpu], agent: str,
                  where: str) -> None:
    gpu = gpus.get(sample.uuid)
    if gpu is None:
        raise MethodologyError(f"{where}: GPU {sample.uuid} is not registered for the SPV "
                               "(not in the snapshot's gpus)")
    if gpu.agent != agent:
        raise MethodologyError(f"{where}: GPU {sample.uuid} is registered to agent "
                               f"{gpu.agent}, not to the batch's agent")
    if sample.serial is not None and serial_hash(sample.serial) != gpu.serial_hash:
        raise MethodologyError(f"{where}: serial {sample.serial} of {sample.uuid} does not "
                               f"hash to the registered {gpu.serial_hash}")


def _busy(points: list[tuple[int, int]], start: int, end: int) -> int:
    """Sum of percent x 10^4 x held seconds within [start, end) for one GPU."""
    busy = 0
    for i, (t, units) in enumerate(points):
        if t >= end:
            break
        t_next = points[i + 1][0] if i + 1 < len(points) else end
        t_to = min(t_next, t + MAX_GAP_S, end)
        t_from = max(t, start)
        if t_to > t_from:
            busy += units * (t_to - t_from)
    return busy


def _round_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, ties to even (exact)."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient
