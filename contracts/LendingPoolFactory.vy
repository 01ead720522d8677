# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Lending Pool Factory
@custom:contract-name LendingPoolFactory
@license GNU Affero General Public License v3.0 only
@notice Deploys isolated `LendingPool` markets from one ERC-5202 blueprint and keeps
        the list. A market is defined by five parameters (loan asset, collateral
        share token, price feed, interest rate model, liquidation LTV); its id is
        `keccak256(abi_encode(...))` of them and each id exists at most once.
        A new pool can only hold collateral once a KYC provider registers it as an
        eligible holder in the compliance registry (`ape run pool create` does both
        when the account may).
@custom:security The factory holds no funds and has no power over the pools it
                 deployed: each pool's roles belong to its creator.
"""


from ethereum.ercs import IERC20Detailed

from snekmate.auth import access_control
initializes: access_control

from .interfaces import AggregatorV3Interface
from .modules import reasons

exports: access_control.__interface__


# @dev Role allowed to create markets.
MARKET_CREATOR_ROLE: public(constant(bytes32)) = keccak256("MARKET_CREATOR_ROLE")
# @dev ERC-5202 blueprint preamble length (0xFE 0x71 0x00).
BLUEPRINT_CODE_OFFSET: constant(uint256) = 3
# @dev Most markets `list_markets` returns in one call.
MAX_PAGE: constant(uint256) = 100
# @dev Highest liquidation LTV a market may have (95 %), as in `LendingPool`.
MAX_LLTV: constant(uint256) = 95 * 10**16
# @dev Highest reserve factor (50 % of the interest), as in `LendingPool`.
MAX_RESERVE_FACTOR_BPS: constant(uint256) = 5_000


# @dev ERC-5202 blueprint of LendingPool.
pool_blueprint: public(immutable(address))

# @dev Pool by market id; the zero address when the market does not exist.
pool_of: public(HashMap[bytes32, address])
# @dev Pools in creation order, ids 1..market_count.
market_at: public(HashMap[uint256, address])
# @dev Number of markets created.
market_count: public(uint256)


# @dev Emitted when a market is created.
event MarketCreated:
    market_id: indexed(bytes32)
    pool: indexed(address)
    creator: indexed(address)
    asset: address
    collateral_token: address
    price_feed: address
    rate_model: address
    lltv: uint256
    max_ltv: uint256
    reserve_factor_bps: uint256
    treasury: address


@deploy
@payable
def __init__(pool_blueprint_: address):
    """
    @notice Deploys the factory; the deployer becomes its admin and may create markets.
    @param pool_blueprint_ Address of the LendingPool ERC-5202 blueprint.
    """
    assert pool_blueprint_.is_contract, reasons.POOL_FACTORY_BLUEPRINT_NOT_CONTRACT
    access_control.__init__()
    access_control._grant_role(MARKET_CREATOR_ROLE, msg.sender)
    pool_blueprint = pool_blueprint_


@external
def create_market(
    asset: address,
    collateral_token: address,
    price_feed: address,
    rate_model: address,
    lltv: uint256,
    max_ltv: uint256,
    reserve_factor_bps: uint256,
    treasury: address,
    name: String[25],
    symbol: String[5],
) -> address:
    """
    @notice Deploys a lending pool. The caller becomes its admin, risk admin and
            guardian. Every parameter is checked here, with a reason (the pool's
            constructor repeats the checks that protect it, without one).
    @dev Only `MARKET_CREATOR_ROLE`.
    @param asset The loan asset (a USD stablecoin).
    @param collateral_token The collateral GPUShareToken.
    @param price_feed AggregatorV3 feed of one whole share in USD (the SPV's NAV feed).
    @param rate_model The interest rate model.
    @param lltv Liquidation LTV (1e18 = 100 %).
    @param max_ltv Max LTV for borrowing (1e18 = 100 %), below `lltv`.
    @param reserve_factor_bps Share of the interest to reserves (basis points).
    @param treasury Receiver of the reserves.
    @param name Vault share name (at most 25 characters).
    @param symbol Vault share symbol (at most 5 characters).
    @return address The new pool.
    """
    access_control._check_role(MARKET_CREATOR_ROLE, msg.sender)
    market_id: bytes32 = keccak256(abi_encode(asset, collateral_token, price_feed, rate_model, lltv))
    assert self.pool_of[market_id] == empty(address), reasons.POOL_FACTORY_MARKET_ALREADY_EXISTS
    assert len(name) != 0 and len(symbol) != 0, reasons.POOL_FACTORY_EMPTY_VAULT_NAME_SYMBOL
    assert asset.is_contract, reasons.POOL_FACTORY_LOAN_ASSET_NOT_CONTRACT
    assert collateral_token.is_contract, reasons.POOL_FACTORY_COLLATERAL_TOKEN_NOT_CONTRACT
    assert price_feed.is_contract, reasons.POOL_FACTORY_PRICE_FEED_NOT_CONTRACT
    assert rate_model.is_contract, reasons.POOL_FACTORY_RATE_MODEL_NOT_CONTRACT
    assert lltv != 0 and lltv <= MAX_LLTV, reasons.POOL_FACTORY_LIQUIDATION_LTV_ABOVE_0
    assert max_ltv != 0 and max_ltv < lltv, reasons.POOL_FACTORY_MAX_LTV_ABOVE_0
    assert reserve_factor_bps <= MAX_RESERVE_FACTOR_BPS, reasons.POOL_FACTORY_RESERVE_FACTOR_ABOVE_50
    assert treasury != empty(address), reasons.POOL_FACTORY_TREASURY_ZERO_ADDRESS
    assert staticcall IERC20Detailed(asset).decimals() <= 18, reasons.POOL_FACTORY_LOAN_ASSET_MORE_18
    assert staticcall IERC20Detailed(collateral_token).decimals() == 18, reasons.POOL_FACTORY_COLLATERAL_NOT_18_DECIMAL
    assert staticcall AggregatorV3Interface(price_feed).decimals() <= 18, reasons.POOL_FACTORY_PRICE_FEED_MORE_18
    pool: address = create_from_blueprint(
        pool_blueprint,
        name,
        symbol,
        asset,
        collateral_token,
        price_feed,
        rate_model,
        lltv,
        max_ltv,
        reserve_factor_bps,
        treasury,
        msg.sender,
        code_offset=BLUEPRINT_CODE_OFFSET,
    )
    count: uint256 = self.market_count + 1
    self.market_count = count
    self.market_at[count] = pool
    self.pool_of[market_id] = pool
    log MarketCreated(
        market_id=market_id,
        pool=pool,
        creator=msg.sender,
        asset=asset,
        collateral_token=collateral_token,
        price_feed=price_feed,
        rate_model=rate_model,
        lltv=lltv,
        max_ltv=max_ltv,
        reserve_factor_bps=reserve_factor_bps,
        treasury=treasury,
    )
    return pool


@external
@view
def market_id_of(
    asset: address, collateral_token: address, price_feed: address, rate_model: address, lltv: uint256
) -> bytes32:
    """
    @notice The id of the market with these defining parameters.
    @return bytes32 keccak256 of the ABI-encoded parameters.
    """
    return keccak256(abi_encode(asset, collateral_token, price_feed, rate_model, lltv))


@external
@view
def list_markets(start: uint256, count: uint256) -> DynArray[address, MAX_PAGE]:
    """
    @notice Pools with ids `start`..`start + count - 1` (ids start at 1), at most 100.
    @param start First id.
    @param count How many.
    @return DynArray The pools, in creation order.
    """
    result: DynArray[address, MAX_PAGE] = []
    total: uint256 = self.market_count
    if start == 0 or start > total:
        return result
    # start <= total: no overflow below, whatever `count` is.
    last: uint256 = min(total, start - 1 + min(count, MAX_PAGE))
    for i: uint256 in range(MAX_PAGE):
        if start + i > last:
            break
        result.append(self.market_at[start + i])
    return result
