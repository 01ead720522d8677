"""The restriction codes and the generated Vyper module `restriction_codes.vy`."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jurisdictions import codes
from jurisdictions.codes import (
    MAX_MESSAGE_LENGTH,
    MESSAGES,
    UNKNOWN_MESSAGE,
    VYPER_MODULE,
    HolderPolicyCode,
    Restriction,
    TitleStatus,
)

CONSTANT = re.compile(r"^(\w+): constant\(uint8\) = (\d+)$", re.MULTILINE)
RETURN = re.compile(r'^    if code == (\w+):\n        return "([^"]*)"$', re.MULTILINE)


@pytest.fixture(scope="module")
def module_text() -> str:
    return VYPER_MODULE.read_text()


@pytest.fixture(scope="module")
def constants(module_text: str) -> dict[str, int]:
    found = CONSTANT.findall(module_text)
    names = [name for name, _ in found]
    assert len(names) == len(set(names)), "a constant is defined twice"
    return {name: int(value) for name, value in found}


# --- generated module in sync ------------------------------------------------------------


def test_check_mode_reports_in_sync(capsys: pytest.CaptureFixture[str]) -> None:
    assert codes.main(["--check"]) == 0
    assert "matches" in capsys.readouterr().out


def test_vyper_module_equals_file(module_text: str) -> None:
    assert codes.vyper_module() == module_text


def test_check_mode_does_not_write(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    stale = tmp_path / "restriction_codes.vy"
    stale.write_text("# stale\n")
    monkeypatch.setattr(codes, "VYPER_MODULE", stale)
    assert codes.main(["--check"]) == 1
    assert stale.read_text() == "# stale\n"
    # Without --check it rewrites the (patched) file, and a second run is a no-op.
    assert codes.main([]) == 0
    assert stale.read_text() == codes.vyper_module()
    assert codes.main(["--check"]) == 0


def test_module_message_function_returns_every_message(module_text: str) -> None:
    returns = dict(RETURN.findall(module_text))
    assert returns == {r.name: MESSAGES[r] for r in Restriction}
    assert f'    return "{UNKNOWN_MESSAGE}"' in module_text
    assert f"-> String[{MAX_MESSAGE_LENGTH}]:" in module_text


# --- codes and messages ---------------------------------------------------------------------


def test_codes_are_contiguous_from_zero() -> None:
    assert [int(r) for r in Restriction] == list(range(14))
    assert Restriction.SUCCESS == 0
    assert Restriction.AMOUNT_FROZEN == 12
    # Added after wallets knew 0..12: numbered last so that none of those moved.
    assert Restriction.RECEIVER_REGION_UNKNOWN == 13


@pytest.mark.parametrize("restriction", list(Restriction), ids=lambda r: r.name)
def test_every_restriction_has_a_message(restriction: Restriction) -> None:
    text = MESSAGES[restriction]
    assert text.strip() == text and text
    assert codes.message(int(restriction)) == text
    assert len(text.encode()) <= MAX_MESSAGE_LENGTH
    assert '"' not in text and "\\" not in text


def test_messages_are_distinct() -> None:
    assert len(set(MESSAGES.values())) == len(Restriction) == len(MESSAGES)
    assert UNKNOWN_MESSAGE not in MESSAGES.values()


@pytest.mark.parametrize("code", [14, 99, 255, 256, -1, 2**256])
def test_message_of_unknown_code(code: int) -> None:
    assert codes.message(code) == UNKNOWN_MESSAGE == "Unknown restriction code."


@given(st.integers())
def test_message_total(code: int) -> None:
    expected = MESSAGES[Restriction(code)] if 0 <= code <= 13 else UNKNOWN_MESSAGE
    assert codes.message(code) == expected


# --- enum values match the generated constants -------------------------------------------------


def test_title_status_matches_module(constants: dict[str, int]) -> None:
    module = {k[len("TITLE_"):]: v for k, v in constants.items() if k.startswith("TITLE_")}
    assert module == {m.name: int(m) for m in TitleStatus}
    assert module == {"UNLISTED": 0, "RECOGNISED": 1, "NOT_RECOGNISED": 2, "UNCLEAR": 3,
                      "SANCTIONED": 4}


def test_holder_policy_matches_module(constants: dict[str, int]) -> None:
    module = {k[len("POLICY_"):]: v for k, v in constants.items() if k.startswith("POLICY_")}
    assert module == {m.name: int(m) for m in HolderPolicyCode}
    assert module == {"UNLISTED": 0, "ALLOWED": 1, "ACCREDITED_ONLY": 2, "BLOCKED": 3}


def test_restrictions_match_module(constants: dict[str, int]) -> None:
    module = {
        k: v for k, v in constants.items() if not k.startswith(("TITLE_", "POLICY_"))
    }
    assert module == {r.name: int(r) for r in Restriction}


def test_module_max_message_length(module_text: str) -> None:
    assert f"MAX_MESSAGE_LENGTH: constant(uint256) = {MAX_MESSAGE_LENGTH}" in module_text
