"""Fixtures of the browser tests: one headless chromium per xdist worker (`browser`), a
fresh isolated context per test (`context`), and a screenshot of every open page when a
test fails (build/screenshots/failed-<test>.png). The wallet, accessibility, screenshot and
server helpers are in tests/browser/harness.py.

Each module is one xdist group (`browser-<module>`, added here unless the module names its
own), so a module's tests share a worker and whatever module-scoped anvil and server they
start; the modules spread over the workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from app.serve import serving
from app.server import Settings
from gpushares.appworld import World, running_world
from tests.browser.harness import launch_chromium, screenshot_open_pages

HERE = Path(__file__).resolve().parent
# The session's browser, for the failure screenshots of tests that did not ask for it.
_BROWSER: list[Browser] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives headless chromium (tests/browser); needs `make setup`"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # tryfirst: before xdist's loadgroup hook reads the xdist_group marks.
    for item in items:
        if HERE not in item.path.parents:
            continue
        item.add_marker(pytest.mark.browser)
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(f"browser-{item.path.stem}"))


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian chromium (/usr/bin/chromium) with a new empty profile, closed after
    the session; one per xdist worker."""
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        _BROWSER.append(chromium)
        try:
            yield chromium
        finally:
            _BROWSER.remove(chromium)
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context (its own cookies and storage), closed after the test."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed or report.when == "teardown" or not _BROWSER:
        return
    if HERE not in item.path.parents:
        return
    paths = screenshot_open_pages(_BROWSER[0], f"failed-{item.name}")
    for path in paths:
        report.sections.append(("browser screenshot", str(path)))


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The demo's world (anvil, the suite, the oracle quorum), built once per worker for
    every module of the wallet app (they share the xdist group `APP_GROUP`, so one worker
    runs them all, in file order)."""
    with running_world(tmp_path_factory.mktemp("app-world")) as built:
        yield built


@pytest.fixture(scope="session")
def app_url(world: World) -> Iterator[str]:
    """The wallet app over `world`, with node-1 as its oracle node; yields its URL."""
    settings = Settings(rpc_url=world.node.url, deployments=world.deployments_path,
                        oracle_url=world.cluster.url(world.cluster.names[0]))
    with serving(settings) as url:
        yield url
