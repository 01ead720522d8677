"""Builders shared by the jurisdiction tests: in-memory rules and TOML rules files."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from jurisdictions.rules import JurisdictionRules, RuleBook

# Two valid LEIs (18 alphanumeric + 2 digits; the loader checks the shape only).
LEI_A = "5493001KJTIIGC8Y1R12"
LEI_B = "529900T8BM49AURSDO55"
SHA_A = "0x" + "ab" * 32
SHA_B = "0x" + "cd" * 32
AS_OF = date(2026, 1, 15)


def rule_data(alpha2: str = "XA", numeric: int = 900, **fields: Any) -> dict[str, Any]:
    """The dict of a valid `recognised` / `allowed` rule, with `fields` replaced.

    A field set to `None` is dropped (to test missing fields).
    """
    data: dict[str, Any] = {
        "alpha2": alpha2,
        "numeric": numeric,
        "name": f"Testland {alpha2}",
        "title_recognition": "recognised",
        "holder_policy": "allowed",
        "basis": f"Test basis for {alpha2}.",
        "sanctioned": False,
        "citations": [{"reference": f"Test Act of {alpha2}", "url": "https://example.org/act"}],
        "as_of": AS_OF,
        "reviewed_by": "test suite",
    }
    if fields.get("title_recognition") == "unclear" and "unknowns" not in fields:
        data["unknowns"] = "Test unknowns."
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def subdivision_data(code: str, **fields: Any) -> dict[str, Any]:
    """The dict of a valid subdivision (a blocked, sanctioned region), `fields` replaced."""
    data: dict[str, Any] = {
        "code": code,
        "name": f"Region {code}",
        "title_recognition": "recognised",
        "holder_policy": "blocked",
        "sanctioned": True,
        "basis": f"Test embargo of {code}.",
        "citations": [{"reference": f"Embargo Order for {code}",
                       "url": "https://example.org/embargo"}],
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def make_rule(alpha2: str = "XA", numeric: int = 900, **fields: Any) -> JurisdictionRules:
    return JurisdictionRules.model_validate(rule_data(alpha2, numeric, **fields))


def override(spv_lei: str = LEI_A, sha: str = SHA_A) -> dict[str, Any]:
    return {
        "spv_lei": spv_lei,
        "legal_opinion_sha256": sha,
        "opinion_reference": "Opinion of Test LLP",
        "recorded_by": "test operator",
        "as_of": AS_OF,
    }


def book(*rules: JurisdictionRules) -> RuleBook:
    return RuleBook(list(rules))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for the ASCII/escaped text used here
    raise TypeError(f"cannot write {value!r} as a TOML scalar")


def to_toml(data: dict[str, Any]) -> str:
    """A TOML document for a rules dict (scalars, then arrays of tables)."""
    lines: list[str] = []
    tables: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, list | tuple):
            tables.append((key, list(value)))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, items in tables:
        for item in items:
            lines.append("")
            lines.append(f"[[{key}]]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"
