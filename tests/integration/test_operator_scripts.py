"""Smoke tests of `ape run deploy` and `ape run spv` against a real anvil: the commands as
an operator types them, what they print, and what they mined, read back with web3.

What each action does and refuses is tested in-process, through the client layer the
scripts call (`tests/client/test_spv.py`, `test_jurisdictions.py`); these tests check
the shell around it: argument parsing, the ape account that signs, the tx lines, exit
codes, `--skip-checks` on a real node, and a deployments file of another chain.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3.contract import Contract

from gpushares.demo import SPV_LEI, TITLE_OVERRIDE
from gpushares.demo import test_account as account_address
from gpushares.devnode import CHAIN_ID, PROJECT_ROOT, AnvilNode
from jurisdictions.codes import MESSAGES, Restriction

from .conftest import ApeResult, ApeRunner, Chain

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain-operator")]

FLEET_CSV = PROJECT_ROOT / "examples" / "fleet-h100.csv"
DOCUMENTS = PROJECT_ROOT / "examples" / "spv-legal-documents.txt"
DEPLOYER, OPERATOR, ALICE, STRANGER = (account_address(i) for i in (0, 1, 2, 5))
SHARE = 10**18
NOT_REGISTERED = MESSAGES[Restriction.RECEIVER_NOT_REGISTERED]
# The line `scripts._lib.echo_receipt` prints for every transaction.
TX_LINE = re.compile(r"tx (0x[0-9a-fA-F]{64}) \(block (\d+), gas ([\d,]+)\)")


# ---------------------------------------------------------------------------------
# Running commands and reading what they mined (shared with the jurisdiction smoke tests)
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One command, and the chain's height and the senders' nonces around it."""

    result: ApeResult
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def output(self) -> str:
        return self.result.output


def sent_state(chain: Chain, people: dict[str, str]) -> dict[str, Any]:
    """What moves whenever a transaction is mined, even a reverted one."""
    return {"block": chain.block_number,
            "nonces": {who: chain.web3.eth.get_transaction_count(a) for who, a in people.items()}}


def run(ape: ApeRunner, chain: Chain, people: dict[str, str], *args: str,
        subprocess: bool = False) -> Run:
    """Run one command (`subprocess`: as a real `ape` process) and record around it."""
    before = sent_state(chain, people)
    result = ape.subprocess(*args) if subprocess else ape(*args)
    return Run(result, before, sent_state(chain, people))


def assert_mined(chain: Chain, step: Run, sender: str, contract: Contract,
                 functions: list[str]) -> None:
    """The command succeeded and mined exactly `functions` on `contract`, from `sender`,
    one printed tx line each (hash, block and gas as mined)."""
    assert step.result.returncode == 0, str(step.result)
    assert "Traceback" not in step.output, str(step.result)
    called = []
    for tx_hash, block, gas in TX_LINE.findall(step.output):
        receipt = chain.web3.eth.get_transaction_receipt(tx_hash)
        assert (receipt["status"], receipt["blockNumber"], receipt["gasUsed"]) == (
            1, int(block), int(gas.replace(",", "")))
        tx = chain.web3.eth.get_transaction(tx_hash)
        assert (tx["from"], tx["to"]) == (sender, contract.address)
        called.append(contract.decode_function_input(tx["input"])[0].fn_name)
    assert called == functions, str(step.result)
    assert step.after["block"] == step.before["block"] + len(functions)


def assert_nothing_sent(step: Run) -> None:
    """No tx line, no new block, no nonce used."""
    assert not TX_LINE.search(step.output), str(step.result)
    assert step.after == step.before, f"a transaction was sent\n{step.result}"


# ---------------------------------------------------------------------------------
# The story: deploy, then the demo's first steps
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    result: ApeResult
    path: Path
    data: dict[str, Any]


@pytest.fixture(scope="module")
def deployment(ape: ApeRunner, deployments_dir: Path) -> Deployment:
    """`ape run deploy` by TEST::0, making TEST::1 an operator (a real `ape` process)."""
    result = ape.subprocess("deploy", "--account", "TEST::0", "--operator", OPERATOR)
    assert result.returncode == 0, str(result)
    (path,) = deployments_dir.glob("*.json")
    return Deployment(result, path, json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def story(ape: ApeRunner, chain: Chain, deployment: Deployment,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The compliance admin loads the rules and registers Alice; the operator creates
    SPV 1, records its US title override, registers the fleet and mints Alice 3,000
    shares; Alice sends 100 to an unregistered wallet with --skip-checks; the SPV's
    status as a real `ape` process."""
    people = {"operator": OPERATOR, "alice": ALICE}
    spv1 = ("--account", "TEST::1", "--spv", "1")
    commands = {
        "rules": ("jurisdictions", "apply", "--account", "TEST::0"),
        "kyc": ("kyc", "register", "--account", "TEST::0", "--investor", ALICE,
                "--jurisdiction", "US", "--accredited"),
        "create": ("spv", "create", "--account", "TEST::1", "--name", "Lone Star GPU Fleet I LLC",
                   "--jurisdiction", "840", "--lei", SPV_LEI, "--documents", str(DOCUMENTS),
                   "--token-name", "Lone Star H100 Shares", "--symbol", "LSH1",
                   "--shares-per-gpu", "1000"),
        "override": ("jurisdictions", "apply", "--account", "TEST::1",
                     "--overrides", str(TITLE_OVERRIDE)),
        "add-gpus": ("spv", "add-gpus", *spv1, "--csv", str(FLEET_CSV)),
        "mint": ("spv", "mint", *spv1, "--to", ALICE, "--shares", "3000"),
        "skip-checks": ("spv", "transfer", "--account", "TEST::2", "--spv", "1",
                        "--to", STRANGER, "--shares", "100", "--skip-checks"),
    }
    steps = {name: run(ape, chain, people, *args) for name, args in commands.items()}
    for name in ("rules", "kyc", "override"):
        assert steps[name].result.returncode == 0, str(steps[name].result)
    steps["status"] = run(ape, chain, people, "spv", "status", "--spv", "1", "--holder", ALICE,
                          subprocess=True)
    return steps


@pytest.fixture(scope="module")
def token(chain: Chain, deployment: Deployment, story: dict[str, Run]) -> Contract:
    factory = chain.contract("SPVFactory", deployment.data["spv_factory"])
    return chain.contract("GPUShareToken", factory.functions.spvs(1).call()[4])


# ---------------------------------------------------------------------------------
# Smoke tests
# ---------------------------------------------------------------------------------


def test_deploy_writes_the_deployments_file_for_this_chain(
        deployment: Deployment, chain: Chain, deployments_dir: Path) -> None:
    data = deployment.data
    assert deployment.path == deployments_dir / f"ethereum-local-{CHAIN_ID}.json"
    assert data["chain_id"] == CHAIN_ID == chain.web3.eth.chain_id
    assert (data["deployer"], data["mock_stablecoin"]) == (DEPLOYER, True)
    for key in ("spv_factory", "compliance_registry", "income_token", "oracle_hub",
                "lending_pool_factory", "perp_market_factory", "perp_lens",
                "subscription_vault_blueprint", "subscription_vault_factory", "lens",
                "market_lens"):
        assert chain.has_code(data[key]), key
    assert f"Wrote {deployment.path}" in deployment.result.output
    assert len(TX_LINE.findall(deployment.result.output)) == 17
    # An operator's first `ape run` prints no warnings (ape's runpy warnings came from
    # scripts importing each other; pydantic-settings' from ape-vyper's settings).
    assert "Warning" not in deployment.result.output, deployment.result.output


def test_a_shortened_address_is_refused_before_anything_is_deployed(
        ape: ApeRunner, chain: Chain, tmp_path: Path) -> None:
    """`--operator 0x7099...79C8` as a document shortens it: a usage error naming the
    option, nothing deployed, no deployments file, no traceback."""
    before = chain.block_number
    result = ApeRunner(ape.node, tmp_path)("deploy", "--account", "TEST::0",
                                           "--operator", "0x7099...79C8")
    assert result.returncode == 2, str(result)
    assert "--operator: '0x7099...79C8' is not an address" in result.output
    assert "Traceback" not in result.output
    assert chain.block_number == before and not list(tmp_path.glob("*.json"))


def test_spv_commands_send_what_they_print(story: dict[str, Run], chain: Chain,
                                          deployment: Deployment, token: Contract) -> None:
    factory = chain.contract("SPVFactory", deployment.data["spv_factory"])
    assert_mined(chain, story["create"], OPERATOR, factory, ["create_spv"])
    assert "SPV 1: Lone Star GPU Fleet I LLC" in story["create"].output
    assert f"token Lone Star H100 Shares (LSH1) at {token.address}" in story["create"].output
    assert_mined(chain, story["add-gpus"], OPERATOR, token, ["add_gpus"])
    assert "8 GPUs registered, 8 active; mint cap now 8,000 shares" in story["add-gpus"].output
    assert_mined(chain, story["mint"], OPERATOR, token, ["mint"])
    assert f"{ALICE} holds 3,000 shares" in story["mint"].output
    assert "supply 3,000 of 8,000" in story["mint"].output
    assert token.functions.gpu_count().call() == 8
    assert token.functions.balanceOf(ALICE).call() == 3000 * SHARE
    # the status, as an operator's shell runs it
    status = story["status"]
    assert status.result.returncode == 0, str(status.result)
    assert_nothing_sent(status)
    documents = hashlib.sha256(DOCUMENTS.read_bytes()).hexdigest()
    for expected in ("SPVFactory", "1 SPV(s)", f"LEI {SPV_LEI}, jurisdiction 840, operator "
                     f"{OPERATOR}", f"documents 0x{documents}",
                     "supply 3,000 shares; mint cap 8,000; backing 8,000",
                     "GPUs: 8 registered, 8 active, 0 impaired",
                     f"holder {ALICE} holds 3,000 shares, claimable 0 mUSDC"):
        assert expected in status.output, f"{expected!r} missing from\n{status.result}"
    gpu_lines = [line.split() for line in status.output.splitlines()
                 if line.strip().startswith("#")]
    assert [(line[0], line[-1]) for line in gpu_lines] == [(f"#{i}", "active")
                                                           for i in range(1, 9)]


def test_skip_checks_sends_and_the_contract_refuses_with_the_same_words(
        story: dict[str, Run], chain: Chain, token: Contract) -> None:
    step = story["skip-checks"]
    assert step.result.returncode == 1, str(step.result)
    assert "refused (ERC-1404 code 6 RECEIVER_NOT_REGISTERED)" in step.output
    assert f"pre-check refuses the transfer 100 shares to {STRANGER}: {NOT_REGISTERED}" in (
        step.output)
    assert "--skip-checks: sending anyway" in step.output
    assert f"refused by the contract: {NOT_REGISTERED}" in step.output, str(step.result)
    assert "Traceback" not in step.output
    # one reverted transaction from Alice to the token's transfer(), and nothing moved
    assert step.after["block"] == step.before["block"] + 1
    assert step.after["nonces"]["alice"] == step.before["nonces"]["alice"] + 1
    (tx,) = chain.web3.eth.get_block(step.after["block"], full_transactions=True)["transactions"]
    assert (tx["from"], tx["to"]) == (ALICE, token.address)
    function, args = token.decode_function_input(tx["input"])
    assert (function.fn_name, args["to"], args["amount"]) == ("transfer", STRANGER, 100 * SHARE)
    assert chain.web3.eth.get_transaction_receipt(tx["hash"])["status"] == 0
    assert token.functions.balanceOf(STRANGER).call() == 0


def test_deployments_file_of_another_chain_instance(
        deployment: Deployment, abis: dict[str, Any], tmp_path: Path) -> None:
    """A deployments file whose contracts are not on the chain (a restarted node)."""
    shutil.copy(deployment.path, tmp_path / deployment.path.name)
    with AnvilNode() as fresh:
        other = Chain(fresh.url, abis)
        assert not other.has_code(deployment.data["spv_factory"])
        result = ApeRunner(fresh, tmp_path)(
            "spv", "mint", "--account", "TEST::1", "--spv", "1", "--to", ALICE, "--shares", "1"
        )
        assert other.block_number == 0
        assert other.web3.eth.get_transaction_count(OPERATOR) == 0
    assert result.returncode != 0, str(result)
    assert (f"names SPVFactory {deployment.data['spv_factory']}, but the chain has no "
            "contract") in result.output
    assert "Run `ape run deploy` again" in result.output
    assert "Traceback" not in result.output
