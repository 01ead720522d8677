# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Oracle Hub
@custom:contract-name OracleHub
@license GNU Affero General Public License v3.0 only
@notice Stores the GPU oracle's attested values: price feeds (8 decimals; USD per
        GPU-hour for index feeds) and per-SPV fleet utilisation. A value is accepted
        only as an EIP-712 report signed by at least `threshold` distinct members of
        the signer set (at most 31). Anyone may relay a signed report; the signatures
        are the authority.
        - The signer set and threshold change only as a whole (`set_signers`), by
          `ORACLE_ADMIN_ROLE`; every change bumps `config_version`, which every report
          names, so a report signed for an older set is refused.
        - Each price feed has bounds, a maximum move per update (a larger move is
          refused with a `PriceMoveRefused` event and halts the feed for trading until
          the next accepted report), and a heartbeat
          consumers check staleness against. One `FeedAdapter` per feed (deployed from a
          blueprint) exposes it through Chainlink's AggregatorV3 interface.
        - Storage: the latest value, observation time and round id of a feed share one
          slot; the last `RING_SIZE` rounds stay readable through `get_round_data`, kept
          in a fixed ring so a steady-state update overwrites slots instead of creating
          them.
        - Every accepted report carries the attestation log's (size, root) when it was
          signed; the hub keeps the newest checkpoint and emits it with the report's
          event (`PriceUpdated` / `UtilisationUpdated` carry `log_size`, `log_root`), so
          the off-chain log is anchored on-chain and auditors can check that the log
          only ever grew.
        The report types are defined once in Python (`oracle/attest.py`); the type
        strings below are the same bytes, and a test compares them.
@custom:security Values are only as good as the signer set: k colluding signers can
                 publish any value inside a feed's bounds and move limit. The hub does
                 not verify the log's consistency between checkpoints (that needs the
                 log); it only refuses a different root at the same size. Auditors run
                 `gpu-oracle verify` against the chain for the rest.
"""


from snekmate.auth import access_control
initializes: access_control

from snekmate.utils import eip712_domain_separator
initializes: eip712_domain_separator

from .interfaces import IOracleHub
from .modules import reasons
implements: IOracleHub


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


# @dev Role that changes the signer set and the feeds.
ORACLE_ADMIN_ROLE: public(constant(bytes32)) = keccak256("ORACLE_ADMIN_ROLE")

# @dev The EIP-712 report types (the same strings as `oracle/attest.py`).
PRICE_REPORT_TYPE: public(constant(String[200])) = "PriceReport(bytes32 feedId,int256 value,uint256 confidence,uint64 observedAt,uint32 methodologyVersion,bytes32 inputsHash,uint64 logSize,bytes32 logRoot,uint64 configVersion)"
UTILISATION_REPORT_TYPE: public(constant(String[220])) = "UtilisationReport(address spvToken,uint64 periodStart,uint64 periodEnd,uint32 gpuCount,uint16 utilisationBps,uint256 rentalRevenue,bytes32 inputsHash,uint64 logSize,bytes32 logRoot,uint64 configVersion)"
PRICE_REPORT_TYPEHASH: public(constant(bytes32)) = keccak256(PRICE_REPORT_TYPE)
UTILISATION_REPORT_TYPEHASH: public(constant(bytes32)) = keccak256(UTILISATION_REPORT_TYPE)

# @dev Most signers in the set.
MAX_SIGNERS: public(constant(uint256)) = 31
# @dev Rounds per feed that stay readable through `get_round_data` (a ring).
RING_SIZE: public(constant(uint256)) = 256
# @dev Decimals of every price feed (the Chainlink convention for USD feeds).
PRICE_DECIMALS: public(constant(uint8)) = 8
# @dev Utilisation is in basis points of the period.
MAX_BPS: constant(uint256) = 10_000
# @dev Bounds are stored as int112 (|bound| < 2.5e33, i.e. 2.5e25 USD at 8 decimals).
MIN_BOUND: constant(int256) = -(2**111)
MAX_BOUND: constant(int256) = 2**111 - 1
# @dev secp256k1 group order / 2: a signature with a larger `s` is the malleable twin.
HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168

# @dev Runtime code of a signer-set store: a STOP byte, then 31 ABI words (addresses).
SIGNER_STORE_SIZE: constant(uint256) = 993
# @dev Initcode prefix that deploys the bytes after it as the store's runtime code:
#      PUSH2 993, DUP1, PUSH1 10, PUSH0, CODECOPY, PUSH0, RETURN, then the STOP byte.
SIGNER_STORE_INITCODE: constant(Bytes[11]) = b"\x61\x03\xe1\x80\x60\x0a\x5f\x39\x5f\xf3\x00"

# @dev The low 255 bits of an EIP-2098 `vs` word: the signature's s.
MAX_S: constant(uint256) = 2**255 - 1

MASK8: constant(uint256) = 2**8 - 1
MASK16: constant(uint256) = 2**16 - 1
MASK32: constant(uint256) = 2**32 - 1
MASK48: constant(uint256) = 2**48 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK112: constant(uint256) = 2**112 - 1
MASK128: constant(uint256) = 2**128 - 1

# @dev Feed flags (bits 240..247 of a feed's config word).
FEED_EXISTS: constant(uint256) = 1
FEED_ENABLED: constant(uint256) = 2
# @dev Set when a validly signed report was refused for moving too far, cleared by the
#      next accepted report: the latest value is then known to be wrong, and a market
#      must not trade on it (`trading_state`).
FEED_HALTED: constant(uint256) = 4

# @dev The feed adapter blueprint's ERC-5202 preamble length.
BLUEPRINT_CODE_OFFSET: constant(uint256) = 3


# @dev A price report (field order and types of `PRICE_REPORT_TYPE`).
struct PriceReport:
    feed_id: bytes32
    value: int256
    confidence: uint256
    observed_at: uint64
    methodology_version: uint32
    inputs_hash: bytes32
    log_size: uint64
    log_root: bytes32
    config_version: uint64


# @dev A utilisation report (field order and types of `UTILISATION_REPORT_TYPE`).
struct UtilisationReport:
    spv_token: address
    period_start: uint64
    period_end: uint64
    gpu_count: uint32
    utilisation_bps: uint16
    rental_revenue: uint256
    inputs_hash: bytes32
    log_size: uint64
    log_root: bytes32
    config_version: uint64


# @dev One secp256k1 signature over a report's EIP-712 digest, in the EIP-2098
#      compact form: `vs` is s with the recovery bit (v - 27) in its top bit.
struct Signature:
    r: bytes32
    vs: bytes32


# @dev A feed's settings as `feed` returns them.
struct FeedView:
    exists: bool
    enabled: bool
    min_answer: int256
    max_answer: int256
    max_move_bps: uint16
    heartbeat: uint32
    description: String[64]
    adapter: address
    latest_round: uint64


# @dev The latest utilisation report of one SPV token.
struct UtilisationView:
    period_start: uint64
    period_end: uint64
    gpu_count: uint32
    utilisation_bps: uint16
    rental_revenue: uint256
    round_id: uint64


# @dev The ERC-5202 blueprint every `FeedAdapter` is created from.
FEED_ADAPTER_BLUEPRINT: public(immutable(address))

# @dev Packed, read on every submission: threshold (bits 0..7), signer count (8..15),
#      config version (16..47), log checkpoint size (48..95), and the address of the
#      current signer-set store (96..255): a data-only contract whose code holds the
#      signers ascending (an EXTCODECOPY reads all of them for less than two cold
#      storage reads). The store's code starts with STOP, so calling it does nothing.
_config: uint256
# @dev Root of the log checkpoint (RFC 6962, SHA-256) at the checkpoint's size.
_log_root: bytes32

# @dev Feed id -> packed config: min (int112, bits 0..111), max (int112, 112..223),
#      max move in bps (224..239, 0 = unlimited), flags (240..247).
_feed_config: HashMap[bytes32, uint256]
# @dev Feed id -> packed latest: value (int128, bits 0..127), observed-at (128..191),
#      round id (192..255).
_latest: HashMap[bytes32, uint256]
# @dev Feed id -> ring of the last `RING_SIZE` rounds (same packing as `_latest`),
#      round r in slot r % RING_SIZE.
_rounds: HashMap[bytes32, uint256[RING_SIZE]]
# @dev Feed id -> heartbeat in seconds (consumers' staleness limit).
_heartbeat: HashMap[bytes32, uint32]
# @dev Feed id -> description ("H100 SXM 80GB / USD per GPU-hour").
_description: HashMap[bytes32, String[64]]
# @dev Feed id -> its FeedAdapter.
feed_adapter: public(HashMap[bytes32, address])
# @dev Every feed id ever added, in order.
feed_ids: public(DynArray[bytes32, 1024])

# @dev SPV token -> packed latest utilisation: period start (bits 0..63), period end
#      (64..127), GPU count (128..159), utilisation bps (160..175), round id (176..239).
_utilisation: HashMap[address, uint256]
# @dev SPV token -> rental revenue of its latest reported period (stablecoin units).
_revenue: HashMap[address, uint256]


# @dev The signer set or threshold changed; reports must name `config_version`.
event SignerSetChanged:
    config_version: indexed(uint64)
    signers: DynArray[address, MAX_SIGNERS]
    threshold: uint8


# @dev A feed was added, with its adapter.
event FeedAdded:
    feed_id: indexed(bytes32)
    adapter: address
    description: String[64]


# @dev A feed's bounds, move limit, heartbeat or enabled flag changed.
event FeedConfigChanged:
    feed_id: indexed(bytes32)
    min_answer: int256
    max_answer: int256
    max_move_bps: uint16
    heartbeat: uint32
    enabled: bool


# @dev A price report was accepted (its round id is the feed's count of these events;
#      its confidence and methodology are in the signed log entry `inputs_hash` names).
event PriceUpdated:
    feed_id: indexed(bytes32)
    value: int256
    observed_at: uint64
    inputs_hash: bytes32
    log_size: uint64
    log_root: bytes32


# @dev A validly signed price report moved further than the feed allows; the value
#      stays and the feed is halted for trading (`trading_state`) until a report is
#      accepted. The admin decides (raise `max_move_bps` or wait for a closer value).
event PriceMoveRefused:
    feed_id: indexed(bytes32)
    previous_value: int256
    refused_value: int256
    move_bps: uint256
    max_move_bps: uint16
    observed_at: uint64
    inputs_hash: bytes32


# @dev A utilisation report was accepted.
event UtilisationUpdated:
    spv_token: indexed(address)
    period_start: uint64
    period_end: uint64
    gpu_count: uint32
    utilisation_bps: uint16
    rental_revenue: uint256
    inputs_hash: bytes32
    log_size: uint64
    log_root: bytes32


@deploy
@payable
def __init__(admin: address, feed_adapter_blueprint: address):
    """
    @notice Deploys the hub with an empty signer set (config version 0); nothing can
            be submitted until `set_signers` installs one.
    @param admin Receives `DEFAULT_ADMIN_ROLE` and `ORACLE_ADMIN_ROLE`.
    @param feed_adapter_blueprint The FeedAdapter ERC-5202 blueprint.
    """
    assert admin != empty(address), reasons.HUB_ADMIN_ZERO_ADDRESS
    assert feed_adapter_blueprint.is_contract, reasons.HUB_FEED_ADAPTER_BLUEPRINT_NOT
    access_control.__init__()
    eip712_domain_separator.__init__("GPU Oracle Hub", "1")
    if admin != msg.sender:
        access_control._grant_role(access_control.DEFAULT_ADMIN_ROLE, admin)
        access_control._revoke_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    access_control._grant_role(ORACLE_ADMIN_ROLE, admin)
    FEED_ADAPTER_BLUEPRINT = feed_adapter_blueprint


# ---------------------------------------------------------------- signer set


@external
def set_signers(signers: DynArray[address, MAX_SIGNERS], threshold: uint8):
    """
    @notice Replaces the signer set and threshold and bumps the config version, so
            reports signed for the previous set are refused from now on.
    @dev Only `ORACLE_ADMIN_ROLE`. `signers` must be sorted ascending (which also
         rules out duplicates) and non-zero; len(signers) / 2 < threshold <= len(signers):
         a majority, so two quorums always share an honest signer, who signs one report
         per log position.
    @param signers The new signer addresses, ascending.
    @param threshold Signatures needed per report.
    """
    access_control._check_role(ORACLE_ADMIN_ROLE, msg.sender)
    count: uint256 = len(signers)
    assert count != 0, reasons.HUB_SIGNER_SET_EMPTY
    assert threshold != 0, reasons.HUB_THRESHOLD_ZERO
    assert convert(threshold, uint256) <= count, reasons.HUB_THRESHOLD_EXCEEDS_NUMBER_SIGNERS
    assert convert(threshold, uint256) * 2 > count, reasons.HUB_THRESHOLD_NOT_MAJORITY
    config: uint256 = self._config
    version: uint256 = ((config >> 16) & MASK32) + 1
    assert version <= MASK32, reasons.HUB_CONFIG_VERSION_OVERFLOW
    padded: address[MAX_SIGNERS] = empty(address[MAX_SIGNERS])
    previous: uint256 = 0
    i: uint256 = 0
    for signer: address in signers:
        assert convert(signer, uint256) > previous, reasons.HUB_SIGNERS_SORTED_ASCENDING_WITHOUT
        previous = convert(signer, uint256)
        padded[i] = signer
        i += 1
    store: address = raw_create(concat(SIGNER_STORE_INITCODE, abi_encode(padded)))
    # Keep the log checkpoint size (bits 48..95); replace everything else.
    self._config = (
        (config & (MASK48 << 48))
        | (convert(store, uint256) << 96)
        | (version << 16)
        | (count << 8)
        | convert(threshold, uint256)
    )
    log SignerSetChanged(config_version=convert(version, uint64), signers=signers, threshold=threshold)


# ---------------------------------------------------------------- feeds


@external
def add_feed(
    feed_id: bytes32,
    description: String[64],
    min_answer: int256,
    max_answer: int256,
    max_move_bps: uint16,
    heartbeat: uint32,
) -> address:
    """
    @notice Adds a price feed and deploys its Chainlink-compatible `FeedAdapter`.
    @dev Only `ORACLE_ADMIN_ROLE`.
    @param feed_id The feed's id (what reports name).
    @param description Shown by the adapter's `description()`.
    @param min_answer Smallest accepted value (8 decimals).
    @param max_answer Largest accepted value (8 decimals).
    @param max_move_bps Largest accepted move per update against the latest value, in
           basis points of it (0 = no limit).
    @param heartbeat Seconds after which consumers must treat the value as stale.
    @return address The feed's adapter.
    """
    access_control._check_role(ORACLE_ADMIN_ROLE, msg.sender)
    assert feed_id != empty(bytes32), reasons.HUB_FEED_ID_ZERO
    assert self._feed_config[feed_id] == 0, reasons.HUB_FEED_ALREADY_EXISTS
    assert len(description) != 0, reasons.HUB_FEED_DESCRIPTION_EMPTY
    self._write_feed_config(feed_id, min_answer, max_answer, max_move_bps, heartbeat, True)
    self._description[feed_id] = description
    self.feed_ids.append(feed_id)
    adapter: address = create_from_blueprint(
        FEED_ADAPTER_BLUEPRINT, self, feed_id, code_offset=BLUEPRINT_CODE_OFFSET
    )
    self.feed_adapter[feed_id] = adapter
    log FeedAdded(feed_id=feed_id, adapter=adapter, description=description)
    return adapter


@external
def set_feed_config(
    feed_id: bytes32,
    min_answer: int256,
    max_answer: int256,
    max_move_bps: uint16,
    heartbeat: uint32,
    enabled: bool,
):
    """
    @notice Changes a feed's bounds, move limit, heartbeat, or enables / disables it
            (a disabled feed accepts no reports; its adapter still answers).
    @dev Only `ORACLE_ADMIN_ROLE`.
    @param feed_id An existing feed.
    @param min_answer Smallest accepted value (8 decimals).
    @param max_answer Largest accepted value (8 decimals).
    @param max_move_bps Largest move per update in bps of the latest value (0 = none).
    @param heartbeat Seconds after which consumers must treat the value as stale.
    @param enabled Whether reports are accepted.
    """
    access_control._check_role(ORACLE_ADMIN_ROLE, msg.sender)
    assert self._feed_config[feed_id] != 0, reasons.HUB_UNKNOWN_FEED
    self._write_feed_config(feed_id, min_answer, max_answer, max_move_bps, heartbeat, enabled)


# ---------------------------------------------------------------- submissions


@external
def submit_price(report: PriceReport, signatures: DynArray[Signature, MAX_SIGNERS]) -> bool:
    """
    @notice Accepts a price report signed by at least `threshold` signers of the
            current set. Anyone may submit.
    @dev Refused with a revert: wrong config version, unknown or disabled feed,
         observed in the future or not newer than the latest value, value out of
         bounds, too few / unsorted / duplicate / unauthorised / malleable signatures,
         a different log root at the checkpoint's size. A move beyond the feed's limit
         is refused without a revert: `PriceMoveRefused` is emitted, the value stays,
         the feed is halted for trading until the next accepted report
         (`trading_state`), and the call returns False.
    @param report The signed report.
    @param signatures The signatures, ordered by signer address ascending.
    @return bool True when the value was stored, False when the move was refused.
    """
    config: uint256 = self._config
    assert convert(report.config_version, uint256) == (config >> 16) & MASK32, reasons.HUB_REPORT_NAMES_ANOTHER_CONFIG
    feed: uint256 = self._feed_config[report.feed_id]
    assert (feed >> 240) & FEED_ENABLED != 0, reasons.HUB_UNKNOWN_DISABLED_FEED
    assert convert(report.observed_at, uint256) <= block.timestamp, reasons.HUB_REPORT_OBSERVED_FUTURE
    latest: uint256 = self._latest[report.feed_id]
    assert convert(report.observed_at, uint256) > (latest >> 128) & MASK64, reasons.HUB_REPORT_NOT_NEWER_FEED
    # The bounds are int112 fields: shift each to the top, then sign-extend back down.
    assert report.value >= convert(convert(feed << 144, bytes32), int256) >> 144 and report.value <= convert(convert(feed << 32, bytes32), int256) >> 144, reasons.HUB_VALUE_OUTSIDE_FEED_BOUNDS

    digest: bytes32 = eip712_domain_separator._hash_typed_data_v4(
        keccak256(
            abi_encode(
                PRICE_REPORT_TYPEHASH,
                report.feed_id,
                report.value,
                report.confidence,
                report.observed_at,
                report.methodology_version,
                report.inputs_hash,
                report.log_size,
                report.log_root,
                report.config_version,
            )
        )
    )
    self._check_signers(digest, signatures, config)

    round_id: uint256 = latest >> 192
    max_move: uint256 = (feed >> 224) & MASK16
    previous: int256 = convert(convert(latest << 128, bytes32), int256) >> 128
    # A move is relative to the latest value, so it is undefined after a zero value.
    if max_move != 0 and previous != 0:
        # Both values are bounded by int128, so neither product can overflow.
        move: uint256 = convert(abs(report.value - previous), uint256) * MAX_BPS
        base: uint256 = convert(abs(previous), uint256)
        if move > max_move * base:
            move_bps: uint256 = move // base
            # The refused value is public now (this event, the signed log entry), so
            # the stored one is known to be wrong: halt the feed for trading.
            self._feed_config[report.feed_id] = feed | (FEED_HALTED << 240)
            log PriceMoveRefused(
                feed_id=report.feed_id,
                previous_value=previous,
                refused_value=report.value,
                move_bps=move_bps,
                max_move_bps=convert(max_move, uint16),
                observed_at=report.observed_at,
                inputs_hash=report.inputs_hash,
            )
            return False

    # Effects. An accepted report lifts a halt.
    if (feed >> 240) & FEED_HALTED != 0:
        self._feed_config[report.feed_id] = feed & ~(FEED_HALTED << 240)
    round_id += 1
    word: uint256 = (
        (convert(convert(report.value, bytes32), uint256) & MASK128)
        | (convert(report.observed_at, uint256) << 128)
        | (round_id << 192)
    )
    self._latest[report.feed_id] = word
    self._rounds[report.feed_id][round_id % RING_SIZE] = word
    self._advance_checkpoint(config, report.log_size, report.log_root)
    log PriceUpdated(
        feed_id=report.feed_id,
        value=report.value,
        observed_at=report.observed_at,
        inputs_hash=report.inputs_hash,
        log_size=report.log_size,
        log_root=report.log_root,
    )
    return True


@external
def submit_utilisation(report: UtilisationReport, signatures: DynArray[Signature, MAX_SIGNERS]):
    """
    @notice Accepts a utilisation report for one SPV token, signed by at least
            `threshold` signers of the current set. Anyone may submit.
    @dev Refused: wrong config version, zero token, empty or future period, a period
         starting before the latest reported one ended, no GPUs reporting,
         utilisation above 10,000 bps, bad signatures, a different log root at the
         checkpoint's size.
    @param report The signed report.
    @param signatures The signatures, ordered by signer address ascending.
    """
    config: uint256 = self._config
    assert convert(report.config_version, uint256) == (config >> 16) & MASK32, reasons.HUB_REPORT_NAMES_ANOTHER_CONFIG
    assert report.spv_token != empty(address), reasons.HUB_SPV_TOKEN_ZERO_ADDRESS
    assert report.period_start < report.period_end, reasons.HUB_UTILISATION_PERIOD_EMPTY
    assert convert(report.period_end, uint256) <= block.timestamp, reasons.HUB_UTILISATION_PERIOD_ENDS_FUTURE
    latest: uint256 = self._utilisation[report.spv_token]
    assert convert(report.period_start, uint256) >= (latest >> 64) & MASK64, reasons.HUB_UTILISATION_PERIOD_OVERLAPS_LATEST
    assert report.gpu_count != 0, reasons.HUB_NO_GPUS_REPORTING
    assert convert(report.utilisation_bps, uint256) <= MAX_BPS, reasons.HUB_UTILISATION_ABOVE_10_000

    self._check_signers(
        eip712_domain_separator._hash_typed_data_v4(
            keccak256(
                abi_encode(
                    UTILISATION_REPORT_TYPEHASH,
                    report.spv_token,
                    report.period_start,
                    report.period_end,
                    report.gpu_count,
                    report.utilisation_bps,
                    report.rental_revenue,
                    report.inputs_hash,
                    report.log_size,
                    report.log_root,
                    report.config_version,
                )
            )
        ),
        signatures,
        config,
    )

    round_id: uint256 = (latest >> 176) + 1
    self._utilisation[report.spv_token] = (
        convert(report.period_start, uint256)
        | (convert(report.period_end, uint256) << 64)
        | (convert(report.gpu_count, uint256) << 128)
        | (convert(report.utilisation_bps, uint256) << 160)
        | (round_id << 176)
    )
    self._revenue[report.spv_token] = report.rental_revenue
    self._advance_checkpoint(config, report.log_size, report.log_root)
    log UtilisationUpdated(
        spv_token=report.spv_token,
        period_start=report.period_start,
        period_end=report.period_end,
        gpu_count=report.gpu_count,
        utilisation_bps=report.utilisation_bps,
        rental_revenue=report.rental_revenue,
        inputs_hash=report.inputs_hash,
        log_size=report.log_size,
        log_root=report.log_root,
    )


# ---------------------------------------------------------------- views


@external
@view
def latest_round_data(feed_id: bytes32) -> (uint80, int256, uint256, uint256, uint80):
    """
    @notice The feed's latest round, AggregatorV3 style: (roundId, answer, startedAt,
            updatedAt, answeredInRound). `startedAt` and `updatedAt` are the
            observation time (never later than the block that stored it), so a
            staleness check measures the age of the data, not of the transaction.
    @dev Reverts when the feed has no accepted report yet.
    @param feed_id The feed.
    """
    latest: uint256 = self._latest[feed_id]
    assert latest != 0, reasons.HUB_NO_DATA_PRESENT_FEED
    return self._round_tuple(latest)


@external
@view
def get_round_data(feed_id: bytes32, round_id: uint80) -> (uint80, int256, uint256, uint256, uint80):
    """
    @notice One past round, AggregatorV3 style. Only the last `RING_SIZE` (256)
            rounds stay readable: an older round reverts with "no longer available", a
            round after the latest (or round 0) with "no such round yet".
    @param feed_id The feed.
    @param round_id The round (1 is the feed's first accepted report).
    """
    wanted: uint256 = convert(round_id, uint256)
    assert wanted != 0 and wanted <= self._latest[feed_id] >> 192, reasons.HUB_ROUND_NOT_YET
    word: uint256 = self._rounds[feed_id][wanted % RING_SIZE]
    assert word >> 192 == wanted, reasons.HUB_ROUND_NO_LONGER_KEPT
    return self._round_tuple(word)


@external
@view
def latest_value(feed_id: bytes32) -> (int256, uint64, uint64):
    """
    @notice The feed's latest value, its observation time and round id (zeros before
            the first report).
    @param feed_id The feed.
    """
    latest: uint256 = self._latest[feed_id]
    return self._unpack_int128(latest), convert((latest >> 128) & MASK64, uint64), convert(latest >> 192, uint64)


@external
@view
def feed(feed_id: bytes32) -> FeedView:
    """
    @notice A feed's settings and latest round id.
    @param feed_id The feed.
    """
    config: uint256 = self._feed_config[feed_id]
    return FeedView(
        exists=(config >> 240) & FEED_EXISTS != 0,
        enabled=(config >> 240) & FEED_ENABLED != 0,
        min_answer=self._unpack_int112(config),
        max_answer=self._unpack_int112(config >> 112),
        max_move_bps=convert((config >> 224) & MASK16, uint16),
        heartbeat=self._heartbeat[feed_id],
        description=self._description[feed_id],
        adapter=self.feed_adapter[feed_id],
        latest_round=convert(self._latest[feed_id] >> 192, uint64),
    )


@external
@view
def feed_description(feed_id: bytes32) -> String[64]:
    """
    @notice The feed's description (what its adapter's `description()` returns).
    @param feed_id The feed.
    """
    return self._description[feed_id]


@external
@view
def feed_heartbeat(feed_id: bytes32) -> uint32:
    """
    @notice Seconds after which a consumer must treat the feed's value as stale.
    @param feed_id The feed.
    """
    return self._heartbeat[feed_id]


@external
@view
def trading_state(feed_id: bytes32) -> (int256, uint64, uint64, uint32, uint16, bool):
    """
    @notice What a market trading on the feed needs in one call: the latest value, its
            observation time and round id (zeros before the first report), the
            heartbeat, the move limit per update (bps, 0 = none) and whether the feed
            is halted (a report was refused for moving too far and no report has been
            accepted since: the latest value is known to be wrong).
    @param feed_id The feed.
    """
    latest: uint256 = self._latest[feed_id]
    config: uint256 = self._feed_config[feed_id]
    return (
        self._unpack_int128(latest),
        convert((latest >> 128) & MASK64, uint64),
        convert(latest >> 192, uint64),
        self._heartbeat[feed_id],
        convert((config >> 224) & MASK16, uint16),
        (config >> 240) & FEED_HALTED != 0,
    )


@external
@view
def feed_count() -> uint256:
    """
    @notice Number of feeds ever added (`feed_ids(i)` for i below it).
    """
    return len(self.feed_ids)


@external
@view
def utilisation(spv_token: address) -> UtilisationView:
    """
    @notice The latest accepted utilisation report of `spv_token` (zeros before one).
    @param spv_token The SPV's share token.
    """
    word: uint256 = self._utilisation[spv_token]
    return UtilisationView(
        period_start=convert(word & MASK64, uint64),
        period_end=convert((word >> 64) & MASK64, uint64),
        gpu_count=convert((word >> 128) & MASK32, uint32),
        utilisation_bps=convert((word >> 160) & MASK16, uint16),
        rental_revenue=self._revenue[spv_token],
        round_id=convert(word >> 176, uint64),
    )


@external
@view
def signer_store() -> address:
    """
    @notice The data-only contract whose code holds the current signer set.
    """
    return convert(convert(self._config >> 96, uint160), address)


@external
@view
def config_version() -> uint64:
    """
    @notice The signer-set version every report must name (bumped by every change).
    """
    return convert((self._config >> 16) & MASK32, uint64)


@external
@view
def threshold() -> uint8:
    """
    @notice Signatures needed per report.
    """
    return convert(self._config & MASK8, uint8)


@external
@view
def signers() -> DynArray[address, MAX_SIGNERS]:
    """
    @notice The current signer set, ascending.
    """
    config: uint256 = self._config
    out: DynArray[address, MAX_SIGNERS] = []
    store: address = convert(convert(config >> 96, uint160), address)
    if store == empty(address):
        return out
    members: Bytes[992] = slice(store.code, 1, 992)
    for i: uint256 in range(MAX_SIGNERS):
        if i == (config >> 8) & MASK8:
            break
        out.append(extract32(members, i * 32, output_type=address))
    return out


@external
@view
def is_signer(account: address) -> bool:
    """
    @notice Whether `account` is in the current signer set.
    @param account The address to check.
    """
    config: uint256 = self._config
    store: address = convert(convert(config >> 96, uint160), address)
    if store == empty(address) or account == empty(address):
        return False
    members: Bytes[992] = slice(store.code, 1, 992)
    for i: uint256 in range(MAX_SIGNERS):
        if i == (config >> 8) & MASK8:
            break
        if extract32(members, i * 32, output_type=address) == account:
            return True
    return False


@external
@view
def checkpoint() -> (uint64, bytes32):
    """
    @notice The newest attestation-log checkpoint carried by an accepted report:
            (log size, RFC 6962 root).
    """
    return convert((self._config >> 48) & MASK48, uint64), self._log_root


@external
@view
def DOMAIN_SEPARATOR() -> bytes32:
    """
    @notice The EIP-712 domain separator reports are signed under.
    """
    return eip712_domain_separator._domain_separator_v4()


@external
@view
def price_report_digest(report: PriceReport) -> bytes32:
    """
    @notice The EIP-712 digest signers sign for `report`.
    @param report The report.
    """
    return eip712_domain_separator._hash_typed_data_v4(
        keccak256(
            abi_encode(
                PRICE_REPORT_TYPEHASH,
                report.feed_id,
                report.value,
                report.confidence,
                report.observed_at,
                report.methodology_version,
                report.inputs_hash,
                report.log_size,
                report.log_root,
                report.config_version,
            )
        )
    )


@external
@view
def utilisation_report_digest(report: UtilisationReport) -> bytes32:
    """
    @notice The EIP-712 digest signers sign for `report`.
    @param report The report.
    """
    return eip712_domain_separator._hash_typed_data_v4(
        keccak256(
            abi_encode(
                UTILISATION_REPORT_TYPEHASH,
                report.spv_token,
                report.period_start,
                report.period_end,
                report.gpu_count,
                report.utilisation_bps,
                report.rental_revenue,
                report.inputs_hash,
                report.log_size,
                report.log_root,
                report.config_version,
            )
        )
    )


# ---------------------------------------------------------------- internal


@internal
@view
def _check_signers(digest: bytes32, signatures: DynArray[Signature, MAX_SIGNERS], config: uint256):
    """
    @dev Requires at least `threshold` signatures, each with a canonical `s` and v in
         {27, 28}, in strictly ascending signer order (so a duplicate signer is an
         order violation), each from a member of the current signer set. Members are
         matched by one merge walk over the ascending set read from its store.
    @param digest The report's EIP-712 digest.
    @param signatures The signatures, ascending by signer.
    @param config The packed `_config` word.
    """
    threshold: uint256 = config & MASK8
    assert threshold != 0, reasons.HUB_NO_SIGNER_SET_INSTALLED
    assert len(signatures) >= threshold, reasons.HUB_FEWER_SIGNATURES_THRESHOLD
    count: uint256 = (config >> 8) & MASK8
    members: Bytes[992] = slice(convert(convert(config >> 96, uint160), address).code, 1, 992)
    cursor: uint256 = 0
    previous: uint256 = 0
    for sig: Signature in signatures:
        vs: uint256 = convert(sig.vs, uint256)
        s: uint256 = vs & MAX_S
        assert s <= HALF_N, reasons.HUB_SIGNATURE_UPPER_HALF_ORDER
        signer: uint256 = convert(ecrecover(digest, (vs >> 255) + 27, sig.r, s), uint256)
        assert signer != 0, reasons.HUB_INVALID_SIGNATURE
        assert signer > previous, reasons.HUB_SIGNATURES_ORDERED_SIGNER_ADDRESS
        previous = signer
        member: uint256 = 0
        for _: uint256 in range(MAX_SIGNERS):
            if cursor == count or member >= signer:
                break
            member = extract32(members, cursor * 32, output_type=uint256)
            cursor += 1
        assert member == signer, reasons.HUB_SIGNATURE_NOT_AUTHORISED_SIGNER


@internal
def _advance_checkpoint(config: uint256, size: uint64, root: bytes32):
    """
    @dev Moves the log checkpoint forward to (size, root). An older size (a report
         signed before a newer one was published) leaves it alone; the same non-zero
         size must carry the same root (a different root would be a forked log). Size 0
         anchors nothing.
    @param config The packed `_config` word read at the start of the call.
    @param size The log size the report was signed at.
    @param root The log root at that size.
    """
    stored: uint256 = (config >> 48) & MASK48
    if convert(size, uint256) > stored:
        assert convert(size, uint256) <= MASK48, reasons.HUB_LOG_SIZE_ABOVE_2
        self._config = (config & ~(MASK48 << 48)) | (convert(size, uint256) << 48)
        self._log_root = root
    elif convert(size, uint256) == stored and stored != 0:
        assert root == self._log_root, reasons.HUB_LOG_ROOT_DIFFERS_CHECKPOINT


@internal
def _write_feed_config(
    feed_id: bytes32,
    min_answer: int256,
    max_answer: int256,
    max_move_bps: uint16,
    heartbeat: uint32,
    enabled: bool,
):
    """
    @dev Validates and stores a feed's settings, then emits `FeedConfigChanged`.
    """
    assert min_answer >= MIN_BOUND and max_answer <= MAX_BOUND, reasons.HUB_BOUNDS_FIT_INT112
    assert min_answer <= max_answer, reasons.HUB_MIN_VALUE_ABOVE_MAX
    assert heartbeat != 0, reasons.HUB_HEARTBEAT_ZERO
    # A halt survives a config change (a wider move limit does not make the stored
    # value right): only an accepted report lifts it.
    flags: uint256 = FEED_EXISTS | ((self._feed_config[feed_id] >> 240) & FEED_HALTED)
    if enabled:
        flags |= FEED_ENABLED
    self._feed_config[feed_id] = (
        (convert(convert(min_answer, bytes32), uint256) & MASK112)
        | ((convert(convert(max_answer, bytes32), uint256) & MASK112) << 112)
        | (convert(max_move_bps, uint256) << 224)
        | (flags << 240)
    )
    self._heartbeat[feed_id] = heartbeat
    log FeedConfigChanged(
        feed_id=feed_id,
        min_answer=min_answer,
        max_answer=max_answer,
        max_move_bps=max_move_bps,
        heartbeat=heartbeat,
        enabled=enabled,
    )


@internal
@pure
def _unpack_int112(word: uint256) -> int256:
    """
    @dev The signed 112-bit integer in the low bits of `word`.
    """
    return convert(convert(word << 144, bytes32), int256) >> 144


@internal
@pure
def _unpack_int128(word: uint256) -> int256:
    """
    @dev The signed 128-bit integer in the low bits of `word`.
    """
    return convert(convert(word << 128, bytes32), int256) >> 128


@internal
@pure
def _round_tuple(word: uint256) -> (uint80, int256, uint256, uint256, uint80):
    """
    @dev A packed round as (roundId, answer, startedAt, updatedAt, answeredInRound).
    """
    round_id: uint80 = convert(word >> 192, uint80)
    observed: uint256 = (word >> 128) & MASK64
    return round_id, self._unpack_int128(word), observed, observed, round_id
