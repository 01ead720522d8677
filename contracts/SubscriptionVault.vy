# pragma version ~=0.4.3
# pragma optimize codesize
"""
@title Subscription Vault
@custom:contract-name SubscriptionVault
@license GNU Affero General Public License v3.0 only
@notice Primary issuance and redemption of one SPV's shares, asynchronously (ERC-7540,
        ERC-7575): investors request, the SPV's operator fulfils at the attested NAV
        per share, investors claim.
        - `requestDeposit` escrows the stablecoin here; refused up front, with the
          registry's message, if the controller could not receive newly issued shares.
        - `fulfil_deposit` (OPERATOR_ROLE) prices the request at the NAV feed's latest
          answer, which must be fresh and published after the request (forward
          pricing: nobody trades against a NAV already known), mints the shares here
          within the fleet's backing, and only then sends the stablecoin to the SPV's
          treasury. The controller claims the shares with `deposit` / `mint`.
        - `requestRedeem` escrows the shares here (a transfer, so a frozen or ineligible
          holder is refused as for any transfer); `fulfil_redeem` (after the notice
          period, at a NAV published after the request) burns them and sets aside the
          stablecoin the operator funded, minus the redemption fee; the controller
          claims it with `redeem` / `withdraw`.
        - A request is a binding order, like a fund subscription after its dealing
          cut-off: it can be cancelled, for exactly what was escrowed, once
          `cancel_after` has passed since it without a fulfilment (so it is never
          stuck), and not before: a NAV report is public (signed off-chain, then in the
          mempool) before it lands, so an earlier cancel would be a free option on it.
        - Only the controller or one of its ERC-7540 operators may request for it, and
          not while it has a request of the same kind pending: a request sets the
          controller's clock, so a top-up sent when the next NAV report is seen in
          flight would push the order past that NAV (a free option on which NAV prices
          it), and one by anyone else could delay the order forever.
        - Shares the vault holds for a controller (escrowed for redemption, or issued and
          not yet claimed) keep earning rental income for that controller
          (`claim_income`).
        Requests are aggregated per controller (request id 0, as ERC-7540 allows).
@custom:security The operator can move escrowed stablecoin only to the treasury and only
                 in `fulfil_deposit`, after the matching shares exist; escrowed shares
                 only by burning them in `fulfil_redeem` against stablecoin set aside for
                 the controller. Unallocated redemption funds go back to the treasury
                 only. Every function that moves tokens is non-reentrant, and writes its
                 state before it calls out.
"""


from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

from snekmate.auth import access_control
initializes: access_control

from snekmate.utils import math

from .interfaces import AggregatorV3Interface
from .modules import reasons
from .modules import restriction_codes as codes


exports: (
    access_control.DEFAULT_ADMIN_ROLE,
    access_control.hasRole,
    access_control.getRoleAdmin,
    access_control.grantRole,
    access_control.revokeRole,
    access_control.renounceRole,
    access_control.set_role_admin,
)


# @dev The SPV's share token (what the vault issues, escrows and burns).
interface IShareToken:
    def mint(to: address, amount: uint256): nonpayable
    def burn(amount: uint256): nonpayable
    def claim() -> uint256: nonpayable
    def transfer(to: address, amount: uint256) -> bool: nonpayable
    def transferFrom(owner: address, to: address, amount: uint256) -> bool: nonpayable
    def claimable(account: address) -> uint256: view
    def totalSupply() -> uint256: view
    def income_token() -> address: view
    def compliance_registry() -> address: view
    def detectTransferRestriction(sender: address, receiver: address, amount: uint256) -> uint8: view
    def hasRole(role: bytes32, account: address) -> bool: view
    def paused() -> bool: view


# @dev The registry's income check (who may be paid stablecoin).
interface IRegistry:
    def income_code(account: address) -> uint8: view
    def check_sender(account: address) -> uint8: view


# @dev The NAV feed's staleness bound.
interface IHeartbeat:
    def heartbeat() -> uint256: view


# @dev Role that fulfils requests and funds redemptions (the SPV's operator).
OPERATOR_ROLE: public(constant(bytes32)) = keccak256("OPERATOR_ROLE")
# @dev Highest redemption fee (10 %).
MAX_FEE_BPS: public(constant(uint256)) = 1_000
# @dev Longest notice period (one year).
MAX_NOTICE_PERIOD: public(constant(uint256)) = 365 * 86_400
# @dev Bounds of `cancel_after`.
MIN_CANCEL_AFTER: public(constant(uint256)) = 86_400
MAX_CANCEL_AFTER: public(constant(uint256)) = 90 * 86_400
# @dev Decimals of the NAV feed (USD per whole share, 8 decimals like Chainlink's USD feeds).
NAV_DECIMALS: public(constant(uint8)) = 8
# @dev Income accumulator scale.
MAGNITUDE: constant(uint256) = 10**36
LOW: constant(uint256) = 2**128 - 1
# @dev A claimable-deposit slot's shares (bits 128..254) and the bit that keeps a slot
#      once written non-zero (a controller's next fulfilment then rewrites a used slot
#      instead of creating one: 2,900 gas, not 20,000).
SHARES_MASK: constant(uint256) = 2**127 - 1
USED: constant(uint256) = 2**255
# @dev ERC-165 ids: ERC-165, ERC-7540 operators, async deposit, async redeem, ERC-7575.
_SUPPORTED: constant(bytes4[5]) = [0x01ffc9a7, 0xe3bc4e65, 0xce3bbe50, 0x620ee8e4, 0x2f0a18c5]


# @dev The share token (ERC-7575 `share()`).
share: public(immutable(address))
# @dev The stablecoin subscriptions are paid in (ERC-4626 `asset()`): the token's income token.
asset: public(immutable(address))
# @dev The NAV feed (a FeedAdapter of the OracleHub: USD per share, 8 decimals).
nav_feed: public(immutable(address))
# @dev Where subscription money goes once its shares are issued.
treasury: public(immutable(address))
# @dev Seconds a redemption request waits before it may be fulfilled.
notice_period: public(immutable(uint256))
# @dev Redemption fee, basis points of the redemption value (rounded up).
redemption_fee_bps: public(immutable(uint256))
# @dev Seconds after a request (with no fulfilment) from which it may be cancelled even
#      though a NAV was published since.
cancel_after: public(immutable(uint256))
_REGISTRY: immutable(address)
# @dev 10**(18 + NAV_DECIMALS) / 10**asset decimals, split to keep precision:
#      shares = assets * _NUM / (nav * _DEN).
_NUM: immutable(uint256)
_DEN: immutable(uint256)

# @dev Per controller: pending deposit assets (bits 0..127) and the time of the latest
#      request (bits 128..).
_deposit: HashMap[address, uint256]
# @dev Per controller: claimable deposit assets (bits 0..127), shares (128..254), and
#      bit 255 set once the slot was written.
_claimable_deposit: HashMap[address, uint256]
# @dev Per controller: pending redeem shares (bits 0..127) and the latest request time.
_redeem: HashMap[address, uint256]
# @dev Per controller: claimable redeem shares (bits 0..127) and assets (128..255).
_claimable_redeem: HashMap[address, uint256]
# @dev ERC-7540 operators: controller -> operator -> approved.
isOperator: public(HashMap[address, HashMap[address, bool]])

# @dev Totals (the vault's books).
total_pending_deposit_assets: public(uint256)
total_claimable_deposit_assets: public(uint256)
total_claimable_deposit_shares: public(uint256)
total_pending_redeem_shares: public(uint256)
total_claimable_redeem_shares: public(uint256)
total_claimable_redeem_assets: public(uint256)
# @dev Stablecoin the operator funded and no fulfilment has set aside yet.
redemption_funds: public(uint256)
# @dev Rental income of the shares held for controllers, per share held, x MAGNITUDE.
income_per_held_share: public(uint256)
_income_snapshot: HashMap[address, uint256]
# @dev Income credited to each controller and not yet claimed.
_income_credited: HashMap[address, uint256]
# @dev Income credited to all controllers and not yet claimed.
total_income_owed: public(uint256)
# @dev The NAV per share and the time of the latest fulfilment.
last_fulfilment_nav: public(uint256)
last_fulfilment_time: public(uint256)


# @dev ERC-7540 events.
event DepositRequest:
    controller: indexed(address)
    owner: indexed(address)
    requestId: indexed(uint256)
    sender: address
    assets: uint256


event RedeemRequest:
    controller: indexed(address)
    owner: indexed(address)
    requestId: indexed(uint256)
    sender: address
    shares: uint256


event OperatorSet:
    controller: indexed(address)
    operator: indexed(address)
    approved: bool


# @dev ERC-4626 events (the claims).
event Deposit:
    sender: indexed(address)
    owner: indexed(address)
    assets: uint256
    shares: uint256


event Withdraw:
    sender: indexed(address)
    receiver: indexed(address)
    owner: indexed(address)
    assets: uint256
    shares: uint256


# @dev Emitted when the operator fulfils (part of) a deposit request.
event DepositFulfilled:
    controller: indexed(address)
    assets: uint256
    shares: uint256
    nav: uint256
    nav_time: uint256
    operator: indexed(address)


# @dev Emitted when the operator fulfils (part of) a redeem request.
event RedeemFulfilled:
    controller: indexed(address)
    shares: uint256
    assets: uint256
    fee: uint256
    nav: uint256
    nav_time: uint256
    operator: indexed(address)


# @dev Emitted when a pending request is cancelled (assets or shares returned).
event DepositRequestCancelled:
    controller: indexed(address)
    receiver: indexed(address)
    assets: uint256


event RedeemRequestCancelled:
    controller: indexed(address)
    receiver: indexed(address)
    shares: uint256


# @dev Emitted when the operator adds or withdraws redemption funds.
event RedemptionFundsChanged:
    operator: indexed(address)
    added: uint256
    withdrawn: uint256
    funds: uint256


# @dev Emitted when a controller's rental income is paid.
event IncomeClaimed:
    controller: indexed(address)
    receiver: indexed(address)
    amount: uint256


@deploy
@payable
def __init__(
    share_: address,
    nav_feed_: address,
    treasury_: address,
    admin_: address,
    notice_period_: uint256,
    redemption_fee_bps_: uint256,
    cancel_after_: uint256,
):
    """
    @notice Deploys the vault of one SPV share token. `admin_` (the SPV's operator)
            receives the admin and operator roles. The token's OPERATOR_ROLE must then
            be granted to the vault (it mints and burns), and a KYC provider must
            register it as an eligible holder and a custodian.
    @param share_ The SPV's GPUShareToken.
    @param nav_feed_ The SPV's NAV feed (USD per share, 8 decimals, with `heartbeat()`).
    @param treasury_ Where subscription money goes.
    @param admin_ The SPV's operator.
    @param notice_period_ Seconds a redemption request waits before fulfilment.
    @param redemption_fee_bps_ Redemption fee in basis points (at most 1,000).
    @param cancel_after_ Seconds after which an unfulfilled request may be cancelled.
    """
    assert share_.is_contract and nav_feed_.is_contract, reasons.VAULT_TOKEN_OR_FEED_NOT_CONTRACT
    assert treasury_ != empty(address) and admin_ != empty(address), reasons.VAULT_ZERO_ADDRESS
    assert redemption_fee_bps_ <= MAX_FEE_BPS, reasons.VAULT_FEE_TOO_HIGH
    assert notice_period_ <= MAX_NOTICE_PERIOD, reasons.VAULT_NOTICE_TOO_LONG
    assert cancel_after_ >= MIN_CANCEL_AFTER and cancel_after_ <= MAX_CANCEL_AFTER, reasons.VAULT_CANCEL_AFTER_BOUNDS
    assert staticcall AggregatorV3Interface(nav_feed_).decimals() == NAV_DECIMALS, reasons.VAULT_FEED_DECIMALS
    access_control.__init__()
    access_control._grant_role(access_control.DEFAULT_ADMIN_ROLE, admin_)
    access_control._grant_role(OPERATOR_ROLE, admin_)
    if msg.sender != admin_:
        access_control._revoke_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    share = share_
    asset = staticcall IShareToken(share_).income_token()
    nav_feed = nav_feed_
    treasury = treasury_
    notice_period = notice_period_
    redemption_fee_bps = redemption_fee_bps_
    cancel_after = cancel_after_
    _REGISTRY = staticcall IShareToken(share_).compliance_registry()
    asset_decimals: uint256 = convert(staticcall IERC20Detailed(asset).decimals(), uint256)
    assert asset_decimals <= 26, reasons.VAULT_FEED_DECIMALS
    _NUM = 10**26
    _DEN = 10**asset_decimals


# ---------------------------------------------------------------------------------
# ERC-165, ERC-7540 operators
# ---------------------------------------------------------------------------------


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    """
    @notice ERC-165: true for ERC-165, ERC-7540 operators, async deposit, async redeem
            and ERC-7575.
    @param interface_id The interface id.
    @return bool Whether the vault implements it.
    """
    return interface_id in _SUPPORTED


@external
def setOperator(operator: address, approved: bool) -> bool:
    """
    @notice Lets `operator` request, claim and cancel for the caller (ERC-7540).
    @param operator The delegate.
    @param approved True to approve, False to revoke.
    @return bool True.
    """
    assert operator != msg.sender, reasons.VAULT_OPERATOR_IS_SELF
    self.isOperator[msg.sender][operator] = approved
    log OperatorSet(controller=msg.sender, operator=operator, approved=approved)
    return True


# ---------------------------------------------------------------------------------
# Deposits
# ---------------------------------------------------------------------------------


@external
@nonreentrant
def requestDeposit(assets: uint256, controller: address, owner: address) -> uint256:
    """
    @notice Escrows `assets` of the stablecoin from `owner` as a subscription for
            `controller`. Refused with the registry's message when `controller` could not
            receive newly issued shares now.
    @param assets Stablecoin units.
    @param controller Who claims the shares (and may cancel); the caller or one it
           operates for (a request restarts the controller's clock).
    @param owner Whose stablecoin is escrowed (the caller or one it operates for).
    @return uint256 The request id (0: requests are aggregated per controller).
    """
    assert assets != 0, reasons.VAULT_ZERO_AMOUNT
    self._check_owner(owner)
    self._check_controller(controller)
    assert self._deposit[controller] & LOW == 0, reasons.VAULT_REQUEST_PENDING
    self._check_eligible(controller)
    assert assets <= LOW, reasons.VAULT_AMOUNT_TOO_LARGE
    self._deposit[controller] = assets | (block.timestamp << 128)
    self.total_pending_deposit_assets += assets
    log DepositRequest(controller=controller, owner=owner, requestId=0, sender=msg.sender, assets=assets)
    assert extcall IERC20(asset).transferFrom(owner, self, assets, default_return_value=True), reasons.VAULT_ASSET_TRANSFER_FAILED
    return 0


@external
@view
def pendingDepositRequest(requestId: uint256, controller: address) -> uint256:
    """
    @notice Stablecoin of `controller`'s subscription not yet fulfilled.
    @param requestId 0 (requests are aggregated per controller).
    @param controller The controller.
    @return uint256 Stablecoin units.
    """
    if requestId != 0:
        return 0
    return self._deposit[controller] & LOW


@external
@view
def claimableDepositRequest(requestId: uint256, controller: address) -> uint256:
    """
    @notice Stablecoin of `controller`'s fulfilled subscription whose shares are not yet claimed.
    @param requestId 0 (requests are aggregated per controller).
    @param controller The controller.
    @return uint256 Stablecoin units.
    """
    if requestId != 0:
        return 0
    return self._claimable_deposit[controller] & LOW


@external
@nonreentrant
def fulfil_deposit(controller: address, assets: uint256) -> uint256:
    """
    @notice Issues shares for `assets` of `controller`'s pending subscription at the
            NAV feed's latest answer (fresh, published after the request), rounded down;
            then sends the stablecoin to the treasury.
    @dev Only OPERATOR_ROLE. The token refuses a mint beyond the fleet's backing:
         register new GPUs first.
    @param controller The controller.
    @param assets Stablecoin units to fulfil (at most the pending amount).
    @return uint256 The shares issued (claimable by the controller).
    """
    access_control._check_role(OPERATOR_ROLE, msg.sender)
    word: uint256 = self._deposit[controller]
    assert assets != 0 and assets <= word & LOW, reasons.VAULT_EXCEEDS_PENDING
    nav: uint256 = 0
    nav_time: uint256 = 0
    nav, nav_time = self._nav()
    assert nav_time > word >> 128, reasons.VAULT_NAV_NOT_AFTER_REQUEST
    shares: uint256 = math._mul_div(assets, _NUM, nav * _DEN, False)
    assert shares != 0, reasons.VAULT_NO_SHARE_AT_NAV
    self._collect()
    self._settle(controller)
    self._deposit[controller] = word - assets
    claimable: uint256 = self._claimable_deposit[controller]
    new_assets: uint256 = (claimable & LOW) + assets
    new_shares: uint256 = ((claimable >> 128) & SHARES_MASK) + shares
    assert new_assets <= LOW and new_shares <= SHARES_MASK, reasons.VAULT_AMOUNT_TOO_LARGE
    self._claimable_deposit[controller] = new_assets | (new_shares << 128) | USED
    self.total_pending_deposit_assets -= assets
    self.total_claimable_deposit_assets += assets
    self.total_claimable_deposit_shares += shares
    self.last_fulfilment_nav = nav
    self.last_fulfilment_time = block.timestamp
    log DepositFulfilled(controller=controller, assets=assets, shares=shares, nav=nav, nav_time=nav_time, operator=msg.sender)
    extcall IShareToken(share).mint(self, shares)
    self._pay(treasury, assets)
    return shares


@external
@nonreentrant
def deposit(assets: uint256, receiver: address, controller: address = msg.sender) -> uint256:
    """
    @notice Claims the shares of `assets` of `controller`'s fulfilled subscription to
            `receiver` (ERC-7540 claim; a transfer, so `receiver` must be eligible, and
            the controller able to send: registered, not expired, not frozen).
    @param assets Stablecoin units of the claim (at most `maxDeposit(controller)`).
    @param receiver Who receives the shares.
    @param controller The controller (the caller, or one it operates for).
    @return uint256 Shares claimed (pro rata of the claimable, rounded down; all of them
            with the last asset).
    """
    claimable: uint256 = self._claimable_deposit[controller]
    all_assets: uint256 = claimable & LOW
    assert assets != 0 and assets <= all_assets, reasons.VAULT_EXCEEDS_CLAIMABLE
    shares: uint256 = math._mul_div((claimable >> 128) & SHARES_MASK, assets, all_assets, False)
    self._claim_shares(controller, receiver, assets, shares, claimable)
    return shares


@external
@nonreentrant
def mint(shares: uint256, receiver: address, controller: address = msg.sender) -> uint256:
    """
    @notice Claims `shares` of `controller`'s fulfilled subscription to `receiver`.
    @param shares Shares to claim (at most `maxMint(controller)`).
    @param receiver Who receives the shares.
    @param controller The controller (the caller, or one it operates for).
    @return uint256 Stablecoin units of the claim used up (pro rata, rounded up).
    """
    claimable: uint256 = self._claimable_deposit[controller]
    all_shares: uint256 = (claimable >> 128) & SHARES_MASK
    assert shares != 0 and shares <= all_shares, reasons.VAULT_EXCEEDS_CLAIMABLE
    assets: uint256 = math._mul_div(claimable & LOW, shares, all_shares, True)
    self._claim_shares(controller, receiver, assets, shares, claimable)
    return assets


@external
@nonreentrant
def cancelDepositRequest(receiver: address, controller: address) -> uint256:
    """
    @notice Returns `controller`'s whole pending subscription to `receiver`, once
            `cancel_after` has passed since the latest request without a fulfilment
            (refused for a frozen or blocked controller or receiver, as any payment).
    @param receiver Who gets the stablecoin back.
    @param controller The controller (the caller, or one it operates for).
    @return uint256 Stablecoin units returned.
    """
    self._check_controller(controller)
    word: uint256 = self._deposit[controller]
    assets: uint256 = word & LOW
    assert assets != 0, reasons.VAULT_NOTHING_PENDING
    self._check_cancellable(word >> 128)
    self._check_payee(controller, receiver)
    self._deposit[controller] = 0
    self.total_pending_deposit_assets -= assets
    log DepositRequestCancelled(controller=controller, receiver=receiver, assets=assets)
    self._pay(receiver, assets)
    return assets


# ---------------------------------------------------------------------------------
# Redemptions
# ---------------------------------------------------------------------------------


@external
@nonreentrant
def requestRedeem(shares: uint256, controller: address, owner: address) -> uint256:
    """
    @notice Escrows `shares` of `owner` here as a redemption for `controller` (a
            transfer: the owner must have approved the vault, and the registry must
            allow the owner to send). They keep earning for `controller` until burnt.
    @param shares Share base units.
    @param controller Who claims the proceeds (and may cancel); the caller or one it
           operates for (a request restarts the notice period).
    @param owner Whose shares are escrowed (the caller, or one it operates for).
    @return uint256 The request id (0).
    """
    assert shares != 0, reasons.VAULT_ZERO_AMOUNT
    self._check_owner(owner)
    self._check_controller(controller)
    assert self._redeem[controller] & LOW == 0, reasons.VAULT_REQUEST_PENDING
    assert shares <= LOW, reasons.VAULT_AMOUNT_TOO_LARGE
    self._collect()
    self._settle(controller)
    self._redeem[controller] = shares | (block.timestamp << 128)
    self.total_pending_redeem_shares += shares
    log RedeemRequest(controller=controller, owner=owner, requestId=0, sender=msg.sender, shares=shares)
    extcall IShareToken(share).transferFrom(owner, self, shares)
    return 0


@external
@view
def pendingRedeemRequest(requestId: uint256, controller: address) -> uint256:
    """
    @notice Shares of `controller`'s redemption not yet fulfilled.
    @param requestId 0.
    @param controller The controller.
    @return uint256 Share base units.
    """
    if requestId != 0:
        return 0
    return self._redeem[controller] & LOW


@external
@view
def claimableRedeemRequest(requestId: uint256, controller: address) -> uint256:
    """
    @notice Shares of `controller`'s fulfilled redemption whose proceeds are not yet claimed.
    @param requestId 0.
    @param controller The controller.
    @return uint256 Share base units.
    """
    if requestId != 0:
        return 0
    return self._claimable_redeem[controller] & LOW


@external
@nonreentrant
def fulfil_redeem(controller: address, shares: uint256) -> uint256:
    """
    @notice Burns `shares` of `controller`'s pending redemption, after the notice
            period, at the NAV feed's latest answer (fresh, published after the
            request), and sets aside their value minus the fee (rounded up) from the
            redemption funds.
    @dev Only OPERATOR_ROLE.
    @param controller The controller.
    @param shares Share base units to fulfil (at most the pending amount).
    @return uint256 Stablecoin units claimable by the controller.
    """
    access_control._check_role(OPERATOR_ROLE, msg.sender)
    word: uint256 = self._redeem[controller]
    assert shares != 0 and shares <= word & LOW, reasons.VAULT_EXCEEDS_PENDING
    requested_at: uint256 = word >> 128
    assert block.timestamp >= requested_at + notice_period, reasons.VAULT_NOTICE_NOT_OVER
    nav: uint256 = 0
    nav_time: uint256 = 0
    nav, nav_time = self._nav()
    assert nav_time > requested_at, reasons.VAULT_NAV_NOT_AFTER_REQUEST
    gross: uint256 = math._mul_div(shares, nav * _DEN, _NUM, False)
    fee: uint256 = math._mul_div(gross, redemption_fee_bps, 10_000, True)
    assets: uint256 = gross - fee
    funds: uint256 = self.redemption_funds
    assert assets <= funds, reasons.VAULT_REDEMPTION_FUNDS_SHORT
    self._collect()
    self._settle(controller)
    self._redeem[controller] = word - shares
    claimable: uint256 = self._claimable_redeem[controller]
    new_shares: uint256 = (claimable & LOW) + shares
    new_assets: uint256 = (claimable >> 128) + assets
    assert new_shares <= LOW and new_assets <= LOW, reasons.VAULT_AMOUNT_TOO_LARGE
    self._claimable_redeem[controller] = new_shares | (new_assets << 128)
    self.redemption_funds = funds - assets
    self.total_pending_redeem_shares -= shares
    self.total_claimable_redeem_shares += shares
    self.total_claimable_redeem_assets += assets
    self.last_fulfilment_nav = nav
    self.last_fulfilment_time = block.timestamp
    log RedeemFulfilled(controller=controller, shares=shares, assets=assets, fee=fee, nav=nav, nav_time=nav_time, operator=msg.sender)
    extcall IShareToken(share).burn(shares)
    return assets


@external
@nonreentrant
def redeem(shares: uint256, receiver: address, controller: address) -> uint256:
    """
    @notice Claims the proceeds of `shares` of `controller`'s fulfilled redemption to
            `receiver` (refused for a frozen or blocked controller or receiver).
    @param shares Share base units of the claim (at most `maxRedeem(controller)`).
    @param receiver Who receives the stablecoin.
    @param controller The controller (the caller, or one it operates for).
    @return uint256 Stablecoin units paid (pro rata, rounded down; all with the last share).
    """
    claimable: uint256 = self._claimable_redeem[controller]
    all_shares: uint256 = claimable & LOW
    assert shares != 0 and shares <= all_shares, reasons.VAULT_EXCEEDS_CLAIMABLE
    assets: uint256 = math._mul_div(claimable >> 128, shares, all_shares, False)
    self._claim_assets(controller, receiver, assets, shares, claimable)
    return assets


@external
@nonreentrant
def withdraw(assets: uint256, receiver: address, controller: address) -> uint256:
    """
    @notice Claims `assets` of the proceeds of `controller`'s fulfilled redemption to
            `receiver`.
    @param assets Stablecoin units (at most `maxWithdraw(controller)`).
    @param receiver Who receives the stablecoin.
    @param controller The controller (the caller, or one it operates for).
    @return uint256 Shares of the claim used up (pro rata, rounded up).
    """
    claimable: uint256 = self._claimable_redeem[controller]
    all_assets: uint256 = claimable >> 128
    assert assets != 0 and assets <= all_assets, reasons.VAULT_EXCEEDS_CLAIMABLE
    shares: uint256 = math._mul_div(claimable & LOW, assets, all_assets, True)
    self._claim_assets(controller, receiver, assets, shares, claimable)
    return shares


@external
@nonreentrant
def cancelRedeemRequest(receiver: address, controller: address) -> uint256:
    """
    @notice Returns `controller`'s whole pending redemption (the escrowed shares) to
            `receiver`, who must be eligible to hold them, once `cancel_after` has
            passed since the latest request without a fulfilment; the controller must
            be able to send (registered, not expired, not frozen).
    @param receiver Who gets the shares back.
    @param controller The controller (the caller, or one it operates for).
    @return uint256 Share base units returned.
    """
    self._check_controller(controller)
    word: uint256 = self._redeem[controller]
    shares: uint256 = word & LOW
    assert shares != 0, reasons.VAULT_NOTHING_PENDING
    self._check_cancellable(word >> 128)
    self._check_sender(controller)
    self._collect()
    self._settle(controller)
    self._redeem[controller] = 0
    self.total_pending_redeem_shares -= shares
    log RedeemRequestCancelled(controller=controller, receiver=receiver, shares=shares)
    extcall IShareToken(share).transfer(receiver, shares)
    return shares


@external
@nonreentrant
def fund_redemptions(amount: uint256):
    """
    @notice Adds stablecoin from the caller for fulfilling redemptions.
    @dev Only OPERATOR_ROLE.
    @param amount Stablecoin units.
    """
    access_control._check_role(OPERATOR_ROLE, msg.sender)
    assert amount != 0, reasons.VAULT_ZERO_AMOUNT
    funds: uint256 = self.redemption_funds + amount
    self.redemption_funds = funds
    log RedemptionFundsChanged(operator=msg.sender, added=amount, withdrawn=0, funds=funds)
    assert extcall IERC20(asset).transferFrom(msg.sender, self, amount, default_return_value=True), reasons.VAULT_ASSET_TRANSFER_FAILED


@external
@nonreentrant
def withdraw_redemption_funds(amount: uint256):
    """
    @notice Sends unallocated redemption funds back to the treasury (never escrowed
            subscriptions, claimable proceeds or income).
    @dev Only OPERATOR_ROLE.
    @param amount Stablecoin units (at most `redemption_funds`).
    """
    access_control._check_role(OPERATOR_ROLE, msg.sender)
    funds: uint256 = self.redemption_funds
    assert amount != 0 and amount <= funds, reasons.VAULT_EXCEEDS_REDEMPTION_FUNDS
    self.redemption_funds = funds - amount
    log RedemptionFundsChanged(operator=msg.sender, added=0, withdrawn=amount, funds=funds - amount)
    self._pay(treasury, amount)


# ---------------------------------------------------------------------------------
# Income of the shares held for controllers
# ---------------------------------------------------------------------------------


@external
@nonreentrant
def claim_income(receiver: address, controller: address = msg.sender) -> uint256:
    """
    @notice Pays `controller` the rental income the shares the vault holds for it
            (escrowed or claimable) earned (refused for a frozen or blocked wallet).
    @param receiver Who receives the stablecoin.
    @param controller The controller (the caller, or one it operates for).
    @return uint256 Stablecoin units paid.
    """
    self._check_controller(controller)
    self._collect()
    self._settle(controller)
    amount: uint256 = self._income_credited[controller]
    assert amount != 0, reasons.VAULT_NO_INCOME
    self._check_payee(controller, receiver)
    self._income_credited[controller] = 0
    self.total_income_owed -= amount
    log IncomeClaimed(controller=controller, receiver=receiver, amount=amount)
    self._pay(receiver, amount)
    return amount


@external
@view
def income_owed(controller: address) -> uint256:
    """
    @notice Income `controller` could claim now (including what the token has not paid
            the vault yet).
    @param controller The controller.
    @return uint256 Stablecoin units.
    """
    per_share: uint256 = self.income_per_held_share
    held: uint256 = self._total_held()
    if held != 0:
        per_share += math._mul_div(staticcall IShareToken(share).claimable(self), MAGNITUDE, held, False)
    return self._income_credited[controller] + math._mul_div(
        self._held(controller), per_share - self._income_snapshot[controller], MAGNITUDE, False
    )


# ---------------------------------------------------------------------------------
# ERC-4626 / ERC-7575 views
# ---------------------------------------------------------------------------------


@external
@view
def totalAssets() -> uint256:
    """
    @notice Value of all the SPV's shares at the NAV feed's latest answer, in stablecoin units.
    @return uint256 Stablecoin units.
    """
    return self._to_assets(staticcall IShareToken(share).totalSupply(), self._latest_nav())


@external
@view
def convertToShares(assets: uint256) -> uint256:
    """
    @notice Shares `assets` buy at the NAV feed's latest answer (rounded down).
    @param assets Stablecoin units.
    @return uint256 Share base units.
    """
    nav: uint256 = self._latest_nav()
    if nav == 0:
        return 0
    return math._mul_div(assets, _NUM, nav * _DEN, False)


@external
@view
def convertToAssets(shares: uint256) -> uint256:
    """
    @notice Value of `shares` at the NAV feed's latest answer (rounded down).
    @param shares Share base units.
    @return uint256 Stablecoin units.
    """
    return self._to_assets(shares, self._latest_nav())


@external
@view
def maxDeposit(controller: address) -> uint256:
    """
    @notice Stablecoin of `controller`'s claimable subscription (what `deposit` takes);
            0 while the share token is paused (claims are transfers).
    @param controller The controller.
    @return uint256 Stablecoin units.
    """
    if staticcall IShareToken(share).paused():
        return 0
    return self._claimable_deposit[controller] & LOW


@external
@view
def maxMint(controller: address) -> uint256:
    """
    @notice Shares `controller` can claim with `mint`; 0 while the share token is paused.
    @param controller The controller.
    @return uint256 Share base units.
    """
    if staticcall IShareToken(share).paused():
        return 0
    return (self._claimable_deposit[controller] >> 128) & SHARES_MASK


@external
@view
def maxRedeem(controller: address) -> uint256:
    """
    @notice Shares of `controller`'s fulfilled redemption (what `redeem` takes); 0 while
            the controller may not be paid (frozen, or resident where holders are blocked).
    @param controller The controller.
    @return uint256 Share base units.
    """
    if staticcall IRegistry(_REGISTRY).income_code(controller) != 0:
        return 0
    return self._claimable_redeem[controller] & LOW


@external
@view
def maxWithdraw(controller: address) -> uint256:
    """
    @notice Stablecoin `controller` can claim with `withdraw`; 0 while the controller
            may not be paid.
    @param controller The controller.
    @return uint256 Stablecoin units.
    """
    if staticcall IRegistry(_REGISTRY).income_code(controller) != 0:
        return 0
    return self._claimable_redeem[controller] >> 128


@external
@view
def previewDeposit(assets: uint256) -> uint256:
    """
    @notice Not available: the price is set at fulfilment (ERC-7540 requires a revert).
    @param assets Unused.
    @return uint256 Never returns.
    """
    self._no_preview()
    return 0


@external
@view
def previewMint(shares: uint256) -> uint256:
    """
    @notice Not available: the price is set at fulfilment (ERC-7540 requires a revert).
    @param shares Unused.
    @return uint256 Never returns.
    """
    self._no_preview()
    return 0


@external
@view
def previewRedeem(shares: uint256) -> uint256:
    """
    @notice Not available: the price is set at fulfilment (ERC-7540 requires a revert).
    @param shares Unused.
    @return uint256 Never returns.
    """
    self._no_preview()
    return 0


@external
@view
def previewWithdraw(assets: uint256) -> uint256:
    """
    @notice Not available: the price is set at fulfilment (ERC-7540 requires a revert).
    @param assets Unused.
    @return uint256 Never returns.
    """
    self._no_preview()
    return 0


@external
@view
def request(controller: address) -> (uint256, uint256, uint256, uint256, uint256, uint256, uint256, uint256):
    """
    @notice Everything about `controller`'s requests in one call.
    @param controller The controller.
    @return uint256 Pending deposit assets.
    @return uint256 Time of the latest deposit request.
    @return uint256 Claimable deposit assets.
    @return uint256 Claimable deposit shares.
    @return uint256 Pending redeem shares.
    @return uint256 Time of the latest redeem request.
    @return uint256 Claimable redeem shares.
    @return uint256 Claimable redeem assets.
    """
    d: uint256 = self._deposit[controller]
    cd: uint256 = self._claimable_deposit[controller]
    r: uint256 = self._redeem[controller]
    cr: uint256 = self._claimable_redeem[controller]
    return d & LOW, d >> 128, cd & LOW, (cd >> 128) & SHARES_MASK, r & LOW, r >> 128, cr & LOW, cr >> 128


# ---------------------------------------------------------------------------------
# Internal
# ---------------------------------------------------------------------------------


@internal
@view
def _check_owner(owner: address):
    """
    @dev The caller is `owner` or one of its ERC-7540 operators.
    """
    assert owner == msg.sender or self.isOperator[owner][msg.sender], reasons.VAULT_NOT_OWNER_OR_OPERATOR


@internal
@view
def _check_controller(controller: address):
    """
    @dev The caller is `controller` or one of its ERC-7540 operators.
    """
    assert controller == msg.sender or self.isOperator[controller][msg.sender], reasons.VAULT_NOT_CONTROLLER_OR_OPERATOR


@internal
@view
def _check_eligible(controller: address):
    """
    @dev `controller` could receive newly issued shares now (the token's mint check).
    """
    assert controller != empty(address), reasons.VAULT_ZERO_ADDRESS
    code: uint8 = staticcall IShareToken(share).detectTransferRestriction(empty(address), controller, 0)
    assert code == 0, codes._message(code)


@internal
@view
def _check_payee(controller: address, receiver: address):
    """
    @dev Stablecoin may be paid for `controller` to `receiver`: neither is frozen nor
         resident where the rules block holders (the registry's `income_code`).
    """
    assert receiver != empty(address), reasons.VAULT_ZERO_ADDRESS
    code: uint8 = staticcall IRegistry(_REGISTRY).income_code(controller)
    if code == 0:
        code = staticcall IRegistry(_REGISTRY).income_code(receiver)
    assert code == 0, codes._message(code)


@internal
@view
def _check_sender(controller: address):
    """
    @dev The controller directs shares held for it to a receiver, as a holder sends
         them: it must be registered, not expired and not frozen (the registry's
         `check_sender`), so a freeze is not bypassed through a claim or a cancel.
    """
    code: uint8 = staticcall IRegistry(_REGISTRY).check_sender(controller)
    assert code == 0, codes._message(code)


@internal
@view
def _check_cancellable(requested_at: uint256):
    """
    @dev A pending request may be cancelled once `cancel_after` has passed since it.
    """
    assert block.timestamp >= requested_at + cancel_after, reasons.VAULT_REQUEST_LOCKED


@internal
def _claim_shares(controller: address, receiver: address, assets: uint256, shares: uint256, claimable: uint256):
    """
    @dev Moves a claim of `shares` (worth `assets` of the subscription) to `receiver`.
    """
    self._check_controller(controller)
    assert shares != 0, reasons.VAULT_NO_SHARE_AT_NAV
    self._check_sender(controller)
    self._collect()
    self._settle(controller)
    self._claimable_deposit[controller] = (
        ((claimable & LOW) - assets) | ((((claimable >> 128) & SHARES_MASK) - shares) << 128) | USED
    )
    self.total_claimable_deposit_assets -= assets
    self.total_claimable_deposit_shares -= shares
    log Deposit(sender=controller, owner=receiver, assets=assets, shares=shares)
    extcall IShareToken(share).transfer(receiver, shares)


@internal
def _claim_assets(controller: address, receiver: address, assets: uint256, shares: uint256, claimable: uint256):
    """
    @dev Pays a claim of `assets` (for `shares` of the redemption) to `receiver`.
    """
    self._check_controller(controller)
    self._check_payee(controller, receiver)
    self._claimable_redeem[controller] = ((claimable & LOW) - shares) | (((claimable >> 128) - assets) << 128)
    self.total_claimable_redeem_shares -= shares
    self.total_claimable_redeem_assets -= assets
    log Withdraw(sender=msg.sender, receiver=receiver, owner=controller, assets=assets, shares=shares)
    if assets != 0:
        self._pay(receiver, assets)


@internal
def _pay(to: address, amount: uint256):
    """
    @dev Sends `amount` of the stablecoin to `to` (a token returning false reverts).
    """
    assert extcall IERC20(asset).transfer(to, amount, default_return_value=True), reasons.VAULT_ASSET_TRANSFER_FAILED


@internal
@pure
def _no_preview():
    """
    @dev ERC-7540: an asynchronous vault's previews revert.
    """
    raise reasons.VAULT_ASYNC_NO_PREVIEW


@internal
def _collect():
    """
    @dev Claims the rental income the token owes the vault and spreads it over the
         shares held for controllers (the remainder of the division stays unallocated).
    """
    owed: uint256 = staticcall IShareToken(share).claimable(self)
    if owed == 0:
        return
    held: uint256 = self._total_held()
    if held == 0:
        return
    received: uint256 = extcall IShareToken(share).claim()
    self.income_per_held_share += math._mul_div(received, MAGNITUDE, held, False)


@internal
def _settle(controller: address):
    """
    @dev Credits `controller` the income its held shares earned since its last change.
    """
    per_share: uint256 = self.income_per_held_share
    earned: uint256 = math._mul_div(self._held(controller), per_share - self._income_snapshot[controller], MAGNITUDE, False)
    self._income_snapshot[controller] = per_share
    if earned != 0:
        self._income_credited[controller] += earned
        self.total_income_owed += earned


@internal
@view
def _held(controller: address) -> uint256:
    """
    @dev Shares the vault holds for `controller`: escrowed for redemption, or issued
         and not yet claimed.
    """
    return (self._redeem[controller] & LOW) + ((self._claimable_deposit[controller] >> 128) & SHARES_MASK)


@internal
@view
def _total_held() -> uint256:
    return self.total_pending_redeem_shares + self.total_claimable_deposit_shares


@internal
@view
def _feed() -> (uint256, uint256):
    """
    @dev The NAV feed's latest answer and its time (answer 0 when not positive).
    """
    answer: int256 = 0
    updated_at: uint256 = 0
    _: uint80 = 0
    __: uint256 = 0
    ___: uint80 = 0
    _, answer, __, updated_at, ___ = staticcall AggregatorV3Interface(nav_feed).latestRoundData()
    if answer <= 0 or answer >= 2**128:
        return 0, updated_at
    return convert(answer, uint256), updated_at


@internal
@view
def _nav() -> (uint256, uint256):
    """
    @dev The NAV per share to fulfil at: positive and not older than the feed's heartbeat.
    """
    nav: uint256 = 0
    updated_at: uint256 = 0
    nav, updated_at = self._feed()
    assert nav != 0, reasons.VAULT_NAV_NOT_POSITIVE
    heartbeat: uint256 = staticcall IHeartbeat(nav_feed).heartbeat()
    assert updated_at <= block.timestamp and block.timestamp - updated_at <= heartbeat, reasons.VAULT_NAV_STALE
    return nav, updated_at


@internal
@view
def _latest_nav() -> uint256:
    """
    @dev The feed's latest answer for the ERC-4626 views, which must not revert: 0 when
         the feed has no data yet (its `latestRoundData` reverts) or a non-positive one.
    """
    ok: bool = False
    data: Bytes[160] = b""
    ok, data = raw_call(
        nav_feed, method_id("latestRoundData()"), max_outsize=160, is_static_call=True, revert_on_failure=False
    )
    if not ok or len(data) != 160:
        return 0
    answer: int256 = convert(slice(data, 32, 32), int256)
    if answer <= 0 or answer >= 2**128:
        return 0
    return convert(answer, uint256)


@internal
@view
def _to_assets(shares: uint256, nav: uint256) -> uint256:
    return math._mul_div(shares, nav * _DEN, _NUM, False)
