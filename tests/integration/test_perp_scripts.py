"""Smoke tests of the perp scripts (`ape run perp ...`, `ape run hedge`, `ape run keeper
--perp`) against a real anvil; the logic they call is tested in-process in
tests/client/test_perp.py, test_hedge.py and test_keeper.py.

One anvil and one deployment for the module: the platform deploys, the SPV operator
registers its fleet of 8 H100s, the hub admin installs a 2-of-3 oracle signer set and
the H100 (and an A100) GPU-hour index feed, each moving at most 4 % per report (the
market's margins cover one whole update), and index values reach the hub as real
reports: an `offer-median` snapshot, signed by two of the three oracle keys, logged and
published by the oracle's publisher; the fleet's utilisation arrives the same way, as a
`time-weighted-utilisation` report (no mock oracle anywhere).

Then one story, as an operator's shell runs it, every trade an order: create market 1
with an insurance fund and its order window; the operator's hedge dry run as a real
`ape` process (nothing sent), then the hedge's order on the oracle's attested
utilisation; a startup and a speculator commit longs, an over-levered order is refused
before sending; the pending orders as a real `ape` process; the oracle publishes the
next round and the keeper executes the three orders at its index; `perp status` as a
real `ape` process against the PerpLens's views; the index falls in rounds within the
move limit, the keeper's dry run, its liquidation and a second pass; the startup closes
by an order the keeper fills at the next round, and withdraws; an order nobody executes
cannot be cancelled early, expires, and the keeper cancels it (its keeper fee no longer
reserved in the margin) although the index is stale by then. The chain state is read with web3,
independently of the scripts, around each step.
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
MAX_MOVE_BPS = 400  # the feeds' move limit per report (these margins accept up to 487)
ORDER_MAX_AGE = 2 * HEARTBEAT  # the order window's default: two heartbeats of the feed

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


# The line `scripts._lib.echo_receipt` prints for every transaction.
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


def rate_text(wad: int) -> str:
    return f"{Decimal(wad) / Decimal(WAD) * 100:.4f}%"


def row(label: str, value: str) -> str:
    """A row of the hedge's table."""
    return f"{label:<20} {value}"


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
    from gpushares.demo import TITLE_OVERRIDE

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
        ("jurisdictions", "apply", "--account", "TEST::1", "--overrides", str(TITLE_OVERRIDE)),
    )
    run_together(
        ape,
        ("oracle", "add-feed", "--account", "TEST::0", "--name", INDEX_FEED,
         "--description", "H100 SXM 80GB / USD per GPU-hour", "--min", "0.10", "--max", "50",
         "--max-move-bps", str(MAX_MOVE_BPS), "--heartbeat", str(HEARTBEAT)),
        ("spv", "add-gpus", "--account", "TEST::1", "--spv", "1", "--csv", str(FLEET_CSV)),
    )
    deployed = json.loads(next(ape.deployments_dir.glob("*.json")).read_text())
    oracle = IndexOracle(chain, deployed, tmp_path_factory.mktemp("oracle") / "log.sqlite")
    hub = oracle.hub.functions
    second = bytes.fromhex(reports.feed_id(SECOND_FEED)[2:])
    transact(chain, hub.add_feed(second, "A100 SXM 80GB / USD per GPU-hour", 10**7, 50 * 10**8,
                                 MAX_MOVE_BPS, HEARTBEAT), DEPLOYER)
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


def lens(chain: Chain, world: World) -> Any:
    return chain.contract("PerpLens", world.deployed["perp_lens"]).functions


def read_state(chain: Chain, world: World) -> dict[str, Any]:
    """Every market's stored state (positions and pending orders), the balances, and
    what shows that nothing was sent (block height and the nonces of the test
    accounts)."""
    stable = chain.contract("MockStablecoin", world.deployed["income_token"]).functions
    state = {
        "markets": [{
            "positions": {who: tuple(m.position(a).call()) for who, a in PEOPLE.items()},
            "orders": {who: tuple(m.order(a).call()) for who, a in PEOPLE.items()},
            "market": tuple(m.market().call()),
            "cash": m.cash().call(),
            "deficit": m.deficit().call(),
            "paused": m.paused().call(),
            "params": tuple(m.risk_params().call()),
            "window": tuple(m.order_window().call()),
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
    """What `perp status` shows, read through the market's and the PerpLens's views at
    the current block."""
    m, views_ = market(chain, world, number), lens(chain, world)
    where = m.address
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
                "size": size, "margin": margin, "pnl": views_.pnl(where, a).call(),
                "funding": views_.funding_owed(where, a).call(),
                "equity": views_.equity(where, a).call(),
                "ratio": views_.margin_ratio(where, a).call(),
                "liq": views_.liquidation_price(where, a).call(),
                "can_liquidate": views_.can_liquidate(where, a).call(),
            }
    return result


def position_line(who: str, v: dict[str, Any]) -> str:
    """The beginning of `perp status`'s line for a position (up to the leverage)."""
    side = "long" if v["size"] > 0 else "short"
    return (f"{PEOPLE[who]}: {side} {gpuh(v['size'])}, margin {money(v['margin'])}, PnL "
            f"{money(v['pnl'])}, funding owed {money(v['funding'])}, equity "
            f"{money(v['equity'])}, margin ratio {rate_text(v['ratio'])}")


def market_events(chain: Chain, world: World, event: str, who: str,
                  number: int = 1) -> list[Any]:
    factory = chain.contract("PerpMarketFactory", world.deployed["perp_market_factory"])
    address = factory.functions.market_at(number).call()
    contract = chain.contract("PerpMarket", address)
    return [e.args for e in getattr(contract.events, event).get_logs(
        from_block=0, argument_filters={"account": who})]


def modified_events(chain: Chain, world: World, who: str, number: int = 1) -> list[Any]:
    return market_events(chain, world, "PositionModified", who, number)


def latest_round(world: World, name: str = INDEX_FEED) -> int:
    return world.oracle.hub.functions.latest_value(
        bytes.fromhex(reports.feed_id(name)[2:])).call()[2]


def tick(chain: Chain, seconds: int) -> None:
    """The chain's clock moves `seconds` on (a block mined at the new time)."""
    chain.web3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    chain.web3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def next_round(chain: Chain, world: World, value: str) -> None:
    """A second on, the oracle publishes the index at `value`: an order committed
    before fills at it."""
    tick(chain, 1)
    world.published.append(world.oracle.publish({INDEX_FEED: value}))


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
    """Runs labelled commands and records the state around each refusal and each
    marked step."""

    def __init__(self, ape: ApeRunner, chain: Chain, world: World) -> None:
        self.ape, self.chain, self.world = ape, chain, world
        self.results: dict[str, ApeResult] = {}
        self.refusals: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.around: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.before = self.read()

    def read(self) -> dict[str, Any]:
        return read_state(self.chain, self.world)

    def run(self, label: str, *args: str, subprocess: bool = False,
            record: bool = False) -> ApeResult:
        """A command that must succeed; `subprocess`: as a real `ape` process (the smoke
        tests of a script, as a shell runs it); `record`: keep the state around it."""
        before = self.read() if record else None
        self.results[label] = ok(self.ape.subprocess(*args) if subprocess else self.ape(*args))
        if before is not None:
            self.around[label] = (before, self.read())
        return self.results[label]

    def refused(self, label: str, *args: str) -> ApeResult:
        """A command that must fail; the state around it is kept for the test."""
        before = self.read()
        result = self.ape(*args)
        self.refusals[label] = (before, self.read())
        self.results[label] = result
        return result

    def step(self, **extra: Any) -> Step:
        return Step(dict(self.results), self.before, self.read(),
                    {"refusals": self.refusals, "around": self.around, **extra})


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


def around(step: Step, label: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The contracts' state before and after a recorded command."""
    before, after = step.extra["around"][label]
    return before["contracts"], after["contracts"]


# ---------------------------------------------------------------------------------
# The perp story
# ---------------------------------------------------------------------------------

COMMIT = ("perp", "commit", "--market", "1")
HEDGE = ("hedge", "--account", "TEST::1", "--market", "1", "--spv", "1", "--hours", str(HOURS))
KEEPER_PASS = ("keeper", "--account", "TEST::4", "--perp", "1")
# The fall, in rounds within the 4 % move limit: 2.40 -> 2.31 -> 2.22 -> 2.20.
FALL = ("2.31", "2.22", "2.20")


@pytest.fixture(scope="module")
def story(ape: ApeRunner, chain: Chain, world: World) -> Step:
    r = Recorder(ape, chain, world)
    r.run("create", "perp", "create", "--account", "TEST::0", "--feed", INDEX_FEED,
          "--max-funding-velocity", "300", "--insurance", str(INSURANCE))
    before_dry = r.read()
    r.run("hedge dry", *HEDGE, "--utilisation", "0.85", "--dry-run", subprocess=True)
    after_dry = r.read()
    bps = world.oracle.publish_utilisation(world.token, "80")
    r.run("hedge", *HEDGE)
    r.run("long", *COMMIT, "--account", "TEST::2", "--long", "3000", "--margin", "1500")
    r.run("degen", *COMMIT, "--account", "TEST::3", "--long", "4000", "--margin", "1100")
    r.refused("over leverage", *COMMIT, "--account", "TEST::5", "--long", "20000",
              "--margin", "1000")
    r.run("pending", "perp", "status", "--market", "1", "--orders", subprocess=True)
    commit_round = latest_round(world)
    next_round(chain, world, "2.40")
    r.run("fill", *KEEPER_PASS, record=True)
    r.run("status", "perp", "status", "--market", "1", subprocess=True)
    checked = views(chain, world)
    for value in FALL:
        next_round(chain, world, value)
    r.run("keeper dry", *KEEPER_PASS, "--dry-run")
    r.run("keeper", *KEEPER_PASS, record=True)
    r.run("second pass", *KEEPER_PASS)
    r.run("close", *COMMIT, "--account", "TEST::2", "--close")
    close_round = latest_round(world)
    next_round(chain, world, "2.20")
    r.run("close fill", *KEEPER_PASS, record=True)
    r.run("withdraw", "perp", "withdraw", "--account", "TEST::2", "--market", "1", "--all")
    # An order nobody executes: not cancellable before it expires, cancelled after.
    r.run("late", *COMMIT, "--account", "TEST::5", "--short", "1000", "--margin", "1000")
    r.refused("early cancel", "perp", "cancel", "--account", "TEST::5", "--market", "1")
    tick(chain, ORDER_MAX_AGE + 1)
    r.run("expired", "perp", "status", "--market", "1", "--orders")
    r.run("cancel pass", *KEEPER_PASS, record=True)
    return r.step(utilisation_bps=bps, views=checked, dry=(before_dry, after_dry),
                  commit_round=commit_round, close_round=close_round)


# ---------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------


def test_perp_create_seeds_the_insurance_sets_the_order_window_and_status_matches_the_chain(
        story: Step, world: World, chain: Chain) -> None:
    m = market(chain, world)
    assert perp.RiskParams.from_chain(m.risk_params().call()) == PARAMS
    assert m.index_feed().call() == world.adapters[INDEX_FEED]
    assert tuple(m.order_window().call()) == (0, ORDER_MAX_AGE, USDC)  # 1 mUSDC keeper fee
    created = story["create"].output
    assert f"market 1: PerpMarket {m.address}" in created
    assert f"seed the insurance of market 1 with {money(INSURANCE * USDC)}" in created
    assert "keeper fee 1 mUSDC" in created
    assert f"index feed move limit {MAX_MOVE_BPS} bps per update (covered" in created
    # create_market, set_order_window, approve, fund_insurance
    assert len(TX_LINE.findall(created)) == 4
    out = story["status"].output  # a real `ape` process
    v = story.extra["views"]
    price, fresh = v["index"]
    assert fresh and f"index {price_text(price)} (round {story.extra['commit_round'] + 1}), " \
                     "fresh" in out
    longs, shorts, _skew, margins, fees, insurance, deficit = v["market"]
    assert f"open interest long {gpuh(longs)}, short {gpuh(shorts)}" in out
    assert (f"insurance fund {money(insurance)}, deficit {money(deficit)}, fees uncollected "
            f"{money(fees)}, margins {money(margins)}") in out
    # The keeper holds no position: its margin is the keeper fees the executions credited.
    assert set(v["positions"]) == {"operator", "startup", "degen", "keeper"}
    assert (v["positions"]["keeper"]["size"], v["positions"]["keeper"]["margin"]) == (0, 3 * USDC)
    for who in ("operator", "startup", "degen"):
        assert position_line(who, v["positions"][who]) in out, f"{who} missing from\n{out}"
    assert ": order " not in out  # the three orders were executed: none listed


def test_an_over_levered_order_is_refused_before_sending(story: Step) -> None:
    assert_nothing_sent(story, "over leverage", "order refused, nothing sent",
                        reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN, "order at most",
                        "max leverage 10.00x")


def test_the_hedge_dry_run_as_a_real_process_then_the_hedge_order_on_the_attested_utilisation(
        story: Step, world: World, chain: Chain) -> None:
    before, after = story.extra["dry"]
    assert before == after
    out = story["hedge dry"].output
    assert row("utilisation", "85.00% (--utilisation)") in out
    assert row("GPU-hours hedged", "4,896 GPU-hours (short)") in out
    assert "dry run: nothing sent" in out and not TX_LINE.search(out)
    assert story.extra["utilisation_bps"] == 8_000
    size = perp.hedge_size(GPUS, HOURS, Decimal("0.8"))
    (committed,) = market_events(chain, world, "OrderCommitted", OPERATOR)
    assert committed["size_delta"] == -size == -4_608 * WAD
    assert committed["commit_round"] == story.extra["commit_round"]
    hedged = story["hedge"].output
    assert row("utilisation", "80.00% (oracle: 8 GPUs reporting") in hedged
    assert f"hedge order committed: sell {gpuh(size)} in market 1" in hedged
    assert len(TX_LINE.findall(hedged)) == 3  # approve, deposit, commit_order
    (event,) = modified_events(chain, world, OPERATOR)  # filled by the keeper, later
    assert event["size"] == -size


def test_the_orders_wait_for_the_next_round_and_the_keeper_fills_them_at_its_index(
        story: Step, world: World, chain: Chain) -> None:
    pending = story["pending"].output  # a real `ape` process, before the round
    assert "pending orders (3):" in pending
    for who, text in (("operator", "sell 4,608"), ("startup", "buy 3,000"),
                      ("degen", "buy 4,000")):
        assert f"{PEOPLE[who]}: order {text} GPU-hours" in pending, pending
    assert pending.count("waiting for an oracle round after the commit") == 3
    before, after = around(story, "fill")
    m = before["markets"][0]
    assert all(m["positions"][who][0] == 0 for who in ("operator", "startup", "degen"))
    assert all(m["orders"][who][3] != 0 for who in ("operator", "startup", "degen"))
    assert all(after["markets"][0]["orders"][who] == (0, 0, 0, 0, 0)
               for who in ("operator", "startup", "degen"))
    # Each order's keeper fee is credited to the keeper's margin in the market.
    assert after["markets"][0]["positions"]["keeper"][1] - m["positions"]["keeper"][1] \
        == 3 * USDC
    assert after["stablecoin"]["keeper"] == before["stablecoin"]["keeper"]
    assert [after["markets"][0]["positions"][who][0] for who in ("operator", "startup", "degen")] \
        == [-4_608 * WAD, 3_000 * WAD, 4_000 * WAD]
    out = story["fill"].output
    n = story.extra["commit_round"]
    assert len(TX_LINE.findall(out)) == 3
    for who, text in (("operator", "sell 4,608"), ("startup", "buy 3,000"),
                      ("degen", "buy 4,000")):
        assert (f"{PEOPLE[who]}: order {text} GPU-hours committed at round {n}, executed at "
                f"round {n + 1}'s index 2.400000 USD/GPU-h") in out, out
        (executed,) = market_events(chain, world, "OrderExecuted", PEOPLE[who])[:1]
        assert (executed["round_id"], executed["price"], executed["keeper"]) == (
            n + 1, 240 * WAD // 100, KEEPER)
    assert "executed 3 order(s) (perp market 1: keeper fees 3 mUSDC), cancelled 0 expired " \
        "order(s)" in out
    assert f"keeper fees 3 mUSDC credited to {KEEPER}'s margin in perp market 1" in out


def test_the_keeper_liquidates_the_over_levered_long(story: Step, world: World) -> None:
    dry = story["keeper dry"].output
    assert "no unhealthy loans" not in dry  # --perp 1 only
    assert (f"3 open position(s), 1 liquidatable at 2.200000 USD/GPU-h (round "
            f"{story.extra['commit_round'] + 1 + len(FALL)})") in dry
    assert re.search(rf"{DEGEN}: long 4,000 GPU-hours, equity .* -> would liquidate: keeper fee "
                     r"49 mUSDC, bad debt 0 mUSDC", dry), dry
    assert "dry run: 1 position(s) would be liquidated; nothing sent" in dry
    assert "no orders to execute or cancel" in dry
    assert not TX_LINE.search(dry)
    before, after = around(story, "keeper")
    assert after["markets"][0]["positions"]["degen"] == (0, 0, 0, 0)
    assert after["stablecoin"]["keeper"] - before["stablecoin"]["keeper"] == 49 * USDC
    out = story["keeper"].output
    assert f"liquidate {DEGEN}: tx" in out and len(TX_LINE.findall(out)) == 1
    assert "liquidated 1 position(s) (perp market 1: keeper fees 49 mUSDC, bad debt 0 mUSDC)" \
        in out
    second = story["second pass"].output
    assert "no liquidatable positions" in second and not TX_LINE.search(second)
    assert "no orders to execute or cancel" in second


def test_the_startup_closes_by_an_order_filled_at_the_next_round_then_withdraws(
        story: Step, world: World, chain: Chain) -> None:
    closed = story["close"].output
    assert f"commit an order to sell {gpuh(3_000 * WAD)} in market 1" in closed
    assert "pending order sell 3,000 GPU-hours" in closed
    n = story.extra["close_round"]
    out = story["close fill"].output
    assert (f"{STARTUP}: order sell 3,000 GPU-hours committed at round {n}, executed at round "
            f"{n + 1}'s index 2.200000 USD/GPU-h") in out
    assert "now flat; keeper fee 1 mUSDC" in out
    before, after = around(story, "close fill")
    assert after["markets"][0]["positions"]["startup"][0] == 0
    keeper = [state["markets"][0]["positions"]["keeper"][1] for state in (before, after)]
    assert keeper[1] - keeper[0] == USDC
    withdrawn = story["withdraw"].output
    assert "flat in market 1, margin 0 mUSDC" in withdrawn
    (event,) = market_events(chain, world, "MarginWithdrawn", STARTUP)
    assert f"received {money(event['amount'])}" in withdrawn
    fills = modified_events(chain, world, STARTUP)
    assert [f["size_delta"] for f in fills] == [3_000 * WAD, -3_000 * WAD]


def test_an_order_nobody_executes_expires_and_the_keeper_cancels_it(story: Step,
                                                                   world: World) -> None:
    assert_nothing_sent(story, "early cancel", "cancellation refused, nothing sent",
                        reasons.PERP_ORDER_NOT_EXPIRED, "it expires in")
    late = story["late"].output
    assert "commit an order to sell 1,000 GPU-hours in market 1" in late
    expired = story["expired"].output
    assert f"{SHORTER}: order sell 1,000 GPU-hours" in expired
    assert re.search(r"EXPIRED \d+s ago: cancel it", expired), expired
    out = story["cancel pass"].output
    # The index is four days old by then: no execution or liquidation, but a
    # cancellation needs none.
    assert f"perp market 1: {reasons.PERP_INDEX_PRICE_STALE_OR_HALTED} (the index is" in out
    assert "perp market 1: 1 pending order(s): 0 to execute, 1 expired to cancel" in out
    assert f"cancel {SHORTER}'s expired order: tx" in out and len(TX_LINE.findall(out)) == 1
    assert (f"{SHORTER}: expired order sell 1,000 GPU-hours (committed at round "
            f"{story.extra['close_round'] + 1}) cancelled: its keeper fee 1 mUSDC is no longer "
            "reserved in its margin") in out
    assert "executed 0 order(s), cancelled 1 expired order(s)" in out
    before, after = around(story, "cancel pass")
    b, a = before["markets"][0], after["markets"][0]
    assert b["orders"]["shorter"][3] != 0 and a["orders"]["shorter"] == (0, 0, 0, 0, 0)
    # The fee never left the trader's margin; nobody earns it.
    assert a["positions"] == b["positions"]
    assert after["stablecoin"] == before["stablecoin"]
