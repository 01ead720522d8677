"""The real-browser harness: Debian's chromium driven by playwright, a test-only wallet, an
accessibility check, screenshots, and a real HTTP server for the app under test.

Fixtures (tests/browser/conftest.py): `browser` (one headless chromium per xdist worker)
and `context` (a fresh, isolated browser context per test). The functions here take a
context or a page:

- `wallet_page(context, rpc_url, account)` -> a new `Page` whose `window.ethereum` is the
  test wallet of provider.js: it answers the account and chain itself and sends the rest to
  anvil at `rpc_url` (anvil signs for its unlocked dev accounts). Every request the page
  makes is logged; `wallet_log(page)` returns them (across reloads), `switch_account(page,
  address)` switches as a user would, `reject_requests(page, method, ...)` makes the user
  say no to those methods.
- `axe_check(page)` -> axe-core's violations; `assert_accessible(page)` fails listing the
  serious and critical ones readably.
- `shot(page, name)` -> build/screenshots/<name>.png. A failing test's open pages are
  saved as build/screenshots/failed-<test>.png by the conftest.
- a real HTTP server for the page under test: `app.serve.serve_asgi(app)`, any ASGI app
  served by uvicorn on 127.0.0.1 in a thread for as long as the `with` block.

Only 127.0.0.1 is reached: the pages come from a local server, the wallet talks to a local
anvil, and chromium runs with its background networking switched off.
"""

from __future__ import annotations

import json
import re
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect

from gpushares.devnode import CHAIN_ID, PROJECT_ROOT

# Debian's chromium, installed by `make setup` (never `playwright install`: no CDN here).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
PROVIDER_JS = Path(__file__).with_name("provider.js")
AXE_JS = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = PROJECT_ROOT / "build" / "screenshots"
#: The xdist group of the wallet app's modules: one worker builds its world (the
#: `world` fixture) once for all of them.
APP_GROUP = "browser-wallet-app"
#: How long a test waits for the app's answer (a plan, a mined transaction, a proof).
TIMEOUT_MS = 30_000
# axe impacts that fail `assert_accessible` by default
BLOCKING_IMPACTS = ("serious", "critical")


def launch_chromium(playwright: Playwright) -> Browser:
    """Headless Debian chromium. Playwright's `launch` gives it a new, empty user-data-dir
    (a temporary profile, deleted when the browser closes), so nothing carries over from
    one session to the next; each `new_context()` is then isolated (cookies, storage)."""
    if not CHROMIUM.is_file():
        raise RuntimeError(
            f"{CHROMIUM} is missing: run `make setup` (it installs Debian's chromium), or "
            "`apt-get install --no-install-recommends chromium` as root"
        )
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        chromium_sandbox=False,
        args=list(CHROMIUM_ARGS),
    )


# --- the test wallet ---------------------------------------------------------------------


@dataclass
class _Wallet:
    # a weak reference: _WALLETS keeps the wallet only while its page lives
    page_ref: weakref.ref[Page]
    config: dict[str, Any]
    log: list[dict[str, Any]] = field(default_factory=list)

    def update(self, **changes: Any) -> None:
        """Change the wallet's configuration for the open document and every later one."""
        page = self.page_ref()
        assert page is not None, "the wallet's page is gone"
        self.config.update(changes)
        patch = json.dumps(changes)
        # Init scripts run in the order they were added, all before the page's own
        # scripts: this one after provider.js, on every later navigation.
        page.add_init_script(script=f"Object.assign(window.__walletConfig, {patch});")
        page.evaluate("p => window.__walletConfig && Object.assign(window.__walletConfig, p)",
                      changes)


_WALLETS: weakref.WeakKeyDictionary[Page, _Wallet] = weakref.WeakKeyDictionary()


def _wallet(page: Page) -> _Wallet:
    try:
        return _WALLETS[page]
    except KeyError:
        raise ValueError("this page has no test wallet: open it with wallet_page()") from None


def wallet_page(
    context: BrowserContext,
    rpc_url: str,
    account: str,
    *,
    chain_id: int = CHAIN_ID,
    connected: bool = True,
) -> Page:
    """A new page of `context` with the test wallet (provider.js) as `window.ethereum`,
    installed before the page's own scripts on every navigation (`page.goto`, reloads,
    links; not `page.set_content`, which does not navigate).

    The wallet answers `eth_requestAccounts` / `eth_accounts` with `account` (a dev account
    of the anvil at `rpc_url`), `eth_chainId` with `chain_id` and `wallet_switchEthereumChain`
    to it; it fills in `from` and sends `eth_sendTransaction`, `eth_signTypedData_v4`,
    `personal_sign` and every other method to anvil. `connected=False`: `eth_accounts` is
    empty until the page calls `eth_requestAccounts` (then it stays connected, reloads
    included, as a site permission would)."""
    page = context.new_page()
    wallet = _Wallet(weakref.ref(page), {"rpcUrl": rpc_url, "account": account, "chainId": chain_id,
                            "connected": connected, "reject": []})
    _WALLETS[page] = wallet

    def record(entry: dict[str, Any]) -> None:
        wallet.log.append(entry)
        if (entry.get("method") == "eth_requestAccounts" and "error" not in entry
                and not wallet.config["connected"]):
            wallet.config["connected"] = True
            page.add_init_script(script="window.__walletConfig.connected = true;")

    page.expose_function("__walletRecord", record)
    page.add_init_script(script=f"window.__walletConfig = {json.dumps(wallet.config)};")
    page.add_init_script(path=PROVIDER_JS)
    return page


def wallet_log(page: Page, method: str | None = None) -> list[dict[str, Any]]:
    """Every request the page made to its wallet since `wallet_page` (reloads included), in
    order, each `{method, params, result}` or `{method, params, error: {code, message}}`;
    only those of `method` if given. A request still in flight is not in it yet (see
    `page_wallet_log`)."""
    log = _wallet(page).log
    return [e for e in log if method is None or e["method"] == method]


def page_wallet_log(page: Page) -> list[dict[str, Any]]:
    """The open document's `window.__walletLog`: its requests so far, those in flight too
    (no `result` or `error` yet)."""
    return page.evaluate("() => JSON.parse(JSON.stringify(window.__walletLog || []))")


def switch_account(page: Page, address: str) -> None:
    """Switch the wallet to `address` as a user would: the page gets `accountsChanged`
    (when connected), and later documents see the new account."""
    wallet = _wallet(page)
    wallet.update(account=address)
    page.evaluate("a => window.ethereum && window.ethereum.__switchAccount"
                  " && window.ethereum.__switchAccount(a)", address)


def reject_requests(page: Page, *methods: str) -> None:
    """From now on the user rejects these methods (EIP-1193 error 4001, nothing reaches
    the node); with no method, the user accepts everything again."""
    _wallet(page).update(reject=list(methods))


# --- accessibility -----------------------------------------------------------------------


def axe_check(page: Page, *, options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run axe-core (node_modules/axe-core, pinned in package.json) on the open document;
    returns its violations (each with id, impact, help, helpUrl and nodes). A page with a
    Content-Security-Policy that forbids inline scripts needs a context made with
    `bypass_csp=True`."""
    if not AXE_JS.is_file():
        raise RuntimeError(f"{AXE_JS} is missing: run `make setup` (npm installs axe-core)")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=AXE_JS)
    return page.evaluate(
        "async (options) => (await axe.run(document, options || {})).violations", options
    )


def format_violations(violations: list[dict[str, Any]]) -> str:
    """axe violations as readable lines: rule, impact, what to do, and each element."""
    lines = []
    for v in violations:
        lines.append(f"[{v.get('impact')}] {v['id']}: {v['help']} ({v.get('helpUrl', '')})")
        for node in v.get("nodes", []):
            target = " ".join(map(str, node.get("target", [])))
            summary = " ".join(str(node.get("failureSummary", "")).split())
            lines.append(f"    {target}: {summary}")
            lines.append(f"        {node.get('html', '')[:200]}")
    return "\n".join(lines)


def assert_accessible(page: Page, impacts: tuple[str, ...] = BLOCKING_IMPACTS) -> None:
    """Fail if axe finds a violation of one of `impacts` (serious and critical by default),
    listing each rule and element."""
    found = [v for v in axe_check(page) if v.get("impact") in impacts]
    assert not found, (
        f"axe found {len(found)} {'/'.join(impacts)} accessibility violation(s) on {page.url}:\n"
        + format_violations(found)
    )


# --- screenshots -------------------------------------------------------------------------


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "page"


def shot(page: Page, name: str) -> Path:
    """Save the whole page as build/screenshots/<name>.png; returns the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{_file_name(name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def screenshot_open_pages(browser: Browser, name: str) -> list[Path]:
    """Every open page of `browser` as build/screenshots/<name>.png (then <name>-2.png, ...);
    a page that cannot be captured any more is skipped."""
    paths = []
    pages = [p for context in browser.contexts for p in context.pages if not p.is_closed()]
    for i, page in enumerate(pages):
        try:
            paths.append(shot(page, name if i == 0 else f"{name}-{i + 1}"))
        except Exception:  # noqa: BLE001 - a crashed page must not hide the test's failure
            continue
    return paths


# --- the wallet app's forms --------------------------------------------------------------


def review(page: Page, form: str, **fields: str) -> str:
    """Fill `form`'s fields, ask the app to check it; returns the review's text once the
    chain's answer is shown (ready to sign, or refused)."""
    target = page.locator(f"#{form}")
    for name, value in fields.items():
        target.locator(f"[name={name}]").fill(value)
    target.locator("button[type=submit]").click()
    box = target.locator(".review")
    expect(box).to_have_class(re.compile(r"\b(ok|refused)\b"), timeout=TIMEOUT_MS)
    return box.inner_text()
