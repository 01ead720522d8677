"""`make demo`: the SPV story on a real local chain, told through the operator scripts.

Starts anvil (from node_modules) on a free port on 127.0.0.1, then runs the same `ape run`
commands the platform, an SPV operator, a KYC provider and investors would type, prints
what each did (including the refusals the jurisdiction rules impose), prints a summary
read back from the chain, and stops anvil. Each run uses a fresh node and its own
deployments folder, so running it twice in a row works.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from eth_account import Account
from web3 import Web3

from gpushares.devnode import PROJECT_ROOT, AnvilNode, dev_key
from jurisdictions.rules import RULES_DIR, load_rules

NETWORK = "ethereum:local:foundry"
FLEET_CSV = PROJECT_ROOT / "examples" / "fleet-h100.csv"
FLEET_DE_CSV = PROJECT_ROOT / "examples" / "fleet-de.csv"
LEGAL_OPINION = PROJECT_ROOT / "examples" / "legal-opinion-us-demo.txt"
SPV_LEI = "5493001KJTIIGC8Y1R12"
LISTINGS = PROJECT_ROOT / "oracle" / "data" / "listings" / "h100-sxm-us"
INDEX_FEED = "H100-SXM-80GB/USD/GPUh"

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
    """Runs the scripts against one node and prints what happened."""

    def __init__(self, node: AnvilNode, deployments_dir: Path) -> None:
        self.node = node
        self.env = node.env()
        self.env["GPU_SHARES_DEPLOYMENTS_DIR"] = str(deployments_dir)
        # ape-vyper's settings model warns at import; it is not the user's concern here.
        self.env["PYTHONWARNINGS"] = "ignore"
        self.step = 0

    def ape(self, title: str, *args: str, refused: bool = False) -> str:
        """Run `ape ARGS` against the node, print its own lines, fail loudly on error
        (or, with `refused=True`, when the command was NOT refused)."""
        extra = ["--network", NETWORK] if args[0] == "run" else []
        return self._run(title, "ape", list(args), extra, refused=refused)

    def gpu_oracle(self, title: str, *args: str) -> str:
        """Run the oracle node's `gpu-oracle ARGS` (secrets in files, not in argv)."""
        return self._run(title, "gpu-oracle", list(args), [], refused=False)

    def _run(self, title: str, program: str, args: list[str], extra: list[str], *,
             refused: bool) -> str:
        self.step += 1
        print(f"\n[{self.step}] {title}")
        cmd = [str(Path(sys.executable).with_name(program)), *args, *extra]
        print(f"    $ {program} " + " ".join(args))
        started = time.monotonic()
        done = subprocess.run(  # noqa: S603 - fixed argv
            cmd, cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True, check=False
        )
        lines = []
        in_trace = False  # ape prints a call trace for a reverted transaction: skip it
        for line in (done.stdout + done.stderr).splitlines():
            if line.startswith("Call trace for"):
                in_trace = True
            elif line.startswith("Error:"):
                in_trace = False
            if in_trace or not line.strip() or line.startswith(("INFO:", "SUCCESS:", "WARNING:")):
                continue
            lines.append(line)
        for line in lines:
            print(f"    {line}")
        if refused and done.returncode == 0:
            raise SystemExit(f"demo step {self.step} should have been refused: {title}")
        if not refused and done.returncode != 0:
            raise SystemExit(f"demo step {self.step} failed (exit {done.returncode}): {title}")
        print(f"    ({time.monotonic() - started:.1f}s)")
        return done.stdout


def _abi(name: str) -> list[dict[str, object]]:
    manifest = json.loads((PROJECT_ROOT / ".build" / "__local__.json").read_text())
    return manifest["contractTypes"][name]["abi"]


def rules_with_demo_override(workdir: Path) -> Path:
    """A copy of the shipped rules where the demo SPV records its US title override (the
    shipped data stays untouched: the demo SPV is fictional)."""
    rules = workdir / "rules"
    shutil.copytree(RULES_DIR, rules)
    digest = hashlib.sha256(LEGAL_OPINION.read_bytes()).hexdigest()
    with (rules / "US.toml").open("a", encoding="utf-8") as handle:
        handle.write(
            "\n[[title_overrides]]\n"
            f'spv_lei = "{SPV_LEI}"\n'
            f'legal_opinion_sha256 = "0x{digest}"\n'
            f'opinion_reference = "{LEGAL_OPINION.name} (demo placeholder, not an opinion)"\n'
            'recorded_by = "Lone Star GPU Fleet I LLC (fictional demo SPV)"\n'
            "as_of = 2026-11-21\n"
        )
    return rules


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
    print(f"{'holder':<16}{'residence':<22}{'shares':>10}{'paid':>12}{'owed':>10}")
    owed_total = 0
    for label, address in investors.items():
        balance = token.functions.balanceOf(address).call()
        owed = token.functions.claimable(address).call()
        owed_total += owed
        paid = stable.functions.balanceOf(address).call()
        jurisdiction, accredited, _expiry, frozen, registered = (
            registry.functions.investor(address).call()
        )
        place = rules[jurisdiction].alpha2 if jurisdiction in rules else str(jurisdiction)
        residence = (
            f"{place}{' accredited' if accredited else ''}{' FROZEN' if frozen else ''}"
            if registered else "no KYC record"
        )
        print(
            f"{label:<16}{residence:<22}{Decimal(balance) / share:>10,.0f}"
            f"{Decimal(paid) / usd:>12,.2f}{Decimal(owed) / usd:>10,.2f}"
        )
    dust = distributed - claimed - owed_total
    print("-" * 78)
    print(f"GPUs backing the shares : {token.functions.active_gpus().call()} active")
    print(f"share supply            : {Decimal(supply) / share:,.0f} of "
          f"{Decimal(token.functions.backing().call()[0]) / share:,.0f} the fleet backs")
    print(f"income distributed      : {Decimal(distributed) / usd:,.2f} mUSDC")
    print(f"income claimed          : {Decimal(claimed) / usd:,.2f} mUSDC")
    print(f"rounding dust kept      : {dust} base unit(s) (never more than one per holder)")
    locations = registry.functions.asset_locations(token_address).call()
    recognised = registry.functions.asset_title_recognised(token_address).call()
    title = "recognised (US: SPV's legal-opinion override)" if recognised else "NOT recognised"
    print(f"GPU locations (ISO)     : {', '.join(map(str, locations))}; tokenized title {title}")
    listed = registry.functions.listed_jurisdictions().call()
    print(f"jurisdiction table      : {len(listed)} jurisdictions from jurisdictions/rules/")


def oracle_story(story: Story, node: AnvilNode, workdir: Path) -> None:
    """The attested oracle: a 3-of-5 signer set signs index and utilisation reports from
    raw inputs, a publisher submits them, an auditor re-verifies log and chain."""
    signer_keys = [dev_key(20 + i) for i in range(5)]
    signers = [Account.from_key(k).address for k in signer_keys]
    keys_file = workdir / "signer-keys.txt"  # 3 of the 5 keys: enough for the threshold
    keys_file.write_text("".join("0x" + k.hex() + "\n" for k in signer_keys[:3]))
    publisher_key = workdir / "publisher-key.txt"  # TEST::9 pays the gas; it signs nothing
    publisher_key.write_text("0x" + dev_key(9).hex() + "\n")
    log = workdir / "attestations.sqlite"
    deployed = json.loads(next(workdir.glob("*.json")).read_text())
    hub, rpc = deployed["oracle_hub"], node.url
    story.ape(
        "The hub admin (TEST::0) installs a 3-of-5 signer set (config version 1)",
        "run", "oracle", "set-signers", "--account", "TEST::0",
        *[arg for s in signers for arg in ("--signer", s)], "--threshold", "3",
    )
    story.ape(
        "The hub admin adds the H100 SXM GPU-hour index feed and its AggregatorV3 adapter",
        "run", "oracle", "add-feed", "--account", "TEST::0", "--name", INDEX_FEED,
        "--description", "H100 SXM 80GB / USD per GPU-hour", "--min", "0.10", "--max", "50",
        "--max-move-bps", "5000", "--heartbeat", str(2 * 86_400),
    )
    days = sorted(LISTINGS.glob("*.csv"))
    for day in days:
        story.gpu_oracle(
            f"The oracle computes the index from the {day.stem} marketplace listings "
            "(real offers, CCIR sample data), 3 signers sign, the report is logged",
            "attest", "--log", str(log), "--rpc", rpc, "--hub", hub, "--keys", str(keys_file),
            "--listings-csv", str(day), "--feed", INDEX_FEED,
        )
    snapshot = workdir / "utilisation-snapshot.json"
    snapshot.write_text(json.dumps(utilisation_snapshot(node, deployed["spv_factory"])))
    story.gpu_oracle(
        "The oracle attests the SPV fleet's utilisation and rental revenue for the last day "
        "from per-GPU samples",
        "attest", "--log", str(log), "--rpc", rpc, "--hub", hub, "--keys", str(keys_file),
        "--snapshot", str(snapshot), "--kind", "utilisation",
    )
    story.gpu_oracle(
        "The publisher (TEST::9) submits every logged report to the hub",
        "publish", "--log", str(log), "--rpc", rpc, "--hub", hub, "--key", str(publisher_key),
    )
    story.gpu_oracle(
        "Publishing again sends nothing: each entry is published once",
        "publish", "--log", str(log), "--rpc", rpc, "--hub", hub, "--key", str(publisher_key),
    )
    story.ape("The hub's feeds, as any Chainlink consumer reads them", "run", "oracle", "status")
    story.gpu_oracle(
        "An auditor re-verifies the log offline and against the chain",
        "verify", "--log", str(log), "--rpc", rpc, "--hub", hub,
    )


def utilisation_snapshot(node: AnvilNode, spv_factory: str) -> dict[str, object]:
    """One day of hourly utilisation samples for the demo fleet (a DCGM-style capture
    stands in until the telemetry readers land), with the day's rental invoices."""
    web3 = Web3(Web3.HTTPProvider(node.url))
    factory = web3.eth.contract(spv_factory, abi=_abi("SPVFactory"))
    token = factory.functions.spvs(1).call()[4]
    end = web3.eth.get_block("latest")["timestamp"] // 3600 * 3600
    start = end - 86_400
    serials = [line.split(",")[0] for line in FLEET_CSV.read_text().splitlines()[1:]]
    gpus, invoices = [], []
    for n, serial in enumerate(serials):
        samples = [[start + 3600 * h, str(70 + (n * 7 + h * 13) % 31)] for h in range(24)]
        gpus.append({"uuid": f"GPU-{serial}", "samples": samples})
        busy = sum(Decimal(p) for _, p in samples) / 100  # GPU-hours rented
        invoices.append(int(busy * PRICE_PER_GPU_HOUR * 10**6))
    return {"methodology": "time-weighted-utilisation", "version": 1, "spvToken": token,
            "periodStart": start, "periodEnd": end, "gpus": gpus, "rentalInvoices": invoices}


def main() -> None:
    """Run the whole story once."""
    income = GPUS * HOURS * UTILISATION * PRICE_PER_GPU_HOUR
    operator, alice, bob, carol = (test_account(i) for i in (1, 2, 3, 4))
    docs = PROJECT_ROOT / "examples" / "spv-legal-documents.txt"
    workdir = Path(tempfile.mkdtemp(prefix="gpu-shares-demo-"))
    try:
        with AnvilNode() as node:
            print(f"Local chain: anvil on {node.url} (chain 31337), state discarded at the end")
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
            rules = rules_with_demo_override(workdir)
            story.ape(
                "US title is 'unclear' in the rules data: the operator records the SHA-256 of "
                "its legal opinion as an override (in the rules data and on-chain)",
                "run", "jurisdictions", "apply", "--account", "TEST::1", "--rules", str(rules),
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
                                    "Carol (TEST::4)": carol})
        print("\nanvil stopped. Run `make demo` again for a fresh chain.")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    os.chdir(PROJECT_ROOT)
    main()
