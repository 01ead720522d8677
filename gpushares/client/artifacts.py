"""Deployable bytecode of the contracts, for the backends that do not compile themselves
(web3: the benchmark, the tests on anvil, the web app's `make app`; titanoboa and ape
compile from `contracts/` on their own).

Compiled once with the pinned vyper CLI (the compiler ape and titanoboa use) and kept
in `build/artifacts-<hash>.json`, keyed by the hash of every contract source and the
compiler version: a changed source compiles again, an unchanged one never does.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

from gpushares.devnode import PROJECT_ROOT

CONTRACTS = PROJECT_ROOT / "contracts"
CACHE_DIR = PROJECT_ROOT / "build"
# ERC-5202: a blueprint is this preamble (magic 0xFE71, version 0, no data) + initcode.
ERC5202_PREAMBLE = b"\xfe\x71\x00"

#: Every deployable contract and its source file.
SOURCES = {
    "ComplianceRegistry": "ComplianceRegistry.vy",
    "FeedAdapter": "FeedAdapter.vy",
    "GPUShareToken": "GPUShareToken.vy",
    "KinkedRateModel": "KinkedRateModel.vy",
    "Lens": "Lens.vy",
    "LendingPool": "LendingPool.vy",
    "LendingPoolFactory": "LendingPoolFactory.vy",
    "MarketLens": "MarketLens.vy",
    "MockStablecoin": "mocks/MockStablecoin.vy",
    "OracleHub": "OracleHub.vy",
    "PerpLens": "PerpLens.vy",
    "PerpMarket": "PerpMarket.vy",
    "PerpMarketFactory": "PerpMarketFactory.vy",
    "SPVFactory": "SPVFactory.vy",
    "SubscriptionVault": "SubscriptionVault.vy",
    "SubscriptionVaultFactory": "SubscriptionVaultFactory.vy",
}


def _vyper() -> Path:
    return Path(sys.executable).with_name("vyper")


@cache
def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(CONTRACTS.rglob("*.vy")) + sorted(CONTRACTS.rglob("*.vyi")):
        digest.update(str(path.relative_to(CONTRACTS)).encode())
        digest.update(path.read_bytes())
    version = subprocess.run([str(_vyper()), "--version"], capture_output=True, text=True,  # noqa: S603
                             check=True).stdout.strip()
    digest.update(version.encode())
    return digest.hexdigest()[:16]


def _compile(name: str) -> str:
    out = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [str(_vyper()), "-f", "bytecode", str(CONTRACTS / SOURCES[name])],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"vyper could not compile {SOURCES[name]}:\n{out.stderr}")
    return out.stdout.strip()


@cache
def _all() -> dict[str, str]:
    path = CACHE_DIR / f"artifacts-{_fingerprint()}.json"
    if path.is_file():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    CACHE_DIR.mkdir(exist_ok=True)
    with (CACHE_DIR / "artifacts.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one compile per checkout, however many workers
        if path.is_file():
            return dict(json.loads(path.read_text(encoding="utf-8")))
        compiled = {name: _compile(name) for name in SOURCES}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(compiled, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
    return compiled


def bytecode(name: str) -> bytes:
    """The deployment bytecode (initcode) of contract `name`."""
    if name not in SOURCES:
        raise KeyError(f"no contract {name!r}; known: {', '.join(SOURCES)}")
    return bytes.fromhex(_all()[name].removeprefix("0x"))


def blueprint_initcode(name: str) -> bytes:
    """Initcode that deploys contract `name` as an ERC-5202 blueprint."""
    body = ERC5202_PREAMBLE + bytecode(name)
    # PUSH2 len, RETURNDATASIZE, DUP2, PUSH1 0x0a, RETURNDATASIZE, CODECOPY, RETURN
    return b"\x61" + len(body).to_bytes(2, "big") + bytes.fromhex("3d81600a3d39f3") + body
