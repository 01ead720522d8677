"""The 2-of-3 quorum on loopback: three `gpu-oracle serve` processes on a real anvil,
each with its own key and log. node-3 reads a doctored copy of the marketplace snapshots
(H100 prices x1.5), so it disagrees with every H100 index report; node-2 is killed in the
middle of a round. A node that is down or disagrees is outvoted; with fewer than k
agreeing nodes nothing is published and /healthz says why; the next leader finishes the
report the failed round's leader voted for (its vote binds it for good) before its own;
the published history verifies against the chain from any node's log."""

from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from gpushares import abi, processes, timeline
from gpushares.devnode import PROJECT_ROOT, dev_key
from gpushares.oracle_cluster import GPU_ORACLE, OracleCluster
from oracle import index, reports
from oracle.log import AttestationLog
from tests.integration.conftest import ApeRunner, child_env

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain-quorum")]

FEED = index.feed_name_for("H100-SXM-80GB")
OFFERS = PROJECT_ROOT / "oracle" / "data" / "offers"
NODE_KEYS = [dev_key(40 + i) for i in range(3)]
PUBLISHER_KEYS = [dev_key(7), dev_key(8), dev_key(9)]


@pytest.fixture(scope="module")
def genesis() -> int:
    """The chain starts the hour after the newest shipped snapshot: the rounds replay
    the snapshots day by day, each observed before the chain's clock."""
    return timeline.after(timeline.snapshot_times()[-1])


def _ok(result) -> None:
    assert result.returncode == 0, str(result)


def _doctored_offers(folder: Path) -> Path:
    """The shipped snapshots with every H100 SXM offer's price x1.5."""
    folder.mkdir()
    for path in sorted(OFFERS.glob("*.json.gz")):
        data = json.loads(gzip.decompress(path.read_bytes()))
        for offer in data["offers_by_model"].get("H100 SXM", []):
            offer["dph_total"] = offer["dph_total"] * 1.5
        (folder / path.name.removesuffix(".gz")).write_text(json.dumps(data))
    return folder


@pytest.fixture(scope="module")
def hub(ape: ApeRunner, chain, node):
    _ok(ape("deploy", "--account", "TEST::0"))
    signers = [Account.from_key(k).address for k in NODE_KEYS]
    _ok(ape("oracle", "set-signers", "--account", "TEST::0",
            *[a for s in signers for a in ("--signer", s)], "--threshold", "2"))
    _ok(ape("oracle", "add-feed", "--account", "TEST::0", "--name", FEED,
            "--description", "H100 SXM 80GB / USD per GPU-hour", "--min", "0.10", "--max", "50",
            "--max-move-bps", "5000", "--heartbeat", "172800"))
    deployed = json.loads(next(ape.deployments_dir.glob("*.json")).read_text())
    return chain.web3.eth.contract(deployed["oracle_hub"], abi=abi.load("OracleHub"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, hub, node):
    workdir = tmp_path_factory.mktemp("quorum")
    doctored = _doctored_offers(workdir / "doctored-offers")
    c = OracleCluster(
        workdir, rpc=node.url, hub=hub.address, keys=NODE_KEYS, publisher_keys=PUBLISHER_KEYS,
        feeds=[{"kind": "index", "model": "H100-SXM-80GB", "deviation_bps": 50,
                "heartbeat_s": 86_400, "agree_bps": 100}],
        offers=[OFFERS, OFFERS, doctored], replay=True,
        rounds={"sign_timeout_s": 4, "sync_interval_s": 1},
        env=child_env(node),
    )
    with c:
        yield c


def _latest(hub) -> tuple[int, int, int]:
    value, observed, round_id = hub.functions.latest_value(
        bytes.fromhex(reports.feed_id(FEED)[2:])).call()
    return int(value), int(observed), int(round_id)


def test_a_disagreeing_node_is_outvoted(cluster, hub):
    done = cluster.round("node-1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{FEED}: published" in done.stdout
    assert "outvoted node-3: refused (disagree)" in done.stdout
    assert "own sources give" in done.stdout  # node-3 says what it computed
    value, observed, round_id = _latest(hub)
    assert round_id == 1 and 0.5 * 10**8 < value < 3 * 10**8
    with AttestationLog(cluster.log("node-1"), create=False) as log:
        entry = json.loads(log.entry(log.size - 1).leaf)
        assert entry["report"]["value"] == value
        expected = sorted((Account.from_key(k).address for k in NODE_KEYS[:2]),
                          key=lambda a: int(a, 16))
        assert entry["signers"] == expected  # node-1 and node-2, not node-3
    health = cluster.health("node-1")
    assert health["status"] == "ok" and health["feeds"][FEED]["status"] == "published"
    node3 = cluster.health("node-3")
    assert node3["log_size"] <= cluster.health("node-1")["log_size"]


def test_killed_mid_round_and_a_disagreeing_node_leave_no_quorum(cluster, hub):
    before = _latest(hub)
    size_before = httpx.get(f"{cluster.url('node-1')}/v1/checkpoint").json()["size"]
    cluster.stop("node-2")
    cluster.start("node-2", extra_env={"GPU_ORACLE_FAULT_SIGN_DELAY_S": "30"})
    result: dict[str, subprocess.CompletedProcess[str]] = {}
    leader = threading.Thread(target=lambda: result.update(done=cluster.round("node-1")))
    leader.start()
    # node-1 votes for the new report, then asks its peers; node-2 holds the request
    # for 30 s (fault injection), so killing it now kills it mid-round.
    deadline = time.monotonic() + 60
    while _leader_votes(cluster) < 2:  # one from the first test's round, one now
        assert time.monotonic() < deadline, "node-1 never started its round"
        time.sleep(0.05)
    time.sleep(0.5)
    cluster.stop("node-2")  # SIGKILL while the leader waits on it
    leader.join(timeout=120)
    done = result["done"]
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{FEED}: no_quorum" in done.stdout
    assert "1 of the 2 signatures needed" in done.stdout
    assert "node-2: down or unreachable" in done.stdout
    assert "node-3: refused (disagree)" in done.stdout
    assert _latest(hub) == before  # nothing published
    assert httpx.get(f"{cluster.url('node-1')}/v1/checkpoint").json()["size"] == size_before
    health = cluster.health("node-1")
    assert health["status"] == "degraded"
    assert any("no_quorum" in r and "node-2" in r and "node-3" in r for r in health["reasons"])


def _leader_votes(cluster: OracleCluster) -> int:
    """How many log positions node-1 has voted for (it votes before asking its peers)."""
    path = cluster.workdir / "node-1" / "state.sqlite"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM votes").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_the_quorum_recovers_and_the_history_verifies(cluster, hub, node):
    cluster.start("node-2")
    before = _latest(hub)
    done = cluster.round("node-2")  # another leader: it syncs first, then leads
    assert done.returncode == 0, done.stdout + done.stderr
    # node-1's vote from the failed round binds it for good: node-2 finds it (GET
    # /v1/votes), would build the same report, and finishes it first; then its own day.
    assert "adopted the report node-1 voted for at log position" in done.stdout, done.stdout
    assert done.stdout.count(f"{FEED}: published") == 2, done.stdout
    after = _latest(hub)
    assert after[2] == before[2] + 2 and after[1] > before[1]  # two more days, on-chain
    # Logs converge: node-1 pulls node-2's entry within a few sync intervals.
    deadline = time.monotonic() + 30
    while (httpx.get(f"{cluster.url('node-1')}/v1/checkpoint").json() !=
           httpx.get(f"{cluster.url('node-2')}/v1/checkpoint").json()):
        assert time.monotonic() < deadline, "node-1 did not sync node-2's entry"
        time.sleep(0.2)
    for name in ("node-1", "node-2"):
        verified = processes.run([GPU_ORACLE, "verify", "--node", cluster.url(name), "--rpc",
                                  node.url, "--hub", hub.address], env=child_env(node),
                                 timeout=120)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "OK chain: 3 on-chain values equal their entries" in verified.stdout
    feeds = httpx.get(f"{cluster.url('node-1')}/v1/feeds").json()
    h100 = next(f for f in feeds if f["name"] == FEED)
    assert h100["latest"]["value"] == after[0] and h100["latest"]["published"] in (True, False)
