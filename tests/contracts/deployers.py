"""Compile every contract once, at import; tests only `.deploy()` (crvUSD style).

The suite's own contracts come from `gpushares.client.boa_chain.partial`, the same
compiled objects the suite builder (`gpushares.client.suite`) deploys through `CHAIN`,
so a world built by the builder and a contract a test deploys itself are one code."""

from __future__ import annotations

from pathlib import Path

import boa

from gpushares.client.boa_chain import BoaChain, partial

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
MOCKS = Path(__file__).resolve().parent / "mocks"

boa.env.enable_fast_mode()

#: The suite builder's view of titanoboa's environment (the contract tests read no past
#: logs through it, so it records none).
CHAIN = BoaChain(record_logs=False)

SHARE_TOKEN = partial("GPUShareToken")
SPV_FACTORY = partial("SPVFactory")
COMPLIANCE_REGISTRY = partial("ComplianceRegistry")
MOCK_STABLECOIN = partial("MockStablecoin")
FEE_ON_TRANSFER_TOKEN = boa.load_partial(str(MOCKS / "FeeOnTransferToken.vy"))
NO_RETURN_TOKEN = boa.load_partial(str(MOCKS / "NoReturnToken.vy"))
FALSE_RETURN_TOKEN = boa.load_partial(str(MOCKS / "FalseReturnToken.vy"))
REENTRANT_TOKEN = boa.load_partial(str(MOCKS / "ReentrantToken.vy"))
ORACLE_HUB = partial("OracleHub")
FEED_ADAPTER = partial("FeedAdapter")
LENDING_POOL = partial("LendingPool")
LENDING_POOL_FACTORY = partial("LendingPoolFactory")
KINKED_RATE_MODEL = partial("KinkedRateModel")
TEST_STABLE = boa.load_partial(str(MOCKS / "TestStable.vy"))
HOOK_TOKEN = boa.load_partial(str(MOCKS / "HookToken.vy"))
PERP_MARKET = partial("PerpMarket")
PERP_LENS = partial("PerpLens")
PERP_MARKET_FACTORY = partial("PerpMarketFactory")
SUBSCRIPTION_VAULT = partial("SubscriptionVault")
SUBSCRIPTION_VAULT_FACTORY = partial("SubscriptionVaultFactory")
