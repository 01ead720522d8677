"""The perpetual market's arithmetic, exactly as `contracts/PerpMarket.vy` does it.

Fill price with the skew premium, trading fee (maker / taker split), margin
requirements, settlement of PnL and funding, the funding index step, and a pre-trade
check that predicts the market's answer (the refusal string a wallet would show, or
the position afterwards). `ape run perp`, `ape run hedge`, the keeper and the tests use
it; the stateful test checks it against what the market accepts and refuses.

Units: sizes WAD GPU-hours (signed, long > 0); prices WAD USD per GPU-hour; funding
rates WAD per day; funding index WAD USD per GPU-hour; margins asset units.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from pydantic import BaseModel, ConfigDict, Field

from gpushares import reasons

WAD = 10**18
BPS = 10_000
DAY = 86_400



class RiskParams(BaseModel):
    """`PerpMarket.RiskParams` (the tuple `risk_params()` returns, in order)."""

    model_config = ConfigDict(frozen=True)

    skew_scale: int = Field(gt=0, description="GPU-hours (whole)")
    max_long_oi: int = Field(gt=0, description="GPU-hours (whole)")
    max_short_oi: int = Field(gt=0, description="GPU-hours (whole)")
    initial_margin_bps: int = Field(gt=0, le=BPS)
    maintenance_margin_bps: int = Field(gt=0, le=BPS)
    taker_fee_bps: int = Field(ge=0, le=BPS)
    maker_fee_bps: int = Field(ge=0, le=BPS)
    liquidation_fee_bps: int = Field(ge=0, le=BPS)
    min_keeper_fee: int = Field(ge=0, description="asset units")
    max_funding_velocity: int = Field(ge=0, description="WAD per day, per day")
    max_funding_rate: int = Field(ge=0, description="WAD per day")

    @classmethod
    def from_chain(cls, values: tuple[int, ...] | list[int]) -> RiskParams:
        return cls(**dict(zip(cls.model_fields, values, strict=True)))

    def as_tuple(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in type(self).model_fields)


def floor_div(x: int, y: int) -> int:
    """`floor(x / y)` for y > 0 (Python's // already floors)."""
    return x // y


def ceil_div(x: int, y: int) -> int:
    return -((-x) // y)


def value_scale(asset_decimals: int) -> int:
    """Divisor from size x price (WAD x WAD) to asset units."""
    return WAD * 10 ** (18 - asset_decimals)


def fill_price(price: int, skew: int, size_delta: int, skew_scale: int) -> int:
    """`P * (1 + (skew + size_delta / 2) / skew_scale)`: buys rounded up, sells down,
    never better than the index (a skew-reducing trade fills at it, no rebate). Raises
    ValueError where the market refuses a non-positive fill."""
    num = price * (2 * skew + size_delta)
    den = 2 * skew_scale * WAD
    if size_delta > 0:
        premium = max(ceil_div(num, den), 0)
    else:
        premium = min(floor_div(num, den), 0)
    fill = price + premium
    if fill <= 0:
        raise ValueError("fill price is not positive (trade too large for the skew scale)")
    return fill


def premium_cost(size_delta: int, fill: int, price: int, scale: int) -> int:
    """What a trade pays the insurance over the index (asset units, rounded up)."""
    return ceil_div(size_delta * (fill - price), scale)


def trade_fee(skew: int, size_delta: int, fill: int, params: RiskParams, scale: int) -> int:
    """Maker fee on the part that reduces |skew|, taker on the rest, rounded up."""
    maker = 0
    if skew != 0 and (skew > 0) != (size_delta > 0):
        maker = min(abs(size_delta), abs(skew))
    taker = abs(size_delta) - maker
    num = (taker * params.taker_fee_bps + maker * params.maker_fee_bps) * fill
    return ceil_div(num, scale * BPS)


def notional(size: int, price: int, scale: int) -> int:
    """|size| x price in asset units, rounded down."""
    return abs(size) * price // scale


def requirement(size: int, price: int, bps: int, keeper: int, scale: int) -> int:
    """`ceil(notional * bps / BPS) + keeper` (asset units)."""
    return ceil_div(abs(size) * price * bps, scale * BPS) + keeper


def initial_margin(size: int, price: int, params: RiskParams, scale: int) -> int:
    """Equity a position needs after an open or increase (the leverage cap)."""
    return requirement(size, price, params.initial_margin_bps, params.min_keeper_fee, scale)


def maintenance_margin(size: int, price: int, params: RiskParams, scale: int) -> int:
    """Equity under which a position can be liquidated (independent of the skew)."""
    return requirement(size, price, params.maintenance_margin_bps + params.liquidation_fee_bps,
                       params.min_keeper_fee, scale)


def keeper_fee(size: int, price: int, params: RiskParams, scale: int) -> int:
    """What a liquidation of `size` at `price` pays the keeper (rounded down)."""
    return params.min_keeper_fee + notional(size, price, scale) * params.liquidation_fee_bps // BPS


def settlement(size: int, last_price: int, last_funding: int, price: int, fidx: int,
               scale: int) -> int:
    """PnL minus funding owed since the last settlement (asset units, rounded down)."""
    return floor_div(size * (price - last_price) - size * (fidx - last_funding), scale)


def funding_step(fidx: int, rate: int, dt: int, price: int, skew: int,
                 params: RiskParams) -> tuple[int, int]:
    """The market's `_funding_math`: (index, rate) after `dt` seconds at `price` and
    `skew`. Signed divisions truncate toward zero where Vyper's `//` does."""

    def tdiv(x: int, y: int) -> int:
        q = abs(x) // abs(y)
        return q if (x >= 0) == (y >= 0) else -q

    if dt <= 0:
        return fidx, rate
    rmax = params.max_funding_rate
    r0 = min(max(rate, -rmax), rmax)
    ratio = min(max(tdiv(skew * WAD, params.skew_scale * WAD), -WAD), WAD)
    velocity = tdiv(params.max_funding_velocity * ratio, WAD)
    r1, area = r0, r0 * dt
    if velocity != 0:
        target = rmax if velocity > 0 else -rmax
        t_hit = tdiv((target - r0) * DAY, velocity)
        if dt <= t_hit:
            r1 = r0 + tdiv(velocity * dt, DAY)
            area = tdiv((r0 + r1) * dt, 2)
        else:
            r1 = target
            area = tdiv((r0 + target) * t_hit, 2) + target * (dt - t_hit)
    return fidx + floor_div(area * price, DAY * WAD), r1


def hedge_size(gpus: int, hours: int, utilisation: Decimal) -> int:
    """GPU-hours (WAD) an operator sells to hedge `gpus` x `hours` x `utilisation`."""
    if gpus <= 0 or hours <= 0:
        raise ValueError("gpus and hours must be positive")
    if not Decimal(0) < utilisation <= Decimal(1):
        raise ValueError("utilisation must be in (0, 1]")
    return int(Decimal(gpus) * Decimal(hours) * utilisation * WAD)


class MarketState(BaseModel):
    """What a pre-trade check reads from the chain."""

    model_config = ConfigDict(frozen=True)

    price: int = Field(description="index price, WAD")
    fresh: bool
    long_oi: int
    short_oi: int
    paused: bool = Field(description="the guardian's pause")
    deficit: int = Field(ge=0, description="recorded insurance deficit (asset units)")
    insurance: int = Field(description="insurance fund marked to the price (asset units)")
    params: RiskParams
    asset_decimals: int = Field(ge=0, le=18)

    @property
    def skew(self) -> int:
        return self.long_oi - self.short_oi

    @property
    def scale(self) -> int:
        return value_scale(self.asset_decimals)


class TradeQuote(BaseModel):
    """A predicted trade: the refusal the market would give, or the result."""

    model_config = ConfigDict(frozen=True)

    refusal: str | None
    fill_price: int = 0
    fee: int = 0
    premium: int = 0
    size_after: int = 0
    margin_after: int = 0


def quote_trade(state: MarketState, size: int, equity: int, size_delta: int,
                acceptable_price: int) -> TradeQuote:
    """Predict `modify_position(size_delta, acceptable_price)` for a position of `size`
    with `equity` (margin + settlement at the current index and funding), in the
    market's order of checks."""
    p, scale = state.params, state.scale
    if size_delta == 0:
        return TradeQuote(refusal=reasons.PERP_ZERO_SIZE)
    if state.price == 0:
        return TradeQuote(refusal=reasons.PERP_INDEX_PRICE_NOT_POSITIVE)
    if not state.fresh:
        return TradeQuote(refusal=reasons.PERP_INDEX_PRICE_STALE_OLDER)
    if size != 0 and equity < maintenance_margin(size, state.price, p, scale):
        return TradeQuote(refusal=reasons.PERP_POSITION_BELOW_MAINTENANCE_MARGIN)
    new_size = size + size_delta
    increases = abs(new_size) > abs(size) or (
        size != 0 and new_size != 0 and (new_size > 0) != (size > 0))
    if increases:
        if state.paused:
            return TradeQuote(refusal=reasons.PERP_NEW_RISK_PAUSED_GUARDIAN)
        if state.deficit != 0:
            return TradeQuote(refusal=reasons.PERP_INSURANCE_DEFICIT_RECORDED_NEW)
        if state.insurance < 0:
            return TradeQuote(refusal=reasons.PERP_INSURANCE_FUND_EXHAUSTED_NEW)
    try:
        fill = fill_price(state.price, state.skew, size_delta, p.skew_scale)
    except ValueError as exc:
        return TradeQuote(refusal=f"PerpMarket: {exc}")
    if (fill > acceptable_price) if size_delta > 0 else (fill < acceptable_price):
        return TradeQuote(refusal=reasons.PERP_FILL_PRICE_WORSE_ACCEPTABLE, fill_price=fill)
    premium = premium_cost(size_delta, fill, state.price, scale)
    fee = trade_fee(state.skew, size_delta, fill, p, scale)
    after = equity - premium - fee
    quote = {"fill_price": fill, "fee": fee, "premium": premium, "size_after": new_size,
             "margin_after": max(after, 0)}
    if after < 0:
        return TradeQuote(refusal=reasons.PERP_MARGIN_DOES_NOT_COVER, **quote)
    if new_size != 0:
        if increases:
            if after < initial_margin(new_size, state.price, p, scale):
                return TradeQuote(refusal=reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN, **quote)
            longs = state.long_oi + max(new_size, 0) - max(size, 0)
            shorts = state.short_oi + max(-new_size, 0) - max(-size, 0)
            if longs > p.max_long_oi * WAD and longs > state.long_oi:
                return TradeQuote(refusal=reasons.PERP_LONG_OPEN_INTEREST_CAP, **quote)
            if shorts > p.max_short_oi * WAD and shorts > state.short_oi:
                return TradeQuote(refusal=reasons.PERP_SHORT_OPEN_INTEREST_CAP, **quote)
        elif after < maintenance_margin(new_size, state.price, p, scale):
            return TradeQuote(refusal=reasons.PERP_REDUCTION_LEAVE_POSITION_BELOW, **quote)
    return TradeQuote(refusal=None, **quote)


def max_size_for_margin(state: MarketState, equity: int, short: bool) -> int:
    """The largest new position (WAD GPU-hours, positive) that `equity` opens from
    flat within the initial margin, fees and premium included (binary search over
    `quote_trade`, so every rounding matches the market)."""
    lo, hi = 0, max(state.params.max_long_oi, state.params.max_short_oi) * WAD
    sign = -1 if short else 1
    acceptable = 0 if short else 2**256 - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if quote_trade(state, 0, equity, sign * mid, acceptable).refusal is None:
            lo = mid
        else:
            hi = mid - 1
    return lo


def percent(wad: int) -> str:
    """A WAD ratio as a percentage string."""
    return f"{Decimal(wad) / Decimal(WAD) * 100:.4f}%"


def acceptable_price(fill: int, size_delta: int, slippage: Decimal) -> int:
    """The worst fill accepted: `slippage` percent above a buy's fill, below a sell's."""
    factor = slippage / 100
    if size_delta > 0:
        return int((Decimal(fill) * (1 + factor)).to_integral_value(rounding=ROUND_CEILING))
    return max(int(Decimal(fill) * (1 - factor)), 0)


def liquidation_price_after(size: int, margin: int, price: int, skew: int,
                            params: RiskParams, scale: int) -> int:
    """`PerpMarket.liquidation_price` of a position just settled at `price` (no funding
    owed yet) in a market of `skew` (the position included): what a trade leaves."""
    if size == 0:
        return 0
    margin_v, keeper = margin * scale, params.min_keeper_fee * scale
    c = params.maintenance_margin_bps + params.liquidation_fee_bps
    t = size * (size - 2 * skew)
    close = t * BPS // (2 * params.skew_scale * WAD) if t > 0 else 0
    if size > 0:
        num, den = (keeper - margin_v + size * price) * BPS, size * (BPS - c) - close
        if den <= 0:  # the close cost outgrows the PnL: no falling price reaches it
            return 2**256 - 1 if num > 0 else 0
    else:
        num, den = (margin_v - size * price - keeper) * BPS, -size * (BPS + c) + close
    return num // den if num > 0 else 0
