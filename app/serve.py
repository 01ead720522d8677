"""Run the app on 127.0.0.1: in this process (a thread, for the tests and the benchmark)
or in the foreground (`make app`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from app.server import Settings, create_app
from gpushares.devnode import free_port


@contextmanager
def serving(settings: Settings, *, port: int | None = None) -> Iterator[str]:
    """The app served from a thread on 127.0.0.1 until the block ends; yields its URL."""
    port = port or free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="wallet-app", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the wallet app did not start on {url}")
        time.sleep(0.05)
    try:
        httpx.get(f"{url}/static/app.css", timeout=5).raise_for_status()
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run_foreground(settings: Settings, port: int) -> None:
    """Serve until Ctrl-C (make app)."""
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
