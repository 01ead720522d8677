# pragma version ~=0.4.3
# pragma optimize codesize
# pragma experimental-codegen
"""
@title Lending Pool
@custom:contract-name LendingPool
@license GNU Affero General Public License v3.0 only
@notice One isolated lending market: lenders supply a stablecoin (`asset`) and earn
        interest; holders of one SPV's GPU shares (`collateral_token`) post them as
        collateral and borrow the stablecoin. Deployed by `LendingPoolFactory` from
        a blueprint, one pool per (loan asset, collateral token, price feed,
        interest rate model, liquidation LTV).
        - Lenders hold ERC-4626 vault shares (snekmate's `erc4626` module: token,
          EIP-2612 permit, EIP-5267 `eip712Domain`, events); `supportsInterface`
          answers ERC-165 for every standard the pool implements. Conversions use
          virtual shares and assets (`VIRTUAL_SHARES`, `VIRTUAL_ASSETS`) and the
          pool's own accounting, never `balanceOf(self)`: a donation changes
          nothing, and the first depositor cannot inflate the share price. Every
          conversion rounds in the pool's favour.
        - Interest accrues on a global borrow index, continuously compounded
          (`index *= exp(rate * dt)`, O(1) per accrual), at the rate the kinked
          rate model gives for the current utilisation. `reserve_factor_bps` of
          each accrual goes to the reserves, which only the treasury receives.
        - Borrowers' debts are scaled by the index (`debt = scaled * index`, rounded
          up); collateral is priced with the SPV's NAV feed through the AggregatorV3
          interface, and a price older than the feed's heartbeat, or not positive,
          is refused.
        - Borrowing and collateral withdrawals must end at or under `max_ltv`; a
          loan above `lltv` (liquidation LTV) can be liquidated by anyone eligible
          to hold the collateral, at `liquidation_incentive` (collateral received
          per unit of debt repaid, `min(1.15, 1 / (1 - 0.3 * (1 - lltv)))`).
          Debt left when a loan's collateral runs out is written off against the
          lenders (`BadDebtWrittenOff`).
        - Collateral shares sit in the pool but their rental income belongs to the
          borrower: the pool claims it from the share token and each borrower
          claims their part with `claim_income`.
        - With a stale price there are no borrows, no collateral withdrawals that
          leave debt, and no liquidations; repay and supply always work. The
          guardian's pause stops borrows and collateral withdrawals, never repays.
@custom:security Compiled with `optimize codesize` and vyper's venom backend
                 (`experimental-codegen`): the legacy backend's initcode (26,359
                 bytes with the compliance seams) no longer fits a blueprint under
                 the EIP-170 limit of 24,576 bytes; venom's is some 5 KB smaller.
                 Every pool test (units, exploits, properties, stateful machines)
                 runs on the venom code.
                 Checks-effects-interactions with one reentrancy lock over every
                 state-changing function. Rounding: vault shares minted down,
                 burnt up; debt scaled up on borrow and down on repay; collateral
                 valued down; seized collateral rounded down. The pool assumes the
                 loan asset is a 1 USD stablecoin without transfer fees, and the
                 NAV feed quotes USD per whole share.
"""


from ethereum.ercs import IERC165
from ethereum.ercs import IERC20
from ethereum.ercs import IERC4626
from .modules import reasons

implements: IERC165
implements: IERC20
implements: IERC4626

from snekmate.extensions import erc4626
initializes: erc4626

from snekmate.auth import access_control
initializes: access_control

from snekmate.utils import math

from .interfaces import AggregatorV3Interface
from .interfaces import IRateModel


# @dev What the pool needs from the collateral share token.
interface IShareToken:
    def transfer(to: address, amount: uint256) -> bool: nonpayable
    def transferFrom(owner: address, to: address, amount: uint256) -> bool: nonpayable
    def claim() -> uint256: nonpayable
    def claimable(account: address) -> uint256: view
    def income_per_share() -> uint256: view
    def income_token() -> address: view
    def compliance_registry() -> address: view
    def detectTransferRestriction(sender: address, receiver: address, amount: uint256) -> uint8: view
    def custody_restriction(sender: address, receiver: address, amount: uint256, in_custody: uint256) -> uint8: view
    def messageForTransferRestriction(restriction_code: uint8) -> String[160]: view
    def getFrozenTokens(account: address) -> uint256: view
    def paused() -> bool: view
    def balanceOf(account: address) -> uint256: view
    def hasRole(role: bytes32, account: address) -> bool: view


# @dev The registry's holder check: a position's holder must be one the rules let hold
#      shares (registered, not expired, not frozen, residence policy) to borrow against
#      them or take their income.
interface IHolders:
    def check_receiver(account: address) -> uint8: view
    def check_sender(account: address) -> uint8: view
    def custodian(account: address) -> bool: view


# @dev The heartbeat getter of the oracle's FeedAdapter (not part of AggregatorV3).
interface IHeartbeat:
    def heartbeat() -> uint256: view


exports: (
    erc4626.erc20.totalSupply,
    erc4626.erc20.balanceOf,
    erc4626.erc20.transfer,
    erc4626.erc20.transferFrom,
    erc4626.erc20.approve,
    erc4626.erc20.allowance,
    erc4626.erc20.name,
    erc4626.erc20.symbol,
    erc4626.erc20.decimals,
    erc4626.erc20.permit,
    erc4626.erc20.nonces,
    erc4626.erc20.DOMAIN_SEPARATOR,
    erc4626.erc20.eip712Domain,
    erc4626.asset,
    access_control.DEFAULT_ADMIN_ROLE,
    access_control.hasRole,
    access_control.getRoleAdmin,
    access_control.grantRole,
    access_control.revokeRole,
    access_control.renounceRole,
)


# @dev ERC-165 interface ids the pool answers true for, each the XOR of the selectors
#      of the standard's own functions (recomputed from the signatures in
#      tests/contracts/test_standard_interfaces.py).
#      ERC-165: supportsInterface.
_IERC165: constant(bytes4) = 0x01ffc9a7
#      ERC-20: totalSupply, balanceOf, transfer, transferFrom, approve, allowance.
_IERC20: constant(bytes4) = 0x36372b07
#      ERC-20 metadata: name, symbol, decimals.
_IERC20_METADATA: constant(bytes4) = 0xa219a025
#      ERC-4626: asset, totalAssets, convertToShares, convertToAssets, maxDeposit,
#      previewDeposit, deposit, maxMint, previewMint, mint, maxWithdraw,
#      previewWithdraw, withdraw, maxRedeem, previewRedeem, redeem.
_IERC4626: constant(bytes4) = 0x87dfe5a0
#      EIP-2612: permit, nonces, DOMAIN_SEPARATOR.
_IERC2612: constant(bytes4) = 0x9d8ff7da
#      EIP-5267: eip712Domain.
_IERC5267: constant(bytes4) = 0x84b0196e
#      snekmate's IAccessControl: hasRole, getRoleAdmin, grantRole, revokeRole,
#      renounceRole.
_IACCESS_CONTROL: constant(bytes4) = 0x7965db0b

# @dev Role that sets the market's risk parameters (max LTV, reserve factor, treasury).
RISK_ADMIN_ROLE: public(constant(bytes32)) = keccak256("RISK_ADMIN_ROLE")
# @dev Role that pauses and unpauses borrowing and collateral withdrawals.
GUARDIAN_ROLE: public(constant(bytes32)) = keccak256("GUARDIAN_ROLE")
# @dev The share token's agent roles the pool honours for positions in it.
_FORCED_TRANSFER_ROLE: constant(bytes32) = keccak256("FORCED_TRANSFER_ROLE")
_RECOVERY_ROLE: constant(bytes32) = keccak256("RECOVERY_ROLE")

# @dev 1.0 in 18-decimal fixed point (LTVs, incentive, rates, borrow index).
WAD: constant(uint256) = 10**18
# @dev Decimal offset between the vault's shares and its asset (virtual shares).
DECIMALS_OFFSET: constant(uint8) = 6
# @dev Virtual vault shares: the empty vault behaves as if `VIRTUAL_SHARES` shares
#      backed `VIRTUAL_ASSETS` assets, which makes share inflation unprofitable.
VIRTUAL_SHARES: constant(uint256) = 10**6
# @dev Virtual assets (see `VIRTUAL_SHARES`).
VIRTUAL_ASSETS: constant(uint256) = 1
# @dev Scaled debt units per asset unit at index 1.0 (extra precision for debts).
DEBT_UNIT: constant(uint256) = 10**6
# @dev `debt = ceil(scaled * index / DEBT_SCALE)`.
DEBT_SCALE: constant(uint256) = WAD * DEBT_UNIT
# @dev Highest liquidation incentive (1.15).
MAX_INCENTIVE: constant(uint256) = 115 * 10**16
# @dev Highest liquidation LTV a market may have (95 %).
MAX_LLTV: constant(uint256) = 95 * 10**16
# @dev Highest reserve factor (50 % of the interest).
MAX_RESERVE_FACTOR_BPS: constant(uint256) = 5_000
# @dev Cap of the borrow rate the pool applies (1,000 % a year), whatever the model says.
MAX_RATE_PER_SECOND: constant(uint256) = 10 * WAD // 31_536_000
# @dev Bits of a 128-bit field.
MASK128: constant(uint256) = 2**128 - 1
# @dev Bits of a 64-bit field.
MASK64: constant(uint256) = 2**64 - 1
# @dev Bits of a 192-bit field.
MASK192: constant(uint256) = 2**192 - 1
# @dev Fixed-point scale of the share token's income accumulator.
INCOME_MAGNITUDE: constant(uint256) = 10**36
# @dev Bit of `_params` set while the guardian has paused the market.
PAUSED_BIT: constant(uint256) = 2**255


# @dev The collateral share token (an SPV's GPUShareToken).
collateral_token: public(immutable(address))
# @dev The AggregatorV3 feed pricing one whole collateral share in USD (the SPV's NAV).
price_feed: public(immutable(address))
# @dev The interest rate model.
rate_model: public(immutable(address))
# @dev Liquidation LTV (1e18 = 100 %): above it a loan can be liquidated.
lltv: public(immutable(uint256))
# @dev Collateral received per unit of debt repaid by a liquidator (1e18 = 1.0).
liquidation_incentive: public(immutable(uint256))
# @dev The token the collateral's rental income is paid in.
income_token: public(immutable(address))
# @dev The factory that deployed this pool.
factory: public(immutable(address))
# @dev `value = collateral * price * _PRICE_NUM / _PRICE_DEN` in asset units.
_PRICE_NUM: immutable(uint256)
_PRICE_DEN: immutable(uint256)
_ASSET: immutable(IERC20)
_TOKEN: immutable(IShareToken)
_FEED: immutable(AggregatorV3Interface)
_MODEL: immutable(IRateModel)
_REGISTRY: immutable(IHolders)

# @dev Packed: bits 0..191 borrow index (WAD, starts at 1.0), bits 192..255 time of
#      the last accrual.
_rates: uint256
# @dev Packed: bits 0..127 assets owed to lenders (supplied plus interest, minus
#      bad debt), bits 128..255 reserves (assets owed to the treasury).
_supply: uint256
# @dev Sum of all borrowers' scaled debts.
total_scaled_debt: public(uint256)
# @dev Packed: bits 0..63 max LTV (WAD), bits 64..79 reserve factor (bps), bit 255
#      paused.
_params: uint256
# @dev Packed per borrower: bits 0..127 scaled debt, bits 128..255 collateral shares.
_positions: HashMap[address, uint256]
# @dev Per borrower: income correction (scaled by the token's magnitude), so income
#      the borrower's collateral earned stays theirs across collateral moves.
_income_correction: HashMap[address, int256]
# @dev Collateral shares held for borrowers (internal accounting).
total_collateral: public(uint256)
# @dev Income claimed from the share token and not yet paid to borrowers.
income_held: public(uint256)
# @dev Where collected reserves go.
treasury: public(address)


# @dev Emitted at every accrual that changed the index.
event InterestAccrued:
    borrow_index: uint256
    interest: uint256
    to_reserves: uint256


# @dev Emitted when collateral is supplied.
event CollateralSupplied:
    sender: indexed(address)
    borrower: indexed(address)
    amount: uint256


# @dev Emitted when collateral is withdrawn.
event CollateralWithdrawn:
    borrower: indexed(address)
    receiver: indexed(address)
    amount: uint256


# @dev Emitted when a borrower borrows.
event Borrowed:
    borrower: indexed(address)
    receiver: indexed(address)
    assets: uint256
    scaled_debt: uint256


# @dev Emitted when a debt is repaid.
event Repaid:
    payer: indexed(address)
    borrower: indexed(address)
    assets: uint256
    scaled_debt: uint256


# @dev Emitted when a loan is liquidated.
event Liquidated:
    borrower: indexed(address)
    liquidator: indexed(address)
    repaid: uint256
    collateral_seized: uint256
    bad_debt: uint256


# @dev Emitted when debt without collateral is written off against the lenders.
event BadDebtWrittenOff:
    borrower: indexed(address)
    assets: uint256
    from_lenders: uint256
    from_reserves: uint256


# @dev Emitted when a borrower claims the rental income of their collateral.
event CollateralIncomeClaimed:
    borrower: indexed(address)
    amount: uint256


# @dev Emitted when reserves are paid to the treasury.
event ReservesCollected:
    treasury: indexed(address)
    amount: uint256


# @dev Emitted when the risk parameters change.
event RiskParametersChanged:
    max_ltv: uint256
    reserve_factor_bps: uint256
    treasury: indexed(address)
    admin: indexed(address)


# @dev Emitted (after `CollateralWithdrawn`) when an agent seizes pooled collateral.
event CollateralSeized:
    borrower: indexed(address)
    receiver: indexed(address)
    amount: uint256
    agent: indexed(address)


# @dev Emitted when an agent moves a position to a holder's new wallet.
event PositionRecovered:
    lost_wallet: indexed(address)
    new_wallet: indexed(address)
    collateral: uint256
    scaled_debt: uint256
    agent: indexed(address)


# @dev Emitted when the guardian pauses (True) or unpauses (False) the market.
event PauseChanged:
    paused: bool
    account: indexed(address)


@deploy
@payable
def __init__(
    name_: String[25],
    symbol_: String[5],
    asset_: address,
    collateral_token_: address,
    price_feed_: address,
    rate_model_: address,
    lltv_: uint256,
    max_ltv_: uint256,
    reserve_factor_bps_: uint256,
    treasury_: address,
    admin_: address,
):
    """
    @notice Deploys one market. Normally called through `LendingPoolFactory.create_market`.
    @dev `admin_` receives the admin, risk admin and guardian roles.
    @param name_ Vault share name (at most 25 characters).
    @param symbol_ Vault share symbol (at most 5 characters).
    @param asset_ The loan asset (a USD stablecoin).
    @param collateral_token_ The collateral (a GPUShareToken, 18 decimals).
    @param price_feed_ AggregatorV3 feed of one whole collateral share in USD.
    @param rate_model_ The interest rate model.
    @param lltv_ Liquidation LTV (1e18 = 100 %), above 0 and at most 95 %.
    @param max_ltv_ Max LTV for borrowing, above 0 and below `lltv_`.
    @param reserve_factor_bps_ Share of the interest to reserves, at most 50 %.
    @param treasury_ Receiver of the reserves.
    @param admin_ The market's admin.
    """
    # Validated with reasons by `LendingPoolFactory.create_market`; kept here, bare, so
    # a pool deployed from the blueprint directly cannot hold impossible parameters.
    assert lltv_ <= MAX_LLTV and max_ltv_ != 0 and max_ltv_ < lltv_
    assert reserve_factor_bps_ <= MAX_RESERVE_FACTOR_BPS
    assert treasury_ != empty(address) and admin_ != empty(address)

    erc4626.__init__(name_, symbol_, IERC20(asset_), DECIMALS_OFFSET, name_, "1")
    access_control.__init__()

    collateral_token = collateral_token_
    price_feed = price_feed_
    rate_model = rate_model_
    lltv = lltv_
    # min(1.15, 1 / (1 - 0.3 * (1 - lltv))), rounded down.
    liquidation_incentive = min(MAX_INCENTIVE, WAD * WAD // (WAD - 3 * (WAD - lltv_) // 10))
    income_token = staticcall IShareToken(collateral_token_).income_token()
    factory = msg.sender
    # GPU shares have 18 decimals; the asset's decimals come from the vault module.
    feed_decimals: uint8 = staticcall AggregatorV3Interface(price_feed_).decimals()
    # At most 18 decimals each keeps every price product below 2**256 (see `liquidate`).
    assert feed_decimals <= 18 and erc4626._UNDERLYING_DECIMALS <= 18
    _PRICE_NUM = 10 ** convert(erc4626._UNDERLYING_DECIMALS, uint256)
    _PRICE_DEN = 10 ** (convert(feed_decimals, uint256) + 18)
    _ASSET = IERC20(asset_)
    _TOKEN = IShareToken(collateral_token_)
    _FEED = AggregatorV3Interface(price_feed_)
    _MODEL = IRateModel(rate_model_)
    _REGISTRY = IHolders(staticcall IShareToken(collateral_token_).compliance_registry())

    self._rates = WAD | (block.timestamp << 192)
    self._params = max_ltv_ | (reserve_factor_bps_ << 64)
    self.treasury = treasury_

    access_control._grant_role(access_control.DEFAULT_ADMIN_ROLE, admin_)
    access_control._grant_role(RISK_ADMIN_ROLE, admin_)
    access_control._grant_role(GUARDIAN_ROLE, admin_)
    if msg.sender != admin_:
        access_control._revoke_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)


# ---------------------------------------------------------------------------------
# ERC-165
# ---------------------------------------------------------------------------------


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    """
    @notice ERC-165: true for ERC-165, ERC-20 (and its metadata), ERC-4626, EIP-2612,
            EIP-5267 and access control (roles).
    @param interface_id The interface id.
    @return bool Whether the pool implements it.
    """
    return interface_id in [
        _IERC165, _IERC20, _IERC20_METADATA, _IERC4626, _IERC2612, _IERC5267, _IACCESS_CONTROL
    ]


# ---------------------------------------------------------------------------------
# ERC-4626: lenders
# ---------------------------------------------------------------------------------


@external
@view
def totalAssets() -> uint256:
    """
    @notice Assets owed to the lenders now, interest included (reserves excluded).
    @return uint256 Asset units.
    """
    return self._preview_supply()[0]


@external
@view
def convertToShares(assets: uint256) -> uint256:
    """
    @notice Vault shares worth `assets` now, rounded down.
    @param assets Asset units.
    @return uint256 Vault shares.
    """
    return self._to_shares(assets, self._preview_supply()[0], False)


@external
@view
def convertToAssets(shares: uint256) -> uint256:
    """
    @notice Assets `shares` vault shares are worth now, rounded down.
    @param shares Vault shares.
    @return uint256 Asset units.
    """
    return self._to_assets(shares, self._preview_supply()[0], False)


@external
@view
def maxDeposit(receiver: address) -> uint256:
    """
    @notice The most assets `receiver` can deposit (the 128-bit accounting bound).
    @param receiver The receiver of the vault shares.
    @return uint256 Asset units.
    """
    supplied: uint256 = self._preview_supply()[0]
    return MASK128 - supplied


@external
@view
def previewDeposit(assets: uint256) -> uint256:
    """
    @notice Vault shares a deposit of `assets` mints now (rounded down).
    @param assets Asset units.
    @return uint256 Vault shares.
    """
    return self._to_shares(assets, self._preview_supply()[0], False)


@external
@nonreentrant
def deposit(assets: uint256, receiver: address) -> uint256:
    """
    @notice Supplies `assets` of the loan asset (approved to this pool) and mints vault
            shares to `receiver`, rounded down. Works while paused or stale.
    @param assets Asset units.
    @param receiver Receiver of the vault shares.
    @return uint256 Vault shares minted.
    """
    supplied: uint256 = self._accrue()
    shares: uint256 = self._to_shares(assets, supplied, False)
    assert shares != 0, reasons.POOL_DEPOSIT_MINTS_ZERO_VAULT
    # Credit after the pull and the mint: a view read from inside the asset's transfer
    # (a token with hooks) sees the state before the deposit, not half of it.
    erc4626._deposit(msg.sender, receiver, assets, shares)
    self._add_supplied(assets)
    return shares


@external
@view
def maxMint(receiver: address) -> uint256:
    """
    @notice The most vault shares `receiver` can mint.
    @param receiver The receiver of the vault shares.
    @return uint256 Vault shares.
    """
    supplied: uint256 = self._preview_supply()[0]
    return self._to_shares(MASK128 - supplied, supplied, False)


@external
@view
def previewMint(shares: uint256) -> uint256:
    """
    @notice Assets a mint of `shares` vault shares costs now (rounded up).
    @param shares Vault shares.
    @return uint256 Asset units.
    """
    return self._to_assets(shares, self._preview_supply()[0], True)


@external
@nonreentrant
def mint(shares: uint256, receiver: address) -> uint256:
    """
    @notice Mints exactly `shares` vault shares to `receiver` for the assets they are
            worth, rounded up. Works while paused or stale.
    @param shares Vault shares.
    @param receiver Receiver of the vault shares.
    @return uint256 Assets pulled from the caller.
    """
    assert shares != 0, reasons.POOL_MINT_ZERO_SHARES
    supplied: uint256 = self._accrue()
    assets: uint256 = self._to_assets(shares, supplied, True)
    # Credit after the pull and the mint: a view read from inside the asset's transfer
    # (a token with hooks) sees the state before the deposit, not half of it.
    erc4626._deposit(msg.sender, receiver, assets, shares)
    self._add_supplied(assets)
    return assets


@external
@view
def maxWithdraw(owner: address) -> uint256:
    """
    @notice The most assets `owner` can withdraw now: their claim, rounded down,
            within the idle liquidity.
    @param owner Holder of the vault shares.
    @return uint256 Asset units.
    """
    supplied: uint256 = 0
    reserves: uint256 = 0
    debt: uint256 = 0
    index: uint256 = 0
    supplied, reserves, debt, index = self._preview_supply()
    claim: uint256 = self._to_assets(erc4626.erc20.balanceOf[owner], supplied, False)
    return min(claim, self._idle(supplied, reserves, debt))


@external
@view
def previewWithdraw(assets: uint256) -> uint256:
    """
    @notice Vault shares a withdrawal of `assets` burns now (rounded up).
    @param assets Asset units.
    @return uint256 Vault shares.
    """
    return self._to_shares(assets, self._preview_supply()[0], True)


@external
@nonreentrant
def withdraw(assets: uint256, receiver: address, owner: address) -> uint256:
    """
    @notice Withdraws exactly `assets` to `receiver`, burning `owner`'s vault shares
            (rounded up). Needs idle liquidity: assets lent out come back as loans are
            repaid. Works while paused (the guardian's pause covers borrowers only).
    @param assets Asset units.
    @param receiver Receiver of the assets.
    @param owner Holder of the vault shares (the caller, or one who approved it).
    @return uint256 Vault shares burnt.
    """
    assert assets != 0, reasons.POOL_WITHDRAWAL_ZERO
    supplied: uint256 = self._accrue()
    shares: uint256 = self._to_shares(assets, supplied, True)
    self._remove_supplied(assets)
    erc4626._withdraw(msg.sender, receiver, owner, assets, shares)
    return shares


@external
@view
def maxRedeem(owner: address) -> uint256:
    """
    @notice The most vault shares `owner` can redeem now, within the idle liquidity.
    @param owner Holder of the vault shares.
    @return uint256 Vault shares.
    """
    supplied: uint256 = 0
    reserves: uint256 = 0
    debt: uint256 = 0
    index: uint256 = 0
    supplied, reserves, debt, index = self._preview_supply()
    idle_shares: uint256 = self._to_shares(self._idle(supplied, reserves, debt), supplied, False)
    shares: uint256 = min(erc4626.erc20.balanceOf[owner], idle_shares)
    # A redemption worth zero assets is refused: never promise one.
    if self._to_assets(shares, supplied, False) == 0:
        return 0
    return shares


@external
@view
def previewRedeem(shares: uint256) -> uint256:
    """
    @notice Assets a redemption of `shares` vault shares pays now (rounded down).
    @param shares Vault shares.
    @return uint256 Asset units.
    """
    return self._to_assets(shares, self._preview_supply()[0], False)


@external
@nonreentrant
def redeem(shares: uint256, receiver: address, owner: address) -> uint256:
    """
    @notice Burns exactly `shares` of `owner`'s vault shares and pays what they are
            worth, rounded down, to `receiver`. Needs idle liquidity.
    @param shares Vault shares.
    @param receiver Receiver of the assets.
    @param owner Holder of the vault shares (the caller, or one who approved it).
    @return uint256 Assets paid.
    """
    supplied: uint256 = self._accrue()
    assets: uint256 = self._to_assets(shares, supplied, False)
    assert assets != 0, reasons.POOL_REDEMPTION_WORTH_ZERO_ASSETS
    self._remove_supplied(assets)
    erc4626._withdraw(msg.sender, receiver, owner, assets, shares)
    return assets


# ---------------------------------------------------------------------------------
# Borrowers
# ---------------------------------------------------------------------------------


@external
@nonreentrant
def supply_collateral(amount: uint256, on_behalf: address):
    """
    @notice Moves `amount` collateral shares from the caller (approved to this pool)
            into the position of `on_behalf`. The move obeys the share token's
            transfer rules like any transfer; supplying for another wallet is decided
            exactly as a transfer of `amount` from the caller to it (the beneficiary
            must be eligible to hold the shares). Works while paused or stale.
    @param amount Share base units.
    @param on_behalf The borrower credited (and entitled to the shares' income).
    """
    assert amount != 0, reasons.POOL_ZERO_COLLATERAL
    assert on_behalf != empty(address), reasons.POOL_BORROWER_ZERO_ADDRESS
    if on_behalf != msg.sender:
        self._refuse(staticcall _TOKEN.detectTransferRestriction(msg.sender, on_behalf, amount))
    # Pull first, like ERC-4626's `deposit`: the share token is the market's own
    # (no hooks) and the lock is held; nothing is credited unless the shares arrived.
    assert extcall _TOKEN.transferFrom(msg.sender, self, amount), reasons.POOL_COLLATERAL_TRANSFERFROM_FAILED
    position: uint256 = self._positions[on_behalf]
    # The transfer succeeded, so `amount` is below the token's supply cap (2**96).
    self._positions[on_behalf] = unsafe_add(position, amount << 128)
    self.total_collateral = unsafe_add(self.total_collateral, amount)
    self._move_income(on_behalf, amount, True)
    log CollateralSupplied(sender=msg.sender, borrower=on_behalf, amount=amount)


@external
@nonreentrant
def withdraw_collateral(amount: uint256, receiver: address):
    """
    @notice Moves `amount` of the caller's collateral shares to `receiver`. With debt,
            the position must stay within the max LTV at a fresh price. The move obeys
            the share token's transfer rules as if the caller sent the shares itself:
            to another wallet it is decided as a transfer of `amount` from the caller
            (its holding counted as its wallet plus this position, so a partial freeze
            covers pooled shares), and a frozen, expired or unregistered caller, or an
            ineligible `receiver`, is refused with the token's restriction message.
    @param amount Share base units.
    @param receiver Receiver of the shares.
    """
    assert amount != 0, reasons.POOL_ZERO_COLLATERAL
    if receiver == msg.sender:
        self._check_move(msg.sender, receiver, 0)
    else:
        self._refuse(staticcall _TOKEN.custody_restriction(
            msg.sender, receiver, amount, self._positions[msg.sender] >> 128
        ))
    self._check_not_paused(self._params)
    # To another wallet, frozen shares left behind back nothing: the debt must stay
    # within the max LTV on the unfrozen part (the shares leaving are unfrozen ones).
    self._withdraw_collateral(msg.sender, receiver, amount, receiver != msg.sender)


@external
@nonreentrant
def borrow(assets: uint256, receiver: address) -> uint256:
    """
    @notice Borrows `assets` of the loan asset against the caller's collateral and
            sends them to `receiver`. The loan must stay within the max LTV at a fresh
            price (frozen shares of the caller's count for nothing), the pool must
            hold the liquidity, and the caller must be one the compliance rules let
            hold the shares (registered, not expired, not frozen, residence policy).
    @param assets Asset units.
    @param receiver Receiver of the assets.
    @return uint256 Scaled debt added (rounded up).
    """
    assert assets != 0, reasons.POOL_BORROW_ZERO
    params: uint256 = self._params
    self._check_not_paused(params)
    self._check_holder(msg.sender)
    index: uint256 = self._accrue_index()
    added: uint256 = math._mul_div(assets, DEBT_SCALE, index, True)
    position: uint256 = self._positions[msg.sender]
    scaled: uint256 = (position & MASK128) + added
    assert scaled <= MASK128, reasons.POOL_DEBT_ABOVE_2_128
    # Frozen shares back no new loan: only the part of the position a freeze of the
    # holder's wallet and position together leaves free counts.
    collateral: uint256 = self._unfrozen(msg.sender, position >> 128)
    assert self._within(
        self._debt_of(scaled, index), collateral, self._price(), params & MASK64
    ), reasons.POOL_BORROW_PUT_LOAN_ABOVE
    total_scaled: uint256 = self.total_scaled_debt + added
    supply: uint256 = self._supply
    assert (
        self._debt_of(total_scaled, index) <= (supply & MASK128) + (supply >> 128)
    ), reasons.POOL_NOT_ENOUGH_LIQUIDITY_POOL
    self._positions[msg.sender] = (position & ~MASK128) | scaled
    self.total_scaled_debt = total_scaled
    log Borrowed(borrower=msg.sender, receiver=receiver, assets=assets, scaled_debt=added)
    self._send_asset(receiver, assets)
    return added


@external
@nonreentrant
def repay(assets: uint256, borrower: address) -> uint256:
    """
    @notice Repays `assets` of `borrower`'s debt from the caller (approved to this
            pool); `assets` at or above the debt (for example `2**256 - 1`) repays it
            all and pulls exactly the debt. Always works: paused, stale or not.
    @param assets Asset units.
    @param borrower The borrower whose debt shrinks.
    @return uint256 Assets pulled from the caller.
    """
    assert assets != 0, reasons.POOL_REPAY_ZERO
    index: uint256 = self._accrue_index()
    position: uint256 = self._positions[borrower]
    scaled: uint256 = position & MASK128
    assert scaled != 0, reasons.POOL_NO_DEBT_REPAY
    debt: uint256 = self._debt_of(scaled, index)
    repaid: uint256 = assets
    removed: uint256 = scaled
    if assets >= debt:
        repaid = debt
    else:
        removed = math._mul_div(assets, DEBT_SCALE, index, False)
        assert removed != 0, reasons.POOL_REPAY_AMOUNT_ROUNDS_ZERO
    # `removed <= scaled <= total_scaled_debt`.
    self._positions[borrower] = unsafe_sub(position, removed)
    self.total_scaled_debt = unsafe_sub(self.total_scaled_debt, removed)
    log Repaid(payer=msg.sender, borrower=borrower, assets=repaid, scaled_debt=removed)
    self._pull_asset(repaid)
    return repaid


@external
@nonreentrant
def liquidate(borrower: address, max_repay: uint256) -> (uint256, uint256, uint256):
    """
    @notice Repays up to `max_repay` of an unhealthy loan (above the liquidation LTV)
            and receives collateral worth the repayment times `liquidation_incentive`.
            When that would exceed the collateral, all of it is seized for a smaller
            repayment and the debt left is written off against the lenders. The caller
            must be eligible to hold the collateral (checked first, with the share
            token's restriction message), and the price must be fresh.
    @param borrower The borrower.
    @param max_repay Most asset units to repay (`2**256 - 1` for all).
    @return uint256 Assets repaid (pulled from the caller).
    @return uint256 Collateral shares sent to the caller.
    @return uint256 Debt written off.
    """
    self._check_move(self, msg.sender, 0)
    assert max_repay != 0, reasons.POOL_REPAY_ZERO
    index: uint256 = self._accrue_index()
    position: uint256 = self._positions[borrower]
    scaled: uint256 = position & MASK128
    collateral: uint256 = position >> 128
    assert scaled != 0, reasons.POOL_NO_DEBT_REPAY
    price: uint256 = self._price()
    debt: uint256 = self._debt_of(scaled, index)
    assert not self._within(debt, collateral, price, lltv), reasons.POOL_LOAN_HEALTHY_UNDER_LIQUIDATION

    repaid: uint256 = min(max_repay, debt)
    # incentive * den < 2**61 * 10**36 and WAD * price * num < 2**60 * 2**128 * 10**18:
    # both far below 2**256.
    per_repaid: uint256 = unsafe_mul(liquidation_incentive, _PRICE_DEN)
    per_seized: uint256 = unsafe_mul(unsafe_mul(WAD, price), _PRICE_NUM)
    seized: uint256 = math._mul_div(repaid, per_repaid, per_seized, False)
    if seized >= collateral:
        seized = collateral
        repaid = min(debt, math._mul_div(collateral, per_seized, per_repaid, True))
    removed: uint256 = scaled
    if repaid < debt:
        removed = math._mul_div(repaid, DEBT_SCALE, index, False)
    assert removed != 0 or seized != 0 or collateral == 0, reasons.POOL_LIQUIDATION_ROUNDS_NOTHING
    # `removed <= scaled` (repaid < debt rounds down below it) and `seized <= collateral`.
    scaled = unsafe_sub(scaled, removed)
    collateral = unsafe_sub(collateral, seized)

    bad_debt: uint256 = 0
    total_scaled: uint256 = self.total_scaled_debt
    if collateral == 0 and scaled != 0:
        # The collateral ran out: write the rest off against the lenders.
        before: uint256 = self._debt_of(unsafe_sub(total_scaled, removed), index)
        after: uint256 = self._debt_of(unsafe_sub(unsafe_sub(total_scaled, removed), scaled), index)
        bad_debt = unsafe_sub(before, after)
        removed = unsafe_add(removed, scaled)
        scaled = 0
        supply: uint256 = self._supply
        supplied: uint256 = supply & MASK128
        reserves: uint256 = supply >> 128
        from_lenders: uint256 = min(bad_debt, supplied)
        from_reserves: uint256 = bad_debt - from_lenders
        # `supplied + reserves >= total debt >= bad_debt` (idle liquidity is never
        # negative), so `reserves - from_reserves` cannot underflow.
        self._supply = (supplied - from_lenders) | ((reserves - from_reserves) << 128)
        log BadDebtWrittenOff(
            borrower=borrower, assets=bad_debt, from_lenders=from_lenders, from_reserves=from_reserves
        )

    self._positions[borrower] = scaled | (collateral << 128)
    self.total_scaled_debt = unsafe_sub(total_scaled, removed)
    if seized != 0:
        self.total_collateral = unsafe_sub(self.total_collateral, seized)
        self._move_income(borrower, seized, False)
    log Liquidated(
        borrower=borrower, liquidator=msg.sender, repaid=repaid, collateral_seized=seized, bad_debt=bad_debt
    )
    if repaid != 0:
        self._pull_asset(repaid)
    if seized != 0:
        self._send_collateral(msg.sender, seized)
    return (repaid, seized, bad_debt)


@external
@nonreentrant
def claim_income() -> uint256:
    """
    @notice Pays the caller the rental income their collateral earned while in the
            pool (the pool claims it from the share token when it needs to). The
            caller must be one the compliance rules let hold the shares.
    @return uint256 Income token units paid.
    """
    self._check_holder(msg.sender)
    # Like the token's own claims, none while the share token is paused.
    if staticcall _TOKEN.paused():
        self._refuse(1)
    owed: uint256 = self._income_owed(msg.sender, self._income_per_share())
    assert owed != 0, reasons.POOL_NO_COLLATERAL_INCOME_CLAIM
    held: uint256 = self.income_held
    if held < owed:
        # The share token pays exactly what it returns (income tokens with a transfer
        # fee are not supported, like loan assets with one).
        held += extcall _TOKEN.claim()
    self.income_held = held - owed
    # `owed * magnitude <= accumulated < 2**255`.
    self._income_correction[msg.sender] -= convert(unsafe_mul(owed, INCOME_MAGNITUDE), int256)
    log CollateralIncomeClaimed(borrower=msg.sender, amount=owed)
    assert extcall IERC20(income_token).transfer(
        msg.sender, owed, default_return_value=True
    ), reasons.POOL_INCOME_TOKEN_TRANSFER_FAILED
    return owed


@external
@nonreentrant
def forced_withdraw(borrower: address, receiver: address, amount: uint256):
    """
    @notice An agent's seizure of pooled collateral (court order): moves `amount` of
            `borrower`'s collateral shares to `receiver`, which the share token checks
            like any transfer from the pool. With debt, the position must stay within
            the max LTV at a fresh price: the lenders' claim on the collateral came
            first (repay the debt, anyone may, to seize the rest). The guardian's pause
            does not stop it.
    @dev Only an account with the share token's `FORCED_TRANSFER_ROLE`.
    @param borrower The position's holder.
    @param receiver The wallet receiving the shares (not the borrower).
    @param amount Share base units.
    """
    assert staticcall _TOKEN.hasRole(_FORCED_TRANSFER_ROLE, msg.sender), reasons.POOL_NOT_FORCED_TRANSFER_AGENT
    assert receiver != borrower, reasons.POOL_SEIZURE_TO_ANOTHER_WALLET
    assert amount != 0, reasons.POOL_ZERO_COLLATERAL
    assert not staticcall _REGISTRY.custodian(receiver), reasons.POOL_CUSTODIAN_RECEIVES_NO_POSITION
    self._withdraw_collateral(borrower, receiver, amount, False)
    log CollateralSeized(borrower=borrower, receiver=receiver, amount=amount, agent=msg.sender)


@external
@nonreentrant
def recover_position(lost_wallet: address, new_wallet: address):
    """
    @notice Moves `lost_wallet`'s whole position (collateral, debt and the collateral
            income not yet claimed) to `new_wallet`, for a holder who lost their keys
            (the share token's `recover_wallet` moves their wallet's shares). A
            position the new wallet already holds is merged into.
    @dev Only an account with the share token's `RECOVERY_ROLE`. The new wallet must
         be one the compliance rules let hold the shares.
    @param lost_wallet The wallet whose keys are lost.
    @param new_wallet The holder's new wallet.
    """
    assert staticcall _TOKEN.hasRole(_RECOVERY_ROLE, msg.sender), reasons.POOL_NOT_RECOVERY_AGENT
    assert lost_wallet != new_wallet, reasons.POOL_SEIZURE_TO_ANOTHER_WALLET
    assert not staticcall _REGISTRY.custodian(new_wallet), reasons.POOL_CUSTODIAN_RECEIVES_NO_POSITION
    self._check_holder(new_wallet)
    # The lost key may be in someone else's hands: it must no longer be able to act.
    assert staticcall _REGISTRY.check_sender(lost_wallet) != 0, reasons.POOL_RECOVERY_LOST_WALLET_ACTIVE
    # A freeze on the lost wallet covers this position: the token's recover_wallet
    # moves it to the new wallet first, so the position never leaves it behind.
    assert staticcall _TOKEN.getFrozenTokens(lost_wallet) <= staticcall _TOKEN.getFrozenTokens(
        new_wallet
    ), reasons.POOL_RECOVER_WALLET_FIRST
    position: uint256 = self._positions[lost_wallet]
    assert position != 0 or self._income_correction[lost_wallet] != 0, reasons.POOL_NOTHING_TO_RECOVER
    # Both positions fit 128 bits each: their sums stay below the token's supply cap
    # (collateral) and the total scaled debt (debt).
    self._positions[new_wallet] += position
    self._positions[lost_wallet] = 0
    self._income_correction[new_wallet] += self._income_correction[lost_wallet]
    self._income_correction[lost_wallet] = 0
    log PositionRecovered(
        lost_wallet=lost_wallet,
        new_wallet=new_wallet,
        collateral=position >> 128,
        scaled_debt=position & MASK128,
        agent=msg.sender,
    )


# ---------------------------------------------------------------------------------
# Reserves, parameters, pause
# ---------------------------------------------------------------------------------


@external
@nonreentrant
def collect_reserves(amount: uint256) -> uint256:
    """
    @notice Pays up to `amount` of the reserves to the treasury, within the idle
            liquidity. Anyone may call it: the assets only ever go to `treasury`.
    @param amount Asset units (`2**256 - 1` for all that is available).
    @return uint256 Assets paid.
    """
    self._accrue()
    supply: uint256 = self._supply
    supplied: uint256 = supply & MASK128
    reserves: uint256 = supply >> 128
    paid: uint256 = min(amount, min(reserves, self._idle(supplied, reserves, self._total_debt())))
    assert paid != 0, reasons.POOL_NO_RESERVES_AVAILABLE_COLLECT
    self._supply = supplied | ((reserves - paid) << 128)
    treasury: address = self.treasury
    log ReservesCollected(treasury=treasury, amount=paid)
    self._send_asset(treasury, paid)
    return paid






@external
def set_risk_parameters(new_max_ltv: uint256, new_reserve_factor_bps: uint256, new_treasury: address):
    """
    @notice Sets the max LTV for borrowing and collateral withdrawals, the share of
            future interest that goes to the reserves (interest accrued so far is
            split at the old factor first), and the treasury that receives them.
    @dev Only `RISK_ADMIN_ROLE`. The max LTV stays above 0 and below the liquidation
         LTV; the reserve factor at most `MAX_RESERVE_FACTOR_BPS`.
    @param new_max_ltv 1e18 = 100 %.
    @param new_reserve_factor_bps Basis points of the interest.
    @param new_treasury Receiver of the reserves (not the zero address).
    """
    access_control._check_role(RISK_ADMIN_ROLE, msg.sender)
    assert new_max_ltv != 0 and new_max_ltv < lltv, reasons.POOL_MAX_LTV_ABOVE_0
    assert new_reserve_factor_bps <= MAX_RESERVE_FACTOR_BPS, reasons.POOL_RESERVE_FACTOR_ABOVE_50
    assert new_treasury != empty(address), reasons.POOL_TREASURY_ZERO_ADDRESS
    self._accrue()
    self._params = (self._params & PAUSED_BIT) | new_max_ltv | (new_reserve_factor_bps << 64)
    self.treasury = new_treasury
    log RiskParametersChanged(
        max_ltv=new_max_ltv,
        reserve_factor_bps=new_reserve_factor_bps,
        treasury=new_treasury,
        admin=msg.sender,
    )


@external
def set_paused(paused_: bool):
    """
    @notice Pauses (True) or resumes (False) borrowing and collateral withdrawals.
            Repay, supply, lender withdrawals and liquidations always continue.
    @dev Only `GUARDIAN_ROLE`.
    @param paused_ The new state.
    """
    access_control._check_role(GUARDIAN_ROLE, msg.sender)
    params: uint256 = self._params
    assert (params & PAUSED_BIT != 0) != paused_, reasons.POOL_PAUSE_UNCHANGED
    self._params = params ^ PAUSED_BIT
    log PauseChanged(paused=paused_, account=msg.sender)





@external
def accrue_interest():
    """
    @notice Accrues interest up to now (every operation does this first).
    """
    self._accrue()


# ---------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------


@external
@view
def paused() -> bool:
    """
    @notice Whether the guardian has stopped borrowing and collateral withdrawals.
    @return bool True while paused.
    """
    return self._params & PAUSED_BIT != 0


@external
@view
def max_ltv() -> uint256:
    """
    @notice Max LTV for borrowing and collateral withdrawals (1e18 = 100 %).
    @return uint256 The max LTV.
    """
    return self._params & MASK64


@external
@view
def reserve_factor_bps() -> uint256:
    """
    @notice Share of the interest that goes to the reserves, in basis points.
    @return uint256 Basis points.
    """
    return (self._params >> 64) & 65_535


@external
@view
def borrow_index() -> uint256:
    """
    @notice The borrow index as of now (WAD; 1.0 at deployment), pending interest included.
    @return uint256 The index.
    """
    return self._preview_supply()[3]




@external
@view
def market() -> (uint256, uint256, uint256, uint256):
    """
    @notice The market's totals as of now, pending interest included.
    @return uint256 Assets owed to lenders.
    @return uint256 Reserves.
    @return uint256 Total debt (rounded up).
    @return uint256 Idle liquidity.
    """
    supplied: uint256 = 0
    reserves: uint256 = 0
    debt: uint256 = 0
    index: uint256 = 0
    supplied, reserves, debt, index = self._preview_supply()
    return (supplied, reserves, debt, self._idle(supplied, reserves, debt))




@external
@view
def position(borrower: address) -> (uint256, uint256, uint256):
    """
    @notice A borrower's position as of now.
    @param borrower The borrower.
    @return uint256 Collateral shares.
    @return uint256 Debt, rounded up, pending interest included.
    @return uint256 Scaled debt.
    """
    p: uint256 = self._positions[borrower]
    return (p >> 128, self._debt_of(p & MASK128, self._preview_supply()[3]), p & MASK128)




@external
@view
def price() -> uint256:
    """
    @notice The feed's latest collateral price (USD per whole share, feed decimals),
            after the pool's checks (fresh, positive).
    @return uint256 The price.
    """
    return self._price()


@external
@view
def income_owed(borrower: address) -> uint256:
    """
    @notice Rental income the borrower's collateral earned in the pool, not yet claimed.
    @param borrower The borrower.
    @return uint256 Income token units (rounded down).
    """
    return self._income_owed(borrower, self._income_per_share())


# ---------------------------------------------------------------------------------
# Internal
# ---------------------------------------------------------------------------------


@internal
def _accrue() -> uint256:
    """
    @dev Accrues interest; returns the assets owed to lenders afterwards.
    """
    self._accrue_index()
    return self._supply & MASK128


@internal
def _accrue_index() -> uint256:
    """
    @dev Moves the borrow index to now and splits the interest between lenders and
         reserves. Interest is the growth of the rounded-up total debt, so the pool's
         internal idle liquidity (`supplied + reserves - debt`) never changes here.
    @return uint256 The borrow index now.
    """
    rates: uint256 = self._rates
    index: uint256 = rates & MASK192
    elapsed: uint256 = unsafe_sub(block.timestamp, rates >> 192)
    if elapsed == 0:
        return index
    total_scaled: uint256 = self.total_scaled_debt
    if total_scaled == 0:
        self._rates = index | (block.timestamp << 192)
        return index
    supply: uint256 = self._supply
    debt_before: uint256 = self._debt_of(total_scaled, index)
    rate: uint256 = self._rate(supply & MASK128, debt_before)
    new_index: uint256 = self._grow(index, rate, elapsed)
    self._rates = new_index | (block.timestamp << 192)
    if new_index == index:
        return index
    interest: uint256 = self._debt_of(total_scaled, new_index) - debt_before
    to_reserves: uint256 = interest * ((self._params >> 64) & 65_535) // 10_000
    supplied: uint256 = (supply & MASK128) + interest - to_reserves
    reserves: uint256 = (supply >> 128) + to_reserves
    assert supplied <= MASK128 and reserves <= MASK128, reasons.POOL_ABOVE_2_128
    self._supply = supplied | (reserves << 128)
    log InterestAccrued(borrow_index=new_index, interest=interest, to_reserves=to_reserves)
    return new_index




@internal
@view
def _preview_supply() -> (uint256, uint256, uint256, uint256):
    """
    @dev As of now, without writing: assets owed to lenders, reserves, total debt
         and the borrow index.
    """
    supply: uint256 = self._supply
    supplied: uint256 = supply & MASK128
    reserves: uint256 = supply >> 128
    rates: uint256 = self._rates
    index: uint256 = rates & MASK192
    total_scaled: uint256 = self.total_scaled_debt
    debt_before: uint256 = self._debt_of(total_scaled, index)
    elapsed: uint256 = unsafe_sub(block.timestamp, rates >> 192)
    if elapsed == 0 or total_scaled == 0:
        return (supplied, reserves, debt_before, index)
    new_index: uint256 = self._grow(index, self._rate(supplied, debt_before), elapsed)
    debt_after: uint256 = self._debt_of(total_scaled, new_index)
    interest: uint256 = debt_after - debt_before
    to_reserves: uint256 = interest * ((self._params >> 64) & 65_535) // 10_000
    return (supplied + interest - to_reserves, reserves + to_reserves, debt_after, new_index)


@internal
@view
def _rate(supplied: uint256, debt: uint256) -> uint256:
    """
    @dev The model's rate per second, capped at `MAX_RATE_PER_SECOND`.
    """
    return min(staticcall _MODEL.borrow_rate(supplied, debt), MAX_RATE_PER_SECOND)


@internal
@pure
def _grow(index: uint256, rate: uint256, elapsed: uint256) -> uint256:
    """
    @dev `index * exp(rate * elapsed)`, rounded down (continuous compounding).
    """
    # rate <= MAX_RATE_PER_SECOND < 2**39 and elapsed < 2**64.
    growth: uint256 = convert(math._wad_exp(convert(unsafe_mul(rate, elapsed), int256)), uint256)
    new_index: uint256 = math._mul_div(index, growth, WAD, False)
    assert new_index <= MASK192, reasons.POOL_INDEX_ABOVE_2_192
    return max(new_index, index)


@internal
@pure
def _debt_of(scaled: uint256, index: uint256) -> uint256:
    """
    @dev Debt of a scaled amount at `index`, rounded up.
    """
    return math._mul_div(scaled, index, DEBT_SCALE, True)


@internal
@view
def _total_debt() -> uint256:
    """
    @dev Total debt at the stored index (call after accruing).
    """
    return self._debt_of(self.total_scaled_debt, self._rates & MASK192)


@internal
@pure
def _idle(supplied: uint256, reserves: uint256, debt: uint256) -> uint256:
    """
    @dev Idle liquidity the pool holds by its own accounting.
    """
    if supplied + reserves <= debt:
        return 0
    return supplied + reserves - debt


@internal
@view
def _to_shares(assets: uint256, supplied: uint256, round_up: bool) -> uint256:
    """
    @dev Vault shares worth `assets`, with virtual shares and assets.
    """
    return math._mul_div(
        assets, unsafe_add(erc4626.erc20.totalSupply, VIRTUAL_SHARES), unsafe_add(supplied, VIRTUAL_ASSETS), round_up
    )


@internal
@view
def _to_assets(shares: uint256, supplied: uint256, round_up: bool) -> uint256:
    """
    @dev Assets `shares` vault shares are worth, with virtual shares and assets.
    """
    return math._mul_div(
        shares, unsafe_add(supplied, VIRTUAL_ASSETS), unsafe_add(erc4626.erc20.totalSupply, VIRTUAL_SHARES), round_up
    )


@internal
def _add_supplied(assets: uint256):
    """
    @dev Adds deposited assets to the lenders' total (after accruing).
    """
    assert assets != 0, reasons.POOL_DEPOSIT_ZERO
    supply: uint256 = self._supply
    supplied: uint256 = (supply & MASK128) + assets
    assert supplied <= MASK128, reasons.POOL_DEPOSIT_ABOVE_2_128
    self._supply = (supply & ~MASK128) | supplied


@internal
def _remove_supplied(assets: uint256):
    """
    @dev Removes withdrawn assets from the lenders' total (after accruing); the
         pool must hold them idle.
    """
    supply: uint256 = self._supply
    supplied: uint256 = supply & MASK128
    assert assets <= self._idle(supplied, supply >> 128, self._total_debt()), reasons.POOL_NOT_ENOUGH_IDLE_LIQUIDITY
    self._supply = (supply & ~MASK128) | (supplied - assets)


@internal
@view
def _price() -> uint256:
    """
    @dev The feed's latest price after the checks: positive and not older than the
         feed's heartbeat. Reverts otherwise (no borrows, no collateral withdrawals
         with debt, no liquidations on a price the pool cannot trust).
    """
    answer: int256 = 0
    updated_at: uint256 = 0
    _: uint80 = 0
    __: uint256 = 0
    ___: uint80 = 0
    _, answer, __, updated_at, ___ = staticcall _FEED.latestRoundData()
    assert answer > 0 and answer < 2**128, reasons.POOL_COLLATERAL_PRICE_NOT_POSITIVE
    heartbeat: uint256 = staticcall IHeartbeat(price_feed).heartbeat()
    assert updated_at <= block.timestamp and block.timestamp - updated_at <= heartbeat, reasons.POOL_COLLATERAL_PRICE_STALE_OLDER
    return convert(answer, uint256)


@internal
@view
def _value(collateral: uint256, price: uint256) -> uint256:
    """
    @dev Value of `collateral` shares in asset units, rounded down.
    """
    # price < 2**128 and num <= 10**18.
    return math._mul_div(collateral, unsafe_mul(price, _PRICE_NUM), _PRICE_DEN, False)


@internal
@view
def _within(debt: uint256, collateral: uint256, price: uint256, ltv: uint256) -> bool:
    """
    @dev Whether `debt <= value(collateral) * ltv` (value rounded down).
    """
    if debt == 0:
        return True
    return debt <= math._mul_div(self._value(collateral, price), ltv, WAD, False)


@internal
@view
def _income_owed(borrower: address, income_per_share: uint256) -> uint256:
    """
    @dev `(income_per_share * collateral + correction) / magnitude`, rounded down.
    """
    # income_per_share < 2**159 and collateral < 2**96 (the token's supply cap).
    accumulated: int256 = convert(
        unsafe_mul(income_per_share, self._positions[borrower] >> 128), int256
    ) + self._income_correction[borrower]
    if accumulated <= 0:
        return 0
    return convert(accumulated, uint256) // INCOME_MAGNITUDE


@internal
@pure
def _check_not_paused(params: uint256):
    """
    @dev Reverts while the guardian has paused borrowing and collateral withdrawals.
    """
    assert params & PAUSED_BIT == 0, reasons.POOL_PAUSED_GUARDIAN_REPAY_STILL


@internal
@view
def _check_holder(account: address):
    """
    @dev Reverts, with the registry's message, unless the compliance rules let
         `account` hold the shares (registered, not expired, not frozen, residence
         policy): it borrows nothing and takes no collateral income otherwise (it can
         still repay).
    """
    self._refuse(staticcall _REGISTRY.check_receiver(account))


@internal
@view
def _unfrozen(holder: address, collateral: uint256) -> uint256:
    """
    @dev The part of `holder`'s `collateral` a freeze of its wallet and position
         together leaves free (frozen shares back no loan).
    """
    frozen: uint256 = staticcall _TOKEN.getFrozenTokens(holder)
    if frozen == 0:
        return collateral
    holding: uint256 = staticcall _TOKEN.balanceOf(holder) + collateral
    return min(collateral, holding - min(frozen, holding))


@internal
def _withdraw_collateral(borrower: address, receiver: address, amount: uint256, unfrozen_only: bool):
    """
    @dev Takes `amount` collateral out of `borrower`'s position (within the max LTV at
         a fresh price while it has debt, counting only unfrozen collateral when
         `unfrozen_only`) and sends it to `receiver`.
    """
    position: uint256 = self._positions[borrower]
    collateral: uint256 = position >> 128
    assert amount <= collateral, reasons.POOL_WITHDRAWAL_EXCEEDS_COLLATERAL
    collateral = unsafe_sub(collateral, amount)
    scaled: uint256 = position & MASK128
    if scaled != 0:
        index: uint256 = self._accrue_index()
        counted: uint256 = collateral
        if unfrozen_only:
            counted = self._unfrozen(borrower, collateral)
        assert self._within(
            self._debt_of(scaled, index), counted, self._price(), self._params & MASK64
        ), reasons.POOL_WITHDRAWAL_PUT_LOAN_ABOVE
    self._positions[borrower] = scaled | (collateral << 128)
    self.total_collateral = unsafe_sub(self.total_collateral, amount)
    self._move_income(borrower, amount, False)
    log CollateralWithdrawn(borrower=borrower, receiver=receiver, amount=amount)
    self._send_collateral(receiver, amount)


@internal
@view
def _income_per_share() -> uint256:
    """
    @dev The share token's income accumulator.
    """
    return staticcall _TOKEN.income_per_share()


@internal
def _move_income(borrower: address, amount: uint256, added: bool):
    """
    @dev Keeps income earned so far with the borrower when `amount` collateral shares
         enter (`added`) or leave the position: the same correction the share token
         applies to the pool's own balance.
    """
    # income_per_share < 2**159 and amount < 2**128 (token supply < 2**96).
    delta: int256 = convert(unsafe_mul(self._income_per_share(), amount), int256)
    if added:
        self._income_correction[borrower] -= delta
    else:
        self._income_correction[borrower] += delta


@internal
def _send_collateral(receiver: address, amount: uint256):
    """
    @dev Sends collateral shares; the share token enforces its transfer rules.
    """
    assert extcall _TOKEN.transfer(receiver, amount), reasons.POOL_COLLATERAL_TRANSFER_FAILED


@internal
def _send_asset(receiver: address, amount: uint256):
    """
    @dev Sends the loan asset.
    """
    assert extcall _ASSET.transfer(receiver, amount, default_return_value=True), reasons.POOL_LOAN_ASSET_TRANSFER_FAILED


@internal
def _pull_asset(amount: uint256):
    """
    @dev Pulls the loan asset from the caller (approved to this pool).
    """
    assert extcall _ASSET.transferFrom(
        msg.sender, self, amount, default_return_value=True
    ), reasons.POOL_LOAN_ASSET_TRANSFERFROM_FAILED


@internal
@view
def _check_move(sender: address, receiver: address, amount: uint256):
    """
    @dev Reverts, before any state changes, unless `sender` may move `amount` shares
         to `receiver` now (the share token's own decision).
    """
    self._refuse(staticcall _TOKEN.detectTransferRestriction(sender, receiver, amount))


@internal
@view
def _refuse(code: uint8):
    """
    @dev Reverts with the share token's message for restriction `code` (an
         `Error(string)` a wallet shows, forwarded as returned) unless it is 0.
    """
    if code != 0:
        message: Bytes[256] = raw_call(
            collateral_token,
            abi_encode(code, method_id=method_id("messageForTransferRestriction(uint8)")),
            max_outsize=256,
            is_static_call=True,
        )
        raw_revert(concat(method_id("Error(string)"), message))
