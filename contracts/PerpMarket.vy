# pragma version ~=0.4.3
# pragma optimize codesize
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
        - Trades are two-step orders (`commit_order`, then anyone's `execute_order`):
          an order fills at the index of the first oracle round observed strictly
          after its commit, so no trade can be placed at a price that is already
          known (a signed report is public before it lands on-chain). An order not
          executed within `max_age` can only be cancelled; its margin stays the
          trader's. The market's keeper fee is reserved in the margin from the
          commit (not withdrawable) and paid to whoever executes the order.
        - Fills pay a premium over the index that grows with the skew a trade leaves,
          `P * (1 + (skew + size / 2) / skew_scale)` on the part that increases the
          absolute skew; a trade crossing zero skew is priced as two legs split at
          zero (the part that reduces the skew fills at the index: no rebate).
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
        - Liquidation below maintenance margin (which includes the position's exit
          premium at zero skew): any keeper closes the position at the index price
          in one step and earns `min_keeper_fee + notional * liquidation_fee`.
        - A stale index (older than the feed's heartbeat), a non-positive one, or a
          halted feed (the hub refused a report for moving too far, so the stored
          value is known to be wrong) stops every execution, margin withdrawals with
          an open position and liquidations; deposits, commits and cancellations of
          expired orders always work.
        - Risk parameters are refused, and new risk with them, unless one accepted
          update (at most the feed's `max_move_bps`) plus the liquidation fee on the
          moved notional and the exit fee stays below the maintenance margin: no
          single update can turn a position that met its margin into bad debt.
        - Fees are cash no trader can withdraw. When the
          insurance fund is short, gains are paid pro rata (a haircut): each side's
          net gain is a claim on the fund plus the losing side's net loss, so a
          trader's idle margin never pays another trader's gain.
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
from .modules import perp_math
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


# @dev The hub and feed id behind the oracle's FeedAdapter.
interface IFeedAdapter:
    def HUB() -> address: view
    def FEED_ID() -> bytes32: view


# @dev What the market reads from the OracleHub: the latest round with the feed's
#      heartbeat, move limit and halt flag in one call, and the round history.
interface IOracleHub:
    def trading_state(feed_id: bytes32) -> (int256, uint64, uint64, uint32, uint16, bool): view
    def get_round_data(feed_id: bytes32, round_id: uint80) -> (uint80, int256, uint256, uint256, uint80): view


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
# @dev Bits of a 32-bit field.
MASK32: constant(uint256) = 2**32 - 1
# @dev Bits of an 88-bit and a 104-bit field.
MASK88: constant(uint256) = 2**88 - 1
MASK104: constant(uint256) = 2**104 - 1
# @dev Largest order size (WAD GPU-hours): the open-interest cap's range.
MAX_ORDER_SIZE: constant(int256) = 2**100
# @dev Longest order life (30 days) and shortest (one minute).
MAX_ORDER_AGE: constant(uint256) = 30 * 86_400
MIN_ORDER_AGE: constant(uint256) = 60
# @dev Gas `execute_order` needs before it runs the trade: the trade's call gets 63/64
#      of it, far more than a trade costs, so a keeper cannot make a trade fail for
#      want of gas (which would cancel the order and still pay the keeper).
MIN_SETTLE_GAS: constant(uint256) = 300_000
# @dev Rounds `execute_order` looks through for the first one observed after a commit.
MAX_ROUND_SCAN: constant(uint256) = 32


# @dev The index as the market reads it from the hub.
struct Index:
    # Latest value in WAD, 0 when not positive or out of range.
    price: uint256
    # Positive, within the heartbeat and not halted: trades may use it.
    fresh: bool
    # The latest round id and its observation time.
    round_id: uint256
    observed_at: uint256
    # The feed's largest accepted move per update (bps, 0 = none).
    max_move_bps: uint256


# @dev A pending order, unpacked.
struct Order:
    size_delta: int256
    acceptable_price: uint256
    keeper_fee: uint256
    committed_at: uint256
    commit_round: uint256


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
# @dev The OracleHub behind the index feed.
oracle_hub: public(immutable(address))
# @dev The index feed's id in the hub.
index_feed_id: public(immutable(bytes32))
_HUB: immutable(IOracleHub)

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
# @dev The same two sums over long positions only (the shorts' are the difference):
#      each side's net PnL, which the haircut needs.
_long_sum_price: int256
_long_sum_funding: int256
# @dev Pending order per account, one slot: bits 0..103 size (int104), 104..191
#      acceptable price (WAD, uint88), 192..223 commit time, 224..255 the feed's latest
#      round at the commit.
_orders: HashMap[address, uint256]
# @dev Packed order window: bits 0..31 minimum delay, 32..63 maximum age (seconds),
#      64..159 keeper fee each order reserves in the margin (asset units).
_order_cfg: uint256
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


# @dev Emitted when a trader commits an order.
event OrderCommitted:
    account: indexed(address)
    size_delta: int256
    acceptable_price: uint256
    keeper_fee: uint256
    commit_round: uint256


# @dev Emitted when an order is executed (its trade emits `PositionModified`).
event OrderExecuted:
    account: indexed(address)
    keeper: indexed(address)
    round_id: uint256
    price: uint256
    keeper_fee: uint256


# @dev Emitted when an executed order's trade was refused: the order is cancelled
#      (`reason` is the refusal's ABI-encoded Error(string)), the keeper still paid.
event OrderFailed:
    account: indexed(address)
    keeper: indexed(address)
    round_id: uint256
    price: uint256
    keeper_fee: uint256
    reason: Bytes[100]


# @dev Emitted when an expired order is cancelled.
event OrderCancelled:
    account: indexed(address)
    caller: indexed(address)
    keeper_fee: uint256


# @dev Emitted when a gain was realised while the insurance fund was short: `paid`
#      of `gain` reached the margin (the same share for every gain).
event GainHaircut:
    account: indexed(address)
    gain: uint256
    paid: uint256


# @dev Emitted when the order window or its keeper fee changes.
event OrderWindowChanged:
    min_delay: uint256
    max_age: uint256
    keeper_fee: uint256
    admin: indexed(address)


# @dev Emitted when a keeper liquidates a position.
event PositionLiquidated:
    account: indexed(address)
    keeper: indexed(address)
    size: int256
    index_price: uint256
    equity: int256
    exit_premium: uint256
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
    @param index_feed_ The OracleHub's FeedAdapter of the index (AggregatorV3, USD per
           GPU-hour, at most 18 decimals); the market reads the hub behind it.
    @param fee_recipient_ Receiver of the trading fees.
    @param admin_ The market's admin.
    """
    assert admin_ != empty(address), reasons.PERP_ADMIN_ZERO_ADDRESS
    assert fee_recipient_ != empty(address), reasons.PERP_FEE_RECIPIENT_ZERO_ADDRESS
    # The factory checked that both are contracts with at most 18 decimals (more
    # would underflow the scales below and revert).
    asset_decimals: uint8 = staticcall IERC20Detailed(asset_).decimals()
    feed_decimals: uint8 = staticcall AggregatorV3Interface(index_feed_).decimals()

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
    hub: address = staticcall IFeedAdapter(index_feed_).HUB()
    feed_id: bytes32 = staticcall IFeedAdapter(index_feed_).FEED_ID()
    oracle_hub = hub
    index_feed_id = feed_id
    _HUB = IOracleHub(hub)
    self.fee_recipient = fee_recipient_
    self._funding = block.timestamp
    # Orders live for two heartbeats by default: one round must land in that time.
    heartbeat: uint32 = (staticcall IOracleHub(hub).trading_state(feed_id))[3]
    max_age: uint256 = min(max(2 * convert(heartbeat, uint256), MIN_ORDER_AGE), MAX_ORDER_AGE)
    self._order_cfg = max_age << 32


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
    @notice Withdraws `amount` of the caller's settled margin. With an open position
            the margin left, less any unrealised loss and funding owed at the fresh
            index, must cover the initial margin: unrealised gains back nothing
            until an order realises them (paid pro rata while the insurance fund is
            short). Without a position the index is not read.
            Refused while the caller has a pending order (cancelled or executed
            first); fees are never paid out as margin.
    @param amount Margin asset units.
    """
    assert amount != 0, reasons.PERP_ZERO_AMOUNT
    a: uint256 = self._pos_a[msg.sender]
    size: int256 = self._size_of(a)
    margin: uint256 = a & MASK128
    assert amount <= margin, reasons.PERP_WITHDRAWAL_EXCEEDS_MARGIN
    margin -= amount
    if size != 0:
        self._check_keeps_initial(msg.sender, size, margin)
    self._pos_a[msg.sender] = a - amount
    self._book -= amount
    # No withdrawal while an order is pending: its keeper fee stays reserved, and a
    # trader who sees the round's price first cannot make the trade fail (cancel it)
    # by taking the margin away.
    assert self._orders[msg.sender] == 0, reasons.PERP_ORDER_ALREADY_PENDING
    # Fees are never withdrawable, whatever the fund owes.
    assert amount + (self._book >> 128) <= self.cash, reasons.PERP_FREE_CASH_DOES_NOT_COVER
    self.cash -= amount
    log MarginWithdrawn(account=msg.sender, amount=amount, margin=margin)
    self._pay(msg.sender, amount)


# ---------------------------------------------------------------------------------
# Trading
# ---------------------------------------------------------------------------------


@external
@nonreentrant
def commit_order(size_delta: int256, acceptable_price: uint256):
    """
    @notice Commits an order to change the caller's position by `size_delta`
            GPU-hours (WAD; > 0 buys, < 0 sells). It fills later, when anyone calls
            `execute_order`, at the index of the first oracle round observed strictly
            after this commit, plus the premium and fee; it is refused then if the
            fill is worse than `acceptable_price`. The market's keeper fee is
            reserved in the margin now (withdrawals leave it) and paid from it to
            whoever executes the order.
    @dev One pending order per account. Needs no index (works while stale or halted).
         An order that is not executed within the order window's `max_age` can only
         be cancelled (`cancel_order`): nothing is lost.
    @param size_delta Signed change of the position (WAD GPU-hours).
    @param acceptable_price Worst fill price accepted (WAD USD per GPU-hour): the most
           a buy pays, the least a sell receives (above 2**88 - 1 counts as no limit).
    """
    assert size_delta != 0, reasons.PERP_ZERO_SIZE
    assert abs(size_delta) <= MAX_ORDER_SIZE, reasons.PERP_ORDER_SIZE_TOO_LARGE
    assert self._orders[msg.sender] == 0, reasons.PERP_ORDER_ALREADY_PENDING
    assert self._params_a != 0, reasons.PERP_RISK_PARAMETERS_NOT_SET
    fee: uint256 = (self._order_cfg >> 64) & MASK96
    assert self._pos_a[msg.sender] & MASK128 >= fee, reasons.PERP_MARGIN_DOES_NOT_COVER_KEEPER
    # The fee stays in the margin, reserved (no withdrawal while the order is
    # pending). A refused execution still pays it, even from a position's margin
    # (at most one fee per round, and a reduction must stay possible for a thin
    # position: docs/perps.md, stated limits).
    commit_round: uint256 = self._index().round_id
    self._orders[msg.sender] = (
        (convert(convert(size_delta, bytes32), uint256) & MASK104)
        | (min(acceptable_price, MASK88) << 104)
        | (convert(convert(block.timestamp, uint32), uint256) << 192)
        | (convert(convert(commit_round, uint32), uint256) << 224)
    )
    log OrderCommitted(account=msg.sender, size_delta=size_delta, acceptable_price=acceptable_price, keeper_fee=fee, commit_round=commit_round)


@external
@nonreentrant
def execute_order(account: address) -> uint256:
    """
    @notice Executes `account`'s pending order at the index of the first oracle round
            observed strictly after its commit (read from the hub's round history),
            once the minimum delay has passed and before the order expires. The
            caller (any keeper) is paid the market's keeper fee from the trader's
            margin into its own margin account here (withdrawable at once with
            `withdraw_margin`: executions are the hot path, so no token moves).
    @dev Needs the latest index fresh and the feed not halted (funding accrues at
         it). The trade's checks are those of every trade: the position is settled
         at the round's price first (a gain paid pro rata while the insurance fund is
         short); opens and increases need the initial margin afterwards, room under
         the open-interest caps, no pause, a solvent insurance fund and risk
         parameters the feed's move limit cannot break; reductions must stay above
         maintenance; a liquidatable position cannot be modified. When the trade
         is refused the order is cancelled (`OrderFailed`, with the refusal) and
         the keeper is still paid, so no order can wait for a better moment. An
         execution refused before the trade (too early, expired, no round after
         the commit yet, stale or halted index) reverts and changes nothing.
    @param account The order's owner.
    @return uint256 The keeper fee credited to the caller's margin (asset units).
    """
    o: Order = self._pending(account)
    cfg: uint256 = self._order_cfg
    assert block.timestamp >= o.committed_at + (cfg & MASK32), reasons.PERP_ORDER_NOT_EXECUTABLE_YET
    assert block.timestamp <= o.committed_at + ((cfg >> 32) & MASK32), reasons.PERP_ORDER_EXPIRED_CANCEL
    idx: Index = self._fresh_index()
    round_id: uint256 = 0
    price: uint256 = 0
    round_id, price = self._round_after(o.committed_at, o.commit_round, idx)
    # Effects: the order goes whatever the trade's fate. The trade runs in a call to
    # `settle_order` so that a refused trade cancels the order instead of leaving it
    # pending: nobody, the trader included, can hold an order back and execute it
    # later only if the price went its way. Either way the keeper fee moves from the
    # trader's margin to the keeper's (no token moves on the hot path).
    assert msg.gas >= MIN_SETTLE_GAS, reasons.PERP_SEND_MORE_GAS
    self._orders[account] = 0
    ok: bool = False
    reason: Bytes[100] = b""
    ok, reason = raw_call(
        self,
        abi_encode(account, o.size_delta, o.acceptable_price, price, idx.price, idx.max_move_bps, o.keeper_fee, method_id=method_id("settle_order(address,int256,uint256,uint256,uint256,uint256,uint256)")),
        max_outsize=100,
        revert_on_failure=False,
    )
    paid: uint256 = o.keeper_fee
    if ok:
        # The trade took the fee out of the margins (book); it comes back as the keeper's.
        self._move_book(0, paid, 0)
        log OrderExecuted(account=account, keeper=msg.sender, round_id=round_id, price=price, keeper_fee=paid)
    else:
        a: uint256 = self._pos_a[account]
        paid = min(paid, a & MASK128)
        self._pos_a[account] = a - paid
        log OrderFailed(account=account, keeper=msg.sender, round_id=round_id, price=price, keeper_fee=paid, reason=reason)
    self._pos_a[msg.sender] += paid
    return paid


@external
def settle_order(account: address, size_delta: int256, acceptable_price: uint256, price: uint256, latest_price: uint256, max_move_bps: uint256, keeper_fee: uint256):
    """
    @notice Internal to `execute_order` (only the market itself may call it): the
            order's trade, in a call of its own so that a refusal reverts the trade
            alone and cancels the order.
    """
    assert msg.sender == self, reasons.PERP_ONLY_THE_MARKET
    self._trade(account, size_delta, acceptable_price, price, latest_price, max_move_bps, keeper_fee)


@external
@nonreentrant
def cancel_order(account: address):
    """
    @notice Cancels `account`'s expired order (older than the order window's
            `max_age`): its keeper fee is no longer reserved. Anyone may
            call; before expiry an order can only be executed (a trader who could
            cancel after seeing the next price would hold a free option).
    @param account The order's owner.
    """
    o: Order = self._pending(account)
    assert block.timestamp > o.committed_at + ((self._order_cfg >> 32) & MASK32), reasons.PERP_ORDER_NOT_EXPIRED
    self._orders[account] = 0
    log OrderCancelled(account=account, caller=msg.sender, keeper_fee=o.keeper_fee)


@external
@nonreentrant
def liquidate(account: address) -> uint256:
    """
    @notice Liquidates `account`'s position if its equity (margin + PnL - funding
            owed) is below the maintenance requirement (maintenance margin, the
            liquidation fee and the position's exit premium): the position is closed
            at the index price in one step, the keeper (the caller) is paid
            `min_keeper_fee + notional * liquidation_fee`, and what remains (the exit
            premium included) goes to the insurance fund, which also pays any loss
            beyond the margin (`BadDebt`). If the fund is left negative the deficit is
            recorded and new risk pauses (`InsuranceExhausted`). A pending order of
            the account stays (it fails for want of margin and expires).
    @dev Needs a fresh index and a feed that is not halted.
    @param account The position's owner.
    @return uint256 The keeper fee paid to the caller (margin asset units).
    """
    a: uint256 = self._pos_a[account]
    size: int256 = self._size_of(a)
    assert size != 0, reasons.PERP_NO_OPEN_POSITION
    price: uint256 = self._fresh_index().price
    p: RiskParams = self._params()
    oi: uint256 = self._oi
    skew: int256 = self._skew(oi)
    fidx: int256 = self._accrue(price, p, skew)
    b: uint256 = self._pos_b[account]
    margin: uint256 = a & MASK128
    equity: int256 = convert(margin, int256) + self._settlement(size, b, price, fidx)
    assert equity < convert(self._maintenance_margin(size, price, p), int256), reasons.PERP_POSITION_ABOVE_MAINTENANCE_MARGIN

    fee: uint256 = p.min_keeper_fee + perp_math._notional(size, price, False, _VALUE_SCALE) * p.liquidation_fee_bps // BPS
    assert fee + (self._book >> 128) <= self.cash, reasons.PERP_NOT_ENOUGH_CASH_KEEPER
    # Effects: the position disappears; its margin leaves the margin book and the
    # insurance keeps `equity - fee`, the exit premium included (the fund is
    # `cash - margins - fees - unrealised`).
    self._oi = self._oi_after(oi, size, 0)
    self._move_sums(size, b, 0, 0, 0)
    self._pos_a[account] = 0
    self._pos_b[account] = 0
    self._book -= margin
    self.cash -= fee
    log PositionLiquidated(account=account, keeper=msg.sender, size=size, index_price=price, equity=equity, exit_premium=perp_math._exit_premium(size, price, p.skew_scale, _VALUE_SCALE), keeper_fee=fee)
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
            the old parameters up to now first, when the index is fresh. Refused
            when the feed's largest move per update, with the liquidation fee on the
            moved notional and the exit fee, reaches the maintenance margin (or the
            feed has no move limit): one update could then create bad debt.
    @dev Only `RISK_ADMIN_ROLE`. New caps and margins bind new risk; existing
         positions keep their size but are judged by the new maintenance margin.
    @param params_ The new parameters (see `RiskParams`).
    """
    access_control._check_role(RISK_ADMIN_ROLE, msg.sender)
    old: RiskParams = self._params()
    idx: Index = self._index()
    if old.skew_scale != 0 and idx.fresh:
        self._accrue(idx.price, old, self._skew(self._oi))
    self._set_params(params_, self._params_b & PAUSED_BIT != 0)
    self._check_move_covered(idx.max_move_bps, params_)
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
def set_order_window(min_delay: uint256, max_age: uint256, keeper_fee: uint256):
    """
    @notice Sets the order window: an order can be executed from `min_delay` to
            `max_age` seconds after its commit (then only cancelled), and each commit
            reserves `keeper_fee` in the margin for its executor. Pending orders
            follow the new window and pay the fee in force at their execution.
    @dev Only `RISK_ADMIN_ROLE`. `max_age` from one minute to 30 days, above
         `min_delay`; the keeper fee fits 96 bits.
    @param min_delay Seconds before an order can be executed.
    @param max_age Seconds after which an order can only be cancelled.
    @param keeper_fee Margin asset units each order pays its executor.
    """
    access_control._check_role(RISK_ADMIN_ROLE, msg.sender)
    assert max_age >= MIN_ORDER_AGE and max_age <= MAX_ORDER_AGE and min_delay < max_age and keeper_fee <= MASK96, reasons.PERP_ORDER_WINDOW_OUT_OF_RANGE
    self._order_cfg = min_delay | (max_age << 32) | (keeper_fee << 64)
    log OrderWindowChanged(min_delay=min_delay, max_age=max_age, keeper_fee=keeper_fee, admin=msg.sender)


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
    @notice The index price (WAD USD per GPU-hour) and whether it is fresh (positive,
            not older than the feed's heartbeat, and the feed not halted).
    @return uint256 The latest index price (WAD).
    @return bool True when trades may use it.
    """
    idx: Index = self._index()
    return idx.price, idx.fresh


@external
@view
def order(account: address) -> Order:
    """
    @notice `account`'s pending order (all zero without one).
    @param account The account.
    @return Order Size change, acceptable price, the keeper fee it will pay, commit time and
            the feed's latest round at the commit.
    """
    return self._order(account)


@external
@view
def order_window() -> (uint256, uint256, uint256):
    """
    @notice The order window.
    @return uint256 Minimum delay (seconds) before an order can be executed.
    @return uint256 Age (seconds) after which it can only be cancelled.
    @return uint256 Keeper fee each order pays its executor (margin asset units).
    """
    cfg: uint256 = self._order_cfg
    return cfg & MASK32, (cfg >> 32) & MASK32, (cfg >> 64) & MASK96


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
    price: uint256 = self._index().price
    return (oi & MASK128, oi >> 128, self._skew(oi), book & MASK128, book >> 128, self._insurance(price, self._funding_now()[0]), self.deficit)


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
def _trade(account: address, size_delta: int256, acceptable_price: uint256, price: uint256, latest_price: uint256, max_move_bps: uint256, keeper_fee: uint256):
    """
    @dev One trade at `price` (the order's round): settle, price, charge (premium,
         fee and the executor's `keeper_fee`, which the caller pays out), check,
         store. Funding accrues to now at the latest index `latest_price`.
    """
    # Risk parameters are set: `commit_order` checked, and they cannot be unset.
    p: RiskParams = self._params()
    oi: uint256 = self._oi
    skew: int256 = self._skew(oi)
    fidx: int256 = self._accrue(latest_price, p, skew)

    a: uint256 = self._pos_a[account]
    b: uint256 = self._pos_b[account]
    size: int256 = self._size_of(a)
    margin: uint256 = a & MASK128
    settled: int256 = 0
    if size != 0:
        settled = self._settlement(size, b, price, fidx)
        assert convert(margin, int256) + settled >= convert(self._maintenance_margin(size, price, p), int256), reasons.PERP_POSITION_BELOW_MAINTENANCE_MARGIN
        settled = self._realise(account, settled, price, fidx)
    equity: int256 = convert(margin, int256) + settled

    new_size: int256 = size + size_delta
    increases: bool = abs(new_size) > abs(size) or (new_size != 0 and (new_size > 0) != (size > 0) and size != 0)
    if increases:
        assert self._params_b & PAUSED_BIT == 0, reasons.PERP_NEW_RISK_PAUSED_GUARDIAN
        assert self.deficit == 0, reasons.PERP_INSURANCE_DEFICIT_RECORDED_NEW
        assert self._insurance(price, fidx) >= 0, reasons.PERP_INSURANCE_FUND_EXHAUSTED_NEW
        self._check_move_covered(max_move_bps, p)

    # Premium: what the trade pays the insurance (the skew's counterparty) over the
    # index, leg by leg (split at zero skew), rounded up; the fill is its average.
    premium: uint256 = 0
    fill: uint256 = 0
    premium, fill = perp_math._premium(price, skew, size_delta, p.skew_scale, _VALUE_SCALE)
    assert (fill <= acceptable_price) if size_delta > 0 else (fill >= acceptable_price), reasons.PERP_FILL_PRICE_WORSE_ACCEPTABLE
    # Fee: maker rate on the part that reduces |skew|, taker on the rest, rounded up.
    maker_part: uint256 = 0
    if skew != 0 and (skew > 0) != (size_delta > 0):
        maker_part = convert(min(abs(size_delta), abs(skew)), uint256)
    taker_part: uint256 = convert(abs(size_delta), uint256) - maker_part
    fee_num: uint256 = (taker_part * p.taker_fee_bps + maker_part * p.maker_fee_bps) * fill
    fee: uint256 = (fee_num + _VALUE_SCALE * BPS - 1) // (_VALUE_SCALE * BPS)

    equity = equity - convert(premium + fee + keeper_fee, int256)
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
    self._move_sums(size, b, new_size, price, fidx)
    self._pos_a[account] = self._pack_a(new_size, new_margin)
    self._pos_b[account] = self._pack_b(price, fidx) if new_size != 0 else 0
    self._move_book(margin, new_margin, fee)
    log PositionModified(account=account, size_delta=size_delta, size=new_size, index_price=price, fill_price=fill, fee=fee, premium=convert(premium, int256), settled=settled, margin=new_margin)


@internal
@view
def _check_keeps_initial(account: address, size: int256, margin_left: uint256):
    """
    @dev Refuses unless `margin_left`, less the position's unrealised loss and funding
         owed at the fresh index, covers its initial margin: losses count, gains do
         not (a gain backs nothing until an order realises it, and it may be paid pro
         rata then). The rule of withdrawals and of a keeper fee reserved at commit.
    """
    price: uint256 = self._fresh_index().price
    p: RiskParams = self._params()
    fidx: int256 = self._funding_math(self._funding, price, p, self._skew(self._oi))[0]
    equity: int256 = convert(margin_left, int256) + min(self._settlement(size, self._pos_b[account], price, fidx), 0)
    assert equity >= convert(self._initial_margin(size, price, p), int256), reasons.PERP_WITHDRAWAL_LEAVE_LESS_INITIAL


@internal
@view
def _order(account: address) -> Order:
    """
    @dev `account`'s pending order, unpacked (zeros without one).
    """
    w: uint256 = self._orders[account]
    if w == 0:
        return empty(Order)
    return Order(
        size_delta=convert(convert(w << 152, bytes32), int256) >> 152,
        acceptable_price=(w >> 104) & MASK88,
        keeper_fee=(self._order_cfg >> 64) & MASK96,
        committed_at=(w >> 192) & MASK32,
        commit_round=w >> 224,
    )


@internal
@view
def _pending(account: address) -> Order:
    """
    @dev `account`'s pending order; reverts without one.
    """
    o: Order = self._order(account)
    assert o.committed_at != 0, reasons.PERP_NO_PENDING_ORDER
    return o


@internal
@view
def _round_after(committed_at: uint256, commit_round: uint256, idx: Index) -> (uint256, uint256):
    """
    @dev The first round observed strictly after `committed_at` and its price (WAD).
         Rounds are observed in increasing time, and the round that was latest at
         the commit was observed no later than it, so the search starts after it.
         A round stored after the commit but observed before it (a report that was
         public before it landed) is skipped: its price was known at the commit.
    """
    assert idx.observed_at > committed_at, reasons.PERP_NO_ORACLE_ROUND_AFTER
    r: uint256 = commit_round + 1
    for i: uint256 in range(MAX_ROUND_SCAN):
        if r >= idx.round_id:
            # The latest round, observed after the commit (checked above).
            return idx.round_id, idx.price
        answer: int256 = 0
        observed: uint256 = 0
        _: uint80 = 0
        __: uint256 = 0
        ___: uint80 = 0
        _, answer, __, observed, ___ = staticcall _HUB.get_round_data(index_feed_id, convert(r, uint80))
        if observed > committed_at:
            price: uint256 = self._to_wad(answer)
            assert price != 0, reasons.PERP_INDEX_PRICE_NOT_POSITIVE
            return r, price
        r += 1
    raise reasons.PERP_TOO_MANY_ROUNDS_SINCE


@internal
def _realise(account: address, gain: int256, price: uint256, fidx: int256) -> int256:
    """
    @dev The part of a settlement that reaches the margin: a loss in full; a gain in
         full while the insurance fund (marked at `price`, before the settlement) is
         not short, else pro rata, `gain * available / claims`, where the claims are
         the positive net PnL of each side and the available is the fund plus them
         (the fund's cash plus the losing side's net loss). Every gain realised while
         the fund is short gets the same share, and the share stays the same after
         each one, so no trader is paid first at another's expense; what is not paid
         stays in the fund. Rounded down. Logs `GainHaircut`.
    """
    if gain <= 0:
        return gain
    insurance: int256 = self._insurance(price, fidx)
    if insurance >= 0:
        return gain
    oi: uint256 = self._oi
    longs: int256 = convert(oi & MASK128, int256)
    skew: int256 = self._skew(oi)
    p: int256 = convert(price, int256)
    long_pnl: int256 = longs * p - self._long_sum_price - (longs * fidx - self._long_sum_funding)
    short_pnl: int256 = skew * p - self._sum_size_price - (skew * fidx - self._sum_size_funding) - long_pnl
    claims: int256 = perp_math._ceil_div(max(long_pnl, 0) + max(short_pnl, 0), convert(_VALUE_SCALE, int256))
    paid: int256 = 0
    if claims + insurance > 0:
        paid = min(gain * (claims + insurance) // claims, gain)
    log GainHaircut(account=account, gain=convert(gain, uint256), paid=convert(paid, uint256))
    return paid


@internal
def _move_sums(old_size: int256, old_b: uint256, new_size: int256, price: uint256, fidx: int256):
    """
    @dev Moves one position from (`old_size`, its settlement `old_b`) to (`new_size`,
         `price`, `fidx`) in the sums, and in the long side's sums.
    """
    old_price: int256 = self._last_price(old_b)
    old_funding: int256 = self._last_funding(old_b)
    p: int256 = convert(price, int256)
    self._sum_size_price += new_size * p - old_size * old_price
    self._sum_size_funding += new_size * fidx - old_size * old_funding
    if old_size > 0 or new_size > 0:
        old_long: int256 = max(old_size, 0)
        new_long: int256 = max(new_size, 0)
        self._long_sum_price += new_long * p - old_long * old_price
        self._long_sum_funding += new_long * fidx - old_long * old_funding


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
@view
def _settlement(size: int256, b: uint256, price: uint256, fidx: int256) -> int256:
    """
    @dev PnL minus funding owed since the last settlement (`perp_math._settlement`).
    """
    return perp_math._settlement(size, self._last_price(b), self._last_funding(b), price, fidx, _VALUE_SCALE)


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
def _initial_margin(size: int256, price: uint256, p: RiskParams) -> uint256:
    """
    @dev Equity a position needs after an open or increase (the leverage cap), with
         its exit premium.
    """
    return perp_math._requirement(size, price, p.initial_margin_bps, p.min_keeper_fee, p.skew_scale, _VALUE_SCALE)


@internal
@view
def _maintenance_margin(size: int256, price: uint256, p: RiskParams) -> uint256:
    """
    @dev Equity under which a position can be liquidated: maintenance margin, the
         keeper fee its liquidation pays, and its exit premium. It does not depend on
         the skew, so no trader can push another's position into liquidation by
         moving the skew.
    """
    return perp_math._requirement(size, price, p.maintenance_margin_bps + p.liquidation_fee_bps, p.min_keeper_fee, p.skew_scale, _VALUE_SCALE)


@internal
@pure
def _check_move_covered(max_move_bps: uint256, p: RiskParams):
    """
    @dev Refuses unless one accepted update cannot turn a position above maintenance
         into bad debt: the largest move, the liquidation fee on the notional after
         it and the exit fee stay below the maintenance margin,
         `m * (1 + liquidation fee) + taker fee < maintenance`. A feed without a move
         limit covers nothing.
    """
    assert max_move_bps != 0 and max_move_bps * (BPS + p.liquidation_fee_bps) + p.taker_fee_bps * BPS < p.maintenance_margin_bps * BPS, reasons.PERP_FEED_MOVE_REACHES_MAINTENANCE


@internal
@view
def _to_wad(answer: int256) -> uint256:
    """
    @dev A feed answer in WAD, 0 when not positive or out of range.
    """
    if answer <= 0 or answer >= 2**128:
        return 0
    price: uint256 = convert(answer, uint256) * _PRICE_TO_WAD
    if price >= 2**96:
        return 0
    return price


@internal
@view
def _index() -> Index:
    """
    @dev The latest index with its freshness, round, and the feed's move limit.
    """
    answer: int256 = 0
    observed: uint64 = 0
    round_id: uint64 = 0
    heartbeat: uint32 = 0
    max_move: uint16 = 0
    halted: bool = False
    answer, observed, round_id, heartbeat, max_move, halted = staticcall _HUB.trading_state(index_feed_id)
    price: uint256 = self._to_wad(answer)
    t: uint256 = convert(observed, uint256)
    fresh: bool = price != 0 and not halted and t <= block.timestamp and block.timestamp - t <= convert(heartbeat, uint256)
    return Index(price=price, fresh=fresh, round_id=convert(round_id, uint256), observed_at=t, max_move_bps=convert(max_move, uint256))


@internal
@view
def _fresh_index() -> Index:
    """
    @dev The latest index; reverts unless positive, within the heartbeat and not
         halted (one message for the three: no trade on it either way).
    """
    idx: Index = self._index()
    assert idx.fresh, reasons.PERP_INDEX_PRICE_STALE_OR_HALTED
    return idx


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
    fidx += perp_math._floor_div(area * convert(price, int256), day * IWAD)
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
    return self._funding_math(self._funding, self._index().price, self._params(), self._skew(self._oi))


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
    return held - perp_math._ceil_div(unrealised, convert(_VALUE_SCALE, int256))


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
