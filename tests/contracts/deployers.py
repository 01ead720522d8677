"""Compile every contract once, at import; tests only `.deploy()` (crvUSD style)."""

from __future__ import annotations

from pathlib import Path

import boa

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
MOCKS = Path(__file__).resolve().parent / "mocks"

boa.env.enable_fast_mode()

SHARE_TOKEN = boa.load_partial(str(CONTRACTS / "GPUShareToken.vy"))
SPV_FACTORY = boa.load_partial(str(CONTRACTS / "SPVFactory.vy"))
COMPLIANCE_REGISTRY = boa.load_partial(str(CONTRACTS / "ComplianceRegistry.vy"))
MOCK_STABLECOIN = boa.load_partial(str(CONTRACTS / "mocks" / "MockStablecoin.vy"))
FEE_ON_TRANSFER_TOKEN = boa.load_partial(str(MOCKS / "FeeOnTransferToken.vy"))
NO_RETURN_TOKEN = boa.load_partial(str(MOCKS / "NoReturnToken.vy"))
FALSE_RETURN_TOKEN = boa.load_partial(str(MOCKS / "FalseReturnToken.vy"))
REENTRANT_TOKEN = boa.load_partial(str(MOCKS / "ReentrantToken.vy"))
ORACLE_HUB = boa.load_partial(str(CONTRACTS / "OracleHub.vy"))
FEED_ADAPTER = boa.load_partial(str(CONTRACTS / "FeedAdapter.vy"))
LENDING_POOL = boa.load_partial(str(CONTRACTS / "LendingPool.vy"))
LENDING_POOL_FACTORY = boa.load_partial(str(CONTRACTS / "LendingPoolFactory.vy"))
KINKED_RATE_MODEL = boa.load_partial(str(CONTRACTS / "KinkedRateModel.vy"))
TEST_STABLE = boa.load_partial(str(MOCKS / "TestStable.vy"))
HOOK_TOKEN = boa.load_partial(str(MOCKS / "HookToken.vy"))
PERP_MARKET = boa.load_partial(str(CONTRACTS / "PerpMarket.vy"))
PERP_MARKET_FACTORY = boa.load_partial(str(CONTRACTS / "PerpMarketFactory.vy"))
