"""Smoke tests of the lending scripts (`ape run pool ...`, `ape run keeper`) against a
real anvil; the logic they call is tested in-process in tests/client/test_pool.py and
tests/client/test_keeper.py.

One anvil and one deployment for the module: the platform deploys, the SPV operator
registers its fleet and mints shares, the KYC provider registers the people, the hub
admin installs a 2-of-3 oracle signer set and the SPV's NAV feed, and NAV prices reach
the hub as real reports: a `nav-per-share` snapshot of the fleet read from the chain,
signed by two of the three oracle keys, logged and published by the oracle's
publisher (no mock oracle anywhere).

Then one story, as an operator's shell runs it: create a market, supply, post
collateral, a refused borrow (before sending, then by the contract with
--skip-checks), a borrow, `pool status` as a real `ape` process; the NAV falls, a keeper
without a KYC record is refused before any transaction, the keeper liquidates (a real
`ape` process) and a second pass finds nothing. The chain state is read with web3,
independently of the scripts, around each step.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from gpushares import abi, lending, reasons
from gpushares.demo import test_account as account_address
from gpushares.devnode import PROJECT_ROOT, dev_key
from jurisdictions import codes
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

ABOVE_MAX_LTV = reasons.POOL_BORROW_PUT_LOAN_ABOVE
NOT_REGISTERED = codes.message(codes.Restriction.RECEIVER_NOT_REGISTERED)

# The line `scripts._lib.echo_receipt` prints for every transaction.
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
    results: dict[str, ApeResult] = field(default_factory=dict)


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
    from gpushares.demo import TITLE_OVERRIDE

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
        ("jurisdictions", "apply", "--account", "TEST::1", "--overrides", str(TITLE_OVERRIDE)),
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


# ---------------------------------------------------------------------------------
# The lending story
# ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool(ape: ApeRunner, chain: Chain, world: World) -> str:
    """The platform (market creator and KYC provider) creates market 1 with defaults."""
    world.results["create"] = ok(ape("pool", "create", "--account", "TEST::0", "--spv", "1"))
    factory = chain.contract("LendingPoolFactory", world.deployed["lending_pool_factory"])
    return factory.functions.market_at(1).call()


@pytest.fixture(scope="module")
def story(ape: ApeRunner, chain: Chain, world: World, pool: str) -> Step:
    r = Recorder(ape, chain, world, pool)
    r.run("mint lender", "pool", "mint-mock", "--account", "TEST::0", "--to", LENDER,
          "--amount", "100000")
    r.run("mint keeper", "pool", "mint-mock", "--account", "TEST::0", "--to", KEEPER,
          "--amount", "50000")
    r.run("supply", "pool", "supply", "--account", "TEST::2", "--pool", "1",
          "--amount", str(SUPPLY))
    r.run("deposit", "pool", "deposit-collateral", "--account", "TEST::3", "--pool", "1",
          "--shares", str(COLLATERAL))
    # 69 % and 71 % of the collateral's value at the NAV on the chain (it ages with the
    # chain's date), in whole mUSDC.
    value = COLLATERAL * checked_price(chain, pool) / 10**8
    amount, too_much = int(value * BORROW_LTV), int(value * TOO_MUCH_LTV) + 1
    borrow = ("pool", "borrow", "--account", "TEST::3", "--pool", "1")
    r.refused("too much", *borrow, "--amount", str(too_much))
    r.refused("too much, skip checks", *borrow, "--amount", str(too_much), "--skip-checks")
    r.run("borrow", *borrow, "--amount", str(amount))
    r.run("status near", "pool", "status", "--pool", "1", "--near", "15", subprocess=True)
    price = checked_price(chain, pool)
    world.navs.append(world.oracle.publish(INDEX_CRASH))
    r.refused("outsider", "keeper", "--account", "TEST::5")
    before_keeper = r.read()
    r.run("keeper", "keeper", "--account", "TEST::4", subprocess=True)
    after_keeper = r.read()
    r.run("second pass", "keeper", "--account", "TEST::4", "--pool", "1")
    return r.step(amount=amount, price=price, crashed=checked_price(chain, pool),
                  before_keeper=before_keeper, after_keeper=after_keeper)


# ---------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------


def test_pool_commands_create_supply_and_borrow(story: Step, world: World, chain: Chain,
                                                pool: str) -> None:
    p = chain.contract("LendingPool", pool).functions
    assert p.price_feed().call() == world.adapter and p.lltv().call() == 80 * WAD // 100
    registry = chain.contract("ComplianceRegistry", world.deployed["compliance_registry"])
    assert registry.functions.investor(pool).call()[4] is True
    created = world.results["create"].output
    assert f"market 1: pool {pool}" in created and "market 1 can hold LSH1 collateral now" in \
        created
    assert len(TX_LINE.findall(created)) == 3  # rate model, create_market, set_investor
    state = story.state()
    assert state["total_assets"] >= SUPPLY * USDC
    assert "supply 50,000 mUSDC to market 1" in story["supply"].output
    assert "vault shares, now worth" in story["supply"].output
    collateral, debt, _ = story.extra["before_keeper"]["contracts"]["position"]
    amount = story.extra["amount"] * USDC
    assert collateral == COLLATERAL * SHARE and amount <= debt <= amount + amount // 10_000
    health = lending.health(lending_market(chain, pool), collateral, debt, story.extra["price"])
    assert health.within_max_ltv
    assert f"LTV {health.ltv_percent()} (max 70.00%, liquidation above 80.00%)" in \
        story["borrow"].output


def test_a_borrow_above_the_max_ltv_is_refused_before_sending_and_by_the_pool(
        story: Step) -> None:
    assert_nothing_sent(story, "too much", "borrow refused, nothing sent",
                        "above the max LTV 70.00%", "borrow at most")
    assert_contract_refused(story, "too much, skip checks", ABOVE_MAX_LTV)


def test_pool_status_as_a_real_ape_process(story: Step) -> None:
    out = story["status near"].output
    amount = story.extra["amount"]
    assert re.search(rf"{BORROWER}: collateral 250 LSH1, debt {amount:,}(\.\d+)? mUSDC, LTV "
                     r"6[89]\.\d\d%\s+near liquidation", out), out
    assert "LLTV 80.00%, max LTV 70.00%, liquidation incentive 1.0638" in out
    assert f"(heartbeat {HEARTBEAT}s)" in out and "reverted" not in out


def test_a_keeper_without_a_kyc_record_is_refused_before_any_transaction(story: Step) -> None:
    assert_nothing_sent(story, "outsider", "keeper refused, nothing sent",
                        f"{OUTSIDER} may not hold LSH1 collateral (ERC-1404 code 6)",
                        NOT_REGISTERED)


def test_the_keeper_liquidates_and_a_second_pass_finds_nothing(story: Step, chain: Chain,
                                                              pool: str) -> None:
    before = story.extra["before_keeper"]["contracts"]
    after = story.extra["after_keeper"]["contracts"]
    collateral_before, debt_before, _ = before["position"]
    collateral, debt, _ = after["position"]
    assert lending.health(lending_market(chain, pool), collateral_before, debt_before,
                          story.extra["crashed"]).liquidatable
    seized = after["shares"]["keeper"] - before["shares"]["keeper"]
    assert seized > 0 and collateral == collateral_before - seized
    repaid = before["stablecoin"]["keeper"] - after["stablecoin"]["keeper"]
    assert debt_before <= repaid <= debt_before + debt_before // 10_000 + 1
    out = story["keeper"].output
    assert f"liquidate {BORROWER}: tx" in out and "bad debt written off 0 mUSDC" in out
    assert "liquidated 1 loan(s) (market 1: repaid" in out
    assert len(TX_LINE.findall(out)) == 2  # approve + liquidate
    second = story["second pass"].output
    assert "no unhealthy loans" in second and not TX_LINE.search(second)
    assert story.state() == after
