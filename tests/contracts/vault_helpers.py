"""A subscription-vault world for the contract tests (issue 20): the compliance registry,
an SPV share token with GPUs, the mock stablecoin, the OracleHub with the SPV's NAV feed,
and the token's ERC-7540 `SubscriptionVault` opened through the factory and wired as
production wires it (the token's OPERATOR_ROLE, an eligible-holder record and the
custodian flag)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import boa
from eth_utils import keccak

from gpushares.client import suite
from tests.contracts import deployers
from tests.contracts.conftest import create_token
from tests.contracts.helpers import FAR_FUTURE, OPERATOR_ROLE, US, gpu, make_lei, register
from tests.contracts.oracle_helpers import addresses, make_signers, publish_price

USDC = 10**6
SHARE = 10**18
NAV_FEED_ID = keccak(text="NAV/VAULT/USD")
NAV_15 = 15 * 10**8  # 15 USD a share, 8 decimals
HEARTBEAT = 86_400
NOTICE = 7 * 86_400
FEE_BPS = 50  # 0.5 %
CANCEL_AFTER = 14 * 86_400
GPUS = 4  # 1,000 shares each: 4,000 shares of backing


@dataclass
class VaultWorld:
    registry: object
    token: object
    stable: object
    hub: object
    feed: object
    vault: object
    factory: object
    operator: str
    oracle_admin: str
    compliance_admin: str
    treasury: str
    signers: list = field(default_factory=list)
    observed: int = 0

    def publish_nav(self, nav: int) -> int:
        """A 2-of-3 signed NAV report through the real OracleHub path; returns its time."""
        accepted, self.observed = publish_price(self.hub, self.signers, self.oracle_admin,
                                                NAV_FEED_ID, nav, self.observed,
                                                self.hub.config_version())
        assert accepted
        return self.observed

    def fund(self, account: str, amount: int) -> None:
        """`amount` mUSDC to `account`, approved to the vault."""
        with boa.env.prank(self.stable_admin):
            self.stable.mint(account, amount)
        with boa.env.prank(account):
            self.stable.approve(self.vault.address, 2**256 - 1)

    def investor(self, label: str, *, jurisdiction: int = US, accredited: bool = True) -> str:
        who = boa.env.generate_address(label)
        register(self.registry, self.compliance_admin, who, jurisdiction=jurisdiction,
                 accredited=accredited)
        with boa.env.prank(who):
            self.token.approve(self.vault.address, 2**256 - 1)
        return who


def vault_world(registry, factory, stablecoin, admin, operator, oracle_admin,
                compliance_admin, *, label: str = "VAULT", gpus: int = GPUS,
                notice: int = NOTICE, fee_bps: int = FEE_BPS,
                cancel_after: int = CANCEL_AFTER) -> VaultWorld:
    token = create_token(factory, operator, stablecoin.address,
                         lei=make_lei(f"{label:0<18}"[:18]), name=f"{label} Shares",
                         symbol=label[:5])
    boa.env.time_travel(seconds=10)
    with boa.env.prank(operator):
        token.add_gpus([gpu(f"{label}-{i}") for i in range(gpus)])
    signers = make_signers(3, f"{label}-signer")
    hub = deployers.ORACLE_HUB.at(suite.deploy_oracle(deployers.CHAIN, oracle_admin)[1])
    with boa.env.prank(oracle_admin):
        hub.set_signers(addresses(signers), 2)
        feed = deployers.FEED_ADAPTER.at(hub.add_feed(
            NAV_FEED_ID, "NAV/VAULT/USD", 1, 10**15, 0, HEARTBEAT))
    _blueprint, factory_address = suite.deploy_subscriptions(deployers.CHAIN, admin)
    vaults = deployers.SUBSCRIPTION_VAULT_FACTORY.at(factory_address)
    treasury = boa.env.generate_address(f"{label}-treasury")
    with boa.env.prank(operator):
        address = vaults.create_vault(token.address, feed.address, treasury, notice, fee_bps,
                                      cancel_after)
    with warnings.catch_warnings():  # a blueprint's copy carries its immutables
        warnings.filterwarnings("ignore", "casted bytecode does not match")
        vault = deployers.SUBSCRIPTION_VAULT.at(address)
    with boa.env.prank(operator):
        token.grantRole(OPERATOR_ROLE, vault.address)
    with boa.env.prank(compliance_admin):
        registry.set_investor(vault.address, US, True, FAR_FUTURE)
        registry.set_custodian(vault.address, True)
    world = VaultWorld(registry=registry, token=token, stable=stablecoin, hub=hub, feed=feed,
                       vault=vault, factory=vaults, operator=operator,
                       oracle_admin=oracle_admin, compliance_admin=compliance_admin,
                       treasury=treasury, signers=signers)
    world.stable_admin = admin  # type: ignore[attr-defined]
    return world
