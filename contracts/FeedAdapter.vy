# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Feed Adapter
@custom:contract-name FeedAdapter
@license GNU Affero General Public License v3.0 only
@notice Chainlink's AggregatorV3 interface over one `OracleHub` feed, so any existing
        DeFi consumer can read it. Deployed by the hub (`add_feed`) from an ERC-5202
        blueprint; it holds no state besides its hub and feed id.
        A consumer must check, on every read:
        - staleness: `block.timestamp - updatedAt <= heartbeat()` (the feed's heartbeat
          in seconds; `updatedAt` is the observation time of the data, which is never
          later than the block that stored it);
        - `answer > 0` (index and NAV prices are positive);
        - its own sanity bounds for the asset (the hub already refuses values outside
          the feed's configured min / max and moves beyond its per-update limit);
        - `answeredInRound == roundId` (always true here; kept for drop-in code).
        Rounds are numbered from 1; only the last 256 stay readable, older rounds revert.
@custom:security The adapter adds no trust: it forwards the hub's stored values.
"""


from .interfaces import IOracleHub
from .interfaces import AggregatorV3Interface
from .modules import reasons
implements: AggregatorV3Interface


# @dev Interface version (AggregatorV3's `version()`): 1 for this adapter.
ADAPTER_VERSION: constant(uint256) = 1

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
def heartbeat() -> uint256:
    """
    @notice Seconds after which the latest answer must be treated as stale.
    """
    return convert(staticcall HUB.feed_heartbeat(FEED_ID), uint256)


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
