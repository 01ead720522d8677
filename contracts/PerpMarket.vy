# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Perpetual Market
@custom:contract-name PerpMarket
@license GNU Affero General Public License v3.0 only
@notice Perpetual futures on one GPU-hour price index (for example H100 SXM, USD per
        GPU-hour), settled in a USD stablecoin. Deployed by `PerpMarketFactory` from
        a blueprint, one market per (margin asset, index feed).
        - Unit: one contract is one GPU-hour at the index price. Sizes are signed
          (long > 0, short < 0) with 18 decimals; prices are USD per GPU-hour with 18
          decimals (`WAD`); margins are in the margin asset's units.
        - Trades fill at `P * (1 + (skew + size / 2) / skew_scale)`: the premium grows
          with the skew the trade leaves, so no order book is needed; a trade that
          reduces the skew fills at the index (never better: no rebate).
        - Funding is continuous and skew-driven: the funding rate (per day) moves at
          `max_funding_velocity * clamp(skew / skew_scale, -1, 1)` per day, clamped
          to `+-max_funding_rate`; a positive rate makes longs pay shorts. One
          cumulative funding index, updated lazily by every interaction in O(1),
          settles it: a position owes `size * (index_now - index_at_entry)`.
        - Fees: taker fee on the part of a trade that increases the absolute skew,
          maker fee on the part that reduces it; they accrue to a fee account paid to
          `fee_recipient`.
        - The insurance fund is the counterparty to the net skew (premium, funding
          and the net PnL of the skew settle against it), takes what remains of
          liquidated positions and pays losses beyond a position's margin. When it
          is negative, or a liquidation left a recorded deficit, new risk is paused
          (no opens or increases) until it is funded again.
        - Liquidation below maintenance margin: any keeper closes the position at
          the index price and earns `min_keeper_fee + notional * liquidation_fee`.
        - A stale index (older than the feed's heartbeat) or a non-positive one
          stops every trade, margin withdrawals with an open position and
          liquidations; deposits always work.
@custom:security Checks-effects-interactions with one reentrancy lock over every
                 state-changing function. Internal accounting (`cash`), never
                 `balanceOf(self)`: a donation changes nothing. Rounding is always
                 against the trader: losses, funding paid, premiums and fees are
                 rounded up, gains and funding received down, margin requirements
                 up, keeper fees down. The margin asset is assumed to be a 1 USD
                 stablecoin without transfer fees.
"""


from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

from snekmate.auth import access_control
initializes: access_control

from .interfaces import AggregatorV3Interface
from .modules import reasons

exports: (
    access_control.DEFAULT_ADMIN_ROLE,
    access_control.hasRole,
    access_control.getRoleAdmin,
    access_control.grantRole,
    access_control.revokeRole,
    access_control.renounceRole,
)


# @dev ERC-165 ids this contract answers true for: ERC-165, snekmate's IAccessControl
#      (hasRole ^ getRoleAdmin ^ grantRole ^ revokeRole ^ renounceRole).
_SUPPORTED: constant(bytes4[2]) = [0x01ffc9a7, 0x7965db0b]


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    """
    @notice ERC-165: true for ERC-165 and access control (roles).
    @param interface_id The interface id.
    @return bool Whether this contract implements it.
    """
    return interface_id in _SUPPORTED


# @dev The heartbeat getter of the oracle's FeedAdapter (not part of AggregatorV3).
interface IHeartbeat:
    def heartbeat() -> uint256: view


# @dev Role that sets the market's risk parameters and the fee recipient.
RISK_ADMIN_ROLE: public(constant(bytes32)) = keccak256("RISK_ADMIN_ROLE")
# @dev Role that pauses and unpauses new risk (opens and increases).
GUARDIAN_ROLE: public(constant(bytes32)) = keccak256("GUARDIAN_ROLE")

# @dev 1.0 in 18-decimal fixed point (sizes, prices, funding rates).
WAD: constant(uint256) = 10**18
# @dev Signed WAD.
IWAD: constant(int256) = 10**18
# @dev Basis points in 1.0.
BPS: constant(uint256) = 10_000
# @dev Seconds in the funding rate's period (rates are per day).
DAY: constant(uint256) = 86_400
# @dev Highest taker or maker fee (1 % of the notional).
MAX_FEE_BPS: constant(uint256) = 100
# @dev Highest liquidation fee (5 % of the notional).
MAX_LIQUIDATION_FEE_BPS: constant(uint256) = 500
# @dev Lowest initial margin (2 %, i.e. at most 50x leverage).
MIN_INITIAL_MARGIN_BPS: constant(uint256) = 200
# @dev Highest funding rate cap (100 % of the price per day).
MAX_FUNDING_RATE: constant(uint256) = 10**18
# @dev Highest funding velocity (rate change per day at full skew).
MAX_FUNDING_VELOCITY: constant(uint256) = 10**19
# @dev Highest open-interest cap (GPU-hours, whole): 2**40, some 10x the GPU-hours the
#      world's data centres run in a year, and small enough for exact integer maths.
MAX_OI: constant(uint256) = 2**40
# @dev Bits of a 64-bit field.
MASK64: constant(uint256) = 2**64 - 1
# @dev Bits of a 96-bit field.
MASK96: constant(uint256) = 2**96 - 1
# @dev Bits of a 128-bit field.
MASK128: constant(uint256) = 2**128 - 1
# @dev Bits of a 16-bit field.
MASK16: constant(uint256) = 2**16 - 1
# @dev Bit of `_params_b` set while the guardian has paused new risk.
PAUSED_BIT: constant(uint256) = 2**255


# @dev The market's risk parameters, unpacked.
struct RiskParams:
    # Skew (GPU-hours, whole) at which the premium reaches 100 % and the funding
    # velocity its maximum.
    skew_scale: uint256
    # Open interest cap of the long side (GPU-hours, whole).
    max_long_oi: uint256
    # Open interest cap of the short side (GPU-hours, whole).
    max_short_oi: uint256
    # Initial margin (bps of the notional): 1,000 = 10 % = at most 10x leverage.
    initial_margin_bps: uint256
    # Maintenance margin (bps of the notional), below which a position can be liquidated
    # (together with the liquidation fee and the minimum keeper fee).
    maintenance_margin_bps: uint256
    # Fee on the part of a trade that increases the absolute skew (bps).
    taker_fee_bps: uint256
    # Fee on the part of a trade that reduces the absolute skew (bps).
    maker_fee_bps: uint256
    # Keeper fee on a liquidation (bps of the notional), on top of `min_keeper_fee`.
    liquidation_fee_bps: uint256
    # Keeper fee every liquidation pays at least (margin asset units).
    min_keeper_fee: uint256
    # Funding rate change per day at full skew (WAD per day, per day).
    max_funding_velocity: uint256
    # Cap of the absolute funding rate (WAD per day).
    max_funding_rate: uint256


# @dev The margin asset (a USD stablecoin).
asset: public(immutable(address))
# @dev The GPU-hour index feed (AggregatorV3, USD per GPU-hour).
index_feed: public(immutable(address))
# @dev The factory that deployed this market.
factory: public(immutable(address))
# @dev Multiplier from feed answers to WAD prices.
_PRICE_TO_WAD: immutable(uint256)
# @dev `10**(18 - asset decimals)`: USD WAD per margin-asset unit.
_ASSET_SCALE: immutable(uint256)
# @dev `WAD * _ASSET_SCALE`: divisor from size x price (WAD x WAD) to asset units.
_VALUE_SCALE: immutable(uint256)
_ASSET: immutable(IERC20)
_FEED: immutable(AggregatorV3Interface)

# @dev Packed per account: bits 0..127 margin (asset units, settled), bits 128..255
#      size (int128, two's complement, WAD GPU-hours).
_pos_a: HashMap[address, uint256]
# @dev Packed per account: bits 0..95 price of the last settlement (WAD), bits 96..255
#      funding index at the last settlement (int160, two's complement).
_pos_b: HashMap[address, uint256]
# @dev Packed: bits 0..63 time of the last funding accrual, bits 64..127 funding rate
#      (int64, WAD per day), bits 128..255 funding index (int128, WAD USD per GPU-hour).
_funding: uint256
# @dev Packed: bits 0..127 long open interest, bits 128..255 short open interest (WAD).
_oi: uint256
# @dev Sum over positions of `size * last_price` (WAD x WAD).
_sum_size_price: int256
# @dev Sum over positions of `size * last_funding` (WAD x WAD).
_sum_size_funding: int256
# @dev Packed: bits 0..127 sum of margins, bits 128..255 fees not yet collected.
_book: uint256
# @dev Margin asset held for the market (internal accounting): margins + fees +
#      realised insurance.
cash: public(uint256)
# @dev Shortfall recorded when a liquidation left the insurance fund negative; new risk
#      is paused until `fund_insurance` covers it.
deficit: public(uint256)
# @dev Packed risk parameters: bits 0..63 skew scale, 64..127 max long OI, 128..191 max
#      short OI (whole GPU-hours), 192..207 initial margin, 208..223 maintenance margin,
#      224..239 taker fee, 240..255 maker fee (bps).
_params_a: uint256
# @dev Packed: bits 0..15 liquidation fee (bps), 16..111 min keeper fee (asset units),
#      112..175 max funding velocity, 176..239 max funding rate (WAD per day), bit 255
#      paused.
_params_b: uint256
# @dev Receiver of the trading fees.
fee_recipient: public(address)


# @dev Emitted when margin is deposited.
event MarginDeposited:
    account: indexed(address)
    sender: indexed(address)
    amount: uint256
    margin: uint256


# @dev Emitted when margin is withdrawn.
event MarginWithdrawn:
    account: indexed(address)
    amount: uint256
    margin: uint256


# @dev Emitted for every open, increase, reduction, flip or close.
event PositionModified:
    account: indexed(address)
    size_delta: int256
    size: int256
    index_price: uint256
    fill_price: uint256
    fee: uint256
    premium: int256
    settled: int256
    margin: uint256


# @dev Emitted when a keeper liquidates a position.
event PositionLiquidated:
    account: indexed(address)
    keeper: indexed(address)
    size: int256
    index_price: uint256
    equity: int256
    keeper_fee: uint256


# @dev Emitted when a liquidated position's losses exceeded its margin (the insurance
#      fund paid the difference).
event BadDebt:
    account: indexed(address)
    amount: uint256


# @dev Emitted when a liquidation leaves the insurance fund negative: new risk pauses.
event InsuranceExhausted:
    deficit: uint256
    insurance: int256


# @dev Emitted when the insurance fund receives assets.
event InsuranceFunded:
    sender: indexed(address)
    amount: uint256
    deficit: uint256


# @dev Emitted at every accrual that moved time forward.
event FundingAccrued:
    funding_index: int256
    funding_rate: int256
    index_price: uint256


# @dev Emitted when fees are paid to the fee recipient.
event FeesCollected:
    recipient: indexed(address)
    amount: uint256


# @dev Emitted when the risk parameters change.
event RiskParametersChanged:
    params: RiskParams
    admin: indexed(address)


# @dev Emitted when the fee recipient changes.
event FeeRecipientChanged:
    recipient: indexed(address)
    admin: indexed(address)


# @dev Emitted when the guardian pauses (True) or unpauses (False) new risk.
event PauseChanged:
    paused: bool
    account: indexed(address)


@deploy
@payable
def __init__(
    asset_: address,
    index_feed_: address,
    fee_recipient_: address,
    admin_: address,
):
    """
    @notice Deploys one market. Normally called through `PerpMarketFactory.create_market`,
            which sets the risk parameters in the same transaction; until they are
            set no trade is possible.
    @dev `admin_` receives the admin, risk admin and guardian roles; a deployer other
         than `admin_` (the factory) keeps only the risk admin role, to set the first
         parameters, and renounces it.
    @param asset_ The margin asset (a USD stablecoin, at most 18 decimals).
    @param index_feed_ The AggregatorV3 index feed (USD per GPU-hour, at most 18 decimals).
    @param fee_recipient_ Receiver of the trading fees.
    @param admin_ The market's admin.
    """
    assert asset_.is_contract, reasons.PERP_MARGIN_ASSET_NOT_CONTRACT
    assert index_feed_.is_contract, reasons.PERP_INDEX_FEED_NOT_CONTRACT
    assert admin_ != empty(address), reasons.PERP_ADMIN_ZERO_ADDRESS
    assert fee_recipient_ != empty(address), reasons.PERP_FEE_RECIPIENT_ZERO_ADDRESS
    asset_decimals: uint8 = staticcall IERC20Detailed(asset_).decimals()
    feed_decimals: uint8 = staticcall AggregatorV3Interface(index_feed_).decimals()
    assert asset_decimals <= 18, reasons.PERP_MARGIN_ASSET_MORE_18
    assert feed_decimals <= 18, reasons.PERP_INDEX_FEED_MORE_18

    access_control.__init__()
    access_control._grant_role(RISK_ADMIN_ROLE, admin_)
    access_control._grant_role(GUARDIAN_ROLE, admin_)
    if admin_ != msg.sender:
        access_control._grant_role(access_control.DEFAULT_ADMIN_ROLE, admin_)
        access_control._revoke_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
        access_control._grant_role(RISK_ADMIN_ROLE, msg.sender)

    asset = asset_
    index_feed = index_feed_
    factory = msg.sender
    _PRICE_TO_WAD = 10 ** (18 - convert(feed_decimals, uint256))
    _ASSET_SCALE = 10 ** (18 - convert(asset_decimals, uint256))
    _VALUE_SCALE = WAD * _ASSET_SCALE
    _ASSET = IERC20(asset_)
    _FEED = AggregatorV3Interface(index_feed_)
    self.fee_recipient = fee_recipient_
    self._funding = block.timestamp


# ---------------------------------------------------------------------------------
# Margin
# ---------------------------------------------------------------------------------


@external
@nonreentrant
def deposit_margin(amount: uint256):
    """
    @notice Deposits `amount` of the margin asset (approved to this market) as the
            caller's margin. Always works, also while paused or stale (to save a
            position from liquidation).
    @param amount Margin asset units.
    """
    self._deposit_margin(msg.sender, amount)


@external
@nonreentrant
def withdraw_margin(amount: uint256):
    """
    @notice Withdraws `amount` of the caller's margin. With an open position the
            position is first settled at the index price (PnL and funding into the
            margin) and what stays must cover the initial margin; that needs a fresh
            index. Without a position the index is not read.
    @param amount Margin asset units.
    """
    assert amount != 0, reasons.PERP_ZERO_AMOUNT
    a: uint256 = self._pos_a[msg.sender]
    size: int256 = self._size_of(a)
    margin: uint256 = a & MASK128
    if size != 0:
        price: uint256 = self._fresh_price()
        p: RiskParams = self._params()
        skew: int256 = self._skew(self._oi)
        fidx: int256 = self._accrue(price, p, skew)
        b: uint256 = self._pos_b[msg.sender]
        equity: int256 = convert(margin, int256) + self._settlement(size, b, price, fidx)
        assert equity >= convert(amount, int256), reasons.PERP_WITHDRAWAL_EXCEEDS_MARGIN
        left: uint256 = convert(equity, uint256) - amount
        assert left >= self._initial_margin(size, price, p), reasons.PERP_WITHDRAWAL_LEAVE_LESS_INITIAL
        self._resettle(msg.sender, size, b, price, fidx)
        self._set_margin(msg.sender, a, left)
        self._move_book(margin, left, 0)
        margin = left
    else:
        assert amount <= margin, reasons.PERP_WITHDRAWAL_EXCEEDS_MARGIN
        margin -= amount
        self._pos_a[msg.sender] = a - amount
        self._book -= amount
    self.cash -= amount
    log MarginWithdrawn(account=msg.sender, amount=amount, margin=margin)
    self._pay(msg.sender, amount)


# ---------------------------------------------------------------------------------
# Trading
# ---------------------------------------------------------------------------------


@external
@nonreentrant
def modify_position(size_delta: int256, acceptable_price: uint256):
    """
    @notice Opens, increases, reduces, flips or closes the caller's position by
            `size_delta` GPU-hours (WAD; > 0 buys, < 0 sells) at the fill price
            `P * (1 + (skew + size_delta / 2) / skew_scale)`. The existing position is
            settled first (PnL and funding into the margin), then the premium and the
            fee are paid from the margin.
    @dev Needs a fresh index. Opens and increases need the initial margin afterwards,
         room under the open-interest cap, no pause and a solvent insurance fund;
         reductions must stay above maintenance. A liquidatable position cannot be
         modified (deposit margin first, or let a keeper liquidate it).
    @param size_delta Signed change of the position (WAD GPU-hours).
    @param acceptable_price Worst fill price accepted (WAD USD per GPU-hour): the most
           a buy pays, the least a sell receives.
    """
    self._modify(msg.sender, size_delta, acceptable_price)


@external
@nonreentrant
def close_position(acceptable_price: uint256):
    """
    @notice Closes the caller's whole position (see `modify_position`); the margin
            stays in the market until withdrawn.
    @param acceptable_price Worst fill price accepted (WAD USD per GPU-hour).
    """
    size: int256 = self._size_of(self._pos_a[msg.sender])
    assert size != 0, reasons.PERP_NO_OPEN_POSITION
    self._modify(msg.sender, -size, acceptable_price)


@external
@nonreentrant
def liquidate(account: address) -> uint256:
    """
    @notice Liquidates `account`'s position if its equity (margin + PnL - funding
            owed) is below the maintenance requirement: the position is closed at the
            index price, the keeper (the caller) is paid `min_keeper_fee + notional *
            liquidation_fee`, and what remains goes to the insurance fund, which also
            pays any loss beyond the margin (`BadDebt`). If the fund is left negative
            the deficit is recorded and new risk pauses (`InsuranceExhausted`).
    @dev Needs a fresh index.
    @param account The position's owner.
    @return uint256 The keeper fee paid to the caller (margin asset units).
    """
    a: uint256 = self._pos_a[account]
    size: int256 = self._size_of(a)
    assert size != 0, reasons.PERP_NO_OPEN_POSITION
    price: uint256 = self._fresh_price()
    p: RiskParams = self._params()
    oi: uint256 = self._oi
    skew: int256 = self._skew(oi)
    fidx: int256 = self._accrue(price, p, skew)
    b: uint256 = self._pos_b[account]
    margin: uint256 = a & MASK128
    equity: int256 = convert(margin, int256) + self._settlement(size, b, price, fidx)
    assert equity < convert(self._maintenance_margin(size, price, p), int256), reasons.PERP_POSITION_ABOVE_MAINTENANCE_MARGIN

    fee: uint256 = p.min_keeper_fee + self._notional(size, price, False) * p.liquidation_fee_bps // BPS
    assert fee <= self.cash - (self._book >> 128), reasons.PERP_NOT_ENOUGH_CASH_KEEPER
    # Effects: the position disappears; its margin leaves the margin book and the
    # insurance keeps `equity - fee` (the fund is `cash - margins - fees - unrealised`).
    self._oi = self._oi_after(oi, size, 0)
    self._sum_size_price -= size * self._last_price(b)
    self._sum_size_funding -= size * self._last_funding(b)
    self._pos_a[account] = 0
    self._pos_b[account] = 0
    self._book -= margin
    self.cash -= fee
    log PositionLiquidated(account=account, keeper=msg.sender, size=size, index_price=price, equity=equity, keeper_fee=fee)
    if equity < 0:
        log BadDebt(account=account, amount=convert(-equity, uint256))
    insurance: int256 = self._insurance(price, fidx)
    if insurance < 0:
        shortfall: uint256 = convert(-insurance, uint256)
        if shortfall > self.deficit:
            self.deficit = shortfall
        log InsuranceExhausted(deficit=self.deficit, insurance=insurance)
    if fee != 0:
        self._pay(msg.sender, fee)
    return fee


# ---------------------------------------------------------------------------------
# Insurance, fees, administration
# ---------------------------------------------------------------------------------


@external
@nonreentrant
def fund_insurance(amount: uint256):
    """
    @notice Adds `amount` of the margin asset (approved to this market) to the
            insurance fund; it first covers a recorded deficit. The fund cannot be
            withdrawn: it backs every trader's PnL.
    @param amount Margin asset units.
    """
    self._pull(amount)
    self.cash += amount
    left: uint256 = self.deficit - min(self.deficit, amount)
    self.deficit = left
    log InsuranceFunded(sender=msg.sender, amount=amount, deficit=left)


@external
@nonreentrant
def collect_fees() -> uint256:
    """
    @notice Pays the accrued trading fees to `fee_recipient`. Anyone may call.
    @return uint256 The fees paid (margin asset units).
    """
    book: uint256 = self._book
    fees: uint256 = book >> 128
    assert fees != 0, reasons.PERP_NO_FEES_COLLECT
    self._book = book & MASK128
    self.cash -= fees
    recipient: address = self.fee_recipient
    log FeesCollected(recipient=recipient, amount=fees)
    self._pay(recipient, fees)
    return fees


@external
def set_risk_params(params_: RiskParams):
    """
    @notice Sets the risk parameters (checked, with reasons). Funding accrues under
            the old parameters up to now first, when the index is fresh.
    @dev Only `RISK_ADMIN_ROLE`. New caps and margins bind new risk; existing
         positions keep their size but are judged by the new maintenance margin.
    @param params_ The new parameters (see `RiskParams`).
    """
    access_control._check_role(RISK_ADMIN_ROLE, msg.sender)
    old: RiskParams = self._params()
    if old.skew_scale != 0:
        price: uint256 = 0
        fresh: bool = False
        price, fresh = self._price()
        if fresh:
            self._accrue(price, old, self._skew(self._oi))
    self._set_params(params_, self._params_b & PAUSED_BIT != 0)
    log RiskParametersChanged(params=params_, admin=msg.sender)


@external
def set_fee_recipient(recipient: address):
    """
    @notice Sets the receiver of the trading fees.
    @dev Only `RISK_ADMIN_ROLE`.
    @param recipient The new fee recipient.
    """
    access_control._check_role(RISK_ADMIN_ROLE, msg.sender)
    assert recipient != empty(address), reasons.PERP_FEE_RECIPIENT_ZERO_ADDRESS
    self.fee_recipient = recipient
    log FeeRecipientChanged(recipient=recipient, admin=msg.sender)


@external
def pause():
    """
    @notice Pauses new risk: no opens or increases. Reductions, closes, deposits,
            withdrawals and liquidations go on.
    @dev Only `GUARDIAN_ROLE`.
    """
    access_control._check_role(GUARDIAN_ROLE, msg.sender)
    self._params_b |= PAUSED_BIT
    log PauseChanged(paused=True, account=msg.sender)


@external
def unpause():
    """
    @notice Lifts the guardian's pause.
    @dev Only `GUARDIAN_ROLE`. A recorded deficit keeps new risk paused regardless.
    """
    access_control._check_role(GUARDIAN_ROLE, msg.sender)
    self._params_b &= ~PAUSED_BIT
    log PauseChanged(paused=False, account=msg.sender)


# ---------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------


@external
@view
def index_price() -> (uint256, bool):
    """
    @notice The index price (WAD USD per GPU-hour) and whether it is fresh (positive
            and not older than the feed's heartbeat).
    @return uint256 The latest index price (WAD).
    @return bool True when trades may use it.
    """
    return self._price()


@external
@view
def fill_price(size_delta: int256) -> uint256:
    """
    @notice The price a trade of `size_delta` would fill at now (latest index price).
    @param size_delta Signed trade size (WAD GPU-hours).
    @return uint256 Fill price (WAD USD per GPU-hour).
    """
    price: uint256 = self._price()[0]
    return self._fill_price(price, self._skew(self._oi), size_delta, self._params().skew_scale)


@external
@view
def funding_rate() -> int256:
    """
    @notice The current funding rate (WAD per day; > 0: longs pay shorts).
    @return int256 The rate, accrued to now.
    """
    return self._funding_now()[1]


@external
@view
def funding_index() -> int256:
    """
    @notice The cumulative funding index accrued to now at the latest index price
            (WAD USD per GPU-hour).
    @return int256 The index.
    """
    return self._funding_now()[0]


@external
@view
def market() -> (uint256, uint256, int256, uint256, uint256, int256, uint256):
    """
    @notice The market in one call.
    @return uint256 Long open interest (WAD GPU-hours).
    @return uint256 Short open interest (WAD GPU-hours).
    @return int256 Skew (long - short).
    @return uint256 Sum of settled margins (asset units).
    @return uint256 Fees not yet collected (asset units).
    @return int256 Insurance fund, marked to the latest index price (asset units;
            negative: the market owes traders more than it holds).
    @return uint256 Recorded deficit (asset units).
    """
    oi: uint256 = self._oi
    book: uint256 = self._book
    price: uint256 = self._price()[0]
    return (oi & MASK128, oi >> 128, self._skew(oi), book & MASK128, book >> 128, self._insurance(price, self._funding_now()[0]), self.deficit)


@external
@view
def insurance_fund() -> int256:
    """
    @notice The insurance fund marked to the latest index price: cash minus settled
            margins, fees, and the traders' unrealised PnL and funding (asset units).
    @return int256 The fund (negative: new risk is paused).
    """
    return self._insurance(self._price()[0], self._funding_now()[0])


@external
@view
def risk_params() -> RiskParams:
    """
    @notice The risk parameters.
    @return RiskParams The parameters.
    """
    return self._params()


@external
@view
def paused() -> bool:
    """
    @notice Whether the guardian paused new risk (a recorded `deficit` pauses it too).
    @return bool True while the guardian's pause is on.
    """
    return self._params_b & PAUSED_BIT != 0


@external
@view
def position(account: address) -> (int256, uint256, uint256, int256):
    """
    @notice The stored position: size (WAD GPU-hours, signed), settled margin (asset
            units), price and funding index of its last settlement (WAD).
    @param account The account.
    """
    a: uint256 = self._pos_a[account]
    b: uint256 = self._pos_b[account]
    return (self._size_of(a), a & MASK128, convert(self._last_price(b), uint256), self._last_funding(b))


@external
@view
def pnl(account: address) -> int256:
    """
    @notice Unrealised PnL of `account`'s position at the latest index price, since
            its last settlement (asset units; gains rounded down, losses up).
    @param account The account.
    @return int256 The PnL.
    """
    size: int256 = self._size_of(self._pos_a[account])
    price: uint256 = self._price()[0]
    return self._floor_div(size * (convert(price, int256) - self._last_price(self._pos_b[account])), convert(_VALUE_SCALE, int256))


@external
@view
def funding_owed(account: address) -> int256:
    """
    @notice Funding `account`'s position owes since its last settlement (asset units;
            > 0 the position pays, < 0 it receives; payments rounded up, receipts down).
    @param account The account.
    @return int256 The funding owed.
    """
    size: int256 = self._size_of(self._pos_a[account])
    owed: int256 = size * (self._funding_now()[0] - self._last_funding(self._pos_b[account]))
    return -self._floor_div(-owed, convert(_VALUE_SCALE, int256))


@external
@view
def equity(account: address) -> int256:
    """
    @notice Margin plus unrealised PnL minus funding owed, at the latest index price
            (asset units, rounded against the trader).
    @param account The account.
    @return int256 The equity.
    """
    return self._equity_now(account)[0]


@external
@view
def margin_ratio(account: address) -> uint256:
    """
    @notice Equity over notional (WAD: 1e17 = 10 %), at the latest index price;
            max_value(uint256) without a position, 0 at or below zero equity.
    @param account The account.
    @return uint256 The ratio.
    """
    equity: int256 = 0
    size: int256 = 0
    price: uint256 = 0
    equity, size, price = self._equity_now(account)
    if size == 0:
        return max_value(uint256)
    if equity <= 0:
        return 0
    return convert(equity, uint256) * WAD // max(self._notional(size, price, True), 1)


@external
@view
def liquidation_price(account: address) -> uint256:
    """
    @notice Index price (WAD) at which the position reaches the maintenance
            requirement, with funding held where it is now. Below it a long is
            liquidatable, above it a short. 0 without a position; for a long, 0 when no
            positive price liquidates it (its margin covers the whole notional, say);
            for a short, 0 when every price does (`can_liquidate` is the authority).
    @param account The account.
    @return uint256 The liquidation price.
    """
    a: uint256 = self._pos_a[account]
    size: int256 = self._size_of(a)
    if size == 0:
        return 0
    b: uint256 = self._pos_b[account]
    p: RiskParams = self._params()
    funding_paid: int256 = size * (self._funding_now()[0] - self._last_funding(b))
    vs: int256 = convert(_VALUE_SCALE, int256)
    margin: int256 = convert(a & MASK128, int256) * vs
    keeper: int256 = convert(p.min_keeper_fee, int256) * vs
    c: int256 = convert(p.maintenance_margin_bps + p.liquidation_fee_bps, int256)
    bps: int256 = convert(BPS, int256)
    last: int256 = self._last_price(b)
    num: int256 = 0
    den: int256 = 0
    if size > 0:
        num = (keeper - margin + size * last + funding_paid) * bps
        den = size * (bps - c)
    else:
        num = (margin - size * last - funding_paid - keeper) * bps
        den = -size * (bps + c)
    if num <= 0:
        return 0
    return convert(num // den, uint256)


@external
@view
def can_liquidate(account: address) -> bool:
    """
    @notice Whether `account`'s position is below maintenance at the latest index
            price (a keeper also needs the index to be fresh).
    @param account The account.
    @return bool True when `liquidate(account)` would succeed on a fresh index.
    """
    equity: int256 = 0
    size: int256 = 0
    price: uint256 = 0
    equity, size, price = self._equity_now(account)
    if size == 0:
        return False
    return equity < convert(self._maintenance_margin(size, price, self._params()), int256)


@external
@view
def withdrawable(account: address) -> uint256:
    """
    @notice Margin `account` can withdraw now at the latest index price: all of it
            without a position, else what exceeds the initial margin.
    @param account The account.
    @return uint256 Margin asset units.
    """
    equity: int256 = 0
    size: int256 = 0
    price: uint256 = 0
    equity, size, price = self._equity_now(account)
    if size == 0:
        return convert(equity, uint256)
    need: int256 = convert(self._initial_margin(size, price, self._params()), int256)
    if equity <= need:
        return 0
    return convert(equity - need, uint256)


@external
@view
def max_leverage() -> uint256:
    """
    @notice Highest leverage (notional / equity) a position may open at (WAD).
    @return uint256 `1 / initial margin`.
    """
    return BPS * WAD // self._params().initial_margin_bps


# ---------------------------------------------------------------------------------
# Internal
# ---------------------------------------------------------------------------------


@internal
def _deposit_margin(account: address, amount: uint256):
    """
    @dev Pulls `amount` from the caller and credits `account`'s margin.
    """
    self._pull(amount)
    a: uint256 = self._pos_a[account]
    margin: uint256 = (a & MASK128) + amount
    self._pos_a[account] = a + amount
    self._move_book(0, amount, 0)
    self.cash += amount
    log MarginDeposited(account=account, sender=msg.sender, amount=amount, margin=margin)


@internal
def _modify(account: address, size_delta: int256, acceptable_price: uint256):
    """
    @dev One trade: settle, price, charge, check, store.
    """
    assert size_delta != 0, reasons.PERP_ZERO_SIZE
    price: uint256 = self._fresh_price()
    p: RiskParams = self._params()
    assert p.skew_scale != 0, reasons.PERP_RISK_PARAMETERS_NOT_SET
    oi: uint256 = self._oi
    skew: int256 = self._skew(oi)
    fidx: int256 = self._accrue(price, p, skew)

    a: uint256 = self._pos_a[account]
    b: uint256 = self._pos_b[account]
    size: int256 = self._size_of(a)
    margin: uint256 = a & MASK128
    settled: int256 = 0
    if size != 0:
        settled = self._settlement(size, b, price, fidx)
        assert convert(margin, int256) + settled >= convert(self._maintenance_margin(size, price, p), int256), reasons.PERP_POSITION_BELOW_MAINTENANCE_MARGIN
    equity: int256 = convert(margin, int256) + settled

    new_size: int256 = size + size_delta
    increases: bool = abs(new_size) > abs(size) or (new_size != 0 and (new_size > 0) != (size > 0) and size != 0)
    if increases:
        assert self._params_b & PAUSED_BIT == 0, reasons.PERP_NEW_RISK_PAUSED_GUARDIAN
        assert self.deficit == 0, reasons.PERP_INSURANCE_DEFICIT_RECORDED_NEW
        assert self._insurance(price, fidx) >= 0, reasons.PERP_INSURANCE_FUND_EXHAUSTED_NEW

    fill: uint256 = self._fill_price(price, skew, size_delta, p.skew_scale)
    assert (fill <= acceptable_price) if size_delta > 0 else (fill >= acceptable_price), reasons.PERP_FILL_PRICE_WORSE_ACCEPTABLE

    # Premium: what the trade pays the insurance (the skew's counterparty) over the
    # index, rounded up; zero for skew-reducing trades (the fill is never better).
    premium: int256 = self._ceil_div(size_delta * (convert(fill, int256) - convert(price, int256)), convert(_VALUE_SCALE, int256))
    # Fee: maker rate on the part that reduces |skew|, taker on the rest, rounded up.
    maker_part: uint256 = 0
    if skew != 0 and (skew > 0) != (size_delta > 0):
        maker_part = convert(min(abs(size_delta), abs(skew)), uint256)
    taker_part: uint256 = convert(abs(size_delta), uint256) - maker_part
    fee_num: uint256 = (taker_part * p.taker_fee_bps + maker_part * p.maker_fee_bps) * fill
    fee: uint256 = (fee_num + _VALUE_SCALE * BPS - 1) // (_VALUE_SCALE * BPS)

    equity = equity - premium - convert(fee, int256)
    new_oi: uint256 = self._oi_after(oi, size, new_size)
    assert equity >= 0, reasons.PERP_MARGIN_DOES_NOT_COVER
    if new_size != 0:
        if increases:
            assert convert(equity, uint256) >= self._initial_margin(new_size, price, p), reasons.PERP_MARGIN_BELOW_INITIAL_MARGIN
            assert new_oi & MASK128 <= p.max_long_oi * WAD or new_oi & MASK128 <= oi & MASK128, reasons.PERP_LONG_OPEN_INTEREST_CAP
            assert new_oi >> 128 <= p.max_short_oi * WAD or new_oi >> 128 <= oi >> 128, reasons.PERP_SHORT_OPEN_INTEREST_CAP
        else:
            assert equity >= convert(self._maintenance_margin(new_size, price, p), int256), reasons.PERP_REDUCTION_LEAVE_POSITION_BELOW

    new_margin: uint256 = convert(equity, uint256)
    self._oi = new_oi
    self._sum_size_price += new_size * convert(price, int256) - size * self._last_price(b)
    self._sum_size_funding += new_size * fidx - size * self._last_funding(b)
    self._pos_a[account] = self._pack_a(new_size, new_margin)
    self._pos_b[account] = self._pack_b(price, fidx) if new_size != 0 else 0
    self._move_book(margin, new_margin, fee)
    log PositionModified(account=account, size_delta=size_delta, size=new_size, index_price=price, fill_price=fill, fee=fee, premium=premium, settled=settled, margin=new_margin)


@internal
@pure
def _size_of(a: uint256) -> int256:
    """
    @dev The signed size in a packed `_pos_a` word.
    """
    return convert(convert(a, bytes32), int256) >> 128


@internal
@pure
def _last_price(b: uint256) -> int256:
    """
    @dev The settlement price in a packed `_pos_b` word.
    """
    return convert(b & MASK96, int256)


@internal
@pure
def _last_funding(b: uint256) -> int256:
    """
    @dev The settlement funding index in a packed `_pos_b` word.
    """
    return convert(convert(b, bytes32), int256) >> 96


@internal
@pure
def _pack_a(size: int256, margin: uint256) -> uint256:
    """
    @dev Packs size (int128) and margin (uint128).
    """
    return (convert(convert(size, bytes32), uint256) << 128) | margin


@internal
@pure
def _pack_b(price: uint256, fidx: int256) -> uint256:
    """
    @dev Packs settlement price (uint96) and funding index (int160).
    """
    return (convert(convert(fidx, bytes32), uint256) << 96) | price


@internal
@pure
def _skew(oi: uint256) -> int256:
    """
    @dev Long minus short open interest.
    """
    return convert(oi & MASK128, int256) - convert(oi >> 128, int256)


@internal
@pure
def _oi_after(oi: uint256, old: int256, new: int256) -> uint256:
    """
    @dev Open interest after a position goes from `old` to `new`.
    """
    longs: uint256 = (oi & MASK128) + convert(max(new, 0), uint256) - convert(max(old, 0), uint256)
    shorts: uint256 = (oi >> 128) + convert(max(-new, 0), uint256) - convert(max(-old, 0), uint256)
    return (shorts << 128) | longs


@internal
@pure
def _floor_div(x: int256, y: int256) -> int256:
    """
    @dev `floor(x / y)` for `y > 0` (Vyper's signed `//` truncates toward zero).
    """
    q: int256 = x // y
    if x < 0 and q * y != x:
        q -= 1
    return q


@internal
@pure
def _ceil_div(x: int256, y: int256) -> int256:
    """
    @dev `ceil(x / y)` for `y > 0`.
    """
    return -self._floor_div(-x, y)


@internal
@view
def _settlement(size: int256, b: uint256, price: uint256, fidx: int256) -> int256:
    """
    @dev PnL minus funding owed since the last settlement, in asset units, rounded
         down (against the trader).
    """
    move: int256 = convert(price, int256) - self._last_price(b)
    return self._floor_div(size * move - size * (fidx - self._last_funding(b)), convert(_VALUE_SCALE, int256))


@internal
def _resettle(account: address, size: int256, b: uint256, price: uint256, fidx: int256):
    """
    @dev Moves a position's settlement point to (price, fidx), keeping the sums.
    """
    self._sum_size_price += size * (convert(price, int256) - self._last_price(b))
    self._sum_size_funding += size * (fidx - self._last_funding(b))
    self._pos_b[account] = self._pack_b(price, fidx)


@internal
def _set_margin(account: address, a: uint256, margin: uint256):
    """
    @dev Replaces the margin in a packed `_pos_a` word.
    """
    self._pos_a[account] = (a & ~MASK128) | margin


@internal
def _move_book(old_margin: uint256, new_margin: uint256, fee: uint256):
    """
    @dev Margin book: one margin changes from `old_margin` to `new_margin`; `fee` added.
    """
    book: uint256 = self._book
    margins: uint256 = (book & MASK128) + new_margin - old_margin
    # Every margin is at most the sum of margins, so this keeps each in its 128 bits too.
    assert margins <= MASK128, reasons.PERP_AMOUNT_TOO_LARGE
    self._book = (((book >> 128) + fee) << 128) | margins


@internal
@view
def _notional(size: int256, price: uint256, round_up: bool) -> uint256:
    """
    @dev |size| x price in asset units.
    """
    value: uint256 = convert(abs(size), uint256) * price
    if round_up:
        return (value + _VALUE_SCALE - 1) // _VALUE_SCALE
    return value // _VALUE_SCALE


@internal
@view
def _requirement(size: int256, price: uint256, bps: uint256, keeper: uint256) -> uint256:
    """
    @dev `ceil(notional * bps / BPS) + keeper` in asset units.
    """
    den: uint256 = _VALUE_SCALE * BPS
    return (convert(abs(size), uint256) * price * bps + den - 1) // den + keeper


@internal
@view
def _initial_margin(size: int256, price: uint256, p: RiskParams) -> uint256:
    """
    @dev Equity a position needs after an open or increase (the leverage cap).
    """
    return self._requirement(size, price, p.initial_margin_bps, p.min_keeper_fee)


@internal
@view
def _maintenance_margin(size: int256, price: uint256, p: RiskParams) -> uint256:
    """
    @dev Equity under which a position can be liquidated: maintenance margin plus the
         keeper fee its liquidation pays. It does not depend on the skew, so no trader
         can push another's position into liquidation by moving the skew.
    """
    return self._requirement(size, price, p.maintenance_margin_bps + p.liquidation_fee_bps, p.min_keeper_fee)


@internal
@view
def _fill_price(price: uint256, skew: int256, size_delta: int256, skew_scale: uint256) -> uint256:
    """
    @dev `P * (1 + (skew + size_delta / 2) / skew_scale)`, rounded up for buys and
         down for sells, and never better than the index: a trade that reduces the skew
         fills at the index, without a rebate (a rebate could be withdrawn while the
         skew it depends on is still open, and left unpaid by a liquidation).
    """
    num: int256 = convert(price, int256) * (2 * skew + size_delta)
    den: int256 = convert(2 * skew_scale * WAD, int256)
    premium: int256 = 0
    if size_delta > 0:
        premium = max(self._ceil_div(num, den), 0)
    else:
        premium = min(self._floor_div(num, den), 0)
    fill: int256 = convert(price, int256) + premium
    assert fill > 0, reasons.PERP_FILL_PRICE_NOT_POSITIVE
    return convert(fill, uint256)


@internal
@view
def _price() -> (uint256, bool):
    """
    @dev The latest index answer in WAD and whether it is fresh.
    """
    answer: int256 = 0
    updated_at: uint256 = 0
    _: uint80 = 0
    __: uint256 = 0
    ___: uint80 = 0
    _, answer, __, updated_at, ___ = staticcall _FEED.latestRoundData()
    if answer <= 0 or answer >= 2**128:
        return 0, False
    price: uint256 = convert(answer, uint256) * _PRICE_TO_WAD
    if price >= 2**96:
        return 0, False
    heartbeat: uint256 = staticcall IHeartbeat(index_feed).heartbeat()
    fresh: bool = updated_at <= block.timestamp and block.timestamp - updated_at <= heartbeat
    return price, fresh


@internal
@view
def _fresh_price() -> uint256:
    """
    @dev The index price in WAD; reverts unless positive and within the heartbeat.
    """
    price: uint256 = 0
    fresh: bool = False
    price, fresh = self._price()
    assert price != 0, reasons.PERP_INDEX_PRICE_NOT_POSITIVE
    assert fresh, reasons.PERP_INDEX_PRICE_STALE_OLDER
    return price


@internal
@view
def _funding_math(slot: uint256, price: uint256, p: RiskParams, skew: int256) -> (int256, int256):
    """
    @dev Funding index and rate at `block.timestamp`, from the stored state. The rate
         moves linearly at the skew's velocity until it reaches the cap, so the index
         is its exact integral (trapezoid, then flat at the cap): accruing in one step
         or many gives the same index, up to rounding dust.
    """
    last: uint256 = slot & MASK64
    rate: int256 = convert(convert(slot << 128, bytes32), int256) >> 192
    fidx: int256 = convert(convert(slot, bytes32), int256) >> 128
    if block.timestamp <= last:
        return fidx, rate
    dt: int256 = convert(block.timestamp - last, int256)
    day: int256 = convert(DAY, int256)
    rmax: int256 = convert(p.max_funding_rate, int256)
    r0: int256 = min(max(rate, -rmax), rmax)
    ratio: int256 = min(max(skew * IWAD // convert(p.skew_scale * WAD, int256), -IWAD), IWAD)
    velocity: int256 = convert(p.max_funding_velocity, int256) * ratio // IWAD
    r1: int256 = r0
    area: int256 = r0 * dt
    if velocity != 0:
        target: int256 = rmax if velocity > 0 else -rmax
        t_hit: int256 = (target - r0) * day // velocity
        if dt <= t_hit:
            r1 = r0 + velocity * dt // day
            area = (r0 + r1) * dt // 2
        else:
            r1 = target
            area = (r0 + target) * t_hit // 2 + target * (dt - t_hit)
    fidx += self._floor_div(area * convert(price, int256), day * IWAD)
    return fidx, r1


@internal
def _accrue(price: uint256, p: RiskParams, skew: int256) -> int256:
    """
    @dev Accrues funding to now (at the current index price and the skew before the
         caller's change); returns the funding index.
    """
    slot: uint256 = self._funding
    if block.timestamp <= slot & MASK64:
        return convert(convert(slot, bytes32), int256) >> 128
    fidx: int256 = 0
    rate: int256 = 0
    fidx, rate = self._funding_math(slot, price, p, skew)
    # |fidx| grows at most 2**96 (price cap) per day at the 100 %/day rate cap: int128
    # holds it for millions of years.
    self._funding = (convert(convert(fidx, bytes32), uint256) << 128) | ((convert(convert(rate, bytes32), uint256) & MASK64) << 64) | block.timestamp
    log FundingAccrued(funding_index=fidx, funding_rate=rate, index_price=price)
    return fidx


@internal
@view
def _funding_now() -> (int256, int256):
    """
    @dev Funding index and rate accrued to now at the latest index price (views).
    """
    return self._funding_math(self._funding, self._price()[0], self._params(), self._skew(self._oi))


@internal
@view
def _insurance(price: uint256, fidx: int256) -> int256:
    """
    @dev The insurance fund marked to `price` and `fidx`: cash - margins - fees - the
         traders' unrealised PnL and funding (rounded up, against the fund).
    """
    skew: int256 = self._skew(self._oi)
    unrealised: int256 = skew * convert(price, int256) - self._sum_size_price - (skew * fidx - self._sum_size_funding)
    book: uint256 = self._book
    held: int256 = convert(self.cash, int256) - convert(book & MASK128, int256) - convert(book >> 128, int256)
    return held - self._ceil_div(unrealised, convert(_VALUE_SCALE, int256))


@internal
@view
def _equity_now(account: address) -> (int256, int256, uint256):
    """
    @dev (equity, size, price) at the latest index price, for the views.
    """
    a: uint256 = self._pos_a[account]
    size: int256 = self._size_of(a)
    margin: int256 = convert(a & MASK128, int256)
    price: uint256 = self._price()[0]
    if size == 0:
        return margin, 0, price
    return margin + self._settlement(size, self._pos_b[account], price, self._funding_now()[0]), size, price


@internal
@view
def _params() -> RiskParams:
    """
    @dev The packed risk parameters, unpacked.
    """
    a: uint256 = self._params_a
    b: uint256 = self._params_b
    return RiskParams(
        skew_scale=a & MASK64,
        max_long_oi=(a >> 64) & MASK64,
        max_short_oi=(a >> 128) & MASK64,
        initial_margin_bps=(a >> 192) & MASK16,
        maintenance_margin_bps=(a >> 208) & MASK16,
        taker_fee_bps=(a >> 224) & MASK16,
        maker_fee_bps=a >> 240,
        liquidation_fee_bps=b & MASK16,
        min_keeper_fee=(b >> 16) & MASK96,
        max_funding_velocity=(b >> 112) & MASK64,
        max_funding_rate=(b >> 176) & MASK64,
    )


@internal
def _set_params(p: RiskParams, paused: bool):
    """
    @dev Checks and stores the risk parameters.
    """
    assert p.skew_scale != 0 and p.skew_scale <= MASK64 and p.max_long_oi != 0 and p.max_short_oi != 0 and max(p.max_long_oi, p.max_short_oi) <= MAX_OI, reasons.PERP_SKEW_SCALE_1_2
    assert p.initial_margin_bps >= MIN_INITIAL_MARGIN_BPS and p.initial_margin_bps <= BPS and p.maintenance_margin_bps != 0 and p.maintenance_margin_bps + p.liquidation_fee_bps < p.initial_margin_bps, reasons.PERP_NEED_0_MAINTENANCE_LIQUIDATION
    assert p.taker_fee_bps <= MAX_FEE_BPS and p.maker_fee_bps <= p.taker_fee_bps and p.liquidation_fee_bps <= MAX_LIQUIDATION_FEE_BPS, reasons.PERP_FEES_ABOVE_THEIR_CAPS
    assert p.min_keeper_fee <= MASK96 and p.max_funding_velocity <= MAX_FUNDING_VELOCITY and p.max_funding_rate <= MAX_FUNDING_RATE, reasons.PERP_KEEPER_FEE_FUNDING_PARAMETER
    self._params_a = p.skew_scale | (p.max_long_oi << 64) | (p.max_short_oi << 128) | (p.initial_margin_bps << 192) | (p.maintenance_margin_bps << 208) | (p.taker_fee_bps << 224) | (p.maker_fee_bps << 240)
    self._params_b = p.liquidation_fee_bps | (p.min_keeper_fee << 16) | (p.max_funding_velocity << 112) | (p.max_funding_rate << 176) | (PAUSED_BIT if paused else 0)


@internal
def _pull(amount: uint256):
    """
    @dev Pulls `amount` of the margin asset from the caller.
    """
    assert amount != 0, reasons.PERP_ZERO_AMOUNT
    assert extcall _ASSET.transferFrom(msg.sender, self, amount, default_return_value=True), reasons.PERP_MARGIN_ASSET_TRANSFER_FAILED


@internal
def _pay(to: address, amount: uint256):
    """
    @dev Pays `amount` of the margin asset to `to`.
    """
    assert extcall _ASSET.transfer(to, amount, default_return_value=True), reasons.PERP_MARGIN_ASSET_TRANSFER_FAILED
