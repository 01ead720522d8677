"""Canonical JSON: the byte forms a log entry's leaf is written in (see `oracle.entries`).

- `jcs`: RFC 8785, the JSON Canonicalization Scheme (JCS), the form of entry format
  version 2: object members sorted by the UTF-16 code units of their names, no
  whitespace, strings with only the escapes RFC 8785 §3.2.2.2 requires (`\\"`, `\\\\`,
  `\\b \\f \\n \\r \\t`, other controls as lowercase `\\u00xx`), numbers as ECMAScript
  writes them, UTF-8. JCS numbers are IEEE 754 doubles, so an integer is only exact
  within the I-JSON range ±(2**53 - 1) (`MAX_SAFE_INTEGER`): `jcs` refuses one beyond
  it; a format that needs wider integers writes them as decimal strings (entries do).
  Encoding is the `rfc8785` package's; for plain data (no floats, integers in range,
  ASCII member names: every log entry) the same bytes come from the standard library's
  C encoder, several times faster, which `tests/oracle/test_canonical.py` checks
  against `rfc8785` and an independent implementation.
- `legacy_v1`: the form of entry format version 1, kept byte for byte so version 1
  leaves verify forever: Python's `json.dumps` with sorted keys (code point order), no
  whitespace, non-ASCII as UTF-8, integers of any size as JSON numbers. For the
  entries' content (ASCII names, hex strings, integers within the I-JSON range) it is
  the same bytes as JCS; it differs for wider integers (JCS has none), floats (v1 has
  none) and names beyond U+FFFF (sorted by code point, not UTF-16).
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

__all__ = ["MAX_SAFE_INTEGER", "CanonicalJSONError", "jcs", "legacy_v1"]

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer an IEEE 754 double holds exactly, and every smaller one (I-JSON,
RFC 7493 §2.2); JCS numbers are doubles."""

_PLAIN = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode


class CanonicalJSONError(ValueError):
    """A value with no canonical form: an integer beyond the I-JSON range, NaN or an
    infinity, a member name that is not a string, a lone surrogate, an unknown type."""


def jcs(value: Any) -> bytes:
    """The RFC 8785 (JCS) bytes of `value` (dicts, lists or tuples, str, int, float,
    bool, None); CanonicalJSONError for what JCS cannot represent."""
    if _plain(value):
        try:
            return _PLAIN(value).encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate
            raise CanonicalJSONError(f"not valid Unicode: {exc}") from exc
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalJSONError(str(exc)) from exc


def legacy_v1(value: Any) -> bytes:
    """Entry format version 1's canonical JSON (frozen: never change these bytes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def _plain(value: Any) -> bool:
    """Whether the standard encoder writes `value` exactly as JCS does: only exact
    dicts, lists, tuples, strings, bools, None and integers within the I-JSON range,
    and ASCII member names (whose code point order is their UTF-16 order). Floats,
    wider integers, subclasses and non-ASCII names go the `rfc8785` way."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii() or not _plain(item):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain(item) for item in value)
    return False
