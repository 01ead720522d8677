"""oracle.entries: the byte format of a log entry, and parse_leaf's refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from oracle import attest
from oracle.entries import (
    ENTRY_FORMAT_VERSION,
    EntryFormatError,
    ReportEntry,
    SignerSetEntry,
    parse_leaf,
)
from tests.oracle import factories as f


def signer_set_entry(index: int = 0) -> SignerSetEntry:
    return SignerSetEntry(index=index, domain=f.DOMAIN, config_version=1,
                          signers=f.signer_addresses(), threshold=3)


def report_entry(index: int = 1, report: Any = None) -> ReportEntry:
    return ReportEntry(index=index, signed=attest.cosign(report or f.price_report(), f.DOMAIN,
                                                         f.quorum()))


def refused(data: Any, **dumps: Any) -> str:
    raw = (json.dumps(data, **dumps).encode() if not isinstance(data, bytes) else data)
    with pytest.raises(EntryFormatError) as exc:
        parse_leaf(raw)
    return str(exc.value)


NOT_CANONICAL = "the leaf is not in canonical form (re-encoding it differs)"


# --------------------------------------------------------------------- round trips


def test_signer_set_leaf_format_and_round_trip() -> None:
    entry = signer_set_entry(4)
    leaf = entry.leaf()
    addrs = ",".join(f'"{a}"' for a in f.signer_addresses())
    assert leaf == (
        f'{{"chainId":31337,"configVersion":1,"hub":"{f.HUB}","index":4,"kind":"signer_set",'
        f'"signers":[{addrs}],"threshold":3,"v":1}}'
    ).encode()
    parsed = parse_leaf(leaf)
    assert parsed == entry and isinstance(parsed, SignerSetEntry)
    assert parsed.leaf() == leaf


@pytest.mark.parametrize("report", [f.price_report(), f.utilisation_report()],
                         ids=["price", "utilisation"])
def test_report_leaf_format_and_round_trip(report: Any) -> None:
    entry = report_entry(7, report)
    leaf = entry.leaf()
    data = json.loads(leaf)
    assert list(data) == sorted(data)  # sorted keys...
    assert b" " not in leaf and b"\n" not in leaf  # ...no whitespace
    assert data == {
        "v": ENTRY_FORMAT_VERSION,
        "index": 7,
        "kind": report.KIND,
        "chainId": 31337,
        "hub": f.HUB,
        "report": report.canonical(),
        "signatures": entry.signed.signatures,
        "signers": entry.signed.signers,
    }
    assert attest.canonical_json(data) == leaf
    parsed = parse_leaf(leaf)
    assert isinstance(parsed, ReportEntry)
    assert parsed == entry and parsed.kind == report.KIND
    assert parsed.signed.report == report and type(parsed.signed.report) is type(report)
    assert parsed.leaf() == leaf


hex32 = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
signature = st.binary(min_size=65, max_size=65).map(lambda b: "0x" + b.hex())
address = st.binary(min_size=20, max_size=20).map(to_checksum_address)


@given(
    index=st.integers(0, 2**70),
    value=st.integers(-(2**255), 2**255 - 1),
    sizes=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
    hashes=st.tuples(hex32, hex32, hex32),
    sigs=st.lists(signature, max_size=4),
    signers=st.lists(address, max_size=4),
    chain_id=st.integers(1, 2**64),
)
def test_report_leaf_round_trip_property(index, value, sizes, hashes, sigs, signers,
                                         chain_id) -> None:
    """parse_leaf(leaf) gives back the entry for any well-typed report (signatures are
    checked by the verifier, not the parser)."""
    report = f.price_report(value=value, observed_at=sizes[0], log_size=sizes[1],
                            feed_id=hashes[0], inputs_hash=hashes[1], log_root=hashes[2])
    entry = ReportEntry(index=index, signed=attest.SignedReport(
        kind="price", domain=attest.Domain(chain_id=chain_id, hub=f.HUB), report=report,
        signatures=sigs, signers=signers))
    assert parse_leaf(entry.leaf()) == entry


# ------------------------------------------------------------ non-canonical bytes


def test_refuses_whitespace() -> None:
    data = json.loads(report_entry().leaf())
    assert refused(data, sort_keys=True) == NOT_CANONICAL  # ", " and ": "
    assert refused(data, sort_keys=True, indent=1) == NOT_CANONICAL
    leaf = report_entry().leaf()
    for raw in (b" " + leaf, leaf + b"\n", leaf.replace(b'"v":1', b'"v": 1')):
        assert refused(raw) == NOT_CANONICAL


def test_refuses_reordered_keys() -> None:
    data = json.loads(report_entry().leaf())
    unsorted = {k: data[k] for k in reversed(list(data))}
    assert refused(unsorted, separators=(",", ":")) == NOT_CANONICAL
    # ...also inside the report
    data["report"] = {k: data["report"][k] for k in reversed(list(data["report"]))}
    assert refused(data, separators=(",", ":")) == NOT_CANONICAL
    signer_set = json.loads(signer_set_entry().leaf())
    assert refused(dict(reversed(signer_set.items())), separators=(",", ":")) == NOT_CANONICAL


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["report"].update(value=str(d["report"]["value"])),  # int as string
        lambda d: d["report"].update(value=float(d["report"]["value"])),  # int as float
        lambda d: d.update(index=True),  # bool for 1
        lambda d: d.update(v=True),  # bool for 1
        lambda d: d.update(hub=d["hub"].lower()),  # address not checksummed
        lambda d: d["signatures"].__setitem__(0, d["signatures"][0].upper().replace("0X", "0x")),
        lambda d: d["report"].update(feedId=d["report"]["feedId"].upper().replace("0X", "0x")),
    ],
    ids=["int-as-string", "int-as-float", "bool-index", "bool-version", "lowercase-hub",
         "uppercase-signature", "uppercase-hex"],
)
def test_refuses_other_spellings_of_the_same_entry(mutate) -> None:
    data = json.loads(report_entry(1).leaf())
    mutate(data)
    assert refused(data, sort_keys=True, separators=(",", ":")) == NOT_CANONICAL


def test_refuses_escaped_and_duplicate_keys() -> None:
    leaf = report_entry().leaf()
    assert refused(leaf.replace(b'"kind":"price"', b'"kind":"pric\\u0065"')) == NOT_CANONICAL
    assert refused(leaf.replace(b'"v":1', b'"index":9,"v":1')) == NOT_CANONICAL  # dup key


# ---------------------------------------------------------------- bad content


def test_refuses_unknown_version() -> None:
    for version, shown in ((2, "2"), (0, "0"), ("1", "'1'"), (None, "None")):
        data = json.loads(report_entry().leaf())
        data["v"] = version
        assert refused(data) == f"unknown entry format version {shown}"
    data = json.loads(report_entry().leaf())
    del data["v"]
    assert refused(data) == "unknown entry format version None"


@pytest.mark.parametrize("kind", ["bogus", "PRICE", None, 1])
def test_refuses_unknown_kind(kind) -> None:
    data = json.loads(report_entry().leaf())
    data["kind"] = kind
    assert refused(data) == f"unknown entry kind {kind!r}"


def test_refuses_a_report_under_the_other_kind() -> None:
    data = json.loads(report_entry().leaf())
    data["kind"] = "utilisation"
    message = refused(data)
    assert message.startswith("UtilisationReport fields differ: missing ['gpuCount', ")
    assert "unexpected ['confidence', 'feedId', " in message


def test_refuses_not_json() -> None:
    assert refused(b"\xff\xfe").startswith("not UTF-8 JSON: ")
    assert refused(b'{"v":1').startswith("not UTF-8 JSON: ")
    assert refused(b"[1]") == "an entry is a JSON object"
    assert refused(b'"x"') == "an entry is a JSON object"


@pytest.mark.parametrize("field", ["signatures", "signers", "report", "index"])
def test_refuses_a_missing_report_field(field: str) -> None:
    data = json.loads(report_entry().leaf())
    del data[field]
    assert refused(data) == f"fields differ: missing ['{field}'], unexpected []"


@pytest.mark.parametrize("field", ["chainId", "hub"])
def test_refuses_a_missing_domain_field(field: str) -> None:
    data = json.loads(report_entry().leaf())
    del data[field]
    assert refused(data) == f"missing or mistyped field: '{field}'"


@pytest.mark.parametrize("field", ["configVersion", "signers", "threshold"])
def test_refuses_a_missing_signer_set_field(field: str) -> None:
    data = json.loads(signer_set_entry().leaf())
    del data[field]
    assert refused(data) == f"fields differ: missing ['{field}'], unexpected []"


def test_refuses_extra_fields() -> None:
    data = json.loads(report_entry().leaf())
    data["note"] = "hi"
    assert refused(data) == "fields differ: missing [], unexpected ['note']"
    data = json.loads(signer_set_entry().leaf())
    data["report"] = {}
    assert refused(data) == "fields differ: missing [], unexpected ['report']"
    # a signer set entry carries no signatures
    data = json.loads(signer_set_entry().leaf())
    data["signatures"] = []
    assert refused(data) == "fields differ: missing [], unexpected ['signatures']"


def test_refuses_missing_and_extra_report_fields() -> None:
    data = json.loads(report_entry().leaf())
    del data["report"]["logRoot"]
    # (the message is currently repeated in parentheses: _first_error of an
    # AttestationError is its own text)
    assert refused(data).startswith(
        "PriceReport fields differ: missing ['logRoot'], unexpected []"
    )
    data = json.loads(report_entry().leaf())
    data["report"]["logroot"] = data["report"].pop("logRoot")
    assert refused(data).startswith(
        "PriceReport fields differ: missing ['logRoot'], unexpected ['logroot']"
    )


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (["report", "value"], 2**255, "value: Input should be less than"),
        (["report", "logSize"], -1, "log_size: Input should be greater than or equal to 0"),
        (["report", "inputsHash"], "0x12", "inputs_hash: Value error, expected 0x followed by"),
        (["signatures"], ["0x00"], "signatures.0: Value error, a signature is 0x followed by"),
        (["signers"], ["0x" + "1" * 40 + "ff"], "signers.0: Value error, not a 20-byte"),
        (["index"], -1, "index: Input should be greater than or equal to 0"),
        (["chainId"], 0, "chain_id: Input should be greater than or equal to 1"),
    ],
)
def test_refuses_out_of_range_report_fields(where: list[str], value: Any, message: str) -> None:
    data = json.loads(report_entry().leaf())
    target = data
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    text = refused(data)
    assert message in text, text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("threshold", 0, "threshold: Input should be greater than or equal to 1"),
        ("threshold", 32, "threshold: Input should be less than or equal to 31"),
        ("configVersion", 0, "config_version: Input should be greater than or equal to 1"),
        ("signers", ["0xnope"], "signers.0: Value error, not a 20-byte"),
    ],
)
def test_refuses_out_of_range_signer_set_fields(field: str, value: Any, message: str) -> None:
    data = json.loads(signer_set_entry().leaf())
    data[field] = value
    text = refused(data)
    assert message in text, text
