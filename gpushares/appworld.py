"""The demo's world, built fast through the client layer: for the wallet app (`make app`),
its browser tests and the benchmark.

`make demo` (gpushares/demo.py) tells the story through `ape run` commands and takes
minutes; this module reaches the same situations in well under a minute by planning
every action with `gpushares.client` (`plan_*` + `Chain.send`, sent by anvil's unlocked
dev accounts through `Web3Chain`) and publishing through the real 2-of-3 oracle quorum
(`OracleCluster`, the `gpu-oracle round` command its nodes run):

    with running_world(Path("/tmp/world")) as world:
        world.people["alice"]            # the cast, at the demo's dev indices
        world.publish()                  # the next day's index and NAV, led by a live node
        world.keeper_pass()              # due perp orders and liquidations
        world.fulfil_subscriptions()     # the vault requests the operator can fulfil now

The cast (ape's TEST::n = anvil dev account n): platform 0 (deployer, compliance admin,
KYC provider, hub admin, market creator), operator 1, alice 2 (US accredited, claimable
income, a perp long), bob 3 (onboarded by his own attestation, a loan against 4,000
shares), carol 4 (North Korea: every transfer to her is refused), dave 5 (lender,
perp long, subscribed through the vault), erin 6 (keeper, a subscription waiting for
the next NAV), frank 10 (a fresh wallet with mUSDC and a signed attestation he has not
submitted: `World.frank_attestation`); dmytro 12 (Kyiv) and oksana 13 (Crimea) never
sign. The oracle uses 7-9 (publishers), 20-22 (signers) and 30 (telemetry agent).

The chain's clock starts at the first shipped marketplace snapshot; the quorum
publishes one round per shipped day (so every feed has a history), the perp orders
fill at the last shipped day, and `publish()` goes on with snapshots of later days
written into the world's offers folder (the last shipped day's offers at slightly
moved prices, labelled in the file as not market data).

    python -m gpushares.appworld [--workdir DIR] [--port 8545]

builds it, prints the URLs and the accounts, and waits for Ctrl-C.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import math
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from eth_account import Account

from gpushares import deployments as deployments_file
from gpushares import timeline
from gpushares.client import hedge, jurisdictions, kyc, oracle, perp, pool, spv, vault
from gpushares.client import keeper as keepers
from gpushares.client.chain import Plan, Receipt
from gpushares.client.context import Client
from gpushares.client.suite import SuiteOptions, deploy_suite
from gpushares.client.web3_chain import Web3Chain
from gpushares.demo import (
    BORROW_LTV,
    DAY,
    FLEET_CSV,
    GPUS,
    HOURS,
    INDEX_FEED,
    INDEX_HEARTBEAT_DAYS,
    INDEX_MAX_MOVE_BPS,
    NAV_FEED,
    OFFERS,
    ORDER_SLIPPAGE,
    PRICE_PER_GPU_HOUR,
    SPV_LEI,
    TELEMETRY_SAMPLES,
    TITLE_OVERRIDE,
    UTILISATION,
    demo_quorum,
)
from gpushares.devnode import PROJECT_ROOT, AnvilNode, dev_key
from gpushares.oracle_cluster import OracleCluster

# The cast: name -> anvil dev account index (ape's TEST::n), as in the demo.
CAST = {"platform": 0, "operator": 1, "alice": 2, "bob": 3, "carol": 4, "dave": 5,
        "erin": 6, "frank": 10, "dmytro": 12, "oksana": 13}
# Dev accounts anvil funds and unlocks: 0..11 (frank, 10, must send transactions).
ACCOUNTS = 12
SIGNER_INDICES = (20, 21, 22)
PUBLISHER_INDICES = (7, 8, 9)
AGENT_INDEX = 30
NETWORK = "ethereum:local:foundry"
DOCUMENTS = PROJECT_ROOT / "examples" / "spv-legal-documents.txt"
# The mock stablecoin the world hands out (whole mUSDC).
FRANK_FUNDS = 25_000
ERIN_FUNDS = 60_000
DAVE_FUNDS = 250_000
# Later days' prices: the last shipped day's x (1 + WOBBLE x sin(day x 1.3)), a
# deterministic few-percent wander within the index feed's move limit.
WOBBLE = 0.012
Progress = Callable[[str], None]


def _quiet(_line: str) -> None:
    return None


def send(client: Client, plan: Plan, sender: str) -> list[Receipt]:
    """Send a plan's transactions in order from `sender` (an unlocked dev account);
    a plan the chain would refuse raises its refusal, nothing sent."""
    return [client.chain.send(tx, sender) for tx in plan.checked().txs]


@dataclass
class Cast:
    """The client and the cast's dev accounts: who sends what."""

    client: Client
    people: dict[str, str]  # name -> address
    indices: dict[str, int]  # name -> anvil dev account index (ape's TEST::n)

    def key(self, who: str) -> bytes:
        """The private key of a cast member's dev account (`gpushares.devnode.dev_key`)."""
        return dev_key(self.indices[who])

    def send(self, plan: Plan, who: str) -> list[Receipt]:
        """Send `plan` as cast member `who` (a refused plan raises, nothing sent)."""
        return send(self.client, plan, self.people[who])


@dataclass
class World(Cast):
    """A running anvil with the suite deployed, the demo's cast in the demo's
    situations and the oracle quorum serving. Built by `running_world`."""

    node: AnvilNode
    cluster: OracleCluster
    deployments_path: Path
    workdir: Path
    offers: Path  # the quorum's marketplace snapshots (`publish` adds later days)
    spv_id: int
    pool_number: int = 0
    perp_number: int = 0
    index_feed: str = INDEX_FEED
    nav_feed: str = NAV_FEED
    frank_attestation: Path = Path()
    build_seconds: float = 0.0
    progress: Progress = _quiet
    _leaders: Iterator[str] = field(
        default_factory=lambda: itertools.cycle(["node-2", "node-1", "node-3"]))

    @property
    def url(self) -> str:
        """The anvil JSON-RPC URL."""
        return self.node.url

    def env(self) -> dict[str, str]:
        """Environment in which `ape run ... --network ethereum:local:foundry` (and the
        `keeper` script) acts on this world: its node and its deployments folder."""
        env = self.node.env()
        env["GPU_SHARES_DEPLOYMENTS_DIR"] = str(self.deployments_path.parent)
        return env

    # ------------------------------------------------------------------ time

    def advance(self, seconds: int) -> None:
        """Move the chain's clock `seconds` on and mine a block."""
        web3 = self.client.chain.web3  # type: ignore[attr-defined]
        web3.provider.make_request("evm_increaseTime", [int(seconds)])
        web3.provider.make_request("evm_mine", [])

    def clock_to(self, moment: int) -> None:
        """Set the chain's clock to `moment` (not backwards) and mine a block."""
        web3 = self.client.chain.web3  # type: ignore[attr-defined]
        moment = max(moment, self.client.chain.now() + 1)
        web3.provider.make_request("evm_setNextBlockTimestamp", [moment])
        web3.provider.make_request("evm_mine", [])

    # ------------------------------------------------------------------ the oracle

    def publish(self, *feeds: str) -> None:
        """One oracle round for `feeds` (default the index and the NAV), led by the next
        live node in turn (`gpu-oracle round --config node-N.toml`). With the index,
        the chain's clock first moves to the hour after the next marketplace day not yet
        published (writing a later day's snapshot when the folder has none), so the
        round has a new index to publish and the NAV follows it. Raises with the
        round's output when a feed got no new round."""
        wanted = list(feeds) or [self.index_feed, self.nav_feed]
        before = {name: oracle.feed(self.client, name).round_id for name in wanted}
        if self.index_feed in wanted:
            self.clock_to(timeline.after(self._next_day()))
        leader = self._leader()
        done = self.cluster.round(leader, *wanted)
        after = {name: oracle.feed(self.client, name).round_id for name in wanted}
        missing = [name for name in wanted if after[name] <= before[name]]
        if done.returncode != 0 or missing:
            raise RuntimeError(
                f"{leader}'s round published no new {', '.join(missing) or 'value'} (exit "
                f"{done.returncode}):\n{done.stdout}{done.stderr}")
        self.progress(f"{leader} published " + ", ".join(
            f"{name} round {after[name]}" for name in wanted))

    def _leader(self) -> str:
        for name in itertools.islice(self._leaders, len(self.cluster.names)):
            if name in self.cluster.procs and self.cluster.procs[name].poll() is None:
                return name
        raise RuntimeError("no oracle node is running: `world.cluster.start(name)` one")

    def _next_day(self) -> int:
        """The observation time of the oldest snapshot newer than the hub's index (a
        new one, a day after the newest, when there is none)."""
        published = oracle.feed(self.client, self.index_feed).observed_at
        days = snapshot_days(self.offers)
        newer = [d for d in days if d > published]
        if newer:
            return newer[0]
        return write_later_day(self.offers, max(days[-1] + DAY, self.client.chain.now()))

    # ------------------------------------------------------------------ keepers, operator

    def keeper_pass(self, keeper: str = "erin") -> list[Receipt]:
        """One pass of the real keeper (`gpushares.client.keeper`, as `ape run keeper`
        runs it, with its checkpoint file beside the deployments file) by `keeper`:
        due perp orders executed, expired ones cancelled, liquidations. Raises when the
        keeper is refused or a liquidation reverts."""
        checkpoints = keepers.Checkpoints(keepers.default_state_path(self.deployments_path))
        who = self.people[keeper]
        plan = keepers.plan_pass(self.client, who, checkpoints=checkpoints)
        receipts: list[Receipt] = []
        done = keepers.run(self.client, who, plan, on_receipt=receipts.append,
                           on_line=self.progress)
        if done.errors:
            raise RuntimeError("keeper pass: " + "; ".join(done.errors))
        return receipts

    def fulfil_subscriptions(self) -> list[Receipt]:
        """The operator fulfils every vault request of the SPV it can fulfil now
        (subscriptions and redemptions: `client.vault`'s plans say which); returns the
        receipts (none when nothing is due)."""
        operator = self.people["operator"]
        receipts: list[Receipt] = []
        for request in vault.requests(self.client, self.spv_id).requests:
            if request.pending_deposit and request.deposit_refusal is None:
                receipts += self.send(vault.plan_fulfil_deposit(
                    self.client, operator, self.spv_id, request.controller), "operator")
            if request.pending_redeem and request.redeem_refusal is None:
                receipts += self.send(vault.plan_fulfil_redeem(
                    self.client, operator, self.spv_id, request.controller), "operator")
        return receipts

    # ------------------------------------------------------------------ description

    def lines(self) -> list[str]:
        """What `python -m gpushares.appworld` prints: where everything is."""
        out = [f"anvil           {self.url} (chain 31337; clock at "
               f"{timeline.utc(self.client.chain.now())})",
               f"deployments     {self.deployments_path}",
               f"  export GPU_SHARES_DEPLOYMENTS_DIR={self.deployments_path.parent} "
               f"APE_FOUNDRY_HOST={self.url}",
               f"SPV {self.spv_id}, lending pool {self.pool_number}, perp market "
               f"{self.perp_number}; feeds {self.index_feed}, {self.nav_feed}"]
        out += [f"oracle {name}   {self.cluster.url(name)}" for name in self.cluster.names]
        out.append(f"frank's attestation {self.frank_attestation}")
        out += [f"  {who:<9} TEST::{self.indices[who]:<3} {self.people[who]}  key 0x"
                f"{self.key(who).hex()}" for who in self.people]
        out.append(f"built in {self.build_seconds:.1f}s")
        return out


# ---------------------------------------------------------------------------------
# Later marketplace days
# ---------------------------------------------------------------------------------


def snapshot_days(folder: Path) -> list[int]:
    """The observation times of the snapshots in `folder`, oldest first (read anew:
    `World.publish` adds days)."""
    return sorted(timeline.snapshot_time(path) for path in folder.glob("*.json*"))


def later_factor(day: int) -> Decimal:
    """The price multiple of later day `day` (1, 2, ...) over the last shipped day's."""
    return Decimal(1) + Decimal(str(round(WOBBLE * math.sin(day * 1.3), 4)))


def write_later_day(folder: Path, moment: int) -> int:
    """Write a snapshot observed at `moment` into `folder`: the last shipped day's
    offers at `later_factor` of their prices, labelled as not market data. Returns its
    observation time (`moment`)."""
    shipped = sorted(OFFERS.glob("*.json.gz"))[-1]
    snapshot = json.loads(gzip.decompress(shipped.read_bytes()))
    last = timeline.snapshot_time(shipped)
    day = max(1, round((moment - last) / DAY))
    factor = later_factor(day)
    collected = datetime.fromtimestamp(moment, UTC)
    snapshot["collected_utc"] = collected.isoformat()
    snapshot["collection_date"] = collected.date().isoformat()
    snapshot["description"] = (
        f"APP WORLD, not market data: {shipped.name} with every price x {factor}, dated "
        f"{timeline.utc(moment)}. " + snapshot.get("description", ""))
    snapshot["source"] = f"app world continuation of {snapshot.get('source', shipped.name)}"
    for offers in snapshot["offers_by_model"].values():
        for offer in offers:
            if isinstance(offer.get("dph_total"), int | float):
                offer["dph_total"] = float(Decimal(str(offer["dph_total"])) * factor)
    name = f"app-world-{collected.strftime('%Y-%m-%dT%H%M')}.json.gz"
    (folder / name).write_bytes(gzip.compress(json.dumps(snapshot).encode(), mtime=0))
    return moment


# ---------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------


def _deploy(chain: Web3Chain, deployments_dir: Path, people: dict[str, str]) -> tuple[
        Client, Path]:
    """`ape run deploy --account TEST::0 --operator <operator>`, and its file."""
    deployed = deploy_suite(chain, people["platform"], SuiteOptions(
        operators=(people["operator"],), network=NETWORK))
    ecosystem, network, _provider = NETWORK.split(":")
    path = deployments_dir / f"{ecosystem}-{network}-{chain.chain_id}.json"
    deployments_file.save(path, deployed)
    return Client(chain, deployed), path


def _spv(world: Cast, workdir: Path, progress: Progress) -> int:
    """The SPV as the demo's first part leaves it: jurisdiction table, the SPV and its
    fleet, the investors onboarded, shares minted and moved, a month's income paid and
    claimed. Returns the SPV's id."""
    c, p = world.client, world.people
    world.send(jurisdictions.plan_apply(c, p["platform"], jurisdictions.load()), "platform")
    receipts = world.send(spv.plan_create(
        c, p["operator"], legal_name="Lone Star GPU Fleet I LLC", jurisdiction=840,
        lei=SPV_LEI, documents_hash=spv.documents_digest(file=DOCUMENTS),
        token_name="Lone Star H100 Shares", symbol="LSH1", shares_per_gpu="1000"), "operator")
    sid = spv.created(c, receipts)
    world.send(jurisdictions.plan_apply(c, p["operator"], jurisdictions.load(
        overrides=[TITLE_OVERRIDE])), "operator")
    world.send(spv.plan_add_gpus(c, p["operator"], sid, spv.load_fleet(FLEET_CSV)), "operator")
    us = kyc.residence("US")
    world.send(kyc.plan_register(c, p["platform"], p["alice"], us, accredited=True), "platform")
    signed = kyc.attest(c, world.key("platform"), p["bob"], us, accredited=True)
    (workdir / "bob-eligibility.json").write_text(signed.to_json() + "\n")
    world.send(kyc.plan_submit(c, signed), "bob")
    for who, place, accredited in (("carol", "KP", False), ("dmytro", "UA-30", True),
                                   ("oksana", "UA-43", True)):
        rule, region = kyc.residence_and_region(place)
        world.send(kyc.plan_register(c, p["platform"], p[who], rule, region=region,
                                     accredited=accredited), "platform")
    world.send(spv.plan_mint(c, p["operator"], sid, p["alice"], "3000"), "operator")
    world.send(spv.plan_mint(c, p["operator"], sid, p["bob"], "5000"), "operator")
    world.send(spv.plan_transfer(c, p["alice"], sid, p["bob"], "500"), "alice")
    world.send(spv.plan_transfer(c, p["alice"], sid, p["dmytro"], "100"), "alice")
    income = GPUS * HOURS * UTILISATION * PRICE_PER_GPU_HOUR
    world.send(spv.plan_distribute(c, p["operator"], sid, f"{income:.2f}"), "operator")
    world.send(spv.plan_claim(c, p["alice"], sid), "alice")
    world.send(spv.plan_claim(c, p["bob"], sid), "bob")
    progress(f"SPV {sid}: {GPUS} GPUs, 8,000 shares, {income:,.2f} mUSDC of income paid")
    return sid


def _oracle_admin(world: Cast) -> None:
    """`ape run oracle set-signers` (2 of 3) and `add-feed` for the index and the NAV,
    with the demo's bounds, move limits and heartbeats."""
    c, admin = world.client, world.people["platform"]
    signers = [Account.from_key(dev_key(i)).address for i in SIGNER_INDICES]
    world.send(oracle.plan_set_signers(c, admin, signers, 2), "platform")
    world.send(oracle.plan_add_feed(
        c, admin, INDEX_FEED, "H100 SXM 80GB / USD per GPU-hour", "0.10", "50",
        INDEX_MAX_MOVE_BPS, INDEX_HEARTBEAT_DAYS * DAY), "platform")
    world.send(oracle.plan_add_feed(
        c, admin, NAV_FEED, "Lone Star H100 Shares: NAV per share, USD", "0.01", "100000",
        2000, 2 * DAY), "platform")


def _cluster(workdir: Path, node: AnvilNode, hub: str, token: str, offers: Path,
             env: dict[str, str]) -> OracleCluster:
    """The demo's 2-of-3 quorum (`demo.demo_quorum`) at the world's dev keys."""
    return demo_quorum(workdir, rpc=node.url, hub=hub, token=token, offers=offers,
                       keys=[dev_key(i) for i in SIGNER_INDICES],
                       publisher_keys=[dev_key(i) for i in PUBLISHER_INDICES],
                       agent_key=dev_key(AGENT_INDEX), env=env)


def _telemetry(world: World, token: str) -> None:
    """The fleet's telemetry agent signs the recorded captures (DCGM scrapes, then an
    nvidia-smi capture) so they cover the last full quarter hour, and posts them to
    every node: what `gpu-oracle agent` does in the demo, in this process."""
    from oracle.telemetry import TelemetryAgent, parse_dcgm, parse_nvsmi

    quarter = world.client.chain.now() // 900 * 900
    nodes = [world.cluster.url(n) for n in world.cluster.names]
    state = world.workdir / "agent-state.json"
    batches = [(parse_dcgm(path.read_text(), scraped_at=quarter - 900 + 300 * i,
                           source=str(path)), "dcgm")
               for i, path in enumerate(sorted(TELEMETRY_SAMPLES.glob("dcgm-*.prom")))]
    smi = next(TELEMETRY_SAMPLES.glob("nvidia-smi-*.csv"))
    captured = list(parse_nvsmi(smi.read_text(), source=str(smi)))
    shift = quarter - 30 - max(s.time for s in captured)
    batches.append(([s.model_copy(update={"time": s.time + shift}) for s in captured],
                    "nvidia-smi"))
    for samples, source in batches:
        samples = list(samples)
        newest = max(s.time for s in samples)
        agent = TelemetryAgent(dev_key(AGENT_INDEX), token, state_path=state, nodes=nodes,
                               clock=lambda newest=newest: float(newest))
        try:
            signed = agent.build(samples, source)
            assert signed is not None, f"the {source} capture had nothing new"
            refused = [o for o in agent.post(signed) if not o.ok]
        finally:
            agent.close()
        if refused:
            raise RuntimeError("telemetry refused: " + "; ".join(
                f"{o.url} {o.code}: {o.message}" for o in refused))


def _first_rounds(world: World) -> None:
    """A round per shipped day but the last: utilisation, index and NAV at the first,
    the index and the NAV at each next day (the feeds' history)."""
    days = snapshot_days(world.offers)
    done = world.cluster.round("node-1")
    if done.returncode != 0:
        raise RuntimeError(f"node-1's first round failed:\n{done.stdout}{done.stderr}")
    world.progress("node-1 published the utilisation, the index and the NAV")
    for _day in days[1:-1]:
        world.publish()


def _lending_and_perps(world: World) -> None:
    """`demo.lending_story` up to the stress scenario: Dave supplies, the perp market
    opens with three orders (the operator's hedge, Alice's and Dave's longs), the
    quorum publishes the last shipped day, Erin's keeper fills them, Bob borrows at
    68 % LTV against 4,000 shares, a month of income reaches his collateral."""
    c, p, sid = world.client, world.people, world.spv_id
    made = pool.create_market(c, p["platform"], pool.market_terms(c, p["platform"], sid))
    world.pool_number = made.number
    stable = c.erc20(c.deployed.income_token)
    usd = 10 ** int(stable.decimals())
    world.send(pool.plan_mint_mock(c, p["platform"], p["dave"], DAVE_FUNDS * usd), "platform")
    world.send(pool.plan_supply(c, p["dave"], world.pool_number, 200_000 * usd), "dave")
    # perp_opening
    world.send(pool.plan_mint_mock(c, p["platform"], p["platform"], 20_000 * usd), "platform")
    receipts = world.send(perp.plan_create(c, p["platform"], INDEX_FEED,
                                           perp.risk_params(int(stable.decimals())),
                                           insurance=20_000 * usd), "platform")
    world.perp_number, _ = perp.created(c, receipts[-1])
    world.send(perp.plan_setup(c, p["platform"], world.perp_number, insurance=20_000 * usd),
               "platform")
    quote = hedge.quote(c, p["operator"], world.perp_number, sid, HOURS, leverage="2",
                        slippage=ORDER_SLIPPAGE)
    world.send(hedge.plan_hedge(c, p["operator"], quote), "operator")
    world.send(pool.plan_mint_mock(c, p["platform"], p["alice"], 10_000 * usd), "platform")
    for who, hours, margin in (("alice", 5_000, 5_000), ("dave", 12_500, 4_200)):
        world.send(perp.plan_commit(c, p[who], world.perp_number, hours * 10**18,
                                    margin=margin * usd, slippage=ORDER_SLIPPAGE), who)
    world.publish()
    filled = world.keeper_pass()
    world.progress(f"perp market {world.perp_number}: keeper executed {len(filled)} orders")
    world.send(pool.plan_deposit_collateral(c, p["bob"], world.pool_number, 4_000 * 10**18),
               "bob")
    nav = Decimal(c.chain.contract("LendingPool", made.pool).price()) / 10**8
    loan = int(Decimal(4000) * nav * BORROW_LTV)
    world.send(pool.plan_borrow(c, p["bob"], world.pool_number, loan * usd), "bob")
    world.send(spv.plan_distribute(c, p["operator"], sid, "10000"), "operator")
    world.send(pool.plan_claim_income(c, p["bob"], world.pool_number), "bob")
    world.progress(f"lending pool {world.pool_number}: Dave supplies 200,000 mUSDC, Bob "
                   f"borrows {loan:,} against 4,000 shares at {nav} USD/share")


def _subscriptions(world: World) -> None:
    """`demo.subscription_story`'s start: the operator opens the vault, the KYC provider
    registers it, Dave and Erin onboard; Dave subscribes 15,000 mUSDC; the operator
    registers the H100 it pays for; the next day's NAV is published, Dave's
    subscription fulfilled and claimed; Erin subscribes 1,000 mUSDC, which waits for
    the next NAV (`World.fulfil_subscriptions` after `World.publish`)."""
    c, p, sid = world.client, world.people, world.spv_id
    terms = vault.vault_terms(c, p["operator"], sid, notice_days="1", fee="0.5")
    vault.open_vault(c, p["operator"], terms)
    world.send(vault.plan_register_vault(c, p["platform"], sid), "platform")
    us = kyc.residence("US")
    for who in ("dave", "erin"):
        world.send(kyc.plan_register(c, p["platform"], p[who], us, accredited=True),
                   "platform")
    usd = 10 ** int(c.erc20(c.deployed.income_token).decimals())
    world.send(pool.plan_mint_mock(c, p["platform"], p["erin"], ERIN_FUNDS * usd), "platform")
    world.send(vault.plan_request_deposit(c, p["dave"], sid, "15000"), "dave")
    expansion = world.workdir / "fleet-expansion.csv"
    bought = timeline.utc(c.chain.now() - DAY)[:10]
    expansion.write_text(
        FLEET_CSV.read_text().splitlines()[0] + "\n"
        f"1654923041185,H100-SXM5-80GB,840,US-TX-DFW-01,27500.00,{bought}\n")
    world.send(spv.plan_add_gpus(c, p["operator"], sid, spv.load_fleet(expansion)), "operator")
    world.publish()
    fulfilled = world.fulfil_subscriptions()
    assert fulfilled, "Dave's subscription was not fulfillable after the NAV"
    world.send(vault.plan_claim(c, p["dave"], sid), "dave")
    world.send(vault.plan_fund(c, p["operator"], sid, "20000"), "operator")
    world.send(vault.plan_request_deposit(c, p["erin"], sid, "1000"), "erin")
    world.progress("subscription vault open: Dave's 15,000 mUSDC issued and claimed, Erin's "
                   "1,000 mUSDC waits for the next NAV")


def _finish(world: World) -> None:
    """Another month's income (Alice and everyone with claimable income) and Frank: a
    fresh wallet with mUSDC and an attestation to submit himself."""
    c, p, sid = world.client, world.people, world.spv_id
    income = GPUS * HOURS * UTILISATION * PRICE_PER_GPU_HOUR
    world.send(spv.plan_distribute(c, p["operator"], sid, f"{income:.2f}"), "operator")
    usd = 10 ** int(c.erc20(c.deployed.income_token).decimals())
    world.send(pool.plan_mint_mock(c, p["platform"], p["frank"], FRANK_FUNDS * usd), "platform")
    signed = kyc.attest(c, world.key("platform"), p["frank"], kyc.residence("US"),
                        accredited=True, deadline_hours=24 * 30)
    world.frank_attestation.write_text(signed.to_json() + "\n")


@contextmanager
def running_world(workdir: Path, *, port: int | None = None,
                  deployments_dir: Path | None = None,
                  on_ready: Callable[[World], None] | None = None,
                  progress: Progress = _quiet) -> Iterator[World]:
    """Start anvil and build the world in `workdir` (the oracle nodes' folders, the
    offers, the attestations; the deployments file in `deployments_dir`, default
    `workdir/deployments`), call `on_ready(world)`, yield it; stop the quorum and anvil
    on exit. `progress` receives one line per stage."""
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    offers = workdir / "offers"
    offers.mkdir(exist_ok=True)
    for day in sorted(OFFERS.glob("*.json.gz")):
        shutil.copy(day, offers / day.name)
    people = {who: Account.from_key(dev_key(i)).address for who, i in CAST.items()}
    with AnvilNode(port, accounts=ACCOUNTS, genesis=timeline.genesis()) as node:
        chain = Web3Chain.at(node.url)
        client, path = _deploy(chain, deployments_dir or workdir / "deployments", people)
        progress(f"anvil {node.url}: suite deployed ({time.monotonic() - started:.1f}s)")
        env = node.env()
        env["GPU_SHARES_DEPLOYMENTS_DIR"] = str(path.parent)
        cast = Cast(client=client, people=people, indices=dict(CAST))
        sid = _spv(cast, workdir, progress)
        _oracle_admin(cast)
        token = str(client.token(sid).address)
        cluster = _cluster(workdir, node, str(client.deployed.oracle_hub), token, offers, env)
        world = World(client=client, people=people, indices=dict(CAST), node=node,
                      cluster=cluster, deployments_path=path, workdir=workdir, offers=offers,
                      spv_id=sid, frank_attestation=workdir / "frank-eligibility.json",
                      progress=progress)
        with world.cluster:
            progress(f"oracle quorum serving ({time.monotonic() - started:.1f}s)")
            _telemetry(world, token)
            _first_rounds(world)
            _lending_and_perps(world)
            _subscriptions(world)
            _finish(world)
            world.build_seconds = time.monotonic() - started
            progress(f"world built in {world.build_seconds:.1f}s")
            if on_ready is not None:
                on_ready(world)
            yield world


def main(argv: Sequence[str] | None = None) -> None:
    """Build the world, print where everything is, wait for Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m gpushares.appworld",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None,
                        help="Folder for the nodes, offers and attestations (default: a new "
                             "temporary folder, removed at the end).")
    parser.add_argument("--port", type=int, default=None, help="anvil's port (default: free).")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gpu-shares-world-"))
    # Stop cleanly on SIGTERM and on SIGINT even when started in the background (where a
    # shell leaves SIGINT ignored): the context managers stop the quorum and anvil.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with running_world(workdir, port=args.port, progress=print) as world:
            print("\n".join(world.lines()))
            print("Ctrl-C stops the quorum and anvil.", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
