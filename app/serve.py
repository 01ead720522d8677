"""Run the app on 127.0.0.1: in this process (a thread, for the tests and the benchmark)
or in the foreground (`make app`)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from app.server import Settings, create_app


@contextmanager
def serve_asgi(app: Any, *, timeout: float = 10.0) -> Iterator[str]:
    """Serve `app` (the wallet app, any ASGI app) with uvicorn on a free 127.0.0.1 port in
    a thread; yields its base URL (`http://127.0.0.1:PORT`) and stops the server after the
    block. The socket is bound here and handed to uvicorn, so no other process can take
    the port in between."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The wallet app over `settings`, served from a thread; yields its URL."""
    with serve_asgi(create_app(settings), timeout=30) as url:
        yield url


def run_foreground(settings: Settings, port: int) -> None:
    """Serve until Ctrl-C (make app)."""
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
