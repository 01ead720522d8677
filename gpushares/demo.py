"""`make demo`: the SPV story on a real local chain, told through the operator scripts.

Starts anvil (from node_modules) on a free port on 127.0.0.1, then runs the same `ape run`
commands the platform, an SPV operator, a KYC provider and investors would type, prints
what each did (including the refusals the jurisdiction rules impose), prints a summary
read back from the chain, and stops anvil. Each run uses a fresh node and its own
deployments folder, so running it twice in a row works.
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from web3 import Web3

from gpushares import abi, processes, timeline
from gpushares.aperun import run_ape
from gpushares.devnode import PROJECT_ROOT, AnvilNode, dev_key
from gpushares.oracle_cluster import OracleCluster
from jurisdictions.rules import decode_subdivision, load_rules

NETWORK = "ethereum:local:foundry"
FLEET_CSV = PROJECT_ROOT / "examples" / "fleet-h100.csv"
FLEET_DE_CSV = PROJECT_ROOT / "examples" / "fleet-de.csv"
LEGAL_OPINION = PROJECT_ROOT / "examples" / "legal-opinion-us-demo.txt"
# The demo SPV's title override of the US `unclear` status (the shipped rules data stays
# untouched): `ape run jurisdictions apply --overrides` records it.
TITLE_OVERRIDE = PROJECT_ROOT / "examples" / "lone-star-title-override.toml"
SPV_LEI = "5493001KJTIIGC8Y1R12"
OFFERS = PROJECT_ROOT / "oracle" / "data" / "offers"
TELEMETRY_SAMPLES = PROJECT_ROOT / "oracle" / "telemetry" / "samples"
INDEX_FEED = "H100-SXM-80GB/USD/GPUh"
NAV_FEED = "NAV/LSH1/USD"
# The index feed's heartbeat: the production one. The chain's clock runs where the
# shipped snapshots are (gpushares.timeline), so each day's index is fresh when published.
INDEX_HEARTBEAT_DAYS = 2
# A `gpu-oracle` command that takes this long is hung, not slow.
COMMAND_TIMEOUT_S = 300
# The index feed's largest accepted move per report. The perp market's margins must
# cover one whole update (maintenance 5 % > the move x (1 + 0.5 % liquidation fee) +
# 0.1 % taker fee: at most 487 bps), so one accepted report cannot turn a position above
# maintenance into bad debt; the hub refuses a larger move and halts the feed for
# trading until the next accepted report. The shipped days move the index ~2.4 %.
INDEX_MAX_MOVE_BPS = 400
# The lending story's stress scenario: after the last shipped snapshot, every offer's
# price falls 18 % (H100 rental prices fell far more than that from 2023 to 2025), a
# slide over STRESS_STEPS days, each day's fall (about 3.9 %) within the index feed's
# move limit; the NAV follows, well within its 20 % move limit. Enough to push a loan
# taken at a 68 % LTV past the 80 % liquidation LTV.
STRESS_FACTOR = Decimal("0.82")
STRESS_STEPS = 5
# The slide starts after the story's idle week: the day after it.
STRESS_DAYS_AFTER = 8
BORROW_LTV = Decimal("0.68")
# Days after the slide at its last prices: the perp traders close on the first, the
# subscription vault issues at the second's NAV and redeems at the third's.
HOLD_DAYS = 3
DAY = 86_400
WEEK = 7 * DAY

# One month of the fleet's rental income, from stated assumptions (the attested
# utilisation and price index arrive with the oracle issues).
GPUS = 8
HOURS = 720
UTILISATION = Decimal("0.85")
PRICE_PER_GPU_HOUR = Decimal("2.10")

def test_account(index: int) -> str:
    """Address of ape's TEST::index account (anvil's default mnemonic)."""
    return Account.from_key(dev_key(index)).address


class Story:
    """Runs the scripts against one node and prints what happened.

    The `ape run` commands run inside this process (`gpushares.aperun`: ape loads once,
    not once per command); `gpu-oracle` commands run as their own processes, as an
    operator runs them."""

    def __init__(self, node: AnvilNode, deployments_dir: Path) -> None:
        self.node = node
        self.env = node.env()
        self.env["GPU_SHARES_DEPLOYMENTS_DIR"] = str(deployments_dir)
        # ape-vyper's settings model warns at import; it is not the user's concern here.
        self.env["PYTHONWARNINGS"] = "ignore"
        self.web3 = Web3(Web3.HTTPProvider(node.url))
        self.step = 0

    def ape(self, title: str, *args: str, refused: bool = False) -> str:
        """Run `ape ARGS` against the node, print its own lines, fail loudly on error
        (or, with `refused=True`, when the command was NOT refused)."""
        extra = ["--network", NETWORK] if args[0] == "run" else []
        self._title(title, "ape", args)
        started = time.monotonic()
        done = run_ape([*args, *extra], self.env)
        return self._show(title, done.returncode, done.output, started, refused=refused)

    def gpu_oracle(self, title: str, *args: str, refused: bool = False) -> str:
        """Run the oracle node's `gpu-oracle ARGS` (secrets in files, not in argv)."""
        self._title(title, "gpu-oracle", args)
        started = time.monotonic()
        done = processes.run([Path(sys.executable).with_name("gpu-oracle"), *args],
                             cwd=PROJECT_ROOT, env=self.env, timeout=COMMAND_TIMEOUT_S)
        return self._show(title, done.returncode, done.stdout + done.stderr, started,
                          refused=refused)

    def clock_to(self, moment: int, why: str) -> None:
        """Move the chain's clock to `moment` (anvil's evm_setNextBlockTimestamp, then a
        block): the story reaches the next day of its data."""
        self.web3.provider.make_request("evm_setNextBlockTimestamp", [moment])  # type: ignore[arg-type]
        self.web3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        print(f"\n    The chain's clock moves to {timeline.utc(moment)}: {why}")

    def now(self) -> int:
        """The chain's time (its latest block)."""
        return int(self.web3.eth.get_block("latest")["timestamp"])

    def _title(self, title: str, program: str, args: Sequence[str]) -> None:
        self.step += 1
        print(f"\n[{self.step}] {title}")
        print(f"    $ {program} " + shlex.join(args))

    def _show(self, title: str, returncode: int, output: str, started: float, *,
              refused: bool) -> str:
        lines = []
        in_trace = False  # ape prints a call trace for a reverted transaction: skip it
        for line in output.splitlines():
            if line.startswith("Call trace for"):
                in_trace = True
            elif line.startswith("Error:"):
                in_trace = False
            if in_trace or not line.strip() or line.startswith(("INFO:", "SUCCESS:", "WARNING:")):
                continue
            lines.append(line)
        for line in lines:
            print(f"    {line}")
        if refused and returncode == 0:
            raise SystemExit(f"demo step {self.step} should have been refused: {title}")
        if not refused and returncode != 0:
            raise SystemExit(f"demo step {self.step} failed (exit {returncode}): {title}")
        print(f"    ({time.monotonic() - started:.1f}s)")
        return output


def _abi(name: str) -> list[dict[str, object]]:
    return abi.load(name)


def summary(node: AnvilNode, deployments_dir: Path, investors: dict[str, str]) -> None:
    """Read the end state back from the chain and print it as a table."""
    web3 = Web3(Web3.HTTPProvider(node.url))
    deployed = json.loads(next(deployments_dir.glob("*.json")).read_text())
    factory = web3.eth.contract(deployed["spv_factory"], abi=_abi("SPVFactory"))
    token_address = factory.functions.spvs(1).call()[4]
    token = web3.eth.contract(token_address, abi=_abi("GPUShareToken"))
    stable = web3.eth.contract(token.functions.income_token().call(), abi=_abi("MockStablecoin"))
    registry = web3.eth.contract(deployed["compliance_registry"], abi=_abi("ComplianceRegistry"))
    usd = Decimal(10) ** stable.functions.decimals().call()
    share = Decimal(10) ** 18
    supply = token.functions.totalSupply().call()
    distributed = token.functions.total_distributed().call()
    claimed = token.functions.total_claimed().call()

    print("\n" + "=" * 78)
    print(f"Summary: {token.functions.name().call()} ({token.functions.symbol().call()})")
    print("=" * 78)
    rules = load_rules()
    # Every wallet that ever received shares (the token's Transfer events), so the table
    # accounts for the whole supply: the people, the pool's collateral, the keeper's.
    holders = dict(investors)
    if deployed.get("lending_pool_factory"):
        pools = web3.eth.contract(deployed["lending_pool_factory"],
                                  abi=_abi("LendingPoolFactory"))
        for n in range(1, pools.functions.market_count().call() + 1):
            holders.setdefault(f"lending pool {n}", pools.functions.market_at(n).call())
    if deployed.get("subscription_vault_factory"):
        vaults = web3.eth.contract(deployed["subscription_vault_factory"],
                                   abi=_abi("SubscriptionVaultFactory"))
        for n in range(1, vaults.functions.vault_count().call() + 1):
            holders.setdefault("ERC-7540 vault", vaults.functions.vault_at(n).call())
    for event in token.events.Transfer().get_logs(from_block=0):
        receiver = event["args"]["receiver"]
        if receiver not in holders.values() and int(receiver, 16) != 0:
            holders[f"{receiver[:10]}..."] = receiver
    print(f"{'holder':<16}{'residence':<22}{'shares':>10}{'mUSDC':>12}{'owed':>10}")
    owed_total = 0
    held = 0
    for label, address in holders.items():
        balance = token.functions.balanceOf(address).call()
        held += balance
        owed = token.functions.claimable(address).call()
        owed_total += owed
        paid = stable.functions.balanceOf(address).call()
        jurisdiction, accredited, _expiry, frozen, registered, region = (
            registry.functions.investor(address).call()
        )
        place = rules[jurisdiction].alpha2 if jurisdiction in rules else str(jurisdiction)
        if region:
            place = decode_subdivision(place, region) if jurisdiction in rules else place
        residence = (
            f"{place}{' accredited' if accredited else ''}{' FROZEN' if frozen else ''}"
            if registered else "no KYC record"
        )
        print(
            f"{label:<16}{residence:<22}{Decimal(balance) / share:>10,.0f}"
            f"{Decimal(paid) / usd:>12,.2f}{Decimal(owed) / usd:>10,.2f}"
        )
    if held != supply:
        raise SystemExit(f"the holders listed hold {held} of {supply} share units: a holder is "
                         "missing from the summary")
    dust = distributed - claimed - owed_total
    print("-" * 78)
    print(f"GPUs backing the shares : {token.functions.active_gpus().call()} active")
    print(f"share supply            : {Decimal(supply) / share:,.0f} of "
          f"{Decimal(token.functions.backing().call()[0]) / share:,.0f} the fleet backs, "
          f"all {Decimal(held) / share:,.0f} held by the wallets above")
    print(f"income distributed      : {Decimal(distributed) / usd:,.2f} mUSDC")
    print(f"income claimed          : {Decimal(claimed) / usd:,.2f} mUSDC")
    print(f"rounding dust kept      : {dust} base unit(s) (never more than one per holder)")
    locations = registry.functions.asset_locations(token_address).call()
    recognised = registry.functions.asset_title_recognised(token_address).call()
    title = "recognised (US: SPV's legal-opinion override)" if recognised else "NOT recognised"
    print(f"GPU locations (ISO)     : {', '.join(map(str, locations))}; tokenized title {title}")
    listed = registry.functions.listed_jurisdictions().call()
    print(f"jurisdiction table      : {len(listed)} jurisdictions from jurisdictions/rules/")


def stress_factor(step: int) -> Decimal:
    """The stress scenario's prices on day `step` (1..STRESS_STEPS) as a multiple of the
    last shipped day's: STRESS_FACTOR reached in equal relative steps."""
    return (STRESS_FACTOR ** (Decimal(step) / STRESS_STEPS)).quantize(Decimal("0.000001"))


def stress_offers(workdir: Path) -> Path:
    """A folder with the shipped marketplace snapshots plus the stress scenario: copies
    of the last shipped day dated STRESS_DAYS_AFTER, +1, ... days later (the days after
    the story's idle week), every offer's price multiplied by `stress_factor(step)`,
    then HOLD_DAYS more days at the last step's prices (the prices hold: the perp
    traders close, the subscription vault prices at them). Their file names,
    descriptions and sources say what they are, and the oracle's log records the file
    name with the index each produced."""
    folder = workdir / "offers"
    folder.mkdir()
    days = sorted(OFFERS.glob("*.json.gz"))
    for day in days:
        shutil.copy(day, folder / day.name)
    last = days[-1].read_bytes()
    factors = [stress_factor(step) for step in range(1, STRESS_STEPS + 1)]
    for offset, factor in enumerate([*factors, *[factors[-1]] * HOLD_DAYS]):
        snapshot = json.loads(gzip.decompress(last))
        collected = (datetime.fromisoformat(snapshot["collected_utc"])
                     + timedelta(days=STRESS_DAYS_AFTER + offset))
        snapshot["collected_utc"] = collected.isoformat()
        snapshot["collection_date"] = collected.date().isoformat()
        snapshot["description"] = (
            f"DEMO STRESS SCENARIO, not market data: {days[-1].name} with every price x "
            f"{factor}, dated {STRESS_DAYS_AFTER + offset} days later. "
            + snapshot.get("description", ""))
        snapshot["source"] = (f"stress scenario derived from "
                              f"{snapshot.get('source', days[-1].name)}")
        for offers in snapshot["offers_by_model"].values():
            for offer in offers:
                if isinstance(offer.get("dph_total"), int | float):
                    offer["dph_total"] = float(Decimal(str(offer["dph_total"])) * factor)
        name = f"stress-scenario-{collected.date().isoformat()}.json.gz"
        (folder / name).write_bytes(gzip.compress(json.dumps(snapshot).encode(), mtime=0))
    return folder


def demo_quorum(workdir: Path, *, rpc: str, hub: str, token: str, offers: Path,
                keys: Sequence[bytes], publisher_keys: Sequence[bytes], agent_key: bytes,
                env: dict[str, str]) -> OracleCluster:
    """The demo's 2-of-3 quorum (not started): the H100 index from `offers` replayed day by
    day, the NAV of SPV token `token`'s fleet, its utilisation from the telemetry agent
    `agent_key` signs. The demo and `gpushares.appworld` (the app, its tests, the bench)
    run this same quorum."""
    from oracle import index
    from oracle.sources import parse_snapshot

    # The fleet was bought in 2025; the shipped index history starts 2026-02-27, so the
    # first shipped day's index stands in for the index at acquisition (said in the feed).
    first_day = sorted(OFFERS.glob("*.json.gz"))[0]
    day_one = parse_snapshot(first_day)
    at_acquisition = index.evaluate(index.build_snapshot(
        INDEX_FEED, day_one.quotes, day_one.observed_at)).value
    registry = workdir / "agents.toml"
    registry.write_text(
        "[[agents]]\n"
        f'address = "{Account.from_key(agent_key).address}"\n'
        f'spv_token = "{token}"\n'
        'label = "gpu-node-07 (replayed capture)"\n'
        f'gpus_csv = "{TELEMETRY_SAMPLES / "gpus.csv"}"\n')
    return OracleCluster(
        workdir / "quorum", rpc=rpc, hub=hub, keys=keys, publisher_keys=publisher_keys,
        offers=offers, replay=True, telemetry={"agents": registry, "max_age_s": 7_200},
        feeds=[
            {"kind": "index", "model": "H100-SXM-80GB", "deviation_bps": 50,
             "heartbeat_s": 86_400},
            {"kind": "nav", "spv_token": token, "economic_life_years": "4",
             "model_map": {"H100-SXM5-80GB": "H100-SXM-80GB"},
             "index_at_acquisition": {"H100-SXM-80GB": {
                 "value": str(at_acquisition),
                 "source": f"H100 index v1 of {first_day.name}, the earliest shipped day, "
                           "standing in for the index when the fleet was bought"}},
             "deviation_bps": 50, "heartbeat_s": 86_400},
        ],
        utilisation=[{"spv_token": token, "period_s": 900}],
        rounds={"sign_timeout_s": 5, "sync_interval_s": 1},
        env=env,
    )


def oracle_story(story: Story, node: AnvilNode, workdir: Path) -> None:
    """The attested oracle as a 2-of-3 quorum: three nodes on 127.0.0.1, each with its own
    key and log, compute the H100 GPU-hour index from the shipped marketplace snapshots,
    the SPV's utilisation from signed GPU telemetry and its NAV per share, co-sign what
    they agree on and publish it; one node crashes and is outvoted; an auditor verifies."""
    node_keys = [dev_key(20 + i) for i in range(3)]
    signers = [Account.from_key(k).address for k in node_keys]
    deployed = json.loads(next(workdir.glob("*.json")).read_text())
    hub, rpc = deployed["oracle_hub"], node.url
    web3 = Web3(Web3.HTTPProvider(node.url))
    factory = web3.eth.contract(deployed["spv_factory"], abi=_abi("SPVFactory"))
    token = factory.functions.spvs(1).call()[4]
    nav_feed = NAV_FEED
    agent_key = dev_key(30)
    story.ape(
        "The hub admin (TEST::0) installs the three oracle nodes' keys as a 2-of-3 signer set",
        "run", "oracle", "set-signers", "--account", "TEST::0",
        *[arg for s in signers for arg in ("--signer", s)], "--threshold", "2",
    )
    story.ape(
        "The hub admin adds the H100 SXM GPU-hour index feed and its AggregatorV3 adapter, "
        f"with the production heartbeat of {INDEX_HEARTBEAT_DAYS} days (this chain's clock "
        "runs at the shipped marketplace snapshots' dates, February-March 2026) and a move "
        f"limit of {INDEX_MAX_MOVE_BPS / 100:g} % per report (the perp market's margins cover "
        "one whole update; a larger move is refused and halts the feed for trading)",
        "run", "oracle", "add-feed", "--account", "TEST::0", "--name", INDEX_FEED,
        "--description", "H100 SXM 80GB / USD per GPU-hour", "--min", "0.10", "--max", "50",
        "--max-move-bps", str(INDEX_MAX_MOVE_BPS),
        "--heartbeat", str(INDEX_HEARTBEAT_DAYS * 86_400),
    )
    story.ape(
        "... and the NAV-per-share feed of the SPV's shares (for the lending pools)",
        "run", "oracle", "add-feed", "--account", "TEST::0", "--name", nav_feed,
        "--description", "Lone Star H100 Shares: NAV per share, USD", "--min", "0.01",
        "--max", "100000", "--max-move-bps", "2000", "--heartbeat", str(2 * 86_400),
    )
    offers = stress_offers(workdir)
    days = timeline.snapshot_times(offers)
    cluster = demo_quorum(workdir, rpc=rpc, hub=hub, token=token, offers=offers,
                          keys=node_keys, publisher_keys=[dev_key(7), dev_key(8), dev_key(9)],
                          agent_key=agent_key, env=story.env)
    with cluster:
        print("\n    three oracle nodes: " + ", ".join(
            f"{n} {cluster.url(n)} ({cluster.addresses[n][:10]})" for n in cluster.names))
        # A stranger who reaches a node's port asks it to co-sign: the peer endpoints
        # answer only requests signed by a key of the hub's signer set.
        refused = httpx.post(f"{cluster.url('node-2')}/v1/sign", timeout=10,
                             json={"entry": {"feed": INDEX_FEED, "value": "99"}})
        detail = refused.json()["detail"]
        print(f"\n    A stranger POSTs an unsigned co-sign request to node-2's /v1/sign:\n"
              f"    HTTP {refused.status_code} {detail['code']}: {detail['message']}")
        # The telemetry agent replays recorded captures of the fleet's 8 H100s so that they
        # cover the last full quarter hour (the nodes accept samples up to 2 h old here).
        quarter = web3.eth.get_block("latest")["timestamp"] // 900 * 900
        key_file = workdir / "agent.key"
        key_file.write_text("0x" + agent_key.hex() + "\n")
        nodes = [arg for n in cluster.names for arg in ("--node", cluster.url(n))]
        scrapes = sorted(TELEMETRY_SAMPLES.glob("dcgm-*.prom"))
        for i, capture in enumerate(scrapes):
            story.gpu_oracle(
                f"The fleet's telemetry agent signs a DCGM exporter scrape ({capture.name}) "
                "and posts it to every node",
                "agent", "--key", str(key_file), "--spv", token, "--state",
                str(workdir / "agent-state.json"), *nodes, "--dcgm", str(capture),
                "--scraped-at", str(quarter - 900 + 300 * i))
        smi = next(TELEMETRY_SAMPLES.glob("nvidia-smi-*.csv"))
        story.gpu_oracle(
            f"... and an nvidia-smi capture ({smi.name})",
            "agent", "--key", str(key_file), "--spv", token, "--state",
            str(workdir / "agent-state.json"), *nodes, "--nvidia-smi", str(smi),
            "--replay-ending", str(quarter - 30))
        story.gpu_oracle(
            "An agent that lost its state re-sends the last scrape as a new batch: every "
            "node refuses the repeated samples (replay protection)",
            "agent", "--key", str(key_file), "--spv", token, "--state",
            str(workdir / "agent-state-lost.json"), *nodes, "--dcgm", str(scrapes[-1]),
            "--scraped-at", str(quarter - 900 + 300 * (len(scrapes) - 1)), refused=True)
        story.gpu_oracle(
            "node-1 leads a round: the SPV's utilisation for the last quarter hour, the H100 index "
            "from the first shipped snapshot, then the NAV per share; node-2 co-signs after "
            "recomputing each from the same inputs and its own sources",
            "round", "--config", str(cluster.config("node-1")))
        story.clock_to(timeline.after(days[1]), "the next marketplace snapshot's day")
        story.gpu_oracle(
            "node-2 leads the next round: the next day's index (it moved beyond 50 bps), "
            "and the NAV that follows it",
            "round", "--config", str(cluster.config("node-2")),
            "--feed", INDEX_FEED, "--feed", nav_feed)
        print("\n    node-3 crashes (SIGKILL)")
        cluster.stop("node-3")
        story.clock_to(timeline.after(days[2]), "the next snapshot's day")
        story.gpu_oracle(
            "node-1 leads with node-3 down: 2 of 3 still agree, node-3 is outvoted",
            "round", "--config", str(cluster.config("node-1")),
            "--feed", INDEX_FEED, "--feed", nav_feed)
        cluster.start("node-3")
        story.clock_to(timeline.after(days[3]), "the next snapshot's day")
        story.gpu_oracle(
            "node-3 restarts, pulls the entries it missed (each checked) and leads a round",
            "round", "--config", str(cluster.config("node-3")),
            "--feed", INDEX_FEED, "--feed", nav_feed)
        story.ape("The hub's feeds, as any Chainlink consumer reads them", "run", "oracle",
                  "status")
        feeds = httpx.get(f"{cluster.url('node-2')}/v1/feeds", timeout=10).json()
        print(f"\n    GET {cluster.url('node-2')}/v1/feeds")
        for feed in feeds:
            latest = feed["latest"]
            if latest:
                print(f"    {feed['name']:<24} {latest['value_decimal']:>14} USD  (entry "
                      f"{latest['entry']}, observed {latest['observed_at']})")
        story.gpu_oracle(
            "An auditor re-verifies node-3's log offline and against the chain",
            "verify", "--node", cluster.url("node-3"), "--rpc", rpc, "--hub", hub)
        lending_story(story, cluster, web3, workdir, days)
        subscription_story(story, cluster, web3, workdir, days)


def lending_story(story: Story, cluster: OracleCluster, web3: Web3, workdir: Path,
                  days: Sequence[int]) -> None:
    """A lender supplies mUSDC; the perp market opens and its first orders fill at the
    next published index; Bob borrows against his GPU shares; the oracle quorum
    publishes a falling index day by day (the stress scenario) and the NAV follows; the
    keeper's pass after each round liquidates Dave's perp long once it falls below
    maintenance, without bad debt; Bob's loan crosses the liquidation LTV and the keeper
    liquidates it; then everyone's balances, and the perp traders close by orders."""
    dave, bob, erin = (test_account(i) for i in (5, 3, 6))
    story.ape(
        "The platform (TEST::0) opens a lending market: mUSDC loans against LSH1 shares, "
        f"priced by the {NAV_FEED} feed (max LTV 70 %, liquidation LTV 80 %, kinked rates), "
        "and registers the pool as an eligible holder of the shares",
        "run", "pool", "create", "--account", "TEST::0", "--spv", "1")
    story.ape("Dave (TEST::5), a lender, gets 250,000 mUSDC from the local mock",
              "run", "pool", "mint-mock", "--account", "TEST::0", "--to", dave,
              "--amount", "250000")
    story.ape("Dave supplies 200,000 mUSDC and receives vault shares (ERC-4626)",
              "run", "pool", "supply", "--account", "TEST::5", "--pool", "1",
              "--amount", "200000")
    perp_opening(story)
    story.clock_to(timeline.after(days[4]), "the last shipped snapshot's day")
    story.gpu_oracle(
        "node-2 leads a round: the last shipped day's index, the first oracle round observed "
        "after the three perp orders were committed, and the NAV that follows it",
        "round", "--config", str(cluster.config("node-2")), "--feed", INDEX_FEED,
        "--feed", NAV_FEED)
    perp_fills(story)
    story.ape("Bob (TEST::3) posts 4,000 of his shares as collateral (a gated transfer)",
              "run", "pool", "deposit-collateral", "--account", "TEST::3", "--pool", "1",
              "--shares", "4000")
    story.ape("Bob tries to post 100 shares as collateral for Carol (TEST::4, resident in "
              "North Korea): supplying for someone else is a transfer to them, refused with "
              "the message a direct transfer gets (sent anyway with --skip-checks so the "
              "contract's refusal shows)",
              "run", "pool", "deposit-collateral", "--account", "TEST::3", "--pool", "1",
              "--shares", "100", "--for", test_account(4), "--skip-checks", refused=True)
    deployed = json.loads(next(workdir.glob("*.json")).read_text())
    factory = web3.eth.contract(deployed["lending_pool_factory"], abi=_abi("LendingPoolFactory"))
    pool = web3.eth.contract(factory.functions.market_at(1).call(), abi=_abi("LendingPool"))
    nav = Decimal(pool.functions.price().call()) / 10**8
    loan = int(Decimal(4000) * nav * BORROW_LTV)
    story.ape(
        f"Bob borrows {loan:,} mUSDC: {BORROW_LTV:.0%} of his collateral's value at the "
        f"NAV of {nav} USD/share (the pool lends up to 70 %)",
        "run", "pool", "borrow", "--account", "TEST::3", "--pool", "1", "--amount", str(loan))
    story.ape("Bob tries to borrow 5,000 more: above the max LTV, refused before sending",
              "run", "pool", "borrow", "--account", "TEST::3", "--pool", "1",
              "--amount", "5000", refused=True)
    story.ape(
        "The operator pays a month of rental income; Bob's collateral earns it in the pool",
        "run", "spv", "distribute", "--account", "TEST::1", "--spv", "1", "--amount", "10000")
    story.ape("Bob claims the income of his collateral through the pool",
              "run", "pool", "claim-income", "--account", "TEST::3", "--pool", "1")
    story.ape("The market", "run", "pool", "status", "--pool", "1")
    story.clock_to(story.now() + WEEK, "a week passes. Interest accrues, and the NAV, "
                   "published a week ago, is older than its 2-day heartbeat")
    story.ape("The market: the price is stale", "run", "pool", "status", "--pool", "1")
    story.gpu_oracle(
        "node-1 is asked for the NAV alone: its H100 index input is a week old, so the "
        "node withholds the NAV rather than publish one priced from a stale index",
        "round", "--config", str(cluster.config("node-1")), "--feed", NAV_FEED)
    story.ape("Bob tries to take 100 shares of collateral back: refused while the price is "
              "stale (the pool cannot tell whether his loan would stay healthy)",
              "run", "pool", "withdraw-collateral", "--account", "TEST::3", "--pool", "1",
              "--shares", "100", refused=True)
    print(f"\n    STRESS SCENARIO (demo only): the next marketplace snapshots are the last "
          f"shipped day with every price cut day by day, to x {STRESS_FACTOR} after "
          f"{STRESS_STEPS} days (labelled as such in the files and the oracle log); the nodes "
          "compute the index from them with the same methodology. Each day's fall (about "
          f"{(1 - stress_factor(1)) * 100:.1f} %) is within the index feed's "
          f"{INDEX_MAX_MOVE_BPS / 100:g} % move limit: a crash beyond it in one report would "
          "be refused by the hub and halt the perp market until an accepted report")
    for step in range(1, STRESS_STEPS + 1):
        story.clock_to(timeline.after(days[4 + step]),
                       f"day {step} of {STRESS_STEPS} of the stress scenario")
        story.gpu_oracle(
            f"node-1 leads a round: the H100 index falls to x {stress_factor(step)} of the "
            "last shipped day's, and the NAV per share with it",
            "round", "--config", str(cluster.config("node-1")), "--feed", INDEX_FEED,
            "--feed", NAV_FEED)
        story.ape("Erin's keeper passes over the perp market after the round: a position "
                  "below maintenance is liquidated while its equity still covers the loss "
                  "(the margins cover one whole move)",
                  "run", "keeper", "--account", "TEST::6", "--perp", "1")
    story.ape("The market: Bob's loan is now above the liquidation LTV", "run", "pool",
              "status", "--pool", "1")
    story.ape("The KYC provider registers Erin (TEST::6), a US keeper; she gets 60,000 mUSDC",
              "run", "kyc", "register", "--account", "TEST::0", "--investor", erin,
              "--jurisdiction", "US", "--accredited")
    story.ape("... (local mock stablecoin)", "run", "pool", "mint-mock", "--account", "TEST::0",
              "--to", erin, "--amount", "60000")
    story.ape("Carol (TEST::4, resident in North Korea) runs the keeper: she may not hold "
              "the collateral, so she is refused before any transaction, with the message "
              "a wallet shows", "run", "keeper", "--account", "TEST::4", "--pool", "1",
              refused=True)
    story.ape("The perp market after the fall: Dave's long was liquidated on the way down, "
              "the operator's short has gained what the fleet's hours lost", "run", "perp",
              "status", "--market", "1")
    story.ape("Erin's keeper goes through every market: it liquidates Bob's unhealthy loan",
              "run", "keeper", "--account", "TEST::6")
    story.ape("A second pass finds nothing to do", "run", "keeper", "--account", "TEST::6")
    lending_summary(web3, pool, {"Dave (lender)": dave, "Bob (borrower)": bob,
                                 "Erin (keeper)": erin})
    perp_closing(story, cluster, web3, workdir, days)


# The worst fill the perp traders accept, percent away from the fill at today's index:
# an order fills at the next published index, which may move up to the feed's limit.
ORDER_SLIPPAGE = "5"


def perp_opening(story: Story) -> None:
    """The platform opens the H100 GPU-hour perp market; the operator commits an order
    selling a month of its fleet's hours forward, Alice's AI startup one buying hours
    forward, Dave a speculative long. None fills yet: each waits for the next round."""
    story.ape("The platform (TEST::0) mints itself 20,000 mUSDC for the perp market's "
              "insurance fund (local mock)", "run", "pool", "mint-mock", "--account",
              "TEST::0", "--to", test_account(0), "--amount", "20000")
    story.ape(
        f"The platform opens a perpetual market on the {INDEX_FEED} index (1 contract = 1 "
        "GPU-hour; up to 10x, 5 % maintenance, skew premium, skew-driven funding; trades "
        "are orders a keeper fills at the next oracle round, 1 mUSDC keeper fee each) and "
        "seeds its insurance fund",
        "run", "perp", "create", "--account", "TEST::0", "--feed", INDEX_FEED,
        "--insurance", "20000")
    story.ape(
        f"The operator (TEST::1) hedges a month of fleet revenue: {GPUS} GPUs x {HOURS} h x "
        "the attested utilisation, an order to sell them forward as a short at 2x",
        "run", "hedge", "--account", "TEST::1", "--market", "1", "--spv", "1",
        "--hours", str(HOURS), "--leverage", "2")
    story.ape("Alice (TEST::2) also runs an AI startup renting H100s: she gets 10,000 mUSDC "
              "(local mock)", "run", "pool", "mint-mock", "--account", "TEST::0",
              "--to", test_account(2), "--amount", "10000")
    story.ape(f"... and commits an order to buy 5,000 GPU-hours forward (long at 2x) to cap "
              f"her compute bill, accepting a fill up to {ORDER_SLIPPAGE} % above today's",
              "run", "perp", "commit", "--account", "TEST::2", "--market", "1",
              "--long", "5000", "--margin", "5000", "--slippage", ORDER_SLIPPAGE)
    story.ape("Dave (TEST::5), a speculator, commits a long of 12,500 GPU-hours with 4,200 "
              "mUSDC (about 4.8x)", "run", "perp", "commit", "--account", "TEST::5",
              "--market", "1", "--long", "12500", "--margin", "4200", "--slippage",
              ORDER_SLIPPAGE)
    story.ape("The perp market: three orders wait for an oracle round observed after their "
              "commit (the price they fill at is not known to anyone yet)", "run", "perp",
              "status", "--market", "1")


def perp_fills(story: Story) -> None:
    """A keeper fills the three orders at the round just published."""
    story.ape("Erin (TEST::6) runs a keeper on the perp market: it executes the three orders "
              "at that round's index; their keeper fees are credited to her margin there",
              "run", "keeper", "--account", "TEST::6", "--perp", "1")
    story.ape("Dave tries to commit 40,000 more: beyond the 10x leverage cap, refused before "
              "sending", "run", "perp", "commit", "--account", "TEST::5", "--market", "1",
              "--long", "40000", refused=True)
    story.ape("The perp market", "run", "perp", "status", "--market", "1")


def perp_closing(story: Story, cluster: OracleCluster, web3: Web3, workdir: Path,
                 days: Sequence[int]) -> None:
    """The operator and Alice close by orders, filled at the next day's index; the
    hedge's result against the unhedged revenue."""
    story.ape("The operator commits an order closing its hedge", "run", "perp", "commit",
              "--account", "TEST::1", "--market", "1", "--close", "--slippage", ORDER_SLIPPAGE)
    story.ape("Alice commits one closing hers", "run", "perp", "commit", "--account", "TEST::2",
              "--market", "1", "--close", "--slippage", ORDER_SLIPPAGE)
    story.clock_to(timeline.after(days[5 + STRESS_STEPS]),
                   "the next day: the stress scenario's prices hold")
    story.gpu_oracle(
        "node-2 leads a round: the day's index (unchanged, published on the feed's "
        "heartbeat), the first round after the two closing orders",
        "round", "--config", str(cluster.config("node-2")), "--feed", INDEX_FEED)
    story.ape("Erin's keeper executes both at that round's index",
              "run", "keeper", "--account", "TEST::6", "--perp", "1")
    story.ape("Erin withdraws the keeper fees the five executions credited to her margin in "
              "the market (executions move no tokens)", "run", "perp", "withdraw",
              "--account", "TEST::6", "--market", "1", "--all")
    story.ape("The operator withdraws its margin", "run", "perp", "withdraw", "--account",
              "TEST::1", "--market", "1", "--all")
    story.ape("Alice withdraws hers", "run", "perp", "withdraw", "--account", "TEST::2",
              "--market", "1", "--all")
    story.ape("The perp market at the end", "run", "perp", "status", "--market", "1")
    hedge_summary(web3, workdir, test_account(1))


def hedge_summary(web3: Web3, workdir: Path, operator: str) -> None:
    """The operator's month of revenue with and without the hedge, from the market's
    events (its fills, fees and margin flows) and the index it traded against."""
    deployed = json.loads(next(workdir.glob("*.json")).read_text())
    factory = web3.eth.contract(deployed["perp_market_factory"], abi=_abi("PerpMarketFactory"))
    market = web3.eth.contract(factory.functions.market_at(1).call(), abi=_abi("PerpMarket"))
    stable = web3.eth.contract(market.functions.asset().call(), abi=_abi("MockStablecoin"))
    usd = Decimal(10) ** stable.functions.decimals().call()
    wad = Decimal(10) ** 18
    trades = [e["args"] for e in market.events.PositionModified().get_logs(from_block=0)
              if e["args"]["account"] == operator]
    deposited = sum(e["args"]["amount"] for e in market.events.MarginDeposited().get_logs(
        from_block=0) if e["args"]["account"] == operator)
    withdrawn = sum(e["args"]["amount"] for e in market.events.MarginWithdrawn().get_logs(
        from_block=0) if e["args"]["account"] == operator)
    opened, closed = trades[0], trades[-1]
    hours = Decimal(-opened["size_delta"]) / wad
    index_in = Decimal(opened["index_price"]) / wad
    index_out = Decimal(closed["index_price"]) / wad
    fees = sum(Decimal(t["fee"]) for t in trades) / usd
    pnl = Decimal(withdrawn - deposited) / usd
    print("\n" + "=" * 78)
    print(f"The operator's hedge: {hours:,.2f} GPU-hours of fleet time sold forward")
    print("=" * 78)
    print(f"{'':<44}{'unhedged':>16}{'hedged':>16}")
    at_entry = hours * index_in
    at_exit = hours * index_out
    print(f"{'revenue at the index when hedged':<44}{at_entry:>16,.2f}{at_entry:>16,.2f}")
    print(f"{'revenue at the index now':<44}{at_exit:>16,.2f}{at_exit:>16,.2f}")
    print(f"{'hedge result (PnL, funding, premium, fees)':<44}{'':>16}{pnl:>16,.2f}")
    print(f"{'revenue the operator ends with':<44}{at_exit:>16,.2f}{at_exit + pnl:>16,.2f}")
    print("-" * 78)
    print(f"index at the hedge      : {index_in:.4f} USD/GPU-hour "
          f"(filled at {Decimal(opened['fill_price']) / wad:.4f})")
    print(f"index at the close      : {index_out:.4f} USD/GPU-hour "
          f"(filled at {Decimal(closed['fill_price']) / wad:.4f})")
    print(f"trading fees paid       : {fees:,.2f} mUSDC")
    change = (index_out / index_in - 1) * 100
    kept = (at_exit + pnl) / at_entry * 100
    print(f"the index moved {change:+.1f} %; hedged, the operator kept {kept:.1f} % of the "
          "revenue it locked in")


def subscription_story(story: Story, cluster: OracleCluster, web3: Web3, workdir: Path,
                       days: Sequence[int]) -> None:
    """Primary issuance and redemption through the SPV's ERC-7540 subscription vault:
    Dave onboards and subscribes; Carol, in North Korea, is refused; the operator cannot
    fulfil before the oracle publishes a NAV after the request, nor beyond the fleet's
    backing, so it registers the H100 the money pays for; the quorum publishes the NAV
    of the larger fleet, the operator fulfils, Dave claims his shares. Erin redeems part
    of the shares she seized as a keeper: refused during the notice period, fulfilled at
    the next day's NAV from the stablecoin the operator funded, claimed."""
    dave, erin = test_account(5), test_account(6)
    vaults = ("run", "spv", "subscriptions")
    fulfil = (*vaults, "fulfil", "--account", "TEST::1", "--spv", "1")
    story.ape(
        "The operator (TEST::1) opens the SPV's ERC-7540 subscription vault: investors "
        "subscribe mUSDC and redeem shares by request; the operator fulfils each at the next "
        f"NAV the oracle publishes after it ({NAV_FEED}: forward pricing, nobody trades on a "
        "NAV already known), redemptions after a 1-day notice, less a 0.5 % fee; the vault "
        "gets the token's OPERATOR_ROLE to issue and burn shares",
        *vaults, "open", "--account", "TEST::1", "--spv", "1", "--notice-days", "1",
        "--fee", "0.5")
    story.ape("The KYC provider (TEST::0) registers the vault as an eligible holder and a "
              "custodian (it holds shares for its investors)",
              *vaults, "register", "--account", "TEST::0", "--spv", "1")
    story.ape("Dave (TEST::5), the lender, wants GPU shares: the KYC provider registers him, "
              "an accredited US resident", "run", "kyc", "register", "--account", "TEST::0",
              "--investor", dave, "--jurisdiction", "US", "--accredited")
    story.ape("Dave subscribes 15,000 mUSDC: escrowed in the vault, a binding order priced at "
              "the next NAV", "run", "invest", "request", "--account", "TEST::5", "--spv", "1",
              "--amount", "15000")
    story.ape("Carol (TEST::4, resident in North Korea) tries to subscribe: refused before "
              "anything is sent, with the message her wallet shows", "run", "invest", "request",
              "--account", "TEST::4", "--spv", "1", "--amount", "1000", refused=True)
    story.ape("The operator's view of the vault: Dave's request cannot be fulfilled yet",
              *vaults, "list", "--spv", "1")
    story.ape("The operator tries to fulfil it anyway: refused, nothing sent. No NAV was "
              "published since the request, and the 8 GPUs back 8,000 shares, all issued: "
              "new shares need new GPUs", *fulfil, "--deposit", dave, refused=True)
    expansion = workdir / "fleet-expansion.csv"
    bought = timeline.utc(story.now() - DAY)[:10]
    expansion.write_text(
        FLEET_CSV.read_text().splitlines()[0] + "\n"
        f"1654923041185,H100-SXM5-80GB,840,US-TX-DFW-01,27500.00,{bought}\n")
    story.ape("The operator registers the H100 the subscription pays for (bought yesterday)",
              "run", "spv", "add-gpus", "--account", "TEST::1", "--spv", "1",
              "--csv", str(expansion))
    story.clock_to(timeline.after(days[6 + STRESS_STEPS]),
                   "the next marketplace snapshot's day")
    story.gpu_oracle(
        "node-1 leads a round: the day's index (on its heartbeat) and the NAV per share of "
        "the fleet of 9 GPUs, the first NAV observed after Dave's request",
        "round", "--config", str(cluster.config("node-1")), "--feed", INDEX_FEED,
        "--feed", NAV_FEED)
    story.ape("The operator's view: Dave's request can be fulfilled now", *vaults, "list",
              "--spv", "1")
    story.ape("The operator fulfils it at that NAV: the shares are issued to the vault within "
              "the new backing, then the 15,000 mUSDC go to the SPV's treasury (the operator)",
              *fulfil, "--deposit", dave)
    story.ape("Dave claims his shares (a transfer from the vault, decided like any other)",
              "run", "invest", "claim", "--account", "TEST::5", "--spv", "1")
    story.ape("Erin (TEST::6), who seized shares as a keeper, redeems 1,000 of them: escrowed "
              "in the vault, still earning income for her until burnt", "run", "invest",
              "redeem", "--account", "TEST::6", "--spv", "1", "--shares", "1000")
    story.ape("The operator funds redemptions with 20,000 mUSDC", *vaults, "fund",
              "--account", "TEST::1", "--spv", "1", "--amount", "20000")
    story.ape("The operator tries to fulfil Erin's redemption at once: refused during the "
              "notice period", *fulfil, "--redeem", erin, refused=True)
    deployed = json.loads(next(workdir.glob("*.json")).read_text())
    factory = web3.eth.contract(deployed["subscription_vault_factory"],
                                abi=_abi("SubscriptionVaultFactory"))
    vault = web3.eth.contract(factory.functions.vault_at(1).call(), abi=_abi("SubscriptionVault"))
    requested = vault.functions.request(erin).call()[5]
    story.clock_to(max(timeline.after(days[7 + STRESS_STEPS]), requested + DAY),
                   "the next snapshot's day: Erin's one-day notice is over")
    story.gpu_oracle(
        "node-2 leads a round: the index and the NAV per share, now of the larger supply",
        "round", "--config", str(cluster.config("node-2")), "--feed", INDEX_FEED,
        "--feed", NAV_FEED)
    story.ape("The operator fulfils the redemption at that NAV: the 1,000 shares are burnt and "
              "their value less the fee is set aside for Erin from the funds",
              *fulfil, "--redeem", erin)
    story.ape("Erin claims the proceeds", "run", "invest", "claim", "--account", "TEST::6",
              "--spv", "1")
    story.ape("The operator takes the unallocated redemption funds back to the treasury",
              *vaults, "defund", "--account", "TEST::1", "--spv", "1", "--all")
    story.ape("The vault at the end", *vaults, "list", "--spv", "1", "--all")


def lending_summary(web3: Web3, pool: Any, people: dict[str, str]) -> None:
    """Everyone's balances after the liquidation, read from the chain."""
    token = web3.eth.contract(pool.functions.collateral_token().call(), abi=_abi("GPUShareToken"))
    stable = web3.eth.contract(pool.functions.asset().call(), abi=_abi("MockStablecoin"))
    usd = Decimal(10) ** stable.functions.decimals().call()
    share = Decimal(10) ** 18
    supplied, reserves, debt, idle = pool.functions.market().call()
    print("\n" + "=" * 78)
    print("Lending market LSH1 / mUSDC after the liquidation")
    print("=" * 78)
    print(f"{'who':<16}{'mUSDC':>14}{'vault claim':>14}{'shares':>10}{'collateral':>12}"
          f"{'debt':>12}")
    for label, address in people.items():
        collateral, owed, _scaled = pool.functions.position(address).call()
        claim = pool.functions.convertToAssets(pool.functions.balanceOf(address).call()).call()
        print(f"{label:<16}{Decimal(stable.functions.balanceOf(address).call()) / usd:>14,.2f}"
              f"{Decimal(claim) / usd:>14,.2f}"
              f"{Decimal(token.functions.balanceOf(address).call()) / share:>10,.2f}"
              f"{Decimal(collateral) / share:>12,.2f}{Decimal(owed) / usd:>12,.2f}")
    print("-" * 78)
    print(f"lenders' assets         : {Decimal(supplied) / usd:,.2f} mUSDC (interest included)")
    print(f"reserves (treasury)     : {Decimal(reserves) / usd:,.2f} mUSDC")
    print(f"outstanding debt        : {Decimal(debt) / usd:,.2f} mUSDC")
    print(f"idle liquidity          : {Decimal(idle) / usd:,.2f} mUSDC")
    in_pool = Decimal(pool.functions.total_collateral().call()) / share
    print(f"collateral in the pool  : {in_pool:,.2f} shares")


def main() -> None:
    """Run the whole story once."""
    income = GPUS * HOURS * UTILISATION * PRICE_PER_GPU_HOUR
    operator, alice, bob, carol = (test_account(i) for i in (1, 2, 3, 4))
    # Investors who never sign in the story (dev accounts no other part of it uses).
    dmytro, oksana = test_account(12), test_account(13)
    docs = PROJECT_ROOT / "examples" / "spv-legal-documents.txt"
    workdir = Path(tempfile.mkdtemp(prefix="gpu-shares-demo-"))
    try:
        with AnvilNode(genesis=timeline.genesis()) as node:
            print(f"Local chain: anvil on {node.url} (chain 31337), state discarded at the end;"
                  f" its clock starts at {timeline.utc(timeline.genesis())}, the day of the "
                  "first shipped marketplace snapshot")
            story = Story(node, workdir)
            story.ape("Compile the contracts", "compile")
            story.ape(
                "The platform (TEST::0) deploys the compliance registry, the share-token "
                "blueprint, the SPV factory and a mock stablecoin, and makes TEST::1 an SPV "
                "operator; TEST::0 is also the compliance admin and KYC provider",
                "run", "deploy", "--account", "TEST::0", "--operator", operator,
            )
            story.ape(
                "The compliance admin loads the jurisdiction table from jurisdictions/rules/",
                "run", "jurisdictions", "apply", "--account", "TEST::0",
            )
            story.ape(
                "Applying again changes nothing (the sync is idempotent)",
                "run", "jurisdictions", "apply", "--account", "TEST::0",
            )
            story.ape(
                "The operator registers its SPV and deploys the SPV's share token",
                "run", "spv", "create", "--account", "TEST::1",
                "--name", "Lone Star GPU Fleet I LLC", "--jurisdiction", "840",
                "--lei", SPV_LEI, "--documents", str(docs),
                "--token-name", "Lone Star H100 Shares", "--symbol", "LSH1",
                "--shares-per-gpu", "1000",
            )
            story.ape(
                "US title is 'unclear' in the rules data: the operator records the SHA-256 of "
                "its legal opinion as an override (in its own overrides file, and on-chain)",
                "run", "jurisdictions", "apply", "--account", "TEST::1",
                "--overrides", str(TITLE_OVERRIDE.relative_to(PROJECT_ROOT)),
            )
            story.ape(
                f"The operator registers the fleet from {FLEET_CSV.relative_to(PROJECT_ROOT)}",
                "run", "spv", "add-gpus", "--account", "TEST::1", "--spv", "1",
                "--csv", str(FLEET_CSV),
            )
            story.ape(
                "The operator tries to add a GPU located in Germany: refused, with the "
                "citations (sent anyway with --skip-checks so the contract's refusal shows)",
                "run", "spv", "add-gpus", "--account", "TEST::1", "--spv", "1",
                "--csv", str(FLEET_DE_CSV), "--skip-checks", refused=True,
            )
            story.ape(
                "The KYC provider registers Alice (TEST::2), an accredited US resident",
                "run", "kyc", "register", "--account", "TEST::0", "--investor", alice,
                "--jurisdiction", "US", "--accredited",
            )
            attestation = workdir / "bob-eligibility.json"
            story.ape(
                "The KYC provider signs an EIP-712 eligibility attestation for Bob (TEST::3)",
                "run", "kyc", "attest", "--account", "TEST::0", "--investor", bob,
                "--jurisdiction", "US", "--accredited", "--out", str(attestation),
            )
            story.ape(
                "Bob onboards himself from his own wallet by submitting the attestation",
                "run", "kyc", "submit", "--account", "TEST::3", "--file", str(attestation),
            )
            story.ape(
                "The KYC provider registers Carol (TEST::4), resident in North Korea",
                "run", "kyc", "register", "--account", "TEST::0", "--investor", carol,
                "--jurisdiction", "KP",
            )
            story.ape(
                "Ukraine is listed (accredited investors) with its embargoed regions blocked: "
                "the KYC provider registers Dmytro, an accredited investor resident in Kyiv "
                "(ISO 3166-2 UA-30)",
                "run", "kyc", "register", "--account", "TEST::0", "--investor", dmytro,
                "--jurisdiction", "UA-30", "--accredited",
            )
            story.ape(
                "...and Oksana, an accredited investor resident in Crimea (UA-43), which the "
                "US and the EU embargo",
                "run", "kyc", "register", "--account", "TEST::0", "--investor", oksana,
                "--jurisdiction", "UA-43", "--accredited",
            )
            story.ape(
                "Alice (TEST::2) buys 3,000 shares",
                "run", "spv", "mint", "--account", "TEST::1", "--spv", "1",
                "--to", alice, "--shares", "3000",
            )
            story.ape(
                "Bob (TEST::3) buys 5,000 shares",
                "run", "spv", "mint", "--account", "TEST::1", "--spv", "1",
                "--to", bob, "--shares", "5000",
            )
            story.ape(
                "Alice sells 500 shares to Bob (both eligible): allowed",
                "run", "spv", "transfer", "--account", "TEST::2", "--spv", "1",
                "--to", bob, "--shares", "500",
            )
            story.ape(
                "Alice tries to sell 100 shares to Carol: refused with the message a wallet "
                "shows (sent anyway with --skip-checks so the contract's refusal shows)",
                "run", "spv", "transfer", "--account", "TEST::2", "--spv", "1",
                "--to", carol, "--shares", "100", "--skip-checks", refused=True,
            )
            story.ape(
                "Alice sells 100 shares to Dmytro in Kyiv: allowed (Ukraine's own rule applies "
                "there: accredited investors)",
                "run", "spv", "transfer", "--account", "TEST::2", "--spv", "1",
                "--to", dmytro, "--shares", "100",
            )
            story.ape(
                "Alice tries to sell 100 shares to Oksana in Crimea: refused, citing the "
                "embargo (sent anyway with --skip-checks so the contract's refusal shows)",
                "run", "spv", "transfer", "--account", "TEST::2", "--spv", "1",
                "--to", oksana, "--shares", "100", "--skip-checks", refused=True,
            )
            story.ape(
                f"A month of rental income: {GPUS} GPUs x {HOURS} h x {UTILISATION:.0%} "
                f"utilisation x ${PRICE_PER_GPU_HOUR}/GPU-hour = ${income:,.2f}",
                "run", "spv", "distribute", "--account", "TEST::1", "--spv", "1",
                "--amount", f"{income:.2f}",
            )
            story.ape("Alice claims her share", "run", "spv", "claim", "--account", "TEST::2",
                      "--spv", "1")
            story.ape("Bob claims his share", "run", "spv", "claim", "--account", "TEST::3",
                      "--spv", "1")
            story.ape("The SPV's state on-chain", "run", "spv", "status", "--spv", "1")
            oracle_story(story, node, workdir)
            summary(node, workdir, {"Alice (TEST::2)": alice, "Bob (TEST::3)": bob,
                                    "Carol (TEST::4)": carol, "Dmytro (Kyiv)": dmytro,
                                    "Oksana (Crimea)": oksana, "Dave (TEST::5)": test_account(5),
                                    "Erin (TEST::6)": test_account(6),
                                    "Operator (TEST::1)": operator})
        print("\nanvil stopped. Run `make demo` again for a fresh chain.")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    os.chdir(PROJECT_ROOT)
    main()
