"""The operator scripts (`ape run deploy`, `ape run spv ...`) against a real anvil.

One anvil and one deployment for the whole module. The happy path is a chain of
module-scoped fixtures, one per operator step (deploy -> create -> add-gpus -> mint ->
distribute -> claim -> impair -> refused retire -> burn -> retire); each records the chain
state, read with web3 independently of the scripts, right before and right after its
commands, so the tests that check a step do not depend on the order they run in.

The error paths run against whatever state the chain has reached; each one reads the
chain before and after and asserts that nothing changed: no contract state, no new block,
no nonce used.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from gpushares.demo import test_account as account_address
from gpushares.devnode import CHAIN_ID, PROJECT_ROOT, AnvilNode

from .conftest import TX_HASH, ApeResult, ApeRunner, Chain

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain-operator")]

FLEET_CSV = PROJECT_ROOT / "examples" / "fleet-h100.csv"
DOCUMENTS = PROJECT_ROOT / "examples" / "spv-legal-documents.txt"
FLEET_SERIALS = [
    line.split(",")[0] for line in FLEET_CSV.read_text(encoding="utf-8").splitlines()[1:]
]

DEPLOYER, OPERATOR, ALICE, BOB, OUTSIDER = (account_address(i) for i in range(5))
PEOPLE = {
    "deployer": DEPLOYER,
    "operator": OPERATOR,
    "alice": ALICE,
    "bob": BOB,
    "outsider": OUTSIDER,
}

SPV_NAME = "Lone Star GPU Fleet I LLC"
SPV_LEI = "5493001KJTIIGC8Y1R12"
TOKEN_NAME = "Lone Star H100 Shares"
TOKEN_SYMBOL = "LSH1"
SHARE = 10**18
USDC = 10**6
SHARES_PER_GPU = 1000
ALICE_SHARES, BOB_SHARES, OPERATOR_SHARES = 3000, 4000, 1000
# 10,000.00 over 7,000 shares does not divide evenly: both investors' shares round down.
INCOME = "10000.00"
INCOME_UNITS = 10_000 * USDC
OPERATOR_FUNDING = 1_000_000 * USDC  # what `deploy` mints to each operator locally

ROLE_ADMIN = b"\0" * 32
ROLE_OPERATOR = keccak(text="OPERATOR_ROLE")
ROLE_PAUSER = keccak(text="PAUSER_ROLE")
ACTIVE, IMPAIRED, RETIRED = 1, 2, 4

# The line `scripts/_lib.py:report` prints for every transaction.
TX_LINE = re.compile(r"tx (0x[0-9a-fA-F]{64}) \(block (\d+), gas ([\d,]+)\)")


def lei(prefix: str) -> str:
    """An 18-character prefix completed with ISO 17442 (MOD 97-10) check digits."""
    digits = "".join(str(int(char, 36)) for char in prefix + "00")
    return f"{prefix}{98 - int(digits) % 97:02d}"


# ---------------------------------------------------------------------------------
# Reading the chain
# ---------------------------------------------------------------------------------


def read_state(chain: Chain, factory_address: str) -> dict[str, Any]:
    """Everything the scripts can change, read through web3.

    `contracts` is the contract state; `sent` is the block height and the nonces of the
    test accounts, which move whenever a transaction is mined, even a reverted one.
    """
    factory = chain.contract("SPVFactory", factory_address)
    count = factory.functions.spv_count().call()
    spvs: dict[int, dict[str, Any]] = {}
    for spv_id in range(1, count + 1):
        record = factory.functions.spvs(spv_id).call()
        token = chain.contract("GPUShareToken", record[4])
        fn = token.functions
        stable = chain.contract("MockStablecoin", fn.income_token().call())
        gpu_count = fn.gpu_count().call()
        spvs[spv_id] = {
            "record": record,
            "supply": fn.totalSupply().call(),
            "gpu_count": gpu_count,
            "active_gpus": fn.active_gpus().call(),
            "impaired_gpus": fn.impaired_gpus().call(),
            "backing": tuple(fn.backing().call()),
            "gpus": [tuple(fn.gpus(gpu_id).call()) for gpu_id in range(1, gpu_count + 1)],
            "total_distributed": fn.total_distributed().call(),
            "total_claimed": fn.total_claimed().call(),
            "income_per_share": fn.income_per_share().call(),
            "income_held": stable.functions.balanceOf(token.address).call(),
            "shares": {who: fn.balanceOf(addr).call() for who, addr in PEOPLE.items()},
            "claimable": {who: fn.claimable(addr).call() for who, addr in PEOPLE.items()},
            "stablecoin": {
                who: stable.functions.balanceOf(addr).call() for who, addr in PEOPLE.items()
            },
        }
    return {
        "contracts": {"spv_count": count, "spvs": spvs},
        "sent": {
            "block": chain.block_number,
            "nonces": {
                who: chain.web3.eth.get_transaction_count(addr) for who, addr in PEOPLE.items()
            },
        },
    }


@dataclass(frozen=True)
class Step:
    """One operator step: the commands it ran and the chain state around them."""

    results: tuple[ApeResult, ...]
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def result(self) -> ApeResult:
        (only,) = self.results
        return only

    def spv(self, when: str = "after", spv_id: int = 1) -> dict[str, Any]:
        return getattr(self, when)["contracts"]["spvs"][spv_id]


def run_step(
    ape: ApeRunner, chain: Chain, factory_address: str, *commands: tuple[str, ...]
) -> Step:
    """Run `commands` in order, each must succeed; record the state around them."""
    before = read_state(chain, factory_address)
    results = []
    for args in commands:
        result = ape(*args)
        assert result.returncode == 0, str(result)
        results.append(result)
    return Step(tuple(results), before, read_state(chain, factory_address))


def assert_transactions(chain: Chain, result: ApeResult, count: int) -> None:
    """The command printed `count` tx lines (hash, block, gas) matching mined receipts."""
    assert "gas" in result.output, str(result)
    assert TX_HASH.search(result.output), str(result)
    lines = TX_LINE.findall(result.output)
    assert len(lines) == count, str(result)
    for tx_hash, block, gas in lines:
        receipt = chain.web3.eth.get_transaction_receipt(tx_hash)
        assert receipt["status"] == 1, tx_hash
        assert receipt["blockNumber"] == int(block)
        assert receipt["gasUsed"] == int(gas.replace(",", ""))


def assert_refused(
    result: ApeResult, before: dict[str, Any], after: dict[str, Any], *fragments: str
) -> None:
    """Non-zero exit, a clear message (no traceback) and no change on the chain at all."""
    assert result.returncode != 0, str(result)
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} missing from\n{result}"
    assert "Traceback" not in result.output, str(result)
    assert not TX_LINE.search(result.output), str(result)
    assert after["contracts"] == before["contracts"]
    assert after["sent"] == before["sent"], "a transaction was sent"


# ---------------------------------------------------------------------------------
# The happy path, one fixture per step
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    result: ApeResult
    path: Path
    data: dict[str, Any]
    block_before: int

    @property
    def factory(self) -> str:
        return self.data["spv_factory"]


@pytest.fixture(scope="module")
def deployment(ape: ApeRunner, chain: Chain, deployments_dir: Path) -> Deployment:
    """`ape run deploy` by TEST::0, making TEST::1 an operator (a real `ape` process: the
    smoke test of the deploy script as a shell runs it)."""
    block_before = chain.block_number
    result = ape.subprocess("deploy", "--account", "TEST::0", "--operator", OPERATOR)
    assert result.returncode == 0, str(result)
    files = list(deployments_dir.glob("*.json"))
    assert len(files) == 1, files
    return Deployment(result, files[0], json.loads(files[0].read_text()), block_before)


@pytest.fixture(scope="module")
def compliance(ape: ApeRunner, deployment: Deployment) -> None:
    """The compliance admin (TEST::0) loads the rules data and registers the operator,
    Alice and Bob as accredited US residents (the outsider has no KYC record)."""
    result = ape("jurisdictions", "apply", "--account", "TEST::0")
    assert result.returncode == 0, str(result)
    for who in (OPERATOR, ALICE, BOB):
        result = ape("kyc", "register", "--account", "TEST::0", "--investor", who,
                     "--jurisdiction", "US", "--accredited")
        assert result.returncode == 0, str(result)


@pytest.fixture(scope="module")
def title_override(ape: ApeRunner, spv: Step, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """US title is `unclear` in the shipped rules: the operator records a legal-opinion
    override for its SPV from a copy of the rules data (as the demo does)."""
    from gpushares.demo import LEGAL_OPINION, rules_with_demo_override

    assert LEGAL_OPINION.is_file()
    rules = rules_with_demo_override(tmp_path_factory.mktemp("override"))
    result = ape("jurisdictions", "apply", "--account", "TEST::1", "--rules", str(rules))
    assert result.returncode == 0, str(result)
    assert "record title override for jurisdiction 840" in result.output
    return rules


@pytest.fixture(scope="module")
def spv(ape: ApeRunner, chain: Chain, deployment: Deployment, compliance: None) -> Step:
    """The operator registers SPV 1 and deploys its share token."""
    return run_step(
        ape,
        chain,
        deployment.factory,
        (
            "spv", "create", "--account", "TEST::1",
            "--name", SPV_NAME, "--jurisdiction", "840", "--lei", SPV_LEI,
            "--documents", str(DOCUMENTS),
            "--token-name", TOKEN_NAME, "--symbol", TOKEN_SYMBOL,
            "--shares-per-gpu", str(SHARES_PER_GPU),
        ),
    )  # fmt: skip


@pytest.fixture(scope="module")
def token_address(spv: Step) -> str:
    return spv.spv()["record"][4]


@pytest.fixture(scope="module")
def fleet(
    ape: ApeRunner, chain: Chain, deployment: Deployment, spv: Step, title_override: Path
) -> Step:
    """The operator registers the 8 GPUs of examples/fleet-h100.csv."""
    return run_step(
        ape,
        chain,
        deployment.factory,
        ("spv", "add-gpus", "--account", "TEST::1", "--spv", "1", "--csv", str(FLEET_CSV)),
    )


@pytest.fixture(scope="module")
def minted(ape: ApeRunner, chain: Chain, deployment: Deployment, fleet: Step) -> Step:
    """Alice buys 3,000 shares, Bob 4,000 (of the 8,000 the fleet backs)."""
    mint = ("spv", "mint", "--account", "TEST::1", "--spv", "1")
    return run_step(
        ape,
        chain,
        deployment.factory,
        (*mint, "--to", ALICE, "--shares", str(ALICE_SHARES)),
        (*mint, "--to", BOB.lower(), "--shares", str(BOB_SHARES)),
    )


@pytest.fixture(scope="module")
def distributed(ape: ApeRunner, chain: Chain, deployment: Deployment, minted: Step) -> Step:
    """The operator pays 10,000.00 mUSDC of rental income."""
    return run_step(
        ape,
        chain,
        deployment.factory,
        ("spv", "distribute", "--account", "TEST::1", "--spv", "1", "--amount", INCOME),
    )


@pytest.fixture(scope="module")
def claimed(ape: ApeRunner, chain: Chain, deployment: Deployment, distributed: Step) -> Step:
    """Alice and Bob claim their income."""
    return run_step(
        ape,
        chain,
        deployment.factory,
        ("spv", "claim", "--account", "TEST::2", "--spv", "1"),
        ("spv", "claim", "--account", "TEST::3", "--spv", "1"),
    )


@pytest.fixture(scope="module")
def impaired(ape: ApeRunner, chain: Chain, deployment: Deployment, claimed: Step) -> Step:
    """The SPV takes the last 1,000 shares itself (supply = cap), then GPU 3 fails."""
    return run_step(
        ape,
        chain,
        deployment.factory,
        (
            "spv", "mint", "--account", "TEST::1", "--spv", "1",
            "--to", OPERATOR, "--shares", str(OPERATOR_SHARES),
        ),
        ("spv", "impair-gpu", "--account", "TEST::1", "--spv", "1", "--gpu", "3"),
    )  # fmt: skip


@pytest.fixture(scope="module")
def retire_refused(ape: ApeRunner, chain: Chain, deployment: Deployment, impaired: Step) -> Step:
    """Retiring GPU 3 while 8,000 shares are out and 7 GPUs would remain: refused."""
    before = read_state(chain, deployment.factory)
    result = ape("spv", "retire-gpu", "--account", "TEST::1", "--spv", "1", "--gpu", "3")
    return Step((result,), before, read_state(chain, deployment.factory))


@pytest.fixture(scope="module")
def burned(ape: ApeRunner, chain: Chain, deployment: Deployment, retire_refused: Step) -> Step:
    """The SPV burns its 1,000 shares."""
    return run_step(
        ape,
        chain,
        deployment.factory,
        ("spv", "burn", "--account", "TEST::1", "--spv", "1", "--shares", str(OPERATOR_SHARES)),
    )


@pytest.fixture(scope="module")
def retired(ape: ApeRunner, chain: Chain, deployment: Deployment, burned: Step) -> Step:
    """Now GPU 3 can be retired."""
    return run_step(
        ape,
        chain,
        deployment.factory,
        ("spv", "retire-gpu", "--account", "TEST::1", "--spv", "1", "--gpu", "3"),
    )


# ---------------------------------------------------------------------------------
# Happy path tests
# ---------------------------------------------------------------------------------


def test_deploy_writes_deployments_file_for_this_chain(
    deployment: Deployment, chain: Chain, deployments_dir: Path
) -> None:
    data = deployment.data
    assert deployment.path == deployments_dir / f"ethereum-local-{CHAIN_ID}.json"
    assert data["chain_id"] == CHAIN_ID == chain.web3.eth.chain_id
    assert data["network"].startswith("ethereum:local")
    assert data["deployer"] == DEPLOYER
    assert data["mock_stablecoin"] is True
    keys = ("share_token_blueprint", "spv_factory", "income_token", "compliance_registry",
            "feed_adapter_blueprint", "oracle_hub", "lending_pool_blueprint",
            "lending_pool_factory", "perp_market_blueprint", "perp_market_factory")
    addresses = [data[key] for key in keys]
    assert len(set(addresses)) == len(keys)
    for address in addresses:
        assert chain.has_code(address), address
    assert f"Wrote {deployment.path}" in deployment.result.output
    # stablecoin, registry, blueprint, factory, grantRole, mint to the operator, adapter
    # blueprint, oracle hub, lending-pool blueprint, lending-pool factory, perp-market
    # blueprint, perp-market factory
    assert_transactions(chain, deployment.result, 12)
    assert chain.block_number >= deployment.block_before + 12


def test_deploy_grants_operator_role_and_funds_the_operator(
    deployment: Deployment, chain: Chain
) -> None:
    factory = chain.contract("SPVFactory", deployment.factory).functions
    assert factory.share_token_blueprint().call() == deployment.data["share_token_blueprint"]
    assert factory.hasRole(ROLE_OPERATOR, OPERATOR).call()
    assert factory.hasRole(ROLE_ADMIN, DEPLOYER).call()
    assert not factory.hasRole(ROLE_OPERATOR, OUTSIDER).call()
    assert factory.spv_count().call() == 0
    stable = chain.contract("MockStablecoin", deployment.data["income_token"]).functions
    assert stable.decimals().call() == 6
    assert stable.balanceOf(OPERATOR).call() == OPERATOR_FUNDING


def test_create_registers_spv_and_deploys_its_token(
    spv: Step, deployment: Deployment, chain: Chain
) -> None:
    assert_transactions(chain, spv.result, 1)
    state = spv.after["contracts"]
    assert state["spv_count"] == 1
    name, jurisdiction, lei_, documents_hash, token, operator, registered_at = spv.spv()["record"]
    assert (name, jurisdiction, lei_, operator) == (SPV_NAME, 840, SPV_LEI, OPERATOR)
    assert documents_hash == hashlib.sha256(DOCUMENTS.read_bytes()).digest()
    assert registered_at > 0
    assert chain.has_code(token)
    output = spv.result.output
    assert f"SPV 1: {SPV_NAME}" in output
    assert f"share token {TOKEN_NAME} ({TOKEN_SYMBOL}) at {token}" in output

    factory = chain.contract("SPVFactory", deployment.factory).functions
    assert factory.spv_id_of_token(token).call() == 1
    share = chain.contract("GPUShareToken", token).functions
    assert share.name().call() == TOKEN_NAME
    assert share.symbol().call() == TOKEN_SYMBOL
    assert share.decimals().call() == 18
    assert share.shares_per_gpu().call() == SHARES_PER_GPU * SHARE
    assert share.income_token().call() == deployment.data["income_token"]
    assert share.spv_id().call() == 1
    assert share.factory().call() == deployment.factory
    assert share.totalSupply().call() == 0


def test_create_gives_the_operator_every_token_role(
    token_address: str, deployment: Deployment, chain: Chain
) -> None:
    share = chain.contract("GPUShareToken", token_address).functions
    for role in (ROLE_ADMIN, ROLE_OPERATOR, ROLE_PAUSER):
        assert share.hasRole(role, OPERATOR).call()
        # neither the factory that deployed it nor the platform keeps a role
        assert not share.hasRole(role, deployment.factory).call()
        assert not share.hasRole(role, DEPLOYER).call()
        assert not share.hasRole(role, OUTSIDER).call()


def test_add_gpus_registers_the_fleet_csv(fleet: Step, token_address: str, chain: Chain) -> None:
    assert_transactions(chain, fleet.result, 1)
    assert "8 GPUs registered, 8 active; mint cap now 8,000 shares" in fleet.result.output
    state = fleet.spv()
    assert state["gpu_count"] == 8
    assert state["active_gpus"] == 8
    assert state["impaired_gpus"] == 0
    assert state["backing"] == (8000 * SHARE, 8000 * SHARE)
    commissioned = int(datetime(2025, 3, 17, tzinfo=UTC).timestamp())
    share = chain.contract("GPUShareToken", token_address).functions
    for gpu_id, (gpu, serial) in enumerate(zip(state["gpus"], FLEET_SERIALS, strict=True), 1):
        serial_hash, model, location, datacenter, cost, when, status = gpu
        assert serial_hash == keccak(text=serial)
        assert model.rstrip(b"\0") == b"H100-SXM5-80GB"
        assert datacenter.rstrip(b"\0") == b"US-TX-DFW-01"
        assert (location, cost, when, status) == (840, 27_500 * 10**8, commissioned, ACTIVE)
        assert share.gpu_id_of_serial(keccak(text=serial)).call() == gpu_id


def test_mint_to_two_investors(minted: Step, chain: Chain) -> None:
    for result in minted.results:
        assert_transactions(chain, result, 1)
    assert f"{ALICE} holds 3,000 shares; supply 3,000 of 8,000" in minted.results[0].output
    assert f"{BOB} holds 4,000 shares; supply 7,000 of 8,000" in minted.results[1].output
    state = minted.spv()
    assert state["shares"]["alice"] == ALICE_SHARES * SHARE
    assert state["shares"]["bob"] == BOB_SHARES * SHARE
    assert state["supply"] == (ALICE_SHARES + BOB_SHARES) * SHARE
    assert state["backing"] == (8000 * SHARE, 8000 * SHARE)


def test_distribute_pulls_income_from_the_operator(distributed: Step, chain: Chain) -> None:
    # approve (first distribution) + distribute
    assert_transactions(chain, distributed.result, 2)
    assert "10,000 distributed in all, 0 claimed" in distributed.result.output
    before, after = distributed.spv("before"), distributed.spv()
    assert after["total_distributed"] == INCOME_UNITS
    assert after["income_held"] == INCOME_UNITS
    assert after["stablecoin"]["operator"] == before["stablecoin"]["operator"] - INCOME_UNITS
    assert after["claimable"]["alice"] == INCOME_UNITS * ALICE_SHARES // 7000
    assert after["claimable"]["bob"] == INCOME_UNITS * BOB_SHARES // 7000


def test_investors_claim_their_pro_rata_share_rounded_down(claimed: Step, chain: Chain) -> None:
    for result in claimed.results:
        assert_transactions(chain, result, 1)
    before, after = claimed.spv("before"), claimed.spv()
    supply = ALICE_SHARES + BOB_SHARES
    alice_due = INCOME_UNITS * ALICE_SHARES // supply  # 4,285.714285 (…714285.71 floored)
    bob_due = INCOME_UNITS * BOB_SHARES // supply  # 5,714.285714 (…714285714.28 floored)
    assert (alice_due, bob_due) == (4_285_714_285, 5_714_285_714)
    assert after["stablecoin"]["alice"] - before["stablecoin"]["alice"] == alice_due
    assert after["stablecoin"]["bob"] - before["stablecoin"]["bob"] == bob_due
    assert after["claimable"] == dict.fromkeys(PEOPLE, 0)
    assert after["total_claimed"] == alice_due + bob_due
    # the rounding dust stays in the token: never more than one unit per holder
    assert after["income_held"] == INCOME_UNITS - alice_due - bob_due == 1
    assert f"{ALICE} now holds 4,285.714285 mUSDC" in claimed.results[0].output
    assert f"{BOB} now holds 5,714.285714 mUSDC" in claimed.results[1].output


def test_impair_gpu(impaired: Step, chain: Chain) -> None:
    mint, impair = impaired.results
    assert_transactions(chain, mint, 1)
    assert_transactions(chain, impair, 1)
    assert "GPU 3 is impaired; 7 active, 1 impaired" in impair.output
    state = impaired.spv()
    assert state["supply"] == 8000 * SHARE
    assert [gpu[6] for gpu in state["gpus"]] == [ACTIVE] * 2 + [IMPAIRED] + [ACTIVE] * 5
    assert (state["active_gpus"], state["impaired_gpus"]) == (7, 1)
    # an impaired GPU backs the issued shares but no new mints
    assert state["backing"] == (7000 * SHARE, 8000 * SHARE)


def test_retire_refused_while_supply_exceeds_the_remaining_backing(retire_refused: Step) -> None:
    result = retire_refused.result
    assert result.returncode != 0, str(result)
    assert "retiring GPU 3 would leave 8,000 shares backed by 7 GPU(s)" in result.output
    assert "burn 1,000 shares first" in result.output
    assert retire_refused.after["contracts"] == retire_refused.before["contracts"]
    assert retire_refused.spv()["gpus"][2][6] == IMPAIRED


def test_retire_refused_before_sending_anything(retire_refused: Step) -> None:
    assert retire_refused.after["sent"] == retire_refused.before["sent"]


def test_burn_then_retire(burned: Step, retired: Step, chain: Chain) -> None:
    assert_transactions(chain, burned.result, 1)
    assert "SPV 1: supply now 7,000" in burned.result.output
    assert burned.spv()["shares"]["operator"] == 0
    assert burned.spv()["supply"] == 7000 * SHARE

    assert_transactions(chain, retired.result, 1)
    assert "GPU 3 is retired; 7 active, 0 impaired" in retired.result.output
    state = retired.spv()
    assert state["gpus"][2][6] == RETIRED
    assert (state["gpu_count"], state["active_gpus"], state["impaired_gpus"]) == (8, 7, 0)
    assert state["backing"] == (7000 * SHARE, 7000 * SHARE)
    # the investors' positions are untouched
    assert state["shares"] == burned.spv("before")["shares"] | {"operator": 0}


def test_status_prints_the_spv(ape: ApeRunner, retired: Step, token_address: str) -> None:
    result = ape.subprocess("spv", "status", "--spv", "1", "--holder", ALICE)  # a real process
    assert result.returncode == 0, str(result)
    output = result.output
    assert not TX_LINE.search(output)
    for expected in (
        "1 SPV(s)",
        f"SPV 1: {SPV_NAME}",
        f"LEI {SPV_LEI}, jurisdiction 840, operator {OPERATOR}",
        f"documents 0x{hashlib.sha256(DOCUMENTS.read_bytes()).hexdigest()}",
        f"token {TOKEN_NAME} ({TOKEN_SYMBOL}) at {token_address}",
        "supply 7,000 shares; mint cap 7,000; backing 7,000",
        "income: 10,000 mUSDC distributed, 9,999.999999 claimed",
        "GPUs: 8 registered, 7 active, 0 impaired",
        f"holder {ALICE}: 3,000 shares, claimable 0 mUSDC",
    ):
        assert expected in output, f"{expected!r} missing from\n{result}"
    gpu_lines = [line.split() for line in output.splitlines() if line.strip().startswith("#")]
    assert [line[0] for line in gpu_lines] == [f"#{i}" for i in range(1, 9)]
    assert [line[-1] for line in gpu_lines] == ["active"] * 2 + ["retired"] + ["active"] * 5


# ---------------------------------------------------------------------------------
# Error paths: non-zero exit, a clear message, nothing sent
# ---------------------------------------------------------------------------------


@pytest.fixture
def refused(
    ape: ApeRunner, chain: Chain, deployment: Deployment, claimed: Step
) -> Callable[..., ApeResult]:
    """Run one command that must be refused; assert the message and that nothing changed.

    Needs at least the state after the claims (SPV 1 with GPUs, shares and income).
    """

    def run(args: tuple[str, ...], *fragments: str) -> ApeResult:
        before = read_state(chain, deployment.factory)
        result = ape(*args)
        assert_refused(result, before, read_state(chain, deployment.factory), *fragments)
        return result

    return run


def test_unknown_spv_id(refused: Callable[..., ApeResult]) -> None:
    refused(
        ("spv", "mint", "--account", "TEST::1", "--spv", "99", "--to", ALICE, "--shares", "1"),
        "unknown SPV id 99",
        "this factory has 1 SPV(s) (ids 1..1)",
    )


def test_second_claim_has_nothing_to_claim(refused: Callable[..., ApeResult]) -> None:
    refused(
        ("spv", "claim", "--account", "TEST::2", "--spv", "1"),
        f"{ALICE} has nothing to claim on SPV 1",
    )


def test_malformed_csv_names_the_line(
    refused: Callable[..., ApeResult], token_address: str, chain: Chain, tmp_path: Path
) -> None:
    csv = tmp_path / "fleet-bad.csv"
    csv.write_text(
        FLEET_CSV.read_text(encoding="utf-8").splitlines()[0]
        + "\nNEW-SERIAL-0001,H100-SXM5-80GB,840,US-TX-DFW-01,27500.00,2025-03-17"
        + "\nNEW-SERIAL-0002,H100-SXM5-80GB,Texas,US-TX-DFW-01,27500.00,2025-03-17\n",
        encoding="utf-8",
    )
    result = refused(
        ("spv", "add-gpus", "--account", "TEST::1", "--spv", "1", "--csv", str(csv)),
        "fleet CSV rejected, nothing sent",
        "line 3",
        "location_iso3166_numeric",
    )
    assert "line 2" not in result.output
    share = chain.contract("GPUShareToken", token_address).functions
    assert share.gpu_id_of_serial(keccak(text="NEW-SERIAL-0001")).call() == 0


def test_serials_already_registered(
    refused: Callable[..., ApeResult], token_address: str, chain: Chain, tmp_path: Path
) -> None:
    csv = tmp_path / "fleet-again.csv"
    csv.write_text(
        FLEET_CSV.read_text(encoding="utf-8").splitlines()[0]
        + "\nNEW-SERIAL-0003,H100-SXM5-80GB,840,US-TX-DFW-01,27500.00,2025-03-17"
        + f"\n{FLEET_SERIALS[2]},H100-SXM5-80GB,840,US-TX-DFW-01,27500.00,2025-03-17\n",
        encoding="utf-8",
    )
    result = refused(
        ("spv", "add-gpus", "--account", "TEST::1", "--spv", "1", "--csv", str(csv)),
        f"already registered on SPV 1, nothing sent: {FLEET_SERIALS[2]}",
    )
    assert "NEW-SERIAL-0003" not in result.output
    share = chain.contract("GPUShareToken", token_address).functions
    assert share.gpu_id_of_serial(keccak(text="NEW-SERIAL-0003")).call() == 0


def test_mint_beyond_the_backing(
    refused: Callable[..., ApeResult], token_address: str, chain: Chain
) -> None:
    share = chain.contract("GPUShareToken", token_address).functions
    headroom = (share.backing().call()[0] - share.totalSupply().call()) // SHARE
    refused(
        (
            "spv", "mint", "--account", "TEST::1", "--spv", "1",
            "--to", ALICE, "--shares", str(headroom + 1),
        ),
        f"minting {headroom + 1} would exceed the active GPUs' backing",
    )  # fmt: skip


def test_distribute_more_than_the_operator_holds(
    refused: Callable[..., ApeResult], deployment: Deployment, chain: Chain
) -> None:
    stable = chain.contract("MockStablecoin", deployment.data["income_token"]).functions
    held = stable.balanceOf(OPERATOR).call()
    amount = f"{held // USDC + 1}.00"
    refused(
        ("spv", "distribute", "--account", "TEST::1", "--spv", "1", "--amount", amount),
        f"{OPERATOR} holds",
        f"less than {amount}",
    )


def test_missing_account(refused: Callable[..., ApeResult]) -> None:
    refused(
        ("spv", "mint", "--spv", "1", "--to", ALICE, "--shares", "1"),
        "pass --account",
    )


def test_create_by_an_account_without_operator_role(refused: Callable[..., ApeResult]) -> None:
    refused(
        (
            "spv", "create", "--account", "TEST::4",
            "--name", "Outsider GPU Holdings Ltd", "--jurisdiction", "442",
            "--lei", lei("529900OUTSIDER0001"), "--documents-hash", "0x" + "ab" * 32,
            "--token-name", "Outsider Shares", "--symbol", "OUT", "--shares-per-gpu", "10",
        ),
        f"{OUTSIDER} lacks the factory's OPERATOR_ROLE",
    )  # fmt: skip


def test_create_with_an_invalid_lei(refused: Callable[..., ApeResult]) -> None:
    bad = SPV_LEI[:-1] + "3"  # wrong check digit
    refused(
        (
            "spv", "create", "--account", "TEST::1",
            "--name", "Second Fleet LLC", "--jurisdiction", "840",
            "--lei", bad, "--documents-hash", "0x" + "ab" * 32,
            "--token-name", "Second Shares", "--symbol", "SEC", "--shares-per-gpu", "10",
        ),
        f"--lei {bad!r} is not a valid LEI",
    )  # fmt: skip


def test_deployments_file_of_another_chain_instance(
    deployment: Deployment, abis: dict[str, Any], tmp_path: Path
) -> None:
    """A deployments file whose contracts are not on the chain (a restarted node)."""
    shutil.copy(deployment.path, tmp_path / deployment.path.name)
    with AnvilNode() as fresh:
        other = Chain(fresh.url, abis)
        assert not other.has_code(deployment.factory)
        result = ApeRunner(fresh, tmp_path)(
            "spv", "mint", "--account", "TEST::1", "--spv", "1", "--to", ALICE, "--shares", "1"
        )
        assert other.block_number == 0
        assert other.web3.eth.get_transaction_count(OPERATOR) == 0
    assert result.returncode != 0, str(result)
    assert f"names SPVFactory {deployment.factory}, but the chain has no contract" in result.output
    assert "Run `ape run deploy` again" in result.output
    assert "Traceback" not in result.output
