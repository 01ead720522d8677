# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Kinked Interest Rate Model
@custom:contract-name KinkedRateModel
@license GNU Affero General Public License v3.0 only
@notice The borrow rate as a function of a pool's utilisation
        `u = total borrowed / total supplied` (capped at 100 %):
        - below the kink: `base + slope1 * u / kink`;
        - above the kink: `base + slope1 + slope2 * (u - kink) / (1 - kink)`.
        The steep second slope pulls utilisation back under the kink: borrowers
        repay and lenders supply when liquidity runs short, so lenders can withdraw.
        Rates are annual (1e18 = 100 % a year, 365-day year) and returned per
        second, the unit the pool compounds in. The parameters are immutable: a
        market with other rates is a new market with another model.
@custom:security The maximum rate is bounded by `MAX_RATE_PER_YEAR` (1,000 % a
                 year), so the pool's continuous compounding cannot overflow its
                 index within any realistic lifetime.
"""


from .interfaces import IRateModel
from .modules import reasons
implements: IRateModel


# @dev 1.0 in 18-decimal fixed point.
WAD: constant(uint256) = 10**18
# @dev Seconds in a 365-day year.
SECONDS_PER_YEAR: public(constant(uint256)) = 31_536_000
# @dev Cap of `base + slope1 + slope2` (1,000 % a year).
MAX_RATE_PER_YEAR: public(constant(uint256)) = 10 * WAD

# @dev Annual rate at zero utilisation (1e18 = 100 %).
base_rate_per_year: public(immutable(uint256))
# @dev Annual rate added between zero utilisation and the kink.
slope1_per_year: public(immutable(uint256))
# @dev Annual rate added between the kink and full utilisation.
slope2_per_year: public(immutable(uint256))
# @dev The kink's utilisation (1e18 = 100 %), strictly between 0 and 1.
kink: public(immutable(uint256))


@deploy
@payable
def __init__(base_rate_per_year_: uint256, slope1_per_year_: uint256, slope2_per_year_: uint256, kink_: uint256):
    """
    @notice Deploys a rate model with fixed parameters (annual, 1e18 = 100 %).
    @param base_rate_per_year_ Rate at zero utilisation.
    @param slope1_per_year_ Rate added up to the kink.
    @param slope2_per_year_ Rate added from the kink to full utilisation.
    @param kink_ Utilisation of the kink (exclusive bounds 0 and 1e18).
    """
    assert kink_ != 0 and kink_ < WAD, reasons.RATE_MODEL_KINK_STRICTLY_BETWEEN_0
    assert (
        base_rate_per_year_ + slope1_per_year_ + slope2_per_year_ <= MAX_RATE_PER_YEAR
    ), reasons.RATE_MODEL_MAXIMUM_RATE_ABOVE_1
    base_rate_per_year = base_rate_per_year_
    slope1_per_year = slope1_per_year_
    slope2_per_year = slope2_per_year_
    kink = kink_


@external
@view
def borrow_rate(total_supplied: uint256, total_borrowed: uint256) -> uint256:
    """
    @notice The borrow rate per second (1e18 = 100 % per second).
    @param total_supplied Assets owed to the pool's lenders.
    @param total_borrowed Assets owed by the pool's borrowers.
    @return uint256 The rate per second, rounded down.
    """
    return self._annual_rate(self._utilisation(total_supplied, total_borrowed)) // SECONDS_PER_YEAR


@external
@view
def borrow_rate_per_year(total_supplied: uint256, total_borrowed: uint256) -> uint256:
    """
    @notice The annual borrow rate (1e18 = 100 % a year) at this state.
    @param total_supplied Assets owed to the pool's lenders.
    @param total_borrowed Assets owed by the pool's borrowers.
    @return uint256 The annual rate.
    """
    return self._annual_rate(self._utilisation(total_supplied, total_borrowed))


@external
@view
def utilisation(total_supplied: uint256, total_borrowed: uint256) -> uint256:
    """
    @notice Utilisation (1e18 = 100 %), capped at 100 %; 0 for an empty pool.
    @param total_supplied Assets owed to the pool's lenders.
    @param total_borrowed Assets owed by the pool's borrowers.
    @return uint256 The utilisation.
    """
    return self._utilisation(total_supplied, total_borrowed)


@internal
@pure
def _utilisation(total_supplied: uint256, total_borrowed: uint256) -> uint256:
    """
    @dev `total_borrowed / total_supplied` in WAD, capped at 1 (bad debt or reserves
         lent out can push the ratio above 1).
    """
    if total_borrowed == 0:
        return 0
    if total_borrowed >= total_supplied:
        return WAD
    return total_borrowed * WAD // total_supplied


@internal
@view
def _annual_rate(u: uint256) -> uint256:
    """
    @dev The kinked curve at utilisation `u` (WAD).
    """
    if u <= kink:
        return base_rate_per_year + slope1_per_year * u // kink
    return base_rate_per_year + slope1_per_year + slope2_per_year * (u - kink) // (WAD - kink)
