"""The oracle end to end on a real anvil: the hub deployed and configured by the admin
scripts, reports signed 3-of-5 from real listings and logged in SQLite, published by the
publisher (web3.py), read back through a FeedAdapter as a Chainlink consumer would, and
re-verified by `gpu-oracle verify` against the chain, which fails once a second,
differently-signed log has changed the chain's value, and for a rewritten history."""

from __future__ import annotations

import http.server
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from gpushares import abi, processes, timeline
from gpushares.devnode import PROJECT_ROOT, dev_key, free_port
from oracle import attest, reports
from oracle.log import AttestationLog
from oracle.publisher import Publisher
from tests.integration.conftest import ApeRunner, child_env

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain-oracle")]

FEED = "H100-SXM-80GB/USD/GPUh"
LISTINGS = sorted((PROJECT_ROOT / "oracle/data/listings/h100-sxm-us").glob("*.csv"))
SIGNER_KEYS = [dev_key(20 + i) for i in range(5)]
SIGNERS = [Account.from_key(k).address for k in SIGNER_KEYS]
PUBLISHER_KEY = dev_key(9)
GPU_ORACLE = Path(sys.executable).with_name("gpu-oracle")


@pytest.fixture(scope="module")
def genesis() -> int:
    """The chain starts after the newest listings day this module publishes, and after
    the hour later that log B's re-dated report may carry: its reports are of times the
    chain has seen (the hub refuses the future)."""
    newest = max(reports.listings_snapshot(day, reports.feed_id(FEED))["observedAt"]
                 for day in LISTINGS)
    return timeline.after(newest + 3_600)


def _ok(result) -> None:
    assert result.returncode == 0, str(result)


@pytest.fixture(scope="module")
def hub(ape: ApeRunner, chain, node):
    _ok(ape("deploy", "--account", "TEST::0"))
    _ok(ape.subprocess("oracle", "set-signers", "--account", "TEST::0",
            *[a for s in SIGNERS for a in ("--signer", s)], "--threshold", "3"))
    _ok(ape("oracle", "add-feed", "--account", "TEST::0", "--name", FEED,
            "--description", "H100 SXM 80GB / USD per GPU-hour", "--min", "0.10", "--max", "50",
            "--max-move-bps", "5000", "--heartbeat", "172800"))
    deployed = json.loads(next(ape.deployments_dir.glob("*.json")).read_text())
    return chain.web3.eth.contract(deployed["oracle_hub"], abi=abi.load("OracleHub"))


@pytest.fixture(scope="module")
def domain(hub) -> attest.Domain:
    return attest.Domain(chain_id=hub.w3.eth.chain_id, hub=hub.address)


def _price_log(path: Path, domain: attest.Domain, days: list[Path], keys: list[bytes]) -> Path:
    with AttestationLog(path) as log:
        reports.record_signer_set(log, domain, 1, sorted(SIGNERS, key=lambda a: int(a, 16)), 3)
        for day in days:
            snapshot = reports.listings_snapshot(day, reports.feed_id(FEED))
            reports.attest_snapshot(log, "price", snapshot, domain=domain, config_version=1,
                                    keys=keys)
    return path


def verify_cli(log: Path, node, hub) -> subprocess.CompletedProcess[str]:
    return processes.run([GPU_ORACLE, "verify", "--log", log, "--rpc", node.url, "--hub",
                          hub.address], env=child_env(), timeout=120)


@pytest.fixture(scope="module")
def published(tmp_path_factory, hub, domain):
    """Log A: five days of index reports signed by signers 0..2, all published."""
    path = _price_log(tmp_path_factory.mktemp("log-a") / "a.sqlite", domain, LISTINGS[:5],
                      SIGNER_KEYS[:3])
    with AttestationLog(path) as log:
        outcomes = Publisher(hub.w3, hub.address, log, PUBLISHER_KEY).publish_pending()
    return path, outcomes


def test_publisher_publishes_every_report_once(published, hub):
    path, outcomes = published
    assert [o.status for o in outcomes] == ["published"] * 5
    with AttestationLog(path) as log:
        for o in outcomes:
            pub = log.publication(o.index)
            assert pub is not None and pub.status == "published" and pub.tx_hash == o.tx_hash
            receipt = hub.w3.eth.get_transaction_receipt(o.tx_hash)
            assert receipt["status"] == 1 and receipt["to"] == hub.address
        sender = Account.from_key(PUBLISHER_KEY).address
        nonce = hub.w3.eth.get_transaction_count(sender)
        again = Publisher(hub.w3, hub.address, log, PUBLISHER_KEY).publish_pending()
        assert again == []  # nothing left: a re-run sends nothing
        assert hub.w3.eth.get_transaction_count(sender) == nonce
        # The hub's checkpoint is the last report's commitment.
        last = log.entry(5)
        size, root = hub.functions.checkpoint().call()
        assert (size, root) == (log.checkpoint(5).size, log.checkpoint(5).root)
        assert last.index == 5


def test_feed_adapter_answers_like_chainlink(published, hub):
    path, _ = published
    fid = bytes.fromhex(reports.feed_id(FEED)[2:])
    adapter = hub.w3.eth.contract(hub.functions.feed_adapter(fid).call(),
                                  abi=abi.load("FeedAdapter"))
    assert adapter.functions.decimals().call() == 8
    assert adapter.functions.description().call() == "H100 SXM 80GB / USD per GPU-hour"
    assert adapter.functions.version().call() == 1
    with AttestationLog(path) as log:
        values = [json.loads(e.leaf)["report"] for e in log.entries() if e.kind == "price"]
    round_id, answer, started, updated, answered = adapter.functions.latestRoundData().call()
    assert (round_id, answer, started, updated, answered) == (
        5, values[-1]["value"], values[-1]["observedAt"], values[-1]["observedAt"], 5)
    for n, value in enumerate(values, start=1):
        assert adapter.functions.getRoundData(n).call()[1] == value["value"]
    # The consumer checks the docs ask for: fresh against the heartbeat? answer > 0?
    heartbeat = adapter.functions.heartbeat().call()
    now = hub.w3.eth.get_block("latest")["timestamp"]
    assert answer > 0
    assert now - updated <= heartbeat  # fresh: the chain's clock is at the data's days
    hub.w3.provider.make_request("evm_increaseTime", [heartbeat + 1])
    hub.w3.provider.make_request("evm_mine", [])
    now = hub.w3.eth.get_block("latest")["timestamp"]
    assert now - updated > heartbeat  # and stale once a heartbeat passes with no report


def test_verify_passes_against_the_chain(published, node, hub):
    path, _ = published
    done = verify_cli(path, node, hub)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK 6 entries (5 reports, 1 signer sets), 15 signatures, 5 values recomputed" in (
        done.stdout)
    assert "OK chain: 5 on-chain values equal their entries, 5 checkpoints" in done.stdout


@pytest.fixture
def oracle_node(published) -> Iterator[str]:
    """`gpu-oracle serve` over log A, a real HTTP server on 127.0.0.1."""
    port = free_port()
    process = processes.spawn([GPU_ORACLE, "serve", "--log", published[0], "--port", str(port)],
                              env=child_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):  # noqa: S310
                    break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    processes.stop(process, sig=signal.SIGKILL)
                    _, err = process.communicate(timeout=10)
                    raise RuntimeError(f"gpu-oracle serve did not start: {err!r}") from exc
                time.sleep(0.1)
        yield url
    finally:
        processes.stop(process, grace_s=10.0)
        if process.stderr is not None:
            process.stderr.close()


def test_verify_from_a_node_url(oracle_node, node, hub):
    with urllib.request.urlopen(f"{oracle_node}/v1/checkpoint", timeout=5) as r:  # noqa: S310
        checkpoint = json.loads(r.read())
    assert checkpoint["size"] == 6
    with urllib.request.urlopen(f"{oracle_node}/v1/attestations/3", timeout=5) as r:  # noqa: S310
        entry = json.loads(r.read())
    assert entry["index"] == 3 and entry["tree_size"] == 6 and entry["inclusion_proof"]
    done = processes.run([GPU_ORACLE, "verify", "--node", oracle_node, "--rpc", node.url,
                          "--hub", hub.address], env=child_env(), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK 6 entries" in done.stdout and "OK chain: 5 on-chain values" in done.stdout


def test_publisher_resumes_a_pending_entry_after_a_crash(tmp_path, published, hub, domain):
    """Killed between recording the transaction and broadcasting it: the next run sends
    exactly that transaction, never a second one for the entry."""
    path = tmp_path / "resume.sqlite"
    shutil.copy(published[0], path)
    with AttestationLog(path) as log:
        snapshot = reports.listings_snapshot(LISTINGS[5], reports.feed_id(FEED))
        entry = reports.attest_snapshot(log, "price", snapshot, domain=domain, config_version=1,
                                        keys=SIGNER_KEYS[:3])

        class Crash(Exception):
            pass

        class CrashingPublisher(Publisher):
            def _broadcast(self, raw: bytes) -> None:
                raise Crash("killed before the broadcast")

        with pytest.raises(Crash):
            CrashingPublisher(hub.w3, hub.address, log, PUBLISHER_KEY).publish(entry.index)
        pending = log.publication(entry.index)
        assert pending is not None and pending.status == "pending"
        assert hub.w3.eth.get_transaction_count(pending.sender) == pending.nonce  # not sent
        outcomes = Publisher(hub.w3, hub.address, log, PUBLISHER_KEY).publish_pending()
        assert [(o.index, o.status, o.tx_hash) for o in outcomes] == [
            (entry.index, "published", pending.tx_hash)]
        assert hub.w3.eth.get_transaction_count(pending.sender) == pending.nonce + 1
    # Log A still verifies? No: the chain now holds a value log A does not contain.
    # (Checked in the next test, which is about exactly that.)


class _FlakyProxy(http.server.BaseHTTPRequestHandler):
    """A JSON-RPC proxy on 127.0.0.1 that answers 503 to the first `failures` requests."""

    upstream = ""
    failures = 0
    seen = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen += 1
        if type(self).failures > 0:
            type(self).failures -= 1
            self.send_response(503)
            self.end_headers()
            return
        request = urllib.request.Request(self.upstream, data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as upstream:  # noqa: S310 - loopback
            payload = upstream.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_rpc(node) -> Iterator[type[_FlakyProxy]]:
    handler = type("Flaky", (_FlakyProxy,), {"upstream": node.url, "failures": 0, "seen": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()


def test_publisher_retries_transient_rpc_errors(tmp_path, flaky_rpc, hub, domain):
    # The provider's own retries are off (as `gpu-oracle` sets it up): the publisher's
    # back-off handles every call, including sends, which web3.py never retries.
    web3 = Web3(Web3.HTTPProvider(flaky_rpc.url,  # type: ignore[attr-defined]
                                  exception_retry_configuration=None))
    sleeps: list[float] = []
    flaky_rpc.failures = 2
    publisher_log = AttestationLog(tmp_path / "empty.sqlite")
    Publisher(web3, hub.address, publisher_log, PUBLISHER_KEY, sleep=sleeps.append)
    assert sleeps == [0.5, 1.0]  # two 503s on the chain-id call, backed off, then answered
    assert flaky_rpc.seen >= 3
    flaky_rpc.failures = 10
    with pytest.raises(Exception, match="503"):
        Publisher(web3, hub.address, publisher_log, PUBLISHER_KEY, sleep=sleeps.append)
    publisher_log.close()


def test_verify_fails_after_a_second_differently_signed_log_changes_the_chain(
    tmp_path, published, node, hub, domain
):
    """Log B, signed by another 3 of the 5 signers, publishes a newer value: the chain's
    value no longer comes from log A, and verifying log A against the chain says so."""
    log_b = _price_log(tmp_path / "b.sqlite", domain, LISTINGS[5:], SIGNER_KEYS[2:])
    with AttestationLog(log_b) as log:
        # Log B's report is newer than anything on-chain (day 6), so the hub accepts it;
        # if the resume test already published day 6 from its copy of log A, log B's is
        # a replay and the hub refuses it, so B publishes one more, later value.
        outcomes = Publisher(hub.w3, hub.address, log, PUBLISHER_KEY).publish_pending()
        if outcomes[0].status != "published":
            snapshot = reports.listings_snapshot(LISTINGS[5], reports.feed_id(FEED))
            snapshot["observedAt"] += 3600
            reports.attest_snapshot(log, "price", snapshot, domain=domain, config_version=1,
                                    keys=SIGNER_KEYS[2:])
            outcomes = Publisher(hub.w3, hub.address, log, PUBLISHER_KEY).publish_pending()
        assert outcomes[-1].status == "published"
    done = verify_cli(published[0], node, hub)
    assert done.returncode == 1
    assert "FAIL block" in done.stderr
    assert "matches no entry of this log" in done.stderr
    # Log B alone verifies offline (it is internally consistent) but not against the
    # chain either: the chain also holds log A's values.
    done_b = verify_cli(log_b, node, hub)
    assert done_b.returncode == 1 and "matches no entry of this log" in done_b.stderr


def test_verify_catches_history_rewritten_after_a_checkpoint(tmp_path, published, node, hub,
                                                             domain):
    """The operator (holding the keys) rewrites day 1's report and re-signs everything
    after it: the rewritten log is self-consistent, but the chain's checkpoints pin the
    original history."""
    rewritten = tmp_path / "rewritten.sqlite"
    with AttestationLog(published[0]) as original, AttestationLog(rewritten) as log:
        reports.record_signer_set(log, domain, 1, sorted(SIGNERS, key=lambda a: int(a, 16)), 3)
        for n, entry in enumerate(e for e in original.entries() if e.kind == "price"):
            snapshot = json.loads(entry.inputs)
            if n == 0:
                snapshot["offers"] = snapshot["offers"][:-1]  # quietly drop one offer
            reports.attest_snapshot(log, "price", snapshot, domain=domain, config_version=1,
                                    keys=SIGNER_KEYS[:3])
    offline = processes.run([GPU_ORACLE, "verify", "--log", rewritten], env=child_env(),
                            timeout=120)
    assert offline.returncode == 0, offline.stderr  # on its own it looks fine
    done = verify_cli(rewritten, node, hub)
    assert done.returncode == 1
    assert "FAIL" in done.stderr
