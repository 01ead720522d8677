"""EIP-712 eligibility attestations: signing, recovery, validation, file round trip."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from pydantic import ValidationError

from jurisdictions.eligibility import (
    DOMAIN_NAME,
    DOMAIN_VERSION,
    ELIGIBILITY_TYPE,
    Eligibility,
    SignedEligibility,
    recover_signer,
    sign,
)

CHAIN_ID = 31_337
REGISTRY = to_checksum_address("0x" + "12" * 20)
INVESTOR = to_checksum_address("0x" + "3c" * 20)
CONTRACT = Path(__file__).resolve().parents[2] / "contracts" / "ComplianceRegistry.vy"


@pytest.fixture(scope="module")
def provider() -> Any:
    return Account.create()


def attestation(**fields: Any) -> Eligibility:
    data: dict[str, Any] = {
        "investor": INVESTOR,
        "jurisdiction": 276,
        "accredited": True,
        "expires_at": 1_900_000_000,
        "nonce": 7,
        "deadline": 1_800_000_000,
    }
    data.update(fields)
    return Eligibility(**data)


@pytest.fixture(scope="module")
def signed(provider: Any) -> SignedEligibility:
    return sign(attestation(), provider.key, CHAIN_ID, REGISTRY)


# --- sign / recover -------------------------------------------------------------------------------


def test_sign_recover_round_trip(provider: Any, signed: SignedEligibility) -> None:
    assert signed.signer == provider.address
    assert recover_signer(signed) == provider.address
    assert signed.chain_id == CHAIN_ID and signed.registry == REGISTRY
    assert len(signed.signature_bytes()) == 65


def test_sign_with_hex_key_and_lowercase_registry(provider: Any) -> None:
    s = sign(attestation(), provider.key.hex(), CHAIN_ID, REGISTRY.lower())
    assert s.registry == REGISTRY
    assert recover_signer(s) == provider.address


def test_digest_matches_contract_layout(provider: Any, signed: SignedEligibility) -> None:
    """The signature is over the EIP-712 digest the contract computes."""
    a = signed.attestation
    domain_type = keccak(
        text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    domain = keccak(encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [domain_type, keccak(text=DOMAIN_NAME), keccak(text=DOMAIN_VERSION), CHAIN_ID, REGISTRY],
    ))
    typehash = keccak(text=_type_string())
    struct = keccak(encode(
        ["bytes32", "address", "uint16", "uint24", "bool", "uint64", "uint256", "uint256"],
        [typehash, a.investor, a.jurisdiction, a.subdivision_code, a.accredited, a.expires_at,
         a.nonce, a.deadline],
    ))
    digest = keccak(b"\x19\x01" + domain + struct)
    expected = Account.unsafe_sign_hash(digest, provider.key)
    assert signed.signature_bytes() == bytes(expected.signature)


def _type_string() -> str:
    fields = ",".join(f"{f['type']} {f['name']}" for f in ELIGIBILITY_TYPE)
    return f"Eligibility({fields})"


def test_type_matches_contract_typehash() -> None:
    source = CONTRACT.read_text()
    match = re.search(
        r'ELIGIBILITY_TYPEHASH: public\(constant\(bytes32\)\) = keccak256\(\s*"([^"]+)"', source
    )
    assert match is not None
    assert match.group(1) == _type_string()
    assert f'eip712_domain_separator.__init__("{DOMAIN_NAME}", "{DOMAIN_VERSION}")' in source


# --- tampering ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"accredited": False},
        {"jurisdiction": 840},
        {"expires_at": 1_900_000_001},
        {"nonce": 8},
        {"deadline": 1_800_000_001},
        {"investor": to_checksum_address("0x" + "4d" * 20)},
    ],
    ids=lambda c: next(iter(c)),
)
def test_tampered_attestation_changes_signer(
    provider: Any, signed: SignedEligibility, change: dict[str, Any]
) -> None:
    tampered = signed.model_copy(update={"attestation": attestation(**change)})
    assert recover_signer(tampered) != provider.address


@pytest.mark.parametrize(
    "change",
    [{"chain_id": 1}, {"registry": to_checksum_address("0x" + "56" * 20)}],
    ids=lambda c: next(iter(c)),
)
def test_other_domain_changes_signer(
    provider: Any, signed: SignedEligibility, change: dict[str, Any]
) -> None:
    assert recover_signer(signed.model_copy(update=change)) != provider.address


def test_other_key_signs_differently(signed: SignedEligibility) -> None:
    other = Account.create()
    s = sign(attestation(), other.key, CHAIN_ID, REGISTRY)
    assert recover_signer(s) == other.address != signed.signer


# --- JSON file ----------------------------------------------------------------------------------


def test_json_round_trip(provider: Any, signed: SignedEligibility) -> None:
    text = signed.to_json()
    again = SignedEligibility.model_validate_json(text)
    assert again == signed
    assert recover_signer(again) == provider.address


def test_json_round_trip_with_large_numbers(provider: Any) -> None:
    a = attestation(nonce=2**256 - 1, deadline=2**256 - 1, expires_at=2**64 - 1)
    s = sign(a, provider.key, CHAIN_ID, REGISTRY)
    again = SignedEligibility.model_validate_json(s.to_json())
    assert again.attestation.nonce == 2**256 - 1
    assert recover_signer(again) == provider.address


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "investor",
    [
        "0x123",
        "3c" * 21,  # 42 characters, no 0x
        "0x" + "3c" * 21,
        "0x" + "zz" * 20,
        INVESTOR[:2] + INVESTOR[2:].swapcase(),  # mixed case, bad checksum
        12345,
        "",
    ],
)
def test_bad_investor_address(investor: Any) -> None:
    with pytest.raises(ValidationError):
        attestation(investor=investor)


def test_lowercase_address_is_checksummed() -> None:
    assert attestation(investor=INVESTOR.lower()).investor == INVESTOR


@pytest.mark.parametrize(
    "field",
    [
        {"jurisdiction": 0},
        {"jurisdiction": 1000},
        {"jurisdiction": -1},
        {"expires_at": 0},
        {"expires_at": 2**64},
        {"nonce": -1},
        {"nonce": 2**256},
        {"deadline": -1},
    ],
    ids=lambda f: f"{next(iter(f))}={next(iter(f.values()))}",
)
def test_out_of_range_fields(field: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        attestation(**field)


def test_range_edges_accepted() -> None:
    assert attestation(jurisdiction=1).jurisdiction == 1
    assert attestation(jurisdiction=999).jurisdiction == 999
    assert attestation(expires_at=1).expires_at == 1


def test_attestation_is_frozen() -> None:
    a = attestation()
    with pytest.raises(ValidationError):
        a.accredited = False  # type: ignore[misc]


def test_as_tuple() -> None:
    a = attestation()
    assert a.as_tuple() == (INVESTOR, 276, 0, True, 1_900_000_000, 7, 1_800_000_000)


def test_as_tuple_carries_the_region() -> None:
    a = attestation().model_copy(update={"jurisdiction": 804, "subdivision": "UA-30"})
    assert a.as_tuple()[:3] == (INVESTOR, 804, 0x3330)
    with pytest.raises(ValidationError, match="pattern"):
        Eligibility.model_validate(attestation().model_dump() | {"subdivision": "Kyiv"})


@pytest.mark.parametrize(
    "signature", ["0x" + "ab" * 64, "ab" * 66, "0x" + "zz" * 65, "0x" + "ab" * 66]
)
def test_bad_signature_rejected(signed: SignedEligibility, signature: str) -> None:
    data = signed.model_dump()
    data["signature"] = signature
    with pytest.raises(ValidationError):
        SignedEligibility.model_validate(data)


def test_signature_with_whitespace_rejected(signed: SignedEligibility) -> None:
    data = signed.model_dump()
    data["signature"] = signed.signature[:-2] + "  "
    with pytest.raises(ValidationError):
        SignedEligibility.model_validate(data)


@pytest.mark.parametrize("signature", [
    "0x" + "22" * 65,                # v = 34: no recovery id
    "0x" + "00" * 64 + "1b",         # r = s = 0
    "0x" + "ff" * 64 + "1c",         # r, s beyond the curve order
])
def test_a_signature_that_recovers_no_address_is_none_not_a_crash(
        signed: SignedEligibility, signature: str) -> None:
    """A forged or damaged attestation file (the wallet app takes them from anyone) is
    refused as unsigned, not an exception from deep in eth_account."""
    assert recover_signer(signed.model_copy(update={"signature": signature})) is None
