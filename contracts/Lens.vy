# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Page Lens
@custom:contract-name Lens
@license GNU Affero General Public License v3.0 only
@notice Read-only views for the wallet app (the role of Morpho's and Aave's UI data
        providers): each external function reads one page section of the suite in a
        single `eth_call` and returns the raw values the client's models are built
        from (`gpushares/client/lens.py`), with the block's timestamp so derived
        fields (ages, expiries) are judged at the time of the read. This one reads
        the investor's side: the portfolio, an SPV's page, the subscription vaults
        and the oracle hub; `MarketLens` reads the lending pools and perp markets.
        Stateless and unprivileged: every contract it reads is an argument, so one
        deployment serves any deployment of the suite. Lists are bounded
        (`MAX_ITEMS` SPVs or vaults per call from `start`, `MAX_GPUS` GPUs,
        `MAX_FEEDS` feeds, `lens_reads.MAX_ROUNDS` rounds per feed); a reader pages
        with `start` beyond them. Meant for `eth_call`: a contract calling it pays
        for every read.
"""


from .modules import lens_reads as reads


# @dev SPVs or vaults per call.
MAX_ITEMS: constant(uint256) = 16
# @dev GPUs of one SPV's register per call.
MAX_GPUS: constant(uint256) = 256
# @dev Feeds of the hub per call.
MAX_FEEDS: constant(uint256) = 32
# @dev keccak256("OPERATOR_ROLE"): the share token's role that mints and burns.
OPERATOR_ROLE: constant(bytes32) = keccak256("OPERATOR_ROLE")


interface IRegistry:
    def investor(account: address) -> reads.Investor: view
    def asset_locations(token: address) -> DynArray[uint16, reads.MAX_LOCATIONS]: view
    def asset_title_recognised(token: address) -> bool: view
    def jurisdiction(code: uint16) -> (uint8, uint8, bytes32): view
    def title_override_in_force(token: address, jurisdiction: uint16) -> bool: view


interface IVaultFactory:
    def vault_count() -> uint256: view
    def vault_at(number: uint256) -> address: view
    def vault_of(token: address) -> address: view


interface IVault:
    def share() -> address: view
    def asset() -> address: view
    def nav_feed() -> address: view
    def treasury() -> address: view
    def notice_period() -> uint256: view
    def redemption_fee_bps() -> uint256: view
    def cancel_after() -> uint256: view
    def total_pending_deposit_assets() -> uint256: view
    def total_claimable_deposit_assets() -> uint256: view
    def total_claimable_deposit_shares() -> uint256: view
    def total_pending_redeem_shares() -> uint256: view
    def total_claimable_redeem_shares() -> uint256: view
    def total_claimable_redeem_assets() -> uint256: view
    def redemption_funds() -> uint256: view
    def total_income_owed() -> uint256: view
    def last_fulfilment_nav() -> uint256: view
    def last_fulfilment_time() -> uint256: view
    def request(controller: address) -> (uint256, uint256, uint256, uint256, uint256, uint256, uint256, uint256): view
    def income_owed(account: address) -> uint256: view


# @dev One SPV's share holding of the account and its eligibility to receive shares.
struct Holding:
    spv_id: uint256
    token: address
    shares: uint256
    frozen_shares: uint256
    claimable: uint256
    income: reads.Token
    income_balance: uint256
    receive: reads.Verdict


# @dev `portfolio`: the account's registry record and every SPV's holding.
struct Portfolio:
    now: uint256
    spv_count: uint256
    investor: reads.Investor
    holdings: DynArray[Holding, MAX_ITEMS]


# @dev The title status of one location of an SPV's GPUs.
struct Title:
    location: uint16
    title: uint8
    policy: uint8
    override_in_force: bool


# @dev `spv_page`: an SPV, its token, GPU register, locations and NAV feed.
struct SpvPage:
    now: uint256
    spv_count: uint256
    spv: reads.SPV
    token_name: String[32]
    token_symbol: String[5]
    shares_per_gpu: uint256
    supply: uint256
    mint_cap: uint256
    backing: uint256
    paused: bool
    gpu_count: uint256
    active_gpus: uint256
    impaired_gpus: uint256
    income: reads.Token
    total_distributed: uint256
    total_claimed: uint256
    gpus: DynArray[reads.GPU, MAX_GPUS]
    title_recognised: bool
    titles: DynArray[Title, reads.MAX_LOCATIONS]
    has_nav: bool
    nav: reads.Feed


# @dev One subscription vault and the account's requests in it.
struct Vault:
    vault: address
    spv_id: uint256
    asset: reads.Token
    share: reads.Token
    treasury: address
    notice_period: uint256
    fee_bps: uint256
    cancel_after: uint256
    feed: address
    feed_named: bool
    feed_id: bytes32
    heartbeat: uint256
    latest: reads.Answer
    supply: uint256
    mint_cap: uint256
    shares_per_gpu: uint256
    totals: uint256[8]
    last_fulfilment_nav: uint256
    last_fulfilment_time: uint256
    vault_role: bool
    vault_code: uint8
    request: uint256[8]
    income_owed: uint256
    wallet_assets: uint256
    wallet_shares: uint256
    eligibility: reads.Verdict
    issue_shares: uint256
    issue: reads.Verdict
    burn: reads.Verdict


# @dev `vaults`: subscription vaults from `start`.
struct Vaults:
    now: uint256
    vault_count: uint256
    vaults: DynArray[Vault, MAX_ITEMS]


# @dev `oracle`: the hub's signer set, checkpoint and feeds from `start`.
struct Oracle:
    now: uint256
    config_version: uint64
    threshold: uint8
    signers: DynArray[address, 31]
    checkpoint_size: uint64
    checkpoint_root: bytes32
    feed_count: uint256
    feeds: DynArray[reads.Feed, MAX_FEEDS]


# ---------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------


@external
@view
def portfolio(spv_factory: address, account: address, start: uint256) -> Portfolio:
    """
    @notice The account's registry record and, for every SPV from id `start` (at most
            `MAX_ITEMS`), its shares, frozen shares, claimable income, income-token
            balance and whether it may receive the SPV's shares now: the token's
            `detectTransferRestriction(0x0, account, 0)` (the issuance check: pause,
            title, the receiver's record and residence) with its message.
    @param spv_factory The SPVFactory.
    @param account The wallet.
    @param start The first SPV id (1 for the first page).
    @return Portfolio The block time, the SPV count, the record and the holdings.
    """
    registry: address = staticcall reads.ISPVFactory(spv_factory).compliance_registry()
    out: Portfolio = empty(Portfolio)
    out.now = block.timestamp
    out.spv_count = staticcall reads.ISPVFactory(spv_factory).spv_count()
    out.investor = staticcall IRegistry(registry).investor(account)
    for i: uint256 in range(MAX_ITEMS):
        spv_id: uint256 = start + i
        if spv_id == 0 or spv_id > out.spv_count:
            break
        token: address = (staticcall reads.ISPVFactory(spv_factory).spvs(spv_id)).token
        income: reads.Token = reads._token(staticcall reads.IShareToken(token).income_token())
        out.holdings.append(Holding(
            spv_id=spv_id,
            token=token,
            shares=staticcall reads.IShareToken(token).balanceOf(account),
            frozen_shares=staticcall reads.IShareToken(token).getFrozenTokens(account),
            claimable=staticcall reads.IShareToken(token).claimable(account),
            income=income,
            income_balance=staticcall reads.IERC20(income.token).balanceOf(account),
            receive=reads._verdict(token, empty(address), account, 0),
        ))
    return out


@external
@view
def spv_page(spv_factory: address, hub: address, vault_factory: address, spv_id: uint256,
             history: uint256) -> SpvPage:
    """
    @notice SPV `spv_id`: its record, share token, backing and income, its GPU register
            (the first `MAX_GPUS`), the title status of each location its GPUs sit in,
            and its NAV-per-share feed with the last `history` rounds: the feed of the
            SPV's subscription vault, else the hub's feed `NAV/<symbol>/USD` if there
            is one (`has_nav` False otherwise).
    @param spv_factory The SPVFactory.
    @param hub The OracleHub.
    @param vault_factory The SubscriptionVaultFactory (the zero address: none).
    @param spv_id The SPV (1, 2, ...).
    @param history Past rounds wanted (at most `reads.MAX_ROUNDS`).
    @return SpvPage The page (only `now` and `spv_count` for an unknown id).
    """
    out: SpvPage = empty(SpvPage)
    out.now = block.timestamp
    out.spv_count = staticcall reads.ISPVFactory(spv_factory).spv_count()
    if spv_id == 0 or spv_id > out.spv_count:
        return out
    out.spv = staticcall reads.ISPVFactory(spv_factory).spvs(spv_id)
    token: address = out.spv.token
    out.token_name = staticcall reads.IShareToken(token).name()
    out.token_symbol = staticcall reads.IShareToken(token).symbol()
    out.shares_per_gpu = staticcall reads.IShareToken(token).shares_per_gpu()
    out.supply = staticcall reads.IShareToken(token).totalSupply()
    out.mint_cap, out.backing = staticcall reads.IShareToken(token).backing()
    out.paused = staticcall reads.IShareToken(token).paused()
    out.gpu_count = staticcall reads.IShareToken(token).gpu_count()
    out.active_gpus = staticcall reads.IShareToken(token).active_gpus()
    out.impaired_gpus = staticcall reads.IShareToken(token).impaired_gpus()
    out.income = reads._token(staticcall reads.IShareToken(token).income_token())
    out.total_distributed = staticcall reads.IShareToken(token).total_distributed()
    out.total_claimed = staticcall reads.IShareToken(token).total_claimed()
    for gpu_id: uint256 in range(1, MAX_GPUS + 1):
        if gpu_id > out.gpu_count:
            break
        out.gpus.append(staticcall reads.IShareToken(token).gpus(gpu_id))
    registry: address = staticcall reads.ISPVFactory(spv_factory).compliance_registry()
    out.title_recognised = staticcall IRegistry(registry).asset_title_recognised(token)
    for location: uint16 in staticcall IRegistry(registry).asset_locations(token):
        title: uint8 = 0
        policy: uint8 = 0
        rules: bytes32 = empty(bytes32)
        title, policy, rules = staticcall IRegistry(registry).jurisdiction(location)
        out.titles.append(Title(
            location=location, title=title, policy=policy,
            override_in_force=staticcall IRegistry(registry).title_override_in_force(token, location),
        ))
    fid: bytes32 = empty(bytes32)
    vault: address = empty(address)
    if vault_factory != empty(address):
        vault = staticcall IVaultFactory(vault_factory).vault_of(token)
    if vault != empty(address):
        named: bool = False
        named, fid = reads._feed_id(staticcall IVault(vault).nav_feed())
    else:
        fid = extract32(concat(convert(concat("NAV/", out.token_symbol, "/USD"), Bytes[13]), empty(bytes32)), 0)
    if (staticcall reads.IOracleHub(hub).feed(fid)).exists:
        out.has_nav = True
        out.nav = reads._feed(hub, fid, history)
    return out


@external
@view
def vaults(vault_factory: address, spv_factory: address, account: address,
           start: uint256) -> Vaults:
    """
    @notice Every subscription vault from number `start` (at most `MAX_ITEMS`): its
            terms, the NAV feed's latest answer (or its revert data), the share
            token's supply and backing, the vault's books, whether it holds the
            token's OPERATOR_ROLE and may hold shares; and the account's requests,
            income owed, wallet, eligibility for newly issued shares, and the token's
            verdicts on issuing its pending deposit (at the latest answer) to the
            vault and burning its pending redemption from it.
    @param vault_factory The SubscriptionVaultFactory.
    @param spv_factory The SPVFactory (the share token's SPV id).
    @param account The wallet (the zero address: none).
    @param start The first vault number (1 for the first page).
    @return Vaults The block time, the vault count and the vaults.
    """
    out: Vaults = empty(Vaults)
    out.now = block.timestamp
    out.vault_count = staticcall IVaultFactory(vault_factory).vault_count()
    for i: uint256 in range(MAX_ITEMS):
        number: uint256 = start + i
        if number == 0 or number > out.vault_count:
            break
        out.vaults.append(self._vault(staticcall IVaultFactory(vault_factory).vault_at(number), spv_factory, account))
    return out


@external
@view
def oracle(hub: address, start: uint256, history: uint256) -> Oracle:
    """
    @notice The hub: signer set and threshold, config version, log checkpoint, and
            each feed from index `start` (at most `MAX_FEEDS`) with its settings,
            latest value and last `history` rounds.
    @param hub The OracleHub.
    @param start The first feed index (0 for the first page).
    @param history Past rounds wanted per feed (at most `reads.MAX_ROUNDS`).
    @return Oracle The block time, the hub and its feeds.
    """
    out: Oracle = empty(Oracle)
    out.now = block.timestamp
    out.config_version = staticcall reads.IOracleHub(hub).config_version()
    out.threshold = staticcall reads.IOracleHub(hub).threshold()
    out.signers = staticcall reads.IOracleHub(hub).signers()
    out.checkpoint_size, out.checkpoint_root = staticcall reads.IOracleHub(hub).checkpoint()
    out.feed_count = staticcall reads.IOracleHub(hub).feed_count()
    for i: uint256 in range(MAX_FEEDS):
        if start + i >= out.feed_count:
            break
        out.feeds.append(reads._feed(hub, staticcall reads.IOracleHub(hub).feed_ids(start + i), history))
    return out


# ---------------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------------


@internal
@view
def _vault(vault: address, spv_factory: address, account: address) -> Vault:
    out: Vault = empty(Vault)
    out.vault = vault
    token: address = staticcall IVault(vault).share()
    out.spv_id = staticcall reads.ISPVFactory(spv_factory).spv_id_of_token(token)
    out.asset = reads._token(staticcall IVault(vault).asset())
    out.share = reads.Token(token=token, symbol=staticcall reads.IERC20(token).symbol(), decimals=18)
    out.treasury = staticcall IVault(vault).treasury()
    out.notice_period = staticcall IVault(vault).notice_period()
    out.fee_bps = staticcall IVault(vault).redemption_fee_bps()
    out.cancel_after = staticcall IVault(vault).cancel_after()
    out.feed = staticcall IVault(vault).nav_feed()
    out.feed_named, out.feed_id = reads._feed_id(out.feed)
    out.heartbeat = staticcall reads.IFeed(out.feed).heartbeat()
    out.latest = reads._latest(out.feed)
    out.supply = staticcall reads.IShareToken(token).totalSupply()
    backed: uint256 = 0
    out.mint_cap, backed = staticcall reads.IShareToken(token).backing()
    out.shares_per_gpu = staticcall reads.IShareToken(token).shares_per_gpu()
    out.totals = [
        staticcall IVault(vault).total_pending_deposit_assets(),
        staticcall IVault(vault).total_claimable_deposit_assets(),
        staticcall IVault(vault).total_claimable_deposit_shares(),
        staticcall IVault(vault).total_pending_redeem_shares(),
        staticcall IVault(vault).total_claimable_redeem_shares(),
        staticcall IVault(vault).total_claimable_redeem_assets(),
        staticcall IVault(vault).redemption_funds(),
        staticcall IVault(vault).total_income_owed(),
    ]
    out.last_fulfilment_nav = staticcall IVault(vault).last_fulfilment_nav()
    out.last_fulfilment_time = staticcall IVault(vault).last_fulfilment_time()
    out.vault_role = staticcall reads.IShareToken(token).hasRole(OPERATOR_ROLE, vault)
    out.vault_code = staticcall reads.IShareToken(token).detectTransferRestriction(empty(address), vault, 0)
    if account == empty(address):
        return out
    r: uint256[8] = empty(uint256[8])
    r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] = staticcall IVault(vault).request(account)
    out.request = r
    out.income_owed = staticcall IVault(vault).income_owed(account)
    out.wallet_assets = staticcall reads.IERC20(out.asset.token).balanceOf(account)
    out.wallet_shares = staticcall reads.IERC20(token).balanceOf(account)
    out.eligibility = reads._verdict(token, empty(address), account, 0)
    # The pending deposit's shares at the latest answer (the vault's rounding).
    if r[0] != 0 and out.latest.ok and out.latest.answer > 0:
        out.issue_shares = r[0] * 10**26 // (convert(out.latest.answer, uint256) * 10 ** convert(out.asset.decimals, uint256))
        if out.issue_shares != 0:
            out.issue = reads._verdict(token, empty(address), vault, out.issue_shares)
    if r[4] != 0:
        out.burn = reads._verdict(token, vault, empty(address), r[4])
    return out
