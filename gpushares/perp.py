"""The perpetual market's arithmetic, exactly as `contracts/PerpMarket.vy` (and its
`modules/perp_math.vy`, which `PerpLens` shares) does it, and what its refusals mean.

Fill price with the skew premium paid leg by leg (split at zero skew), trading fee
(maker / taker split), margin requirements with the exit premium, settlement of PnL and
funding, the funding index step, the order window, the withdrawal rule, and a pre-trade
check that predicts what an order's execution does (the refusal a wallet would show, or
the position afterwards). `ape run perp`, `ape run hedge`, the keeper and the tests use
it; the stateful test checks it against what the market accepts and refuses.

PerpMarket's revert messages fit one 32-byte word (`gpushares.reasons`); `explain`
gives each the full sentence a person needs: what happened and what to do next.

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
MAX_UINT256 = 2**256 - 1
# The market's order limits: largest order size (WAD GPU-hours), the order window's
# shortest and longest life (seconds), the rounds `execute_order` looks through.
MAX_ORDER_SIZE = 2**100
MIN_ORDER_AGE = 60
MAX_ORDER_AGE = 30 * DAY
MAX_ROUND_SCAN = 32
# Gas `execute_order` wants left before it runs the trade (else PERP_SEND_MORE_GAS).
MIN_SETTLE_GAS = 300_000
MASK96 = 2**96 - 1
# An order's acceptable price is stored in 88 bits: above it counts as no limit.
MASK88 = 2**88 - 1
# `PerpLens.order_status`: 0 none, 1 waiting, 2 executable, 3 expired.
ORDER_NONE, ORDER_WAITING, ORDER_EXECUTABLE, ORDER_EXPIRED = range(4)
ORDER_STATUS = ("none", "waiting", "executable", "expired")


# ---------------------------------------------------------------------------------
# What each refusal means, and what to do next
# ---------------------------------------------------------------------------------

#: PerpMarket's (and PerpMarketFactory's) refusal -> the sentence a person needs.
EXPLANATIONS: dict[str, str] = {
    reasons.PERP_ADMIN_ZERO_ADDRESS: "The market needs an admin: create it with an admin "
        "account (the factory passes the creator).",
    reasons.PERP_AMOUNT_TOO_LARGE: "The amount does not fit the market's 128-bit margin "
        "book: deposit less.",
    reasons.PERP_FEES_ABOVE_THEIR_CAPS: "A fee is above its cap (taker at most 1 %, maker at "
        "most the taker fee, liquidation fee at most 5 %): lower it.",
    reasons.PERP_FEE_RECIPIENT_ZERO_ADDRESS: "The fee recipient cannot be the zero address: "
        "give a real receiver.",
    reasons.PERP_FILL_PRICE_NOT_POSITIVE: "The sell is so large against the skew scale that "
        "its premium would take the fill to zero or below: sell less, in several orders.",
    reasons.PERP_FILL_PRICE_WORSE_ACCEPTABLE: "The index moved (or the skew did) before the "
        "order filled and the fill is worse than the order's acceptable price: commit again "
        "with more slippage.",
    reasons.PERP_INDEX_PRICE_NOT_POSITIVE: "The oracle round the order fills at has no "
        "positive price: wait for it to expire and cancel it.",
    reasons.PERP_INDEX_PRICE_STALE_OR_HALTED: "The index is older than the feed's heartbeat, "
        "or the hub halted the feed after refusing a move: executions, liquidations and "
        "withdrawals with a position wait for the next accepted oracle report (deposits, "
        "commits and cancellations of expired orders still work).",
    reasons.PERP_ORDER_SIZE_TOO_LARGE: "An order moves at most 2**100 WAD GPU-hours: "
        "order less.",
    reasons.PERP_ORDER_ALREADY_PENDING: "The account has an order pending (one at a time, "
        "and no withdrawal meanwhile, so nobody can make a trade fail after seeing its "
        "price): wait for a keeper to execute it, or cancel it once it has expired.",
    reasons.PERP_MARGIN_DOES_NOT_COVER_KEEPER: "An order reserves the market's keeper fee in "
        "the margin until it is executed or cancelled: deposit at least that much first "
        "(--margin).",
    reasons.PERP_NO_PENDING_ORDER: "The account has no pending order: nothing to execute or "
        "cancel (`ape run perp orders` lists them).",
    reasons.PERP_ORDER_NOT_EXECUTABLE_YET: "The order's minimum delay has not passed yet: "
        "execute it later.",
    reasons.PERP_ORDER_EXPIRED_CANCEL: "The order is past its maximum age and can no longer "
        "fill: cancel it (`ape run perp cancel`), which frees the keeper fee it reserved, "
        "and commit again.",
    reasons.PERP_ORDER_NOT_EXPIRED: "Only an expired order can be cancelled (a trader who "
        "could cancel after seeing the next price would hold a free option): wait for a "
        "keeper to execute it, or for it to expire.",
    reasons.PERP_NO_ORACLE_ROUND_AFTER: "An order fills at the first oracle round observed "
        "after its commit and none has been published yet: execute it after the next index "
        "report.",
    reasons.PERP_TOO_MANY_ROUNDS_SINCE: "More than 32 oracle rounds landed since the commit "
        "and none was observed after it: wait for the order to expire, cancel it and commit "
        "again.",
    reasons.PERP_FREE_CASH_DOES_NOT_COVER: "The market's cash left after the uncollected "
        "fees does not cover this withdrawal (the insurance fund is short): withdraw less, "
        "or wait for the fund to be topped up.",
    reasons.PERP_FEED_MOVE_REACHES_MAINTENANCE: "The index feed's largest move per update "
        "(plus the liquidation and exit fees) reaches the maintenance margin, so one update "
        "could create bad debt: the hub admin lowers the feed's max move, or the risk admin "
        "raises the maintenance margin.",
    reasons.PERP_ORDER_WINDOW_OUT_OF_RANGE: "The order window needs a maximum age from one "
        "minute to 30 days, a minimum delay below it and a keeper fee that fits 96 bits.",
    reasons.PERP_INSURANCE_DEFICIT_RECORDED_NEW: "A liquidation left a deficit, which pauses "
        "opens and increases: fund the insurance (`ape run perp fund-insurance`); reducing "
        "and closing still work.",
    reasons.PERP_INSURANCE_FUND_EXHAUSTED_NEW: "The insurance fund is negative at this price, "
        "which pauses opens and increases: fund the insurance (`ape run perp "
        "fund-insurance`); reducing and closing still work.",
    reasons.PERP_KEEPER_FEE_FUNDING_PARAMETER: "The minimum keeper fee must fit 96 bits, the "
        "funding velocity be at most 1,000 %/day per day and the funding rate cap at most "
        "100 %/day: lower them.",
    reasons.PERP_LONG_OPEN_INTEREST_CAP: "The longs' open interest would pass its cap: buy "
        "less, or wait for longs to close.",
    reasons.PERP_MARGIN_ASSET_TRANSFER_FAILED: "The stablecoin refused the transfer: check "
        "the balance and the approval to the market.",
    reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN: "The equity left after the fee and premium "
        "would be below the initial margin of the new position (leverage cap and exit "
        "premium): deposit more margin or order a smaller size.",
    reasons.PERP_MARGIN_DOES_NOT_COVER: "The margin does not cover the trade's fee and "
        "premium: deposit more margin first.",
    reasons.PERP_NEED_0_MAINTENANCE_LIQUIDATION: "The maintenance margin must be positive and, "
        "with the liquidation fee, below the initial margin (at least 2 %, at most 100 %).",
    reasons.PERP_NEW_RISK_PAUSED_GUARDIAN: "The guardian paused opens and increases: only "
        "reducing or closing orders fill until it unpauses.",
    reasons.PERP_NOT_ENOUGH_CASH_KEEPER: "The market's free cash cannot pay this "
        "liquidation's keeper fee: fund the insurance first.",
    reasons.PERP_NO_FEES_COLLECT: "There are no uncollected fees: collect after some trades.",
    reasons.PERP_NO_OPEN_POSITION: "The account has no open position in this market.",
    reasons.PERP_POSITION_ABOVE_MAINTENANCE_MARGIN: "The position is above its maintenance "
        "requirement: it cannot be liquidated.",
    reasons.PERP_POSITION_BELOW_MAINTENANCE_MARGIN: "The position is below its maintenance "
        "requirement and can only be liquidated: deposit margin first (`ape run perp "
        "deposit`), then trade.",
    reasons.PERP_REDUCTION_LEAVE_POSITION_BELOW: "The reduction's fee and premium would leave "
        "the rest below maintenance: close the whole position, or deposit margin first.",
    reasons.PERP_RISK_PARAMETERS_NOT_SET: "The market has no risk parameters yet: its risk "
        "admin sets them first.",
    reasons.PERP_SHORT_OPEN_INTEREST_CAP: "The shorts' open interest would pass its cap: sell "
        "less, or wait for shorts to close.",
    reasons.PERP_SKEW_SCALE_1_2: "The skew scale and open-interest caps must be positive and "
        "at most 2**40 GPU-hours (the skew scale at most 2**64).",
    reasons.PERP_WITHDRAWAL_EXCEEDS_MARGIN: "The amount is above the account's settled "
        "margin: withdraw less.",
    reasons.PERP_WITHDRAWAL_LEAVE_LESS_INITIAL: "With a position open, the margin left less "
        "any unrealised loss must cover the initial margin (unrealised gains count only "
        "once an order realises them): withdraw less, or close first.",
    reasons.PERP_ONLY_THE_MARKET: "Only the market itself calls `settle_order` (its step "
        "inside `execute_order`): call `execute_order` instead.",
    reasons.PERP_SEND_MORE_GAS: "An execution needs 300,000 gas left before its trade (so "
        "that no keeper can make the trade fail for want of gas): send it again with a "
        "higher gas limit.",
    reasons.PERP_ZERO_AMOUNT: "The amount is zero: give a positive amount.",
    reasons.PERP_ZERO_SIZE: "The order size is zero: give a size.",
    reasons.PERP_FACTORY_ADMIN_ACCOUNT_OTHER_FACTORY: "Name an admin account other than the "
        "factory.",
    reasons.PERP_FACTORY_BLUEPRINT_NOT_CONTRACT: "Deploy the factory over a PerpMarket "
        "blueprint.",
    reasons.PERP_FACTORY_FEE_RECIPIENT_ZERO_ADDRESS: "Give a fee recipient.",
    reasons.PERP_FACTORY_INDEX_FEED_MORE_18: "Use an index feed of at most 18 decimals.",
    reasons.PERP_FACTORY_INDEX_FEED_NOT_CONTRACT: "Give the index feed's adapter address.",
    reasons.PERP_FACTORY_MARGIN_ASSET_MORE_18: "Use a margin asset of at most 18 decimals.",
    reasons.PERP_FACTORY_MARGIN_ASSET_NOT_CONTRACT: "Give the stablecoin's contract address.",
    reasons.PERP_FACTORY_MARKET_ALREADY_EXISTS: "This asset and feed already have a market: "
        "trade there (`ape run perp status`).",
}


def explain(reason: str, detail: str = "") -> str:
    """A refusal as a person reads it: the market's short message, `detail` (the numbers,
    starting with its own separator: `" (caps: ...)"`, `"; the order needs ..."`) and the
    sentence saying what to do next. A message this module does not know stays as it is."""
    sentence = EXPLANATIONS.get(reason)
    return f"{reason}{detail}. {sentence}" if sentence else f"{reason}{detail}"


# ---------------------------------------------------------------------------------
# Parameters and arithmetic
# ---------------------------------------------------------------------------------


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


def premium(price: int, skew: int, size_delta: int, skew_scale: int,
            scale: int) -> tuple[int, int]:
    """`perp_math._premium`: (premium in asset units, average fill price) of a trade of
    `size_delta` from `skew`. Only the part that increases |skew| pays; a trade crossing
    zero skew is two legs split at zero, the reducing leg at the index (no rebate). A
    leg `x` from start skew `s` pays `ceil(ceil(P * (2|s| + |x|) / (2 * scale * WAD)) *
    |x| / value_scale)`; the average fill rounds against the trader. Raises ValueError
    where the market refuses a non-positive fill (PERP_FILL_PRICE_NOT_POSITIVE)."""
    if size_delta == 0:
        return 0, price
    start, leg = skew, size_delta
    if skew != 0 and (skew > 0) != (size_delta > 0):
        if abs(size_delta) <= abs(skew):
            return 0, price
        start, leg = 0, size_delta + skew
    n = abs(leg)
    per_unit = ceil_div(price * (2 * abs(start) + n), 2 * skew_scale * WAD)
    paid = per_unit * n
    avg = ceil_div(paid, abs(size_delta))
    if size_delta < 0:
        if avg >= price:
            raise ValueError("fill price is not positive (trade too large for the skew scale)")
        return ceil_div(paid, scale), price - avg
    return ceil_div(paid, scale), price + avg


def fill_price(price: int, skew: int, size_delta: int, skew_scale: int) -> int:
    """The average fill of a trade (`premium`'s second value; `PerpLens.fill_price`)."""
    return premium(price, skew, size_delta, skew_scale, WAD)[1]


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


def exit_premium(size: int, price: int, skew_scale: int, scale: int) -> int:
    """`perp_math._exit_premium`: what closing `size` pays against a zero skew,
    `ceil(ceil(P * |size| / (2 * skew_scale * WAD)) * |size| / value_scale)`."""
    n = abs(size)
    return ceil_div(ceil_div(price * n, 2 * skew_scale * WAD) * n, scale)


def requirement(size: int, price: int, bps: int, keeper: int, skew_scale: int,
                scale: int) -> int:
    """`perp_math._requirement`: `ceil(notional * bps / BPS) + keeper` plus the
    position's exit premium (asset units)."""
    return (ceil_div(abs(size) * price * bps, scale * BPS) + keeper
            + exit_premium(size, price, skew_scale, scale))


def initial_margin(size: int, price: int, params: RiskParams, scale: int) -> int:
    """Equity a position needs after an open or increase (leverage cap, exit premium)."""
    return requirement(size, price, params.initial_margin_bps, params.min_keeper_fee,
                       params.skew_scale, scale)


def maintenance_margin(size: int, price: int, params: RiskParams, scale: int) -> int:
    """Equity under which a position can be liquidated: maintenance margin, liquidation
    fee, minimum keeper fee and exit premium (independent of the skew)."""
    return requirement(size, price, params.maintenance_margin_bps + params.liquidation_fee_bps,
                       params.min_keeper_fee, params.skew_scale, scale)


def keeper_fee(size: int, price: int, params: RiskParams, scale: int) -> int:
    """What a liquidation of `size` at `price` pays the keeper (rounded down)."""
    return params.min_keeper_fee + notional(size, price, scale) * params.liquidation_fee_bps // BPS


def settlement(size: int, last_price: int, last_funding: int, price: int, fidx: int,
               scale: int) -> int:
    """PnL minus funding owed since the last settlement (asset units, rounded down)."""
    return floor_div(size * (price - last_price) - size * (fidx - last_funding), scale)


def haircut(gain: int, insurance: int, claims: int) -> int:
    """`PerpMarket._realise`: the part of a settlement that reaches the margin. A loss
    in full; a gain in full while the insurance fund (marked before the settlement) is
    not negative, else `gain * (claims + insurance) // claims` (at least 0, at most the
    gain), `claims` being the sides' positive net PnL in asset units (rounded up)."""
    if gain <= 0 or insurance >= 0:
        return gain
    if claims + insurance <= 0:
        return 0
    return min(gain * (claims + insurance) // claims, gain)


def move_covered(max_move_bps: int, params: RiskParams) -> bool:
    """`PerpMarket._check_move_covered`: one accepted update (at most `max_move_bps`),
    with the liquidation fee on the moved notional and the exit fee, stays below the
    maintenance margin: `m * (1 + liq) + taker < maintenance`. No move limit covers
    nothing."""
    return max_move_bps != 0 and (max_move_bps * (BPS + params.liquidation_fee_bps)
                                  + params.taker_fee_bps * BPS
                                  < params.maintenance_margin_bps * BPS)


def widest_move_bps(params: RiskParams) -> int:
    """The largest feed move limit (bps) `params` accept (0: none does)."""
    room = (params.maintenance_margin_bps - params.taker_fee_bps) * BPS
    return max(ceil_div(room, BPS + params.liquidation_fee_bps) - 1, 0)


def default_order_age(heartbeat: int) -> int:
    """The order window's maximum age a new market starts with: two heartbeats of its
    feed, within one minute and 30 days (one round must land in that time)."""
    return min(max(2 * heartbeat, MIN_ORDER_AGE), MAX_ORDER_AGE)


def order_window_refusal(min_delay: int, max_age: int, keeper_fee_units: int) -> str | None:
    """`PerpMarket.set_order_window`'s check."""
    if not (MIN_ORDER_AGE <= max_age <= MAX_ORDER_AGE and 0 <= min_delay < max_age
            and 0 <= keeper_fee_units <= MASK96):
        return reasons.PERP_ORDER_WINDOW_OUT_OF_RANGE
    return None


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


# ---------------------------------------------------------------------------------
# Orders, executions, withdrawals
# ---------------------------------------------------------------------------------


def commit_refusal(size_delta: int, *, pending: bool, params_set: bool, margin: int,
                   order_fee: int) -> str | None:
    """`PerpMarket.commit_order`'s checks, in its order: a size, within the order size
    limit, no order pending, risk parameters set, and a margin (deposits included) that
    covers the keeper fee the order reserves in it."""
    if size_delta == 0:
        return reasons.PERP_ZERO_SIZE
    if abs(size_delta) > MAX_ORDER_SIZE:
        return reasons.PERP_ORDER_SIZE_TOO_LARGE
    if pending:
        return reasons.PERP_ORDER_ALREADY_PENDING
    if not params_set:
        return reasons.PERP_RISK_PARAMETERS_NOT_SET
    if margin < order_fee:
        return reasons.PERP_MARGIN_DOES_NOT_COVER_KEEPER
    return None


def window_refusal(now: int, committed_at: int, min_delay: int, max_age: int) -> str | None:
    """`PerpMarket.execute_order`'s window: none pending, too early, expired."""
    if committed_at == 0:
        return reasons.PERP_NO_PENDING_ORDER
    if now < committed_at + min_delay:
        return reasons.PERP_ORDER_NOT_EXECUTABLE_YET
    if now > committed_at + max_age:
        return reasons.PERP_ORDER_EXPIRED_CANCEL
    return None


def cancel_refusal(now: int, committed_at: int, max_age: int) -> str | None:
    """`PerpMarket.cancel_order`'s checks: an order, and expired."""
    if committed_at == 0:
        return reasons.PERP_NO_PENDING_ORDER
    if now <= committed_at + max_age:
        return reasons.PERP_ORDER_NOT_EXPIRED
    return None


def withdrawable(size: int, margin: int, equity: int, price: int, params: RiskParams,
                 scale: int, reserved: int = 0) -> int:
    """`PerpLens.withdrawable`: all of the settled margin without a position; with one,
    `min(margin, equity) - initial margin` (losses count, gains do not), at least 0.
    `reserved`: a pending order's keeper fee, which the margin keeps (the market refuses
    every withdrawal while an order is pending, and so does the lens)."""
    room = margin - reserved
    if size != 0:
        room = min(room, min(margin, equity) - initial_margin(size, price, params, scale))
    return max(room, 0)


def withdrawal_refusal(amount: int, size: int, margin: int, settled: int, price: int,
                       fresh: bool, params: RiskParams, scale: int, free_cash: int,
                       reserved: int | None = None) -> str | None:
    """`PerpMarket.withdraw_margin`'s checks, in its order. `settled`: PnL minus funding
    owed at `price` now; `free_cash`: cash - uncollected fees; `reserved`: the keeper
    fee of a pending order (None: no order pending; with one nothing is withdrawable)."""
    if amount == 0:
        return reasons.PERP_ZERO_AMOUNT
    if amount > margin:
        return reasons.PERP_WITHDRAWAL_EXCEEDS_MARGIN
    if size != 0:
        if not fresh or price == 0:
            return reasons.PERP_INDEX_PRICE_STALE_OR_HALTED
        if margin - amount + min(settled, 0) < initial_margin(size, price, params, scale):
            return reasons.PERP_WITHDRAWAL_LEAVE_LESS_INITIAL
    if reserved is not None:
        return reasons.PERP_ORDER_ALREADY_PENDING
    if amount > free_cash:
        return reasons.PERP_FREE_CASH_DOES_NOT_COVER
    return None


class MarketState(BaseModel):
    """What a pre-trade check reads from the chain. `price` is the price the order fills
    at (the first oracle round after its commit); `fresh` whether the latest index is
    fresh and the feed not halted (an execution needs it)."""

    model_config = ConfigDict(frozen=True)

    price: int = Field(description="fill round's index price, WAD")
    fresh: bool
    long_oi: int
    short_oi: int
    paused: bool = Field(description="the guardian's pause")
    deficit: int = Field(ge=0, description="recorded insurance deficit (asset units)")
    insurance: int = Field(description="insurance fund marked to the price (asset units)")
    params: RiskParams
    asset_decimals: int = Field(ge=0, le=18)
    max_move_bps: int | None = Field(default=None, description=(
        "the index feed's move limit (bps); None: not checked"))

    @property
    def skew(self) -> int:
        return self.long_oi - self.short_oi

    @property
    def scale(self) -> int:
        return value_scale(self.asset_decimals)


class TradeQuote(BaseModel):
    """A predicted execution: the refusal the market would give (which cancels the
    order, the keeper still paid), or the result. `margin_after` is net of the
    premium, the fee and the keeper fee."""

    model_config = ConfigDict(frozen=True)

    refusal: str | None
    fill_price: int = 0
    fee: int = 0
    premium: int = 0
    size_after: int = 0
    margin_after: int = 0


def quote_trade(state: MarketState, size: int, equity: int, size_delta: int,
                acceptable_price: int, keeper_fee: int = 0) -> TradeQuote:
    """Predict the execution of an order of `size_delta` with `acceptable_price` for a
    position of `size` with `equity` (its margin plus the settlement at the fill price
    and funding now, a gain after any haircut), in the market's order of checks
    (`execute_order` from its fresh-index check on, then `_trade`). The trade charges
    the premium, the fee and the order's `keeper_fee` (reserved in the margin since
    the commit, paid to the executor)."""
    p, scale = state.params, state.scale
    if size_delta == 0:
        return TradeQuote(refusal=reasons.PERP_ZERO_SIZE)
    if state.price == 0 or not state.fresh:
        return TradeQuote(refusal=reasons.PERP_INDEX_PRICE_STALE_OR_HALTED)
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
        if state.max_move_bps is not None and not move_covered(state.max_move_bps, p):
            return TradeQuote(refusal=reasons.PERP_FEED_MOVE_REACHES_MAINTENANCE)
    try:
        paid, fill = premium(state.price, state.skew, size_delta, p.skew_scale, scale)
    except ValueError:
        return TradeQuote(refusal=reasons.PERP_FILL_PRICE_NOT_POSITIVE)
    if (fill > acceptable_price) if size_delta > 0 else (fill < acceptable_price):
        return TradeQuote(refusal=reasons.PERP_FILL_PRICE_WORSE_ACCEPTABLE, fill_price=fill)
    fee = trade_fee(state.skew, size_delta, fill, p, scale)
    after = equity - paid - fee - keeper_fee
    quote = {"fill_price": fill, "fee": fee, "premium": paid, "size_after": new_size,
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


def max_size_for_margin(state: MarketState, equity: int, short: bool,
                        keeper_fee: int = 0) -> int:
    """The largest new position (WAD GPU-hours, positive) that `equity` opens from flat
    by an order paying `keeper_fee`, within the initial margin, fees and premium
    included (binary search over `quote_trade`, so every rounding matches the market)."""
    lo, hi = 0, max(state.params.max_long_oi, state.params.max_short_oi) * WAD
    sign = -1 if short else 1
    acceptable = 0 if short else MAX_UINT256
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if quote_trade(state, 0, equity, sign * mid, acceptable, keeper_fee).refusal is None:
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


def liquidation_price(size: int, margin: int, last_price: int, funding_paid: int,
                      params: RiskParams, scale: int) -> int:
    """`PerpLens.liquidation_price` of a position settled at `last_price` that owes
    `funding_paid` (size x funding index move, WAD x WAD) since: the index at which its
    equity reaches maintenance, liquidation fee, keeper fee and exit premium. 0 without
    a position or when no price reaches it; max_value(uint256) for a long every price
    liquidates."""
    if size == 0:
        return 0
    margin_v, keeper = margin * scale, params.min_keeper_fee * scale
    c = ((params.maintenance_margin_bps + params.liquidation_fee_bps) * WAD // BPS
         + abs(size) // (2 * params.skew_scale))
    if size > 0:
        num = (keeper - margin_v + size * last_price + funding_paid) * WAD
        den = size * (WAD - c)
        if den <= 0:
            return MAX_UINT256
    else:
        num = (margin_v - size * last_price - funding_paid - keeper) * WAD
        den = -size * (WAD + c)
    return num // den if num > 0 else 0


def liquidation_price_after(size: int, margin: int, price: int, params: RiskParams,
                            scale: int) -> int:
    """`PerpLens.liquidation_price` of a position just settled at `price` (no funding
    owed yet): what an execution leaves."""
    return liquidation_price(size, margin, price, 0, params, scale)
