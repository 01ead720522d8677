# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Perp Market Factory
@custom:contract-name PerpMarketFactory
@license GNU Affero General Public License v3.0 only
@notice Deploys `PerpMarket`s from one ERC-5202 blueprint and keeps the list: one
        market per (margin asset, index feed), its id `keccak256(abi_encode(asset,
        index_feed))`. The factory sets each market's first risk parameters in the
        creating transaction and keeps no role in it.
@custom:security The factory holds no funds and has no power over the markets it
                 deployed: each market's roles belong to the admin named at creation.
"""


from ethereum.ercs import IERC20Detailed

from snekmate.auth import access_control
initializes: access_control

from .interfaces import AggregatorV3Interface
from .modules import reasons

exports: access_control.__interface__


# @dev The market's risk parameters (as `PerpMarket.RiskParams`).
struct RiskParams:
    skew_scale: uint256
    max_long_oi: uint256
    max_short_oi: uint256
    initial_margin_bps: uint256
    maintenance_margin_bps: uint256
    taker_fee_bps: uint256
    maker_fee_bps: uint256
    liquidation_fee_bps: uint256
    min_keeper_fee: uint256
    max_funding_velocity: uint256
    max_funding_rate: uint256


# @dev What the factory calls on a new market.
interface IPerpMarket:
    def set_risk_params(params_: RiskParams): nonpayable
    def renounceRole(role: bytes32, account: address): nonpayable


# @dev Role allowed to create markets.
MARKET_CREATOR_ROLE: public(constant(bytes32)) = keccak256("MARKET_CREATOR_ROLE")
# @dev The market's risk admin role (as in `PerpMarket`).
RISK_ADMIN_ROLE: constant(bytes32) = keccak256("RISK_ADMIN_ROLE")
# @dev ERC-5202 blueprint preamble length (0xFE 0x71 0x00).
BLUEPRINT_CODE_OFFSET: constant(uint256) = 3
# @dev Most markets `list_markets` returns in one call.
MAX_PAGE: constant(uint256) = 100


# @dev ERC-5202 blueprint of PerpMarket.
market_blueprint: public(immutable(address))

# @dev Market by id; the zero address when the market does not exist.
market_of: public(HashMap[bytes32, address])
# @dev Markets in creation order, ids 1..market_count.
market_at: public(HashMap[uint256, address])
# @dev Number of markets created.
market_count: public(uint256)


# @dev Emitted when a market is created.
event MarketCreated:
    market_id: indexed(bytes32)
    market: indexed(address)
    creator: indexed(address)
    asset: address
    index_feed: address
    admin: address
    fee_recipient: address


@deploy
@payable
def __init__(market_blueprint_: address):
    """
    @notice Deploys the factory; the deployer becomes its admin and may create markets.
    @param market_blueprint_ Address of the PerpMarket ERC-5202 blueprint.
    """
    assert market_blueprint_.is_contract, reasons.PERP_FACTORY_BLUEPRINT_NOT_CONTRACT
    access_control.__init__()
    access_control._grant_role(MARKET_CREATOR_ROLE, msg.sender)
    market_blueprint = market_blueprint_


@external
def create_market(
    asset: address, index_feed: address, params: RiskParams, fee_recipient: address, admin: address
) -> address:
    """
    @notice Deploys a perpetual market on `index_feed`, margined in `asset`, and sets
            its risk parameters (the market checks them, with reasons). `admin`
            receives the market's admin, risk admin and guardian roles.
    @dev Only `MARKET_CREATOR_ROLE`.
    @param asset The margin asset (a USD stablecoin, at most 18 decimals).
    @param index_feed The AggregatorV3 GPU-hour index feed.
    @param params The risk parameters.
    @param fee_recipient Receiver of the trading fees.
    @param admin The market's admin.
    @return address The new market.
    """
    access_control._check_role(MARKET_CREATOR_ROLE, msg.sender)
    market_id: bytes32 = keccak256(abi_encode(asset, index_feed))
    assert self.market_of[market_id] == empty(address), reasons.PERP_FACTORY_MARKET_ALREADY_EXISTS
    assert asset.is_contract, reasons.PERP_FACTORY_MARGIN_ASSET_NOT_CONTRACT
    assert index_feed.is_contract, reasons.PERP_FACTORY_INDEX_FEED_NOT_CONTRACT
    assert admin != empty(address) and admin != self, reasons.PERP_FACTORY_ADMIN_ACCOUNT_OTHER_FACTORY
    assert fee_recipient != empty(address), reasons.PERP_FACTORY_FEE_RECIPIENT_ZERO_ADDRESS
    assert staticcall IERC20Detailed(asset).decimals() <= 18, reasons.PERP_FACTORY_MARGIN_ASSET_MORE_18
    assert staticcall AggregatorV3Interface(index_feed).decimals() <= 18, reasons.PERP_FACTORY_INDEX_FEED_MORE_18
    market: address = create_from_blueprint(
        market_blueprint, asset, index_feed, fee_recipient, admin, code_offset=BLUEPRINT_CODE_OFFSET
    )
    extcall IPerpMarket(market).set_risk_params(params)
    extcall IPerpMarket(market).renounceRole(RISK_ADMIN_ROLE, self)
    count: uint256 = self.market_count + 1
    self.market_count = count
    self.market_at[count] = market
    self.market_of[market_id] = market
    log MarketCreated(
        market_id=market_id,
        market=market,
        creator=msg.sender,
        asset=asset,
        index_feed=index_feed,
        admin=admin,
        fee_recipient=fee_recipient,
    )
    return market


@external
@view
def market_id_of(asset: address, index_feed: address) -> bytes32:
    """
    @notice The id of the market on `index_feed` margined in `asset`.
    @return bytes32 keccak256 of the ABI-encoded pair.
    """
    return keccak256(abi_encode(asset, index_feed))


@external
@view
def list_markets(start: uint256, count: uint256) -> DynArray[address, MAX_PAGE]:
    """
    @notice Markets with ids `start`..`start + count - 1` (ids start at 1), at most 100.
    @param start First id.
    @param count How many.
    @return DynArray The markets, in creation order.
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
