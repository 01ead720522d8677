"""A complete lending market in titanoboa for the LendingPool tests.

`build_world()` deploys the real suite: a ComplianceRegistry (TEST table), an SPV's
GPUShareToken (through SPVFactory, 8 GPUs = 8,000 shares), an OracleHub with a 2-of-3
signer set and the SPV's NAV feed (its FeedAdapter is the pool's price feed), a
KinkedRateModel, a LendingPoolFactory and one LendingPool. Prices reach the pool the
way they do in production: a signed report submitted to the hub.

Everything is in USD with 8 decimals for prices, share base units (18 decimals) for
collateral and asset units for the loan asset (6 or 18 decimals).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import boa
from eth_utils import keccak

from gpushares import reasons
from gpushares.client import suite
from tests.contracts import deployers
from tests.contracts.helpers import (
    FAR_FUTURE,
    SHARE,
    SHARES_PER_GPU,
    TEST_TABLE,
    US,
    gpu,
    make_lei,
    table_rows,
)
from tests.contracts.oracle_helpers import (
    addresses,
    make_signers,
    publish_price,
)

WAD = 10**18
PRICE = 10**8  # feed decimals: 1 USD
DEBT_SCALE = 10**24  # debt = ceil(scaled * index / DEBT_SCALE)
VIRTUAL_SHARES = 10**6
VIRTUAL_ASSETS = 1
YEAR = 31_536_000
NAV_FEED_ID = keccak(text="NAV/LSH1/USD")
MAX_UINT = 2**256 - 1
MASK128 = 2**128 - 1

RISK_ADMIN_ROLE = keccak(text="RISK_ADMIN_ROLE")
GUARDIAN_ROLE = keccak(text="GUARDIAN_ROLE")
MARKET_CREATOR_ROLE = keccak(text="MARKET_CREATOR_ROLE")

# Refusal strings (exact, as a wallet shows them).
PAUSED = reasons.POOL_PAUSED_GUARDIAN_REPAY_STILL
STALE = reasons.POOL_COLLATERAL_PRICE_STALE_OLDER
NOT_POSITIVE = reasons.POOL_COLLATERAL_PRICE_NOT_POSITIVE
ABOVE_MAX_LTV_BORROW = reasons.POOL_BORROW_PUT_LOAN_ABOVE
ABOVE_MAX_LTV_WITHDRAW = reasons.POOL_WITHDRAWAL_PUT_LOAN_ABOVE
NO_LIQUIDITY = reasons.POOL_NOT_ENOUGH_LIQUIDITY_POOL
NO_IDLE = reasons.POOL_NOT_ENOUGH_IDLE_LIQUIDITY
HEALTHY = reasons.POOL_LOAN_HEALTHY_UNDER_LIQUIDATION
NO_DEBT = reasons.POOL_NO_DEBT_REPAY
ZERO_SHARES = reasons.POOL_DEPOSIT_MINTS_ZERO_VAULT
ZERO_REDEEM = reasons.POOL_REDEMPTION_WORTH_ZERO_ASSETS
EXCEEDS_COLLATERAL = reasons.POOL_WITHDRAWAL_EXCEEDS_COLLATERAL
REPAY_ROUNDS = reasons.POOL_REPAY_AMOUNT_ROUNDS_ZERO
NO_INCOME = reasons.POOL_NO_COLLATERAL_INCOME_CLAIM
NO_RESERVES = reasons.POOL_NO_RESERVES_AVAILABLE_COLLECT
MISSING_ROLE = reasons.ACCESS_CONTROL_MISSING_ROLE


@dataclass
class World:
    """One deployed market and its actors (addresses are boa-generated EOAs)."""

    admin: str
    kyc: str
    operator: str
    oracle_admin: str
    treasury: str
    lenders: list[str]
    borrowers: list[str]
    liquidator: str
    stranger: str
    registry: object
    asset: object
    token: object
    hub: object
    feed: object
    model: object
    factory: object
    pool: object
    signers: list = field(default_factory=list)
    config_version: int = 0
    asset_decimals: int = 6
    last_observed: int = 0

    @property
    def unit(self) -> int:
        """One whole unit of the loan asset."""
        return 10**self.asset_decimals

    # ------------------------------------------------------------------ oracle

    def set_price(self, usd_8dec: int, *, observed_at: int | None = None) -> bool:
        """Publish the NAV per share through the hub (2-of-3 signed). Moves the clock
        by one second first when needed, since the hub wants strictly newer data.
        Returns False when the hub refused the move (`PriceMoveRefused`)."""
        accepted, observed = publish_price(
            self.hub, self.signers, self.oracle_admin, NAV_FEED_ID, usd_8dec,
            self.last_observed, self.config_version, observed_at,
        )
        if accepted:
            self.last_observed = observed
        return accepted

    # ------------------------------------------------------------------ actors

    def fund(self, account: str, amount: int) -> None:
        """Mint loan asset to `account` and approve the pool for everything."""
        self.asset.mint(account, amount)
        with boa.env.prank(account):
            self.asset.approve(self.pool.address, MAX_UINT)

    def give_shares(self, account: str, amount: int) -> None:
        """Mint collateral shares to an eligible `account` and approve the pool."""
        with boa.env.prank(self.operator):
            self.token.mint(account, amount)
        with boa.env.prank(account):
            self.token.approve(self.pool.address, MAX_UINT)

    def supply(self, holder: str, shares: int) -> None:
        """Mint `shares` to an eligible `holder` and post them as its own collateral."""
        self.give_shares(holder, shares)
        with boa.env.prank(holder):
            self.pool.supply_collateral(shares, holder)

    def distribute(self, amount: int) -> None:
        """The SPV operator pays `amount` of rental income to the share holders."""
        self.asset.mint(self.operator, amount)
        with boa.env.prank(self.operator):
            self.asset.approve(self.token.address, amount)
            self.token.distribute(amount)

    def agent(self, *roles: bytes, label: str = "agent") -> str:
        """A new account holding the share token's agent `roles` (granted by the SPV)."""
        account = boa.env.generate_address(label)
        with boa.env.prank(self.operator):
            for role in roles:
                self.token.grantRole(role, account)
        return account

    def register(self, *accounts: str, jurisdiction: int = US) -> None:
        with boa.env.prank(self.kyc):
            for account in accounts:
                self.registry.set_investor(account, jurisdiction, True, FAR_FUTURE)

    # ------------------------------------------------------------------ model math

    def debt_of(self, borrower: str) -> int:
        return self.pool.position(borrower)[1]

    def value(self, collateral: int, price: int) -> int:
        """Collateral value in asset units, rounded down, as the pool computes it."""
        return collateral * price * self.unit // (PRICE * SHARE)


def build_world(
    *,
    asset_decimals: int = 6,
    lltv: int = 80 * WAD // 100,
    max_ltv: int = 70 * WAD // 100,
    reserve_factor_bps: int = 1_000,
    rates: tuple[int, int, int, int] = (
        2 * WAD // 100, 10 * WAD // 100, 300 * WAD // 100, 80 * WAD // 100
    ),
    heartbeat: int = 86_400,
    max_move_bps: int = 0,
    initial_price: int | None = 15 * PRICE,
    n_lenders: int = 3,
    n_borrowers: int = 3,
    asset=None,
    label: str = "pool",
) -> World:
    """Deploy the whole market. `asset` overrides the loan asset (for example a
    `HookToken`); it must have `mint(to, amount)`. The income token is the loan asset."""
    admin = boa.env.generate_address(f"{label}-admin")
    kyc = boa.env.generate_address(f"{label}-kyc")
    operator = boa.env.generate_address(f"{label}-operator")
    oracle_admin = boa.env.generate_address(f"{label}-oracle-admin")
    treasury = boa.env.generate_address(f"{label}-treasury")
    lenders = [boa.env.generate_address(f"{label}-lender-{i}") for i in range(n_lenders)]
    borrowers = [boa.env.generate_address(f"{label}-borrower-{i}") for i in range(n_borrowers)]
    liquidator = boa.env.generate_address(f"{label}-liquidator")
    stranger = boa.env.generate_address(f"{label}-stranger")

    chain = deployers.CHAIN
    registry = deployers.COMPLIANCE_REGISTRY.at(suite.deploy_registry(chain, kyc))
    with boa.env.prank(kyc):
        registry.set_jurisdictions(table_rows(TEST_TABLE))
    if asset is None:
        asset = deployers.TEST_STABLE.deploy(asset_decimals)
    _blueprint, factory_address = suite.deploy_spv_factory(chain, admin, registry.address,
                                                           operators=[operator])
    spv_factory = deployers.SPV_FACTORY.at(factory_address)
    world_registry_accounts = [operator, treasury, liquidator, *lenders, *borrowers]
    with boa.env.prank(kyc):
        for account in world_registry_accounts:
            registry.set_investor(account, US, True, FAR_FUTURE)
    with boa.env.prank(operator):
        _, token_address = spv_factory.create_spv(
            "Lone Star GPU Fleet I LLC", 840, make_lei("POOLTEST0000000001"), b"\x01" * 32,
            "Lone Star H100 Shares", "LSH1", SHARES_PER_GPU, asset.address,
        )
    token = deployers.SHARE_TOKEN.at(token_address)
    boa.env.time_travel(seconds=10)
    with boa.env.prank(operator):
        token.add_gpus([gpu(f"{label}-SN-{i}") for i in range(8)])

    signers = make_signers(3, f"{label}-signer")
    hub = deployers.ORACLE_HUB.at(suite.deploy_oracle(chain, oracle_admin)[1])
    with boa.env.prank(oracle_admin):
        hub.set_signers(addresses(signers), 2)
        feed = deployers.FEED_ADAPTER.at(
            hub.add_feed(NAV_FEED_ID, "NAV/LSH1/USD", 1, 10**15, max_move_bps, heartbeat)
        )
    model = deployers.KINKED_RATE_MODEL.deploy(*rates)
    factory = deployers.LENDING_POOL_FACTORY.at(suite.deploy_lending(chain, admin)[1])
    with boa.env.prank(admin):
        pool_address = factory.create_market(
            asset.address, token.address, feed.address, model.address, lltv, max_ltv,
            reserve_factor_bps, treasury, "GPU Pool tUSD/LSH1", "gpLSH",
        )
    pool = deployers.LENDING_POOL.at(pool_address)
    with boa.env.prank(kyc):
        registry.set_investor(pool.address, US, True, FAR_FUTURE)
        registry.set_custodian(pool.address, True)

    world = World(
        admin=admin, kyc=kyc, operator=operator, oracle_admin=oracle_admin, treasury=treasury,
        lenders=lenders, borrowers=borrowers, liquidator=liquidator, stranger=stranger,
        registry=registry, asset=asset, token=token, hub=hub, feed=feed, model=model,
        factory=factory, pool=pool, signers=signers, config_version=hub.config_version(),
        asset_decimals=asset_decimals,
    )
    if initial_price is not None:
        assert world.set_price(initial_price)
    return world
