"""The lending pool's health arithmetic, exactly as `contracts/LendingPool.vy` does it.

The pool keeps its code under the EIP-170 size limit by leaving health reporting to
its readers: `position(borrower)` gives collateral and debt (rounded up, pending
interest included), `price()` the checked NAV, and this module turns them into LTV,
headroom and "can be liquidated", with the pool's integer rounding (collateral value
and LTV limits rounded down). The keeper, `ape run pool status` and the tests use it;
the stateful test checks it against what the pool accepts and refuses.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

WAD = 10**18
SHARE_DECIMALS = 18
MAX_INCENTIVE = 115 * 10**16
# `debt = ceil(scaled * index / DEBT_SCALE)` in LendingPool.
DEBT_SCALE = 10**24


class Market(BaseModel):
    """The fixed parameters that the health arithmetic needs."""

    model_config = ConfigDict(frozen=True)

    asset_decimals: int = Field(ge=0, le=18)
    feed_decimals: int = Field(ge=0, le=18)
    lltv: int = Field(gt=0, le=WAD, description="liquidation LTV, 1e18 = 100 %")
    max_ltv: int = Field(gt=0, le=WAD, description="max LTV for borrowing, 1e18 = 100 %")


class Health(BaseModel):
    """One loan at one price."""

    model_config = ConfigDict(frozen=True)

    collateral: int
    debt: int
    value: int = Field(description="collateral value in asset units, rounded down")
    ltv: int | None = Field(description="debt / value, 1e18 = 100 %, rounded up; None without debt")
    within_max_ltv: bool
    liquidatable: bool

    def ltv_percent(self) -> str:
        if self.ltv is None:
            return "-"
        if self.value == 0:
            return "inf"
        return f"{Decimal(self.ltv) / Decimal(WAD) * 100:.2f}%"


def collateral_value(market: Market, collateral: int, price: int) -> int:
    """Value of `collateral` share base units at `price` (feed decimals) in asset units,
    rounded down: `collateral * price * 10**asset / 10**(feed + 18)`."""
    scale = 10 ** (market.feed_decimals + SHARE_DECIMALS)
    return collateral * price * 10**market.asset_decimals // scale


def within(market: Market, debt: int, collateral: int, price: int, ltv: int) -> bool:
    """The pool's `_within`: `debt <= floor(value * ltv / WAD)`."""
    if debt == 0:
        return True
    return debt <= collateral_value(market, collateral, price) * ltv // WAD


def health(market: Market, collateral: int, debt: int, price: int) -> Health:
    value = collateral_value(market, collateral, price)
    if debt == 0:
        ltv = None
    elif value == 0:
        ltv = 2**256 - 1
    else:
        ltv = -(-debt * WAD // value)
    return Health(
        collateral=collateral,
        debt=debt,
        value=value,
        ltv=ltv,
        within_max_ltv=within(market, debt, collateral, price, market.max_ltv),
        liquidatable=not within(market, debt, collateral, price, market.lltv),
    )


def liquidation_incentive(lltv: int) -> int:
    """`min(1.15, 1 / (1 - 0.3 * (1 - lltv)))` in WAD, rounded down, as the pool."""
    return min(MAX_INCENTIVE, WAD * WAD // (WAD - 3 * (WAD - lltv) // 10))


def debt_after_borrow(scaled: int, index: int, amount: int) -> int:
    """The debt after borrowing `amount` at borrow `index`, rounded as the pool rounds
    (the added scaled debt up, the debt up)."""
    added = -(-amount * DEBT_SCALE // index)
    return -(-(scaled + added) * index // DEBT_SCALE)


def max_borrow(market: Market, collateral: int, debt: int, scaled: int, price: int,
               index: int) -> int:
    """The most a borrower can still borrow at `price` and borrow `index` within the max
    LTV, with the pool's rounding (the new debt is rounded up)."""
    room = max(collateral_value(market, collateral, price) * market.max_ltv // WAD - debt, 0)
    while room > 0 and not within(market, debt_after_borrow(scaled, index, room), collateral,
                                  price, market.max_ltv):
        room -= 1
    return room


def liquidation(market: Market, incentive: int, price: int, collateral: int, debt: int,
                max_repay: int) -> tuple[int, int, int]:
    """`LendingPool.liquidate`'s arithmetic: collateral for `repaid * incentive`; all of it
    (for a smaller repayment) when that is more than the loan holds, the rest of the debt
    then written off. Returns (repaid, seized, bad debt)."""
    per_repaid = incentive * 10 ** (market.feed_decimals + SHARE_DECIMALS)
    per_seized = WAD * price * 10**market.asset_decimals
    repaid = min(max_repay, debt)
    seized = repaid * per_repaid // per_seized
    if seized >= collateral:
        seized = collateral
        repaid = min(debt, -(-collateral * per_seized // per_repaid))
    bad_debt = debt - repaid if seized == collateral and repaid < debt else 0
    return repaid, seized, bad_debt


def price_for_ltv(market: Market, collateral: int, debt: int, ltv: int) -> int:
    """The highest price (feed decimals) at which the loan's LTV is above `ltv`: the
    price a NAV must fall to (or below) for the loan to be liquidatable at `ltv`."""
    if collateral == 0:
        raise ValueError("no collateral: every price makes the loan liquidatable")
    # debt > floor(value * ltv / WAD) <=> value * ltv < (debt + 1) * WAD, roughly; scan
    # down from the exact bound to absorb the floors.
    scale = 10 ** (market.feed_decimals + SHARE_DECIMALS)
    guess = (debt + 1) * WAD * scale // (ltv * collateral * 10**market.asset_decimals) + 2
    while guess > 0 and within(market, debt, collateral, guess, ltv):
        guess -= 1
    while guess > 0 and not within(market, debt, collateral, guess + 1, ltv):
        guess += 1
    return guess
