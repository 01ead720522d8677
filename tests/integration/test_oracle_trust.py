"""The oracle quorum under attack, on loopback: three real `gpu-oracle serve` processes
(2-of-3) on a real anvil, with an OracleHub, the H100 index feed and the NAV feed of a
real SPV share token. Each test is the regression test of one finding of the review
(issue 19, items 1-8); each failed on the code before the fix.

- 1: an unauthenticated `/v1/sign` is refused (401) before its body is parsed; a quorum
  member's signed report observed later than a node's newest data is refused too.
- 2: a node signs one report per log position, for good (across a restart).
- 3: the NAV carries its index's observation time and is withheld from a stale input.
- 4: requests from nobody cannot spend the nodes' votes: the honest round publishes.
- 5: oversized bodies are refused (413) without the node's memory growing.
- 6: refused requests write no state and no log line; log lines carry no raw text.
- 7: offline verification says plainly what it cannot catch (a made-up signer set).
- 8: node-3 reads the same marketplace plus 30 made-up H100 hosts at 0.05 USD/h, and
  still builds (and co-signs) the honest index.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from web3 import Web3

from bench.run import Bench, run_share_token
from gpushares import processes, timeline
from gpushares.client import suite
from gpushares.devnode import PROJECT_ROOT, dev_key
from gpushares.oracle_cluster import GPU_ORACLE, OracleCluster
from oracle import attest, entries, index, methodology, peerauth, reports
from oracle.log import AttestationLog
from oracle.sources import parse_snapshot
from tests.integration.conftest import child_env

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain-trust")]

FEED = index.feed_name_for("H100-SXM-80GB")
NAV_FEED = "NAV/BH1/USD"
OFFERS = PROJECT_ROOT / "oracle" / "data" / "offers"
DAYS = sorted(OFFERS.glob("*.json.gz"))
NODE_KEYS = [dev_key(40 + i) for i in range(3)]
OUTSIDER_KEY = dev_key(45)  # no signer
MB = 1024 * 1024


# ------------------------------------------------------------------ the world


def _sybil_offers(folder: Path) -> Path:
    """The shipped snapshots plus, each day, 30 made-up H100 SXM hosts offering one GPU
    at 0.05 USD/h (a majority of the contributors)."""
    folder.mkdir()
    for path in DAYS:
        data = json.loads(gzip.decompress(path.read_bytes()))
        offers = data["offers_by_model"].setdefault("H100 SXM", [])
        model = dict(offers[0])
        for i in range(30):
            offers.append({**model, "id": 900_000_000 + i, "host_id": 800_000 + i,
                           "machine_id": 700_000 + i, "num_gpus": 1, "gpu_frac": 1.0,
                           "dph_total": 0.05, "rentable": True, "rented": False})
        (folder / path.name.removesuffix(".gz")).write_text(json.dumps(data))
    return folder


def clock_to(web3: Web3, moment: int) -> None:
    web3.provider.make_request("evm_setNextBlockTimestamp", [moment])  # type: ignore[arg-type]
    web3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def chain_now(web3: Web3) -> int:
    return int(web3.eth.get_block("latest")["timestamp"])


@pytest.fixture(scope="module")
def world(node) -> dict[str, Any]:
    """The hub (2-of-3 of the nodes' keys), the H100 index and NAV feeds, and a share
    token of 8 H100s (the bench's SPV)."""
    web3 = Web3(Web3.HTTPProvider(node.url))
    bench = Bench(web3)
    admin = web3.eth.accounts[0]
    hub = bench.contract("OracleHub", suite.deploy_oracle(bench.chain, admin)[1])
    signers = sorted((Account.from_key(k).address for k in NODE_KEYS), key=lambda a: int(a, 16))
    bench.send(hub.functions.set_signers(signers, 2), admin)
    bench.send(hub.functions.add_feed(reports.feed_id(FEED), "H100", 10**7, 5 * 10**9, 5_000,
                                      172_800), admin)
    bench.send(hub.functions.add_feed(reports.feed_id(NAV_FEED), "NAV", 1, 10**14, 5_000,
                                      172_800), admin)
    token = run_share_token(bench, web3.eth.accounts)["token"]
    return {"web3": web3, "hub": hub, "token": token}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, world, node):
    workdir = tmp_path_factory.mktemp("trust")
    sybil = _sybil_offers(workdir / "sybil-offers")
    c = OracleCluster(
        workdir, rpc=node.url, hub=world["hub"].address, keys=NODE_KEYS,
        publisher_keys=[dev_key(7), dev_key(8), dev_key(9)],
        offers=[OFFERS, OFFERS, sybil], replay=True,
        feeds=[{"kind": "index", "model": "H100-SXM-80GB", "deviation_bps": 50,
                "heartbeat_s": 86_400, "agree_bps": 100},
               {"kind": "nav", "spv_token": world["token"].address,
                "economic_life_years": "4", "model_map": {"H100-SXM5-80GB": "H100-SXM-80GB"},
                "index_at_acquisition": {"H100-SXM-80GB": {"value": "2.00",
                                                           "source": "test"}},
                "deviation_bps": 50, "heartbeat_s": 86_400}],
        rounds={"sign_timeout_s": 5, "sync_interval_s": 1},
        env=child_env(node),
    )
    with c:
        yield c


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def latest(world, name: str) -> tuple[int, int, int]:
    value, observed, round_id = world["hub"].functions.latest_value(
        bytes.fromhex(reports.feed_id(name)[2:])).call()
    return int(value), int(observed), int(round_id)


def checkpoint(cluster, name: str) -> dict[str, Any]:
    return httpx.get(f"{cluster.url(name)}/v1/checkpoint", timeout=10).json()


def state_counts(cluster, name: str) -> tuple[int, int]:
    """(rows in rounds, rows in votes) of a node's state file."""
    path = cluster.workdir / name / "state.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        return (int(db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]),
                int(db.execute("SELECT COUNT(*) FROM votes").fetchone()[0]))


def rss_kib(cluster, name: str) -> int:
    pid = cluster.procs[name].pid
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def index_snapshot(day: Path, **note: str) -> dict[str, Any]:
    """The H100 snapshot a node builds from one shipped day (optionally with a note in
    its source description: another inputsHash, the same report fields)."""
    run = parse_snapshot(day)
    return index.build_snapshot(FEED, run.quotes, run.observed_at,
                                [{**index.describe_source(run), **note}])


def request(cluster, world, leader: str, snapshot: dict[str, Any], *,
            fields: dict[str, Any] | None = None, to: str = "node-1") -> dict[str, Any]:
    """A SignRequest body for `snapshot` at `to`'s current checkpoint."""
    inputs = attest.canonical_json(snapshot)
    computed = methodology.compute("price", inputs)
    cp = checkpoint(cluster, to)
    report = attest.PriceReport(**{**computed.model_dump(), **(fields or {})},
                                inputs_hash=attest.inputs_hash(inputs), log_size=cp["size"],
                                log_root=cp["root"],
                                config_version=world["hub"].functions.config_version().call())
    return {"leader": leader, "kind": "price", "report": report.canonical(),
            "inputs": inputs.decode()}


def post_sign(cluster, world, body: dict[str, Any] | bytes, *, key: bytes | None,
              to: str = "node-1") -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if key is not None:
        headers |= peerauth.sign_headers(
            key, chain_id=world["web3"].eth.chain_id, hub=world["hub"].address, receiver=to,
            method="POST", path="/v1/sign", stamp=chain_now(world["web3"]), body=raw)
    return httpx.post(f"{cluster.url(to)}/v1/sign", content=raw, headers=headers, timeout=60)


# ------------------------------------------------------------------ the tests


def test_first_round_every_node_signs_even_with_sybil_hosts(cluster, world):
    """Item 8: node-3's sources carry 30 made-up H100 hosts at 0.05 (a majority of the
    contributors); weighted by GPUs, its index is the honest one and it signs. Item 3:
    the NAV is observed when its index was."""
    out = _ok(cluster.round("node-1"))
    assert f"{FEED}: published" in out and f"{NAV_FEED}: published" in out, out
    assert "outvoted" not in out, out  # node-2 and node-3 both agreed
    day_one = parse_snapshot(DAYS[0]).observed_at
    value, observed, _ = latest(world, FEED)
    assert observed == day_one and 1.4 * 10**8 < value < 1.8 * 10**8
    nav_value, nav_observed, _ = latest(world, NAV_FEED)
    assert nav_observed == day_one, "the NAV is stamped with its input's observation time"
    assert nav_value > 0


def test_unauthenticated_sign_is_refused_before_parsing_and_writes_nothing(cluster, world):
    """Items 1, 4 and 6: a client with no key sends forged reports (made-up hosts at
    1.0099x, observed now), reports differing only in a note, and a leader name with a
    newline: every one is 401, no node writes a round or a vote or a log line."""
    web3 = world["web3"]
    now = chain_now(web3)
    honest = index_snapshot(DAYS[1])
    forged = json.loads(json.dumps(honest))
    forged["observedAt"] = now
    for q in forged["quotes"]:
        q["observedAt"] = now
        q["pricePerGpuHour"] = str(round(float(q["pricePerGpuHour"]) * 1.0099, 8))
    before = {n: (state_counts(cluster, n), cluster.output(n)) for n in cluster.names}
    bodies = [request(cluster, world, "node-2", forged, to=n) for n in cluster.names]
    bodies += [request(cluster, world, "node-2", index_snapshot(DAYS[1], note=f"n{i}"))
               for i in range(3)]
    bodies.append({**bodies[0], "leader": "node-2\nINFO oracle.node published by node-1"})
    for body in bodies:
        for name in cluster.names:
            resp = post_sign(cluster, world, body, key=None, to=name)
            assert resp.status_code == 401, resp.text
            assert resp.json()["detail"]["code"] == "unauthenticated"
    # signed, but by a key outside the signer set; and a body that is not what was signed
    resp = post_sign(cluster, world, bodies[0], key=OUTSIDER_KEY)
    assert resp.status_code == 401 and resp.json()["detail"]["code"] == "not_a_signer"
    raw = json.dumps(bodies[0]).encode()
    headers = peerauth.sign_headers(OUTSIDER_KEY, chain_id=web3.eth.chain_id,
                                    hub=world["hub"].address, receiver="node-1",
                                    method="POST", path="/v1/sign", stamp=now, body=b"{}")
    resp = httpx.post(f"{cluster.url('node-1')}/v1/sign", content=raw, headers=headers,
                      timeout=30)
    assert resp.status_code == 401, resp.text
    for name in cluster.names:
        assert (state_counts(cluster, name), cluster.output(name)) == before[name], name
        assert cluster.health(name)["status"] == "ok"
    assert latest(world, FEED)[1] == parse_snapshot(DAYS[0]).observed_at  # nothing moved
    # Item 4: the honest round is not starved of votes.
    clock_to(web3, timeline.after(parse_snapshot(DAYS[1]).observed_at))
    out = _ok(cluster.round("node-1", FEED))
    assert f"{FEED}: published" in out, out
    assert latest(world, FEED)[1] == parse_snapshot(DAYS[1]).observed_at


def test_one_vote_per_log_position_for_good(cluster, world):
    """Item 2: node-1 signs report A for position P (asked by node-3's key); after a
    crash and restart it still refuses B, which differs from A only in its inputs' note,
    whatever the time. The next honest round finishes A rather than splitting votes."""
    clock_to(world["web3"], timeline.after(parse_snapshot(DAYS[2]).observed_at))
    a = request(cluster, world, "node-3", index_snapshot(DAYS[2]))
    b = request(cluster, world, "node-3", index_snapshot(DAYS[2], note="another report"))
    assert a["report"]["value"] == b["report"]["value"]
    assert a["report"]["inputsHash"] != b["report"]["inputsHash"]
    signed = post_sign(cluster, world, a, key=NODE_KEYS[2])
    assert signed.status_code == 200, signed.text
    cluster.stop("node-1")
    cluster.start("node-1")
    time.sleep(2)
    refused = post_sign(cluster, world, b, key=NODE_KEYS[2])
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"]["code"] == "already_voted"
    again = post_sign(cluster, world, a, key=NODE_KEYS[2])  # the same report: same answer
    assert again.status_code == 200 and again.json() == signed.json()
    health = cluster.health("node-1")
    assert health["pending_vote"]["position"] == a["report"]["logSize"]
    # node-2 leads: it finds node-1's vote (GET /v1/votes) and finishes A first
    out = _ok(cluster.round("node-2", FEED))
    assert f"adopted the report node-1 voted for at log position {a['report']['logSize']}" \
        in out, out
    with AttestationLog(cluster.log("node-2"), create=False) as log:
        leaf = entries.parse_leaf(log.entry(a["report"]["logSize"]).leaf)
        assert leaf.signed.report.inputs_hash == a["report"]["inputsHash"]


def test_nav_is_withheld_when_its_index_is_stale(cluster, world):
    """Item 3: two days on, with no newer index logged, the NAV's input is older than
    the feeds' 2-day heartbeat: withheld, naming the stale input; nothing moves."""
    before = latest(world, NAV_FEED)
    clock_to(world["web3"], timeline.after(parse_snapshot(DAYS[-1]).observed_at) + 3_600)
    out = _ok(cluster.round("node-1", NAV_FEED))
    assert f"{NAV_FEED}: withheld" in out and "stale input" in out, out
    assert latest(world, NAV_FEED) == before
    # with a fresh index the NAV follows it, stamped with the index's time
    out = _ok(cluster.round("node-1"))
    assert f"{NAV_FEED}: published" in out, out
    assert latest(world, NAV_FEED)[1] == latest(world, FEED)[1]


def test_a_quorum_member_cannot_pass_off_a_report_it_would_not_build(cluster, world):
    """Item 1 from inside: node-3's key (a signer) asks node-1 to sign a self-consistent
    report of its data at 1.0099x, observed now. Within agree_bps, but observed later than
    node-1's newest data (the last shipped day): refused, with what differs."""
    now = chain_now(world["web3"])
    assert now > parse_snapshot(DAYS[-1]).observed_at
    forged = index_snapshot(DAYS[-1])
    forged["observedAt"] = now
    for q in forged["quotes"]:
        q["observedAt"] = now
        q["pricePerGpuHour"] = str(round(float(q["pricePerGpuHour"]) * 1.0099, 8))
    resp = post_sign(cluster, world, request(cluster, world, "node-3", forged), key=NODE_KEYS[2])
    assert resp.status_code == 409, resp.text
    detail = resp.json()["detail"]
    assert detail["code"] == "disagree"
    assert "later than this node's newest data" in detail["message"]
    # the same data with a narrower band: every field is compared, the confidence too
    honest = index_snapshot(DAYS[2])
    narrow = request(cluster, world, "node-3", honest, fields={"confidence": 1})
    resp = post_sign(cluster, world, narrow, key=NODE_KEYS[2])
    assert resp.status_code == 409 and "confidence 1" in resp.json()["detail"]["message"]


def test_bodies_beyond_the_limit_are_refused_and_memory_stays_flat(cluster, world):
    """Item 5: 16 MiB bodies (and 4 at once) are refused with 413 before they are read
    further; the node's memory does not grow; an honest round still publishes."""
    big = b'{"leader":"node-2","kind":"price","report":{},"inputs":"' + b"x" * (16 * MB) + b'"}'
    rss = rss_kib(cluster, "node-2")
    started = time.monotonic()
    for path in ("/v1/sign", "/v1/telemetry"):
        resp = httpx.post(f"{cluster.url('node-2')}{path}", content=big, timeout=60,
                          headers={"content-type": "application/json"})
        assert resp.status_code == 413, resp.text[:200]
        assert resp.json()["detail"]["code"] == "body_too_large"
    # without a Content-Length (chunked), refused once the stream passes the limit
    resp = httpx.post(f"{cluster.url('node-2')}/v1/telemetry", timeout=60,
                      content=iter([big[i:i + MB] for i in range(0, len(big), MB)]))
    assert resp.status_code == 413, resp.text[:200]

    def send(_: int) -> int:
        try:
            return post_sign(cluster, world, big, key=NODE_KEYS[0], to="node-2").status_code
        except httpx.HTTPError:
            return 413  # the node may close the connection while the client still sends
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert set(pool.map(send, range(4))) == {413}
    assert time.monotonic() - started < 30
    assert rss_kib(cluster, "node-2") - rss < 64 * 1024  # KiB: no copy of the bodies kept
    # item 5's input-count limit, before parsing: 30,000 objects in 1 MiB
    crowd = request(cluster, world, "node-3", index_snapshot(DAYS[3]))
    crowd["inputs"] = "[" + ",".join(["{}"] * 30_000) + "]"
    resp = post_sign(cluster, world, crowd, key=NODE_KEYS[2])
    assert resp.status_code == 422 and resp.json()["detail"]["code"] == "too_many_inputs"


def test_log_lines_are_built_from_fields_not_request_text(cluster, world):
    """Item 6: an authenticated request whose feed id holds a newline is refused; the
    node's log line escapes it (no forged line)."""
    body = request(cluster, world, "node-3", index_snapshot(DAYS[3]))
    body["report"]["feedId"] = "0x" + b"X\nINFO oracle.node published".ljust(32, b"\0").hex()
    before = cluster.output("node-1")
    resp = post_sign(cluster, world, body, key=NODE_KEYS[2])
    assert resp.status_code in (409, 422), resp.text
    new = cluster.output("node-1")[len(before):]
    assert new.count("\n") == 1, new  # one line: the newline is escaped, not written
    assert "refused to co-sign X\\nINFO oracle.node published for node-3" in new, new


def test_retired_methodologies_are_not_co_signed(cluster, world):
    """Utilisation v1 (samples on the node's word) and index v1 are retired: refused."""
    run = parse_snapshot(DAYS[3])
    old = index.build_snapshot(FEED, run.quotes, run.observed_at, version=1)
    resp = post_sign(cluster, world, request(cluster, world, "node-3", old), key=NODE_KEYS[2])
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"]["code"] == "retired_methodology"
    assert "gpu-hour-index v1 is retired" in resp.json()["detail"]["message"]


def test_authenticated_malformed_requests_say_what_is_wrong(cluster, world):
    """Behind authentication, a signer's malformed request is refused with what to fix,
    and changes nothing (the checks the chainless node of test_api_node cannot reach)."""
    good = request(cluster, world, "node-3", index_snapshot(DAYS[3]))
    cp = checkpoint(cluster, "node-1")

    def refused(body: dict[str, Any] | bytes, status: int, code: str | None,
                phrase: str) -> None:
        resp = post_sign(cluster, world, body, key=NODE_KEYS[2])
        assert resp.status_code == status, resp.text
        detail = resp.json()["detail"]
        if code is None:  # the validation list, no input echoed
            assert isinstance(detail, list) and phrase in json.dumps(detail), detail
        else:
            assert detail["code"] == code and phrase in detail["message"], detail

    refused(b"{", 422, None, "json_invalid")
    for missing in ("leader", "kind", "report", "inputs"):
        refused({k: v for k, v in good.items() if k != missing}, 422, None, "Field required")
    refused({**good, "kind": "nav"}, 422, None, "'price' or 'utilisation'")
    refused({**good, "extra": 1}, 422, None, "Extra inputs are not permitted")
    for leader in ("", "node-2\nINFO forged"):
        refused({**good, "leader": leader}, 422, None, "leader")
    refused(json.dumps({**good, "leader": "\ud800"}).encode(), 422, None, "Invalid JSON")
    refused({**good, "leader": "node-9"}, 403, "unknown_leader", "'node-9' is not one of")
    refused({**good, "report": {**good["report"], "value": "much"}}, 422, "bad_report",
            "malformed")
    refused({**good, "kind": "utilisation"}, 422, "bad_report", "fields differ")
    other = attest.canonical_json(index_snapshot(DAYS[2])).decode()
    refused({**good, "inputs": other}, 422, "bad_inputs",
            "do not hash to the report's inputsHash")
    for text, phrase in ((json.dumps(index_snapshot(DAYS[3]), indent=1),
                          "not in canonical form"),
                         ("[" * 5_000 + "]" * 5_000, "not canonical JSON"),
                         ('{"price":1.5}', "floats are not canonical")):
        body = {**good, "inputs": text,
                "report": {**good["report"], "inputsHash": attest.inputs_hash(text.encode())}}
        refused(body, 422, "bad_inputs", phrase)
    assert checkpoint(cluster, "node-1") == cp


def test_offline_verify_says_what_it_cannot_catch(cluster, world, node, tmp_path):
    """Item 7: a copy of node-1's log with a made-up signer set (v99) and a report only
    its made-up keys signed verifies offline, and verify says so plainly, naming the
    entry; against the chain it fails."""
    forged_path = tmp_path / "forged.sqlite"
    with AttestationLog(cluster.log("node-1"), create=False) as src, \
            AttestationLog(forged_path) as dst:
        for entry in src.entries():
            dst.append(entry.leaf, kind=entry.kind, inputs=entry.inputs)
        domain = attest.Domain(chain_id=world["web3"].eth.chain_id, hub=world["hub"].address)
        keys = [dev_key(60 + i) for i in range(2)]
        made_up = sorted((Account.from_key(k).address for k in keys), key=lambda a: int(a, 16))
        reports.record_signer_set(dst, domain, 99, made_up, 2)
        reports.attest_snapshot(dst, "price", index_snapshot(DAYS[4]), domain=domain,
                                config_version=99, keys=keys)
    offline = processes.run([GPU_ORACLE, "verify", "--log", forged_path], timeout=120)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    text = offline.stdout + offline.stderr
    assert "NOT CHECKED offline" in text
    assert "config version 99" in text and "taken on the log's word" in text
    online = processes.run([GPU_ORACLE, "verify", "--log", forged_path, "--rpc", node.url,
                            "--hub", world["hub"].address], env=child_env(node), timeout=120)
    assert online.returncode == 1
    assert "config version 99, which the hub never installed" in online.stderr


def test_the_logs_verify_against_the_chain(cluster, world, node):
    deadline = time.monotonic() + 30
    while len({json.dumps(checkpoint(cluster, n)) for n in cluster.names}) > 1:
        assert time.monotonic() < deadline, "the logs did not converge"
        time.sleep(0.3)
    done = processes.run([GPU_ORACLE, "verify", "--node", cluster.url("node-3"), "--rpc",
                          node.url, "--hub", world["hub"].address], env=child_env(node),
                         timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
