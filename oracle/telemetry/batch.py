"""Telemetry batches: a host agent's samples, signed with the agent's own key.

A batch (canonical JSON, camelCase keys, every field always present):

    {"type": "gpu-telemetry-batch/1", "agent": "0x..." (checksummed),
     "spvToken": "0x..." (checksummed), "sequence": 1795255200000,
     "createdAt": 1795255200, "source": "dcgm" | "nvidia-smi" | "nvml",
     "samples": [{"uuid": "GPU-...", "serial": "1654923041107" | null,
                  "time": 1795255200, "percent": "97.3412",
                  "metric": "DCGM_FI_PROF_GR_ENGINE_ACTIVE"}, ...]}

`sequence` is strictly increasing per agent (the shipped agent uses
max(previous + 1, unix milliseconds), so a lost state file does not wedge it).

**Signing scheme: EIP-191 `personal_sign`** (version 0x45) over the batch's canonical
JSON bytes (`oracle.attest.canonical_json`: sorted keys, no whitespace, UTF-8):

    digest = keccak256(b"\\x19Ethereum Signed Message:\\n" + str(len(m)) + m)

Any Ethereum tooling can produce and check it (`cast wallet sign`, hardware wallets,
eth-account's `sign_message(encode_defunct(m))`), and the `"type"` field makes the
signed text unmistakably a telemetry batch. The signature travels as 65 bytes
`r || s || v` (0x hex, v in {27, 28}, s in the lower half order, as for reports). A
batch is signed as its canonical form: addresses checksummed, GPU UUIDs lower case,
percents canonical (`samples.percent_str`); the models refuse other spellings of the
percents and UUIDs, so what a node re-serialises is what the agent signed.

`batch_hash` is keccak256 of the same canonical bytes (without the EIP-191 prefix): the
batch's identity for replay protection and in the node's answers.

Wire format (`POST /v1/telemetry`): `{"batch": {...}, "signature": "0x..."}`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from eth_account import Account
from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field, field_validator

from oracle import attest
from oracle.telemetry.samples import MAX_TIME, Sample, TelemetryError

BATCH_TYPE = "gpu-telemetry-batch/1"
MAX_SAMPLES = 20_000
"""Most samples in one batch (a 64-GPU host sampled every 15 s for 1 h is 15,360)."""
MAX_SEQUENCE = 2**63
Source = Literal["dcgm", "nvidia-smi", "nvml"]


class BatchSignatureError(TelemetryError, ValueError):
    """A batch signature is missing, malformed, or does not recover a key."""


class TelemetryBatch(BaseModel):
    """An agent's samples for one SPV token (see the module docstring for the JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    type: Literal["gpu-telemetry-batch/1"] = BATCH_TYPE
    agent: attest.Address
    spv_token: Annotated[attest.Address, Field(alias="spvToken")]
    sequence: Annotated[int, Field(ge=1, lt=MAX_SEQUENCE, strict=True)]
    created_at: Annotated[int, Field(alias="createdAt", ge=0, lt=MAX_TIME, strict=True)]
    source: Source
    samples: Annotated[list[Sample], Field(min_length=1, max_length=MAX_SAMPLES)]

    @field_validator("samples")
    @classmethod
    def _distinct(cls, v: list[Sample]) -> list[Sample]:
        seen: set[tuple[str, int]] = set()
        for s in v:
            if (s.uuid, s.time) in seen:
                raise ValueError(f"two samples for {s.uuid} at unix time {s.time}")
            seen.add((s.uuid, s.time))
        return v

    def canonical(self) -> dict[str, Any]:
        """The batch as signed, sent and stored (camelCase keys, plain JSON types)."""
        return {
            "type": self.type,
            "agent": self.agent,
            "spvToken": self.spv_token,
            "sequence": self.sequence,
            "createdAt": self.created_at,
            "source": self.source,
            "samples": [s.canonical() for s in self.samples],
        }

    def signing_bytes(self) -> bytes:
        """The message the agent signs: `attest.canonical_json(self.canonical())`."""
        return attest.canonical_json(self.canonical())


class SignedBatch(BaseModel):
    """A batch and its agent's EIP-191 signature: what `POST /v1/telemetry` carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch: TelemetryBatch
    signature: attest.SignatureHex

    def canonical(self) -> dict[str, Any]:
        """`{"batch": {...}, "signature": "0x..."}` (the request body)."""
        return {"batch": self.batch.canonical(), "signature": self.signature}


def signing_digest(batch: TelemetryBatch) -> bytes:
    """The 32-byte EIP-191 (personal_sign) digest of the batch's canonical JSON."""
    message = batch.signing_bytes()
    return keccak(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)


def batch_hash(batch: TelemetryBatch) -> str:
    """keccak256 of the batch's canonical JSON, 0x hex: its identity."""
    return "0x" + keccak(batch.signing_bytes()).hex()


def sign_batch(batch: TelemetryBatch, key: bytes | str) -> SignedBatch:
    """Sign `batch` with the agent's private key. Raises ValueError if the key is not the
    batch's agent (sign with the key whose address is `batch.agent`)."""
    account = Account.from_key(key)
    if account.address != batch.agent:
        raise ValueError(f"the key's address {account.address} is not the batch's agent "
                         f"{batch.agent}: build the batch with agent={account.address}")
    signed = Account.unsafe_sign_hash(signing_digest(batch), account.key)
    return SignedBatch(batch=batch, signature="0x" + bytes(signed.signature).hex())


def recover_agent(signed: SignedBatch) -> str:
    """The checksummed address that signed `signed.batch`. Raises `BatchSignatureError`
    if the signature is malformed (length, v, malleable s) or recovers no key."""
    try:
        return attest.recover(signing_digest(signed.batch), signed.signature)
    except (attest.AttestationError, ValueError) as exc:
        raise BatchSignatureError(f"batch signature: {exc}") from exc
