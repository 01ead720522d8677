# pragma version ~=0.4.3
"""
@title Bench Crowd (benchmark only)
@license GNU Affero General Public License v3.0 only
@notice Spawns up to 100 `BenchTrader` proxies per call, each with its own margin and
        a committed order in a PerpMarket, and executes their orders (as their keeper,
        up to 100 per call) once an oracle round has landed after the commits: the
        "1,000 other open positions" of `make bench`.
"""

from ethereum.ercs import IERC20


interface IBenchTrader:
    def open(market: address, asset: address, margin: uint256, size: int256): nonpayable


interface IPerpMarket:
    def execute_order(account: address) -> uint256: nonpayable


# @dev The proxies spawned so far, in order.
trader_at: public(HashMap[uint256, address])
trader_count: public(uint256)


@external
def spawn(implementation: address, market: address, asset: address, margin: uint256,
          sizes: DynArray[int256, 100]):
    """
    @notice One proxy trader per entry of `sizes`, each funded with `margin` of `asset`
            (held by this contract) and committing an order for that size.
    """
    count: uint256 = self.trader_count
    for size: int256 in sizes:
        trader: address = create_minimal_proxy_to(implementation)
        assert extcall IERC20(asset).transfer(trader, margin)
        extcall IBenchTrader(trader).open(market, asset, margin, size)
        self.trader_at[count] = trader
        count += 1
    self.trader_count = count


@external
def execute(market: address, first: uint256, count: uint256):
    """
    @notice Executes the pending orders of the proxies `first` to `first + count - 1`
            (at most 100); the keeper fees are credited to this contract's margin in
            the market.
    """
    for i: uint256 in range(count, bound=100):
        extcall IPerpMarket(market).execute_order(self.trader_at[first + i])
