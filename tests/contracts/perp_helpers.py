"""A complete perpetual market in titanoboa for the PerpMarket tests.

`build_perp_world()` deploys the real suite: an OracleHub with a 2-of-3 signer set and
the H100 SXM GPU-hour index feed (its FeedAdapter is the market's index), a test
stablecoin, a PerpMarketFactory and one PerpMarket. Index prices reach the market the
way they do in production: a signed report submitted to the hub.

Units: sizes are WAD GPU-hours (signed), prices WAD USD per GPU-hour in the market
(the feed has 8 decimals), margins asset units (6 or 18 decimals).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import boa
import eth_abi
from eth_utils import keccak

from gpushares import reasons
from gpushares.client import suite
from tests.contracts import deployers
from tests.contracts.oracle_helpers import (
    addresses,
    make_signers,
    publish_price,
)

# The market's refusal messages, by the short names the tests use.
# Stale, halted and non-positive index prices share one message (no trade on any).
STALE = reasons.PERP_INDEX_PRICE_STALE_OR_HALTED
NOT_POSITIVE = reasons.PERP_INDEX_PRICE_STALE_OR_HALTED
PAST_ROUND_NOT_POSITIVE = reasons.PERP_INDEX_PRICE_NOT_POSITIVE
NO_ORDER = reasons.PERP_NO_PENDING_ORDER
ORDER_PENDING = reasons.PERP_ORDER_ALREADY_PENDING
NO_ROUND_AFTER = reasons.PERP_NO_ORACLE_ROUND_AFTER
ORDER_EXPIRED = reasons.PERP_ORDER_EXPIRED_CANCEL
ORDER_NOT_EXPIRED = reasons.PERP_ORDER_NOT_EXPIRED
ORDER_TOO_EARLY = reasons.PERP_ORDER_NOT_EXECUTABLE_YET
NO_MARGIN_FOR_KEEPER = reasons.PERP_MARGIN_DOES_NOT_COVER_KEEPER
MOVE_NOT_COVERED = reasons.PERP_FEED_MOVE_REACHES_MAINTENANCE
FREE_CASH = reasons.PERP_FREE_CASH_DOES_NOT_COVER
ZERO_SIZE = reasons.PERP_ZERO_SIZE
NO_POSITION = reasons.PERP_NO_OPEN_POSITION
LIQUIDATABLE = reasons.PERP_POSITION_BELOW_MAINTENANCE_MARGIN
GUARDIAN_PAUSED = reasons.PERP_NEW_RISK_PAUSED_GUARDIAN
DEFICIT_PAUSED = reasons.PERP_INSURANCE_DEFICIT_RECORDED_NEW
INSURANCE_EXHAUSTED = reasons.PERP_INSURANCE_FUND_EXHAUSTED_NEW
SLIPPAGE = reasons.PERP_FILL_PRICE_WORSE_ACCEPTABLE
NO_MARGIN_FOR_FEE = reasons.PERP_MARGIN_DOES_NOT_COVER
BELOW_INITIAL = reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN
LONG_CAP = reasons.PERP_LONG_OPEN_INTEREST_CAP
SHORT_CAP = reasons.PERP_SHORT_OPEN_INTEREST_CAP
REDUCTION_BELOW_MAINTENANCE = reasons.PERP_REDUCTION_LEAVE_POSITION_BELOW
EXCEEDS_MARGIN = reasons.PERP_WITHDRAWAL_EXCEEDS_MARGIN
BELOW_INITIAL_WITHDRAW = reasons.PERP_WITHDRAWAL_LEAVE_LESS_INITIAL
ABOVE_MAINTENANCE = reasons.PERP_POSITION_ABOVE_MAINTENANCE_MARGIN


WAD = 10**18
BPS = 10_000
DAY = 86_400
FEED_UNIT = 10**8  # feed decimals: 1 USD
INDEX_FEED_ID = keccak(text="H100-SXM-80GB/USD/GPUh")
MAX_UINT = 2**256 - 1

RISK_ADMIN_ROLE = keccak(text="RISK_ADMIN_ROLE")
GUARDIAN_ROLE = keccak(text="GUARDIAN_ROLE")
MARKET_CREATOR_ROLE = keccak(text="MARKET_CREATOR_ROLE")
DEFAULT_ADMIN_ROLE = b"\0" * 32

# Refusal strings (exact, as a wallet shows them): the ones the pre-trade checks
# predict live in gpushares.perp; these are the rest.
ZERO_AMOUNT = reasons.PERP_ZERO_AMOUNT
NO_FEES = reasons.PERP_NO_FEES_COLLECT
MISSING_ROLE = reasons.ACCESS_CONTROL_MISSING_ROLE


def decode_refusal(data: bytes) -> str:
    """The message of an ABI-encoded Error(string) (`OrderFailed.reason`)."""
    data = bytes(data)
    if data[:4] != bytes.fromhex("08c379a0"):
        return f"<no reason: 0x{data.hex()}>"
    (message,) = eth_abi.decode(["string"], data[4:])
    return str(message)


@dataclass
class PerpParams:
    """`PerpMarket.RiskParams`, with the defaults the demo market uses."""

    skew_scale: int = 1_000_000  # GPU-hours: a 10,000 GPU-hour skew moves the price 1 %
    max_long_oi: int = 500_000
    max_short_oi: int = 500_000
    initial_margin_bps: int = 1_000  # 10x
    maintenance_margin_bps: int = 500
    taker_fee_bps: int = 10
    maker_fee_bps: int = 5
    liquidation_fee_bps: int = 50
    min_keeper_fee: int = 5 * 10**6  # 5 USD in a 6-decimal asset
    max_funding_velocity: int = 3 * WAD // 100  # 3 %/day per day at full skew
    max_funding_rate: int = 5 * WAD // 100  # 5 %/day

    def as_tuple(self) -> tuple[int, ...]:
        return (
            self.skew_scale, self.max_long_oi, self.max_short_oi, self.initial_margin_bps,
            self.maintenance_margin_bps, self.taker_fee_bps, self.maker_fee_bps,
            self.liquidation_fee_bps, self.min_keeper_fee, self.max_funding_velocity,
            self.max_funding_rate,
        )


@dataclass
class PerpWorld:
    """One deployed market and its actors (addresses are boa-generated EOAs)."""

    admin: str
    oracle_admin: str
    fee_recipient: str
    insurer: str
    traders: list[str]
    keeper: str
    stranger: str
    asset: object
    hub: object
    feed: object
    factory: object
    market: object
    params: PerpParams
    lens: object = None
    signers: list = field(default_factory=list)
    config_version: int = 0
    asset_decimals: int = 6
    last_observed: int = 0

    @property
    def unit(self) -> int:
        """One whole unit of the margin asset."""
        return 10**self.asset_decimals

    @property
    def value_scale(self) -> int:
        """Divisor from size x price (WAD x WAD) to asset units."""
        return WAD * 10 ** (18 - self.asset_decimals)

    # ------------------------------------------------------------------ oracle

    def set_price(self, usd_8dec: int, *, observed_at: int | None = None) -> bool:
        """Publish the index through the hub (2-of-3 signed). Moves the clock by one
        second first when needed, since the hub wants strictly newer data. Returns
        False when the hub refused the move."""
        accepted, observed = publish_price(
            self.hub, self.signers, self.oracle_admin, INDEX_FEED_ID, usd_8dec,
            self.last_observed, self.config_version, observed_at,
        )
        if accepted:
            self.last_observed = observed
        return accepted

    def walk_price(self, usd_8dec: int) -> None:
        """Move the index to `usd_8dec` in accepted rounds, each within the feed's move
        limit (one round when the feed has none)."""
        limit = self.hub.feed(INDEX_FEED_ID)[4]
        current = self.hub.latest_value(INDEX_FEED_ID)[0]
        while current != usd_8dec:
            step = current * limit // BPS if limit else abs(usd_8dec - current)
            nxt = (min(usd_8dec, current + step) if usd_8dec > current
                   else max(usd_8dec, current - step))
            assert self.set_price(nxt), "the hub refused a step of the walk"
            current = nxt

    def price_wad(self) -> int:
        """The market's view of the index (WAD)."""
        return self.market.index_price()[0]

    # ------------------------------------------------------------------ actors

    def fund(self, account: str, amount: int) -> None:
        """Mint margin asset to `account` and approve the market for everything."""
        self.asset.mint(account, amount)
        with boa.env.prank(account):
            self.asset.approve(self.market.address, MAX_UINT)

    def deposit(self, account: str, amount: int) -> None:
        """Fund `account` and deposit `amount` as margin."""
        self.fund(account, amount)
        with boa.env.prank(account):
            self.market.deposit_margin(amount)

    def commit(self, account: str, size_delta: int, acceptable: int | None = None) -> None:
        """Commit an order at any fill price unless `acceptable` is given."""
        if acceptable is None:
            acceptable = MAX_UINT if size_delta > 0 else 0
        with boa.env.prank(account):
            self.market.commit_order(size_delta, acceptable)

    def next_round(self, usd_8dec: int | None = None) -> bool:
        """Publish the next oracle round (the latest value again unless given), observed
        one second from now (so strictly after any commit made so far) at the earliest."""
        if usd_8dec is None:
            usd_8dec = self.hub.latest_value(INDEX_FEED_ID)[0]
        if boa.env.evm.patch.timestamp > self.last_observed:
            boa.env.time_travel(seconds=1)
        return self.set_price(usd_8dec)

    def execute(self, account: str, keeper: str | None = None) -> int:
        """Execute `account`'s pending order as `keeper` (the world's keeper), expecting
        its trade to go through (a refused trade cancels the order: `OrderFailed`)."""
        with boa.env.prank(keeper or self.keeper):
            paid = self.market.execute_order(account)
        failed = [e for e in self.market.get_logs() if type(e).__name__ == "OrderFailed"]
        assert not failed, f"the order's trade was refused: {decode_refusal(failed[0].reason)}"
        return paid

    def execute_refused(self, account: str, reason: str, keeper: str | None = None) -> int:
        """Execute `account`'s pending order expecting its trade to be refused with
        `reason`: the order is cancelled (`OrderFailed`) and the keeper still paid."""
        with boa.env.prank(keeper or self.keeper):
            paid = self.market.execute_order(account)
        failed = [e for e in self.market.get_logs() if type(e).__name__ == "OrderFailed"]
        assert failed, "the order's trade went through"
        assert decode_refusal(failed[0].reason) == reason
        assert self.market.order(account)[3] == 0, "the order should be gone"
        return paid

    def trade(self, account: str, size_delta: int, acceptable: int | None = None,
              price: int | None = None) -> None:
        """One whole trade the only way the market allows: commit, the next oracle round
        (at `price`, 8 decimals, or the latest value again), execute. The clock moves
        one second (funding accrues over it)."""
        self.commit(account, size_delta, acceptable)
        assert self.next_round(price), "the hub refused the round"
        self.execute(account)

    def size_of(self, account: str) -> int:
        return self.market.position(account)[0]

    def margin_of(self, account: str) -> int:
        return self.market.position(account)[1]



def build_perp_world(
    *,
    asset_decimals: int = 6,
    params: PerpParams | None = None,
    heartbeat: int = DAY,
    max_move_bps: int = 400,
    initial_price: int | None = 2 * FEED_UNIT,
    n_traders: int = 4,
    insurance: int | None = 10_000,
    asset=None,
    label: str = "perp",
) -> PerpWorld:
    """Deploy the whole market. `insurance` (whole asset units) seeds the insurance
    fund; `asset` overrides the margin asset (it must have `mint(to, amount)`)."""
    if params is None:
        params = PerpParams(min_keeper_fee=5 * 10**asset_decimals)
    admin = boa.env.generate_address(f"{label}-admin")
    oracle_admin = boa.env.generate_address(f"{label}-oracle-admin")
    fee_recipient = boa.env.generate_address(f"{label}-fees")
    insurer = boa.env.generate_address(f"{label}-insurer")
    traders = [boa.env.generate_address(f"{label}-trader-{i}") for i in range(n_traders)]
    keeper = boa.env.generate_address(f"{label}-keeper")
    stranger = boa.env.generate_address(f"{label}-stranger")
    if asset is None:
        asset = deployers.TEST_STABLE.deploy(asset_decimals)

    signers = make_signers(3, f"{label}-signer")
    hub = deployers.ORACLE_HUB.at(suite.deploy_oracle(deployers.CHAIN, oracle_admin)[1])
    with boa.env.prank(oracle_admin):
        hub.set_signers(addresses(signers), 2)
        feed = deployers.FEED_ADAPTER.at(
            hub.add_feed(INDEX_FEED_ID, "H100 SXM 80GB / USD per GPU-hour", 1, 10**12,
                         max_move_bps, heartbeat)
        )
    factory = deployers.PERP_MARKET_FACTORY.at(suite.deploy_perps(deployers.CHAIN, admin)[1])
    with boa.env.prank(admin):
        market_address = factory.create_market(
            asset.address, feed.address, params.as_tuple(), fee_recipient, admin
        )
    market = deployers.PERP_MARKET.at(market_address)
    lens = deployers.PERP_LENS.at(suite.deploy_perp_lens(deployers.CHAIN, admin))
    world = PerpWorld(
        admin=admin, oracle_admin=oracle_admin, fee_recipient=fee_recipient, insurer=insurer,
        traders=traders, keeper=keeper, stranger=stranger, asset=asset, hub=hub, feed=feed,
        factory=factory, market=market, params=params, signers=signers, lens=lens,
        config_version=hub.config_version(), asset_decimals=asset_decimals,
    )
    if initial_price is not None:
        assert world.set_price(initial_price)
    if insurance:
        amount = insurance * world.unit
        world.fund(insurer, amount)
        with boa.env.prank(insurer):
            market.fund_insurance(amount)
    return world
