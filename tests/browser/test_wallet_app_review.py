"""Review of the wallet app (issue 21) as an attacker and as a demanding user: each test
here shows one problem found in app/ (or the reads under it) and says what should happen
instead. They share the world of tests/browser/test_wallet_app.py (the conftest's `world`),
and a second app server whose oracle node is a test double that forwards to a real node of
the quorum and alters its answers on demand (a broken or malicious node).

Every test here failed on the code as reviewed (3a9c314) and passes since the fixes of
6ac36a2; none is marked xfail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from playwright.sync_api import BrowserContext, Page, expect

from app.serve import serve_asgi, serving
from app.server import Settings
from gpushares.appworld import World
from gpushares.client import oracle, perp, pool
from gpushares.demo import DAY, INDEX_MAX_MOVE_BPS
from gpushares.devnode import CHAIN_ID
from tests.browser.harness import APP_GROUP, TIMEOUT_MS, review, wallet_log, wallet_page

# One world for every module of the wallet app (see tests/browser/conftest.py).
pytestmark = pytest.mark.xdist_group(APP_GROUP)

FAKE_SIGNERS = ["0xdEAD000000000000000000000000000000000001",
                "0xdEAD000000000000000000000000000000000002"]


@pytest.fixture(scope="module")
def oracle_mode() -> dict[str, str | None]:
    """How the test-double oracle node misbehaves (None: it forwards faithfully)."""
    return {"mode": None}


@pytest.fixture(scope="module")
def lying_app_url(world: World, oracle_mode: dict[str, str | None]) -> Iterator[str]:
    """The app over an oracle node that forwards to node-1 and alters its answers as
    `oracle_mode` says: `string-index` (a listed index as a string), `html` (the detail
    answered by a proxy's HTML error page), `lie` (the listing's kind and the entry's
    signers changed, the leaf and its proof left intact)."""
    real = world.cluster.url(world.cluster.names[0])
    node = FastAPI()
    http = httpx.Client(timeout=10)

    @node.get("/v1/attestations")
    def listing(request: Request) -> Response:
        body = http.get(f"{real}/v1/attestations", params=dict(request.query_params)).json()
        if oracle_mode["mode"] == "string-index":
            for entry in body["entries"]:
                entry["index"] = str(entry["index"])
        if oracle_mode["mode"] == "lie":
            for entry in body["entries"]:
                entry["kind"] = "checkpoint"
        return JSONResponse(body)

    @node.get("/v1/attestations/{index}")
    def detail(index: int, request: Request) -> Response:
        if oracle_mode["mode"] == "html":
            return PlainTextResponse("<html><body>502 Bad Gateway</body></html>",
                                     status_code=502)
        answer = http.get(f"{real}/v1/attestations/{index}",
                          params=dict(request.query_params))
        body = answer.json()
        if oracle_mode["mode"] == "lie" and answer.status_code == 200:
            body["signers"] = FAKE_SIGNERS
        return JSONResponse(body, status_code=answer.status_code)

    with serve_asgi(node) as node_url:
        settings = Settings(rpc_url=world.node.url, deployments=world.deployments_path,
                            oracle_url=node_url)
        with serving(settings) as url:
            yield url
    http.close()


def open_as(context: BrowserContext, world: World, app_url: str, cookie: str, wallet: str,
            path: str = "/", *, chain_id: int = CHAIN_ID) -> Page:
    """A page whose `account` cookie names `cookie` and whose test wallet holds `wallet`
    on chain `chain_id` (names of the cast or addresses)."""
    cookie = world.people.get(cookie, cookie)
    wallet = world.people.get(wallet, wallet)
    context.add_cookies([{"name": "account", "value": cookie, "url": app_url}])
    page = wallet_page(context, world.node.url, wallet, chain_id=chain_id)
    page.goto(app_url + path)
    return page


def plan(app_url: str, action: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{app_url}/api/plan/{action}", json=body, timeout=30)


def settle(page: Page, form: str, seconds: float = 20) -> None:
    """After "Sign and send": wait until the wallet was asked to send, or the review says
    a step was not sent, or the time is up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if wallet_log(page, "eth_sendTransaction"):
            return
        try:
            if page.locator(f"#{form} .review li.refused").count():
                return
        except Exception:  # noqa: BLE001 - the page may be reloading
            pass
        page.wait_for_timeout(200)


# ---------------------------------------------------------------------------------
# Pages and endpoints that crash (500) on input a user can type
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spv_id", ["-1", "9" * 80])
def test_an_spv_id_outside_uint256_is_explained_not_a_500(world: World, app_url: str,
                                                          spv_id: str) -> None:
    """/spv/-1 and /spv/<80 digits> crash with 500 Internal Server Error: `spv_id: int`
    (app/server.py spv_page) goes straight into the lens call and eth_abi raises
    ValueOutOfBounds while encoding it (gpushares/client/lens.py spv_page). Expected: the
    frame's 422 page saying the SPV does not exist, like /spv/9."""
    response = httpx.get(f"{app_url}/spv/{spv_id}", timeout=30)
    assert response.status_code == 422, (response.status_code, response.text[:200])
    assert "unknown SPV id" in response.text and 'id="connect"' in response.text


@pytest.mark.parametrize(("action", "fields"), [
    ("pool.supply", {"pool": 1, "amount": "1e999999"}),
    ("spv.transfer", {"spv": 1, "to": "bob", "shares": "1e999999"}),
    ("perp.commit", {"market": 1, "side": "long", "size": "1e999999"}),
    ("perp.commit", {"market": 1, "side": "long", "size": "1", "margin": "1e999999"}),
])
def test_an_amount_with_a_huge_exponent_is_bad_input_not_a_500(
        world: World, app_url: str, action: str, fields: dict[str, Any]) -> None:
    """An amount like "1e999999" crashes the plan endpoint with 500: `to_base_units`
    (gpushares/client/units.py) calls `Decimal.scaleb`, which raises decimal.Overflow
    (not InvalidOperation, not BadInput) past the context's Emax. Expected: 422 naming the
    field, as for "NaN" or "-1"."""
    fields = {k: world.people.get(v, v) if isinstance(v, str) else v
              for k, v in fields.items()}
    response = plan(app_url, action, account=world.people["alice"], **fields)
    assert response.status_code == 422, (response.status_code, response.text[:200])


@pytest.mark.parametrize(("action", "fields"), [
    ("spv.transfer", {"spv": 1, "to": "bob", "shares": "1e70"}),
    ("vault.request_deposit", {"spv": 1, "amount": "1e90"}),
    ("perp.commit", {"market": 1, "side": "long", "size": "1e90"}),
    ("pool.supply", {"pool": 1, "amount": "1e70"}),
])
def test_an_amount_beyond_uint256_is_refused_in_words(
        world: World, app_url: str, action: str, fields: dict[str, Any]) -> None:
    """An amount whose base units do not fit in a uint256 crashes the plan endpoint with
    500 (eth_abi ValueOutOfBounds while building the tx: spv.plan_transfer, the vault's
    approval, perp.plan_commit), or, for pool.supply, answers 502 "the chain could not
    answer: math: mul_div overflow" although the chain did answer (a preview reverted).
    Expected: a 422 naming the field (or a refusal in words), never 500/502."""
    fields = {k: world.people.get(v, v) if isinstance(v, str) else v
              for k, v in fields.items()}
    response = plan(app_url, action, account=world.people["alice"], **fields)
    assert response.status_code in (200, 422), (response.status_code, response.text[:200])
    if response.status_code == 200:
        assert response.json()["refusal"] and not response.json()["txs"]


def test_the_oracle_page_survives_a_malformed_node_listing(
        world: World, lying_app_url: str, oracle_mode: dict[str, str | None]) -> None:
    """An oracle node (not trusted: the proofs exist for that) whose listing has an index
    as a string makes /oracle a 500: `listed_entry["index"] >= size` raises TypeError,
    and Reader._log_tail (app/views.py) only catches HTTPError, KeyError and ValueError.
    Expected: the page renders with "The oracle node ... did not answer" in the log
    section, as it does when the node is down."""
    oracle_mode["mode"] = "string-index"
    try:
        response = httpx.get(lying_app_url + "/oracle", timeout=30)
    finally:
        oracle_mode["mode"] = None
    assert response.status_code == 200, (response.status_code, response.text[:200])
    assert "did not answer" in response.text


def test_the_attestation_proxy_survives_a_non_json_answer(
        world: World, lying_app_url: str, oracle_mode: dict[str, str | None]) -> None:
    """/api/oracle/attestations/{i} returns `answer.json()` unchecked (app/server.py
    attestation): a node behind a proxy that answers an HTML 502 page makes it a 500
    (JSONDecodeError). Expected: a 502 JSON problem naming the node, which proof.js shows
    as "NOT verified: ..."."""
    oracle_mode["mode"] = "html"
    try:
        response = httpx.get(lying_app_url + "/api/oracle/attestations/0?size=1", timeout=30)
    finally:
        oracle_mode["mode"] = None
    assert response.status_code == 502, (response.status_code, response.text[:200])
    assert "detail" in response.json()


# ---------------------------------------------------------------------------------
# "Ready" for a transaction that loses the user's assets
# ---------------------------------------------------------------------------------


def test_sending_shares_to_the_lending_pool_contract_is_refused(world: World,
                                                                app_url: str) -> None:
    """spv.transfer to the LendingPool's own address plans "Ready" and the transfer
    succeeds on-chain, but the pool never credits a plain transfer (it keeps its own
    accounting, `total_collateral`, and has no sweep): the shares are lost for good.
    The registry lets the pool hold shares, so only the app can stop it. Expected: the
    plan refuses (or at least requires the collateral form) when `to` is one of the
    suite's own contracts (pool, vault, perp market, token)."""
    alice = world.people["alice"]
    target = pool.market(world.client, world.pool_number).address
    answer = plan(app_url, "spv.transfer", account=alice, spv=world.spv_id, to=target,
                  shares="1").json()
    assert answer["refusal"], f"planned as ready: {answer['what']}"
    assert answer["txs"] == []


# ---------------------------------------------------------------------------------
# The wallet code: wrong chain, account switched
# ---------------------------------------------------------------------------------


def test_nothing_is_sent_while_the_wallet_is_on_another_chain(
        context: BrowserContext, world: World, app_url: str) -> None:
    """The wallet connected on the app's chain, then the user switched it to another
    network (chain 1 here). wallet.js checks the chain only in connect(): review() and
    signAndSend() call eth_estimateGas and eth_sendTransaction without asking
    eth_chainId, so the plan's calldata is signed for whatever chain the wallet is on
    (an approval or a transfer to the same address on mainnet). Expected: before the
    first eth_sendTransaction the page checks eth_chainId and switches
    (wallet_switchEthereumChain) or refuses; nothing is sent on another chain."""
    page = open_as(context, world, app_url, "dave", "dave", "/lend", chain_id=1)
    assert "Ready" in review(page, "pool-supply-1", amount="1")
    page.locator("#pool-supply-1 .review button", has_text="Sign and send").click()
    settle(page, "pool-supply-1")
    sent = wallet_log(page, "eth_sendTransaction")
    assert sent == [], f"sent while the wallet was on chain 1: {sent[:1]}"


def test_the_page_follows_the_wallets_account_not_a_stale_cookie(
        context: BrowserContext, world: World, app_url: str) -> None:
    """The `account` cookie outlives the wallet's state: open the app after switching
    the wallet to another account while no tab was open (no accountsChanged event) and
    the page renders the old account's portfolio and plans for it ("Ready: claim ...
    for alice") while the wallet holds bob; signing then asks the wallet to send from
    an account it does not hold. wallet.js never compares the cookie with eth_accounts
    on load. Expected: on load the page asks eth_accounts and follows the wallet (or
    says they differ) before planning anything."""
    bob = world.people["bob"]
    page = open_as(context, world, app_url, "alice", bob, "/")
    page.wait_for_timeout(1500)  # room for a page that reconciles on load
    page.wait_for_load_state()
    shown = page.locator("#account").get_attribute("title")
    if shown == bob:
        return
    text = review(page, "claim-1")
    assert "Ready" not in text, (
        f"the page plans for {shown} while the wallet holds {bob}: {text[:120]}")


# ---------------------------------------------------------------------------------
# The proof check: what "Verified" vouches for
# ---------------------------------------------------------------------------------


def test_verified_does_not_vouch_for_what_the_node_says_about_the_entry(
        context: BrowserContext, world: World, lying_app_url: str,
        oracle_mode: dict[str, str | None]) -> None:
    """A lying oracle node lists entry i as a "checkpoint" signed by two addresses of its
    choosing while serving the real leaf and proof: the row shows the node's kind and
    signers and the button says "Verified: entry i is in the log ...". proof.js proves
    the leaf bytes but never compares them with the row: the leaf is JSON holding the
    entry's own kind, report and signers. Expected: the page shows what the verified
    leaf says, or refuses ("NOT verified") when the row disagrees with it."""
    oracle_mode["mode"] = "lie"
    try:
        page = open_as(context, world, lying_app_url, "bob", "bob", "/oracle")
        first = page.locator("button[data-verify]").first
        index = first.get_attribute("data-index")
        first.click()
        verdict = page.locator(f"#proof-{index}")
        expect(verdict).to_contain_text("erified", timeout=TIMEOUT_MS)
        row = page.locator("tr", has=page.locator(f"#proof-{index}")).inner_text()
    finally:
        oracle_mode["mode"] = None
    verified = verdict.inner_text().startswith("Verified")
    fake = FAKE_SIGNERS[0][:6]
    assert not (verified and ("checkpoint" in row or fake in row)), (
        f"the page says Verified beside the node's unverified claims: {row!r}")


def test_a_wallet_on_another_chain_is_not_the_source_of_a_verified_checkpoint(
        context: BrowserContext, world: World, app_url: str) -> None:
    """proof.js reads OracleHub.checkpoint() with eth_call through whatever chain the
    wallet is on (here it says chain 1) and reports "Verified ... read through your
    wallet's node": on another chain the hub's address is someone else's contract, which
    can return any (size, root). Expected: check eth_chainId against the app's chain
    first, and say the checkpoint could not be read on the wallet's chain otherwise."""
    page = open_as(context, world, app_url, "bob", "bob", "/oracle", chain_id=1)
    first = page.locator("button[data-verify]").first
    index = first.get_attribute("data-index")
    first.click()
    verdict = page.locator(f"#proof-{index}")
    expect(verdict).to_contain_text("erified", timeout=TIMEOUT_MS)
    text = verdict.inner_text()
    assert not (text.startswith("Verified") and "your wallet's node" in text), text


# ---------------------------------------------------------------------------------
# The RPC budget (last: it adds perp markets to the shared world)
# ---------------------------------------------------------------------------------


def test_the_trade_page_stays_within_its_budget_with_more_markets(world: World,
                                                                  app_url: str) -> None:
    """The design says a page costs at most 3 JSON-RPC calls whatever the number of
    markets, but the connected trade page makes one `eth_getLogs` per perp market
    (Reader._executed in app/views.py, from block 0 each time) on top of the lens call:
    with three markets a connected /trade makes 4+ calls, growing with every market and
    scanning the whole chain history each time. Expected: <= 3 calls (one log query
    for all markets, or the executed orders from the lens)."""
    c, platform = world.client, world.people["platform"]
    decimals = int(c.erc20(c.deployed.income_token).decimals())
    for name in ("REVIEW-A/USD/GPUh", "REVIEW-B/USD/GPUh"):
        # one market per (asset, feed): each new market gets a feed of its own
        world.send(oracle.plan_add_feed(c, platform, name, f"{name} (review)", "0.10", "50",
                                        INDEX_MAX_MOVE_BPS, 2 * DAY), "platform")
        receipts = world.send(perp.plan_create(c, platform, name,
                                               perp.risk_params(decimals)), "platform")
        number, _address = perp.created(c, receipts[-1])
        world.send(perp.plan_setup(c, platform, number), "platform")
    response = httpx.get(app_url + "/trade", cookies={"account": world.people["alice"]},
                         timeout=30)
    assert response.status_code == 200
    calls = int(response.headers["X-RPC-Calls"])
    assert calls <= 3, response.headers["X-RPC-Methods"]
