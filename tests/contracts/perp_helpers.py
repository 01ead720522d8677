"""A complete perpetual market in titanoboa for the PerpMarket tests.

`build_perp_world()` deploys the real suite: an OracleHub with a 2-of-3 signer set and
the H100 SXM GPU-hour index feed (its FeedAdapter is the market's index), a test
stablecoin, a PerpMarketFactory and one PerpMarket. Index prices reach the market the
way they do in production: a signed report submitted to the hub.

Units: sizes are WAD GPU-hours (signed), prices WAD USD per GPU-hour in the market
(the feed has 8 decimals), margins asset units (6 or 18 decimals).

Also what every perp test file shares: the tests' own mirror of the market's arithmetic
(`contracts/modules/perp_math.vy`), and small chain helpers (nested anchors, events,
the order window's keeper fee, the feed's move limit, funding off, a world in its own
`boa.Env` for the property and stateful tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import boa
import eth_abi
from eth_utils import keccak

from gpushares import perp, reasons
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
FILL_NOT_POSITIVE = reasons.PERP_FILL_PRICE_NOT_POSITIVE


WAD = 10**18
BPS = 10_000
DAY = 86_400
FEED_UNIT = 10**8  # feed decimals: 1 USD
FEED_TICK = WAD // FEED_UNIT  # one unit of the 8-decimal feed, in WAD
GPUH = WAD  # one GPU-hour of size
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
    last_refusal: object = None  # the OrderFailed event of the last `execute_refused`

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
        `reason`: the order is cancelled (`OrderFailed`, nobody can execute it later),
        the position untouched, and the keeper paid `min(fee in force, margin)` from
        the trader's margin into its own margin in the market. Returns the fee paid."""
        m, keeper = self.market, keeper or self.keeper
        fee = m.order_window()[2]
        before, keeper_margin = m.position(account), m.position(keeper)[1]
        with boa.env.prank(keeper):
            paid = m.execute_order(account)
        assert not events_of(m, "OrderExecuted"), "the order's trade went through"
        assert not events_of(m, "PositionModified")
        failed = self.last_refusal = event_of(m, "OrderFailed")
        assert decode_refusal(failed.reason) == reason
        assert (failed.account, failed.keeper, failed.keeper_fee) == (account, keeper, paid)
        assert m.order(account)[3] == 0, "the order should be gone"
        assert paid == min(fee, before[1])
        if keeper != account:
            assert m.position(account) == (before[0], before[1] - paid, *before[2:])
            assert m.position(keeper)[1] == keeper_margin + paid
        else:  # the trader paid itself
            assert m.position(account) == before
        with boa.reverts(NO_ORDER):  # nothing left to execute later
            m.execute_order(account)
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


# ---------------------------------------------------------------------------------
# The market's arithmetic (contracts/modules/perp_math.vy and PerpMarket._trade)
# ---------------------------------------------------------------------------------
# The tests' own copy, kept apart from the client's (`gpushares.perp`) on purpose: a
# change to the market's formulas has to be made here by hand too before the contract
# tests pass, and the tests that compare the client's pre-trade checks with the market
# check the client's copy against this one. `params` is a `perp.RiskParams` or a
# `PerpParams` (the same field names); `scale` is `PerpWorld.value_scale`.


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def signed(x: int, bits: int) -> int:
    """A two's-complement `bits`-bit field of a storage word, as a Python int."""
    return x - (1 << bits) if x >> (bits - 1) else x


def premium_and_fill(price: int, skew: int, size_delta: int, skew_scale: int,
                     scale: int) -> tuple[int, int]:
    """`perp_math._premium`: (premium in asset units, average fill). Only the leg that
    increases |skew| pays, from its start skew `s` (zero once the trade crosses zero):
    `ceil(ceil(P * (2|s| + |x|) / (2 * skew_scale * WAD)) * |x| / scale)`; the fill is
    the index plus the premium per unit, rounded against the trader. Raises
    `ValueError(FILL_NOT_POSITIVE)` where the market refuses a non-positive fill."""
    start, leg = skew, size_delta
    if skew != 0 and (skew > 0) != (size_delta > 0):
        if abs(size_delta) <= abs(skew):
            return 0, price
        start, leg = 0, size_delta + skew
    n = abs(leg)
    paid = ceil_div(price * (2 * abs(start) + n), 2 * skew_scale * WAD) * n
    avg = ceil_div(paid, abs(size_delta))
    if size_delta < 0:
        if avg >= price:
            raise ValueError(FILL_NOT_POSITIVE)
        return ceil_div(paid, scale), price - avg
    return ceil_div(paid, scale), price + avg


def trade_fee(skew: int, size_delta: int, fill: int, params, scale: int) -> int:
    """Maker fee on the part that reduces |skew|, taker on the rest, on the fill,
    rounded up."""
    maker = 0
    if skew != 0 and (skew > 0) != (size_delta > 0):
        maker = min(abs(size_delta), abs(skew))
    taker = abs(size_delta) - maker
    num = (taker * params.taker_fee_bps + maker * params.maker_fee_bps) * fill
    return ceil_div(num, scale * BPS)


def exit_premium(size: int, price: int, skew_scale: int, scale: int) -> int:
    """`perp_math._exit_premium`: what closing `size` against a zero skew pays,
    |size|^2 x P / (2 x skew_scale), rounded up twice."""
    n = abs(size)
    return ceil_div(ceil_div(price * n, 2 * skew_scale * WAD) * n, scale)


def requirement(size: int, price: int, bps: int, params, scale: int) -> int:
    """`perp_math._requirement`: `ceil(notional * bps) + keeper fee + exit premium`."""
    return (ceil_div(abs(size) * price * bps, scale * BPS) + params.min_keeper_fee
            + exit_premium(size, price, params.skew_scale, scale))


def initial_margin(size: int, price: int, params, scale: int) -> int:
    """Equity a position needs after an open or increase (leverage cap, exit premium)."""
    return requirement(size, price, params.initial_margin_bps, params, scale)


def maintenance_margin(size: int, price: int, params, scale: int) -> int:
    """Equity under which a position can be liquidated (independent of the skew)."""
    return requirement(size, price, params.maintenance_margin_bps + params.liquidation_fee_bps,
                       params, scale)


def liquidation_keeper_fee(size: int, price: int, params, scale: int) -> int:
    """What a liquidation of `size` at `price` pays the keeper (rounded down)."""
    return params.min_keeper_fee + abs(size) * price // scale * params.liquidation_fee_bps // BPS


def move_covered(max_move_bps: int, params) -> bool:
    """`PerpMarket._check_move_covered`: one feed update at the move limit, with the
    liquidation fee on the moved notional and the exit fee, stays below maintenance."""
    return max_move_bps != 0 and (max_move_bps * (BPS + params.liquidation_fee_bps)
                                  + params.taker_fee_bps * BPS
                                  < params.maintenance_margin_bps * BPS)


def funding_dust(steps: int, dt: int, rmax: int, price: int) -> int:
    """Bound on |computed - exact integral| of the funding index (WAD USD per
    GPU-hour) over `dt` seconds accrued in `steps` steps at a constant price and skew:
    per step one wei of the index's floor; in area (rate x seconds) per step the
    trapezoid's halving, the cap-hit time truncated to the second (at most one second
    of the rate's swing to the cap, <= rmax) and the rate's truncation (< 1 wei a step)
    carried over the rest of the interval."""
    area = steps * (2 + rmax) + steps * dt
    return steps + ceil_div(area * price, DAY * WAD)


# ---------------------------------------------------------------------------------
# Chain helpers
# ---------------------------------------------------------------------------------


def now() -> int:
    return boa.env.evm.patch.timestamp


def hashmap_slot(slot: int, account: str) -> int:
    """Storage slot of `HashMap[address, ...]` at `slot`, key `account` (Vyper:
    keccak256(slot . key))."""
    key = bytes(12) + bytes.fromhex(str(account)[2:])
    return int.from_bytes(keccak(slot.to_bytes(32, "big") + key), "big")


def events_of(contract, name: str) -> list:
    """`contract`'s events `name` from the last call."""
    return [log for log in contract.get_logs()
            if type(log).__name__ == name and log.address == contract.address]


def event_of(contract, name: str):
    """`contract`'s one event `name` from the last call."""
    (log,) = events_of(contract, name)
    return log


def modified(w: PerpWorld):
    """The market's PositionModified event of the last execution."""
    return event_of(w.market, "PositionModified")


def restoring(world: PerpWorld) -> Iterator[PerpWorld]:
    """For a function-scoped fixture over a module's world: the chain state is
    anchored per test (tests/contracts/conftest.py); the helper's clock of the last
    report is plain Python, so put it back too (`yield from restoring(_world)`)."""
    observed = world.last_observed
    yield world
    world.last_observed = observed


@contextlib.contextmanager
def branch(w: PerpWorld) -> Iterator[None]:
    """A nested anchor (a what-if on the same state) that also restores the helper's
    clock of the last report."""
    observed = w.last_observed
    with boa.env.anchor():
        try:
            yield
        finally:
            w.last_observed = observed


def params_of(w: PerpWorld) -> perp.RiskParams:
    """The market's risk parameters as it stores them."""
    return perp.RiskParams.from_chain(tuple(w.market.risk_params()))


def set_params(w: PerpWorld, params) -> None:
    with boa.env.prank(w.admin):
        w.market.set_risk_params(params.as_tuple())


def funding_off(w: PerpWorld) -> perp.RiskParams:
    """No funding from here on (accrued under the old parameters first): orders a
    second apart then settle exactly their price moves. Returns the new parameters."""
    params = params_of(w).model_copy(update={"max_funding_velocity": 0,
                                             "max_funding_rate": 0})
    set_params(w, params)
    return params


def set_keeper_fee(w: PerpWorld, fee: int) -> None:
    """The order window's keeper fee (the delays kept): every order reserves it."""
    min_delay, max_age, _ = w.market.order_window()
    with boa.env.prank(w.admin):
        w.market.set_order_window(min_delay, max_age, fee)


def set_move_limit(w: PerpWorld, max_move_bps: int) -> None:
    """The oracle admin changes the feed's move limit (bounds and heartbeat kept)."""
    view = w.hub.feed(INDEX_FEED_ID)
    with boa.env.prank(w.oracle_admin):
        w.hub.set_feed_config(INDEX_FEED_ID, view.min_answer, view.max_answer, max_move_bps,
                              view.heartbeat, True)


def round_after_commit(w: PerpWorld, price: int | None = None) -> None:
    """The next oracle round (at `price`, 8 decimals, or the latest value again),
    observed strictly after an order committed in this block."""
    if w.last_observed < now():
        boa.env.time_travel(seconds=1)
    assert w.next_round(price), "the hub refused the round"


# ---------------------------------------------------------------------------------
# A world in its own boa.Env (property and stateful tests)
# ---------------------------------------------------------------------------------


@dataclass
class Built:
    """A world deployed once into its own `boa.Env`; examples run in anchors of it."""

    env: boa.Env
    world: PerpWorld
    last_observed: int


def build_in_own_env(decimals: int, label: str, funds: int, *,
                     everyone: bool = False) -> Built:
    """`build_perp_world` in a new `boa.Env`, each trader minted `funds` whole units
    (`everyone`: the insurer and the stranger too)."""
    env = boa.Env()
    with boa.swap_env(env):
        boa.env.enable_fast_mode()
        w = build_perp_world(asset_decimals=decimals, label=label)
        for account in [*w.traders, *((w.insurer, w.stranger) if everyone else ())]:
            w.fund(account, funds * w.unit)
    return Built(env, w, w.last_observed)


@contextlib.contextmanager
def example(built: Built) -> Iterator[PerpWorld]:
    """One example: the world's env, inside an anchor (the clock included), with
    fresh traces; the oracle's Python-side clock restored on the way out."""
    w = built.world
    with boa.swap_env(built.env), built.env.anchor():
        boa.env.sha3_trace = {}
        boa.env.sstore_trace = {}
        w.last_observed = built.last_observed
        try:
            yield w
        finally:
            w.last_observed = built.last_observed
