# pragma version ~=0.4.3
"""
@title Lens reads
@custom:contract-name lens_reads
@license GNU Affero General Public License v3.0 only
@notice What `Lens` and `MarketLens` share: the suite's view types they read, the
        types they return for tokens, restriction verdicts, feeds and rounds, and the
        reads themselves (a token's symbol and decimals, an ERC-1404 verdict with its
        message, a feed adapter's id, a Chainlink-style answer that may revert, a
        feed's settings, latest value and last rounds). Stateless.
"""



# @dev Past rounds per feed a lens returns.
MAX_ROUNDS: constant(uint256) = 64
# @dev Jurisdictions one SPV's GPUs may sit in (the registry's MAX_ASSET_LOCATIONS).
MAX_LOCATIONS: constant(uint256) = 16
# @dev Revert data kept from a call allowed to fail (selector, offset, length, 256 bytes).
MAX_ERROR: constant(uint256) = 324


# @dev `SPVFactory.SPV`.
struct SPV:
    legal_name: String[100]
    jurisdiction: uint16
    lei: String[20]
    documents_hash: bytes32
    token: address
    operator: address
    registered_at: uint256


# @dev `GPUShareToken.GPU` (status as its flag value: 1 active, 2 impaired, 4 retired).
struct GPU:
    serial_hash: bytes32
    model: bytes32
    location: uint16
    datacenter: bytes32
    acquisition_cost: uint256
    commissioned_at: uint256
    status: uint256
    subdivision: uint24


# @dev `ComplianceRegistry.Investor`.
struct Investor:
    jurisdiction: uint16
    accredited: bool
    expires_at: uint64
    frozen: bool
    registered: bool
    subdivision: uint24


# @dev `OracleHub.FeedView`.
struct HubFeed:
    exists: bool
    enabled: bool
    min_answer: int256
    max_answer: int256
    max_move_bps: uint16
    heartbeat: uint32
    description: String[64]
    adapter: address
    latest_round: uint64


# @dev An ERC-20 as the app shows it.
struct Token:
    token: address
    symbol: String[32]
    decimals: uint8


# @dev A restriction code (ERC-1404) and the token's message for it ("" for 0).
struct Verdict:
    code: uint8
    message: String[160]


# @dev One past round of a feed.
struct Round:
    round_id: uint80
    answer: int256
    updated_at: uint256


# @dev A hub feed: its settings, latest value and its last rounds (newest first).
struct Feed:
    feed_id: bytes32
    info: HubFeed
    value: int256
    observed_at: uint64
    round_id: uint64
    rounds: DynArray[Round, MAX_ROUNDS]


# @dev A Chainlink-style read allowed to fail: `ok` False keeps the revert data.
struct Answer:
    ok: bool
    answer: int256
    updated_at: uint256
    error: Bytes[MAX_ERROR]


interface IERC20:
    def balanceOf(account: address) -> uint256: view
    def symbol() -> String[32]: view
    def decimals() -> uint8: view
    def totalSupply() -> uint256: view


interface ISPVFactory:
    def spv_count() -> uint256: view
    def spvs(spv_id: uint256) -> SPV: view
    def spv_id_of_token(token: address) -> uint256: view
    def compliance_registry() -> address: view


interface IShareToken:
    def name() -> String[32]: view
    def symbol() -> String[5]: view
    def totalSupply() -> uint256: view
    def balanceOf(account: address) -> uint256: view
    def getFrozenTokens(account: address) -> uint256: view
    def claimable(account: address) -> uint256: view
    def income_token() -> address: view
    def shares_per_gpu() -> uint256: view
    def backing() -> (uint256, uint256): view
    def paused() -> bool: view
    def gpu_count() -> uint256: view
    def active_gpus() -> uint256: view
    def impaired_gpus() -> uint256: view
    def total_distributed() -> uint256: view
    def total_claimed() -> uint256: view
    def gpus(gpu_id: uint256) -> GPU: view
    def hasRole(role: bytes32, account: address) -> bool: view
    def detectTransferRestriction(sender: address, receiver: address, amount: uint256) -> uint8: view
    def messageForTransferRestriction(code: uint8) -> String[160]: view


interface IOracleHub:
    def feed(feed_id: bytes32) -> HubFeed: view
    def feed_count() -> uint256: view
    def feed_ids(i: uint256) -> bytes32: view
    def latest_value(feed_id: bytes32) -> (int256, uint64, uint64): view
    def get_round_data(feed_id: bytes32, round_id: uint80) -> (uint80, int256, uint256, uint256, uint80): view
    def config_version() -> uint64: view
    def threshold() -> uint8: view
    def signers() -> DynArray[address, 31]: view
    def checkpoint() -> (uint64, bytes32): view
    def trading_state(feed_id: bytes32) -> (int256, uint64, uint64, uint32, uint16, bool): view


interface IFeed:
    def decimals() -> uint8: view
    def heartbeat() -> uint256: view


interface IMarketFactory:
    def market_count() -> uint256: view
    def market_at(number: uint256) -> address: view


@internal
@view
def _token(token: address) -> Token:
    return Token(token=token, symbol=staticcall IERC20(token).symbol(), decimals=staticcall IERC20(token).decimals())


@internal
@view
def _verdict(token: address, sender: address, receiver: address, amount: uint256) -> Verdict:
    code: uint8 = staticcall IShareToken(token).detectTransferRestriction(sender, receiver, amount)
    if code == 0:
        return empty(Verdict)
    return Verdict(code=code, message=staticcall IShareToken(token).messageForTransferRestriction(code))


@internal
@view
def _feed_id(feed: address) -> (bool, bytes32):
    """
    @dev A feed adapter's `FEED_ID()`, (False, 0) when it has none.
    """
    ok: bool = False
    data: Bytes[32] = b""
    ok, data = raw_call(feed, method_id("FEED_ID()"), max_outsize=32, is_static_call=True, revert_on_failure=False)
    if not ok or len(data) != 32:
        return False, empty(bytes32)
    return True, extract32(data, 0)


@internal
@view
def _latest(feed: address) -> Answer:
    """
    @dev `latestRoundData()` of a Chainlink-style feed; the revert data when it reverts.
    """
    ok: bool = False
    data: Bytes[MAX_ERROR] = b""
    ok, data = raw_call(feed, method_id("latestRoundData()"), max_outsize=MAX_ERROR, is_static_call=True, revert_on_failure=False)
    if not ok:
        return Answer(ok=False, answer=0, updated_at=0, error=data)
    round_id: uint80 = 0
    answer: int256 = 0
    started: uint256 = 0
    updated: uint256 = 0
    answered: uint80 = 0
    round_id, answer, started, updated, answered = abi_decode(data, (uint80, int256, uint256, uint256, uint80))
    return Answer(ok=True, answer=answer, updated_at=updated, error=b"")


@internal
@view
def _rounds(hub: address, fid: bytes32, latest: uint64, history: uint256) -> DynArray[Round, MAX_ROUNDS]:
    """
    @dev The last `history` rounds of a feed, newest first (the hub's ring keeps 256).
    """
    out: DynArray[Round, MAX_ROUNDS] = []
    for i: uint256 in range(MAX_ROUNDS):
        if i >= history or i >= convert(latest, uint256):
            break
        rid: uint80 = convert(convert(latest, uint256) - i, uint80)
        round_id: uint80 = 0
        answer: int256 = 0
        started: uint256 = 0
        updated: uint256 = 0
        answered: uint80 = 0
        round_id, answer, started, updated, answered = staticcall IOracleHub(hub).get_round_data(fid, rid)
        out.append(Round(round_id=round_id, answer=answer, updated_at=updated))
    return out


@internal
@view
def _feed(hub: address, fid: bytes32, history: uint256) -> Feed:
    out: Feed = empty(Feed)
    out.feed_id = fid
    out.info = staticcall IOracleHub(hub).feed(fid)
    out.value, out.observed_at, out.round_id = staticcall IOracleHub(hub).latest_value(fid)
    out.rounds = self._rounds(hub, fid, out.round_id, history)
    return out
