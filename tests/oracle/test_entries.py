"""oracle.entries: the byte format of a log entry (both entry format versions), and
parse_leaf's refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from oracle import attest, canonical
from oracle.entries import (
    ENTRY_FORMAT_VERSION,
    ENTRY_FORMAT_VERSIONS,
    LEGACY_FORMAT_VERSION,
    EntryFormatError,
    ReportEntry,
    SignerSetEntry,
    parse_leaf,
)
from tests.oracle import factories as f

V1_LOG = Path(__file__).parent / "data" / "log_v1.json"
BOTH = pytest.mark.parametrize("version", ENTRY_FORMAT_VERSIONS, ids=["v1", "v2"])


def signer_set_entry(index: int = 0, version: int = ENTRY_FORMAT_VERSION) -> SignerSetEntry:
    return SignerSetEntry(index=index, domain=f.DOMAIN, config_version=1,
                          signers=f.signer_addresses(), threshold=3, format_version=version)


def report_entry(index: int = 1, report: Any = None,
                 version: int = ENTRY_FORMAT_VERSION) -> ReportEntry:
    return ReportEntry(index=index, signed=attest.cosign(report or f.price_report(), f.DOMAIN,
                                                         f.quorum()),
                       format_version=version)


def refused(data: Any, **dumps: Any) -> str:
    raw = (json.dumps(data, **dumps).encode() if not isinstance(data, bytes) else data)
    with pytest.raises(EntryFormatError) as exc:
        parse_leaf(raw)
    return str(exc.value)


NOT_CANONICAL = "the leaf is not in canonical form (re-encoding it differs)"


# --------------------------------------------------------------------- round trips


def test_new_entries_are_written_in_rfc_8785() -> None:
    assert ENTRY_FORMAT_VERSION == 2 and LEGACY_FORMAT_VERSION == 1
    assert report_entry().format_version == signer_set_entry().format_version == 2
    assert json.loads(report_entry().leaf())["v"] == 2


@BOTH
def test_signer_set_leaf_format_and_round_trip(version: int) -> None:
    entry = signer_set_entry(4, version)
    leaf = entry.leaf()
    addrs = ",".join(f'"{a}"' for a in f.signer_addresses())
    assert leaf == (
        f'{{"chainId":31337,"configVersion":1,"hub":"{f.HUB}","index":4,"kind":"signer_set",'
        f'"signers":[{addrs}],"threshold":3,"v":{version}}}'
    ).encode()
    parsed = parse_leaf(leaf)
    assert parsed == entry and isinstance(parsed, SignerSetEntry)
    assert parsed.format_version == version
    assert parsed.leaf() == leaf


@BOTH
@pytest.mark.parametrize("report", [f.price_report(), f.utilisation_report()],
                         ids=["price", "utilisation"])
def test_report_leaf_format_and_round_trip(report: Any, version: int) -> None:
    entry = report_entry(7, report, version)
    leaf = entry.leaf()
    data = json.loads(leaf)
    assert list(data) == sorted(data)  # sorted keys...
    assert b" " not in leaf and b"\n" not in leaf  # ...no whitespace
    assert data == {
        "v": version,
        "index": 7,
        "kind": report.KIND,
        "chainId": 31337,
        "hub": f.HUB,
        "report": report.canonical(),
        "signatures": entry.signed.signatures,
        "signers": entry.signed.signers,
    }
    if version == 1:
        assert attest.canonical_json(data) == canonical.legacy_v1(data) == leaf
    else:
        assert rfc8785.dumps(data) == leaf  # the rfc8785 package itself, no fast path
    parsed = parse_leaf(leaf)
    assert isinstance(parsed, ReportEntry)
    assert parsed == entry and parsed.kind == report.KIND
    assert parsed.format_version == version
    assert parsed.signed.report == report and type(parsed.signed.report) is type(report)
    assert parsed.leaf() == leaf


def test_the_versions_differ_in_v_and_wide_integers_only() -> None:
    wide = f.utilisation_report(rental_revenue=10**20 + 7)
    old = json.loads(report_entry(7, wide, 1).leaf())
    new = json.loads(report_entry(7, wide, 2).leaf())
    assert old["report"]["rentalRevenue"] == 10**20 + 7  # a JSON number in v1...
    assert new["report"]["rentalRevenue"] == "100000000000000000007"  # ...a string in v2
    assert new["report"]["gpuCount"] == 4 and new["report"]["periodEnd"] == 1_772_150_400
    for data in (old, new):
        del data["v"], data["report"]["rentalRevenue"]
    assert old == new


@pytest.mark.parametrize(
    ("number", "spelled"),
    [(canonical.MAX_SAFE_INTEGER, "9007199254740991"),
     (canonical.MAX_SAFE_INTEGER + 1, '"9007199254740992"'),
     (-canonical.MAX_SAFE_INTEGER, "-9007199254740991"),
     (-canonical.MAX_SAFE_INTEGER - 1, '"-9007199254740992"'),
     (2**255 - 1, f'"{2**255 - 1}"'), (-(2**255), f'"{-(2**255)}"'), (0, "0")],
)
def test_v2_writes_an_integer_beyond_the_i_json_range_as_a_string(number: int,
                                                                   spelled: str) -> None:
    leaf = report_entry(1, f.price_report(value=number)).leaf()
    assert f'"value":{spelled}}},'.encode() in leaf  # the report's last field
    parsed = parse_leaf(leaf)
    assert isinstance(parsed, ReportEntry) and parsed.signed.report.value == number


def test_shipped_v1_leaves_parse_and_re_encode_byte_for_byte() -> None:
    """Leaves written by the code before RFC 8785 (tests/oracle/data/log_v1.json)."""
    rows = json.loads(V1_LOG.read_text())["rows"]
    assert [r["kind"] for r in rows] == ["signer_set", "price", "utilisation"]
    for index, row in enumerate(rows):
        leaf = row["leaf"].encode()
        entry = parse_leaf(leaf)
        assert entry.format_version == 1 and entry.index == index
        assert entry.leaf() == leaf
        # the same entry written today: another leaf (v2), the same content
        today = entry.model_copy(update={"format_version": 2})
        assert today.leaf() != leaf and parse_leaf(today.leaf()) == today
    wide = parse_leaf(rows[2]["leaf"].encode())
    assert isinstance(wide, ReportEntry)
    assert wide.signed.report.rental_revenue == 10**20 + 7  # a JSON number, as v1 wrote it


hex32 = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
signature = st.binary(min_size=65, max_size=65).map(lambda b: "0x" + b.hex())
address = st.binary(min_size=20, max_size=20).map(to_checksum_address)


def _integers(value: Any) -> list[Any]:
    """Every integer-typed value of a decoded leaf (strings of digits included)."""
    if isinstance(value, dict):
        return [i for k, v in value.items() if k not in ("hub", "kind") for i in _integers(v)]
    if isinstance(value, list):
        return []  # signatures and signers: strings
    return [] if isinstance(value, str) and value.startswith("0x") else [value]


@given(
    index=st.integers(0, 2**70),
    value=st.integers(-(2**255), 2**255 - 1),
    sizes=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
    hashes=st.tuples(hex32, hex32, hex32),
    sigs=st.lists(signature, max_size=4),
    signers=st.lists(address, max_size=4),
    chain_id=st.integers(1, 2**64),
    version=st.sampled_from(ENTRY_FORMAT_VERSIONS),
)
def test_report_leaf_round_trip_property(index, value, sizes, hashes, sigs, signers,
                                         chain_id, version) -> None:
    """parse_leaf(leaf) gives back the entry for any well-typed report, in either
    version (signatures are checked by the verifier, not the parser)."""
    report = f.price_report(value=value, observed_at=sizes[0], log_size=sizes[1],
                            feed_id=hashes[0], inputs_hash=hashes[1], log_root=hashes[2])
    entry = ReportEntry(index=index, signed=attest.SignedReport(
        kind="price", domain=attest.Domain(chain_id=chain_id, hub=f.HUB), report=report,
        signatures=sigs, signers=signers), format_version=version)
    leaf = entry.leaf()
    assert parse_leaf(leaf) == entry
    if version == 2:
        assert rfc8785.dumps(json.loads(leaf)) == leaf
        for number in _integers(json.loads(leaf)):
            if isinstance(number, str):  # only beyond the I-JSON range, in one spelling
                assert abs(int(number)) > canonical.MAX_SAFE_INTEGER
                assert number == str(int(number))
            else:
                assert type(number) is int and abs(number) <= canonical.MAX_SAFE_INTEGER


# ------------------------------------------------------------ non-canonical bytes


@BOTH
def test_refuses_whitespace(version: int) -> None:
    data = json.loads(report_entry(version=version).leaf())
    assert refused(data, sort_keys=True) == NOT_CANONICAL  # ", " and ": "
    assert refused(data, sort_keys=True, indent=1) == NOT_CANONICAL
    leaf = report_entry(version=version).leaf()
    v = f'"v":{version}'.encode()
    for raw in (b" " + leaf, leaf + b"\n", leaf.replace(v, v.replace(b":", b": "))):
        assert refused(raw) == NOT_CANONICAL


@BOTH
def test_refuses_reordered_keys(version: int) -> None:
    data = json.loads(report_entry(version=version).leaf())
    unsorted = {k: data[k] for k in reversed(list(data))}
    assert refused(unsorted, separators=(",", ":")) == NOT_CANONICAL
    # ...also inside the report
    data["report"] = {k: data["report"][k] for k in reversed(list(data["report"]))}
    assert refused(data, separators=(",", ":")) == NOT_CANONICAL
    signer_set = json.loads(signer_set_entry(version=version).leaf())
    assert refused(dict(reversed(signer_set.items())), separators=(",", ":")) == NOT_CANONICAL


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["report"].update(value=str(d["report"]["value"])),  # int as string
        lambda d: d["report"].update(value=float(d["report"]["value"])),  # int as float
        lambda d: d.update(index=True),  # bool for 1
        lambda d: d.update(hub=d["hub"].lower()),  # address not checksummed
        lambda d: d["signatures"].__setitem__(0, d["signatures"][0].upper().replace("0X", "0x")),
        lambda d: d["report"].update(feedId=d["report"]["feedId"].upper().replace("0X", "0x")),
    ],
    ids=["int-as-string", "int-as-float", "bool-index", "lowercase-hub",
         "uppercase-signature", "uppercase-hex"],
)
@BOTH
def test_refuses_other_spellings_of_the_same_entry(mutate, version: int) -> None:
    data = json.loads(report_entry(1, version=version).leaf())
    mutate(data)
    assert refused(data, sort_keys=True, separators=(",", ":")) == NOT_CANONICAL


@pytest.mark.parametrize(
    ("version", "spelling"),
    [(1, str), (2, int), (2, lambda n: f"{n:+d}"), (2, lambda n: f"0{n}"),
     (2, lambda n: f"{n}.0")],
    ids=["v1-string", "v2-number", "v2-plus-sign", "v2-leading-zero", "v2-decimal"],
)
def test_refuses_another_spelling_of_a_wide_integer(version: int, spelling) -> None:
    """v1 writes 10**20 + 7 as a number, v2 as its decimal string; no other spelling."""
    data = json.loads(report_entry(2, f.utilisation_report(rental_revenue=10**20 + 7),
                                   version).leaf())
    data["report"]["rentalRevenue"] = spelling(10**20 + 7)
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    assert raw != report_entry(2, f.utilisation_report(rental_revenue=10**20 + 7),
                               version).leaf()
    text = refused(raw)
    assert text == NOT_CANONICAL or "rental_revenue" in text, text


@BOTH
def test_refuses_escaped_and_duplicate_keys(version: int) -> None:
    leaf = report_entry(version=version).leaf()
    v = f'"v":{version}'.encode()
    assert refused(leaf.replace(b'"kind":"price"', b'"kind":"pric\\u0065"')) == NOT_CANONICAL
    assert refused(leaf.replace(v, b'"index":9,' + v)) == NOT_CANONICAL  # dup key


def test_a_leaf_of_one_version_does_not_pass_for_the_other() -> None:
    wide = f.utilisation_report(rental_revenue=10**20 + 7)
    for version, other in ((1, 2), (2, 1)):
        leaf = report_entry(2, wide, version).leaf()
        relabelled = leaf.replace(f'"v":{version}'.encode(), f'"v":{other}'.encode())
        assert refused(relabelled) == NOT_CANONICAL


# ---------------------------------------------------------------- bad content


def test_refuses_unknown_version() -> None:
    reads = " (this build reads versions 1, 2: a newer gpu-oracle may read it)"
    for version, shown in ((3, "3"), (0, "0"), ("1", "'1'"), ("2", "'2'"), (None, "None"),
                           (True, "True"), (2.0, None)):
        data = json.loads(report_entry().leaf())
        data["v"] = version
        if shown is None:  # a float: no entry has one
            assert refused(data) == NOT_CANONICAL
        else:
            assert refused(data) == f"unknown entry format version {shown}{reads}"
    data = json.loads(report_entry().leaf())
    del data["v"]
    assert refused(data) == f"unknown entry format version None{reads}"


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
