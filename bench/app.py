"""The wallet app's benchmark: every page, wallet connected, warm, over loopback.

    app_page_p95_ms          the 95th percentile of page times over every page (target <= 300)
    app_rpc_calls_per_page   the most JSON-RPC calls any page made (target <= 3: the Lens
                             answers a page section in one eth_call)

Each page is fetched once to warm it, then `ROUNDS` times with the `account` cookie a
connected wallet sets (the world's borrower and trader, so every personal section
renders); the server's own count of its JSON-RPC calls comes back in `X-RPC-Calls`.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import httpx

from app.serve import serving
from app.server import Settings
from gpushares.appworld import running_world

PAGES = ("/", "/spv/1", "/invest", "/lend", "/trade", "/oracle")
ROUNDS = 40


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def measure_app(rounds: int = ROUNDS) -> dict[str, float]:
    """Build the demo's world, serve the app, time every page."""
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp, \
            running_world(Path(tmp)) as world:
        settings = Settings(rpc_url=world.node.url, deployments=world.deployments_path,
                            oracle_url=world.cluster.url(world.cluster.names[0]))
        with serving(settings) as url, httpx.Client(base_url=url, timeout=30) as http:
            http.cookies.set("account", world.people["bob"])
            times: dict[str, list[float]] = {page: [] for page in PAGES}
            calls: dict[str, int] = {}
            for page in PAGES:
                http.get(page).raise_for_status()  # warm
            for _ in range(rounds):
                for page in PAGES:
                    started = time.perf_counter()
                    response = http.get(page)
                    times[page].append(time.perf_counter() - started)
                    response.raise_for_status()
                    calls[page] = max(calls.get(page, 0), int(response.headers["X-RPC-Calls"]))
    every = [t for samples in times.values() for t in samples]
    out = {"app_page_p95_ms": round(p95(every) * 1000, 1),
           "app_rpc_calls_per_page": float(max(calls.values()))}
    for page in PAGES:
        key = page.strip("/").replace("/", "_") or "portfolio"
        out[f"app_page_{key}_p50_ms"] = round(statistics.median(times[page]) * 1000, 1)
        out[f"app_page_{key}_rpc_calls"] = float(calls[page])
    return out


if __name__ == "__main__":
    for key, value in measure_app().items():
        print(f"{key:<36}{value:>10,}")
