"""Every contract's ABI, shipped so the oracle node, the client layer and the web app
need no compiler.

`python -m gpushares.abi` rewrites them from `contracts/` with the pinned vyper;
`python -m gpushares.abi --check` (run by the tests) fails if they drifted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONTRACTS = HERE.parents[1] / "contracts"
NAMES = ("ComplianceRegistry", "FeedAdapter", "GPUShareToken", "KinkedRateModel", "Lens",
         "LendingPool", "LendingPoolFactory", "MarketLens", "MockStablecoin", "OracleHub",
         "PerpLens", "PerpMarket", "PerpMarketFactory", "SPVFactory", "SubscriptionVault",
         "SubscriptionVaultFactory")
#: Where each contract's source is, under contracts/.
SOURCES = {name: f"{name}.vy" for name in NAMES} | {"MockStablecoin": "mocks/MockStablecoin.vy"}


@cache
def load(name: str) -> list[dict[str, Any]]:
    """The ABI of contract `name` (one of NAMES)."""
    if name not in NAMES:
        raise ValueError(f"no shipped ABI for {name!r}; known: {', '.join(NAMES)}")
    return json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))


def compile_abi(name: str) -> list[dict[str, Any]]:
    vyper = Path(sys.executable).with_name("vyper")
    out = subprocess.run(  # noqa: S603 - fixed argv
        [str(vyper), "-f", "abi", str(CONTRACTS / SOURCES[name])],
        cwd=CONTRACTS.parent, capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in NAMES:
        fresh = compile_abi(name)
        path = HERE / f"{name}.json"
        if check:
            if not path.is_file() or json.loads(path.read_text(encoding="utf-8")) != fresh:
                stale.append(name)
        else:
            path.write_text(json.dumps(fresh, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if stale:
        print(f"stale ABI for {', '.join(stale)}: run `python -m gpushares.abi`", file=sys.stderr)
        return 1
    return 0
