"""Fixtures for the in-process (titanoboa) contract tests."""

from __future__ import annotations

from dataclasses import dataclass

import boa
import pytest

from gpushares.client import suite
from tests.contracts import deployers
from tests.contracts.helpers import (
    FAR_FUTURE,
    SHARES_PER_GPU,
    TEST_TABLE,
    US,
    VALID_LEI,
    gpu,
    table_rows,
)


@pytest.fixture(scope="session")
def admin():
    return boa.env.generate_address("factory-admin")


@pytest.fixture(scope="session")
def oracle_admin():
    """Holds the OracleHub's admin roles in the oracle tests."""
    return boa.env.generate_address("oracle-admin")


@pytest.fixture(scope="session")
def operator():
    return boa.env.generate_address("spv-operator")


@pytest.fixture(scope="session")
def alice():
    return boa.env.generate_address("alice")


@pytest.fixture(scope="session")
def bob():
    return boa.env.generate_address("bob")


@pytest.fixture(scope="session")
def stranger():
    return boa.env.generate_address("stranger")


@pytest.fixture(scope="module")
def stablecoin(admin):
    return deployers.MOCK_STABLECOIN.at(suite.deploy_mock_stablecoin(deployers.CHAIN, admin))


@dataclass(frozen=True)
class Blueprint:
    """An ERC-5202 blueprint: only its address is of use (it has no runtime code)."""

    address: str


@pytest.fixture(scope="module")
def blueprint(factory):
    """The share-token blueprint the SPV factory deploys tokens from."""
    return Blueprint(factory.share_token_blueprint())


@pytest.fixture(scope="session")
def compliance_admin():
    return boa.env.generate_address("compliance-admin")


@pytest.fixture(scope="module")
def registry(compliance_admin, operator, alice, bob):
    """A ComplianceRegistry with the TEST table; operator, alice and bob are eligible
    US residents (the stranger has no record)."""
    r = deployers.COMPLIANCE_REGISTRY.at(suite.deploy_registry(deployers.CHAIN,
                                                               compliance_admin))
    with boa.env.prank(compliance_admin):
        r.set_jurisdictions(table_rows(TEST_TABLE))
        for account in (operator, alice, bob):
            r.set_investor(account, US, False, FAR_FUTURE)
    return r


@pytest.fixture(scope="module")
def factory(admin, operator, registry):
    """The SPVFactory (and its share-token blueprint) as the suite builder deploys it,
    `operator` holding OPERATOR_ROLE."""
    _blueprint, address = suite.deploy_spv_factory(deployers.CHAIN, admin, registry.address,
                                                   operators=[operator])
    return deployers.SPV_FACTORY.at(address)


def create_token(factory, operator, income_token, *, lei=VALID_LEI, shares_per_gpu=SHARES_PER_GPU,
                 name="Lone Star H100 Shares", symbol="LSH1"):
    with boa.env.prank(operator):
        _spv_id, address = factory.create_spv(
            "Lone Star GPU Fleet I LLC", 840, lei, b"\x01" * 32, name, symbol,
            shares_per_gpu, income_token,
        )
    return deployers.SHARE_TOKEN.at(address)


@pytest.fixture
def token(factory, operator, stablecoin):
    """A fresh share token (unique LEI per test) with 8 active GPUs."""
    from tests.contracts.helpers import make_lei

    create_token.counter = getattr(create_token, "counter", 0) + 1
    lei = make_lei(f"TEST{create_token.counter:014d}")
    t = create_token(factory, operator, stablecoin.address, lei=lei)
    boa.env.time_travel(seconds=10)
    with boa.env.prank(operator):
        t.add_gpus([gpu(f"SN-{i}") for i in range(8)])
    return t


@pytest.fixture
def funded(stablecoin, admin, operator, token):
    """The operator holds 10M mUSDC and approved the token."""
    with boa.env.prank(admin):
        stablecoin.mint(operator, 10_000_000 * 10**6)
    with boa.env.prank(operator):
        stablecoin.approve(token.address, 2**256 - 1)
    return stablecoin


@pytest.fixture(autouse=True)
def _isolate():
    """Every test starts from the same chain state and leaves nothing behind.

    boa's keccak and SSTORE traces (used only to print storage in error messages) grow
    across tests; a preimage from an earlier test can make boa misread a struct slot
    while formatting a revert (`'StructT' object has no attribute 'key_type'`), so each
    test starts them empty."""
    boa.env.sha3_trace = {}
    boa.env.sstore_trace = {}
    with boa.env.anchor():
        yield
