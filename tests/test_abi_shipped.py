"""The ABIs the project ships (`gpushares/abi/*.json`) are the compiled contracts'."""

from __future__ import annotations

from gpushares import abi


def test_shipped_abis_match_the_contracts():
    for name in abi.NAMES:
        assert abi.load(name) == abi.compile_abi(name), (
            f"gpushares/abi/{name}.json is stale: run `python -m gpushares.abi`"
        )


def test_check_mode_agrees():
    assert abi.main(["--check"]) == 0
