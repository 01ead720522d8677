"""oracle.attest: EIP-712 report types, signing, recovery, k-of-n checks, canonical JSON."""

from __future__ import annotations

import hashlib
import json

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys import KeyAPI
from eth_utils import keccak, to_checksum_address
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from oracle import attest
from tests.oracle import factories as f

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _with(signature: str, *, r: int | None = None, s: int | None = None,
          v: int | None = None) -> str:
    raw = bytearray(bytes.fromhex(signature[2:]))
    if r is not None:
        raw[:32] = r.to_bytes(32, "big")
    if s is not None:
        raw[32:64] = s.to_bytes(32, "big")
    if v is not None:
        raw[64] = v
    return "0x" + raw.hex()


def _parts(signature: str) -> tuple[int, int, int]:
    raw = bytes.fromhex(signature[2:])
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]


# ---------------------------------------------------------------- sign / recover


@pytest.mark.parametrize("report", [f.price_report(), f.utilisation_report()],
                         ids=["price", "utilisation"])
def test_sign_recover_round_trip(report: attest.PriceReport | attest.UtilisationReport) -> None:
    d = attest.digest(report, f.DOMAIN)
    assert len(d) == 32
    for key in f.signer_keys():
        sig = attest.sign(report, f.DOMAIN, key)
        assert len(sig) == 2 + 130 and sig == sig.lower()
        r, s, v = _parts(sig)
        assert v in (27, 28) and 0 < s <= attest.SECP256K1_HALF_N
        assert attest.recover(d, sig) == f.address(key)
        assert attest.recover(d, bytes.fromhex(sig[2:])) == f.address(key)
    # Another domain (chain or hub) is another digest: the signature does not carry over.
    other = attest.Domain(chain_id=1, hub=f.HUB)
    assert attest.digest(report, other) != d
    sig = attest.sign(report, f.DOMAIN, f.signer_keys()[0])
    assert attest.recover(attest.digest(report, other), sig) != f.address(f.signer_keys()[0])


def test_sign_is_deterministic() -> None:
    key = f.signer_keys()[1]
    assert attest.sign(f.price_report(), f.DOMAIN, key) == attest.sign(
        f.price_report(), f.DOMAIN, "0x" + key.hex()
    )


@pytest.mark.parametrize("v", [0, 1, 26, 29, 255])
def test_recover_refuses_v_other_than_27_28(v: int) -> None:
    d = attest.digest(f.price_report(), f.DOMAIN)
    sig = attest.sign(f.price_report(), f.DOMAIN, f.signer_keys()[0])
    with pytest.raises(attest.AttestationError, match=f"v must be 27 or 28, got {v}$"):
        attest.recover(d, _with(sig, v=v))


def test_recover_refuses_the_malleable_high_s_twin() -> None:
    report = f.price_report()
    d = attest.digest(report, f.DOMAIN)
    key = f.signer_keys()[2]
    sig = attest.sign(report, f.DOMAIN, key)
    r, s, v = _parts(sig)
    twin = _with(sig, s=SECP256K1_N - s, v=55 - v)  # (r, N - s) with the other parity
    # The twin is a valid ECDSA signature by the same key...
    raw_twin = KeyAPI.Signature(vrs=(55 - v - 27, r, SECP256K1_N - s))
    assert raw_twin.recover_public_key_from_msg_hash(d).to_checksum_address() == f.address(key)
    # ...which the hub refuses, and so does recover.
    with pytest.raises(attest.AttestationError, match="lower half order .malleable"):
        attest.recover(d, twin)
    with pytest.raises(attest.AttestationError, match="malleable"):
        attest.recover(d, _with(sig, s=attest.SECP256K1_HALF_N + 1))
    with pytest.raises(attest.AttestationError, match="malleable"):
        attest.recover(d, _with(sig, s=0))
    # The boundary itself is allowed (it recovers some key, not necessarily ours).
    attest.recover(d, _with(sig, s=attest.SECP256K1_HALF_N))


def test_recover_refuses_wrong_length() -> None:
    d = attest.digest(f.price_report(), f.DOMAIN)
    sig = attest.sign(f.price_report(), f.DOMAIN, f.signer_keys()[0])
    for bad in (sig[:-2], sig + "00", "0x", sig[2:], sig[:-1] + "g"):
        with pytest.raises(ValueError, match="65 bytes"):
            attest.recover(d, bad)


@pytest.mark.parametrize(
    "r", [0, SECP256K1_N, 2**256 - 1, 5], ids=["zero", "N", "max", "off-curve"]
)
def test_recover_refuses_an_invalid_r_with_attestation_error(r: int) -> None:
    d = attest.digest(f.price_report(), f.DOMAIN)
    sig = attest.sign(f.price_report(), f.DOMAIN, f.signer_keys()[0])
    with pytest.raises(attest.AttestationError, match="does not recover a key"):
        attest.recover(d, _with(sig, r=r))


# ----------------------------------------------------------- EIP-2098 compact form


def _recover_compact(d: bytes, r: bytes, vs: bytes) -> str:
    """EIP-2098 decoding, done here independently of attest: the top bit of vs is the
    recovery bit, the rest is s."""
    vs_int = int.from_bytes(vs, "big")
    y_parity, s = vs_int >> 255, vs_int & ((1 << 255) - 1)
    sig = KeyAPI.Signature(vrs=(y_parity, int.from_bytes(r, "big"), s))
    return sig.recover_public_key_from_msg_hash(d).to_checksum_address()


def test_compact_signature_round_trip() -> None:
    parities = set()
    for value in range(6):
        report = f.price_report(value=value)
        d = attest.digest(report, f.DOMAIN)
        for key in f.signer_keys():
            sig = attest.sign(report, f.DOMAIN, key)
            r, vs = attest.compact_signature(sig)
            assert len(r) == len(vs) == 32
            assert r == bytes.fromhex(sig[2:66])
            parities.add(vs[0] >> 7)
            assert _recover_compact(d, r, vs) == attest.recover(d, sig) == f.address(key)
            assert attest.compact_signature(bytes.fromhex(sig[2:])) == (r, vs)
    assert parities == {0, 1}, "both recovery bits should occur in 30 signatures"


def test_compact_signature_refuses_bad_v() -> None:
    sig = attest.sign(f.price_report(), f.DOMAIN, f.signer_keys()[0])
    with pytest.raises(attest.AttestationError, match="v must be 27 or 28, got 1"):
        attest.compact_signature(_with(sig, v=1))


def test_signature_structs_are_the_compact_forms() -> None:
    signed = attest.cosign(f.price_report(), f.DOMAIN, f.quorum())
    assert signed.signature_structs() == [attest.compact_signature(s) for s in signed.signatures]


# ------------------------------------------------------------- cosign / k-of-n


def _signed(keys, report=None) -> attest.SignedReport:
    return attest.cosign(report or f.price_report(), f.DOMAIN, keys)


def test_cosign_orders_by_signer_address() -> None:
    keys = list(reversed(f.signer_keys()))
    signed = _signed(keys)
    assert signed.kind == "price"
    assert signed.signers == f.signer_addresses()
    assert signed.recovered_signers() == f.signer_addresses()
    assert attest.check_signatures(signed, f.signer_addresses(), 3) == f.signer_addresses()
    util = _signed(f.quorum(), f.utilisation_report())
    assert util.kind == "utilisation"
    assert attest.check_signatures(util, f.signer_addresses(), 3) == util.signers


def test_cosign_refuses_the_same_key_twice() -> None:
    key = f.signer_keys()[0]
    with pytest.raises(attest.AttestationError, match="same key was given twice"):
        _signed([key, f.signer_keys()[1], key])


def test_check_signatures_accepts_lowercase_signer_set() -> None:
    signed = _signed(f.quorum())
    assert attest.check_signatures(signed, [a.lower() for a in f.signer_addresses()], 3) == (
        signed.signers
    )


def test_check_signatures_refuses_too_few() -> None:
    signed = _signed(f.signer_keys()[:2])
    with pytest.raises(attest.AttestationError, match="^2 signatures, the signer set needs 3$"):
        attest.check_signatures(signed, f.signer_addresses(), 3)
    assert attest.check_signatures(signed, f.signer_addresses(), 2) == signed.signers


def test_check_signatures_refuses_an_unknown_signer() -> None:
    outsider = f.address(f.outsider_key())
    signed = _signed([*f.signer_keys()[:2], f.outsider_key()])
    position = signed.signers.index(outsider)
    with pytest.raises(attest.AttestationError) as exc:
        attest.check_signatures(signed, f.signer_addresses(), 3)
    assert str(exc.value) == (
        f"signature {position} recovers {outsider}, which is not in the signer set of config "
        "version 1"
    )


def test_check_signatures_refuses_a_duplicate_signer() -> None:
    signed = _signed(f.quorum())
    dup = signed.model_copy(update={
        "signatures": [signed.signatures[0], *signed.signatures[:2]],
        "signers": [signed.signers[0], *signed.signers[:2]],
    })
    with pytest.raises(attest.AttestationError) as exc:
        attest.check_signatures(dup, f.signer_addresses(), 3)
    assert str(exc.value) == (
        f"signature 1 ({signed.signers[0]}) is out of order or a duplicate signer"
    )


def test_check_signatures_refuses_unsorted_signatures() -> None:
    signed = _signed(f.quorum())
    unsorted = signed.model_copy(update={
        "signatures": list(reversed(signed.signatures)),
        "signers": list(reversed(signed.signers)),
    })
    with pytest.raises(attest.AttestationError) as exc:
        attest.check_signatures(unsorted, f.signer_addresses(), 3)
    assert str(exc.value) == (
        f"signature 1 ({signed.signers[1]}) is out of order or a duplicate signer"
    )


def test_check_signatures_refuses_an_envelope_signer_list_mismatch() -> None:
    signed = _signed(f.quorum())
    members = f.signer_addresses()
    stranger = next(a for a in members if a not in signed.signers)
    for names in (
        [signed.signers[0], signed.signers[1], stranger],  # names a different member
        signed.signers[:2],  # names fewer
        [*signed.signers, stranger],  # names more
    ):
        lying = signed.model_copy(update={"signers": names})
        with pytest.raises(attest.AttestationError) as exc:
            attest.check_signatures(lying, members, 3)
        assert str(exc.value) == (
            f"the envelope names signers {names} but the signatures recover {signed.signers}"
        )


def test_check_signatures_refuses_a_malleable_twin() -> None:
    signed = _signed(f.quorum())
    r, s, v = _parts(signed.signatures[1])
    twin = _with(signed.signatures[1], s=SECP256K1_N - s, v=55 - v)
    malleable = signed.model_copy(update={
        "signatures": [signed.signatures[0], twin, signed.signatures[2]]
    })
    with pytest.raises(attest.AttestationError, match="malleable"):
        attest.check_signatures(malleable, f.signer_addresses(), 3)


def test_check_signatures_refuses_a_signature_over_another_report() -> None:
    signed = _signed(f.quorum())
    moved = signed.model_copy(update={"report": f.price_report(value=1)})
    with pytest.raises(attest.AttestationError, match="^signature 0 recovers 0x[0-9a-fA-F]{40}, "
                       "which is not in the signer set"):
        attest.check_signatures(moved, f.signer_addresses(), 3)


# ---------------------------------------------------------------------- EIP-712

PRICE_TYPE = (
    "PriceReport(bytes32 feedId,int256 value,uint256 confidence,uint64 observedAt,"
    "uint32 methodologyVersion,bytes32 inputsHash,uint64 logSize,bytes32 logRoot,"
    "uint64 configVersion)"
)
UTILISATION_TYPE = (
    "UtilisationReport(address spvToken,uint64 periodStart,uint64 periodEnd,uint32 gpuCount,"
    "uint16 utilisationBps,uint256 rentalRevenue,bytes32 inputsHash,uint64 logSize,"
    "bytes32 logRoot,uint64 configVersion)"
)


def test_type_strings() -> None:
    assert attest.PRICE_REPORT_TYPE == PRICE_TYPE
    assert attest.UTILISATION_REPORT_TYPE == UTILISATION_TYPE


hex32 = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
addresses = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b))
u64 = st.integers(0, 2**64 - 1)

price_reports = st.builds(
    attest.PriceReport,
    feed_id=hex32,
    value=st.integers(-(2**255), 2**255 - 1),
    confidence=st.integers(0, 2**256 - 1),
    observed_at=u64,
    methodology_version=st.integers(0, 2**32 - 1),
    inputs_hash=hex32,
    log_size=u64,
    log_root=hex32,
    config_version=u64,
)
utilisation_reports = st.builds(
    attest.UtilisationReport,
    spv_token=addresses,
    period_start=u64,
    period_end=u64,
    gpu_count=st.integers(0, 2**32 - 1),
    utilisation_bps=st.integers(0, 10_000),
    rental_revenue=st.integers(0, 2**256 - 1),
    inputs_hash=hex32,
    log_size=u64,
    log_root=hex32,
    config_version=u64,
)
domains = st.builds(attest.Domain, chain_id=st.integers(1, 2**64), hub=addresses)


def _independent_digest(report, domain: attest.Domain) -> bytes:
    """keccak256(0x1901 || domainSeparator || hashStruct(report)), from the type string
    written out above and eth-abi, without attest's helpers."""
    type_string = PRICE_TYPE if isinstance(report, attest.PriceReport) else UTILISATION_TYPE
    fields = [x.split(" ") for x in type_string[type_string.index("(") + 1:-1].split(",")]
    data = report.canonical()
    values = [bytes.fromhex(data[n][2:]) if t == "bytes32" else data[n] for t, n in fields]
    struct_hash = keccak(keccak(text=type_string) + encode([t for t, _ in fields], values))
    separator = keccak(encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [keccak(text="EIP712Domain(string name,string version,uint256 chainId,"
                     "address verifyingContract)"),
         keccak(text="GPU Oracle Hub"), keccak(text="1"), domain.chain_id, domain.hub],
    ))
    return keccak(b"\x19\x01" + separator + struct_hash)


def _wallet_message(report, domain: attest.Domain) -> dict:
    """The eth_signTypedData_v4 payload a wallet would get (bytes32 as hex strings)."""
    type_string = PRICE_TYPE if isinstance(report, attest.PriceReport) else UTILISATION_TYPE
    name = type_string[: type_string.index("(")]
    fields = [x.split(" ") for x in type_string[len(name) + 1:-1].split(",")]
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            name: [{"name": n, "type": t} for t, n in fields],
        },
        "primaryType": name,
        "domain": {"name": "GPU Oracle Hub", "version": "1", "chainId": domain.chain_id,
                   "verifyingContract": domain.hub},
        "message": report.canonical(),
    }


@given(report=st.one_of(price_reports, utilisation_reports), domain=domains)
def test_digest_matches_eth_account_and_an_independent_encoding(report, domain) -> None:
    d = attest.digest(report, domain)
    full = _wallet_message(report, domain)
    signable = encode_typed_data(full_message=full)
    assert signable.header == domain.separator()
    assert d == keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert d == _independent_digest(report, domain)
    assert attest.typed_data(report, domain)["message"] == report.message()


@given(report=st.one_of(price_reports, utilisation_reports))
def test_wallet_signature_verifies_as_a_report_signature(report) -> None:
    """A signature from eth-account's sign_typed_data (what a wallet signs) is the one
    attest.sign makes, and recovers to its signer through attest.recover."""
    key = f.signer_keys()[3]
    wallet = Account.sign_typed_data(key, full_message=_wallet_message(report, f.DOMAIN))
    assert bytes(wallet.message_hash) == attest.digest(report, f.DOMAIN)
    assert "0x" + bytes(wallet.signature).hex() == attest.sign(report, f.DOMAIN, key)
    assert attest.recover(attest.digest(report, f.DOMAIN), bytes(wallet.signature)) == (
        f.address(key)
    )


def test_as_tuple_is_the_struct_argument() -> None:
    report = f.price_report(value=-5)
    t = report.as_tuple()
    assert t[0] == bytes.fromhex(f.FEED[2:]) and t[1] == -5 and t[5] == bytes.fromhex("aa" * 32)
    assert len(t) == len(attest.PRICE_REPORT_FIELDS)
    assert f.utilisation_report().as_tuple()[0] == f.SPV


# --------------------------------------------------------------- canonical JSON


def test_canonical_json_form() -> None:
    value = {"b": [1, {"z": "é", "a": None}], "a": True, "big": 2**300, "neg": -(2**255)}
    assert attest.canonical_json(value) == (
        '{"a":true,"b":[1,{"a":null,"z":"é"}],"big":' + str(2**300)
        + ',"neg":' + str(-(2**255)) + "}"
    ).encode()


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (1.5, r"\$"),
        ({"a": [1, {"b": 0.0}]}, r"\$\.a\[1\]\.b"),
        ({"x": (1, 2, float("nan"))}, r"\$\.x\[2\]"),
        ([{"p": 1e300}], r"\$\[0\]\.p"),
    ],
)
def test_canonical_json_refuses_floats(value, path: str) -> None:
    with pytest.raises(attest.AttestationError, match=f"^{path}: floats are not canonical"):
        attest.canonical_json(value)


@pytest.mark.parametrize("key", [1, None, True, (1, 2)])
def test_canonical_json_refuses_non_string_keys(key) -> None:
    with pytest.raises(attest.AttestationError, match=r"^\$\.a: object keys must be strings"):
        attest.canonical_json({"a": {key: 1}})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=5),
    max_leaves=20,
)


def _reorder(value):
    if isinstance(value, dict):
        return {k: _reorder(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, list):
        return [_reorder(v) for v in value]
    return value


@given(json_values)
def test_canonical_json_is_key_order_independent(value) -> None:
    encoded = attest.canonical_json(value)
    assert attest.canonical_json(_reorder(value)) == encoded
    assert attest.canonical_json(json.loads(encoded)) == encoded


def test_inputs_hash_is_sha256() -> None:
    data = attest.canonical_json({"a": 1})
    assert attest.inputs_hash(data) == "0x" + hashlib.sha256(b'{"a":1}').hexdigest()


# --------------------------------------------------------------- field validation


def _field_error(exc: pytest.ExceptionInfo[ValidationError]) -> tuple[str, str]:
    err = exc.value.errors()[0]
    return ".".join(str(p) for p in err["loc"]), err["msg"]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"observed_at": 2**64}, "observed_at", "less than 18446744073709551616"),
        ({"observed_at": -1}, "observed_at", "greater than or equal to 0"),
        ({"log_size": 2**64}, "log_size", "less than 18446744073709551616"),
        ({"config_version": 2**64}, "config_version", "less than"),
        ({"methodology_version": 2**32}, "methodology_version", "less than 4294967296"),
        ({"value": 2**255}, "value", "less than"),
        ({"value": -(2**255) - 1}, "value", "greater than or equal to"),
        ({"confidence": 2**256}, "confidence", "less than"),
        ({"confidence": -1}, "confidence", "greater than or equal to 0"),
        ({"feed_id": "0x" + "a" * 63}, "feed_id", "expected 0x followed by 64 hex digits"),
        ({"feed_id": "0x" + "g" * 64}, "feed_id", "expected 0x followed by 64 hex digits"),
        ({"inputs_hash": "aa" * 32}, "inputs_hash", "expected 0x followed by 64 hex digits"),
        ({"log_root": "0x" + "a" * 66}, "log_root", "expected 0x followed by 64 hex digits"),
        ({"extra": 1}, "extra", "Extra inputs are not permitted"),
    ],
)
def test_price_report_field_ranges(overrides: dict, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        f.price_report(**overrides)
    loc, msg = _field_error(exc)
    assert loc == field and message in msg


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"utilisation_bps": 10_001}, "utilisation_bps", "less than or equal to 10000"),
        ({"utilisation_bps": -1}, "utilisation_bps", "greater than or equal to 0"),
        ({"gpu_count": 2**32}, "gpu_count", "less than 4294967296"),
        ({"period_end": 2**64}, "period_end", "less than"),
        ({"rental_revenue": 2**256}, "rental_revenue", "less than"),
        ({"spv_token": f.SPV.replace("e7f1725E", "E7F1725e")}, "spv_token",
         "bad address checksum"),
        ({"spv_token": "0x" + "12" * 19}, "spv_token", "not a 20-byte 0x address"),
        ({"spv_token": "12" * 20 + "zz"}, "spv_token", "not a 20-byte 0x address"),
    ],
)
def test_utilisation_report_field_ranges(overrides: dict, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        f.utilisation_report(**overrides)
    loc, msg = _field_error(exc)
    assert loc == field and message in msg


def test_field_boundaries_and_normalisation() -> None:
    top = f.price_report(observed_at=2**64 - 1, value=-(2**255), confidence=2**256 - 1,
                         methodology_version=2**32 - 1, feed_id="0x" + "AB" * 32)
    assert top.feed_id == "0x" + "ab" * 32  # hex is stored lowercase
    assert f.utilisation_report(utilisation_bps=10_000).utilisation_bps == 10_000
    # a lowercase (unchecksummed) address is accepted and stored checksummed
    assert f.utilisation_report(spv_token=f.SPV.lower()).spv_token == f.SPV
    with pytest.raises(ValidationError, match="frozen"):
        top.value = 1  # type: ignore[misc]


def test_domain_validation() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        attest.Domain(chain_id=0, hub=f.HUB)
    with pytest.raises(ValidationError, match="bad address checksum"):
        attest.Domain(chain_id=1, hub=f.HUB.lower().replace("0x5f", "0x5F"))
    assert attest.Domain(chain_id=1, hub=f.HUB.lower()).hub == f.HUB


def test_signed_report_refuses_malformed_signatures() -> None:
    signed = attest.cosign(f.price_report(), f.DOMAIN, f.quorum())
    data = signed.model_dump()
    data["signatures"][0] = data["signatures"][0][:-2]
    with pytest.raises(ValidationError, match="65 bytes"):
        attest.SignedReport(**data)


def test_from_canonical_refuses_missing_and_extra_fields() -> None:
    data = f.price_report().canonical()
    del data["logRoot"]
    data["logroot"] = "0x" + "00" * 32
    with pytest.raises(attest.AttestationError,
                       match=r"PriceReport fields differ: missing \['logRoot'\], "
                             r"unexpected \['logroot'\]"):
        attest.PriceReport.from_canonical(data)
    assert attest.UtilisationReport.from_canonical(f.utilisation_report().canonical()) == (
        f.utilisation_report()
    )
