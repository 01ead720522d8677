"""The ABIs the oracle node ships (`oracle/abi/*.json`) are the compiled contracts'."""

from __future__ import annotations

from oracle import abi


def test_shipped_abis_match_the_contracts():
    for name in abi.NAMES:
        assert abi.load(name) == abi.compile_abi(name), (
            f"oracle/abi/{name}.json is stale: run `python -m oracle.abi`"
        )


def test_check_mode_agrees():
    assert abi.main(["--check"]) == 0
