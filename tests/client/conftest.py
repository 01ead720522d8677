"""The client layer in-process: the real suite deployed by the suite builder on a
titanoboa chain (`BoaChain`), the client's functions called as the scripts and the web
app call them, and their transactions sent by titanoboa addresses."""

from __future__ import annotations

from collections.abc import Iterator

import boa
import pytest

from gpushares import timeline
from gpushares.client.boa_chain import BoaChain
from gpushares.client.chain import Plan, Receipt, Refused, Reverted
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


def sent(client: Client, plan: Plan, sender: str) -> list[Receipt]:
    """Send a plan the client does not refuse (raises its refusal otherwise)."""
    return [client.chain.send(tx, sender) for tx in plan.checked().txs]


def refused_alike(client: Client, plan: Plan, sender: str, reason: str | None = None) -> Refused:
    """The plan's refusal, after checking that the chain refuses the same transactions,
    sent anyway in order, with the message the plan names (exactly `reason`, when given,
    which the plan's refusal must also contain); the state is left as it was."""
    assert plan.refusal is not None, "the plan goes through"
    if reason is not None:
        assert reason in plan.refusal.reason, plan.refusal.reason
    with boa.env.anchor():
        for tx in plan.txs:
            try:
                client.chain.send(tx, sender)
            except Reverted as exc:
                assert exc.reason, "the contract gave no reason"
                if reason is not None:
                    assert exc.reason == reason, (exc.reason, reason)
                else:
                    assert plan.refusal.reason.startswith(exc.reason), (plan.refusal.reason,
                                                                         exc.reason)
                return plan.refusal
    raise AssertionError(f"the chain accepted a plan the client refuses: {plan.refusal}")
