"""The node's read-only API on a real HTTP server (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from gpushares.devnode import free_port
from oracle import merkle
from oracle.api import Settings, create_app
from oracle.log import AttestationLog
from tests.oracle import factories as f


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    path = tmp_path_factory.mktemp("api") / "log.sqlite"
    f.build_log(path).close()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(Settings(log=path)), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", path
    server.should_exit = True
    thread.join(timeout=10)


def test_checkpoint_and_pages_reproduce_the_log(served):
    url, path = served
    with AttestationLog(path, create=False) as log:
        expected = log.checkpoint()
        leaves = [e.leaf for e in log.entries()]
    cp = httpx.get(f"{url}/v1/checkpoint").json()
    assert cp == {"size": expected.size, "root": "0x" + expected.root.hex()}
    got: list[bytes] = []
    after = -1
    while True:
        page = httpx.get(f"{url}/v1/attestations", params={"after": after, "limit": 4}).json()
        if not page["entries"]:
            break
        assert len(page["entries"]) <= 4
        got += [bytes.fromhex(e["leaf"][2:]) for e in page["entries"]]
        after = page["entries"][-1]["index"]
    assert got == leaves


def test_inclusion_and_consistency_proofs_verify(served):
    url, _ = served
    cp = httpx.get(f"{url}/v1/checkpoint").json()
    size, root = cp["size"], bytes.fromhex(cp["root"][2:])
    for index in (0, size // 2, size - 1):
        e = httpx.get(f"{url}/v1/attestations/{index}").json()
        proof = [bytes.fromhex(p[2:]) for p in e["inclusion_proof"]]
        leaf_hash = merkle.leaf_hash(bytes.fromhex(e["leaf"][2:]))
        assert merkle.verify_inclusion(leaf_hash, index, e["tree_size"], proof, root)
    c = httpx.get(f"{url}/v1/consistency", params={"old": 3, "new": size}).json()
    with AttestationLog(served[1], create=False) as log:
        old_root = log.checkpoint(3).root
    assert merkle.verify_consistency(3, size, old_root, root,
                                     [bytes.fromhex(p[2:]) for p in c["proof"]])


def test_inclusion_proof_at_an_older_checkpoint(served):
    """`?size=` proves an entry against the checkpoint a report carried on-chain (the
    wallet app checks it against the OracleHub's), not only against the node's newest."""
    url, path = served
    with AttestationLog(path, create=False) as log:
        old = log.checkpoint(5)
    for index in (0, 2, 4):
        e = httpx.get(f"{url}/v1/attestations/{index}", params={"size": 5}).json()
        assert (e["tree_size"], e["root"]) == (5, "0x" + old.root.hex())
        proof = [bytes.fromhex(p[2:]) for p in e["inclusion_proof"]]
        leaf_hash = merkle.leaf_hash(bytes.fromhex(e["leaf"][2:]))
        assert merkle.verify_inclusion(leaf_hash, index, 5, proof, old.root)
    outside = httpx.get(f"{url}/v1/attestations/5", params={"size": 5})
    assert outside.status_code == 404
    assert "the checkpoint asked for has 5 (0..4)" in outside.json()["detail"]["message"]
    size = httpx.get(f"{url}/healthz").json()["log_size"]
    beyond = httpx.get(f"{url}/v1/attestations/0", params={"size": size + 1})
    assert beyond.status_code == 422
    assert beyond.json()["detail"]["code"] == "bad_size"


def test_bad_requests_get_clear_errors(served):
    url, _ = served
    size = httpx.get(f"{url}/healthz").json()["log_size"]
    missing = httpx.get(f"{url}/v1/attestations/{size}")
    assert missing.status_code == 404
    assert missing.json()["detail"]["code"] == "no_entry"
    assert f"the log has {size}" in missing.json()["detail"]["message"]
    assert httpx.get(f"{url}/v1/consistency", params={"old": 5, "new": 2}).status_code == 400
    assert httpx.get(f"{url}/v1/attestations", params={"limit": 0}).status_code == 422
    assert httpx.get(f"{url}/openapi.json").json()["info"]["title"] == "GPU oracle node"
