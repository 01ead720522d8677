"""`make demo` end to end: the story runs on a fresh anvil, prints its summary, and leaves
nothing behind in the project (so a second run starts from the same place: each run
uses its own node and temporary folders)."""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal

import pytest

from gpushares import processes, reasons
from gpushares.demo import HOLD_DAYS, STRESS_STEPS
from gpushares.demo import test_account as account_address
from gpushares.devnode import PROJECT_ROOT
from jurisdictions.rules import load_rules

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("demo")]


def run_demo() -> str:
    # Through gpushares.processes: a timeout stops the demo, and its anvil and oracle
    # nodes die with it (tests/test_processes.py).
    done = processes.run([sys.executable, "-m", "gpushares.demo"], cwd=PROJECT_ROOT,
                         timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _untracked() -> set[str]:
    done = subprocess.run(  # noqa: S603 - fixed argv
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:  # not a git checkout (an unpacked archive): nothing to compare
        return set()
    return {line[3:] for line in done.stdout.splitlines()}


def test_demo_tells_the_story_and_leaves_nothing_behind(ape_compiled):
    before = _untracked()
    jurisdictions = len(load_rules())
    out = run_demo()
    assert "Lone Star H100 Shares (LSH1)" in out
    # Commands are printed as a shell takes them (copy-paste works).
    assert "--name 'Lone Star GPU Fleet I LLC'" in out
    # The summary accounts for every share: the pool's collateral and the keeper's too.
    # 8,000 issued by the operator, ~781 through the vault after a ninth GPU, 1,000 redeemed.
    assert re.search(r"share supply\s+: 7,7\d\d of 9,000 the fleet backs, all 7,7\d\d held",
                     out), out
    assert re.search(r"lending pool 1\s+US accredited\s+\d", out), out
    # Ages are the chain's: nothing published looks months old.
    ages = [int(a.replace(",", "")) for a in re.findall(r"updated ([\d,]+)s ago", out)]
    assert ages and all(age <= 8 * 86_400 for age in ages), ages
    assert "8 GPUs registered, 8 active" in out
    # Alice (2,400 shares after selling 100 to Dmytro in Kyiv) claimed 3,084.48 of income;
    # her wallet also carries her perp trade (10,000 minted, 5,000 margin, what came back
    # after funding), so only its shape is fixed.
    assert "claim 3,084.48 mUSDC" in out
    assert re.search(r"Alice \(TEST::2\)\s+US accredited\s+2,400\s+\d{1,2},\d{3}\.\d\d\s+3,000\.00",
                     out), out
    # Bob's wallet: his claims, the 68 % loan (its size follows the NAV, which ages with
    # the clock) and the 5,000 of collateral income.
    assert re.search(r"Bob \(TEST::3\)\s+US accredited\s+1,500\s+\d\d,\d{3}\.\d\d", out), out
    # The jurisdiction rules at work: sync is idempotent, DE refused with citations,
    # a transfer to a sanctioned-jurisdiction resident refused with the wallet message.
    assert (f"registry matches the rules data ({jurisdictions} jurisdictions): nothing to "
            "change") in out
    assert "record title override for jurisdiction 840" in out
    assert "Germany (DE): title_recognition = not_recognised." in out
    assert "Einführungsgesetz zum Bürgerlichen Gesetzbuche (EGBGB) Art. 43(1)" in out
    assert "refused by the contract: ComplianceRegistry: GPU location does not " in out
    assert "submit eligibility of " in out
    # ... and the same words when Bob supplies collateral for her through the pool, and
    # for the transfer to Oksana in Crimea.
    assert out.count("refused by the contract: Investors resident in the receiver's "
                     "jurisdiction may not hold these shares.") == 3
    assert "Carol (TEST::4) KP" in out
    # Two distributions (10,281.60, then 10,000 while Bob's shares are collateral); Bob's
    # half of the second is claimed through the pool, Alice's is still owed.
    assert "income distributed      : 20,281.60 mUSDC" in out
    assert "income claimed          : 15,153.08 mUSDC" in out
    # The oracle as a 2-of-3 quorum of three node processes: telemetry accepted by every
    # node and a replay refused; utilisation, the H100 index from the shipped snapshots
    # and the NAV per share published; a crashed node outvoted; the log verifies.
    assert "config version is now 1" in out
    assert out.count(": accepted") == 9  # three batches, three nodes
    assert out.count("rejected (replayed:") == 3
    assert "utilisation:0x" in out and ": published = " in out
    # The index: the five shipped days, the stress scenario's five, the three days it
    # holds; the NAV follows it but on the first of those (the perp traders close then).
    assert out.count("H100-SXM-80GB/USD/GPUh: published = ") == 5 + STRESS_STEPS + HOLD_DAYS
    assert out.count("NAV/LSH1/USD: published = ") == 5 + STRESS_STEPS + HOLD_DAYS - 1
    assert "H100-SXM-80GB/USD/GPUh: published = 1.60138889 entry 2" in out  # 2026-02-27
    assert "outvoted node-3: down or unreachable" in out
    # A stranger's unsigned co-sign request is refused before its body is read; a NAV
    # priced from a week-old index input is withheld, not published.
    assert "HTTP 401 unauthenticated" in out
    assert "NAV/LSH1/USD: withheld (stale input: the H100-SXM-80GB index" in out
    assert "no_quorum" not in out
    assert "feed NAV/LSH1/USD [enabled]" in out and "(round 4, observed" in out
    assert "OK 10 entries (9 reports, 1 signer sets), 18 signatures, 9 values recomputed" in out
    assert "OK chain: 9 on-chain values equal their entries, 9 checkpoints" in out
    # The lending story: supply, a loan at 68 % refused more, collateral income claimed
    # through the pool, a stale price that stops withdrawals (without a reverted call in
    # the output), the index falling, a keeper refused by the transfer rules and one that
    # liquidates without bad debt, then nothing left to do.
    assert "+200,000 vault shares, now worth 200,000 mUSDC" in out
    assert re.search(r"LTV 68\.0\d% \(max 70\.00%, liquidation above 80\.00%\)", out), out
    assert "borrow refused, nothing sent: borrowing 5,000 mUSDC would put the loan at LTV" in out
    assert "received 5,000 mUSDC" in out
    assert "STALE: borrowing, collateral withdrawals and liquidations paused" in out
    assert ("collateral withdrawal refused, nothing sent: LendingPool: collateral price is "
            "stale") in out
    assert "reverted" not in out and "Traceback" not in out
    assert "STRESS SCENARIO (demo only)" in out
    assert re.search(r"LTV 8\d\.\d\d%  LIQUIDATABLE", out), out
    assert ("may not hold LSH1 collateral (ERC-1404 code 9): Investors resident in the "
            "receiver's jurisdiction may not hold these shares.") in out
    # The loan is 68 % of the collateral's value at the NAV the demo read from the chain;
    # the keeper repays it with a week and a day of interest (under 1 % at these rates).
    loan = int(re.search(r"Bob borrows ([\d,]+) mUSDC: 68% of his collateral", out)[1]
               .replace(",", ""))
    liquidated = re.search(r"liquidated 1 loan\(s\) \(market 1: repaid ([\d,]+\.\d+) mUSDC, "
                           r"seized 3,\d{3}\.\d+ LSH1, bad debt 0 mUSDC\)", out)
    assert liquidated, out
    assert loan < float(liquidated[1].replace(",", "")) < loan * 1.01
    assert "no unhealthy loans" in out
    # Perpetual futures on the H100 index, traded by orders: the operator commits a hedge
    # of a month of its fleet's hours (8 GPUs x 720 h x the attested utilisation), a
    # short; Alice's startup and Dave commit longs; none fills until the next published
    # round, where Erin's keeper executes all three at that round's index; Dave is
    # refused more; the index slides 18 % in rounds within the feed's 4 % move limit and
    # the keeper's pass after each liquidates Dave (no bad debt); the operator and Alice
    # close by orders executed at the next round, and the hedge's table.
    assert "a move limit of 4 % per report" in out and "--max-move-bps 400" in out
    assert re.search(r"hedge order committed: sell [\d,.]+ GPU-hours in market 1", out), out
    assert out.count("waiting for an oracle round after the commit") >= 5
    fills = re.findall(r"order (?:buy|sell) [\d,.]+ GPU-hours committed at round (\d+), executed "
                       r"at round (\d+)'s index ([\d.]+) USD/GPU-h", out)
    assert len(fills) == 5, fills  # three opening orders, two closing ones
    assert all(int(executed) == int(committed) + 1 for committed, executed, _ in fills), fills
    assert {(c, e) for c, e, _ in fills} == {("4", "5"), ("10", "11")}, fills
    # Round 5 is the last shipped day's index (published after the commits), round 11
    # the stress scenario's last.
    assert {i for c, _, i in fills if c == "4"} == {"1.601389"}, fills
    assert "executed 3 order(s) (perp market 1: keeper fees 3 mUSDC), cancelled 0" in out
    assert "executed 2 order(s) (perp market 1: keeper fees 2 mUSDC), cancelled 0" in out
    # The executions credited the keeper fees to Erin's margin; she takes them out.
    assert f"{account_address(6)}: received 5 mUSDC" in out
    assert f"order refused, nothing sent: {reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN}" in out
    liquidations = re.findall(r"liquidated 1 position\(s\) \(perp market 1: keeper fees "
                              r"[\d,.]+ mUSDC, bad debt ([\d,.]+) mUSDC\)", out)
    assert liquidations == ["0"], out
    assert "no liquidatable positions" in out and "no orders to execute or cancel" in out
    # Every day of the slide is within the move limit: no report refused, no halt.
    assert "exceeds the feed's limit" not in out and "the hub halted the feed" not in out
    assert re.search(r"the index moved -18\.0 %; hedged, the operator kept \d{2,3}\.\d % of the "
                     r"revenue it locked in", out), out
    assert "Lending market LSH1 / mUSDC after the liquidation" in out
    assert re.search(r"outstanding debt\s+: 0\.00 mUSDC", out), out
    # Primary issuance and redemption through the ERC-7540 subscription vault: Dave
    # onboards and subscribes; Carol (North Korea) is refused before anything is sent;
    # the fulfilment waits for a NAV after the request and for a ninth GPU; the quorum
    # publishes, the operator fulfils, Dave claims; Erin's redemption is refused during
    # the notice period, fulfilled at the next day's NAV and claimed.
    assert ("deposit request refused, nothing sent: Investors resident in the receiver's "
            "jurisdiction may not hold these shares. (ERC-1404 code 9") in out
    assert (f"deposit fulfilment refused, nothing sent: {reasons.VAULT_NAV_NOT_AFTER_REQUEST}"
            in out)
    assert "register new GPUs first (1 more GPU(s) of 1,000 LSH1" in out
    assert "SPV 1: 9 GPUs registered, 9 active; mint cap now 9,000 shares" in out
    assert re.search(r"issued 7\d\d\.\d+ LSH1 claimable by " + account_address(5), out), out
    assert re.search(r"claim 7\d\d\.\d+ LSH1 \(subscribed 15,000 mUSDC\)", out), out
    assert (f"redemption fulfilment refused, nothing sent: {reasons.VAULT_NOTICE_NOT_OVER}"
            in out)
    proceeds = re.search(r"1,000 LSH1 burnt at ([\d.]+) USD per share: ([\d,.]+) mUSDC claimable",
                         out)
    assert proceeds, out
    gross = int(1_000 * Decimal(proceeds[1]) * 10**6)
    assert Decimal(proceeds[2].replace(",", "")) * 10**6 == gross - -(-gross * 50 // 10_000)
    assert re.search(r"Dave \(TEST::5\)\s+US accredited\s+781\s", out), out
    assert re.search(r"ERC-7540 vault\s+US accredited\s+0\s", out), out
    assert "anvil stopped" in out
    # Only the compile cache may appear (ignored by git); no deployments, rules or keys.
    assert _untracked() == before
