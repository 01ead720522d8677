# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Perpetual Market Lens
@custom:contract-name PerpLens
@license GNU Affero General Public License v3.0 only
@notice Read-only views over any `PerpMarket` (the role of Synthetix's and GMX's
        reader contracts): equity, margin ratio, liquidation price, withdrawable
        margin, whether a position can be liquidated, an order's status and the
        fill price of a trade, computed from the market's stored state with the
        same arithmetic the market enforces (`modules/perp_math.vy`). Stateless:
        one deployment serves every market. Everything is at the market's latest
        index price, with funding accrued to now.
"""


from ethereum.ercs import IERC20Detailed

from .modules import perp_math


# @dev `PerpMarket.RiskParams`.
struct RiskParams:
    skew_scale: uint256
    max_long_oi: uint256
    max_short_oi: uint256
    initial_margin_bps: uint256
    maintenance_margin_bps: uint256
    taker_fee_bps: uint256
    maker_fee_bps: uint256
    liquidation_fee_bps: uint256
    min_keeper_fee: uint256
    max_funding_velocity: uint256
    max_funding_rate: uint256


# @dev `PerpMarket.Order`.
struct Order:
    size_delta: int256
    acceptable_price: uint256
    keeper_fee: uint256
    committed_at: uint256
    commit_round: uint256


# @dev What the lens reads from a market.
interface IPerpMarket:
    def asset() -> address: view
    def position(account: address) -> (int256, uint256, uint256, int256): view
    def funding_index() -> int256: view
    def index_price() -> (uint256, bool): view
    def risk_params() -> RiskParams: view
    def order(account: address) -> Order: view
    def order_window() -> (uint256, uint256, uint256): view
    def market() -> (uint256, uint256, int256, uint256, uint256, int256, uint256): view
    def oracle_hub() -> address: view
    def index_feed_id() -> bytes32: view


# @dev The hub's latest observation time of the market's feed.
interface IOracleHub:
    def trading_state(feed_id: bytes32) -> (int256, uint64, uint64, uint32, uint16, bool): view


WAD: constant(uint256) = 10**18
IWAD: constant(int256) = 10**18
BPS: constant(uint256) = 10_000


# @dev A position read at the latest index price.
struct Marked:
    size: int256
    margin: uint256
    equity: int256
    price: uint256
    funding_paid: int256
    last_price: int256
    value_scale: uint256


@external
@view
def equity(market: address, account: address) -> int256:
    """
    @notice Margin plus unrealised PnL minus funding owed (asset units, rounded
            against the trader; a gain is shown before any haircut).
    @param market The PerpMarket.
    @param account The account.
    @return int256 The equity.
    """
    return self._mark(market, account).equity


@external
@view
def pnl(market: address, account: address) -> int256:
    """
    @notice Unrealised PnL since the position's last settlement (asset units; gains
            rounded down, losses up).
    @param market The PerpMarket.
    @param account The account.
    @return int256 The PnL.
    """
    m: Marked = self._mark(market, account)
    return perp_math._floor_div(m.size * (convert(m.price, int256) - m.last_price), convert(m.value_scale, int256))


@external
@view
def funding_owed(market: address, account: address) -> int256:
    """
    @notice Funding the position owes since its last settlement (asset units; > 0
            it pays, < 0 it receives; payments rounded up, receipts down).
    @param market The PerpMarket.
    @param account The account.
    @return int256 The funding owed.
    """
    m: Marked = self._mark(market, account)
    return perp_math._ceil_div(m.funding_paid, convert(m.value_scale, int256))


@external
@view
def margin_ratio(market: address, account: address) -> uint256:
    """
    @notice Equity over notional (WAD: 1e17 = 10 %); max_value(uint256) without a
            position, 0 at or below zero equity.
    @param market The PerpMarket.
    @param account The account.
    @return uint256 The ratio.
    """
    m: Marked = self._mark(market, account)
    if m.size == 0:
        return max_value(uint256)
    if m.equity <= 0:
        return 0
    return convert(m.equity, uint256) * WAD // max(perp_math._notional(m.size, m.price, True, m.value_scale), 1)


@external
@view
def can_liquidate(market: address, account: address) -> bool:
    """
    @notice Whether the position is below its maintenance requirement (maintenance
            margin, liquidation fee, keeper fee and exit premium); a keeper also
            needs the index fresh and the feed not halted.
    @param market The PerpMarket.
    @param account The account.
    @return bool True when `liquidate(account)` would succeed on a fresh index.
    """
    m: Marked = self._mark(market, account)
    if m.size == 0:
        return False
    p: RiskParams = staticcall IPerpMarket(market).risk_params()
    need: uint256 = perp_math._requirement(m.size, m.price, p.maintenance_margin_bps + p.liquidation_fee_bps, p.min_keeper_fee, p.skew_scale, m.value_scale)
    return m.equity < convert(need, int256)


@external
@view
def withdrawable(market: address, account: address) -> uint256:
    """
    @notice Margin the account can withdraw now (the market's rule): all of it
            without a position; with one, the settled margin less any unrealised loss
            and funding owed, above the initial margin (exit premium included).
            Unrealised gains are not withdrawable until an order realises them, and
            nothing is while an order is pending.
    @param market The PerpMarket.
    @param account The account.
    @return uint256 Margin asset units.
    """
    m: Marked = self._mark(market, account)
    # Nothing is withdrawable while an order is pending.
    if (staticcall IPerpMarket(market).order(account)).committed_at != 0:
        return 0
    if m.size == 0:
        return m.margin
    p: RiskParams = staticcall IPerpMarket(market).risk_params()
    need: int256 = convert(perp_math._requirement(m.size, m.price, p.initial_margin_bps, p.min_keeper_fee, p.skew_scale, m.value_scale), int256)
    # Losses count, gains do not (the market's rule): min(margin, equity) - need.
    left: int256 = min(convert(m.margin, int256), m.equity)
    if left <= need:
        return 0
    return convert(left - need, uint256)


@external
@view
def liquidation_price(market: address, account: address) -> uint256:
    """
    @notice Index price (WAD) at which the position reaches its maintenance
            requirement (exit premium included), with funding held where it is now.
            Below it a long is liquidatable, above it a short. 0 without a position;
            for a long, 0 when no positive price liquidates it and max_value(uint256)
            when every price does (a position so large its exit premium outgrows
            it); for a short, 0 when every price does (`can_liquidate` is the
            authority).
    @param market The PerpMarket.
    @param account The account.
    @return uint256 The liquidation price.
    """
    m: Marked = self._mark(market, account)
    if m.size == 0:
        return 0
    p: RiskParams = staticcall IPerpMarket(market).risk_params()
    vs: int256 = convert(m.value_scale, int256)
    margin: int256 = convert(m.margin, int256) * vs
    keeper: int256 = convert(p.min_keeper_fee, int256) * vs
    # The requirement per unit of notional (WAD): maintenance, liquidation fee and the
    # exit premium `|size| / (2 * skew_scale)`.
    c: int256 = convert((p.maintenance_margin_bps + p.liquidation_fee_bps) * WAD // BPS, int256) + abs(m.size) // convert(2 * p.skew_scale, int256)
    num: int256 = 0
    den: int256 = 0
    if m.size > 0:
        num = (keeper - margin + m.size * m.last_price + m.funding_paid) * IWAD
        den = m.size * (IWAD - c)
        if den <= 0:
            return max_value(uint256)
    else:
        num = (margin - m.size * m.last_price - m.funding_paid - keeper) * IWAD
        den = -m.size * (IWAD + c)
    if num <= 0:
        return 0
    return convert(num // den, uint256)


@external
@view
def max_leverage(market: address) -> uint256:
    """
    @notice Highest leverage (notional / equity) a position may open at (WAD).
    @param market The PerpMarket.
    @return uint256 `1 / initial margin`.
    """
    return BPS * WAD // (staticcall IPerpMarket(market).risk_params()).initial_margin_bps


@external
@view
def fill_price(market: address, size_delta: int256) -> uint256:
    """
    @notice The average price a trade of `size_delta` would fill at were the next
            round's index the latest one (an order fills at the next round's index):
            the premium is paid leg by leg, split at zero skew.
    @param market The PerpMarket.
    @param size_delta Signed trade size (WAD GPU-hours).
    @return uint256 Fill price (WAD USD per GPU-hour).
    """
    price: uint256 = (staticcall IPerpMarket(market).index_price())[0]
    skew: int256 = (staticcall IPerpMarket(market).market())[2]
    scale: uint256 = (staticcall IPerpMarket(market).risk_params()).skew_scale
    return perp_math._premium(price, skew, size_delta, scale, self._value_scale(market))[1]


@external
@view
def order_status(market: address, account: address) -> uint256:
    """
    @notice Where the account's order stands: 0 none, 1 waiting (for the minimum
            delay or an oracle round observed after the commit), 2 executable (the
            trade's own checks still apply), 3 expired (only `cancel_order` remains).
    @param market The PerpMarket.
    @param account The account.
    @return uint256 The status.
    """
    o: Order = staticcall IPerpMarket(market).order(account)
    if o.committed_at == 0:
        return 0
    min_delay: uint256 = 0
    max_age: uint256 = 0
    fee: uint256 = 0
    min_delay, max_age, fee = staticcall IPerpMarket(market).order_window()
    if block.timestamp > o.committed_at + max_age:
        return 3
    observed: uint64 = (staticcall IOracleHub(staticcall IPerpMarket(market).oracle_hub()).trading_state(staticcall IPerpMarket(market).index_feed_id()))[1]
    if block.timestamp < o.committed_at + min_delay or convert(observed, uint256) <= o.committed_at:
        return 1
    return 2


@internal
@view
def _value_scale(market: address) -> uint256:
    """
    @dev `WAD * 10**(18 - asset decimals)`: size x price to asset units.
    """
    decimals: uint8 = staticcall IERC20Detailed(staticcall IPerpMarket(market).asset()).decimals()
    return WAD * 10 ** (18 - convert(decimals, uint256))


@internal
@view
def _mark(market: address, account: address) -> Marked:
    """
    @dev The account's position marked at the latest index price and funding index.
    """
    size: int256 = 0
    margin: uint256 = 0
    last_price: uint256 = 0
    last_funding: int256 = 0
    size, margin, last_price, last_funding = staticcall IPerpMarket(market).position(account)
    vs: uint256 = self._value_scale(market)
    if size == 0:
        return Marked(size=0, margin=margin, equity=convert(margin, int256), price=0, funding_paid=0, last_price=0, value_scale=vs)
    price: uint256 = (staticcall IPerpMarket(market).index_price())[0]
    fidx: int256 = staticcall IPerpMarket(market).funding_index()
    settled: int256 = perp_math._settlement(size, convert(last_price, int256), last_funding, price, fidx, vs)
    return Marked(
        size=size,
        margin=margin,
        equity=convert(margin, int256) + settled,
        price=price,
        funding_paid=size * (fidx - last_funding),
        last_price=convert(last_price, int256),
        value_scale=vs,
    )
