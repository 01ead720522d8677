"""The browser harness end to end: a test-only page served over real HTTP on 127.0.0.1,
headless chromium, the test wallet talking to a real anvil. The page connects, sends 1 wei
to another dev account and signs EIP-712 typed data; the chain, the signature, the wallet
log, axe and the screenshot are checked from the test process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.sync_api import BrowserContext, Page, expect

from app.serve import serve_asgi
from gpushares.devnode import AnvilNode, dev_key
from tests.browser.harness import (
    assert_accessible,
    page_wallet_log,
    reject_requests,
    shot,
    switch_account,
    wallet_log,
    wallet_page,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ALICE = Account.from_key(dev_key(0)).address
BOB = Account.from_key(dev_key(1)).address
CAROL = Account.from_key(dev_key(2)).address


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilNode]:
    with AnvilNode(accounts=3) as anvil:
        yield anvil


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The test page, served by uvicorn on 127.0.0.1 (a real HTTP server, as the app is)."""
    app = FastAPI()

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return (FIXTURES / "harness.html").read_text()

    with serve_asgi(app) as url:
        yield url


def rpc(node: AnvilNode, method: str, *params: Any) -> Any:
    body = httpx.post(node.url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                      "params": list(params)}).json()
    assert "error" not in body, body
    return body["result"]


def balance(node: AnvilNode, address: str) -> int:
    return int(rpc(node, "eth_getBalance", address, "latest"), 16)


def nonce(node: AnvilNode, address: str) -> int:
    return int(rpc(node, "eth_getTransactionCount", address, "latest"), 16)


def open_page(context: BrowserContext, node: AnvilNode, site: str, account: str,
              to: str, **kwargs: Any) -> Page:
    page = wallet_page(context, node.url, account, **kwargs)
    page.goto(f"{site}/?to={to}")
    expect(page.locator("#wallet")).to_have_text("present")
    return page


def test_connect_send_and_sign(context: BrowserContext, node: AnvilNode, site: str) -> None:
    page = open_page(context, node, site, ALICE, BOB, connected=False)
    # Not connected yet: the page only asked which accounts it may see, and saw none.
    expect(page.locator("#account")).to_have_text("not connected")
    assert [e["method"] for e in wallet_log(page)] == ["eth_accounts"]
    assert wallet_log(page)[0]["result"] == []
    assert_accessible(page)

    bob_before = balance(node, BOB)
    page.get_by_role("button", name="Connect, send and sign").click()
    expect(page.locator("#status")).to_have_text("done", timeout=15_000)

    assert balance(node, BOB) == bob_before + 1
    tx = wallet_log(page, "eth_sendTransaction")
    assert len(tx) == 1 and tx[0]["params"][0]["value"] == "0x1"
    mined = rpc(node, "eth_getTransactionByHash", tx[0]["result"])
    assert (mined["from"].lower(), mined["to"].lower()) == (ALICE.lower(), BOB.lower())
    expect(page.locator("#tx")).to_have_text(f"{tx[0]['result']} status 0x1")

    (signed,) = wallet_log(page, "eth_signTypedData_v4")
    signature = page.locator("#signature").inner_text()
    assert signed["result"] == signature
    typed = json.loads(signed["params"][1])
    assert typed["message"] == {"from": ALICE, "text": "hello from the browser", "nonce": "7"}
    assert Account.recover_message(encode_typed_data(full_message=typed),
                                   signature=signature) == ALICE

    methods = [e["method"] for e in wallet_log(page)]
    assert methods[:4] == ["eth_accounts", "eth_requestAccounts", "wallet_switchEthereumChain",
                           "eth_sendTransaction"]
    assert set(methods[4:-1]) == {"eth_getTransactionReceipt"}
    assert methods[-1] == "eth_signTypedData_v4"
    assert all("error" not in e for e in wallet_log(page))
    assert page_wallet_log(page) == wallet_log(page)

    assert_accessible(page)
    path = shot(page, "harness-done")
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Connected stays connected after a reload, as a site permission would; the reloaded
    # document has a log of its own, the test's log goes on.
    page.reload()
    expect(page.locator("#account")).to_have_text(ALICE)
    assert page_wallet_log(page)[0]["result"] == [ALICE]
    assert wallet_log(page)[-1]["method"] == "eth_accounts"


def test_rejected_transaction_sends_nothing(context: BrowserContext, node: AnvilNode,
                                            site: str) -> None:
    page = open_page(context, node, site, ALICE, BOB)
    expect(page.locator("#account")).to_have_text(ALICE)
    reject_requests(page, "eth_sendTransaction")
    bob_before, alice_nonce = balance(node, BOB), nonce(node, ALICE)

    page.get_by_role("button", name="Connect, send and sign").click()
    expect(page.locator("#status")).to_have_text(
        "refused: User rejected the request. (code 4001)")

    (refused,) = wallet_log(page, "eth_sendTransaction")
    assert refused["error"]["code"] == 4001
    assert not wallet_log(page, "eth_signTypedData_v4")
    assert (balance(node, BOB), nonce(node, ALICE)) == (bob_before, alice_nonce)


def test_switched_account_sends_from_the_new_one(context: BrowserContext, node: AnvilNode,
                                                 site: str) -> None:
    page = open_page(context, node, site, ALICE, BOB)
    expect(page.locator("#account")).to_have_text(ALICE)
    switch_account(page, CAROL)
    expect(page.locator("#account")).to_have_text(CAROL)  # the page's accountsChanged
    page.reload()
    expect(page.locator("#account")).to_have_text(CAROL)

    carol_nonce = nonce(node, CAROL)
    page.get_by_role("button", name="Connect, send and sign").click()
    expect(page.locator("#status")).to_have_text("done", timeout=15_000)
    assert nonce(node, CAROL) == carol_nonce + 1
    (signed,) = wallet_log(page, "eth_signTypedData_v4")
    assert Account.recover_message(encode_typed_data(full_message=json.loads(signed["params"][1])),
                                   signature=signed["result"]) == CAROL
