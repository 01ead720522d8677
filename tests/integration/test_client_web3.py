"""The client layer over a real node (`Web3Chain` on anvil): the suite builder deploys
what `ape run deploy` deploys, and reads, plans, sends, refusals and past logs behave as
on titanoboa (tests/client), with both kinds of sender (an unlocked dev account and a
locally held key)."""

from __future__ import annotations

import pytest
from eth_account import Account

from gpushares import reasons
from gpushares.client import kyc
from gpushares.client.chain import Reverted
from gpushares.client.context import Client
from gpushares.client.suite import SuiteOptions, deploy_suite
from gpushares.client.web3_chain import Web3Chain
from gpushares.devnode import AnvilNode, dev_key

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain-client")]

US = kyc.residence("US")


@pytest.fixture(scope="module")
def client(node: AnvilNode) -> Client:
    chain = Web3Chain.at(node.url)
    deployer, operator = chain.web3.eth.accounts[:2]
    receipts = []
    deployed = deploy_suite(chain, deployer, SuiteOptions(operators=(operator,)),
                            receipts.append)
    assert [r.what.split(" at ")[0] for r in receipts if " at " in r.what][:3] == [
        "MockStablecoin (mUSDC, 6 decimals)", "ComplianceRegistry", "GPUShareToken blueprint"]
    assert all(r.gas_used > 0 and r.tx_hash.startswith("0x") for r in receipts)
    return Client(chain, deployed)


def test_the_suite_is_wired_as_deploy_wires_it(client: Client):
    operator = client.chain.web3.eth.accounts[1]
    factory = client.spv_factory()
    assert factory.hasRole(factory.OPERATOR_ROLE(), operator)
    assert factory.compliance_registry() == client.deployed.compliance_registry
    stable = client.erc20(client.deployed.income_token)
    assert stable.balanceOf(operator) == 1_000_000 * 10**6
    assert client.hub().config_version() == 0
    assert client.deployed.chain_id == 31337 and client.deployed.mock_stablecoin


def test_plans_send_and_refuse_alike_with_an_unlocked_account_and_a_local_key(client: Client):
    deployer = client.chain.web3.eth.accounts[0]
    investor = Account.from_key(dev_key(3))
    plan = kyc.plan_register(client, deployer, investor.address, US, accredited=True)
    receipt = client.chain.send(plan.checked().txs[0], deployer)
    (registered,) = client.registry().events("InvestorRegistered", receipt)
    assert registered["investor"] == investor.address and registered["jurisdiction"] == 840
    assert kyc.record(client, investor.address).registered
    # A locally held key signs (raw transaction); the registry refuses it with its words.
    refused = kyc.plan_register(client, investor.address, investor.address, US,
                                accredited=True)
    assert refused.refusal is not None
    with pytest.raises(Reverted) as caught:
        client.chain.send(refused.txs[0], investor)
    assert caught.value.reason == reasons.ACCESS_CONTROL_MISSING_ROLE


def test_past_logs_and_the_chain_clock(client: Client):
    head = client.chain.head()
    assert head.timestamp == client.chain.now() >= 1_772_000_000  # the data's days
    topic = client.spv_factory().event_topic("RoleGranted")
    logs = client.chain.logs(client.deployed.spv_factory, [[topic]], 0)
    grants = client.spv_factory().events("RoleGranted", logs)
    assert any(g["account"] == client.chain.web3.eth.accounts[1] for g in grants)
