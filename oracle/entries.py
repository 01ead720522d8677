"""What one attestation-log entry holds, byte for byte.

A log entry's leaf (the bytes hashed into the RFC 6962 tree) is canonical JSON
(`attest.canonical_json`: sorted keys, no whitespace, UTF-8) of one of:

- a signed report (`kind` "price" or "utilisation"):
  `{"v": 1, "index": i, "kind": ..., "chainId": ..., "hub": "0x..", "report": {camelCase
  fields}, "signatures": ["0x.." x k], "signers": ["0x.." x k]}`
- a signer set the hub installed (`kind` "signer_set"), recorded before any report that
  names its config version, so an auditor can check signatures offline:
  `{"v": 1, "index": i, "kind": "signer_set", "chainId", "hub", "configVersion", "signers",
  "threshold"}`

`index` is the entry's own position: a dropped or reordered entry names itself. The raw
input snapshot is stored beside the leaf (the log's `inputs` column); the report's
`inputsHash` is its SHA-256, so the leaf commits to it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oracle import attest

ENTRY_FORMAT_VERSION = 1


class EntryFormatError(ValueError):
    """A leaf is not a valid entry of this format."""


class SignerSetEntry(BaseModel):
    """A signer set as the hub installed it (`SignerSetChanged`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: Annotated[int, Field(ge=0)]
    domain: attest.Domain
    config_version: Annotated[int, Field(ge=1)]
    signers: list[attest.Address]
    threshold: Annotated[int, Field(ge=1, le=attest.MAX_SIGNERS)]

    kind: Literal["signer_set"] = "signer_set"

    def leaf(self) -> bytes:
        # typed fields only (ints and strings): no float can be in it
        return attest.encode_canonical(
            {
                "v": ENTRY_FORMAT_VERSION,
                "index": self.index,
                "kind": self.kind,
                "chainId": self.domain.chain_id,
                "hub": self.domain.hub,
                "configVersion": self.config_version,
                "signers": list(self.signers),
                "threshold": self.threshold,
            }
        )


class ReportEntry(BaseModel):
    """A signed report as logged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: Annotated[int, Field(ge=0)]
    signed: attest.SignedReport

    @property
    def kind(self) -> str:
        return self.signed.kind

    def leaf(self) -> bytes:
        # typed fields only (ints and strings): no float can be in it
        return attest.encode_canonical(
            {
                "v": ENTRY_FORMAT_VERSION,
                "index": self.index,
                "kind": self.signed.kind,
                "chainId": self.signed.domain.chain_id,
                "hub": self.signed.domain.hub,
                "report": self.signed.report.canonical(),
                "signatures": list(self.signed.signatures),
                "signers": list(self.signed.signers),
            }
        )


Entry = ReportEntry | SignerSetEntry


def parse_leaf(leaf: bytes) -> Entry:
    """Parse a leaf; raises EntryFormatError saying what is wrong."""
    try:
        data: Any = attest.loads_no_floats(leaf.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EntryFormatError(f"not UTF-8 JSON: {exc}") from exc
    except attest.AttestationError as exc:  # a float: never in a canonical leaf
        raise EntryFormatError("the leaf is not in canonical form (re-encoding it "
                               "differs)") from exc
    if not isinstance(data, dict):
        raise EntryFormatError("an entry is a JSON object")
    if data.get("v") != ENTRY_FORMAT_VERSION:
        raise EntryFormatError(f"unknown entry format version {data.get('v')!r}")
    kind = data.get("kind")
    try:
        domain = attest.Domain(chain_id=data["chainId"], hub=data["hub"])
        if kind == "signer_set":
            _expect_keys(data, {"v", "index", "kind", "chainId", "hub", "configVersion",
                                "signers", "threshold"})
            entry: Entry = SignerSetEntry(
                index=data["index"], domain=domain, config_version=data["configVersion"],
                signers=data["signers"], threshold=data["threshold"],
            )
        elif kind in attest.REPORT_TYPES:
            _expect_keys(data, {"v", "index", "kind", "chainId", "hub", "report", "signatures",
                                "signers"})
            report = attest.REPORT_TYPES[kind].from_canonical(data["report"])
            entry = ReportEntry(
                index=data["index"],
                signed=attest.SignedReport(
                    kind=kind, domain=domain, report=report, signatures=data["signatures"],
                    signers=data["signers"],
                ),
            )
        else:
            raise EntryFormatError(f"unknown entry kind {kind!r}")
    except (KeyError, TypeError) as exc:
        raise EntryFormatError(f"missing or mistyped field: {exc}") from exc
    except (ValidationError, attest.AttestationError) as exc:
        raise EntryFormatError(_first_error(exc)) from exc
    if entry.leaf() != leaf:
        raise EntryFormatError("the leaf is not in canonical form (re-encoding it differs)")
    return entry


def _expect_keys(data: dict[str, Any], keys: set[str]) -> None:
    if set(data) != keys:
        raise EntryFormatError(
            f"fields differ: missing {sorted(keys - set(data))}, "
            f"unexpected {sorted(set(data) - keys)}"
        )


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc)
