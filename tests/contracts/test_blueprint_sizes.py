"""Every contract deployed from an ERC-5202 blueprint must fit EIP-170 as a blueprint:
the blueprint's code is the contract's initcode behind a 3-byte preamble, and a chain
refuses to store more than 24,576 bytes. LendingPool and PerpMarket sit close to the
limit (docs/lending.md "Code size", docs/ARCHITECTURE.md), so a change that pushes one
over fails here, not at `ape run deploy` on a fresh chain."""

from __future__ import annotations

import pytest

from tests.contracts import deployers

EIP170_LIMIT = 24_576
ERC5202_PREAMBLE = 3


@pytest.mark.parametrize("name", ["LENDING_POOL", "PERP_MARKET", "SHARE_TOKEN", "FEED_ADAPTER",
                                  "SUBSCRIPTION_VAULT"])
def test_blueprint_fits_eip170(name):
    deployer = getattr(deployers, name)
    initcode = deployer.compiler_data.bytecode
    assert len(initcode) + ERC5202_PREAMBLE <= EIP170_LIMIT, (
        f"{name}: initcode {len(initcode)} bytes + preamble exceeds {EIP170_LIMIT}")
