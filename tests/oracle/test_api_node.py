"""The full node's API on a real `gpu-oracle serve --config` process on 127.0.0.1.

One node ("node-1") with its own key, a pre-built attestation log, a state file, an agent
registry for telemetry, two configured index feeds, one peer ("node-2", which is down)
and no rpc/hub. Covered: feeds and their history (by name and by 0x id), attestations
with inclusion proofs, Prometheus metrics, node health, the OpenAPI document, telemetry
intake (every refusal leaves the store unchanged: the next valid batch reuses the
refused one's sequence and sample times, the metrics count each outcome once, and the
SQLite store holds exactly the accepted batches once the server is stopped) and
co-signing refusals (each leaves the log unchanged; what needs the chain answers 503).
A second node with no peers and no agent registry, and a read-only `serve --log` of its
log, cover the 503s of missing configuration. The bugs these tests found are fixed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from openapi_spec_validator import validate as validate_openapi
from prometheus_client.parser import text_string_to_metric_families

from gpushares import processes
from gpushares.devnode import dev_key, free_port
from oracle import attest, merkle, reports
from oracle.entries import ReportEntry, parse_leaf
from oracle.index import feed_name_for
from oracle.log import AttestationLog
from oracle.telemetry import (
    SignedBatch,
    TelemetryBatch,
    TelemetryStore,
    batch_hash,
    sign_batch,
    signing_digest,
)
from tests.oracle import _telemetry as t
from tests.oracle import factories as f

# Every test of this module talks to the one server process: keep them on one xdist
# worker (`make test` runs `-n 2 --dist loadgroup`).
pytestmark = pytest.mark.xdist_group(name="api_node")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GPU_ORACLE = Path(sys.executable).parent / "gpu-oracle"

NODE_KEY = dev_key(40)
NODE_ADDRESS = Account.from_key(NODE_KEY).address
AGENT_KEY = t.agent_key()  # dev account 30: the SPV's agent, all 8 GPUs of the captures
AGENT = t.address(AGENT_KEY)
AGENT2_KEY = t.agent2_key()  # dev account 31: one GPU of SPV2
AGENT2_GPU = t.EXTRA_GPUS[0]
UNKNOWN_AGENT_KEY = dev_key(33)  # in no registry
UNREGISTERED_GPU = "GPU-deadbeef-0000-4000-8000-000000000001"

INDEX_FEED = feed_name_for("H100-SXM-80GB")  # "H100-SXM-80GB/USD/GPUh": configured, logged
IDLE_FEED = feed_name_for("A100-SXM-80GB")  # configured, never logged
REF_FEED = "H100-SXM-US"  # the reference log's feed: logged, not configured
MAX_AGE_S = 600
MAX_SKEW_S = 30


def index_snapshot(prices: list[str], observed_at: int) -> dict[str, Any]:
    """An offer-median v1 snapshot of INDEX_FEED (a feed name with slashes)."""
    snapshot = f.price_snapshot(prices, observed_at=observed_at)
    snapshot["feedId"] = reports.feed_id(INDEX_FEED)
    return snapshot


INDEX_SNAPSHOTS = [
    ("price", index_snapshot(["2.10", "2.20", "2.35"], 1_772_200_000)),
    ("price", index_snapshot(["2.05", "2.15", "2.30", "2.40"], 1_772_286_400)),
    ("price", index_snapshot(["1.99", "2.01", "2.50"], 1_772_372_800)),
]


# ------------------------------------------------------------------ the server process

SERVERS: list[ServerProcess] = []


class ServerProcess:
    """`gpu-oracle serve ARGS --port P` as a child process on 127.0.0.1; its output goes
    to a file (printed by the `_server_output` fixture when a test fails)."""

    def __init__(self, args: list[str], output: Path) -> None:
        self.args = args
        self.output_path = output
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        SERVERS.append(self)

    def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_ORACLE_")}
        env["PYTHONUNBUFFERED"] = "1"
        with self.output_path.open("ab") as out:
            self.proc = processes.spawn(
                [GPU_ORACLE, "serve", *self.args, "--port", str(port)],
                stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, env=env)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"gpu-oracle serve exited with {self.proc.returncode}:\n"
                                     + self.output())
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("gpu-oracle serve did not answer /healthz within 30 s:\n"
                                     + self.output())
            time.sleep(0.1)

    def stop(self) -> int | None:
        """Stop the process (SIGTERM: uvicorn shuts down and the node closes its files)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        return proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        try:
            return self.output_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""


@dataclass
class Env:
    server: ServerProcess
    dir: Path
    log_path: Path
    state_path: Path
    # what the test log holds: feed id -> [(entry index, report)], oldest first
    feeds: dict[str, list[tuple[int, attest.PriceReport]]]
    # batch hashes the node accepted (200), in order
    accepted: list[str] = field(default_factory=list)
    sequence: int = 1_000
    last_time: int = 0

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def telemetry_path(self) -> Path:
        # Node.telemetry_store: "<state stem>-telemetry.sqlite" beside the state file
        return self.state_path.with_name(self.state_path.stem + "-telemetry.sqlite")

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def fresh_time(self) -> int:
        """A sample time no batch used before, within the node's age window (one second
        apart: a few hundred batches fit in the window's last 300 s)."""
        now = int(time.time())
        self.last_time = max(self.last_time + 1, now - 300)
        assert self.last_time <= now, "more batches than seconds in the window: widen it"
        return self.last_time


def write_node(tmp: Path) -> tuple[Path, Path, Path]:
    """The node's files: key, log, agent registry, config. Returns (config, log, state)."""
    (tmp / "node.key").write_text(f"# node-1 (dev account 40)\n{NODE_KEY.hex()}\n")
    log_path = tmp / "attestations.sqlite"
    f.build_log(log_path, f.reference_snapshots() + INDEX_SNAPSHOTS).close()
    registry = {"agents": [
        {"address": AGENT, "spvToken": t.SPV, "label": "gpu-node-07",
         "gpus": [{"uuid": u, "serial": s} for u, s in t.inventory()]},
        {"address": t.address(AGENT2_KEY), "spvToken": t.SPV2,
         "gpus": [{"uuid": AGENT2_GPU[0], "serial": AGENT2_GPU[1]}]},
    ]}
    (tmp / "agents.json").write_text(json.dumps(registry, indent=1))
    config = tmp / "node-1.toml"
    config.write_text(f"""
name = "node-1"
key_file = "node.key"
log = "attestations.sqlite"
state = "state.sqlite"

[[peers]]
name = "node-2"
url = "http://127.0.0.1:{free_port()}"

[[feeds]]
kind = "index"
model = "H100-SXM-80GB"

[[feeds]]
kind = "index"
model = "A100-SXM-80GB"

[telemetry]
agents = "agents.json"
max_age_s = {MAX_AGE_S}
max_skew_s = {MAX_SKEW_S}

[rounds]
sync_interval_s = 1
""")
    return config, log_path, tmp / "state.sqlite"


def logged_feeds(path: Path) -> dict[str, list[tuple[int, attest.PriceReport]]]:
    out: dict[str, list[tuple[int, attest.PriceReport]]] = {}
    with AttestationLog(path, create=False) as log:
        for entry in log.entries():
            parsed = parse_leaf(entry.leaf)
            if isinstance(parsed, ReportEntry) and isinstance(parsed.signed.report,
                                                              attest.PriceReport):
                report = parsed.signed.report
                out.setdefault(report.feed_id, []).append((entry.index, report))
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("api-node")
    config, log_path, state_path = write_node(tmp)
    server = ServerProcess(["--config", str(config)], tmp / "server.out")
    server.start()
    state = Env(server, tmp, log_path, state_path, logged_feeds(log_path))
    try:
        yield state
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _server_output() -> Iterator[None]:
    """Print what the servers wrote during the test (pytest shows it for failures only),
    and fail the test if a server died during it."""
    running = [(server, len(server.output())) for server in SERVERS if server.alive()]
    yield
    for server, start in running:
        new = server.output()[start:]
        if new:
            print(f"---- gpu-oracle serve {' '.join(server.args)} ----\n{new}")
    for server, _ in running:
        assert server.alive(), f"the server died:\n{server.output()}"


# ------------------------------------------------------------------ helpers


def get(env: Env, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{env.url}{path}", params=params or None, timeout=10)


def post(env: Env, path: str, body: Any = None, *, content: bytes | None = None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    if content is not None:
        return httpx.post(f"{env.url}{path}", content=content, timeout=10,
                          headers=headers or {"content-type": "application/json"})
    return httpx.post(f"{env.url}{path}", json=body, timeout=10)


def error(resp: httpx.Response, status: int, code: str, phrase: str) -> dict[str, str]:
    """Assert an app error: `{"detail": {"code", "message"}}` with a human message."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    detail = resp.json()["detail"]
    assert set(detail) == {"code", "message"}, detail
    assert detail["code"] == code, detail
    assert phrase in detail["message"], detail
    return detail


def validation_error(resp: httpx.Response, phrase: str) -> list[dict[str, Any]]:
    """Assert FastAPI's 422 validation list, one of whose messages names `phrase`."""
    assert resp.status_code == 422, (resp.status_code, resp.text)
    detail = resp.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    assert all(isinstance(d.get("msg"), str) and d["msg"] for d in detail), detail
    text = json.dumps(detail)
    assert phrase in text, detail
    return detail


def metric_samples(env: Env) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = get(env, "/metrics")
    assert resp.status_code == 200, resp.text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def counter(env: Env, name: str, label: str) -> dict[str, float]:
    """`{label value: count}` of a labelled counter's `_total` samples."""
    return {dict(labels)[label]: value for (n, labels), value in metric_samples(env).items()
            if n == f"{name}_total"}


def telemetry_counts(env: Env) -> Counter[str]:
    return Counter(counter(env, "gpu_oracle_telemetry_batches", "result"))


def sign_counts(env: Env) -> Counter[str]:
    return Counter(counter(env, "gpu_oracle_sign_requests", "result"))


# ------------------------------------------------------------------ telemetry builders


def make_batch(env: Env, *, key: bytes = AGENT_KEY, spv: str = t.SPV,
               sequence: int | None = None, times: list[int] | None = None,
               uuids: list[str] | None = None, created_at: int | None = None,
               serial: str | None = None, percent: str = "87.5") -> TelemetryBatch:
    times = [env.fresh_time()] if times is None else times
    uuids = t.uuids()[:4] if uuids is None else uuids
    samples = [t.sample(u, tm, percent, serial=serial) for tm in times for u in uuids]
    return TelemetryBatch(
        agent=t.address(key), spv_token=spv,
        sequence=env.next_sequence() if sequence is None else sequence,
        created_at=max(times) if created_at is None else created_at,
        source="dcgm", samples=samples)  # type: ignore[arg-type]


def make_signed(env: Env, *, key: bytes = AGENT_KEY, **kw: Any) -> SignedBatch:
    return sign_batch(make_batch(env, key=key, **kw), key)


def send(env: Env, signed: SignedBatch | dict[str, Any]) -> httpx.Response:
    body = signed.canonical() if isinstance(signed, SignedBatch) else signed
    return post(env, "/v1/telemetry", body)


def accept(env: Env, signed: SignedBatch) -> dict[str, Any]:
    """Send a valid batch; assert the node accepted it, and remember it."""
    before = telemetry_counts(env)
    resp = send(env, signed)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body == {"accepted": True, "batchHash": batch_hash(signed.batch),
                    "samples": len(signed.batch.samples)}
    env.accepted.append(body["batchHash"])
    after = telemetry_counts(env)
    assert after - before == Counter({"accepted": 1})
    return body


def refuse(env: Env, body: SignedBatch | dict[str, Any], status: int, code: str,
           phrase: str) -> str:
    """Send a batch the node must refuse with `code`; assert the refusal is counted once
    (and nothing else is); return the message."""
    before = telemetry_counts(env)
    detail = error(send(env, body), status, code, phrase)
    assert telemetry_counts(env) - before == Counter({code: 1})
    return detail["message"]


def follow_up(env: Env, refused: TelemetryBatch, *, same_samples: bool = True) -> None:
    """The store is unchanged by the refusal of `refused`: a valid batch of our agent
    with the same sequence and (unless they were refused as repeats, or their times are
    out of the node's window) the same (GPU, time) samples is accepted."""
    registered = set(t.uuids())
    uuids = sorted({s.uuid for s in refused.samples if s.uuid in registered}) or t.uuids()[:2]
    times = sorted({s.time for s in refused.samples})
    now = int(time.time())
    if not same_samples or not all(now - MAX_AGE_S + 60 < tm < now for tm in times):
        times = [env.fresh_time()]
    sequence = refused.sequence if refused.agent == AGENT else env.next_sequence()
    accept(env, make_signed(env, sequence=sequence, times=times, uuids=uuids))


def log_checkpoint(env: Env) -> dict[str, Any]:
    resp = get(env, "/v1/checkpoint")
    assert resp.status_code == 200, resp.text
    return resp.json()


# ------------------------------------------------------------------ health, metrics, OpenAPI


def test_healthz_names_the_node_its_signer_and_log_size(env: Env):
    with AttestationLog(env.log_path, create=False) as log:
        size = log.size
    assert size == 1 + len(f.reference_snapshots()) + len(INDEX_SNAPSHOTS)
    resp = get(env, "/healthz")
    assert resp.status_code == 200, resp.text
    health = resp.json()
    assert health["status"] == "ok"
    assert health["node"] == "node-1"
    assert health["signer"] == NODE_ADDRESS
    assert health["log_size"] == size
    assert health["reasons"] == []


def test_metrics_are_prometheus_text_with_log_size_and_request_counters(env: Env):
    get(env, "/v1/checkpoint")
    get(env, "/v1/attestations/999999")
    resp = get(env, "/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    families = {fam.name: fam for fam in text_string_to_metric_families(resp.text)}
    assert families["gpu_oracle_log_size"].type == "gauge"
    (size,) = [s.value for s in families["gpu_oracle_log_size"].samples]
    assert size == log_checkpoint(env)["size"]
    requests = {(s.labels["route"], s.labels["status"]): s.value
                for s in families["gpu_oracle_http_requests"].samples
                if s.name == "gpu_oracle_http_requests_total"}
    assert families["gpu_oracle_http_requests"].type == "counter"
    assert requests[("/v1/checkpoint", "200")] >= 1
    assert requests[("/v1/attestations/{index}", "404")] >= 1
    # every logged feed's latest value, by name (the names carry slashes)
    values = {s.labels["feed"]: s.value for s in families["gpu_oracle_feed_value"].samples}
    latest = env.feeds[reports.feed_id(INDEX_FEED)][-1][1]
    assert values[INDEX_FEED] == pytest.approx(latest.value / 10**attest.PRICE_DECIMALS)
    assert REF_FEED in values


def test_openapi_document_is_valid_and_lists_every_route(env: Env):
    resp = get(env, "/openapi.json")
    assert resp.status_code == 200
    spec = resp.json()
    validate_openapi(spec)
    assert spec["info"]["title"] == "GPU oracle node"
    paths = spec["paths"]
    for path, method in [
        ("/healthz", "get"), ("/metrics", "get"), ("/v1/feeds", "get"),
        ("/v1/feeds/{feed_ref}", "get"), ("/v1/checkpoint", "get"),
        ("/v1/attestations", "get"), ("/v1/attestations/{index}", "get"),
        ("/v1/consistency", "get"), ("/v1/telemetry", "post"), ("/v1/sign", "post"),
    ]:
        assert method in paths.get(path, {}), (path, sorted(paths))
    # the history has its own documented route
    history_op = paths["/v1/feeds/{feed_ref}/history"]["get"]
    assert "newest first" in history_op["summary"]
    assert {p["name"] for p in history_op["parameters"]} == {"feed_ref", "limit"}
    assert {p["name"] for p in paths["/v1/feeds/{feed_ref}"]["get"]["parameters"]} == {
        "feed_ref"}
    sign_body = json.dumps(paths["/v1/sign"]["post"]["requestBody"])
    assert "SignRequest" in sign_body


def test_openapi_lists_the_feed_history_route(env: Env):
    paths = get(env, "/openapi.json").json()["paths"]
    assert "get" in paths.get("/v1/feeds/{feed_ref}/history", {}), sorted(paths)


# ------------------------------------------------------------------ feeds


def feed_value_of(index: int, report: attest.PriceReport) -> dict[str, Any]:
    return {"entry": index, "value": report.value,
            "value_decimal": f"{Decimal(report.value).scaleb(-attest.PRICE_DECIMALS):f}",
            "confidence": report.confidence, "observed_at": report.observed_at,
            "methodology_version": report.methodology_version,
            "inputs_hash": report.inputs_hash, "published": False}


def test_feeds_list_every_logged_and_configured_feed(env: Env):
    resp = get(env, "/v1/feeds")
    assert resp.status_code == 200, resp.text
    listed = {feed["name"]: feed for feed in resp.json()}
    assert set(listed) == {INDEX_FEED, IDLE_FEED, REF_FEED}
    for name, configured in ((INDEX_FEED, True), (IDLE_FEED, True), (REF_FEED, False)):
        feed = listed[name]
        assert feed["id"] == reports.feed_id(name)
        assert feed["configured"] is configured
        assert feed["decimals"] == attest.PRICE_DECIMALS
        history = env.feeds.get(feed["id"])
        assert feed["latest"] == (None if history is None else feed_value_of(*history[-1]))
    assert [feed["id"] for feed in resp.json()] == sorted(listed[n]["id"] for n in listed)


def test_one_feed_by_name_and_by_0x_id(env: Env):
    fid = reports.feed_id(INDEX_FEED)
    expected = {"id": fid, "name": INDEX_FEED, "decimals": attest.PRICE_DECIMALS,
                "configured": True, "latest": feed_value_of(*env.feeds[fid][-1])}
    by_name = get(env, f"/v1/feeds/{INDEX_FEED}")
    assert by_name.status_code == 200, by_name.text
    assert by_name.json() == expected
    assert get(env, f"/v1/feeds/{fid}").json() == expected
    assert get(env, "/v1/feeds/0x" + fid[2:].upper()).json() == expected
    # a name with its slashes percent-encoded is the same feed
    assert get(env, "/v1/feeds/" + INDEX_FEED.replace("/", "%2F")).json() == expected
    # a configured feed with nothing logged yet
    idle = get(env, f"/v1/feeds/{IDLE_FEED}")
    assert idle.status_code == 200, idle.text
    assert idle.json()["latest"] is None and idle.json()["configured"] is True
    assert get(env, f"/v1/feeds/{IDLE_FEED}/history").json()["values"] == []


def test_feed_history_is_newest_first_and_matches_the_log(env: Env):
    for name in (INDEX_FEED, REF_FEED):
        fid = reports.feed_id(name)
        logged = env.feeds[fid]
        resp = get(env, f"/v1/feeds/{name}/history")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["id"] == fid and body["name"] == name
        assert body["values"] == [feed_value_of(i, r) for i, r in reversed(logged)]
        entries = [v["entry"] for v in body["values"]]
        assert entries == sorted(entries, reverse=True)
        limited = get(env, f"/v1/feeds/{fid}/history", limit=2).json()["values"]
        assert limited == body["values"][:2]
        assert get(env, f"/v1/feeds/{name}/history", limit=1).json()["values"] == \
            body["values"][:1]
    # every history value is the report logged at that entry
    for value in get(env, f"/v1/feeds/{INDEX_FEED}/history").json()["values"]:
        leaf = bytes.fromhex(get(env, f"/v1/attestations/{value['entry']}").json()["leaf"][2:])
        parsed = parse_leaf(leaf)
        assert isinstance(parsed, ReportEntry)
        assert value == feed_value_of(value["entry"], parsed.signed.report)  # type: ignore


def test_unknown_and_malformed_feeds_are_refused_with_a_message(env: Env):
    for ref in ("RTX9999/USD/GPUh", "0x" + "ab" * 32, "RTX9999/USD/GPUh/history"):
        detail = error(get(env, f"/v1/feeds/{ref}"), 404, "unknown_feed", "no feed")
        assert "GET /v1/feeds" in detail["message"]
    # neither a 0x id (not hex) nor a name (over 32 bytes)
    for ref in ("0x" + "zz" * 32, "x" * 33, "0x" + "ab" * 40):
        error(get(env, f"/v1/feeds/{ref}"), 400, "bad_feed", "neither a 0x feed id nor a "
              "feed name")
        error(get(env, f"/v1/feeds/{ref}/history"), 400, "bad_feed", "1..32 bytes")


@pytest.mark.parametrize(("limit", "phrase"), [
    (0, "greater than or equal to 1"), (-1, "greater than or equal to 1"),
    (1_001, "less than or equal to 1000"), ("many", "valid integer"),
])
def test_history_limit_out_of_range_is_422(env: Env, limit: Any, phrase: str):
    detail = validation_error(get(env, f"/v1/feeds/{INDEX_FEED}/history", limit=limit), phrase)
    assert detail[0]["loc"] == ["query", "limit"]


# ------------------------------------------------------------------ attestations


def test_attestation_has_report_signatures_signers_and_a_valid_proof(env: Env):
    cp = log_checkpoint(env)
    root = bytes.fromhex(cp["root"][2:])
    signers = set(f.signer_addresses())
    with AttestationLog(env.log_path, create=False) as log:
        leaves = [e.leaf for e in log.entries()]
    assert len(leaves) == cp["size"]
    for index in range(cp["size"]):
        resp = get(env, f"/v1/attestations/{index}")
        assert resp.status_code == 200, resp.text
        e = resp.json()
        leaf = bytes.fromhex(e["leaf"][2:])
        assert leaf == leaves[index]
        assert e["index"] == index and e["tree_size"] == cp["size"] and e["root"] == cp["root"]
        leaf_hash = merkle.leaf_hash(leaf)
        assert e["leaf_hash"] == "0x" + leaf_hash.hex()
        proof = [bytes.fromhex(p[2:]) for p in e["inclusion_proof"]]
        assert merkle.verify_inclusion(leaf_hash, index, cp["size"], proof, root)
        if index == 0:  # the signer set
            assert e["kind"] == "signer_set" and e["report"] is None
            assert e["signatures"] == [] and e["signers"] == []
            continue
        parsed = parse_leaf(leaf)
        assert isinstance(parsed, ReportEntry)
        assert e["kind"] == parsed.signed.kind
        assert e["report"] == parsed.signed.report.canonical()
        assert len(e["signatures"]) == len(e["signers"]) == f.THRESHOLD
        assert set(e["signers"]) <= signers
        digest = attest.digest(parsed.signed.report, f.DOMAIN)
        assert [attest.recover(digest, s) for s in e["signatures"]] == e["signers"]
        # the inputs are served and hash to the report's inputsHash
        assert attest.inputs_hash(bytes.fromhex(e["inputs"][2:])) == e["report"]["inputsHash"]
    # a proof that verifies against the wrong index does not
    e = get(env, "/v1/attestations/3").json()
    proof = [bytes.fromhex(p[2:]) for p in e["inclusion_proof"]]
    assert not merkle.verify_inclusion(merkle.leaf_hash(bytes.fromhex(e["leaf"][2:])), 4,
                                       cp["size"], proof, root)


def test_attestation_out_of_range_is_404_no_entry(env: Env):
    size = log_checkpoint(env)["size"]
    for index in (size, size + 1, 10**9):
        detail = error(get(env, f"/v1/attestations/{index}"), 404, "no_entry",
                       f"no entry {index}")
        assert f"the log has {size}" in detail["message"]
    validation_error(get(env, "/v1/attestations/three"), "integer")


def test_attestation_negative_index_is_a_clear_4xx(env: Env):
    resp = get(env, "/v1/attestations/-1")
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    assert "no entry -1" in resp.json()["detail"]["message"]


def test_attestation_huge_index_is_404(env: Env):
    error(get(env, f"/v1/attestations/{2**64}"), 404, "no_entry", "no entry")


def test_attestation_pages_and_consistency(env: Env):
    cp = log_checkpoint(env)
    page = get(env, "/v1/attestations", after=2, limit=3).json()
    assert page["size"] == cp["size"]
    assert [e["index"] for e in page["entries"]] == [3, 4, 5]
    assert get(env, "/v1/attestations", after=cp["size"] + 5).json()["entries"] == []
    validation_error(get(env, "/v1/attestations", limit=1_001), "less than or equal to 1000")
    error(get(env, "/v1/consistency", old=5, new=cp["size"] + 1), 400, "bad_range",
          f"new <= {cp['size']}")


# ------------------------------------------------------------------ telemetry


def test_telemetry_batch_accepted_then_replays_refused(env: Env):
    first = make_signed(env)
    body = accept(env, first)
    assert body["samples"] == 4
    # the very same batch again: the message names the batch (the agent matches it)
    message = refuse(env, first, 409, "replayed", "already accepted")
    assert body["batchHash"] in message
    # a new batch whose sequence is not above the last accepted one
    lower = make_signed(env, sequence=first.batch.sequence - 1)
    refuse(env, lower, 409, "replayed", f"not above its last accepted sequence "
           f"{first.batch.sequence}")
    same = make_signed(env, sequence=first.batch.sequence)
    refuse(env, same, 409, "replayed", "not above its last accepted sequence")
    # a higher sequence, but one of its samples (GPU, time) was accepted already
    repeat = make_signed(env, times=[first.batch.samples[0].time],
                         uuids=[first.batch.samples[0].uuid])
    refuse(env, repeat, 409, "replayed", "was already accepted")
    follow_up(env, repeat.batch, same_samples=False)


def test_unsigned_batches_are_401(env: Env):
    batch = make_batch(env)
    for signature in (None, "", "0x"):
        body: dict[str, Any] = {"batch": batch.canonical()}
        if signature is not None:
            body["signature"] = signature
        refuse(env, body, 401, "unsigned", "no signature")
    follow_up(env, batch)


def test_bad_signatures_are_401(env: Env):
    signed = make_signed(env)
    raw = bytearray.fromhex(signed.signature[2:])
    raw[10] ^= 0x01
    flipped = {"batch": signed.batch.canonical(), "signature": "0x" + raw.hex()}
    # (a flipped bit of r recovers another key, or none when r is off the curve)
    message = refuse(env, flipped, 401, "bad_signature", "sign")
    assert "the signature recovers 0x" in message or "batch signature:" in message, message
    # signed by another key (a registered agent, but not this batch's)
    other = "0x" + bytes(Account.unsafe_sign_hash(signing_digest(signed.batch),
                                                  AGENT2_KEY).signature).hex()
    message = refuse(env, {"batch": signed.batch.canonical(), "signature": other}, 401,
                     "bad_signature", "recovers")
    assert t.address(AGENT2_KEY) in message and AGENT in message
    # the batch altered after signing (one percent)
    tampered = signed.batch.canonical()
    tampered["samples"][0]["percent"] = "12"
    refuse(env, {"batch": tampered, "signature": signed.signature}, 401, "bad_signature",
           "not the batch's agent")
    for malformed in ("0x1234", "not hex", 12345, ["0x"]):
        refuse(env, {"batch": signed.batch.canonical(), "signature": malformed}, 401,
               "bad_signature", "130 hex digits")
    follow_up(env, signed.batch)


def test_unknown_agent_wrong_spv_and_unknown_gpus_are_403(env: Env):
    outsider = make_signed(env, key=UNKNOWN_AGENT_KEY)
    refuse(env, outsider, 403, "unknown_agent", "is not in this node's agent registry")
    follow_up(env, outsider.batch)
    wrong_spv = make_signed(env, spv=t.SPV2)
    refuse(env, wrong_spv, 403, "wrong_spv", f"not for SPV {t.SPV2}")
    follow_up(env, wrong_spv.batch)
    unregistered = make_signed(env, uuids=[t.uuids()[0], UNREGISTERED_GPU])
    refuse(env, unregistered, 403, "unknown_gpu", f"GPU {UNREGISTERED_GPU} is not registered")
    follow_up(env, unregistered.batch)
    # a GPU registered to another agent (of another SPV)
    theirs = make_signed(env, uuids=[AGENT2_GPU[0]])
    refuse(env, theirs, 403, "unknown_gpu", "is not registered to agent")
    follow_up(env, theirs.batch)
    # the right GPU with another board serial
    swapped = make_signed(env, uuids=[t.uuids()[1]], serial="1652922019999")
    refuse(env, swapped, 403, "unknown_gpu", "reports serial 1652922019999")
    follow_up(env, swapped.batch)
    # the other agent is fine for its own GPU and SPV
    accept(env, make_signed(env, key=AGENT2_KEY, spv=t.SPV2, uuids=[AGENT2_GPU[0]]))


def test_stale_and_future_batches_are_refused(env: Env):
    now = int(time.time())
    old = make_signed(env, times=[now - MAX_AGE_S - 300])
    refuse(env, old, 422, "stale", f"more than {MAX_AGE_S} s before the node's clock")
    follow_up(env, old.batch)
    stale_created = make_signed(env, created_at=now - MAX_AGE_S - 300)
    refuse(env, stale_created, 422, "stale", "before the node's clock")
    follow_up(env, stale_created.batch)
    future = make_signed(env, times=[now + MAX_SKEW_S + 300])
    refuse(env, future, 422, "future", f"more than {MAX_SKEW_S} s after the node's clock")
    follow_up(env, future.batch)
    future_created = make_signed(env, created_at=now + MAX_SKEW_S + 300)
    refuse(env, future_created, 422, "future", "check the agent host's clock")
    follow_up(env, future_created.batch)


def test_malformed_batches_are_422_with_a_message(env: Env):
    good = make_signed(env)
    batch = good.batch.canonical()
    sig = good.signature

    def variant(**changes: Any) -> dict[str, Any]:
        return {"batch": {**batch, **changes}, "signature": sig}

    sample = batch["samples"][0]
    cases: list[tuple[Any, str]] = [
        ({}, 'the body must be {"batch"'),
        ({"batch": "not an object", "signature": sig}, 'the body must be {"batch"'),
        ({"batch": batch, "signature": sig, "extra": 1}, "unexpected fields ['extra']"),
        (variant(sequence=str(batch["sequence"])), "batch.sequence"),
        (variant(sequence=0), "batch.sequence"),
        (variant(sequence=2**63), "batch.sequence"),
        (variant(createdAt=1.5), "batch.createdAt"),
        (variant(samples=[]), "batch.samples"),
        (variant(samples="none"), "batch.samples"),
        (variant(samples=[{**sample, "percent": "87.50"}]), "not in canonical form"),
        (variant(samples=[{**sample, "percent": 87}]), "batch.samples.0.percent"),
        (variant(samples=[{**sample, "uuid": "GPU-" + sample["uuid"][4:].upper()}]),
         "lower case"),
        (variant(samples=[sample, sample]), "two samples for"),
        (variant(agent="0x1234"), "batch.agent"),
        (variant(source="csv"), "batch.source"),
        (variant(type="gpu-telemetry-batch/2"), "batch.type"),
        (variant(unexpected=True), "batch.unexpected"),
    ]
    for body, phrase in cases:
        refuse(env, body, 422, "invalid", phrase)
    # not JSON, or JSON that is not an object: FastAPI's validation list, no 500
    counts = telemetry_counts(env)
    validation_error(post(env, "/v1/telemetry", content=b'{"batch": '), "JSON decode error")
    validation_error(post(env, "/v1/telemetry", [good.canonical()]), "valid dictionary")
    validation_error(post(env, "/v1/telemetry", content=b""), "Field required")
    assert telemetry_counts(env) == counts
    # none of it was stored: the signed batch itself is still accepted
    accept(env, good)


def test_concurrent_copies_of_one_batch_are_accepted_once(env: Env):
    signed = make_signed(env, uuids=t.uuids())
    before = telemetry_counts(env)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: send(env, signed), range(8)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [409] * 7, [r.text for r in answers]
    for r in answers:
        if r.status_code == 409:
            error(r, 409, "replayed", batch_hash(signed.batch))
    env.accepted.append(batch_hash(signed.batch))
    assert telemetry_counts(env) - before == Counter({"accepted": 1, "replayed": 7})


def test_telemetry_store_holds_exactly_the_accepted_batches(env: Env):
    """Stop the server, read the SQLite store, restart it: the accepted batches are there
    (and only they), and the restarted node still refuses their replay."""
    last = make_signed(env)
    accept(env, last)
    counts = telemetry_counts(env)
    assert counts["accepted"] == len(env.accepted)
    assert Path(f"{env.telemetry_path}-wal").exists()  # open, in WAL mode
    # uvicorn re-raises the SIGTERM after its graceful shutdown ...
    assert env.server.stop() in (0, -signal.SIGTERM), env.server.output()
    # ... in which the node closed its files (SQLite removes a WAL on the last close)
    assert sorted(p.name for p in env.dir.glob("*-wal")) == []
    with TelemetryStore(env.telemetry_path) as store:
        stored = {}
        for spv in (t.SPV, t.SPV2):
            for b in store.batches(spv, 0, 2**40):
                stored[batch_hash(b.batch)] = b
        assert sorted(stored) == sorted(env.accepted)
        assert store.counts()["batches"] == len(env.accepted)
        assert store.counts()["samples"] == sum(len(b.batch.samples) for b in stored.values())
        assert store.last_sequence(AGENT) == last.batch.sequence
        assert stored[batch_hash(last.batch)] == last
    env.server.start()
    assert get(env, "/healthz").json()["log_size"] == log_checkpoint(env)["size"]
    refuse(env, last, 409, "replayed", batch_hash(last.batch))
    follow_up(env, make_batch(env))


# ------------------------------------------------------------------ co-signing

# The co-signing checks behind authentication (malformed requests, bad inputs, unknown
# leaders, votes) run against nodes with a chain: tests/integration/test_oracle_trust.py.


@pytest.fixture(scope="module")
def sign_material(env: Env) -> dict[str, Any]:
    """A logged price report and its canonical inputs."""
    fid = reports.feed_id(INDEX_FEED)
    index, report = env.feeds[fid][-1]
    inputs = bytes.fromhex(get(env, f"/v1/attestations/{index}").json()["inputs"][2:])
    return {"report": report.canonical(), "inputs": inputs.decode()}


def peer_headers(body: bytes, *, stamp: int = 1_772_000_000, key: bytes = NODE_KEY,
                 path: str = "/v1/sign", method: str = "POST") -> dict[str, str]:
    from oracle import peerauth

    return peerauth.sign_headers(key, chain_id=31337, hub="0x" + "11" * 20,
                                 receiver="node-1", method=method, path=path, stamp=stamp,
                                 body=body)


def refused_before_parsing(env: Env, content: bytes, headers: dict[str, str], status: int,
                           code: str, phrase: str) -> None:
    """A peer request the node refuses before it parses the body: its log, its state
    file and its output are unchanged, and the refusal is counted once by its code."""
    cp = log_checkpoint(env)
    counts = sign_counts(env)
    output = env.server.output()
    with sqlite3.connect(f"file:{env.state_path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
    resp = httpx.post(f"{env.url}/v1/sign", content=content, timeout=10,
                      headers={"content-type": "application/json", **headers})
    error(resp, status, code, phrase)
    assert sign_counts(env) - counts == Counter({code: 1})
    assert log_checkpoint(env) == cp and env.server.output() == output
    with sqlite3.connect(f"file:{env.state_path}?mode=ro", uri=True) as db:
        assert db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0] == rows


def test_sign_without_authentication_is_401_whatever_the_body(env: Env,
                                                              sign_material: dict[str, Any]):
    good = json.dumps({"leader": "node-2", "kind": "price", **sign_material}).encode()
    for content in (good, b"{", b"", b'{"leader": "node-2\nINFO forged line"}',
                    ("[" * 100_000 + "]" * 100_000).encode(), b'{"a":"\\ud800"}'):
        refused_before_parsing(env, content, {}, 401, "unauthenticated",
                               "answers only the quorum's nodes")
    headers = peer_headers(good)
    for name, value in (("x-gpu-oracle-nonce", "not-hex"), ("x-gpu-oracle-time", "soon"),
                        ("x-gpu-oracle-signature", "0x1234")):
        refused_before_parsing(env, good, {**headers, name: value}, 401, "bad_auth_headers",
                               "X-GPU-Oracle-Time must be unix seconds")


def test_sign_with_signed_headers_needs_the_chain_to_check_the_signer(
        env: Env, sign_material: dict[str, Any]):
    """Without rpc/hub the node cannot read the signer set: 503, before parsing."""
    good = json.dumps({"leader": "node-2", "kind": "price", **sign_material}).encode()
    refused_before_parsing(env, good, peer_headers(good), 503, "no_chain",
                           "no rpc/hub configured")
    resp = httpx.get(f"{env.url}/v1/votes/0", timeout=10)
    error(resp, 401, "unauthenticated", "answers only the quorum's nodes")
    resp = httpx.get(f"{env.url}/v1/votes/0", timeout=10,
                     headers=peer_headers(b"", path="/v1/votes/0", method="GET"))
    error(resp, 503, "no_chain", "no rpc/hub configured")


def test_bodies_over_the_limit_are_413(env: Env):
    big = b"{" + b" " * (1024 * 1024 + 1) + b"}"
    for path in ("/v1/sign", "/v1/telemetry"):
        resp = httpx.post(f"{env.url}{path}", content=big, timeout=30,
                          headers={"content-type": "application/json"})
        error(resp, 413, "body_too_large", "[api] max_body_bytes")


def test_telemetry_with_lone_surrogates_is_refused_cleanly(env: Env):
    batch = make_batch(env).canonical()
    for body, phrase in [
        (b'{"batch": {}, "signature": "0x12", "\\ud800": 1}', "unexpected fields"),
        (json.dumps({"batch": {**batch, "agent": "\ud800"}, "signature": "0x12"}).encode(),
         "not a 20-byte 0x address"),
        (json.dumps({"batch": {**batch, "source": "\ud800"}, "signature": "0x12"}).encode(),
         "batch.source"),
    ]:
        error(post(env, "/v1/telemetry", content=body), 422, "invalid", phrase)


# ------------------------------------------------------------------ a bare and a read-only node


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A node with no peers, no telemetry registry and an empty log, and a read-only
    server (`--log`) of that log: (node URL, read-only URL)."""
    tmp = tmp_path_factory.mktemp("api-bare")
    (tmp / "bare.key").write_text(dev_key(41).hex() + "\n")
    config = tmp / "bare.toml"
    config.write_text('name = "bare"\nkey_file = "bare.key"\nlog = "log.sqlite"\n'
                      'state = "state.sqlite"\n')
    node = ServerProcess(["--config", str(config)], tmp / "bare.out")
    node.start()
    read_only = ServerProcess(["--log", str(tmp / "log.sqlite")], tmp / "read-only.out")
    try:
        read_only.start()
        yield node.url, read_only.url
    finally:
        read_only.stop()
        node.stop()


def test_node_without_agent_registry_answers_telemetry_503(env: Env, bare: tuple[str, str]):
    url, _ = bare
    body = make_signed(env).canonical()
    resp = httpx.post(f"{url}/v1/telemetry", json=body, timeout=10)
    error(resp, 503, "no_agents", "no [telemetry] agents registry")


def test_bare_node_and_read_only_server(env: Env, bare: tuple[str, str]):
    url, read_only = bare
    health = httpx.get(f"{url}/healthz", timeout=10).json()
    assert health["node"] == "bare" and health["log_size"] == 0
    assert health["signer"] == Account.from_key(dev_key(41)).address
    assert httpx.get(f"{url}/v1/feeds", timeout=10).json() == []
    sign = {"leader": "node-2", "kind": "price", "report": {}, "inputs": "{}"}
    error(httpx.post(f"{url}/v1/sign", json=sign, timeout=10), 401, "unauthenticated",
          "answers only the quorum's nodes")
    error(httpx.get(f"{url}/v1/attestations/0", timeout=10), 404, "no_entry",
          "the log has 0")
    # a read-only server serves the log and refuses every write with 503
    assert httpx.get(f"{read_only}/healthz", timeout=10).json() == {
        "status": "ok", "log_size": 0, "mode": "read-only"}
    for path, body in (("/v1/telemetry", make_signed(env).canonical()), ("/v1/sign", sign)):
        error(httpx.post(f"{read_only}{path}", json=body, timeout=10), 503, "read_only",
              "started without a config")
