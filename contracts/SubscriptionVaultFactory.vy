# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Subscription Vault Factory
@custom:contract-name SubscriptionVaultFactory
@license GNU Affero General Public License v3.0 only
@notice Deploys one ERC-7540 `SubscriptionVault` per SPV share token from an ERC-5202
        blueprint, for an operator of that token, and keeps the list. The vault can
        issue and burn shares only once the token's admin grants it the token's
        OPERATOR_ROLE, and hold them only once a KYC provider registers it as an
        eligible holder and a custodian (`ape run spv subscriptions open` does all
        three when the accounts may).
@custom:security The factory holds no funds and no role in the vaults it deployed.
"""


from .modules import reasons


# @dev The share token's operator role (who may open its vault).
interface IAccessControl:
    def hasRole(role: bytes32, account: address) -> bool: view


TOKEN_OPERATOR_ROLE: constant(bytes32) = keccak256("OPERATOR_ROLE")

# @dev ERC-5202 blueprint of SubscriptionVault.
vault_blueprint: public(immutable(address))
# @dev The vault of each share token (zero: none yet).
vault_of: public(HashMap[address, address])
# @dev Vaults in creation order, ids 1..vault_count.
vault_at: public(HashMap[uint256, address])
# @dev Number of vaults created.
vault_count: public(uint256)


# @dev Emitted when a vault is created.
event VaultCreated:
    token: indexed(address)
    vault: indexed(address)
    creator: indexed(address)
    nav_feed: address
    treasury: address
    notice_period: uint256
    redemption_fee_bps: uint256
    cancel_after: uint256


@deploy
@payable
def __init__(vault_blueprint_: address):
    """
    @notice Deploys the factory.
    @param vault_blueprint_ Address of the SubscriptionVault ERC-5202 blueprint.
    """
    assert vault_blueprint_.is_contract, reasons.VAULT_FACTORY_BLUEPRINT_NOT_CONTRACT
    vault_blueprint = vault_blueprint_


@external
def create_vault(
    token: address,
    nav_feed: address,
    treasury: address,
    notice_period: uint256,
    redemption_fee_bps: uint256,
    cancel_after: uint256,
) -> address:
    """
    @notice Deploys the subscription vault of `token`; the caller (an operator of the
            token) becomes its admin and operator.
    @param token The SPV's GPUShareToken.
    @param nav_feed The SPV's NAV feed (a FeedAdapter: USD per share, 8 decimals).
    @param treasury Where subscription money goes.
    @param notice_period Seconds a redemption waits before fulfilment.
    @param redemption_fee_bps Redemption fee in basis points (at most 1,000).
    @param cancel_after Seconds after which an unfulfilled request may be cancelled.
    @return address The new vault.
    """
    assert token.is_contract and staticcall IAccessControl(token).hasRole(
        TOKEN_OPERATOR_ROLE, msg.sender
    ), reasons.VAULT_FACTORY_NOT_TOKEN_OPERATOR
    assert self.vault_of[token] == empty(address), reasons.VAULT_FACTORY_VAULT_EXISTS
    vault: address = create_from_blueprint(
        vault_blueprint,
        token,
        nav_feed,
        treasury,
        msg.sender,
        notice_period,
        redemption_fee_bps,
        cancel_after,
    )
    count: uint256 = self.vault_count + 1
    self.vault_count = count
    self.vault_at[count] = vault
    self.vault_of[token] = vault
    log VaultCreated(
        token=token,
        vault=vault,
        creator=msg.sender,
        nav_feed=nav_feed,
        treasury=treasury,
        notice_period=notice_period,
        redemption_fee_bps=redemption_fee_bps,
        cancel_after=cancel_after,
    )
    return vault
