"""Smoke tests of the subscription scripts (`ape run spv subscriptions ...` for the SPV's
operator, `ape run invest ...` for investors) against a real anvil; what each plan does
and refuses is tested in-process in tests/client/test_vault.py.

One anvil and one deployment for the module: the platform deploys (the vault blueprint
and factory with the rest, recorded in the deployments file), the SPV operator registers
its fleet of 8 GPUs and mints 7,500 of the 8,000 shares they back to a holder, the KYC
provider registers the people, the hub admin installs a 2-of-3 oracle signer set and the
SPV's NAV feed, and NAV prices reach the hub as real reports: a `nav-per-share` snapshot
of the fleet read from the chain, signed by two of the three oracle keys, logged and
published by the oracle's publisher (`test_pool_scripts.NavOracle`; no mock oracle).

Then one story, as an operator's shell runs it: the operator opens the vault, the KYC
provider registers it; an investor subscribes 20,000 mUSDC; a wallet in North Korea is
refused before anything is sent; the operator's fulfilment is refused until a NAV is
published after the request and new GPUs back the shares (before sending, then by the
contract with --skip-checks); the operator registers a GPU, the oracle publishes, the
operator fulfils and the investor claims; the holder redeems 1,000 shares, the operator
funds redemptions, is refused during the one-day notice period, and after it (anvil's
clock moved with evm_increaseTime) and the next NAV fulfils; the holder claims the
proceeds and the operator takes the rest of the funds back. The chain is read with web3.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gpushares import reasons
from gpushares.demo import TITLE_OVERRIDE
from gpushares.demo import test_account as account_address
from jurisdictions import codes
from oracle import reports

from .conftest import ApeResult, ApeRunner, Chain
from .test_pool_scripts import (
    DOCUMENTS,
    FLEET_CSV,
    HEARTBEAT,
    MAX_MOVE_BPS,
    NAV_FEED,
    ORACLE_SIGNERS,
    SPV_LEI,
    SYMBOL,
    TX_LINE,
    NavOracle,
    ok,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain-vaults")]

DEPLOYER, OPERATOR, INVESTOR, HOLDER, CAROL = (account_address(i) for i in range(5))
PEOPLE = {"deployer": DEPLOYER, "operator": OPERATOR, "investor": INVESTOR, "holder": HOLDER,
          "carol": CAROL}
SHARE = 10**18
USDC = 10**6
DAY = 86_400
HELD = 7_500  # of the 8,000 shares 8 GPUs back: 500 shares of room
SUBSCRIPTION = 20_000
REDEMPTION = 1_000
FEE_BPS = 50
BLOCKED = codes.message(codes.Restriction.RECEIVER_JURISDICTION_BLOCKED)
INDEX = "2.40"


@dataclass
class World:
    deployed: dict[str, Any]
    token: str
    oracle: NavOracle
    results: dict[str, ApeResult] = field(default_factory=dict)
    refusals: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def new_gpus(folder: Path) -> Path:
    """One more H100 for the fleet CSV (a new serial, commissioned before genesis; one
    GPU moves the NAV about 16 %, within the feed's 25 % move limit)."""
    path = folder / "fleet-more.csv"
    path.write_text("serial,model,location_iso3166_numeric,datacenter,acquisition_cost_usd,"
                    "commissioned_at\n"
                    "1654923041185,H100-SXM5-80GB,840,US-TX-DFW-01,27500.00,2026-02-01\n")
    return path


def later(chain: Chain, seconds: int) -> None:
    """Anvil's clock moves on (the chain's time, never the calendar's)."""
    chain.web3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    chain.web3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def world(ape: ApeRunner, chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> World:
    """Deploy; the jurisdiction table, the SPV and its title override; the people; the
    fleet; the signer set and the NAV feed; the holder's shares; the first NAV."""
    kyc = ("kyc", "register", "--account", "TEST::0", "--jurisdiction", "US", "--accredited")
    deployed_out = ok(ape("deploy", "--account", "TEST::0", "--operator", OPERATOR))
    for command in (
        ("jurisdictions", "apply", "--account", "TEST::0"),
        ("spv", "create", "--account", "TEST::1", "--name", "Lone Star GPU Fleet I LLC",
         "--jurisdiction", "840", "--lei", SPV_LEI, "--documents", str(DOCUMENTS),
         "--token-name", "Lone Star H100 Shares", "--symbol", SYMBOL, "--shares-per-gpu", "1000"),
        ("jurisdictions", "apply", "--account", "TEST::1", "--overrides", str(TITLE_OVERRIDE)),
        ("spv", "add-gpus", "--account", "TEST::1", "--spv", "1", "--csv", str(FLEET_CSV)),
        (*kyc, "--investor", INVESTOR),
        (*kyc, "--investor", HOLDER),
        ("kyc", "register", "--account", "TEST::0", "--investor", CAROL, "--jurisdiction", "KP"),
        ("spv", "mint", "--account", "TEST::1", "--spv", "1", "--to", HOLDER,
         "--shares", str(HELD)),
        ("oracle", "set-signers", "--account", "TEST::0",
         *[arg for s in ORACLE_SIGNERS for arg in ("--signer", s)], "--threshold", "2"),
        ("oracle", "add-feed", "--account", "TEST::0", "--name", NAV_FEED,
         "--description", "Lone Star H100 Shares: NAV per share, USD", "--min", "0.01",
         "--max", "100000", "--max-move-bps", str(MAX_MOVE_BPS), "--heartbeat", str(HEARTBEAT)),
        ("pool", "mint-mock", "--account", "TEST::0", "--to", INVESTOR, "--amount", "50000"),
    ):
        ok(ape(*command))
    deployed = json.loads(next(ape.deployments_dir.glob("*.json")).read_text())
    token = chain.contract("SPVFactory", deployed["spv_factory"]).functions.spvs(1).call()[4]
    oracle = NavOracle(chain, deployed, token, tmp_path_factory.mktemp("oracle") / "log.sqlite")
    made = World(deployed, token, oracle)
    made.results["deploy"] = deployed_out
    made.extra["fleet"] = new_gpus(tmp_path_factory.mktemp("fleet"))
    made.extra["navs"] = [oracle.publish(INDEX)]
    return made


def read_state(chain: Chain, world: World) -> dict[str, Any]:
    """What the scripts can change, through web3, and what moves with any transaction."""
    token = chain.contract("GPUShareToken", world.token).functions
    stable = chain.contract("MockStablecoin", world.deployed["income_token"]).functions
    factory = chain.contract("SubscriptionVaultFactory",
                             world.deployed["subscription_vault_factory"]).functions
    vault_address = factory.vault_of(world.token).call()
    people = {**PEOPLE, "vault": vault_address}
    contracts: dict[str, Any] = {
        "supply": token.totalSupply().call(),
        "shares": {who: token.balanceOf(a).call() for who, a in people.items()},
        "stablecoin": {who: stable.balanceOf(a).call() for who, a in people.items()},
    }
    if int(vault_address, 16):
        vault = chain.contract("SubscriptionVault", vault_address).functions
        contracts["requests"] = {who: tuple(vault.request(a).call())
                                 for who, a in PEOPLE.items()}
        contracts["funds"] = vault.redemption_funds().call()
    return {"contracts": contracts, "sent": {
        "block": chain.block_number,
        "nonces": {who: chain.web3.eth.get_transaction_count(a) for who, a in PEOPLE.items()}}}


def run(world: World, ape: ApeRunner, label: str, *args: str, subprocess: bool = False) -> str:
    """A command that must succeed; its output."""
    world.results[label] = ok(ape.subprocess(*args) if subprocess else ape(*args))
    return world.results[label].output


def refused(world: World, ape: ApeRunner, chain: Chain, label: str, *args: str) -> None:
    """A command that must fail; the state around it is kept for the tests."""
    before = read_state(chain, world)
    world.results[label] = ape(*args)
    world.refusals[label] = (before, read_state(chain, world))


def vault_of(chain: Chain, world: World) -> Any:
    factory = chain.contract("SubscriptionVaultFactory",
                             world.deployed["subscription_vault_factory"]).functions
    return chain.contract("SubscriptionVault", factory.vault_of(world.token).call())


@pytest.fixture(scope="module")
def story(ape: ApeRunner, chain: Chain, world: World) -> World:
    fulfil = ("spv", "subscriptions", "fulfil", "--account", "TEST::1", "--spv", "1")
    run(world, ape, "open", "spv", "subscriptions", "open", "--account", "TEST::1", "--spv", "1",
        "--notice-days", "1", "--fee", "0.5")
    run(world, ape, "register", "spv", "subscriptions", "register", "--account", "TEST::0",
        "--spv", "1")
    world.extra["before request"] = read_state(chain, world)
    run(world, ape, "request", "invest", "request", "--account", "TEST::2", "--spv", "1",
        "--amount", str(SUBSCRIPTION))
    refused(world, ape, chain, "blocked", "invest", "request", "--account", "TEST::4",
            "--spv", "1", "--amount", "100")
    refused(world, ape, chain, "too early", *fulfil, "--deposit", INVESTOR)
    refused(world, ape, chain, "too early, skip checks", *fulfil, "--deposit", INVESTOR,
            "--skip-checks")
    run(world, ape, "add gpus", "spv", "add-gpus", "--account", "TEST::1", "--spv", "1",
        "--csv", str(world.extra["fleet"]))
    later(chain, 1)  # the next NAV is observed after the request
    world.extra["navs"].append(world.oracle.publish(INDEX))
    run(world, ape, "list fulfillable", "spv", "subscriptions", "list", "--spv", "1",
        subprocess=True)
    world.extra["before fulfil"] = read_state(chain, world)
    run(world, ape, "fulfil deposit", *fulfil, "--deposit", INVESTOR)
    run(world, ape, "claim shares", "invest", "claim", "--account", "TEST::2", "--spv", "1")
    world.extra["after claim"] = read_state(chain, world)
    run(world, ape, "redeem", "invest", "redeem", "--account", "TEST::3", "--spv", "1",
        "--shares", str(REDEMPTION))
    run(world, ape, "fund", "spv", "subscriptions", "fund", "--account", "TEST::1", "--spv", "1",
        "--amount", "40000")
    refused(world, ape, chain, "notice", *fulfil, "--redeem", HOLDER)
    later(chain, DAY)
    world.extra["navs"].append(world.oracle.publish(INDEX))
    run(world, ape, "fulfil redemption", *fulfil, "--redeem", HOLDER)
    world.extra["before proceeds"] = read_state(chain, world)
    run(world, ape, "claim proceeds", "invest", "claim", "--account", "TEST::3", "--spv", "1")
    run(world, ape, "defund", "spv", "subscriptions", "defund", "--account", "TEST::1",
        "--spv", "1", "--all")
    run(world, ape, "status", "invest", "status", "--spv", "1", "--investor", HOLDER,
        subprocess=True)
    world.extra["end"] = read_state(chain, world)
    return world


def assert_nothing_sent(world: World, label: str, *fragments: str) -> None:
    """Non-zero exit, the message (no traceback), no transaction, no state change."""
    result = world.results[label]
    assert result.returncode != 0, str(result)
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} missing from\n{result}"
    assert "Traceback" not in result.output and not TX_LINE.search(result.output), str(result)
    before, after = world.refusals[label]
    assert after == before, "a transaction was sent"


# ---------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------


def test_deploy_prints_and_records_the_vault_factory(world: World, chain: Chain) -> None:
    out = world.results["deploy"].output
    blueprint = world.deployed["subscription_vault_blueprint"]
    factory = world.deployed["subscription_vault_factory"]
    assert f"SubscriptionVault blueprint at {blueprint}" in out
    assert (f"SubscriptionVaultFactory at {factory} (an SPV's vault: `ape run spv subscriptions "
            "open`)") in out
    assert chain.contract("SubscriptionVaultFactory", factory).functions.vault_blueprint() \
        .call() == blueprint


def test_open_then_register_the_vault(story: World, chain: Chain) -> None:
    vault = vault_of(chain, story)
    opened = story.results["open"].output
    assert f"SPV 1 subscription vault {vault.address}: LSH1 for mUSDC at {NAV_FEED}" in opened
    assert "notice period 1d, redemption fee 0.50%, cancel after 14d" in opened
    assert ("ape run spv subscriptions register --network ethereum:local:foundry --account "
            "KYC_PROVIDER --spv 1") in opened
    assert len(TX_LINE.findall(opened)) == 2  # create_vault, the token's grantRole
    registered = story.results["register"].output
    assert len(TX_LINE.findall(registered)) == 2  # set_investor, set_custodian
    assert (f"vault {vault.address}: ready: the token's OPERATOR_ROLE granted, an eligible "
            "holder, a custodian") in registered
    registry = chain.contract("ComplianceRegistry", story.deployed["compliance_registry"])
    assert registry.functions.investor(vault.address).call()[4] is True
    assert registry.functions.custodian(vault.address).call() is True
    v = vault.functions
    assert (v.notice_period().call(), v.redemption_fee_bps().call()) == (DAY, FEE_BPS)
    hub = story.oracle.hub.functions
    assert v.nav_feed().call() == hub.feed_adapter(
        bytes.fromhex(reports.feed_id(NAV_FEED)[2:])).call()


def test_a_subscription_requested_fulfilled_and_claimed(story: World, chain: Chain) -> None:
    request = story.results["request"].output
    assert "approve 20,000 mUSDC" in request
    assert "request a subscription of 20,000 mUSDC to SPV 1: tx" in request
    assert "requested 20,000 mUSDC of LSH1; the operator fulfils at the next NAV" in request
    before = story.extra["before request"]["contracts"]
    fulfilled = story.extra["before fulfil"]["contracts"]
    assert fulfilled["stablecoin"]["vault"] == SUBSCRIPTION * USDC
    assert fulfilled["stablecoin"]["investor"] == before["stablecoin"]["investor"] - \
        SUBSCRIPTION * USDC
    listed = story.results["list fulfillable"].output
    assert f"{INVESTOR}:" in listed and "deposit pending 20,000 mUSDC" in listed
    assert "fulfillable now" in listed and "not fulfillable" not in listed
    # Shares at the NAV published after the request, rounded down, claimed by the investor.
    nav = story.extra["navs"][1]
    shares = SUBSCRIPTION * USDC * 10**26 // (nav * 10**6)
    after = story.extra["after claim"]["contracts"]
    assert after["shares"]["investor"] == shares and after["shares"]["vault"] == 0
    assert after["supply"] == HELD * SHARE + shares
    assert after["stablecoin"]["operator"] == fulfilled["stablecoin"]["operator"] + \
        SUBSCRIPTION * USDC  # the treasury
    out = story.results["fulfil deposit"].output
    assert f"fulfil 20,000 mUSDC of {INVESTOR}'s subscription: tx" in out
    assert f"claimable by {INVESTOR}; 20,000 mUSDC sent to the treasury {OPERATOR}" in out
    assert "claim " in story.results["claim shares"].output
    assert vault_of(chain, story).functions.last_fulfilment_nav().call() in story.extra["navs"]


def test_a_blocked_wallet_is_refused_before_anything_is_sent(story: World) -> None:
    assert_nothing_sent(story, "blocked", "deposit request refused, nothing sent", BLOCKED,
                        f"(ERC-1404 code 9: {CAROL} could not receive newly issued LSH1)")


def test_fulfilment_waits_for_the_nav_and_the_backing(story: World) -> None:
    assert_nothing_sent(story, "too early", "deposit fulfilment refused, nothing sent",
                        reasons.VAULT_NAV_NOT_AFTER_REQUEST, "register new GPUs first",
                        reasons.TOKEN_MINT_EXCEEDS_ACTIVE_GPUS)
    result = story.results["too early, skip checks"]
    assert result.returncode != 0 and "--skip-checks: sending anyway" in result.output
    assert f"refused by the contract: {reasons.VAULT_NAV_NOT_AFTER_REQUEST}" in result.output
    before, after = story.refusals["too early, skip checks"]
    assert after["contracts"] == before["contracts"]  # mined and reverted: nothing changed
    assert "add 1 GPU(s)" in story.results["add gpus"].output


def test_a_redemption_after_the_notice_period(story: World, chain: Chain) -> None:
    assert "request the redemption of 1,000 LSH1 from SPV 1: tx" in story.results["redeem"].output
    assert "redemption funds now 40,000 mUSDC unallocated" in story.results["fund"].output
    assert_nothing_sent(story, "notice", "redemption fulfilment refused, nothing sent",
                        reasons.VAULT_NOTICE_NOT_OVER)
    nav = story.extra["navs"][2]
    gross = REDEMPTION * SHARE * nav * USDC // 10**26
    fee = -(-gross * FEE_BPS // 10_000)
    before = story.extra["before proceeds"]["contracts"]
    end = story.extra["end"]["contracts"]
    assert before["requests"]["holder"][6:] == (REDEMPTION * SHARE, gross - fee)
    assert end["stablecoin"]["holder"] == before["stablecoin"]["holder"] + gross - fee
    assert end["shares"]["holder"] == (HELD - REDEMPTION) * SHARE
    assert end["supply"] == before["supply"]  # burnt at the fulfilment, before the claim
    assert end["funds"] == 0 and end["stablecoin"]["vault"] == 0
    out = story.results["fulfil redemption"].output
    assert "burnt 1,000 LSH1;" in out and f"claimable by {HOLDER}" in out
    # Real `ape` processes: no warning from the scripts importing their shared modules.
    assert "Warning" not in story.results["list fulfillable"].output
    assert "Warning" not in story.results["status"].output
    status = story.results["status"].output
    assert f"SPV 1 vault: {HOLDER} holds 6,500 LSH1" in status
    assert "nothing pending or claimable" in status
    assert "redemption funds now 0 mUSDC unallocated" in story.results["defund"].output
