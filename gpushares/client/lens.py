"""The wallet app's page reads: one `eth_call` per page section through the deployment's
`Lens` (portfolio, SPV page, subscription vaults, oracle hub) and `MarketLens` (lending
pools, perp markets), returning the same models as the per-call readers of the area
modules, built by the same builder functions (`spv.gpu_from`, `kyc.record_from`,
`oracle.feed_view_from`, `pool.price_view_from` / `market_from` / `position_from`,
`perp.index_view_from` / `order_from` / `position_from`, `vault.nav_view_from` and the
vault's own checks over a `vault.VaultSnapshot`). "Now" is the timestamp of the block
the read ran in, which the lens returns.

    page = lens.portfolio(client, account)            # 1 call
    page = lens.spv_page(client, 1, history=64)       # 1 call
    sections = lens.pools(client, account)            # 1 call (None: no personal part)
    sections = lens.perps(client, account)            # 1 call
    sections = lens.vaults(client, account)           # 1 call
    page = lens.oracle(client, history=64)            # 1 call

One call covers up to 16 SPVs, pools, perp markets or vaults and 32 oracle feeds (and
256 GPUs of an SPV); beyond that a reader pages, one more call per 16 (32 feeds). Rounds:
at most `MAX_HISTORY` per feed. Nothing here comes from event logs: the per-call
readers' event scans (`pool.loans`, `perp.positions`, `vault.requests`) have no lens
counterpart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from gpushares import lending
from gpushares.client import kyc, perp, pool, spv, vault
from gpushares.client import oracle as hub_reads
from gpushares.client.chain import ZERO_ADDRESS, Reverted, checksum, revert_reason
from gpushares.client.context import Client
from gpushares.client.markets import Token
from gpushares.client.units import SHARE_DECIMALS, BadInput, address
from oracle.reports import feed_name

#: Rounds per feed a lens call returns at most (`lens_reads.MAX_ROUNDS`).
MAX_HISTORY = 64
#: SPVs, pools, markets or vaults per call (`MAX_ITEMS`), feeds per call (`MAX_FEEDS`).
PAGE = 16
FEED_PAGE = 32
#: The registry's title statuses (`ComplianceRegistry.jurisdiction`).
TITLE_NAMES = {0: "unlisted", 1: "recognised", 2: "not recognised", 3: "unclear",
               4: "sanctioned"}
POLICY_NAMES = {0: "unlisted", 1: "allowed", 2: "accredited only", 3: "blocked"}

_FROZEN = ConfigDict(frozen=True)


class Eligibility(BaseModel):
    """A share token's ERC-1404 verdict (code 0: allowed, message "")."""

    model_config = _FROZEN

    code: int
    message: str

    @property
    def allowed(self) -> bool:
        return self.code == 0


class PortfolioEntry(BaseModel):
    """One SPV in an account's portfolio: its holding and whether the account may
    receive the SPV's shares now: the token's `detectTransferRestriction(0x0, account,
    0)`, the issuance check (pause, title where the GPUs sit, the account's record and
    residence), the same check `vault.investor` reports as `eligible`."""

    model_config = _FROZEN

    token: str
    holding: spv.Holding
    receive: Eligibility


class Portfolio(BaseModel):
    model_config = _FROZEN

    account: str
    now: int
    record: kyc.InvestorRecord
    entries: list[PortfolioEntry]


class LocationTitle(BaseModel):
    """The registry's row for one jurisdiction an SPV's GPUs sit in."""

    model_config = _FROZEN

    location: int
    title: int
    title_name: str
    policy: int
    policy_name: str
    override_in_force: bool


class FeedHistory(BaseModel):
    """A feed now and its last rounds, newest first."""

    model_config = _FROZEN

    feed: hub_reads.FeedView
    rounds: list[hub_reads.RoundView]


class SpvPage(BaseModel):
    model_config = _FROZEN

    now: int
    status: spv.SpvStatus
    gpus: list[spv.Gpu]
    title_recognised: bool
    titles: list[LocationTitle]
    nav: FeedHistory | None  # the vault's NAV feed, else the hub's NAV/<symbol>/USD


class PoolSection(BaseModel):
    model_config = _FROZEN

    market: pool.MarketView
    position: pool.PositionView | None


class PerpSection(BaseModel):
    model_config = _FROZEN

    market: perp.MarketView
    index_rounds: list[hub_reads.RoundView]
    position: perp.PositionView | None
    order: perp.OrderView | None


class VaultSection(BaseModel):
    model_config = _FROZEN

    status: vault.VaultView
    investor: vault.InvestorView | None


class OraclePage(BaseModel):
    model_config = _FROZEN

    now: int
    hub: hub_reads.HubView
    rounds: dict[str, list[hub_reads.RoundView]]  # by feed name


# ---------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------


def _history(history: int) -> int:
    if not 0 <= history <= MAX_HISTORY:
        raise BadInput(f"history: {history} rounds is not between 0 and {MAX_HISTORY}")
    return history


def _account(account: str | None) -> str:
    return ZERO_ADDRESS if account is None else address(account, "account")


def _token(raw: Any, decimals: int | None = None) -> Token:
    return Token(address=checksum(raw.token), symbol=str(raw.symbol),
                 decimals=int(raw.decimals) if decimals is None else decimals)


def _rounds(raw: Any) -> list[hub_reads.RoundView]:
    return [hub_reads.RoundView(round_id=int(r.round_id), value=int(r.answer),
                                updated_at=int(r.updated_at)) for r in raw]


def _feed(raw: Any, now: int) -> FeedHistory:
    fid = bytes(raw.feed_id)
    view = hub_reads.feed_view_from(fid, raw.info, (raw.value, raw.observed_at, raw.round_id),
                                    now)
    return FeedHistory(feed=view, rounds=_rounds(raw.rounds))


def _latest(raw: Any) -> tuple[int, int] | Reverted:
    """A lens `Answer`: the (answer, updatedAt) or the feed's revert."""
    if raw.ok:
        return int(raw.answer), int(raw.updated_at)
    return Reverted(revert_reason(bytes(raw.error)))


def _name(named: bool, fid: bytes, fallback: str) -> str:
    if not named:
        return fallback
    try:
        return feed_name("0x" + fid.hex())
    except ValueError:
        return fallback


def _paged(read: Any, first: int, page: int) -> list[Any]:
    """Every item of a paged lens view from index `first`: `read(start)` returns (how
    many there are, the items from `start`); one call per `page` items."""
    items: list[Any] = []
    start = first
    while True:
        total, got = read(start)
        items += got
        if not got or len(items) >= total:
            return items
        start += page


# ---------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------


def portfolio(client: Client, account: str) -> Portfolio:
    """`account`'s record and, for every SPV, its holding and whether it may receive the
    SPV's shares now (one call per 16 SPVs)."""
    who = address(account, "account")
    lens, factory = client.lens(), client.spv_factory().address
    first = None

    def read(start: int) -> tuple[int, list[Any]]:
        nonlocal first
        raw = lens.portfolio(factory, who, start)
        first = first or raw
        return int(raw.spv_count), list(raw.holdings)

    holdings = _paged(read, 1, PAGE)
    assert first is not None
    now = int(first.now)
    entries = [PortfolioEntry(
        token=checksum(h.token),
        holding=spv.Holding(spv_id=int(h.spv_id), holder=who, shares=int(h.shares),
                            frozen_shares=int(h.frozen_shares), claimable=int(h.claimable),
                            income_balance=int(h.income_balance),
                            income_symbol=str(h.income.symbol),
                            income_decimals=int(h.income.decimals)),
        receive=Eligibility(code=int(h.receive.code), message=str(h.receive.message)))
        for h in holdings]
    return Portfolio(account=who, now=now, record=kyc.record_from(who, first.investor, now),
                     entries=entries)


def spv_page(client: Client, spv_id: int, history: int = 64) -> SpvPage:
    """SPV `spv_id`: status, GPU register (the first 256), the title of each location its
    GPUs sit in, and its NAV feed with the last `history` rounds (one call)."""
    if not 1 <= spv_id < 2**256:  # not even a uint256: no SPV has it
        raise BadInput(f"unknown SPV id {spv_id}: SPV ids are 1, 2, ...; see `ape run spv "
                       "status`")
    hub = client.deployed.oracle_hub or ZERO_ADDRESS
    vaults = client.deployed.subscription_vault_factory or ZERO_ADDRESS
    raw = client.lens().spv_page(client.spv_factory().address, hub, vaults, spv_id,
                                 _history(history))
    count = int(raw.spv_count)
    if not 1 <= spv_id <= count:
        listing = f"ids 1..{count}" if count else "none yet"
        raise BadInput(f"unknown SPV id {spv_id}: this factory has {count} SPV(s) "
                       f"({listing}); see `ape run spv status`")
    now, record = int(raw.now), raw.spv
    status = spv.SpvStatus(
        spv_id=spv_id, legal_name=str(record.legal_name), jurisdiction=int(record.jurisdiction),
        lei=str(record.lei), documents_hash="0x" + bytes(record.documents_hash).hex(),
        operator=checksum(record.operator), registered_at=int(record.registered_at),
        token=checksum(record.token), token_name=str(raw.token_name),
        token_symbol=str(raw.token_symbol), shares_per_gpu=int(raw.shares_per_gpu),
        supply=int(raw.supply), mint_cap=int(raw.mint_cap), backing=int(raw.backing),
        paused=bool(raw.paused), gpu_count=int(raw.gpu_count),
        active_gpus=int(raw.active_gpus), impaired_gpus=int(raw.impaired_gpus),
        locations=tuple(sorted(int(t.location) for t in raw.titles)),
        income_token=checksum(raw.income.token), income_symbol=str(raw.income.symbol),
        income_decimals=int(raw.income.decimals),
        total_distributed=int(raw.total_distributed), total_claimed=int(raw.total_claimed))
    titles = [LocationTitle(location=int(t.location), title=int(t.title),
                            title_name=TITLE_NAMES.get(int(t.title), "unknown"),
                            policy=int(t.policy),
                            policy_name=POLICY_NAMES.get(int(t.policy), "unknown"),
                            override_in_force=bool(t.override_in_force))
              for t in sorted(raw.titles, key=lambda t: int(t.location))]
    return SpvPage(now=now, status=status,
                   gpus=[spv.gpu_from(i, g) for i, g in enumerate(raw.gpus, start=1)],
                   title_recognised=bool(raw.title_recognised), titles=titles,
                   nav=_feed(raw.nav, now) if raw.has_nav else None)


def pools(client: Client, account: str | None) -> list[PoolSection]:
    """Every lending market, and `account`'s position in each (None: no personal part),
    one call per 16 markets."""
    who = _account(account)
    lens = client.market_lens()
    factory, spvs = client.lending_factory().address, client.spv_factory().address
    def read(start: int) -> tuple[int, list[Any]]:
        raw = lens.pools(factory, spvs, who, start)
        return int(raw.market_count), [(int(raw.now), p) for p in raw.pools]

    return [_pool_section(number, p, now, None if account is None else who)
            for number, (now, p) in enumerate(_paged(read, 1, PAGE), start=1)]


def _pool_section(number: int, p: Any, now: int, who: str | None) -> PoolSection:
    asset, collateral = _token(p.asset), _token(p.collateral, SHARE_DECIMALS)
    params = lending.Market(asset_decimals=asset.decimals, feed_decimals=int(p.feed_decimals),
                            lltv=int(p.lltv), max_ltv=int(p.max_ltv))
    error = bytes(p.price_error)

    def checked() -> int:
        if not p.price_ok:
            raise Reverted(revert_reason(error))
        return int(p.price)

    price = pool.price_view_from(int(p.heartbeat), params.feed_decimals, _latest(p.latest),
                                 checked, now)
    _supplied, reserves, debt, idle = (int(x) for x in p.book)
    market = pool.market_from(
        number=number, address=checksum(p.pool), name=str(p.name), symbol=str(p.symbol),
        vault_decimals=int(p.decimals), asset=asset, collateral=collateral,
        income=_token(p.income), spv_id=int(p.spv_id),
        feed=_name(bool(p.feed_named), bytes(p.feed_id), "?"), feed_adapter=checksum(p.feed),
        rate_model=checksum(p.rate_model), lltv=params.lltv, max_ltv=params.max_ltv,
        liquidation_incentive=int(p.liquidation_incentive),
        reserve_factor_bps=int(p.reserve_factor_bps), treasury=checksum(p.treasury),
        paused=bool(p.paused), price=price, total_supplied=int(p.total_assets),
        reserves=reserves, total_borrowed=debt, idle=idle,
        total_collateral=int(p.total_collateral), utilisation=int(p.utilisation),
        borrow_apr=int(p.borrow_apr))
    if who is None:
        return PoolSection(market=market, position=None)
    collateral_amount, debt_amount, scaled = (int(x) for x in p.position)
    position = pool.position_from(
        market=number, account=who, asset=asset, collateral_token=collateral, params=params,
        collateral=collateral_amount, debt=debt_amount, scaled=scaled, price=price,
        borrow_index=int(p.borrow_index), vault_shares=int(p.vault_shares),
        supplied_value=int(p.supplied_value), withdrawable=int(p.withdrawable),
        wallet_assets=int(p.wallet_assets), wallet_shares=int(p.wallet_shares),
        wallet_income=int(p.wallet_income), income_owed=int(p.income_owed))
    return PoolSection(market=market, position=position)


def perps(client: Client, account: str | None, history: int = 64) -> list[PerpSection]:
    """Every perp market with its index feed's last `history` rounds, and `account`'s
    position and pending order in each (None: no personal part), one call per 16."""
    who = _account(account)
    lens, rounds = client.market_lens(), _history(history)
    factory = client.perp_factory().address
    perp_lens = perp.lens(client).address

    def read(start: int) -> tuple[int, list[Any]]:
        raw = lens.perps(factory, perp_lens, who, start, rounds)
        return int(raw.market_count), [(int(raw.now), m) for m in raw.markets]

    return [_perp_section(number, m, now, None if account is None else who)
            for number, (now, m) in enumerate(_paged(read, 1, PAGE), start=1)]


def _perp_section(number: int, m: Any, now: int, who: str | None) -> PerpSection:
    asset = _token(m.asset)
    has_data = int(m.round_id) != 0
    index = perp.index_view_from(
        (m.value, m.observed_at, m.round_id, m.heartbeat, m.max_move_bps, m.halted),
        (m.index_price, m.index_fresh) if has_data else None, now)
    min_delay, max_age, fee = (int(x) for x in m.window)
    window = perp.OrderWindow(min_delay=min_delay, max_age=max_age, keeper_fee=fee)
    fid = bytes(m.feed_id)
    market = perp.MarketView(
        number=number, address=checksum(m.market), feed=feed_name("0x" + fid.hex()),
        feed_adapter=checksum(m.index_feed), asset=asset, params=perp.params_from(m.params),
        paused=bool(m.paused), fee_recipient=checksum(m.fee_recipient), index=index,
        window=window, long_oi=int(m.long_oi), short_oi=int(m.short_oi),
        margins=int(m.margins), fees=int(m.fees), insurance=int(m.insurance),
        deficit=int(m.deficit), funding_rate=int(m.funding_rate),
        funding_index=int(m.funding_index))
    if who is None:
        return PerpSection(market=market, index_rounds=_rounds(m.rounds), position=None,
                           order=None)
    order = (perp.order_from(number, who, asset, m.order, int(m.order_status), window, now)
             if int(m.order.committed_at) else None)
    views = ((m.pnl, m.funding, m.equity, m.ratio, m.liquidation_price, m.liquidatable,
              m.withdrawable) if has_data else None)
    position = perp.position_from(number, who, asset, int(m.size), int(m.margin), views,
                                  int(m.wallet), index, order)
    return PerpSection(market=market, index_rounds=_rounds(m.rounds), position=position,
                       order=order)


def vaults(client: Client, account: str | None) -> list[VaultSection]:
    """Every subscription vault, and `account`'s requests, wallet and eligibility in
    each (None: no personal part), one call per 16 vaults."""
    who = _account(account)
    lens = client.lens()
    factory = vault.vault_factory(client).address
    spvs = client.spv_factory().address

    def read(start: int) -> tuple[int, list[Any]]:
        raw = lens.vaults(factory, spvs, who, start)
        return int(raw.vault_count), [(int(raw.now), v) for v in raw.vaults]

    return [_vault_section(v, now, None if account is None else who)
            for now, v in _paged(read, 1, PAGE)]


def _vault_section(v: Any, now: int, who: str | None) -> VaultSection:
    where, asset, share = checksum(v.vault), _token(v.asset), _token(v.share, SHARE_DECIMALS)
    adapter = checksum(v.feed)
    nav = vault.nav_view_from(_name(bool(v.feed_named), bytes(v.feed_id), adapter), adapter,
                              int(v.heartbeat), _latest(v.latest), now)
    totals = [int(x) for x in v.totals]
    status = vault.VaultView(
        spv_id=int(v.spv_id), address=where, asset=asset, share=share,
        treasury=checksum(v.treasury), notice_period=int(v.notice_period),
        redemption_fee_bps=int(v.fee_bps), cancel_after=int(v.cancel_after), nav=nav,
        supply=int(v.supply), mint_cap=int(v.mint_cap), shares_per_gpu=int(v.shares_per_gpu),
        total_pending_deposit_assets=totals[0], total_claimable_deposit_assets=totals[1],
        total_claimable_deposit_shares=totals[2], total_pending_redeem_shares=totals[3],
        total_claimable_redeem_shares=totals[4], total_claimable_redeem_assets=totals[5],
        redemption_funds=totals[6], total_income_owed=totals[7],
        last_fulfilment_nav=int(v.last_fulfilment_nav),
        last_fulfilment_time=int(v.last_fulfilment_time))
    if who is None:
        return VaultSection(status=status, investor=None)
    request = tuple(int(x) for x in v.request)
    verdicts = {(ZERO_ADDRESS, where, int(v.issue_shares)): (int(v.issue.code),
                                                             str(v.issue.message)),
                (where, ZERO_ADDRESS, request[4]): (int(v.burn.code), str(v.burn.message))}
    snapshot = vault.VaultSnapshot(
        spv_id=status.spv_id, address=where, asset=asset, share=share,
        notice_period=status.notice_period, fee_bps=status.redemption_fee_bps,
        requests={who: request}, incomes={who: int(v.income_owed)}, role=bool(v.vault_role),
        code_for_vault=int(v.vault_code), restrictions=verdicts, cap=status.mint_cap,
        supply=status.supply, shares_per_gpu=status.shares_per_gpu,
        redemption_funds=status.redemption_funds, at=now)
    code = int(v.eligibility.code)
    investor = vault.InvestorView(
        spv_id=status.spv_id, request=vault._request_view(snapshot, who, nav),  # noqa: SLF001
        wallet_assets=int(v.wallet_assets), wallet_shares=int(v.wallet_shares),
        eligible=code == 0, eligibility=str(v.eligibility.message))
    return VaultSection(status=status, investor=investor)


def oracle(client: Client, history: int = 64) -> OraclePage:
    """The hub: signer set, threshold, checkpoint, every feed at the chain's time and its
    last `history` rounds (one call per 32 feeds)."""
    hub = client.hub().address
    lens, rounds = client.lens(), _history(history)
    heads: list[Any] = []

    def read(start: int) -> tuple[int, list[Any]]:
        raw = lens.oracle(hub, start, rounds)
        heads.append(raw)
        return int(raw.feed_count), list(raw.feeds)

    feeds = _paged(read, 0, FEED_PAGE)
    head = heads[0]
    now = int(head.now)
    histories = [_feed(f, now) for f in feeds]
    view = hub_reads.HubView(
        address=hub, config_version=int(head.config_version), threshold=int(head.threshold),
        signers=[checksum(s) for s in head.signers], checkpoint_size=int(head.checkpoint_size),
        checkpoint_root="0x" + bytes(head.checkpoint_root).hex(),
        feeds=[h.feed for h in histories])
    return OraclePage(now=now, hub=view, rounds={h.feed.name: h.rounds for h in histories})
