"""Every refusal message the contracts revert with: the one list the contracts, the Python
mirrors, the client, the scripts and the tests all take them from.

A wallet shows these sentences when a transaction is refused, the client's pre-checks
refuse with the same sentence before sending anything, and a test that expects a
refusal names the constant, never a copy of the text. The contracts import the
generated Vyper module `contracts/modules/reasons.vy`:

    python -m gpushares.reasons            # rewrite the Vyper module from this file
    python -m gpushares.reasons --check    # exit 1 if it is out of date (the tests do this)

Each message starts with the contract's name; PerpMarket's fit one 32-byte word each
(the market sits at the EIP-170 code size limit, and every message is code at each
revert site), so its client explains them at length (`gpushares.perp`); a constant's
prefix says which contract uses it (POOL_ for LendingPool, PERP_ for PerpMarket, ...).
ERC-1404 transfer restriction messages live in `jurisdictions/codes.py`; snekmate's own
messages ("access_control: account is missing role", ...) in snekmate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

VYPER_MODULE = Path(__file__).resolve().parent.parent / "contracts" / "modules" / "reasons.vy"
#: The contracts whose messages this file defines (a message starts with one of them).
CONTRACTS = ("ComplianceRegistry", "GPUShareToken", "SPVFactory", "OracleHub", "FeedAdapter",
             "KinkedRateModel", "LendingPool", "LendingPoolFactory", "SubscriptionVault",
             "SubscriptionVaultFactory", "PerpMarket",
             "PerpMarketFactory")

# --- ComplianceRegistry --------------------------------------------------------------------
REGISTRY_ADMIN_ZERO_ADDRESS = "ComplianceRegistry: admin is the zero address"
REGISTRY_CANNOT_FREEZE_ZERO_ADDRESS = "ComplianceRegistry: cannot freeze the zero address"
REGISTRY_CANNOT_FREEZE_CUSTODIAN = (
    "ComplianceRegistry: the wallet is a custodian (a lending pool) holding other holders' "
    "positions: freeze the holder's wallet instead, or pause the pool"
)
REGISTRY_SANCTIONED_NEEDS_BLOCKED_POLICY = (
    "ComplianceRegistry: a sanctioned jurisdiction's holder policy must be blocked"
)
REGISTRY_ELIGIBILITY_ATTESTATION_DEADLINE_PASSED = (
    "ComplianceRegistry: eligibility attestation deadline has passed"
)
REGISTRY_ELIGIBILITY_ATTESTATION_NONCE_NOT = (
    "ComplianceRegistry: eligibility attestation nonce is not the investor's next nonce (already "
    "used?)"
)
REGISTRY_ELIGIBILITY_ATTESTATION_NOT_SIGNED = (
    "ComplianceRegistry: eligibility attestation is not signed by a trusted KYC provider"
)
REGISTRY_ELIGIBILITY_EXPIRY_NOT_FUTURE = (
    "ComplianceRegistry: eligibility expiry is not in the future"
)
REGISTRY_EMPTY_JURISDICTION_BATCH = "ComplianceRegistry: empty jurisdiction batch"
REGISTRY_GPU_LOCATION_DOES_NOT = (
    "ComplianceRegistry: GPU location does not recognise tokenized title to physical assets (lex "
    "rei sitae); see its rules citations"
)
REGISTRY_GPU_LOCATION_SANCTIONED = (
    "ComplianceRegistry: GPU location is under sanctions: tokenized title there is never "
    "recognised"
)
REGISTRY_JURISDICTION_SANCTIONED_NO_OVERRIDE = (
    "ComplianceRegistry: the jurisdiction is under sanctions: no legal opinion overrides that"
)
REGISTRY_CUSTODIAN_UNCHANGED = "ComplianceRegistry: custodian flag unchanged"
REGISTRY_GPU_LOCATION_NOT_JURISDICTION = (
    "ComplianceRegistry: GPU location is not in the jurisdiction table: tokenized title there is "
    "not established"
)
REGISTRY_INVESTOR_NOT_REGISTERED = "ComplianceRegistry: investor is not registered"
REGISTRY_INVESTOR_ZERO_ADDRESS = "ComplianceRegistry: investor is the zero address"
REGISTRY_JURISDICTION_NOT_ISO_3166 = (
    "ComplianceRegistry: jurisdiction is not an ISO 3166-1 numeric code"
)
REGISTRY_JURISDICTION_NOT_TABLE_NOTHING = (
    "ComplianceRegistry: jurisdiction is not in the table; nothing to remove"
)
REGISTRY_LISTED_JURISDICTION_NEEDS_RULES = (
    "ComplianceRegistry: a listed jurisdiction needs its rules hash (and a removed one none)"
)
REGISTRY_NO_GPU_TOKEN_REGISTERED = (
    "ComplianceRegistry: no GPU of this token is registered in that location"
)
REGISTRY_SPV_GPUS_MAY_SIT = "ComplianceRegistry: an SPV's GPUs may sit in at most 16 jurisdictions"
REGISTRY_SPV_GPUS_REGIONS = (
    "ComplianceRegistry: an SPV's GPUs may sit in at most 8 regions (ISO 3166-2) of one "
    "jurisdiction"
)
REGISTRY_SUBDIVISION_NOT_ISO_3166_2 = (
    "ComplianceRegistry: subdivision is not an ISO 3166-2 code's part after the hyphen (1 to 3 "
    "characters A-Z or 0-9, ASCII, right-aligned)"
)
REGISTRY_SUBDIVISION_COUNTRY_NOT_LISTED = (
    "ComplianceRegistry: the subdivision's country is not in the jurisdiction table: list the "
    "country first"
)
REGISTRY_REMOVE_SUBDIVISIONS_FIRST = (
    "ComplianceRegistry: the jurisdiction still has subdivision rows: remove them first"
)
REGISTRY_GPU_LOCATION_NEEDS_REGION = (
    "ComplianceRegistry: the GPU's country has regional rules (parts of it are under embargo): "
    "register the GPU with its ISO 3166-2 region"
)
REGISTRY_TITLE_OVERRIDE_APPLIES_JURISDICTION = (
    "ComplianceRegistry: a title override applies only to a jurisdiction whose title status is "
    "unclear"
)
REGISTRY_TITLE_OVERRIDE_UNCHANGED = "ComplianceRegistry: title override unchanged"
REGISTRY_TITLE_POLICY_BOTH_SET = (
    "ComplianceRegistry: title and policy must both be set, or both be 0 to remove"
)
REGISTRY_TOKENIZED_TITLE_GPU_LOCATION = (
    "ComplianceRegistry: tokenized title in the GPU's location is unclear and the SPV has "
    "recorded no legal-opinion override"
)
REGISTRY_TOKEN_NOT_CONTRACT = "ComplianceRegistry: token is not a contract"
REGISTRY_TOKEN_SPV_OPERATOR_RECORD = (
    "ComplianceRegistry: only the token's SPV operator can record a title override"
)
REGISTRY_UNKNOWN_HOLDER_POLICY = "ComplianceRegistry: unknown holder policy"
REGISTRY_UNKNOWN_TITLE_STATUS = "ComplianceRegistry: unknown title status"
REGISTRY_WALLET_ALREADY_FROZEN_STATE = "ComplianceRegistry: wallet already in that frozen state"

# --- GPUShareToken -------------------------------------------------------------------------
TOKEN_ACTIVE_GPU_IMPAIRED = "GPUShareToken: only an active GPU can be impaired"
TOKEN_ADMIN_ZERO_ADDRESS = "GPUShareToken: admin is the zero address"
TOKEN_ALREADY_PAUSED = "GPUShareToken: already paused"
TOKEN_BURN_AMOUNT_ZERO = "GPUShareToken: burn amount is zero"
TOKEN_BURN_SHARES_FIRST_SUPPLY = (
    "GPUShareToken: burn shares first: supply would exceed the remaining GPUs' backing"
)
TOKEN_CUSTODIAN_ACCOUNT = (
    "GPUShareToken: the account holds other holders' shares in custody (a lending pool): act "
    "on the holder's position through it (forced_withdraw, recover_position) or freeze the "
    "holder's wallet, which covers its pooled shares"
)
TOKEN_CANNOT_FREEZE_ZERO_ADDRESS = "GPUShareToken: cannot freeze the zero address"
TOKEN_COMPLIANCE_REGISTRY_NOT_CONTRACT = "GPUShareToken: compliance registry is not a contract"
TOKEN_DISTRIBUTE_AMOUNT_ZERO = "GPUShareToken: distribute amount is zero"
TOKEN_EMPTY_GPU_BATCH = "GPUShareToken: empty GPU batch"
TOKEN_EMPTY_NAME = "GPUShareToken: empty name"
TOKEN_EMPTY_SYMBOL = "GPUShareToken: empty symbol"
TOKEN_FORCED_TRANSFER_ACCOUNT_ITSELF = "GPUShareToken: forced transfer from an account to itself"
TOKEN_FORCED_TRANSFER_AMOUNT_ZERO = "GPUShareToken: forced transfer amount is zero"
TOKEN_FORCED_TRANSFER_EXCEEDS_SENDER = "GPUShareToken: forced transfer exceeds the sender's balance"
TOKEN_FROZEN_AMOUNT_UNCHANGED = "GPUShareToken: frozen amount unchanged"
TOKEN_GPU_ACQUISITION_COST_ZERO = "GPUShareToken: GPU acquisition cost is zero"
TOKEN_GPU_ALREADY_RETIRED = "GPUShareToken: GPU is already retired"
TOKEN_GPU_COMMISSIONING_TIME_FUTURE = "GPUShareToken: GPU commissioning time is in the future"
TOKEN_GPU_COMMISSIONING_TIME_ZERO = "GPUShareToken: GPU commissioning time is zero"
TOKEN_GPU_DATACENTER_EMPTY = "GPUShareToken: GPU datacenter is empty"
TOKEN_GPU_LOCATION_NOT_ISO = "GPUShareToken: GPU location is not an ISO 3166-1 numeric code"
TOKEN_GPU_MODEL_EMPTY = "GPUShareToken: GPU model is empty"
TOKEN_GPU_SERIAL_ALREADY_REGISTERED = "GPUShareToken: GPU serial already registered"
TOKEN_GPU_SERIAL_HASH_ZERO = "GPUShareToken: GPU serial hash is zero"
TOKEN_INCOME_PER_SHARE_OVERFLOW = (
    "GPUShareToken: income per share would overflow; distribute over more shares"
)
TOKEN_INCOME_TOKEN_NOT_CONTRACT = "GPUShareToken: income token is not a contract"
TOKEN_INCOME_TOKEN_TRANSFERFROM_FAILED = "GPUShareToken: income token transferFrom failed"
TOKEN_INCOME_TOKEN_TRANSFER_FAILED = "GPUShareToken: income token transfer failed"
TOKEN_RECOVERY_LOST_WALLET_ACTIVE = (
    "GPUShareToken: freeze or remove the lost wallet in the compliance registry first: "
    "its key may be in someone else's hands"
)
TOKEN_LOST_WALLET_HOLDS_NO = (
    "GPUShareToken: the lost wallet holds no shares, no income and no frozen amount"
)
TOKEN_MINT_AMOUNT_ZERO = "GPUShareToken: mint amount is zero"
TOKEN_MINT_EXCEEDS_ACTIVE_GPUS = "GPUShareToken: mint exceeds the active GPUs' backing"
TOKEN_MINT_EXCEEDS_MAX_SUPPLY = "GPUShareToken: mint exceeds MAX_SUPPLY"
TOKEN_NOTHING_CLAIM = "GPUShareToken: nothing to claim"
TOKEN_NOT_PAUSED = "GPUShareToken: not paused"
TOKEN_NO_INCOME_RECEIVED = "GPUShareToken: no income received"
TOKEN_NO_SHARES_OUTSTANDING_RECEIVE = "GPUShareToken: no shares outstanding to receive income"
TOKEN_PAUSED = "GPUShareToken: paused"
TOKEN_RECEIVER_ZERO_ADDRESS = "GPUShareToken: receiver is the zero address"
TOKEN_RECOVERY_SAME_WALLET = "GPUShareToken: recovery to the same wallet"
TOKEN_SHARES_PER_GPU_ABOVE = "GPUShareToken: shares per GPU above MAX_SUPPLY"
TOKEN_SHARES_PER_GPU_ZERO = "GPUShareToken: shares per GPU is zero"
TOKEN_UNKNOWN_GPU_ID = "GPUShareToken: unknown GPU id"
TOKEN_INCOME_JURISDICTION_BLOCKED = (
    "GPUShareToken: the holder's jurisdiction of residence is blocked: its income is held "
    "until the holder's record changes or an agent recovers the wallet"
)
TOKEN_WALLET_FROZEN_COMPLIANCE_AGENT = (
    "GPUShareToken: wallet frozen by a compliance agent; income keeps accruing until it is "
    "unfrozen or recovered"
)

# --- SPVFactory ----------------------------------------------------------------------------
SPV_FACTORY_BLUEPRINT_NOT_CONTRACT = "SPVFactory: blueprint is not a contract"
SPV_FACTORY_CALLER_NOT_SPV_OPERATOR = "SPVFactory: caller is not the SPV's operator"
SPV_FACTORY_COMPLIANCE_REGISTRY_NOT_CONTRACT = "SPVFactory: compliance registry is not a contract"
SPV_FACTORY_DOCUMENTS_HASH_UNCHANGED = "SPVFactory: documents hash unchanged"
SPV_FACTORY_DOCUMENTS_HASH_ZERO = "SPVFactory: documents hash is zero"
SPV_FACTORY_JURISDICTION_NOT_ISO_3166 = "SPVFactory: jurisdiction is not an ISO 3166-1 numeric code"
SPV_FACTORY_LEGAL_NAME_EMPTY = "SPVFactory: legal name is empty"
SPV_FACTORY_LEI_ALREADY_REGISTERED = "SPVFactory: LEI already registered"
SPV_FACTORY_LEI_NOT_20_CHARACTERS = (
    "SPVFactory: LEI is not 20 characters of 0-9/A-Z with valid check digits"
)
SPV_FACTORY_MOST_100_SPVS_PER = "SPVFactory: at most 100 SPVs per page"
SPV_FACTORY_OPERATOR_UNCHANGED = "SPVFactory: operator unchanged"
SPV_FACTORY_OPERATOR_ZERO_ADDRESS = "SPVFactory: operator is the zero address"
SPV_FACTORY_SPV_IDS_START_1 = "SPVFactory: SPV ids start at 1"
SPV_FACTORY_UNKNOWN_SPV_ID = "SPVFactory: unknown SPV id"

# --- OracleHub -----------------------------------------------------------------------------
HUB_ADMIN_ZERO_ADDRESS = "OracleHub: admin is the zero address"
HUB_BOUNDS_FIT_INT112 = "OracleHub: bounds must fit in int112"
HUB_CONFIG_VERSION_OVERFLOW = "OracleHub: config version overflow"
HUB_FEED_ADAPTER_BLUEPRINT_NOT = "OracleHub: feed adapter blueprint is not a contract"
HUB_FEED_ALREADY_EXISTS = "OracleHub: feed already exists"
HUB_FEED_DESCRIPTION_EMPTY = "OracleHub: feed description is empty"
HUB_FEED_ID_ZERO = "OracleHub: feed id is zero"
HUB_FEWER_SIGNATURES_THRESHOLD = "OracleHub: fewer signatures than the threshold"
HUB_HEARTBEAT_ZERO = "OracleHub: heartbeat is zero"
HUB_INVALID_SIGNATURE = "OracleHub: invalid signature"
HUB_LOG_ROOT_DIFFERS_CHECKPOINT = (
    "OracleHub: log root differs from the checkpoint at the same size (forked log)"
)
HUB_LOG_SIZE_ABOVE_2 = "OracleHub: log size above 2**48"
HUB_MIN_VALUE_ABOVE_MAX = "OracleHub: min value above max value"
HUB_NO_DATA_PRESENT_FEED = "OracleHub: no data present for this feed"
HUB_NO_GPUS_REPORTING = "OracleHub: no GPUs reporting"
HUB_NO_SIGNER_SET_INSTALLED = "OracleHub: no signer set installed yet"
HUB_REPORT_NAMES_ANOTHER_CONFIG = (
    "OracleHub: report names another config version (re-sign with the current signer set)"
)
HUB_REPORT_NOT_NEWER_FEED = (
    "OracleHub: report is not newer than the feed's latest value (stale or replayed)"
)
HUB_REPORT_OBSERVED_FUTURE = "OracleHub: report is observed in the future"
HUB_ROUND_NO_LONGER_KEPT = (
    "OracleHub: round no longer available (only the last 256 rounds are kept)"
)
HUB_ROUND_NOT_YET = "OracleHub: no such round yet (rounds run from 1 to the feed's latest)"
HUB_SIGNATURES_ORDERED_SIGNER_ADDRESS = (
    "OracleHub: signatures must be ordered by signer address, one per signer"
)
HUB_SIGNATURE_NOT_AUTHORISED_SIGNER = (
    "OracleHub: signature is not from an authorised signer (wrong key, chain, hub or config "
    "version)"
)
HUB_SIGNATURE_UPPER_HALF_ORDER = "OracleHub: signature s is in the upper half order (malleable)"
HUB_SIGNERS_SORTED_ASCENDING_WITHOUT = (
    "OracleHub: signers must be sorted ascending, without duplicates or the zero address"
)
HUB_SIGNER_SET_EMPTY = "OracleHub: signer set is empty"
HUB_SPV_TOKEN_ZERO_ADDRESS = "OracleHub: SPV token is the zero address"
HUB_THRESHOLD_EXCEEDS_NUMBER_SIGNERS = "OracleHub: threshold exceeds the number of signers"
HUB_THRESHOLD_ZERO = "OracleHub: threshold is zero"
HUB_THRESHOLD_NOT_MAJORITY = (
    "OracleHub: threshold must be a majority of the signers (k > n/2): two smaller quorums "
    "could sign different reports for one log position"
)
HUB_UNKNOWN_DISABLED_FEED = "OracleHub: unknown or disabled feed"
HUB_UNKNOWN_FEED = "OracleHub: unknown feed"
HUB_UTILISATION_ABOVE_10_000 = "OracleHub: utilisation above 10,000 bps"
HUB_UTILISATION_PERIOD_EMPTY = "OracleHub: utilisation period is empty"
HUB_UTILISATION_PERIOD_ENDS_FUTURE = "OracleHub: utilisation period ends in the future"
HUB_UTILISATION_PERIOD_OVERLAPS_LATEST = (
    "OracleHub: utilisation period overlaps the latest reported one (stale or replayed)"
)
HUB_VALUE_OUTSIDE_FEED_BOUNDS = "OracleHub: value is outside the feed's bounds"

# --- FeedAdapter ---------------------------------------------------------------------------
FEED_FEED_ID_ZERO = "FeedAdapter: feed id is zero"
FEED_HUB_ZERO_ADDRESS = "FeedAdapter: hub is the zero address"

# --- KinkedRateModel -----------------------------------------------------------------------
RATE_MODEL_KINK_STRICTLY_BETWEEN_0 = "KinkedRateModel: kink must be strictly between 0 and 100 %"
RATE_MODEL_MAXIMUM_RATE_ABOVE_1 = "KinkedRateModel: maximum rate above 1,000 % a year"

# --- LendingPool ---------------------------------------------------------------------------
POOL_ABOVE_2_128 = "LendingPool: above 2**128"
POOL_BORROWER_ZERO_ADDRESS = "LendingPool: borrower is the zero address"
POOL_BORROW_PUT_LOAN_ABOVE = "LendingPool: borrow would put the loan above the max LTV"
POOL_BORROW_ZERO = "LendingPool: borrow of zero"
POOL_COLLATERAL_PRICE_NOT_POSITIVE = "LendingPool: collateral price is not positive"
POOL_COLLATERAL_PRICE_STALE_OLDER = (
    "LendingPool: collateral price is stale (older than the feed heartbeat)"
)
POOL_COLLATERAL_TRANSFERFROM_FAILED = "LendingPool: collateral transferFrom failed"
POOL_COLLATERAL_TRANSFER_FAILED = "LendingPool: collateral transfer failed"
POOL_DEBT_ABOVE_2_128 = "LendingPool: debt above 2**128"
POOL_DEPOSIT_ABOVE_2_128 = "LendingPool: deposit above 2**128 assets"
POOL_DEPOSIT_MINTS_ZERO_VAULT = "LendingPool: deposit mints zero vault shares"
POOL_DEPOSIT_ZERO = "LendingPool: deposit of zero"
POOL_INCOME_TOKEN_TRANSFER_FAILED = "LendingPool: income token transfer failed"
POOL_INDEX_ABOVE_2_192 = "LendingPool: index above 2**192"
POOL_LIQUIDATION_ROUNDS_NOTHING = "LendingPool: liquidation rounds to nothing"
POOL_LOAN_ASSET_TRANSFERFROM_FAILED = "LendingPool: loan asset transferFrom failed"
POOL_LOAN_ASSET_TRANSFER_FAILED = "LendingPool: loan asset transfer failed"
POOL_LOAN_HEALTHY_UNDER_LIQUIDATION = (
    "LendingPool: loan is healthy (at or under the liquidation LTV)"
)
POOL_MAX_LTV_ABOVE_0 = "LendingPool: max LTV must be above 0 and below the liquidation LTV"
POOL_MINT_ZERO_SHARES = "LendingPool: mint of zero shares"
POOL_NOT_ENOUGH_IDLE_LIQUIDITY = "LendingPool: not enough idle liquidity (wait for repayments)"
POOL_NOT_ENOUGH_LIQUIDITY_POOL = "LendingPool: not enough liquidity in the pool"
POOL_NO_COLLATERAL_INCOME_CLAIM = "LendingPool: no collateral income to claim"
POOL_NO_DEBT_REPAY = "LendingPool: no debt to repay"
POOL_NO_RESERVES_AVAILABLE_COLLECT = "LendingPool: no reserves available to collect"
POOL_PAUSED_GUARDIAN_REPAY_STILL = "LendingPool: paused by the guardian (repay still works)"
POOL_PAUSE_UNCHANGED = "LendingPool: pause unchanged"
POOL_REDEMPTION_WORTH_ZERO_ASSETS = "LendingPool: redemption worth zero assets"
POOL_REPAY_AMOUNT_ROUNDS_ZERO = "LendingPool: repay amount rounds to zero debt"
POOL_REPAY_ZERO = "LendingPool: repay of zero"
POOL_RESERVE_FACTOR_ABOVE_50 = "LendingPool: reserve factor above 50 %"
POOL_TREASURY_ZERO_ADDRESS = "LendingPool: treasury is the zero address"
POOL_NOT_FORCED_TRANSFER_AGENT = (
    "LendingPool: only the share token's forced-transfer agent seizes pooled collateral"
)
POOL_NOT_RECOVERY_AGENT = "LendingPool: only the share token's recovery agent moves a position"
POOL_SEIZURE_TO_ANOTHER_WALLET = "LendingPool: seized collateral goes to another wallet"
POOL_NOTHING_TO_RECOVER = "LendingPool: the lost wallet has no position here"
POOL_CUSTODIAN_RECEIVES_NO_POSITION = (
    "LendingPool: a custodian (a lending pool) cannot receive a holder's shares or position"
)
POOL_RECOVERY_LOST_WALLET_ACTIVE = (
    "LendingPool: freeze or remove the lost wallet in the compliance registry first: its key "
    "may be in someone else's hands"
)
POOL_RECOVER_WALLET_FIRST = (
    "LendingPool: the lost wallet's freeze covers this position: recover the wallet on the "
    "share token first (recover_wallet moves the freeze)"
)
POOL_WITHDRAWAL_EXCEEDS_COLLATERAL = "LendingPool: withdrawal exceeds the collateral"
POOL_WITHDRAWAL_PUT_LOAN_ABOVE = "LendingPool: withdrawal would put the loan above the max LTV"
POOL_WITHDRAWAL_ZERO = "LendingPool: withdrawal of zero"
POOL_ZERO_COLLATERAL = "LendingPool: zero collateral"

# --- LendingPoolFactory --------------------------------------------------------------------
POOL_FACTORY_BLUEPRINT_NOT_CONTRACT = "LendingPoolFactory: blueprint is not a contract"
POOL_FACTORY_COLLATERAL_NOT_18_DECIMAL = (
    "LendingPoolFactory: collateral is not an 18-decimal share token"
)
POOL_FACTORY_COLLATERAL_TOKEN_NOT_CONTRACT = (
    "LendingPoolFactory: collateral token is not a contract"
)
POOL_FACTORY_EMPTY_VAULT_NAME_SYMBOL = "LendingPoolFactory: empty vault name or symbol"
POOL_FACTORY_LIQUIDATION_LTV_ABOVE_0 = (
    "LendingPoolFactory: liquidation LTV must be above 0 and at most 95 %"
)
POOL_FACTORY_LOAN_ASSET_MORE_18 = "LendingPoolFactory: loan asset has more than 18 decimals"
POOL_FACTORY_LOAN_ASSET_NOT_CONTRACT = "LendingPoolFactory: loan asset is not a contract"
POOL_FACTORY_MARKET_ALREADY_EXISTS = "LendingPoolFactory: market already exists"
POOL_FACTORY_MAX_LTV_ABOVE_0 = (
    "LendingPoolFactory: max LTV must be above 0 and below the liquidation LTV"
)
POOL_FACTORY_PRICE_FEED_MORE_18 = "LendingPoolFactory: price feed has more than 18 decimals"
POOL_FACTORY_PRICE_FEED_NOT_CONTRACT = "LendingPoolFactory: price feed is not a contract"
POOL_FACTORY_RATE_MODEL_NOT_CONTRACT = "LendingPoolFactory: rate model is not a contract"
POOL_FACTORY_RESERVE_FACTOR_ABOVE_50 = "LendingPoolFactory: reserve factor above 50 %"
POOL_FACTORY_TREASURY_ZERO_ADDRESS = "LendingPoolFactory: treasury is the zero address"

# --- PerpMarket ----------------------------------------------------------------------------
PERP_ADMIN_ZERO_ADDRESS = "PerpMarket: admin is zero"
PERP_AMOUNT_TOO_LARGE = "PerpMarket: amount too large"
PERP_FEES_ABOVE_THEIR_CAPS = "PerpMarket: fee above its cap"
PERP_FEE_RECIPIENT_ZERO_ADDRESS = "PerpMarket: zero fee recipient"
PERP_FILL_PRICE_NOT_POSITIVE = "PerpMarket: fill price <= 0"
PERP_FILL_PRICE_WORSE_ACCEPTABLE = "PerpMarket: fill past the limit"
PERP_INDEX_PRICE_NOT_POSITIVE = "PerpMarket: round price <= 0"
PERP_INDEX_PRICE_STALE_OR_HALTED = "PerpMarket: index stale/halted"
PERP_ORDER_SIZE_TOO_LARGE = "PerpMarket: order too large"
PERP_ONLY_THE_MARKET = "PerpMarket: only the market"
PERP_SEND_MORE_GAS = "PerpMarket: send more gas"
PERP_ORDER_ALREADY_PENDING = "PerpMarket: an order is pending"
PERP_MARGIN_DOES_NOT_COVER_KEEPER = "PerpMarket: margin < keeper fee"
PERP_NO_PENDING_ORDER = "PerpMarket: no pending order"
PERP_ORDER_NOT_EXECUTABLE_YET = "PerpMarket: order too early"
PERP_ORDER_EXPIRED_CANCEL = "PerpMarket: order expired"
PERP_ORDER_NOT_EXPIRED = "PerpMarket: order not expired"
PERP_NO_ORACLE_ROUND_AFTER = "PerpMarket: await next round"
PERP_TOO_MANY_ROUNDS_SINCE = "PerpMarket: too many rounds"
PERP_FREE_CASH_DOES_NOT_COVER = "PerpMarket: cash held for fees"
PERP_FEED_MOVE_REACHES_MAINTENANCE = "PerpMarket: move limit too wide"
PERP_ORDER_WINDOW_OUT_OF_RANGE = "PerpMarket: bad order window"
PERP_INSURANCE_DEFICIT_RECORDED_NEW = "PerpMarket: deficit: risk paused"
PERP_INSURANCE_FUND_EXHAUSTED_NEW = "PerpMarket: insurance exhausted"
PERP_KEEPER_FEE_FUNDING_PARAMETER = "PerpMarket: keeper/funding cap"
PERP_LONG_OPEN_INTEREST_CAP = "PerpMarket: long OI cap reached"
PERP_MARGIN_ASSET_TRANSFER_FAILED = "PerpMarket: transfer failed"
PERP_MARGIN_BELOW_INITIAL_MARGIN = "PerpMarket: below initial margin"
PERP_MARGIN_DOES_NOT_COVER = "PerpMarket: margin < fee+premium"
PERP_NEED_0_MAINTENANCE_LIQUIDATION = "PerpMarket: margins out of order"
PERP_NEW_RISK_PAUSED_GUARDIAN = "PerpMarket: new risk paused"
PERP_NOT_ENOUGH_CASH_KEEPER = "PerpMarket: no cash for keeper"
PERP_NO_FEES_COLLECT = "PerpMarket: no fees to collect"
PERP_NO_OPEN_POSITION = "PerpMarket: no open position"
PERP_POSITION_ABOVE_MAINTENANCE_MARGIN = "PerpMarket: position is healthy"
PERP_POSITION_BELOW_MAINTENANCE_MARGIN = "PerpMarket: liquidatable"
PERP_REDUCTION_LEAVE_POSITION_BELOW = "PerpMarket: reduction too risky"
PERP_RISK_PARAMETERS_NOT_SET = "PerpMarket: risk params not set"
PERP_SHORT_OPEN_INTEREST_CAP = "PerpMarket: short OI cap reached"
PERP_SKEW_SCALE_1_2 = "PerpMarket: skew/OI out of range"
PERP_WITHDRAWAL_EXCEEDS_MARGIN = "PerpMarket: exceeds the margin"
PERP_WITHDRAWAL_LEAVE_LESS_INITIAL = "PerpMarket: keep initial margin"
PERP_ZERO_AMOUNT = "PerpMarket: zero amount"
PERP_ZERO_SIZE = "PerpMarket: zero size"

# --- SubscriptionVault ---------------------------------------------------------------------
VAULT_TOKEN_OR_FEED_NOT_CONTRACT = (
    "SubscriptionVault: the share token or the NAV feed is not a contract"
)
VAULT_ZERO_ADDRESS = "SubscriptionVault: zero address"
VAULT_FEE_TOO_HIGH = "SubscriptionVault: redemption fee above 1,000 basis points (10 %)"
VAULT_NOTICE_TOO_LONG = "SubscriptionVault: notice period longer than one year"
VAULT_CANCEL_AFTER_BOUNDS = "SubscriptionVault: cancel_after must be between 1 and 90 days"
VAULT_FEED_DECIMALS = (
    "SubscriptionVault: the NAV feed must have 8 decimals and the stablecoin at most 26"
)
VAULT_OPERATOR_IS_SELF = "SubscriptionVault: a controller cannot be its own operator"
VAULT_ZERO_AMOUNT = "SubscriptionVault: amount is zero"
VAULT_AMOUNT_TOO_LARGE = "SubscriptionVault: amount too large (above 2**128 - 1 in total)"
VAULT_ASSET_TRANSFER_FAILED = "SubscriptionVault: stablecoin transfer failed"
VAULT_EXCEEDS_PENDING = (
    "SubscriptionVault: amount is zero or above the controller's pending request"
)
VAULT_NAV_NOT_AFTER_REQUEST = (
    "SubscriptionVault: no NAV published since the request: fulfil at the next NAV (forward "
    "pricing)"
)
VAULT_NO_SHARE_AT_NAV = "SubscriptionVault: the amount buys no share unit at this NAV"
VAULT_EXCEEDS_CLAIMABLE = (
    "SubscriptionVault: amount is zero or above what the controller can claim"
)
VAULT_NOTHING_PENDING = "SubscriptionVault: the controller has no pending request"
VAULT_NOTICE_NOT_OVER = "SubscriptionVault: the redemption's notice period has not passed"
VAULT_REDEMPTION_FUNDS_SHORT = (
    "SubscriptionVault: redemption funds are short: fund_redemptions first"
)
VAULT_EXCEEDS_REDEMPTION_FUNDS = (
    "SubscriptionVault: amount is zero or above the unallocated redemption funds"
)
VAULT_NO_INCOME = "SubscriptionVault: no income owed to the controller"
VAULT_ASYNC_NO_PREVIEW = (
    "SubscriptionVault: asynchronous vault (ERC-7540): the price is set at fulfilment, no preview"
)
VAULT_NOT_OWNER_OR_OPERATOR = "SubscriptionVault: caller is not the owner or its operator"
VAULT_NOT_CONTROLLER_OR_OPERATOR = (
    "SubscriptionVault: caller is not the controller or its operator"
)
VAULT_REQUEST_LOCKED = (
    "SubscriptionVault: a request is binding until cancel_after has passed since it without "
    "a fulfilment"
)
VAULT_REQUEST_PENDING = (
    "SubscriptionVault: the controller has a request of this kind pending: wait for its "
    "fulfilment (or cancel it after cancel_after)"
)
VAULT_NAV_NOT_POSITIVE = "SubscriptionVault: the NAV feed's answer is not positive"
VAULT_NAV_STALE = "SubscriptionVault: the NAV is older than the feed's heartbeat"

# --- SubscriptionVaultFactory ----------------------------------------------------------------
VAULT_FACTORY_BLUEPRINT_NOT_CONTRACT = "SubscriptionVaultFactory: blueprint is not a contract"
VAULT_FACTORY_NOT_TOKEN_OPERATOR = (
    "SubscriptionVaultFactory: caller is not an operator (OPERATOR_ROLE) of the share token"
)
VAULT_FACTORY_VAULT_EXISTS = "SubscriptionVaultFactory: the share token already has a vault"

# --- PerpMarketFactory ---------------------------------------------------------------------
PERP_FACTORY_ADMIN_ACCOUNT_OTHER_FACTORY = (
    "PerpMarketFactory: admin must be an account other than the factory"
)
PERP_FACTORY_BLUEPRINT_NOT_CONTRACT = "PerpMarketFactory: blueprint is not a contract"
PERP_FACTORY_FEE_RECIPIENT_ZERO_ADDRESS = "PerpMarketFactory: fee recipient is the zero address"
PERP_FACTORY_INDEX_FEED_MORE_18 = "PerpMarketFactory: index feed has more than 18 decimals"
PERP_FACTORY_INDEX_FEED_NOT_CONTRACT = "PerpMarketFactory: index feed is not a contract"
PERP_FACTORY_MARGIN_ASSET_MORE_18 = "PerpMarketFactory: margin asset has more than 18 decimals"
PERP_FACTORY_MARGIN_ASSET_NOT_CONTRACT = "PerpMarketFactory: margin asset is not a contract"
PERP_FACTORY_MARKET_ALREADY_EXISTS = "PerpMarketFactory: market already exists"


# --- snekmate's own messages (the library's; not generated, listed for the Python side) -------
ACCESS_CONTROL_MISSING_ROLE = "access_control: account is missing role"
ERC20_INSUFFICIENT_BALANCE = "erc20: transfer amount exceeds balance"
ERC20_INSUFFICIENT_ALLOWANCE = "erc20: insufficient allowance"
#: EIP-2612 `permit` (share token and pool vault shares): the deadline has passed.
ERC20_EXPIRED_DEADLINE = "erc20: expired deadline"
#: EIP-2612 `permit`: not signed by the owner (or over other values, or a used nonce).
ERC20_INVALID_SIGNATURE = "erc20: invalid signature"


# --- the generated Vyper module -------------------------------------------------------------


def messages() -> dict[str, str]:
    """Every refusal message of the project's contracts by constant name, in the order of
    this file (snekmate's are not the project's: they stay out of the Vyper module)."""
    return {name: value for name, value in globals().items()
            if name.isupper() and isinstance(value, str)
            and value.split(": ", 1)[0] in CONTRACTS}


def _check_definitions() -> None:
    seen: dict[str, str] = {}
    for name, text in messages().items():
        if not text.isascii() or '"' in text or "\\" in text:
            raise ValueError(f"{name}: a message must be plain ASCII without quotes")
        if text in seen:
            raise ValueError(f"{name} repeats {seen[text]}: one constant per message")
        seen[text] = name


def vyper_module() -> str:
    """The text of `contracts/modules/reasons.vy`."""
    _check_definitions()
    lines = [
        "# pragma version ~=0.4.3",
        '"""',
        "@title Revert Reasons",
        "@custom:contract-name reasons",
        "@license GNU Affero General Public License v3.0 only",
        "@notice Every refusal message the contracts revert with. GENERATED from",
        "        `gpushares/reasons.py` by `python -m gpushares.reasons`: do not edit; a test",
        "        fails when this file and the Python list differ.",
        '"""',
        "",
    ]
    contract = ""
    for name, text in messages().items():
        owner = text.split(": ", 1)[0]
        if owner != contract:
            contract = owner
            lines += ["", f"# @dev {owner}"]
        lines.append(f'{name}: constant(String[{len(text)}]) = "{text}"')
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if contracts/modules/reasons.vy is out of date")
    args = parser.parse_args(argv)
    text = vyper_module()
    if args.check:
        current = VYPER_MODULE.read_text(encoding="utf-8") if VYPER_MODULE.exists() else ""
        if current != text:
            print(f"{VYPER_MODULE} is out of date: run `python -m gpushares.reasons`",
                  file=sys.stderr)
            return 1
        return 0
    VYPER_MODULE.write_text(text, encoding="utf-8")
    print(f"wrote {VYPER_MODULE} ({len(messages())} messages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
