"""`make demo` end to end: the story runs on a fresh anvil, prints its summary, and leaves
nothing behind in the project (so a second run starts from the same place: each run
uses its own node and temporary folders)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gpushares.devnode import PROJECT_ROOT

# One xdist worker runs every test that drives anvil and ape (shared .build/).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain")]


def run_demo() -> str:
    done = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "gpushares.demo"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
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


def test_demo_tells_the_story_and_leaves_nothing_behind():
    before = _untracked()
    out = run_demo()
    assert "Lone Star H100 Shares (LSH1)" in out
    assert "8 GPUs registered, 8 active" in out
    assert "Alice (TEST::2)" in out and "3,213.00" in out
    assert "Bob (TEST::3)" in out and "7,068.60" in out
    # The jurisdiction rules at work: sync is idempotent, DE refused with citations,
    # a transfer to a sanctioned-jurisdiction resident refused with the wallet message.
    assert "registry matches the rules data (16 jurisdictions): nothing to change" in out
    assert "record title override for jurisdiction 840" in out
    assert "Germany (DE): title_recognition = not_recognised." in out
    assert "Einführungsgesetz zum Bürgerlichen Gesetzbuche (EGBGB) Art. 43(1)" in out
    assert "refused by the contract: ComplianceRegistry: GPU location does not " in out
    assert "submit eligibility of " in out
    assert ("refused by the contract: Investors resident in the receiver's jurisdiction "
            "may not hold these shares.") in out
    assert "Carol (TEST::4) KP" in out
    assert "income distributed      : 10,281.60 mUSDC" in out
    assert "income claimed          : 10,281.60 mUSDC" in out
    # The oracle as a 2-of-3 quorum of three node processes: telemetry accepted by every
    # node and a replay refused; utilisation, the H100 index from the shipped snapshots
    # and the NAV per share published; a crashed node outvoted; the log verifies.
    assert "config version is now 1" in out
    assert out.count(": accepted") == 9  # three batches, three nodes
    assert out.count("rejected (replayed:") == 3
    assert "utilisation:0x" in out and ": published = " in out
    assert out.count("H100-SXM-80GB/USD/GPUh: published = ") == 4
    assert out.count("NAV/LSH1/USD: published = ") == 4
    assert "H100-SXM-80GB/USD/GPUh: published = 1.55833333 entry 2" in out  # 2026-02-27
    assert "outvoted node-3: down or unreachable" in out
    assert "no_quorum" not in out
    assert "feed NAV/LSH1/USD [enabled]" in out and "(round 4, observed" in out
    assert "OK 10 entries (9 reports, 1 signer sets), 18 signatures, 9 values recomputed" in out
    assert "OK chain: 9 on-chain values equal their entries, 9 checkpoints" in out
    assert "anvil stopped" in out
    # Only the compile cache may appear (ignored by git); no deployments, rules or keys.
    assert _untracked() == before
