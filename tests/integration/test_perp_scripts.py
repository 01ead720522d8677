"""The perp scripts (`ape run perp ...`, `ape run hedge`, `ape run keeper`) against anvil.

One anvil and one deployment for the module: the platform deploys, the SPV operator
registers its fleet of 8 H100s, the hub admin installs a 2-of-3 oracle signer set and
the H100 (and an A100) GPU-hour index feed, and index values reach the hub as real
reports: an `offer-median` snapshot, signed by two of the three oracle keys, logged and
published by the oracle's publisher; the fleet's utilisation arrives the same way, as a
`time-weighted-utilisation` report (no mock oracle anywhere).

Then the perp story, one module-scoped fixture per step: create market 1 with an
insurance fund -> the operator's hedge (without attested utilisation it asks for one;
dry run; then the real short on the oracle's utilisation) while a startup goes long and
a trader opens near the leverage cap -> a refused over-levered open -> status against
the chain's views -> a day of funding and the index up -> the index down: the keeper's
dry run, then its liquidation; the startup withdraws all it can -> a second keeper
pass finds nothing while the startup closes and withdraws, the operator takes profit and
the guardian pauses -> opens refused while paused -> a stale index refuses trades and
pauses the keeper -> market 2 on the A100 index: a bad-debt liquidation leaves a
deficit, opens are refused until the insurance is funded. Each step records the chain
state, read with web3 independently of the scripts, before and after its commands.
Refusals are checked to send nothing: no new block, no nonce used. The commands run
inside the test process (tests/integration/conftest.py), one after another.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak

from gpushares import abi, perp, reasons
from gpushares.demo import test_account as account_address
from gpushares.devnode import PROJECT_ROOT, dev_key
from oracle import attest, reports
from oracle.log import AttestationLog
from oracle.publisher import Publisher

from .conftest import ApeResult, ApeRunner, Chain

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain-perps")]

FLEET_CSV = PROJECT_ROOT / "examples" / "fleet-h100.csv"
DOCUMENTS = PROJECT_ROOT / "examples" / "spv-legal-documents.txt"
SPV_LEI = "5493001KJTIIGC8Y1R12"
INDEX_FEED = "H100-SXM-80GB/USD/GPUh"
SECOND_FEED = "A100-SXM-80GB/USD/GPUh"
HEARTBEAT = 2 * 86_400
DAY = 86_400

DEPLOYER, OPERATOR, STARTUP, DEGEN, KEEPER, SHORTER = (account_address(i) for i in range(6))
PEOPLE = {"deployer": DEPLOYER, "operator": OPERATOR, "startup": STARTUP, "degen": DEGEN,
          "keeper": KEEPER, "shorter": SHORTER}
ORACLE_KEYS = [dev_key(20 + i) for i in range(3)]
ORACLE_SIGNERS = sorted((Account.from_key(k).address for k in ORACLE_KEYS),
                        key=lambda a: int(a, 16))
PUBLISHER_KEY = dev_key(9)

USDC = 10**6
WAD = 10**18
GPUS = 8
HOURS = 720
INSURANCE = 2_000
# The market's parameters: the script's defaults, funding velocity 300 %/day per day.
PARAMS = perp.RiskParams(
    skew_scale=1_000_000, max_long_oi=500_000, max_short_oi=500_000, initial_margin_bps=1_000,
    maintenance_margin_bps=500, taker_fee_bps=10, maker_fee_bps=5, liquidation_fee_bps=50,
    min_keeper_fee=5 * USDC, max_funding_velocity=3 * WAD, max_funding_rate=5 * WAD // 100,
)

MARKET_CREATOR_ROLE = keccak(text="MARKET_CREATOR_ROLE")
RISK_ADMIN_ROLE = keccak(text="RISK_ADMIN_ROLE")
GUARDIAN_ROLE = keccak(text="GUARDIAN_ROLE")

# The line `scripts/_lib.py:report` prints for every transaction.
TX_LINE = re.compile(r"tx (0x[0-9a-fA-F]{64}) \(block (\d+), gas ([\d,]+)\)")


def ok(result: ApeResult) -> ApeResult:
    assert result.returncode == 0, str(result)
    assert "Traceback" not in result.output, str(result)
    return result


# ---------------------------------------------------------------------------------
# The scripts' number formats (the spec the output is checked against)
# ---------------------------------------------------------------------------------


def money(units: int) -> str:
    text = f"{Decimal(units).scaleb(-6):,.6f}".rstrip("0").rstrip(".")
    return f"{text} mUSDC"


def gpuh(size: int) -> str:
    text = f"{Decimal(abs(size)).scaleb(-18):,.18f}".rstrip("0").rstrip(".")
    return f"{text} GPU-hours"


def price_text(wad: int) -> str:
    return f"{Decimal(wad) / Decimal(WAD):,.6f} USD/GPU-h"


def row(label: str, value: str) -> str:
    """A row of the hedge's table."""
    return f"{label:<20} {value}"


def rate_text(wad: int) -> str:
    return f"{Decimal(wad) / Decimal(WAD) * 100:.4f}%"


# ---------------------------------------------------------------------------------
# The world: deployment, SPV, oracle, and reports signed 2-of-3
# ---------------------------------------------------------------------------------


class IndexOracle:
    """Publishes index values as the oracle does: an `offer-median` v1 snapshot of offers
    at the value, co-signed by 2 of the 3 signer keys, appended to an attestation log
    and submitted to the hub by the publisher; the fleet's utilisation likewise, as a
    `time-weighted-utilisation` v1 report."""

    def __init__(self, chain: Chain, deployed: dict[str, Any], log_path: Path):
        self.web3 = chain.web3
        self.hub = self.web3.eth.contract(deployed["oracle_hub"], abi=abi.load("OracleHub"))
        self.domain = attest.Domain(chain_id=self.web3.eth.chain_id, hub=self.hub.address)
        self.log_path = log_path
        self.last_observed = 0

    def _now(self) -> int:
        now = self.web3.eth.get_block("latest")["timestamp"]
        if now <= self.last_observed:  # the hub wants strictly newer data
            self.web3.provider.make_request("evm_mine", [])
            now = self.web3.eth.get_block("latest")["timestamp"]
        return now

    def _attest(self, kind: str, snapshots: list[dict[str, Any]], now: int) -> None:
        version = self.hub.functions.config_version().call()
        with AttestationLog(self.log_path) as log:
            reports.record_signer_set(log, self.domain, version, ORACLE_SIGNERS, 2)
            for snapshot in snapshots:
                reports.attest_snapshot(log, kind, snapshot, domain=self.domain,
                                        config_version=version, keys=ORACLE_KEYS[:2])
            outcomes = Publisher(self.web3, self.hub.address, log, PUBLISHER_KEY).publish_pending()
        assert [o.status for o in outcomes] == ["published"] * len(snapshots), outcomes
        self.last_observed = now

    def publish(self, values: dict[str, str]) -> dict[str, int]:
        """Publish each feed's value (USD per GPU-hour); returns the hub's 8-decimal values."""
        now = self._now()
        self._attest("price", [{
            "methodology": "offer-median",
            "version": 1,
            "feedId": reports.feed_id(name),
            "observedAt": now,
            "source": "test: offers at the index level",
            "offers": [{"provider": f"test:{i}", "gpu": name.split("/")[0],
                        "pricePerGpuHour": value} for i in range(3)],
        } for name, value in values.items()], now)
        result = {}
        for name, value in values.items():
            fid = bytes.fromhex(reports.feed_id(name)[2:])
            result[name] = self.hub.functions.latest_value(fid).call()[0]
            assert result[name] == int(Decimal(value) * 10**8)
        return result

    def publish_utilisation(self, token: str, percent: str) -> int:
        """Every GPU busy `percent` % over the last 15 minutes; returns the hub's bps."""
        now = self._now()
        self._attest("utilisation", [{
            "methodology": "time-weighted-utilisation",
            "version": 1,
            "spvToken": token,
            "periodStart": now - 900,
            "periodEnd": now,
            "gpus": [{"uuid": f"GPU-test-{i}", "samples": [[now - 900, percent]]}
                     for i in range(GPUS)],
            "rentalInvoices": [],
        }], now)
        return self.hub.functions.utilisation(token).call()[3]


@dataclass
class World:
    deployed: dict[str, Any]
    token: str
    oracle: IndexOracle
    adapters: dict[str, str]
    published: list[dict[str, int]] = field(default_factory=list)


def run_each(ape: ApeRunner, *commands: tuple[str, ...]) -> list[ApeResult]:
    """Run commands one after another, in the order given (a group of commands that
    would not race if an operator ran them at once: different senders, or nothing sent)."""
    return [ape(*args) for args in commands]


def run_together(ape: ApeRunner, *commands: tuple[str, ...]) -> list[ApeResult]:
    return [ok(result) for result in run_each(ape, *commands)]


def transact(chain: Chain, call: Any, sender: str) -> None:
    tx = call.transact({"from": sender})
    assert chain.web3.eth.wait_for_transaction_receipt(tx)["status"] == 1


@pytest.fixture(scope="module")
def world(ape: ApeRunner, chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> World:
    """Deploy; load the jurisdiction table (TEST::0) while the operator (TEST::1) creates
    the SPV; the hub admin installs the 2-of-3 signer set while the operator records its
    US title override, then adds the H100 index feed while the operator registers the
    fleet. The A100 feed and the mock stablecoin of the traders come straight from the
    deployer (web3); the oracle publishes both indexes."""
    from gpushares.demo import rules_with_demo_override

    rules = rules_with_demo_override(tmp_path_factory.mktemp("override"))
    ok(ape("deploy", "--account", "TEST::0", "--operator", OPERATOR))
    run_together(
        ape,
        ("jurisdictions", "apply", "--account", "TEST::0"),
        ("spv", "create", "--account", "TEST::1", "--name", "Lone Star GPU Fleet I LLC",
         "--jurisdiction", "840", "--lei", SPV_LEI, "--documents", str(DOCUMENTS),
         "--token-name", "Lone Star H100 Shares", "--symbol", "LSH1", "--shares-per-gpu", "1000"),
    )
    run_together(
        ape,
        ("oracle", "set-signers", "--account", "TEST::0",
         *[arg for s in ORACLE_SIGNERS for arg in ("--signer", s)], "--threshold", "2"),
        ("jurisdictions", "apply", "--account", "TEST::1", "--rules", str(rules)),
    )
    run_together(
        ape,
        ("oracle", "add-feed", "--account", "TEST::0", "--name", INDEX_FEED,
         "--description", "H100 SXM 80GB / USD per GPU-hour", "--min", "0.10", "--max", "50",
         "--max-move-bps", "5000", "--heartbeat", str(HEARTBEAT)),
        ("spv", "add-gpus", "--account", "TEST::1", "--spv", "1", "--csv", str(FLEET_CSV)),
    )
    deployed = json.loads(next(ape.deployments_dir.glob("*.json")).read_text())
    oracle = IndexOracle(chain, deployed, tmp_path_factory.mktemp("oracle") / "log.sqlite")
    hub = oracle.hub.functions
    second = bytes.fromhex(reports.feed_id(SECOND_FEED)[2:])
    transact(chain, hub.add_feed(second, "A100 SXM 80GB / USD per GPU-hour", 10**7, 50 * 10**8,
                                 5_000, HEARTBEAT), DEPLOYER)
    stable = chain.contract("MockStablecoin", deployed["income_token"]).functions
    for who, amount in ((DEPLOYER, 100_000), (STARTUP, 20_000), (DEGEN, 10_000),
                        (SHORTER, 1_000_000)):
        transact(chain, stable.mint(who, amount * USDC), DEPLOYER)
    token = chain.contract("SPVFactory", deployed["spv_factory"]).functions.spvs(1).call()[4]
    assert hub.threshold().call() == 2 and hub.signers().call() == ORACLE_SIGNERS
    adapters = {name: hub.feed_adapter(bytes.fromhex(reports.feed_id(name)[2:])).call()
                for name in (INDEX_FEED, SECOND_FEED)}
    result = World(deployed, token, oracle, adapters)
    result.published.append(oracle.publish({INDEX_FEED: "2.40", SECOND_FEED: "1.50"}))
    return result


# ---------------------------------------------------------------------------------
# Reading the chain
# ---------------------------------------------------------------------------------


def markets(chain: Chain, world: World) -> list[Any]:
    factory = chain.contract("PerpMarketFactory", world.deployed["perp_market_factory"])
    count = factory.functions.market_count().call()
    return [chain.contract("PerpMarket", factory.functions.market_at(i).call()).functions
            for i in range(1, count + 1)]


def market(chain: Chain, world: World, number: int = 1) -> Any:
    return markets(chain, world)[number - 1]


def read_state(chain: Chain, world: World) -> dict[str, Any]:
    """Every market's stored state, the balances, and what shows that nothing was sent
    (block height and the nonces of the test accounts)."""
    stable = chain.contract("MockStablecoin", world.deployed["income_token"]).functions
    state = {
        "markets": [{
            "positions": {who: tuple(m.position(a).call()) for who, a in PEOPLE.items()},
            "market": tuple(m.market().call()),
            "cash": m.cash().call(),
            "deficit": m.deficit().call(),
            "paused": m.paused().call(),
            "params": tuple(m.risk_params().call()),
            "fee_recipient": m.fee_recipient().call(),
        } for m in markets(chain, world)],
        "stablecoin": {who: stable.balanceOf(a).call() for who, a in PEOPLE.items()},
    }
    return {
        "contracts": state,
        "sent": {
            "block": chain.block_number,
            "nonces": {who: chain.web3.eth.get_transaction_count(a) for who, a in PEOPLE.items()},
        },
    }


def views(chain: Chain, world: World, number: int = 1) -> dict[str, Any]:
    """What `perp status` shows, read through the views at the current block."""
    m = market(chain, world, number)
    result: dict[str, Any] = {
        "index": tuple(m.index_price().call()),
        "market": tuple(m.market().call()),
        "rate": m.funding_rate().call(),
        "positions": {},
    }
    for who, a in PEOPLE.items():
        size, margin, _, _ = m.position(a).call()
        if size or margin:
            result["positions"][who] = {
                "size": size, "margin": margin, "pnl": m.pnl(a).call(),
                "funding": m.funding_owed(a).call(), "equity": m.equity(a).call(),
                "ratio": m.margin_ratio(a).call(), "liq": m.liquidation_price(a).call(),
                "can_liquidate": m.can_liquidate(a).call(),
            }
    return result


def position_line(who: str, v: dict[str, Any]) -> str:
    """The beginning of `perp status`'s line for a position (up to the leverage)."""
    side = "long" if v["size"] > 0 else "short"
    return (f"{PEOPLE[who]}: {side} {gpuh(v['size'])}, margin {money(v['margin'])}, PnL "
            f"{money(v['pnl'])}, funding owed {money(v['funding'])}, equity "
            f"{money(v['equity'])}, margin ratio {rate_text(v['ratio'])}")


def modified_events(chain: Chain, world: World, who: str, number: int = 1) -> list[Any]:
    factory = chain.contract("PerpMarketFactory", world.deployed["perp_market_factory"])
    address = factory.functions.market_at(number).call()
    contract = chain.contract("PerpMarket", address)
    return [e.args for e in contract.events.PositionModified.get_logs(
        from_block=0, argument_filters={"account": who})]


def time_travel(chain: Chain, seconds: int) -> None:
    chain.web3.provider.make_request("evm_increaseTime", [seconds])
    chain.web3.provider.make_request("evm_mine", [])


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

    def __init__(self, ape: ApeRunner, chain: Chain, world: World) -> None:
        self.ape, self.chain, self.world = ape, chain, world
        self.results: dict[str, ApeResult] = {}
        self.refusals: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.before = self.read()

    def read(self) -> dict[str, Any]:
        return read_state(self.chain, self.world)

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


def timeless(state: dict[str, Any]) -> dict[str, Any]:
    """The state without the insurance fund, which is marked to funding that accrues
    with the clock alone."""
    return {**state, "markets": [
        {**m, "market": m["market"][:5] + m["market"][6:]} for m in state["markets"]]}


def assert_contract_refused(step: Step, label: str, reason: str) -> None:
    """--skip-checks: the transaction went out and the contract refused it, unchanged."""
    result = step[label]
    assert result.returncode != 0, str(result)
    assert "--skip-checks: sending anyway" in result.output, str(result)
    assert f"refused by the contract: {reason}" in result.output, str(result)
    before, after = step.extra["refusals"][label]
    assert timeless(after["contracts"]) == timeless(before["contracts"])


# ---------------------------------------------------------------------------------
# The perp story, one fixture per step
# ---------------------------------------------------------------------------------

OPEN = ("perp", "open", "--market", "1")
HEDGE = ("hedge", "--account", "TEST::1", "--market", "1", "--spv", "1", "--hours", str(HOURS))


@pytest.fixture(scope="module")
def created(ape: ApeRunner, chain: Chain, world: World) -> Step:
    """The platform (market creator) creates market 1 on the H100 index with the default
    risk parameters, a faster funding velocity, and seeds the insurance fund."""
    r = Recorder(ape, chain, world)
    r.run("create", "perp", "create", "--account", "TEST::0", "--feed", INDEX_FEED,
          "--max-funding-velocity", "300", "--insurance", str(INSURANCE))
    return r.step()


@pytest.fixture(scope="module")
def quiet(ape: ApeRunner, chain: Chain, world: World, created: Step) -> Step:
    """Nothing sent: the status of the new market, the operator's hedge dry run at 85 %
    utilisation, and a hedge that needs a utilisation the oracle has not attested yet."""
    r = Recorder(ape, chain, world)
    r.together({"status": ("perp", "status", "--market", "1"),
                "hedge dry": (*HEDGE, "--utilisation", "0.85", "--dry-run")},
               {"hedge no utilisation": (*HEDGE, "--dry-run")})
    r.run("hedge dry process", *HEDGE, "--utilisation", "0.85", "--dry-run", subprocess=True)
    return r.step()


@pytest.fixture(scope="module")
def traded(ape: ApeRunner, chain: Chain, world: World, quiet: Step) -> Step:
    """The oracle attests the fleet's utilisation (80 %); the operator hedges 30 days of
    it at 2x while the startup buys 3,000 GPU-hours on 1,500 of margin, a trader buys
    4,000 on 1,100 (about 9x), and the platform creates market 2 on the A100 index with
    10 of insurance (used at the end)."""
    r = Recorder(ape, chain, world)
    bps = world.oracle.publish_utilisation(world.token, "80")
    # The longs first: from then on the skew is long, so the funding rate only rises
    # (test_funding_accrues_from_longs_to_shorts).
    r.together({
        "long": (*OPEN, "--account", "TEST::2", "--long", "3000", "--margin", "1500"),
        "degen": (*OPEN, "--account", "TEST::3", "--long", "4000", "--margin", "1100"),
        "hedge": HEDGE,
        "create 2": ("perp", "create", "--account", "TEST::0", "--feed", SECOND_FEED,
                     "--insurance", "10"),
    })
    return r.step(utilisation_bps=bps)


@pytest.fixture(scope="module")
def checked(ape: ApeRunner, chain: Chain, world: World, traded: Step) -> Step:
    """`perp status` against the views; an open far above the leverage cap is refused."""
    r = Recorder(ape, chain, world)
    r.together({"status": ("perp", "status", "--market", "1")},
               {"over leverage": (*OPEN, "--account", "TEST::5", "--long", "20000",
                                  "--margin", "1000")})
    return r.step(views=views(chain, world))


@pytest.fixture(scope="module")
def funded(ape: ApeRunner, chain: Chain, world: World, checked: Step) -> Step:
    """A day passes with longs outweighing shorts; the index rises to 2.45."""
    before = views(chain, world)
    time_travel(chain, DAY)
    world.published.append(world.oracle.publish({INDEX_FEED: "2.45"}))
    r = Recorder(ape, chain, world)
    r.run("status", "perp", "status", "--market", "1", subprocess=True)
    return r.step(views_before=before, views=views(chain, world))


@pytest.fixture(scope="module")
def crashed(ape: ApeRunner, chain: Chain, world: World, funded: Step) -> Step:
    """The index falls to 2.20: the 9x long is below maintenance. Status flags it; the
    keeper's dry run (every lending and perp market) says what it would do."""
    world.published.append(world.oracle.publish({INDEX_FEED: "2.20"}))
    r = Recorder(ape, chain, world)
    r.together({"status": ("perp", "status", "--market", "1"),
                "keeper dry": ("keeper", "--account", "TEST::4", "--dry-run")})
    return r.step(views=views(chain, world))


@pytest.fixture(scope="module")
def liquidated(ape: ApeRunner, chain: Chain, world: World, crashed: Step) -> Step:
    """The keeper liquidates; then the startup withdraws all the margin it can (not at
    the same time: the liquidation moves the skew, and with it the close cost that the
    startup's initial margin includes)."""
    r = Recorder(ape, chain, world)
    r.run("keeper", "keeper", "--account", "TEST::4", subprocess=True)
    after_keeper = r.read()
    r.run("withdraw all", "perp", "withdraw", "--account", "TEST::2", "--market", "1", "--all")
    return r.step(after_keeper=after_keeper, views=views(chain, world))


@pytest.fixture(scope="module")
def closed(ape: ApeRunner, chain: Chain, world: World, liquidated: Step) -> Step:
    """A second keeper pass on market 1 while the startup closes and withdraws, the
    operator takes 500 of profit out and the risk admin lowers the maintenance margin to
    4 % and pauses new risk (closes and withdrawals still work)."""
    r = Recorder(ape, chain, world)
    r.together({
        "second pass": ("keeper", "--account", "TEST::4", "--perp", "1"),
        "close": ("perp", "close", "--account", "TEST::2", "--market", "1", "--withdraw"),
        "withdraw": ("perp", "withdraw", "--account", "TEST::1", "--market", "1",
                     "--amount", "500"),
        "pause": ("perp", "set", "--account", "TEST::0", "--market", "1",
                  "--maintenance-margin", "4", "--pause"),
    })
    return r.step()


@pytest.fixture(scope="module")
def paused(ape: ApeRunner, chain: Chain, world: World, closed: Step) -> Step:
    r = Recorder(ape, chain, world)
    r.together({"status": ("perp", "status", "--market", "1")},
               {"open paused": (*OPEN, "--account", "TEST::3", "--long", "100",
                                "--margin", "100")})
    return r.step()


@pytest.fixture(scope="module")
def stale(ape: ApeRunner, chain: Chain, world: World, paused: Step) -> Step:
    """No index arrives for longer than the heartbeat: trades are refused (by the script,
    and by the contract with --skip-checks) and the keeper skips the market. Then the
    oracle publishes again (the H100 index back up at 2.30)."""
    time_travel(chain, HEARTBEAT + 3_600)
    r = Recorder(ape, chain, world)
    r.together({"keeper": ("keeper", "--account", "TEST::4"),
                "status": ("perp", "status", "--market", "1")},
               {"open stale": (*OPEN, "--account", "TEST::3", "--long", "100",
                               "--margin", "100")})
    r.refused("open stale, skip checks", *OPEN, "--account", "TEST::2", "--long", "10",
              "--skip-checks")
    step = r.step()
    world.published.append(world.oracle.publish({INDEX_FEED: "2.30", SECOND_FEED: "1.50"}))
    return step


@pytest.fixture(scope="module")
def deficit(ape: ApeRunner, chain: Chain, world: World, stale: Step) -> Step:
    """Market 2 (A100 index, 10 of insurance): the guardian unpauses market 1 while a
    long and a short of 4,000 GPU-hours open on market 2. The A100 index falls 20 %: the
    long's loss exceeds its margin, the keeper's liquidation leaves the insurance
    negative, a deficit is recorded and new risk pauses until it is funded."""
    r = Recorder(ape, chain, world)
    two = ("perp", "open", "--market", "2")
    r.together({
        "unpause": ("perp", "set", "--account", "TEST::0", "--market", "1", "--unpause"),
        "long 2": (*two, "--account", "TEST::3", "--long", "4000", "--margin", "650"),
        "short 2": (*two, "--account", "TEST::5", "--short", "4000", "--margin", "2000"),
    })
    world.published.append(world.oracle.publish({SECOND_FEED: "1.20"}))
    before_keeper = views(chain, world, 2)
    r.run("keeper", "keeper", "--account", "TEST::4", "--perp", "2")
    after_keeper = r.read()
    r.together({"status": ("perp", "status", "--market", "2")},
               {"open deficit": (*two, "--account", "TEST::2", "--long", "100",
                                 "--margin", "100")})
    r.refused("open deficit, skip checks", *two, "--account", "TEST::5", "--short", "100",
              "--skip-checks")
    r.run("fund", "perp", "fund-insurance", "--account", "TEST::0", "--market", "2",
          "--amount", "1000")
    after_fund = r.read()
    r.run("open after", *two, "--account", "TEST::2", "--long", "100", "--margin", "100")
    return r.step(before_keeper=before_keeper, after_keeper=after_keeper,
                  after_fund=after_fund)


# ---------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------


def test_index_reports_reach_the_market_through_the_hub(created: Step, world: World,
                                                        chain: Chain) -> None:
    adapter = chain.contract("FeedAdapter", world.adapters[INDEX_FEED]).functions
    assert adapter.decimals().call() == 8 and adapter.heartbeat().call() == HEARTBEAT
    assert adapter.latestRoundData().call()[1] == world.published[0][INDEX_FEED] == 240_000_000
    m = market(chain, world)
    assert m.index_feed().call() == world.adapters[INDEX_FEED]
    assert m.asset().call() == world.deployed["income_token"]


def test_create_sets_the_parameters_and_seeds_the_insurance(created: Step, world: World,
                                                            chain: Chain) -> None:
    m = market(chain, world)
    assert perp.RiskParams.from_chain(m.risk_params().call()) == PARAMS
    assert m.fee_recipient().call() == DEPLOYER
    for role in (RISK_ADMIN_ROLE, GUARDIAN_ROLE):
        assert m.hasRole(role, DEPLOYER).call()
    assert m.insurance_fund().call() == INSURANCE * USDC == m.cash().call()
    assert m.max_leverage().call() == 10 * WAD
    out = created["create"].output
    address = markets(chain, world)[0].address
    assert f"market 1: PerpMarket {address}" in out
    assert "max leverage 10.00x (initial margin 10.00%), maintenance 5.00%" in out
    assert f"insurance fund {money(INSURANCE * USDC)}" in out
    assert len(TX_LINE.findall(out)) == 3  # create_market, approve, fund_insurance
    spent = created.state("before")["stablecoin"]["deployer"] - created.state()["stablecoin"][
        "deployer"]
    assert spent == INSURANCE * USDC


def test_status_of_a_new_market(quiet: Step, world: World) -> None:
    out = quiet["status"].output
    for fragment in (
        "PerpMarketFactory", "1 market(s)",
        f"perp market 1: {INDEX_FEED} / mUSDC at",
        f"index feed    {INDEX_FEED} adapter {world.adapters[INDEX_FEED]}",
        "max leverage 10.00x (initial margin 10.00%), maintenance 5.00%, liquidation fee "
        "0.50% + 5 mUSDC minimum keeper fee",
        "fees taker 0.10%, maker 0.05%; skew scale 1,000,000 GPU-hours; OI caps long "
        "500,000, short 500,000 GPU-hours",
        "funding velocity 300.0000%/day per day at full skew, cap 5.0000%/day",
        "index 2.400000 USD/GPU-h, fresh, updated", f"(heartbeat {HEARTBEAT}s)",
        "open interest long 0 GPU-hours, short 0 GPU-hours",
        "funding rate 0.0000%/day (0.0000% a year), nobody pays",
        f"insurance fund {money(INSURANCE * USDC)}, deficit 0 mUSDC, fees uncollected 0 mUSDC",
        "paused: no",
        "positions: none",
    ):
        assert fragment in out, f"{fragment!r} missing from\n{out}"


def test_hedge_without_attested_utilisation_asks_for_one(quiet: Step) -> None:
    assert_nothing_sent(quiet, "hedge no utilisation", "no attested utilisation for LSH1",
                        "pass --utilisation")


def test_a_real_ape_process_prints_what_the_in_process_run_prints(quiet: Step) -> None:
    """The smoke test of `ape run hedge` as a shell runs it: the same plan, line for line,
    as the in-process run the other tests use."""
    def lines(out: str) -> list[str]:
        return [line for line in out.splitlines() if line.strip()
                and not line.startswith(("INFO:", "WARNING:"))]

    assert lines(quiet["hedge dry process"].output) == lines(quiet["hedge dry"].output)


def test_hedge_dry_run_prints_the_plan_and_sends_nothing(quiet: Step) -> None:
    assert quiet.before == quiet.after
    out = quiet["hedge dry"].output
    size = perp.hedge_size(GPUS, HOURS, Decimal("0.85"))
    assert size == 4_896 * WAD
    fill = perp.fill_price(240 * WAD // 100, 0, -size, PARAMS.skew_scale)
    scale = perp.value_scale(6)
    fee = perp.trade_fee(0, -size, fill, PARAMS, scale)
    premium = perp.premium_cost(-size, fill, 240 * WAD // 100, scale)
    notional = -(-size * fill // scale)
    margin = -(-notional // 2) + fee + premium
    for fragment in (
        row("GPUs (active)", "8"), row("hours", "720"),
        row("utilisation", "85.00% (--utilisation)"),
        row("GPU-hours hedged", "4,896 GPU-hours (short)"),
        row("index price", "2.400000 USD/GPU-h"),
        row("fill price", price_text(fill)),
        row("revenue locked in", f"{money(size * fill // scale)} (size x fill; fee {money(fee)}"),
        row("margin posted", f"{money(margin)} (leverage 2x)"),
        "dry run: nothing sent",
    ):
        assert fragment in out, f"{fragment!r} missing from\n{out}"
    assert not TX_LINE.search(out)
    # Whatever the index does, the hedged revenue stays where the fill locked it.
    rows = re.findall(r"^\s+([+-]\d+) %\s+[\d,.]+\s+([\d,.-]+) mUSDC\s+([\d,.-]+) mUSDC"
                      r"\s+([\d,.-]+) mUSDC", out, re.M)
    assert [row[0] for row in rows] == ["-20", "-10", "+10", "+20"], out
    hedged = {Decimal(row[3].replace(",", "")) for row in rows}
    assert len(hedged) == 1
    assert abs(hedged.pop() - Decimal(size * fill // scale - fee).scaleb(-6)) <= Decimal("0.01")
    unhedged = [Decimal(row[1].replace(",", "")) for row in rows]
    assert unhedged == sorted(unhedged)


def test_hedge_sells_the_attested_utilisation(traded: Step, world: World, chain: Chain) -> None:
    assert traded.extra["utilisation_bps"] == 8_000
    size = perp.hedge_size(GPUS, HOURS, Decimal("0.8"))
    assert size == 4_608 * WAD
    position = traded.state()["markets"][0]["positions"]["operator"]
    assert position[0] == -size
    (event,) = modified_events(chain, world, OPERATOR)
    deposited = (traded.state("before")["stablecoin"]["operator"]
                 - traded.state()["stablecoin"]["operator"])
    assert position[1] == event["margin"] == deposited - event["fee"] - event["premium"]
    # 2x on the notional at the fill, plus the fee and premium (the quote was made at
    # the skew the script saw; a concurrent trade may have moved the fill within slippage).
    notional = size * event["fill_price"] // WAD // 10**12
    assert abs(position[1] - notional // 2) <= notional // 100
    out = traded["hedge"].output
    assert row("utilisation", "80.00% (oracle: 8 GPUs reporting") in out
    assert row("GPU-hours hedged", "4,608 GPU-hours (short)") in out
    assert f"hedged: short {gpuh(size)} in market 1, margin {money(position[1])}" in out
    assert len(TX_LINE.findall(out)) == 3  # approve, deposit, modify_position


def test_startup_and_trader_go_long(traded: Step, world: World, chain: Chain) -> None:
    state = traded.state()["markets"][0]
    for who, size, deposit in (("startup", 3_000, 1_500), ("degen", 4_000, 1_100)):
        (event,) = modified_events(chain, world, PEOPLE[who])
        assert state["positions"][who][0] == size * WAD == event["size"]
        assert state["positions"][who][1] == deposit * USDC - event["fee"] - event["premium"]
        out = traded["long" if who == "startup" else "degen"].output
        assert f"filled buy {gpuh(size * WAD)} at {price_text(event['fill_price'])}" in out
        assert f"fee {money(event['fee'])}, premium {money(event['premium'])}" in out
        assert f"{PEOPLE[who]}: long {gpuh(size * WAD)} in market 1" in out
    longs, shorts, skew, margins, fees, _insurance, deficit = state["market"]
    assert (longs, shorts, skew) == (7_000 * WAD, 4_608 * WAD, 2_392 * WAD)
    assert margins == sum(p[1] for p in state["positions"].values())
    assert fees == sum(e["fee"] for who in ("operator", "startup", "degen")
                       for e in modified_events(chain, world, PEOPLE[who]))
    assert deficit == 0


def test_over_leverage_is_refused_before_sending(checked: Step) -> None:
    assert_nothing_sent(checked, "over leverage", "trade refused, nothing sent",
                        perp.BELOW_INITIAL, "trade at most", "max leverage 10.00x")


def test_status_matches_the_chain(checked: Step) -> None:
    out = checked["status"].output
    v = checked.extra["views"]
    price, fresh = v["index"]
    assert fresh and f"index {price_text(price)}, fresh" in out
    longs, shorts, _skew, margins, fees, insurance, deficit = v["market"]
    assert f"open interest long {gpuh(longs)}, short {gpuh(shorts)}; skew 2,392 GPU-hours " \
           "(longs heavier)" in out
    assert (f"insurance fund {money(insurance)}, deficit {money(deficit)}, fees uncollected "
            f"{money(fees)}, margins {money(margins)}") in out
    assert f"funding rate {rate_text(v['rate'])}/day" in out
    assert set(v["positions"]) == {"operator", "startup", "degen"}
    for who, position in v["positions"].items():
        assert position_line(who, position) in out, f"{who} missing from\n{out}"
        assert f"liquidation price {price_text(position['liq'])}" in out
        assert not position["can_liquidate"]
    assert "LIQUIDATABLE" not in out


def test_funding_accrues_from_longs_to_shorts(funded: Step) -> None:
    before, v = funded.extra["views_before"], funded.extra["views"]
    assert v["rate"] > before["rate"] >= 0
    positions = v["positions"]
    assert positions["startup"]["funding"] > 0 and positions["degen"]["funding"] > 0
    assert positions["operator"]["funding"] < 0
    # 2.45 - 2.40 on 3,000 GPU-hours, and funding of about 0.86 % of the price a day.
    assert positions["startup"]["pnl"] == 150 * USDC
    assert 20 * USDC < positions["startup"]["funding"] < 35 * USDC
    out = funded["status"].output
    assert f"funding rate {rate_text(v['rate'])}/day ({rate_text(v['rate'] * 365)} a year), " \
           "longs pay shorts" in out
    for who, position in positions.items():
        assert position_line(who, position) in out, f"{who} missing from\n{out}"


def test_lower_index_makes_the_over_levered_long_liquidatable(crashed: Step) -> None:
    positions = crashed.extra["views"]["positions"]
    assert positions["degen"]["can_liquidate"]
    assert not positions["startup"]["can_liquidate"]
    assert not positions["operator"]["can_liquidate"]
    out = crashed["status"].output
    assert re.search(re.escape(position_line("degen", positions["degen"])) + r".*LIQUIDATABLE",
                     out), out
    assert out.count("LIQUIDATABLE") == 1


def test_keeper_dry_run_sends_nothing(crashed: Step) -> None:
    assert crashed.before == crashed.after
    out = crashed["keeper dry"].output
    assert "no markets yet: no unhealthy loans" in out  # the lending markets ran too
    assert "3 open position(s), 1 liquidatable at 2.200000 USD/GPU-h" in out
    assert re.search(rf"{DEGEN}: long 4,000 GPU-hours, equity .* -> would liquidate: keeper fee "
                     r"49 mUSDC, bad debt 0 mUSDC", out), out
    assert "perp market 2 (A100-SXM-80GB/USD/GPUh / mUSDC): 0 open position(s)" in out
    assert "dry run: 1 position(s) would be liquidated; nothing sent" in out
    assert not TX_LINE.search(out)


def test_keeper_liquidates_the_over_levered_long(liquidated: Step, world: World,
                                                 chain: Chain) -> None:
    before = liquidated.state("before")
    after = liquidated.extra["after_keeper"]["contracts"]
    assert after["markets"][0]["positions"]["degen"] == (0, 0, 0, 0)
    # min keeper fee + 0.5 % of 4,000 GPU-hours at 2.20, paid by the market: the keeper
    # needs no funds.
    fee = perp.keeper_fee(4_000 * WAD, 220 * WAD // 100, PARAMS, perp.value_scale(6))
    assert fee == 49 * USDC
    assert after["stablecoin"]["keeper"] - before["stablecoin"]["keeper"] == fee
    assert after["markets"][0]["deficit"] == 0
    out = liquidated["keeper"].output
    assert f"liquidate {DEGEN}: tx" in out
    assert re.search(rf"{DEGEN}: long 4,000 GPU-hours closed at 2.200000 USD/GPU-h, equity "
                     r"[\d,.]+ mUSDC: keeper fee 49 mUSDC, bad debt 0 mUSDC", out), out
    assert "perp market 1: insurance fund after" in out and "deficit 0 mUSDC" in out
    assert "liquidated 1 position(s) (perp market 1: keeper fees 49 mUSDC, bad debt 0 mUSDC)" \
        in out
    assert len(TX_LINE.findall(out)) == 1
    views_after = liquidated.extra["views"]
    assert views_after["market"][0] == 3_000 * WAD  # only the startup is long now


def test_withdraw_all_keeps_the_initial_margin(liquidated: Step) -> None:
    v = liquidated.extra["views"]["positions"]["startup"]
    price = liquidated.extra["views"]["index"][0]
    need = perp.initial_margin(v["size"], price, PARAMS, perp.value_scale(6))
    assert need <= v["equity"] <= need + 5 * USDC
    out = liquidated["withdraw all"].output
    assert "for the funding that accrues until the transaction is mined" in out
    received = (liquidated.state()["stablecoin"]["startup"]
                - liquidated.extra["after_keeper"]["contracts"]["stablecoin"]["startup"])
    assert received > 0 and f"{STARTUP}: received {money(received)}\n" in out


def test_second_keeper_pass_finds_nothing(closed: Step) -> None:
    out = closed["second pass"].output
    assert "no liquidatable positions" in out
    assert "no unhealthy loans" not in out  # --perp 1 only
    assert not TX_LINE.search(out)


def test_close_and_withdraw_while_paused(closed: Step, world: World, chain: Chain) -> None:
    before, after = closed.state("before"), closed.state()
    assert after["markets"][0]["positions"]["startup"] == (0, 0, 0, 0)
    (_open, close) = modified_events(chain, world, STARTUP)
    assert close["size"] == 0 and close["size_delta"] == -3_000 * WAD
    received = after["stablecoin"]["startup"] - before["stablecoin"]["startup"]
    assert received == close["margin"] > 0
    out = closed["close"].output
    assert f"close long {gpuh(3_000 * WAD)} in market 1: tx" in out
    assert f"withdraw {money(close['margin'])} of margin from market 1: tx" in out
    assert "flat in market 1, margin 0 mUSDC" in out
    assert after["stablecoin"]["operator"] - before["stablecoin"]["operator"] == 500 * USDC


def test_set_changes_only_the_maintenance_margin_and_pauses(closed: Step) -> None:
    before = closed.state("before")["markets"][0]
    after = closed.state()["markets"][0]
    expected = PARAMS.model_copy(update={"maintenance_margin_bps": 400})
    assert after["params"] == expected.as_tuple() != before["params"]
    assert after["paused"] is True and before["paused"] is False
    assert after["fee_recipient"] == before["fee_recipient"] == DEPLOYER
    out = closed["pause"].output
    assert "maintenance 4.00%" in out and "PAUSED (no opens or increases)" in out
    assert len(TX_LINE.findall(out)) == 2


def test_pause_refuses_opens_before_sending(paused: Step) -> None:
    assert_nothing_sent(paused, "open paused", "trade refused, nothing sent",
                        perp.GUARDIAN_PAUSED)
    assert "paused: YES (guardian: no opens or increases)" in paused["status"].output


def test_stale_index_refuses_trades_before_sending(stale: Step) -> None:
    assert_nothing_sent(stale, "open stale", "trade refused, nothing sent", perp.STALE)


def test_stale_index_refuses_trades_in_the_contract_too(stale: Step) -> None:
    assert_contract_refused(stale, "open stale, skip checks", perp.STALE)


def test_stale_index_pauses_the_keeper(stale: Step) -> None:
    out = stale["keeper"].output
    for number in (1, 2):
        assert f"perp market {number}: {perp.STALE}: liquidations wait for a fresh index, " \
               "skipped" in out
    assert "no liquidatable positions (2 perp market(s) skipped: stale index)" in out
    assert not TX_LINE.search(out)


def test_stale_index_in_status(stale: Step) -> None:
    out = stale["status"].output
    assert "STALE: trades, withdrawals with a position and liquidations wait" in out
    assert "positions (1) at the stale index:" in out
    assert "reverted" not in out


def test_bad_debt_liquidation_records_a_deficit(deficit: Step) -> None:
    before = deficit.extra["before_keeper"]
    assert before["positions"]["degen"]["can_liquidate"]
    equity = before["positions"]["degen"]["equity"]
    assert equity < 0
    state = deficit.extra["after_keeper"]["contracts"]["markets"][1]
    assert state["positions"]["degen"] == (0, 0, 0, 0)
    assert state["deficit"] > 0
    out = deficit["keeper"].output
    assert "no unhealthy loans" not in out and "perp market 1" not in out  # --perp 2 only
    assert re.search(r"keeper fee 29 mUSDC, bad debt [1-9][\d,.]* mUSDC", out), out
    assert f"insurance fund exhausted: deficit {money(state['deficit'])} recorded" in out
    assert f"deficit {money(state['deficit'])}" in deficit["status"].output
    assert "new risk paused by the recorded deficit" in deficit["status"].output


def test_deficit_refuses_new_risk(deficit: Step) -> None:
    assert_nothing_sent(deficit, "open deficit", "trade refused, nothing sent",
                        perp.DEFICIT_PAUSED, "`ape run perp fund-insurance`")
    assert_contract_refused(deficit, "open deficit, skip checks", perp.DEFICIT_PAUSED)


def test_second_market_on_another_index(traded: Step, world: World, chain: Chain) -> None:
    m = market(chain, world, 2)
    assert m.index_feed().call() == world.adapters[SECOND_FEED]
    state = traded.state()["markets"][1]
    assert state["cash"] == 10 * USDC and state["market"][5] == 10 * USDC  # the insurance
    assert state["params"] == PARAMS.model_copy(
        update={"max_funding_velocity": 3 * WAD // 100}).as_tuple()
    assert f"market 2: PerpMarket {m.address}" in traded["create 2"].output


def test_funding_the_insurance_lifts_the_deficit(deficit: Step) -> None:
    state = deficit.extra["after_fund"]["contracts"]["markets"][1]
    assert state["deficit"] == 0
    assert "the deficit is covered: new risk resumes" in deficit["fund"].output
    assert deficit.state()["markets"][1]["positions"]["startup"][0] == 100 * WAD
    assert deficit.state()["markets"][0]["paused"] is False  # the guardian unpaused market 1


BAD_INPUT = {
    "unknown market": (("perp", "status", "--market", "9"), "unknown perp market 9"),
    "missing feed": (("perp", "create", "--account", "TEST::0", "--feed", "NOPE/USD/GPUh"),
                     "the oracle hub has no feed NOPE/USD/GPUh"),
    "not a market creator": (("perp", "create", "--account", "TEST::5", "--feed", INDEX_FEED),
                             "lacks the perp factory's MARKET_CREATOR_ROLE"),
    "market exists": (("perp", "create", "--account", "TEST::0", "--feed", INDEX_FEED),
                      reasons.PERP_FACTORY_MARKET_ALREADY_EXISTS),
    "bad parameters": (("perp", "set", "--account", "TEST::0", "--market", "1",
                        "--maintenance-margin", "12"),
                       "PerpMarket: need 0 < maintenance + liquidation fee < initial margin"),
    "not the risk admin": (("perp", "set", "--account", "TEST::3", "--market", "1",
                            "--taker-fee", "0.2"), "lacks RISK_ADMIN_ROLE on perp market 1"),
    "no position": (("perp", "close", "--account", "TEST::4", "--market", "1"),
                    perp.NO_POSITION),
    "withdraw too much": (("perp", "withdraw", "--account", "TEST::1", "--market", "1",
                           "--amount", "1000000"), perp.EXCEEDS_MARGIN),
    "short cap": (("perp", "open", "--account", "TEST::5", "--market", "1", "--short",
                   "600000", "--margin", "900000", "--slippage", "50"), perp.SHORT_CAP),
    "hedge above max leverage": ((*HEDGE, "--leverage", "20"),
                                 "above market 1's max leverage 10.00x"),
}


@pytest.fixture(scope="module")
def bad_input(ape: ApeRunner, chain: Chain, world: World, deficit: Step) -> Step:
    """Commands the scripts refuse before sending: all at once (none sends anything)."""
    r = Recorder(ape, chain, world)
    r.together({}, {label: args for label, (args, _) in BAD_INPUT.items()})
    return r.step()


@pytest.mark.parametrize("label", list(BAD_INPUT))
def test_bad_input_is_refused_before_sending(bad_input: Step, label: str) -> None:
    assert_nothing_sent(bad_input, label, BAD_INPUT[label][1])
