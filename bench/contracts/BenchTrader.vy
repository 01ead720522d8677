# pragma version ~=0.4.3
"""
@title Bench Trader (benchmark only)
@license GNU Affero General Public License v3.0 only
@notice One trader of `make bench`'s crowd: deployed as an EIP-1167 proxy by
        `BenchCrowd`, it deposits the margin it was sent and commits one order (any
        fill accepted), so the benchmark can fill a market with 1,000 real positions
        in a few transactions once a keeper executes the orders after the next
        oracle round.
"""

from ethereum.ercs import IERC20


interface IPerpMarket:
    def deposit_margin(amount: uint256): nonpayable
    def commit_order(size_delta: int256, acceptable_price: uint256): nonpayable


@external
def open(market: address, asset: address, margin: uint256, size: int256):
    """
    @notice Deposits `margin` (already held) into `market` and commits an order for
            `size`; the market reserves its keeper fee in that margin.
    """
    assert extcall IERC20(asset).approve(market, margin)
    extcall IPerpMarket(market).deposit_margin(margin)
    acceptable: uint256 = max_value(uint256) if size > 0 else 0
    extcall IPerpMarket(market).commit_order(size, acceptable)
