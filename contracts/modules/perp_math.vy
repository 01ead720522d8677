# pragma version ~=0.4.3
"""
@title Perpetual Market Math
@custom:contract-name perp_math
@license GNU Affero General Public License v3.0 only
@notice The margin arithmetic `PerpMarket` enforces and `PerpLens` reports, in one
        place: signed rounding, margin requirements with the exit premium, and the
        settlement of a position. Pure functions; `value_scale` is the market's
        `WAD * 10**(18 - asset decimals)` (size x price to asset units).
"""


from . import reasons


# @dev 1.0 in 18-decimal fixed point.
WAD: constant(uint256) = 10**18
# @dev Basis points in 1.0.
BPS: constant(uint256) = 10_000


@internal
@pure
def _floor_div(x: int256, y: int256) -> int256:
    """
    @dev `floor(x / y)` for `y > 0` (Vyper's signed `//` truncates toward zero).
    """
    q: int256 = x // y
    if x < 0 and q * y != x:
        q -= 1
    return q


@internal
@pure
def _ceil_div(x: int256, y: int256) -> int256:
    """
    @dev `ceil(x / y)` for `y > 0`.
    """
    return -self._floor_div(-x, y)


@internal
@pure
def _exit_premium(size: int256, price: uint256, skew_scale: uint256, value_scale: uint256) -> uint256:
    """
    @dev The premium closing a position pays against a zero skew, `|size|^2 * P /
         (2 * skew_scale)` in asset units, rounded up (the liquidation premium of
         Synthetix v2.x: a large position's exit moves the price against it,
         whoever else trades).
    """
    n: uint256 = convert(abs(size), uint256)
    den: uint256 = 2 * skew_scale * WAD
    per_unit: uint256 = (price * n + den - 1) // den
    return (per_unit * n + value_scale - 1) // value_scale


@internal
@pure
def _requirement(size: int256, price: uint256, bps: uint256, keeper: uint256, skew_scale: uint256, value_scale: uint256) -> uint256:
    """
    @dev Equity a position needs: `ceil(notional * bps / BPS) + keeper` plus its exit
         premium, in asset units. Initial margin: `bps` is the initial margin;
         liquidation threshold: maintenance margin plus the liquidation fee.
    """
    den: uint256 = value_scale * BPS
    return (convert(abs(size), uint256) * price * bps + den - 1) // den + keeper + self._exit_premium(size, price, skew_scale, value_scale)


@internal
@pure
def _notional(size: int256, price: uint256, round_up: bool, value_scale: uint256) -> uint256:
    """
    @dev |size| x price in asset units.
    """
    value: uint256 = convert(abs(size), uint256) * price
    if round_up:
        return (value + value_scale - 1) // value_scale
    return value // value_scale


@internal
@pure
def _settlement(size: int256, last_price: int256, last_funding: int256, price: uint256, fidx: int256, value_scale: uint256) -> int256:
    """
    @dev PnL minus funding owed since a position's last settlement at (`last_price`,
         `last_funding`), in asset units, rounded down (against the trader).
    """
    move: int256 = convert(price, int256) - last_price
    return self._floor_div(size * move - size * (fidx - last_funding), convert(value_scale, int256))


@internal
@pure
def _premium(price: uint256, skew: int256, size_delta: int256, skew_scale: uint256, value_scale: uint256) -> (uint256, uint256):
    """
    @dev (premium in asset units, average fill price in WAD) of a trade. Only the
         part that increases the absolute skew pays: from a start skew `s` (zero when
         the trade first crosses zero), a leg `x` pays `x * P * (2s + x) / (2 *
         skew_scale)`; the part that reduces the skew fills at the index, without a
         rebate (a rebate could be withdrawn while the skew it depends on is still
         open). Rounded up; the average fill rounds against the trader.
    """
    start: int256 = skew
    leg: int256 = size_delta
    if skew != 0 and (skew > 0) != (size_delta > 0):
        if abs(size_delta) <= abs(skew):
            return 0, price
        start = 0
        leg = size_delta + skew
    n: uint256 = convert(abs(leg), uint256)
    den: uint256 = 2 * skew_scale * WAD
    per_unit: uint256 = (price * (2 * convert(abs(start), uint256) + n) + den - 1) // den
    paid: uint256 = per_unit * n
    delta: uint256 = convert(abs(size_delta), uint256)
    avg: uint256 = (paid + delta - 1) // delta
    if size_delta < 0:
        assert avg < price, reasons.PERP_FILL_PRICE_NOT_POSITIVE
        return (paid + value_scale - 1) // value_scale, price - avg
    return (paid + value_scale - 1) // value_scale, price + avg
