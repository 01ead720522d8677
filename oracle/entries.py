"""What one attestation-log entry holds, byte for byte.

A log entry's leaf (the bytes hashed into the RFC 6962 tree) is one JSON object of:

- a signed report (`kind` "price" or "utilisation"):
  `{"v": 2, "index": i, "kind": ..., "chainId": ..., "hub": "0x..", "report": {camelCase
  fields}, "signatures": ["0x.." x k], "signers": ["0x.." x k]}`
- a signer set the hub installed (`kind` "signer_set"), recorded before any report that
  names its config version, so an auditor can check signatures offline:
  `{"v": 2, "index": i, "kind": "signer_set", "chainId", "hub", "configVersion", "signers",
  "threshold"}`

`index` is the entry's own position: a dropped or reordered entry names itself. The raw
input snapshot is stored beside the leaf (the log's `inputs` column); the report's
`inputsHash` is its SHA-256, so the leaf commits to it.

`v` is the entry format version; it says how the object is written (`oracle.canonical`):

- **1** (logs written before RFC 8785): `canonical.legacy_v1`, Python's JSON with sorted
  keys and no whitespace; integers of any size are JSON numbers.
- **2** (every new entry, `ENTRY_FORMAT_VERSION`): RFC 8785 (JCS), `canonical.jcs`. JCS
  numbers are IEEE doubles, so an integer beyond ±(2**53 - 1) (a uint256 amount, a large
  index or chain id) is written as its decimal string (`"value":"9007199254740993"`),
  every other integer as a number: each integer has exactly one spelling.

The fields are the same in both. A leaf is never re-encoded: it is stored and hashed as
written, so entries of both versions sit in one log and each verifies in its own
version. `parse_leaf` reads both and refuses any leaf that is not exactly the canonical
bytes of its version (so no two leaves spell the same entry).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oracle import attest, canonical

LEGACY_FORMAT_VERSION = 1
"""Entries written before RFC 8785: `canonical.legacy_v1`."""
ENTRY_FORMAT_VERSION = 2
"""The version new entries are written in: RFC 8785 (`canonical.jcs`)."""
ENTRY_FORMAT_VERSIONS = (LEGACY_FORMAT_VERSION, ENTRY_FORMAT_VERSION)
"""Every version `parse_leaf` reads."""

FormatVersion = Literal[1, 2]


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
    format_version: FormatVersion = ENTRY_FORMAT_VERSION

    def leaf(self) -> bytes:
        return encode_entry(
            self.format_version,
            {
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
    format_version: FormatVersion = ENTRY_FORMAT_VERSION

    @property
    def kind(self) -> str:
        return self.signed.kind

    def leaf(self) -> bytes:
        return encode_entry(
            self.format_version,
            {
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


def encode_entry(version: int, fields: dict[str, Any]) -> bytes:
    """The leaf of an entry's `fields` (typed: strings, ints, lists of strings, the
    report's dict; never a float) in format `version`, `v` added."""
    if version == ENTRY_FORMAT_VERSION:
        return canonical.jcs(_wide_ints_as_strings({"v": version, **fields}))
    if version == LEGACY_FORMAT_VERSION:
        return canonical.legacy_v1({"v": version, **fields})
    raise EntryFormatError(f"unknown entry format version {version!r}")


def _wide_ints_as_strings(value: Any) -> Any:
    """`value` with every integer beyond the I-JSON range as its decimal string."""
    if type(value) is int:
        return value if -canonical.MAX_SAFE_INTEGER <= value <= canonical.MAX_SAFE_INTEGER \
            else str(value)
    if isinstance(value, dict):
        return {k: _wide_ints_as_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wide_ints_as_strings(v) for v in value]
    return value


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
    version = data.get("v")
    if type(version) is not int or version not in ENTRY_FORMAT_VERSIONS:
        raise EntryFormatError(
            f"unknown entry format version {version!r} (this build reads versions "
            f"{', '.join(map(str, ENTRY_FORMAT_VERSIONS))}: a newer gpu-oracle may read it)")
    kind = data.get("kind")
    try:
        domain = attest.Domain(chain_id=data["chainId"], hub=data["hub"])
        if kind == "signer_set":
            _expect_keys(data, {"v", "index", "kind", "chainId", "hub", "configVersion",
                                "signers", "threshold"})
            entry: Entry = SignerSetEntry(
                index=data["index"], domain=domain, config_version=data["configVersion"],
                signers=data["signers"], threshold=data["threshold"],
                format_version=version,
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
                format_version=version,
            )
        else:
            raise EntryFormatError(f"unknown entry kind {kind!r}")
    except (KeyError, TypeError) as exc:
        raise EntryFormatError(f"missing or mistyped field: {exc}") from exc
    except (ValidationError, attest.AttestationError) as exc:
        raise EntryFormatError(_first_error(exc)) from exc
    try:
        again = entry.leaf()
    except canonical.CanonicalJSONError as exc:
        raise EntryFormatError(f"the leaf has no canonical form: {exc}") from exc
    if again != leaf:
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
