# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Feed Adapter
@custom:contract-name FeedAdapter
@license GNU Affero General Public License v3.0 only
@notice Chainlink's AggregatorV2V3Interface (the AggregatorV3 views and the legacy
        AggregatorInterface, "V2", views) over one `OracleHub` feed, so any existing
        DeFi consumer can read it, and ERC-165 for both. Deployed by the hub (`add_feed`)
        from an ERC-5202 blueprint; it holds no state besides its hub and feed id.
        A consumer must check, on every read:
        - staleness: `block.timestamp - updatedAt <= heartbeat()` (the feed's heartbeat
          in seconds; `updatedAt` is the observation time of the data, which is never
          later than the block that stored it);
        - `answer > 0` (index and NAV prices are positive);
        - its own sanity bounds for the asset (the hub already refuses values outside
          the feed's configured min / max and moves beyond its per-update limit);
        - `answeredInRound == roundId` (always true here; kept for drop-in code).
        Rounds are numbered from 1; only the last 256 stay readable (the hub's ring):
        `getRoundData` reverts for an older round, a later one or round 0, while the V2
        views `getAnswer` / `getTimestamp` return 0 for it, as Chainlink's aggregators
        do (and `latestAnswer` / `latestTimestamp` / `latestRound` return 0 before the
        first report). A V2 consumer must therefore treat 0 as "no data".
@custom:security The adapter adds no trust: it forwards the hub's stored values.
"""


from ethereum.ercs import IERC165
from .interfaces import IOracleHub
from .interfaces import AggregatorV3Interface
from .modules import reasons
implements: IERC165
implements: AggregatorV3Interface


# @dev Chainlink's AggregatorInterface (the "V2" views), as in
#      `AggregatorV2V3Interface is AggregatorInterface, AggregatorV3Interface`. Its
#      events (`AnswerUpdated`, `NewRound`) are not emitted here: the adapter stores
#      nothing; the hub's `PriceUpdated` is the event of a new round.
interface AggregatorInterface:
    def latestAnswer() -> int256: view
    def latestTimestamp() -> uint256: view
    def latestRound() -> uint256: view
    def getAnswer(roundId: uint256) -> int256: view
    def getTimestamp(roundId: uint256) -> uint256: view


implements: AggregatorInterface


# @dev What the V2 views read from the hub besides `IOracleHub`: the latest value,
#      observation time and round id in one call (zeros before the first report), and
#      how many rounds its ring keeps.
interface IHubRounds:
    def latest_value(feed_id: bytes32) -> (int256, uint64, uint64): view
    def RING_SIZE() -> uint256: view


# @dev Interface version (AggregatorV3's `version()`): 1 for this adapter.
ADAPTER_VERSION: constant(uint256) = 1

# @dev ERC-165 interface ids, each the XOR of its functions' selectors
#      (bytes4(keccak256(signature))); tests/contracts/test_standard_interfaces.py
#      recomputes each from the signatures.
#      ERC-165: supportsInterface(bytes4) 0x01ffc9a7.
_IERC165: constant(bytes4) = 0x01ffc9a7
#      AggregatorV3Interface: decimals() 0x313ce567 ^ description() 0x7284e416
#      ^ version() 0x54fd4d50 ^ getRoundData(uint80) 0x9a6fc8f5
#      ^ latestRoundData() 0xfeaf968c = 0x73851258.
_IAGGREGATOR_V3: constant(bytes4) = 0x73851258
#      AggregatorInterface (V2): latestAnswer() 0x50d25bcd ^ latestTimestamp() 0x8205bf6a
#      ^ latestRound() 0x668a0f02 ^ getAnswer(uint256) 0xb5ab58dc
#      ^ getTimestamp(uint256) 0xb633620c = 0xb7c5d175.
_IAGGREGATOR_V2: constant(bytes4) = 0xb7c5d175
#      AggregatorV2V3Interface: all ten functions, V2 ^ V3 = 0xc440c32d. (Solidity's
#      `type(AggregatorV2V3Interface).interfaceId` would be 0x00000000: it leaves out
#      inherited functions and this interface declares none of its own; ERC-165 names
#      an interface by its whole function set, so the adapter answers for the union.)
_IAGGREGATOR_V2V3: constant(bytes4) = 0xc440c32d

# @dev The hub that stores the feed.
HUB: public(immutable(IOracleHub))
# @dev The hub feed this adapter exposes.
FEED_ID: public(immutable(bytes32))


@deploy
@payable
def __init__(hub: address, feed_id: bytes32):
    """
    @notice Binds the adapter to one hub feed.
    @param hub The OracleHub.
    @param feed_id The feed's id in the hub.
    """
    assert hub != empty(address), reasons.FEED_HUB_ZERO_ADDRESS
    assert feed_id != empty(bytes32), reasons.FEED_FEED_ID_ZERO
    HUB = IOracleHub(hub)
    FEED_ID = feed_id


@external
@view
def decimals() -> uint8:
    """
    @notice Decimals of `answer` (8, USD).
    """
    return 8


@external
@view
def description() -> String[64]:
    """
    @notice What the feed measures, for example "H100 SXM 80GB / USD per GPU-hour".
    """
    return staticcall HUB.feed_description(FEED_ID)


@external
@view
def version() -> uint256:
    """
    @notice The adapter's interface version.
    """
    return ADAPTER_VERSION


@external
@view
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    """
    @notice The latest round: (roundId, answer, startedAt, updatedAt, answeredInRound).
    @dev Reverts with "OracleHub: no data present for this feed" before the first report.
    """
    return staticcall HUB.latest_round_data(FEED_ID)


@external
@view
def getRoundData(_roundId: uint80) -> (uint80, int256, uint256, uint256, uint80):
    """
    @notice A past round (only the last 256 are kept; others revert).
    @param _roundId The round, from 1.
    """
    return staticcall HUB.get_round_data(FEED_ID, _roundId)


# @dev Defined after the AggregatorV3 views on purpose: `heartbeat()` shares a selector
#      bucket with `latestRoundData()` in vyper's dispatcher, which tries a bucket's
#      functions in definition order, so every AggregatorV3 consumer's read is matched
#      first (about 22 gas; only this project's pool also reads `heartbeat()`).
@external
@view
def heartbeat() -> uint256:
    """
    @notice Seconds after which the latest answer must be treated as stale.
    """
    return convert(staticcall HUB.feed_heartbeat(FEED_ID), uint256)


# ---------------------------------------------------------------------------------
# AggregatorInterface (V2): never reverts; 0 when there is no such round
# ---------------------------------------------------------------------------------


@external
@view
def latestAnswer() -> int256:
    """
    @notice The latest answer (8 decimals), 0 before the first report.
    @dev Chainlink's legacy view: it carries no timestamp, so check `latestTimestamp()`
         against `heartbeat()` too, or use `latestRoundData()`.
    @return int256 The answer of round `latestRound()`.
    """
    answer: int256 = 0
    observed: uint64 = 0
    round_id: uint64 = 0
    answer, observed, round_id = staticcall IHubRounds(HUB.address).latest_value(FEED_ID)
    return answer


@external
@view
def latestTimestamp() -> uint256:
    """
    @notice When the latest answer was observed (`updatedAt` of `latestRoundData()`),
            0 before the first report.
    @return uint256 Unix time in seconds.
    """
    answer: int256 = 0
    observed: uint64 = 0
    round_id: uint64 = 0
    answer, observed, round_id = staticcall IHubRounds(HUB.address).latest_value(FEED_ID)
    return convert(observed, uint256)


@external
@view
def latestRound() -> uint256:
    """
    @notice The latest round id (`roundId` of `latestRoundData()`), 0 before the first
            report.
    @return uint256 The round, from 1.
    """
    answer: int256 = 0
    observed: uint64 = 0
    round_id: uint64 = 0
    answer, observed, round_id = staticcall IHubRounds(HUB.address).latest_value(FEED_ID)
    return convert(round_id, uint256)


@external
@view
def getAnswer(roundId: uint256) -> int256:
    """
    @notice The answer of round `roundId` (`answer` of `getRoundData(roundId)`), or 0
            when the hub does not hold that round: round 0, a round after the latest,
            or one older than the hub's last `RING_SIZE` (256) rounds. Never reverts
            for a missing round (Chainlink's V2 semantics; `getRoundData` reverts).
    @param roundId The round, from 1.
    @return int256 The answer (8 decimals), or 0.
    """
    return self._round(roundId)[0]


@external
@view
def getTimestamp(roundId: uint256) -> uint256:
    """
    @notice When round `roundId`'s answer was observed (`updatedAt` of
            `getRoundData(roundId)`), or 0 when the hub does not hold that round (see
            `getAnswer`).
    @param roundId The round, from 1.
    @return uint256 Unix time in seconds, or 0.
    """
    return self._round(roundId)[1]


# ---------------------------------------------------------------------------------
# ERC-165
# ---------------------------------------------------------------------------------


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    """
    @notice ERC-165: true for ERC-165, AggregatorV3Interface, AggregatorInterface (V2)
            and AggregatorV2V3Interface (ids in the constants above).
    @param interface_id The interface id.
    @return bool Whether this adapter implements it.
    """
    return interface_id in [_IERC165, _IAGGREGATOR_V3, _IAGGREGATOR_V2, _IAGGREGATOR_V2V3]


@internal
@view
def _round(round_id: uint256) -> (int256, uint256):
    """
    @dev (answer, updatedAt) of `round_id`, or (0, 0) when the hub does not hold it.
         The hub keeps round r in ring slot r % RING_SIZE until round r + RING_SIZE
         overwrites it, so it holds exactly the rounds in
         (latest - RING_SIZE, latest]; `get_round_data` is only called for those and
         cannot revert.
    """
    answer: int256 = 0
    observed: uint64 = 0
    latest: uint64 = 0
    answer, observed, latest = staticcall IHubRounds(HUB.address).latest_value(FEED_ID)
    last: uint256 = convert(latest, uint256)
    if round_id == last:
        # The latest round (or round 0 before any report, which reads zeros).
        return answer, convert(observed, uint256)
    if round_id == 0 or round_id > last or last - round_id >= staticcall IHubRounds(HUB.address).RING_SIZE():
        return 0, 0
    round_out: uint80 = 0
    started: uint256 = 0
    updated: uint256 = 0
    answered: uint80 = 0
    round_out, answer, started, updated, answered = staticcall HUB.get_round_data(
        FEED_ID, convert(round_id, uint80)
    )
    return answer, updated
