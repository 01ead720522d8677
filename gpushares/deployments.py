"""The deployments file: which contracts `scripts/deploy.py` put on which chain.

One JSON file per chain, ``deployments/<ecosystem>-<network>-<chain id>.json`` (the
folder can be moved with GPU_SHARES_DEPLOYMENTS_DIR). Scripts read addresses from it
instead of taking them on the command line, and refuse to run against a file whose
contracts are not on the chain (a local node that was restarted, say).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from gpushares.devnode import PROJECT_ROOT

Address = str


class DeploymentsError(RuntimeError):
    """The deployments file is missing or does not match the chain."""


class Deployments(BaseModel):
    """Contents of one deployments file."""

    model_config = ConfigDict(extra="forbid")

    chain_id: int
    network: str = Field(description="ape network choice, e.g. ethereum:local:foundry")
    deployed_at: datetime
    deployer: Address
    share_token_blueprint: Address
    spv_factory: Address
    compliance_registry: Address
    income_token: Address = Field(description="default stablecoin for new SPVs")
    oracle_hub: Address | None = Field(default=None, description="OracleHub (k-of-n feeds)")
    feed_adapter_blueprint: Address | None = None
    lending_pool_blueprint: Address | None = None
    lending_pool_factory: Address | None = Field(
        default=None, description="LendingPoolFactory (`ape run pool create`)"
    )
    perp_market_blueprint: Address | None = None
    perp_market_factory: Address | None = Field(
        default=None, description="PerpMarketFactory (`ape run perp create`)"
    )
    perp_lens: Address | None = Field(
        default=None, description="PerpLens (equity, liquidation price, order status of any "
        "perp market)"
    )
    lens: Address | None = Field(
        default=None, description="Lens (the app's page reads: portfolio, SPV page, vaults, "
        "oracle)"
    )
    market_lens: Address | None = Field(
        default=None, description="MarketLens (the app's page reads: lending pools, perp markets)"
    )
    subscription_vault_blueprint: Address | None = None
    subscription_vault_factory: Address | None = Field(
        default=None, description="SubscriptionVaultFactory (ERC-7540 issuance: `ape run spv "
        "subscriptions open`)"
    )
    mock_stablecoin: bool = Field(description="income_token is the local-chain mock")


def deployments_dir() -> Path:
    """Folder holding the deployments files."""
    return Path(os.environ.get("GPU_SHARES_DEPLOYMENTS_DIR", PROJECT_ROOT / "deployments"))


def deployments_path(ecosystem: str, network: str, chain_id: int) -> Path:
    """Path of the deployments file for one chain."""
    return deployments_dir() / f"{ecosystem}-{network}-{chain_id}.json"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (temp file, fsync, rename): a crash leaves the
    old file whole and no temp file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(path: Path, deployments: Deployments) -> None:
    """Write atomically, so a crash never leaves half a file."""
    payload = json.dumps(deployments.model_dump(mode="json"), indent=2, sort_keys=True)
    write_atomic(path, payload + "\n")


def load(path: Path) -> Deployments:
    """Read and validate a deployments file."""
    if not path.is_file():
        raise DeploymentsError(
            f"no deployments file at {path}: run `ape run deploy --network ...` first"
        )
    try:
        return Deployments.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DeploymentsError(f"{path} is not a valid deployments file: {exc}") from exc


def block_time(timestamp: int) -> datetime:
    """A block's unix time as the UTC datetime the deployments file records (the chain's
    clock, not this machine's: a local chain may run at its data's date)."""
    return datetime.fromtimestamp(timestamp, UTC)
