"""Fixtures for the integration tests: the operator scripts against a real anvil.

One anvil per test module (`node`, its clock starting where the shipped data is), one
deployments folder per module, the scripts run as `ape run ...` with the arguments an
operator types (`ape`: inside the test process, where ape loads once per worker, see
`gpushares.aperun`; `ape.subprocess(...)` for the smoke tests that run a real `ape`
process), and a web3 view of the chain (`chain`) to check what they did without going
through the scripts.

Each module is one xdist group (`xdist_group("chain-...")`): its tests build on one
another's state on the module's node, so they share a worker; different modules, each
with its own node, run in parallel once `ape_compiled` has compiled .build/ once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract

from gpushares import processes, timeline
from gpushares.aperun import run_ape
from gpushares.devnode import PROJECT_ROOT, AnvilNode
from tests.conftest import APE, venv_env

NETWORK = "ethereum:local:foundry"
# An `ape run` takes ~1.7 s; anything near this limit is a hang, not a slow machine.
APE_TIMEOUT = 180

TX_HASH = re.compile(r"\b0x[0-9a-fA-F]{64}\b")


def child_env(node: AnvilNode | None = None, deployments_dir: Path | None = None) -> dict[str, str]:
    """Environment of an `ape` child process that should use `node` and `deployments_dir`."""
    # node.env() puts anvil on PATH too; venv_env() the venv's bin first.
    env = venv_env(node.env() if node is not None else None)
    if deployments_dir is not None:
        env["GPU_SHARES_DEPLOYMENTS_DIR"] = str(deployments_dir)
    return env


@dataclass(frozen=True)
class ApeResult:
    """What one `ape` command did: its exit code and its stdout + stderr."""

    args: tuple[str, ...]
    returncode: int
    output: str

    def __str__(self) -> str:
        return f"$ ape run {' '.join(self.args)}\n(exit {self.returncode})\n{self.output}"


class ApeRunner:
    """Runs `ape run SCRIPT ...` against one node with one deployments folder."""

    def __init__(self, node: AnvilNode, deployments_dir: Path) -> None:
        self.node = node
        self.deployments_dir = deployments_dir
        self.env = child_env(node, deployments_dir)

    def __call__(self, *args: str) -> ApeResult:
        """`ape run ARGS --network ethereum:local:foundry`, in this process (same parsing,
        connection, script and exit code as the shell command); never raises on failure."""
        done = run_ape(["run", *args, "--network", NETWORK], self.env)
        return ApeResult(tuple(args), done.returncode, done.output)

    def subprocess(self, *args: str) -> ApeResult:
        """The same command as a real `ape` process, as an operator's shell runs it."""
        done = processes.run([APE, "run", *args, "--network", NETWORK], cwd=PROJECT_ROOT,
                             env=self.env, timeout=APE_TIMEOUT)
        return ApeResult(tuple(args), done.returncode, done.stdout + done.stderr)


class Chain:
    """Reads the chain through web3 and the compiled ABIs, independently of the scripts."""

    def __init__(self, url: str, abis: dict[str, list[dict[str, Any]]]) -> None:
        self.web3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
        self.abis = abis

    def contract(self, name: str, address: str) -> Contract:
        """Contract `name` (SPVFactory, GPUShareToken, MockStablecoin) at `address`."""
        return self.web3.eth.contract(
            address=Web3.to_checksum_address(address), abi=self.abis[name]
        )

    def has_code(self, address: str) -> bool:
        """Whether a contract is deployed at `address`."""
        return len(self.web3.eth.get_code(Web3.to_checksum_address(address))) > 0

    @property
    def block_number(self) -> int:
        return self.web3.eth.block_number


@pytest.fixture(scope="session")
def abis(ape_compiled: Path) -> dict[str, list[dict[str, Any]]]:
    """The contracts' ABIs, from the manifest of the one `ape compile` (`ape_compiled`)."""
    manifest = json.loads(ape_compiled.read_text(encoding="utf-8"))
    return {name: kind["abi"] for name, kind in manifest["contractTypes"].items()}


@pytest.fixture(scope="module")
def genesis() -> int:
    """Genesis time of the module's chain: the hour after the first shipped snapshot
    (`gpushares.timeline`). A module whose story starts later in the data overrides it."""
    return timeline.genesis()


@pytest.fixture(scope="module")
def node(genesis: int) -> Iterator[AnvilNode]:
    """A fresh anvil on a free 127.0.0.1 port, stopped after the module. Its clock starts
    at `genesis`, in the shipped data's days, whatever today's date is."""
    with AnvilNode(genesis=genesis) as anvil:
        yield anvil


@pytest.fixture(scope="module")
def deployments_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's deployments folder (GPU_SHARES_DEPLOYMENTS_DIR of every command)."""
    return tmp_path_factory.mktemp("deployments")


@pytest.fixture(scope="module")
def ape(abis: dict[str, Any], node: AnvilNode, deployments_dir: Path) -> ApeRunner:
    """Run `ape run ...` against this module's node; returns an `ApeResult`."""
    return ApeRunner(node, deployments_dir)


@pytest.fixture(scope="module")
def chain(abis: dict[str, list[dict[str, Any]]], node: AnvilNode) -> Chain:
    """web3 view of this module's node."""
    return Chain(node.url, abis)
