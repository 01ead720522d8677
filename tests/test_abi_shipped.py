"""The ABIs the project ships (`gpushares/abi/*.json`) are the compiled contracts'."""

from __future__ import annotations

import pytest

from gpushares import abi


def test_shipped_abis_match_the_contracts(capsys: pytest.CaptureFixture[str]) -> None:
    # `python -m gpushares.abi --check`, which names every stale ABI.
    assert abi.main(["--check"]) == 0, capsys.readouterr().err


def test_an_unknown_contract_is_refused_with_the_known_names() -> None:
    with pytest.raises(ValueError, match="known: ComplianceRegistry"):
        abi.load("NoSuchContract")
