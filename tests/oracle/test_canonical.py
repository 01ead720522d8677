"""oracle.canonical: RFC 8785 (JCS), checked against an independent implementation.

`reference_jcs` below is written from the RFC alone (it shares no code with the
`rfc8785` package or with `canonical.jcs`'s fast path): member names sorted by their
UTF-16 code units computed by hand, strings escaped per §3.2.2.2, numbers formatted by
ECMAScript's Number::toString (ECMA-262 §7.1.12.1) from the shortest round-trip
digits. Every value is encoded three ways (`canonical.jcs`, the `rfc8785` package, the
reference) and must give the same bytes; where Node.js is installed, its
`JSON.stringify` (which RFC 8785 is defined by) is a fourth.

Test vectors: RFC 8785 §3.2.2 (the "numbers/string/literals" example), §3.2.3 (sorting),
Appendix B (numbers; the values were also checked against Node's JSON.stringify), and the
RFC's test data (github.com/cyberphone/json-canonicalization testdata, Apache-2.0).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import struct
import subprocess
from decimal import Decimal
from typing import Any

import pytest
import rfc8785
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle import attest, canonical
from oracle.entries import ReportEntry, SignerSetEntry
from tests.budgets import budget
from tests.oracle import factories as f

# ---------------------------------------------------------------- the reference


class NotCanonical(ValueError):
    pass


def reference_jcs(value: Any) -> bytes:
    return _ref(value).encode("utf-8")


def _ref(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if abs(value) > 2**53 - 1:
            raise NotCanonical("an integer a double cannot hold exactly")
        return _number(float(value))
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_ref(v) for v in value) + "]"
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise NotCanonical("a member name that is not a string")
        names = sorted(value, key=_utf16_units)
        return "{" + ",".join(_string(k) + ":" + _ref(value[k]) for k in names) + "}"
    raise NotCanonical(f"no JSON type for {type(value)}")


def _utf16_units(text: str) -> list[int]:
    units: list[int] = []
    for char in text:
        point = ord(char)
        if point < 0x10000:
            units.append(point)
        else:
            point -= 0x10000
            units += [0xD800 + (point >> 10), 0xDC00 + (point & 0x3FF)]
    return units


_SHORT_ESCAPES = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r",
                  0x22: '\\"', 0x5C: "\\\\"}


def _string(text: str) -> str:
    out = ['"']
    for char in text:
        point = ord(char)
        if 0xD800 <= point <= 0xDFFF:
            raise NotCanonical("a lone surrogate")
        if point in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[point])
        elif point < 0x20:
            out.append(f"\\u{point:04x}")  # lowercase hex, 4 digits
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _number(x: float) -> str:
    """ECMA-262 Number::toString(x) for a finite double."""
    if math.isnan(x) or math.isinf(x):
        raise NotCanonical("NaN and infinities have no JSON form")
    if x == 0:
        return "0"  # and -0
    if x < 0:
        return "-" + _number(-x)
    # the shortest digits that read back as x (repr), as digits * 10**exponent
    _, digit_tuple, exponent = Decimal(repr(x)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = exponent + k  # x = 0.digits * 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{sign}{abs(e)}"


def all_three(value: Any) -> bytes:
    """canonical.jcs(value), after checking rfc8785 and the reference agree with it."""
    ours = canonical.jcs(value)
    assert rfc8785.dumps(value) == ours
    assert reference_jcs(value) == ours
    return ours


# ---------------------------------------------------------------- RFC vectors


def double(hex_ieee: str) -> float:
    return struct.unpack(">d", bytes.fromhex(hex_ieee))[0]


APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("hex_ieee", "expected"), APPENDIX_B,
                         ids=[h for h, _ in APPENDIX_B])
def test_appendix_b_numbers(hex_ieee: str, expected: str) -> None:
    assert all_three(double(hex_ieee)) == expected.encode()


@pytest.mark.parametrize("hex_ieee", ["7fffffffffffffff", "7ff0000000000000",
                                      "fff0000000000000"], ids=["NaN", "inf", "-inf"])
def test_appendix_b_numbers_without_a_form(hex_ieee: str) -> None:
    with pytest.raises(canonical.CanonicalJSONError):
        canonical.jcs(double(hex_ieee))
    with pytest.raises(NotCanonical):
        reference_jcs(double(hex_ieee))


# (input JSON text, its canonical bytes): RFC 8785 §3.2.2 ("values") and §3.2.3
# ("weird", the sorting example with a control, a BMP and a non-BMP name), and the RFC's
# other test data files
RFC_EXAMPLES = {
    "arrays": ('[\n  56,\n  {\n    "d": true,\n    "10": null,\n    "1": [ ]\n  }\n]\n',
               b'[56,{"1":[],"10":null,"d":true}]'),
    "french": ('{\n  "peach": "This sorting order",\n  "p\u00e9ch\u00e9": "is wrong according '
               'to French",\n  "p\u00eache": "but canonicalization MUST",\n  "sin":   "ignore '
               'locale"\n}\n',
               b'{"peach":"This sorting order","p\xc3\xa9ch\xc3\xa9":"is wrong according to '
               b'French","p\xc3\xaache":"but canonicalization MUST","sin":"ignore locale"}'),
    "structures": ('{\n  "1": {"f": {"f": "hi","F": 5} ,"\\n": 56.0},\n  "10": { },\n  "": '
                   '"empty",\n  "a": { },\n  "111": [ {"e": "yes","E": "no" } ],\n  "A": { }\n}',
                   b'{"":"empty","1":{"\\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{"E":"no",'
                   b'"e":"yes"}],"A":{},"a":{}}'),
    "unicode": ('{\n  "Unnormalized Unicode":"A\\u030a"\n}\n',
                b'{"Unnormalized Unicode":"A\xcc\x8a"}'),
    "values": ('{\n  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, '
               '0.000000000000000000000000001],\n  "string": "\\u20ac$\\u000F\\u000aA\'\\u0042'
               '\\u0022\\u005c\\\\\\"\\/",\n  "literals": [null, true, false]\n}',
               b'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,'
               b'1e-27],"string":"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'),
    "weird": ('{\n  "\\u20ac": "Euro Sign",\n  "\\r": "Carriage Return",\n  "\\u000a": '
              '"Newline",\n  "1": "One",\n  "\\u0080": "Control\\u007f",\n  "\\ud83d\\ude02": '
              '"Smiley",\n  "\\u00f6": "Latin Small Letter O With Diaeresis",\n  "\\ufb33": '
              '"Hebrew Letter Dalet With Dagesh",\n  "</script>": "Browser Challenge"\n}\n',
              b'{"\\n":"Newline","\\r":"Carriage Return","1":"One","</script>":"Browser '
              b'Challenge","\xc2\x80":"Control\x7f","\xc3\xb6":"Latin Small Letter O With '
              b'Diaeresis","\xe2\x82\xac":"Euro Sign","\xf0\x9f\x98\x82":"Smiley",'
              b'"\xef\xac\xb3":"Hebrew Letter Dalet With Dagesh"}'),
}


@pytest.mark.parametrize("name", sorted(RFC_EXAMPLES))
def test_rfc_examples(name: str) -> None:
    text, expected = RFC_EXAMPLES[name]
    assert all_three(json.loads(text)) == expected


def test_names_sort_by_utf16_code_units_not_code_points() -> None:
    """U+1F602 is one code point above U+FB33 but its UTF-16 form starts with the
    surrogate 0xD83D, below 0xFB33: JCS sorts it first; Python's sort (and entry format
    version 1) would not."""
    value = {"\ufb33": 1, "\U0001f602": 2}
    assert all_three(value) == '{"\U0001f602":2,"\ufb33":1}'.encode()
    assert canonical.legacy_v1(value) == '{"\ufb33":1,"\U0001f602":2}'.encode()


@pytest.mark.parametrize(
    "value",
    [2**53, -(2**53), 10**20, float("nan"), float("inf"), {1: "a"}, {"a": "\ud800"},
     "\udc00x", {"a": {1, 2}}, b"bytes"],
    ids=["2**53", "-2**53", "1e20-int", "nan", "inf", "int-name", "surrogate-value",
         "surrogate", "set", "bytes"],
)
def test_what_has_no_canonical_form_is_refused(value: Any) -> None:
    with pytest.raises(canonical.CanonicalJSONError):
        canonical.jcs(value)
    with pytest.raises(NotCanonical):
        reference_jcs(value)


def test_the_i_json_bounds_are_accepted() -> None:
    edge = canonical.MAX_SAFE_INTEGER
    assert all_three([edge, -edge, 0, -1]) == b"[9007199254740991,-9007199254740991,0,-1]"


# ---------------------------------------------------------------- generated values

# Names and strings that exercise the rules: controls, quotes, backslashes, DEL, Latin-1,
# the BMP above the surrogates (sorts after non-BMP in UTF-16), non-BMP, combining marks.
_TRICKY = st.sampled_from(list("aAzZ09 _\"\\/\x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f\x80\u00e9"
                               "\u00f6\u0300\u20ac\u2028\ud7ff\ue000\ufb33\ufeff\uffff"
                               "\U00010000\U0001f600\U0001f602\U0010ffff"))
_TEXT = st.text(_TRICKY | st.characters(exclude_categories=["Cs"]), max_size=12)
_NUMBER = st.one_of(
    st.integers(-canonical.MAX_SAFE_INTEGER, canonical.MAX_SAFE_INTEGER),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e-5, max_value=1e-5),
    st.floats(allow_nan=False, allow_infinity=False, min_value=1e15, max_value=1e23),
    st.integers(0, 2**64 - 1).map(lambda bits: struct.unpack(">d", bits.to_bytes(8, "big"))[0])
    .filter(math.isfinite),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | _NUMBER | _TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_TEXT, inner, max_size=6),
    max_leaves=30,
)


@settings(budget("canonical_three_ways"))
@given(JSON_VALUES)
def test_generated_values_agree_three_ways(value: Any) -> None:
    encoded = all_three(value)
    # and canonical JSON read back (its numbers as JCS means them: doubles) and re-encoded
    # is itself
    assert canonical.jcs(json.loads(encoded, parse_int=_as_double)) == encoded


def _as_double(text: str) -> int | float:
    number = int(text)
    return number if abs(number) <= canonical.MAX_SAFE_INTEGER else float(number)


@settings(budget("canonical_rfc8785"))
@given(st.dictionaries(_TEXT, st.integers(0, 9) | _TEXT, min_size=2, max_size=10))
def test_generated_objects_sort_like_utf16(value: dict[str, Any]) -> None:
    encoded = all_three(value)
    decoded = json.loads(encoded, object_pairs_hook=lambda pairs: pairs)
    names = [name for name, _ in decoded]
    assert names == sorted(value, key=lambda k: k.encode("utf-16-be"))


@given(st.integers(canonical.MAX_SAFE_INTEGER + 1, 2**300) | st.integers(
    -(2**300), -canonical.MAX_SAFE_INTEGER - 1))
def test_generated_wide_integers_are_refused(number: int) -> None:
    with pytest.raises(canonical.CanonicalJSONError):
        canonical.jcs({"n": [number]})


# ---------------------------------------------------------------- log entries

hex32 = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
signature = st.binary(min_size=65, max_size=65).map(lambda b: "0x" + b.hex())
address = st.binary(min_size=20, max_size=20).map(to_checksum_address)
uint64 = st.integers(0, 2**64 - 1)
uint256 = st.integers(0, 2**256 - 1)


@st.composite
def entries(draw: st.DrawFn) -> ReportEntry | SignerSetEntry:
    index = draw(st.integers(0, 2**64))
    domain = attest.Domain(chain_id=draw(st.integers(1, 2**64)), hub=draw(address))
    kind = draw(st.sampled_from(["price", "utilisation", "signer_set"]))
    if kind == "signer_set":
        return SignerSetEntry(index=index, domain=domain,
                              config_version=draw(st.integers(1, 2**64 - 1)),
                              signers=draw(st.lists(address, max_size=5)),
                              threshold=draw(st.integers(1, attest.MAX_SIGNERS)))
    common = {"inputs_hash": draw(hex32), "log_size": draw(uint64), "log_root": draw(hex32),
              "config_version": draw(uint64)}
    if kind == "price":
        report: Any = f.price_report(
            feed_id=draw(hex32), value=draw(st.integers(-(2**255), 2**255 - 1)),
            confidence=draw(uint256), observed_at=draw(uint64),
            methodology_version=draw(st.integers(0, 2**32 - 1)), **common)
    else:
        report = f.utilisation_report(
            spv_token=draw(address), period_start=draw(uint64), period_end=draw(uint64),
            gpu_count=draw(st.integers(0, 2**32 - 1)),
            utilisation_bps=draw(st.integers(0, 10_000)), rental_revenue=draw(uint256),
            **common)
    n = draw(st.integers(0, 4))
    return ReportEntry(index=index, signed=attest.SignedReport(
        kind=kind, domain=domain, report=report, signatures=draw(st.lists(
            signature, min_size=n, max_size=n)), signers=draw(st.lists(
                address, min_size=n, max_size=n))))


@settings(budget("canonical_rfc8785"))
@given(entries())
def test_every_new_leaf_is_rfc_8785_by_an_independent_implementation(entry) -> None:
    """A version 2 leaf is exactly what the reference implementation (and rfc8785) make
    of its content; its integers are numbers within the I-JSON range, strings beyond."""
    leaf = entry.leaf()
    data = json.loads(leaf)
    assert data["v"] == 2
    assert reference_jcs(data) == leaf
    assert rfc8785.dumps(data) == leaf


# ---------------------------------------------------------------- Node.js


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.25:
        return {_random_text(rng): _random_value(rng, depth + 1)
                for _ in range(rng.randint(0, 6))}
    if depth < 3 and roll < 0.4:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    if roll < 0.7:
        while True:
            x = struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0]
            if rng.random() < 0.3:  # fewer digits: round numbers, short fractions
                x = float(f"{x:.{rng.randint(1, 17)}g}")
            if math.isfinite(x):
                return x
    if roll < 0.8:
        return rng.randint(-canonical.MAX_SAFE_INTEGER, canonical.MAX_SAFE_INTEGER)
    if roll < 0.95:
        return _random_text(rng)
    return rng.choice([None, True, False])


def _random_text(rng: random.Random) -> str:
    pool = "aZ0 \"\\\x00\x1f\x7f\u00e9\u20ac\ud7ff\ue000\ufb33\uffff\U0001f602\U0010ffff"
    out = []
    for _ in range(rng.randint(0, 8)):
        if rng.random() < 0.6:
            out.append(rng.choice(pool))
        else:
            point = rng.choice([rng.randint(0, 0xD7FF), rng.randint(0xE000, 0x10FFFF)])
            out.append(chr(point))
    return "".join(out)


# JCS as RFC 8785 §3.2 defines it: ECMAScript's JSON.stringify for primitives,
# member names sorted with the default (UTF-16 code unit) sort.
_NODE_JCS = r"""
const canon = (v) => {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return "[" + v.map(canon).join(",") + "]";
  return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canon(v[k]))
    .join(",") + "}";
};
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter((l) => l);
process.stdout.write(lines.map((l) => Buffer.from(canon(JSON.parse(l)), "utf8")
  .toString("hex")).join("\n"));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_node_json_stringify_agrees() -> None:
    """2,000 random values (random doubles by bit pattern, random Unicode names) through
    ECMAScript itself: the definition RFC 8785 builds on."""
    rng = random.Random(8785)
    values = [_random_value(rng) for _ in range(2_000)]
    values += [json.loads(text) for text, _ in RFC_EXAMPLES.values()]
    values += [double(h) for h, _ in APPENDIX_B]
    node_in = "\n".join(json.dumps(v, ensure_ascii=True) for v in values) + "\n"
    done = subprocess.run([shutil.which("node") or "node", "-e", _NODE_JCS], input=node_in,
                          capture_output=True, text=True, timeout=60, check=True)
    expected = [bytes.fromhex(line) for line in done.stdout.split("\n")]
    assert len(expected) == len(values)
    for value, node_bytes in zip(values, expected, strict=True):
        assert canonical.jcs(value) == node_bytes, value
