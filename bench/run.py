"""`make bench`: gas of the share token's hot paths on a real anvil node.

Gas is the receipt's `gasUsed` (21,000 base + calldata + execution) of one transaction
on anvil, measured in a warmed-up state so that each number is the steady-state cost a
user pays, not a first-time storage creation (those are reported separately where they
matter). Writes build/bench.json (keys under "gas", later issues add "timing") and
prints a table. Targets are checked and reported; the exit code is non-zero if one fails.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import eth_abi
from eth_account import Account
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from bench.app import measure_app
from gpushares import abi, processes, timeline
from gpushares.client import suite
from gpushares.client.web3_chain import Web3Chain
from gpushares.devnode import PROJECT_ROOT, AnvilNode, dev_key
from jurisdictions import eligibility, onchain
from jurisdictions.rules import load_rules
from oracle import attest, reports
from oracle.log import AttestationLog
from oracle.verify import verify_log

BUILD = PROJECT_ROOT / "build"
SHARE = 10**18
USDC = 10**6


@dataclass
class Artifact:
    abi: list[dict[str, Any]]
    bytecode: bytes


@functools.cache
def compile_vyper(path: Path) -> Artifact:
    """Compile with the pinned vyper CLI (same compiler and pragmas ape uses)."""
    out = subprocess.run(  # noqa: S603 - fixed argv
        [str(Path(sys.executable).with_name("vyper")), "-f", "abi,bytecode", str(path)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    return Artifact(abi=json.loads(out[0]), bytecode=bytes.fromhex(out[1].removeprefix("0x")))


@dataclass
class Bench:
    web3: Web3
    gas: dict[str, int] = field(default_factory=dict)

    def send(self, fn: Any, sender: str) -> dict[str, Any]:
        tx_hash = fn.transact({"from": sender})
        receipt = self.web3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise RuntimeError(f"benchmark transaction reverted: {fn}")
        return receipt

    def measure(self, key: str, fn: Any, sender: str) -> None:
        self.gas[key] = int(self.send(fn, sender)["gasUsed"])

    @functools.cached_property
    def chain(self) -> Web3Chain:
        """The same node as the client layer sees it: the suite is deployed by
        `gpushares.client.suite`, the one builder the scripts and the tests use."""
        return Web3Chain(self.web3)

    def contract(self, name: str, address: str) -> Contract:
        """A web3 contract of the suite (shipped ABI) at `address`."""
        return self.web3.eth.contract(address, abi=abi.load(name))

    def deploy(self, art: Artifact, sender: str, *args: Any) -> Contract:
        factory = self.web3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        receipt = self.send(factory.constructor(*args), sender)
        return self.web3.eth.contract(receipt["contractAddress"], abi=art.abi)



def run_share_token(b: Bench, accounts: list[str]) -> dict[str, Contract]:
    admin, operator, alice, bob, carol, dave = accounts[:6]
    stable = b.contract("MockStablecoin", suite.deploy_mock_stablecoin(b.chain, admin))
    registry = b.contract("ComplianceRegistry", suite.deploy_registry(b.chain, admin))
    _blueprint, factory_address = suite.deploy_spv_factory(b.chain, admin, registry.address,
                                                           operators=[operator])
    factory = b.contract("SPVFactory", factory_address)

    # The shipped rules; the US (title `unclear`) counts as recognised for this SPV
    # through a legal-opinion override; every holder is an accredited US resident.
    rules = load_rules()
    for batch in onchain.plan(rules, _Views(registry)).row_batches():
        b.send(registry.functions.set_jurisdictions(batch), admin)
    expiry = b.web3.eth.get_block("latest")["timestamp"] + 365 * 86_400
    for account in (operator, alice, bob, carol):
        b.send(registry.functions.set_investor(account, 840, True, expiry), admin)

    b.send(
        factory.functions.create_spv(
            "Bench GPU SPV I LLC", 840, "5493001KJTIIGC8Y1R12", b"\x11" * 32,
            "Bench H100 Shares", "BH1", 1000 * SHARE, stable.address,
        ),
        operator,
    )
    token = b.contract("GPUShareToken", factory.functions.spvs(1).call()[4])
    b.send(registry.functions.set_title_override(token.address, 840, b"\x0b" * 32), operator)
    now = b.web3.eth.get_block("latest")["timestamp"]
    gpus = [
        (bytes([i + 1]) * 32, b"H100-SXM5-80GB".ljust(32, b"\0"), 840,
         b"US-TX-DFW-01".ljust(32, b"\0"), 27_500 * 10**8, now - 86_400, 0)
        for i in range(8)
    ]
    b.send(token.functions.add_gpus(gpus), operator)
    b.send(stable.functions.mint(operator, 10**9 * USDC), admin)
    b.send(stable.functions.approve(token.address, 2**256 - 1), operator)

    b.send(token.functions.mint(alice, 1000 * SHARE), operator)
    b.measure("share_mint", token.functions.mint(bob, 1000 * SHARE), operator)
    b.send(token.functions.distribute(1000 * USDC), operator)
    b.measure("income_distribute", token.functions.distribute(1000 * USDC), operator)
    # Steady state: both holders already hold shares and have claimed income before.
    b.send(token.functions.transfer(bob, SHARE), alice)
    b.measure("share_transfer_gated", token.functions.transfer(bob, SHARE), alice)
    b.measure("share_transfer_new_holder", token.functions.transfer(carol, SHARE), alice)
    b.send(token.functions.distribute(1000 * USDC), operator)
    b.measure("income_claim_first", token.functions.claim(), alice)
    b.send(token.functions.distribute(1000 * USDC), operator)
    b.measure("income_claim", token.functions.claim(), alice)

    # A wallet onboarding itself with an attestation the KYC provider (admin) signed:
    # the first record for this investor, as a new user pays it. Fixed times (not the
    # node's clock) keep the signature, hence the calldata gas, the same on every run.
    attestation = eligibility.Eligibility(
        investor=dave, jurisdiction=840, accredited=True, expires_at=4_102_444_800,
        nonce=0, deadline=4_102_444_800,
    )
    signed = eligibility.sign(attestation, dev_key(0), b.web3.eth.chain_id, registry.address)
    b.measure(
        "eligibility_submit",
        registry.functions.submit_eligibility(attestation.as_tuple(), signed.signature_bytes()),
        dave,
    )
    return {"stable": stable, "registry": registry, "token": token}


def signed_feed(b: Bench, admin: str, name: str, description: str, high: int,
                key_index: int, *, max_move_bps: int = 0) -> tuple[str, Any]:
    """An OracleHub of its own (2-of-3, keys `dev_key(key_index..+2)`) with one feed
    (bounds 1..`high`, move limit `max_move_bps`, none by default, 30-day heartbeat);
    returns the feed's adapter and `publish(usd_8dec)`, which submits a co-signed report
    observed at the latest block (and fails if the hub refuses the move)."""
    w3 = b.web3
    hub = b.contract("OracleHub", suite.deploy_oracle(b.chain, admin)[1])
    keys = [dev_key(key_index + i) for i in range(3)]
    signer_set = sorted((Account.from_key(k).address for k in keys), key=lambda a: int(a, 16))
    b.send(hub.functions.set_signers(signer_set, 2), admin)
    feed_id = reports.feed_id(name)
    b.send(hub.functions.add_feed(feed_id, description, 1, high, max_move_bps, 30 * 86_400),
           admin)
    domain = attest.Domain(chain_id=w3.eth.chain_id, hub=hub.address)
    log_size = 0

    def publish(usd_8dec: int) -> None:
        nonlocal log_size
        log_size += 1
        report = attest.PriceReport(
            feed_id=feed_id, value=usd_8dec, confidence=0,
            observed_at=w3.eth.get_block("latest")["timestamp"], methodology_version=1,
            inputs_hash=attest.inputs_hash(b"bench-%s-%d" % (name.encode(), log_size)),
            log_size=log_size,
            log_root=attest.inputs_hash(b"bench-%s-root-%d" % (name.encode(), log_size)),
            config_version=1,
        )
        signed = attest.cosign(report, domain, keys[:2])
        receipt = b.send(hub.functions.submit_price(report.as_tuple(),
                                                    signed.signature_structs()), admin)
        if not hub.events.PriceUpdated().process_receipt(receipt, errors=DISCARD):
            raise RuntimeError(f"benchmark feed {name}: the hub refused {usd_8dec}")

    return hub.functions.feed_adapter(feed_id).call(), publish


def run_lending(b: Bench, accounts: list[str], world: dict[str, Contract]) -> None:
    """A LendingPool on the share token of `run_share_token`, priced by a NAV feed of an
    OracleHub (2-of-3). Every measured call is the second of its kind by the same warm
    account, one hour after the previous operation (so interest accrues in each)."""
    admin, operator, alice, bob, carol = accounts[:5]
    keeper, lender = accounts[8], accounts[9]
    stable, registry, token = world["stable"], world["registry"], world["token"]
    w3 = b.web3

    def hour_later() -> None:
        w3.provider.make_request("evm_increaseTime", [3_600])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    adapter, publish = signed_feed(b, admin, "NAV/BH1/USD",
                                   "Bench H100 Shares: NAV per share, USD", 10**13, 40)
    publish(15 * 10**8)
    model = b.contract("KinkedRateModel", b.chain.deploy(
        "KinkedRateModel", [2 * 10**16, 10 * 10**16, 300 * 10**16, 80 * 10**16],
        admin).contract_address)
    factory = b.contract("LendingPoolFactory", suite.deploy_lending(b.chain, admin)[1])
    b.send(factory.functions.create_market(
        stable.address, token.address, adapter, model.address, 80 * 10**16, 70 * 10**16, 1_000,
        admin, "Bench Pool mUSDC/BH1", "bpBH1"), admin)
    pool = b.contract("LendingPool", factory.functions.market_at(1).call())
    expiry = w3.eth.get_block("latest")["timestamp"] + 365 * 86_400
    for account in (pool.address, keeper, lender):
        b.send(registry.functions.set_investor(account, 840, True, expiry), admin)
    b.send(registry.functions.set_custodian(pool.address, True), admin)
    b.send(stable.functions.mint(lender, 10**7 * USDC), admin)
    b.send(stable.functions.mint(keeper, 10**7 * USDC), admin)
    for account in (lender, bob, carol, keeper):
        b.send(stable.functions.approve(pool.address, 2**256 - 1), account)
    for account in (bob, carol):
        b.send(token.functions.approve(pool.address, 2**256 - 1), account)
    b.send(token.functions.mint(carol, 1000 * SHARE), operator)

    # Lender: supply twice, withdraw twice (a part each time).
    b.send(pool.functions.deposit(1_000_000 * USDC, lender), lender)
    hour_later()
    b.measure("pool_supply", pool.functions.deposit(1_000_000 * USDC, lender), lender)
    # Borrowers: collateral twice, borrow twice, repay twice.
    b.send(pool.functions.supply_collateral(400 * SHARE, bob), bob)
    b.send(pool.functions.supply_collateral(1000 * SHARE, carol), carol)
    b.send(pool.functions.borrow(9_000 * USDC, carol), carol)
    hour_later()
    b.measure("pool_supply_collateral", pool.functions.supply_collateral(400 * SHARE, bob), bob)
    b.send(pool.functions.borrow(2_000 * USDC, bob), bob)
    hour_later()
    b.measure("pool_borrow", pool.functions.borrow(2_000 * USDC, bob), bob)
    b.send(pool.functions.repay(500 * USDC, bob), bob)
    hour_later()
    b.measure("pool_repay", pool.functions.repay(500 * USDC, bob), bob)
    b.send(pool.functions.withdraw(100_000 * USDC, lender, lender), lender)
    hour_later()
    b.measure("pool_withdraw", pool.functions.withdraw(100_000 * USDC, lender, lender), lender)
    b.measure("pool_withdraw_collateral", pool.functions.withdraw_collateral(10 * SHARE, bob), bob)
    b.send(token.functions.distribute(1000 * USDC), operator)
    b.measure("pool_claim_income", pool.functions.claim_income(), carol)
    # Carol's loan (9,000 against 1,000 shares at 15 USD: LTV 60 %) becomes liquidatable
    # when the NAV falls to 10 USD (LTV 90 %); the keeper takes it in two bites.
    hour_later()
    publish(12 * 10**8)
    hour_later()
    publish(10 * 10**8)
    b.send(pool.functions.liquidate(carol, 1_000 * USDC), keeper)
    hour_later()
    publish(10 * 10**8 - 1)
    b.measure("pool_liquidate", pool.functions.liquidate(carol, 1_000 * USDC), keeper)


WAD = 10**18
# The perp market of the benchmark: the demo's parameters (10x, 5 % maintenance).
PERP_PARAMS = (1_000_000, 500_000, 500_000, 1_000, 500, 10, 5, 50, 5 * USDC,
               3 * WAD // 100, 5 * WAD // 100)
# The index feed's move limit per update (bps): within the market's risk rule
# m * (1 + liquidation fee) + taker fee < maintenance margin (here m <= 487).
PERP_MAX_MOVE_BPS = 400
# The order window: no minimum delay, a day to execute, a 2 USDC keeper fee reserved in
# the margin at every commit and credited to the executor's margin in the market.
PERP_ORDER_WINDOW = (0, 86_400, 2 * USDC)
PERP_CROWD = 1_000


def perp_index_feed(b: Bench, admin: str) -> tuple[str, Any]:
    """The H100 index feed of the perp scenarios: its own OracleHub (2-of-3, keys
    `dev_key(43..45)`), move limit `PERP_MAX_MOVE_BPS`; (adapter, publish)."""
    return signed_feed(b, admin, "H100-SXM-80GB/USD/GPUh", "H100 SXM 80GB / USD per GPU-hour",
                       10**11, 43, max_move_bps=PERP_MAX_MOVE_BPS)


def executed(market: Contract, receipt: dict[str, Any]) -> dict[str, Any]:
    """`receipt` of an `execute_order` whose trade went through: a refused trade does not
    revert (the order is cancelled, `OrderFailed`), so the bench checks the event."""
    failed = market.events.OrderFailed().process_receipt(receipt, errors=DISCARD)
    if failed:
        reason = bytes(failed[0]["args"]["reason"])  # Error(string), ABI-encoded
        text = eth_abi.decode(["string"], reason[4:])[0] if len(reason) > 4 else "?"
        raise RuntimeError(f"benchmark order refused: {text}")
    if not market.events.OrderExecuted().process_receipt(receipt, errors=DISCARD):
        raise RuntimeError("benchmark execution: no OrderExecuted event")
    return receipt


def run_perps(b: Bench, accounts: list[str], world: dict[str, Contract]) -> None:
    """A PerpMarket on an H100 index feed of its own OracleHub (2-of-3, move limit 400 bps)
    with a 2 USDC order keeper fee. Every trade is an order: committed by the trader,
    filled at the next oracle round (observed after the commit), executed by a keeper.
    The keeper fee is reserved in the trader's margin at the commit and, at the
    execution, moved from the trader's margin to the keeper's margin account in the
    market: no token moves. "Keeper fee paid" in these numbers means that credit; the
    keeper's `withdraw_margin` of what it earned is a transaction of its own (a token
    transfer), made as rarely as the keeper likes, and is not in any number here.

    Measured, with one other position in the market (a long, so both the market's sums
    and its long side's sums are already non-zero, as in any market with longs):
    - `perp_order_commit`: a trader who holds margin but never ordered commits an open
      of 1,000 GPU-hours: its one order slot is written from zero (as at every commit:
      an execution or a cancellation clears it);
    - `perp_order_execute`: an hour later (funding accrues over it) the next round
      lands and a keeper executes it; the keeper already has a margin account from
      earlier executions (as a running keeper does), so the fee credit rewrites a
      non-zero slot; the order slot goes back to zero (its refund counts). The close
      the same way (`perp_order_execute_close`);
    - `perp_order_execute_first_keeper_credit`: the same open, executed by a keeper
      that never had a margin account in the market (its first credit creates the
      slot); no target: a keeper pays it once per market;
    - `perp_liquidate`: a keeper's second liquidation, after the index rose 10 % in
      rounds within the move limit (the liquidation fee is a token transfer; the
      keeper's stablecoin balance already exists);
    - `perp_order_execute_1000_positions`: the open of `perp_order_execute` again with
      1,000 other positions (real ones, committed by proxy traders of
      bench/contracts/BenchCrowd.vy and executed in batches), which must cost the same:
      funding is one index, not a loop over positions."""
    admin, keeper, first_keeper = accounts[0], accounts[8], accounts[3]
    counterparty, trader, risky_a, risky_b = accounts[5], accounts[6], accounts[7], accounts[2]
    stable = world["stable"]
    w3 = b.web3

    def later(seconds: int) -> None:
        w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    adapter, publish = perp_index_feed(b, admin)
    index = 2 * 10**8
    publish(index)
    factory = b.contract("PerpMarketFactory", suite.deploy_perps(b.chain, admin)[1])
    b.send(factory.functions.create_market(stable.address, adapter, PERP_PARAMS, admin, admin),
           admin)
    market = b.contract("PerpMarket", factory.functions.market_at(1).call())
    b.send(market.functions.set_order_window(*PERP_ORDER_WINDOW), admin)

    def commit(size: int) -> Any:
        return market.functions.commit_order(size, 2**256 - 1 if size > 0 else 0)

    def next_round(wait: int = 1, value: int | None = None) -> None:
        """The next oracle round (at `value`, else the index again), observed `wait`
        seconds after the last block: strictly after every commit so far."""
        nonlocal index
        index = index if value is None else value
        later(wait)
        publish(index)

    def execute(account: str, by: str = keeper, key: str | None = None) -> None:
        """`by` executes `account`'s order (its trade must go through); gas under `key`."""
        receipt = executed(market, b.send(market.functions.execute_order(account), by))
        if key is not None:
            b.gas[key] = int(receipt["gasUsed"])

    def trade(*orders: tuple[str, int]) -> None:
        """Commit each order, publish the next round, execute each (by the keeper)."""
        for account, size in orders:
            b.send(commit(size), account)
        next_round()
        for account, _size in orders:
            execute(account)

    for account in (admin, counterparty, trader, risky_a, risky_b):
        b.send(stable.functions.mint(account, 10**6 * USDC), admin)
        b.send(stable.functions.approve(market.address, 2**256 - 1), account)
    b.send(market.functions.fund_insurance(100_000 * USDC), admin)
    for account, margin in ((counterparty, 50_000), (trader, 10_000), (risky_a, 500),
                            (risky_b, 500)):
        b.send(market.functions.deposit_margin(margin * USDC), account)
    # The counterparty's long, increased an hour later: its last funding index is not
    # zero, as in any market that has run for a while (so no measured call is the first
    # to make the market's funding sum non-zero). The keeper's first credits are here.
    trade((counterparty, 10_000 * WAD))
    later(3_600)
    trade((counterparty, 10_000 * WAD))
    if market.functions.position(keeper).call()[1] == 0:
        raise RuntimeError("benchmark keeper: no margin account before the measured execution")
    later(3_600)
    b.measure("perp_order_commit", commit(1_000 * WAD), trader)
    next_round(3_600)
    execute(trader, key="perp_order_execute")
    later(3_600)
    b.send(commit(-1_000 * WAD), trader)
    next_round()
    execute(trader, key="perp_order_execute_close")
    # The same open an hour later, executed by a keeper new to the market.
    later(3_600)
    b.send(commit(1_000 * WAD), trader)
    next_round(3_600)
    if any(market.functions.position(first_keeper).call()):
        raise RuntimeError("benchmark first keeper: it already has a margin account")
    execute(trader, by=first_keeper, key="perp_order_execute_first_keeper_credit")
    trade((trader, -1_000 * WAD))
    # Two 9x shorts (they reduce the skew: no premium); the index rises 10 % in three
    # rounds within the move limit (2.00 -> 2.08 -> 2.1632 -> 2.20) and the keeper
    # liquidates both.
    trade((risky_a, -2_200 * WAD), (risky_b, -2_200 * WAD))
    for value in (208_000_000, 216_320_000, 220_000_000):
        next_round(1_200, value)
    b.send(market.functions.liquidate(risky_a), keeper)
    later(3_600)
    b.measure("perp_liquidate", market.functions.liquidate(risky_b), keeper)
    # 1,000 other positions, half long half short, then the same open again.
    crowd = b.deploy(compile_vyper(PROJECT_ROOT / "bench/contracts/BenchCrowd.vy"), admin)
    trader_impl = b.deploy(compile_vyper(PROJECT_ROOT / "bench/contracts/BenchTrader.vy"), admin)
    b.send(stable.functions.mint(crowd.address, PERP_CROWD * 100 * USDC), admin)
    sizes = [(10 + i % 7) * WAD * (1 if i % 2 else -1) for i in range(PERP_CROWD)]
    before = sum(market.functions.market().call()[:2])
    for start in range(0, PERP_CROWD, 100):
        b.send(crowd.functions.spawn(trader_impl.address, market.address, stable.address,
                                     100 * USDC, sizes[start:start + 100]), admin)
    next_round()
    for start in range(0, PERP_CROWD, 100):
        b.send(crowd.functions.execute(market.address, start, 100), admin)
    if sum(market.functions.market().call()[:2]) - before != sum(map(abs, sizes)):
        raise RuntimeError("benchmark crowd: not every proxy trader's order was executed")
    later(3_600)
    b.send(commit(1_000 * WAD), trader)
    next_round(3_600)
    execute(trader, key="perp_order_execute_1000_positions")


VAULT_NOTICE = 86_400


def run_vault(b: Bench, accounts: list[str], world: dict[str, Contract]) -> None:
    """The SubscriptionVault (ERC-7540) of the share token of `run_share_token`, opened
    through its factory as `ape run spv subscriptions open` opens it (the token's
    OPERATOR_ROLE granted, registered as a holder and a custodian), priced by a NAV feed
    of its own OracleHub (2-of-3). A busy vault: other investors' subscriptions and
    redemptions pending and their shares claimable, so the vault's totals and balances
    are never zero. Every measured call is the second of its kind by the same warm
    account, each request a new one after the previous was fulfilled and claimed
    (request -> NAV -> fulfil -> claim, the cycle of a regular subscriber):
    - `vault_request_deposit`: Alice subscribes 1,500 USDC (the stablecoin pulled into
      escrow; her allowance is unlimited);
    - `vault_fulfil_deposit`: one request, all of it, at a NAV published after it: the
      shares are minted to the vault (the token's compliance check and backing cap), the
      stablecoin sent to the treasury; she claimed everything last time, as a regular
      subscriber does, and her claimable slot stays written (a marker bit), so it is
      rewritten, not created;
    - `vault_claim_shares`: Alice's `deposit(assets, receiver)` of all of it (a gated
      transfer vault -> Alice, who already holds shares);
    - `vault_fulfil_deposit_onto_claimable`: the same fulfilment for Bob, whose earlier
      shares are still unclaimed; no target (it costs the same);
    - `vault_request_redeem`: Bob escrows 10 shares (a gated `transferFrom` into the
      vault, unlimited allowance), his earlier redemption fulfilled and claimed."""
    admin, operator, alice, bob, carol = accounts[:5]
    stable, registry, token = world["stable"], world["registry"], world["token"]
    w3 = b.web3

    def later(seconds: int) -> None:
        w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    adapter, publish = signed_feed(b, admin, "NAV/BH1/USD", "Bench H100 Shares: NAV per share",
                                   10**13, 40)
    publish(15 * 10**8)
    factory = b.contract("SubscriptionVaultFactory", suite.deploy_subscriptions(b.chain, admin)[1])
    b.send(factory.functions.create_vault(token.address, adapter, operator, VAULT_NOTICE, 50,
                                          14 * 86_400), operator)
    vault = b.contract("SubscriptionVault", factory.functions.vault_of(token.address).call())
    b.send(token.functions.grantRole(suite.OPERATOR_ROLE, vault.address), operator)
    expiry = w3.eth.get_block("latest")["timestamp"] + 100 * 365 * 86_400
    b.send(registry.functions.set_investor(vault.address, 840, True, expiry), admin)
    b.send(registry.functions.set_custodian(vault.address, True), admin)
    for account in (alice, bob, carol):
        b.send(stable.functions.mint(account, 10**6 * USDC), admin)
        b.send(stable.functions.approve(vault.address, 2**256 - 1), account)
        b.send(token.functions.approve(vault.address, 2**256 - 1), account)
    b.send(stable.functions.approve(vault.address, 2**256 - 1), operator)
    b.send(vault.functions.fund_redemptions(100_000 * USDC), operator)
    v = vault.functions

    def fulfilled_round(*requests: tuple[Any, str]) -> None:
        """Send each request, then the next NAV (observed after them)."""
        for fn, sender in requests:
            b.send(fn, sender)
        later(60)
        publish(15 * 10**8)

    # Bob's shares stay claimable, Carol's subscription and redemption pending throughout.
    b.send(token.functions.mint(carol, 100 * SHARE), operator)
    b.send(v.requestRedeem(50 * SHARE, carol, carol), carol)
    fulfilled_round((v.requestDeposit(3_000 * USDC, bob, bob), bob),
                    (v.requestDeposit(1_500 * USDC, alice, alice), alice))
    b.send(v.fulfil_deposit(bob, 3_000 * USDC), operator)
    b.send(v.fulfil_deposit(alice, 1_500 * USDC), operator)
    b.send(v.deposit(1_500 * USDC, alice), alice)
    b.send(v.requestDeposit(1_500 * USDC, carol, carol), carol)
    later(3_600)
    b.measure("vault_request_deposit", v.requestDeposit(1_500 * USDC, alice, alice), alice)
    later(60)
    publish(15 * 10**8)
    b.measure("vault_fulfil_deposit", v.fulfil_deposit(alice, 1_500 * USDC), operator)
    b.measure("vault_claim_shares", v.deposit(1_500 * USDC, alice), alice)
    # The same fulfilment for Bob, whose earlier shares are still unclaimed: his
    # claimable slot is rewritten instead of created.
    b.send(v.requestDeposit(1_500 * USDC, bob, bob), bob)
    later(60)
    publish(15 * 10**8)
    b.measure("vault_fulfil_deposit_onto_claimable", v.fulfil_deposit(bob, 1_500 * USDC),
              operator)
    # Redemptions: Bob's first, fulfilled after the notice and claimed; then his second.
    b.send(v.requestRedeem(10 * SHARE, bob, bob), bob)
    later(VAULT_NOTICE)
    publish(15 * 10**8)
    b.send(v.fulfil_redeem(bob, 10 * SHARE), operator)
    b.send(v.redeem(10 * SHARE, bob, bob), bob)
    later(3_600)
    b.measure("vault_request_redeem", v.requestRedeem(10 * SHARE, bob, bob), bob)


def run_oracle(b: Bench, accounts: list[str]) -> None:
    """OracleHub with a 3-of-5 signer set: a steady-state price update (the feed's ring of
    rounds already full, so every write overwrites a slot) and a utilisation update."""
    admin, relayer = accounts[0], accounts[6]
    hub = b.contract("OracleHub", suite.deploy_oracle(b.chain, admin)[1])
    keys = [dev_key(20 + i) for i in range(5)]
    signer_set = sorted((Account.from_key(k).address for k in keys), key=lambda a: int(a, 16))
    b.send(hub.functions.set_signers(signer_set, 3), admin)
    feed_id = "0x" + b"H100-SXM-80GB/USD/GPUh".ljust(32, b"\0").hex()
    b.send(hub.functions.add_feed(feed_id, "H100 SXM 80GB / USD per GPU-hour", 1, 10**11, 2_000,
                                  3_600), admin)
    domain = attest.Domain(chain_id=b.web3.eth.chain_id, hub=hub.address)

    # Fixed past times and hashes (not the node's clock): the signatures, hence the
    # calldata gas, are the same on every run.
    def price(i: int) -> attest.SignedReport:
        report = attest.PriceReport(
            feed_id=feed_id, value=2_15000000 + (i % 7) * 100_000, confidence=4_000_000,
            observed_at=1_700_000_000 + 600 * i, methodology_version=1,
            inputs_hash=attest.inputs_hash(b"bench-inputs-%d" % i), log_size=i + 1,
            log_root=attest.inputs_hash(b"bench-root-%d" % i), config_version=1,
        )
        return attest.cosign(report, domain, [keys[(i + j) % 5] for j in range(3)])

    def submit(signed: attest.SignedReport) -> Any:
        return hub.functions.submit_price(signed.report.as_tuple(), signed.signature_structs())

    b.measure("oracle_submit_price_3of5_first_round", submit(price(0)), relayer)
    ring = hub.functions.RING_SIZE().call()
    for i in range(1, ring + 1):
        b.send(submit(price(i)), relayer)
    b.measure("oracle_submit_price_3of5", submit(price(ring + 1)), relayer)

    def utilisation(i: int) -> attest.SignedReport:
        report = attest.UtilisationReport(
            spv_token=accounts[7], period_start=1_700_000_000 + 86_400 * i,
            period_end=1_700_000_000 + 86_400 * (i + 1), gpu_count=8, utilisation_bps=8_125,
            rental_revenue=3_456_000_000, inputs_hash=attest.inputs_hash(b"bench-util-%d" % i),
            log_size=ring + 10 + i, log_root=attest.inputs_hash(b"bench-uroot-%d" % i),
            config_version=1,
        )
        return attest.cosign(report, domain, keys[:3])

    def submit_u(signed: attest.SignedReport) -> Any:
        return hub.functions.submit_utilisation(signed.report.as_tuple(),
                                                signed.signature_structs())

    b.send(submit_u(utilisation(0)), relayer)
    b.measure("oracle_submit_utilisation_3of5", submit_u(utilisation(1)), relayer)


class _Views:
    """Calls a web3 contract's view functions by attribute, like ape and boa do."""

    def __init__(self, contract: Contract) -> None:
        self._contract = contract

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._contract.functions, name)
        return lambda *args: fn(*args).call()




def run_baseline(b: Bench, accounts: list[str]) -> None:
    admin, _operator, alice, bob = accounts[:4]
    base = b.deploy(compile_vyper(PROJECT_ROOT / "bench/contracts/BaselineERC20.vy"), admin)
    b.send(base.functions.mint(alice, 1000 * SHARE), admin)
    b.send(base.functions.mint(bob, 1000 * SHARE), admin)
    b.send(base.functions.transfer(bob, SHARE), alice)
    b.measure("baseline_erc20_transfer", base.functions.transfer(bob, SHARE), alice)


def check(gas: dict[str, int]) -> list[tuple[str, bool]]:
    """The issue's targets, each as (description, met)."""
    return [
        ("income_claim <= 75,000", gas["income_claim"] <= 75_000),
        # issue 17 (compliance at every seam) tightened these
        ("share_transfer_gated <= 65,000", gas["share_transfer_gated"] <= 65_000),
        ("oracle_submit_price_3of5 <= 70,000", gas["oracle_submit_price_3of5"] <= 70_000),
        ("pool_supply <= 100,000", gas["pool_supply"] <= 100_000),
        ("pool_withdraw <= 95,000", gas["pool_withdraw"] <= 95_000),
        ("pool_borrow <= 98,000", gas["pool_borrow"] <= 98_000),
        ("pool_repay <= 100,000", gas["pool_repay"] <= 100_000),
        ("pool_supply_collateral <= 100,000", gas["pool_supply_collateral"] <= 100_000),
        ("pool_withdraw_collateral <= 110,000", gas["pool_withdraw_collateral"] <= 110_000),
        ("pool_claim_income <= 112,000", gas["pool_claim_income"] <= 112_000),
        ("pool_liquidate <= 160,000", gas["pool_liquidate"] <= 160_000),
        # issue 18 (two-step orders): the execution pays the keeper fee (credited to the
        # margin account in the market of a keeper that already has one)
        ("perp_order_commit <= 90,000", gas["perp_order_commit"] <= 90_000),
        ("perp_order_execute <= 140,000", gas["perp_order_execute"] <= 140_000),
        ("perp_liquidate <= 130,000", gas["perp_liquidate"] <= 130_000),
        ("perp_order_execute_1000_positions within 2 % of perp_order_execute",
         abs(gas["perp_order_execute_1000_positions"] - gas["perp_order_execute"]) * 50
         <= gas["perp_order_execute"]),
        # issue 20 (the ERC-7540 subscription vault)
        ("vault_request_deposit <= 90,000", gas["vault_request_deposit"] <= 90_000),
        ("vault_fulfil_deposit <= 140,000", gas["vault_fulfil_deposit"] <= 140_000),
        ("vault_claim_shares <= 110,000", gas["vault_claim_shares"] <= 110_000),
        ("vault_request_redeem <= 100,000", gas["vault_request_redeem"] <= 100_000),
    ]


def check_timing(timing: dict[str, float]) -> list[tuple[str, bool]]:
    """The issue's timing targets that hold on any machine this project runs on (the
    quorum round's is relative: measure before and after in one run)."""
    return [
        (f"verify >= 2,000 entries/s ({timing['verify_entries_per_s']:,})",
         timing["verify_entries_per_s"] >= 2_000),
        # issue 21 (the wallet app)
        (f"app_page_p95_ms <= 300 ({timing['app_page_p95_ms']})",
         timing["app_page_p95_ms"] <= 300),
        (f"app_rpc_calls_per_page <= 3 ({timing['app_rpc_calls_per_page']:g})",
         timing["app_rpc_calls_per_page"] <= 3),
        (f"refused /v1/sign requests leave memory flat (+"
         f"{timing['api_sign_reject_rss_growth_mb']} MB)",
         timing["api_sign_reject_rss_growth_mb"] < 50),
    ]


def measure_gas() -> dict[str, int]:
    """Start anvil, deploy, run every scenario, return receipt gas by key."""
    with AnvilNode(genesis=timeline.genesis()) as node:
        web3 = Web3(Web3.HTTPProvider(node.url))
        accounts = web3.eth.accounts
        bench = Bench(web3)
        run_baseline(bench, accounts)
        world = run_share_token(bench, accounts)
        run_oracle(bench, accounts)
        run_lending(bench, accounts, world)
        run_perps(bench, accounts, world)
        run_vault(bench, accounts, world)
    return bench.gas


VERIFY_LOG_ENTRIES = 10_000


def measure_verify(entries: int = VERIFY_LOG_ENTRIES) -> dict[str, float]:
    """`gpu-oracle verify`'s offline speed on a log of `entries` entries: a signer set and
    price reports signed 3-of-5, each recomputed from its stored 5-offer snapshot."""
    keys = [dev_key(20 + i) for i in range(5)]
    signer_set = sorted((Account.from_key(k).address for k in keys), key=lambda a: int(a, 16))
    domain = attest.Domain(chain_id=31337, hub="0x5FC8d32690cc91D4c39d9d3abcBD16989F875707")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench-log.sqlite"
        with AttestationLog(path) as log:
            reports.record_signer_set(log, domain, 1, signer_set, 3)
            for i in range(entries - 1):
                snapshot = {
                    "methodology": "offer-median", "version": 1,
                    "feedId": reports.feed_id("BENCH/USD/GPUh"), "observedAt": 1_700_000_000 + i,
                    "source": "bench", "offers": [
                        {"provider": f"p{j}", "gpu": "H100 SXM",
                         "pricePerGpuHour": f"2.{(i + 7 * j) % 97:02d}"} for j in range(5)
                    ],
                }
                reports.attest_snapshot(log, "price", snapshot, domain=domain, config_version=1,
                                        keys=[keys[(i + j) % 5] for j in range(3)])
        started = time.perf_counter()
        with AttestationLog(path, create=False) as log:
            summary = verify_log(log)
        elapsed = time.perf_counter() - started
    assert summary.entries == entries
    return {"verify_entries_per_s": round(entries / elapsed, 1),
            "verify_10k_entries_s": round(elapsed, 2)}


def measure_index() -> dict[str, float]:
    """Parse every shipped marketplace snapshot and evaluate every model's index feed."""
    from oracle import index
    from oracle.sources import parse_snapshot

    days = sorted((PROJECT_ROOT / "oracle/data/offers").glob("*.json.gz"))
    best = float("inf")
    for _ in range(5):  # best of 5: the machine's noise, not the code's, varies
        started = time.perf_counter()
        for day in days:
            result = parse_snapshot(day)
            for snapshot in index.index_feed_snapshots(result.quotes, result.observed_at).values():
                index.evaluate(snapshot)
        best = min(best, time.perf_counter() - started)
    return {"index_all_snapshots_ms": round(best * 1000, 1)}


API_CLIENTS = 64
API_REQUESTS_PER_CLIENT = 50


def measure_api_latency() -> dict[str, float]:
    """`GET /v1/feeds/{id}` (the latest value) on a real uvicorn server on 127.0.0.1,
    64 concurrent clients with their own connections; p50/p99 over every request."""
    import statistics
    import threading

    import httpx

    keys = [dev_key(20 + i) for i in range(3)]
    signer_set = sorted((Account.from_key(k).address for k in keys), key=lambda a: int(a, 16))
    domain = attest.Domain(chain_id=31337, hub="0x5FC8d32690cc91D4c39d9d3abcBD16989F875707")
    feed = "H100-SXM-80GB/USD/GPUh"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "api-log.sqlite"
        with AttestationLog(path) as log:
            reports.record_signer_set(log, domain, 1, signer_set, 2)
            for i in range(200):
                snapshot = {"methodology": "offer-median", "version": 1,
                            "feedId": reports.feed_id(feed), "observedAt": 1_700_000_000 + i,
                            "source": "bench", "offers": [
                                {"provider": f"p{j}", "gpu": "H100 SXM",
                                 "pricePerGpuHour": f"2.{(i + 7 * j) % 97:02d}"}
                                for j in range(5)]}
                reports.attest_snapshot(log, "price", snapshot, domain=domain,
                                        config_version=1, keys=keys[:2])
        server, base = _serve("--log", path)
        url = f"{base}/v1/feeds/{reports.feed_id(feed)}"
        latencies: list[float] = []
        lock = threading.Lock()
        barrier = threading.Barrier(API_CLIENTS)

        def client() -> None:
            mine = []
            with httpx.Client(timeout=30) as http:
                http.get(url).raise_for_status()  # connect before the clock starts
                barrier.wait()
                for _ in range(API_REQUESTS_PER_CLIENT):
                    started = time.perf_counter()
                    http.get(url).raise_for_status()
                    mine.append(time.perf_counter() - started)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=client) for _ in range(API_CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        processes.stop(server, grace_s=10.0)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    return {"api_latest_p50_ms": round(statistics.median(latencies) * 1000, 1),
            "api_latest_p99_ms": round(p99 * 1000, 1)}


def _serve(*args: Any) -> tuple[Any, str]:
    """`gpu-oracle serve ARGS` in its own process, as deployed (clients' threads in this
    process would otherwise share its interpreter lock); (process, base URL) once it
    answers /healthz."""
    import httpx

    from gpushares.devnode import free_port

    port = free_port()
    server = processes.spawn([Path(sys.executable).with_name("gpu-oracle"), "serve", *args,
                              "--port", str(port)], cwd=PROJECT_ROOT)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).raise_for_status()
            return server, f"http://127.0.0.1:{port}"
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                processes.stop(server)
                raise RuntimeError("the API server did not start") from None
            time.sleep(0.1)


REJECT_CLIENTS = 16
REJECT_SECONDS = 5.0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_api_sign_reject() -> dict[str, float]:
    """Refused unauthenticated `POST /v1/sign` requests a full node (`serve --config`)
    absorbs per second: 16 clients on their own connections for 5 s, each sending a
    4 KiB co-signing body without peer-authentication headers (401 before the body is
    parsed); and how much the node's memory grew meanwhile (it must stay flat)."""
    import threading

    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "node.key").write_text(dev_key(20).hex() + "\n")
        (folder / "node.toml").write_text(
            'name = "node-1"\nkey_file = "node.key"\nlog = "log.sqlite"\n'
            'state = "state.sqlite"\n\n[[peers]]\nname = "node-2"\n'
            'url = "http://127.0.0.1:9"\n\n[rounds]\nsync_interval_s = 0\n')
        server, base = _serve("--config", folder / "node.toml")
        body = json.dumps({"leader": "node-2", "kind": "price", "report": {},
                           "inputs": "{" + " " * 4_090 + "}"}).encode()
        counts: list[int] = []
        barrier = threading.Barrier(REJECT_CLIENTS + 1)
        stop = time.monotonic() + 3_600.0
        deadline = [stop]

        def client() -> None:
            done = 0
            with httpx.Client(timeout=30) as http:
                http.post(f"{base}/v1/sign", content=body)  # connect first
                barrier.wait()
                while time.monotonic() < deadline[0]:
                    if http.post(f"{base}/v1/sign", content=body).status_code != 401:
                        raise RuntimeError("an unauthenticated /v1/sign was not refused 401")
                    done += 1
            counts.append(done)

        threads = [threading.Thread(target=client) for _ in range(REJECT_CLIENTS)]
        for t in threads:
            t.start()
        rss_before = _rss_mb(server.pid)
        barrier.wait()
        started = time.monotonic()
        deadline[0] = started + REJECT_SECONDS
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        rss_after = _rss_mb(server.pid)
        processes.stop(server, grace_s=10.0)
    return {"api_sign_reject_per_s": round(sum(counts) / elapsed, 1),
            "api_sign_reject_rss_growth_mb": round(rss_after - rss_before, 1)}


KEEPER_HISTORY_BLOCKS = 1_000
KEEPER_STEPS = 10


def measure_keeper_scan() -> dict[str, float]:
    """A keeper pass over every market (`gpushares.client.keeper.plan_pass`, no
    checkpoint: each market's events read from its creation block) on anvil, after
    1,000+ blocks of history: a lending market where three borrowers post collateral
    and borrow and a perp market where four traders trade (each trade an order executed
    after the next index round), a borrower and a trader acting every 100 blocks. Best
    of 3 passes."""
    from gpushares import deployments as deployments_file
    from gpushares.client import keeper
    from gpushares.client.context import Client

    with AnvilNode(genesis=timeline.genesis()) as node:
        web3 = Web3(Web3.HTTPProvider(node.url))
        accounts = web3.eth.accounts
        b = Bench(web3)
        world = run_share_token(b, accounts)
        admin, operator, keeper_account = accounts[0], accounts[1], accounts[8]
        borrowers, traders, lender = accounts[2:5], accounts[5:9], accounts[9]
        stable, registry, token = world["stable"], world["registry"], world["token"]
        nav, publish_nav = signed_feed(b, admin, "NAV/BH1/USD", "Bench NAV", 10**13, 40)
        publish_nav(15 * 10**8)
        model = b.chain.deploy("KinkedRateModel", [2 * 10**16, 10 * 10**16, 300 * 10**16,
                                                   80 * 10**16], admin).contract_address
        lending_factory = suite.deploy_lending(b.chain, admin)[1]
        factory = b.contract("LendingPoolFactory", lending_factory)
        b.send(factory.functions.create_market(
            stable.address, token.address, nav, model, 80 * 10**16, 70 * 10**16, 1_000, admin,
            "Bench Pool mUSDC/BH1", "bpBH1"), admin)
        pool = b.contract("LendingPool", factory.functions.market_at(1).call())
        expiry = web3.eth.get_block("latest")["timestamp"] + 365 * 86_400
        b.send(registry.functions.set_investor(pool.address, 840, True, expiry), admin)
        b.send(registry.functions.set_custodian(pool.address, True), admin)
        index, publish_index = perp_index_feed(b, admin)
        publish_index(2 * 10**8)
        perp_factory = suite.deploy_perps(b.chain, admin)[1]
        perps = b.contract("PerpMarketFactory", perp_factory)
        b.send(perps.functions.create_market(stable.address, index, PERP_PARAMS, admin, admin),
               admin)
        market = b.contract("PerpMarket", perps.functions.market_at(1).call())
        b.send(stable.functions.mint(lender, 10**6 * USDC), admin)
        b.send(stable.functions.approve(pool.address, 2**256 - 1), lender)
        b.send(pool.functions.deposit(10**6 * USDC, lender), lender)
        for who in borrowers:
            b.send(token.functions.mint(who, 100 * SHARE), operator)
            b.send(token.functions.approve(pool.address, 2**256 - 1), who)
        for who in traders:
            b.send(stable.functions.mint(who, 10**5 * USDC), admin)
            b.send(stable.functions.approve(market.address, 2**256 - 1), who)
            b.send(market.functions.deposit_margin(10_000 * USDC), who)
        gap = KEEPER_HISTORY_BLOCKS // KEEPER_STEPS
        for step in range(KEEPER_STEPS):
            who = borrowers[step % len(borrowers)]
            b.send(pool.functions.supply_collateral(SHARE, who), who)
            if step < len(borrowers):
                b.send(pool.functions.borrow(5 * USDC, who), who)
            # Each trader always on one side; an order, the next round a second later,
            # its execution (by the admin, as a keeper).
            trader = traders[step % len(traders)]
            long = step % len(traders) % 2 == 0
            b.send(market.functions.commit_order((10 if long else -10) * WAD,
                                                 2**256 - 1 if long else 0), trader)
            web3.provider.make_request("evm_increaseTime", [1])  # type: ignore[arg-type]
            web3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            publish_index(2 * 10**8)
            executed(market, b.send(market.functions.execute_order(trader), admin))
            web3.provider.make_request("anvil_mine", [hex(gap)])  # type: ignore[arg-type]
        # What the deployments file would say of this world.
        spv_factory = b.contract("SPVFactory", token.functions.factory().call())
        deployed = deployments_file.Deployments(
            chain_id=web3.eth.chain_id, network="local",
            deployed_at=deployments_file.block_time(b.chain.now()), deployer=admin,
            share_token_blueprint=spv_factory.functions.share_token_blueprint().call(),
            spv_factory=spv_factory.address, compliance_registry=registry.address,
            income_token=stable.address, mock_stablecoin=True,
            lending_pool_factory=lending_factory, perp_market_factory=perp_factory,
            perp_lens=suite.deploy_perp_lens(b.chain, admin))
        client = Client(b.chain, deployed)
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            plan = keeper.plan_pass(client, keeper_account)
            best = min(best, time.perf_counter() - started)
    spans = [scan.last - scan.first + 1 for scan in plan.scans]
    if [p.open_loans for p in plan.lending] != [len(borrowers)] or \
            [p.open_positions for p in plan.perps] != [len(traders)] or \
            min(spans) < KEEPER_HISTORY_BLOCKS:
        raise RuntimeError(f"benchmark keeper pass: unexpected {plan.lines()} over {spans} blocks")
    return {"keeper_scan_ms": round(best * 1000, 1)}


def measure_quorum(rounds: int = 3) -> dict[str, float]:
    """3 `gpu-oracle serve` nodes, 2-of-3, on anvil: a leader's round for the H100 index,
    from syncing its peers to the published transaction's receipt (median of `rounds`
    rounds over successive shipped days)."""
    import statistics

    from gpushares.oracle_cluster import OracleCluster
    from oracle import index
    from oracle.node import load_node

    node_keys = [dev_key(20 + i) for i in range(3)]
    feed = index.feed_name_for("H100-SXM-80GB")
    # The chain starts after the newest shipped snapshot: the rounds replay them in order.
    genesis = timeline.after(timeline.snapshot_times()[-1])
    with AnvilNode(genesis=genesis) as node, tempfile.TemporaryDirectory() as tmp:
        web3 = Web3(Web3.HTTPProvider(node.url))
        bench = Bench(web3)
        admin = web3.eth.accounts[0]
        hub = bench.contract("OracleHub", suite.deploy_oracle(bench.chain, admin)[1])
        signers = sorted((Account.from_key(k).address for k in node_keys),
                         key=lambda a: int(a, 16))
        bench.send(hub.functions.set_signers(signers, 2), admin)
        bench.send(hub.functions.add_feed(reports.feed_id(feed), "H100 bench", 1, 10**11, 5_000,
                                          172_800), admin)
        cluster = OracleCluster(
            Path(tmp), rpc=node.url, hub=hub.address, keys=node_keys,
            publisher_keys=[dev_key(7), dev_key(8), dev_key(9)],
            offers=PROJECT_ROOT / "oracle/data/offers", replay=True,
            feeds=[{"kind": "index", "model": "H100-SXM-80GB", "deviation_bps": 1}],
            rounds={"sync_interval_s": 0})
        times = []
        with cluster:
            leader = load_node(cluster.config("node-1"))
            try:
                for _ in range(rounds):
                    started = time.perf_counter()
                    outcome = leader.run_round([feed])[0]
                    elapsed = time.perf_counter() - started
                    if outcome.status != "published":
                        raise RuntimeError(f"bench round not published: {outcome}")
                    times.append(elapsed)
            finally:
                leader.close()
    return {"quorum_round_ms": round(statistics.median(times) * 1000, 1)}


def main() -> int:
    gas = measure_gas()
    timing = measure_verify()
    timing |= measure_index()
    timing |= measure_api_latency()
    timing |= measure_api_sign_reject()
    timing |= measure_quorum()
    timing |= measure_keeper_scan()
    timing |= measure_app()
    BUILD.mkdir(exist_ok=True)
    out = BUILD / "bench.json"
    existing = json.loads(out.read_text()) if out.is_file() else {}
    existing["gas"] = gas  # every key is measured in each run: none left from older ones
    existing.setdefault("timing", {}).update(timing)
    out.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")

    width = max([36, *(len(key) + 2 for key in (*gas, *timing))])
    print(f"{'gas (receipt gasUsed on anvil)':<{width}}{'gas':>10}")
    for key in sorted(gas):
        print(f"{key:<{width}}{gas[key]:>10,}")
    print(f"\n{'timing (this machine)':<{width}}{'value':>10}")
    for key in sorted(timing):
        print(f"{key:<{width}}{timing[key]:>10,}")
    print()
    failed = 0
    for desc, ok in check(gas) + check_timing(timing):
        print(f"  [{'ok' if ok else 'FAIL'}] {desc}")
        failed += not ok
    print(f"\nwrote {out.relative_to(PROJECT_ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
