# pragma version ~=0.4.3
# pragma optimize gas
"""
@title GPU Share Token
@custom:contract-name GPUShareToken
@license GNU Affero General Public License v3.0 only
@notice Fractional ERC-20 (+ EIP-2612 permit) shares of one SPV's GPU fleet.
        - A register of the SPV's GPUs (serial hash, model, location, datacenter,
          acquisition cost, commissioning time, status active -> impaired -> retired).
        - Every active GPU backs `shares_per_gpu` shares: minting is capped by the
          active backing, and a GPU can only be retired while the supply stays within
          what the remaining (active + impaired) GPUs back.
        - Rental income paid in `income_token` is distributed pro rata with a
          cumulative income-per-share accumulator and per-account corrections on every
          balance change, so income earned before a transfer stays with the seller.
        - Every share movement (transfer, transferFrom, permit-then-transferFrom, mint,
          burn) passes through one internal hook, `_before_share_move`, which asks the
          `ComplianceRegistry` for the movement's restriction code (pause, title
          recognition where the GPUs sit, both parties' eligibility, the receiver's
          residence policy, frozen amounts) and reverts with the code's message
          unless it is 0. ERC-1404 (`detectTransferRestriction`,
          `messageForTransferRestriction`) and ERC-7943 (`canTransfer`,
          `getFrozenTokens`, `setFrozenTokens`, `forcedTransfer`) views and powers
          expose the same check.
        - Adding a GPU registers its location (country, and ISO 3166-2 region where
          one is given) with the registry, which refuses a location whose law does
          not recognise tokenized title.
        - Agent powers, each behind its own role and with its own event: partial
          freeze (`FREEZER_ROLE`), forced transfer (`FORCED_TRANSFER_ROLE`) and wallet
          recovery (`RECOVERY_ROLE`).
        Token plumbing (balances, allowances, permit, EIP-712 domain) is snekmate's
        audited `erc20` module; roles are snekmate's `access_control`. The pause flag
        shares one storage slot with the income accumulator (both are read by every
        share movement), which saves a cold storage read per transfer.
@custom:security The income accumulator is bounded: the supply never exceeds
                 `MAX_SUPPLY` and the magnified income per share never exceeds
                 `MAX_INCOME_PER_SHARE`, so `income_per_share * balance` always fits in
                 an int256 and a distribution that would break this bound reverts
                 instead of bricking later transfers.
                 Income tokens that charge a fee on transfer are handled: only the
                 amount actually received is distributed.
                 A forced transfer bypasses the pause, the asset-title stop, the
                 sender's eligibility and freezes (it unfreezes what it takes beyond
                 the unfrozen balance); it never bypasses the receiver's eligibility
                 or the sender's balance. A wallet recovery moves balance, earned
                 income and frozen amount to an eligible new wallet.
"""


from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed
from .modules import reasons
from .modules import restriction_codes as codes

implements: IERC20
implements: IERC20Detailed


from snekmate.auth import ownable
initializes: ownable

from snekmate.tokens import erc20
initializes: erc20[ownable := ownable]

from snekmate.auth import access_control
initializes: access_control


# @dev What the token needs from the compliance registry.
interface IComplianceRegistry:
    def check_transfer(
        sender: address,
        receiver: address,
        amount: uint256,
        paused: bool,
        sender_balance: uint256,
        sender_frozen: uint256,
    ) -> uint8: view
    def check_receiver(receiver: address) -> uint8: view
    def check_sender(sender: address) -> uint8: view
    def custodian(account: address) -> bool: view
    def income_code(account: address) -> uint8: view
    def messageForTransferRestriction(restriction_code: uint8) -> String[160]: view
    def register_asset_location(location: uint16, subdivision: uint24): nonpayable
    def release_asset_location(location: uint16, subdivision: uint24): nonpayable


exports: (
    erc20.balanceOf,
    erc20.allowance,
    erc20.totalSupply,
    erc20.name,
    erc20.symbol,
    erc20.decimals,
    erc20.approve,
    erc20.permit,
    erc20.nonces,
    erc20.DOMAIN_SEPARATOR,
    erc20.eip712Domain,
    access_control.DEFAULT_ADMIN_ROLE,
    access_control.hasRole,
    access_control.getRoleAdmin,
    access_control.grantRole,
    access_control.revokeRole,
    access_control.renounceRole,
    access_control.set_role_admin,
)


# @dev Role that manages the GPU register, mints and burns shares and distributes income.
OPERATOR_ROLE: public(constant(bytes32)) = keccak256("OPERATOR_ROLE")
# @dev Role that can pause and unpause share movements and claims.
PAUSER_ROLE: public(constant(bytes32)) = keccak256("PAUSER_ROLE")
# @dev Agent role that freezes part or all of a holder's shares.
FREEZER_ROLE: public(constant(bytes32)) = keccak256("FREEZER_ROLE")
# @dev Agent role that moves shares without the holder's consent (court orders).
FORCED_TRANSFER_ROLE: public(constant(bytes32)) = keccak256("FORCED_TRANSFER_ROLE")
# @dev Agent role that moves a lost wallet's shares, income and freezes to a new wallet.
RECOVERY_ROLE: public(constant(bytes32)) = keccak256("RECOVERY_ROLE")

# @dev ERC-165 interface ids this token answers true for.
_IERC165: constant(bytes4) = 0x01ffc9a7
_IERC20: constant(bytes4) = 0x36372b07
# @dev ERC-7943 (uRWA) fungible: forcedTransfer, setFrozenTokens, canSend, canReceive,
#      getFrozenTokens, canTransfer.
_IERC7943: constant(bytes4) = 0x3edbb4c4
# @dev ERC-1404: detectTransferRestriction, messageForTransferRestriction.
_IERC1404: constant(bytes4) = 0xab84a5c8
# @dev EIP-2612: permit, nonces, DOMAIN_SEPARATOR.
_IERC2612: constant(bytes4) = 0x9d8ff7da
# @dev EIP-5267: eip712Domain.
_IERC5267: constant(bytes4) = 0x84b0196e
# @dev snekmate's IAccessControl (roles).
_IACCESS_CONTROL: constant(bytes4) = 0x7965db0b

# @dev Fixed-point scale of `income_per_share` (1e36, decimal so that round amounts
#      divide exactly): keeps the rounding dust of a
#      distribution far below one unit of the income token.
MAGNITUDE: public(constant(uint256)) = 10**36
# @dev Hard cap on the share supply (about 7.9e10 whole shares at 18 decimals).
MAX_SUPPLY: public(constant(uint256)) = 2**96 - 1
# @dev Upper bound of the magnified cumulative income per share; with `MAX_SUPPLY`
#      it guarantees `income_per_share * balance < 2**255`.
MAX_INCOME_PER_SHARE: public(constant(uint256)) = 2**159 - 1
# @dev Most GPUs that one `add_gpus` call can register.
MAX_GPU_BATCH: public(constant(uint256)) = 64
# @dev Bit of `_hot` that is set while the token is paused.
PAUSED_BIT: constant(uint256) = 2**255
# @dev Share decimals (like ether: 1 share = 10**18 base units).
SHARE_DECIMALS: constant(uint8) = 18


# @dev Lifecycle of a GPU in the register. An id without a status is unknown.
flag GPUStatus:
    ACTIVE
    IMPAIRED
    RETIRED


# @dev What the operator supplies to register one GPU.
struct GPUInput:
    serial_hash: bytes32
    model: bytes32
    location: uint16
    datacenter: bytes32
    acquisition_cost: uint256
    commissioned_at: uint256
    subdivision: uint24


# @dev One GPU of the register.
struct GPU:
    serial_hash: bytes32
    model: bytes32
    location: uint16
    datacenter: bytes32
    acquisition_cost: uint256
    commissioned_at: uint256
    status: GPUStatus
    subdivision: uint24


# @dev The ERC-20 token the rental income is paid in (a USD stablecoin).
income_token: public(immutable(address))
# @dev Shares (in base units) backed by each GPU.
shares_per_gpu: public(immutable(uint256))
# @dev Id of this token's SPV in the factory that deployed it.
spv_id: public(immutable(uint256))
# @dev The factory that deployed this token.
factory: public(immutable(address))
# @dev The registry that decides every share movement.
compliance_registry: public(immutable(address))

# @dev GPU register, ids 1..gpu_count.
gpus: public(HashMap[uint256, GPU])
# @dev Number of GPUs ever registered (the highest id).
gpu_count: public(uint256)
# @dev GPUs in status ACTIVE.
active_gpus: public(uint256)
# @dev GPUs in status IMPAIRED.
impaired_gpus: public(uint256)
# @dev GPU id by serial hash; 0 when the serial is not registered.
gpu_id_of_serial: public(HashMap[bytes32, uint256])

# @dev The slot every share movement reads, packed: bits 0..254 hold the cumulative
#      income per share base unit scaled by `MAGNITUDE` (at most
#      `MAX_INCOME_PER_SHARE` < 2**159); bit 255 (`PAUSED_BIT`) is the pause flag.
_hot: uint256
# @dev Per-account correction of the accumulator (scaled by `MAGNITUDE`): keeps
#      income earned before a balance change with the previous holder and records
#      what the account has already claimed.
income_correction: HashMap[address, int256]
# @dev Magnified remainder of past distributions not yet spread over the shares.
income_carry: public(uint256)
# @dev Income tokens received by `distribute`, all time.
total_distributed: public(uint256)
# @dev Income tokens paid out by `claim`, all time.
total_claimed: public(uint256)
# @dev Shares of each holder frozen by a `FREEZER_ROLE` agent (may exceed the balance).
_frozen_tokens: HashMap[address, uint256]


# @dev Emitted when a GPU is added to the register.
event GPUAdded:
    gpu_id: indexed(uint256)
    serial_hash: indexed(bytes32)
    model: bytes32
    location: uint16
    datacenter: bytes32
    acquisition_cost: uint256
    commissioned_at: uint256
    subdivision: uint24


# @dev Emitted when a GPU changes status.
event GPUStatusChanged:
    gpu_id: indexed(uint256)
    previous_status: GPUStatus
    new_status: GPUStatus
    operator: indexed(address)


# @dev Emitted when rental income is deposited for the holders.
event IncomeDistributed:
    operator: indexed(address)
    amount: uint256
    income_per_share: uint256
    total_supply: uint256


# @dev Emitted when a holder claims income.
event IncomeClaimed:
    holder: indexed(address)
    amount: uint256


# @dev Emitted when an agent sets a holder's frozen amount (ERC-7943).
event Frozen:
    user: indexed(address)
    amount: uint256


# @dev Emitted when an agent moves shares without the holder's consent (ERC-7943).
event ForcedTransfer:
    sender: indexed(address)
    receiver: indexed(address)
    amount: uint256


# @dev Emitted when an agent moves a lost wallet's position to a new wallet.
event WalletRecovered:
    lost_wallet: indexed(address)
    new_wallet: indexed(address)
    shares: uint256
    claimable_income: uint256
    frozen: uint256
    agent: indexed(address)


# @dev Emitted when the token is paused.
event Paused:
    account: address


# @dev Emitted when the token is unpaused.
event Unpaused:
    account: address


@deploy
@payable
def __init__(
    name_: String[25],
    symbol_: String[5],
    income_token_: address,
    shares_per_gpu_: uint256,
    spv_id_: uint256,
    admin_: address,
    compliance_registry_: address,
):
    """
    @notice Deploys the share token of one SPV. Normally called through
            `SPVFactory.create_spv`, from the blueprint.
    @dev `admin_` receives the admin, operator and pauser roles; the deployer keeps none.
    @param name_ Token name (at most 25 characters), also the EIP-712 domain name.
    @param symbol_ Token symbol (at most 5 characters).
    @param income_token_ ERC-20 contract the rental income is paid in.
    @param shares_per_gpu_ Share base units backed by each active GPU.
    @param spv_id_ The SPV's id in the factory.
    @param admin_ The SPV operator's admin account.
    @param compliance_registry_ The `ComplianceRegistry` every share movement consults.
    """
    assert income_token_.is_contract, reasons.TOKEN_INCOME_TOKEN_NOT_CONTRACT
    assert shares_per_gpu_ != 0, reasons.TOKEN_SHARES_PER_GPU_ZERO
    assert shares_per_gpu_ <= MAX_SUPPLY, reasons.TOKEN_SHARES_PER_GPU_ABOVE
    assert admin_ != empty(address), reasons.TOKEN_ADMIN_ZERO_ADDRESS
    assert compliance_registry_.is_contract, reasons.TOKEN_COMPLIANCE_REGISTRY_NOT_CONTRACT
    assert len(name_) != 0, reasons.TOKEN_EMPTY_NAME
    assert len(symbol_) != 0, reasons.TOKEN_EMPTY_SYMBOL

    ownable.__init__()
    erc20.__init__(name_, symbol_, SHARE_DECIMALS, name_, "1")
    access_control.__init__()

    income_token = income_token_
    shares_per_gpu = shares_per_gpu_
    spv_id = spv_id_
    factory = msg.sender
    compliance_registry = compliance_registry_

    # The snekmate `erc20` module needs an owner; minting goes through `OPERATOR_ROLE`
    # here, so the owner only mirrors the SPV admin for explorers.
    ownable._transfer_ownership(admin_)
    access_control._grant_role(access_control.DEFAULT_ADMIN_ROLE, admin_)
    access_control._grant_role(OPERATOR_ROLE, admin_)
    access_control._grant_role(PAUSER_ROLE, admin_)
    if msg.sender != admin_:
        access_control._revoke_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)

    # Seed the accumulator with 1 (1e-36 income token units per share base unit, which
    # no one can ever claim: every mint records the matching negative correction). It
    # makes every holder's correction slot non-zero from their first share on, so a
    # transfer between existing holders rewrites warm non-zero slots (5,000 gas each)
    # instead of creating them (22,100 gas each) after the first distribution.
    self._hot = 1


# ---------------------------------------------------------------------------------
# Share movements
# ---------------------------------------------------------------------------------


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` shares from the caller to `to`. Income earned so far stays
            with the caller.
    @param to Receiver.
    @param amount Share base units.
    @return bool True (reverts on failure).
    """
    self._before_share_move(msg.sender, to, amount)
    erc20._transfer(msg.sender, to, amount)
    self._after_share_move(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` shares from `owner` to `to` using the caller's allowance.
    @param owner Holder whose shares move.
    @param to Receiver.
    @param amount Share base units.
    @return bool True (reverts on failure).
    """
    erc20._spend_allowance(owner, msg.sender, amount)
    self._before_share_move(owner, to, amount)
    erc20._transfer(owner, to, amount)
    self._after_share_move(owner, to, amount)
    return True


@external
def mint(to: address, amount: uint256):
    """
    @notice Mints `amount` new shares to `to`, within the active GPUs' backing.
    @dev Only `OPERATOR_ROLE`. New shares carry no income earned before the mint.
    @param to Receiver.
    @param amount Share base units.
    """
    access_control._check_role(OPERATOR_ROLE, msg.sender)
    assert amount != 0, reasons.TOKEN_MINT_AMOUNT_ZERO
    self._before_share_move(empty(address), to, amount)
    new_supply: uint256 = erc20.totalSupply + amount
    assert new_supply <= self.active_gpus * shares_per_gpu, reasons.TOKEN_MINT_EXCEEDS_ACTIVE_GPUS
    assert new_supply <= MAX_SUPPLY, reasons.TOKEN_MINT_EXCEEDS_MAX_SUPPLY
    erc20._mint(to, amount)
    self._after_share_move(empty(address), to, amount)


@external
def burn(amount: uint256):
    """
    @notice Burns `amount` of the caller's own shares (shares the SPV bought back).
    @dev Only `OPERATOR_ROLE`. Income the burnt shares earned stays claimable.
    @param amount Share base units.
    """
    access_control._check_role(OPERATOR_ROLE, msg.sender)
    assert amount != 0, reasons.TOKEN_BURN_AMOUNT_ZERO
    self._before_share_move(msg.sender, empty(address), amount)
    erc20._burn(msg.sender, amount)
    self._after_share_move(msg.sender, empty(address), amount)


# ---------------------------------------------------------------------------------
# GPU register
# ---------------------------------------------------------------------------------


@external
def add_gpus(batch: DynArray[GPUInput, MAX_GPU_BATCH]) -> uint256:
    """
    @notice Registers GPUs owned by the SPV; each becomes ACTIVE and backs
            `shares_per_gpu` more shares. A GPU located in a jurisdiction that does
            not recognise tokenized title is refused with the registry's reason.
    @dev Only `OPERATOR_ROLE`. The whole batch reverts on the first invalid entry.
    @param batch The GPUs (serial hash, model, ISO 3166-1 numeric location,
           datacenter id, acquisition cost in USD with 8 decimals, commissioning time,
           and the location's ISO 3166-2 region: the part after the hyphen in ASCII,
           right-aligned, 0 for none; needed where the country has regional rules).
    @return uint256 The id of the first GPU added.
    """
    access_control._check_role(OPERATOR_ROLE, msg.sender)
    assert len(batch) != 0, reasons.TOKEN_EMPTY_GPU_BATCH
    first_id: uint256 = self.gpu_count + 1
    next_id: uint256 = first_id
    for g: GPUInput in batch:
        assert g.serial_hash != empty(bytes32), reasons.TOKEN_GPU_SERIAL_HASH_ZERO
        assert self.gpu_id_of_serial[g.serial_hash] == 0, reasons.TOKEN_GPU_SERIAL_ALREADY_REGISTERED
        assert g.model != empty(bytes32), reasons.TOKEN_GPU_MODEL_EMPTY
        assert g.location != 0 and g.location <= 999, reasons.TOKEN_GPU_LOCATION_NOT_ISO
        assert g.datacenter != empty(bytes32), reasons.TOKEN_GPU_DATACENTER_EMPTY
        assert g.acquisition_cost != 0, reasons.TOKEN_GPU_ACQUISITION_COST_ZERO
        assert g.commissioned_at != 0, reasons.TOKEN_GPU_COMMISSIONING_TIME_ZERO
        assert g.commissioned_at <= block.timestamp, reasons.TOKEN_GPU_COMMISSIONING_TIME_FUTURE
        extcall IComplianceRegistry(compliance_registry).register_asset_location(g.location, g.subdivision)
        self.gpus[next_id] = GPU(
            serial_hash=g.serial_hash,
            model=g.model,
            location=g.location,
            datacenter=g.datacenter,
            acquisition_cost=g.acquisition_cost,
            commissioned_at=g.commissioned_at,
            status=GPUStatus.ACTIVE,
            subdivision=g.subdivision,
        )
        self.gpu_id_of_serial[g.serial_hash] = next_id
        log GPUAdded(
            gpu_id=next_id,
            serial_hash=g.serial_hash,
            model=g.model,
            location=g.location,
            datacenter=g.datacenter,
            acquisition_cost=g.acquisition_cost,
            commissioned_at=g.commissioned_at,
            subdivision=g.subdivision,
        )
        next_id += 1
    self.gpu_count = next_id - 1
    self.active_gpus += len(batch)
    return first_id


@external
def impair_gpu(gpu_id: uint256):
    """
    @notice Marks an ACTIVE GPU as IMPAIRED (failed, degraded or written down). It
            keeps backing the shares already issued but no longer backs new mints.
    @dev Only `OPERATOR_ROLE`.
    @param gpu_id The GPU's id.
    """
    access_control._check_role(OPERATOR_ROLE, msg.sender)
    status: GPUStatus = self.gpus[gpu_id].status
    assert status != empty(GPUStatus), reasons.TOKEN_UNKNOWN_GPU_ID
    assert status == GPUStatus.ACTIVE, reasons.TOKEN_ACTIVE_GPU_IMPAIRED
    self.gpus[gpu_id].status = GPUStatus.IMPAIRED
    self.active_gpus -= 1
    self.impaired_gpus += 1
    log GPUStatusChanged(
        gpu_id=gpu_id, previous_status=status, new_status=GPUStatus.IMPAIRED, operator=msg.sender
    )


@external
def retire_gpu(gpu_id: uint256):
    """
    @notice Retires an ACTIVE or IMPAIRED GPU (sold or scrapped). Allowed only if the
            share supply stays within what the remaining GPUs back: burn shares first.
    @dev Only `OPERATOR_ROLE`.
    @param gpu_id The GPU's id.
    """
    access_control._check_role(OPERATOR_ROLE, msg.sender)
    status: GPUStatus = self.gpus[gpu_id].status
    assert status != empty(GPUStatus), reasons.TOKEN_UNKNOWN_GPU_ID
    assert status != GPUStatus.RETIRED, reasons.TOKEN_GPU_ALREADY_RETIRED
    remaining: uint256 = self.active_gpus + self.impaired_gpus - 1
    assert (
        erc20.totalSupply <= remaining * shares_per_gpu
    ), reasons.TOKEN_BURN_SHARES_FIRST_SUPPLY
    if status == GPUStatus.ACTIVE:
        self.active_gpus -= 1
    else:
        self.impaired_gpus -= 1
    self.gpus[gpu_id].status = GPUStatus.RETIRED
    extcall IComplianceRegistry(compliance_registry).release_asset_location(
        self.gpus[gpu_id].location, self.gpus[gpu_id].subdivision
    )
    log GPUStatusChanged(
        gpu_id=gpu_id, previous_status=status, new_status=GPUStatus.RETIRED, operator=msg.sender
    )


# ---------------------------------------------------------------------------------
# Rental income
# ---------------------------------------------------------------------------------


@external
@nonreentrant
def distribute(amount: uint256):
    """
    @notice Deposits `amount` of the income token (pulled from the caller, who must
            have approved this contract) and spreads it over the current holders pro
            rata to their shares.
    @dev Only `OPERATOR_ROLE`. Works while paused: income is never turned away.
    @param amount Income token units to deposit.
    """
    access_control._check_role(OPERATOR_ROLE, msg.sender)
    assert amount != 0, reasons.TOKEN_DISTRIBUTE_AMOUNT_ZERO
    supply: uint256 = erc20.totalSupply
    assert supply != 0, reasons.TOKEN_NO_SHARES_OUTSTANDING_RECEIVE

    before: uint256 = staticcall IERC20(income_token).balanceOf(self)
    assert extcall IERC20(income_token).transferFrom(
        msg.sender, self, amount, default_return_value=True
    ), reasons.TOKEN_INCOME_TOKEN_TRANSFERFROM_FAILED
    received: uint256 = staticcall IERC20(income_token).balanceOf(self) - before
    assert received != 0, reasons.TOKEN_NO_INCOME_RECEIVED

    magnified: uint256 = received * MAGNITUDE + self.income_carry
    increment: uint256 = magnified // supply
    hot: uint256 = self._hot
    new_income_per_share: uint256 = (hot & MAX_INCOME_PER_SHARE) + increment
    assert (
        new_income_per_share <= MAX_INCOME_PER_SHARE
    ), reasons.TOKEN_INCOME_PER_SHARE_OVERFLOW
    self._hot = (hot & PAUSED_BIT) | new_income_per_share
    # `increment * supply <= magnified` by the floor division above.
    self.income_carry = unsafe_sub(magnified, unsafe_mul(increment, supply))
    self.total_distributed += received
    log IncomeDistributed(
        operator=msg.sender,
        amount=received,
        income_per_share=new_income_per_share,
        total_supply=supply,
    )


@external
@nonreentrant
def claim() -> uint256:
    """
    @notice Pays the caller all the rental income their shares have earned so far. A
            wallet frozen in the compliance registry, or a holder resident where the
            rules block holders, cannot claim (its income keeps accruing) until that
            changes or an agent recovers the wallet. Expired or removed eligibility
            does not stop a claim: the income was earned.
    @return uint256 The amount paid, in income token units.
    """
    assert self._hot & PAUSED_BIT == 0, reasons.TOKEN_PAUSED
    code: uint8 = staticcall IComplianceRegistry(compliance_registry).income_code(msg.sender)
    assert code != codes.RECEIVER_FROZEN, reasons.TOKEN_WALLET_FROZEN_COMPLIANCE_AGENT
    assert code == 0, reasons.TOKEN_INCOME_JURISDICTION_BLOCKED
    amount: uint256 = self._claimable(msg.sender)
    assert amount != 0, reasons.TOKEN_NOTHING_CLAIM
    # `amount * MAGNITUDE <= income_per_share * balance + correction < 2**255`.
    self.income_correction[msg.sender] -= convert(unsafe_mul(amount, MAGNITUDE), int256)
    self.total_claimed += amount
    log IncomeClaimed(holder=msg.sender, amount=amount)
    assert extcall IERC20(income_token).transfer(
        msg.sender, amount, default_return_value=True
    ), reasons.TOKEN_INCOME_TOKEN_TRANSFER_FAILED
    return amount


@external
@view
def claimable(account: address) -> uint256:
    """
    @notice Income `account` can claim now, in income token units (rounded down).
    @param account The holder.
    @return uint256 The claimable amount.
    """
    return self._claimable(account)


@external
@view
def income_per_share() -> uint256:
    """
    @notice Cumulative income per share base unit since deployment, scaled by
            `MAGNITUDE` (starts at 1, see the constructor).
    @return uint256 The accumulator.
    """
    return self._hot & MAX_INCOME_PER_SHARE


@external
@view
def paused() -> bool:
    """
    @notice Whether share movements and claims are stopped.
    @return bool True while paused.
    """
    return self._hot & PAUSED_BIT != 0


@external
@view
def backing() -> (uint256, uint256):
    """
    @notice The share supply the fleet backs.
    @return uint256 Mint cap: active GPUs x shares per GPU.
    @return uint256 Backing of the issued supply: (active + impaired) GPUs x shares per GPU.
    """
    return (
        self.active_gpus * shares_per_gpu,
        (self.active_gpus + self.impaired_gpus) * shares_per_gpu,
    )


# ---------------------------------------------------------------------------------
# Compliance: ERC-1404 / ERC-7943 views and agent powers
# ---------------------------------------------------------------------------------


@external
@view
def detectTransferRestriction(sender: address, receiver: address, amount: uint256) -> uint8:
    """
    @notice ERC-1404: the restriction code of moving `amount` shares from `sender` to
            `receiver` now; 0 means the transfer would go through. A zero `sender`
            predicts a mint, a zero `receiver` a burn.
    @param sender Holder losing shares.
    @param receiver Holder gaining shares.
    @param amount Share base units.
    @return uint8 The code; `messageForTransferRestriction` explains it.
    """
    return self._restriction_code(sender, receiver, amount)


@external
@view
def messageForTransferRestriction(restriction_code: uint8) -> String[160]:
    """
    @notice ERC-1404: the human-readable reason for a restriction code.
    @param restriction_code A code from `detectTransferRestriction`.
    @return String The message a wallet shows.
    """
    return staticcall IComplianceRegistry(compliance_registry).messageForTransferRestriction(
        restriction_code
    )


@external
@view
def canTransfer(sender: address, receiver: address, amount: uint256) -> bool:
    """
    @notice ERC-7943: whether moving `amount` shares from `sender` to `receiver`
            would be allowed now.
    @param sender Holder losing shares.
    @param receiver Holder gaining shares.
    @param amount Share base units.
    @return bool True when `detectTransferRestriction` is 0.
    """
    return self._restriction_code(sender, receiver, amount) == 0


@external
@view
def canSend(account: address) -> bool:
    """
    @notice ERC-7943: whether `account` may send shares now (registered, eligibility
            not expired, wallet not frozen, the token not paused); the amount-dependent
            checks (balance, frozen shares) are `canTransfer`'s.
    @param account The holder.
    @return bool True when `account` may send.
    """
    return self._hot & PAUSED_BIT == 0 and staticcall IComplianceRegistry(
        compliance_registry
    ).check_sender(account) == 0


@external
@view
def canReceive(account: address) -> bool:
    """
    @notice ERC-7943: whether `account` may receive shares now (registered, not expired,
            not frozen, its residence's policy, the token not paused). A transfer also
            needs the asset's title recognised (`canTransfer` says it all).
    @param account The would-be holder.
    @return bool True when `account` may receive.
    """
    return self._hot & PAUSED_BIT == 0 and staticcall IComplianceRegistry(
        compliance_registry
    ).check_receiver(account) == 0


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    """
    @notice ERC-165: true for ERC-165, ERC-20, ERC-7943 (uRWA, fungible), ERC-1404,
            EIP-2612, EIP-5267 and access control (roles).
    @param interface_id The interface id.
    @return bool Whether this token implements it.
    """
    return interface_id in [
        _IERC165, _IERC20, _IERC7943, _IERC1404, _IERC2612, _IERC5267, _IACCESS_CONTROL
    ]


@external
@view
def custody_restriction(sender: address, receiver: address, amount: uint256, in_custody: uint256) -> uint8:
    """
    @notice The restriction code of moving `amount` shares that `sender` holds in a
            custodian's care (a lending pool's collateral position of `in_custody`
            shares) to `receiver`: decided as a transfer between the two, with the
            sender's holding taken as its wallet plus `in_custody`, so a partial freeze
            of the sender covers its pooled shares too. Pools call it before letting a
            position's shares go to another wallet.
    @param sender The holder of the position.
    @param receiver Who would receive the shares.
    @param amount Share base units.
    @param in_custody The shares the caller holds for `sender`.
    @return uint8 0 when allowed, else the restriction code.
    """
    return staticcall IComplianceRegistry(compliance_registry).check_transfer(
        sender,
        receiver,
        amount,
        self._hot & PAUSED_BIT != 0,
        erc20.balanceOf[sender] + in_custody,
        self._frozen_tokens[sender],
    )


@external
@view
def getFrozenTokens(account: address) -> uint256:
    """
    @notice ERC-7943: shares of `account` frozen by an agent (may exceed its balance).
    @param account The holder.
    @return uint256 Frozen share base units.
    """
    return self._frozen_tokens[account]


@external
def setFrozenTokens(account: address, amount: uint256) -> bool:
    """
    @notice ERC-7943: sets how many of `account`'s shares are frozen (0 unfreezes).
            Frozen shares keep earning income; only their movement stops.
    @dev Only `FREEZER_ROLE`. The amount may exceed the balance (then nothing moves).
    @param account The holder.
    @param amount Frozen share base units.
    @return bool True (reverts on failure).
    """
    access_control._check_role(FREEZER_ROLE, msg.sender)
    assert account != empty(address), reasons.TOKEN_CANNOT_FREEZE_ZERO_ADDRESS
    self._refuse_custodian(account)
    assert self._frozen_tokens[account] != amount, reasons.TOKEN_FROZEN_AMOUNT_UNCHANGED
    self._frozen_tokens[account] = amount
    log Frozen(user=account, amount=amount)
    return True


@external
def forcedTransfer(sender: address, receiver: address, amount: uint256) -> bool:
    """
    @notice ERC-7943: moves `amount` shares from `sender` to `receiver` without the
            holder's consent (court order, regulator instruction). Bypasses: the
            pause, the asset-title stop, the sender's eligibility and wallet freeze,
            and the sender's partial freeze (the frozen amount shrinks by the frozen
            shares taken).
            Does not bypass: the receiver's eligibility (registered, not expired, not
            frozen, residence policy) and the sender's balance.
    @dev Only `FORCED_TRANSFER_ROLE`. Income earned before stays with `sender`.
    @param sender Holder losing shares.
    @param receiver Eligible account gaining shares (not `sender`).
    @param amount Share base units.
    @return bool True (reverts on failure).
    """
    access_control._check_role(FORCED_TRANSFER_ROLE, msg.sender)
    assert sender != receiver, reasons.TOKEN_FORCED_TRANSFER_ACCOUNT_ITSELF
    self._refuse_custodian(sender)
    self._refuse_custodian(receiver)
    assert amount != 0, reasons.TOKEN_FORCED_TRANSFER_AMOUNT_ZERO
    self._require_receiver_eligible(receiver)
    balance: uint256 = erc20.balanceOf[sender]
    assert amount <= balance, reasons.TOKEN_FORCED_TRANSFER_EXCEEDS_SENDER
    # The frozen amount shrinks only by the frozen shares taken: a freeze above the
    # wallet's balance also covers the holder's shares in a pool, and stays on them.
    frozen: uint256 = self._frozen_tokens[sender]
    free: uint256 = balance - min(frozen, balance)
    if amount > free:
        frozen = unsafe_sub(frozen, amount - free)
        self._frozen_tokens[sender] = frozen
        log Frozen(user=sender, amount=frozen)
    erc20._transfer(sender, receiver, amount)
    self._after_share_move(sender, receiver, amount)
    log ForcedTransfer(sender=sender, receiver=receiver, amount=amount)
    return True


@external
def recover_wallet(lost_wallet: address, new_wallet: address):
    """
    @notice Moves everything `lost_wallet` holds in this token to `new_wallet`: all its
            shares, the income they earned and not yet claimed, and its frozen amount
            (a freeze alone is moved too: it may cover the holder's shares in a pool,
            whose `recover_position` then follows). The lost wallet must first be
            frozen, expired or removed in the compliance registry: a lost key may be in
            someone else's hands, and must not move pooled shares meanwhile.
            For a holder who lost their keys and proved their identity off-chain.
    @dev Only `RECOVERY_ROLE`. `new_wallet` must be eligible to receive shares; the
         pause and the sender's checks do not apply (the owner does not change).
    @param lost_wallet The wallet whose keys are lost.
    @param new_wallet The holder's new, eligible wallet.
    """
    access_control._check_role(RECOVERY_ROLE, msg.sender)
    assert lost_wallet != new_wallet, reasons.TOKEN_RECOVERY_SAME_WALLET
    self._refuse_custodian(lost_wallet)
    self._refuse_custodian(new_wallet)
    self._require_receiver_eligible(new_wallet)
    assert staticcall IComplianceRegistry(compliance_registry).check_sender(
        lost_wallet
    ) != 0, reasons.TOKEN_RECOVERY_LOST_WALLET_ACTIVE
    shares: uint256 = erc20.balanceOf[lost_wallet]
    income: uint256 = self._claimable(lost_wallet)
    frozen: uint256 = self._frozen_tokens[lost_wallet]
    assert shares != 0 or income != 0 or frozen != 0, reasons.TOKEN_LOST_WALLET_HOLDS_NO
    if shares != 0:
        erc20._transfer(lost_wallet, new_wallet, shares)
    # Move the whole correction: the new wallet's accrued income becomes exactly the
    # sum of both wallets' accruals, and the lost wallet's drops to zero.
    self.income_correction[new_wallet] += self.income_correction[lost_wallet]
    self.income_correction[lost_wallet] = 0
    if frozen != 0:
        # Saturating: a freeze may exceed the balance (up to max_value, "everything").
        already: uint256 = self._frozen_tokens[new_wallet]
        self._frozen_tokens[new_wallet] = max_value(uint256) if frozen > max_value(uint256) - already else already + frozen
        self._frozen_tokens[lost_wallet] = 0
        log Frozen(user=lost_wallet, amount=0)
        log Frozen(user=new_wallet, amount=self._frozen_tokens[new_wallet])
    log WalletRecovered(
        lost_wallet=lost_wallet,
        new_wallet=new_wallet,
        shares=shares,
        claimable_income=income,
        frozen=frozen,
        agent=msg.sender,
    )


# ---------------------------------------------------------------------------------
# Pause
# ---------------------------------------------------------------------------------


@external
def pause():
    """
    @notice Stops share transfers, mints, burns and income claims.
    @dev Only `PAUSER_ROLE`.
    """
    access_control._check_role(PAUSER_ROLE, msg.sender)
    hot: uint256 = self._hot
    assert hot & PAUSED_BIT == 0, reasons.TOKEN_ALREADY_PAUSED
    self._hot = hot | PAUSED_BIT
    log Paused(account=msg.sender)


@external
def unpause():
    """
    @notice Resumes share transfers, mints, burns and income claims.
    @dev Only `PAUSER_ROLE`.
    """
    access_control._check_role(PAUSER_ROLE, msg.sender)
    hot: uint256 = self._hot
    assert hot & PAUSED_BIT != 0, reasons.TOKEN_NOT_PAUSED
    self._hot = hot & MAX_INCOME_PER_SHARE
    log Unpaused(account=msg.sender)


# ---------------------------------------------------------------------------------
# Internal
# ---------------------------------------------------------------------------------


@internal
def _before_share_move(sender: address, receiver: address, amount: uint256):
    """
    @dev The single gate every share movement passes before balances change: mint
         (`sender` empty), burn (`receiver` empty) and transfers. Reverts with the
         restriction's message (as a wallet shows it) unless the code is 0.
    @param sender Holder losing shares, or the zero address for a mint.
    @param receiver Holder gaining shares, or the zero address for a burn.
    @param amount Share base units.
    """
    code: uint8 = self._restriction_code(sender, receiver, amount)
    if code != 0:
        raise staticcall IComplianceRegistry(compliance_registry).messageForTransferRestriction(code)


@internal
def _after_share_move(sender: address, receiver: address, amount: uint256):
    """
    @dev Runs after the balances changed (so `amount` is known to be at most the
         sender's former balance, or within the mint cap): moves the income
         correction with the shares, so income earned before the move stays with
         `sender` and the new holder earns only from now on.
    @param sender Holder that lost shares, or the zero address for a mint.
    @param receiver Holder that gained shares, or the zero address for a burn.
    @param amount Share base units.
    """
    # `income_per_share <= MAX_INCOME_PER_SHARE` and `amount <= MAX_SUPPLY`, so the
    # product is below 2**255 and fits an int256.
    delta: int256 = convert(unsafe_mul(self._hot & MAX_INCOME_PER_SHARE, amount), int256)
    if sender != empty(address):
        self.income_correction[sender] += delta
    if receiver != empty(address):
        self.income_correction[receiver] -= delta


@internal
@view
def _restriction_code(sender: address, receiver: address, amount: uint256) -> uint8:
    """
    @dev The restriction code of a share movement: the registry's one check, fed with
         this token's state (pause flag, sender balance, sender's frozen amount).
         Serves enforcement (`_before_share_move`) and prediction (the views).
    @param sender Holder losing shares, or the zero address for a mint.
    @param receiver Holder gaining shares, or the zero address for a burn.
    @param amount Share base units.
    @return uint8 0 when allowed, else the restriction code.
    """
    balance: uint256 = 0
    frozen: uint256 = 0
    if sender != empty(address):
        balance = erc20.balanceOf[sender]
        frozen = self._frozen_tokens[sender]
    return staticcall IComplianceRegistry(compliance_registry).check_transfer(
        sender, receiver, amount, self._hot & PAUSED_BIT != 0, balance, frozen
    )


@internal
@view
def _refuse_custodian(account: address):
    """
    @dev An agent power never acts on a custodian's own balance (a lending pool's
         shares are its borrowers' positions): the agent acts through the pool.
    @param account The account an agent power would move or freeze shares of.
    """
    assert not staticcall IComplianceRegistry(compliance_registry).custodian(
        account
    ), reasons.TOKEN_CUSTODIAN_ACCOUNT


@internal
@view
def _require_receiver_eligible(receiver: address):
    """
    @dev Reverts with the restriction's message unless `receiver` may receive shares
         (registered, not expired, not frozen, residence policy).
    @param receiver The account that would receive shares.
    """
    assert receiver != empty(address), reasons.TOKEN_RECEIVER_ZERO_ADDRESS
    code: uint8 = staticcall IComplianceRegistry(compliance_registry).check_receiver(receiver)
    if code != 0:
        raise staticcall IComplianceRegistry(compliance_registry).messageForTransferRestriction(code)


@internal
@view
def _claimable(account: address) -> uint256:
    """
    @dev `(income_per_share * balance + correction) / MAGNITUDE`, rounded down.
    @param account The holder.
    @return uint256 Claimable income token units.
    """
    # Bounded by MAX_INCOME_PER_SHARE * MAX_SUPPLY < 2**255 (see the header).
    accumulated: int256 = convert(
        unsafe_mul(self._hot & MAX_INCOME_PER_SHARE, erc20.balanceOf[account]), int256
    ) + self.income_correction[account]
    if accumulated <= 0:
        return 0
    return convert(accumulated, uint256) // MAGNITUDE
