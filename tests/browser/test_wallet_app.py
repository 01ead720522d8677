"""The wallet app in a real browser: headless chromium, the test wallet (an EIP-1193
provider over anvil's dev accounts, so the app's own wallet code runs), against anvil with
the whole suite in the demo's state, the 2-of-3 oracle quorum publishing and the real
keeper executing orders, all on 127.0.0.1.

Every flow of the issue, end to end: connect; claim income and see the balance change; a
refused transfer shows the registry's message and sends nothing; onboard with an
attestation file (and a KYC provider signing one with its wallet, EIP-712); subscribe
and claim; supply, borrow and see the health factor before signing; commit a perp order,
see the keeper execute it, close it; verify an attestation's inclusion proof in the page
(and see a tampered proof refused). Each page is checked with axe-core (no serious or
critical violation), read-only and with a wallet, and saved under build/screenshots/.

The tests share one world with test_wallet_app_review.py (the `world` fixture, built once on one
worker) and run in file order; each flow
uses its own actor so that none depends on another's outcome.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from gpushares.appworld import World
from gpushares.client import kyc, perp, pool, spv, vault
from gpushares.client.units import fmt_units
from jurisdictions.codes import MESSAGES, Restriction
from tests.browser.harness import (
    APP_GROUP,
    TIMEOUT_MS,
    assert_accessible,
    review,
    shot,
    wallet_log,
    wallet_page,
)

# One world for every module of the wallet app (see tests/browser/conftest.py).
pytestmark = pytest.mark.xdist_group(APP_GROUP)

PAGES = {"portfolio": "/", "spv": "/spv/1", "invest": "/invest", "lend": "/lend",
         "trade": "/trade", "oracle": "/oracle"}
GRACE = 11  # a funded dev account the world leaves alone: onboarded through the KYC desk


def connected(context: BrowserContext, world: World, app_url: str, who: str,
              path: str = "/") -> Page:
    """A page of the app with the test wallet of `who` already connected (the cookie the
    app's Connect button sets, and a wallet that has granted the site its account)."""
    address = world.people[who] if who in world.people else who
    context.add_cookies([{"name": "account", "value": address, "url": app_url}])
    page = wallet_page(context, world.node.url, address)
    page.goto(app_url + path)
    return page


def sign_and_send(page: Page, form: str) -> None:
    """Press "Sign and send" in `form`'s review and wait for the page to reload with the
    result (every transaction mined)."""
    with page.expect_navigation(timeout=TIMEOUT_MS):
        page.locator(f"#{form} .review button", has_text="Sign and send").click()


def sent_transactions(page: Page) -> list[dict]:
    return wallet_log(page, "eth_sendTransaction")


# ---------------------------------------------------------------------------------
# Reading without a wallet; accessibility; the page budget
# ---------------------------------------------------------------------------------


def test_every_page_reads_without_a_wallet(context: BrowserContext, world: World,
                                           app_url: str) -> None:
    page = context.new_page()  # no window.ethereum at all
    for name, path in PAGES.items():
        response = page.goto(app_url + path)
        assert response is not None and response.ok, (path, response and response.status)
        expect(page.locator("#connect")).to_be_visible()
        expect(page.locator("h1")).to_be_visible()
        assert_accessible(page)
        shot(page, f"app-{name}-read-only")
    page.goto(app_url + "/spv/1")
    expect(page.locator("[data-field=nav]")).to_contain_text("USD")
    expect(page.locator("table").nth(0)).to_contain_text("H100-SXM5-80GB")
    page.goto(app_url + "/")
    page.locator("#connect").click()
    expect(page.locator("#wallet-status")).to_contain_text("No browser wallet found")


def test_every_page_with_a_wallet_is_accessible_and_within_its_rpc_budget(
        context: BrowserContext, world: World, app_url: str) -> None:
    page = connected(context, world, app_url, "bob")
    for name, path in PAGES.items():
        page.goto(app_url + path)
        expect(page.locator("#account")).to_contain_text(world.people["bob"][:6])
        assert_accessible(page)
        shot(page, f"app-{name}")
        response = httpx.get(app_url + path, cookies={"account": world.people["bob"]})
        calls = int(response.headers["X-RPC-Calls"])
        assert 1 <= calls <= 3, (path, response.headers["X-RPC-Methods"])
    assert sent_transactions(page) == []


# ---------------------------------------------------------------------------------
# Connect
# ---------------------------------------------------------------------------------


def test_connect_asks_the_wallet_and_shows_the_account(context: BrowserContext, world: World,
                                                        app_url: str) -> None:
    alice = world.people["alice"]
    page = wallet_page(context, world.node.url, alice, connected=False)
    page.goto(app_url + "/")
    expect(page.locator("#connect")).to_be_visible()
    with page.expect_navigation(timeout=TIMEOUT_MS):
        page.locator("#connect").click()
    expect(page.locator("#account")).to_have_attribute("title", alice)
    expect(page.locator("#holding-1 [data-field=shares]")).to_have_text(
        fmt_units(spv.holding(world.client, 1, alice).shares, 18))
    methods = [e["method"] for e in wallet_log(page)]
    assert "eth_requestAccounts" in methods and "eth_sendTransaction" not in methods
    page.locator("#disconnect").click()
    expect(page.locator("#connect")).to_be_visible()


# ---------------------------------------------------------------------------------
# Portfolio: claim, a refused transfer, onboarding
# ---------------------------------------------------------------------------------


def test_claim_income_and_see_the_balance_change(context: BrowserContext, world: World,
                                                 app_url: str) -> None:
    alice = world.people["alice"]
    before = spv.holding(world.client, 1, alice)
    assert before.claimable > 0, "the world leaves Alice income to claim"
    page = connected(context, world, app_url, "alice")
    expect(page.locator("#holding-1 [data-field=claimable]")).to_have_text(
        before.money(before.claimable))
    text = review(page, "claim-1")
    assert "Ready" in text and "claim" in text.lower()
    sign_and_send(page, "claim-1")
    after = spv.holding(world.client, 1, alice)
    assert after.claimable == 0
    assert after.income_balance == before.income_balance + before.claimable
    expect(page.locator("#holding-1 [data-field=claimable]")).to_have_text(after.money(0))
    expect(page.locator("[data-field=income-balance]")).to_have_text(after.money_held())
    assert len(sent_transactions(page)) == 1
    shot(page, "flow-claimed")


def test_a_refused_transfer_shows_the_registry_message_and_sends_nothing(
        context: BrowserContext, world: World, app_url: str) -> None:
    alice, carol = world.people["alice"], world.people["carol"]
    shares_before = spv.holding(world.client, 1, alice).shares
    page = connected(context, world, app_url, "alice")
    text = review(page, "transfer-1", to=carol, shares="100")
    assert "Refused, nothing sent" in text
    assert MESSAGES[Restriction.RECEIVER_JURISDICTION_BLOCKED] in text
    assert f"restriction code {int(Restriction.RECEIVER_JURISDICTION_BLOCKED)}" in text
    assert "Korea" in text  # the law behind it, from the rules data
    expect(page.locator("#transfer-1 .review button")).to_have_count(0)
    shot(page, "flow-transfer-refused")
    assert sent_transactions(page) == []
    assert spv.holding(world.client, 1, alice).shares == shares_before
    assert spv.holding(world.client, 1, carol).shares == 0


def test_an_allowed_transfer_goes_through(context: BrowserContext, world: World,
                                          app_url: str) -> None:
    alice, dmytro = world.people["alice"], world.people["dmytro"]
    before = spv.holding(world.client, 1, dmytro).shares
    page = connected(context, world, app_url, "alice")
    assert "Ready" in review(page, "transfer-1", to=dmytro, shares="10")
    sign_and_send(page, "transfer-1")
    assert spv.holding(world.client, 1, dmytro).shares == before + 10 * 10**18
    assert [tx["params"][0]["from"].lower() for tx in sent_transactions(page)] == \
        [alice.lower()]


def test_bad_input_is_explained_and_changes_nothing(context: BrowserContext, world: World,
                                                    app_url: str) -> None:
    page = connected(context, world, app_url, "alice")
    text = review(page, "transfer-1", to="0x1234", shares="1")
    assert "Cannot do that" in text and "to" in text
    text = review(page, "transfer-1", to=world.people["bob"], shares="1.0000000000000000001")
    assert "Cannot do that" in text and "shares" in text
    assert sent_transactions(page) == []


def test_onboard_with_an_attestation_file(context: BrowserContext, world: World,
                                          app_url: str) -> None:
    frank = world.people["frank"]
    assert not kyc.record(world.client, frank).registered
    page = connected(context, world, app_url, "frank")
    expect(page.locator("[data-field=record]")).to_contain_text("no eligibility record")
    expect(page.locator("#holding-1 [data-field=eligibility]")).to_contain_text("no")
    page.locator("#onboard input[type=file]").set_input_files(str(world.frank_attestation))
    page.locator("#onboard button[type=submit]").click()
    box = page.locator("#onboard .review")
    expect(box).to_contain_text("Ready", timeout=TIMEOUT_MS)
    sign_and_send(page, "onboard")
    assert kyc.record(world.client, frank).registered
    expect(page.locator("[data-field=record]")).to_contain_text("Registered")
    expect(page.locator("#holding-1 [data-field=eligibility]")).to_contain_text("yes")
    shot(page, "flow-onboarded")


def test_a_kyc_provider_signs_an_attestation_and_the_investor_submits_it(
        context: BrowserContext, world: World, app_url: str, tmp_path: Path) -> None:
    from eth_account import Account

    from gpushares.devnode import dev_key

    grace = Account.from_key(dev_key(GRACE)).address
    assert not kyc.record(world.client, grace).registered
    desk = connected(context, world, app_url, "platform")
    form = desk.locator("#kyc-sign")
    form.locator("[name=investor]").fill(grace)
    form.locator("[name=jurisdiction]").fill("US")
    form.locator("[name=accredited]").check()
    form.locator("button[type=submit]").click()
    expect(form.locator("#signed-attestation")).to_be_visible(timeout=TIMEOUT_MS)
    signed = json.loads(form.locator("#signed-attestation").inner_text())
    assert signed["attestation"]["investor"] == grace
    assert signed["signer"] == world.people["platform"]
    assert [e["method"] for e in wallet_log(desk, "eth_signTypedData_v4")] == \
        ["eth_signTypedData_v4"]
    assert sent_transactions(desk) == []
    shot(desk, "flow-kyc-desk")
    # The investor pastes the file the provider sent and submits it from their own wallet.
    page = connected(context, world, app_url, grace)
    page.locator("#onboard textarea").fill(json.dumps(signed))
    page.locator("#onboard button[type=submit]").click()
    expect(page.locator("#onboard .review")).to_contain_text("Ready", timeout=TIMEOUT_MS)
    sign_and_send(page, "onboard")
    record = kyc.record(world.client, grace)
    assert record.registered and record.accredited and record.jurisdiction == 840
    # The same attestation again: its nonce is used, refused in words before signing.
    page.locator("#onboard textarea").fill(json.dumps(signed))
    page.locator("#onboard button[type=submit]").click()
    expect(page.locator("#onboard .review")).to_contain_text("Refused, nothing sent",
                                                             timeout=TIMEOUT_MS)
    assert len(sent_transactions(page)) == 1


def test_a_stranger_cannot_sign_attestations_at_the_kyc_desk(
        context: BrowserContext, world: World, app_url: str) -> None:
    page = connected(context, world, app_url, "carol")
    form = page.locator("#kyc-sign")
    form.locator("[name=investor]").fill(world.people["erin"])
    form.locator("[name=jurisdiction]").fill("US")
    form.locator("button[type=submit]").click()
    expect(form.locator(".review")).to_contain_text("lacks KYC_PROVIDER_ROLE", timeout=TIMEOUT_MS)
    assert wallet_log(page, "eth_signTypedData_v4") == []


# ---------------------------------------------------------------------------------
# Invest: subscribe and claim
# ---------------------------------------------------------------------------------


def test_subscribe_then_claim_the_shares(context: BrowserContext, world: World,
                                         app_url: str) -> None:
    alice = world.people["alice"]
    shares_before = spv.holding(world.client, 1, alice).shares
    page = connected(context, world, app_url, "alice", "/invest")
    text = review(page, "subscribe-1", amount="1000")
    assert "Ready" in text
    sign_and_send(page, "subscribe-1")
    assert len(sent_transactions(page)) == 2  # the approval, then the request
    request = vault.investor(world.client, 1, alice).request
    assert request.pending_deposit == 1000 * 10**6
    expect(page.locator("[data-field=requests]")).to_contain_text("deposit pending 1,000")
    # A second request while one is pending: refused in words, nothing sent.
    assert "Refused, nothing sent" in review(page, "subscribe-1", amount="10")
    # The oracle publishes the next NAV; the operator fulfils at it.
    world.publish()
    assert world.fulfil_subscriptions()
    page.reload()
    claimable = vault.investor(world.client, 1, alice).request.claimable_deposit_shares
    assert claimable > 0
    assert "Ready" in review(page, "vault-claim-1")
    sign_and_send(page, "vault-claim-1")
    assert spv.holding(world.client, 1, alice).shares == shares_before + claimable
    expect(page.locator("[data-field=requests]")).to_contain_text("nothing pending")
    shot(page, "flow-subscribed")


def test_a_blocked_investor_is_refused_before_subscribing(
        context: BrowserContext, world: World, app_url: str) -> None:
    page = connected(context, world, app_url, "carol", "/invest")
    text = review(page, "subscribe-1", amount="100")
    assert "Refused, nothing sent" in text
    assert MESSAGES[Restriction.RECEIVER_JURISDICTION_BLOCKED] in text
    assert sent_transactions(page) == []


# ---------------------------------------------------------------------------------
# Lend and borrow
# ---------------------------------------------------------------------------------


def test_supply_then_borrow_with_the_health_factor_shown_before_signing(
        context: BrowserContext, world: World, app_url: str) -> None:
    dave, bob = world.people["dave"], world.people["bob"]
    supplied = pool.position(world.client, 1, dave).supplied_value
    page = connected(context, world, app_url, "dave", "/lend")
    assert "Ready" in review(page, "pool-supply-1", amount="1000")
    sign_and_send(page, "pool-supply-1")
    assert pool.position(world.client, 1, dave).supplied_value >= supplied + 1000 * 10**6 - 1
    # Bob borrows more against his collateral: the review shows the health factor after.
    before = pool.position(world.client, 1, bob)
    page = connected(context, world, app_url, "bob", "/lend")
    text = review(page, "pool-borrow-1", amount="500")
    match = re.search(r"Health factor after: (\d+\.\d\d)", text)
    assert match, text
    assert Decimal(match.group(1)) < Decimal(before.health_factor) / 10**18
    assert sent_transactions(page) == []  # nothing is signed before the button
    sign_and_send(page, "pool-borrow-1")
    after = pool.position(world.client, 1, bob)
    assert after.debt >= before.debt + 500 * 10**6
    shown = Decimal(page.locator("[data-field=health-factor]").inner_text().split()[0])
    assert shown == (Decimal(after.health_factor) / 10**18).quantize(Decimal("0.01"))
    assert abs(shown - Decimal(match.group(1))) <= Decimal("0.01")
    # Far beyond the max LTV: refused in words with the pool's reason, nothing sent.
    text = review(page, "pool-borrow-1", amount="1000000")
    assert "Refused, nothing sent" in text
    assert len(sent_transactions(page)) == 1
    shot(page, "flow-borrowed")


# ---------------------------------------------------------------------------------
# Trade
# ---------------------------------------------------------------------------------


def test_commit_a_perp_order_the_keeper_executes_it_then_close(
        context: BrowserContext, world: World, app_url: str) -> None:
    erin = world.people["erin"]
    page = connected(context, world, app_url, "erin", "/trade")
    expect(page.locator("[data-field=size]")).to_have_text("flat")
    page.locator("#perp-commit-1 [name=side][value=short]").check()
    text = review(page, "perp-commit-1", size="1000", margin="800", slippage="5")
    assert "Ready" in text
    sign_and_send(page, "perp-commit-1")
    expect(page.locator("[data-field=order]")).to_contain_text("order sell 1,000 GPU-hours")
    # The next oracle round, then the keeper (the real one, as `ape run keeper` runs).
    world.publish()
    assert world.keeper_pass(keeper="platform")
    page.reload()
    position = perp.position(world.client, 1, erin)
    assert position.size == -1000 * 10**18
    expect(page.locator("[data-field=size]")).to_contain_text("short 1,000")
    expect(page.locator("[data-field=liquidation]")).to_contain_text("USD")
    expect(page.locator("[data-field=order]")).to_have_text("None.")
    expect(page.locator("[data-field=executed] tbody tr")).to_have_count(1)
    shot(page, "flow-perp-open")
    # Close by an order, executed at the next round.
    assert "Ready" in review(page, "perp-close-1", slippage="5")
    sign_and_send(page, "perp-close-1")
    world.publish()
    assert world.keeper_pass(keeper="platform")
    page.reload()
    assert perp.position(world.client, 1, erin).size == 0
    expect(page.locator("[data-field=size]")).to_have_text("flat")
    expect(page.locator("[data-field=executed] tbody tr")).to_have_count(2)


# ---------------------------------------------------------------------------------
# Oracle: an inclusion proof checked in the page
# ---------------------------------------------------------------------------------


def test_verify_an_attestation_inclusion_proof_in_the_page(
        context: BrowserContext, world: World, app_url: str) -> None:
    page = connected(context, world, app_url, "bob", "/oracle")
    first = page.locator("button[data-verify]").first
    index = first.get_attribute("data-index")
    first.click()
    verdict = page.locator(f"#proof-{index}")
    expect(verdict).to_contain_text("Verified", timeout=TIMEOUT_MS)
    expect(verdict).to_contain_text("read through your wallet's node")
    calls = [e["params"][0]["data"] for e in wallet_log(page, "eth_call")]
    assert "0xc2c4c5c1" in calls  # OracleHub.checkpoint(), read through the wallet
    shot(page, "flow-proof-verified")


def test_a_tampered_proof_is_not_verified(context: BrowserContext, world: World,
                                          app_url: str) -> None:
    page = connected(context, world, app_url, "bob", "/oracle")

    def tamper(route) -> None:  # noqa: ANN001 - playwright's Route
        response = route.fetch()
        body = response.json()
        body["inclusion_proof"][0] = "0x" + "11" * 32
        route.fulfill(response=response, json=body)

    page.route(re.compile(r".*/api/oracle/attestations/\d+.*"), tamper)
    first = page.locator("button[data-verify]").first
    index = first.get_attribute("data-index")
    first.click()
    expect(page.locator(f"#proof-{index}")).to_contain_text("NOT verified", timeout=TIMEOUT_MS)


# ---------------------------------------------------------------------------------
# The API's own answers
# ---------------------------------------------------------------------------------


def test_the_plan_api_explains_bad_requests(world: World, app_url: str) -> None:
    alice = world.people["alice"]
    unknown = httpx.post(f"{app_url}/api/plan/spv.steal", json={"account": alice})
    assert unknown.status_code == 404 and "spv.claim" in unknown.json()["detail"]
    missing = httpx.post(f"{app_url}/api/plan/spv.transfer", json={"account": alice, "spv": 1})
    assert missing.status_code == 422 and "to" in missing.json()["detail"]
    extra = httpx.post(f"{app_url}/api/plan/spv.claim",
                       json={"account": alice, "spv": 1, "sneaky": True})
    assert extra.status_code == 422 and "sneaky" in extra.json()["detail"]
    not_spv = httpx.post(f"{app_url}/api/plan/spv.claim", json={"account": alice, "spv": 9})
    assert not_spv.status_code == 422 and "unknown SPV id 9" in not_spv.json()["detail"]
    file = json.loads(world.frank_attestation.read_text())
    forged = httpx.post(f"{app_url}/api/kyc/attestation", json={
        "attestation": file["attestation"], "signature": "0x" + "22" * 65,
        "signer": world.people["platform"]})
    assert forged.status_code == 422 and "does not match" in forged.json()["detail"]
    submitted = httpx.post(f"{app_url}/api/plan/kyc.submit", json={
        "account": alice, "attestation": {**file, "signature": "0x" + "22" * 65}})
    assert submitted.status_code == 200
    assert "does not match" in submitted.json()["refusal"] and not submitted.json()["txs"]


def test_a_page_that_cannot_be_shown_says_why_in_the_frame(world: World, app_url: str) -> None:
    for path, status, words in (("/spv/9", 422, "unknown SPV id 9"),
                                ("/spv/one", 422, "spv_id"),
                                ("/nowhere", 404, "no page at /nowhere")):
        response = httpx.get(app_url + path)
        assert response.status_code == status, path
        assert "text/html" in response.headers["content-type"]
        assert words in response.text and 'id="connect"' in response.text
