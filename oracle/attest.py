"""EIP-712 report types of the oracle: the one Python definition, mirrored on-chain.

`OracleHub.vy` declares the same two types; `PRICE_REPORT_TYPE` and
`UTILISATION_REPORT_TYPE` below are the exact strings the hub hashes into its
`*_TYPEHASH` constants, and a test compares them with the compiled contract.

    PriceReport(bytes32 feedId,int256 value,uint256 confidence,uint64 observedAt,
                uint32 methodologyVersion,bytes32 inputsHash,uint64 logSize,
                bytes32 logRoot,uint64 configVersion)
    UtilisationReport(address spvToken,uint64 periodStart,uint64 periodEnd,
                      uint32 gpuCount,uint16 utilisationBps,uint256 rentalRevenue,
                      bytes32 inputsHash,uint64 logSize,bytes32 logRoot,
                      uint64 configVersion)

The domain is {name: "GPU Oracle Hub", version: "1", chainId, verifyingContract: the
hub}. `configVersion` names the hub's signer set (bumped on every change), so a report
signed for an older set is refused on-chain and checked against the right set offline.
`logSize`/`logRoot` are the attestation log's checkpoint when the report was signed:
every accepted report anchors the log on-chain.

Signing and recovery use eth-account. Signatures travel as 65 bytes (r, s, v) and are
always sorted by signer address, which is the order the hub requires.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal

from coincurve import PublicKey
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import is_address, to_checksum_address
from eth_utils import keccak as _eth_keccak
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

try:  # the C keccak (safe-pysha3, installed with eth-hash): ~5x faster per call
    from sha3 import keccak_256 as _keccak_256
except ImportError:  # pragma: no cover - eth-utils' own backend then
    _keccak_256 = None


def keccak(data: bytes | None = None, *, text: str | None = None) -> bytes:
    """keccak256 (not SHA3-256) of `data` or of UTF-8 `text`."""
    raw = text.encode() if text is not None else data
    assert raw is not None
    if _keccak_256 is not None:
        return _keccak_256(raw).digest()
    return _eth_keccak(raw)

DOMAIN_NAME = "GPU Oracle Hub"
DOMAIN_VERSION = "1"
PRICE_DECIMALS = 8
MAX_SIGNERS = 31
# secp256k1 group order / 2: the hub refuses the malleable twin (s > N/2) of a signature.
SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0

PRICE_REPORT_FIELDS: tuple[tuple[str, str], ...] = (
    ("feedId", "bytes32"),
    ("value", "int256"),
    ("confidence", "uint256"),
    ("observedAt", "uint64"),
    ("methodologyVersion", "uint32"),
    ("inputsHash", "bytes32"),
    ("logSize", "uint64"),
    ("logRoot", "bytes32"),
    ("configVersion", "uint64"),
)
UTILISATION_REPORT_FIELDS: tuple[tuple[str, str], ...] = (
    ("spvToken", "address"),
    ("periodStart", "uint64"),
    ("periodEnd", "uint64"),
    ("gpuCount", "uint32"),
    ("utilisationBps", "uint16"),
    ("rentalRevenue", "uint256"),
    ("inputsHash", "bytes32"),
    ("logSize", "uint64"),
    ("logRoot", "bytes32"),
    ("configVersion", "uint64"),
)


def _type_string(name: str, fields: Sequence[tuple[str, str]]) -> str:
    return f"{name}(" + ",".join(f"{kind} {field}" for field, kind in fields) + ")"


PRICE_REPORT_TYPE = _type_string("PriceReport", PRICE_REPORT_FIELDS)
UTILISATION_REPORT_TYPE = _type_string("UtilisationReport", UTILISATION_REPORT_FIELDS)


class AttestationError(ValueError):
    """A report, signature or signed envelope is malformed or does not verify."""


# ---------------------------------------------------------------------------- types


def _hex32(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        if len(value) != 32:
            raise ValueError(f"expected 32 bytes, got {len(value)}")
        return "0x" + bytes(value).hex()
    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]{64}", value):
        raise ValueError(f"expected 0x followed by 64 hex digits, got {value!r}")
    return value.lower()


def checksum_address(value: Any) -> str:
    """`value` as a checksummed address; ValueError if it is not one."""
    if not isinstance(value, str):
        raise ValueError(f"not a 20-byte 0x address: {value!r}")
    return _checksum_cached(value)


@lru_cache(maxsize=4096)
def _checksum_cached(value: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise ValueError(f"not a 20-byte 0x address: {value!r}")
    if value != value.lower() and value != to_checksum_address(value):
        raise ValueError(f"bad address checksum: {value!r}")
    return to_checksum_address(value)


def _signature(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        value = "0x" + bytes(value).hex()
    if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]{130}", value):
        raise ValueError("a signature is 0x followed by 65 bytes (130 hex digits): r, s, v")
    return value.lower()


Hex32 = Annotated[str, BeforeValidator(_hex32)]
Address = Annotated[str, AfterValidator(checksum_address)]
SignatureHex = Annotated[str, BeforeValidator(_signature)]
Uint64 = Annotated[int, Field(ge=0, lt=2**64)]
Uint256 = Annotated[int, Field(ge=0, lt=2**256)]
Int256 = Annotated[int, Field(ge=-(2**255), lt=2**255)]


class _Report(BaseModel):
    """Common behaviour of the two report types (field names are snake_case in Python,
    camelCase in the EIP-712 type, in the same order)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    PRIMARY_TYPE: ClassVar[str]
    FIELDS: ClassVar[tuple[tuple[str, str], ...]]
    KIND: ClassVar[str]

    def message(self) -> dict[str, Any]:
        """The EIP-712 message (camelCase keys, bytes32 as bytes)."""
        out: dict[str, Any] = {}
        for eip_name, kind in self.FIELDS:
            value = getattr(self, _snake(eip_name))
            out[eip_name] = bytes.fromhex(value[2:]) if kind == "bytes32" else value
        return out

    def canonical(self) -> dict[str, Any]:
        """The report as the log stores it: camelCase keys, hex strings, integers."""
        return {eip_name: getattr(self, _snake(eip_name)) for eip_name, _ in self.FIELDS}

    @classmethod
    def from_canonical(cls, data: dict[str, Any]) -> _Report:
        expected = {name for name, _ in cls.FIELDS}
        if set(data) != expected:
            raise AttestationError(
                f"{cls.PRIMARY_TYPE} fields differ: missing {sorted(expected - set(data))}, "
                f"unexpected {sorted(set(data) - expected)}"
            )
        return cls(**{_snake(k): v for k, v in data.items()})

    def as_tuple(self) -> tuple[Any, ...]:
        """The report as the hub's struct argument (web3.py / ape / titanoboa)."""
        return tuple(
            bytes.fromhex(v[2:]) if kind == "bytes32" else v
            for v, (_, kind) in zip(
                (getattr(self, _snake(n)) for n, _ in self.FIELDS), self.FIELDS, strict=True
            )
        )


@lru_cache(maxsize=256)
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class PriceReport(_Report):
    """A signed value of one price feed (8 decimals; USD per GPU-hour for index feeds)."""

    PRIMARY_TYPE: ClassVar[str] = "PriceReport"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = PRICE_REPORT_FIELDS
    KIND: ClassVar[str] = "price"

    feed_id: Hex32
    value: Int256
    confidence: Uint256
    observed_at: Uint64
    methodology_version: Annotated[int, Field(ge=0, lt=2**32)]
    inputs_hash: Hex32
    log_size: Uint64
    log_root: Hex32
    config_version: Uint64


class UtilisationReport(_Report):
    """Time-weighted utilisation and rental revenue of one SPV's fleet over a period."""

    PRIMARY_TYPE: ClassVar[str] = "UtilisationReport"
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = UTILISATION_REPORT_FIELDS
    KIND: ClassVar[str] = "utilisation"

    spv_token: Address
    period_start: Uint64
    period_end: Uint64
    gpu_count: Annotated[int, Field(ge=0, lt=2**32)]
    utilisation_bps: Annotated[int, Field(ge=0, le=10_000)]
    rental_revenue: Uint256
    inputs_hash: Hex32
    log_size: Uint64
    log_root: Hex32
    config_version: Uint64


Report = PriceReport | UtilisationReport
REPORT_TYPES: dict[str, type[_Report]] = {"price": PriceReport, "utilisation": UtilisationReport}


class Domain(BaseModel):
    """The EIP-712 domain: one hub on one chain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain_id: Annotated[int, Field(ge=1)]
    hub: Address

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.hub,
        }

    def separator(self) -> bytes:
        """keccak256 of the encoded domain, as the hub's `DOMAIN_SEPARATOR()` returns."""
        return keccak(
            abi_encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [
                    keccak(text="EIP712Domain(string name,string version,uint256 chainId,"
                                "address verifyingContract)"),
                    keccak(text=DOMAIN_NAME),
                    keccak(text=DOMAIN_VERSION),
                    self.chain_id,
                    self.hub,
                ],
            )
        )


def typed_data(report: _Report, domain: Domain) -> dict[str, Any]:
    """The full EIP-712 message (what a wallet or `eth_signTypedData_v4` signs)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            report.PRIMARY_TYPE: [{"name": n, "type": t} for n, t in report.FIELDS],
        },
        "primaryType": report.PRIMARY_TYPE,
        "domain": domain.as_dict(),
        "message": report.message(),
    }


def digest(report: _Report, domain: Domain) -> bytes:
    """The 32-byte EIP-712 digest the signers sign and the hub recovers from:
    keccak256(0x1901 || domain separator || keccak256(typehash || encoded fields)).
    (Computed directly, as the hub does; the tests check it against eth-account's
    `encode_typed_data` of `typed_data(report, domain)`.) Every field is a static type,
    so the ABI encoding is one 32-byte word per field, written here directly."""
    words = [_word(kind, getattr(report, _snake(name))) for name, kind in report.FIELDS]
    struct_hash = keccak(_TYPEHASHES[report.PRIMARY_TYPE] + b"".join(words))
    return keccak(b"\x19\x01" + _separator(domain.chain_id, domain.hub) + struct_hash)


def _word(kind: str, value: Any) -> bytes:
    """One static ABI word (what eth_abi.encode writes for these types)."""
    if kind == "bytes32":
        return bytes.fromhex(value[2:])
    if kind == "address":
        return bytes.fromhex(value[2:]).rjust(32, b"\0")
    if kind.startswith("int"):
        return value.to_bytes(32, "big", signed=True)
    return value.to_bytes(32, "big")


_TYPEHASHES = {
    "PriceReport": keccak(text=PRICE_REPORT_TYPE),
    "UtilisationReport": keccak(text=UTILISATION_REPORT_TYPE),
}


@lru_cache(maxsize=64)
def _separator(chain_id: int, hub: str) -> bytes:
    return Domain(chain_id=chain_id, hub=hub).separator()


def sign(report: _Report, domain: Domain, private_key: bytes | str) -> str:
    """One signer's 65-byte signature (0x hex, r || s || v with v in {27, 28})."""
    signed = Account.unsafe_sign_hash(digest(report, domain), private_key)
    return "0x" + bytes(signed.signature).hex()


def recover(report_digest: bytes, signature: str | bytes) -> str:
    """The address that produced `signature` over `report_digest`.

    Refuses what the hub refuses: a wrong length, v not 27/28, or a malleable s.
    """
    return _checksummed(_recover_address(report_digest, _checked(signature)))


def _checked(signature: str | bytes) -> bytes:
    """The 65 raw bytes of `signature`, refusing what the hub refuses: a wrong length,
    v not 27/28, or an s of zero or in the upper half order (the malleable twin)."""
    raw = bytes.fromhex(_signature(signature)[2:])
    if raw[64] not in (27, 28):
        raise AttestationError(f"signature v must be 27 or 28, got {raw[64]}")
    if not 0 < int.from_bytes(raw[32:64], "big") <= SECP256K1_HALF_N:
        raise AttestationError("signature s is not in the lower half order (malleable)")
    return raw


def _recover_address(report_digest: bytes, raw: bytes) -> bytes:
    """The 20-byte address behind a 65-byte (r, s, v) signature; checks done by callers.
    (libsecp256k1 through coincurve, as eth-keys uses it, without the object layers.)"""
    try:
        public = PublicKey.from_signature_and_message(raw[:64] + bytes([raw[64] - 27]),
                                                      report_digest, hasher=None)
    except Exception as exc:  # coincurve raises a bare Exception for a bad signature
        raise AttestationError(f"signature does not recover a key: {exc}") from exc
    return keccak(public.format(compressed=False)[1:])[-20:]


@lru_cache(maxsize=4096)
def _checksummed(raw: bytes) -> str:
    return to_checksum_address(raw)


def compact_signature(signature: str | bytes) -> tuple[bytes, bytes]:
    """(r, vs): the hub's `Signature` struct, EIP-2098 compact form (the recovery bit
    v - 27 in the top bit of s)."""
    raw = _checked(signature)
    vs = int.from_bytes(raw[32:64], "big") | ((raw[64] - 27) << 255)
    return raw[:32], vs.to_bytes(32, "big")


class SignedReport(BaseModel):
    """A report with k signatures sorted by signer address: what the hub accepts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["price", "utilisation"]
    domain: Domain
    report: PriceReport | UtilisationReport
    signatures: list[SignatureHex]
    signers: list[Address]

    def digest(self) -> bytes:
        return digest(self.report, self.domain)

    def signature_structs(self) -> list[tuple[bytes, bytes]]:
        """The signatures as the hub's `DynArray[Signature, 31]` argument."""
        return [compact_signature(s) for s in self.signatures]

    def recovered_signers(self) -> list[str]:
        """Recover every signature (raises AttestationError on a malformed one)."""
        d = self.digest()
        return [recover(d, s) for s in self.signatures]



def cosign(
    report: _Report, domain: Domain, private_keys: Iterable[bytes | str]
) -> SignedReport:
    """Sign `report` with every key and order the signatures by signer address."""
    pairs = []
    for key in private_keys:
        signer = Account.from_key(key).address
        pairs.append((int(signer, 16), signer, sign(report, domain, key)))
    pairs.sort()
    if len({p[0] for p in pairs}) != len(pairs):
        raise AttestationError("the same key was given twice; each signer signs once")
    return SignedReport(
        kind=report.KIND,  # type: ignore[arg-type]
        domain=domain,
        report=report,
        signatures=[p[2] for p in pairs],
        signers=[p[1] for p in pairs],
    )


def check_signatures(
    signed: SignedReport, signer_set: Sequence[str], threshold: int
) -> list[str]:
    """Check `signed` as the hub would against `signer_set`/`threshold`.

    Returns the recovered signers; raises AttestationError naming the first problem.
    """
    allowed = {bytes.fromhex(s[2:].lower()) for s in signer_set}
    if len(signed.signatures) < threshold:
        raise AttestationError(
            f"{len(signed.signatures)} signatures, the signer set needs {threshold}"
        )
    report_digest = signed.digest()
    recovered: list[bytes] = []
    for position, signature in enumerate(signed.signatures):
        try:
            raw = _checked(signature)
        except AttestationError as exc:
            raise AttestationError(f"signature {position}: {exc}") from exc
        signer = _recover_address(report_digest, raw)
        if signer not in allowed:
            raise AttestationError(
                f"signature {position} recovers {_checksummed(signer)}, which is not "
                f"in the signer set of config version {signed.report.config_version}"
            )
        if recovered and signer <= recovered[-1]:
            raise AttestationError(
                f"signature {position} ({to_checksum_address(signer)}) is out of order or a "
                "duplicate signer"
            )
        recovered.append(signer)
    if [bytes.fromhex(s[2:].lower()) for s in signed.signers] != recovered:
        raise AttestationError(
            f"the envelope names signers {signed.signers} but the signatures recover "
            f"{[_checksummed(r) for r in recovered]}"
        )
    return [_checksummed(r) for r in recovered]


# ---------------------------------------------------------------- canonical inputs


def canonical_json(value: Any) -> bytes:
    """The canonical encoding of raw inputs and log entries: UTF-8 JSON with sorted keys
    and no whitespace. Integers stay integers (arbitrary precision); floats are refused,
    so a value never depends on float formatting: write decimals as strings."""
    _refuse_floats(value, "$")
    return encode_canonical(value)


def encode_canonical(value: Any) -> bytes:
    """`canonical_json` for a value known to hold no floats (typed models, or JSON read
    with `loads_no_floats`): the same bytes, without the walk that refuses floats."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _no_float(text: str) -> Any:
    raise AttestationError(f"floats are not canonical, write {text} as a string")


def loads_no_floats(text: bytes | str, **kwargs: Any) -> Any:
    """json.loads refusing any float (AttestationError), so `encode_canonical` of the
    result is the canonical form without a second walk."""
    return json.loads(text, parse_float=_no_float, parse_constant=_no_float, **kwargs)


def _refuse_floats(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise AttestationError(f"{path}: floats are not canonical, write {value!r} as a string")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise AttestationError(f"{path}: object keys must be strings, got {k!r}")
            _refuse_floats(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _refuse_floats(v, f"{path}[{i}]")


def fixed_str(value: int, decimals: int = PRICE_DECIMALS) -> str:
    """A fixed-point integer as an exact decimal string (1_55833333 -> "1.55833333")."""
    sign = "-" if value < 0 else ""
    digits = str(abs(value)).rjust(decimals + 1, "0")
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"


def inputs_hash(canonical_inputs: bytes) -> str:
    """SHA-256 of a canonical raw-input snapshot: the report's `inputsHash`."""
    return "0x" + hashlib.sha256(canonical_inputs).hexdigest()
