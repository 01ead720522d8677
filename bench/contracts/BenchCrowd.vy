# pragma version ~=0.4.3
"""
@title Bench Crowd (benchmark only)
@license GNU Affero General Public License v3.0 only
@notice Spawns up to 100 `BenchTrader` proxies per call, each with its own margin and
        position in a PerpMarket: the "1,000 other open positions" of `make bench`.
"""

from ethereum.ercs import IERC20


interface IBenchTrader:
    def open(market: address, asset: address, margin: uint256, size: int256): nonpayable


@external
def spawn(implementation: address, market: address, asset: address, margin: uint256,
          sizes: DynArray[int256, 100]):
    """
    @notice One proxy trader per entry of `sizes`, each funded with `margin` of `asset`
            (held by this contract) and opening that size.
    """
    for size: int256 in sizes:
        trader: address = create_minimal_proxy_to(implementation)
        assert extcall IERC20(asset).transfer(trader, margin)
        extcall IBenchTrader(trader).open(market, asset, margin, size)
