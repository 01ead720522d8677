"""Amounts as people type and read them: decimal strings <-> base units, percentages.

Every parser refuses what it cannot represent exactly (a 7th decimal of a 6-decimal
stablecoin, a fraction of a basis point) with a sentence naming the field, instead of
rounding silently: `BadInput` carries it, and the scripts show it as a usage error.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

WAD = 10**18
SHARE_DECIMALS = 18
#: The largest amount any contract of the suite takes (a uint256).
MAX_UINT256 = 2**256 - 1
# Typed amounts: plain decimal digits, an optional fraction (no exponents, underscores or
# non-ASCII digits, which Decimal would otherwise accept).
_PLAIN = re.compile(r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)")


class BadInput(ValueError):
    """An input the client cannot use as given; the message names the field and why."""


def _number(value: str | Decimal | int, what: str, *, allow_zero: bool, kind: str) -> Decimal:
    """A finite, non-negative (or positive) decimal; BadInput naming `what` otherwise. Text
    must be plain digits with an optional fraction (`1234.5`): no exponent, separator or
    non-ASCII digit."""
    if isinstance(value, str) and not _PLAIN.fullmatch(value.strip()):
        raise BadInput(f"{what}: {value!r} is not a number (digits and an optional decimal "
                       "point, e.g. 1234.5)")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise BadInput(f"{what}: {value!r} is not a number") from exc
    if not number.is_finite() or number < 0 or (number == 0 and not allow_zero):
        sign = "non-negative" if allow_zero else "positive"
        raise BadInput(f"{what}: must be a {sign} {kind}, got {value}")
    return number


def to_base_units(amount: str | Decimal | int, decimals: int, what: str, *,
                  allow_zero: bool = False) -> int:
    """`'1234.5'` -> base units with `decimals`, refusing excess precision."""
    value = _number(amount, what, allow_zero=allow_zero, kind="amount")
    if value.adjusted() > 80:  # far beyond any uint256 amount at any decimals
        raise BadInput(f"{what}: {amount} is too large")
    try:
        scaled = value.scaleb(decimals)
    except ArithmeticError as exc:
        raise BadInput(f"{what}: {amount} is too large") from exc
    if scaled != scaled.to_integral_value():
        raise BadInput(f"{what}: {amount} has more than {decimals} decimals")
    if scaled > MAX_UINT256:
        raise BadInput(f"{what}: {amount} is too large (the contracts take at most "
                       f"{fmt_units(MAX_UINT256, decimals)})")
    return int(scaled)


def fmt_units(value: int, decimals: int) -> str:
    """Base units as a decimal string with thousands separators, trailing zeros cut."""
    text = f"{Decimal(value).scaleb(-decimals):,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def parse_percent(value: str | Decimal, what: str, *, allow_zero: bool = False,
                  cap: Decimal | None = Decimal(100)) -> Decimal:
    """A percentage as a Decimal, refusing what is not a number in range."""
    number = _number(value, what, allow_zero=allow_zero, kind="percentage")
    if cap is not None and number > cap:
        raise BadInput(f"{what}: {value} is above {cap} %")
    return number


def percent_to_wad(number: Decimal, what: str) -> int:
    """A percentage as a WAD fraction (80 -> 0.8e18), refusing excess precision."""
    scaled = number.scaleb(16)
    if scaled != scaled.to_integral_value():
        raise BadInput(f"{what}: {number} has more than 16 decimals")
    return int(scaled)


def percent_to_bps(number: Decimal, what: str) -> int:
    """A percentage as basis points (10 -> 1,000), refusing fractions of a basis point."""
    scaled = number.scaleb(2)
    if scaled != scaled.to_integral_value():
        raise BadInput(f"{what}: {number} is finer than a basis point (0.01)")
    return int(scaled)


def percent(wad: int) -> str:
    """A WAD fraction as a percentage with two decimals."""
    return f"{Decimal(wad) / Decimal(WAD) * 100:.2f}%"


def address(value: str, what: str) -> str:
    """`value` as a checksummed address, or BadInput naming the field (a truncated
    `0x7099...79C8` copied from a document is refused here, before anything is sent)."""
    from eth_utils import is_address, to_checksum_address

    if not isinstance(value, str) or not is_address(value):
        raise BadInput(f"{what}: {value!r} is not an address (40 hex digits after 0x)")
    return to_checksum_address(value)
