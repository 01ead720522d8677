# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Market Lens
@custom:contract-name MarketLens
@license GNU Affero General Public License v3.0 only
@notice Read-only views for the wallet app's market pages, the companion of `Lens`
        (split off to keep each under the contract size limit): every lending pool
        and every perp market in a single `eth_call` each, with the account's
        position, and the block's timestamp so ages and order windows are judged at
        the time of the read. Perp positions are valued by the `PerpLens` passed in
        (the market's own arithmetic). Stateless and unprivileged: every contract it
        reads is an argument. At most `MAX_ITEMS` markets per call from `start`,
        `lens_reads.MAX_ROUNDS` index rounds per perp market. Meant for `eth_call`.
"""


from .modules import lens_reads as reads


# @dev Markets per call.
MAX_ITEMS: constant(uint256) = 16


interface ILendingPool:
    def name() -> String[32]: view
    def symbol() -> String[32]: view
    def decimals() -> uint8: view
    def asset() -> address: view
    def collateral_token() -> address: view
    def income_token() -> address: view
    def price_feed() -> address: view
    def rate_model() -> address: view
    def lltv() -> uint256: view
    def max_ltv() -> uint256: view
    def liquidation_incentive() -> uint256: view
    def reserve_factor_bps() -> uint256: view
    def treasury() -> address: view
    def paused() -> bool: view
    def market() -> (uint256, uint256, uint256, uint256): view
    def totalAssets() -> uint256: view
    def total_collateral() -> uint256: view
    def borrow_index() -> uint256: view
    def position(account: address) -> (uint256, uint256, uint256): view
    def balanceOf(account: address) -> uint256: view
    def convertToAssets(shares: uint256) -> uint256: view
    def maxWithdraw(account: address) -> uint256: view
    def income_owed(account: address) -> uint256: view


interface IRateModel:
    def utilisation(supplied: uint256, borrowed: uint256) -> uint256: view
    def borrow_rate_per_year(supplied: uint256, borrowed: uint256) -> uint256: view


interface IPerpMarket:
    def asset() -> address: view
    def index_feed() -> address: view
    def index_feed_id() -> bytes32: view
    def oracle_hub() -> address: view
    def risk_params() -> RiskParams: view
    def paused() -> bool: view
    def fee_recipient() -> address: view
    def index_price() -> (uint256, bool): view
    def order_window() -> (uint256, uint256, uint256): view
    def market() -> (uint256, uint256, int256, uint256, uint256, int256, uint256): view
    def funding_rate() -> int256: view
    def funding_index() -> int256: view
    def position(account: address) -> (int256, uint256, uint256, int256): view
    def order(account: address) -> Order: view


interface IPerpLens:
    def pnl(market: address, account: address) -> int256: view
    def funding_owed(market: address, account: address) -> int256: view
    def equity(market: address, account: address) -> int256: view
    def margin_ratio(market: address, account: address) -> uint256: view
    def liquidation_price(market: address, account: address) -> uint256: view
    def can_liquidate(market: address, account: address) -> bool: view
    def withdrawable(market: address, account: address) -> uint256: view
    def order_status(market: address, account: address) -> uint256: view


# @dev `PerpMarket.RiskParams`.
struct RiskParams:
    skew_scale: uint256
    max_long_oi: uint256
    max_short_oi: uint256
    initial_margin_bps: uint256
    maintenance_margin_bps: uint256
    taker_fee_bps: uint256
    maker_fee_bps: uint256
    liquidation_fee_bps: uint256
    min_keeper_fee: uint256
    max_funding_velocity: uint256
    max_funding_rate: uint256


# @dev `PerpMarket.Order`.
struct Order:
    size_delta: int256
    acceptable_price: uint256
    keeper_fee: uint256
    committed_at: uint256
    commit_round: uint256


# @dev One lending pool and the account's position in it.
struct Pool:
    pool: address
    name: String[32]
    symbol: String[32]
    decimals: uint8
    asset: reads.Token
    collateral: reads.Token
    income: reads.Token
    spv_id: uint256
    feed: address
    feed_named: bool
    feed_id: bytes32
    feed_decimals: uint8
    heartbeat: uint256
    latest: reads.Answer
    price_ok: bool
    price: uint256
    price_error: Bytes[reads.MAX_ERROR]
    rate_model: address
    lltv: uint256
    max_ltv: uint256
    liquidation_incentive: uint256
    reserve_factor_bps: uint256
    treasury: address
    paused: bool
    book: uint256[4]
    total_assets: uint256
    total_collateral: uint256
    utilisation: uint256
    borrow_apr: uint256
    borrow_index: uint256
    position: uint256[3]
    vault_shares: uint256
    supplied_value: uint256
    withdrawable: uint256
    wallet_assets: uint256
    wallet_shares: uint256
    wallet_income: uint256
    income_owed: uint256


# @dev `pools`: lending markets from `start`.
struct Pools:
    now: uint256
    market_count: uint256
    pools: DynArray[Pool, MAX_ITEMS]


# @dev One perp market, its index history and the account's position and order.
struct Perp:
    market: address
    asset: reads.Token
    index_feed: address
    feed_id: bytes32
    params: RiskParams
    paused: bool
    fee_recipient: address
    value: int256
    observed_at: uint64
    round_id: uint64
    heartbeat: uint32
    max_move_bps: uint16
    halted: bool
    index_price: uint256
    index_fresh: bool
    window: uint256[3]
    long_oi: uint256
    short_oi: uint256
    margins: uint256
    fees: uint256
    insurance: int256
    deficit: uint256
    funding_rate: int256
    funding_index: int256
    rounds: DynArray[reads.Round, reads.MAX_ROUNDS]
    size: int256
    margin: uint256
    pnl: int256
    funding: int256
    equity: int256
    ratio: uint256
    liquidation_price: uint256
    liquidatable: bool
    withdrawable: uint256
    wallet: uint256
    order: Order
    order_status: uint256


# @dev `perps`: perp markets from `start`.
struct Perps:
    now: uint256
    market_count: uint256
    markets: DynArray[Perp, MAX_ITEMS]


# ---------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------


@external
@view
def pools(lending_factory: address, spv_factory: address, account: address,
          start: uint256) -> Pools:
    """
    @notice Every lending market from number `start` (at most `MAX_ITEMS`): its tokens,
            parameters, the collateral feed's latest answer (or its revert data) and
            the pool's checked price (or its revert data), its books and rates, and
            the account's position, vault shares, wallet and income owed (zeros for
            the zero address).
    @param lending_factory The LendingPoolFactory.
    @param spv_factory The SPVFactory (the collateral's SPV id).
    @param account The wallet (the zero address: none).
    @param start The first market number (1 for the first page).
    @return Pools The block time, the market count and the markets.
    """
    out: Pools = empty(Pools)
    out.now = block.timestamp
    out.market_count = staticcall reads.IMarketFactory(lending_factory).market_count()
    for i: uint256 in range(MAX_ITEMS):
        number: uint256 = start + i
        if number == 0 or number > out.market_count:
            break
        out.pools.append(self._pool(staticcall reads.IMarketFactory(lending_factory).market_at(number), spv_factory, account))
    return out


@external
@view
def perps(perp_factory: address, perp_lens: address, account: address, start: uint256,
          history: uint256) -> Perps:
    """
    @notice Every perp market from number `start` (at most `MAX_ITEMS`): its asset,
            parameters, the hub's trading state of its index and the market's own
            index verdict, order window, open interest, funds and funding, the index
            feed's last `history` rounds, and the account's position valued by the
            `PerpLens` (once the index has a value) and its pending order and status.
    @param perp_factory The PerpMarketFactory.
    @param perp_lens The PerpLens.
    @param account The wallet (the zero address: none).
    @param start The first market number (1 for the first page).
    @param history Past index rounds wanted per market (at most `reads.MAX_ROUNDS`).
    @return Perps The block time, the market count and the markets.
    """
    out: Perps = empty(Perps)
    out.now = block.timestamp
    out.market_count = staticcall reads.IMarketFactory(perp_factory).market_count()
    for i: uint256 in range(MAX_ITEMS):
        number: uint256 = start + i
        if number == 0 or number > out.market_count:
            break
        out.markets.append(self._perp(staticcall reads.IMarketFactory(perp_factory).market_at(number), perp_lens, account, history))
    return out


# ---------------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------------


@internal
@view
def _pool(pool: address, spv_factory: address, account: address) -> Pool:
    out: Pool = empty(Pool)
    out.pool = pool
    out.name = staticcall ILendingPool(pool).name()
    out.symbol = staticcall ILendingPool(pool).symbol()
    out.decimals = staticcall ILendingPool(pool).decimals()
    out.asset = reads._token(staticcall ILendingPool(pool).asset())
    share: address = staticcall ILendingPool(pool).collateral_token()
    out.collateral = reads.Token(token=share, symbol=staticcall reads.IERC20(share).symbol(), decimals=18)
    out.income = reads._token(staticcall ILendingPool(pool).income_token())
    out.spv_id = staticcall reads.ISPVFactory(spv_factory).spv_id_of_token(share)
    out.feed = staticcall ILendingPool(pool).price_feed()
    out.feed_named, out.feed_id = reads._feed_id(out.feed)
    out.feed_decimals = staticcall reads.IFeed(out.feed).decimals()
    out.heartbeat = staticcall reads.IFeed(out.feed).heartbeat()
    out.latest = reads._latest(out.feed)
    data: Bytes[reads.MAX_ERROR] = b""
    out.price_ok, data = raw_call(pool, method_id("price()"), max_outsize=reads.MAX_ERROR, is_static_call=True, revert_on_failure=False)
    if out.price_ok:
        out.price = abi_decode(data, uint256)
    else:
        out.price_error = data
    out.rate_model = staticcall ILendingPool(pool).rate_model()
    out.lltv = staticcall ILendingPool(pool).lltv()
    out.max_ltv = staticcall ILendingPool(pool).max_ltv()
    out.liquidation_incentive = staticcall ILendingPool(pool).liquidation_incentive()
    out.reserve_factor_bps = staticcall ILendingPool(pool).reserve_factor_bps()
    out.treasury = staticcall ILendingPool(pool).treasury()
    out.paused = staticcall ILendingPool(pool).paused()
    out.book[0], out.book[1], out.book[2], out.book[3] = staticcall ILendingPool(pool).market()
    out.total_assets = staticcall ILendingPool(pool).totalAssets()
    out.total_collateral = staticcall ILendingPool(pool).total_collateral()
    out.utilisation = staticcall IRateModel(out.rate_model).utilisation(out.book[0], out.book[2])
    out.borrow_apr = staticcall IRateModel(out.rate_model).borrow_rate_per_year(out.book[0], out.book[2])
    out.borrow_index = staticcall ILendingPool(pool).borrow_index()
    if account == empty(address):
        return out
    out.position[0], out.position[1], out.position[2] = staticcall ILendingPool(pool).position(account)
    out.vault_shares = staticcall ILendingPool(pool).balanceOf(account)
    if out.vault_shares != 0:
        out.supplied_value = staticcall ILendingPool(pool).convertToAssets(out.vault_shares)
        out.withdrawable = staticcall ILendingPool(pool).maxWithdraw(account)
    out.wallet_assets = staticcall reads.IERC20(out.asset.token).balanceOf(account)
    out.wallet_shares = staticcall reads.IERC20(share).balanceOf(account)
    out.wallet_income = staticcall reads.IERC20(out.income.token).balanceOf(account)
    out.income_owed = staticcall ILendingPool(pool).income_owed(account)
    return out


@internal
@view
def _perp(market: address, perp_lens: address, account: address, history: uint256) -> Perp:
    out: Perp = empty(Perp)
    out.market = market
    out.asset = reads._token(staticcall IPerpMarket(market).asset())
    out.index_feed = staticcall IPerpMarket(market).index_feed()
    out.feed_id = staticcall IPerpMarket(market).index_feed_id()
    out.params = staticcall IPerpMarket(market).risk_params()
    out.paused = staticcall IPerpMarket(market).paused()
    out.fee_recipient = staticcall IPerpMarket(market).fee_recipient()
    hub: address = staticcall IPerpMarket(market).oracle_hub()
    out.value, out.observed_at, out.round_id, out.heartbeat, out.max_move_bps, out.halted = staticcall reads.IOracleHub(hub).trading_state(out.feed_id)
    if out.round_id != 0:
        out.index_price, out.index_fresh = staticcall IPerpMarket(market).index_price()
    out.window[0], out.window[1], out.window[2] = staticcall IPerpMarket(market).order_window()
    skew: int256 = 0
    out.long_oi, out.short_oi, skew, out.margins, out.fees, out.insurance, out.deficit = staticcall IPerpMarket(market).market()
    out.funding_rate = staticcall IPerpMarket(market).funding_rate()
    out.funding_index = staticcall IPerpMarket(market).funding_index()
    out.rounds = reads._rounds(hub, out.feed_id, out.round_id, history)
    if account == empty(address):
        return out
    last_price: uint256 = 0
    last_funding: int256 = 0
    out.size, out.margin, last_price, last_funding = staticcall IPerpMarket(market).position(account)
    out.equity = convert(out.margin, int256)
    if out.round_id != 0:
        out.pnl = staticcall IPerpLens(perp_lens).pnl(market, account)
        out.funding = staticcall IPerpLens(perp_lens).funding_owed(market, account)
        out.equity = staticcall IPerpLens(perp_lens).equity(market, account)
        out.ratio = staticcall IPerpLens(perp_lens).margin_ratio(market, account)
        out.liquidation_price = staticcall IPerpLens(perp_lens).liquidation_price(market, account)
        out.liquidatable = staticcall IPerpLens(perp_lens).can_liquidate(market, account)
        out.withdrawable = staticcall IPerpLens(perp_lens).withdrawable(market, account)
    else:
        out.withdrawable = out.margin
    out.wallet = staticcall reads.IERC20(out.asset.token).balanceOf(account)
    out.order = staticcall IPerpMarket(market).order(account)
    if out.order.committed_at != 0:
        out.order_status = staticcall IPerpLens(perp_lens).order_status(market, account)
    return out
