"""EIP-712 eligibility attestations: a KYC provider signs, the investor submits.

The typed data mirrors `ComplianceRegistry.ELIGIBILITY_TYPEHASH` exactly:

    Eligibility(address investor,uint16 jurisdiction,uint24 subdivision,bool accredited,
                uint64 expiresAt,uint256 nonce,uint256 deadline)

`subdivision` is the ISO 3166-2 region of residence in the registry's encoding (the part
after the hyphen in ASCII, right-aligned: `UA-30` -> 0x3330; 0 when none is attested).

with the domain {name: "GPU Shares Compliance", version: "1", chainId, verifyingContract}.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_utils import is_checksum_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from jurisdictions.rules import SUBDIVISION_PATTERN, encode_subdivision

DOMAIN_NAME = "GPU Shares Compliance"
DOMAIN_VERSION = "1"
ELIGIBILITY_TYPE = [
    {"name": "investor", "type": "address"},
    {"name": "jurisdiction", "type": "uint16"},
    {"name": "subdivision", "type": "uint24"},
    {"name": "accredited", "type": "bool"},
    {"name": "expiresAt", "type": "uint64"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


def _checksum(value: str) -> str:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 42:
        raise ValueError(f"not a 20-byte 0x address: {value!r}")
    if value != value.lower() and not is_checksum_address(value):
        raise ValueError(f"bad address checksum: {value!r}")
    return to_checksum_address(value)


class Eligibility(BaseModel):
    """What the KYC provider attests about one investor wallet."""

    model_config = ConfigDict(frozen=True)

    investor: str
    jurisdiction: Annotated[int, Field(ge=1, le=999)]
    accredited: bool
    expires_at: Annotated[int, Field(ge=1, lt=2**64)]
    nonce: Annotated[int, Field(ge=0, lt=2**256)]
    deadline: Annotated[int, Field(ge=0, lt=2**256)]
    # ISO 3166-2 region of residence (`UA-30`), None when none is attested.
    subdivision: Annotated[str, StringConstraints(pattern=SUBDIVISION_PATTERN)] | None = None

    _addr = field_validator("investor")(classmethod(lambda cls, v: _checksum(v)))

    @property
    def subdivision_code(self) -> int:
        """The region in the registry's `uint24` encoding (0: none)."""
        return encode_subdivision(self.subdivision) if self.subdivision else 0

    def as_tuple(self) -> tuple[str, int, int, bool, int, int, int]:
        """The `Eligibility` struct as the contract call takes it."""
        return (
            self.investor, self.jurisdiction, self.subdivision_code, self.accredited,
            self.expires_at, self.nonce, self.deadline,
        )


class SignedEligibility(BaseModel):
    """An attestation plus the provider's signature: the file an investor submits."""

    model_config = ConfigDict(frozen=True)

    attestation: Eligibility
    signature: str  # 0x + 130 hex chars (r, s, v)
    signer: str
    chain_id: int
    registry: str

    @field_validator("signature")
    @classmethod
    def _sig(cls, v: str) -> str:
        if not re.fullmatch(r"0x[0-9a-fA-F]{130}", v):
            raise ValueError("signature must be 0x followed by 65 bytes (130 hex digits)")
        return v

    def signature_bytes(self) -> bytes:
        return bytes.fromhex(self.signature[2:])

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=2)


def typed_data(attestation: Eligibility, chain_id: int, registry: str) -> dict[str, Any]:
    """The full EIP-712 message for `attestation` on `registry`."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Eligibility": ELIGIBILITY_TYPE,
        },
        "primaryType": "Eligibility",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": _checksum(registry),
        },
        "message": {
            "investor": attestation.investor,
            "jurisdiction": attestation.jurisdiction,
            "subdivision": attestation.subdivision_code,
            "accredited": attestation.accredited,
            "expiresAt": attestation.expires_at,
            "nonce": attestation.nonce,
            "deadline": attestation.deadline,
        },
    }


def sign(
    attestation: Eligibility, private_key: bytes | str, chain_id: int, registry: str
) -> SignedEligibility:
    """Sign `attestation` as the KYC provider holding `private_key`."""
    signed = Account.sign_message(
        encode_typed_data(full_message=typed_data(attestation, chain_id, registry)), private_key
    )
    return SignedEligibility(
        attestation=attestation,
        signature="0x" + bytes(signed.signature).hex(),
        signer=Account.from_key(private_key).address,
        chain_id=chain_id,
        registry=_checksum(registry),
    )


def recover_signer(signed: SignedEligibility) -> str | None:
    """The address that signed `signed` (checks the file before sending it on-chain);
    None when the signature recovers no address at all (a `v` other than 27/28, `r` or
    `s` out of range: a forged or damaged file)."""
    message = encode_typed_data(
        full_message=typed_data(signed.attestation, signed.chain_id, signed.registry)
    )
    try:
        return Account.recover_message(message, signature=signed.signature_bytes())
    except (ValueError, BadSignature):
        return None
