# pragma version ~=0.4.3
"""
@title Oracle sandwich attacker (test only)
@notice Issue 18 item 1: a signed price report is public before it lands (the node
        serves it from its log, then it sits in the mempool), and the hub accepts it
        from any sender. On the old one-step market this contract made a risk-free
        profit in ONE transaction: deposit, trade at the current index, relay the
        report, trade back at the new index, withdraw, and revert unless it profited
        (the margin can be a flash loan). With two-step orders each trade is an
        order that fills at the first oracle round observed strictly after its
        commit: the relayed report was observed before (or at) the commit, so the
        execution in the same transaction is refused and the whole attempt reverts.
        `commit_and_relay` is the patient variant: commit, then relay; the order can
        only fill at a later round, whose price nobody knows yet.
"""

from ethereum.ercs import IERC20


# @dev `OracleHub.PriceReport`.
struct PriceReport:
    feed_id: bytes32
    value: int256
    confidence: uint256
    observed_at: uint64
    methodology_version: uint32
    inputs_hash: bytes32
    log_size: uint64
    log_root: bytes32
    config_version: uint64


# @dev `OracleHub.Signature` (EIP-2098 compact).
struct Signature:
    r: bytes32
    vs: bytes32


interface IOracleHub:
    def submit_price(report: PriceReport, signatures: DynArray[Signature, 31]) -> bool: nonpayable


interface IPerpMarket:
    def deposit_margin(amount: uint256): nonpayable
    def withdraw_margin(amount: uint256): nonpayable
    def commit_order(size_delta: int256, acceptable_price: uint256): nonpayable
    def execute_order(account: address) -> uint256: nonpayable
    def position(account: address) -> (int256, uint256, uint256, int256): view


MARKET: public(immutable(IPerpMarket))
HUB: public(immutable(IOracleHub))
ASSET: public(immutable(IERC20))


@deploy
def __init__(market: address, hub: address, asset: address):
    MARKET = IPerpMarket(market)
    HUB = IOracleHub(hub)
    ASSET = IERC20(asset)


@internal
def _deposit(amount: uint256):
    extcall ASSET.approve(MARKET.address, amount)
    extcall MARKET.deposit_margin(amount)


@internal
def _trade(size_delta: int256):
    """
    @dev One trade, the only way the market allows: commit, then execute at once.
    """
    extcall MARKET.commit_order(size_delta, max_value(uint256) if size_delta > 0 else 0)
    extcall MARKET.execute_order(self)


@internal
def _relay(report: PriceReport, signatures: DynArray[Signature, 31]):
    assert extcall HUB.submit_price(report, signatures), "attacker: move refused"


@external
def sandwich(amount: uint256, size_delta: int256, report: PriceReport,
             signatures: DynArray[Signature, 31], relay_first: bool):
    """
    @notice The whole sandwich in one transaction: deposit `amount`, trade
            `size_delta` at the current index, relay `report`, trade back, withdraw
            everything; reverts unless the balance grew. `relay_first`: relay the
            report before the first trade instead (trade at a price that just landed
            and back in the same block).
    """
    start: uint256 = staticcall ASSET.balanceOf(self)
    self._deposit(amount)
    if relay_first:
        self._relay(report, signatures)
    self._trade(size_delta)
    if not relay_first:
        self._relay(report, signatures)
    self._trade(-size_delta)
    margin: uint256 = (staticcall MARKET.position(self))[1]
    extcall MARKET.withdraw_margin(margin)
    assert staticcall ASSET.balanceOf(self) > start, "attacker: no profit"


@external
def commit_and_relay(amount: uint256, size_delta: int256, report: PriceReport,
                     signatures: DynArray[Signature, 31]):
    """
    @notice Deposit, commit `size_delta`, relay `report` (one transaction, no
            execution): the order must not fill at the relayed price.
    """
    self._deposit(amount)
    extcall MARKET.commit_order(size_delta, max_value(uint256) if size_delta > 0 else 0)
    self._relay(report, signatures)


@external
def commit(size_delta: int256):
    """
    @notice Commit an order (any fill).
    """
    extcall MARKET.commit_order(size_delta, max_value(uint256) if size_delta > 0 else 0)


@external
def withdraw(amount: uint256):
    """
    @notice Withdraw margin to this contract.
    """
    extcall MARKET.withdraw_margin(amount)
