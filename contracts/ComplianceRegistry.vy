# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Compliance Registry
@custom:contract-name ComplianceRegistry
@license GNU Affero General Public License v3.0 only
@notice Who may hold and move GPU shares, and where the GPUs behind them may sit.
        - Investor records (jurisdiction of residence, accredited flag, expiry, frozen),
          written by a KYC provider (`KYC_PROVIDER_ROLE`) or by anyone submitting an
          EIP-712 `Eligibility` attestation signed by a KYC provider, so a wallet user
          can onboard themself.
        - The jurisdiction table (ISO 3166-1 numeric code -> title recognition for
          assets located there, holder policy for investors resident there, and the
          SHA-256 of the rules file it was compiled from), kept in sync with
          `jurisdictions/rules/` by `ape run jurisdictions apply`.
        - Per share token: the jurisdictions its GPUs sit in (registered by the token
          when it adds or retires a GPU), and the SPV operator's title overrides for
          `unclear` jurisdictions (the hash of a legal opinion).
        - `_check`, the one function that decides a share movement: the token calls
          it through `check_transfer` on every movement (enforcement) and anyone can
          call it through `can_transfer` (prediction). The codes and messages are
          generated from `jurisdictions/codes.py` (`restriction_codes` module) and the
          Python engine `jurisdictions.engine.decide` runs the same checks in the same
          order.
@custom:security The registry never moves tokens. A token's location set and title
                 overrides are keyed by the calling token (locations) or checked
                 against the token's own `OPERATOR_ROLE` (overrides), so a contract can
                 only ever affect the entries of itself or of a token it operates.
                 Freezing is kept apart from the eligibility record: neither a KYC
                 update nor a self-submitted attestation can clear a freeze.
"""


from ethereum.ercs import IERC20

from snekmate.auth import access_control
initializes: access_control

from snekmate.utils import eip712_domain_separator
initializes: eip712_domain_separator

from snekmate.utils import ecdsa

from snekmate.auth.interfaces import IAccessControl

from .modules import restriction_codes as codes
from .modules import reasons


exports: (
    access_control.DEFAULT_ADMIN_ROLE,
    access_control.hasRole,
    access_control.getRoleAdmin,
    access_control.grantRole,
    access_control.revokeRole,
    access_control.renounceRole,
    access_control.set_role_admin,
    eip712_domain_separator.eip712Domain,
)


# @dev ERC-165 ids this contract answers true for: ERC-165, snekmate's IAccessControl
#      (hasRole ^ getRoleAdmin ^ grantRole ^ revokeRole ^ renounceRole) and EIP-5267 (eip712Domain).
_SUPPORTED: constant(bytes4[3]) = [0x01ffc9a7, 0x7965db0b, 0x84b0196e]


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    """
    @notice ERC-165: true for ERC-165, EIP-5267 (eip712Domain) and access control (roles).
    @param interface_id The interface id.
    @return bool Whether this contract implements it.
    """
    return interface_id in _SUPPORTED


# @dev The share token's state that `can_transfer` reads.
interface IShareToken:
    def paused() -> bool: view
    def getFrozenTokens(account: address) -> uint256: view


# @dev Role that writes and removes investor records and signs eligibility attestations.
KYC_PROVIDER_ROLE: public(constant(bytes32)) = keccak256("KYC_PROVIDER_ROLE")
# @dev Role that freezes and unfreezes whole wallets.
FREEZER_ROLE: public(constant(bytes32)) = keccak256("FREEZER_ROLE")
# @dev Role that writes the jurisdiction table (compiled from the rules data).
RULES_ADMIN_ROLE: public(constant(bytes32)) = keccak256("RULES_ADMIN_ROLE")
# @dev The share token's operator role: its holders act for the SPV (receive
#      redemptions, record title overrides).
SPV_OPERATOR_ROLE: public(constant(bytes32)) = keccak256("OPERATOR_ROLE")

# @dev EIP-712 type of a self-submitted eligibility attestation.
ELIGIBILITY_TYPEHASH: public(constant(bytes32)) = keccak256(
    "Eligibility(address investor,uint16 jurisdiction,uint24 subdivision,bool accredited,uint64 expiresAt,uint256 nonce,uint256 deadline)"
)

# @dev Most distinct jurisdictions one token's GPUs may sit in (16 lanes of 16 bits).
MAX_ASSET_LOCATIONS: public(constant(uint256)) = 16
# @dev Most distinct regions (ISO 3166-2 subdivisions, "no region" counting as one) one
#      token's GPUs may sit in within one jurisdiction (8 lanes of 32 bits).
MAX_ASSET_SUBDIVISIONS: public(constant(uint256)) = 8
# @dev Most subdivision rows the table holds, over all jurisdictions.
MAX_SUBDIVISIONS: public(constant(uint256)) = 256
# @dev Most jurisdiction settings one `set_jurisdictions` call accepts.
MAX_JURISDICTION_BATCH: public(constant(uint256)) = 64
# @dev ISO 3166-1 numeric codes are 1..999.
MAX_JURISDICTIONS: constant(uint256) = 999

# @dev Layout of a packed investor record.
EXPIRY_MASK: constant(uint256) = 2**64 - 1
JURISDICTION_SHIFT: constant(uint256) = 64
ACCREDITED_BIT: constant(uint256) = 2**80
FROZEN_BIT: constant(uint256) = 2**81
SUBDIVISION_SHIFT: constant(uint256) = 88
SUBDIVISION_MASK: constant(uint256) = 2**24 - 1
# @dev Layout of a packed jurisdiction entry: title in bits 0..7, policy in 8..15, and
#      in bits 16..79 the title epoch (bumped each time the title status changes).
POLICY_SHIFT: constant(uint256) = 8
EPOCH_SHIFT: constant(uint256) = 16
EPOCH_MASK: constant(uint256) = 2**64 - 1
# @dev Bits 80..95 of a jurisdiction entry: how many of its subdivisions have rows.
SUBDIVISIONS_SHIFT: constant(uint256) = 80
# @dev An asset-subdivision lane holds the subdivision with this bit set, so a lane for
#      GPUs recorded without a region (subdivision 0) is not empty.
LANE_MARK: constant(uint256) = 2**24


# @dev An investor record as the views return it.
struct Investor:
    jurisdiction: uint16
    accredited: bool
    expires_at: uint64
    frozen: bool
    registered: bool
    subdivision: uint24


# @dev One row of the jurisdiction table, as written by the rules admin.
struct JurisdictionSetting:
    jurisdiction: uint16
    title: uint8
    policy: uint8
    rules_hash: bytes32


# @dev One row of the subdivision table (ISO 3166-2), as written by the rules admin.
#      `subdivision` is the code's part after the hyphen in ASCII, right-aligned
#      ("UA-43" -> jurisdiction 804, subdivision 0x3433).
struct SubdivisionSetting:
    jurisdiction: uint16
    subdivision: uint24
    title: uint8
    policy: uint8
    rules_hash: bytes32


# @dev An eligibility attestation signed by a KYC provider.
struct Eligibility:
    investor: address
    jurisdiction: uint16
    subdivision: uint24
    accredited: bool
    expires_at: uint64
    nonce: uint256
    deadline: uint256


# @dev Investor records, packed: bits 0..63 expiry (unix seconds, 0 = no record),
#      64..79 jurisdiction, bit 80 accredited, bit 81 frozen (kept when the record is
#      removed or rewritten), 88..111 the ISO 3166-2 subdivision of residence (0: none
#      recorded).
_investors: HashMap[address, uint256]
# @dev Jurisdiction table, packed: bits 0..7 title status, bits 8..15 holder policy
#      (`restriction_codes.TITLE_*` / `POLICY_*`; 0 = not in the table), bits 16..79
#      the title epoch (incremented whenever the title status changes, so an override
#      recorded under an earlier status never counts again), bits 80..95 the number of
#      the jurisdiction's subdivisions with rows of their own.
_jurisdictions: HashMap[uint16, uint256]
# @dev Subdivision table, keyed by `jurisdiction << 24 | subdivision`, packed: bits 0..7
#      title status, 8..15 holder policy (0 = no row: the country's rule applies). A
#      subdivision only tightens its country: the stricter of the two decides.
_subdivisions: HashMap[uint256, uint256]
# @dev SHA-256 of each subdivision row's rule (`SubdivisionRules.rules_hash`).
subdivision_rules_hash: public(HashMap[uint256, bytes32])
# @dev The subdivision rows' keys (`jurisdiction << 24 | subdivision`).
_listed_subdivisions: DynArray[uint256, MAX_SUBDIVISIONS]
# @dev Position + 1 of each listed subdivision key (0: not listed).
_listed_subdivision_position: HashMap[uint256, uint256]
# @dev SHA-256 of the rules file each jurisdiction's entry was compiled from.
rules_hash: public(HashMap[uint16, bytes32])
# @dev The jurisdictions in the table (so auditors and the sync script can list it).
_listed: DynArray[uint16, MAX_JURISDICTIONS]
# @dev Position + 1 of each listed jurisdiction in `_listed` (0: not listed).
_listed_position: HashMap[uint16, uint256]
# @dev Per token: up to 16 distinct GPU locations, 16 bits each (0 = empty lane).
_asset_locations: HashMap[address, uint256]
# @dev Per token and location: GPUs (active or impaired) registered there.
asset_location_gpus: public(HashMap[address, HashMap[uint16, uint256]])
# @dev Per token and location: up to 8 regions its GPUs there sit in, 32-bit lanes each
#      holding `LANE_MARK | subdivision` (subdivision 0: GPUs recorded without a region).
_asset_subdivisions: HashMap[address, HashMap[uint16, uint256]]
# @dev Per token and `location << 24 | subdivision`: GPUs registered there.
asset_subdivision_gpus: public(HashMap[address, HashMap[uint256, uint256]])
# @dev Per token and `unclear` jurisdiction: SHA-256 of the legal opinion the SPV
#      operator relies on to treat title there as recognised (empty: no override).
title_override: public(HashMap[address, HashMap[uint16, bytes32]])
# @dev Per token and jurisdiction: the title epoch + 1 under which the override was
#      recorded (0: none). The override counts only while this matches the row.
_override_epoch: HashMap[address, HashMap[uint16, uint256]]
# @dev Next nonce an investor's eligibility attestation must carry.
eligibility_nonce: public(HashMap[address, uint256])
# @dev Contracts that hold shares in custody for others (lending pools): an agent's
#      power over a holder's shares reaches them through the custodian (a pool's
#      `forced_withdraw`, `recover_position`), never by moving or freezing the
#      custodian's own balance, which other holders' positions make up.
custodian: public(HashMap[address, bool])


# @dev Emitted when an investor record is written.
event InvestorRegistered:
    investor: indexed(address)
    jurisdiction: uint16
    accredited: bool
    expires_at: uint64
    provider: indexed(address)
    self_submitted: bool
    subdivision: uint24


# @dev Emitted when an investor record is removed.
event InvestorRemoved:
    investor: indexed(address)
    provider: indexed(address)


# @dev Emitted when a KYC provider voids an investor's outstanding attestations.
event EligibilityAttestationsCancelled:
    investor: indexed(address)
    next_nonce: uint256
    provider: indexed(address)


# @dev Emitted when a wallet is frozen or unfrozen.
event WalletFrozen:
    investor: indexed(address)
    frozen: bool
    agent: indexed(address)


# @dev Emitted when a row of the jurisdiction table changes.
event JurisdictionSet:
    jurisdiction: indexed(uint16)
    title: uint8
    policy: uint8
    rules_hash: bytes32
    previous_title: uint8
    previous_policy: uint8
    admin: indexed(address)


# @dev Emitted when a row of the subdivision table changes (title and policy 0: removed).
event SubdivisionSet:
    jurisdiction: indexed(uint16)
    subdivision: indexed(uint24)
    title: uint8
    policy: uint8
    rules_hash: bytes32
    admin: indexed(address)


# @dev Emitted when an SPV operator records or clears a title override.
event TitleOverrideSet:
    token: indexed(address)
    jurisdiction: indexed(uint16)
    legal_opinion_hash: bytes32
    operator: indexed(address)


# @dev Emitted when an account is marked (or unmarked) as a custodian of holders' shares.
event CustodianSet:
    account: indexed(address)
    custodian: bool
    provider: indexed(address)


# @dev Emitted when a token's GPUs enter or leave a jurisdiction (`gpus`: how many the
#      token now has in the jurisdiction; `subdivision_gpus`: in the region).
event AssetLocationChanged:
    token: indexed(address)
    jurisdiction: indexed(uint16)
    gpus: uint256
    subdivision: uint24
    subdivision_gpus: uint256


@deploy
@payable
def __init__(admin_: address):
    """
    @notice Deploys the registry. `admin_` receives the admin, KYC provider, freezer
            and rules admin roles; the deployer keeps none unless it is `admin_`.
    @param admin_ The compliance admin account.
    """
    assert admin_ != empty(address), reasons.REGISTRY_ADMIN_ZERO_ADDRESS
    access_control.__init__()
    eip712_domain_separator.__init__("GPU Shares Compliance", "1")
    access_control._grant_role(access_control.DEFAULT_ADMIN_ROLE, admin_)
    access_control._grant_role(KYC_PROVIDER_ROLE, admin_)
    access_control._grant_role(FREEZER_ROLE, admin_)
    access_control._grant_role(RULES_ADMIN_ROLE, admin_)
    if msg.sender != admin_:
        access_control._revoke_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)


# ---------------------------------------------------------------------------------
# Transfer checks
# ---------------------------------------------------------------------------------


@external
@view
def check_transfer(
    sender: address,
    receiver: address,
    amount: uint256,
    paused: bool,
    sender_balance: uint256,
    sender_frozen: uint256,
) -> uint8:
    """
    @notice The restriction code of a movement of the calling token's shares. Called
            by the token on every movement, with its own state.
    @param sender Holder losing shares, or the zero address for a mint.
    @param receiver Holder gaining shares, or the zero address for a burn.
    @param amount Share base units.
    @param paused Whether the token is paused.
    @param sender_balance The sender's share balance.
    @param sender_frozen The sender's frozen shares.
    @return uint8 0 when allowed, else the restriction code.
    """
    return self._check(msg.sender, sender, receiver, amount, paused, sender_balance, sender_frozen)


@external
@view
def can_transfer(token: address, sender: address, receiver: address, amount: uint256) -> uint8:
    """
    @notice Predicts the restriction code of moving `amount` of `token`'s shares from
            `sender` to `receiver` now (0: the transfer would be allowed). A zero
            `sender` predicts a mint, a zero `receiver` a burn.
    @param token The share token.
    @param sender Holder losing shares.
    @param receiver Holder gaining shares.
    @param amount Share base units.
    @return uint8 The restriction code; `messageForTransferRestriction` explains it.
    """
    balance: uint256 = 0
    frozen: uint256 = 0
    if sender != empty(address):
        balance = staticcall IERC20(token).balanceOf(sender)
        frozen = staticcall IShareToken(token).getFrozenTokens(sender)
    return self._check(
        token, sender, receiver, amount, staticcall IShareToken(token).paused(), balance, frozen
    )


@external
@view
def check_receiver(receiver: address) -> uint8:
    """
    @notice The receiver part of the check alone: registered, not expired, not frozen,
            residence policy. Share tokens use it where an agent power moves shares
            without the sender's consent (forced transfer, wallet recovery), and pools
            for the holders of positions (borrowing, collateral income).
    @param receiver The account that would receive shares.
    @return uint8 0 when `receiver` may receive shares, else the restriction code.
    """
    return self._receiver_code(receiver)


@external
@view
def check_sender(sender: address) -> uint8:
    """
    @notice The sender part of the check alone, without an amount: registered, not
            expired, not frozen (ERC-7943 `canSend`).
    @param sender The account that would send shares.
    @return uint8 0 when `sender` may send shares, else the restriction code.
    """
    word: uint256 = self._investors[sender]
    if word & EXPIRY_MASK == 0:
        return codes.SENDER_NOT_REGISTERED
    if word & EXPIRY_MASK <= block.timestamp:
        return codes.SENDER_ELIGIBILITY_EXPIRED
    if word & FROZEN_BIT != 0:
        return codes.SENDER_FROZEN
    return codes.SUCCESS


@external
@pure
def messageForTransferRestriction(restriction_code: uint8) -> String[codes.MAX_MESSAGE_LENGTH]:
    """
    @notice The human-readable reason for a restriction code (ERC-1404).
    @param restriction_code A code from `can_transfer` or `detectTransferRestriction`.
    @return String The message a wallet shows.
    """
    return codes._message(restriction_code)


@external
@view
def asset_title_recognised(token: address) -> bool:
    """
    @notice Whether every jurisdiction `token`'s GPUs sit in recognises tokenized
            title (an `unclear` one counts only with the SPV's override on record).
    @param token The share token.
    @return bool False when transfers of its shares are stopped (except redemption).
    """
    return self._title_ok(token)


@external
@view
def asset_locations(token: address) -> DynArray[uint16, MAX_ASSET_LOCATIONS]:
    """
    @notice The jurisdictions (ISO 3166-1 numeric) `token`'s GPUs sit in.
    @param token The share token.
    @return DynArray The codes, unordered (a freed lane is reused).
    """
    word: uint256 = self._asset_locations[token]
    result: DynArray[uint16, MAX_ASSET_LOCATIONS] = []
    for i: uint256 in range(MAX_ASSET_LOCATIONS):
        if word == 0:
            break
        lane: uint256 = word & 65_535
        if lane != 0:
            result.append(convert(lane, uint16))
        word = word >> 16
    return result


@external
@view
def asset_subdivisions(token: address, location: uint16) -> DynArray[uint24, MAX_ASSET_SUBDIVISIONS]:
    """
    @notice The regions (ISO 3166-2 subdivisions) `token`'s GPUs in `location` sit in.
    @param token The share token.
    @param location ISO 3166-1 numeric code.
    @return DynArray The subdivisions (the part after the hyphen in ASCII, right-aligned),
            unordered; 0 stands for GPUs recorded without a region.
    """
    word: uint256 = self._asset_subdivisions[token][location]
    result: DynArray[uint24, MAX_ASSET_SUBDIVISIONS] = []
    for i: uint256 in range(MAX_ASSET_SUBDIVISIONS):
        if word == 0:
            break
        lane: uint256 = word & (2**32 - 1)
        if lane != 0:
            result.append(convert(lane & SUBDIVISION_MASK, uint24))
        word = word >> 32
    return result


# ---------------------------------------------------------------------------------
# Investors
# ---------------------------------------------------------------------------------


@external
def set_investor(
    investor: address, jurisdiction: uint16, accredited: bool, expires_at: uint64, subdivision: uint24 = 0
):
    """
    @notice Writes `investor`'s eligibility record (a freeze stays in force). Voids
            every attestation signed for the investor before (their nonce is used up),
            so an older attestation can never overwrite this record.
    @dev Only `KYC_PROVIDER_ROLE`.
    @param investor The investor's wallet.
    @param jurisdiction ISO 3166-1 numeric code of the investor's residence.
    @param accredited Whether the investor is accredited / qualified / professional.
    @param expires_at Unix time at which the eligibility lapses (in the future).
    @param subdivision The region of residence (ISO 3166-2, the part after the hyphen
           in ASCII, right-aligned: "UA-30" -> 0x3330), or 0 when none is recorded; a
           country whose rules list subdivisions refuses a resident without one.
    """
    access_control._check_role(KYC_PROVIDER_ROLE, msg.sender)
    self.eligibility_nonce[investor] += 1
    self._write_investor(investor, jurisdiction, subdivision, accredited, expires_at, msg.sender, False)


@external
def submit_eligibility(attestation: Eligibility, signature: Bytes[65]):
    """
    @notice Registers the attested investor from an EIP-712 `Eligibility` attestation
            signed by a KYC provider; anyone may submit it (normally the investor).
    @dev Each attestation names the investor's next `eligibility_nonce`, so it can be
         used once; a freeze stays in force.
    @param attestation The signed eligibility data.
    @param signature The KYC provider's 65-byte signature over the EIP-712 digest.
    """
    assert attestation.deadline >= block.timestamp, reasons.REGISTRY_ELIGIBILITY_ATTESTATION_DEADLINE_PASSED
    assert (
        attestation.nonce == self.eligibility_nonce[attestation.investor]
    ), reasons.REGISTRY_ELIGIBILITY_ATTESTATION_NONCE_NOT
    digest: bytes32 = eip712_domain_separator._hash_typed_data_v4(
        keccak256(
            abi_encode(
                ELIGIBILITY_TYPEHASH,
                attestation.investor,
                attestation.jurisdiction,
                attestation.subdivision,
                attestation.accredited,
                attestation.expires_at,
                attestation.nonce,
                attestation.deadline,
            )
        )
    )
    signer: address = ecdsa._recover_sig(digest, signature)
    assert access_control.hasRole[KYC_PROVIDER_ROLE][
        signer
    ], reasons.REGISTRY_ELIGIBILITY_ATTESTATION_NOT_SIGNED
    self.eligibility_nonce[attestation.investor] = attestation.nonce + 1
    self._write_investor(
        attestation.investor,
        attestation.jurisdiction,
        attestation.subdivision,
        attestation.accredited,
        attestation.expires_at,
        signer,
        True,
    )


@external
def remove_investor(investor: address):
    """
    @notice Removes `investor`'s eligibility record (a freeze stays recorded) and voids
            every attestation signed for the investor before, so the investor cannot
            re-register with one.
    @dev Only `KYC_PROVIDER_ROLE`.
    @param investor The investor's wallet.
    """
    access_control._check_role(KYC_PROVIDER_ROLE, msg.sender)
    word: uint256 = self._investors[investor]
    assert word & EXPIRY_MASK != 0, reasons.REGISTRY_INVESTOR_NOT_REGISTERED
    self._investors[investor] = word & FROZEN_BIT
    self.eligibility_nonce[investor] += 1
    log InvestorRemoved(investor=investor, provider=msg.sender)


@external
def cancel_eligibility_attestations(investor: address):
    """
    @notice Voids every eligibility attestation signed for `investor` and not yet
            submitted (for example one issued by mistake or with a leaked file).
    @dev Only `KYC_PROVIDER_ROLE`. Moves the investor's nonce on by one.
    @param investor The investor's wallet.
    """
    access_control._check_role(KYC_PROVIDER_ROLE, msg.sender)
    next_nonce: uint256 = self.eligibility_nonce[investor] + 1
    self.eligibility_nonce[investor] = next_nonce
    log EligibilityAttestationsCancelled(investor=investor, next_nonce=next_nonce, provider=msg.sender)


@external
def set_custodian(account: address, is_custodian: bool):
    """
    @notice Marks (or unmarks) `account` as a contract that holds shares in custody for
            others: a lending pool. Share tokens then refuse an agent's forced transfer,
            recovery or freeze aimed at the custodian's own balance (it is other
            holders' positions); the agent acts through the custodian instead.
    @dev Only `KYC_PROVIDER_ROLE` (the role that registers pools as holders).
    @param account The custodian contract.
    @param is_custodian True to mark, False to unmark.
    """
    access_control._check_role(KYC_PROVIDER_ROLE, msg.sender)
    assert self.custodian[account] != is_custodian, reasons.REGISTRY_CUSTODIAN_UNCHANGED
    self.custodian[account] = is_custodian
    log CustodianSet(account=account, custodian=is_custodian, provider=msg.sender)


@external
def set_wallet_frozen(investor: address, frozen: bool):
    """
    @notice Freezes or unfreezes a whole wallet: a frozen wallet can neither send nor
            receive shares of any token that uses this registry.
    @dev Only `FREEZER_ROLE`.
    @param investor The wallet.
    @param frozen True to freeze, False to unfreeze.
    """
    access_control._check_role(FREEZER_ROLE, msg.sender)
    assert investor != empty(address), reasons.REGISTRY_CANNOT_FREEZE_ZERO_ADDRESS
    assert not self.custodian[investor], reasons.REGISTRY_CANNOT_FREEZE_CUSTODIAN
    word: uint256 = self._investors[investor]
    assert (word & FROZEN_BIT != 0) != frozen, reasons.REGISTRY_WALLET_ALREADY_FROZEN_STATE
    if frozen:
        self._investors[investor] = word | FROZEN_BIT
    else:
        self._investors[investor] = word & ~FROZEN_BIT
    log WalletFrozen(investor=investor, frozen=frozen, agent=msg.sender)


@external
@view
def investor(account: address) -> Investor:
    """
    @notice The eligibility record of `account`.
    @param account The wallet.
    @return Investor Jurisdiction, accredited, expiry, frozen, whether a record exists,
            and the region of residence (ISO 3166-2 subdivision, 0 when none).
    """
    word: uint256 = self._investors[account]
    return Investor(
        jurisdiction=convert((word >> JURISDICTION_SHIFT) & 65_535, uint16),
        accredited=word & ACCREDITED_BIT != 0,
        expires_at=convert(word & EXPIRY_MASK, uint64),
        frozen=word & FROZEN_BIT != 0,
        registered=word & EXPIRY_MASK != 0,
        subdivision=convert((word >> SUBDIVISION_SHIFT) & SUBDIVISION_MASK, uint24),
    )


@external
@view
def income_code(account: address) -> uint8:
    """
    @notice Whether `account` may be paid the income its shares earned: 0, or
            RECEIVER_FROZEN (wallet frozen), RECEIVER_JURISDICTION_BLOCKED (resident
            where the rules block holders, country or region) or RECEIVER_REGION_UNKNOWN
            (resident in a country with regional rules, no region recorded). An expired
            or removed record does not stop a payment: the income was earned.
    @param account The holder.
    @return uint8 0 when the income may be paid, else the restriction code.
    """
    word: uint256 = self._investors[account]
    if word & FROZEN_BIT != 0:
        return codes.RECEIVER_FROZEN
    if word & EXPIRY_MASK == 0:
        return codes.SUCCESS
    code: uint8 = self._residence_code(word)
    if code == codes.RECEIVER_NOT_ACCREDITED:
        return codes.SUCCESS
    return code


@external
@view
def is_frozen(account: address) -> bool:
    """
    @notice Whether `account`'s whole wallet is frozen.
    @param account The wallet.
    @return bool True while frozen.
    """
    return self._investors[account] & FROZEN_BIT != 0


# ---------------------------------------------------------------------------------
# Jurisdiction table
# ---------------------------------------------------------------------------------


@external
def set_jurisdictions(settings: DynArray[JurisdictionSetting, MAX_JURISDICTION_BATCH]):
    """
    @notice Writes rows of the jurisdiction table (a title and policy of 0 removes
            the row). Normally sent by `ape run jurisdictions apply`.
    @dev Only `RULES_ADMIN_ROLE`. The whole batch reverts on the first invalid row.
    @param settings (ISO 3166-1 numeric code, title status, holder policy, SHA-256 of
           the rules file) per jurisdiction.
    """
    access_control._check_role(RULES_ADMIN_ROLE, msg.sender)
    assert len(settings) != 0, reasons.REGISTRY_EMPTY_JURISDICTION_BATCH
    for s: JurisdictionSetting in settings:
        assert s.jurisdiction != 0 and s.jurisdiction <= 999, reasons.REGISTRY_JURISDICTION_NOT_ISO_3166
        self._check_row(s.title, s.policy, s.rules_hash)
        previous: uint256 = self._jurisdictions[s.jurisdiction]
        was_listed: bool = previous & 255 != 0
        assert was_listed or s.title != codes.TITLE_UNLISTED, reasons.REGISTRY_JURISDICTION_NOT_TABLE_NOTHING
        subdivisions: uint256 = previous >> SUBDIVISIONS_SHIFT
        assert (
            s.title != codes.TITLE_UNLISTED or subdivisions == 0
        ), reasons.REGISTRY_REMOVE_SUBDIVISIONS_FIRST
        epoch: uint256 = (previous >> EPOCH_SHIFT) & EPOCH_MASK
        if previous & 255 != convert(s.title, uint256):
            epoch += 1
        if not was_listed:
            self._listed.append(s.jurisdiction)
            self._listed_position[s.jurisdiction] = len(self._listed)
        elif s.title == codes.TITLE_UNLISTED:
            position: uint256 = self._listed_position[s.jurisdiction]
            last: uint16 = self._listed.pop()
            if last != s.jurisdiction:
                self._listed[position - 1] = last
                self._listed_position[last] = position
            self._listed_position[s.jurisdiction] = 0
        # The epoch survives a removal (bits above the status), so a jurisdiction that is
        # removed and listed again never revives an override recorded before.
        self._jurisdictions[s.jurisdiction] = (
            convert(s.title, uint256)
            | (convert(s.policy, uint256) << POLICY_SHIFT)
            | (epoch << EPOCH_SHIFT)
            | (subdivisions << SUBDIVISIONS_SHIFT)
        )
        self.rules_hash[s.jurisdiction] = s.rules_hash
        log JurisdictionSet(
            jurisdiction=s.jurisdiction,
            title=s.title,
            policy=s.policy,
            rules_hash=s.rules_hash,
            previous_title=convert(previous & 255, uint8),
            previous_policy=convert((previous >> POLICY_SHIFT) & 255, uint8),
            admin=msg.sender,
        )


@external
def set_subdivisions(settings: DynArray[SubdivisionSetting, MAX_JURISDICTION_BATCH]):
    """
    @notice Writes rows of the subdivision table (ISO 3166-2 regions with rules of their
            own, e.g. an embargoed region of a listed country); a title and policy of 0
            removes the row. A region's row only tightens its country's: for a resident
            or a GPU there, the stricter of the two decides. Once a country has a row
            for any region, its residents and GPU locations must carry a region
            (fail closed). Normally sent by `ape run jurisdictions apply`.
    @dev Only `RULES_ADMIN_ROLE`. The country must be in the table first (and its regions
         removed before it is). The whole batch reverts on the first invalid row.
    @param settings (ISO 3166-1 numeric code, subdivision, title status, holder policy,
           SHA-256 of the region's rule) per region.
    """
    access_control._check_role(RULES_ADMIN_ROLE, msg.sender)
    assert len(settings) != 0, reasons.REGISTRY_EMPTY_JURISDICTION_BATCH
    for s: SubdivisionSetting in settings:
        assert s.jurisdiction != 0 and s.jurisdiction <= 999, reasons.REGISTRY_JURISDICTION_NOT_ISO_3166
        assert self._valid_subdivision(convert(s.subdivision, uint256)), reasons.REGISTRY_SUBDIVISION_NOT_ISO_3166_2
        self._check_row(s.title, s.policy, s.rules_hash)
        key: uint256 = (convert(s.jurisdiction, uint256) << 24) | convert(s.subdivision, uint256)
        country: uint256 = self._jurisdictions[s.jurisdiction]
        was_listed: bool = self._subdivisions[key] != 0
        if s.title == codes.TITLE_UNLISTED:
            assert was_listed, reasons.REGISTRY_JURISDICTION_NOT_TABLE_NOTHING
            position: uint256 = self._listed_subdivision_position[key]
            last: uint256 = self._listed_subdivisions.pop()
            if last != key:
                self._listed_subdivisions[position - 1] = last
                self._listed_subdivision_position[last] = position
            self._listed_subdivision_position[key] = 0
            self._jurisdictions[s.jurisdiction] = country - (1 << SUBDIVISIONS_SHIFT)
        elif not was_listed:
            assert country & 255 != 0, reasons.REGISTRY_SUBDIVISION_COUNTRY_NOT_LISTED
            self._listed_subdivisions.append(key)
            self._listed_subdivision_position[key] = len(self._listed_subdivisions)
            self._jurisdictions[s.jurisdiction] = country + (1 << SUBDIVISIONS_SHIFT)
        self._subdivisions[key] = convert(s.title, uint256) | (convert(s.policy, uint256) << POLICY_SHIFT)
        self.subdivision_rules_hash[key] = s.rules_hash
        log SubdivisionSet(
            jurisdiction=s.jurisdiction,
            subdivision=s.subdivision,
            title=s.title,
            policy=s.policy,
            rules_hash=s.rules_hash,
            admin=msg.sender,
        )


@external
@view
def subdivision(code: uint16, subdivision: uint24) -> (uint8, uint8, bytes32):
    """
    @notice One row of the subdivision table.
    @param code ISO 3166-1 numeric code of the country.
    @param subdivision The region (ISO 3166-2, the part after the hyphen in ASCII,
           right-aligned).
    @return uint8 Title status (0: no row, the country's applies; else as `jurisdiction`).
    @return uint8 Holder policy (0: no row; else as `jurisdiction`).
    @return bytes32 SHA-256 of the region's rule.
    """
    key: uint256 = (convert(code, uint256) << 24) | convert(subdivision, uint256)
    word: uint256 = self._subdivisions[key]
    return convert(word & 255, uint8), convert((word >> POLICY_SHIFT) & 255, uint8), self.subdivision_rules_hash[key]


@external
@view
def listed_subdivisions() -> DynArray[uint256, MAX_SUBDIVISIONS]:
    """
    @notice Every row of the subdivision table, as keys `jurisdiction << 24 | subdivision`
            (unordered).
    @return DynArray The keys.
    """
    return self._listed_subdivisions


@external
@view
def jurisdiction(code: uint16) -> (uint8, uint8, bytes32):
    """
    @notice One row of the jurisdiction table.
    @param code ISO 3166-1 numeric code.
    @return uint8 Title status (0 unlisted, 1 recognised, 2 not recognised, 3 unclear,
            4 sanctioned: never recognised, no override).
    @return uint8 Holder policy (0 unlisted, 1 allowed, 2 accredited only, 3 blocked).
    @return bytes32 SHA-256 of the rules file the row was compiled from.
    """
    word: uint256 = self._jurisdictions[code]
    return convert(word & 255, uint8), convert((word >> POLICY_SHIFT) & 255, uint8), self.rules_hash[code]


@external
@view
def listed_jurisdictions() -> DynArray[uint16, MAX_JURISDICTIONS]:
    """
    @notice Every jurisdiction in the table (ISO 3166-1 numeric codes, unordered).
    @return DynArray The codes.
    """
    return self._listed


@external
@view
def title_override_in_force(token: address, jurisdiction: uint16) -> bool:
    """
    @notice Whether `token` has a title override for `jurisdiction` that counts now:
            recorded, and recorded under the jurisdiction's current title status.
    @param token The share token.
    @param jurisdiction ISO 3166-1 numeric code.
    @return bool True when the recorded legal opinion is in force.
    """
    row: uint256 = self._jurisdictions[jurisdiction]
    return row & 255 == convert(codes.TITLE_UNCLEAR, uint256) and self._override_in_force(
        token, jurisdiction, row
    )


@external
def set_title_override(token: address, jurisdiction: uint16, legal_opinion_hash: bytes32):
    """
    @notice Records (or, with an empty hash, clears) the SPV's override of an
            `unclear` title status: the SHA-256 of the legal opinion on which the SPV
            treats tokenized title to its GPUs located in `jurisdiction` as recognised.
    @dev Only an account with the token's `OPERATOR_ROLE`. Clearing an override while
         GPUs sit there stops transfers of the token's shares (except redemption). An
         override counts only while the jurisdiction's title status stays what it was
         when the override was recorded (the title epoch); after any change of status
         the SPV must record it again.
    @param token The SPV's share token.
    @param jurisdiction ISO 3166-1 numeric code.
    @param legal_opinion_hash SHA-256 of the legal opinion, or empty to clear.
    """
    assert token.is_contract, reasons.REGISTRY_TOKEN_NOT_CONTRACT
    assert staticcall IAccessControl(token).hasRole(
        SPV_OPERATOR_ROLE, msg.sender
    ), reasons.REGISTRY_TOKEN_SPV_OPERATOR_RECORD
    row: uint256 = self._jurisdictions[jurisdiction]
    epoch: uint256 = 0
    if legal_opinion_hash != empty(bytes32):
        assert row & 255 != convert(
            codes.TITLE_SANCTIONED, uint256
        ), reasons.REGISTRY_JURISDICTION_SANCTIONED_NO_OVERRIDE
        assert row & 255 == convert(
            codes.TITLE_UNCLEAR, uint256
        ), reasons.REGISTRY_TITLE_OVERRIDE_APPLIES_JURISDICTION
        epoch = ((row >> EPOCH_SHIFT) & EPOCH_MASK) + 1
    assert (
        self.title_override[token][jurisdiction] != legal_opinion_hash
        or self._override_epoch[token][jurisdiction] != epoch
    ), reasons.REGISTRY_TITLE_OVERRIDE_UNCHANGED
    self.title_override[token][jurisdiction] = legal_opinion_hash
    self._override_epoch[token][jurisdiction] = epoch
    log TitleOverrideSet(
        token=token, jurisdiction=jurisdiction, legal_opinion_hash=legal_opinion_hash, operator=msg.sender
    )


# ---------------------------------------------------------------------------------
# Asset locations (called by share tokens for themselves)
# ---------------------------------------------------------------------------------


@external
def register_asset_location(location: uint16, subdivision: uint24 = 0):
    """
    @notice Records one more GPU of the calling token located in `location` (region
            `subdivision`); refused unless tokenized title there is recognised (or the
            SPV recorded an override of an `unclear` status), in the region too where
            the country has regional rows, which also need the region recorded.
    @param location ISO 3166-1 numeric code of the GPU's location.
    @param subdivision ISO 3166-2 region of the GPU's location (the part after the
           hyphen in ASCII, right-aligned), or 0 when none is recorded.
    """
    row: uint256 = self._jurisdictions[location]
    title: uint256 = row & 255
    assert title != convert(codes.TITLE_UNLISTED, uint256), reasons.REGISTRY_GPU_LOCATION_NOT_JURISDICTION
    self._check_location_title(title)
    assert (
        title == convert(codes.TITLE_RECOGNISED, uint256) or self._override_in_force(msg.sender, location, row)
    ), reasons.REGISTRY_TOKENIZED_TITLE_GPU_LOCATION
    sub: uint256 = convert(subdivision, uint256)
    assert sub == 0 or self._valid_subdivision(sub), reasons.REGISTRY_SUBDIVISION_NOT_ISO_3166_2
    if row >> SUBDIVISIONS_SHIFT != 0:
        assert sub != 0, reasons.REGISTRY_GPU_LOCATION_NEEDS_REGION
        self._check_location_title(self._subdivisions[(convert(location, uint256) << 24) | sub] & 255)
        assert self._region_ok(convert(location, uint256), sub, title), reasons.REGISTRY_TOKENIZED_TITLE_GPU_LOCATION
    count: uint256 = self.asset_location_gpus[msg.sender][location]
    if count == 0:
        word: uint256 = self._asset_locations[msg.sender]
        placed: bool = False
        for i: uint256 in range(MAX_ASSET_LOCATIONS):
            if (word >> (16 * i)) & 65_535 == 0:
                self._asset_locations[msg.sender] = word | (convert(location, uint256) << (16 * i))
                placed = True
                break
        assert placed, reasons.REGISTRY_SPV_GPUS_MAY_SIT
    self.asset_location_gpus[msg.sender][location] = count + 1
    key: uint256 = (convert(location, uint256) << 24) | sub
    in_region: uint256 = self.asset_subdivision_gpus[msg.sender][key]
    if in_region == 0:
        lanes: uint256 = self._asset_subdivisions[msg.sender][location]
        placed: bool = False
        for i: uint256 in range(MAX_ASSET_SUBDIVISIONS):
            if (lanes >> (32 * i)) & (2**32 - 1) == 0:
                self._asset_subdivisions[msg.sender][location] = lanes | ((LANE_MARK | sub) << (32 * i))
                placed = True
                break
        assert placed, reasons.REGISTRY_SPV_GPUS_REGIONS
    self.asset_subdivision_gpus[msg.sender][key] = in_region + 1
    log AssetLocationChanged(
        token=msg.sender, jurisdiction=location, gpus=count + 1, subdivision=subdivision, subdivision_gpus=in_region + 1
    )


@external
def release_asset_location(location: uint16, subdivision: uint24 = 0):
    """
    @notice Records one GPU of the calling token fewer in `location`, region
            `subdivision` (retired).
    @param location ISO 3166-1 numeric code of the GPU's location.
    @param subdivision The region it was registered with (0 when none).
    """
    key: uint256 = (convert(location, uint256) << 24) | convert(subdivision, uint256)
    in_region: uint256 = self.asset_subdivision_gpus[msg.sender][key]
    assert in_region != 0, reasons.REGISTRY_NO_GPU_TOKEN_REGISTERED
    count: uint256 = self.asset_location_gpus[msg.sender][location]
    self.asset_location_gpus[msg.sender][location] = count - 1
    self.asset_subdivision_gpus[msg.sender][key] = in_region - 1
    if count == 1:
        word: uint256 = self._asset_locations[msg.sender]
        for i: uint256 in range(MAX_ASSET_LOCATIONS):
            if (word >> (16 * i)) & 65_535 == convert(location, uint256):
                self._asset_locations[msg.sender] = word & ~(65_535 << (16 * i))
                break
    if in_region == 1:
        lanes: uint256 = self._asset_subdivisions[msg.sender][location]
        for i: uint256 in range(MAX_ASSET_SUBDIVISIONS):
            if (lanes >> (32 * i)) & (2**32 - 1) == LANE_MARK | convert(subdivision, uint256):
                self._asset_subdivisions[msg.sender][location] = lanes & ~((2**32 - 1) << (32 * i))
                break
    log AssetLocationChanged(
        token=msg.sender, jurisdiction=location, gpus=count - 1, subdivision=subdivision, subdivision_gpus=in_region - 1
    )


# ---------------------------------------------------------------------------------
# Internal
# ---------------------------------------------------------------------------------


@internal
@view
def _check(
    token: address,
    sender: address,
    receiver: address,
    amount: uint256,
    paused: bool,
    sender_balance: uint256,
    sender_frozen: uint256,
) -> uint8:
    """
    @dev THE transfer check; `jurisdictions.engine.decide` mirrors it line by line.
         Order: pause; asset title (except a transfer to the SPV); sender record;
         receiver record and residence policy; sender balance and frozen amount.
    @param token The share token.
    @param sender Holder losing shares, or the zero address for a mint.
    @param receiver Holder gaining shares, or the zero address for a burn.
    @param amount Share base units.
    @param paused Whether the token is paused.
    @param sender_balance The sender's share balance.
    @param sender_frozen The sender's frozen shares.
    @return uint8 0 when allowed, else the restriction code.
    """
    if paused:
        return codes.TOKEN_PAUSED
    if receiver != empty(address) and not self._title_ok(token):
        # Redemption: shares may still go back to the SPV (an account holding the
        # token's operator role); a mint is never a redemption.
        if sender == empty(address) or not staticcall IAccessControl(token).hasRole(
            SPV_OPERATOR_ROLE, receiver
        ):
            return codes.ASSET_TITLE_NOT_RECOGNISED
    if sender != empty(address):
        word: uint256 = self._investors[sender]
        if word & EXPIRY_MASK == 0:
            return codes.SENDER_NOT_REGISTERED
        if word & EXPIRY_MASK <= block.timestamp:
            return codes.SENDER_ELIGIBILITY_EXPIRED
        if word & FROZEN_BIT != 0:
            return codes.SENDER_FROZEN
    if receiver != empty(address):
        code: uint8 = self._receiver_code(receiver)
        if code != codes.SUCCESS:
            return code
    if sender != empty(address):
        if amount > sender_balance:
            return codes.INSUFFICIENT_BALANCE
        if sender_frozen != 0 and amount > sender_balance - min(sender_frozen, sender_balance):
            return codes.AMOUNT_FROZEN
    return codes.SUCCESS


@internal
@view
def _receiver_code(receiver: address) -> uint8:
    """
    @dev Receiver checks: registered, not expired, not frozen, residence policy.
    @param receiver The account that would receive shares.
    @return uint8 0 or the receiver's restriction code.
    """
    word: uint256 = self._investors[receiver]
    if word & EXPIRY_MASK == 0:
        return codes.RECEIVER_NOT_REGISTERED
    if word & EXPIRY_MASK <= block.timestamp:
        return codes.RECEIVER_ELIGIBILITY_EXPIRED
    if word & FROZEN_BIT != 0:
        return codes.RECEIVER_FROZEN
    return self._residence_code(word)


@internal
@view
def _title_ok(token: address) -> bool:
    """
    @dev Whether every jurisdiction the token's GPUs sit in recognises tokenized title
         (`unclear` counts with the SPV's override; unlisted never counts), and, in a
         jurisdiction with regional rows, every region they sit in too (`_region_ok`).
    @param token The share token.
    @return bool True when the token's shares may move freely.
    """
    word: uint256 = self._asset_locations[token]
    for i: uint256 in range(MAX_ASSET_LOCATIONS):
        if word == 0:
            break
        location: uint256 = word & 65_535
        word = word >> 16
        if location == 0:
            continue
        row: uint256 = self._jurisdictions[convert(location, uint16)]
        title: uint256 = row & 255
        # Inline `_override_in_force` (an internal call costs gas on every transfer).
        if title != convert(codes.TITLE_RECOGNISED, uint256) and (
            title != convert(codes.TITLE_UNCLEAR, uint256)
            or self._override_epoch[token][convert(location, uint16)] != ((row >> EPOCH_SHIFT) & EPOCH_MASK) + 1
        ):
            return False
        if row >> SUBDIVISIONS_SHIFT != 0:
            lanes: uint256 = self._asset_subdivisions[token][convert(location, uint16)]
            for j: uint256 in range(MAX_ASSET_SUBDIVISIONS):
                if lanes == 0:
                    break
                lane: uint256 = lanes & (2**32 - 1)
                lanes = lanes >> 32
                if lane != 0 and not self._region_ok(location, lane & SUBDIVISION_MASK, title):
                    return False
    return True


@internal
@view
def _region_ok(location: uint256, subdivision: uint256, country_title: uint256) -> bool:
    """
    @dev Whether title to a GPU in region `subdivision` of `location` (a country with
         regional rows, whose own title check passed with `country_title`) is
         recognised: a region must be recorded (fail closed); a region without a row
         follows its country; `unclear` counts only where the country is `unclear`
         with the SPV's override in force (the override covers its regions).
    @param location ISO 3166-1 numeric code.
    @param subdivision The region, 0 when none was recorded.
    @param country_title The country's title status.
    @return bool True when the region does not stop transfers.
    """
    if subdivision == 0:
        return False
    title: uint256 = self._subdivisions[(location << 24) | subdivision] & 255
    if title == convert(codes.TITLE_UNLISTED, uint256) or title == convert(codes.TITLE_RECOGNISED, uint256):
        return True
    return title == convert(codes.TITLE_UNCLEAR, uint256) and country_title == convert(
        codes.TITLE_UNCLEAR, uint256
    )


@internal
@view
def _residence_code(word: uint256) -> uint8:
    """
    @dev The residence part of the receiver checks for a packed investor record: the
         country's holder policy, tightened by the region's row when the country has
         regional rows (and refused when such a country's resident has no region).
    @param word The packed investor record.
    @return uint8 0, RECEIVER_JURISDICTION_BLOCKED, RECEIVER_REGION_UNKNOWN or
            RECEIVER_NOT_ACCREDITED.
    """
    jurisdiction: uint256 = (word >> JURISDICTION_SHIFT) & 65_535
    row: uint256 = self._jurisdictions[convert(jurisdiction, uint16)]
    policy: uint256 = (row >> POLICY_SHIFT) & 255
    if policy == convert(codes.POLICY_UNLISTED, uint256) or policy == convert(codes.POLICY_BLOCKED, uint256):
        return codes.RECEIVER_JURISDICTION_BLOCKED
    if row >> SUBDIVISIONS_SHIFT != 0:
        subdivision: uint256 = (word >> SUBDIVISION_SHIFT) & SUBDIVISION_MASK
        if subdivision == 0:
            return codes.RECEIVER_REGION_UNKNOWN
        policy = max(policy, (self._subdivisions[(jurisdiction << 24) | subdivision] >> POLICY_SHIFT) & 255)
        if policy == convert(codes.POLICY_BLOCKED, uint256):
            return codes.RECEIVER_JURISDICTION_BLOCKED
    if policy == convert(codes.POLICY_ACCREDITED_ONLY, uint256) and word & ACCREDITED_BIT == 0:
        return codes.RECEIVER_NOT_ACCREDITED
    return codes.SUCCESS


@internal
@pure
def _check_row(title: uint8, policy: uint8, rules_hash: bytes32):
    """
    @dev Validates a row of the jurisdiction or subdivision table (reverts with the reason).
    @param title Title status.
    @param policy Holder policy.
    @param rules_hash SHA-256 of the rule (empty exactly when the row is removed).
    """
    assert title <= codes.TITLE_SANCTIONED, reasons.REGISTRY_UNKNOWN_TITLE_STATUS
    assert policy <= codes.POLICY_BLOCKED, reasons.REGISTRY_UNKNOWN_HOLDER_POLICY
    assert title != codes.TITLE_SANCTIONED or policy == codes.POLICY_BLOCKED, reasons.REGISTRY_SANCTIONED_NEEDS_BLOCKED_POLICY
    assert (title == codes.TITLE_UNLISTED) == (policy == codes.POLICY_UNLISTED), reasons.REGISTRY_TITLE_POLICY_BOTH_SET
    assert (title == codes.TITLE_UNLISTED) == (
        rules_hash == empty(bytes32)
    ), reasons.REGISTRY_LISTED_JURISDICTION_NEEDS_RULES


@internal
@pure
def _check_location_title(title: uint256):
    """
    @dev Refuses a GPU location (country or region) whose title status stops it:
         not recognised or sanctioned (an unlisted country is refused by the caller).
    @param title Title status.
    """
    assert title != convert(codes.TITLE_NOT_RECOGNISED, uint256), reasons.REGISTRY_GPU_LOCATION_DOES_NOT
    assert title != convert(codes.TITLE_SANCTIONED, uint256), reasons.REGISTRY_GPU_LOCATION_SANCTIONED


@internal
@pure
def _valid_subdivision(subdivision: uint256) -> bool:
    """
    @dev Whether `subdivision` encodes an ISO 3166-2 code's part after the hyphen: one
         to three characters A-Z or 0-9 in ASCII, right-aligned (no gap).
    @param subdivision The encoded region.
    @return bool True when well-formed.
    """
    if subdivision == 0 or subdivision > SUBDIVISION_MASK:
        return False
    rest: uint256 = subdivision
    for i: uint256 in range(3):
        if rest == 0:
            break
        c: uint256 = rest & 255
        if not ((c >= 48 and c <= 57) or (c >= 65 and c <= 90)):
            return False
        rest = rest >> 8
    return True


@internal
@view
def _override_in_force(token: address, location: uint16, row: uint256) -> bool:
    """
    @dev Whether `token`'s title override for `location` was recorded under the
         jurisdiction's current title epoch (so it still counts).
    @param token The share token.
    @param location ISO 3166-1 numeric code.
    @param row The jurisdiction's packed table entry.
    @return bool True while the override counts.
    """
    return self._override_epoch[token][location] == ((row >> EPOCH_SHIFT) & EPOCH_MASK) + 1


@internal
def _write_investor(
    investor: address,
    jurisdiction: uint16,
    subdivision: uint24,
    accredited: bool,
    expires_at: uint64,
    provider: address,
    self_submitted: bool,
):
    """
    @dev Validates and stores an eligibility record, keeping the frozen bit.
    @param investor The investor's wallet.
    @param jurisdiction ISO 3166-1 numeric code of residence.
    @param subdivision ISO 3166-2 region of residence (0: none recorded).
    @param accredited Accredited flag.
    @param expires_at Expiry (unix seconds, in the future).
    @param provider The KYC provider who wrote or signed the record.
    @param self_submitted Whether it came from a submitted attestation.
    """
    assert investor != empty(address), reasons.REGISTRY_INVESTOR_ZERO_ADDRESS
    assert jurisdiction != 0 and jurisdiction <= 999, reasons.REGISTRY_JURISDICTION_NOT_ISO_3166
    assert subdivision == 0 or self._valid_subdivision(
        convert(subdivision, uint256)
    ), reasons.REGISTRY_SUBDIVISION_NOT_ISO_3166_2
    assert convert(expires_at, uint256) > block.timestamp, reasons.REGISTRY_ELIGIBILITY_EXPIRY_NOT_FUTURE
    word: uint256 = (
        (self._investors[investor] & FROZEN_BIT)
        | convert(expires_at, uint256)
        | (convert(jurisdiction, uint256) << JURISDICTION_SHIFT)
        | (convert(subdivision, uint256) << SUBDIVISION_SHIFT)
    )
    if accredited:
        word = word | ACCREDITED_BIT
    self._investors[investor] = word
    log InvestorRegistered(
        investor=investor,
        jurisdiction=jurisdiction,
        accredited=accredited,
        expires_at=expires_at,
        provider=provider,
        self_submitted=self_submitted,
        subdivision=subdivision,
    )
