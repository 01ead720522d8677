"""The client layer in-process: the real suite deployed by the suite builder on a
titanoboa chain (`BoaChain`), the client's functions called as the scripts and the web
app call them, and their transactions sent by titanoboa addresses."""

from __future__ import annotations

from collections.abc import Iterator

import boa
import pytest

from gpushares import timeline
from gpushares.client.boa_chain import BoaChain
from gpushares.client.context import Client
from gpushares.client.suite import SuiteOptions, deploy_suite

DEPLOYER = boa.env.generate_address("client-deployer")
OPERATOR = boa.env.generate_address("client-operator")
KYC = boa.env.generate_address("client-kyc")
ALICE = boa.env.generate_address("client-alice")
BOB = boa.env.generate_address("client-bob")
STRANGER = boa.env.generate_address("client-stranger")


@pytest.fixture(scope="module")
def chain() -> BoaChain:
    boa.env.timestamp = max(boa.env.timestamp, timeline.genesis())
    return BoaChain()


@pytest.fixture(scope="module")
def client(chain: BoaChain) -> Client:
    """The suite as `ape run deploy` deploys it: DEPLOYER is every admin, OPERATOR an SPV
    operator (funded with the mock stablecoin), KYC a KYC provider."""
    deployed = deploy_suite(chain, DEPLOYER, SuiteOptions(operators=(OPERATOR,),
                                                          kyc_providers=(KYC,)))
    return Client(chain, deployed)


@pytest.fixture(autouse=True)
def _isolate() -> Iterator[None]:
    """Each test starts from the module's state and leaves nothing behind."""
    with boa.env.anchor():
        yield
