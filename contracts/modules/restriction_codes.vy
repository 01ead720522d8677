# pragma version ~=0.4.3
"""
@title Transfer Restriction Codes
@custom:contract-name restriction_codes
@license GNU Affero General Public License v3.0 only
@notice ERC-1404 restriction codes and their messages. GENERATED from
        `jurisdictions/codes.py` by `python -m jurisdictions.codes`: do not edit;
        a test fails when this file and the Python definition differ.
"""


# @dev Jurisdiction title recognition: unlisted.
TITLE_UNLISTED: constant(uint8) = 0
# @dev Jurisdiction title recognition: recognised.
TITLE_RECOGNISED: constant(uint8) = 1
# @dev Jurisdiction title recognition: not_recognised.
TITLE_NOT_RECOGNISED: constant(uint8) = 2
# @dev Jurisdiction title recognition: unclear.
TITLE_UNCLEAR: constant(uint8) = 3
# @dev Jurisdiction title recognition: sanctioned.
TITLE_SANCTIONED: constant(uint8) = 4
# @dev Jurisdiction holder policy: unlisted.
POLICY_UNLISTED: constant(uint8) = 0
# @dev Jurisdiction holder policy: allowed.
POLICY_ALLOWED: constant(uint8) = 1
# @dev Jurisdiction holder policy: accredited_only.
POLICY_ACCREDITED_ONLY: constant(uint8) = 2
# @dev Jurisdiction holder policy: blocked.
POLICY_BLOCKED: constant(uint8) = 3
# @dev No restriction: the transfer is allowed.
SUCCESS: constant(uint8) = 0
# @dev The share token is paused: no shares can move until the SPV unpauses it.
TOKEN_PAUSED: constant(uint8) = 1
# @dev These shares are backed by GPUs in a jurisdiction that does not recognise tokenized title; only redemption to the SPV is allowed.
ASSET_TITLE_NOT_RECOGNISED: constant(uint8) = 2
# @dev The sender has no eligibility record in the compliance registry; complete KYC with a trusted provider first.
SENDER_NOT_REGISTERED: constant(uint8) = 3
# @dev The sender's eligibility has expired; renew it with a trusted KYC provider.
SENDER_ELIGIBILITY_EXPIRED: constant(uint8) = 4
# @dev The sender's wallet is frozen by a compliance agent.
SENDER_FROZEN: constant(uint8) = 5
# @dev The receiver has no eligibility record in the compliance registry; they must complete KYC first.
RECEIVER_NOT_REGISTERED: constant(uint8) = 6
# @dev The receiver's eligibility has expired; they must renew it with a trusted KYC provider.
RECEIVER_ELIGIBILITY_EXPIRED: constant(uint8) = 7
# @dev The receiver's wallet is frozen by a compliance agent.
RECEIVER_FROZEN: constant(uint8) = 8
# @dev Investors resident in the receiver's jurisdiction may not hold these shares.
RECEIVER_JURISDICTION_BLOCKED: constant(uint8) = 9
# @dev The receiver's jurisdiction allows only accredited investors to hold these shares, and the receiver is not accredited.
RECEIVER_NOT_ACCREDITED: constant(uint8) = 10
# @dev The amount exceeds the sender's share balance.
INSUFFICIENT_BALANCE: constant(uint8) = 11
# @dev The amount exceeds the sender's unfrozen balance: part of it is frozen by a compliance agent.
AMOUNT_FROZEN: constant(uint8) = 12
# @dev Parts of the receiver's country of residence are under embargo and their record names no region (ISO 3166-2); the KYC provider must record it.
RECEIVER_REGION_UNKNOWN: constant(uint8) = 13
# @dev Longest message `_message` returns.
MAX_MESSAGE_LENGTH: constant(uint256) = 160


@internal
@pure
def _message(code: uint8) -> String[160]:
    """
    @dev The wallet-facing sentence for `code`.
    @param code A restriction code.
    @return String The message (`Unknown restriction code.` if undefined).
    """
    if code == SUCCESS:
        return "No restriction: the transfer is allowed."
    if code == TOKEN_PAUSED:
        return "The share token is paused: no shares can move until the SPV unpauses it."
    if code == ASSET_TITLE_NOT_RECOGNISED:
        return "These shares are backed by GPUs in a jurisdiction that does not recognise tokenized title; only redemption to the SPV is allowed."
    if code == SENDER_NOT_REGISTERED:
        return "The sender has no eligibility record in the compliance registry; complete KYC with a trusted provider first."
    if code == SENDER_ELIGIBILITY_EXPIRED:
        return "The sender's eligibility has expired; renew it with a trusted KYC provider."
    if code == SENDER_FROZEN:
        return "The sender's wallet is frozen by a compliance agent."
    if code == RECEIVER_NOT_REGISTERED:
        return "The receiver has no eligibility record in the compliance registry; they must complete KYC first."
    if code == RECEIVER_ELIGIBILITY_EXPIRED:
        return "The receiver's eligibility has expired; they must renew it with a trusted KYC provider."
    if code == RECEIVER_FROZEN:
        return "The receiver's wallet is frozen by a compliance agent."
    if code == RECEIVER_JURISDICTION_BLOCKED:
        return "Investors resident in the receiver's jurisdiction may not hold these shares."
    if code == RECEIVER_NOT_ACCREDITED:
        return "The receiver's jurisdiction allows only accredited investors to hold these shares, and the receiver is not accredited."
    if code == INSUFFICIENT_BALANCE:
        return "The amount exceeds the sender's share balance."
    if code == AMOUNT_FROZEN:
        return "The amount exceeds the sender's unfrozen balance: part of it is frozen by a compliance agent."
    if code == RECEIVER_REGION_UNKNOWN:
        return "Parts of the receiver's country of residence are under embargo and their record names no region (ISO 3166-2); the KYC provider must record it."
    return "Unknown restriction code."
