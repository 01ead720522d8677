"""The lending scripts (`ape run pool ...`, `ape run keeper`) against a real anvil.

One anvil and one deployment for the module: the platform deploys, the SPV operator
registers its fleet and mints shares, the KYC provider registers the people, the hub
admin installs a 2-of-3 oracle signer set and the SPV's NAV feed, and NAV prices reach
the hub as real reports: a `nav-per-share` snapshot of the fleet read from the chain,
signed by two of the three oracle keys, logged and published by the oracle's
publisher (no mock oracle anywhere).

Then the lending story, one module-scoped fixture per step (create -> supply ->
collateral + borrow -> NAV drop -> keeper dry run and a refused keeper -> liquidation ->
pause -> stale price -> collateral income -> risk parameters -> exits -> a second
market created without KYC rights). Each step records the chain state, read with web3
independently of the scripts, before and after its commands, so the tests that check a
step do not depend on the order they run in. Refusals are checked to send nothing: no
new block, no nonce used. The commands run inside the test process
(tests/integration/conftest.py), one after another.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak

from gpushares import abi, lending, reasons
from gpushares.demo import test_account as account_address
from gpushares.devnode import PROJECT_ROOT, dev_key
from oracle import attest, reports, valuation
from oracle.log import AttestationLog
from oracle.publisher import Publisher

from .conftest import ApeResult, ApeRunner, Chain

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain-pools")]

FLEET_CSV = PROJECT_ROOT / "examples" / "fleet-h100.csv"
DOCUMENTS = PROJECT_ROOT / "examples" / "spv-legal-documents.txt"
SPV_LEI = "5493001KJTIIGC8Y1R12"
SYMBOL = "LSH1"
NAV_FEED = "NAV/LSH1/USD"
HEARTBEAT = 2 * 86_400
# The hub refuses larger NAV moves (the drop below is about 17 %).
MAX_MOVE_BPS = 2_500
INDEX_MODEL = "H100-SXM-80GB"
INDEX_AT_ACQUISITION = "2.40"
INDEX_CRASH = "2.00"

DEPLOYER, OPERATOR, LENDER, BORROWER, KEEPER, OUTSIDER = (account_address(i) for i in range(6))
PEOPLE = {"deployer": DEPLOYER, "operator": OPERATOR, "lender": LENDER, "borrower": BORROWER,
          "keeper": KEEPER, "outsider": OUTSIDER}
ORACLE_KEYS = [dev_key(20 + i) for i in range(3)]
ORACLE_SIGNERS = sorted((Account.from_key(k).address for k in ORACLE_KEYS),
                        key=lambda a: int(a, 16))
PUBLISHER_KEY = dev_key(9)

SHARE = 10**18
USDC = 10**6
WAD = 10**18
# Only the borrower holds shares: NAV per share is the fleet's value over 2,000 shares.
BORROWER_SHARES = 2_000
COLLATERAL = 250
SUPPLY = 50_000
# The loan, as a share of the collateral's value at the NAV on the chain when it is taken:
# under the 70 % max LTV, and 11 points under the 80 % LLTV (so `--near 15` flags it);
# the refused request is above the max LTV.
BORROW_LTV = 0.69
TOO_MUCH_LTV = 0.71
INCOME = "10000.00"

ABOVE_MAX_LTV = reasons.POOL_BORROW_PUT_LOAN_ABOVE
STALE = reasons.POOL_COLLATERAL_PRICE_STALE_OLDER
PAUSED = reasons.POOL_PAUSED_GUARDIAN_REPAY_STILL
FROZEN = reasons.POOL_WALLET_FROZEN_COMPLIANCE
NOT_REGISTERED = ("The receiver has no eligibility record in the compliance registry; "
                  "they must complete KYC first.")
MARKET_CREATOR_ROLE = keccak(text="MARKET_CREATOR_ROLE")

# The line `scripts/_lib.py:report` prints for every transaction.
TX_LINE = re.compile(r"tx (0x[0-9a-fA-F]{64}) \(block (\d+), gas ([\d,]+)\)")


# ---------------------------------------------------------------------------------
# The world: deployment, SPV, KYC, oracle, and NAV reports signed 2-of-3
# ---------------------------------------------------------------------------------


def ok(result: ApeResult) -> ApeResult:
    assert result.returncode == 0, str(result)
    assert "Traceback" not in result.output, str(result)
    return result


class NavOracle:
    """Publishes the SPV's NAV per share as the oracle does: a `nav-per-share` v1
    snapshot of the register read from the chain, co-signed by 2 of the 3 signer keys,
    appended to an attestation log and submitted to the hub by the publisher."""

    def __init__(self, chain: Chain, deployed: dict[str, Any], token: str, log_path: Path):
        self.chain = chain
        self.web3 = chain.web3
        self.token = chain.contract("GPUShareToken", token)
        self.hub = self.web3.eth.contract(deployed["oracle_hub"], abi=abi.load("OracleHub"))
        self.domain = attest.Domain(chain_id=self.web3.eth.chain_id, hub=self.hub.address)
        self.log_path = log_path
        self.last_observed = 0

    def publish(self, index_now: str) -> int:
        """Publish the NAV with the H100 index at `index_now` USD/GPU-hour; returns it."""
        now = self.web3.eth.get_block("latest")["timestamp"]
        if now <= self.last_observed:  # the hub wants strictly newer data
            self.web3.provider.make_request("evm_mine", [])
            now = self.web3.eth.get_block("latest")["timestamp"]
        fn = self.token.functions
        rows = [fn.gpus(i).call() for i in range(1, fn.gpu_count().call() + 1)]
        snapshot = valuation.nav_snapshot(
            feed_name=NAV_FEED,
            spv_token=self.token.address,
            observed_at=now,
            total_supply=fn.totalSupply().call(),
            economic_life_years="4",
            gpus=valuation.holdings_from_register(rows, {"H100-SXM5-80GB": INDEX_MODEL}),
            index={INDEX_MODEL: {"atAcquisition": INDEX_AT_ACQUISITION, "now": index_now,
                                 "source": "test: H100 index level"}},
            utilisation={"bps": 8_000, "periodStart": now - 900, "periodEnd": now,
                         "source": "test: fleet utilisation"},
        )
        version = self.hub.functions.config_version().call()
        with AttestationLog(self.log_path) as log:
            reports.record_signer_set(log, self.domain, version, ORACLE_SIGNERS, 2)
            entry = reports.attest_snapshot(log, "price", snapshot, domain=self.domain,
                                            config_version=version, keys=ORACLE_KEYS[:2])
            outcomes = Publisher(self.web3, self.hub.address, log, PUBLISHER_KEY).publish_pending()
        assert [o.status for o in outcomes] == ["published"], outcomes
        self.last_observed = now
        value = entry.signed.report.value
        fid = bytes.fromhex(reports.feed_id(NAV_FEED)[2:])
        assert self.hub.functions.latest_value(fid).call()[0] == value
        return value


@dataclass
class World:
    deployed: dict[str, Any]
    token: str
    oracle: NavOracle
    adapter: str
    navs: list[int] = field(default_factory=list)


def run_each(ape: ApeRunner, *commands: tuple[str, ...]) -> list[ApeResult]:
    """Run commands one after another, in the order given (a group of commands that
    would not race if an operator ran them at once: different senders, or nothing sent)."""
    return [ape(*args) for args in commands]


def run_together(ape: ApeRunner, *commands: tuple[str, ...]) -> list[ApeResult]:
    """`run_each`, each command must succeed."""
    return [ok(result) for result in run_each(ape, *commands)]


@pytest.fixture(scope="module")
def world(ape: ApeRunner, chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> World:
    """Deploy; load the jurisdiction table (TEST::0) while the operator (TEST::1) creates
    the SPV; the KYC provider registers the borrower and the keeper while the operator
    records its US title override and registers the fleet; the hub admin installs the
    2-of-3 signer set and the NAV feed while the operator mints the borrower's shares;
    the oracle publishes the first NAV."""
    from gpushares.demo import rules_with_demo_override

    rules = rules_with_demo_override(tmp_path_factory.mktemp("override"))
    kyc = ("kyc", "register", "--account", "TEST::0", "--jurisdiction", "US", "--accredited")
    ok(ape("deploy", "--account", "TEST::0", "--operator", OPERATOR))
    run_together(
        ape,
        ("jurisdictions", "apply", "--account", "TEST::0"),
        ("spv", "create", "--account", "TEST::1", "--name", "Lone Star GPU Fleet I LLC",
         "--jurisdiction", "840", "--lei", SPV_LEI, "--documents", str(DOCUMENTS),
         "--token-name", "Lone Star H100 Shares", "--symbol", SYMBOL, "--shares-per-gpu", "1000"),
    )
    run_together(
        ape,
        (*kyc, "--investor", BORROWER),
        ("jurisdictions", "apply", "--account", "TEST::1", "--rules", str(rules)),
    )
    run_together(
        ape,
        (*kyc, "--investor", KEEPER),
        ("spv", "add-gpus", "--account", "TEST::1", "--spv", "1", "--csv", str(FLEET_CSV)),
    )
    run_together(
        ape,
        ("oracle", "set-signers", "--account", "TEST::0",
         *[arg for s in ORACLE_SIGNERS for arg in ("--signer", s)], "--threshold", "2"),
        ("spv", "mint", "--account", "TEST::1", "--spv", "1", "--to", BORROWER,
         "--shares", str(BORROWER_SHARES)),
    )
    ok(ape("oracle", "add-feed", "--account", "TEST::0", "--name", NAV_FEED,
           "--description", "Lone Star H100 Shares: NAV per share, USD", "--min", "0.01",
           "--max", "100000", "--max-move-bps", str(MAX_MOVE_BPS),
           "--heartbeat", str(HEARTBEAT)))
    deployed = json.loads(next(ape.deployments_dir.glob("*.json")).read_text())
    token = chain.contract("SPVFactory", deployed["spv_factory"]).functions.spvs(1).call()[4]
    oracle = NavOracle(chain, deployed, token, tmp_path_factory.mktemp("oracle") / "log.sqlite")
    hub = oracle.hub.functions
    assert hub.threshold().call() == 2 and hub.signers().call() == ORACLE_SIGNERS
    adapter = hub.feed_adapter(bytes.fromhex(reports.feed_id(NAV_FEED)[2:])).call()
    result = World(deployed, token, oracle, adapter)
    result.navs.append(oracle.publish(INDEX_AT_ACQUISITION))
    return result


# ---------------------------------------------------------------------------------
# Reading the chain
# ---------------------------------------------------------------------------------


def read_state(chain: Chain, world: World, pool: str) -> dict[str, Any]:
    """What the lending scripts can change, through web3; `sent` moves with any
    transaction (block height and the nonces of the test accounts)."""
    p = chain.contract("LendingPool", pool).functions
    token = chain.contract("GPUShareToken", world.token).functions
    stable = chain.contract("MockStablecoin", world.deployed["income_token"]).functions
    lender_shares = p.balanceOf(LENDER).call()
    return {
        "contracts": {
            "position": tuple(p.position(BORROWER).call()),
            "market": tuple(p.market().call()),
            "total_assets": p.totalAssets().call(),
            "total_collateral": p.total_collateral().call(),
            "paused": p.paused().call(),
            "max_ltv": p.max_ltv().call(),
            "reserve_factor_bps": p.reserve_factor_bps().call(),
            "treasury": p.treasury().call(),
            "lender_shares": lender_shares,
            "lender_value": p.convertToAssets(lender_shares).call(),
            "income_owed": p.income_owed(BORROWER).call(),
            "shares": {who: token.balanceOf(a).call() for who, a in PEOPLE.items()},
            "stablecoin": {who: stable.balanceOf(a).call() for who, a in PEOPLE.items()},
        },
        "sent": {
            "block": chain.block_number,
            "nonces": {who: chain.web3.eth.get_transaction_count(a) for who, a in PEOPLE.items()},
        },
    }


@dataclass(frozen=True)
class Step:
    """One step: its commands (by label) and the chain state around them."""

    results: dict[str, ApeResult]
    before: dict[str, Any]
    after: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, label: str) -> ApeResult:
        return self.results[label]

    def state(self, when: str = "after") -> dict[str, Any]:
        return getattr(self, when)["contracts"]


class Recorder:
    """Runs labelled commands and records the state around each refusal."""

    def __init__(self, ape: ApeRunner, chain: Chain, world: World, pool: str) -> None:
        self.ape, self.chain, self.world, self.pool = ape, chain, world, pool
        self.results: dict[str, ApeResult] = {}
        self.refusals: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.before = self.read()

    def read(self) -> dict[str, Any]:
        return read_state(self.chain, self.world, self.pool)

    def run(self, label: str, *args: str, subprocess: bool = False) -> ApeResult:
        """A command that must succeed; `subprocess`: as a real `ape` process (the smoke
        tests of a script, as a shell runs it)."""
        self.results[label] = ok(self.ape.subprocess(*args) if subprocess else self.ape(*args))
        return self.results[label]

    def together(
        self,
        succeed: dict[str, tuple[str, ...]],
        refused: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        """A group of commands, in order: `succeed` must succeed (different senders), the
        `refused` ones are recorded like `refused` (then `succeed` must send nothing)."""
        refused = refused or {}
        before = self.read()
        results = run_each(self.ape, *succeed.values(), *refused.values())
        after = self.read()
        for label, result in zip([*succeed, *refused], results, strict=True):
            self.results[label] = ok(result) if label in succeed else result
            if label in refused:
                self.refusals[label] = (before, after)

    def refused(self, label: str, *args: str) -> ApeResult:
        """A command that must fail; the state around it is kept for the test."""
        before = self.read()
        result = self.ape(*args)
        self.refusals[label] = (before, self.read())
        self.results[label] = result
        return result

    def step(self, **extra: Any) -> Step:
        return Step(dict(self.results), self.before, self.read(),
                    {"refusals": self.refusals, **extra})


def assert_nothing_sent(step: Step, label: str, *fragments: str) -> None:
    """Non-zero exit, the message (no traceback), no transaction, no state change."""
    result = step[label]
    assert result.returncode != 0, str(result)
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} missing from\n{result}"
    assert "Traceback" not in result.output, str(result)
    assert not TX_LINE.search(result.output), str(result)
    before, after = step.extra["refusals"][label]
    assert after["contracts"] == before["contracts"]
    assert after["sent"] == before["sent"], "a transaction was sent"


def assert_contract_refused(step: Step, label: str, reason: str) -> None:
    """--skip-checks: the transaction went out and the contract refused it, unchanged."""
    result = step[label]
    assert result.returncode != 0, str(result)
    assert "--skip-checks: sending anyway" in result.output, str(result)
    assert f"refused by the contract: {reason}" in result.output, str(result)
    before, after = step.extra["refusals"][label]
    # The reverted transaction was mined: views that accrue interest moved with the
    # clock, nothing else did.
    assert timeless(after["contracts"]) == timeless(before["contracts"])


def timeless(state: dict[str, Any]) -> dict[str, Any]:
    """The state without what moves with time alone (pending interest)."""
    collateral, _debt, scaled = state["position"]
    drop = ("market", "total_assets", "lender_value", "position")
    return {**{k: v for k, v in state.items() if k not in drop},
            "position": (collateral, scaled)}


def lending_market(chain: Chain, pool: str) -> lending.Market:
    p = chain.contract("LendingPool", pool).functions
    return lending.Market(asset_decimals=6, feed_decimals=8, lltv=p.lltv().call(),
                          max_ltv=p.max_ltv().call())


def checked_price(chain: Chain, pool: str) -> int:
    return chain.contract("LendingPool", pool).functions.price().call()


def time_travel(chain: Chain, seconds: int) -> None:
    chain.web3.provider.make_request("evm_increaseTime", [seconds])
    chain.web3.provider.make_request("evm_mine", [])


# ---------------------------------------------------------------------------------
# The lending story, one fixture per step
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    result: ApeResult
    pool: str
    model: str


@pytest.fixture(scope="module")
def created(ape: ApeRunner, chain: Chain, world: World) -> Created:
    """The platform (market creator and KYC provider) creates market 1 with defaults."""
    result = ok(ape("pool", "create", "--account", "TEST::0", "--spv", "1"))
    factory = chain.contract("LendingPoolFactory", world.deployed["lending_pool_factory"])
    pool = factory.functions.market_at(1).call()
    model = chain.contract("LendingPool", pool).functions.rate_model().call()
    return Created(result, pool, model)


@pytest.fixture(scope="module")
def pool(created: Created) -> str:
    return created.pool


@pytest.fixture(scope="module")
def supplied(ape: ApeRunner, chain: Chain, world: World, pool: str) -> Step:
    """The deployer mints mock mUSDC to the lender, then to the keeper while the lender
    supplies 50,000."""
    r = Recorder(ape, chain, world, pool)
    r.together({
        "status new": ("pool", "status", "--pool", "1"),  # minting changes no pool state
        "mint lender": ("pool", "mint-mock", "--account", "TEST::0", "--to", LENDER,
                        "--amount", "100000"),
    })
    r.together({
        "mint keeper": ("pool", "mint-mock", "--account", "TEST::0", "--to", KEEPER,
                        "--amount", "50000"),
        "supply": ("pool", "supply", "--account", "TEST::2", "--pool", "1",
                   "--amount", str(SUPPLY)),
    })
    return r.step()


@pytest.fixture(scope="module")
def borrowed(ape: ApeRunner, chain: Chain, world: World, pool: str, supplied: Step) -> Step:
    """The borrower posts 250 shares, asks for 71 % of their value (refused before
    sending, then by the contract with --skip-checks) and borrows 69 % (whole mUSDC, at
    the NAV the chain holds: it follows the fleet's depreciation to the chain's date)."""
    r = Recorder(ape, chain, world, pool)
    r.run("deposit", "pool", "deposit-collateral", "--account", "TEST::3", "--pool", "1",
          "--shares", str(COLLATERAL))
    after_deposit = r.read()
    value = COLLATERAL * checked_price(chain, pool) / 10**8  # USD
    amount, too_much = int(value * BORROW_LTV), int(value * TOO_MUCH_LTV) + 1
    borrow = ("pool", "borrow", "--account", "TEST::3", "--pool", "1")
    r.refused("too much", *borrow, "--amount", str(too_much))
    r.refused("too much, skip checks", *borrow, "--amount", str(too_much), "--skip-checks")
    r.run("borrow", *borrow, "--amount", str(amount))
    r.run("status near", "pool", "status", "--pool", "1", "--near", "15")
    return r.step(after_deposit=after_deposit, price=checked_price(chain, pool), amount=amount)


@pytest.fixture(scope="module")
def crashed(ape: ApeRunner, chain: Chain, world: World, pool: str, borrowed: Step) -> Step:
    """The H100 index falls from 2.40 to 2.00: the oracle publishes a lower NAV and the
    loan is above the liquidation LTV; `pool status` says so."""
    r = Recorder(ape, chain, world, pool)
    world.navs.append(world.oracle.publish(INDEX_CRASH))
    r.run("status", "pool", "status", "--pool", "1", subprocess=True)
    return r.step(price=checked_price(chain, pool))


@pytest.fixture(scope="module")
def keepers_that_send_nothing(
    ape: ApeRunner, chain: Chain, world: World, pool: str, crashed: Step
) -> Step:
    """The keeper's dry run, and a keeper with no KYC record, who may not receive the
    collateral and is refused up front (both send nothing, so they run together)."""
    r = Recorder(ape, chain, world, pool)
    r.together({"dry run": ("keeper", "--account", "TEST::4", "--dry-run")},
               {"outsider": ("keeper", "--account", "TEST::5")})
    return r.step()


@pytest.fixture(scope="module")
def liquidated(
    ape: ApeRunner, chain: Chain, world: World, pool: str, keepers_that_send_nothing: Step
) -> Step:
    """The registered keeper liquidates the loan; a second pass finds nothing."""
    r = Recorder(ape, chain, world, pool)
    price = checked_price(chain, pool)
    r.run("keeper", "keeper", "--account", "TEST::4", subprocess=True)
    after_first = r.read()
    r.run("second pass", "keeper", "--account", "TEST::4", "--pool", "1")
    return r.step(price=price, after_first=after_first)


@pytest.fixture(scope="module")
def paused(ape: ApeRunner, chain: Chain, world: World, pool: str, liquidated: Step) -> Step:
    """The borrower borrows again on what collateral is left; the guardian pauses:
    borrowing stops, repay goes on; the guardian unpauses."""
    r = Recorder(ape, chain, world, pool)
    borrow = ("pool", "borrow", "--account", "TEST::3", "--pool", "1")
    r.run("borrow", *borrow, "--amount", "500")
    r.run("pause", "pool", "set", "--account", "TEST::0", "--pool", "1", "--pause")
    after_pause = r.read()
    r.refused("borrow paused", *borrow, "--amount", "100")
    before_repay = r.read()
    r.run("repay", "pool", "repay", "--account", "TEST::3", "--pool", "1", "--amount", "100")
    after_repay = r.read()
    r.run("unpause", "pool", "set", "--account", "TEST::0", "--pool", "1", "--unpause")
    # A wallet the compliance registry freezes borrows nothing until it is unfrozen.
    freeze = ("kyc", "freeze", "--account", "TEST::0", "--investor", BORROWER)
    r.run("freeze", *freeze)
    r.refused("borrow frozen", *borrow, "--amount", "100")
    r.refused("borrow frozen, skip checks", *borrow, "--amount", "100", "--skip-checks")
    r.run("unfreeze", *freeze, "--unfreeze")
    return r.step(after_pause=after_pause, before_repay=before_repay, after_repay=after_repay)


@pytest.fixture(scope="module")
def stale(ape: ApeRunner, chain: Chain, world: World, pool: str, paused: Step) -> Step:
    """No NAV arrives for longer than the feed's heartbeat: no borrowing, no
    liquidations, but repay works."""
    time_travel(chain, HEARTBEAT + 3_600)
    r = Recorder(ape, chain, world, pool)
    borrow = ("pool", "borrow", "--account", "TEST::3", "--pool", "1")
    r.together({"keeper": ("keeper", "--account", "TEST::4"),
                "status": ("pool", "status", "--pool", "1")},
               {"borrow stale": (*borrow, "--amount", "100")})
    r.refused("borrow stale, skip checks", *borrow, "--amount", "100", "--skip-checks")
    before_repay = r.read()
    r.run("repay all", "pool", "repay", "--account", "TEST::3", "--pool", "1", "--all")
    return r.step(before_repay=before_repay)


@pytest.fixture(scope="module")
def income(ape: ApeRunner, chain: Chain, world: World, pool: str, stale: Step) -> Step:
    """The SPV distributes rental income; the borrower claims what the collateral in the
    pool earned."""
    r = Recorder(ape, chain, world, pool)
    r.run("distribute", "spv", "distribute", "--account", "TEST::1", "--spv", "1",
          "--amount", INCOME)
    after_distribute = r.read()
    r.run("claim", "pool", "claim-income", "--account", "TEST::3", "--pool", "1")
    return r.step(after_distribute=after_distribute)


@pytest.fixture(scope="module")
def risk_set(ape: ApeRunner, chain: Chain, world: World, pool: str, income: Step) -> Step:
    r = Recorder(ape, chain, world, pool)
    r.run("max ltv", "pool", "set", "--account", "TEST::0", "--pool", "1", "--max-ltv", "65")
    return r.step()


@pytest.fixture(scope="module")
def exits(ape: ApeRunner, chain: Chain, world: World, pool: str, risk_set: Step) -> Step:
    """Everyone leaves, price still stale: the borrower (no debt) takes the collateral
    back while the lender redeems every vault share."""
    r = Recorder(ape, chain, world, pool)
    r.together({
        "collateral back": ("pool", "withdraw-collateral", "--account", "TEST::3", "--pool",
                            "1", "--all"),
        "withdraw all": ("pool", "withdraw", "--account", "TEST::2", "--pool", "1", "--all"),
    })
    return r.step()


@pytest.fixture(scope="module")
def second_market(ape: ApeRunner, chain: Chain, world: World, pool: str, exits: Step) -> Step:
    """The operator, made a market creator but not a KYC provider, creates market 2: the
    pool is not registered, the script prints the KYC command, and collateral is refused
    until the KYC provider runs it."""
    factory = chain.contract("LendingPoolFactory", world.deployed["lending_pool_factory"])
    tx = factory.functions.grantRole(MARKET_CREATOR_ROLE, OPERATOR).transact({"from": DEPLOYER})
    assert chain.web3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    r = Recorder(ape, chain, world, pool)
    r.run("create", "pool", "create", "--account", "TEST::1", "--spv", "1", "--lltv", "75",
          "--max-ltv", "60.5", "--reserve-factor", "12.5", "--base-rate", "1", "--kink", "90",
          "--name", "Lone Star conservative", "--symbol", "lLSC")
    pool2 = factory.functions.market_at(2).call()
    registry = chain.contract("ComplianceRegistry", world.deployed["compliance_registry"])
    registered_before = registry.functions.investor(pool2).call()
    r.refused("deposit unregistered", "pool", "deposit-collateral", "--account", "TEST::3",
              "--pool", "2", "--shares", "10")
    command = re.search(r"ape run kyc register (.+)", r.results["create"].output)
    assert command is not None, str(r.results["create"])
    args = command.group(1).replace("--network ethereum:local:foundry", "").split()
    args[args.index("KYC_PROVIDER")] = "TEST::0"
    r.run("kyc", "kyc", "register", *args)
    r.together({"status all": ("pool", "status"),
                "keeper all": ("keeper", "--account", "TEST::4")})
    return r.step(pool2=pool2, registered_before=registered_before)


# ---------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------


def test_nav_reports_reach_the_pool_through_the_hub(world: World, created: Created,
                                                    chain: Chain) -> None:
    adapter = chain.contract("FeedAdapter", world.adapter).functions
    assert adapter.decimals().call() == 8 and adapter.heartbeat().call() == HEARTBEAT
    _, answer, _, updated, _ = adapter.latestRoundData().call()
    assert answer == world.navs[0] > 0
    assert updated <= chain.web3.eth.get_block("latest")["timestamp"]
    p = chain.contract("LendingPool", created.pool).functions
    assert p.price_feed().call() == world.adapter


def test_create_deploys_a_rate_model_and_registers_the_pool(
    created: Created, world: World, chain: Chain
) -> None:
    p = chain.contract("LendingPool", created.pool).functions
    assert p.asset().call() == world.deployed["income_token"]
    assert p.collateral_token().call() == world.token
    assert p.lltv().call() == 80 * WAD // 100
    assert p.max_ltv().call() == 70 * WAD // 100
    assert p.reserve_factor_bps().call() == 1_000
    assert p.treasury().call() == DEPLOYER
    assert p.name().call() == "GPU Lend LSH1/mUSDC" and p.symbol().call() == "lLSH1"
    assert p.hasRole(keccak(text="GUARDIAN_ROLE"), DEPLOYER).call()
    model = chain.contract("KinkedRateModel", created.model).functions
    assert (model.base_rate_per_year().call(), model.slope1_per_year().call(),
            model.slope2_per_year().call(), model.kink().call()) == (
        2 * WAD // 100, 10 * WAD // 100, 300 * WAD // 100, 80 * WAD // 100)
    registry = chain.contract("ComplianceRegistry", world.deployed["compliance_registry"])
    jurisdiction, accredited, expires, frozen, registered = (
        registry.functions.investor(created.pool).call())
    assert (jurisdiction, accredited, frozen, registered) == (840, True, False, True)
    assert expires > chain.web3.eth.get_block("latest")["timestamp"] + 50 * 365 * 86_400
    out = created.result.output
    assert f"market 1: pool {created.pool}" in out
    assert "market 1 can hold LSH1 collateral now" in out
    assert len(TX_LINE.findall(out)) == 3  # rate model, create_market, set_investor
    token = chain.contract("GPUShareToken", world.token).functions
    assert token.detectTransferRestriction(BORROWER, created.pool, SHARE).call() == 0


def test_status_of_a_new_market(supplied: Step, created: Created) -> None:
    out = supplied["status new"].output
    for fragment in (
        f"market 1: GPU Lend LSH1/mUSDC (lLSH1) at {created.pool}",
        "price feed    NAV/LSH1/USD",
        "LLTV 80.00%, max LTV 70.00%, liquidation incentive 1.0638, reserve factor 10.00%",
        "paused: no",
        f"(heartbeat {HEARTBEAT}s)",
        "utilisation 0.00%, borrow APR 2.00%, supply APR 0.00%",
        "total supplied 0 mUSDC",
        "loans: none",
    ):
        assert fragment in out, f"{fragment!r} missing from\n{out}"


def test_supply_deposits_into_the_vault(supplied: Step) -> None:
    before, after = supplied.state("before"), supplied.state()
    assert after["stablecoin"]["keeper"] == 50_000 * USDC
    assert after["stablecoin"]["lender"] == 100_000 * USDC - SUPPLY * USDC
    assert after["total_assets"] == SUPPLY * USDC
    assert SUPPLY * USDC - 1 <= after["lender_value"] <= SUPPLY * USDC
    assert after["lender_shares"] > before["lender_shares"] == 0
    out = supplied["supply"].output
    assert "supply 50,000 mUSDC to market 1" in out and len(TX_LINE.findall(out)) == 2


def test_deposit_collateral_and_borrow_within_max_ltv(borrowed: Step, chain: Chain,
                                                      pool: str) -> None:
    deposited = borrowed.extra["after_deposit"]["contracts"]
    assert deposited["position"][0] == COLLATERAL * SHARE
    assert deposited["shares"]["borrower"] == (BORROWER_SHARES - COLLATERAL) * SHARE
    collateral, debt, _scaled = borrowed.state()["position"]
    assert collateral == COLLATERAL * SHARE
    amount = borrowed.extra["amount"] * USDC
    assert amount <= debt <= amount + 1
    assert borrowed.state()["stablecoin"]["borrower"] == amount
    health = lending.health(lending_market(chain, pool), collateral, debt, borrowed.extra["price"])
    assert health.within_max_ltv and not health.liquidatable
    assert "borrow up to" in borrowed["deposit"].output
    assert f"LTV {health.ltv_percent()}" in borrowed["borrow"].output


def test_borrow_above_max_ltv_is_refused_before_sending(borrowed: Step) -> None:
    assert_nothing_sent(borrowed, "too much", "borrow refused, nothing sent",
                        "above the max LTV 70.00%", "borrow at most")


def test_borrow_above_max_ltv_with_skip_checks_shows_the_contracts_refusal(
    borrowed: Step,
) -> None:
    assert_contract_refused(borrowed, "too much, skip checks", ABOVE_MAX_LTV)


def test_lower_nav_makes_the_loan_liquidatable_and_status_flags_it(
    crashed: Step, world: World, chain: Chain, pool: str
) -> None:
    assert world.navs[1] < world.navs[0]
    assert crashed.extra["price"] == world.navs[1]
    collateral, debt, _ = crashed.state()["position"]
    health = lending.health(lending_market(chain, pool), collateral, debt, world.navs[1])
    assert health.liquidatable
    out = crashed["status"].output
    assert re.search(rf"{BORROWER}: collateral 250 LSH1, debt [\d,.]+ mUSDC, LTV "
                     rf"{re.escape(health.ltv_percent())}\s+LIQUIDATABLE", out), out


def test_status_flags_loans_near_liquidation(borrowed: Step) -> None:
    """At ~69 % LTV the loan is 11 points under the 80 % LLTV: `--near 15` flags it."""
    out = borrowed["status near"].output
    amount = borrowed.extra["amount"]
    assert re.search(rf"{BORROWER}: collateral 250 LSH1, debt {amount:,}(\.\d+)? mUSDC, LTV "
                     r"6[89]\.\d\d%\s+near liquidation", out), out
    assert "LIQUIDATABLE" not in out
    assert f"utilisation {100 * amount / SUPPLY:.2f}%" in out
    assert f"total borrowed {amount:,}" in out


def test_keeper_dry_run_changes_nothing(keepers_that_send_nothing: Step) -> None:
    step = keepers_that_send_nothing
    out = step["dry run"].output
    assert "1 liquidatable" in out and "would repay" in out
    assert "dry run: 1 loan(s) would be liquidated; nothing sent" in out
    assert not TX_LINE.search(out)
    assert step.before == step.after


def test_unregistered_keeper_is_refused_before_any_transaction(
    keepers_that_send_nothing: Step,
) -> None:
    assert_nothing_sent(keepers_that_send_nothing, "outsider", "keeper refused, nothing sent",
                        f"{OUTSIDER} may not hold LSH1 collateral (ERC-1404 code 6)",
                        NOT_REGISTERED)


def test_keeper_liquidates_the_loan(liquidated: Step, chain: Chain, pool: str) -> None:
    before, after = liquidated.state("before"), liquidated.extra["after_first"]["contracts"]
    collateral_before, debt_before, _ = before["position"]
    collateral, debt, _ = after["position"]
    price = liquidated.extra["price"]
    health = lending.health(lending_market(chain, pool), collateral, debt, price)
    assert debt == 0 or not health.liquidatable
    seized = after["shares"]["keeper"] - before["shares"]["keeper"]
    assert seized > 0 and collateral == collateral_before - seized
    assert after["total_collateral"] == collateral
    repaid = before["stablecoin"]["keeper"] - after["stablecoin"]["keeper"]
    assert debt_before <= repaid <= debt_before + debt_before // 10_000 + 1
    # Collateral worth the repayment times the incentive, at the NAV (no bad debt).
    incentive = chain.contract("LendingPool", pool).functions.liquidation_incentive().call()
    expected = repaid * incentive * 10**(8 + 18) // (WAD * price * USDC)
    assert seized == expected
    # The lenders lost nothing: their claim is the supply plus interest.
    assert after["lender_value"] >= SUPPLY * USDC
    assert after["total_assets"] >= SUPPLY * USDC
    out = liquidated["keeper"].output
    assert f"liquidate {BORROWER}: tx" in out
    assert "bad debt written off 0 mUSDC" in out
    assert "liquidated 1 loan(s)" in out and len(TX_LINE.findall(out)) == 2  # approve + liquidate


def test_second_keeper_pass_finds_nothing(liquidated: Step) -> None:
    result = liquidated["second pass"]
    assert result.returncode == 0
    assert "no unhealthy loans" in result.output and not TX_LINE.search(result.output)
    assert liquidated.state() == liquidated.extra["after_first"]["contracts"]


def test_pause_blocks_borrowing(paused: Step) -> None:
    assert paused.extra["after_pause"]["contracts"]["paused"] is True
    assert_nothing_sent(paused, "borrow paused", "borrow refused, nothing sent", PAUSED)


def test_pause_does_not_block_repay(paused: Step) -> None:
    before = paused.extra["before_repay"]["contracts"]
    after = paused.extra["after_repay"]["contracts"]
    assert after["paused"] is True
    # 100 off the debt, less the interest of the blocks in between (the debt is ~400).
    assert 100 * USDC - 100 <= before["position"][1] - after["position"][1] <= 100 * USDC
    assert before["stablecoin"]["borrower"] - after["stablecoin"]["borrower"] == 100 * USDC
    assert paused.state()["paused"] is False


def test_frozen_wallet_cannot_borrow(paused: Step) -> None:
    assert_nothing_sent(paused, "borrow frozen", "borrow refused, nothing sent", FROZEN)
    assert_contract_refused(paused, "borrow frozen, skip checks", FROZEN)


def test_stale_price_refuses_borrowing_before_sending(stale: Step) -> None:
    assert_nothing_sent(stale, "borrow stale", "borrow refused, nothing sent", STALE)


def test_stale_price_refuses_borrowing_in_the_contract_too(stale: Step) -> None:
    assert_contract_refused(stale, "borrow stale, skip checks", STALE)


def test_stale_price_pauses_the_keeper(stale: Step) -> None:
    out = stale["keeper"].output
    assert f"market 1: {STALE}: liquidations are paused until a fresh price, skipped" in out
    assert "no unhealthy loans (1 market(s) skipped: stale price)" in out
    assert not TX_LINE.search(out)


def test_stale_price_in_status(stale: Step) -> None:
    out = stale["status"].output
    assert "STALE: borrowing, collateral withdrawals and liquidations paused" in out
    assert "at the stale price" in out
    # Staleness is read from the feed first: no reverted call, so no ape trace.
    assert "reverted" not in out


def test_repay_all_works_while_stale(stale: Step) -> None:
    before = stale.extra["before_repay"]["contracts"]
    after = stale.state()
    assert before["position"][1] > 0
    assert after["position"][1] == 0 and after["position"][2] == 0
    paid = before["stablecoin"]["borrower"] - after["stablecoin"]["borrower"]
    assert paid >= before["position"][1]  # the debt plus the interest of the stale days
    assert "debt now 0 mUSDC" in stale["repay all"].output


def test_claim_income_pays_the_collaterals_share(income: Step, chain: Chain, world: World) -> None:
    distributed = income.extra["after_distribute"]["contracts"]
    claimed = income.state()
    owed = distributed["income_owed"]
    collateral = distributed["position"][0]
    token = chain.contract("GPUShareToken", world.token).functions
    supply = token.totalSupply().call()
    assert owed > 0
    assert abs(owed - 10_000 * USDC * collateral // supply) <= 1
    assert claimed["stablecoin"]["borrower"] - distributed["stablecoin"]["borrower"] == owed
    assert claimed["income_owed"] == 0
    assert "claim " in income["claim"].output and len(TX_LINE.findall(income["claim"].output)) == 1


def test_set_changes_only_the_max_ltv(risk_set: Step) -> None:
    before, after = risk_set.state("before"), risk_set.state()
    assert after["max_ltv"] == 65 * WAD // 100 != before["max_ltv"]
    assert after["reserve_factor_bps"] == before["reserve_factor_bps"] == 1_000
    assert after["treasury"] == before["treasury"] == DEPLOYER
    assert "max LTV 65.00%, reserve factor 10.00%" in risk_set["max ltv"].output


def test_everyone_exits(exits: Step) -> None:
    before, after = exits.state("before"), exits.state()
    assert after["position"] == (0, 0, 0)
    assert after["shares"]["borrower"] == before["shares"]["borrower"] + before["position"][0]
    assert after["lender_shares"] == 0
    received = after["stablecoin"]["lender"] - before["stablecoin"]["lender"]
    assert received >= before["lender_value"] > SUPPLY * USDC  # interest earned
    assert after["total_collateral"] == 0


def test_second_market_without_kyc_rights_prints_the_kyc_command(
    second_market: Step, chain: Chain, world: World
) -> None:
    pool2 = second_market.extra["pool2"]
    out = second_market["create"].output
    assert "is not a KYC provider" in out
    assert (f"ape run kyc register --network ethereum:local:foundry --account KYC_PROVIDER "
            f"--investor {pool2} --jurisdiction 840 --accredited --valid-days 3650") in out
    assert second_market.extra["registered_before"][4] is False
    assert_nothing_sent(second_market, "deposit unregistered", NOT_REGISTERED)
    p = chain.contract("LendingPool", pool2).functions
    assert p.lltv().call() == 75 * WAD // 100 and p.max_ltv().call() == 605 * WAD // 1000
    assert p.reserve_factor_bps().call() == 1_250 and p.treasury().call() == OPERATOR
    token = chain.contract("GPUShareToken", world.token).functions
    assert token.detectTransferRestriction(BORROWER, pool2, SHARE).call() == 0
    registry = chain.contract("ComplianceRegistry", world.deployed["compliance_registry"])
    assert registry.functions.investor(pool2).call()[4] is True


def test_status_and_keeper_cover_every_market(second_market: Step) -> None:
    out = second_market["status all"].output
    assert "2 market(s)" in out and "market 1:" in out and "market 2:" in out
    assert "Lone Star conservative (lLSC)" in out
    assert "LLTV 75.00%, max LTV 60.50%" in out and "reserve factor 12.50%" in out
    assert out.count("STALE: borrowing, collateral withdrawals and liquidations paused") == 2
    keeper = second_market["keeper all"].output
    for number in (1, 2):
        assert f"market {number}: {STALE}: liquidations are paused" in keeper
    assert "no unhealthy loans (2 market(s) skipped: stale price)" in keeper


BAD_INPUT = {
    "unknown market": (("pool", "status", "--pool", "9"), "unknown market 9"),
    "missing feed": (("pool", "create", "--account", "TEST::0", "--spv", "1", "--feed",
                      "NAV/NOPE/USD"), "the oracle hub has no feed NAV/NOPE/USD"),
    "not a market creator": (("pool", "create", "--account", "TEST::5", "--spv", "1"),
                             "lacks the lending factory's MARKET_CREATOR_ROLE"),
    "not the risk admin": (("pool", "set", "--account", "TEST::3", "--pool", "1",
                            "--max-ltv", "60"), "lacks RISK_ADMIN_ROLE on market 1"),
    "not the mock's owner": (("pool", "mint-mock", "--account", "TEST::1", "--to", LENDER,
                              "--amount", "1"), "may not mint the mock"),
    "no debt": (("pool", "repay", "--account", "TEST::5", "--pool", "1", "--all"),
                "has no debt in market 1"),
}


@pytest.fixture(scope="module")
def bad_input(ape: ApeRunner, chain: Chain, world: World, pool: str) -> Step:
    """Commands the scripts refuse before sending: all at once (none sends anything)."""
    r = Recorder(ape, chain, world, pool)
    r.together({}, {label: args for label, (args, _) in BAD_INPUT.items()})
    return r.step()


@pytest.mark.parametrize("label", list(BAD_INPUT))
def test_bad_input_is_refused_before_sending(bad_input: Step, label: str) -> None:
    assert_nothing_sent(bad_input, label, BAD_INPUT[label][1])
